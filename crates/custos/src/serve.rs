//! `custos serve`: first-start initialization, the admin token, and the HTTP server.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine;
use clap::Args;
use rand::RngCore;

use crate::cli::Global;
use crate::{deploy, Failure};

/// Options of `custos serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    pub listen: SocketAddr,
    /// PEM certificate chain; with --tls-key, serve HTTPS (TLS 1.2+) only.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Sign an audit checkpoint every this many seconds when the log grew. Entries not yet
    /// checkpointed can be dropped undetected, so this bounds that window.
    #[arg(long, default_value_t = 1, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub checkpoint_interval: u64,
    /// Run the lifecycle sweep every this many seconds (0: never; run `custos sweep`).
    #[arg(long, default_value_t = 60, value_name = "SECS")]
    pub sweep_interval: u64,
    /// Take an encrypted backup into this directory or s3://bucket/prefix every
    /// --backup-interval (as `custos backup create --to DIR`: incremental, a full one every
    /// 7th; embedded deployments).
    #[arg(long, value_name = "DIR|URL")]
    pub backup_to: Option<PathBuf>,
    /// Seconds between scheduled backups (default 3600, the built-in policy's rpo).
    #[arg(long, default_value_t = 3600, value_name = "SECS", requires = "backup_to", value_parser = clap::value_parser!(u64).range(1..))]
    pub backup_interval: u64,
}

/// Where the admin token comes from, for the start-up message.
enum TokenSource {
    Env,
    File(PathBuf),
}

/// `CUSTOS_ADMIN_TOKEN`, else `<data>/admin-token` (created 0600 on first start).
fn admin_token(data: &Path) -> Result<(String, TokenSource), Failure> {
    if let Ok(token) = std::env::var("CUSTOS_ADMIN_TOKEN") {
        if token.trim().len() < 16 {
            return Err(Failure::BadInput(
                "CUSTOS_ADMIN_TOKEN must be at least 16 characters".into(),
            ));
        }
        return Ok((token.trim().to_string(), TokenSource::Env));
    }
    let path = data.join("admin-token");
    if path.exists() {
        let token = std::fs::read_to_string(&path)
            .map_err(|e| Failure::Failed(format!("cannot read {}: {e}", path.display())))?;
        return Ok((token.trim().to_string(), TokenSource::File(path)));
    }
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let token = format!(
        "cad_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    );
    custos_crypto::write_secret_file(&path, format!("{token}\n").as_bytes())
        .map_err(|e| Failure::Failed(format!("cannot write {}: {e}", path.display())))?;
    Ok((token, TokenSource::File(path)))
}

fn tls_config(cert: &Path, key: &Path) -> Result<rustls::ServerConfig, Failure> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| Failure::BadInput(format!("--tls-cert {}: {e}", cert.display())))?;
    if certs.is_empty() {
        return Err(Failure::BadInput(format!(
            "--tls-cert {}: no certificate found",
            cert.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| Failure::BadInput(format!("--tls-key {}: {e}", key.display())))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    // rustls implements only TLS 1.2 and 1.3; naming both makes the floor explicit.
    rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| Failure::Failed(format!("TLS setup: {e}")))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| Failure::BadInput(format!("--tls-cert/--tls-key: {e}")))
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down");
}

/// Runs the server until SIGINT/SIGTERM.
pub async fn run(global: &Global, args: ServeArgs) -> Result<(), Failure> {
    let first_start = !global.data.exists();
    deploy::create_private_dir(&global.data)?;
    let (token, source) = admin_token(&global.data)?;
    let deployment = deploy::open(global).await?;
    let mut custos = Arc::try_unwrap(deployment.custos)
        .map_err(|_| Failure::Failed("services are shared before start".into()))?
        .with_admin_token(&token)
        .with_audit_signer(deployment.signer.clone());
    if let Ok(url) = std::env::var("CUSTOS_ALERT_WEBHOOK") {
        custos = custos.with_alert_sink(Arc::new(crate::alerts::WebhookSink::new(url)?));
    }
    let custos = Arc::new(custos);
    tokio::spawn(
        custos
            .clone()
            .run_checkpointer(std::time::Duration::from_secs(args.checkpoint_interval)),
    );
    if args.sweep_interval > 0 {
        tokio::spawn(
            custos
                .clone()
                .run_sweeper(std::time::Duration::from_secs(args.sweep_interval)),
        );
    }
    if let Some(to) = &args.backup_to {
        // Checked now, so a deployment that cannot be backed up does not start quietly.
        crate::backup_cmd::check_sources(global)?;
        tokio::spawn(crate::backup_cmd::run_scheduled(
            global.clone(),
            to.clone(),
            std::time::Duration::from_secs(args.backup_interval),
        ));
    }
    let app = custos_api::router(custos_api::AppState::new(custos.clone()))
        .into_make_service_with_connect_info::<SocketAddr>();
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(tls_config(cert, key)?),
        _ => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    if first_start {
        println!(
            "Initialized a new Custos data directory at {}",
            deployment.data_dir.display()
        );
    }
    println!("Custos listening on {scheme}://{}", args.listen);
    println!("  store:  {}", custos.backend());
    match &source {
        TokenSource::Env => println!("  admin token: from CUSTOS_ADMIN_TOKEN"),
        TokenSource::File(path) => println!("  admin token: {}", path.display()),
    }
    if tls.is_none() && !args.listen.ip().is_loopback() {
        tracing::warn!(
            listen = %args.listen,
            "SERVING PLAIN HTTP ON A NON-LOOPBACK ADDRESS: bearer tokens and personal data will cross the network unencrypted; pass --tls-cert and --tls-key"
        );
        eprintln!(
            "WARNING: serving plain HTTP on {}; use --tls-cert/--tls-key",
            args.listen
        );
    }
    let handle = axum_server::Handle::new();
    let shutdown = handle.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        shutdown.graceful_shutdown(Some(std::time::Duration::from_secs(10)));
    });
    // TCP_NODELAY: small writes (each streamed LLM event, a short JSON answer) leave at once
    // instead of waiting on Nagle's algorithm for the peer's delayed ACK (about 40 ms).
    let nodelay = axum_server::accept::NoDelayAcceptor::new();
    let served = match tls {
        Some(config) => {
            let config = axum_server::tls_rustls::RustlsConfig::from_config(Arc::new(config));
            let tls = axum_server::tls_rustls::RustlsAcceptor::new(config).acceptor(nodelay);
            axum_server::bind(args.listen)
                .acceptor(tls)
                .handle(handle)
                .serve(app)
                .await
        }
        None => {
            axum_server::bind(args.listen)
                .acceptor(nodelay)
                .handle(handle)
                .serve(app)
                .await
        }
    };
    served.map_err(|e| Failure::Failed(format!("server on {}: {e}", args.listen)))
}
