//! `custos audit ...` end to end, on a real SQLite data directory driven by the real binary:
//! tampering with the stored log (a flipped byte, an edited indexed column, a deleted entry,
//! swapped entries, a truncated and re-appended tail) makes `custos audit verify` exit 1
//! naming the right index; rows dropped from the uncovered tail show in its count;
//! and the independent Python verifier (`tools/audit-verify`) accepts what the CLI exports.
//!
//! Events are appended through the real store (`SqliteStore::append_audit`, the code every
//! mutation uses) and by the binary itself (`custos keys rotate`); tampering goes straight to
//! the database file, as an attacker with disk access would.

mod support;

use std::path::PathBuf;
use std::process::{Command, Output};

use custos_audit::{Actor, AuditEvent, Checkpoint, InclusionProof};
use custos_store::prelude::*;
use custos_store::SqliteStore;

/// A data directory inside a temp dir (the binary runs with the temp dir as its cwd, so no
/// stray `custos.toml` is picked up).
struct Data {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
}

impl Data {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        let d = Data { _tmp: tmp, dir };
        // First open initializes the data dir, keys and schema.
        d.ok(&["audit", "key"]);
        d
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_custos"))
            .arg("--data")
            .arg(&self.dir)
            .args(args)
            .current_dir(self.dir.parent().unwrap())
            .env_remove("CUSTOS_DATABASE")
            .env_remove("CUSTOS_OBJECTS")
            .env_remove("CUSTOS_KEYS")
            .env_remove("CUSTOS_ROOT_KEY")
            .env("CUSTOS_LOG", "warn")
            .output()
            .unwrap()
    }

    /// Runs and requires exit 0; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "custos {args:?} failed ({:?}):\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs and requires exit `code`; returns stderr.
    fn fails(&self, args: &[&str], code: i32) -> String {
        let out = self.run(args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(
            out.status.code(),
            Some(code),
            "custos {args:?}: expected exit {code}\nstdout: {}\nstderr: {stderr}",
            String::from_utf8_lossy(&out.stdout)
        );
        stderr
    }

    async fn store(&self) -> SqliteStore {
        SqliteStore::open(&self.dir.join("custos.db")).unwrap()
    }

    /// Appends `n` events through the real store.
    async fn append(&self, n: u64) {
        self.append_as(n, "record").await
    }

    /// Appends `n` events targeting `kind:<index>` (a different kind forges other entries).
    async fn append_as(&self, n: u64, kind: &str) {
        let store = self.store().await;
        let from = store.audit_size().await.unwrap();
        let events: Vec<AuditEvent> = (from..from + n)
            .map(|i| {
                AuditEvent::new(
                    format!(
                        "2026-01-{:02}T{:02}:{:02}:{:02}Z",
                        1 + i / 86_400,
                        (i / 3600) % 24,
                        (i / 60) % 60,
                        i % 60
                    )
                    .parse()
                    .unwrap(),
                    Actor::Member(format!("member-{}", i % 7)),
                    [
                        custos_audit::AuditAction::RecordCreate,
                        custos_audit::AuditAction::RecordDelete,
                        custos_audit::AuditAction::HoldCreate,
                    ][(i % 3) as usize],
                )
                .org(format!("org-{}", i % 5))
                .target(custos_audit::Target::parse(&format!("{kind}:{i:08}")).unwrap())
            })
            .collect();
        // Several transactions, like a stream of API calls and ingest batches.
        for chunk in events.chunks(97) {
            store.append_audit(chunk).await.unwrap();
        }
    }

    async fn tamper(&self, sql: &str) {
        self.store().await.execute_raw_for_tests(sql).await.unwrap();
    }

    fn verify_fails_at(&self, index: u64) -> String {
        let stderr = self.fails(&["audit", "verify"], 1);
        assert!(
            stderr.contains(&format!("tampered at index {index}:")),
            "expected index {index} in: {stderr}"
        );
        stderr
    }
}

/// A log of `n` entries with two binary-made events in it, and a signed checkpoint of it all.
async fn log_with_checkpoint(n: u64) -> Data {
    let d = Data::new();
    d.append(n - 2).await;
    // Appends two `key.rotate` events (started, done), written by the binary itself.
    d.ok(&["keys", "rotate"]);
    let note = d.ok(&["audit", "checkpoint"]);
    assert_eq!(note.lines().nth(1), Some(n.to_string().as_str()), "{note}");
    d
}

