//! `custos scan` and `custos redact`: the PII engine on files or standard input.

use std::io::{BufRead, Read, Write};
use std::path::PathBuf;

use clap::Args;
use custos_pii::{
    anonymize, EntityKind, Operator, OperatorContext, Operators, Scanner, TokenVault,
};
use serde::Deserialize;

use crate::cli::Global;
use crate::{deploy, Failure};

/// Options of `custos scan`.
#[derive(Debug, Args)]
pub struct ScanArgs {
    /// Read JSON lines `{"id":..,"text":..}`; write `{"id":..,"findings":[..]}` per line.
    #[arg(long)]
    pub jsonl: bool,
    /// Input file, or `-` for standard input (the default).
    pub file: Option<PathBuf>,
}

/// Options of `custos redact`.
#[derive(Debug, Args)]
pub struct RedactArgs {
    /// Use this category's `pii` rule (default: the policy's `[llm] pii` rule, else redact
    /// every entity type).
    #[arg(long)]
    pub category: Option<String>,
    /// Input file, or `-` for standard input (the default).
    pub file: Option<PathBuf>,
}

fn open_input(file: &Option<PathBuf>) -> Result<(String, Box<dyn BufRead>), Failure> {
    match file {
        None => Ok(("<stdin>".into(), Box::new(std::io::stdin().lock()))),
        Some(p) if p.as_os_str() == "-" => {
            Ok(("<stdin>".into(), Box::new(std::io::stdin().lock())))
        }
        Some(p) => {
            let f = std::fs::File::open(p)
                .map_err(|e| Failure::BadInput(format!("{}: {e}", p.display())))?;
            Ok((
                p.display().to_string(),
                Box::new(std::io::BufReader::new(f)),
            ))
        }
    }
}

#[derive(Deserialize)]
struct JsonlInput {
    id: serde_json::Value,
    text: String,
}

fn finding_json(f: &custos_pii::Finding) -> serde_json::Value {
    serde_json::json!({
        "entity": f.entity.as_str(),
        "start": f.start,
        "end": f.end,
        "score": f.score,
    })
}

fn write_err(e: std::io::Error) -> Failure {
    Failure::Failed(format!("writing output: {e}"))
}

/// `custos scan`.
pub fn scan(args: ScanArgs) -> Result<(), Failure> {
    let (name, mut input) = open_input(&args.file)?;
    let scanner = Scanner::new();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if args.jsonl {
        let mut line = String::new();
        let mut number = 0;
        loop {
            line.clear();
            number += 1;
            let n = input
                .read_line(&mut line)
                .map_err(|e| Failure::BadInput(format!("{name}:{number}: {e}")))?;
            if n == 0 {
                break;
            }
            if line.trim().is_empty() {
                continue;
            }
            let item: JsonlInput = serde_json::from_str(&line).map_err(|e| {
                Failure::BadInput(format!(
                    "{name}:{number}: expected {{\"id\":..,\"text\":\"..\"}}: {e}"
                ))
            })?;
            let findings: Vec<_> = scanner.scan(&item.text).iter().map(finding_json).collect();
            serde_json::to_writer(
                &mut out,
                &serde_json::json!({"id": item.id, "findings": findings}),
            )
            .map_err(|e| Failure::Failed(e.to_string()))?;
            out.write_all(b"\n").map_err(write_err)?;
        }
    } else {
        let mut text = String::new();
        input
            .read_to_string(&mut text)
            .map_err(|e| Failure::BadInput(format!("{name}: {e}")))?;
        for f in scanner.scan(&text) {
            let mut v = finding_json(&f);
            v["recognizer"] = f.recognizer.into();
            serde_json::to_writer(&mut out, &v).map_err(|e| Failure::Failed(e.to_string()))?;
            out.write_all(b"\n").map_err(write_err)?;
        }
    }
    out.flush().map_err(write_err)
}

/// `custos redact`.
pub fn redact(global: &Global, args: RedactArgs) -> Result<(), Failure> {
    let (policy, _) = deploy::load_policy(global)?;
    let rule = match &args.category {
        Some(name) => {
            let category = policy.category(name).ok_or_else(|| {
                Failure::BadInput(format!("--category {name}: not a category of the policy"))
            })?;
            Some(category.pii.clone().ok_or_else(|| {
                Failure::BadInput(format!("--category {name}: the category has no pii rule"))
            })?)
        }
        None => policy.llm.pii.clone(),
    };
    let (kinds, operator) = match &rule {
        Some(rule) => (
            custos_core::kinds_of(rule).map_err(Failure::from)?,
            custos_core::operator_for(rule.action),
        ),
        None => (EntityKind::ALL.to_vec(), Operator::Redact),
    };
    if matches!(operator, Operator::Hash | Operator::Encrypt) {
        return Err(Failure::BadInput(format!(
            "the rule's action ({operator:?}) needs an org key; use the API, or --category with a redact, mask, block or tokenize rule"
        )));
    }
    let (name, mut input) = open_input(&args.file)?;
    let mut text = String::new();
    input
        .read_to_string(&mut text)
        .map_err(|e| Failure::BadInput(format!("{name}: {e}")))?;
    let findings = Scanner::new().scan_for(&text, &kinds);
    let mut vault = TokenVault::new();
    let mut ctx = OperatorContext::new().with_vault(&mut vault);
    let out =
        anonymize(&text, &findings, &Operators::uniform(operator), &mut ctx).map_err(|e| {
            // Blocked: names entity types and positions, never values.
            Failure::Failed(format!("{name}: {e}"))
        })?;
    print!("{}", out.text);
    Ok(())
}
