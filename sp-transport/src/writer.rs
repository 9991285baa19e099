//! Writing a frame that is held in parts (a header and fixed body, then a
//! borrowed payload) without first copying the parts together: vectored
//! writes, short writes resumed where they stopped, `EINTR` retried.
//!
//! [`write_frame`] and [`write_parts`] block until every byte is gone (a
//! client's request, an answer on a blocking socket); [`write_some`] takes
//! what a non-blocking socket takes now and says whether it is done, so an
//! event loop can come back when the socket is writable.
//!
//! All of them work on any [`Write`]; for a socket pass `&Stream` (or
//! `&UnixStream`, `&TcpStream`), which writes through a shared reference.

use std::io::{self, IoSlice, Write};

/// Most buffers handed to one vectored write: Linux's `UIO_MAXIOV`; a
/// `sendmsg(2)` with more fails with `EMSGSIZE`.
const MAX_IOV: usize = 1024;

/// How far [`write_some`] got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// Every byte of the frame is written.
    Done,
    /// The socket takes no more now (`WouldBlock`); the offset says how
    /// far the frame got. Write the rest when the socket is writable.
    Blocked,
}

/// Writes what `w` takes now of `head` then `payload`, starting `*written`
/// bytes into the frame, without waiting, and moves `*written` past every
/// byte that went out.
///
/// Returns [`Progress::Done`] once `*written` is the frame's length and
/// [`Progress::Blocked`] when `w` answers `WouldBlock` first. `Interrupted`
/// is retried; a write that takes nothing (`Ok(0)`) is a
/// [`io::ErrorKind::WriteZero`] error, and any other error is returned
/// as is (with `*written` counting what did go out).
///
/// A frame without a payload goes out with a plain write (`send(2)` is
/// cheaper than `sendmsg(2)` for the common bodiless frame); one with a
/// payload with a vectored write of the rest of `head` and `payload`.
pub fn write_some<W: Write>(
    mut w: W,
    head: &[u8],
    payload: &[u8],
    written: &mut usize,
) -> io::Result<Progress> {
    let total = head.len() + payload.len();
    while *written < total {
        let res = if *written < head.len() && payload.is_empty() {
            w.write(&head[*written..])
        } else if *written < head.len() {
            w.write_vectored(&[IoSlice::new(&head[*written..]), IoSlice::new(payload)])
        } else {
            w.write(&payload[*written - head.len()..])
        };
        match res {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => *written += n.min(total - *written),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Progress::Blocked),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Progress::Done)
}

/// Writes the whole frame `head` then `payload`, waiting as `w` does (for
/// a blocking socket: until there is room). Short writes are resumed and
/// `Interrupted` retried; a write that takes nothing is a
/// [`io::ErrorKind::WriteZero`] error.
pub fn write_frame<W: Write>(w: W, head: &[u8], payload: &[u8]) -> io::Result<()> {
    write_parts(w, &[head, payload])
}

