//! The negotiated extension: a probe that tells each side what the other
//! speaks, and a system call that carries the bytes it will read.
//!
//! The whole design, with what a stock peer sees, is in
//! `docs/extension.md`. In short:
//!
//! - After its handshake a client may send an EXT_HELLO request
//!   ([`MsgType::EXT_HELLO`], reqno [`PROBE_REQNO`], a [`Hello`] body). A
//!   stock server answers any request type it does not know with ERROR
//!   MALFORMED_REQUEST and goes on; a server that speaks the extension
//!   answers with an EXT_HELLO response naming the [`Features`] both sides
//!   have and its limits. A stock client never sends the probe, so it
//!   never sees anything new.
//! - Once [`Features::SEGMENTS`] is agreed, a client may send SYSCALL_SEG
//!   ([`MsgType::SYSCALL_SEG`]) instead of SYSCALL: the same call, whose
//!   body also carries *segments* (address, length, bytes) of the buffers
//!   the call will read. The server serves every COPYIN and COPYINSTR that
//!   falls inside a segment from the segment, and asks over the wire for
//!   anything else. The answer is the ordinary SYSCALL response.
//!
//! The SYSCALL_SEG body puts the segments' bytes first, so a receiver can
//! keep the body as the data buffer without a copy (see [`SegBody`]):
//!
//! ```text
//! data[sum of len]          the segments' bytes, in descriptor order
//! args[args_len]            the argument block, as in SYSCALL
//! { u64 addr; u64 len; }    one descriptor per segment
//! { u32 args_len; u32 nseg; }  the trailer: the last 8 bytes
//! ```
//!
//! ```
//! use sp_proto::ext::{SegBody, SegFrame};
//! use sp_proto::{Frame, Message, DEFAULT_MAX_FRAME};
//!
//! let data = b"hello";
//! let args = [1u64, 0x1000, 5].map(u64::to_le_bytes).concat();
//! let f = SegFrame::new(2, 4, &args, &[(0x1000, &data[..])]).unwrap();
//! let bytes = f.to_vec(&[&data[..]]);
//! let (frame, _) = Frame::parse(&bytes, DEFAULT_MAX_FRAME).unwrap().unwrap();
//! let Ok(Message::SyscallSeg { sysnum: 4, body, .. }) = frame.message() else { panic!() };
//! assert_eq!(body.args(), &args[..]);
//! let seg = body.segments().next().unwrap();
//! assert_eq!((seg.addr, seg.bytes), (0x1000, &data[..]));
//! ```

use crate::wire::{Header, MsgType, HEADER_LEN};
use crate::Class;
use zerocopy::byteorder::little_endian::{U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// The version of the extension this crate speaks.
pub const EXT_VERSION: u32 = 1;

/// The request number of the EXT_HELLO probe. It lies outside the
/// numbers a client gives its requests (they start at 0 or 1 and count
/// up), so the frames after the probe are numbered, and therefore
/// byte for byte, what a stock client sends.
pub const PROBE_REQNO: u64 = u64::MAX;

/// Most segments one SYSCALL_SEG may carry.
pub const MAX_SEGMENTS: usize = 64;

/// Length of the SYSCALL_SEG trailer.
pub const TRAILER_LEN: usize = 8;

/// Length of one segment descriptor.
pub const DESC_LEN: usize = 16;

/// Length of the EXT_HELLO body, both ways.
pub const HELLO_LEN: usize = 24;

/// Extension features, a bit set.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Features(pub u32);

impl Features {
    /// Nothing.
    pub const NONE: Features = Features(0);
    /// SYSCALL_SEG: a call carries the bytes of the buffers it reads.
    pub const SEGMENTS: Features = Features(1);
    /// The server takes an ERROR frame as the answer to its COPYIN,
    /// COPYINSTR or ANONMMAP and fails that copy with EFAULT (a stock
    /// server does not: its kernel thread would wait forever), so a client
    /// may refuse a copy without closing the connection.
    pub const COPY_ERRORS: Features = Features(2);
    /// Every feature this crate knows.
    pub const ALL: Features = Features(3);

    /// Whether every bit of `other` is set here.
    pub fn contains(self, other: Features) -> bool {
        self.0 & other.0 == other.0
    }

    /// The bits set in both.
    pub fn intersect(self, other: Features) -> Features {
        Features(self.0 & other.0)
    }

    /// Whether no bit is set.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl core::fmt::Debug for Features {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let mut first = true;
        let mut put = |f: &mut core::fmt::Formatter<'_>, s: &str| {
            let r = if first {
                f.write_str(s)
            } else {
                write!(f, "|{s}")
            };
            first = false;
            r
        };
        for (bit, name) in [
            (Self::SEGMENTS, "SEGMENTS"),
            (Self::COPY_ERRORS, "COPY_ERRORS"),
        ] {
            if self.contains(bit) {
                put(f, name)?;
            }
        }
        let rest = self.0 & !Self::ALL.0;
        if rest != 0 {
            put(f, &format!("{rest:#x}"))?;
        }
        if first {
            f.write_str("NONE")?;
        }
        Ok(())
    }
}

