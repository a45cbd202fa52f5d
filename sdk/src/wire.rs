//! The messages of ABI v1. Every type here is MessagePack with struct fields as map keys; `ABI.md`
//! describes the same shapes for authors in other languages.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::doc::Doc;

/// A map with string keys, decoded by collecting its entries and building the tree in one pass.
///
/// The host writes maps in key order (they are `BTreeMap`s on its side too), and `BTreeMap`'s
/// `FromIterator` checks that order with one comparison per entry before building the tree
/// bottom-up. Inserting entries one by one instead searches the node each time: for the eleven
/// stats of a typical call that is 55 string comparisons instead of 10. Unsorted input still
/// decodes, and when a key repeats the last value wins, as with inserting.
fn sorted_map<'de, D, V>(d: D) -> Result<BTreeMap<String, V>, D::Error>
where
    D: serde::Deserializer<'de>,
    V: Deserialize<'de>,
{
    struct Entries<V>(std::marker::PhantomData<V>);

    impl<'de, V: Deserialize<'de>> serde::de::Visitor<'de> for Entries<V> {
        type Value = BTreeMap<String, V>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a map with string keys")
        }

        fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            // The hint comes from the input: cap it so a forged length cannot reserve much.
            let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0).min(256));
            while let Some(entry) = map.next_entry::<String, V>()? {
                entries.push(entry);
            }
            Ok(entries.into_iter().collect())
        }
    }

    d.deserialize_map(Entries(std::marker::PhantomData))
}

/// What the host asks a plugin to do: run an action, or run a hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum CallKind {
    /// A player's action, answered with effects.
    #[default]
    Action,
    /// A hook named by `Call::action` (v1 has `modifiers`), answered with modifiers.
    Hook,
}

/// One call into a plugin: everything it may know, so the same call always gives the same outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Call {
    /// Action or hook name.
    pub action: String,
    /// Whether this is an action or a hook.
    #[serde(default)]
    pub kind: CallKind,
    /// The action's parameters as sent by the client (a map, or nil).
    pub params: Doc,
    /// The sections of the player's state that the action declared it reads.
    pub player: PlayerState,
    /// The player's stats after every plugin's modifiers (empty for hooks).
    #[serde(default, deserialize_with = "sorted_map")]
    pub effective_stats: BTreeMap<String, f64>,
    /// Milliseconds since the Unix epoch, fixed by the host for this call.
    pub now_ms: i64,
    /// Seed for [`crate::rng::Rng`]; the only source of randomness.
    pub seed: u64,
    /// The content tables the action declared, by table name (file stem of `content/*.toml`).
    /// Empty when the plugin was pre-initialised: it got every table once, through [`Init`].
    #[serde(default, deserialize_with = "sorted_map")]
    pub content: BTreeMap<String, Doc>,
    /// Another player's public view, for an action that declares [`ActionSpec::reads_player`] and was
    /// given that param; `None` (nil) otherwise. Read-only: effects still apply to `player` alone.
    #[serde(default)]
    pub other_player: Option<OtherPlayer>,
}

/// What a call may see of another player (ABI.md §6.2): who they are, their stats before and after
/// every plugin's modifiers, and their entities of the action's kinds. Never their private plugin
/// state, currencies, counters, items or buffs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OtherPlayer {
    /// Their player id.
    pub id: i64,
    /// Their display name.
    #[serde(default)]
    pub name: String,
    /// Their base stats.
    #[serde(default, deserialize_with = "sorted_map")]
    pub stats: BTreeMap<String, f64>,
    /// Their stats after every plugin's `modifiers` hook and their active buffs, as for the actor.
    #[serde(default, deserialize_with = "sorted_map")]
    pub effective_stats: BTreeMap<String, f64>,
    /// Their entities of the kinds the action reads (the plugin's own plus the action's `kinds`).
    #[serde(default)]
    pub entities: Vec<Entity>,
}

impl OtherPlayer {
    /// The public view of `player` for an action that reads entities of `kinds`, with its effective
    /// stats: id, name, base stats and those entities; nothing else of the state is copied.
    pub fn view(player: &PlayerState, effective_stats: BTreeMap<String, f64>, kinds: &[String]) -> Self {
        Self {
            id: player.id,
            name: player.name.clone(),
            stats: player.stats.clone(),
            effective_stats,
            entities: player
                .entities
                .iter()
                .filter(|e| kinds.contains(&e.kind))
                .cloned()
                .collect(),
        }
    }
}

