//! Tests against scripted fake servers: a thread on the other end of a
//! socket pair (or a temp-dir listener) that writes the banner and speaks
//! frames with `sp-proto`, so every cycle is tested without the real server.

mod connect;
mod cycles;
mod files;
mod process;
mod threads;
mod vectors;

use crate::conn::Start;
use crate::transport::Stream;
use crate::{Client, Error, Options};
use parking_lot::Mutex;
use sp_proto::{Deframer, Header, Message, DEFAULT_MAX_FRAME, HEADER_LEN};
use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::thread::JoinHandle;

/// The banner of the captures.
pub(crate) const BANNER: &[u8] = b"RUMPSP-0.4-NetBSD-7.99.34/amd64\n";

/// Serializes the tests that touch the process environment.
pub(crate) static ENV_LOCK: Mutex<()> = Mutex::new(());

/// Decodes a hex string (as the captures hold bytes).
pub(crate) fn unhex(s: &str) -> Vec<u8> {
    sp_proto::capture::unhex(s).expect("hex digits")
}

/// The server's end of a connection. Like the C server, it answers the
/// client's EXT_HELLO probe with ERROR MALFORMED_REQUEST (a request type
/// it does not know) by itself, so scripts see exactly the frames a stock
/// client sends; `probes` counts the probes answered.
pub(crate) struct Peer {
    pub(crate) s: UnixStream,
    dec: Deframer,
    pub(crate) probes: usize,
}

impl Peer {
    pub(crate) fn new(s: UnixStream) -> Peer {
        Peer {
            s,
            dec: Deframer::new(DEFAULT_MAX_FRAME),
            probes: 0,
        }
    }

    pub(crate) fn write(&mut self, b: &[u8]) {
        (&self.s).write_all(b).unwrap();
    }

    /// The next whole frame's bytes, `None` at EOF; an EXT_HELLO probe is
    /// answered as the C server answers it, and skipped.
    pub(crate) fn raw(&mut self) -> Option<Vec<u8>> {
        loop {
            let v = self.raw_unfiltered()?;
            let h = Header::read(&v).unwrap();
            if h.class() == sp_proto::Class::REQ && h.typ() == sp_proto::MsgType::EXT_HELLO {
                self.probes += 1;
                self.send(Message::Error {
                    reqno: h.reqno(),
                    code: sp_proto::ErrorCode::MALFORMED_REQUEST,
                });
                continue;
            }
            return Some(v);
        }
    }

    /// Reads the client's EXT_HELLO probe and answers it as the C server
    /// does (ERROR MALFORMED_REQUEST with its reqno).
    pub(crate) fn stock_probe(&mut self) {
        let v = self
            .raw_unfiltered()
            .expect("the client closed instead of probing");
        let m = sp_proto::Frame::parse(&v, DEFAULT_MAX_FRAME)
            .unwrap()
            .unwrap()
            .0;
        match m.message().unwrap() {
            Message::ExtHello { reqno, .. } => {
                assert_eq!(reqno, sp_proto::ext::PROBE_REQNO);
                self.probes += 1;
                self.send(Message::Error {
                    reqno,
                    code: sp_proto::ErrorCode::MALFORMED_REQUEST,
                });
            }
            m => panic!("expected the EXT_HELLO probe, got {m:?}"),
        }
    }

    /// The next whole frame's bytes, probes included; `None` at EOF.
    pub(crate) fn raw_unfiltered(&mut self) -> Option<Vec<u8>> {
        loop {
            if let Some(f) = self.dec.next_frame().unwrap() {
                let mut v = f.header.to_bytes().to_vec();
                v.extend_from_slice(f.body);
                return Some(v);
            }
            let buf = self.dec.read_buf();
            let n = (&self.s).read(buf).unwrap_or(0);
            if n == 0 {
                return None;
            }
            self.dec.commit(n);
        }
    }

    /// The next frame as header and body; panics at EOF.
    pub(crate) fn next(&mut self) -> (Header, Vec<u8>) {
        let v = self.raw().expect("the client closed the connection");
        (Header::read(&v).unwrap(), v[HEADER_LEN..].to_vec())
    }

