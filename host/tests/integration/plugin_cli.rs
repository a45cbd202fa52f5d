//! `cauldron plugin new | build | publish | status` as a modder runs them: a new plugin crate in a
//! temporary folder, its native test, its wasm build, and its upload to a running host, which then
//! serves its action over HTTP.
//!
//! The new crate builds serde and the SDK natively and for wasm32; its build output goes to a
//! folder under `CARGO_TARGET_DIR` (when set, as `.ci/run` sets it) so that a second run is warm.

#![allow(clippy::unwrap_used, reason = "an unwrap is an assertion here")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{Backend, TestApp};

const ADMIN_TOKEN: &str = "plugin-cli-test-admin-token-0123456789abcdef";

/// `cauldron ARGS` in `dir`, with the new crate's build output in `target`.
fn cauldron(dir: &Path, target: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cauldron"));
    c.current_dir(dir).args(args).env("CARGO_TARGET_DIR", target);
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "cauldron {args:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Where the new crate builds: kept warm under the test run's target folder when there is one.
fn build_dir(tmp: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(|d| PathBuf::from(d).join("plugin-cli-test"))
        .unwrap_or_else(|| tmp.join("target"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_plugin_is_tested_built_and_published_to_a_running_host() {
    let tmp = tempfile::tempdir().unwrap();
    let target = build_dir(tmp.path());

    // new: a crate that builds, with its SDK from this checkout.
    let out = cauldron(tmp.path(), &target, &["plugin", "new", "trainer"], &[]);
    assert!(
        stdout(&out).contains("created plugin `trainer`"),
        "{}",
        stdout(&out)
    );
    let krate = tmp.path().join("trainer");
    for file in ["Cargo.toml", "src/lib.rs", "content/rewards.toml", "README.md"] {
        assert!(krate.join(file).is_file(), "{file} missing");
    }
    // A second `new` into the same folder is refused, and so is a bad name.
    let again = Command::new(env!("CARGO_BIN_EXE_cauldron"))
        .current_dir(tmp.path())
        .args(["plugin", "new", "trainer"])
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("not empty"));
    let bad = Command::new(env!("CARGO_BIN_EXE_cauldron"))
        .current_dir(tmp.path())
        .args(["plugin", "new", "Bad Name"])
        .output()
        .unwrap();
    assert!(!bad.status.success());

    // Its native test passes.
    let test = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(&krate)
        .env("CARGO_TARGET_DIR", &target)
        .args(["test", "--quiet"])
        .output()
        .unwrap();
    assert!(
        test.status.success(),
        "cargo test of the new plugin:\n{}\n{}",
        String::from_utf8_lossy(&test.stdout),
        String::from_utf8_lossy(&test.stderr)
    );

    // build: the wasm and the bundle.
    let out = cauldron(&krate, &target, &["plugin", "build"], &[]);
    let bundle = target.join("cauldron/trainer.bundle");
    assert!(bundle.is_file(), "{}", stdout(&out));

    // publish to a running host, then play its action over HTTP.
    let app = TestApp::start_with(Backend::SqliteLocal, &[("ADMIN_TOKEN", ADMIN_TOKEN)]).await;
    let out = cauldron(
        &krate,
        &target,
        &["plugin", "publish", "--no-build", "--url", &app.base],
        &[("ADMIN_TOKEN", ADMIN_TOKEN)],
    );
    assert!(
        stdout(&out).contains("published `trainer` 0.1.0"),
        "{}",
        stdout(&out)
    );

    let registered: Value = app
        .http
        .post(app.url("/api/v1/auth/register"))
        .json(&json!({"username": "modder_1", "password": "hunter2hunter2"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = registered["token"].as_str().unwrap();
    let resp = app
        .http
        .post(app.url("/api/v1/actions/trainer/train"))
        .bearer_auth(token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["reply"], json!({"stones": 10, "left_today": 4}), "{body}");

    // status shows it serving.
    let out = cauldron(
        &krate,
        &target,
        &["plugin", "status", "--url", &app.base, "trainer"],
        &[("ADMIN_TOKEN", ADMIN_TOKEN)],
    );
    let shown = stdout(&out);
    assert!(
        shown.contains("trainer") && shown.contains("0.1.0") && shown.contains("serving"),
        "{shown}"
    );
}
