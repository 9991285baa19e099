//! Typed wrappers for the system calls of the model kernel, with NetBSD
//! numbers, argument layouts and errno values.

use crate::abi::{misc, oflag, Dirent, Iovec, Signal, Stat as RawStat, Sysnum};
use crate::{Call, Client, DirEntry, Errno, Stat};
use std::ffi::CString;

/// A path as a C string; an interior NUL is EINVAL.
fn cpath(p: &[u8]) -> Result<CString, Errno> {
    CString::new(p).map_err(|_| Errno::EINVAL)
}

/// A nonnegative count or descriptor from `retval[0]`.
fn count(r: [i64; 2]) -> Result<usize, Errno> {
    usize::try_from(r[0]).map_err(|_| Errno::EIO)
}

fn int(r: [i64; 2]) -> i32 {
    r[0] as i32
}

/// NetBSD `PROT_READ | PROT_WRITE`.
const PROT_RW: i32 = 0x3;

impl Client {
    /// getpid(2): this process's pid and its parent's, in the kernel.
    pub fn getpid(&self) -> Result<(i32, i32), Errno> {
        let r = self.call(Call::new(Sysnum::GETPID))?;
        Ok((r[0] as i32, r[1] as i32))
    }

    /// getppid(2).
    pub fn getppid(&self) -> Result<i32, Errno> {
        self.call(Call::new(Sysnum::GETPPID)).map(int)
    }

    /// open(2) with NetBSD flags ([`oflag`]); returns the descriptor.
    pub fn open(&self, path: impl AsRef<[u8]>, flags: u32, mode: u32) -> Result<i32, Errno> {
        let p = cpath(path.as_ref())?;
        self.call(
            Call::new(Sysnum::OPEN)
                .cstr(&p)
                .int(flags as i32)
                .int(mode as i32),
        )
        .map(int)
    }

    /// close(2).
    pub fn close(&self, fd: i32) -> Result<(), Errno> {
        self.call(Call::new(Sysnum::CLOSE).int(fd)).map(drop)
    }

    /// read(2) into `buf`; returns the bytes read.
    pub fn read(&self, fd: i32, buf: &mut [u8]) -> Result<usize, Errno> {
        let n = buf.len() as u64;
        self.call(Call::new(Sysnum::READ).int(fd).output(buf).arg(n))
            .and_then(count)
    }

    /// write(2) of `data`; returns the bytes written.
    pub fn write(&self, fd: i32, data: &[u8]) -> Result<usize, Errno> {
        self.call(
            Call::new(Sysnum::WRITE)
                .int(fd)
                .input(data)
                .arg(data.len() as u64),
        )
        .and_then(count)
    }

    /// pread(2): `(fd, buf, n, PAD, off)`.
    pub fn pread(&self, fd: i32, buf: &mut [u8], off: i64) -> Result<usize, Errno> {
        let n = buf.len() as u64;
        self.call(
            Call::new(Sysnum::PREAD)
                .int(fd)
                .output(buf)
                .arg(n)
                .pad()
                .off(off),
        )
        .and_then(count)
    }

    /// pwrite(2): `(fd, buf, n, PAD, off)`.
    pub fn pwrite(&self, fd: i32, data: &[u8], off: i64) -> Result<usize, Errno> {
        let n = data.len() as u64;
        self.call(
            Call::new(Sysnum::PWRITE)
                .int(fd)
                .input(data)
                .arg(n)
                .pad()
                .off(off),
        )
        .and_then(count)
    }

    /// lseek(2): `(fd, PAD, off, whence)` with NetBSD's `SEEK_*`
    /// ([`misc`]); returns the new offset.
    pub fn lseek(&self, fd: i32, off: i64, whence: u32) -> Result<i64, Errno> {
        self.call(
            Call::new(Sysnum::LSEEK)
                .int(fd)
                .pad()
                .off(off)
                .int(whence as i32),
        )
        .map(|r| r[0])
    }

