//! The captures of the C client and server (`shared/vectors`): every frame
//! the server sent must decode for the client, and replaying a capture's
//! server side against this client must draw the C client's bytes, client
//! addresses aside.

use super::*;
use crate::{fuzz_server_bytes, Call, Errno};
use sp_proto::capture::{self, Dir, Unit};
use sp_proto::{Class, MsgType};
use std::collections::HashMap;
use std::os::fd::{AsFd, IntoRawFd};
use std::path::PathBuf;
use std::sync::mpsc;

/// The captures: `SP_VECTORS_DIR`, else `shared/vectors` beside the
/// repository.
fn vectors_dir() -> PathBuf {
    match std::env::var_os("SP_VECTORS_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/vectors"),
    }
}

fn load(name: &str) -> Vec<Unit> {
    let text = std::fs::read_to_string(vectors_dir().join(name)).unwrap();
    capture::parse(&text)
        .unwrap_or_else(|e| panic!("{name}: {e}"))
        .units
}

fn all_files() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(vectors_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".jsonl"))
        .collect();
    names.sort();
    assert!(names.len() >= 20, "the captures are missing");
    names
}

#[test]
fn every_server_frame_of_the_captures_decodes() {
    let mut frames = 0;
    for name in all_files() {
        for u in load(&name).into_iter().filter(|u| u.dir == Dir::S2c) {
            if u.bytes.starts_with(b"RUMPSP-") {
                let b = sp_proto::Banner::parse(&u.bytes).unwrap();
                b.check_supported().unwrap();
                continue;
            }
            let (f, used) = sp_proto::Frame::parse(&u.bytes, DEFAULT_MAX_FRAME)
                .unwrap()
                .unwrap();
            assert_eq!(used, u.bytes.len(), "{name}: one frame per line");
            let m = f.message().unwrap_or_else(|e| panic!("{name}: {e}"));
            let (c, t) = (f.header.class(), f.header.typ());
            let handled = match c {
                Class::RESP => {
                    matches!(t, MsgType::HANDSHAKE | MsgType::SYSCALL | MsgType::PREFORK)
                }
                Class::ERROR => true,
                Class::REQ => matches!(
                    t,
                    MsgType::COPYIN
                        | MsgType::COPYINSTR
                        | MsgType::COPYOUT
                        | MsgType::COPYOUTSTR
                        | MsgType::ANONMMAP
                        | MsgType::RAISE
                ),
                _ => false,
            };
            assert!(handled, "{name}: the client does not handle {m:?}");
            frames += 1;
        }
    }
    assert!(frames > 30);
}

#[test]
fn fuzz_body_survives_the_captures_and_their_mutations() {
    for name in all_files() {
        let stream: Vec<u8> = load(&name)
            .into_iter()
            .filter(|u| u.dir == Dir::S2c && u.conn() == 0)
            .flat_map(|u| u.bytes)
            .collect();
        fuzz_server_bytes(&stream);
        for cut in (0..stream.len()).step_by(7) {
            fuzz_server_bytes(&stream[..cut]);
        }
        for i in (0..stream.len()).step_by(5) {
            let mut m = stream.clone();
            m[i] ^= 0x5a;
            fuzz_server_bytes(&m);
        }
    }
    fuzz_server_bytes(&[]);
    fuzz_server_bytes(&[0xff; 300]);
}

/// Replays the server side of `name`, learning how the capture's client
/// addresses map to this client's from the frames it sends, and substituting
/// them in what the server sends back.
///
/// The client asks for the extension after each handshake (the capture's
/// C client never does): the peer answers that EXT_HELLO as the C server
/// answers any request type it does not know, ERROR MALFORMED_REQUEST, and
/// every frame after it must still be the C client's, byte for byte. The
/// probes answered on each connection are checked against the handshakes
/// of the capture (one probe after each).
fn replay(name: &'static str, client: impl FnOnce(&str)) {
    replay_with(name, true, client)
}

/// [`replay`] with the client's extension probe expected (`probes`) or not.
fn replay_with(name: &'static str, probes: bool, client: impl FnOnce(&str)) {
    let l = listener();
    let url = l.url.clone();
    let h = std::thread::spawn(move || {
        let mut peers: HashMap<u64, Peer> = HashMap::new();
        let mut addr: HashMap<u64, u64> = HashMap::new();
        let mut handshakes: HashMap<u64, usize> = HashMap::new();
        for (i, u) in load(name).into_iter().enumerate() {
            let p = peers.entry(u.conn()).or_insert_with(|| l.accept());
            if u.dir == Dir::S2c {
                let mut b = u.bytes.clone();
                if !b.starts_with(b"RUMPSP-") {
                    for w in (HEADER_LEN..b.len() & !7).step_by(8) {
                        let v = u64::from_le_bytes(b[w..w + 8].try_into().unwrap());
                        if let Some(&ours) = addr.get(&v) {
                            b[w..w + 8].copy_from_slice(&ours.to_le_bytes());
                        }
                    }
                }
                p.write(&b);
            } else {
                let got = p
                    .raw()
                    .unwrap_or_else(|| panic!("{name} line {i}: the client closed"));
                let want = &u.bytes;
                let h = sp_proto::Header::read(want).unwrap();
                if h.typ() == MsgType::HANDSHAKE {
                    // A probe follows every handshake but a fork cancel,
                    // which is not answered.
                    let cancel = h.handshake() == sp_proto::HandshakeKind::FORK
                        && want[HEADER_LEN + 16..].iter().any(|&b| b != 0);
                    if !cancel {
                        *handshakes.entry(u.conn()).or_default() += 1;
                    }
                }
                assert_eq!(got.len(), want.len(), "{name} line {i}: frame length");
                assert_eq!(
                    &got[..HEADER_LEN],
                    &want[..HEADER_LEN],
                    "{name} line {i}: header"
                );
                for w in (HEADER_LEN..want.len()).step_by(8) {
                    let end = (w + 8).min(want.len());
                    if got[w..end] == want[w..end] {
                        continue;
                    }
                    assert_eq!(end - w, 8, "{name} line {i}: bytes differ at {w}");
                    let theirs = u64::from_le_bytes(want[w..end].try_into().unwrap());
                    let ours = u64::from_le_bytes(got[w..end].try_into().unwrap());
                    assert!(
                        theirs >= 0x10000,
                        "{name} line {i}: {theirs:#x} is not an address"
                    );
                    assert_eq!(
                        *addr.entry(theirs).or_insert(ours),
                        ours,
                        "{name} line {i}: address moved"
                    );
                }
            }
        }
        for (conn, p) in &peers {
            let want = if probes { handshakes[conn] } else { 0 };
            assert_eq!(p.probes, want, "{name} connection {conn}: probes answered");
        }
    });
    client(&url);
    h.join().unwrap();
}

