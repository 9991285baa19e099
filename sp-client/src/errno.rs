//! NetBSD errno values for people: names and descriptions for every errno
//! NetBSD defines, the closest [`io::ErrorKind`], and the conversion to
//! [`io::Error`].
//!
//! [`Errno`] lives in `sp-proto` and prints only its name; the orphan rule
//! keeps `From<Errno> for io::Error` out of this crate, so the conversion is
//! [`errno_to_io`] (or [`ErrnoExt::to_io_error`]), and the errno comes back
//! out of such an `io::Error` with [`io_errno`].

use crate::Errno;
use std::fmt;
use std::io;

/// Every NetBSD errno (`sys/errno.h`, through NetBSD 10): number, name,
/// description (the `strerror` text).
const TABLE: &[(i32, &str, &str)] = &[
    (1, "EPERM", "Operation not permitted"),
    (2, "ENOENT", "No such file or directory"),
    (3, "ESRCH", "No such process"),
    (4, "EINTR", "Interrupted system call"),
    (5, "EIO", "Input/output error"),
    (6, "ENXIO", "Device not configured"),
    (7, "E2BIG", "Argument list too long"),
    (8, "ENOEXEC", "Exec format error"),
    (9, "EBADF", "Bad file descriptor"),
    (10, "ECHILD", "No child processes"),
    (11, "EDEADLK", "Resource deadlock avoided"),
    (12, "ENOMEM", "Cannot allocate memory"),
    (13, "EACCES", "Permission denied"),
    (14, "EFAULT", "Bad address"),
    (15, "ENOTBLK", "Block device required"),
    (16, "EBUSY", "Device busy"),
    (17, "EEXIST", "File exists"),
    (18, "EXDEV", "Cross-device link"),
    (19, "ENODEV", "Operation not supported by device"),
    (20, "ENOTDIR", "Not a directory"),
    (21, "EISDIR", "Is a directory"),
    (22, "EINVAL", "Invalid argument"),
    (23, "ENFILE", "Too many open files in system"),
    (24, "EMFILE", "Too many open files"),
    (25, "ENOTTY", "Inappropriate ioctl for device"),
    (26, "ETXTBSY", "Text file busy"),
    (27, "EFBIG", "File too large"),
    (28, "ENOSPC", "No space left on device"),
    (29, "ESPIPE", "Illegal seek"),
    (30, "EROFS", "Read-only file system"),
    (31, "EMLINK", "Too many links"),
    (32, "EPIPE", "Broken pipe"),
    (33, "EDOM", "Numerical argument out of domain"),
    (34, "ERANGE", "Result too large"),
    (35, "EAGAIN", "Resource temporarily unavailable"),
    (36, "EINPROGRESS", "Operation now in progress"),
    (37, "EALREADY", "Operation already in progress"),
    (38, "ENOTSOCK", "Socket operation on non-socket"),
    (39, "EDESTADDRREQ", "Destination address required"),
    (40, "EMSGSIZE", "Message too long"),
    (41, "EPROTOTYPE", "Protocol wrong type for socket"),
    (42, "ENOPROTOOPT", "Protocol option not available"),
    (43, "EPROTONOSUPPORT", "Protocol not supported"),
    (44, "ESOCKTNOSUPPORT", "Socket type not supported"),
    (45, "EOPNOTSUPP", "Operation not supported"),
    (46, "EPFNOSUPPORT", "Protocol family not supported"),
    (
        47,
        "EAFNOSUPPORT",
        "Address family not supported by protocol family",
    ),
    (48, "EADDRINUSE", "Address already in use"),
    (49, "EADDRNOTAVAIL", "Can't assign requested address"),
    (50, "ENETDOWN", "Network is down"),
    (51, "ENETUNREACH", "Network is unreachable"),
    (52, "ENETRESET", "Network dropped connection on reset"),
    (53, "ECONNABORTED", "Software caused connection abort"),
    (54, "ECONNRESET", "Connection reset by peer"),
    (55, "ENOBUFS", "No buffer space available"),
    (56, "EISCONN", "Socket is already connected"),
    (57, "ENOTCONN", "Socket is not connected"),
    (58, "ESHUTDOWN", "Can't send after socket shutdown"),
    (59, "ETOOMANYREFS", "Too many references: can't splice"),
    (60, "ETIMEDOUT", "Operation timed out"),
    (61, "ECONNREFUSED", "Connection refused"),
    (62, "ELOOP", "Too many levels of symbolic links"),
    (63, "ENAMETOOLONG", "File name too long"),
    (64, "EHOSTDOWN", "Host is down"),
    (65, "EHOSTUNREACH", "No route to host"),
    (66, "ENOTEMPTY", "Directory not empty"),
    (67, "EPROCLIM", "Too many processes"),
    (68, "EUSERS", "Too many users"),
    (69, "EDQUOT", "Disc quota exceeded"),
    (70, "ESTALE", "Stale NFS file handle"),
    (71, "EREMOTE", "Too many levels of remote in path"),
    (72, "EBADRPC", "RPC struct is bad"),
    (73, "ERPCMISMATCH", "RPC version wrong"),
    (74, "EPROGUNAVAIL", "RPC prog. not avail"),
    (75, "EPROGMISMATCH", "Program version wrong"),
    (76, "EPROCUNAVAIL", "Bad procedure for program"),
    (77, "ENOLCK", "No locks available"),
    (78, "ENOSYS", "Function not implemented"),
    (79, "EFTYPE", "Inappropriate file type or format"),
    (80, "EAUTH", "Authentication error"),
    (81, "ENEEDAUTH", "Need authenticator"),
    (82, "EIDRM", "Identifier removed"),
    (83, "ENOMSG", "No message of desired type"),
    (84, "EOVERFLOW", "Value too large to be stored in data type"),
    (85, "EILSEQ", "Illegal byte sequence"),
    (86, "ENOTSUP", "Not supported"),
    (87, "ECANCELED", "Operation canceled"),
    (88, "EBADMSG", "Bad or corrupt message"),
    (89, "ENODATA", "No message available"),
    (90, "ENOSR", "No STREAM resources"),
    (91, "ENOSTR", "Not a STREAM"),
    (92, "ETIME", "STREAM ioctl timeout"),
    (93, "ENOATTR", "Attribute not found"),
    (94, "EMULTIHOP", "Multihop attempted"),
    (95, "ENOLINK", "Link has been severed"),
    (96, "EPROTO", "Protocol error"),
    (97, "EOWNERDEAD", "Previous owner died"),
    (98, "ENOTRECOVERABLE", "State not recoverable"),
];

