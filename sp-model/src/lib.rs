//! The kernels `sp serve` runs, behind `sp_server`'s [`Kernel`] seam:
//! [`ModelKernel`], a small in-memory kernel that answers as a stock NetBSD
//! rump kernel does, and [`stub::StubKernel`], the kernel the reference
//! captures were recorded against.
//!
//! ```
//! use sp_client::Client;
//! use sp_model::ModelKernel;
//! use sp_server::{Config, Server};
//! use std::sync::Arc;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let url = format!("unix://{}", dir.path().join("sp.sock").display());
//! let kernel = Arc::new(ModelKernel::new());
//! let server = Server::bind(&url, kernel.clone(), Config::default())?.spawn()?;
//!
//! let c = Client::connect(&url)?;
//! c.write_file("/tmp/hello", b"hi\n")?;
//! assert_eq!(c.read_file("/tmp/hello")?, b"hi\n");
//! assert_eq!(kernel.process_count(), 1, "the client's process (init aside)");
//! drop(c);
//! server.stop()?;
//! # Ok(())
//! # }
//! ```
//!
//! The model behaves like a stock NetBSD rump kernel (`rump_server
//! -lrumpvfs -lrumpfs_tmpfs`) wherever a sysproxy client can tell, and
//! sp-testkit's `tests/rump_differential.rs` checks that side by side with
//! a real one (set `SP_RUMP_PREFIX`). It has a process table (pid 1 is the
//! kernel's own `init`, guests and forks get pids from 2 up), per-process
//! descriptor tables, current directories and umasks, file systems (a
//! rumpfs root with `/dev/null`, `/dev/zero` and `/tmp`, and tmpfs mounts),
//! pipes that block and wake, and a console. Syscall numbers, argument
//! blocks, errno values, flags, `struct stat` and `struct dirent` are
//! NetBSD's. [`ModelKernel::new`] also mounts a tmpfs on `/tmp`, as a test
//! set-up on a stock kernel would; [`Boot`] can leave it out. Its unit
//! tests (`tests/model/`) call it directly, with sp-testkit's in-memory
//! client port in place of a socket.
//!
//! # Locks
//!
//! There is no kernel-wide lock held across a call. The process table is a
//! read-write lock taken only to find or change a process; each process has
//! its own lock (descriptor table, current directory, umask, name, client);
//! each open file description has an offset lock; the file system has one
//! lock; each pipe has its own lock and condition variable. The order is
//! process table → process → offset → file system / pipe, and no port
//! method is called with any of them held: data is copied in before a lock
//! is taken, and taken out under the lock and copied out after it is
//! dropped.
//!
//! # What a stock rump kernel does, and so the model
//!
//! - A new guest (forked off init, table cleared) finds the console on
//!   descriptors 0, 1 and 2 (one description, as `rump_consdev_init`
//!   makes): write-only (`F_GETFL` 1; reads `EBADF`), writes kept in
//!   [`ModelKernel::console_output`]; fstat a character device, mode 0600,
//!   all else 0; not a vnode, so lseek and pwrite `ESPIPE`, fsync, fchdir,
//!   fchmod, ftruncate and getdents `EINVAL`; `F_SETFL` of O_NONBLOCK or
//!   O_ASYNC `ENOTTY`. The first open returns 3.
//! - A fork: the prefork is forked once more at the fork handshake, its
//!   table shared, and released; so the child's pid is the parent's + 2
//!   (the prefork took one) and its ppid 1.
//! - 128 descriptors per process (`RLIMIT_NOFILE`): `EMFILE` past them,
//!   `EBADF` for dup2 beyond, `EINVAL` for `F_DUPFD` beyond.
//! - `open`: O_CREAT with O_DIRECTORY is `EINVAL`; O_TRUNC empties the file
//!   even when opened read-only; O_NOFOLLOW on a link is `EFTYPE` (79); the
//!   mode of a new file is `(mode & ~umask) & 07777 & ~S_ISTXT`; F_GETFL
//!   shows the access mode and NetBSD's FCNTLFLAGS (O_APPEND, O_ASYNC,
//!   O_SYNC, O_NONBLOCK, O_DSYNC, O_RSYNC, O_ALT_IO, O_DIRECT,
//!   O_NOSIGPIPE); mkdir's mode is `mode & 0777 & ~umask`, a symlink's
//!   `0777 & ~umask`.
//! - `F_SETFL` takes its argument plus one (NetBSD's FFLAGS: 3 is
//!   O_NONBLOCK); a rumpfs vnode refuses it (`EINVAL`, remote process), a
//!   device refuses O_NONBLOCK and O_ASYNC (`ENODEV`).
//! - `pipe2` keeps every flag it was given in F_GETFL, O_CLOEXEC included,
//!   and takes O_NOSIGPIPE (then a write without reader is `EPIPE` without
//!   SIGPIPE). A pipe's fstat: mode 0600 FIFO, size the buffered bytes, one
//!   block while any, st_dev, st_ino, st_nlink and st_rdev 0.
//! - `dup2`/`dup3` onto itself return the descriptor without looking at
//!   the flags; dup3 takes O_CLOEXEC and O_NONBLOCK (set on the
//!   description).
//! - `pwrite` on an O_APPEND description appends (NetBSD's `vn_write` sets
//!   IO_APPEND whatever the offset); an empty append write leaves the
//!   offset. `readv`/`writev` with no vector are `EINVAL` before the
//!   descriptor is looked at. `pread`/`pwrite` check access (`EBADF`), then
//!   the object (`ESPIPE`), then the offset (`EINVAL` if negative, but a
//!   device takes any offset, lseek too). `pread` past the end of a tmpfs
//!   file, even at 2^62, returns 0 (the issue's `EINVAL` is rumpfs's: a
//!   read more than a page past the end of a file on the root).
//! - A write whose end would pass `RLIMIT_FSIZE` (infinite: `i64::MAX`) is
//!   `EFBIG` with a SIGXFSZ (25) to the caller, before any COPYIN.
//! - `ftruncate`/`truncate`: a negative length is `EINVAL` before anything
//!   else. `st_rdev` is `NODEV` (all ones) for anything but a device.
//! - Pipes: 16384 bytes ([`PIPE_SIZE`]), grown to 64 KiB by a
//!   write of more than that into an empty pipe (32 such pipes at most in a
//!   kernel); fstat of the write end shows no bytes.
//! - link, symlink, readlink, chmod, fchmod, truncate, `__utimes50`
//!   (microseconds taken as they come, -1 seconds leaves a time) and
//!   `__mount50` of "tmpfs" (see [`num`]).
//! - unlink of a directory: `EPERM`; rmdir of `.`: `EINVAL`, of a `..`
//!   that is not a file system root: `ENOTEMPTY`; removing, renaming or
//!   creating over the root or a mount point: `EBUSY` or `EEXIST`.
//!
//! # Where the model differs on purpose
//!
//! - kill(2) is the model's extension (stock rump kernels answer
//!   `ENOSYS`): `pid` 0 means the caller; another pid without a client
//!   (init, a prefork not yet attached) takes the signal and drops it; an
//!   unknown or negative pid is `ESRCH`; a signal outside 0..64 is
//!   `EINVAL`.
//! - mmap(2) is the model's extension too (`ENOSYS` in a stock rump
//!   kernel): MAP_ANON only, answered with an ANONMMAP to the client;
//!   without MAP_ANON `EINVAL` (there is no memory to share with the
//!   client); MAP_ANON with an fd other than -1 or a length of 0: `EINVAL`.
//! - rumpfs's getdents moves the offset back one entry when the buffer
//!   fills (a buffer that holds one entry returns it forever) and sets it
//!   to -1 when nothing fits; the model's offset moves past what it
//!   returned and stays when nothing fits.
//! - A read past the end of a file on the root returns zeros up to the end
//!   of its last page and `EINVAL` beyond, as rumpfs; but a failed read
//!   leaves the offset where it was (rumpfs moves it by what it copied).
//! - POSIX record locks (fcntl F_GETLK, F_SETLK, F_SETLKW) are not
//!   modelled: after the `struct flock` is read and the descriptor checked,
//!   they answer `EINVAL` (a stock kernel's pipes and console do too; its
//!   vnodes take the locks). fcntl's other commands are NetBSD's: F_CLOSEM,
//!   F_MAXFD, F_GETNOSIGPIPE, F_SETNOSIGPIPE, and F_GETOWN/F_SETOWN as
//!   each object answers them (a pipe keeps an owner pid, the console
//!   `ENOTTY`, a device `ENODEV`, rumpfs `EOPNOTSUPP`, tmpfs -4, the
//!   EPASSTHROUGH that NetBSD lets out).
//! - Only "tmpfs" mounts, and only new ones: MNT_UPDATE and MNT_GETARGS are
//!   `EOPNOTSUPP`, a mount over the root directory `EBUSY`; there is no
//!   unmount. tmpfs's node limit (`ta_nodes_max`) is not kept; its size
//!   limit is, and so is the kernel's capacity for all files.
//! - Every process acts as root with uid and gid 0: permission bits are
//!   checked only by access(X_OK) (`EACCES` without an execute bit).
//! - Times are a logical clock (one tick per change, from 2023-11-14), not
//!   the host's; tmpfs updates atime on reads, rumpfs never. Inode numbers
//!   come from one counter (rumpfs's first ones match a stock kernel's:
//!   `/` 3, `/dev` 4, `/tmp` 5, `/dev/null` 6, `/dev/zero` 7), not from
//!   tmpfs node addresses.
//! - The console's output is kept in memory, not printed.
//!
//! # Other choices
//!
//! - A read whose COPYOUT fails returns `EFAULT`. For a file or directory
//!   the offset is put back (unless another call moved it meanwhile); bytes
//!   already taken out of a pipe are lost.
//! - Transfers above 1 MiB are split into several COPYINs or COPYOUTs. A
//!   write that fails part-way returns the error (as NetBSD does, except
//!   that `EINTR`/`EAGAIN` after some bytes return the count).
//! - Pipe writers wait for room, writes of up to 512 bytes ([`PIPE_BUF`]) are
//!   atomic; O_NONBLOCK gives `EAGAIN`.
//! - `__getcwd` returns the length including the NUL, as NetBSD; `ERANGE`
//!   if the buffer is shorter.
//! - Process names are cut at the first NUL and at 16 bytes (MAXCOMLEN).
//! - Children of a released process get ppid 1.