/// Writes `parts` one after the other, whole, with vectored writes (at most
/// 1024 parts a write); otherwise as [`write_frame`]. Empty parts are
/// skipped.
pub fn write_parts<W: Write>(mut w: W, parts: &[&[u8]]) -> io::Result<()> {
    // Where the unwritten bytes start: part index and offset in it.
    let (mut i, mut off) = (0, 0);
    let mut bufs: Vec<IoSlice<'_>> = Vec::new();
    loop {
        while i < parts.len() && off == parts[i].len() {
            i += 1;
            off = 0;
        }
        let Some(first) = parts.get(i).map(|p| &p[off..]) else {
            return Ok(());
        };
        let rest = &parts[i + 1..];
        let r = if rest.iter().all(|p| p.is_empty()) {
            w.write(first)
        } else if rest.len() == 1 {
            w.write_vectored(&[IoSlice::new(first), IoSlice::new(rest[0])])
        } else {
            bufs.clear();
            bufs.push(IoSlice::new(first));
            let more = rest.iter().filter(|p| !p.is_empty());
            bufs.extend(more.take(MAX_IOV - 1).map(|p| IoSlice::new(p)));
            w.write_vectored(&bufs)
        };
        let mut n = match r {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        // Step over what was written.
        while n > 0 && i < parts.len() {
            let left = parts[i].len() - off;
            if n < left {
                off += n;
                break;
            }
            n -= left;
            i += 1;
            off = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a scripted write call answers.
    #[derive(Clone, Copy, Debug)]
    enum Step {
        /// Take at most this many bytes.
        Take(usize),
        /// `WouldBlock`.
        Block,
        /// `Interrupted`.
        Intr,
        /// Another error.
        Fail,
    }

    /// A writer that answers each call from a script (over and over),
    /// keeping what it took and how it was called.
    struct Mock {
        script: Vec<Step>,
        calls: usize,
        out: Vec<u8>,
        /// Number of buffers of each call.
        shapes: Vec<usize>,
    }

    impl Mock {
        fn new(script: &[Step]) -> Mock {
            Mock {
                script: script.to_vec(),
                calls: 0,
                out: Vec::new(),
                shapes: Vec::new(),
            }
        }
    }

    impl Write for Mock {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.write_vectored(&[IoSlice::new(b)])
        }

        fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            let step = self.script[self.calls % self.script.len()];
            self.calls += 1;
            self.shapes.push(bufs.len());
            let mut left = match step {
                Step::Take(n) => n,
                Step::Block => return Err(io::ErrorKind::WouldBlock.into()),
                Step::Intr => return Err(io::ErrorKind::Interrupted.into()),
                Step::Fail => return Err(io::ErrorKind::BrokenPipe.into()),
            };
            let before = left;
            for b in bufs {
                let n = b.len().min(left);
                self.out.extend_from_slice(&b[..n]);
                left -= n;
            }
            Ok(before - left)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    const HEAD: &[u8] = b"0123456789abcdefghijklmn";
    const PAYLOAD: &[u8] = b"the payload of the frame";

    #[test]
    fn write_some_resumes_a_frame_at_any_offset_whatever_the_socket_takes() {
        let whole = [HEAD, PAYLOAD].concat();
        for step in 1..=whole.len() + 1 {
            for start in 0..=whole.len() {
                let mut w = Mock::new(&[Step::Take(step), Step::Intr]);
                let mut written = start;
                let p = write_some(&mut w, HEAD, PAYLOAD, &mut written).unwrap();
                assert_eq!(p, Progress::Done);
                assert_eq!(written, whole.len());
                assert_eq!(w.out, &whole[start..], "step {step} start {start}");
            }
        }
    }

    #[test]
    fn write_some_stops_at_would_block_and_goes_on_later() {
        let whole = [HEAD, PAYLOAD].concat();
        let mut w = Mock::new(&[Step::Take(5), Step::Intr, Step::Take(30), Step::Block]);
        let mut written = 0;
        let p = write_some(&mut w, HEAD, PAYLOAD, &mut written).unwrap();
        assert_eq!((p, written), (Progress::Blocked, 35));
        // Still full: nothing moves.
        w.script = vec![Step::Block];
        assert_eq!(
            write_some(&mut w, HEAD, PAYLOAD, &mut written).unwrap(),
            Progress::Blocked
        );
        assert_eq!(written, 35);
        w.script = vec![Step::Take(4)];
        w.calls = 0;
        let p = write_some(&mut w, HEAD, PAYLOAD, &mut written).unwrap();
        assert_eq!((p, written), (Progress::Done, whole.len()));
        assert_eq!(w.out, whole);
        // Done is done: no more writes.
        let calls = w.calls;
        assert_eq!(
            write_some(&mut w, HEAD, PAYLOAD, &mut written).unwrap(),
            Progress::Done
        );
        assert_eq!(w.calls, calls);
    }

    #[test]
    fn write_some_uses_a_plain_write_without_a_payload() {
        let mut w = Mock::new(&[Step::Take(10)]);
        let mut written = 0;
        write_some(&mut w, HEAD, b"", &mut written).unwrap();
        assert_eq!(w.out, HEAD);
        assert!(w.shapes.iter().all(|&n| n == 1), "{:?}", w.shapes);
        // With a payload: head and payload together, then the payload alone.
        let mut w = Mock::new(&[Step::Take(30)]);
        let mut written = 0;
        write_some(&mut w, HEAD, PAYLOAD, &mut written).unwrap();
        assert_eq!(w.shapes, [2, 1]);
    }

    #[test]
    fn write_some_errors_keep_the_offset() {
        let mut w = Mock::new(&[Step::Take(7), Step::Take(0)]);
        let mut written = 0;
        let e = write_some(&mut w, HEAD, PAYLOAD, &mut written).unwrap_err();
        assert_eq!((e.kind(), written), (io::ErrorKind::WriteZero, 7));
        let mut w = Mock::new(&[Step::Take(3), Step::Fail]);
        let mut written = 0;
        let e = write_some(&mut w, HEAD, PAYLOAD, &mut written).unwrap_err();
        assert_eq!((e.kind(), written), (io::ErrorKind::BrokenPipe, 3));
        // An empty frame needs no write at all.
        let mut w = Mock::new(&[Step::Fail]);
        let mut written = 0;
        assert_eq!(
            write_some(&mut w, b"", b"", &mut written).unwrap(),
            Progress::Done
        );
        assert_eq!(w.calls, 0);
    }

    #[test]
    fn write_frame_goes_out_whole_whatever_the_writer_takes() {
        let whole = [HEAD, PAYLOAD].concat();
        for step in 1..=whole.len() + 1 {
            let mut w = Mock::new(&[Step::Take(step), Step::Intr]);
            write_frame(&mut w, HEAD, PAYLOAD).unwrap();
            assert_eq!(w.out, whole, "step {step}");
            let mut w = Mock::new(&[Step::Intr, Step::Take(step)]);
            write_frame(&mut w, HEAD, b"").unwrap();
            assert_eq!(w.out, HEAD, "step {step}");
        }
        let mut w = Mock::new(&[Step::Take(100)]);
        write_frame(&mut w, HEAD, PAYLOAD).unwrap();
        assert_eq!(w.shapes, [2], "one vectored write");
    }

    #[test]
    fn write_parts_go_out_whole_and_in_order() {
        let parts: [&[u8]; 6] = [b"head", b"", b"0123456789", b"", b"tail!", b""];
        let want = parts.concat();
        for step in 1..=want.len() + 1 {
            let mut w = Mock::new(&[Step::Take(step), Step::Intr]);
            write_parts(&mut w, &parts).unwrap();
            assert_eq!(w.out, want, "step {step}");
        }
        // Empty parts are never handed to the writer.
        let mut w = Mock::new(&[Step::Take(100)]);
        write_parts(&mut w, &parts).unwrap();
        assert_eq!(w.shapes, [3]);
        let mut w = Mock::new(&[Step::Fail]);
        write_parts(&mut w, &[]).unwrap();
        write_parts(&mut w, &[b"", b""]).unwrap();
        write_frame(&mut w, b"", b"").unwrap();
        assert_eq!(w.calls, 0);
    }

    #[test]
    fn write_parts_hand_at_most_max_iov_buffers_to_one_write() {
        let parts: Vec<&[u8]> = (0..MAX_IOV + 10).map(|_| &b"ab"[..]).collect();
        let mut w = Mock::new(&[Step::Take(usize::MAX)]);
        write_parts(&mut w, &parts).unwrap();
        assert_eq!(w.out, parts.concat());
        assert_eq!(w.shapes, [MAX_IOV, 10]);
    }

    #[test]
    fn a_writer_that_takes_nothing_or_fails_is_an_error() {
        let mut w = Mock::new(&[Step::Take(0)]);
        let e = write_frame(&mut w, b"x", b"").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WriteZero);
        let mut w = Mock::new(&[Step::Take(2), Step::Take(0)]);
        let e = write_parts(&mut w, &[b"abc", b"def", b"g"]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WriteZero);
        let mut w = Mock::new(&[Step::Intr, Step::Fail]);
        let e = write_frame(&mut w, HEAD, PAYLOAD).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::BrokenPipe);
        // A blocking write never sees WouldBlock from a blocking socket;
        // from a non-blocking one it is an error, not a spin.
        let mut w = Mock::new(&[Step::Block]);
        let e = write_frame(&mut w, HEAD, PAYLOAD).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
    }
}
