//! One client connection as the driver's threads see it: the send side
//! with its bounded queue, the table of kernel threads waiting for the
//! client's answers.
//! The protocol state (phase, process, calls in flight, exec) is the
//! core's; a call's completion goes back to it through [`Completions`].

use crate::core::{ConnHandle, Delivery, Done, DropReason};
use mio::unix::SourceFd;
use mio::{Interest, Registry, Token, Waker};
use parking_lot::{Condvar, Mutex, MutexGuard};
use rustix::event::{poll, PollFd, PollFlags, Timespec};
use sp_proto::{Errno, Message};
use sp_transport::Stream;
use std::collections::{HashMap, VecDeque};
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a waiting kernel thread expects as the answer.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum WaitKind {
    Copyin,
    Anonmmap,
}

struct Waiter {
    kind: WaitKind,
    slot: Arc<Slot>,
}

/// Where a client's answer is handed to the kernel thread waiting for it.
/// A mutex and a condition variable: the waiter sleeps at once (a channel
/// that spins and yields first costs context switches on a busy CPU).
#[derive(Default)]
struct Slot {
    answer: Mutex<Option<Result<Vec<u8>, Errno>>>,
    ready: Condvar,
}

impl Slot {
    fn put(&self, res: Result<Vec<u8>, Errno>) {
        *self.answer.lock() = Some(res);
        self.ready.notify_one();
    }

    fn take(&self) -> Result<Vec<u8>, Errno> {
        let mut a = self.answer.lock();
        loop {
            if let Some(res) = a.take() {
                return res;
            }
            self.ready.wait(&mut a);
        }
    }
}

#[derive(Default)]
pub(crate) struct SendState {
    /// Bytes not yet written, oldest first.
    queue: VecDeque<Vec<u8>>,
    /// Offset into the front buffer already written.
    front_off: usize,
    queued: usize,
    /// Whether WRITABLE interest is registered.
    want_write: bool,
    /// Shut the socket down once the queue is empty.
    close_after_flush: bool,
    closed: bool,
    /// Why the send side dropped the client, for the core.
    drop_reason: Option<DropReason>,
    /// A worker is writing a frame straight from its own buffer, outside
    /// the lock; nobody else writes to the socket meanwhile.
    streaming: bool,
}

/// Where workers leave their calls' completions for the event loop,
/// which hands them to the core at its next turn. The loop is woken only
/// for a connection whose core waits on its calls (an exec, a teardown):
/// every other completion rides along with the loop's next wakeup, which
/// the client's next request brings anyway.
pub(crate) struct Completions {
    done: Mutex<Vec<Done>>,
    /// Whether `done` may hold any: the loop looks here, not in the
    /// lock, on every turn.
    any: AtomicBool,
    waker: Waker,
    /// System calls handed to the driver and not yet done (a counter for
    /// `Stats`, kept current without waking the loop).
    pub(crate) syscalls: AtomicUsize,
}

impl Completions {
    pub(crate) fn new(waker: Waker) -> Completions {
        Completions {
            done: Mutex::new(Vec::new()),
            any: AtomicBool::new(false),
            waker,
            syscalls: AtomicUsize::new(0),
        }
    }

    /// Swaps the completions left so far into `out` (empty on entry).
    pub(crate) fn take(&self, out: &mut Vec<Done>) {
        if !self.any.load(Ordering::Acquire) {
            return;
        }
        let mut done = self.done.lock();
        self.any.store(false, Ordering::Relaxed);
        std::mem::swap(&mut *done, out);
    }

    pub(crate) fn wake(&self) {
        let _ = self.waker.wake();
    }
}

/// The shared half of a connection.
pub(crate) struct Conn {
    pub(crate) token: Token,
    /// The core's name for it.
    pub(crate) handle: ConnHandle,
    pub(crate) stream: Stream,
    registry: Arc<Registry>,
    pub(crate) send: Mutex<SendState>,
    /// Signalled when the queue empties, a streaming worker finishes, or
    /// the connection closes.
    drained: Condvar,
    send_limit: usize,
    /// How long a worker's send waits for a client that reads nothing.
    stall: Duration,
    /// Bytes written by workers' sends, to tell a slow reader from one
    /// that reads nothing.
    sent: AtomicU64,
    waiters: Mutex<HashMap<u64, Waiter>>,
    next_reqno: AtomicU64,
    pub(crate) dead: AtomicBool,
    /// The core waits on this connection's calls (an exec or a teardown):
    /// a completion wakes the loop.
    pub(crate) watch: AtomicBool,
    completions: Arc<Completions>,
    /// Process name and pid for log lines, set at handshake.
    pub(crate) ident: Mutex<(i32, String)>,
}

