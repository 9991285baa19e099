//! Property tests: every variant round-trips over arbitrary field values,
//! and arbitrary bytes in arbitrary chunks never panic the decoder nor get
//! a frame over the limit past it.
//!
//! Each property runs proptest's default case count (256, or
//! `PROPTEST_CASES`); the `#[ignore]`d stress variants run many more
//! (`cargo xtask test --stress`).

mod common;

use proptest::collection::vec;
use proptest::prelude::*;
use sp_proto::{
    fuzz_deframer, Banner, Cookie, DecodeError, Deframer, ErrorCode, Frame, Handshake,
    HandshakeKind, Message, HEADER_LEN,
};

/// A message with owned payloads, so a strategy can produce it.
#[derive(Clone, Debug)]
enum Owned {
    Guest(u64, Vec<u8>),
    Exec(u64, Vec<u8>),
    Fork(u64, Cookie, i32),
    OtherHandshake(u64, u32, Vec<u8>),
    HandshakeResp(u64, i32),
    Syscall(u64, u32, Vec<u8>),
    SyscallResp(u64, i32, [i64; 2]),
    Prefork(u64),
    PreforkResp(u64, Cookie),
    CopyinReq(u64, bool, u64, u64),
    CopyinResp(u64, Vec<u8>),
    Copyout(u64, bool, u64, Vec<u8>),
    AnonmmapReq(u64, u64),
    AnonmmapResp(u64, u64),
    Raise(u64, u32),
    Error(u64, u32),
}

impl Owned {
    fn msg(&self) -> Message<'_> {
        match self {
            Owned::Guest(r, c) => Message::Handshake {
                reqno: *r,
                hs: Handshake::Guest { comm: c },
            },
            Owned::Exec(r, c) => Message::Handshake {
                reqno: *r,
                hs: Handshake::Exec { comm: c },
            },
            Owned::Fork(r, cookie, cancel) => Message::Handshake {
                reqno: *r,
                hs: Handshake::Fork {
                    cookie: *cookie,
                    cancel: *cancel,
                },
            },
            Owned::OtherHandshake(r, k, b) => Message::Handshake {
                reqno: *r,
                hs: Handshake::Other {
                    kind: HandshakeKind(*k),
                    body: b,
                },
            },
            Owned::HandshakeResp(r, e) => Message::HandshakeResp {
                reqno: *r,
                error: *e,
            },
            Owned::Syscall(r, n, a) => Message::Syscall {
                reqno: *r,
                sysnum: *n,
                args: a,
            },
            Owned::SyscallResp(r, e, rv) => Message::SyscallResp {
                reqno: *r,
                error: *e,
                retval: *rv,
            },
            Owned::Prefork(r) => Message::Prefork { reqno: *r },
            Owned::PreforkResp(r, c) => Message::PreforkResp {
                reqno: *r,
                cookie: *c,
            },
            Owned::CopyinReq(r, s, l, a) => Message::CopyinReq {
                reqno: *r,
                string: *s,
                len: *l,
                addr: *a,
            },
            Owned::CopyinResp(r, d) => Message::CopyinResp { reqno: *r, data: d },
            Owned::Copyout(r, s, a, d) => Message::Copyout {
                reqno: *r,
                string: *s,
                addr: *a,
                data: d,
            },
            Owned::AnonmmapReq(r, s) => Message::AnonmmapReq {
                reqno: *r,
                size: *s,
            },
            Owned::AnonmmapResp(r, a) => Message::AnonmmapResp {
                reqno: *r,
                addr: *a,
            },
            Owned::Raise(r, s) => Message::Raise {
                reqno: *r,
                signo: *s,
            },
            Owned::Error(r, c) => Message::Error {
                reqno: *r,
                code: ErrorCode(*c),
            },
        }
    }
}

/// A process name as a C client sends it: a non-NUL first byte, anything
/// after (usually ending in a NUL).
fn comm() -> impl Strategy<Value = Vec<u8>> {
    (1u8..=255, vec(any::<u8>(), 0..40)).prop_map(|(first, rest)| [vec![first], rest].concat())
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..max)
}

