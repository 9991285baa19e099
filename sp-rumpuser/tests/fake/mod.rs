//! A fake rump kernel for tests: the test binary defines `rumpuser__hyp`
//! (found by the library with dlsym, as it finds the stock one), and every
//! hypercall records and checks the discipline a real kernel relies on:
//! - no hypercall while the calling thread is unscheduled, no schedule
//!   twice, no backend_unschedule while unscheduled;
//! - a client's copy is never waited for while scheduled (our callbacks
//!   must backend_unschedule first);
//! - rfork off process 1 only with RUMP_RFFD_CLEAR, the rfork flags of
//!   each path recorded;
//! - execnotify only with one lwp left and the process exiting;
//! - an lwp switched to must exist; release needs a current lwp.
//!
//! It implements a few system calls through the `rumpuser_sp_*` callbacks
//! with the `arg` each process was forked with: getpid, open (copyinstr),
//! write (copyin), read (copyout), close, pipe, mmap (anonmmap), kill
//! (raise), and reboot (fini).
#![allow(dead_code, unsafe_code)]

use parking_lot::{Condvar, Mutex};
use sp_rumpuser::RumpuserHyperup;
use std::cell::Cell;
use std::collections::HashMap;
use std::ffi::{c_char, c_int, c_long, c_void, CStr};
use std::sync::Arc;

/// The table the library finds by name.
#[no_mangle]
pub static rumpuser__hyp: RumpuserHyperup = RumpuserHyperup {
    hyp_schedule: Some(schedule),
    hyp_unschedule: Some(unschedule),
    hyp_backend_unschedule: Some(backend_unschedule),
    hyp_backend_schedule: Some(backend_schedule),
    hyp_lwproc_switch: Some(lwproc_switch),
    hyp_lwproc_release: Some(lwproc_release),
    hyp_lwproc_rfork: Some(lwproc_rfork),
    hyp_lwproc_newlwp: Some(lwproc_newlwp),
    hyp_lwproc_curlwp: Some(lwproc_curlwp),
    hyp_syscall: Some(syscall),
    hyp_lwpexit: Some(lwpexit),
    hyp_execnotify: Some(execnotify),
    hyp_getpid: Some(getpid),
    hyp__extra: [std::ptr::null_mut(); 8],
};

/// Keeps the table in the binary (it is only ever looked up by name).
pub fn table() -> &'static RumpuserHyperup {
    &rumpuser__hyp
}

pub const EBUSY: c_int = 16;
pub const EINTR: c_int = 4;
pub const EBADF: c_int = 9;
pub const ENOSYS: c_int = 78;
pub const ESRCH: c_int = 3;

#[derive(Default)]
pub struct Proc {
    pub pid: i32,
    pub ppid: i32,
    pub arg: usize,
    pub comm: String,
    pub lwps: u32,
    pub exiting: bool,
    pub fds: Arc<Mutex<Fds>>,
}

#[derive(Default)]
pub struct Fds {
    pub next: i32,
    pub open: HashMap<i32, File>,
}

#[derive(Clone)]
pub enum File {
    Data(Arc<Mutex<Vec<u8>>>),
    PipeRead(Arc<Pipe>),
    PipeWrite(Arc<Pipe>),
}

#[derive(Default)]
pub struct Pipe {
    pub data: Mutex<Vec<u8>>,
    pub cv: Condvar,
}

#[derive(Default)]
pub struct World {
    pub next_pid: i32,
    pub next_lwp: usize,
    pub procs: HashMap<i32, Proc>,
    /// lwp -> pid
    pub lwps: HashMap<usize, i32>,
    pub files: HashMap<Vec<u8>, Arc<Mutex<Vec<u8>>>>,
    pub violations: Vec<String>,
    /// (flags, parent pid) of every rfork.
    pub rforks: Vec<(c_int, i32)>,
    pub execnotified: Vec<(i32, String)>,
    pub released: Vec<i32>,
    /// A client's reboot halted the kernel.
    pub halted: bool,
}

pub static WORLD: Mutex<Option<World>> = Mutex::new(None);
/// Woken on every exit mark, for blocked pipe readers.
pub static EXITCV: Condvar = Condvar::new();

/// A gate every `hyp_schedule` passes: closed, no thread gets a CPU.
pub static GATE: Mutex<bool> = Mutex::new(true);
pub static GATE_CV: Condvar = Condvar::new();
/// Threads waiting at the closed gate.
pub static AT_GATE: Mutex<usize> = Mutex::new(0);

