//! Standard Webhooks (<https://www.standardwebhooks.com>): secrets, signatures and delivery.
//!
//! A message is signed with HMAC-SHA256 over `{webhook-id}.{webhook-timestamp}.{body}` under
//! the base64-decoded part of a `whsec_` secret, and sent as `v1,<base64 signature>`. While a
//! secret is rotated, both the old and the new one sign, space-separated, so a receiver that
//! knows either accepts the message. Hand-rolled over `hmac`: the scheme is four lines, and
//! the published Rust crate for it pulls in an HTTP stack of its own.

use std::fmt;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::DeliveryError;

/// The prefix of a Standard Webhooks secret.
pub const SECRET_PREFIX: &str = "whsec_";
/// How far a receiver lets `webhook-timestamp` be from its clock (the spec's suggestion).
pub const TIMESTAMP_TOLERANCE_SECONDS: i64 = 5 * 60;
/// How long one delivery attempt may take.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// One signing secret; never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret {
    key: Vec<u8>,
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(…)")
    }
}

/// Why text is not a webhook secret (the text itself is never part of the error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// No secret was given.
    #[error("no webhook secret is set")]
    Empty,
    /// A secret without the `whsec_` prefix.
    #[error("a webhook secret starts with `whsec_`")]
    Prefix,
    /// The part after the prefix is not base64.
    #[error("the part of a webhook secret after `whsec_` is not base64")]
    Encoding,
    /// Too short to be a secret.
    #[error("a webhook secret holds 24 to 64 random bytes")]
    Length,
    /// More than the two secrets of a rotation.
    #[error("at most two webhook secrets (the old and the new one while rotating)")]
    TooMany,
}

impl WebhookSecret {
    /// Parses `whsec_<base64 of 24 to 64 bytes>`.
    pub fn parse(text: &str) -> Result<WebhookSecret, SecretError> {
        let encoded = text
            .strip_prefix(SECRET_PREFIX)
            .ok_or(SecretError::Prefix)?;
        let key = STANDARD
            .decode(encoded)
            .map_err(|_| SecretError::Encoding)?;
        if !(24..=64).contains(&key.len()) {
            return Err(SecretError::Length);
        }
        Ok(WebhookSecret { key })
    }

    /// A secret of raw key bytes (24 to 64 of them).
    pub fn from_bytes(key: &[u8]) -> Result<WebhookSecret, SecretError> {
        Self::parse(&format!("{SECRET_PREFIX}{}", STANDARD.encode(key)))
    }

    /// The signature of one message under this secret (base64, without `v1,`).
    fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        STANDARD.encode(mac.finalize().into_bytes())
    }
}

/// The secrets a channel signs with: one, or two while rotating.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookSecrets(Vec<WebhookSecret>);

impl WebhookSecrets {
    /// Parses one secret, or two separated by whitespace.
    pub fn parse(text: &str) -> Result<WebhookSecrets, SecretError> {
        let secrets = text
            .split_whitespace()
            .map(WebhookSecret::parse)
            .collect::<Result<Vec<_>, _>>()?;
        match secrets.len() {
            0 => Err(SecretError::Empty),
            1 | 2 => Ok(WebhookSecrets(secrets)),
            _ => Err(SecretError::TooMany),
        }
    }

    /// Secrets already parsed (one or two).
    pub fn new(secrets: Vec<WebhookSecret>) -> Result<WebhookSecrets, SecretError> {
        match secrets.len() {
            0 => Err(SecretError::Empty),
            1 | 2 => Ok(WebhookSecrets(secrets)),
            _ => Err(SecretError::TooMany),
        }
    }

