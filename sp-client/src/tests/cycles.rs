//! One test per protocol cycle, against scripted servers.

use super::*;
use crate::error::{CopyKind, DisconnectReason, HandshakeError, ProtocolError};
use crate::{host_signal, Buf, Call, Errno};
use sp_proto::abi::{oflag, Iovec, Signal, Sysnum};
use sp_proto::{BannerError, ErrorCode, Message};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

#[test]
fn client_and_mapping_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Client>();
    check::<crate::Mapping>();
    check::<Error>();
}

#[test]
fn banner_accepted() {
    let (c, h) = guest(|_| {});
    let b = c.banner().unwrap();
    assert_eq!(
        (b.major, b.minor, b.ostype.as_str(), b.machine.as_str()),
        (0, 4, "NetBSD", "amd64")
    );
    assert!(c.is_connected());
    drop(c);
    h.join().unwrap();
}

fn banner_error(banner: &'static [u8]) -> Error {
    let (c, h) = start(opts(), move |mut p| {
        p.write(banner);
        p.s.shutdown(std::net::Shutdown::Write).unwrap();
        // The client must give up without sending a handshake.
        assert!(p.at_eof());
    });
    let e = c.unwrap_err();
    h.join().unwrap();
    e
}

#[test]
fn banner_malformed_refused() {
    assert!(matches!(
        banner_error(b"HELLO-0.4-x-y/z\n"),
        Error::Banner(BannerError::BadMagic)
    ));
    assert!(matches!(
        banner_error(b"RUMPSP-0.x-NetBSD-7/amd64\n"),
        Error::Banner(BannerError::BadVersion)
    ));
    let long = [b'A'; 100];
    let e = banner_error(Box::leak(Box::new(long)));
    assert!(
        matches!(e, Error::Protocol(ProtocolError::BannerTooLong)),
        "{e}"
    );
    assert!(matches!(
        banner_error(b"RUMPSP-0.4"),
        Error::Disconnected(DisconnectReason::Eof)
    ));
}

#[test]
fn banner_wrong_version_refused() {
    for b in [
        &b"RUMPSP-1.4-NetBSD-7.99/amd64\n"[..],
        b"RUMPSP-0.3-NetBSD-7.99/amd64\n",
    ] {
        let e = banner_error(b);
        assert!(
            matches!(e, Error::Banner(BannerError::Unsupported { .. })),
            "{e}"
        );
        assert!(e.to_string().contains("0.4"), "{e}");
    }
    // A later minor is fine. (The script ends after the handshake: no
    // extension probe.)
    let (c, h) = start(opts().extensions(false), |mut p| {
        p.write(b"RUMPSP-0.7-Linux-6/x86_64\n");
        let (h, _) = p.next();
        p.send(Message::HandshakeResp {
            reqno: h.reqno(),
            error: 0,
        });
    });
    assert_eq!(c.unwrap().banner().unwrap().minor, 7);
    h.join().unwrap();
}

#[test]
fn banner_and_frames_in_one_segment() {
    // A server that pipelines its handshake answer right behind the banner:
    // the bytes after the newline must reach the deframer.
    let (c, h) = start(opts(), |mut p| {
        let mut v = BANNER.to_vec();
        v.extend(Message::HandshakeResp { reqno: 1, error: 0 }.to_vec());
        p.write(&v);
        let (h, _) = p.next();
        assert_eq!(h.reqno(), 1);
        let (reqno, _, _) = p.syscall();
        p.ret(reqno, 0, [9, 0]);
    });
    let c = c.unwrap();
    assert_eq!(c.getpid(), Ok((9, 0)));
    h.join().unwrap();
}

#[test]
fn guest_handshake_and_getpid_bytes_match_capture() {
    let (c, h) = start(opts(), |mut p| {
        p.write(BANNER);
        let hs = p.raw().unwrap();
        assert_eq!(
            hs,
            unhex("240000000000000001000000000000000000000000000000637265665f636c69656e7400")
        );
        p.write(&unhex(
            "1c000000000000000100000000000000010000000000000000000000",
        ));
        let call = p.raw().unwrap();
        assert_eq!(
            call,
            unhex("180000000000000002000000000000000000010014000000")
        );
        p.write(&unhex("300000000000000002000000000000000100010000000000000000002d7f000002000000000000000000000000000000"));
    });
    let c = c.unwrap();
    assert_eq!(c.getpid(), Ok((2, 0)));
    h.join().unwrap();
}

#[test]
fn default_name_is_process_comm() {
    let (c, h) = start(Options::default().extensions(false), |mut p| {
        let comm = p.guest();
        let want = std::fs::read_to_string("/proc/self/comm").unwrap();
        let mut want = want.trim_end_matches('\n').as_bytes().to_vec();
        want.push(0);
        assert_eq!(comm, want);
    });
    c.unwrap();
    h.join().unwrap();
}

