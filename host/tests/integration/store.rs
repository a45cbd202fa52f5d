//! The storage suite: every case is written once and run against PostgreSQL and SQLite.
//!
//! PostgreSQL: a real server (`CAULDRON_TEST_PG_URL`, default `postgres://postgres@127.0.0.1:5432`,
//! trust auth); each test creates a fresh database with a random name and drops it afterwards, even when
//! the test fails. SQLite: a fresh file in a temporary directory per test.
#![allow(
    clippy::unwrap_used,
    reason = "an unwrap is an assertion here; clippy's test allowance misses the non-#[test] case fns"
)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use cauldron_host::game::effects::validate;
use cauldron_host::json::json_to_doc;
use cauldron_host::store::{
    self, ApplyRequest, CheckedEffects, DEFAULT_PLAYER_NAME, FullState, GroupCommit, LogEntry, LogQuery,
    Pick, RenameOutcome, RenameRequest, Role, Sections, Store, StoreError,
};
use cauldron_sdk::Doc;
use cauldron_sdk::wire::{Buff, Effect, Entity, Event, Modifier, PlayerState, Scope};
use serde_json::json;
use sqlx::Connection;

// ---- harness ----------------------------------------------------------------------------------------

#[derive(Clone, Copy)]
enum Backend {
    Pg,
    Sqlite,
}

/// A migrated store on its own fresh database, removed on drop.
struct TestDb {
    backend: Backend,
    store: Arc<dyn Store>,
    /// The store's URL, for raw connections that tamper with the schema.
    url: String,
    pg_name: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

fn pg_base() -> String {
    std::env::var("CAULDRON_TEST_PG_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

fn unique_name() -> String {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "cauldron_test_{}_{}_{}",
        std::process::id(),
        nanos % 1_000_000_000_000,
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

/// A [`TestDb`] on the database of `backend` (the store suite needs no Redis).
async fn test_db(backend: crate::common::Backend) -> TestDb {
    TestDb::new(match backend {
        crate::common::Backend::PgRedis => Backend::Pg,
        crate::common::Backend::SqliteLocal => Backend::Sqlite,
    })
    .await
}

impl TestDb {
    async fn new(backend: Backend) -> Self {
        let (url, pg_name, dir) = match backend {
            Backend::Pg => {
                let name = unique_name();
                let mut admin = sqlx::PgConnection::connect(&format!("{}/postgres", pg_base()))
                    .await
                    .expect("PostgreSQL must be running for the storage suite");
                sqlx::query(&format!("create database \"{name}\""))
                    .execute(&mut admin)
                    .await
                    .unwrap();
                admin.close().await.unwrap();
                (format!("{}/{name}", pg_base()), Some(name), None)
            }
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let url = format!("sqlite://{}", dir.path().join("store.db").display());
                (url, None, Some(dir))
            }
        };
        let store = store::connect(&url, GroupCommit::default()).await.unwrap();
        store.migrate().await.unwrap();
        TestDb {
            backend,
            store,
            url,
            pg_name,
            _dir: dir,
        }
    }
}

impl Drop for TestDb {
    #[allow(
        clippy::disallowed_macros,
        reason = "a test binary's stderr is the place for this"
    )]
    fn drop(&mut self) {
        let Some(name) = self.pg_name.take() else {
            return;
        };
        // Drop runs inside the test's runtime, so the cleanup gets a thread and a runtime of its own.
        // `with (force)` ends the store's pooled connections.
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

/// Run `sql` on a connection of its own, behind the store's back.
async fn raw_execute(db: &TestDb, sql: &str) {
    match db.backend {
        Backend::Pg => {
            let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
            sqlx::query(sql).execute(&mut conn).await.unwrap();
            conn.close().await.unwrap();
        }
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
            sqlx::query(sql).execute(&mut conn).await.unwrap();
            conn.close().await.unwrap();
        }
    }
}

both_backends!(
    crate::store::test_db;
    migrations_run_and_are_idempotent,
    accounts_and_players,
    apply_each_effect_and_read_it_back,
    version_conflict_writes_nothing,
    invalid_effect_rolls_back_everything,
    database_error_mid_apply_rolls_back,
    idempotency_key_returns_the_logged_reply,
    concurrent_removals_never_oversell,
    artifacts_activate_rollback_deactivate,
    top_scores_rank_players,
    scores_around_a_player_are_nearest_first_and_leave_out_a_name,
    action_log_pages_for_replay,
    renames_are_unique_counted_and_priced,
    named_boards_balances_and_details,
    a_load_reads_only_the_chosen_sections_in_one_snapshot,
    a_batch_commits_the_others_once_around_a_conflict_and_a_refusal,
    a_failed_statement_in_a_batch_applies_none_and_the_others_commit_alone,
    concurrent_spends_of_many_players_in_batches_never_oversell,
);

const NOW: i64 = 1_700_000_000_000;
const PLUGIN: &str = "alchemy";

fn kinds(k: &[&str]) -> Vec<String> {
    k.iter().map(|s| (*s).to_owned()).collect()
}

fn log(action: &str) -> LogEntry {
    LogEntry {
        plugin_version: "1.0.0".into(),
        plugin_sha256: "ab".repeat(32),
        action: action.into(),
        params: json!({"n": 1}),
        seed: 42,
        now_ms: NOW,
        outcome_digest: "cd".repeat(32),
        call: Some(format!("call of {action}").into_bytes()),
        reply: json!({"ok": true}),
        idempotency_key: None,
        fingerprint: None,
    }
}

fn doc(v: serde_json::Value) -> Doc {
    json_to_doc(&v)
}

/// A fresh account and player; returns the player id.
async fn new_player(store: &dyn Store, name: &str) -> i64 {
    let account = store.create_account(name, "hash", Role::Player).await.unwrap();
    store.create_player(account.id, name).await.unwrap().id
}

/// `effects` as the validator passes them when the loaded state holds what they need: enough of what
/// they spend and remove, and the entities they change (of the first of `kinds`). Whatever the
/// database really holds, its rules then decide, as they do when a concurrent change got there first.
fn checked(kinds: &[String], effects: &[Effect]) -> CheckedEffects {
    let mut claim = PlayerState::default();
    for effect in effects {
        match effect {
            Effect::AddCurrency { name, delta } if *delta < 0 => {
                *claim.currencies.entry(name.clone()).or_default() -= delta;
            }
            Effect::RemoveItem { item, qty } => *claim.items.entry(item.clone()).or_default() += qty,
            Effect::UpdateEntity { id, .. } | Effect::DeleteEntity { id } => claim.entities.push(Entity {
                id: id.clone(),
                kind: kinds[0].clone(),
                data: Doc::nil(),
            }),
            _ => {}
        }
    }
    validate(&claim, &Sections::all(), kinds, &[], effects, NOW).unwrap()
}

/// The player's current version.
async fn version(store: &dyn Store, player_id: i64) -> i64 {
    store.player_by_id(player_id).await.unwrap().unwrap().version
}

/// Apply `effects` from the player's current version, as `plugin` with entity `kinds`.
async fn apply_as(
    store: &dyn Store,
    player_id: i64,
    plugin: &str,
    kinds: &[String],
    effects: &[Effect],
) -> Result<i64, StoreError> {
    store
        .apply(ApplyRequest {
            player_id,
            expected_version: version(store, player_id).await,
            plugin: plugin.to_owned(),
            effects: checked(kinds, effects),
            log: log("act"),
        })
        .await
}

async fn apply(store: &dyn Store, player_id: i64, effects: &[Effect]) -> Result<i64, StoreError> {
    apply_as(store, player_id, PLUGIN, &kinds(&["pet", "gear"]), effects).await
}

async fn full(store: &dyn Store, player_id: i64) -> FullState {
    store.load_full(player_id, NOW).await.unwrap()
}

fn item(item: &str, qty: i64) -> Effect {
    Effect::AddItem {
        item: item.into(),
        qty,
    }
}

fn remove(item: &str, qty: i64) -> Effect {
    Effect::RemoveItem {
        item: item.into(),
        qty,
    }
}

fn currency(name: &str, delta: i64) -> Effect {
    Effect::AddCurrency {
        name: name.into(),
        delta,
    }
}

fn entity(id: &str, kind: &str, data: serde_json::Value) -> Effect {
    Effect::CreateEntity {
        id: id.into(),
        kind: kind.into(),
        data: doc(data),
    }
}

fn buff(id: &str, expires_ms: i64) -> Buff {
    Buff {
        id: id.into(),
        modifiers: vec![Modifier {
            stat: "attack".into(),
            add: 5.0,
            mul: 0.1,
            source: "pill".into(),
        }],
        expires_ms,
    }
}

// ---- cases ------------------------------------------------------------------------------------------

/// Both migration sets must move in lock-step: same versions, same names.
#[test]
fn migration_dirs_have_the_same_versions() {
    let list = |backend: &str| {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../migrations")
            .join(backend);
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".sql"))
            .collect();
        names.sort();
        names
    };
    let pg = list("postgres");
    assert!(!pg.is_empty());
    assert_eq!(pg, list("sqlite"));
}

