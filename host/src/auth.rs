//! Accounts' credentials: password rules and argon2id hashing, username rules, and HS256 tokens.
//!
//! No HTTP here: `api::auth` turns these into routes and the bearer extractor. Hashing and verifying
//! are CPU-heavy by design (tens of milliseconds), so they run on the blocking pool, never on the async
//! workers, and only as many at once as [`HashSlots`] allows.

use std::sync::{Arc, LazyLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::store::Role;

/// Shortest username, in characters.
pub const USERNAME_MIN: usize = 3;
/// Longest username, in characters.
pub const USERNAME_MAX: usize = 24;
/// Shortest password, in characters.
pub const PASSWORD_MIN: usize = 8;
/// Longest password, in characters (argon2 would take more, but a cap bounds the work per request).
pub const PASSWORD_MAX: usize = 128;

/// Whether `c` is a CJK ideograph (the game's players use Chinese names).
fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x2A6DF | 0x2A700..=0x2EBEF | 0x30000..=0x3134F)
}

/// Check a username: 3–24 characters, each an ASCII letter or digit, `_`, or a CJK ideograph.
///
/// # Errors
/// A message for the player saying which rule failed.
pub fn check_username(name: &str) -> Result<(), String> {
    let len = name.chars().count();
    if !(USERNAME_MIN..=USERNAME_MAX).contains(&len) {
        return Err(format!(
            "username must be {USERNAME_MIN} to {USERNAME_MAX} characters long (got {len})"
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || is_cjk(*c)))
    {
        return Err(format!(
            "username may contain only letters A-Z, digits, `_` and Chinese characters (not `{}`)",
            c.escape_default()
        ));
    }
    Ok(())
}

/// Check a password: 8–128 characters, no NUL.
///
/// # Errors
/// A message for the player saying which rule failed.
pub fn check_password(password: &str) -> Result<(), String> {
    let len = password.chars().count();
    if len < PASSWORD_MIN {
        return Err(format!(
            "password must be at least {PASSWORD_MIN} characters long"
        ));
    }
    if len > PASSWORD_MAX {
        return Err(format!("password must be at most {PASSWORD_MAX} characters long"));
    }
    crate::json::check_text("password", password)
}

/// Why a password could not be hashed or checked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HashError {
    /// Every hashing slot stayed taken for the whole wait: the caller should answer 429.
    #[error("every password-hashing slot is busy")]
    Busy,
    /// The blocking pool is gone or argon2 failed internally.
    #[error("password hashing failed: {0}")]
    Failed(String),
}

/// How many password hashes (argon2id, tens of milliseconds of CPU each) run at once, host-wide.
///
/// Registration and login each take a slot for their one hash. Without a ceiling a flood of them
/// fills every core and every other request waits behind it; with one, the rest of the CPU stays
/// for the game, and a request that cannot get a slot within the configured wait is refused (the
/// caller answers 429) instead of joining a queue without end. Waiting requests get slots in
/// arrival order.
#[derive(Debug, Clone)]
pub struct HashSlots {
    slots: Arc<Semaphore>,
    concurrency: usize,
    wait: Duration,
}

impl HashSlots {
    /// `concurrency` hashes at once (at least 1); a caller waits up to `wait` for a slot.
    pub fn new(concurrency: usize, wait: Duration) -> Self {
        let concurrency = concurrency.clamp(1, Semaphore::MAX_PERMITS);
        Self {
            slots: Arc::new(Semaphore::new(concurrency)),
            concurrency,
            wait,
        }
    }

    /// Slots not in use now.
    pub fn available(&self) -> usize {
        self.slots.available_permits()
    }

    /// How many hashes may run at once.
    pub fn concurrency(&self) -> usize {
        self.concurrency
    }

    /// A slot, within the wait.
    async fn slot(&self) -> Result<OwnedSemaphorePermit, HashError> {
        match tokio::time::timeout(self.wait, Arc::clone(&self.slots).acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            // The semaphore is never closed; a closed one refuses like a full one.
            Ok(Err(_)) | Err(_) => Err(HashError::Busy),
        }
    }

