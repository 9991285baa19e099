//! The `std::io` face of the client: [`RemoteFile`](crate::RemoteFile)'s
//! Read/Write/Seek, `read_file`/`write_file` and errors as `io::Error`,
//! against a scripted server that keeps files in memory.

use super::*;
use crate::abi::{misc, mode, oflag, Stat as RawStat, Sysnum};
use crate::{io_errno, Errno, RemoteFile, IO_CHUNK};
use sp_proto::Message;
use std::collections::HashMap;
use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};
use std::sync::Arc;

/// One system call the fake saw: number and argument slots.
type Seen = (Sysnum, Vec<u64>);

/// A tiny file system behind a scripted server: open, read, write, pread,
/// pwrite, lseek, fstat, ftruncate, fsync, close on in-memory files.
#[derive(Default)]
struct FakeFs {
    files: HashMap<Vec<u8>, Vec<u8>>,
    /// fd -> (path, offset, flags)
    fds: HashMap<i64, (Vec<u8>, i64, u32)>,
    next_fd: i64,
    /// Server-side reqnos for copy requests.
    reqno: u64,
    seen: Vec<Seen>,
}

impl FakeFs {
    fn copyin(&mut self, p: &mut Peer, string: bool, len: u64, addr: u64) -> Vec<u8> {
        self.reqno += 1;
        let reqno = self.reqno;
        p.send(Message::CopyinReq {
            reqno,
            string,
            len,
            addr,
        });
        p.copyin_resp(reqno)
    }

    fn copyout(&mut self, p: &mut Peer, addr: u64, data: &[u8]) {
        self.reqno += 1;
        p.send(Message::Copyout {
            reqno: self.reqno,
            string: false,
            addr,
            data,
        });
    }

    fn file(&mut self, fd: u64) -> Result<(&mut Vec<u8>, &mut i64, u32), Errno> {
        let (path, off, flags) = self.fds.get_mut(&(fd as i64)).ok_or(Errno::EBADF)?;
        let data = self.files.get_mut(path.as_slice()).ok_or(Errno::EIO)?;
        Ok((data, off, *flags))
    }

