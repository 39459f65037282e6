//! The PostgreSQL key store against the same expectations as the SQLite one, and a key
//! hierarchy shared by two vaults (two instances) through it.
//!
//! Needs PostgreSQL (`CUSTOS_TEST_POSTGRES_URL`, default the local test server); skipped with a
//! loud message when it is unreachable, fatal under `CI=true`.

use std::sync::Arc;
use std::time::Duration;

use custos_crypto::{CryptoError, KeyStore, KeyVault, Kms, LocalKms, SubjectKeyRow, WrappedKey};
use custos_keystore_pg::PgKeyStore;
use custos_keystore_sqlite::SqliteKeyStore;

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A store on a fresh schema (dropped by the guard), or `None` after a loud skip message.
async fn pg() -> Option<(PgKeyStore, Schema)> {
    let url = std::env::var("CUSTOS_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_URL.into());
    let schema = format!("keys_{}", uuid::Uuid::new_v4().simple());
    match PgKeyStore::connect(&url, Some(&schema)).await {
        Ok(store) => Some((store, Schema { url, name: schema })),
        Err(e) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("PostgreSQL at {url} unusable ({e}); CI=true makes this fatal")
        }
        Err(e) => {
            eprintln!("\n*** SKIPPED: PostgreSQL at {url} unusable ({e}); set CUSTOS_TEST_POSTGRES_URL, and CI=true to make this fatal ***\n");
            None
        }
    }
}

/// Drops its schema when the test ends.
struct Schema {
    url: String,
    name: String,
}

impl Schema {
    async fn drop(self) {
        PgKeyStore::drop_schema(&self.url, &self.name)
            .await
            .unwrap();
    }

    async fn open(&self) -> PgKeyStore {
        PgKeyStore::connect(&self.url, Some(&self.name))
            .await
            .unwrap()
    }
}

fn w(by: u32, blob: &[u8]) -> WrappedKey {
    WrappedKey {
        wrapped_by: by,
        blob: blob.to_vec(),
    }
}

fn row(id: &str, sref: &str, blob: &[u8]) -> SubjectKeyRow {
    SubjectKeyRow {
        key_id: id.into(),
        subject_ref: sref.into(),
        wrapped: w(1, blob),
    }
}

/// What every key store must do, run on both backends.
async fn contract(s: &dyn KeyStore) {
    s.ping().await.unwrap();
    assert!(s.org_keys("o").await.unwrap().is_empty());
    assert!(s.insert_org_key("o", 1, &w(1, b"k1")).await.unwrap());
    assert!(
        !s.insert_org_key("o", 1, &w(1, b"other")).await.unwrap(),
        "first one wins"
    );
    assert!(s.insert_org_key("o", 2, &w(1, b"k2")).await.unwrap());
    assert_eq!(
        s.org_keys("o").await.unwrap(),
        vec![(1, w(1, b"k1")), (2, w(1, b"k2"))]
    );
    s.rewrap_org_keys("o", &[(1, w(2, b"k1'"))]).await.unwrap();
    assert_eq!(s.org_keys("o").await.unwrap()[0], (1, w(2, b"k1'")));
    assert_eq!(s.orgs().await.unwrap(), vec!["o".to_string()]);

    let stored = s
        .insert_subject_keys("o", &[row("a", "ra", b"A"), row("b", "ra/cat", b"B")])
        .await
        .unwrap();
    assert_eq!(stored.len(), 2);
    // A subject that has a key keeps it.
    let again = s
        .insert_subject_keys("o", &[row("a2", "ra", b"A2")])
        .await
        .unwrap();
    assert_eq!(again[0].key_id, "a");
    assert_eq!(
        s.subject_key_by_id("o", "b").await.unwrap(),
        Some(w(1, b"B"))
    );
    assert_eq!(
        s.subject_keys_for("o", &["ra", "none"])
            .await
            .unwrap()
            .len(),
        1
    );
    let slots = s.subject_key_slots("o", "ra").await.unwrap();
    assert_eq!(
        slots
            .iter()
            .map(|r| r.subject_ref.as_str())
            .collect::<Vec<_>>(),
        vec!["ra", "ra/cat"]
    );
    // A reference that merely starts the same is not a slot of it.
    s.insert_subject_keys("o", &[row("c", "rab", b"C")])
        .await
        .unwrap();
    assert_eq!(s.subject_key_slots("o", "ra").await.unwrap().len(), 2);
    assert_eq!(s.subject_keys("o").await.unwrap().len(), 3);
    let mut moved = s.subject_keys_for("o", &["rab"]).await.unwrap();
    moved[0].wrapped = w(2, b"C'");
    s.rewrap_subject_keys("o", &moved).await.unwrap();
    assert_eq!(
        s.subject_key_by_id("o", "c").await.unwrap(),
        Some(w(2, b"C'"))
    );

    // Destruction is idempotent and counts only what existed.
    let ids = vec!["a".to_string(), "gone".to_string()];
    assert_eq!(s.destroy_subject_keys("o", &ids).await.unwrap(), 1);
    assert_eq!(s.destroy_subject_keys("o", &ids).await.unwrap(), 0);
    assert_eq!(s.subject_key_by_id("o", "a").await.unwrap(), None);
    s.destroy_org("o").await.unwrap();
    assert!(s.org_keys("o").await.unwrap().is_empty());
    assert!(s.subject_keys("o").await.unwrap().is_empty());
    // Each destruction leaves a tombstone (the org's with an empty key id), so a restored
    // older copy of the key store cannot bring the keys back.
    let stones: Vec<(String, String)> = s
        .tombstones()
        .await
        .unwrap()
        .into_iter()
        .map(|t| (t.org, t.key_id))
        .collect();
    let expected: Vec<(String, String)> = ["", "a", "gone"]
        .iter()
        .map(|k| ("o".to_string(), k.to_string()))
        .collect();
    assert_eq!(stones, expected);

    assert_eq!(s.deployment_key("signing").await.unwrap(), None);
    assert_eq!(
        s.insert_deployment_key("signing", &w(1, b"s1"))
            .await
            .unwrap(),
        w(1, b"s1")
    );
    assert_eq!(
        s.insert_deployment_key("signing", &w(1, b"s2"))
            .await
            .unwrap(),
        w(1, b"s1"),
        "the first key stays"
    );
    s.insert_deployment_key("backup", &w(1, b"b1"))
        .await
        .unwrap();
    s.rewrap_deployment_key("signing", &w(2, b"s1'"))
        .await
        .unwrap();
    assert_eq!(
        s.deployment_key("signing").await.unwrap(),
        Some(w(2, b"s1'"))
    );
    assert_eq!(s.deployment_key("backup").await.unwrap(), Some(w(1, b"b1")));
}

