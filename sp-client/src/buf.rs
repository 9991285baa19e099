//! The buffers a system call exposes to the server, and a builder that puts
//! their addresses into the argument block.

use sp_proto::abi::Sysnum;
use std::ffi::CStr;

/// A buffer of the caller's that one system call exposes to the server.
///
/// Its real address (`as_ptr() as u64`) is what goes into the argument
/// block; the server names it back in its COPYIN/COPYOUT requests. In the
/// default (safe) memory mode the server can only read the readable kinds
/// (`In`, `InOut`, `Str`) and write the writable ones (`Out`, `InOut`).
#[derive(Debug)]
pub enum Buf<'a> {
    /// Read by the server (COPYIN), never written.
    In(&'a [u8]),
    /// Written by the server (COPYOUT), never read. Bytes the server does not
    /// write keep their old contents.
    Out(&'a mut [u8]),
    /// Both read and written.
    InOut(&'a mut [u8]),
    /// A NUL-terminated string, read by the server (COPYINSTR); the NUL is
    /// part of the exposed region.
    Str(&'a CStr),
}

impl Buf<'_> {
    /// The address to put in the argument block.
    pub fn addr(&self) -> u64 {
        self.bytes().as_ptr() as u64
    }

    /// Length of the exposed region (a string's NUL included).
    pub fn len(&self) -> usize {
        self.bytes().len()
    }

    /// Whether the region is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the server may read it.
    pub fn readable(&self) -> bool {
        !matches!(self, Buf::Out(_))
    }

    /// Whether the server may write it.
    pub fn writable(&self) -> bool {
        matches!(self, Buf::Out(_) | Buf::InOut(_))
    }

    /// The region's current bytes.
    pub(crate) fn bytes(&self) -> &[u8] {
        match self {
            Buf::In(b) => b,
            Buf::Out(b) | Buf::InOut(b) => b,
            Buf::Str(s) => s.to_bytes_with_nul(),
        }
    }

    /// The region's bytes for writing, if writable.
    pub(crate) fn bytes_mut(&mut self) -> Option<&mut [u8]> {
        match self {
            Buf::Out(b) | Buf::InOut(b) => Some(b),
            _ => None,
        }
    }
}

/// A system call being put together: its number, its argument slots, and
/// the buffers it exposes. Each buffer method both exposes the buffer and
/// appends its address as the next argument, so the argument block and the
/// exposed set cannot disagree.
///
/// ```
/// use sp_client::Call;
/// use sp_client::abi::Sysnum;
///
/// let data = b"hello";
/// let call = Call::new(Sysnum::WRITE).int(1).input(data).arg(data.len() as u64);
/// assert_eq!(call.args()[1], data.as_ptr() as u64);
/// assert_eq!(call.syscall(), Sysnum::WRITE);
/// ```
#[derive(Debug)]
pub struct Call<'a> {
    pub(crate) sysnum: Sysnum,
    pub(crate) args: Vec<u64>,
    pub(crate) bufs: Vec<Buf<'a>>,
}

impl<'a> Call<'a> {
    /// A call of NetBSD syscall `sysnum` (a [`Sysnum`], or its number)
    /// with no arguments yet.
    pub fn new(sysnum: impl Into<Sysnum>) -> Call<'a> {
        Call {
            sysnum: sysnum.into(),
            args: Vec::new(),
            bufs: Vec::new(),
        }
    }

    /// The syscall number.
    pub fn sysnum(&self) -> u32 {
        self.sysnum.0
    }

    /// The syscall, as an open code that prints its name.
    pub fn syscall(&self) -> Sysnum {
        self.sysnum
    }

    /// The argument slots so far.
    pub fn args(&self) -> &[u64] {
        &self.args
    }

    /// Appends a 64-bit slot as is (`size_t`, `off_t`, a plain address the
    /// call does not expose, such as 0).
    pub fn arg(mut self, v: u64) -> Self {
        self.args.push(v);
        self
    }

    /// Appends a C `int`: its 32 bits in the low half of the slot, the high
    /// half zero (as NetBSD's argument structures hold it).
    pub fn int(self, v: i32) -> Self {
        self.arg(u64::from(v as u32))
    }

    /// Appends a signed 64-bit value (`off_t`).
    pub fn off(self, v: i64) -> Self {
        self.arg(v as u64)
    }

    /// Appends NetBSD's `PAD` slot (before an `off_t` in lseek, ftruncate,
    /// pread, pwrite and mmap).
    pub fn pad(self) -> Self {
        self.arg(0)
    }

    /// Exposes `b` to be read and appends its address.
    pub fn input(self, b: &'a [u8]) -> Self {
        self.buf(Buf::In(b))
    }

    /// Exposes `b` to be written and appends its address.
    pub fn output(self, b: &'a mut [u8]) -> Self {
        self.buf(Buf::Out(b))
    }

    /// Exposes `b` to be read and written and appends its address.
    pub fn inout(self, b: &'a mut [u8]) -> Self {
        self.buf(Buf::InOut(b))
    }

    /// Exposes a string (NUL included) and appends its address.
    pub fn cstr(self, s: &'a CStr) -> Self {
        self.buf(Buf::Str(s))
    }

    /// Exposes a buffer and appends its address.
    pub fn buf(mut self, b: Buf<'a>) -> Self {
        self.args.push(b.addr());
        self.bufs.push(b);
        self
    }

    /// Exposes a buffer without appending an argument (its address is inside
    /// another exposed buffer, like the data buffers of an iovec array).
    pub fn expose(mut self, b: Buf<'a>) -> Self {
        self.bufs.push(b);
        self
    }

    /// The argument block: one little-endian 8-byte slot per argument
    /// ([`sp_proto::args::encode`]).
    pub fn arg_block(&self) -> Vec<u8> {
        sp_proto::args::encode(&self.args)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_builds_slots_from_buffers() {
        let path = c"/ok";
        let mut out = [0u8; 4];
        let out_addr = out.as_ptr() as u64;
        let c = Call::new(5)
            .cstr(path)
            .int(-1)
            .off(-2)
            .pad()
            .output(&mut out);
        assert_eq!(
            c.args(),
            &[path.as_ptr() as u64, 0xffff_ffff, u64::MAX - 1, 0, out_addr]
        );
        assert_eq!(c.bufs.len(), 2);
        assert_eq!(c.bufs[0].len(), 4);
        assert!(c.bufs[0].readable() && !c.bufs[0].writable());
        assert!(!c.bufs[1].readable() && c.bufs[1].writable());
        let block = c.arg_block();
        assert_eq!(block.len(), 40);
        assert_eq!(&block[8..16], &[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]);
    }
}
