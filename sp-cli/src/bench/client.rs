//! The client side of the bench: what one client process (`sp bench-client`)
//! does, the minimal raw-frame sysproxy client it uses, and the raw echo
//! peer the anchors are measured against.
//!
//! A client process connects (and, for a sysproxy operation, handshakes and
//! sets up its file), prints `ready` on stdout, waits for a `go` line on
//! stdin, runs its loop and prints one JSON line ([`ClientResult`]). The
//! parent starts many at once and releases them together.

use super::stats::{median_u64, Hist};
use serde_json::{json, Value};
use sp_proto::abi::{oflag, Sysnum};
use sp_proto::args;
use sp_proto::ext::{Features, Hello, SegFrame, EXT_VERSION, PROBE_REQNO};
use sp_proto::{Class, Handshake, Header, Message, MsgType, HEADER_LEN, MAX_BANNER};
use sp_transport::{Endpoint, ListenOptions, Listener, Role, Stream};
use std::io::{self, BufRead, Read, Write};
use std::time::{Duration, Instant};

/// How long a bench client waits on a silent socket before giving up.
pub const SOCKET_TIMEOUT: Duration = Duration::from_secs(120);

/// Bytes a sysproxy frame may announce before the client calls it broken.
const MAX_FRAME: u64 = 256 << 20;

/// Frames whose payload is at most this are copied into one buffer and
/// written at once; longer ones are written with a vectored write.
const COPY_LIMIT: usize = 16 << 10;

/// Where the client's data buffer lives in its (pretend) address space.
pub const BUF_ADDR: u64 = 0x1000_0000;
/// Where the file name lives.
pub const PATH_ADDR: u64 = 0x7000_0000;

/// What a client process does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Op {
    /// getpid(2) in a loop (sysproxy).
    Getpid,
    /// pwrite(2) of `size` bytes at offset 0 of its own file: a COPYIN per call.
    Pwrite,
    /// pread(2) of `size` bytes at offset 0 of its own file: a COPYOUT per call.
    Pread,
    /// write(2) of `size` bytes to descriptor 1, opening nothing: for the
    /// stub kernel (`sp serve --stub`), which takes the bytes and drops
    /// them, so the figure is the server's and the protocol's alone.
    Write,
    /// Raw anchor: a 24 + `size`-byte request, a `reply`-byte answer.
    Ping,
    /// Raw anchor: `size`-byte chunks streamed one way, then one ping.
    Stream,
    /// Holds `conns` handshaken sysproxy connections until told to go.
    Idle,
    /// The raw echo peer: listens on `url`, answers every request frame with
    /// as many bytes as its header's `u` word says.
    Echo,
}

impl Op {
    /// The command-line spelling.
    pub fn name(self) -> &'static str {
        match self {
            Op::Getpid => "getpid",
            Op::Pwrite => "pwrite",
            Op::Pread => "pread",
            Op::Write => "write",
            Op::Ping => "ping",
            Op::Stream => "stream",
            Op::Idle => "idle",
            Op::Echo => "echo",
        }
    }
}

/// Arguments of `sp bench-client` (a hidden subcommand: the bench starts it).
#[derive(clap::Args, Clone, Debug, PartialEq)]
pub struct ClientSpec {
    /// Where to connect (for `echo`, where to listen).
    #[arg(long)]
    pub url: String,
    /// What to do.
    #[arg(long, value_enum)]
    pub op: Op,
    /// Payload bytes: the data of pwrite/pread, the body of a ping request,
    /// a stream chunk.
    #[arg(long, default_value_t = 0)]
    pub size: usize,
    /// Bytes the echo peer answers a ping with (48: a SYSCALL response frame).
    #[arg(long, default_value_t = 48)]
    pub reply: usize,
    /// Timed operations (unless `secs` is given).
    #[arg(long, default_value_t = 1000)]
    pub iters: u64,
    /// Untimed operations before the timed ones.
    #[arg(long, default_value_t = 0)]
    pub warmup: u64,
    /// Run the timed loop for this many seconds instead of `iters` operations.
    #[arg(long)]
    pub secs: Option<f64>,
    /// Connections `idle` holds.
    #[arg(long, default_value_t = 1)]
    pub conns: usize,
    /// Ask for the extension (EXT_HELLO) and, if the server speaks it,
    /// send the bytes a call reads with the call (SYSCALL_SEG).
    #[arg(long)]
    pub ext: bool,
}

