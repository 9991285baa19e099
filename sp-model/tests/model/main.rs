//! Unit tests of the model kernel, driven through [`MemPort`] (no sockets).

mod dirs;
mod fds;
mod files;
mod links;
mod pipes;
mod procs;

use sp_model::{num, ModelKernel};
use sp_proto::abi::{oflag, Dirent, Errno, Iovec, Stat, SysResult, Sysnum};
use sp_proto::args;
use sp_server::{Kernel, ProcId};
use sp_testkit::memport::MemPort;
use std::sync::Arc;
use std::time::Duration;

/// How long a test waits for another thread before it fails.
const WAIT: Duration = Duration::from_secs(10);

/// A `struct iovec` array of `(base, len)` records, as a client holds it.
fn iovecs(recs: &[(u64, u64)]) -> Vec<u8> {
    let iov: Vec<Iovec> = recs.iter().map(|&(b, l)| Iovec::new(b, l)).collect();
    Iovec::array_bytes(&iov).to_vec()
}

/// A kernel, a process and its client.
#[derive(Clone)]
struct T {
    k: Arc<ModelKernel>,
    port: Arc<MemPort>,
    p: ProcId,
}

impl T {
    /// A fresh kernel with one guest, "test".
    fn new() -> T {
        T::on(Arc::new(ModelKernel::new()))
    }

    /// A new guest, "test", on kernel `k`.
    fn on(k: Arc<ModelKernel>) -> T {
        let port = MemPort::shared();
        let p = k.spawn_guest(b"test", port.clone()).unwrap();
        T { k, port, p }
    }

    /// The same kernel, process `p` with client `port`.
    fn with(&self, p: ProcId, port: Arc<MemPort>) -> T {
        T {
            k: self.k.clone(),
            port,
            p,
        }
    }

    fn pid(&self) -> i32 {
        self.k.pid(self.p)
    }

    fn call(&self, n: Sysnum, slots: &[u64]) -> SysResult {
        self.k
            .syscall(self.p, n.0, &args::encode(slots), &*self.port)
    }

    /// A call that must succeed; its retval[0].
    fn ok(&self, n: Sysnum, slots: &[u64]) -> i64 {
        match self.call(n, slots) {
            Ok([r, _]) => r,
            Err(e) => panic!("syscall {n} {slots:?}: {e}"),
        }
    }

    /// A call that must fail; its errno.
    fn err(&self, n: Sysnum, slots: &[u64]) -> Errno {
        match self.call(n, slots) {
            Ok(r) => panic!("syscall {n} {slots:?} succeeded: {r:?}"),
            Err(e) => e,
        }
    }

    /// A NUL-terminated string in the client.
    fn s(&self, s: &str) -> u64 {
        self.port.alloc_cstr(s.as_bytes())
    }

    fn open(&self, path: &str, flags: u32, mode: u32) -> Result<i32, Errno> {
        self.call(Sysnum::OPEN, &[self.s(path), flags.into(), mode.into()])
            .map(|r| r[0] as i32)
    }

    /// Creates (or truncates) `path` holding `data`.
    fn create(&self, path: &str, data: &[u8]) {
        let fd = self
            .open(
                path,
                oflag::O_CREAT | oflag::O_TRUNC | oflag::O_WRONLY,
                0o644,
            )
            .unwrap();
        assert_eq!(self.write(fd, data), Ok(data.len() as i64));
        self.ok(Sysnum::CLOSE, &[fd as u64]);
    }

    fn write(&self, fd: i32, data: &[u8]) -> Result<i64, Errno> {
        let buf = self.port.alloc(data.to_vec());
        self.call(Sysnum::WRITE, &[fd as u64, buf, data.len() as u64])
            .map(|r| r[0])
    }

    fn read(&self, fd: i32, n: usize) -> Result<Vec<u8>, Errno> {
        let buf = self.port.alloc_zeroed(n);
        let [got, _] = self.call(Sysnum::READ, &[fd as u64, buf, n as u64])?;
        Ok(self.port.read(buf, got as usize))
    }

    /// The whole content of `path`.
    fn content(&self, path: &str) -> Vec<u8> {
        let fd = self.open(path, oflag::O_RDONLY, 0).unwrap();
        let mut out = Vec::new();
        loop {
            let chunk = self.read(fd, 4096).unwrap();
            if chunk.is_empty() {
                break;
            }
            out.extend(chunk);
        }
        self.ok(Sysnum::CLOSE, &[fd as u64]);
        out
    }

    fn stat(&self, path: &str) -> Result<Stat, Errno> {
        let sb = self.port.alloc_zeroed(Stat::SIZE);
        self.call(Sysnum::STAT, &[self.s(path), sb])?;
        Ok(Stat::from_bytes(&self.port.read(sb, Stat::SIZE)).unwrap())
    }

