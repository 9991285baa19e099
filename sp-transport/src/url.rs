//! Server URLs: `unix://PATH`, `tcp://A.B.C.D:PORT`, `tcp6://[ADDR]:PORT`.

use std::fmt;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
use std::path::{Path, PathBuf};

use sp_proto::Errno;

/// Longest scheme accepted before `://`.
pub const MAX_SCHEME_LEN: usize = 15;

/// Longest unix socket path in bytes: `sun_path` holds 108 bytes, one of
/// them the terminating NUL.
pub const MAX_UNIX_PATH: usize = 107;

/// Which side of a connection a URL is parsed for.
///
/// Only a server may name a wildcard address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Connects to the endpoint: it must name a host.
    Client,
    /// Listens on the endpoint: `*`, `0` (IPv4) and `[::]` (IPv6) mean any
    /// address.
    Server,
}

/// A parsed URL: where a server listens or a client connects.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// An AF_UNIX stream socket; the path is always absolute.
    Unix(PathBuf),
    /// An AF_INET stream socket.
    Tcp(SocketAddrV4),
    /// An AF_INET6 stream socket.
    Tcp6(SocketAddrV6),
}

impl fmt::Display for Endpoint {
    /// Prints a URL that [`parse`] turns back into the same endpoint (with
    /// the role the endpoint was parsed for). A unix path that is not UTF-8
    /// is printed lossily.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Unix(path) => write!(f, "unix://{}", path.display()),
            Endpoint::Tcp(sa) => write!(f, "tcp://{sa}"),
            Endpoint::Tcp6(sa) => write!(f, "tcp6://[{}]:{}", sa.ip(), sa.port()),
        }
    }
}

/// Why a URL was refused. Every variant maps to the errno a C peer reports,
/// see [`UrlError::errno`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// No `://` separates a scheme from the rest.
    #[error("missing \"://\" after the scheme")]
    MissingScheme,
    /// The scheme is longer than [`MAX_SCHEME_LEN`].
    #[error("scheme is {len} characters long, at most {MAX_SCHEME_LEN} allowed")]
    SchemeTooLong {
        /// Length of the scheme in bytes.
        len: usize,
    },
    /// The scheme is none of `unix`, `tcp`, `tcp6`.
    #[error("unknown scheme {scheme:?}")]
    BadScheme {
        /// The scheme as written.
        scheme: String,
    },
    /// `unix://` with nothing after it.
    #[error("empty unix socket path")]
    EmptyPath,
    /// The unix path contains a NUL byte, which `sun_path` cannot carry.
    #[error("unix socket path contains a NUL byte")]
    NulInPath,
    /// The absolute unix path is longer than [`MAX_UNIX_PATH`].
    #[error("unix socket path is {len} bytes, at most {MAX_UNIX_PATH} allowed")]
    PathTooLong {
        /// Length of the absolute path in bytes.
        len: usize,
    },
    /// A relative unix path could not be made absolute: the current
    /// directory is unknown.
    #[error("cannot read the current directory: {kind}")]
    CurrentDir {
        /// What went wrong reading the current directory.
        kind: io::ErrorKind,
    },
    /// No `:PORT` follows the address.
    #[error("missing \":PORT\" after {addr:?}")]
    MissingPort {
        /// The text where the address and port were expected.
        addr: String,
    },
    /// An IPv6 address not enclosed in brackets.
    #[error("IPv6 address {addr:?} must be written as [ADDR]:PORT")]
    MissingBrackets {
        /// The text after `tcp6://`.
        addr: String,
    },
    /// The address is not a dotted-quad IPv4 (or, for `tcp6`, an IPv6)
    /// address.
    #[error("cannot parse address {addr:?}")]
    BadAddress {
        /// The address as written.
        addr: String,
    },
    /// A client named the wildcard address instead of a host.
    #[error("a client must name a host, not the wildcard address")]
    WildcardForClient,
    /// The port is not a run of decimal digits.
    #[error("port {port:?} is not a decimal number")]
    BadPort {
        /// The text after the `:`.
        port: String,
    },
    /// The port is past 65535.
    #[error("port {port} is out of range 0..=65535")]
    PortRange {
        /// The port's digits.
        port: String,
    },
    /// Something other than `/` follows the port's digits.
    #[error("unexpected {rest:?} after the port")]
    TrailingGarbage {
        /// The text after the port's digits.
        rest: String,
    },
}