impl Conn {
    pub(crate) fn new(
        handle: ConnHandle,
        stream: Stream,
        registry: Arc<Registry>,
        completions: Arc<Completions>,
        send_limit: usize,
        stall: Duration,
    ) -> Conn {
        Conn {
            token: Token(handle.index()),
            handle,
            stream,
            registry,
            send: Mutex::new(SendState::default()),
            drained: Condvar::new(),
            send_limit,
            stall,
            sent: AtomicU64::new(0),
            waiters: Mutex::new(HashMap::new()),
            next_reqno: AtomicU64::new(0),
            dead: AtomicBool::new(false),
            watch: AtomicBool::new(false),
            completions,
            ident: Mutex::new((0, String::new())),
        }
    }

    /// "pid 3 (comm) from peer" for log lines.
    pub(crate) fn describe(&self) -> String {
        let id = self.ident.lock();
        if id.0 > 0 {
            format!(
                "client pid {} ({}) from {}",
                id.0,
                id.1,
                self.stream.peer_label()
            )
        } else {
            format!("client from {} (no handshake)", self.stream.peer_label())
        }
    }

    pub(crate) fn is_dead(&self) -> bool {
        self.dead.load(Ordering::Acquire)
    }

    fn set_interest(&self, write: bool) {
        let interest = if write {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        };
        let fd = self.stream.as_raw_fd();
        if let Err(e) = self
            .registry
            .reregister(&mut SourceFd(&fd), self.token, interest)
        {
            tracing::debug!("reregister {}: {e}", self.describe());
        }
    }

    /// Queues or writes one frame. Never blocks (for the event loop):
    /// what the socket does not take now is queued, and a queue over the
    /// limit ends the connection.
    pub(crate) fn send(&self, msg: &Message<'_>) -> Result<(), Errno> {
        let enc = msg.encode();
        self.send_parts(enc.head(), enc.payload, false, None)
    }

    /// Writes one frame from a worker thread, which may wait: what the
    /// socket does not take at once is written from the caller's buffer
    /// as the client reads (no copy, no queue), and a client is dropped
    /// only when it takes nothing for the stall timeout. A large answer
    /// to a client that reads steadily always gets through.
    pub(crate) fn send_waiting(&self, msg: &Message<'_>) -> Result<(), Errno> {
        let enc = msg.encode();
        self.send_parts(enc.head(), enc.payload, true, None)
    }

