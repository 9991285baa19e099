//! [`StubKernel`]: the kernel the reference captures were recorded against.
//!
//! Replaying the captures in `vectors/` needs the same answers the recording
//! server gave (see `vectors/README.md`, "The kernel behind the captures"):
//!
//! - pids are handed out from 2 upward, one per new process: a guest makes
//!   one, a prefork makes one, and attaching a prefork makes one more (a fork
//!   of the prefork, which is then released), so a fork child sees pid 4;
//! - 20 getpid: `[pid, 0]`;
//! - 4 write(fd, buf, n): COPYIN of `n` bytes from `buf`, returns `n`;
//! - 3 read(fd, buf, n): COPYOUT of `n` bytes, byte `i` = `i & 0xff`,
//!   returns `n`;
//! - 5 open(path, flags, mode): COPYINSTR of at most 1024 bytes; `"/ok"`
//!   returns 3, anything else `ENOENT`;
//! - 1000 (test only): ANONMMAP of slot 0 bytes, returns the address;
//! - 1001 (test only): RAISE of signal slot 0, returns 0;
//! - anything else: `ENOSYS`.
//!
//! The stub ignores descriptors altogether. One guard of ours: read and
//! write refuse `n` above [`MAX_IO`] with `EINVAL` instead of allocating
//! whatever a client names. getpid runs inline (on the server's event
//! loop, see [`Kernel::runs_inline`]), and so do write and open when their
//! request carried the bytes they read ([`Kernel::runs_inline_with`]).

#![forbid(unsafe_code)]

use parking_lot::Mutex;
use sp_proto::abi::{Errno, SysResult, Sysnum};
use sp_proto::comm_name;
use sp_server::{Args, Carried, ClientPort, Kernel, Port, ProcId};
use std::collections::HashMap;
use std::fmt;

/// Syscall number of the stub's test-only anonmmap call.
pub const SYS_TEST_ANONMMAP: Sysnum = Sysnum(1000);
/// Syscall number of the stub's test-only raise call.
pub const SYS_TEST_RAISE: Sysnum = Sysnum(1001);
/// Largest read or write the stub serves (the captures use a few bytes).
pub const MAX_IO: u64 = 64 << 20;
/// Path buffer size of the stub's open (NetBSD's MAXPATHLEN).
const MAXPATHLEN: usize = 1024;

/// A process of the stub.
struct StubProc {
    pid: i32,
    comm: Vec<u8>,
    port: Option<Port>,
}

struct Inner {
    next_pid: i32,
    procs: HashMap<ProcId, StubProc>,
}

/// The stub kernel behind the reference captures (see the module doc).
pub struct StubKernel {
    inner: Mutex<Inner>,
}

impl StubKernel {
    /// A stub with no processes; the first one gets pid 2.
    pub fn new() -> StubKernel {
        StubKernel {
            inner: Mutex::new(Inner {
                next_pid: 2,
                procs: HashMap::new(),
            }),
        }
    }

    /// Number of live processes (guests, attached forks, unclaimed preforks).
    pub fn process_count(&self) -> usize {
        self.inner.lock().procs.len()
    }

    /// The name of the process with pid `pid`, if it is live.
    pub fn comm(&self, pid: i32) -> Option<Vec<u8>> {
        let g = self.inner.lock();
        g.procs
            .values()
            .find(|p| p.pid == pid)
            .map(|p| p.comm.clone())
    }

    /// Whether process `proc` is bound to a client.
    pub fn is_attached(&self, proc: ProcId) -> bool {
        self.inner
            .lock()
            .procs
            .get(&proc)
            .is_some_and(|p| p.port.is_some())
    }

    fn new_proc(&self, comm: Vec<u8>, port: Option<Port>) -> Result<ProcId, Errno> {
        let mut g = self.inner.lock();
        let pid = g.next_pid;
        g.next_pid = pid.checked_add(1).ok_or(Errno::EAGAIN)?;
        let id = ProcId(pid as u64);
        g.procs.insert(id, StubProc { pid, comm, port });
        Ok(id)
    }
}

impl Default for StubKernel {
    fn default() -> StubKernel {
        StubKernel::new()
    }
}

impl fmt::Debug for StubKernel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let g = self.inner.lock();
        f.debug_struct("StubKernel")
            .field("next_pid", &g.next_pid)
            .field("processes", &g.procs.len())
            .finish()
    }
}

