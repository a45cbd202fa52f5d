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

/// How long a pooled connection may sit idle before it is checked on its way out of the pool. A
/// connection used within this time is handed out as it is: if the server restarted in that moment, a
/// request may still meet the dead connection and answer 503 once, and the pool replaces it.
const PING_AFTER_IDLE: Duration = Duration::from_secs(1);

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
    /// The pool outlives a restart of the server: a connection that sat idle for `PING_AFTER_IDLE`
    /// or longer is checked with a ping before it is handed out, so the dead ones a restart leaves in
    /// the pool are closed and replaced rather than failing a request; none is kept open or idle
    /// forever (lifetime and idle limits). Under load connections are never idle that long, so the
    /// busy path pays no ping (a round trip on both sides for every acquire).
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for >= PING_AFTER_IDLE {
                        sqlx::Connection::ping(conn).await?;
                    }
                    Ok(true)
                })
            })
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
