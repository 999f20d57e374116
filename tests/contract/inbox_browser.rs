//! The lead inbox in a real browser: Debian's `chromium`, driven through `chromedriver` (W3C
//! WebDriver, via fantoccini) against the real `handler serve` on loopback, the real Azurite and
//! a loopback webhook receiver. `scripts/test` installs the browser (`ensure_browser`).
//!
//! With `INBOX_SCREENSHOTS=1` the run also writes the README's screenshots into docs/.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::leads::{insert_native, lead_body, webhook_env};
use crate::common::*;
use base64::Engine as _;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

/// chromedriver on a free loopback port, killed on drop. Chromium runs in a process group of
/// its own, so killing chromedriver would leave it behind when a failed test never closed its
/// session: drop first asks chromedriver to shut down, which quits its browsers.
struct Driver {
    _process: Killed,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        use std::io::{Read as _, Write as _};
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
            let request = format!("GET /shutdown HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n", self.port);
            let _ = s.write_all(request.as_bytes());
            let _ = s.read_to_end(&mut Vec::new());
        }
    }
}

fn which(name: &str) -> Option<String> {
    let out = Command::new("sh").args(["-c", &format!("command -v {name}")]).output().ok()?;
    let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (!path.is_empty()).then_some(path)
}

async fn start_driver() -> Driver {
    let driver = which("chromedriver")
        .expect("chromedriver is not installed: run ./scripts/test (ensure_browser installs chromium and chromium-driver)");
    let port = free_port();
    let child = Command::new(driver)
        .args([format!("--port={port}"), "--allowed-ips=127.0.0.1".to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let driver = Driver { _process: Killed(child), port };
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return driver;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("chromedriver did not listen on {port}");
}

async fn browser(driver: &Driver) -> Client {
    let chromium = which("chromium").or_else(|| which("chromium-browser")).expect("chromium is not installed");
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({"binary": chromium, "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1000"]}),
    );
    // The browser's console log, where Chromium reports a CSP violation (SEVERE).
    caps.insert("goog:loggingPrefs".into(), json!({"browser": "ALL"}));
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("a WebDriver session in chromium")
}

/// Marks the current document, runs `action` (a click or submit that loads a page), and waits
/// until a new, fully loaded document replaced the marked one: WebDriver's click returns before
/// the navigation it starts is done.
async fn and_wait<F: std::future::Future<Output = Result<T, fantoccini::error::CmdError>>, T>(c: &Client, action: F) {
    js(c, "document.documentElement.setAttribute('data-old', '1'); return null").await;
    action.await.unwrap();
    for _ in 0..200 {
        let fresh =
            c.execute("return !document.documentElement.hasAttribute('data-old') && document.readyState === 'complete'", vec![]).await;
        if matches!(fresh, Ok(Value::Bool(true))) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the page did not change");
}

async fn click(c: &Client, locator: Locator<'_>) {
    let element = c.find(locator).await.unwrap();
    and_wait(c, element.click()).await;
}

async fn text_of(c: &Client, css: &str) -> String {
    c.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("{css}: {e}")).text().await.unwrap()
}

async fn js(c: &Client, script: &str) -> Value {
    c.execute(script, vec![]).await.unwrap()
}

/// chromedriver's log endpoint (not in W3C WebDriver, so fantoccini has no method for it): the
/// browser console entries since the last call.
#[derive(Debug)]
struct BrowserLog;

impl fantoccini::wd::WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(&self, base_url: &url::Url, session_id: Option<&str>) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!("session/{}/se/log", session_id.unwrap_or_default()))
    }

    fn method_and_body(&self, _url: &url::Url) -> (axum::http::Method, Option<String>) {
        (axum::http::Method::POST, Some(json!({"type": "browser"}).to_string()))
    }
}

