//! The measurement harness of `sp bench` and `cargo xtask bench`: each
//! figure of the server beside an anchor measured in the same run, between
//! separate processes, over several repetitions.
//!
//! Without a URL the bench starts its own server (`sp serve` with the model
//! kernel, a child process) for each transport; with one it measures that
//! server only and skips the rows that need to look inside a local server.
//! Every client is a process of its own (`sp bench-client`, see
//! [`client`]), so scheduling is what a user sees; the raw anchors talk to
//! an echo peer process (`sp bench-client --op echo`). [`Pin`] can bind
//! the processes to CPUs, for steadier figures on a busy or virtual machine.
//!
//! | figure | the server measured | anchor, measured in the same run | target |
//! |---|---|---|---|
//! | getpid round trip | getpid, 24-byte request, 48-byte reply | raw ping-pong of the same sizes | ≤ 1.10× |
//! | write 4 KiB, extension off | pwrite: request, COPYIN request, 4 KiB answer, reply (what a stock client does) | one raw round trip carrying 4 KiB | ≤ 2.2× |
//! | write 4 KiB, extension on | pwrite: one SYSCALL_SEG carrying the 4 KiB, reply | one raw round trip carrying 4 KiB | ≤ 1.2× |
//! | write 1 MiB, extension off | pwrite bandwidth | raw one-way streaming bandwidth | ≥ 0.95× |
//! | write 1 MiB, extension on | pwrite bandwidth, the data with the call | raw one-way streaming bandwidth | ≥ 0.8× |
//! | read 4 KiB / 1 MiB | pread: request, COPYOUT, reply | raw round trip with 4 KiB back / streaming | — |
//! | write 4 KiB / 1 MiB to the stub kernel, extension off and on | write(2) to `sp serve --stub`, which drops the bytes and runs a carried write on the event loop (`Kernel::runs_inline_with`): the server and protocol without a file system's cost | as the writes above | ≤ 1.2× / ≥ 0.8× with the extension |
//! | throughput, T clients | getpid/s of T processes in a loop, p50/p99 | the same server with 1 client; 1,000 vs 16 | —; ≥ 0.90× |
//! | memory per idle client | RSS delta of the server / 1,000 handshaken clients | — | ≤ 2 KiB |
//! | server threads | with 1,000 idle clients | before they connected | equal |
//!
//! ```no_run
//! use sp_cli::bench::{self, Mode, Options};
//!
//! // The `sp` binary (an integration test has it as env!("CARGO_BIN_EXE_sp")).
//! let exe = std::path::PathBuf::from("target/release/sp");
//! let report = bench::run(&Options::new(Mode::Quick, exe));
//! print!("{}", report.markdown());
//! ```

pub mod client;
pub mod procs;
pub mod report;
pub mod stats;

use client::{ClientResult, ClientSpec, Op};
use procs::{proc_status, run_clients, Launcher, Listening, ProcStatus};
use report::{Anchor, Report, Row, Status, Target, Unit};
use stats::{Hist, Summary};
use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// Which transport a local server of the bench listens on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// A unix socket in the run's temporary directory.
    Unix,
    /// tcp on 127.0.0.1 with a port chosen by the system.
    Tcp,
}

impl Transport {
    /// Both transports, what a quick or full run measures.
    pub const ALL: [Transport; 2] = [Transport::Unix, Transport::Tcp];
}

/// How hard the bench measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// A few hundred operations, two repetitions, unix only, one client, no
    /// memory rows: proves every row produces numbers (the test suite's
    /// smoke test).
    Smoke,
    /// Under two minutes: 3 repetitions, 1, 4 and 16 clients.
    Quick,
    /// Everything: 7 repetitions, up to 1,000 client processes.
    Full,
}

impl Mode {
    /// The mode's name.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Smoke => "smoke",
            Mode::Quick => "quick",
            Mode::Full => "full",
        }
    }
}

