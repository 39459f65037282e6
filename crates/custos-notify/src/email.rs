//! E-mail through an SMTP server (lettre), upgraded with STARTTLS unless the policy turns it
//! off for a relay on a trusted network.

use std::fmt;
use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::DeliveryError;

/// How long one SMTP conversation may take.
pub const SMTP_TIMEOUT: Duration = Duration::from_secs(20);

/// Where and how to send mail.
#[derive(Clone)]
pub struct SmtpConfig {
    /// The server's host name.
    pub host: String,
    /// Its port.
    pub port: u16,
    /// The sender address.
    pub from: String,
    /// The login, if the server wants one.
    pub credentials: Option<(String, String)>,
    /// Whether STARTTLS is required.
    pub starttls: bool,
    /// CAs (PEM) to trust besides the web's roots, for a server with a private CA (the
    /// policy's `[network] ca_file`).
    pub extra_roots: Option<Vec<u8>>,
}

impl fmt::Debug for SmtpConfig {
    // The password is a secret: never printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("from", &self.from)
            .field("login", &self.credentials.is_some())
            .field("starttls", &self.starttls)
            .field("extra_roots", &self.extra_roots.is_some())
            .finish()
    }
}

/// One e-mail: plain text, with a Message-ID that stays the same on every attempt (so a mail
/// client shows a repeat once).
#[derive(Debug, Clone)]
pub struct Email {
    /// The recipient's address.
    pub to: String,
    /// The subject line.
    pub subject: String,
    /// The plain-text body.
    pub body: String,
    /// A stable id (the outbox message's), used as the Message-ID's local part.
    pub id: String,
}

/// Sends e-mail through one SMTP server.
#[derive(Clone)]
pub struct SmtpSender {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: String,
}

impl fmt::Debug for SmtpSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpSender")
            .field("from", &self.from)
            .finish_non_exhaustive()
    }
}

impl SmtpSender {
    /// A sender for `config`; no connection is made until the first message.
    pub fn new(config: &SmtpConfig) -> Result<SmtpSender, DeliveryError> {
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host);
        if config.starttls {
            let mut tls = TlsParameters::builder(config.host.clone());
            if let Some(pem) = &config.extra_roots {
                let roots = Certificate::from_pem(pem)
                    .map_err(|e| DeliveryError::Misconfigured(format!("[network] ca_file: {e}")))?;
                tls = tls.add_root_certificate(roots);
            }
            let tls = tls.build_rustls().map_err(|e| {
                DeliveryError::Misconfigured(format!("[smtp] host {:?}: {e}", config.host))
            })?;
            builder = builder.tls(Tls::Required(tls));
        }
        let mut builder = builder.port(config.port).timeout(Some(SMTP_TIMEOUT));
        if let Some((user, password)) = &config.credentials {
            builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
        }
        Ok(SmtpSender {
            transport: builder.build(),
            from: config.from.clone(),
        })
    }

    /// Sends one e-mail; an error says what the server or the connection did.
    pub async fn send(&self, email: &Email) -> Result<(), DeliveryError> {
        let domain = self.from.rsplit('@').next().unwrap_or("custos");
        let message = Message::builder()
            .from(self.from.parse().map_err(|e| {
                DeliveryError::Misconfigured(format!("[smtp] from is not an address: {e}"))
            })?)
            .to(email.to.parse().map_err(|_| {
                DeliveryError::Misconfigured("the recipient is not an e-mail address".into())
            })?)
            .subject(&email.subject)
            .message_id(Some(format!("<{}@{domain}>", email.id)))
            .header(ContentType::TEXT_PLAIN)
            .body(email.body.clone())
            .map_err(|e| {
                DeliveryError::Misconfigured(format!("the e-mail cannot be built: {e}"))
            })?;
        // The server's text may echo the recipient: only its reply code is kept.
        match self.transport.send(message).await {
            Ok(_) => Ok(()),
            Err(e) => match e.status() {
                Some(code) if e.is_permanent() => Err(DeliveryError::Rejected(format!(
                    "the mail server refused the message ({code})"
                ))),
                Some(code) => Err(DeliveryError::Unreachable(format!(
                    "the mail server deferred the message ({code})"
                ))),
                None if e.is_timeout() => Err(DeliveryError::Unreachable(
                    "the mail server did not answer in time".into(),
                )),
                None => Err(DeliveryError::Unreachable(
                    "the mail server could not be reached or the connection failed".into(),
                )),
            },
        }
    }
}