/// A process whose release waits (as a real kernel's may, for a vnode
/// lock held by a call that waits for its client) until cleared.
pub static STALL_RELEASE: Mutex<Option<i32>> = Mutex::new(None);
pub static STALL_CV: Condvar = Condvar::new();
/// Releases waiting at the stall.
pub static STALLED: Mutex<usize> = Mutex::new(0);

pub fn stall_release_of(pid: i32) {
    *STALL_RELEASE.lock() = Some(pid);
}

pub fn end_stall() {
    *STALL_RELEASE.lock() = None;
    STALL_CV.notify_all();
}

pub fn stalled() -> usize {
    *STALLED.lock()
}

pub fn close_gate() {
    *GATE.lock() = false;
}

pub fn open_gate() {
    *GATE.lock() = true;
    GATE_CV.notify_all();
}

pub fn waiting_at_gate() -> usize {
    *AT_GATE.lock()
}

thread_local! {
    /// backend_unschedule calls on this thread, to check that a callback
    /// which waits for a client gave its CPU back first.
    static GAVE_BACK: Cell<u64> = const { Cell::new(0) };
    static SCHEDULED: Cell<bool> = const { Cell::new(false) };
    static CURLWP: Cell<usize> = const { Cell::new(0) };
}

pub fn with<R>(f: impl FnOnce(&mut World) -> R) -> R {
    let mut g = WORLD.lock();
    let w = g.get_or_insert_with(|| World {
        next_pid: 2,
        next_lwp: 0x1000,
        ..World::default()
    });
    f(w)
}

fn violation(what: String) {
    with(|w| w.violations.push(what));
}

pub fn violations() -> Vec<String> {
    with(|w| w.violations.clone())
}

fn need_scheduled(what: &str) {
    if !SCHEDULED.with(Cell::get) {
        violation(format!("{what} while unscheduled"));
    }
}

/// The process of this thread's current lwp.
fn cur_pid() -> Option<i32> {
    let l = CURLWP.with(Cell::get);
    if l == 0 {
        return None;
    }
    with(|w| w.lwps.get(&l).copied())
}

unsafe extern "C" fn schedule() {
    {
        let mut open = GATE.lock();
        if !*open {
            *AT_GATE.lock() += 1;
            while !*open {
                GATE_CV.wait(&mut open);
            }
            *AT_GATE.lock() -= 1;
        }
    }
    if SCHEDULED.with(|s| s.replace(true)) {
        violation("schedule while scheduled".into());
    }
}

unsafe extern "C" fn unschedule() {
    if !SCHEDULED.with(|s| s.replace(false)) {
        violation("unschedule while unscheduled".into());
    }
}

unsafe extern "C" fn backend_unschedule(_n: c_int, nlocks: *mut c_int, _i: *mut c_void) {
    need_scheduled("backend_unschedule");
    SCHEDULED.with(|s| s.set(false));
    GAVE_BACK.with(|g| g.set(g.get() + 1));
    // SAFETY: the library passes a valid out-pointer.
    unsafe { *nlocks = 7 };
}

unsafe extern "C" fn backend_schedule(nlocks: c_int, _i: *mut c_void) {
    if nlocks != 7 {
        violation(format!("backend_schedule with nlocks {nlocks}"));
    }
    if SCHEDULED.with(|s| s.replace(true)) {
        violation("backend_schedule while scheduled".into());
    }
}

unsafe extern "C" fn lwproc_switch(l: *mut c_void) {
    need_scheduled("lwproc_switch");
    let l = l as usize;
    if l != 0 && with(|w| !w.lwps.contains_key(&l)) {
        violation(format!("switch to unknown lwp {l:#x}"));
    }
    CURLWP.with(|c| c.set(l));
}

unsafe extern "C" fn lwproc_release() {
    need_scheduled("lwproc_release");
    let l = CURLWP.with(|c| c.replace(0));
    if l == 0 {
        violation("release with no current lwp".into());
        return;
    }
    let pid = with(|w| w.lwps.get(&l).copied());
    let last = with(|w| {
        pid.and_then(|p| w.procs.get(&p))
            .is_some_and(|p| p.lwps == 1)
    });
    if last {
        let mut stall = STALL_RELEASE.lock();
        if pid.is_some() && *stall == pid {
            *STALLED.lock() += 1;
            while *stall == pid {
                STALL_CV.wait(&mut stall);
            }
            *STALLED.lock() -= 1;
        }
    }
    with(|w| {
        let Some(pid) = w.lwps.remove(&l) else {
            w.violations.push(format!("release of unknown lwp {l:#x}"));
            return;
        };
        let gone = match w.procs.get_mut(&pid) {
            Some(p) => {
                p.lwps -= 1;
                p.lwps == 0
            }
            None => false,
        };
        if gone {
            w.procs.remove(&pid);
            w.released.push(pid);
        }
    });
}

