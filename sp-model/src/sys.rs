//! The system calls: one function per call, behind [`Ctx::dispatch`].
//!
//! Arguments are read from the block as each call needs them (a block too
//! short for a slot the call uses is `EFAULT`). Data crosses only through
//! the port, and never with a kernel lock held.

use super::file::{FdEntry, FileObj, OpenFile, FCNTLFLAGS, FD_LIMIT, O_ASYNC, O_NOSIGPIPE};
use super::fs::{FsType, Kind, Nd, OpenHow, ReadOut, SetAttr, TmpfsArgs, Ts, VnodeRef, ROOT_INO};
use super::pipe::Pipe;
use super::proc::{Proc, Waiter};
use super::uio::{Segs, IO_CHUNK};
use super::ModelKernel;
use sp_proto::abi::{fcntl, misc, mode, oflag, Errno, Signal, Stat, SysResult, Sysnum};
use sp_server::{Args, ClientPort};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// NetBSD numbers of the calls [`Sysnum`] does not name.
pub mod num {
    use sp_proto::abi::Sysnum;

    /// link(path, link).
    pub const LINK: Sysnum = Sysnum(9);
    /// chmod(path, mode).
    pub const CHMOD: Sysnum = Sysnum(15);
    /// symlink(path, link).
    pub const SYMLINK: Sysnum = Sysnum(57);
    /// readlink(path, buf, count).
    pub const READLINK: Sysnum = Sysnum(58);
    /// fchmod(fd, mode).
    pub const FCHMOD: Sysnum = Sysnum(124);
    /// truncate(path, PAD, length).
    pub const TRUNCATE: Sysnum = Sysnum(200);
    /// __mount50(type, path, flags, data, data_len).
    pub const MOUNT: Sysnum = Sysnum(410);
    /// __utimes50(path, tptr): two `struct timeval` {i64 sec, i32 usec}.
    pub const UTIMES: Sysnum = Sysnum(420);
}

