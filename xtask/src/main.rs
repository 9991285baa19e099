//! Repository tasks, run as `cargo xtask <command>` (see `flags.rs`):
//!
//! - `test [--stress]`: `cargo fmt --all --check`, `cargo clippy --workspace
//!   --all-targets -- -D warnings`, `cargo test --workspace` (and, with
//!   `--stress`, the `#[ignore]`d tests), stopping at the first failure.
//! - `fuzz [SECS]`: every target in `fuzz/fuzz_targets` under `cargo fuzz`.
//! - `bench [--quick]`: `sp bench` on a release build (each server figure
//!   beside its raw-socket anchor: a markdown table on stdout, JSON in
//!   `<target>/bench/`), then the codec's criterion benches (`--quick`: a
//!   run under two minutes, no criterion).
//! - `rump [--quick]`: with `SP_RUMP_PREFIX` (a stock rump kernel's
//!   install), the real-kernel tests and the stock `rump_server` benched
//!   beside ours preloaded, in one run (see `rump.rs`).
//!
//! The repository rules live in `tidy.rs`, a `#[test]`, so plain
//! `cargo test` enforces them.

mod flags;
mod rump;
#[cfg(test)]
mod tidy;

use flags::Cmd;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let cmd = match flags::parse(std::env::args().skip(1)) {
        Ok(cmd) => cmd,
        Err(e) => {
            eprintln!("xtask: {e}\n\n{}", flags::usage());
            return ExitCode::from(2);
        }
    };
    let result = match cmd {
        Cmd::Help => {
            print!("{}", flags::usage());
            Ok(())
        }
        Cmd::Test { stress } => test(stress),
        Cmd::Fuzz { secs } => fuzz(secs),
        Cmd::Bench { quick } => bench(quick),
        Cmd::Rump { quick } => rump::rump(quick),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("\nxtask: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The repository root (the parent of this crate).
pub fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask has a parent folder")
        .to_path_buf()
}

/// The cargo that runs us (so a `cargo +toolchain xtask` stays on it).
fn cargo() -> Command {
    let mut c = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    c.current_dir(project_root());
    c
}

/// One step: a cargo command, and what to tell the user when it fails.
struct Step {
    args: &'static [&'static str],
    hint: &'static str,
}

impl Step {
    fn run(&self) -> Result<(), String> {
        let line = format!("cargo {}", self.args.join(" "));
        eprintln!("\n$ {line}");
        let status = cargo()
            .args(self.args)
            .status()
            .map_err(|e| format!("could not start `{line}`: {e}"))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("`{line}` failed ({status}). {}", self.hint))
        }
    }
}

fn test(stress: bool) -> Result<(), String> {
    let mut steps = vec![
        Step {
            args: &["fmt", "--all", "--check"],
            hint: "Run `cargo fmt --all` and look at the diff.",
        },
        Step {
            args: &[
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ],
            hint: "Fix the lints above (warnings are errors here).",
        },
        Step {
            args: &["test", "--workspace"],
            hint: "See the failing tests above.",
        },
    ];
    if stress {
        steps.push(Step {
            args: &["test", "--workspace", "--", "--ignored"],
            hint: "A stress test failed; see above.",
        });
    }
    let n = steps.len();
    for (i, step) in steps.iter().enumerate() {
        eprint!("[{}/{n}]", i + 1);
        step.run()?;
    }
    eprintln!("\nxtask test: all {n} steps passed");
    Ok(())
}

/// Names of the targets in `fuzz/fuzz_targets`, sorted.
fn fuzz_targets(root: &Path) -> Result<Vec<String>, String> {
    let dir = root.join("fuzz/fuzz_targets");
    let entries =
        std::fs::read_dir(&dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .filter_map(|p| p.file_stem().and_then(|s| s.to_str()).map(str::to_owned))
        .collect();
    names.sort();
    if names.is_empty() {
        return Err(format!("no fuzz targets in {}", dir.display()));
    }
    Ok(names)
}

fn fuzz(secs: u64) -> Result<(), String> {
    let root = project_root();
    // cargo-fuzz needs nightly flags (-Zsanitizer); RUSTC_BOOTSTRAP=1 lets
    // the stable toolchain accept them. Nothing is installed here.
    let have = cargo()
        .args(["fuzz", "--version"])
        .env("RUSTC_BOOTSTRAP", "1")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !have {
        return Err(
            "`cargo fuzz` is not installed. Install it with:\n\n    cargo install cargo-fuzz\n\n\
                    (it runs on the stable toolchain; xtask sets RUSTC_BOOTSTRAP=1)"
                .into(),
        );
    }
    for target in fuzz_targets(&root)? {
        // New inputs go to a scratch corpus under fuzz/target (ignored by
        // git); the checked-in seeds in fuzz/corpus/<target> are only read.
        let work = root.join("fuzz/target/corpus").join(&target);
        std::fs::create_dir_all(&work)
            .map_err(|e| format!("cannot create {}: {e}", work.display()))?;
        let seeds = root.join("fuzz/corpus").join(&target);
        let mut cmd = cargo();
        // No sanitizer: the targets are safe Rust, where AddressSanitizer
        // finds little, and it made the server-session target 20x slower
        // (about 400 against 8,000 inputs/s here).
        cmd.env("RUSTC_BOOTSTRAP", "1")
            .args(["fuzz", "run", "--sanitizer", "none", &target])
            .arg(&work);
        if seeds.is_dir() {
            cmd.arg(&seeds);
        }
        cmd.arg("--").arg(format!("-max_total_time={secs}"));
        eprintln!("\n$ {cmd:?}");
        let status = cmd
            .status()
            .map_err(|e| format!("could not start cargo fuzz: {e}"))?;
        if !status.success() {
            return Err(format!(
                "fuzz target `{target}` failed ({status}); the crashing input is in fuzz/artifacts/{target}/"
            ));
        }
    }
    Ok(())
}

/// The cargo target folder: `CARGO_TARGET_DIR` (relative to the root if it
/// is relative) or `target/` under the root.
fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) if !d.is_empty() => {
            let d = PathBuf::from(d);
            if d.is_absolute() {
                d
            } else {
                project_root().join(d)
            }
        }
        _ => project_root().join("target"),
    }
}

/// `sp bench` on a release build (the server and its anchors: a markdown
/// table on stdout, JSON in `<target>/bench/`), then, in the full run, the
/// codec's criterion benches.
fn bench(quick: bool) -> Result<(), String> {
    Step {
        args: &["build", "--release", "-p", "sp-cli", "--bin", "sp"],
        hint: "The sp binary failed to build.",
    }
    .run()?;
    let target = target_dir();
    let sp = target.join("release/sp");
    let mut cmd = Command::new(&sp);
    cmd.current_dir(project_root()).arg("bench");
    if quick {
        cmd.arg("--quick");
    }
    cmd.arg("--json").arg(target.join("bench"));
    eprintln!("\n$ {cmd:?}");
    let status = cmd
        .status()
        .map_err(|e| format!("could not start {}: {e}", sp.display()))?;
    if !status.success() {
        return Err(format!(
            "`sp bench` failed ({status}): a figure could not be measured, see the table"
        ));
    }
    if !quick {
        Step {
            args: &["bench", "-p", "sp-proto"],
            hint: "A codec benchmark failed to build or run.",
        }
        .run()?;
    }
    Ok(())
}
