//! [`PgStore`]: the store on PostgreSQL, for production and clusters.
//!
//! A load is one statement, so it sees one snapshot and a loaded state and its version belong together.
//! Writes need no gate: the version guard's row lock orders a player's actions, and `for
//! update` locks what a read inside a write transaction depends on.

use std::time::Duration;

use sqlx::postgres::{PgPoolOptions, Postgres};

use super::{Backend, SqlStore, StoreError};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

/// Connections per process. Actions hold one only for their transaction; ten keeps a small server's
/// `max_connections` (100) enough for several hosts.
const MAX_CONNECTIONS: u32 = 10;

/// The longest a use case waits for a connection: a free one from the pool, or a new one (sqlx retries
/// a refused connection with backoff within this time). When PostgreSQL is down, requests fail with
/// 503 after this long instead of waiting for it; when it is back, the next acquire connects. Short,
/// because the backoff between connection attempts is capped at a fifth of it, which bounds how long
/// after PostgreSQL's return a waiting request still waits.
const ACQUIRE_TIMEOUT: Duration = Duration::from_millis(1500);

/// What is particular to PostgreSQL.
#[derive(Debug, Clone, Copy, Default)]
pub struct PgBackend;

/// The PostgreSQL store.
pub type PgStore = SqlStore<PgBackend>;

impl Backend for PgBackend {
    type Db = Postgres;
    type Gate = ();

    const NAME: &'static str = "postgres";
    const BEGIN_WRITE: &'static str = "begin";
    const LOCK_ROWS: &'static str = " for update";
    const DOC_TYPE: &'static str = "jsonb";
    /// Each holds a connection while it commits; four keep the pool free for reads.
    const COMMITTERS: usize = 4;

    fn rows_affected(result: &sqlx::postgres::PgQueryResult) -> u64 {
        result.rows_affected()
    }

    fn migrator() -> &'static sqlx::migrate::Migrator {
        &MIGRATOR
    }

    async fn gate(&self) -> Result<(), StoreError> {
        Ok(())
    }

    async fn gate_unbounded(&self) {}
}

impl SqlStore<PgBackend> {
    /// Connect a pool to `url` (`postgres://` or `postgresql://`). Fails after `ACQUIRE_TIMEOUT` (1.5 s) if
    /// the server does not answer; the caller decides whether to try again.
    ///
    /// The pool outlives a restart of the server: every idle connection is checked before it is handed
    /// out (`test_before_acquire`), so the dead ones left by a restart are closed and replaced rather
    /// than failing a request; none is kept open or idle forever (lifetime and idle limits).
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .test_before_acquire(true)
            .idle_timeout(Duration::from_secs(600))
            .max_lifetime(Duration::from_secs(1800))
            .connect(url)
            .await
            .map_err(StoreError::Db)?;
        Ok(Self {
            pool,
            backend: PgBackend,
            group: None,
        })
    }
}
