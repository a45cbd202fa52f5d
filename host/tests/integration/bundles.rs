//! Plugin bundles through the admin API, on both backends: a bundle (module and content tables)
//! uploaded in one request is one version with one digest; a content-only change is a new version;
//! a rollback restores the content with the module; the last `PLUGIN_KEEP_VERSIONS` are kept.
//!
//! Needs what the API tests need (see `common`).

#![allow(clippy::unwrap_used, reason = "an unwrap is an assertion in a test")]

use reqwest::StatusCode;
use serde_json::Value;

use cauldron_runtime::{BUNDLE_MEDIA_TYPE, Bundle};

use crate::common::TestApp;

const ADMIN: &str = "bundles-admin-token-0123456789abcdef";

async fn start(backend: crate::common::Backend) -> TestApp {
    TestApp::start_with(backend, &[("ADMIN_TOKEN", ADMIN), ("PLUGIN_KEEP_VERSIONS", "3")]).await
}

async fn admin(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    body: Option<(&str, Vec<u8>)>,
) -> (StatusCode, Value) {
    let mut req = app.http.request(method, app.url(path)).bearer_auth(ADMIN);
    if let Some((content_type, bytes)) = body {
        req = req.header("content-type", content_type).body(bytes);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// The serving version of `plugin` as `GET /admin/plugins` shows it.
async fn serving(app: &TestApp, plugin: &str) -> Value {
    let (status, list) = admin(app, reqwest::Method::GET, "/api/v1/admin/plugins", None).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    list.as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == plugin)
        .cloned()
        .unwrap_or_else(|| panic!("{plugin} not listed: {list}"))
}

/// The meditation gain base the catalog shows for cultivation (its content as served).
async fn gain_base(app: &TestApp) -> f64 {
    let catalog: Value = app
        .http
        .get(app.url("/api/v1/catalog"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let cultivation = catalog
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["manifest"]["name"] == "cultivation")
        .unwrap();
    cultivation["content"]["cultivation"]["meditate"]["gain_base"]
        .as_f64()
        .unwrap()
}

/// The cultivation bundle of the app's plugins folder with the meditation gain base set to `gain`.
fn cultivation_with_gain(app: &TestApp, gain: &str) -> Bundle {
    let mut bundle = Bundle::from_dir(&app.state.config.plugins_dir, "cultivation").unwrap();
    let text = bundle.content.get_mut("cultivation").unwrap();
    let before = text.clone();
    *text = text.replacen("gain_base = 1.0", &format!("gain_base = {gain}"), 1);
    assert_ne!(*text, before, "the table has the line this test edits");
    bundle
}

async fn upload(app: &TestApp, bundle: &Bundle) -> Value {
    let (status, body) = admin(
        app,
        reqwest::Method::POST,
        "/api/v1/admin/plugins/cultivation",
        Some((BUNDLE_MEDIA_TYPE, bundle.encode())),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

async fn a_content_only_bundle_is_a_new_version_and_rolls_back_with_its_content(app: TestApp) {
    let files = serving(&app, "cultivation").await;
    let on_disk = Bundle::from_dir(&app.state.config.plugins_dir, "cultivation").unwrap();
    assert_eq!(
        files["sha256"],
        on_disk.digest().as_str(),
        "the files serve as one bundle"
    );
    assert_eq!(gain_base(&app).await, 1.0);

    // Only a number in a content table changes: a new version, same module, same semver.
    let richer = cultivation_with_gain(&app, "2.0");
    let uploaded = upload(&app, &richer).await;
    assert_eq!(uploaded["sha256"], richer.digest().as_str(), "{uploaded}");
    assert_ne!(uploaded["sha256"], files["sha256"]);
    assert_eq!(
        uploaded["wasm_sha256"], files["wasm_sha256"],
        "the module is the same"
    );
    assert_eq!(uploaded["version"], files["version"], "the semver is the same");
    assert_eq!(gain_base(&app).await, 2.0, "the uploaded content serves");
    let (_, versions) = admin(
        &app,
        reqwest::Method::GET,
        "/api/v1/admin/plugins/cultivation/versions",
        None,
    )
    .await;
    let digests: Vec<&str> = versions
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["sha256"].as_str().unwrap())
        .collect();
    assert_eq!(
        digests,
        [richer.digest(), on_disk.digest()],
        "the upload, then the files it replaced, stored: {versions}"
    );
    assert_eq!(versions[0]["active"], true);
    assert_eq!(versions[1]["previous"], true);

    // The rollback restores the content with the module; the disk was never touched.
    let (status, back) = admin(
        &app,
        reqwest::Method::POST,
        "/api/v1/admin/plugins/cultivation/rollback",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{back}");
    assert_eq!(back["sha256"], on_disk.digest().as_str(), "{back}");
    assert_eq!(gain_base(&app).await, 1.0);

    // Any kept version serves again by its digest.
    let path = format!(
        "/api/v1/admin/plugins/cultivation/versions/{}/activate",
        richer.digest()
    );
    let (status, again) = admin(&app, reqwest::Method::POST, &path, None).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(gain_base(&app).await, 2.0);

    // Logged actions name the bundle that ran them.
    let player = app
        .state
        .store
        .create_account("bundle-logger", "x", cauldron_host::store::Role::Player)
        .await
        .unwrap();
    let player = app.state.game.create_character(player.id, "b").await.unwrap();
    let logged = app.state.store.action_log("cultivation", 0, 10).await.unwrap();
    let start = logged
        .iter()
        .find(|l| l.player_id == player.id)
        .expect("the start action is logged");
    assert_eq!(start.entry.plugin_sha256, richer.digest());

    // Only the last three versions are kept (PLUGIN_KEEP_VERSIONS=3), never the active one or the
    // rollback target.
    for gain in ["3.0", "4.0"] {
        upload(&app, &cultivation_with_gain(&app, gain)).await;
    }
    let (_, versions) = admin(
        &app,
        reqwest::Method::GET,
        "/api/v1/admin/plugins/cultivation/versions",
        None,
    )
    .await;
    let kept = versions.as_array().unwrap();
    assert_eq!(kept.len(), 3, "{versions}");
    assert_eq!(kept[0]["active"], true);
    assert_eq!(kept[1]["previous"], true);
    assert_eq!(gain_base(&app).await, 4.0);
}

async fn bad_bundles_are_refused_with_json_errors(app: TestApp) {
    let before = serving(&app, "cultivation").await;
    let post = |body: Vec<u8>, content_type: &'static str| {
        let app = &app;
        async move {
            admin(
                app,
                reqwest::Method::POST,
                "/api/v1/admin/plugins/cultivation",
                Some((content_type, body)),
            )
            .await
        }
    };
    let (status, body) = post(b"not a bundle".to_vec(), BUNDLE_MEDIA_TYPE).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "bad_bundle", "{body}");

    let mut truncated = cultivation_with_gain(&app, "2.0").encode();
    truncated.truncate(truncated.len() - 3);
    let (status, body) = post(truncated, BUNDLE_MEDIA_TYPE).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("bad_bundle"))
    );

    // A table that is not TOML, or a bundle of another plugin's module: refused, nothing changes.
    let mut broken = cultivation_with_gain(&app, "2.0");
    broken
        .content
        .insert("luck".into(), "this is = = not toml".into());
    let (status, body) = post(broken.encode(), BUNDLE_MEDIA_TYPE).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["code"], "plugin_refused", "{body}");
    let pet = Bundle::from_dir(&app.state.config.plugins_dir, "pet").unwrap();
    let (status, body) = post(pet.encode(), BUNDLE_MEDIA_TYPE).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");

    let (status, body) = admin(
        &app,
        reqwest::Method::POST,
        "/api/v1/admin/plugins/cultivation/versions/nothex/activate",
        None,
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("bad_digest"))
    );
    let path = format!(
        "/api/v1/admin/plugins/cultivation/versions/{}/activate",
        "0".repeat(64)
    );
    let (status, body) = admin(&app, reqwest::Method::POST, &path, None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("no_artifact"))
    );

    let after = serving(&app, "cultivation").await;
    assert_eq!(after["sha256"], before["sha256"]);
}

both_backends!(crate::bundles::start;
    a_content_only_bundle_is_a_new_version_and_rolls_back_with_its_content,
    bad_bundles_are_refused_with_json_errors,
);
