//! Incremental frame decoding: bytes go in as they arrive, in any split,
//! and whole frames come out, each checked against a length limit.

use crate::msg::{BodyError, Message};
use crate::wire::{Header, HEADER_LEN};

/// Default largest frame accepted: 64 MiB plus the header.
pub const DEFAULT_MAX_FRAME: u64 = (64 << 20) + HEADER_LEN as u64;

/// Why the byte stream cannot be framed. After any of these the stream is
/// out of step and the connection must end; the decoder keeps answering the
/// same error.
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
pub enum DecodeError {
    /// `len` is smaller than the header itself.
    #[error("frame length {0} is shorter than the 24-byte header")]
    TooShort(u64),
    /// `len` is above the configured maximum.
    #[error("frame length {len} exceeds the limit of {max} bytes")]
    TooLong {
        /// The announced length.
        len: u64,
        /// The limit in force.
        max: u64,
    },
}

/// One whole frame, borrowed from the decoder's buffer.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Frame<'a> {
    /// The header.
    pub header: Header,
    /// Exactly `header.len() - 24` bytes.
    pub body: &'a [u8],
}

impl<'a> Frame<'a> {
    /// Decodes the frame into a typed message.
    pub fn message(&self) -> Result<Message<'a>, BodyError> {
        Message::decode(&self.header, self.body)
    }

    /// Checks a header's length field against the limit.
    pub fn check_len(len: u64, max: u64) -> Result<usize, DecodeError> {
        if len < HEADER_LEN as u64 {
            Err(DecodeError::TooShort(len))
        } else if len > max {
            Err(DecodeError::TooLong { len, max })
        } else {
            usize::try_from(len).map_err(|_| DecodeError::TooLong { len, max })
        }
    }

    /// Parses one frame from the start of `bytes`: `Ok(None)` if more bytes
    /// are needed, else the frame and the number of bytes it used.
    pub fn parse(bytes: &'a [u8], max: u64) -> Result<Option<(Frame<'a>, usize)>, DecodeError> {
        let Some(header) = Header::read(bytes) else {
            return Ok(None);
        };
        let len = Frame::check_len(header.len(), max)?;
        if bytes.len() < len {
            return Ok(None);
        }
        Ok(Some((
            Frame {
                header,
                body: &bytes[HEADER_LEN..len],
            },
            len,
        )))
    }
}

/// The incremental decoder.
///
/// Feed it with [`Deframer::push`], or read straight into
/// [`Deframer::read_buf`] and [`Deframer::commit`] to avoid a copy; take
/// frames with [`Deframer::next_frame`] until it answers `Ok(None)`.
///
/// A decoder made [`with_detach`](Deframer::with_detach) receives a large
/// frame's body into a buffer of its own (the header kept apart), so the
/// body can be handed on without a copy ([`Deframer::take_detached`]) and
/// read into without zero-filling ([`Deframer::detached_body`]).
#[derive(Debug)]
pub struct Deframer {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Bytes of the last frame handed out, dropped on the next call.
    yielded: usize,
    max: u64,
    failed: Option<DecodeError>,
    /// Bodies longer than this are received detached.
    detach_over: usize,
    /// The frame being received detached (boxed: an idle decoder stays
    /// small).
    big: Option<Box<Big>>,
}

/// A frame whose body is received into a buffer of its own.
#[derive(Debug)]
struct Big {
    header: Header,
    /// The body bytes received so far.
    body: Vec<u8>,
    /// The body's length.
    want: usize,
    /// `body.len()` before the window [`Deframer::read_buf`] handed out.
    window_from: Option<usize>,
    /// Handed out by [`Deframer::next_frame`]; dropped on the next call.
    yielded: bool,
}

/// Smallest read window offered by [`Deframer::read_buf`].
const MIN_READ: usize = 16 * 1024;

/// Most of a detached body's length reserved (not touched) before its
/// bytes arrive; beyond it the buffer grows with the bytes received.
pub const DETACH_RESERVE: usize = 8 << 20;

impl Deframer {
    /// A decoder that refuses frames longer than `max_frame` bytes.
    pub fn new(max_frame: u64) -> Deframer {
        Deframer {
            buf: Vec::new(),
            start: 0,
            end: 0,
            yielded: 0,
            max: max_frame,
            failed: None,
            detach_over: usize::MAX,
            big: None,
        }
    }

    /// Receives frames whose body is longer than `over` bytes detached: in
    /// a buffer of the body's own, whose memory is reserved as the bytes
    /// come (up to 8 MiB at once) and never zero-filled when
    /// filled through [`Deframer::detached_body`].
    pub fn with_detach(mut self, over: usize) -> Deframer {
        self.detach_over = over;
        self
    }