    /// Runs one call; the syscall answer is sent by the caller.
    fn call(&mut self, p: &mut Peer, n: Sysnum, a: &[u64]) -> Result<i64, Errno> {
        match n {
            Sysnum::OPEN => {
                let mut path = self.copyin(p, true, 1024, a[0]);
                path.pop(); // the NUL
                let flags = a[1] as u32;
                if !self.files.contains_key(&path) {
                    if flags & oflag::O_CREAT == 0 {
                        return Err(Errno::ENOENT);
                    }
                    self.files.insert(path.clone(), Vec::new());
                }
                if flags & oflag::O_TRUNC != 0 {
                    self.files.insert(path.clone(), Vec::new());
                }
                self.next_fd += 1;
                let fd = self.next_fd + 2;
                self.fds.insert(fd, (path, 0, flags));
                Ok(fd)
            }
            Sysnum::CLOSE => self
                .fds
                .remove(&(a[0] as i64))
                .map(|_| 0)
                .ok_or(Errno::EBADF),
            Sysnum::READ | Sysnum::PREAD => {
                let (data, off, flags) = self.file(a[0])?;
                if flags & oflag::O_ACCMODE == oflag::O_WRONLY {
                    return Err(Errno::EBADF);
                }
                let at = if n == Sysnum::PREAD {
                    a[4] as i64
                } else {
                    *off
                };
                let start = (at as usize).min(data.len());
                let end = (start + a[2] as usize).min(data.len());
                let chunk = data[start..end].to_vec();
                if n == Sysnum::READ {
                    *off += chunk.len() as i64;
                }
                if !chunk.is_empty() {
                    self.copyout(p, a[1], &chunk);
                }
                Ok(chunk.len() as i64)
            }
            Sysnum::WRITE | Sysnum::PWRITE => {
                self.file(a[0])?;
                let bytes = self.copyin(p, false, a[2], a[1]);
                let (data, off, _) = self.file(a[0])?;
                let at = if n == Sysnum::PWRITE {
                    a[4] as usize
                } else {
                    *off as usize
                };
                if data.len() < at + bytes.len() {
                    data.resize(at + bytes.len(), 0);
                }
                data[at..at + bytes.len()].copy_from_slice(&bytes);
                if n == Sysnum::WRITE {
                    *off += bytes.len() as i64;
                }
                Ok(bytes.len() as i64)
            }
            Sysnum::LSEEK => {
                let (data, off, _) = self.file(a[0])?;
                let base = match a[3] as u32 {
                    misc::SEEK_SET => 0,
                    misc::SEEK_CUR => *off,
                    misc::SEEK_END => data.len() as i64,
                    _ => return Err(Errno::EINVAL),
                };
                let to = base + a[2] as i64;
                if to < 0 {
                    return Err(Errno::EINVAL);
                }
                *off = to;
                Ok(to)
            }
            Sysnum::FSTAT => {
                let (data, _, _) = self.file(a[0])?;
                let mut st = RawStat::default();
                st.st_size.set(data.len() as i64);
                st.st_mode.set(mode::S_IFREG | 0o640);
                st.st_nlink.set(1);
                st.st_ino.set(a[0] + 100);
                self.copyout(p, a[1], &st.to_bytes());
                Ok(0)
            }
            Sysnum::FTRUNCATE => {
                let (data, _, _) = self.file(a[0])?;
                data.resize(a[2] as usize, 0);
                Ok(0)
            }
            Sysnum::FSYNC => self.file(a[0]).map(|_| 0),
            other => panic!("the fake has no syscall {other}"),
        }
    }
}

/// A client whose server is a [`FakeFs`] holding `files`; the fake is
/// shared so a test can look at it once the client is gone.
fn fake_fs(files: &[(&str, &[u8])]) -> (Client, Arc<parking_lot::Mutex<FakeFs>>, JoinHandle<()>) {
    let fs = Arc::new(parking_lot::Mutex::new(FakeFs::default()));
    for (name, data) in files {
        fs.lock()
            .files
            .insert(name.as_bytes().to_vec(), data.to_vec());
    }
    let fs2 = fs.clone();
    let (c, h) = guest(move |p| {
        // Until the client hangs up.
        while let Some(raw) = p.raw() {
            let h = sp_proto::Header::read(&raw).unwrap();
            let (reqno, n, args) = match Message::decode(&h, &raw[HEADER_LEN..]).unwrap() {
                Message::Syscall {
                    reqno,
                    sysnum,
                    args,
                } => (
                    reqno,
                    Sysnum(sysnum),
                    sp_proto::Args(args)
                        .slots()
                        .iter()
                        .map(|s| s.get())
                        .collect::<Vec<_>>(),
                ),
                m => panic!("expected a syscall, got {m:?}"),
            };
            let mut fs = fs2.lock();
            fs.seen.push((n, args.clone()));
            match fs.call(p, n, &args) {
                Ok(v) => p.ret(reqno, 0, [v, 0]),
                Err(e) => p.ret(reqno, e.0, [0, 0]),
            }
        }
    });
    (c, fs, h)
}

/// The calls of number `n` the fake saw.
fn calls(fs: &parking_lot::Mutex<FakeFs>, n: Sysnum) -> Vec<Vec<u64>> {
    fs.lock()
        .seen
        .iter()
        .filter(|(m, _)| *m == n)
        .map(|(_, a)| a.clone())
        .collect()
}

