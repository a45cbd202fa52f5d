//! Leaderboards: one sorted set of scores per board name.
//!
//! Order is score descending; players with equal scores are ordered as Redis orders them, by the
//! member string (the decimal player id) descending, byte-wise. The in-process board copies that
//! rule so both implementations rank alike. Ranks are 1-based.

use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::{RedisLink, ServiceError};

/// One row of a leaderboard.
#[derive(Debug, Clone, PartialEq)]
pub struct Ranked {
    /// The player.
    pub player: i64,
    /// Their score on this board.
    pub score: f64,
    /// 1 for the top score.
    pub rank: u64,
}

/// Sorted scores per board.
#[async_trait]
pub trait Leaderboard: Send + Sync + std::fmt::Debug {
    /// Sets `player`'s score on `board`, replacing any earlier one. NaN is refused.
    async fn set_score(&self, board: &str, player: i64, score: f64) -> Result<(), ServiceError>;

    /// The best `n` rows of `board`, best first.
    async fn top(&self, board: &str, n: usize) -> Result<Vec<Ranked>, ServiceError>;

    /// `player`'s row on `board`, or `None` if they have no score there.
    async fn rank(&self, board: &str, player: i64) -> Result<Option<Ranked>, ServiceError>;

    /// Removes `player` from `board`.
    async fn remove(&self, board: &str, player: i64) -> Result<(), ServiceError>;
}

/// A sort key that orders like `ZRANGE ... REV`: score descending, then member string descending.
#[derive(Debug, Clone, PartialEq)]
struct Slot {
    score: f64,
    member: String,
}

impl Eq for Slot {}

impl Ord for Slot {
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .score
            .total_cmp(&self.score)
            .then_with(|| other.member.as_bytes().cmp(self.member.as_bytes()))
    }
}

impl PartialOrd for Slot {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[derive(Debug, Default)]
struct Board {
    order: BTreeSet<Slot>,
    scores: HashMap<i64, f64>,
}

/// Leaderboards for a single node. `rank` walks the board, which is fine at single-node sizes.
#[derive(Debug, Default)]
pub struct InProcessLeaderboard {
    boards: Mutex<HashMap<String, Board>>,
}

impl InProcessLeaderboard {
    /// No boards yet.
    pub fn new() -> Self {
        Self::default()
    }

    fn with_boards<T>(&self, f: impl FnOnce(&mut HashMap<String, Board>) -> T) -> T {
        let mut boards = self
            .boards
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut boards)
    }
}

/// A score as Redis stores it: `-0.0` and `0.0` are the same score.
fn normalise(score: f64) -> f64 {
    if score == 0.0 { 0.0 } else { score }
}

#[async_trait]
impl Leaderboard for InProcessLeaderboard {
    async fn set_score(&self, board: &str, player: i64, score: f64) -> Result<(), ServiceError> {
        if score.is_nan() {
            return Err(ServiceError::InvalidInput("a leaderboard score cannot be NaN"));
        }
        let score = normalise(score);
        self.with_boards(|boards| {
            let b = boards.entry(board.to_owned()).or_default();
            let member = player.to_string();
            if let Some(old) = b.scores.insert(player, score) {
                b.order.remove(&Slot {
                    score: old,
                    member: member.clone(),
                });
            }
            b.order.insert(Slot { score, member });
        });
        Ok(())
    }

    async fn top(&self, board: &str, n: usize) -> Result<Vec<Ranked>, ServiceError> {
        Ok(self.with_boards(|boards| {
            let Some(b) = boards.get(board) else {
                return Vec::new();
            };
            b.order
                .iter()
                .take(n)
                .zip(1u64..)
                .filter_map(|(slot, rank)| {
                    Some(Ranked {
                        player: slot.member.parse().ok()?,
                        score: slot.score,
                        rank,
                    })
                })
                .collect()
        }))
    }

    async fn rank(&self, board: &str, player: i64) -> Result<Option<Ranked>, ServiceError> {
        Ok(self.with_boards(|boards| {
            let b = boards.get(board)?;
            let score = *b.scores.get(&player)?;
            let member = player.to_string();
            let target = Slot { score, member };
            let above = b.order.range(..&target).count() as u64;
            Some(Ranked {
                player,
                score,
                rank: above + 1,
            })
        }))
    }

    async fn remove(&self, board: &str, player: i64) -> Result<(), ServiceError> {
        self.with_boards(|boards| {
            if let Some(b) = boards.get_mut(board)
                && let Some(old) = b.scores.remove(&player)
            {
                b.order.remove(&Slot {
                    score: old,
                    member: player.to_string(),
                });
            }
        });
        Ok(())
    }
}

/// Leaderboards shared by every node: one sorted set per board, `{prefix}lb:{board}`.
#[derive(Debug)]
pub struct RedisLeaderboard {
    link: Arc<RedisLink>,
}

impl RedisLeaderboard {
    pub(crate) fn new(link: Arc<RedisLink>) -> Self {
        Self { link }
    }

    fn key(&self, board: &str) -> String {
        self.link.key(&format!("lb:{board}"))
    }
}

#[async_trait]
impl Leaderboard for RedisLeaderboard {
    async fn set_score(&self, board: &str, player: i64, score: f64) -> Result<(), ServiceError> {
        if score.is_nan() {
            return Err(ServiceError::InvalidInput("a leaderboard score cannot be NaN"));
        }
        let key = self.key(board);
        self.link
            .run(|mut conn| async move {
                redis::cmd("ZADD")
                    .arg(&key)
                    .arg(score)
                    .arg(player)
                    .query_async::<i64>(&mut conn)
                    .await
            })
            .await
            .map(|_| ())
    }

    async fn top(&self, board: &str, n: usize) -> Result<Vec<Ranked>, ServiceError> {
        if n == 0 {
            return Ok(Vec::new());
        }
        let key = self.key(board);
        let stop = i64::try_from(n).unwrap_or(i64::MAX) - 1;
        let rows: Vec<(i64, f64)> = self
            .link
            .run(|mut conn| async move {
                redis::cmd("ZRANGE")
                    .arg(&key)
                    .arg(0)
                    .arg(stop)
                    .arg("REV")
                    .arg("WITHSCORES")
                    .query_async(&mut conn)
                    .await
            })
            .await?;
        Ok(rows
            .into_iter()
            .zip(1u64..)
            .map(|((player, score), rank)| Ranked { player, score, rank })
            .collect())
    }

    async fn rank(&self, board: &str, player: i64) -> Result<Option<Ranked>, ServiceError> {
        let key = self.key(board);
        let (rank, score): (Option<u64>, Option<f64>) = self
            .link
            .run(|mut conn| async move {
                redis::pipe()
                    .atomic()
                    .cmd("ZREVRANK")
                    .arg(&key)
                    .arg(player)
                    .cmd("ZSCORE")
                    .arg(&key)
                    .arg(player)
                    .query_async(&mut conn)
                    .await
            })
            .await?;
        Ok(match (rank, score) {
            (Some(rank), Some(score)) => Some(Ranked {
                player,
                score,
                rank: rank + 1,
            }),
            _ => None,
        })
    }

    async fn remove(&self, board: &str, player: i64) -> Result<(), ServiceError> {
        let key = self.key(board);
        self.link
            .run(|mut conn| async move {
                redis::cmd("ZREM")
                    .arg(&key)
                    .arg(player)
                    .query_async::<i64>(&mut conn)
                    .await
            })
            .await
            .map(|_| ())
    }
}
