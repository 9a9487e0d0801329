//! Flag validation of the `tally` binary: bad flags exit non-zero with a
//! message that says what to do, before any worker starts. (Having this
//! integration test also makes `cargo test` build the `tally` binary that
//! the end-to-end tests in the top-level `tests/` run.)
#![allow(clippy::unwrap_used)]

use std::process::Command;

fn tally(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tally"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn help_lists_the_subcommands() {
    let (code, out, _) = tally(&["--help"]);
    assert_eq!(code, 0);
    for sub in ["run", "gen", "workers", "demo"] {
        assert!(out.contains(sub), "{sub} missing from:\n{out}");
    }
}

#[test]
fn usage_errors_say_what_to_do() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["run", "x.csv", "--agg", "median(x)"],
            "unknown function `median`",
        ),
        (&["run", "x.csv", "--agg", "sum"], "needs a column"),
        (
            &["run", "x.csv", "--no-header"],
            "--no-header needs --columns",
        ),
        (
            &[
                "run",
                "x.csv",
                "--no-header",
                "--columns",
                "a,b",
                "--by",
                "c",
            ],
            "column `c` is not among --columns",
        ),
        (&["run", "x.csv", "--delimiter", ";;"], "not a single byte"),
        (&["run", "x.csv", "--chunk-size", "8Q"], "unknown size unit"),
        (&["run", "x.csv", "-j", "0"], "at least 1"),
        (
            &[
                "run", "x.csv", "--by", "a", "--agg", "count", "--format", "1brc",
            ],
            "--format 1brc needs",
        ),
    ];
    for (args, needle) in cases {
        let (code, _, err) = tally(args);
        assert_ne!(code, 0, "{args:?} should fail");
        assert!(
            err.contains(needle),
            "{args:?}: expected `{needle}` in:\n{err}"
        );
        assert!(!err.contains("panicked"), "{args:?} panicked:\n{err}");
    }
}
