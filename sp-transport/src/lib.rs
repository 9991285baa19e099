//! Sockets for sysproxy: server URLs, connecting, listening.
//!
//! A server listens on one URL and a client connects to one:
//! `unix://PATH`, `tcp://A.B.C.D:PORT` or `tcp6://[ADDR]:PORT`.
//! [`parse`] turns a URL into an [`Endpoint`] with the reference's rules and
//! errno-style errors; [`Listener`] and [`connect`] give a [`Stream`], which
//! is a blocking, close-on-exec socket with TCP_NODELAY set on TCP.
//! [`write_frame`], [`write_parts`] and [`write_some`] write a frame held
//! in parts (header, payload) with vectored writes, blocking or not.
//!
//! ```
//! use std::io::{Read, Write};
//! use sp_transport::{connect, parse, ListenOptions, Listener, Role};
//!
//! let ep = parse("tcp://127.0.0.1:0", Role::Server)?;
//! let listener = Listener::bind(&ep, &ListenOptions::default())?;
//! // Port 0 was replaced by the port the kernel chose.
//! let mut client = connect(&listener.local_endpoint())?;
//! let mut server = listener.accept()?;
//! server.write_all(b"hello\n")?;
//! let mut buf = [0; 6];
//! client.read_exact(&mut buf)?;
//! assert_eq!(&buf, b"hello\n");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]

mod listener;
mod stream;
mod url;
mod writer;

pub use listener::{ListenError, ListenOptions, Listener};
pub use stream::{connect, PeerCred, Stream};
pub use url::{parse, Endpoint, Role, UrlError, MAX_SCHEME_LEN, MAX_UNIX_PATH};
pub use writer::{write_frame, write_parts, write_some, Progress};
