//! The Redis services against the real Redis at `redis://127.0.0.1:6379` and against the in-process
//! implementations: one suite, run against both, where the behaviour is the same; then what only Redis
//! does (several nodes, start-up without Redis, an outage and recovery against a redis-server of our
//! own).
//!
//! Every Redis test works under a random key prefix and deletes its keys when done (also on panic).
//! Waits are for a condition with a deadline, never a fixed sleep.

#![allow(
    clippy::unwrap_used,
    reason = "a test should fail loudly on any unexpected error"
)]

use std::future::Future;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use cauldron_host::bus::{Channel, Subscription};
use cauldron_host::cache::{Decision, Health, RateLimit, Services, ServicesConfig};
use tokio::time::{Instant, sleep, timeout};

const REDIS_URL: &str = "redis://127.0.0.1:6379";
/// Deadline for any awaited condition. Generous: it bounds a hang, it is not a performance claim.
const WAIT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------------
// Helpers

/// Deletes every key under a prefix when dropped, so a failing test leaves nothing behind either.
struct KeyGuard {
    url: String,
    prefix: String,
}

impl Drop for KeyGuard {
    fn drop(&mut self) {
        let Ok(client) = redis::Client::open(self.url.as_str()) else {
            return;
        };
        let Ok(mut conn) = client.get_connection_with_timeout(Duration::from_secs(2)) else {
            return;
        };
        let keys: Vec<String> = redis::Commands::scan_match(&mut conn, format!("{}*", self.prefix))
            .map(|keys| keys.filter_map(Result::ok).collect())
            .unwrap_or_default();
        if !keys.is_empty() {
            let _: redis::RedisResult<i64> = redis::cmd("DEL").arg(&keys).query(&mut conn);
        }
    }
}

fn config(url: &str, prefix: &str, startup_attempts: u32) -> ServicesConfig {
    ServicesConfig {
        redis_url: Some(url.to_owned()),
        key_prefix: prefix.to_owned(),
        startup_attempts,
    }
}

/// Services on the machine's Redis under a fresh prefix, and the guard that cleans the prefix up.
async fn redis_services() -> (Services, KeyGuard) {
    crate::common::init_logs();
    let prefix = format!("cauldron-test:{:016x}:", crate::common::random_u64());
    let guard = KeyGuard {
        url: REDIS_URL.to_owned(),
        prefix: prefix.clone(),
    };
    let services = Services::connect_with(config(REDIS_URL, &prefix, 3))
        .await
        .unwrap();
    assert!(services.uses_redis());
    wait_healthy(&services).await;
    (services, guard)
}

/// Runs `check` until it returns true, failing the test after [`WAIT`].
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + WAIT;
    loop {
        if check().await {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        sleep(Duration::from_millis(25)).await;
    }
}

async fn wait_healthy(services: &Services) {
    eventually("health to be Ok", || {
        let s = services.clone();
        async move { s.health().await == Health::Ok }
    })
    .await;
}

async fn wait_degraded(services: &Services) {
    eventually("health to be Degraded", || {
        let s = services.clone();
        async move { matches!(s.health().await, Health::Degraded(_)) }
    })
    .await;
}

async fn recv(sub: &mut Subscription) -> Bytes {
    timeout(WAIT, sub.recv())
        .await
        .expect("no message before the deadline")
        .expect("channel closed")
}

fn b(s: &'static str) -> Bytes {
    Bytes::from_static(s.as_bytes())
}

fn server_url(port: u16) -> String {
    format!("redis://127.0.0.1:{port}")
}

/// A redis-server of our own, killed when dropped.
struct OwnRedis {
    port: u16,
    child: Option<Child>,
}

impl OwnRedis {
    async fn start(port: u16) -> Self {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed for the outage tests");
        let url = server_url(port);
        eventually("our redis-server to accept connections", || {
            let url = url.clone();
            async move {
                let Ok(client) = redis::Client::open(url.as_str()) else {
                    return false;
                };
                let Ok(Ok(mut conn)) =
                    timeout(Duration::from_secs(1), client.get_multiplexed_async_connection()).await
                else {
                    return false;
                };
                redis::cmd("PING").query_async::<String>(&mut conn).await.is_ok()
            }
        })
        .await;
        Self {
            port,
            child: Some(child),
        }
    }

    fn url(&self) -> String {
        server_url(self.port)
    }

    /// Kills the server and reaps it: from then on the port refuses connections.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

// ---------------------------------------------------------------------------------------------
// The shared suite: each body runs against the in-process services and against Redis.

macro_rules! both {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test]
                async fn in_process() {
                    super::$name(&cauldron_host::cache::Services::in_process()).await;
                }

