//! Offline verification of a certificate, check by check, stopping at the first that fails.
//!
//! The order is the order of trust: a document that does not parse says nothing; one whose
//! signature fails was not issued by the key; a checkpoint, proof or event that does not hold
//! means the issuer's claim is not backed by the audit log; the subject check is last because
//! it is only a question about an otherwise valid certificate.

use std::fmt;

use custos_audit::{leaf_hash, AuditAction, AuditEvent, Checkpoint, Outcome, Target, VerifierKey};
use serde_json::{Map, Value};

use crate::json::parse_strict;
use crate::model::{signed_bytes_of, statement_digest_of, v1_reason, Certificate, FORMAT};

/// One verification step; each failure names the step it failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Check {
    /// The document parses, carries the v1 format tag, and its base64 fields decode.
    Format,
    /// The Ed25519 signature over the certificate verifies with the verifier key.
    Signature,
    /// The checkpoint is signed by the same key and is for the issuer's log origin.
    Checkpoint,
    /// The leaf hashes to the proof's leaf hash and the proof leads to the checkpoint's root.
    InclusionProof,
    /// The leaf is the `subject.erase` event that commits to this statement.
    Event,
    /// The certificate is for the expected subject.
    Subject,
}

impl Check {
    /// Every check, in the order they run.
    pub const ALL: [Check; 6] = [
        Check::Format,
        Check::Signature,
        Check::Checkpoint,
        Check::InclusionProof,
        Check::Event,
        Check::Subject,
    ];

    /// The check's name as printed (`format`, `signature`, `checkpoint`, `inclusion_proof`,
    /// `event`, `subject`); the Python verifier prints the same names.
    pub const fn as_str(self) -> &'static str {
        match self {
            Check::Format => "format",
            Check::Signature => "signature",
            Check::Checkpoint => "checkpoint",
            Check::InclusionProof => "inclusion_proof",
            Check::Event => "event",
            Check::Subject => "subject",
        }
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The first check that failed and why; displays as `<check>: <detail>`.
///
/// The detail carries the underlying error's message; it never repeats the subject reference
/// or other statement values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{check}: {detail}")]
pub struct VerifyFailure {
    /// The check that failed.
    pub check: Check,
    /// What was wrong.
    pub detail: String,
}

fn fail(check: Check, detail: impl fmt::Display) -> VerifyFailure {
    VerifyFailure {
        check,
        detail: detail.to_string(),
    }
}

/// Where the key that verified the certificate came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySource {
    /// The verifier passed the key in: the certificate is bound to a key they trust.
    Supplied,
    /// The key was taken from the certificate's own `issuer.verifier_key`: the certificate is
    /// consistent, but anyone could have made it with a key of their own.
    SelfAsserted,
}

/// A certificate that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The certificate.
    pub certificate: Certificate,
    /// Whether the verifying key was supplied or taken from the certificate.
    pub key_source: KeySource,
    /// The verified checkpoint the inclusion proof leads to.
    pub checkpoint: Checkpoint,
    /// Whether the subject was checked against an expected reference.
    pub subject_checked: bool,
}

/// Verifies a certificate's JSON: format, signature, checkpoint, inclusion proof, event,
/// subject, in that order; the first failure is returned.
///
/// `verifier_key` is a C2SP verifier key string; without it the certificate's own
/// `issuer.verifier_key` is used and [`Verified::key_source`] says so.
pub fn verify(
    cert_json: &[u8],
    verifier_key: Option<&str>,
    expected_subject_ref: Option<&str>,
) -> Result<Verified, VerifyFailure> {
    let (doc, cert) = parse(cert_json)?;
    let (key, key_source) = check_signature(&doc, &cert, verifier_key)?;
    // The same key as the signature, and the issuer's own log: a checkpoint of another log
    // signed by the same key does not count.
    let origin = &cert.statement.issuer.origin;
    let checkpoint = Checkpoint::verify_signed_for(&cert.checkpoint, &key.to_string(), origin)
        .map_err(|e| fail(Check::Checkpoint, e))?;
    check_inclusion(&cert, &checkpoint)?;
    check_event(&doc, &cert)?;
    if let Some(expected) = expected_subject_ref {
        if cert.statement.subject.subject_ref != expected {
            return Err(fail(
                Check::Subject,
                "the certificate is for another subject reference",
            ));
        }
    }
    Ok(Verified {
        certificate: cert,
        key_source,
        checkpoint,
        subject_checked: expected_subject_ref.is_some(),
    })
}

