//! Pipes: a bounded byte queue with a lock and a condition variable.
//!
//! Readers of an empty pipe wait while a writer is open; writers of a full
//! pipe wait while a reader is open. Every wait goes through a [`Waiter`],
//! which wakes when the calling process is told to exit (`lwpexit`).
//!
//! As NetBSD's: a pipe buffers [`PIPE_SIZE`] bytes, and a write of more
//! than that into an empty pipe grows it to [`BIG_PIPE_SIZE`] for good
//! (while fewer than [`MAX_BIG_PIPES`] big pipes are open in the kernel).

use super::proc::Waiter;
use parking_lot::{Condvar, Mutex};
use sp_proto::abi::{mode, Errno, Stat};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::sync::Arc;

/// Bytes a pipe buffers (NetBSD's PIPE_SIZE).
pub const PIPE_SIZE: usize = 16384;
/// What a pipe grows to for a large write (NetBSD's BIG_PIPE_SIZE).
pub const BIG_PIPE_SIZE: usize = 4 * PIPE_SIZE;
/// Big pipes a kernel allows at once (NetBSD's maxbigpipes).
pub const MAX_BIG_PIPES: usize = 32;
/// Writes up to this size are atomic (NetBSD's PIPE_BUF).
pub const PIPE_BUF: usize = 512;

/// A pipe shared by its two ends.
pub(crate) struct Pipe {
    st: Mutex<PipeState>,
    cond: Condvar,
    /// The kernel's count of big pipes.
    big: Arc<AtomicUsize>,
}

struct PipeState {
    buf: VecDeque<u8>,
    /// Bytes the buffer holds at most: PIPE_SIZE or BIG_PIPE_SIZE.
    cap: usize,
    /// Open read and write ends (open file descriptions, not descriptors).
    readers: usize,
    writers: usize,
}

/// One end of a pipe, held by an open file description; dropping it closes
/// that end and wakes the other side.
pub(crate) struct PipeEnd {
    pub(crate) pipe: Arc<Pipe>,
    pub(crate) writer: bool,
    /// The pid F_SETOWN set on this end (0: none).
    owner: AtomicI32,
}

impl PipeEnd {
    /// F_GETOWN.
    pub(crate) fn owner(&self) -> i32 {
        self.owner.load(Ordering::SeqCst)
    }

    /// F_SETOWN.
    pub(crate) fn set_owner(&self, pid: i32) {
        self.owner.store(pid, Ordering::SeqCst);
    }
}

impl Drop for PipeEnd {
    fn drop(&mut self) {
        let mut st = self.pipe.st.lock();
        if self.writer {
            st.writers -= 1;
        } else {
            st.readers -= 1;
            // The buffer goes with the last reader, a big one from the
            // kernel's count.
            if st.readers == 0 && st.cap > PIPE_SIZE {
                st.cap = PIPE_SIZE;
                self.pipe.big.fetch_sub(1, Ordering::SeqCst);
            }
        }
        self.pipe.cond.notify_all();
    }
}

impl Pipe {
    /// A new pipe, and its read and write ends; `big` counts the kernel's
    /// big pipes.
    pub(crate) fn create(big: &Arc<AtomicUsize>) -> (PipeEnd, PipeEnd) {
        let pipe = Arc::new(Pipe {
            st: Mutex::new(PipeState {
                buf: VecDeque::new(),
                cap: PIPE_SIZE,
                readers: 1,
                writers: 1,
            }),
            cond: Condvar::new(),
            big: big.clone(),
        });
        (
            PipeEnd {
                pipe: pipe.clone(),
                writer: false,
                owner: AtomicI32::new(0),
            },
            PipeEnd {
                pipe,
                writer: true,
                owner: AtomicI32::new(0),
            },
        )
    }

    /// Wakes every waiter so it looks at its process's exit mark again.
    pub(crate) fn kick(&self) {
        let _st = self.st.lock();
        self.cond.notify_all();
    }

