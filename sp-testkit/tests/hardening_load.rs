//! Many clients at once: slow ones do not stop fast ones, and the server's
//! threads follow the calls in flight, not the clients connected.

use sp_model::stub::StubKernel;
use sp_model::ModelKernel;
use sp_proto::abi::Sysnum;
use sp_proto::{Handshake, Message};
use sp_server::Config;
use sp_testkit::harness::{TestServer, Transport};
use sp_testkit::peers::{eventually, expect_frame, Trickle};
use sp_testkit::rawpeer::RawPeer;
use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Raises this process's soft RLIMIT_NOFILE to its hard limit and fails
/// the test if that is below `need`.
fn need_fds(need: u64) {
    let (soft, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap();
    if soft < need {
        rlimit::setrlimit(rlimit::Resource::NOFILE, hard, hard).unwrap();
    }
    assert!(
        hard >= need,
        "this test needs {need} descriptors; the hard RLIMIT_NOFILE is {hard}"
    );
}

#[test]
fn slowloris_does_not_stop_a_fast_client() {
    let n = 1000;
    need_fds(2 * n as u64 + 100);
    let kernel = Arc::new(ModelKernel::new());
    let s = TestServer::start(kernel.clone(), Transport::Unix);
    let hs = Message::Handshake {
        reqno: 1,
        hs: Handshake::Guest {
            comm: b"slowloris\0",
        },
    }
    .to_vec();
    let mut slow = Trickle::connect(&s.url(), n, &hs).unwrap();
    let mut fast = RawPeer::guest(&s.url(), "fast").unwrap();
    // Between two rounds of one byte per slow connection, the fast client
    // makes its calls: all 200 are answered while every one of the 1,000
    // slow connections still lacks at least its last byte.
    let calls: usize = 200;
    let rounds_before_last = hs.len() - 1;
    let per_round = calls.div_ceil(rounds_before_last);
    let mut done = 0;
    for _ in 0..rounds_before_last {
        assert_eq!(slow.round(), n, "every slow connection took a byte");
        for _ in 0..per_round.min(calls - done) {
            let (err, rv) = fast.syscall(10 + done as u64, Sysnum::GETPID, &[]).unwrap();
            assert_eq!((err, rv), (0, [2, 1]));
            done += 1;
        }
    }
    assert_eq!(done, calls);
    assert_eq!(
        kernel.process_count(),
        1,
        "no slow handshake is complete yet"
    );
    assert_eq!(s.server.stats().connections, n + 1);
    // The last byte: every slow client is handled, none was dropped.
    assert_eq!(slow.round(), n);
    assert_eq!(slow.round(), 0);
    assert_eq!(slow.broken(), 0);
    let mut peers = slow.into_peers().unwrap();
    for p in &mut peers {
        p.read_banner().unwrap();
        expect_frame(p, &Message::HandshakeResp { reqno: 1, error: 0 }).unwrap();
    }
    assert_eq!(kernel.process_count(), n + 1);
    assert_eq!(s.server.stats().dropped, 0);
    drop(peers);
    eventually("the slow clients are released", || {
        kernel.process_count() == 1 && s.server.stats().connections == 1
    });
    assert_eq!(
        fast.syscall(9999, Sysnum::GETPID, &[]).unwrap(),
        (0, [2, 1])
    );
}

/// Set in the child process of [`ten_thousand_clients_at_once`]: the URL
/// to connect to.
const CHILD_ENV: &str = "SP_TEST_10K_CHILD_URL";
const CLIENTS: usize = 10_000;
const CLIENT_THREADS: usize = 4;
const MAX_IDLE: usize = 8;

/// 10,000 clients connected at once, each after a guest handshake and one
/// getpid (the stub kernel runs getpid on a worker thread). The clients
/// live in a child process (the test binary again), so that neither
/// process needs more than ~10,100 descriptors.
#[test]
#[ignore = "stress: run by `cargo xtask test --stress`"]
fn ten_thousand_clients_at_once() {
    if let Ok(url) = std::env::var(CHILD_ENV) {
        return ten_thousand_clients_child(&url);
    }
    need_fds(CLIENTS as u64 + 200);
    let kernel = Arc::new(StubKernel::new());
    let cfg = Config {
        max_idle_workers: MAX_IDLE,
        ..Config::default()
    };
    let s = TestServer::start_with(kernel.clone(), Transport::Unix, cfg).unwrap();
    // Sample the worker count all along.
    let stop = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicUsize::new(0));
    let sampler = {
        let (stop, peak, handle) = (stop.clone(), peak.clone(), s.server.handle().clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                peak.fetch_max(handle.stats().workers.threads, Ordering::Relaxed);
                // tidy:allow-sleep: samples a counter until told to stop
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    };
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "ten_thousand_clients_at_once",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, s.url())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut report = None;
    let mut line = String::new();
    while out.read_line(&mut line).unwrap() > 0 {
        // The harness may have printed "test NAME ... " on the same line.
        if let Some(at) = line.find("SP-CHILD ") {
            report = Some(line[at + "SP-CHILD ".len()..].trim().to_string());
            break;
        }
        line.clear();
    }
    let report = report.expect("the child reports");
    assert_eq!(
        report,
        format!("answered {CLIENTS} distinct-pids {CLIENTS}"),
        "every client got its own process and its getpid answer"
    );
    // All 10,000 are still connected, each with its process.
    let st = s.server.stats();
    assert_eq!(st.connections, CLIENTS, "{st:?}");
    assert_eq!(kernel.process_count(), CLIENTS);
    assert_eq!(st.dropped, 0);
    // Threads follow the calls in flight (at most one per client thread),
    // not the clients.
    eventually("idle workers settle", || {
        s.server.stats().workers.threads <= MAX_IDLE
    });
    stop.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    let peak = peak.load(Ordering::Relaxed);
    eprintln!("peak worker threads: {peak}");
    assert!(
        peak <= MAX_IDLE + CLIENT_THREADS + 2,
        "{peak} worker threads for {CLIENTS} clients"
    );
    // Let the child go: it closes everything.
    drop(child.stdin.take());
    let mut rest = String::new();
    let _ = out.read_to_string(&mut rest);
    assert!(child.wait().unwrap().success(), "child failed:\n{rest}");
    eventually("every client is released", || {
        s.server.stats().connections == 0 && kernel.process_count() == 0
    });
}

