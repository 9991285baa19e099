//! Adversarial peers and the helpers the hardening tests share: raw frame
//! builders that may lie about their length, a catalogue of malformed
//! inputs with the answer the server owes each, a peer that serves the
//! server's copy requests, a trickling (slowloris) peer, and bounded waits.
//!
//! ```no_run
//! use sp_testkit::harness::{TestServer, Transport};
//! use sp_model::ModelKernel;
//! use sp_testkit::peers::{bad_inputs, check_bad_input, Phase};
//! use sp_testkit::rawpeer::RawPeer;
//! use std::sync::Arc;
//!
//! let server = TestServer::start(Arc::new(ModelKernel::new()), Transport::Unix);
//! for input in bad_inputs(sp_proto::DEFAULT_MAX_FRAME) {
//!     let mut peer = match input.phase {
//!         Phase::New => RawPeer::connect_banner(&server.url()).unwrap().0,
//!         Phase::Running => RawPeer::guest(&server.url(), "bad").unwrap(),
//!     };
//!     check_bad_input(&mut peer, &input).unwrap();
//! }
//! ```

use crate::rawpeer::{OwnedFrame, RawPeer, Recv};
use sp_proto::abi::Sysnum;
use sp_proto::capture::to_hex;
use sp_proto::{Class, Cookie, ErrorCode, Handshake, Header, Message, MsgType, HEADER_LEN};
use sp_server::ServerHandle;
use sp_transport::Stream;
use std::io::{self, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// How long the helpers wait for the server before giving up.
pub const WAIT: Duration = Duration::from_secs(20);

/// Polls `cond` until it holds or `timeout` has passed; returns whether it
/// held. For state that has no event to wait on (server counters).
pub fn wait_for(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        // tidy:allow-sleep: polls a counter under an explicit deadline
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Panics, naming `what`, unless `cond` holds within [`WAIT`].
pub fn eventually(what: &str, cond: impl FnMut() -> bool) {
    assert!(wait_for(WAIT, cond), "timed out waiting for: {what}");
}

/// Bytes that differ with `seed` and position (xorshift), for data whose
/// corruption or mix-up a test must notice.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// A frame whose `len` field says `len`, whatever the body's real size.
pub fn raw_frame(len: u64, reqno: u64, class: u16, typ: u16, u: u32, body: &[u8]) -> Vec<u8> {
    let h = Header::new(len, reqno, Class(class), MsgType(typ), u);
    let mut out = h.to_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

/// A frame with a truthful `len` field.
pub fn frame(reqno: u64, class: u16, typ: u16, u: u32, body: &[u8]) -> Vec<u8> {
    raw_frame((HEADER_LEN + body.len()) as u64, reqno, class, typ, u, body)
}

/// A connection served in memory: one end of a socket pair is handed to
/// the server with [`ServerHandle::adopt`], the other is returned (banner
/// not yet read).
pub fn adopt_pair(handle: &ServerHandle) -> io::Result<RawPeer> {
    let (ours, theirs) = UnixStream::pair()?;
    handle.adopt(Stream::Unix(theirs));
    RawPeer::from_stream(Stream::Unix(ours))
}

/// Completes a guest handshake named `comm` with reqno 1 on a peer whose
/// banner was not read yet.
pub fn guest_handshake(peer: &mut RawPeer, comm: &str) -> io::Result<()> {
    peer.guest_handshake(comm)
}

/// Receives one frame and fails unless it is exactly `want`.
pub fn expect_frame(peer: &mut RawPeer, want: &Message<'_>) -> io::Result<()> {
    match peer.recv()? {
        Recv::Frame(f) if f == want.to_vec() => Ok(()),
        Recv::Frame(f) => Err(io::Error::other(format!(
            "expected {want:?}, got {:?} ({})",
            OwnedFrame(f.clone()).message(),
            to_hex(&f)
        ))),
        Recv::Closed => Err(io::Error::other(format!(
            "expected {want:?}, the server closed the connection"
        ))),
    }
}

/// Fails unless the server closes the connection before sending any frame.
pub fn expect_close(peer: &mut RawPeer) -> io::Result<()> {
    match peer.recv()? {
        Recv::Closed => Ok(()),
        Recv::Frame(f) => Err(io::Error::other(format!(
            "expected a close, got {:?} ({})",
            OwnedFrame(f.clone()).message(),
            to_hex(&f)
        ))),
    }
}

/// What a system call gave back, with everything the server sent the
/// client on the way.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reply {
    /// 0 or a NetBSD errno.
    pub error: i32,
    /// The two return values.
    pub retval: [i64; 2],
    /// The data of every COPYOUT, in order.
    pub copyouts: Vec<Vec<u8>>,
    /// The signals raised, in order.
    pub raised: Vec<u32>,
    /// The lengths the server asked for, per COPYIN or COPYINSTR.
    pub asked: Vec<u64>,
}

/// Makes system call `sysnum` with reqno `reqno` and serves the server's
/// requests until its answer: the n-th COPYIN or COPYINSTR is answered with
/// `inputs[n]` (as given, even if its size is wrong; zeros of the asked
/// length when `inputs` runs out), and an ANONMMAP with `mmap_addr`.
pub fn call(
    peer: &mut RawPeer,
    reqno: u64,
    sysnum: impl Into<Sysnum>,
    args: &[u8],
    inputs: &[&[u8]],
    mmap_addr: u64,
) -> io::Result<Reply> {
    peer.send_msg(&Message::Syscall {
        reqno,
        sysnum: sysnum.into().0,
        args,
    })?;
    serve_until_reply(peer, reqno, inputs, mmap_addr)
}

/// The serving half of [`call`], for a call already sent.
pub fn serve_until_reply(
    peer: &mut RawPeer,
    reqno: u64,
    inputs: &[&[u8]],
    mmap_addr: u64,
) -> io::Result<Reply> {
    let mut reply = Reply::default();
    let mut next_input = 0;
    loop {
        let f = peer.recv_msg()?;
        let Some(msg) = f.message() else {
            return Err(io::Error::other(format!(
                "undecodable frame {}",
                to_hex(&f.0)
            )));
        };
        match msg {
            Message::CopyinReq { reqno: r, len, .. } => {
                reply.asked.push(len);
                let zeros;
                let data = match inputs.get(next_input) {
                    Some(d) => *d,
                    None => {
                        zeros = vec![0u8; usize::try_from(len).unwrap_or(0).min(1 << 24)];
                        &zeros
                    }
                };
                next_input += 1;
                peer.send_msg(&Message::CopyinResp { reqno: r, data })?;
            }
            Message::Copyout { data, .. } => reply.copyouts.push(data.to_vec()),
            Message::AnonmmapReq { reqno: r, .. } => {
                peer.send_msg(&Message::AnonmmapResp {
                    reqno: r,
                    addr: mmap_addr,
                })?;
            }
            Message::Raise { signo, .. } => reply.raised.push(signo),
            Message::SyscallResp {
                reqno: r,
                error,
                retval,
            } if r == reqno => {
                reply.error = error;
                reply.retval = retval;
                return Ok(reply);
            }
            other => {
                return Err(io::Error::other(format!(
                    "unexpected {other:?} while waiting for the answer to {reqno}"
                )))
            }
        }
    }
}

/// Asks for a prefork: the cookie, or the ERROR code the server answered.
pub fn prefork(peer: &mut RawPeer, reqno: u64) -> io::Result<Result<Cookie, ErrorCode>> {
    peer.send_msg(&Message::Prefork { reqno })?;
    let f = peer.recv_msg()?;
    match f.message() {
        Some(Message::PreforkResp { reqno: r, cookie }) if r == reqno => Ok(Ok(cookie)),
        Some(Message::Error { reqno: r, code }) if r == reqno => Ok(Err(code)),
        other => Err(io::Error::other(format!(
            "unexpected answer to PREFORK: {other:?}"
        ))),
    }
}

/// Sends a fork handshake with `cookie` on a peer whose banner was not
/// read yet; returns the first frame's message (or `None` if the server
/// closed without one).
pub fn fork_handshake(
    peer: &mut RawPeer,
    cookie: Cookie,
    cancel: i32,
) -> io::Result<Option<OwnedFrame>> {
    peer.read_banner()?;
    peer.send_msg(&Message::Handshake {
        reqno: 1,
        hs: Handshake::Fork { cookie, cancel },
    })?;
    Ok(match peer.recv()? {
        Recv::Frame(f) => Some(OwnedFrame(f)),
        Recv::Closed => None,
    })
}

/// Where in a connection's life a malformed input is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Right after the banner, before any handshake.
    New,
    /// After a guest handshake.
    Running,
}

/// What the server owes a malformed input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// An ERROR frame with this code echoing the input's reqno; the
    /// connection stays open and usable.
    Error(ErrorCode),
    /// An ERROR frame with this code, then the server closes.
    ErrorClose(ErrorCode),
    /// The server closes without a frame.
    Close,
    /// Nothing: the input is dropped and the connection stays usable.
    Nothing,
}

