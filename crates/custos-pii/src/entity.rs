//! Entity kinds and findings.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A kind of personal or secret data the scanner can find.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EntityKind {
    /// An e-mail address.
    EmailAddress,
    /// A telephone number (international or national format).
    PhoneNumber,
    /// A payment card number (Luhn-valid, known issuer prefix).
    CreditCard,
    /// A US social security number.
    UsSsn,
    /// An international bank account number (mod-97 valid).
    IbanCode,
    /// An IPv4 or IPv6 address.
    IpAddress,
    /// A URL or bare web domain.
    Url,
    /// A date that the text says is a birth date.
    DateOfBirth,
    /// A US passport number (context-gated).
    UsPassport,
    /// A US driver's license number (context-gated).
    UsDriverLicense,
    /// A cryptocurrency wallet address (Bitcoin, Ethereum).
    #[serde(rename = "CRYPTO")]
    CryptoWallet,
    /// A credential: private key block, JWT, cloud or SaaS API token.
    Secret,
    /// A person's name.
    Person,
    /// A postal street address.
    StreetAddress,
}

impl EntityKind {
    /// Every kind, in declaration order.
    pub const ALL: &'static [EntityKind] = &[
        EntityKind::EmailAddress,
        EntityKind::PhoneNumber,
        EntityKind::CreditCard,
        EntityKind::UsSsn,
        EntityKind::IbanCode,
        EntityKind::IpAddress,
        EntityKind::Url,
        EntityKind::DateOfBirth,
        EntityKind::UsPassport,
        EntityKind::UsDriverLicense,
        EntityKind::CryptoWallet,
        EntityKind::Secret,
        EntityKind::Person,
        EntityKind::StreetAddress,
    ];

    /// The upper snake case name used in findings and redaction markers.
    pub fn as_str(&self) -> &'static str {
        match self {
            EntityKind::EmailAddress => "EMAIL_ADDRESS",
            EntityKind::PhoneNumber => "PHONE_NUMBER",
            EntityKind::CreditCard => "CREDIT_CARD",
            EntityKind::UsSsn => "US_SSN",
            EntityKind::IbanCode => "IBAN_CODE",
            EntityKind::IpAddress => "IP_ADDRESS",
            EntityKind::Url => "URL",
            EntityKind::DateOfBirth => "DATE_OF_BIRTH",
            EntityKind::UsPassport => "US_PASSPORT",
            EntityKind::UsDriverLicense => "US_DRIVER_LICENSE",
            EntityKind::CryptoWallet => "CRYPTO",
            EntityKind::Secret => "SECRET",
            EntityKind::Person => "PERSON",
            EntityKind::StreetAddress => "STREET_ADDRESS",
        }
    }

    /// The lowercase name a `custos.toml` policy uses (`email`, `phone`, `credit_card`, ...).
    pub fn policy_name(&self) -> &'static str {
        match self {
            EntityKind::EmailAddress => "email",
            EntityKind::PhoneNumber => "phone",
            EntityKind::CreditCard => "credit_card",
            EntityKind::UsSsn => "us_ssn",
            EntityKind::IbanCode => "iban",
            EntityKind::IpAddress => "ip_address",
            EntityKind::Url => "url",
            EntityKind::DateOfBirth => "date_of_birth",
            EntityKind::UsPassport => "us_passport",
            EntityKind::UsDriverLicense => "us_driver_license",
            EntityKind::CryptoWallet => "crypto",
            EntityKind::Secret => "secret",
            EntityKind::Person => "person",
            EntityKind::StreetAddress => "street_address",
        }
    }

    /// Parses a policy name; also accepts a few common aliases (`ssn`, `email_address`, `phone_number`).
    pub fn from_policy_name(name: &str) -> Option<EntityKind> {
        let n = name.trim().to_ascii_lowercase();
        let kind = match n.as_str() {
            "email" | "email_address" => EntityKind::EmailAddress,
            "phone" | "phone_number" => EntityKind::PhoneNumber,
            "credit_card" | "card" => EntityKind::CreditCard,
            "us_ssn" | "ssn" => EntityKind::UsSsn,
            "iban" | "iban_code" => EntityKind::IbanCode,
            "ip_address" | "ip" => EntityKind::IpAddress,
            "url" => EntityKind::Url,
            "date_of_birth" | "dob" => EntityKind::DateOfBirth,
            "us_passport" | "passport" => EntityKind::UsPassport,
            "us_driver_license" | "driver_license" => EntityKind::UsDriverLicense,
            "crypto" | "crypto_wallet" => EntityKind::CryptoWallet,
            "secret" | "secrets" => EntityKind::Secret,
            "person" | "name" => EntityKind::Person,
            "street_address" | "address" => EntityKind::StreetAddress,
            _ => return None,
        };
        Some(kind)
    }

    /// A bit for this kind, used for cheap "which recognizers are enabled" sets.
    pub(crate) fn bit(self) -> u32 {
        1 << (self as u32)
    }
}

impl fmt::Display for EntityKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error for an unknown entity name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown PII entity type {0:?}")]
pub struct UnknownEntity(pub String);

impl FromStr for EntityKind {
    type Err = UnknownEntity;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EntityKind::ALL
            .iter()
            .copied()
            .find(|k| k.as_str().eq_ignore_ascii_case(s))
            .or_else(|| EntityKind::from_policy_name(s))
            .ok_or_else(|| UnknownEntity(s.to_string()))
    }
}

/// One detected entity: its kind, where it is (chars and bytes, end exclusive), how sure we are and who found it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// What was found.
    pub entity: EntityKind,
    /// Start offset in Unicode scalar values.
    pub start: usize,
    /// End offset in Unicode scalar values (exclusive).
    pub end: usize,
    /// Start offset in bytes of the UTF-8 text.
    pub byte_start: usize,
    /// End offset in bytes (exclusive).
    pub byte_end: usize,
    /// Confidence in 0..=1.
    pub score: f32,
    /// Name of the recognizer that fired.
    pub recognizer: &'static str,
}

impl Finding {
    /// The matched text, if `text` is the text that was scanned.
    pub fn value<'t>(&self, text: &'t str) -> Option<&'t str> {
        text.get(self.byte_start..self.byte_end)
    }
}
