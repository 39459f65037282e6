//! The certificate's data model (format v1): what it states, how it is sealed, and the exact
//! bytes that are hashed and signed.

use custos_audit::{Actor, AuditAction, AuditEvent, Details, InclusionProof, Target};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// The format tag every v1 certificate carries as `"format"`.
pub const FORMAT: &str = "custos-certificate-of-deletion/v1";

/// The fields a sealed certificate adds to its statement.
pub(crate) const SEAL_FIELDS: [&str; 4] = ["leaf", "inclusion_proof", "checkpoint", "signature"];

/// The `"format"` field: a unit type, so a statement cannot carry another format's tag.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FormatV1;

impl Serialize for FormatV1 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(FORMAT)
    }
}

impl<'de> Deserialize<'de> for FormatV1 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let tag = String::deserialize(d)?;
        if tag == FORMAT {
            Ok(FormatV1)
        } else {
            Err(serde::de::Error::custom(format!(
                "format {tag:?} is not {FORMAT:?}"
            )))
        }
    }
}

/// Whether every record in scope was sanitized, or some were held back (legal holds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Everything in scope was sanitized.
    Completed,
    /// Some records were held back; `held_back` says which holds and how many.
    PartiallyCompleted,
}

/// Who issued the certificate, and the log and key it is bound to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Issuer {
    /// The issuing tool's name (`custos`).
    pub tool: String,
    /// The issuing tool's version.
    pub version: String,
    /// The audit log's origin line, which the checkpoint must carry.
    pub origin: String,
    /// The C2SP verifier key of the deployment key that signs checkpoints and certificates.
    pub verifier_key: String,
}

/// Whose data was erased, without saying who they are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subject {
    /// The org id.
    pub org: String,
    /// The subject's keyed reference (hex HMAC under the org's key), never the raw id.
    pub subject_ref: String,
    /// The data subject request this erasure answers.
    pub request: String,
}

/// The request's timeline (UTC).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Times {
    /// When the request was received.
    pub received: jiff::Timestamp,
    /// When it was due.
    pub due: jiff::Timestamp,
    /// When the erasure completed.
    pub completed: jiff::Timestamp,
}

/// How a category's records were sanitized, in NIST SP 800-88 terms where they apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// The keys were destroyed, so every copy of the ciphertext (backups too) is unreadable.
    CryptographicErase,
    /// The records were removed from storage.
    Purge,
    /// Personal fields were irreversibly replaced; the rest was kept.
    Anonymize,
    /// Only aggregates without the subject were kept.
    Aggregate,
}

/// Record counts per storage tier.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tiers {
    /// Records in the primary store.
    pub hot: u64,
    /// Records in the archive tier.
    pub archive: u64,
    /// Stored objects (files).
    pub objects: u64,
}

/// What happened to one data category.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sanitization {
    /// The category name from the policy.
    pub category: String,
    /// What the policy decided for the category (`delete`).
    pub disposition: String,
    /// How it was carried out.
    pub method: Method,
    /// Records sanitized, per tier.
    pub tiers: Tiers,
    /// Records of this category kept under a legal hold.
    pub held: u64,
}

/// Records kept because a legal hold covers them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeldBack {
    /// The hold's id.
    pub hold: String,
    /// The hold's stated reason (non-personal).
    pub reason: String,
    /// How many records it kept.
    pub records: u64,
}

/// What a certificate states: everything but its binding to the log and its signature.
///
/// Integers must stay below 2^53 (I-JSON), so that every JCS implementation prints them alike;
/// [`crate::verify`] rejects larger ones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Statement {
    /// Always [`FORMAT`].
    pub format: FormatV1,
    /// The certificate's id.
    pub id: uuid::Uuid,
    /// When the certificate was issued.
    pub issued_at: jiff::Timestamp,
    /// Completed, or partially completed because of holds.
    pub status: Status,
    /// Issuer, log origin and verifier key.
    pub issuer: Issuer,
    /// Org, subject reference and request.
    pub subject: Subject,
    /// The request's timeline.
    pub times: Times,
    /// What happened per category.
    pub sanitization: Vec<Sanitization>,
    /// Ids of the keys destroyed (crypto-shredding).
    pub keys_destroyed: Vec<String>,
    /// How many pseudonymization tokens were destroyed.
    pub tokens_destroyed: u64,
    /// Records held back under legal holds.
    pub held_back: Vec<HeldBack>,
    /// One sentence: how the erasure was verified.
    pub verification: String,
}

/// A sealed certificate: the statement, the audit leaf that records it, the proof and signed
/// checkpoint that put the leaf in the log, and the deployment key's signature over the rest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Certificate {
    /// What the certificate states.
    #[serde(flatten)]
    pub statement: Statement,
    /// The exact bytes of the `subject.erase` audit event (the Merkle leaf).
    #[serde(with = "b64_bytes")]
    pub leaf: Vec<u8>,
    /// The leaf's inclusion proof at the checkpoint's size.
    pub inclusion_proof: InclusionProof,
    /// The C2SP signed checkpoint the proof leads to.
    pub checkpoint: String,
    /// Ed25519 over the JCS bytes of the certificate without `signature`.
    #[serde(with = "b64_sig")]
    pub signature: [u8; 64],
}