impl Answer {
    /// Whether the server ends the connection.
    pub fn closes(&self) -> bool {
        matches!(self, Answer::ErrorClose(_) | Answer::Close)
    }
}

/// One malformed input and the answer it must get.
#[derive(Clone, Debug)]
pub struct BadInput {
    /// A short name for failure messages.
    pub name: &'static str,
    /// When it is sent.
    pub phase: Phase,
    /// The bytes (whole, unless the input is a cut frame).
    pub bytes: Vec<u8>,
    /// The reqno an ERROR answer must echo.
    pub reqno: u64,
    /// The answer.
    pub answer: Answer,
}

/// The malformed inputs the captures and the reference's defects do not
/// already cover, each with the answer PROTOCOL.md (or our stricter
/// checks) owes it. `max_frame` is the server's configured limit.
pub fn bad_inputs(max_frame: u64) -> Vec<BadInput> {
    const REQ: u16 = 0;
    const RESP: u16 = 1;
    const ERROR: u16 = 2;
    let hs = MsgType::HANDSHAKE.0;
    let sc = MsgType::SYSCALL.0;
    let mut v = Vec::new();
    let mut add = |name, phase, bytes: Vec<u8>, answer| {
        let reqno = Header::read(&bytes).map_or(0, |h| h.reqno());
        v.push(BadInput {
            name,
            phase,
            bytes,
            reqno,
            answer,
        });
    };
    for phase in [Phase::New, Phase::Running] {
        // Lengths that cannot be framed end the connection silently.
        add(
            "len 2^64-1",
            phase,
            raw_frame(u64::MAX, 5, REQ, sc, 20, &[]),
            Answer::Close,
        );
        add(
            "len 23",
            phase,
            raw_frame(23, 5, REQ, sc, 20, &[]),
            Answer::Close,
        );
        add(
            "len 0",
            phase,
            raw_frame(0, 5, REQ, sc, 20, &[]),
            Answer::Close,
        );
        add(
            "len one over the limit",
            phase,
            raw_frame(max_frame + 1, 5, REQ, sc, 20, &[]),
            Answer::Close,
        );
        // An ERROR frame nobody waits for: MALFORMED_REQUEST, still open.
        add(
            "ERROR frame from the client",
            phase,
            frame(41, ERROR, 0, ErrorCode::TRYAGAIN.0, &[]),
            Answer::Error(ErrorCode::MALFORMED_REQUEST),
        );
        add(
            "ERROR frame with a body",
            phase,
            frame(42, ERROR, 3, 0, b"junk"),
            Answer::Error(ErrorCode::MALFORMED_REQUEST),
        );
        // Responses nobody waits for are dropped silently.
        add(
            "RESP of type SYSCALL",
            phase,
            frame(43, RESP, sc, 0, &[0; 24]),
            Answer::Nothing,
        );
        add(
            "RESP of type COPYIN, unknown reqno",
            phase,
            frame(44, RESP, MsgType::COPYIN.0, 0, b"data"),
            Answer::Nothing,
        );
        add(
            "RESP of unknown type 77",
            phase,
            frame(45, RESP, 77, 0, &[]),
            Answer::Nothing,
        );
        add(
            "class 0xffff",
            phase,
            frame(46, 0xffff, hs, 0, &[]),
            Answer::Error(ErrorCode::MALFORMED_REQUEST),
        );
    }
    // Before the handshake.
    add(
        "GUEST whose comm starts with NUL",
        Phase::New,
        frame(7, REQ, hs, 0, b"\0abc\0"),
        Answer::ErrorClose(ErrorCode::MALFORMED_REQUEST),
    );
    add(
        "FORK with a 21-byte body",
        Phase::New,
        frame(8, REQ, hs, 2, &[0; 21]),
        Answer::ErrorClose(ErrorCode::MALFORMED_REQUEST),
    );
    add(
        "FORK with an empty body",
        Phase::New,
        frame(9, REQ, hs, 2, &[]),
        Answer::ErrorClose(ErrorCode::MALFORMED_REQUEST),
    );
    add(
        "handshake kind 9",
        Phase::New,
        frame(10, REQ, hs, 9, b"x\0"),
        Answer::ErrorClose(ErrorCode::AUTH),
    );
    add(
        "COPYIN request before the handshake",
        Phase::New,
        frame(11, REQ, MsgType::COPYIN.0, 0, &[0; 16]),
        Answer::ErrorClose(ErrorCode::AUTH),
    );
    // After the handshake.
    add(
        "FORK handshake on a running connection",
        Phase::Running,
        frame(12, REQ, hs, 2, &[0; 20]),
        Answer::ErrorClose(ErrorCode::MALFORMED_REQUEST),
    );
    add(
        "EXEC whose comm is only a NUL",
        Phase::Running,
        frame(13, REQ, hs, 3, b"\0"),
        Answer::ErrorClose(ErrorCode::MALFORMED_REQUEST),
    );
    add(
        "AUTH handshake on a running connection",
        Phase::Running,
        frame(14, REQ, hs, 1, &[]),
        Answer::ErrorClose(ErrorCode::MALFORMED_REQUEST),
    );
    add(
        "COPYOUT request from the client",
        Phase::Running,
        frame(15, REQ, MsgType::COPYOUT.0, 0, &[0; 16]),
        Answer::Error(ErrorCode::MALFORMED_REQUEST),
    );
    add(
        "RAISE request from the client",
        Phase::Running,
        frame(16, REQ, MsgType::RAISE.0, 9, &[]),
        Answer::Error(ErrorCode::MALFORMED_REQUEST),
    );
    add(
        "RESP of type HANDSHAKE",
        Phase::Running,
        frame(17, RESP, hs, 0, &[0; 4]),
        Answer::Nothing,
    );
    v
}

