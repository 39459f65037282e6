//! `custos audit ...`: verify the whole log, print checkpoints and proofs, export, show the key.
//!
//! Exit codes: 0 verified / printed, 1 a check failed (tamper found; the message names the
//! first bad index), 2 bad input (a malformed checkpoint file, an index past the end).

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Subcommand;
use custos_core::{Caller, Custos, Principal};

use crate::cli::Global;
use crate::{deploy, Failure};

/// The audit log commands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Recompute the whole Merkle tree from the stored entries, check it against every stored
    /// signed checkpoint (and --checkpoint FILE) and every row's indexed columns against its
    /// event; exit 1 naming the first bad index. Reports the entries not yet checkpointed.
    /// Every log is verified: the main one and each of a region with stores of its own.
    Verify {
        /// A signed checkpoint saved earlier (e.g. by an auditor), checked as well (against
        /// the main log, or the --region one).
        #[arg(long, value_name = "FILE")]
        checkpoint: Vec<PathBuf>,
        /// Only the log of this region (one with stores of its own).
        #[arg(long, value_name = "NAME")]
        region: Option<String>,
    },
    /// Print the latest signed checkpoint (C2SP tlog-checkpoint note), signing a new one first
    /// if the log grew since.
    Checkpoint,
    /// Print the inclusion proof of one entry as JSON {"index","tree_size","leaf_hash","hashes"}.
    Proof {
        /// The entry's index.
        #[arg(long)]
        index: u64,
        /// Tree size to prove against (default: the latest checkpoint's).
        #[arg(long)]
        tree_size: Option<u64>,
    },
    /// Print a consistency proof as JSON {"old_size","new_size","hashes"}.
    Consistency {
        /// The earlier tree size.
        #[arg(long)]
        from: u64,
        /// The later tree size (default: the latest checkpoint's).
        #[arg(long)]
        to: Option<u64>,
    },
    /// Write the log as JSON lines {"index","leaf","event"} (leaf: base64 of the hashed
    /// bytes), exactly the entries of the latest checkpoint, which is written beside it.
    Export {
        /// Output file (default: standard output).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Where to write the matching signed checkpoint (default: <out>.checkpoint when --out
        /// is given).
        #[arg(long, value_name = "FILE")]
        checkpoint_out: Option<PathBuf>,
        /// The log of this region (one with stores of its own) instead of the main log.
        #[arg(long, value_name = "NAME")]
        region: Option<String>,
    },
    /// Print the checkpoint verification key (C2SP verifier key; --json for both forms).
    Key {
        /// Print {"public_key","verifier_key"}.
        #[arg(long)]
        json: bool,
    },
}

async fn open(global: &Global) -> Result<Arc<Custos>, Failure> {
    let deployment = deploy::open(global).await?;
    let custos = Arc::try_unwrap(deployment.custos)
        .map_err(|_| Failure::Failed("services are shared before start".into()))?
        .with_audit_signer(deployment.signer.clone());
    Ok(Arc::new(custos))
}

fn system() -> Caller {
    Caller::new(Principal::System)
}

fn json_line<T: serde::Serialize>(value: &T) -> Result<(), Failure> {
    let text = serde_json::to_string(value).map_err(|e| Failure::Failed(e.to_string()))?;
    println!("{text}");
    Ok(())
}

/// Runs one audit command.
pub async fn run(global: &Global, cmd: AuditCommand) -> Result<(), Failure> {
    let custos = open(global).await?;
    match cmd {
        AuditCommand::Verify { checkpoint, region } => {
            let extra = saved_checkpoints(&custos, &checkpoint)?;
            match region {
                Some(name) => verify(&custos, Some(&name), &extra).await,
                None => {
                    verify(&custos, None, &extra).await?;
                    for name in custos.log_regions() {
                        verify(&custos, Some(&name), &[]).await?;
                    }
                    // Each log can be whole while an org's rows are in two regions' stores.
                    let doubled = custos.orgs_in_several_stores().await?;
                    match doubled.first() {
                        None => Ok(()),
                        Some(org) => Err(Failure::Failed(format!(
                            "org {org} is in the stores of more than one region ({} org(s) in \
                             all): a move that did not finish; ask for the move again to \
                             finish it",
                            doubled.len()
                        ))),
                    }
                }
            }
        }
        AuditCommand::Checkpoint => {
            let cp = custos.audit_checkpoint(&system()).await?;
            print!("{}", cp.checkpoint);
            Ok(())
        }
        AuditCommand::Proof { index, tree_size } => json_line(
            &custos
                .audit_inclusion_proof(&system(), index, tree_size)
                .await?,
        ),
        AuditCommand::Consistency { from, to } => {
            json_line(&custos.audit_consistency_proof(&system(), from, to).await?)
        }
        AuditCommand::Export {
            out,
            checkpoint_out,
            region,
        } => export(&custos, region.as_deref(), out, checkpoint_out).await,
        AuditCommand::Key { json } => {
            let key = custos.signing_key(&system()).await?;
            if json {
                json_line(&key)
            } else {
                println!("{}", key.verifier_key);
                Ok(())
            }
        }
    }
}

