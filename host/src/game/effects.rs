//! Checking a plugin's effects against the player's state before anything is written. One bad effect
//! rejects the whole outcome; what passes becomes [`CheckedEffects`], the only thing the store writes,
//! with every document already converted to JSON. The store's constraints and version guard remain the
//! last word.

use cauldron_sdk::wire::{Effect, PlayerState};

use crate::json::{check_text, doc_to_json};
use crate::store::{Balance, Change, CheckedEffects, Sections};

/// Most effects one outcome may carry.
pub const MAX_EFFECTS: usize = 1_000;
/// Largest single document (entity data, state, event payload, reply) in bytes.
pub const MAX_DOC_BYTES: usize = 256 << 10;
/// Longest name (currency, item, stat, entity id, topic, board).
pub const MAX_NAME: usize = 128;

fn name_ok(what: &str, name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_NAME || name.chars().any(char::is_control) {
        return Err(format!(
            "{what} `{name}` must be 1-{MAX_NAME} printable characters"
        ));
    }
    Ok(())
}

/// The document as JSON, if it is within the size limit and has a JSON form.
fn doc_ok(what: &str, doc: &cauldron_sdk::Doc) -> Result<serde_json::Value, String> {
    if doc.as_bytes().len() > MAX_DOC_BYTES {
        return Err(format!(
            "{what} is {} bytes, over the {MAX_DOC_BYTES}-byte limit",
            doc.as_bytes().len()
        ));
    }
    doc_to_json(what, doc)
}

/// Check a reply document: the same size and shape rules as the documents effects carry.
///
/// # Errors
/// What is wrong, naming the place in the reply.
pub fn validate_reply(reply: &cauldron_sdk::Doc) -> Result<serde_json::Value, String> {
    doc_ok("reply", reply)
}

