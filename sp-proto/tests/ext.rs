//! The extension's frames (EXT_HELLO, SYSCALL_SEG) and the decoder's
//! detached receiving of large bodies.

mod common;

use common::{parse_one, PAGE};
use proptest::collection::vec;
use proptest::prelude::*;
use sp_proto::ext::{
    seg_frame_len, Features, Hello, SegBody, SegBuildError, SegError, SegFrame, MAX_SEGMENTS,
    PROBE_REQNO,
};
use sp_proto::{BodyError, Class, Deframer, Frame, Header, Message, MsgType, HEADER_LEN};

fn slots(s: &[u64]) -> Vec<u8> {
    sp_proto::args::encode(s)
}

/// A SYSCALL_SEG body with a hand-written trailer.
fn body(data: &[u8], args: &[u8], descs: &[(u64, u64)], args_len: u32, nseg: u32) -> Vec<u8> {
    let mut b = data.to_vec();
    b.extend_from_slice(args);
    for &(a, l) in descs {
        b.extend_from_slice(&a.to_le_bytes());
        b.extend_from_slice(&l.to_le_bytes());
    }
    b.extend_from_slice(&args_len.to_le_bytes());
    b.extend_from_slice(&nseg.to_le_bytes());
    b
}

#[test]
fn syscall_seg_layout_is_data_args_descriptors_trailer() {
    let args = slots(&[1, 0x1000, 5]);
    let f = SegFrame::new(7, 4, &args, &[(0x1000, b"hello"), (0x2000, b"/ok\0")]).unwrap();
    let bytes = f.to_vec(&[b"hello", b"/ok\0"]);
    assert_eq!(bytes.len() as u64, f.len());
    assert_eq!(
        f.len(),
        seg_frame_len(args.len(), [5, 4]),
        "seg_frame_len agrees"
    );
    let h = Header::read(&bytes).unwrap();
    assert_eq!(
        (h.len(), h.reqno(), h.class(), h.typ(), h.sysnum()),
        (f.len(), 7, Class::REQ, MsgType::SYSCALL_SEG, 4)
    );
    // The exact bytes: data first, so a receiver can keep the body as the
    // data buffer.
    let want = body(b"hello/ok\0", &args, &[(0x1000, 5), (0x2000, 4)], 24, 2);
    assert_eq!(&bytes[HEADER_LEN..], &want[..]);
    let b = SegBody::parse(&want).unwrap();
    assert_eq!(b.args(), &args[..]);
    assert_eq!(b.data(), b"hello/ok\0");
    assert_eq!(b.segment_count(), 2);
    let segs: Vec<_> = b.segments().map(|s| (s.addr, s.offset, s.bytes)).collect();
    assert_eq!(
        segs,
        vec![(0x1000, 0, &b"hello"[..]), (0x2000, 5, &b"/ok\0"[..])]
    );
}

#[test]
fn syscall_seg_bodies_that_do_not_add_up_are_refused() {
    let args = slots(&[3]);
    assert_eq!(SegBody::parse(b"1234567"), Err(SegError::NoTrailer(7)));
    assert_eq!(
        SegBody::parse(&body(b"", b"", &[], 0, MAX_SEGMENTS as u32 + 1)),
        Err(SegError::TooManySegments(MAX_SEGMENTS + 1))
    );
    // Announces more argument bytes than the body holds.
    assert_eq!(
        SegBody::parse(&body(b"", &args, &[], 9, 0)),
        Err(SegError::Layout { need: 17, have: 16 })
    );
    assert_eq!(
        SegBody::parse(&body(b"", &args, &[], u32::MAX, 0)),
        Err(SegError::Layout {
            need: u64::from(u32::MAX) + 8,
            have: 16
        })
    );
    // Data the descriptors do not account for, both ways.
    assert_eq!(
        SegBody::parse(&body(b"xyz", &args, &[(0x10, 2)], 8, 1)),
        Err(SegError::DataLength {
            announced: 2,
            got: 3
        })
    );
    assert_eq!(
        SegBody::parse(&body(b"xy", &args, &[(0x10, 2), (0x20, 1)], 8, 2)),
        Err(SegError::DataLength {
            announced: 3,
            got: 2
        })
    );
    assert!(matches!(
        SegBody::parse(&body(b"", &args, &[(0x10, u64::MAX)], 8, 1)),
        Err(SegError::Wraps { .. })
    ));
    // A segment past the end of the address space.
    assert_eq!(
        SegBody::parse(&body(b"ab", &args, &[(u64::MAX, 2)], 8, 1)),
        Err(SegError::Wraps {
            addr: u64::MAX,
            len: 2
        })
    );
    // Through the message decoder: a typed body error.
    let mut frame = Header::new(24 + 7, 2, Class::REQ, MsgType::SYSCALL_SEG, 4)
        .to_bytes()
        .to_vec();
    frame.extend_from_slice(b"1234567");
    assert_eq!(
        parse_one(&frame).message(),
        Err(BodyError::Segments(SegError::NoTrailer(7)))
    );
    // An empty segment list is a plain call in a new envelope.
    let b = body(b"", &args, &[], 8, 0);
    assert_eq!(SegBody::parse(&b).unwrap().args(), &args[..]);
}

