//! What a plugin author implements ([`Plugin`]) and works with ([`Ctx`], [`Error`]).

use std::rc::Rc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::abi::{fault_codes, reject_codes};
use crate::actions::Actions;
use crate::content::{Content, Table};
use crate::doc::Doc;
use crate::rng::Rng;
use crate::wire::{Buff, Call, Effect, Entity, Manifest, Modifier, OtherPlayer, PlayerState, Scope};

/// A game plugin. Register it with [`crate::export!`].
///
/// Every function is a pure function of its input: the host gives a fresh instance to each call, so
/// nothing survives between calls except what the plugin returns as effects. The one exception is
/// [`Plugin::prepare`], which runs once per load and whose work every call starts from.
pub trait Plugin {
    /// The plugin's actions, each declared once with the function that runs it. The manifest lists
    /// them with `actions: Self::ACTIONS.specs()`, and the default [`Plugin::handle`] runs the one
    /// a call names. Empty by default, for a plugin that writes its own `handle`.
    const ACTIONS: Actions = Actions::NONE;

    /// The plugin's manifest: name, version, actions (usually `Self::ACTIONS.specs()`), hooks.
    /// Called once when the host loads it.
    fn manifest() -> Manifest;

    /// Decode and check the content tables the plugin uses, once, when the host loads it: call
    /// [`Content::table`] for each. The host snapshots the plugin right after, so every call finds
    /// them decoded; an error refuses the load with its message, so bad content never reaches a
    /// player. Tables not prepared here still work; they are decoded on each call that uses them.
    fn prepare(content: &Content) -> Result<(), Error> {
        let _ = content;
        Ok(())
    }

    /// Run the action named by `ctx.action()`, recording effects on `ctx`. By default, the one
    /// [`Plugin::ACTIONS`] declares under that name ([`Actions::call`]; any other name is the
    /// standard `unknown_action` rejection).
    fn handle(ctx: &mut Ctx) -> Result<(), Error> {
        Self::ACTIONS.call(ctx)
    }

    /// The `modifiers` hook: stat changes derived from the player's state. Declare it in the manifest's
    /// `hooks` for the host to call it.
    fn modifiers(ctx: &mut Ctx) -> Result<Vec<Modifier>, Error> {
        let _ = ctx;
        Ok(Vec::new())
    }
}

/// Why an action did not happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// A rule said no: the player sees the message, nothing changes.
    Reject {
        /// Stable code (see [`crate::abi::reject_codes`] for reserved ones).
        code: String,
        /// Words for the player.
        message: String,
    },
    /// The plugin itself failed (bad content, a bug): counted as a fault.
    Fault {
        /// See [`crate::abi::fault_codes`].
        code: String,
        /// Detail for operators.
        message: String,
    },
}

impl Error {
    /// A rule rejection with a code of the plugin's choosing.
    pub fn reject(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Reject {
            code: code.into(),
            message: message.into(),
        }
    }

    /// The player lacks something the action needs.
    pub fn insufficient(message: impl Into<String>) -> Self {
        Self::reject(reject_codes::INSUFFICIENT, message)
    }

    /// The params are wrong (HTTP 400).
    pub fn bad_params(message: impl Into<String>) -> Self {
        Self::reject(reject_codes::BAD_PARAMS, message)
    }

    /// The named thing does not exist for this player.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::reject(reject_codes::NOT_FOUND, message)
    }

    /// The plugin has no such action (HTTP 404).
    pub fn unknown_action(action: &str) -> Self {
        Self::reject(reject_codes::UNKNOWN_ACTION, format!("unknown action `{action}`"))
    }

    /// An internal failure of the plugin.
    pub fn fault(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Fault {
            code: code.into(),
            message: message.into(),
        }
    }

    /// The code, whichever kind.
    pub fn code(&self) -> &str {
        match self {
            Self::Reject { code, .. } | Self::Fault { code, .. } => code,
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Reject { code, message } => write!(f, "rejected ({code}): {message}"),
            Self::Fault { code, message } => write!(f, "fault ({code}): {message}"),
        }
    }
}

impl std::error::Error for Error {}

fn encode_doc<T: Serialize + ?Sized>(what: &str, value: &T) -> Result<Doc, Error> {
    Doc::encode(value).map_err(|e| Error::fault(fault_codes::ENCODE, format!("{what}: {e}")))
}

