//! A connected stream socket of either family, and [`connect`].

use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::net::{IpAddr, Shutdown, TcpStream};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, IntoRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

use socket2::{Domain, Socket, Type};

use crate::url::Endpoint;

/// A connected stream socket: AF_UNIX, or TCP over IPv4 or IPv6.
///
/// Like the std streams it reads and writes through `&Stream` too, so one
/// thread may read while another writes.
#[derive(Debug)]
pub enum Stream {
    /// An AF_UNIX stream.
    Unix(UnixStream),
    /// A TCP stream (IPv4 or IPv6).
    Tcp(TcpStream),
}

/// The credentials of a unix stream's peer process (SO_PEERCRED).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerCred {
    /// Process id of the process that connected.
    pub pid: i32,
    /// Its effective user id.
    pub uid: u32,
    /// Its effective group id.
    pub gid: u32,
}

/// Connects to `ep`. TCP streams get TCP_NODELAY (the "connect hook").
/// The socket is close-on-exec and blocking.
pub fn connect(ep: &Endpoint) -> io::Result<Stream> {
    match ep {
        Endpoint::Unix(path) => UnixStream::connect(path).map(Stream::Unix),
        Endpoint::Tcp(sa) => tcp_stream(TcpStream::connect(sa)?),
        Endpoint::Tcp6(sa) => tcp_stream(TcpStream::connect(sa)?),
    }
}

/// Runs the connect hook on a fresh TCP stream.
pub(crate) fn tcp_stream(s: TcpStream) -> io::Result<Stream> {
    s.set_nodelay(true)?;
    Ok(Stream::Tcp(s))
}

impl Stream {
    /// Takes over a connected stream socket, e.g. one inherited across exec.
    ///
    /// The family is read from the socket: AF_UNIX becomes [`Stream::Unix`],
    /// AF_INET and AF_INET6 become [`Stream::Tcp`]. Fails with
    /// `ENOTSOCK` (from the kernel) if `fd` is not a socket and with
    /// [`io::ErrorKind::InvalidInput`] if it is not a stream socket of one of
    /// those families. TCP_NODELAY is not changed.
    pub fn from_owned_fd(fd: OwnedFd) -> io::Result<Stream> {
        let sock = Socket::from(fd);
        let domain = sock.domain()?;
        if sock.r#type()? != Type::STREAM {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a stream socket",
            ));
        }
        match domain {
            Domain::UNIX => Ok(Stream::Unix(sock.into())),
            Domain::IPV4 | Domain::IPV6 => Ok(Stream::Tcp(sock.into())),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "socket family is neither unix nor inet",
            )),
        }
    }

    /// A second handle on the same socket.
    pub fn try_clone(&self) -> io::Result<Stream> {
        match self {
            Stream::Unix(s) => s.try_clone().map(Stream::Unix),
            Stream::Tcp(s) => s.try_clone().map(Stream::Tcp),
        }
    }

    /// Switches O_NONBLOCK on or off.
    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        match self {
            Stream::Unix(s) => s.set_nonblocking(nonblocking),
            Stream::Tcp(s) => s.set_nonblocking(nonblocking),
        }
    }

    /// Shuts down the read half, the write half or both.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        match self {
            Stream::Unix(s) => s.shutdown(how),
            Stream::Tcp(s) => s.shutdown(how),
        }
    }

    /// A short name for the peer, for logs: `"unix peer uid 1000 pid 4242"`
    /// (SO_PEERCRED: the process that connected, as it was at connect
    /// time), or the TCP peer's address such as `"127.0.0.1:5000"`.
    /// `"unix peer"` or `"tcp peer"` if it cannot be read (a TCP peer
    /// that has gone away, say).
    ///
    /// It is computed on each call: a getsockopt or getpeername, cheap
    /// beside the log line it goes into.
    pub fn peer_label(&self) -> String {
        match self {
            Stream::Unix(_) => match self.peer_cred() {
                Ok(Some(c)) => format!("unix peer uid {} pid {}", c.uid, c.pid),
                _ => "unix peer".to_owned(),
            },
            Stream::Tcp(s) => s
                .peer_addr()
                .map_or_else(|_| "tcp peer".to_owned(), |a| a.to_string()),
        }
    }

    /// The credentials of the peer process of a unix stream (SO_PEERCRED,
    /// read through rustix): those of the process that called `connect(2)`,
    /// at that time. `None` for tcp.
    pub fn peer_cred(&self) -> io::Result<Option<PeerCred>> {
        match self {
            Stream::Unix(s) => {
                let cred = rustix::net::sockopt::socket_peercred(s).map_err(io::Error::from)?;
                Ok(Some(PeerCred {
                    pid: cred.pid.as_raw_pid(),
                    uid: cred.uid.as_raw(),
                    gid: cred.gid.as_raw(),
                }))
            }
            Stream::Tcp(_) => Ok(None),
        }
    }

    /// The effective uid of the peer process of a unix stream
    /// (see [`Stream::peer_cred`]); `None` for tcp.
    pub fn peer_uid(&self) -> io::Result<Option<u32>> {
        Ok(self.peer_cred()?.map(|c| c.uid))
    }

    /// The peer's IP address for a TCP stream; `None` for unix streams or
    /// when it cannot be read.
    pub fn peer_ip(&self) -> Option<IpAddr> {
        match self {
            Stream::Unix(_) => None,
            Stream::Tcp(s) => s.peer_addr().ok().map(|a| a.ip()),
        }
    }

    /// Whether TCP_NODELAY is set; `false` for unix streams.
    pub fn nodelay(&self) -> io::Result<bool> {
        match self {
            Stream::Unix(_) => Ok(false),
            Stream::Tcp(s) => s.nodelay(),
        }
    }
}

impl From<UnixStream> for Stream {
    fn from(s: UnixStream) -> Stream {
        Stream::Unix(s)
    }
}

impl From<TcpStream> for Stream {
    fn from(s: TcpStream) -> Stream {
        Stream::Tcp(s)
    }
}

impl From<Stream> for OwnedFd {
    fn from(s: Stream) -> OwnedFd {
        match s {
            Stream::Unix(s) => s.into(),
            Stream::Tcp(s) => s.into(),
        }
    }
}

impl Read for &Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => (&*s).read(buf),
            Stream::Tcp(s) => (&*s).read(buf),
        }
    }

    fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => (&*s).read_vectored(bufs),
            Stream::Tcp(s) => (&*s).read_vectored(bufs),
        }
    }
}

/// Writes go through `send(2)` with `MSG_NOSIGNAL`: a peer that has gone
/// away is an `EPIPE` error, never a SIGPIPE that kills a host process
/// which does not ignore the signal (a C program embedding us, a fuzzer).
impl Write for &Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        socket2::SockRef::from(*self).send_with_flags(buf, libc::MSG_NOSIGNAL)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        socket2::SockRef::from(*self).send_vectored_with_flags(bufs, libc::MSG_NOSIGNAL)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self).read(buf)
    }

    fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        (&*self).read_vectored(bufs)
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self).write(buf)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        (&*self).write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl AsFd for Stream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Stream::Unix(s) => s.as_fd(),
            Stream::Tcp(s) => s.as_fd(),
        }
    }
}

impl AsRawFd for Stream {
    fn as_raw_fd(&self) -> RawFd {
        self.as_fd().as_raw_fd()
    }
}

impl IntoRawFd for Stream {
    fn into_raw_fd(self) -> RawFd {
        OwnedFd::from(self).into_raw_fd()
    }
}
