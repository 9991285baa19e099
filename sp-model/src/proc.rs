//! Processes, their exit marks, and the waits that exit marks interrupt.

use super::file::FdTable;
use super::fs::VnodeRef;
use super::pipe::Pipe;
use parking_lot::{Condvar, Mutex, MutexGuard};
use sp_server::Port;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Longest process name kept (NetBSD's MAXCOMLEN).
pub(crate) const MAXCOMLEN: usize = 16;

/// The state of a process that its calls read and change.
pub(crate) struct ProcState {
    pub(crate) fds: FdTable,
    pub(crate) cwd: VnodeRef,
    pub(crate) umask: u32,
    pub(crate) comm: Vec<u8>,
    /// The client, for signals from other processes; `None` for init and
    /// for a prefork not yet attached.
    pub(crate) port: Option<Port>,
}

/// A process.
pub(crate) struct Proc {
    pub(crate) pid: i32,
    pub(crate) ppid: AtomicI32,
    /// Set by lwpexit, cleared by execnotify: new calls are refused.
    exiting: AtomicBool,
    /// Bumped by every lwpexit: a call that started under another
    /// generation is interrupted when it would wait.
    exit_gen: AtomicU64,
    /// Calls running in this process.
    pub(crate) threads: AtomicUsize,
    pub(crate) st: Mutex<ProcState>,
    /// Pipes that calls of this process wait on (one entry per waiting
    /// call), so lwpexit can wake them.
    waits: Mutex<Vec<Arc<Pipe>>>,
}

impl Proc {
    /// A process with state `st`.
    pub(crate) fn new(pid: i32, ppid: i32, st: ProcState) -> Proc {
        Proc {
            pid,
            ppid: AtomicI32::new(ppid),
            exiting: AtomicBool::new(false),
            exit_gen: AtomicU64::new(0),
            threads: AtomicUsize::new(0),
            st: Mutex::new(st),
            waits: Mutex::new(Vec::new()),
        }
    }

    /// The generation a starting call runs under, or `None` if the process
    /// refuses calls. (The generation is read first: an lwpexit after the
    /// check still bumps it past the one this call holds.)
    pub(crate) fn begin(&self) -> Option<u64> {
        let gen = self.exit_gen.load(SeqCst);
        (!self.exiting.load(SeqCst)).then_some(gen)
    }

    /// lwpexit: refuse new calls and wake every waiting one.
    pub(crate) fn mark_exit(&self) {
        self.exiting.store(true, SeqCst);
        self.exit_gen.fetch_add(1, SeqCst);
        let waits = self.waits.lock().clone();
        for p in waits {
            p.kick();
        }
    }

    /// execnotify: accept calls again.
    pub(crate) fn clear_exit(&self) {
        self.exiting.store(false, SeqCst);
    }

    /// Whether the process refuses calls.
    pub(crate) fn is_exiting(&self) -> bool {
        self.exiting.load(SeqCst)
    }
}

/// Counters of the calls in the kernel, with a condition variable so tests
/// can wait for a call to be in flight or blocked without sleeping.
///
/// The counters are atomics; the mutex is taken by an update only while
/// someone waits, so calls do not contend on it.
#[derive(Default)]
pub(crate) struct Stats {
    live: AtomicUsize,
    blocked: AtomicUsize,
    waiters: AtomicUsize,
    lock: Mutex<()>,
    cond: Condvar,
}

/// A snapshot of [`Stats`].
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub(crate) struct Counts {
    pub(crate) live: usize,
    pub(crate) blocked: usize,
}

impl Stats {
    fn changed(&self) {
        // A waiter counts itself before it checks under the lock, so either
        // it sees the new value or this notify reaches it.
        if self.waiters.load(SeqCst) > 0 {
            let _g = self.lock.lock();
            self.cond.notify_all();
        }
    }

    fn add(&self, c: &AtomicUsize) {
        c.fetch_add(1, SeqCst);
        self.changed();
    }

    fn sub(&self, c: &AtomicUsize) {
        c.fetch_sub(1, SeqCst);
        self.changed();
    }

    pub(crate) fn counts(&self) -> Counts {
        Counts {
            live: self.live.load(SeqCst),
            blocked: self.blocked.load(SeqCst),
        }
    }

    /// Waits until `pred` holds; false on timeout.
    pub(crate) fn wait_until(&self, timeout: Duration, pred: impl Fn(&Counts) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        self.waiters.fetch_add(1, SeqCst);
        let mut g = self.lock.lock();
        let ok = loop {
            if pred(&self.counts()) {
                break true;
            }
            if self.cond.wait_until(&mut g, deadline).timed_out() {
                break pred(&self.counts());
            }
        };
        drop(g);
        self.waiters.fetch_sub(1, SeqCst);
        ok
    }
}

/// Counts a call in flight (process threads and kernel-wide) while alive.
pub(crate) struct CallGuard<'a> {
    proc: &'a Proc,
    stats: &'a Stats,
}

impl<'a> CallGuard<'a> {
    pub(crate) fn enter(proc: &'a Proc, stats: &'a Stats) -> CallGuard<'a> {
        proc.threads.fetch_add(1, SeqCst);
        stats.add(&stats.live);
        CallGuard { proc, stats }
    }
}

impl Drop for CallGuard<'_> {
    fn drop(&mut self) {
        self.proc.threads.fetch_sub(1, SeqCst);
        self.stats.sub(&self.stats.live);
    }
}

/// How a call waits: interrupted by its process's lwpexit.
pub(crate) struct Waiter<'a> {
    pub(crate) proc: &'a Proc,
    pub(crate) gen: u64,
    pub(crate) stats: &'a Stats,
}

/// A pipe registered as waited on by a call; unregistered when dropped.
pub(crate) struct WaitReg<'a> {
    proc: &'a Proc,
    pipe: Arc<Pipe>,
}

impl Drop for WaitReg<'_> {
    fn drop(&mut self) {
        let mut w = self.proc.waits.lock();
        if let Some(i) = w.iter().position(|p| Arc::ptr_eq(p, &self.pipe)) {
            w.swap_remove(i);
        }
    }
}

impl<'a> Waiter<'a> {
    /// Whether the process was told to exit since the call began.
    pub(crate) fn interrupted(&self) -> bool {
        self.proc.exit_gen.load(SeqCst) != self.gen
    }

    /// Registers `pipe` so lwpexit can wake this call. Must come before the
    /// call takes the pipe's lock and checks [`Waiter::interrupted`]: then
    /// either lwpexit sees the registration or the call sees the new
    /// generation.
    pub(crate) fn register(&self, pipe: &Arc<Pipe>) -> WaitReg<'a> {
        self.proc.waits.lock().push(pipe.clone());
        WaitReg {
            proc: self.proc,
            pipe: pipe.clone(),
        }
    }

    /// Waits on `cond`, counted as blocked.
    pub(crate) fn wait<T>(&self, cond: &Condvar, g: &mut MutexGuard<'_, T>) {
        self.stats.add(&self.stats.blocked);
        cond.wait(g);
        self.stats.sub(&self.stats.blocked);
    }
}
