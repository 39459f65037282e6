//! Opening a deployment from the global options: policy, store, objects, keys, signer.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use custos_core::{Custos, SystemClock};
use custos_crypto::{DeploymentSigner, KeyVault, LocalKms, SqliteKeyStore};
use custos_policy::Policy;
use custos_store::{ObjectLocation, Objects, PgStore, SqliteStore, Store};

use crate::cli::Global;
use crate::Failure;

/// Where the policy came from, for messages.
pub enum PolicySource {
    /// A file.
    File(PathBuf),
    /// The built-in default policy.
    Builtin,
}

/// Loads `--config`, else `./custos.toml` if present, else the built-in policy.
pub fn load_policy(global: &Global) -> Result<(Policy, PolicySource), Failure> {
    let path = match &global.config {
        Some(p) => Some(p.clone()),
        None => Some(PathBuf::from("custos.toml")).filter(|p| p.exists()),
    };
    match path {
        Some(path) => Policy::load(&path)
            .map(|p| (p, PolicySource::File(path.clone())))
            .map_err(|e| Failure::BadInput(e.to_string())),
        None => Ok((Policy::builtin(), PolicySource::Builtin)),
    }
}

/// An opened deployment.
pub struct Deployment {
    /// The services.
    pub custos: Arc<Custos>,
    /// The deployment's signing key.
    #[allow(dead_code)]
    pub signer: Arc<DeploymentSigner>,
    /// The data directory.
    pub data_dir: PathBuf,
}

fn keys_dir(global: &Global) -> PathBuf {
    global
        .keys
        .clone()
        .unwrap_or_else(|| global.data.join("keys"))
}

async fn open_store(global: &Global) -> Result<Arc<dyn Store>, Failure> {
    let url = global
        .database
        .clone()
        .unwrap_or_else(|| format!("sqlite:{}", global.data.join("custos.db").display()));
    if let Some(path) = url.strip_prefix("sqlite:") {
        let store = SqliteStore::open(Path::new(path))
            .map_err(|e| Failure::Failed(format!("--database {url}: {e}")))?;
        Ok(Arc::new(store))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let store = PgStore::connect(&url, None)
            .await
            .map_err(|e| Failure::Failed(format!("--database: cannot open PostgreSQL: {e}")))?;
        Ok(Arc::new(store))
    } else {
        Err(Failure::BadInput(format!(
            "--database {url:?}: expected sqlite:PATH or postgres://..."
        )))
    }
}

/// Opens (creating on first use) everything a command needs.
pub async fn open(global: &Global) -> Result<Deployment, Failure> {
    let (policy, _) = load_policy(global)?;
    std::fs::create_dir_all(&global.data).map_err(|e| {
        Failure::Failed(format!(
            "cannot create data dir {}: {e}",
            global.data.display()
        ))
    })?;
    let store = open_store(global).await?;
    let location = match &global.objects {
        Some(url) => url
            .parse::<ObjectLocation>()
            .map_err(|e| Failure::BadInput(e.to_string()))?,
        None => ObjectLocation::File(global.data.join("objects")),
    };
    let objects = Objects::open(&location).map_err(|e| match e {
        // Settings (an archive class, S3 options) are input; anything else is the store.
        custos_store::StoreError::Config(_) => Failure::BadInput(e.to_string()),
        e => Failure::Failed(e.to_string()),
    })?;
    let keys = keys_dir(global);
    create_private_dir(&keys)?;
    let kms = open_kms(&keys)?;
    let key_store =
        SqliteKeyStore::open(&keys.join("keys.db")).map_err(|e| Failure::Failed(e.to_string()))?;
    let signer = DeploymentSigner::open_or_create(&keys.join("signing.key"), &policy.service.name)
        .map_err(|e| Failure::Failed(e.to_string()))?;
    let vault = Arc::new(KeyVault::new(Arc::new(kms), Arc::new(key_store)));
    let custos = Custos::new(
        Arc::new(policy),
        store,
        objects,
        vault,
        Arc::new(SystemClock),
    );
    Ok(Deployment {
        custos: Arc::new(custos),
        signer: Arc::new(signer),
        data_dir: global.data.clone(),
    })
}

/// The root KMS: `CUSTOS_ROOT_KEY` if set, else the keyring in the keys directory.
fn open_kms(keys: &Path) -> Result<LocalKms, Failure> {
    match std::env::var("CUSTOS_ROOT_KEY") {
        Ok(value) => LocalKms::from_env_value(&value),
        Err(_) => LocalKms::open_or_create(&keys.join("root.keyring")),
    }
    .map_err(|e| Failure::Failed(e.to_string()))
}

/// Opens an existing deployment's key vault alone (no store, no objects) and creates nothing:
/// for offline commands that need keyed references, such as `cert verify --subject`.
pub fn open_key_vault(global: &Global) -> Result<KeyVault, Failure> {
    let keys = keys_dir(global);
    let missing = |what: &str| {
        Failure::BadInput(format!(
            "no {what} in {} (set --data or --keys to the deployment's)",
            keys.display()
        ))
    };
    let db = keys.join("keys.db");
    if !db.is_file() {
        return Err(missing("key store"));
    }
    if std::env::var_os("CUSTOS_ROOT_KEY").is_none() && !keys.join("root.keyring").is_file() {
        return Err(missing("root keyring"));
    }
    let kms = open_kms(&keys)?;
    let key_store = SqliteKeyStore::open(&db).map_err(|e| Failure::Failed(e.to_string()))?;
    Ok(KeyVault::new(Arc::new(kms), Arc::new(key_store)))
}

/// Creates a directory readable only by its owner.
pub fn create_private_dir(dir: &Path) -> Result<(), Failure> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Failure::Failed(format!("cannot create {}: {e}", dir.display())))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| Failure::Failed(format!("cannot restrict {}: {e}", dir.display())))?;
    }
    Ok(())
}
