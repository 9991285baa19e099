//! `rls`: lists a directory of a rump kernel, like `ls -la`.
//!
//! ```sh
//! cargo run -p sp-client --example rls -- [--server URL] [PATH]
//! ```
//!
//! The server is `--server URL`, else `$RUMP_SERVER`; PATH defaults to `/`.

use sp_client::{Client, ErrnoExt, FileType, Options, Stat, SERVER_VAR};
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
    let (Some(url), true) = (url, args.len() <= 1) else {
        eprintln!("usage: rls [--server URL] [PATH]  (or set {SERVER_VAR})");
        return ExitCode::from(2);
    };
    let dir = args.pop().unwrap_or_else(|| "/".to_owned());
    let opts = Options::new()
        .name("rls")
        .connect_timeout(Duration::from_secs(10));
    let client = match Client::connect_with(&url, opts) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("rls: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut entries = match client.read_dir(&dir) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("rls: {dir}: {}", e.describe());
            return ExitCode::FAILURE;
        }
    };
    entries.sort_by(|a, b| a.name().cmp(b.name()));
    let mut status = ExitCode::SUCCESS;
    for e in entries {
        let path = format!("{}/{}", dir.trim_end_matches('/'), e.name_lossy());
        match client.lstat(&path) {
            Ok(st) => println!("{} {}", line(&st), e.name_lossy()),
            Err(err) => {
                eprintln!("rls: {path}: {}", err.describe());
                status = ExitCode::FAILURE;
            }
        }
    }
    status
}

/// `drwxr-xr-x   2     0     0       512 ` for one file.
fn line(st: &Stat) -> String {
    let kind = match st.file_type() {
        FileType::Dir => 'd',
        FileType::Symlink => 'l',
        FileType::Fifo => 'p',
        FileType::CharDevice => 'c',
        FileType::BlockDevice => 'b',
        FileType::Socket => 's',
        FileType::File => '-',
        _ => '?',
    };
    let p = st.permissions();
    let rwx: String = (0..9)
        .map(|i| {
            let on = p & (0o400 >> i) != 0;
            match (on, i % 3) {
                (false, _) => '-',
                (true, 0) => 'r',
                (true, 1) => 'w',
                (true, _) => 'x',
            }
        })
        .collect();
    format!(
        "{kind}{rwx} {:>3} {:>5} {:>5} {:>9}",
        st.nlink(),
        st.uid(),
        st.gid(),
        st.size()
    )
}
