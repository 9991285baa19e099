//! The server's memory is bounded by its configuration, not by what clients
//! say or fail to read. These tests measure this process's resident set
//! (`VmRSS` in /proc/self/status), so they live alone in this binary and
//! run one at a time.

use sp_model::ModelKernel;
use sp_proto::abi::{oflag, Sysnum};
use sp_proto::args;
use sp_proto::{Class, MsgType, DEFAULT_MAX_FRAME};
use sp_server::Config;
use sp_testkit::harness::{TestServer, Transport};
use sp_testkit::peers::{call, raw_frame, wait_for, WAIT};
use sp_testkit::rawpeer::RawPeer;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Serialises the tests of this binary: they measure the whole process.
static ALONE: Mutex<()> = Mutex::new(());

const MIB: u64 = 1 << 20;

/// Resident set size of this process, in bytes.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("a VmRSS line");
    kb * 1024
}

/// Opens `/tmp/<name>` sized `size` bytes; returns the descriptor.
fn sized_file(p: &mut RawPeer, name: &str, size: u64) -> u64 {
    let flags = u64::from(oflag::O_CREAT | oflag::O_RDWR);
    let path = format!("/tmp/{name}\0");
    let r = call(
        p,
        2,
        Sysnum::OPEN,
        &args::encode(&[0x3000, flags, 0o644]),
        &[path.as_bytes()],
        0,
    )
    .unwrap();
    assert_eq!(r.error, 0);
    let fd = r.retval[0] as u64;
    assert_eq!(
        p.syscall(3, Sysnum::FTRUNCATE, &args::encode(&[fd, 0, size]))
            .unwrap(),
        (0, [0, 0])
    );
    fd
}

/// Bytes the server has written to `p` that `p` has not read.
fn unread(p: &RawPeer) -> usize {
    let n = rustix::io::ioctl_fionread(p.stream()).expect("FIONREAD");
    usize::try_from(n).unwrap()
}

#[test]
fn clients_that_never_read_are_dropped_and_memory_stays_bounded() {
    let _alone = ALONE.lock().unwrap_or_else(|e| e.into_inner());
    let queue = MIB as usize;
    let kernel = Arc::new(ModelKernel::new());
    // A call's output is written as its client reads, never queued whole;
    // a client that reads nothing for the stall timeout is dropped.
    let cfg = Config {
        send_queue_bytes: queue,
        send_stall_timeout: Duration::from_millis(300),
        ..Config::default()
    };
    let s = TestServer::start_with(kernel.clone(), Transport::Unix, cfg).unwrap();
    let hogs_n = 16;
    // A hog's unread bytes sit in its socket (about twice the send buffer,
    // as the kernel counts overhead) and in the server's queue (up to the
    // bound, plus the frame that crosses it): past that, it is dropped.
    let wmem: u64 = std::fs::read_to_string("/proc/sys/net/core/wmem_default")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(212_992);
    let last_round = (queue as u64 + 2 * wmem + MIB).div_ceil(MIB);
    let rounds = last_round + 2;
    let mut bystander = RawPeer::guest(&s.url(), "bystander").unwrap();
    let mut hogs: Vec<(RawPeer, u64)> = (0..hogs_n)
        .map(|i| {
            let mut p = RawPeer::guest(&s.url(), "hog").unwrap();
            let fd = sized_file(&mut p, &format!("hog{i}"), MIB);
            // One read served normally warms the allocator's pools.
            let r = call(
                &mut p,
                4,
                Sysnum::PREAD,
                &args::encode(&[fd, 0x1000, MIB, 0, 0]),
                &[],
                0,
            )
            .unwrap();
            assert_eq!((r.error, r.retval[0]), (0, MIB as i64));
            (p, fd)
        })
        .collect();
    let base = rss();
    let mut peak = base;
    // Each hog in turn asks for 1 MiB at a time that it never reads (16 x
    // `rounds` MiB in all, were nothing bounded), one call at a time:
    // a call counts as taken once bytes arrive or the hog is dropped, and
    // as done once the kernel is idle.
    for (i, (p, fd)) in hogs.iter_mut().enumerate() {
        let dropped_before = s.server.stats().dropped;
        let mut dropped_in = None;
        for round in 0..rounds {
            let before = unread(p);
            let sent = p.send_msg(&sp_proto::Message::Syscall {
                reqno: 10 + round,
                sysnum: Sysnum::PREAD.0,
                args: &args::encode(&[*fd, 0x1000, MIB, 0, 0]),
            });
            if sent.is_ok() {
                assert!(
                    wait_for(WAIT, || {
                        s.server.stats().dropped > dropped_before || unread(p) > before
                    }),
                    "hog {i} round {round}: the server neither answered nor dropped it"
                );
            }
            assert!(
                kernel.wait_idle(WAIT),
                "hog {i} round {round}: the read returns"
            );
            peak = peak.max(rss());
            if sent.is_err() || s.server.stats().dropped > dropped_before {
                dropped_in = Some(round);
                break;
            }
        }
        // Round 0 fills the socket; the rest of its answer waits for the
        // hog, which is dropped when it has read nothing for the stall
        // timeout (at the latest when a later round crosses the bound).
        let round = dropped_in.unwrap_or_else(|| panic!("hog {i} was never dropped"));
        assert!(
            round <= last_round,
            "hog {i} dropped in round {round} (bound: round {last_round})"
        );
        // The hog may see its socket closed before the loop counts the drop.
        assert!(
            wait_for(WAIT, || s.server.stats().dropped == dropped_before + 1),
            "hog {i} counted as dropped once: {:?}",
            s.server.stats()
        );
        assert_eq!(
            bystander
                .syscall(100 + i as u64, Sysnum::GETPID, &[])
                .unwrap()
                .0,
            0
        );
    }
    assert!(
        wait_for(WAIT, || s.server.stats().connections == 1),
        "only the bystander is left"
    );
    let growth = peak.saturating_sub(base);
    eprintln!(
        "rss base {} MiB, peak {} MiB, growth {} MiB",
        base / MIB,
        peak / MIB,
        growth / MIB
    );
    assert!(
        growth < 32 * MIB,
        "resident set grew by {} MiB for {hogs_n} non-reading clients with a 1 MiB queue each",
        growth / MIB
    );
    drop(hogs);
    assert!(wait_for(WAIT, || kernel.process_count() == 1));
    assert_eq!(s.server.stats().syscalls, 0);
}

