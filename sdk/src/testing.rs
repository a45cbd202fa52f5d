//! A native test harness: run a plugin's actions without wasm or a server.
//!
//! The harness goes through the same encode → dispatch → decode path as the wasm exports, and it
//! mirrors what the host does around a call: the plugin is prepared once with every content table
//! (as `cauldron_init` is at load time), the action must be in the manifest, the player state is
//! cut down to the sections the action declares, and a query action (`ActionSpec::query`) that
//! returns effects is a fault ([`crate::abi::QUERY_EFFECTS`]), as the host counts it. Another
//! player's view ([`CallBuilder::other_player`]) reaches the plugin only when the action declares
//! `reads_player`, cut down to what the host sends (id, name, stats, effective stats, entities of the
//! action's kinds); a `player` param the action does not declare is refused with `bad_params`, as the
//! host refuses it.
//!
//! ```ignore
//! let h = Harness::<Cultivation>::with_content_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/content"));
//! let player = PlayerState::default().with_stat("level", 1.0).with_currency("spirit", 100);
//! let run = h.action("meditate").player(player).seed(7).run();
//! let after = run.player_after();
//! assert_eq!(after.currencies["spirit"], 90);
//! ```

use std::cell::OnceCell;
use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::path::Path;
use std::rc::Rc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::abi::{LogLevel, QUERY_EFFECTS, reject_codes};
use crate::codec;
use crate::content::Content;
use crate::doc::Doc;
use crate::export;
use crate::plugin::{Error, Plugin};
use crate::wire::{
    ActionSpec, Buff, Call, CallKind, Effect, Entity, Init, Manifest, Modifier, OtherPlayer, Outcome,
    ParamType, PlayerState,
};

/// Loads content tables and runs calls against plugin `P`.
pub struct Harness<P> {
    manifest: Manifest,
    content: BTreeMap<String, Doc>,
    /// The outcome of [`Plugin::prepare`] on `content`, made on first use.
    prepared: OnceCell<Result<Rc<Content>, Error>>,
    _plugin: PhantomData<fn() -> P>,
}

impl<P: Plugin> Default for Harness<P> {
    fn default() -> Self {
        Self::new()
    }
}

impl<P: Plugin> Harness<P> {
    /// A harness with no content tables.
    pub fn new() -> Self {
        let manifest =
            codec::decode(&export::describe_bytes::<P>()).expect("the plugin's manifest must encode");
        Self {
            manifest,
            content: BTreeMap::new(),
            prepared: OnceCell::new(),
            _plugin: PhantomData,
        }
    }

    /// A harness with every `*.toml` in `dir` loaded as a content table named by its file stem.
    ///
    /// # Panics
    /// When the folder cannot be read or a file is not valid TOML: the test is wrong, not the plugin.
    pub fn with_content_dir(dir: impl AsRef<Path>) -> Self {
        let mut h = Self::new();
        let dir = dir.as_ref();
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        entries.sort();
        for path in entries {
            let text =
                std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
            let stem = path
                .file_stem()
                .and_then(|s| s.to_str())
                .expect("utf-8 file name")
                .to_owned();
            h = h.content_toml(&stem, &text);
        }
        h
    }

    /// Add (or replace) a content table from TOML text.
    ///
    /// # Panics
    /// When the text is not valid TOML.
    pub fn content_toml(mut self, table: &str, text: &str) -> Self {
        let value: toml::Value =
            toml::from_str(text).unwrap_or_else(|e| panic!("content table `{table}`: {e}"));
        self.content
            .insert(table.to_owned(), Doc::encode(&value).expect("TOML values encode"));
        self.prepared = OnceCell::new();
        self
    }

    /// Add (or replace) a content table from any serialisable value.
    pub fn content_value<T: Serialize>(mut self, table: &str, value: &T) -> Self {
        self.content
            .insert(table.to_owned(), Doc::encode(value).expect("content encodes"));
        self.prepared = OnceCell::new();
        self
    }

