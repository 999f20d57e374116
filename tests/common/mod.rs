//! Test harness: the real `handler` binary, driven as the Azure Functions host drives it, against
//! the real Azurite and SMTP server that `scripts/test` starts; HTTP receivers on loopback.
//! Shared by the integration tests and the benchmark (`benches/leadbench.rs` includes it).
#![allow(dead_code)]

pub mod crm;
pub mod leads;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
pub use marketplace_leads::store::account::azurite_connection_string;
use marketplace_leads::store::{RetryPolicy, SharedTable, StorageAccount, TableClient};
use serde_json::{json, Value};

fn env_port(name: &str) -> u16 {
    std::env::var(name)
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("{name} is not set: run the tests with ./scripts/test, which starts Azurite and the SMTP server"))
}

pub fn azurite_port() -> u16 {
    env_port("TEST_AZURITE_TABLE_PORT")
}

pub fn connection_string() -> String {
    azurite_connection_string(azurite_port())
}

/// A table name no other test uses.
pub fn unique_table() -> String {
    format!("Leads{}", uuid::Uuid::new_v4().simple())
}

pub fn table_client(table: &str) -> SharedTable {
    Arc::new(TableClient::new(StorageAccount::azurite(azurite_port()), table, RetryPolicy::default()).expect("table client"))
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A loopback port that refuses every connection for as long as the value lives: bound, never
/// listening, so no test running beside can take it (as it could a port `free_port` let go).
pub struct ClosedPort {
    pub port: u16,
    _socket: tokio::net::TcpSocket,
}

pub fn closed_port() -> ClosedPort {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    ClosedPort { port: socket.local_addr().unwrap().port(), _socket: socket }
}

/// A child process (a server a test starts) killed and reaped when the value is dropped.
pub struct Killed(pub std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A self-signed certificate for 127.0.0.1 and localhost, written into `dir` as
/// (`cert.pem`, `key.pem`): servers the tests start over TLS, trusted through `SSL_CERT_FILE`.
pub fn self_signed_certificate(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    (cert, key)
}

pub fn smtp_port() -> u16 {
    env_port("TEST_SMTP_PORT")
}

pub fn maildir() -> std::path::PathBuf {
    std::path::PathBuf::from(std::env::var("TEST_SMTP_MAILDIR").expect("TEST_SMTP_MAILDIR: run ./scripts/test"))
}

/// Every message the SMTP server stored whose text contains `needle`.
pub fn mails_containing(needle: &str) -> Vec<String> {
    let mut out = Vec::new();
    for sub in ["new", "cur"] {
        if let Ok(dir) = std::fs::read_dir(maildir().join(sub)) {
            for f in dir.flatten() {
                let Ok(raw) = std::fs::read_to_string(f.path()) else { continue };
                // Search the decoded message: subjects and bodies are MIME-encoded.
                let Ok(mail) = mailparse::parse_mail(raw.as_bytes()) else { continue };
                let mut text: String = mail.headers.iter().map(|h| h.get_value() + "\n").collect();
                for part in mail.parts() {
                    text.push_str(&part.get_body().unwrap_or_default());
                }
                if text.contains(needle) {
                    out.push(raw);
                }
            }
        }
    }
    out
}

pub enum Mode {
    /// Under the Functions host: listens on FUNCTIONS_CUSTOMHANDLER_PORT.
    Host,
    /// `handler serve --port N`.
    Serve,
}

/// A running `handler` process, killed on drop.
pub struct Handler {
    pub port: u16,
    pub child: Child,
    pub stderr_path: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Handler {
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Handler {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn handler_command(env: &[(&str, String)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_handler"));
    cmd.env_clear();
    cmd.env("PATH", std::env::var("PATH").unwrap_or_default());
    cmd.env("RUST_LOG", "info");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// Starts the real binary and waits until it answers `GET /`, as the host's readiness probe does.
pub async fn spawn_handler(mode: Mode, env: &[(&str, String)]) -> Handler {
    spawn_on_a_free_port(|port| {
        let mut cmd = handler_command(env);
        match mode {
            Mode::Host => {
                cmd.env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string());
            }
            Mode::Serve => {
                cmd.args(["serve", "--port", &port.to_string()]);
            }
        }
        cmd
    })
    .await
}

/// Runs the command `build` makes for a free port. `free_port` lets the port go before the child
/// binds it, so a test running beside may take it first: the child then cannot listen, and it is
/// started again on another port. Ready means the child itself logged that it listens and
/// answers the probe (an answer from whatever else holds the port never counts).
async fn spawn_on_a_free_port(build: impl Fn(u16) -> Command) -> Handler {
    for _ in 0..5 {
        let port = free_port();
        let dir = tempfile::tempdir().unwrap();
        let stderr_path = dir.path().join("stderr.log");
        let mut cmd = build(port);
        cmd.stdout(Stdio::null()).stderr(std::fs::File::create(&stderr_path).unwrap());
        let child = cmd.spawn().expect("spawn handler");
        if let Some(handler) = wait_until_ready(Handler { port, child, stderr_path, _dir: dir }).await {
            return handler;
        }
    }
    panic!("the handler found no free port in 5 tries");
}

/// `handler serve --port <free> <args>` with the key `LEADS_INGEST_KEY=key`, optionally under
/// an open-file limit (`ulimit -n`, as a small container would set it).
pub async fn spawn_serve(env: &[(&str, String)], key: &str, args: &[&str], open_files: Option<u32>) -> Handler {
    spawn_on_a_free_port(|port| {
        let mut cmd = handler_command(env);
        if let Some(n) = open_files {
            // `exec` keeps the pid: the child is the handler itself, for /proc and kill.
            let mut sh = Command::new("sh");
            sh.args(["-c", &format!("ulimit -n {n} && exec \"$0\" \"$@\""), env!("CARGO_BIN_EXE_handler")]);
            sh.env_clear();
            for (k, v) in cmd.get_envs() {
                if let Some(v) = v {
                    sh.env(k, v);
                }
            }
            cmd = sh;
        }
        cmd.env("LEADS_INGEST_KEY", key).args(["serve", "--port", &port.to_string()]).args(args);
        cmd
    })
    .await
}

/// The handler once it listens and answers; `None` when it could not listen on its port.
async fn wait_until_ready(mut handler: Handler) -> Option<Handler> {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if handler.logs().contains("handler listening") && client.get(handler.url("/")).send().await.is_ok() {
            return Some(handler);
        }
        if let Ok(Some(status)) = handler.child.try_wait() {
            if handler.logs().contains("cannot listen") {
                return None;
            }
            panic!("handler exited with {status}: {}", handler.logs());
        }
        assert!(Instant::now() < deadline, "handler did not start: {}", handler.logs());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Settings for a handler using the test Azurite and `table`.
///
/// The in-process run after intake (`NOTIFY_IMMEDIATE`) is off here: these tests drive LeadNotify
/// through the host's timer and count what each invocation did. `tests/immediate.rs` covers it.
pub fn base_env(table: &str) -> Vec<(&'static str, String)> {
    vec![("AzureWebJobsStorage", connection_string()), ("LEADS_TABLE", table.to_string()), ("NOTIFY_IMMEDIATE", "false".to_string())]
}

/// The HTTP-trigger invocation envelope the host POSTs to `/LeadIngest` when proxying is off.
pub fn http_envelope(body: &str, method: &str) -> Value {
    json!({
        "Data": {
            "req": {
                "Url": "http://localhost:7071/api/LeadIngest?code=functionkey",
                "Method": method,
                "Query": { "code": "functionkey" },
                "Headers": { "Content-Type": ["application/json"], "User-Agent": ["Microsoft-Marketplace"] },
                "Params": {},
                "Body": body,
            }
        },
        "Metadata": {
            "Query": { "code": "functionkey" },
            "Headers": { "Content-Type": "application/json" },
            "sys": { "MethodName": "LeadIngest", "UtcNow": chrono::Utc::now().to_rfc3339(), "RandGuid": uuid::Uuid::new_v4().to_string() }
        }
    })
}

/// The timer invocation envelope the host POSTs to `/LeadNotify`.
pub fn timer_envelope() -> Value {
    json!({
        "Data": { "timer": { "Schedule": { "AdjustForDST": true }, "ScheduleStatus": null, "IsPastDue": false } },
        "Metadata": { "sys": { "MethodName": "LeadNotify", "UtcNow": chrono::Utc::now().to_rfc3339(), "RandGuid": uuid::Uuid::new_v4().to_string() } }
    })
}

/// Invokes LeadNotify as the host's timer does; returns the host-facing status and reply.
pub async fn invoke_timer(h: &Handler) -> (u16, Value) {
    let resp = reqwest::Client::new().post(h.url("/LeadNotify")).json(&timer_envelope()).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// A queued answer: status and optional `Retry-After` seconds.
pub type Scripted = (u16, Option<u64>);

/// One request a [`Receiver`] got.
#[derive(Clone, Debug)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: String,
    pub at: Instant,
}

/// A real HTTP receiver on loopback. Answers with the queued statuses first, then 200.
#[derive(Clone)]
pub struct Receiver {
    pub addr: SocketAddr,
    pub got: Arc<Mutex<Vec<Received>>>,
    pub script: Arc<Mutex<Vec<Scripted>>>,
    /// While true, requests hang (a slow or dead endpoint).
    pub hang: Arc<std::sync::atomic::AtomicBool>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let r = Receiver { addr, got: Arc::default(), script: Arc::default(), hang: Arc::default() };
        let state = r.clone();
        let app = axum::Router::new().fallback(move |headers: HeaderMap, body: String| {
            let state = state.clone();
            async move {
                state.got.lock().unwrap().push(Received { headers, body, at: Instant::now() });
                while state.hang.load(std::sync::atomic::Ordering::SeqCst) {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                let next = {
                    let mut s = state.script.lock().unwrap();
                    if s.is_empty() {
                        None
                    } else {
                        Some(s.remove(0))
                    }
                };
                let (status, retry_after) = next.unwrap_or((200, None));
                let mut h = HeaderMap::new();
                if let Some(ra) = retry_after {
                    h.insert("retry-after", ra.to_string().parse().unwrap());
                }
                (StatusCode::from_u16(status).unwrap(), h, "ok")
            }
        });
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        r
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    pub fn requests(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    pub fn answer_next(&self, statuses: &[(u16, Option<u64>)]) {
        self.script.lock().unwrap().extend_from_slice(statuses);
    }

    /// Bodies received, parsed.
    pub fn bodies(&self) -> Vec<Value> {
        self.requests().iter().map(|r| serde_json::from_str(&r.body).unwrap()).collect()
    }
}

/// Waits until `f` holds or the deadline passes (for asynchronous effects, never for speed).
pub async fn eventually<F: Fn() -> bool>(what: &str, f: F) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn sample(name: &str) -> String {
    std::fs::read_to_string(format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

pub fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// A TCP proxy on loopback in front of a real server (Azurite): the handler talks to Azurite
/// through it, and a test breaks the path as a network fault would. No mock in between: the
/// bytes either way are the real ones.
#[derive(Clone)]
pub struct FaultProxy {
    pub port: u16,
    upstream: u16,
    cut: Arc<std::sync::atomic::AtomicBool>,
    /// Requests starting with this text (say `POST /devstoreaccount1/Leads…`) get through to the
    /// server, but their answer is dropped and the connection reset: a write that landed unheard.
    lose_reply_to: Arc<Mutex<Option<(String, u32)>>>,
    live: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl FaultProxy {
    pub async fn start(upstream: u16) -> FaultProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy = FaultProxy {
            port: listener.local_addr().unwrap().port(),
            upstream,
            cut: Arc::default(),
            lose_reply_to: Arc::default(),
            live: Arc::default(),
        };
        let p = proxy.clone();
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else { continue };
                // Closing with SO_LINGER 0 sends a reset, as a broken path or a dead server does.
                let _ = client.set_zero_linger();
                if p.cut.load(std::sync::atomic::Ordering::SeqCst) {
                    continue; // dropped at once: the connection is reset
                }
                let task = tokio::spawn(p.clone().pipe(client));
                let mut live = p.live.lock().unwrap();
                live.retain(|h| !h.is_finished());
                live.push(task.abort_handle());
            }
        });
        proxy
    }

    /// Resets every open connection and every new one until [`restore`](Self::restore).
    pub fn cut(&self) {
        self.cut.store(true, std::sync::atomic::Ordering::SeqCst);
        for conn in self.live.lock().unwrap().drain(..) {
            conn.abort();
        }
    }

    pub fn restore(&self) {
        self.cut.store(false, std::sync::atomic::Ordering::SeqCst);
    }

    /// The next `count` requests that start with `prefix` reach the server; their answers are lost.
    pub fn lose_replies_to(&self, prefix: &str, count: u32) {
        *self.lose_reply_to.lock().unwrap() = Some((prefix.to_string(), count));
    }

    async fn pipe(self, client: tokio::net::TcpStream) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", self.upstream)).await else { return };
        let (mut client_rx, mut client_tx) = client.into_split();
        let (mut server_rx, mut server_tx) = server.into_split();
        let lose_this_reply = std::sync::atomic::AtomicBool::new(false);
        let up = async {
            let mut buf = vec![0u8; 64 * 1024];
            while let Ok(n @ 1..) = client_rx.read(&mut buf).await {
                // HTTP/1.1 sends the next request only after the last answer, so a request's
                // first bytes start a read.
                if let Some((prefix, count)) = self.lose_reply_to.lock().unwrap().as_mut() {
                    if *count > 0 && buf[..n].starts_with(prefix.as_bytes()) {
                        *count -= 1;
                        lose_this_reply.store(true, std::sync::atomic::Ordering::SeqCst);
                    }
                }
                if server_tx.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        };
        let down = async {
            let mut buf = vec![0u8; 64 * 1024];
            while let Ok(n @ 1..) = server_rx.read(&mut buf).await {
                if lose_this_reply.load(std::sync::atomic::Ordering::SeqCst) {
                    break; // the server answered; the client never hears it
                }
                if client_tx.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        };
        // Either side ending ends both, as a broken path does (HTTP clients do not half-close).
        tokio::select! { _ = up => {}, _ = down => {} }
    }
}

/// A `/proc/<pid>/status` field in KiB (`VmRSS:`, `VmHWM:`), 0 when unreadable: the benchmarks'
/// memory figures.
pub fn kib_field(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with(field)).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()))
        .unwrap_or(0)
}

pub fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// A process's resident memory now and at its peak, as two table cells: `12.3 MiB | 45.6 MiB`.
pub fn memory_cells(pid: u32) -> String {
    format!("{} | {}", mib(kib_field(pid, "VmRSS:")), mib(kib_field(pid, "VmHWM:")))
}