impl ClientSpec {
    /// A spec with the defaults of the command line.
    pub fn new(url: &str, op: Op) -> ClientSpec {
        ClientSpec {
            url: url.to_string(),
            op,
            size: 0,
            reply: 48,
            iters: 1000,
            warmup: 0,
            secs: None,
            conns: 1,
            ext: false,
        }
    }

    /// The command-line arguments after `bench-client` that parse back into
    /// this spec.
    pub fn to_args(&self) -> Vec<String> {
        let mut a = vec![
            "--url".to_string(),
            self.url.clone(),
            "--op".into(),
            self.op.name().into(),
            "--size".into(),
            self.size.to_string(),
            "--reply".into(),
            self.reply.to_string(),
            "--iters".into(),
            self.iters.to_string(),
            "--warmup".into(),
            self.warmup.to_string(),
            "--conns".into(),
            self.conns.to_string(),
        ];
        if let Some(s) = self.secs {
            a.push("--secs".into());
            a.push(s.to_string());
        }
        if self.ext {
            a.push("--ext".into());
        }
        a
    }
}

/// What one client process measured.
#[derive(Clone, Debug, PartialEq)]
pub struct ClientResult {
    /// Timed operations done.
    pub ops: u64,
    /// Wall time of the timed loop, nanoseconds.
    pub elapsed_ns: u64,
    /// Payload bytes moved by the timed loop.
    pub bytes: u64,
    /// Median latency of one operation, nanoseconds (exact for a counted
    /// loop, from the histogram for a timed one).
    pub median_ns: f64,
    /// Latency of every timed operation.
    pub hist: Hist,
}

impl ClientResult {
    /// Operations per second.
    pub fn rate(&self) -> f64 {
        self.ops as f64 / (self.elapsed_ns.max(1) as f64 / 1e9)
    }

    /// Payload megabytes (10^6) per second.
    pub fn mb_per_s(&self) -> f64 {
        self.bytes as f64 / 1e6 / (self.elapsed_ns.max(1) as f64 / 1e9)
    }

    /// The JSON line a client prints.
    pub fn to_json(&self) -> Value {
        json!({
            "ops": self.ops,
            "elapsed_ns": self.elapsed_ns,
            "bytes": self.bytes,
            "median_ns": self.median_ns,
            "hist": self.hist.to_json(),
        })
    }

    /// Parses a client's JSON line.
    pub fn from_json(line: &str) -> Option<ClientResult> {
        let v: Value = serde_json::from_str(line).ok()?;
        Some(ClientResult {
            ops: v.get("ops")?.as_u64()?,
            elapsed_ns: v.get("elapsed_ns")?.as_u64()?,
            bytes: v.get("bytes")?.as_u64()?,
            median_ns: v.get("median_ns")?.as_f64()?,
            hist: Hist::from_json(v.get("hist")?)?,
        })
    }
}

fn other(msg: impl Into<String>) -> io::Error {
    io::Error::other(msg.into())
}

fn set_timeout(s: &Stream) -> io::Result<()> {
    match s {
        Stream::Unix(s) => s.set_read_timeout(Some(SOCKET_TIMEOUT)),
        Stream::Tcp(s) => s.set_read_timeout(Some(SOCKET_TIMEOUT)),
    }
}

fn connect(url: &str) -> io::Result<Stream> {
    let ep = sp_transport::parse(url, Role::Client)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{url}: {e}")))?;
    let s = sp_transport::connect(&ep)?;
    set_timeout(&s)?;
    Ok(s)
}

fn other_err(e: impl std::fmt::Display) -> io::Error {
    other(e.to_string())
}

/// Sends a frame made of `head` and `payload`: small frames are copied into
/// `out` (reused) and written at once, large ones written vectored.
fn send_parts(
    w: &mut impl Write,
    out: &mut Vec<u8>,
    head: &[u8],
    payload: &[u8],
) -> io::Result<()> {
    if payload.len() <= COPY_LIMIT {
        out.clear();
        out.extend_from_slice(head);
        out.extend_from_slice(payload);
        w.write_all(out)
    } else {
        sp_transport::write_frame(w, head, payload)
    }
}

fn send_msg(w: &mut impl Write, out: &mut Vec<u8>, msg: &Message<'_>) -> io::Result<()> {
    let e = msg.encode();
    send_parts(w, out, e.head(), e.payload)
}

