//! The NetBSD ABI facts that cross the wire: errno values, signal numbers,
//! syscall numbers, open and fcntl flags, `struct stat` and `struct dirent`.
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

/// NetBSD signal numbers.
pub mod sig {
    /// Hangup.
    pub const SIGHUP: u32 = 1;
    /// Interrupt.
    pub const SIGINT: u32 = 2;
    /// Quit.
    pub const SIGQUIT: u32 = 3;
    /// Kill.
    pub const SIGKILL: u32 = 9;
    /// Broken pipe.
    pub const SIGPIPE: u32 = 13;
    /// Alarm.
    pub const SIGALRM: u32 = 14;
    /// Terminate.
    pub const SIGTERM: u32 = 15;
    /// Child status changed.
    pub const SIGCHLD: u32 = 20;
    /// User signal 1.
    pub const SIGUSR1: u32 = 30;
    /// User signal 2.
    pub const SIGUSR2: u32 = 31;
}

/// NetBSD syscall numbers used by the model kernel and the client wrappers.
pub mod sys {
    #![allow(missing_docs)]
    pub const READ: u32 = 3;
    pub const WRITE: u32 = 4;
    pub const OPEN: u32 = 5;
    pub const CLOSE: u32 = 6;
    pub const UNLINK: u32 = 10;
    pub const CHDIR: u32 = 12;
    pub const FCHDIR: u32 = 13;
    pub const GETPID: u32 = 20;
    pub const ACCESS: u32 = 33;
    pub const KILL: u32 = 37;
    pub const GETPPID: u32 = 39;
    pub const DUP: u32 = 41;
    pub const PIPE: u32 = 42;
    pub const UMASK: u32 = 60;
    pub const DUP2: u32 = 90;
    pub const FCNTL: u32 = 92;
    pub const FSYNC: u32 = 95;
    pub const READV: u32 = 120;
    pub const WRITEV: u32 = 121;
    pub const RENAME: u32 = 128;
    pub const MKDIR: u32 = 136;
    pub const RMDIR: u32 = 137;
    pub const PREAD: u32 = 173;
    pub const PWRITE: u32 = 174;
    pub const MMAP: u32 = 197;
    pub const LSEEK: u32 = 199;
    pub const FTRUNCATE: u32 = 201;
    pub const GETCWD: u32 = 296;
    pub const GETDENTS: u32 = 390;
    pub const STAT: u32 = 439;
    pub const FSTAT: u32 = 440;
    pub const LSTAT: u32 = 441;
    pub const DUP3: u32 = 454;
    pub const PIPE2: u32 = 453;
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
