//! Project tasks. `cargo xtask <task>`:
//!
//! - `build-plugins`: build every plugin under `plugins/` (and the runtime's test fixtures) for
//!   `wasm32-unknown-unknown` with the `plugin` profile (release plus LTO), into
//!   `<target>/plugins/NAME.wasm` with content tables in `<target>/plugins/NAME/*.toml`. Installs
//!   the wasm target if it is missing.
//! - `test`: build the plugins, then run every test of the workspace and of `examples/`; a failing
//!   test binary or step does not stop the others, and the task fails if any failed.
//! - `run`: build the plugins and start the host on them.
//! - `bench`: run the criterion benchmarks.
//! - `load`: build the plugins and the host's release binaries, then run the HTTP load tool
//!   (`host/src/bin/load.rs`, `--help` for its options) against a host started separately.

#![allow(
    clippy::disallowed_macros,
    reason = "a command-line tool reports to its terminal"
)]

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

const WASM_TARGET: &str = "wasm32-unknown-unknown";
/// The cargo profile plugins are built with (the workspace's `[profile.plugin]`: release plus LTO).
const PLUGIN_PROFILE: &str = "plugin";

type Result<T> = std::result::Result<T, String>;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("build-plugins") => build_plugins().map(|_| ()),
        Some("test") => test(),
        Some("run") => run(&args[1..]),
        Some("bench") => bench(&args[1..]),
        Some("load") => load(&args[1..]),
        _ => Err(
            "usage: cargo xtask <build-plugins | test | run [-- host args] | bench [filter] | load [-- load args]>"
                .into(),
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    c
}

fn status(mut cmd: Command) -> Result<()> {
    let shown = format!("{cmd:?}");
    eprintln!("xtask: {shown}");
    let st = cmd.status().map_err(|e| format!("{shown}: {e}"))?;
    if st.success() {
        Ok(())
    } else {
        Err(format!("{shown} failed with {st}"))
    }
}

fn ensure_wasm_target() -> Result<()> {
    let out = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .current_dir(root())
        .output();
    match out {
        Ok(o)
            if String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l.trim() == WASM_TARGET) =>
        {
            Ok(())
        }
        Ok(_) => {
            let mut c = Command::new("rustup");
            c.args(["target", "add", WASM_TARGET]).current_dir(root());
            status(c)
        }
        // No rustup: trust that the toolchain has the target; cargo will say if not.
        Err(_) => Ok(()),
    }
}

/// Plugin crate folders under `plugins/`, by plugin name: the crates named `cauldron-plugin-NAME`.
/// Library crates beside them (the shared battle engine) are dependencies, not plugins.
fn plugin_names() -> Result<Vec<String>> {
    let is_plugin = |dir: &Path, name: &str| {
        std::fs::read_to_string(dir.join("Cargo.toml"))
            .is_ok_and(|text| text.contains(&format!("name = \"cauldron-plugin-{name}\"")))
    };
    let mut names: Vec<String> = std::fs::read_dir(root().join("plugins"))
        .map_err(|e| format!("plugins/: {e}"))?
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|name| is_plugin(&e.path(), name))
        })
        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
        .collect();
    names.sort();
    Ok(names)
}

fn wasm_build(package: &str, features: &[&str]) -> Result<PathBuf> {
    let mut c = cargo();
    c.args([
        "build",
        "--profile",
        PLUGIN_PROFILE,
        "--target",
        WASM_TARGET,
        "-p",
        package,
    ])
    .args(features);
    status(c)?;
    let file = format!("{}.wasm", package.replace('-', "_"));
    Ok(target_dir().join(WASM_TARGET).join(PLUGIN_PROFILE).join(file))
}

fn copy(from: &Path, to: &Path) -> Result<()> {
    // Copy beside the destination, then rename: a running host's watcher never sees half a file.
    let tmp = to.with_extension("tmp");
    std::fs::copy(from, &tmp).map_err(|e| format!("copy {} -> {}: {e}", from.display(), tmp.display()))?;
    std::fs::rename(&tmp, to).map_err(|e| format!("rename {}: {e}", to.display()))
}