/// One call as the plugin sees it: the inputs, a seeded RNG, and the effects recorded so far.
///
/// Effect methods also apply the change to [`Ctx::player`], so later reads in the same call see it.
#[derive(Debug)]
pub struct Ctx {
    call: Call,
    content: Rc<Content>,
    rng: Rng,
    effects: Vec<Effect>,
    reply: Doc,
}

impl Ctx {
    /// A context for `call`, with its RNG seeded from `call.seed` and the content tables the call
    /// carries.
    pub fn new(mut call: Call) -> Self {
        let content = Rc::new(Content::new(std::mem::take(&mut call.content)));
        Self::with_content(call, content)
    }

    /// A context for `call` reading content tables from `content` (the ones given at load time).
    pub fn with_content(call: Call, content: Rc<Content>) -> Self {
        let rng = Rng::new(call.seed);
        Self {
            call,
            content,
            rng,
            effects: Vec::new(),
            reply: Doc::nil(),
        }
    }

    /// The action (or hook) name.
    pub fn action(&self) -> &str {
        &self.call.action
    }

    /// The call's time, ms since the epoch.
    pub fn now_ms(&self) -> i64 {
        self.call.now_ms
    }

    /// The call's random source.
    pub fn rng(&mut self) -> &mut Rng {
        &mut self.rng
    }

    /// Decode the params; missing params read as an empty map. Failure is a `bad_params` rejection.
    pub fn params<T: DeserializeOwned>(&self) -> Result<T, Error> {
        let empty_map = Doc::from_bytes(vec![0x80]);
        let doc = if self.call.params.is_nil() {
            &empty_map
        } else {
            &self.call.params
        };
        doc.decode()
            .map_err(|e| Error::bad_params(format!("bad params for `{}`: {e}", self.call.action)))
    }

    /// The params exactly as the client sent them (a MessagePack map, or nil).
    pub fn raw_params(&self) -> &Doc {
        &self.call.params
    }

    /// Content table `T`, decoded and checked once per load (see [`Plugin::prepare`]). A missing or
    /// malformed table is a `bad_content` fault.
    pub fn table<T: Table>(&self) -> Result<Rc<T>, Error> {
        self.content.table::<T>()
    }

    /// Decode content table `table` into any type, afresh on each use; prefer [`Ctx::table`],
    /// which decodes once. A missing or malformed table is a `bad_content` fault.
    pub fn content<T: DeserializeOwned>(&self, table: &str) -> Result<T, Error> {
        self.content.decode(table)
    }

    /// Every content table of the plugin.
    pub fn content_tables(&self) -> &Content {
        &self.content
    }

    /// The player's state as declared by the action, with this call's effects applied.
    pub fn player(&self) -> &PlayerState {
        &self.call.player
    }

    /// The other player's public view, when the action declares `reads_player` and the client named
    /// a player in that param (see [`crate::wire::ActionSpec::reads_player`]). Read-only: effects
    /// apply to [`Ctx::player`] alone.
    pub fn other_player(&self) -> Option<&OtherPlayer> {
        self.call.other_player.as_ref()
    }

    /// A base stat (0 when unset).
    pub fn stat(&self, name: &str) -> f64 {
        self.call.player.stats.get(name).copied().unwrap_or(0.0)
    }

    /// An effective stat (base plus every plugin's modifiers); falls back to the base stat.
    pub fn effective(&self, name: &str) -> f64 {
        self.call
            .effective_stats
            .get(name)
            .copied()
            .unwrap_or_else(|| self.stat(name))
    }

    /// All effective stats the host computed.
    pub fn effective_stats(&self) -> &std::collections::BTreeMap<String, f64> {
        &self.call.effective_stats
    }

    /// A currency balance (0 when unset).
    pub fn currency(&self, name: &str) -> i64 {
        self.call.player.currencies.get(name).copied().unwrap_or(0)
    }

    /// A counter (0 when unset).
    pub fn counter(&self, name: &str) -> i64 {
        self.call.player.counters.get(name).copied().unwrap_or(0)
    }

    /// An item stack (0 when unset).
    pub fn item(&self, item: &str) -> i64 {
        self.call.player.items.get(item).copied().unwrap_or(0)
    }

