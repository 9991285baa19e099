//! The byte captures of the reference implementation (`shared/vectors`,
//! format in its `README.md`), parsed from their text: no file is read
//! here, the caller hands in the contents.
//!
//! A capture is JSON lines. Line 1 describes the scenario (kept as its
//! text, for the caller to read with a JSON library); every other
//! non-blank line is one protocol unit, `{"conn": N, "dir": "c2s"|"s2c",
//! "hex": "..."}`, the banner or one whole frame, in the order the units
//! crossed the proxy. `conn` is absent from the single-connection `err_*`
//! captures.
//!
//! ```
//! use sp_proto::capture::{self, Dir};
//!
//! let text = "{\"scenario\": \"getpid\"}\n\
//!             {\"conn\": 0, \"dir\": \"s2c\", \"hex\": \"52554d5053502d0a\"}\n\
//!             {\"dir\": \"c2s\", \"hex\": \"1800\"}\n";
//! let cap = capture::parse(text)?;
//! assert_eq!(cap.meta, "{\"scenario\": \"getpid\"}");
//! assert_eq!(cap.banner(), Some(&b"RUMPSP-\n"[..]));
//! let u = &cap.units[1];
//! assert_eq!((u.line, u.conn, u.dir, &u.bytes[..]), (3, None, Dir::C2s, &[0x18, 0][..]));
//! # Ok::<(), capture::CaptureError>(())
//! ```
//!
//! Built with the `capture` feature: the test suites of the crates that
//! replay the captures enable it.

use crate::wire::{Class, Header, MsgType, HEADER_LEN};

/// Which way a unit went.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dir {
    /// Client to server (`"c2s"`).
    C2s,
    /// Server to client (`"s2c"`).
    S2c,
}

impl Dir {
    /// The direction's name in the capture: `"c2s"` or `"s2c"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Dir::C2s => "c2s",
            Dir::S2c => "s2c",
        }
    }
}

/// One protocol unit: the banner line or one whole frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unit {
    /// Its line in the capture, from 1 (line 1 is the scenario).
    pub line: usize,
    /// The `conn` key: the connection within the scenario, numbered from
    /// 0; `None` where the capture has a single connection and no key.
    pub conn: Option<u64>,
    /// Direction.
    pub dir: Dir,
    /// The bytes.
    pub bytes: Vec<u8>,
}

impl Unit {
    /// The connection number (0 when the capture gives none).
    pub fn conn(&self) -> u64 {
        self.conn.unwrap_or(0)
    }

    /// Whether this is the server's banner line.
    pub fn is_banner(&self) -> bool {
        self.dir == Dir::S2c && self.bytes.starts_with(b"RUMPSP-")
    }
}

/// One capture file, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Capture {
    /// Line 1, the scenario's description: a JSON object, as text.
    pub meta: String,
    /// The units, in the order they crossed the proxy.
    pub units: Vec<Unit>,
}

impl Capture {
    /// The first banner the server sent, if any.
    pub fn banner(&self) -> Option<&[u8]> {
        self.units
            .iter()
            .find(|u| u.is_banner())
            .map(|u| &u.bytes[..])
    }
}

/// Why a capture did not parse: the line (from 1) and what is wrong there.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("capture line {line}: {reason}")]
pub struct CaptureError {
    /// The line, from 1.
    pub line: usize,
    /// What is wrong with it.
    pub reason: Reason,
}

