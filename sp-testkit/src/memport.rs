//! [`MemPort`]: an in-memory [`ClientPort`] for driving a kernel without a
//! socket.
//!
//! The port stands for a client's address space: tests [`map`](MemPort::map)
//! bytes at addresses, pass the addresses in syscall argument blocks, and
//! [`read`](MemPort::read) back what the kernel copied out. Copies must lie
//! inside one mapped region, otherwise they fail with `EFAULT`, as a client
//! would refuse them. Signals the kernel raises are recorded, and the port
//! can be [disconnected](MemPort::disconnect) to play a client that is gone.
//!
//! ```
//! use sp_server::ClientPort;
//! use sp_testkit::memport::MemPort;
//!
//! let port = MemPort::new();
//! let path = port.alloc(b"/etc/motd\0".to_vec());
//! assert_eq!(port.copyinstr(path, 1024).unwrap(), b"/etc/motd");
//! assert!(port.copyin(0x10, &mut [0u8; 4]).is_err());
//! ```

#![forbid(unsafe_code)]

use parking_lot::Mutex;
use sp_proto::abi::Errno;
use sp_server::ClientPort;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// Where [`MemPort::alloc`] places its regions.
const ALLOC_BASE: u64 = 0x1000_0000;
/// Where [`ClientPort::anonmmap`] places its regions.
const ANON_BASE: u64 = 0x7f00_0000_0000;
/// Page size used to space regions apart (a gap page between them).
const PAGE: u64 = 4096;
/// Largest anonymous mapping the port grants (a test-only guard against
/// allocating whatever a kernel asks for).
pub const MAX_ANON: u64 = 1 << 30;

/// A hook run at the start of every [`ClientPort::copyin`] and
/// [`ClientPort::copyinstr`], on the kernel's thread.
pub type CopyinHook = Arc<dyn Fn() + Send + Sync>;

/// An in-memory client address space implementing [`ClientPort`].
///
/// Thread-safe: kernels call it from many threads at once.
pub struct MemPort {
    inner: Mutex<Inner>,
    hook: Mutex<Option<CopyinHook>>,
}

struct Inner {
    /// Mapped regions by start address; they never overlap.
    regions: BTreeMap<u64, Vec<u8>>,
    raised: Vec<u32>,
    next_alloc: u64,
    next_anon: u64,
    disconnected: bool,
}

impl Inner {
    /// The region holding `[addr, addr + len)` entirely, as (start, bytes).
    fn region(&mut self, addr: u64, len: usize) -> Result<(u64, &mut Vec<u8>), Errno> {
        let end = addr.checked_add(len as u64).ok_or(Errno::EFAULT)?;
        let (&start, bytes) = self
            .regions
            .range_mut(..=addr)
            .next_back()
            .ok_or(Errno::EFAULT)?;
        if end > start + bytes.len() as u64 {
            return Err(Errno::EFAULT);
        }
        Ok((start, bytes))
    }

    fn insert(&mut self, addr: u64, bytes: Vec<u8>) {
        let end = addr
            .checked_add(bytes.len() as u64)
            .expect("MemPort::map: region wraps the address space");
        let clash = self.regions.contains_key(&addr)
            || self
                .regions
                .range(..end)
                .next_back()
                .is_some_and(|(&s, b)| s + b.len() as u64 > addr);
        assert!(
            !clash,
            "MemPort::map: region {addr:#x}+{} overlaps a mapped one",
            bytes.len()
        );
        self.regions.insert(addr, bytes);
    }
}

fn round_up(n: u64) -> u64 {
    n.div_ceil(PAGE) * PAGE
}

impl MemPort {
    /// An empty address space: nothing mapped, no signals, connected.
    pub fn new() -> MemPort {
        MemPort {
            inner: Mutex::new(Inner {
                regions: BTreeMap::new(),
                raised: Vec::new(),
                next_alloc: ALLOC_BASE,
                next_anon: ANON_BASE,
                disconnected: false,
            }),
            hook: Mutex::new(None),
        }
    }

