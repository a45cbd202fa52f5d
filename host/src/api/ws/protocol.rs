//! The messages on `/ws`: JSON text frames, each an object with a `type`.
//!
//! Client → server ([`ClientMsg`]): `action` (the same pipeline as `POST /api/v1/actions/...`) and
//! `ping` (heartbeat). Anything else parses to [`ClientMsg::Unknown`] and gets an `error` reply.
//!
//! Server → client ([`ServerMsg`]): `action_result`, `event`, `presence`, `plugin_reloaded`,
//! `plugin_unloaded`, `pong`, `error`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::api::ApiError;
use crate::api::actions::ActionReplyView;
use crate::api::error::ErrorInfo;
use crate::game::ActionReply;

/// One message from a client.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientMsg {
    /// Run an action.
    Action(ActionMsg),
    /// Heartbeat: answered with `pong`.
    Ping,
    /// Not a message we know; answered with an `error` naming why.
    Unknown {
        /// The message's `id`, if it had one, so the client can match the error.
        id: Option<Value>,
        /// What was wrong.
        reason: String,
    },
}

/// `{"type":"action","id":..,"plugin":..,"action":..,"params":{..},"idempotency_key":..}`.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionMsg {
    /// The client's request id (any JSON value), echoed in the `action_result`.
    pub id: Value,
    /// Plugin name.
    pub plugin: String,
    /// Action name.
    pub action: String,
    /// Params (an object; absent means `{}`).
    pub params: Value,
    /// Like the `Idempotency-Key` header.
    pub idempotency_key: Option<String>,
}

fn empty_object() -> Value {
    Value::Object(serde_json::Map::new())
}

/// The known shapes, tagged by `type`.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Known {
    Action(ActionMsgFields),
    Ping {},
}

/// [`ActionMsg`] without `type` (serde's internally tagged enums hand the rest of the map over).
#[derive(Deserialize)]
struct ActionMsgFields {
    id: Value,
    plugin: String,
    action: String,
    #[serde(default = "empty_object")]
    params: Value,
    #[serde(default)]
    idempotency_key: Option<String>,
}

impl ClientMsg {
    /// Parse one text frame. Never fails: anything unrecognised is [`ClientMsg::Unknown`].
    pub fn parse(text: &str) -> Self {
        let value: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => {
                return Self::Unknown {
                    id: None,
                    reason: format!("not valid JSON: {e}"),
                };
            }
        };
        let id = value.get("id").cloned();
        let Some(kind) = value.get("type").and_then(Value::as_str).map(str::to_owned) else {
            return Self::Unknown {
                id,
                reason: "a message must be a JSON object with a string `type`".to_owned(),
            };
        };
        if !matches!(kind.as_str(), "action" | "ping") {
            return Self::Unknown {
                id,
                reason: format!("unknown message type `{kind}`; expected `action` or `ping`"),
            };
        }
        match serde_json::from_value::<Known>(value) {
            Ok(Known::Ping {}) => Self::Ping,
            Ok(Known::Action(a)) => Self::Action(ActionMsg {
                id: a.id,
                plugin: a.plugin,
                action: a.action,
                params: a.params,
                idempotency_key: a.idempotency_key,
            }),
            Err(e) => Self::Unknown {
                id,
                reason: format!("malformed `{kind}` message: {e}"),
            },
        }
    }
}

/// One message to a client.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMsg {
    /// The answer to an `action`: `reply` on success, else `error` and the HTTP status the same
    /// failure would have had.
    ActionResult {
        /// The request's id.
        id: Value,
        /// 200, or the HTTP status of the error.
        status: u16,
        /// The action's reply, on success.
        #[serde(skip_serializing_if = "Option::is_none")]
        reply: Option<ActionReplyView>,
        /// The error, as HTTP renders it.
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<ErrorInfo>,
    },
    /// How many players are online (sent on connect and when it changes).
    Presence {
        /// Players online.
        online: u64,
    },
    /// A plugin version started serving (upload, hot reload or rollback).
    PluginReloaded {
        /// Plugin name.
        name: String,
        /// Version now serving.
        version: String,
    },
    /// A plugin stopped serving.
    PluginUnloaded {
        /// Plugin name.
        name: String,
    },
    /// The answer to `ping`.
    Pong,
    /// A message the server could not act on.
    Error {
        /// The message's id, if it had one.
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<Value>,
        /// Code and message.
        error: ErrorInfo,
    },
}

impl ServerMsg {
    /// The `action_result` for `id` and the pipeline's outcome.
    pub fn action_result(id: Value, outcome: Result<ActionReply, ApiError>) -> Self {
        match outcome {
            Ok(reply) => Self::ActionResult {
                id,
                status: 200,
                reply: Some(reply.into()),
                error: None,
            },
            Err(err) => Self::ActionResult {
                id,
                status: err.status().as_u16(),
                error: Some(ErrorInfo {
                    code: err.code().to_owned(),
                    message: err.to_string(),
                }),
                reply: None,
            },
        }
    }

    /// The JSON text of this message.
    pub fn to_text(&self) -> String {
        // Serialising these types cannot fail (string keys, no non-finite floats are produced by the
        // host's own JSON values); the fallback keeps the socket speaking JSON regardless.
        serde_json::to_string(self).unwrap_or_else(|_| {
            r#"{"type":"error","error":{"code":"internal","message":"internal error"}}"#.to_owned()
        })
    }
}

/// An `event` message around a bus payload (the JSON of a `game::EventOut`), without re-parsing it.
/// `None` if the payload is not UTF-8 (never the case for what the game publishes).
pub fn event_text(payload: &[u8]) -> Option<String> {
    let json = std::str::from_utf8(payload).ok()?;
    Some(format!(r#"{{"type":"event","event":{json}}}"#))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_actions_and_pings() {
        assert_eq!(ClientMsg::parse(r#"{"type":"ping"}"#), ClientMsg::Ping);
        let msg = ClientMsg::parse(r#"{"type":"action","id":7,"plugin":"p","action":"a"}"#);
        assert_eq!(
            msg,
            ClientMsg::Action(ActionMsg {
                id: json!(7),
                plugin: "p".into(),
                action: "a".into(),
                params: json!({}),
                idempotency_key: None,
            })
        );
    }

    #[test]
    fn anything_else_is_unknown_with_the_id_when_there_is_one() {
        for (text, id) in [
            ("not json", None),
            ("[1,2]", None),
            (r#"{"id":3}"#, Some(json!(3))),
            (r#"{"type":"dance","id":"x"}"#, Some(json!("x"))),
            (r#"{"type":"action","id":1,"plugin":5}"#, Some(json!(1))),
            (r#"{"type":"action","plugin":"p","action":"a"}"#, None),
        ] {
            match ClientMsg::parse(text) {
                ClientMsg::Unknown { id: got, reason } => {
                    assert_eq!(got, id, "{text}");
                    assert!(!reason.is_empty());
                }
                other => panic!("{text} parsed as {other:?}"),
            }
        }
    }

    #[test]
    fn event_frames_embed_the_payload() {
        let text = event_text(br#"{"topic":"t"}"#).expect("utf-8");
        let v: Value = serde_json::from_str(&text).expect("json");
        assert_eq!(v, json!({"type":"event","event":{"topic":"t"}}));
    }
}