    fn fstat(&self, fd: i32) -> Result<Stat, Errno> {
        let sb = self.port.alloc_zeroed(Stat::SIZE);
        self.call(Sysnum::FSTAT, &[fd as u64, sb])?;
        Ok(Stat::from_bytes(&self.port.read(sb, Stat::SIZE)).unwrap())
    }

    fn pipe(&self) -> (i32, i32) {
        let [r, w] = self.call(Sysnum::PIPE, &[]).unwrap();
        (r as i32, w as i32)
    }

    /// pipe2(O_NONBLOCK).
    fn pipe2_nonblock(&self) -> (i32, i32) {
        let fds = self.port.alloc_zeroed(8);
        self.ok(Sysnum::PIPE2, &[fds, oflag::O_NONBLOCK.into()]);
        let raw = self.port.read(fds, 8);
        let fd = |b: &[u8]| i32::from_le_bytes(b.try_into().unwrap());
        (fd(&raw[..4]), fd(&raw[4..]))
    }

    fn mkdir(&self, path: &str) {
        self.ok(Sysnum::MKDIR, &[self.s(path), 0o755]);
    }

    /// Every entry of directory `path`, read with a buffer of `bufsize`
    /// bytes; also how many getdents calls returned data.
    fn list(&self, path: &str, bufsize: usize) -> (Vec<Dirent>, usize) {
        let fd = self
            .open(path, oflag::O_RDONLY | oflag::O_DIRECTORY, 0)
            .unwrap();
        let buf = self.port.alloc_zeroed(bufsize);
        let (mut all, mut calls) = (Vec::new(), 0);
        loop {
            let n = self.ok(Sysnum::GETDENTS, &[fd as u64, buf, bufsize as u64]) as usize;
            if n == 0 {
                break;
            }
            calls += 1;
            all.extend(Dirent::decode_all(&self.port.read(buf, n)).unwrap());
        }
        self.ok(Sysnum::CLOSE, &[fd as u64]);
        (all, calls)
    }

    /// The names of directory `path`, `.` and `..` included.
    fn names(&self, path: &str) -> Vec<String> {
        self.list(path, 4096)
            .0
            .into_iter()
            .map(|d| String::from_utf8(d.name).unwrap())
            .collect()
    }

    fn getcwd(&self) -> Result<Vec<u8>, Errno> {
        let buf = self.port.alloc_zeroed(1024);
        let [n, _] = self.call(Sysnum::GETCWD, &[buf, 1024])?;
        let mut v = self.port.read(buf, n as usize);
        assert_eq!(v.pop(), Some(0));
        Ok(v)
    }

    fn fds(&self) -> Vec<i32> {
        self.k.proc_info(self.p).unwrap().fds
    }
}

#[test]
fn unknown_syscall_is_enosys() {
    let t = T::new();
    for n in [0, 1, 2, 7, 999, 1000, 1001, u32::MAX] {
        assert_eq!(t.err(Sysnum(n), &[]), Errno::ENOSYS, "syscall {n}");
    }
}

#[test]
fn short_argument_block_is_efault() {
    let t = T::new();
    let fd = t
        .open("/tmp/f", oflag::O_CREAT | oflag::O_RDWR, 0o644)
        .unwrap() as u64;
    let buf = t.port.alloc_zeroed(16);
    let (path, tmpfs, tmp) = (t.s("/tmp/f"), t.s("tmpfs"), t.s("/tmp"));
    // Each call with its last needed slot cut off.
    let cases: &[(Sysnum, &[u64])] = &[
        (Sysnum::READ, &[fd, buf]),
        (Sysnum::WRITE, &[fd, buf]),
        (Sysnum::OPEN, &[]),
        (Sysnum::CLOSE, &[]),
        (Sysnum::LSEEK, &[fd, 0, 0]),
        (Sysnum::FTRUNCATE, &[fd, 0]),
        (Sysnum::PREAD, &[fd, buf, 4, 0]),
        (Sysnum::PWRITE, &[fd, buf, 4, 0]),
        (Sysnum::MMAP, &[0, 4096, 3, 0x1002]),
        (Sysnum::FCNTL, &[fd]),
        (Sysnum::KILL, &[2]),
        (Sysnum::DUP2, &[fd]),
        (Sysnum::GETDENTS, &[fd, buf]),
        (Sysnum::GETCWD, &[buf]),
        (Sysnum::FSTAT, &[fd]),
        (Sysnum::UMASK, &[]),
        (Sysnum::PIPE2, &[buf]),
        (num::CHMOD, &[path]),
        (num::FCHMOD, &[fd]),
        (num::TRUNCATE, &[path, 0]),
        (num::READLINK, &[path, buf]),
        (num::UTIMES, &[path]),
        (num::MOUNT, &[tmpfs, tmp, 0, buf]),
    ];
    for (n, slots) in cases {
        assert_eq!(t.err(*n, slots), Errno::EFAULT, "syscall {n} {slots:?}");
    }
    // A partial slot is short too.
    let mut block = args::encode(&[fd]);
    block.extend_from_slice(&[0; 7]);
    assert_eq!(
        t.k.syscall(t.p, Sysnum::DUP2.0, &block, &*t.port),
        Err(Errno::EFAULT)
    );
    // Calls without arguments need none.
    assert_eq!(t.call(Sysnum::GETPID, &[]), Ok([2, 1]));
    assert_eq!(t.call(Sysnum::GETPPID, &[]), Ok([1, 0]));
}

