//! The client memory the server may touch.
//!
//! Safe mode (the default) never dereferences an address the server names.
//! When a call starts, each buffer it exposes is copied into an owned
//! `Vec` in a registry keyed by its real address range; the server's copies
//! are served from and into those vectors, and when the call ends the
//! writable ones are copied back into the caller's `&mut [u8]`. That costs a
//! memcpy per exposed buffer per call (two for writable ones), the price of
//! not trusting the server. The registry holds the buffers of every call in
//! flight on the client at once, since a COPYIN request does not say which
//! call it serves.
//!
//! Anonymous memory the server asked for (ANONMMAP) is real memory, owned by
//! the registry ([`Mapping`]); copies into and out of it are served directly.
//!
//! Raw mode (unsafe to turn on) additionally serves any other address of this
//! process through raw pointers, like the C client.

use crate::buf::Buf;
use crate::error::{CopyKind, RefusedCopy};
use memmap2::MmapMut;
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Identifies one call's registrations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Token(u64);

#[derive(Debug)]
struct Region {
    token: Token,
    addr: u64,
    readable: bool,
    writable: bool,
    data: Vec<u8>,
}

impl Region {
    /// Offset of `[addr, addr+len)` inside the region, if it lies inside.
    fn offset_of(&self, addr: u64, len: u64) -> Option<usize> {
        let end = addr.checked_add(len)?;
        let rend = self.addr.checked_add(self.data.len() as u64)?;
        (addr >= self.addr && end <= rend).then(|| (addr - self.addr) as usize)
    }
}

#[derive(Debug, Default)]
struct Registry {
    next: u64,
    regions: Vec<Region>,
    /// In-flight calls, with a COPYOUT dropped while they ran.
    calls: HashMap<Token, Option<RefusedCopy>>,
}

/// Shared mapping storage.
type MapCell = Arc<Mutex<MmapMut>>;

/// The memory registry of one client.
#[derive(Debug, Default)]
pub(crate) struct Memory {
    reg: Mutex<Registry>,
    maps: Mutex<BTreeMap<u64, MapCell>>,
    raw: AtomicBool,
}

/// The answer to a COPYIN: which bytes to send.
fn string_answer(avail: &[u8], len: u64) -> Option<&[u8]> {
    match avail.iter().position(|&b| b == 0) {
        Some(i) => Some(&avail[..i + 1]),
        // No NUL within `len` bytes: send all `len` (the kernel sees no
        // terminator and fails the call), as the C client does.
        None if avail.len() as u64 == len => Some(avail),
        // The string runs past the exposed memory.
        None => None,
    }
}

impl Memory {
    pub(crate) fn set_raw(&self, on: bool) {
        self.raw.store(on, Ordering::SeqCst);
    }

    pub(crate) fn is_raw(&self) -> bool {
        self.raw.load(Ordering::SeqCst)
    }