#[tokio::test]
async fn clean_log_verifies_and_proofs_check_against_the_signed_checkpoint() {
    let d = log_with_checkpoint(600).await;
    let out = d.ok(&["audit", "verify"]);
    assert!(out.contains("audit log verified: 600 entries"), "{out}");
    assert!(out.contains("1 signed checkpoint(s) verified"), "{out}");

    let key = d.ok(&["audit", "key"]);
    let note = d.ok(&["audit", "checkpoint"]);
    let cp = Checkpoint::verify_signed(&note, key.trim()).unwrap();
    assert_eq!(cp.origin, "custos/example-saas");
    assert_eq!(cp.size, 600);
    for index in [0u64, 1, 255, 256, 599] {
        let proof: InclusionProof =
            serde_json::from_str(&d.ok(&["audit", "proof", "--index", &index.to_string()]))
                .unwrap();
        assert_eq!((proof.index, proof.tree_size), (index, 600));
        proof.verify(&cp.root).unwrap();
    }
    // The checkpoint does not move while the log does not grow; it does once it grows.
    assert_eq!(d.ok(&["audit", "checkpoint"]), note);
    d.append(10).await;
    let newer = d.ok(&["audit", "checkpoint"]);
    let cp2 = Checkpoint::verify_signed(&newer, key.trim()).unwrap();
    assert_eq!(cp2.size, 610);
    let consistency: custos_audit::ConsistencyProof =
        serde_json::from_str(&d.ok(&["audit", "consistency", "--from", "600", "--to", "610"]))
            .unwrap();
    consistency.verify(&cp.root, &cp2.root).unwrap();
    let out = d.ok(&["audit", "verify"]);
    assert!(out.contains("2 signed checkpoint(s) verified"), "{out}");
}

#[tokio::test]
async fn flipped_byte_is_found_at_its_index() {
    let d = log_with_checkpoint(600).await;
    // One byte of entry 123's stored event: `"action"` becomes `"actioN"`.
    d.tamper(
        r#"UPDATE audit_log SET leaf = CAST(replace(CAST(leaf AS TEXT), '"action"', '"actioN"') AS BLOB)
           WHERE idx = 123"#,
    )
    .await;
    d.verify_fails_at(123);
}

#[tokio::test]
async fn flipped_byte_with_rewritten_leaf_hash_is_placed_by_the_checkpoints() {
    let d = Data::new();
    d.append(256).await;
    d.ok(&["audit", "checkpoint"]);
    d.append(344).await;
    d.ok(&["audit", "checkpoint"]);
    // A careful attacker also rewrites the stored leaf hash: only the signed roots catch it,
    // between the last checkpoint that still verifies (256) and the first that does not.
    let store = d.store().await;
    let row = store.audit_rows(300, 1).await.unwrap().remove(0);
    let forged = String::from_utf8(row.leaf)
        .unwrap()
        .replace("record.", "recorD.");
    let h = hex(&custos_audit::leaf_hash(forged.as_bytes()));
    drop(store);
    d.tamper(&format!(
        "UPDATE audit_log SET leaf = CAST('{forged}' AS BLOB), leaf_hash = X'{h}' WHERE idx = 300"
    ))
    .await;
    let stderr = d.verify_fails_at(256);
    assert!(stderr.contains("checkpoint at size 600"), "{stderr}");
}

#[tokio::test]
async fn deleted_entry_is_found_at_its_index() {
    let d = log_with_checkpoint(600).await;
    d.tamper("DELETE FROM audit_log WHERE idx = 77").await;
    let stderr = d.verify_fails_at(77);
    assert!(stderr.contains("entry missing"), "{stderr}");
}

#[tokio::test]
async fn swapped_entries_are_found_at_the_lower_index() {
    let d = log_with_checkpoint(600).await;
    d.tamper(
        "CREATE TEMP TABLE s AS SELECT idx, leaf FROM audit_log WHERE idx IN (40, 300);
         UPDATE audit_log SET leaf = (SELECT s.leaf FROM s
             WHERE s.idx = CASE audit_log.idx WHEN 40 THEN 300 ELSE 40 END)
         WHERE idx IN (40, 300);",
    )
    .await;
    d.verify_fails_at(40);
}