/// Where the bench's processes run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Pin {
    /// Wherever the scheduler puts them: what a user sees.
    #[default]
    None,
    /// Everything on CPU 0: no cross-CPU wakeups, the steadiest figures
    /// for comparing code paths.
    Same,
    /// The server and the echo peer on CPU 1, the clients on CPU 0: every
    /// message crosses CPUs.
    Split,
}

impl Pin {
    /// The command-line spelling.
    pub fn name(self) -> &'static str {
        match self {
            Pin::None => "none",
            Pin::Same => "same",
            Pin::Split => "split",
        }
    }
}

/// What to measure and with which binary.
#[derive(Clone, Debug)]
pub struct Options {
    /// How hard.
    pub mode: Mode,
    /// The `sp` binary started for the server, the echo peer and the clients.
    pub exe: PathBuf,
    /// Measure this server instead of starting one.
    pub url: Option<String>,
    /// Transports of the local servers (ignored with `url`).
    pub transports: Vec<Transport>,
    /// Where the processes run.
    pub pin: Pin,
}

impl Options {
    /// The mode's defaults: unix only for a smoke run, unix and tcp
    /// otherwise, a local server.
    pub fn new(mode: Mode, exe: PathBuf) -> Options {
        Options {
            mode,
            exe,
            url: None,
            transports: match mode {
                Mode::Smoke => vec![Transport::Unix],
                _ => Transport::ALL.to_vec(),
            },
            pin: Pin::None,
        }
    }

    /// How the processes are started.
    pub fn launcher(&self) -> Launcher {
        let last = std::thread::available_parallelism().map_or(0, |n| n.get() - 1);
        let (listener_cpu, client_cpu) = match self.pin {
            Pin::None => (None, None),
            Pin::Same => (Some(0), Some(0)),
            Pin::Split => (Some(last.min(1)), Some(0)),
        };
        Launcher {
            exe: self.exe.clone(),
            listener_cpu,
            client_cpu,
        }
    }
}

/// Client counts of the throughput rows.
pub const CLIENT_COUNTS: [usize; 6] = [1, 4, 16, 64, 256, 1000];
/// Idle clients of the memory row.
pub const IDLE_CLIENTS: usize = 1000;
/// Processes that hold the idle clients between them.
const IDLE_PROCS: usize = 4;
/// Bytes of the small write and read.
const SMALL: usize = 4096;
/// Bytes of the large write and read, and of a streaming chunk.
const LARGE: usize = 1 << 20;
/// Bytes of a SYSCALL response frame: what the raw ping-pong answers.
const REPLY: usize = 48;

struct Params {
    reps: usize,
    n_small: u64,
    n_4k: u64,
    n_1m: u64,
    stream_chunks: u64,
    counts: &'static [usize],
    secs: f64,
    idle: bool,
}

impl Params {
    fn of(mode: Mode) -> Params {
        match mode {
            Mode::Smoke => Params {
                reps: 2,
                n_small: 200,
                n_4k: 100,
                n_1m: 4,
                stream_chunks: 8,
                counts: &CLIENT_COUNTS[..1],
                secs: 0.2,
                idle: false,
            },
            Mode::Quick => Params {
                reps: 3,
                n_small: 5000,
                n_4k: 2000,
                n_1m: 50,
                stream_chunks: 128,
                counts: &CLIENT_COUNTS[..3],
                secs: 1.0,
                idle: true,
            },
            Mode::Full => Params {
                reps: 7,
                n_small: 20_000,
                n_4k: 10_000,
                n_1m: 200,
                stream_chunks: 512,
                counts: &CLIENT_COUNTS,
                secs: 2.0,
                idle: true,
            },
        }
    }
}

/// Progress, on stderr.
fn say(msg: impl AsRef<str>) {
    eprintln!("bench: {}", msg.as_ref());
}

/// Per-repetition values of one figure, or why it stopped.
#[derive(Default)]
struct Series {
    values: Vec<f64>,
    error: Option<String>,
}

impl Series {
    fn push(&mut self, r: io::Result<f64>) {
        match r {
            Ok(v) => self.values.push(v),
            Err(e) => self.error = Some(e.to_string()),
        }
    }