#[test]
fn read_write_seek_through_std_io() {
    let (c, fs, h) = fake_fs(&[]);
    let flags = oflag::O_RDWR | oflag::O_CREAT;
    let mut f = c.open_file_with("/f", flags, 0o600).unwrap();
    f.write_all(b"hello world").unwrap();
    f.flush().unwrap();
    assert_eq!(f.stream_position().unwrap(), 11);
    assert_eq!(f.seek(SeekFrom::Start(6)).unwrap(), 6);
    let mut five = [0u8; 5];
    f.read_exact(&mut five).unwrap();
    assert_eq!(&five, b"world");
    assert_eq!(f.seek(SeekFrom::End(-5)).unwrap(), 6);
    assert_eq!(f.seek(SeekFrom::Current(-6)).unwrap(), 0);
    let mut all = String::new();
    f.read_to_string(&mut all).unwrap();
    assert_eq!(all, "hello world");
    // Through a shared reference too, as with std::fs::File.
    (&f).rewind().unwrap();
    let mut s = String::new();
    (&f).take(5).read_to_string(&mut s).unwrap();
    assert_eq!(s, "hello");
    (&f).write_all(b"!").unwrap();
    assert_eq!(f.read_at(&mut five, 0), Ok(5));
    assert_eq!(&five, b"hello");
    assert_eq!(f.write_at(b"J", 0), Ok(1));
    assert_eq!(
        f.stream_position().unwrap(),
        6,
        "pread/pwrite keep the offset"
    );
    let st = f.stat().unwrap();
    assert!(st.is_file());
    assert_eq!((st.size(), st.permissions()), (11, 0o640));
    f.set_len(3).unwrap();
    f.sync_all().unwrap();
    assert_eq!(c.fstat_raw(f.fd()).unwrap().st_size.get(), 3);
    // A seek before the start: the kernel's EINVAL as an io::Error.
    let e = f.seek(SeekFrom::Current(-100)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert_eq!(io_errno(&e), Some(Errno::EINVAL));
    let e = f.seek(SeekFrom::Start(u64::MAX)).unwrap_err();
    assert_eq!(io_errno(&e), Some(Errno::EINVAL), "refused before the wire");
    let fd = f.fd();
    f.close().unwrap();
    drop(c);
    h.join().unwrap();
    let fs = fs.lock();
    assert_eq!(fs.files[&b"/f"[..]], b"Jel");
    let open = &fs.seen[0];
    assert_eq!(
        (open.0, open.1[1], open.1[2]),
        (Sysnum::OPEN, u64::from(flags), 0o600)
    );
    let closes: Vec<_> = fs
        .seen
        .iter()
        .filter(|(n, _)| *n == Sysnum::CLOSE)
        .collect();
    assert_eq!(
        closes.len(),
        1,
        "close() closes once, and drop does not again"
    );
    assert_eq!(closes[0].1[0], fd as u64);
}

#[test]
fn drop_closes_and_close_reports_errors() {
    let (c, fs, h) = fake_fs(&[("/a", b"x")]);
    let f = c.open_file("/a").unwrap();
    let fd = f.fd();
    assert_eq!(calls(&fs, Sysnum::CLOSE).len(), 0);
    drop(f);
    assert_eq!(
        calls(&fs, Sysnum::CLOSE),
        [vec![fd as u64]],
        "dropped: closed"
    );
    // A descriptor nobody opened: the close error comes back from close()
    // and is only logged on drop.
    assert_eq!(RemoteFile::from_fd(&c, 42).close(), Err(Errno::EBADF));
    drop(RemoteFile::from_fd(&c, 43));
    assert_eq!(calls(&fs, Sysnum::CLOSE).len(), 3);
    // into_fd gives the descriptor back unclosed.
    let f = c.open_file("/a").unwrap();
    let fd = f.into_fd();
    assert_eq!(calls(&fs, Sysnum::CLOSE).len(), 3);
    assert_eq!(c.close(fd), Ok(()));
    // The flags of open_file and create_file.
    let f = c.create_file("/new").unwrap();
    drop(f);
    let opens = calls(&fs, Sysnum::OPEN);
    assert_eq!(
        opens[0][1],
        u64::from(oflag::O_RDONLY | oflag::O_CLOEXEC),
        "open_file"
    );
    assert_eq!(
        (opens[2][1], opens[2][2]),
        (
            u64::from(oflag::O_WRONLY | oflag::O_CREAT | oflag::O_TRUNC | oflag::O_CLOEXEC),
            0o666
        ),
        "create_file"
    );
    assert_eq!(c.open_file("/missing").unwrap_err(), Errno::ENOENT);
    drop(c);
    h.join().unwrap();
}

#[test]
fn io_errors_carry_the_errno() {
    let (c, _fs, h) = fake_fs(&[("/w", b"")]);
    let mut bad = RemoteFile::from_fd(&c, 99);
    let e = bad.read(&mut [0u8; 4]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert_eq!(io_errno(&e), Some(Errno::EBADF));
    assert_eq!(e.to_string(), "EBADF (Bad file descriptor)");
    assert_eq!(io_errno(&bad.write(b"x").unwrap_err()), Some(Errno::EBADF));
    assert_eq!(
        io_errno(&bad.seek(SeekFrom::Start(0)).unwrap_err()),
        Some(Errno::EBADF)
    );
    // Reading a write-only file.
    let mut w = c.create_file("/w").unwrap();
    let e = w.read_to_end(&mut Vec::new()).unwrap_err();
    assert_eq!(io_errno(&e), Some(Errno::EBADF));
    drop((bad, w));
    // Once disconnected, calls fail with ENOTCONN (NotConnected).
    let f = c.open_file("/w").unwrap();
    c.disconnect();
    let e = (&f).read(&mut [0u8; 1]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotConnected);
    drop(f); // the close fails too; only logged
    h.join().unwrap();
}

#[test]
fn whole_files_and_large_transfers_in_chunks() {
    let (c, fs, h) = fake_fs(&[("/small", b"tiny")]);
    assert_eq!(c.read_file("/small").unwrap(), b"tiny");
    assert_eq!(c.read_file("/missing"), Err(Errno::ENOENT));
    assert_eq!(c.read_file("/empty"), Err(Errno::ENOENT));
    c.write_file("/empty", b"").unwrap();
    assert_eq!(c.read_file("/empty").unwrap(), b"");
    // Several chunks' worth, both ways.
    let big: Vec<u8> = (0..(2 * IO_CHUNK + 12345))
        .map(|i| (i % 251) as u8)
        .collect();
    c.write_file("/big", &big).unwrap();
    assert_eq!(c.read_file("/big").unwrap(), big);
    c.write_file("/big", b"short").unwrap();
    assert_eq!(
        c.read_file("/big").unwrap(),
        b"short",
        "write_file truncates"
    );
    // std::io::copy between two remote files, and a Write of a huge buffer
    // moving at most IO_CHUNK per call.
    c.write_file("/src", &big).unwrap();
    let mut src = c.open_file("/src").unwrap();
    let mut dst = c.create_file("/dst").unwrap();
    assert_eq!(std::io::copy(&mut src, &mut dst).unwrap(), big.len() as u64);
    assert_eq!(dst.write(&big).unwrap(), IO_CHUNK);
    drop((src, dst));
    assert_eq!(c.read_file("/dst").unwrap()[..big.len()], big[..]);
    let mut buf = vec![0u8; 3 * IO_CHUNK];
    let f = c.open_file("/src").unwrap();
    assert_eq!((&f).read(&mut buf).unwrap(), IO_CHUNK);
    drop(f);
    drop(c);
    h.join().unwrap();
    let fs = fs.lock();
    for (n, a) in &fs.seen {
        if [Sysnum::READ, Sysnum::WRITE].contains(n) {
            assert!(a[2] as usize <= IO_CHUNK, "{n}: {} bytes in one call", a[2]);
        }
    }
    assert!(fs.fds.is_empty(), "every descriptor was closed");
}