#[tokio::test]
async fn truncated_tail_is_found_and_a_reappended_tail_too() {
    // Truncated only: the signed size is longer than the log.
    let d = log_with_checkpoint(600).await;
    d.tamper("DELETE FROM audit_log WHERE idx >= 500").await;
    let stderr = d.verify_fails_at(500);
    assert!(
        stderr.contains("shorter than the signed checkpoint"),
        "{stderr}"
    );

    // Truncated at 400 and re-appended through the real store (tree nodes of the removed tail
    // deleted too, else the append itself refuses): the checkpoint at 400 still verifies, the
    // one at 600 does not, so the first bad index is 400.
    let d = Data::new();
    d.append(400).await;
    d.ok(&["audit", "checkpoint"]);
    d.append(200).await;
    d.ok(&["audit", "checkpoint"]);
    d.tamper(
        "DELETE FROM audit_log WHERE idx >= 400;
         DELETE FROM audit_nodes WHERE ((idx + 1) << level) > 400;",
    )
    .await;
    d.append_as(250, "member").await;
    let stderr = d.verify_fails_at(400);
    assert!(stderr.contains("checkpoint at size 600"), "{stderr}");
}

/// SQL literal of an optional text column value.
fn literal(value: Option<&str>) -> String {
    value.map_or("NULL".into(), |v| format!("'{}'", v.replace('\'', "''")))
}

#[tokio::test]
async fn each_indexed_column_edit_exits_1_naming_the_index_and_the_column() {
    let d = log_with_checkpoint(100).await;
    d.append(5).await; // an uncovered tail: columns there are checked too
    for idx in [42u64, 103] {
        let row = d.store().await.audit_rows(idx, 1).await.unwrap().remove(0);
        let c = row.columns;
        let cases = [
            (
                "org_id",
                "'org-elsewhere'".to_string(),
                literal(c.org.as_deref()),
            ),
            ("time", (c.time + 1).to_string(), c.time.to_string()),
            ("actor", "'member:forged'".into(), literal(Some(&c.actor))),
            ("action", "'hold.release'".into(), literal(Some(&c.action))),
            ("target", "NULL".into(), literal(c.target.as_deref())),
            ("outcome", "'failed'".into(), literal(Some(&c.outcome))),
        ];
        for (column, forged, original) in cases {
            d.tamper(&format!(
                "UPDATE audit_log SET {column} = {forged} WHERE idx = {idx}"
            ))
            .await;
            let stderr = d.verify_fails_at(idx);
            assert!(stderr.contains(&format!("`{column}`")), "{stderr}");
            // Names the column, never a value (actor ids and orgs may be personal).
            for value in [c.actor.as_str(), "forged", "org-", "hold.release"] {
                assert!(!stderr.contains(value), "{value} in: {stderr}");
            }
            d.tamper(&format!(
                "UPDATE audit_log SET {column} = {original} WHERE idx = {idx}"
            ))
            .await;
            d.ok(&["audit", "verify"]);
        }
    }
}

#[tokio::test]
async fn the_uncovered_tail_is_reported_and_dropping_from_it_only_shrinks_it() {
    let d = log_with_checkpoint(100).await;
    d.append(5).await;
    let out = d.ok(&["audit", "verify"]);
    assert!(out.contains("audit log verified: 105 entries"), "{out}");
    assert!(
        out.contains("uncovered: 5 trailing entries not yet covered by a signed checkpoint"),
        "{out}"
    );
    // Rows dropped from the uncovered tail: undetectable, but bounded by that count.
    d.tamper("DELETE FROM audit_log WHERE idx >= 102").await;
    let out = d.ok(&["audit", "verify"]);
    assert!(out.contains("audit log verified: 102 entries"), "{out}");
    assert!(out.contains("uncovered: 2 trailing"), "{out}");
    // Once checkpointed, the same drop is found.
    d.ok(&["audit", "checkpoint"]);
    assert!(d.ok(&["audit", "verify"]).contains("uncovered: 0 trailing"));
    d.tamper("DELETE FROM audit_log WHERE idx >= 101").await;
    let stderr = d.verify_fails_at(101);
    assert!(
        stderr.contains("shorter than the signed checkpoint"),
        "{stderr}"
    );
}

