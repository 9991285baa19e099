//! The system calls: one function per call, behind [`Ctx::dispatch`].
//!
//! Arguments are read from the block as each call needs them (a block too
//! short for a slot the call uses is `EFAULT`). Data crosses only through
//! the port, and never with a kernel lock held.

use super::file::{FdEntry, FileObj, OpenFile, FD_LIMIT};
use super::fs::{Kind, OpenHow, ReadOut, VnodeRef};
use super::pipe::Pipe;
use super::proc::{Proc, Waiter};
use super::uio::{Segs, IO_CHUNK};
use super::ModelKernel;
use sp_proto::abi::{fcntl, misc, oflag, sig, sys, Errno, Stat, SysResult};
use sp_server::{Args, ClientPort};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Path buffer size, NUL included (NetBSD's MAXPATHLEN).
pub(crate) const MAXPATHLEN: usize = 1024;
/// Signals are 1..NSIG (NetBSD's NSIG).
const NSIG: i32 = 64;

/// One running call: the kernel, the calling process, its client and
/// arguments, and how it waits.
pub(crate) struct Ctx<'a> {
    k: &'a ModelKernel,
    p: &'a Arc<Proc>,
    port: &'a dyn ClientPort,
    a: Args<'a>,
    w: Waiter<'a>,
}

fn ok(v: i64) -> SysResult {
    Ok([v, 0])
}

/// After part of a transfer went through, an interruption returns the
/// count; any other error is returned (NetBSD's dofilewrite rule).
fn partial(done: u64, e: Errno) -> SysResult {
    if done > 0 && (e == Errno::EINTR || e == Errno::EAGAIN) {
        ok(done as i64)
    } else {
        Err(e)
    }
}

