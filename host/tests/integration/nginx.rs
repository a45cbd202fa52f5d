//! A real nginx with `deploy/nginx.conf` in front of two real `cauldron` processes sharing one
//! PostgreSQL database and one Redis prefix: the deployment of `deploy/docker-compose.yml` without
//! Docker. `deploy/render-nginx-conf.sh` fills in the port, the web root and the upstream, as it does
//! for `deploy/lint.sh`; the only other change the test makes to the file is to move nginx's
//! temporary folders into the test's own folder, so that it runs without root.
//!
//! Checks the web client's headers (cache, security, gzip, SPA fallback, fingerprinted assets), the
//! API through nginx (request ids, body limits), `/ws` upgraded through nginx and receiving events
//! caused through the other host, requests (GET and POST) and WebSocket reconnects that keep
//! succeeding when one host is killed or stopped, and per-client limits that tell two clients behind
//! nginx apart (by the `X-Forwarded-For` nginx sends, which the hosts trust from nginx only).
//!
//! Needs nginx (Debian's `nginx-light`; `.ci/run` installs it): found on `PATH`, in `/usr/sbin`, or
//! at `CAULDRON_NGINX`; the test fails, saying so, without it. Also what `cluster.rs` needs:
//! PostgreSQL, Redis and the plugins built (see `common`). Waits are polls bounded by
//! deadlines; nothing is timed. nginx writes its access log as the test reads it: only complete lines
//! are read, and a check on a request's line waits for it.

#![allow(clippy::unwrap_used, reason = "an unwrap is an assertion here")]
#![allow(
    clippy::disallowed_macros,
    reason = "a test reports what nginx did, and its logs on failure, on stderr"
)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::SinkExt;
use reqwest::StatusCode;
use reqwest::header::{self, HeaderMap};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::common::cluster::{ADMIN_TOKEN, Host, Shared, Socket, next, post_json, register_at, shout};
use crate::common::{complete_lines, copy_dir};

const DEADLINE: Duration = Duration::from_secs(30);
/// A fingerprinted asset the test adds to its copy of `web/` (the client itself has none yet).
const ASSET: &str = "assets/app-3f9a1c2b.js";
const YEAR: &str = "public, max-age=31536000, immutable";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

/// nginx: `CAULDRON_NGINX`, else the first `nginx` on `PATH` or in the usual sbin folders.
fn nginx_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("CAULDRON_NGINX") {
        return PathBuf::from(path);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join("nginx"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "nginx is not installed: this test runs a real nginx with deploy/nginx.conf. Install \
                 Debian's package (`apt-get install nginx-light`; .ci/run does), or set CAULDRON_NGINX \
                 to an nginx binary"
            )
        })
}