/// What the host gives a plugin once per load, through the optional `cauldron_init` export, before
/// taking the snapshot every call starts from. Answered with an [`Outcome`]: `ok` (nothing in it)
/// or a `fault` that refuses the load.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Init {
    /// Every content table of the plugin, by table name (file stem of `content/*.toml`).
    #[serde(default, deserialize_with = "sorted_map")]
    pub content: BTreeMap<String, Doc>,
}

/// The part of a player's state a call can see. Sections the action did not declare are empty.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PlayerState {
    /// The player's id.
    pub id: i64,
    /// Display name.
    #[serde(default)]
    pub name: String,
    /// When the player was created, ms since the epoch.
    #[serde(default)]
    pub created_ms: i64,
    /// Numeric attributes set by plugins (`level`, `attack`, ...), before modifiers.
    #[serde(default, deserialize_with = "sorted_map")]
    pub stats: BTreeMap<String, f64>,
    /// Spendable balances; never negative.
    #[serde(default, deserialize_with = "sorted_map")]
    pub currencies: BTreeMap<String, i64>,
    /// Progress tallies; never negative.
    #[serde(default, deserialize_with = "sorted_map")]
    pub counters: BTreeMap<String, i64>,
    /// Item stacks by item id; never negative.
    #[serde(default, deserialize_with = "sorted_map")]
    pub items: BTreeMap<String, i64>,
    /// Entities of the kinds the action declared.
    #[serde(default)]
    pub entities: Vec<Entity>,
    /// Active buffs (expired ones are not sent).
    #[serde(default)]
    pub buffs: Vec<Buff>,
    /// This plugin's private state (nil until the plugin sets it).
    #[serde(default)]
    pub state: Doc,
}

/// A thing a player owns with data of its own: a piece of equipment, a pet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entity {
    /// Unique id, chosen by the plugin that created it.
    pub id: String,
    /// Kind, declared in the owning plugin's manifest.
    pub kind: String,
    /// The plugin's data for it.
    pub data: Doc,
}

/// A timed bonus: its modifiers count toward effective stats until it expires.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Buff {
    /// Id, unique per player; adding a buff with an existing id replaces it.
    pub id: String,
    /// What it does while active.
    #[serde(default)]
    pub modifiers: Vec<Modifier>,
    /// When it ends, ms since the epoch.
    pub expires_ms: i64,
}

/// A change to one stat: `effective = (base + sum of add) * (1 + sum of mul)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Modifier {
    /// Stat name.
    pub stat: String,
    /// Flat amount added to the base.
    #[serde(default)]
    pub add: f64,
    /// Fraction added to the multiplier (0.1 = +10 %).
    #[serde(default)]
    pub mul: f64,
    /// Where it comes from, for display ("equipment: 青竹剑").
    #[serde(default)]
    pub source: String,
}

/// Who receives an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// The acting player's sockets.
    #[default]
    Player,
    /// Every connected player.
    Global,
}

/// Something worth telling clients about, delivered after the action is applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Event name, such as `breakthrough`.
    pub topic: String,
    /// Who receives it.
    #[serde(default)]
    pub scope: Scope,
    /// Payload for clients.
    pub data: Doc,
}

/// One change to a player's state. The host validates all of an outcome's effects, then applies them in
/// one transaction, or none of them.
///
/// On the wire, a map whose `op` key names the variant (decoded in one pass; see `flat` in this file).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Effect {
    /// Add `delta` (may be negative) to a currency; the result must not be negative.
    AddCurrency {
        /// Currency name.
        name: String,
        /// Amount to add.
        delta: i64,
    },
    /// Add `delta` (may be negative) to a counter; the result must not be negative.
    AddCounter {
        /// Counter name.
        name: String,
        /// Amount to add.
        delta: i64,
    },
    /// Add `qty > 0` to an item stack.
    AddItem {
        /// Item id.
        item: String,
        /// Quantity, positive.
        qty: i64,
    },
    /// Remove `qty > 0` from an item stack; the player must hold that many.
    RemoveItem {
        /// Item id.
        item: String,
        /// Quantity, positive.
        qty: i64,
    },
    /// Set a stat to a finite value.
    SetStat {
        /// Stat name.
        name: String,
        /// New value.
        value: f64,
    },
    /// Create an entity of a kind this plugin declares.
    CreateEntity {
        /// New, unused id.
        id: String,
        /// Declared kind.
        kind: String,
        /// Its data.
        data: Doc,
    },
    /// Replace the data of an entity the player owns.
    UpdateEntity {
        /// Existing id.
        id: String,
        /// New data.
        data: Doc,
    },
    /// Delete an entity the player owns.
    DeleteEntity {
        /// Existing id.
        id: String,
    },
    /// Add or replace a buff.
    AddBuff {
        /// The buff.
        buff: Buff,
    },
    /// Remove a buff if present.
    RemoveBuff {
        /// Buff id.
        id: String,
    },
    /// Replace this plugin's private state.
    SetState {
        /// New state.
        data: Doc,
    },
    /// Publish an event once the action is applied.
    Emit {
        /// The event.
        event: Event,
    },
    /// Set the player's score on a leaderboard.
    SetScore {
        /// Leaderboard name, such as `realm`.
        board: String,
        /// Score; higher ranks first.
        score: f64,
    },
}

