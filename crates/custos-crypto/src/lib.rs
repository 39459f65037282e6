//! Custos key management and encryption.
//!
//! What it is for: the key hierarchy root → org key → subject key, where every key below the
//! root exists only wrapped (encrypted) by the level above; sealing record content with
//! AES-256-GCM under associated data that binds it to its org, record and key; rotation by
//! re-wrapping (content is never re-encrypted); crypto-erasure by destroying a subject or org
//! key; Ed25519 signing for checkpoints and certificates.
//!
//! What it is not: a place where key bytes can escape. [`SecretKey`] has no `Debug` that shows
//! bytes, no `Clone`, no accessor that returns the raw key, and is zeroized on drop. The key
//! store ([`KeyStore`]) is separate from the data store on purpose: a data backup or export never
//! contains key material, so destroying a key reaches every copy of the data. Its implementations
//! live in their own crates (`custos-keystore-sqlite`, `custos-keystore-pg`).

mod aead;
mod error;
mod keyring;
mod keystore;
mod signing;
mod stream;
mod vault;

pub use aead::{KeyRef, RecordAad, SecretKey, WrappedKey};
pub use error::CryptoError;
pub use keyring::{Kms, LocalKms};
pub use keystore::{KeyStore, MergeReport, SubjectKeyRow, Tombstone};
pub use signing::DeploymentSigner;
pub use stream::{BackupKey, BlobDecryptor, BlobEncryptor, BLOB_CHUNK};
pub use vault::{ContentKey, KeyVault, RotationReport, SubjectKeySlot, ORG_KEY_RECHECK};

/// Writes `bytes` to `path` atomically with mode 0600 (temporary file, fsync, rename).
pub fn write_secret_file(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or_else(|| std::path::Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("secret"),
        uuid::Uuid::new_v4()
    ));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}
