//! Where wrapped org and subject keys live: the [`KeyStore`] trait and the rows it moves.
//!
//! The key store is deliberately not the data store: backups and exports of the data never
//! carry keys, so destroying a key there erases the data in every copy. Destroying a key
//! leaves a tombstone (org, key id, time) so that an older copy of the store merged back later
//! cannot bring the key back. The implementations live in their own crates
//! (`custos-keystore-sqlite`, `custos-keystore-pg`).

use crate::{CryptoError, WrappedKey};

/// One subject key as stored: its id and its wrapping.
#[derive(Debug, Clone)]
pub struct SubjectKeyRow {
    /// Fresh random id per key; records reference it.
    pub key_id: String,
    /// The subject reference (a keyed digest of the subject id, never the id itself).
    pub subject_ref: String,
    /// The key wrapped by an org key version.
    pub wrapped: WrappedKey,
}

/// What a destroyed key leaves behind: which key, and when it went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tombstone {
    /// The org of the key.
    pub org: String,
    /// The subject key's id; empty when every key of the org was destroyed.
    pub key_id: String,
    /// When it was destroyed (Unix seconds).
    pub destroyed_at: i64,
}

/// What merging a key-store backup into a key store did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MergeReport {
    /// Org key versions brought back (missing here, not destroyed).
    pub org_keys: usize,
    /// Subject keys brought back.
    pub subject_keys: usize,
    /// Deployment keys brought back.
    pub deployment_keys: usize,
    /// Keys in the backup that stayed out because a tombstone says they were destroyed.
    pub refused_destroyed: usize,
}

/// Persistence of wrapped keys. Implementations never see an unwrapped key.
#[async_trait::async_trait]
pub trait KeyStore: Send + Sync {
    /// All versions of an org's key, oldest first.
    async fn org_keys(&self, org: &str) -> Result<Vec<(u32, WrappedKey)>, CryptoError>;
    /// Stores a new org key version; returns false if that version already exists.
    async fn insert_org_key(
        &self,
        org: &str,
        version: u32,
        key: &WrappedKey,
    ) -> Result<bool, CryptoError>;
    /// Replaces the wrapping of existing org key versions (root rotation), all or nothing.
    async fn rewrap_org_keys(
        &self,
        org: &str,
        keys: &[(u32, WrappedKey)],
    ) -> Result<(), CryptoError>;
    /// Every org that has keys.
    async fn orgs(&self) -> Result<Vec<String>, CryptoError>;
    /// A subject key by id, if it still exists.
    async fn subject_key_by_id(
        &self,
        org: &str,
        key_id: &str,
    ) -> Result<Option<WrappedKey>, CryptoError>;
    /// The live keys of many subjects at once (those that have one).
    async fn subject_keys_for(
        &self,
        org: &str,
        subject_refs: &[&str],
    ) -> Result<Vec<SubjectKeyRow>, CryptoError>;
    /// Stores many subject keys in one transaction, skipping subjects that already have one;
    /// returns the live rows of all of them.
    async fn insert_subject_keys(
        &self,
        org: &str,
        rows: &[SubjectKeyRow],
    ) -> Result<Vec<SubjectKeyRow>, CryptoError>;
    /// All subject keys of an org (for re-wrapping after org key rotation).
    async fn subject_keys(&self, org: &str) -> Result<Vec<SubjectKeyRow>, CryptoError>;
    /// Replaces the wrapping of subject keys, all or nothing.
    async fn rewrap_subject_keys(
        &self,
        org: &str,
        rows: &[SubjectKeyRow],
    ) -> Result<(), CryptoError>;
    /// Every key of a subject: the one named by its reference itself and those of its slots
    /// (`<subject_ref>/<slot>`).
    async fn subject_key_slots(
        &self,
        org: &str,
        subject_ref: &str,
    ) -> Result<Vec<SubjectKeyRow>, CryptoError>;
    /// Destroys subject keys by id in one transaction; returns how many were destroyed (keys
    /// already gone are skipped, so a retried erasure is harmless).
    async fn destroy_subject_keys(
        &self,
        org: &str,
        key_ids: &[String],
    ) -> Result<usize, CryptoError>;
    /// Destroys every key of an org.
    async fn destroy_org(&self, org: &str) -> Result<(), CryptoError>;
    /// The tombstones destroying keys left (`key_id` empty: the whole org), so that a
    /// key-store backup restored later cannot bring a destroyed key back.
    async fn tombstones(&self) -> Result<Vec<Tombstone>, CryptoError>;
    /// A deployment key (`signing`, `backup`), wrapped by the root, if one is stored.
    async fn deployment_key(&self, name: &str) -> Result<Option<WrappedKey>, CryptoError>;
    /// Stores a wrapped deployment key unless one of that name exists, and returns the one
    /// stored: the first instance to need it creates it, every other uses it.
    async fn insert_deployment_key(
        &self,
        name: &str,
        key: &WrappedKey,
    ) -> Result<WrappedKey, CryptoError>;
    /// Replaces a deployment key's wrapping (root rotation).
    async fn rewrap_deployment_key(&self, name: &str, key: &WrappedKey) -> Result<(), CryptoError>;
    /// Whether the store answers (for readiness).
    async fn ping(&self) -> Result<(), CryptoError>;
}
