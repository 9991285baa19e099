//! The subcommands of the `sp` binary, as library code so tests can run them.

pub mod bench;
pub mod call;
pub mod demo;
pub mod serve;

use std::borrow::Cow;
use std::io::IsTerminal;

/// Sends `tracing` output to stderr, filtered by `RUST_LOG` (default:
/// `default`, e.g. "info" for a server, "warn" for a client command).
/// Colours only when stderr is a terminal and `NO_COLOR` is unset, so a
/// log sent to a file or a pipe holds no escape codes.
pub fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr)
        .try_init();
}

/// A command line that parses but asks for something that cannot work
/// (`--max-clients 0`, `--allow-uid` on tcp). The `sp` binary prints it
/// on one line and exits with status 2, as for clap's usage errors.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Exit status of a usage error, as clap's.
pub const USAGE_EXIT: u8 = 2;

/// Names longer than this many bytes are shortened in messages.
pub const LONG_NAME: usize = 128;

/// A name (a path, a URL) for an error message: whole when it is at most
/// [`LONG_NAME`] bytes, else its first 64 and last 16 bytes around "…",
/// with its length: `/aaaa…aaaa (70000 bytes)`. Cuts fall on character
/// boundaries.
pub fn short_name(name: &str) -> Cow<'_, str> {
    if name.len() <= LONG_NAME {
        return Cow::Borrowed(name);
    }
    let mut head = 64;
    while !name.is_char_boundary(head) {
        head -= 1;
    }
    let mut tail = name.len() - 16;
    while !name.is_char_boundary(tail) {
        tail += 1;
    }
    Cow::Owned(format!(
        "{}…{} ({} bytes)",
        &name[..head],
        &name[tail..],
        name.len()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_names_are_shortened() {
        assert_eq!(short_name("/a/b"), "/a/b");
        let edge = "x".repeat(LONG_NAME);
        assert_eq!(short_name(&edge), edge);
        let long = format!("/{}", "a".repeat(69_999));
        let s = short_name(&long);
        assert_eq!(
            s,
            format!("/{}…{} (70000 bytes)", "a".repeat(63), "a".repeat(16))
        );
        // Multi-byte characters are never cut in half.
        let wide = "é".repeat(100);
        let s = short_name(&wide);
        assert!(s.starts_with(&"é".repeat(32)) && s.ends_with("é (200 bytes)"));
    }
}