    /// What [`Plugin::prepare`] said of the content tables, as the host's load would: `Err` means
    /// the host refuses to load the plugin with this content.
    pub fn prepare(&self) -> Result<(), Error> {
        self.prepared().map(|_| ())
    }

    fn prepared(&self) -> Result<Rc<Content>, Error> {
        self.prepared
            .get_or_init(|| {
                let init = Init {
                    content: self.content.clone(),
                };
                export::prepare::<P>(&codec::encode(&init).expect("init encodes"))
            })
            .clone()
    }

    /// The manifest, as the host would read it.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Start building a call to `action`.
    pub fn action(&self, action: &str) -> CallBuilder<'_, P> {
        CallBuilder {
            harness: self,
            call: blank_call(action, CallKind::Action),
        }
    }

    /// Start building a call to a hook (`modifiers`).
    pub fn hook(&self, hook: &str) -> CallBuilder<'_, P> {
        CallBuilder {
            harness: self,
            call: blank_call(hook, CallKind::Hook),
        }
    }

    /// Run a call the way the host would. If [`Plugin::prepare`] refused the content, the call
    /// answers with that fault (the host would not have loaded the plugin at all).
    pub fn run(&self, mut call: Call) -> Run {
        let before = call.player.clone();
        let declared = match call.kind {
            CallKind::Action => self
                .manifest
                .action(&call.action)
                .map(|a| (a.reads.clone(), a.kinds.clone(), a.query, Some(a.clone()))),
            CallKind::Hook => self
                .manifest
                .hook(&call.action)
                .map(|h| (h.reads.clone(), Vec::new(), false, None)),
        };
        let Some((reads, kinds, query, spec)) = declared else {
            let outcome = Outcome::Rejected {
                code: reject_codes::UNKNOWN_ACTION.into(),
                message: format!("`{}` is not in the manifest", call.action),
            };
            return Run {
                outcome,
                before,
                logs: Vec::new(),
            };
        };
        let mut visible_kinds = self.manifest.entity_kinds.clone();
        visible_kinds.extend(kinds);
        call.player = call.player.only(&reads, &visible_kinds);
        if let Some(message) = spec
            .as_ref()
            .and_then(|spec| undeclared_player_param(spec, &call.params))
        {
            return Run {
                outcome: Outcome::Rejected {
                    code: reject_codes::BAD_PARAMS.into(),
                    message,
                },
                before,
                logs: Vec::new(),
            };
        }
        call.other_player = match (&spec, call.other_player.take()) {
            (Some(spec), Some(mut other)) if spec.reads_other_player() => {
                other.entities.retain(|e| visible_kinds.contains(&e.kind));
                Some(other)
            }
            _ => None,
        };
        let prepared = match self.prepared() {
            Ok(content) => content,
            Err(Error::Reject { code, message } | Error::Fault { code, message }) => {
                return Run {
                    outcome: Outcome::Fault { code, message },
                    before,
                    logs: crate::sys::native::take(),
                };
            }
        };
        call.content = BTreeMap::new();
        let input = codec::encode(&call).expect("calls encode");
        let output = export::handle_bytes_with::<P>(&input, Some(&prepared));
        let mut outcome: Outcome =
            codec::decode(&output).expect("the glue always returns a decodable outcome");
        // As on the host: a query that returns effects is the plugin's fault, and nothing applies.
        if let Outcome::Ok { effects, .. } = &outcome
            && query
            && !effects.is_empty()
        {
            outcome = Outcome::Fault {
                code: QUERY_EFFECTS.into(),
                message: format!(
                    "query action `{}` returned {} effect(s); a query must return none",
                    call.action,
                    effects.len()
                ),
            };
        }
        Run {
            outcome,
            before,
            logs: crate::sys::native::take(),
        }
    }
}

