//! Start the real host on an ephemeral port, against PostgreSQL + Redis or SQLite + in-process
//! services, with the real plugins and the probe fixture; clean everything up on drop.
//!
//! Needs the plugins built for wasm32: `cargo xtask test` sets `CAULDRON_PLUGINS_OUT` and
//! `CAULDRON_FIXTURES_DIR`; for a bare `cargo test`, run `cargo xtask build-plugins` and export them
//! (`$CARGO_TARGET_DIR/plugins` and `$CARGO_TARGET_DIR/fixtures`). PostgreSQL: `CAULDRON_TEST_PG_URL`
//! (default `postgres://postgres@127.0.0.1:5432`, trust auth), a fresh database per test, dropped
//! after. Redis: `CAULDRON_TEST_REDIS_URL` (default `redis://127.0.0.1:6379`), a random key prefix per
//! test, its keys deleted after.
//!
//! [`cluster`] runs the real binary instead, as separate processes sharing one database and prefix.

#![allow(clippy::unwrap_used, reason = "an unwrap is an assertion in a test harness")]

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use cauldron_host::clock::ShiftedClock;
use cauldron_host::config::Config;
use cauldron_host::state::{self, AppState, Overrides};
use sqlx::Connection;
use tracing_subscriber::Layer as _;

pub(crate) mod cluster;

/// Runs each async `case` on both backends: generates `pg_redis::case` (PostgreSQL and Redis) and
/// `sqlite_local::case` (SQLite and in-process services), each calling
/// `case(setup(backend).await)`. `setup` is the path of an async fn from [`Backend`] to the case's
/// argument: `crate::common::TestApp::start` for an app, [`backend`] for the backend itself.
macro_rules! both_backends {
    ($setup:path; $($case:ident),* $(,)?) => {
        mod pg_redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    super::$case($setup($crate::common::Backend::PgRedis).await).await;
                }
            )*
        }
        mod sqlite_local {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    super::$case($setup($crate::common::Backend::SqliteLocal).await).await;
                }
            )*
        }
    };
}

/// The backend itself, for [`both_backends!`] cases that start their own apps.
pub(crate) async fn backend(backend: Backend) -> Backend {
    backend
}

/// The JWT secret every test app signs with (tests forge and expire tokens with it).
pub(crate) const TEST_SECRET: &str = "api-tests-secret-0123456789abcdef-0123456789";

/// Which backends an app runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    /// PostgreSQL and Redis.
    PgRedis,
    /// SQLite and in-process services.
    SqliteLocal,
}

fn pg_base() -> String {
    std::env::var("CAULDRON_TEST_PG_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

fn redis_url() -> String {
    std::env::var("CAULDRON_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// The compiled-module cache every host of every test uses, as the replicas of a deployment share
/// one (deploy/docker-compose.yml): files are keyed by sha256 and written atomically, so a plugin
/// and its content are compiled and pre-initialised once per machine, not once per host.
pub(crate) fn shared_module_cache() -> PathBuf {
    std::env::temp_dir().join("cauldron-tests-module-cache")
}

/// A TCP port on 127.0.0.1 that was free a moment ago, for a server a test starts.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A random number, different for every call in this process and across processes.
pub(crate) fn random_u64() -> u64 {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    );
    h.write_u32(SEQ.fetch_add(1, Ordering::Relaxed));
    h.write_u32(std::process::id());
    h.finish()
}

fn env_dir(var: &str) -> PathBuf {
    let dir = std::env::var_os(var).map(PathBuf::from).unwrap_or_else(|| {
        panic!(
            "{var} is not set: the API tests need the plugins built for wasm32. Run `cargo xtask test`, \
             or `cargo xtask build-plugins` and then set CAULDRON_PLUGINS_OUT=$CARGO_TARGET_DIR/plugins \
             and CAULDRON_FIXTURES_DIR=$CARGO_TARGET_DIR/fixtures"
        )
    });
    assert!(
        dir.is_dir(),
        "{var}={} is not a folder; run `cargo xtask build-plugins`",
        dir.display()
    );
    dir
}

/// Copy a folder tree, leaving it readable by every user: nginx's workers, which drop root to
/// `nobody`, serve some of these copies.
pub(crate) fn copy_dir(from: &Path, to: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(to).unwrap();
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o755)).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
    }
}

