//! The bench's child processes: a server or echo peer that listens, groups
//! of client processes released together, and what `/proc` says about a
//! process.

use super::client::{ClientResult, ClientSpec};
use rustix::process::{kill_process, Pid, Signal};
use rustix::thread::{sched_setaffinity, CpuSet};
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long a listener may take to say where it listens.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(30);

/// How the bench starts its processes: which binary, and on which CPU the
/// listeners (server, echo peer) and the clients run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Launcher {
    /// The `sp` binary.
    pub exe: PathBuf,
    /// Pin the server and the echo peer to this CPU.
    pub listener_cpu: Option<usize>,
    /// Pin every client process to this CPU.
    pub client_cpu: Option<usize>,
}

impl Launcher {
    /// Starts processes of `exe` wherever the scheduler puts them.
    pub fn new(exe: PathBuf) -> Launcher {
        Launcher {
            exe,
            listener_cpu: None,
            client_cpu: None,
        }
    }

    fn command(&self, cpu: Option<usize>) -> Command {
        let mut cmd = Command::new(&self.exe);
        if let Some(cpu) = cpu {
            // SAFETY: the hook runs in the child between fork and exec; it
            // allocates nothing, takes no lock and cannot panic: one
            // sched_setaffinity system call (async-signal-safe) on a set
            // that lives on its own stack.
            unsafe {
                cmd.pre_exec(move || pin_self(cpu));
            }
        }
        cmd
    }
}

/// Binds the calling process (and the threads it makes later) to `cpu`.
/// Makes one system call and never panics (it runs between fork and exec).
fn pin_self(cpu: usize) -> io::Result<()> {
    if cpu >= CpuSet::MAX_CPU {
        // CpuSet::set would panic on it.
        return Err(rustix::io::Errno::INVAL.into());
    }
    let mut set = CpuSet::new();
    set.set(cpu);
    Ok(sched_setaffinity(None, &set)?)
}

/// A child process that listens (`sp serve`, or the echo peer), stopped with
/// SIGTERM (then SIGKILL) when dropped.
pub struct Listening {
    child: Child,
    /// Where it listens, as it printed it.
    pub url: String,
    /// What it is, for messages.
    pub what: String,
}

impl Listening {
    /// Starts `exe args...` and waits for its `listening on URL` line on
    /// stderr; the rest of its stderr is passed on to ours, prefixed with
    /// `what`. Unless `RUST_LOG` is set, the child logs warnings only, so
    /// logging is not what gets measured.
    pub fn spawn(launcher: &Launcher, args: &[String], what: &str) -> io::Result<Listening> {
        let exe = &launcher.exe;
        let mut cmd = launcher.command(launcher.listener_cpu);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "warn");
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("starting {}: {e}", exe.display())))?;
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, rx) = mpsc::channel();
        let tag = what.to_string();
        std::thread::spawn(move || {
            let mut told = false;
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if !told {
                    if let Some(url) = line.strip_prefix("listening on ") {
                        let _ = tx.send(Ok(url.trim().to_string()));
                        told = true;
                        continue;
                    }
                }
                eprintln!("[{tag}] {line}");
            }
            if !told {
                let _ = tx.send(Err(()));
            }
        });
        let mut l = Listening {
            child,
            url: String::new(),
            what: what.to_string(),
        };
        match rx.recv_timeout(LISTEN_TIMEOUT) {
            Ok(Ok(url)) => {
                l.url = url;
                Ok(l)
            }
            Ok(Err(())) => Err(io::Error::other(format!(
                "{what} exited before listening (see its output above)"
            ))),
            Err(_) => Err(io::Error::other(format!(
                "{what} did not say where it listens within {LISTEN_TIMEOUT:?}"
            ))),
        }
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Listening {
    fn drop(&mut self) {
        // The child is not reaped yet, so its pid cannot have been reused.
        let _ = kill_process(Pid::from_child(&self.child), Signal::TERM);
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            // tidy:allow-sleep: polling a child's exit with a deadline.
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Client {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    done: bool,
}

/// Client processes started together; any still running are killed when
/// the group is dropped.
struct Group(Vec<Client>);

impl Drop for Group {
    fn drop(&mut self) {
        for c in &mut self.0 {
            if !c.done {
                let _ = c.child.kill();
                let _ = c.child.wait();
            }
        }
    }
}

fn read_line(c: &mut Client, i: usize, what: &str) -> io::Result<String> {
    let mut line = String::new();
    c.stdout.read_line(&mut line)?;
    if line.is_empty() {
        let status = c.child.wait()?;
        c.done = true;
        return Err(io::Error::other(format!(
            "client {i} exited ({status}) before it was {what} (see its output above)"
        )));
    }
    Ok(line)
}

/// Starts one client process (`sp bench-client ...`) per spec, waits
/// until every one is connected and ready, calls `at_barrier`, releases
/// them all, and returns their results in order with what `at_barrier`
/// returned.
pub fn run_clients<T>(
    launcher: &Launcher,
    specs: &[ClientSpec],
    at_barrier: impl FnOnce() -> io::Result<T>,
) -> io::Result<(Vec<ClientResult>, T)> {
    let mut group = Group(Vec::with_capacity(specs.len()));
    for spec in specs {
        let mut child = launcher
            .command(launcher.client_cpu)
            .arg("bench-client")
            .args(spec.to_args())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| {
                io::Error::new(e.kind(), format!("starting client {}: {e}", group.0.len()))
            })?;
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        group.0.push(Client {
            child,
            stdin,
            stdout,
            done: false,
        });
    }
    for (i, c) in group.0.iter_mut().enumerate() {
        let line = read_line(c, i, "ready")?;
        if line.trim() != "ready" {
            return Err(io::Error::other(format!(
                "client {i} said {line:?} instead of ready"
            )));
        }
    }
    let t = at_barrier()?;
    for c in &mut group.0 {
        if let Some(mut stdin) = c.stdin.take() {
            // A client that already died is reported when its result is read.
            let _ = writeln!(stdin, "go");
        }
    }
    let mut results = Vec::with_capacity(specs.len());
    for (i, c) in group.0.iter_mut().enumerate() {
        let line = read_line(c, i, "done")?;
        let r = ClientResult::from_json(&line)
            .ok_or_else(|| io::Error::other(format!("client {i} printed {line:?}")))?;
        let status = c.child.wait()?;
        c.done = true;
        if !status.success() {
            return Err(io::Error::other(format!("client {i} failed ({status})")));
        }
        results.push(r);
    }
    Ok((results, t))
}

/// What `/proc/PID/status` says about a process's size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcStatus {
    /// Resident set size, bytes.
    pub rss: u64,
    /// Threads.
    pub threads: u64,
}

/// Reads `VmRSS` and `Threads` of process `pid`.
pub fn proc_status(pid: u32) -> io::Result<ProcStatus> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> io::Result<u64> {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| io::Error::other(format!("no {name} in /proc/{pid}/status")))
    };
    Ok(ProcStatus {
        rss: field("VmRSS:")? * 1024,
        threads: field("Threads:")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinning_to_a_cpu_beyond_the_set_is_an_error_not_a_panic() {
        let e = pin_self(CpuSet::MAX_CPU).unwrap_err();
        assert_eq!(
            e.raw_os_error(),
            Some(rustix::io::Errno::INVAL.raw_os_error())
        );
    }

    #[test]
    fn reads_our_own_status() {
        let s = proc_status(std::process::id()).unwrap();
        assert!(s.rss > 0 && s.threads >= 1);
    }
}