#[test]
fn bad_pointers_are_efault() {
    let t = T::new();
    t.create("/tmp/f", b"data");
    let fd = t.open("/tmp/f", oflag::O_RDWR, 0).unwrap() as u64;
    let bad = 0x10;
    assert_eq!(t.err(Sysnum::OPEN, &[bad, 0, 0]), Errno::EFAULT);
    assert_eq!(t.err(Sysnum::READ, &[fd, bad, 4]), Errno::EFAULT);
    assert_eq!(t.err(Sysnum::WRITE, &[fd, bad, 4]), Errno::EFAULT);
    assert_eq!(t.err(Sysnum::STAT, &[t.s("/tmp/f"), bad]), Errno::EFAULT);
    assert_eq!(t.err(Sysnum::FSTAT, &[fd, bad]), Errno::EFAULT);
    assert_eq!(t.err(Sysnum::PIPE2, &[bad, 0]), Errno::EFAULT);
    assert_eq!(t.err(Sysnum::GETCWD, &[bad, 100]), Errno::EFAULT);
    assert_eq!(t.err(Sysnum::READV, &[fd, bad, 1]), Errno::EFAULT);
    // The failed read did not move the offset.
    assert_eq!(t.read(fd as i32, 10).unwrap(), b"data");
    // A failed pipe2 leaves no descriptors behind.
    assert_eq!(t.fds(), vec![0, 1, 2, fd as i32]);
    // The path calls.
    let (f, g) = (t.s("/tmp/f"), t.s("/tmp/g"));
    assert_eq!(t.err(num::LINK, &[bad, g]), Errno::EFAULT);
    assert_eq!(t.err(num::LINK, &[f, bad]), Errno::EFAULT);
    assert_eq!(t.err(num::SYMLINK, &[bad, g]), Errno::EFAULT);
    assert_eq!(t.err(num::CHMOD, &[bad, 0o644]), Errno::EFAULT);
    assert_eq!(t.err(num::TRUNCATE, &[bad, 0, 0]), Errno::EFAULT);
    assert_eq!(t.err(num::UTIMES, &[f, bad]), Errno::EFAULT);
    assert_eq!(
        t.err(num::MOUNT, &[t.s("tmpfs"), t.s("/tmp"), 0, bad, 40]),
        Errno::EFAULT
    );
    t.ok(num::SYMLINK, &[f, g]);
    assert_eq!(t.err(num::READLINK, &[g, bad, 100]), Errno::EFAULT);
}

#[test]
fn unknown_process_is_esrch() {
    let t = T::new();
    let ghost = t.with(ProcId(999), t.port.clone());
    assert_eq!(ghost.err(Sysnum::GETPID, &[]), Errno::ESRCH);
    assert_eq!(t.k.pid(ProcId(999)), -1);
    assert_eq!(t.k.prefork(ProcId(999)), Err(Errno::ESRCH));
    assert_eq!(
        t.k.attach_prefork(ProcId(999), t.port.clone()),
        Err(Errno::ESRCH)
    );
    // These are no-ops for an unknown process.
    t.k.lwpexit(ProcId(999));
    t.k.execnotify(ProcId(999), b"x");
    t.k.release(ProcId(999));
    assert_eq!(t.k.process_count(), 1);
}

#[test]
fn model_kernel_is_a_kernel_object() {
    let k: Arc<dyn Kernel> = Arc::new(ModelKernel::default());
    let port = MemPort::shared();
    let p = k.spawn_guest(b"dyn", port.clone()).unwrap();
    assert_eq!(k.pid(p), 2);
    assert_eq!(k.syscall(p, Sysnum::GETPID.0, &[], &*port), Ok([2, 1]));
    assert!(format!("{:?}", ModelKernel::new()).contains("ModelKernel"));
}