/// A response's status and body: JSON when it parses, else the text as a JSON string, `null` when
/// empty.
pub(crate) async fn json_of(resp: reqwest::Response) -> (reqwest::StatusCode, serde_json::Value) {
    let status = resp.status();
    let text = resp.text().await.unwrap();
    let body = if text.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text))
    };
    (status, body)
}

/// A player's state (`GET /api/v1/player`) without its read time: `now_ms` is checked to be a
/// time and removed, since tests compare states read at different moments for "nothing changed".
pub(crate) fn without_read_time(mut state: serde_json::Value) -> serde_json::Value {
    if let Some(fields) = state.as_object_mut() {
        let now = fields.remove("now_ms");
        assert!(
            now.as_ref()
                .and_then(serde_json::Value::as_i64)
                .is_some_and(|ms| ms > 0),
            "now_ms: {now:?}"
        );
    }
    state
}

/// Edits a content table of a test's plugins folder: each `(from, to)` replaces text that occurs
/// exactly once in `plugins/FILE` (so a change of the shipped table fails loudly here instead of
/// leaving the test's economy silently unchanged).
pub(crate) fn edit_content(plugins: &Path, file: &str, edits: &[(&str, &str)]) {
    let path = plugins.join(file);
    let mut text = std::fs::read_to_string(&path).unwrap();
    for (from, to) in edits {
        assert_eq!(
            text.matches(from).count(),
            1,
            "{file}: `{from}` is not there exactly once (the test's economy needs updating)"
        );
        text = text.replace(from, to);
    }
    std::fs::write(&path, text).unwrap();
}

/// The complete lines of a file another process may be writing: everything up to the last newline.
/// A last line without its newline is still being written; it is left for the next read (a reader
/// that parsed it would fail on half a line). A missing file has no lines.
pub(crate) fn complete_lines(path: &Path) -> Vec<String> {
    let bytes = std::fs::read(path).unwrap_or_default();
    let end = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    String::from_utf8_lossy(&bytes[..end])
        .lines()
        .map(str::to_owned)
        .collect()
}

/// A fresh PostgreSQL database, dropped (with its connections) when this is dropped.
pub(crate) struct PgDb {
    name: String,
}

impl PgDb {
    /// Create a database named `cauldron_{label}_…` on the test server; returns it and its URL.
    pub(crate) async fn create(label: &str) -> (Self, String) {
        let name = format!("cauldron_{label}_{:016x}", random_u64());
        let mut admin = sqlx::PgConnection::connect(&format!("{}/postgres", pg_base()))
            .await
            .expect("PostgreSQL must be running at CAULDRON_TEST_PG_URL");
        sqlx::query(&format!("create database \"{name}\""))
            .execute(&mut admin)
            .await
            .unwrap();
        admin.close().await.unwrap();
        let url = format!("{}/{name}", pg_base());
        (Self { name }, url)
    }
}

impl Drop for PgDb {
    #[allow(
        clippy::disallowed_macros,
        reason = "a test binary's stderr is the place for this"
    )]
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs inside the test's runtime, so the cleanup gets a thread and a runtime of its own.
        let cleanup = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let mut admin = sqlx::PgConnection::connect(&format!("{}/postgres", pg_base())).await?;
                sqlx::query(&format!("drop database if exists \"{name}\" with (force)"))
                    .execute(&mut admin)
                    .await?;
                admin.close().await
            })
        });
        if let Ok(Err(e)) = cleanup.join() {
            eprintln!("could not drop the test database: {e}");
        }
    }
}

/// Deletes every Redis key under a prefix when dropped.
pub(crate) struct RedisKeys {
    pub(crate) prefix: String,
}

impl Drop for RedisKeys {
    fn drop(&mut self) {
        let Ok(client) = redis::Client::open(redis_url()) else {
            return;
        };
        let Ok(mut conn) = client.get_connection() else {
            return;
        };
        let keys: Vec<String> = redis::Commands::scan_match(&mut conn, format!("{}*", self.prefix))
            .map(|it| it.filter_map(Result::ok).collect())
            .unwrap_or_default();
        for key in keys {
            let _: Result<(), _> = redis::Commands::del(&mut conn, key);
        }
    }
}

/// What a test may change about the host beyond its environment variables.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Options {
    /// Serve `/ws` (default yes).
    pub(crate) websocket: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self { websocket: true }
    }
}

