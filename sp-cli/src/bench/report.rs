//! The bench's results: rows with their anchors and targets, printed as a
//! markdown table and saved as JSON.

use super::stats::Summary;
use super::{Mode, Pin};
use serde_json::{json, Value};
use std::io;
use std::path::{Path, PathBuf};

/// What a row's numbers count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// Latency in microseconds (lower is better).
    Micros,
    /// Bandwidth in megabytes (10^6) per second.
    MBps,
    /// Operations per second.
    OpsPerSec,
    /// Bytes.
    Bytes,
    /// A plain count.
    Count,
}

impl Unit {
    /// The unit's name in the JSON.
    pub fn name(self) -> &'static str {
        match self {
            Unit::Micros => "us",
            Unit::MBps => "MB/s",
            Unit::OpsPerSec => "ops/s",
            Unit::Bytes => "bytes",
            Unit::Count => "count",
        }
    }

    /// `v` in this unit, for the table.
    pub fn fmt(self, v: f64) -> String {
        match self {
            Unit::Micros if v < 10.0 => format!("{v:.2} µs"),
            Unit::Micros => format!("{v:.1} µs"),
            Unit::MBps => format!("{v:.0} MB/s"),
            Unit::OpsPerSec if v >= 1000.0 => format!("{:.1}k/s", v / 1000.0),
            Unit::OpsPerSec => format!("{v:.0}/s"),
            Unit::Bytes => format!("{v:.0} B"),
            Unit::Count => format!("{v:.0}"),
        }
    }

    /// A summary in this unit: `median [min..max]` (just the value when
    /// there was one repetition or all agree).
    pub fn fmt_summary(self, s: &Summary) -> String {
        if s.values.len() <= 1 || s.min == s.max {
            self.fmt(s.median)
        } else {
            let bare = |v: f64| {
                let t = self.fmt(v);
                match t.rsplit_once(' ') {
                    Some((n, _)) if self != Unit::OpsPerSec => n.to_string(),
                    _ => t.trim_end_matches("/s").to_string(),
                }
            };
            format!("{} [{}..{}]", self.fmt(s.median), bare(s.min), bare(s.max))
        }
    }
}

/// What a figure is compared with: something measured in the same run
/// (never a number copied from elsewhere, which would compare machines).
#[derive(Clone, Debug, PartialEq)]
pub struct Anchor {
    /// What was measured, in plain words.
    pub what: String,
    /// Its numbers.
    pub summary: Summary,
}

impl Anchor {
    /// The number a ratio is taken against: the anchor's median.
    pub fn value(&self) -> f64 {
        self.summary.median
    }
}

/// A row's goal.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Target {
    /// measured / anchor at most this.
    RatioAtMost(f64),
    /// measured / anchor at least this.
    RatioAtLeast(f64),
    /// The measured median at most this, in the row's unit.
    AtMost(f64),
    /// The measured median equal to the anchor's.
    SameAsAnchor,
}

impl Target {
    /// The target as the table shows it.
    pub fn text(self, unit: Unit) -> String {
        match self {
            Target::RatioAtMost(x) => format!("≤ {x:.2}×"),
            Target::RatioAtLeast(x) => format!("≥ {x:.2}×"),
            Target::AtMost(x) => format!("≤ {}", unit.fmt(x)),
            Target::SameAsAnchor => "= anchor".to_string(),
        }
    }
}

/// How a row came out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    /// Numbers were measured.
    Measured,
    /// Not measured in this mode or setup, and why.
    Skipped(String),
    /// The measurement failed, and how.
    Failed(String),
}

/// One line of the table.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// `unix`, `tcp`, ...
    pub transport: String,
    /// What is measured.
    pub figure: String,
    /// The unit of `measured` (and of the anchor).
    pub unit: Unit,
    /// The measured server's numbers over the repetitions.
    pub measured: Option<Summary>,
    /// What they are compared with.
    pub anchor: Option<Anchor>,
    /// The goal, if the row has one.
    pub target: Option<Target>,
    /// Anything else worth a glance (percentiles, raw readings).
    pub notes: String,
    /// Measured, skipped or failed.
    pub status: Status,
    /// Raw readings for the JSON (percentiles, RSS, thread counts).
    pub details: Value,
}

impl Row {
    /// A row with nothing measured yet.
    pub fn new(transport: &str, figure: &str, unit: Unit) -> Row {
        Row {
            transport: transport.to_string(),
            figure: figure.to_string(),
            unit,
            measured: None,
            anchor: None,
            target: None,
            notes: String::new(),
            status: Status::Measured,
            details: Value::Null,
        }
    }

