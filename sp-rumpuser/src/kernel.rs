//! [`RumpKernel`]: the `sp-server` [`Kernel`] seam over a real rump
//! kernel's hypercalls.
//!
//! Two kinds of work reach the kernel:
//! - **system calls**, on the server's worker threads: a new lwp in the
//!   caller's process, the call, the lwp released, all inside one
//!   schedule/unschedule bracket;
//! - **process life** (a guest's rfork, prefork, the fork handshake's
//!   second fork, lwpexit, execnotify, release): the server calls these on
//!   its event-loop thread, and with a real kernel each can wait (for a
//!   free virtual CPU, or for a vnode lock that a call waiting for its
//!   client holds). So they return at once and run on threads of ours:
//!   each process has a queue, drained by one thread at a time, holding
//!   the operations that use its main lwp (a prefork sits in its
//!   parent's queue, the fork handshake's second fork in the prefork's),
//!   in the order they were asked for. One process's operation that waits
//!   holds up only that process. A system call waits until every
//!   operation asked for its process before it has run.
//!
//! The rules the stock kernel relies on are kept here rather than trusted
//! to the client: a system call number outside the kernel's table is
//! ENOSYS, the argument block is zero-padded to the kernel's largest
//! argument count, and `hyp_execnotify` runs only after `hyp_lwpexit`,
//! with no other lwp of the process left and never once the process was
//! released.

use crate::ffi::{with_call_port, Hyp, Lwp};
use parking_lot::{Condvar, Mutex, RwLock};
use sp_proto::{Errno, SysResult};
use sp_server::{ClientPort, Kernel, Port, ProcId};
use std::collections::{HashMap, VecDeque};
use std::ffi::CString;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// NetBSD's `SYS_NSYSENT`: the size of the kernel's system call table. The
/// kernel checks `num >= SYS_NSYSENT` on a signed `int`, so a number with
/// the top bit set would index before the table.
pub const SYS_NSYSENT: u32 = 512;

/// NetBSD's `SYS_MAXSYSARGS`: the most argument slots a call reads.
pub const MIN_ARG_SLOTS: usize = 8;

/// `RUMP_RFFD_SHARE`, `RUMP_RFFD_COPY` (`RUMP_RFFDG`) and
/// `RUMP_RFFD_CLEAR` (`RUMP_RFCFDG`) of `rump/rump.h`.
pub const RFFD_SHARE: i32 = 0;
/// Fork with the descriptor table copied (a prefork).
pub const RFFD_COPY: i32 = 1;
/// Fork off process 1 with a cleared descriptor table (a guest).
pub const RFFD_CLEAR: i32 = 2;

/// Where a process stands.
#[derive(Clone, Copy, Debug)]
enum Life {
    /// Its rfork has not run yet.
    Creating,
    /// Running: its main lwp and pid.
    Live { main: Lwp, pid: i32 },
    /// Its rfork failed.
    Failed(Errno),
    /// Released (or never created); nothing may touch it.
    Gone,
}

struct State {
    life: Life,
    /// Operations queued for this process and not yet run.
    pending: u32,
    /// `hyp_lwpexit` ran and no `hyp_execnotify` since.
    exiting: bool,
    /// System calls between their newlwp and their release.
    lwps: u32,
}

/// One process of ours.
struct Proc {
    /// What the kernel hands back to our callbacks for this process.
    arg: u64,
    state: Mutex<State>,
    cv: Condvar,
    /// Operations that use this process's main lwp, oldest first, and
    /// whether a thread is draining them.
    queue: Mutex<(VecDeque<Op>, bool)>,
}

impl Proc {
    fn new(arg: u64) -> Arc<Proc> {
        Arc::new(Proc {
            arg,
            state: Mutex::new(State {
                life: Life::Creating,
                pending: 0,
                exiting: false,
                lwps: 0,
            }),
            cv: Condvar::new(),
            queue: Mutex::new((VecDeque::new(), false)),
        })
    }

    /// Waits until the process's own creation (which may run in another
    /// process's queue) has run.
    fn created(&self) {
        let mut st = self.state.lock();
        while matches!(st.life, Life::Creating) {
            self.cv.wait(&mut st);
        }
    }

