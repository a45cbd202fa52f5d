//! [`SqliteStore`]: the SQLite backend, for one-command local runs and small installs. All of its SQL
//! is in this file.
//!
//! SQLite allows one writer at a time. Letting concurrent transactions race for the write lock would hand
//! callers `SQLITE_BUSY` (a deferred transaction that read first cannot wait for the lock), so every
//! write use case here first takes an in-process gate (a fair async mutex, no busy polling) and then
//! opens its transaction with `BEGIN IMMEDIATE`, which takes the database's write lock up front and waits
//! for it through `busy_timeout` if another process (a `cauldron migrate`, a backup) holds it. With
//! writers in a line, the version guard turns a stale action into a conflict, never a busy error.
//! Both waits are bounded ([`GATE_TIMEOUT`], [`BUSY_TIMEOUT`]): a lock held for longer makes a write
//! fail as unavailable (a 503 for the client) in a few seconds rather than queue up behind it.
//! Reads run in WAL mode next to the writer, each load inside one read transaction (one snapshot).

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cauldron_sdk::Doc;
use cauldron_sdk::wire::{Effect, PlayerState, Section};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
};
use sqlx::types::Json;
use tokio::sync::{Mutex, OwnedMutexGuard};

use super::{
    Account, AccountRow, ApplyRequest, ArtifactInfo, Balance, BuffRow, EntityOwner, EntityRow, FullState,
    IdempotentReply, LogRow, LoggedAction, Player, Role, ScoreEntry, Store, StoreError, check_owner, db_err,
    doc_json, modifiers_json, precheck, seed_to_db, sha256_hex, wall_clock_ms, wanted,
};

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

/// The SQLite store.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// The in-process writer gate (see the module docs).
    write: Arc<Mutex<()>>,
}

/// A write transaction and the gate it holds. Fields drop in order, so the transaction is finished
/// (rolled back if not committed) before the next writer is let in.
struct Write {
    tx: sqlx::Transaction<'static, sqlx::Sqlite>,
    _gate: OwnedMutexGuard<()>,
}

impl SqliteStore {
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
            write: Arc::new(Mutex::new(())),
        })
    }

    /// The underlying pool, for health checks.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Begin a read transaction: its first select fixes the snapshot every later select sees.
    async fn snapshot(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, StoreError> {
        self.pool.begin().await.map_err(db_err)
    }

    /// Wait for the writer gate, for at most [`GATE_TIMEOUT`].
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

    /// Wait for the writer gate, then begin an immediate (write-locking) transaction.
    async fn begin_write(&self) -> Result<Write, StoreError> {
        let gate = self.gate().await?;
        let tx = self.pool.begin_with("begin immediate").await.map_err(db_err)?;
        Ok(Write { tx, _gate: gate })
    }
}

