//! The root of the hierarchy: a KMS-shaped trait and the local keyring that implements it.
//!
//! The trait only wraps, unwraps and re-wraps (async, as a network KMS answers): the root key
//! never leaves its implementation, which is the shape of a cloud KMS (encrypt, decrypt and
//! re-encrypt by key id), so a production implementation can call one without the rest of
//! Custos changing.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::{CryptoError, SecretKey, WrappedKey};

/// A key-encryption service holding versioned root keys (the shape of a cloud KMS: the root
/// key never leaves it; a wrapped key is opaque and names the root version that wrapped it).
#[async_trait::async_trait]
pub trait Kms: Send + Sync {
    /// Wraps `key` under the current root version, bound to `aad`.
    async fn wrap(&self, aad: &[u8], key: &SecretKey) -> Result<WrappedKey, CryptoError>;
    /// Unwraps a key wrapped by any version still in the KMS.
    async fn unwrap(&self, aad: &[u8], wrapped: &WrappedKey) -> Result<SecretKey, CryptoError>;
    /// Re-wraps under the current root version inside the KMS (rotation never pulls the key's
    /// plaintext out of it).
    async fn rewrap(&self, aad: &[u8], wrapped: &WrappedKey) -> Result<WrappedKey, CryptoError>;
    /// Adds a new root version and makes it current; older versions stay for unwrapping.
    async fn rotate(&self) -> Result<u32, CryptoError>;
    /// Whether the KMS answers (for readiness); a local keyring always does.
    async fn ping(&self) -> Result<(), CryptoError> {
        Ok(())
    }
}

#[derive(Serialize, Deserialize)]
struct KeyringFile {
    format: u32,
    versions: Vec<KeyringEntry>,
}

#[derive(Serialize, Deserialize)]
struct KeyringEntry {
    version: u32,
    created: String,
    key: String,
}

/// Root keys from a 0600 keyring file (`<keys>/root.keyring`) or from `CUSTOS_ROOT_KEY`.
pub struct LocalKms {
    path: Option<PathBuf>,
    keys: RwLock<Versions>,
    /// The keyring file's modification time when last read, and when that was checked: a
    /// rotation by another process (`custos keys rotate` beside a running `serve`) is
    /// picked up within [`KEYRING_RECHECK`].
    seen: Mutex<(Option<SystemTime>, Instant)>,
}

/// How often a keyring file is checked for versions added by another process.
pub const KEYRING_RECHECK: Duration = Duration::from_secs(1);

impl std::fmt::Debug for LocalKms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalKms")
            .field("path", &self.path)
            .finish()
    }
}

const ENV_SOURCE: &str = "CUSTOS_ROOT_KEY";

impl LocalKms {
    /// Opens the keyring at `path`, creating it (mode 0600) with a fresh root key if absent.
    pub fn open_or_create(path: &Path) -> Result<Self, CryptoError> {
        if !path.exists() {
            let kms = LocalKms {
                path: Some(path.to_path_buf()),
                keys: RwLock::new(vec![(1, SecretKey::generate())]),
                seen: Mutex::new((None, Instant::now())),
            };
            kms.persist()?;
            return Ok(kms);
        }
        let (keys, modified) = read_keyring(path)?;
        Ok(LocalKms {
            path: Some(path.to_path_buf()),
            keys: RwLock::new(keys),
            seen: Mutex::new((modified, Instant::now())),
        })
    }

    /// Reads the keyring again if its file changed since it was last read (checked at most
    /// every [`KEYRING_RECHECK`], or now with `force`). Versions only ever get added, so a
    /// reload keeps every key this process could already use.
    fn refresh(&self, force: bool) -> Result<(), CryptoError> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if !force && seen.1.elapsed() < KEYRING_RECHECK {
            return Ok(());
        }
        seen.1 = Instant::now();
        let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
        if !force && modified == seen.0 {
            return Ok(());
        }
        let (keys, modified) = read_keyring(path)?;
        let mut current = self.keys.write().expect("keyring lock");
        if keys.len() >= current.len() {
            *current = keys;
        }
        seen.0 = modified;
        Ok(())
    }
}