    fn set_life(&self, life: Life) {
        self.state.lock().life = life;
        self.cv.notify_all();
    }

    fn life(&self) -> Life {
        self.state.lock().life
    }
}

/// What the operations thread does, in order.
enum Op {
    Guest {
        proc: Arc<Proc>,
        comm: CString,
        port: Port,
    },
    Prefork {
        parent: Arc<Proc>,
        child: Arc<Proc>,
    },
    Attach {
        prefork: Arc<Proc>,
        child: Arc<Proc>,
        port: Port,
    },
    LwpExit(Arc<Proc>),
    ExecNotify {
        proc: Arc<Proc>,
        comm: CString,
    },
    Release(Arc<Proc>),
}

impl Op {
    /// The process whose main lwp the operation makes current: the queue
    /// it runs in.
    fn owner(&self) -> &Arc<Proc> {
        match self {
            Op::Prefork { parent, .. } => parent,
            Op::Attach { prefork, .. } => prefork,
            other => other.target(),
        }
    }

    /// The process whose system calls wait for the operation.
    fn target(&self) -> &Arc<Proc> {
        match self {
            Op::Guest { proc, .. } | Op::ExecNotify { proc, .. } => proc,
            Op::Prefork { child, .. } | Op::Attach { child, .. } => child,
            Op::LwpExit(p) | Op::Release(p) => p,
        }
    }
}

/// Ports by the `arg` the kernel hands our callbacks. Global, since the C
/// callbacks carry nothing else.
fn ports() -> &'static RwLock<HashMap<u64, Port>> {
    static PORTS: OnceLock<RwLock<HashMap<u64, Port>>> = OnceLock::new();
    PORTS.get_or_init(|| RwLock::new(HashMap::new()))
}

/// The port of the process whose `arg` this is.
pub(crate) fn port_of(arg: u64) -> Option<Port> {
    ports().read().get(&arg).cloned()
}

/// A fresh `arg`, never 0 and never reused in this host process.
fn next_arg() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// A rump kernel behind the `Kernel` seam.
pub struct RumpKernel {
    hyp: &'static Hyp,
    /// Processes of ours the kernel may hold at once.
    max_procs: usize,
    procs: RwLock<HashMap<u64, Arc<Proc>>>,
    drainers: Arc<Drainers>,
    /// The kernel is halting: no hypercall is made any more.
    halted: Arc<AtomicBool>,
}

/// Threads that drain process queues: an idle one takes the next queue,
/// else a new one is started, so a queue never waits behind another.
struct Drainers {
    state: Mutex<(VecDeque<Arc<Proc>>, usize)>,
    cv: Condvar,
}

/// Idle drainer threads kept, and how long one waits for work.
const IDLE_DRAINERS: usize = 4;
const DRAINER_LINGER: Duration = Duration::from_secs(30);

impl Drainers {
    /// Has `proc`'s queue drained by an idle thread or a new one.
    fn dispatch(self: &Arc<Self>, proc: Arc<Proc>, hyp: &'static Hyp, halted: &Arc<AtomicBool>) {
        let mut st = self.state.lock();
        st.0.push_back(proc);
        if st.1 >= st.0.len() {
            self.cv.notify_one();
            return;
        }
        drop(st);
        let (me, halted) = (self.clone(), halted.clone());
        let spawned = std::thread::Builder::new()
            .name("sp-rump-ops".into())
            .spawn(move || me.work(hyp, &halted));
        if let Err(e) = spawned {
            // The queue stays listed for a thread already running.
            tracing::error!("sp-rumpuser: cannot start a thread for process operations: {e}");
        }
    }

    fn work(&self, hyp: &'static Hyp, halted: &AtomicBool) {
        let mut st = self.state.lock();
        loop {
            if let Some(proc) = st.0.pop_front() {
                drop(st);
                drain(&proc, hyp, halted);
                st = self.state.lock();
                continue;
            }
            if st.1 >= IDLE_DRAINERS {
                return;
            }
            st.1 += 1;
            let timed_out = self.cv.wait_for(&mut st, DRAINER_LINGER).timed_out();
            st.1 -= 1;
            if timed_out && st.0.is_empty() {
                return;
            }
        }
    }
}