#[test]
fn handshake_refusals() {
    let (c, h) = start(opts(), |mut p| {
        p.write(BANNER);
        let (h, _) = p.next();
        p.send(Message::Error {
            reqno: h.reqno(),
            code: ErrorCode::AUTH,
        });
    });
    let e = c.unwrap_err();
    assert!(
        matches!(
            e,
            Error::Handshake(HandshakeError::Refused(ErrorCode::AUTH))
        ),
        "{e}"
    );
    assert_eq!(e.errno(), Errno::EPERM);
    h.join().unwrap();

    let (c, h) = start(opts(), |mut p| {
        p.write(BANNER);
        let (h, _) = p.next();
        p.send(Message::HandshakeResp {
            reqno: h.reqno(),
            error: 12,
        });
    });
    assert!(matches!(
        c.unwrap_err(),
        Error::Handshake(HandshakeError::Failed(Errno::ENOMEM))
    ));
    h.join().unwrap();
}

#[test]
fn getpid_and_getppid() {
    let (c, h) = guest(|p| {
        let (r, n, a) = p.syscall();
        assert_eq!((n, a.len()), (Sysnum::GETPID, 0));
        p.ret(r, 0, [5, 1]);
        let (r, n, _) = p.syscall();
        assert_eq!(n, Sysnum::GETPPID);
        p.ret(r, 0, [1, 0]);
    });
    assert_eq!(c.getpid(), Ok((5, 1)));
    assert_eq!(c.getppid(), Ok(1));
    h.join().unwrap();
}

#[test]
fn write_serves_copyin() {
    let (c, h) = guest(|p| {
        let (r, n, a) = p.syscall();
        assert_eq!((n, a[0], a[2]), (Sysnum::WRITE, 1, 5));
        p.send(Message::CopyinReq {
            reqno: 0,
            string: false,
            len: 5,
            addr: a[1],
        });
        // The answer: RESP/COPYIN, reqno of the request, the bytes.
        let raw = p.raw().unwrap();
        assert_eq!(
            raw,
            unhex("1d000000000000000000000000000000010002000000000068656c6c6f")
        );
        p.ret(r, 0, [5, 0]);
    });
    assert_eq!(c.write(1, b"hello"), Ok(5));
    h.join().unwrap();
}

#[test]
fn read_stores_copyout_into_caller_buffer() {
    let (c, h) = guest(|p| {
        let (r, n, a) = p.syscall();
        assert_eq!((n, a[0], a[2]), (Sysnum::READ, 0, 20));
        let data: Vec<u8> = (0..16).collect();
        p.send(Message::Copyout {
            reqno: 0,
            string: false,
            addr: a[1],
            data: &data,
        });
        p.ret(r, 0, [16, 0]);
    });
    let mut buf = [0xaau8; 20];
    assert_eq!(c.read(0, &mut buf), Ok(16));
    assert_eq!(&buf[..16], &(0..16).collect::<Vec<u8>>()[..]);
    assert_eq!(
        &buf[16..],
        &[0xaa; 4],
        "bytes not written keep their contents"
    );
    h.join().unwrap();
}

#[test]
fn open_answers_copyinstr_with_the_string_and_nul() {
    let (c, h) = guest(|p| {
        for (want, reply) in [(&b"/ok\0"[..], Ok(3)), (b"/missing\0", Err(2))] {
            let (r, n, a) = p.syscall();
            assert_eq!(
                (n, a[1], a[2]),
                (Sysnum::OPEN, u64::from(oflag::O_RDONLY), 0)
            );
            p.send(Message::CopyinReq {
                reqno: 7,
                string: true,
                len: 1024,
                addr: a[0],
            });
            let raw = p.raw().unwrap();
            let h = Header::read(&raw).unwrap();
            // Type 2 (COPYIN) even for COPYINSTR, like the C client.
            assert_eq!((h.class().0, h.typ().0, h.reqno()), (1, 2, 7));
            assert_eq!(&raw[24..], want);
            match reply {
                Ok(fd) => p.ret(r, 0, [fd, 0]),
                Err(e) => p.ret(r, e, [0, 0]),
            }
        }
    });
    assert_eq!(c.open("/ok", oflag::O_RDONLY, 0), Ok(3));
    assert_eq!(c.open("/missing", oflag::O_RDONLY, 0), Err(Errno::ENOENT));
    assert_eq!(
        c.open(b"a\0b", 0, 0),
        Err(Errno::EINVAL),
        "interior NUL never reaches the wire"
    );
    h.join().unwrap();
}