/// Root key versions, oldest first.
type Versions = Vec<(u32, SecretKey)>;

/// The versions of the keyring file at `path`, with its modification time.
fn read_keyring(path: &Path) -> Result<(Versions, Option<SystemTime>), CryptoError> {
    let io = |source| CryptoError::Io {
        path: path.display().to_string(),
        source,
    };
    let modified = std::fs::metadata(path).map_err(io)?.modified().ok();
    let text = std::fs::read_to_string(path).map_err(io)?;
    let bad = |reason: &str| CryptoError::BadKeyring {
        source_name: path.display().to_string(),
        reason: reason.to_string(),
    };
    let file: KeyringFile =
        serde_json::from_str(&text).map_err(|_| bad("not a Custos keyring (JSON expected)"))?;
    if file.format != 1 || file.versions.is_empty() {
        return Err(bad("unsupported format or no key versions"));
    }
    let mut keys = Vec::new();
    for entry in file.versions {
        keys.push((entry.version, decode_key(&entry.key).map_err(bad)?));
    }
    keys.sort_by_key(|(v, _)| *v);
    Ok((keys, modified))
}

impl LocalKms {
    /// A single root key (version 1) from the base64 value of `CUSTOS_ROOT_KEY`.
    pub fn from_env_value(value: &str) -> Result<Self, CryptoError> {
        let key = decode_key(value.trim()).map_err(|reason| CryptoError::BadKeyring {
            source_name: ENV_SOURCE.into(),
            reason: reason.into(),
        })?;
        Ok(LocalKms {
            path: None,
            keys: RwLock::new(vec![(1, key)]),
            seen: Mutex::new((None, Instant::now())),
        })
    }

    fn persist(&self) -> Result<(), CryptoError> {
        let Some(path) = &self.path else {
            return Err(CryptoError::Unsupported(format!(
                "the root key comes from {ENV_SOURCE}; rotate it in your secret manager"
            )));
        };
        let keys = self.keys.read().expect("keyring lock");
        let file = KeyringFile {
            format: 1,
            versions: keys
                .iter()
                .map(|(v, k)| KeyringEntry {
                    version: *v,
                    created: jiff::Timestamp::now().to_string(),
                    key: base64::engine::general_purpose::STANDARD.encode(k.expose()),
                })
                .collect(),
        };
        let mut bytes = serde_json::to_vec_pretty(&file).expect("keyring serializes");
        let result = crate::write_secret_file(path, &bytes).map_err(|source| CryptoError::Io {
            path: path.display().to_string(),
            source,
        });
        zeroize::Zeroize::zeroize(&mut bytes);
        result
    }

    fn aad(version: u32, aad: &[u8]) -> Vec<u8> {
        let mut out = format!("custos/root-wrap/v1\0{version}\0").into_bytes();
        out.extend_from_slice(aad);
        out
    }
}

fn decode_key(text: &str) -> Result<SecretKey, &'static str> {
    let mut bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|_| "key is not base64")?;
    let key = <[u8; 32]>::try_from(bytes.as_slice())
        .map(SecretKey::from_bytes)
        .map_err(|_| "key must be 32 bytes (44 base64 characters)");
    zeroize::Zeroize::zeroize(&mut bytes);
    key
}

impl LocalKms {
    /// The version new wraps use.
    pub fn current_version(&self) -> u32 {
        self.keys
            .read()
            .expect("keyring lock")
            .last()
            .map_or(0, |(v, _)| *v)
    }
}

#[async_trait::async_trait]
impl Kms for LocalKms {
    async fn wrap(&self, aad: &[u8], key: &SecretKey) -> Result<WrappedKey, CryptoError> {
        self.refresh(false)?;
        let keys = self.keys.read().expect("keyring lock");
        let (version, root) = keys.last().expect("keyring is never empty");
        Ok(WrappedKey {
            wrapped_by: *version,
            blob: root.wrap(&Self::aad(*version, aad), key),
        })
    }

