//! The `cauldron` binary's command line: help, subcommands, and how it refuses bad settings. Runs
//! the binary cargo built for this test with a clean environment in an empty folder; needs nothing
//! else (the one case that opens a database uses an SQLite file in that folder).

#![allow(clippy::unwrap_used, reason = "an unwrap is an assertion here")]

use std::process::{Command, Output};

/// Run `cauldron args` with only `vars` (and `PATH`) in its environment, in an empty folder.
fn cauldron(args: &[&str], vars: &[(&str, &str)]) -> (Output, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_cauldron"));
    command
        .args(args)
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default());
    for (k, v) in vars {
        command.env(k, v);
    }
    (command.output().unwrap(), dir)
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn help_lists_the_subcommands_and_every_setting_with_its_variable_and_default() {
    let (out, _dir) = cauldron(&["--help"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let help = stdout(&out);
    for text in [
        "serve",
        "migrate",
        "plugin",
        "replay",
        "--port <PORT>",
        "[env: PORT=]",
        "[default: 3000]",
        "[env: DATABASE_URL",
        "[env: GROUP_COMMIT_WINDOW_US",
        "[env: CAULDRON_WASM_PROFILER",
        "- production:",
    ] {
        assert!(help.contains(text), "`{text}` missing from --help:\n{help}");
    }
    // The short help too.
    let (out, _dir) = cauldron(&["-h"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("[possible values: development, production]"),
        "{}",
        stdout(&out)
    );
    // A secret set in the environment is not shown.
    let (out, _dir) = cauldron(&["serve", "--help"], &[("JWT_SECRET", "hunter2-hunter2")]);
    assert!(out.status.success(), "{}", stderr(&out));
    let help = stdout(&out);
    assert!(help.contains("[env: JWT_SECRET"), "{help}");
    assert!(!help.contains("hunter2"), "{help}");
    // `cauldron replay --help` names its filters; a usage error is status 1, not a report's 2 or 3.
    let (out, _dir) = cauldron(&["replay", "--help"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("--candidate"), "{}", stdout(&out));
    let (out, _dir) = cauldron(&["replay", "--plugin", "cultivation", "--bogus"], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("--bogus"), "{}", stderr(&out));
}

#[test]
fn a_bad_value_stops_start_up_naming_its_variable() {
    let (out, _dir) = cauldron(&[], &[("PORT", "http")]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("PORT: `http` is not valid"), "{err}");

    let (out, _dir) = cauldron(&["serve"], &[("GROUP_COMMIT_WINDOW_US", "200000")]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("GROUP_COMMIT_WINDOW_US"),
        "{}",
        stderr(&out)
    );

    let (out, _dir) = cauldron(&["--port", "99999"], &[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("PORT: `99999` is not valid"),
        "{}",
        stderr(&out)
    );

    let (out, _dir) = cauldron(&[], &[("CAULDRON_ENV", "production")]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("JWT_SECRET: is required in production"), "{err}");

    let (out, _dir) = cauldron(&["--no-such-flag"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--no-such-flag"), "{}", stderr(&out));
}

#[test]
fn migrate_applies_the_schema_and_exits_with_empty_variables_unset() {
    // Empty variables, as compose's env_file passes `ADMIN_TOKEN=`, count as unset.
    let (out, dir) = cauldron(
        &["migrate"],
        &[
            ("DATABASE_URL", "sqlite://game.db"),
            ("PORT", ""),
            ("ADMIN_TOKEN", ""),
            ("REDIS_URL", " "),
            ("LOG_FORMAT", "json"),
        ],
    );
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert!(dir.path().join("game.db").is_file());
    assert!(
        stdout(&out).contains("database schema up to date"),
        "{}",
        stdout(&out)
    );
}
