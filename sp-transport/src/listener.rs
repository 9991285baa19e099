//! A listening socket of either family.

use std::fs;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::stream::{tcp_stream, Stream};
use crate::url::Endpoint;

/// How [`Listener::bind`] sets up the socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenOptions {
    /// The `listen(2)` backlog. Default 1024.
    pub backlog: i32,
    /// Permission bits given to a unix socket file before it starts
    /// listening; `None` leaves what the umask gave. Default `Some(0o600)`:
    /// only the owner may connect.
    pub unix_mode: Option<u32>,
}

impl Default for ListenOptions {
    fn default() -> ListenOptions {
        ListenOptions {
            backlog: 1024,
            unix_mode: Some(0o600),
        }
    }
}

/// Why [`Listener::bind`] failed.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    /// Another server is listening on the endpoint.
    #[error("{endpoint}: address in use")]
    InUse {
        /// The endpoint asked for.
        endpoint: Endpoint,
    },
    /// The unix path exists and is not a socket; it is left alone.
    #[error("{}: exists and is not a socket", path.display())]
    NotASocket {
        /// The path asked for.
        path: PathBuf,
    },
    /// Any other failure of a system call.
    #[error("{endpoint}: {source}")]
    Io {
        /// The endpoint asked for.
        endpoint: Endpoint,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

/// A listening socket.
///
/// A unix listener removes its socket file when dropped, provided the file
/// at that path is still the one it created.
#[derive(Debug)]
pub struct Listener {
    inner: Inner,
    endpoint: Endpoint,
    /// Device and inode of the unix socket file this listener created.
    unix_file: Option<(u64, u64)>,
}

#[derive(Debug)]
enum Inner {
    Unix(UnixListener),
    Tcp(TcpListener),
}

impl Listener {
    /// Binds and listens on `ep`. The socket is close-on-exec and blocking.
    ///
    /// For `unix://`, an existing path is handled this way: a socket nobody
    /// listens on (stale, connect is refused) is removed and replaced; a
    /// socket someone listens on gives [`ListenError::InUse`] (the check
    /// connects to it once); anything else gives
    /// [`ListenError::NotASocket`]. The file gets
    /// [`ListenOptions::unix_mode`] before `listen(2)`, so no client can
    /// connect while it still has the umask's permissions.
    ///
    /// TCP listeners set SO_REUSEADDR; `tcp6` listeners set IPV6_V6ONLY, so
    /// `[::]` does not also take the IPv4 port.
    pub fn bind(ep: &Endpoint, opts: &ListenOptions) -> Result<Listener, ListenError> {
        let io_err = |source: io::Error| {
            if source.kind() == io::ErrorKind::AddrInUse {
                ListenError::InUse {
                    endpoint: ep.clone(),
                }
            } else {
                ListenError::Io {
                    endpoint: ep.clone(),
                    source,
                }
            }
        };
        match ep {
            Endpoint::Unix(path) => {
                remove_stale(path, ep)?;
                let (listener, id) = bind_unix(path, opts).map_err(io_err)?;
                Ok(Listener {
                    inner: Inner::Unix(listener),
                    endpoint: ep.clone(),
                    unix_file: Some(id),
                })
            }
            Endpoint::Tcp(sa) => bind_tcp(SocketAddr::V4(*sa), opts).map_err(io_err),
            Endpoint::Tcp6(sa) => bind_tcp(SocketAddr::V6(*sa), opts).map_err(io_err),
        }
    }

    /// Waits for a connection. Accepted streams are always blocking, whatever
    /// mode the listener is in; TCP streams get TCP_NODELAY.
    pub fn accept(&self) -> io::Result<Stream> {
        match &self.inner {
            Inner::Unix(l) => {
                let (s, _) = l.accept()?;
                s.set_nonblocking(false)?;
                Ok(Stream::Unix(s))
            }
            Inner::Tcp(l) => {
                let (s, _) = l.accept()?;
                s.set_nonblocking(false)?;
                tcp_stream(s)
            }
        }
    }

    /// Switches O_NONBLOCK on the listening socket: [`Listener::accept`] then
    /// fails with [`io::ErrorKind::WouldBlock`] when nobody is waiting.
    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        match &self.inner {
            Inner::Unix(l) => l.set_nonblocking(nonblocking),
            Inner::Tcp(l) => l.set_nonblocking(nonblocking),
        }
    }

    /// Where the listener listens; for a TCP port 0, with the port the
    /// kernel chose.
    pub fn local_endpoint(&self) -> Endpoint {
        self.endpoint.clone()
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let (Endpoint::Unix(path), Some((dev, ino))) = (&self.endpoint, self.unix_file) {
            // Leave the path alone if someone replaced our socket file.
            if fs::symlink_metadata(path).is_ok_and(|m| m.dev() == dev && m.ino() == ino) {
                let _ = fs::remove_file(path);
            }
        }
    }
}

impl AsFd for Listener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match &self.inner {
            Inner::Unix(l) => l.as_fd(),
            Inner::Tcp(l) => l.as_fd(),
        }
    }
}

impl AsRawFd for Listener {
    fn as_raw_fd(&self) -> RawFd {
        self.as_fd().as_raw_fd()
    }
}

/// Clears the way for a unix socket at `path`, refusing to touch a live
/// socket or anything that is not a socket.
fn remove_stale(path: &Path, ep: &Endpoint) -> Result<(), ListenError> {
    let io_err = |source| ListenError::Io {
        endpoint: ep.clone(),
        source,
    };
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err(e)),
    };
    if !meta.file_type().is_socket() {
        return Err(ListenError::NotASocket {
            path: path.to_path_buf(),
        });
    }
    match UnixStream::connect(path) {
        Ok(_) => Err(ListenError::InUse {
            endpoint: ep.clone(),
        }),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => match fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err(e)),
            _ => Ok(()),
        },
        Err(e) => Err(io_err(e)),
    }
}

/// Binds, sets the mode, listens. Returns the socket file's device and inode.
fn bind_unix(path: &Path, opts: &ListenOptions) -> io::Result<(UnixListener, (u64, u64))> {
    let sock = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    sock.bind(&SockAddr::unix(path)?)?;
    let finish = || {
        if let Some(mode) = opts.unix_mode {
            fs::set_permissions(path, fs::Permissions::from_mode(mode))?;
        }
        let meta = fs::symlink_metadata(path)?;
        sock.listen(opts.backlog)?;
        Ok((meta.dev(), meta.ino()))
    };
    match finish() {
        Ok(id) => Ok((sock.into(), id)),
        Err(e) => {
            let _ = fs::remove_file(path);
            Err(e)
        }
    }
}

fn bind_tcp(sa: SocketAddr, opts: &ListenOptions) -> io::Result<Listener> {
    let sock = Socket::new(Domain::for_address(sa), Type::STREAM, Some(Protocol::TCP))?;
    sock.set_reuse_address(true)?;
    if sa.is_ipv6() {
        sock.set_only_v6(true)?;
    }
    sock.bind(&sa.into())?;
    sock.listen(opts.backlog)?;
    let listener = TcpListener::from(sock);
    let endpoint = match listener.local_addr()? {
        SocketAddr::V4(a) => Endpoint::Tcp(a),
        SocketAddr::V6(a) => Endpoint::Tcp6(a),
    };
    Ok(Listener {
        inner: Inner::Tcp(listener),
        endpoint,
        unix_file: None,
    })
}
