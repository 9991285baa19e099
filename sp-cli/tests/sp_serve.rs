//! `sp serve` and `sp call` as a user runs them: a real process, a raw
//! client's handshake and getpid, a clean exit on SIGTERM with the socket
//! removed, options checked at start, signals an operator sends, and the
//! shell habits of `sp call` (pipes, `--server` anywhere, long names).

use sp_testkit::rawpeer::RawPeer;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::MetadataExt;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long a test waits for one line of the server's log.
const LOG_TIMEOUT: Duration = Duration::from_secs(20);

/// Sends signal `name` (e.g. "USR1") to `child` with kill(1).
fn signal(child: &Child, name: &str) {
    let st = Command::new("kill")
        .args(["-s", name, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success(), "kill -s {name}");
}

/// `sp serve` started with `RUST_LOG=info`; its stderr lines arrive on a
/// channel (stderr is a pipe, so this is also what a log file gets).
struct Serve {
    child: Child,
    url: String,
    sock: std::path::PathBuf,
    lines: mpsc::Receiver<String>,
    /// Every line read so far.
    seen: Vec<String>,
    _dir: tempfile::TempDir,
}

impl Serve {
    fn start(extra: &[&str]) -> Serve {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("x.sock");
        let url = format!("unix://{}", sock.display());
        let mut child = Command::new(env!("CARGO_BIN_EXE_sp"))
            .arg("serve")
            .args(extra)
            .arg(&url)
            .env("RUST_LOG", "info")
            .env_remove("NO_COLOR")
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("sp starts");
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut s = Serve {
            child,
            url: url.clone(),
            sock,
            lines,
            seen: Vec::new(),
            _dir: dir,
        };
        s.expect(|l| l == format!("listening on {url}"));
        s
    }

    /// Waits for a line that `want` accepts; panics with the log so far
    /// if none comes within [`LOG_TIMEOUT`] or the server exits first.
    fn expect(&mut self, want: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + LOG_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if want(&line) {
                        return line;
                    }
                }
                Err(e) => panic!("no such log line ({e:?}); log:\n{}", self.seen.join("\n")),
            }
        }
    }

    /// Reads the log to its end (the server exited) and returns the exit
    /// status.
    fn wait_exit(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + LOG_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(e) => panic!(
                    "sp serve did not exit ({e:?}); log:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
        self.child.wait().unwrap()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn serve_and_stop(extra: &[&str], expect_pid: i64) {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("x.sock");
    let url = format!("unix://{}", sock.display());
    let mut child = Command::new(env!("CARGO_BIN_EXE_sp"))
        .arg("serve")
        .args(extra)
        .arg(&url)
        .env("RUST_LOG", "warn")
        .stderr(Stdio::piped())
        .spawn()
        .expect("sp starts");
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), format!("listening on {url}"));

    let mut p = RawPeer::guest(&url, "raw").unwrap();
    let (err, rv) = p.syscall(2, 20, &[]).unwrap();
    assert_eq!((err, rv[0]), (0, expect_pid));

    let st = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(st.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "sp serve exits 0 on SIGTERM: {status:?}");
    assert!(!sock.exists(), "the socket file is removed");
}

#[test]
fn sp_serve_answers_a_raw_client_and_exits_cleanly() {
    serve_and_stop(&[], 2);
}

#[test]
fn sp_serve_stub_kernel() {
    serve_and_stop(&["--stub"], 2);
}

/// Starts `sp serve` on a fresh unix socket; returns the child and URL.
fn spawn_serve(dir: &std::path::Path) -> (std::process::Child, String) {
    let url = format!("unix://{}", dir.join("x.sock").display());
    let mut child = Command::new(env!("CARGO_BIN_EXE_sp"))
        .args(["serve", &url])
        .env("RUST_LOG", "warn")
        .stderr(Stdio::piped())
        .spawn()
        .expect("sp starts");
    let mut line = String::new();
    BufReader::new(child.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.starts_with("listening on "));
    (child, url)
}