/// Reads and checks the `--checkpoint` files.
fn saved_checkpoints(
    custos: &Custos,
    files: &[PathBuf],
) -> Result<Vec<custos_audit::Checkpoint>, Failure> {
    let mut extra = Vec::with_capacity(files.len());
    for path in files {
        let note = std::fs::read_to_string(path)
            .map_err(|e| Failure::BadInput(format!("--checkpoint {}: {e}", path.display())))?;
        match custos.verify_checkpoint_note(&note) {
            Ok(cp) => extra.push(cp),
            // A well-formed note whose signature or origin does not check is a failed check.
            Err(e) if looks_like_note(&note) => {
                return Err(Failure::Failed(format!(
                    "--checkpoint {}: not a valid checkpoint of this log: {e}",
                    path.display()
                )))
            }
            Err(e) => {
                return Err(Failure::BadInput(format!(
                    "--checkpoint {}: {e}",
                    path.display()
                )))
            }
        }
    }
    Ok(extra)
}

/// Verifies one log: the main one, or a region's own.
async fn verify(
    custos: &Custos,
    region: Option<&str>,
    extra: &[custos_audit::Checkpoint],
) -> Result<(), Failure> {
    let name = match region {
        Some(r) => format!("audit log of region {r}"),
        None => "audit log".to_string(),
    };
    match custos.verify_audit_log(region, extra).await? {
        Ok(v) => {
            let mb = v.bytes as f64 / 1e6;
            let secs = v.elapsed.as_secs_f64().max(1e-9);
            println!(
                "{name} verified: {} entries, {:.1} MB in {:.2} s ({:.0} MB/s)",
                v.entries,
                mb,
                secs,
                mb / secs
            );
            println!(
                "  root {}",
                base64::Engine::encode(&base64::engine::general_purpose::STANDARD, v.root)
            );
            println!(
                "  {} signed checkpoint(s) verified; entries below {} are anchored by a signature, {} are not yet",
                v.checkpoints_verified,
                v.anchored_size,
                v.uncovered
            );
            println!(
                "  indexed columns (org_id, time, actor, action, target, outcome) match every leaf"
            );
            // Rows dropped from the uncovered tail show only as a smaller count here.
            println!(
                "  uncovered: {} trailing entries not yet covered by a signed checkpoint",
                v.uncovered
            );
            Ok(())
        }
        Err(failure) => Err(Failure::Failed(format!(
            "audit verify FAILED ({name}): {failure}"
        ))),
    }
}

/// A body, a blank line and at least one signature line: shaped like a signed note.
fn looks_like_note(text: &str) -> bool {
    text.split_once("\n\n")
        .is_some_and(|(_, sigs)| sigs.starts_with("\u{2014} "))
}

async fn export(
    custos: &Custos,
    region: Option<&str>,
    out: Option<PathBuf>,
    checkpoint_out: Option<PathBuf>,
) -> Result<(), Failure> {
    let checkpoint_out = checkpoint_out.or_else(|| {
        out.as_ref().map(|p| {
            let mut s = p.clone().into_os_string();
            s.push(".checkpoint");
            PathBuf::from(s)
        })
    });
    let cp = match &out {
        Some(path) => {
            let file = std::fs::File::create(path)
                .map_err(|e| Failure::BadInput(format!("--out {}: {e}", path.display())))?;
            let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
            custos.audit_export(region, &mut w).await?
        }
        None => {
            let mut w = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
            let cp = custos.audit_export(region, &mut w).await?;
            w.flush()
                .map_err(|e| Failure::Failed(format!("standard output: {e}")))?;
            cp
        }
    };
    if let Some(path) = &checkpoint_out {
        std::fs::write(path, &cp.note)
            .map_err(|e| Failure::BadInput(format!("{}: {e}", path.display())))?;
    }
    eprintln!(
        "exported {} entries (the tree of the checkpoint at size {}){}",
        cp.size,
        cp.size,
        checkpoint_out
            .map(|p| format!("; checkpoint written to {}", p.display()))
            .unwrap_or_default()
    );
    Ok(())
}
