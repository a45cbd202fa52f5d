//! Real `cauldron` processes (the binary cargo built for the test) sharing one PostgreSQL database
//! and one Redis key prefix, as replicas behind nginx would: [`Shared`] makes the database and the
//! prefix and removes both on drop, [`Host`] runs one process (its own plugins folder and module
//! cache) and kills it on drop. Used by `cluster.rs` and `nginx.rs`. [`PgServer`] is a PostgreSQL
//! server of a test's own, for tests that stop and start the database under the hosts.
//!
//! Needs what the API tests need (see `mod.rs`): PostgreSQL, Redis, and the plugins built; for
//! [`PgServer`], PostgreSQL's server programs (the folder `CAULDRON_TEST_PG_BIN`, else the newest
//! `/usr/lib/postgresql/*/bin` as Debian installs them, else `PATH`).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use super::{PgDb, RedisKeys, TEST_SECRET, copy_dir, env_dir, random_u64, redis_url};

/// The hosts' `ADMIN_TOKEN`.
pub(crate) const ADMIN_TOKEN: &str = "cluster-test-admin-token-0123456789abcdef";
/// How long a socket waits for its next message.
pub(crate) const DEADLINE: Duration = Duration::from_secs(10);

/// What the hosts of one test share: a database (made fresh on the test server unless given) and a
/// Redis prefix, removed on drop.
pub(crate) struct Shared {
    /// The database's URL (for tests that reach into it).
    pub(crate) database_url: String,
    redis: RedisKeys,
    _pg: Option<PgDb>,
}

impl Shared {
    /// A database named `cauldron_{label}_…` and a prefix `cauldron-{label}-test:…:`.
    pub(crate) async fn new(label: &str) -> Self {
        let (pg, database_url) = PgDb::create(label).await;
        Self {
            database_url,
            redis: RedisKeys {
                prefix: format!("cauldron-{label}-test:{:016x}:", random_u64()),
            },
            _pg: Some(pg),
        }
    }

    /// The database at `database_url` (which the caller owns) and a prefix `cauldron-{label}-test:…:`.
    pub(crate) fn on_database(label: &str, database_url: String) -> Self {
        Self {
            database_url,
            redis: RedisKeys {
                prefix: format!("cauldron-{label}-test:{:016x}:", random_u64()),
            },
            _pg: None,
        }
    }
}

/// A PostgreSQL server of the test's own: a fresh cluster in a temporary folder, on a free port of
/// 127.0.0.1, trust authentication for `postgres`. Unlike the shared test server, it may be stopped
/// and started. PostgreSQL refuses to run as root, so under root (as in CI) every server program runs
/// as the `postgres` user, which then owns the folder. Stopped (immediately) and removed on drop.
pub(crate) struct PgServer {
    dir: tempfile::TempDir,
    port: u16,
    as_postgres: bool,
}