fn sp_call(url: &str, args: &[&str], stdin: &[u8]) -> std::process::Output {
    use std::io::Write;
    let mut c = Command::new(env!("CARGO_BIN_EXE_sp"))
        .arg("call")
        .args(args)
        .env("RUMP_SERVER", url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(stdin).unwrap();
    c.wait_with_output().unwrap()
}

#[test]
fn sp_call_round_trips_a_mebibyte_and_names_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, url) = spawn_serve(dir.path());
    let data: Vec<u8> = (0..(1u32 << 20))
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    // In /tmp, a tmpfs: the root (rumpfs, as in a stock rump kernel) does
    // not rename.
    let put = sp_call(&url, &["put", "/tmp/a"], &data);
    assert!(
        put.status.success(),
        "{}",
        String::from_utf8_lossy(&put.stderr)
    );
    let cat = sp_call(&url, &["cat", "/tmp/a"], b"");
    assert!(cat.status.success());
    assert!(cat.stdout == data, "cat returns the 1 MiB that put stored");

    let st = sp_call(&url, &["stat", "/tmp/a"], b"");
    assert!(String::from_utf8_lossy(&st.stdout).contains("regular file, mode 0644, size 1048576"));
    assert!(sp_call(&url, &["mkdir", "/tmp/d"], b"").status.success());
    assert!(sp_call(&url, &["mv", "/tmp/a", "/tmp/d/b"], b"")
        .status
        .success());
    let ls = sp_call(&url, &["ls", "/tmp/d"], b"");
    assert_eq!(String::from_utf8_lossy(&ls.stdout), "./\n../\nb\n");
    assert!(sp_call(&url, &["rm", "/tmp/d/b"], b"").status.success());
    assert!(sp_call(&url, &["rm", "/tmp/d"], b"").status.success());
    let pid = sp_call(&url, &["getpid"], b"");
    assert!(String::from_utf8_lossy(&pid.stdout).starts_with("pid "));

    // Errors: one line with the NetBSD errno name, non-zero exit.
    let missing = sp_call(&url, &["cat", "/missing"], b"");
    assert!(!missing.status.success());
    assert_eq!(
        String::from_utf8_lossy(&missing.stderr),
        "sp: cat /missing: ENOENT\n"
    );
    let notempty = {
        sp_call(&url, &["mkdir", "/tmp/e"], b"");
        sp_call(&url, &["put", "/tmp/e/f"], b"x");
        sp_call(&url, &["rm", "/tmp/e"], b"")
    };
    assert_eq!(
        String::from_utf8_lossy(&notempty.stderr),
        "sp: rm /tmp/e: ENOTEMPTY\n"
    );
    let nosrv = Command::new(env!("CARGO_BIN_EXE_sp"))
        .args(["call", "getpid"])
        .env_remove("RUMP_SERVER")
        .output()
        .unwrap();
    assert!(!nosrv.status.success());
    assert!(String::from_utf8_lossy(&nosrv.stderr).contains("RUMP_SERVER"));

    Command::new("kill")
        .arg("-TERM")
        .arg(server.id().to_string())
        .status()
        .unwrap();
    assert!(server.wait().unwrap().success());
}

#[test]
fn sp_demo_runs_clean() {
    let out = Command::new(env!("CARGO_BIN_EXE_sp"))
        .arg("demo")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("All 7 steps checked out"));
}

/// What an operator sees: each peer named by uid and pid, SIGUSR1 for the
/// counters, SIGHUP survived, the counters again at exit, and no colour
/// codes in a log that is not a terminal.
#[test]
fn sp_serve_logs_peers_and_stats_and_survives_sighup() {
    let mut s = Serve::start(&[]);
    let uid = std::fs::metadata("/proc/self").unwrap().uid();
    let me = std::process::id();

    let mut p = RawPeer::guest(&s.url, "raw").unwrap();
    assert_eq!(p.syscall(2, 20, &[]).unwrap().0, 0);
    signal(&s.child, "USR1");
    s.expect(|l| {
        l.contains("stats: 1 connection open, 0 preforks unclaimed, 0 system calls in flight")
            && l.contains("1 accepted and 0 dropped since start")
    });
    drop(p);
    let peer = format!("from unix peer uid {uid} pid {me}");
    s.expect(|l| l.contains(&peer) && l.contains("disconnected"));

    signal(&s.child, "HUP");
    s.expect(|l| l.contains("SIGHUP ignored"));
    let mut p = RawPeer::guest(&s.url, "raw").unwrap();
    assert_eq!(p.syscall(2, 20, &[]).unwrap().0, 0, "alive after SIGHUP");
    drop(p);

    signal(&s.child, "TERM");
    let status = s.wait_exit();
    assert!(status.success(), "{status:?}");
    assert!(
        s.seen
            .iter()
            .any(|l| l.contains("stats at exit: 0 connections open")
                && l.contains("2 accepted and 0 dropped since start")),
        "{}",
        s.seen.join("\n")
    );
    assert!(!s.sock.exists(), "the socket file is removed");
    assert!(
        s.seen.iter().all(|l| !l.contains('\x1b')),
        "colour codes in a piped log:\n{}",
        s.seen.join("\n")
    );
}