#![forbid(unsafe_code)]

mod file;
mod fs;
mod pipe;
mod proc;
pub mod stub;
mod sys;
mod uio;

use file::{FdEntry, FdTable, FileObj, OpenFile};
use fs::Fs;
use parking_lot::{Mutex, RwLock};
use proc::{CallGuard, Proc, ProcState, Stats, Waiter, MAXCOMLEN};
use sp_proto::abi::{oflag, Errno, SysResult, Sysnum};
use sp_proto::comm_name;
use sp_server::{ClientPort, Kernel, Port, ProcId};
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub use file::FD_LIMIT;
pub use pipe::{BIG_PIPE_SIZE, MAX_BIG_PIPES, PIPE_BUF, PIPE_SIZE};
pub use sys::num;

/// The pid of the kernel's own process.
pub const INIT_PID: i32 = 1;
/// The umask a new guest starts with.
pub const DEFAULT_UMASK: u32 = 0o022;
/// The console keeps the last this many bytes written to it.
pub const CONSOLE_KEEP: usize = 64 * 1024;

/// The model kernel. See the [module documentation](self).
pub struct ModelKernel {
    procs: RwLock<HashMap<ProcId, Arc<Proc>>>,
    next_pid: AtomicI32,
    fs: Arc<Fs>,
    stats: Stats,
    console: Mutex<Vec<u8>>,
    /// Pipes grown to BIG_PIPE_SIZE, kernel-wide (NetBSD's nbigpipe).
    big_pipes: Arc<AtomicUsize>,
}

