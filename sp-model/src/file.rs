//! Open file descriptions and descriptor tables.
//!
//! An [`OpenFile`] (a description: object, status flags, offset) is shared
//! by every descriptor dup'ed from it and by the copies a fork makes; the
//! close-on-exec flag belongs to the descriptor ([`FdEntry`]). The object
//! closes when the last description reference goes (the pipe end's or
//! vnode reference's `Drop`), so callers drop entries they take out of a
//! table only after unlocking it.

use super::fs::VnodeRef;
use super::pipe::PipeEnd;
use parking_lot::Mutex;
use sp_proto::abi::{oflag, Errno};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

/// Descriptors a process may have open (0 to `FD_LIMIT - 1`): NetBSD's
/// OPEN_MAX, a rump kernel's `RLIMIT_NOFILE`.
pub const FD_LIMIT: usize = 128;

/// `O_ASYNC`.
pub(crate) const O_ASYNC: u32 = 0x40;
/// `O_NOSIGPIPE`: a write to a pipe without reader raises no SIGPIPE.
pub(crate) const O_NOSIGPIPE: u32 = 0x0100_0000;
/// Status flags F_SETFL may change and open keeps (NetBSD's FCNTLFLAGS:
/// O_APPEND, O_ASYNC, O_SYNC, O_NONBLOCK, O_DSYNC, O_RSYNC, O_ALT_IO,
/// O_DIRECT, O_NOSIGPIPE).
pub(crate) const FCNTLFLAGS: u32 = oflag::O_APPEND
    | O_ASYNC
    | 0x80
    | oflag::O_NONBLOCK
    | 0x1_0000
    | 0x2_0000
    | 0x4_0000
    | 0x8_0000
    | O_NOSIGPIPE;

/// What a description refers to.
pub(crate) enum FileObj {
    /// A node of the file system.
    Vnode(VnodeRef),
    /// One end of a pipe.
    Pipe(PipeEnd),
    /// The console a guest finds on descriptors 0, 1 and 2: write-only,
    /// writes land in the kernel's console buffer.
    Console,
}

/// An open file description.
pub(crate) struct OpenFile {
    pub(crate) obj: FileObj,
    /// Access mode and status flags, as F_GETFL reports them.
    flags: AtomicU32,
    /// The file offset (a directory offset for a directory).
    pub(crate) offset: Mutex<u64>,
}

impl OpenFile {
    /// A description of `obj` with access mode and status `flags` (other
    /// bits dropped, as open(2) keeps them).
    pub(crate) fn new(obj: FileObj, flags: u32) -> Arc<OpenFile> {
        OpenFile::with_flags(obj, flags & (oflag::O_ACCMODE | FCNTLFLAGS))
    }

    /// A description whose F_GETFL answer is exactly `flags` (pipe2 keeps
    /// every flag it was given, O_CLOEXEC included, as NetBSD's does).
    pub(crate) fn with_flags(obj: FileObj, flags: u32) -> Arc<OpenFile> {
        Arc::new(OpenFile {
            obj,
            flags: AtomicU32::new(flags),
            offset: Mutex::new(0),
        })
    }

    /// The F_GETFL flags.
    pub(crate) fn flags(&self) -> u32 {
        self.flags.load(Ordering::Relaxed)
    }

    /// F_SETFL: replaces the FCNTLFLAGS bits with those of `new`.
    pub(crate) fn set_flags(&self, new: u32) {
        let keep = self.flags() & !FCNTLFLAGS;
        self.flags
            .store(keep | (new & FCNTLFLAGS), Ordering::Relaxed);
    }

    /// Sets O_NONBLOCK (dup3 with O_NONBLOCK).
    pub(crate) fn set_nonblock(&self) {
        self.flags.fetch_or(oflag::O_NONBLOCK, Ordering::Relaxed);
    }

    /// Opened for reading.
    pub(crate) fn readable(&self) -> bool {
        matches!(
            self.flags() & oflag::O_ACCMODE,
            oflag::O_RDONLY | oflag::O_RDWR
        )
    }

    /// Opened for writing.
    pub(crate) fn writable(&self) -> bool {
        matches!(
            self.flags() & oflag::O_ACCMODE,
            oflag::O_WRONLY | oflag::O_RDWR
        )
    }

    /// O_NONBLOCK is set.
    pub(crate) fn nonblock(&self) -> bool {
        self.flags() & oflag::O_NONBLOCK != 0
    }

    /// O_APPEND is set.
    pub(crate) fn append(&self) -> bool {
        self.flags() & oflag::O_APPEND != 0
    }