    /// Hash a password with argon2id (the crate's default parameters, OWASP's minimum) on the
    /// blocking pool, in a slot.
    ///
    /// # Errors
    /// [`HashError::Busy`] if no slot came free in time; [`HashError::Failed`] if the blocking pool
    /// is gone or argon2 fails internally.
    pub async fn hash(&self, password: String) -> Result<String, HashError> {
        let slot = self.slot().await?;
        // The slot moves into the blocking task: a request abandoned mid-hash (client gone, request
        // timeout) frees it only when the hash really ends.
        tokio::task::spawn_blocking(move || {
            let _slot = slot;
            let salt = SaltString::generate(&mut OsRng);
            Argon2::default()
                .hash_password(password.as_bytes(), &salt)
                .map(|h| h.to_string())
                .map_err(|e| HashError::Failed(e.to_string()))
        })
        .await
        .map_err(|e| HashError::Failed(e.to_string()))?
    }

    /// Whether `password` matches `hash` (or, with `None`, spend the same time and say no), on the
    /// blocking pool, in a slot. A malformed stored hash never matches.
    ///
    /// # Errors
    /// [`HashError::Busy`] if no slot came free in time; [`HashError::Failed`] if the blocking pool
    /// is gone.
    pub async fn verify(&self, password: String, hash: Option<String>) -> Result<bool, HashError> {
        let slot = self.slot().await?;
        tokio::task::spawn_blocking(move || {
            let _slot = slot;
            let known = hash.is_some();
            let hash = hash.unwrap_or_else(|| DUMMY_HASH.clone());
            let Ok(parsed) = PasswordHash::new(&hash) else {
                return false;
            };
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
                && known
        })
        .await
        .map_err(|e| HashError::Failed(e.to_string()))
    }
}

/// A hash of a password nobody has, verified when the username is unknown, so a login for an unknown
/// name takes as long as one for a known name and does not reveal which names exist.
static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(b"no account has this password", &salt)
        .map(|h| h.to_string())
        .unwrap_or_default()
});

/// What a token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The account id, as a string (JWT's `sub`).
    pub sub: String,
    /// The account's player id.
    pub pid: i64,
    /// `player` or `admin`.
    pub role: String,
    /// Token id, for revocation.
    pub jti: String,
    /// Issued at, seconds since the epoch.
    pub iat: i64,
    /// Expires at, seconds since the epoch.
    pub exp: i64,
}

/// Who a valid token belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Account id.
    pub account_id: i64,
    /// Player id.
    pub player_id: i64,
    /// Role.
    pub role: Role,
    /// Token id.
    pub jti: String,
    /// Expiry, ms since the epoch.
    pub expires_ms: i64,
}

/// Why a token was refused. The message is safe to show.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Past its expiry.
    #[error("the token has expired; log in again")]
    Expired,
    /// Bad signature, bad shape, wrong algorithm.
    #[error("the token is not valid")]
    Invalid,
}

/// A freshly issued token.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The JWT.
    pub token: String,
    /// Its expiry, ms since the epoch.
    pub expires_ms: i64,
}

/// The HS256 keys and token lifetime.
#[derive(Clone)]
pub struct TokenKeys {
    inner: Arc<KeysInner>,
}

struct KeysInner {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: Duration,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKeys")
            .field("ttl", &self.inner.ttl)
            .finish_non_exhaustive()
    }
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

