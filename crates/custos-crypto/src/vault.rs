//! The key hierarchy in use: creates, unwraps, rotates and destroys org and subject keys.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::{
    CryptoError, DeploymentSigner, KeyRef, KeyStore, Kms, RecordAad, SecretKey, SubjectKeyRow,
    WrappedKey,
};

/// What a rotation did, for the CLI's summary and the audit event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotationReport {
    /// The new key version (root or org).
    pub new_version: u32,
    /// How many keys one level down were re-wrapped under it.
    pub rewrapped: usize,
}

/// A live subject key: its id (as records name it in `subject:<id>`) and its slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectKeySlot {
    /// Key id.
    pub key_id: String,
    /// `<subject_ref>` or `<subject_ref>/<category>`.
    pub slot: String,
}

/// How long an org's cached keys are used before the key store is asked again whether they
/// still exist: the bound within which a termination by another instance or process stops
/// this one from opening the org's data.
pub const ORG_KEY_RECHECK: Duration = Duration::from_secs(1);

/// An org's keys as last read: the wrapped rows (to notice a change) and their unwrapping.
struct CachedOrg {
    wrapped: Vec<(u32, WrappedKey)>,
    keys: Vec<(u32, Arc<SecretKey>)>,
    checked: Instant,
}

/// Unwrapped org keys by org id.
type OrgKeyCache = HashMap<String, CachedOrg>;

/// Root KMS + key store, with unwrapped org keys cached in memory.
///
/// Only org keys are cached, and only for [`ORG_KEY_RECHECK`]: after that the key store is
/// read again (one indexed read; the KMS is asked only when the rows changed), so an org
/// destroyed by another instance sharing the key store stops opening here within that bound.
/// Subject keys are unwrapped on each use (one key-store lookup and one 32-byte AES-GCM open),
/// so a destroyed subject key (erasure, by any instance or the CLI) stops opening data at once.
pub struct KeyVault {
    kms: Arc<dyn Kms>,
    store: Arc<dyn KeyStore>,
    org_keys: Mutex<OrgKeyCache>,
    recheck: Duration,
}

impl std::fmt::Debug for KeyVault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyVault")
    }
}

/// The deployment keys the key store may hold: the signing seed and the backup key.
const DEPLOYMENT_KEYS: [&str; 2] = ["signing", "backup"];

/// What a deployment key is bound to when the root wraps it.
fn deployment_key_aad(name: &str) -> Vec<u8> {
    format!("custos/deployment-key/v1\0{name}").into_bytes()
}

fn org_key_aad(org: &str, version: u32) -> Vec<u8> {
    format!("custos/org-key/v1\0{org}\0{version}").into_bytes()
}

fn subject_key_aad(org: &str, key_id: &str) -> Vec<u8> {
    format!("custos/subject-key/v1\0{org}\0{key_id}").into_bytes()
}

impl KeyVault {
    /// A vault over a root KMS and a key store.
    pub fn new(kms: Arc<dyn Kms>, store: Arc<dyn KeyStore>) -> Self {
        KeyVault {
            kms,
            store,
            org_keys: Mutex::new(HashMap::new()),
            recheck: ORG_KEY_RECHECK,
        }
    }