/// Reads one whole frame: the header into `head`, the body into the start
/// of `body`, which only ever grows (so a large frame after a small one
/// costs no zeroing). Returns the header and the body's length.
fn read_frame(
    r: &mut impl Read,
    head: &mut [u8; HEADER_LEN],
    body: &mut Vec<u8>,
) -> io::Result<(Header, usize)> {
    r.read_exact(head)?;
    let h = Header::read(head).ok_or_else(|| other("short header"))?;
    let len = h.len();
    if !(HEADER_LEN as u64..=MAX_FRAME).contains(&len) {
        return Err(other(format!("frame length {len} out of range")));
    }
    let n = len as usize - HEADER_LEN;
    if body.len() < n {
        body.resize(n, 0);
    }
    r.read_exact(&mut body[..n])?;
    Ok((h, n))
}

/// The client's memory as the server sees it: a few named buffers at
/// made-up addresses. COPYIN is served from them; a COPYOUT must land in one
/// (its bytes are checked for place and dropped, like a raw peer would).
#[derive(Default, Debug)]
pub struct Mem {
    regions: Vec<(u64, Vec<u8>)>,
}

impl Mem {
    /// No buffers.
    pub fn new() -> Mem {
        Mem::default()
    }

    /// Places `bytes` at `addr`.
    pub fn add(&mut self, addr: u64, bytes: Vec<u8>) {
        self.regions.push((addr, bytes));
    }

    fn region(&self, addr: u64) -> Option<&[u8]> {
        self.regions.iter().find_map(|(base, b)| {
            let off = usize::try_from(addr.checked_sub(*base)?).ok()?;
            b.get(off..)
        })
    }

    /// `len` bytes at `addr`, if they lie inside one buffer.
    pub fn slice(&self, addr: u64, len: u64) -> Option<&[u8]> {
        self.region(addr)?.get(..usize::try_from(len).ok()?)
    }

    /// The string at `addr` with its NUL, cut to `max` bytes (a COPYINSTR
    /// answer).
    pub fn cstr(&self, addr: u64, max: u64) -> Option<&[u8]> {
        let r = self.region(addr)?;
        let n = r.iter().position(|&b| b == 0).map_or(r.len(), |i| i + 1);
        Some(&r[..n.min(usize::try_from(max).unwrap_or(usize::MAX))])
    }

    /// Whether `len` bytes at `addr` lie inside one buffer.
    pub fn fits(&self, addr: u64, len: usize) -> bool {
        self.region(addr).is_some_and(|r| r.len() >= len)
    }
}

/// What the bench needs from a sysproxy client: one system call at a time,
/// the server's copy requests served from `mem`. The raw client below is
/// one; a client built on `sp-client` can be another.
pub trait SysClient {
    /// Makes system call `sysnum` with argument block `args`; returns the
    /// NetBSD errno (0 on success) and the two return values.
    fn syscall(&mut self, sysnum: u32, args: &[u8], mem: &Mem) -> io::Result<(i32, [i64; 2])>;

    /// [`SysClient::syscall`] of a call that reads the `(address, length)`
    /// ranges `reads` of `mem`: a client that speaks the extension sends
    /// their bytes with the call.
    fn syscall_reading(
        &mut self,
        sysnum: u32,
        args: &[u8],
        mem: &Mem,
        reads: &[(u64, usize)],
    ) -> io::Result<(i32, [i64; 2])> {
        let _ = reads;
        self.syscall(sysnum, args, mem)
    }
}

/// A minimal sysproxy client on raw frames: guest handshake, then each call
/// encodes its frame into a reused buffer, writes it, and reads exactly the
/// frames that come back.
pub struct RawClient {
    stream: Stream,
    reqno: u64,
    head: [u8; HEADER_LEN],
    body: Vec<u8>,
    out: Vec<u8>,
    /// The server's answer to EXT_HELLO, if it speaks the extension.
    ext: Option<Hello>,
}

impl RawClient {
    /// Connects to `url`, reads the banner and completes a guest handshake
    /// as `comm` (reqno 1, like the C client).
    pub fn connect(url: &str, comm: &str) -> io::Result<RawClient> {
        RawClient::connect_with(url, comm, false)
    }

