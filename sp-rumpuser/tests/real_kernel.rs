//! Opt-in: a stock NetBSD rump kernel (`SP_RUMP_PREFIX` names its install:
//! `bin/rump_server`, `lib/`), run twice side by side, once with its own C
//! server and once with ours preloaded (`libsp_rumpuser.so` of this
//! build), and the same sp-client suite run on both; the answers must
//! agree. Without the variable every test says it was skipped.

use sp_client::{Call, Client, Options};
use sp_proto::abi::oflag::{O_CREAT, O_DIRECTORY, O_RDONLY, O_RDWR};
use sp_proto::abi::Sysnum;
use sp_proto::args;
use sp_proto::{Handshake, Message};
use sp_testkit::rawpeer::RawPeer;
use sp_testkit::rump::{prefix, RumpServer};
use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// `__mount50`, a call sp_proto::abi::Sysnum does not name.
const SYS_MOUNT: u32 = 410;

/// Our preloadable server: `SP_RUMPUSER_LIB`, else `libsp_rumpuser.so`
/// of this workspace's release build, else of its debug build
/// (`cargo xtask rump` builds the release one first).
fn our_library() -> PathBuf {
    if let Some(p) = std::env::var_os("SP_RUMPUSER_LIB") {
        let p = PathBuf::from(p);
        // A missing preload is only a warning to ld.so: the stock server
        // would run in its place.
        assert!(p.exists(), "SP_RUMPUSER_LIB={}: no such file", p.display());
        return p;
    }
    let exe = std::env::current_exe().unwrap();
    let target = exe.ancestors().nth(3).unwrap();
    ["release", "debug"]
        .iter()
        .map(|p| target.join(p).join("libsp_rumpuser.so"))
        .find(|l| l.exists())
        .expect("no libsp_rumpuser.so: cargo build --release -p sp-rumpuser first")
}

/// The stock `rump_server`, with our server preloaded or not.
fn start(prefix: &Path, ours: bool) -> RumpServer {
    let lib = ours.then(our_library);
    RumpServer::start(prefix, lib.as_deref())
}

fn both() -> Option<(RumpServer, RumpServer)> {
    let p = prefix()?;
    Some((start(&p, false), start(&p, true)))
}

/// Mounts a tmpfs at /tmp (the root is rumpfs, where rename is missing).
fn mount_tmpfs(c: &Client) {
    let dir = CString::new("/tmp").unwrap();
    match c.call(Call::new(Sysnum::MKDIR).cstr(&dir).int(0o777)) {
        Ok(_) | Err(sp_proto::Errno::EEXIST) => {}
        Err(e) => panic!("mkdir /tmp: {e}"),
    }
    // struct tmpfs_args { int ta_version = 1; ino_t nodes_max; off_t
    // size_max; uid_t root_uid; gid_t root_gid; mode_t root_mode; }
    let mut targs = [0u8; 40];
    targs[0] = 1;
    targs[32..36].copy_from_slice(&0o1777u32.to_le_bytes());
    let fstype = CString::new("tmpfs").unwrap();
    c.call(
        Call::new(SYS_MOUNT)
            .cstr(&fstype)
            .cstr(&dir)
            .int(0)
            .input(&targs)
            .arg(targs.len() as u64),
    )
    .expect("mount tmpfs on /tmp");
}

/// What a run of the suite saw, to compare between the two servers.
#[derive(Debug, PartialEq)]
struct Seen {
    steps: Vec<String>,
}