    async fn unwrap(&self, aad: &[u8], wrapped: &WrappedKey) -> Result<SecretKey, CryptoError> {
        let known = |v: u32| {
            self.keys
                .read()
                .expect("keyring lock")
                .iter()
                .any(|k| k.0 == v)
        };
        if !known(wrapped.wrapped_by) {
            // Wrapped by a version another process added since this one read the keyring.
            self.refresh(true)?;
        }
        let keys = self.keys.read().expect("keyring lock");
        let (_, root) = keys
            .iter()
            .find(|(v, _)| *v == wrapped.wrapped_by)
            .ok_or(CryptoError::UnknownRootVersion(wrapped.wrapped_by))?;
        root.unwrap_key(&Self::aad(wrapped.wrapped_by, aad), &wrapped.blob)
    }

    async fn rewrap(&self, aad: &[u8], wrapped: &WrappedKey) -> Result<WrappedKey, CryptoError> {
        // In process the unwrapped key never leaves this function (and is wiped on drop).
        let key = self.unwrap(aad, wrapped).await?;
        self.wrap(aad, &key).await
    }

    async fn rotate(&self) -> Result<u32, CryptoError> {
        if self.path.is_none() {
            return Err(CryptoError::Unsupported(format!(
                "the root key comes from {ENV_SOURCE}; rotate it in your secret manager"
            )));
        }
        // Versions another process added first are kept: this one comes after them.
        self.refresh(true)?;
        let next = {
            let mut keys = self.keys.write().expect("keyring lock");
            let next = keys.last().map_or(1, |(v, _)| v + 1);
            keys.push((next, SecretKey::generate()));
            next
        };
        if let Err(e) = self.persist() {
            self.keys.write().expect("keyring lock").pop();
            return Err(e);
        }
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn keyring_is_created_0600_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("root.keyring");
        let kms = LocalKms::open_or_create(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let key = SecretKey::generate();
        let wrapped = kms.wrap(b"ctx", &key).await.unwrap();
        assert_eq!(kms.rotate().await.unwrap(), 2);
        let reopened = LocalKms::open_or_create(&path).unwrap();
        assert_eq!(reopened.current_version(), 2);
        let back = reopened.unwrap(b"ctx", &wrapped).await.unwrap();
        assert_eq!(back.expose(), key.expose());
        assert!(reopened.unwrap(b"other", &wrapped).await.is_err());
    }

    #[tokio::test]
    async fn a_rotation_by_another_process_is_picked_up_without_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("root.keyring");
        let serving = LocalKms::open_or_create(&path).unwrap();
        let cli = LocalKms::open_or_create(&path).unwrap();
        assert_eq!(cli.rotate().await.unwrap(), 2);
        let key = SecretKey::generate();
        let wrapped = cli.wrap(b"ctx", &key).await.unwrap();
        assert_eq!(wrapped.wrapped_by, 2);
        // A key wrapped by the new version opens at once in the other process...
        let back = serving.unwrap(b"ctx", &wrapped).await.unwrap();
        assert_eq!(back.expose(), key.expose());
        // ...and its own new wraps use the new version within the recheck interval.
        std::thread::sleep(KEYRING_RECHECK);
        assert_eq!(serving.wrap(b"ctx", &key).await.unwrap().wrapped_by, 2);
        // Its own rotation comes after the other's, never over it.
        assert_eq!(serving.rotate().await.unwrap(), 3);
        assert_eq!(cli.rotate().await.unwrap(), 4);
        assert!(serving.unwrap(b"ctx", &wrapped).await.is_ok());
    }

    #[tokio::test]
    async fn env_key_is_validated_without_echoing_it() {
        let err = LocalKms::from_env_value("c2VjcmV0")
            .unwrap_err()
            .to_string();
        assert!(err.contains("CUSTOS_ROOT_KEY") && !err.contains("c2VjcmV0"));
        let kms =
            LocalKms::from_env_value(&base64::engine::general_purpose::STANDARD.encode([7u8; 32]))
                .unwrap();
        assert!(kms.rotate().await.is_err());
    }
}