/// Validate `effects` in order against `state`, the state the call was computed from with the
/// `loaded` sections in it, where `own_kinds` are the plugin's entity kinds and `kinds` every kind the
/// action may touch. Returns the changes to store, in order (events are not among them).
///
/// Balances and stacks are checked where they were loaded; where not, the store's statements check
/// them (a spend or removal changes no row unless enough is there, and an overflow is out of the
/// column's range), so a call need not read a section just to add to it. Entities an effect changes
/// or deletes must be loaded (the caller loads the action's kinds first).
///
/// # Errors
/// What is wrong, naming the first effect that fails.
pub fn validate(
    state: &PlayerState,
    loaded: &Sections,
    own_kinds: &[String],
    kinds: &[String],
    effects: &[Effect],
    now_ms: i64,
) -> Result<CheckedEffects, String> {
    if effects.len() > MAX_EFFECTS {
        return Err(format!(
            "{} effects, over the limit of {MAX_EFFECTS}",
            effects.len()
        ));
    }
    let allowed = |k: &str| own_kinds.iter().chain(kinds).any(|a| a == k);
    let mut sim = state.clone();
    let mut changes = Vec::with_capacity(effects.len());
    for (i, effect) in effects.iter().enumerate() {
        let at = |msg: String| format!("effect {i}: {msg}");
        let change = match effect {
            Effect::AddCurrency { name, delta } => {
                name_ok("currency", name).map_err(at)?;
                let now = sim.currencies.get(name).copied().unwrap_or(0);
                if loaded.currencies && now.checked_add(*delta).is_none_or(|v| v < 0) {
                    return Err(at(format!("currency `{name}` would go from {now} to below zero")));
                }
                Change::AddBalance {
                    balance: Balance::Currency,
                    name: name.clone(),
                    delta: *delta,
                }
            }
            Effect::AddCounter { name, delta } => {
                name_ok("counter", name).map_err(at)?;
                let now = sim.counters.get(name).copied().unwrap_or(0);
                if loaded.counters && now.checked_add(*delta).is_none_or(|v| v < 0) {
                    return Err(at(format!("counter `{name}` would go below zero")));
                }
                Change::AddBalance {
                    balance: Balance::Counter,
                    name: name.clone(),
                    delta: *delta,
                }
            }
            Effect::AddItem { item, qty } | Effect::RemoveItem { item, qty } => {
                name_ok("item", item).map_err(at)?;
                if *qty <= 0 {
                    return Err(at(format!("item `{item}` quantity {qty} must be positive")));
                }
                let held = sim.items.get(item).copied().unwrap_or(0);
                if let Effect::RemoveItem { .. } = effect {
                    if loaded.items && held < *qty {
                        return Err(at(format!("removes {qty} `{item}` but the player holds {held}")));
                    }
                    Change::RemoveItem {
                        item: item.clone(),
                        qty: *qty,
                    }
                } else {
                    if loaded.items && held.checked_add(*qty).is_none() {
                        return Err(at(format!("item `{item}` would overflow")));
                    }
                    Change::AddItem {
                        item: item.clone(),
                        qty: *qty,
                    }
                }
            }
            Effect::SetStat { name, value } => {
                name_ok("stat", name).map_err(at)?;
                if !value.is_finite() {
                    return Err(at(format!("stat `{name}` set to a non-finite value")));
                }
                Change::SetStat {
                    name: name.clone(),
                    value: *value,
                }
            }
            Effect::CreateEntity { id, kind, data } => {
                name_ok("entity id", id).map_err(at)?;
                if !allowed(kind) {
                    return Err(at(format!("creates an entity of undeclared kind `{kind}`")));
                }
                if sim.entities.iter().any(|e| &e.id == id) {
                    return Err(at(format!("entity id `{id}` is already used")));
                }
                Change::CreateEntity {
                    id: id.clone(),
                    kind: kind.clone(),
                    data: doc_ok("entity data", data).map_err(at)?,
                }
            }
            Effect::UpdateEntity { id, data } => {
                match sim.entities.iter().find(|e| &e.id == id) {
                    Some(e) if allowed(&e.kind) => {}
                    Some(e) => {
                        return Err(at(format!(
                            "changes entity `{id}` of undeclared kind `{}`",
                            e.kind
                        )));
                    }
                    None => {
                        return Err(at(format!(
                            "changes entity `{id}`, which the player does not own"
                        )));
                    }
                }
                Change::UpdateEntity {
                    id: id.clone(),
                    data: doc_ok("entity data", data).map_err(at)?,
                }
            }
            Effect::DeleteEntity { id } => match sim.entities.iter().find(|e| &e.id == id) {
                Some(e) if allowed(&e.kind) => Change::DeleteEntity { id: id.clone() },
                Some(e) => {
                    return Err(at(format!(
                        "deletes entity `{id}` of undeclared kind `{}`",
                        e.kind
                    )));
                }
                None => {
                    return Err(at(format!(
                        "deletes entity `{id}`, which the player does not own"
                    )));
                }
            },
            Effect::AddBuff { buff } => {
                name_ok("buff id", &buff.id).map_err(at)?;
                if buff.expires_ms <= now_ms {
                    return Err(at(format!("buff `{}` expires before it starts", buff.id)));
                }
                if buff
                    .modifiers
                    .iter()
                    .any(|m| !m.add.is_finite() || !m.mul.is_finite())
                {
                    return Err(at(format!("buff `{}` has a non-finite modifier", buff.id)));
                }
                for m in &buff.modifiers {
                    check_text("buff modifier stat", &m.stat).map_err(at)?;
                    check_text("buff modifier source", &m.source).map_err(at)?;
                }
                let modifiers = serde_json::to_value(&buff.modifiers)
                    .map_err(|e| at(format!("buff `{}`: {e}", buff.id)))?;
                Change::AddBuff {
                    id: buff.id.clone(),
                    modifiers,
                    expires_ms: buff.expires_ms,
                }
            }
            Effect::RemoveBuff { id } => {
                name_ok("buff id", id).map_err(at)?;
                Change::RemoveBuff { id: id.clone() }
            }
            Effect::SetState { data } => Change::SetState {
                data: doc_ok("plugin state", data).map_err(at)?,
            },
            Effect::Emit { event } => {
                name_ok("event topic", &event.topic).map_err(at)?;
                doc_ok("event data", &event.data).map_err(at)?;
                // Events are published after commit and change no state: nothing to store.
                continue;
            }
            Effect::SetScore { board, score } => {
                name_ok("leaderboard", board).map_err(at)?;
                if !score.is_finite() {
                    return Err(at(format!("score on `{board}` is not finite")));
                }
                Change::SetScore {
                    board: board.clone(),
                    score: *score,
                }
            }
        };
        sim.apply(effect);
        changes.push(change);
    }
    Ok(CheckedEffects::new(changes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cauldron_sdk::Doc;
    use cauldron_sdk::wire::Entity;

    fn state() -> PlayerState {
        let mut s = PlayerState::default();
        s.items.insert("herb".into(), 2);
        s.currencies.insert("gold".into(), 5);
        s.entities.push(Entity {
            id: "e1".into(),
            kind: "pet".into(),
            data: Doc::nil(),
        });
        s.entities.push(Entity {
            id: "e2".into(),
            kind: "sword".into(),
            data: Doc::nil(),
        });
        s
    }

    fn check(effects: &[Effect]) -> Result<CheckedEffects, String> {
        validate(&state(), &Sections::all(), &["pet".into()], &[], effects, 0)
    }

    #[test]
    fn checked_effects_carry_json_documents_and_leave_events_out() {
        let effects = [
            Effect::CreateEntity {
                id: "n".into(),
                kind: "pet".into(),
                data: crate::json::json_to_doc(&serde_json::json!({"name": "Mochi", "lvl": 1})),
            },
            Effect::Emit {
                event: cauldron_sdk::wire::Event {
                    topic: "born".into(),
                    scope: cauldron_sdk::wire::Scope::Player,
                    data: Doc::nil(),
                },
            },
            Effect::AddCurrency {
                name: "gold".into(),
                delta: -5,
            },
        ];
        let expected = CheckedEffects::new(vec![
            Change::CreateEntity {
                id: "n".into(),
                kind: "pet".into(),
                data: serde_json::json!({"name": "Mochi", "lvl": 1}),
            },
            Change::AddBalance {
                balance: Balance::Currency,
                name: "gold".into(),
                delta: -5,
            },
        ]);
        assert_eq!(check(&effects).unwrap(), expected);
    }

    #[test]
    fn balances_are_checked_cumulatively() {
        let take = Effect::RemoveItem {
            item: "herb".into(),
            qty: 1,
        };
        assert!(check(&[take.clone(), take.clone()]).is_ok());
        assert!(
            check(&[take.clone(), take.clone(), take])
                .unwrap_err()
                .contains("effect 2")
        );
        assert!(
            check(&[Effect::AddCurrency {
                name: "gold".into(),
                delta: -6
            }])
            .is_err()
        );
        assert!(
            check(&[Effect::AddItem {
                item: "herb".into(),
                qty: 0
            }])
            .is_err()
        );
    }

    #[test]
    fn entities_must_be_owned_and_of_declared_kinds() {
        assert!(check(&[Effect::DeleteEntity { id: "e1".into() }]).is_ok());
        assert!(
            check(&[Effect::DeleteEntity { id: "e2".into() }])
                .unwrap_err()
                .contains("undeclared kind")
        );
        assert!(
            check(&[Effect::DeleteEntity { id: "nope".into() }])
                .unwrap_err()
                .contains("does not own")
        );
        let create = |id: &str, kind: &str| Effect::CreateEntity {
            id: id.into(),
            kind: kind.into(),
            data: Doc::nil(),
        };
        assert!(check(&[create("n", "pet")]).is_ok());
        assert!(
            check(&[create("e1", "pet")])
                .unwrap_err()
                .contains("already used")
        );
        assert!(check(&[create("n", "dragon")]).is_err());
        assert!(
            validate(
                &state(),
                &Sections::all(),
                &["pet".into()],
                &["sword".into()],
                &[Effect::DeleteEntity { id: "e2".into() }],
                0
            )
            .is_ok()
        );
    }

    #[test]
    fn documents_must_be_json_shaped_and_numbers_finite() {
        let bin = Doc::from_bytes(vec![0xc4, 1, 0]);
        assert!(
            check(&[Effect::SetState { data: bin }])
                .unwrap_err()
                .contains("JSON")
        );
        assert!(
            check(&[Effect::SetStat {
                name: "x".into(),
                value: f64::NAN
            }])
            .is_err()
        );
        assert!(
            check(&[Effect::SetScore {
                board: "".into(),
                score: 1.0
            }])
            .is_err()
        );
    }
}