const ARTIFACT_COLUMNS: &str = "name, version, sha256, length(bytes) as size, active, previous, uploaded_ms";

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let _gate = self.write.lock().await;
        MIGRATOR
            .run(&self.pool)
            .await
            .map_err(|e| StoreError::Db(e.into()))
    }

    async fn create_account(
        &self,
        username: &str,
        password_hash: &str,
        role: Role,
    ) -> Result<Account, StoreError> {
        let _gate = self.gate().await?;
        // `on conflict do nothing`: a taken name is an answer, not an aborted statement.
        let row: Option<AccountRow> = sqlx::query_as(
            // language=sqlite
            "insert into accounts (username, password_hash, role, created_ms)
             values ($1, $2, $3, $4)
             on conflict (username) do nothing
             returning id, username, password_hash, role, created_ms",
        )
        .bind(username)
        .bind(password_hash)
        .bind(role.as_str())
        .bind(wall_clock_ms())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        row.ok_or(StoreError::UsernameTaken)?.into_account()
    }

    async fn account_by_username(&self, username: &str) -> Result<Option<Account>, StoreError> {
        let row: Option<AccountRow> = sqlx::query_as(
            // language=sqlite
            "select id, username, password_hash, role, created_ms from accounts where username = $1",
        )
        .bind(username)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        row.map(AccountRow::into_account).transpose()
    }

    async fn account_by_id(&self, id: i64) -> Result<Option<Account>, StoreError> {
        let row: Option<AccountRow> = sqlx::query_as(
            // language=sqlite
            "select id, username, password_hash, role, created_ms from accounts where id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        row.map(AccountRow::into_account).transpose()
    }

    async fn create_player(&self, account_id: i64, name: &str) -> Result<Player, StoreError> {
        let _gate = self.gate().await?;
        let row: Option<Player> = sqlx::query_as(
            // language=sqlite
            "insert into players (account_id, name, created_ms) values ($1, $2, $3)
             on conflict (account_id) do nothing
             returning id, account_id, name, version, created_ms",
        )
        .bind(account_id)
        .bind(name)
        .bind(wall_clock_ms())
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| match db_err(e) {
            // The only foreign key here is the account.
            StoreError::Invalid(_) => StoreError::NotFound,
            other => other,
        })?;
        row.ok_or_else(|| StoreError::Invalid("this account already has a player".to_owned()))
    }

    async fn player_by_account(&self, account_id: i64) -> Result<Option<Player>, StoreError> {
        sqlx::query_as(
            // language=sqlite
            "select id, account_id, name, version, created_ms from players where account_id = $1",
        )
        .bind(account_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)
    }

    async fn player_by_id(&self, id: i64) -> Result<Option<Player>, StoreError> {
        player(&self.pool, id).await
    }

    async fn load(
        &self,
        player_id: i64,
        plugin: &str,
        sections: &[Section],
        kinds: &[String],
        now_ms: i64,
    ) -> Result<(PlayerState, i64), StoreError> {
        let mut tx = self.snapshot().await?;
        let p = player(&mut *tx, player_id).await?.ok_or(StoreError::NotFound)?;
        let mut state = PlayerState {
            id: p.id,
            name: p.name,
            created_ms: p.created_ms,
            state: Doc::nil(),
            ..PlayerState::default()
        };
        for section in wanted(sections) {
            match section {
                Section::Stats => state.stats = stats(&mut tx, player_id).await?,
                Section::Currencies => {
                    state.currencies = balances(&mut tx, Balance::Currency, player_id).await?;
                }
                Section::Counters => {
                    state.counters = balances(&mut tx, Balance::Counter, player_id).await?;
                }
                Section::Items => state.items = items(&mut tx, player_id).await?,
                Section::Entities if kinds.is_empty() => {}
                Section::Entities => {
                    let rows: Vec<EntityRow> = sqlx::query_as(
                        // language=sqlite
                        "select id, kind, data, created_ms, updated_ms from entities
                         where player_id = $1 and kind in (select value from json_each($2)) order by id",
                    )
                    .bind(player_id)
                    .bind(Json(kinds))
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(db_err)?;
                    state.entities = rows.into_iter().map(EntityRow::into_wire).collect();
                }
                Section::Buffs => state.buffs = buffs(&mut tx, player_id, now_ms).await?,
                Section::State => {
                    let data: Option<Json<serde_json::Value>> = sqlx::query_scalar(
                        // language=sqlite
                        "select data from plugin_state where player_id = $1 and plugin = $2",
                    )
                    .bind(player_id)
                    .bind(plugin)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db_err)?;
                    if let Some(Json(data)) = data {
                        state.state = crate::json::json_to_doc(&data);
                    }
                }
            }
        }
        tx.commit().await.map_err(db_err)?;
        Ok((state, p.version))
    }

    async fn load_full(&self, player_id: i64, now_ms: i64) -> Result<FullState, StoreError> {
        let mut tx = self.snapshot().await?;
        let player = player(&mut *tx, player_id).await?.ok_or(StoreError::NotFound)?;
        let entities: Vec<EntityRow> = sqlx::query_as(
            // language=sqlite
            "select id, kind, data, created_ms, updated_ms from entities where player_id = $1 order by id",
        )
        .bind(player_id)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_err)?;
        let plugin_state: Vec<(String, Json<serde_json::Value>)> = sqlx::query_as(
            // language=sqlite
            "select plugin, data from plugin_state where player_id = $1",
        )
        .bind(player_id)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_err)?;
        let scores: Vec<(String, f64)> = sqlx::query_as(
            // language=sqlite
            "select board, score from scores where player_id = $1",
        )
        .bind(player_id)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_err)?;
        let full = FullState {
            stats: stats(&mut tx, player_id).await?,
            currencies: balances(&mut tx, Balance::Currency, player_id).await?,
            counters: balances(&mut tx, Balance::Counter, player_id).await?,
            items: items(&mut tx, player_id).await?,
            entities: entities.into_iter().map(EntityRow::into_stored).collect(),
            buffs: buffs(&mut tx, player_id, now_ms).await?,
            plugin_state: plugin_state.into_iter().map(|(k, Json(v))| (k, v)).collect(),
            scores: scores.into_iter().collect(),
            player,
        };
        tx.commit().await.map_err(db_err)?;
        Ok(full)
    }

    async fn apply(&self, req: ApplyRequest<'_>) -> Result<i64, StoreError> {
        for effect in req.effects {
            precheck(effect, req.kinds)?;
        }
        let mut w = self.begin_write().await?;
        match apply_in(&mut w.tx, &req).await {
            Ok(version) => {
                w.tx.commit().await.map_err(db_err)?;
                Ok(version)
            }
            Err(err) => {
                // Roll back while still holding the gate, so the next writer finds the lock free.
                if let Err(rollback) = w.tx.rollback().await {
                    tracing::warn!(error = %rollback, "rollback after a refused action failed");
                }
                Err(err)
            }
        }
    }

    async fn idempotent_reply(
        &self,
        player_id: i64,
        key: &str,
    ) -> Result<Option<IdempotentReply>, StoreError> {
        let row: Option<(Json<serde_json::Value>, i64, Option<String>)> = sqlx::query_as(
            // language=sqlite
            "select reply, version, request_fingerprint from action_log
             where player_id = $1 and idempotency_key = $2",
        )
        .bind(player_id)
        .bind(key)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(row.map(|(Json(reply), version, fingerprint)| IdempotentReply {
            reply,
            version,
            fingerprint,
        }))
    }

    async fn put_artifact(
        &self,
        name: &str,
        version: &str,
        bytes: &[u8],
    ) -> Result<ArtifactInfo, StoreError> {
        let sha256 = sha256_hex(bytes);
        let mut w = self.begin_write().await?;
        sqlx::query(
            // language=sqlite
            "insert into plugin_artifacts (name, version, sha256, bytes, uploaded_ms)
             values ($1, $2, $3, $4, $5)
             on conflict (name, version) do nothing",
        )
        .bind(name)
        .bind(version)
        .bind(&sha256)
        .bind(bytes)
        .bind(wall_clock_ms())
        .execute(&mut *w.tx)
        .await
        .map_err(db_err)?;
        let info = artifact(&mut w.tx, name, version)
            .await?
            .ok_or(StoreError::NotFound)?;
        if info.sha256 != sha256 {
            return Err(StoreError::Invalid(format!(
                "{name} {version} is already stored with different bytes"
            )));
        }
        w.tx.commit().await.map_err(db_err)?;
        Ok(info)
    }

    async fn activate_artifact(&self, name: &str, version: &str) -> Result<ArtifactInfo, StoreError> {
        let mut w = self.begin_write().await?;
        let target = artifact(&mut w.tx, name, version)
            .await?
            .ok_or(StoreError::NotFound)?;
        if target.active {
            return Ok(target);
        }
        // Three steps, each keeping "one active, one previous per name" true, because the partial
        // unique indexes are checked row by row.
        for (sql, with_version) in [
            // language=sqlite
            (
                "update plugin_artifacts set previous = 0 where name = $1 and previous = 1",
                false,
            ),
            // language=sqlite
            (
                "update plugin_artifacts set active = 0, previous = 1 where name = $1 and active = 1",
                false,
            ),
            // language=sqlite
            (
                "update plugin_artifacts set active = 1 where name = $1 and version = $2",
                true,
            ),
        ] {
            // Bind exactly the parameters each statement has: a prepared statement is cached by its text.
            let query = sqlx::query(sql).bind(name);
            let query = if with_version { query.bind(version) } else { query };
            query.execute(&mut *w.tx).await.map_err(db_err)?;
        }
        let info = artifact(&mut w.tx, name, version)
            .await?
            .ok_or(StoreError::NotFound)?;
        w.tx.commit().await.map_err(db_err)?;
        Ok(info)
    }

    async fn rollback_artifact(&self, name: &str) -> Result<ArtifactInfo, StoreError> {
        let mut w = self.begin_write().await?;
        let version: Option<String> = sqlx::query_scalar(
            // language=sqlite
            "select version from plugin_artifacts where name = $1 and previous = 1",
        )
        .bind(name)
        .fetch_optional(&mut *w.tx)
        .await
        .map_err(db_err)?;
        let version = version.ok_or(StoreError::NotFound)?;
        for (sql, with_version) in [
            // language=sqlite
            (
                "update plugin_artifacts set active = 0 where name = $1 and active = 1",
                false,
            ),
            // language=sqlite
            (
                "update plugin_artifacts set previous = 0, active = 1 where name = $1 and version = $2",
                true,
            ),
        ] {
            // Bind exactly the parameters each statement has: a prepared statement is cached by its text.
            let query = sqlx::query(sql).bind(name);
            let query = if with_version { query.bind(&version) } else { query };
            query.execute(&mut *w.tx).await.map_err(db_err)?;
        }
        let info = artifact(&mut w.tx, name, &version)
            .await?
            .ok_or(StoreError::NotFound)?;
        w.tx.commit().await.map_err(db_err)?;
        Ok(info)
    }

    async fn deactivate_artifact(&self, name: &str) -> Result<(), StoreError> {
        let _gate = self.gate().await?;
        let done = sqlx::query(
            // language=sqlite
            "update plugin_artifacts set active = 0 where name = $1 and active = 1",
        )
        .bind(name)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn active_artifacts(&self) -> Result<Vec<ArtifactInfo>, StoreError> {
        sqlx::query_as(&format!(
            // language=sqlite
            "select {ARTIFACT_COLUMNS} from plugin_artifacts where active = 1 order by name"
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)
    }

    async fn artifacts(&self, name: &str) -> Result<Vec<ArtifactInfo>, StoreError> {
        sqlx::query_as(&format!(
            // language=sqlite
            "select {ARTIFACT_COLUMNS} from plugin_artifacts where name = $1 order by id"
        ))
        .bind(name)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)
    }

    async fn artifact_bytes(&self, name: &str, version: &str) -> Result<Option<Vec<u8>>, StoreError> {
        sqlx::query_scalar(
            // language=sqlite
            "select bytes from plugin_artifacts where name = $1 and version = $2",
        )
        .bind(name)
        .bind(version)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)
    }

    async fn action_log(
        &self,
        plugin: &str,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<LoggedAction>, StoreError> {
        let rows: Vec<LogRow> = sqlx::query_as(
            // language=sqlite
            "select id, player_id, plugin, plugin_version, plugin_sha256, action, params, seed, now_ms,
                    outcome_digest, reply, idempotency_key, request_fingerprint, version, created_ms
             from action_log where plugin = $1 and id > $2 order by id limit $3",
        )
        .bind(plugin)
        .bind(after_id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(rows.into_iter().map(LoggedAction::from).collect())
    }

    async fn top_scores(&self, board: &str, limit: u32) -> Result<Vec<ScoreEntry>, StoreError> {
        sqlx::query_as(
            // language=sqlite
            "select s.player_id, p.name, s.score from scores s join players p on p.id = s.player_id
             where s.board = $1 order by s.score desc, s.player_id limit $2",
        )
        .bind(board)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)
    }
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("select 1")
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn revoke_token(&self, jti: &str, account_id: i64, expires_ms: i64) -> Result<(), StoreError> {
        let mut w = self.begin_write().await?;
        sqlx::query(
            // language=sqlite
            "delete from revoked_tokens where expires_ms < $1",
        )
        .bind(wall_clock_ms())
        .execute(&mut *w.tx)
        .await
        .map_err(db_err)?;
        sqlx::query(
            // language=sqlite
            "insert into revoked_tokens (jti, account_id, expires_ms) values ($1, $2, $3)
             on conflict (jti) do nothing",
        )
        .bind(jti)
        .bind(account_id)
        .bind(expires_ms)
        .execute(&mut *w.tx)
        .await
        .map_err(db_err)?;
        w.tx.commit().await.map_err(db_err)
    }

    async fn is_token_revoked(&self, jti: &str) -> Result<bool, StoreError> {
        let row: Option<(i64,)> = sqlx::query_as(
            // language=sqlite
            "select 1 from revoked_tokens where jti = $1",
        )
        .bind(jti)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(row.is_some())
    }
}