/// What is wrong with a capture line.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Reason {
    /// The text has no line at all.
    #[error("no scenario line")]
    Empty,
    /// The line is not the flat JSON object the format has.
    #[error("{0}")]
    Syntax(&'static str),
    /// A key the format does not have.
    #[error("unknown key {0:?}")]
    UnknownKey(String),
    /// A key given twice.
    #[error("key {0:?} given twice")]
    DuplicateKey(&'static str),
    /// A unit without `dir` or `hex`.
    #[error("no {0:?} key")]
    MissingKey(&'static str),
    /// `dir` is neither `"c2s"` nor `"s2c"`.
    #[error("dir {0:?} is neither c2s nor s2c")]
    BadDir(String),
    /// `hex` is not an even number of hex digits.
    #[error("hex is not an even number of hex digits")]
    BadHex,
    /// `conn` is not an unsigned integer.
    #[error("conn is not an unsigned integer")]
    BadConn,
}

/// Parses a capture's text.
pub fn parse(text: &str) -> Result<Capture, CaptureError> {
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty());
    let err = |line, reason| CaptureError { line, reason };
    let (n, meta) = lines.next().ok_or(err(1, Reason::Empty))?;
    if !(meta.starts_with('{') && meta.ends_with('}')) {
        return Err(err(
            n,
            Reason::Syntax("the scenario line is not a JSON object"),
        ));
    }
    let units = lines
        .map(|(n, l)| {
            parse_unit(l)
                .map_err(|r| err(n, r))
                .map(|u| Unit { line: n, ..u })
        })
        .collect::<Result<_, _>>()?;
    Ok(Capture {
        meta: meta.to_owned(),
        units,
    })
}

/// One unit line (its `line` is filled in by the caller).
fn parse_unit(l: &str) -> Result<Unit, Reason> {
    let mut p = Cursor(l.as_bytes());
    let (mut conn, mut dir, mut hex) = (None, None, None);
    p.expect(b'{', "a unit is not a JSON object")?;
    loop {
        let key = p.string()?;
        p.expect(b':', "expected ':' after a key")?;
        match key {
            "conn" => set(&mut conn, "conn", p.number()?)?,
            "dir" => {
                let d = match p.string()? {
                    "c2s" => Dir::C2s,
                    "s2c" => Dir::S2c,
                    other => return Err(Reason::BadDir(other.to_owned())),
                };
                set(&mut dir, "dir", d)?;
            }
            "hex" => set(&mut hex, "hex", unhex(p.string()?).ok_or(Reason::BadHex)?)?,
            other => return Err(Reason::UnknownKey(other.to_owned())),
        }
        if !p.eat(b',') {
            break;
        }
    }
    p.expect(b'}', "expected ',' or '}'")?;
    if !p.0.is_empty() {
        return Err(Reason::Syntax("text after the object"));
    }
    Ok(Unit {
        line: 0,
        conn,
        dir: dir.ok_or(Reason::MissingKey("dir"))?,
        bytes: hex.ok_or(Reason::MissingKey("hex"))?,
    })
}

fn set<T>(slot: &mut Option<T>, key: &'static str, v: T) -> Result<(), Reason> {
    if slot.replace(v).is_some() {
        return Err(Reason::DuplicateKey(key));
    }
    Ok(())
}

/// A cursor over one line, skipping JSON whitespace before each token.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn skip_ws(&mut self) {
        while let [b' ' | b'\t' | b'\r' | b'\n', rest @ ..] = self.0 {
            self.0 = rest;
        }
    }

    /// Takes `c` if it is next.
    fn eat(&mut self, c: u8) -> bool {
        self.skip_ws();
        match self.0.split_first() {
            Some((&x, rest)) if x == c => {
                self.0 = rest;
                true
            }
            _ => false,
        }
    }

    fn expect(&mut self, c: u8, what: &'static str) -> Result<(), Reason> {
        self.eat(c).then_some(()).ok_or(Reason::Syntax(what))
    }

    /// A string without escapes (the format has none).
    fn string(&mut self) -> Result<&'a str, Reason> {
        self.expect(b'"', "expected a string")?;
        let end = self
            .0
            .iter()
            .position(|&c| c == b'"' || c == b'\\')
            .ok_or(Reason::Syntax("a string does not end"))?;
        if self.0[end] == b'\\' {
            return Err(Reason::Syntax("an escape in a string"));
        }
        let s = std::str::from_utf8(&self.0[..end]).map_err(|_| Reason::Syntax("not UTF-8"))?;
        self.0 = &self.0[end + 1..];
        Ok(s)
    }

    /// An unsigned decimal integer.
    fn number(&mut self) -> Result<u64, Reason> {
        self.skip_ws();
        let end = self
            .0
            .iter()
            .position(|c| !c.is_ascii_digit())
            .unwrap_or(self.0.len());
        let digits = std::str::from_utf8(&self.0[..end]).map_err(|_| Reason::BadConn)?;
        let n = digits.parse().map_err(|_| Reason::BadConn)?;
        self.0 = &self.0[end..];
        Ok(n)
    }
}