async fn migrations_run_and_are_idempotent(db: TestDb) {
    // `TestDb::new` migrated once; a second run finds nothing to do.
    db.store.migrate().await.unwrap();
    let player = new_player(&*db.store, "ann").await;
    assert_eq!(full(&*db.store, player).await.player.version, 0);
}

async fn accounts_and_players(db: TestDb) {
    let store = &*db.store;
    let ann = store.create_account("ann", "h1", Role::Player).await.unwrap();
    let root = store.create_account("root", "h2", Role::Admin).await.unwrap();
    assert_ne!(ann.id, root.id);
    assert_eq!(store.account_by_username("ann").await.unwrap(), Some(ann.clone()));
    assert_eq!(
        store.account_by_id(root.id).await.unwrap().unwrap().role,
        Role::Admin
    );
    assert_eq!(store.account_by_username("nobody").await.unwrap(), None);
    assert_eq!(store.account_by_id(root.id + 100).await.unwrap(), None);
    assert!(matches!(
        store.create_account("ann", "h3", Role::Admin).await,
        Err(StoreError::UsernameTaken)
    ));

    let player = store.create_player(ann.id, "Ann the Alchemist").await.unwrap();
    assert_eq!(player.account_id, ann.id);
    assert_eq!(player.version, 0);
    assert_eq!(
        store.player_by_account(ann.id).await.unwrap(),
        Some(player.clone())
    );
    assert_eq!(store.player_by_id(player.id).await.unwrap(), Some(player.clone()));
    assert_eq!(store.player_by_account(root.id).await.unwrap(), None);
    assert!(matches!(
        store.create_player(ann.id, "again").await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        store.create_player(root.id + 100, "ghost").await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.load_full(player.id + 100, NOW).await,
        Err(StoreError::NotFound)
    ));
}

async fn apply_each_effect_and_read_it_back(db: TestDb) {
    let store = &*db.store;
    let p = new_player(store, "ann").await;
    let v1 = apply(
        store,
        p,
        &[
            currency("gold", 100),
            currency("gold", -30),
            Effect::AddCounter {
                name: "brews".into(),
                delta: 1,
            },
            item("herb", 5),
            item("herb", 2),
            item("stone", 1),
            remove("herb", 4),
            remove("stone", 1),
            Effect::SetStat {
                name: "attack".into(),
                value: 12.5,
            },
            entity("pet-1", "pet", json!({"lvl": 1})),
            entity("gear-1", "gear", json!({"big": u64::MAX, "f": -0.25})),
            Effect::AddBuff {
                buff: buff("b1", NOW + 1000),
            },
            Effect::AddBuff {
                buff: buff("b2", NOW + 1000),
            },
            Effect::SetState {
                data: doc(json!({"recipes": ["tea"]})),
            },
            Effect::Emit {
                event: Event {
                    topic: "brewed".into(),
                    scope: Scope::Global,
                    data: doc(json!(1)),
                },
            },
            Effect::SetScore {
                board: "realm".into(),
                score: 3.5,
            },
        ],
    )
    .await
    .unwrap();
    assert_eq!(v1, 1);
    let s = full(store, p).await;
    assert_eq!(s.player.version, 1);
    assert_eq!(s.currencies, BTreeMap::from([("gold".to_owned(), 70)]));
    assert_eq!(s.counters, BTreeMap::from([("brews".to_owned(), 1)]));
    assert_eq!(
        s.items,
        BTreeMap::from([("herb".to_owned(), 3)]),
        "empty stacks are gone"
    );
    assert_eq!(s.stats, BTreeMap::from([("attack".to_owned(), 12.5)]));
    assert_eq!(s.entities.len(), 2);
    assert_eq!(s.entities[0].id, "gear-1");
    assert_eq!(s.entities[0].data, json!({"big": u64::MAX, "f": -0.25}));
    assert_eq!(s.entities[0].created_ms, NOW);
    assert_eq!(s.buffs, vec![buff("b1", NOW + 1000), buff("b2", NOW + 1000)]);
    assert_eq!(s.plugin_state[PLUGIN], json!({"recipes": ["tea"]}));
    assert_eq!(s.scores, BTreeMap::from([("realm".to_owned(), 3.5)]));

    // Updates, deletes, replacing a buff, removing one, overwriting a stat and the state.
    let v2 = apply(
        store,
        p,
        &[
            Effect::UpdateEntity {
                id: "pet-1".into(),
                data: doc(json!({"lvl": 2})),
            },
            Effect::DeleteEntity { id: "gear-1".into() },
            Effect::AddBuff {
                buff: buff("b1", NOW + 5000),
            },
            Effect::RemoveBuff { id: "b2".into() },
            Effect::RemoveBuff { id: "never".into() },
            Effect::SetStat {
                name: "attack".into(),
                value: -1.0,
            },
            Effect::SetState { data: Doc::nil() },
            Effect::SetScore {
                board: "realm".into(),
                score: 9.0,
            },
        ],
    )
    .await
    .unwrap();
    assert_eq!(v2, 2);
    let s = full(store, p).await;
    assert_eq!(s.entities.len(), 1);
    assert_eq!(s.entities[0].data, json!({"lvl": 2}));
    assert_eq!(s.buffs, vec![buff("b1", NOW + 5000)]);
    assert_eq!(s.stats["attack"], -1.0);
    assert_eq!(s.plugin_state[PLUGIN], serde_json::Value::Null);
    assert_eq!(s.scores["realm"], 9.0);
    // Every applied action was logged.
    assert_eq!(store.action_log(PLUGIN, 0, 10).await.unwrap().len(), 2);
}