impl<'a> Ctx<'a> {
    pub(crate) fn new(
        k: &'a ModelKernel,
        p: &'a Arc<Proc>,
        port: &'a dyn ClientPort,
        args: &'a [u8],
        w: Waiter<'a>,
    ) -> Ctx<'a> {
        Ctx {
            k,
            p,
            port,
            a: Args(args),
            w,
        }
    }

    /// Runs call `sysnum`; `ENOSYS` for a number the model lacks.
    pub(crate) fn dispatch(&self, sysnum: u32) -> SysResult {
        match sysnum {
            sys::READ => self.read(),
            sys::WRITE => self.write(),
            sys::OPEN => self.open(),
            sys::CLOSE => self.close(),
            sys::UNLINK => self.unlink(),
            sys::CHDIR => self.chdir(),
            sys::FCHDIR => self.fchdir(),
            sys::GETPID => Ok([self.p.pid as i64, self.ppid() as i64]),
            sys::ACCESS => self.access(),
            sys::KILL => self.kill(),
            sys::GETPPID => ok(self.ppid() as i64),
            sys::DUP => self.dup(),
            sys::PIPE => self.pipe(),
            sys::UMASK => self.umask(),
            sys::DUP2 => self.dup2(),
            sys::FCNTL => self.fcntl(),
            sys::FSYNC => self.fsync(),
            sys::READV => self.readv(),
            sys::WRITEV => self.writev(),
            sys::RENAME => self.rename(),
            sys::MKDIR => self.mkdir(),
            sys::RMDIR => self.rmdir(),
            sys::PREAD => self.pread(),
            sys::PWRITE => self.pwrite(),
            sys::MMAP => self.mmap(),
            sys::LSEEK => self.lseek(),
            sys::FTRUNCATE => self.ftruncate(),
            sys::GETCWD => self.getcwd(),
            sys::GETDENTS => self.getdents(),
            sys::STAT | sys::LSTAT => self.stat(),
            sys::FSTAT => self.fstat(),
            sys::PIPE2 => self.pipe2(),
            sys::DUP3 => self.dup3(),
            _ => Err(Errno::ENOSYS),
        }
    }

    // ---- helpers ----

    fn ppid(&self) -> i32 {
        self.p.ppid.load(Ordering::SeqCst)
    }

    /// The description behind descriptor `fd`.
    fn file(&self, fd: i32) -> Result<Arc<OpenFile>, Errno> {
        Ok(self.p.st.lock().fds.get(fd)?.file.clone())
    }

    /// The description behind the descriptor in slot `i`.
    fn file_arg(&self, i: usize) -> Result<Arc<OpenFile>, Errno> {
        self.file(self.a.i32(i)?)
    }

    /// COPYINSTR of the path whose address is in slot `i`.
    fn path(&self, i: usize) -> Result<Vec<u8>, Errno> {
        self.port.copyinstr(self.a.u64(i)?, MAXPATHLEN)
    }

    /// A counted reference to the current directory (so a concurrent
    /// chdir cannot free it under a lookup).
    fn cwd(&self) -> VnodeRef {
        self.p.st.lock().cwd.clone()
    }

    fn umask_now(&self) -> u32 {
        self.p.st.lock().umask
    }

    /// Installs `file` at the lowest free descriptor.
    fn install(&self, file: Arc<OpenFile>, cloexec: bool) -> Result<i32, Errno> {
        let e = FdEntry { file, cloexec };
        let mut st = self.p.st.lock();
        let r = st.fds.lowest_free(0);
        match r {
            Ok(i) => st.fds.alloc(i, e),
            Err(err) => {
                drop(st);
                drop(e);
                Err(err)
            }
        }
    }

    /// Closes `fd` if it still holds `file` (undoing an install).
    fn uninstall(&self, fd: i32, file: &Arc<OpenFile>) {
        let gone = {
            let mut st = self.p.st.lock();
            match st.fds.get(fd) {
                Ok(e) if Arc::ptr_eq(&e.file, file) => st.fds.remove(fd).ok(),
                _ => None,
            }
        };
        drop(gone);
    }

    /// A write found no reader: SIGPIPE to the caller, `EPIPE`.
    fn epipe(&self) -> SysResult {
        let _ = self.port.raise(sig::SIGPIPE);
        Err(Errno::EPIPE)
    }

    fn copyout_stat(&self, st: &Stat, addr: u64) -> SysResult {
        self.port.copyout(addr, &st.to_bytes())?;
        ok(0)
    }

    // ---- data transfer ----

    /// read, readv, pread: what the description yields, scattered to `dst`.
    fn do_read(&self, f: &OpenFile, dst: &Segs, at: Option<i64>) -> SysResult {
        if !f.readable() {
            return Err(Errno::EBADF);
        }
        let want = usize::try_from(dst.total()).map_err(|_| Errno::EINVAL)?;
        match &f.obj {
            FileObj::Pipe(end) => {
                if at.is_some() {
                    return Err(Errno::ESPIPE);
                }
                let data = end.pipe.read(want, f.nonblock(), &self.w)?;
                // Bytes taken from the pipe are lost if this fails.
                dst.scatter(self.port, &data)?;
                ok(data.len() as i64)
            }
            FileObj::Vnode(v) => {
                let fs = v.fs();
                let get = |off: u64| match fs.read(v.ino(), off, want)? {
                    ReadOut::IsDir => Err(Errno::EISDIR),
                    ReadOut::Data(d) => Ok(d),
                };
                if let Some(off) = at {
                    let off = u64::try_from(off).map_err(|_| Errno::EINVAL)?;
                    let data = get(off)?;
                    dst.scatter(self.port, &data)?;
                    return ok(data.len() as i64);
                }
                let (start, end, data) = {
                    let mut off = f.offset.lock();
                    let start = *off;
                    let data = get(start)?;
                    *off = start + data.len() as u64;
                    (start, *off, data)
                };
                if let Err(e) = dst.scatter(self.port, &data) {
                    let mut off = f.offset.lock();
                    if *off == end {
                        *off = start;
                    }
                    return Err(e);
                }
                ok(data.len() as i64)
            }
        }
    }

    /// write, writev, pwrite: the bytes of `src`, gathered in chunks.
    fn do_write(&self, f: &OpenFile, src: &Segs, at: Option<i64>) -> SysResult {
        if !f.writable() {
            return Err(Errno::EBADF);
        }
        let total = src.total();
        match &f.obj {
            FileObj::Pipe(end) => {
                if at.is_some() {
                    return Err(Errno::ESPIPE);
                }
                let mut done = 0u64;
                loop {
                    // Checked before any COPYIN, as a real kernel does.
                    if !end.pipe.has_reader() {
                        return self.epipe();
                    }
                    if done == total {
                        return ok(done as i64);
                    }
                    let n = IO_CHUNK.min(total - done);
                    let data = match src.gather(self.port, done, n) {
                        Ok(d) => d,
                        Err(e) => return partial(done, e),
                    };
                    match end.pipe.write(&data, f.nonblock(), &self.w) {
                        Ok(k) => {
                            done += k as u64;
                            if k < data.len() {
                                return ok(done as i64);
                            }
                        }
                        Err(Errno::EPIPE) => return self.epipe(),
                        Err(e) => return partial(done, e),
                    }
                }
            }
            FileObj::Vnode(v) => {
                let fs = v.fs();
                match fs.kind(v.ino())? {
                    // /dev/null takes everything without looking at it.
                    Kind::Null => return ok(total as i64),
                    Kind::Dir => return Err(Errno::EISDIR),
                    Kind::File => {}
                }
                let start = match at {
                    Some(off) => Some(u64::try_from(off).map_err(|_| Errno::EINVAL)?),
                    None => None,
                };
                let mut done = 0u64;
                while done < total {
                    let n = IO_CHUNK.min(total - done);
                    let data = match src.gather(self.port, done, n) {
                        Ok(d) => d,
                        Err(e) => return partial(done, e),
                    };
                    let r = match start {
                        Some(s) => s.checked_add(done).ok_or(Errno::EINVAL).and_then(|o| {
                            // pwrite writes at its offset even with O_APPEND.
                            fs.write(v.ino(), o, false, &data).map(drop)
                        }),
                        None => {
                            let mut off = f.offset.lock();
                            fs.write(v.ino(), *off, f.append(), &data)
                                .map(|end| *off = end)
                        }
                    };
                    if let Err(e) = r {
                        return partial(done, e);
                    }
                    done += n;
                }
                ok(done as i64)
            }
        }
    }

    fn read(&self) -> SysResult {
        let f = self.file_arg(0)?;
        self.do_read(&f, &Segs::one(self.a.u64(1)?, self.a.u64(2)?)?, None)
    }

    fn write(&self) -> SysResult {
        let f = self.file_arg(0)?;
        self.do_write(&f, &Segs::one(self.a.u64(1)?, self.a.u64(2)?)?, None)
    }

    fn pread(&self) -> SysResult {
        let f = self.file_arg(0)?;
        let segs = Segs::one(self.a.u64(1)?, self.a.u64(2)?)?;
        self.do_read(&f, &segs, Some(self.a.i64(4)?))
    }

    fn pwrite(&self) -> SysResult {
        let f = self.file_arg(0)?;
        let segs = Segs::one(self.a.u64(1)?, self.a.u64(2)?)?;
        self.do_write(&f, &segs, Some(self.a.i64(4)?))
    }

    fn readv(&self) -> SysResult {
        let f = self.file_arg(0)?;
        let segs = Segs::from_iov(self.port, self.a.u64(1)?, self.a.i32(2)?)?;
        self.do_read(&f, &segs, None)
    }

    fn writev(&self) -> SysResult {
        let f = self.file_arg(0)?;
        let segs = Segs::from_iov(self.port, self.a.u64(1)?, self.a.i32(2)?)?;
        self.do_write(&f, &segs, None)
    }

    fn lseek(&self) -> SysResult {
        let f = self.file_arg(0)?;
        let (off, whence) = (self.a.i64(2)?, self.a.u32(3)?);
        let FileObj::Vnode(v) = &f.obj else {
            return Err(Errno::ESPIPE);
        };
        let mut cur = f.offset.lock();
        let base = match whence {
            misc::SEEK_SET => 0,
            misc::SEEK_CUR => *cur as i64,
            misc::SEEK_END => v.fs().size(v.ino())? as i64,
            _ => return Err(Errno::EINVAL),
        };
        let new = base
            .checked_add(off)
            .filter(|&n| n >= 0)
            .ok_or(Errno::EINVAL)?;
        *cur = new as u64;
        ok(new)
    }

    fn ftruncate(&self) -> SysResult {
        let f = self.file_arg(0)?;
        let len = self.a.i64(2)?;
        let FileObj::Vnode(v) = &f.obj else {
            return Err(Errno::EINVAL);
        };
        if !f.writable() || len < 0 {
            return Err(Errno::EINVAL);
        }
        v.fs().truncate(v.ino(), len as u64)?;
        ok(0)
    }

    fn fsync(&self) -> SysResult {
        match self.file_arg(0)?.obj {
            FileObj::Vnode(_) => ok(0),
            FileObj::Pipe(_) => Err(Errno::EINVAL),
        }
    }

    fn getdents(&self) -> SysResult {
        let f = self.file_arg(0)?;
        let (buf, count) = (self.a.u64(1)?, self.a.usize(2)?);
        let FileObj::Vnode(v) = &f.obj else {
            return Err(Errno::EINVAL);
        };
        if !f.readable() {
            return Err(Errno::EBADF);
        }
        let (start, end, data) = {
            let mut off = f.offset.lock();
            let start = *off;
            let (data, n) = v.fs().getdents(v.ino(), start, count)?;
            *off = start + n;
            (start, *off, data)
        };
        if let Err(e) = self.port.copyout(buf, &data) {
            let mut off = f.offset.lock();
            if *off == end {
                *off = start;
            }
            return Err(e);
        }
        ok(data.len() as i64)
    }

    // ---- names ----

    fn open(&self) -> SysResult {
        let path = self.path(0)?;
        let flags = self.a.u32(1)?;
        let acc = flags & oflag::O_ACCMODE;
        if acc == oflag::O_ACCMODE {
            return Err(Errno::EINVAL);
        }
        let create = flags & oflag::O_CREAT != 0;
        // The mode slot is read only when a file may be created.
        let mode = if create { self.a.u32(2)? } else { 0 };
        // Fail before creating anything if no descriptor is free.
        self.p.st.lock().fds.lowest_free(0)?;
        let how = OpenHow {
            create,
            excl: flags & oflag::O_EXCL != 0,
            trunc: flags & oflag::O_TRUNC != 0,
            directory: flags & oflag::O_DIRECTORY != 0,
            writable: acc != oflag::O_RDONLY,
            perm: mode & 0o7777 & !self.umask_now(),
        };
        let cwd = self.cwd();
        let v = self.k.fs.open(cwd.ino(), &path, &how)?;
        let file = OpenFile::new(FileObj::Vnode(v), flags);
        ok(self.install(file, flags & oflag::O_CLOEXEC != 0)? as i64)
    }

    fn close(&self) -> SysResult {
        let fd = self.a.i32(0)?;
        let gone = self.p.st.lock().fds.remove(fd)?;
        drop(gone);
        ok(0)
    }

    fn unlink(&self) -> SysResult {
        let path = self.path(0)?;
        let cwd = self.cwd();
        self.k.fs.unlink(cwd.ino(), &path)?;
        ok(0)
    }

    fn mkdir(&self) -> SysResult {
        let path = self.path(0)?;
        let perm = self.a.u32(1)? & 0o7777 & !self.umask_now();
        let cwd = self.cwd();
        self.k.fs.mkdir(cwd.ino(), &path, perm)?;
        ok(0)
    }

    fn rmdir(&self) -> SysResult {
        let path = self.path(0)?;
        let cwd = self.cwd();
        self.k.fs.rmdir(cwd.ino(), &path)?;
        ok(0)
    }

    fn rename(&self) -> SysResult {
        let from = self.path(0)?;
        let to = self.path(1)?;
        let cwd = self.cwd();
        self.k.fs.rename(cwd.ino(), &from, &to)?;
        ok(0)
    }

    fn access(&self) -> SysResult {
        let path = self.path(0)?;
        let amode = self.a.u32(1)?;
        if amode & !(misc::R_OK | misc::W_OK | misc::X_OK) != 0 {
            return Err(Errno::EINVAL);
        }
        let cwd = self.cwd();
        let (is_dir, perm) = self.k.fs.access(cwd.ino(), &path)?;
        if amode & misc::X_OK != 0 && !is_dir && perm & 0o111 == 0 {
            return Err(Errno::EACCES);
        }
        ok(0)
    }

    fn set_cwd(&self, new: VnodeRef) {
        let old = std::mem::replace(&mut self.p.st.lock().cwd, new);
        drop(old);
    }

    fn chdir(&self) -> SysResult {
        let path = self.path(0)?;
        let cwd = self.cwd();
        let (v, is_dir) = self.k.fs.lookup_ref(cwd.ino(), &path)?;
        if !is_dir {
            return Err(Errno::ENOTDIR);
        }
        self.set_cwd(v);
        ok(0)
    }

    fn fchdir(&self) -> SysResult {
        let f = self.file_arg(0)?;
        match &f.obj {
            FileObj::Vnode(v) if v.fs().kind(v.ino())? == Kind::Dir => {
                self.set_cwd(v.clone());
                ok(0)
            }
            _ => Err(Errno::ENOTDIR),
        }
    }

    fn getcwd(&self) -> SysResult {
        let (buf, len) = (self.a.u64(0)?, self.a.u64(1)?);
        let cwd = self.cwd();
        let mut path = self.k.fs.path_of(cwd.ino())?;
        path.push(0);
        if len < path.len() as u64 {
            return Err(Errno::ERANGE);
        }
        self.port.copyout(buf, &path)?;
        ok(path.len() as i64)
    }

    fn stat(&self) -> SysResult {
        let path = self.path(0)?;
        let sb = self.a.u64(1)?;
        let cwd = self.cwd();
        let st = self.k.fs.stat_path(cwd.ino(), &path)?;
        self.copyout_stat(&st, sb)
    }

    fn fstat(&self) -> SysResult {
        let f = self.file_arg(0)?;
        let sb = self.a.u64(1)?;
        let st = match &f.obj {
            FileObj::Vnode(v) => v.fs().stat(v.ino())?,
            FileObj::Pipe(end) => end.pipe.stat(),
        };
        self.copyout_stat(&st, sb)
    }

    // ---- descriptors ----

    fn dup(&self) -> SysResult {
        let fd = self.a.i32(0)?;
        let mut st = self.p.st.lock();
        let file = st.fds.get(fd)?.file.clone();
        ok(st.fds.alloc(
            0,
            FdEntry {
                file,
                cloexec: false,
            },
        )? as i64)
    }

    /// dup2 and dup3: `to` becomes a copy of `from`.
    fn dup_to(&self, from: i32, to: i32, cloexec: bool) -> SysResult {
        let old = {
            let mut st = self.p.st.lock();
            let file = st.fds.get(from)?.file.clone();
            st.fds.place(to, FdEntry { file, cloexec })?
        };
        drop(old);
        ok(to as i64)
    }

    fn dup2(&self) -> SysResult {
        let (from, to) = (self.a.i32(0)?, self.a.i32(1)?);
        if from == to {
            // Nothing changes, not even close-on-exec.
            self.file(from)?;
            return ok(to as i64);
        }
        self.dup_to(from, to, false)
    }

    fn dup3(&self) -> SysResult {
        let (from, to, flags) = (self.a.i32(0)?, self.a.i32(1)?, self.a.u32(2)?);
        if flags & !oflag::O_CLOEXEC != 0 {
            return Err(Errno::EINVAL);
        }
        self.file(from)?;
        if from == to {
            return Err(Errno::EINVAL);
        }
        self.dup_to(from, to, flags & oflag::O_CLOEXEC != 0)
    }

    fn fcntl(&self) -> SysResult {
        let (fd, cmd) = (self.a.i32(0)?, self.a.u32(1)?);
        let file = self.file(fd)?;
        match cmd {
            fcntl::F_DUPFD | fcntl::F_DUPFD_CLOEXEC => {
                let min = usize::try_from(self.a.i64(2)?)
                    .ok()
                    .filter(|&m| m < FD_LIMIT)
                    .ok_or(Errno::EINVAL)?;
                let cloexec = cmd == fcntl::F_DUPFD_CLOEXEC;
                let mut st = self.p.st.lock();
                // The descriptor may have been closed meanwhile; dup what
                // it held when the call began, as a real kernel would.
                ok(st.fds.alloc(min, FdEntry { file, cloexec })? as i64)
            }
            fcntl::F_GETFD => {
                let st = self.p.st.lock();
                ok(if st.fds.get(fd)?.cloexec {
                    fcntl::FD_CLOEXEC as i64
                } else {
                    0
                })
            }
            fcntl::F_SETFD => {
                let arg = self.a.u64(2)?;
                self.p.st.lock().fds.get_mut(fd)?.cloexec = arg & u64::from(fcntl::FD_CLOEXEC) != 0;
                ok(0)
            }
            fcntl::F_GETFL => ok(file.flags() as i64),
            fcntl::F_SETFL => {
                file.set_flags(self.a.u32(2)?);
                ok(0)
            }
            _ => Err(Errno::EINVAL),
        }
    }

    /// Makes a pipe and installs its ends; returns (read fd, write fd).
    fn make_pipe(&self, flags: u32) -> Result<(i32, i32, [Arc<OpenFile>; 2]), Errno> {
        let (r, w) = Pipe::create(self.k.fs.new_ino());
        let nb = flags & oflag::O_NONBLOCK;
        let rf = OpenFile::new(FileObj::Pipe(r), oflag::O_RDONLY | nb);
        let wf = OpenFile::new(FileObj::Pipe(w), oflag::O_WRONLY | nb);
        let cloexec = flags & oflag::O_CLOEXEC != 0;
        let rfd = self.install(rf.clone(), cloexec)?;
        match self.install(wf.clone(), cloexec) {
            Ok(wfd) => Ok((rfd, wfd, [rf, wf])),
            Err(e) => {
                self.uninstall(rfd, &rf);
                Err(e)
            }
        }
    }

    fn pipe(&self) -> SysResult {
        let (r, w, _) = self.make_pipe(0)?;
        Ok([r as i64, w as i64])
    }

    fn pipe2(&self) -> SysResult {
        let (fds, flags) = (self.a.u64(0)?, self.a.u32(1)?);
        if flags & !(oflag::O_CLOEXEC | oflag::O_NONBLOCK) != 0 {
            return Err(Errno::EINVAL);
        }
        let (r, w, [rf, wf]) = self.make_pipe(flags)?;
        let mut out = [0u8; 8];
        out[..4].copy_from_slice(&r.to_le_bytes());
        out[4..].copy_from_slice(&w.to_le_bytes());
        if let Err(e) = self.port.copyout(fds, &out) {
            self.uninstall(r, &rf);
            self.uninstall(w, &wf);
            return Err(e);
        }
        ok(0)
    }

    // ---- processes and memory ----

    fn umask(&self) -> SysResult {
        let new = self.a.u32(0)? & 0o7777;
        let old = std::mem::replace(&mut self.p.st.lock().umask, new);
        ok(old as i64)
    }

    fn kill(&self) -> SysResult {
        let (pid, signo) = (self.a.i32(0)?, self.a.i32(1)?);
        if !(0..NSIG).contains(&signo) {
            return Err(Errno::EINVAL);
        }
        let target = match pid {
            0 => self.p.clone(),
            p if p < 0 => return Err(Errno::ESRCH),
            p => self.k.find_pid(p).ok_or(Errno::ESRCH)?,
        };
        if signo == 0 {
            return ok(0);
        }
        if Arc::ptr_eq(&target, self.p) {
            let _ = self.port.raise(signo as u32);
            return ok(0);
        }
        let port = target.st.lock().port.clone();
        match port {
            // init and unattached preforks drop the signal.
            None => ok(0),
            Some(port) => {
                port.raise(signo as u32).map_err(|_| Errno::ESRCH)?;
                ok(0)
            }
        }
    }

    fn mmap(&self) -> SysResult {
        let (len, flags, fd) = (self.a.u64(1)?, self.a.u32(3)?, self.a.i32(4)?);
        if flags & misc::MAP_ANON == 0 || fd != -1 || len == 0 {
            return Err(Errno::EINVAL);
        }
        let addr = self.port.anonmmap(len)?;
        ok(addr as i64)
    }
}