/// No console entry says the Content-Security-Policy blocked something.
async fn assert_no_csp_violation(c: &Client) {
    let log = c.issue_cmd(BrowserLog).await.expect("the browser log");
    let violations: Vec<&Value> = log
        .as_array()
        .map(|entries| entries.iter().filter(|e| e["message"].as_str().is_some_and(|m| m.contains("Content Security Policy"))).collect())
        .unwrap_or_default();
    assert!(violations.is_empty(), "CSP violations: {violations:?}");
}

/// The page holds no script and its stylesheet applied under the CSP.
async fn assert_inert_and_styled(c: &Client) {
    assert_no_csp_violation(c).await;
    assert_eq!(js(c, "return document.scripts.length").await, json!(0), "no script on an inbox page");
    assert_eq!(js(c, "return typeof window.pwned").await, json!("undefined"), "no customer text ran");
    let header = js(c, "return getComputedStyle(document.querySelector('header.top') || document.body).backgroundColor").await;
    assert_ne!(header, json!("rgba(0, 0, 0, 0)"), "the stylesheet loaded under the CSP");
}

async fn screenshot(c: &Client, name: &str) {
    if std::env::var("INBOX_SCREENSHOTS").is_ok() {
        let png = c.screenshot().await.unwrap();
        std::fs::write(format!("{}/docs/{name}", env!("CARGO_MANIFEST_DIR")), png).unwrap();
    }
}

async fn ingest_with_key(h: &Handler, body: String) -> (String, String) {
    let resp = reqwest::Client::new().post(h.url("/api/LeadIngest?code=ingestkey")).body(body).send().await.unwrap();
    assert_eq!(resp.status(), 201);
    let v: Value = resp.json().await.unwrap();
    (v["partitionKey"].as_str().unwrap().to_string(), v["rowKey"].as_str().unwrap().to_string())
}

fn company_lead(company: &str, first: &str, email: &str, action: &str, offer: &str) -> String {
    json!({
        "UserDetails": {"FirstName": first, "LastName": "Doe", "Email": email, "Country": "US", "Company": company, "Title": "CTO"},
        "LeadSource": format!("SPZA-{action}|contoso.{}", offer.to_lowercase().replace(' ', "-")), "ActionCode": action, "OfferTitle": offer,
    })
    .to_string()
}

