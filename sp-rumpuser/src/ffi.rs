//! The C edge: the `rumpuser_sp_*` functions a rump kernel calls, and the
//! hypercall table it gives us. All of the crate's `unsafe` lives here.
//!
//! Every exported function goes through [`boundary`]: a panic never
//! unwinds into C, it becomes the function's errno (or, for the one
//! function with no result, a log line). Pointers from C are checked once,
//! here, before anything else sees them.

use crate::kernel;
use sp_proto::Errno;
use sp_server::ClientPort;
use std::cell::Cell;
use std::ffi::{c_char, c_int, c_long, c_void, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::OnceLock;

/// A kernel lwp, as the hypercalls hand it out: an opaque address that is
/// only ever handed back to the kernel.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Lwp(pub(crate) usize);

impl Lwp {
    /// "No lwp": `hyp_lwproc_switch(NULL)`.
    pub(crate) const NONE: Lwp = Lwp(0);
}

/// `struct rumpuser_hyperup` of NetBSD's `rump/rumpuser.h`: the table of
/// hypercalls a rump kernel fills in at `rumpuser_init` and that
/// `librumpuser` exports as `rumpuser__hyp`. Member order and types are
/// the C ones (LP64).
#[repr(C)]
#[derive(Clone, Copy)]
#[allow(missing_docs, non_snake_case)] // the members are named as in C and documented there
pub struct RumpuserHyperup {
    pub hyp_schedule: Option<unsafe extern "C" fn()>,
    pub hyp_unschedule: Option<unsafe extern "C" fn()>,
    pub hyp_backend_unschedule: Option<unsafe extern "C" fn(c_int, *mut c_int, *mut c_void)>,
    pub hyp_backend_schedule: Option<unsafe extern "C" fn(c_int, *mut c_void)>,
    pub hyp_lwproc_switch: Option<unsafe extern "C" fn(*mut c_void)>,
    pub hyp_lwproc_release: Option<unsafe extern "C" fn()>,
    pub hyp_lwproc_rfork: Option<unsafe extern "C" fn(*mut c_void, c_int, *const c_char) -> c_int>,
    pub hyp_lwproc_newlwp: Option<unsafe extern "C" fn(libc::pid_t) -> c_int>,
    pub hyp_lwproc_curlwp: Option<unsafe extern "C" fn() -> *mut c_void>,
    pub hyp_syscall: Option<unsafe extern "C" fn(c_int, *mut c_void, *mut c_long) -> c_int>,
    pub hyp_lwpexit: Option<unsafe extern "C" fn()>,
    pub hyp_execnotify: Option<unsafe extern "C" fn(*const c_char)>,
    pub hyp_getpid: Option<unsafe extern "C" fn() -> libc::pid_t>,
    pub hyp__extra: [*mut c_void; 8],
}

// SAFETY: the table holds function pointers, which may be called from any
// thread, and eight reserved pointers that nothing reads; a test or a
// program that defines `rumpuser__hyp` in Rust needs it to be `Sync`.
unsafe impl Sync for RumpuserHyperup {}

/// The hypercalls, checked: every member we call is present. Copied once
/// from the kernel's table (which it fills before it starts the server).
#[derive(Clone, Copy)]
pub(crate) struct Hyp {
    schedule: unsafe extern "C" fn(),
    unschedule: unsafe extern "C" fn(),
    backend_unschedule: unsafe extern "C" fn(c_int, *mut c_int, *mut c_void),
    backend_schedule: unsafe extern "C" fn(c_int, *mut c_void),
    lwproc_switch: unsafe extern "C" fn(*mut c_void),
    lwproc_release: unsafe extern "C" fn(),
    lwproc_rfork: unsafe extern "C" fn(*mut c_void, c_int, *const c_char) -> c_int,
    lwproc_newlwp: unsafe extern "C" fn(libc::pid_t) -> c_int,
    lwproc_curlwp: unsafe extern "C" fn() -> *mut c_void,
    syscall: unsafe extern "C" fn(c_int, *mut c_void, *mut c_long) -> c_int,
    lwpexit: unsafe extern "C" fn(),
    execnotify: unsafe extern "C" fn(*const c_char),
    getpid: unsafe extern "C" fn() -> libc::pid_t,
}

impl Hyp {
    /// Checks a kernel's table; `None` if a member we call is missing.
    fn from_table(t: &RumpuserHyperup) -> Option<Hyp> {
        Some(Hyp {
            schedule: t.hyp_schedule?,
            unschedule: t.hyp_unschedule?,
            backend_unschedule: t.hyp_backend_unschedule?,
            backend_schedule: t.hyp_backend_schedule?,
            lwproc_switch: t.hyp_lwproc_switch?,
            lwproc_release: t.hyp_lwproc_release?,
            lwproc_rfork: t.hyp_lwproc_rfork?,
            lwproc_newlwp: t.hyp_lwproc_newlwp?,
            lwproc_curlwp: t.hyp_lwproc_curlwp?,
            syscall: t.hyp_syscall?,
            lwpexit: t.hyp_lwpexit?,
            execnotify: t.hyp_execnotify?,
            getpid: t.hyp_getpid?,
        })
    }

    // The wrappers below are the kernel's own entry points; the rules for
    // calling them (scheduled, the right lwp current) are kept by
    // `kernel.rs`, which is the only caller.

    pub(crate) fn schedule(&self) {
        // SAFETY: a kernel entry point taking no arguments; any host
        // thread may ask for a virtual CPU.
        unsafe { (self.schedule)() }
    }

    pub(crate) fn unschedule(&self) {
        // SAFETY: called only by a thread that scheduled (kernel.rs pairs
        // every schedule with one unschedule).
        unsafe { (self.unschedule)() }
    }

    /// Gives the virtual CPU back before a wait; returns the lock count to
    /// hand to [`Hyp::backend_schedule`].
    pub(crate) fn backend_unschedule(&self) -> c_int {
        let mut nlocks: c_int = 0;
        // SAFETY: `nlocks` is a valid out-pointer for the call's duration;
        // a null interlock is what the reference passes.
        unsafe { (self.backend_unschedule)(0, &mut nlocks, std::ptr::null_mut()) };
        nlocks
    }

    pub(crate) fn backend_schedule(&self, nlocks: c_int) {
        // SAFETY: `nlocks` is what backend_unschedule returned on this
        // thread; a null interlock as in the reference.
        unsafe { (self.backend_schedule)(nlocks, std::ptr::null_mut()) }
    }

    pub(crate) fn lwproc_switch(&self, l: Lwp) {
        // SAFETY: `l` is null or an lwp the kernel handed us and that has
        // not been released (kernel.rs forgets an lwp when it releases it).
        unsafe { (self.lwproc_switch)(l.0 as *mut c_void) }
    }

    pub(crate) fn lwproc_release(&self) {
        // SAFETY: releases this thread's current lwp; kernel.rs calls it
        // only with one current.
        unsafe { (self.lwproc_release)() }
    }

    /// Forks the current process (process 1 when none is current); the
    /// new process keeps `arg` and hands it back to our callbacks.
    pub(crate) fn lwproc_rfork(&self, arg: u64, flags: c_int, comm: Option<&CStr>) -> c_int {
        let comm = comm.map_or(std::ptr::null(), CStr::as_ptr);
        // SAFETY: `comm` is null or a NUL-terminated string alive for the
        // call (the kernel copies it); `arg` is an opaque value the kernel
        // stores and never dereferences (sysproxy.c keeps it in spctl).
        unsafe { (self.lwproc_rfork)(arg as usize as *mut c_void, flags, comm) }
    }

    pub(crate) fn lwproc_newlwp(&self, pid: i32) -> c_int {
        // SAFETY: plain integer argument.
        unsafe { (self.lwproc_newlwp)(pid) }
    }

    pub(crate) fn lwproc_curlwp(&self) -> Lwp {
        // SAFETY: no arguments; the result is only stored and handed back.
        Lwp(unsafe { (self.lwproc_curlwp)() } as usize)
    }

    /// Runs system call `num` on the current lwp. `args` must hold at
    /// least `SYS_MAXSYSARGS` (8) slots: the kernel reads as many as the
    /// call has, whatever the client sent.
    pub(crate) fn syscall(&self, num: u32, args: &mut [u64], retval: &mut [i64; 2]) -> c_int {
        assert!(args.len() >= crate::kernel::MIN_ARG_SLOTS);
        let mut rv: [c_long; 2] = [0, 0];
        // SAFETY: `num` is below the kernel's table size (kernel.rs checks
        // it against SYS_NSYSENT, since the kernel's own check is signed);
        // `args` is a writable block of at least 8 slots, as many as any
        // NetBSD system call reads; `rv` is two longs, as the kernel writes.
        let err =
            unsafe { (self.syscall)(num as c_int, args.as_mut_ptr().cast(), rv.as_mut_ptr()) };
        *retval = [rv[0], rv[1]];
        err
    }

    pub(crate) fn lwpexit(&self) {
        // SAFETY: no arguments; acts on the current lwp's process.
        unsafe { (self.lwpexit)() }
    }

    pub(crate) fn execnotify(&self, comm: &CStr) {
        // SAFETY: a NUL-terminated string alive for the call.
        unsafe { (self.execnotify)(comm.as_ptr()) }
    }

    pub(crate) fn getpid(&self) -> i32 {
        // SAFETY: no arguments.
        unsafe { (self.getpid)() }
    }
}

/// The kernel's hypercalls, found on the first `rumpuser_sp_init`.
static HYP: OnceLock<Hyp> = OnceLock::new();

/// Finds `rumpuser__hyp` in the process (exported by the stock
/// `librumpuser`, or by a program that defines it) and checks it.
pub(crate) fn hyp() -> Result<&'static Hyp, Errno> {
    if let Some(h) = HYP.get() {
        return Ok(h);
    }
    // SAFETY: dlsym with RTLD_DEFAULT and a NUL-terminated name; it only
    // looks the symbol up.
    let sym = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"rumpuser__hyp".as_ptr()) };
    if sym.is_null() {
        tracing::error!("sp-rumpuser: no rumpuser__hyp in this process (is librumpuser loaded?)");
        return Err(Errno::ENOSYS);
    }
    // SAFETY: the symbol is the kernel's `struct rumpuser_hyperup`, whose
    // layout `RumpuserHyperup` repeats; it is filled at rumpuser_init,
    // before the kernel starts a server, and not written afterwards.
    let table = unsafe { &*(sym as *const RumpuserHyperup) };
    let Some(h) = Hyp::from_table(table) else {
        tracing::error!("sp-rumpuser: rumpuser__hyp lacks a hypercall (rumpuser_init not run?)");
        return Err(Errno::EINVAL);
    };
    Ok(HYP.get_or_init(|| h))
}

