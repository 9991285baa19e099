//! The reference captures in `../shared/vectors`: loading, and replaying a
//! capture's client side against a server while comparing what the server
//! says with what the reference said.

use crate::rawpeer::{RawPeer, Recv};
use sp_proto::capture::{self, mask, to_hex, Dir, Unit};
use sp_proto::{Class, Header, MsgType};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// One capture file, parsed by [`sp_proto::capture::parse`], with its
/// name and its scenario line read as JSON.
#[derive(Clone, Debug)]
pub struct Capture {
    /// The scenario name (the file stem).
    pub name: String,
    /// The description line.
    pub meta: serde_json::Value,
    /// The units in the order they crossed the proxy.
    pub units: Vec<Unit>,
}

/// Where the captures are: `SP_VECTORS_DIR`, else `../shared/vectors`
/// beside the repository.
pub fn vectors_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("SP_VECTORS_DIR") {
        return PathBuf::from(d);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/vectors")
}

/// Loads every capture, sorted by name. Panics (loudly) if the folder is
/// missing or holds fewer than 25 captures: a test must not pass vacuously.
pub fn load_all() -> Vec<Capture> {
    let dir = vectors_dir();
    let rd = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("capture folder {} is missing: {e}", dir.display()));
    let mut files: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 25,
        "expected at least 25 captures in {}, found {}",
        dir.display(),
        files.len()
    );
    files.iter().map(|p| load(p)).collect()
}

/// Loads one capture file. Panics (naming the file and line) if it does
/// not parse.
pub fn load(path: &Path) -> Capture {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let cap = capture::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let meta = serde_json::from_str(&cap.meta)
        .unwrap_or_else(|e| panic!("{}: the scenario line: {e}", path.display()));
    let name = path.file_stem().unwrap().to_string_lossy().into_owned();
    Capture {
        name,
        meta,
        units: cap.units,
    }
}

impl Capture {
    /// Whether this is one of the error-case captures.
    pub fn is_error_case(&self) -> bool {
        self.name.starts_with("err_")
    }

    /// The banner line the reference server sent.
    pub fn banner(&self) -> &[u8] {
        &self
            .units
            .iter()
            .find(|u| u.is_banner())
            .expect("a banner")
            .bytes
    }

    /// Whether the reference crashed on this input (we must answer instead).
    pub fn reference_crashed(&self) -> bool {
        self.meta.get("server_death").is_some_and(|d| !d.is_null())
    }
}

/// Replays `cap`'s client frames against the server at `url` and checks
/// every server unit against the capture. Returns the number of units
/// compared. Error captures are followed to their end: the connection must
/// be closed or left open as the reference did (or, where the reference
/// crashed, answered with ERROR MALFORMED_REQUEST and closed).
pub fn replay(cap: &Capture, url: &str) -> Result<usize, String> {
    let mut peers: HashMap<u64, RawPeer> = HashMap::new();
    let mut cookie: Option<[u8; 16]> = None;
    let mut compared = 0;
    let mut handshaken = false;
    for (i, u) in cap.units.iter().enumerate() {
        let ctx = |what: String| format!("{} unit {i} (conn {}): {what}", cap.name, u.conn());
        let peer = match peers.entry(u.conn()) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(RawPeer::connect(url).map_err(|e| ctx(format!("connect: {e}")))?)
            }
        };
        match u.dir {
            Dir::C2s => {
                let mut bytes = u.bytes.clone();
                // A fork handshake presents the cookie this run handed out.
                if let (Some(c), Some(h)) = (cookie, Header::read(&bytes)) {
                    if h.class() == Class::REQ
                        && h.typ() == MsgType::HANDSHAKE
                        && h.u() == 2
                        && bytes.len() == 44
                    {
                        bytes[24..40].copy_from_slice(&c);
                    }
                }
                peer.send(&bytes).map_err(|e| ctx(format!("send: {e}")))?;
            }
            Dir::S2c if u.is_banner() => {
                let got = peer
                    .read_banner()
                    .map_err(|e| ctx(format!("banner: {e}")))?;
                if got != u.bytes {
                    return Err(ctx(format!(
                        "banner {:?}, expected {:?}",
                        lossy(&got),
                        lossy(&u.bytes)
                    )));
                }
                compared += 1;
            }
            Dir::S2c => {
                let mut got = match peer.recv().map_err(|e| ctx(format!("recv: {e}")))? {
                    Recv::Frame(f) => f,
                    Recv::Closed => return Err(ctx("server closed the connection".into())),
                };
                if let Some(h) = Header::read(&got) {
                    handshaken |= h.class() == Class::RESP && h.typ() == MsgType::HANDSHAKE;
                    if h.class() == Class::RESP && h.typ() == MsgType::PREFORK && got.len() == 40 {
                        cookie = Some(got[24..40].try_into().unwrap());
                    }
                }
                let mut want = u.bytes.clone();
                mask(&mut got);
                mask(&mut want);
                if got != want {
                    return Err(ctx(format!(
                        "got {}, expected {}",
                        to_hex(&got),
                        to_hex(&want)
                    )));
                }
                compared += 1;
            }
        }
    }
    if cap.is_error_case() {
        let peer = peers.get_mut(&0).ok_or("no connection")?;
        if cap.reference_crashed() {
            // We answer what the reference crashed on, and close.
            let last_reqno = cap
                .units
                .iter()
                .rev()
                .find(|u| u.dir == Dir::C2s)
                .and_then(|u| Header::read(&u.bytes))
                .map(|h| h.reqno())
                .unwrap_or(0);
            let want = sp_proto::Message::Error {
                reqno: last_reqno,
                code: sp_proto::ErrorCode::MALFORMED_REQUEST,
            }
            .to_vec();
            let got = peer
                .recv_frame()
                .map_err(|e| format!("{}: expected an ERROR answer: {e}", cap.name))?;
            if got != want {
                return Err(format!(
                    "{}: got {}, expected {}",
                    cap.name,
                    to_hex(&got),
                    to_hex(&want)
                ));
            }
            compared += 1;
            peer.expect_closed()
                .map_err(|e| format!("{}: expected a close: {e}", cap.name))?;
        } else if cap.meta["connection_closed_by_server"] == true {
            match peer.recv().map_err(|e| format!("{}: {e}", cap.name))? {
                Recv::Closed => {}
                Recv::Frame(f) => {
                    return Err(format!(
                        "{}: unexpected frame {} instead of a close",
                        cap.name,
                        to_hex(&f)
                    ))
                }
            }
        } else {
            // Still open: a getpid on the same connection is answered.
            if !handshaken {
                let hs = sp_proto::Message::Handshake {
                    reqno: 999,
                    hs: sp_proto::Handshake::Guest { comm: b"probe\0" },
                };
                peer.send_msg(&hs)
                    .map_err(|e| format!("{}: {e}", cap.name))?;
                let f = peer
                    .recv_msg()
                    .map_err(|e| format!("{}: connection not usable: {e}", cap.name))?;
                if f.message()
                    != Some(sp_proto::Message::HandshakeResp {
                        reqno: 999,
                        error: 0,
                    })
                {
                    return Err(format!(
                        "{}: handshake after the error refused: {}",
                        cap.name,
                        to_hex(&f.0)
                    ));
                }
            }
            let reqno = 1000;
            let (err, _) = peer
                .syscall(reqno, 20, &[])
                .map_err(|e| format!("{}: connection not usable: {e}", cap.name))?;
            if err != 0 {
                return Err(format!("{}: getpid failed with {err}", cap.name));
            }
        }
    }
    Ok(compared)
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}
