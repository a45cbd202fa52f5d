//! Extractors that speak our error format: [`AppJson`] (JSON bodies), [`AppQuery`] (query strings),
//! [`AppPath`] (path segments), [`Body`] (raw bodies), [`Params`] (an action's params: JSON or an
//! empty body), [`Auth`] (the bearer token) and [`IdempotencyKey`]. axum's own extractors answer
//! their rejections in text/plain; every one a handler uses is wrapped here, so a client always gets
//! `{"error":{"code","message"}}` with a stable code.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection, PathRejection, QueryRejection};
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{FromRef, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use utoipa::openapi::schema::{AnyOfBuilder, ArrayBuilder, ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::{Ref, RefOr};

use super::error::ApiError;
use crate::auth::Identity;
use crate::state::AuthState;

/// Longest accepted `Idempotency-Key`.
pub const IDEMPOTENCY_KEY_MAX: usize = 128;

/// `axum::Json` whose rejections are [`ApiError`]s: malformed JSON is a 400 `bad_json`, a body over
/// the limit a 413, a missing JSON content type a 415.
#[derive(Debug, Clone, Copy, Default, FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct AppJson<T>(pub T);

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => Self::PayloadTooLarge,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                Self::UnsupportedMediaType("send JSON with `Content-Type: application/json`".to_owned())
            }
            _ => Self::bad_request("bad_json", rejection.body_text()),
        }
    }
}

impl From<BytesRejection> for ApiError {
    fn from(rejection: BytesRejection) -> Self {
        match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => Self::PayloadTooLarge,
            _ => Self::bad_request("bad_body", rejection.body_text()),
        }
    }
}

/// `axum::extract::Query` whose rejection is a 400 `bad_query` naming what did not parse (a value of
/// the wrong type, a number out of its type's range, a missing required parameter).
#[derive(Debug, Clone, Copy, Default, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct AppQuery<T>(pub T);

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        Self::bad_request("bad_query", rejection.body_text())
    }
}

/// `axum::extract::Path` whose rejection is a 400 `bad_path` (a segment that is not valid UTF-8
/// once percent-decoded, or not of the expected type). A route whose pattern does not fit the
/// extractor is the server's fault: 500.
#[derive(Debug, Clone, Copy, Default, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct AppPath<T>(pub T);

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        if rejection.status().is_server_error() {
            Self::internal(rejection.body_text())
        } else {
            Self::bad_request("bad_path", rejection.body_text())
        }
    }
}

/// The raw request body, with [`ApiError`] rejections (413 `payload_too_large` over the route's
/// limit, 400 `bad_body` when it cannot be read).
#[derive(Debug, Clone)]
pub struct Body(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(Bytes::from_request(req, state).await?))
    }
}

/// `WebSocketUpgrade` whose rejection is an [`ApiError`]: a request to a WebSocket route that is not
/// a WebSocket handshake (no `Connection: upgrade`, no `Upgrade: websocket`, a missing key or an
/// unsupported version) is a 400 `bad_upgrade`; a connection that cannot be upgraded a 426.
#[derive(Debug)]
pub struct Upgrade(pub WebSocketUpgrade);

impl<S: Send + Sync> FromRequestParts<S> for Upgrade {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(WebSocketUpgrade::from_request_parts(parts, state).await?))
    }
}

impl From<WebSocketUpgradeRejection> for ApiError {
    fn from(rejection: WebSocketUpgradeRejection) -> Self {
        match rejection {
            WebSocketUpgradeRejection::MethodNotGet(_) | WebSocketUpgradeRejection::MethodNotConnect(_) => {
                Self::MethodNotAllowed("open the WebSocket with GET".to_owned())
            }
            WebSocketUpgradeRejection::ConnectionNotUpgradable(_) => {
                Self::UpgradeRequired("this connection cannot be upgraded to a WebSocket".to_owned())
            }
            other => Self::bad_request(
                "bad_upgrade",
                format!("not a WebSocket handshake: {}", other.body_text()),
            ),
        }
    }
}

