//! The incremental decoder: any split of the byte stream gives the same
//! frames; a bad length ends the stream with a sticky error, before the body
//! would be buffered.

mod common;

use common::{frame_bytes, raw_header, samples};
use sp_proto::{DecodeError, Deframer, Frame, Message, DEFAULT_MAX_FRAME, HEADER_LEN};

/// Every sample frame, in order, and their concatenation.
fn stream() -> (Vec<Vec<u8>>, Vec<u8>) {
    let frames: Vec<Vec<u8>> = samples().iter().map(|(_, m)| m.to_vec()).collect();
    let all = frames.concat();
    (frames, all)
}

/// Takes every whole frame the decoder has, checking each decodes.
fn drain(d: &mut Deframer, out: &mut Vec<Vec<u8>>) {
    while let Some(f) = d.next_frame().expect("valid stream refused") {
        f.message().expect("sample frame did not decode");
        out.push(frame_bytes(&f));
    }
}

#[test]
fn split_at_every_byte_boundary() {
    let (frames, all) = stream();
    for cut in 0..=all.len() {
        let mut d = Deframer::new(DEFAULT_MAX_FRAME);
        let mut got = Vec::new();
        d.push(&all[..cut]);
        drain(&mut d, &mut got);
        d.push(&all[cut..]);
        drain(&mut d, &mut got);
        assert_eq!(got, frames, "split at {cut}");
        assert!(!d.is_mid_frame());
        assert_eq!(d.buffered(), 0);
    }
}

#[test]
fn one_byte_at_a_time() {
    let (frames, all) = stream();
    let mut d = Deframer::new(DEFAULT_MAX_FRAME);
    let mut got = Vec::new();
    for (i, b) in all.iter().enumerate() {
        d.push(std::slice::from_ref(b));
        drain(&mut d, &mut got);
        // Between frames nothing is pending; inside one, something is.
        let boundary = frames.iter().scan(0, |n, f| {
            *n += f.len();
            Some(*n)
        });
        let at_boundary = boundary.into_iter().any(|n| n == i + 1);
        assert_eq!(d.is_mid_frame(), !at_boundary, "after byte {i}");
    }
    assert_eq!(got, frames);
}

#[test]
fn several_frames_in_one_push() {
    let (frames, all) = stream();
    let mut d = Deframer::new(DEFAULT_MAX_FRAME);
    d.push(&all);
    assert_eq!(d.buffered(), all.len());
    let mut got = Vec::new();
    drain(&mut d, &mut got);
    assert_eq!(got, frames);
    assert_eq!(d.buffered(), 0);
}

/// Regression: `read_buf` computed the rest of the pending frame as
/// `len - buffered`, which underflowed once more than one whole frame was
/// buffered (several pushes before the frames were taken).
#[test]
fn pushes_without_taking_frames() {
    let f = Message::Syscall {
        reqno: 2,
        sysnum: 20,
        args: &[],
    }
    .to_vec();
    let mut d = Deframer::new(DEFAULT_MAX_FRAME);
    for _ in 0..5 {
        d.push(&f);
    }
    let mut got = Vec::new();
    drain(&mut d, &mut got);
    assert_eq!(got, vec![f; 5]);
}

/// Same bug, one push: more than the 16 KiB read window of small frames.
#[test]
fn one_large_push_of_small_frames() {
    let f = Message::Syscall {
        reqno: 2,
        sysnum: 20,
        args: &[],
    }
    .to_vec();
    let n = 3000; // 72 000 bytes
    let mut d = Deframer::new(DEFAULT_MAX_FRAME);
    d.push(&f.repeat(n));
    let mut count = 0;
    while let Some(frame) = d.next_frame().unwrap() {
        assert_eq!(frame_bytes(&frame), f);
        count += 1;
    }
    assert_eq!(count, n);
}