/// Path buffer size, NUL included (NetBSD's MAXPATHLEN).
pub(crate) const MAXPATHLEN: usize = 1024;
/// Signals are 1..NSIG (NetBSD's NSIG).
const NSIG: i32 = 64;
/// `O_NOFOLLOW`.
const O_NOFOLLOW: u32 = 0x100;
/// The sticky bit, which open(2) drops from a new file's mode.
const S_ISTXT: u32 = 0o1000;
/// `ACCESSPERMS` and `ALLPERMS`.
const ACCESSPERMS: u32 = 0o777;
const ALLPERMS: u32 = 0o7777;
/// NetBSD's ENODEV (an unknown file system type; an ioctl a device lacks).
const ENODEV: Errno = Errno(19);
/// fcntl commands beyond sp-proto's, and `sizeof(struct flock)`.
const F_GETOWN: u32 = 5;
const F_SETOWN: u32 = 6;
const F_GETLK: u32 = 7;
const F_SETLK: u32 = 8;
const F_SETLKW: u32 = 9;
const F_CLOSEM: u32 = 10;
const F_MAXFD: u32 = 11;
const F_GETNOSIGPIPE: u32 = 13;
const F_SETNOSIGPIPE: u32 = 14;
const FLOCK_SIZE: usize = 24;
/// NetBSD's EPASSTHROUGH, which its fcntl(F_GETOWN) lets out for a file.
const EPASSTHROUGH: Errno = Errno(-4);
/// NetBSD's EFBIG and SIGXFSZ: a write past the file size limit.
const EFBIG: Errno = Errno(27);
const SIGXFSZ: Signal = Signal(25);
/// File system type names are shorter than this (MFSNAMELEN).
const MFSNAMELEN: usize = 32;
/// Largest mount argument block (VFS_MAX_MOUNT_DATA).
const VFS_MAX_MOUNT_DATA: u64 = 8192;
/// `sizeof(struct tmpfs_args)` and `TMPFS_ARGS_VERSION`.
const TMPFS_ARGS_SIZE: usize = 40;
const TMPFS_ARGS_VERSION: i32 = 1;
/// Mount flags the model looks at.
const MNT_EXPORTED: u32 = 0x100;
const MNT_UPDATE: u32 = 0x1_0000;
const MNT_GETARGS: u32 = 0x40_0000;

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
        match Sysnum(sysnum) {
            Sysnum::READ => self.read(),
            Sysnum::WRITE => self.write(),
            Sysnum::OPEN => self.open(),
            Sysnum::CLOSE => self.close(),
            Sysnum::UNLINK => self.unlink(),
            Sysnum::CHDIR => self.chdir(),
            Sysnum::FCHDIR => self.fchdir(),
            Sysnum::GETPID => Ok([self.p.pid as i64, self.ppid() as i64]),
            Sysnum::ACCESS => self.access(),
            Sysnum::KILL => self.kill(),
            Sysnum::GETPPID => ok(self.ppid() as i64),
            Sysnum::DUP => self.dup(),
            Sysnum::PIPE => self.pipe(),
            Sysnum::UMASK => self.umask(),
            Sysnum::DUP2 => self.dup2(),
            Sysnum::FCNTL => self.fcntl(),
            Sysnum::FSYNC => self.fsync(),
            Sysnum::READV => self.readv(),
            Sysnum::WRITEV => self.writev(),
            Sysnum::RENAME => self.rename(),
            Sysnum::MKDIR => self.mkdir(),
            Sysnum::RMDIR => self.rmdir(),
            Sysnum::PREAD => self.pread(),
            Sysnum::PWRITE => self.pwrite(),
            Sysnum::MMAP => self.mmap(),
            Sysnum::LSEEK => self.lseek(),
            Sysnum::FTRUNCATE => self.ftruncate(),
            Sysnum::GETCWD => self.getcwd(),
            Sysnum::GETDENTS => self.getdents(),
            Sysnum::STAT => self.stat(Nd::FOLLOW),
            Sysnum::LSTAT => self.stat(Nd::NOFOLLOW),
            Sysnum::FSTAT => self.fstat(),
            Sysnum::PIPE2 => self.pipe2(),
            Sysnum::DUP3 => self.dup3(),
            num::LINK => self.link(),
            num::CHMOD => self.chmod(),
            num::SYMLINK => self.symlink(),
            num::READLINK => self.readlink(),
            num::FCHMOD => self.fchmod(),
            num::TRUNCATE => self.truncate(),
            num::MOUNT => self.mount(),
            num::UTIMES => self.utimes(),
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

    /// A write found no reader: SIGPIPE to the caller (unless the
    /// description has O_NOSIGPIPE), `EPIPE`.
    fn epipe(&self, f: &OpenFile) -> SysResult {
        if !f.nosigpipe() {
            let _ = self.port.raise(Signal::SIGPIPE.0);
        }
        Err(Errno::EPIPE)
    }

    /// The vnode behind a description; `EINVAL` for anything else (NetBSD's
    /// `fd_getvnode`).
    fn vnode(f: &OpenFile) -> Result<&VnodeRef, Errno> {
        match &f.obj {
            FileObj::Vnode(v) => Ok(v),
            _ => Err(Errno::EINVAL),
        }
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
            // Write-only: refused above.
            FileObj::Console => Err(Errno::EBADF),
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
                    out => Ok(out),
                };
                let put = |out: &ReadOut| match out {
                    ReadOut::Data(d) => dst.scatter(self.port, d).map(|()| d.len()),
                    ReadOut::Zeros(n) => dst.scatter_zeros(self.port, *n as u64).map(|()| *n),
                    ReadOut::IsDir => Err(Errno::EISDIR),
                };
                let len = |out: &ReadOut| match out {
                    ReadOut::Data(d) => d.len() as u64,
                    ReadOut::Zeros(n) => *n as u64,
                    ReadOut::IsDir => 0,
                };
                if let Some(off) = at {
                    // Negative only for a device, which ignores it.
                    let off = u64::try_from(off).unwrap_or(0);
                    return ok(put(&get(off)?)? as i64);
                }
                let (start, end, out) = {
                    let mut off = f.offset.lock();
                    let start = *off;
                    let out = get(start)?;
                    *off = start + len(&out);
                    (start, *off, out)
                };
                match put(&out) {
                    Ok(n) => ok(n as i64),
                    Err(e) => {
                        let mut off = f.offset.lock();
                        if *off == end {
                            *off = start;
                        }
                        Err(e)
                    }
                }
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
            FileObj::Console => {
                if at.is_some() {
                    return Err(Errno::ESPIPE);
                }
                let mut done = 0u64;
                while done < total {
                    let n = IO_CHUNK.min(total - done);
                    let data = match src.gather(self.port, done, n) {
                        Ok(d) => d,
                        Err(e) => return partial(done, e),
                    };
                    self.k.console_write(&data);
                    done += n;
                }
                ok(done as i64)
            }
            FileObj::Pipe(end) => {
                if at.is_some() {
                    return Err(Errno::ESPIPE);
                }
                let mut done = 0u64;
                loop {
                    // Checked before any COPYIN, as a real kernel does.
                    if !end.pipe.has_reader() {
                        return self.epipe(f);
                    }
                    if done == total {
                        return ok(done as i64);
                    }
                    let n = IO_CHUNK.min(total - done);
                    let data = match src.gather(self.port, done, n) {
                        Ok(d) => d,
                        Err(e) => return partial(done, e),
                    };
                    match end.pipe.write(&data, total - done, f.nonblock(), &self.w) {
                        Ok(k) => {
                            done += k as u64;
                            if k < data.len() {
                                return ok(done as i64);
                            }
                        }
                        Err(Errno::EPIPE) => return self.epipe(f),
                        Err(e) => return partial(done, e),
                    }
                }
            }
            FileObj::Vnode(v) => {
                let fs = v.fs();
                // Negative only for a device, which ignores it.
                let start = at.map(|off| u64::try_from(off).unwrap_or(0));
                match fs.kind(v.ino())? {
                    // Devices take everything without looking at it.
                    Kind::Dev(_) => {
                        if start.is_none() {
                            let mut off = f.offset.lock();
                            *off = off.wrapping_add(total);
                        }
                        return ok(total as i64);
                    }
                    Kind::Dir => return Err(Errno::EISDIR),
                    Kind::Link => return Err(Errno::EINVAL),
                    Kind::File => {}
                }
                // RLIMIT_FSIZE is infinite (i64::MAX), but a write whose end
                // passes it is EFBIG and SIGXFSZ, before any COPYIN (NetBSD's
                // enforce_rlimit_fsize).
                let test = if f.append() {
                    fs.size(v.ino())?
                } else {
                    match start {
                        Some(s) => s,
                        None => *f.offset.lock(),
                    }
                };
                if total > 0
                    && test
                        .checked_add(total)
                        .map_or(true, |e| e > i64::MAX as u64)
                {
                    let _ = self.port.raise(SIGXFSZ.0);
                    return Err(EFBIG);
                }
                let mut done = 0u64;
                while done < total {
                    let n = IO_CHUNK.min(total - done);
                    let data = match src.gather(self.port, done, n) {
                        Ok(d) => d,
                        Err(e) => return partial(done, e),
                    };
                    let r = match start {
                        Some(s) => s.checked_add(done).ok_or(Errno::EINVAL).and_then(|o| {
                            // pwrite on an O_APPEND description appends, as
                            // NetBSD's vn_write does.
                            fs.write(v.ino(), o, f.append(), &data).map(drop)
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

    /// The description in slot 0, checked for reading (`write` false) or
    /// writing, as read(2) and friends check before anything else.
    fn io_file(&self, write: bool) -> Result<Arc<OpenFile>, Errno> {
        let f = self.file_arg(0)?;
        let allowed = if write { f.writable() } else { f.readable() };
        if !allowed {
            return Err(Errno::EBADF);
        }
        Ok(f)
    }

    /// pread and pwrite: the seek checks (`ESPIPE` for anything but a
    /// vnode, `EINVAL` for a negative offset but on a device) before the
    /// transfer.
    fn at(f: &OpenFile, off: i64) -> Result<Option<i64>, Errno> {
        let FileObj::Vnode(v) = &f.obj else {
            return Err(Errno::ESPIPE);
        };
        if off < 0 && !matches!(v.fs().kind(v.ino())?, Kind::Dev(_)) {
            return Err(Errno::EINVAL);
        }
        Ok(Some(off))
    }

    fn read(&self) -> SysResult {
        let f = self.io_file(false)?;
        self.do_read(&f, &Segs::one(self.a.u64(1)?, self.a.u64(2)?)?, None)
    }

    fn write(&self) -> SysResult {
        let f = self.io_file(true)?;
        self.do_write(&f, &Segs::one(self.a.u64(1)?, self.a.u64(2)?)?, None)
    }

    fn pread(&self) -> SysResult {
        let f = self.io_file(false)?;
        let at = Self::at(&f, self.a.i64(4)?)?;
        let segs = Segs::one(self.a.u64(1)?, self.a.u64(2)?)?;
        self.do_read(&f, &segs, at)
    }

    fn pwrite(&self) -> SysResult {
        let f = self.io_file(true)?;
        let at = Self::at(&f, self.a.i64(4)?)?;
        let segs = Segs::one(self.a.u64(1)?, self.a.u64(2)?)?;
        self.do_write(&f, &segs, at)
    }

    /// readv and writev: an empty vector is `EINVAL` before anything else,
    /// as NetBSD's do_filereadv has it.
    fn iov_file(&self, write: bool) -> Result<(Arc<OpenFile>, Segs), Errno> {
        let cnt = self.a.i32(2)?;
        if cnt == 0 {
            return Err(Errno::EINVAL);
        }
        let f = self.io_file(write)?;
        let segs = Segs::from_iov(self.port, self.a.u64(1)?, cnt)?;
        Ok((f, segs))
    }

    fn readv(&self) -> SysResult {
        let (f, segs) = self.iov_file(false)?;
        self.do_read(&f, &segs, None)
    }

    fn writev(&self) -> SysResult {
        let (f, segs) = self.iov_file(true)?;
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
        // A device takes any offset (NetBSD's spec_seek); others none
        // below 0.
        let dev = matches!(v.fs().kind(v.ino())?, Kind::Dev(_));
        let new = base
            .checked_add(off)
            .filter(|&n| n >= 0 || dev)
            .ok_or(Errno::EINVAL)?;
        *cur = new as u64;
        ok(new)
    }

    fn ftruncate(&self) -> SysResult {
        let len = self.a.i64(2)?;
        if len < 0 {
            return Err(Errno::EINVAL);
        }
        let f = self.file_arg(0)?;
        let v = Self::vnode(&f)?;
        if !f.writable() {
            return Err(Errno::EINVAL);
        }
        if v.fs().kind(v.ino())? == Kind::Dir {
            return Err(Errno::EISDIR);
        }
        v.fs().setattr(v.ino(), SetAttr::Size(len as u64))?;
        ok(0)
    }

    fn fsync(&self) -> SysResult {
        let f = self.file_arg(0)?;
        Self::vnode(&f)?;
        ok(0)
    }

    fn getdents(&self) -> SysResult {
        let f = self.file_arg(0)?;
        let (buf, count) = (self.a.u64(1)?, self.a.usize(2)?);
        let v = Self::vnode(&f)?;
        if !f.readable() {
            return Err(Errno::EBADF);
        }
        if v.fs().kind(v.ino())? != Kind::Dir {
            return Err(Errno::EINVAL);
        }
        let (start, end, data) = {
            let mut off = f.offset.lock();
            let start = *off;
            let (data, next) = v.fs().getdents(v.ino(), start, count)?;
            *off = next;
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
        let directory = flags & oflag::O_DIRECTORY != 0;
        if create && directory {
            return Err(Errno::EINVAL);
        }
        let how = OpenHow {
            create,
            excl: flags & oflag::O_EXCL != 0,
            trunc: flags & oflag::O_TRUNC != 0,
            directory,
            nofollow: flags & O_NOFOLLOW != 0,
            write: acc != oflag::O_RDONLY,
            perm: (mode & !self.umask_now()) & ALLPERMS & !S_ISTXT,
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
        self.k.fs.remove(cwd.ino(), &path, false)?;
        ok(0)
    }

    fn mkdir(&self) -> SysResult {
        let path = self.path(0)?;
        let perm = self.a.u32(1)? & ACCESSPERMS & !self.umask_now();
        let cwd = self.cwd();
        self.k.fs.mkdir(cwd.ino(), &path, perm)?;
        ok(0)
    }

    fn rmdir(&self) -> SysResult {
        let path = self.path(0)?;
        let cwd = self.cwd();
        self.k.fs.remove(cwd.ino(), &path, true)?;
        ok(0)
    }

    fn link(&self) -> SysResult {
        let from = self.path(0)?;
        let to = self.path(1)?;
        let cwd = self.cwd();
        self.k.fs.link(cwd.ino(), &from, &to)?;
        ok(0)
    }

    fn symlink(&self) -> SysResult {
        let target = self.path(0)?;
        let path = self.path(1)?;
        let perm = ACCESSPERMS & !self.umask_now();
        let cwd = self.cwd();
        self.k.fs.symlink(cwd.ino(), &target, &path, perm)?;
        ok(0)
    }

    fn readlink(&self) -> SysResult {
        let path = self.path(0)?;
        let (buf, count) = (self.a.u64(1)?, self.a.u64(2)?);
        let cwd = self.cwd();
        let target = self.k.fs.readlink(cwd.ino(), &path)?;
        let n = target
            .len()
            .min(usize::try_from(count).unwrap_or(usize::MAX));
        if n > 0 {
            self.port.copyout(buf, &target[..n])?;
        }
        ok(n as i64)
    }

    fn chmod(&self) -> SysResult {
        let path = self.path(0)?;
        let m = self.a.u32(1)?;
        let cwd = self.cwd();
        self.k
            .fs
            .setattr_path(cwd.ino(), &path, SetAttr::Mode(m & ALLPERMS))?;
        ok(0)
    }

    fn fchmod(&self) -> SysResult {
        let f = self.file_arg(0)?;
        let m = self.a.u32(1)?;
        let v = Self::vnode(&f)?;
        v.fs().setattr(v.ino(), SetAttr::Mode(m & ALLPERMS))?;
        ok(0)
    }

    fn truncate(&self) -> SysResult {
        let len = self.a.i64(2)?;
        if len < 0 {
            return Err(Errno::EINVAL);
        }
        let path = self.path(0)?;
        let cwd = self.cwd();
        self.k
            .fs
            .setattr_path(cwd.ino(), &path, SetAttr::Size(len as u64))?;
        ok(0)
    }

    fn utimes(&self) -> SysResult {
        let tptr = self.a.u64(1)?;
        let attr = if tptr == 0 {
            SetAttr::Times(None, None)
        } else {
            // Two LP64 `struct timeval`: i64 seconds, i32 microseconds, pad.
            let mut raw = [0u8; 32];
            self.port.copyin(tptr, &mut raw)?;
            let tv = |b: &[u8]| {
                let mut sec = [0u8; 8];
                let mut usec = [0u8; 4];
                sec.copy_from_slice(&b[..8]);
                usec.copy_from_slice(&b[8..12]);
                Ts {
                    sec: i64::from_le_bytes(sec),
                    nsec: i64::from(i32::from_le_bytes(usec)) * 1000,
                }
            };
            SetAttr::Times(Some(tv(&raw[..16])), Some(tv(&raw[16..])))
        };
        let path = self.path(0)?;
        let cwd = self.cwd();
        self.k.fs.setattr_path(cwd.ino(), &path, attr)?;
        ok(0)
    }

    /// __mount50: only "tmpfs", with a `struct tmpfs_args` (version 1); a
    /// fresh empty tmpfs covers the directory.
    fn mount(&self) -> SysResult {
        let path = self.path(1)?;
        let flags = self.a.u32(2)?;
        let (data, len) = (self.a.u64(3)?, self.a.u64(4)?);
        let cwd = self.cwd();
        let (on, kind) = self.k.fs.lookup_ref(cwd.ino(), &path, Nd::FOLLOW)?;
        if flags & (MNT_UPDATE | MNT_GETARGS) != 0 {
            // Changing or reading a mount is not modelled.
            return Err(Errno::EOPNOTSUPP);
        }
        let ty = self
            .port
            .copyinstr(self.a.u64(0)?, MFSNAMELEN)
            .map_err(|e| if e == Errno::EFAULT { e } else { ENODEV })?;
        if ty != b"tmpfs" {
            return Err(ENODEV);
        }
        let args = if data == 0 {
            None
        } else {
            let len = if len == 0 {
                TMPFS_ARGS_SIZE as u64
            } else {
                len
            };
            if len > VFS_MAX_MOUNT_DATA {
                return Err(Errno::EINVAL);
            }
            Some(self.port.copyin_vec(data, len as usize)?)
        };
        if kind != Kind::Dir {
            return Err(Errno::ENOTDIR);
        }
        if flags & MNT_EXPORTED != 0 {
            return Err(Errno::EINVAL);
        }
        let args = args
            .filter(|a| a.len() >= TMPFS_ARGS_SIZE)
            .ok_or(Errno::EINVAL)?;
        let word = |at: usize| {
            let mut b = [0u8; 4];
            b.copy_from_slice(&args[at..at + 4]);
            b
        };
        if i32::from_le_bytes(word(0)) != TMPFS_ARGS_VERSION {
            return Err(Errno::EINVAL);
        }
        let mut size = [0u8; 8];
        size.copy_from_slice(&args[16..24]);
        let targs = TmpfsArgs {
            size_max: i64::from_le_bytes(size),
            uid: u32::from_le_bytes(word(24)),
            gid: u32::from_le_bytes(word(28)),
            mode: u32::from_le_bytes(word(32)) & ALLPERMS,
        };
        if on.ino() == ROOT_INO {
            // Covering the root is not modelled.
            return Err(Errno::EBUSY);
        }
        self.k.fs.mount_tmpfs(on.ino(), targs)?;
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
        let (kind, perm) = self.k.fs.access(cwd.ino(), &path)?;
        if amode & misc::X_OK != 0 && kind != Kind::Dir && perm & 0o111 == 0 {
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
        let (v, kind) = self.k.fs.lookup_ref(cwd.ino(), &path, Nd::FOLLOW)?;
        if kind != Kind::Dir {
            return Err(Errno::ENOTDIR);
        }
        self.set_cwd(v);
        ok(0)
    }

    fn fchdir(&self) -> SysResult {
        let f = self.file_arg(0)?;
        let v = Self::vnode(&f)?;
        if v.fs().kind(v.ino())? != Kind::Dir {
            return Err(Errno::ENOTDIR);
        }
        self.set_cwd(v.clone());
        ok(0)
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

    fn stat(&self, nd: Nd) -> SysResult {
        let path = self.path(0)?;
        let sb = self.a.u64(1)?;
        let cwd = self.cwd();
        let st = self.k.fs.stat_path(cwd.ino(), &path, nd)?;
        self.copyout_stat(&st, sb)
    }

    fn fstat(&self) -> SysResult {
        let f = self.file_arg(0)?;
        let sb = self.a.u64(1)?;
        let st = match &f.obj {
            FileObj::Vnode(v) => v.fs().stat(v.ino())?,
            FileObj::Pipe(end) => end.pipe.stat(end.writer),
            FileObj::Console => console_stat(),
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

    /// dup2 and dup3, as NetBSD's `dodup`: `to` out of range is
    /// `EBADF`; `from == to` changes nothing (flags unchecked); dup3 takes
    /// O_CLOEXEC and O_NONBLOCK (set on the description).
    fn dup_to(&self, from: i32, to: i32, flags: u32) -> SysResult {
        let file = self.file(from)?;
        if usize::try_from(to).map_or(true, |t| t >= FD_LIMIT) {
            return Err(Errno::EBADF);
        }
        if from == to {
            return ok(to as i64);
        }
        if flags & !(oflag::O_CLOEXEC | oflag::O_NONBLOCK) != 0 {
            return Err(Errno::EINVAL);
        }
        let cloexec = flags & oflag::O_CLOEXEC != 0;
        if flags & oflag::O_NONBLOCK != 0 {
            file.set_nonblock();
        }
        let old = self.p.st.lock().fds.place(to, FdEntry { file, cloexec })?;
        drop(old);
        ok(to as i64)
    }

    fn dup2(&self) -> SysResult {
        self.dup_to(self.a.i32(0)?, self.a.i32(1)?, 0)
    }

    fn dup3(&self) -> SysResult {
        self.dup_to(self.a.i32(0)?, self.a.i32(1)?, self.a.u32(2)?)
    }

    fn fcntl(&self) -> SysResult {
        let (fd, cmd) = (self.a.i32(0)?, self.a.u32(1)?);
        match cmd {
            F_CLOSEM => {
                // Closes every descriptor from fd up, fd open or not.
                if fd < 0 {
                    return Err(Errno::EBADF);
                }
                let gone = self.p.st.lock().fds.take_from(fd as usize);
                drop(gone);
                return ok(0);
            }
            // The highest open descriptor, -1 for none; fd is not looked at.
            F_MAXFD => return ok(i64::from(self.p.st.lock().fds.max_fd())),
            F_GETLK | F_SETLK | F_SETLKW => {
                // The flock is read first; then the descriptor; a pipe or
                // the console has no locks. Record locks on vnodes are not
                // modelled (see the module docs).
                let mut fl = [0u8; FLOCK_SIZE];
                self.port.copyin(self.a.u64(2)?, &mut fl)?;
                self.file(fd)?;
                return Err(Errno::EINVAL);
            }
            _ => {}
        }
        let file = self.file(fd)?;
        match cmd {
            fcntl::F_DUPFD | fcntl::F_DUPFD_CLOEXEC => {
                // NetBSD keeps the low 32 bits of the argument, unsigned.
                let min = self.a.u32(2)? as usize;
                if min >= FD_LIMIT {
                    return Err(Errno::EINVAL);
                }
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
                // NetBSD's FFLAGS: the argument plus one, so 3 sets
                // O_NONBLOCK.
                let new = (self.a.u64(2)?.wrapping_add(1) & u64::from(FCNTLFLAGS)) as u32;
                let changed = (new ^ file.flags()) & (oflag::O_NONBLOCK | O_ASYNC);
                match &file.obj {
                    FileObj::Pipe(_) => {}
                    // rumpcons answers FIONBIO and FIOASYNC with ENOTTY.
                    FileObj::Console if changed != 0 => return Err(Errno::ENOTTY),
                    FileObj::Console => {}
                    FileObj::Vnode(v) => match (v.fs().fstype(v.ino())?, v.fs().kind(v.ino())?) {
                        // The null device has no ioctls.
                        (_, Kind::Dev(_)) if changed != 0 => return Err(ENODEV),
                        (_, Kind::Dev(_)) | (FsType::Tmpfs, _) => {}
                        // rumpfs refuses fcntl from a remote process.
                        (FsType::Rumpfs, _) => return Err(Errno::EINVAL),
                    },
                }
                file.set_flags(new);
                ok(0)
            }
            F_GETNOSIGPIPE => ok(i64::from(file.nosigpipe())),
            F_SETNOSIGPIPE => {
                file.set_nosigpipe(self.a.u64(2)? != 0);
                ok(0)
            }
            // FIOGETOWN and FIOSETOWN, as each object answers them.
            F_GETOWN | F_SETOWN => match &file.obj {
                FileObj::Pipe(end) if cmd == F_GETOWN => ok(i64::from(end.owner())),
                FileObj::Pipe(end) => {
                    let id = self.a.i32(2)?;
                    if id > 0 && self.k.find_pid(id).is_none() {
                        return Err(Errno::ESRCH);
                    }
                    if id < 0 {
                        // No process groups to name.
                        return Err(Errno::EINVAL);
                    }
                    end.set_owner(id);
                    ok(0)
                }
                FileObj::Console => Err(Errno::ENOTTY),
                FileObj::Vnode(v) => Err(match (v.fs().fstype(v.ino())?, v.fs().kind(v.ino())?) {
                    (_, Kind::Dev(_)) => ENODEV,
                    // tmpfs's genfs_enoioctl answers EPASSTHROUGH, and
                    // NetBSD hands that (-4) back to the caller.
                    (FsType::Tmpfs, _) => EPASSTHROUGH,
                    (FsType::Rumpfs, _) => Errno::EOPNOTSUPP,
                }),
            },
            _ => Err(Errno::EINVAL),
        }
    }

    /// Makes a pipe and installs its ends; returns (read fd, write fd).
    /// The ends' F_GETFL shows every flag pipe2 was given, as NetBSD's.
    fn make_pipe(&self, flags: u32) -> Result<(i32, i32, [Arc<OpenFile>; 2]), Errno> {
        let (r, w) = Pipe::create(&self.k.big_pipes);
        let rf = OpenFile::with_flags(FileObj::Pipe(r), oflag::O_RDONLY | flags);
        let wf = OpenFile::with_flags(FileObj::Pipe(w), oflag::O_WRONLY | flags);
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
        if flags & !(oflag::O_CLOEXEC | oflag::O_NONBLOCK | O_NOSIGPIPE) != 0 {
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
        let new = self.a.u32(0)? & ALLPERMS;
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

/// fstat(2) of the console, as rumpcons answers it: a character device,
/// mode 0600, everything else 0 but the times (boot time).
fn console_stat() -> Stat {
    let mut st = Stat::default();
    st.st_mode.set(mode::S_IFCHR | 0o600);
    for t in [
        &mut st.st_atim,
        &mut st.st_mtim,
        &mut st.st_ctim,
        &mut st.st_birthtim,
    ] {
        t.sec.set(super::fs::BOOT_TIME);
    }
    st
}
