//! Who may open the inbox, decided once at start ([`Gate`]) and on every request ([`Gate::viewer`]),
//! and the CSRF check every change passes.
//!
//! - Under the Functions host: App Service built-in authentication signs people in with
//!   Microsoft Entra ID and hands the app an `X-MS-CLIENT-PRINCIPAL` header. The header is only
//!   proof while authentication is on: with it off, anyone can send it. So the inbox opens only
//!   when `INBOX_AUTH=appservice` (set by the template with the authentication settings) *and*
//!   the platform says authentication is on (`WEBSITE_AUTH_ENABLED=True`), and then only for a
//!   principal of `INBOX_TENANT_ID` holding the app role `Leads.Read` or `Leads.Manage`.
//! - Under `handler serve`: with `INBOX_KEY`, a sign-in form and a session cookie; without it,
//!   only when serve listens on loopback (the person at this computer), and then only for
//!   requests naming a loopback host (a web page cannot reach it by DNS rebinding).
//! - CSRF: a random token in a cookie and in every form (double submit), compared in constant
//!   time; cookies are `SameSite=Strict`, so another site's form cannot carry the cookie either.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use base64::Engine as _;
use secrecy::SecretString;
use serde::Deserialize;
use subtle::ConstantTimeEq;

use crate::settings::{InboxAuth, InboxSettings};

/// The app role that lets a person read the inbox.
pub const ROLE_READ: &str = "Leads.Read";
/// The app role that also lets them send again and forget.
pub const ROLE_MANAGE: &str = "Leads.Manage";

/// The session cookie (serve with `INBOX_KEY`).
pub const SESSION_COOKIE: &str = "inbox_session";
/// The CSRF cookie (every mode).
pub const CSRF_COOKIE: &str = "inbox_csrf";
/// Where the inbox's cookies go: nowhere else on the site.
pub const COOKIE_PATH: &str = "/api/Inbox";
/// How long a serve session lasts.
const SESSION_LIFETIME: Duration = Duration::from_secs(8 * 60 * 60);
/// Sessions kept at most: sign-ins past this drop the oldest (bounded memory).
const MAX_SESSIONS: usize = 1_000;

/// The person looking at the inbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Viewer {
    /// For the page header and the "resent by" column: a principal name, or a fixed word in serve.
    pub name: String,
    /// May send again and forget.
    pub can_manage: bool,
}

/// Why a request gets no inbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Serve with a key: not signed in yet (answered with the sign-in form).
    SignInNeeded,
    /// 403 with this explanation.
    Forbidden(String),
}

/// How this process decides who is asking.
pub enum Gate {
    /// `handler serve` on loopback without `INBOX_KEY`.
    Local,
    /// `handler serve` with `INBOX_KEY`.
    SignIn { key: SecretString, sessions: Sessions, secure_cookies: bool },
    /// Under the host, App Service authentication in front.
    AppService { tenant_id: String },
    /// The inbox is shut; every request gets this reason.
    Closed(String),
}

impl Gate {
    /// Under the Functions host.
    pub fn for_host(settings: &InboxSettings) -> Self {
        match (&settings.auth, settings.platform_auth_enabled, &settings.tenant_id) {
            (InboxAuth::Invalid(v), _, _) => {
                Gate::Closed(format!("INBOX_AUTH is `{}`: the only value is `appservice`.", crate::text::one_line(v)))
            }
            (InboxAuth::Unset, _, _) => Gate::Closed(
                "The inbox needs App Service authentication in front of it: deploy with the template's inbox sign-in, which sets INBOX_AUTH=appservice."
                    .into(),
            ),
            (InboxAuth::AppService, false, _) => Gate::Closed(
                "INBOX_AUTH=appservice, but App Service authentication is off (WEBSITE_AUTH_ENABLED is not True): without it, sign-in headers could come from anyone."
                    .into(),
            ),
            (InboxAuth::AppService, true, None) => Gate::Closed("INBOX_AUTH=appservice needs INBOX_TENANT_ID: whose people may sign in.".into()),
            (InboxAuth::AppService, true, Some(tenant)) => Gate::AppService { tenant_id: tenant.clone() },
        }
    }