#[test]
fn read_buf_and_commit_without_a_copy() {
    let (frames, all) = stream();
    let mut d = Deframer::new(DEFAULT_MAX_FRAME);
    let mut got = Vec::new();
    let mut rest = &all[..];
    // Read in awkward sizes straight into the decoder's window.
    let mut step = 1;
    while !rest.is_empty() {
        let win = d.read_buf();
        assert!(!win.is_empty());
        let n = win.len().min(rest.len()).min(step);
        win[..n].copy_from_slice(&rest[..n]);
        d.commit(n);
        rest = &rest[n..];
        step = step % 97 + 13;
        drain(&mut d, &mut got);
    }
    assert_eq!(got, frames);
}

#[test]
fn read_buf_grows_with_the_bytes_received_not_the_announced_length() {
    let data = vec![7u8; 100_000];
    let f = Message::CopyinResp {
        reqno: 1,
        data: &data,
    }
    .to_vec();
    let mut d = Deframer::new(DEFAULT_MAX_FRAME);
    d.push(&f[..HEADER_LEN]);
    // A header alone must not make the decoder commit the whole frame: a
    // peer announcing 64 MiB and sending a byte would pin 64 MiB.
    assert!(
        d.read_buf().len() <= 64 * 1024,
        "first window {}",
        d.read_buf().len()
    );
    let mut rest = &f[HEADER_LEN..];
    let mut reads = 0;
    while !rest.is_empty() {
        let win = d.read_buf();
        let n = win.len().min(rest.len());
        win[..n].copy_from_slice(&rest[..n]);
        d.commit(n);
        rest = &rest[n..];
        reads += 1;
    }
    // The window doubles with what has arrived: a handful of reads.
    assert!(reads <= 6, "{reads} reads for 100,000 bytes");
    let frame = d.next_frame().unwrap().unwrap();
    assert_eq!(
        frame.message(),
        Ok(Message::CopyinResp {
            reqno: 1,
            data: &data
        })
    );
}

#[test]
fn len_below_header_is_too_short_and_sticky() {
    let good = Message::Prefork { reqno: 1 }.to_vec();
    for len in 0..HEADER_LEN as u64 {
        let bad = raw_header(len, 1, 0, 0, 0);
        let mut d = Deframer::new(DEFAULT_MAX_FRAME);
        // Nothing is decided before the whole header is in.
        d.push(&bad[..HEADER_LEN - 1]);
        assert_eq!(d.next_frame(), Ok(None), "len {len}: decided early");
        d.push(&bad[HEADER_LEN - 1..]);
        assert_eq!(d.next_frame(), Err(DecodeError::TooShort(len)), "len {len}");
        // The stream is out of step for good: later valid bytes change nothing.
        d.push(&good);
        assert_eq!(
            d.next_frame(),
            Err(DecodeError::TooShort(len)),
            "len {len}: not sticky"
        );
        assert_eq!(
            d.next_frame(),
            Err(DecodeError::TooShort(len)),
            "len {len}: not sticky"
        );
        assert_eq!(
            Frame::parse(&bad, DEFAULT_MAX_FRAME),
            Err(DecodeError::TooShort(len))
        );
    }
}

#[test]
fn too_short_after_a_good_frame() {
    let good = Message::Prefork { reqno: 1 }.to_vec();
    let mut d = Deframer::new(DEFAULT_MAX_FRAME);
    d.push(&good);
    d.push(&raw_header(16, 1, 0, 0, 0));
    assert_eq!(frame_bytes(&d.next_frame().unwrap().unwrap()), good);
    assert_eq!(d.next_frame(), Err(DecodeError::TooShort(16)));
    assert_eq!(d.next_frame(), Err(DecodeError::TooShort(16)));
}

