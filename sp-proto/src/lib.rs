//! Sans-IO codec of the rump kernel sysproxy protocol, version 0.4.
//!
//! This crate knows the bytes and nothing else: no sockets, threads or
//! clocks. It holds the 24-byte frame header and fixed bodies as `zerocopy`
//! structs, a typed [`Message`] for every frame either side sends, an
//! incremental [`Deframer`] with a length limit, the [`Banner`], the
//! NetBSD ABI numbers and structures that cross the wire ([`abi`]), and the
//! syscall argument block ([`args`]). The `capture` feature adds
//! `sp_proto::capture`, the parser of the reference's byte captures, for
//! the test suites that replay them.
//!
//! ```
//! use sp_proto::{Deframer, Message, DEFAULT_MAX_FRAME};
//!
//! // A client's getpid (syscall 20) with an empty argument block.
//! let frame = Message::Syscall { reqno: 2, sysnum: 20, args: &[] }.to_vec();
//! assert_eq!(frame.len(), 24);
//!
//! // Bytes may arrive in any split.
//! let mut dec = Deframer::new(DEFAULT_MAX_FRAME);
//! dec.push(&frame[..10]);
//! assert!(dec.next_frame().unwrap().is_none());
//! dec.push(&frame[10..]);
//! let got = dec.next_frame().unwrap().unwrap();
//! assert_eq!(got.message().unwrap(), Message::Syscall { reqno: 2, sysnum: 20, args: &[] });
//! ```
#![forbid(unsafe_code)]

#[cfg(not(all(target_endian = "little", target_pointer_width = "64")))]
compile_error!(
    "sysproxy uses the host's native C layout; only LP64 little-endian targets are supported"
);

pub mod abi;
pub mod args;
mod banner;
#[cfg(feature = "capture")]
pub mod capture;
mod deframe;
pub mod ext;
mod msg;
pub mod wire;

pub use abi::{Errno, SysResult};
pub use args::Args;
pub use banner::{Banner, BannerError, MAX_BANNER, PROTO_MAJOR, PROTO_MINOR};
pub use deframe::{DecodeError, Deframer, Frame, DEFAULT_MAX_FRAME};
pub use msg::{comm_name, BodyError, Cookie, Encoded, Handshake, Message, COOKIE_LEN, MAX_HEAD};
pub use wire::{Class, ErrorCode, HandshakeKind, Header, MsgType, HEADER_LEN};

/// The fuzz body for the frame decoder: feeds `data` to a [`Deframer`] in
/// chunks whose sizes come from the data itself, decodes every frame into a
/// message, and checks the invariants (no frame over the limit, every
/// decoded message re-encodes to the bytes it came from, padding aside).
/// The first byte also picks whether large bodies are received detached,
/// and whether they are taken out owned.
///
/// Called by the `cargo fuzz` target and by unit tests.
pub fn fuzz_deframer(data: &[u8]) {
    const MAX: u64 = 4096;
    let Some((&split, stream)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(split % 64) + 1;
    let mut dec = Deframer::new(MAX);
    if split & 0x40 != 0 {
        dec = dec.with_detach(100);
    }
    let take_owned = split & 0x80 != 0;
    let check = |header: &Header, body: &[u8]| {
        assert!(header.len() <= MAX);
        assert_eq!(body.len() as u64 + HEADER_LEN as u64, header.len());
        if let Ok(msg) = Message::decode(header, body) {
            let again = msg.to_vec();
            assert_eq!(again.len() as u64, header.len());
            // The SYSCALL response's padding and the type of a
            // COPYINSTR answer are normalised; all else is exact.
            let decoded = Frame::parse(&again, MAX).unwrap().unwrap().0;
            assert_eq!(decoded.message().unwrap(), msg);
        }
    };
    for piece in stream.chunks(chunk) {
        dec.push(piece);
        loop {
            if take_owned {
                if let Some((h, body)) = dec.take_detached() {
                    check(&h, &body);
                    continue;
                }
            }
            match dec.next_frame() {
                Ok(Some(frame)) => check(&frame.header, frame.body),
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
}