    /// ftruncate(2): `(fd, PAD, len)`.
    pub fn ftruncate(&self, fd: i32, len: i64) -> Result<(), Errno> {
        self.call(Call::new(Sysnum::FTRUNCATE).int(fd).pad().off(len))
            .map(drop)
    }

    /// fsync(2).
    pub fn fsync(&self, fd: i32) -> Result<(), Errno> {
        self.call(Call::new(Sysnum::FSYNC).int(fd)).map(drop)
    }

    fn stat_call(&self, sysnum: Sysnum, path: &[u8]) -> Result<RawStat, Errno> {
        let p = cpath(path)?;
        let mut buf = [0u8; RawStat::SIZE];
        self.call(Call::new(sysnum).cstr(&p).output(&mut buf))?;
        RawStat::from_bytes(&buf).ok_or(Errno::EIO)
    }

    /// stat(2) (NetBSD's `__stat50`): the status of the file at `path`,
    /// symbolic links followed.
    pub fn stat(&self, path: impl AsRef<[u8]>) -> Result<Stat, Errno> {
        self.stat_raw(path).map(Stat::from)
    }

    /// lstat(2): like [`Client::stat`], but a symbolic link is not
    /// followed.
    pub fn lstat(&self, path: impl AsRef<[u8]>) -> Result<Stat, Errno> {
        self.lstat_raw(path).map(Stat::from)
    }

    /// fstat(2): the status of the file open as `fd`.
    pub fn fstat(&self, fd: i32) -> Result<Stat, Errno> {
        self.fstat_raw(fd).map(Stat::from)
    }

    /// [`Client::stat`] returning NetBSD's `struct stat` as it came.
    pub fn stat_raw(&self, path: impl AsRef<[u8]>) -> Result<RawStat, Errno> {
        self.stat_call(Sysnum::STAT, path.as_ref())
    }

    /// [`Client::lstat`] returning NetBSD's `struct stat` as it came.
    pub fn lstat_raw(&self, path: impl AsRef<[u8]>) -> Result<RawStat, Errno> {
        self.stat_call(Sysnum::LSTAT, path.as_ref())
    }

    /// [`Client::fstat`] returning NetBSD's `struct stat` as it came.
    pub fn fstat_raw(&self, fd: i32) -> Result<RawStat, Errno> {
        let mut buf = [0u8; RawStat::SIZE];
        self.call(Call::new(Sysnum::FSTAT).int(fd).output(&mut buf))?;
        RawStat::from_bytes(&buf).ok_or(Errno::EIO)
    }

    /// getdents(2): fills `buf` with NetBSD `struct dirent` records (decode
    /// them with [`Dirent::decode_all`]); returns the bytes used, 0 at the end.
    pub fn getdents(&self, fd: i32, buf: &mut [u8]) -> Result<usize, Errno> {
        let n = buf.len() as u64;
        self.call(Call::new(Sysnum::GETDENTS).int(fd).output(buf).arg(n))
            .and_then(count)
    }

    /// Every entry of the directory at `path`, `.` and `..` included, in the
    /// kernel's order (open, getdents until the end, close).
    pub fn read_dir(&self, path: impl AsRef<[u8]>) -> Result<Vec<DirEntry>, Errno> {
        self.read_dir_raw(path)
            .map(|v| v.into_iter().map(DirEntry::from).collect())
    }

    /// [`Client::read_dir`] returning NetBSD's records as they came.
    pub fn read_dir_raw(&self, path: impl AsRef<[u8]>) -> Result<Vec<Dirent>, Errno> {
        let fd = self.open(path, oflag::O_RDONLY | oflag::O_DIRECTORY, 0)?;
        let mut out = Vec::new();
        let mut buf = vec![0u8; 4096];
        let res = loop {
            match self.getdents(fd, &mut buf) {
                Ok(0) => break Ok(()),
                Ok(n) => match buf.get(..n).and_then(Dirent::decode_all) {
                    Some(ents) => out.extend(ents),
                    None => break Err(Errno::EIO),
                },
                Err(e) => break Err(e),
            }
        };
        let closed = self.close(fd);
        res.and(closed).map(|()| out)
    }

