//! E-mail over SMTP (Office 365, SendGrid and Azure Communication Services relays all speak
//! it): one message per lead, plain text and HTML.

use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::ExposeSecret;

use super::message::LeadMessage;
use super::SendOutcome;
use crate::settings::{EmailSettings, SmtpSecurity};

pub struct EmailChannel {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
}

impl EmailChannel {
    pub fn new(cfg: &EmailSettings) -> Result<Self, String> {
        let builder = match cfg.security {
            SmtpSecurity::StartTls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&cfg.host).map_err(|e| e.to_string())?,
            SmtpSecurity::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&cfg.host).map_err(|e| e.to_string())?,
            SmtpSecurity::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&cfg.host),
        };
        let mut builder = builder.port(cfg.port).timeout(Some(Duration::from_secs(30)));
        if let Some(user) = &cfg.username {
            let password = cfg.password.as_ref().map(|p| p.expose_secret().to_string()).unwrap_or_default();
            builder = builder.credentials(Credentials::new(user.clone(), password));
        }
        let from = cfg.from.parse().map_err(|_| "NOTIFY_EMAIL_FROM is not an address".to_string())?;
        let to = cfg.to.iter().map(|a| a.parse()).collect::<Result<Vec<Mailbox>, _>>().map_err(|_| "NOTIFY_EMAIL_TO".to_string())?;
        Ok(EmailChannel { transport: builder.build(), from, to })
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
        let email = match builder.multipart(MultiPart::alternative_plain_html(msg.plain_text(), msg.html())) {
            Ok(m) => m,
            Err(e) => return SendOutcome::Permanent(format!("could not build the message: {e}")),
        };
        match self.transport.send(email).await {
            Ok(_) => SendOutcome::Delivered,
            Err(e) if e.is_permanent() => SendOutcome::Permanent(format!("SMTP: {e}")),
            Err(e) => SendOutcome::Retry { error: format!("SMTP: {e}"), after: None },
        }
    }
}