/// err_len2pow40: the header alone is enough to refuse; the decoder does not
/// wait for (or make room for) a terabyte of body.
#[test]
fn len_over_limit_is_too_long_before_the_body() {
    for len in [
        1u64 << 40,
        u64::MAX,
        DEFAULT_MAX_FRAME + 1,
        (usize::MAX as u64),
    ] {
        let h = raw_header(len, 1, 0, 0, 0);
        let mut d = Deframer::new(DEFAULT_MAX_FRAME);
        d.push(&h);
        let want = DecodeError::TooLong {
            len,
            max: DEFAULT_MAX_FRAME,
        };
        assert_eq!(d.next_frame(), Err(want), "len {len}");
        assert!(
            d.read_buf().len() < 1 << 20,
            "len {len}: the window grew toward the claimed length"
        );
        d.push(&[0; 100]);
        assert_eq!(d.next_frame(), Err(want), "len {len}: not sticky");
        assert_eq!(Frame::parse(&h, DEFAULT_MAX_FRAME), Err(want));
    }
}

#[test]
fn the_limit_is_inclusive() {
    let max = 100u64;
    let body = vec![1u8; (max as usize) - HEADER_LEN];
    let at_limit = Message::CopyinResp {
        reqno: 1,
        data: &body,
    }
    .to_vec();
    assert_eq!(at_limit.len() as u64, max);
    let mut d = Deframer::new(max);
    assert_eq!(d.max_frame(), max);
    d.push(&at_limit[..HEADER_LEN]);
    assert_eq!(d.next_frame(), Ok(None));
    d.push(&at_limit[HEADER_LEN..]);
    assert_eq!(d.next_frame().unwrap().unwrap().body, &body[..]);

    let over = Message::CopyinResp {
        reqno: 1,
        data: &[body.as_slice(), &[1]].concat(),
    }
    .to_vec();
    let mut d = Deframer::new(max);
    d.push(&over[..HEADER_LEN]);
    assert_eq!(
        d.next_frame(),
        Err(DecodeError::TooLong { len: max + 1, max })
    );
}

#[test]
fn peek_buffered_and_shrink() {
    let a = Message::Syscall {
        reqno: 2,
        sysnum: 20,
        args: &[],
    }
    .to_vec();
    let b = Message::CopyinResp {
        reqno: 3,
        data: b"hello",
    }
    .to_vec();
    let mut d = Deframer::new(DEFAULT_MAX_FRAME);
    assert_eq!(d.peek_header(), None);
    assert!(!d.is_mid_frame());
    d.push(&a);
    d.push(&b[..HEADER_LEN + 2]);
    assert_eq!(d.peek_header().map(|h| h.reqno()), Some(2));
    assert_eq!(d.buffered(), a.len() + HEADER_LEN + 2);
    let f = d.next_frame().unwrap().unwrap();
    assert_eq!(f.header.reqno(), 2);
    // The frame handed out no longer counts as buffered.
    assert_eq!(d.buffered(), HEADER_LEN + 2);
    assert_eq!(d.peek_header().map(|h| h.reqno()), Some(3));
    assert!(d.is_mid_frame());
    assert_eq!(d.next_frame(), Ok(None));
    d.shrink(); // mid-frame: keeps the bytes
    d.push(&b[HEADER_LEN + 2..]);
    assert_eq!(
        d.next_frame().unwrap().unwrap().message(),
        Ok(Message::CopyinResp {
            reqno: 3,
            data: b"hello"
        })
    );
    assert_eq!(d.next_frame(), Ok(None));
    d.shrink();
    assert_eq!(d.buffered(), 0);
    // Still usable after shrinking.
    d.push(&a);
    assert_eq!(frame_bytes(&d.next_frame().unwrap().unwrap()), a);
}

#[test]
fn decode_errors_print_usefully() {
    assert_eq!(
        DecodeError::TooShort(16).to_string(),
        "frame length 16 is shorter than the 24-byte header"
    );
    assert_eq!(
        DecodeError::TooLong {
            len: 1 << 40,
            max: 100
        }
        .to_string(),
        "frame length 1099511627776 exceeds the limit of 100 bytes"
    );
}
