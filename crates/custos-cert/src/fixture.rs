//! A deterministic certificate over a small in-memory audit log, for tests, the fixture example
//! and other crates' tests (feature `fixture`).
//!
//! The keys come from fixed, public seeds: they are test keys and sign nothing but fixtures.
//! The log holds two erasures, each with its own certificate, among other events, so that a
//! test can swap one certificate's leaf, proof or signature into the other.

use base64::Engine as _;
use custos_audit::{
    inclusion_proof, leaf_hash, verifier_key, Actor, AuditAction, AuditEvent, Checkpoint,
    Ed25519NoteSigner, Frontier, MemoryNodeStore, NodeStore, NoteSigner, Target,
};
use serde_json::Value;

use crate::model::{
    signed_bytes_of, Certificate, FormatV1, HeldBack, Issuer, Method, Sanitization, Statement,
    Status, Subject, Tiers, Times,
};

/// The fixture log's origin; also the signing key's name.
pub const ORIGIN: &str = "custos.example/audit";
/// The public seed of the fixture deployment's signing key.
pub const SEED: [u8; 32] = *b"custos certificate fixture, test";
/// The public seed of another deployment's key (for wrong-key and foreign-checkpoint cases).
pub const OTHER_SEED: [u8; 32] = *b"another deployment key, for test";
/// The subject reference of the second certificate in the log.
pub const OTHER_SUBJECT_REF: &str =
    "9b0c0a4e1f2d3c4b5a69788796a5b4c3d2e1f00112233445566778899aabbccd";

/// Everything a test needs: two certificates over one log, keys and checkpoints.
pub struct Fixture {
    /// The certificate under test (subject reference as given to [`build`]).
    pub certificate: Certificate,
    /// Another valid certificate over the same log and checkpoint (another subject).
    pub other_certificate: Certificate,
    /// The fixture deployment's verifier key.
    pub verifier_key: String,
    /// Another deployment's verifier key.
    pub other_verifier_key: String,
    /// The signed checkpoint both certificates carry.
    pub checkpoint: String,
    /// The same tree head signed by the other deployment's key.
    pub other_checkpoint: String,
    /// The fixture deployment's signer, to re-sign tampered documents.
    pub signer: Ed25519NoteSigner,
}

fn ts(text: &str) -> jiff::Timestamp {
    text.parse().expect("fixture timestamp")
}

/// A fixed statement: partially completed, two categories, one hold, two keys destroyed.
pub fn statement(id: u128, org: &str, subject_ref: &str, verifier_key: &str) -> Statement {
    Statement {
        format: FormatV1,
        id: uuid::Uuid::from_u128(id),
        issued_at: ts("2026-11-27T10:00:00Z"),
        status: Status::PartiallyCompleted,
        issuer: Issuer {
            tool: "custos".into(),
            version: "0.1.0".into(),
            origin: ORIGIN.into(),
            verifier_key: verifier_key.into(),
        },
        subject: Subject {
            org: org.into(),
            subject_ref: subject_ref.into(),
            request: format!("req-{id}"),
        },
        times: Times {
            received: ts("2026-11-01T09:00:00Z"),
            due: ts("2026-12-01T09:00:00Z"),
            completed: ts("2026-11-27T09:59:30Z"),
        },
        sanitization: vec![
            Sanitization {
                category: "messages".into(),
                disposition: "delete".into(),
                method: Method::CryptographicErase,
                tiers: Tiers {
                    hot: 3,
                    archive: 1,
                    objects: 0,
                },
                held: 1,
            },
            Sanitization {
                category: "uploads".into(),
                disposition: "delete".into(),
                method: Method::Purge,
                tiers: Tiers {
                    hot: 0,
                    archive: 0,
                    objects: 2,
                },
                held: 0,
            },
        ],
        keys_destroyed: vec![format!("subject-key-{id}-1"), format!("subject-key-{id}-2")],
        tokens_destroyed: 2,
        held_back: vec![HeldBack {
            hold: "hold-7".into(),
            reason: "litigation".into(),
            records: 1,
        }],
        verification: "Every listed key was destroyed and a read of each record failed.".into(),
    }
}

fn signer(seed: [u8; 32]) -> Ed25519NoteSigner {
    Ed25519NoteSigner::from_seed(ORIGIN, seed).expect("fixture key name is valid")
}

/// Builds the fixture; the first certificate is for `subject_ref` in org `org-1`.
pub fn build(subject_ref: &str) -> Fixture {
    let signer = signer(SEED);
    let other = self::signer(OTHER_SEED);
    let vk = verifier_key(signer.name(), &signer.public_key());
    let a = statement(1, "org-1", subject_ref, &vk);
    let mut b = statement(2, "org-2", OTHER_SUBJECT_REF, &vk);
    // Characters JCS escapes or must not escape, so that a second JCS implementation (the
    // Python verifier) is checked on them too.
    b.verification =
        "Keys \"destroyed\" \\ checked:\ttab,\u{1}\u{1f}\u{7f} \u{e9}\u{2014}\u{1f600}.".into();

    let t = ts("2026-11-27T09:59:30Z");
    let plain = |action, target: Target| {
        AuditEvent::new(t, Actor::Member("member-1".into()), action)
            .org("org-1")
            .target(target)
    };
    let record = |id: &str| Target::Record(id.into());
    let events = [
        plain(AuditAction::RecordCreate, record("r1")),
        plain(AuditAction::RecordCreate, record("r2")),
        plain(AuditAction::HoldCreate, Target::Hold("hold-7".into())),
        a.erase_event(t, Actor::System),
        plain(AuditAction::RecordPurge, record("r1")),
        b.erase_event(t, Actor::System),
        plain(AuditAction::RecordRead, record("r2")),
    ];
    let leaves: Vec<Vec<u8>> = events.iter().map(AuditEvent::to_canonical_bytes).collect();
    let mut frontier = Frontier::new();
    let mut store = MemoryNodeStore::new();
    let nodes = frontier
        .append_batch(leaves.iter().map(|l| leaf_hash(l)))
        .expect("a small log appends");
    store.put_nodes(&nodes).expect("memory store");
    let head = Checkpoint {
        origin: ORIGIN.into(),
        size: frontier.size(),
        root: frontier.root(),
        time: Some(ts("2026-11-27T09:59:45Z")),
    };
    let checkpoint = head.sign(&signer).expect("fixture checkpoint signs");
    let other_checkpoint = head.sign(&other).expect("fixture checkpoint signs");
    let proof = |i: u64| inclusion_proof(&store, i, head.size).expect("proof in range");
    let certificate = a.seal(leaves[3].clone(), proof(3), checkpoint.clone(), |m| {
        signer.sign(m)
    });
    let other_certificate = b.seal(leaves[5].clone(), proof(5), checkpoint.clone(), |m| {
        signer.sign(m)
    });
    Fixture {
        certificate,
        other_certificate,
        verifier_key: vk,
        other_verifier_key: verifier_key(other.name(), &other.public_key()),
        checkpoint,
        other_checkpoint,
        signer,
    }
}

impl Fixture {
    /// Re-signs a (tampered) certificate document with the fixture key, as a dishonest issuer
    /// holding the key could; the log checks must still catch what the signature cannot.
    pub fn resign(&self, doc: &mut Value) {
        let Value::Object(map) = doc else {
            panic!("resign takes a certificate object");
        };
        let sig = self.signer.sign(&signed_bytes_of(map));
        map.insert(
            "signature".into(),
            Value::String(base64::engine::general_purpose::STANDARD.encode(sig)),
        );
    }
}
