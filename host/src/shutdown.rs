//! [`Shutdown`]: one signal fanned out to every long-lived handler (WebSocket sessions, background
//! tasks), and completion guards so the server can wait for them to finish their goodbyes.
//!
//! `serve` triggers the signal when its shutdown future completes; each WebSocket session holds a
//! [`Guard`] while it runs, stops reading, lets an action in flight finish, sends a close frame and
//! drops the guard; `serve` waits for [`Shutdown::drained`] (bounded by the shutdown timeout).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{Notify, watch};

/// The shutdown signal and the count of handlers still running. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Shutdown {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    signal: watch::Sender<bool>,
    active: AtomicUsize,
    idle: Notify,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

impl Shutdown {
    /// Not triggered, nothing running.
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Inner {
                signal: watch::channel(false).0,
                active: AtomicUsize::new(0),
                idle: Notify::new(),
            }),
        }
    }

    /// Tell every handler to wind down. Idempotent.
    pub fn trigger(&self) {
        self.inner.signal.send_replace(true);
    }

    /// Whether [`Shutdown::trigger`] was called.
    pub fn is_triggered(&self) -> bool {
        *self.inner.signal.borrow()
    }

    /// Completes once the signal is triggered (at once if it already was).
    pub fn wait(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.inner.signal.subscribe();
        async move {
            // An error means the sender is gone, which cannot happen while `rx`'s `Shutdown` lives;
            // either way there is nothing left to wait for.
            let _ = rx.wait_for(|triggered| *triggered).await;
        }
    }

    /// Register a running handler; [`Shutdown::drained`] waits until its guard drops.
    pub fn guard(&self) -> Guard {
        self.inner.active.fetch_add(1, Ordering::AcqRel);
        Guard {
            inner: Arc::clone(&self.inner),
        }
    }

    /// Handlers still holding a guard.
    pub fn active(&self) -> usize {
        self.inner.active.load(Ordering::Acquire)
    }

    /// Completes when no guard is held.
    pub async fn drained(&self) {
        loop {
            let idle = self.inner.idle.notified();
            if self.active() == 0 {
                return;
            }
            idle.await;
        }
    }
}

/// Held by a running handler; dropping it tells [`Shutdown::drained`].
#[derive(Debug)]
pub struct Guard {
    inner: Arc<Inner>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if self.inner.active.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.inner.idle.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn drained_waits_for_every_guard() {
        let shutdown = Shutdown::new();
        let a = shutdown.guard();
        let b = shutdown.guard();
        let waiting = tokio::spawn({
            let s = shutdown.clone();
            async move { s.drained().await }
        });
        drop(a);
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        drop(b);
        waiting.await.expect("drained");
        assert_eq!(shutdown.active(), 0);
    }

    #[tokio::test]
    async fn wait_completes_after_trigger_even_for_late_waiters() {
        let shutdown = Shutdown::new();
        let early = tokio::spawn(shutdown.wait());
        shutdown.trigger();
        early.await.expect("early waiter");
        shutdown.wait().await;
        assert!(shutdown.is_triggered());
    }
}
