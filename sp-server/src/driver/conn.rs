//! One client connection as the driver's threads see it: the send side
//! with its bounded queue, the table of kernel threads waiting for the
//! client's answers, and the ports a kernel reaches the client through.
//! The protocol state (phase, process, calls in flight, exec) is the
//! core's; a call's completion goes back to it through [`Completions`].

use crate::core::{ConnHandle, Delivery, Done, DropReason, Segments};
use crate::kernel::ClientPort;
use mio::unix::SourceFd;
use mio::{Interest, Registry, Token, Waker};
use parking_lot::{Condvar, Mutex, MutexGuard};
use rustix::event::{poll, PollFd, PollFlags, Timespec};
use sp_proto::{Errno, Message, SysResult};
use sp_transport::Stream;
use std::collections::{HashMap, VecDeque};
use std::io::{self, IoSlice, Write};
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
struct SendState {
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
    waker: Waker,
    /// System calls handed to the driver and not yet done (a counter for
    /// `Stats`, kept current without waking the loop).
    pub(crate) syscalls: AtomicUsize,
}

impl Completions {
    pub(crate) fn new(waker: Waker) -> Completions {
        Completions {
            done: Mutex::new(Vec::new()),
            waker,
            syscalls: AtomicUsize::new(0),
        }
    }