    /// Under `handler serve`, listening on `bind`.
    pub fn for_serve(settings: &InboxSettings, bind: IpAddr) -> Self {
        match &settings.key {
            Some(key) => Gate::SignIn { key: key.clone(), sessions: Sessions::default(), secure_cookies: !bind.is_loopback() },
            None if bind.is_loopback() => Gate::Local,
            None => Gate::Closed(format!(
                "handler serve listens on {bind}, beyond this computer: set INBOX_KEY to open the inbox with a sign-in, or listen on 127.0.0.1."
            )),
        }
    }

    /// Whether cookies must carry `Secure` (sent over HTTPS only).
    pub fn secure_cookies(&self) -> bool {
        match self {
            Gate::Local => false,
            Gate::SignIn { secure_cookies, .. } => *secure_cookies,
            Gate::AppService { .. } | Gate::Closed(_) => true,
        }
    }

    /// Who is asking, or why they get nothing.
    pub fn viewer(&self, headers: &HeaderMap) -> Result<Viewer, Refusal> {
        match self {
            Gate::Closed(why) => Err(Refusal::Forbidden(why.clone())),
            Gate::Local => {
                if host_is_loopback(headers) {
                    Ok(Viewer { name: "local user".into(), can_manage: true })
                } else {
                    Err(Refusal::Forbidden("This inbox answers only requests to 127.0.0.1, localhost or [::1].".into()))
                }
            }
            Gate::SignIn { sessions, .. } => match cookie(headers, SESSION_COOKIE) {
                Some(token) if sessions.is_live(token) => Ok(Viewer { name: "signed-in user".into(), can_manage: true }),
                _ => Err(Refusal::SignInNeeded),
            },
            Gate::AppService { tenant_id } => principal_viewer(headers, tenant_id),
        }
    }
}

/// The principal App Service authentication put in front of the request, if it may look.
fn principal_viewer(headers: &HeaderMap, tenant_id: &str) -> Result<Viewer, Refusal> {
    let refuse = |why: &str| Err(Refusal::Forbidden(why.to_string()));
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty());
    // HeaderMap names are case-insensitive, so `X-MS-CLIENT-PRINCIPAL` and `x-ms-client-principal` alike.
    let (Some(encoded), Some(idp)) = (header("x-ms-client-principal"), header("x-ms-client-principal-idp")) else {
        return refuse(
            "Not signed in: App Service authentication passed no principal. Open the inbox through the app's address so sign-in runs.",
        );
    };
    if !idp.eq_ignore_ascii_case("aad") {
        return refuse("Signed in with another identity provider: the inbox takes Microsoft Entra ID accounts only.");
    }
    let Some(principal) = Principal::decode(encoded) else { return refuse("The sign-in header could not be read.") };
    if !principal
        .claim_values("http://schemas.microsoft.com/identity/claims/tenantid")
        .chain(principal.claim_values("tid"))
        .any(|t| t.eq_ignore_ascii_case(tenant_id))
    {
        return refuse("Your account belongs to another Microsoft Entra tenant than the publisher's.");
    }
    let role_typ = principal.role_typ.clone().unwrap_or_else(|| "roles".into());
    let roles: Vec<&str> = principal
        .claim_values(&role_typ)
        .chain(principal.claim_values("roles"))
        .chain(principal.claim_values("http://schemas.microsoft.com/ws/2008/06/identity/claims/role"))
        .collect();
    let can_manage = roles.contains(&ROLE_MANAGE);
    if !can_manage && !roles.contains(&ROLE_READ) {
        return refuse("Your account has neither the Leads.Read nor the Leads.Manage role of this app: ask its owner to assign one.");
    }
    let name = header("x-ms-client-principal-name")
        .map(str::to_string)
        .or_else(|| principal.claim_values("preferred_username").chain(principal.claim_values("name")).next().map(str::to_string))
        .unwrap_or_else(|| "signed-in user".into());
    Ok(Viewer { name: crate::text::truncate_chars(&crate::text::one_line(&name), 120), can_manage })
}

