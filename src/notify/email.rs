//! E-mail over SMTP (Office 365, SendGrid and Azure Communication Services relays all speak
//! it): one message per lead, plain text and HTML.

use std::time::Duration;

use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::ExposeSecret;

use super::message::LeadMessage;
use super::sender::Sender;
use super::transport::{DeliveryError, SendOutcome};
use crate::lead::Lead;
use crate::settings::{EmailSettings, SmtpSecurity};

pub struct EmailChannel {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
}

impl EmailChannel {
    /// `timeout` applies to each SMTP command; the caller bounds the whole conversation.
    pub fn new(cfg: &EmailSettings, timeout: Duration) -> Result<Self, String> {
        let from = cfg.from.parse().map_err(|_| "NOTIFY_EMAIL_FROM is not an address".to_string())?;
        let to = cfg.to.iter().map(|a| a.parse()).collect::<Result<Vec<Mailbox>, _>>().map_err(|_| "NOTIFY_EMAIL_TO".to_string())?;
        Ok(EmailChannel { transport: smtp_transport(cfg, timeout)?, from, to })
    }

    pub async fn send(&self, msg: &LeadMessage) -> SendOutcome {
        // Recipients come from settings only; lead text reaches the subject (header-safe) and
        // the bodies (escaped in HTML), never an address header.
        let mut builder = Message::builder()
            .from(self.from.clone())
            .subject(msg.subject.clone())
            .message_id(Some(format!("<{}@marketplace-leads>", msg.id)));
        for to in &self.to {
            builder = builder.to(to.clone());
        }
        let (text, html) = (msg.plain_text(), msg.html());
        // An HTML part that could not be drawn is left out, not sent empty (a blank mail).
        let built = if html.is_empty() {
            builder.singlepart(SinglePart::plain(text))
        } else {
            builder.multipart(MultiPart::alternative_plain_html(text, html))
        };
        let email = match built {
            Ok(m) => m,
            Err(e) => return SendOutcome::Permanent(DeliveryError::new(format!("could not build the message: {e}"))),
        };
        deliver(&self.transport, email).await
    }
}

/// The relay connection the settings describe; shared by the per-lead e-mail and the digest.
/// `timeout` applies to each SMTP command; the caller bounds the whole conversation.
pub fn smtp_transport(cfg: &EmailSettings, timeout: Duration) -> Result<AsyncSmtpTransport<Tokio1Executor>, String> {
    let builder = match cfg.security {
        SmtpSecurity::StartTls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&cfg.host).map_err(|e| e.to_string())?,
        SmtpSecurity::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&cfg.host).map_err(|e| e.to_string())?,
        SmtpSecurity::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&cfg.host),
    };
    let mut builder = builder.port(cfg.port).timeout(Some(timeout));
    if let Some(user) = &cfg.username {
        let password = cfg.password.as_ref().map(|p| p.expose_secret().to_string()).unwrap_or_default();
        builder = builder.credentials(Credentials::new(user.clone(), password));
    }
    Ok(builder.build())
}

/// Sends one message and classifies the relay's answer: SMTP 5xx is permanent, the rest
/// (4xx, connection and TLS failures, timeouts) worth another attempt.
pub async fn deliver(transport: &AsyncSmtpTransport<Tokio1Executor>, email: Message) -> SendOutcome {
    match transport.send(email).await {
        Ok(_) => SendOutcome::Delivered,
        Err(e) if e.is_permanent() => SendOutcome::Permanent(DeliveryError::new(format!("SMTP: {e}"))),
        Err(e) => SendOutcome::Retry { error: DeliveryError::new(format!("SMTP: {e}")), after: None },
    }
}

#[async_trait::async_trait]
impl Sender for EmailChannel {
    async fn send(&self, _lead: &Lead, msg: &LeadMessage) -> SendOutcome {
        EmailChannel::send(self, msg).await
    }
}