/// A `player` param set in `params` that `spec` does not name in `reads_player`: the host refuses
/// such a request with `bad_params` before any plugin runs.
fn undeclared_player_param(spec: &ActionSpec, params: &Doc) -> Option<String> {
    let map: BTreeMap<String, serde::de::IgnoredAny> = params.decode().ok()?;
    spec.params
        .iter()
        .filter(|p| p.ty == ParamType::Player && p.name != spec.reads_player)
        .find(|p| map.contains_key(&p.name))
        .map(|p| {
            format!(
                "`{}` names another player, but action `{}` does not declare reading one",
                p.name, spec.name
            )
        })
}

fn blank_call(action: &str, kind: CallKind) -> Call {
    Call {
        action: action.to_owned(),
        kind,
        params: Doc::nil(),
        player: PlayerState {
            id: 1,
            name: "tester".into(),
            ..PlayerState::default()
        },
        effective_stats: BTreeMap::new(),
        now_ms: 1_700_000_000_000,
        seed: 1,
        content: BTreeMap::new(),
        other_player: None,
    }
}

/// Builds one call; finish with [`CallBuilder::run`].
pub struct CallBuilder<'h, P> {
    harness: &'h Harness<P>,
    call: Call,
}

impl<P: Plugin> CallBuilder<'_, P> {
    /// Set the params from any serialisable value (a struct, a map).
    pub fn params<T: Serialize>(mut self, params: &T) -> Self {
        self.call.params = Doc::encode(params).expect("params encode");
        self
    }

    /// Set the params to raw MessagePack bytes (for malformed-input tests).
    pub fn raw_params(mut self, bytes: Vec<u8>) -> Self {
        self.call.params = Doc::from_bytes(bytes);
        self
    }

    /// Set the player's state (cut down to the declared sections when run).
    pub fn player(mut self, player: PlayerState) -> Self {
        self.call.player = player;
        self
    }

    /// Set the seed.
    pub fn seed(mut self, seed: u64) -> Self {
        self.call.seed = seed;
        self
    }

    /// Set the time.
    pub fn now_ms(mut self, now_ms: i64) -> Self {
        self.call.now_ms = now_ms;
        self
    }

    /// Set one effective stat.
    pub fn effective(mut self, stat: &str, value: f64) -> Self {
        self.call.effective_stats.insert(stat.to_owned(), value);
        self
    }

    /// Give the call another player's public view, built from `player` (its stats as effective
    /// stats too, until [`CallBuilder::other_effective`] changes one). It reaches the plugin only if
    /// the action declares `reads_player`, with entities of the action's kinds only.
    pub fn other_player(mut self, player: &PlayerState) -> Self {
        let kinds: Vec<String> = player.entities.iter().map(|e| e.kind.clone()).collect();
        self.call.other_player = Some(OtherPlayer::view(player, player.stats.clone(), &kinds));
        self
    }

    /// Set one of the other player's effective stats (after [`CallBuilder::other_player`]).
    pub fn other_effective(mut self, stat: &str, value: f64) -> Self {
        if let Some(other) = &mut self.call.other_player {
            other.effective_stats.insert(stat.to_owned(), value);
        }
        self
    }

    /// Set all effective stats.
    pub fn effective_stats(mut self, stats: BTreeMap<String, f64>) -> Self {
        self.call.effective_stats = stats;
        self
    }

    /// The call as built so far.
    pub fn build(self) -> Call {
        self.call
    }

    /// Run it.
    pub fn run(self) -> Run {
        self.harness.run(self.call)
    }
}

/// The result of one call, with helpers that fail the test with a readable message.
#[derive(Debug)]
pub struct Run {
    /// What the plugin answered.
    pub outcome: Outcome,
    /// The player's full state before the call.
    pub before: PlayerState,
    /// What the plugin logged.
    pub logs: Vec<(LogLevel, String)>,
}

impl Run {
    /// The effects; panics unless the outcome is `Ok`.
    #[track_caller]
    pub fn effects(&self) -> &[Effect] {
        match &self.outcome {
            Outcome::Ok { effects, .. } => effects,
            other => panic!("expected Ok, got {other:?}"),
        }
    }

