//! Fuzz bodies for the server and the client, called by the `cargo fuzz`
//! targets in `fuzz/` and, over their checked-in seed corpora, by
//! `tests/fuzz_corpus.rs`, so plain `cargo test` runs them too.
//!
//! [`fuzz_server_session`] feeds arbitrary client bytes to a server with
//! the [`ModelKernel`] behind it. The server is started once per process
//! (see [`session_config`] for its small limits) and every input gets a
//! connection of its own, one end of a socket pair handed in with
//! `ServerHandle::adopt`. [`fuzz_client_bytes`] feeds arbitrary server bytes
//! to our client.

use crate::peers::{adopt_pair, guest_handshake};
use sp_model::ModelKernel;
use sp_proto::abi::Sysnum;
use sp_proto::args;
use sp_proto::capture::{to_hex, Dir};
use sp_proto::{
    Banner, Class, Deframer, Frame, Handshake, Message, MsgType, DEFAULT_MAX_FRAME, HEADER_LEN,
};
use sp_server::{Config, RunningServer, Server, Stats};
use sp_transport::Stream;
use std::collections::HashSet;
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// The session server's frame limit: small, so the fuzzer reaches it.
pub const SESSION_MAX_FRAME: u64 = 64 * 1024;
/// The session server's send queue per client.
pub const SESSION_SEND_QUEUE: usize = 256 * 1024;
/// How long an unclaimed prefork of the session server lives.
pub const SESSION_PREFORK_TTL: Duration = Duration::from_millis(200);
/// Bytes the session kernel's files may hold in all (the kernel outlives
/// every input, so what inputs write must stay bounded).
pub const SESSION_FS_BYTES: u64 = 8 << 20;
/// How long one input may take before the session counts as hung.
pub const SESSION_TIMEOUT: Duration = Duration::from_secs(10);

/// Worker threads started before the first input and kept idle.
pub const WARM_WORKERS: usize = 64;

/// The configuration of the session server.
pub fn session_config() -> Config {
    Config {
        max_frame: SESSION_MAX_FRAME,
        send_queue_bytes: SESSION_SEND_QUEUE,
        prefork_cap: 4,
        prefork_ttl: SESSION_PREFORK_TTL,
        // Workers never exit while fuzzing (see `warm_up`).
        max_idle_workers: WARM_WORKERS,
        idle_linger: Duration::from_secs(3600),
        raise_nofile: false,
        ..Config::default()
    }
}

struct Session {
    server: RunningServer,
    kernel: Arc<ModelKernel>,
    banner: Vec<u8>,
    _dir: tempfile::TempDir,
}

fn session() -> &'static Session {
    static SESSION: OnceLock<Session> = OnceLock::new();
    SESSION.get_or_init(|| {
        ignore_sigpipe();
        let kernel = Arc::new(ModelKernel::with_fs_capacity(SESSION_FS_BYTES));
        let dir = tempfile::Builder::new()
            .prefix("sp-fuzz")
            .tempdir()
            .expect("a temporary directory");
        let url = format!("unix://{}", dir.path().join("sp.sock").display());
        let config = session_config();
        let banner = config.banner.format().expect("the default banner formats");
        let server = Server::bind(&url, kernel.clone(), config)
            .expect("the session server binds")
            .spawn()
            .expect("the session server starts");
        let s = Session {
            server,
            kernel,
            banner,
            _dir: dir,
        };
        warm_up(&s);
        s
    })
}