unsafe extern "C" fn lwproc_rfork(arg: *mut c_void, flags: c_int, comm: *const c_char) -> c_int {
    need_scheduled("lwproc_rfork");
    let comm = if comm.is_null() {
        None
    } else {
        // SAFETY: the library passes a NUL-terminated string.
        Some(
            unsafe { CStr::from_ptr(comm) }
                .to_string_lossy()
                .into_owned(),
        )
    };
    let parent = cur_pid();
    if parent.is_none() && flags != 2 {
        violation(format!("rfork off process 1 with flags {flags}"));
    }
    if arg.is_null() {
        violation("rfork with a null arg".into());
    }
    let l = with(|w| {
        let pid = w.next_pid;
        w.next_pid += 1;
        let (ppid, pcomm, fds) = match parent.and_then(|pp| w.procs.get(&pp)) {
            Some(pp) => {
                let fds = match flags {
                    0 => pp.fds.clone(),
                    _ => {
                        let src = pp.fds.lock();
                        Arc::new(Mutex::new(Fds {
                            next: src.next,
                            open: src.open.clone(),
                        }))
                    }
                };
                (pp.pid, pp.comm.clone(), fds)
            }
            None => (
                1,
                String::new(),
                Arc::new(Mutex::new(Fds {
                    next: 3,
                    ..Fds::default()
                })),
            ),
        };
        w.rforks.push((flags, ppid));
        let lwp = w.next_lwp;
        w.next_lwp += 0x10;
        w.lwps.insert(lwp, pid);
        w.procs.insert(
            pid,
            Proc {
                pid,
                ppid,
                arg: arg as usize,
                comm: comm.unwrap_or(pcomm),
                lwps: 1,
                exiting: false,
                fds,
            },
        );
        lwp
    });
    CURLWP.with(|c| c.set(l));
    0
}

unsafe extern "C" fn lwproc_newlwp(pid: libc::pid_t) -> c_int {
    need_scheduled("lwproc_newlwp");
    let r = with(|w| {
        let Some(p) = w.procs.get_mut(&pid) else {
            return Err(ESRCH);
        };
        if p.exiting {
            return Err(EBUSY);
        }
        p.lwps += 1;
        let lwp = w.next_lwp;
        w.next_lwp += 0x10;
        w.lwps.insert(lwp, pid);
        Ok(lwp)
    });
    match r {
        Ok(l) => {
            CURLWP.with(|c| c.set(l));
            0
        }
        Err(e) => e,
    }
}

unsafe extern "C" fn lwproc_curlwp() -> *mut c_void {
    need_scheduled("lwproc_curlwp");
    CURLWP.with(Cell::get) as *mut c_void
}