async fn version_conflict_writes_nothing(db: TestDb) {
    let store = &*db.store;
    let p = new_player(store, "ann").await;
    apply(store, p, &[item("herb", 1)]).await.unwrap();
    let before = full(store, p).await;
    for stale in [0, 5] {
        let result = store
            .apply(ApplyRequest {
                player_id: p,
                expected_version: stale,
                plugin: PLUGIN.into(),
                effects: checked(&[], &[item("herb", 10), currency("gold", 1)]),
                log: log("stale"),
            })
            .await;
        assert!(matches!(result, Err(StoreError::Conflict)), "{result:?}");
    }
    assert_eq!(full(store, p).await, before);
    assert_eq!(store.action_log(PLUGIN, 0, 10).await.unwrap().len(), 1);
    // An unknown player is not a conflict.
    let ghost = store
        .apply(ApplyRequest {
            player_id: p + 100,
            expected_version: 0,
            plugin: PLUGIN.into(),
            effects: checked(&[], &[]),
            log: log("ghost"),
        })
        .await;
    assert!(matches!(ghost, Err(StoreError::NotFound)), "{ghost:?}");
}

async fn invalid_effect_rolls_back_everything(db: TestDb) {
    let store = &*db.store;
    let ann = new_player(store, "ann").await;
    let bob = new_player(store, "bob").await;
    apply(
        store,
        ann,
        &[
            item("herb", 2),
            currency("gold", 5),
            entity("ann-pet", "pet", json!({})),
            Effect::SetState {
                data: doc(json!({"v": 1})),
            },
        ],
    )
    .await
    .unwrap();
    apply(store, bob, &[entity("bob-pet", "pet", json!({}))])
        .await
        .unwrap();
    let before = full(store, ann).await;
    let bob_before = full(store, bob).await;

    let valid_first = || {
        vec![
            item("herb", 1),
            currency("gold", 1),
            Effect::SetState {
                data: doc(json!({"v": 2})),
            },
            entity("fresh", "pet", json!({})),
        ]
    };
    let bad_effects = [
        ("remove more than held", remove("herb", 4)),
        ("remove an item never held", remove("dust", 1)),
        ("spend more than held", currency("gold", -7)),
        ("overflow a balance", currency("gold", i64::MAX - 1)),
        (
            "delete another player's entity",
            Effect::DeleteEntity { id: "bob-pet".into() },
        ),
        (
            "update another player's entity",
            Effect::UpdateEntity {
                id: "bob-pet".into(),
                data: doc(json!({"stolen": true})),
            },
        ),
        (
            "delete an unknown entity",
            Effect::DeleteEntity { id: "nope".into() },
        ),
        ("duplicate own entity id", entity("ann-pet", "pet", json!({}))),
        (
            "duplicate another player's entity id",
            entity("bob-pet", "pet", json!({})),
        ),
    ];
    for (what, bad) in bad_effects {
        let mut effects = valid_first();
        effects.push(bad);
        effects.push(item("herb", 100));
        let result = apply(store, ann, &effects).await;
        assert!(
            matches!(result, Err(StoreError::Invalid(_))),
            "{what}: {result:?}"
        );
        assert_eq!(full(store, ann).await, before, "{what}: state changed");
    }
    assert_eq!(full(store, bob).await, bob_before);
    assert_eq!(
        store.action_log(PLUGIN, 0, 100).await.unwrap().len(),
        2,
        "no refused action logged"
    );
}

async fn database_error_mid_apply_rolls_back(db: TestDb) {
    let store = &*db.store;
    let p = new_player(store, "ann").await;
    apply(store, p, &[item("herb", 2), currency("gold", 5)])
        .await
        .unwrap();
    let before = full(store, p).await;

    // Hide the stats table behind the store's back, so the third effect of the next action fails in
    // the database itself, after two effects have been written in the same transaction.
    raw_execute(&db, "alter table stats rename to stats_hidden").await;
    let result = apply(
        store,
        p,
        &[
            item("herb", 1),
            currency("gold", 1),
            Effect::SetStat {
                name: "attack".into(),
                value: 1.0,
            },
        ],
    )
    .await;
    raw_execute(&db, "alter table stats_hidden rename to stats").await;
    assert!(matches!(result, Err(StoreError::Db(_))), "{result:?}");
    assert_eq!(full(store, p).await, before);
    assert_eq!(store.action_log(PLUGIN, 0, 10).await.unwrap().len(), 1);
    // The store is healthy afterwards.
    apply(store, p, &[item("herb", 1)]).await.unwrap();
    assert_eq!(full(store, p).await.items["herb"], 3);
}

