//! What every HTTP channel shares, below them: the HTTP client (timeouts, no redirects), one
//! POST of JSON, and how its answer is classified. Also the outcome type every channel returns.

use std::fmt;
use std::time::{Duration, SystemTime};

use super::retry_schedule::parse_retry_after;
use crate::net::describe_reqwest;
use crate::text::truncate_chars;

/// Why an attempt did not deliver. `summary` is safe to log; `answer` is the receiver's answer
/// body, which may echo the lead back: it goes to the row (for `leads status`), never to logs.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryError {
    pub summary: String,
    pub answer: Option<String>,
}

impl DeliveryError {
    pub fn new(summary: impl Into<String>) -> Self {
        DeliveryError { summary: summary.into(), answer: None }
    }

    /// The text stored in `Notify<Channel>LastError`.
    pub fn for_table(&self) -> String {
        match &self.answer {
            Some(a) => format!("{}; answer: {a}", self.summary),
            None => self.summary.clone(),
        }
    }
}

/// Displays the loggable part only.
impl fmt::Display for DeliveryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.summary)
    }
}

/// What one attempt on one channel came to.
#[derive(Debug, Clone, PartialEq)]
pub enum SendOutcome {
    Delivered,
    /// Worth trying again (timeout, 5xx, 408, 429, SMTP 4xx); `after` from `Retry-After`.
    Retry {
        error: DeliveryError,
        after: Option<Duration>,
    },
    /// Trying again will not help (4xx, 410 Gone, SMTP 5xx).
    Permanent(DeliveryError),
    /// Not sent on purpose, and never will be: this channel cannot take this lead (a CRM that
    /// keys people on e-mail, and a lead without one). Recorded as `skipped` with the reason.
    Skipped(DeliveryError),
}

/// Bytes of a receiver's answer we read at most: enough for an error message, and a hostile
/// receiver's endless body costs nothing.
pub const MAX_ANSWER_BYTES: usize = 1024;

/// How long the answer's body may take once its status and headers are in. Short and separate
/// from the send deadline: the status already decides the outcome, and a receiver that stalls
/// mid-body must not turn a known `HTTP 500` (or a `200`) into a timeout.
const ANSWER_BODY_TIME: Duration = Duration::from_secs(2);

/// The first `limit` bytes of an answer's body, read for at most [`ANSWER_BODY_TIME`]; the rest
/// is never read (dropping the response closes the connection).
async fn read_at_most(mut resp: reqwest::Response, limit: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(ANSWER_BODY_TIME, async {
        while out.len() < limit {
            match resp.chunk().await {
                Ok(Some(chunk)) => out.extend_from_slice(&chunk[..chunk.len().min(limit - out.len())]),
                Ok(None) | Err(_) => break,
            }
        }
    })
    .await;
    out
}

/// The client every HTTP channel posts with.
pub fn http_client(timeout: Duration) -> Result<reqwest::Client, String> {
    crate::net::client_builder()?
        // The whole request, answer included; the caller's deadline bounds it again.
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(5))
        // A webhook that redirects is misconfigured; following it could leak the lead.
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("marketplace-leads/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| describe_reqwest(&e))
}

/// POSTs JSON and classifies the answer. Errors never include the URL (it carries tokens).
pub async fn post_json(http: &reqwest::Client, url: &str, headers: &[(&str, String)], body: String) -> SendOutcome {
    let answer = match request(http, reqwest::Method::POST, url, headers, RequestBody::Json(body), MAX_ANSWER_BYTES).await {
        Ok(a) => a,
        Err(error) => return SendOutcome::Retry { error, after: None },
    };
    if (200..300).contains(&answer.status) {
        return SendOutcome::Delivered;
    }
    let text = crate::text::one_line(&truncate_chars(&String::from_utf8_lossy(&answer.body), 200));
    let error = |hint: &str| DeliveryError { summary: format!("HTTP {}{hint}", answer.status), answer: Some(text.clone()) };
    match answer.status {
        408 | 429 | 500..=599 => SendOutcome::Retry { error: error(""), after: answer.retry_after },
        300..=399 => SendOutcome::Permanent(error(" (redirects are not followed: use the final URL)")),
        410 => SendOutcome::Permanent(error(" (the endpoint is gone)")),
        _ => SendOutcome::Permanent(error("")),
    }
}

/// Bytes of a JSON answer the CRM channels read at most: they need ids, tokens and error lists
/// from it (a Salesforce token answer alone is about 1 KiB), still bounded.
pub const MAX_JSON_ANSWER_BYTES: usize = 64 * 1024;

/// A request body and its content type.
pub enum RequestBody {
    Json(String),
    Form(String),
    None,
}

/// An answer read for its content (the CRM channels act on what it says, not only its status).
pub struct Answer {
    pub status: u16,
    pub retry_after: Option<Duration>,
    /// At most [`MAX_JSON_ANSWER_BYTES`] (for the notification channels, [`MAX_ANSWER_BYTES`]).
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// Worth trying again: 408, 429 and 5xx, as for every HTTP channel.
    pub fn is_transient(&self) -> bool {
        matches!(self.status, 408 | 429 | 500..=599)
    }
}

/// One request of any method; the answer is read up to [`MAX_JSON_ANSWER_BYTES`]. A transport
/// failure (connection, timeout) is the `Err`, to be retried; its text never includes the URL.
pub async fn send_request(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    headers: &[(&str, String)],
    body: RequestBody,
) -> Result<Answer, DeliveryError> {
    request(http, method, url, headers, body, MAX_JSON_ANSWER_BYTES).await
}

/// One request; the answer's body is read up to `limit` bytes.
async fn request(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    headers: &[(&str, String)],
    body: RequestBody,
    limit: usize,
) -> Result<Answer, DeliveryError> {
    let mut req = http.request(method, url);
    req = match body {
        RequestBody::Json(b) => req.header("Content-Type", "application/json").body(b),
        RequestBody::Form(b) => req.header("Content-Type", "application/x-www-form-urlencoded").body(b),
        RequestBody::None => req,
    };
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let resp = req.send().await.map_err(|e| DeliveryError::new(describe_reqwest(&e.without_url())))?;
    let status = resp.status().as_u16();
    let retry_after = resp.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| parse_retry_after(v, SystemTime::now()));
    let body = read_at_most(resp, limit).await;
    Ok(Answer { status, retry_after, body })
}

/// [`send_request`] with a JSON body.
pub async fn send_json(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    headers: &[(&str, String)],
    body: String,
) -> Result<Answer, DeliveryError> {
    send_request(http, method, url, headers, RequestBody::Json(body)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answer_bodies_stay_out_of_logs() {
        let e = DeliveryError { summary: "HTTP 400".into(), answer: Some("invalid lead jana@contoso.example".into()) };
        assert_eq!(e.to_string(), "HTTP 400");
        assert_eq!(e.for_table(), "HTTP 400; answer: invalid lead jana@contoso.example");
        assert_eq!(DeliveryError::new("SMTP: timed out").for_table(), "SMTP: timed out");
    }
}
