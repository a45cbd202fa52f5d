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

use cauldron_host::game::effects::validate;
use cauldron_host::json::json_to_doc;
use cauldron_host::store::{
    self, ApplyRequest, CheckedEffects, DEFAULT_PLAYER_NAME, FullState, LogEntry, RenameOutcome,
    RenameRequest, Role, Store, StoreError,
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
        let store = store::connect(&url).await.unwrap();
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

/// Generates `pg::case` and `sqlite::case` for each `async fn case(db: TestDb)` below.
macro_rules! both_backends {
    ($($case:ident),* $(,)?) => {
        mod pg {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(super::TestDb::new(super::Backend::Pg).await).await;
                }
            )*
        }
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(super::TestDb::new(super::Backend::Sqlite).await).await;
                }
            )*
        }
    };
}

both_backends!(
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
    action_log_pages_for_replay,
    renames_are_unique_counted_and_priced,
    named_boards_balances_and_details,
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
fn checked<'a>(kinds: &[String], effects: &'a [Effect]) -> CheckedEffects<'a> {
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
    validate(&claim, kinds, &[], effects, NOW).unwrap()
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
            plugin,
            effects: &checked(kinds, effects),
            log: &log("act"),
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
                plugin: PLUGIN,
                effects: &checked(&[], &[item("herb", 10), currency("gold", 1)]),
                log: &log("stale"),
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
            plugin: PLUGIN,
            effects: &checked(&[], &[]),
            log: &log("ghost"),
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
            plugin: PLUGIN,
            effects: &checked(&[], &[item("tea", 1)]),
            log: &entry,
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
            plugin: PLUGIN,
            effects: &checked(&[], &[item("tea", 1)]),
            log: &entry,
        })
        .await;
    assert!(matches!(again, Err(StoreError::Conflict)), "{again:?}");
    assert_eq!(full(store, ann).await, before);
    // Another player may use the same key.
    store
        .apply(ApplyRequest {
            player_id: bob,
            expected_version: 0,
            plugin: PLUGIN,
            effects: &checked(&[], &[]),
            log: &entry,
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
                            plugin: PLUGIN,
                            effects: &checked(&[], &[remove("herb", 1)]),
                            log: &log("sell"),
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
    let v1 = store.put_artifact("alchemy", "1.0.0", b"one").await.unwrap();
    assert_eq!(
        v1.sha256,
        "7692c3ad3540bb803c020b3aee66cd8887123234ea0c6e7143c0add73ff431ed"
    );
    assert_eq!(v1.size, 3);
    assert!(!v1.active && !v1.previous);
    assert_eq!(
        store.put_artifact("alchemy", "1.0.0", b"one").await.unwrap(),
        v1,
        "re-upload is a no-op"
    );
    assert!(matches!(
        store.put_artifact("alchemy", "1.0.0", b"other").await,
        Err(StoreError::Invalid(_))
    ));
    store.put_artifact("alchemy", "1.1.0", b"two").await.unwrap();
    store.put_artifact("pet", "0.1.0", b"pet").await.unwrap();
    assert!(store.active_artifacts().await.unwrap().is_empty());
    assert_eq!(
        store.artifact_bytes("alchemy", "1.1.0").await.unwrap().unwrap(),
        b"two"
    );
    assert_eq!(store.artifact_bytes("alchemy", "9.9.9").await.unwrap(), None);
    assert!(matches!(
        store.activate_artifact("alchemy", "9.9.9").await,
        Err(StoreError::NotFound)
    ));

    let active =
        |infos: Vec<store::ArtifactInfo>| infos.into_iter().map(|a| (a.name, a.version)).collect::<Vec<_>>();
    let pair = |n: &str, v: &str| (n.to_owned(), v.to_owned());
    assert!(store.activate_artifact("alchemy", "1.0.0").await.unwrap().active);
    store.activate_artifact("pet", "0.1.0").await.unwrap();
    assert_eq!(
        active(store.active_artifacts().await.unwrap()),
        [pair("alchemy", "1.0.0"), pair("pet", "0.1.0")]
    );
    store.activate_artifact("alchemy", "1.1.0").await.unwrap();
    assert_eq!(
        active(store.active_artifacts().await.unwrap()),
        [pair("alchemy", "1.1.0"), pair("pet", "0.1.0")]
    );
    // Activating the active one changes nothing: 1.0.0 stays the rollback target (below).
    let again = store.activate_artifact("alchemy", "1.1.0").await.unwrap();
    assert!(again.active && !again.previous);

    let back = store.rollback_artifact("alchemy").await.unwrap();
    assert_eq!(
        (back.version.as_str(), back.active, back.previous),
        ("1.0.0", true, false)
    );
    assert_eq!(
        active(store.active_artifacts().await.unwrap()),
        [pair("alchemy", "1.0.0"), pair("pet", "0.1.0")]
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
        [pair("alchemy", "1.0.0")]
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
                plugin: PLUGIN,
                effects: &checked(&[], &[item("herb", 1)]),
                log: &entry,
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
        assert_eq!(row.version, 2 * i as i64 + 1);
    }
    assert_eq!(store.action_log("pet", 0, 100).await.unwrap().len(), 5);
    assert!(store.action_log("dungeon", 0, 100).await.unwrap().is_empty());
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