#[test]
fn copyin_outside_refused_with_error_frame() {
    let o = opts().server_accepts_copy_errors(true);
    let (c, h) = guest_with(o, |p| {
        let (r, _, a) = p.syscall();
        // Past the end of the 5 exposed bytes.
        p.send(Message::CopyinReq {
            reqno: 3,
            string: false,
            len: 6,
            addr: a[1],
        });
        let raw = p.raw().unwrap();
        assert_eq!(
            raw,
            Message::Error {
                reqno: 3,
                code: ErrorCode::MALFORMED_REQUEST
            }
            .to_vec()
        );
        assert_eq!(
            &raw[16..24],
            &[2, 0, 0, 0, 7, 0, 0, 0],
            "class ERROR, type 0, MALFORMED_REQUEST"
        );
        p.ret(r, 14, [0, 0]);
        // The connection stays up.
        let (r, _, _) = p.syscall();
        p.ret(r, 0, [2, 0]);
    });
    assert_eq!(c.write(1, b"hello"), Err(Errno::EFAULT));
    assert_eq!(c.refused_copies().refused_copyin, 1);
    assert_eq!(c.getpid(), Ok((2, 0)));
    h.join().unwrap();
}

#[test]
fn copyin_outside_refused_closes_connection_by_default() {
    let secret = b"secret".to_vec();
    let secret_addr = secret.as_ptr() as u64;
    let (c, h) = guest(move |p| {
        let (_r, _, _a) = p.syscall();
        p.send(Message::CopyinReq {
            reqno: 0,
            string: true,
            len: 64,
            addr: secret_addr,
        });
        assert!(p.at_eof(), "no answer, just the end of the connection");
    });
    let e = c
        .call_detailed(Call::new(Sysnum::WRITE).int(1).input(b"hello").arg(5))
        .unwrap_err();
    match e {
        Error::CopyRefused(r) => assert_eq!(
            (r.kind, r.addr, r.len),
            (CopyKind::Copyinstr, secret_addr, 64)
        ),
        e => panic!("{e}"),
    }
    assert_eq!(c.refused_copies().refused_copyin, 1);
    assert!(matches!(
        c.disconnect_reason(),
        Some(DisconnectReason::CopyRefused(_))
    ));
    assert_eq!(c.getpid(), Err(Errno::ENOTCONN), "later calls fail fast");
    h.join().unwrap();
    drop(secret);
}

#[test]
fn copyout_outside_dropped_and_reported() {
    let mut victim = [1u8; 8];
    let victim_addr = victim.as_mut_ptr() as u64;
    let (c, h) = guest(move |p| {
        let (r, _, a) = p.syscall();
        p.send(Message::Copyout {
            reqno: 0,
            string: false,
            addr: victim_addr,
            data: &[9; 8],
        });
        // Partly outside the exposed buffer: refused too.
        p.send(Message::Copyout {
            reqno: 1,
            string: true,
            addr: a[1] + 2,
            data: &[9; 8],
        });
        p.ret(r, 0, [4, 0]);
        let (r, _, _) = p.syscall();
        p.ret(r, 0, [2, 0]);
    });
    let mut buf = [0u8; 4];
    let e = c
        .call_detailed(Call::new(Sysnum::READ).int(0).output(&mut buf).arg(4))
        .unwrap_err();
    assert!(
        matches!(e, Error::CopyRefused(r) if r.kind == CopyKind::Copyout),
        "{e}"
    );
    assert_eq!(e.errno(), Errno::EFAULT);
    assert_eq!(victim, [1; 8]);
    assert_eq!(buf, [0; 4]);
    assert_eq!(c.refused_copies().refused_copyout, 2);
    assert_eq!(c.getpid(), Ok((2, 0)), "the connection stays up");
    h.join().unwrap();
}

#[test]
fn anonmmap_memory_is_reachable_by_the_caller() {
    let (tx, rx) = mpsc::channel();
    let (c, h) = guest(move |p| {
        let (r, n, a) = p.syscall();
        assert_eq!(n, Sysnum::MMAP);
        assert_eq!(a, vec![0, 65536, 3, 0x1002, 0xffff_ffff, 0, 0]);
        p.send(Message::AnonmmapReq {
            reqno: 0,
            size: 65536,
        });
        let (hd, body) = p.next();
        let addr = match Message::decode(&hd, &body).unwrap() {
            Message::AnonmmapResp { reqno: 0, addr } => addr,
            m => panic!("{m:?}"),
        };
        assert_ne!(addr, 0);
        p.send(Message::Copyout {
            reqno: 1,
            string: false,
            addr: addr + 8,
            data: b"kern",
        });
        p.ret(r, 0, [addr as i64, 0]);
        tx.send(addr).unwrap();
        // Next call: read back what the caller stored.
        let (r, _, _) = p.syscall();
        p.send(Message::CopyinReq {
            reqno: 2,
            string: false,
            len: 4,
            addr: addr + 100,
        });
        assert_eq!(p.copyin_resp(2), b"user");
        // A mapping refused for its size is answered with 0.
        p.send(Message::AnonmmapReq {
            reqno: 3,
            size: u64::MAX,
        });
        let (hd, body) = p.next();
        assert_eq!(
            Message::decode(&hd, &body).unwrap(),
            Message::AnonmmapResp { reqno: 3, addr: 0 }
        );
        p.ret(r, 0, [0, 0]);
    });
    let addr = c.mmap_anon(65536).unwrap();
    assert_eq!(addr, rx.recv().unwrap());
    let m = c.mapping(addr).unwrap();
    assert_eq!(m.len(), 65536);
    let mut four = [0u8; 4];
    assert!(m.read_at(8, &mut four));
    assert_eq!(&four, b"kern");
    c.with_mapping(addr, |mem| mem[100..104].copy_from_slice(b"user"))
        .unwrap();
    assert_eq!(c.call(Call::new(2000)), Ok([0, 0]));
    assert_eq!(c.mappings().len(), 1);
    assert!(c.unmap(addr));
    assert!(c.mapping(addr).is_none());
    h.join().unwrap();
}