    /// mkdir(2).
    pub fn mkdir(&self, path: impl AsRef<[u8]>, mode: u32) -> Result<(), Errno> {
        let p = cpath(path.as_ref())?;
        self.call(Call::new(Sysnum::MKDIR).cstr(&p).int(mode as i32))
            .map(drop)
    }

    /// rmdir(2).
    pub fn rmdir(&self, path: impl AsRef<[u8]>) -> Result<(), Errno> {
        let p = cpath(path.as_ref())?;
        self.call(Call::new(Sysnum::RMDIR).cstr(&p)).map(drop)
    }

    /// unlink(2).
    pub fn unlink(&self, path: impl AsRef<[u8]>) -> Result<(), Errno> {
        let p = cpath(path.as_ref())?;
        self.call(Call::new(Sysnum::UNLINK).cstr(&p)).map(drop)
    }

    /// rename(2).
    pub fn rename(&self, from: impl AsRef<[u8]>, to: impl AsRef<[u8]>) -> Result<(), Errno> {
        let (f, t) = (cpath(from.as_ref())?, cpath(to.as_ref())?);
        self.call(Call::new(Sysnum::RENAME).cstr(&f).cstr(&t))
            .map(drop)
    }

    /// access(2) with NetBSD's `R_OK`/`W_OK`/`X_OK`/`F_OK` ([`misc`]).
    pub fn access(&self, path: impl AsRef<[u8]>, mode: u32) -> Result<(), Errno> {
        let p = cpath(path.as_ref())?;
        self.call(Call::new(Sysnum::ACCESS).cstr(&p).int(mode as i32))
            .map(drop)
    }

    /// chdir(2).
    pub fn chdir(&self, path: impl AsRef<[u8]>) -> Result<(), Errno> {
        let p = cpath(path.as_ref())?;
        self.call(Call::new(Sysnum::CHDIR).cstr(&p)).map(drop)
    }

    /// fchdir(2).
    pub fn fchdir(&self, fd: i32) -> Result<(), Errno> {
        self.call(Call::new(Sysnum::FCHDIR).int(fd)).map(drop)
    }

    /// `__getcwd(2)`: the current directory, without its NUL.
    pub fn getcwd(&self) -> Result<Vec<u8>, Errno> {
        let mut buf = vec![0u8; 4096];
        let n = buf.len() as u64;
        self.call(Call::new(Sysnum::GETCWD).output(&mut buf).arg(n))?;
        let end = buf.iter().position(|&b| b == 0).ok_or(Errno::ERANGE)?;
        buf.truncate(end);
        Ok(buf)
    }

    /// umask(2); returns the previous mask.
    pub fn umask(&self, mask: u32) -> Result<u32, Errno> {
        self.call(Call::new(Sysnum::UMASK).int(mask as i32))
            .map(|r| r[0] as u32)
    }

    /// dup(2).
    pub fn dup(&self, fd: i32) -> Result<i32, Errno> {
        self.call(Call::new(Sysnum::DUP).int(fd)).map(int)
    }

    /// dup2(2).
    pub fn dup2(&self, from: i32, to: i32) -> Result<i32, Errno> {
        self.call(Call::new(Sysnum::DUP2).int(from).int(to))
            .map(int)
    }

    /// dup3(2) with NetBSD's `O_CLOEXEC`/`O_NONBLOCK` flags.
    pub fn dup3(&self, from: i32, to: i32, flags: u32) -> Result<i32, Errno> {
        self.call(Call::new(Sysnum::DUP3).int(from).int(to).int(flags as i32))
            .map(int)
    }