    /// Queues or writes `head` then `payload` as one unit; `wait` as in
    /// [`Conn::send_waiting`]. A call's completion `done` is handed to the
    /// loop once this frame's place in the stream is taken (under the
    /// send lock, before its first byte): whatever the loop sends because
    /// the call is done (an exec's answer) goes after it, and a client
    /// that has read it finds its slot free.
    pub(crate) fn send_parts(
        &self,
        head: &[u8],
        payload: &[u8],
        wait: bool,
        done: Option<Done>,
    ) -> Result<(), Errno> {
        let mut st = self.send.lock();
        let mut done = done;
        let total = head.len() + payload.len();
        if wait {
            // Someone is ahead: wait for them rather than grow the queue
            // past its bound. The one streaming is usually a worker
            // preempted right after its write (its client woken on this
            // CPU). Over tcp one yield lets it finish without a sleep and a
            // wakeup; over a unix socket a yield tends to go elsewhere and
            // only costs (measured pinned to one CPU: a 4 KiB write with a
            // COPYIN 23.5 us over tcp without the yield, 22.6 with it; over
            // unix 20.5 without, 21.7 with).
            let yields = if matches!(self.stream, Stream::Tcp(_)) {
                1
            } else {
                0
            };
            let mut spins = 0;
            let mut deadline = None;
            let mut seen = self.sent.load(Ordering::Relaxed);
            // A worker streams (everything after it waits), or the queue
            // would pass its bound.
            while !st.closed
                && (st.streaming || (!st.queue.is_empty() && st.queued + total > self.send_limit))
            {
                if st.streaming && spins < yields {
                    spins += 1;
                    MutexGuard::unlocked(&mut st, std::thread::yield_now);
                    continue;
                }
                let until = *deadline.get_or_insert_with(|| Instant::now() + self.stall);
                if self.drained.wait_until(&mut st, until).timed_out() {
                    // Dropped only if nothing at all went out meanwhile.
                    let now = self.sent.load(Ordering::Relaxed);
                    if now == seen {
                        self.complete(done.take());
                        return self.fail_send(&mut st, DropReason::SendStalled(self.stall));
                    }
                    seen = now;
                    deadline = Some(Instant::now() + self.stall);
                }
            }
        }
        self.complete(done.take());
        if st.closed {
            return Err(Errno::ENOTCONN);
        }
        let mut written = 0;
        if st.queue.is_empty() && !st.streaming {
            if !wait {
                if let Err(why) = self.write_some(head, payload, &mut written) {
                    return self.fail_send(&mut st, why);
                }
            }
            if written < total && wait {
                // Written with the lock released: a worker whose send(2)
                // wakes its client on the same CPU is preempted right
                // there, and must not hold up every other sender (they
                // would spin on the lock) until it runs again.
                st.streaming = true;
                drop(st);
                let res = self.stream_rest(head, payload, &mut written);
                let mut st = self.send.lock();
                st.streaming = false;
                self.drained.notify_all();
                if let Err(why) = res {
                    return self.fail_send(&mut st, why);
                }
                if !st.queue.is_empty() {
                    // Frames queued meanwhile: the loop writes them.
                    st.want_write = true;
                    self.set_interest(true);
                } else if st.close_after_flush {
                    self.close_now(&mut st);
                }
                return Ok(());
            }
        }
        if written < total {
            let mut rest = Vec::with_capacity(total - written);
            if written < head.len() {
                rest.extend_from_slice(&head[written..]);
                rest.extend_from_slice(payload);
            } else {
                rest.extend_from_slice(&payload[written - head.len()..]);
            }
            st.queued += rest.len();
            st.queue.push_back(rest);
            if st.queued > self.send_limit {
                return self.fail_send(&mut st, DropReason::SendQueueFull(self.send_limit));
            }
            if !st.want_write || st.streaming {
                st.want_write = true;
                if !st.streaming {
                    self.set_interest(true);
                }
            }
        } else if st.close_after_flush && st.queue.is_empty() && !st.streaming {
            self.close_now(&mut st);
        }
        Ok(())
    }

    /// Writes what the socket takes now of `head` then `payload`, from
    /// offset `*written`, without waiting. `Err` is why the socket failed.
    fn write_some(
        &self,
        head: &[u8],
        payload: &[u8],
        written: &mut usize,
    ) -> Result<(), DropReason> {
        let before = *written;
        let res = sp_transport::write_some(&self.stream, head, payload, written);
        // Counted on error too: what went out before it went out.
        let n = (*written - before) as u64;
        if n > 0 {
            self.sent.fetch_add(n, Ordering::Relaxed);
        }
        res.map(drop).map_err(|e| DropReason::Io(e.kind()))
    }

    /// The rest of a frame, as the socket takes it, waiting for room (at
    /// most the stall timeout each time nothing moves). Called with
    /// `streaming` set and the lock released.
    fn stream_rest(
        &self,
        head: &[u8],
        payload: &[u8],
        written: &mut usize,
    ) -> Result<(), DropReason> {
        let total = head.len() + payload.len();
        while *written < total {
            let before = *written;
            self.write_some(head, payload, written)?;
            if *written == before {
                let fd = self.stream.as_fd();
                let mut fds = [PollFd::new(&fd, PollFlags::OUT)];
                let timeout = Timespec::try_from(self.stall).unwrap_or(Timespec {
                    tv_sec: i64::MAX,
                    tv_nsec: 0,
                });
                match poll(&mut fds, Some(&timeout)) {
                    Ok(0) => return Err(DropReason::SendStalled(self.stall)),
                    Ok(_) => {
                        if fds[0].revents().intersects(PollFlags::ERR | PollFlags::HUP) {
                            return Err(DropReason::Io(io::ErrorKind::BrokenPipe));
                        }
                    }
                    Err(e) if e == rustix::io::Errno::INTR => {}
                    Err(e) => return Err(DropReason::Io(io::Error::from(e).kind())),
                }
            }
        }
        Ok(())
    }

    pub(crate) fn fail_send(&self, st: &mut SendState, why: DropReason) -> Result<(), Errno> {
        if !st.closed && st.drop_reason.is_none() {
            st.drop_reason = Some(why);
        }
        self.close_now(st);
        Err(Errno::ENOTCONN)
    }

