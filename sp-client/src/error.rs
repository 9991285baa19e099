//! Error types, sorted by who caused them: the caller (URL, environment),
//! the host (I/O), the server (banner, handshake, protocol, refused copies),
//! or the kernel (a syscall's errno).

use crate::errno::RemoteErrno;
use sp_proto::{BannerError, BodyError, DecodeError, Errno, ErrorCode, MsgType};
use sp_transport::UrlError;
use std::fmt;
use std::io;

/// Everything that can go wrong in this crate.
///
/// The typed syscall wrappers return a plain NetBSD [`Errno`]; this is the
/// richer error behind it, returned by the connection functions and by
/// [`Client::syscall_detailed`](crate::Client::syscall_detailed).
/// [`Error::errno`] gives the errno a wrapper reports for it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `RUMP_SERVER` (or another required variable) is not set.
    #[error("environment variable {0} is not set")]
    EnvUnset(&'static str),
    /// The server URL does not parse ([`UrlError::errno`] is the errno a C
    /// client reports).
    #[error("bad server URL {url:?}: {source}")]
    Url {
        /// The URL as given.
        url: String,
        /// Why it was refused.
        source: UrlError,
    },
    /// The server at `url` could not be reached: the connect failed, or
    /// the banner or the handshake answer did not come within
    /// [`Options::connect_timeout`](crate::Options::connect_timeout)
    /// (kind [`io::ErrorKind::TimedOut`]).
    #[error("cannot connect to {url}: {source}")]
    Connect {
        /// The URL as given.
        url: String,
        /// What failed.
        source: io::Error,
    },
    /// A host I/O error (fork, execve, fcntl, a socket option).
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
    /// The server's banner is malformed or names a protocol we do not speak.
    #[error("bad banner: {0}")]
    Banner(#[from] BannerError),
    /// The server refused our handshake.
    #[error("handshake refused: {0}")]
    Handshake(HandshakeError),
    /// The server answered one of our requests with an ERROR frame.
    #[error("server answered with error {0}")]
    Refused(ErrorCode),
    /// The server broke the protocol; the connection is closed.
    #[error("protocol error: {0}")]
    Protocol(ProtocolError),
    /// The connection is gone (now or earlier).
    #[error("disconnected: {0}")]
    Disconnected(DisconnectReason),
    /// The server asked for a copy outside the memory this call exposed and
    /// the client closed the connection over it (see
    /// [`Options::server_accepts_copy_errors`](crate::Options::server_accepts_copy_errors)),
    /// or a COPYOUT was dropped while this call was in flight.
    #[error("copy refused: {0}")]
    CopyRefused(RefusedCopy),
    /// The system call ran and failed with this NetBSD errno.
    #[error("system call failed: {}", RemoteErrno(*.0))]
    Syscall(Errno),
    /// `RUMPCLIENT__EXECFD` does not hold a descriptor.
    #[error("malformed RUMPCLIENT__EXECFD value {0:?}")]
    ExecEnv(String),
    /// The operation needs the server URL and this client has none (it was
    /// adopted after an exec without `RUMP_SERVER` in its environment).
    #[error("this client does not know its server URL")]
    NoUrl,
}

impl Error {
    /// The NetBSD errno this error stands for:
    /// the syscall's own errno; the mapped [`ErrorCode`] for an ERROR frame;
    /// EFAULT for a refused copy; ENOTCONN once disconnected; EINVAL for a bad
    /// URL or environment; EIO for I/O, banner and protocol failures.
    pub fn errno(&self) -> Errno {
        match self {
            Error::Syscall(e) => *e,
            Error::Url { source, .. } => source.errno(),
            Error::Refused(code) => code.to_errno(),
            Error::Handshake(h) => h.errno(),
            Error::CopyRefused(_) => Errno::EFAULT,
            Error::Disconnected(_) => Errno::ENOTCONN,
            Error::EnvUnset(_) | Error::ExecEnv(_) | Error::NoUrl => Errno::EINVAL,
            Error::Connect { source, .. } => kind_errno(source.kind()),
            Error::Io(_) | Error::Banner(_) | Error::Protocol(_) => Errno::EIO,
        }
    }

    /// The error with the server's URL added: a host I/O error met while
    /// connecting to `url` becomes [`Error::Connect`].
    pub(crate) fn connecting_to(self, url: &str) -> Error {
        match self {
            Error::Io(source) => Error::Connect {
                url: url.to_owned(),
                source,
            },
            other => other,
        }
    }

    /// The [`io::ErrorKind`] this error converts to: an I/O error's own
    /// kind; `InvalidInput` for a bad URL or environment; `InvalidData` for
    /// a server that broke the protocol or sent a bad banner;
    /// `NotConnected` once disconnected; otherwise the kind of
    /// [`Error::errno`] ([`errno_kind`](crate::errno_kind)).
    pub fn io_kind(&self) -> io::ErrorKind {
        match self {
            Error::Io(e) | Error::Connect { source: e, .. } => e.kind(),
            Error::Url { .. } | Error::EnvUnset(_) | Error::ExecEnv(_) | Error::NoUrl => {
                io::ErrorKind::InvalidInput
            }
            Error::Banner(_) | Error::Protocol(_) => io::ErrorKind::InvalidData,
            Error::Disconnected(_) => io::ErrorKind::NotConnected,
            other => crate::errno_kind(other.errno()),
        }
    }
}

/// The NetBSD errno closest to a host connect error's kind (EIO if none).
fn kind_errno(kind: io::ErrorKind) -> Errno {
    match kind {
        io::ErrorKind::NotFound => Errno::ENOENT,
        io::ErrorKind::PermissionDenied => Errno::EACCES,
        io::ErrorKind::ConnectionRefused => Errno(61), // ECONNREFUSED
        io::ErrorKind::TimedOut => Errno(60),          // ETIMEDOUT
        io::ErrorKind::WouldBlock => Errno::EAGAIN,
        io::ErrorKind::ConnectionReset => Errno::ECONNRESET,
        _ => Errno::EIO,
    }
}

impl From<Errno> for Error {
    /// A failed system call.
    fn from(e: Errno) -> Error {
        Error::Syscall(e)
    }
}

impl From<Error> for io::Error {
    /// An [`Error::Io`] gives back its own `io::Error` (raw OS error
    /// included); any other error becomes the payload of an `io::Error` of
    /// kind [`Error::io_kind`], so it prints the same and
    /// [`io_errno`](crate::io_errno) finds its errno.
    fn from(e: Error) -> io::Error {
        match e {
            Error::Io(inner) => inner,
            other => io::Error::new(other.io_kind(), other),
        }
    }
}

/// How a handshake failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// An ERROR frame (AUTH, INVALID_PREFORK, INEXEC, MALFORMED_REQUEST, ...).
    #[error("error frame {0}")]
    Refused(ErrorCode),
    /// A HANDSHAKE response with a nonzero error.
    #[error("error {}", RemoteErrno(*.0))]
    Failed(Errno),
}

