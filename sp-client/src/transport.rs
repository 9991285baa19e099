//! The sockets, from `sp-transport`: one place that turns a URL into a
//! connected [`Stream`].

use std::io;

pub(crate) use sp_transport::Stream;
use sp_transport::{Role, UrlError};

/// Why [`open`] failed.
#[derive(Debug)]
pub(crate) enum OpenError {
    /// The URL does not parse.
    Url(UrlError),
    /// The connect failed.
    Io(io::Error),
}

/// Parses a client URL and connects to it.
pub(crate) fn open(url: &str) -> Result<Stream, OpenError> {
    let ep = sp_transport::parse(url, Role::Client).map_err(OpenError::Url)?;
    sp_transport::connect(&ep).map_err(OpenError::Io)
}