    /// The same vault with another recheck interval (tests: zero reads the store every time).
    pub fn with_recheck(mut self, recheck: Duration) -> Self {
        self.recheck = recheck;
        self
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, OrgKeyCache> {
        self.org_keys.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Loads (and caches) every version of an org's key, oldest first; empty if none.
    async fn load_org(&self, org: &str) -> Result<Vec<(u32, Arc<SecretKey>)>, CryptoError> {
        self.load_org_checked(org, false).await
    }

    /// [`KeyVault::load_org`]; `fresh` reads the store even within the recheck interval (a
    /// version this instance has not seen yet was made by another one).
    async fn load_org_checked(
        &self,
        org: &str,
        fresh: bool,
    ) -> Result<Vec<(u32, Arc<SecretKey>)>, CryptoError> {
        if let Some(c) = self.cache().get(org) {
            if !fresh && c.checked.elapsed() < self.recheck {
                return Ok(c.keys.clone());
            }
        }
        let wrapped = self.store.org_keys(org).await?;
        if wrapped.is_empty() {
            self.cache().remove(org);
            return Ok(Vec::new());
        }
        if let Some(c) = self.cache().get_mut(org) {
            if c.wrapped == wrapped {
                c.checked = Instant::now();
                return Ok(c.keys.clone());
            }
        }
        let mut keys = Vec::with_capacity(wrapped.len());
        for (version, w) in &wrapped {
            let key = self.kms.unwrap(&org_key_aad(org, *version), w).await?;
            keys.push((*version, Arc::new(key)));
        }
        let cached = CachedOrg {
            wrapped,
            keys: keys.clone(),
            checked: Instant::now(),
        };
        self.cache().insert(org.to_string(), cached);
        Ok(keys)
    }

    /// Whether the key store and the KMS answer (for readiness).
    pub async fn ping(&self) -> Result<(), CryptoError> {
        self.store.ping().await?;
        self.kms.ping().await
    }

    /// The deployment's signing key from the key store (created, wrapped by the root, by the
    /// first instance that asks): every instance sharing the key store signs with it.
    pub async fn deployment_signer(&self, name: &str) -> Result<DeploymentSigner, CryptoError> {
        let seed = self.deployment_key("signing").await?;
        Ok(DeploymentSigner::from_seed(name, &seed))
    }

    /// The key backups are sealed under, from the key store (created by the first instance
    /// that asks): a data backup is useless without the key store, which it never contains.
    pub async fn backup_key(&self) -> Result<crate::BackupKey, CryptoError> {
        Ok(crate::BackupKey(self.deployment_key("backup").await?))
    }

    /// A named deployment key, created (wrapped by the root) if the store has none yet.
    async fn deployment_key(&self, name: &str) -> Result<SecretKey, CryptoError> {
        let aad = deployment_key_aad(name);
        let wrapped = match self.store.deployment_key(name).await? {
            Some(w) => w,
            None => {
                let fresh = self.kms.wrap(&aad, &SecretKey::generate()).await?;
                self.store.insert_deployment_key(name, &fresh).await?
            }
        };
        self.kms.unwrap(&aad, &wrapped).await
    }

    /// Creates the org's first key if it has none. Idempotent.
    pub async fn ensure_org(&self, org: &str) -> Result<(), CryptoError> {
        if !self.load_org(org).await?.is_empty() {
            return Ok(());
        }
        let key = SecretKey::generate();
        let wrapped = self.kms.wrap(&org_key_aad(org, 1), &key).await?;
        self.store.insert_org_key(org, 1, &wrapped).await?;
        self.cache().remove(org);
        Ok(())
    }

    async fn current_org_key(&self, org: &str) -> Result<(u32, Arc<SecretKey>), CryptoError> {
        self.load_org(org)
            .await?
            .last()
            .cloned()
            .ok_or_else(|| CryptoError::NoOrgKey(org.to_string()))
    }

    async fn org_key(&self, org: &str, version: u32) -> Result<Arc<SecretKey>, CryptoError> {
        let mut keys = self.load_org(org).await?;
        if !keys.is_empty() && !keys.iter().any(|(v, _)| *v == version) {
            // Rotated by another instance (or the CLI) since this one last looked.
            keys = self.load_org_checked(org, true).await?;
        }
        if keys.is_empty() {
            return Err(CryptoError::KeyDestroyed);
        }
        keys.into_iter()
            .find(|(v, _)| *v == version)
            .map(|(_, k)| k)
            .ok_or(CryptoError::Malformed(
                "record refers to an org key version that does not exist",
            ))
    }

    /// A stable keyed reference for a subject id, so the data store never holds the raw id.
    ///
    /// Keyed by the org's first key version, which rotation keeps, so refs are stable for the
    /// org's life and meaningless once the org's keys are destroyed.
    pub async fn subject_ref(&self, org: &str, subject: &str) -> Result<String, CryptoError> {
        let keys = self.load_org(org).await?;
        let (_, first) = keys
            .first()
            .ok_or_else(|| CryptoError::NoOrgKey(org.to_string()))?;
        Ok(first
            .derive("custos/subject-ref/v1")
            .keyed_digest_hex(subject.as_bytes()))
    }

    /// A per-org key for a named purpose (PII keyed hashing, tokenization), stable for the
    /// org's life.
    pub async fn org_purpose_key(
        &self,
        org: &str,
        purpose: &str,
    ) -> Result<SecretKey, CryptoError> {
        let keys = self.load_org(org).await?;
        let (_, first) = keys
            .first()
            .ok_or_else(|| CryptoError::NoOrgKey(org.to_string()))?;
        Ok(first.derive(purpose))
    }

    /// The key new content of this subject (or, with `None`, of the org) is sealed under.
    async fn key_for_write(
        &self,
        org: &str,
        subject_ref: Option<&str>,
    ) -> Result<(KeyRef, Arc<SecretKey>), CryptoError> {
        let (org_version, org_key) = self.current_org_key(org).await?;
        let Some(subject_ref) = subject_ref else {
            return Ok((
                KeyRef::Org {
                    version: org_version,
                },
                org_key,
            ));
        };
        let key = self
            .subject_content_keys(org, &[subject_ref])
            .await?
            .remove(subject_ref)
            .ok_or(CryptoError::Malformed("subject key missing after insert"))?;
        Ok((key.key_ref, key.key))
    }

    async fn unwrap_subject(
        &self,
        org: &str,
        key_id: &str,
        wrapped: &WrappedKey,
    ) -> Result<SecretKey, CryptoError> {
        let org_key = self.org_key(org, wrapped.wrapped_by).await?;
        org_key.unwrap_key(&subject_key_aad(org, key_id), &wrapped.blob)
    }

    async fn key_for_read(&self, org: &str, key: &KeyRef) -> Result<Arc<SecretKey>, CryptoError> {
        match key {
            KeyRef::Org { version } => self.org_key(org, *version).await,
            KeyRef::Subject { key_id } => {
                let wrapped = self
                    .store
                    .subject_key_by_id(org, key_id)
                    .await?
                    .ok_or(CryptoError::KeyDestroyed)?;
                Ok(Arc::new(self.unwrap_subject(org, key_id, &wrapped).await?))
            }
        }
    }

    /// The content key for new data, to seal one or more parts of one record.
    pub async fn content_key(
        &self,
        org: &str,
        subject_ref: Option<&str>,
    ) -> Result<ContentKey, CryptoError> {
        let (key_ref, key) = self.key_for_write(org, subject_ref).await?;
        Ok(ContentKey { key_ref, key })
    }

    /// Content keys for many subjects at once (creating missing keys in one key-store
    /// transaction), by subject reference.
    pub async fn subject_content_keys(
        &self,
        org: &str,
        subject_refs: &[&str],
    ) -> Result<HashMap<String, ContentKey>, CryptoError> {
        let mut refs: Vec<&str> = subject_refs.to_vec();
        refs.sort_unstable();
        refs.dedup();
        let mut rows = self.store.subject_keys_for(org, &refs).await?;
        if rows.len() < refs.len() {
            let (org_version, org_key) = self.current_org_key(org).await?;
            let missing: Vec<SubjectKeyRow> = refs
                .iter()
                .filter(|r| !rows.iter().any(|row| row.subject_ref == **r))
                .map(|r| {
                    let key_id = uuid::Uuid::new_v4().simple().to_string();
                    let wrapped = WrappedKey {
                        wrapped_by: org_version,
                        blob: org_key.wrap(&subject_key_aad(org, &key_id), &SecretKey::generate()),
                    };
                    SubjectKeyRow {
                        key_id,
                        subject_ref: r.to_string(),
                        wrapped,
                    }
                })
                .collect();
            rows = self
                .store
                .insert_subject_keys(org, &missing)
                .await?
                .into_iter()
                .chain(rows)
                .collect();
        }
        let mut out = HashMap::with_capacity(rows.len());
        for row in rows {
            let key = self.unwrap_subject(org, &row.key_id, &row.wrapped).await?;
            out.insert(
                row.subject_ref,
                ContentKey {
                    key_ref: KeyRef::Subject { key_id: row.key_id },
                    key: Arc::new(key),
                },
            );
        }
        Ok(out)
    }

    /// The content key named by a stored [`KeyRef`], to open existing data.
    pub async fn content_key_for(
        &self,
        org: &str,
        key_ref: &KeyRef,
    ) -> Result<ContentKey, CryptoError> {
        Ok(ContentKey {
            key: self.key_for_read(org, key_ref).await?,
            key_ref: key_ref.clone(),
        })
    }

    /// The key slot that seals one category's records of a subject: erasure destroys slots
    /// one by one, so `delete` categories become unreadable at once while `anonymize` work
    /// still opens its own records, and a legal hold on a category keeps exactly its slot.
    pub fn subject_slot(subject_ref: &str, category: &str) -> String {
        format!("{subject_ref}/{category}")
    }

    /// Every live key of a subject, with the slot (`<ref>` or `<ref>/<category>`) it seals.
    pub async fn subject_keys_of(
        &self,
        org: &str,
        subject_ref: &str,
    ) -> Result<Vec<SubjectKeySlot>, CryptoError> {
        Ok(self
            .store
            .subject_key_slots(org, subject_ref)
            .await?
            .into_iter()
            .map(|row| SubjectKeySlot {
                key_id: row.key_id,
                slot: row.subject_ref,
            })
            .collect())
    }

    /// Destroys subject keys by id: everything sealed under them becomes unreadable
    /// everywhere (every copy of the data), at once. Returns how many existed.
    pub async fn destroy_subject_keys(
        &self,
        org: &str,
        key_ids: &[String],
    ) -> Result<usize, CryptoError> {
        self.store.destroy_subject_keys(org, key_ids).await
    }

    /// Destroys every key of a subject (all its slots).
    pub async fn destroy_subject(
        &self,
        org: &str,
        subject_ref: &str,
    ) -> Result<usize, CryptoError> {
        let ids: Vec<String> = self
            .subject_keys_of(org, subject_ref)
            .await?
            .into_iter()
            .map(|k| k.key_id)
            .collect();
        self.destroy_subject_keys(org, &ids).await
    }

    /// Destroys every key of an org (termination).
    pub async fn destroy_org(&self, org: &str) -> Result<(), CryptoError> {
        self.cache().remove(org);
        self.store.destroy_org(org).await
    }

    /// Adds a root key version and re-wraps every org key under it. Content is untouched.
    pub async fn rotate_root(&self) -> Result<RotationReport, CryptoError> {
        let new_version = self.kms.rotate().await?;
        let mut rewrapped = 0;
        for org in self.store.orgs().await? {
            let mut rows = Vec::new();
            for (version, wrapped) in self.store.org_keys(&org).await? {
                let aad = org_key_aad(&org, version);
                rows.push((version, self.kms.rewrap(&aad, &wrapped).await?));
            }
            rewrapped += rows.len();
            self.store.rewrap_org_keys(&org, &rows).await?;
        }
        for name in DEPLOYMENT_KEYS {
            if let Some(key) = self.store.deployment_key(name).await? {
                let rewrapped = self.kms.rewrap(&deployment_key_aad(name), &key).await?;
                self.store.rewrap_deployment_key(name, &rewrapped).await?;
            }
        }
        Ok(RotationReport {
            new_version,
            rewrapped,
        })
    }

    /// Adds a new version of an org's key and re-wraps the org's subject keys under it.
    ///
    /// Older org key versions are kept (wrapped) so content sealed directly under them stays
    /// readable; new org-level content uses the new version.
    pub async fn rotate_org(&self, org: &str) -> Result<RotationReport, CryptoError> {
        let (current, _) = self.current_org_key(org).await?;
        let new_version = current + 1;
        let new_key = SecretKey::generate();
        let wrapped = self
            .kms
            .wrap(&org_key_aad(org, new_version), &new_key)
            .await?;
        if !self
            .store
            .insert_org_key(org, new_version, &wrapped)
            .await?
        {
            return Err(CryptoError::Unsupported(format!(
                "org key version {new_version} already exists (concurrent rotation?)"
            )));
        }
        self.cache().remove(org);
        let mut rows = Vec::new();
        for mut row in self.store.subject_keys(org).await? {
            let key = self.unwrap_subject(org, &row.key_id, &row.wrapped).await?;
            row.wrapped = WrappedKey {
                wrapped_by: new_version,
                blob: new_key.wrap(&subject_key_aad(org, &row.key_id), &key),
            };
            rows.push(row);
        }
        self.store.rewrap_subject_keys(org, &rows).await?;
        Ok(RotationReport {
            new_version,
            rewrapped: rows.len(),
        })
    }
}

thread_local! {
    /// [`ContentKey::seal_json`]'s plaintext buffer: empty and wiped between uses.
    static PLAINTEXT: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Beyond this a plaintext buffer is dropped after use rather than kept for the next value.
const KEEP_PLAINTEXT_BUFFER_UP_TO: usize = 1 << 20;

/// An unwrapped content key together with the reference stored beside its ciphertexts.
#[derive(Clone)]
pub struct ContentKey {
    key_ref: KeyRef,
    key: Arc<SecretKey>,
}

impl std::fmt::Debug for ContentKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ContentKey({})", self.key_ref)
    }
}

impl ContentKey {
    /// The reference to store beside the ciphertext.
    pub fn key_ref(&self) -> &KeyRef {
        &self.key_ref
    }