/// `X-MS-CLIENT-PRINCIPAL`: base64 of `{"auth_typ","claims":[{"typ","val"}],"name_typ","role_typ"}`.
#[derive(Debug, Deserialize)]
struct Principal {
    #[serde(default)]
    claims: Vec<Claim>,
    #[serde(default)]
    role_typ: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Claim {
    typ: String,
    val: String,
}

impl Principal {
    fn decode(encoded: &str) -> Option<Self> {
        let bytes = base64::engine::general_purpose::STANDARD.decode(encoded.as_bytes()).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    fn claim_values<'a>(&'a self, typ: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.claims.iter().filter(move |c| c.typ == typ).map(|c| c.val.as_str())
    }
}

/// Whether the request names a loopback host (`Host: 127.0.0.1:7071`, `localhost`, `[::1]`).
fn host_is_loopback(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get("host").and_then(|v| v.to_str().ok()) else { return false };
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// A cookie's value from the request.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all("cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value for the inbox: `HttpOnly`, `SameSite=Strict`, its own path, `Secure`
/// when the gate asks for it; `max_age` 0 removes it.
pub fn set_cookie(name: &str, value: &str, secure: bool, max_age: Option<Duration>) -> String {
    let mut c = format!("{name}={value}; Path={COOKIE_PATH}; HttpOnly; SameSite=Strict");
    if let Some(age) = max_age {
        c.push_str(&format!("; Max-Age={}", age.as_secs()));
    }
    if secure {
        c.push_str("; Secure");
    }
    c
}

/// A fresh random token (CSRF, session): 256 bits from the OS generator, URL-safe.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    bytes[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    bytes[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The CSRF token a page's forms carry: the browser's cookie when it holds one of full length,
/// else a new one (`true`: the answer must set its cookie).
pub fn csrf_token(headers: &HeaderMap) -> (String, bool) {
    match cookie(headers, CSRF_COOKIE).filter(|c| c.len() >= 32) {
        Some(c) => (c.to_string(), false),
        None => (random_token(), true),
    }
}

/// Whether a form's CSRF token matches the cookie's (both present, equal in constant time).
pub fn csrf_ok(headers: &HeaderMap, form_token: Option<&str>) -> bool {
    // A browser that says where the request comes from must say: from this site.
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        if !matches!(site, "same-origin" | "none") {
            return false;
        }
    }
    match (cookie(headers, CSRF_COOKIE), form_token) {
        (Some(c), Some(f)) if !c.is_empty() && c.len() == f.len() => c.as_bytes().ct_eq(f.as_bytes()).into(),
        _ => false,
    }
}

/// The signed-in sessions of `handler serve` (one process: kept in memory; a restart signs
/// everyone out, which is fine for one publisher's team).
#[derive(Default)]
pub struct Sessions {
    live: Mutex<HashMap<String, Instant>>,
}

impl Sessions {
    /// A new session: its cookie value.
    pub fn start(&self) -> String {
        let token = random_token();
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        live.retain(|_, until| *until > now);
        if live.len() >= MAX_SESSIONS {
            if let Some(oldest) = live.iter().min_by_key(|(_, until)| **until).map(|(k, _)| k.clone()) {
                live.remove(&oldest);
            }
        }
        live.insert(token.clone(), now + SESSION_LIFETIME);
        token
    }

    pub fn is_live(&self, token: &str) -> bool {
        let live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        live.get(token).is_some_and(|until| *until > Instant::now())
    }

    pub fn end(&self, token: &str) {
        self.live.lock().unwrap_or_else(|p| p.into_inner()).remove(token);
    }

