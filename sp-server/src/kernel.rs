//! The seam between the server and a kernel.
//!
//! The server owns connections and the protocol; a [`Kernel`] owns
//! processes, threads and system calls. While a call runs, the kernel reaches
//! back to the calling client through a [`ClientPort`]. No lock of the
//! server's is held while a kernel method runs, and a port method that waits
//! for the client holds none either.

use crate::core::Segments;
use sp_proto::abi::{Errno, SysResult};
use std::sync::Arc;

/// The kernel's handle for a process. Opaque to the server.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct ProcId(pub u64);

/// How a kernel reaches the client of a process, from inside a system call.
///
/// Every method may be called from any worker thread; the ones that wait
/// for the client ([`copyin`](ClientPort::copyin),
/// [`copyinstr`](ClientPort::copyinstr), [`anonmmap`](ClientPort::anonmmap))
/// block only the calling thread. Once the connection is gone they fail with
/// `EFAULT` without waiting.
pub trait ClientPort: Send + Sync {
    /// Fills `buf` with the client's bytes at `addr`.
    /// `EFAULT` if the client refuses, answers with the wrong size, or is gone.
    fn copyin(&self, addr: u64, buf: &mut [u8]) -> Result<(), Errno>;

    /// Like [`copyin`](ClientPort::copyin) into a new vector of `len`
    /// bytes. Ports that receive the bytes in a buffer of their own hand it
    /// over, saving the kernel a zero-fill and a copy of large transfers.
    fn copyin_vec(&self, addr: u64, len: usize) -> Result<Vec<u8>, Errno> {
        let mut v = vec![0u8; len];
        self.copyin(addr, &mut v)?;
        Ok(v)
    }

    /// Reads a NUL-terminated string of at most `maxlen` bytes (NUL
    /// included) at `addr`; returns it without the NUL. `ENAMETOOLONG` if
    /// the client's answer has no NUL within `maxlen`; `EFAULT` as for copyin.
    fn copyinstr(&self, addr: u64, maxlen: usize) -> Result<Vec<u8>, Errno>;

    /// Stores `data` at `addr` in the client. Does not wait for the client.
    fn copyout(&self, addr: u64, data: &[u8]) -> Result<(), Errno>;

    /// Stores a string (the caller includes its NUL) at `addr` in the client.
    fn copyoutstr(&self, addr: u64, data: &[u8]) -> Result<(), Errno>;

    /// Asks the client to map `size` bytes of anonymous memory; returns the
    /// client's address. `ENOMEM` if the client could not (it answered 0),
    /// `EFAULT` if the request failed.
    fn anonmmap(&self, size: u64) -> Result<u64, Errno>;

    /// Delivers NetBSD signal `signo` to the client. Does not wait.
    fn raise(&self, signo: u32) -> Result<(), Errno>;

    /// Sends the answer of the system call this port was handed for, now,
    /// before the kernel returns from it; the server sends nothing more
    /// for that call when it returns. For a kernel about to stop the whole
    /// host process from inside a call (a halting `reboot(2)`), whose
    /// caller would otherwise never hear back. `EOPNOTSUPP` from a port
    /// that was not handed to a system call (the default).
    fn answer_now(&self, result: SysResult) -> Result<(), Errno> {
        let _ = result;
        Err(Errno::EOPNOTSUPP)
    }

    /// Ends the client's connection as if the client had closed it; the
    /// server then tears it down as usual ([`Kernel::lwpexit`], then
    /// [`Kernel::release`] once its calls have returned). For a kernel
    /// that finds, after the handshake was answered, that it cannot serve
    /// this client. The default does nothing.
    fn disconnect(&self) {}
}

/// A shared handle to a client port; kernels keep one per process for
/// signals sent from other processes (`kill`).
pub type Port = Arc<dyn ClientPort>;