                #[tokio::test]
                async fn redis() {
                    let (services, _guard) = super::redis_services().await;
                    super::$name(&services).await;
                }
            }
        )*
    };
}

both!(
    bus_delivers_to_every_local_subscriber_of_the_channel,
    bus_drops_a_channel_with_its_last_subscriber,
    bus_lagging_subscriber_skips_and_counts,
    bus_subscription_as_a_stream,
    presence_heartbeat_count_list_expire,
    rate_limit_bucket_drains_and_refills,
    leaderboard_top_rank_ties_and_updates,
);

async fn bus_delivers_to_every_local_subscriber_of_the_channel(s: &Services) {
    let mut a = s.bus.subscribe(&Channel::Player(1)).await;
    let mut a2 = s.bus.subscribe(&Channel::Player(1)).await;
    let mut other = s.bus.subscribe(&Channel::Player(2)).await;
    let mut global = s.bus.subscribe(&Channel::Global).await;
    let mut plugins = s.bus.subscribe(&Channel::Plugins).await;

    let published = s.bus.publish(&Channel::Player(1), b("to 1")).await;
    assert_eq!(published.local, 2);
    assert_eq!(published.remote, s.uses_redis());
    assert_eq!(recv(&mut a).await, b("to 1"));
    assert_eq!(recv(&mut a2).await, b("to 1"));

    s.bus.publish(&Channel::Global, b("to all")).await;
    s.bus.publish(&Channel::Plugins, b("alchemy 1.2.0")).await;
    s.bus.publish(&Channel::Player(2), b("to 2")).await;
    // Each subscriber's first message is its own channel's: nothing leaked across channels.
    assert_eq!(recv(&mut other).await, b("to 2"));
    assert_eq!(recv(&mut global).await, b("to all"));
    assert_eq!(recv(&mut plugins).await, b("alchemy 1.2.0"));
    // And a publisher's own node gets each message once, not once more as Redis's echo.
    s.bus.publish(&Channel::Player(1), b("marker")).await;
    assert_eq!(recv(&mut a).await, b("marker"));
    assert_eq!(a.channel(), &Channel::Player(1));
}

async fn bus_drops_a_channel_with_its_last_subscriber(s: &Services) {
    let first = s.bus.subscribe(&Channel::Player(3)).await;
    let second = s.bus.subscribe(&Channel::Player(3)).await;
    drop(first);
    assert_eq!(s.bus.publish(&Channel::Player(3), b("x")).await.local, 1);
    drop(second);
    assert_eq!(s.bus.publish(&Channel::Player(3), b("x")).await.local, 0);
    // And it comes back.
    let mut again = s.bus.subscribe(&Channel::Player(3)).await;
    assert_eq!(s.bus.publish(&Channel::Player(3), b("back")).await.local, 1);
    assert_eq!(recv(&mut again).await, b("back"));
}

async fn bus_lagging_subscriber_skips_and_counts(s: &Services) {
    let capacity = cauldron_host::bus::CHANNEL_CAPACITY;
    let mut slow = s.bus.subscribe(&Channel::Player(4)).await;
    let total = capacity + 44;
    for i in 0..total {
        s.bus
            .publish(&Channel::Player(4), Bytes::from(i.to_string()))
            .await;
    }
    // The oldest 44 were overwritten; the subscriber resumes at the oldest kept one.
    assert_eq!(recv(&mut slow).await, Bytes::from(44.to_string()));
    assert_eq!(slow.missed(), 44);
}

async fn bus_subscription_as_a_stream(s: &Services) {
    use futures_util::StreamExt;
    let mut stream = s.bus.subscribe(&Channel::Player(5)).await.into_stream();
    s.bus.publish(&Channel::Player(5), b("one")).await;
    s.bus.publish(&Channel::Player(5), b("two")).await;
    assert_eq!(timeout(WAIT, stream.next()).await.unwrap(), Some(b("one")));
    assert_eq!(timeout(WAIT, stream.next()).await.unwrap(), Some(b("two")));
}

