//! Message codec: every variant round-tripped, exact wire bytes from the
//! captures, every encoding cut short, and every fixed-size body given the
//! wrong size.

mod common;

use common::{
    decode, fixed_body_len, hex, parse_one, raw_header, samples, variant_index, with_body_len,
    COOKIE, VARIANTS,
};
use sp_proto::{
    comm_name, BodyError, Class, Deframer, ErrorCode, Frame, Handshake, HandshakeKind, Message,
    MsgType, DEFAULT_MAX_FRAME, HEADER_LEN, MAX_HEAD,
};

#[test]
fn samples_cover_every_variant() {
    let mut seen = [false; VARIANTS];
    for (_, m) in samples() {
        seen[variant_index(&m)] = true;
    }
    let missing: Vec<usize> = (0..VARIANTS).filter(|&i| !seen[i]).collect();
    assert!(missing.is_empty(), "variants without a sample: {missing:?}");
}

#[test]
fn every_variant_round_trips() {
    for (name, msg) in samples() {
        let bytes = msg.to_vec();
        assert_eq!(bytes.len(), msg.encoded_len(), "{name}: encoded_len");
        assert!(bytes.len() >= HEADER_LEN, "{name}: shorter than a header");

        let (frame, used) = Frame::parse(&bytes, DEFAULT_MAX_FRAME).unwrap().unwrap();
        assert_eq!(used, bytes.len(), "{name}: bytes used");
        assert_eq!(frame.header.len(), bytes.len() as u64, "{name}: header len");
        assert_eq!(frame.header.reqno(), msg.reqno(), "{name}: reqno");
        assert_eq!(frame.body.len(), bytes.len() - HEADER_LEN, "{name}: body");
        assert_eq!(frame.message(), Ok(msg), "{name}: decode");

        // The other ways to encode give the same bytes.
        let enc = msg.encode();
        assert_eq!(enc.len(), bytes.len(), "{name}: Encoded::len");
        assert!(!enc.is_empty());
        assert!(enc.head().len() <= MAX_HEAD, "{name}: head too large");
        assert_eq!(
            [enc.head(), enc.payload].concat(),
            bytes,
            "{name}: head + payload"
        );
        let mut buf = vec![0xAA; bytes.len() + 3];
        assert_eq!(
            enc.write_to(&mut buf),
            Some(bytes.len()),
            "{name}: write_to"
        );
        assert_eq!(&buf[..bytes.len()], &bytes[..]);
        assert_eq!(
            &buf[bytes.len()..],
            &[0xAA; 3],
            "{name}: write_to wrote past the frame"
        );
        assert_eq!(
            enc.write_to(&mut buf[..bytes.len() - 1]),
            None,
            "{name}: small buffer"
        );
        let mut out = b"prefix".to_vec();
        msg.encode_into(&mut out);
        assert_eq!(&out[..6], b"prefix");
        assert_eq!(&out[6..], &bytes[..], "{name}: encode_into appends");
    }
}

#[test]
fn payloads_are_borrowed_not_copied() {
    let m = Message::CopyinResp {
        reqno: 1,
        data: &common::PAGE,
    };
    let e = m.encode();
    assert_eq!(e.head().len(), HEADER_LEN);
    assert!(std::ptr::eq(e.payload, &common::PAGE[..]));
    let m = Message::Copyout {
        reqno: 1,
        string: false,
        addr: 8,
        data: &common::PAGE,
    };
    let e = m.encode();
    assert_eq!(e.head().len(), HEADER_LEN + 16);
    assert!(std::ptr::eq(e.payload, &common::PAGE[..]));
}