/// Runs `owner`'s queued operations in order until the queue is empty.
fn drain(owner: &Arc<Proc>, hyp: &Hyp, halted: &AtomicBool) {
    loop {
        let op = {
            let mut q = owner.queue.lock();
            match q.0.pop_front() {
                Some(op) => op,
                None => {
                    q.1 = false;
                    return;
                }
            }
        };
        let target = op.target().clone();
        let creates = matches!(
            op,
            Op::Guest { .. } | Op::Prefork { .. } | Op::Attach { .. }
        );
        if halted.load(Ordering::Acquire) {
            if creates {
                // Nothing will create it now; let its waiters go.
                target.set_life(Life::Failed(Errno::ENOTCONN));
            }
        } else {
            if !matches!(op, Op::Guest { .. }) {
                // The owner may be created by an operation in another
                // queue (a prefork in its parent's, a fork child's
                // second fork in its prefork's): wait for it.
                owner.created();
            }
            run_op(hyp, op);
        }
        let mut st = target.state.lock();
        st.pending -= 1;
        drop(st);
        target.cv.notify_all();
    }
}

impl RumpKernel {
    pub(crate) fn new(hyp: &'static Hyp, max_procs: usize) -> std::io::Result<RumpKernel> {
        Ok(RumpKernel {
            hyp,
            max_procs,
            procs: RwLock::new(HashMap::new()),
            drainers: Arc::new(Drainers {
                state: Mutex::new((VecDeque::new(), 0)),
                cv: Condvar::new(),
            }),
            halted: Arc::new(AtomicBool::new(false)),
        })
    }

    /// Stops every further hypercall: the kernel is halting.
    pub(crate) fn halt(&self) {
        self.halted.store(true, Ordering::Release);
    }

    fn proc(&self, id: ProcId) -> Option<Arc<Proc>> {
        self.procs.read().get(&id.0).cloned()
    }

    /// A new process record; EAGAIN at the process cap (a stock kernel
    /// panics when a new guest finds no file for its console, so we stop
    /// well before).
    fn new_proc(&self) -> Result<(ProcId, Arc<Proc>), Errno> {
        let p = Proc::new(next_arg());
        let mut procs = self.procs.write();
        if procs.len() >= self.max_procs {
            tracing::warn!(
                "sp-rumpuser: {} kernel processes already (SP_MAX_PROCS); refusing another",
                procs.len()
            );
            return Err(Errno::EAGAIN);
        }
        procs.insert(p.arg, p.clone());
        Ok((ProcId(p.arg), p))
    }

    fn queue(&self, op: Op) {
        op.target().state.lock().pending += 1;
        let owner = op.owner().clone();
        let mut q = owner.queue.lock();
        q.0.push_back(op);
        if !q.1 {
            q.1 = true;
            drop(q);
            self.drainers.dispatch(owner, self.hyp, &self.halted);
        }
    }
}

/// A process name for the kernel: the bytes up to the first NUL.
fn comm_cstring(comm: &[u8]) -> CString {
    let end = comm.iter().position(|&b| b == 0).unwrap_or(comm.len());
    CString::new(&comm[..end]).unwrap_or_default()
}