impl PgServer {
    /// Create the cluster and start the server (returns once it accepts connections).
    pub(crate) fn start() -> Self {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let as_postgres = std::fs::metadata("/proc/self").unwrap().uid() == 0;
        if as_postgres {
            let chown = Command::new("chown")
                .arg("postgres:")
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(chown.success(), "chown of the PostgreSQL folder failed");
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let server = Self {
            dir,
            port,
            as_postgres,
        };
        let data = server.data();
        server.run(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        server.start_again(true);
        server
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`.
    pub(crate) fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Stop the server now (`immediate`: connections are cut, no shutdown checkpoint; the next start
    /// recovers from the write-ahead log, as after a crash). Returns once it is down.
    pub(crate) fn stop(&self) {
        self.run("pg_ctl", &["-D", &self.data(), "-m", "immediate", "-w", "stop"]);
    }

    /// Start the stopped server on the same port; with `wait`, return once it accepts connections,
    /// else right after launching it (the caller polls, to see the moment it is back).
    pub(crate) fn start_again(&self, wait: bool) {
        let dir = self.dir.path().display().to_string();
        let options = format!("-p {} -k {dir} -c listen_addresses=127.0.0.1", self.port);
        let log = format!("{dir}/server.log");
        let wait = if wait { "-w" } else { "-W" };
        self.run(
            "pg_ctl",
            &["-D", &self.data(), "-o", &options, "-l", &log, wait, "start"],
        );
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    /// One of PostgreSQL's programs, run as `postgres` under root.
    fn command(&self, program: &str) -> Command {
        let bin = pg_bin_dir().map_or_else(|| PathBuf::from(program), |dir| dir.join(program));
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&bin);
            c
        } else {
            Command::new(&bin)
        }
    }

    /// Run one of PostgreSQL's programs and check that it succeeded.
    fn run(&self, program: &str, args: &[&str]) {
        let out = self
            .command(program)
            .args(args)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{program} {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Where PostgreSQL's server programs are, if not on `PATH` (see the module docs).
fn pg_bin_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("CAULDRON_TEST_PG_BIN") {
        return Some(PathBuf::from(dir));
    }
    std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| {
            let entry = e.ok()?;
            let version: u32 = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .max()
        .map(|(_, bin)| bin)
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let data = self.data();
        let _ = self
            .command("pg_ctl")
            .args(["-D", &data, "-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// One `cauldron` process; killed on drop.
pub(crate) struct Host {
    /// `http://127.0.0.1:PORT`.
    pub(crate) base: String,
    /// `127.0.0.1:PORT`.
    pub(crate) addr: String,
    child: Child,
    _dir: tempfile::TempDir,
}

/// Reads a host's JSON log lines (whole lines only) on a thread of its own, sends the address of its
/// `serving` line, and keeps draining the pipe so the host never blocks on a full one.
pub(crate) fn bound_address(
    stdout: std::process::ChildStdout,
) -> std::sync::mpsc::Receiver<std::net::SocketAddr> {
    use std::io::BufRead as _;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let Ok(entry) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            if entry["message"] == "serving"
                && let Some(addr) = entry["addr"].as_str().and_then(|a| a.parse().ok())
            {
                let _ = tx.send(addr);
            }
        }
    });
    rx
}

impl Host {
    /// A host on `shared` with the test defaults, once `/readyz` answers 200.
    pub(crate) async fn start(shared: &Shared) -> Self {
        Self::start_with(shared, &[]).await
    }

