//! The sockets, from `sp-transport`: one place that turns a URL into a
//! connected [`Stream`], with an optional time limit on the connect.

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use socket2::{Domain, SockAddr, SockRef, Socket, Type};
pub(crate) use sp_transport::Stream;
use sp_transport::{Endpoint, Role, UrlError};

/// Why [`open`] failed.
#[derive(Debug)]
pub(crate) enum OpenError {
    /// The URL does not parse.
    Url(UrlError),
    /// The connect failed.
    Io(io::Error),
}

/// Parses a client URL and connects to it, waiting at most `timeout` (if
/// any) for the connection to be made.
pub(crate) fn open(url: &str, timeout: Option<Duration>) -> Result<Stream, OpenError> {
    let ep = sp_transport::parse(url, Role::Client).map_err(OpenError::Url)?;
    match timeout {
        None => sp_transport::connect(&ep),
        Some(t) => connect_timeout(&ep, t),
    }
    .map_err(OpenError::Io)
}

/// A timeout the socket calls accept: a zero duration means "no timeout" to
/// SO_RCVTIMEO and is refused by `connect_timeout`, so it becomes 1 ms.
pub(crate) fn nonzero(t: Duration) -> Duration {
    t.max(Duration::from_millis(1))
}

/// The error for a connect that did not finish in time.
fn connect_timed_out(t: Duration) -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        format!("connect timed out after {t:?}"),
    )
}

/// [`sp_transport::connect`] with a time limit: TCP through a non-blocking
/// connect and poll (std's `connect_timeout`), then TCP_NODELAY as the
/// connect hook wants; unix through a blocking connect under SO_SNDTIMEO,
/// which bounds Linux's wait for room in a full listen backlog (it then
/// fails with EAGAIN).
fn connect_timeout(ep: &Endpoint, t: Duration) -> io::Result<Stream> {
    let t = nonzero(t);
    let tcp = |sa: SocketAddr| -> io::Result<Stream> {
        let s = TcpStream::connect_timeout(&sa, t).map_err(|e| match e.kind() {
            io::ErrorKind::TimedOut => connect_timed_out(t),
            _ => e,
        })?;
        s.set_nodelay(true)?;
        Ok(Stream::Tcp(s))
    };
    match ep {
        Endpoint::Unix(path) => unix_connect_timeout(path, t),
        Endpoint::Tcp(sa) => tcp(SocketAddr::V4(*sa)),
        Endpoint::Tcp6(sa) => tcp(SocketAddr::V6(*sa)),
    }
}

fn unix_connect_timeout(path: &Path, t: Duration) -> io::Result<Stream> {
    // socket2 creates the socket close-on-exec, like std.
    let s = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    s.set_write_timeout(Some(t))?;
    match s.connect(&SockAddr::unix(path)?) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Err(connect_timed_out(t)),
        Err(e) => return Err(e),
    }
    s.set_write_timeout(None)?;
    Ok(Stream::Unix(s.into()))
}

/// Sets (or with `None` clears) the time limit of each read on `stream`.
pub(crate) fn set_read_timeout(stream: &Stream, t: Option<Duration>) -> io::Result<()> {
    SockRef::from(stream).set_read_timeout(t.map(nonzero))
}