// ---- queries shared by several use cases ------------------------------------------------------------

async fn player<'e>(db: impl sqlx::SqliteExecutor<'e>, id: i64) -> Result<Option<Player>, StoreError> {
    sqlx::query_as(
        // language=sqlite
        "select id, account_id, name, version, created_ms from players where id = $1",
    )
    .bind(id)
    .fetch_optional(db)
    .await
    .map_err(db_err)
}

async fn stats(db: &mut SqliteConnection, player_id: i64) -> Result<BTreeMap<String, f64>, StoreError> {
    let rows: Vec<(String, f64)> = sqlx::query_as(
        // language=sqlite
        "select name, value from stats where player_id = $1",
    )
    .bind(player_id)
    .fetch_all(db)
    .await
    .map_err(db_err)?;
    Ok(rows.into_iter().collect())
}

async fn balances(
    db: &mut SqliteConnection,
    which: Balance,
    player_id: i64,
) -> Result<BTreeMap<String, i64>, StoreError> {
    let sql = match which {
        // language=sqlite
        Balance::Currency => "select name, amount from currencies where player_id = $1",
        // language=sqlite
        Balance::Counter => "select name, amount from counters where player_id = $1",
    };
    let rows: Vec<(String, i64)> = sqlx::query_as(sql)
        .bind(player_id)
        .fetch_all(db)
        .await
        .map_err(db_err)?;
    Ok(rows.into_iter().collect())
}

