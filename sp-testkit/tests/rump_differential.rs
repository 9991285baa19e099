//! Differential test: the model kernel beside a stock NetBSD rump kernel.
//!
//! Runs only when `SP_RUMP_PREFIX` names a directory holding `bin/rump_server`
//! and `lib/` of a rump kernel built for this host; otherwise it prints
//! "skipped: SP_RUMP_PREFIX not set" and passes. It starts
//! `rump_server -s -lrumpvfs -lrumpfs_tmpfs unix://DIR/stock.sock` and the
//! model kernel behind our server, mounts a tmpfs on `/tmp` in both, runs the
//! same script of system calls through `sp-client` against each, and compares
//! every outcome: return values, errno, `struct stat` fields (not the times,
//! inode numbers or device numbers, which legitimately differ; where they
//! matter the script compares relations such as "same device as /"),
//! directory listings and bytes read. Every difference is listed before the
//! test fails.
//!
//! `SP_DIFF_VERBOSE=1` prints every step's outcome on both sides.

use sp_client::{Call, Client, Options};
use sp_model::{Boot, ModelKernel};
use sp_proto::abi::{fcntl, misc, oflag, Dirent, Errno, Stat, Sysnum};
use sp_testkit::harness::{TestServer, Transport};
use std::fmt::Debug;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

// NetBSD numbers of calls that sp_proto::abi::Sysnum does not name.
use sp_model::num::{CHMOD, FCHMOD, LINK, MOUNT, READLINK, SYMLINK, TRUNCATE, UTIMES};

/// NetBSD's `NODEV`.
const NODEV: u64 = u64::MAX;

/// The fields of a `struct stat` that must agree.
#[derive(Debug, PartialEq, Eq)]
struct StatView {
    mode: String,
    nlink: u32,
    uid: u32,
    gid: u32,
    rdev: String,
    size: i64,
    blocks: i64,
    blksize: u32,
    flags: u32,
    gen: u32,
}

fn view(st: &Stat) -> StatView {
    let rdev = st.st_rdev.get();
    StatView {
        mode: format!("{:o}", st.st_mode.get()),
        nlink: st.st_nlink.get(),
        uid: st.st_uid.get(),
        gid: st.st_gid.get(),
        rdev: if rdev == NODEV {
            "NODEV".into()
        } else {
            format!("{rdev:#x}")
        },
        size: st.st_size.get(),
        blocks: st.st_blocks.get(),
        blksize: st.st_blksize.get(),
        flags: st.st_flags.get(),
        gen: st.st_gen.get(),
    }
}

fn sv(r: Result<Stat, Errno>) -> Result<StatView, Errno> {
    r.map(|s| view(&s))
}

/// One side of the comparison: a client, its server's URL, and the outcome
/// of every step by name.
struct Side {
    c: Client,
    url: String,
    log: Vec<(String, String)>,
    sigs: Arc<AtomicU32>,
}

fn opts(name: &str, sigs: &Arc<AtomicU32>) -> Options {
    let sigs = sigs.clone();
    Options::new()
        .name(name)
        .on_signal(move |s| sigs.store(s, Ordering::SeqCst))
}

impl Side {
    fn new(url: &str) -> Side {
        let sigs = Arc::new(AtomicU32::new(0));
        let c = Client::connect_with(url, opts("difftest", &sigs)).expect("client connects");
        Side {
            c,
            url: url.to_string(),
            log: Vec::new(),
            sigs,
        }
    }

    fn rec(&mut self, label: &str, v: impl Debug) {
        self.log.push((label.to_string(), format!("{v:?}")));
    }

    /// An outcome that is shown (with `SP_DIFF_VERBOSE`) but not compared.
    fn info(&mut self, label: &str, v: impl Debug) {
        self.log.push((format!("(info) {label}"), format!("{v:?}")));
    }

    fn raw(&self, path: &str) -> Option<(u64, u64, u64)> {
        self.c
            .lstat(path)
            .ok()
            .map(|s| (s.dev(), s.ino(), s.rdev()))
    }

    fn call(&self, call: Call<'_>) -> Result<i64, Errno> {
        self.c.call(call).map(|r| r[0])
    }

    fn path2(&self, n: Sysnum, a: &str, b: &str) -> Result<i64, Errno> {
        let (a, b) = (cs(a), cs(b));
        self.call(Call::new(n).cstr(&a).cstr(&b))
    }

    fn readlink(&self, p: &str, len: usize) -> Result<String, Errno> {
        let p = cs(p);
        let mut buf = vec![0u8; len];
        let n = self.call(
            Call::new(READLINK)
                .cstr(&p)
                .output(&mut buf)
                .arg(len as u64),
        )?;
        Ok(String::from_utf8_lossy(&buf[..n as usize]).into_owned())
    }

    fn chmod(&self, p: &str, m: u32) -> Result<i64, Errno> {
        let p = cs(p);
        self.call(Call::new(CHMOD).cstr(&p).int(m as i32))
    }

    fn truncate(&self, p: &str, len: i64) -> Result<i64, Errno> {
        let p = cs(p);
        self.call(Call::new(TRUNCATE).cstr(&p).pad().off(len))
    }

    fn utimes(&self, p: &str, times: Option<[(i64, i64); 2]>) -> Result<i64, Errno> {
        let p = cs(p);
        match times {
            None => self.call(Call::new(UTIMES).cstr(&p).arg(0)),
            Some(t) => {
                let mut tv = Vec::new();
                for (sec, usec) in t {
                    tv.extend_from_slice(&sec.to_le_bytes());
                    tv.extend_from_slice(&usec.to_le_bytes());
                }
                self.call(Call::new(UTIMES).cstr(&p).input(&tv))
            }
        }
    }

    fn mount_tmpfs(&self, path: &str, version: i32, len: usize) -> Result<i64, Errno> {
        let (ty, p) = (cs("tmpfs"), cs(path));
        let mut args = [0u8; 40];
        args[..4].copy_from_slice(&version.to_le_bytes());
        args[32..36].copy_from_slice(&0o1777u32.to_le_bytes());
        let data = &args[..len];
        self.call(
            Call::new(MOUNT)
                .cstr(&ty)
                .cstr(&p)
                .int(0)
                .input(data)
                .arg(len as u64),
        )
    }

    fn names(&self, path: &str) -> Result<Vec<String>, Errno> {
        self.c.read_dir_raw(path).map(|ents| {
            ents.iter()
                .map(|d| format!("{}:{}", String::from_utf8_lossy(&d.name), d.kind))
                .collect()
        })
    }

    fn ino(&self, path: &str) -> u64 {
        self.c.lstat_raw(path).map_or(0, |s| s.st_ino.get())
    }

    fn dev(&self, path: &str) -> u64 {
        self.c.lstat_raw(path).map_or(0, |s| s.st_dev.get())
    }

    fn content(&self, path: &str) -> Result<Vec<u8>, Errno> {
        let fd = self.c.open(path, oflag::O_RDONLY, 0)?;
        let mut buf = vec![0u8; 65536];
        let n = self.c.read(fd, &mut buf);
        self.c.close(fd)?;
        buf.truncate(n?);
        Ok(buf)
    }

    fn take_sig(&self) -> u32 {
        self.sigs.swap(0, Ordering::SeqCst)
    }
}

/// The names in a getdents buffer.
fn names_of(buf: &[u8]) -> Option<Vec<String>> {
    Dirent::decode_all(buf).map(|v| {
        v.iter()
            .map(|d| String::from_utf8_lossy(&d.name).into_owned())
            .collect()
    })
}

fn cs(s: &str) -> std::ffi::CString {
    std::ffi::CString::new(s).expect("no NUL")
}

const RW: u32 = oflag::O_RDWR;
const CR: u32 = oflag::O_CREAT;