/// nginx's workers drop root to `nobody`: the folders they read must be open to everyone.
fn world_readable(dir: &Path) {
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A copy of `web/` with what a build step would add: a fingerprinted asset, and a dotfile that must
/// never be served.
fn web_root() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    world_readable(dir.path());
    let web = dir.path().join("web");
    copy_dir(&repo_root().join("web"), &web);
    std::fs::create_dir_all(web.join("assets")).unwrap();
    world_readable(&web.join("assets"));
    std::fs::write(web.join(ASSET), "export const fingerprinted = true;\n".repeat(64)).unwrap();
    std::fs::write(web.join(".secret"), "not for the web\n").unwrap();
    for f in [web.join(ASSET), web.join(".secret")] {
        std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    dir
}

/// An nginx master and its workers on a free port, with its configuration, logs, pid file and
/// temporary folders in a folder of its own; stopped on drop.
struct Nginx {
    base: String,
    child: Child,
    dir: tempfile::TempDir,
}

impl Nginx {
    /// nginx serving `root` and proxying to `upstream` (`address:port` each), once it answers.
    async fn start(root: &Path, upstream: &[&String]) -> Self {
        let nginx = nginx_binary();
        let dir = tempfile::tempdir().unwrap();
        world_readable(dir.path());
        let port = crate::common::free_port();
        let render = Command::new("bash")
            .arg(repo_root().join("deploy/render-nginx-conf.sh"))
            .arg(format!("127.0.0.1:{port}"))
            .arg(root)
            .args(upstream.iter().map(|s| s.as_str()))
            .output()
            .unwrap();
        assert!(
            render.status.success(),
            "render-nginx-conf.sh failed: {}",
            String::from_utf8_lossy(&render.stderr)
        );
        let rendered = String::from_utf8(render.stdout).unwrap();
        assert_eq!(rendered.matches("\nhttp {\n").count(), 1, "{rendered}");
        // The compiled-in temporary folders (/var/lib/nginx/...) are root's; use the test's folder.
        let d = dir.path().display();
        let conf = rendered.replacen(
            "\nhttp {\n",
            &format!(
                "\nhttp {{\n    client_body_temp_path {d}/client_body;\n    proxy_temp_path {d}/proxy;\n    \
                 fastcgi_temp_path {d}/fastcgi;\n    uwsgi_temp_path {d}/uwsgi;\n    \
                 scgi_temp_path {d}/scgi;\n"
            ),
            1,
        );
        let conf_path = dir.path().join("nginx.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let child = Command::new(&nginx)
            .arg("-p")
            .arg(dir.path())
            .arg("-e")
            .arg("stderr")
            .arg("-c")
            .arg(&conf_path)
            .arg("-g")
            .arg(format!("daemon off; pid {d}/nginx.pid;"))
            // The access log (stdout) and the error log (stderr) into files, for the checks and for
            // a failure's report.
            .stdout(std::fs::File::create(dir.path().join("access.log")).unwrap())
            .stderr(std::fs::File::create(dir.path().join("error.log")).unwrap())
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("could not run {}: {e}", nginx.display()));
        let mut nginx = Self {
            base: format!("http://127.0.0.1:{port}"),
            child,
            dir,
        };
        let http = reqwest::Client::new();
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Ok(r) = http.get(nginx.url("/nginx-healthz")).send().await
                && r.status() == StatusCode::OK
            {
                break;
            }
            if let Some(status) = nginx.child.try_wait().unwrap() {
                panic!("nginx exited ({status}) on start:\n{}", nginx.error_log());
            }
            assert!(
                Instant::now() < deadline,
                "nginx did not answer:\n{}",
                nginx.error_log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        nginx
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn ws_url(&self, path: &str) -> String {
        format!("{}{path}", self.base.replacen("http", "ws", 1))
    }

    /// The access log once `done` holds for it, polled until [`DEADLINE`]. nginx writes a request's
    /// line after the response has gone out, so a client can hold the answer before the line exists.
    async fn wait_log(&self, what: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let log = self.access_log();
            if done(&log) {
                return log;
            }
            assert!(
                Instant::now() < deadline,
                "nginx's access log never showed {what}: {log:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }

    /// The access log's complete lines so far (one JSON object each). nginx writes it while the
    /// test reads: a last line without its newline is left for a later read.
    fn access_log(&self) -> Vec<Value> {
        complete_lines(&self.dir.path().join("access.log"))
            .iter()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- nginx error log ---\n{}", self.error_log());
            let raw = std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default();
            let lines: Vec<&str> = raw.lines().collect();
            let tail = &lines[lines.len().saturating_sub(40)..];
            eprintln!(
                "--- nginx access log (last {}) ---\n{}",
                tail.len(),
                tail.join("\n")
            );
        }
        // SIGTERM: the master stops its workers, which a SIGKILL to the master alone would orphan.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .map(|v| v.to_str().unwrap())
        .unwrap_or_else(|| panic!("no {name} header in {headers:?}"))
}

/// A GET through nginx with extra headers: status, headers, body.
async fn get(nginx: &Nginx, path: &str, extra: &[(&str, &str)]) -> (StatusCode, HeaderMap, Vec<u8>) {
    let mut req = reqwest::Client::new().get(nginx.url(path));
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    (status, headers, resp.bytes().await.unwrap().to_vec())
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut child = Command::new("gzip")
        .arg("-dc")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "not gzip");
    out.stdout
}

/// The security headers of `deploy/nginx.conf`, on every response nginx sends.
fn assert_security_headers(headers: &HeaderMap) {
    assert_eq!(header(headers, "x-content-type-options"), "nosniff");
    assert_eq!(header(headers, "x-frame-options"), "DENY");
    assert_eq!(
        header(headers, "referrer-policy"),
        "strict-origin-when-cross-origin"
    );
    assert!(header(headers, "permissions-policy").contains("camera=()"));
    let csp = header(headers, "content-security-policy");
    assert!(
        csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
}

/// The first upstream nginx tried for a request (its log's `upstream` lists each try).
fn first_upstream(line: &Value) -> &str {
    line["upstream"]
        .as_str()
        .unwrap()
        .split(", ")
        .next()
        .unwrap_or("")
}

fn is_javascript(content_type: &str) -> bool {
    content_type.starts_with("application/javascript") || content_type.starts_with("text/javascript")
}

/// The value of `cauldron_ws_connections` in a host's own `/metrics`.
async fn ws_connections(host: &Host) -> f64 {
    let text = reqwest::get(host.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("cauldron_ws_connections "))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

/// Which of `hosts` serves the one WebSocket open on them (polls their metrics).
async fn socket_host(hosts: &[&Host]) -> usize {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let mut counts = Vec::new();
        for h in hosts {
            counts.push(ws_connections(h).await);
        }
        if let Some(i) = counts.iter().position(|c| *c == 1.0)
            && counts.iter().sum::<f64>() == 1.0
        {
            return i;
        }
        assert!(
            Instant::now() < deadline,
            "no single host holds the socket: {counts:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A WebSocket through nginx, past a ping/pong round trip (so its subscriptions are in place).
async fn connect_ws(nginx: &Nginx, token: &str) -> Socket {
    let (mut socket, resp) = tokio_tungstenite::connect_async(nginx.ws_url(&format!("/ws?token={token}")))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
    socket.send(Message::text(r#"{"type":"ping"}"#)).await.unwrap();
    assert_eq!(next(&mut socket).await["type"], "pong");
    socket
}

#[test]
fn a_half_written_log_line_is_left_for_later() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    assert!(complete_lines(&path).is_empty());
    std::fs::write(&path, "{\"a\":1}\n{\"b\":").unwrap();
    assert_eq!(complete_lines(&path), [r#"{"a":1}"#]);
    std::fs::write(&path, "{\"a\":1}\n{\"b\":2}\n").unwrap();
    assert_eq!(complete_lines(&path).len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_client_is_served_with_its_cache_and_security_headers() {
    let root = web_root();
    let web = root.path().join("web");
    // No host runs: static files never reach the upstream.
    let (p1, p2) = (crate::common::free_port(), crate::common::free_port());
    let (a, b) = (format!("127.0.0.1:{p1}"), format!("127.0.0.1:{p2}"));
    let nginx = Nginx::start(&web, &[&a, &b]).await;
    let index = std::fs::read(web.join("index.html")).unwrap();

    // The page itself: never cached without revalidation.
    let (status, headers, body) = get(&nginx, "/", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, index);
    assert!(header(&headers, "content-type").starts_with("text/html"));
    assert_eq!(header(&headers, "cache-control"), "no-cache");
    assert_security_headers(&headers);

    // An ES module: a JavaScript type (browsers refuse modules otherwise), revalidated by ETag.
    let app_js = std::fs::read(web.join("js/app.js")).unwrap();
    let (status, headers, body) = get(&nginx, "/js/app.js", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, app_js);
    assert!(is_javascript(header(&headers, "content-type")), "{headers:?}");
    assert_eq!(header(&headers, "cache-control"), "no-cache");
    assert!(headers.get(header::CONTENT_ENCODING).is_none());
    let etag = header(&headers, "etag").to_owned();
    let last_modified = header(&headers, "last-modified").to_owned();
    let (status, headers, body) = get(&nginx, "/js/app.js", &[("if-none-match", etag.as_str())]).await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    assert!(body.is_empty());
    assert_eq!(header(&headers, "cache-control"), "no-cache");
    let (status, _, _) = get(
        &nginx,
        "/js/app.js",
        &[("if-modified-since", last_modified.as_str())],
    )
    .await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    let (status, headers, _) = get(&nginx, "/css/app.css", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(header(&headers, "content-type").starts_with("text/css"));
    assert_eq!(header(&headers, "cache-control"), "no-cache");

    // A client-side route falls back to the page, uncached like it.
    let (status, headers, body) = get(&nginx, "/character/equipment", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, index);
    assert_eq!(header(&headers, "cache-control"), "no-cache");

    // A fingerprinted asset is cached for a year; a missing one is a 404, never the page.
    let (status, headers, body) = get(&nginx, &format!("/{ASSET}"), &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, std::fs::read(web.join(ASSET)).unwrap());
    assert!(is_javascript(header(&headers, "content-type")), "{headers:?}");
    assert_eq!(header(&headers, "cache-control"), YEAR);
    assert_security_headers(&headers);
    let (status, headers, body) = get(&nginx, "/assets/app-00000000.js", &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_ne!(body, index);
    assert!(headers.get(header::CACHE_CONTROL).is_none(), "{headers:?}");
    assert_security_headers(&headers);

    // gzip for a client that takes it, on scripts and styles large enough to gain from it.
    for (path, file) in [("/js/app.js", "js/app.js"), ("/css/app.css", "css/app.css")] {
        let plain = std::fs::read(web.join(file)).unwrap();
        let (status, headers, body) = get(&nginx, path, &[("accept-encoding", "gzip")]).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(header(&headers, "content-encoding"), "gzip", "{path}");
        assert!(header(&headers, "vary").contains("Accept-Encoding"));
        assert_eq!(header(&headers, "cache-control"), "no-cache");
        assert!(
            body.len() < plain.len() / 2,
            "{path}: {} of {}",
            body.len(),
            plain.len()
        );
        assert_eq!(gunzip(&body), plain, "{path}");
    }

    // Dotfiles, metrics: not served. nginx's own health check: answered by nginx.
    let (status, _, _) = get(&nginx, "/.secret", &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = get(&nginx, "/metrics", &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, body) = get(&nginx, "/nginx-healthz", &[]).await;
    assert_eq!((status, body.as_slice()), (StatusCode::OK, b"ok\n".as_slice()));
    // With no host up, the API is a 502 (after trying each), in the API's error format.
    let (status, headers, body) = get(&nginx, "/api/v1/catalog", &[]).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_security_headers(&headers);
    assert_eq!(header(&headers, "content-type"), "application/json");
    let body: Value = serde_json::from_slice(&body).expect("a JSON error");
    assert_eq!(body["error"]["code"], "bad_gateway", "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_api_and_websockets_work_through_nginx_across_two_hosts() {
    nginx_binary(); // Without nginx, fail before starting the hosts.
    let shared = Shared::new("nginx").await;
    let hosts = [Host::start(&shared).await, Host::start(&shared).await];
    let root = web_root();
    let nginx = Nginx::start(&root.path().join("web"), &[&hosts[0].addr, &hosts[1].addr]).await;
    let http = reqwest::Client::new();

    // Register, log in, see the character registration made, act: all through nginx.
    let (token, player_id, username) = register_at(&nginx.base).await;
    let resp = http
        .post(nginx.url("/api/v1/auth/login"))
        .json(&json!({"username": username, "password": "hunter2hunter2"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_security_headers(resp.headers());
    let login: Value = resp.json().await.unwrap();
    let token2 = login["token"].as_str().unwrap().to_owned();
    let resp = http
        .get(nginx.url("/api/v1/player"))
        .bearer_auth(&token2)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let state: Value = resp.json().await.unwrap();
    assert_eq!(state["player"]["id"], player_id);
    assert_eq!(state["stats"]["level"], 1.0, "{state}");
    let (status, body) = post_json(
        &nginx.base,
        "/api/v1/actions/cultivation/checkin",
        &token,
        &json!({}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["reply"].is_object(), "{body}");
    let (status, body) = post_json(
        &nginx.base,
        "/api/v1/actions/cultivation/checkin",
        &token,
        &json!({}),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (422, json!("already_checked_in")),
        "{body}"
    );
    // Both hosts served some of it (the five requests above).
    let api_upstreams = |log: &[Value]| -> Vec<String> {
        log.iter()
            .filter(|l| l["path"].as_str().unwrap().starts_with("/api/"))
            .map(|l| l["upstream"].as_str().unwrap().to_owned())
            .collect()
    };
    let log = nginx
        .wait_log("the five API requests", |log| api_upstreams(log).len() >= 5)
        .await;
    let upstreams = api_upstreams(&log);
    for h in &hosts {
        assert!(
            upstreams.contains(&h.addr),
            "{} served nothing: {upstreams:?}",
            h.addr
        );
    }

    // Request ids: the client's kept, a malformed one replaced, a missing one made; the host echoes
    // the one nginx sent it.
    for (sent, kept) in [
        (Some("nginx-test.0001"), true),
        (Some("not a request id!"), false),
        (None, false),
    ] {
        let mut req = http.get(nginx.url("/api/v1/auth/me")).bearer_auth(&token);
        if let Some(id) = sent {
            req = req.header("x-request-id", id);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let id = header(resp.headers(), "x-request-id");
        if kept {
            assert_eq!(Some(id), sent);
        } else {
            assert!(
                id.len() == 32 && id.chars().all(|c| c.is_ascii_hexdigit()),
                "nginx's $request_id expected, got {id:?}"
            );
        }
    }
    // An unknown API path is the host's JSON 404, not the web client.
    let resp = http.get(nginx.url("/api/v1/no-such-route")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "no_route");
    for path in ["/healthz", "/readyz"] {
        let (status, _, _) = get(&nginx, path, &[]).await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }

    // Body limits: nginx refuses what the host would (over MAX_BODY_BYTES, 64 KiB) itself; under
    // it, the body reaches the host whole.
    let echo = |pad: usize| {
        http.post(nginx.url("/api/v1/actions/probe/echo"))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(json!({"pad": "x".repeat(pad)}).to_string())
            .send()
    };
    let resp = echo(65 << 10).await.unwrap();
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(header(resp.headers(), "content-type"), "application/json");
    assert_security_headers(resp.headers());
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body["error"]["code"], "payload_too_large",
        "the host's own error format: {body}"
    );
    let resp = echo(60 << 10).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["reply"]["pad"].as_str().unwrap().len(), 60 << 10);
    // Plugin uploads may be larger: 200 KiB that is not a module reaches a host, which refuses it.
    let resp = http
        .post(nginx.url("/api/v1/admin/plugins/probe"))
        .bearer_auth(ADMIN_TOKEN)
        .body(vec![0u8; 200 << 10])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "plugin_refused", "{body}");
    // Large uploads without a token: the host refuses them unread and may close the connection under
    // nginx (401, or 502 when nginx was still sending). Either way no host leaves the players'
    // rotation: requests still reach both.
    for _ in 0..3 {
        let resp = http
            .post(nginx.url("/api/v1/admin/plugins/probe"))
            .body(vec![0u8; 4 << 20])
            .send()
            .await
            .unwrap();
        assert!(
            [StatusCode::UNAUTHORIZED, StatusCode::BAD_GATEWAY].contains(&resp.status()),
            "{}",
            resp.status()
        );
        let body: Value = resp.json().await.expect("a JSON error, from the host or nginx");
        assert!(body["error"]["code"].is_string(), "{body}");
    }
    let ids: Vec<String> = (0..4).map(|i| format!("rotation-check-{i}")).collect();
    for id in &ids {
        let (status, _, _) = get(&nginx, "/api/v1/catalog", &[("x-request-id", id.as_str())]).await;
        assert_eq!(status, StatusCode::OK);
    }
    let of_ids = |log: &[Value]| -> Vec<Value> {
        log.iter()
            .filter(|l| ids.iter().any(|id| l["request_id"] == id.as_str()))
            .cloned()
            .collect()
    };
    let log = nginx
        .wait_log("the four catalog requests", |log| of_ids(log).len() == ids.len())
        .await;
    let upstreams: Vec<String> = of_ids(&log)
        .iter()
        .map(|l| l["upstream"].as_str().unwrap().to_owned())
        .collect();
    for h in &hosts {
        assert!(
            upstreams.contains(&h.addr),
            "{} left the rotation: {upstreams:?}",
            h.addr
        );
    }
    assert!(!nginx.error_log().contains("no live upstreams"));

    // A WebSocket through nginx. Whichever host serves it, an action sent straight to the other
    // host reaches it (over Redis).
    let mut socket = connect_ws(&nginx, &token).await;
    let serving = socket_host(&[&hosts[0], &hosts[1]]).await;
    let other = &hosts[1 - serving];
    eprintln!(
        "nginx put the socket on {}; actions go straight to {}",
        hosts[serving].addr, other.addr
    );
    let (actor_token, actor_id, _) = register_at(&other.base).await;
    let (status, body) = shout(&other.base, &actor_token, 21).await;
    assert_eq!(status, 200, "{body}");
    let event = next(&mut socket).await;
    assert_eq!(event["type"], "event", "{event}");
    assert_eq!(event["event"]["topic"], "shout_all");
    assert_eq!(event["event"]["player_id"], actor_id);
    assert_eq!(event["event"]["data"], 21);
    // The socket's own player acting through the other host: its player event arrives too.
    let (status, _) = shout(&other.base, &token, 22).await;
    assert_eq!(status, 200);
    let mut topics = Vec::new();
    while topics.len() < 2 {
        let e = next(&mut socket).await;
        assert_eq!(e["event"]["data"], 22, "{e}");
        topics.push(e["event"]["topic"].as_str().unwrap().to_owned());
    }
    topics.sort();
    assert_eq!(topics, ["shout", "shout_all"]);
    // Actions over the socket itself, through nginx.
    socket
        .send(Message::text(
            json!({"type": "action", "id": 7, "plugin": "probe", "action": "echo", "params": {"hi": 1}})
                .to_string(),
        ))
        .await
        .unwrap();
    let mut reply = next(&mut socket).await;
    while reply["type"] == "event" {
        reply = next(&mut socket).await;
    }
    assert_eq!(reply["type"], "action_result", "{reply}");
    assert_eq!(reply["id"], 7);
    // nginx logs paths only: the socket's token is not in its log (written when the socket ends).
    socket.close(None).await.unwrap();
    let deadline = Instant::now() + DEADLINE;
    while !nginx.access_log().iter().any(|l| l["path"] == "/ws") {
        assert!(Instant::now() < deadline, "no /ws line in nginx's access log");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let log = complete_lines(&nginx.dir.path().join("access.log")).join("\n");
    assert!(!log.contains(&token), "a token in nginx's access log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn requests_keep_succeeding_through_nginx_when_a_host_is_killed() {
    one_host_stops(Stop::Kill).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn requests_keep_succeeding_through_nginx_when_a_host_is_stopped() {
    one_host_stops(Stop::Terminate).await;
}

/// How a host goes away.
#[derive(Debug, Clone, Copy)]
enum Stop {
    /// SIGKILL: a crash, a lost machine.
    Kill,
    /// SIGTERM: an upgrade or a scale-down; the host closes its sockets and exits.
    Terminate,
}

/// Two hosts behind nginx; the one serving a WebSocket stops; reads, writes and a reconnected socket
/// keep working through nginx on the other.
async fn one_host_stops(how: Stop) {
    nginx_binary(); // Without nginx, fail before starting the hosts.
    let shared = Shared::new("nginx").await;
    let mut hosts = [Host::start(&shared).await, Host::start(&shared).await];
    let root = web_root();
    let nginx = Nginx::start(&root.path().join("web"), &[&hosts[0].addr, &hosts[1].addr]).await;
    let http = reqwest::Client::new();
    let (token, _, _) = register_at(&nginx.base).await;
    // Traffic to both hosts first, so nginx holds keep-alive connections to each.
    for _ in 0..10 {
        let resp = http
            .get(nginx.url("/api/v1/player"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
    }

    // Stop the host that serves the socket: the socket ends, and the client reconnects through
    // nginx to the survivor.
    let mut socket = connect_ws(&nginx, &token).await;
    let victim = socket_host(&[&hosts[0], &hosts[1]]).await;
    let dead = hosts[victim].addr.clone();
    let alive = hosts[1 - victim].addr.clone();
    // Everything before the stop is in the log (the registration and the ten reads), so the lines
    // after this mark are the requests made after it.
    let log_before = nginx
        .wait_log("the eleven requests before the stop", |log| log.len() >= 11)
        .await
        .len();
    // The socket is read while the host goes, as a browser would (which answers a close frame),
    // until the connection is gone.
    let ended = tokio::time::timeout(DEADLINE, async {
        while let Some(Ok(_)) = futures_util::StreamExt::next(&mut socket).await {}
    });
    let ended = match how {
        Stop::Kill => {
            hosts[victim].kill();
            ended.await
        }
        Stop::Terminate => tokio::join!(hosts[victim].terminate(), ended).1,
    };
    eprintln!("{how:?}: {dead} is gone; {alive} remains");
    assert!(ended.is_ok(), "the socket on the stopped host did not end");

    // Reads keep succeeding.
    for i in 0..20 {
        let resp = http
            .get(nginx.url("/api/v1/player"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "GET {i} after the stop");
    }

    // Writes too: a POST nginx tried on the dead host (connection refused, so never sent) is sent
    // to the live one. nginx stops trying the dead host for `fail_timeout` after a failure, so keep
    // posting until the log shows a POST that met it (at least 10 posts), each applied once.
    let mut socket = connect_ws(&nginx, &token).await;
    let deadline = Instant::now() + DEADLINE;
    let mut posts = 0;
    loop {
        let (status, body) = post_json(
            &nginx.base,
            "/api/v1/actions/probe/grant",
            &token,
            &json!({"n": 1}),
        )
        .await;
        posts += 1;
        assert_eq!(status, 200, "POST {posts} after the stop: {body}");
        let retried_post = nginx.access_log()[log_before..]
            .iter()
            .any(|l| l["method"] == "POST" && first_upstream(l) == dead);
        if posts >= 10 && retried_post {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no POST met the dead host within the deadline"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let resp = http
        .get(nginx.url("/api/v1/player"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let state: Value = resp.json().await.unwrap();
    assert_eq!(state["items"]["gem"], posts, "each POST applied exactly once");
    // The reconnected socket, now on the survivor, hears of an action sent through nginx.
    let (status, _) = shout(&nginx.base, &token, 99).await;
    assert_eq!(status, 200);
    loop {
        let event = next(&mut socket).await;
        assert_eq!(event["type"], "event", "{event}");
        if event["event"]["data"] == 99 {
            break;
        }
    }

    let after = &nginx.access_log()[log_before..];
    let retried = after.iter().filter(|l| first_upstream(l) == dead).count();
    assert!(
        after
            .iter()
            .filter(|l| l["path"] != "/ws")
            .all(|l| l["status"] == 200),
        "{after:?}"
    );
    eprintln!(
        "{how:?}: after the stop, {} requests through nginx, all 200; {retried} first tried on the dead host \
         and retried on {alive}; {posts} POSTs",
        after.len()
    );
}

/// `POST path` through nginx from `client` with a JSON body and extra headers: status, body and
/// `Retry-After`.
async fn post_from(
    nginx: &Nginx,
    client: &reqwest::Client,
    path: &str,
    headers: &[(&str, &str)],
    body: &Value,
) -> (StatusCode, Value, Option<u64>) {
    let mut req = client.post(nginx.url(path)).json(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
    (status, resp.json().await.unwrap_or(Value::Null), retry_after)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn clients_behind_nginx_are_limited_apart() {
    nginx_binary(); // Without nginx, fail before starting the hosts.
    let shared = Shared::new("nginx").await;
    // nginx connects to the hosts from 127.0.0.1, the only proxy they trust. Small per-address
    // buckets that regain a token an hour, shared by both hosts through Redis.
    let limits = [
        ("TRUSTED_PROXIES", "127.0.0.1"),
        ("RATE_LIMIT_REGISTER_BURST", "3"),
        ("RATE_LIMIT_REGISTER_PER_MIN", "0.0166"),
        ("RATE_LIMIT_LOGIN_ADDR_BURST", "4"),
        ("RATE_LIMIT_LOGIN_ADDR_PER_MIN", "0.0166"),
    ];
    let hosts = [
        Host::start_with(&shared, &limits).await,
        Host::start_with(&shared, &limits).await,
    ];
    let root = web_root();
    let nginx = Nginx::start(&root.path().join("web"), &[&hosts[0].addr, &hosts[1].addr]).await;
    // Two clients on one machine, seen by nginx as two peers: each binds its own loopback address.
    let client = |addr: &str| {
        reqwest::Client::builder()
            .local_address(Some(addr.parse().unwrap()))
            .build()
            .unwrap()
    };
    let (flooder, neighbour) = (client("127.0.0.2"), client("127.0.0.3"));
    let register = "/api/v1/auth/register";
    let login = "/api/v1/auth/login";
    let account = || json!({"username": format!("nx_{:08x}", crate::common::random_u64() as u32), "password": "hunter2hunter2"});

    // The flood: three registrations pass, then every one is refused, whichever host nginx picks,
    // and whatever the client claims to forward for.
    let mut refused_ids = Vec::new();
    for i in 0..8 {
        let id = format!("flood-{i}");
        let mut headers = vec![("x-request-id", id.as_str())];
        if i % 2 == 1 {
            headers.push(("x-forwarded-for", "198.51.100.1"));
        }
        let (status, body, retry) = post_from(&nginx, &flooder, register, &headers, &account()).await;
        if i < 3 {
            assert_eq!(status, StatusCode::CREATED, "registration {i}: {body}");
        } else {
            assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "registration {i}: {body}");
            assert_eq!(body["error"]["code"], "rate_limited", "{body}");
            assert!(retry.unwrap() >= 1);
            refused_ids.push(id);
        }
    }
    // The other client registers as usual.
    let theirs = account();
    let neighbour_id = ("x-request-id", "neighbour");
    let (status, body, _) = post_from(&nginx, &neighbour, register, &[neighbour_id], &theirs).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // One password against many names: four tries, then 429 even with a right password; the
    // other client logs in.
    for i in 0..4 {
        let guess = json!({"username": format!("nobody_{i}"), "password": "123456789"});
        let (status, body, _) = post_from(&nginx, &flooder, login, &[], &guess).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "login {i}: {body}");
    }
    let (status, body, _) = post_from(&nginx, &flooder, login, &[], &theirs).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    let (status, body, _) = post_from(&nginx, &neighbour, login, &[], &theirs).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // nginx saw two peers, and the refusals came from both hosts: the bucket is the deployment's,
    // not one host's.
    let log = nginx
        .wait_log("every refused registration and the neighbour's", |log| {
            refused_ids
                .iter()
                .map(String::as_str)
                .chain(["neighbour"])
                .all(|id| log.iter().any(|l| l["request_id"] == id))
        })
        .await;
    let peers: std::collections::BTreeSet<&str> = log
        .iter()
        .filter(|l| l["path"] == register)
        .map(|l| l["remote_addr"].as_str().unwrap())
        .collect();
    assert_eq!(peers, ["127.0.0.2", "127.0.0.3"].into(), "{log:?}");
    let refusing: std::collections::BTreeSet<&str> = log
        .iter()
        .filter(|l| refused_ids.iter().any(|id| l["request_id"] == id.as_str()))
        .map(|l| l["upstream"].as_str().unwrap())
        .collect();
    assert_eq!(refusing.len(), 2, "refused by {refusing:?}");
}
