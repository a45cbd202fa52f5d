//! `wsload`: the WebSocket load client behind docs/benchmarks.md ("WebSocket fan-out").
//!
//! - `wsload users --url URL --count N`: register N players, print their tokens (one a line).
//! - `wsload hold --url URL --tokens FILE --connections N [--out FILE]`: open N authenticated sockets
//!   (tokens used round-robin), print `ready N` once all are open, keep them idle (answering pings),
//!   then wait for one `shout_all` event on every socket and write each socket's delivery latency
//!   in microseconds, one a line, to `--out` (or stdout). Several `hold` processes share the load
//!   when one process's open-file limit is not enough.
//! - `wsload shout --url URL --token T`: run the probe plugin's `shout` action with `n` = the wall
//!   clock in microseconds modulo 4·10⁹, which `hold` subtracts from its own clock on arrival.
//!
//! Loopback only: it is a benchmark tool, not a client. It prints to stdout by design.

#![allow(
    clippy::disallowed_macros,
    reason = "a command-line tool reports on stdout/stderr"
)]

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// The clock `shout` and `hold` share wraps at this many microseconds (fits the probe's `u32`).
const CLOCK_WRAP: u64 = 4_000_000_000;
/// Sockets opened at once.
const OPEN_CONCURRENCY: usize = 64;

#[derive(Parser)]
#[command(about = "WebSocket load client for Cauldron benchmarks")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Register players and print their tokens.
    Users {
        /// The host, e.g. http://127.0.0.1:3000.
        #[arg(long)]
        url: String,
        /// How many.
        #[arg(long)]
        count: usize,
    },
    /// Hold idle sockets, then time one global event's delivery to each.
    Hold {
        /// The host, e.g. http://127.0.0.1:3000.
        #[arg(long)]
        url: String,
        /// File of tokens, one a line.
        #[arg(long)]
        tokens: PathBuf,
        /// Sockets to open.
        #[arg(long)]
        connections: usize,
        /// Where the latencies go (default stdout).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Give up waiting for the event after this many seconds.
        #[arg(long, default_value_t = 600)]
        wait_secs: u64,
    },
    /// Trigger one global event (the probe's `shout`).
    Shout {
        /// The host.
        #[arg(long)]
        url: String,
        /// A player's token.
        #[arg(long)]
        token: String,
    },
}

fn clock_us() -> u64 {
    let us = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
    us % CLOCK_WRAP
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Cmd::Users { url, count } => users(&url, count).await,
        Cmd::Hold {
            url,
            tokens,
            connections,
            out,
            wait_secs,
        } => hold(&url, &tokens, connections, out, Duration::from_secs(wait_secs)).await,
        Cmd::Shout { url, token } => shout(&url, &token).await,
    }
}

async fn users(url: &str, count: usize) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let stamp = clock_us();
    for i in 0..count {
        let resp = http
            .post(format!("{url}/api/v1/auth/register"))
            .json(&json!({"username": format!("load_{stamp}_{i}"), "password": "load-password-1"}))
            .send()
            .await
            .context("register")?;
        if !resp.status().is_success() {
            bail!("register: {}", resp.status());
        }
        let body: Value = resp.json().await?;
        let token = body["token"].as_str().context("no token")?;
        println!("{token}");
    }
    Ok(())
}

async fn shout(url: &str, token: &str) -> anyhow::Result<()> {
    let sent = clock_us();
    let resp = reqwest::Client::new()
        .post(format!("{url}/api/v1/actions/probe/shout"))
        .bearer_auth(token)
        .json(&json!({ "n": sent }))
        .send()
        .await?;
    if !resp.status().is_success() {
        bail!(
            "shout: {} {}",
            resp.status(),
            resp.text().await.unwrap_or_default()
        );
    }
    println!(
        "shout sent at {sent} us; the action answered after {} us",
        (clock_us() + CLOCK_WRAP - sent) % CLOCK_WRAP
    );
    Ok(())
}

async fn hold(
    url: &str,
    tokens: &PathBuf,
    connections: usize,
    out: Option<PathBuf>,
    wait: Duration,
) -> anyhow::Result<()> {
    let tokens: Vec<String> = std::fs::read_to_string(tokens)?
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect();
    if tokens.is_empty() {
        bail!("no tokens");
    }
    let ws_base = url.replacen("http", "ws", 1);
    let opened = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(tokio::sync::Semaphore::new(OPEN_CONCURRENCY));
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<Result<(), String>>(OPEN_CONCURRENCY);
    let (lat_tx, mut lat_rx) = tokio::sync::mpsc::unbounded_channel::<u64>();
    for i in 0..connections {
        let url = format!("{ws_base}/ws?token={}", tokens[i % tokens.len()]);
        let gate = Arc::clone(&gate);
        let ready = ready_tx.clone();
        let lat = lat_tx.clone();
        let opened = Arc::clone(&opened);
        tokio::spawn(async move {
            let permit = gate.acquire_owned().await;
            let config = WebSocketConfig::default()
                .read_buffer_size(4096)
                .write_buffer_size(0)
                .max_message_size(Some(1 << 20));
            let socket = tokio_tungstenite::connect_async_with_config(&url, Some(config), true).await;
            drop(permit);
            let mut socket = match socket {
                Ok((s, _)) => s,
                Err(e) => {
                    let _ = ready.send(Err(e.to_string())).await;
                    return;
                }
            };
            opened.fetch_add(1, Ordering::Relaxed);
            let _ = ready.send(Ok(())).await;
            drop(ready);
            while let Some(msg) = socket.next().await {
                match msg {
                    Ok(Message::Text(text)) => {
                        let Ok(v) = serde_json::from_str::<Value>(&text) else {
                            continue;
                        };
                        if v["type"] == "event" && v["event"]["topic"] == "shout_all" {
                            let sent = v["event"]["data"].as_u64().unwrap_or(0);
                            let _ = lat.send((clock_us() + CLOCK_WRAP - sent) % CLOCK_WRAP);
                            let _ = socket.close(None).await;
                            return;
                        }
                    }
                    Ok(Message::Ping(p)) => {
                        let _ = socket.send(Message::Pong(p)).await;
                    }
                    Ok(Message::Close(f)) => {
                        eprintln!("closed by the host: {f:?}");
                        return;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        eprintln!("socket error: {e}");
                        return;
                    }
                }
            }
        });
    }
    drop(ready_tx);
    drop(lat_tx);
    let mut ok = 0;
    let mut failed = 0;
    while let Some(r) = ready_rx.recv().await {
        match r {
            Ok(()) => ok += 1,
            Err(e) => {
                if failed < 5 {
                    eprintln!("connect failed: {e}");
                }
                failed += 1;
            }
        }
    }
    println!("ready {ok} failed {failed}");
    std::io::stdout().flush()?;

    let mut latencies = Vec::with_capacity(ok);
    let deadline = tokio::time::Instant::now() + wait;
    while latencies.len() < ok {
        match tokio::time::timeout_at(deadline, lat_rx.recv()).await {
            Ok(Some(us)) => latencies.push(us),
            Ok(None) | Err(_) => break,
        }
    }
    let mut text = String::new();
    for us in &latencies {
        text.push_str(&us.to_string());
        text.push('\n');
    }
    match out {
        Some(path) => std::fs::write(path, text)?,
        None => print!("{text}"),
    }
    eprintln!("received {} of {ok} events", latencies.len());
    Ok(())
}