/// The EXT_HELLO body on the wire, 24 bytes, both ways.
#[derive(
    Clone, Copy, PartialEq, Eq, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
#[repr(C)]
pub struct HelloBody {
    /// [`EXT_VERSION`] of the sender.
    pub version: U32,
    /// [`Features`]: wanted (request) or agreed (response).
    pub features: U32,
    /// The largest frame the sender accepts.
    pub max_frame: U64,
    /// Response: the most segment bytes one SYSCALL_SEG may carry.
    /// Request: 0.
    pub max_segment_bytes: U64,
}

const _: () = assert!(core::mem::size_of::<HelloBody>() == HELLO_LEN);

/// An EXT_HELLO body, decoded.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Hello {
    /// The sender's extension version.
    pub version: u32,
    /// Wanted (probe) or agreed (answer).
    pub features: Features,
    /// The largest frame the sender accepts.
    pub max_frame: u64,
    /// The most segment bytes per SYSCALL_SEG (answer; 0 in the probe).
    pub max_segment_bytes: u64,
}

impl Hello {
    /// The wire body.
    pub fn to_body(&self) -> HelloBody {
        HelloBody {
            version: U32::new(self.version),
            features: U32::new(self.features.0),
            max_frame: U64::new(self.max_frame),
            max_segment_bytes: U64::new(self.max_segment_bytes),
        }
    }

    /// Decodes a body of exactly [`HELLO_LEN`] bytes.
    pub fn from_bytes(b: &[u8]) -> Option<Hello> {
        let h = HelloBody::read_from_bytes(b).ok()?;
        Some(Hello {
            version: h.version.get(),
            features: Features(h.features.get()),
            max_frame: h.max_frame.get(),
            max_segment_bytes: h.max_segment_bytes.get(),
        })
    }
}

/// One segment descriptor on the wire, 16 bytes.
#[derive(
    Clone, Copy, PartialEq, Eq, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
#[repr(C)]
pub struct SegDesc {
    /// Address of the buffer in the client.
    pub addr: U64,
    /// Its length; its bytes are in the data part of the body.
    pub len: U64,
}

/// The SYSCALL_SEG trailer on the wire: the last 8 bytes of the body.
#[derive(
    Clone, Copy, PartialEq, Eq, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
#[repr(C)]
pub struct SegTrailer {
    /// Length of the argument block.
    pub args_len: U32,
    /// Number of segments.
    pub nseg: U32,
}

const _: () = assert!(core::mem::size_of::<SegDesc>() == DESC_LEN);
const _: () = assert!(core::mem::size_of::<SegTrailer>() == TRAILER_LEN);