    /// pipe(2): the read and write ends (the second comes in `retval[1]`).
    pub fn pipe(&self) -> Result<(i32, i32), Errno> {
        let r = self.call(Call::new(Sysnum::PIPE))?;
        Ok((r[0] as i32, r[1] as i32))
    }

    /// pipe2(2): the ends come back through a COPYOUT of two `int`s.
    pub fn pipe2(&self, flags: u32) -> Result<(i32, i32), Errno> {
        let mut fds = [0u8; 8];
        self.call(Call::new(Sysnum::PIPE2).output(&mut fds).int(flags as i32))?;
        let a = i32::from_le_bytes([fds[0], fds[1], fds[2], fds[3]]);
        let b = i32::from_le_bytes([fds[4], fds[5], fds[6], fds[7]]);
        Ok((a, b))
    }

    /// fcntl(2) with an integer argument (NetBSD's `F_*`, `FD_CLOEXEC`).
    pub fn fcntl(&self, fd: i32, cmd: u32, arg: i64) -> Result<i32, Errno> {
        self.call(Call::new(Sysnum::FCNTL).int(fd).int(cmd as i32).off(arg))
            .map(int)
    }

    /// kill(2) with a NetBSD signal ([`Signal`], or its number).
    pub fn kill(&self, pid: i32, sig: impl Into<Signal>) -> Result<(), Errno> {
        let sig: Signal = sig.into();
        self.call(Call::new(Sysnum::KILL).int(pid).int(sig.0 as i32))
            .map(drop)
    }

    /// readv(2): the iovec array (16-byte `{base, len}` records) and every
    /// data buffer are exposed.
    pub fn readv(&self, fd: i32, bufs: &mut [&mut [u8]]) -> Result<usize, Errno> {
        let iov = iovecs(bufs.iter().map(|b| &**b));
        let n = i32::try_from(bufs.len()).map_err(|_| Errno::EINVAL)?;
        let mut call = Call::new(Sysnum::READV)
            .int(fd)
            .input(Iovec::array_bytes(&iov))
            .int(n);
        for b in bufs.iter_mut() {
            call = call.expose(crate::Buf::Out(b));
        }
        self.call(call).and_then(count)
    }

    /// writev(2): the iovec array and every data buffer are exposed.
    pub fn writev(&self, fd: i32, bufs: &[&[u8]]) -> Result<usize, Errno> {
        let iov = iovecs(bufs.iter().copied());
        let n = i32::try_from(bufs.len()).map_err(|_| Errno::EINVAL)?;
        let mut call = Call::new(Sysnum::WRITEV)
            .int(fd)
            .input(Iovec::array_bytes(&iov))
            .int(n);
        for b in bufs {
            call = call.expose(crate::Buf::In(b));
        }
        self.call(call).and_then(count)
    }

    /// mmap(2) of `len` bytes of anonymous private read-write memory:
    /// `(addr 0, len, PROT_READ|PROT_WRITE, MAP_ANON|MAP_PRIVATE, fd -1,
    /// PAD, pos 0)`. The kernel asks this client for the memory (ANONMMAP);
    /// the returned address is reachable with [`Client::mapping`].
    pub fn mmap_anon(&self, len: u64) -> Result<u64, Errno> {
        let flags = (misc::MAP_ANON | misc::MAP_PRIVATE) as i32;
        let call = Call::new(Sysnum::MMAP)
            .arg(0)
            .arg(len)
            .int(PROT_RW)
            .int(flags)
            .int(-1)
            .pad()
            .off(0);
        self.call(call).map(|r| r[0] as u64)
    }
}

/// The `struct iovec` records of `bufs`: each buffer's address and length.
fn iovecs<'b>(bufs: impl Iterator<Item = &'b [u8]>) -> Vec<Iovec> {
    bufs.map(|b| Iovec::new(b.as_ptr() as u64, b.len() as u64))
        .collect()
}