    /// The length limit.
    pub fn max_frame(&self) -> u64 {
        self.max
    }

    /// Bytes received but not yet handed out as frames.
    pub fn buffered(&self) -> usize {
        let big = match &self.big {
            Some(b) if !b.yielded => HEADER_LEN + b.body.len(),
            _ => 0,
        };
        self.end - self.start - self.yielded + big
    }

    /// Whether a frame has been started but not completed.
    pub fn is_mid_frame(&self) -> bool {
        self.buffered() > 0
    }

    fn release_yielded(&mut self) {
        if self.big.as_ref().is_some_and(|b| b.yielded) {
            self.big = None;
        }
        self.start += self.yielded;
        self.yielded = 0;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Length of the frame now being received, if its header is complete.
    fn pending_len(&self) -> Option<usize> {
        let h = Header::read(&self.buf[self.start..self.end])?;
        Frame::check_len(h.len(), self.max).ok()
    }

    /// Space to read new bytes into; call [`Deframer::commit`] with how many
    /// were written. While a frame is arriving the buffer grows with the
    /// bytes actually received (doubling, up to the frame's length), never
    /// to the announced length at once: a peer that announces a large frame
    /// and sends one byte pins no more memory than it sent.
    pub fn read_buf(&mut self) -> &mut [u8] {
        self.release_yielded();
        if self.big.as_ref().is_some_and(|b| b.body.len() < b.want) {
            let b = self.big.as_mut().expect("checked above");
            // A window at the end of the detached body, zero-filled (use
            // `detached_body` to avoid that).
            let filled = b.body.len();
            let win = (b.want - filled).min(MIN_READ.max(filled));
            b.body.resize(filled + win, 0);
            b.window_from = Some(filled);
            return &mut b.body[filled..];
        }
        let have = self.end - self.start;
        let want = match self.pending_len() {
            Some(len) => len.saturating_sub(have).min(MIN_READ.max(have)),
            None => MIN_READ,
        }
        .max(1);
        if self.buf.len() - self.end < want {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            if self.buf.len() - self.end < want {
                self.buf.resize(self.end + want, 0);
            }
        }
        &mut self.buf[self.end..]
    }

    /// Records that `n` bytes were written into the last [`Deframer::read_buf`].
    pub fn commit(&mut self, n: usize) {
        if let Some(b) = self.big.as_mut() {
            if let Some(from) = b.window_from.take() {
                assert!(from + n <= b.body.len(), "commit past the read buffer");
                b.body.truncate(from + n);
                return;
            }
        }
        assert!(
            self.end + n <= self.buf.len(),
            "commit past the read buffer"
        );
        self.end += n;
        self.maybe_detach();
    }

    /// Moves the frame now arriving into a buffer of its own if its
    /// header is in, its body is over the threshold, and it is not all
    /// here yet.
    fn maybe_detach(&mut self) {
        if self.big.is_some() || self.failed.is_some() || self.detach_over == usize::MAX {
            return;
        }
        let from = self.start + self.yielded;
        let Some(header) = Header::read(&self.buf[from..self.end]) else {
            return;
        };
        // A bad length is reported by next_frame.
        let Ok(len) = Frame::check_len(header.len(), self.max) else {
            return;
        };
        let want = len - HEADER_LEN;
        let have = self.end - from;
        if want <= self.detach_over || have >= len {
            return;
        }
        let got = &self.buf[from + HEADER_LEN..self.end];
        let mut body = Vec::with_capacity(want.min(DETACH_RESERVE.max(2 * got.len())));
        body.extend_from_slice(got);
        self.end = from;
        self.big = Some(Box::new(Big {
            header,
            body,
            want,
            window_from: None,
            yielded: false,
        }));
    }

    /// While a large frame is received detached: its body so far and how
    /// many bytes are still missing. The caller appends at most that many
    /// (into the vector's spare capacity, e.g. with `read_to_end` on a
    /// `Read::take` of the socket, which does not zero-fill). Bytes beyond
    /// the frame are kept as the start of the next one.
    pub fn detached_body(&mut self) -> Option<(&mut Vec<u8>, usize)> {
        self.release_yielded();
        let b = self.big.as_mut()?;
        b.window_from = None;
        let missing = b.want.saturating_sub(b.body.len());
        (missing > 0).then_some((&mut b.body, missing))
    }

    /// Takes out the detached frame once its whole body is in: its header
    /// and its body, owned. Check it before [`Deframer::next_frame`] (which
    /// also hands it out, borrowed).
    pub fn take_detached(&mut self) -> Option<(Header, Vec<u8>)> {
        if self.failed.is_some() {
            return None;
        }
        self.release_yielded();
        let b = self.big.as_mut()?;
        if b.body.len() < b.want {
            return None;
        }
        let mut b = self.big.take()?;
        self.spill(&mut b.body, b.want);
        Some((b.header, b.body))
    }

    /// Moves bytes past the end of a detached body (appended beyond what
    /// was missing) to the front of the buffer: they start the next frame.
    fn spill(&mut self, body: &mut Vec<u8>, want: usize) {
        if body.len() > want {
            let extra = body.split_off(want);
            self.release_yielded();
            let rest = self.buf[self.start..self.end].to_vec();
            self.buf.clear();
            self.buf.extend_from_slice(&extra);
            self.buf.extend_from_slice(&rest);
            self.start = 0;
            self.end = self.buf.len();
        }
    }

    /// Appends received bytes.
    pub fn push(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if let Some((body, missing)) = self.detached_body() {
                let n = missing.min(bytes.len());
                body.extend_from_slice(&bytes[..n]);
                bytes = &bytes[n..];
                continue;
            }
            let win = self.read_buf();
            let n = win.len().min(bytes.len());
            win[..n].copy_from_slice(&bytes[..n]);
            self.commit(n);
            bytes = &bytes[n..];
        }
    }

