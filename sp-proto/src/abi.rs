//! The NetBSD ABI facts that cross the wire: errno values, signal numbers
//! ([`Signal`]), syscall numbers ([`Sysnum`]), open and fcntl flags,
//! `struct stat`, `struct dirent` and `struct iovec`.
//!
//! These are NetBSD's numbers, not the host's: a server answers with them and
//! a client translates them where it touches the host.

use crate::wire::open_code;
use zerocopy::byteorder::little_endian::{I64, U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

open_code! {
    /// A NetBSD errno value.
    Errno(i32) {
        /// Operation not permitted.
        EPERM = 1 => "EPERM",
        /// No such file or directory.
        ENOENT = 2 => "ENOENT",
        /// No such process.
        ESRCH = 3 => "ESRCH",
        /// Interrupted system call.
        EINTR = 4 => "EINTR",
        /// Input/output error.
        EIO = 5 => "EIO",
        /// Bad file descriptor.
        EBADF = 9 => "EBADF",
        /// Cannot allocate memory.
        ENOMEM = 12 => "ENOMEM",
        /// Permission denied.
        EACCES = 13 => "EACCES",
        /// Bad address.
        EFAULT = 14 => "EFAULT",
        /// Device busy.
        EBUSY = 16 => "EBUSY",
        /// File exists.
        EEXIST = 17 => "EEXIST",
        /// Cross-device link.
        EXDEV = 18 => "EXDEV",
        /// Not a directory.
        ENOTDIR = 20 => "ENOTDIR",
        /// Is a directory.
        EISDIR = 21 => "EISDIR",
        /// Invalid argument.
        EINVAL = 22 => "EINVAL",
        /// Too many open files.
        EMFILE = 24 => "EMFILE",
        /// Inappropriate ioctl for device.
        ENOTTY = 25 => "ENOTTY",
        /// No space left on device.
        ENOSPC = 28 => "ENOSPC",
        /// Illegal seek.
        ESPIPE = 29 => "ESPIPE",
        /// Broken pipe.
        EPIPE = 32 => "EPIPE",
        /// Result too large.
        ERANGE = 34 => "ERANGE",
        /// Resource temporarily unavailable.
        EAGAIN = 35 => "EAGAIN",
        /// Operation not supported.
        EOPNOTSUPP = 45 => "EOPNOTSUPP",
        /// Connection reset by peer.
        ECONNRESET = 54 => "ECONNRESET",
        /// Socket is not connected.
        ENOTCONN = 57 => "ENOTCONN",
        /// Too many levels of symbolic links.
        ELOOP = 62 => "ELOOP",
        /// File name too long.
        ENAMETOOLONG = 63 => "ENAMETOOLONG",
        /// Directory not empty.
        ENOTEMPTY = 66 => "ENOTEMPTY",
        /// Function not implemented.
        ENOSYS = 78 => "ENOSYS",
    }
}

impl std::error::Error for Errno {}

/// Result of a system call: the two return values, or an errno.
pub type SysResult = Result<[i64; 2], Errno>;

open_code! {
    /// A NetBSD signal number (the `signo` of a RAISE request, kill(2)'s
    /// argument). The names are the signals the protocol's kernels raise;
    /// any other number is carried as is.
    Signal(u32) {
        /// Hangup.
        SIGHUP = 1 => "SIGHUP",
        /// Interrupt.
        SIGINT = 2 => "SIGINT",
        /// Quit.
        SIGQUIT = 3 => "SIGQUIT",
        /// Kill.
        SIGKILL = 9 => "SIGKILL",
        /// Broken pipe.
        SIGPIPE = 13 => "SIGPIPE",
        /// Alarm.
        SIGALRM = 14 => "SIGALRM",
        /// Terminate.
        SIGTERM = 15 => "SIGTERM",
        /// Child status changed.
        SIGCHLD = 20 => "SIGCHLD",
        /// User signal 1.
        SIGUSR1 = 30 => "SIGUSR1",
        /// User signal 2.
        SIGUSR2 = 31 => "SIGUSR2",
    }
}

open_code! {
    /// A NetBSD syscall number (the `sysnum` of a SYSCALL request): the
    /// calls the model kernel and the client wrappers know, named by the C
    /// function that makes them (`stat`, not `__stat50`). Any other number
    /// is carried as is.
    Sysnum(u32) {
        /// `read`
        READ = 3 => "read",
        /// `write`
        WRITE = 4 => "write",
        /// `open`
        OPEN = 5 => "open",
        /// `close`
        CLOSE = 6 => "close",
        /// `unlink`
        UNLINK = 10 => "unlink",
        /// `chdir`
        CHDIR = 12 => "chdir",
        /// `fchdir`
        FCHDIR = 13 => "fchdir",
        /// `getpid`
        GETPID = 20 => "getpid",
        /// `access`
        ACCESS = 33 => "access",
        /// `kill`
        KILL = 37 => "kill",
        /// `getppid`
        GETPPID = 39 => "getppid",
        /// `dup`
        DUP = 41 => "dup",
        /// `pipe`
        PIPE = 42 => "pipe",
        /// `umask`
        UMASK = 60 => "umask",
        /// `dup2`
        DUP2 = 90 => "dup2",
        /// `fcntl`
        FCNTL = 92 => "fcntl",
        /// `fsync`
        FSYNC = 95 => "fsync",
        /// `readv`
        READV = 120 => "readv",
        /// `writev`
        WRITEV = 121 => "writev",
        /// `rename`
        RENAME = 128 => "rename",
        /// `mkdir`
        MKDIR = 136 => "mkdir",
        /// `rmdir`
        RMDIR = 137 => "rmdir",
        /// `pread`
        PREAD = 173 => "pread",
        /// `pwrite`
        PWRITE = 174 => "pwrite",
        /// `mmap`
        MMAP = 197 => "mmap",
        /// `lseek`
        LSEEK = 199 => "lseek",
        /// `ftruncate`
        FTRUNCATE = 201 => "ftruncate",
        /// `getcwd` (`__getcwd`)
        GETCWD = 296 => "getcwd",
        /// `getdents` (`__getdents30`)
        GETDENTS = 390 => "getdents",
        /// `stat` (`__stat50`)
        STAT = 439 => "stat",
        /// `fstat` (`__fstat50`)
        FSTAT = 440 => "fstat",
        /// `lstat` (`__lstat50`)
        LSTAT = 441 => "lstat",
        /// `pipe2`
        PIPE2 = 453 => "pipe2",
        /// `dup3`
        DUP3 = 454 => "dup3",
    }
}

/// NetBSD open(2) flags.
pub mod oflag {
    #![allow(missing_docs)]
    pub const O_RDONLY: u32 = 0;
    pub const O_WRONLY: u32 = 1;
    pub const O_RDWR: u32 = 2;
    pub const O_ACCMODE: u32 = 3;
    pub const O_NONBLOCK: u32 = 0x4;
    pub const O_APPEND: u32 = 0x8;
    pub const O_CREAT: u32 = 0x200;
    pub const O_TRUNC: u32 = 0x400;
    pub const O_EXCL: u32 = 0x800;
    pub const O_DIRECTORY: u32 = 0x20_0000;
    pub const O_CLOEXEC: u32 = 0x40_0000;
}

/// NetBSD fcntl(2) commands and flags.
pub mod fcntl {
    #![allow(missing_docs)]
    pub const F_DUPFD: u32 = 0;
    pub const F_GETFD: u32 = 1;
    pub const F_SETFD: u32 = 2;
    pub const F_GETFL: u32 = 3;
    pub const F_SETFL: u32 = 4;
    pub const F_DUPFD_CLOEXEC: u32 = 12;
    pub const FD_CLOEXEC: u32 = 1;
}

/// NetBSD `lseek` whence values, `mmap` flags and `access` modes.
pub mod misc {
    #![allow(missing_docs)]
    pub const SEEK_SET: u32 = 0;
    pub const SEEK_CUR: u32 = 1;
    pub const SEEK_END: u32 = 2;
    pub const MAP_SHARED: u32 = 0x1;
    pub const MAP_PRIVATE: u32 = 0x2;
    pub const MAP_ANON: u32 = 0x1000;
    pub const F_OK: u32 = 0;
    pub const X_OK: u32 = 1;
    pub const W_OK: u32 = 2;
    pub const R_OK: u32 = 4;
}

/// File type bits of `st_mode`.
pub mod mode {
    #![allow(missing_docs)]
    pub const S_IFMT: u32 = 0o170000;
    pub const S_IFIFO: u32 = 0o010000;
    pub const S_IFCHR: u32 = 0o020000;
    pub const S_IFDIR: u32 = 0o040000;
    pub const S_IFREG: u32 = 0o100000;
}

/// `d_type` values of `struct dirent`.
pub mod dt {
    #![allow(missing_docs)]
    pub const DT_UNKNOWN: u8 = 0;
    pub const DT_FIFO: u8 = 1;
    pub const DT_CHR: u8 = 2;
    pub const DT_DIR: u8 = 4;
    pub const DT_REG: u8 = 8;
}

/// A `struct timespec` on LP64.
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    Debug,
    Default,
    FromBytes,
    IntoBytes,
    KnownLayout,
    Immutable,
    Unaligned,
)]
#[repr(C)]
pub struct Timespec {
    /// Seconds.
    pub sec: I64,
    /// Nanoseconds.
    pub nsec: I64,
}

