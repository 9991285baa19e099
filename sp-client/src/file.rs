//! A remote file as a `std::io` handle, and whole-file helpers.

use crate::abi::{misc, oflag};
use crate::errno::errno_to_io;
use crate::{Client, Errno, Stat};
use std::fmt;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::mem::ManuallyDrop;

/// The most one `read`/`write` system call of a [`RemoteFile`] moves: a
/// larger buffer is served in part, as `Read` and `Write` allow, so no frame
/// comes near the protocol's frame limits.
pub const IO_CHUNK: usize = 1 << 20;

/// Modes of the files [`Client::create_file`] and [`Client::write_file`]
/// create, before the remote process's umask (as `std::fs::File::create`).
const CREATE_MODE: u32 = 0o666;

/// A descriptor open in the remote kernel, owned: it implements
/// [`Read`], [`Write`] and [`Seek`] (also through `&RemoteFile`, as
/// `std::fs::File` does) and is closed when dropped.
///
/// A close that fails on drop is logged (`tracing::debug!`) and otherwise
/// ignored; call [`RemoteFile::close`] to see the error. Errors of the `io`
/// traits are [`io::Error`]s carrying the errno (see
/// [`io_errno`](crate::io_errno)).
///
/// ```no_run
/// use std::io::{Read, Seek, SeekFrom, Write};
///
/// let client = sp_client::Client::connect("unix:///tmp/rump.sock")?;
/// let mut f = client.create_file("/tmp/notes")?;
/// f.write_all(b"hello, world")?;
/// f.close()?;
/// let mut f = client.open_file("/tmp/notes")?;
/// f.seek(SeekFrom::Start(7))?;
/// let mut s = String::new();
/// f.read_to_string(&mut s)?;
/// assert_eq!(s, "world");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct RemoteFile<'c> {
    client: &'c Client,
    fd: i32,
}

impl<'c> RemoteFile<'c> {
    /// Takes ownership of descriptor `fd` of `client`'s remote process: it
    /// is closed when the handle is dropped.
    pub fn from_fd(client: &'c Client, fd: i32) -> RemoteFile<'c> {
        RemoteFile { client, fd }
    }

    /// The remote descriptor.
    pub fn fd(&self) -> i32 {
        self.fd
    }

    /// The client the descriptor belongs to.
    pub fn client(&self) -> &'c Client {
        self.client
    }

    /// Gives up ownership: returns the descriptor without closing it.
    pub fn into_fd(self) -> i32 {
        ManuallyDrop::new(self).fd
    }

    /// Closes the descriptor, reporting the error a drop would only log.
    pub fn close(self) -> Result<(), Errno> {
        let me = ManuallyDrop::new(self);
        me.client.close(me.fd)
    }

    /// fstat(2) of the descriptor.
    pub fn stat(&self) -> Result<Stat, Errno> {
        self.client.fstat(self.fd)
    }

    /// ftruncate(2): cuts or extends the file to `len` bytes.
    pub fn set_len(&self, len: u64) -> Result<(), Errno> {
        let len = i64::try_from(len).map_err(|_| Errno::EINVAL)?;
        self.client.ftruncate(self.fd, len)
    }

    /// fsync(2).
    pub fn sync_all(&self) -> Result<(), Errno> {
        self.client.fsync(self.fd)
    }

    /// pread(2) at `offset`, at most [`IO_CHUNK`] bytes; the file offset
    /// does not move.
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize, Errno> {
        let off = i64::try_from(offset).map_err(|_| Errno::EINVAL)?;
        let n = buf.len().min(IO_CHUNK);
        self.client.pread(self.fd, &mut buf[..n], off)
    }

    /// pwrite(2) at `offset`, at most [`IO_CHUNK`] bytes; the file offset
    /// does not move.
    pub fn write_at(&self, data: &[u8], offset: u64) -> Result<usize, Errno> {
        let off = i64::try_from(offset).map_err(|_| Errno::EINVAL)?;
        let n = data.len().min(IO_CHUNK);
        self.client.pwrite(self.fd, &data[..n], off)
    }

    fn read_some(&self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(IO_CHUNK);
        self.client
            .read(self.fd, &mut buf[..n])
            .map_err(errno_to_io)
    }

    fn write_some(&self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(IO_CHUNK);
        self.client.write(self.fd, &data[..n]).map_err(errno_to_io)
    }