fn ten_thousand_clients_child(url: &str) {
    need_fds(CLIENTS as u64 + 200);
    let per_thread = CLIENTS / CLIENT_THREADS;
    let threads: Vec<_> = (0..CLIENT_THREADS)
        .map(|t| {
            let url = url.to_string();
            std::thread::spawn(move || {
                let mut held = Vec::with_capacity(per_thread);
                let mut pids = Vec::with_capacity(per_thread);
                for i in 0..per_thread {
                    let mut p = RawPeer::guest(&url, &format!("c{t}-{i}"))
                        .unwrap_or_else(|e| panic!("client {t}-{i}: {e}"));
                    let (err, rv) = p.syscall(2, Sysnum::GETPID, &[]).unwrap();
                    assert_eq!(err, 0, "client {t}-{i}");
                    pids.push(rv[0]);
                    held.push(p);
                }
                (held, pids)
            })
        })
        .collect();
    let mut held = Vec::new();
    let mut pids = HashSet::new();
    let mut answered = 0;
    for t in threads {
        let (h, p) = t.join().unwrap();
        answered += p.len();
        pids.extend(p);
        held.extend(h);
    }
    // Straight to the stdout handle: the test harness captures println!.
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "SP-CHILD answered {answered} distinct-pids {}",
        pids.len()
    )
    .unwrap();
    out.flush().unwrap();
    drop(out);
    // Hold every connection until the parent has looked.
    let mut sink = String::new();
    let _ = std::io::stdin().read_to_string(&mut sink);
    drop(held);
}