#[tokio::test]
async fn an_auditors_saved_checkpoint_catches_a_rewritten_history() {
    let d = Data::new();
    d.append(400).await;
    let saved = d.dir.parent().unwrap().join("saved-checkpoint.txt");
    std::fs::write(&saved, d.ok(&["audit", "checkpoint"])).unwrap();
    // The attacker rewrites history from 300 and deletes every stored checkpoint.
    d.tamper(
        "DELETE FROM audit_log WHERE idx >= 300;
         DELETE FROM audit_nodes WHERE ((idx + 1) << level) > 300;
         DELETE FROM audit_checkpoints;",
    )
    .await;
    d.append_as(200, "member").await;
    d.ok(&["audit", "verify"]); // nothing stored contradicts the forged log...
    let saved_arg = saved.to_str().unwrap();
    let stderr = d.fails(&["audit", "verify", "--checkpoint", saved_arg], 1);
    assert!(stderr.contains("tampered at index 0:"), "{stderr}"); // ...the saved one does
    assert!(stderr.contains("checkpoint at size 400"), "{stderr}");
}

#[tokio::test]
async fn bad_input_exits_2() {
    let d = log_with_checkpoint(10).await;
    let missing = d.dir.join("no-such-file");
    d.fails(
        &["audit", "verify", "--checkpoint", missing.to_str().unwrap()],
        2,
    );
    let garbage = d.dir.parent().unwrap().join("garbage.txt");
    std::fs::write(&garbage, "not a checkpoint\n").unwrap();
    d.fails(
        &["audit", "verify", "--checkpoint", garbage.to_str().unwrap()],
        2,
    );
    // A well-formed note whose signature does not verify is a failed check, not bad input.
    let note = d.ok(&["audit", "checkpoint"]);
    let (body, _) = note.split_once("\n\n").unwrap();
    let forged = format!("{body}\n\n\u{2014} custos/example-saas AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n");
    std::fs::write(&garbage, forged).unwrap();
    d.fails(
        &["audit", "verify", "--checkpoint", garbage.to_str().unwrap()],
        1,
    );
    d.fails(&["audit", "proof", "--index", "10"], 2);
    d.fails(&["audit", "proof", "--index", "1", "--tree-size", "11"], 2);
    d.fails(&["audit", "consistency", "--from", "11", "--to", "10"], 2);
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn independent_verifier_accepts_the_cli_export_checkpoints_and_proofs() {
    let Some(venv) = support::verifier_venv() else {
        return;
    };
    let d = Data::new();
    d.append(299).await;
    d.ok(&["keys", "rotate"]); // two events: started, done
    let out = d.dir.parent().unwrap().join("verify-input");
    std::fs::create_dir_all(&out).unwrap();
    let write = |name: &str, text: &str| std::fs::write(out.join(name), text).unwrap();
    write("checkpoint-old.txt", &d.ok(&["audit", "checkpoint"]));
    d.append(499).await;
    let export = out.join("export.jsonl");
    d.ok(&["audit", "export", "--out", export.to_str().unwrap()]);
    let exported_note = std::fs::read_to_string(out.join("export.jsonl.checkpoint")).unwrap();
    assert_eq!(exported_note.lines().nth(1), Some("800"));
    write("checkpoint.txt", &d.ok(&["audit", "checkpoint"]));
    assert_eq!(
        std::fs::read_to_string(out.join("checkpoint.txt")).unwrap(),
        exported_note
    );
    write("verifier-key.txt", &d.ok(&["audit", "key"]));
    for index in [0, 1, 300, 555, 799] {
        write(
            &format!("inclusion-proof-{index}.json"),
            &d.ok(&["audit", "proof", "--index", &index.to_string()]),
        );
    }
    write(
        "consistency-proof.json",
        &d.ok(&["audit", "consistency", "--from", "301", "--to", "800"]),
    );
    // Every export line carries index, leaf and the decoded event.
    let first: serde_json::Value = serde_json::from_str(
        std::fs::read_to_string(&export)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(first["index"], 0);
    assert_eq!(first["event"]["action"], "record.create");

    let status = Command::new("bash")
        .arg(support::workspace_root().join("tools/audit-verify/check.sh"))
        .arg(&out)
        .arg(&venv)
        .status()
        .unwrap();
    assert!(status.success(), "tools/audit-verify/check.sh failed");
}
