//! `sp bench [--quick] [--json DIR] [URL]`: measures a server beside raw
//! socket anchors (see [`crate::bench`]), prints a markdown table and saves
//! JSON. `sp bench-client` is the hidden subcommand it starts its client
//! processes and echo peer with.

use crate::bench::client::{run_client, ClientSpec};
use crate::bench::{self, Mode, Options, Pin, Transport};
use std::path::PathBuf;

fn parse_transport(s: &str) -> Result<Transport, String> {
    match s {
        "unix" => Ok(Transport::Unix),
        "tcp" => Ok(Transport::Tcp),
        _ => Err(format!("unknown transport {s:?} (unix or tcp)")),
    }
}

/// Options of `sp bench`.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// A short run (under two minutes): 3 repetitions, up to 16 clients.
    #[arg(long, conflicts_with = "smoke")]
    pub quick: bool,
    /// A tiny run that only checks every figure produces numbers.
    #[arg(long, hide = true)]
    pub smoke: bool,
    /// Where to write the JSON (`bench-<time>.json` and `latest.json`).
    #[arg(long, value_name = "DIR", default_value = "target/bench")]
    pub json: PathBuf,
    /// Local server transports to measure (repeatable; default unix and tcp).
    #[arg(long = "transport", value_parser = parse_transport)]
    pub transports: Vec<Transport>,
    /// Where the processes run: none (the scheduler decides), same (all on
    /// CPU 0), split (server and echo peer on CPU 1, clients on CPU 0).
    #[arg(long, value_enum, default_value_t = Pin::None)]
    pub pin: Pin,
    /// Measure the server at this URL instead of starting one (the memory
    /// and thread rows are skipped).
    pub url: Option<String>,
}

/// Runs the bench: the table on stdout, progress on stderr, JSON in
/// `--json`. Fails if a figure could not be measured (a target not met is
/// not a failure).
pub fn run(args: BenchArgs) -> Result<(), Box<dyn std::error::Error>> {
    let mode = if args.smoke {
        Mode::Smoke
    } else if args.quick {
        Mode::Quick
    } else {
        Mode::Full
    };
    let mut opts = Options::new(mode, std::env::current_exe()?);
    opts.url = args.url;
    opts.pin = args.pin;
    if !args.transports.is_empty() {
        opts.transports = args.transports;
    }
    let report = bench::run(&opts);
    print!("{}", report.markdown());
    let path = report.write_json(&args.json)?;
    eprintln!("bench: JSON written to {}", path.display());
    let failed = report.failures().count();
    if failed > 0 {
        return Err(format!("{failed} figure(s) could not be measured; see the table").into());
    }
    Ok(())
}

/// Runs one client process (or the echo peer) of the bench, talking to the
/// parent over stdin and stdout.
pub fn run_bench_client(spec: ClientSpec) -> Result<(), Box<dyn std::error::Error>> {
    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    run_client(&spec, &mut stdin.lock(), &mut stdout.lock())?;
    Ok(())
}