    fn summary(&self) -> Result<Summary, String> {
        match (&self.error, Summary::of(&self.values)) {
            (Some(e), _) => Err(e.clone()),
            (None, Some(s)) => Ok(s),
            (None, None) => Err("no repetitions".into()),
        }
    }
}

/// Runs one client process and returns its result.
fn one(launcher: &Launcher, spec: ClientSpec) -> io::Result<ClientResult> {
    let (mut r, ()) = run_clients(launcher, &[spec], || Ok(()))?;
    Ok(r.remove(0))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Peer {
    Echo,
    Server,
    /// `sp serve --stub` (local servers only).
    Stub,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Metric {
    /// Median latency in µs.
    Latency,
    /// MB/s.
    Bandwidth,
}

struct Item {
    key: &'static str,
    peer: Peer,
    /// Whether the client asks for the extension.
    ext: bool,
    op: Op,
    size: usize,
    reply: usize,
    iters: u64,
    metric: Metric,
}

fn items(p: &Params) -> Vec<Item> {
    use Metric::*;
    use Peer::*;
    let it = |key: &'static str, peer, op, size, reply, iters, metric| Item {
        key,
        peer,
        ext: key.ends_with("_ext"),
        op,
        size,
        reply,
        iters,
        metric,
    };
    vec![
        it("ping", Echo, Op::Ping, 0, REPLY, p.n_small, Latency),
        it("getpid", Server, Op::Getpid, 0, 0, p.n_small, Latency),
        it("ping_w4k", Echo, Op::Ping, SMALL, REPLY, p.n_4k, Latency),
        it("pwrite_4k", Server, Op::Pwrite, SMALL, 0, p.n_4k, Latency),
        it(
            "pwrite_4k_ext",
            Server,
            Op::Pwrite,
            SMALL,
            0,
            p.n_4k,
            Latency,
        ),
        it(
            "ping_r4k",
            Echo,
            Op::Ping,
            0,
            SMALL + REPLY,
            p.n_4k,
            Latency,
        ),
        it("pread_4k", Server, Op::Pread, SMALL, 0, p.n_4k, Latency),
        it(
            "stream",
            Echo,
            Op::Stream,
            LARGE,
            0,
            p.stream_chunks,
            Bandwidth,
        ),
        it("pwrite_1m", Server, Op::Pwrite, LARGE, 0, p.n_1m, Bandwidth),
        it(
            "pwrite_1m_ext",
            Server,
            Op::Pwrite,
            LARGE,
            0,
            p.n_1m,
            Bandwidth,
        ),
        it("pread_1m", Server, Op::Pread, LARGE, 0, p.n_1m, Bandwidth),
        it("stub_write_4k", Stub, Op::Write, SMALL, 0, p.n_4k, Latency),
        it(
            "stub_write_4k_ext",
            Stub,
            Op::Write,
            SMALL,
            0,
            p.n_4k,
            Latency,
        ),
        it(
            "stub_write_1m",
            Stub,
            Op::Write,
            LARGE,
            0,
            p.n_1m,
            Bandwidth,
        ),
        it(
            "stub_write_1m_ext",
            Stub,
            Op::Write,
            LARGE,
            0,
            p.n_1m,
            Bandwidth,
        ),
    ]
}

/// The round-trip, write and read rows: every item once per repetition,
/// anchors and the server interleaved so drift hits both alike. The stub
/// rows need `stub` (a local `sp serve --stub`); without it they are
/// skipped.
fn latency_rows(
    launcher: &Launcher,
    p: &Params,
    tr: &str,
    server: &str,
    echo: &str,
    stub: Option<&str>,
) -> Vec<Row> {
    let items: Vec<Item> = items(p)
        .into_iter()
        .filter(|i| i.peer != Peer::Stub || stub.is_some())
        .collect();
    let mut series: HashMap<&str, Series> = HashMap::new();
    for rep in 0..p.reps {
        say(format!(
            "{tr}: round trips, write, read: repetition {}/{}",
            rep + 1,
            p.reps
        ));
        for item in &items {
            let s = series.entry(item.key).or_default();
            if s.error.is_some() {
                continue;
            }
            let url = match item.peer {
                Peer::Echo => echo,
                Peer::Server => server,
                Peer::Stub => stub.unwrap_or(server),
            };
            let mut spec = ClientSpec::new(url, item.op);
            spec.size = item.size;
            spec.reply = item.reply;
            spec.iters = item.iters;
            spec.warmup = (item.iters / 10).max(2);
            spec.ext = item.ext;
            let r = one(launcher, spec).map(|r| match item.metric {
                Metric::Latency => r.median_ns / 1000.0,
                Metric::Bandwidth => r.mb_per_s(),
            });
            s.push(r.map_err(|e| io::Error::other(format!("{}: {e}", item.key))));
        }
    }
    let row =
        |figure: &str, key: &str, unit: Unit, anchor: &str, what: &str, target: Option<Target>| {
            let mut r = Row::new(tr, figure, unit);
            r.target = target;
            let Some(measured) = series.get(key) else {
                r.status = Status::Skipped("needs a local stub server".into());
                return r;
            };
            match measured.summary() {
                Ok(s) => r.measured = Some(s),
                Err(e) => r.status = Status::Failed(e),
            }
            match series[anchor].summary() {
                Ok(summary) => {
                    r.anchor = Some(Anchor {
                        what: what.to_string(),
                        summary,
                    })
                }
                Err(e) if r.status == Status::Measured => {
                    r.status = Status::Failed(format!("anchor: {e}"))
                }
                Err(_) => {}
            }
            if let (Some(o), Some(Anchor { summary: a, .. })) = (&r.measured, &r.anchor) {
                // On a busy machine the best repetitions of each side are
                // often the steadier comparison.
                let best = if unit == Unit::Micros {
                    o.min / a.min
                } else {
                    o.max / a.max
                };
                r.notes = format!("best repetition vs best: {best:.2}×");
            }
            r
        };
    vec![
        row(
            "getpid round trip",
            "getpid",
            Unit::Micros,
            "ping",
            "raw ping-pong 24 B / 48 B",
            Some(Target::RatioAtMost(1.10)),
        ),
        row(
            "write(2) 4 KiB, extension off (copyin)",
            "pwrite_4k",
            Unit::Micros,
            "ping_w4k",
            "raw round trip 24+4096 B / 48 B",
            Some(Target::RatioAtMost(2.2)),
        ),
        row(
            "write(2) 4 KiB, extension on (data with the call)",
            "pwrite_4k_ext",
            Unit::Micros,
            "ping_w4k",
            "raw round trip 24+4096 B / 48 B",
            Some(Target::RatioAtMost(1.2)),
        ),
        row(
            "write(2) 1 MiB, extension off (copyin)",
            "pwrite_1m",
            Unit::MBps,
            "stream",
            "raw streaming",
            Some(Target::RatioAtLeast(0.95)),
        ),
        row(
            "write(2) 1 MiB, extension on (data with the call)",
            "pwrite_1m_ext",
            Unit::MBps,
            "stream",
            "raw streaming",
            Some(Target::RatioAtLeast(0.8)),
        ),
        row(
            "read(2) 4 KiB (copyout)",
            "pread_4k",
            Unit::Micros,
            "ping_r4k",
            "raw round trip 24 B / 4096+48 B",
            None,
        ),
        row(
            "read(2) 1 MiB (copyout)",
            "pread_1m",
            Unit::MBps,
            "stream",
            "raw streaming",
            None,
        ),
        row(
            "write(2) 4 KiB to the stub kernel, extension off",
            "stub_write_4k",
            Unit::Micros,
            "ping_w4k",
            "raw round trip 24+4096 B / 48 B",
            None,
        ),
        row(
            "write(2) 4 KiB to the stub kernel, extension on",
            "stub_write_4k_ext",
            Unit::Micros,
            "ping_w4k",
            "raw round trip 24+4096 B / 48 B",
            Some(Target::RatioAtMost(1.2)),
        ),
        row(
            "write(2) 1 MiB to the stub kernel, extension off",
            "stub_write_1m",
            Unit::MBps,
            "stream",
            "raw streaming",
            None,
        ),
        row(
            "write(2) 1 MiB to the stub kernel, extension on",
            "stub_write_1m_ext",
            Unit::MBps,
            "stream",
            "raw streaming",
            Some(Target::RatioAtLeast(0.8)),
        ),
    ]
}

/// The throughput rows: T client processes doing getpid in a loop for a
/// fixed time after a common start.
fn throughput_rows(launcher: &Launcher, p: &Params, tr: &str, server: &str) -> Vec<Row> {
    let mut series: HashMap<usize, Series> = HashMap::new();
    let mut hists: HashMap<usize, Hist> = HashMap::new();
    for rep in 0..p.reps {
        for &t in p.counts {
            let s = series.entry(t).or_default();
            if s.error.is_some() {
                continue;
            }
            say(format!(
                "{tr}: throughput, {t} client process(es): repetition {}/{}",
                rep + 1,
                p.reps
            ));
            let mut spec = ClientSpec::new(server, Op::Getpid);
            spec.secs = Some(p.secs);
            spec.warmup = 10;
            let specs = vec![spec; t];
            let r = run_clients(launcher, &specs, || Ok(())).map(|(results, ())| {
                let h = hists.entry(t).or_default();
                for r in &results {
                    h.merge(&r.hist);
                }
                results.iter().map(ClientResult::rate).sum::<f64>()
            });
            s.push(r);
        }
    }
    let one = series.get(&1).and_then(|s| s.summary().ok());
    let sixteen = series.get(&16).and_then(|s| s.summary().ok());
    CLIENT_COUNTS
        .iter()
        .map(|&t| {
            let figure = format!(
                "getpid throughput, {t} client{}",
                if t == 1 { "" } else { "s" }
            );
            let mut r = Row::new(tr, &figure, Unit::OpsPerSec);
            // Anchors are this server measured in this run: with 1 client
            // (the ratio says how throughput scales) and, for 1,000
            // clients, with 16 (the ratio says what many clients cost).
            let (base, what) = if t == 1000 {
                r.target = Some(Target::RatioAtLeast(0.90));
                (&sixteen, "the same server, 16 clients")
            } else {
                (&one, "the same server, 1 client")
            };
            if t > 1 && series.contains_key(&t) {
                r.anchor = base.clone().map(|summary| Anchor {
                    what: what.into(),
                    summary,
                });
            }
            match series.get(&t) {
                None => r.status = Status::Skipped("full mode only".into()),
                Some(s) => match s.summary() {
                    Ok(s) => r.measured = Some(s),
                    Err(e) => r.status = Status::Failed(e),
                },
            }
            if let Some(h) = hists.get(&t) {
                r.details = serde_json::json!({
                    "ops": h.count(),
                    "p50_us": h.quantile(0.50) as f64 / 1000.0,
                    "p99_us": h.quantile(0.99) as f64 / 1000.0,
                });
                r.notes = format!(
                    "latency p50 {}, p99 {}",
                    Unit::Micros.fmt(h.quantile(0.50) as f64 / 1000.0),
                    Unit::Micros.fmt(h.quantile(0.99) as f64 / 1000.0)
                );
            }
            if t == 1000 && r.status == Status::Measured && r.anchor.is_none() {
                r.status = Status::Failed("no 16-client figure to compare with".into());
            }
            r
        })
        .collect()
}

/// Waits a moment for a server to settle (finish closing connections,
/// answer handshakes in flight) before reading its size.
fn settle() {
    std::thread::sleep(Duration::from_millis(300));
}

/// The memory and thread rows, on a fresh server of their own.
fn memory_rows(
    launcher: &Launcher,
    tr: &str,
    spawn: impl FnOnce() -> io::Result<Listening>,
) -> Vec<Row> {
    let mut rows = memory_row_names()
        .into_iter()
        .map(|(figure, unit, target)| {
            let mut r = Row::new(tr, &figure, unit);
            r.target = Some(target);
            r
        });
    let (mut mem, mut threads) = (
        rows.next().expect("two rows"),
        rows.next().expect("two rows"),
    );
    say(format!("{tr}: memory with {IDLE_CLIENTS} idle clients"));
    let measured = (|| -> io::Result<(ProcStatus, ProcStatus)> {
        let server = spawn()?;
        let pid = server.pid();
        let mut warm = ClientSpec::new(&server.url, Op::Getpid);
        warm.iters = 100;
        one(launcher, warm)?;
        settle();
        let before = proc_status(pid)?;
        let per = IDLE_CLIENTS / IDLE_PROCS;
        let mut spec = ClientSpec::new(&server.url, Op::Idle);
        spec.conns = per;
        let specs = vec![spec; IDLE_PROCS];
        let (_, after) = run_clients(launcher, &specs, || {
            settle();
            proc_status(pid)
        })?;
        Ok((before, after))
    })();
    match measured {
        Ok((before, after)) => {
            let delta = after.rss as f64 - before.rss as f64;
            mem.measured = Summary::of(&[delta / IDLE_CLIENTS as f64]);
            mem.notes = format!(
                "RSS {:.1} MiB before, {:.1} MiB after (one reading, kernel processes included)",
                before.rss as f64 / 1048576.0,
                after.rss as f64 / 1048576.0
            );
            mem.details = serde_json::json!({
                "clients": IDLE_CLIENTS,
                "rss_before": before.rss,
                "rss_after": after.rss,
                "threads_before": before.threads,
                "threads_after": after.threads,
            });
            threads.details = mem.details.clone();
            threads.measured = Summary::of(&[after.threads as f64]);
            threads.anchor = Some(Anchor {
                what: "before the clients connected".into(),
                summary: Summary::of(&[before.threads as f64]).expect("one value"),
            });
        }
        Err(e) => {
            mem.status = Status::Failed(e.to_string());
            threads.status = Status::Failed(e.to_string());
        }
    }
    vec![mem, threads]
}

fn skipped_memory_rows(tr: &str, why: &str) -> Vec<Row> {
    memory_row_names()
        .into_iter()
        .map(|(f, unit, target)| {
            let mut r = Row::new(tr, &f, unit);
            r.target = Some(target);
            r.status = Status::Skipped(why.to_string());
            r
        })
        .collect()
}

fn memory_row_names() -> Vec<(String, Unit, Target)> {
    vec![
        (
            format!("server memory per idle client ({IDLE_CLIENTS} handshaken)"),
            Unit::Bytes,
            Target::AtMost(2048.0),
        ),
        (
            format!("server threads with {IDLE_CLIENTS} idle clients"),
            Unit::Count,
            Target::SameAsAnchor,
        ),
    ]
}

fn failed_row(tr: &str, what: &str, e: impl std::fmt::Display) -> Row {
    let mut r = Row::new(tr, what, Unit::Count);
    r.status = Status::Failed(e.to_string());
    r
}

/// Where a local listener of `tr` listens (`name` for a unix socket file).
fn local_url(tr: Transport, dir: &Path, name: &str) -> String {
    match tr {
        Transport::Unix => format!("unix://{}", dir.join(name).display()),
        Transport::Tcp => "tcp://127.0.0.1:0".to_string(),
    }
}

fn tr_name(tr: Transport) -> &'static str {
    match tr {
        Transport::Unix => "unix",
        Transport::Tcp => "tcp",
    }
}