async fn items(db: &mut SqliteConnection, player_id: i64) -> Result<BTreeMap<String, i64>, StoreError> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        // language=sqlite
        "select item, qty from items where player_id = $1",
    )
    .bind(player_id)
    .fetch_all(db)
    .await
    .map_err(db_err)?;
    Ok(rows.into_iter().collect())
}

async fn buffs(
    db: &mut SqliteConnection,
    player_id: i64,
    now_ms: i64,
) -> Result<Vec<cauldron_sdk::wire::Buff>, StoreError> {
    let rows: Vec<BuffRow> = sqlx::query_as(
        // language=sqlite
        "select id, modifiers, expires_ms from buffs where player_id = $1 and expires_ms > $2 order by id",
    )
    .bind(player_id)
    .bind(now_ms)
    .fetch_all(db)
    .await
    .map_err(db_err)?;
    rows.into_iter().map(BuffRow::into_buff).collect()
}

async fn artifact(
    db: &mut SqliteConnection,
    name: &str,
    version: &str,
) -> Result<Option<ArtifactInfo>, StoreError> {
    sqlx::query_as(&format!(
        // language=sqlite
        "select {ARTIFACT_COLUMNS} from plugin_artifacts where name = $1 and version = $2"
    ))
    .bind(name)
    .bind(version)
    .fetch_optional(db)
    .await
    .map_err(db_err)
}

