//! Wire structures: the 24-byte frame header, the fixed-size bodies, and the
//! open code types carried in the header.
//!
//! Every integer on the wire is in the host's native layout; this crate only
//! builds for LP64 little-endian targets, so the types here say
//! "little endian" explicitly instead of relying on the host.

use zerocopy::byteorder::little_endian::{I32, I64, U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// Length of the frame header in bytes.
pub const HEADER_LEN: usize = 24;

/// Declares an open code type: a newtype over the wire integer with named
/// constants, so unknown values are carried and reported instead of panicking.
macro_rules! open_code {
    (
        $(#[$meta:meta])*
        $name:ident($int:ty) {
            $( $(#[$cmeta:meta])* $cname:ident = $val:expr => $label:literal, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub struct $name(pub $int);

        impl $name {
            $( $(#[$cmeta])* pub const $cname: $name = $name($val); )*

            /// The constant's name, or `None` for a value this crate does not know.
            pub fn name(self) -> Option<&'static str> {
                match self.0 {
                    $( $val => Some($label), )*
                    _ => None,
                }
            }

            /// Whether this is one of the named values.
            pub fn is_known(self) -> bool {
                self.name().is_some()
            }
        }

        impl core::fmt::Debug for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                match self.name() {
                    Some(n) => f.write_str(n),
                    None => write!(f, "{}({})", stringify!($name), self.0),
                }
            }
        }

        impl core::fmt::Display for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                core::fmt::Debug::fmt(self, f)
            }
        }

        impl From<$int> for $name {
            fn from(v: $int) -> Self {
                $name(v)
            }
        }
    };
}
pub(crate) use open_code;

open_code! {
    /// Frame class (`rsp_class`): request, response or error.
    Class(u16) {
        /// A request.
        REQ = 0 => "REQ",
        /// A response to a request with the same reqno.
        RESP = 1 => "RESP",
        /// An error answer to a request with the same reqno (header only).
        ERROR = 2 => "ERROR",
    }
}

open_code! {
    /// Frame type (`rsp_type`).
    MsgType(u16) {
        /// Connection handshake (guest, auth, fork, exec).
        HANDSHAKE = 0 => "HANDSHAKE",
        /// A system call from client to server.
        SYSCALL = 1 => "SYSCALL",
        /// Server asks the client for bytes at an address.
        COPYIN = 2 => "COPYIN",
        /// Server asks the client for a NUL-terminated string.
        COPYINSTR = 3 => "COPYINSTR",
        /// Server stores bytes at a client address.
        COPYOUT = 4 => "COPYOUT",
        /// Server stores a string at a client address.
        COPYOUTSTR = 5 => "COPYOUTSTR",
        /// Server asks the client to map anonymous memory.
        ANONMMAP = 6 => "ANONMMAP",
        /// Client asks the server to fork its process ahead of a host fork.
        PREFORK = 7 => "PREFORK",
        /// Server delivers a signal to the client.
        RAISE = 8 => "RAISE",
        /// Extension (`docs/extension.md`): the client's probe and the
        /// server's answer naming the features both speak. A stock server
        /// answers ERROR MALFORMED_REQUEST.
        EXT_HELLO = 0x5370 => "EXT_HELLO",
        /// Extension: a SYSCALL whose body also carries the bytes of the
        /// buffers the call reads (see [`crate::ext`]). Sent only after an
        /// EXT_HELLO agreed on [`crate::ext::Features::SEGMENTS`].
        SYSCALL_SEG = 0x5371 => "SYSCALL_SEG",
    }
}

open_code! {
    /// Handshake kind, carried in `u` of a HANDSHAKE request.
    HandshakeKind(u32) {
        /// A new client: a new process is made for it.
        GUEST = 0 => "GUEST",
        /// Authentication (never implemented by the reference).
        AUTH = 1 => "AUTH",
        /// A host fork child claiming a prefork.
        FORK = 2 => "FORK",
        /// The image after a host execve on the same connection.
        EXEC = 3 => "EXEC",
    }
}

open_code! {
    /// Error code of an ERROR frame, carried in `u`.
    ErrorCode(u32) {
        /// No error.
        NONE = 0 => "NONE",
        /// Try again (EAGAIN).
        TRYAGAIN = 1 => "TRYAGAIN",
        /// Not authenticated / not allowed (EPERM).
        AUTH = 2 => "AUTH",
        /// Unknown prefork cookie (ESRCH).
        INVALID_PREFORK = 3 => "INVALID_PREFORK",
        /// The kernel could not fork (EIO).
        RFORK_FAILED = 4 => "RFORK_FAILED",
        /// An exec is already in progress (EBUSY).
        INEXEC = 5 => "INEXEC",
        /// Out of memory (ENOMEM).
        NOMEM = 6 => "NOMEM",
        /// The request was malformed (EINVAL).
        MALFORMED_REQUEST = 7 => "MALFORMED_REQUEST",
    }
}

impl ErrorCode {
    /// The NetBSD errno a C peer maps this code to.
    pub fn to_errno(self) -> crate::abi::Errno {
        use crate::abi::Errno;
        match self {
            ErrorCode::NONE => Errno(0),
            ErrorCode::TRYAGAIN => Errno::EAGAIN,
            ErrorCode::AUTH => Errno::EPERM,
            ErrorCode::INVALID_PREFORK => Errno::ESRCH,
            ErrorCode::RFORK_FAILED => Errno::EIO,
            ErrorCode::INEXEC => Errno::EBUSY,
            ErrorCode::NOMEM => Errno::ENOMEM,
            // MALFORMED_REQUEST and anything unknown.
            _ => Errno::EINVAL,
        }
    }
}

/// The frame header (`struct rsp_hdr`), little endian, 24 bytes.
///
/// `u` is the C union of `sysnum`, `error`, `handshake` and `signo`; read it
/// through the accessor that matches the frame's class and type.
#[derive(
    Clone, Copy, PartialEq, Eq, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
#[repr(C)]
pub struct Header {
    /// Whole frame length, header included.
    pub len: U64,
    /// Request number, echoed in the response.
    pub reqno: U64,
    /// Frame class.
    pub class: U16,
    /// Frame type.
    pub typ: U16,
    /// The union word.
    pub u: U32,
}

const _: () = assert!(core::mem::size_of::<Header>() == HEADER_LEN);

impl Header {
    /// Builds a header from its fields.
    pub fn new(len: u64, reqno: u64, class: Class, typ: MsgType, u: u32) -> Header {
        Header {
            len: U64::new(len),
            reqno: U64::new(reqno),
            class: U16::new(class.0),
            typ: U16::new(typ.0),
            u: U32::new(u),
        }
    }

    /// Parses a header from the first 24 bytes of `bytes`.
    pub fn read(bytes: &[u8]) -> Option<Header> {
        Header::read_from_prefix(bytes).ok().map(|(h, _)| h)
    }

    /// Whole frame length.
    pub fn len(&self) -> u64 {
        self.len.get()
    }

    /// Whether the header announces no body (length exactly 24).
    pub fn is_empty(&self) -> bool {
        self.len.get() == HEADER_LEN as u64
    }

    /// Request number.
    pub fn reqno(&self) -> u64 {
        self.reqno.get()
    }

    /// Frame class.
    pub fn class(&self) -> Class {
        Class(self.class.get())
    }

    /// Frame type.
    pub fn typ(&self) -> MsgType {
        MsgType(self.typ.get())
    }

    /// The union word as an unsigned integer.
    pub fn u(&self) -> u32 {
        self.u.get()
    }

    /// `u` read as a syscall number (SYSCALL request).
    pub fn sysnum(&self) -> u32 {
        self.u.get()
    }

    /// `u` read as an error code (ERROR frame).
    pub fn error(&self) -> ErrorCode {
        ErrorCode(self.u.get())
    }

    /// `u` read as a handshake kind (HANDSHAKE request).
    pub fn handshake(&self) -> HandshakeKind {
        HandshakeKind(self.u.get())
    }

    /// `u` read as a NetBSD signal number (RAISE request).
    pub fn signo(&self) -> u32 {
        self.u.get()
    }

    /// The header as bytes.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out.copy_from_slice(self.as_bytes());
        out
    }
}

/// Body of a SYSCALL response (`struct rsp_sysresp`), 24 bytes.
#[derive(
    Clone, Copy, PartialEq, Eq, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
#[repr(C)]
pub struct SysRespBody {
    /// 0 or a NetBSD errno.
    pub error: I32,
    /// C padding; the reference leaves it uninitialised, we send zeros.
    pub pad: [u8; 4],
    /// Results: `retval[0]` is the result, `retval[1]` a second result.
    pub retval: [I64; 2],
}

/// Body of a COPYIN/COPYINSTR request and the head of a COPYOUT request
/// (`struct rsp_copydata` without its data), 16 bytes.
#[derive(
    Clone, Copy, PartialEq, Eq, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
#[repr(C)]
pub struct CopyBody {
    /// Number of bytes (the maximum, for COPYINSTR).
    pub len: U64,
    /// Address in the client's address space.
    pub addr: U64,
}

/// Body of a HANDSHAKE FORK request (`struct handshake_fork`), 20 bytes.
#[derive(
    Clone, Copy, PartialEq, Eq, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
#[repr(C)]
pub struct ForkBody {
    /// The prefork cookie.
    pub auth: [u8; 16],
    /// Nonzero: discard the prefork instead of claiming it.
    pub cancel: I32,
}

const _: () = assert!(core::mem::size_of::<SysRespBody>() == 24);
const _: () = assert!(core::mem::size_of::<CopyBody>() == 16);
const _: () = assert!(core::mem::size_of::<ForkBody>() == 20);
