//! `custos migrate status|run`: the schema steps of every database of the deployment (the
//! main one, then each region's). `serve` and every other command migrate on start as before;
//! this lets an operator see and run the steps on their own, e.g. before rolling out a new
//! release to several instances.

use std::path::Path;

use clap::Subcommand;
use custos_store::migrations::{StepState, StepStatus};
use custos_store::{PgStore, SqliteStore};
use serde_json::json;

use crate::cli::Global;
use crate::Failure;

/// `custos migrate ...`.
#[derive(Debug, Subcommand)]
pub enum MigrateCommand {
    /// Print each database's schema steps: applied (and when) or pending. Changes nothing.
    Status {
        /// One JSON document instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Apply each database's pending steps, then print the status.
    Run {
        /// One JSON document instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// Runs a `migrate` subcommand.
pub async fn run(global: &Global, cmd: MigrateCommand) -> Result<(), Failure> {
    let (policy, _) = crate::deploy::load_policy(global)?;
    let mut databases = vec![(
        "--database".to_string(),
        crate::deploy::main_database(global),
    )];
    for (name, stores) in &policy.regions {
        databases.push((
            format!("[regions.{name}] database"),
            stores.database.trim().to_string(),
        ));
    }
    let json = match cmd {
        MigrateCommand::Status { json } => json,
        MigrateCommand::Run { json } => {
            for (what, url) in &databases {
                crate::deploy::open_store(url, what).await?;
            }
            json
        }
    };
    let mut reports = Vec::new();
    for (what, url) in &databases {
        reports.push((what.clone(), backend_name(url), status(url, what).await?));
    }
    if json {
        let doc = json!({"databases": reports.iter().map(|(what, backend, steps)| json!({
            "database": what,
            "backend": backend,
            "version": steps.iter().filter(|s| s.state != StepState::Pending).count(),
            "known": steps.len(),
            "steps": steps.iter().map(|s| json!({
                "version": s.step.version,
                "name": s.step.name,
                "checksum": s.step.checksum(),
                "applied": s.state != StepState::Pending,
                "applied_at": match s.state {
                    StepState::Applied(at) => at.map(time_text),
                    StepState::Pending => None,
                },
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>()});
        println!("{doc:#}");
        return Ok(());
    }
    for (what, backend, steps) in &reports {
        let pending = steps
            .iter()
            .filter(|s| s.state == StepState::Pending)
            .count();
        println!(
            "{what} ({backend}): {} of {} steps applied, {pending} pending",
            steps.len() - pending,
            steps.len()
        );
        for s in steps {
            match s.state {
                StepState::Applied(Some(at)) => {
                    println!("  {:<28} applied {}", s.step.id(), time_text(at))
                }
                StepState::Applied(None) => {
                    println!("  {:<28} applied (before steps were timed)", s.step.id())
                }
                StepState::Pending => println!("  {:<28} pending", s.step.id()),
            }
        }
    }
    Ok(())
}

fn backend_name(url: &str) -> &'static str {
    if url.starts_with("sqlite:") {
        "sqlite"
    } else {
        "postgres"
    }
}

/// The status of the database at `url` (never echoed when PostgreSQL: it may hold a password).
async fn status(url: &str, what: &str) -> Result<Vec<StepStatus>, Failure> {
    if let Some(path) = url.strip_prefix("sqlite:") {
        SqliteStore::migration_status(Path::new(path))
            .map_err(|e| Failure::Failed(format!("{what} {url}: {e}")))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        PgStore::migration_status(url, None)
            .await
            .map_err(|e| Failure::Failed(format!("{what}: {e}")))
    } else {
        Err(Failure::BadInput(format!(
            "{what} {url:?}: expected sqlite:PATH or postgres://..."
        )))
    }
}

fn time_text(micros: i64) -> String {
    jiff::Timestamp::from_microsecond(micros)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| micros.to_string())
}
