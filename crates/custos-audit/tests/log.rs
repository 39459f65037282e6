//! The whole flow as the lead will wire it: append events, persist nodes, sign checkpoints,
//! serve proofs, and verify everything back from stored rows and signed notes.

use custos_audit::{
    consistency_proof, inclusion_proof, leaf_hash, verifier_key, verify_log, verify_note, Actor,
    AuditEvent, Checkpoint, CheckpointError, ConsistencyProof, Ed25519NoteSigner, Frontier,
    InclusionProof, MemoryNodeStore, NodeStore, NoteError, NoteSigner, StoredEntry, TamperKind,
};

const ORIGIN: &str = "custos.test/audit";

struct Log {
    rows: Vec<StoredEntry<Vec<u8>>>,
    notes: Vec<String>,
    store: MemoryNodeStore,
    signer: Ed25519NoteSigner,
}

fn build(n: u64, batch: u64) -> Log {
    let t0: jiff::Timestamp = "2026-03-01T00:00:00Z".parse().unwrap();
    let signer = Ed25519NoteSigner::from_seed(ORIGIN, [42; 32]).unwrap();
    let mut f = Frontier::new();
    let mut store = MemoryNodeStore::new();
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    for start in (0..n).step_by(batch as usize) {
        let end = (start + batch).min(n);
        let mut hashes = Vec::new();
        for i in start..end {
            let leaf = AuditEvent::new(t0, Actor::System, custos_audit::AuditAction::RecordPurge)
                .target(custos_audit::Target::Record(i.to_string()))
                .to_canonical_bytes();
            let h = leaf_hash(&leaf);
            hashes.push(h);
            rows.push(StoredEntry {
                index: i,
                leaf,
                leaf_hash: Some(h),
            });
        }
        store.put_nodes(&f.append_batch(hashes).unwrap()).unwrap();
        let cp = Checkpoint {
            origin: ORIGIN.into(),
            size: f.size(),
            root: f.root(),
            time: Some(t0),
        };
        notes.push(cp.sign(&signer).unwrap());
    }
    Log {
        rows,
        notes,
        store,
        signer,
    }
}

fn verified_checkpoints(log: &Log) -> Vec<Checkpoint> {
    let vk = verifier_key(log.signer.name(), &log.signer.public_key());
    log.notes
        .iter()
        .map(|n| Checkpoint::verify_signed_for(n, &vk, ORIGIN).unwrap())
        .collect()
}

#[test]
fn served_proofs_verify_against_signed_checkpoints() {
    let log = build(1000, 64);
    let cps = verified_checkpoints(&log);
    let latest = cps.last().unwrap();
    for index in [0, 1, 63, 64, 500, 999] {
        let p = inclusion_proof(&log.store, index, latest.size).unwrap();
        let json = serde_json::to_string(&p).unwrap();
        let back: InclusionProof = serde_json::from_str(&json).unwrap();
        assert_eq!(back.leaf_hash, log.rows[index as usize].leaf_hash.unwrap());
        back.verify(&latest.root).unwrap();
    }
    for old in &cps {
        let p = consistency_proof(&log.store, old.size, latest.size).unwrap();
        let back: ConsistencyProof =
            serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
        back.verify(&old.root, &latest.root).unwrap();
    }
}

#[test]
fn whole_log_verifies_and_names_first_bad_index() {
    let log = build(1000, 64);
    let cps = verified_checkpoints(&log);
    let report = verify_log(log.rows.clone(), &cps).unwrap();
    assert_eq!(
        (report.size, report.checkpoints_verified),
        (1000, cps.len())
    );

    let mut rows = log.rows.clone();
    rows[700].leaf[10] ^= 0x20;
    let e = verify_log(rows, &cps).unwrap_err();
    assert_eq!(
        (e.first_bad_index, e.kind),
        (700, TamperKind::LeafHashMismatch)
    );

    let mut rows = log.rows.clone();
    rows.remove(300);
    let e = verify_log(rows, &cps).unwrap_err();
    assert_eq!(e.first_bad_index, 300);

    // Truncate at 640 (a batch boundary) and re-append different, self-consistent rows.
    let mut rows = log.rows[..640].to_vec();
    for i in 640..1000u64 {
        let leaf = format!("{{\"forged\":{i}}}").into_bytes();
        rows.push(StoredEntry {
            index: i,
            leaf_hash: Some(leaf_hash(&leaf)),
            leaf,
        });
    }
    let e = verify_log(rows, &cps).unwrap_err();
    assert_eq!(
        (e.first_bad_index, e.kind),
        (
            640,
            TamperKind::CheckpointMismatch {
                checkpoint_size: 704
            }
        )
    );
}

#[test]
fn notes_reject_altered_body_signature_and_wrong_key() {
    let log = build(10, 10);
    let note = &log.notes[0];
    let vk = verifier_key(log.signer.name(), &log.signer.public_key());
    assert!(verify_note(note, &vk).is_ok());

    let other = Ed25519NoteSigner::from_seed(ORIGIN, [43; 32]).unwrap();
    let other_vk = verifier_key(other.name(), &other.public_key());
    assert!(matches!(
        Checkpoint::verify_signed(note, &other_vk),
        Err(CheckpointError::Note(NoteError::NoMatchingSignature(_)))
    ));
    let altered = note.replacen("\n10\n", "\n11\n", 1);
    assert!(matches!(
        Checkpoint::verify_signed(&altered, &vk),
        Err(CheckpointError::Note(NoteError::BadSignature(_)))
    ));
    // A note can carry cosignatures by other keys; they are ignored.
    let cosigned = format!("{note}{}", other_sig_line(note, &other));
    assert!(Checkpoint::verify_signed(&cosigned, &vk).is_ok());
    assert!(Checkpoint::verify_signed(&cosigned, &other_vk).is_ok());
}

/// The signature line another key would add to the same body.
fn other_sig_line(note: &str, signer: &dyn NoteSigner) -> String {
    let body = &note[..note.find("\n\n").unwrap() + 1];
    let signed = custos_audit::sign_note(body, signer).unwrap();
    signed[body.len() + 1..].to_string()
}
