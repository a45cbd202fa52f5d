//! Prometheus metrics, rendered in the text exposition format by [`Metrics::render`].
//!
//! A small hand-rolled registry: counters, gauges and histograms keyed by name and label set. Every
//! metric name is registered once with its help text in [`HELP`], so `/metrics` always describes
//! what it serves.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

/// Latency buckets for plugin calls and requests, in seconds.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];
/// Buckets for fuel used per plugin call.
pub const FUEL_BUCKETS: &[f64] = &[1e3, 1e4, 1e5, 1e6, 1e7, 1e8];

/// Every metric: (name, type, help).
pub const HELP: &[(&str, &str, &str)] = &[
    (
        "cauldron_plugin_calls_total",
        "counter",
        "Plugin calls by plugin, action and result (ok, rejected, or a fault kind).",
    ),
    (
        "cauldron_plugin_faults_total",
        "counter",
        "Plugin faults by plugin, version and kind.",
    ),
    (
        "cauldron_host_call_failures_total",
        "counter",
        "Plugin calls the host could not run, by plugin and reason (shutting_down, call_too_large, \
         pool_exhausted, internal); not the plugin's faults.",
    ),
    (
        "cauldron_plugin_call_seconds",
        "histogram",
        "Wall time of one plugin call, sandbox included.",
    ),
    (
        "cauldron_plugin_fuel_used",
        "histogram",
        "Fuel used by one plugin call.",
    ),
    (
        "cauldron_action_conflicts_total",
        "counter",
        "Actions re-run because the player's state changed concurrently.",
    ),
    (
        "cauldron_http_requests_total",
        "counter",
        "HTTP requests by route and status.",
    ),
    (
        "cauldron_http_request_seconds",
        "histogram",
        "HTTP request latency by route.",
    ),
    (
        "cauldron_password_hash_busy_total",
        "counter",
        "Registrations and logins refused (429) because every password-hashing slot stayed busy.",
    ),
    ("cauldron_ws_connections", "gauge", "Open WebSocket connections."),
    (
        "cauldron_ws_disconnects_total",
        "counter",
        "WebSocket sessions ended, by reason (client, idle, shutdown, slow_client, error, unauthorized).",
    ),
    (
        "cauldron_plugin_rollouts_total",
        "counter",
        "Plugin announcements applied from the bus, by action and result.",
    ),
    (
        "cauldron_shadow_calls_total",
        "counter",
        "Live calls run again on a plugin's shadow version, by plugin, shadow version and result (identical, diverged, faulted, dropped).",
    ),
];

type Labels = Vec<(String, String)>;

#[derive(Default)]
struct Histogram {
    buckets: Vec<f64>,
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

#[derive(Default)]
struct Inner {
    counters: BTreeMap<(String, Labels), f64>,
    gauges: BTreeMap<(String, Labels), f64>,
    histograms: BTreeMap<(String, Labels), Histogram>,
}

/// The process's metrics.
#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn fmt_labels(l: &[(String, String)], extra: Option<(&str, String)>) -> String {
    let mut parts: Vec<String> = l.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))).collect();
    if let Some((k, v)) = extra {
        parts.push(format!("{k}=\"{v}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

impl Metrics {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Add `by` to a counter.
    pub fn add(&self, name: &str, pairs: &[(&str, &str)], by: f64) {
        *self
            .lock()
            .counters
            .entry((name.to_owned(), labels(pairs)))
            .or_default() += by;
    }

    /// Add one to a counter.
    pub fn inc(&self, name: &str, pairs: &[(&str, &str)]) {
        self.add(name, pairs, 1.0);
    }

    /// Add `by` (may be negative) to a gauge.
    pub fn gauge_add(&self, name: &str, pairs: &[(&str, &str)], by: f64) {
        *self
            .lock()
            .gauges
            .entry((name.to_owned(), labels(pairs)))
            .or_default() += by;
    }

    /// Record one observation in a histogram with the given bucket bounds.
    pub fn observe(&self, name: &str, pairs: &[(&str, &str)], value: f64, buckets: &[f64]) {
        let mut inner = self.lock();
        let h = inner
            .histograms
            .entry((name.to_owned(), labels(pairs)))
            .or_insert_with(|| Histogram {
                buckets: buckets.to_vec(),
                counts: vec![0; buckets.len()],
                ..Histogram::default()
            });
        for (i, bound) in h.buckets.iter().enumerate() {
            if value <= *bound {
                h.counts[i] += 1;
            }
        }
        h.sum += value;
        h.count += 1;
    }

    /// Record one plugin call: its result (`ok`, `rejected` or a fault kind), time and fuel.
    pub fn plugin_call(&self, plugin: &str, action: &str, result: &str, seconds: f64, fuel: u64) {
        self.inc(
            "cauldron_plugin_calls_total",
            &[("plugin", plugin), ("action", action), ("result", result)],
        );
        self.observe(
            "cauldron_plugin_call_seconds",
            &[("plugin", plugin)],
            seconds,
            LATENCY_BUCKETS,
        );
        self.observe(
            "cauldron_plugin_fuel_used",
            &[("plugin", plugin)],
            fuel as f64,
            FUEL_BUCKETS,
        );
    }

    /// Record a plugin fault.
    pub fn plugin_fault(&self, plugin: &str, version: &str, kind: &str) {
        self.inc(
            "cauldron_plugin_faults_total",
            &[("plugin", plugin), ("version", version), ("kind", kind)],
        );
    }

    /// Render everything in the Prometheus text format.
    pub fn render(&self) -> String {
        let inner = self.lock();
        let mut out = String::new();
        for (name, kind, help) in HELP {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for ((n, l), v) in inner
                .counters
                .iter()
                .chain(inner.gauges.iter())
                .filter(|((n, _), _)| n == name)
            {
                let _ = writeln!(out, "{n}{} {v}", fmt_labels(l, None));
            }
            for ((n, l), h) in inner.histograms.iter().filter(|((n, _), _)| n == name) {
                for (bound, count) in h.buckets.iter().zip(&h.counts) {
                    let _ = writeln!(
                        out,
                        "{n}_bucket{} {count}",
                        fmt_labels(l, Some(("le", bound.to_string())))
                    );
                }
                let _ = writeln!(
                    out,
                    "{n}_bucket{} {}",
                    fmt_labels(l, Some(("le", "+Inf".into()))),
                    h.count
                );
                let _ = writeln!(
                    out,
                    "{n}_sum{} {}\n{n}_count{} {}",
                    fmt_labels(l, None),
                    h.sum,
                    fmt_labels(l, None),
                    h.count
                );
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_cumulative_histograms() {
        let m = Metrics::new();
        m.plugin_call("alchemy", "craft", "ok", 0.0003, 5000);
        m.plugin_call("alchemy", "craft", "ok", 0.02, 50);
        let text = m.render();
        assert!(
            text.contains(r#"cauldron_plugin_calls_total{plugin="alchemy",action="craft",result="ok"} 2"#)
        );
        assert!(text.contains(r#"cauldron_plugin_call_seconds_bucket{plugin="alchemy",le="0.0005"} 1"#));
        assert!(text.contains(r#"cauldron_plugin_call_seconds_bucket{plugin="alchemy",le="+Inf"} 2"#));
        assert!(text.contains("# TYPE cauldron_ws_connections gauge"));
    }
}