async fn idempotency_key_returns_the_logged_reply(db: TestDb) {
    let store = &*db.store;
    let ann = new_player(store, "ann").await;
    let bob = new_player(store, "bob").await;
    let mut entry = log("brew");
    entry.idempotency_key = Some("req-1".into());
    entry.fingerprint = Some("fp-brew-tea".into());
    entry.reply = json!({"brewed": "tea", "n": 2});
    let version = store
        .apply(ApplyRequest {
            player_id: ann,
            expected_version: 0,
            plugin: PLUGIN.into(),
            effects: checked(&[], &[item("tea", 1)]),
            log: entry.clone(),
        })
        .await
        .unwrap();
    let found = store.idempotent_reply(ann, "req-1").await.unwrap().unwrap();
    assert_eq!(found.reply, json!({"brewed": "tea", "n": 2}));
    assert_eq!(found.version, version);
    assert_eq!(found.fingerprint.as_deref(), Some("fp-brew-tea"));
    assert_eq!(store.idempotent_reply(ann, "req-2").await.unwrap(), None);
    assert_eq!(
        store.idempotent_reply(bob, "req-1").await.unwrap(),
        None,
        "keys are per player"
    );

    // The same key again (a racing duplicate that missed the lookup) writes nothing.
    let before = full(store, ann).await;
    let again = store
        .apply(ApplyRequest {
            player_id: ann,
            expected_version: version,
            plugin: PLUGIN.into(),
            effects: checked(&[], &[item("tea", 1)]),
            log: entry.clone(),
        })
        .await;
    assert!(matches!(again, Err(StoreError::Conflict)), "{again:?}");
    assert_eq!(full(store, ann).await, before);
    // Another player may use the same key.
    store
        .apply(ApplyRequest {
            player_id: bob,
            expected_version: 0,
            plugin: PLUGIN.into(),
            effects: checked(&[], &[]),
            log: entry.clone(),
        })
        .await
        .unwrap();
}

#[derive(Debug, PartialEq)]
enum Race {
    Applied,
    Insufficient,
    Failed(String),
    GaveUp,
}

async fn concurrent_removals_never_oversell(db: TestDb) {
    // A task conflicts only when another task committed between its load and its apply, and there
    // are only 100 commits, so 101 attempts always suffice; the bound is far above that.
    const MAX_ATTEMPTS: usize = 1000;
    let p = new_player(&*db.store, "ann").await;
    apply(&*db.store, p, &[item("herb", 100)]).await.unwrap();

    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let store = Arc::clone(&db.store);
            tokio::spawn(async move {
                for _ in 0..MAX_ATTEMPTS {
                    let version = match store.player_by_id(p).await {
                        Ok(Some(player)) => player.version,
                        other => return Race::Failed(format!("load: {other:?}")),
                    };
                    let result = store
                        .apply(ApplyRequest {
                            player_id: p,
                            expected_version: version,
                            plugin: PLUGIN.into(),
                            effects: checked(&[], &[remove("herb", 1)]),
                            log: log("sell"),
                        })
                        .await;
                    match result {
                        Ok(_) => return Race::Applied,
                        Err(StoreError::Conflict) => continue,
                        Err(StoreError::Invalid(_)) => return Race::Insufficient,
                        Err(e) => return Race::Failed(format!("apply: {e:?}")),
                    }
                }
                Race::GaveUp
            })
        })
        .collect();
    let mut outcomes = BTreeMap::<String, usize>::new();
    for task in tasks {
        let race = task.await.unwrap();
        let key = match &race {
            Race::Failed(e) => format!("failed: {e}"),
            other => format!("{other:?}"),
        };
        *outcomes.entry(key).or_default() += 1;
    }
    assert_eq!(
        outcomes,
        BTreeMap::from([("Applied".to_owned(), 100), ("Insufficient".to_owned(), 100)])
    );
    let s = full(&*db.store, p).await;
    assert_eq!(s.items.get("herb").copied().unwrap_or(0), 0);
    assert_eq!(s.player.version, 101);
    // 1 setup action + 100 removals.
    assert_eq!(db.store.action_log(PLUGIN, 0, 1000).await.unwrap().len(), 101);
}

async fn artifacts_activate_rollback_deactivate(db: TestDb) {
    let store = &*db.store;
    let v1 = store
        .put_artifact("alchemy", "1.0.0", "w1", b"one")
        .await
        .unwrap();
    assert_eq!(
        v1.sha256,
        "7692c3ad3540bb803c020b3aee66cd8887123234ea0c6e7143c0add73ff431ed"
    );
    assert_eq!((v1.size, v1.wasm_sha256.as_str(), v1.bundle), (3, "w1", true));
    assert!(!v1.active && !v1.previous);
    assert_eq!(
        store
            .put_artifact("alchemy", "1.0.0", "w1", b"one")
            .await
            .unwrap(),
        v1,
        "re-upload is a no-op"
    );
    // Other bytes under the same semver (a content-only change) are another version.
    let other = store
        .put_artifact("alchemy", "1.0.0", "w1", b"other")
        .await
        .unwrap();
    assert_ne!(other.sha256, v1.sha256);
    let two = store
        .put_artifact("alchemy", "1.1.0", "w2", b"two")
        .await
        .unwrap();
    let pet = store.put_artifact("pet", "0.1.0", "wp", b"pet").await.unwrap();
    assert!(store.active_artifacts().await.unwrap().is_empty());
    let got = store.artifact("alchemy", &two.sha256).await.unwrap().unwrap();
    assert_eq!((got.bytes.as_slice(), got.info), (&b"two"[..], two.clone()));
    assert_eq!(store.artifact("alchemy", &"0".repeat(64)).await.unwrap(), None);
    assert_eq!(
        store.artifact("pet", &two.sha256).await.unwrap(),
        None,
        "by name too"
    );
    assert!(matches!(
        store.activate_artifact("alchemy", &"0".repeat(64)).await,
        Err(StoreError::NotFound)
    ));
    let listed: Vec<String> = store
        .artifacts("alchemy")
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.sha256)
        .collect();
    assert_eq!(
        listed,
        [two.sha256.clone(), other.sha256.clone(), v1.sha256.clone()],
        "newest first"
    );

    let active =
        |infos: Vec<store::ArtifactInfo>| infos.into_iter().map(|a| (a.name, a.sha256)).collect::<Vec<_>>();
    let pair = |n: &str, v: &store::ArtifactInfo| (n.to_owned(), v.sha256.clone());
    assert!(
        store
            .activate_artifact("alchemy", &v1.sha256)
            .await
            .unwrap()
            .active
    );
    store.activate_artifact("pet", &pet.sha256).await.unwrap();
    assert_eq!(
        active(store.active_artifacts().await.unwrap()),
        [pair("alchemy", &v1), pair("pet", &pet)]
    );
    store.activate_artifact("alchemy", &two.sha256).await.unwrap();
    assert_eq!(
        active(store.active_artifacts().await.unwrap()),
        [pair("alchemy", &two), pair("pet", &pet)]
    );
    // Activating the active one changes nothing: v1 stays the rollback target (below).
    let again = store.activate_artifact("alchemy", &two.sha256).await.unwrap();
    assert!(again.active && !again.previous);

    // Pruning to one keeps the active version and the rollback target all the same.
    assert_eq!(store.prune_artifacts("alchemy", 1).await.unwrap(), 1);
    let kept: Vec<String> = store
        .artifacts("alchemy")
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.sha256)
        .collect();
    assert_eq!(kept, [two.sha256.clone(), v1.sha256.clone()]);

    let back = store.rollback_artifact("alchemy").await.unwrap();
    assert_eq!(
        (back.sha256.as_str(), back.active, back.previous),
        (v1.sha256.as_str(), true, false)
    );
    assert_eq!(
        active(store.active_artifacts().await.unwrap()),
        [pair("alchemy", &v1), pair("pet", &pet)]
    );
    assert!(matches!(
        store.rollback_artifact("alchemy").await,
        Err(StoreError::NotFound)
    ));

    store.deactivate_artifact("pet").await.unwrap();
    let again = store.deactivate_artifact("pet").await;
    assert!(matches!(again, Err(StoreError::NotFound)), "{again:?}");
    assert_eq!(
        active(store.active_artifacts().await.unwrap()),
        [pair("alchemy", &v1)]
    );
}