/// How to boot a [`ModelKernel`].
#[derive(Clone, Copy, Debug)]
pub struct Boot {
    /// Bytes all regular files may hold together (`ENOSPC` beyond).
    pub fs_capacity: u64,
    /// Mount a tmpfs on `/tmp` at boot (as a test set-up would on a stock
    /// rump kernel); without it `/tmp` is a plain rumpfs directory.
    pub tmpfs_on_tmp: bool,
}

impl Default for Boot {
    fn default() -> Boot {
        Boot {
            fs_capacity: fs::DEFAULT_CAPACITY,
            tmpfs_on_tmp: true,
        }
    }
}

/// What the model knows about one process, for tests and demos.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcInfo {
    /// Process id.
    pub pid: i32,
    /// Parent's process id (1 for a guest).
    pub ppid: i32,
    /// Name, without NUL.
    pub comm: Vec<u8>,
    /// Calls running in the process now.
    pub threads: usize,
    /// Told to exit (lwpexit) and not yet exec-notified.
    pub exiting: bool,
    /// Bound to a client (false for init and an unattached prefork).
    pub attached: bool,
    /// Open descriptors, ascending.
    pub fds: Vec<i32>,
    /// The umask.
    pub umask: u32,
}

fn comm_of(comm: &[u8]) -> Vec<u8> {
    let c = comm_name(comm);
    c[..c.len().min(MAXCOMLEN)].to_vec()
}

