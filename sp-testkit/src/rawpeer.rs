//! A scripted raw peer: speaks frames byte for byte, so tests can send what
//! no well-behaved client would and read exactly what the server answers.

use sp_proto::abi::Sysnum;
use sp_proto::capture::to_hex;
use sp_proto::{Banner, Frame, Header, Message, HEADER_LEN, MAX_BANNER};
use sp_transport::{Endpoint, Role, Stream};
use std::io::{self, Read, Write};
use std::time::Duration;

/// What [`RawPeer::recv`] got.
#[derive(Debug, PartialEq, Eq)]
pub enum Recv {
    /// One whole frame, header included.
    Frame(Vec<u8>),
    /// The server closed the connection.
    Closed,
}

/// A client connection driven by hand.
pub struct RawPeer {
    stream: Stream,
    buf: Vec<u8>,
}

/// How long a peer waits for the server before failing the test.
pub const PEER_TIMEOUT: Duration = Duration::from_secs(20);

impl RawPeer {
    /// Connects to `url` without reading anything.
    pub fn connect(url: &str) -> io::Result<RawPeer> {
        let ep = sp_transport::parse(url, Role::Client)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        RawPeer::connect_endpoint(&ep)
    }

    /// Connects to an endpoint without reading anything.
    pub fn connect_endpoint(ep: &Endpoint) -> io::Result<RawPeer> {
        RawPeer::from_stream(sp_transport::connect(ep)?)
    }

    /// Wraps an already connected stream (e.g. one end of a socket pair
    /// whose other end was handed to [`sp_server::ServerHandle::adopt`]).
    pub fn from_stream(stream: Stream) -> io::Result<RawPeer> {
        match &stream {
            Stream::Unix(s) => s.set_read_timeout(Some(PEER_TIMEOUT))?,
            Stream::Tcp(s) => s.set_read_timeout(Some(PEER_TIMEOUT))?,
        }
        Ok(RawPeer {
            stream,
            buf: Vec::new(),
        })
    }

    /// Connects and reads the banner line.
    pub fn connect_banner(url: &str) -> io::Result<(RawPeer, Vec<u8>)> {
        let mut p = RawPeer::connect(url)?;
        let b = p.read_banner()?;
        Ok((p, b))
    }

    /// Connects, reads the banner and completes a guest handshake as
    /// `comm` with reqno 1, like the C client.
    pub fn guest(url: &str, comm: &str) -> io::Result<RawPeer> {
        let mut p = RawPeer::connect(url)?;
        p.guest_handshake(comm)?;
        Ok(p)
    }

    /// Reads the banner and completes a guest handshake as `comm` with
    /// reqno 1, like the C client; an error if the answer is anything else.
    pub fn guest_handshake(&mut self, comm: &str) -> io::Result<()> {
        self.read_banner()?;
        let mut body = comm.as_bytes().to_vec();
        body.push(0);
        self.send_msg(&Message::Handshake {
            reqno: 1,
            hs: sp_proto::Handshake::Guest { comm: &body },
        })?;
        let f = self.recv_msg()?;
        if f.message() != Some(Message::HandshakeResp { reqno: 1, error: 0 }) {
            return Err(io::Error::other(format!(
                "handshake refused: {}",
                to_hex(&f.0)
            )));
        }
        Ok(())
    }

    /// The underlying stream.
    pub fn stream(&self) -> &Stream {
        &self.stream
    }

    fn fill(&mut self) -> io::Result<bool> {
        let mut chunk = [0u8; 65536];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => return Ok(false),
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return Ok(false),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "server did not answer in time",
                    ));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Reads the banner line, newline included.
    pub fn read_banner(&mut self) -> io::Result<Vec<u8>> {
        loop {
            match Banner::line_len(&self.buf) {
                Ok(Some(n)) => return Ok(self.buf.drain(..n).collect()),
                Ok(None) => {}
                Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e)),
            }
            if self.buf.len() > MAX_BANNER || !self.fill()? {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "no banner"));
            }
        }
    }

    /// Sends raw bytes.
    pub fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Sends one message.
    pub fn send_msg(&mut self, msg: &Message<'_>) -> io::Result<()> {
        self.send(&msg.to_vec())
    }

    /// Receives one frame or the close of the connection.
    pub fn recv(&mut self) -> io::Result<Recv> {
        loop {
            match Frame::parse(&self.buf, u64::MAX) {
                Ok(Some((_, n))) => return Ok(Recv::Frame(self.buf.drain(..n).collect())),
                Ok(None) => {}
                Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e)),
            }
            if !self.fill()? {
                return if self.buf.is_empty() {
                    Ok(Recv::Closed)
                } else {
                    Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "connection closed mid-frame",
                    ))
                };
            }
        }
    }

    /// Receives one frame; an error if the connection closed instead.
    pub fn recv_frame(&mut self) -> io::Result<Vec<u8>> {
        match self.recv()? {
            Recv::Frame(f) => Ok(f),
            Recv::Closed => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "server closed the connection",
            )),
        }
    }

    /// Receives one frame and decodes it, owning the bytes.
    pub fn recv_msg(&mut self) -> io::Result<OwnedFrame> {
        Ok(OwnedFrame(self.recv_frame()?))
    }

    /// Makes a syscall with reqno `reqno` and returns (error, retval),
    /// failing on any server request in between.
    pub fn syscall(
        &mut self,
        reqno: u64,
        sysnum: impl Into<Sysnum>,
        args: &[u8],
    ) -> io::Result<(i32, [i64; 2])> {
        self.send_msg(&Message::Syscall {
            reqno,
            sysnum: sysnum.into().0,
            args,
        })?;
        let f = self.recv_msg()?;
        match f.message() {
            Some(Message::SyscallResp {
                reqno: r,
                error,
                retval,
            }) if r == reqno => Ok((error, retval)),
            _ => Err(io::Error::other(format!(
                "unexpected frame {}",
                to_hex(&f.0)
            ))),
        }
    }

    /// Sends a syscall without waiting for anything.
    pub fn syscall_async(&mut self, reqno: u64, sysnum: impl Into<Sysnum>, args: &[u8]) {
        self.send_msg(&Message::Syscall {
            reqno,
            sysnum: sysnum.into().0,
            args,
        })
        .expect("send syscall");
    }

    /// Whether the server has closed the connection (reads until EOF,
    /// discarding frames).
    pub fn expect_closed(&mut self) -> io::Result<()> {
        loop {
            if let Recv::Closed = self.recv()? {
                return Ok(());
            }
        }
    }
}

/// A received frame with owned bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnedFrame(pub Vec<u8>);

impl OwnedFrame {
    /// The header.
    pub fn header(&self) -> Header {
        Header::read(&self.0).expect("a frame has a header")
    }

    /// The typed message, if it decodes.
    pub fn message(&self) -> Option<Message<'_>> {
        Message::decode(&self.header(), &self.0[HEADER_LEN..]).ok()
    }
}
