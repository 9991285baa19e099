//! Helpers shared by the sp-proto integration tests: hex, one sample of
//! every message, and frame surgery.
#![allow(dead_code)]

use sp_proto::{BodyError, Frame, Handshake, HandshakeKind, Header, Message, HEADER_LEN};

/// Decodes a hex string (even length, digits and a-f/A-F only); panics
/// on anything else.
pub fn hex(s: &str) -> Vec<u8> {
    sp_proto::capture::unhex(s).unwrap_or_else(|| panic!("not an even run of hex digits: {s:?}"))
}

/// A 4 KiB payload with a recognisable pattern.
pub static PAGE: [u8; 4096] = {
    let mut p = [0u8; 4096];
    let mut i = 0;
    while i < p.len() {
        p[i] = (i % 251) as u8;
        i += 1;
    }
    p
};

/// The cookie of the fork capture.
pub const COOKIE: [u8; 16] = [
    0x1d, 0x67, 0xac, 0x3a, 0xfc, 0xfb, 0xda, 0xf6, 0xdf, 0x73, 0x7f, 0x06, 0xe8, 0x4d, 0x31, 0x60,
];

/// One message of every variant (and every sub-kind a variant has), named.
pub fn samples() -> Vec<(&'static str, Message<'static>)> {
    vec![
        (
            "handshake guest",
            Message::Handshake {
                reqno: 1,
                hs: Handshake::Guest {
                    comm: b"cref_client\0",
                },
            },
        ),
        (
            "handshake fork",
            Message::Handshake {
                reqno: 1,
                hs: Handshake::Fork {
                    cookie: COOKIE,
                    cancel: 0,
                },
            },
        ),
        (
            "handshake fork cancel",
            Message::Handshake {
                reqno: 7,
                hs: Handshake::Fork {
                    cookie: [0xff; 16],
                    cancel: 1,
                },
            },
        ),
        (
            "handshake exec",
            Message::Handshake {
                reqno: 0,
                hs: Handshake::Exec {
                    comm: b"cref_exec2\0",
                },
            },
        ),
        (
            "handshake auth",
            Message::Handshake {
                reqno: 1,
                hs: Handshake::Other {
                    kind: HandshakeKind::AUTH,
                    body: b"cref\0",
                },
            },
        ),
        (
            "handshake kind 77",
            Message::Handshake {
                reqno: 3,
                hs: Handshake::Other {
                    kind: HandshakeKind(77),
                    body: b"",
                },
            },
        ),
        (
            "handshake resp",
            Message::HandshakeResp { reqno: 1, error: 0 },
        ),
        (
            "handshake resp error",
            Message::HandshakeResp {
                reqno: 9,
                error: -1,
            },
        ),
        (
            "syscall getpid",
            Message::Syscall {
                reqno: 2,
                sysnum: 20,
                args: &[],
            },
        ),
        (
            "syscall write",
            Message::Syscall {
                reqno: 2,
                sysnum: 4,
                args: &[
                    1, 0, 0, 0, 0, 0, 0, 0, 0x9d, 0xb4, 0x55, 0x55, 0x55, 0x55, 0, 0, 5, 0, 0, 0,
                    0, 0, 0, 0,
                ],
            },
        ),
        (
            "syscall odd args",
            Message::Syscall {
                reqno: u64::MAX,
                sysnum: u32::MAX,
                args: b"abc",
            },
        ),
        (
            "syscall resp",
            Message::SyscallResp {
                reqno: 2,
                error: 0,
                retval: [2, 0],
            },
        ),
        (
            "syscall resp error",
            Message::SyscallResp {
                reqno: 3,
                error: 2,
                retval: [i64::MIN, i64::MAX],
            },
        ),
        ("prefork", Message::Prefork { reqno: 3 }),
        (
            "prefork resp",
            Message::PreforkResp {
                reqno: 3,
                cookie: COOKIE,
            },
        ),
        (
            "copyin req",
            Message::CopyinReq {
                reqno: 0,
                string: false,
                len: 5,
                addr: 0x5555_5555_b49d,
            },
        ),
        (
            "copyinstr req",
            Message::CopyinReq {
                reqno: 1,
                string: true,
                len: 1024,
                addr: 0x5555_5555_b499,
            },
        ),
        (
            "copyin resp",
            Message::CopyinResp {
                reqno: 0,
                data: b"hello",
            },
        ),
        (
            "copyin resp empty",
            Message::CopyinResp {
                reqno: 4,
                data: b"",
            },
        ),
        (
            "copyin resp 4k",
            Message::CopyinResp {
                reqno: 5,
                data: &PAGE,
            },
        ),
        (
            "copyout",
            Message::Copyout {
                reqno: 0,
                string: false,
                addr: 0x7fff_ffff_e3e0,
                data: &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
            },
        ),
        (
            "copyoutstr",
            Message::Copyout {
                reqno: 2,
                string: true,
                addr: 0x1000,
                data: b"/tmp\0",
            },
        ),
        (
            "copyout empty",
            Message::Copyout {
                reqno: 6,
                string: false,
                addr: 0,
                data: b"",
            },
        ),
        (
            "copyout 4k",
            Message::Copyout {
                reqno: 8,
                string: false,
                addr: 0x7000_0000,
                data: &PAGE,
            },
        ),
        (
            "anonmmap req",
            Message::AnonmmapReq {
                reqno: 0,
                size: 65536,
            },
        ),
        (
            "anonmmap resp",
            Message::AnonmmapResp {
                reqno: 0,
                addr: 0x7fff_f7dc_2000,
            },
        ),
        (
            "anonmmap resp failed",
            Message::AnonmmapResp { reqno: 1, addr: 0 },
        ),
        (
            "raise",
            Message::Raise {
                reqno: 0,
                signo: 30,
            },
        ),
        (
            "ext hello",
            Message::ExtHello {
                reqno: sp_proto::ext::PROBE_REQNO,
                hello: sp_proto::ext::Hello {
                    version: 1,
                    features: sp_proto::ext::Features::ALL,
                    max_frame: 1 << 20,
                    max_segment_bytes: 0,
                },
            },
        ),
        (
            "ext hello resp",
            Message::ExtHelloResp {
                reqno: sp_proto::ext::PROBE_REQNO,
                hello: sp_proto::ext::Hello {
                    version: 1,
                    features: sp_proto::ext::Features::SEGMENTS,
                    max_frame: sp_proto::DEFAULT_MAX_FRAME,
                    max_segment_bytes: 64 << 20,
                },
            },
        ),
        (
            "syscall seg write",
            seg_sample(2, 4, &[1, 0x1000, 5], &[(0x1000, b"hello")]),
        ),
        (
            "syscall seg open",
            seg_sample(
                3,
                5,
                &[0x2000, 0, 0],
                &[(0x2000, b"/ok\0"), (0x3000, &PAGE)],
            ),
        ),
        ("syscall seg none", seg_sample(4, 20, &[], &[])),
        (
            "error malformed",
            Message::Error {
                reqno: 2,
                code: sp_proto::ErrorCode::MALFORMED_REQUEST,
            },
        ),
        (
            "error unknown code",
            Message::Error {
                reqno: 5,
                code: sp_proto::ErrorCode(1234),
            },
        ),
    ]
}