    /// [`RawClient::connect`], then, with `ext`, EXT_HELLO: a server that
    /// speaks the extension gets the bytes a call reads with the call
    /// ([`SysClient::syscall_reading`]); a stock one answers ERROR and
    /// gets plain calls.
    pub fn connect_with(url: &str, comm: &str, ext: bool) -> io::Result<RawClient> {
        let mut c = RawClient::handshake(url, comm)?;
        if ext {
            let hello = Hello {
                version: EXT_VERSION,
                features: Features::SEGMENTS,
                max_frame: MAX_FRAME,
                max_segment_bytes: 0,
            };
            let probe = Message::ExtHello {
                reqno: PROBE_REQNO,
                hello,
            };
            send_msg(&mut c.stream, &mut c.out, &probe)?;
            let (h, n) = read_frame(&mut c.stream, &mut c.head, &mut c.body)?;
            c.ext = match Message::decode(&h, &c.body[..n]) {
                Ok(Message::ExtHelloResp { hello, .. })
                    if hello.features.contains(Features::SEGMENTS) =>
                {
                    Some(hello)
                }
                _ => None,
            };
        }
        Ok(c)
    }

    /// Whether calls carry the bytes they read.
    pub fn uses_segments(&self) -> bool {
        self.ext.is_some()
    }

    fn handshake(url: &str, comm: &str) -> io::Result<RawClient> {
        let mut stream = connect(url)?;
        // The banner, a byte at a time so nothing after it is read.
        let mut line = Vec::new();
        let mut b = [0u8; 1];
        while line.last() != Some(&b'\n') {
            if line.len() > MAX_BANNER {
                return Err(other("banner too long"));
            }
            stream.read_exact(&mut b)?;
            line.push(b[0]);
        }
        let mut c = RawClient {
            stream,
            reqno: 1,
            head: [0; HEADER_LEN],
            body: Vec::new(),
            out: Vec::with_capacity(256),
            ext: None,
        };
        let mut name = comm.as_bytes().to_vec();
        name.push(0);
        let msg = Message::Handshake {
            reqno: 1,
            hs: Handshake::Guest { comm: &name },
        };
        send_msg(&mut c.stream, &mut c.out, &msg)?;
        let (h, n) = read_frame(&mut c.stream, &mut c.head, &mut c.body)?;
        match Message::decode(&h, &c.body[..n]) {
            Ok(Message::HandshakeResp { error: 0, .. }) => Ok(c),
            _ => Err(other(format!(
                "handshake refused: {:?} {:?} u={}",
                h.class(),
                h.typ(),
                h.u()
            ))),
        }
    }
}

impl SysClient for RawClient {
    fn syscall(&mut self, sysnum: u32, args: &[u8], mem: &Mem) -> io::Result<(i32, [i64; 2])> {
        self.syscall_reading(sysnum, args, mem, &[])
    }

    fn syscall_reading(
        &mut self,
        sysnum: u32,
        args: &[u8],
        mem: &Mem,
        reads: &[(u64, usize)],
    ) -> io::Result<(i32, [i64; 2])> {
        self.reqno += 1;
        let reqno = self.reqno;
        let segs: Vec<(u64, &[u8])> = match &self.ext {
            Some(_) => reads
                .iter()
                .filter_map(|&(a, l)| Some((a, mem.slice(a, l as u64)?)))
                .collect(),
            None => Vec::new(),
        };
        let RawClient {
            stream,
            head,
            body,
            out,
            ..
        } = self;
        if segs.is_empty() {
            let call = Message::Syscall {
                reqno,
                sysnum,
                args,
            };
            send_msg(stream, out, &call)?;
        } else {
            let f = SegFrame::new(reqno, sysnum, args, &segs).map_err(other_err)?;
            let data: usize = segs.iter().map(|s| s.1.len()).sum();
            if data <= COPY_LIMIT {
                out.clear();
                out.extend_from_slice(f.head());
                for s in &segs {
                    out.extend_from_slice(s.1);
                }
                out.extend_from_slice(f.tail());
                stream.write_all(out)?;
            } else {
                let mut parts: Vec<&[u8]> = Vec::with_capacity(segs.len() + 2);
                parts.push(f.head());
                parts.extend(segs.iter().map(|s| s.1));
                parts.push(f.tail());
                sp_transport::write_parts(&mut *stream, &parts)?;
            }
        }
        loop {
            let (h, n) = read_frame(stream, head, body)?;
            let msg = Message::decode(&h, &body[..n])
                .map_err(|e| other(format!("undecodable frame from the server: {e}")))?;
            match msg {
                Message::SyscallResp {
                    reqno: r,
                    error,
                    retval,
                } if r == reqno => return Ok((error, retval)),
                Message::CopyinReq {
                    reqno: r,
                    string,
                    len,
                    addr,
                } => {
                    let data = if string {
                        mem.cstr(addr, len)
                    } else {
                        mem.slice(addr, len)
                    }
                    .ok_or_else(|| {
                        other(format!(
                            "server asked for {len} bytes at {addr:#x}, outside the call's buffers"
                        ))
                    })?;
                    send_msg(stream, out, &Message::CopyinResp { reqno: r, data })?;
                }
                Message::Copyout { addr, data, .. } => {
                    if !mem.fits(addr, data.len()) {
                        return Err(other(format!(
                            "server stores {} bytes at {addr:#x}, outside the call's buffers",
                            data.len()
                        )));
                    }
                }
                Message::Raise { .. } => {}
                _ => {
                    return Err(other(format!(
                        "unexpected {:?} {:?} frame (reqno {}) during syscall {sysnum}",
                        h.class(),
                        h.typ(),
                        h.reqno()
                    )))
                }
            }
        }
    }
}