thread_local! {
    /// The system call this thread runs for a client, if any: its `arg`
    /// and the port the server handed it (as an address of a
    /// `&dyn ClientPort` on the caller's stack).
    static CURRENT: Cell<(u64, *const ())> = const { Cell::new((0, std::ptr::null())) };
}

/// Runs `f` (a system call for the process whose `arg` this is) with
/// `port` as the port our callbacks use for that `arg` on this thread.
pub(crate) fn with_call_port<R>(arg: u64, port: &dyn ClientPort, f: impl FnOnce() -> R) -> R {
    struct Restore((u64, *const ()));
    impl Drop for Restore {
        fn drop(&mut self) {
            CURRENT.with(|c| c.set(self.0));
        }
    }
    let port_ref: &dyn ClientPort = port;
    let addr = &port_ref as *const &dyn ClientPort as *const ();
    let _restore = Restore(CURRENT.with(|c| c.replace((arg, addr))));
    f()
}

/// Runs `f` with the port that serves `arg` on this thread: the port of
/// the call this thread runs for that process, else the process's own.
/// EFAULT for an `arg` that names no process of ours.
fn with_port<R>(arg: u64, f: impl FnOnce(&dyn ClientPort) -> Result<R, Errno>) -> Result<R, Errno> {
    let (cur, addr) = CURRENT.with(Cell::get);
    if cur == arg && !addr.is_null() {
        // SAFETY: `addr` was set by `with_call_port` on this thread to the
        // address of a `&dyn ClientPort` that lives on its stack frame,
        // which is still running (we are called from inside `f` there: the
        // value is restored when that frame ends).
        let port: &dyn ClientPort = unsafe { *(addr as *const &dyn ClientPort) };
        return f(port);
    }
    match kernel::port_of(arg) {
        Some(port) => f(&*port),
        None => Err(Errno::EFAULT),
    }
}

