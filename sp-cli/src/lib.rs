//! The `sp` command, as a library so tests can run its parts: `sp serve`
//! runs a kernel of [`sp_model`] behind an `sp_server` server, `sp call`
//! makes system calls in a remote kernel, `sp demo` walks a client through
//! every cycle of the protocol, and `sp bench` measures a server beside
//! raw-socket anchors ([`bench`](mod@bench)). The subcommands are in [`cmd`];
//! `cargo install --path sp-cli` installs the binary, named `sp`.
//!
//! ```no_run
//! use sp_cli::bench::{self, Mode, Options};
//!
//! // A short bench run of a local `sp serve`, started from this `sp` binary.
//! let report = bench::run(&Options::new(Mode::Quick, "target/release/sp".into()));
//! print!("{}", report.markdown());
//! ```

pub mod bench;
pub mod cmd;