#[tokio::test]
async fn the_inbox_in_a_real_browser() {
    let table = unique_table();
    let hook = Receiver::start().await;
    let mut env = webhook_env(&table, &hook);
    // Each lead is sent right after intake, so the receiver has it before the browser looks.
    env.retain(|(k, _)| *k != "NOTIFY_IMMEDIATE");
    env.push(("NOTIFY_IMMEDIATE", "true".into()));
    let h = spawn_serve(&env, "ingestkey", &[], None).await;

    // Leads: three customers, one of them returning, a test lead, a hostile one, and older rows
    // Microsoft wrote itself (for the chart).
    let contoso = ingest_with_key(&h, lead_body("Contoso Ltd", "PLT")).await;
    ingest_with_key(&h, company_lead("Fabrikam Inc", "Bob", "bob@fabrikam.example", "INS", "Contoso Analytics")).await;
    ingest_with_key(&h, company_lead("Fabrikam Inc", "Bob", "bob@fabrikam.example", "PLT", "Contoso Analytics")).await;
    ingest_with_key(&h, company_lead("Tailspin Toys", "Cy", "cy@tailspin.example", "INS", "Contoso Backup")).await;
    let test_lead = json!({"UserDetails": {"FirstName": "MSFT_TEST_636573304831318844", "Email": "MSFT_TEST_636573304831318844@test.com",
        "Company": "MSFT_TEST_636573304831318844"}, "LeadSource": "MSFT_TEST_636573304831318844", "ActionCode": "MSFT_TEST_636573304831318844"});
    ingest_with_key(&h, test_lead.to_string()).await;
    let hostile_company = "<script>window.pwned=1</script><img src=x onerror=\"window.pwned=2\">";
    let hostile = json!({
        "UserDetails": {"FirstName": "\u{202E}gnp.exe", "LastName": "=cmd|' /C calc'!A0", "Email": "eve@evil.example", "Company": hostile_company},
        "LeadSource": "SPZA-PLT|evil.offer", "ActionCode": "PLT", "OfferTitle": "x".repeat(3000), "Description": "long ".repeat(4000),
    });
    let hostile_key = ingest_with_key(&h, hostile.to_string()).await;
    let today = chrono::Utc::now().date_naive();
    for days_ago in [3u64, 10, 10, 40, 80] {
        insert_native(&table, "Northwind Traders", today - chrono::Days::new(days_ago)).await;
    }
    eventually("the webhook got the six new leads", || hook.requests().len() >= 6).await;

    let driver = start_driver().await;
    let c = browser(&driver).await;

    // The list: newest first, test leads hidden, a repeat marker, delivery badges.
    let since = today - chrono::Days::new(100);
    c.goto(&h.url(&format!("/api/Inbox?from={since}"))).await.unwrap();
    assert_eq!(c.title().await.unwrap(), "Leads · Lead inbox");
    assert_inert_and_styled(&c).await;
    let list = text_of(&c, "#leads").await;
    assert!(list.contains("Contoso Ltd") && list.contains("Tailspin Toys") && list.contains("Northwind Traders"), "{list}");
    assert!(!list.contains("MSFT_TEST"), "test leads are hidden by default");
    assert!(list.contains("repeat · 2nd"), "Bob's second lead is marked: {list}");
    assert!(list.contains("Webhook: delivered"), "{list}");
    assert!(!c.source().await.unwrap().contains("bob@fabrikam.example"), "no address on the list");
    screenshot(&c, "inbox-list.png").await;

    // The hostile lead is text, not markup: shown literally, nothing ran, no image was made.
    assert!(list.contains("<script>window.pwned=1</script>"), "shown as text: {list}");
    assert_eq!(js(&c, "return document.querySelectorAll('#leads img').length").await, json!(0));
    assert!(!list.contains('\u{202E}'), "bidi override dropped");

    // Filters: text search, action, test leads on request.
    let form = c.form(Locator::Css("form.filters")).await.unwrap();
    form.set_by_name("q", "fabrikam").await.unwrap();
    and_wait(&c, form.submit()).await;
    assert!(text_of(&c, "#count").await.starts_with("2 lead(s)"));
    c.find(Locator::Css("select[name=action]")).await.unwrap().select_by_value("INS").await.unwrap();
    let form = c.form(Locator::Css("form.filters")).await.unwrap();
    and_wait(&c, form.submit()).await;
    assert!(text_of(&c, "#count").await.starts_with("1 lead(s)"));
    c.goto(&h.url("/api/Inbox?tests=1")).await.unwrap();
    assert!(text_of(&c, "#leads").await.contains("MSFT_TEST"), "shown when asked for");

    // CSV export: the list's own link, with the formula guard of `leads export`.
    c.goto(&h.url("/api/Inbox")).await.unwrap();
    let href = c.find(Locator::Css("a[href*='export.csv']")).await.unwrap().attr("href").await.unwrap().unwrap();
    let csv = reqwest::get(h.url(&href.replace("&amp;", "&"))).await.unwrap().text().await.unwrap();
    assert!(csv.starts_with("createdTime,"), "{csv}");
    assert!(csv.contains("'=cmd|"), "a formula is exported as text: {csv}");
    assert!(!csv.contains("MSFT_TEST"));

    // The lead page: every field, the journey, the channel's state.
    c.goto(&h.url(&format!("/api/Inbox/lead?pk={}&rk={}", enc(&contoso.0), enc(&contoso.1)))).await.unwrap();
    assert_inert_and_styled(&c).await;
    let fields = text_of(&c, "#fields").await;
    for expected in ["Contoso Ltd", "jana@contoso.example", "Contact me (PLT)", "spring-launch", "Contoso Analytics"] {
        assert!(fields.contains(expected), "{expected} in {fields}");
    }
    assert!(text_of(&c, "#channels").await.contains("delivered"));
    assert!(text_of(&c, "#journey").await.contains("(this lead)"));
    screenshot(&c, "inbox-lead.png").await;

    // Send again: the receiver gets the lead a second time with the same webhook-id.
    let before = hook.requests().len();
    click(&c, Locator::Id("send-again-Webhook")).await;
    assert!(text_of(&c, "#message").await.contains("delivered the lead again"));
    eventually("the lead sent again", || hook.requests().len() > before).await;
    let ids: Vec<String> = hook
        .requests()
        .iter()
        .filter(|r| r.body.contains("Contoso Ltd"))
        .map(|r| r.headers["webhook-id"].to_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 2, "first delivery and the one sent again");
    assert_eq!(ids[0], ids[1], "the same delivery id, so the receiver de-duplicates");
    let row = crate::common::leads::row(&table, &contoso.0, &contoso.1).await;
    assert_eq!(row["NotifyWebhookResentBy"], "local user");

    // The hostile lead's own page is inert too, long values and all.
    c.goto(&h.url(&format!("/api/Inbox/lead?pk={}&rk={}", enc(&hostile_key.0), enc(&hostile_key.1)))).await.unwrap();
    assert_inert_and_styled(&c).await;
    assert_eq!(js(&c, "return document.querySelectorAll('main img').length").await, json!(0));
    let page_width = js(&c, "return document.documentElement.scrollWidth <= window.innerWidth + 1").await;
    assert_eq!(page_width, json!(true), "long values wrap instead of widening the page");

    // The chart: SVG with a title, the numbers beside it, a switch by offer.
    c.goto(&h.url("/api/Inbox/chart")).await.unwrap();
    assert_inert_and_styled(&c).await;
    let title = js(&c, "return document.querySelector('svg title').textContent").await;
    assert!(title.as_str().unwrap().starts_with("Leads per day"), "{title}");
    let numbers = text_of(&c, "#numbers").await;
    assert!(numbers.contains(&today.to_string()), "{numbers}");
    assert!(js(&c, "return document.querySelectorAll('svg rect').length").await.as_u64().unwrap() >= 4);
    screenshot(&c, "inbox-chart.png").await;
    click(&c, Locator::LinkText("Northwind SaaS")).await;
    let numbers = text_of(&c, "#numbers").await;
    assert!(!numbers.contains(&today.to_string()), "only Northwind's days: {numbers}");

    // Forget, with its confirmation: Bob's two leads go, the others stay.
    c.goto(&h.url("/api/Inbox?q=fabrikam")).await.unwrap();
    click(&c, Locator::Css("#leads tbody a")).await;
    click(&c, Locator::Id("forget")).await;
    let plan = text_of(&c, "#plan").await;
    assert_eq!(plan.matches("delete · ").count(), 2, "{plan}");
    assert!(!plan.contains("redact · "), "{plan}");
    assert!(!c.source().await.unwrap().contains("bob@fabrikam.example"), "the confirmation names no address");
    click(&c, Locator::Id("confirm-forget")).await;
    assert!(text_of(&c, "#message").await.contains("Deleted 2 lead row(s)"));
    c.goto(&h.url(&format!("/api/Inbox?from={since}"))).await.unwrap();
    let list = text_of(&c, "#leads").await;
    assert!(!list.contains("Fabrikam") && list.contains("Contoso Ltd"), "{list}");

    // A change without its CSRF token is refused (a plain client, no cookie, no token).
    let forged = reqwest::Client::new()
        .post(h.url("/api/Inbox/lead/send-again"))
        .form(&[("pk", contoso.0.as_str()), ("rk", contoso.1.as_str()), ("channel", "Webhook")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);

    c.close().await.unwrap();
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn principal(tenant: &str, roles: &[&str]) -> String {
    let mut claims = vec![json!({"typ": "http://schemas.microsoft.com/identity/claims/tenantid", "val": tenant})];
    claims.extend(roles.iter().map(|r| json!({"typ": "roles", "val": r})));
    base64::engine::general_purpose::STANDARD.encode(json!({"auth_typ": "aad", "claims": claims, "role_typ": "roles"}).to_string())
}

#[tokio::test]
async fn refusals_without_sign_in_role_or_authentication() {
    let table = unique_table();
    // Serve with INBOX_KEY: the browser is sent to the sign-in form, a wrong key is refused,
    // the right one opens the inbox, sign-out closes it.
    let mut env = base_env(&table);
    env.push(("INBOX_KEY", "inbox-secret".into()));
    let keyed = spawn_serve(&env, "ingestkey", &[], None).await;
    let driver = start_driver().await;
    let c = browser(&driver).await;
    c.goto(&keyed.url("/api/Inbox")).await.unwrap();
    assert!(c.current_url().await.unwrap().as_str().ends_with("/api/Inbox/signin"));
    c.find(Locator::Id("key")).await.unwrap().send_keys("wrong").await.unwrap();
    click(&c, Locator::Id("signin")).await;
    assert!(text_of(&c, "#wrong-key").await.contains("not the inbox key"));
    c.find(Locator::Id("key")).await.unwrap().send_keys("inbox-secret").await.unwrap();
    click(&c, Locator::Id("signin")).await;
    assert_eq!(c.title().await.unwrap(), "Leads · Lead inbox");
    let cookie = c.get_named_cookie("inbox_session").await.unwrap();
    assert_eq!(cookie.http_only(), Some(true));
    assert_eq!(format!("{:?}", cookie.same_site()), "Some(Strict)");
    click(&c, Locator::Id("signout")).await;
    c.goto(&keyed.url("/api/Inbox")).await.unwrap();
    assert!(c.current_url().await.unwrap().as_str().ends_with("/api/Inbox/signin"), "signed out");
    c.close().await.unwrap();

    // Under the host without App Service authentication: forged principal headers get nothing.
    let host = spawn_handler(Mode::Host, &base_env(&table)).await;
    let http = reqwest::Client::new();
    let forged = http
        .get(host.url("/api/Inbox"))
        .header("X-MS-CLIENT-PRINCIPAL", principal("t1", &["Leads.Manage"]))
        .header("X-MS-CLIENT-PRINCIPAL-IDP", "aad")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    assert!(forged.text().await.unwrap().contains("App Service authentication"));

    // With authentication on: the tenant and a role decide.
    let mut env = base_env(&table);
    env.extend([("INBOX_AUTH", "appservice".to_string()), ("WEBSITE_AUTH_ENABLED", "True".into()), ("INBOX_TENANT_ID", "t1".into())]);
    let host = spawn_handler(Mode::Host, &env).await;
    let ask =
        |p: String| http.get(host.url("/api/Inbox")).header("x-ms-client-principal", p).header("x-ms-client-principal-idp", "aad").send();
    assert_eq!(ask(principal("t1", &[])).await.unwrap().status(), 403, "no role");
    assert_eq!(ask(principal("t2", &["Leads.Read"])).await.unwrap().status(), 403, "another tenant");
    assert_eq!(ask(principal("t1", &["Leads.Read"])).await.unwrap().status(), 200);
    let token = "t".repeat(43);
    let change = http
        .post(host.url("/api/Inbox/lead/send-again"))
        .header("x-ms-client-principal", principal("t1", &["Leads.Read"]))
        .header("x-ms-client-principal-idp", "aad")
        .header("cookie", format!("inbox_csrf={token}"))
        .form(&[("csrf", token.as_str()), ("pk", "a"), ("rk", "b"), ("channel", "Webhook")])
        .send()
        .await
        .unwrap();
    assert_eq!(change.status(), 403, "Leads.Read may not change anything");
    // LeadIngest keeps its function key as before (the host checks it; the handler takes the lead).
    let lead = http.post(host.url("/api/LeadIngest")).body(lead_body("Contoso", "PLT")).send().await.unwrap();
    assert_eq!(lead.status(), 201);
}