fn suite(url: &str) -> Seen {
    let mut steps = Vec::new();
    let c = Client::connect(url).unwrap();
    mount_tmpfs(&c);
    steps.push(format!("mkdir {:?}", c.mkdir("/tmp/d", 0o755)));
    steps.push(format!("mkdir again {:?}", c.mkdir("/tmp/d", 0o755)));
    let fd = c.open("/tmp/d/big", O_RDWR | O_CREAT, 0o644).unwrap();
    let data: Vec<u8> = (0..(1u32 << 20)).map(|i| (i % 251) as u8).collect();
    steps.push(format!("write {:?}", c.write(fd, &data)));
    steps.push(format!("lseek {:?}", c.lseek(fd, 0, 0)));
    let mut back = vec![0u8; data.len()];
    let mut got = 0;
    while got < back.len() {
        let n = c.read(fd, &mut back[got..]).unwrap();
        if n == 0 {
            break;
        }
        got += n;
    }
    steps.push(format!("read back {got} equal {}", back == data));
    let st = c.fstat(fd).unwrap();
    steps.push(format!("fstat size {} is_file {}", st.size(), st.is_file()));
    c.close(fd).unwrap();
    steps.push(format!(
        "rename {:?}",
        c.rename("/tmp/d/big", "/tmp/d/moved")
    ));
    steps.push(format!(
        "stat old {:?}",
        c.stat("/tmp/d/big").map(|s| s.size())
    ));
    steps.push(format!(
        "stat new {:?}",
        c.stat("/tmp/d/moved").map(|s| s.size())
    ));
    let mut names: Vec<String> = c
        .read_dir("/tmp/d")
        .unwrap()
        .iter()
        .map(|e| String::from_utf8_lossy(e.name()).into_owned())
        .collect();
    names.sort();
    steps.push(format!("getdents {names:?}"));
    let d = c.open("/tmp/d", O_RDONLY | O_DIRECTORY, 0);
    steps.push(format!("open dir ok {}", d.is_ok()));
    steps.push(format!("missing {:?}", c.open("/tmp/none", O_RDONLY, 0)));

    // Fork: the prefork is forked once more and released, so the child's
    // parent is gone (ppid 1).
    let (pid, _) = c.getpid().unwrap();
    let cookie = c.prefork().unwrap();
    let child = Client::fork_child(url, cookie, Options::new()).unwrap();
    let (cpid, cppid) = child.getpid().unwrap();
    steps.push(format!("fork child pid +{} ppid {cppid}", cpid - pid));
    let cfd = child.open("/tmp/d/moved", O_RDONLY, 0).unwrap();
    let mut head = [0u8; 4];
    steps.push(format!(
        "child reads {:?} {head:?}",
        child.read(cfd, &mut head)
    ));
    drop(child);

    // Exec on the same connection keeps the pid.
    let mut raw = RawPeer::guest(url, "before").unwrap();
    let (_, rv) = raw.syscall(1, 20, &[]).unwrap();
    raw.send_msg(&Message::Handshake {
        reqno: 2,
        hs: Handshake::Exec { comm: b"after\0" },
    })
    .unwrap();
    let f = raw.recv_msg().unwrap();
    steps.push(format!("exec {:?}", f.message()));
    let (_, rv2) = raw.syscall(3, 20, &[]).unwrap();
    steps.push(format!("same pid after exec {}", rv[0] == rv2[0]));

    // 8 threads on one client.
    let shared = Arc::new(Client::connect(url).unwrap());
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let c = shared.clone();
            std::thread::spawn(move || {
                let fd = c
                    .open(format!("/tmp/t{t}"), O_RDWR | O_CREAT, 0o644)
                    .unwrap();
                for i in 0..40u8 {
                    c.write(fd, &[t, i]).unwrap();
                    c.getpid().unwrap();
                }
                c.fstat(fd).unwrap().size()
            })
        })
        .collect();
    let sizes: Vec<u64> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    steps.push(format!("threads {sizes:?}"));
    Seen { steps }
}

#[test]
fn the_same_suite_gets_the_same_answers() {
    let Some((stock, ours)) = both() else { return };
    let a = suite(&stock.url);
    let b = suite(&ours.url);
    assert_eq!(a, b, "stock (left) and ours (right) disagree");
}

#[test]
fn numbers_outside_the_table_are_enosys_not_a_crash() {
    let Some(p) = prefix() else { return };
    let ours = start(&p, true);
    let c = Client::connect(&ours.url).unwrap();
    // The stock server hands these to the kernel, which indexes before
    // its table and dies (SIGSEGV).
    for num in [0x8000_0000u32, 0xffff_ffff, 512] {
        assert_eq!(c.syscall(num, &[], &mut []), Err(sp_proto::Errno::ENOSYS));
    }
    // A block shorter than the call's arguments reads zeros: write(0,
    // NULL, 0) from a block of one slot.
    let mut raw = RawPeer::guest(&ours.url, "short").unwrap();
    let (err, rv) = raw.syscall(1, 4, &[0; 4]).unwrap();
    assert_eq!((err, rv[0]), (0, 0), "write of nothing to the console");
    assert!(c.getpid().is_ok());
}