/// Why a SYSCALL_SEG body does not parse.
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
pub enum SegError {
    /// Shorter than its trailer.
    #[error("SYSCALL_SEG body of {0} bytes has no room for its trailer")]
    NoTrailer(usize),
    /// More segments than [`MAX_SEGMENTS`].
    #[error("SYSCALL_SEG with {0} segments (at most {MAX_SEGMENTS})")]
    TooManySegments(usize),
    /// The trailer announces more argument and descriptor bytes than the
    /// body has.
    #[error("SYSCALL_SEG trailer announces {need} bytes of arguments and descriptors; the body has {have}")]
    Layout {
        /// Bytes the trailer announces (arguments, descriptors, trailer).
        need: u64,
        /// Bytes of the body.
        have: usize,
    },
    /// The segments' lengths do not add up to the data part.
    #[error("SYSCALL_SEG segments announce {announced} bytes; the data part has {got}")]
    DataLength {
        /// Sum of the descriptors' lengths.
        announced: u64,
        /// Bytes before the argument block.
        got: usize,
    },
    /// A segment runs past the end of the address space.
    #[error("SYSCALL_SEG segment at {addr:#x} of {len} bytes wraps around")]
    Wraps {
        /// The segment's address.
        addr: u64,
        /// Its length.
        len: u64,
    },
}

/// A checked SYSCALL_SEG body, borrowed: the argument block, the
/// descriptors and the data part.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct SegBody<'a> {
    raw: &'a [u8],
    data_len: usize,
    args_len: usize,
    nseg: usize,
}

/// One segment of a [`SegBody`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Segment<'a> {
    /// Address of the buffer in the client.
    pub addr: u64,
    /// Offset of its bytes in the data part.
    pub offset: usize,
    /// Its bytes.
    pub bytes: &'a [u8],
}

impl<'a> SegBody<'a> {
    /// Checks `body` (a whole SYSCALL_SEG body): the trailer, the
    /// descriptors, and that the segments' lengths add up to the bytes
    /// before the argument block. Trailing bytes are an error: the layout
    /// accounts for every byte.
    pub fn parse(body: &'a [u8]) -> Result<SegBody<'a>, SegError> {
        let tpos = body
            .len()
            .checked_sub(TRAILER_LEN)
            .ok_or(SegError::NoTrailer(body.len()))?;
        let t = SegTrailer::read_from_bytes(&body[tpos..])
            .map_err(|_| SegError::NoTrailer(body.len()))?;
        let nseg = t.nseg.get() as usize;
        if nseg > MAX_SEGMENTS {
            return Err(SegError::TooManySegments(nseg));
        }
        let args_len = t.args_len.get() as usize;
        let need = args_len as u64 + (nseg * DESC_LEN) as u64 + TRAILER_LEN as u64;
        if need > body.len() as u64 {
            return Err(SegError::Layout {
                need,
                have: body.len(),
            });
        }
        let data_len = body.len() - need as usize;
        let seg = SegBody {
            raw: body,
            data_len,
            args_len,
            nseg,
        };
        let mut sum: u64 = 0;
        for d in seg.descs() {
            let (addr, len) = (d.addr.get(), d.len.get());
            if addr.checked_add(len).is_none() {
                return Err(SegError::Wraps { addr, len });
            }
            sum = sum.saturating_add(len);
        }
        if sum != data_len as u64 {
            return Err(SegError::DataLength {
                announced: sum,
                got: data_len,
            });
        }
        Ok(seg)
    }

    fn descs(&self) -> impl Iterator<Item = SegDesc> + 'a {
        let from = self.data_len + self.args_len;
        self.raw[from..from + self.nseg * DESC_LEN]
            .chunks_exact(DESC_LEN)
            .filter_map(|c| SegDesc::read_from_bytes(c).ok())
    }

    /// The whole body as received.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// The argument block.
    pub fn args(&self) -> &'a [u8] {
        &self.raw[self.data_len..self.data_len + self.args_len]
    }

    /// The data part: every segment's bytes, in order, from offset 0 of
    /// the body.
    pub fn data(&self) -> &'a [u8] {
        &self.raw[..self.data_len]
    }

    /// Length of the data part.
    pub fn data_len(&self) -> usize {
        self.data_len
    }

    /// Number of segments.
    pub fn segment_count(&self) -> usize {
        self.nseg
    }

    /// The segments, in order.
    pub fn segments(&self) -> impl Iterator<Item = Segment<'a>> + 'a {
        let raw = self.raw;
        let mut off = 0usize;
        self.descs().map(move |d| {
            // Checked by `parse`: the lengths add up to the data part.
            let len = d.len.get() as usize;
            let s = Segment {
                addr: d.addr.get(),
                offset: off,
                bytes: &raw[off..off + len],
            };
            off += len;
            s
        })
    }
}