#[test]
fn building_refuses_what_cannot_be_said() {
    let many: Vec<(u64, &[u8])> = (0..=MAX_SEGMENTS as u64).map(|i| (i, &b""[..])).collect();
    assert_eq!(
        SegFrame::new(1, 4, &[], &many),
        Err(SegBuildError::TooManySegments(MAX_SEGMENTS + 1))
    );
    assert_eq!(
        SegFrame::new(1, 4, &[], &[(u64::MAX, b"x")]),
        Err(SegBuildError::Wraps {
            addr: u64::MAX,
            len: 1
        })
    );
}

#[test]
fn hello_round_trips_both_ways_and_features_print() {
    let h = Hello {
        version: 1,
        features: Features::ALL,
        max_frame: 4120,
        max_segment_bytes: 4096,
    };
    for m in [
        Message::ExtHello {
            reqno: PROBE_REQNO,
            hello: h,
        },
        Message::ExtHelloResp {
            reqno: PROBE_REQNO,
            hello: h,
        },
    ] {
        let v = m.to_vec();
        assert_eq!(v.len(), 48);
        assert_eq!(parse_one(&v).message(), Ok(m));
    }
    assert_eq!(format!("{:?}", Features::ALL), "SEGMENTS|COPY_ERRORS");
    assert_eq!(format!("{:?}", Features::NONE), "NONE");
    assert_eq!(format!("{:?}", Features(0x11)), "SEGMENTS|0x10");
    assert!(Features::ALL.contains(Features::SEGMENTS));
    assert_eq!(
        Features::ALL.intersect(Features(0x12)),
        Features::COPY_ERRORS
    );
    assert_eq!(format!("{:?}", MsgType::SYSCALL_SEG), "SYSCALL_SEG");
}

/// Feeds `stream` in chunks of `sizes` (cycled); returns every frame as
/// bytes, taking detached ones out owned when `owned`.
fn collect(mut d: Deframer, stream: &[u8], sizes: &[usize], owned: bool) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut rest = stream;
    let mut i = 0;
    loop {
        loop {
            if owned {
                if let Some((h, body)) = d.take_detached() {
                    out.push([&h.to_bytes()[..], &body].concat());
                    continue;
                }
            }
            match d.next_frame().unwrap() {
                Some(f) => out.push(common::frame_bytes(&f)),
                None => break,
            }
        }
        if rest.is_empty() {
            break;
        }
        let n = sizes[i % sizes.len()].min(rest.len());
        i += 1;
        d.push(&rest[..n]);
        rest = &rest[n..];
    }
    assert!(!d.is_mid_frame());
    out
}

#[test]
fn detached_bodies_are_the_same_frames() {
    let big = Message::CopyinResp {
        reqno: 3,
        data: &PAGE,
    }
    .to_vec();
    let small = Message::Prefork { reqno: 9 }.to_vec();
    let stream = [&small[..], &big, &small, &big, &big, &small].concat();
    let plain = collect(Deframer::new(u64::MAX), &stream, &[4096 * 3], false);
    assert_eq!(plain.len(), 6);
    for sizes in [&[1usize][..], &[7, 100, 3], &[5000], &[23, 24, 25, 4200]] {
        for owned in [false, true] {
            let d = Deframer::new(u64::MAX).with_detach(100);
            assert_eq!(
                collect(d, &stream, sizes, owned),
                plain,
                "{sizes:?} {owned}"
            );
        }
    }
}

