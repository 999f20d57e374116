//! Microsoft Entra ID bearer tokens for the Table service (keyless storage), through the official
//! `azure_identity` crate: the managed identity of App Service / Functions (`IDENTITY_ENDPOINT` +
//! `IDENTITY_HEADER`), or the developer's `az login` for the lead tools on a laptop.
//!
//! Two pieces are written here rather than taken from the SDK, and why:
//! - a ~30-line adapter that lets azure_core send its requests with our reqwest 0.12 client:
//!   azure_core 1.x's own transport is reqwest 0.13, which would put a second HTTP stack (and
//!   aws-lc, a C build) into the binary;
//! - a token cache: azure_identity caches managed-identity tokens but not Azure CLI ones ("every
//!   call invokes the CLI"); one cache in front of both keeps the behaviour the same.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use azure_core::credentials::{AccessToken, TokenCredential};
use azure_core::http::headers::Headers;
use azure_core::http::{AsyncRawResponse, Body, ClientOptions, ExponentialRetryOptions, HttpClient, Request, RetryOptions, Transport};
use azure_core::time::{Duration, OffsetDateTime};
use azure_identity::{AzureCliCredential, ManagedIdentityCredential, ManagedIdentityCredentialOptions, UserAssignedId};
use secrecy::SecretString;

/// The scope of Azure Storage data-plane tokens.
pub const STORAGE_SCOPE: &str = "https://storage.azure.com/.default";
/// Refresh this long before `expires_on` (the margin azure_identity uses itself).
const REFRESH_MARGIN: Duration = Duration::minutes(5);

/// Which identity to take tokens from.
#[derive(Debug, Clone)]
pub enum IdentityKind {
    /// App Service / Functions managed identity; `client_id` selects a user-assigned one.
    ManagedIdentity { client_id: Option<String> },
    /// The developer's Azure CLI login (`az account get-access-token`).
    AzureCli,
    /// Managed identity when `IDENTITY_ENDPOINT` is set (in Azure), else the Azure CLI.
    Auto { client_id: Option<String> },
}

/// Why no token could be had. Never carries a token.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct TokenError(String);

/// Cheap to clone; all clones share one cached token.
#[derive(Clone)]
pub struct TokenSource(Arc<Inner>);

struct Inner {
    credential: Arc<dyn TokenCredential>,
    kind: &'static str,
    hint: &'static str,
    cached: tokio::sync::Mutex<Option<AccessToken>>,
    fetches: AtomicU64,
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSource").field("kind", &self.0.kind).field("fetches", &self.fetches()).finish_non_exhaustive()
    }
}

impl TokenSource {
    pub fn new(kind: IdentityKind, http: reqwest::Client) -> Result<Self, TokenError> {
        let kind = match kind {
            IdentityKind::Auto { client_id } if std::env::var_os("IDENTITY_ENDPOINT").is_some() => {
                IdentityKind::ManagedIdentity { client_id }
            }
            IdentityKind::Auto { .. } => IdentityKind::AzureCli,
            other => other,
        };
        let options = ClientOptions {
            transport: Some(Transport::new(Arc::new(Reqwest12(http)))),
            // The SDK's default is 8 retries over a minute; a lead waits for this, so fail sooner.
            retry: RetryOptions::exponential(ExponentialRetryOptions {
                initial_delay: Duration::milliseconds(200),
                max_retries: 3,
                max_total_elapsed: Duration::seconds(10),
                max_delay: Duration::seconds(2),
            }),
            ..Default::default()
        };
        let (credential, kind, hint): (Arc<dyn TokenCredential>, _, _) = match kind {
            IdentityKind::ManagedIdentity { client_id } => {
                // Without these, azure_identity silently falls back to the VM endpoint (169.254.169.254).
                for var in ["IDENTITY_ENDPOINT", "IDENTITY_HEADER"] {
                    if std::env::var(var).map_or(true, |v| v.is_empty()) {
                        return Err(TokenError(format!(
                            "managed identity: {var} is not set (outside App Service/Functions, or the app has no identity); enable the app's identity, or on a laptop leave out __credential and use `az login`"
                        )));
                    }
                }
                let options = ManagedIdentityCredentialOptions {
                    user_assigned_id: client_id.filter(|c| !c.is_empty()).map(UserAssignedId::ClientId),
                    client_options: options,
                };
                let credential = ManagedIdentityCredential::new(Some(options)).map_err(|e| TokenError(format!("managed identity: {e}")))?;
                (
                    credential as Arc<dyn TokenCredential>,
                    "managed identity",
                    "check that the identity is enabled on the app (for a user-assigned one, its client id) and holds a Storage Table Data role on the account",
                )
            }
            IdentityKind::AzureCli | IdentityKind::Auto { .. } => {
                let credential = AzureCliCredential::new(None).map_err(|e| TokenError(format!("Azure CLI: {e}")))?;
                (credential as Arc<dyn TokenCredential>, "Azure CLI", "run `az login` (and check `az account show`)")
            }
        };
        Ok(TokenSource(Arc::new(Inner { credential, kind, hint, cached: Default::default(), fetches: AtomicU64::new(0) })))
    }

