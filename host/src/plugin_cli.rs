//! `cauldron plugin new | build | publish | status`: a modder's plugin from nothing to a running
//! host with the one `cauldron` binary.
//!
//! - `new NAME` writes a ready crate from the template in `host/templates/plugin/`: the crate types
//!   a plugin needs, the SDK dependency, a content table, a native test that passes and the wasm
//!   build settings. The SDK comes from the Cauldron checkout this binary was built from when it is
//!   still there (a path dependency), else from the crate registry (`--sdk-path` chooses a folder).
//! - `build` compiles the crate for `wasm32-unknown-unknown` (the target is installed with rustup
//!   when missing) in release mode with the template's settings, and writes the plugin's bundle
//!   (module and content tables) to `target/cauldron/NAME.bundle`.
//! - `publish --url URL` builds, then uploads the bundle to `POST /api/v1/admin/plugins/NAME` with
//!   the admin token from `ADMIN_TOKEN`.
//! - `status --url URL` prints what the host serves.

#![allow(
    clippy::disallowed_macros,
    reason = "a command-line tool reports to its terminal"
)]

use std::path::{Path, PathBuf};
use std::process::Command;

use clap::{Args, Subcommand};
use serde_json::Value;

/// The WebAssembly target plugins are built for.
pub const WASM_TARGET: &str = "wasm32-unknown-unknown";

/// `cauldron plugin`.
#[derive(Debug, Args)]
pub struct PluginArgs {
    /// Which tool.
    #[command(subcommand)]
    pub command: PluginCommand,
}

/// `cauldron plugin …`.
#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Create a plugin crate from the template, ready to test, build and publish.
    New(NewArgs),
    /// Build the plugin for wasm32 and write its bundle to target/cauldron/.
    Build(BuildArgs),
    /// Build the plugin and upload its bundle (module and content tables) to a host.
    Publish(PublishArgs),
    /// Show the plugins a host serves: versions, digests, load times, errors.
    Status(StatusArgs),
}

/// `cauldron plugin new`.
#[derive(Debug, Args)]
pub struct NewArgs {
    /// The plugin's name: 1-64 of a-z, 0-9, `_`, `-`, starting with a letter.
    pub name: String,
    /// Where to create the crate (default: ./NAME). Must not exist or be empty.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// The SDK crate folder to depend on (default: the checkout this binary was built from, if
    /// present; else the published crate).
    #[arg(long)]
    pub sdk_path: Option<PathBuf>,
}

/// `cauldron plugin build`.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The plugin crate's folder.
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
}

/// `cauldron plugin publish`.
#[derive(Debug, Args)]
pub struct PublishArgs {
    /// The plugin crate's folder.
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
    /// The host's base URL, e.g. http://localhost:3000.
    #[arg(long, env = "CAULDRON_URL")]
    pub url: String,
    /// The host's admin token.
    #[arg(long, env = "ADMIN_TOKEN", hide_env_values = true)]
    pub token: String,
    /// Upload the bundle already built instead of building first.
    #[arg(long)]
    pub no_build: bool,
}

/// `cauldron plugin status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The host's base URL, e.g. http://localhost:3000.
    #[arg(long, env = "CAULDRON_URL")]
    pub url: String,
    /// The host's admin token.
    #[arg(long, env = "ADMIN_TOKEN", hide_env_values = true)]
    pub token: String,
    /// Only this plugin.
    pub name: Option<String>,
    /// Print the host's JSON answer instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Runs a `cauldron plugin` command, printing what it did to stdout.
///
/// # Errors
/// What went wrong, in words for the terminal.
pub async fn run(command: PluginCommand) -> Result<(), String> {
    match command {
        PluginCommand::New(args) => new(&args),
        PluginCommand::Build(args) => build(&args.dir).map(|_| ()),
        PluginCommand::Publish(args) => publish(&args).await,
        PluginCommand::Status(args) => status(&args).await,
    }
}