    /// The `webhook-signature` header's value: `v1,<sig>` per secret, space-separated.
    pub fn signature_header(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        self.0
            .iter()
            .map(|s| format!("v1,{}", s.sign(id, timestamp, body)))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Why a received message does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// `webhook-timestamp` is not a number, or is too far from now.
    #[error("webhook-timestamp is missing, malformed or outside the tolerance")]
    Timestamp,
    /// No `v1` signature matches.
    #[error("no webhook-signature matches")]
    Signature,
}

/// Checks a received message the way a receiver does: the timestamp within the tolerance of
/// `now` (unix seconds), and one of the header's `v1` signatures made by `secret`.
pub fn verify(
    secret: &WebhookSecret,
    id: &str,
    timestamp: &str,
    signatures: &str,
    body: &[u8],
    now: i64,
) -> Result<(), VerifyError> {
    let ts: i64 = timestamp.parse().map_err(|_| VerifyError::Timestamp)?;
    if (now - ts).abs() > TIMESTAMP_TOLERANCE_SECONDS {
        return Err(VerifyError::Timestamp);
    }
    let expected = secret.sign(id, ts, body);
    let matched = signatures
        .split_whitespace()
        .filter_map(|s| s.strip_prefix("v1,"))
        .any(|sig| constant_time_eq(sig.as_bytes(), expected.as_bytes()));
    if matched {
        Ok(())
    } else {
        Err(VerifyError::Signature)
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// POSTs one signed message; 2xx is delivered, anything else an error saying what happened.
///
/// `client` decides where it may connect (the outbound rule for URLs given at run time) and
/// must not follow redirects: a receiver that moved is a misconfiguration to fix, not a
/// place to send the body.
pub async fn send(
    client: &reqwest::Client,
    url: &str,
    secrets: &WebhookSecrets,
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<(), DeliveryError> {
    let answer = client
        .post(url)
        .timeout(ATTEMPT_TIMEOUT)
        .header("content-type", "application/json")
        .header("webhook-id", id)
        .header("webhook-timestamp", timestamp.to_string())
        .header(
            "webhook-signature",
            secrets.signature_header(id, timestamp, body),
        )
        .body(body.to_vec())
        .send()
        .await
        .map_err(|e| DeliveryError::Unreachable(describe(&e)))?;
    let status = answer.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(DeliveryError::Refused(status.as_u16()))
    }
}

/// A reqwest error as short text: its kind and cause, without the URL's query (which could
/// carry a token).
fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    match std::error::Error::source(e) {
        Some(cause) => format!("{kind}: {cause}"),
        None => kind.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The Standard Webhooks specification's published example: this secret, id, timestamp
    /// and body give this signature.
    #[test]
    fn the_specification_example_signs_as_published() {
        let secret = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        let sig = WebhookSecrets::new(vec![secret]).unwrap().signature_header(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            body,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn secrets_are_checked_and_never_printed() {
        assert_eq!(
            WebhookSecret::parse("MfKQ9r8GKYqr"),
            Err(SecretError::Prefix)
        );
        assert_eq!(WebhookSecret::parse("whsec_!!"), Err(SecretError::Encoding));
        assert_eq!(WebhookSecret::parse("whsec_AAAA"), Err(SecretError::Length));
        assert_eq!(WebhookSecrets::parse("  "), Err(SecretError::Empty));
        let one = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        assert_eq!(
            WebhookSecrets::parse(&format!("{one} {one} {one}")),
            Err(SecretError::TooMany)
        );
        let printed = format!("{:?}", WebhookSecrets::parse(one).unwrap());
        assert!(!printed.contains("MfKQ"), "{printed}");
    }

    proptest! {
        /// While rotating, a receiver holding either secret accepts the message, and one
        /// holding neither, or seeing another body, does not.
        #[test]
        fn either_rotated_secret_verifies(
            old in prop::collection::vec(any::<u8>(), 24..64),
            new in prop::collection::vec(any::<u8>(), 24..64),
            other in prop::collection::vec(any::<u8>(), 24..64),
            body in prop::collection::vec(any::<u8>(), 0..200),
            ts in 1_600_000_000i64..2_000_000_000,
        ) {
            prop_assume!(other != old && other != new);
            let (old, new, other) = (
                WebhookSecret::from_bytes(&old).unwrap(),
                WebhookSecret::from_bytes(&new).unwrap(),
                WebhookSecret::from_bytes(&other).unwrap(),
            );
            let both = WebhookSecrets::new(vec![old.clone(), new.clone()]).unwrap();
            let header = both.signature_header("msg_1", ts, &body);
            let tsx = ts.to_string();
            prop_assert!(verify(&old, "msg_1", &tsx, &header, &body, ts).is_ok());
            prop_assert!(verify(&new, "msg_1", &tsx, &header, &body, ts + 299).is_ok());
            prop_assert_eq!(verify(&other, "msg_1", &tsx, &header, &body, ts), Err(VerifyError::Signature));
            prop_assert_eq!(verify(&old, "msg_2", &tsx, &header, &body, ts), Err(VerifyError::Signature));
            prop_assert_eq!(verify(&old, "msg_1", &tsx, &header, &body, ts + 301), Err(VerifyError::Timestamp));
            let mut changed = body.clone();
            changed.push(b'x');
            prop_assert_eq!(verify(&old, "msg_1", &tsx, &header, &changed, ts), Err(VerifyError::Signature));
        }
    }
}