#[test]
fn detached_body_takes_bytes_without_a_window_and_keeps_extra() {
    let big = Message::CopyinResp {
        reqno: 3,
        data: &PAGE,
    }
    .to_vec();
    let next = Message::Prefork { reqno: 4 }.to_vec();
    let mut d = Deframer::new(u64::MAX).with_detach(1000);
    d.push(&big[..100]);
    assert!(d.is_detached());
    assert_eq!(d.pending_frame_len(), Some(big.len()));
    assert_eq!(d.buffered(), 100);
    let (body, missing) = d.detached_body().unwrap();
    assert_eq!(missing, big.len() - 100);
    assert!(
        body.capacity() >= big.len() - HEADER_LEN,
        "reserved up front"
    );
    // The caller appends the rest and, by mistake, the next frame too.
    body.extend_from_slice(&big[100..]);
    body.extend_from_slice(&next[..10]);
    assert!(d.detached_body().is_none());
    d.push(&next[10..]);
    let (h, owned) = d.take_detached().unwrap();
    assert_eq!([&h.to_bytes()[..], &owned].concat(), big);
    let f = d.next_frame().unwrap().unwrap();
    assert_eq!(common::frame_bytes(&f), next);
    assert_eq!(d.next_frame(), Ok(None));
    assert!(d.take_buffer().is_some());
}

#[test]
fn read_buf_and_commit_fill_a_detached_body() {
    let big = Message::Copyout {
        reqno: 3,
        string: false,
        addr: 0x10,
        data: &[7u8; 50_000],
    }
    .to_vec();
    let mut d = Deframer::new(u64::MAX).with_detach(1000);
    let mut fed = 0;
    while fed < big.len() {
        let win = d.read_buf();
        let n = win.len().min(big.len() - fed).min(3000);
        win[..n].copy_from_slice(&big[fed..fed + n]);
        d.commit(n);
        fed += n;
    }
    assert!(d.take_buffer().is_none(), "a frame is buffered");
    let f = d.next_frame().unwrap().unwrap();
    assert_eq!(common::frame_bytes(&f), big);
    assert_eq!(d.next_frame(), Ok(None));
    d.shrink();
}

#[test]
fn a_frame_over_the_limit_is_refused_before_detaching() {
    let mut d = Deframer::new(1000).with_detach(10);
    d.push(&Header::new(5000, 1, Class::RESP, MsgType::COPYIN, 0).to_bytes());
    d.push(b"abc");
    assert!(!d.is_detached());
    assert!(d.next_frame().is_err());
}

fn seg_msgs() -> impl Strategy<Value = Vec<(u64, Vec<u8>, Vec<Vec<u8>>)>> {
    vec(
        (
            any::<u64>(),
            vec(any::<u8>(), 0..48),
            vec(vec(any::<u8>(), 0..700), 0..4),
        ),
        1..6,
    )
}

proptest! {
    /// SYSCALL_SEG frames in a stream with detaching on, in any split,
    /// decode to what was built.
    #[test]
    fn seg_frames_survive_any_split_detached(
        msgs in seg_msgs(),
        sizes in vec(1usize..900, 1..8),
        over in 0usize..800,
    ) {
        let mut stream = Vec::new();
        for (reqno, args, segs) in &msgs {
            let pieces: Vec<(u64, &[u8])> =
                segs.iter().enumerate().map(|(i, s)| (i as u64 * 0x1000, &s[..])).collect();
            let f = SegFrame::new(*reqno, 4, args, &pieces).unwrap();
            let data: Vec<&[u8]> = segs.iter().map(|s| &s[..]).collect();
            stream.extend(f.to_vec(&data));
        }
        let got = collect(Deframer::new(u64::MAX).with_detach(over), &stream, &sizes, over % 2 == 0);
        prop_assert_eq!(got.len(), msgs.len());
        for ((reqno, args, segs), f) in msgs.iter().zip(&got) {
            let (frame, _) = Frame::parse(f, u64::MAX).unwrap().unwrap();
            let Ok(Message::SyscallSeg { reqno: r, body, .. }) = frame.message() else {
                return Err(TestCaseError::fail("not a SYSCALL_SEG"));
            };
            prop_assert_eq!(r, *reqno);
            prop_assert_eq!(body.args(), &args[..]);
            let got: Vec<&[u8]> = body.segments().map(|s| s.bytes).collect();
            let want: Vec<&[u8]> = segs.iter().map(|s| &s[..]).collect();
            prop_assert_eq!(got, want);
        }
    }
}
