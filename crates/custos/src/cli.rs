//! Command-line parsing and dispatch.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::deploy::{self, PolicySource};
use crate::Failure;

/// Custos: a privacy data plane.
#[derive(Debug, Parser)]
#[command(name = "custos", version, about)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Clone, Args)]
pub struct Global {
    /// Policy file (default ./custos.toml if present, else the built-in policy).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Data directory: SQLite database, local objects, and by default the keys.
    #[arg(long, global = true, value_name = "DIR", default_value = "custos-data")]
    pub data: PathBuf,
    /// Database URL: sqlite:PATH or postgres://...
    #[arg(long, global = true, value_name = "URL", env = "CUSTOS_DATABASE")]
    pub database: Option<String>,
    /// Object store URL: file:DIR (default <data>/objects) or s3://bucket/prefix.
    #[arg(long, global = true, value_name = "URL", env = "CUSTOS_OBJECTS")]
    pub objects: Option<String>,
    /// Key store: a directory (default <data>/keys) or the postgres:// URL of a database that
    /// never holds data (shared by several instances). Keep it out of data backups.
    #[arg(long, global = true, value_name = "DIR|URL", env = "CUSTOS_KEYS")]
    pub keys: Option<String>,
    /// Where the root key is held instead of the keyring or CUSTOS_ROOT_KEY:
    /// aws-kms:KEY (a KMS key id, ARN or alias/NAME; region, credentials and endpoint from
    /// the standard AWS_* variables).
    #[arg(long, global = true, value_name = "URL", env = "CUSTOS_KMS")]
    pub kms: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP API.
    Serve(crate::serve::ServeArgs),
    /// Validate or print the policy.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Key management.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// The tamper-evident audit log: verify, checkpoint, proofs, export.
    #[command(subcommand)]
    Audit(crate::audit_cmd::AuditCommand),
    /// Detect PII in text; one JSON finding per line (offsets in characters).
    Scan(crate::pii_cmd::ScanArgs),
    /// Apply the policy's PII operators to text and print the result.
    Redact(crate::pii_cmd::RedactArgs),
    /// Run every lifecycle action that is due (archive, purge), or forecast with --dry-run.
    Sweep(crate::sweep_cmd::SweepArgs),
    /// Encrypted backups: create, list, verify, restore, reconcile (after any restore, SQLite
    /// or PostgreSQL), drill.
    #[command(subcommand)]
    Backup(crate::backup_cmd::BackupCommand),
    /// Certificates of deletion: verify one offline.
    #[command(subcommand)]
    Cert(crate::cert_cmd::CertCommand),
    /// Data subject requests: list, show, extend; export a subject; erase a subject or a CSV.
    #[command(subcommand)]
    Dsr(crate::dsr_cmd::DsrCommand),
    /// Database schema steps: status (applied or pending, per database), run.
    #[command(subcommand)]
    Migrate(crate::migrate_cmd::MigrateCommand),
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Validate a policy file; every problem as FILE:LINE:COL: message (exit 2 if any).
    Check {
        /// The file (default: --config, else ./custos.toml).
        file: Option<PathBuf>,
    },
    /// Print the effective policy as TOML.
    Show,
    /// Print a Markdown data-handling disclosure generated from the policy.
    Disclosure,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Rotate the root key (re-wrapping every org key), or with --org that org's key
    /// (re-wrapping its subject keys). Content is never re-encrypted.
    Rotate {
        /// Rotate this org's key instead of the root key.
        #[arg(long)]
        org: Option<String>,
    },
}

pub async fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Serve(args) => crate::serve::run(&cli.global, args).await,
        Command::Policy(cmd) => policy(&cli.global, cmd),
        Command::Keys(KeysCommand::Rotate { org }) => rotate(&cli.global, org).await,
        Command::Audit(cmd) => crate::audit_cmd::run(&cli.global, cmd).await,
        Command::Scan(args) => crate::pii_cmd::scan(args),
        Command::Redact(args) => crate::pii_cmd::redact(&cli.global, args),
        Command::Sweep(args) => crate::sweep_cmd::run(&cli.global, args).await,
        Command::Cert(cmd) => crate::cert_cmd::run(&cli.global, cmd).await,
        Command::Backup(cmd) => crate::backup_cmd::run(&cli.global, cmd).await,
        Command::Dsr(cmd) => crate::dsr_cmd::run(&cli.global, cmd).await,
        Command::Migrate(cmd) => crate::migrate_cmd::run(&cli.global, cmd).await,
    }
}

fn policy(global: &Global, cmd: PolicyCommand) -> Result<(), Failure> {
    match cmd {
        PolicyCommand::Check { file } => {
            let default = PathBuf::from("custos.toml");
            let Some(file) = file
                .or_else(|| global.config.clone())
                .or_else(|| default.is_file().then_some(default))
            else {
                // No file named and none here: the built-in policy is the one in effect.
                let policy = custos_policy::Policy::builtin();
                println!(
                    "built-in policy: ok ({} categories; no custos.toml here)",
                    policy.categories.len()
                );
                return Ok(());
            };
            let policy =
                custos_policy::Policy::load(&file).map_err(|e| Failure::BadInput(e.to_string()))?;
            for warning in policy.warnings() {
                eprintln!("{}: warning: {warning}", file.display());
            }
            println!(
                "{}: ok ({} categories)",
                file.display(),
                policy.categories.len()
            );
            Ok(())
        }
        PolicyCommand::Show => {
            let (policy, source) = deploy::load_policy(global)?;
            match source {
                PolicySource::Builtin => {
                    println!("# Effective policy: the built-in default (no custos.toml found)")
                }
                PolicySource::File(path) => println!("# Effective policy from {}", path.display()),
            }
            print!("{}", policy.to_toml());
            Ok(())
        }
        PolicyCommand::Disclosure => {
            let (policy, _) = deploy::load_policy(global)?;
            print!("{}", policy.render_disclosure());
            Ok(())
        }
    }
}

async fn rotate(global: &Global, org: Option<String>) -> Result<(), Failure> {
    let deployment = deploy::open(global).await?;
    let system = custos_core::Caller::new(custos_core::Principal::System);
    let report = deployment
        .custos
        .rotate_keys(&system, org.as_deref())
        .await
        .map_err(|e| match e {
            custos_core::CoreError::NotFound(_) => Failure::BadInput(format!(
                "--org {}: no such org",
                org.as_deref().unwrap_or("")
            )),
            other => Failure::Failed(other.to_string()),
        })?;
    println!(
        "rotated {} key to version {}; re-wrapped {} key(s); no content was re-encrypted",
        if org.is_some() { "org" } else { "root" },
        report.new_version,
        report.rewrapped
    );
    Ok(())
}
