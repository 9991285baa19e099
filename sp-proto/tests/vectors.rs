//! Every unit of the reference captures in `shared/vectors` (the NetBSD C
//! client and server talking to each other) decoded into a typed message and
//! encoded again, byte for byte except the bytes `vectors/README.md` calls
//! nondeterministic; the deliberately malformed units give the right typed
//! error instead.
//!
//! The folder is `../../shared/vectors` from this crate (the repository is
//! cloned with `shared/` beside it), or `$SP_VECTORS_DIR`. A missing or
//! thin folder fails the test: it never passes vacuously.

mod common;

use serde_json::Value;
use sp_proto::capture::{self, to_hex, Dir, Unit};
use sp_proto::{
    Banner, BodyError, Class, DecodeError, Deframer, Frame, HandshakeKind, Message, MsgType,
    DEFAULT_MAX_FRAME,
};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The captures hold at least this many scenarios.
const MIN_FILES: usize = 25;

fn vectors_dir() -> PathBuf {
    match std::env::var_os("SP_VECTORS_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/vectors")),
    }
}

/// What a malformed unit must produce.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Refused {
    Frame(DecodeError),
    Body(BodyError),
}

/// The deliberately malformed units: file, line number (1-based), error.
fn malformed() -> Vec<(&'static str, usize, Refused)> {
    use Refused::{Body, Frame};
    let (req, hs) = (Class::REQ, MsgType::HANDSHAKE);
    vec![
        ("err_len16.jsonl", 3, Frame(DecodeError::TooShort(16))),
        (
            "err_len2pow40.jsonl",
            3,
            Frame(DecodeError::TooLong {
                len: 1 << 40,
                max: DEFAULT_MAX_FRAME,
            }),
        ),
        (
            "err_guest_handshake_empty_body.jsonl",
            3,
            Body(BodyError::EmptyComm(HandshakeKind::GUEST)),
        ),
        (
            "err_exec_handshake_empty_body.jsonl",
            5,
            Body(BodyError::EmptyComm(HandshakeKind::EXEC)),
        ),
        (
            "err_class5_before_handshake.jsonl",
            3,
            Body(BodyError::UnknownClass(Class(5))),
        ),
        (
            "err_class5_after_handshake.jsonl",
            5,
            Body(BodyError::UnknownClass(Class(5))),
        ),
        (
            "err_type9_before_handshake.jsonl",
            3,
            Body(BodyError::UnknownType {
                class: req,
                typ: MsgType(9),
            }),
        ),
        (
            "err_type9_after_handshake.jsonl",
            5,
            Body(BodyError::UnknownType {
                class: req,
                typ: MsgType(9),
            }),
        ),
        (
            "err_handshake_fork_short_body.jsonl",
            3,
            Body(BodyError::BadSize {
                class: req,
                typ: hs,
                expected: 20,
                got: 16,
            }),
        ),
    ]
}

/// Whether the side that sent this message is the client.
fn sent_by_client(m: &Message<'_>) -> bool {
    match m {
        Message::Handshake { .. }
        | Message::Syscall { .. }
        | Message::Prefork { .. }
        | Message::CopyinResp { .. }
        | Message::AnonmmapResp { .. }
        | Message::ExtHello { .. }
        | Message::SyscallSeg { .. } => true,
        Message::HandshakeResp { .. }
        | Message::SyscallResp { .. }
        | Message::PreforkResp { .. }
        | Message::CopyinReq { .. }
        | Message::Copyout { .. }
        | Message::AnonmmapReq { .. }
        | Message::Raise { .. }
        | Message::ExtHelloResp { .. }
        | Message::Error { .. } => false,
    }
}

#[derive(Default)]
struct Tally {
    files: usize,
    unit_lines: usize,
    banners: usize,
    reencoded: usize,
    padding_masked: usize,
    refused: usize,
}

fn jsonl_files(dir: &Path) -> Vec<PathBuf> {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| {
        panic!(
            "capture folder {} is missing ({e}); it is shared/vectors beside the repository, \
             or set SP_VECTORS_DIR",
            dir.display()
        )
    });
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    files.sort();
    assert!(
        files.len() >= MIN_FILES,
        "capture folder {} holds {} jsonl files, expected at least {MIN_FILES}",
        dir.display(),
        files.len()
    );
    files
}