/// An action's params: the JSON body, or `{}` when the body is empty (so `POST` with no body works;
/// whitespace alone is not JSON, and is a 400 `bad_json` like any other text that is not).
/// Documents nested deeper than the ABI's limit, or holding a NUL in a string or key, are a 400
/// `bad_params` naming the place.
#[derive(Debug, Clone)]
pub struct Params(pub serde_json::Value);

impl<S: Send + Sync> FromRequest<S> for Params {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await?;
        if bytes.is_empty() {
            return Ok(Self(serde_json::Value::Object(serde_json::Map::new())));
        }
        let params: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::bad_request("bad_json", format!("the body is not valid JSON: {e}")))?;
        crate::json::check_json("params", &params).map_err(|m| ApiError::bad_request("bad_params", m))?;
        Ok(Self(params))
    }
}

/// The `pattern` of text that may not hold a NUL (U+0000), in the OpenAPI document.
pub const NO_NUL_PATTERN: &str = "^[^\\u0000]*$";

/// Text without a NUL, as a schema (no `type`: it also serves as `propertyNames`).
fn no_nul() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(SchemaType::AnyValue)
        .pattern(Some(NO_NUL_PATTERN))
}

/// Any JSON value whose strings and keys hold no NUL: the values inside [`Params`], as the
/// `JsonValue` component (it refers to itself).
fn json_value_schema() -> RefOr<Schema> {
    let value = || Ref::from_schema_name("JsonValue");
    AnyOfBuilder::new()
        .description(Some(
            "Any JSON value without a NUL character (U+0000) in a string or key.",
        ))
        .item(ObjectBuilder::new().schema_type(Type::Null))
        .item(ObjectBuilder::new().schema_type(Type::Boolean))
        .item(ObjectBuilder::new().schema_type(Type::Number))
        .item(no_nul().schema_type(Type::String))
        .item(ArrayBuilder::new().items(value()))
        .item(
            ObjectBuilder::new()
                .schema_type(Type::Object)
                .property_names(Some(no_nul()))
                .additional_properties(Some(value())),
        )
        .into()
}

impl utoipa::PartialSchema for Params {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(format!(
                "An action's params: a JSON object, nested at most {} levels deep, with no NUL \
                 character (U+0000) in a string or key (else 400 `bad_params`). An empty body or \
                 `null` means `{{}}`. Which keys an action takes, their types and whether they are \
                 required are in its manifest's `params` (see the catalog); params the action cannot \
                 use are refused by it with 400 `bad_params`.",
                crate::json::MAX_DOC_DEPTH
            )))
            .property_names(Some(no_nul()))
            .additional_properties(Some(Ref::from_schema_name("JsonValue")))
            .into()
    }
}

impl utoipa::ToSchema for Params {
    fn name() -> std::borrow::Cow<'static, str> {
        "Params".into()
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push(("JsonValue".to_owned(), json_value_schema()));
    }
}

/// The authenticated caller: a valid, unexpired, unrevoked bearer token.
#[derive(Debug, Clone)]
pub struct Auth(pub Identity);

impl<S> FromRequestParts<S> for Auth
where
    AuthState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .ok_or_else(|| ApiError::Unauthorized("log in first: no Authorization header".to_owned()))?;
        let token = header.to_str().ok().and_then(bearer).ok_or_else(|| {
            ApiError::Unauthorized("the Authorization header must be `Bearer <token>`".to_owned())
        })?;
        AuthState::from_ref(state).authenticate(token).await.map(Self)
    }
}

/// The bearer token from an `Authorization` header value, if it has the `Bearer <token>` shape.
pub(crate) fn bearer(value: &str) -> Option<&str> {
    value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

impl AuthState {
    /// Check a token: signature, expiry, and not revoked by a logout. Shared by [`Auth`], the
    /// WebSocket upgrade and the admin credential. Revocations are answered from this host's
    /// in-memory list ([`AuthState::revoked`]); only while it has never been loaded does the
    /// database answer.
    ///
    /// # Errors
    /// 401 for a bad, expired or revoked token; 503 if the list was never loaded and the database
    /// cannot be read.
    pub(crate) async fn authenticate(&self, token: &str) -> Result<Identity, ApiError> {
        let identity = self
            .keys
            .verify(token)
            .map_err(|e| ApiError::Unauthorized(e.to_string()))?;
        let revoked = match self.revoked.contains(&identity.jti) {
            Some(revoked) => revoked,
            None => self.store.is_token_revoked(&identity.jti).await?,
        };
        if revoked {
            return Err(ApiError::Unauthorized(
                "the token was revoked by a logout; log in again".to_owned(),
            ));
        }
        Ok(identity)
    }
}

/// An idempotency key as sent (header or WebSocket field): 1 to 128 visible ASCII characters.
///
/// # Errors
/// 400 `bad_idempotency_key`.
pub(crate) fn check_idempotency_key(key: &str) -> Result<String, ApiError> {
    let key = key.trim();
    if !key.is_empty() && key.len() <= IDEMPOTENCY_KEY_MAX && key.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(key.to_owned())
    } else {
        Err(bad_idempotency_key())
    }
}

