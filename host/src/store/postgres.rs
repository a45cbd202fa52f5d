//! [`PgStore`]: the PostgreSQL backend. All of its SQL is in this file.
//!
//! Concurrency rests on the version guard: `apply` starts with `update players ... where version = $2`,
//! which takes the player's row lock, so concurrent actions of one player run one after another and the
//! losers see 0 rows (a conflict). Reads use one repeatable-read snapshot so a loaded state and its
//! version always belong together.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use cauldron_sdk::Doc;
use cauldron_sdk::wire::{Effect, PlayerState, Section};
use sqlx::postgres::{PgConnection, PgPool, PgPoolOptions};
use sqlx::types::Json;

use super::{
    Account, AccountRow, ApplyRequest, ArtifactInfo, Balance, BuffRow, EntityOwner, EntityRow, FullState,
    IdempotentReply, LogRow, LoggedAction, Player, Role, ScoreEntry, Store, StoreError, check_owner, db_err,
    doc_json, modifiers_json, precheck, seed_to_db, sha256_hex, wall_clock_ms, wanted,
};

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

/// The PostgreSQL store.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// Connect a pool to `url` (`postgres://` or `postgresql://`). Fails after [`ACQUIRE_TIMEOUT`] if
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
        Ok(Self { pool })
    }

    /// The underlying pool, for health checks.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Begin a read-only transaction on one snapshot.
    async fn snapshot(&self) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        sqlx::query("set transaction isolation level repeatable read, read only")
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        Ok(tx)
    }
}

const ARTIFACT_COLUMNS: &str =
    "name, version, sha256, length(bytes)::bigint as size, active, previous, uploaded_ms";

#[async_trait]
impl Store for PgStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn migrate(&self) -> Result<(), StoreError> {
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
        // `on conflict do nothing`: a taken name is an answer, not an aborted statement.
        let row: Option<AccountRow> = sqlx::query_as(
            // language=postgresql
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
            // language=postgresql
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
            // language=postgresql
            "select id, username, password_hash, role, created_ms from accounts where id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        row.map(AccountRow::into_account).transpose()
    }