async fn top_scores_rank_players(db: TestDb) {
    let store = &*db.store;
    let score = |board: &str, score: f64| Effect::SetScore {
        board: board.into(),
        score,
    };
    let ann = new_player(store, "ann").await;
    let bob = new_player(store, "bob").await;
    let cid = new_player(store, "cid").await;
    apply(store, ann, &[score("realm", 10.0), score("wealth", 1.0)])
        .await
        .unwrap();
    apply(store, bob, &[score("realm", 30.0)]).await.unwrap();
    apply(store, cid, &[score("realm", 20.0)]).await.unwrap();
    apply(store, ann, &[score("realm", 25.0)]).await.unwrap();

    let top = store.top_scores("realm", 2).await.unwrap();
    let names: Vec<_> = top.iter().map(|s| (s.name.as_str(), s.score)).collect();
    assert_eq!(names, [("bob", 30.0), ("ann", 25.0)]);
    assert_eq!(top[0].player_id, bob);
    assert_eq!(store.top_scores("realm", 10).await.unwrap().len(), 3);
    assert_eq!(store.top_scores("wealth", 10).await.unwrap().len(), 1);
    assert!(store.top_scores("nothing", 10).await.unwrap().is_empty());
}

async fn scores_around_a_player_are_nearest_first_and_leave_out_a_name(db: TestDb) {
    let store = &*db.store;
    let score = |s: f64| Effect::SetScore {
        board: "realm".into(),
        score: s,
    };
    let me = new_player(store, "me").await;
    let far = new_player(store, "far").await;
    let near = new_player(store, "near").await;
    let low = new_player(store, "low").await;
    let account = store
        .create_account("hidden", "hash", Role::Player)
        .await
        .unwrap();
    let hidden = store.create_player(account.id, "无名").await.unwrap().id;
    for (p, s) in [(me, 20.0), (far, 90.0), (near, 22.0), (low, 10.0), (hidden, 21.0)] {
        apply(store, p, &[score(s)]).await.unwrap();
    }
    let (mine, rows) = store.scores_around("realm", me, "无名", 10, 0).await.unwrap();
    let mine = mine.unwrap();
    assert_eq!((mine.player_id, mine.score, mine.rank), (me, 20.0, 3));
    let got: Vec<_> = rows.iter().map(|r| (r.player_id, r.rank)).collect();
    assert_eq!(got, [(near, 2), (low, 4), (far, 1)]);
    let (_, page) = store.scores_around("realm", me, "无名", 1, 1).await.unwrap();
    assert_eq!(page.iter().map(|r| r.player_id).collect::<Vec<_>>(), [low]);
    // Someone without a score: no own row, the others by their distance from 0.
    let fresh = new_player(store, "fresh").await;
    let (mine, rows) = store.scores_around("realm", fresh, "无名", 2, 0).await.unwrap();
    assert!(mine.is_none());
    assert_eq!(rows.iter().map(|r| r.player_id).collect::<Vec<_>>(), [low, me]);
}

async fn action_log_pages_for_replay(db: TestDb) {
    let store = &*db.store;
    let p = new_player(store, "ann").await;
    for i in 0..5u64 {
        let version = version(store, p).await;
        let mut entry = log(&format!("brew{i}"));
        entry.seed = u64::MAX - i;
        entry.params = json!({"i": i});
        store
            .apply(ApplyRequest {
                player_id: p,
                expected_version: version,
                plugin: PLUGIN.into(),
                effects: checked(&[], &[item("herb", 1)]),
                log: entry.clone(),
            })
            .await
            .unwrap();
        apply_as(store, p, "pet", &[], &[]).await.unwrap();
    }
    let first = store.action_log(PLUGIN, 0, 2).await.unwrap();
    assert_eq!(first.len(), 2);
    let second = store.action_log(PLUGIN, first[1].id, 2).await.unwrap();
    let third = store.action_log(PLUGIN, second[1].id, 2).await.unwrap();
    assert_eq!(third.len(), 1);
    let all: Vec<_> = first.into_iter().chain(second).chain(third).collect();
    assert!(all.windows(2).all(|w| w[0].id < w[1].id));
    for (i, row) in all.iter().enumerate() {
        let i = i as u64;
        assert_eq!(row.plugin, PLUGIN);
        assert_eq!(row.player_id, p);
        assert_eq!(row.entry.action, format!("brew{i}"));
        assert_eq!(row.entry.seed, u64::MAX - i, "seed survives bit for bit");
        assert_eq!(row.entry.params, json!({"i": i}));
        assert_eq!(row.entry.reply, json!({"ok": true}));
        assert_eq!(row.entry.now_ms, NOW);
        assert_eq!(row.entry.plugin_sha256, "ab".repeat(32));
        assert_eq!(
            row.entry.call.as_deref(),
            Some(format!("call of brew{i}").as_bytes()),
            "the call is kept byte for byte"
        );
        assert_eq!(row.version, 2 * i as i64 + 1);
    }
    assert_eq!(store.action_log("pet", 0, 100).await.unwrap().len(), 5);
    assert!(store.action_log("dungeon", 0, 100).await.unwrap().is_empty());

    // What a replay reads: the same rows with their calls, through each filter.
    let query = LogQuery {
        plugin: PLUGIN.into(),
        after_id: 0,
        limit: 100,
        ..LogQuery::default()
    };
    let calls = store.logged_calls(&query).await.unwrap();
    assert_eq!(calls.len(), 5);
    for (row, call) in all.iter().zip(&calls) {
        assert_eq!((call.id, call.player_id), (row.id, p));
        assert_eq!(call.action, row.entry.action);
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&call.params).unwrap(),
            row.entry.params
        );
        assert_eq!(call.plugin_sha256, row.entry.plugin_sha256);
        assert_eq!(call.outcome_digest, row.entry.outcome_digest);
        assert_eq!(Some(&call.call), row.entry.call.as_ref());
    }
    let ids = |rows: Vec<store::LoggedCall>| rows.iter().map(|r| r.id).collect::<Vec<_>>();
    let pick = |q: LogQuery| async move { ids(store.logged_calls(&q).await.unwrap()) };
    let id = |i: usize| all[i].id;
    let newest = LogQuery {
        newest_first: true,
        limit: 2,
        ..query.clone()
    };
    assert_eq!(pick(newest.clone()).await, [id(4), id(3)]);
    assert_eq!(
        pick(LogQuery {
            before_id: Some(id(3)),
            ..newest
        })
        .await,
        [id(2), id(1)]
    );
    assert_eq!(
        pick(LogQuery {
            after_id: id(1),
            limit: 2,
            ..query.clone()
        })
        .await,
        [id(2), id(3)]
    );
    assert_eq!(
        pick(LogQuery {
            action: Some("brew3".into()),
            ..query.clone()
        })
        .await,
        [id(3)]
    );
    assert_eq!(
        pick(LogQuery {
            players: vec![p, p + 1000],
            ..query.clone()
        })
        .await
        .len(),
        5
    );
    assert!(
        pick(LogQuery {
            players: vec![p + 1000],
            ..query.clone()
        })
        .await
        .is_empty()
    );
    let created = all[2].created_ms;
    assert_eq!(
        pick(LogQuery {
            since_ms: Some(created),
            until_ms: Some(created + 1),
            ..query.clone()
        })
        .await,
        all.iter()
            .filter(|r| r.created_ms == created)
            .map(|r| r.id)
            .collect::<Vec<_>>()
    );
    assert!(
        pick(LogQuery {
            until_ms: Some(0),
            ..query.clone()
        })
        .await
        .is_empty()
    );

    // Retention clears the stored calls of old rows, a batch at a time; the rows stay.
    assert_eq!(
        store.clear_logged_calls(0, 100).await.unwrap(),
        0,
        "nothing is that old"
    );
    assert_eq!(store.clear_logged_calls(i64::MAX, 4).await.unwrap(), 4);
    assert_eq!(store.clear_logged_calls(i64::MAX, 100).await.unwrap(), 6);
    assert_eq!(store.clear_logged_calls(i64::MAX, 100).await.unwrap(), 0);
    let rows = store.action_log(PLUGIN, 0, 100).await.unwrap();
    assert_eq!(rows.len(), 5);
    assert!(rows.iter().all(|r| r.entry.call.is_none()));
}