/// NetBSD LP64 `struct stat`, 152 bytes.
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    Debug,
    Default,
    FromBytes,
    IntoBytes,
    KnownLayout,
    Immutable,
    Unaligned,
)]
#[repr(C)]
pub struct Stat {
    /// Device.
    pub st_dev: U64,
    /// Type and permission bits.
    pub st_mode: U32,
    /// C padding.
    pub pad0: [u8; 4],
    /// Inode number.
    pub st_ino: U64,
    /// Link count.
    pub st_nlink: U32,
    /// Owner.
    pub st_uid: U32,
    /// Group.
    pub st_gid: U32,
    /// C padding.
    pub pad1: [u8; 4],
    /// Device number of a special file.
    pub st_rdev: U64,
    /// Access time.
    pub st_atim: Timespec,
    /// Modification time.
    pub st_mtim: Timespec,
    /// Status change time.
    pub st_ctim: Timespec,
    /// Birth time.
    pub st_birthtim: Timespec,
    /// Size in bytes.
    pub st_size: I64,
    /// Blocks allocated.
    pub st_blocks: I64,
    /// Preferred I/O size.
    pub st_blksize: U32,
    /// User flags.
    pub st_flags: U32,
    /// Generation number.
    pub st_gen: U32,
    /// Reserved.
    pub st_spare: [U32; 2],
    /// C padding to the struct's 8-byte alignment.
    pub pad2: [u8; 4],
}