    /// A host with the test defaults plus `vars` (environment variable names and values).
    pub(crate) async fn start_with(shared: &Shared, vars: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let plugins = dir.path().join("plugins");
        copy_dir(&env_dir("CAULDRON_PLUGINS_OUT"), &plugins);
        std::fs::copy(
            env_dir("CAULDRON_FIXTURES_DIR").join("probe.wasm"),
            plugins.join("probe.wasm"),
        )
        .unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_cauldron"));
        command
            .current_dir(dir.path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("DATABASE_URL", &shared.database_url)
            .env("REDIS_URL", redis_url())
            .env("REDIS_KEY_PREFIX", &shared.redis.prefix)
            .env("JWT_SECRET", TEST_SECRET)
            .env("ADMIN_TOKEN", ADMIN_TOKEN)
            .env("PLUGINS_DIR", &plugins)
            .env("WEB_DIR", dir.path().join("no-web"))
            .env("MODULE_CACHE_DIR", super::shared_module_cache())
            .env("RATE_LIMIT_ACTION_BURST", "1000")
            // Test clients all connect from loopback: the per-address limits would make a test's
            // clients share a few registrations. Tests of the limits set their own.
            .env("RATE_LIMIT_REGISTER_BURST", "1000000")
            .env("RATE_LIMIT_LOGIN_ADDR_BURST", "1000000")
            .env("PASSWORD_HASH_WAIT_MS", "60000")
            .env("SHUTDOWN_TIMEOUT_SECS", "5")
            .env("BIND_ADDR", "127.0.0.1")
            // The host binds a port the system picks and logs it: no port is chosen here and
            // released for the host to take again, so no other process can take it in between.
            .env("PORT", "0")
            .env("LOG_LEVEL", "warn,cauldron=info")
            .env("LOG_FORMAT", "json")
            .stdout(Stdio::piped());
        for (k, v) in vars {
            command.env(k, v);
        }
        let mut child = command.spawn().unwrap();
        let bound = bound_address(child.stdout.take().unwrap());
        let deadline = Instant::now() + Duration::from_secs(60);
        let port = loop {
            match bound.recv_timeout(Duration::from_millis(50)) {
                Ok(addr) => break addr.port(),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    panic!("host exited before it served: {:?}", child.wait())
                }
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!("host exited before it served: {status}");
            }
            assert!(Instant::now() < deadline, "host did not start serving");
        };
        let mut host = Self {
            base: format!("http://127.0.0.1:{port}"),
            addr: format!("127.0.0.1:{port}"),
            child,
            _dir: dir,
        };
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = http.get(host.url("/readyz")).send().await
                && r.status().is_success()
            {
                break;
            }
            if let Some(status) = host.child.try_wait().unwrap() {
                panic!("host on {port} exited before it was ready: {status}");
            }
            assert!(Instant::now() < deadline, "host on {port} did not become ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        host
    }

    /// The URL of `path` on this host.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Kill the process (SIGKILL: no goodbye to anyone) and wait until it is gone, so its sockets
    /// are closed when this returns.
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stop the process as an orchestrator would (SIGTERM: stop accepting, finish what is in flight,
    /// close the WebSockets) and wait until it is gone; killed if it is still there after 30 s.
    pub(crate) async fn terminate(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.kill();
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The bytes of a fixture built by `cargo xtask build-plugins` (`probe_v2.wasm`, ...).
pub(crate) fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(env_dir("CAULDRON_FIXTURES_DIR").join(name)).unwrap()
}

/// `POST base+path` with a bearer token and a JSON body: the status and the JSON answer (`Null` if
/// it was not JSON).
pub(crate) async fn post_json(base: &str, path: &str, token: &str, body: &Value) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// The probe's `shout` action at `base` as the player of `token`: a player event and a global event
/// carrying `n`.
pub(crate) async fn shout(base: &str, token: &str, n: i64) -> (u16, Value) {
    post_json(base, "/api/v1/actions/probe/shout", token, &json!({ "n": n })).await
}

/// [`post_json`] to a host.
pub(crate) async fn post(host: &Host, path: &str, token: &str, body: &Value) -> (u16, Value) {
    post_json(&host.base, path, token, body).await
}

/// A new account (and so a new character) registered at `base`: its token, player id and username.
pub(crate) async fn register_at(base: &str) -> (String, i64, String) {
    let username = format!("cl_{:08x}", random_u64() as u32);
    let resp = reqwest::Client::new()
        .post(format!("{base}/api/v1/auth/register"))
        .json(&json!({"username": username, "password": "hunter2hunter2"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let body: Value = resp.json().await.unwrap();
    (
        body["token"].as_str().unwrap().to_owned(),
        body["player"]["id"].as_i64().unwrap(),
        username,
    )
}

/// [`register_at`] a host.
pub(crate) async fn register(host: &Host) -> (String, i64, String) {
    register_at(&host.base).await
}

/// A WebSocket client connection.
pub(crate) type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The next message other than `presence`, within [`DEADLINE`].
pub(crate) async fn next(socket: &mut Socket) -> Value {
    let read = async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(&t).unwrap();
                    if v["type"] != "presence" {
                        return v;
                    }
                }
                Some(Ok(_)) => {}
                other => panic!("socket ended: {other:?}"),
            }
        }
    };
    tokio::time::timeout(DEADLINE, read)
        .await
        .expect("a message within the deadline")
}
