//! Certificates verify, and every kind of tampering is caught by the check that owns it.

use base64::Engine as _;
use custos_cert::fixture::{self, Fixture};
use custos_cert::{render_text, verify, Certificate, Check, KeySource};
use proptest::prelude::*;
use serde_json::Value;

const REF: &str = "5d41402abc4b2a76b9719d911017c592ae1d3a56b0b8a0f5b2c1a7e1c8d3f0a1";

fn fx() -> Fixture {
    fixture::build(REF)
}

fn doc(cert: &Certificate) -> Value {
    serde_json::to_value(cert).unwrap()
}

fn bytes(doc: &Value) -> Vec<u8> {
    serde_json::to_vec(doc).unwrap()
}

/// The check `doc` fails with the fixture's key, or `None` if it verifies.
fn failing_check(fx: &Fixture, doc: &Value) -> Option<Check> {
    verify(&bytes(doc), Some(&fx.verifier_key), None)
        .err()
        .map(|f| f.check)
}

#[test]
fn a_sealed_certificate_verifies_in_any_layout() {
    let fx = fx();
    for json in [
        fx.certificate.to_jcs(),
        fx.certificate.to_json_pretty().into_bytes(),
    ] {
        let ok = verify(&json, Some(&fx.verifier_key), Some(REF)).unwrap();
        assert_eq!(ok.certificate, fx.certificate);
        assert_eq!(ok.key_source, KeySource::Supplied);
        assert!(ok.subject_checked);
        assert_eq!(ok.checkpoint.size, 7);
        let parsed: Certificate = serde_json::from_slice(&json).unwrap();
        assert_eq!(parsed, fx.certificate);
    }
    let own = verify(&fx.certificate.to_jcs(), None, None).unwrap();
    assert_eq!(own.key_source, KeySource::SelfAsserted);
    assert!(!own.subject_checked);
    verify(&fx.other_certificate.to_jcs(), Some(&fx.verifier_key), None).unwrap();
}

#[test]
fn the_erasure_event_commits_to_the_statement() {
    let fx = fx();
    let s = &fx.certificate.statement;
    let event = custos_audit::AuditEvent::from_canonical_bytes(&fx.certificate.leaf).unwrap();
    assert_eq!(event.action.as_str(), "subject.erase");
    assert_eq!(event.org.as_deref(), Some("org-1"));
    assert_eq!(event.target.unwrap().to_string(), "request:req-1");
    assert_eq!(event.v, 2);
    assert_eq!(event.reason, None);
    assert_eq!(event.details.subject_ref.as_deref(), Some(REF));
    assert_eq!(
        event.details.certificate.as_deref(),
        Some("00000000-0000-0000-0000-000000000001")
    );
    assert_eq!(event.details.statement_sha256, Some(s.digest_hex()));
    // As the design brief names it: the leaf carries `statement_sha256`.
    let leaf: serde_json::Value = serde_json::from_slice(&fx.certificate.leaf).unwrap();
    assert_eq!(leaf["statement_sha256"], s.digest_hex());
    assert_eq!(s.digest_hex().len(), 64);
    // The statement's JCS bytes are the certificate's minus the seal fields.
    let mut d = doc(&fx.certificate);
    for f in ["leaf", "inclusion_proof", "checkpoint", "signature"] {
        d.as_object_mut().unwrap().remove(f);
    }
    assert_eq!(
        s.jcs_bytes(),
        serde_json_canonicalizer::to_vec(&d).unwrap(),
        "statement JCS"
    );
}

/// Type-preserving change of one value: a different but well-formed value of the same field.
fn mutate(path: &str, v: &Value) -> Value {
    match v {
        Value::Number(n) => Value::from(n.as_u64().unwrap() + 1),
        Value::String(s) => Value::String(match path {
            "status" => "completed".into(),
            p if p.ends_with(".method") => if s == "purge" { "anonymize" } else { "purge" }.into(),
            _ => match s.rfind(|c: char| c.is_ascii_digit()) {
                // Last digit: seconds of a time, a UUID's last nibble, a hex ref's last nibble.
                Some(i) => {
                    let d = s.as_bytes()[i] - b'0';
                    format!("{}{}{}", &s[..i], (d + 1) % 10, &s[i + 1..])
                }
                None => format!("{s}x"),
            },
        }),
        other => panic!("no mutation for {other} at {path}"),
    }
}