/// Encoded length of a whole SYSCALL_SEG frame with an argument block of
/// `args_len` bytes and segments of these lengths.
pub fn seg_frame_len(args_len: usize, seg_lens: impl IntoIterator<Item = usize>) -> u64 {
    let (n, data) = seg_lens.into_iter().fold((0u64, 0u64), |(n, d), l| {
        (n + 1, d.saturating_add(l as u64))
    });
    (HEADER_LEN + TRAILER_LEN + args_len) as u64 + n * DESC_LEN as u64 + data
}

/// Why a SYSCALL_SEG cannot be built.
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
pub enum SegBuildError {
    /// More than [`MAX_SEGMENTS`] segments.
    #[error("{0} segments (at most {MAX_SEGMENTS})")]
    TooManySegments(usize),
    /// An argument block longer than a `u32` can say.
    #[error("argument block of {0} bytes")]
    ArgsTooLong(usize),
    /// A segment that wraps around the address space.
    #[error("segment at {addr:#x} of {len} bytes wraps around")]
    Wraps {
        /// Its address.
        addr: u64,
        /// Its length.
        len: u64,
    },
}

/// A SYSCALL_SEG frame put together around borrowed segment bytes: write
/// [`SegFrame::head`], then every segment's bytes in order (e.g. with
/// vectored I/O, straight from the caller's buffers), then
/// [`SegFrame::tail`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegFrame {
    head: [u8; HEADER_LEN],
    tail: Vec<u8>,
    len: u64,
}

impl SegFrame {
    /// The frame of call `sysnum` (request `reqno`) with argument block
    /// `args` and segments `(address, bytes)`.
    pub fn new(
        reqno: u64,
        sysnum: u32,
        args: &[u8],
        segs: &[(u64, &[u8])],
    ) -> Result<SegFrame, SegBuildError> {
        if segs.len() > MAX_SEGMENTS {
            return Err(SegBuildError::TooManySegments(segs.len()));
        }
        let args_len =
            u32::try_from(args.len()).map_err(|_| SegBuildError::ArgsTooLong(args.len()))?;
        let mut tail = Vec::with_capacity(args.len() + segs.len() * DESC_LEN + TRAILER_LEN);
        tail.extend_from_slice(args);
        for &(addr, bytes) in segs {
            let len = bytes.len() as u64;
            if addr.checked_add(len).is_none() {
                return Err(SegBuildError::Wraps { addr, len });
            }
            let d = SegDesc {
                addr: U64::new(addr),
                len: U64::new(len),
            };
            tail.extend_from_slice(d.as_bytes());
        }
        let t = SegTrailer {
            args_len: U32::new(args_len),
            nseg: U32::new(segs.len() as u32),
        };
        tail.extend_from_slice(t.as_bytes());
        let data: u64 = segs.iter().map(|s| s.1.len() as u64).sum();
        let len = HEADER_LEN as u64 + data + tail.len() as u64;
        let head = Header::new(len, reqno, Class::REQ, MsgType::SYSCALL_SEG, sysnum).to_bytes();
        Ok(SegFrame { head, tail, len })
    }

    /// The 24-byte header.
    pub fn head(&self) -> &[u8] {
        &self.head
    }

    /// What follows the segments' bytes: arguments, descriptors, trailer.
    pub fn tail(&self) -> &[u8] {
        &self.tail
    }

    /// Whole frame length.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Never true: a frame has at least its header.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The whole frame in one vector, with the segments' bytes `data` (the
    /// same slices, in the same order, as given to [`SegFrame::new`]).
    pub fn to_vec(&self, data: &[&[u8]]) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.len as usize);
        v.extend_from_slice(&self.head);
        for d in data {
            v.extend_from_slice(d);
        }
        v.extend_from_slice(&self.tail);
        v
    }
}