async fn a_load_reads_only_the_chosen_sections_in_one_snapshot(db: TestDb) {
    let store = &*db.store;
    let p = new_player(store, "ann").await;
    let other = new_player(store, "bob").await;
    apply(
        store,
        p,
        &[
            currency("gold", 7),
            item("herb", 2),
            Effect::SetStat {
                name: "attack".into(),
                value: 0.1 + 0.2,
            },
            entity("pet-1", "pet", json!({"lvl": 1})),
            entity("gear-1", "gear", json!({"lvl": 2})),
            Effect::SetState {
                data: doc(json!({"mine": true})),
            },
            Effect::SetScore {
                board: "realm".into(),
                score: 2.0,
            },
        ],
    )
    .await
    .unwrap();
    apply_as(
        store,
        p,
        "other",
        &kinds(&["pet"]),
        &[Effect::SetState {
            data: doc(json!({"theirs": true})),
        }],
    )
    .await
    .unwrap();
    apply(store, other, &[entity("pet-2", "pet", json!({}))])
        .await
        .unwrap();

    // Every section: what the full view shows.
    let everything = store.load(p, NOW, &Sections::all()).await.unwrap();
    assert_eq!(everything, full(store, p).await);
    assert_eq!(everything.stats["attack"], 0.1 + 0.2, "reals keep every bit");
    assert_eq!(everything.plugin_state.len(), 2);

    // Some sections: the rest is empty, the player row is always there.
    let some = store
        .load(
            p,
            NOW,
            &Sections {
                currencies: true,
                entities: Pick::Only(vec!["gear".into()]),
                plugin_state: Pick::Only(vec![PLUGIN.into()]),
                ..Sections::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(some.player, everything.player);
    assert_eq!(some.currencies, everything.currencies);
    assert!(some.stats.is_empty() && some.items.is_empty() && some.scores.is_empty());
    let ids: Vec<&str> = some.entities.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["gear-1"], "only the chosen kind, only this player's");
    assert_eq!(
        some.plugin_state,
        BTreeMap::from([(PLUGIN.to_owned(), json!({"mine": true}))])
    );

    // Nothing but the player row.
    let bare = store.load(p, NOW, &Sections::default()).await.unwrap();
    assert_eq!(bare.player, everything.player);
    assert!(bare.entities.is_empty() && bare.currencies.is_empty() && bare.plugin_state.is_empty());

    // A player who does not exist.
    assert!(matches!(
        store.load(i64::MAX, NOW, &Sections::all()).await,
        Err(StoreError::NotFound)
    ));
}

// ---- group commit -----------------------------------------------------------------------------------

/// A second store on `db`'s database whose batches hold exactly `n` actions: a batch waits (up to a
/// minute) until it is full, so which actions share a transaction is known.
async fn batching_store(url: &str, n: usize) -> Arc<dyn Store> {
    store::connect(
        url,
        GroupCommit {
            max_batch: n,
            window: Duration::from_secs(60),
            committers: 1,
            wait_when_alone: true,
        },
    )
    .await
    .unwrap()
}

/// One action for `player_id` from `expected_version`, checked as the validator would pass it.
fn request(player_id: i64, expected_version: i64, effects: &[Effect], action: &str) -> ApplyRequest {
    ApplyRequest {
        player_id,
        expected_version,
        plugin: PLUGIN.into(),
        effects: checked(&[], effects),
        log: log(action),
    }
}

/// Apply every request at once, each from its own task; the answers in the requests' order.
async fn apply_together(store: &Arc<dyn Store>, requests: Vec<ApplyRequest>) -> Vec<Result<i64, StoreError>> {
    let tasks: Vec<_> = requests
        .into_iter()
        .map(|req| {
            let store = Arc::clone(store);
            tokio::spawn(async move { store.apply(req).await })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap());
    }
    answers
}

/// How many log rows `player` has.
async fn log_rows(store: &dyn Store, player: i64) -> usize {
    store
        .action_log(PLUGIN, 0, 10_000)
        .await
        .unwrap()
        .iter()
        .filter(|row| row.player_id == player)
        .count()
}

async fn a_batch_commits_the_others_once_around_a_conflict_and_a_refusal(db: TestDb) {
    let store = &*db.store;
    let [a, b, c, d] = [
        new_player(store, "ann").await,
        new_player(store, "bob").await,
        new_player(store, "cat").await,
        new_player(store, "dan").await,
    ];
    apply(store, c, &[currency("gold", 1)]).await.unwrap();
    let before_b = full(store, b).await;
    let before_c = full(store, c).await;

    // One batch with a stale version in it: that action alone is a conflict, the rest commit.
    let batching = batching_store(&db.url, 3).await;
    let answers = apply_together(
        &batching,
        vec![
            request(a, version(store, a).await, &[item("herb", 1)], "gather"),
            request(b, version(store, b).await + 7, &[item("herb", 1)], "gather"),
            request(d, version(store, d).await, &[item("herb", 1)], "gather"),
        ],
    )
    .await;
    assert!(answers[0].is_ok(), "{answers:?}");
    assert!(matches!(answers[1], Err(StoreError::Conflict)), "{answers:?}");
    assert!(answers[2].is_ok(), "{answers:?}");

    // One batch with a spend the database refuses (the validator believed in 5 gold, there is 1):
    // the batch is applied by no one, then each action on its own, so only that one fails.
    let batching = batching_store(&db.url, 3).await;
    let answers = apply_together(
        &batching,
        vec![
            request(a, version(store, a).await, &[item("herb", 1)], "gather"),
            request(
                c,
                version(store, c).await,
                &[item("herb", 1), currency("gold", -5)],
                "buy",
            ),
            request(d, version(store, d).await, &[item("herb", 1)], "gather"),
        ],
    )
    .await;
    assert!(answers[0].is_ok(), "{answers:?}");
    assert!(matches!(answers[1], Err(StoreError::Invalid(_))), "{answers:?}");
    assert!(answers[2].is_ok(), "{answers:?}");

    // Each accepted action is there exactly once; the refused and the stale ones left nothing.
    for p in [a, d] {
        let s = full(store, p).await;
        assert_eq!(s.items["herb"], 2, "player {p}");
        assert_eq!(s.player.version, 2, "player {p}");
        assert_eq!(log_rows(store, p).await, 2, "player {p}");
    }
    assert_eq!(full(store, b).await, before_b);
    assert_eq!(log_rows(store, b).await, 0);
    assert_eq!(full(store, c).await, before_c);
    assert_eq!(log_rows(store, c).await, 1);
}

async fn a_failed_statement_in_a_batch_applies_none_and_the_others_commit_alone(db: TestDb) {
    let store = &*db.store;
    let players = [
        new_player(store, "ann").await,
        new_player(store, "bob").await,
        new_player(store, "cat").await,
    ];
    // A database rule the validator knows nothing of: no currency may be called `cursed`.
    match db.backend {
        Backend::Pg => {
            raw_execute(
                &db,
                "alter table currencies add constraint no_curse check (name <> 'cursed')",
            )
            .await;
        }
        Backend::Sqlite => {
            raw_execute(
                &db,
                "create trigger no_curse before insert on currencies when new.name = 'cursed'
                 begin select raise(abort, 'no curses'); end",
            )
            .await;
        }
    }
    let bob_before = full(store, players[1]).await;
    let batching = batching_store(&db.url, 3).await;
    let mut requests = Vec::new();
    for (i, &p) in players.iter().enumerate() {
        let effects = if i == 1 {
            // Its first change is fine, its second breaks the rule.
            vec![item("herb", 1), currency("cursed", 1)]
        } else {
            vec![item("herb", 1), currency("gold", 1)]
        };
        requests.push(request(p, version(store, p).await, &effects, "gather"));
    }
    let answers = apply_together(&batching, requests).await;
    assert!(matches!(answers[0], Ok(1)), "{answers:?}");
    assert!(answers[1].is_err(), "{answers:?}");
    assert!(matches!(answers[2], Ok(1)), "{answers:?}");
    // Nothing of the failing action is left half applied, and the others are there once.
    assert_eq!(full(store, players[1]).await, bob_before);
    assert_eq!(log_rows(store, players[1]).await, 0);
    for p in [players[0], players[2]] {
        let s = full(store, p).await;
        assert_eq!((s.items["herb"], s.currencies["gold"]), (1, 1), "player {p}");
        assert_eq!(log_rows(store, p).await, 1, "player {p}");
    }
}

async fn concurrent_spends_of_many_players_in_batches_never_oversell(db: TestDb) {
    // 200 spends of one stock of 100 herbs, from 200 tasks, through a store that groups commits
    // (the production settings), alongside 20 other players' actions so batches mix players.
    const MAX_ATTEMPTS: usize = 1000;
    let store = Arc::clone(&db.store);
    let seller = new_player(&*store, "ann").await;
    apply(&*store, seller, &[item("herb", 100)]).await.unwrap();
    let mut others = Vec::new();
    for i in 0..20 {
        others.push(new_player(&*store, &format!("p{i}")).await);
    }
    let mut tasks = Vec::new();
    for _ in 0..200 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            for _ in 0..MAX_ATTEMPTS {
                let v = store.player_by_id(seller).await.unwrap().unwrap().version;
                match store
                    .apply(request(seller, v, &[remove("herb", 1)], "sell"))
                    .await
                {
                    Ok(_) => return "applied",
                    Err(StoreError::Conflict) => continue,
                    Err(StoreError::Invalid(_)) => return "insufficient",
                    Err(e) => panic!("apply: {e:?}"),
                }
            }
            "gave up"
        }));
    }
    for &p in &others {
        for _ in 0..5 {
            let store = Arc::clone(&store);
            tasks.push(tokio::spawn(async move {
                for _ in 0..MAX_ATTEMPTS {
                    let v = store.player_by_id(p).await.unwrap().unwrap().version;
                    match store.apply(request(p, v, &[item("tea", 1)], "brew")).await {
                        Ok(_) => return "brewed",
                        Err(StoreError::Conflict) => continue,
                        Err(e) => panic!("apply: {e:?}"),
                    }
                }
                "gave up"
            }));
        }
    }
    let mut outcomes = BTreeMap::<&str, usize>::new();
    for task in tasks {
        *outcomes.entry(task.await.unwrap()).or_default() += 1;
    }
    assert_eq!(
        outcomes,
        BTreeMap::from([("applied", 100), ("brewed", 100), ("insufficient", 100)])
    );
    let s = full(&*store, seller).await;
    assert_eq!(s.items.get("herb"), None);
    assert_eq!(s.player.version, 101);
    assert_eq!(log_rows(&*store, seller).await, 101);
    for p in others {
        assert_eq!(full(&*store, p).await.items["tea"], 5);
    }
}

