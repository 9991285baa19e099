//! The segments a SYSCALL_SEG carries (`docs/extension.md`): the bytes of
//! the buffers the call reads, served to the kernel's copies without
//! asking the client.
//!
//! The body of a SYSCALL_SEG starts with the segments' bytes, so the
//! frame's buffer, cut after them, is the data: no copy to keep it. A copy
//! that asks for exactly the first segment in a new vector
//! ([`ClientPort::copyin_vec`](crate::ClientPort::copyin_vec), a write of
//! the whole buffer) gets that buffer itself.

use parking_lot::Mutex;
use sp_proto::ext::{SegBody, SegError};
use sp_proto::Errno;

/// Bytes after the first segment copied out so the first segment's buffer
/// can be handed over whole; with more, the first segment is copied instead.
const HANDOVER_REST: usize = 64 << 10;

#[derive(Debug)]
struct Desc {
    addr: u64,
    len: usize,
    /// Offset of its bytes in `Inner::data`.
    off: usize,
    /// False once handed over, or once the call stored into its range
    /// (the snapshot would be stale): copies there go to the client.
    live: bool,
}

impl Desc {
    /// Offset in the data of `[addr, addr + len)`, if the segment holds it.
    fn offset_of(&self, addr: u64, len: usize) -> Option<usize> {
        let skip = addr.checked_sub(self.addr)?;
        let skip = usize::try_from(skip).ok()?;
        (self.live && skip.checked_add(len)? <= self.len).then_some(self.off + skip)
    }
}

#[derive(Debug)]
struct Inner {
    data: Vec<u8>,
    descs: Vec<Desc>,
}

/// The segments one SYSCALL_SEG request carried: opaque outside the
/// server; a driver hands them from [`Call`](crate::core::Call) to the
/// call's port.
#[derive(Debug)]
pub struct Segments {
    inner: Mutex<Inner>,
}

impl Segments {
    /// Splits an owned SYSCALL_SEG body into its argument block and its
    /// segments; the body's buffer becomes the segments' data.
    pub(crate) fn split(mut body: Vec<u8>) -> Result<(Vec<u8>, Segments), SegError> {
        let (args, descs, data_len) = {
            let b = SegBody::parse(&body)?;
            let descs = b
                .segments()
                .map(|s| Desc {
                    addr: s.addr,
                    len: s.bytes.len(),
                    off: s.offset,
                    live: true,
                })
                .collect();
            (b.args().to_vec(), descs, b.data_len())
        };
        body.truncate(data_len);
        let segs = Segments {
            inner: Mutex::new(Inner { data: body, descs }),
        };
        Ok((args, segs))
    }

    /// Whether a live segment holds `[addr, addr + len)`.
    pub(crate) fn holds(&self, addr: u64, len: u64) -> bool {
        let Ok(len) = usize::try_from(len) else {
            return false;
        };
        len > 0
            && self
                .inner
                .lock()
                .descs
                .iter()
                .any(|d| d.offset_of(addr, len).is_some())
    }

    /// Fills `buf` from the segment holding `[addr, addr + buf.len())`;
    /// false if none does.
    pub(crate) fn copyin(&self, addr: u64, buf: &mut [u8]) -> bool {
        if buf.is_empty() {
            return false;
        }
        let g = self.inner.lock();
        match g.descs.iter().find_map(|d| d.offset_of(addr, buf.len())) {
            Some(off) => {
                buf.copy_from_slice(&g.data[off..off + buf.len()]);
                true
            }
            None => false,
        }
    }

    /// The `len` bytes at `addr` in a new vector, if a segment holds them:
    /// the segment's own buffer when they are exactly the first segment.
    pub(crate) fn copyin_vec(&self, addr: u64, len: usize) -> Option<Vec<u8>> {
        if len == 0 {
            return None;
        }
        let mut g = self.inner.lock();
        let (i, off) = g
            .descs
            .iter()
            .enumerate()
            .find_map(|(i, d)| Some((i, d.offset_of(addr, len)?)))?;
        let whole = off == 0 && g.descs[i].len == len;
        if !whole || g.data.len() - len > HANDOVER_REST {
            return Some(g.data[off..off + len].to_vec());
        }
        let rest = g.data.split_off(len);
        let first = std::mem::replace(&mut g.data, rest);
        for d in &mut g.descs {
            if d.off >= len {
                d.off -= len;
            } else {
                // The one handed over (and empty ones at its start).
                d.live = false;
            }
        }
        Some(first)
    }

