//! [`SqliteStore`]: the store on SQLite, for one-command local runs and small installs.
//!
//! SQLite allows one writer at a time. Letting concurrent transactions race for the write lock would hand
//! callers `SQLITE_BUSY` (a deferred transaction that read first cannot wait for the lock), so every
//! write use case first takes an in-process gate (a fair async mutex, no busy polling) and then opens
//! its transaction with `BEGIN IMMEDIATE`, which takes the database's write lock up front and waits for
//! it through `busy_timeout` if another process (a `cauldron migrate`, a backup) holds it. With writers
//! in a line, the version guard turns a stale action into a conflict, never a busy error. Both waits are
//! bounded ([`GATE_TIMEOUT`], [`BUSY_TIMEOUT`]): a lock held for longer makes a write fail as
//! unavailable (a 503 for the client) in a few seconds rather than queue up behind it. Reads run in WAL
//! mode next to the writer; a load is one statement, so it sees one snapshot.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{Sqlite, SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use tokio::sync::{Mutex, OwnedMutexGuard};

use super::{Backend, SqlStore, StoreError};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");

/// Connections per process: readers share them with the one writer. Small, because SQLite runs queries
/// on the connection's own thread and the machine may have two cores.
const MAX_CONNECTIONS: u32 = 4;

/// How long a write waits for another process's write lock before failing with `database is locked`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a write waits for this process's earlier writes (the gate) before failing. Each write holds
/// the gate for milliseconds, or for up to [`BUSY_TIMEOUT`] while another process holds the lock, so a
/// write waits at most about the sum of the two: writes queued behind a locked database fail in turn
/// instead of each adding its wait to the next one's.
const GATE_TIMEOUT: Duration = Duration::from_secs(2);

/// The longest a use case waits for a free connection.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);

/// What is particular to SQLite: the in-process writer gate (see the module docs).
#[derive(Debug, Clone, Default)]
pub struct SqliteBackend {
    write: Arc<Mutex<()>>,
}

/// The SQLite store.
pub type SqliteStore = SqlStore<SqliteBackend>;

impl Backend for SqliteBackend {
    type Db = Sqlite;
    type Gate = OwnedMutexGuard<()>;

    const NAME: &'static str = "sqlite";
    const BEGIN_WRITE: &'static str = "begin immediate";
    /// The write lock taken by `begin immediate` already keeps every other writer out.
    const LOCK_ROWS: &'static str = "";
    const DOC_TYPE: &'static str = "text";
    /// One writes while the other gathers the next batch.
    const COMMITTERS: usize = 2;

    fn rows_affected(result: &sqlx::sqlite::SqliteQueryResult) -> u64 {
        result.rows_affected()
    }

    fn migrator() -> &'static sqlx::migrate::Migrator {
        &MIGRATOR
    }

    /// Wait for the writer gate, for at most `GATE_TIMEOUT`.
    async fn gate(&self) -> Result<OwnedMutexGuard<()>, StoreError> {
        tokio::time::timeout(GATE_TIMEOUT, Arc::clone(&self.write).lock_owned())
            .await
            .map_err(|_| {
                StoreError::Unavailable(sqlx::Error::Io(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("the write waited {GATE_TIMEOUT:?} for the writes queued before it"),
                )))
            })
    }

    async fn gate_unbounded(&self) -> OwnedMutexGuard<()> {
        Arc::clone(&self.write).lock_owned().await
    }
}

impl SqlStore<SqliteBackend> {
    /// Open (creating if missing) the database file named by `url` (`sqlite:path` or `sqlite://path`),
    /// in WAL mode with foreign keys on.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(StoreError::Db)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(StoreError::Db)?;
        Ok(Self {
            pool,
            backend: SqliteBackend::default(),
            group: None,
        })
    }
}