/// Starts [`WARM_WORKERS`] worker threads and leaves them idle, each
/// having waited once in the kernel (a pipe read) and once for the client
/// (a COPYIN): inputs with fewer calls in flight then neither start nor
/// end a thread, nor make a thread set up its thread-locals, which
/// LeakSanitizer would blame on whichever input ran meanwhile.
fn warm_up(s: &Session) {
    for round in 0..2 {
        let mut p = adopt_pair(s.server.handle()).expect("a socket pair");
        guest_handshake(&mut p, "warm-up").expect("warm-up handshake");
        let (err, fds) = p.syscall(2, Sysnum::PIPE, &[]).expect("pipe");
        assert_eq!(err, 0);
        for i in 0..WARM_WORKERS as u64 {
            if round == 0 {
                p.syscall_async(
                    10 + i,
                    Sysnum::READ,
                    &args::encode(&[fds[0] as u64, 0x1000, 1]),
                );
            } else {
                p.syscall_async(
                    10 + i,
                    Sysnum::WRITE,
                    &args::encode(&[fds[1] as u64, 0x1000, 1]),
                );
            }
        }
        if round == 0 {
            assert!(
                s.kernel.wait_blocked_threads(WARM_WORKERS, SESSION_TIMEOUT),
                "warm-up reads block"
            );
        } else {
            // Every write waits for its COPYIN answer.
            for _ in 0..WARM_WORKERS {
                p.recv_msg().expect("a COPYIN request");
            }
        }
        drop(p);
        let idle = crate::peers::wait_for(SESSION_TIMEOUT, || {
            let st = s.server.stats();
            st.workers.idle >= WARM_WORKERS && st.connections == 0 && s.kernel.process_count() == 0
        });
        assert!(idle, "warm-up workers settle: {:?}", s.server.stats());
    }
}

/// Writing to a socket whose peer is gone must be an error, not a signal:
/// a libFuzzer binary does not get Rust's start-up code that ignores
/// SIGPIPE.
fn ignore_sigpipe() {
    // SAFETY: setting a signal's disposition to SIG_IGN installs no handler
    // code; it is async-signal-safe and affects only how SIGPIPE is
    // delivered (as EPIPE from write instead).
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
}

/// The session server's kernel (started on first use).
pub fn session_kernel() -> Arc<ModelKernel> {
    session().kernel.clone()
}

/// The session server's counters now (started on first use).
pub fn session_stats() -> Stats {
    session().server.stats()
}

/// One client session of arbitrary bytes against the session server.
///
/// A fresh connection reads the banner, sends `data`, shuts its sending
/// side and reads until the server ends the connection (an EOF from the
/// client makes the server tear the connection down; calls waiting for the
/// client fail). Then it checks:
/// - the server ended the session within [`SESSION_TIMEOUT`];
/// - the banner is the configured one and every frame after it decodes
///   into a message the server may send (a partial frame may end the
///   stream only where the server cut a connection it dropped);
/// - every answer (HANDSHAKE, SYSCALL or PREFORK response, ERROR) echoes
///   the reqno of a frame the client sent that takes an answer, and there
///   are no more answers than such frames;
/// - the server's own requests (COPYIN, COPYOUT, ANONMMAP) never reuse a
///   request number;
/// - the server still serves: a fresh guest's getpid is answered.
///
/// Panics if any check fails.
pub fn fuzz_server_session(data: &[u8]) {
    let s = session();
    let output = run_session(s, data).unwrap_or_else(|e| {
        panic!(
            "session over {} input bytes failed: {e}\ninput: {}",
            data.len(),
            to_hex(data)
        )
    });
    if let Err(e) = check_output(&s.banner, data, &output) {
        panic!(
            "bad server output: {e}\ninput: {}\noutput: {}",
            to_hex(data),
            to_hex(&output)
        );
    }
    // A fresh guest every 32 sessions (and on the first): the probe costs
    // as much as a session, and a server that stopped serving stays so.
    static SESSIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    if SESSIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 32 == 0 {
        probe(s);
    }
}

/// Inputs up to this size are written without a helper thread: a socket
/// pair's buffer takes them whole, so the write cannot block.
const DIRECT_WRITE: usize = 32 * 1024;