#[test]
fn blocked_calls_never_starve_another_client() {
    let Some(p) = prefix() else { return };
    let ours = start(&p, true);
    // 300 reads blocked on empty pipes (more than the C server's 128
    // workers), in ten processes (a process has too few descriptors for
    // 300 pipes), then another client is served, then every read ends.
    let mut peers = Vec::new();
    for p in 0..10 {
        let mut peer = RawPeer::guest(&ours.url, "blocked").unwrap();
        let mut writers = Vec::new();
        for i in 0..30u64 {
            let (err, fds) = peer.syscall(1000 + i, 42, &[]).unwrap();
            assert_eq!(err, 0, "pipe {i} of process {p}");
            writers.push(fds[1]);
            peer.syscall_async(i + 1, 3, &args::encode(&[fds[0] as u64, 0x1000, 1]));
        }
        peers.push((peer, writers));
    }
    let other = Client::connect(&ours.url).unwrap();
    for _ in 0..10 {
        other.getpid().unwrap();
    }
    // Close every write end: each blocked read returns 0 (EOF).
    for (peer, writers) in &mut peers {
        for (i, w) in writers.iter().enumerate() {
            peer.syscall_async(5000 + i as u64, 6, &args::encode(&[*w as u64]));
        }
        let mut answers = 0;
        while answers < 60 {
            // Each receive is bounded by the peer's timeout.
            let f = peer.recv_msg().unwrap();
            match f.message() {
                Some(Message::SyscallResp { error: 0, .. }) => answers += 1,
                other => panic!("unexpected {other:?}"),
            }
        }
    }
}

#[test]
fn execs_racing_disconnects_and_preforks_never_crash_the_kernel() {
    let Some(p) = prefix() else { return };
    let ours = start(&p, true);
    // Each of these crashed a stock rump_server at least once under the C
    // server (an assertion in the kernel's execnotify, SIGABRT).
    for i in 0..40u64 {
        let mut raw = RawPeer::guest(&ours.url, "racer").unwrap();
        let (_, fds) = raw.syscall(1, 42, &[]).unwrap();
        raw.syscall_async(2, 3, &args::encode(&[fds[0] as u64, 0x1000, 1]));
        if i % 2 == 0 {
            raw.send_msg(&Message::Prefork { reqno: 3 }).unwrap();
        }
        raw.send_msg(&Message::Handshake {
            reqno: 4,
            hs: Handshake::Exec { comm: b"racer2\0" },
        })
        .unwrap();
        // Gone before, during or after the exec's drain.
        drop(raw);
    }
    let c = Client::connect(&ours.url).unwrap();
    assert!(c.getpid().is_ok(), "the kernel survived");
}

#[test]
fn a_flood_of_clients_meets_the_process_cap_not_a_kernel_panic() {
    let Some(p) = prefix() else { return };
    let ours = start(&p, true);
    // 1,200 connections of this process.
    rlimit::increase_nofile_limit(4096).unwrap();
    // Past about 1,770 guests a stock kernel panics (no file for the new
    // process's console); the stock server never gets there (255 clients).
    let mut kept = Vec::new();
    let mut refused = 0;
    for _ in 0..1200 {
        match RawPeer::guest(&ours.url, "flood") {
            Ok(peer) => kept.push(peer),
            Err(_) => refused += 1,
        }
    }
    assert_eq!(kept.len(), 1000, "SP_MAX_PROCS defaults to 1000");
    assert_eq!(refused, 200);
    let (err, _) = kept[999].syscall(1, 20, &[]).unwrap();
    assert_eq!(err, 0, "the kernel lives");
    drop(kept);
    let c = Client::connect(&ours.url).unwrap();
    assert!(c.getpid().is_ok());
}