/// Runs one process operation on the operations thread. Every
/// hypercall is inside a schedule/unschedule bracket and leaves this
/// thread with no current lwp.
fn run_op(hyp: &Hyp, op: Op) {
    match op {
        Op::Guest { proc, comm, port } => {
            hyp.schedule();
            let rv = hyp.lwproc_rfork(proc.arg, RFFD_CLEAR, Some(&comm));
            let life = if rv == 0 {
                let main = hyp.lwproc_curlwp();
                let pid = hyp.getpid();
                hyp.lwproc_switch(Lwp::NONE);
                Life::Live { main, pid }
            } else {
                Life::Failed(Errno(rv))
            };
            hyp.unschedule();
            proc.set_life(life);
            if let Life::Failed(e) = life {
                tracing::warn!("kernel refused a new process ({e}); closing its client");
                ports().write().remove(&proc.arg);
                port.disconnect();
            }
        }
        Op::Prefork { parent, child } => {
            let life = match parent.life() {
                Life::Live { main, .. } => {
                    hyp.schedule();
                    hyp.lwproc_switch(main);
                    // The prefork keeps the parent's arg until its fork
                    // handshake forks it once more, as the reference does.
                    let rv = hyp.lwproc_rfork(parent.arg, RFFD_COPY, None);
                    let life = if rv == 0 {
                        let main = hyp.lwproc_curlwp();
                        let pid = hyp.getpid();
                        Life::Live { main, pid }
                    } else {
                        Life::Failed(Errno(rv))
                    };
                    hyp.lwproc_switch(Lwp::NONE);
                    hyp.unschedule();
                    life
                }
                Life::Failed(e) => Life::Failed(e),
                Life::Creating | Life::Gone => Life::Failed(Errno::ESRCH),
            };
            child.set_life(life);
        }
        Op::Attach {
            prefork,
            child,
            port,
        } => {
            let life = match prefork.life() {
                Life::Live { main: tmp, .. } => {
                    hyp.schedule();
                    hyp.lwproc_switch(tmp);
                    let rv = hyp.lwproc_rfork(child.arg, RFFD_SHARE, None);
                    let life = if rv == 0 {
                        let main = hyp.lwproc_curlwp();
                        hyp.lwproc_switch(tmp);
                        hyp.lwproc_release();
                        hyp.lwproc_switch(main);
                        let pid = hyp.getpid();
                        hyp.lwproc_switch(Lwp::NONE);
                        Life::Live { main, pid }
                    } else {
                        hyp.lwproc_release();
                        Life::Failed(Errno(rv))
                    };
                    hyp.unschedule();
                    prefork.set_life(Life::Gone);
                    life
                }
                Life::Failed(e) => Life::Failed(e),
                Life::Creating | Life::Gone => Life::Failed(Errno::ESRCH),
            };
            child.set_life(life);
            if let Life::Failed(e) = life {
                tracing::warn!("kernel could not fork the prefork ({e}); closing its client");
                ports().write().remove(&child.arg);
                port.disconnect();
            }
        }
        Op::LwpExit(proc) => {
            if let Life::Live { main, .. } = proc.life() {
                hyp.schedule();
                hyp.lwproc_switch(main);
                hyp.lwpexit();
                hyp.lwproc_switch(Lwp::NONE);
                hyp.unschedule();
                proc.state.lock().exiting = true;
            }
        }
        Op::ExecNotify { proc, comm } => {
            let mut st = proc.state.lock();
            // The kernel asserts that its process has one lwp left and is
            // marked exiting; the server drained the calls, and this waits
            // out any lwp still between its call and its release.
            while st.lwps > 0 {
                proc.cv.wait(&mut st);
            }
            let (Life::Live { main, .. }, true) = (st.life, st.exiting) else {
                tracing::debug!("exec of a process not drained or gone; not notifying");
                return;
            };
            st.exiting = false;
            drop(st);
            hyp.schedule();
            hyp.lwproc_switch(main);
            hyp.execnotify(&comm);
            hyp.lwproc_switch(Lwp::NONE);
            hyp.unschedule();
        }
        Op::Release(proc) => {
            if let Life::Live { main, .. } = proc.life() {
                hyp.schedule();
                hyp.lwproc_switch(main);
                hyp.lwproc_release();
                hyp.unschedule();
            }
            proc.set_life(Life::Gone);
            ports().write().remove(&proc.arg);
        }
    }
}

impl Kernel for RumpKernel {
    fn spawn_guest(&self, comm: &[u8], port: Port) -> Result<ProcId, Errno> {
        let (id, proc) = self.new_proc()?;
        ports().write().insert(proc.arg, port.clone());
        self.queue(Op::Guest {
            proc,
            comm: comm_cstring(comm),
            port,
        });
        Ok(id)
    }