/// The script both kernels run. Each `rec` is one compared outcome.
fn script(s: &mut Side) {
    // ---- a new guest ----
    s.rec("guest getpid", s.c.getpid());
    s.rec("guest getppid", s.c.getppid());
    for fd in 0..4 {
        s.rec(&format!("fstat({fd})"), sv(s.c.fstat_raw(fd)));
        s.rec(&format!("F_GETFL({fd})"), s.c.fcntl(fd, fcntl::F_GETFL, 0));
        s.rec(&format!("F_GETFD({fd})"), s.c.fcntl(fd, fcntl::F_GETFD, 0));
    }
    let mut b = [0u8; 8];
    s.rec("read(0)", s.c.read(0, &mut b));
    s.rec("write(1, 0 bytes)", s.c.write(1, b""));
    s.rec("lseek(0)", s.c.lseek(0, 0, misc::SEEK_CUR));
    s.rec("fsync(0)", s.c.fsync(0));
    s.rec("fchdir(0)", s.c.fchdir(0));
    s.rec("ftruncate(0)", s.c.ftruncate(0, 0));
    s.rec("getdents(0)", s.c.getdents(0, &mut [0u8; 512]));
    s.rec("pread(0)", s.c.pread(0, &mut b, 0));
    s.rec("pwrite(1)", s.c.pwrite(1, b"", 0));
    let fst0 = s.c.fstat_raw(0).ok();
    s.rec(
        "fstat(0) ino/dev/rdev",
        fst0.map(|st| (st.st_ino.get(), st.st_dev.get(), st.st_rdev.get())),
    );
    s.rec("stat(/dev/console)", sv(s.c.stat_raw("/dev/console")));

    // ---- the tree before /tmp ----
    s.rec("stat(/)", sv(s.c.stat_raw("/")));
    s.rec("stat(/dev)", sv(s.c.stat_raw("/dev")));
    s.rec("stat(/dev/null)", sv(s.c.stat_raw("/dev/null")));
    s.rec(
        "/dev/null rdev",
        s.c.stat_raw("/dev/null").map(|st| st.st_rdev.get()),
    );
    s.rec("readdir(/dev)", s.names("/dev"));
    s.rec("stat(/dev/zero)", sv(s.c.stat_raw("/dev/zero")));
    s.rec("stat(/tmp) before mount", sv(s.c.stat_raw("/tmp")));
    s.rec("readdir(/tmp) before mount", s.names("/tmp"));
    for p in ["/", "/dev", "/dev/null", "/dev/zero", "/tmp"] {
        let r = s.raw(p);
        s.info(&format!("raw {p}"), r);
    }
    s.rec("getdents / small", {
        let f = s.c.open("/", 0, 0).unwrap_or(-1);
        let mut out = Vec::new();
        for _ in 0..4 {
            let mut buf = [0u8; 40];
            let r = s.c.getdents(f, &mut buf).map(|n| names_of(&buf[..n]));
            out.push((r, s.c.lseek(f, 0, misc::SEEK_CUR)));
        }
        let _ = s.c.close(f);
        out
    });
    s.rec("getdents / tiny", {
        let f = s.c.open("/", 0, 0).unwrap_or(-1);
        let r = s.c.getdents(f, &mut [0u8; 8]);
        let o = s.c.lseek(f, 0, misc::SEEK_CUR);
        let _ = s.c.close(f);
        (r, o)
    });
    // Files on the root file system.
    s.rec("root file", {
        let f = s.c.open("/rf", CR | RW, 0o644);
        let f = f.unwrap_or(-1);
        let w = s.c.write(f, b"root data");
        let st = sv(s.c.fstat_raw(f));
        let mut b = [0u8; 4];
        let p = s.c.pread(f, &mut b, 1 << 62);
        let p2 = s.c.pread(f, &mut b, 20);
        let setfl = s.c.fcntl(f, fcntl::F_SETFL, oflag::O_APPEND as i64);
        let tr = s.c.ftruncate(f, 2);
        let st2 = sv(s.c.fstat_raw(f));
        let _ = s.c.close(f);
        (w, st, p, p2, setfl, tr, st2)
    });
    s.info("raw /rf", s.raw("/rf"));
    s.rec("root empty file", {
        let f = s.c.open("/rf0", CR | RW, 0o644).unwrap_or(-1);
        let st = sv(s.c.fstat_raw(f));
        let _ = s.c.close(f);
        st
    });
    s.rec(
        "root mkdir",
        (
            s.c.mkdir("/rd", 0o755),
            sv(s.c.stat_raw("/rd")),
            sv(s.c.stat_raw("/")),
        ),
    );
    s.rec("root link", s.path2(LINK, "/rf", "/rf2"));
    s.rec("root rename", s.c.rename("/rf", "/rf3"));
    s.rec("root rename to tmp", s.c.rename("/rf", "/tmp/x"));
    s.rec(
        "root symlink",
        (s.path2(SYMLINK, "rf", "/rl"), sv(s.c.lstat_raw("/rl"))),
    );
    s.rec("root readlink", s.readlink("/rl", 100));
    s.rec(
        "root chmod",
        (s.chmod("/rf", 0o600), sv(s.c.stat_raw("/rf"))),
    );
    s.rec(
        "root truncate",
        (s.truncate("/rf", 100), sv(s.c.stat_raw("/rf"))),
    );
    s.rec("root utimes", s.utimes("/rf", None));
    s.rec(
        "root name 256",
        s.c.open(format!("/{}", "r".repeat(256)), CR | RW, 0o644),
    );
    s.rec("root readdir", s.names("/"));
    s.rec(
        "root unlink",
        (s.c.unlink("/rf"), s.c.unlink("/rl"), s.c.unlink("/rf0")),
    );
    s.rec("root rmdir", s.c.rmdir("/rd"));
    s.rec("root readdir after", s.names("/"));
    s.rec("rmdir /tmp rumpfs", s.c.rmdir("/tmp"));
    s.rec(
        "console F_SETFL nonblock",
        s.c.fcntl(1, fcntl::F_SETFL, oflag::O_NONBLOCK as i64),
    );
    s.rec(
        "console F_SETFL append",
        s.c.fcntl(1, fcntl::F_SETFL, oflag::O_APPEND as i64),
    );
    s.rec("console F_GETFL 2", s.c.fcntl(2, fcntl::F_GETFL, 0));
    s.rec("console F_SETFL 0", s.c.fcntl(1, fcntl::F_SETFL, 0));
    s.rec("console write", s.c.write(2, b"console\n"));
    s.rec(
        "console fchmod",
        s.call(Call::new(FCHMOD).int(1).int(0o644)),
    );
    s.rec("console readv 1", s.c.readv(0, &mut [&mut [0u8; 4]]));
    s.rec("console writev", s.c.writev(1, &[b"a", b"b\n"]));
    s.rec("null F_SETFL nonblock", {
        let f = s.c.open("/dev/null", RW, 0).unwrap_or(-1);
        let r = s.c.fcntl(f, fcntl::F_SETFL, oflag::O_NONBLOCK as i64);
        let g = s.c.fcntl(f, fcntl::F_GETFL, 0);
        let a = s.c.fcntl(f, fcntl::F_SETFL, oflag::O_APPEND as i64);
        let _ = s.c.close(f);
        (r, g, a)
    });
    s.rec("zero read", {
        let f = s.c.open("/dev/zero", RW, 0).unwrap_or(-1);
        let mut b = [7u8; 5];
        let r = s.c.read(f, &mut b).map(|n| b[..n].to_vec());
        let w = s.c.write(f, b"abc");
        let st = sv(s.c.fstat_raw(f));
        let l = s.c.lseek(f, 0, misc::SEEK_END);
        let _ = s.c.close(f);
        (r, w, st, l)
    });
    // The stock root has no /tmp: make one (the model has it already), then
    // mount a fresh tmpfs there in both.
    let _ = s.c.mkdir("/tmp", 0o777);
    s.rec("mount tmpfs short args", s.mount_tmpfs("/tmp", 1, 39));
    s.rec("mount tmpfs bad version", s.mount_tmpfs("/tmp", 2, 40));
    s.rec("mount tmpfs on a file", s.mount_tmpfs("/dev/null", 1, 40));
    s.rec(
        "mount tmpfs on nothing",
        s.mount_tmpfs("/nonexistent", 1, 40),
    );
    s.rec("mount tmpfs", s.mount_tmpfs("/tmp", 1, 40));
    s.rec("mount unknown type", {
        let (ty, p) = (cs("nosuchfs"), cs("/tmp"));
        s.call(Call::new(MOUNT).cstr(&ty).cstr(&p).int(0).arg(0).arg(0))
    });
    s.rec("mount tmpfs len 0", {
        let (ty, p) = (cs("tmpfs"), cs("/tmp"));
        let args = [0u8; 40];
        s.call(
            Call::new(MOUNT)
                .cstr(&ty)
                .cstr(&p)
                .int(0)
                .input(&args)
                .arg(0),
        )
    });
    s.rec("mount tmpfs no data", {
        let (ty, p) = (cs("tmpfs"), cs("/tmp"));
        s.call(Call::new(MOUNT).cstr(&ty).cstr(&p).int(0).arg(0).arg(40))
    });
    s.rec("mount tmpfs big len", {
        let (ty, p) = (cs("tmpfs"), cs("/tmp"));
        let args = vec![0u8; 8193];
        s.call(
            Call::new(MOUNT)
                .cstr(&ty)
                .cstr(&p)
                .int(0)
                .input(&args)
                .arg(8193),
        )
    });
    s.rec("stat(/tmp)", sv(s.c.stat_raw("/tmp")));
    s.rec("/tmp other dev than /", s.dev("/tmp") != s.dev("/"));
    s.rec("/ same dev as /dev", s.dev("/dev") == s.dev("/"));
    s.rec("readdir(/tmp)", s.names("/tmp"));
    s.rec("stat(/tmp/.)", sv(s.c.stat_raw("/tmp/.")));
    s.rec("stat(/tmp/..)", sv(s.c.stat_raw("/tmp/..")));
    s.rec("/tmp/.. is /", s.ino("/tmp/..") == s.ino("/"));
    s.info("raw /tmp mounted", s.raw("/tmp"));
    s.rec("mkdir /tmp mounted", s.c.mkdir("/tmp", 0o755));
    s.rec("open /tmp O_CREAT mounted", s.c.open("/tmp", CR, 0));

    // ---- descriptors ----
    let fd = s.c.open("/tmp/a", CR | RW, 0o644);
    s.rec("first open", fd);
    let fd = fd.unwrap_or(-1);
    s.rec("write a", s.c.write(fd, b"hello"));
    s.info("raw /tmp/a", s.raw("/tmp/a"));
    s.rec("fstat a", sv(s.c.fstat_raw(fd)));
    s.rec("dup", s.c.dup(fd));
    s.rec("dup2 to 10", s.c.dup2(fd, 10));
    s.rec("dup3 same", s.c.dup3(fd, fd, 0));
    s.rec("dup3 cloexec", s.c.dup3(fd, 11, oflag::O_CLOEXEC));
    s.rec("dup3 bad flags", s.c.dup3(fd, 12, 1));
    s.rec("F_GETFD 11", s.c.fcntl(11, fcntl::F_GETFD, 0));
    s.rec("F_DUPFD 5", s.c.fcntl(fd, fcntl::F_DUPFD, 5));
    s.rec("F_DUPFD neg", s.c.fcntl(fd, fcntl::F_DUPFD, -1));
    s.rec("F_DUPFD huge", s.c.fcntl(fd, fcntl::F_DUPFD, 1 << 20));
    s.rec("F_GETFL", s.c.fcntl(fd, fcntl::F_GETFL, 0));
    s.rec(
        "F_SETFL append|nonblock",
        s.c.fcntl(
            fd,
            fcntl::F_SETFL,
            (oflag::O_APPEND | oflag::O_NONBLOCK | 0x40) as i64,
        ),
    );
    s.rec("F_GETFL after", s.c.fcntl(fd, fcntl::F_GETFL, 0));
    s.rec("F_SETFL 0", s.c.fcntl(fd, fcntl::F_SETFL, 0));
    s.rec("fcntl bad cmd", s.c.fcntl(fd, 999, 0));
    s.rec("close 10", s.c.close(10));
    s.rec("close 10 again", s.c.close(10));
    s.rec("close -1", s.c.close(-1));
    s.rec("close huge", s.c.close(1 << 20));
    s.rec("dup2 to huge", s.c.dup2(fd, 1 << 20));
    for f in [4, 5, 11] {
        let _ = s.c.close(f);
    }

    // ---- regular files ----
    s.rec("lseek end", s.c.lseek(fd, 0, misc::SEEK_END));
    s.rec("lseek neg", s.c.lseek(fd, -100, misc::SEEK_CUR));
    s.rec("lseek bad whence", s.c.lseek(fd, 0, 7));
    s.rec("lseek past end", s.c.lseek(fd, 1 << 40, misc::SEEK_SET));
    s.rec("read past end", s.c.read(fd, &mut b));
    s.rec("lseek 0", s.c.lseek(fd, 0, misc::SEEK_SET));
    let mut b5 = [0u8; 5];
    s.rec(
        "pread 2",
        s.c.pread(fd, &mut b5, 2).map(|n| b5[..n].to_vec()),
    );
    s.rec("pread -1", s.c.pread(fd, &mut b5, -1));
    s.rec("pread 2^62", s.c.pread(fd, &mut b5, 1 << 62));
    s.rec("pread i64::MAX", s.c.pread(fd, &mut b5, i64::MAX));
    s.rec("pwrite -1", s.c.pwrite(fd, b"x", -1));
    s.rec("pwrite 2^62", s.c.pwrite(fd, b"x", 1 << 62));
    s.rec("pwrite 2^40", s.c.pwrite(fd, b"x", 1 << 40));
    s.rec("size after far pwrite", sv(s.c.fstat_raw(fd)));
    s.rec("ftruncate 3", s.c.ftruncate(fd, 3));
    s.rec("ftruncate -1", s.c.ftruncate(fd, -1));
    s.rec("ftruncate 2^62", s.c.ftruncate(fd, 1 << 62));
    s.rec("content", s.content("/tmp/a"));
    s.rec("fsync", s.c.fsync(fd));
    s.rec("readv 0 iovecs", s.c.readv(fd, &mut []));
    s.rec("writev 0 iovecs", s.c.writev(fd, &[]));
    s.rec("readv 0 iovecs bad fd", s.c.readv(99, &mut []));
    s.rec("writev 2", s.c.writev(fd, &[b"ab", b"cd"]));
    s.rec("readv neg count", {
        s.call(Call::new(Sysnum::READV).int(fd).arg(0).int(-1))
    });
    s.rec("readv 1025", {
        s.call(Call::new(Sysnum::READV).int(fd).arg(0).int(1025))
    });
    s.rec("content 2", s.content("/tmp/a"));
    s.rec("fstat 3 bytes+", sv(s.c.fstat_raw(fd)));
    let _ = s.c.close(fd);

    // O_APPEND and pwrite.
    let ap = s.c.open("/tmp/a", RW | oflag::O_APPEND, 0).unwrap_or(-1);
    s.rec("append write", s.c.write(ap, b"Z"));
    s.rec("append pwrite at 0", s.c.pwrite(ap, b"P", 0));
    s.rec("append offset", s.c.lseek(ap, 0, misc::SEEK_CUR));
    s.rec("content append", s.content("/tmp/a"));
    s.rec("append write 0", s.c.write(ap, b""));
    s.rec("lseek 1 then append write", {
        let _ = s.c.lseek(ap, 1, misc::SEEK_SET);
        let w = s.c.write(ap, b"Q");
        (w, s.c.lseek(ap, 0, misc::SEEK_CUR))
    });
    let _ = s.c.close(ap);

    // Open flags.
    s.rec(
        "open O_EXCL",
        s.c.open("/tmp/a", CR | oflag::O_EXCL | RW, 0),
    );
    s.rec("open bad accmode", s.c.open("/tmp/a", 3, 0));
    s.rec("open dir O_WRONLY", s.c.open("/tmp", oflag::O_WRONLY, 0));
    s.rec("open dir O_CREAT", s.c.open("/tmp", CR, 0));
    s.rec("open file/", s.c.open("/tmp/a/", 0, 0));
    s.rec("open new/", s.c.open("/tmp/new/", CR | RW, 0o644));
    s.rec(
        "open O_DIRECTORY file",
        s.c.open("/tmp/a", oflag::O_DIRECTORY, 0),
    );
    s.rec(
        "open O_CREAT|O_DIRECTORY",
        s.c.open("/tmp/cd", CR | oflag::O_DIRECTORY, 0o755),
    );
    s.rec(
        "open O_CREAT|O_DIRECTORY existing",
        s.c.open("/tmp", CR | oflag::O_DIRECTORY, 0),
    );
    s.rec("open O_CLOEXEC F_GETFL", {
        let f = s.c.open(
            "/tmp/a",
            RW | oflag::O_CLOEXEC | 0x80 | 0x10000 | 0x1000000,
            0,
        );
        f.map(|f| {
            let x = (
                s.c.fcntl(f, fcntl::F_GETFL, 0),
                s.c.fcntl(f, fcntl::F_GETFD, 0),
            );
            let _ = s.c.close(f);
            x
        })
    });
    s.rec("F_SETFL 3 and 7", {
        let f = s.c.open("/tmp/a", RW, 0).unwrap_or(-1);
        let a = s.c.fcntl(f, fcntl::F_SETFL, 3);
        let b = s.c.fcntl(f, fcntl::F_GETFL, 0);
        let c = s.c.fcntl(f, fcntl::F_SETFL, 7);
        let d = s.c.fcntl(f, fcntl::F_GETFL, 0);
        let e = s.c.fcntl(f, fcntl::F_SETFL, -1);
        let g = s.c.fcntl(f, fcntl::F_GETFL, 0);
        let _ = s.c.close(f);
        (a, b, c, d, e, g)
    });
    s.rec("dup3 nonblock", {
        let f = s.c.open("/tmp/a", RW, 0).unwrap_or(-1);
        let a = s.c.dup3(f, 20, oflag::O_NONBLOCK);
        let b = s.c.fcntl(f, fcntl::F_GETFL, 0);
        let c = s.c.dup3(f, f, 0x12345);
        let d = s.c.dup2(f, 127);
        let e = s.c.dup2(f, 128);
        let g = s.c.fcntl(f, fcntl::F_DUPFD, 127);
        let h = s.c.fcntl(f, fcntl::F_DUPFD, 128);
        for x in [f, 20, 127] {
            let _ = s.c.close(x);
        }
        (a, b, c, d, e, g, h)
    });
    s.rec("ftruncate read-only", {
        let f = s.c.open("/tmp/a", 0, 0).unwrap_or(-1);
        let r = (
            s.c.ftruncate(f, 0),
            s.c.ftruncate(99, -1),
            s.c.ftruncate(99, 0),
        );
        let _ = s.c.close(f);
        r
    });
    s.rec("open dir O_CREAT plain", {
        let _ = s.c.mkdir("/tmp/pd", 0o755);
        let r = s.c.open("/tmp/pd", CR, 0);
        if let Ok(f) = r {
            let _ = s.c.close(f);
        }
        let w = s.c.open("/tmp/pd", CR | RW, 0);
        let t = s.c.open("/tmp/pd", oflag::O_TRUNC, 0);
        let rm = s.c.rmdir("/tmp/pd");
        (r.map(|_| ()), w, t, rm)
    });
    s.rec("open empty", s.c.open("", 0, 0));
    s.rec("open none", s.c.open("/tmp/none", 0, 0));
    s.rec("open O_TRUNC ro", {
        let r = s.c.open("/tmp/a", oflag::O_TRUNC, 0);
        if let Ok(f) = r {
            let _ = s.c.close(f);
        }
        (r, s.c.stat_raw("/tmp/a").map(|st| st.st_size.get()))
    });
    s.rec("umask", s.c.umask(0o027));
    s.rec("create with umask", {
        let r = s.c.open("/tmp/um", CR | RW, 0o777);
        if let Ok(f) = r {
            let _ = s.c.close(f);
        }
        sv(s.c.stat_raw("/tmp/um"))
    });
    s.rec("umask back", s.c.umask(0o022));
    s.rec("mkdir with umask", {
        let r = s.c.mkdir("/tmp/umd", 0o7777);
        (r, sv(s.c.stat_raw("/tmp/umd")))
    });
    s.rec("rmdir umd", s.c.rmdir("/tmp/umd"));

    // ---- names ----
    let long = "n".repeat(255);
    let longer = "n".repeat(256);
    s.rec("create 255", {
        let r = s.c.open(format!("/tmp/{long}"), CR | RW, 0o644);
        if let Ok(f) = r {
            let _ = s.c.close(f);
        }
        r.map(|_| ())
    });
    s.rec(
        "create 256",
        s.c.open(format!("/tmp/{longer}"), CR | RW, 0o644),
    );
    s.rec("stat 256", sv(s.c.stat_raw(format!("/tmp/{longer}"))));
    s.rec("mkdir 256", s.c.mkdir(format!("/tmp/{longer}"), 0o755));
    s.rec("unlink 255", s.c.unlink(format!("/tmp/{long}")));
    let deep = format!("/tmp/{}", "d/".repeat(600));
    s.rec("path 1205", s.c.stat_raw(&deep).map(|_| ()));
    let p1023 = format!("/{}", "/".repeat(1022));
    s.rec("path 1023 slashes", sv(s.c.stat_raw(&p1023)));
    let p1024 = format!("/{}", "/".repeat(1023));
    s.rec("path 1024 slashes", sv(s.c.stat_raw(&p1024)));
    s.rec("stat empty", sv(s.c.stat_raw("")));
    s.rec("stat .", sv(s.c.stat_raw(".")));
    s.rec("stat //tmp//", sv(s.c.stat_raw("//tmp//")));
    s.rec("stat /tmp/a/.", sv(s.c.stat_raw("/tmp/a/.")));
    s.rec("stat /tmp/none/..", sv(s.c.stat_raw("/tmp/none/..")));

    // ---- directories ----
    s.rec("mkdir d", s.c.mkdir("/tmp/d", 0o755));
    s.rec("mkdir d again", s.c.mkdir("/tmp/d", 0o755));
    s.rec("mkdir d/", s.c.mkdir("/tmp/d2/", 0o755));
    s.rec("stat d", sv(s.c.stat_raw("/tmp/d")));
    s.rec("stat tmp after mkdir", sv(s.c.stat_raw("/tmp")));
    s.rec("mkdir d/e", s.c.mkdir("/tmp/d/e", 0o755));
    s.rec("create d/f", {
        let r = s.c.open("/tmp/d/f", CR | RW, 0o600);
        if let Ok(f) = r {
            let _ = s.c.close(f);
        }
        r.map(|_| ())
    });
    s.rec("stat d 2", sv(s.c.stat_raw("/tmp/d")));
    s.rec("readdir d", s.names("/tmp/d"));
    s.rec("rmdir d", s.c.rmdir("/tmp/d"));
    s.rec("rmdir d/f", s.c.rmdir("/tmp/d/f"));
    s.rec("rmdir d/.", s.c.rmdir("/tmp/d/."));
    s.rec("rmdir d/..", s.c.rmdir("/tmp/d/.."));
    s.rec("rmdir /", s.c.rmdir("/"));
    s.rec("rmdir /tmp (mount point)", s.c.rmdir("/tmp"));
    s.rec("unlink d", s.c.unlink("/tmp/d"));
    s.rec("unlink d/f/", s.c.unlink("/tmp/d/f/"));
    s.rec("unlink d/f", s.c.unlink("/tmp/d/f"));
    s.rec("rmdir d/e/..", s.c.rmdir("/tmp/d/e/.."));
    s.rec("unlink d/e/..", s.c.unlink("/tmp/d/e/.."));
    s.rec("rename d/e/.. ", s.c.rename("/tmp/d/e/..", "/tmp/zz"));
    s.rec("rename to d/e/..", s.c.rename("/tmp/d/f", "/tmp/d/e/.."));
    s.rec("rename to d/e/.", s.c.rename("/tmp/d/f", "/tmp/d/e/."));
    s.rec("rename / ", s.c.rename("/", "/tmp/zz"));
    s.rec("rename /tmp mounted", s.c.rename("/tmp", "/zz"));
    s.rec("mkdir /", s.c.mkdir("/", 0o755));
    s.rec("mkdir /..", s.c.mkdir("/..", 0o755));
    s.rec("rmdir /..", s.c.rmdir("/.."));
    s.rec("rmdir d/e/", s.c.rmdir("/tmp/d/e/"));
    s.rec("stat d 3", sv(s.c.stat_raw("/tmp/d")));
    s.rec("chdir d", s.c.chdir("/tmp/d"));
    s.rec(
        "getcwd",
        s.c.getcwd()
            .map(|p| String::from_utf8_lossy(&p).into_owned()),
    );
    s.rec("getcwd short", {
        let mut buf = [0u8; 4];
        s.call(Call::new(Sysnum::GETCWD).output(&mut buf).arg(4))
    });
    s.rec("rmdir cwd", s.c.rmdir("/tmp/d"));
    s.rec(
        "getcwd removed",
        s.c.getcwd()
            .map(|p| String::from_utf8_lossy(&p).into_owned()),
    );
    s.rec("stat . removed", sv(s.c.stat_raw(".")));
    s.rec("create in removed", s.c.open("x", CR | RW, 0o644));
    s.rec("chdir /tmp", s.c.chdir("/tmp"));
    s.rec("chdir file", s.c.chdir("/tmp/a"));
    s.rec("chdir none", s.c.chdir("/tmp/none"));
    s.rec("relative stat", sv(s.c.stat_raw("a")));
    s.rec("chdir ..", s.c.chdir(".."));
    s.rec(
        "getcwd /",
        s.c.getcwd()
            .map(|p| String::from_utf8_lossy(&p).into_owned()),
    );
    s.rec("chdir /tmp again", s.c.chdir("/tmp"));

    // getdents details.
    let dfd = s.c.open("/tmp", oflag::O_RDONLY, 0).unwrap_or(-1);
    s.rec("getdents tiny buf", s.c.getdents(dfd, &mut [0u8; 8]));
    s.rec("getdents 24", {
        let mut buf = [0u8; 24];
        s.c.getdents(dfd, &mut buf).map(|n| {
            Dirent::decode_all(&buf[..n]).map(|v| {
                v.iter()
                    .map(|d| String::from_utf8_lossy(&d.name).into_owned())
                    .collect::<Vec<_>>()
            })
        })
    });
    s.rec("getdents offset", s.c.lseek(dfd, 0, misc::SEEK_CUR));
    s.rec("getdents sequence", {
        let mut out = Vec::new();
        for _ in 0..5 {
            let mut buf = [0u8; 40];
            let r = s.c.getdents(dfd, &mut buf).map(|n| {
                Dirent::decode_all(&buf[..n]).map(|v| {
                    v.iter()
                        .map(|d| String::from_utf8_lossy(&d.name).into_owned())
                        .collect::<Vec<_>>()
                })
            });
            out.push((r, s.c.lseek(dfd, 0, misc::SEEK_CUR)));
        }
        out
    });
    s.rec("getdents bad offset", {
        let _ = s.c.lseek(dfd, 9999, misc::SEEK_SET);
        s.c.getdents(dfd, &mut [0u8; 512])
    });
    s.rec("getdents eof offset", {
        let _ = s.c.lseek(dfd, 2, misc::SEEK_SET);
        s.c.getdents(dfd, &mut [0u8; 512])
    });
    let _ = s.c.lseek(dfd, 0, misc::SEEK_SET);
    s.rec("lseek dir end", s.c.lseek(dfd, 0, misc::SEEK_END));
    s.rec("read dir", s.c.read(dfd, &mut b));
    s.rec("fchdir dir", s.c.fchdir(dfd));
    let _ = s.c.close(dfd);
    s.rec("getdents file", {
        let f = s.c.open("/tmp/a", 0, 0).unwrap_or(-1);
        let r = s.c.getdents(f, &mut [0u8; 512]);
        let _ = s.c.close(f);
        r
    });
    s.rec("readdir /tmp", s.names("/tmp"));
    s.rec("readdir /", s.names("/"));
    s.rec(
        "readdir /dev has null",
        s.names("/dev").map(|v| v.iter().any(|n| n == "null:2")),
    );

    // ---- rename ----
    s.rec("rename a b", s.c.rename("/tmp/a", "/tmp/b"));
    s.rec("rename none", s.c.rename("/tmp/a", "/tmp/c"));
    s.rec("mkdir r", s.c.mkdir("/tmp/r", 0o755));
    s.rec("rename file over dir", s.c.rename("/tmp/b", "/tmp/r"));
    s.rec("rename dir over file", s.c.rename("/tmp/r", "/tmp/b"));
    s.rec("rename dir into itself", s.c.rename("/tmp/r", "/tmp/r/x"));
    s.rec("rename to .", s.c.rename("/tmp/b", "/tmp/."));
    s.rec("rename same", s.c.rename("/tmp/b", "/tmp/b"));
    s.rec("rename across fs", s.c.rename("/tmp/b", "/b"));
    s.rec("rename file/", s.c.rename("/tmp/b/", "/tmp/c"));
    s.rec("rename dir", s.c.rename("/tmp/r", "/tmp/r2"));
    s.rec("rename order", {
        let _ = s.c.mkdir("/tmp/ord", 0o755);
        for n in ["/tmp/ord/x", "/tmp/ord/y", "/tmp/ord/z"] {
            if let Ok(f) = s.c.open(n, CR | RW, 0o644) {
                let _ = s.c.close(f);
            }
        }
        let a = s.c.rename("/tmp/ord/x", "/tmp/ord/w");
        let b = s.c.rename("/tmp/ord/y", "/tmp/ord/z");
        let c = s.c.rename("/tmp/b", "/tmp/ord/v");
        let d = s.c.rename("/tmp/ord/v", "/tmp/b");
        (
            a,
            b,
            c,
            d,
            s.names("/tmp/ord"),
            sv(s.c.stat_raw("/tmp/ord")),
        )
    });
    s.rec("rename dir nonempty target", {
        let _ = s.c.mkdir("/tmp/ne", 0o755);
        let _ = s.c.mkdir("/tmp/ne2", 0o755);
        let _ = s.c.mkdir("/tmp/ne2/in", 0o755);
        let a = s.c.rename("/tmp/ne", "/tmp/ne2");
        let b = s.c.rename("/tmp/ne2", "/tmp/ne");
        let c = s.c.rename("/tmp/ne", "/tmp/ne/in");
        let d = s.c.rename("/tmp/ne/in", "/tmp/in2");
        (
            a,
            b,
            c,
            d,
            sv(s.c.stat_raw("/tmp/ne")),
            sv(s.c.stat_raw("/tmp")),
        )
    });
    s.rec("stat tmp after renames", sv(s.c.stat_raw("/tmp")));

    // ---- links ----
    s.rec("link", s.path2(LINK, "/tmp/b", "/tmp/hl"));
    s.rec("link nlink", sv(s.c.stat_raw("/tmp/b")));
    s.rec("link exists", s.path2(LINK, "/tmp/b", "/tmp/hl"));
    s.rec("link dir", s.path2(LINK, "/tmp/r2", "/tmp/hd"));
    s.rec("link none", s.path2(LINK, "/tmp/none", "/tmp/hn"));
    s.rec("link across fs", s.path2(LINK, "/tmp/b", "/hl"));
    s.rec("link same ino", s.ino("/tmp/b") == s.ino("/tmp/hl"));
    s.rec("unlink hl", s.c.unlink("/tmp/hl"));
    s.rec("nlink after", sv(s.c.stat_raw("/tmp/b")));

    s.rec("symlink", s.path2(SYMLINK, "b", "/tmp/sl"));
    s.rec("symlink exists", s.path2(SYMLINK, "b", "/tmp/sl"));
    s.rec("symlink empty target", s.path2(SYMLINK, "", "/tmp/sle"));
    s.rec("lstat sl", sv(s.c.lstat_raw("/tmp/sl")));
    s.rec("stat sl", sv(s.c.stat_raw("/tmp/sl")));
    s.rec("readlink sl", s.readlink("/tmp/sl", 100));
    s.rec("readlink short", s.readlink("/tmp/sl", 1));
    s.rec("readlink 0", s.readlink("/tmp/sl", 0));
    s.rec("readlink file", s.readlink("/tmp/b", 100));
    s.rec("readlink none", s.readlink("/tmp/none", 100));
    s.rec("open via sl", s.content("/tmp/sl"));
    s.rec(
        "symlink dangling",
        s.path2(SYMLINK, "/tmp/nowhere", "/tmp/dl"),
    );
    s.rec("stat dangling", sv(s.c.stat_raw("/tmp/dl")));
    s.rec("create through dangling", {
        let r = s.c.open("/tmp/dl", CR | RW, 0o644);
        if let Ok(f) = r {
            let _ = s.c.close(f);
        }
        (r.map(|_| ()), sv(s.c.stat_raw("/tmp/nowhere")))
    });
    s.rec(
        "O_EXCL on symlink",
        s.c.open("/tmp/sl", CR | oflag::O_EXCL | RW, 0o644),
    );
    s.rec("O_NOFOLLOW on symlink", s.c.open("/tmp/sl", 0x100, 0));
    s.rec(
        "O_NOFOLLOW|O_CREAT on symlink",
        s.c.open("/tmp/sl", 0x100 | CR, 0),
    );
    s.rec("O_NOFOLLOW on file", {
        let r = s.c.open("/tmp/b", 0x100, 0);
        if let Ok(f) = r {
            let _ = s.c.close(f);
        }
        r.map(|_| ())
    });
    s.rec("mkdir on dangling", s.c.mkdir("/tmp/dl", 0o755));
    s.rec("symlink chain", {
        let _ = s.path2(SYMLINK, "sl", "/tmp/sl2");
        let _ = s.path2(SYMLINK, "/tmp/sl2", "/tmp/sl3");
        (sv(s.c.stat_raw("/tmp/sl3")), s.readlink("/tmp/sl3", 100))
    });
    s.rec("symlink ELOOP depth", {
        let mut prev = "b".to_string();
        let mut out = Vec::new();
        for i in 0..34 {
            let name = format!("/tmp/ch{i}");
            let _ = s.path2(SYMLINK, &prev, &name);
            prev = format!("ch{i}");
            if i >= 30 {
                out.push((i, s.c.stat_raw(&name).map(|_| ())));
            }
        }
        for i in 0..34 {
            let _ = s.c.unlink(format!("/tmp/ch{i}"));
        }
        out
    });
    s.rec("symlink to / then ..", {
        let _ = s.path2(SYMLINK, "/", "/tmp/toroot");
        let a = sv(s.c.stat_raw("/tmp/toroot"));
        let b = s.names("/tmp/toroot/");
        let c = sv(s.c.stat_raw("/tmp/toroot/tmp"));
        let d = s.c.unlink("/tmp/toroot");
        (a, b, c, d)
    });
    s.rec("symlink long expansion", {
        let t = format!("/{}", "/".repeat(1000));
        let _ = s.path2(SYMLINK, &t, "/tmp/lexp");
        let a = sv(s.c.stat_raw("/tmp/lexp"));
        let b = sv(s.c.stat_raw(format!("/tmp/lexp/{}", "x".repeat(30))));
        let c = s.c.unlink("/tmp/lexp");
        (a, b, c)
    });
    s.rec("symlink empty follow", sv(s.c.stat_raw("/tmp/sle")));
    s.rec("readlink trailing slash", s.readlink("/tmp/sl/", 100));
    s.rec("symlink loop", s.path2(SYMLINK, "/tmp/loop", "/tmp/loop"));
    s.rec("stat loop", sv(s.c.stat_raw("/tmp/loop")));
    s.rec("open loop", s.c.open("/tmp/loop", 0, 0));
    s.rec("lstat loop", sv(s.c.lstat_raw("/tmp/loop")));
    s.rec("symlink to dir", s.path2(SYMLINK, "r2", "/tmp/sd"));
    s.rec("stat sd/", sv(s.c.stat_raw("/tmp/sd/")));
    s.rec("lstat sd/", sv(s.c.lstat_raw("/tmp/sd/")));
    s.rec("chdir sd", s.c.chdir("/tmp/sd"));
    s.rec(
        "getcwd via sd",
        s.c.getcwd()
            .map(|p| String::from_utf8_lossy(&p).into_owned()),
    );
    s.rec("chdir back", s.c.chdir("/tmp"));
    s.rec("mkdir through symlink", s.c.mkdir("/tmp/sd/inner", 0o755));
    s.rec("rmdir symlink", s.c.rmdir("/tmp/sd"));
    s.rec("rmdir symlink/", s.c.rmdir("/tmp/sd/"));
    s.rec("unlink symlink/", s.c.unlink("/tmp/sd/"));
    s.rec("rename symlink", s.c.rename("/tmp/sd", "/tmp/sd2"));
    s.rec("link to symlink", s.path2(LINK, "/tmp/sd2", "/tmp/sdl"));
    s.rec("lstat link to symlink", sv(s.c.lstat_raw("/tmp/sdl")));
    s.rec("unlink symlink", s.c.unlink("/tmp/sd2"));
    s.rec("access symlink", s.c.access("/tmp/sl", misc::R_OK));
    s.rec("readdir with links", s.names("/tmp"));
    s.rec("long symlink target", {
        let t = "t".repeat(1023);
        s.path2(SYMLINK, &t, "/tmp/lt")
    });
    s.rec("longer symlink target", {
        let t = "t".repeat(1024);
        s.path2(SYMLINK, &t, "/tmp/lt2")
    });
    s.rec("lstat lt", sv(s.c.lstat_raw("/tmp/lt")));

    // ---- chmod, truncate, utimes ----
    s.rec("chmod", s.chmod("/tmp/b", 0o4751));
    s.rec("chmod stat", sv(s.c.stat_raw("/tmp/b")));
    s.rec("chmod type bits", s.chmod("/tmp/b", 0o170644));
    s.rec("chmod type bits stat", sv(s.c.stat_raw("/tmp/b")));
    s.rec("chmod none", s.chmod("/tmp/none", 0o644));
    s.rec("chmod via symlink", s.chmod("/tmp/sl", 0o600));
    s.rec(
        "chmod via symlink stat",
        (sv(s.c.stat_raw("/tmp/b")), sv(s.c.lstat_raw("/tmp/sl"))),
    );
    s.rec("access X_OK", s.c.access("/tmp/b", misc::X_OK));
    s.rec("access bad mode", s.c.access("/tmp/b", 8));
    s.rec("fchmod", {
        let f = s.c.open("/tmp/b", 0, 0).unwrap_or(-1);
        let r = s.call(Call::new(FCHMOD).int(f).int(0o640));
        let _ = s.c.close(f);
        (r, sv(s.c.stat_raw("/tmp/b")))
    });
    s.rec("fchmod pipe", {
        let (r, w) = s.c.pipe().unwrap_or((-1, -1));
        let x = s.call(Call::new(FCHMOD).int(r).int(0o640));
        let _ = s.c.close(r);
        let _ = s.c.close(w);
        x
    });
    s.rec(
        "fchmod bad fd",
        s.call(Call::new(FCHMOD).int(99).int(0o640)),
    );
    s.rec("truncate", s.truncate("/tmp/b", 10));
    s.rec("truncate stat", sv(s.c.stat_raw("/tmp/b")));
    s.rec("truncate neg", s.truncate("/tmp/b", -1));
    s.rec("truncate dir", s.truncate("/tmp/r2", 0));
    s.rec("truncate none", s.truncate("/tmp/none", 0));
    s.rec("truncate via symlink", s.truncate("/tmp/sl", 2));
    s.rec("truncate 8192", s.truncate("/tmp/b", 8192));
    s.rec("truncate 8192 stat", sv(s.c.stat_raw("/tmp/b")));
    s.rec("truncate 8193 stat", {
        let _ = s.truncate("/tmp/b", 8193);
        sv(s.c.stat_raw("/tmp/b"))
    });
    s.rec(
        "content after truncate",
        s.content("/tmp/b").map(|v| v.len()),
    );
    s.rec(
        "utimes",
        s.utimes("/tmp/b", Some([(1_000_000_000, 5), (1_000_000_100, 7)])),
    );
    s.rec(
        "utimes times",
        s.c.stat_raw("/tmp/b").map(|st| {
            (
                st.st_atim.sec.get(),
                st.st_atim.nsec.get(),
                st.st_mtim.sec.get(),
                st.st_mtim.nsec.get(),
            )
        }),
    );
    s.rec(
        "utimes bad usec",
        s.utimes("/tmp/b", Some([(0, 1_000_000), (0, 0)])),
    );
    s.rec(
        "utimes neg usec",
        s.utimes("/tmp/b", Some([(0, -1), (0, 0)])),
    );
    s.rec("utimes now", s.utimes("/tmp/b", None));
    s.rec(
        "utimes now changed",
        s.c.stat_raw("/tmp/b")
            .map(|st| st.st_mtim.sec.get() != 1_000_000_100),
    );
    s.rec("utimes none", s.utimes("/tmp/none", None));
    s.rec("utimes -1 sec", {
        let _ = s.utimes("/tmp/b", Some([(500, 0), (600, 0)]));
        let r = s.utimes("/tmp/b", Some([(-1, 0), (700, 3)]));
        (
            r,
            s.c.stat_raw("/tmp/b").map(|st| {
                (
                    st.st_atim.sec.get(),
                    st.st_atim.nsec.get(),
                    st.st_mtim.sec.get(),
                    st.st_mtim.nsec.get(),
                )
            }),
        )
    });

    // ---- /dev/null ----
    let nfd = s.c.open("/dev/null", RW, 0).unwrap_or(-1);
    s.rec("null fstat", sv(s.c.fstat_raw(nfd)));
    s.rec("null write", s.c.write(nfd, b"abc"));
    s.rec("null read", s.c.read(nfd, &mut b));
    s.rec("null lseek", s.c.lseek(nfd, 10, misc::SEEK_SET));
    s.rec("null lseek end", s.c.lseek(nfd, 0, misc::SEEK_END));
    s.rec("null pread", s.c.pread(nfd, &mut b, 0));
    s.rec("null pwrite", s.c.pwrite(nfd, b"x", -5));
    s.rec("null pread neg", s.c.pread(nfd, &mut b, -5));
    s.rec("null lseek neg", s.c.lseek(nfd, -10, misc::SEEK_SET));
    s.rec("null lseek cur", s.c.lseek(nfd, 0, misc::SEEK_CUR));
    s.rec("null ftruncate", s.c.ftruncate(nfd, 0));
    s.rec("null fsync", s.c.fsync(nfd));
    s.rec("null fchdir", s.c.fchdir(nfd));
    let _ = s.c.close(nfd);
    s.rec("null O_TRUNC|O_CREAT", {
        let r = s.c.open("/dev/null", CR | oflag::O_TRUNC | RW, 0o600);
        if let Ok(f) = r {
            let _ = s.c.close(f);
        }
        r.map(|_| ())
    });
    s.rec("unlink null", s.c.unlink("/dev/null/"));
    s.rec("mkdir in /dev", {
        let r = s.c.mkdir("/dev/xx", 0o755);
        (r, sv(s.c.stat_raw("/dev/xx")), s.c.rmdir("/dev/xx"))
    });

    // ---- pipes ----
    let (r, w) = s.c.pipe().unwrap_or((-1, -1));
    s.rec("pipe fds", (r, w));
    s.rec("pipe fstat", sv(s.c.fstat_raw(r)));
    s.rec("pipe fstat w", sv(s.c.fstat_raw(w)));
    s.rec("pipe write", s.c.write(w, b"xyz"));
    s.rec("pipe fstat size", sv(s.c.fstat_raw(r)));
    s.rec(
        "pipe F_GETFL",
        (
            s.c.fcntl(r, fcntl::F_GETFL, 0),
            s.c.fcntl(w, fcntl::F_GETFL, 0),
        ),
    );
    s.rec("pipe lseek", s.c.lseek(r, 0, misc::SEEK_CUR));
    s.rec("pipe pread", s.c.pread(r, &mut b, 0));
    s.rec("pipe fsync", s.c.fsync(r));
    s.rec("pipe ftruncate", s.c.ftruncate(w, 0));
    s.rec("pipe fchdir", s.c.fchdir(r));
    s.rec("pipe getdents", s.c.getdents(r, &mut [0u8; 512]));
    s.rec("pipe read wrong end", s.c.read(w, &mut b));
    s.rec("pipe write wrong end", s.c.write(r, b"x"));
    s.rec("pipe read", s.c.read(r, &mut b).map(|n| b[..n].to_vec()));
    s.rec("pipe nonblock read", {
        let _ = s.c.fcntl(r, fcntl::F_SETFL, oflag::O_NONBLOCK as i64);
        s.c.read(r, &mut b)
    });
    s.rec("pipe read 0 bytes", s.c.read(r, &mut []));
    let _ = s.c.close(r);
    s.take_sig();
    s.rec("pipe EPIPE", (s.c.write(w, b"x"), s.take_sig()));
    s.rec("pipe EPIPE 0 bytes", (s.c.write(w, b""), s.take_sig()));
    let _ = s.c.close(w);
    s.rec("pipe2 bad flags", s.c.pipe2(oflag::O_APPEND));
    s.rec("pipe2 cloexec", {
        let p = s.c.pipe2(oflag::O_CLOEXEC | oflag::O_NONBLOCK);
        let res = p.map(|(r, w)| {
            let x = (
                s.c.fcntl(r, fcntl::F_GETFD, 0),
                s.c.fcntl(w, fcntl::F_GETFL, 0),
            );
            let _ = s.c.close(r);
            let _ = s.c.close(w);
            x
        });
        (p, res)
    });

    // ---- unlinked and removed, still open ----
    s.rec("unlinked file fstat", {
        let f = s.c.open("/tmp/gone", CR | RW, 0o600).unwrap_or(-1);
        let _ = s.c.write(f, b"still here");
        let u = s.c.unlink("/tmp/gone");
        let st = sv(s.c.fstat_raw(f));
        let r = s.c.pread(f, &mut [0u8; 5], 6);
        let _ = s.c.close(f);
        (u, st, r)
    });
    s.rec("removed dir fstat", {
        let _ = s.c.mkdir("/tmp/gd", 0o755);
        let f = s.c.open("/tmp/gd", 0, 0).unwrap_or(-1);
        let r = s.c.rmdir("/tmp/gd");
        let st = sv(s.c.fstat_raw(f));
        let g = s.c.getdents(f, &mut [0u8; 512]);
        let _ = s.c.close(f);
        (r, st, g)
    });
    s.rec("rename over hard link", {
        let f = s.c.open("/tmp/h1", CR | RW, 0o600).unwrap_or(-1);
        let _ = s.c.close(f);
        let l = s.path2(LINK, "/tmp/h1", "/tmp/h2");
        let r = s.c.rename("/tmp/h1", "/tmp/h2");
        let a = (sv(s.c.stat_raw("/tmp/h1")), sv(s.c.stat_raw("/tmp/h2")));
        let _ = s.c.unlink("/tmp/h2");
        (l, r, a)
    });
    s.rec("access W_OK R_OK", {
        (
            s.c.access("/tmp/b", misc::W_OK | misc::R_OK),
            s.c.access("/dev/null", misc::W_OK),
            s.c.access("/tmp", misc::X_OK | misc::W_OK),
        )
    });

    // ---- dirent numbers agree with stat ----
    s.rec("dirent filenos", {
        let _ = s.c.mkdir("/tmp/fn", 0o755);
        if let Ok(f) = s.c.open("/tmp/fn/x", CR | RW, 0o644) {
            let _ = s.c.close(f);
        }
        let ents = s.c.read_dir_raw("/tmp/fn").unwrap_or_default();
        let ino = |e: &Dirent| e.fileno;
        let by = |n: &[u8]| ents.iter().find(|e| e.name == n).map(ino);
        let root_ents = s.c.read_dir_raw("/").unwrap_or_default();
        let tmp_in_root = root_ents.iter().find(|e| e.name == b"tmp").map(ino);
        (
            by(b".") == Some(s.ino("/tmp/fn")),
            by(b"..") == Some(s.ino("/tmp")),
            by(b"x") == Some(s.ino("/tmp/fn/x")),
            // The root's entry for the mount point names the covered
            // directory, not the tmpfs root.
            tmp_in_root == Some(s.ino("/tmp")),
        )
    });
    s.rec("pwrite near i64::MAX", {
        let f = s.c.open("/tmp/b", RW, 0).unwrap_or(-1);
        s.take_sig();
        let a = (s.c.pwrite(f, b"0123456789", i64::MAX - 2), s.take_sig());
        let b = s.c.lseek(f, i64::MAX - 2, misc::SEEK_SET);
        let c = (s.c.write(f, b"0123456789"), s.take_sig());
        let d = s.c.lseek(f, 10, misc::SEEK_CUR);
        let e = (s.c.pwrite(f, b"", i64::MAX), s.take_sig());
        let g = (s.c.pwrite(f, b"x", i64::MAX), s.take_sig());
        let _ = s.c.close(f);
        let n = s.c.open("/dev/null", RW, 0).unwrap_or(-1);
        let h = (s.c.pwrite(n, b"xy", i64::MAX), s.take_sig());
        let _ = s.c.close(n);
        (a, b, c, d, e, g, h)
    });

    // ---- the other fcntl commands ----
    s.rec("F_MAXFD and F_CLOSEM", {
        let a = s.c.fcntl(99, 11, 0);
        let fds: Vec<i32> = (0..4)
            .map(|_| s.c.open("/dev/null", 0, 0).unwrap_or(-1))
            .collect();
        let b = s.c.fcntl(-1, 11, 0);
        let c = s.c.fcntl(fds[1], 10, 0);
        let d = s.c.fcntl(0, 11, 0);
        let e = s.c.fcntl(-1, 10, 0);
        let f = s.c.fcntl(77, 10, 0);
        let g = s.c.fstat_raw(fds[0]).is_ok();
        let _ = s.c.close(fds[0]);
        (a, fds, b, c, d, e, f, g)
    });
    s.rec("F_GETNOSIGPIPE F_SETNOSIGPIPE", {
        let (r, w) = s.c.pipe().unwrap_or((-1, -1));
        let a = s.c.fcntl(w, 13, 0);
        let b = s.c.fcntl(w, 14, 5);
        let c = (s.c.fcntl(w, 13, 0), s.c.fcntl(w, fcntl::F_GETFL, 0));
        let _ = s.c.close(r);
        s.take_sig();
        let d = (s.c.write(w, b"x"), s.take_sig());
        let e = s.c.fcntl(w, 14, 0);
        let g = (s.c.write(w, b"x"), s.take_sig());
        let _ = s.c.close(w);
        (a, b, c, d, e, g, s.c.fcntl(99, 13, 0))
    });
    s.rec("F_GETOWN F_SETOWN", {
        let f = s.c.open("/tmp/b", RW, 0).unwrap_or(-1);
        let (r, w) = s.c.pipe().unwrap_or((-1, -1));
        let n = s.c.open("/dev/null", RW, 0).unwrap_or(-1);
        let root = s.c.open("/", 0, 0).unwrap_or(-1);
        let tdir = s.c.open("/tmp", 0, 0).unwrap_or(-1);
        let rumpfs_dir = (s.c.fcntl(root, 5, 0), s.c.fcntl(tdir, 5, 0));
        let _ = s.c.close(root);
        let _ = s.c.close(tdir);
        let bad_owner = (
            s.c.fcntl(r, 6, 9999),
            s.c.fcntl(r, 6, -2),
            s.c.fcntl(r, 6, -9999),
        );
        let out = (
            rumpfs_dir,
            bad_owner,
            (s.c.fcntl(f, 5, 0), s.c.fcntl(f, 6, 2)),
            (s.c.fcntl(r, 5, 0), s.c.fcntl(r, 6, 2), s.c.fcntl(r, 5, 0)),
            (s.c.fcntl(1, 5, 0), s.c.fcntl(1, 6, 2)),
            (s.c.fcntl(n, 5, 0), s.c.fcntl(n, 6, 2)),
        );
        for x in [f, r, w, n] {
            let _ = s.c.close(x);
        }
        out
    });
    s.rec("F_GETLK on a file", {
        let f = s.c.open("/tmp/b", RW, 0).unwrap_or(-1);
        // struct flock: off_t l_start, off_t l_len, pid_t l_pid,
        // short l_type, short l_whence.
        let mut fl = [0u8; 24];
        fl[20..22].copy_from_slice(&3i16.to_le_bytes());
        let a = s.call(Call::new(Sysnum::FCNTL).int(f).int(7).inout(&mut fl));
        let got = fl;
        let mut fl2 = [0u8; 24];
        fl2[20..22].copy_from_slice(&3i16.to_le_bytes());
        let b = s.call(Call::new(Sysnum::FCNTL).int(f).int(8).inout(&mut fl2));
        let (r, w) = s.c.pipe().unwrap_or((-1, -1));
        let c = s.call(Call::new(Sysnum::FCNTL).int(r).int(8).inout(&mut fl2));
        for x in [f, r, w] {
            let _ = s.c.close(x);
        }
        (a, got, b, c)
    });

    // ---- pipe sizes ----
    s.rec("pipe nonblocking big writes", {
        let (r, w) = s.c.pipe2(oflag::O_NONBLOCK).unwrap_or((-1, -1));
        let big = vec![7u8; 100_000];
        let a = s.c.write(w, &big[..16384]);
        let b = s.c.write(w, &big[..1]);
        let st = sv(s.c.fstat_raw(w));
        let mut sink = vec![0u8; 200_000];
        let c = s.c.read(r, &mut sink);
        let d = s.c.write(w, &big);
        let st2 = sv(s.c.fstat_raw(r));
        let e = s.c.read(r, &mut sink);
        let f = s.c.write(w, &big[..600]);
        let g = s.c.write(w, &big);
        let _ = s.c.close(r);
        let _ = s.c.close(w);
        (a, b, st, c, d, st2, e, f, g)
    });

    // ---- access ----
    s.rec("access /", s.c.access("/", misc::X_OK));
    s.rec("access none", s.c.access("/tmp/none", 0));
    s.rec("access null X_OK", s.c.access("/dev/null", misc::X_OK));

    // ---- more edges ----
    s.rec("access none bad mode", s.c.access("/tmp/none", 8));
    s.rec("getcwd sizes", {
        let mut b2 = [0u8; 2];
        let mut b1 = [0u8; 1];
        (
            s.call(Call::new(Sysnum::GETCWD).output(&mut b2).arg(2)),
            s.call(Call::new(Sysnum::GETCWD).output(&mut b1).arg(1)),
        )
    });
    s.rec("dir fd fcntl", {
        let f = s.c.open("/tmp", 0, 0).unwrap_or(-1);
        let a =
            s.c.fcntl(f, fcntl::F_SETFL, (oflag::O_NONBLOCK | 0x40) as i64);
        let b = s.c.fcntl(f, fcntl::F_GETFL, 0);
        let c = s.c.lseek(f, 0, misc::SEEK_END);
        let d = s.c.lseek(f, 3, misc::SEEK_SET);
        let e = s.c.getdents(f, &mut [0u8; 512]);
        let _ = s.c.close(f);
        (a, b, c, d, e)
    });
    s.rec("root dir fd fcntl", {
        let f = s.c.open("/", 0, 0).unwrap_or(-1);
        let a = s.c.fcntl(f, fcntl::F_SETFL, oflag::O_APPEND as i64);
        let b = s.c.lseek(f, 0, misc::SEEK_END);
        let _ = s.c.close(f);
        (a, b)
    });
    s.rec("read huge count", {
        let f = s.c.open("/tmp/b", 0, 0).unwrap_or(-1);
        let mut b = [0u8; 4];
        let r = s.call(
            Call::new(Sysnum::READ)
                .int(f)
                .output(&mut b)
                .arg(u64::MAX / 2 + 1),
        );
        let r2 = s.call(Call::new(Sysnum::READ).int(99).arg(0).arg(u64::MAX));
        let _ = s.c.close(f);
        (r, r2)
    });
    s.rec(
        "mkdir over file",
        (s.c.mkdir("/tmp/b", 0o755), s.c.mkdir("/tmp/b/x", 0o755)),
    );
    s.rec("chdir empty", s.c.chdir(""));
    s.rec("fchdir removed dir", {
        let _ = s.c.mkdir("/tmp/fr", 0o755);
        let f = s.c.open("/tmp/fr", 0, 0).unwrap_or(-1);
        let _ = s.c.rmdir("/tmp/fr");
        let a = s.c.fchdir(f);
        let b =
            s.c.getcwd()
                .map(|p| String::from_utf8_lossy(&p).into_owned());
        let _ = s.c.chdir("/tmp");
        let _ = s.c.close(f);
        (a, b)
    });
    s.rec("readv zero-length iovec", {
        let f = s.c.open("/tmp/b", 0, 0).unwrap_or(-1);
        let (mut x, mut y) = ([0u8; 0], [0u8; 3]);
        let r = s.c.readv(f, &mut [&mut x, &mut y]).map(|n| (n, y));
        let _ = s.c.close(f);
        r
    });
    s.rec(
        "open O_DIRECTORY null",
        s.c.open("/dev/null", oflag::O_DIRECTORY, 0),
    );
    s.rec("open O_EXCL without O_CREAT", {
        let r = s.c.open("/tmp/b", oflag::O_EXCL, 0);
        if let Ok(f) = r {
            let _ = s.c.close(f);
        }
        r.map(|_| ())
    });
    s.rec("rename dir to rumpfs", s.c.rename("/tmp/r2", "/r2"));
    s.rec("link to existing dir", s.path2(LINK, "/tmp/b", "/tmp/r2"));
    s.rec(
        "symlink trailing slash",
        s.path2(SYMLINK, "x", "/tmp/newsl/"),
    );
    s.rec("truncate symlink to dir", {
        let _ = s.path2(SYMLINK, "r2", "/tmp/tsd");
        let r = s.truncate("/tmp/tsd", 0);
        let _ = s.c.unlink("/tmp/tsd");
        r
    });
    s.rec("utimes and chmod null", {
        let a = s.utimes("/dev/null", None);
        let b = s.chmod("/dev/null", 0o666);
        let st = sv(s.c.stat_raw("/dev/null"));
        let c = s.chmod("/dev/null", 0o644);
        (a, b, st, c)
    });
    s.rec("mount odd args", {
        let _ = s.c.mkdir("/tmp/mo", 0o755);
        let (ty, p) = (cs("tmpfs"), cs("/tmp/mo"));
        let mut args = [0u8; 40];
        args[..4].copy_from_slice(&1i32.to_le_bytes());
        args[24..28].copy_from_slice(&u32::MAX.to_le_bytes());
        let a = s.call(
            Call::new(MOUNT)
                .cstr(&ty)
                .cstr(&p)
                .int(0)
                .input(&args)
                .arg(40),
        );
        args[24..28].copy_from_slice(&0u32.to_le_bytes());
        args[28..32].copy_from_slice(&5u32.to_le_bytes());
        args[32..36].copy_from_slice(&0o170_755u32.to_le_bytes());
        let b = s.call(
            Call::new(MOUNT)
                .cstr(&ty)
                .cstr(&p)
                .int(0)
                .input(&args)
                .arg(40),
        );
        let st = sv(s.c.stat_raw("/tmp/mo"));
        let big = [0u8; 64];
        let mut big = big;
        big[..40].copy_from_slice(&args);
        let c = s.call(
            Call::new(MOUNT)
                .cstr(&ty)
                .cstr(&p)
                .int(0)
                .input(&big)
                .arg(64),
        );
        let d = s.c.rmdir("/tmp/mo");
        (a, b, st, c, d)
    });
    s.rec("mount through symlink to file", {
        let _ = s.path2(SYMLINK, "b", "/tmp/msl");
        let r = s.mount_tmpfs("/tmp/msl", 1, 40);
        let _ = s.c.unlink("/tmp/msl");
        r
    });
    s.rec("getdents after removal", {
        let _ = s.c.mkdir("/tmp/gr", 0o755);
        for n in ["a", "b", "c"] {
            if let Ok(f) = s.c.open(format!("/tmp/gr/{n}"), CR | RW, 0o644) {
                let _ = s.c.close(f);
            }
        }
        let f = s.c.open("/tmp/gr", 0, 0).unwrap_or(-1);
        let mut buf = [0u8; 48];
        let a = s.c.getdents(f, &mut buf).map(|n| names_of(&buf[..n]));
        let o = s.c.lseek(f, 0, misc::SEEK_CUR);
        let _ = s.c.unlink("/tmp/gr/b");
        let b = s.c.getdents(f, &mut [0u8; 512]);
        let _ = s.c.unlink("/tmp/gr/a");
        let _ = s.c.lseek(f, 0, misc::SEEK_SET);
        let c = s.c.getdents(f, &mut buf).map(|n| names_of(&buf[..n]));
        let _ = s.c.close(f);
        (a, o, b, c)
    });
    s.rec("F_SETFL O_ASYNC pipe and file", {
        let (r, w) = s.c.pipe().unwrap_or((-1, -1));
        let a = s.c.fcntl(r, fcntl::F_SETFL, 0x40);
        let b = s.c.fcntl(r, fcntl::F_GETFL, 0);
        let _ = s.c.close(r);
        let _ = s.c.close(w);
        let f = s.c.open("/tmp/b", RW, 0).unwrap_or(-1);
        let c = s.c.fcntl(f, fcntl::F_SETFL, 0x40);
        let d = s.c.fcntl(f, fcntl::F_GETFL, 0);
        let _ = s.c.close(f);
        (a, b, c, d)
    });
    s.rec("null O_WRONLY|O_APPEND F_GETFL", {
        let f =
            s.c.open("/dev/null", oflag::O_WRONLY | oflag::O_APPEND, 0)
                .unwrap_or(-1);
        let r = s.c.fcntl(f, fcntl::F_GETFL, 0);
        let _ = s.c.close(f);
        r
    });
    s.rec("close console then open", {
        let a = s.c.close(0);
        let f = s.c.open("/dev/null", 0, 0);
        let b = s.c.dup2(1, 0);
        if let Ok(f) = f {
            if f != 0 {
                let _ = s.c.close(f);
            }
        }
        (a, f, b, sv(s.c.fstat_raw(0)))
    });
    s.rec("write to dir via O_RDONLY fd", {
        let f = s.c.open("/tmp", 0, 0).unwrap_or(-1);
        let r = s.c.write(f, b"x");
        let _ = s.c.close(f);
        r
    });
    s.rec(
        "stat trailing dot dot on file",
        sv(s.c.stat_raw("/tmp/b/..")),
    );
    s.rec(
        "mkdir trailing slashes",
        (s.c.mkdir("/tmp/ms//", 0o755), s.c.rmdir("/tmp/ms//")),
    );
    s.rec("unlink dotdot root", s.c.unlink("/.."));
    s.rec("rename into dev", s.c.rename("/tmp/b", "/dev/b"));
    s.rec("rename dev entry", s.c.rename("/dev/zero", "/dev/zero2"));

    // ---- processes ----
    s.rec("kill self 0", s.c.kill(0, 0));
    s.rec("kill bad sig", s.c.kill(0, 64));
    s.rec("kill no such", s.c.kill(9999, 0));
    s.rec("kill neg", s.c.kill(-1, 0));
    s.rec("kill init 0", s.c.kill(1, 0));

    // Fork: prefork and claim it from a second connection in this process.
    let keep = s.c.open("/tmp/b", RW, 0).unwrap_or(-1);
    let _ = s.c.lseek(keep, 3, misc::SEEK_SET);
    let cookie = s.c.prefork();
    match cookie {
        Ok(cookie) => {
            let sigs = Arc::new(AtomicU32::new(0));
            let child = Client::fork_child(&s.url, cookie, opts("forked", &sigs));
            match child {
                Ok(ch) => {
                    let (ppid, cpid) = (s.c.getpid().ok(), ch.getpid().ok());
                    s.rec("fork child pid - parent pid", {
                        cpid.zip(ppid).map(|(c, p)| c.0 - p.0)
                    });
                    s.rec("fork child getppid", ch.getppid());
                    s.rec("fork child getpid ppid", cpid.map(|c| c.1));
                    s.rec("fork child shares offset", {
                        let _ = ch.lseek(keep, 5, misc::SEEK_SET);
                        s.c.lseek(keep, 0, misc::SEEK_CUR)
                    });
                    s.rec("fork child console", sv(ch.fstat_raw(1)));
                    s.rec(
                        "fork child cwd",
                        ch.getcwd()
                            .map(|p| String::from_utf8_lossy(&p).into_owned()),
                    );
                    s.rec("fork child umask", ch.umask(0o022));
                    s.rec(
                        "fork child kill parent 0",
                        ch.kill(ppid.map_or(0, |p| p.0), 0),
                    );
                    s.rec("fork child close keep", ch.close(keep));
                    s.rec("parent keep still open", s.c.fstat_raw(keep).is_ok());
                    let _ = ch.open("/tmp/forkfile", CR | RW, 0o644);
                    s.rec("fork child first free fd", ch.open("/tmp/b", 0, 0));
                    ch.disconnect();
                }
                Err(e) => s.rec("fork child", e.to_string()),
            }
        }
        Err(e) => s.rec("prefork", e.to_string()),
    }
    let _ = s.c.close(keep);

    // A second guest: a fresh table with the console.
    let sigs = Arc::new(AtomicU32::new(0));
    match Client::connect_with(&s.url, opts("second", &sigs)) {
        Ok(g) => {
            let (mine, theirs) = (s.c.getpid().ok(), g.getpid().ok());
            s.rec("second guest pid delta", {
                theirs.zip(mine).map(|(t, m)| t.0 - m.0)
            });
            s.rec("second guest ppid", theirs.map(|t| t.1));
            s.rec("second guest first open", g.open("/tmp/b", 0, 0));
            s.rec(
                "second guest cwd",
                g.getcwd().map(|p| String::from_utf8_lossy(&p).into_owned()),
            );
            s.rec("second guest umask", g.umask(0o022));
            g.disconnect();
        }
        Err(e) => s.rec("second guest", e.to_string()),
    }

    // ---- mmap ----
    s.rec("mmap file", {
        let f = s.c.open("/tmp/b", 0, 0).unwrap_or(-1);
        let r = s.call(
            Call::new(Sysnum::MMAP)
                .arg(0)
                .arg(4096)
                .int(1)
                .int(misc::MAP_PRIVATE as i32)
                .int(f)
                .pad()
                .off(0),
        );
        let _ = s.c.close(f);
        r.map(|_| ())
    });
    s.rec("mmap anon", s.c.mmap_anon(4096).map(|_| ()));

    // ---- descriptor exhaustion ----
    s.rec("EMFILE", {
        let mut opened = Vec::new();
        let err = loop {
            match s.c.open("/tmp/b", 0, 0) {
                Ok(f) => opened.push(f),
                Err(e) => break e,
            }
            if opened.len() > 5000 {
                break Errno::EIO;
            }
        };
        let last = opened.last().copied();
        for f in opened {
            let _ = s.c.close(f);
        }
        (err, last)
    });

    // ---- unknown calls ----
    s.rec("syscall 0", s.call(Call::new(0)));
    s.rec("syscall 999", s.call(Call::new(999)));
}