    /// Seals one part of a record, bound to org, record id, this key and the part name.
    pub fn seal(&self, org: &str, record: &str, part: &str, plaintext: &[u8]) -> Vec<u8> {
        let aad = RecordAad {
            org,
            record,
            key: &self.key_ref,
            part,
        };
        self.key.seal(&aad.to_bytes(), plaintext)
    }

    /// Seals the JSON encoding of `value` as one part of a record, like [`ContentKey::seal`].
    /// The plaintext is written into a per-thread buffer that is reused, so sealing a record
    /// does not grow a fresh buffer each time, and wiped after each use.
    pub fn seal_json<T: serde::Serialize + ?Sized>(
        &self,
        org: &str,
        record: &str,
        part: &str,
        value: &T,
    ) -> Result<Vec<u8>, CryptoError> {
        fn wipe(plaintext: &mut Vec<u8>) {
            zeroize::Zeroize::zeroize(plaintext.as_mut_slice());
            plaintext.clear();
            if plaintext.capacity() > KEEP_PLAINTEXT_BUFFER_UP_TO {
                *plaintext = Vec::new();
            }
        }
        PLAINTEXT.with_borrow_mut(|plaintext| {
            // Empty unless a `Serialize` impl panicked here before: its bytes must neither
            // linger nor end up in front of this value.
            wipe(plaintext);
            let written = serde_json::to_writer(&mut *plaintext, value);
            let sealed = written.map(|()| self.seal(org, record, part, plaintext));
            wipe(plaintext);
            sealed.map_err(|_| CryptoError::Malformed("value cannot be encoded as JSON"))
        })
    }