/// Sends `input` on `peer` (which is in `input.phase`) and checks the
/// answer. If the connection must stay open, checks that it is still
/// usable: a guest handshake (phase [`Phase::New`]) or a getpid
/// ([`Phase::Running`]) is answered next, and nothing else comes before.
pub fn check_bad_input(peer: &mut RawPeer, input: &BadInput) -> Result<(), String> {
    let ctx = |e: &dyn std::fmt::Display| format!("{}: {e}", input.name);
    // The server may close before it has read everything we send.
    if let Err(e) = peer.send(&input.bytes) {
        if !input.answer.closes() {
            return Err(ctx(&e));
        }
    }
    match input.answer {
        Answer::Close => return expect_close(peer).map_err(|e| ctx(&e)),
        Answer::ErrorClose(code) | Answer::Error(code) => {
            let want = Message::Error {
                reqno: input.reqno,
                code,
            };
            expect_frame(peer, &want).map_err(|e| ctx(&e))?;
            if input.answer.closes() {
                return expect_close(peer).map_err(|e| ctx(&e));
            }
        }
        Answer::Nothing => {}
    }
    match input.phase {
        Phase::New => {
            peer.send_msg(&Message::Handshake {
                reqno: 77,
                hs: Handshake::Guest { comm: b"after\0" },
            })
            .map_err(|e| ctx(&e))?;
            expect_frame(
                peer,
                &Message::HandshakeResp {
                    reqno: 77,
                    error: 0,
                },
            )
            .map_err(|e| ctx(&format!("the connection is not usable after it: {e}")))
        }
        Phase::Running => {
            let (error, _) = peer
                .syscall(78, Sysnum::GETPID, &[])
                .map_err(|e| ctx(&format!("the connection is not usable after it: {e}")))?;
            if error != 0 {
                return Err(ctx(&format!("getpid after it failed with {error}")));
            }
            Ok(())
        }
    }
}