#[test]
fn every_captured_unit_decodes_and_reencodes() {
    let dir = vectors_dir();
    let expected_errors = malformed();
    let mut seen_errors = BTreeSet::new();
    let mut t = Tally::default();

    for path in jsonl_files(&dir) {
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        let cap = capture::parse(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        let meta: Value =
            serde_json::from_str(&cap.meta).unwrap_or_else(|e| panic!("{name}:1: {e}"));
        assert!(
            meta["scenario"].is_string(),
            "{name}: line 1 is not the scenario header"
        );
        t.files += 1;

        let units = cap.units;
        for u in &units {
            assert_eq!(
                u.conn.is_none(),
                name.starts_with("err_"),
                "{name}:{}: conn key",
                u.line
            );
        }
        t.unit_lines += units.len();

        let mut responses = Vec::new();
        for u in &units {
            let at = format!("{name}:{} ({} conn {})", u.line, u.dir.as_str(), u.conn());
            let want_err = expected_errors
                .iter()
                .find(|(f, l, _)| *f == name && *l == u.line)
                .map(|(_, _, e)| *e);

            if u.is_banner() {
                let b = Banner::parse(&u.bytes).unwrap_or_else(|e| panic!("{at}: banner: {e}"));
                b.check_supported().unwrap();
                assert_eq!(b.format().unwrap(), u.bytes, "{at}: banner re-encoded");
                t.banners += 1;
                continue;
            }

            let refused = match Frame::parse(&u.bytes, DEFAULT_MAX_FRAME) {
                Err(e) => Some(Refused::Frame(e)),
                Ok(None) => panic!("{at}: not a whole frame: {}", to_hex(&u.bytes)),
                Ok(Some((frame, used))) => {
                    assert_eq!(used, u.bytes.len(), "{at}: unit is more than one frame");
                    match frame.message() {
                        Err(e) => Some(Refused::Body(e)),
                        Ok(m) => {
                            assert_eq!(
                                sent_by_client(&m),
                                u.dir == Dir::C2s,
                                "{at}: {m:?} sent the wrong way"
                            );
                            let ours = m.to_vec();
                            assert_eq!(ours.len(), u.bytes.len(), "{at}: re-encoded length");
                            // Bytes 28..32 of a SYSCALL response are padding the
                            // C server never initialises; we send zeros. All
                            // else (cookies, addresses) is echoed exactly.
                            let skip = if matches!(m, Message::SyscallResp { .. }) {
                                assert_eq!(ours[28..32], [0; 4], "{at}: our padding");
                                t.padding_masked += 1;
                                28..32
                            } else {
                                0..0
                            };
                            for (i, (a, b)) in ours.iter().zip(&u.bytes).enumerate() {
                                assert!(
                                    skip.contains(&i) || a == b,
                                    "{at}: byte {i} differs\n  captured {}\n  ours     {}",
                                    to_hex(&u.bytes),
                                    to_hex(&ours)
                                );
                            }
                            if u.dir == Dir::S2c {
                                let h = frame.header;
                                responses.push((h.len(), h.reqno(), h.class().0, h.typ().0, h.u()));
                            }
                            t.reencoded += 1;
                            None
                        }
                    }
                }
            };
            assert_eq!(refused, want_err, "{at}: {}", to_hex(&u.bytes));
            if let Some(e) = refused {
                seen_errors.insert((name.clone(), u.line));
                t.refused += 1;
                eprintln!("{at}: refused as expected: {e:?}");
            }
        }

        // The error scenarios list what the server answered; it must be
        // exactly the s2c frames decoded above.
        if let Some(Value::Array(listed)) = meta.get("responses_after_input") {
            let listed: Vec<_> = listed
                .iter()
                .map(|r| {
                    let n = |k: &str| {
                        r[k].as_u64()
                            .unwrap_or_else(|| panic!("{name}: response without {k}"))
                    };
                    (
                        n("len"),
                        n("reqno"),
                        n("class") as u16,
                        n("type") as u16,
                        n("u") as u32,
                    )
                })
                .collect();
            assert_eq!(responses, listed, "{name}: responses_after_input");
        }
        if let Some(n) = meta.get("connections").and_then(Value::as_u64) {
            let conns: BTreeSet<u64> = units.iter().map(Unit::conn).collect();
            assert_eq!(conns.len() as u64, n, "{name}: connections");
        }

        replay_streams(&name, &units);
    }

    let missed: Vec<_> = expected_errors
        .iter()
        .filter(|(f, l, _)| !seen_errors.contains(&(f.to_string(), *l)))
        .collect();
    assert!(
        missed.is_empty(),
        "malformed units not found in the captures: {missed:?}"
    );

    let checked = t.banners + t.reencoded + t.refused;
    println!(
        "{} capture files, {checked} units checked: {} banners, {} frames re-encoded \
         ({} with the SYSCALL response padding masked), {} refused with the expected error",
        t.files, t.banners, t.reencoded, t.padding_masked, t.refused
    );
    assert_eq!(checked, t.unit_lines, "every unit line must be checked");
    assert_eq!(t.refused, expected_errors.len());
    assert!(t.reencoded >= 80, "only {} frames re-encoded", t.reencoded);
}

/// Each direction of each connection, fed to a `Deframer` as one stream in
/// small chunks, gives back the units one by one (and stops at a unit whose
/// length is refused, with that error).
fn replay_streams(name: &str, units: &[Unit]) {
    let mut streams: BTreeMap<(u64, &str), Vec<&Unit>> = BTreeMap::new();
    for u in units {
        if !u.is_banner() {
            streams
                .entry((u.conn(), u.dir.as_str()))
                .or_default()
                .push(u);
        }
    }
    for ((conn, dir), us) in streams {
        let all: Vec<u8> = us.iter().flat_map(|u| u.bytes.iter().copied()).collect();
        let mut d = Deframer::new(DEFAULT_MAX_FRAME);
        let mut next = us.iter();
        for chunk in all.chunks(5) {
            d.push(chunk);
            loop {
                match d.next_frame() {
                    Ok(Some(f)) => {
                        let u = next
                            .next()
                            .unwrap_or_else(|| panic!("{name} {dir} {conn}: extra frame"));
                        assert_eq!(
                            common::frame_bytes(&f),
                            u.bytes,
                            "{name}:{}: deframed",
                            u.line
                        );
                    }
                    Ok(None) => break,
                    Err(e) => {
                        let u = next.next().unwrap();
                        assert_eq!(
                            Frame::parse(&u.bytes, DEFAULT_MAX_FRAME),
                            Err(e),
                            "{name}:{}",
                            u.line
                        );
                        assert!(
                            next.next().is_none(),
                            "{name}:{}: units after a fatal length",
                            u.line
                        );
                        return;
                    }
                }
            }
        }
        assert!(
            next.next().is_none(),
            "{name} {dir} {conn}: frames left undecoded"
        );
        assert!(!d.is_mid_frame());
    }
}

#[test]
fn a_missing_folder_fails_loudly() {
    let r = std::panic::catch_unwind(|| jsonl_files(Path::new("/nonexistent/sp-vectors")));
    let msg = *r.unwrap_err().downcast::<String>().unwrap();
    assert!(msg.contains("missing"), "{msg}");
    // A folder without enough captures fails too.
    let r = std::panic::catch_unwind(|| jsonl_files(Path::new(env!("CARGO_MANIFEST_DIR"))));
    let msg = *r.unwrap_err().downcast::<String>().unwrap();
    assert!(msg.contains("expected at least"), "{msg}");
}

/// The capture parser reads every line of every capture as a JSON parser
/// does (its grammar is a small subset of JSON, written by hand).
#[test]
fn the_capture_parser_agrees_with_a_json_parser() {
    let mut units = 0;
    for path in jsonl_files(&vectors_dir()) {
        let text = std::fs::read_to_string(&path).unwrap();
        let cap = capture::parse(&text).unwrap();
        let json: Vec<(usize, Value)> = text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| (i + 1, serde_json::from_str(l).unwrap()))
            .collect();
        assert_eq!(serde_json::from_str::<Value>(&cap.meta).unwrap(), json[0].1);
        assert_eq!(cap.units.len(), json.len() - 1);
        for (u, (line, v)) in cap.units.iter().zip(&json[1..]) {
            assert_eq!(u.line, *line);
            assert_eq!(u.conn, v.get("conn").map(|c| c.as_u64().unwrap()));
            assert_eq!(u.dir.as_str(), v["dir"].as_str().unwrap());
            assert_eq!(to_hex(&u.bytes), v["hex"].as_str().unwrap().to_lowercase());
            assert_eq!(
                v.as_object().unwrap().len(),
                2 + usize::from(u.conn.is_some())
            );
            units += 1;
        }
    }
    assert!(units >= 129, "{units}");
}