/// Steps where the model differs on purpose (see the model's module docs),
/// with the reason. They are reported, not failed.
const KNOWN: &[(&str, &str)] = &[
    (
        "getdents / small",
        "rumpfs's readdir moves the offset back one entry when the buffer fills \
         (a buffer that holds one entry returns it forever); the model moves past \
         what it returned",
    ),
    (
        "getdents / tiny",
        "rumpfs's readdir sets the offset to -1 (as an unsigned int) when no entry fits; \
         the model leaves it",
    ),
    (
        "mmap file",
        "mmap is the model's extension (MAP_ANON only, EINVAL otherwise); stock rump kernels lack it",
    ),
    ("mmap anon", "mmap is the model's extension; stock rump kernels lack it"),
    (
        "F_GETLK on a file",
        "record locks are not modelled: EINVAL where a stock kernel's vnodes take them",
    ),
    (
        "kill self 0",
        "kill is the model's extension; stock rump kernels lack it",
    ),
    ("kill bad sig", "kill is the model's extension"),
    ("kill no such", "kill is the model's extension"),
    ("kill neg", "kill is the model's extension"),
    ("kill init 0", "kill is the model's extension"),
    ("fork child kill parent 0", "kill is the model's extension"),
];

#[test]
fn model_matches_stock_rump_kernel() {
    let Some(prefix) = sp_testkit::rump::prefix() else {
        return;
    };
    let verbose = std::env::var_os("SP_DIFF_VERBOSE").is_some();
    let stock = sp_testkit::rump::RumpServer::start(&prefix, None);
    // The model as a stock rump_server boots: /tmp a rumpfs directory.
    let kernel = Arc::new(ModelKernel::boot(Boot {
        tmpfs_on_tmp: false,
        ..Boot::default()
    }));
    let model_srv = TestServer::start(kernel, Transport::Unix);

    let mut a = Side::new(&stock.url);
    script(&mut a);
    let mut b = Side::new(&model_srv.url());
    script(&mut b);

    let mut diffs = Vec::new();
    assert_eq!(a.log.len(), b.log.len(), "both sides ran the same steps");
    for ((label, want), (mlabel, got)) in a.log.iter().zip(&b.log) {
        assert_eq!(label, mlabel);
        let known = KNOWN.iter().find(|(l, _)| l == label).map(|(_, why)| why);
        if verbose {
            println!("{label}: stock {want} | model {got}");
        }
        if want == got || label.starts_with("(info)") {
            continue;
        }
        match known {
            Some(why) => println!("known difference, {label}: {why}"),
            None => diffs.push(format!("{label}:\n    stock: {want}\n    model: {got}")),
        }
    }
    drop(stock);
    assert!(
        diffs.is_empty(),
        "{} differences:\n{}",
        diffs.len(),
        diffs.join("\n")
    );
}