    /// Opens one part of a record sealed by [`ContentKey::seal`].
    pub fn open(
        &self,
        org: &str,
        record: &str,
        part: &str,
        sealed: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        let aad = RecordAad {
            org,
            record,
            key: &self.key_ref,
            part,
        };
        self.key.open(&aad.to_bytes(), sealed)
    }

    /// A streaming encryptor for a blob of this record.
    pub fn blob_encryptor(&self, org: &str, record: &str) -> crate::BlobEncryptor {
        let aad = RecordAad {
            org,
            record,
            key: &self.key_ref,
            part: "blob",
        };
        crate::BlobEncryptor::new(&self.key, aad.to_bytes())
    }

    /// A streaming decryptor for a blob of this record.
    pub fn blob_decryptor(&self, org: &str, record: &str) -> crate::BlobDecryptor {
        let aad = RecordAad {
            org,
            record,
            key: &self.key_ref,
            part: "blob",
        };
        crate::BlobDecryptor::new(&self.key, aad.to_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_json_seals_the_json_encoding_and_reuses_a_wiped_buffer() {
        // The buffer is this module's; any content key shows it (no key store needed).
        let key = ContentKey {
            key_ref: KeyRef::Org { version: 1 },
            key: Arc::new(SecretKey::generate()),
        };
        let big = serde_json::json!({ "note": "x".repeat(3000), "n": 1 });
        let small = serde_json::json!({ "a": [1, "two", null] });
        for value in [&big, &small, &big] {
            let sealed = key.seal_json("o", "r1", "envelope", value).unwrap();
            let plain = key.open("o", "r1", "envelope", &sealed).unwrap();
            assert_eq!(plain, serde_json::to_vec(value).unwrap());
        }
        // A value whose serialization panics part way leaves nothing for the next one.
        struct Panics;
        impl serde::Serialize for Panics {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                use serde::ser::SerializeMap;
                let mut map = s.serialize_map(None)?;
                map.serialize_entry("leaked", "secret")?;
                panic!("serializer bug");
            }
        }
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            key.seal_json("o", "r1", "envelope", &Panics)
        }));
        assert!(caught.is_err());
        let sealed = key.seal_json("o", "r1", "envelope", &small).unwrap();
        let plain = key.open("o", "r1", "envelope", &sealed).unwrap();
        assert_eq!(plain, serde_json::to_vec(&small).unwrap());
        // A map with non-string keys has no JSON encoding: an error, not a panic.
        let bad: std::collections::HashMap<Vec<u8>, u8> = [(vec![1], 1)].into();
        assert!(key.seal_json("o", "r1", "envelope", &bad).is_err());
        // Between uses the buffer is empty, and a large one is not kept.
        PLAINTEXT.with_borrow(|b| assert!(b.is_empty() && b.capacity() >= 3000));
        let huge = serde_json::json!({ "note": "y".repeat(KEEP_PLAINTEXT_BUFFER_UP_TO + 1) });
        key.seal_json("o", "r2", "envelope", &huge).unwrap();
        PLAINTEXT.with_borrow(|b| assert_eq!(b.capacity(), 0));
    }
}