impl ModelKernel {
    /// A kernel holding only init (pid 1) and a fresh file system: a
    /// rumpfs root with `/dev/null`, `/dev/zero` and `/tmp`, a tmpfs
    /// mounted on `/tmp`, and room for 1 GiB of files.
    pub fn new() -> ModelKernel {
        ModelKernel::boot(Boot::default())
    }

    /// As [`ModelKernel::new`], with regular files limited to `bytes` in
    /// all (`ENOSPC` beyond).
    pub fn with_fs_capacity(bytes: u64) -> ModelKernel {
        ModelKernel::boot(Boot {
            fs_capacity: bytes,
            ..Boot::default()
        })
    }

    /// A kernel booted as `boot` says.
    pub fn boot(boot: Boot) -> ModelKernel {
        let fs = Fs::new(boot.fs_capacity, boot.tmpfs_on_tmp);
        let init = Proc::new(
            INIT_PID,
            0,
            ProcState {
                fds: FdTable::default(),
                cwd: fs.root(),
                umask: DEFAULT_UMASK,
                comm: b"init".to_vec(),
                port: None,
            },
        );
        let mut procs = HashMap::new();
        procs.insert(ProcId(INIT_PID as u64), Arc::new(init));
        ModelKernel {
            procs: RwLock::new(procs),
            next_pid: AtomicI32::new(INIT_PID + 1),
            fs,
            stats: Stats::default(),
            console: Mutex::new(Vec::new()),
            big_pipes: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// What guests wrote to the console (descriptors 0, 1 and 2 of a new
    /// guest): the last [`CONSOLE_KEEP`] bytes.
    pub fn console_output(&self) -> Vec<u8> {
        self.console.lock().clone()
    }

    pub(crate) fn console_write(&self, data: &[u8]) {
        tracing::debug!(bytes = data.len(), "model console write");
        let mut c = self.console.lock();
        c.extend_from_slice(data);
        if c.len() > CONSOLE_KEEP {
            let cut = c.len() - CONSOLE_KEEP;
            c.drain(..cut);
        }
    }

    fn get(&self, proc: ProcId) -> Option<Arc<Proc>> {
        self.procs.read().get(&proc).cloned()
    }

    pub(crate) fn find_pid(&self, pid: i32) -> Option<Arc<Proc>> {
        // Process ids are the pids (see `new_proc`).
        u64::try_from(pid).ok().and_then(|p| self.get(ProcId(p)))
    }

    fn new_proc(&self, ppid: i32, st: ProcState) -> Result<ProcId, Errno> {
        let pid = self
            .next_pid
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |p| p.checked_add(1))
            .map_err(|_| Errno::EAGAIN)?;
        let id = ProcId(pid as u64);
        self.procs
            .write()
            .insert(id, Arc::new(Proc::new(pid, ppid, st)));
        Ok(id)
    }

    /// Number of processes other than init (guests, forks, unclaimed
    /// preforks).
    pub fn process_count(&self) -> usize {
        self.procs.read().len() - 1
    }

    /// The pids of processes other than init, ascending.
    pub fn pids(&self) -> Vec<i32> {
        let mut v: Vec<i32> = self
            .procs
            .read()
            .values()
            .map(|p| p.pid)
            .filter(|&p| p != INIT_PID)
            .collect();
        v.sort_unstable();
        v
    }

    /// The name of the process with pid `pid`.
    pub fn comm(&self, pid: i32) -> Option<Vec<u8>> {
        self.find_pid(pid).map(|p| p.st.lock().comm.clone())
    }

    /// The process with pid `pid`.
    pub fn proc_by_pid(&self, pid: i32) -> Option<ProcId> {
        self.find_pid(pid).map(|p| ProcId(p.pid as u64))
    }

    /// What the model knows about `proc`.
    pub fn proc_info(&self, proc: ProcId) -> Option<ProcInfo> {
        let p = self.get(proc)?;
        let st = p.st.lock();
        Some(ProcInfo {
            pid: p.pid,
            ppid: p.ppid.load(Ordering::SeqCst),
            comm: st.comm.clone(),
            threads: p.threads.load(Ordering::SeqCst),
            exiting: p.is_exiting(),
            attached: st.port.is_some(),
            fds: st.fds.fds(),
            umask: st.umask,
        })
    }

    /// Calls in flight, in all processes.
    pub fn live_threads(&self) -> usize {
        self.stats.counts().live
    }

    /// Calls waiting inside the kernel (on a pipe), in all processes.
    pub fn blocked_threads(&self) -> usize {
        self.stats.counts().blocked
    }

    /// Waits until at least `n` calls are in flight; false on timeout.
    pub fn wait_live_threads(&self, n: usize, timeout: Duration) -> bool {
        self.stats.wait_until(timeout, |c| c.live >= n)
    }

    /// Waits until at least `n` calls wait inside the kernel; false on
    /// timeout.
    pub fn wait_blocked_threads(&self, n: usize, timeout: Duration) -> bool {
        self.stats.wait_until(timeout, |c| c.blocked >= n)
    }

    /// Waits until no call is in flight; false on timeout.
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        self.stats.wait_until(timeout, |c| c.live == 0)
    }