    /// The token for `Authorization: Bearer <token>`: cached, refreshed 5 minutes before expiry.
    pub async fn bearer(&self) -> Result<SecretString, TokenError> {
        // Held across the fetch: concurrent callers wait for one fetch instead of each starting one.
        let mut cached = self.0.cached.lock().await;
        if let Some(t) = cached.as_ref().filter(|t| t.expires_on > OffsetDateTime::now_utc() + REFRESH_MARGIN) {
            return Ok(SecretString::from(t.token.secret()));
        }
        self.0.fetches.fetch_add(1, Ordering::Relaxed);
        let token = self.0.credential.get_token(&[STORAGE_SCOPE], None).await.map_err(|e| {
            // azure_core's Display hides the cause ("connection refused"): add the chain.
            let mut msg = e.to_string().replace('\n', " ");
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                let text = s.to_string();
                if !msg.contains(text.trim()) {
                    msg = format!("{msg}: {}", text.trim());
                }
                source = s.source();
            }
            TokenError(format!("{}: no token for {STORAGE_SCOPE}: {msg}; {}", self.0.kind, self.0.hint))
        })?;
        let secret = SecretString::from(token.token.secret());
        *cached = Some(token);
        Ok(secret)
    }

    /// How many times a token was actually requested (tests: fetched once, then reused).
    pub fn fetches(&self) -> u64 {
        self.0.fetches.load(Ordering::Relaxed)
    }
}

/// azure_core's transport trait over our reqwest 0.12 client.
#[derive(Debug)]
struct Reqwest12(reqwest::Client);

#[async_trait::async_trait]
impl HttpClient for Reqwest12 {
    async fn execute_request(&self, request: &Request) -> azure_core::Result<AsyncRawResponse> {
        use azure_core::error::ErrorKind;
        let method = reqwest::Method::from_bytes(request.method().as_str().as_bytes())
            .map_err(|e| azure_core::Error::with_error(ErrorKind::Other, e, "HTTP method"))?;
        let mut req = self.0.request(method, request.url().as_str());
        for (name, value) in request.headers().iter() {
            req = req.header(name.as_str(), value.as_str());
        }
        if let Body::Bytes(b) = request.body() {
            // Identity requests never stream their bodies.
            req = req.body(b.clone());
        }
        let resp = req.send().await.map_err(|e| {
            let kind = if e.is_connect() { ErrorKind::Connection } else { ErrorKind::Io };
            azure_core::Error::with_error(kind, e.without_url(), "identity endpoint request failed")
        })?;
        let status = resp.status().as_u16().into();
        let mut headers = Headers::new();
        for (k, v) in resp.headers() {
            if let Ok(v) = v.to_str() {
                headers.insert(k.as_str().to_owned(), v.to_owned());
            }
        }
        let body =
            resp.bytes().await.map_err(|e| azure_core::Error::with_error(ErrorKind::Io, e.without_url(), "identity endpoint answer"))?;
        Ok(AsyncRawResponse::from_bytes(status, headers, body))
    }
}