fn entry(e: Errno) -> Option<&'static (i32, &'static str, &'static str)> {
    // The table is dense from 1: index by number.
    let i = usize::try_from(e.0).ok()?.checked_sub(1)?;
    TABLE.get(i).filter(|t| t.0 == e.0)
}

/// The NetBSD name of `e` (`"ENOENT"`), for every errno NetBSD defines,
/// including those [`Errno`] has no constant for; `None` for a number
/// NetBSD does not use.
pub fn errno_name(e: Errno) -> Option<&'static str> {
    entry(e).map(|t| t.1)
}

/// NetBSD's description of `e` (`"No such file or directory"`); `None` for
/// a number NetBSD does not use.
pub fn errno_description(e: Errno) -> Option<&'static str> {
    entry(e).map(|t| t.2)
}

/// The [`io::ErrorKind`] closest to NetBSD errno `e`; `Other` when none is
/// close. Only kinds stable in the crate's minimum Rust version are used
/// (so ENOTDIR, EISDIR, ENOSPC, ESPIPE, ENOTEMPTY, EBUSY, ... are `Other`).
pub fn errno_kind(e: Errno) -> io::ErrorKind {
    use io::ErrorKind as K;
    // NetBSD numbers `Errno` has no constant for.
    const EADDRINUSE: Errno = Errno(48);
    const EADDRNOTAVAIL: Errno = Errno(49);
    const ECONNABORTED: Errno = Errno(53);
    const ETIMEDOUT: Errno = Errno(60);
    const ECONNREFUSED: Errno = Errno(61);
    const EFTYPE: Errno = Errno(79);
    const EOVERFLOW: Errno = Errno(84);
    const EILSEQ: Errno = Errno(85);
    const ENOTSUP: Errno = Errno(86);
    const EBADMSG: Errno = Errno(88);
    match e {
        Errno::EPERM | Errno::EACCES => K::PermissionDenied,
        Errno::ENOENT | Errno::ESRCH => K::NotFound,
        Errno::EINTR => K::Interrupted,
        Errno::EBADF | Errno::EFAULT | Errno::EINVAL | Errno::ENAMETOOLONG => K::InvalidInput,
        Errno::ENOMEM => K::OutOfMemory,
        Errno::EEXIST => K::AlreadyExists,
        Errno::ENOTTY | Errno::EOPNOTSUPP | Errno::ENOSYS | ENOTSUP => K::Unsupported,
        Errno::EPIPE => K::BrokenPipe,
        Errno::EAGAIN => K::WouldBlock,
        EADDRINUSE => K::AddrInUse,
        EADDRNOTAVAIL => K::AddrNotAvailable,
        ECONNABORTED => K::ConnectionAborted,
        Errno::ECONNRESET => K::ConnectionReset,
        Errno::ENOTCONN => K::NotConnected,
        ETIMEDOUT => K::TimedOut,
        ECONNREFUSED => K::ConnectionRefused,
        EFTYPE | EOVERFLOW | EILSEQ | EBADMSG => K::InvalidData,
        _ => K::Other,
    }
}