/// PostgreSQL killed while a batch is between its statements: none of the batch is applied, and each
/// action is answered with a clean "unavailable", not a hang or a generic failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_killed_mid_batch_applies_none_and_answers_each_unavailable() {
    let server = crate::common::cluster::PgServer::start();
    let url = server.url();
    let store = batching_store(&url, 3).await;
    store.migrate().await.unwrap();
    let players = [
        new_player(&*store, "ann").await,
        new_player(&*store, "bob").await,
        new_player(&*store, "cat").await,
    ];
    let start_version = version(&*store, players[0]).await;

    // Hold the last player's row, so the batch stops at that player's version guard after the first
    // two actions' statements ran inside it.
    let mut blocker = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::query("begin").execute(&mut blocker).await.unwrap();
    sqlx::query("select id from players where id = $1 for update")
        .bind(players[2])
        .execute(&mut blocker)
        .await
        .unwrap();
    let mut requests = Vec::new();
    for &p in &players {
        requests.push(request(
            p,
            version(&*store, p).await,
            &[item("herb", 1)],
            "gather",
        ));
    }
    let running = tokio::spawn({
        let store = Arc::clone(&store);
        async move { apply_together(&store, requests).await }
    });
    // Watched from a connection of its own: inside the blocker's transaction, PostgreSQL would keep
    // answering from the activity snapshot of the first look.
    let mut watcher = sqlx::PgConnection::connect(&url).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "select count(*) from pg_stat_activity where wait_event_type = 'Lock' and pid <> pg_backend_pid()",
        )
        .fetch_one(&mut watcher)
        .await
        .unwrap();
        if waiting > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the batch never reached the held row");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    server.stop();
    let answers = tokio::time::timeout(Duration::from_secs(30), running)
        .await
        .expect("every action is answered within 30 s")
        .unwrap();
    for answer in &answers {
        assert!(matches!(answer, Err(StoreError::Unavailable(_))), "{answers:?}");
    }
    drop((blocker, watcher));

    server.start_again(true);
    let store = store::connect(&url, GroupCommit::OFF).await.unwrap();
    for p in players {
        let s = full(&*store, p).await;
        assert_eq!(s.player.version, start_version, "player {p}");
        assert!(s.items.is_empty(), "player {p}");
        assert_eq!(log_rows(&*store, p).await, 0, "player {p}");
    }
}