fn run_session(s: &Session, data: &[u8]) -> io::Result<Vec<u8>> {
    let (ours, theirs) = UnixStream::pair()?;
    ours.set_read_timeout(Some(SESSION_TIMEOUT))?;
    ours.set_write_timeout(Some(SESSION_TIMEOUT))?;
    s.server.handle().adopt(Stream::Unix(theirs));
    let writer = ours.try_clone()?;
    std::thread::scope(|scope| {
        let write = move || {
            // The server may end the connection before it has read
            // everything: a write error is an answer, not a failure.
            let _ = (&writer).write_all(data);
            let _ = writer.shutdown(Shutdown::Write);
        };
        if data.len() <= DIRECT_WRITE {
            write();
        } else {
            scope.spawn(write);
        }
        let mut out = Vec::new();
        let mut chunk = [0u8; 64 * 1024];
        loop {
            match (&ours).read(&mut chunk) {
                Ok(0) => return Ok(out),
                Ok(n) => out.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return Ok(out),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    // Unblock the writer before failing.
                    let _ = ours.shutdown(Shutdown::Both);
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!(
                            "the server did not end the session within {SESSION_TIMEOUT:?} \
                             ({} bytes received)",
                            out.len()
                        ),
                    ));
                }
                Err(e) => return Err(e),
            }
        }
    })
}

/// The answers a session's output may hold: one per client frame that
/// takes an answer (every frame but a RESP, as far as the input frames at
/// the server's limit), each echoing such a frame's request number. Used
/// by both session bodies (this one and [`crate::core_session`]).
pub(crate) struct Answers {
    /// Request numbers asked, sorted.
    asked: Vec<u64>,
    seen: usize,
}

impl Answers {
    /// The answers `input` asks for, framed at `max_frame`.
    pub(crate) fn new(input: &[u8], max_frame: u64) -> Answers {
        let mut dec = Deframer::new(max_frame);
        dec.push(input);
        let mut asked = Vec::new();
        while let Ok(Some(f)) = dec.next_frame() {
            if f.header.class() != Class::RESP {
                asked.push(f.header.reqno());
            }
        }
        asked.sort_unstable();
        Answers { asked, seen: 0 }
    }

    /// Checks `msg` (the whole frame is `raw`) if it is an answer: it
    /// echoes a request number asked, and an ERROR is a bare header.
    /// `Ok(false)` if it is not an answer at all.
    pub(crate) fn check(
        &mut self,
        msg: &Message<'_>,
        typ: MsgType,
        raw: &[u8],
    ) -> Result<bool, String> {
        let reqno = match msg {
            Message::HandshakeResp { reqno, .. }
            | Message::SyscallResp { reqno, .. }
            | Message::PreforkResp { reqno, .. }
            | Message::ExtHelloResp { reqno, .. }
            | Message::Error { reqno, .. } => *reqno,
            _ => return Ok(false),
        };
        if self.asked.binary_search(&reqno).is_err() {
            return Err(format!("{msg:?} answers reqno {reqno}, never sent"));
        }
        if let Message::Error { .. } = msg {
            if typ != MsgType(0) || raw.len() != HEADER_LEN {
                return Err(format!("malformed ERROR frame {}", to_hex(raw)));
            }
        }
        self.seen += 1;
        Ok(true)
    }

    /// No more answers than frames that take one.
    pub(crate) fn finish(&self) -> Result<(), String> {
        if self.seen > self.asked.len() {
            return Err(format!(
                "{} answers to {} frames that take one",
                self.seen,
                self.asked.len()
            ));
        }
        Ok(())
    }
}

fn check_output(banner: &[u8], input: &[u8], output: &[u8]) -> Result<(), String> {
    if output.is_empty() {
        return Err("no banner".into());
    }
    if !output.starts_with(banner) {
        return Err(format!(
            "the output does not start with the banner {:?}",
            String::from_utf8_lossy(banner)
        ));
    }
    let mut answers = Answers::new(input, SESSION_MAX_FRAME);
    let mut server_reqnos = HashSet::new();
    let mut rest = &output[banner.len()..];
    while !rest.is_empty() {
        let (frame, used) = match Frame::parse(rest, u64::MAX) {
            Ok(Some(x)) => x,
            // A cut frame at the very end: the server dropped the
            // connection with a frame half written.
            Ok(None) => break,
            Err(e) => return Err(format!("unframeable server bytes: {e}")),
        };
        let msg = frame.message().map_err(|e| {
            format!(
                "server frame {} does not decode: {e}",
                to_hex(&rest[..used])
            )
        })?;
        if !answers.check(&msg, frame.header.typ(), &rest[..used])? {
            match msg {
                Message::CopyinReq { reqno, .. }
                | Message::Copyout { reqno, .. }
                | Message::AnonmmapReq { reqno, .. } => {
                    if !server_reqnos.insert(reqno) {
                        return Err(format!("the server reused its reqno {reqno} in {msg:?}"));
                    }
                }
                Message::Raise { .. } => {}
                other => return Err(format!("the server sent a client's message {other:?}")),
            }
        }
        rest = &rest[used..];
    }
    answers.finish()
}

