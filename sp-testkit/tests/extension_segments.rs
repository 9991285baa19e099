//! SYSCALL_SEG on our server (docs/extension.md): copies inside a segment
//! are served without asking the client, anything else goes over the
//! wire as before, the limits hold, and our client uses it and falls back.

use parking_lot::Mutex;
use sp_client::{Buf, Call, Client, Errno, Features, Options};
use sp_model::stub::StubKernel;
use sp_proto::args;
use sp_proto::ext::{Hello, SegFrame, EXT_VERSION, PROBE_REQNO};
use sp_proto::{Class, ErrorCode, Message, SysResult};
use sp_server::{Args, Carried, ClientPort, Config, Kernel, Port, ProcId};
use sp_testkit::harness::{TestServer, Transport};
use sp_testkit::rawpeer::RawPeer;
use std::sync::Arc;

/// Test calls of [`CopyKernel`].
const COPYIN: u32 = 900;
const COPYINSTR: u32 = 901;
const OUT_THEN_IN: u32 = 902;
const COPYIN_TWICE_VEC: u32 = 903;

/// The stub, plus calls that make the copies a test names, and a record
/// of what `runs_inline_with` was shown.
struct CopyKernel {
    stub: StubKernel,
    /// (sysnum, whether the buffer the call reads was carried).
    carried: Mutex<Vec<(u32, bool)>>,
    /// Whether write may run inline when carried.
    inline: bool,
}

impl CopyKernel {
    fn new(inline: bool) -> Arc<CopyKernel> {
        Arc::new(CopyKernel {
            stub: StubKernel::new(),
            carried: Mutex::new(Vec::new()),
            inline,
        })
    }
}

impl Kernel for CopyKernel {
    fn spawn_guest(&self, comm: &[u8], port: Port) -> Result<ProcId, Errno> {
        self.stub.spawn_guest(comm, port)
    }

    fn syscall(&self, proc: ProcId, sysnum: u32, args: &[u8], port: &dyn ClientPort) -> SysResult {
        let a = Args(args);
        match sysnum {
            // copyin(addr, len): the bytes' sum.
            COPYIN => {
                let mut b = vec![0u8; a.usize(1)?];
                port.copyin(a.u64(0)?, &mut b)?;
                Ok([b.iter().map(|&x| i64::from(x)).sum(), 0])
            }
            // copyinstr(addr, maxlen): the string's length.
            COPYINSTR => Ok([port.copyinstr(a.u64(0)?, a.usize(1)?)?.len() as i64, 0]),
            // copyout(addr, "ZZ"), then copyin(addr, 2): what came back.
            OUT_THEN_IN => {
                port.copyout(a.u64(0)?, b"ZZ")?;
                let mut b = [0u8; 2];
                port.copyin(a.u64(0)?, &mut b)?;
                Ok([i64::from(u16::from_le_bytes(b)), 0])
            }
            // copyin_vec of the same range twice: both must succeed.
            COPYIN_TWICE_VEC => {
                let x = port.copyin_vec(a.u64(0)?, a.usize(1)?)?;
                let y = port.copyin_vec(a.u64(0)?, a.usize(1)?)?;
                Ok([i64::from(x == y), x.len() as i64])
            }
            _ => self.stub.syscall(proc, sysnum, args, port),
        }
    }

    fn release(&self, proc: ProcId) {
        self.stub.release(proc)
    }

    fn pid(&self, proc: ProcId) -> i32 {
        self.stub.pid(proc)
    }

    fn runs_inline(&self, sysnum: u32) -> bool {
        self.stub.runs_inline(sysnum)
    }

    fn runs_inline_with(
        &self,
        proc: ProcId,
        sysnum: u32,
        args: &[u8],
        carried: &Carried<'_>,
    ) -> bool {
        let a = Args(args);
        if let (Ok(buf), Ok(n)) = (a.u64(1), a.u64(2)) {
            if sysnum == 4 {
                self.carried.lock().push((sysnum, carried.holds(buf, n)));
            }
        }
        if let Ok(path) = a.u64(0) {
            if sysnum == 5 {
                self.carried
                    .lock()
                    .push((sysnum, carried.holds_str(path, 1024)));
            }
        }
        self.inline && self.stub.runs_inline_with(proc, sysnum, args, carried)
    }
}

