//! How Custos sends what it has to tell people: webhooks signed the Standard Webhooks way
//! (`webhook-id`, `webhook-timestamp`, `webhook-signature`), and e-mail through an SMTP server.
//!
//! This crate is only the transports. What to send, to whom, when, and what to do when a
//! delivery fails (the durable outbox, its retries) is `custos-core`'s; the connection rules
//! for URLs supplied at run time are the caller's `reqwest::Client`.

pub mod email;
pub mod webhook;

/// Why one delivery attempt failed; its text names the channel's answer, never a secret or
/// the message's content.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// The receiver answered with a status other than 2xx.
    #[error("the receiver answered {0}")]
    Refused(u16),
    /// The mail server refused the message for good (a 5xx reply).
    #[error("{0}")]
    Rejected(String),
    /// The receiver could not be reached, or did not answer in time.
    #[error("the receiver could not be reached: {0}")]
    Unreachable(String),
    /// The channel is configured wrongly (a bad secret, a bad address); retrying will not help.
    #[error("{0}")]
    Misconfigured(String),
}

impl DeliveryError {
    /// Whether a later attempt may succeed as things stand: server errors, 408, 429 and
    /// unreachable receivers; not other refusals or a misconfiguration (which a person must
    /// fix first).
    pub fn is_transient(&self) -> bool {
        match self {
            DeliveryError::Refused(status) => *status >= 500 || *status == 408 || *status == 429,
            DeliveryError::Unreachable(_) => true,
            DeliveryError::Rejected(_) | DeliveryError::Misconfigured(_) => false,
        }
    }
}
