//! The key hierarchy (`custos_crypto::KeyVault`) over this key store: sealing, rotation,
//! crypto-erasure, and several vaults (instances) sharing one key file.

use std::sync::Arc;
use std::time::Duration;

use custos_crypto::{CryptoError, KeyRef, KeyVault, Kms, LocalKms, RotationReport};
use custos_keystore_sqlite::SqliteKeyStore;

fn vault() -> (tempfile::TempDir, KeyVault) {
    let dir = tempfile::tempdir().unwrap();
    let kms = LocalKms::open_or_create(&dir.path().join("root.keyring")).unwrap();
    let store = SqliteKeyStore::open(&dir.path().join("keys.db")).unwrap();
    (dir, KeyVault::new(Arc::new(kms), Arc::new(store)))
}

#[tokio::test]
async fn ciphertext_moved_to_another_record_or_org_fails_to_open() {
    let (_dir, vault) = vault();
    vault.ensure_org("o1").await.unwrap();
    vault.ensure_org("o2").await.unwrap();
    let k1 = vault.content_key("o1", None).await.unwrap();
    let sealed = k1.seal("o1", "r1", "content", b"secret");
    assert_eq!(k1.open("o1", "r1", "content", &sealed).unwrap(), b"secret");
    // Another record of the same org.
    assert!(k1.open("o1", "r2", "content", &sealed).is_err());
    // The same record id in another org, with that org's key and with ours.
    let k2 = vault.content_key_for("o2", k1.key_ref()).await.unwrap();
    assert!(k2.open("o2", "r1", "content", &sealed).is_err());
    assert!(k1.open("o2", "r1", "content", &sealed).is_err());
    // Another part of the same record.
    assert!(k1.open("o1", "r1", "blob", &sealed).is_err());
}

#[tokio::test]
async fn rotation_rewraps_and_old_content_stays_readable() {
    let (_dir, vault) = vault();
    vault.ensure_org("o").await.unwrap();
    let sref = vault.subject_ref("o", "alice@example.com").await.unwrap();
    let org_level = vault.content_key("o", None).await.unwrap();
    let subject_level = vault.content_key("o", Some(&sref)).await.unwrap();
    let a = org_level.seal("o", "r1", "content", b"org data");
    let b = subject_level.seal("o", "r2", "content", b"subject data");

    let root = vault.rotate_root().await.unwrap();
    assert_eq!(
        root,
        RotationReport {
            new_version: 2,
            rewrapped: 1
        }
    );
    let org = vault.rotate_org("o").await.unwrap();
    assert_eq!(
        org,
        RotationReport {
            new_version: 2,
            rewrapped: 1
        }
    );

    let k = vault
        .content_key_for("o", org_level.key_ref())
        .await
        .unwrap();
    assert_eq!(k.open("o", "r1", "content", &a).unwrap(), b"org data");
    let k = vault
        .content_key_for("o", subject_level.key_ref())
        .await
        .unwrap();
    assert_eq!(k.open("o", "r2", "content", &b).unwrap(), b"subject data");
    // New org-level content uses the new version; the subject ref is stable.
    assert_eq!(
        vault.content_key("o", None).await.unwrap().key_ref(),
        &KeyRef::Org { version: 2 }
    );
    assert_eq!(
        vault.subject_ref("o", "alice@example.com").await.unwrap(),
        sref
    );
}

#[tokio::test]
async fn destroying_a_subject_key_erases_only_that_subject() {
    let (_dir, vault) = vault();
    vault.ensure_org("o").await.unwrap();
    let alice = vault.subject_ref("o", "alice").await.unwrap();
    let bob = vault.subject_ref("o", "bob").await.unwrap();
    let ka = vault.content_key("o", Some(&alice)).await.unwrap();
    let kb = vault.content_key("o", Some(&bob)).await.unwrap();
    let a = ka.seal("o", "r1", "content", b"a");
    let b = kb.seal("o", "r2", "content", b"b");
    assert_eq!(vault.destroy_subject("o", &alice).await.unwrap(), 1);
    assert!(matches!(
        vault.content_key_for("o", ka.key_ref()).await,
        Err(CryptoError::KeyDestroyed)
    ));
    let kb2 = vault.content_key_for("o", kb.key_ref()).await.unwrap();
    assert_eq!(kb2.open("o", "r2", "content", &b).unwrap(), b"b");
    // A new key for the same subject never opens the old data.
    let ka2 = vault.content_key("o", Some(&alice)).await.unwrap();
    assert_ne!(ka2.key_ref(), ka.key_ref());
    assert!(ka2.open("o", "r1", "content", &a).is_err());
}