/// Whether `name` is a plugin name the host accepts (and a crate name cargo accepts).
fn valid_name(name: &str) -> bool {
    name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// The SDK folder of the checkout this binary was built from, if it is still there.
fn checkout_sdk() -> Option<PathBuf> {
    let sdk = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdk");
    sdk.join("Cargo.toml")
        .is_file()
        .then(|| sdk.canonicalize().ok())
        .flatten()
}

/// A TOML basic string.
fn toml_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn new(args: &NewArgs) -> Result<(), String> {
    let name = args.name.as_str();
    if !valid_name(name) {
        return Err(format!(
            "`{name}` is not a plugin name: use 1-64 of a-z, 0-9, `_`, `-`, starting with a letter"
        ));
    }
    let dir = args.dir.clone().unwrap_or_else(|| PathBuf::from(name));
    if dir.exists()
        && std::fs::read_dir(&dir)
            .map_err(|e| format!("{}: {e}", dir.display()))?
            .next()
            .is_some()
    {
        return Err(format!("{} exists and is not empty", dir.display()));
    }
    let sdk_path = match &args.sdk_path {
        Some(p) => Some(
            p.canonicalize()
                .map_err(|e| format!("--sdk-path {}: {e}", p.display()))?,
        ),
        None => checkout_sdk(),
    };
    let (sdk_dep, sdk_dev_dep, from) = match &sdk_path {
        Some(p) => {
            let path = toml_str(&p.to_string_lossy());
            (
                format!("cauldron-sdk = {{ path = {path} }}"),
                format!("cauldron-sdk = {{ path = {path}, features = [\"testing\"] }}"),
                format!("the SDK at {}", p.display()),
            )
        }
        None => {
            let version = toml_str(env!("CARGO_PKG_VERSION"));
            (
                format!("cauldron-sdk = {version}"),
                format!("cauldron-sdk = {{ version = {version}, features = [\"testing\"] }}"),
                format!("cauldron-sdk {} from crates.io", env!("CARGO_PKG_VERSION")),
            )
        }
    };
    let ident = name.replace('-', "_");
    let fill = |template: &str| {
        template
            .replace("{{name}}", name)
            .replace("{{package}}", name)
            .replace("{{ident}}", &ident)
            .replace("{{type}}", &type_name(name))
            .replace("{{sdk_dep}}", &sdk_dep)
            .replace("{{sdk_dev_dep}}", &sdk_dev_dep)
    };
    let files: [(&str, &str); 5] = [
        ("Cargo.toml", include_str!("../templates/plugin/Cargo.toml.tmpl")),
        ("src/lib.rs", include_str!("../templates/plugin/lib.rs.tmpl")),
        (
            "content/rewards.toml",
            include_str!("../templates/plugin/rewards.toml.tmpl"),
        ),
        ("README.md", include_str!("../templates/plugin/README.md.tmpl")),
        (".gitignore", include_str!("../templates/plugin/gitignore.tmpl")),
    ];
    for (file, template) in files {
        let path = dir.join(file);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        std::fs::write(&path, fill(template)).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    println!("created plugin `{name}` in {} (depends on {from})", dir.display());
    println!(
        "next: cd {} && cargo test && cauldron plugin build",
        dir.display()
    );
    Ok(())
}

/// `fortune-teller` → `FortuneTeller`.
fn type_name(name: &str) -> String {
    name.split(['-', '_'])
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// What `cargo metadata` says about the crate in `dir`: its plugin name, lib file stem and the
/// target folder.
struct CrateInfo {
    plugin: String,
    lib_stem: String,
    target_dir: PathBuf,
    root: PathBuf,
}

fn crate_info(dir: &Path) -> Result<CrateInfo, String> {
    let out = Command::new(cargo())
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--manifest-path",
        ])
        .arg(dir.join("Cargo.toml"))
        .output()
        .map_err(|e| format!("cargo metadata: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "cargo metadata in {}: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let meta: Value = serde_json::from_slice(&out.stdout).map_err(|e| format!("cargo metadata: {e}"))?;
    let manifest = dir
        .join("Cargo.toml")
        .canonicalize()
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    let package = meta["packages"]
        .as_array()
        .and_then(|ps| {
            ps.iter()
                .find(|p| p["manifest_path"].as_str().map(Path::new) == Some(manifest.as_path()))
        })
        .ok_or_else(|| format!("{} is not a crate", dir.display()))?;
    let package_name = package["name"].as_str().unwrap_or_default();
    let plugin = package["metadata"]["cauldron"]["plugin"]
        .as_str()
        .unwrap_or(package_name)
        .to_owned();
    let lib_stem = package["targets"]
        .as_array()
        .and_then(|ts| {
            ts.iter().find(|t| {
                t["crate_types"]
                    .as_array()
                    .is_some_and(|c| c.iter().any(|c| c == "cdylib"))
            })
        })
        .and_then(|t| t["name"].as_str())
        .map(|n| n.replace('-', "_"))
        .ok_or_else(|| {
            format!(
                "{}: no `cdylib` library: a plugin needs `[lib] crate-type = [\"cdylib\", \"rlib\"]`",
                manifest.display()
            )
        })?;
    let target_dir = meta["target_directory"]
        .as_str()
        .map(PathBuf::from)
        .ok_or("cargo metadata: no target directory")?;
    Ok(CrateInfo {
        plugin,
        lib_stem,
        target_dir,
        root: dir.to_path_buf(),
    })
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

/// Installs the wasm target with rustup when it is missing (a toolchain without rustup is left
/// to fail the build with cargo's own message).
fn ensure_wasm_target() {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l.trim() == WASM_TARGET)
        });
    if installed == Some(false) {
        println!("installing the {WASM_TARGET} target with rustup");
        let _ = Command::new("rustup")
            .args(["target", "add", WASM_TARGET])
            .status();
    }
}

/// The built plugin: its name, its bundle file and the bundle's digest.
struct Built {
    plugin: String,
    bundle: PathBuf,
}

fn build(dir: &Path) -> Result<Built, String> {
    let info = crate_info(dir)?;
    ensure_wasm_target();
    let status = Command::new(cargo())
        .args(["build", "--release", "--target", WASM_TARGET, "--manifest-path"])
        .arg(dir.join("Cargo.toml"))
        .status()
        .map_err(|e| format!("cargo build: {e}"))?;
    if !status.success() {
        return Err(format!("cargo build failed ({status})"));
    }
    let wasm_path = info
        .target_dir
        .join(WASM_TARGET)
        .join("release")
        .join(format!("{}.wasm", info.lib_stem));
    let wasm = std::fs::read(&wasm_path).map_err(|e| format!("{}: {e}", wasm_path.display()))?;
    let bundle = cauldron_runtime::Bundle::with_content_dir(wasm, &info.root.join("content"))
        .map_err(|e| e.to_string())?;
    let out_dir = info.target_dir.join("cauldron");
    std::fs::create_dir_all(&out_dir).map_err(|e| format!("{}: {e}", out_dir.display()))?;
    let out = out_dir.join(format!("{}.bundle", info.plugin));
    let bytes = bundle.encode();
    std::fs::write(&out, &bytes).map_err(|e| format!("{}: {e}", out.display()))?;
    println!(
        "built plugin `{}`: {} ({} bytes of wasm, {} content table(s), digest {})",
        info.plugin,
        out.display(),
        bundle.wasm.len(),
        bundle.content.len(),
        bundle.digest()
    );
    Ok(Built {
        plugin: info.plugin,
        bundle: out,
    })
}

async fn publish(args: &PublishArgs) -> Result<(), String> {
    let built = if args.no_build {
        let info = crate_info(&args.dir)?;
        Built {
            bundle: info
                .target_dir
                .join("cauldron")
                .join(format!("{}.bundle", info.plugin)),
            plugin: info.plugin,
        }
    } else {
        build(&args.dir)?
    };
    let bytes = std::fs::read(&built.bundle).map_err(|e| format!("{}: {e}", built.bundle.display()))?;
    let url = format!(
        "{}/api/v1/admin/plugins/{}",
        args.url.trim_end_matches('/'),
        built.plugin
    );
    let resp = reqwest::Client::new()
        .post(&url)
        .bearer_auth(&args.token)
        .header(reqwest::header::CONTENT_TYPE, cauldron_runtime::BUNDLE_MEDIA_TYPE)
        .body(bytes)
        .send()
        .await
        .map_err(|e| format!("POST {url}: {e}"))?;
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        let message = body["error"]["message"].as_str().unwrap_or("no message");
        return Err(format!("the host refused the upload ({status}): {message}"));
    }
    println!(
        "published `{}` {} (digest {}) to {}",
        built.plugin,
        body["version"].as_str().unwrap_or("?"),
        body["sha256"].as_str().unwrap_or("?"),
        args.url
    );
    Ok(())
}