    /// A new port behind an `Arc`, ready to hand to a kernel as a
    /// [`Port`](sp_server::Port) (clone it first to keep a handle).
    pub fn shared() -> Arc<MemPort> {
        Arc::new(MemPort::new())
    }

    /// Maps `bytes` at `addr`.
    ///
    /// # Panics
    /// If the region overlaps one already mapped (a mistake in the test).
    pub fn map(&self, addr: u64, bytes: Vec<u8>) {
        self.inner.lock().insert(addr, bytes);
    }

    /// Maps `bytes` at a fresh address (page-aligned, with a gap page after
    /// it) and returns the address.
    pub fn alloc(&self, bytes: Vec<u8>) -> u64 {
        let mut g = self.inner.lock();
        let addr = g.next_alloc;
        g.next_alloc = addr + round_up(bytes.len() as u64) + PAGE;
        g.insert(addr, bytes);
        addr
    }

    /// Maps `s` followed by a NUL at a fresh address and returns it.
    pub fn alloc_cstr(&self, s: &[u8]) -> u64 {
        let mut v = s.to_vec();
        v.push(0);
        self.alloc(v)
    }

    /// Maps `len` zero bytes at a fresh address and returns it.
    pub fn alloc_zeroed(&self, len: usize) -> u64 {
        self.alloc(vec![0; len])
    }

    /// Unmaps the region starting at `addr`; returns its bytes.
    pub fn unmap(&self, addr: u64) -> Option<Vec<u8>> {
        self.inner.lock().regions.remove(&addr)
    }

    /// The `len` bytes at `addr`.
    ///
    /// # Panics
    /// If they are not inside one mapped region.
    pub fn read(&self, addr: u64, len: usize) -> Vec<u8> {
        let mut g = self.inner.lock();
        let (start, bytes) = g
            .region(addr, len)
            .unwrap_or_else(|_| panic!("MemPort::read: {addr:#x}+{len} is not mapped"));
        let off = (addr - start) as usize;
        bytes[off..off + len].to_vec()
    }

    /// Overwrites mapped bytes at `addr` (test set-up between calls).
    ///
    /// # Panics
    /// If they are not inside one mapped region.
    pub fn write(&self, addr: u64, data: &[u8]) {
        let mut g = self.inner.lock();
        let (start, bytes) = g
            .region(addr, data.len())
            .unwrap_or_else(|_| panic!("MemPort::write: {addr:#x}+{} is not mapped", data.len()));
        let off = (addr - start) as usize;
        bytes[off..off + data.len()].copy_from_slice(data);
    }

    /// The start and length of every mapped region, in address order.
    pub fn regions(&self) -> Vec<(u64, usize)> {
        self.inner
            .lock()
            .regions
            .iter()
            .map(|(&a, b)| (a, b.len()))
            .collect()
    }

    /// The signals raised so far, oldest first.
    pub fn raised(&self) -> Vec<u32> {
        self.inner.lock().raised.clone()
    }

    /// Plays a client that is gone: every copy and anonmmap fails with
    /// `EFAULT`, and raise with `ENOTCONN`.
    pub fn disconnect(&self) {
        self.set_disconnected(true);
    }

    /// Sets or clears the disconnected state (see [`MemPort::disconnect`]).
    pub fn set_disconnected(&self, gone: bool) {
        self.inner.lock().disconnected = gone;
    }

    /// Whether the port plays a client that is gone.
    pub fn is_disconnected(&self) -> bool {
        self.inner.lock().disconnected
    }

    /// Installs (or removes) a hook run at the start of every copyin and
    /// copyinstr, before the port looks at memory. Tests use it to act while
    /// a kernel waits for its client, for example to check that the kernel
    /// holds no lock then.
    pub fn set_copyin_hook(&self, hook: Option<CopyinHook>) {
        *self.hook.lock() = hook;
    }