/// What a plugin answers.
///
/// On the wire, a map whose `status` key names the variant (decoded in one pass; see `flat` in this file).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Outcome {
    /// The action happened (or the hook ran).
    Ok {
        /// State changes, applied all or nothing.
        #[serde(default)]
        effects: Vec<Effect>,
        /// What the client is told.
        #[serde(default)]
        reply: Doc,
        /// A hook's modifiers.
        #[serde(default)]
        modifiers: Vec<Modifier>,
    },
    /// The rules said no; nothing changes and the player sees `message`.
    Rejected {
        /// Stable code; see [`crate::abi::reject_codes`] for the reserved ones.
        code: String,
        /// Words for the player.
        message: String,
    },
    /// The plugin failed; nothing changes and the host counts a fault.
    Fault {
        /// See [`crate::abi::fault_codes`].
        code: String,
        /// Detail for operators.
        message: String,
    },
}

/// Decoding of the two tagged messages, [`Effect`] and [`Outcome`], in one pass.
///
/// serde's derived decoder for an internally tagged enum first copies the whole map into a generic
/// tree (it cannot know the variant before it has seen the tag), then decodes the variant from that
/// copy: for an `Outcome`, its effects are copied twice. Here each message decodes into a flat
/// struct with every key any variant uses, all optional, and the variant is assembled from it. Keys
/// may come in any order; unknown keys are ignored; a key of another variant must still have the
/// type it has there (every key has one type across variants).
mod flat {
    use serde::{Deserialize, Deserializer, de::Error as _};

    use super::{Buff, Doc, Effect, Event, Modifier, Outcome};

