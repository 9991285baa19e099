//! Helper of the exec end-to-end test (`tests/e2e_exec.rs`): a sysproxy
//! client that execs itself and checks, in the new image, what the kernel
//! kept across the exec.
//!
//! - `sp-exec-helper --driver URL`: connects as `exec-driver`, opens
//!   descriptors (some close-on-exec, one not), prints
//!   `before pid=P gone=A,B,... kept=K`, waits for a line on stdin, then
//!   execs itself with `--after P PPID K A,B,...`, handing the connection over.
//! - `--after ...` (the new image): adopts the connection with
//!   `Client::init` (HANDSHAKE EXEC), checks that the pid is the same, the
//!   close-on-exec descriptors are gone (EBADF) and the other is open with
//!   its data, prints `after pid=P`, and exits 0 at end of stdin.
//! - `--exec-fail URL`: an exec of a missing file fails and the connection
//!   still works.
//!
//! Every failure is printed on stderr and ends the process with status 1.

use sp_client::{Client, Errno, Options, EXECFD_VAR};
use sp_proto::abi::{fcntl, misc, oflag};
use std::ffi::OsString;
use std::io::{BufRead, Write};
use std::os::unix::ffi::OsStringExt;
use std::process::ExitCode;

/// What the driver writes into the descriptor that survives the exec.
const KEPT_DATA: &[u8] = b"kept across exec";

type Res<T> = Result<T, String>;

fn fail<T>(what: &str, e: impl std::fmt::Display) -> Res<T> {
    Err(format!("{what}: {e}"))
}

/// Turns a syscall error into a message naming the call.
fn sys<T>(what: &str, r: Result<T, Errno>) -> Res<T> {
    r.map_err(|e| format!("{what}: {e}"))
}

fn ensure(cond: bool, what: impl FnOnce() -> String) -> Res<()> {
    if cond {
        Ok(())
    } else {
        Err(what())
    }
}

/// Waits for one line (or end of file) on stdin.
fn wait_stdin() -> Res<String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| format!("reading stdin: {e}"))?;
    Ok(line.trim().to_owned())
}

fn say(line: &str) -> Res<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")
        .and_then(|()| out.flush())
        .map_err(|e| format!("writing stdout: {e}"))
}

fn driver(url: &str) -> Res<()> {
    let c = match Client::connect_with(url, Options::new().name("exec-driver")) {
        Ok(c) => c,
        Err(e) => return fail("connect", e),
    };
    let (pid, ppid) = sys("getpid", c.getpid())?;
    let rw = oflag::O_CREAT | oflag::O_RDWR;
    let gone = sys(
        "open cloexec",
        c.open("/tmp/exec-gone", rw | oflag::O_CLOEXEC, 0o644),
    )?;
    let kept = sys("open kept", c.open("/tmp/exec-kept", rw, 0o644))?;
    ensure(
        sys("write", c.write(kept, KEPT_DATA))? == KEPT_DATA.len(),
        || "short write".into(),
    )?;
    let dup = sys("F_DUPFD_CLOEXEC", c.fcntl(kept, fcntl::F_DUPFD_CLOEXEC, 0))?;
    let (pr, pw) = sys("pipe2", c.pipe2(oflag::O_CLOEXEC))?;
    let set = sys("open for F_SETFD", c.open("/tmp/exec-set", rw, 0o644))?;
    sys(
        "F_SETFD",
        c.fcntl(set, fcntl::F_SETFD, i64::from(fcntl::FD_CLOEXEC)),
    )?;
    ensure(
        sys("F_GETFD", c.fcntl(gone, fcntl::F_GETFD, 0))? == fcntl::FD_CLOEXEC as i32,
        || "O_CLOEXEC not reported by F_GETFD".into(),
    )?;
    ensure(
        sys("F_GETFD", c.fcntl(kept, fcntl::F_GETFD, 0))? == 0,
        || "the kept descriptor is close-on-exec".into(),
    )?;
    let gone_list = [gone, dup, pr, pw, set]
        .iter()
        .map(i32::to_string)
        .collect::<Vec<_>>()
        .join(",");
    say(&format!("before pid={pid} gone={gone_list} kept={kept}"))?;
    let go = wait_stdin()?;
    ensure(go == "exec", || {
        format!("expected `exec` on stdin, got {go:?}")
    })?;

    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let envp: Vec<OsString> = std::env::vars_os()
        .map(|(k, v)| {
            let mut kv = k.into_vec();
            kv.push(b'=');
            kv.extend(v.into_vec());
            OsString::from_vec(kv)
        })
        .collect();
    let argv = [
        "sp-exec-helper".to_owned(),
        "--after".to_owned(),
        pid.to_string(),
        ppid.to_string(),
        kept.to_string(),
        gone_list,
    ];
    let e = c.exec(&exe, &argv, &envp);
    fail("exec", e)
}