#[test]
fn raise_goes_to_the_callback() {
    let (tx, rx) = mpsc::channel();
    let o = opts().on_signal(move |s| tx.send(s).unwrap());
    let (c, h) = guest_with(o, |p| {
        let (r, n, a) = p.syscall();
        assert_eq!((n, a[0]), (Sysnum(1001), 30));
        p.send(Message::Raise {
            reqno: 0,
            signo: Signal::SIGUSR1.0,
        });
        p.send(Message::Raise {
            reqno: 0,
            signo: 77,
        });
        p.ret(r, 0, [0, 0]);
    });
    assert_eq!(c.call(Call::new(1001).arg(30)), Ok([0, 0]));
    let got: Vec<u32> = rx.try_iter().collect();
    assert_eq!(got, vec![30, 77]);
    assert_eq!(host_signal(got[0]), Some(libc::SIGUSR1));
    assert_eq!(host_signal(77), None);
    assert_eq!(c.refused_copies().signals, 2);
    h.join().unwrap();
}

static SIGUSR2_SEEN: AtomicUsize = AtomicUsize::new(0);

extern "C" fn on_sigusr2(_: libc::c_int) {
    SIGUSR2_SEEN.fetch_add(1, Ordering::SeqCst);
}

#[test]
fn raise_without_callback_raises_in_process() {
    // SAFETY: installs a handler that only touches an atomic; a zeroed
    // sigaction with that handler and an empty mask is valid.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_sigusr2 as extern "C" fn(libc::c_int) as usize;
        libc::sigemptyset(&mut sa.sa_mask);
        assert_eq!(libc::sigaction(libc::SIGUSR2, &sa, std::ptr::null_mut()), 0);
    }
    let (c, h) = guest(|p| {
        let (r, _, _) = p.syscall();
        p.send(Message::Raise {
            reqno: 0,
            signo: Signal::SIGUSR2.0,
        });
        p.send(Message::Raise {
            reqno: 0,
            signo: 64,
        });
        p.ret(r, 0, [0, 0]);
    });
    assert_eq!(c.call(Call::new(1001).arg(31)), Ok([0, 0]));
    // raise(3) runs the handler before it returns, in the reading thread.
    assert_eq!(SIGUSR2_SEEN.load(Ordering::SeqCst), 1);
    let st = c.refused_copies();
    assert_eq!((st.signals, st.ignored_signals), (2, 1));
    h.join().unwrap();
}

#[test]
fn error_frame_answering_a_syscall_maps_to_errno() {
    let (c, h) = guest(|p| {
        let (r, _, _) = p.syscall();
        p.send(Message::Error {
            reqno: r,
            code: ErrorCode::MALFORMED_REQUEST,
        });
        let (r, _, _) = p.syscall();
        p.send(Message::Error {
            reqno: r,
            code: ErrorCode::NOMEM,
        });
    });
    assert_eq!(c.getpid(), Err(Errno::EINVAL));
    let e = c.call_detailed(Call::new(Sysnum::GETPID)).unwrap_err();
    assert!(matches!(e, Error::Refused(ErrorCode::NOMEM)));
    assert_eq!(e.errno(), Errno::ENOMEM);
    h.join().unwrap();
}

#[test]
fn responses_for_unknown_reqnos_are_dropped() {
    let (c, h) = guest(|p| {
        let (r, _, _) = p.syscall();
        p.ret(77, 0, [1, 1]);
        p.send(Message::CopyinResp {
            reqno: 78,
            data: b"junk",
        });
        p.send(Message::PreforkResp {
            reqno: r + 100,
            cookie: [0; 16],
        });
        p.ret(r, 0, [2, 0]);
    });
    assert_eq!(c.getpid(), Ok((2, 0)));
    h.join().unwrap();
}

