//! The labeled corpus in `corpus/*.jsonl` as a regression gate: checksum-validated types must
//! keep F1 >= 0.95 (exact spans), everything else >= 0.8.

#[path = "../examples/common/eval.rs"]
#[allow(dead_code)]
mod eval;

use std::path::Path;

use custos_pii::{EntityKind, Scanner};

#[test]
fn corpus_offsets_are_consistent() {
    let corpus = eval::load_corpus(&Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus"));
    assert!(corpus.len() > 100);
    for ex in &corpus {
        let n = ex.text.chars().count();
        for (_, s, e) in &ex.spans {
            assert!(
                s < e && *e <= n,
                "{}: span {s}..{e} outside text of {n} chars",
                ex.id
            );
        }
    }
}

#[test]
fn corpus_f1_meets_targets() {
    let corpus = eval::load_corpus(&Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus"));
    let report = eval::evaluate(&Scanner::new(), &corpus);
    let checksum = [
        EntityKind::CreditCard,
        EntityKind::IbanCode,
        EntityKind::UsSsn,
        EntityKind::EmailAddress,
        EntityKind::IpAddress,
    ];
    for (kind, c) in &report.strict {
        let floor = if checksum.contains(kind) { 0.95 } else { 0.8 };
        assert!(
            c.f1() >= floor,
            "{kind}: F1 {:.3} < {floor} ({c:?})\n{}",
            c.f1(),
            report.errors.join("\n")
        );
    }
    for kind in checksum {
        assert!(
            report.strict.contains_key(&kind),
            "{kind} missing from corpus"
        );
    }
}