    /// The player's entities of one kind.
    pub fn entities<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Entity> + 'a {
        self.call.player.entities.iter().filter(move |e| e.kind == kind)
    }

    /// One entity by id.
    pub fn entity(&self, id: &str) -> Option<&Entity> {
        self.call.player.entities.iter().find(|e| e.id == id)
    }

    /// Decode an entity's data; a missing entity of that kind is a `not_found` rejection.
    pub fn entity_data<T: DeserializeOwned>(&self, kind: &str, id: &str) -> Result<T, Error> {
        let entity = self
            .entity(id)
            .filter(|e| e.kind == kind)
            .ok_or_else(|| Error::not_found(format!("no {kind} with id `{id}`")))?;
        entity
            .data
            .decode()
            .map_err(|e| Error::fault(fault_codes::INTERNAL, format!("{kind} `{id}` data: {e}")))
    }

    /// The plugin's private state, or its default before the plugin first sets it.
    pub fn state<T: DeserializeOwned + Default>(&self) -> Result<T, Error> {
        if self.call.player.state.is_nil() {
            return Ok(T::default());
        }
        self.call
            .player
            .state
            .decode()
            .map_err(|e| Error::fault(fault_codes::INTERNAL, format!("plugin state: {e}")))
    }

    fn push(&mut self, effect: Effect) {
        self.call.player.apply(&effect);
        self.effects.push(effect);
    }

    /// Record an effect built by hand, for documents that are already encoded or effects no helper
    /// covers. Like the helpers, it also applies the change to [`Ctx::player`].
    pub fn push_effect(&mut self, effect: Effect) {
        self.push(effect);
    }

    /// Add to (or, negative, take from) a currency.
    pub fn add_currency(&mut self, name: &str, delta: i64) {
        if delta != 0 {
            self.push(Effect::AddCurrency {
                name: name.into(),
                delta,
            });
        }
    }

    /// Spend `amount` of a currency, or reject with `insufficient` and `message`.
    ///
    /// The message is only rendered when it is needed: pass `format_args!(..)` rather than
    /// `&format!(..)` to skip the formatting when the player can pay.
    pub fn spend(&mut self, name: &str, amount: i64, message: impl std::fmt::Display) -> Result<(), Error> {
        if amount < 0 || self.currency(name) < amount {
            return Err(Error::insufficient(message.to_string()));
        }
        self.add_currency(name, -amount);
        Ok(())
    }

    /// Add to (or, negative, take from) a counter.
    pub fn add_counter(&mut self, name: &str, delta: i64) {
        if delta != 0 {
            self.push(Effect::AddCounter {
                name: name.into(),
                delta,
            });
        }
    }

    /// Give `qty` of an item (nothing when `qty <= 0`).
    pub fn add_item(&mut self, item: &str, qty: i64) {
        if qty > 0 {
            self.push(Effect::AddItem {
                item: item.into(),
                qty,
            });
        }
    }

    /// Take `qty` of an item, or reject with `insufficient` and `message`.
    pub fn take_item(&mut self, item: &str, qty: i64, message: impl std::fmt::Display) -> Result<(), Error> {
        if qty < 0 || self.item(item) < qty {
            return Err(Error::insufficient(message.to_string()));
        }
        if qty > 0 {
            self.push(Effect::RemoveItem {
                item: item.into(),
                qty,
            });
        }
        Ok(())
    }

    /// Set a base stat.
    pub fn set_stat(&mut self, name: &str, value: f64) {
        self.push(Effect::SetStat {
            name: name.into(),
            value,
        });
    }

    /// Create an entity with a fresh id from the call's RNG; returns the id.
    pub fn create_entity<T: Serialize + ?Sized>(&mut self, kind: &str, data: &T) -> Result<String, Error> {
        let id = self.rng.id();
        let data = encode_doc(kind, data)?;
        self.push(Effect::CreateEntity {
            id: id.clone(),
            kind: kind.into(),
            data,
        });
        Ok(id)
    }

    /// Replace an entity's data.
    pub fn update_entity<T: Serialize + ?Sized>(&mut self, id: &str, data: &T) -> Result<(), Error> {
        let data = encode_doc(id, data)?;
        self.push(Effect::UpdateEntity { id: id.into(), data });
        Ok(())
    }

    /// Delete an entity.
    pub fn delete_entity(&mut self, id: &str) {
        self.push(Effect::DeleteEntity { id: id.into() });
    }

    /// Add or replace a buff.
    pub fn add_buff(&mut self, buff: Buff) {
        self.push(Effect::AddBuff { buff });
    }

    /// Remove a buff.
    pub fn remove_buff(&mut self, id: &str) {
        self.push(Effect::RemoveBuff { id: id.into() });
    }

    /// Replace the plugin's private state.
    pub fn set_state<T: Serialize + ?Sized>(&mut self, state: &T) -> Result<(), Error> {
        let data = encode_doc("state", state)?;
        self.push(Effect::SetState { data });
        Ok(())
    }

    /// Tell the player's clients about something, once the action is applied.
    pub fn emit<T: Serialize + ?Sized>(&mut self, topic: &str, data: &T) -> Result<(), Error> {
        self.emit_to(topic, Scope::Player, data)
    }

    /// Tell every connected player about something, once the action is applied.
    pub fn emit_global<T: Serialize + ?Sized>(&mut self, topic: &str, data: &T) -> Result<(), Error> {
        self.emit_to(topic, Scope::Global, data)
    }

    fn emit_to<T: Serialize + ?Sized>(&mut self, topic: &str, scope: Scope, data: &T) -> Result<(), Error> {
        let data = encode_doc(topic, data)?;
        self.push(Effect::Emit {
            event: crate::wire::Event {
                topic: topic.into(),
                scope,
                data,
            },
        });
        Ok(())
    }

    /// Set the player's score on a leaderboard.
    pub fn set_score(&mut self, board: &str, score: f64) {
        self.push(Effect::SetScore {
            board: board.into(),
            score,
        });
    }

    /// Set what the client is told (the last call wins).
    pub fn reply<T: Serialize + ?Sized>(&mut self, reply: &T) -> Result<(), Error> {
        self.reply = encode_doc("reply", reply)?;
        Ok(())
    }

    /// Set the reply to an already-encoded document (the last call wins).
    pub fn reply_doc(&mut self, reply: Doc) {
        self.reply = reply;
    }

    /// The effects recorded so far.
    pub fn effects(&self) -> &[Effect] {
        &self.effects
    }

    /// Consume the context into its effects and reply.
    pub fn finish(self) -> (Vec<Effect>, Doc) {
        let Self {
            call,
            content,
            rng,
            effects,
            reply,
        } = self;
        crate::discard((call, content, rng));
        (effects, reply)
    }
}