/// A raw socket to the echo peer: frames of the protocol's sizes, no
/// protocol behind them.
pub struct RawSocket {
    stream: Stream,
    reqno: u64,
    out: Vec<u8>,
    payload: Vec<u8>,
    reply: Vec<u8>,
}

impl RawSocket {
    /// Connects to the echo peer at `url`.
    pub fn connect(url: &str) -> io::Result<RawSocket> {
        Ok(RawSocket {
            stream: connect(url)?,
            reqno: 0,
            out: Vec::with_capacity(256),
            payload: Vec::new(),
            reply: Vec::new(),
        })
    }

    /// Sends a 24 + `size`-byte frame asking for `reply` bytes back, and
    /// reads them (nothing when `reply` is 0).
    pub fn request(&mut self, size: usize, reply: usize) -> io::Result<()> {
        self.reqno += 1;
        let u = u32::try_from(reply).map_err(|_| other("reply too large"))?;
        let h = Header::new(
            (HEADER_LEN + size) as u64,
            self.reqno,
            Class::REQ,
            MsgType::SYSCALL,
            u,
        )
        .to_bytes();
        if self.payload.len() < size {
            self.payload.resize(size, 0x5a);
        }
        send_parts(&mut self.stream, &mut self.out, &h, &self.payload[..size])?;
        if reply > 0 {
            if self.reply.len() < reply {
                self.reply.resize(reply, 0);
            }
            self.stream.read_exact(&mut self.reply[..reply])?;
        }
        Ok(())
    }
}

/// Runs the echo peer on `url` until killed: prints `listening on URL` on
/// stderr, then serves every connection on a thread of its own.
pub fn serve_echo(url: &str) -> io::Result<()> {
    let ep = sp_transport::parse(url, Role::Server)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{url}: {e}")))?;
    let listener = Listener::bind(&ep, &ListenOptions::default()).map_err(io::Error::other)?;
    let bound: Endpoint = listener.local_endpoint();
    eprintln!("listening on {bound}");
    loop {
        let s = listener.accept()?;
        std::thread::spawn(move || {
            let _ = echo_conn(s);
        });
    }
}

fn echo_conn(mut s: Stream) -> io::Result<()> {
    let mut head = [0u8; HEADER_LEN];
    let mut body = Vec::new();
    let mut zeros: Vec<u8> = Vec::new();
    loop {
        let h = match read_frame(&mut s, &mut head, &mut body) {
            Ok((h, _)) => h,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        };
        let n = h.u() as usize;
        if n > 0 {
            if zeros.len() < n {
                zeros.resize(n.min(MAX_FRAME as usize), 0);
            }
            s.write_all(&zeros[..n.min(zeros.len())])?;
        }
    }
}