    /// Swaps the completions left so far into `out` (empty on entry).
    pub(crate) fn take(&self, out: &mut Vec<Done>) {
        std::mem::swap(&mut *self.done.lock(), out);
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
    send: Mutex<SendState>,
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
        let total = head.len() + payload.len();
        while *written < total {
            let res = if *written < head.len() && payload.is_empty() {
                // A plain send(2) is cheaper than sendmsg(2) for the
                // common bodiless frame (a syscall answer).
                (&self.stream).write(&head[*written..])
            } else if *written < head.len() {
                let bufs = [IoSlice::new(&head[*written..]), IoSlice::new(payload)];
                (&self.stream).write_vectored(&bufs)
            } else {
                (&self.stream).write(&payload[*written - head.len()..])
            };
            match res {
                Ok(0) => return Err(DropReason::Io(io::ErrorKind::WriteZero)),
                Ok(n) => {
                    *written += n;
                    self.sent.fetch_add(n as u64, Ordering::Relaxed);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(DropReason::Io(e.kind())),
            }
        }
        Ok(())
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

    fn fail_send(&self, st: &mut SendState, why: DropReason) -> Result<(), Errno> {
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
    fn complete(&self, done: Option<Done>) {
        let Some(done) = done else { return };
        let c = &self.completions;
        c.done.lock().push(done);
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
    fn request(
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

    fn next(&self) -> u64 {
        self.next_reqno.fetch_add(1, Ordering::Relaxed)
    }
}

/// The port a kernel uses to reach the client of one connection; the one
/// handed to a system call also knows that call, for
/// [`ClientPort::answer_now`], the segments its request carried, and the
/// copyouts it holds back. Small: a kernel keeps one per process.
pub(crate) struct ConnPort {
    conn: Arc<Conn>,
    /// The request number of the call served, and whether its answer has
    /// been sent already.
    call: Option<(u64, AtomicBool)>,
    /// Whether this port's thread may wait for the client to read (a
    /// worker's may; the event loop's, and a port kept by the kernel,
    /// which may be used from any thread, may not).
    may_wait: bool,
    /// The bytes of buffers the call reads, sent with it (SYSCALL_SEG).
    segs: Option<Box<Segments>>,
    /// The call's completion for the core, handed over with its answer.
    done: Mutex<Option<Done>>,
    /// The call's small copyouts not written yet, as whole frames: they go
    /// out with its answer in one write (one wakeup of the client instead
    /// of two), or before anything else the call sends. Allocated when
    /// the first is held (boxed, so the port stays small).
    #[allow(clippy::box_collection)]
    held: Mutex<Option<Box<Vec<u8>>>>,
}

/// Most bytes of copyout frames a call holds back to send with its answer;
/// a larger copyout is written at once, from the kernel's buffer.
const HOLD_MAX: usize = 64 << 10;

impl ConnPort {
    /// The connection's port, tied to no call (for the kernel to keep).
    pub(crate) fn new(conn: Arc<Conn>) -> ConnPort {
        ConnPort {
            conn,
            call: None,
            may_wait: false,
            segs: None,
            done: Mutex::new(None),
            held: Mutex::new(None),
        }
    }

    /// The port handed to the system call numbered `reqno`, run on a
    /// worker (`may_wait`) or on the event loop, serving its copies from
    /// `segs` where they hold them; `done` goes back to the core with its
    /// answer (a worker's call) or is handed back by the loop itself.
    pub(crate) fn for_call(
        conn: Arc<Conn>,
        reqno: u64,
        may_wait: bool,
        segs: Option<Box<Segments>>,
        done: Option<Done>,
    ) -> ConnPort {
        ConnPort {
            conn,
            call: Some((reqno, AtomicBool::new(false))),
            may_wait,
            segs,
            done: Mutex::new(done),
            held: Mutex::new(None),
        }
    }

    fn segs(&self) -> Option<&Segments> {
        self.segs.as_deref()
    }

    fn send(&self, msg: &Message<'_>) -> Result<(), Errno> {
        self.release()?;
        let enc = msg.encode();
        self.conn
            .send_parts(enc.head(), enc.payload, self.may_wait, None)
    }

    /// Writes the copyouts held back, if any: before anything else the
    /// call sends, so the client sees its frames in the kernel's order.
    fn release(&self) -> Result<(), Errno> {
        match self.held.lock().take() {
            Some(held) => self.conn.send_parts(&held, &[], self.may_wait, None),
            None => Ok(()),
        }
    }

    /// Holds a copyout frame back to go with the answer, if this port
    /// serves a call and there is room; false if it must be sent now.
    fn hold(&self, msg: &Message<'_>) -> bool {
        if self.call.is_none() {
            return false;
        }
        let mut held = self.held.lock();
        let have = held.as_ref().map_or(0, |h| h.len());
        if have + msg.encoded_len() > HOLD_MAX {
            return false;
        }
        msg.encode_into(held.get_or_insert_with(Box::default));
        true
    }

    /// Sends the call's answer unless [`ClientPort::answer_now`] did, in
    /// one write with the copyouts held back; the call's completion goes
    /// to the core with the first answer sent.
    pub(crate) fn answer(&self, res: SysResult) {
        let done = self.done.lock().take();
        let Some((reqno, answered)) = &self.call else {
            return self.conn.complete(done);
        };
        if answered.swap(true, Ordering::AcqRel) {
            return self.conn.complete(done);
        }
        let msg = syscall_answer(*reqno, res);
        let held = self.held.lock().take();
        let _ = match held {
            None => {
                let enc = msg.encode();
                let wait = self.may_wait;
                self.conn.send_parts(enc.head(), enc.payload, wait, done)
            }
            Some(mut held) => {
                msg.encode_into(&mut held);
                self.conn.send_parts(&held, &[], self.may_wait, done)
            }
        };
    }
}

/// The SYSCALL response for a kernel's result.
pub(crate) fn syscall_answer(reqno: u64, res: SysResult) -> Message<'static> {
    let (error, retval) = match res {
        Ok(rv) => (0, rv),
        Err(e) => (e.0, [0, 0]),
    };
    Message::SyscallResp {
        reqno,
        error,
        retval,
    }
}

/// The port of a call run on the event-loop thread: it must not wait for
/// the client (the loop is what would read the answer), so the waiting
/// operations fail at once.
pub(crate) struct InlinePort<'a>(pub(crate) &'a ConnPort);

impl ClientPort for InlinePort<'_> {
    fn copyin(&self, addr: u64, buf: &mut [u8]) -> Result<(), Errno> {
        // The request's segments need no wait; anything else would.
        match self.0.segs() {
            Some(s) if s.copyin(addr, buf) => Ok(()),
            _ => Err(Errno::EFAULT),
        }
    }

    fn copyin_vec(&self, addr: u64, len: usize) -> Result<Vec<u8>, Errno> {
        let segs = self.0.segs();
        segs.and_then(|s| s.copyin_vec(addr, len))
            .ok_or(Errno::EFAULT)
    }

    fn copyinstr(&self, addr: u64, maxlen: usize) -> Result<Vec<u8>, Errno> {
        let segs = self.0.segs();
        segs.and_then(|s| s.copyinstr(addr, maxlen))
            .unwrap_or(Err(Errno::EFAULT))
    }

    fn copyout(&self, addr: u64, data: &[u8]) -> Result<(), Errno> {
        self.0.copyout(addr, data)
    }

    fn copyoutstr(&self, addr: u64, data: &[u8]) -> Result<(), Errno> {
        self.0.copyoutstr(addr, data)
    }

    fn anonmmap(&self, _size: u64) -> Result<u64, Errno> {
        Err(Errno::EFAULT)
    }

    fn raise(&self, signo: u32) -> Result<(), Errno> {
        self.0.raise(signo)
    }

    fn answer_now(&self, result: SysResult) -> Result<(), Errno> {
        self.0.answer_now(result)
    }

    fn disconnect(&self) {
        self.0.disconnect()
    }
}

impl ClientPort for ConnPort {
    fn copyin(&self, addr: u64, buf: &mut [u8]) -> Result<(), Errno> {
        if let Some(s) = self.segs() {
            if s.copyin(addr, buf) {
                return Ok(());
            }
        }
        buf.copy_from_slice(&self.copyin_vec(addr, buf.len())?);
        Ok(())
    }

    fn copyin_vec(&self, addr: u64, len: usize) -> Result<Vec<u8>, Errno> {
        if let Some(v) = self.segs().and_then(|s| s.copyin_vec(addr, len)) {
            return Ok(v);
        }
        let want = len as u64;
        self.release().map_err(|_| Errno::EFAULT)?;
        let data = self
            .conn
            .request(WaitKind::Copyin, |reqno| Message::CopyinReq {
                reqno,
                string: false,
                len: want,
                addr,
            })?;
        // A short or long answer is a bad copy, never a read past the bytes.
        if data.len() != len {
            return Err(Errno::EFAULT);
        }
        Ok(data)
    }

    fn copyinstr(&self, addr: u64, maxlen: usize) -> Result<Vec<u8>, Errno> {
        if let Some(r) = self.segs().and_then(|s| s.copyinstr(addr, maxlen)) {
            return r;
        }
        let len = maxlen as u64;
        self.release().map_err(|_| Errno::EFAULT)?;
        let mut data = self
            .conn
            .request(WaitKind::Copyin, |reqno| Message::CopyinReq {
                reqno,
                string: true,
                len,
                addr,
            })?;
        if data.len() > maxlen {
            return Err(Errno::EFAULT);
        }
        match data.iter().position(|&b| b == 0) {
            Some(nul) => {
                data.truncate(nul);
                Ok(data)
            }
            None if data.len() == maxlen => Err(Errno::ENAMETOOLONG),
            None => Err(Errno::EFAULT),
        }
    }

    fn copyout(&self, addr: u64, data: &[u8]) -> Result<(), Errno> {
        if self.conn.is_dead() {
            return Err(Errno::EFAULT);
        }
        if let Some(s) = self.segs() {
            s.wrote(addr, data.len());
        }
        let reqno = self.conn.next();
        let msg = Message::Copyout {
            reqno,
            string: false,
            addr,
            data,
        };
        if self.hold(&msg) {
            return Ok(());
        }
        self.send(&msg).map_err(|_| Errno::EFAULT)
    }

    fn copyoutstr(&self, addr: u64, data: &[u8]) -> Result<(), Errno> {
        // The reference sends COPYOUT for both; so do we, for its clients.
        self.copyout(addr, data)
    }

    fn anonmmap(&self, size: u64) -> Result<u64, Errno> {
        // A failed request is EFAULT, a client that could not map ENOMEM,
        // as in the reference.
        self.release().map_err(|_| Errno::EFAULT)?;
        let data = self
            .conn
            .request(WaitKind::Anonmmap, |reqno| Message::AnonmmapReq {
                reqno,
                size,
            })?;
        let bytes: [u8; 8] = data.as_slice().try_into().map_err(|_| Errno::EFAULT)?;
        match u64::from_le_bytes(bytes) {
            0 => Err(Errno::ENOMEM),
            addr => Ok(addr),
        }
    }

    fn raise(&self, signo: u32) -> Result<(), Errno> {
        if self.conn.is_dead() {
            return Err(Errno::ESRCH);
        }
        // Never waits, even on a worker: a signal may be raised from any
        // thread (kill from another process).
        if let Some(held) = self.held.lock().take() {
            self.conn
                .send_parts(&held, &[], false, None)
                .map_err(|_| Errno::ESRCH)?;
        }
        self.conn
            .send(&Message::Raise { reqno: 0, signo })
            .map_err(|_| Errno::ESRCH)
    }

    fn answer_now(&self, result: SysResult) -> Result<(), Errno> {
        match &self.call {
            Some(_) => {
                self.answer(result);
                Ok(())
            }
            None => Err(Errno::EOPNOTSUPP),
        }
    }

    fn disconnect(&self) {
        tracing::warn!("{}: ended by the kernel", self.conn.describe());
        let mut st = self.conn.send.lock();
        let _ = self.conn.fail_send(&mut st, DropReason::KernelEnded);
    }
}