impl HandshakeError {
    /// The errno a C client reports for it.
    pub fn errno(&self) -> Errno {
        match self {
            HandshakeError::Refused(c) => c.to_errno(),
            HandshakeError::Failed(e) => *e,
        }
    }
}

/// How the server broke the protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// The byte stream cannot be framed (length below 24 or above the limit).
    #[error("{0}")]
    Decode(#[from] DecodeError),
    /// A frame's body does not fit its type.
    #[error("{0}")]
    Body(#[from] BodyError),
    /// A response of the wrong type answered one of our requests.
    #[error("expected a {expected} response, got {got}")]
    UnexpectedReply {
        /// What we asked.
        expected: MsgType,
        /// What came back.
        got: MsgType,
    },
    /// More than 95 bytes came before the banner's newline.
    #[error("banner longer than 95 bytes")]
    BannerTooLong,
}

/// Which kind of copy was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CopyKind {
    /// COPYIN.
    Copyin,
    /// COPYINSTR.
    Copyinstr,
    /// COPYOUT or COPYOUTSTR.
    Copyout,
}

/// A copy the server asked for that touched memory no in-flight call exposed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RefusedCopy {
    /// The kind of copy.
    pub kind: CopyKind,
    /// The client address named.
    pub addr: u64,
    /// The length named.
    pub len: u64,
}

