//! The archive tier on S3 (moto, started by `tools/s3-stand-in/serve.sh`): the sweep writes
//! archived content in the archive storage class, a restore request reads it back from there,
//! and the purge leaves no object under the deployment's prefix.

mod common;
#[path = "../../../tools/s3-stand-in/stand_in.rs"]
mod stand_in;
#[path = "../../../tools/s3-stand-in/store_options.rs"]
mod store_options;

use bytes::Bytes;
use custos_core::{ActionKind, FileUpload, NewRecord, SweepOptions};
use custos_store::{Objects, DEFAULT_ARCHIVE_STORAGE_CLASS};
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
    let options = s3.options();
    let env = common::env_with(Objects::open_s3_with(BUCKET, PREFIX, &options).unwrap());
    let (custos, clock) = (&env.custos, &env.clock);
    let org = env.org("acme").await;
    let owner = env.member(&org, &["owner"], &[], false).await;
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