    fn run_hook(&self) {
        let hook = self.hook.lock().clone();
        if let Some(h) = hook {
            h();
        }
    }
}

impl Default for MemPort {
    fn default() -> MemPort {
        MemPort::new()
    }
}

impl fmt::Debug for MemPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let g = self.inner.lock();
        f.debug_struct("MemPort")
            .field("regions", &g.regions.len())
            .field("raised", &g.raised)
            .field("disconnected", &g.disconnected)
            .finish()
    }
}

impl ClientPort for MemPort {
    fn copyin(&self, addr: u64, buf: &mut [u8]) -> Result<(), Errno> {
        self.run_hook();
        let mut g = self.inner.lock();
        if g.disconnected {
            return Err(Errno::EFAULT);
        }
        if buf.is_empty() {
            return Ok(());
        }
        let (start, bytes) = g.region(addr, buf.len())?;
        let off = (addr - start) as usize;
        buf.copy_from_slice(&bytes[off..off + buf.len()]);
        Ok(())
    }

    fn copyinstr(&self, addr: u64, maxlen: usize) -> Result<Vec<u8>, Errno> {
        self.run_hook();
        let mut g = self.inner.lock();
        if g.disconnected {
            return Err(Errno::EFAULT);
        }
        let (start, bytes) = g.region(addr, 0)?;
        let off = (addr - start) as usize;
        let avail = &bytes[off..];
        let window = &avail[..avail.len().min(maxlen)];
        match window.iter().position(|&b| b == 0) {
            Some(i) => Ok(window[..i].to_vec()),
            // The string runs past the mapping before maxlen: a fault.
            None if avail.len() < maxlen => Err(Errno::EFAULT),
            None => Err(Errno::ENAMETOOLONG),
        }
    }

    fn copyout(&self, addr: u64, data: &[u8]) -> Result<(), Errno> {
        let mut g = self.inner.lock();
        if g.disconnected {
            return Err(Errno::EFAULT);
        }
        if data.is_empty() {
            return Ok(());
        }
        let (start, bytes) = g.region(addr, data.len())?;
        let off = (addr - start) as usize;
        bytes[off..off + data.len()].copy_from_slice(data);
        Ok(())
    }

    fn copyoutstr(&self, addr: u64, data: &[u8]) -> Result<(), Errno> {
        self.copyout(addr, data)
    }

    fn anonmmap(&self, size: u64) -> Result<u64, Errno> {
        let mut g = self.inner.lock();
        if g.disconnected {
            return Err(Errno::EFAULT);
        }
        if size == 0 || size > MAX_ANON {
            return Err(Errno::ENOMEM);
        }
        let addr = g.next_anon;
        g.next_anon = addr + round_up(size) + PAGE;
        g.insert(addr, vec![0; size as usize]);
        Ok(addr)
    }