#[test]
fn wrong_reply_type_is_a_protocol_error() {
    let (c, h) = guest(|p| {
        let (r, _, _) = p.syscall();
        p.send(Message::PreforkResp {
            reqno: r,
            cookie: [0; 16],
        });
    });
    let e = c.call_detailed(Call::new(Sysnum::GETPID)).unwrap_err();
    assert!(
        matches!(e, Error::Protocol(ProtocolError::UnexpectedReply { .. })),
        "{e}"
    );
    assert_eq!(e.errno(), Errno::EIO);
    h.join().unwrap();
}

#[test]
fn short_frame_length_ends_the_connection() {
    let (c, h) = guest(|p| {
        let _ = p.syscall();
        let mut bad = Message::SyscallResp {
            reqno: 2,
            error: 0,
            retval: [0, 0],
        }
        .to_vec();
        bad[..8].copy_from_slice(&16u64.to_le_bytes());
        p.write(&bad);
        assert!(p.at_eof());
    });
    let e = c.call_detailed(Call::new(Sysnum::GETPID)).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Disconnected(DisconnectReason::Protocol(ProtocolError::Decode(_)))
        ),
        "{e}"
    );
    h.join().unwrap();
}

#[test]
fn malformed_request_ends_the_connection() {
    let (c, h) = guest(|p| {
        let _ = p.syscall();
        // A COPYOUT whose length field disagrees with its data.
        let mut bad = Message::Copyout {
            reqno: 0,
            string: false,
            addr: 8,
            data: b"abcd",
        }
        .to_vec();
        bad[24..32].copy_from_slice(&9u64.to_le_bytes());
        p.write(&bad);
        assert!(p.at_eof());
    });
    assert_eq!(c.getpid(), Err(Errno::ENOTCONN));
    assert!(matches!(
        c.disconnect_reason(),
        Some(DisconnectReason::Protocol(ProtocolError::Body(_)))
    ));
    h.join().unwrap();
}

#[test]
fn raw_mode_serves_unexposed_memory() {
    let src = b"raw bytes".to_vec();
    let mut dst = vec![0u8; 4];
    let (s, d) = (src.as_ptr() as u64, dst.as_mut_ptr() as u64);
    let (c, h) = guest(move |p| {
        let (r, _, a) = p.syscall();
        assert_eq!(a, vec![s, d]);
        p.send(Message::CopyinReq {
            reqno: 0,
            string: false,
            len: 9,
            addr: a[0],
        });
        assert_eq!(p.copyin_resp(0), b"raw bytes");
        p.send(Message::Copyout {
            reqno: 1,
            string: false,
            addr: a[1],
            data: b"done",
        });
        p.ret(r, 0, [0, 0]);
        // Back in safe mode the same copy is refused.
        let (r, _, a) = p.syscall();
        p.send(Message::CopyinReq {
            reqno: 2,
            string: false,
            len: 9,
            addr: a[0],
        });
        assert!(p.at_eof());
        let _ = r;
    });
    // SAFETY: the server only names `src` and `dst`, which stay alive and
    // unborrowed until the call returns.
    unsafe { c.set_raw_memory(true) };
    assert!(c.raw_memory());
    assert_eq!(c.syscall(3000, &[s, d], &mut []), Ok([0, 0]));
    assert_eq!(dst, b"done");
    // SAFETY: turning raw mode off has no precondition.
    unsafe { c.set_raw_memory(false) };
    assert_eq!(c.syscall(3000, &[s, d], &mut []), Err(Errno::EFAULT));
    h.join().unwrap();
}

#[test]
fn large_payloads_both_ways() {
    const N: usize = 3 << 20;
    let (c, h) = guest(|p| {
        let (r, _, a) = p.syscall();
        p.send(Message::CopyinReq {
            reqno: 0,
            string: false,
            len: N as u64,
            addr: a[1],
        });
        let got = p.copyin_resp(0);
        assert_eq!(got.len(), N);
        assert!(got.iter().enumerate().all(|(i, &b)| b == (i % 251) as u8));
        p.ret(r, 0, [N as i64, 0]);
        let (r, _, a) = p.syscall();
        let data: Vec<u8> = (0..N).map(|i| (i % 13) as u8).collect();
        p.send(Message::Copyout {
            reqno: 1,
            string: false,
            addr: a[1],
            data: &data,
        });
        p.ret(r, 0, [N as i64, 0]);
    });
    let data: Vec<u8> = (0..N).map(|i| (i % 251) as u8).collect();
    assert_eq!(c.write(1, &data), Ok(N));
    let mut back = vec![0u8; N];
    assert_eq!(c.read(0, &mut back), Ok(N));
    assert!(back.iter().enumerate().all(|(i, &b)| b == (i % 13) as u8));
    h.join().unwrap();
}

