//! The ports a kernel reaches a client through: one per process (kept by
//! the kernel, for signals), and one per system call, which knows its call
//! (its answer, the segments its request carried, the copyouts it holds
//! back to send with its answer).

use crate::core::{Done, DropReason, Segments};
use crate::driver::conn::{Conn, WaitKind};
use crate::kernel::ClientPort;
use parking_lot::Mutex;
use sp_proto::{Errno, Message, SysResult};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

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
    done: Option<Done>,
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
            done: None,
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
            done,
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

    /// The call returned: sends its answer unless
    /// [`ClientPort::answer_now`] did, in one write with the copyouts held
    /// back, and hands its completion to the core (with the answer, or at
    /// once if the answer went out early).
    pub(crate) fn finish(self, res: SysResult) {
        let done = self.done;
        if !self.send_answer(res, done) {
            self.conn.complete(done);
        }
    }

    /// Sends the answer if nobody has; `done` goes with it. False if it
    /// was sent already (or this port serves no call).
    fn send_answer(&self, res: SysResult, done: Option<Done>) -> bool {
        let Some((reqno, answered)) = &self.call else {
            return false;
        };
        if answered.swap(true, Ordering::AcqRel) {
            return false;
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
        true
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
                // Without the completion: the call still runs.
                self.send_answer(result, None);
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
