//! `rcat`: copies files of a rump kernel to standard output, like cat(1).
//!
//! ```sh
//! cargo run -p sp-client --example rcat -- [--server URL] PATH...
//! ```
//!
//! The server is `--server URL`, else `$RUMP_SERVER`. A file that cannot be
//! read is reported and skipped, and the exit status is then 1.

use sp_client::{Client, Options, SERVER_VAR};
use std::io::{self, Write};
use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let url = match args.first().map(String::as_str) {
        Some("--server") if args.len() >= 2 => {
            let url = args.remove(1);
            args.remove(0);
            url
        }
        _ => match std::env::var(SERVER_VAR) {
            Ok(url) => url,
            Err(_) => return usage(),
        },
    };
    if args.is_empty() || args.iter().any(|a| a.starts_with("--")) {
        return usage();
    }
    let opts = Options::new()
        .name("rcat")
        .connect_timeout(Duration::from_secs(10));
    let client = match Client::connect_with(&url, opts) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("rcat: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut status = ExitCode::SUCCESS;
    let mut out = io::stdout().lock();
    for path in &args {
        if let Err(e) = cat(&client, path, &mut out) {
            // io::Error's Display names the errno: "ENOENT (No such file or directory)".
            eprintln!("rcat: {path}: {e}");
            if e.kind() == io::ErrorKind::BrokenPipe {
                return ExitCode::FAILURE;
            }
            status = ExitCode::FAILURE;
        }
    }
    status
}

/// Streams one remote file to `out`.
fn cat(client: &Client, path: &str, out: &mut impl Write) -> io::Result<()> {
    let mut file = client.open_file(path).map_err(sp_client::errno_to_io)?;
    io::copy(&mut file, out)?;
    out.flush()?;
    file.close().map_err(sp_client::errno_to_io)
}

fn usage() -> ExitCode {
    eprintln!("usage: rcat [--server URL] PATH...  (or set {SERVER_VAR})");
    ExitCode::from(2)
}