/// Exact frames taken from `shared/vectors` (the C client and server).
#[test]
fn exact_wire_bytes_from_the_captures() {
    let cases: &[(&str, Message<'_>)] = &[
        // getpid.jsonl: the guest handshake, its answer, getpid and its answer.
        (
            "240000000000000001000000000000000000000000000000637265665f636c69656e7400",
            Message::Handshake { reqno: 1, hs: Handshake::Guest { comm: b"cref_client\0" } },
        ),
        ("1c000000000000000100000000000000010000000000000000000000", Message::HandshakeResp {
            reqno: 1,
            error: 0,
        }),
        ("180000000000000002000000000000000000010014000000", Message::Syscall {
            reqno: 2,
            sysnum: 20,
            args: &[],
        }),
        // write.jsonl: COPYIN request and its answer.
        (
            "28000000000000000000000000000000000002000000000005000000000000009db4555555550000",
            Message::CopyinReq { reqno: 0, string: false, len: 5, addr: 0x5555_5555_b49d },
        ),
        ("1d000000000000000000000000000000010002000000000068656c6c6f", Message::CopyinResp {
            reqno: 0,
            data: b"hello",
        }),
        // open.jsonl: COPYINSTR request, answered with type COPYIN.
        (
            "280000000000000000000000000000000000030000000000000400000000000099b4555555550000",
            Message::CopyinReq { reqno: 0, string: true, len: 1024, addr: 0x5555_5555_b499 },
        ),
        ("1c00000000000000000000000000000001000200000000002f6f6b00", Message::CopyinResp {
            reqno: 0,
            data: b"/ok\0",
        }),
        // read.jsonl: COPYOUT of 16 bytes.
        (
            "3800000000000000000000000000000000000400000000001000000000000000e0e3ffffff7f0000\
             000102030405060708090a0b0c0d0e0f",
            Message::Copyout {
                reqno: 0,
                string: false,
                addr: 0x7fff_ffff_e3e0,
                data: &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
            },
        ),
        // anonmmap.jsonl.
        ("2000000000000000000000000000000000000600000000000000010000000000", Message::AnonmmapReq {
            reqno: 0,
            size: 65536,
        }),
        ("2000000000000000000000000000000001000600000000000020dcf7ff7f0000", Message::AnonmmapResp {
            reqno: 0,
            addr: 0x7fff_f7dc_2000,
        }),
        // raise.jsonl: signal 30 (NetBSD SIGUSR1) in the union word.
        ("18000000000000000000000000000000000008001e000000", Message::Raise { reqno: 0, signo: 30 }),
        // fork.jsonl: PREFORK, its cookie, the child's FORK handshake.
        ("180000000000000003000000000000000000070000000000", Message::Prefork { reqno: 3 }),
        (
            "2800000000000000030000000000000001000700000000001d67ac3afcfbdaf6df737f06e84d3160",
            Message::PreforkResp { reqno: 3, cookie: COOKIE },
        ),
        (
            "2c00000000000000010000000000000000000000020000001d67ac3afcfbdaf6df737f06e84d316000000000",
            Message::Handshake { reqno: 1, hs: Handshake::Fork { cookie: COOKIE, cancel: 0 } },
        ),
        // exec.jsonl: the EXEC handshake, reqno 0.
        (
            "240000000000000000000000000000000000000003000000637265665f636c69656e7400",
            Message::Handshake { reqno: 0, hs: Handshake::Exec { comm: b"cref_client\0" } },
        ),
        // err_handshake_auth.jsonl: the AUTH handshake and ERROR AUTH.
        (
            "1d00000000000000010000000000000000000000010000006372656600",
            Message::Handshake {
                reqno: 1,
                hs: Handshake::Other { kind: HandshakeKind::AUTH, body: b"cref\0" },
            },
        ),
        ("180000000000000001000000000000000200000002000000", Message::Error {
            reqno: 1,
            code: ErrorCode::AUTH,
        }),
    ];
    for (h, want) in cases {
        let bytes = hex(h);
        assert_eq!(decode(&bytes), Ok(*want), "decoding {h}");
        assert_eq!(want.to_vec(), bytes, "encoding {want:?}");
    }

    // getpid.jsonl: the SYSCALL response. The C server leaves bytes 28..32
    // (the padding after `error`) uninitialised; we send zeros.
    let captured =
        hex("30000000000000000200000000000000010001000000000000000000fe7e000002000000000000000000000000000000");
    let msg = decode(&captured).unwrap();
    assert_eq!(
        msg,
        Message::SyscallResp {
            reqno: 2,
            error: 0,
            retval: [2, 0]
        }
    );
    let ours = msg.to_vec();
    assert_eq!(ours[..28], captured[..28]);
    assert_eq!(ours[28..32], [0; 4]);
    assert_eq!(ours[32..], captured[32..]);
}

#[test]
fn header_accessors_read_the_union_word() {
    let f = hex("180000000000000002000000000000000000010014000000");
    let h = parse_one(&f).header;
    assert_eq!(
        (h.len(), h.reqno(), h.class(), h.typ(), h.sysnum()),
        (24, 2, Class::REQ, MsgType::SYSCALL, 20)
    );
    assert!(h.is_empty());
    let f = hex("18000000000000000000000000000000000008001e000000");
    assert_eq!(parse_one(&f).header.signo(), 30);
    let f = hex("180000000000000001000000000000000200000007000000");
    assert_eq!(parse_one(&f).header.error(), ErrorCode::MALFORMED_REQUEST);
    let f = hex("240000000000000000000000000000000000000003000000637265665f636c69656e7400");
    let h = parse_one(&f).header;
    assert_eq!(h.handshake(), HandshakeKind::EXEC);
    assert!(!h.is_empty());
    assert_eq!(h.u(), 3);
}

#[test]
fn every_cut_needs_more_bytes() {
    for (name, msg) in samples() {
        let bytes = msg.to_vec();
        for cut in 0..bytes.len() {
            assert_eq!(
                Frame::parse(&bytes[..cut], DEFAULT_MAX_FRAME),
                Ok(None),
                "{name}: cut at {cut} of {}",
                bytes.len()
            );
            let mut d = Deframer::new(DEFAULT_MAX_FRAME);
            d.push(&bytes[..cut]);
            assert_eq!(d.next_frame(), Ok(None), "{name}: deframer, cut at {cut}");
            assert_eq!(d.is_mid_frame(), cut > 0);
            assert_eq!(d.buffered(), cut);
        }
    }
}

/// A fixed-size body of any other size is a typed error; variable bodies
/// (syscall arguments, copyin data, comm) take other sizes as they come.
#[test]
fn patched_length_fixed_bodies_are_refused() {
    let mut fixed_checked = 0;
    for (name, msg) in samples() {
        let bytes = msg.to_vec();
        let body = bytes.len() - HEADER_LEN;
        let h = parse_one(&bytes).header;
        let (class, typ) = (h.class(), h.typ());
        for got in 0..=body + 24 {
            if got == body {
                continue;
            }
            let patched = with_body_len(&bytes, got);
            let frame = parse_one(&patched);
            assert_eq!(frame.body.len(), got);
            let res = frame.message();
            if let Some(expected) = fixed_body_len(&msg) {
                assert_eq!(expected, body, "{name}: sample has the wrong size");
                assert_eq!(
                    res,
                    Err(BodyError::BadSize {
                        class,
                        typ,
                        expected,
                        got
                    }),
                    "{name}: body of {got} instead of {expected}"
                );
                fixed_checked += 1;
                continue;
            }
            match msg {
                Message::Copyout { data, .. } => {
                    let want = if got < 16 {
                        BodyError::BadSize {
                            class,
                            typ,
                            expected: 16,
                            got,
                        }
                    } else {
                        BodyError::CopyoutLength {
                            announced: data.len() as u64,
                            got: got - 16,
                        }
                    };
                    assert_eq!(res, Err(want), "{name}: body of {got}");
                }
                Message::Syscall { reqno, sysnum, .. } => assert_eq!(
                    res,
                    Ok(Message::Syscall {
                        reqno,
                        sysnum,
                        args: &patched[HEADER_LEN..]
                    }),
                    "{name}: args of {got} bytes"
                ),
                Message::CopyinResp { reqno, .. } => assert_eq!(
                    res,
                    Ok(Message::CopyinResp {
                        reqno,
                        data: &patched[HEADER_LEN..]
                    }),
                    "{name}: data of {got} bytes"
                ),
                Message::Handshake { reqno, hs } => {
                    let b = &patched[HEADER_LEN..];
                    let want = match hs {
                        Handshake::Guest { .. } | Handshake::Exec { .. }
                            if comm_name(b).is_empty() =>
                        {
                            Err(BodyError::EmptyComm(hs.kind()))
                        }
                        Handshake::Guest { .. } => Ok(Message::Handshake {
                            reqno,
                            hs: Handshake::Guest { comm: b },
                        }),
                        Handshake::Exec { .. } => Ok(Message::Handshake {
                            reqno,
                            hs: Handshake::Exec { comm: b },
                        }),
                        Handshake::Other { kind, .. } => Ok(Message::Handshake {
                            reqno,
                            hs: Handshake::Other { kind, body: b },
                        }),
                        Handshake::Fork { .. } => unreachable!("FORK has a fixed size"),
                    };
                    assert_eq!(res, want, "{name}: body of {got}");
                }
                Message::SyscallSeg { .. } => {
                    // The trailer accounts for every byte: a body cut or
                    // padded with zeros never parses.
                    assert!(
                        matches!(res, Err(BodyError::Segments(_))),
                        "{name}: body of {got} gave {res:?}"
                    );
                }
                other => panic!("{name}: {other:?} has neither a fixed nor a known variable size"),
            }
        }
    }
    assert!(
        fixed_checked > 200,
        "only {fixed_checked} fixed-size cases checked"
    );
}

#[test]
fn copyout_length_field_must_match_its_data() {
    let mut f = Message::Copyout {
        reqno: 0,
        string: false,
        addr: 0x10,
        data: b"abcd",
    }
    .to_vec();
    // Announce 5 bytes but carry 4.
    f[24..32].copy_from_slice(&5u64.to_le_bytes());
    assert_eq!(
        decode(&f),
        Err(BodyError::CopyoutLength {
            announced: 5,
            got: 4
        })
    );
    f[24..32].copy_from_slice(&u64::MAX.to_le_bytes());
    assert_eq!(
        decode(&f),
        Err(BodyError::CopyoutLength {
            announced: u64::MAX,
            got: 4
        })
    );
    f[24..32].copy_from_slice(&3u64.to_le_bytes());
    assert_eq!(
        decode(&f),
        Err(BodyError::CopyoutLength {
            announced: 3,
            got: 4
        })
    );
}

#[test]
fn empty_comm_is_refused_for_guest_and_exec() {
    for kind in [HandshakeKind::GUEST, HandshakeKind::EXEC] {
        // The captures' case: len 24, no body at all.
        let f = raw_header(24, 1, 0, 0, kind.0);
        assert_eq!(decode(&f), Err(BodyError::EmptyComm(kind)));
        // A body that is only a NUL (or starts with one) names nothing.
        for body in [&b"\0"[..], b"\0\0\0", b"\0abc"] {
            let mut f = raw_header((HEADER_LEN + body.len()) as u64, 1, 0, 0, kind.0);
            f.extend_from_slice(body);
            assert_eq!(
                decode(&f),
                Err(BodyError::EmptyComm(kind)),
                "{kind} {body:?}"
            );
        }
        // A name without a NUL is still a name.
        let mut f = raw_header(27, 1, 0, 0, kind.0);
        f.extend_from_slice(b"abc");
        let m = decode(&f).unwrap();
        let Message::Handshake { hs, .. } = m else {
            panic!("{m:?}")
        };
        assert_eq!(hs.kind(), kind);
    }
}

#[test]
fn comm_name_stops_at_the_first_nul() {
    assert_eq!(comm_name(b"cref_client\0"), b"cref_client");
    assert_eq!(comm_name(b"a\0b\0"), b"a");
    assert_eq!(comm_name(b"nonul"), b"nonul");
    assert_eq!(comm_name(b"\0x"), b"");
    assert_eq!(comm_name(b""), b"");
}

/// Every (class, type) pair with an empty body: known pairs decode or give
/// a size error, unknown ones the right typed error; nothing panics.
#[test]
fn unknown_class_and_type_are_typed_errors() {
    for class in 0u16..8 {
        for typ in 0u16..12 {
            let f = raw_header(24, 9, class, typ, 0);
            let res = decode(&f);
            let (c, t) = (Class(class), MsgType(typ));
            match class {
                0 if typ > 8 => assert_eq!(res, Err(BodyError::UnknownType { class: c, typ: t })),
                1 if !matches!(typ, 0 | 1 | 2 | 3 | 6 | 7) => {
                    assert_eq!(
                        res,
                        Err(BodyError::UnknownType { class: c, typ: t }),
                        "RESP type {typ}"
                    )
                }
                // ERROR frames carry any type; it is not checked.
                2 => assert_eq!(
                    res,
                    Ok(Message::Error {
                        reqno: 9,
                        code: ErrorCode::NONE
                    })
                ),
                0 | 1 => {
                    if let Err(e) = res {
                        assert!(
                            matches!(e, BodyError::BadSize { .. } | BodyError::EmptyComm(_)),
                            "{c}/{t}: {e}"
                        );
                    }
                }
                _ => assert_eq!(res, Err(BodyError::UnknownClass(c))),
            }
        }
    }
    // The captures' class 5 frame, with a body.
    let f = hex("1d00000000000000010000000000000005000000000000006372656600");
    assert_eq!(decode(&f), Err(BodyError::UnknownClass(Class(5))));
    // An ERROR frame with a body is malformed.
    let mut f = raw_header(25, 1, 2, 0, 7);
    f.push(0);
    assert_eq!(
        decode(&f),
        Err(BodyError::BadSize {
            class: Class::ERROR,
            typ: MsgType(0),
            expected: 0,
            got: 1
        })
    );
}

#[test]
fn errors_and_codes_print_usefully() {
    assert_eq!(format!("{:?}", Class(5)), "Class(5)");
    assert_eq!(Class::RESP.to_string(), "RESP");
    assert_eq!(MsgType::COPYINSTR.name(), Some("COPYINSTR"));
    assert!(!MsgType(9).is_known());
    assert_eq!(HandshakeKind::FORK.to_string(), "FORK");
    assert_eq!(ErrorCode(99).to_string(), "ErrorCode(99)");
    let e = BodyError::BadSize {
        class: Class::REQ,
        typ: MsgType::HANDSHAKE,
        expected: 20,
        got: 16,
    };
    assert_eq!(e.to_string(), "HANDSHAKE REQ body of 16 bytes, expected 20");
    assert_eq!(
        BodyError::EmptyComm(HandshakeKind::EXEC).to_string(),
        "EXEC handshake without a process name"
    );
    assert_eq!(
        BodyError::UnknownClass(Class(5)).to_string(),
        "unknown frame class Class(5)"
    );
}

#[test]
fn error_codes_map_to_the_errnos_a_c_peer_uses() {
    use sp_proto::Errno;
    let table = [
        (ErrorCode::NONE, Errno(0)),
        (ErrorCode::TRYAGAIN, Errno::EAGAIN),
        (ErrorCode::AUTH, Errno::EPERM),
        (ErrorCode::INVALID_PREFORK, Errno::ESRCH),
        (ErrorCode::RFORK_FAILED, Errno::EIO),
        (ErrorCode::INEXEC, Errno::EBUSY),
        (ErrorCode::NOMEM, Errno::ENOMEM),
        (ErrorCode::MALFORMED_REQUEST, Errno::EINVAL),
        (ErrorCode(1000), Errno::EINVAL),
    ];
    for (code, errno) in table {
        assert_eq!(code.to_errno(), errno, "{code}");
    }
    // NetBSD's numbers, not the host's.
    assert_eq!(
        (Errno::EAGAIN.0, Errno::ENOSYS.0, Errno::ENOENT.0),
        (35, 78, 2)
    );
}