/// The body of an action's transaction: the version guard, the effects, the log row. Returns the new
/// version.
async fn apply_in(db: &mut SqliteConnection, req: &ApplyRequest<'_>) -> Result<i64, StoreError> {
    // The guard comes first, under the write lock: a stale version writes nothing at all.
    let version: Option<i64> = sqlx::query_scalar(
        // language=sqlite
        "update players set version = version + 1 where id = $1 and version = $2 returning version",
    )
    .bind(req.player_id)
    .bind(req.expected_version)
    .fetch_optional(&mut *db)
    .await
    .map_err(db_err)?;
    let Some(version) = version else {
        return Err(match player(&mut *db, req.player_id).await? {
            Some(_) => StoreError::Conflict,
            None => StoreError::NotFound,
        });
    };
    // Housekeeping: expired buffs are invisible anyway; dropping them here keeps the table small.
    sqlx::query(
        // language=sqlite
        "delete from buffs where player_id = $1 and expires_ms <= $2",
    )
    .bind(req.player_id)
    .bind(req.log.now_ms)
    .execute(&mut *db)
    .await
    .map_err(db_err)?;
    for effect in req.effects {
        apply_effect(db, req, effect).await?;
    }
    let log = req.log;
    let inserted = sqlx::query(
        // language=sqlite
        "insert into action_log (player_id, plugin, plugin_version, plugin_sha256, action, params, seed,
                                 now_ms, outcome_digest, reply, idempotency_key, request_fingerprint,
                                 version, created_ms)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
         on conflict (player_id, idempotency_key) do nothing",
    )
    .bind(req.player_id)
    .bind(req.plugin)
    .bind(&log.plugin_version)
    .bind(&log.plugin_sha256)
    .bind(&log.action)
    .bind(Json(&log.params))
    .bind(seed_to_db(log.seed))
    .bind(log.now_ms)
    .bind(&log.outcome_digest)
    .bind(Json(&log.reply))
    .bind(log.idempotency_key.as_deref())
    .bind(log.fingerprint.as_deref())
    .bind(version)
    .bind(wall_clock_ms())
    .execute(&mut *db)
    .await
    .map_err(db_err)?;
    if inserted.rows_affected() == 0 {
        // Another request with this key committed first; the caller's retry will find its reply.
        return Err(StoreError::Conflict);
    }
    Ok(version)
}