    async fn create_player(&self, account_id: i64, name: &str) -> Result<Player, StoreError> {
        let row: Option<Player> = sqlx::query_as(
            // language=postgresql
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
            // language=postgresql
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
                        // language=postgresql
                        "select id, kind, data, created_ms, updated_ms from entities
                         where player_id = $1 and kind = any($2) order by id",
                    )
                    .bind(player_id)
                    .bind(kinds)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(db_err)?;
                    state.entities = rows.into_iter().map(EntityRow::into_wire).collect();
                }
                Section::Buffs => state.buffs = buffs(&mut tx, player_id, now_ms).await?,
                Section::State => {
                    let data: Option<Json<serde_json::Value>> = sqlx::query_scalar(
                        // language=postgresql
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
            // language=postgresql
            "select id, kind, data, created_ms, updated_ms from entities where player_id = $1 order by id",
        )
        .bind(player_id)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_err)?;
        let plugin_state: Vec<(String, Json<serde_json::Value>)> = sqlx::query_as(
            // language=postgresql
            "select plugin, data from plugin_state where player_id = $1",
        )
        .bind(player_id)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_err)?;
        let scores: Vec<(String, f64)> = sqlx::query_as(
            // language=postgresql
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
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        // Returning early drops the transaction, which rolls it back.
        let version = apply_in(&mut tx, &req).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(version)
    }

    async fn idempotent_reply(
        &self,
        player_id: i64,
        key: &str,
    ) -> Result<Option<IdempotentReply>, StoreError> {
        let row: Option<(Json<serde_json::Value>, i64, Option<String>)> = sqlx::query_as(
            // language=postgresql
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
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        sqlx::query(
            // language=postgresql
            "insert into plugin_artifacts (name, version, sha256, bytes, uploaded_ms)
             values ($1, $2, $3, $4, $5)
             on conflict (name, version) do nothing",
        )
        .bind(name)
        .bind(version)
        .bind(&sha256)
        .bind(bytes)
        .bind(wall_clock_ms())
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        let info = artifact(&mut tx, name, version)
            .await?
            .ok_or(StoreError::NotFound)?;
        if info.sha256 != sha256 {
            return Err(StoreError::Invalid(format!(
                "{name} {version} is already stored with different bytes"
            )));
        }
        tx.commit().await.map_err(db_err)?;
        Ok(info)
    }

    async fn activate_artifact(&self, name: &str, version: &str) -> Result<ArtifactInfo, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let target = artifact(&mut tx, name, version)
            .await?
            .ok_or(StoreError::NotFound)?;
        if target.active {
            return Ok(target);
        }
        // Three steps, each keeping "one active, one previous per name" true, because the partial
        // unique indexes are checked row by row.
        for (sql, with_version) in [
            // language=postgresql
            (
                "update plugin_artifacts set previous = false where name = $1 and previous",
                false,
            ),
            // language=postgresql
            (
                "update plugin_artifacts set active = false, previous = true where name = $1 and active",
                false,
            ),
            // language=postgresql
            (
                "update plugin_artifacts set active = true where name = $1 and version = $2",
                true,
            ),
        ] {
            // Bind exactly the parameters each statement has: a prepared statement is cached by its text.
            let query = sqlx::query(sql).bind(name);
            let query = if with_version { query.bind(version) } else { query };
            query.execute(&mut *tx).await.map_err(db_err)?;
        }
        let info = artifact(&mut tx, name, version)
            .await?
            .ok_or(StoreError::NotFound)?;
        tx.commit().await.map_err(db_err)?;
        Ok(info)
    }

    async fn rollback_artifact(&self, name: &str) -> Result<ArtifactInfo, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let version: Option<String> = sqlx::query_scalar(
            // language=postgresql
            "select version from plugin_artifacts where name = $1 and previous for update",
        )
        .bind(name)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err)?;
        let version = version.ok_or(StoreError::NotFound)?;
        for (sql, with_version) in [
            // language=postgresql
            (
                "update plugin_artifacts set active = false where name = $1 and active",
                false,
            ),
            // language=postgresql
            (
                "update plugin_artifacts set previous = false, active = true where name = $1 and version = $2",
                true,
            ),
        ] {
            // Bind exactly the parameters each statement has: a prepared statement is cached by its text.
            let query = sqlx::query(sql).bind(name);
            let query = if with_version { query.bind(&version) } else { query };
            query.execute(&mut *tx).await.map_err(db_err)?;
        }
        let info = artifact(&mut tx, name, &version)
            .await?
            .ok_or(StoreError::NotFound)?;
        tx.commit().await.map_err(db_err)?;
        Ok(info)
    }

    async fn deactivate_artifact(&self, name: &str) -> Result<(), StoreError> {
        let done = sqlx::query(
            // language=postgresql
            "update plugin_artifacts set active = false where name = $1 and active",
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
            // language=postgresql
            "select {ARTIFACT_COLUMNS} from plugin_artifacts where active order by name"
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)
    }

    async fn artifacts(&self, name: &str) -> Result<Vec<ArtifactInfo>, StoreError> {
        sqlx::query_as(&format!(
            // language=postgresql
            "select {ARTIFACT_COLUMNS} from plugin_artifacts where name = $1 order by id"
        ))
        .bind(name)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)
    }

    async fn artifact_bytes(&self, name: &str, version: &str) -> Result<Option<Vec<u8>>, StoreError> {
        sqlx::query_scalar(
            // language=postgresql
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
            // language=postgresql
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
            // language=postgresql
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
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        sqlx::query(
            // language=postgresql
            "delete from revoked_tokens where expires_ms < $1",
        )
        .bind(wall_clock_ms())
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        sqlx::query(
            // language=postgresql
            "insert into revoked_tokens (jti, account_id, expires_ms) values ($1, $2, $3)
             on conflict (jti) do nothing",
        )
        .bind(jti)
        .bind(account_id)
        .bind(expires_ms)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)
    }

    async fn is_token_revoked(&self, jti: &str) -> Result<bool, StoreError> {
        let row: Option<(i64,)> = sqlx::query_as(
            // language=postgresql
            "select 1::bigint from revoked_tokens where jti = $1",
        )
        .bind(jti)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(row.is_some())
    }
}

