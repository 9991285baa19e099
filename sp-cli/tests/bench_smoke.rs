//! The bench harness as a smoke test: a tiny run over unix with the real
//! `sp` binary (server, echo peer and client processes) that checks every
//! row produced numbers and that the table is in plain words, naming the
//! server it measured. No timing is asserted.

use sp_cli::bench::report::Status;
use sp_cli::bench::{self, Mode, Options};
use std::path::PathBuf;

#[test]
fn every_figure_produces_numbers() {
    let opts = Options::new(Mode::Smoke, PathBuf::from(env!("CARGO_BIN_EXE_sp")));
    let report = bench::run(&opts);
    let md = report.markdown();
    let measured: Vec<_> = report
        .rows
        .iter()
        .filter(|r| !matches!(r.status, Status::Skipped(_)))
        .collect();
    assert!(measured.len() >= 6, "too few rows measured:\n{md}");
    for r in &measured {
        assert_eq!(r.status, Status::Measured, "{}:\n{md}", r.figure);
        let m = r.measured.as_ref().expect("numbers");
        assert!(
            m.values.len() >= 2 && m.values.iter().all(|v| v.is_finite() && *v > 0.0),
            "{}: {m:?}\n{md}",
            r.figure
        );
        // Every anchor is a measurement of this run, with its repetitions.
        if let Some(a) = &r.anchor {
            assert!(!a.summary.values.is_empty(), "{}\n{md}", r.figure);
            assert!(a.summary.values.iter().all(|v| v.is_finite() && *v > 0.0));
        }
        if r.target.is_some() && r.anchor.is_some() {
            assert!(r.met().is_some(), "{}: no verdict\n{md}", r.figure);
        }
    }
    for figure in [
        "getpid round trip",
        "write(2) 4 KiB",
        "write(2) 1 MiB",
        "read(2) 4 KiB",
        "read(2) 1 MiB",
        "getpid throughput, 1 client",
    ] {
        assert!(
            measured.iter().any(|r| r.figure.starts_with(figure)),
            "{figure} missing:\n{md}"
        );
    }
    // The table names the server it measured and speaks to its reader,
    // not to the issue that asked for it.
    assert!(
        md.starts_with("## sysproxy bench of sp serve (model kernel)\n"),
        "{md}"
    );
    assert!(
        md.contains("| sp serve (model kernel): median [min..max] |"),
        "{md}"
    );
    for word in ["ours", "issue", "C at"] {
        assert!(!md.contains(word), "{word:?} in the table:\n{md}");
    }
    let json = report.to_json();
    assert_eq!(
        json["rows"].as_array().map(Vec::len),
        Some(report.rows.len())
    );
}
