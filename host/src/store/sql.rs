//! [`SqlStore`]: the store over any [`Backend`]. Every query is written here once, in SQL that
//! PostgreSQL and SQLite both accept (`true`/`false`, `cast(x as bigint)`, `on conflict`, `returning`,
//! `$n` placeholders); the backend adds only the few words where they differ.
//!
//! Concurrency rests on the version guard: `apply` starts with `update players ... where version = $2`,
//! so a stale version writes nothing and the caller reloads. On PostgreSQL that update takes the
//! player's row lock, so concurrent actions of one player run one after another; on SQLite writers are
//! already in line (see `sqlite.rs`). A load is one statement, so a loaded state and its version always
//! belong together.

use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use sqlx::types::Json;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, Row, Transaction, Type};
use tokio::sync::{mpsc, oneshot};

use super::group::{self, Batched, GroupCommit, Pending};
use super::{
    Account, AccountRow, ApplyRequest, ArtifactInfo, Balance, BuffRow, Change, CompanionInfo, FullState,
    IdempotentReply, LogQuery, LogRow, LoggedAction, LoggedCall, Pick, Player, RankedScore, RenameOutcome,
    RenameRequest, Revocation, Role, ScoreEntry, Sections, Store, StoreError, StoredArtifact, StoredEntity,
    db_err, seed_to_db, sha256_hex, wall_clock_ms,
};

/// What differs between the databases a [`SqlStore`] runs on.
pub trait Backend: Clone + Send + Sync + 'static {
    /// The sqlx database.
    type Db: Database;
    /// Held by a write for its whole transaction; `()` where the database itself orders writers.
    type Gate: Send;

    /// `"postgres"` or `"sqlite"`.
    const NAME: &'static str;
    /// The statement that begins a write transaction.
    const BEGIN_WRITE: &'static str;
    /// Appended to a select inside a write transaction to lock the rows it reads until commit
    /// (empty where the write transaction already excludes other writers).
    const LOCK_ROWS: &'static str;
    /// The column type JSON documents are stored in.
    const DOC_TYPE: &'static str;
    /// Batches committing at once under group commit, unless configured.
    const COMMITTERS: usize;

    /// How many rows a statement changed.
    fn rows_affected(result: &<Self::Db as Database>::QueryResult) -> u64;

    /// The embedded migrations.
    fn migrator() -> &'static sqlx::migrate::Migrator;

    /// Wait for this process's turn to write, within the backend's bound.
    fn gate(&self) -> impl Future<Output = Result<Self::Gate, StoreError>> + Send;

    /// Wait for this process's turn to write, however long it takes (migrations).
    fn gate_unbounded(&self) -> impl Future<Output = Self::Gate> + Send;
}

/// The store over the database of `B`. [`super::PgStore`] and [`super::SqliteStore`] name the two.
#[derive(Debug, Clone)]
pub struct SqlStore<B: Backend> {
    pub(super) pool: Pool<B::Db>,
    pub(super) backend: B,
    /// With group commit on, where `apply` queues its action for the committers.
    pub(super) group: Option<mpsc::Sender<Pending>>,
}

/// A write transaction and the gate it holds. Fields drop in order, so the transaction is finished
/// (rolled back if not committed) before the next writer is let in.
struct Write<B: Backend> {
    tx: Transaction<'static, B::Db>,
    _gate: B::Gate,
}

const ARTIFACT_COLUMNS: &str = "name, version, sha256, wasm_sha256, bundle, cast(length(bytes) as bigint) as size, \
     active, previous, uploaded_ms";

const PLAYER_BY_ID: &str = "select id, account_id, name, version, created_ms from players where id = $1";

/// The one statement that loads a player row and the chosen sections of its state: a `union all` of
/// one select per table, each tagged and switched on or off by a bound flag, so the database answers
/// in one round trip from one snapshot (a single statement sees one snapshot on both databases). Every
/// row fits one shape: tag `t`, name `k`, entity kind `k2`, integers `n1`-`n3`, a real `f`, a
/// document `d`. Bound: $1 player, $2-$7 the flags for stats, currencies, counters, items, scores and
/// buffs, $8 the time buffs must outlive, $9 and $10 "all entities" and "all plugin states", then the
/// entity kinds and plugin names picked by name. Only the number of names changes the text, so a
/// connection prepares few variants.
fn load_statement<B: Backend>(sections: &Sections) -> String {
    let mut next = 11;
    let mut names = |pick: &Pick| -> String {
        let Pick::Only(names) = pick else {
            return String::new();
        };
        let list: Vec<String> = names
            .iter()
            .map(|_| {
                next += 1;
                format!("${}", next - 1)
            })
            .collect();
        if list.is_empty() {
            String::new()
        } else {
            format!(" in ({})", list.join(", "))
        }
    };
    let kinds = names(&sections.entities);
    let plugins = names(&sections.plugin_state);
    let entity_filter = if kinds.is_empty() {
        "$9".to_owned()
    } else {
        format!("($9 or kind{kinds})")
    };
    let state_filter = if plugins.is_empty() {
        "$10".to_owned()
    } else {
        format!("($10 or plugin{plugins})")
    };
    format!(
        "select 'p' as t, name as k, cast(null as text) as k2, version as n1, created_ms as n2,
                account_id as n3, cast(null as double precision) as f, cast(null as {doc}) as d
         from players where id = $1
         union all select 's', name, null, null, null, null, value, null from stats where player_id = $1 and $2
         union all select 'c', name, null, amount, null, null, null, null from currencies
                   where player_id = $1 and $3
         union all select 'k', name, null, amount, null, null, null, null from counters
                   where player_id = $1 and $4
         union all select 'i', item, null, qty, null, null, null, null from items where player_id = $1 and $5
         union all select 'b', board, null, null, null, null, score, null from scores where player_id = $1 and $6
         union all select 'u', id, null, expires_ms, null, null, null, modifiers from buffs
                   where player_id = $1 and $7 and expires_ms > $8
         union all select 'e', id, kind, created_ms, updated_ms, null, null, data from entities
                   where player_id = $1 and {entity_filter}
         union all select 't', plugin, null, null, null, null, null, data from plugin_state
                   where player_id = $1 and {state_filter}",
        doc = B::DOC_TYPE,
    )
}

