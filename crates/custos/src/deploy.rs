//! Opening a deployment from the global options: policy, store, objects, keys, signer.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use custos_core::{Custos, SystemClock};
use custos_crypto::{DeploymentSigner, KeyStore, KeyVault, Kms, LocalKms};
use custos_keystore_pg::PgKeyStore;
use custos_keystore_sqlite::SqliteKeyStore;
use custos_kms_aws::{AwsKms, AwsKmsConfig};
use custos_policy::Policy;
use custos_store::{ObjectLocation, Objects, PgStore, RegionStores, SqliteStore, Store};

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

/// Where the key store lives.
enum KeyLocation {
    /// The local keyring, key database and signing key file in a 0700 directory.
    Dir(PathBuf),
    /// A PostgreSQL database shared by several instances.
    Postgres(String),
}

fn key_location(global: &Global) -> KeyLocation {
    match &global.keys {
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            KeyLocation::Postgres(url.clone())
        }
        Some(dir) => KeyLocation::Dir(PathBuf::from(dir)),
        None => KeyLocation::Dir(global.data.join("keys")),
    }
}

/// The root KMS: `--kms` when given; else, for a key directory, its keyring (or
/// `CUSTOS_ROOT_KEY`), and for a shared key store `CUSTOS_ROOT_KEY`.
async fn root_kms(global: &Global, location: &KeyLocation) -> Result<Arc<dyn Kms>, Failure> {
    if let Some(kms) = &global.kms {
        let Some(key) = kms.strip_prefix("aws-kms:").filter(|k| !k.is_empty()) else {
            return Err(Failure::BadInput(format!(
                "--kms {kms:?}: expected aws-kms:KEY (a KMS key id, ARN or alias/NAME)"
            )));
        };
        let aws = AwsKms::connect(&AwsKmsConfig::new(key))
            .await
            .map_err(|e| Failure::Failed(format!("--kms: {e}")))?;
        return Ok(Arc::new(aws));
    }
    Ok(match location {
        KeyLocation::Dir(dir) => Arc::new(open_kms(dir)?),
        KeyLocation::Postgres(_) => Arc::new(shared_root()?),
    })
}

/// The root of a shared key store without a KMS: every instance must hold the same root, so
/// it comes from `CUSTOS_ROOT_KEY` (a keyring file would differ per instance).
fn shared_root() -> Result<LocalKms, Failure> {
    let value = std::env::var("CUSTOS_ROOT_KEY").map_err(|_| {
        Failure::BadInput(
            "--keys postgres://...: set CUSTOS_ROOT_KEY (base64 of 32 bytes, the same for \
             every instance) or --kms; a keyring file would give each instance its own root"
                .into(),
        )
    })?;
    LocalKms::from_env_value(&value).map_err(|e| Failure::BadInput(e.to_string()))
}

/// The PostgreSQL key store at `url`, refused when it is the data's own database (a data
/// backup would then carry the keys, and an erasure would not reach it).
async fn pg_key_store(global: &Global, url: &str) -> Result<PgKeyStore, Failure> {
    if global.database.as_deref().map(str::trim) == Some(url.trim()) {
        return Err(Failure::BadInput(
            "--keys names the same database as --database: keys must live in a database that \
             never holds data, so that a data backup never contains them"
                .into(),
        ));
    }
    PgKeyStore::connect(url, None)
        .await
        .map_err(|e| Failure::Failed(format!("--keys: cannot open the key store: {e}")))
}

/// The key vault and the deployment signer from `--keys` and `--kms`.
async fn open_keys(
    global: &Global,
    service: &str,
) -> Result<(KeyVault, DeploymentSigner), Failure> {
    let location = key_location(global);
    if let KeyLocation::Dir(keys) = &location {
        create_private_dir(keys)?;
    }
    let kms = root_kms(global, &location).await?;
    match location {
        KeyLocation::Dir(keys) => {
            let key_store = SqliteKeyStore::open(&keys.join("keys.db"))
                .map_err(|e| Failure::Failed(e.to_string()))?;
            // A local deployment keeps the signing key it always had, in its own file.
            let signer = DeploymentSigner::open_or_create(&keys.join("signing.key"), service)
                .map_err(|e| Failure::Failed(e.to_string()))?;
            Ok((KeyVault::new(kms, Arc::new(key_store)), signer))
        }
        KeyLocation::Postgres(url) => {
            let store = pg_key_store(global, &url).await?;
            let vault = KeyVault::new(kms, Arc::new(store));
            let signer = vault
                .deployment_signer(service)
                .await
                .map_err(|e| Failure::Failed(format!("--keys: signing key: {e}")))?;
            Ok((vault, signer))
        }
    }
}

/// The main database's URL: `--database`, else the SQLite file in the data directory.
pub fn main_database(global: &Global) -> String {
    global
        .database
        .clone()
        .unwrap_or_else(|| format!("sqlite:{}", global.data.join("custos.db").display()))
}