#[test]
fn wrapper_argument_layouts() {
    let (c, h) = guest(|p| {
        let mut check = |want_sys: Sysnum, f: &dyn Fn(&[u64]) -> bool, ret: [i64; 2]| {
            let (r, n, a) = p.syscall();
            assert_eq!(n, want_sys);
            assert!(f(&a), "bad args {a:x?} for {n}");
            p.ret(r, 0, ret);
        };
        check(Sysnum::LSEEK, &|a| a == [3, 0, (-5i64) as u64, 2], [10, 0]);
        check(Sysnum::FTRUNCATE, &|a| a == [3, 0, 100], [0, 0]);
        check(
            Sysnum::PREAD,
            &|a| a[0] == 3 && a[2] == 4 && a[3] == 0 && a[4] == 64,
            [0, 0],
        );
        check(
            Sysnum::PWRITE,
            &|a| a[0] == 3 && a[2] == 2 && a[3] == 0 && a[4] == 8,
            [2, 0],
        );
        check(Sysnum::DUP2, &|a| a == [3, 9], [9, 0]);
        check(Sysnum::DUP3, &|a| a == [3, 9, 0x40_0000], [9, 0]);
        check(Sysnum::FCNTL, &|a| a == [3, 2, 1], [0, 0]);
        check(Sysnum::PIPE, &|a| a.is_empty(), [4, 5]);
        check(Sysnum::KILL, &|a| a == [2, 30], [0, 0]);
        check(Sysnum::UMASK, &|a| a == [0o22], [0o77, 0]);
        check(Sysnum::FSYNC, &|a| a == [3], [0, 0]);
        check(Sysnum::CLOSE, &|a| a == [3], [0, 0]);
        check(Sysnum::DUP, &|a| a == [3], [4, 0]);
        check(Sysnum::FCHDIR, &|a| a == [3], [0, 0]);
    });
    assert_eq!(c.lseek(3, -5, 2), Ok(10));
    assert_eq!(c.ftruncate(3, 100), Ok(()));
    assert_eq!(c.pread(3, &mut [0; 4], 64), Ok(0));
    assert_eq!(c.pwrite(3, b"ab", 8), Ok(2));
    assert_eq!(c.dup2(3, 9), Ok(9));
    assert_eq!(c.dup3(3, 9, oflag::O_CLOEXEC), Ok(9));
    assert_eq!(c.fcntl(3, 2, 1), Ok(0));
    assert_eq!(c.pipe(), Ok((4, 5)));
    assert_eq!(c.kill(2, Signal::SIGUSR1.0), Ok(()));
    assert_eq!(c.umask(0o22), Ok(0o77));
    assert_eq!(c.fsync(3), Ok(()));
    assert_eq!(c.close(3), Ok(()));
    assert_eq!(c.dup(3), Ok(4));
    assert_eq!(c.fchdir(3), Ok(()));
    h.join().unwrap();
}