    fn close_now(&self, st: &mut SendState) {
        st.closed = true;
        st.queue.clear();
        st.queued = 0;
        self.drained.notify_all();
        // The event loop sees the hangup and tears the connection down.
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }

    /// Writes queued bytes; called by the loop when the socket is writable.
    pub(crate) fn flush(&self) {
        let mut st = self.send.lock();
        if st.streaming {
            // The worker writing now re-arms us when it is done.
            return;
        }
        while let Some(front) = st.queue.front() {
            let off = st.front_off;
            let front_len = front.len();
            match (&self.stream).write(&front[off..]) {
                Ok(0) => {
                    let _ = self.fail_send(&mut st, DropReason::Io(io::ErrorKind::WriteZero));
                    return;
                }
                Ok(n) => {
                    self.sent.fetch_add(n as u64, Ordering::Relaxed);
                    st.queued -= n;
                    if off + n == front_len {
                        st.queue.pop_front();
                        st.front_off = 0;
                    } else {
                        st.front_off += n;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let _ = self.fail_send(&mut st, DropReason::Io(e.kind()));
                    return;
                }
            }
        }
        if st.want_write {
            st.want_write = false;
            self.set_interest(false);
        }
        self.drained.notify_all();
        if st.close_after_flush {
            self.close_now(&mut st);
        }
    }

    /// Shuts the connection down once what is queued (an ERROR answer) is
    /// written.
    pub(crate) fn send_and_close_queued(&self) {
        let mut st = self.send.lock();
        st.close_after_flush = true;
        if st.queue.is_empty() && !st.streaming && !st.closed {
            self.close_now(&mut st);
        }
    }

    /// Why the send side dropped the client, if it did.
    pub(crate) fn drop_reason(&self) -> Option<DropReason> {
        self.send.lock().drop_reason.clone()
    }

    /// Hands a finished call to the loop (see [`Conn::send_parts`]); wakes
    /// it if the core waits on this connection.
    pub(crate) fn complete(&self, done: Option<Done>) {
        let Some(done) = done else { return };
        let c = &self.completions;
        {
            let mut q = c.done.lock();
            q.push(done);
            c.any.store(true, Ordering::Release);
        }
        c.syscalls.fetch_sub(1, Ordering::Relaxed);
        if self.watch.load(Ordering::Acquire) {
            c.wake();
        }
    }

    /// Shuts the connection down at once.
    pub(crate) fn close(&self) {
        let mut st = self.send.lock();
        self.close_now(&mut st);
    }

    /// Hands a client's answer to the kernel thread waiting for it.
    /// Returns false if nobody waits for `reqno` (the answer is dropped).
    pub(crate) fn deliver(&self, reqno: u64, delivery: Delivery) -> bool {
        let Some(w) = self.waiters.lock().remove(&reqno) else {
            return false;
        };
        let res = match (delivery, w.kind) {
            (Delivery::Copyin(v), WaitKind::Copyin)
            | (Delivery::Anonmmap(v), WaitKind::Anonmmap) => Ok(v),
            // An ERROR frame, or an answer of the wrong type: the copy fails.
            _ => Err(Errno::EFAULT),
        };
        w.slot.put(res);
        true
    }

    /// Fails every waiting copy: the connection is gone.
    pub(crate) fn wake_all(&self) {
        for (_, w) in self.waiters.lock().drain() {
            w.slot.put(Err(Errno::EFAULT));
        }
    }

    /// Sends a request and waits for the client's answer.
    pub(crate) fn request(
        &self,
        kind: WaitKind,
        make: impl FnOnce(u64) -> Message<'static>,
    ) -> Result<Vec<u8>, Errno> {
        if self.is_dead() {
            return Err(Errno::EFAULT);
        }
        let reqno = self.next();
        let slot = Arc::new(Slot::default());
        self.waiters.lock().insert(
            reqno,
            Waiter {
                kind,
                slot: slot.clone(),
            },
        );
        // Checked after registering, so a disconnect cannot slip between.
        if self.is_dead() || self.send_waiting(&make(reqno)).is_err() {
            self.waiters.lock().remove(&reqno);
            return Err(Errno::EFAULT);
        }
        slot.take()
    }

    pub(crate) fn next(&self) -> u64 {
        self.next_reqno.fetch_add(1, Ordering::Relaxed)
    }
}