    fn prefork(&self, parent: ProcId) -> Result<ProcId, Errno> {
        let parent = self.proc(parent).ok_or(Errno::ESRCH)?;
        if let Life::Failed(e) = parent.life() {
            return Err(e);
        }
        let (id, child) = self.new_proc()?;
        self.queue(Op::Prefork { parent, child });
        Ok(id)
    }

    fn attach_prefork(&self, prefork: ProcId, port: Port) -> Result<ProcId, Errno> {
        // The child takes the prefork's place under the process cap.
        let pre = self.procs.write().remove(&prefork.0).ok_or(Errno::ESRCH)?;
        if let Life::Failed(e) = pre.life() {
            return Err(e);
        }
        let (id, child) = match self.new_proc() {
            Ok(x) => x,
            Err(e) => {
                self.queue(Op::Release(pre));
                return Err(e);
            }
        };
        ports().write().insert(child.arg, port.clone());
        self.queue(Op::Attach {
            prefork: pre,
            child,
            port,
        });
        Ok(id)
    }

    fn syscall(&self, proc: ProcId, sysnum: u32, args: &[u8], port: &dyn ClientPort) -> SysResult {
        if sysnum >= SYS_NSYSENT {
            return Err(Errno::ENOSYS);
        }
        let p = self.proc(proc).ok_or(Errno::ESRCH)?;
        let pid = {
            let mut st = p.state.lock();
            while st.pending > 0 {
                p.cv.wait(&mut st);
            }
            match st.life {
                // Counted before its lwp exists, so an exec's notify
                // waits for it.
                Life::Live { pid, .. } => {
                    st.lwps += 1;
                    pid
                }
                Life::Failed(e) => return Err(e),
                Life::Creating | Life::Gone => return Err(Errno::ESRCH),
            }
        };
        // At least SYS_MAXSYSARGS zeroed slots: the kernel reads as many
        // as the call declares, whatever the client sent. On the stack
        // for every real call (none has more than 8 slots).
        let mut small = [0u64; MIN_ARG_SLOTS];
        let mut large = Vec::new();
        let block: &mut [u64] = if args.len() <= MIN_ARG_SLOTS * 8 {
            &mut small
        } else {
            large.resize(args.len().div_ceil(8), 0);
            &mut large
        };
        for (slot, chunk) in block.iter_mut().zip(args.chunks(8)) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            *slot = u64::from_le_bytes(b);
        }
        let hyp = self.hyp;
        let mut retval = [0i64; 2];
        let err = if self.halted.load(Ordering::Acquire) {
            Errno::ENOTCONN.0
        } else {
            with_call_port(p.arg, port, || {
                hyp.schedule();
                let rv = hyp.lwproc_newlwp(pid);
                if rv != 0 {
                    hyp.unschedule();
                    return rv;
                }
                let err = hyp.syscall(sysnum, block, &mut retval);
                hyp.lwproc_release();
                hyp.unschedule();
                err
            })
        };
        let mut st = p.state.lock();
        st.lwps -= 1;
        if st.lwps == 0 && st.pending > 0 {
            // An exec's notify may be waiting for the last lwp.
            p.cv.notify_all();
        }
        drop(st);
        match err {
            0 => Ok(retval),
            e => Err(Errno(e)),
        }
    }

    fn lwpexit(&self, proc: ProcId) {
        if let Some(p) = self.proc(proc) {
            self.queue(Op::LwpExit(p));
        }
    }

    fn execnotify(&self, proc: ProcId, comm: &[u8]) {
        if let Some(p) = self.proc(proc) {
            self.queue(Op::ExecNotify {
                proc: p,
                comm: comm_cstring(comm),
            });
        }
    }

    fn release(&self, proc: ProcId) {
        if let Some(p) = self.procs.write().remove(&proc.0) {
            self.queue(Op::Release(p));
        }
    }

    fn pid(&self, proc: ProcId) -> i32 {
        match self.proc(proc).map(|p| p.life()) {
            Some(Life::Live { pid, .. }) => pid,
            _ => 0,
        }
    }
}
