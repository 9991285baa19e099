//! `sp demo`: a server on the model kernel on a temporary unix socket, in
//! this process, and a client walked through every cycle of the protocol,
//! each step said in plain words and checked.

use rustix::process::{waitpid, Pid, WaitOptions};
use sp_client::{Client, ForkResult, Options};
use sp_model::ModelKernel;
use sp_proto::abi::{misc, oflag, Signal};
use sp_proto::Errno;
use sp_server::{Config, Server};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

/// A demo step that did not check out.
#[derive(Debug, thiserror::Error)]
#[error("step {step} failed: {why}")]
pub struct DemoError {
    step: &'static str,
    why: String,
}

type Step<T> = Result<T, DemoError>;

fn fail<E: std::fmt::Display>(step: &'static str) -> impl FnOnce(E) -> DemoError {
    move |e| DemoError {
        step,
        why: e.to_string(),
    }
}

fn check(step: &'static str, ok: bool, why: impl FnOnce() -> String) -> Step<()> {
    if ok {
        Ok(())
    } else {
        Err(DemoError { step, why: why() })
    }
}

/// Options of `sp demo`.
#[derive(clap::Args, Debug, Default)]
pub struct DemoArgs {}

/// Runs the demo; `Ok` only if every step checked out.
pub fn run(_args: DemoArgs) -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::Builder::new().prefix("sp-demo").tempdir()?;
    let url = format!("unix://{}", dir.path().join("demo.sock").display());
    let kernel = Arc::new(ModelKernel::new());
    let server = Server::bind(&url, kernel.clone(), Config::default())?.spawn()?;
    println!("A sysproxy server with the model kernel listens on {url} (in this process).");
    let steps = walk(&url, &kernel)?;
    server.stop()?;
    println!("\nAll {steps} steps checked out; the server has stopped and removed its socket.");
    Ok(())
}