    /// Whether a read end is open.
    pub(crate) fn has_reader(&self) -> bool {
        self.st.lock().readers > 0
    }

    /// Reads up to `n` bytes: waits while the pipe is empty and a writer is
    /// open; an empty result is end of file.
    pub(crate) fn read(
        self: &Arc<Pipe>,
        n: usize,
        nonblock: bool,
        w: &Waiter<'_>,
    ) -> Result<Vec<u8>, Errno> {
        if n == 0 {
            return Ok(Vec::new());
        }
        let _reg = w.register(self);
        let mut st = self.st.lock();
        loop {
            if !st.buf.is_empty() {
                let k = n.min(st.buf.len());
                let out: Vec<u8> = st.buf.drain(..k).collect();
                self.cond.notify_all();
                return Ok(out);
            }
            if st.writers == 0 {
                return Ok(Vec::new());
            }
            if nonblock {
                return Err(Errno::EAGAIN);
            }
            if w.interrupted() {
                return Err(Errno::EINTR);
            }
            w.wait(&self.cond, &mut st);
        }
    }

    /// Writes all of `data`, waiting for room while a reader is open;
    /// `resid` is what the whole write(2) still has to write (`data` and
    /// after), which decides whether an empty pipe grows.
    /// Writes of at most [`PIPE_BUF`] bytes are not interleaved with others.
    /// Returns the bytes written: fewer than asked only when a nonblocking
    /// write runs out of room or the wait is interrupted after a part went
    /// in. `EPIPE` when no reader is open (the caller raises SIGPIPE).
    pub(crate) fn write(
        self: &Arc<Pipe>,
        data: &[u8],
        resid: u64,
        nonblock: bool,
        w: &Waiter<'_>,
    ) -> Result<usize, Errno> {
        let _reg = w.register(self);
        let mut st = self.st.lock();
        if resid > PIPE_SIZE as u64 && st.cap <= PIPE_SIZE && st.buf.is_empty() && st.readers > 0 {
            let grown = self
                .big
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                    (n < MAX_BIG_PIPES).then_some(n + 1)
                })
                .is_ok();
            if grown {
                st.cap = BIG_PIPE_SIZE;
            }
        }
        let mut done = 0;
        loop {
            if st.readers == 0 {
                return Err(Errno::EPIPE);
            }
            if done == data.len() {
                return Ok(done);
            }
            let rem = data.len() - done;
            let room = st.cap - st.buf.len();
            let need = if rem <= PIPE_BUF { rem } else { 1 };
            if room >= need {
                let k = room.min(rem);
                st.buf.extend(&data[done..done + k]);
                done += k;
                self.cond.notify_all();
                if done == data.len() {
                    return Ok(done);
                }
                continue;
            }
            if nonblock || w.interrupted() {
                return match done {
                    0 if nonblock => Err(Errno::EAGAIN),
                    0 => Err(Errno::EINTR),
                    _ => Ok(done),
                };
            }
            w.wait(&self.cond, &mut st);
        }
    }

    /// fstat(2) of an end, as NetBSD's `pipe_stat`: st_dev, st_ino,
    /// st_nlink and st_rdev are left 0. The bytes sit on the read side:
    /// its size is what is buffered (one block while any) and its blksize
    /// the buffer's size; the write side has no buffer of its own, so size
    /// 0 and the read side's blksize (0 once the reader is gone).
    pub(crate) fn stat(&self, writer: bool) -> Stat {
        let st = self.st.lock();
        let mut s = Stat::default();
        s.st_mode.set(mode::S_IFIFO | 0o600);
        if writer {
            let blksize = if st.readers > 0 { st.cap } else { 0 };
            s.st_blksize.set(blksize as u32);
        } else {
            s.st_size.set(st.buf.len() as i64);
            s.st_blocks.set(i64::from(!st.buf.is_empty()));
            s.st_blksize.set(st.cap as u32);
        }
        s
    }
}