// Deserialized by hand because `#[serde(flatten)]` silently accepts unknown fields: the seal
// fields are taken out and the rest must be exactly a statement.
impl<'de> Deserialize<'de> for Certificate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let mut map = Map::<String, Value>::deserialize(d)?;
        let mut take =
            |field: &'static str| map.remove(field).ok_or(D::Error::missing_field(field));
        let leaf = take("leaf")?;
        let proof = take("inclusion_proof")?;
        let checkpoint = take("checkpoint")?;
        let signature = take("signature")?;
        let field = |name: &str, e: serde_json::Error| D::Error::custom(format!("{name}: {e}"));
        Ok(Certificate {
            statement: Statement::deserialize(Value::Object(map)).map_err(D::Error::custom)?,
            leaf: b64_bytes::deserialize(leaf).map_err(|e| field("leaf", e))?,
            inclusion_proof: InclusionProof::deserialize(proof)
                .map_err(|e| field("inclusion_proof", e))?,
            checkpoint: String::deserialize(checkpoint).map_err(|e| field("checkpoint", e))?,
            signature: b64_sig::deserialize(signature).map_err(|e| field("signature", e))?,
        })
    }
}

/// RFC 8785 (JCS) bytes of a JSON value.
pub(crate) fn jcs(value: &Value) -> Vec<u8> {
    // A `Value` of strings, integers, arrays and objects always canonicalizes; numbers past
    // 2^53 do too (only less precisely), and `verify` refuses those before this runs.
    serde_json_canonicalizer::to_vec(value).expect("a JSON value canonicalizes")
}

fn to_value<T: Serialize>(t: &T) -> Value {
    // Every type here serializes to JSON: string keys, no floats, no non-string map keys.
    serde_json::to_value(t).expect("certificate types serialize to JSON")
}

/// Lowercase hex SHA-256.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The statement digest recorded in the erasure event: hex SHA-256 of the JCS bytes of
/// `cert` without the seal fields.
pub(crate) fn statement_digest_of(cert: &Map<String, Value>) -> String {
    let mut statement = cert.clone();
    for field in SEAL_FIELDS {
        statement.remove(field);
    }
    sha256_hex(&jcs(&Value::Object(statement)))
}

/// The bytes the signature covers: JCS of `cert` without `signature`.
pub(crate) fn signed_bytes_of(cert: &Map<String, Value>) -> Vec<u8> {
    let mut unsigned = cert.clone();
    unsigned.remove("signature");
    jcs(&Value::Object(unsigned))
}

/// The `reason` a version-1 erasure event carried: subject reference, certificate id and
/// statement digest (certificates issued before typed details still verify against it).
pub(crate) fn v1_reason(subject_ref: &str, id: &str, digest_hex: &str) -> String {
    format!("subject_ref={subject_ref} certificate={id} statement={digest_hex}")
}

impl Statement {
    /// The RFC 8785 (JCS) bytes of the statement.
    pub fn jcs_bytes(&self) -> Vec<u8> {
        jcs(&to_value(self))
    }

    /// Hex SHA-256 of the statement's JCS bytes: what the erasure event commits to.
    pub fn digest_hex(&self) -> String {
        sha256_hex(&self.jcs_bytes())
    }

    /// The erasure event's details: subject reference, certificate id and
    /// `statement_sha256`, the statement's digest.
    pub fn event_details(&self) -> Details {
        Details::new()
            .subject_ref(self.subject.subject_ref.clone())
            .certificate(self.id.to_string())
            .statement_sha256(self.digest_hex())
    }

    /// The `subject.erase` audit event this statement must be recorded by: outcome success,
    /// the statement's org, target `request:<request id>`, details [`Statement::event_details`].
    pub fn erase_event(&self, time: jiff::Timestamp, actor: Actor) -> AuditEvent {
        AuditEvent::new(time, actor, AuditAction::SubjectErase)
            .org(self.subject.org.clone())
            .target(Target::Request(self.subject.request.clone()))
            .details(self.event_details())
    }

    /// Binds the statement to the log (leaf, proof, checkpoint) and signs the result with the
    /// deployment key (`sign` is [`custos_audit::NoteSigner::sign`] or the deployment signer's).
    pub fn seal(
        self,
        leaf: Vec<u8>,
        proof: InclusionProof,
        checkpoint: String,
        sign: impl FnOnce(&[u8]) -> [u8; 64],
    ) -> Certificate {
        let mut cert = Certificate {
            statement: self,
            leaf,
            inclusion_proof: proof,
            checkpoint,
            signature: [0; 64],
        };
        cert.signature = sign(&cert.signed_bytes());
        cert
    }
}

impl Certificate {
    /// The bytes the signature covers: JCS of the certificate without `signature`.
    pub fn signed_bytes(&self) -> Vec<u8> {
        match to_value(self) {
            Value::Object(map) => signed_bytes_of(&map),
            _ => unreachable!("a certificate serializes to a JSON object"),
        }
    }

    /// The whole certificate as JCS bytes: compact, and the same bytes for the same content.
    pub fn to_jcs(&self) -> Vec<u8> {
        jcs(&to_value(self))
    }

    /// The certificate as indented JSON, for files people may open.
    pub fn to_json_pretty(&self) -> String {
        serde_json::to_string_pretty(self).expect("certificate serializes to JSON")
    }
}

/// Serde for bytes as standard base64 (padded; other encodings of the same bytes refused).
mod b64_bytes {
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(&text)
            .map_err(|e| serde::de::Error::custom(format!("not base64: {e}")))
    }
}

/// Serde for a 64-byte Ed25519 signature as standard base64.
mod b64_sig {
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(sig: &[u8; 64], s: S) -> Result<S::Ok, S::Error> {
        super::b64_bytes::serialize(sig, s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 64], D::Error> {
        let bytes = super::b64_bytes::deserialize(d)?;
        bytes.try_into().map_err(|b: Vec<u8>| {
            serde::de::Error::custom(format!("signature must be 64 bytes, got {}", b.len()))
        })
    }
}
