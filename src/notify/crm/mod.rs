//! The CRM channels: each lead becomes a record in the publisher's CRM, idempotently (a retry
//! or a repeat after a lost answer updates or finds the same record, never adds another). One
//! module per CRM; here what they share: the OAuth client-credentials token cache (one fetch
//! for concurrent sends, refreshed once when the CRM answers 401), the token request itself,
//! classification of HTTP failures, length limits and the fallbacks for required fields.
//!
//! Error texts: a `DeliveryError`'s `summary` (logged) carries only the CRM's error *code* and
//! the status; the CRM's message, which may quote the lead's data back, goes to `answer`, which
//! is stored on the lead's row (`leads status`) and never logged. Tokens and client secrets
//! appear in neither.

pub mod dynamics;
pub mod hubspot;
pub mod marketo;
pub mod salesforce;

use std::future::Future;
use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use super::message::LeadMessage;
use super::sender::Sender;
use super::transport::{send_request, Answer, DeliveryError, RequestBody, SendOutcome};
use crate::lead::{Contact, Lead};
use crate::text::{one_line, truncate_chars};

/// The CRM clients the settings turn on, for `leads forget` (which reaches each CRM this app
/// wrote to); the notifier reaches them through the channel registry instead.
pub struct Crms {
    pub dynamics: Option<dynamics::Dynamics>,
    pub salesforce: Option<salesforce::Salesforce>,
    pub hubspot: Option<hubspot::HubSpot>,
    pub marketo: Option<marketo::Marketo>,
}

impl Crms {
    pub fn new(settings: &crate::settings::ChannelSettings) -> Self {
        Crms {
            dynamics: settings.dynamics.clone().map(dynamics::Dynamics::new),
            salesforce: settings.salesforce.clone().map(salesforce::Salesforce::new),
            hubspot: settings.hubspot.clone().map(hubspot::HubSpot::new),
            marketo: settings.marketo.clone().map(marketo::Marketo::new),
        }
    }
}

/// A CRM's own client: one lead in, one record created or updated (idempotently).
#[async_trait::async_trait]
pub trait CrmClient: Send + Sync {
    async fn send(&self, http: &reqwest::Client, lead: &Lead, msg: &LeadMessage) -> SendOutcome;
}

/// A CRM as a channel: its client and the shared HTTP client.
pub struct Crm<C> {
    http: reqwest::Client,
    client: C,
}

impl<C: CrmClient> Crm<C> {
    pub fn new(http: &reqwest::Client, client: C) -> Self {
        Crm { http: http.clone(), client }
    }
}

#[async_trait::async_trait]
impl<C: CrmClient> Sender for Crm<C> {
    async fn send(&self, lead: &Lead, msg: &LeadMessage) -> SendOutcome {
        self.client.send(&self.http, lead, msg).await
    }
}

/// How long to use a token that expires in `expires_in`: until [`EXPIRY_MARGIN`] before, or, for
/// a token with little life left (Marketo's identity endpoint hands back the current token with
/// its remaining time), half of what is left: never past its expiry, and not refetched on every
/// send either.
fn token_lifetime(expires_in: Duration) -> Duration {
    if expires_in > EXPIRY_MARGIN * 2 {
        expires_in - EXPIRY_MARGIN
    } else {
        expires_in / 2
    }
}

/// A token from the cache, with the generation that lets a 401 invalidate exactly it.
#[derive(Clone)]
pub struct Token {
    pub secret: SecretString,
    /// Salesforce's `instance_url`: where the data calls go.
    pub instance_url: Option<String>,
    generation: u64,
}

impl Token {
    pub fn bearer(&self) -> (&'static str, String) {
        ("Authorization", format!("Bearer {}", self.secret.expose_secret()))
    }
}

/// What a token endpoint gave.
pub struct Fetched {
    pub token: SecretString,
    pub expires_in: Option<Duration>,
    pub instance_url: Option<String>,
}

/// Refresh this long before the announced expiry, so a token never expires in flight.
const EXPIRY_MARGIN: Duration = Duration::from_secs(5 * 60);
/// How long to keep a token whose answer names no lifetime (Salesforce): a 401 refreshes it
/// earlier if the org's session timeout is shorter.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(30 * 60);