/// Times `op` `spec.warmup` times untimed, calls `sync`, then times `op`
/// for `spec.iters` operations (or `spec.secs` seconds) and calls `sync`
/// once more inside the timed span.
fn measure(
    spec: &ClientSpec,
    bytes_per_op: u64,
    mut op: impl FnMut() -> io::Result<()>,
    mut sync: impl FnMut() -> io::Result<()>,
) -> io::Result<ClientResult> {
    for _ in 0..spec.warmup {
        op()?;
    }
    sync()?;
    let mut hist = Hist::new();
    let mut samples = Vec::new();
    let start = Instant::now();
    let mut ops = 0u64;
    match spec.secs {
        Some(secs) => {
            let until = start + Duration::from_secs_f64(secs.max(0.0));
            loop {
                let t = Instant::now();
                if t >= until {
                    break;
                }
                op()?;
                hist.record(t.elapsed().as_nanos() as u64);
                ops += 1;
            }
        }
        None => {
            samples.reserve(spec.iters as usize);
            for _ in 0..spec.iters {
                let t = Instant::now();
                op()?;
                let ns = t.elapsed().as_nanos() as u64;
                hist.record(ns);
                samples.push(ns);
            }
            ops = spec.iters;
        }
    }
    sync()?;
    let elapsed_ns = start.elapsed().as_nanos() as u64;
    let median_ns = if samples.is_empty() {
        hist.quantile(0.5) as f64
    } else {
        median_u64(&mut samples)
    };
    Ok(ClientResult {
        ops,
        elapsed_ns,
        bytes: ops * bytes_per_op,
        median_ns,
        hist,
    })
}

/// Prints `ready`, waits for `go`; false if the parent went away instead.
fn barrier(input: &mut impl BufRead, out: &mut impl Write) -> io::Result<bool> {
    writeln!(out, "ready")?;
    out.flush()?;
    let mut line = String::new();
    input.read_line(&mut line)?;
    Ok(line.trim() == "go")
}

fn check(what: &str, (error, retval): (i32, [i64; 2]), want: Option<i64>) -> io::Result<i64> {
    if error != 0 {
        return Err(other(format!("{what}: NetBSD errno {error}")));
    }
    if let Some(w) = want {
        if retval[0] != w {
            return Err(other(format!(
                "{what}: returned {} instead of {w}",
                retval[0]
            )));
        }
    }
    Ok(retval[0])
}

/// A file of the client's own in the server's kernel, `size` bytes long.
fn open_file(c: &mut impl SysClient, mem: &mut Mem, size: usize) -> io::Result<(u64, Vec<u8>)> {
    let mut path = format!("/tmp/spbench.{}", std::process::id()).into_bytes();
    path.push(0);
    mem.add(PATH_ADDR, path.clone());
    mem.add(BUF_ADDR, vec![0x5a; size.max(1)]);
    let open = args::encode(&[PATH_ADDR, u64::from(oflag::O_RDWR | oflag::O_CREAT), 0o644]);
    let path_read = [(PATH_ADDR, path.len())];
    let fd = check(
        "open",
        c.syscall_reading(Sysnum::OPEN.0, &open, mem, &path_read)?,
        None,
    )? as u64;
    let fill = args::encode(&[fd, BUF_ADDR, size as u64, 0, 0]);
    check(
        "pwrite",
        c.syscall_reading(Sysnum::PWRITE.0, &fill, mem, &[(BUF_ADDR, size)])?,
        Some(size as i64),
    )?;
    Ok((fd, path))
}

fn close_file(c: &mut impl SysClient, mem: &Mem, fd: u64) -> io::Result<()> {
    check(
        "close",
        c.syscall(Sysnum::CLOSE.0, &args::encode(&[fd]), mem)?,
        None,
    )?;
    let path_len = mem.cstr(PATH_ADDR, u64::MAX).map_or(0, <[u8]>::len);
    check(
        "unlink",
        c.syscall_reading(
            Sysnum::UNLINK.0,
            &args::encode(&[PATH_ADDR]),
            mem,
            &[(PATH_ADDR, path_len)],
        )?,
        None,
    )?;
    Ok(())
}