/// Every scalar in the statement, by dotted path.
fn statement_paths(v: &Value, prefix: &str, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                if prefix.is_empty()
                    && ["leaf", "inclusion_proof", "checkpoint", "signature"].contains(&k.as_str())
                {
                    continue;
                }
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                statement_paths(child, &p, out);
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                statement_paths(child, &format!("{prefix}.{i}"), out);
            }
        }
        _ => out.push(prefix.to_owned()),
    }
}

fn at<'a>(doc: &'a mut Value, path: &str) -> &'a mut Value {
    path.split('.')
        .fold(doc, |v, part| match part.parse::<usize>() {
            Ok(i) if v.is_array() => &mut v[i],
            _ => &mut v[part],
        })
}

#[test]
fn every_statement_field_is_covered_by_signature_and_event() {
    let fx = fx();
    let original = doc(&fx.certificate);
    let mut paths = Vec::new();
    statement_paths(&original, "", &mut paths);
    assert!(paths.len() > 25, "{paths:?}");
    for path in &paths {
        let mut d = original.clone();
        let slot = at(&mut d, path);
        *slot = mutate(path, slot);
        let expected_unsigned = if path == "format" {
            Check::Format
        } else {
            Check::Signature
        };
        assert_eq!(
            failing_check(&fx, &d),
            Some(expected_unsigned),
            "{path} changed"
        );
        // Re-signed by the key holder: the log still disagrees with the statement.
        fx.resign(&mut d);
        let expected = match path.as_str() {
            "format" => Check::Format,
            "issuer.origin" => Check::Checkpoint,
            "issuer.verifier_key" => Check::Signature,
            _ => Check::Event,
        };
        assert_eq!(
            failing_check(&fx, &d),
            Some(expected),
            "{path} changed, re-signed"
        );
    }
}

fn flip_b64(text: &str, byte: usize) -> String {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut raw = b64.decode(text).unwrap();
    raw[byte] ^= 1;
    b64.encode(raw)
}

/// Applies `change`, then expects `unsigned` without and `resigned` with re-signing.
fn tamper(fx: &Fixture, change: impl Fn(&mut Value), unsigned: Check, resigned: Check) {
    let mut d = doc(&fx.certificate);
    change(&mut d);
    assert_eq!(failing_check(fx, &d), Some(unsigned), "not re-signed");
    fx.resign(&mut d);
    assert_eq!(failing_check(fx, &d), Some(resigned), "re-signed");
}

#[test]
fn log_binding_tampering_names_the_right_check() {
    let fx = fx();
    let other = doc(&fx.other_certificate);
    // A hash of the proof flipped.
    tamper(
        &fx,
        |d| {
            let h = &mut d["inclusion_proof"]["hashes"][1];
            *h = Value::String(flip_b64(h.as_str().unwrap(), 0));
        },
        Check::Signature,
        Check::InclusionProof,
    );
    // The proof's tree size or index changed.
    for field in ["tree_size", "index"] {
        tamper(
            &fx,
            |d| d["inclusion_proof"][field] = Value::from(2u64),
            Check::Signature,
            Check::InclusionProof,
        );
    }
    // The leaf altered (an org renamed inside the event bytes).
    tamper(
        &fx,
        |d| {
            let leaf = base64::engine::general_purpose::STANDARD
                .decode(d["leaf"].as_str().unwrap())
                .unwrap();
            let text = String::from_utf8(leaf).unwrap().replace("org-1", "org-3");
            d["leaf"] = Value::String(base64::engine::general_purpose::STANDARD.encode(text));
        },
        Check::Signature,
        Check::InclusionProof,
    );
    // Another erasure's leaf and proof: in the log, but not this statement's event.
    tamper(
        &fx,
        |d| {
            d["leaf"] = other["leaf"].clone();
            d["inclusion_proof"] = other["inclusion_proof"].clone();
        },
        Check::Signature,
        Check::Event,
    );
    // The checkpoint replaced by the same tree head signed by another deployment.
    tamper(
        &fx,
        |d| d["checkpoint"] = Value::String(fx.other_checkpoint.clone()),
        Check::Signature,
        Check::Checkpoint,
    );
}