/// A SYSCALL_SEG message (its frame leaked, so it lives for the test).
pub fn seg_sample(
    reqno: u64,
    sysnum: u32,
    slots: &[u64],
    segs: &[(u64, &'static [u8])],
) -> Message<'static> {
    let args = sp_proto::args::encode(slots);
    let f = sp_proto::ext::SegFrame::new(reqno, sysnum, &args, segs).unwrap();
    let data: Vec<&[u8]> = segs.iter().map(|s| s.1).collect();
    let bytes: &'static [u8] = Box::leak(f.to_vec(&data).into_boxed_slice());
    parse_one(bytes).message().unwrap()
}

/// Number of `Message` variants.
pub const VARIANTS: usize = 16;

/// The variant's index. The match has no wildcard: a new variant does not
/// compile until the samples (and this count) cover it.
pub fn variant_index(m: &Message<'_>) -> usize {
    match m {
        Message::Handshake { .. } => 0,
        Message::HandshakeResp { .. } => 1,
        Message::Syscall { .. } => 2,
        Message::SyscallResp { .. } => 3,
        Message::Prefork { .. } => 4,
        Message::PreforkResp { .. } => 5,
        Message::CopyinReq { .. } => 6,
        Message::CopyinResp { .. } => 7,
        Message::Copyout { .. } => 8,
        Message::AnonmmapReq { .. } => 9,
        Message::AnonmmapResp { .. } => 10,
        Message::Raise { .. } => 11,
        Message::Error { .. } => 12,
        Message::ExtHello { .. } => 13,
        Message::ExtHelloResp { .. } => 14,
        Message::SyscallSeg { .. } => 15,
    }
}

/// The body size a message must have, for messages of a fixed size.
pub fn fixed_body_len(m: &Message<'_>) -> Option<usize> {
    match m {
        Message::Handshake {
            hs: Handshake::Fork { .. },
            ..
        } => Some(20),
        Message::HandshakeResp { .. } => Some(4),
        Message::SyscallResp { .. } => Some(24),
        Message::Prefork { .. } => Some(0),
        Message::PreforkResp { .. } => Some(16),
        Message::CopyinReq { .. } => Some(16),
        Message::AnonmmapReq { .. } | Message::AnonmmapResp { .. } => Some(8),
        Message::Raise { .. } | Message::Error { .. } => Some(0),
        Message::ExtHello { .. } | Message::ExtHelloResp { .. } => Some(24),
        Message::Handshake { .. }
        | Message::SyscallSeg { .. }
        | Message::Syscall { .. }
        | Message::CopyinResp { .. }
        | Message::Copyout { .. } => None,
    }
}

/// `frame` with its header's `len` set to `24 + body_len` and its body cut
/// or padded with zeros to match.
pub fn with_body_len(frame: &[u8], body_len: usize) -> Vec<u8> {
    let mut out = frame.to_vec();
    out.resize(HEADER_LEN + body_len, 0);
    out[..8].copy_from_slice(&((HEADER_LEN + body_len) as u64).to_le_bytes());
    out
}

/// A header-only frame with these fields.
pub fn raw_header(len: u64, reqno: u64, class: u16, typ: u16, u: u32) -> Vec<u8> {
    let h = Header::new(
        len,
        reqno,
        sp_proto::Class(class),
        sp_proto::MsgType(typ),
        u,
    );
    h.to_bytes().to_vec()
}

/// Parses exactly one whole frame from `bytes` (which must hold nothing else).
pub fn parse_one(bytes: &[u8]) -> Frame<'_> {
    let (frame, used) = Frame::parse(bytes, u64::MAX)
        .expect("frame header rejected")
        .expect("frame incomplete");
    assert_eq!(used, bytes.len(), "trailing bytes after the frame");
    frame
}

/// Decodes one whole frame into a message.
pub fn decode(bytes: &[u8]) -> Result<Message<'_>, BodyError> {
    parse_one(bytes).message()
}

/// A frame's bytes rebuilt from its parts.
pub fn frame_bytes(f: &Frame<'_>) -> Vec<u8> {
    let mut v = f.header.to_bytes().to_vec();
    v.extend_from_slice(f.body);
    v
}