/// [`with_port`] with the virtual CPU given back while `f` runs: `f`
/// waits for (or writes to) a client, which a scheduled thread must never
/// do. Nothing is unscheduled for an `arg` of no process.
fn with_port_unscheduled<R>(
    arg: u64,
    f: impl FnOnce(&dyn ClientPort) -> Result<R, Errno>,
) -> Result<R, Errno> {
    with_port(arg, |port| unscheduled(|| f(port)))
}

/// Runs an exported function's body: a panic becomes `on_panic`.
fn boundary(name: &str, on_panic: Errno, f: impl FnOnce() -> Result<(), Errno>) -> c_int {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => 0,
        Ok(Err(e)) => e.0,
        Err(_) => {
            tracing::error!("sp-rumpuser: panic in {name}; answering {on_panic}");
            on_panic.0
        }
    }
}

/// Gives the virtual CPU back around `f`, which waits for a client.
fn unscheduled<R>(f: impl FnOnce() -> R) -> R {
    let Ok(h) = hyp() else { return f() };
    let nlocks = h.backend_unschedule();
    struct Resched(&'static Hyp, c_int);
    impl Drop for Resched {
        fn drop(&mut self) {
            self.0.backend_schedule(self.1);
        }
    }
    let _again = Resched(h, nlocks);
    f()
}

fn c_str<'a>(p: *const c_char) -> Result<&'a str, Errno> {
    if p.is_null() {
        return Err(Errno::EINVAL);
    }
    // SAFETY: non-null and, by the C contract, NUL-terminated and alive
    // for the call.
    unsafe { CStr::from_ptr(p) }
        .to_str()
        .map_err(|_| Errno::EINVAL)
}

/// `int rumpuser_sp_init(const char *url, const char *ostype, const char
/// *osrelease, const char *machine)`: parses `url`, binds it and serves in
/// threads of its own; returns 0 or a NetBSD errno at once.
///
/// # Safety
/// Each argument is a NUL-terminated string (or null, refused with
/// EINVAL), alive for the call.
#[no_mangle]
pub unsafe extern "C" fn rumpuser_sp_init(
    url: *const c_char,
    ostype: *const c_char,
    osrelease: *const c_char,
    machine: *const c_char,
) -> c_int {
    boundary("rumpuser_sp_init", Errno::EINVAL, || {
        let (url, ostype, osrelease, machine) = (
            c_str(url)?,
            c_str(ostype)?,
            c_str(osrelease)?,
            c_str(machine)?,
        );
        crate::init(hyp()?, url, ostype, osrelease, machine)
    })
}

/// Copies `len` bytes at the client's `raddr` to `laddr` (EFAULT on any
/// failure).
///
/// # Safety
/// `laddr` is valid for `len` bytes of writes (the kernel's buffer).
#[no_mangle]
pub unsafe extern "C" fn rumpuser_sp_copyin(
    arg: *mut c_void,
    raddr: *const c_void,
    laddr: *mut c_void,
    len: usize,
) -> c_int {
    boundary("rumpuser_sp_copyin", Errno::EFAULT, || {
        if len == 0 {
            return Ok(());
        }
        if laddr.is_null() {
            return Err(Errno::EFAULT);
        }
        // SAFETY: non-null, and by the kernel's contract writable for len.
        let dst = unsafe { std::slice::from_raw_parts_mut(laddr.cast::<u8>(), len) };
        with_port_unscheduled(arg as u64, |p| p.copyin(raddr as u64, dst))
            .map_err(|_| Errno::EFAULT)
    })
}

/// Copies a string of at most `*len` bytes at `raddr` to `laddr`; on
/// return `*len` is the bytes stored, the NUL included. ENAMETOOLONG if
/// the client has no NUL within `*len`, EFAULT on any other failure.
///
/// # Safety
/// `len` is a valid pointer; `laddr` is writable for `*len` bytes.
#[no_mangle]
pub unsafe extern "C" fn rumpuser_sp_copyinstr(
    arg: *mut c_void,
    raddr: *const c_void,
    laddr: *mut c_void,
    len: *mut usize,
) -> c_int {
    boundary("rumpuser_sp_copyinstr", Errno::EFAULT, || {
        if len.is_null() || laddr.is_null() {
            return Err(Errno::EFAULT);
        }
        // SAFETY: non-null, by the contract a valid size_t.
        let max = unsafe { *len };
        if max == 0 {
            return Err(Errno::ENAMETOOLONG);
        }
        let s =
            with_port_unscheduled(arg as u64, |p| p.copyinstr(raddr as u64, max)).map_err(|e| {
                if e == Errno::ENAMETOOLONG {
                    e
                } else {
                    Errno::EFAULT
                }
            })?;
        if s.len() >= max {
            return Err(Errno::EFAULT);
        }
        // SAFETY: writable for `max` bytes by the contract; we write
        // s.len() + 1 <= max.
        let dst = unsafe { std::slice::from_raw_parts_mut(laddr.cast::<u8>(), s.len() + 1) };
        dst[..s.len()].copy_from_slice(&s);
        dst[s.len()] = 0;
        // SAFETY: checked non-null above.
        unsafe { *len = s.len() + 1 };
        Ok(())
    })
}

/// Stores `len` bytes from `laddr` at the client's `raddr`; does not wait.
///
/// # Safety
/// `laddr` is readable for `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn rumpuser_sp_copyout(
    arg: *mut c_void,
    laddr: *const c_void,
    raddr: *mut c_void,
    len: usize,
) -> c_int {
    boundary("rumpuser_sp_copyout", Errno::EFAULT, || {
        // SAFETY: readable for len by the contract (checked non-null).
        let src = unsafe { bytes(laddr, len) }?;
        with_port_unscheduled(arg as u64, |p| p.copyout(raddr as u64, src))
            .map_err(|_| Errno::EFAULT)
    })
}

