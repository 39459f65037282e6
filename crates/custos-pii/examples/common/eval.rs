//! Scoring of the scanner against the labeled JSONL corpus (shared by `examples/eval.rs` and the
//! corpus test, included with `#[path]`).

use std::collections::BTreeMap;
use std::path::Path;

use custos_pii::{EntityKind, Scanner};

/// One labeled example.
pub struct Example {
    pub id: String,
    pub text: String,
    pub spans: Vec<(EntityKind, usize, usize)>,
}

/// Reads every `*.jsonl` under `dir`.
pub fn load_corpus(dir: &Path) -> Vec<Example> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("corpus dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let body = std::fs::read_to_string(&f).expect("read corpus file");
        for line in body.lines().filter(|l| !l.trim().is_empty()) {
            let v: serde_json::Value = serde_json::from_str(line).expect("corpus line is JSON");
            let spans = v["spans"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|s| {
                            let kind: EntityKind = s["entity"]
                                .as_str()
                                .unwrap_or("")
                                .parse()
                                .expect("known entity");
                            (
                                kind,
                                s["start"].as_u64().unwrap_or(0) as usize,
                                s["end"].as_u64().unwrap_or(0) as usize,
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            out.push(Example {
                id: v["id"].as_str().unwrap_or("").to_string(),
                text: v["text"].as_str().unwrap_or("").to_string(),
                spans,
            });
        }
    }
    out
}

/// True/false positives and false negatives for one entity kind.
#[derive(Default, Clone, Copy, Debug)]
pub struct Counts {
    pub tp: usize,
    pub fp: usize,
    pub fn_: usize,
}

impl Counts {
    pub fn precision(&self) -> f64 {
        if self.tp + self.fp == 0 {
            1.0
        } else {
            self.tp as f64 / (self.tp + self.fp) as f64
        }
    }
    pub fn recall(&self) -> f64 {
        if self.tp + self.fn_ == 0 {
            1.0
        } else {
            self.tp as f64 / (self.tp + self.fn_) as f64
        }
    }
    pub fn f1(&self) -> f64 {
        let (p, r) = (self.precision(), self.recall());
        if p + r == 0.0 {
            0.0
        } else {
            2.0 * p * r / (p + r)
        }
    }
}

/// Per-kind counts under exact span matching (`strict`) and under overlap matching.
pub struct Report {
    pub strict: BTreeMap<EntityKind, Counts>,
    pub overlap: BTreeMap<EntityKind, Counts>,
    pub errors: Vec<String>,
}

pub fn evaluate(scanner: &Scanner, corpus: &[Example]) -> Report {
    let mut strict: BTreeMap<EntityKind, Counts> = BTreeMap::new();
    let mut overlap: BTreeMap<EntityKind, Counts> = BTreeMap::new();
    let mut errors = Vec::new();
    for ex in corpus {
        let pred: Vec<(EntityKind, usize, usize)> = scanner
            .scan(&ex.text)
            .iter()
            .map(|f| (f.entity, f.start, f.end))
            .collect();
        let snippet =
            |s: usize, e: usize| -> String { ex.text.chars().skip(s).take(e - s).collect() };
        for p in &pred {
            let exact = ex.spans.contains(p);
            let over = ex
                .spans
                .iter()
                .any(|g| g.0 == p.0 && g.1 < p.2 && p.1 < g.2);
            strict.entry(p.0).or_default().tp += exact as usize;
            strict.entry(p.0).or_default().fp += (!exact) as usize;
            overlap.entry(p.0).or_default().tp += over as usize;
            overlap.entry(p.0).or_default().fp += (!over) as usize;
            if !exact {
                errors.push(format!("{} FP {} {:?}", ex.id, p.0, snippet(p.1, p.2)));
            }
        }
        for g in &ex.spans {
            let exact = pred.contains(g);
            let over = pred.iter().any(|p| g.0 == p.0 && g.1 < p.2 && p.1 < g.2);
            strict.entry(g.0).or_default().fn_ += (!exact) as usize;
            overlap.entry(g.0).or_default().fn_ += (!over) as usize;
            if !exact {
                errors.push(format!("{} FN {} {:?}", ex.id, g.0, snippet(g.1, g.2)));
            }
        }
    }
    Report {
        strict,
        overlap,
        errors,
    }
}