/// A fresh account with a character still called by the default name; returns the player id.
async fn nameless_player(store: &dyn Store, username: &str) -> i64 {
    let account = store
        .create_account(username, "hash", Role::Player)
        .await
        .unwrap();
    store
        .create_player(account.id, DEFAULT_PLAYER_NAME)
        .await
        .unwrap()
        .id
}

fn rename_req(player_id: i64, name: &str) -> RenameRequest<'_> {
    RenameRequest {
        player_id,
        name,
        free_changes: 1,
        currency: "spirit_stones",
        cost: 100,
    }
}

async fn renames_are_unique_counted_and_priced(db: TestDb) {
    let store = &*db.store;
    // The default name is shared by anyone; a chosen one by one player only.
    let ann = nameless_player(store, "ann").await;
    let bob = nameless_player(store, "bob").await;
    let before = version(store, ann).await;
    let first = store.rename_player(rename_req(ann, "青云")).await.unwrap();
    assert_eq!(
        first,
        RenameOutcome::Renamed {
            cost: 0,
            name_changes: 1,
            version: before + 1
        }
    );
    assert_eq!(
        store.rename_player(rename_req(bob, "青云")).await.unwrap(),
        RenameOutcome::NameTaken
    );
    assert_eq!(full(store, bob).await.player.name, DEFAULT_PLAYER_NAME);
    // Past the free change: refused without stones, nothing written.
    let v = version(store, ann).await;
    assert_eq!(
        store.rename_player(rename_req(ann, "白鹤")).await.unwrap(),
        RenameOutcome::Insufficient
    );
    assert_eq!(version(store, ann).await, v);
    assert_eq!(full(store, ann).await.player.name, "青云");
    // With stones, charged in the same transaction.
    apply(
        store,
        ann,
        &[Effect::AddCurrency {
            name: "spirit_stones".into(),
            delta: 150,
        }],
    )
    .await
    .unwrap();
    let paid = store.rename_player(rename_req(ann, "白鹤")).await.unwrap();
    assert!(
        matches!(paid, RenameOutcome::Renamed { cost: 100, .. }),
        "{paid:?}"
    );
    let state = full(store, ann).await;
    assert_eq!(
        (state.player.name.as_str(), state.currencies["spirit_stones"]),
        ("白鹤", 50)
    );
    // The old name is free again.
    assert!(matches!(
        store.rename_player(rename_req(bob, "青云")).await.unwrap(),
        RenameOutcome::Renamed { .. }
    ));
    assert!(matches!(
        store.rename_player(rename_req(ann + bob + 1000, "无人")).await,
        Err(StoreError::NotFound)
    ));
}

async fn named_boards_balances_and_details(db: TestDb) {
    let store = &*db.store;
    let ann = new_player(store, "ann").await;
    let bob = new_player(store, "bob").await;
    let nameless = nameless_player(store, "cid").await;
    for (p, score, stones) in [(ann, 10.0, 500), (bob, 30.0, 70), (nameless, 99.0, 9_999)] {
        apply(
            store,
            p,
            &[
                Effect::SetScore {
                    board: "realm".into(),
                    score,
                },
                Effect::AddCurrency {
                    name: "spirit_stones".into(),
                    delta: stones,
                },
            ],
        )
        .await
        .unwrap();
    }
    let top = store.top_named_scores("realm", 10).await.unwrap();
    let rows: Vec<_> = top.iter().map(|s| (s.name.as_str(), s.score)).collect();
    assert_eq!(rows, [("bob", 30.0), ("ann", 10.0)], "the nameless are left off");
    let rich = store.top_named_balances("spirit_stones", 1).await.unwrap();
    assert_eq!((rich[0].player_id, rich[0].score), (ann, 500.0));

    let names = store
        .player_names(&[ann, nameless, ann + bob + nameless])
        .await
        .unwrap();
    assert_eq!(
        names,
        BTreeMap::from([
            (ann, "ann".to_owned()),
            (nameless, DEFAULT_PLAYER_NAME.to_owned())
        ])
    );

    // What a plugin publishes under `boards.<board>` in its state, and nothing else.
    apply(
        store,
        ann,
        &[Effect::SetState {
            data: doc(json!({"boards": {"realm": {"title": "剑仙"}}, "secret": 1})),
        }],
    )
    .await
    .unwrap();
    apply(
        store,
        bob,
        &[Effect::SetState {
            data: doc(json!({"boards": {"other": {"x": 1}}})),
        }],
    )
    .await
    .unwrap();
    let details = store.board_details("realm", &[ann, bob, nameless]).await.unwrap();
    assert_eq!(details, BTreeMap::from([(ann, json!({"title": "剑仙"}))]));
    assert!(store.board_details("realm", &[]).await.unwrap().is_empty());
}