const _: () = assert!(core::mem::size_of::<Stat>() == 152);

impl Stat {
    /// Size of the structure on the wire.
    pub const SIZE: usize = 152;

    /// The structure's bytes.
    pub fn to_bytes(&self) -> [u8; 152] {
        let mut out = [0u8; 152];
        out.copy_from_slice(self.as_bytes());
        out
    }

    /// Parses the structure from exactly 152 bytes (or a longer prefix).
    pub fn from_bytes(b: &[u8]) -> Option<Stat> {
        Stat::read_from_prefix(b).ok().map(|(s, _)| s)
    }
}

/// NetBSD LP64 `struct iovec`, 16 bytes: a buffer's address in the
/// client and its length. readv(2) and writev(2) take an array of them.
///
/// ```
/// use sp_proto::abi::Iovec;
/// use zerocopy::IntoBytes;
///
/// let iov = [Iovec::new(0x1000, 5), Iovec::new(0x2000, 0)];
/// let bytes = iov.as_bytes();
/// assert_eq!(bytes.len(), 32);
/// assert_eq!(Iovec::slice(bytes), Some(&iov[..]));
/// assert_eq!(Iovec::slice(&bytes[..31]), None);
/// assert_eq!(Iovec::prefix(bytes, 1), Some(&iov[..1]));
/// assert_eq!(Iovec::array_bytes(&iov), bytes);
/// ```
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    Debug,
    Default,
    FromBytes,
    IntoBytes,
    KnownLayout,
    Immutable,
    Unaligned,
)]
#[repr(C)]
pub struct Iovec {
    /// Address of the buffer (`void *iov_base`).
    pub iov_base: U64,
    /// Its length in bytes (`size_t iov_len`).
    pub iov_len: U64,
}