#[derive(Default)]
struct CacheState {
    current: Option<(Token, Instant)>,
    generation: u64,
}

/// One cached token per CRM. The lock is held across a fetch, so concurrent sends wait for one
/// fetch instead of each asking the token endpoint.
#[derive(Default)]
pub struct TokenCache {
    state: tokio::sync::Mutex<CacheState>,
    fetches: std::sync::atomic::AtomicU64,
}

impl TokenCache {
    pub async fn get<F, Fut>(&self, fetch: F) -> Result<Token, SendOutcome>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Fetched, SendOutcome>>,
    {
        let mut state = self.state.lock().await;
        if let Some((token, refresh_at)) = &state.current {
            if Instant::now() < *refresh_at {
                return Ok(token.clone());
            }
        }
        self.fetches.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let fetched = fetch().await?;
        state.generation += 1;
        let lifetime = fetched.expires_in.map_or(DEFAULT_LIFETIME, token_lifetime);
        let token = Token { secret: fetched.token, instance_url: fetched.instance_url, generation: state.generation };
        state.current = Some((token.clone(), Instant::now() + lifetime));
        Ok(token)
    }

    /// Forgets `token` if it is still the cached one (another send may have refreshed already).
    pub async fn invalidate(&self, token: &Token) {
        let mut state = self.state.lock().await;
        if state.current.as_ref().is_some_and(|(t, _)| t.generation == token.generation) {
            state.current = None;
        }
    }