    /// Registers the buffers of a call that is about to start.
    pub(crate) fn register(&self, bufs: &[Buf<'_>]) -> Token {
        let mut reg = self.reg.lock();
        let token = Token(reg.next);
        reg.next += 1;
        reg.calls.insert(token, None);
        for b in bufs {
            reg.regions.push(Region {
                token,
                addr: b.addr(),
                readable: b.readable(),
                writable: b.writable(),
                data: b.bytes().to_vec(),
            });
        }
        token
    }

    /// Ends a call: copies its writable regions back into `bufs` (in the
    /// order they were registered) and forgets them. Returns the COPYOUT
    /// dropped while the call was in flight, if any.
    pub(crate) fn finish(&self, token: Token, bufs: &mut [Buf<'_>]) -> Option<RefusedCopy> {
        let mut reg = self.reg.lock();
        let faulted = reg.calls.remove(&token).flatten();
        let mut mine = Vec::with_capacity(bufs.len());
        reg.regions.retain_mut(|r| {
            if r.token == token {
                mine.push(std::mem::take(&mut r.data));
                false
            } else {
                true
            }
        });
        drop(reg);
        for (b, data) in bufs.iter_mut().zip(mine) {
            if let Some(dst) = b.bytes_mut() {
                dst.copy_from_slice(&data);
            }
        }
        faulted
    }

    fn mapping_cell(&self, addr: u64, len: u64) -> Option<(MapCell, usize)> {
        let maps = self.maps.lock();
        let (&base, cell) = maps.range(..=addr).next_back()?;
        let off = addr - base;
        let end = off.checked_add(len)?;
        let size = cell.lock().len() as u64;
        (end <= size).then(|| (cell.clone(), off as usize))
    }

    /// Serves a COPYIN or COPYINSTR: calls `answer` with the bytes to send
    /// (while they stay borrowed), or returns `None` if the range is not
    /// exposed.
    pub(crate) fn copyin<R>(
        &self,
        addr: u64,
        len: u64,
        string: bool,
        answer: impl FnOnce(&[u8]) -> R,
    ) -> Option<R> {
        if len == 0 {
            return Some(answer(&[]));
        }
        {
            let reg = self.reg.lock();
            for r in reg.regions.iter().filter(|r| r.readable) {
                if string {
                    let Some(off) = r.offset_of(addr, 1) else {
                        continue;
                    };
                    let end = (off as u64).saturating_add(len).min(r.data.len() as u64) as usize;
                    if let Some(bytes) = string_answer(&r.data[off..end], len) {
                        return Some(answer(bytes));
                    }
                } else if let Some(off) = r.offset_of(addr, len) {
                    return Some(answer(&r.data[off..off + len as usize]));
                }
            }
        }
        let probe = if string { 1 } else { len };
        if let Some((cell, off)) = self.mapping_cell(addr, probe) {
            let map = cell.lock();
            if string {
                let end = (off as u64).saturating_add(len).min(map.len() as u64) as usize;
                return string_answer(&map[off..end], len).map(answer);
            }
            return Some(answer(&map[off..off + len as usize]));
        }
        if self.is_raw() {
            return raw::copyin(addr, len, string, answer);
        }
        None
    }

    /// Serves a COPYOUT: stores `data` at `addr` if that range is writable.
    /// When it is not, every call in flight is marked as faulted (the
    /// request does not say which call it belongs to) and `false` returned.
    pub(crate) fn copyout(&self, addr: u64, data: &[u8]) -> bool {
        let len = data.len() as u64;
        if data.is_empty() {
            return true;
        }
        {
            let mut reg = self.reg.lock();
            for r in reg.regions.iter_mut().filter(|r| r.writable) {
                if let Some(off) = r.offset_of(addr, len) {
                    r.data[off..off + data.len()].copy_from_slice(data);
                    return true;
                }
            }
        }
        if let Some((cell, off)) = self.mapping_cell(addr, len) {
            cell.lock()[off..off + data.len()].copy_from_slice(data);
            return true;
        }
        if self.is_raw() && raw::copyout(addr, data) {
            return true;
        }
        let refused = RefusedCopy {
            kind: CopyKind::Copyout,
            addr,
            len,
        };
        let mut reg = self.reg.lock();
        for f in reg.calls.values_mut() {
            *f = Some(refused);
        }
        false
    }

    /// Serves an ANONMMAP: maps `size` bytes of fresh anonymous memory and
    /// returns its address, or 0 when it cannot (size 0 or over `max`).
    pub(crate) fn anonmmap(&self, size: u64, max: u64) -> u64 {
        if size == 0 || size > max {
            return 0;
        }
        let Ok(size) = usize::try_from(size) else {
            return 0;
        };
        match MmapMut::map_anon(size) {
            Ok(map) => {
                let addr = map.as_ptr() as u64;
                self.maps.lock().insert(addr, Arc::new(Mutex::new(map)));
                addr
            }
            Err(e) => {
                tracing::warn!("ANONMMAP of {size} bytes failed: {e}");
                0
            }
        }
    }

    /// The mapping starting at `addr`.
    pub(crate) fn mapping(&self, addr: u64) -> Option<Mapping> {
        let cell = self.maps.lock().get(&addr)?.clone();
        let len = cell.lock().len();
        Some(Mapping { addr, len, cell })
    }

    /// Every mapping, in address order.
    pub(crate) fn mappings(&self) -> Vec<Mapping> {
        let addrs: Vec<u64> = self.maps.lock().keys().copied().collect();
        addrs.into_iter().filter_map(|a| self.mapping(a)).collect()
    }

    /// Forgets the mapping at `addr`; the memory is freed once the last
    /// [`Mapping`] handle to it is dropped.
    pub(crate) fn unmap(&self, addr: u64) -> bool {
        self.maps.lock().remove(&addr).is_some()
    }

    /// Moves every mapping out (used in a fork child; `try_lock` because a
    /// thread of the parent may have held the lock at the fork).
    pub(crate) fn take_mappings(&self) -> BTreeMap<u64, MapCell> {
        match self.maps.try_lock() {
            Some(mut m) => std::mem::take(&mut *m),
            None => BTreeMap::new(),
        }
    }

    pub(crate) fn adopt_mappings(&self, maps: BTreeMap<u64, MapCell>) {
        self.maps.lock().extend(maps);
    }

    /// Number of exposed regions (for tests).
    #[cfg(test)]
    pub(crate) fn region_count(&self) -> usize {
        self.reg.lock().regions.len()
    }
}

/// Anonymous memory mapped for the server's kernel (ANONMMAP), reachable by
/// the caller afterwards. Cloning gives another handle to the same memory;
/// the memory stays mapped while the client or any handle holds it.
#[derive(Clone, Debug)]
pub struct Mapping {
    addr: u64,
    len: usize,
    cell: MapCell,
}

impl Mapping {
    /// The address the server was given.
    pub fn addr(&self) -> u64 {
        self.addr
    }

    /// Its length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it is empty (never, in practice).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Runs `f` on the memory. Copies the server makes into or out of this
    /// mapping wait until `f` returns, so `f` must not make a system call
    /// on the same client that touches this mapping.
    pub fn with<R>(&self, f: impl FnOnce(&mut [u8]) -> R) -> R {
        f(&mut self.cell.lock()[..])
    }

    /// Copies `buf.len()` bytes at `offset` into `buf`; `false` if out of range.
    pub fn read_at(&self, offset: usize, buf: &mut [u8]) -> bool {
        self.with(|m| {
            match offset
                .checked_add(buf.len())
                .and_then(|end| m.get(offset..end))
            {
                Some(src) => {
                    buf.copy_from_slice(src);
                    true
                }
                None => false,
            }
        })
    }

    /// Stores `data` at `offset`; `false` if out of range.
    pub fn write_at(&self, offset: usize, data: &[u8]) -> bool {
        self.with(|m| {
            match offset
                .checked_add(data.len())
                .and_then(|end| m.get_mut(offset..end))
            {
                Some(dst) => {
                    dst.copy_from_slice(data);
                    true
                }
                None => false,
            }
        })
    }

    /// A copy of the whole mapping.
    pub fn to_vec(&self) -> Vec<u8> {
        self.with(|m| m.to_vec())
    }
}

/// Raw access to this process's memory by address (raw mode only).
mod raw {
    /// Whether `[addr, addr+len)` can even be formed as a slice.
    fn plausible(addr: u64, len: u64) -> bool {
        addr != 0
            && len <= isize::MAX as u64
            && addr
                .checked_add(len)
                .is_some_and(|e| e <= usize::MAX as u64)
    }

    /// Reads the bytes to answer a COPYIN/COPYINSTR straight from memory.
    pub(super) fn copyin<R>(
        addr: u64,
        len: u64,
        string: bool,
        answer: impl FnOnce(&[u8]) -> R,
    ) -> Option<R> {
        if !plausible(addr, len) {
            return None;
        }
        let p = addr as usize as *const u8;
        let n = if string {
            let mut i = 0;
            // SAFETY: raw mode was switched on through the unsafe
            // `Client::set_raw_memory`, whose caller promised that every
            // address the server names is readable memory of this process.
            // Bytes are read one at a time and never past the first NUL or
            // `len`, like strnlen.
            while (i as u64) < len && unsafe { p.add(i).read() } != 0 {
                i += 1;
            }
            if (i as u64) < len {
                i + 1
            } else {
                i
            }
        } else {
            len as usize
        };
        // SAFETY: same promise as above for these `n` bytes (`n <= len`,
        // which `plausible` bounds by isize::MAX); the slice lives only for
        // the call to `answer`.
        let bytes = unsafe { std::slice::from_raw_parts(p, n) };
        Some(answer(bytes))
    }

    /// Stores `data` at `addr` straight into memory.
    pub(super) fn copyout(addr: u64, data: &[u8]) -> bool {
        if !plausible(addr, data.len() as u64) {
            return false;
        }
        // SAFETY: raw mode's caller promised that every address the server
        // names is writable memory of this process that nothing else is
        // using while the call runs. `copy` tolerates overlap.
        unsafe { std::ptr::copy(data.as_ptr(), addr as usize as *mut u8, data.len()) };
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_serves_exposed_buffers_only() {
        let m = Memory::default();
        let input = b"abcdef".to_vec();
        let mut out = [7u8; 8];
        let out_addr = out.as_ptr() as u64;
        let in_addr = input.as_ptr() as u64;
        let mut bufs = [Buf::In(&input), Buf::Out(&mut out)];
        let t = m.register(&bufs);
        assert_eq!(
            m.copyin(in_addr + 1, 3, false, |b| b.to_vec()),
            Some(b"bcd".to_vec())
        );
        assert_eq!(m.copyin(in_addr + 4, 3, false, |b| b.to_vec()), None);
        assert_eq!(
            m.copyin(out_addr, 1, false, |b| b.to_vec()),
            None,
            "Out is write-only"
        );
        assert!(m.copyout(out_addr + 2, &[1, 2]));
        assert!(!m.copyout(in_addr, &[1]), "In is read-only");
        let refused = m
            .finish(t, &mut bufs)
            .expect("the refused copyout marks the call");
        assert_eq!((refused.addr, refused.len), (in_addr, 1));
        assert_eq!(out, [7, 7, 1, 2, 7, 7, 7, 7]);
        assert_eq!(m.region_count(), 0);
    }

    #[test]
    fn strings() {
        let m = Memory::default();
        let s = c"/ok";
        let raw = b"abc".to_vec();
        let bufs = [Buf::Str(s), Buf::In(&raw)];
        let _t = m.register(&bufs);
        let a = s.as_ptr() as u64;
        assert_eq!(
            m.copyin(a, 1024, true, |b| b.to_vec()),
            Some(b"/ok\0".to_vec())
        );
        assert_eq!(m.copyin(a, 2, true, |b| b.to_vec()), Some(b"/o".to_vec()));
        assert_eq!(
            m.copyin(a + 1, 1024, true, |b| b.to_vec()),
            Some(b"ok\0".to_vec())
        );
        let r = raw.as_ptr() as u64;
        assert_eq!(m.copyin(r, 3, true, |b| b.to_vec()), Some(b"abc".to_vec()));
        assert_eq!(
            m.copyin(r, 4, true, |b| b.to_vec()),
            None,
            "unterminated past the region"
        );
    }

    #[test]
    fn mappings_and_unmap() {
        let m = Memory::default();
        assert_eq!(m.anonmmap(0, 1 << 20), 0);
        assert_eq!(m.anonmmap(2 << 20, 1 << 20), 0);
        let a = m.anonmmap(4096, 1 << 20);
        assert_ne!(a, 0);
        assert!(m.copyout(a + 10, b"hi"));
        assert_eq!(
            m.copyin(a + 10, 3, true, |b| b.to_vec()),
            Some(b"hi\0".to_vec())
        );
        assert_eq!(m.copyin(a + 4095, 2, false, |b| b.to_vec()), None);
        let map = m.mapping(a).unwrap();
        assert_eq!(map.len(), 4096);
        let mut two = [0u8; 2];
        assert!(map.read_at(10, &mut two));
        assert_eq!(&two, b"hi");
        assert!(map.write_at(4094, b"zz"));
        assert!(!map.write_at(4095, b"zz"));
        assert_eq!(m.mappings().len(), 1);
        assert!(m.unmap(a));
        assert!(!m.unmap(a));
        assert!(m.mapping(a).is_none());
        // The handle keeps the memory alive.
        assert_eq!(&map.to_vec()[4094..], b"zz");
    }

    #[test]
    fn raw_mode_reads_and_writes_real_buffers() {
        let m = Memory::default();
        let src = b"raw\0tail".to_vec();
        let mut dst = vec![0u8; 4];
        assert_eq!(
            m.copyin(src.as_ptr() as u64, 3, false, |b| b.to_vec()),
            None
        );
        m.set_raw(true);
        assert_eq!(
            m.copyin(src.as_ptr() as u64, 3, false, |b| b.to_vec()),
            Some(b"raw".to_vec())
        );
        assert_eq!(
            m.copyin(src.as_ptr() as u64, 100, true, |b| b.to_vec()),
            Some(b"raw\0".to_vec())
        );
        assert_eq!(
            m.copyin(src.as_ptr() as u64, 2, true, |b| b.to_vec()),
            Some(b"ra".to_vec())
        );
        assert!(m.copyout(dst.as_mut_ptr() as u64, b"wxyz"));
        assert_eq!(dst, b"wxyz");
        assert_eq!(
            m.copyin(0, 4, false, |b| b.to_vec()),
            None,
            "NULL is refused even raw"
        );
        assert!(!m.copyout(0, b"x"));
    }
}
