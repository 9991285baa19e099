//! `rcp`: copies a file into, out of, or within a rump kernel.
//!
//! ```sh
//! cargo run -p sp-client --example rcp -- [--server URL] SRC DST
//! ```
//!
//! A path written `:PATH` is in the remote kernel, any other is local, as
//! with scp: `rcp notes.txt :/tmp/notes.txt` puts a file, `rcp :/etc/motd
//! motd` gets one. The server is `--server URL`, else `$RUMP_SERVER`.

use sp_client::{Client, IoResultExt, Options, SERVER_VAR};
use std::fs::File;
use std::io::{self, Read, Write};
use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let url = if args.first().map(String::as_str) == Some("--server") && args.len() >= 2 {
        let url = args.remove(1);
        args.remove(0);
        Some(url)
    } else {
        std::env::var(SERVER_VAR).ok()
    };
    let (Some(url), [src, dst]) = (url, args.as_slice()) else {
        eprintln!(
            "usage: rcp [--server URL] SRC DST  (remote paths as :PATH; or set {SERVER_VAR})"
        );
        return ExitCode::from(2);
    };
    let opts = Options::new()
        .name("rcp")
        .connect_timeout(Duration::from_secs(10));
    let client = match Client::connect_with(&url, opts) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("rcp: {e}");
            return ExitCode::FAILURE;
        }
    };
    match copy(&client, src, dst) {
        Ok(n) => {
            eprintln!("rcp: {n} bytes from {src} to {dst}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("rcp: {src} -> {dst}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Copies `src` to `dst`, each local or remote; returns the bytes copied.
fn copy(client: &Client, src: &str, dst: &str) -> io::Result<u64> {
    let mut reader: Box<dyn Read + '_> = match src.strip_prefix(':') {
        Some(path) => Box::new(client.open_file(path).into_io()?),
        None => Box::new(File::open(src)?),
    };
    match dst.strip_prefix(':') {
        Some(path) => {
            let mut w = client.create_file(path).into_io()?;
            let n = io::copy(&mut reader, &mut w)?;
            // A remote close can fail (a full file system, a lost
            // connection): report it rather than let drop swallow it.
            w.close().into_io()?;
            Ok(n)
        }
        None => {
            let mut w = File::create(dst)?;
            let n = io::copy(&mut reader, &mut w)?;
            w.flush()?;
            Ok(n)
        }
    }
}
