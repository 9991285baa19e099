//! End to end, exec: a client process (the `sp-exec-helper` binary) opens
//! descriptors, some close-on-exec, and execs itself; the new image adopts
//! the connection with `Client::init` (HANDSHAKE EXEC on the inherited
//! socket) and checks it is the same kernel process with the close-on-exec
//! descriptors gone. The test watches the kernel's side between the steps.
//! Over unix and tcp, our client against our server with the model kernel.

use crossbeam_channel::Receiver;
use sp_testkit::harness::{TestServer, Transport};
use sp_testkit::peers::{eventually, WAIT};
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const HELPER: &str = env!("CARGO_BIN_EXE_sp-exec-helper");

/// A running helper: its stdout lines come through a channel, its stderr
/// is collected for failure messages. Killed if dropped while running.
struct Helper {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    stderr: Option<JoinHandle<String>>,
}

impl Helper {
    fn spawn(args: &[&str]) -> Helper {
        let mut child = Command::new(HELPER)
            .args(args)
            .env_remove(sp_client::EXECFD_VAR)
            .env_remove(sp_client::SERVER_VAR)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn sp-exec-helper");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = crossbeam_channel::unbounded();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut err = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        Helper {
            stdin: child.stdin.take(),
            child,
            lines,
            stderr: Some(stderr),
        }
    }

    /// Kills the helper and returns what it wrote on stderr.
    fn kill_and_stderr(&mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.stderr
            .take()
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default()
    }

    /// The next stdout line; fails the test (with the helper's stderr) on
    /// end of output or timeout.
    fn line(&mut self) -> String {
        match self.lines.recv_timeout(WAIT) {
            Ok(l) => l,
            Err(e) => {
                let err = self.kill_and_stderr();
                panic!("no line from sp-exec-helper ({e}); its stderr:\n{err}");
            }
        }
    }

    fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin still open");
        writeln!(stdin, "{line}").expect("write to the helper");
        stdin.flush().unwrap();
    }

    /// Closes stdin and waits (with a deadline) for the exit status.
    fn finish(&mut self) -> (ExitStatus, String) {
        drop(self.stdin.take());
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let err = self
                    .stderr
                    .take()
                    .map(|h| h.join().unwrap_or_default())
                    .unwrap_or_default();
                return (status, err);
            }
            if Instant::now() > deadline {
                let err = self.kill_and_stderr();
                panic!("sp-exec-helper did not exit in time; its stderr:\n{err}");
            }
            // tidy:allow-sleep: polls try_wait under an explicit deadline
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `key=value` from a space-separated line.
fn field<'a>(line: &'a str, key: &str) -> &'a str {
    line.split(' ')
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("no {key}= in {line:?}"))
}

#[test]
fn exec_keeps_the_process_and_drops_close_on_exec_descriptors() {
    for t in Transport::ALL {
        let (s, k) = TestServer::model(t);
        let mut h = Helper::spawn(&["--driver", &s.url()]);

        // Before the exec: the driver's process, with all its descriptors.
        let before = h.line();
        assert!(before.starts_with("before "), "{before:?}");
        let pid: i32 = field(&before, "pid").parse().unwrap();
        let kept: i32 = field(&before, "kept").parse().unwrap();
        let gone: Vec<i32> = field(&before, "gone")
            .split(',')
            .map(|f| f.parse().unwrap())
            .collect();
        assert_eq!(pid, 2, "{t:?}");
        assert_eq!(k.comm(pid).as_deref(), Some(&b"exec-driver"[..]));
        let proc = k.proc_by_pid(pid).unwrap();
        let info = k.proc_info(proc).unwrap();
        // The console on 0, 1, 2, then the driver's own.
        let mut all: Vec<i32> = [0, 1, 2]
            .into_iter()
            .chain(gone.iter().copied())
            .chain([kept])
            .collect();
        all.sort_unstable();
        assert_eq!(info.fds, all);

        // The exec: the new image checks its side and reports.
        h.send("exec");
        let after = h.line();
        assert_eq!(after, format!("after pid={pid}"), "{t:?}");
        let info = k.proc_info(proc).expect("the same process");
        assert_eq!(info.pid, pid);
        assert_eq!(info.ppid, 1);
        assert_eq!(
            info.comm, b"sp-exec-helper",
            "the exec handshake renamed the process"
        );
        assert_eq!(
            info.fds,
            [0, 1, 2, kept],
            "only the console and the kept descriptor are left"
        );
        assert!(info.attached && !info.exiting, "{info:?}");
        assert_eq!(k.process_count(), 1, "no new process");
        assert_eq!(s.server.stats().accepted, 1, "no new connection");

        let (status, err) = h.finish();
        assert!(status.success(), "{t:?}: helper {status}; stderr:\n{err}");
        eventually("the process is released", || k.process_count() == 0);
        assert!(k.wait_idle(WAIT));
    }
}

#[test]
fn failed_exec_leaves_the_connection_working() {
    for t in Transport::ALL {
        let (s, k) = TestServer::model(t);
        let mut h = Helper::spawn(&["--exec-fail", &s.url()]);
        let line = h.line();
        assert_eq!(line, "still pid=2", "{t:?}");
        let (status, err) = h.finish();
        assert!(status.success(), "{t:?}: helper {status}; stderr:\n{err}");
        eventually("the process is released", || k.process_count() == 0);
    }
}