/// An [`io::Error`] standing for NetBSD errno `e`: its kind is
/// [`errno_kind`], its payload a [`RemoteErrno`], so it prints as
/// `ENOENT (No such file or directory)` and [`io_errno`] gives `e` back.
/// It has no `raw_os_error`: the number is NetBSD's, not this host's.
pub fn errno_to_io(e: Errno) -> io::Error {
    io::Error::new(errno_kind(e), RemoteErrno(e))
}

/// The NetBSD errno inside an [`io::Error`] made by this crate (by
/// [`errno_to_io`], a [`crate::RemoteFile`]'s `Read`/`Write`/`Seek`, or
/// `From<sp_client::Error>`); `None` for any other `io::Error`.
pub fn io_errno(e: &io::Error) -> Option<Errno> {
    let inner = e.get_ref()?;
    if let Some(r) = inner.downcast_ref::<RemoteErrno>() {
        return Some(r.0);
    }
    inner
        .downcast_ref::<crate::Error>()
        .map(crate::Error::errno)
}

/// An errno of the remote kernel as an error value: prints its name and
/// description, `ENOENT (No such file or directory)` (a number NetBSD does
/// not define prints as `errno 200`). It is the payload of the
/// [`io::Error`]s this crate makes from an errno.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RemoteErrno(pub Errno);

impl fmt::Display for RemoteErrno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match entry(self.0) {
            Some((_, name, desc)) => write!(f, "{name} ({desc})"),
            None => write!(f, "errno {}", self.0 .0),
        }
    }
}

impl std::error::Error for RemoteErrno {}

impl From<Errno> for RemoteErrno {
    fn from(e: Errno) -> RemoteErrno {
        RemoteErrno(e)
    }
}

impl From<RemoteErrno> for io::Error {
    fn from(e: RemoteErrno) -> io::Error {
        errno_to_io(e.0)
    }
}

/// Methods for [`Errno`] (which `sp-proto` defines): descriptions and the
/// conversion to [`io::Error`].
///
/// ```
/// use sp_client::{Errno, ErrnoExt};
///
/// assert_eq!(Errno::ENOENT.describe().to_string(), "ENOENT (No such file or directory)");
/// let e = Errno::ENOENT.to_io_error();
/// assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
/// assert_eq!(sp_client::io_errno(&e), Some(Errno::ENOENT));
/// ```
pub trait ErrnoExt {
    /// [`errno_description`].
    fn description(self) -> Option<&'static str>;
    /// A value that prints as `ENOENT (No such file or directory)`.
    fn describe(self) -> RemoteErrno;
    /// [`errno_kind`].
    fn io_kind(self) -> io::ErrorKind;
    /// [`errno_to_io`].
    fn to_io_error(self) -> io::Error;
}

impl ErrnoExt for Errno {
    fn description(self) -> Option<&'static str> {
        errno_description(self)
    }

    fn describe(self) -> RemoteErrno {
        RemoteErrno(self)
    }

    fn io_kind(self) -> io::ErrorKind {
        errno_kind(self)
    }

    fn to_io_error(self) -> io::Error {
        errno_to_io(self)
    }
}