/// Decodes hex digits (either case); `None` for an odd length or a
/// character that is not a hex digit.
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    fn nibble(c: u8) -> Option<u8> {
        (c as char).to_digit(16).map(|d| d as u8)
    }
    let s = s.as_bytes();
    if s.len() % 2 != 0 {
        return None;
    }
    s.chunks_exact(2)
        .map(|p| Some(nibble(p[0])? << 4 | nibble(p[1])?))
        .collect()
}

/// Encodes bytes as lowercase hex digits, as the captures hold them.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    s
}

/// Zeroes, in place, the bytes of a frame the captures' README calls
/// nondeterministic: the padding of a SYSCALL response (bytes 28..32), the
/// reqno of a RAISE request, and the cookie of a PREFORK response. Client
/// addresses and the cookie a HANDSHAKE FORK presents are the replayer's
/// to substitute. Anything that is not such a frame is left alone.
pub fn mask(frame: &mut [u8]) {
    let Some(h) = Header::read(frame) else { return };
    match (h.class(), h.typ()) {
        (Class::RESP, MsgType::SYSCALL) if frame.len() >= 32 => frame[28..32].fill(0),
        (Class::REQ, MsgType::RAISE) => frame[8..16].fill(0),
        (Class::RESP, MsgType::PREFORK) if frame.len() >= HEADER_LEN + 16 => {
            frame[HEADER_LEN..HEADER_LEN + 16].fill(0)
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_parse_with_and_without_conn() {
        let text = "\n{\"scenario\": \"x\", \"note\": \"a \\\"quoted\\\" note\"}\n\n\
                    {\"conn\": 1, \"dir\": \"c2s\", \"hex\": \"00FFab\"}\n\
                    { \"hex\" : \"\" , \"dir\":\"s2c\" }\r\n";
        let cap = parse(text).unwrap();
        assert!(cap.meta.contains("quoted"));
        assert_eq!(
            cap.units,
            [
                Unit {
                    line: 4,
                    conn: Some(1),
                    dir: Dir::C2s,
                    bytes: vec![0, 0xff, 0xab]
                },
                Unit {
                    line: 5,
                    conn: None,
                    dir: Dir::S2c,
                    bytes: vec![]
                },
            ]
        );
        assert_eq!(cap.units[0].conn(), 1);
        assert_eq!(cap.units[1].conn(), 0);
        assert_eq!(cap.banner(), None);
        assert_eq!(Dir::S2c.as_str(), "s2c");
    }

    #[test]
    fn malformed_lines_are_errors_that_name_the_line() {
        let meta = "{\"scenario\": \"x\"}\n";
        let unit = |l: &str| format!("{meta}{l}\n");
        assert_eq!(parse("").unwrap_err().reason, Reason::Empty);
        assert_eq!(
            parse("  \n[1]\n").unwrap_err(),
            CaptureError {
                line: 2,
                reason: Reason::Syntax("the scenario line is not a JSON object")
            }
        );
        let cases: &[(&str, Reason)] = &[
            ("[]", Reason::Syntax("a unit is not a JSON object")),
            ("{\"dir\": \"c2s\"}", Reason::MissingKey("hex")),
            ("{\"hex\": \"00\"}", Reason::MissingKey("dir")),
            (
                "{\"dir\": \"up\", \"hex\": \"\"}",
                Reason::BadDir("up".into()),
            ),
            ("{\"dir\": \"c2s\", \"hex\": \"0\"}", Reason::BadHex),
            ("{\"dir\": \"c2s\", \"hex\": \"zz\"}", Reason::BadHex),
            (
                "{\"conn\": -1, \"dir\": \"c2s\", \"hex\": \"\"}",
                Reason::BadConn,
            ),
            (
                "{\"conn\": \"0\", \"dir\": \"c2s\", \"hex\": \"\"}",
                Reason::BadConn,
            ),
            (
                "{\"conn\": 99999999999999999999, \"dir\": \"c2s\", \"hex\": \"\"}",
                Reason::BadConn,
            ),
            (
                "{\"dir\": \"c2s\", \"dir\": \"c2s\", \"hex\": \"\"}",
                Reason::DuplicateKey("dir"),
            ),
            (
                "{\"dir\": \"c2s\", \"hex\": \"\", \"x\": 1}",
                Reason::UnknownKey("x".into()),
            ),
            (
                "{\"dir\": \"c2s\" \"hex\": \"\"}",
                Reason::Syntax("expected ',' or '}'"),
            ),
            (
                "{\"dir\" \"c2s\"}",
                Reason::Syntax("expected ':' after a key"),
            ),
            (
                "{\"dir\": \"c2s\", \"hex\": \"\"} x",
                Reason::Syntax("text after the object"),
            ),
            (
                "{\"dir\": \"c2\\u0073\"}",
                Reason::Syntax("an escape in a string"),
            ),
            ("{\"dir\": \"c2s", Reason::Syntax("a string does not end")),
            (
                "{\"dir\": \"c2s\", \"hex\": \"\",}",
                Reason::Syntax("expected a string"),
            ),
            ("{}", Reason::Syntax("expected a string")),
        ];
        for (line, want) in cases {
            let e = parse(&unit(line)).unwrap_err();
            assert_eq!((e.line, &e.reason), (2, want), "{line}");
        }
        let e = parse(&unit("{}")).unwrap_err();
        assert_eq!(e.to_string(), "capture line 2: expected a string");
    }

    #[test]
    fn every_cut_of_a_unit_line_is_an_error_never_a_panic() {
        let line = "{\"conn\": 12, \"dir\": \"s2c\", \"hex\": \"0a0b\"}";
        for cut in 0..line.len() {
            let text = format!("{{}}\n{}\n", &line[..cut]);
            let r = parse(&text);
            if line[..cut].trim().is_empty() {
                assert_eq!(r.unwrap().units, []);
            } else {
                assert_eq!(r.unwrap_err().line, 2, "cut {cut}");
            }
        }
        assert_eq!(parse(&format!("{{}}\n{line}")).unwrap().units.len(), 1);
    }

    #[test]
    fn hex_round_trips() {
        let all: Vec<u8> = (0..=255).collect();
        let h = to_hex(&all);
        assert_eq!(&h[..8], "00010203");
        assert_eq!(unhex(&h), Some(all));
        assert_eq!(unhex("ABcd"), Some(vec![0xab, 0xcd]));
        assert_eq!(unhex("abc"), None);
        assert_eq!(unhex("+1"), None);
        assert_eq!(unhex("é1"), None);
    }

    #[test]
    fn mask_zeroes_only_the_nondeterministic_bytes() {
        let resp = |class: Class, typ: MsgType, len: usize| {
            let mut f = Header::new(len as u64, 7, class, typ, 0)
                .to_bytes()
                .to_vec();
            f.resize(len, 0xee);
            f
        };
        let mut f = resp(Class::RESP, MsgType::SYSCALL, 48);
        mask(&mut f);
        assert_eq!(&f[24..28], &[0xee; 4]);
        assert_eq!(&f[28..32], &[0; 4]);
        assert_eq!(&f[32..], &[0xee; 16]);
        let mut f = resp(Class::REQ, MsgType::RAISE, 24);
        mask(&mut f);
        assert_eq!(&f[8..16], &[0; 8]);
        let mut f = resp(Class::RESP, MsgType::PREFORK, 40);
        mask(&mut f);
        assert_eq!(&f[24..40], &[0; 16]);
        assert_eq!(&f[8..16], &7u64.to_le_bytes());
        // Other frames, short frames, banners: untouched.
        for mut f in [
            resp(Class::REQ, MsgType::SYSCALL, 40),
            resp(Class::RESP, MsgType::SYSCALL, 30),
            resp(Class::RESP, MsgType::PREFORK, 39),
            b"RUMPSP-0.4-NetBSD-7.99.34/amd64\n".to_vec(),
            vec![1, 2, 3],
        ] {
            let before = f.clone();
            mask(&mut f);
            assert_eq!(f, before);
        }
    }
}