    #[derive(Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum Op {
        AddCurrency,
        AddCounter,
        AddItem,
        RemoveItem,
        SetStat,
        CreateEntity,
        UpdateEntity,
        DeleteEntity,
        AddBuff,
        RemoveBuff,
        SetState,
        Emit,
        SetScore,
    }

    #[derive(Deserialize)]
    struct FlatEffect {
        op: Option<Op>,
        name: Option<String>,
        delta: Option<i64>,
        item: Option<String>,
        qty: Option<i64>,
        value: Option<f64>,
        id: Option<String>,
        kind: Option<String>,
        #[serde(default, deserialize_with = "present")]
        data: Option<Doc>,
        buff: Option<Buff>,
        event: Option<Event>,
        board: Option<String>,
        score: Option<f64>,
    }

    /// A document key that is present, even as `nil` (which `Option` alone would read as absent).
    fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Doc>, D::Error> {
        Doc::deserialize(d).map(Some)
    }

    fn need<T, E: serde::de::Error>(v: Option<T>, op: &str, key: &'static str) -> Result<T, E> {
        v.ok_or_else(|| E::custom(format_args!("effect `{op}` is missing `{key}`")))
    }

    impl<'de> Deserialize<'de> for Effect {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            let f = FlatEffect::deserialize(d)?;
            Ok(match f.op.ok_or_else(|| D::Error::missing_field("op"))? {
                Op::AddCurrency => Effect::AddCurrency {
                    name: need(f.name, "add_currency", "name")?,
                    delta: need(f.delta, "add_currency", "delta")?,
                },
                Op::AddCounter => Effect::AddCounter {
                    name: need(f.name, "add_counter", "name")?,
                    delta: need(f.delta, "add_counter", "delta")?,
                },
                Op::AddItem => Effect::AddItem {
                    item: need(f.item, "add_item", "item")?,
                    qty: need(f.qty, "add_item", "qty")?,
                },
                Op::RemoveItem => Effect::RemoveItem {
                    item: need(f.item, "remove_item", "item")?,
                    qty: need(f.qty, "remove_item", "qty")?,
                },
                Op::SetStat => Effect::SetStat {
                    name: need(f.name, "set_stat", "name")?,
                    value: need(f.value, "set_stat", "value")?,
                },
                Op::CreateEntity => Effect::CreateEntity {
                    id: need(f.id, "create_entity", "id")?,
                    kind: need(f.kind, "create_entity", "kind")?,
                    data: need(f.data, "create_entity", "data")?,
                },
                Op::UpdateEntity => Effect::UpdateEntity {
                    id: need(f.id, "update_entity", "id")?,
                    data: need(f.data, "update_entity", "data")?,
                },
                Op::DeleteEntity => Effect::DeleteEntity {
                    id: need(f.id, "delete_entity", "id")?,
                },
                Op::AddBuff => Effect::AddBuff {
                    buff: need(f.buff, "add_buff", "buff")?,
                },
                Op::RemoveBuff => Effect::RemoveBuff {
                    id: need(f.id, "remove_buff", "id")?,
                },
                Op::SetState => Effect::SetState {
                    data: need(f.data, "set_state", "data")?,
                },
                Op::Emit => Effect::Emit {
                    event: need(f.event, "emit", "event")?,
                },
                Op::SetScore => Effect::SetScore {
                    board: need(f.board, "set_score", "board")?,
                    score: need(f.score, "set_score", "score")?,
                },
            })
        }
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum Status {
        Ok,
        Rejected,
        Fault,
    }

    #[derive(Deserialize)]
    struct FlatOutcome {
        status: Option<Status>,
        effects: Option<Vec<Effect>>,
        #[serde(default, deserialize_with = "present")]
        reply: Option<Doc>,
        modifiers: Option<Vec<Modifier>>,
        code: Option<String>,
        message: Option<String>,
    }

    impl<'de> Deserialize<'de> for Outcome {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            let f = FlatOutcome::deserialize(d)?;
            let text = |v: Option<String>, key: &'static str| {
                v.ok_or_else(|| D::Error::custom(format_args!("outcome is missing `{key}`")))
            };
            Ok(match f.status.ok_or_else(|| D::Error::missing_field("status"))? {
                Status::Ok => Outcome::Ok {
                    effects: f.effects.unwrap_or_default(),
                    reply: f.reply.unwrap_or_default(),
                    modifiers: f.modifiers.unwrap_or_default(),
                },
                Status::Rejected => Outcome::Rejected {
                    code: text(f.code, "code")?,
                    message: text(f.message, "message")?,
                },
                Status::Fault => Outcome::Fault {
                    code: text(f.code, "code")?,
                    message: text(f.message, "message")?,
                },
            })
        }
    }
}

/// A section of player state an action or hook may read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Section {
    /// `PlayerState::stats`
    Stats,
    /// `PlayerState::currencies`
    Currencies,
    /// `PlayerState::counters`
    Counters,
    /// `PlayerState::items`
    Items,
    /// `PlayerState::entities`, of the kinds the action lists (default: the plugin's own kinds)
    Entities,
    /// `PlayerState::buffs`
    Buffs,
    /// `PlayerState::state`, this plugin's private state
    State,
}

/// The shape of one action parameter, for generic clients and for the host's checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParamType {
    /// Whole number.
    Integer,
    /// Any number.
    Number,
    /// Text.
    String,
    /// true or false.
    Bool,
    /// The id of one of the player's entities.
    Entity,
    /// The id of another player (an integer). Only the param an action names in
    /// [`ActionSpec::reads_player`] may be given; the host refuses any other with `bad_params`.
    Player,
}

/// One parameter of an action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParamSpec {
    /// Key in the params map.
    pub name: String,
    /// Its type.
    #[serde(rename = "type")]
    pub ty: ParamType,
    /// Whether it must be present.
    #[serde(default)]
    pub required: bool,
    /// For `Entity` params: the entity kind; for `String` params: allowed values, comma-separated.
    #[serde(default)]
    pub of: String,
    /// Help text.
    #[serde(default)]
    pub description: String,
}

