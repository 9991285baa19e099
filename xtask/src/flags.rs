//! The subcommands and their arguments, declared in one place: `COMMANDS`
//! drives both the help text and the parser.

/// A parsed command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cmd {
    /// fmt, clippy, tests (and the `#[ignore]`d stress tests with `stress`).
    Test {
        /// Also run the ignored stress tests.
        stress: bool,
    },
    /// Every fuzz target for `secs` seconds each.
    Fuzz {
        /// Seconds per target.
        secs: u64,
    },
    /// The benchmarks: `sp bench`, then the codec's criterion benches.
    Bench {
        /// A short measurement (under two minutes), without the codec benches.
        quick: bool,
    },
    /// The opt-in real-kernel tests and the stock-against-ours bench
    /// (needs `SP_RUMP_PREFIX`).
    Rump {
        /// One round of each bench instead of three.
        quick: bool,
    },
    /// Print the help.
    Help,
}

/// Seconds per fuzz target when none are given.
pub const DEFAULT_FUZZ_SECS: u64 = 60;

/// Name, arguments, what it does.
pub const COMMANDS: &[(&str, &str, &str)] = &[
    (
        "test",
        "[--stress]",
        "cargo fmt --check, clippy -D warnings, cargo test (--stress: also the #[ignore]d tests)",
    ),
    (
        "fuzz",
        "[SECS]",
        "run every target in fuzz/fuzz_targets for SECS seconds each (default 60)",
    ),
    (
        "bench",
        "[--quick]",
        "sp bench (server vs raw anchors: table + target/bench/*.json), then the codec benches (--quick: < 2 min, no codec benches)",
    ),
    (
        "rump",
        "[--quick]",
        "with SP_RUMP_PREFIX: the real-kernel tests, then the stock rump_server against ours preloaded, benched in one run (--quick: one round)",
    ),
    ("help", "", "print this help"),
];

/// The help text.
pub fn usage() -> String {
    let mut s = String::from("usage: cargo xtask <command> [args]\n\ncommands:\n");
    for (name, args, what) in COMMANDS {
        s.push_str(&format!("  {:<20} {what}\n", format!("{name} {args}")));
    }
    s
}

/// Parses the arguments after the program name.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Cmd, String> {
    let mut args = args.into_iter();
    let Some(name) = args.next() else {
        return Ok(Cmd::Help);
    };
    let rest: Vec<String> = args.collect();
    let flag = |flag: &str| -> Result<bool, String> {
        match rest.as_slice() {
            [] => Ok(false),
            [a] if a == flag => Ok(true),
            _ => Err(format!(
                "`{name}` takes only {flag}, got: {}",
                rest.join(" ")
            )),
        }
    };
    match name.as_str() {
        "test" => Ok(Cmd::Test {
            stress: flag("--stress")?,
        }),
        "bench" => Ok(Cmd::Bench {
            quick: flag("--quick")?,
        }),
        "rump" => Ok(Cmd::Rump {
            quick: flag("--quick")?,
        }),
        "fuzz" => match rest.as_slice() {
            [] => Ok(Cmd::Fuzz {
                secs: DEFAULT_FUZZ_SECS,
            }),
            [s] => match s.parse::<u64>() {
                Ok(secs) if secs > 0 => Ok(Cmd::Fuzz { secs }),
                _ => Err(format!("`fuzz` takes a number of seconds (> 0), got `{s}`")),
            },
            _ => Err(format!(
                "`fuzz` takes at most one argument, got: {}",
                rest.join(" ")
            )),
        },
        "help" | "-h" | "--help" => Ok(Cmd::Help),
        other => Err(format!("unknown command `{other}`")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Cmd, String> {
        parse(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn parses_every_command() {
        assert_eq!(p(&[]), Ok(Cmd::Help));
        assert_eq!(p(&["test"]), Ok(Cmd::Test { stress: false }));
        assert_eq!(p(&["test", "--stress"]), Ok(Cmd::Test { stress: true }));
        assert_eq!(
            p(&["fuzz"]),
            Ok(Cmd::Fuzz {
                secs: DEFAULT_FUZZ_SECS
            })
        );
        assert_eq!(p(&["fuzz", "30"]), Ok(Cmd::Fuzz { secs: 30 }));
        assert_eq!(p(&["bench"]), Ok(Cmd::Bench { quick: false }));
        assert_eq!(p(&["bench", "--quick"]), Ok(Cmd::Bench { quick: true }));
        assert_eq!(p(&["rump"]), Ok(Cmd::Rump { quick: false }));
        assert_eq!(p(&["rump", "--quick"]), Ok(Cmd::Rump { quick: true }));
        assert_eq!(p(&["--help"]), Ok(Cmd::Help));
    }

    #[test]
    fn refuses_what_it_does_not_know() {
        assert!(p(&["tset"]).is_err());
        assert!(p(&["test", "--quick"]).is_err());
        assert!(p(&["test", "--stress", "x"]).is_err());
        assert!(p(&["fuzz", "0"]).is_err());
        assert!(p(&["fuzz", "ten"]).is_err());
        assert!(p(&["fuzz", "1", "2"]).is_err());
        assert!(p(&["bench", "--stress"]).is_err());
    }

    #[test]
    fn help_lists_every_command() {
        let u = usage();
        for (name, _, _) in COMMANDS {
            assert!(u.contains(name), "{name} missing from the help");
            if *name != "help" {
                assert!(p(&[name]).is_ok(), "{name} in COMMANDS but not parsed");
            }
        }
    }
}
