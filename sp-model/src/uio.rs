//! Client buffers: a list of (address, length) segments that data is
//! gathered from (COPYIN) or scattered to (COPYOUT) through the port.

use sp_proto::abi::{Errno, Iovec};
use sp_server::ClientPort;

/// Most bytes moved by one COPYIN or COPYOUT; larger transfers are split,
/// so no message gets near the protocol's frame limit.
pub(crate) const IO_CHUNK: u64 = 1 << 20;
/// Most iovecs readv and writev take (NetBSD's IOV_MAX).
pub(crate) const IOV_MAX: usize = 1024;

/// Client buffers, in order.
pub(crate) struct Segs(Vec<(u64, u64)>);

impl Segs {
    /// One buffer of `len` bytes at `addr`; `EINVAL` if `len` exceeds
    /// `SSIZE_MAX`.
    pub(crate) fn one(addr: u64, len: u64) -> Result<Segs, Errno> {
        if len > i64::MAX as u64 {
            return Err(Errno::EINVAL);
        }
        Ok(Segs(vec![(addr, len)]))
    }

    /// The buffers of `cnt` iovecs at `iov`: COPYIN of the 16-byte
    /// `{base, len}` records. `EINVAL` for a count outside `1..=IOV_MAX` or
    /// a total above `SSIZE_MAX` (NetBSD refuses an empty vector).
    pub(crate) fn from_iov(port: &dyn ClientPort, iov: u64, cnt: i32) -> Result<Segs, Errno> {
        let cnt = usize::try_from(cnt)
            .ok()
            .filter(|&c| (1..=IOV_MAX).contains(&c))
            .ok_or(Errno::EINVAL)?;
        let mut raw = vec![0u8; cnt * Iovec::SIZE];
        port.copyin(iov, &mut raw)?;
        let mut segs = Vec::with_capacity(cnt);
        let mut total: u64 = 0;
        for rec in Iovec::slice(&raw).ok_or(Errno::EFAULT)? {
            let (base, len) = (rec.base(), rec.len());
            total = total
                .checked_add(len)
                .filter(|&t| t <= i64::MAX as u64)
                .ok_or(Errno::EINVAL)?;
            segs.push((base, len));
        }
        Ok(Segs(segs))
    }

    /// Total bytes of all buffers.
    pub(crate) fn total(&self) -> u64 {
        self.0.iter().map(|s| s.1).sum()
    }

    /// COPYIN of `len` bytes starting `from` bytes into the buffers.
    pub(crate) fn gather(
        &self,
        port: &dyn ClientPort,
        from: u64,
        len: u64,
    ) -> Result<Vec<u8>, Errno> {
        let mut out = Vec::new();
        let (mut skip, mut want) = (from, len);
        for &(addr, slen) in &self.0 {
            if want == 0 {
                break;
            }
            if skip >= slen {
                skip -= slen;
                continue;
            }
            let n = (slen - skip).min(want);
            let piece = port.copyin_vec(addr.wrapping_add(skip), n as usize)?;
            if out.is_empty() {
                out = piece;
            } else {
                out.extend_from_slice(&piece);
            }
            skip = 0;
            want -= n;
        }
        Ok(out)
    }

    /// COPYOUT of `data` into the buffers from their start, in pieces of
    /// at most [`IO_CHUNK`].
    pub(crate) fn scatter(&self, port: &dyn ClientPort, mut data: &[u8]) -> Result<(), Errno> {
        for &(addr, slen) in &self.0 {
            if data.is_empty() {
                break;
            }
            let n = (slen.min(data.len() as u64)) as usize;
            let (now, rest) = data.split_at(n);
            for (i, piece) in now.chunks(IO_CHUNK as usize).enumerate() {
                port.copyout(addr.wrapping_add(i as u64 * IO_CHUNK), piece)?;
            }
            data = rest;
        }
        Ok(())
    }

    /// COPYOUT of `n` zero bytes into the buffers from their start (a read
    /// of `/dev/zero`), in pieces of at most [`IO_CHUNK`].
    pub(crate) fn scatter_zeros(&self, port: &dyn ClientPort, mut n: u64) -> Result<(), Errno> {
        let zeros = vec![0u8; IO_CHUNK.min(n) as usize];
        for &(addr, slen) in &self.0 {
            let mut done = 0;
            while n > 0 && done < slen {
                let k = IO_CHUNK.min(n).min(slen - done);
                port.copyout(addr.wrapping_add(done), &zeros[..k as usize])?;
                done += k;
                n -= k;
            }
            if n == 0 {
                break;
            }
        }
        Ok(())
    }
}