/// A header announcing a long frame makes the decoder size its buffer for
/// the whole frame at once (sp-proto `Deframer::read_buf` resizes to
/// `len`, zero-filled, on the first read after the header, before the body
/// has arrived). With the default 64 MiB limit, each idle connection that
/// sent 25 bytes pins 64 MiB of the server's memory: a few hundred such
/// connections exhaust the host.
#[test]

fn a_header_and_a_byte_do_not_make_the_server_allocate_the_frame() {
    let _alone = ALONE.lock().unwrap_or_else(|e| e.into_inner());
    let kernel = Arc::new(ModelKernel::new());
    let s = TestServer::start_with(kernel, Transport::Unix, Config::default()).unwrap();
    let mut probe = RawPeer::guest(&s.url(), "probe").unwrap();
    let conns = 8;
    let base = rss();
    let mut liars = Vec::new();
    for _ in 0..conns {
        let mut p = RawPeer::guest(&s.url(), "liar").unwrap();
        // A syscall header announcing the largest frame allowed ...
        let h = raw_frame(
            DEFAULT_MAX_FRAME,
            2,
            Class::REQ.0,
            MsgType::SYSCALL.0,
            20,
            &[],
        );
        p.send(&h).unwrap();
        liars.push(p);
    }
    // (two round trips on another connection: the headers have been read)
    for i in 0..2 {
        assert_eq!(probe.syscall(2 + i, Sysnum::GETPID, &[]).unwrap().0, 0);
    }
    // ... and, in a later read, one byte of its body.
    for p in &mut liars {
        p.send(&[0]).unwrap();
    }
    for i in 0..2 {
        assert_eq!(probe.syscall(4 + i, Sysnum::GETPID, &[]).unwrap().0, 0);
    }
    let grew = wait_for(Duration::from_secs(1), || {
        rss().saturating_sub(base) > 64 * MIB
    });
    let growth = rss().saturating_sub(base);
    assert!(
        !grew,
        "{conns} connections that sent 25 bytes each grew the resident set by {} MiB",
        growth / MIB
    );
}
