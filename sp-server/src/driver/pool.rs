//! The worker pool that runs system calls.
//!
//! A call that blocks in the kernel holds its thread for as long as it
//! blocks, so a fixed pool (the reference's 128) starves everyone once that
//! many calls block. Here a job never waits for a thread: if no idle worker
//! is free to take it, a new one is started. Idle workers beyond
//! `max_idle` exit, so the thread count follows the number of calls in
//! flight, not the number of clients.

use parking_lot::{Condvar, Mutex};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

type Job = Box<dyn FnOnce() + Send + 'static>;

struct State {
    queue: VecDeque<Job>,
    /// Workers waiting for a job.
    idle: usize,
    /// Workers alive.
    total: usize,
    shutting_down: bool,
}

struct Inner {
    state: Mutex<State>,
    cv: Condvar,
    /// Signalled when the last worker exits after shutdown.
    gone: Condvar,
    max_idle: usize,
    idle_linger: Duration,
}

/// Counts of the pool's threads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Worker threads alive.
    pub threads: usize,
    /// Of those, waiting for work.
    pub idle: usize,
    /// Jobs queued and not yet taken.
    pub queued: usize,
}

/// A pool of worker threads that grows on demand and shrinks when idle.
#[derive(Clone)]
pub(crate) struct Pool {
    inner: Arc<Inner>,
}

impl Pool {
    pub(crate) fn new(max_idle: usize, idle_linger: Duration) -> Pool {
        Pool {
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    queue: VecDeque::new(),
                    idle: 0,
                    total: 0,
                    shutting_down: false,
                }),
                cv: Condvar::new(),
                gone: Condvar::new(),
                max_idle,
                idle_linger,
            }),
        }
    }

    /// Runs `job` on a worker: an idle one if any is free, else a new one.
    pub(crate) fn execute(&self, job: impl FnOnce() + Send + 'static) {
        let mut st = self.inner.state.lock();
        st.queue.push_back(Box::new(job));
        if st.idle >= st.queue.len() {
            self.inner.cv.notify_one();
            return;
        }
        st.total += 1;
        drop(st);
        let inner = self.inner.clone();
        let spawned = std::thread::Builder::new()
            .name("sp-worker".into())
            .stack_size(256 * 1024)
            .spawn(move || worker(inner));
        if let Err(e) = spawned {
            // The job stays queued for a busy worker to take when it is done.
            tracing::error!("cannot start a worker thread: {e}");
            self.inner.state.lock().total -= 1;
        }
    }

    pub(crate) fn stats(&self) -> PoolStats {
        let st = self.inner.state.lock();
        PoolStats {
            threads: st.total,
            idle: st.idle,
            queued: st.queue.len(),
        }
    }

    /// Lets idle workers exit and waits up to `timeout` for all to be gone.
    pub(crate) fn shutdown(&self, timeout: Duration) -> bool {
        let mut st = self.inner.state.lock();
        st.shutting_down = true;
        self.inner.cv.notify_all();
        let deadline = std::time::Instant::now() + timeout;
        while st.total > 0 {
            if self.inner.gone.wait_until(&mut st, deadline).timed_out() {
                return false;
            }
        }
        true
    }
}

fn worker(inner: Arc<Inner>) {
    let mut st = inner.state.lock();
    loop {
        if let Some(job) = st.queue.pop_front() {
            drop(st);
            job();
            st = inner.state.lock();
            continue;
        }
        if st.shutting_down || st.idle >= inner.max_idle {
            break;
        }
        st.idle += 1;
        let timed_out = inner.cv.wait_for(&mut st, inner.idle_linger).timed_out();
        st.idle -= 1;
        if timed_out && st.queue.is_empty() {
            break;
        }
    }
    st.total -= 1;
    if st.total == 0 {
        inner.gone.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Barrier;

    #[test]
    fn blocked_jobs_never_starve_a_new_one() {
        let pool = Pool::new(4, Duration::from_secs(10));
        let n = 200;
        let barrier = Arc::new(Barrier::new(n + 1));
        for _ in 0..n {
            let b = barrier.clone();
            pool.execute(move || {
                b.wait();
            });
        }
        // 200 jobs block until the barrier opens; one more must still run.
        let (tx, rx) = crossbeam_channel::bounded(1);
        pool.execute(move || tx.send(()).unwrap());
        rx.recv_timeout(Duration::from_secs(10))
            .expect("a runnable job found a thread");
        // Counted while every blocked job still holds its thread (once the
        // barrier opens, threads past the idle bound exit).
        assert!(pool.stats().threads > n);
        barrier.wait();
    }

    #[test]
    fn idle_threads_are_bounded() {
        let pool = Pool::new(2, Duration::from_secs(30));
        let n = 16;
        let barrier = Arc::new(Barrier::new(n + 1));
        let (tx, rx) = crossbeam_channel::unbounded();
        for _ in 0..n {
            let b = barrier.clone();
            let tx = tx.clone();
            pool.execute(move || {
                b.wait();
                tx.send(()).unwrap();
            });
        }
        barrier.wait();
        for _ in 0..n {
            rx.recv_timeout(Duration::from_secs(10)).unwrap();
        }
        // Every job is done; wait until the workers have settled.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let s = pool.stats();
            if s.threads == s.idle && s.threads <= 2 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "workers did not settle: {s:?}"
            );
            std::thread::yield_now();
        }
        assert!(pool.shutdown(Duration::from_secs(10)));
        assert_eq!(pool.stats().threads, 0);
    }
}