/// A running host, built by `state::build_with` exactly as `main` builds it (stored plugin
/// artifacts included), with a game clock the test can move.
pub(crate) struct TestApp {
    /// `http://127.0.0.1:PORT`.
    pub(crate) base: String,
    /// An HTTP client.
    pub(crate) http: reqwest::Client,
    /// The backends it runs on.
    pub(crate) backend: Backend,
    /// The state it serves (to reach the store directly).
    pub(crate) state: AppState,
    /// The game clock: a test moves game time with `clock.advance(..)` instead of sleeping.
    pub(crate) clock: Arc<ShiftedClock>,
    /// How many active stored plugin artifacts the host loaded at start-up.
    pub(crate) stored_artifacts: usize,
    /// The database URL (for tests that break it).
    pub(crate) database_url: String,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    // Dropped after the server stops: the database, the Redis keys, the folders.
    _pg: Option<PgDb>,
    _redis: Option<RedisKeys>,
    _dirs: Vec<tempfile::TempDir>,
}

impl TestApp {
    /// An app with the test defaults.
    pub(crate) async fn start(backend: Backend) -> Self {
        Self::start_with(backend, &[]).await
    }

    /// An app with the test defaults plus `vars` (environment variable names and values).
    pub(crate) async fn start_with(backend: Backend, vars: &[(&str, &str)]) -> Self {
        Self::start_prepared(backend, vars, |_| {}).await
    }

    /// An app with the test defaults plus `vars`, whose plugins folder (a copy of the built plugins
    /// and the probe fixture) `prepare` may change before the host loads it: remove a plugin, edit a
    /// content table.
    pub(crate) async fn start_prepared(
        backend: Backend,
        vars: &[(&str, &str)],
        prepare: impl FnOnce(&Path),
    ) -> Self {
        Self::start_full(backend, vars, prepare, Options::default()).await
    }