fn server(kernel: Arc<CopyKernel>, config: Config) -> TestServer {
    TestServer::start_with(kernel, Transport::Unix, config).expect("server starts")
}

/// A raw client that made the guest handshake and agreed on the extension.
fn agreed(url: &str) -> (RawPeer, Hello) {
    let mut p = RawPeer::guest(url, "seg").unwrap();
    p.send_msg(&Message::ExtHello {
        reqno: PROBE_REQNO,
        hello: Hello {
            version: EXT_VERSION,
            features: Features::SEGMENTS,
            max_frame: 1 << 30,
            max_segment_bytes: 0,
        },
    })
    .unwrap();
    match p.recv_msg().unwrap().message() {
        Some(Message::ExtHelloResp { reqno, hello }) => {
            assert_eq!(reqno, PROBE_REQNO);
            assert_eq!(hello.features, Features::SEGMENTS, "only what was asked");
            (p, hello)
        }
        other => panic!("no EXT_HELLO answer: {other:?}"),
    }
}

fn seg_call(p: &mut RawPeer, reqno: u64, sysnum: u32, slots: &[u64], segs: &[(u64, &[u8])]) {
    let f = SegFrame::new(reqno, sysnum, &args::encode(slots), segs).unwrap();
    let data: Vec<&[u8]> = segs.iter().map(|s| s.1).collect();
    p.send(&f.to_vec(&data)).unwrap();
}

/// The next frame must be the answer to `reqno`; returns its values.
fn answer(p: &mut RawPeer, reqno: u64) -> (i32, [i64; 2]) {
    match p.recv_msg().unwrap().message() {
        Some(Message::SyscallResp {
            reqno: r,
            error,
            retval,
        }) if r == reqno => (error, retval),
        other => panic!("expected the answer to {reqno}, got {other:?}"),
    }
}

#[test]
fn copies_inside_segments_are_served_without_asking() {
    for inline in [false, true] {
        let k = CopyKernel::new(inline);
        let s = server(k.clone(), Config::default());
        let (mut p, _) = agreed(&s.url());
        // write(1, buf, 5) with buf carried: straight to the answer.
        seg_call(&mut p, 2, 4, &[1, 0x1000, 5], &[(0x1000, b"hello")]);
        assert_eq!(answer(&mut p, 2), (0, [5, 0]));
        // open("/ok") with the string carried (and bytes after its NUL).
        seg_call(&mut p, 3, 5, &[0x2000, 0, 0], &[(0x2000, b"/ok\0junk")]);
        assert_eq!(answer(&mut p, 3), (0, [3, 0]));
        // A copyin in the middle of a segment, and a string inside one.
        seg_call(&mut p, 4, COPYIN, &[0x3002, 2], &[(0x3000, &[1, 2, 3, 4])]);
        assert_eq!(answer(&mut p, 4), (0, [7, 0]));
        seg_call(&mut p, 5, COPYINSTR, &[0x4001, 64], &[(0x4000, b"xabc\0")]);
        assert_eq!(answer(&mut p, 5), (0, [3, 0]));
        // The same range twice in new vectors (the first may take the
        // frame's buffer): the second is still served, over the wire.
        seg_call(
            &mut p,
            6,
            COPYIN_TWICE_VEC,
            &[0x5000, 3],
            &[(0x5000, b"abc")],
        );
        let f = p.recv_msg().unwrap();
        match f.message() {
            Some(Message::CopyinReq {
                reqno,
                string: false,
                len: 3,
                addr: 0x5000,
            }) => p
                .send_msg(&Message::CopyinResp {
                    reqno,
                    data: b"abc",
                })
                .unwrap(),
            other => panic!("expected a COPYIN of the range handed over, got {other:?}"),
        }
        assert_eq!(answer(&mut p, 6), (0, [1, 3]));
        assert_eq!(*k.carried.lock(), vec![(4, true), (5, true)]);
    }
}

/// The next frame must be a COPYIN request for `len` bytes at `addr`;
/// answered with `data`.
fn serve_copyin(p: &mut RawPeer, string: bool, len: u64, addr: u64, data: &[u8]) {
    match p.recv_msg().unwrap().message() {
        Some(Message::CopyinReq {
            reqno,
            string: s,
            len: l,
            addr: a,
        }) if (s, l, a) == (string, len, addr) => {
            p.send_msg(&Message::CopyinResp { reqno, data }).unwrap()
        }
        other => panic!(
            "expected COPYIN{} {len}@{addr:#x}, got {other:?}",
            if string { "STR" } else { "" }
        ),
    }
}