    /// The hook's modifiers; panics unless the outcome is `Ok`.
    #[track_caller]
    pub fn modifiers(&self) -> &[Modifier] {
        match &self.outcome {
            Outcome::Ok { modifiers, .. } => modifiers,
            other => panic!("expected Ok, got {other:?}"),
        }
    }

    /// Decode the reply; panics unless the outcome is `Ok` and the reply decodes.
    #[track_caller]
    pub fn reply<T: DeserializeOwned>(&self) -> T {
        match &self.outcome {
            Outcome::Ok { reply, .. } => reply.decode().unwrap_or_else(|e| panic!("reply: {e}")),
            other => panic!("expected Ok, got {other:?}"),
        }
    }

    /// Whether the plugin accepted the action.
    pub fn is_ok(&self) -> bool {
        matches!(self.outcome, Outcome::Ok { .. })
    }

    /// The rejection message; panics unless the outcome is `Rejected` with `code`.
    #[track_caller]
    pub fn rejected(&self, code: &str) -> &str {
        match &self.outcome {
            Outcome::Rejected { code: c, message } if c == code => message,
            other => panic!("expected Rejected({code}), got {other:?}"),
        }
    }

    /// The fault message; panics unless the outcome is `Fault` with `code`.
    #[track_caller]
    pub fn fault(&self, code: &str) -> &str {
        match &self.outcome {
            Outcome::Fault { code: c, message } if c == code => message,
            other => panic!("expected Fault({code}), got {other:?}"),
        }
    }

    /// The player's state after applying the effects to the full state from before the call.
    #[track_caller]
    pub fn player_after(&self) -> PlayerState {
        let mut after = self.before.clone();
        for effect in self.effects() {
            after.apply(effect);
        }
        after
    }

    /// Events emitted, as `(topic, data)`.
    #[track_caller]
    pub fn events(&self) -> Vec<(&str, &Doc)> {
        self.effects()
            .iter()
            .filter_map(|e| match e {
                Effect::Emit { event } => Some((event.topic.as_str(), &event.data)),
                _ => None,
            })
            .collect()
    }
}

impl PlayerState {
    /// Builder: set a stat.
    pub fn with_stat(mut self, name: &str, value: f64) -> Self {
        self.stats.insert(name.into(), value);
        self
    }

    /// Builder: set a currency.
    pub fn with_currency(mut self, name: &str, amount: i64) -> Self {
        self.currencies.insert(name.into(), amount);
        self
    }

    /// Builder: set a counter.
    pub fn with_counter(mut self, name: &str, amount: i64) -> Self {
        self.counters.insert(name.into(), amount);
        self
    }

    /// Builder: set an item stack.
    pub fn with_item(mut self, item: &str, qty: i64) -> Self {
        self.items.insert(item.into(), qty);
        self
    }

    /// Builder: add an entity.
    pub fn with_entity<T: Serialize>(mut self, id: &str, kind: &str, data: &T) -> Self {
        self.entities.push(Entity {
            id: id.into(),
            kind: kind.into(),
            data: Doc::encode(data).expect("encodes"),
        });
        self
    }

    /// Builder: add a buff.
    pub fn with_buff(mut self, buff: Buff) -> Self {
        self.buffs.push(buff);
        self
    }

