//! `cargo xtask rump [--quick]`: everything that needs a real rump kernel,
//! opt-in through `SP_RUMP_PREFIX` (a stock install: `bin/rump_server`,
//! `lib/`). Without it, says it was skipped and succeeds.
//!
//! 1. Builds `sp` and `libsp_rumpuser.so` in release.
//! 2. Runs the opt-in tests that read `SP_RUMP_PREFIX` (the stock server
//!    and ours side by side, the model kernel beside the stock one).
//! 3. Benchmarks the stock `rump_server` and the same binary with our
//!    server preloaded, in one run: `sp bench --quick` on each in turn,
//!    alternating, unpinned and then with every process on CPU 0, and
//!    prints each figure of both with their ratio.

use crate::{cargo, project_root, target_dir, Step};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A rump_server child, killed when dropped.
struct Server {
    child: Child,
    url: String,
    _dir: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self._dir);
    }
}

fn start(prefix: &Path, lib: Option<&Path>, pin: bool, tag: &str) -> Result<Server, String> {
    let dir = std::env::temp_dir().join(format!("sp-xtask-rump-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let sock = dir.join("rump.sock");
    let url = format!("unix://{}", sock.display());
    let server = prefix.join("bin/rump_server");
    let mut cmd = if pin {
        let mut c = Command::new("taskset");
        c.args(["-c", "0"]).arg(&server);
        c
    } else {
        Command::new(&server)
    };
    cmd.args(["-s", "-lrumpvfs", "-lrumpfs_tmpfs", &url])
        .env("LD_LIBRARY_PATH", prefix.join("lib"))
        .env("SP_LOG", "warn")
        .stdin(Stdio::null());
    if let Some(lib) = lib {
        cmd.env("LD_PRELOAD", lib);
    }
    let child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", server.display()))?;
    let s = Server {
        child,
        url,
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !sock.exists() {
        if Instant::now() > deadline {
            return Err(format!("{tag} rump_server made no socket in 30 s"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(s)
}

/// Medians by (transport, figure, unit) of one `sp bench` JSON.
type Figures = BTreeMap<(String, String), (f64, String)>;

fn figures(json: &Path) -> Result<Figures, String> {
    let text = std::fs::read_to_string(json).map_err(|e| format!("{}: {e}", json.display()))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", json.display()))?;
    let mut out = Figures::new();
    for row in v["rows"].as_array().into_iter().flatten() {
        let (Some(t), Some(f), Some(m)) = (
            row["transport"].as_str(),
            row["figure"].as_str(),
            row["measured"]["median"].as_f64(),
        ) else {
            continue;
        };
        let unit = row["unit"].as_str().unwrap_or("").to_string();
        out.insert((t.to_string(), f.to_string()), (m, unit));
    }
    Ok(out)
}

/// A figure's medians from every round: stock's, ours, and the unit.
type Pair = (Vec<f64>, Vec<f64>, String);

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn bench_round(sp: &Path, url: &str, pin: bool, json: &Path) -> Result<Figures, String> {
    let mut cmd = Command::new(sp);
    cmd.current_dir(project_root())
        .args([
            "bench",
            "--quick",
            "--pin",
            if pin { "same" } else { "none" },
        ])
        .arg("--json")
        .arg(json)
        .arg(url)
        .stdout(Stdio::null());
    let status = cmd
        .status()
        .map_err(|e| format!("cannot start {}: {e}", sp.display()))?;
    if !status.success() {
        return Err(format!("sp bench {url} failed ({status})"));
    }
    figures(&json.join("latest.json"))
}

/// Whether a larger figure is better (rates) or worse (times).
fn higher_is_better(unit: &str) -> bool {
    !matches!(unit, "us" | "ms" | "s" | "ns")
}

pub(crate) fn rump(quick: bool) -> Result<(), String> {
    let Some(prefix) = std::env::var_os("SP_RUMP_PREFIX").map(PathBuf::from) else {
        println!("skipped: SP_RUMP_PREFIX not set (a stock rump kernel's install)");
        return Ok(());
    };
    Step {
        args: &["build", "--release", "-p", "sp-cli", "--bin", "sp"],
        hint: "The sp binary failed to build.",
    }
    .run()?;
    // Its own step: a --bin filter would skip the library.
    Step {
        args: &["build", "--release", "-p", "sp-rumpuser", "--lib"],
        hint: "libsp_rumpuser.so failed to build.",
    }
    .run()?;
    let target = target_dir();
    let lib = target.join("release/libsp_rumpuser.so");
    let sp = target.join("release/sp");
    let mut tests = vec!["test", "-p", "sp-rumpuser", "--test", "real_kernel"];
    if project_root()
        .join("sp-testkit/tests/rump_differential.rs")
        .exists()
    {
        tests.extend(["-p", "sp-testkit", "--test", "rump_differential"]);
    }
    eprintln!("\n$ cargo {}", tests.join(" "));
    let status = cargo()
        .args(&tests)
        .env("SP_RUMPUSER_LIB", &lib)
        .status()
        .map_err(|e| format!("could not start cargo test: {e}"))?;
    if !status.success() {
        return Err(format!("the real-kernel tests failed ({status})"));
    }

    let rounds = if quick { 1 } else { 5 };
    let out = target.join("bench/rump");
    let mut report = String::new();
    for pin in [false, true] {
        let stock = start(&prefix, None, pin, "stock")?;
        let ours = start(&prefix, Some(&lib), pin, "ours")?;
        let mut seen: BTreeMap<(String, String), Pair> = BTreeMap::new();
        for r in 0..rounds {
            for (who, server) in [("stock", &stock), ("ours", &ours)] {
                eprintln!("rump bench: {who}, pinned {pin}, round {}/{rounds}", r + 1);
                let dir = out.join(format!(
                    "{who}-{}-{r}",
                    if pin { "pinned" } else { "unpinned" }
                ));
                for (key, (m, unit)) in bench_round(&sp, &server.url, pin, &dir)? {
                    let e = seen.entry(key).or_insert((Vec::new(), Vec::new(), unit));
                    if who == "stock" {
                        e.0.push(m);
                    } else {
                        e.1.push(m);
                    }
                }
            }
        }
        report.push_str(&format!(
            "\n### {} ({rounds} alternating round(s) of `sp bench --quick` on each)\n\n\
             | transport | figure | stock C server | ours (preloaded) | ours vs stock | better? |\n\
             |---|---|---|---|---|---|\n",
            if pin {
                "pinned: servers and clients on CPU 0"
            } else {
                "unpinned"
            }
        ));
        for ((t, f), (a, b, unit)) in seen {
            if a.is_empty() || b.is_empty() {
                continue;
            }
            let (a, b) = (median(a), median(b));
            let (ratio, better) = if higher_is_better(&unit) {
                (b / a, b >= a)
            } else {
                (a / b, b <= a)
            };
            report.push_str(&format!(
                "| {t} | {f} | {a:.1} {unit} | {b:.1} {unit} | {ratio:.2}x {} | {} |\n",
                if higher_is_better(&unit) {
                    "the rate"
                } else {
                    "as fast"
                },
                if better { "yes" } else { "**no**" }
            ));
        }
    }
    println!("## Stock rump_server against ours preloaded, one run\n{report}");
    let _ = std::fs::write(out.join("table.md"), &report);
    Ok(())
}