    fn seek_to(&self, pos: SeekFrom) -> io::Result<u64> {
        let (off, whence) = match pos {
            SeekFrom::Start(n) => {
                let n = i64::try_from(n).map_err(|_| errno_to_io(Errno::EINVAL))?;
                (n, misc::SEEK_SET)
            }
            SeekFrom::Current(d) => (d, misc::SEEK_CUR),
            SeekFrom::End(d) => (d, misc::SEEK_END),
        };
        let at = self
            .client
            .lseek(self.fd, off, whence)
            .map_err(errno_to_io)?;
        u64::try_from(at).map_err(|_| errno_to_io(Errno::EIO))
    }
}

impl Drop for RemoteFile<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.client.close(self.fd) {
            tracing::debug!("closing remote descriptor {} on drop: {e}", self.fd);
        }
    }
}

impl fmt::Debug for RemoteFile<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteFile")
            .field("fd", &self.fd)
            .field("url", &self.client.url())
            .finish()
    }
}

impl Read for &RemoteFile<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_some(buf)
    }
}

impl Read for RemoteFile<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_some(buf)
    }
}

impl Write for &RemoteFile<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.write_some(data)
    }

    /// Nothing is buffered on this side: a no-op (use
    /// [`RemoteFile::sync_all`] for fsync).
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Write for RemoteFile<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.write_some(data)
    }

    /// Nothing is buffered on this side: a no-op.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Seek for &RemoteFile<'_> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.seek_to(pos)
    }
}

impl Seek for RemoteFile<'_> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.seek_to(pos)
    }
}

impl Client {
    /// Opens `path` for reading (`O_RDONLY | O_CLOEXEC`).
    pub fn open_file(&self, path: impl AsRef<[u8]>) -> Result<RemoteFile<'_>, Errno> {
        self.open_file_with(path, oflag::O_RDONLY | oflag::O_CLOEXEC, 0)
    }

    /// Creates `path`, or truncates it, for writing (`O_WRONLY | O_CREAT |
    /// O_TRUNC | O_CLOEXEC`, mode 0666 before the umask).
    pub fn create_file(&self, path: impl AsRef<[u8]>) -> Result<RemoteFile<'_>, Errno> {
        let flags = oflag::O_WRONLY | oflag::O_CREAT | oflag::O_TRUNC | oflag::O_CLOEXEC;
        self.open_file_with(path, flags, CREATE_MODE)
    }

    /// Opens `path` with NetBSD open `flags` ([`oflag`]) and `mode`, as
    /// [`Client::open`] does, and owns the descriptor.
    pub fn open_file_with(
        &self,
        path: impl AsRef<[u8]>,
        flags: u32,
        mode: u32,
    ) -> Result<RemoteFile<'_>, Errno> {
        let fd = self.open(path, flags, mode)?;
        Ok(RemoteFile::from_fd(self, fd))
    }

    /// The whole contents of the file at `path`.
    pub fn read_file(&self, path: impl AsRef<[u8]>) -> Result<Vec<u8>, Errno> {
        let f = self.open_file(path)?;
        let mut out = Vec::new();
        let mut chunk = 64 * 1024;
        loop {
            let start = out.len();
            out.resize(start + chunk, 0);
            match self.read(f.fd, &mut out[start..]) {
                Ok(0) => {
                    out.truncate(start);
                    break;
                }
                Ok(n) => {
                    out.truncate(start + n.min(chunk));
                    chunk = (chunk * 2).min(IO_CHUNK);
                }
                Err(Errno::EINTR) => out.truncate(start),
                Err(e) => return Err(e),
            }
        }
        f.close()?;
        Ok(out)
    }

    /// Makes `data` the contents of the file at `path`, creating it if need
    /// be (mode 0666 before the umask) and truncating it if it exists.
    pub fn write_file(&self, path: impl AsRef<[u8]>, data: impl AsRef<[u8]>) -> Result<(), Errno> {
        let f = self.create_file(path)?;
        let mut rest = data.as_ref();
        while !rest.is_empty() {
            let n = rest.len().min(IO_CHUNK);
            match self.write(f.fd, &rest[..n]) {
                // A write that makes no progress would loop forever.
                Ok(0) => return Err(Errno::EIO),
                Ok(done) => rest = rest.get(done..).ok_or(Errno::EIO)?,
                Err(Errno::EINTR) => {}
                Err(e) => return Err(e),
            }
        }
        f.close()
    }
}