fn walk(url: &str, kernel: &ModelKernel) -> Step<usize> {
    let (sig_tx, sig_rx) = mpsc::channel::<u32>();
    let sig_tx = std::sync::Mutex::new(sig_tx);
    let opts = Options::new().name("sp-demo").on_signal(move |s| {
        let _ = sig_tx.lock().map(|t| t.send(s));
    });

    println!("\n1. Handshake: the client reads the banner and asks for a new kernel process.");
    let c = Client::connect_with(url, opts.clone()).map_err(fail("handshake"))?;
    let banner = c
        .banner()
        .map(|b| format!("{}-{}/{}", b.ostype, b.osrelease, b.machine))
        .unwrap_or_default();
    let (pid, ppid) = c.getpid().map_err(fail("getpid"))?;
    println!("   banner {banner}; getpid() in the remote kernel says pid {pid}, parent {ppid}.");
    check(
        "handshake",
        kernel.comm(pid).as_deref() == Some(&b"sp-demo"[..]),
        || "kernel process not named".into(),
    )?;

    println!(
        "\n2. File I/O: write(2) makes the server COPYIN our bytes, read(2) COPYOUTs them back."
    );
    c.mkdir("/tmp/demo", 0o755).map_err(fail("mkdir"))?;
    let fd = c
        .open("/tmp/demo/hello.txt", oflag::O_RDWR | oflag::O_CREAT, 0o644)
        .map_err(fail("open"))?;
    let text = b"hello from the other side of a socket\n";
    let n = c.write(fd, text).map_err(fail("write"))?;
    c.lseek(fd, 0, misc::SEEK_SET).map_err(fail("lseek"))?;
    let mut back = vec![0u8; 64];
    let m = c.read(fd, &mut back).map_err(fail("read"))?;
    check("file I/O", &back[..m] == text, || {
        format!("read back {:?}", String::from_utf8_lossy(&back[..m]))
    })?;
    let size = c.fstat(fd).map_err(fail("fstat"))?.size();
    println!(
        "   wrote {n} bytes to /tmp/demo/hello.txt, read {m} back unchanged; fstat says {size} bytes."
    );

    println!("\n3. A directory listing: getdents(2) fills our buffer with NetBSD dirent records.");
    for name in ["alpha", "beta", "gamma"] {
        let f = c
            .open(
                format!("/tmp/demo/{name}"),
                oflag::O_WRONLY | oflag::O_CREAT,
                0o600,
            )
            .map_err(fail("create"))?;
        c.close(f).map_err(fail("close"))?;
    }
    let mut names: Vec<String> = c
        .read_dir("/tmp/demo")
        .map_err(fail("getdents"))?
        .iter()
        .map(|e| e.name_lossy().into_owned())
        .collect();
    names.sort();
    check(
        "listing",
        names == [".", "..", "alpha", "beta", "gamma", "hello.txt"],
        || format!("{names:?}"),
    )?;
    println!("   /tmp/demo holds {}.", names.join(" "));

    println!("\n4. A pipe with no reader: write(2) fails with EPIPE and the server RAISEs SIGPIPE in us.");
    let (r, w) = c.pipe().map_err(fail("pipe"))?;
    c.close(r).map_err(fail("close"))?;
    let err = c.write(w, b"anyone?").err();
    check("sigpipe", err == Some(Errno::EPIPE), || {
        format!("write gave {err:?}")
    })?;
    let got = sig_rx
        .recv_timeout(Duration::from_secs(10))
        .map_err(fail("sigpipe"))?;
    check("sigpipe", got == Signal::SIGPIPE.0, || {
        format!("signal {got}")
    })?;
    println!(
        "   write gave {}, and signal {got} (SIGPIPE) arrived at our handler.",
        Errno::EPIPE
    );

    println!("\n5. mmap(MAP_ANON): the kernel asks us (ANONMMAP) to map memory on its behalf.");
    let addr = c.mmap_anon(65536).map_err(fail("mmap"))?;
    let map = c.mapping(addr).ok_or_else(|| DemoError {
        step: "mmap",
        why: "no mapping".into(),
    })?;
    check(
        "mmap",
        map.len() == 65536 && map.write_at(0, b"mapped"),
        || "mapping not writable".into(),
    )?;
    println!(
        "   the kernel's mmap returned {addr:#x}: 64 KiB of real memory here, which we can use."
    );

    println!(
        "\n6. fork: PREFORK copies our kernel process, the host child claims it with a cookie."
    );
    let child_pid = fork_step(&c, fd)?;
    println!(
        "   the child was kernel pid {child_pid} (we are {pid}; as in a stock rump kernel the prefork is forked \
         once more and let go, so the child's parent is 1) and read our file through the copied descriptor."
    );

    println!(
        "\n7. exec: a new program image takes over this connection and keeps the kernel process."
    );
    exec_step(url)?;

    c.close(fd).map_err(fail("close"))?;
    c.disconnect();
    Ok(7)
}

fn fork_step(c: &Client, fd: i32) -> Step<i32> {
    let (rp, wp) = c.pipe().map_err(fail("fork pipe"))?;
    c.lseek(fd, 0, misc::SEEK_SET).map_err(fail("lseek"))?;
    // SAFETY: the child only talks to the server over its own new
    // connection and leaves with _exit, touching no lock of this process's
    // other threads; the in-process server keeps running in the parent.
    match unsafe { c.fork() }.map_err(fail("fork"))? {
        ForkResult::Child(child) => {
            let code = (|| -> Option<()> {
                let (kpid, kppid) = child.getpid().ok()?;
                let mut buf = [0u8; 5];
                child.read(fd, &mut buf).ok().filter(|&n| n == 5)?;
                let msg = format!("{kpid} {kppid} {}", String::from_utf8_lossy(&buf));
                child.write(wp, msg.as_bytes()).ok()?;
                Some(())
            })()
            .map_or(1, |()| 0);
            // _exit: the child ends without running the parent's atexit
            // handlers or destructors that belong to the parent.
            signal_hook::low_level::exit(code)
        }
        ForkResult::Parent { pid } => {
            let pid = Pid::from_raw(pid).ok_or_else(|| fail("fork")("no child pid"))?;
            let status = waitpid(Some(pid), WaitOptions::empty())
                .map_err(fail("waitpid"))?
                .map(|(_, status)| status);
            check(
                "fork",
                status.is_some_and(|s| s.exit_status() == Some(0)),
                || format!("child exited with {status:?}"),
            )?;
            c.close(wp).map_err(fail("close"))?;
            let mut buf = [0u8; 64];
            let n = c.read(rp, &mut buf).map_err(fail("fork pipe read"))?;
            let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
            let parts: Vec<&str> = msg.split(' ').collect();
            // The kernel child is the prefork's own child, and the prefork
            // is gone: its parent is init.
            check(
                "fork",
                parts.len() == 3 && parts[1] == "1" && parts[2] == "hello",
                || format!("child said {msg:?}"),
            )?;
            c.close(rp).map_err(fail("close"))?;
            parts[0].parse().map_err(fail("fork"))
        }
    }
}