/// Options that would refuse every client, or be ignored, stop `sp serve`
/// before it listens: status 2 and one line saying why.
#[test]
fn sp_serve_refuses_unusable_options_with_status_2() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("x.sock");
    let unix = format!("unix://{}", sock.display());
    let tcp = "tcp://127.0.0.1:0".to_string();
    let cases: &[(&[&str], &String, &str)] = &[
        (
            &["--max-frame", "10"],
            &unix,
            "--max-frame 10 is below the minimum",
        ),
        (&["--max-clients", "0"], &unix, "--max-clients 0"),
        (&["--send-queue-bytes", "0"], &unix, "--send-queue-bytes 0"),
        (
            &["--allow-net", "127.0.0.0/8"],
            &unix,
            "--allow-net applies to tcp",
        ),
        (&["--allow-uid", "0"], &tcp, "--allow-uid applies to unix"),
        (&["--unix-mode", "666"], &tcp, "--unix-mode applies to unix"),
    ];
    for &(opts, url, want) in cases {
        let out = Command::new(env!("CARGO_BIN_EXE_sp"))
            .arg("serve")
            .args(opts)
            .arg(url)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{opts:?}: {err}");
        assert!(
            err.starts_with("sp: ") && err.contains(want) && err.lines().count() == 1,
            "{opts:?}: {err:?}"
        );
        assert!(!sock.exists(), "{opts:?}: socket created");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_sp"))
        .args(["serve", "--banner", "NetBSD", &unix])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "a malformed banner is a usage error"
    );
}

/// `--banner stock` sends the reference server's banner, and our client
/// still talks to it.
#[test]
fn sp_serve_sends_the_stock_banner() {
    let mut s = Serve::start(&["--banner", "stock"]);
    let (_p, banner) = RawPeer::connect_banner(&s.url).unwrap();
    assert_eq!(banner, b"RUMPSP-0.4-NetBSD-7.99.34/amd64\n");
    let pid = sp_call(&s.url, &["getpid"], b"");
    assert!(pid.status.success(), "{pid:?}");
    signal(&s.child, "TERM");
    assert!(s.wait_exit().success());
}

/// `--server` is taken before or after the operation, and wins over
/// RUMP_SERVER.
#[test]
fn sp_call_takes_server_anywhere() {
    let mut s = Serve::start(&[]);
    let call = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_sp"))
            .arg("call")
            .args(args)
            .env("RUMP_SERVER", "unix:///nonexistent/nobody.sock")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let url = s.url.clone();
    for args in [
        &["--server", &url, "getpid"][..],
        &["getpid", "--server", &url],
        &["mkdir", "--server", &url, "/d"],
        &["ls", "/d", "--server", &url],
    ] {
        let out = call(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // RUMP_SERVER is used without --server; a failed connect names the
    // URL once, on one line.
    let out = call(&["getpid"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "sp: cannot reach unix:///nonexistent/nobody.sock: No such file or directory (os error 2)\n"
    );
    signal(&s.child, "TERM");
    assert!(s.wait_exit().success());
}

/// `sp call cat f | head`: the reader leaves early; `sp call` stops
/// quietly with status 0 (no "Broken pipe" message).
#[test]
fn sp_call_cat_into_a_closed_pipe_ends_quietly() {
    let mut s = Serve::start(&[]);
    let data = vec![b'x'; 4 << 20];
    assert!(sp_call(&s.url, &["put", "/big"], &data).status.success());
    let mut cat = Command::new(env!("CARGO_BIN_EXE_sp"))
        .args(["call", "cat", "/big"])
        .env("RUMP_SERVER", &s.url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Four MiB do not fit a pipe: after this read and close, `sp call`
    // still has bytes to write.
    let mut first = [0u8; 10];
    cat.stdout.take().unwrap().read_exact(&mut first).unwrap();
    assert_eq!(&first, b"xxxxxxxxxx");
    let out = cat.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    signal(&s.child, "TERM");
    assert!(s.wait_exit().success());
}

/// A 70,000-byte path is not echoed whole: the message keeps its ends and
/// says how long it was.
#[test]
fn sp_call_shortens_long_names_in_errors() {
    let mut s = Serve::start(&[]);
    let long = format!("/{}", "a".repeat(69_999));
    let out = sp_call(&s.url, &["cat", &long], b"");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(
        err,
        format!(
            "sp: cat /{}…{} (70000 bytes): ENAMETOOLONG\n",
            "a".repeat(63),
            "a".repeat(16)
        )
    );
    signal(&s.child, "TERM");
    assert!(s.wait_exit().success());
}