#[test]
fn path_and_struct_wrappers() {
    use sp_proto::abi::{Dirent, Stat};
    let (c, h) = guest(|p| {
        // stat: path in, 152 bytes out.
        let (r, n, a) = p.syscall();
        assert_eq!(n, Sysnum::STAT);
        p.send(Message::CopyinReq {
            reqno: 0,
            string: true,
            len: 1024,
            addr: a[0],
        });
        assert_eq!(p.copyin_resp(0), b"/f\0");
        let mut st = Stat::default();
        st.st_size.set(1234);
        st.st_mode.set(0o100644);
        p.send(Message::Copyout {
            reqno: 1,
            string: false,
            addr: a[1],
            data: &st.to_bytes(),
        });
        p.ret(r, 0, [0, 0]);
        // pipe2: two ints copied out.
        let (r, n, a) = p.syscall();
        assert_eq!((n, a[1]), (Sysnum::PIPE2, 0));
        p.send(Message::Copyout {
            reqno: 2,
            string: false,
            addr: a[0],
            data: &[6, 0, 0, 0, 7, 0, 0, 0],
        });
        p.ret(r, 0, [0, 0]);
        // getcwd.
        let (r, n, a) = p.syscall();
        assert_eq!((n, a[1]), (Sysnum::GETCWD, 4096));
        p.send(Message::Copyout {
            reqno: 3,
            string: true,
            addr: a[0],
            data: b"/dir\0",
        });
        p.ret(r, 0, [5, 0]);
        // rename: two strings.
        let (r, n, a) = p.syscall();
        assert_eq!(n, Sysnum::RENAME);
        p.send(Message::CopyinReq {
            reqno: 4,
            string: true,
            len: 1024,
            addr: a[1],
        });
        assert_eq!(p.copyin_resp(4), b"/b\0");
        p.ret(r, 0, [0, 0]);
        // read_dir: open, getdents twice, close.
        let (r, n, a) = p.syscall();
        assert_eq!((n, a[1]), (Sysnum::OPEN, u64::from(oflag::O_DIRECTORY)));
        p.ret(r, 0, [5, 0]);
        let (r, n, a) = p.syscall();
        assert_eq!((n, a[0]), (Sysnum::GETDENTS, 5));
        let mut recs = Vec::new();
        Dirent {
            fileno: 1,
            kind: 4,
            name: b".".to_vec(),
        }
        .encode(&mut recs);
        Dirent {
            fileno: 9,
            kind: 8,
            name: b"file".to_vec(),
        }
        .encode(&mut recs);
        p.send(Message::Copyout {
            reqno: 5,
            string: false,
            addr: a[1],
            data: &recs,
        });
        p.ret(r, 0, [recs.len() as i64, 0]);
        let (r, _, _) = p.syscall();
        p.ret(r, 0, [0, 0]);
        let (r, n, _) = p.syscall();
        assert_eq!(n, Sysnum::CLOSE);
        p.ret(r, 0, [0, 0]);
        // writev: iovecs then data.
        let (r, n, a) = p.syscall();
        assert_eq!((n, a[0], a[2]), (Sysnum::WRITEV, 1, 2));
        p.send(Message::CopyinReq {
            reqno: 6,
            string: false,
            len: 32,
            addr: a[1],
        });
        let raw = p.copyin_resp(6);
        let iov = Iovec::slice(&raw).expect("two iovecs");
        let base1 = iov[1].base();
        assert_eq!(iov[1].len(), 3);
        p.send(Message::CopyinReq {
            reqno: 7,
            string: false,
            len: 3,
            addr: base1,
        });
        assert_eq!(p.copyin_resp(7), b"def");
        p.ret(r, 0, [5, 0]);
        // readv.
        let (r, n, a) = p.syscall();
        assert_eq!((n, a[2]), (Sysnum::READV, 2));
        p.send(Message::CopyinReq {
            reqno: 8,
            string: false,
            len: 32,
            addr: a[1],
        });
        let raw = p.copyin_resp(8);
        let iov = Iovec::slice(&raw).expect("two iovecs");
        let (base0, base1) = (iov[0].base(), iov[1].base());
        p.send(Message::Copyout {
            reqno: 9,
            string: false,
            addr: base0,
            data: b"xy",
        });
        p.send(Message::Copyout {
            reqno: 10,
            string: false,
            addr: base1,
            data: b"z",
        });
        p.ret(r, 0, [3, 0]);
    });
    let st = c.stat("/f").unwrap();
    assert_eq!((st.size(), st.mode()), (1234, 0o100644));
    assert!(st.is_file());
    assert_eq!(st.permissions(), 0o644);
    assert_eq!(c.pipe2(0), Ok((6, 7)));
    assert_eq!(c.getcwd(), Ok(b"/dir".to_vec()));
    assert_eq!(c.rename("/a", "/b"), Ok(()));
    let ents = c.read_dir("/d").unwrap();
    assert_eq!(
        ents.iter().map(|e| e.name()).collect::<Vec<_>>(),
        [&b"."[..], b"file"]
    );
    assert!(ents[0].is_dir() && ents[1].is_file());
    assert_eq!(ents[1].ino(), 9);
    assert_eq!(c.writev(1, &[b"ab", b"def"]), Ok(5));
    let (mut x, mut y) = ([0u8; 2], [0u8; 1]);
    assert_eq!(c.readv(0, &mut [&mut x, &mut y]), Ok(3));
    assert_eq!((&x, &y), (b"xy", b"z"));
    h.join().unwrap();
}

#[test]
fn connect_errors() {
    let e = Client::connect("bogus://x").unwrap_err();
    assert!(matches!(e, Error::Url { .. }), "{e}");
    assert_eq!(e.errno(), Errno::EINVAL);
    let e = Client::connect("tcp://1.2.3.4:99999").unwrap_err();
    assert_eq!(e.errno(), Errno::ERANGE);
    let dir = tempfile::tempdir().unwrap();
    let url = format!("unix://{}/none", dir.path().display());
    let e = Client::connect(&url).unwrap_err();
    assert!(
        matches!(&e, Error::Connect { url: u, .. } if *u == url),
        "{e}"
    );
    assert_eq!(e.errno(), Errno::ENOENT);
}

#[test]
fn connect_by_url_and_disconnect() {
    let l = listener();
    let url = l.url.clone();
    let h = std::thread::spawn(move || {
        let mut p = l.accept();
        p.guest();
        assert!(p.at_eof());
    });
    let c = Client::connect_with(&url, opts()).unwrap();
    assert_eq!(c.url(), Some(url.as_str()));
    c.disconnect();
    assert_eq!(c.disconnect_reason(), Some(DisconnectReason::Closed));
    assert_eq!(c.getpid(), Err(Errno::ENOTCONN));
    h.join().unwrap();
}