async fn presence_heartbeat_count_list_expire(s: &Services) {
    let p = &s.presence;
    assert_eq!(p.count_online().await.unwrap(), 0);
    for id in [30, 10, 20] {
        p.heartbeat(id, Duration::from_secs(60)).await.unwrap();
    }
    p.heartbeat(10, Duration::from_secs(60)).await.unwrap();
    assert_eq!(p.count_online().await.unwrap(), 3);
    assert_eq!(p.list_online().await.unwrap(), vec![10, 20, 30]);
    assert!(p.is_online(20).await.unwrap());

    p.mark_offline(20).await.unwrap();
    assert!(!p.is_online(20).await.unwrap());
    assert_eq!(p.list_online().await.unwrap(), vec![10, 30]);

    // A heartbeat that is not renewed expires by itself.
    p.heartbeat(40, Duration::from_millis(30)).await.unwrap();
    let presence = p.clone();
    eventually("the heartbeat to expire", || {
        let presence = presence.clone();
        async move { !presence.is_online(40).await.unwrap() }
    })
    .await;
    assert_eq!(p.count_online().await.unwrap(), 2);
    assert_eq!(p.list_online().await.unwrap(), vec![10, 30]);
}

async fn rate_limit_bucket_drains_and_refills(s: &Services) {
    let rl = &s.rate_limiter;
    // Three tokens, refilled one a day: the fourth request is refused.
    let slow = RateLimit::new(3, 1.0 / 86_400.0);
    assert_eq!(
        rl.check("login:ann", slow).await,
        Decision::Allowed { remaining: 2 }
    );
    assert_eq!(
        rl.check("login:ann", slow).await,
        Decision::Allowed { remaining: 1 }
    );
    assert_eq!(
        rl.check("login:ann", slow).await,
        Decision::Allowed { remaining: 0 }
    );
    match rl.check("login:ann", slow).await {
        Decision::Limited { retry_after } => {
            assert!(retry_after > Duration::from_secs(3600), "{retry_after:?}");
            assert!(retry_after <= Duration::from_secs(86_401), "{retry_after:?}");
        }
        other => panic!("expected Limited, got {other:?}"),
    }
    // Keys are independent.
    assert!(rl.check("login:bob", slow).await.is_allowed());

    // One token, refilled fast: refused, then allowed again once a token has dripped in.
    let fast = RateLimit::new(1, 50.0);
    assert!(rl.check("act:ann", fast).await.is_allowed());
    match rl.check("act:ann", fast).await {
        Decision::Limited { retry_after } => {
            assert!(retry_after <= Duration::from_millis(21), "{retry_after:?}")
        }
        Decision::Allowed { .. } => {} // the clock moved past a refill already: fine.
    }
    let limiter = rl.clone();
    eventually("a token to refill", || {
        let limiter = limiter.clone();
        async move { limiter.check("act:ann", fast).await.is_allowed() }
    })
    .await;
}

async fn leaderboard_top_rank_ties_and_updates(s: &Services) {
    let lb = &s.leaderboard;
    assert!(lb.top("realm", 10).await.unwrap().is_empty());
    assert_eq!(lb.rank("realm", 1).await.unwrap(), None);

    lb.set_score("realm", 1, 10.0).await.unwrap();
    lb.set_score("realm", 2, 30.0).await.unwrap();
    lb.set_score("realm", 3, 20.0).await.unwrap();
    // Equal scores: ordered by the id's decimal string, descending ("9" > "10"), as Redis does.
    lb.set_score("realm", 9, 5.0).await.unwrap();
    lb.set_score("realm", 10, 5.0).await.unwrap();
    lb.set_score("other", 1, 1000.0).await.unwrap();

    let top: Vec<(i64, f64, u64)> = lb
        .top("realm", 10)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.player, r.score, r.rank))
        .collect();
    assert_eq!(
        top,
        vec![
            (2, 30.0, 1),
            (3, 20.0, 2),
            (1, 10.0, 3),
            (9, 5.0, 4),
            (10, 5.0, 5)
        ]
    );
    assert_eq!(lb.top("realm", 2).await.unwrap().len(), 2);
    assert!(lb.top("realm", 0).await.unwrap().is_empty());

    let r = lb.rank("realm", 3).await.unwrap().unwrap();
    assert_eq!((r.player, r.score, r.rank), (3, 20.0, 2));
    assert_eq!(lb.rank("realm", 10).await.unwrap().unwrap().rank, 5);

    // A new score replaces the old one.
    lb.set_score("realm", 1, 99.5).await.unwrap();
    assert_eq!(lb.rank("realm", 1).await.unwrap().unwrap().rank, 1);
    assert_eq!(lb.top("realm", 1).await.unwrap()[0].score, 99.5);

    lb.remove("realm", 1).await.unwrap();
    assert_eq!(lb.rank("realm", 1).await.unwrap(), None);
    assert_eq!(lb.rank("realm", 2).await.unwrap().unwrap().rank, 1);
    assert_eq!(lb.rank("other", 1).await.unwrap().unwrap().rank, 1);

    assert!(lb.set_score("realm", 1, f64::NAN).await.is_err());
    lb.set_score("realm", 11, -1.5).await.unwrap();
    assert_eq!(lb.rank("realm", 11).await.unwrap().unwrap().rank, 5);
}