/// Build all plugins and fixtures; returns the plugins folder.
fn build_plugins() -> Result<PathBuf> {
    ensure_wasm_target()?;
    let out = target_dir().join("plugins");
    let fixtures = target_dir().join("fixtures");
    std::fs::create_dir_all(&out).map_err(|e| e.to_string())?;
    std::fs::create_dir_all(&fixtures).map_err(|e| e.to_string())?;

    let names = plugin_names()?;
    let mut c = cargo();
    c.args(["build", "--profile", PLUGIN_PROFILE, "--target", WASM_TARGET]);
    for name in &names {
        c.args(["-p", &format!("cauldron-plugin-{name}")]);
    }
    status(c)?;
    for name in &names {
        let built = target_dir()
            .join(WASM_TARGET)
            .join(PLUGIN_PROFILE)
            .join(format!("cauldron_plugin_{name}.wasm"));
        copy(&built, &out.join(format!("{name}.wasm")))?;
        let content_out = out.join(name);
        std::fs::create_dir_all(&content_out).map_err(|e| e.to_string())?;
        if let Ok(entries) = std::fs::read_dir(root().join("plugins").join(name).join("content")) {
            for entry in entries.filter_map(|e| e.ok()) {
                if entry.path().extension().is_some_and(|x| x == "toml") {
                    copy(&entry.path(), &content_out.join(entry.file_name()))?;
                }
            }
        }
    }
    copy(&wasm_build("cauldron-probe", &[])?, &fixtures.join("probe.wasm"))?;
    copy(
        &wasm_build("cauldron-probe", &["--features", "v2"])?,
        &fixtures.join("probe_v2.wasm"),
    )?;
    eprintln!(
        "xtask: {} plugins in {}, fixtures in {}",
        names.len(),
        out.display(),
        fixtures.display()
    );
    Ok(out)
}

fn test() -> Result<()> {
    let plugins = build_plugins()?;
    let fixtures = target_dir().join("fixtures");
    // One failure must not hide the others: cargo runs every test binary (`--no-fail-fast`) and
    // every step below runs; the task fails at the end if any of them did.
    let mut failed = Vec::new();
    let mut c = cargo();
    c.args(["test", "--workspace", "--all-targets", "--no-fail-fast"])
        .env("CAULDRON_FIXTURES_DIR", &fixtures)
        .env("CAULDRON_PLUGINS_OUT", &plugins);
    failed.extend(status(c).err());
    // The modder's example is its own workspace: test it natively and build it for wasm.
    let examples = root().join("examples/Cargo.toml");
    let mut c = cargo();
    c.args(["test", "--no-fail-fast", "--manifest-path"])
        .arg(&examples)
        .env("CAULDRON_PLUGINS_OUT", &plugins);
    failed.extend(status(c).err());
    let mut c = cargo();
    c.args(["build", "--release", "--target", WASM_TARGET, "--manifest-path"])
        .arg(&examples);
    failed.extend(status(c).err());
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} step(s) failed:\n  {}",
            failed.len(),
            failed.join("\n  ")
        ))
    }
}

fn run(extra: &[String]) -> Result<()> {
    let plugins = build_plugins()?;
    let mut c = cargo();
    c.args([
        "run",
        "--release",
        "-p",
        "cauldron-host",
        "--bin",
        "cauldron",
        "--",
    ])
    .args(extra.iter().skip_while(|a| *a == "--"))
    .env(
        "PLUGINS_DIR",
        std::env::var_os("PLUGINS_DIR").unwrap_or_else(|| plugins.into_os_string()),
    );
    status(c)
}

fn bench(extra: &[String]) -> Result<()> {
    let plugins = build_plugins()?;
    let mut c = cargo();
    c.args(["bench", "-p", "cauldron-runtime", "--"])
        .args(extra)
        .env("CAULDRON_PLUGINS_OUT", &plugins);
    status(c)
}

/// Build what a load run needs (the plugins, the fixtures, the release host and the tool), then run
/// the tool. The host is started separately (see `host/src/bin/load.rs` for how), so the tool can
/// be pointed at any loopback host.
fn load(extra: &[String]) -> Result<()> {
    build_plugins()?;
    let mut c = cargo();
    c.args([
        "build",
        "--release",
        "-p",
        "cauldron-host",
        "--bin",
        "cauldron",
        "--bin",
        "load",
    ]);
    status(c)?;
    let mut c = Command::new(target_dir().join("release").join("load"));
    c.current_dir(root())
        .args(extra.iter().skip_while(|a| *a == "--"));
    status(c)
}