    /// [`TestApp::start_prepared`] with `options`.
    pub(crate) async fn start_full(
        backend: Backend,
        vars: &[(&str, &str)],
        prepare: impl FnOnce(&Path),
        options: Options,
    ) -> Self {
        init_logs();

        let plugins_out = env_dir("CAULDRON_PLUGINS_OUT");
        let fixtures = env_dir("CAULDRON_FIXTURES_DIR");
        let plugins = tempfile::tempdir().unwrap();
        copy_dir(&plugins_out, plugins.path());
        std::fs::copy(fixtures.join("probe.wasm"), plugins.path().join("probe.wasm")).unwrap();
        prepare(plugins.path());
        // Compiled modules are shared between tests (keyed by sha256): each plugin compiles once.
        let module_cache = shared_module_cache();
        let data = tempfile::tempdir().unwrap();

        let mut pg = None;
        let mut redis_keys = None;
        let (database_url, redis) = match backend {
            Backend::PgRedis => {
                let (db, url) = PgDb::create("api").await;
                pg = Some(db);
                (url, Some(redis_url()))
            }
            Backend::SqliteLocal => (format!("sqlite://{}", data.path().join("api.db").display()), None),
        };

        let mut env: HashMap<String, String> = [
            ("DATABASE_URL", database_url.clone()),
            ("JWT_SECRET", TEST_SECRET.to_owned()),
            ("PLUGINS_DIR", plugins.path().display().to_string()),
            ("WEB_DIR", data.path().join("no-web").display().to_string()),
            ("MODULE_CACHE_DIR", module_cache.display().to_string()),
            ("MAX_BODY_BYTES", "4096".to_owned()),
            ("RATE_LIMIT_ACTION_BURST", "1000".to_owned()),
            ("RATE_LIMIT_QUERY_BURST", "1000".to_owned()),
            // Every test client connects from 127.0.0.1: the per-address limits would make the tests
            // of one binary share a few registrations. Tests of the limits set their own.
            ("RATE_LIMIT_REGISTER_BURST", "1000000".to_owned()),
            ("RATE_LIMIT_LOGIN_ADDR_BURST", "1000000".to_owned()),
            // Tests run side by side on few cores; a hash may wait long for its slot.
            ("PASSWORD_HASH_WAIT_MS", "60000".to_owned()),
            ("SHUTDOWN_TIMEOUT_SECS", "5".to_owned()),
            ("BIND_ADDR", "127.0.0.1".to_owned()),
            ("PORT", "0".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        if let Some(url) = &redis {
            env.insert("REDIS_URL".into(), url.clone());
        }
        for (k, v) in vars {
            env.insert((*k).to_owned(), (*v).to_owned());
        }
        if redis.is_some() {
            let prefix = format!("cauldron-api-test:{:016x}:", random_u64());
            env.entry("REDIS_KEY_PREFIX".into()).or_insert(prefix);
            redis_keys = Some(RedisKeys {
                prefix: env["REDIS_KEY_PREFIX"].clone(),
            });
        }
        let config = Arc::new(Config::from_vars(&env).unwrap());

        // The host `main` runs, built by the same function, on a clock the test can move.
        let clock = Arc::new(ShiftedClock::new());
        let app = state::build_with(
            Arc::clone(&config),
            Overrides {
                clock: Arc::clone(&clock) as Arc<dyn cauldron_host::clock::Clock>,
                websocket: options.websocket,
            },
        )
        .await
        .unwrap();
        assert!(
            app.plugin_files >= 2,
            "plugins did not load: {:?}",
            app.state.registry.statuses()
        );
        let stored_artifacts = app.stored_artifacts;
        let app_state = app.state.clone();

        let listener = tokio::net::TcpListener::bind(config.listen).await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(app.serve(listener, async move {
            let _ = rx.await;
        }));
        TestApp {
            base,
            http: reqwest::Client::new(),
            backend,
            state: app_state,
            clock,
            stored_artifacts,
            database_url,
            shutdown: Some(tx),
            server: Some(server),
            _pg: pg,
            _redis: redis_keys,
            _dirs: vec![plugins, data],
        }
    }

    /// The URL of `path`.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The ERROR-level log lines the host wrote while serving requests that carried `x-request-id:
    /// request_id` (the host keeps a client's request id).
    pub(crate) fn error_logs(&self, request_id: &str) -> Vec<String> {
        let errors = ERRORS.lock().unwrap_or_else(|p| p.into_inner());
        errors
            .iter()
            .filter(|(id, _)| id == request_id)
            .map(|(_, line)| line.clone())
            .collect()
    }

    /// Stop serving and wait for the server to finish (graceful shutdown).
    pub(crate) async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.unwrap().unwrap();
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}

/// ERROR-level events seen by the tests' subscriber, with the request id of the request they belong
/// to (from the host's `http` span).
static ERRORS: std::sync::Mutex<Vec<(String, String)>> = std::sync::Mutex::new(Vec::new());

/// Logs to the test writer (shown for a failing test), plus [`ErrorCapture`]; once per process.
pub(crate) fn init_logs() {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let _ = tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_test_writer().with_filter(
            tracing_subscriber::EnvFilter::new("cauldron_host=debug,tower_http=info"),
        ))
        .with(ErrorCapture)
        .try_init();
}

/// Records every ERROR event with the `request_id` of its enclosing span, whatever the log filter.
struct ErrorCapture;

/// A span's request id, kept in its extensions.
struct RequestId(String);

/// Reads one field of a span or an event as text.
struct FieldText<'a> {
    name: &'a str,
    text: Option<String>,
}

impl tracing::field::Visit for FieldText<'_> {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == self.name {
            self.text = Some(value.to_owned());
        }
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == self.name {
            self.text = Some(format!("{value:?}"));
        }
    }
}

impl<S> tracing_subscriber::Layer<S> for ErrorCapture
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let mut field = FieldText {
            name: "request_id",
            text: None,
        };
        attrs.record(&mut field);
        if let (Some(text), Some(span)) = (field.text, ctx.span(id)) {
            span.extensions_mut().insert(RequestId(text));
        }
    }

    fn on_event(&self, event: &tracing::Event<'_>, ctx: tracing_subscriber::layer::Context<'_, S>) {
        if *event.metadata().level() != tracing::Level::ERROR {
            return;
        }
        let request_id = ctx.event_scope(event).and_then(|scope| {
            scope
                .from_root()
                .find_map(|span| span.extensions().get::<RequestId>().map(|r| r.0.clone()))
        });
        let mut message = FieldText {
            name: "message",
            text: None,
        };
        event.record(&mut message);
        let line = format!(
            "{}: {}",
            event.metadata().target(),
            message.text.unwrap_or_default()
        );
        ERRORS
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((request_id.unwrap_or_default(), line));
    }
}