const _: () = assert!(core::mem::size_of::<Iovec>() == Iovec::SIZE);

impl Iovec {
    /// Size of the structure on the wire.
    pub const SIZE: usize = 16;

    /// The record for `len` bytes at `base`.
    pub fn new(base: u64, len: u64) -> Iovec {
        Iovec {
            iov_base: U64::new(base),
            iov_len: U64::new(len),
        }
    }

    /// Address of the buffer.
    pub fn base(&self) -> u64 {
        self.iov_base.get()
    }

    /// Length of the buffer.
    pub fn len(&self) -> u64 {
        self.iov_len.get()
    }

    /// Whether the buffer is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes of an array of records, as they cross the wire.
    pub fn array_bytes(iov: &[Iovec]) -> &[u8] {
        iov.as_bytes()
    }

    /// `bytes` read as an array of records, without copying; `None` unless
    /// its length is a multiple of 16.
    pub fn slice(bytes: &[u8]) -> Option<&[Iovec]> {
        <[Iovec]>::ref_from_bytes(bytes).ok()
    }

    /// The first `count` records of `bytes`, without copying; `None` if
    /// `bytes` is shorter than that (or `count * 16` overflows).
    pub fn prefix(bytes: &[u8], count: usize) -> Option<&[Iovec]> {
        <[Iovec]>::ref_from_prefix_with_elems(bytes, count)
            .ok()
            .map(|(iov, _)| iov)
    }
}

/// Fixed head of a NetBSD `struct dirent` (the name follows), 13 bytes.
#[derive(
    Clone, Copy, PartialEq, Eq, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
#[repr(C)]
pub struct DirentHead {
    /// Inode number.
    pub d_fileno: U64,
    /// Length of this record (a multiple of 8).
    pub d_reclen: U16,
    /// Length of the name, without its NUL.
    pub d_namlen: U16,
    /// File type (`dt`).
    pub d_type: u8,
}

/// One directory entry, decoded.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Dirent {
    /// Inode number.
    pub fileno: u64,
    /// File type (`dt`).
    pub kind: u8,
    /// Name bytes, without the NUL.
    pub name: Vec<u8>,
}

impl Dirent {
    /// Size of the record this entry encodes to: head, name, NUL, padded to 8.
    pub fn reclen(name_len: usize) -> usize {
        (core::mem::size_of::<DirentHead>() + name_len + 1 + 7) & !7
    }

    /// Appends the NetBSD record for this entry to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let reclen = Dirent::reclen(self.name.len());
        let head = DirentHead {
            d_fileno: U64::new(self.fileno),
            d_reclen: U16::new(reclen as u16),
            d_namlen: U16::new(self.name.len() as u16),
            d_type: self.kind,
        };
        let start = out.len();
        out.extend_from_slice(head.as_bytes());
        out.extend_from_slice(&self.name);
        out.resize(start + reclen, 0);
    }

    /// Decodes every record of a getdents buffer; `None` if a record is
    /// malformed (bad reclen, name past the record).
    pub fn decode_all(mut buf: &[u8]) -> Option<Vec<Dirent>> {
        let mut out = Vec::new();
        while !buf.is_empty() {
            let (head, _) = DirentHead::read_from_prefix(buf).ok()?;
            let reclen = head.d_reclen.get() as usize;
            let namlen = head.d_namlen.get() as usize;
            let hl = core::mem::size_of::<DirentHead>();
            if reclen < hl + namlen + 1 || reclen > buf.len() || reclen & 7 != 0 {
                return None;
            }
            out.push(Dirent {
                fileno: head.d_fileno.get(),
                kind: head.d_type,
                name: buf[hl..hl + namlen].to_vec(),
            });
            buf = &buf[reclen..];
        }
        Some(out)
    }
}