/// Opens the database at `url`; `what` names where the URL came from, for messages (a
/// PostgreSQL URL is never echoed: it may hold a password).
pub async fn open_store(url: &str, what: &str) -> Result<Arc<dyn Store>, Failure> {
    if let Some(path) = url.strip_prefix("sqlite:") {
        let store = SqliteStore::open(Path::new(path))
            .map_err(|e| Failure::Failed(format!("{what} {url}: {e}")))?;
        Ok(Arc::new(store))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let store = PgStore::connect(url, None)
            .await
            .map_err(|e| Failure::Failed(format!("{what}: cannot open PostgreSQL: {e}")))?;
        Ok(Arc::new(store))
    } else {
        Err(Failure::BadInput(format!(
            "{what} {url:?}: expected sqlite:PATH or postgres://..."
        )))
    }
}

/// Opens the object store at `location`; `what` (if any) prefixes messages.
fn open_objects(location: &ObjectLocation, what: Option<&str>) -> Result<Objects, Failure> {
    let text = |e: &custos_store::StoreError| match what {
        Some(w) => format!("{w}: {e}"),
        None => e.to_string(),
    };
    Objects::open(location).map_err(|e| match e {
        // Settings (an archive class, S3 options) are input; anything else is the store.
        custos_store::StoreError::Config(_) => Failure::BadInput(text(&e)),
        e => Failure::Failed(text(&e)),
    })
}

/// The main store, and the stores of each region the policy gives stores of its own.
async fn open_stores(
    global: &Global,
    policy: &Policy,
    main_location: &ObjectLocation,
) -> Result<(Arc<dyn Store>, Vec<RegionStores>), Failure> {
    let main_url = main_database(global);
    let main = open_store(&main_url, "--database").await?;
    if policy.regions.is_empty() {
        return Ok((main, Vec::new()));
    }
    // Residency only holds if no two places share a store.
    let mut databases = vec![(main_url.trim().to_string(), "--database".to_string())];
    let mut objects = vec![(format!("{main_location:?}"), "--objects".to_string())];
    let mut regions = Vec::new();
    for (name, stores) in &policy.regions {
        let what = format!("[regions.{name}]");
        let location = stores
            .objects
            .parse::<ObjectLocation>()
            .map_err(|e| Failure::BadInput(format!("{what} objects: {e}")))?;
        for (seen, place, mine) in [
            (
                &mut databases,
                "database",
                stores.database.trim().to_string(),
            ),
            (&mut objects, "objects", format!("{location:?}")),
        ] {
            if let Some((_, other)) = seen.iter().find(|(url, _)| *url == mine) {
                return Err(Failure::BadInput(format!(
                    "{what} {place} is the same as {other}'s: a region's data must have stores \
                     of its own"
                )));
            }
            seen.push((mine, what.clone()));
        }
        regions.push(RegionStores {
            name: name.clone(),
            store: open_store(&stores.database, &format!("{what} database")).await?,
            objects: open_objects(&location, Some(&format!("{what} objects")))?,
        });
    }
    Ok((main, regions))
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
    let location = match &global.objects {
        Some(url) => url
            .parse::<ObjectLocation>()
            .map_err(|e| Failure::BadInput(e.to_string()))?,
        None => ObjectLocation::File(global.data.join("objects")),
    };
    let objects = open_objects(&location, None)?;
    let (store, regions) = open_stores(global, &policy, &location).await?;
    let (vault, signer) = open_keys(global, &policy.service.name).await?;
    let vault = Arc::new(vault);
    let custos = Custos::new(
        Arc::new(policy),
        store,
        objects,
        vault,
        Arc::new(SystemClock),
    )
    .with_regions(regions);
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
pub async fn open_key_vault(global: &Global) -> Result<KeyVault, Failure> {
    let location = key_location(global);
    let store: Arc<dyn KeyStore> = match &location {
        KeyLocation::Postgres(url) => Arc::new(pg_key_store(global, url).await?),
        KeyLocation::Dir(keys) => {
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
            if global.kms.is_none()
                && std::env::var_os("CUSTOS_ROOT_KEY").is_none()
                && !keys.join("root.keyring").is_file()
            {
                return Err(missing("root keyring"));
            }
            Arc::new(SqliteKeyStore::open(&db).map_err(|e| Failure::Failed(e.to_string()))?)
        }
    };
    Ok(KeyVault::new(root_kms(global, &location).await?, store))
}

/// The verifier key of the deployment that `--data`/`--keys` name, if they name an existing
/// one (its signing key is there); creates nothing. For `cert verify`, which trusts it.
pub async fn existing_verifier_key(global: &Global) -> Result<Option<String>, Failure> {
    let (policy, _) = load_policy(global)?;
    let service = &policy.service.name;
    let signer = match key_location(global) {
        KeyLocation::Dir(keys) => {
            let file = keys.join("signing.key");
            if !file.is_file() {
                return Ok(None);
            }
            DeploymentSigner::open_or_create(&file, service)
                .map_err(|e| Failure::Failed(format!("{}: {e}", file.display())))?
        }
        KeyLocation::Postgres(_) => open_key_vault(global)
            .await?
            .deployment_signer(service)
            .await
            .map_err(|e| Failure::Failed(format!("--keys: signing key: {e}")))?,
    };
    Ok(Some(
        custos_core::AuditSigner::new(Arc::new(signer)).verifier_key(),
    ))
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