#[tokio::test]
async fn both_key_stores_keep_the_same_contract() {
    contract(&SqliteKeyStore::in_memory().unwrap()).await;
    let Some((store, schema)) = pg().await else {
        return;
    };
    contract(&store).await;
    schema.drop().await;
}

#[tokio::test]
async fn two_instances_share_one_hierarchy_and_see_each_others_destruction() {
    let Some((first, schema)) = pg().await else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("custos-kspg-{}", uuid::Uuid::new_v4()));
    let kms: Arc<dyn Kms> = Arc::new(LocalKms::open_or_create(&dir.join("root.keyring")).unwrap());
    let bound = Duration::from_millis(300);
    let a = KeyVault::new(kms.clone(), Arc::new(first)).with_recheck(bound);
    let b = KeyVault::new(kms.clone(), Arc::new(schema.open().await)).with_recheck(bound);

    // One org, written through one instance, read through the other.
    a.ensure_org("o").await.unwrap();
    b.ensure_org("o").await.unwrap();
    let sref = a.subject_ref("o", "alice").await.unwrap();
    assert_eq!(b.subject_ref("o", "alice").await.unwrap(), sref);
    let org_key = a.content_key("o", None).await.unwrap();
    let subject_key = a.content_key("o", Some(&sref)).await.unwrap();
    let by_org = org_key.seal("o", "r1", "content", b"org data");
    let by_subject = subject_key.seal("o", "r2", "content", b"alice's data");
    let opened = b.content_key_for("o", subject_key.key_ref()).await.unwrap();
    assert_eq!(
        opened.open("o", "r2", "content", &by_subject).unwrap(),
        b"alice's data"
    );
    // One signing key for both.
    assert_eq!(
        a.deployment_signer("svc").await.unwrap().public_key(),
        b.deployment_signer("svc").await.unwrap().public_key()
    );

    // An erasure through one instance: the other refuses at once (subject keys are never
    // cached).
    assert_eq!(a.destroy_subject("o", &sref).await.unwrap(), 1);
    assert!(matches!(
        b.content_key_for("o", subject_key.key_ref()).await,
        Err(CryptoError::KeyDestroyed)
    ));
    // A termination: the other refuses within the recheck bound.
    let cached = b.content_key_for("o", org_key.key_ref()).await.unwrap();
    assert_eq!(
        cached.open("o", "r1", "content", &by_org).unwrap(),
        b"org data"
    );
    a.destroy_org("o").await.unwrap();
    tokio::time::sleep(bound + Duration::from_millis(50)).await;
    assert!(matches!(
        b.content_key_for("o", org_key.key_ref()).await,
        Err(CryptoError::KeyDestroyed)
    ));
    std::fs::remove_dir_all(&dir).ok();
    schema.drop().await;
}
