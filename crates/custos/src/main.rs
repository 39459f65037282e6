//! The `custos` binary: thin glue from the command line to the library crates.
//!
//! Exit codes: 0 success, 1 a check failed (or the operation failed), 2 bad input.

mod audit_cmd;
mod backup_cmd;
mod cert_cmd;
mod cli;
mod deploy;
mod dsr_bulk;
mod dsr_cmd;
mod migrate_cmd;
mod pii_cmd;
mod serve;
mod sweep_cmd;

use std::process::ExitCode;

use clap::Parser;

/// A failure that ends the command, with the exit code it maps to.
#[derive(Debug)]
pub enum Failure {
    /// Bad input: the message names the input and what is wrong (exit 2).
    BadInput(String),
    /// A check failed or the operation could not complete (exit 1).
    Failed(String),
}

impl Failure {
    fn exit_code(&self) -> u8 {
        match self {
            Failure::BadInput(_) => 2,
            Failure::Failed(_) => 1,
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::BadInput(m) | Failure::Failed(m) => f.write_str(m),
        }
    }
}

impl From<custos_core::CoreError> for Failure {
    fn from(e: custos_core::CoreError) -> Self {
        use custos_core::CoreError::*;
        match e {
            Invalid { .. } | UnknownCategory(_) | NotFound(_) => Failure::BadInput(e.to_string()),
            Internal { detail, .. } => Failure::Failed(format!("internal error: {detail}")),
            other => Failure::Failed(other.to_string()),
        }
    }
}

/// Makes every file and directory this process creates private to its owner (0600 / 0700):
/// the database, its WAL and SHM files, object files and tokens are created by several
/// libraries, and the umask is the one place that covers them all.
fn private_umask() {
    #[cfg(unix)]
    // SAFETY: umask only swaps the process's file-creation mask; it cannot fail.
    unsafe {
        libc::umask(0o077);
    }
}

fn main() -> ExitCode {
    private_umask();
    let args = cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CUSTOS_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(cli::run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("error: {failure}");
            ExitCode::from(failure.exit_code())
        }
    }
}