    /// How many tokens were requested, for tests and logs.
    pub fn fetches(&self) -> u64 {
        self.fetches.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// What one authenticated call came to.
pub enum Call {
    Done(SendOutcome),
    /// The CRM refused the token (revoked, or expired without saying so).
    Unauthorized(DeliveryError),
    /// The CRM said the token has expired (Marketo's 602). Refreshed once like a 401; if the
    /// fresh one is expired too, the identity endpoint handed back the old token at the end of
    /// its life, and a later attempt gets a new one: retried, not permanent.
    Expired(DeliveryError),
}

/// Runs `call` with a cached token; when the CRM answers 401, fetches a new token once and
/// runs `call` again. A second 401 with a fresh token is not an expiry: it is permanent
/// (the app's rights or the user behind it), with `hint` saying what to check.
pub async fn with_token<F, Fut, C, CFut>(cache: &TokenCache, fetch: F, call: C, hint: &str) -> SendOutcome
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<Fetched, SendOutcome>>,
    C: Fn(Token) -> CFut,
    CFut: Future<Output = Call>,
{
    let mut refreshed = false;
    loop {
        let token = match cache.get(&fetch).await {
            Ok(t) => t,
            Err(outcome) => return outcome,
        };
        match call(token.clone()).await {
            Call::Done(outcome) => return outcome,
            Call::Unauthorized(mut error) => {
                cache.invalidate(&token).await;
                if refreshed {
                    error.summary = format!("{} with a fresh token: {hint}", error.summary);
                    return SendOutcome::Permanent(error);
                }
                refreshed = true;
            }
            Call::Expired(error) => {
                cache.invalidate(&token).await;
                if refreshed {
                    return SendOutcome::Retry { error, after: None };
                }
                refreshed = true;
            }
        }
    }
}

/// The OAuth 2.0 client-credentials request (RFC 6749 §4.4), credentials in the form body so
/// they never appear in a URL. `crm` names the channel in errors.
pub async fn client_credentials(http: &reqwest::Client, crm: &str, token_url: &str, form: &[(&str, &str)]) -> Result<Fetched, SendOutcome> {
    let body = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
    let answer =
        match send_request(http, reqwest::Method::POST, token_url, &[("Accept", "application/json".into())], RequestBody::Form(body)).await
        {
            Ok(a) => a,
            Err(e) => return Err(SendOutcome::Retry { error: prefixed(crm, "token request", e), after: None }),
        };
    let json = answer.json();
    if answer.is_success() {
        let token = json.as_ref().and_then(|j| j["access_token"].as_str()).filter(|t| !t.is_empty());
        let Some(token) = token else {
            return Err(SendOutcome::Retry {
                error: DeliveryError::new(format!("{crm}: the token endpoint answered without an access_token")),
                after: None,
            });
        };
        let json = json.as_ref();
        return Ok(Fetched {
            token: SecretString::from(token.to_string()),
            expires_in: json
                .and_then(|j| j["expires_in"].as_u64().or_else(|| j["expires_in"].as_str()?.parse().ok()))
                .map(Duration::from_secs),
            instance_url: json.and_then(|j| j["instance_url"].as_str()).map(str::to_string),
        });
    }
    // OAuth errors: {"error":"invalid_client","error_description":"…"}. Neither echoes the secret.
    let code = json.as_ref().and_then(|j| j["error"].as_str()).map(short).unwrap_or_default();
    let description = json.as_ref().and_then(|j| j["error_description"].as_str()).map(str::to_string);
    let error = DeliveryError {
        summary: format!("{crm}: token request answered HTTP {}{}{}", answer.status, if code.is_empty() { "" } else { " " }, code),
        answer: Some(description.map_or_else(|| body_excerpt(&answer), |d| clean(&d))),
    };
    Err(failure(&answer, error))
}

/// A 2xx whose body could not be read (cut short, not JSON): the call may have worked, and every
/// CRM call here is safe to repeat, so the attempt is retried, never taken as a refusal or as
/// "nothing there".
pub fn unreadable(crm: &str, doing: &str, answer: &Answer) -> SendOutcome {
    SendOutcome::Retry {
        error: DeliveryError {
            summary: format!("{crm}: {doing}: HTTP {} with an answer that could not be read", answer.status),
            answer: Some(body_excerpt(answer)),
        },
        after: None,
    }
}

/// What a CRM call of `leads forget` came to: success (`Delivered`, or `Skipped` for "nothing
/// there") or the error that leaves something behind. Forget reuses the channels' token cache
/// and 401 handling ([`with_token`]), whose calls answer a [`SendOutcome`].
pub fn erase_result(outcome: SendOutcome) -> Result<(), DeliveryError> {
    match outcome {
        SendOutcome::Delivered | SendOutcome::Skipped(_) => Ok(()),
        SendOutcome::Retry { error, .. } | SendOutcome::Permanent(error) => Err(error),
    }
}

/// Retry or permanent, by status, as every HTTP channel does: 408, 429 and 5xx are retried
/// (honouring `Retry-After`), everything else is permanent.
pub fn failure(answer: &Answer, error: DeliveryError) -> SendOutcome {
    if answer.is_transient() {
        SendOutcome::Retry { error, after: answer.retry_after }
    } else {
        SendOutcome::Permanent(error)
    }
}

pub fn prefixed(crm: &str, doing: &str, e: DeliveryError) -> DeliveryError {
    DeliveryError { summary: format!("{crm}: {doing}: {}", e.summary), answer: e.answer }
}

/// An error code fit for a log line: short, one_line, no spaces (it comes from the CRM).
pub fn short(code: &str) -> String {
    truncate_chars(&one_line(code), 60).replace(char::is_whitespace, "_")
}

/// A CRM message fit for the row: one_line, one line, bounded.
pub fn clean(message: &str) -> String {
    truncate_chars(&one_line(message), 300)
}

/// The start of an answer whose shape we do not know, for the row.
pub fn body_excerpt(answer: &Answer) -> String {
    clean(&String::from_utf8_lossy(&answer.body))
}

/// `s` cut to `max` UTF-16 code units: CRM limits count .NET/Java string lengths, where a
/// character outside the BMP counts two. Longer values are cut, never rejected.
pub fn fit(s: &str, max: usize) -> String {
    let mut units = 0;
    let mut out = String::new();
    for c in s.chars() {
        units += c.len_utf16();
        if units > max {
            break;
        }
        out.push(c);
    }
    out
}

/// A present, non-blank value, cleaned as notifications clean customer text ([`one_line`]:
/// control characters, NUL and terminal escapes included, and line breaks become spaces;
/// bidirectional controls are dropped), then cut to `max`. Every one-line CRM field goes
/// through here.
pub fn field(v: &Option<String>, max: usize) -> Option<String> {
    let cleaned = one_line(v.as_deref()?);
    let s = cleaned.trim();
    (!s.is_empty()).then(|| fit(s, max))
}

/// Text for a multi-line CRM field (a description): line breaks stay (CR LF and lone CR become
/// LF), every other control character becomes a space and bidirectional controls are dropped,
/// as in [`one_line`].
pub fn multi_line(s: &str) -> String {
    s.replace("\r\n", "\n").replace('\r', "\n").split('\n').map(one_line).collect::<Vec<_>>().join("\n")
}

/// The text for a required last name when the lead has none (`.edu` customers arrive without
/// personal data).
pub const UNKNOWN: &str = "(unknown)";

/// A required last name: the lead's, else [`UNKNOWN`].
pub fn last_name(c: &Contact, max: usize) -> String {
    field(&c.last_name, max).unwrap_or_else(|| UNKNOWN.to_string())
}

/// A required company: the lead's, else the e-mail's domain, else [`UNKNOWN`].
pub fn company(c: &Contact, max: usize) -> String {
    field(&c.company, max)
        .or_else(|| {
            let email = one_line(c.email.as_deref()?);
            let domain = email.trim().rsplit_once('@')?.1.trim().to_string();
            (!domain.is_empty()).then(|| fit(&domain, max))
        })
        .unwrap_or_else(|| UNKNOWN.to_string())
}

/// The lead's e-mail when it looks like one (the e-mail-keyed CRMs need it as the key). An
/// address with a control or bidirectional character in it is none: cleaning it would make it
/// another address.
pub fn email(c: &Contact) -> Option<String> {
    let e = c.email.as_deref()?.trim();
    let (local, domain) = e.split_once('@')?;
    let odd = |ch: char| ch.is_whitespace() || crate::text::breaks_line(ch) || crate::text::is_bidi_control(ch);
    (!local.is_empty() && domain.contains('.') && !e.contains(odd)).then(|| e.to_string())
}

/// The lead's e-mail for a CRM field of `max` characters: a plausible address that fits, else
/// none (a cut address is a wrong one, and the CRMs reject malformed ones, failing the lead).
pub fn email_field(c: &Contact, max: usize) -> Option<String> {
    email(c).filter(|e| e.encode_utf16().count() <= max)
}

/// A JSON object with the present values only.
pub fn object(pairs: Vec<(&str, Option<Value>)>) -> Value {
    Value::Object(pairs.into_iter().filter_map(|(k, v)| Some((k.to_string(), v?))).collect())
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A CRM's record of a lead full of hostile text (NUL, ESC sequences, bidi overrides, line
    /// breaks where a field is one line) holds none of it: the one check every CRM's `record` passes.
    pub(super) fn assert_hostile_text_is_cleaned(record: fn(&Lead, &LeadMessage) -> Value) {
        let body = serde_json::json!({"LeadSource": "SPZA-PLT|a.b", "UserDetails": {"Email": "jana@contoso.example",
            "FirstName": "Ja\u{0}na\u{1b}[31m", "LastName": "No\u{202E}vák\r\nBcc: x@evil.example", "Company": "\u{2066}Contoso\u{2069}\n",
            "Title": "CEO\u{85}\u{2028}"}, "Description": "line one\r\nline\u{7} two\u{202D}"})
        .to_string();
        let lead = Lead::from_payload(body.as_bytes()).unwrap().0;
        let r = record(&lead, &LeadMessage::new(&lead, "lead_x", "pk", "rk"));
        let forbidden = |c: char| (c.is_control() && c != '\n') || crate::text::is_bidi_control(c) || matches!(c, '\u{2028}' | '\u{2029}');
        for (k, v) in r.as_object().unwrap() {
            let v = v.as_str().unwrap_or_default();
            assert!(!v.contains(forbidden), "{k}: {v:?}");
        }
        for k in ["firstname", "lastname", "companyname", "jobtitle", "subject", "FirstName", "LastName", "Company", "Title"] {
            assert!(!r.get(k).and_then(Value::as_str).unwrap_or_default().contains('\n'), "{k} is one line");
        }
        let description = r.as_object().unwrap().iter().find(|(k, _)| k.eq_ignore_ascii_case("description")).unwrap().1.as_str().unwrap();
        assert!(description.contains("line one  line  two") || description.contains("Description: line one"), "{description}");
    }

    #[test]
    fn fit_counts_utf16_units_and_never_splits_a_character() {
        assert_eq!(fit("abc", 2), "ab");
        assert_eq!(fit("a😀b", 2), "a");
        assert_eq!(fit("a😀b", 3), "a😀");
        assert_eq!(fit("Novák", 50), "Novák");
    }

    #[test]
    fn required_fields_fall_back() {
        let mut c = Contact::default();
        assert_eq!(last_name(&c, 80), "(unknown)");
        assert_eq!(company(&c, 80), "(unknown)");
        c.email = Some("ana@northwind.example".into());
        assert_eq!(company(&c, 80), "northwind.example");
        c.company = Some("  ".into());
        assert_eq!(company(&c, 80), "northwind.example");
        c.company = Some("Northwind".into());
        c.last_name = Some("x".repeat(100));
        assert_eq!(company(&c, 80), "Northwind");
        assert_eq!(last_name(&c, 80).len(), 80);
        assert_eq!(email(&c).as_deref(), Some("ana@northwind.example"));
        c.email = Some("not an address".into());
        assert_eq!(email(&c), None);
    }

    #[test]
    fn tokens_are_used_until_the_margin_or_half_their_remaining_life() {
        assert_eq!(token_lifetime(Duration::from_secs(3600)), Duration::from_secs(3300));
        assert_eq!(token_lifetime(Duration::from_secs(300)), Duration::from_secs(150), "Marketo's token near its end");
        assert_eq!(token_lifetime(Duration::from_secs(20)), Duration::from_secs(10), "never past the expiry");
    }

    #[test]
    fn an_address_that_does_not_fit_is_left_out_not_cut() {
        let mut c = Contact { email: Some(format!("{}@northwind.example", "a".repeat(70))), ..Contact::default() };
        assert_eq!(email_field(&c, 80), None);
        assert!(email_field(&c, 100).is_some());
        c.email = Some("not an address".into());
        assert_eq!(email_field(&c, 100), None);
    }

    #[tokio::test]
    async fn an_expired_fresh_token_is_retried_later_not_failed() {
        let cache = TokenCache::default();
        let fetch =
            || async { Ok(Fetched { token: "t".to_string().into(), expires_in: Some(Duration::from_secs(20)), instance_url: None }) };
        let outcome = with_token(&cache, fetch, |_| async { Call::Expired(DeliveryError::new("Marketo: error 602")) }, "").await;
        assert!(matches!(outcome, SendOutcome::Retry { .. }), "{outcome:?}");
        assert_eq!(cache.fetches(), 2, "refreshed once");
    }

    #[tokio::test]
    async fn a_401_refreshes_once_then_gives_up() {
        let cache = TokenCache::default();
        let fetch =
            || async { Ok(Fetched { token: "t".to_string().into(), expires_in: Some(Duration::from_secs(3600)), instance_url: None }) };
        let calls = std::sync::atomic::AtomicU32::new(0);
        let outcome = with_token(
            &cache,
            fetch,
            |_| {
                calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                async { Call::Unauthorized(DeliveryError::new("X: HTTP 401")) }
            },
            "check the app's rights",
        )
        .await;
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 2);
        assert_eq!(cache.fetches(), 2);
        assert!(matches!(outcome, SendOutcome::Permanent(e) if e.summary.contains("fresh token")));
        // A good token is reused.
        let ok = with_token(&cache, fetch, |_| async { Call::Done(SendOutcome::Delivered) }, "").await;
        assert_eq!(ok, SendOutcome::Delivered);
        with_token(&cache, fetch, |_| async { Call::Done(SendOutcome::Delivered) }, "").await;
        assert_eq!(cache.fetches(), 3);
    }
}