impl Kernel for StubKernel {
    fn spawn_guest(&self, comm: &[u8], port: Port) -> Result<ProcId, Errno> {
        self.new_proc(comm_name(comm).to_vec(), Some(port))
    }

    fn prefork(&self, parent: ProcId) -> Result<ProcId, Errno> {
        let comm = {
            let g = self.inner.lock();
            g.procs.get(&parent).ok_or(Errno::ESRCH)?.comm.clone()
        };
        self.new_proc(comm, None)
    }

    fn attach_prefork(&self, prefork: ProcId, port: Port) -> Result<ProcId, Errno> {
        // As the reference: fork the prefork once more, release the prefork.
        let old = self
            .inner
            .lock()
            .procs
            .remove(&prefork)
            .ok_or(Errno::ESRCH)?;
        self.new_proc(old.comm, Some(port))
    }

    fn syscall(&self, proc: ProcId, sysnum: u32, args: &[u8], port: &dyn ClientPort) -> SysResult {
        let a = Args(args);
        let pid = {
            let g = self.inner.lock();
            g.procs.get(&proc).ok_or(Errno::ESRCH)?.pid
        };
        match Sysnum(sysnum) {
            Sysnum::GETPID => Ok([pid as i64, 0]),
            Sysnum::WRITE => {
                let (buf, n) = (a.u64(1)?, a.u64(2)?);
                if n > MAX_IO {
                    return Err(Errno::EINVAL);
                }
                // Taken as the port has it (the frame's own buffer, for a
                // large answer or segment): no zero-fill, no second copy.
                let data = port.copyin_vec(buf, n as usize)?;
                drop(data);
                Ok([n as i64, 0])
            }
            Sysnum::READ => {
                let (buf, n) = (a.u64(1)?, a.u64(2)?);
                if n > MAX_IO {
                    return Err(Errno::EINVAL);
                }
                let data: Vec<u8> = (0..n).map(|i| i as u8).collect();
                port.copyout(buf, &data)?;
                Ok([n as i64, 0])
            }
            Sysnum::OPEN => {
                let path = port.copyinstr(a.u64(0)?, MAXPATHLEN)?;
                if path == b"/ok" {
                    Ok([3, 0])
                } else {
                    Err(Errno::ENOENT)
                }
            }
            SYS_TEST_ANONMMAP => {
                let addr = port.anonmmap(a.u64(0)?)?;
                Ok([addr as i64, 0])
            }
            SYS_TEST_RAISE => {
                port.raise(a.u32(0)?)?;
                Ok([0, 0])
            }
            _ => Err(Errno::ENOSYS),
        }
    }

    fn lwpexit(&self, _proc: ProcId) {}

    fn execnotify(&self, proc: ProcId, comm: &[u8]) {
        if let Some(p) = self.inner.lock().procs.get_mut(&proc) {
            p.comm = comm_name(comm).to_vec();
        }
    }

    fn release(&self, proc: ProcId) {
        // Dropped after the lock: a port's destructor is not ours to run
        // under it.
        let gone = self.inner.lock().procs.remove(&proc);
        drop(gone);
    }

    fn pid(&self, proc: ProcId) -> i32 {
        self.inner.lock().procs.get(&proc).map_or(-1, |p| p.pid)
    }

    /// getpid touches only the stub's own table: the server runs it on its
    /// event loop, with no hand-off to a worker.
    fn runs_inline(&self, sysnum: u32) -> bool {
        Sysnum(sysnum) == Sysnum::GETPID
    }

    /// write and open, when their request carried the bytes they read
    /// (the extension): nothing to wait for, so inline too.
    fn runs_inline_with(&self, _: ProcId, sysnum: u32, args: &[u8], carried: &Carried<'_>) -> bool {
        let a = Args(args);
        match Sysnum(sysnum) {
            Sysnum::WRITE => match (a.u64(1), a.u64(2)) {
                (Ok(buf), Ok(n)) => n <= MAX_IO && carried.holds(buf, n),
                _ => false,
            },
            Sysnum::OPEN => a.u64(0).is_ok_and(|p| carried.holds_str(p, MAXPATHLEN)),
            _ => false,
        }
    }
}
