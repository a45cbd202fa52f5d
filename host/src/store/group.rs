//! Group commit: concurrent actions of different players committed in one transaction.
//!
//! [`Store::apply`](super::Store::apply) hands its request to a queue; a few committer tasks take
//! what is queued (up to [`GroupCommit::max_batch`] actions; when more than one was waiting, they also
//! wait up to [`GroupCommit::window`] for the batch to fill) and run the batch as one write transaction:
//! each action's statements in turn, in player-id order, each still behind its own version guard. The
//! transaction's begin, its commit and the durable flush of the log are paid once per batch instead
//! of once per action. A caller's answer is sent only after the commit returned, so no reply goes out
//! before its action is durable.
//!
//! What happens to one action never costs another player theirs:
//! - a stale version writes nothing (the guard is the first statement), so that action alone is
//!   answered [`StoreError::Conflict`] and the game re-runs it, while the rest of the batch commits;
//! - a statement that fails (a change the database refuses, a deadlock) aborts the whole transaction,
//!   so none of the batch is applied; every action of it is then applied again on its own, by its own
//!   caller, where the failing one gets its own error and the others succeed;
//! - when the transaction cannot begin or its commit fails (the database went away), every action of
//!   the batch is answered with that error, exactly as a single action's transaction would be;
//! - an action whose caller gave up (a request timed out or was cancelled) is left out of a batch
//!   that has not started, and undoes the batch it is in if it goes away before the commit (the
//!   others are then applied on their own), so a dropped request applies nothing, as with a single
//!   action's transaction.
//!
//! Locks are taken in player-id order in every batch, so two batches (of one host or of two) never
//! wait on each other in a cycle.

use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::{ApplyRequest, StoreError};

/// How actions are grouped into transactions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupCommit {
    /// Most actions in one transaction; 1 turns group commit off (every action its own transaction).
    pub max_batch: usize,
    /// How long a batch that already holds more than one action waits for more before it commits. A
    /// lone action never waits: with nothing else in flight, waiting only adds latency.
    pub window: Duration,
    /// Batches committing at the same time; 0 lets the backend choose.
    pub committers: usize,
    /// Whether a lone action waits the window too. Off in service (a lone action commits at once);
    /// on, a batch commits only when full or when the window is over, which makes a batch's content
    /// predictable for tests.
    pub wait_when_alone: bool,
}

impl GroupCommit {
    /// Every action in its own transaction.
    pub const OFF: GroupCommit = GroupCommit {
        max_batch: 1,
        window: Duration::ZERO,
        committers: 1,
        wait_when_alone: false,
    };

    /// Whether actions are grouped at all.
    pub fn enabled(&self) -> bool {
        self.max_batch > 1
    }
}

impl Default for GroupCommit {
    /// 32 actions, a millisecond's window, and as many batches in flight as the backend can use
    /// (chosen by the backend when it starts the committers).
    fn default() -> Self {
        GroupCommit {
            max_batch: 32,
            window: Duration::from_millis(1),
            committers: 0,
            wait_when_alone: false,
        }
    }
}

/// How many actions may wait in the queue; beyond it, `apply` waits for room.
pub(super) const QUEUE: usize = 4_096;

/// One queued action and where its answer goes.
#[derive(Debug)]
pub(super) struct Pending {
    pub(super) req: ApplyRequest,
    pub(super) done: oneshot::Sender<Batched>,
}

/// What became of a queued action.
#[derive(Debug)]
pub(super) enum Batched {
    /// Committed; the new version.
    Applied(i64),
    /// Its version guard matched no row: nothing of it was written.
    Stale,
    /// The batch failed before its commit and nothing of it was applied: apply this one on its own.
    Alone(Box<ApplyRequest>),
    /// The batch could not begin or commit; this is the error.
    Failed(StoreError),
}

/// The next batch from the queue: waits for one action, takes whatever else is already queued, and,
/// when that made a batch of more than one, waits up to the window for it to fill. `None` when the
/// queue is closed and empty.
pub(super) async fn next_batch(
    rx: &mut mpsc::Receiver<Pending>,
    config: &GroupCommit,
) -> Option<Vec<Pending>> {
    let first = rx.recv().await?;
    let mut batch = vec![first];
    while batch.len() < config.max_batch {
        match rx.try_recv() {
            Ok(p) => batch.push(p),
            Err(_) => break,
        }
    }
    if (batch.len() > 1 || config.wait_when_alone) && !config.window.is_zero() {
        let deadline = tokio::time::Instant::now() + config.window;
        while batch.len() < config.max_batch {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(p)) => batch.push(p),
                Ok(None) | Err(_) => break,
            }
        }
    }
    Some(batch)
}

/// Send each action of a batch its answer. A caller that went away (its request was cancelled) is
/// simply not told; what was committed stays committed, as for a single action.
pub(super) fn answer(batch: Vec<Pending>, answers: impl IntoIterator<Item = Batched>) {
    for (pending, answer) in batch.into_iter().zip(answers) {
        let _ = pending.done.send(answer);
    }
}

/// `err` as an answer for every action of a batch: the first gets the error itself, the others a copy
/// of what it says (sqlx errors cannot be cloned).
pub(super) fn fail_all(batch: Vec<Pending>, err: StoreError) {
    let n = batch.len();
    let mut answers = Vec::with_capacity(n);
    let copy = |e: &StoreError| match e {
        StoreError::Unavailable(inner) => {
            StoreError::Unavailable(sqlx::Error::Io(std::io::Error::other(inner.to_string())))
        }
        StoreError::Db(inner) => StoreError::Db(sqlx::Error::Protocol(inner.to_string())),
        StoreError::Conflict => StoreError::Conflict,
        StoreError::Invalid(m) => StoreError::Invalid(m.clone()),
        StoreError::NotFound => StoreError::NotFound,
        StoreError::UsernameTaken => StoreError::UsernameTaken,
    };
    for _ in 1..n {
        answers.push(Batched::Failed(copy(&err)));
    }
    answers.insert(0, Batched::Failed(err));
    answer(batch, answers);
}
