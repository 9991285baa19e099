//! The banner line a server writes on accept:
//! `RUMPSP-<major>.<minor>-<ostype>-<osrelease>/<machine>\n`.

/// The longest banner, newline included (the C client reads into 96 bytes).
pub const MAX_BANNER: usize = 95;

/// Protocol version this crate speaks.
pub const PROTO_MAJOR: u32 = 0;
/// Protocol minor version this crate speaks.
pub const PROTO_MINOR: u32 = 4;

/// A parsed banner.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Banner {
    /// Major protocol version.
    pub major: u32,
    /// Minor protocol version.
    pub minor: u32,
    /// Operating system type, e.g. `NetBSD`.
    pub ostype: String,
    /// Operating system release, e.g. `7.99.34`.
    pub osrelease: String,
    /// Machine, e.g. `amd64`.
    pub machine: String,
}

/// Why a banner is refused.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum BannerError {
    /// Longer than 95 bytes.
    #[error("banner of {0} bytes is longer than {MAX_BANNER}")]
    TooLong(usize),
    /// No final newline.
    #[error("banner does not end in a newline")]
    NoNewline,
    /// Does not start with `RUMPSP-`.
    #[error("banner does not start with RUMPSP-")]
    BadMagic,
    /// The version is not `<digits>.<digits>`.
    #[error("banner version is malformed")]
    BadVersion,
    /// A field is missing, empty, or holds bytes other than printable ASCII.
    #[error("banner field {0} is missing or malformed")]
    BadField(&'static str),
    /// A version this crate does not speak (major other than 0, minor below 4).
    #[error("server speaks protocol {major}.{minor}; this client needs 0.4 or a later 0.x")]
    Unsupported {
        /// Major version.
        major: u32,
        /// Minor version.
        minor: u32,
    },
}

fn field(s: &str, name: &'static str, forbidden: &[char]) -> Result<String, BannerError> {
    if s.is_empty()
        || !s
            .chars()
            .all(|c| c.is_ascii_graphic() && !forbidden.contains(&c))
    {
        return Err(BannerError::BadField(name));
    }
    Ok(s.to_owned())
}

fn number(s: &str) -> Result<u32, BannerError> {
    if s.is_empty() || s.len() > 9 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(BannerError::BadVersion);
    }
    s.parse().map_err(|_| BannerError::BadVersion)
}

impl Banner {
    /// A banner for protocol 0.4 with the given identity.
    pub fn new(ostype: &str, osrelease: &str, machine: &str) -> Banner {
        Banner {
            major: PROTO_MAJOR,
            minor: PROTO_MINOR,
            ostype: ostype.into(),
            osrelease: osrelease.into(),
            machine: machine.into(),
        }
    }

    /// The banner line, newline included. Fails if the fields do not make a
    /// banner that parses back (a `-` in ostype, a `/` in machine, spaces,
    /// or over 95 bytes).
    pub fn format(&self) -> Result<Vec<u8>, BannerError> {
        let s = format!(
            "RUMPSP-{}.{}-{}-{}/{}\n",
            self.major, self.minor, self.ostype, self.osrelease, self.machine
        );
        let parsed = Banner::parse(s.as_bytes())?;
        if parsed != *self {
            return Err(BannerError::BadField("ostype"));
        }
        Ok(s.into_bytes())
    }

    /// Parses a banner line, newline included.
    pub fn parse(line: &[u8]) -> Result<Banner, BannerError> {
        if line.len() > MAX_BANNER {
            return Err(BannerError::TooLong(line.len()));
        }
        let Some((&b'\n', text)) = line.split_last() else {
            return Err(BannerError::NoNewline);
        };
        let text = std::str::from_utf8(text).map_err(|_| BannerError::BadField("banner"))?;
        let rest = text.strip_prefix("RUMPSP-").ok_or(BannerError::BadMagic)?;
        let (version, rest) = rest.split_once('-').ok_or(BannerError::BadVersion)?;
        let (major, minor) = version.split_once('.').ok_or(BannerError::BadVersion)?;
        let (major, minor) = (number(major)?, number(minor)?);
        let (ostype, rest) = rest
            .split_once('-')
            .ok_or(BannerError::BadField("ostype"))?;
        let (osrelease, machine) = rest
            .rsplit_once('/')
            .ok_or(BannerError::BadField("machine"))?;
        Ok(Banner {
            major,
            minor,
            ostype: field(ostype, "ostype", &['-', '/'])?,
            osrelease: field(osrelease, "osrelease", &[])?,
            machine: field(machine, "machine", &['/'])?,
        })
    }

    /// Checks that a client of protocol 0.4 can talk to this server.
    pub fn check_supported(&self) -> Result<(), BannerError> {
        if self.major != PROTO_MAJOR || self.minor < PROTO_MINOR {
            return Err(BannerError::Unsupported {
                major: self.major,
                minor: self.minor,
            });
        }
        Ok(())
    }

    /// Length of the banner line at the start of `buf` (newline included),
    /// `Ok(None)` if no newline has arrived yet, an error once 95 bytes have
    /// come without one.
    pub fn line_len(buf: &[u8]) -> Result<Option<usize>, BannerError> {
        match buf.iter().take(MAX_BANNER).position(|&b| b == b'\n') {
            Some(i) => Ok(Some(i + 1)),
            None if buf.len() >= MAX_BANNER => Err(BannerError::TooLong(buf.len())),
            None => Ok(None),
        }
    }
}