/// Checks that the session server still serves a fresh guest (panics if
/// not). [`fuzz_server_session`] does this every 32 sessions.
pub fn session_probe() {
    probe(session());
}

/// A fresh guest's getpid is answered: the server still serves.
fn probe(s: &Session) {
    let res = (|| -> io::Result<(i32, [i64; 2])> {
        let mut p = adopt_pair(s.server.handle())?;
        guest_handshake(&mut p, "probe")?;
        p.syscall(2, Sysnum::GETPID, &[])
    })();
    match res {
        Ok((0, [pid, 1])) if pid > 1 => {}
        other => panic!("the server no longer serves a fresh guest: {other:?}"),
    }
}

/// The client fed arbitrary server bytes (banner included): it must
/// neither panic nor hang. The body is `sp_client::fuzz_server_bytes`.
pub fn fuzz_client_bytes(data: &[u8]) {
    ignore_sigpipe();
    sp_client::fuzz_server_bytes(data);
}

// ---- seed corpora ----

fn push(out: &mut Vec<u8>, m: Message<'_>) {
    out.extend_from_slice(&m.to_vec());
}

fn guest(out: &mut Vec<u8>) {
    push(
        out,
        Message::Handshake {
            reqno: 1,
            hs: Handshake::Guest { comm: b"seed\0" },
        },
    );
}

fn syscall(out: &mut Vec<u8>, reqno: u64, sysnum: Sysnum, slots: &[u64]) {
    push(
        out,
        Message::Syscall {
            reqno,
            sysnum: sysnum.0,
            args: args::slot_bytes(slots),
        },
    );
}

fn copyin(out: &mut Vec<u8>, reqno: u64, data: &[u8]) {
    push(out, Message::CopyinResp { reqno, data });
}