#[test]
fn anything_else_goes_over_the_wire() {
    let k = CopyKernel::new(true);
    let s = server(k.clone(), Config::default());
    let (mut p, _) = agreed(&s.url());
    // A copyin that runs past its segment.
    seg_call(&mut p, 2, COPYIN, &[0x1000, 6], &[(0x1000, &[1; 5])]);
    serve_copyin(&mut p, false, 6, 0x1000, &[1; 6]);
    assert_eq!(answer(&mut p, 2), (0, [6, 0]));
    // A copyin that spans two segments is not put together from them.
    seg_call(
        &mut p,
        3,
        COPYIN,
        &[0x1000, 4],
        &[(0x1000, &[1, 1]), (0x1002, &[1, 1])],
    );
    serve_copyin(&mut p, false, 4, 0x1000, &[1; 4]);
    assert_eq!(answer(&mut p, 3), (0, [4, 0]));
    // A string whose NUL is not in its segment: the client may know more.
    seg_call(&mut p, 4, COPYINSTR, &[0x2000, 64], &[(0x2000, b"abc")]);
    serve_copyin(&mut p, true, 64, 0x2000, b"abcdef\0");
    assert_eq!(answer(&mut p, 4), (0, [6, 0]));
    // A write whose buffer is not carried: as without the extension, and
    // on a worker (the kernel was shown it is not carried).
    seg_call(&mut p, 5, 4, &[1, 0x3000, 2], &[(0x9000, b"unrelated")]);
    serve_copyin(&mut p, false, 2, 0x3000, b"hi");
    assert_eq!(answer(&mut p, 5), (0, [2, 0]));
    assert!(k.carried.lock().contains(&(4, false)));
}

#[test]
fn a_store_into_a_segment_is_read_back_from_the_client() {
    let s = server(CopyKernel::new(false), Config::default());
    let (mut p, _) = agreed(&s.url());
    seg_call(&mut p, 2, OUT_THEN_IN, &[0x1000], &[(0x1000, b"ab")]);
    // The copyout comes first, then a COPYIN: the carried "ab" is stale.
    match p.recv_msg().unwrap().message() {
        Some(Message::Copyout {
            addr: 0x1000,
            data: b"ZZ",
            ..
        }) => {}
        other => panic!("expected the COPYOUT first, got {other:?}"),
    }
    serve_copyin(&mut p, false, 2, 0x1000, b"ZZ");
    assert_eq!(
        answer(&mut p, 2),
        (0, [i64::from(u16::from_le_bytes(*b"ZZ")), 0])
    );
}

#[test]
fn a_malformed_syscall_seg_is_refused_and_the_connection_goes_on() {
    let s = server(CopyKernel::new(true), Config::default());
    let (mut p, _) = agreed(&s.url());
    let mut frame = SegFrame::new(2, 4, &args::encode(&[1, 0x1000, 5]), &[(0x1000, b"hello")])
        .unwrap()
        .to_vec(&[b"hello"]);
    // The trailer claims two segments.
    let n = frame.len();
    frame[n - 4..].copy_from_slice(&2u32.to_le_bytes());
    p.send(&frame).unwrap();
    let h = p.recv_msg().unwrap().header();
    assert_eq!(
        (h.class(), h.error(), h.reqno()),
        (Class::ERROR, ErrorCode::MALFORMED_REQUEST, 2)
    );
    assert_eq!(p.syscall(3, 20, &[]).unwrap(), (0, [2, 0]));
}

#[test]
fn segments_over_the_client_budget_are_answered_tryagain() {
    let cfg = Config {
        segment_bytes_per_client: 64,
        ..Config::default()
    };
    let s = server(CopyKernel::new(true), cfg);
    let (mut p, hello) = agreed(&s.url());
    assert_eq!(hello.max_segment_bytes, 64, "the budget is announced");
    let big = [7u8; 100];
    seg_call(&mut p, 2, 4, &[1, 0x1000, 100], &[(0x1000, &big)]);
    let h = p.recv_msg().unwrap().header();
    assert_eq!(
        (h.class(), h.error(), h.reqno()),
        (Class::ERROR, ErrorCode::TRYAGAIN, 2)
    );
    // The call did not run: sent again as a plain SYSCALL, it does.
    p.send_msg(&Message::Syscall {
        reqno: 3,
        sysnum: 4,
        args: &args::encode(&[1, 0x1000, 100]),
    })
    .unwrap();
    serve_copyin(&mut p, false, 100, 0x1000, &big);
    assert_eq!(answer(&mut p, 3), (0, [100, 0]));
    // Within the budget: carried.
    seg_call(&mut p, 4, 4, &[1, 0x1000, 10], &[(0x1000, &big[..10])]);
    assert_eq!(answer(&mut p, 4), (0, [10, 0]));
}