fn bad_idempotency_key() -> ApiError {
    ApiError::bad_request(
        "bad_idempotency_key",
        format!("Idempotency-Key must be 1 to {IDEMPOTENCY_KEY_MAX} visible ASCII characters"),
    )
}

/// The optional `Idempotency-Key` header: 1 to 128 visible ASCII characters.
#[derive(Debug, Clone)]
pub struct IdempotencyKey(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let Some(value) = parts.headers.get("idempotency-key") else {
            return Ok(Self(None));
        };
        let key = value
            .to_str()
            .map_err(|_| bad_idempotency_key())
            .and_then(check_idempotency_key)?;
        Ok(Self(Some(key)))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "an unwrap is an assertion in a test")]

    use axum::body::Body;
    use proptest::prelude::*;
    use serde_json::Value;

    use super::*;

    fn json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            "\\PC{0,8}".prop_map(Value::String),
            Just(Value::String("a\u{0}b".into())),
        ];
        leaf.prop_recursive(8, 64, 5, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                proptest::collection::btree_map(
                    prop_oneof!["[a-z]{0,6}", Just("k\u{0}".to_owned())],
                    inner,
                    0..5
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// JSON text: valid documents (now and then wrapped deep), the same with a byte changed, or noise.
    fn valid() -> impl Strategy<Value = Vec<u8>> {
        (json(), 0usize..140).prop_map(|(v, wrap)| {
            let mut text = serde_json::to_string(&v).unwrap();
            if wrap > 50 {
                text = format!("{}{text}{}", "{\"w\":".repeat(wrap), "}".repeat(wrap));
            }
            text.into_bytes()
        })
    }

    fn body() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            6 => valid(),
            2 => (valid(), any::<prop::sample::Index>(), any::<u8>()).prop_map(|(mut b, at, byte)| {
                if !b.is_empty() {
                    let i = at.index(b.len());
                    b[i] = byte;
                }
                b
            }),
            1 => proptest::collection::vec(any::<u8>(), 0..48),
            1 => Just(br#"{"a":"\ud800"}"#.to_vec()),
        ]
    }

    #[test]
    fn params_schemas_are_what_they_say() {
        let doc = serde_json::to_value(<Params as utoipa::PartialSchema>::schema()).unwrap();
        assert_eq!(doc["type"], "object");
        assert_eq!(doc["propertyNames"]["pattern"], NO_NUL_PATTERN);
        assert_eq!(
            doc["additionalProperties"]["$ref"],
            "#/components/schemas/JsonValue"
        );
        let value = serde_json::to_value(json_value_schema()).unwrap();
        assert_eq!(value["anyOf"].as_array().map(Vec::len), Some(6), "{value}");
        assert_eq!(value["anyOf"][3]["pattern"], NO_NUL_PATTERN);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(10_000))]

        #[test]
        fn any_body_is_params_or_a_client_error(bytes in body()) {
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let request = Request::new(Body::from(bytes));
            match rt.block_on(Params::from_request(request, &())) {
                Ok(Params(value)) => {
                    prop_assert!(crate::json::check_json("params", &value).is_ok());
                }
                Err(e) => {
                    prop_assert!(e.status().is_client_error(), "{e:?}");
                    prop_assert!(matches!(e.code(), "bad_json" | "bad_params" | "bad_body"), "{e:?}");
                }
            }
        }
    }
}