impl fmt::Display for RefusedCopy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} of {} bytes at {:#x} outside the exposed memory",
            self.kind, self.len, self.addr
        )
    }
}

/// Why a connection ended.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DisconnectReason {
    /// The server closed the connection.
    #[error("the server closed the connection")]
    Eof,
    /// Reading or writing the socket failed.
    #[error("socket error: {kind:?}: {message}")]
    Io {
        /// The I/O error's kind.
        kind: io::ErrorKind,
        /// Its message.
        message: String,
    },
    /// The server broke the protocol and we closed the connection.
    #[error("{0}")]
    Protocol(ProtocolError),
    /// We refused a copy and closed the connection rather than leave the
    /// server's kernel thread waiting for an answer.
    #[error("{0}")]
    CopyRefused(RefusedCopy),
    /// [`Client::disconnect`](crate::Client::disconnect) was called.
    #[error("closed by this client")]
    Closed,
}

impl DisconnectReason {
    pub(crate) fn from_io(e: &io::Error) -> DisconnectReason {
        DisconnectReason::Io {
            kind: e.kind(),
            message: e.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_mapping() {
        assert_eq!(Error::Syscall(Errno::ENOENT).errno(), Errno::ENOENT);
        assert_eq!(Error::Refused(ErrorCode::INEXEC).errno(), Errno::EBUSY);
        assert_eq!(
            Error::Disconnected(DisconnectReason::Eof).errno(),
            Errno::ENOTCONN
        );
        let r = RefusedCopy {
            kind: CopyKind::Copyin,
            addr: 1,
            len: 2,
        };
        assert_eq!(Error::CopyRefused(r).errno(), Errno::EFAULT);
        assert_eq!(
            Error::Handshake(HandshakeError::Refused(ErrorCode::AUTH)).errno(),
            Errno::EPERM
        );
        assert_eq!(Error::Io(io::Error::other("x")).errno(), Errno::EIO);
        assert!(r.to_string().contains("0x1"));
    }

    #[test]
    fn display_describes_the_errno() {
        assert_eq!(
            Error::Syscall(Errno::ENOENT).to_string(),
            "system call failed: ENOENT (No such file or directory)"
        );
        assert_eq!(
            Error::Handshake(HandshakeError::Failed(Errno::ENOMEM)).to_string(),
            "handshake refused: error ENOMEM (Cannot allocate memory)"
        );
        assert!(matches!(
            Error::from(Errno::EBADF),
            Error::Syscall(Errno::EBADF)
        ));
    }

    #[test]
    fn into_io_error() {
        use io::ErrorKind as K;
        let e = io::Error::from(Error::Syscall(Errno::EEXIST));
        assert_eq!(e.kind(), K::AlreadyExists);
        assert_eq!(crate::io_errno(&e), Some(Errno::EEXIST));
        assert_eq!(e.to_string(), "system call failed: EEXIST (File exists)");
        // A host I/O error comes back as it was.
        let e = io::Error::from(Error::Io(io::Error::from_raw_os_error(libc::ENOENT)));
        assert_eq!(
            (e.kind(), e.raw_os_error()),
            (K::NotFound, Some(libc::ENOENT))
        );
        let cases = [
            (Error::Disconnected(DisconnectReason::Eof), K::NotConnected),
            (Error::NoUrl, K::InvalidInput),
            (Error::EnvUnset("RUMP_SERVER"), K::InvalidInput),
            (
                Error::Protocol(ProtocolError::BannerTooLong),
                K::InvalidData,
            ),
            (Error::Refused(ErrorCode::AUTH), K::PermissionDenied),
        ];
        for (err, kind) in cases {
            let want = err.errno();
            let msg = err.to_string();
            let e = io::Error::from(err);
            assert_eq!(e.kind(), kind, "{msg}");
            assert_eq!(e.to_string(), msg);
            assert_eq!(crate::io_errno(&e), Some(want), "{msg}");
        }
    }
}