/// The seeds of the `server_session` target: the client side of every
/// reference capture (all its connections, concatenated), and hand-made
/// sessions for the model kernel whose COPYIN answers carry the reqnos
/// (0, 1, 2, ...) of the server's real requests, so mutations reach the
/// waiting kernel threads.
pub fn server_session_seeds() -> Vec<(String, Vec<u8>)> {
    let mut seeds = Vec::new();
    for cap in crate::vectors::load_all() {
        let bytes: Vec<u8> = cap
            .units
            .iter()
            .filter(|u| u.dir == Dir::C2s)
            .flat_map(|u| u.bytes.iter().copied())
            .collect();
        seeds.push((format!("capture_{}", cap.name), bytes));
    }
    let mut add = |name: &str, f: &dyn Fn(&mut Vec<u8>)| {
        let mut b = Vec::new();
        f(&mut b);
        seeds.push((name.to_string(), b));
    };
    // pipe() gives fds 0 (read) and 1 (write) in a fresh guest.
    add("model_pipe_write_read", &|b| {
        guest(b);
        syscall(b, 2, Sysnum::PIPE, &[]);
        syscall(b, 3, Sysnum::WRITE, &[1, 0x1000, 5]);
        copyin(b, 0, b"hello");
        syscall(b, 4, Sysnum::READ, &[0, 0x2000, 5]);
        syscall(b, 5, Sysnum::GETPID, &[]);
    });
    add("model_copyin_reqnos", &|b| {
        guest(b);
        syscall(b, 2, Sysnum::PIPE, &[]);
        for r in 3..6 {
            syscall(b, r, Sysnum::WRITE, &[1, 0x1000, 4]);
        }
        copyin(b, 0, b"abcd");
        copyin(b, 1, b"abc");
        push(
            b,
            Message::Error {
                reqno: 2,
                code: sp_proto::ErrorCode::MALFORMED_REQUEST,
            },
        );
        copyin(b, 0, b"dupe");
        syscall(b, 6, Sysnum::READ, &[0, 0x2000, 16]);
    });
    add("model_open_write_seek_read", &|b| {
        guest(b);
        let flags = u64::from(sp_proto::abi::oflag::O_CREAT | sp_proto::abi::oflag::O_RDWR);
        syscall(b, 2, Sysnum::OPEN, &[0x3000, flags, 0o644]);
        copyin(b, 0, b"/tmp/seed\0");
        syscall(b, 3, Sysnum::WRITE, &[0, 0x1000, 3]);
        copyin(b, 1, b"abc");
        syscall(b, 4, Sysnum::LSEEK, &[0, 0, 0, 0]);
        syscall(b, 5, Sysnum::READ, &[0, 0x2000, 3]);
        syscall(b, 6, Sysnum::CLOSE, &[0]);
        syscall(b, 7, Sysnum::UNLINK, &[0x3000]);
        copyin(b, 2, b"/tmp/seed\0");
    });
    add("model_anonmmap", &|b| {
        guest(b);
        let flags = u64::from(sp_proto::abi::misc::MAP_ANON | sp_proto::abi::misc::MAP_PRIVATE);
        syscall(b, 2, Sysnum::MMAP, &[0, 4096, 3, flags, u64::MAX, 0, 0]);
        push(
            b,
            Message::AnonmmapResp {
                reqno: 0,
                addr: 0x7000_0000,
            },
        );
        syscall(b, 3, Sysnum::GETPID, &[]);
    });
    add("model_prefork_exec", &|b| {
        guest(b);
        push(b, Message::Prefork { reqno: 2 });
        push(b, Message::Prefork { reqno: 3 });
        push(
            b,
            Message::Handshake {
                reqno: 4,
                hs: Handshake::Exec { comm: b"after\0" },
            },
        );
        syscall(b, 0, Sysnum::GETPID, &[]);
    });
    add("model_exec_during_copyin", &|b| {
        guest(b);
        syscall(b, 2, Sysnum::PIPE, &[]);
        syscall(b, 3, Sysnum::WRITE, &[1, 0x1000, 4]);
        push(
            b,
            Message::Handshake {
                reqno: 4,
                hs: Handshake::Exec { comm: b"next\0" },
            },
        );
        copyin(b, 0, b"wxyz");
        syscall(b, 0, Sysnum::GETPID, &[]);
    });
    add("model_blocked_read_then_eof", &|b| {
        guest(b);
        syscall(b, 2, Sysnum::PIPE, &[]);
        syscall(b, 3, Sysnum::READ, &[0, 0x2000, 8]);
    });
    add("model_kill_self", &|b| {
        guest(b);
        syscall(b, 2, Sysnum::KILL, &[0, 30]);
        syscall(b, 3, Sysnum::GETPID, &[]);
    });
    add("malformed_len_max", &|b| {
        guest(b);
        b.extend_from_slice(&crate::peers::raw_frame(u64::MAX, 2, 0, 1, 20, &[]));
    });
    add("malformed_len23", &|b| {
        b.extend_from_slice(&crate::peers::raw_frame(23, 1, 0, 0, 0, &[]));
    });
    add("malformed_over_limit", &|b| {
        guest(b);
        b.extend_from_slice(&crate::peers::raw_frame(
            SESSION_MAX_FRAME + 1,
            2,
            0,
            1,
            20,
            &[0; 64],
        ));
    });
    add("malformed_classes_then_guest", &|b| {
        b.extend_from_slice(&crate::peers::frame(9, 2, 0, 1, &[]));
        b.extend_from_slice(&crate::peers::frame(10, 5, 0, 0, &[]));
        b.extend_from_slice(&crate::peers::frame(11, 1, 1, 0, &[0; 24]));
        guest(b);
        b.extend_from_slice(&crate::peers::frame(12, 0, 9, 0, &[]));
        syscall(b, 13, Sysnum::GETPID, &[]);
    });
    add("malformed_cut_header", &|b| {
        guest(b);
        let f = Message::Syscall {
            reqno: 2,
            sysnum: Sysnum::GETPID.0,
            args: &[],
        }
        .to_vec();
        b.extend_from_slice(&f[..13]);
    });
    seeds
}