    /// Whether the client closed its end (EOF with no further frame).
    pub(crate) fn at_eof(&mut self) -> bool {
        self.raw().is_none()
    }

    pub(crate) fn send(&mut self, m: Message<'_>) {
        let v = m.to_vec();
        self.write(&v);
    }

    /// Banner, then the client's guest handshake, answered; returns the comm.
    pub(crate) fn guest(&mut self) -> Vec<u8> {
        self.write(BANNER);
        let (h, body) = self.next();
        let comm = match Message::decode(&h, &body).unwrap() {
            Message::Handshake {
                reqno: 1,
                hs: sp_proto::Handshake::Guest { comm },
            } => comm.to_vec(),
            m => panic!("expected a guest handshake with reqno 1, got {m:?}"),
        };
        self.send(Message::HandshakeResp { reqno: 1, error: 0 });
        comm
    }

    /// The next SYSCALL request: reqno, number, argument slots.
    pub(crate) fn syscall(&mut self) -> (u64, sp_proto::abi::Sysnum, Vec<u64>) {
        let (h, body) = self.next();
        match Message::decode(&h, &body).unwrap() {
            Message::Syscall {
                reqno,
                sysnum,
                args,
            } => {
                assert_eq!(args.len() % 8, 0);
                let slots = sp_proto::Args(args).slots().iter().map(|s| s.get());
                (reqno, sp_proto::abi::Sysnum(sysnum), slots.collect())
            }
            m => panic!("expected a syscall, got {m:?}"),
        }
    }

    /// The next frame, which must be a COPYIN response for `reqno`.
    pub(crate) fn copyin_resp(&mut self, reqno: u64) -> Vec<u8> {
        let (h, body) = self.next();
        match Message::decode(&h, &body).unwrap() {
            Message::CopyinResp { reqno: r, data } if r == reqno => data.to_vec(),
            m => panic!("expected a COPYIN response for {reqno}, got {m:?}"),
        }
    }

    pub(crate) fn ret(&mut self, reqno: u64, error: i32, retval: [i64; 2]) {
        self.send(Message::SyscallResp {
            reqno,
            error,
            retval,
        });
    }
}

/// Default test options: the capture's process name.
pub(crate) fn opts() -> Options {
    Options::default().name("cref_client")
}

/// Runs `script` as the server on one end of a socket pair and starts a
/// client on the other (banner and guest handshake are up to the script).
pub(crate) fn start(
    opts: Options,
    script: impl FnOnce(Peer) + Send + 'static,
) -> (Result<Client, Error>, JoinHandle<()>) {
    let (a, b) = UnixStream::pair().unwrap();
    let h = std::thread::spawn(move || script(Peer::new(b)));
    let c = Client::start(Stream::Unix(a), None, opts, |name| Start::Guest { name });
    (c, h)
}

/// [`start`] for scripts that begin with a normal guest handshake.
pub(crate) fn guest(script: impl FnOnce(&mut Peer) + Send + 'static) -> (Client, JoinHandle<()>) {
    guest_with(opts(), script)
}

/// [`guest`] with options.
pub(crate) fn guest_with(
    opts: Options,
    script: impl FnOnce(&mut Peer) + Send + 'static,
) -> (Client, JoinHandle<()>) {
    let probe = opts.extensions;
    let (c, h) = start(opts, move |mut p| {
        p.guest();
        if probe {
            p.stock_probe();
        }
        script(&mut p);
    });
    (c.unwrap(), h)
}

/// A listening unix socket in a temp dir, with its URL.
pub(crate) struct Listener {
    _dir: tempfile::TempDir,
    pub(crate) l: UnixListener,
    pub(crate) url: String,
}

pub(crate) fn listener() -> Listener {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sp.sock");
    let l = UnixListener::bind(&path).unwrap();
    Listener {
        url: format!("unix://{}", path.display()),
        l,
        _dir: dir,
    }
}

impl Listener {
    pub(crate) fn accept(&self) -> Peer {
        Peer::new(self.l.accept().unwrap().0)
    }
}