fn owned() -> impl Strategy<Value = Owned> {
    let r = any::<u64>;
    prop_oneof![
        (r(), comm()).prop_map(|(r, c)| Owned::Guest(r, c)),
        (r(), comm()).prop_map(|(r, c)| Owned::Exec(r, c)),
        (r(), any::<Cookie>(), any::<i32>()).prop_map(|(r, c, x)| Owned::Fork(r, c, x)),
        // AUTH and kinds nobody knows; GUEST, FORK and EXEC have their own variants.
        (
            r(),
            any::<u32>().prop_filter("own variant", |k| ![0, 2, 3].contains(k)),
            bytes(64)
        )
            .prop_map(|(r, k, b)| Owned::OtherHandshake(r, k, b)),
        (r(), any::<i32>()).prop_map(|(r, e)| Owned::HandshakeResp(r, e)),
        (r(), any::<u32>(), bytes(96)).prop_map(|(r, n, a)| Owned::Syscall(r, n, a)),
        (r(), any::<i32>(), any::<[i64; 2]>()).prop_map(|(r, e, v)| Owned::SyscallResp(r, e, v)),
        r().prop_map(Owned::Prefork),
        (r(), any::<Cookie>()).prop_map(|(r, c)| Owned::PreforkResp(r, c)),
        (r(), any::<bool>(), any::<u64>(), any::<u64>())
            .prop_map(|(r, s, l, a)| Owned::CopyinReq(r, s, l, a)),
        (r(), bytes(600)).prop_map(|(r, d)| Owned::CopyinResp(r, d)),
        (r(), any::<bool>(), any::<u64>(), bytes(600))
            .prop_map(|(r, s, a, d)| Owned::Copyout(r, s, a, d)),
        (r(), any::<u64>()).prop_map(|(r, s)| Owned::AnonmmapReq(r, s)),
        (r(), any::<u64>()).prop_map(|(r, a)| Owned::AnonmmapResp(r, a)),
        (r(), any::<u32>()).prop_map(|(r, s)| Owned::Raise(r, s)),
        (r(), any::<u32>()).prop_map(|(r, c)| Owned::Error(r, c)),
    ]
}

/// Chunk sizes to cut a stream with (cycled).
fn chunks() -> impl Strategy<Value = Vec<usize>> {
    vec(1usize..200, 1..16)
}

