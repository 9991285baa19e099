//! The bench harness as a smoke test: a tiny run over unix with the real
//! `sp` binary (server, echo peer and client processes) that checks every
//! row produced numbers. No timing is asserted.

use sp_testkit::bench::report::{Anchor, Status};
use sp_testkit::bench::{self, Mode, Options};
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
        let ours = r.ours.as_ref().expect("numbers");
        assert!(
            ours.values.len() >= 2 && ours.values.iter().all(|v| v.is_finite() && *v > 0.0),
            "{}: {ours:?}\n{md}",
            r.figure
        );
        if let Some(Anchor::Measured { summary, .. }) = &r.anchor {
            assert!(summary.values.iter().all(|v| v.is_finite() && *v > 0.0));
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
    let json = report.to_json();
    assert_eq!(
        json["rows"].as_array().map(Vec::len),
        Some(report.rows.len())
    );
}