    /// The next whole frame, `Ok(None)` if more bytes are needed, or the
    /// error that ends the stream.
    pub fn next_frame(&mut self) -> Result<Option<Frame<'_>>, DecodeError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        self.release_yielded();
        if let Some(b) = self.big.as_mut() {
            if b.body.len() < b.want {
                return Ok(None);
            }
            let want = b.want;
            let mut body = std::mem::take(&mut b.body);
            self.spill(&mut body, want);
            let b = self.big.as_mut().expect("still detached");
            b.body = body;
            b.yielded = true;
            return Ok(Some(Frame {
                header: b.header,
                body: &b.body,
            }));
        }
        match Frame::parse(&self.buf[self.start..self.end], self.max) {
            Ok(Some((frame, used))) => {
                self.yielded = used;
                Ok(Some(frame))
            }
            Ok(None) => Ok(None),
            Err(e) => {
                self.failed = Some(e);
                Err(e)
            }
        }
    }

    /// Header of the frame now being received, once its 24 bytes are in.
    pub fn peek_header(&self) -> Option<Header> {
        if let Some(b) = self.big.as_ref().filter(|b| !b.yielded) {
            return Some(b.header);
        }
        Header::read(&self.buf[self.start + self.yielded..self.end])
    }

    /// Length of the frame now being received, once its header is in and
    /// its length is within the limit.
    pub fn pending_frame_len(&self) -> Option<usize> {
        let h = self.peek_header()?;
        Frame::check_len(h.len(), self.max).ok()
    }

    /// Whether a frame is being received detached (see
    /// [`Deframer::with_detach`]).
    pub fn is_detached(&self) -> bool {
        self.big.as_ref().is_some_and(|b| !b.yielded)
    }

    /// Takes the buffer's memory out if nothing is buffered, so a caller
    /// can reuse it for another decoder; `None` if bytes are buffered.
    pub fn take_buffer(&mut self) -> Option<Vec<u8>> {
        self.release_yielded();
        if self.start != self.end || self.big.is_some() {
            return None;
        }
        self.start = 0;
        self.end = 0;
        Some(std::mem::take(&mut self.buf))
    }

    /// Moves what is buffered into `buf` and keeps `buf` as the buffer if
    /// it is larger than the current one; returns whichever buffer is not
    /// kept. Saves growing a buffer (and zero-filling it) for a large frame.
    pub fn adopt_buffer(&mut self, mut buf: Vec<u8>) -> Vec<u8> {
        self.release_yielded();
        let have = self.end - self.start;
        if buf.len() <= self.buf.len() || buf.len() < have || self.big.is_some() {
            return buf;
        }
        buf[..have].copy_from_slice(&self.buf[self.start..self.end]);
        self.start = 0;
        self.end = have;
        std::mem::replace(&mut self.buf, buf)
    }

    /// Frees the buffer's memory if nothing is buffered (for idle connections).
    pub fn shrink(&mut self) {
        self.release_yielded();
        if self.start == self.end && self.big.is_none() {
            self.buf = Vec::new();
            self.start = 0;
            self.end = 0;
        }
    }
}