/// An action a plugin offers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionSpec {
    /// Name, unique in the plugin: lowercase letters, digits, `_` and `-`.
    pub name: String,
    /// Display title.
    #[serde(default)]
    pub title: String,
    /// Help text.
    #[serde(default)]
    pub description: String,
    /// Parameters.
    #[serde(default)]
    pub params: Vec<ParamSpec>,
    /// State sections it reads.
    #[serde(default)]
    pub reads: Vec<Section>,
    /// Entity kinds it reads and may change, beyond the plugin's own.
    #[serde(default)]
    pub kinds: Vec<String>,
    /// Content tables it needs.
    #[serde(default)]
    pub content: Vec<String>,
    /// A read-only action: the host runs it on the player's current state and returns its reply
    /// without a transaction, a log row or a new player version, so it must return no effects (an
    /// outcome with effects is the plugin's fault, [`crate::abi::QUERY_EFFECTS`], and nothing is
    /// written). Optional, default `false`.
    #[serde(default)]
    pub query: bool,
    /// The name of the param (of type [`ParamType::Player`]) that names another player whose
    /// public view the call receives as [`Call::other_player`]; empty when the action reads no other
    /// player. Optional, default empty.
    #[serde(default)]
    pub reads_player: String,
}

impl ActionSpec {
    /// Whether the action reads another player.
    pub fn reads_other_player(&self) -> bool {
        !self.reads_player.is_empty()
    }
}

/// A hook a plugin implements.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HookSpec {
    /// Hook name (`modifiers`).
    pub name: String,
    /// State sections it reads.
    #[serde(default)]
    pub reads: Vec<Section>,
    /// Content tables it needs.
    #[serde(default)]
    pub content: Vec<String>,
}

/// What a plugin is: returned by `describe`, checked by the host before the plugin is swapped in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Plugin name: lowercase letters, digits, `_` and `-`.
    pub name: String,
    /// Semantic version, `MAJOR.MINOR.PATCH`.
    pub version: String,
    /// ABI major version.
    pub abi: u32,
    /// Display title.
    #[serde(default)]
    pub title: String,
    /// What the plugin adds to the game.
    #[serde(default)]
    pub description: String,
    /// Entity kinds this plugin owns and may create.
    #[serde(default)]
    pub entity_kinds: Vec<String>,
    /// Its actions.
    #[serde(default)]
    pub actions: Vec<ActionSpec>,
    /// Its hooks.
    #[serde(default)]
    pub hooks: Vec<HookSpec>,
}

impl PlayerState {
    /// This state cut down to what a call that reads `sections` may see; entities only of `kinds`.
    pub fn only(&self, sections: &[Section], kinds: &[String]) -> Self {
        let has = |s: Section| sections.contains(&s);
        Self {
            id: self.id,
            name: self.name.clone(),
            created_ms: self.created_ms,
            stats: if has(Section::Stats) {
                self.stats.clone()
            } else {
                BTreeMap::new()
            },
            currencies: if has(Section::Currencies) {
                self.currencies.clone()
            } else {
                BTreeMap::new()
            },
            counters: if has(Section::Counters) {
                self.counters.clone()
            } else {
                BTreeMap::new()
            },
            items: if has(Section::Items) {
                self.items.clone()
            } else {
                BTreeMap::new()
            },
            entities: if has(Section::Entities) {
                self.entities
                    .iter()
                    .filter(|e| kinds.contains(&e.kind))
                    .cloned()
                    .collect()
            } else {
                Vec::new()
            },
            buffs: if has(Section::Buffs) {
                self.buffs.clone()
            } else {
                Vec::new()
            },
            state: if has(Section::State) {
                self.state.clone()
            } else {
                Doc::nil()
            },
        }
    }
}

/// The hook name for stat modifiers.
pub const HOOK_MODIFIERS: &str = "modifiers";

impl Manifest {
    /// The action called `name`, if the plugin has it.
    pub fn action(&self, name: &str) -> Option<&ActionSpec> {
        self.actions.iter().find(|a| a.name == name)
    }

    /// The hook called `name`, if the plugin implements it.
    pub fn hook(&self, name: &str) -> Option<&HookSpec> {
        self.hooks.iter().find(|h| h.name == name)
    }