unsafe extern "C" fn lwpexit() {
    need_scheduled("lwpexit");
    let Some(pid) = cur_pid() else {
        violation("lwpexit with no current lwp".into());
        return;
    };
    with(|w| {
        if let Some(p) = w.procs.get_mut(&pid) {
            p.exiting = true;
        }
    });
    // Wake blocked pipe readers: each rechecks its process.
    let pipes: Vec<Arc<Pipe>> = with(|w| {
        w.procs
            .values()
            .flat_map(|p| {
                p.fds
                    .lock()
                    .open
                    .values()
                    .filter_map(|f| match f {
                        File::PipeRead(p) | File::PipeWrite(p) => Some(p.clone()),
                        _ => None,
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    });
    for p in pipes {
        let _g = p.data.lock();
        p.cv.notify_all();
    }
}

unsafe extern "C" fn execnotify(comm: *const c_char) {
    need_scheduled("execnotify");
    // SAFETY: the library passes a NUL-terminated string.
    let comm = unsafe { CStr::from_ptr(comm) }
        .to_string_lossy()
        .into_owned();
    let Some(pid) = cur_pid() else {
        violation("execnotify with no current lwp".into());
        return;
    };
    with(|w| {
        let Some(p) = w.procs.get_mut(&pid) else {
            return;
        };
        if p.lwps != 1 || !p.exiting {
            w.violations.push(format!(
                "execnotify of pid {pid} with {} lwps, exiting {}",
                p.lwps, p.exiting
            ));
        }
        p.exiting = false;
        p.comm = comm.clone();
        w.execnotified.push((pid, comm));
    });
}

unsafe extern "C" fn getpid() -> libc::pid_t {
    need_scheduled("getpid");
    cur_pid().unwrap_or(1)
}

fn slot(args: *const u64, i: usize) -> u64 {
    // SAFETY: the library hands at least 8 slots (SYS_MAXSYSARGS).
    unsafe { *args.add(i) }
}

/// Waits for a client's answer the way a kernel does: CPU given back.
fn copyin(arg: usize, addr: u64, len: usize) -> Result<Vec<u8>, c_int> {
    let mut buf = vec![0u8; len];
    // SAFETY: `buf` is writable for len.
    let rv = waiting_callback("copyin", || unsafe {
        sp_rumpuser::rumpuser_sp_copyin(
            arg as *mut c_void,
            addr as *const c_void,
            buf.as_mut_ptr().cast(),
            len,
        )
    });
    if rv == 0 {
        Ok(buf)
    } else {
        Err(rv)
    }
}

fn after_callback(what: &str) {
    if !SCHEDULED.with(Cell::get) {
        violation(format!("{what} returned unscheduled"));
    }
}

/// Runs a callback that waits for (or writes to) a client: it must give
/// the CPU back while it does.
fn waiting_callback<R>(what: &str, f: impl FnOnce() -> R) -> R {
    let before = GAVE_BACK.with(Cell::get);
    let r = f();
    if GAVE_BACK.with(Cell::get) == before {
        violation(format!("{what} reached its client while scheduled"));
    }
    after_callback(what);
    r
}

unsafe extern "C" fn syscall(num: c_int, argp: *mut c_void, retval: *mut c_long) -> c_int {
    need_scheduled("syscall");
    let args = argp as *const u64;
    let Some(pid) = cur_pid() else {
        violation("syscall with no current lwp".into());
        return EBADF;
    };
    let (arg, ppid, fds) = match with(|w| w.procs.get(&pid).map(|p| (p.arg, p.ppid, p.fds.clone())))
    {
        Some(x) => x,
        None => return ESRCH,
    };
    if !(0..512).contains(&num) {
        violation(format!("syscall number {num} outside the table"));
        return ENOSYS;
    }
    // Past what the client sent the block reads zeros (tests send getpid
    // at most one slot): it is padded, never read past its end.
    if num == 20 && (1..8).any(|i| slot(args, i) != 0) {
        violation("getpid's argument block is not zero-padded".into());
    }
    let mut rv: [i64; 2] = [0, 0];
    let err = match num {
        20 => {
            rv = [pid as i64, ppid as i64];
            0
        }
        5 => {
            // open(path, flags, mode): COPYINSTR of the path.
            let mut buf = vec![0u8; 1024];
            let mut len: usize = buf.len();
            // SAFETY: buf is writable for len bytes; len is a valid pointer.
            let e = waiting_callback("copyinstr", || unsafe {
                sp_rumpuser::rumpuser_sp_copyinstr(
                    arg as *mut c_void,
                    slot(args, 0) as *const c_void,
                    buf.as_mut_ptr().cast(),
                    &mut len,
                )
            });
            if e != 0 {
                e
            } else {
                let name = buf[..len.saturating_sub(1)].to_vec();
                let file = with(|w| w.files.entry(name).or_default().clone());
                let mut t = fds.lock();
                let fd = t.next;
                t.next += 1;
                t.open.insert(fd, File::Data(file));
                rv[0] = fd as i64;
                0
            }
        }
        4 => {
            // write(fd, buf, n)
            let fd = slot(args, 0) as i32;
            let n = slot(args, 2) as usize;
            let f = fds.lock().open.get(&fd).cloned();
            match f {
                None => EBADF,
                Some(f) => match copyin(arg, slot(args, 1), n) {
                    Err(e) => e,
                    Ok(bytes) => {
                        match f {
                            File::Data(d) => d.lock().extend_from_slice(&bytes),
                            File::PipeWrite(p) | File::PipeRead(p) => {
                                p.data.lock().extend_from_slice(&bytes);
                                p.cv.notify_all();
                            }
                        }
                        rv[0] = n as i64;
                        0
                    }
                },
            }
        }
        3 => {
            // read(fd, buf, n): whole file, or a pipe that blocks.
            let fd = slot(args, 0) as i32;
            let n = slot(args, 2) as usize;
            let f = fds.lock().open.get(&fd).cloned();
            let data = match f {
                None => Err(EBADF),
                Some(File::Data(d)) => {
                    let d = d.lock();
                    Ok(d[..n.min(d.len())].to_vec())
                }
                Some(File::PipeRead(p)) | Some(File::PipeWrite(p)) => {
                    let mut nlocks = 0;
                    // SAFETY: our own table's entry, as a kernel would
                    // before it sleeps.
                    unsafe { backend_unschedule(0, &mut nlocks, std::ptr::null_mut()) };
                    let got = {
                        let mut d = p.data.lock();
                        loop {
                            if !d.is_empty() {
                                let take = n.min(d.len());
                                break Ok(d.drain(..take).collect::<Vec<u8>>());
                            }
                            if with(|w| w.procs.get(&pid).map_or(true, |p| p.exiting)) {
                                break Err(EINTR);
                            }
                            p.cv.wait(&mut d);
                        }
                    };
                    // SAFETY: as above.
                    unsafe { backend_schedule(nlocks, std::ptr::null_mut()) };
                    got
                }
            };
            match data {
                Err(e) => e,
                Ok(v) => {
                    // SAFETY: v is readable for its length.
                    let e = waiting_callback("copyout", || unsafe {
                        sp_rumpuser::rumpuser_sp_copyout(
                            arg as *mut c_void,
                            v.as_ptr().cast(),
                            slot(args, 1) as *mut c_void,
                            v.len(),
                        )
                    });
                    rv[0] = v.len() as i64;
                    e
                }
            }
        }
        6 => {
            let fd = slot(args, 0) as i32;
            if fds.lock().open.remove(&fd).is_some() {
                0
            } else {
                EBADF
            }
        }
        42 => {
            let p = Arc::new(Pipe::default());
            let mut t = fds.lock();
            let r = t.next;
            t.open.insert(r, File::PipeRead(p.clone()));
            t.open.insert(r + 1, File::PipeWrite(p));
            t.next += 2;
            rv = [r as i64, (r + 1) as i64];
            0
        }
        197 => {
            // mmap(addr, len, ...): ANONMMAP.
            let mut addr: *mut c_void = std::ptr::null_mut();
            // SAFETY: addr is a valid out-pointer.
            let e = waiting_callback("anonmmap", || unsafe {
                sp_rumpuser::rumpuser_sp_anonmmap(
                    arg as *mut c_void,
                    slot(args, 1) as usize,
                    &mut addr,
                )
            });
            rv[0] = addr as i64;
            e
        }
        37 => {
            // kill(pid, sig): RAISE in the target's client.
            let target = slot(args, 0) as i32;
            match with(|w| w.procs.get(&target).map(|p| p.arg)) {
                None => ESRCH,
                Some(a) => {
                    // SAFETY: plain values.
                    waiting_callback("raise", || unsafe {
                        sp_rumpuser::rumpuser_sp_raise(a as *mut c_void, slot(args, 1) as c_int)
                    })
                }
            }
        }
        208 => {
            // reboot: the kernel halts from inside this call.
            with(|w| w.halted = true);
            // SAFETY: an arg the library gave us.
            unsafe { sp_rumpuser::rumpuser_sp_fini(arg as *mut c_void) };
            0
        }
        _ => ENOSYS,
    };
    // SAFETY: retval points at two longs.
    unsafe {
        *retval = rv[0] as c_long;
        *retval.add(1) = rv[1] as c_long;
    }
    err
}

/// Starts a server on the fake kernel through the C entry point.
pub fn init(url: &str) -> c_int {
    let _ = table();
    let url = std::ffi::CString::new(url).unwrap();
    // SAFETY: NUL-terminated strings alive for the call.
    unsafe {
        sp_rumpuser::rumpuser_sp_init(
            url.as_ptr(),
            c"NetBSD".as_ptr(),
            c"7.99.34".as_ptr(),
            c"amd64".as_ptr(),
        )
    }
}

/// A unix URL in a fresh directory.
pub fn unix_url(dir: &tempfile::TempDir, name: &str) -> String {
    format!("unix://{}/{name}", dir.path().display())
}

/// Whether `pid` is still a process of the fake kernel.
pub fn alive(pid: i32) -> bool {
    with(|w| w.procs.contains_key(&pid))
}