/// Feeds `bytes` to `d` in chunks of the given sizes (cycled), calling `take`
/// for every frame; returns the error that ended the stream, if any.
fn feed(
    d: &mut Deframer,
    mut bytes: &[u8],
    sizes: &[usize],
    mut take: impl FnMut(Frame<'_>),
) -> Option<DecodeError> {
    let mut i = 0;
    while !bytes.is_empty() {
        let n = sizes[i % sizes.len()].min(bytes.len());
        i += 1;
        d.push(&bytes[..n]);
        bytes = &bytes[n..];
        loop {
            match d.next_frame() {
                Ok(Some(f)) => take(f),
                Ok(None) => break,
                Err(e) => return Some(e),
            }
        }
    }
    None
}

fn round_trip(o: &Owned) -> Result<(), TestCaseError> {
    let msg = o.msg();
    let bytes = msg.to_vec();
    prop_assert_eq!(bytes.len(), msg.encoded_len());
    let (frame, used) = Frame::parse(&bytes, u64::MAX).unwrap().unwrap();
    prop_assert_eq!(used, bytes.len());
    prop_assert_eq!(frame.header.len(), bytes.len() as u64);
    prop_assert_eq!(frame.header.reqno(), msg.reqno());
    prop_assert_eq!(frame.message(), Ok(msg));
    // Every cut needs more bytes.
    for cut in [0, 1, HEADER_LEN - 1, HEADER_LEN, bytes.len() - 1] {
        if cut < bytes.len() {
            prop_assert_eq!(Frame::parse(&bytes[..cut], u64::MAX), Ok(None));
        }
    }
    Ok(())
}

proptest! {
    #[test]
    fn every_variant_round_trips(o in owned()) {
        round_trip(&o)?;
    }

    /// A stream of arbitrary messages in arbitrary chunks comes back whole.
    #[test]
    fn message_streams_survive_any_split(msgs in vec(owned(), 1..12), sizes in chunks()) {
        let stream: Vec<u8> = msgs.iter().flat_map(|o| o.msg().to_vec()).collect();
        let mut d = Deframer::new(u64::MAX);
        let mut got = Vec::new();
        let err = feed(&mut d, &stream, &sizes, |f| got.push(common::frame_bytes(&f)));
        prop_assert_eq!(err, None);
        prop_assert_eq!(got.len(), msgs.len());
        for (o, f) in msgs.iter().zip(&got) {
            let frame = common::parse_one(f);
            prop_assert_eq!(frame.message(), Ok(o.msg()));
        }
        prop_assert!(!d.is_mid_frame());
    }

    /// Arbitrary bytes: no panic, no frame over the limit, every frame's body
    /// exactly what its header says; an error is final.
    #[test]
    fn arbitrary_streams_never_panic(
        stream in bytes(2048),
        sizes in chunks(),
        max in (HEADER_LEN as u64)..1024,
    ) {
        check_arbitrary_stream(&stream, &sizes, max)?;
    }

    /// Arbitrary bytes that look like frames: a plausible header (small
    /// length, real class and type) and random body.
    #[test]
    fn near_valid_streams_never_panic(
        frames in vec((0u64..80, any::<u64>(), 0u16..4, 0u16..10, 0u32..5, bytes(64)), 1..10),
        sizes in chunks(),
    ) {
        let mut stream = Vec::new();
        for (len, reqno, class, typ, u, body) in &frames {
            stream.extend_from_slice(&common::raw_header(*len, *reqno, *class, *typ, *u));
            stream.extend_from_slice(body);
        }
        check_arbitrary_stream(&stream, &sizes, 64)?;
        fuzz_deframer(&[&[sizes[0] as u8][..], &stream].concat());
    }

    #[test]
    fn fuzz_deframer_on_arbitrary_input(data in bytes(4096)) {
        fuzz_deframer(&data);
    }

    #[test]
    fn fuzz_deframer_on_valid_streams(split in any::<u8>(), msgs in vec(owned(), 0..8)) {
        let mut data = vec![split];
        for o in &msgs {
            o.msg().encode_into(&mut data);
        }
        fuzz_deframer(&data);
    }

    #[test]
    fn banner_round_trips(
        major in 0u32..1_000_000_000,
        minor in 0u32..1_000_000_000,
        ostype in "[!-,.0-~]{1,16}",
        osrelease in "[!-~]{1,24}",
        machine in "[!-.0-~]{1,16}",
    ) {
        let b = Banner { major, minor, ostype, osrelease, machine };
        let line = b.format().unwrap();
        prop_assert_eq!(Banner::line_len(&line), Ok(Some(line.len())));
        prop_assert_eq!(Banner::parse(&line), Ok(b.clone()));
        prop_assert_eq!(b.check_supported().is_ok(), major == 0 && minor >= 4);
    }

    #[test]
    fn banner_parse_never_panics(line in bytes(120)) {
        if let Ok(b) = Banner::parse(&line) {
            // Whatever parses formats back to a banner that parses the same.
            let again = b.format().unwrap();
            prop_assert_eq!(Banner::parse(&again), Ok(b));
        }
        let _ = Banner::line_len(&line);
    }
}

fn check_arbitrary_stream(stream: &[u8], sizes: &[usize], max: u64) -> Result<(), TestCaseError> {
    let mut d = Deframer::new(max);
    let mut frames = 0usize;
    let mut bad_frame = None;
    let err = feed(&mut d, stream, sizes, |f| {
        frames += 1;
        let len = f.header.len();
        if len > max || f.body.len() as u64 + HEADER_LEN as u64 != len {
            bad_frame = Some(len);
        }
        // Decoding may fail, but must not panic.
        let _ = f.message();
    });
    prop_assert_eq!(bad_frame, None);
    if let Some(e) = err {
        match e {
            DecodeError::TooShort(len) => prop_assert!(len < HEADER_LEN as u64),
            DecodeError::TooLong { len, max: m } => prop_assert!(len > max && m == max),
        }
        // Sticky.
        d.push(&Message::Prefork { reqno: 1 }.to_vec());
        prop_assert_eq!(d.next_frame(), Err(e));
    }
    prop_assert!(frames <= stream.len() / HEADER_LEN);
    Ok(())
}

/// Many more cases of the stream properties, for `cargo xtask test --stress`.
#[test]
#[ignore = "stress: run with --ignored"]
fn stress_arbitrary_streams() {
    let config = ProptestConfig::with_cases(20_000);
    proptest!(config, |(stream in bytes(4096), sizes in chunks(), max in (HEADER_LEN as u64)..4096)| {
        check_arbitrary_stream(&stream, &sizes, max)?;
        fuzz_deframer(&stream);
    });
    let config = ProptestConfig::with_cases(10_000);
    proptest!(config, |(o in owned())| {
        round_trip(&o)?;
    });
}