    /// Builder: set the plugin's private state.
    pub fn with_state<T: Serialize>(mut self, state: &T) -> Self {
        self.state = Doc::encode(state).expect("encodes");
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{ActionSpec, Section};

    /// Two queries, one of which wrongly writes, and the same write as an ordinary action.
    struct Reader;

    impl Plugin for Reader {
        fn manifest() -> Manifest {
            let spec = |name: &str, query: bool| ActionSpec {
                name: name.into(),
                title: String::new(),
                description: String::new(),
                params: vec![],
                reads: vec![Section::Items],
                kinds: vec![],
                content: vec![],
                query,
                reads_player: String::new(),
            };
            Manifest {
                name: "reader".into(),
                version: "1.0.0".into(),
                abi: crate::abi::ABI_VERSION,
                title: String::new(),
                description: String::new(),
                entity_kinds: vec![],
                actions: vec![spec("look", true), spec("sneak", true), spec("grab", false)],
                hooks: vec![],
            }
        }

        fn handle(ctx: &mut crate::plugin::Ctx) -> Result<(), Error> {
            if ctx.action() != "look" {
                ctx.add_item("gem", 1);
            }
            ctx.reply(&ctx.item("gem"))
        }
    }

    /// Reads another player through `opponent`; `peek` has a `player` param it does not declare.
    struct Watcher;

    impl Plugin for Watcher {
        fn manifest() -> Manifest {
            let player_param = |name: &str| crate::wire::ParamSpec {
                name: name.into(),
                ty: ParamType::Player,
                required: false,
                of: String::new(),
                description: String::new(),
            };
            let spec = |name: &str, reads_player: &str, params| ActionSpec {
                name: name.into(),
                title: String::new(),
                description: String::new(),
                params,
                reads: vec![Section::Entities],
                kinds: vec!["pet".into()],
                content: vec![],
                query: true,
                reads_player: reads_player.into(),
            };
            Manifest {
                name: "watcher".into(),
                version: "1.0.0".into(),
                abi: crate::abi::ABI_VERSION,
                title: String::new(),
                description: String::new(),
                entity_kinds: vec![],
                actions: vec![
                    spec("look", "opponent", vec![player_param("opponent")]),
                    spec("peek", "", vec![player_param("opponent")]),
                ],
                hooks: vec![],
            }
        }

        fn handle(ctx: &mut crate::plugin::Ctx) -> Result<(), Error> {
            let other = ctx.other_player().cloned();
            ctx.reply(&other)
        }
    }

    #[test]
    fn another_player_is_seen_only_through_the_declared_param_and_only_in_public() {
        let h = Harness::<Watcher>::new();
        h.manifest().validate().expect("valid");
        let other = PlayerState {
            id: 9,
            name: "rival".into(),
            ..PlayerState::default()
        }
        .with_stat("attack", 3.0)
        .with_currency("spirit_stones", 50)
        .with_entity("p1", "pet", &1)
        .with_entity("s1", "secret", &2);
        let run = h
            .action("look")
            .other_player(&other)
            .other_effective("attack", 5.0)
            .params(&BTreeMap::from([("opponent", 9)]))
            .run();
        let seen: Option<OtherPlayer> = run.reply();
        let seen = seen.expect("the declared read gets the view");
        assert_eq!((seen.id, seen.name.as_str()), (9, "rival"));
        assert_eq!(seen.effective_stats["attack"], 5.0);
        assert_eq!(seen.entities.len(), 1, "only the action's kinds");
        let run = h
            .action("peek")
            .other_player(&other)
            .params(&BTreeMap::from([("opponent", 9)]))
            .run();
        assert!(run.rejected(reject_codes::BAD_PARAMS).contains("opponent"));
        // Without the param the undeclared action runs, and still sees nobody.
        let run = h.action("peek").other_player(&other).run();
        assert_eq!(run.reply::<Option<OtherPlayer>>(), None);
    }

    #[test]
    fn a_player_param_the_action_does_not_have_fails_validation() {
        let mut m = Watcher::manifest();
        m.actions[0].reads_player = "rival".into();
        assert!(m.validate().unwrap_err().contains("rival"));
    }

    #[test]
    fn a_query_that_returns_effects_fails_the_run() {
        let h = Harness::<Reader>::new();
        let player = PlayerState::default().with_item("gem", 2);
        assert_eq!(h.action("look").player(player.clone()).run().reply::<i64>(), 2);
        let run = h.action("sneak").player(player.clone()).run();
        let message = run.fault(QUERY_EFFECTS);
        assert!(message.contains("`sneak`"), "{message}");
        assert_eq!(h.action("grab").player(player).run().reply::<i64>(), 3);
    }
}