    /// Check the manifest's own consistency: names, version, no duplicates.
    pub fn validate(&self) -> Result<(), String> {
        check_name("plugin name", &self.name)?;
        check_semver(&self.version)?;
        let mut seen = std::collections::BTreeSet::new();
        for action in &self.actions {
            check_name("action name", &action.name)?;
            if !seen.insert(action.name.as_str()) {
                return Err(format!("action `{}` is declared twice", action.name));
            }
            if action.reads_other_player()
                && !action
                    .params
                    .iter()
                    .any(|p| p.name == action.reads_player && p.ty == ParamType::Player)
            {
                return Err(format!(
                    "action `{}` reads the player named by `{}`, which is not one of its `player` params",
                    action.name, action.reads_player
                ));
            }
        }
        for kind in &self.entity_kinds {
            check_name("entity kind", kind)?;
        }
        for hook in &self.hooks {
            if hook.name != HOOK_MODIFIERS {
                return Err(format!(
                    "unknown hook `{}` (v1 has `{HOOK_MODIFIERS}`)",
                    hook.name
                ));
            }
        }
        Ok(())
    }
}

fn check_name(what: &str, name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!("{what} `{name}` must be 1-64 of a-z, 0-9, `_`, `-`"))
    }
}

fn check_semver(version: &str) -> Result<(), String> {
    let core = version.split(['-', '+']).next().unwrap_or_default();
    let parts: Vec<&str> = core.split('.').collect();
    if parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
    {
        Ok(())
    } else {
        Err(format!("version `{version}` is not MAJOR.MINOR.PATCH"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec;

    #[test]
    fn an_action_without_the_query_key_is_an_ordinary_action() {
        // A manifest as a plugin built before the field writes it.
        #[derive(Serialize)]
        struct OldAction {
            name: &'static str,
        }
        #[derive(Serialize)]
        struct OldManifest {
            name: &'static str,
            version: &'static str,
            abi: u32,
            actions: Vec<OldAction>,
        }
        let old = OldManifest {
            name: "old",
            version: "1.0.0",
            abi: 1,
            actions: vec![OldAction { name: "look" }],
        };
        let manifest: Manifest = codec::decode(&codec::encode(&old).unwrap()).unwrap();
        assert!(!manifest.actions[0].query);
        let mut query = manifest.clone();
        query.actions[0].query = true;
        let back: Manifest = codec::decode(&codec::encode(&query).unwrap()).unwrap();
        assert!(back.actions[0].query);
    }

    #[test]
    fn effect_is_tagged_by_op() {
        let e = Effect::AddItem {
            item: "herb".into(),
            qty: 2,
        };
        let bytes = codec::encode(&e).unwrap();
        let as_map: BTreeMap<String, rmp_serde_value::Any> = codec::decode(&bytes).unwrap();
        assert_eq!(as_map.keys().collect::<Vec<_>>(), ["item", "op", "qty"]);
        assert_eq!(codec::decode::<Effect>(&bytes).unwrap(), e);
    }

    #[test]
    fn outcome_round_trips_with_nested_docs() {
        let o = Outcome::Ok {
            effects: vec![
                Effect::CreateEntity {
                    id: "e1".into(),
                    kind: "pet".into(),
                    data: Doc::encode(&[1, 2]).unwrap(),
                },
                Effect::Emit {
                    event: Event {
                        topic: "t".into(),
                        scope: Scope::Global,
                        data: Doc::encode("hi").unwrap(),
                    },
                },
            ],
            reply: Doc::encode(&7).unwrap(),
            modifiers: vec![],
        };
        assert_eq!(codec::decode::<Outcome>(&codec::encode(&o).unwrap()).unwrap(), o);
    }

    #[test]
    fn tagged_messages_decode_in_any_key_order_and_name_what_is_missing() {
        // Written by hand, as another language might: the tag last (map keys are sorted here), nil
        // data, an unknown key.
        let effect = BTreeMap::from([
            ("id", Value::S("e1")),
            ("kind", Value::S("pet")),
            ("data", Value::Nil),
            ("extra", Value::I(1)),
            ("op", Value::S("create_entity")),
        ]);
        let outcome = BTreeMap::from([
            ("effects", Value::L(vec![effect])),
            ("reply", Value::D(Doc::encode(&3).unwrap())),
            ("status", Value::S("ok")),
        ]);
        let bytes = codec::encode(&outcome).unwrap();
        let Outcome::Ok { effects, reply, .. } = codec::decode::<Outcome>(&bytes).unwrap() else {
            panic!("not ok")
        };
        assert_eq!(reply.decode::<i64>().unwrap(), 3);
        assert_eq!(
            effects,
            [Effect::CreateEntity {
                id: "e1".into(),
                kind: "pet".into(),
                data: Doc::nil(),
            }]
        );

        let no_qty = BTreeMap::from([("op", Value::S("add_item")), ("item", Value::S("herb"))]);
        let err = codec::decode::<Effect>(&codec::encode(&no_qty).unwrap()).unwrap_err();
        assert!(err.0.contains("`add_item` is missing `qty`"), "{err}");
        let no_op = BTreeMap::from([("item", Value::S("herb"))]);
        let err = codec::decode::<Effect>(&codec::encode(&no_op).unwrap()).unwrap_err();
        assert!(err.0.contains("op"), "{err}");
        let bad_status = BTreeMap::from([("status", Value::S("maybe"))]);
        assert!(codec::decode::<Outcome>(&codec::encode(&bad_status).unwrap()).is_err());
        let rejected = BTreeMap::from([("status", Value::S("rejected")), ("code", Value::S("x"))]);
        let err = codec::decode::<Outcome>(&codec::encode(&rejected).unwrap()).unwrap_err();
        assert!(err.0.contains("missing `message`"), "{err}");
    }

    /// A few MessagePack values, to write messages by hand.
    #[derive(serde::Serialize)]
    #[serde(untagged)]
    enum Value {
        S(&'static str),
        I(i64),
        L(Vec<BTreeMap<&'static str, Value>>),
        D(Doc),
        Nil,
    }

    /// A map written entry by entry, in any order and with repeats, as another encoder might.
    struct Entries(Vec<(&'static str, f64)>);

    impl Serialize for Entries {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            use serde::ser::SerializeMap;
            let mut m = s.serialize_map(Some(self.0.len()))?;
            for (k, v) in &self.0 {
                m.serialize_entry(k, v)?;
            }
            m.end()
        }
    }

    #[derive(Serialize)]
    struct StatsOnly {
        id: i64,
        stats: Entries,
    }

    #[test]
    fn string_maps_decode_in_any_order_and_a_repeated_key_keeps_its_last_value() {
        let sorted = StatsOnly {
            id: 1,
            stats: Entries(vec![("attack", 1.0), ("level", 2.0), ("luck", 3.0)]),
        };
        let shuffled = StatsOnly {
            id: 1,
            stats: Entries(vec![
                ("luck", 9.0),
                ("level", 2.0),
                ("attack", 1.0),
                ("luck", 3.0),
            ]),
        };
        let a: PlayerState = codec::decode(&codec::encode(&sorted).unwrap()).unwrap();
        let b: PlayerState = codec::decode(&codec::encode(&shuffled).unwrap()).unwrap();
        let want: BTreeMap<String, f64> = [("attack", 1.0), ("level", 2.0), ("luck", 3.0)]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        assert_eq!(a.stats, want);
        assert_eq!(b.stats, want);
        // Not a map at all: refused, naming the shape it wanted.
        #[derive(Serialize)]
        struct StatsNumber {
            id: i64,
            stats: i64,
        }
        let bad = codec::encode(&StatsNumber { id: 1, stats: 5 }).unwrap();
        let err = codec::decode::<PlayerState>(&bad).unwrap_err().to_string();
        assert!(err.contains("a map with string keys"), "{err}");
    }

    #[test]
    fn manifest_validation_names_the_problem() {
        let mut m = Manifest {
            name: "alchemy".into(),
            version: "1.2.3".into(),
            abi: 1,
            title: String::new(),
            description: String::new(),
            entity_kinds: vec![],
            actions: vec![],
            hooks: vec![],
        };
        assert!(m.validate().is_ok());
        m.version = "1.2".into();
        assert!(m.validate().unwrap_err().contains("MAJOR.MINOR.PATCH"));
        m.version = "1.2.3-beta.1".into();
        assert!(m.validate().is_ok());
        m.name = "Alchemy!".into();
        assert!(m.validate().unwrap_err().contains("plugin name"));
    }

    /// A stand-in "any value" so the test can look at map keys without a dynamic-value crate.
    mod rmp_serde_value {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        #[allow(dead_code, reason = "only decoded to prove the shape")]
        pub(crate) enum Any {
            S(String),
            I(i64),
        }
    }
}