// ---------------------------------------------------------------------------------------------
// Configuration

#[tokio::test]
async fn no_or_empty_redis_url_means_in_process() {
    let s = Services::connect(None).await.unwrap();
    assert!(!s.uses_redis());
    assert_eq!(s.health().await, Health::Ok);
    let s = Services::connect(Some("  ")).await.unwrap();
    assert!(!s.uses_redis());
}

#[tokio::test]
async fn an_unparsable_redis_url_is_a_configuration_error_without_the_secret() {
    let err = Services::connect(Some("http://user:hunter2@example:6379"))
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(message.contains("REDIS_URL"), "{message}");
    assert!(!message.contains("hunter2"), "{message}");
}

// ---------------------------------------------------------------------------------------------
// Several nodes on one Redis

/// Two `Services` on one prefix stand for two hosts behind nginx.
async fn two_nodes() -> (Services, Services, KeyGuard) {
    let (a, guard) = redis_services().await;
    let b = Services::connect_with(config(REDIS_URL, &guard.prefix, 3))
        .await
        .unwrap();
    wait_healthy(&b).await;
    (a, b, guard)
}

#[tokio::test]
async fn bus_crosses_nodes_on_every_channel_and_each_message_arrives_once() {
    let (a, b_node, _guard) = two_nodes().await;
    let mut on_a = a.bus.subscribe(&Channel::Player(7)).await;
    let mut on_b = b_node.bus.subscribe(&Channel::Player(7)).await;
    let mut global_b = b_node.bus.subscribe(&Channel::Global).await;
    let mut plugins_a = a.bus.subscribe(&Channel::Plugins).await;

    let published = a.bus.publish(&Channel::Player(7), b("hello")).await;
    assert_eq!(published.local, 1);
    assert!(published.remote);
    assert_eq!(recv(&mut on_b).await, b("hello"));
    assert_eq!(recv(&mut on_a).await, b("hello"));

    b_node.bus.publish(&Channel::Global, b("server news")).await;
    assert_eq!(recv(&mut global_b).await, b("server news"));
    b_node
        .bus
        .publish(&Channel::Plugins, b("rollout pet 2.0.0"))
        .await;
    assert_eq!(recv(&mut plugins_a).await, b("rollout pet 2.0.0"));

    // No duplicate from Redis's echo on the publishing node: the next message is the next one.
    a.bus.publish(&Channel::Player(7), b("second")).await;
    assert_eq!(recv(&mut on_a).await, b("second"));
    assert_eq!(recv(&mut on_b).await, b("second"));
}

#[tokio::test]
async fn bus_unsubscribes_from_redis_when_the_last_local_subscriber_goes() {
    let (a, guard) = redis_services().await;
    let channel = format!("{}player:8", guard.prefix);
    let client = redis::Client::open(REDIS_URL).unwrap();
    let raw = client.get_multiplexed_async_connection().await.unwrap();
    let numsub = |mut raw: redis::aio::MultiplexedConnection, channel: String| async move {
        let (_, n): (String, i64) = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg(&channel)
            .query_async(&mut raw)
            .await
            .unwrap();
        n
    };
    let first = a.bus.subscribe(&Channel::Player(8)).await;
    let second = a.bus.subscribe(&Channel::Player(8)).await;
    // One Redis subscription for the process, however many local subscribers.
    assert_eq!(numsub(raw.clone(), channel.clone()).await, 1);
    drop(first);
    drop(second);
    eventually("the Redis subscription to go", || {
        let (raw, channel) = (raw.clone(), channel.clone());
        async move { numsub(raw, channel).await == 0 }
    })
    .await;
}