/// The seeds of the `client_bytes` target: the server side of connection
/// 0 of every reference capture (banner and frames), and hand-made
/// malformed servers.
pub fn client_bytes_seeds() -> Vec<(String, Vec<u8>)> {
    let mut seeds = Vec::new();
    for cap in crate::vectors::load_all() {
        let bytes: Vec<u8> = cap
            .units
            .iter()
            .filter(|u| u.dir == Dir::S2c && u.conn() == 0)
            .flat_map(|u| u.bytes.iter().copied())
            .collect();
        seeds.push((format!("capture_{}", cap.name), bytes));
    }
    let banner = Banner::new("NetBSD", "7.99.21", "amd64")
        .format()
        .expect("banner");
    let hs_ok = Message::HandshakeResp { reqno: 1, error: 0 }.to_vec();
    let with = |parts: &[&[u8]]| parts.concat();
    seeds.push(("banner_only".into(), banner.clone()));
    seeds.push((
        "banner_wrong_version".into(),
        b"RUMPSP-1.0-NetBSD-7.99.21/amd64\n".to_vec(),
    ));
    seeds.push(("banner_no_newline".into(), vec![b'R'; 120]));
    seeds.push((
        "len_max_after_handshake".into(),
        with(&[
            &banner,
            &hs_ok,
            &crate::peers::raw_frame(u64::MAX, 2, 1, 1, 0, &[]),
        ]),
    ));
    seeds.push((
        "handshake_refused".into(),
        with(&[
            &banner,
            &Message::HandshakeResp { reqno: 1, error: 1 }.to_vec(),
        ]),
    ));
    seeds.push((
        "copyout_lies_about_len".into(),
        with(&[
            &banner,
            &hs_ok,
            &crate::peers::frame(
                0,
                0,
                MsgType::COPYOUT.0,
                0,
                args::slot_bytes(&[1 << 40, 0x1000]),
            ),
        ]),
    ));
    seeds.push((
        "anonmmap_huge".into(),
        with(&[
            &banner,
            &hs_ok,
            &Message::AnonmmapReq {
                reqno: 0,
                size: u64::MAX,
            }
            .to_vec(),
        ]),
    ));
    seeds.push((
        "frame_at_default_limit".into(),
        with(&[
            &banner,
            &hs_ok,
            &crate::peers::raw_frame(DEFAULT_MAX_FRAME, 2, 1, 1, 0, &[]),
        ]),
    ));
    seeds
}

#[cfg(test)]
mod tests {
    use super::*;
    use sp_proto::ErrorCode;

    fn check(answers: &mut Answers, msg: Message<'_>) -> Result<bool, String> {
        let raw = msg.to_vec();
        let (frame, _) = Frame::parse(&raw, u64::MAX).unwrap().unwrap();
        answers.check(&msg, frame.header.typ(), &raw)
    }

    #[test]
    fn the_answer_oracle_takes_only_asked_and_well_formed_answers() {
        let mut input = Message::Prefork { reqno: 7 }.to_vec();
        Message::CopyinResp {
            reqno: 8,
            data: b"x",
        }
        .encode_into(&mut input);
        let mut a = Answers::new(&input, SESSION_MAX_FRAME);
        // A RESP takes no answer: only reqno 7 was asked.
        let error = |reqno| Message::Error {
            reqno,
            code: ErrorCode::TRYAGAIN,
        };
        assert!(check(&mut a, error(8)).is_err());
        assert_eq!(check(&mut a, error(7)), Ok(true));
        assert_eq!(
            check(&mut a, Message::Raise { reqno: 0, signo: 1 }),
            Ok(false)
        );
        assert!(a.finish().is_ok());
        // One answer more than asked.
        assert_eq!(check(&mut a, error(7)), Ok(true));
        assert!(a.finish().is_err());
        // An ERROR with a body is malformed.
        let mut b = Answers::new(&input, SESSION_MAX_FRAME);
        let mut raw = error(7).to_vec();
        raw.push(0);
        assert!(b.check(&error(7), MsgType(0), &raw).is_err());
    }
}