/// Apply one effect inside the action's transaction. Every refusal is `Invalid`; the caller's `?` drops
/// the transaction, which rolls back everything done so far.
async fn apply_effect(
    db: &mut SqliteConnection,
    req: &ApplyRequest<'_>,
    effect: &Effect,
) -> Result<(), StoreError> {
    let player_id = req.player_id;
    let now_ms = req.log.now_ms;
    match effect {
        Effect::AddCurrency { name, delta } => {
            add_balance(db, Balance::Currency, player_id, name, *delta).await
        }
        Effect::AddCounter { name, delta } => {
            add_balance(db, Balance::Counter, player_id, name, *delta).await
        }
        Effect::AddItem { item, qty } => {
            sqlx::query(
                // language=sqlite
                "insert into items (player_id, item, qty) values ($1, $2, $3)
                 on conflict (player_id, item) do update set qty = items.qty + excluded.qty",
            )
            .bind(player_id)
            .bind(item)
            .bind(qty)
            .execute(db)
            .await
            .map_err(db_err)?;
            Ok(())
        }
        Effect::RemoveItem { item, qty } => {
            let left: Option<i64> = sqlx::query_scalar(
                // language=sqlite
                "update items set qty = qty - $3 where player_id = $1 and item = $2 and qty >= $3
                 returning qty",
            )
            .bind(player_id)
            .bind(item)
            .bind(qty)
            .fetch_optional(&mut *db)
            .await
            .map_err(db_err)?;
            match left {
                None => Err(StoreError::Invalid(format!(
                    "not enough `{item}` to remove {qty}"
                ))),
                Some(0) => {
                    sqlx::query(
                        // language=sqlite
                        "delete from items where player_id = $1 and item = $2 and qty = 0",
                    )
                    .bind(player_id)
                    .bind(item)
                    .execute(db)
                    .await
                    .map_err(db_err)?;
                    Ok(())
                }
                Some(_) => Ok(()),
            }
        }
        Effect::SetStat { name, value } => {
            sqlx::query(
                // language=sqlite
                "insert into stats (player_id, name, value) values ($1, $2, $3)
                 on conflict (player_id, name) do update set value = excluded.value",
            )
            .bind(player_id)
            .bind(name)
            .bind(value)
            .execute(db)
            .await
            .map_err(db_err)?;
            Ok(())
        }
        Effect::CreateEntity { id, kind, data } => {
            let data = doc_json(&format!("entity `{id}`"), data)?;
            let done = sqlx::query(
                // language=sqlite
                "insert into entities (id, player_id, kind, data, created_ms, updated_ms)
                 values ($1, $2, $3, $4, $5, $5)
                 on conflict (id) do nothing",
            )
            .bind(id)
            .bind(player_id)
            .bind(kind)
            .bind(Json(data))
            .bind(now_ms)
            .execute(db)
            .await
            .map_err(db_err)?;
            if done.rows_affected() == 0 {
                return Err(StoreError::Invalid(format!("entity id `{id}` is taken")));
            }
            Ok(())
        }
        Effect::UpdateEntity { id, data } => {
            let data = doc_json(&format!("entity `{id}`"), data)?;
            check_owner(id, entity_owner(db, id).await?, player_id, req.kinds)?;
            sqlx::query(
                // language=sqlite
                "update entities set data = $3, updated_ms = $4 where id = $1 and player_id = $2",
            )
            .bind(id)
            .bind(player_id)
            .bind(Json(data))
            .bind(now_ms)
            .execute(db)
            .await
            .map_err(db_err)?;
            Ok(())
        }
        Effect::DeleteEntity { id } => {
            check_owner(id, entity_owner(db, id).await?, player_id, req.kinds)?;
            sqlx::query(
                // language=sqlite
                "delete from entities where id = $1 and player_id = $2",
            )
            .bind(id)
            .bind(player_id)
            .execute(db)
            .await
            .map_err(db_err)?;
            Ok(())
        }
        Effect::AddBuff { buff } => {
            sqlx::query(
                // language=sqlite
                "insert into buffs (player_id, id, modifiers, expires_ms) values ($1, $2, $3, $4)
                 on conflict (player_id, id)
                 do update set modifiers = excluded.modifiers, expires_ms = excluded.expires_ms",
            )
            .bind(player_id)
            .bind(&buff.id)
            .bind(Json(modifiers_json(buff)?))
            .bind(buff.expires_ms)
            .execute(db)
            .await
            .map_err(db_err)?;
            Ok(())
        }
        Effect::RemoveBuff { id } => {
            sqlx::query(
                // language=sqlite
                "delete from buffs where player_id = $1 and id = $2",
            )
            .bind(player_id)
            .bind(id)
            .execute(db)
            .await
            .map_err(db_err)?;
            Ok(())
        }
        Effect::SetState { data } => {
            let data = doc_json("plugin state", data)?;
            sqlx::query(
                // language=sqlite
                "insert into plugin_state (player_id, plugin, data) values ($1, $2, $3)
                 on conflict (player_id, plugin) do update set data = excluded.data",
            )
            .bind(player_id)
            .bind(req.plugin)
            .bind(Json(data))
            .execute(db)
            .await
            .map_err(db_err)?;
            Ok(())
        }
        // Events are published by the caller after commit; they are not state.
        Effect::Emit { .. } => Ok(()),
        Effect::SetScore { board, score } => {
            sqlx::query(
                // language=sqlite
                "insert into scores (board, player_id, score) values ($1, $2, $3)
                 on conflict (board, player_id) do update set score = excluded.score",
            )
            .bind(board)
            .bind(player_id)
            .bind(score)
            .execute(db)
            .await
            .map_err(db_err)?;
            Ok(())
        }
    }
}