#[test]
fn from_env_requires_rump_server() {
    let _env = ENV_LOCK.lock();
    std::env::remove_var(crate::SERVER_VAR);
    std::env::remove_var(crate::EXECFD_VAR);
    assert!(matches!(
        Client::from_env(),
        Err(Error::EnvUnset("RUMP_SERVER"))
    ));
    // SAFETY: RUMPCLIENT__EXECFD is unset (above): init adopts nothing.
    let r = unsafe { Client::init(opts()) };
    assert!(matches!(r, Err(Error::EnvUnset("RUMP_SERVER"))));
    let l = listener();
    std::env::set_var(crate::SERVER_VAR, &l.url);
    let h = std::thread::spawn(move || {
        let mut p = l.accept();
        p.guest();
        let (r, _, _) = p.syscall();
        p.ret(r, 0, [2, 0]);
    });
    // SAFETY: RUMPCLIENT__EXECFD is unset (above): init only connects.
    let c = unsafe { Client::init(opts()) }.unwrap();
    std::env::remove_var(crate::SERVER_VAR);
    assert_eq!(c.getpid(), Ok((2, 0)));
    h.join().unwrap();
}

#[test]
fn reconnect_makes_a_new_guest() {
    let l = listener();
    let url = l.url.clone();
    let h = std::thread::spawn(move || {
        let mut p = l.accept();
        p.guest();
        let _ = p.syscall();
        drop(p); // the connection is lost mid-call
        let mut p = l.accept();
        assert_eq!(p.guest(), b"cref_client\0");
        let (r, _, _) = p.syscall();
        assert_eq!(r, 2, "a fresh connection numbers from 1 again");
        p.ret(r, 0, [3, 0]);
    });
    let o = opts().reconnect(crate::Reconnect::Retry {
        timeout: std::time::Duration::from_secs(10),
    });
    let c = Client::connect_with(&url, o).unwrap();
    assert_eq!(c.getpid(), Err(Errno::ENOTCONN), "the call in flight fails");
    assert_eq!(c.getpid(), Ok((3, 0)), "the next one reconnects");
    assert!(c.is_connected());
    h.join().unwrap();
}

#[test]
fn buf_api_exposes_exactly_the_named_buffers() {
    let (c, h) = guest(|p| {
        let (r, _, a) = p.syscall();
        p.send(Message::CopyinReq {
            reqno: 0,
            string: false,
            len: 2,
            addr: a[0],
        });
        assert_eq!(p.copyin_resp(0), b"io");
        p.send(Message::Copyout {
            reqno: 1,
            string: false,
            addr: a[0],
            data: b"IO",
        });
        p.send(Message::CopyinReq {
            reqno: 2,
            string: true,
            len: 10,
            addr: a[1],
        });
        assert_eq!(p.copyin_resp(2), b"s\0");
        p.ret(r, 0, [0, 0]);
    });
    let mut io = *b"io";
    let s = c"s";
    let mut bufs = [Buf::InOut(&mut io), Buf::Str(s)];
    let args = [bufs[0].addr(), bufs[1].addr()];
    assert_eq!(c.syscall(4000, &args, &mut bufs), Ok([0, 0]));
    assert_eq!(&io, b"IO");
    assert_eq!(
        c.shared.mem.region_count(),
        0,
        "the registry is empty after the call"
    );
    h.join().unwrap();
}

/// The crate docs' SIGPIPE paragraph: a call on a connection the server has
/// closed fails, and the process lives. Run in a child copy of this test
/// binary with SIGPIPE at its default action (which kills), so a signal
/// would show as the child's death.
#[test]
fn a_write_to_a_closed_server_is_an_error_not_sigpipe() {
    if std::env::var_os("SP_CLIENT_SIGPIPE_CHILD").is_some() {
        // SAFETY: restores the default disposition of SIGPIPE in this
        // single-purpose child process; no handler code is installed.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
        let (c, h) = guest(|_| {});
        // The script is done: the server's end is closed.
        h.join().unwrap();
        let e = c.call_detailed(Call::new(Sysnum::GETPID)).unwrap_err();
        assert!(
            matches!(
                &e,
                Error::Disconnected(DisconnectReason::Io { kind, .. })
                    if *kind == std::io::ErrorKind::BrokenPipe
            ),
            "{e}"
        );
        assert_eq!(e.errno(), Errno::ENOTCONN);
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new(exe)
        .args([
            "--exact",
            "tests::cycles::a_write_to_a_closed_server_is_an_error_not_sigpipe",
            "--nocapture",
        ])
        .env("SP_CLIENT_SIGPIPE_CHILD", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "child: {:?} {stdout} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}
