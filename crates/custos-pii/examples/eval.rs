//! Per-entity precision/recall/F1 of the scanner on the labeled corpus in `corpus/*.jsonl`.
//!
//! `cargo run --release -p custos-pii --example eval [-- --errors]`

#[path = "common/eval.rs"]
mod eval;

use std::path::Path;

fn main() {
    // `--corpus DIR` scores another directory of JSONL files (e.g. a held-out set).
    let args: Vec<String> = std::env::args().collect();
    let dir = match args.iter().position(|a| a == "--corpus") {
        Some(i) if i + 1 < args.len() => std::path::PathBuf::from(&args[i + 1]),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus"),
    };
    let corpus = eval::load_corpus(&dir);
    let scanner = custos_pii::Scanner::new();
    let report = eval::evaluate(&scanner, &corpus);
    let gold: usize = corpus.iter().map(|e| e.spans.len()).sum();
    println!(
        "corpus: {} examples, {} labeled spans ({})",
        corpus.len(),
        gold,
        dir.display()
    );
    println!();
    println!(
        "{:<18} {:>5} {:>4} {:>4} | {:>6} {:>6} {:>6} | {:>6} {:>6} {:>6}",
        "entity", "gold", "fp", "fn", "P", "R", "F1", "P~", "R~", "F1~"
    );
    for (kind, c) in &report.strict {
        let o = report.overlap[kind];
        println!(
            "{:<18} {:>5} {:>4} {:>4} | {:>6.3} {:>6.3} {:>6.3} | {:>6.3} {:>6.3} {:>6.3}",
            kind.as_str(),
            c.tp + c.fn_,
            c.fp,
            c.fn_,
            c.precision(),
            c.recall(),
            c.f1(),
            o.precision(),
            o.recall(),
            o.f1()
        );
    }
    println!();
    println!("P/R/F1: exact span match; P~/R~/F1~: any overlap with a gold span of the same type.");
    if std::env::args().any(|a| a == "--errors") {
        for e in &report.errors {
            println!("{e}");
        }
    }
}