    /// Bytes held by regular files.
    pub fn fs_used(&self) -> u64 {
        self.fs.used()
    }

    /// Nodes alive in the file system (linked, or unlinked but still open).
    pub fn fs_nodes(&self) -> usize {
        self.fs.node_count()
    }
}

impl Default for ModelKernel {
    fn default() -> ModelKernel {
        ModelKernel::new()
    }
}

impl fmt::Debug for ModelKernel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ModelKernel")
            .field("pids", &self.pids())
            .field("live_threads", &self.live_threads())
            .field("fs_used", &self.fs_used())
            .finish()
    }
}

impl Kernel for ModelKernel {
    /// A guest forked off init gets the console on descriptors 0, 1 and 2
    /// (one write-only description), as a rump kernel's `rump_consdev_init`
    /// gives it.
    fn spawn_guest(&self, comm: &[u8], port: Port) -> Result<ProcId, Errno> {
        let mut fds = FdTable::default();
        let console = OpenFile::new(FileObj::Console, oflag::O_WRONLY);
        for fd in 0..3 {
            let e = FdEntry {
                file: console.clone(),
                cloexec: false,
            };
            fds.place(fd, e)?;
        }
        let st = ProcState {
            fds,
            cwd: self.fs.root(),
            umask: DEFAULT_UMASK,
            comm: comm_of(comm),
            port: Some(port),
        };
        self.new_proc(INIT_PID, st)
    }