/// Turns a `Result<T, Errno>` (what the typed wrappers return) into an
/// [`io::Result`], for `?` in functions returning `io::Result`.
///
/// ```no_run
/// use sp_client::{Client, IoResultExt};
///
/// fn size(c: &Client, path: &str) -> std::io::Result<u64> {
///     Ok(c.stat(path).into_io()?.size())
/// }
/// ```
pub trait IoResultExt<T> {
    /// The same result with the errno made an [`io::Error`] by
    /// [`errno_to_io`].
    fn into_io(self) -> io::Result<T>;
}

impl<T> IoResultExt<T> for Result<T, Errno> {
    fn into_io(self) -> io::Result<T> {
        self.map_err(errno_to_io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_dense_and_agrees_with_sp_proto() {
        for (i, (n, name, desc)) in TABLE.iter().enumerate() {
            assert_eq!(*n as usize, i + 1, "{name}");
            assert!(name.starts_with('E') && !desc.is_empty());
            // Every name sp-proto knows must be the same here.
            if let Some(proto) = Errno(*n).name() {
                assert_eq!(proto, *name, "errno {n}");
            }
        }
        // And every errno sp-proto names is in the table.
        for n in 0..200 {
            if Errno(n).is_known() {
                assert!(errno_name(Errno(n)).is_some(), "errno {n}");
            }
        }
        assert_eq!(errno_name(Errno(0)), None);
        assert_eq!(errno_name(Errno(-1)), None);
        assert_eq!(errno_name(Errno(99)), None);
        assert_eq!(errno_name(Errno(60)), Some("ETIMEDOUT"));
    }

    #[test]
    fn display_has_name_and_description() {
        assert_eq!(
            RemoteErrno(Errno::ENOENT).to_string(),
            "ENOENT (No such file or directory)"
        );
        assert_eq!(
            RemoteErrno(Errno(61)).to_string(),
            "ECONNREFUSED (Connection refused)"
        );
        assert_eq!(RemoteErrno(Errno(4242)).to_string(), "errno 4242");
        assert_eq!(Errno::EIO.description(), Some("Input/output error"));
    }

    #[test]
    fn io_kinds() {
        use io::ErrorKind as K;
        let cases = [
            (Errno::EPERM, K::PermissionDenied),
            (Errno::EACCES, K::PermissionDenied),
            (Errno::ENOENT, K::NotFound),
            (Errno::EINTR, K::Interrupted),
            (Errno::EBADF, K::InvalidInput),
            (Errno::EINVAL, K::InvalidInput),
            (Errno::ENAMETOOLONG, K::InvalidInput),
            (Errno::ENOMEM, K::OutOfMemory),
            (Errno::EEXIST, K::AlreadyExists),
            (Errno::EPIPE, K::BrokenPipe),
            (Errno::EAGAIN, K::WouldBlock),
            (Errno::EOPNOTSUPP, K::Unsupported),
            (Errno::ENOSYS, K::Unsupported),
            (Errno::ECONNRESET, K::ConnectionReset),
            (Errno::ENOTCONN, K::NotConnected),
            (Errno(60), K::TimedOut),
            (Errno(61), K::ConnectionRefused),
            (Errno::EIO, K::Other),
            (Errno::ENOTDIR, K::Other),
            (Errno(4242), K::Other),
        ];
        for (e, k) in cases {
            assert_eq!(errno_kind(e), k, "{e}");
            let io = errno_to_io(e);
            assert_eq!(io.kind(), k, "{e}");
            assert_eq!(io_errno(&io), Some(e));
            assert_eq!(io.raw_os_error(), None, "not a host errno");
        }
        let io = errno_to_io(Errno::ENOENT);
        assert_eq!(io.to_string(), "ENOENT (No such file or directory)");
        assert_eq!(io_errno(&io::Error::other("x")), None);
        assert_eq!(io_errno(&io::Error::from_raw_os_error(2)), None);
        let r: Result<(), Errno> = Err(Errno::EEXIST);
        assert_eq!(r.into_io().unwrap_err().kind(), K::AlreadyExists);
    }
}