    pub fn lifetime() -> Duration {
        SESSION_LIFETIME
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use serde_json::json;

    fn principal(tenant: &str, roles: &[&str]) -> String {
        let mut claims = vec![json!({"typ": "http://schemas.microsoft.com/identity/claims/tenantid", "val": tenant})];
        claims.extend(roles.iter().map(|r| json!({"typ": "roles", "val": r})));
        let p = json!({"auth_typ": "aad", "claims": claims, "name_typ": "name", "role_typ": "roles"});
        base64::engine::general_purpose::STANDARD.encode(p.to_string())
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn settings(pairs: &[(&str, &str)]) -> InboxSettings {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        InboxSettings::from_get(&|name| map.get(name).cloned())
    }

    #[test]
    fn the_host_gate_opens_only_with_authentication_really_on() {
        assert!(matches!(Gate::for_host(&settings(&[])), Gate::Closed(_)));
        assert!(matches!(Gate::for_host(&settings(&[("INBOX_AUTH", "appservice"), ("INBOX_TENANT_ID", "t")])), Gate::Closed(_)));
        assert!(matches!(Gate::for_host(&settings(&[("WEBSITE_AUTH_ENABLED", "True"), ("INBOX_TENANT_ID", "t")])), Gate::Closed(_)));
        assert!(matches!(Gate::for_host(&settings(&[("INBOX_AUTH", "easyauth"), ("WEBSITE_AUTH_ENABLED", "True")])), Gate::Closed(_)));
        let open = Gate::for_host(&settings(&[("INBOX_AUTH", "AppService"), ("WEBSITE_AUTH_ENABLED", "True"), ("INBOX_TENANT_ID", "T1")]));
        assert!(matches!(open, Gate::AppService { .. }));
    }

    #[test]
    fn principals_need_the_tenant_and_a_role() {
        let gate = Gate::AppService { tenant_id: "t1".into() };
        let ask = |p: String, idp: &str| gate.viewer(&headers(&[("X-MS-CLIENT-PRINCIPAL", &p), ("x-ms-client-principal-idp", idp)]));
        assert!(!ask(principal("T1", &["Leads.Read"]), "aad").unwrap().can_manage);
        assert!(ask(principal("t1", &["Leads.Manage"]), "aad").unwrap().can_manage);
        assert!(ask(principal("t2", &["Leads.Manage"]), "aad").is_err(), "another tenant");
        assert!(ask(principal("t1", &[]), "aad").is_err(), "no role");
        assert!(ask(principal("t1", &["Leads.Manage"]), "google").is_err(), "another provider");
        assert!(ask("not base64!".into(), "aad").is_err());
        assert!(gate.viewer(&headers(&[("x-ms-client-principal", &principal("t1", &["Leads.Read"]))])).is_err(), "no idp header");
    }

    #[test]
    fn serve_without_a_key_opens_on_loopback_only_and_only_for_loopback_hosts() {
        let s = settings(&[]);
        assert!(matches!(Gate::for_serve(&s, "0.0.0.0".parse().unwrap()), Gate::Closed(_)));
        let local = Gate::for_serve(&s, "127.0.0.1".parse().unwrap());
        assert!(local.viewer(&headers(&[("host", "127.0.0.1:7071")])).is_ok());
        assert!(local.viewer(&headers(&[("host", "localhost")])).is_ok());
        assert!(local.viewer(&headers(&[("host", "[::1]:80")])).is_ok());
        assert!(local.viewer(&headers(&[("host", "attacker.example:7071")])).is_err(), "DNS rebinding");
        let keyed = Gate::for_serve(&settings(&[("INBOX_KEY", "k")]), "0.0.0.0".parse().unwrap());
        assert!(keyed.secure_cookies());
        assert_eq!(keyed.viewer(&headers(&[("host", "127.0.0.1")])), Err(Refusal::SignInNeeded));
    }

    #[test]
    fn csrf_needs_cookie_and_field_alike() {
        let with_cookie = headers(&[("cookie", "a=b; inbox_csrf=tok123")]);
        assert!(csrf_ok(&with_cookie, Some("tok123")));
        assert!(!csrf_ok(&with_cookie, Some("tok124")));
        assert!(!csrf_ok(&with_cookie, None));
        assert!(!csrf_ok(&headers(&[]), Some("tok123")));
        let cross_site = headers(&[("cookie", "inbox_csrf=tok123"), ("sec-fetch-site", "cross-site")]);
        assert!(!csrf_ok(&cross_site, Some("tok123")));
    }
}