#[tokio::test]
async fn batch_subject_keys_match_single_lookups() {
    let (_dir, vault) = vault();
    vault.ensure_org("o").await.unwrap();
    let existing = vault.content_key("o", Some("ref-a")).await.unwrap();
    let keys = vault
        .subject_content_keys("o", &["ref-a", "ref-b", "ref-b", "ref-c"])
        .await
        .unwrap();
    assert_eq!(keys.len(), 3);
    assert_eq!(keys["ref-a"].key_ref(), existing.key_ref());
    let sealed = keys["ref-b"].seal("o", "r", "content", b"x");
    let again = vault.content_key("o", Some("ref-b")).await.unwrap();
    assert_eq!(again.key_ref(), keys["ref-b"].key_ref());
    assert_eq!(again.open("o", "r", "content", &sealed).unwrap(), b"x");
}

#[tokio::test]
async fn destroyed_org_cannot_open_anything() {
    let (_dir, vault) = vault();
    vault.ensure_org("o").await.unwrap();
    let k = vault.content_key("o", None).await.unwrap();
    vault.destroy_org("o").await.unwrap();
    assert!(matches!(
        vault.content_key_for("o", k.key_ref()).await,
        Err(CryptoError::KeyDestroyed)
    ));
}

#[tokio::test]
async fn instances_sharing_a_key_store_sign_with_one_key_across_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let kms: Arc<dyn Kms> =
        Arc::new(LocalKms::open_or_create(&dir.path().join("root.keyring")).unwrap());
    let open = || {
        let store = SqliteKeyStore::open(&dir.path().join("keys.db")).unwrap();
        KeyVault::new(kms.clone(), Arc::new(store))
    };
    let (a, b) = (open(), open());
    let first = a.deployment_signer("svc").await.unwrap();
    let second = b.deployment_signer("svc").await.unwrap();
    assert_eq!(first.public_key(), second.public_key());
    a.rotate_root().await.unwrap();
    let after = b.deployment_signer("svc").await.unwrap();
    assert_eq!(after.public_key(), first.public_key());
}

#[tokio::test]
async fn an_org_destroyed_elsewhere_stops_opening_within_the_recheck_bound() {
    let dir = tempfile::tempdir().unwrap();
    let kms: Arc<dyn Kms> =
        Arc::new(LocalKms::open_or_create(&dir.path().join("root.keyring")).unwrap());
    let open = |recheck| {
        let store = SqliteKeyStore::open(&dir.path().join("keys.db")).unwrap();
        KeyVault::new(kms.clone(), Arc::new(store)).with_recheck(recheck)
    };
    let bound = Duration::from_millis(300);
    let (here, there) = (open(bound), open(bound));
    here.ensure_org("o").await.unwrap();
    let key = here.content_key("o", None).await.unwrap();
    let sealed = key.seal("o", "r", "content", b"x");
    let cached = there.content_key_for("o", key.key_ref()).await.unwrap();
    assert_eq!(cached.open("o", "r", "content", &sealed).unwrap(), b"x");
    here.destroy_org("o").await.unwrap();
    // The destroying vault refuses at once; the other within the bound.
    assert!(matches!(
        here.content_key_for("o", key.key_ref()).await,
        Err(CryptoError::KeyDestroyed)
    ));
    tokio::time::sleep(bound + Duration::from_millis(50)).await;
    assert!(matches!(
        there.content_key_for("o", key.key_ref()).await,
        Err(CryptoError::KeyDestroyed)
    ));
    // A vault that rechecks every time refuses at once.
    let strict = open(Duration::ZERO);
    assert!(strict.content_key_for("o", key.key_ref()).await.is_err());
}

#[tokio::test]
async fn a_version_rotated_elsewhere_opens_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let kms: Arc<dyn Kms> =
        Arc::new(LocalKms::open_or_create(&dir.path().join("root.keyring")).unwrap());
    let open = || {
        let store = SqliteKeyStore::open(&dir.path().join("keys.db")).unwrap();
        KeyVault::new(kms.clone(), Arc::new(store)).with_recheck(Duration::from_secs(3600))
    };
    let (here, there) = (open(), open());
    here.ensure_org("o").await.unwrap();
    let sref = here.subject_ref("o", "alice").await.unwrap();
    here.content_key("o", None).await.unwrap(); // caches version 1 here
    there.rotate_org("o").await.unwrap();
    let newer = there.content_key("o", None).await.unwrap();
    assert_eq!(newer.key_ref(), &KeyRef::Org { version: 2 });
    let sealed = newer.seal("o", "r", "content", b"x");
    let opened = here.content_key_for("o", newer.key_ref()).await.unwrap();
    assert_eq!(opened.open("o", "r", "content", &sealed).unwrap(), b"x");
    // Subject keys re-wrapped under version 2 unwrap here too.
    let subject = there.content_key("o", Some(&sref)).await.unwrap();
    here.content_key_for("o", subject.key_ref()).await.unwrap();
}
