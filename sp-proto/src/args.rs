//! The argument block of a SYSCALL request: NetBSD's argument structure of
//! the call, one 8-byte little-endian slot per argument (a C `int` sits in
//! the low half of its slot, the high half zero).
//!
//! [`Args`] reads a received block without copying it and without trusting
//! its length; [`encode`], [`encode_into`] and [`slot_bytes`] write one.
//!
//! ```
//! use sp_proto::args::{self, Args};
//! use sp_proto::Errno;
//!
//! // write(1, buf, 5) as a client sends it.
//! let block = args::encode(&[1, 0x7fff_0000, 5]);
//! assert_eq!(block.len(), 24);
//!
//! // The server reads the slots back; a slot past the block is EFAULT.
//! let a = Args(&block);
//! assert_eq!(a.i32(0), Ok(1));
//! assert_eq!(a.u64(1), Ok(0x7fff_0000));
//! assert_eq!(a.usize(2), Ok(5));
//! assert_eq!(a.u64(3), Err(Errno::EFAULT));
//! ```

use crate::abi::Errno;
use zerocopy::byteorder::little_endian::U64;
use zerocopy::{FromBytes, IntoBytes};

/// Size of one argument slot in bytes.
pub const SLOT: usize = 8;

/// A received argument block: one 8-byte little-endian slot per argument.
///
/// The block is the SYSCALL body as it came; nothing checks its length up
/// front. Each accessor reads one slot and answers `EFAULT` if the block
/// ends before that slot does (what NetBSD's `copyin` of the argument
/// structure would say), never reading past the bytes received.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Args<'a>(pub &'a [u8]);

impl<'a> Args<'a> {
    /// The block in `bytes`.
    pub fn new(bytes: &'a [u8]) -> Args<'a> {
        Args(bytes)
    }

    /// The block's bytes, as received.
    pub fn bytes(&self) -> &'a [u8] {
        self.0
    }

    /// The whole slots of the block, without copying (a trailing partial
    /// slot is left out).
    pub fn slots(&self) -> &'a [U64] {
        let whole = self.0.len() / SLOT * SLOT;
        // A multiple of 8 bytes is always a whole `[U64]` (align 1).
        <[U64]>::ref_from_bytes(&self.0[..whole]).unwrap_or(&[])
    }

    /// Number of whole slots.
    pub fn len(&self) -> usize {
        self.0.len() / SLOT
    }

    /// Whether the block holds no whole slot.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Slot `i` as an unsigned 64-bit value; `EFAULT` if the block is too
    /// short (never a read past the bytes received).
    pub fn u64(&self, i: usize) -> Result<u64, Errno> {
        self.slots().get(i).map(|s| s.get()).ok_or(Errno::EFAULT)
    }

    /// Slot `i` as a C `int` (the low 32 bits, sign-extended).
    pub fn i32(&self, i: usize) -> Result<i32, Errno> {
        Ok(self.u64(i)? as u32 as i32)
    }

    /// Slot `i` as an unsigned C `int` or flags word (the low 32 bits).
    pub fn u32(&self, i: usize) -> Result<u32, Errno> {
        Ok(self.u64(i)? as u32)
    }

    /// Slot `i` as an `off_t` / `ssize_t`.
    pub fn i64(&self, i: usize) -> Result<i64, Errno> {
        Ok(self.u64(i)? as i64)
    }

    /// Slot `i` as a `size_t`; `EINVAL` if it does not fit `usize` (it
    /// always does on the LP64 targets this crate builds for).
    pub fn usize(&self, i: usize) -> Result<usize, Errno> {
        usize::try_from(self.u64(i)?).map_err(|_| Errno::EINVAL)
    }
}

/// The block of `slots`, as bytes, without copying: a `u64` in memory is
/// its little-endian slot on every target this crate builds for (it
/// refuses to compile on any other).
pub fn slot_bytes(slots: &[u64]) -> &[u8] {
    slots.as_bytes()
}

/// Encodes `slots` as an argument block.
pub fn encode(slots: &[u64]) -> Vec<u8> {
    slot_bytes(slots).to_vec()
}

/// Appends the argument block of `slots` to `out`.
pub fn encode_into(out: &mut Vec<u8>, slots: &[u64]) {
    out.extend_from_slice(slot_bytes(slots));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_little_endian_and_ints_take_the_low_half() {
        let block = encode(&[0x0102_0304_0506_0708, 0xffff_fffe, u64::MAX]);
        assert_eq!(&block[..8], &[8, 7, 6, 5, 4, 3, 2, 1]);
        let a = Args(&block);
        assert_eq!(a.len(), 3);
        assert_eq!(a.u64(0), Ok(0x0102_0304_0506_0708));
        assert_eq!(a.u32(0), Ok(0x0506_0708));
        assert_eq!(a.i32(1), Ok(-2));
        assert_eq!(a.u32(1), Ok(0xffff_fffe));
        assert_eq!(a.i64(1), Ok(0xffff_fffe));
        assert_eq!(a.i64(2), Ok(-1));
        assert_eq!(a.i32(2), Ok(-1));
        assert_eq!(a.usize(2), Ok(usize::MAX));
    }

    #[test]
    fn a_short_block_is_efault_never_a_read_past_it() {
        let block = [1u8, 0, 0, 0, 0, 0, 0, 0, 9, 9, 9];
        let a = Args(&block);
        assert_eq!(a.len(), 1);
        assert_eq!(a.slots().len(), 1);
        assert_eq!(a.u64(0), Ok(1));
        for i in [1, 2, usize::MAX / 8, usize::MAX / 8 + 1, usize::MAX] {
            assert_eq!(a.u64(i), Err(Errno::EFAULT), "slot {i}");
            assert_eq!(a.i32(i), Err(Errno::EFAULT));
            assert_eq!(a.u32(i), Err(Errno::EFAULT));
            assert_eq!(a.i64(i), Err(Errno::EFAULT));
            assert_eq!(a.usize(i), Err(Errno::EFAULT));
        }
        let empty = Args(&[]);
        assert!(empty.is_empty());
        assert_eq!(empty.u64(0), Err(Errno::EFAULT));
        assert!(Args(&block[..7]).is_empty());
    }

    #[test]
    fn encoders_agree() {
        let slots = [3, 0, u64::MAX, 1 << 40];
        let mut out = b"head".to_vec();
        encode_into(&mut out, &slots);
        assert_eq!(&out[4..], &encode(&slots)[..]);
        assert_eq!(&out[4..], slot_bytes(&slots));
        let by_hand: Vec<u8> = slots.iter().flat_map(|s| s.to_le_bytes()).collect();
        assert_eq!(encode(&slots), by_hand);
        assert!(encode(&[]).is_empty());
        let a = Args::new(&out[4..]);
        assert_eq!(a.bytes(), &by_hand[..]);
        let back: Vec<u64> = a.slots().iter().map(|s| s.get()).collect();
        assert_eq!(back, slots);
    }
}