/// Format: strict JSON, an object, the v1 tag, then the typed certificate.
fn parse(bytes: &[u8]) -> Result<(Map<String, Value>, Certificate), VerifyFailure> {
    let value = parse_strict(bytes).map_err(|e| fail(Check::Format, e))?;
    let Value::Object(doc) = value else {
        return Err(fail(Check::Format, "a certificate is a JSON object"));
    };
    match doc.get("format") {
        Some(Value::String(tag)) if tag == FORMAT => {}
        Some(Value::String(tag)) => {
            return Err(fail(
                Check::Format,
                format!("format {tag:?} is not {FORMAT:?}"),
            ))
        }
        _ => return Err(fail(Check::Format, "no \"format\" string")),
    }
    let cert: Certificate =
        serde_json::from_value(Value::Object(doc.clone())).map_err(|e| fail(Check::Format, e))?;
    Ok((doc, cert))
}

/// Signature: Ed25519 (strict) over the JCS bytes of the document as received, less
/// `signature`; with a supplied key, the certificate must also name that key.
fn check_signature(
    doc: &Map<String, Value>,
    cert: &Certificate,
    supplied: Option<&str>,
) -> Result<(VerifierKey, KeySource), VerifyFailure> {
    let own = || {
        cert.statement
            .issuer
            .verifier_key
            .parse::<VerifierKey>()
            .map_err(|e| fail(Check::Signature, format!("issuer.verifier_key: {e}")))
    };
    let (key, source) = match supplied {
        Some(text) => (
            text.parse::<VerifierKey>()
                .map_err(|e| fail(Check::Signature, format!("the supplied verifier key: {e}")))?,
            KeySource::Supplied,
        ),
        None => (own()?, KeySource::SelfAsserted),
    };
    let public = ed25519_dalek::VerifyingKey::from_bytes(&key.public_key()).map_err(|e| {
        fail(
            Check::Signature,
            format!("verifier key {}: {e}", key.name()),
        )
    })?;
    public
        .verify_strict(
            &signed_bytes_of(doc),
            &ed25519_dalek::Signature::from_bytes(&cert.signature),
        )
        .map_err(|_| {
            fail(
                Check::Signature,
                format!("Ed25519 signature does not verify with key {}", key.name()),
            )
        })?;
    if source == KeySource::Supplied && own()? != key {
        return Err(fail(
            Check::Signature,
            "signed by the supplied key, but issuer.verifier_key names another key",
        ));
    }
    Ok((key, source))
}

/// Inclusion proof: the leaf is the proof's leaf, at the checkpoint's size and root.
fn check_inclusion(cert: &Certificate, checkpoint: &Checkpoint) -> Result<(), VerifyFailure> {
    let proof = &cert.inclusion_proof;
    if leaf_hash(&cert.leaf) != proof.leaf_hash {
        return Err(fail(
            Check::InclusionProof,
            "leaf_hash is not SHA-256(0x00 || leaf)",
        ));
    }
    if proof.tree_size != checkpoint.size {
        return Err(fail(
            Check::InclusionProof,
            format!(
                "proof is for tree size {}, the checkpoint is size {}",
                proof.tree_size, checkpoint.size
            ),
        ));
    }
    proof
        .verify(&checkpoint.root)
        .map_err(|e| fail(Check::InclusionProof, e))
}

/// Event: the leaf is a successful `subject.erase` of this org and request that commits to
/// the statement's digest (`statement_sha256`; in a version-1 leaf, its reason), recomputed from the document as received.
fn check_event(doc: &Map<String, Value>, cert: &Certificate) -> Result<(), VerifyFailure> {
    let event = AuditEvent::from_canonical_bytes(&cert.leaf).map_err(|e| fail(Check::Event, e))?;
    let subject = &cert.statement.subject;
    let erase = AuditAction::SubjectErase;
    if event.action != erase {
        return Err(fail(
            Check::Event,
            format!(
                "the leaf records {:?}, not {:?}",
                event.action.as_str(),
                erase.as_str()
            ),
        ));
    }
    if event.outcome != Outcome::Success {
        return Err(fail(
            Check::Event,
            "the erasure event's outcome is not success",
        ));
    }
    if event.org.as_deref() != Some(subject.org.as_str()) {
        return Err(fail(Check::Event, "the event is for another org"));
    }
    if event.target.as_ref().and_then(Target::request_id) != Some(subject.request.as_str()) {
        return Err(fail(Check::Event, "the event is for another request"));
    }
    // The id as written, not as re-printed from the parsed UUID: the Python verifier and the
    // issuer see these same characters.
    let id = doc.get("id").and_then(Value::as_str).unwrap_or_default();
    let digest = statement_digest_of(doc);
    let commits = if event.v == 1 {
        // Certificates issued before typed details: the commitment is the reason text.
        event.reason.as_deref() == Some(v1_reason(&subject.subject_ref, id, &digest).as_str())
    } else {
        let d = &event.details;
        d.subject_ref.as_deref() == Some(subject.subject_ref.as_str())
            && d.certificate.as_deref() == Some(id)
            && d.statement_sha256.as_deref() == Some(digest.as_str())
    };
    if !commits {
        return Err(fail(
            Check::Event,
            "the event does not commit to this statement (subject, id or statement_sha256 differ)",
        ));
    }
    Ok(())
}
