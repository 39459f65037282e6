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
    /// Let the bootstrap admin token act although the deployment has operators (an
    /// emergency: every use is audited as `operator.break_glass` and logged).
    #[arg(long)]
    pub break_glass: bool,
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
    /// Connections held at once, in all (lowered to fit the open-files limit).
    #[arg(long, default_value_t = 768, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=65536))]
    pub max_connections: u64,
    /// Connections held at once from one source address (IPv6: one /64). Behind a reverse
    /// proxy every client shares its address: raise this to the proxy's pool size.
    #[arg(long, default_value_t = 64, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=65536))]
    pub max_connections_per_source: u64,
    /// Refused credentials one source address may present per minute before its further
    /// attempts get 429 `rate_limited`. Behind a reverse proxy every client shares its
    /// address: raise it with the proxy's client count.
    #[arg(long, default_value_t = custos_core::limits::SOURCE_FAILURES, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub failures_per_source: u32,
    /// Seconds a client has to send a request's head (and to finish a TLS handshake); idle
    /// keep-alive connections are closed after this too.
    #[arg(long, default_value_t = 15, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub header_timeout: u64,
    /// Seconds a client has to send a request body, plus one per --body-min-rate bytes sent.
    #[arg(long, default_value_t = 30, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=86400))]
    pub body_timeout: u64,
    /// Body bytes that earn one more second of --body-timeout (the slowest upload kept up).
    #[arg(long, default_value_t = 1024, value_name = "BYTES", value_parser = clap::value_parser!(u64).range(1..))]
    pub body_min_rate: u64,
}

/// Descriptors kept free for the database, files, the audit log and outbound requests.
const RESERVED_DESCRIPTORS: u64 = 128;

/// The connection limits of `args`, with the total lowered below the open-files limit so that
/// accepting connections can never starve the rest of the process of descriptors.
fn connection_limits(args: &ServeArgs) -> custos_api::server::ConnectionLimits {
    let mut max = args.max_connections;
    if let Some(soft) = rustix::process::getrlimit(rustix::process::Resource::Nofile).current {
        let room = soft.saturating_sub(RESERVED_DESCRIPTORS).max(1);
        if max > room {
            tracing::warn!(
                requested = max,
                open_files_limit = soft,
                using = room,
                "--max-connections lowered to fit the open-files limit (raise it with ulimit -n)"
            );
            max = room;
        }
    }
    custos_api::server::ConnectionLimits {
        max_connections: max as usize,
        max_connections_per_source: args.max_connections_per_source as usize,
        header_read_timeout: std::time::Duration::from_secs(args.header_timeout),
        body_read_timeout: std::time::Duration::from_secs(args.body_timeout),
        body_min_rate: args.body_min_rate,
    }
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
        .with_break_glass(args.break_glass)
        .with_source_failure_limit(args.failures_per_source)
        .with_audit_signer(deployment.signer.clone());
    // Channels whose secrets are missing stop the start, rather than every later delivery.
    let channels =
        custos_core::outbox::Channels::from_policy(custos.policy(), |var| std::env::var(var).ok())
            .map_err(Failure::BadInput)?;
    custos = custos.with_channels(channels);
    // A `[network] ca_file` that cannot be read stops the start, rather than every later
    // identity-provider fetch.
    custos_core::outbound::Outbound::new(
        &custos.policy().network,
        std::time::Duration::from_secs(5),
        std::time::Duration::from_secs(3),
    )
    .map_err(Failure::BadInput)?;
    let custos = Arc::new(custos);
    tokio::spawn(
        custos
            .clone()
            .run_checkpointer(std::time::Duration::from_secs(args.checkpoint_interval)),
    );
    tokio::spawn(custos.clone().run_alerts());
    tokio::spawn(custos.clone().run_outbox());
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
    let app = custos_api::router(custos_api::AppState::new(custos.clone()));
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
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| Failure::Failed(format!("cannot listen on {}: {e}", args.listen)))?;
    println!("Custos listening on {scheme}://{}", args.listen);
    println!("  store:  {}", custos.backend());
    match &source {
        TokenSource::Env => println!("  admin token: from CUSTOS_ADMIN_TOKEN"),
        TokenSource::File(path) => println!("  admin token: {}", path.display()),
    }
    println!("  operators: {}", custos.operator_mode());
    if args.break_glass {
        tracing::warn!("BREAK-GLASS: the bootstrap admin token works although operators exist; every use is audited");
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
    let limits = connection_limits(&args);
    let served =
        custos_api::server::serve(listener, app, limits, tls.map(Arc::new), shutdown_signal())
            .await;
    // Refused credentials of the last second are still in their batch: audit them now.
    custos.flush_auth_failures().await;
    served.map_err(|e| Failure::Failed(format!("server on {}: {e}", args.listen)))
}