/// As [`rumpuser_sp_copyout`] for a string of `*len` bytes (NUL included);
/// sent as a COPYOUT, as the reference does.
///
/// # Safety
/// `len` is a valid pointer; `laddr` is readable for `*len` bytes.
#[no_mangle]
pub unsafe extern "C" fn rumpuser_sp_copyoutstr(
    arg: *mut c_void,
    laddr: *const c_void,
    raddr: *mut c_void,
    len: *mut usize,
) -> c_int {
    boundary("rumpuser_sp_copyoutstr", Errno::EFAULT, || {
        if len.is_null() {
            return Err(Errno::EFAULT);
        }
        // SAFETY: non-null, by the contract a valid size_t.
        let n = unsafe { *len };
        // SAFETY: readable for n by the contract (checked non-null).
        let src = unsafe { bytes(laddr, n) }?;
        with_port_unscheduled(arg as u64, |p| p.copyoutstr(raddr as u64, src))
            .map_err(|_| Errno::EFAULT)
    })
}

/// Asks the client to map `len` bytes of anonymous memory; stores its
/// address in `*addr`. ENOMEM if the client could not, EFAULT if the
/// request failed.
///
/// # Safety
/// `addr` is a valid pointer.
#[no_mangle]
pub unsafe extern "C" fn rumpuser_sp_anonmmap(
    arg: *mut c_void,
    len: usize,
    addr: *mut *mut c_void,
) -> c_int {
    boundary("rumpuser_sp_anonmmap", Errno::EFAULT, || {
        if addr.is_null() {
            return Err(Errno::EFAULT);
        }
        let a = with_port_unscheduled(arg as u64, |p| p.anonmmap(len as u64))?;
        // SAFETY: checked non-null; a valid out-pointer by the contract.
        unsafe { *addr = a as usize as *mut c_void };
        Ok(())
    })
}