/// A slowloris peer: many connections, each fed its bytes one at a time,
/// one connection after another.
pub struct Trickle {
    conns: Vec<TrickleConn>,
}

struct TrickleConn {
    stream: Stream,
    bytes: Vec<u8>,
    sent: usize,
    /// Whether the server ended the connection while we were sending.
    broken: bool,
}

impl Trickle {
    /// Opens `n` connections to `url`; each will send `bytes`.
    pub fn connect(url: &str, n: usize, bytes: &[u8]) -> io::Result<Trickle> {
        let ep = sp_transport::parse(url, sp_transport::Role::Client)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let mut conns = Vec::with_capacity(n);
        for _ in 0..n {
            conns.push(TrickleConn {
                stream: sp_transport::connect(&ep)?,
                bytes: bytes.to_vec(),
                sent: 0,
                broken: false,
            });
        }
        Ok(Trickle { conns })
    }

    /// Sends the next byte on every connection that has one left; returns
    /// how many bytes were sent.
    pub fn round(&mut self) -> usize {
        let mut sent = 0;
        for c in &mut self.conns {
            if c.broken || c.sent == c.bytes.len() {
                continue;
            }
            match (&c.stream).write(&c.bytes[c.sent..c.sent + 1]) {
                Ok(1) => {
                    c.sent += 1;
                    sent += 1;
                }
                _ => c.broken = true,
            }
        }
        sent
    }

    /// Connections the server ended while bytes were still to send.
    pub fn broken(&self) -> usize {
        self.conns.iter().filter(|c| c.broken).count()
    }

    /// The connections, as raw peers (to read what the server answered).
    pub fn into_peers(self) -> io::Result<Vec<RawPeer>> {
        self.conns
            .into_iter()
            .map(|c| RawPeer::from_stream(c.stream))
            .collect()
    }
}
