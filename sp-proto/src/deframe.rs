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
#[derive(Debug)]
pub struct Deframer {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Bytes of the last frame handed out, dropped on the next call.
    yielded: usize,
    max: u64,
    failed: Option<DecodeError>,
}

/// Smallest read window offered by [`Deframer::read_buf`].
const MIN_READ: usize = 16 * 1024;

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
        }
    }

    /// The length limit.
    pub fn max_frame(&self) -> u64 {
        self.max
    }

    /// Bytes received but not yet handed out as frames.
    pub fn buffered(&self) -> usize {
        self.end - self.start - self.yielded
    }

    /// Whether a frame has been started but not completed.
    pub fn is_mid_frame(&self) -> bool {
        self.buffered() > 0
    }

    fn release_yielded(&mut self) {
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
        assert!(
            self.end + n <= self.buf.len(),
            "commit past the read buffer"
        );
        self.end += n;
    }

    /// Appends received bytes.
    pub fn push(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
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
        Header::read(&self.buf[self.start + self.yielded..self.end])
    }

    /// Length of the frame now being received, once its header is in and
    /// its length is within the limit.
    pub fn pending_frame_len(&self) -> Option<usize> {
        let h = Header::read(&self.buf[self.start + self.yielded..self.end])?;
        Frame::check_len(h.len(), self.max).ok()
    }

    /// Takes the buffer's memory out if nothing is buffered, so a caller
    /// can reuse it for another decoder; `None` if bytes are buffered.
    pub fn take_buffer(&mut self) -> Option<Vec<u8>> {
        self.release_yielded();
        if self.start != self.end {
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
        if buf.len() <= self.buf.len() || buf.len() < have {
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
        if self.start == self.end {
            self.buf = Vec::new();
            self.start = 0;
            self.end = 0;
        }
    }
}