impl PlayerState {
    /// Apply one effect to this view of the state, as the host would (without the host's checks).
    pub fn apply(&mut self, effect: &Effect) {
        match effect {
            Effect::AddCurrency { name, delta } => *self.currencies.entry(name.clone()).or_default() += delta,
            Effect::AddCounter { name, delta } => *self.counters.entry(name.clone()).or_default() += delta,
            Effect::AddItem { item, qty } => *self.items.entry(item.clone()).or_default() += qty,
            Effect::RemoveItem { item, qty } => {
                let left = self.items.get(item).copied().unwrap_or(0) - qty;
                if left > 0 {
                    self.items.insert(item.clone(), left);
                } else {
                    self.items.remove(item);
                }
            }
            Effect::SetStat { name, value } => {
                self.stats.insert(name.clone(), *value);
            }
            Effect::CreateEntity { id, kind, data } => {
                self.entities.push(Entity {
                    id: id.clone(),
                    kind: kind.clone(),
                    data: data.clone(),
                });
            }
            Effect::UpdateEntity { id, data } => {
                if let Some(e) = self.entities.iter_mut().find(|e| &e.id == id) {
                    e.data = data.clone();
                }
            }
            Effect::DeleteEntity { id } => self.entities.retain(|e| &e.id != id),
            Effect::AddBuff { buff } => {
                self.buffs.retain(|b| b.id != buff.id);
                self.buffs.push(buff.clone());
            }
            Effect::RemoveBuff { id } => self.buffs.retain(|b| &b.id != id),
            Effect::SetState { data } => self.state = data.clone(),
            Effect::Emit { .. } | Effect::SetScore { .. } => {}
        }
    }
}