fn spawn_server(launcher: &Launcher, url: &str) -> io::Result<Listening> {
    Listening::spawn(
        launcher,
        &["serve".to_string(), url.to_string()],
        "sp serve",
    )
}

fn spawn_stub(launcher: &Launcher, url: &str) -> io::Result<Listening> {
    Listening::spawn(
        launcher,
        &["serve".to_string(), "--stub".to_string(), url.to_string()],
        "sp serve --stub",
    )
}

fn spawn_echo(launcher: &Launcher, url: &str) -> io::Result<Listening> {
    let spec = ClientSpec::new(url, Op::Echo);
    let mut args = vec!["bench-client".to_string()];
    args.extend(spec.to_args());
    Listening::spawn(launcher, &args, "echo peer")
}

/// The echo peer's URL for a server at `url`: a unix socket in `dir` or
/// the loopback address of the same family.
fn echo_url_for(url: &str, dir: &Path) -> String {
    if url.starts_with("unix://") {
        format!("unix://{}", dir.join("echo.sock").display())
    } else if url.starts_with("tcp6://") {
        "tcp6://[::1]:0".to_string()
    } else {
        "tcp://127.0.0.1:0".to_string()
    }
}

/// Runs the bench as `opts` says. A figure that cannot be measured becomes
/// a failed row; the run goes on.
pub fn run(opts: &Options) -> Report {
    let start = Instant::now();
    let started = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    // Many client processes means many pipes here.
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let p = Params::of(opts.mode);
    let launcher = &opts.launcher();
    let mut rows = Vec::new();
    let dir = tempfile::Builder::new().prefix("sp-bench").tempdir();
    let dir = match dir {
        Ok(d) => d,
        Err(e) => {
            rows.push(failed_row("-", "setup: temporary directory", e));
            return finish(opts, &p, started, start, rows);
        }
    };
    match &opts.url {
        Some(url) => {
            let tr = url.split("://").next().unwrap_or("?").to_string();
            match spawn_echo(launcher, &echo_url_for(url, dir.path())) {
                Ok(echo) => {
                    rows.extend(latency_rows(launcher, &p, &tr, url, &echo.url, None));
                    rows.extend(throughput_rows(launcher, &p, &tr, url));
                }
                Err(e) => rows.push(failed_row(&tr, "setup: echo peer", e)),
            }
            rows.extend(skipped_memory_rows(&tr, "needs a local server"));
        }
        None => {
            for &tr in &opts.transports {
                let name = tr_name(tr);
                let server = spawn_server(launcher, &local_url(tr, dir.path(), "sp.sock"));
                let echo = spawn_echo(launcher, &local_url(tr, dir.path(), "echo.sock"));
                let stub = spawn_stub(launcher, &local_url(tr, dir.path(), "stub.sock"));
                match (server, echo) {
                    (Ok(server), Ok(echo)) => {
                        say(format!(
                            "{name}: server {}, echo peer {}",
                            server.url, echo.url
                        ));
                        let stub_url = match &stub {
                            Ok(s) => Some(s.url.as_str()),
                            Err(e) => {
                                say(format!("{name}: no stub server: {e}"));
                                None
                            }
                        };
                        rows.extend(latency_rows(
                            launcher,
                            &p,
                            name,
                            &server.url,
                            &echo.url,
                            stub_url,
                        ));
                        rows.extend(throughput_rows(launcher, &p, name, &server.url));
                    }
                    (Err(e), _) => rows.push(failed_row(name, "setup: server", e)),
                    (_, Err(e)) => rows.push(failed_row(name, "setup: echo peer", e)),
                }
                if p.idle {
                    let url = local_url(tr, dir.path(), "sp-mem.sock");
                    rows.extend(memory_rows(launcher, name, || spawn_server(launcher, &url)));
                } else {
                    rows.extend(skipped_memory_rows(name, "smoke mode"));
                }
            }
        }
    }
    finish(opts, &p, started, start, rows)
}

/// The measured server in plain words, for the table.
pub fn server_name(url: Option<&str>) -> String {
    match url {
        Some(url) => format!("server at {url}"),
        None => "sp serve (model kernel)".to_string(),
    }
}

fn finish(opts: &Options, p: &Params, started: u64, start: Instant, rows: Vec<Row>) -> Report {
    Report {
        mode: opts.mode,
        pin: opts.pin,
        reps: p.reps,
        started,
        cpus: std::thread::available_parallelism().map_or(0, usize::from),
        server: server_name(opts.url.as_deref()),
        rows,
        seconds: start.elapsed().as_secs_f64(),
    }
}