impl UrlError {
    /// The NetBSD errno for this error: ENAMETOOLONG for a long unix path,
    /// ERANGE for a port out of range, EINVAL for anything else malformed.
    pub fn errno(&self) -> Errno {
        match self {
            UrlError::PathTooLong { .. } => Errno::ENAMETOOLONG,
            UrlError::PortRange { .. } => Errno::ERANGE,
            UrlError::CurrentDir { kind } => match kind {
                io::ErrorKind::NotFound => Errno::ENOENT,
                io::ErrorKind::PermissionDenied => Errno::EACCES,
                _ => Errno::EIO,
            },
            _ => Errno::EINVAL,
        }
    }
}

/// Parses a server URL for `role`.
///
/// A relative `unix://` path is made absolute against the current directory
/// now, not when the socket is used.
///
/// ```
/// use sp_transport::{parse, Endpoint, Role};
/// let ep = parse("tcp://127.0.0.1:5000", Role::Client).unwrap();
/// assert_eq!(ep, Endpoint::Tcp("127.0.0.1:5000".parse().unwrap()));
/// assert!(parse("tcp://*:5000", Role::Client).is_err());
/// ```
pub fn parse(url: &str, role: Role) -> Result<Endpoint, UrlError> {
    let (scheme, rest) = url.split_once("://").ok_or(UrlError::MissingScheme)?;
    if scheme.len() > MAX_SCHEME_LEN {
        return Err(UrlError::SchemeTooLong { len: scheme.len() });
    }
    match scheme {
        "unix" => parse_unix(rest).map(Endpoint::Unix),
        "tcp" => parse_tcp(rest, role).map(Endpoint::Tcp),
        "tcp6" => parse_tcp6(rest, role).map(Endpoint::Tcp6),
        _ => Err(UrlError::BadScheme {
            scheme: scheme.to_owned(),
        }),
    }
}

fn parse_unix(path: &str) -> Result<PathBuf, UrlError> {
    if path.is_empty() {
        return Err(UrlError::EmptyPath);
    }
    if path.contains('\0') {
        return Err(UrlError::NulInPath);
    }
    let path = Path::new(path);
    let path = if path.is_absolute() {
        path.to_path_buf()
    } else {
        let cwd = std::env::current_dir().map_err(|e| UrlError::CurrentDir { kind: e.kind() })?;
        cwd.join(path)
    };
    let len = path.as_os_str().len();
    if len > MAX_UNIX_PATH {
        return Err(UrlError::PathTooLong { len });
    }
    Ok(path)
}

fn parse_tcp(rest: &str, role: Role) -> Result<SocketAddrV4, UrlError> {
    let (addr, port) = rest.split_once(':').ok_or_else(|| UrlError::MissingPort {
        addr: rest.to_owned(),
    })?;
    let ip = match addr {
        "*" | "0" => Ipv4Addr::UNSPECIFIED,
        _ => addr.parse().map_err(|_| UrlError::BadAddress {
            addr: addr.to_owned(),
        })?,
    };
    if ip.is_unspecified() && role == Role::Client {
        return Err(UrlError::WildcardForClient);
    }
    Ok(SocketAddrV4::new(ip, parse_port(port)?))
}

fn parse_tcp6(rest: &str, role: Role) -> Result<SocketAddrV6, UrlError> {
    let missing = || UrlError::MissingBrackets {
        addr: rest.to_owned(),
    };
    let (addr, after) = rest
        .strip_prefix('[')
        .and_then(|r| r.split_once(']'))
        .ok_or_else(missing)?;
    let ip: Ipv6Addr = addr.parse().map_err(|_| UrlError::BadAddress {
        addr: addr.to_owned(),
    })?;
    if ip.is_unspecified() && role == Role::Client {
        return Err(UrlError::WildcardForClient);
    }
    let port = after
        .strip_prefix(':')
        .ok_or_else(|| UrlError::MissingPort {
            addr: rest.to_owned(),
        })?;
    Ok(SocketAddrV6::new(ip, parse_port(port)?, 0, 0))
}

/// Decimal digits, then the end of the string or `/` and anything.
fn parse_port(text: &str) -> Result<u16, UrlError> {
    let end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, rest) = text.split_at(end);
    if digits.is_empty() {
        return Err(UrlError::BadPort {
            port: text.to_owned(),
        });
    }
    if !(rest.is_empty() || rest.starts_with('/')) {
        return Err(UrlError::TrailingGarbage {
            rest: rest.to_owned(),
        });
    }
    // Only ASCII digits, so the sole way to fail is overflow.
    digits.parse().map_err(|_| UrlError::PortRange {
        port: digits.to_owned(),
    })
}
