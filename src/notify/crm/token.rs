//! The OAuth 2.0 client-credentials token every CRM but HubSpot's private app uses: one cached
//! token per CRM (one fetch for concurrent sends), refreshed once when the CRM answers 401.

use std::future::Future;
use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};

use super::{body_excerpt, clean, failure, prefixed, short};
use crate::notify::transport::{send_request, DeliveryError, RequestBody, SendOutcome};

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_used_until_the_margin_or_half_their_remaining_life() {
        assert_eq!(token_lifetime(Duration::from_secs(3600)), Duration::from_secs(3300));
        assert_eq!(token_lifetime(Duration::from_secs(300)), Duration::from_secs(150), "Marketo's token near its end");
        assert_eq!(token_lifetime(Duration::from_secs(20)), Duration::from_secs(10), "never past the expiry");
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
