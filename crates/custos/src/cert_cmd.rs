//! `custos cert verify`: checks a certificate of deletion offline.
//!
//! Exit codes: 0 verified, 1 a check failed (`certificate invalid: <check>: <detail>`), 2 bad
//! input (an unreadable file, a malformed key, an org the key store has no key for).

use std::path::PathBuf;

use clap::{Args, Subcommand};
use custos_audit::VerifierKey;
use custos_cert::KeySource;
use custos_crypto::CryptoError;

use crate::cli::Global;
use crate::{deploy, Failure};

/// The certificate commands.
#[derive(Debug, Subcommand)]
pub enum CertCommand {
    /// Verify a certificate of deletion offline: format, signature, checkpoint, inclusion
    /// proof, erasure event, and with --org/--subject the subject; exit 1 naming the first
    /// check that fails.
    Verify(VerifyArgs),
}

/// `custos cert verify` options.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The certificate (JSON).
    pub file: PathBuf,
    /// The issuing deployment's verifier key (what `custos audit key` prints), or @FILE.
    /// Without it, the key of the deployment that --data/--keys open, when they name one;
    /// otherwise only --trust-embedded-key accepts a certificate (exit 1 without it).
    #[arg(long, value_name = "VERIFIER_KEY")]
    pub key: Option<String>,
    /// Accept the certificate's own embedded key: that shows the certificate is consistent,
    /// not who issued it (anyone can sign with a key of their own).
    #[arg(long, conflicts_with = "key")]
    pub trust_embedded_key: bool,
    /// With --subject: require the certificate to be for this org's subject. Needs the
    /// deployment's key store (--data or --keys), since subject references are keyed.
    #[arg(long, requires = "subject")]
    pub org: Option<String>,
    /// The subject's id in that org (never printed).
    #[arg(long, requires = "org")]
    pub subject: Option<String>,
}

/// Runs one certificate command.
pub async fn run(global: &Global, cmd: CertCommand) -> Result<(), Failure> {
    match cmd {
        CertCommand::Verify(args) => verify(global, args).await,
    }
}

async fn verify(global: &Global, args: VerifyArgs) -> Result<(), Failure> {
    let json = std::fs::read(&args.file)
        .map_err(|e| Failure::BadInput(format!("{}: {e}", args.file.display())))?;
    let (key, trusted) = match args.key.as_deref().map(read_key).transpose()? {
        Some(key) => (Some(key), "the supplied key"),
        None => match deploy::existing_verifier_key(global).await? {
            Some(own) => (Some(own), "this deployment's own key"),
            None => (None, ""),
        },
    };
    let expected = match (&args.org, &args.subject) {
        (Some(org), Some(subject)) => Some(subject_ref(global, org, subject).await?),
        _ => None,
    };
    let ok = custos_cert::verify(&json, key.as_deref(), expected.as_deref())
        .map_err(|f| Failure::Failed(format!("certificate invalid: {f}")))?;
    let cert = &ok.certificate;
    let key_note = match ok.key_source {
        KeySource::Supplied => format!("signed by {trusted}"),
        KeySource::SelfAsserted if args.trust_embedded_key => format!(
            "signed by the certificate's own key {}, trusted as asked; pass --key to check \
             who issued it",
            cert.statement.issuer.verifier_key
        ),
        KeySource::SelfAsserted => {
            return Err(Failure::Failed(format!(
                "certificate {} is consistent, but its key {} is self-asserted: anyone can \
                 sign with a key of their own. Pass --key with the issuing deployment's \
                 verifier key (`custos audit key` there), run with its --data/--keys, or pass \
                 --trust-embedded-key to accept the certificate's own key",
                cert.statement.id, cert.statement.issuer.verifier_key
            )))
        }
    };
    println!(
        "ok: certificate {} verified ({key_note}; audit entry {} in the checkpoint of size {}{})",
        cert.statement.id,
        cert.inclusion_proof.index,
        ok.checkpoint.size,
        if ok.subject_checked {
            "; subject matches"
        } else {
            ""
        }
    );
    Ok(())
}

/// The verifier key text from `--key`: the key itself or `@FILE`; malformed is bad input.
fn read_key(arg: &str) -> Result<String, Failure> {
    let text = match arg.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| Failure::BadInput(format!("--key {arg}: {e}")))?,
        None => arg.to_owned(),
    };
    let text = text.trim().to_owned();
    text.parse::<VerifierKey>()
        .map_err(|e| Failure::BadInput(format!("--key: {e}")))?;
    Ok(text)
}

/// The keyed subject reference of `subject` in `org`, from the deployment's key store; opens
/// only the keys, creating nothing.
async fn subject_ref(global: &Global, org: &str, subject: &str) -> Result<String, Failure> {
    let vault = deploy::open_key_vault(global).await?;
    vault.subject_ref(org, subject).await.map_err(|e| match e {
        CryptoError::NoOrgKey(_) => Failure::BadInput(format!(
            "--org {org}: the key store has no key for this org (wrong --data/--keys, or its keys were destroyed)"
        )),
        other => Failure::Failed(format!("key store: {other}")),
    })
}