    /// measured / anchor (medians), when both exist.
    pub fn ratio(&self) -> Option<f64> {
        let a = self.anchor.as_ref()?.value();
        let o = self.measured.as_ref()?.median;
        (a != 0.0).then(|| o / a)
    }

    /// Whether the target is met; `None` without a target or numbers.
    pub fn met(&self) -> Option<bool> {
        if self.status != Status::Measured {
            return None;
        }
        let median = self.measured.as_ref()?.median;
        match self.target? {
            Target::RatioAtMost(x) => self.ratio().map(|r| r <= x),
            Target::RatioAtLeast(x) => self.ratio().map(|r| r >= x),
            Target::AtMost(x) => Some(median <= x),
            Target::SameAsAnchor => self.anchor.as_ref().map(|a| median == a.value()),
        }
    }

    /// The verdict cell.
    pub fn verdict(&self) -> String {
        match &self.status {
            Status::Skipped(why) => format!("not run ({why})"),
            Status::Failed(_) => "**failed**".to_string(),
            Status::Measured => match (self.target, self.met()) {
                (None, _) => "—".to_string(),
                (Some(_), Some(true)) => "met".to_string(),
                (Some(_), Some(false)) => "**not met**".to_string(),
                (Some(_), None) => "no numbers".to_string(),
            },
        }
    }

    /// The JSON form.
    pub fn to_json(&self) -> Value {
        let (status, reason) = match &self.status {
            Status::Measured => ("measured", None),
            Status::Skipped(r) => ("skipped", Some(r.clone())),
            Status::Failed(r) => ("failed", Some(r.clone())),
        };
        json!({
            "transport": self.transport,
            "figure": self.figure,
            "unit": self.unit.name(),
            "measured": self.measured.as_ref().map(Summary::to_json),
            "anchor": self.anchor.as_ref().map(|a| json!({"what": a.what, "measured": a.summary.to_json()})),
            "ratio": self.ratio(),
            "target": self.target.map(|t| t.text(self.unit)),
            "met": self.met(),
            "notes": self.notes,
            "status": status,
            "reason": reason,
            "details": self.details,
        })
    }
}

/// Everything one bench run measured.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// How hard it measured.
    pub mode: Mode,
    /// Where the processes ran.
    pub pin: Pin,
    /// Repetitions per figure.
    pub reps: usize,
    /// Start of the run, seconds since the epoch.
    pub started: u64,
    /// CPUs the machine offers.
    pub cpus: usize,
    /// The server measured, in plain words: `sp serve (model kernel)` when
    /// the bench started it, else `server at URL`.
    pub server: String,
    /// The rows, in measurement order.
    pub rows: Vec<Row>,
    /// Wall time of the whole run, seconds.
    pub seconds: f64,
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