impl TokenKeys {
    /// Keys from the secret, issuing tokens valid for `ttl`.
    pub fn new(secret: &[u8], ttl: Duration) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        // A few seconds for clocks that disagree between hosts; not more, so expiry means something.
        validation.leeway = 5;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Self {
            inner: Arc::new(KeysInner {
                encoding: EncodingKey::from_secret(secret),
                decoding: DecodingKey::from_secret(secret),
                validation,
                ttl,
            }),
        }
    }

    /// A token for this account and player.
    ///
    /// # Errors
    /// Only if signing fails (it does not for HMAC keys).
    pub fn issue(&self, account_id: i64, player_id: i64, role: Role) -> Result<Issued, String> {
        let iat = now_secs();
        let exp = iat.saturating_add(i64::try_from(self.inner.ttl.as_secs()).unwrap_or(i64::MAX / 2));
        let jti = hex::encode(rand::random::<[u8; 16]>());
        let claims = Claims {
            sub: account_id.to_string(),
            pid: player_id,
            role: role.as_str().to_owned(),
            jti,
            iat,
            exp,
        };
        let token = self.sign(&claims)?;
        Ok(Issued {
            token,
            expires_ms: exp.saturating_mul(1000),
        })
    }

    /// Sign arbitrary claims (tests make expired tokens with it).
    ///
    /// # Errors
    /// Only if signing fails.
    pub fn sign(&self, claims: &Claims) -> Result<String, String> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.inner.encoding)
            .map_err(|e| e.to_string())
    }

    /// Check a token's signature, algorithm and expiry, and read who it belongs to. Revocation is the
    /// caller's check (it needs the store).
    ///
    /// # Errors
    /// [`TokenError`].
    pub fn verify(&self, token: &str) -> Result<Identity, TokenError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.inner.decoding, &self.inner.validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid,
            })?;
        let c = data.claims;
        let account_id = c.sub.parse().map_err(|_| TokenError::Invalid)?;
        let role = Role::parse(&c.role).ok_or(TokenError::Invalid)?;
        Ok(Identity {
            account_id,
            player_id: c.pid,
            role,
            jti: c.jti,
            expires_ms: c.exp.saturating_mul(1000),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        for ok in ["abc", "player_1", "李逍遥", "Zhang三", &"a".repeat(24)] {
            assert_eq!(check_username(ok), Ok(()), "{ok}");
        }
        for bad in [
            "ab",
            "",
            &"a".repeat(25),
            "has space",
            "dash-ed",
            "émile",
            "a\u{0}b",
        ] {
            assert!(check_username(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn passwords() {
        assert!(check_password("1234567").is_err());
        assert!(check_password("12345678").is_ok());
        assert!(check_password(&"x".repeat(129)).is_err());
    }

    #[tokio::test]
    async fn hashing_waits_for_a_slot_then_refuses() {
        let slots = HashSlots::new(1, Duration::from_millis(50));
        let hash = slots.hash("correct horse".to_owned()).await.expect("hash");
        assert_eq!(slots.available(), 1, "the slot is back once the hash is done");
        assert_eq!(
            slots.verify("correct horse".to_owned(), Some(hash.clone())).await,
            Ok(true)
        );
        assert_eq!(
            slots.verify("wrong horse".to_owned(), Some(hash.clone())).await,
            Ok(false)
        );
        assert_eq!(slots.verify("correct horse".to_owned(), None).await, Ok(false));
        // The one slot taken: both refuse after the wait.
        let held = Arc::clone(&slots.slots).acquire_owned().await.expect("slot");
        assert_eq!(slots.hash("another one".to_owned()).await, Err(HashError::Busy));
        assert_eq!(
            slots.verify("correct horse".to_owned(), Some(hash.clone())).await,
            Err(HashError::Busy)
        );
        // Freed within the wait: the waiting request gets it (a long wait here, so a slow machine
        // cannot turn this into a refusal).
        let patient = HashSlots {
            wait: Duration::from_secs(60),
            ..slots.clone()
        };
        let waiting = tokio::spawn({
            let slots = patient;
            async move { slots.verify("correct horse".to_owned(), Some(hash)).await }
        });
        drop(held);
        assert_eq!(waiting.await.expect("task"), Ok(true));
    }

    #[test]
    fn tokens_round_trip_and_refuse_tampering() {
        let keys = TokenKeys::new(b"0123456789abcdef0123456789abcdef", Duration::from_secs(60));
        let issued = keys.issue(7, 9, Role::Player).expect("sign");
        let who = keys.verify(&issued.token).expect("valid");
        assert_eq!((who.account_id, who.player_id, who.role), (7, 9, Role::Player));
        let other = TokenKeys::new(b"another key, just as long as the first", Duration::from_secs(60));
        assert_eq!(other.verify(&issued.token), Err(TokenError::Invalid));
        let mut expired = Claims {
            sub: "7".into(),
            pid: 9,
            role: "player".into(),
            jti: "x".into(),
            iat: 0,
            exp: now_secs() - 3600,
        };
        assert_eq!(
            keys.verify(&keys.sign(&expired).expect("sign")),
            Err(TokenError::Expired)
        );
        expired.exp = now_secs() + 3600;
        expired.role = "root".into();
        assert_eq!(
            keys.verify(&keys.sign(&expired).expect("sign")),
            Err(TokenError::Invalid)
        );
    }
}
