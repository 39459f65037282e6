//! Shared set-up of the core integration tests: a deployment on a real SQLite store, local
//! object store and key store, with a manual clock.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use custos_core::{Caller, Custos, ManualClock, NewMember, NewOrg, Principal};
use custos_crypto::{KeyVault, LocalKms};
use custos_keystore_sqlite::SqliteKeyStore;
use custos_policy::Policy;
use custos_store::prelude::*;
use custos_store::{ObjectLocation, Objects, SqliteStore};

pub struct Env {
    pub dir: tempfile::TempDir,
    pub custos: Custos,
    pub clock: Arc<ManualClock>,
    pub store: Arc<SqliteStore>,
    /// The deployment's key vault (the core does not hand its own out).
    pub vault: Arc<KeyVault>,
    /// Each org's first owner's API key, by org id.
    owners: std::sync::Mutex<std::collections::HashMap<String, String>>,
}

pub fn env() -> Env {
    env_with_policy(Policy::builtin())
}

/// The same deployment under `policy` instead of the built-in one.
pub fn env_with_policy(policy: Policy) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let objects = Objects::open(&ObjectLocation::File(dir.path().join("data/objects"))).unwrap();
    env_in(dir, objects, policy)
}

/// The same deployment with blobs and the archive tier in `objects` (e.g. on S3).
pub fn env_with(objects: Objects) -> Env {
    env_in(tempfile::tempdir().unwrap(), objects, Policy::builtin())
}

fn env_in(dir: tempfile::TempDir, objects: Objects, policy: Policy) -> Env {
    let data = dir.path().join("data");
    let store = Arc::new(SqliteStore::open(&data.join("custos.db")).unwrap());
    let kms = LocalKms::open_or_create(&data.join("keys/root.keyring")).unwrap();
    let keys = SqliteKeyStore::open(&data.join("keys/keys.db")).unwrap();
    let vault = Arc::new(KeyVault::new(Arc::new(kms), Arc::new(keys)));
    let clock = Arc::new(ManualClock::new("2026-01-01T00:00:00Z".parse().unwrap()));
    let custos = Custos::new(
        Arc::new(policy),
        store.clone(),
        objects,
        vault.clone(),
        clock.clone(),
    )
    .with_audit_signer(signer(&data));
    Env {
        owners: Default::default(),
        dir,
        custos,
        clock,
        store,
        vault,
    }
}

/// The deployment's signing key, kept under `data/keys` like `custos serve` keeps it.
pub fn signer(data: &Path) -> Arc<custos_crypto::DeploymentSigner> {
    Arc::new(
        custos_crypto::DeploymentSigner::open_or_create(
            &data.join("keys/signing.key"),
            "custos.test",
        )
        .unwrap(),
    )
}

pub fn admin() -> Caller {
    Caller::new(Principal::Admin)
}

impl Env {
    /// A new org, created by the operator with its first owner (see [`Env::owner`]).
    pub async fn org(&self, name: &str) -> String {
        let created = self
            .custos
            .create_org(
                &admin(),
                NewOrg {
                    name: name.into(),
                    region: None,
                    owner: Some(custos_core::NewOwner {
                        name: "Olive".into(),
                    }),
                },
            )
            .await
            .unwrap();
        let key = created.owner.as_ref().unwrap().api_key.clone();
        let id = created.org.id.clone();
        self.owners.lock().unwrap().insert(id.clone(), key);
        id
    }

    /// The first owner of `org` (every role), by its API key.
    pub async fn owner(&self, org: &str) -> Caller {
        let key = self.owners.lock().unwrap()[org].clone();
        Caller::new(self.custos.authenticate(&key).await.unwrap())
    }

    /// A member of `org`; with `mfa`, authenticated through a TOTP session (a second factor),
    /// else by its API key alone.
    pub async fn member(&self, org: &str, roles: &[&str], groups: &[&str], mfa: bool) -> Caller {
        let created = self
            .custos
            .add_member(
                &self.owner(org).await,
                org,
                NewMember {
                    name: "m".into(),
                    roles: roles.iter().map(|r| r.to_string()).collect(),
                    groups: groups.iter().map(|g| g.to_string()).collect(),
                    mfa: false,
                    identity: None,
                },
            )
            .await
            .unwrap();
        let caller = Caller::new(self.custos.authenticate(&created.api_key).await.unwrap());
        if !mfa {
            return caller;
        }
        let token = mfa_session(&self.custos, &caller, org).await;
        Caller::new(self.custos.authenticate(&token).await.unwrap())
    }

    /// A second `Custos` over the same store, keys and objects (a restarted process), with
    /// `configure` applied (e.g. a fault hook).
    pub fn reopen(&self, configure: impl FnOnce(Custos) -> Custos) -> Custos {
        let data = self.dir.path().join("data");
        let objects = Objects::open(&ObjectLocation::File(data.join("objects"))).unwrap();
        configure(
            Custos::new(
                Arc::new(Policy::builtin()),
                self.store.clone(),
                objects,
                self.vault.clone(),
                self.clock.clone(),
            )
            .with_audit_signer(signer(&data)),
        )
    }

    pub async fn audit_size(&self) -> u64 {
        self.store.audit_size().await.unwrap()
    }
}

/// Every file under `dir`, recursively, as bytes.
pub fn files_under(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push((path.clone(), std::fs::read(&path).unwrap()));
        }
    }
    out
}

pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Enrolls `caller`'s TOTP factor and opens a session with the current code; returns the
/// session token.
pub async fn mfa_session(custos: &Custos, caller: &Caller, org: &str) -> String {
    let enrolled = custos
        .enroll_totp(caller, org, Default::default())
        .await
        .unwrap();
    let code = totp_code(&enrolled.secret, custos.now().as_second() as u64);
    custos
        .open_session(caller, org, custos_core::NewSession { totp: code })
        .await
        .unwrap()
        .token
}

/// The RFC 6238 code of a base32 secret at unix time `at`.
pub fn totp_code(secret: &str, at: u64) -> String {
    totp_rs::Builder::new()
        .with_digits(6)
        .with_step_duration(30)
        .with_secret(totp_rs::Secret::try_from_base32(secret).unwrap())
        .build()
        .unwrap()
        .generate(at)
        .to_string()
}