    /// The string at `addr` (without its NUL) if a segment holds it and
    /// its NUL within `maxlen` bytes; `ENAMETOOLONG` if the segment holds
    /// `maxlen` bytes there without one. `None` if no segment holds
    /// `addr`, or the string goes on past the segment's end: the client
    /// may know more.
    pub(crate) fn copyinstr(&self, addr: u64, maxlen: usize) -> Option<Result<Vec<u8>, Errno>> {
        if maxlen == 0 {
            return None;
        }
        let g = self.inner.lock();
        let d = g.descs.iter().find(|d| d.offset_of(addr, 1).is_some())?;
        let off = d.offset_of(addr, 1)?;
        let end = d.off + d.len;
        let avail = &g.data[off..end.min(off.saturating_add(maxlen))];
        match avail.iter().position(|&b| b == 0) {
            Some(nul) => Some(Ok(avail[..nul].to_vec())),
            None if avail.len() == maxlen => Some(Err(Errno::ENAMETOOLONG)),
            None => None,
        }
    }

    /// The call stored `len` bytes at `addr` in the client: segments that
    /// overlap them no longer hold what the client has there.
    pub(crate) fn wrote(&self, addr: u64, len: usize) {
        if len == 0 {
            return;
        }
        let end = addr.saturating_add(len as u64);
        let mut g = self.inner.lock();
        for d in &mut g.descs {
            let dend = d.addr.saturating_add(d.len as u64);
            if d.addr < end && addr < dend {
                d.live = false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sp_proto::ext::SegFrame;
    use sp_proto::HEADER_LEN;

    fn segs(pieces: &[(u64, &[u8])]) -> (Vec<u8>, Segments) {
        let f = SegFrame::new(1, 4, b"ARGS", pieces).unwrap();
        let data: Vec<&[u8]> = pieces.iter().map(|p| p.1).collect();
        let body = f.to_vec(&data)[HEADER_LEN..].to_vec();
        Segments::split(body).unwrap()
    }

    #[test]
    fn copies_inside_a_segment_are_served() {
        let (args, s) = segs(&[(0x1000, b"hello world"), (0x2000, b"/ok\0junk")]);
        assert_eq!(args, b"ARGS");
        let mut b = [0u8; 5];
        assert!(s.copyin(0x1006, &mut b));
        assert_eq!(&b, b"world");
        assert!(!s.copyin(0x1007, &mut b), "runs past the segment");
        assert!(!s.copyin(0xfff, &mut b), "starts before it");
        assert!(!s.copyin(0x1000, &mut []), "nothing to serve");
        assert_eq!(s.copyin_vec(0x2000, 3).unwrap(), b"/ok");
        assert_eq!(s.copyinstr(0x2000, 1024), Some(Ok(b"/ok".to_vec())));
        assert_eq!(s.copyinstr(0x2001, 1024), Some(Ok(b"ok".to_vec())));
        assert_eq!(s.copyinstr(0x2000, 2), Some(Err(Errno::ENAMETOOLONG)));
        // No NUL before the segment ends: the client may know more.
        assert_eq!(s.copyinstr(0x1000, 1024), None);
        assert_eq!(s.copyinstr(0x3000, 1024), None);
        assert_eq!(s.copyinstr(0x2000, 0), None);
    }

    #[test]
    fn the_first_segment_is_handed_over_whole_once() {
        let (_, s) = segs(&[(0x1000, b"data!"), (0x2000, b"/p\0")]);
        assert_eq!(s.copyin_vec(0x1000, 5).unwrap(), b"data!");
        // Gone from the segments now: the client is asked.
        assert_eq!(s.copyin_vec(0x1000, 5), None);
        let mut b = [0u8; 1];
        assert!(!s.copyin(0x1000, &mut b));
        // The others moved to the front and still serve.
        assert_eq!(s.copyinstr(0x2000, 10), Some(Ok(b"/p".to_vec())));
        assert_eq!(s.copyin_vec(0x2000, 3).unwrap(), b"/p\0");
        assert_eq!(s.copyin_vec(0x2000, 3), None);
    }

    #[test]
    fn a_store_into_a_segment_makes_it_stale() {
        let (_, s) = segs(&[(0x1000, b"abcdef"), (0x2000, b"xyz")]);
        s.wrote(0x1005, 4);
        let mut b = [0u8; 2];
        assert!(!s.copyin(0x1000, &mut b));
        assert!(s.copyin(0x2000, &mut b));
        s.wrote(0x1fff, 1);
        assert!(s.copyin(0x2000, &mut b));
        s.wrote(0x2002, 0);
        assert!(s.copyin(0x2000, &mut b));
        s.wrote(0x2002, 1);
        assert!(!s.copyin(0x2000, &mut b));
    }

    #[test]
    fn a_large_rest_is_not_copied_to_hand_the_first_over() {
        let big = vec![7u8; HANDOVER_REST + 1];
        let (_, s) = segs(&[(0x1000, b"head"), (0x9000, &big)]);
        assert_eq!(s.copyin_vec(0x1000, 4).unwrap(), b"head");
        // Copied, not handed over: it still serves.
        assert_eq!(s.copyin_vec(0x1000, 4).unwrap(), b"head");
        assert_eq!(s.copyin_vec(0x9000, big.len()).unwrap(), big);
    }
}