fn exec_step(url: &str) -> Step<()> {
    let exe = std::env::current_exe().map_err(fail("exec"))?;
    let out = std::process::Command::new(exe)
        .args(["demo-exec", "--url", url])
        .output()
        .map_err(fail("exec"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    for line in text.lines() {
        println!("   {line}");
    }
    check("exec", out.status.success(), || {
        format!("{}{}", text, String::from_utf8_lossy(&out.stderr))
    })
}

/// Options of the hidden `sp demo-exec`: the two halves of the exec step.
#[derive(clap::Args, Debug)]
pub struct DemoExecArgs {
    /// The server (before the exec).
    #[arg(long)]
    pub url: Option<String>,
    /// After the exec: kernel pid, close-on-exec fd and kept fd, as "pid,cloexec,keep".
    #[arg(long)]
    pub after: Option<String>,
}

/// Before the exec: connect, open one descriptor with O_CLOEXEC and one
/// without, then exec this program again. After it: adopt the connection
/// and check what survived.
pub fn run_exec(args: DemoExecArgs) -> Result<(), Box<dyn std::error::Error>> {
    if let Some(after) = args.after {
        let v: Vec<i32> = after.split(',').map(str::parse).collect::<Result<_, _>>()?;
        let [pid, cloexec, keep] = v[..] else {
            return Err("bad --after".into());
        };
        // SAFETY: RUMPCLIENT__EXECFD was set by the exec of the previous
        // image (below) and names the socket it handed over; nothing in
        // this image owns an inherited descriptor but the standard streams,
        // which that exec never names.
        let c = unsafe { Client::init(Options::new().name("sp-demo-after")) }?;
        let (now, _) = c.getpid()?;
        let gone = c.fstat(cloexec).err();
        let kept = c.fstat(keep).is_ok();
        println!("after exec: the new image on the same socket is still kernel pid {now}.");
        println!("after exec: the O_CLOEXEC descriptor is gone ({gone:?}), the other one is open ({kept}).");
        if now != pid || gone != Some(Errno::EBADF) || !kept {
            return Err("exec did not keep the process as expected".into());
        }
        return Ok(());
    }
    let url = args.url.ok_or("--url is needed")?;
    let c = Client::connect_with(&url, Options::new().name("sp-demo-before"))?;
    let (pid, _) = c.getpid()?;
    let cloexec = c.open("/tmp/demo/hello.txt", oflag::O_RDONLY | oflag::O_CLOEXEC, 0)?;
    let keep = c.open("/tmp/demo/hello.txt", oflag::O_RDONLY, 0)?;
    println!("before exec: kernel pid {pid}, descriptors {cloexec} (close-on-exec) and {keep}.");
    use std::io::Write;
    std::io::stdout().flush()?;
    let exe = std::env::current_exe()?;
    let after = format!("{pid},{cloexec},{keep}");
    let envp: Vec<String> = std::env::vars().map(|(k, v)| format!("{k}={v}")).collect();
    let err = c.exec(&exe, &["sp", "demo-exec", "--after", &after], &envp);
    Err(err.into())
}