#[test]
fn replay_without_the_probe() {
    // Extensions off: not even the probe; the frames are the C client's.
    for name in ["getpid.jsonl", "write.jsonl", "open.jsonl"] {
        replay_with(name, false, |url| {
            let c = Client::connect_with(url, opts().extensions(false)).unwrap();
            assert_eq!(c.extension_features(), crate::Features::NONE);
            match name {
                "getpid.jsonl" => assert_eq!(c.getpid(), Ok((2, 0))),
                "write.jsonl" => assert_eq!(c.write(1, b"hello"), Ok(5)),
                _ => {
                    assert_eq!(c.open("/ok", 0, 0), Ok(3));
                    assert_eq!(c.open("/missing", 0, 0), Err(Errno::ENOENT));
                }
            }
        });
    }
}

#[test]
fn replay_getpid() {
    replay("getpid.jsonl", |url| {
        let c = Client::connect_with(url, opts()).unwrap();
        assert_eq!(c.getpid(), Ok((2, 0)));
    });
}

#[test]
fn replay_write() {
    replay("write.jsonl", |url| {
        let c = Client::connect_with(url, opts()).unwrap();
        // The stock server refused the probe: no segments, a plain SYSCALL
        // and the COPYIN round trip, as the C client has it.
        assert_eq!(c.extension_features(), crate::Features::NONE);
        assert_eq!(c.write(1, b"hello"), Ok(5));
    });
}

#[test]
fn replay_read() {
    replay("read.jsonl", |url| {
        let c = Client::connect_with(url, opts()).unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(c.read(0, &mut buf), Ok(16));
        assert!(buf.iter().enumerate().all(|(i, &b)| b == i as u8));
    });
}

#[test]
fn replay_open() {
    replay("open.jsonl", |url| {
        let c = Client::connect_with(url, opts()).unwrap();
        assert_eq!(c.open("/ok", 0, 0), Ok(3));
        assert_eq!(c.open("/missing", 0, 0), Err(Errno::ENOENT));
    });
}

#[test]
fn replay_raise() {
    replay("raise.jsonl", |url| {
        let (tx, rx) = mpsc::channel();
        let c = Client::connect_with(url, opts().on_signal(move |s| tx.send(s).unwrap())).unwrap();
        assert_eq!(c.call(Call::new(1001).arg(30)), Ok([0, 0]));
        assert_eq!(rx.try_recv(), Ok(30));
    });
}

#[test]
fn replay_anonmmap() {
    replay("anonmmap.jsonl", |url| {
        let c = Client::connect_with(url, opts()).unwrap();
        let r = c.call(Call::new(1000).arg(65536)).unwrap();
        let m = c
            .mapping(r[0] as u64)
            .expect("the returned address is our mapping");
        assert_eq!(m.len(), 65536);
        assert!(m.write_at(0, b"local rw"));
    });
}

#[test]
fn replay_fork() {
    replay("fork.jsonl", |url| {
        let c = Client::connect_with(url, opts()).unwrap();
        assert_eq!(c.getpid(), Ok((2, 0)));
        let cookie = c.prefork().unwrap();
        let child = Client::fork_child(url, cookie, opts()).unwrap();
        assert_eq!(child.getpid(), Ok((4, 0)));
        assert_eq!(c.getpid(), Ok((2, 0)));
    });
}

fn exec_replay(name: &'static str, new_name: &'static str) {
    let _env = ENV_LOCK.lock();
    replay(name, |url| {
        let c = Client::connect_with(url, opts()).unwrap();
        assert_eq!(c.getpid(), Ok((2, 0)));
        // Stand in for the new image: a second descriptor of the same socket,
        // handed over the way an exec hands it.
        let fd = c
            .conn
            .read()
            .stream()
            .as_fd()
            .try_clone_to_owned()
            .unwrap()
            .into_raw_fd();
        std::env::set_var(crate::EXECFD_VAR, format!("{fd},-1"));
        // SAFETY: `fd` is a fresh duplicate released with into_raw_fd:
        // nothing else owns it.
        let after = unsafe { Client::from_exec_env(Options::default().name(new_name)) }.unwrap();
        assert_eq!(after.getpid(), Ok((2, 0)));
    });
}

#[test]
fn replay_exec() {
    exec_replay("exec.jsonl", "cref_client");
}

#[test]
fn replay_exec_renamed() {
    exec_replay("exec_renamed.jsonl", "cref_exec2");
}