    fn raise(&self, signo: u32) -> Result<(), Errno> {
        let mut g = self.inner.lock();
        if g.disconnected {
            return Err(Errno::ENOTCONN);
        }
        g.raised.push(signo);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_inside_and_outside_regions() {
        let p = MemPort::new();
        p.map(0x1000, vec![1, 2, 3, 4]);
        let mut b = [0u8; 2];
        p.copyin(0x1001, &mut b).unwrap();
        assert_eq!(b, [2, 3]);
        assert_eq!(p.copyin(0x1003, &mut b), Err(Errno::EFAULT));
        assert_eq!(p.copyin(0xfff, &mut b), Err(Errno::EFAULT));
        assert_eq!(p.copyin(u64::MAX, &mut b), Err(Errno::EFAULT));
        p.copyout(0x1002, &[9, 9]).unwrap();
        assert_eq!(p.read(0x1000, 4), vec![1, 2, 9, 9]);
        assert_eq!(p.copyout(0x1003, &[9, 9]), Err(Errno::EFAULT));
        p.copyoutstr(0x1000, b"a\0").unwrap();
        assert_eq!(p.read(0x1000, 2), b"a\0");
    }

    #[test]
    fn copyinstr_honours_nul_and_maxlen() {
        let p = MemPort::new();
        let a = p.alloc(b"hello\0world".to_vec());
        assert_eq!(p.copyinstr(a, 1024).unwrap(), b"hello");
        assert_eq!(p.copyinstr(a, 6).unwrap(), b"hello");
        assert_eq!(p.copyinstr(a, 5), Err(Errno::ENAMETOOLONG));
        // No NUL before the end of the mapping: a fault.
        assert_eq!(p.copyinstr(a + 6, 1024), Err(Errno::EFAULT));
        assert_eq!(p.copyinstr(a + 6, 5), Err(Errno::ENAMETOOLONG));
        assert_eq!(p.copyinstr(0x10, 5), Err(Errno::EFAULT));
    }

    #[test]
    fn anonmmap_raise_and_disconnect() {
        let p = MemPort::new();
        let a = p.anonmmap(100).unwrap();
        let b = p.anonmmap(5000).unwrap();
        assert_ne!(a, b);
        assert_eq!(p.read(a, 100), vec![0; 100]);
        assert_eq!(p.read(b, 5000).len(), 5000);
        assert_eq!(p.anonmmap(0), Err(Errno::ENOMEM));
        assert_eq!(p.anonmmap(MAX_ANON + 1), Err(Errno::ENOMEM));
        p.raise(13).unwrap();
        p.raise(30).unwrap();
        assert_eq!(p.raised(), vec![13, 30]);

        p.disconnect();
        assert!(p.is_disconnected());
        assert_eq!(p.copyin(a, &mut [0u8; 1]), Err(Errno::EFAULT));
        assert_eq!(p.copyout(a, &[1]), Err(Errno::EFAULT));
        assert_eq!(p.copyinstr(a, 3), Err(Errno::EFAULT));
        assert_eq!(p.anonmmap(1), Err(Errno::EFAULT));
        assert_eq!(p.raise(1), Err(Errno::ENOTCONN));
        p.set_disconnected(false);
        p.copyout(a, &[1]).unwrap();
    }

    #[test]
    fn alloc_spaces_regions_and_unmap() {
        let p = MemPort::new();
        let a = p.alloc_zeroed(10);
        let b = p.alloc_cstr(b"x");
        assert!(b >= a + PAGE * 2);
        assert_eq!(p.regions(), vec![(a, 10), (b, 2)]);
        // The gap after a region is not mapped.
        assert_eq!(p.copyout(a + 10, &[1]), Err(Errno::EFAULT));
        assert_eq!(p.unmap(a), Some(vec![0; 10]));
        assert_eq!(p.copyout(a, &[1]), Err(Errno::EFAULT));
        p.write(b, b"y");
        assert_eq!(p.read(b, 2), b"y\0");
    }

    #[test]
    #[should_panic(expected = "overlaps")]
    fn overlapping_map_panics() {
        let p = MemPort::new();
        p.map(0x1000, vec![0; 16]);
        p.map(0x1008, vec![0; 16]);
    }

    #[test]
    fn copyin_hook_runs() {
        let p = MemPort::new();
        let a = p.alloc_cstr(b"x");
        let n = Arc::new(Mutex::new(0));
        let n2 = n.clone();
        p.set_copyin_hook(Some(Arc::new(move || *n2.lock() += 1)));
        p.copyin(a, &mut [0u8; 1]).unwrap();
        p.copyinstr(a, 4).unwrap();
        p.copyout(a, &[1]).unwrap();
        assert_eq!(*n.lock(), 2);
        p.set_copyin_hook(None);
        p.copyin(a, &mut [0u8; 1]).unwrap();
        assert_eq!(*n.lock(), 2);
    }
}