/// The body of `sp bench-client`: does what `spec` says, reading `go` from
/// `input` and writing `ready` and the result line to `out`.
pub fn run_client(
    spec: &ClientSpec,
    input: &mut impl BufRead,
    out: &mut impl Write,
) -> io::Result<()> {
    let comm = "spbench";
    let result = match spec.op {
        Op::Echo => return serve_echo(&spec.url),
        Op::Idle => {
            let _ = rlimit::increase_nofile_limit(spec.conns as u64 + 64);
            let conns = (0..spec.conns)
                .map(|_| RawClient::connect(&spec.url, comm))
                .collect::<io::Result<Vec<_>>>()?;
            if !barrier(input, out)? {
                return Ok(());
            }
            drop(conns);
            ClientResult {
                ops: spec.conns as u64,
                elapsed_ns: 0,
                bytes: 0,
                median_ns: 0.0,
                hist: Hist::new(),
            }
        }
        Op::Getpid => {
            let mut c = RawClient::connect_with(&spec.url, comm, spec.ext)?;
            let mem = Mem::new();
            if !barrier(input, out)? {
                return Ok(());
            }
            measure(
                spec,
                0,
                || check("getpid", c.syscall(Sysnum::GETPID.0, &[], &mem)?, None).map(drop),
                || Ok(()),
            )?
        }
        Op::Pwrite | Op::Pread => {
            let mut c = RawClient::connect_with(&spec.url, comm, spec.ext)?;
            let mut mem = Mem::new();
            let (fd, _) = open_file(&mut c, &mut mem, spec.size)?;
            let (sysnum, what) = if spec.op == Op::Pwrite {
                (Sysnum::PWRITE.0, "pwrite")
            } else {
                (Sysnum::PREAD.0, "pread")
            };
            let a = args::encode(&[fd, BUF_ADDR, spec.size as u64, 0, 0]);
            // pwrite reads the buffer (a segment, with the extension);
            // pread writes it.
            let reads: &[(u64, usize)] = if spec.op == Op::Pwrite {
                &[(BUF_ADDR, spec.size)]
            } else {
                &[]
            };
            if !barrier(input, out)? {
                return Ok(());
            }
            let n = spec.size as i64;
            let r = measure(
                spec,
                spec.size as u64,
                || check(what, c.syscall_reading(sysnum, &a, &mem, reads)?, Some(n)).map(drop),
                || Ok(()),
            )?;
            close_file(&mut c, &mem, fd)?;
            r
        }
        Op::Write => {
            let mut c = RawClient::connect_with(&spec.url, comm, spec.ext)?;
            let mut mem = Mem::new();
            mem.add(BUF_ADDR, vec![0x5a; spec.size.max(1)]);
            let a = args::encode(&[1, BUF_ADDR, spec.size as u64]);
            let reads = [(BUF_ADDR, spec.size)];
            if !barrier(input, out)? {
                return Ok(());
            }
            let n = spec.size as i64;
            measure(
                spec,
                spec.size as u64,
                || {
                    check(
                        "write",
                        c.syscall_reading(Sysnum::WRITE.0, &a, &mem, &reads)?,
                        Some(n),
                    )
                    .map(drop)
                },
                || Ok(()),
            )?
        }
        Op::Ping => {
            let mut s = RawSocket::connect(&spec.url)?;
            if !barrier(input, out)? {
                return Ok(());
            }
            let (size, reply) = (spec.size, spec.reply);
            measure(spec, size as u64, || s.request(size, reply), || Ok(()))?
        }
        Op::Stream => {
            let s = std::cell::RefCell::new(RawSocket::connect(&spec.url)?);
            if !barrier(input, out)? {
                return Ok(());
            }
            let size = spec.size;
            measure(
                spec,
                size as u64,
                || s.borrow_mut().request(size, 0),
                || s.borrow_mut().request(0, 48),
            )?
        }
    };
    writeln!(out, "{}", result.to_json())?;
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        spec: ClientSpec,
    }

    #[test]
    fn specs_round_trip_through_the_command_line() {
        let mut s = ClientSpec::new("unix:///tmp/x.sock", Op::Pwrite);
        s.size = 4096;
        s.secs = Some(1.5);
        s.warmup = 7;
        s.ext = true;
        let mut argv = vec!["x".to_string()];
        argv.extend(s.to_args());
        assert_eq!(Cli::parse_from(argv).spec, s);
    }

    #[test]
    fn memory_serves_copies() {
        let mut m = Mem::new();
        m.add(PATH_ADDR, b"/tmp/a\0junk".to_vec());
        m.add(BUF_ADDR, vec![1; 10]);
        assert_eq!(m.cstr(PATH_ADDR, 1024), Some(&b"/tmp/a\0"[..]));
        assert_eq!(m.cstr(PATH_ADDR, 3), Some(&b"/tm"[..]));
        assert_eq!(m.slice(BUF_ADDR + 2, 8).map(<[u8]>::len), Some(8));
        assert!(m.slice(BUF_ADDR + 2, 9).is_none());
        assert!(m.fits(BUF_ADDR, 10) && !m.fits(BUF_ADDR, 11) && !m.fits(5, 1));
    }
}