    fn prefork(&self, parent: ProcId) -> Result<ProcId, Errno> {
        let p = self.get(parent).ok_or(Errno::ESRCH)?;
        let st = {
            let g = p.st.lock();
            ProcState {
                fds: g.fds.clone(),
                cwd: g.cwd.clone(),
                umask: g.umask,
                comm: g.comm.clone(),
                port: None,
            }
        };
        self.new_proc(p.pid, st)
    }

    /// As the reference server does: the prefork is forked once more, its
    /// descriptor table shared, the child takes the connection, and the
    /// prefork is released. So the child's pid is one past the prefork's
    /// and, its parent gone, its ppid is 1.
    fn attach_prefork(&self, prefork: ProcId, port: Port) -> Result<ProcId, Errno> {
        let p = self.get(prefork).ok_or(Errno::ESRCH)?;
        let st = {
            let g = p.st.lock();
            if g.port.is_some() {
                return Err(Errno::EBUSY);
            }
            ProcState {
                fds: g.fds.clone(),
                cwd: g.cwd.clone(),
                umask: g.umask,
                comm: g.comm.clone(),
                port: Some(port),
            }
        };
        let child = self.new_proc(p.pid, st)?;
        self.release(prefork);
        Ok(child)
    }

    fn syscall(&self, proc: ProcId, sysnum: u32, args: &[u8], port: &dyn ClientPort) -> SysResult {
        let p = self.get(proc).ok_or(Errno::ESRCH)?;
        let gen = p.begin().ok_or(Errno::EINTR)?;
        let _call = CallGuard::enter(&p, &self.stats);
        let w = Waiter {
            proc: &p,
            gen,
            stats: &self.stats,
        };
        let res = sys::Ctx::new(self, &p, port, args, w).dispatch(sysnum);
        tracing::trace!(pid = p.pid, sysnum, ?res, "model syscall");
        res
    }

    fn lwpexit(&self, proc: ProcId) {
        if let Some(p) = self.get(proc) {
            p.mark_exit();
        }
    }

    fn execnotify(&self, proc: ProcId, comm: &[u8]) {
        let Some(p) = self.get(proc) else { return };
        let closed = {
            let mut g = p.st.lock();
            g.comm = comm_of(comm);
            g.fds.take_cloexec()
        };
        drop(closed);
        p.clear_exit();
    }

    fn release(&self, proc: ProcId) {
        if proc == ProcId(INIT_PID as u64) {
            return;
        }
        let Some(p) = self.procs.write().remove(&proc) else {
            return;
        };
        p.mark_exit();
        let (fds, port) = {
            let mut g = p.st.lock();
            (g.fds.take_all(), g.port.take())
        };
        drop(fds);
        drop(port);
        for child in self.procs.read().values() {
            let _ =
                child
                    .ppid
                    .compare_exchange(p.pid, INIT_PID, Ordering::SeqCst, Ordering::SeqCst);
        }
    }

    fn pid(&self, proc: ProcId) -> i32 {
        self.get(proc).map_or(-1, |p| p.pid)
    }

    /// Calls that touch only the kernel's own state (no copyin, no wait):
    /// the server may run them without a hand-off to a worker. (Not fcntl:
    /// its lock commands copy a `struct flock` in.)
    fn runs_inline(&self, sysnum: u32) -> bool {
        matches!(
            Sysnum(sysnum),
            Sysnum::GETPID
                | Sysnum::GETPPID
                | Sysnum::UMASK
                | Sysnum::CLOSE
                | Sysnum::DUP
                | Sysnum::DUP2
                | Sysnum::DUP3
                | Sysnum::LSEEK
                | Sysnum::FSYNC
                | Sysnum::FCHDIR
                | Sysnum::FTRUNCATE
                | Sysnum::PIPE
                | Sysnum::KILL
        )
    }
}
