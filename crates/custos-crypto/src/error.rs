//! The one error type of this crate. No variant carries key bytes or plaintext.

/// What went wrong in a cryptographic or key-management operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// A ciphertext did not authenticate: wrong key, wrong associated data, or tampering.
    #[error("ciphertext failed to authenticate (wrong key, moved to another record or org, or modified)")]
    Unauthentic,
    /// The key needed to open this data was destroyed (crypto-erasure).
    #[error("the key for this data was destroyed; the data is erased")]
    KeyDestroyed,
    /// The org has no key: it was never created or it was terminated.
    #[error("no key exists for org {0}")]
    NoOrgKey(String),
    /// A wrapped key refers to a root key version the keyring does not have.
    #[error("root key version {0} is not in the keyring")]
    UnknownRootVersion(u32),
    /// The keyring file or `CUSTOS_ROOT_KEY` is malformed.
    #[error("keyring {source_name} is invalid: {reason}")]
    BadKeyring {
        /// Which file or variable.
        source_name: String,
        /// What is wrong with it (never the key).
        reason: String,
    },
    /// The operation is not possible with this key source.
    #[error("{0}")]
    Unsupported(String),
    /// The key store failed; the store's own error (SQLite's, in `custos-keystore-sqlite`) is
    /// the source. Boxed so this crate does not depend on any store's driver.
    #[error("key store: {0}")]
    Store(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
    /// A key service (a key store or KMS backend) failed; names the operation, never a key.
    #[error("key service: {0}")]
    Service(String),
    /// Reading or writing a key file failed.
    #[error("key file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A stored value does not have the expected shape.
    #[error("malformed key material record: {0}")]
    Malformed(&'static str),
}