    /// O_NOSIGPIPE is set.
    pub(crate) fn nosigpipe(&self) -> bool {
        self.flags() & O_NOSIGPIPE != 0
    }

    /// F_SETNOSIGPIPE.
    pub(crate) fn set_nosigpipe(&self, on: bool) {
        if on {
            self.flags.fetch_or(O_NOSIGPIPE, Ordering::Relaxed);
        } else {
            self.flags.fetch_and(!O_NOSIGPIPE, Ordering::Relaxed);
        }
    }
}

/// A descriptor: a description and the close-on-exec flag.
#[derive(Clone)]
pub(crate) struct FdEntry {
    pub(crate) file: Arc<OpenFile>,
    pub(crate) cloexec: bool,
}

/// A process's descriptor table.
#[derive(Clone, Default)]
pub(crate) struct FdTable {
    slots: Vec<Option<FdEntry>>,
}

fn index(fd: i32) -> Result<usize, Errno> {
    usize::try_from(fd)
        .ok()
        .filter(|&i| i < FD_LIMIT)
        .ok_or(Errno::EBADF)
}

impl FdTable {
    /// The descriptor `fd`; `EBADF` if it is not open.
    pub(crate) fn get(&self, fd: i32) -> Result<&FdEntry, Errno> {
        self.slots
            .get(index(fd)?)
            .and_then(Option::as_ref)
            .ok_or(Errno::EBADF)
    }

    /// The descriptor `fd`, mutable.
    pub(crate) fn get_mut(&mut self, fd: i32) -> Result<&mut FdEntry, Errno> {
        self.slots
            .get_mut(index(fd)?)
            .and_then(Option::as_mut)
            .ok_or(Errno::EBADF)
    }

    /// The lowest free descriptor at or above `min`; `EMFILE` if none.
    pub(crate) fn lowest_free(&self, min: usize) -> Result<usize, Errno> {
        (min..FD_LIMIT)
            .find(|&i| !matches!(self.slots.get(i), Some(Some(_))))
            .ok_or(Errno::EMFILE)
    }

    /// Installs `e` at the lowest free descriptor at or above `min`.
    pub(crate) fn alloc(&mut self, min: usize, e: FdEntry) -> Result<i32, Errno> {
        let i = self.lowest_free(min)?;
        let old = self.place(i as i32, e)?;
        debug_assert!(old.is_none());
        Ok(i as i32)
    }

    /// Installs `e` at `fd`, returning what was there (to drop unlocked).
    pub(crate) fn place(&mut self, fd: i32, e: FdEntry) -> Result<Option<FdEntry>, Errno> {
        let i = index(fd)?;
        if self.slots.len() <= i {
            self.slots.resize(i + 1, None);
        }
        Ok(self.slots[i].replace(e))
    }

    /// Removes `fd`; `EBADF` if it is not open.
    pub(crate) fn remove(&mut self, fd: i32) -> Result<FdEntry, Errno> {
        let e = self
            .slots
            .get_mut(index(fd)?)
            .and_then(Option::take)
            .ok_or(Errno::EBADF)?;
        while self.slots.last().is_some_and(Option::is_none) {
            self.slots.pop();
        }
        Ok(e)
    }

    /// Removes the close-on-exec descriptors.
    pub(crate) fn take_cloexec(&mut self) -> Vec<FdEntry> {
        let out: Vec<FdEntry> = self
            .slots
            .iter_mut()
            .filter(|s| s.as_ref().is_some_and(|e| e.cloexec))
            .filter_map(Option::take)
            .collect();
        while self.slots.last().is_some_and(Option::is_none) {
            self.slots.pop();
        }
        out
    }

    /// Removes the descriptors from `min` up (F_CLOSEM).
    pub(crate) fn take_from(&mut self, min: usize) -> Vec<FdEntry> {
        if min >= self.slots.len() {
            return Vec::new();
        }
        self.slots.split_off(min).into_iter().flatten().collect()
    }

    /// The highest open descriptor, -1 if none (F_MAXFD).
    pub(crate) fn max_fd(&self) -> i32 {
        self.slots
            .iter()
            .rposition(Option::is_some)
            .map_or(-1, |i| i as i32)
    }

    /// Removes every descriptor.
    pub(crate) fn take_all(&mut self) -> Vec<FdEntry> {
        std::mem::take(&mut self.slots)
            .into_iter()
            .flatten()
            .collect()
    }

    /// The open descriptor numbers, ascending.
    pub(crate) fn fds(&self) -> Vec<i32> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.is_some())
            .map(|(i, _)| i as i32)
            .collect()
    }
}