/// Delivers NetBSD signal `signo` to the client; does not wait.
///
/// # Safety
/// None beyond C's: `arg` is opaque.
#[no_mangle]
pub unsafe extern "C" fn rumpuser_sp_raise(arg: *mut c_void, signo: c_int) -> c_int {
    boundary("rumpuser_sp_raise", Errno::ESRCH, || {
        let signo = u32::try_from(signo).map_err(|_| Errno::EINVAL)?;
        with_port_unscheduled(arg as u64, |p| p.raise(signo))
    })
}

/// The kernel halts: answers the system call `arg`'s client is in (the
/// halting `reboot`), removes the unix socket and stops serving. Makes no
/// hypercall.
///
/// # Safety
/// None beyond C's: `arg` is opaque (null for a local caller).
#[no_mangle]
pub unsafe extern "C" fn rumpuser_sp_fini(arg: *mut c_void) {
    let rv = boundary("rumpuser_sp_fini", Errno::EIO, || {
        let arg = arg as u64;
        // As the reference: the socket goes first, then the halting
        // call's answer (error 0), then the servers stop.
        let servers = crate::fini_begin();
        if arg != 0 {
            let _ = with_port(arg, |p| p.answer_now(Ok([0, 0])));
        }
        crate::fini_end(servers);
        Ok(())
    });
    if rv != 0 {
        tracing::error!("sp-rumpuser: rumpuser_sp_fini failed: errno {rv}");
    }
}

/// Borrows `len` bytes at `p` (none for a zero length).
///
/// # Safety
/// `p` is readable for `len` bytes when `len` is not zero.
unsafe fn bytes<'a>(p: *const c_void, len: usize) -> Result<&'a [u8], Errno> {
    if len == 0 {
        return Ok(&[]);
    }
    if p.is_null() {
        return Err(Errno::EFAULT);
    }
    // SAFETY: non-null and readable for len by the caller's contract.
    Ok(unsafe { std::slice::from_raw_parts(p.cast::<u8>(), len) })
}