async fn add_balance(
    db: &mut SqliteConnection,
    which: Balance,
    player_id: i64,
    name: &str,
    delta: i64,
) -> Result<(), StoreError> {
    if delta >= 0 {
        // An overflowing sum becomes a REAL, which the STRICT table refuses; `db_err` makes that `Invalid`.
        let sql = match which {
            // language=sqlite
            Balance::Currency => {
                "insert into currencies (player_id, name, amount) values ($1, $2, $3)
                 on conflict (player_id, name) do update set amount = currencies.amount + excluded.amount"
            }
            // language=sqlite
            Balance::Counter => {
                "insert into counters (player_id, name, amount) values ($1, $2, $3)
                 on conflict (player_id, name) do update set amount = counters.amount + excluded.amount"
            }
        };
        sqlx::query(sql)
            .bind(player_id)
            .bind(name)
            .bind(delta)
            .execute(db)
            .await
            .map_err(db_err)?;
        return Ok(());
    }
    // Spending checks the balance in the same statement that changes it: no read-then-write race.
    let sql = match which {
        // language=sqlite
        Balance::Currency => {
            "update currencies set amount = amount + $3 where player_id = $1 and name = $2 and amount + $3 >= 0"
        }
        // language=sqlite
        Balance::Counter => {
            "update counters set amount = amount + $3 where player_id = $1 and name = $2 and amount + $3 >= 0"
        }
    };
    let done = sqlx::query(sql)
        .bind(player_id)
        .bind(name)
        .bind(delta)
        .execute(db)
        .await
        .map_err(db_err)?;
    if done.rows_affected() == 0 {
        return Err(StoreError::Invalid(format!(
            "not enough `{name}` to take {}",
            delta.unsigned_abs()
        )));
    }
    Ok(())
}

async fn entity_owner(db: &mut SqliteConnection, id: &str) -> Result<Option<EntityOwner>, StoreError> {
    sqlx::query_as(
        // language=sqlite
        "select player_id, kind from entities where id = $1",
    )
    .bind(id)
    .fetch_optional(db)
    .await
    .map_err(db_err)
}
