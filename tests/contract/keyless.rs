//! Keyless storage end to end: Azurite in OAuth mode (`--oauth basic`, which needs HTTPS: a
//! self-signed certificate made here, trusted through `SSL_CERT_FILE`), a loopback server
//! standing in for the App Service managed-identity endpoint, a stand-in `az` for the lead tools,
//! and the real `handler` with only identity-based settings: no key or connection string in its
//! environment.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::common::leads::*;
use crate::common::*;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use serde_json::{json, Value};

const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const IDENTITY_HEADER: &str = "identity-header-for-tests";

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

/// An Entra-shaped access token with the claims Azurite checks (audience, issuer, lifetime);
/// Azurite does not check signatures.
fn token(lifetime: i64) -> String {
    let header = json!({"alg": "RS256", "typ": "JWT"});
    let claims = json!({"aud": "https://storage.azure.com", "iss": format!("https://sts.windows.net/{TENANT}/"),
        "iat": now() - 60, "nbf": now() - 60, "exp": now() + lifetime, "oid": "00000000-0000-0000-0000-00000000a11d", "tid": TENANT});
    format!("{}.{}.{}", B64.encode(header.to_string()), B64.encode(claims.to_string()), B64.encode(b"unsigned"))
}

/// Azurite's table service over HTTPS with bearer-token checks on.
async fn oauth_azurite(dir: &Path) -> (Killed, String, PathBuf) {
    let (cert, key) = self_signed_certificate(dir);
    let port = free_port();
    let log = std::fs::File::create(dir.join("azurite.log")).unwrap();
    let child = std::process::Command::new(format!("{}/node_modules/.bin/azurite-table", env!("CARGO_MANIFEST_DIR")))
        .args(["--tableHost", "127.0.0.1", "--tablePort", &port.to_string(), "--oauth", "basic"])
        .arg("--cert")
        .arg(&cert)
        .arg("--key")
        .arg(&key)
        .args(["--inMemoryPersistence", "--skipApiVersionCheck", "--disableTelemetry"])
        .current_dir(dir)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("Azurite (./scripts/test installs it)");
    let started = Instant::now();
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        assert!(started.elapsed() < Duration::from_secs(30), "Azurite did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (Killed(child), format!("https://127.0.0.1:{port}/devstoreaccount1"), cert)
}

/// The App Service managed-identity endpoint: checks the header and the query as the platform's
/// does, counts the tokens it hands out, and can be made to fail.
#[derive(Default)]
struct IdentityEndpoint {
    hits: AtomicU64,
    failing: AtomicBool,
}

async fn identity(
    State(s): State<Arc<IdentityEndpoint>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> (StatusCode, Json<Value>) {
    s.hits.fetch_add(1, Ordering::SeqCst);
    if s.failing.load(Ordering::SeqCst) {
        return (StatusCode::INTERNAL_SERVER_ERROR, Json(json!({"error": "identity service unavailable"})));
    }
    if headers.get("x-identity-header").and_then(|v| v.to_str().ok()) != Some(IDENTITY_HEADER) {
        return (StatusCode::UNAUTHORIZED, Json(json!({"error": "bad X-IDENTITY-HEADER"})));
    }
    if q.get("api-version").map(String::as_str) != Some("2019-08-01")
        || q.get("resource").map(String::as_str) != Some("https://storage.azure.com")
    {
        return (StatusCode::BAD_REQUEST, Json(json!({"error": format!("unexpected query {q:?}")})));
    }
    let client_id = q.get("client_id").cloned().unwrap_or_else(|| "system-assigned".into());
    (
        StatusCode::OK,
        Json(json!({"access_token": token(3600), "expires_on": (now() + 3600).to_string(), "resource": "https://storage.azure.com",
            "token_type": "Bearer", "client_id": client_id})),
    )
}

async fn identity_endpoint() -> (Arc<IdentityEndpoint>, String) {
    let state = Arc::new(IdentityEndpoint::default());
    let app = axum::Router::new().route("/msi/token", axum::routing::get(identity)).with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/msi/token", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (state, url)
}

/// Rows of a table read over HTTPS with a token of our own (the test's view of the truth).
async fn rows(base: &str, cert: &Path, table: &str) -> Vec<Value> {
    let pem = std::fs::read(cert).unwrap();
    let http = reqwest::Client::builder().add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap()).build().unwrap();
    let resp = http
        .get(format!("{base}/{table}()"))
        .header("Authorization", format!("Bearer {}", token(600)))
        .header("x-ms-version", "2019-02-02")
        .header("Accept", "application/json;odata=nometadata")
        .send()
        .await
        .unwrap();
    if resp.status() == 404 {
        return Vec::new();
    }
    assert_eq!(resp.status(), 200);
    resp.json::<Value>().await.unwrap()["value"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leads_are_stored_and_notified_on_the_managed_identity_alone() {
    let dir = tempfile::tempdir().unwrap();
    let (_azurite, base, cert) = oauth_azurite(dir.path()).await;
    let (endpoint, endpoint_url) = identity_endpoint().await;
    let hook = Receiver::start().await;
    let table = unique_table();
    let env: Vec<(&str, String)> = vec![
        ("LEADS_TABLE", table.clone()),
        ("AzureWebJobsStorage__tableServiceUri", base.clone()),
        ("AzureWebJobsStorage__credential", "managedidentity".into()),
        ("AzureWebJobsStorage__clientId", "5c0ffee0-user-assigned".into()),
        ("IDENTITY_ENDPOINT", endpoint_url.clone()),
        ("IDENTITY_HEADER", IDENTITY_HEADER.into()),
        ("SSL_CERT_FILE", cert.to_string_lossy().into_owned()),
        ("NOTIFY_WEBHOOK_URL", hook.url()),
        ("NOTIFY_WEBHOOK_SECRET", SECRET.into()),
        ("NOTIFY_IMMEDIATE", "false".into()),
    ];
    for (name, value) in &env {
        assert!(!value.contains("AccountKey") && !name.eq_ignore_ascii_case("AzureWebJobsStorage"), "no key anywhere: {name}");
    }
    let h = spawn_handler(Mode::Host, &env).await;
    for company in ["Keyless One", "Keyless Two", "Keyless Three"] {
        ingest(&h, lead_body(company, "PLT")).await;
    }
    timer_ok(&h).await;
    assert_eq!(hook.requests().len(), 3, "{}", h.logs());
    let stored = rows(&base, &cert, &table).await;
    assert_eq!(stored.len(), 3);
    assert!(stored.iter().all(|r| r["NotifyWebhookState"] == "delivered"));
    assert_eq!(endpoint.hits.load(Ordering::SeqCst), 1, "one token, fetched once and reused for every table call");

    // The identity endpoint fails: a lead is answered 5xx, nothing is half-written, and the log
    // names the setting at fault. (A fresh process: the first one still holds a valid token.)
    drop(h);
    endpoint.failing.store(true, Ordering::SeqCst);
    let h = spawn_handler(Mode::Host, &env).await;
    let resp = reqwest::Client::new().post(h.url("/api/LeadIngest")).body(lead_body("No Token Co", "PLT")).send().await.unwrap();
    assert!(resp.status().is_server_error(), "{}", resp.status());
    assert!(resp.text().await.unwrap().contains("not stored"));
    assert_eq!(rows(&base, &cert, &table).await.len(), 3, "nothing stored");
    let logs = h.logs();
    assert!(logs.contains("AzureWebJobsStorage__credential") && logs.contains("managed identity"), "{logs}");
    assert!(!logs.contains(&token(3600)[..40]), "no token in the logs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lead_tools_work_from_a_laptop_with_az_login() {
    let dir = tempfile::tempdir().unwrap();
    let (_azurite, base, cert) = oauth_azurite(dir.path()).await;
    let (endpoint, endpoint_url) = identity_endpoint().await;
    let table = unique_table();
    // Seed through a managed-identity handler, then read with the developer's CLI login.
    let seed_env: Vec<(&str, String)> = vec![
        ("LEADS_TABLE", table.clone()),
        ("LEADS_STORAGE__tableServiceUri", base.clone()),
        ("LEADS_STORAGE__credential", "managedidentity".into()),
        ("IDENTITY_ENDPOINT", endpoint_url),
        ("IDENTITY_HEADER", IDENTITY_HEADER.into()),
        ("SSL_CERT_FILE", cert.to_string_lossy().into_owned()),
    ];
    let h = spawn_handler(Mode::Host, &seed_env).await;
    ingest(&h, lead_body("Laptop Reads Co", "INS")).await;
    assert_eq!(endpoint.hits.load(Ordering::SeqCst), 1);

    // A stand-in `az` that answers `az account get-access-token` as Azure CLI 2.54+ does.
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let calls = dir.path().join("az-calls");
    let script = format!(
        "#!/bin/sh\necho \"$@\" >> '{}'\ncase \"$*\" in *get-access-token*) printf '%s' '{}' ;; *) exit 1 ;; esac\n",
        calls.display(),
        json!({"accessToken": token(3600), "expires_on": now() + 3600, "tokenType": "Bearer", "tenant": TENANT})
    );
    std::fs::write(bin.join("az"), script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(bin.join("az"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let laptop_env: Vec<(&str, String)> = vec![
        ("LEADS_TABLE", table.clone()),
        ("LEADS_STORAGE__accountName", "ignored".into()),
        ("LEADS_STORAGE__tableServiceUri", base.clone()),
        ("SSL_CERT_FILE", cert.to_string_lossy().into_owned()),
    ];
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    for args in [&["leads", "list"][..], &["leads", "status"][..], &["leads", "export", "--format", "json"][..]] {
        let out = handler_command(&laptop_env).env("PATH", &path).args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        if args[1] != "status" {
            assert!(String::from_utf8_lossy(&out.stdout).contains("Laptop Reads Co"), "{args:?}");
        }
    }
    let az_calls = std::fs::read_to_string(&calls).unwrap();
    assert!(az_calls.contains("account get-access-token") && az_calls.contains("https://storage.azure.com/.default"), "{az_calls}");
    assert_eq!(endpoint.hits.load(Ordering::SeqCst), 1, "the laptop never asks the managed identity");

    // Not logged in: the tool says what to do, and names the setting.
    std::fs::write(bin.join("az"), "#!/bin/sh\necho \"ERROR: Please run 'az login' to setup account.\" >&2\nexit 1\n").unwrap();
    let out = handler_command(&laptop_env).env("PATH", &path).args(["leads", "list"]).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("az login") && stderr.contains("LEADS_STORAGE"), "{stderr}");
}
