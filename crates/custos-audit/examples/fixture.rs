//! Writes a fixture set for the independent verifier in `tools/audit-verify/`:
//!
//! - `export.jsonl`: one line per entry, `{"index", "leaf" (base64 of the hashed bytes), "event"}`
//! - `checkpoint.txt` / `checkpoint-old.txt`: signed checkpoints at the full and an earlier size
//! - `verifier-key.txt`: the C2SP verifier key string
//! - `inclusion-proof-<index>.json`: inclusion proofs at the full size
//! - `consistency-proof.json`: from the old checkpoint's size to the full size
//!
//! `cargo run -p custos-audit --example fixture -- DIR [ENTRIES]`. The signing key comes from a
//! fixed, public seed: it is a test key and signs nothing but fixtures.

use std::io::Write as _;
use std::path::PathBuf;

use base64::Engine as _;
use custos_audit::{
    consistency_proof, inclusion_proof, leaf_hash, verifier_key, Actor, AuditEvent, Checkpoint,
    Ed25519NoteSigner, Frontier, MemoryNodeStore, NodeStore, NoteSigner, Outcome,
};

const ORIGIN: &str = "custos.example/audit";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().ok_or("usage: fixture DIR [ENTRIES]")?);
    let n: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(1000);
    if n < 2 {
        return Err("ENTRIES must be at least 2".into());
    }
    std::fs::create_dir_all(&dir)?;

    let signer = Ed25519NoteSigner::from_seed(ORIGIN, *b"custos audit fixture key, public")?;
    let t0: jiff::Timestamp = "2026-01-02T03:04:05Z".parse()?;
    let old_size = n * 7 / 16 + 1; // not a power of two, so the proof has its general shape

    let mut frontier = Frontier::new();
    let mut store = MemoryNodeStore::new();
    let mut export = std::io::BufWriter::new(std::fs::File::create(dir.join("export.jsonl"))?);
    let mut old_note = None;
    for i in 0..n {
        let event = AuditEvent::new(
            t0 + jiff::SignedDuration::from_secs(i as i64),
            if i % 3 == 0 {
                Actor::System
            } else {
                Actor::Member(format!("member-{}", i % 17))
            },
            [
                custos_audit::AuditAction::RecordCreate,
                custos_audit::AuditAction::RecordDelete,
                custos_audit::AuditAction::RecordPurge,
                custos_audit::AuditAction::KeyRotate,
            ][(i % 4) as usize],
        )
        .org(format!("org-{}", i % 5))
        .target(custos_audit::Target::Record(format!("{i:08}")))
        .outcome(if i % 11 == 0 {
            Outcome::Denied
        } else {
            Outcome::Success
        });
        let leaf = event.to_canonical_bytes();
        let line = serde_json::json!({
            "index": i,
            "leaf": base64::engine::general_purpose::STANDARD.encode(&leaf),
            "event": event,
        });
        writeln!(export, "{line}")?;
        // Persist through the store, as the real log does, so proofs come from stored nodes.
        let nodes = frontier.append_batch([leaf_hash(&leaf)])?;
        store.put_nodes(&nodes)?;
        if frontier.size() == old_size {
            old_note = Some(checkpoint(&frontier, t0).sign(&signer)?);
        }
    }
    export.flush()?;

    std::fs::write(
        dir.join("verifier-key.txt"),
        format!("{}\n", verifier_key(signer.name(), &signer.public_key())),
    )?;
    std::fs::write(
        dir.join("checkpoint.txt"),
        checkpoint(&frontier, t0).sign(&signer)?,
    )?;
    std::fs::write(
        dir.join("checkpoint-old.txt"),
        old_note.ok_or("old checkpoint")?,
    )?;
    for index in [0, 1, n / 2, n - 1] {
        let p = inclusion_proof(&store, index, n)?;
        std::fs::write(
            dir.join(format!("inclusion-proof-{index}.json")),
            serde_json::to_string_pretty(&p)?,
        )?;
    }
    let c = consistency_proof(&store, old_size, n)?;
    std::fs::write(
        dir.join("consistency-proof.json"),
        serde_json::to_string_pretty(&c)?,
    )?;
    println!(
        "wrote {n} entries, checkpoints at {old_size} and {n}, proofs to {}",
        dir.display()
    );
    Ok(())
}

fn checkpoint(f: &Frontier, time: jiff::Timestamp) -> Checkpoint {
    Checkpoint {
        origin: ORIGIN.into(),
        size: f.size(),
        root: f.root(),
        time: Some(time),
    }
}