/// An `impl` block of [`SqlStore`] for every [`Backend`], under what sqlx needs of the backend's
/// database: running statements and migrations on its connections, and binding and decoding the column
/// types the schema uses. Rust does not carry a trait's bounds on other types to where the trait is used,
/// so every generic `impl` would have to repeat them; this states them once.
macro_rules! for_every_backend {
    ($(#[$attr:meta])* impl [$($trait_:tt)*] { $($body:tt)* }) => {
        $(#[$attr])*
        impl<B: Backend> $($trait_)* SqlStore<B>
        where
            <B::Db as Database>::Connection: sqlx::migrate::Migrate,
            for<'c> &'c mut <B::Db as Database>::Connection: Executor<'c, Database = B::Db>,
            for<'q> <B::Db as Database>::Arguments<'q>: IntoArguments<'q, B::Db>,
            for<'r> &'r str: ColumnIndex<<B::Db as Database>::Row> + Encode<'r, B::Db> + Type<B::Db>,
            usize: ColumnIndex<<B::Db as Database>::Row>,
            for<'r> i64: Encode<'r, B::Db> + Decode<'r, B::Db> + Type<B::Db>,
            for<'r> f64: Encode<'r, B::Db> + Decode<'r, B::Db> + Type<B::Db>,
            for<'r> bool: Encode<'r, B::Db> + Decode<'r, B::Db> + Type<B::Db>,
            for<'r> String: Decode<'r, B::Db> + Type<B::Db>,
            for<'r> Option<String>: Decode<'r, B::Db>,
            for<'r> Option<i64>: Decode<'r, B::Db>,
            for<'r> Option<f64>: Decode<'r, B::Db>,
            for<'r> Option<Json<serde_json::Value>>: Decode<'r, B::Db>,
            for<'r> Option<&'r str>: Encode<'r, B::Db>,
            for<'r> Vec<u8>: Decode<'r, B::Db> + Type<B::Db>,
            for<'r> &'r [u8]: Encode<'r, B::Db> + Type<B::Db>,
            for<'r> Option<&'r [u8]>: Encode<'r, B::Db>,
            for<'r> Option<Vec<u8>>: Decode<'r, B::Db>,
            for<'r> Json<serde_json::Value>: Decode<'r, B::Db> + Type<B::Db>,
            for<'r> Json<&'r serde_json::Value>: Encode<'r, B::Db> + Type<B::Db>,
        {
            $($body)*
        }
    };
}

impl<B: Backend> SqlStore<B> {
    /// Wait for the writer gate, then begin a write transaction.
    async fn begin_write(&self) -> Result<Write<B>, StoreError> {
        let gate = self.backend.gate().await?;
        let tx = self.pool.begin_with(B::BEGIN_WRITE).await.map_err(db_err)?;
        Ok(Write { tx, _gate: gate })
    }
}

for_every_backend! {
    impl [] {
        /// Apply one action in a transaction of its own (see [`Store::apply`]).
        async fn apply_alone(&self, req: ApplyRequest) -> Result<i64, StoreError> {
            let mut w = self.begin_write().await?;
            let refused = match Self::apply_in(&mut w.tx, &req).await {
                Ok(Some(version)) => {
                    w.tx.commit().await.map_err(db_err)?;
                    return Ok(version);
                }
                Ok(None) => None,
                Err(err) => Some(err),
            };
            // Roll back while still holding the gate, so the next writer finds the lock free.
            let Write { tx, _gate: gate } = w;
            if let Err(rollback) = tx.rollback().await {
                tracing::warn!(error = %rollback, "rollback after a refused action failed");
            }
            drop(gate);
            if let Some(err) = refused {
                return Err(err);
            }
            self.stale(req.player_id).await
        }

        /// The answer for an action whose version guard matched no row: the version moved, or there is
        /// no such player.
        async fn stale(&self, player_id: i64) -> Result<i64, StoreError> {
            match self.player_by_id(player_id).await? {
                Some(_) => Err(StoreError::Conflict),
                None => Err(StoreError::NotFound),
            }
        }

        /// Commit queued actions from now on in batches (see `group.rs`). Starts the committer tasks,
        /// so it must run inside the Tokio runtime; with `config.max_batch` of 1 it changes nothing.
        #[must_use]
        pub fn with_group_commit(mut self, config: GroupCommit) -> Self {
            if !config.enabled() {
                return self;
            }
            let (queue, rx) = mpsc::channel(group::QUEUE);
            let rx = Arc::new(tokio::sync::Mutex::new(rx));
            let committers = if config.committers == 0 { B::COMMITTERS } else { config.committers };
            for _ in 0..committers {
                // The committers' own handle has no queue: when every handle with one is dropped,
                // the queue closes and they stop.
                let store = SqlStore {
                    pool: self.pool.clone(),
                    backend: self.backend.clone(),
                    group: None,
                };
                let rx = Arc::clone(&rx);
                tokio::spawn(async move {
                    loop {
                        // One committer gathers a batch at a time; the others commit theirs meanwhile.
                        let batch = {
                            let mut rx = rx.lock().await;
                            group::next_batch(&mut rx, &config).await
                        };
                        let Some(batch) = batch else { return };
                        store.commit_batch(batch).await;
                    }
                });
            }
            self.group = Some(queue);
            self
        }

        /// Roll a batch back (still holding the gate, so the next writer finds the locks free) and have
        /// each caller still waiting apply its action on its own.
        async fn undo_batch(w: Write<B>, batch: Vec<Pending>) {
            let Write { tx, _gate: gate } = w;
            if let Err(rollback) = tx.rollback().await {
                tracing::warn!(error = %rollback, "rollback of a batch failed");
            }
            drop(gate);
            for pending in batch {
                let _ = pending.done.send(Batched::Alone(Box::new(pending.req)));
            }
        }

        /// Run a batch as one transaction and answer each of its actions (see `group.rs`).
        async fn commit_batch(&self, mut batch: Vec<Pending>) {
            // An action whose caller gave up (its request timed out or was cancelled) is not applied,
            // as a single action's transaction is rolled back when its request is dropped.
            batch.retain(|p| !p.done.is_closed());
            if batch.is_empty() {
                return;
            }
            batch.sort_by_key(|p| p.req.player_id);
            let mut w = match self.begin_write().await {
                Ok(w) => w,
                Err(err) => return group::fail_all(batch, err),
            };
            let mut answers = Vec::with_capacity(batch.len());
            for pending in &batch {
                match Self::apply_in(&mut w.tx, &pending.req).await {
                    Ok(Some(version)) => answers.push(Batched::Applied(version)),
                    Ok(None) => answers.push(Batched::Stale),
                    Err(err) => {
                        tracing::debug!(
                            error = %err,
                            player = pending.req.player_id,
                            batch = batch.len(),
                            "a change failed in a batch; its actions are applied one by one"
                        );
                        return Self::undo_batch(w, batch).await;
                    }
                }
            }
            if batch.iter().any(|p| p.done.is_closed()) {
                // A caller gave up while the batch ran: undo the batch, and the others apply theirs
                // on their own.
                return Self::undo_batch(w, batch).await;
            }
            match w.tx.commit().await {
                Ok(()) => group::answer(batch, answers),
                Err(err) => group::fail_all(batch, db_err(err)),
            }
        }

        /// The stored version `sha256` of `name`.
        async fn artifact_info(
            db: &mut <B::Db as Database>::Connection,
            name: &str,
            sha256: &str,
        ) -> Result<ArtifactInfo, StoreError> {
            let info: Option<ArtifactInfo> = sqlx::query_as(&format!(
                "select {ARTIFACT_COLUMNS} from plugin_artifacts where name = $1 and sha256 = $2"
            ))
            .bind(name)
            .bind(sha256)
            .fetch_optional(db)
            .await
            .map_err(db_err)?;
            info.ok_or(StoreError::NotFound)
        }

        /// Run artifact updates that take `name` and, with `sha256`, a second parameter. Bind exactly the
        /// parameters each statement has: a prepared statement is cached by its text.
        async fn update_artifacts(
            db: &mut <B::Db as Database>::Connection,
            statements: &[(&'static str, bool)],
            name: &str,
            sha256: &str,
        ) -> Result<(), StoreError> {
            for &(sql, with_sha) in statements {
                let query = sqlx::query(sql).bind(name);
                let query = if with_sha { query.bind(sha256) } else { query };
                query.execute(&mut *db).await.map_err(db_err)?;
            }
            Ok(())
        }

        /// The body of an action's transaction: the version guard, the changes, the log row. Returns the
        /// new version, or `None` if the player is not at the expected version (or does not exist).
        async fn apply_in(
            db: &mut <B::Db as Database>::Connection,
            req: &ApplyRequest,
        ) -> Result<Option<i64>, StoreError> {
            // The guard comes first: a stale version writes nothing at all.
            let version: Option<i64> = sqlx::query_scalar(
                "update players set version = version + 1 where id = $1 and version = $2 returning version",
            )
            .bind(req.player_id)
            .bind(req.expected_version)
            .fetch_optional(&mut *db)
            .await
            .map_err(db_err)?;
            let Some(version) = version else {
                return Ok(None);
            };
            // Housekeeping: expired buffs are invisible anyway. An action that changes buffs also drops
            // the expired ones, so the table holds little more than the live buffs without costing the
            // actions that touch none a statement.
            if req
                .effects
                .changes
                .iter()
                .any(|c| matches!(c, Change::AddBuff { .. } | Change::RemoveBuff { .. }))
            {
                sqlx::query("delete from buffs where player_id = $1 and expires_ms <= $2")
                    .bind(req.player_id)
                    .bind(req.log.now_ms)
                    .execute(&mut *db)
                    .await
                    .map_err(db_err)?;
            }
            for change in &req.effects.changes {
                Self::apply_change(db, req, change).await?;
            }
            let log = &req.log;
            let inserted = sqlx::query(
                "insert into action_log (player_id, plugin, plugin_version, plugin_sha256, action, params, seed,
                                         now_ms, outcome_digest, reply, idempotency_key, request_fingerprint,
                                         version, created_ms, call)
                 values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
                 on conflict (player_id, idempotency_key) do nothing",
            )
            .bind(req.player_id)
            .bind(req.plugin.as_str())
            .bind(log.plugin_version.as_str())
            .bind(log.plugin_sha256.as_str())
            .bind(log.action.as_str())
            .bind(Json(&log.params))
            .bind(seed_to_db(log.seed))
            .bind(log.now_ms)
            .bind(log.outcome_digest.as_str())
            .bind(Json(&log.reply))
            .bind(log.idempotency_key.as_deref())
            .bind(log.fingerprint.as_deref())
            .bind(version)
            .bind(wall_clock_ms())
            .bind(log.call.as_deref())
            .execute(&mut *db)
            .await
            .map_err(db_err)?;
            if B::rows_affected(&inserted) == 0 {
                // Another request with this key committed first; the caller's retry will find its reply.
                return Err(StoreError::Conflict);
            }
            Ok(Some(version))
        }

        /// Write one change inside the action's transaction. Every refusal is `Invalid`; the caller rolls
        /// back everything done so far.
        async fn apply_change(
            db: &mut <B::Db as Database>::Connection,
            req: &ApplyRequest,
            change: &Change,
        ) -> Result<(), StoreError> {
            let player_id = req.player_id;
            let now_ms = req.log.now_ms;
            // Each change is one statement, bound here and run below. `must_change` is the refusal when a
            // statement that has to change a row changes none.
            let (query, must_change) = match change {
                Change::AddBalance { balance, name, delta } => {
                    let sql = match (balance, *delta >= 0) {
                        // An overflowing sum fails in the database (out of range on PostgreSQL, a REAL in
                        // a STRICT table on SQLite), which `db_err` makes `Invalid`.
                        (Balance::Currency, true) => {
                            "insert into currencies (player_id, name, amount) values ($1, $2, $3)
                             on conflict (player_id, name) do update set amount = currencies.amount + excluded.amount"
                        }
                        (Balance::Counter, true) => {
                            "insert into counters (player_id, name, amount) values ($1, $2, $3)
                             on conflict (player_id, name) do update set amount = counters.amount + excluded.amount"
                        }
                        // Spending checks the balance in the same statement that changes it: no
                        // read-then-write race.
                        (Balance::Currency, false) => {
                            "update currencies set amount = amount + $3
                             where player_id = $1 and name = $2 and amount + $3 >= 0"
                        }
                        (Balance::Counter, false) => {
                            "update counters set amount = amount + $3
                             where player_id = $1 and name = $2 and amount + $3 >= 0"
                        }
                    };
                    let refusal = format!("not enough `{name}` to take {}", delta.unsigned_abs());
                    (
                        sqlx::query(sql).bind(player_id).bind(name.as_str()).bind(*delta),
                        Some(refusal),
                    )
                }
                Change::AddItem { item, qty } => (
                    sqlx::query(
                        "insert into items (player_id, item, qty) values ($1, $2, $3)
                         on conflict (player_id, item) do update set qty = items.qty + excluded.qty",
                    )
                    .bind(player_id)
                    .bind(item.as_str())
                    .bind(*qty),
                    None,
                ),
                Change::RemoveItem { item, qty } => return Self::remove_item(db, player_id, item, *qty).await,
                Change::SetStat { name, value } => (
                    sqlx::query(
                        "insert into stats (player_id, name, value) values ($1, $2, $3)
                         on conflict (player_id, name) do update set value = excluded.value",
                    )
                    .bind(player_id)
                    .bind(name.as_str())
                    .bind(*value),
                    None,
                ),
                // An id taken by any player, this one included, inserts nothing.
                Change::CreateEntity { id, kind, data } => (
                    sqlx::query(
                        "insert into entities (id, player_id, kind, data, created_ms, updated_ms)
                         values ($1, $2, $3, $4, $5, $5)
                         on conflict (id) do nothing",
                    )
                    .bind(id.as_str())
                    .bind(player_id)
                    .bind(kind.as_str())
                    .bind(Json(data))
                    .bind(now_ms),
                    Some(format!("entity id `{id}` is taken")),
                ),
                // The validator saw the entity in the player's state with an allowed kind, and the version
                // guard says that state is current; an entity that is not this player's changes no row.
                Change::UpdateEntity { id, data } => (
                    sqlx::query(
                        "update entities set data = $3, updated_ms = $4 where id = $1 and player_id = $2",
                    )
                    .bind(id.as_str())
                    .bind(player_id)
                    .bind(Json(data))
                    .bind(now_ms),
                    Some(format!("no entity `{id}`")),
                ),
                Change::DeleteEntity { id } => (
                    sqlx::query("delete from entities where id = $1 and player_id = $2")
                        .bind(id.as_str())
                        .bind(player_id),
                    Some(format!("no entity `{id}`")),
                ),
                Change::AddBuff {
                    id,
                    modifiers,
                    expires_ms,
                } => (
                    sqlx::query(
                        "insert into buffs (player_id, id, modifiers, expires_ms) values ($1, $2, $3, $4)
                         on conflict (player_id, id)
                         do update set modifiers = excluded.modifiers, expires_ms = excluded.expires_ms",
                    )
                    .bind(player_id)
                    .bind(id.as_str())
                    .bind(Json(modifiers))
                    .bind(*expires_ms),
                    None,
                ),
                // Removing a buff that is not there changes nothing, and that is fine.
                Change::RemoveBuff { id } => (
                    sqlx::query("delete from buffs where player_id = $1 and id = $2")
                        .bind(player_id)
                        .bind(id.as_str()),
                    None,
                ),
                Change::SetState { data } => (
                    sqlx::query(
                        "insert into plugin_state (player_id, plugin, data) values ($1, $2, $3)
                         on conflict (player_id, plugin) do update set data = excluded.data",
                    )
                    .bind(player_id)
                    .bind(req.plugin.as_str())
                    .bind(Json(data)),
                    None,
                ),
                Change::SetScore { board, score } => (
                    sqlx::query(
                        "insert into scores (board, player_id, score) values ($1, $2, $3)
                         on conflict (board, player_id) do update set score = excluded.score",
                    )
                    .bind(board.as_str())
                    .bind(player_id)
                    .bind(*score),
                    None,
                ),
            };
            let done = query.execute(&mut *db).await.map_err(db_err)?;
            match must_change {
                Some(refusal) if B::rows_affected(&done) == 0 => Err(StoreError::Invalid(refusal)),
                _ => Ok(()),
            }
        }

        /// Take `qty` of `item`, dropping the stack when it is empty; refused if there is not enough.
        async fn remove_item(
            db: &mut <B::Db as Database>::Connection,
            player_id: i64,
            item: &str,
            qty: i64,
        ) -> Result<(), StoreError> {
            let left: Option<i64> = sqlx::query_scalar(
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
                    sqlx::query("delete from items where player_id = $1 and item = $2 and qty = 0")
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
    }
}

for_every_backend! {
    #[async_trait]
    impl [Store for] {
        fn backend(&self) -> &'static str {
            B::NAME
        }

        async fn migrate(&self) -> Result<(), StoreError> {
            let _gate = self.backend.gate_unbounded().await;
            B::migrator()
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
            let _gate = self.backend.gate().await?;
            // `on conflict do nothing`: a taken name is an answer, not an aborted statement.
            let row: Option<AccountRow> = sqlx::query_as(
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
                "select id, username, password_hash, role, created_ms from accounts where id = $1",
            )
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
            row.map(AccountRow::into_account).transpose()
        }

        async fn create_player(&self, account_id: i64, name: &str) -> Result<Player, StoreError> {
            let _gate = self.backend.gate().await?;
            let row: Option<Player> = sqlx::query_as(
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
            sqlx::query_as("select id, account_id, name, version, created_ms from players where account_id = $1")
                .bind(account_id)
                .fetch_optional(&self.pool)
                .await
                .map_err(db_err)
        }

        async fn player_by_id(&self, id: i64) -> Result<Option<Player>, StoreError> {
            sqlx::query_as(PLAYER_BY_ID)
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err(db_err)
        }

        async fn load(
            &self,
            player_id: i64,
            now_ms: i64,
            sections: &Sections,
        ) -> Result<FullState, StoreError> {
            let sql = load_statement::<B>(sections);
            let mut query = sqlx::query(&sql)
                .bind(player_id)
                .bind(sections.stats)
                .bind(sections.currencies)
                .bind(sections.counters)
                .bind(sections.items)
                .bind(sections.scores)
                .bind(sections.buffs)
                .bind(now_ms)
                .bind(matches!(sections.entities, Pick::All))
                .bind(matches!(sections.plugin_state, Pick::All));
            for pick in [&sections.entities, &sections.plugin_state] {
                if let Pick::Only(names) = pick {
                    for name in names {
                        query = query.bind(name.as_str());
                    }
                }
            }
            let rows = query.fetch_all(&self.pool).await.map_err(db_err)?;
            let mut player = None;
            let mut full = FullState {
                player: Player {
                    id: player_id,
                    account_id: 0,
                    name: String::new(),
                    version: 0,
                    created_ms: 0,
                },
                stats: Default::default(),
                currencies: Default::default(),
                counters: Default::default(),
                items: Default::default(),
                entities: Vec::new(),
                buffs: Vec::new(),
                plugin_state: Default::default(),
                scores: Default::default(),
            };
            for row in &rows {
                let tag: String = row.try_get("t").map_err(db_err)?;
                let key: String = row.try_get("k").map_err(db_err)?;
                let int = |column: &str| -> Result<i64, StoreError> {
                    let value: Option<i64> = row.try_get(column).map_err(db_err)?;
                    value.ok_or_else(|| super::corrupt("player state row", column))
                };
                let real = || -> Result<f64, StoreError> {
                    let value: Option<f64> = row.try_get("f").map_err(db_err)?;
                    value.ok_or_else(|| super::corrupt("player state row", "f"))
                };
                let doc = || -> Result<serde_json::Value, StoreError> {
                    let value: Option<Json<serde_json::Value>> = row.try_get("d").map_err(db_err)?;
                    value
                        .map(|Json(v)| v)
                        .ok_or_else(|| super::corrupt("player state row", "d"))
                };
                match tag.as_str() {
                    "p" => {
                        player = Some(Player {
                            id: player_id,
                            account_id: int("n3")?,
                            name: key,
                            version: int("n1")?,
                            created_ms: int("n2")?,
                        });
                    }
                    "s" => {
                        full.stats.insert(key, real()?);
                    }
                    "c" => {
                        full.currencies.insert(key, int("n1")?);
                    }
                    "k" => {
                        full.counters.insert(key, int("n1")?);
                    }
                    "i" => {
                        full.items.insert(key, int("n1")?);
                    }
                    "b" => {
                        full.scores.insert(key, real()?);
                    }
                    "u" => full.buffs.push(
                        BuffRow {
                            id: key,
                            modifiers: Json(doc()?),
                            expires_ms: int("n1")?,
                        }
                        .into_buff()?,
                    ),
                    "e" => {
                        let kind: Option<String> = row.try_get("k2").map_err(db_err)?;
                        full.entities.push(StoredEntity {
                            id: key,
                            kind: kind.ok_or_else(|| super::corrupt("entity row", "kind"))?,
                            data: doc()?,
                            created_ms: int("n1")?,
                            updated_ms: int("n2")?,
                        });
                    }
                    "t" => {
                        full.plugin_state.insert(key, doc()?);
                    }
                    other => return Err(super::corrupt("player state row tag", other)),
                }
            }
            full.player = player.ok_or(StoreError::NotFound)?;
            // Entities and buffs in id order, whatever order the index gave them in.
            full.entities.sort_by(|a, b| a.id.cmp(&b.id));
            full.buffs.sort_by(|a, b| a.id.cmp(&b.id));
            Ok(full)
        }

        async fn apply(&self, req: ApplyRequest) -> Result<i64, StoreError> {
            let Some(queue) = &self.group else {
                return self.apply_alone(req).await;
            };
            let player_id = req.player_id;
            let (done, answer) = oneshot::channel();
            if let Err(mpsc::error::SendError(pending)) = queue.send(Pending { req, done }).await {
                // The committers are gone (the runtime is shutting down): commit it here.
                return self.apply_alone(pending.req).await;
            }
            match answer.await {
                Ok(Batched::Applied(version)) => Ok(version),
                Ok(Batched::Stale) => self.stale(player_id).await,
                Ok(Batched::Alone(req)) => self.apply_alone(*req).await,
                Ok(Batched::Failed(err)) => Err(err),
                Err(_) => Err(StoreError::Unavailable(sqlx::Error::Io(std::io::Error::other(
                    "the committer stopped before answering",
                )))),
            }
        }

        async fn idempotent_reply(
            &self,
            player_id: i64,
            key: &str,
        ) -> Result<Option<IdempotentReply>, StoreError> {
            let row: Option<(Json<serde_json::Value>, i64, Option<String>)> = sqlx::query_as(
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
            wasm_sha256: &str,
            bytes: &[u8],
        ) -> Result<ArtifactInfo, StoreError> {
            let sha256 = sha256_hex(bytes);
            let mut w = self.begin_write().await?;
            sqlx::query(
                "insert into plugin_artifacts (name, version, sha256, wasm_sha256, bytes, bundle, uploaded_ms)
                 values ($1, $2, $3, $4, $5, true, $6)
                 on conflict (name, sha256) do nothing",
            )
            .bind(name)
            .bind(version)
            .bind(sha256.as_str())
            .bind(wasm_sha256)
            .bind(bytes)
            .bind(wall_clock_ms())
            .execute(&mut *w.tx)
            .await
            .map_err(db_err)?;
            let info = Self::artifact_info(&mut w.tx, name, &sha256).await?;
            w.tx.commit().await.map_err(db_err)?;
            Ok(info)
        }

        async fn activate_artifact(&self, name: &str, sha256: &str) -> Result<ArtifactInfo, StoreError> {
            let mut w = self.begin_write().await?;
            let target = Self::artifact_info(&mut w.tx, name, sha256).await?;
            if target.active {
                return Ok(target);
            }
            // Three steps, each keeping "one active, one previous per name" true, because the partial
            // unique indexes are checked row by row.
            let steps = [
                (
                    "update plugin_artifacts set previous = false where name = $1 and previous = true",
                    false,
                ),
                (
                    "update plugin_artifacts set active = false, previous = true where name = $1 and active = true",
                    false,
                ),
                (
                    "update plugin_artifacts set active = true where name = $1 and sha256 = $2",
                    true,
                ),
            ];
            Self::update_artifacts(&mut w.tx, &steps, name, sha256).await?;
            w.tx.commit().await.map_err(db_err)?;
            Ok(ArtifactInfo {
                active: true,
                previous: false,
                ..target
            })
        }

        async fn rollback_artifact(&self, name: &str) -> Result<ArtifactInfo, StoreError> {
            let mut w = self.begin_write().await?;
            let target: Option<ArtifactInfo> = sqlx::query_as(&format!(
                "select {ARTIFACT_COLUMNS} from plugin_artifacts where name = $1 and previous = true{}",
                B::LOCK_ROWS
            ))
            .bind(name)
            .fetch_optional(&mut *w.tx)
            .await
            .map_err(db_err)?;
            let target = target.ok_or(StoreError::NotFound)?;
            let steps = [
                (
                    "update plugin_artifacts set active = false where name = $1 and active = true",
                    false,
                ),
                (
                    "update plugin_artifacts set previous = false, active = true where name = $1 and sha256 = $2",
                    true,
                ),
            ];
            Self::update_artifacts(&mut w.tx, &steps, name, &target.sha256).await?;
            w.tx.commit().await.map_err(db_err)?;
            Ok(ArtifactInfo {
                active: true,
                previous: false,
                ..target
            })
        }

        async fn deactivate_artifact(&self, name: &str) -> Result<(), StoreError> {
            let _gate = self.backend.gate().await?;
            let done =
                sqlx::query("update plugin_artifacts set active = false where name = $1 and active = true")
                    .bind(name)
                    .execute(&self.pool)
                    .await
                    .map_err(db_err)?;
            if B::rows_affected(&done) == 0 {
                return Err(StoreError::NotFound);
            }
            Ok(())
        }

        async fn active_artifacts(&self) -> Result<Vec<ArtifactInfo>, StoreError> {
            sqlx::query_as(&format!(
                "select {ARTIFACT_COLUMNS} from plugin_artifacts where active = true order by name"
            ))
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)
        }

        async fn artifacts(&self, name: &str) -> Result<Vec<ArtifactInfo>, StoreError> {
            sqlx::query_as(&format!(
                "select {ARTIFACT_COLUMNS} from plugin_artifacts where name = $1 order by id desc"
            ))
            .bind(name)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)
        }

        async fn artifact(&self, name: &str, sha256: &str) -> Result<Option<StoredArtifact>, StoreError> {
            let info: Option<ArtifactInfo> = sqlx::query_as(&format!(
                "select {ARTIFACT_COLUMNS} from plugin_artifacts where name = $1 and sha256 = $2"
            ))
            .bind(name)
            .bind(sha256)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
            let Some(info) = info else {
                return Ok(None);
            };
            let bytes: Option<Vec<u8>> =
                sqlx::query_scalar("select bytes from plugin_artifacts where name = $1 and sha256 = $2")
                    .bind(name)
                    .bind(sha256)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(db_err)?;
            Ok(bytes.map(|bytes| StoredArtifact { info, bytes }))
        }

        async fn prune_artifacts(&self, name: &str, keep: usize) -> Result<u64, StoreError> {
            let mut w = self.begin_write().await?;
            // The newest `keep` by id stay, and so do the active version and the rollback target.
            let done = sqlx::query(
                "delete from plugin_artifacts
                 where name = $1 and active = false and previous = false
                   and id not in (select id from plugin_artifacts where name = $1 order by id desc limit $2)",
            )
            .bind(name)
            .bind(i64::try_from(keep).unwrap_or(i64::MAX))
            .execute(&mut *w.tx)
            .await
            .map_err(db_err)?;
            w.tx.commit().await.map_err(db_err)?;
            Ok(B::rows_affected(&done))
        }

        async fn logged_calls(&self, query: &LogQuery) -> Result<Vec<LoggedCall>, StoreError> {
            // Only placeholders are formatted into the text, never values; the filters a query does
            // not use leave their clause out, so each combination is one prepared statement.
            let mut sql = String::from(
                "select id, player_id, action, cast(params as text) as params, plugin_sha256,
                        outcome_digest, call
                 from action_log where plugin = $1 and id > $2 and call is not null",
            );
            let mut n = 3;
            let mut next = || {
                n += 1;
                n - 1
            };
            if query.before_id.is_some() {
                sql.push_str(&format!(" and id < ${}", next()));
            }
            if query.since_ms.is_some() {
                sql.push_str(&format!(" and created_ms >= ${}", next()));
            }
            if query.until_ms.is_some() {
                sql.push_str(&format!(" and created_ms < ${}", next()));
            }
            if query.action.is_some() {
                sql.push_str(&format!(" and action = ${}", next()));
            }
            if !query.players.is_empty() {
                let list: Vec<String> = query.players.iter().map(|_| format!("${}", next())).collect();
                sql.push_str(&format!(" and player_id in ({})", list.join(", ")));
            }
            let order = if query.newest_first { "desc" } else { "asc" };
            sql.push_str(&format!(" order by id {order} limit ${}", next()));
            let mut q = sqlx::query_as::<_, LoggedCall>(&sql)
                .bind(query.plugin.as_str())
                .bind(query.after_id);
            if let Some(before) = query.before_id {
                q = q.bind(before);
            }
            if let Some(since) = query.since_ms {
                q = q.bind(since);
            }
            if let Some(until) = query.until_ms {
                q = q.bind(until);
            }
            if let Some(action) = &query.action {
                q = q.bind(action.as_str());
            }
            for &player in &query.players {
                q = q.bind(player);
            }
            q.bind(i64::from(query.limit))
                .fetch_all(&self.pool)
                .await
                .map_err(db_err)
        }

        async fn clear_logged_calls(&self, before_ms: i64, limit: u32) -> Result<u64, StoreError> {
            let _gate = self.backend.gate().await?;
            let done = sqlx::query(
                "update action_log set call = null
                 where id in (select id from action_log
                              where call is not null and created_ms < $1 order by created_ms limit $2)",
            )
            .bind(before_ms)
            .bind(i64::from(limit))
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
            Ok(B::rows_affected(&done))
        }

        async fn set_companion(
            &self,
            kind: &str,
            name: &str,
            sha256: &str,
            share_bp: u32,
        ) -> Result<CompanionInfo, StoreError> {
            let share = i64::from(share_bp.min(10_000));
            let mut w = self.begin_write().await?;
            let version: Option<String> =
                sqlx::query_scalar("select version from plugin_artifacts where name = $1 and sha256 = $2")
                    .bind(name)
                    .bind(sha256)
                    .fetch_optional(&mut *w.tx)
                    .await
                    .map_err(db_err)?;
            let version = version.ok_or(StoreError::NotFound)?;
            let info: CompanionInfo = sqlx::query_as(
                "insert into plugin_companions (name, kind, version, sha256, share_bp, updated_ms)
                 values ($1, $2, $3, $4, $5, $6)
                 on conflict (name, kind) do update set version = excluded.version,
                     sha256 = excluded.sha256, share_bp = excluded.share_bp, updated_ms = excluded.updated_ms
                 returning name, kind, version, sha256, share_bp, updated_ms",
            )
            .bind(name)
            .bind(kind)
            .bind(version.as_str())
            .bind(sha256)
            .bind(share)
            .bind(wall_clock_ms())
            .fetch_one(&mut *w.tx)
            .await
            .map_err(db_err)?;
            w.tx.commit().await.map_err(db_err)?;
            Ok(info)
        }

        async fn clear_companion(&self, kind: &str, name: &str) -> Result<(), StoreError> {
            let _gate = self.backend.gate().await?;
            let done = sqlx::query("delete from plugin_companions where name = $1 and kind = $2")
                .bind(name)
                .bind(kind)
                .execute(&self.pool)
                .await
                .map_err(db_err)?;
            if B::rows_affected(&done) == 0 {
                return Err(StoreError::NotFound);
            }
            Ok(())
        }

        async fn companions(&self) -> Result<Vec<CompanionInfo>, StoreError> {
            sqlx::query_as(
                "select name, kind, version, sha256, share_bp, updated_ms from plugin_companions
                 order by name, kind",
            )
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)
        }

        async fn log_id(&self, player_id: i64, version: i64) -> Result<Option<i64>, StoreError> {
            sqlx::query_scalar("select id from action_log where player_id = $1 and version = $2")
                .bind(player_id)
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
                "select id, player_id, plugin, plugin_version, plugin_sha256, action, params, seed, now_ms,
                        outcome_digest, call, reply, idempotency_key, request_fingerprint, version, created_ms
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
                "select s.player_id, p.name, s.score from scores s join players p on p.id = s.player_id
                 where s.board = $1 order by s.score desc, s.player_id limit $2",
            )
            .bind(board)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)
        }

        async fn scores_around(
            &self,
            board: &str,
            player_id: i64,
            exclude_name: &str,
            limit: u32,
            offset: u32,
        ) -> Result<(Option<RankedScore>, Vec<RankedScore>), StoreError> {
            let me: Option<RankedScore> = sqlx::query_as(
                "select s.player_id, p.name, s.score,
                        cast((select count(*) from scores h join players hp on hp.id = h.player_id
                              where h.board = $1 and h.score > s.score and hp.name <> $3) + 1
                             as bigint) as rank
                 from scores s join players p on p.id = s.player_id
                 where s.board = $1 and s.player_id = $2",
            )
            .bind(board)
            .bind(player_id)
            .bind(exclude_name)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
            let mine = me.as_ref().map_or(0.0, |m| m.score);
            let rows: Vec<RankedScore> = sqlx::query_as(
                "select s.player_id, p.name, s.score,
                        cast((select count(*) from scores h join players hp on hp.id = h.player_id
                              where h.board = $1 and h.score > s.score and hp.name <> $3) + 1
                             as bigint) as rank
                 from scores s join players p on p.id = s.player_id
                 where s.board = $1 and s.player_id <> $2 and p.name <> $3
                 order by abs(s.score - $4), s.score desc, s.player_id
                 limit $5 offset $6",
            )
            .bind(board)
            .bind(player_id)
            .bind(exclude_name)
            .bind(mine)
            .bind(i64::from(limit))
            .bind(i64::from(offset))
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
            Ok((me, rows))
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
            sqlx::query("delete from revoked_tokens where expires_ms < $1")
                .bind(wall_clock_ms())
                .execute(&mut *w.tx)
                .await
                .map_err(db_err)?;
            sqlx::query(
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
            let row: Option<i64> =
                sqlx::query_scalar("select cast(1 as bigint) from revoked_tokens where jti = $1")
                    .bind(jti)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(db_err)?;
            Ok(row.is_some())
        }

        async fn unexpired_revocations(&self, now_ms: i64) -> Result<Vec<Revocation>, StoreError> {
            sqlx::query_as("select jti, expires_ms from revoked_tokens where expires_ms >= $1")
                .bind(now_ms)
                .fetch_all(&self.pool)
                .await
                .map_err(db_err)
        }

        async fn rename_player(&self, req: RenameRequest<'_>) -> Result<RenameOutcome, StoreError> {
            let mut w = self.begin_write().await?;
            // The name first: the unique index refuses a name another player holds (on PostgreSQL a
            // concurrent claim waits for the other transaction and then fails). Counting the change in
            // the same statement means two renames of one player cannot both be the free one.
            let renamed: Result<Option<(i64, i64)>, sqlx::Error> = sqlx::query_as(
                "update players set name = $2, name_changes = name_changes + 1, version = version + 1
                 where id = $1 returning name_changes, version",
            )
            .bind(req.player_id)
            .bind(req.name)
            .fetch_optional(&mut *w.tx)
            .await;
            let (name_changes, version) = match renamed {
                Ok(Some(row)) => row,
                Ok(None) => return Err(StoreError::NotFound),
                Err(e) if e.as_database_error().is_some_and(|d| d.is_unique_violation()) => {
                    return Ok(RenameOutcome::NameTaken);
                }
                Err(e) => return Err(db_err(e)),
            };
            let cost = if name_changes > req.free_changes { req.cost } else { 0 };
            if cost > 0 {
                let paid = sqlx::query(
                    "update currencies set amount = amount - $3
                     where player_id = $1 and name = $2 and amount >= $3",
                )
                .bind(req.player_id)
                .bind(req.currency)
                .bind(cost)
                .execute(&mut *w.tx)
                .await
                .map_err(db_err)?;
                if B::rows_affected(&paid) == 0 {
                    return Ok(RenameOutcome::Insufficient);
                }
            }
            w.tx.commit().await.map_err(db_err)?;
            Ok(RenameOutcome::Renamed {
                cost,
                name_changes,
                version,
            })
        }

        async fn top_named_scores(&self, board: &str, limit: u32) -> Result<Vec<ScoreEntry>, StoreError> {
            sqlx::query_as(
                "select s.player_id, p.name, s.score from scores s join players p on p.id = s.player_id
                 where s.board = $1 and p.name <> $3 order by s.score desc, s.player_id limit $2",
            )
            .bind(board)
            .bind(i64::from(limit))
            .bind(super::DEFAULT_PLAYER_NAME)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)
        }

        async fn top_named_balances(&self, currency: &str, limit: u32) -> Result<Vec<ScoreEntry>, StoreError> {
            sqlx::query_as(
                "select c.player_id, p.name, cast(c.amount as double precision) as score
                 from currencies c join players p on p.id = c.player_id
                 where c.name = $1 and p.name <> $3 order by c.amount desc, c.player_id limit $2",
            )
            .bind(currency)
            .bind(i64::from(limit))
            .bind(super::DEFAULT_PLAYER_NAME)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)
        }

        async fn board_details(
            &self,
            board: &str,
            ids: &[i64],
        ) -> Result<std::collections::BTreeMap<i64, serde_json::Value>, StoreError> {
            let mut details = std::collections::BTreeMap::new();
            if ids.is_empty() {
                return Ok(details);
            }
            // Placeholders are numbered, never the values: `$1, $2, ...` for at most a page of ids.
            let placeholders = (1..=ids.len()).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
            let sql = format!(
                "select player_id, data from plugin_state where player_id in ({placeholders}) order by player_id, plugin"
            );
            let mut query = sqlx::query_as::<_, (i64, Json<serde_json::Value>)>(&sql);
            for &id in ids {
                query = query.bind(id);
            }
            let rows = query.fetch_all(&self.pool).await.map_err(db_err)?;
            for (player_id, Json(data)) in rows {
                if let Some(detail) = data
                    .get(super::BOARD_DETAILS_KEY)
                    .and_then(|b| b.get(board))
                    .filter(|d| d.is_object())
                {
                    details.entry(player_id).or_insert_with(|| detail.clone());
                }
            }
            Ok(details)
        }

        async fn player_names(&self, ids: &[i64]) -> Result<std::collections::BTreeMap<i64, String>, StoreError> {
            let mut names = std::collections::BTreeMap::new();
            // One indexed read per id: callers ask for a page of rows at most (100).
            for &id in ids {
                let name: Option<String> = sqlx::query_scalar("select name from players where id = $1")
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(db_err)?;
                if let Some(name) = name {
                    names.insert(id, name);
                }
            }
            Ok(names)
        }
    }
}
