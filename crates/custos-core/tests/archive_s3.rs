//! The archive tier on S3 (moto, started by `tools/s3-stand-in/serve.sh`): the sweep writes
//! archived content in the archive storage class, a restore request reads it back from there,
//! and the purge leaves no object under the deployment's prefix.

#[path = "../../../tools/s3-stand-in/stand_in.rs"]
mod stand_in;

use std::sync::Arc;

use bytes::Bytes;
use custos_core::{
    ActionKind, Caller, Custos, FileUpload, ManualClock, NewMember, NewOrg, NewRecord, Principal,
    SweepOptions,
};
use custos_crypto::{KeyVault, LocalKms, SqliteKeyStore};
use custos_policy::Policy;
use custos_store::{Objects, S3Options, SqliteStore, DEFAULT_ARCHIVE_STORAGE_CLASS};
use futures::StreamExt;
use jiff::ToSpan;
use serde_json::json;

const BUCKET: &str = "custos-archive";
const PREFIX: &str = "deploy-1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archive_on_s3_uses_the_archive_class_and_purge_leaves_nothing() {
    let Some(s3) = stand_in::StandIn::start("archive_on_s3").await else {
        return;
    };
    s3.create_bucket(BUCKET).await;
    let options = S3Options {
        endpoint: Some(s3.endpoint.clone()),
        region: Some(stand_in::REGION.into()),
        allow_http: true,
        access_key_id: Some(stand_in::ACCESS_KEY_ID.into()),
        secret_access_key: Some(stand_in::SECRET_ACCESS_KEY.into()),
        ..S3Options::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("custos.db")).unwrap());
    let objects = Objects::open_s3_with(BUCKET, PREFIX, &options).unwrap();
    let kms = LocalKms::open_or_create(&dir.path().join("keys/root.keyring")).unwrap();
    let keys = SqliteKeyStore::open(&dir.path().join("keys/keys.db")).unwrap();
    let clock = Arc::new(ManualClock::new("2026-01-01T00:00:00Z".parse().unwrap()));
    let custos = Custos::new(
        Arc::new(Policy::builtin()),
        store,
        objects,
        Arc::new(KeyVault::new(Arc::new(kms), Arc::new(keys))),
        clock.clone(),
    );
    let admin = Caller::new(Principal::Admin);
    let org = custos
        .create_org(
            &admin,
            NewOrg {
                name: "acme".into(),
                region: None,
            },
        )
        .await
        .unwrap()
        .id;
    let created = custos
        .add_member(
            &admin,
            &org,
            NewMember {
                name: "owner".into(),
                roles: vec!["owner".into()],
                groups: vec![],
                mfa: false,
            },
        )
        .await
        .unwrap();
    let owner = Caller::new(custos.authenticate(&created.api_key).await.unwrap());
    let message = custos
        .create_record(
            &owner,
            &org,
            NewRecord {
                category: "messages".into(),
                subject: None,
                content: json!({ "text": "archived on S3" }),
                metadata: None,
            },
        )
        .await
        .unwrap();
    let body = vec![9u8; 6 * 1024 * 1024 + 5];
    let file = custos
        .upload_file(
            &owner,
            &org,
            FileUpload {
                category: "files".into(),
                subject: None,
                file_name: Some("big.bin".into()),
                ..Default::default()
            },
            futures::stream::iter([Ok::<_, std::io::Error>(Bytes::from(body.clone()))]),
        )
        .await
        .unwrap();

    clock.advance(91.days());
    let mut actions = Vec::new();
    custos
        .sweep(&SweepOptions::default(), &mut |a| actions.push(a.clone()))
        .await
        .unwrap();
    assert_eq!(actions.len(), 2, "{actions:?}");
    assert!(actions.iter().all(|a| a.action == ActionKind::Archive));
    let under = format!("{PREFIX}/orgs/{org}/");
    let mut keys = s3.keys(BUCKET, &under).await;
    keys.sort();
    let mut expected = vec![
        format!("{under}archive/{}.envelope", file.id),
        format!("{under}archive/{}.blob", file.id),
        format!("{under}archive/{}.envelope", message.id),
    ];
    expected.sort();
    assert_eq!(
        keys, expected,
        "the hot copies are gone and only the archive remains"
    );
    for key in &keys {
        assert_eq!(
            s3.storage_class(BUCKET, key).await.as_deref(),
            Some(DEFAULT_ARCHIVE_STORAGE_CLASS),
            "{key}"
        );
    }

    // An authorized restore request reads both back from the archive class.
    custos
        .request_archive_restore(&owner, &org, &message.id)
        .await
        .unwrap();
    custos
        .request_archive_restore(&owner, &org, &file.id)
        .await
        .unwrap();
    let view = custos.get_record(&owner, &org, &message.id).await.unwrap();
    assert_eq!(view.content, json!({ "text": "archived on S3" }));
    let mut download = custos.download_file(&owner, &org, &file.id).await.unwrap();
    let mut got = Vec::new();
    while let Some(chunk) = download.body.next().await {
        got.extend_from_slice(&chunk.unwrap());
    }
    assert!(got == body, "downloaded file differs");

    // Past retention, the purge removes every object.
    clock.advance(3.years());
    let summary = custos
        .sweep(&SweepOptions::default(), &mut |_| {})
        .await
        .unwrap();
    assert_eq!(summary.purged, 2);
    assert!(s3.keys(BUCKET, &under).await.is_empty());
}