#[test]
fn signature_and_key_tampering_fail_the_signature_check() {
    let fx = fx();
    let mut d = doc(&fx.certificate);
    d["signature"] = doc(&fx.other_certificate)["signature"].clone();
    assert_eq!(failing_check(&fx, &d), Some(Check::Signature));
    let json = fx.certificate.to_jcs();
    let wrong = verify(&json, Some(&fx.other_verifier_key), None).unwrap_err();
    assert_eq!(wrong.check, Check::Signature);
    assert!(wrong.to_string().starts_with("signature: "), "{wrong}");
    assert_eq!(
        verify(&json, Some("not a key"), None).unwrap_err().check,
        Check::Signature
    );
    // Self-asserted: a certificate re-signed by another key under its own name verifies as
    // self-asserted only if its checkpoint is signed by that key too, which it is not.
    let mut forged = doc(&fx.certificate);
    forged["issuer"]["verifier_key"] = Value::String(fx.other_verifier_key.clone());
    let other_signer =
        custos_audit::Ed25519NoteSigner::from_seed(fixture::ORIGIN, fixture::OTHER_SEED).unwrap();
    let unsigned = {
        let mut m = forged.as_object().unwrap().clone();
        m.remove("signature");
        serde_json_canonicalizer::to_vec(&Value::Object(m)).unwrap()
    };
    use custos_audit::NoteSigner as _;
    forged["signature"] = Value::String(
        base64::engine::general_purpose::STANDARD.encode(other_signer.sign(&unsigned)),
    );
    let f = verify(&bytes(&forged), None, None).unwrap_err();
    assert_eq!(f.check, Check::Checkpoint, "{f}");
    assert_eq!(failing_check(&fx, &forged), Some(Check::Signature));
}

#[test]
fn subject_mismatch_is_its_own_check() {
    let fx = fx();
    let json = fx.certificate.to_jcs();
    let f = verify(
        &json,
        Some(&fx.verifier_key),
        Some(fixture::OTHER_SUBJECT_REF),
    )
    .unwrap_err();
    assert_eq!(f.check, Check::Subject);
    assert!(!f.detail.contains(REF), "no subject ref in errors");
}

#[test]
fn malformed_documents_fail_the_format_check() {
    let fx = fx();
    let good = doc(&fx.certificate);
    let text = String::from_utf8(fx.certificate.to_jcs()).unwrap();
    let mut cases: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"[]".to_vec(),
        text.as_bytes()[..text.len() - 1].to_vec(),
        text.replacen("{", r#"{"format":"x","#, 1).into_bytes(),
        text.replacen("{", r#"{"tokens_destroyed":1,"#, 1)
            .into_bytes(),
        text.replacen("{", r#"{"extra":1,"#, 1).into_bytes(),
    ];
    let edits: [&dyn Fn(&mut Value); 9] = [
        &|d| d["format"] = "custos-certificate-of-deletion/v2".into(),
        &|d| {
            d.as_object_mut().unwrap().remove("format");
        },
        &|d| {
            d.as_object_mut().unwrap().remove("checkpoint");
        },
        &|d| d["leaf"] = "not base64!".into(),
        &|d| d["signature"] = "AAAA".into(),
        &|d| d["tokens_destroyed"] = Value::from(9_007_199_254_740_992u64),
        &|d| d["tokens_destroyed"] = Value::from(1.5),
        &|d| d["issued_at"] = "yesterday".into(),
        &|d| d["issuer"]["extra"] = "x".into(),
    ];
    for edit in edits {
        let mut d = good.clone();
        edit(&mut d);
        cases.push(bytes(&d));
    }
    for case in cases {
        let f = verify(&case, Some(&fx.verifier_key), None).unwrap_err();
        assert_eq!(
            f.check,
            Check::Format,
            "{}: {f}",
            String::from_utf8_lossy(&case)
        );
    }
}

#[test]
fn golden_certificate_bytes() {
    let fx = fx();
    let jcs = fx.certificate.to_jcs();
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/golden/certificate.jcs.json"
    );
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(path, &jcs).unwrap();
    }
    let golden = std::fs::read(path).expect("golden file (UPDATE_GOLDEN=1 writes it)");
    assert_eq!(
        String::from_utf8(jcs).unwrap(),
        String::from_utf8(golden.clone()).unwrap()
    );
    verify(&golden, Some(&fx.verifier_key), Some(REF)).unwrap();
}