/// A kernel the server can sit in front of.
///
/// All methods may be called concurrently from many threads. `syscall` may
/// block for as long as the call needs (a read of an empty pipe); the server
/// gives every call its own thread, so a blocked call never stops another.
///
/// # Which thread
///
/// [`Kernel::syscall`] runs on a worker thread of its own (or on the event
/// loop, when [`Kernel::runs_inline`] or [`Kernel::runs_inline_with`] said
/// it may). Every other method runs **on the event-loop thread**, the one
/// that reads, frames and answers every client: [`spawn_guest`],
/// [`prefork`], [`attach_prefork`], [`lwpexit`], [`execnotify`],
/// [`release`], [`pid`], [`runs_inline`] and [`runs_inline_with`]. While
/// one of them runs, no client is served. So they must:
/// - return promptly: never block on something a client or a system call
///   must do first (a kernel that needs to wait queues the work and
///   returns, as `sp-rumpuser` does);
/// - never call back into the client through a [`ClientPort`] in a way
///   that waits ([`ClientPort::copyin`], [`ClientPort::copyinstr`],
///   [`ClientPort::anonmmap`] from the loop would wait for an answer only
///   the loop can read); [`ClientPort::raise`] and the copyouts never wait
///   and are fine;
/// - never wait for a system call in flight to return: `lwpexit` asks
///   them to return, and the server calls `execnotify` or `release` only
///   once they have.
///
/// [`spawn_guest`]: Kernel::spawn_guest
/// [`prefork`]: Kernel::prefork
/// [`attach_prefork`]: Kernel::attach_prefork
/// [`lwpexit`]: Kernel::lwpexit
/// [`execnotify`]: Kernel::execnotify
/// [`release`]: Kernel::release
/// [`pid`]: Kernel::pid
/// [`runs_inline`]: Kernel::runs_inline
/// [`runs_inline_with`]: Kernel::runs_inline_with
pub trait Kernel: Send + Sync + 'static {
    /// A new guest: a process forked off process 1 with an empty descriptor
    /// table, named `comm` (without NUL), whose client is `port`.
    fn spawn_guest(&self, comm: &[u8], port: Port) -> Result<ProcId, Errno>;

    /// Forks `parent` with its descriptor table copied; the child waits,
    /// unattached, for a fork handshake (or [`Kernel::release`]).
    ///
    /// The default, for a kernel without fork, refuses with `EOPNOTSUPP`:
    /// the client's PREFORK is answered ERROR RFORK_FAILED and its
    /// connection goes on.
    fn prefork(&self, parent: ProcId) -> Result<ProcId, Errno> {
        let _ = parent;
        Err(Errno::EOPNOTSUPP)
    }

    /// Binds a preforked process to a new client. Returns the process the
    /// connection now speaks for (a kernel may fork once more and release the
    /// prefork, as the reference does). The prefork id is not used again.
    ///
    /// Only called with ids [`Kernel::prefork`] returned; the default
    /// (never reached when `prefork` is the default) refuses with
    /// `EOPNOTSUPP`.
    fn attach_prefork(&self, prefork: ProcId, port: Port) -> Result<ProcId, Errno> {
        let _ = (prefork, port);
        Err(Errno::EOPNOTSUPP)
    }

    /// Runs system call `sysnum` with argument block `args` on a new thread
    /// of `proc`. Reaches the caller's client through `port`.
    fn syscall(&self, proc: ProcId, sysnum: u32, args: &[u8], port: &dyn ClientPort) -> SysResult;

    /// Tells every thread of `proc` to exit: blocked calls wake and return
    /// (EINTR), and calls made before [`Kernel::execnotify`] are refused.
    ///
    /// Called before an exec and when the client disconnects. The default
    /// does nothing, which suits a kernel whose calls never block: the
    /// server waits for the calls in flight either way.
    fn lwpexit(&self, proc: ProcId) {
        let _ = proc;
    }

    /// After an exec has drained every call: closes the close-on-exec
    /// descriptors, renames the process to `comm` (without NUL), and lets
    /// calls run again.
    ///
    /// The default does nothing: for a kernel without close-on-exec
    /// descriptors or process names, an exec keeps the process as it is.
    fn execnotify(&self, proc: ProcId, comm: &[u8]) {
        let _ = (proc, comm);
    }

    /// The process's client is gone (or a prefork was never claimed): close
    /// every descriptor and free the process.
    fn release(&self, proc: ProcId);

    /// The kernel's pid of a process, for logs.
    fn pid(&self, proc: ProcId) -> i32;

    /// Whether system call `sysnum` never blocks and never waits for the
    /// client (no copyin, copyinstr or anonmmap; copyout and raise are
    /// fine). The server may then run it on the event-loop thread and skip
    /// the hand-off to a worker. A call that waits anyway gets `EFAULT`
    /// from its port. The default, `false`, is always correct.
    fn runs_inline(&self, sysnum: u32) -> bool {
        let _ = sysnum;
        false
    }

    /// [`Kernel::runs_inline`] for a call whose request carried the bytes
    /// of buffers it reads (SYSCALL_SEG, `docs/extension.md`): whether
    /// this call of `proc`, with argument block `args`, never blocks and
    /// makes no copyin or copyinstr outside `carried`, so it needs nothing
    /// from the client (copyout and raise are fine). The server then runs
    /// it on the event-loop thread with no hand-off to a worker: one round
    /// trip, as fast as the loop can answer. A copy outside `carried`
    /// gets `EFAULT`. The default, `false`, is always correct.
    fn runs_inline_with(
        &self,
        proc: ProcId,
        sysnum: u32,
        args: &[u8],
        carried: &Carried<'_>,
    ) -> bool {
        let _ = (proc, sysnum, args, carried);
        false
    }
}

/// The bytes a SYSCALL_SEG request carried, as
/// [`Kernel::runs_inline_with`] sees them: which client ranges the call's
/// port serves without asking the client.
pub struct Carried<'a> {
    pub(crate) segs: &'a Segments,
}

impl Carried<'_> {
    /// Whether one carried segment holds `[addr, addr + len)`: a copyin of
    /// it is served at once.
    pub fn holds(&self, addr: u64, len: u64) -> bool {
        self.segs.holds(addr, len)
    }

    /// Whether one carried segment holds a string at `addr` with its NUL
    /// within `maxlen` bytes (or `maxlen` bytes without one): a copyinstr
    /// of it is answered at once.
    pub fn holds_str(&self, addr: u64, maxlen: usize) -> bool {
        self.segs.copyinstr(addr, maxlen).is_some()
    }
}

/// A syscall argument block: one 8-byte little-endian slot per argument
/// (the codec is `sp_proto`'s, shared with the client).
pub use sp_proto::args::Args;