async fn status(args: &StatusArgs) -> Result<(), String> {
    let url = format!("{}/api/v1/admin/plugins", args.url.trim_end_matches('/'));
    let resp = reqwest::Client::new()
        .get(&url)
        .bearer_auth(&args.token)
        .send()
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    let status = resp.status();
    let body: Value = resp.json().await.map_err(|e| format!("GET {url}: {e}"))?;
    if !status.is_success() {
        let message = body["error"]["message"].as_str().unwrap_or("no message");
        return Err(format!("the host answered {status}: {message}"));
    }
    let plugins: Vec<&Value> = body
        .as_array()
        .map(|ps| {
            ps.iter()
                .filter(|p| args.name.as_deref().is_none_or(|n| p["name"] == n))
                .collect()
        })
        .unwrap_or_default();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&plugins).unwrap_or_default());
        return Ok(());
    }
    if plugins.is_empty() {
        return Err(match &args.name {
            Some(n) => format!("the host serves no plugin `{n}`"),
            None => "the host serves no plugin".into(),
        });
    }
    println!("{:<14} {:<10} {:<14} STATUS", "PLUGIN", "VERSION", "DIGEST");
    for p in plugins {
        let digest = p["sha256"].as_str().unwrap_or("-");
        let error = p["last_error"].as_str();
        println!(
            "{:<14} {:<10} {:<14} {}",
            p["name"].as_str().unwrap_or("?"),
            p["version"].as_str().unwrap_or("-"),
            &digest[..digest.len().min(12)],
            error.map_or_else(|| "serving".to_owned(), |e| format!("last load refused: {e}"))
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_names_follow_the_host_rules() {
        assert!(valid_name("fortune"));
        assert!(valid_name("fortune-teller_2"));
        assert!(!valid_name(""));
        assert!(!valid_name("2fortune"));
        assert!(!valid_name("Fortune"));
        assert!(!valid_name("for tune"));
        assert!(!valid_name(&"a".repeat(65)));
    }

    #[test]
    fn type_names_are_camel_case() {
        assert_eq!(type_name("fortune-teller_2"), "FortuneTeller2");
        assert_eq!(type_name("dice"), "Dice");
    }

    #[test]
    fn toml_strings_are_escaped() {
        assert_eq!(toml_str(r#"C:\a "b""#), r#""C:\\a \"b\"""#);
    }
}