// ---- queries shared by several use cases ------------------------------------------------------------

async fn player<'e>(db: impl sqlx::PgExecutor<'e>, id: i64) -> Result<Option<Player>, StoreError> {
    sqlx::query_as(
        // language=postgresql
        "select id, account_id, name, version, created_ms from players where id = $1",
    )
    .bind(id)
    .fetch_optional(db)
    .await
    .map_err(db_err)
}

async fn stats(db: &mut PgConnection, player_id: i64) -> Result<BTreeMap<String, f64>, StoreError> {
    let rows: Vec<(String, f64)> = sqlx::query_as(
        // language=postgresql
        "select name, value from stats where player_id = $1",
    )
    .bind(player_id)
    .fetch_all(db)
    .await
    .map_err(db_err)?;
    Ok(rows.into_iter().collect())
}

async fn balances(
    db: &mut PgConnection,
    which: Balance,
    player_id: i64,
) -> Result<BTreeMap<String, i64>, StoreError> {
    let sql = match which {
        // language=postgresql
        Balance::Currency => "select name, amount from currencies where player_id = $1",
        // language=postgresql
        Balance::Counter => "select name, amount from counters where player_id = $1",
    };
    let rows: Vec<(String, i64)> = sqlx::query_as(sql)
        .bind(player_id)
        .fetch_all(db)
        .await
        .map_err(db_err)?;
    Ok(rows.into_iter().collect())
}

async fn items(db: &mut PgConnection, player_id: i64) -> Result<BTreeMap<String, i64>, StoreError> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        // language=postgresql
        "select item, qty from items where player_id = $1",
    )
    .bind(player_id)
    .fetch_all(db)
    .await
    .map_err(db_err)?;
    Ok(rows.into_iter().collect())
}

async fn buffs(
    db: &mut PgConnection,
    player_id: i64,
    now_ms: i64,
) -> Result<Vec<cauldron_sdk::wire::Buff>, StoreError> {
    let rows: Vec<BuffRow> = sqlx::query_as(
        // language=postgresql
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
    db: &mut PgConnection,
    name: &str,
    version: &str,
) -> Result<Option<ArtifactInfo>, StoreError> {
    sqlx::query_as(&format!(
        // language=postgresql
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
async fn apply_in(db: &mut PgConnection, req: &ApplyRequest<'_>) -> Result<i64, StoreError> {
    // The guard comes first: it takes the player's row lock, so everything below runs with no
    // concurrent action of this player, and a stale version writes nothing at all.
    let version: Option<i64> = sqlx::query_scalar(
        // language=postgresql
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
        // language=postgresql
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
        // language=postgresql
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
    db: &mut PgConnection,
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
                // language=postgresql
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
                // language=postgresql
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
                        // language=postgresql
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
                // language=postgresql
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
                // language=postgresql
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
                // language=postgresql
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
                // language=postgresql
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
                // language=postgresql
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
                // language=postgresql
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
                // language=postgresql
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
                // language=postgresql
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
    db: &mut PgConnection,
    which: Balance,
    player_id: i64,
    name: &str,
    delta: i64,
) -> Result<(), StoreError> {
    if delta >= 0 {
        // An overflowing sum fails as numeric_value_out_of_range, which `db_err` makes `Invalid`.
        let sql = match which {
            // language=postgresql
            Balance::Currency => {
                "insert into currencies (player_id, name, amount) values ($1, $2, $3)
                 on conflict (player_id, name) do update set amount = currencies.amount + excluded.amount"
            }
            // language=postgresql
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
        // language=postgresql
        Balance::Currency => {
            "update currencies set amount = amount + $3 where player_id = $1 and name = $2 and amount + $3 >= 0"
        }
        // language=postgresql
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

async fn entity_owner(db: &mut PgConnection, id: &str) -> Result<Option<EntityOwner>, StoreError> {
    sqlx::query_as(
        // language=postgresql
        "select player_id, kind from entities where id = $1",
    )
    .bind(id)
    .fetch_optional(db)
    .await
    .map_err(db_err)
}