#[tokio::test]
async fn rate_limits_and_presence_are_shared_between_nodes() {
    let (a, b_node, _guard) = two_nodes().await;
    let limit = RateLimit::new(2, 1.0 / 86_400.0);
    assert!(a.rate_limiter.check("ip:1", limit).await.is_allowed());
    assert!(b_node.rate_limiter.check("ip:1", limit).await.is_allowed());
    assert!(!a.rate_limiter.check("ip:1", limit).await.is_allowed());

    a.presence.heartbeat(1, Duration::from_secs(60)).await.unwrap();
    b_node
        .presence
        .heartbeat(2, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(a.presence.list_online().await.unwrap(), vec![1, 2]);
    assert_eq!(b_node.presence.count_online().await.unwrap(), 2);
}

// ---------------------------------------------------------------------------------------------
// Redis down: at start-up, and mid-flight

#[tokio::test]
async fn redis_down_at_start_means_degraded_not_dead_then_connects_when_it_appears() {
    crate::common::init_logs();
    let port = crate::common::free_port();
    let url = server_url(port);
    let prefix = format!("cauldron-test:{:016x}:", crate::common::random_u64());
    let started = Instant::now();
    let s = timeout(WAIT, Services::connect_with(config(&url, &prefix, 2)))
        .await
        .unwrap()
        .unwrap();
    assert!(started.elapsed() < WAIT);
    assert!(matches!(s.health().await, Health::Degraded(reason) if reason.contains("unreachable")));

    // Everything answers, from this node.
    let mut sub = s.bus.subscribe(&Channel::Player(1)).await;
    let published = s.bus.publish(&Channel::Player(1), b("local")).await;
    assert_eq!((published.local, published.remote), (1, false));
    assert_eq!(recv(&mut sub).await, b("local"));
    assert!(
        s.rate_limiter
            .check("k", RateLimit::new(1, 1.0))
            .await
            .is_allowed()
    );
    assert!(s.presence.count_online().await.is_err());
    assert!(s.leaderboard.top("realm", 3).await.is_err());

    // Redis appears: the same Services connect by themselves.
    let server = OwnRedis::start(port).await;
    wait_healthy(&s).await;
    let other = Services::connect_with(config(&server.url(), &prefix, 3))
        .await
        .unwrap();
    wait_healthy(&other).await;
    other
        .bus
        .publish(&Channel::Player(1), b("from the other node"))
        .await;
    assert_eq!(recv(&mut sub).await, b("from the other node"));
}

#[tokio::test]
async fn redis_outage_degrades_then_recovers_without_rebuilding_services() {
    crate::common::init_logs();
    let port = crate::common::free_port();
    let mut server = OwnRedis::start(port).await;
    let prefix = format!("cauldron-test:{:016x}:", crate::common::random_u64());
    let node = Services::connect_with(config(&server.url(), &prefix, 3))
        .await
        .unwrap();
    let other = Services::connect_with(config(&server.url(), &prefix, 3))
        .await
        .unwrap();
    wait_healthy(&node).await;
    wait_healthy(&other).await;

    // Working: cross-node pub/sub, Redis-backed rate limit.
    let mut sub = node.bus.subscribe(&Channel::Player(1)).await;
    assert!(other.bus.publish(&Channel::Player(1), b("before")).await.remote);
    assert_eq!(recv(&mut sub).await, b("before"));
    let limit = RateLimit::new(1, 1.0 / 86_400.0);
    assert!(node.rate_limiter.check("k", limit).await.is_allowed());
    assert!(
        !other.rate_limiter.check("k", limit).await.is_allowed(),
        "the bucket is shared"
    );

    // Outage: connection refused from now on.
    server.kill();

    let published = timeout(WAIT, node.bus.publish(&Channel::Player(1), b("during")))
        .await
        .unwrap();
    assert_eq!((published.local, published.remote), (1, false));
    assert_eq!(recv(&mut sub).await, b("during"));

    // Rate limiting still answers (this node's own bucket now).
    let decision = timeout(WAIT, node.rate_limiter.check("k", limit)).await.unwrap();
    assert!(decision.is_allowed(), "fresh per-node bucket");
    assert!(!node.rate_limiter.check("k", limit).await.is_allowed());

    assert!(node.presence.count_online().await.is_err());
    wait_degraded(&node).await;

    // Redis is back (empty: it saves nothing). Same Services, no rebuild.
    let _server = OwnRedis::start(port).await;
    wait_healthy(&node).await;
    wait_healthy(&other).await;

    // The bridge re-subscribed: a message from the other node arrives.
    assert!(other.bus.publish(&Channel::Player(1), b("after")).await.remote);
    assert_eq!(recv(&mut sub).await, b("after"));

    // Rate limits and presence are on Redis again: shared between the nodes.
    assert!(node.rate_limiter.check("k2", limit).await.is_allowed());
    assert!(!other.rate_limiter.check("k2", limit).await.is_allowed());
    node.presence.heartbeat(3, Duration::from_secs(60)).await.unwrap();
    assert_eq!(other.presence.list_online().await.unwrap(), vec![3]);
}