fn parse(args: &[String], i: usize) -> Res<i32> {
    args.get(i)
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| format!("argument {i} missing or not a number: {args:?}"))
}

fn after(args: &[String]) -> Res<()> {
    let (pid0, ppid0, kept) = (parse(args, 0)?, parse(args, 1)?, parse(args, 2)?);
    let gone: Vec<i32> = args
        .get(3)
        .ok_or("no list of close-on-exec descriptors")?
        .split(',')
        .map(|s| s.parse().map_err(|e| format!("bad descriptor {s:?}: {e}")))
        .collect::<Res<_>>()?;
    ensure(std::env::var_os(EXECFD_VAR).is_some(), || {
        format!("{EXECFD_VAR} is not set after exec")
    })?;
    // SAFETY: RUMPCLIENT__EXECFD was set by the exec of the previous image
    // and names the socket it handed over; nothing in this image owns an
    // inherited descriptor but the standard streams, which it never names.
    let c = match unsafe { Client::init(Options::default()) } {
        Ok(c) => c,
        Err(e) => return fail("Client::init after exec", e),
    };
    ensure(std::env::var_os(EXECFD_VAR).is_none(), || {
        format!("{EXECFD_VAR} is still set after init")
    })?;
    ensure(c.banner().is_none(), || {
        "an adopted connection read a banner".into()
    })?;
    let (pid, ppid) = sys("getpid after exec", c.getpid())?;
    ensure((pid, ppid) == (pid0, ppid0), || {
        format!("pid/ppid {pid}/{ppid} after exec, {pid0}/{ppid0} before")
    })?;
    for fd in gone {
        ensure(c.fstat(fd).err() == Some(Errno::EBADF), || {
            format!("close-on-exec descriptor {fd} survived the exec")
        })?;
        ensure(c.close(fd) == Err(Errno::EBADF), || {
            format!("close({fd}) of a close-on-exec descriptor did not fail with EBADF")
        })?;
    }
    let st = sys("fstat kept", c.fstat(kept))?;
    ensure(st.size() == KEPT_DATA.len() as u64, || {
        format!("kept file has size {}", st.size())
    })?;
    ensure(
        sys("lseek kept", c.lseek(kept, 0, misc::SEEK_CUR))? == KEPT_DATA.len() as i64,
        || "the kept descriptor lost its offset".into(),
    )?;
    sys("lseek kept", c.lseek(kept, 0, misc::SEEK_SET))?;
    let mut buf = [0u8; 64];
    let n = sys("read kept", c.read(kept, &mut buf))?;
    ensure(&buf[..n] == KEPT_DATA, || {
        format!("kept file reads {:?}", String::from_utf8_lossy(&buf[..n]))
    })?;
    ensure(
        sys("F_GETFD kept", c.fcntl(kept, fcntl::F_GETFD, 0))? == 0,
        || "the kept descriptor became close-on-exec".into(),
    )?;
    // A new descriptor takes the lowest free slot, one of those closed.
    let fresh = sys(
        "open after exec",
        c.open("/tmp/exec-new", oflag::O_CREAT | oflag::O_RDWR, 0o644),
    )?;
    ensure(fresh != kept, || "open reused the kept descriptor".into())?;
    sys("close new", c.close(fresh))?;
    say(&format!("after pid={pid}"))?;
    // Stay connected until the test has looked at the kernel's side.
    wait_stdin()?;
    Ok(())
}

fn exec_fail(url: &str) -> Res<()> {
    let c = match Client::connect_with(url, Options::new().name("exec-fail")) {
        Ok(c) => c,
        Err(e) => return fail("connect", e),
    };
    let fd = sys(
        "open",
        c.open("/tmp/exec-fail", oflag::O_CREAT | oflag::O_RDWR, 0o644),
    )?;
    let e = c.exec(
        "/nonexistent/sp-exec-helper",
        &["sp-exec-helper"],
        &[] as &[&str],
    );
    match e {
        sp_client::Error::Io(io) if io.kind() == std::io::ErrorKind::NotFound => {}
        other => return fail("exec of a missing file", other),
    }
    ensure(std::env::var_os(EXECFD_VAR).is_none(), || {
        format!("{EXECFD_VAR} set by a failed exec")
    })?;
    let (pid, _) = sys("getpid after a failed exec", c.getpid())?;
    sys("fstat after a failed exec", c.fstat(fd))?;
    say(&format!("still pid={pid}"))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let res = match (args.get(1).map(String::as_str), args.get(2)) {
        (Some("--driver"), Some(url)) => driver(url),
        (Some("--after"), _) => after(&args[2..]),
        (Some("--exec-fail"), Some(url)) => exec_fail(url),
        _ => Err("usage: sp-exec-helper --driver URL | --exec-fail URL".into()),
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sp-exec-helper: {e}");
            ExitCode::FAILURE
        }
    }
}