/// A certificate issued before typed details (its leaf is an encoding-version-1 event whose
/// reason commits to the statement) still verifies, and a changed reason still fails it.
#[test]
fn a_certificate_with_a_version_1_leaf_still_verifies() {
    let fx = fx();
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/golden/certificate-v1.jcs.json"
    );
    let golden = std::fs::read(path).unwrap();
    let ok = verify(&golden, Some(&fx.verifier_key), Some(REF)).unwrap();
    assert!(ok.subject_checked);
    let cert: Certificate = serde_json::from_slice(&golden).unwrap();
    let event = custos_audit::AuditEvent::from_canonical_bytes(&cert.leaf).unwrap();
    assert_eq!(event.v, 1);
    assert!(event.reason.unwrap().contains("statement="));
}

#[test]
fn text_rendering_names_what_was_erased() {
    let text = render_text(&fx().certificate);
    for needle in [
        "Certificate of deletion 00000000-0000-0000-0000-000000000001",
        "partially completed",
        "messages: delete by cryptographic erase (keys destroyed); hot 3, archive 1, objects 0; 1 held",
        "uploads: delete by purge",
        "Keys destroyed: 2",
        "hold hold-7: litigation (1 records)",
        "entry 3 of a tree of 7",
    ] {
        assert!(text.contains(needle), "{needle:?} in\n{text}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any single-byte change anywhere in a certificate makes it fail some check.
    #[test]
    fn any_single_byte_change_fails(pos in any::<prop::sample::Index>(), delta in 1u8..=255) {
        let fx = fx();
        let mut json = fx.certificate.to_jcs();
        let i = pos.index(json.len());
        json[i] = json[i].wrapping_add(delta);
        prop_assert!(verify(&json, Some(&fx.verifier_key), Some(REF)).is_err());
    }
}

/// Seals the fixture's statement over a fresh log whose entry 1 is `event`, signed by the fixture key.
fn sealed_over(fx: &Fixture, event: custos_audit::AuditEvent) -> Vec<u8> {
    use custos_audit::{inclusion_proof, leaf_hash, Checkpoint, Frontier, MemoryNodeStore};
    use custos_audit::{NodeStore as _, NoteSigner as _};
    let statement = fx.certificate.statement.clone();
    let filler = custos_audit::AuditEvent::new(
        event.time,
        custos_audit::Actor::System,
        custos_audit::AuditAction::LifecycleSweep,
    );
    let leaves = [filler.to_canonical_bytes(), event.to_canonical_bytes()];
    let mut frontier = Frontier::new();
    let mut store = MemoryNodeStore::new();
    let nodes = frontier
        .append_batch(leaves.iter().map(|l| leaf_hash(l)))
        .unwrap();
    store.put_nodes(&nodes).unwrap();
    let head = Checkpoint {
        origin: fixture::ORIGIN.into(),
        size: 2,
        root: frontier.root(),
        time: None,
    };
    let note = head.sign(&fx.signer).unwrap();
    let proof = inclusion_proof(&store, 1, 2).unwrap();
    statement
        .seal(leaves[1].clone(), proof, note, |m| fx.signer.sign(m))
        .to_jcs()
}

#[test]
fn the_event_must_be_this_statements_successful_erasure() {
    let fx = fx();
    let s = &fx.certificate.statement;
    let t: jiff::Timestamp = "2026-11-27T09:59:30Z".parse().unwrap();
    let good = s.erase_event(t, custos_audit::Actor::System);
    verify(
        &sealed_over(&fx, good.clone()),
        Some(&fx.verifier_key),
        Some(REF),
    )
    .unwrap();
    let mut wrong_action = good.clone();
    wrong_action.action = custos_audit::AuditAction::RecordPurge;
    let bad = [
        wrong_action,
        good.clone().outcome(custos_audit::Outcome::Failed),
        good.clone().org("org-2"),
        good.clone()
            .target(custos_audit::Target::Request("req-2".into())),
        good.clone().details(
            s.event_details()
                .statement_sha256(format!("0{}", s.digest_hex())),
        ),
        good.clone()
            .details(s.event_details().certificate("another")),
        good.clone()
            .details(s.event_details().subject_ref("another")),
    ];
    for event in bad {
        let f = verify(
            &sealed_over(&fx, event.clone()),
            Some(&fx.verifier_key),
            None,
        )
        .unwrap_err();
        assert_eq!(f.check, Check::Event, "{event:?}: {f}");
    }
}