#[test]
fn a_segment_frame_over_the_frame_limit_ends_the_connection() {
    let cfg = Config {
        max_frame: 4120,
        ..Config::default()
    };
    let s = server(CopyKernel::new(true), cfg);
    let (mut p, hello) = agreed(&s.url());
    assert_eq!(hello.max_frame, 4120);
    assert!(hello.max_segment_bytes <= 4120 - 24 - 8);
    let big = vec![1u8; 5000];
    seg_call(&mut p, 2, 4, &[1, 0x1000, 5000], &[(0x1000, &big)]);
    p.expect_closed().unwrap();
}

#[test]
fn our_client_carries_what_fits_and_falls_back() {
    let k = CopyKernel::new(true);
    let cfg = Config {
        segment_bytes_per_client: 4096,
        ..Config::default()
    };
    let s = server(k.clone(), cfg);
    let c = Client::connect_with(&s.url(), Options::new().name("seg")).unwrap();
    assert!(c.extension_features().contains(Features::SEGMENTS));
    assert_eq!(c.write(1, b"hello"), Ok(5));
    assert_eq!(c.open("/ok", 0, 0), Ok(3));
    // Over what the server announced: not carried, a plain call.
    let big = vec![3u8; 5000];
    assert_eq!(c.write(1, &big), Ok(5000));
    assert_eq!(
        *k.carried.lock(),
        vec![(4, true), (5, true)],
        "the 5000-byte write went as a plain SYSCALL"
    );
    // Only read-only buffers are carried: a call with an in-out buffer
    // and a read-only one.
    let mut io = [9u8; 4];
    let input = [1u8, 2, 3];
    let r = c.call(
        Call::new(COPYIN)
            .buf(Buf::In(&input))
            .arg(3)
            .expose(Buf::InOut(&mut io)),
    );
    assert_eq!(r, Ok([6, 0]));
    // A copy outside every buffer is refused by the client as before (and,
    // by default, ends the connection).
    assert_eq!(c.syscall(COPYIN, &[0x10, 4], &mut []), Err(Errno::EFAULT));
    assert!(!c.is_connected());
}

#[test]
fn budget_refusals_make_our_client_send_the_plain_call() {
    // Two threads' calls at once against a budget that holds one: the one
    // refused TRYAGAIN is sent again without segments and succeeds.
    let cfg = Config {
        segment_bytes_per_client: 100,
        ..Config::default()
    };
    let s = TestServer::start_with(Arc::new(StubKernel::new()), Transport::Unix, cfg).unwrap();
    let c = Arc::new(Client::connect_with(&s.url(), Options::new().name("budget")).unwrap());
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let c = c.clone();
            std::thread::spawn(move || {
                let data = vec![i as u8; 60];
                for _ in 0..50 {
                    assert_eq!(c.write(1, &data), Ok(60));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn large_transfers_with_the_model_kernel() {
    for t in Transport::ALL {
        let (s, _k) = TestServer::model(t);
        let c = Client::connect_with(&s.url(), Options::new().name("big")).unwrap();
        assert!(c.extension_features().contains(Features::SEGMENTS));
        let data: Vec<u8> = (0..3 << 20).map(|i: u32| (i % 251) as u8).collect();
        c.write_file("/tmp/big", &data).unwrap();
        assert_eq!(c.read_file("/tmp/big").unwrap(), data, "{t:?}");
        let st = c.stat("/tmp/big").unwrap();
        assert_eq!(st.size(), data.len() as u64);
        // And the same through a client without the extension.
        let plain = Client::connect_with(&s.url(), Options::new().extensions(false)).unwrap();
        assert_eq!(plain.read_file("/tmp/big").unwrap(), data);
    }
}