impl Report {
    /// The markdown table, with the notes that explain it.
    pub fn markdown(&self) -> String {
        let mut s = format!(
            "## sysproxy bench of {}\n\n{} mode, {} repetition{}, {} CPUs, pinning {}, {:.0} s\n\n",
            self.server,
            self.mode.name(),
            self.reps,
            if self.reps == 1 { "" } else { "s" },
            self.cpus,
            self.pin.name(),
            self.seconds
        );
        s.push_str(&format!(
            "| transport | figure | {}: median [min..max] | anchor (same run) | ratio | target | met? | notes |\n",
            cell(&self.server)
        ));
        s.push_str("|---|---|---|---|---|---|---|---|\n");
        for r in &self.rows {
            let measured = match (&r.status, &r.measured) {
                (Status::Failed(e), _) => format!("error: {e}"),
                (_, Some(m)) => r.unit.fmt_summary(m),
                _ => "—".to_string(),
            };
            let anchor = match &r.anchor {
                Some(a) => format!("{} ({})", r.unit.fmt_summary(&a.summary), a.what),
                None => "—".to_string(),
            };
            let ratio = r.ratio().map_or("—".to_string(), |x| format!("{x:.2}×"));
            let target = r.target.map_or("—".to_string(), |t| t.text(r.unit));
            s.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {} | {} |\n",
                cell(&r.transport),
                cell(&r.figure),
                cell(&measured),
                cell(&anchor),
                ratio,
                target,
                cell(&r.verdict()),
                cell(&r.notes)
            ));
        }
        s.push_str(&format!(
            "\nEach ratio is the median of {} over the median of its anchor. Every \
             anchor was measured in this run, between two processes on the same transport: \
             a raw peer (one thread per connection) answering frames of the protocol's sizes, \
             raw streaming (1 MiB chunks one way, then a ping), the same server with 1 client \
             (so the ratio of a many-client throughput row says how it scales), or with 16 \
             clients (for 1,000). Latency rows: median of the per-repetition medians; \
             bandwidth and throughput rows: median of the per-repetition rates. Each client \
             is a process of its own speaking raw frames, so the figures measure the server. \
             write/read are pwrite/pread at offset 0 of a regular file of the client's own in \
             the server's /tmp (a write to /dev/null would not need the data). \
             \"Extension off\" is what a stock client sends (the server asks for the data \
             with a COPYIN); \"extension on\" asks for the extension first and sends the data \
             with the call (SYSCALL_SEG, docs/extension.md), one round trip. The stub \
             kernel rows write to `sp serve --stub`, which drops the bytes and runs a write \
             whose bytes came with it on the event loop: the server and the protocol \
             without a file system's copy or a worker's hand-off. Without \
             pinning, where the scheduler puts the two ends of a connection decides much: on \
             a VM a wakeup on the other CPU can cost tens of µs more than one on the same \
             CPU, so a row's spread often shows two placements; `--pin same` or `--pin \
             split` fixes them.\n",
            self.server
        ));
        s
    }

    /// The JSON form.
    pub fn to_json(&self) -> Value {
        json!({
            "mode": self.mode.name(),
            "pin": self.pin.name(),
            "reps": self.reps,
            "started": self.started,
            "cpus": self.cpus,
            "server": self.server,
            "seconds": self.seconds,
            "rows": self.rows.iter().map(Row::to_json).collect::<Vec<_>>(),
        })
    }

    /// Writes `bench-<start time>.json` and `latest.json` into `dir`
    /// (created if needed); returns the first path.
    pub fn write_json(&self, dir: &Path) -> io::Result<PathBuf> {
        std::fs::create_dir_all(dir)?;
        let text = serde_json::to_string_pretty(&self.to_json()).map_err(io::Error::other)? + "\n";
        let path = dir.join(format!("bench-{}.json", self.started));
        std::fs::write(&path, &text)?;
        std::fs::write(dir.join("latest.json"), &text)?;
        Ok(path)
    }

    /// Rows that failed.
    pub fn failures(&self) -> impl Iterator<Item = &Row> {
        self.rows
            .iter()
            .filter(|r| matches!(r.status, Status::Failed(_)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts() {
        let mut r = Row::new("unix", "getpid round trip", Unit::Micros);
        r.measured = Summary::of(&[11.0, 10.0, 12.0]);
        r.anchor = Some(Anchor {
            what: "raw".into(),
            summary: Summary::of(&[10.0]).unwrap(),
        });
        r.target = Some(Target::RatioAtMost(1.10));
        assert_eq!(r.ratio(), Some(1.1));
        assert_eq!(r.verdict(), "met");
        r.target = Some(Target::RatioAtLeast(1.2));
        assert_eq!(r.verdict(), "**not met**");
        assert_eq!(
            Unit::Micros.fmt_summary(r.measured.as_ref().unwrap()),
            "11.0 µs [10.0..12.0]"
        );
        let s = Summary::of(&[45_900.0, 50_000.0]).unwrap();
        assert_eq!(Unit::OpsPerSec.fmt_summary(&s), "48.0k/s [45.9k..50.0k]");
        r.status = Status::Skipped("quick mode".into());
        assert_eq!(r.verdict(), "not run (quick mode)");
    }

    #[test]
    fn the_table_names_the_server_at_a_url() {
        let mut r = Row::new("tcp", "getpid throughput, 16 clients", Unit::OpsPerSec);
        r.measured = Summary::of(&[32_000.0, 30_000.0]);
        r.anchor = Some(Anchor {
            what: "the same server, 1 client".into(),
            summary: Summary::of(&[16_000.0]).unwrap(),
        });
        let report = Report {
            mode: Mode::Quick,
            pin: Pin::None,
            reps: 2,
            started: 0,
            cpus: 2,
            server: crate::bench::server_name(Some("tcp://10.0.0.2:5000")),
            rows: vec![r],
            seconds: 1.0,
        };
        let md = report.markdown();
        assert!(md.starts_with("## sysproxy bench of server at tcp://10.0.0.2:5000\n"));
        assert!(md.contains("| server at tcp://10.0.0.2:5000: median [min..max] |"));
        assert!(
            md.contains("| 16.0k/s (the same server, 1 client) | 1.94× |"),
            "{md}"
        );
        assert!(!md.contains("ours") && !md.contains("issue"), "{md}");
        let json = report.to_json();
        assert_eq!(
            json["rows"][0]["anchor"]["what"],
            "the same server, 1 client"
        );
        assert!(json["rows"][0].get("ours").is_none());
    }
}
