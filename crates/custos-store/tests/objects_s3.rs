//! The S3 object store against a real S3-compatible server (moto, started per test by
//! `tools/s3-stand-in/serve.sh`): multipart streaming, prefixes, idempotent deletes and the
//! archive storage class.

#[path = "../../../tools/s3-stand-in/stand_in.rs"]
mod stand_in;
#[path = "../../../tools/s3-stand-in/store_options.rs"]
mod store_options;

use custos_store::{Objects, S3Options, DEFAULT_ARCHIVE_STORAGE_CLASS};
use futures::StreamExt;
use stand_in::StandIn;

const BUCKET: &str = "custos-test";

/// 12 MiB: three parts of the 5 MiB multipart size, the last one short.
const LARGE: usize = 12 * 1024 * 1024;

/// A stand-in with an empty bucket; `None` when the test is skipped.
async fn stand_in(test: &str) -> Option<StandIn> {
    let s3 = StandIn::start(test).await?;
    s3.create_bucket(BUCKET).await;
    Some(s3)
}

/// Bytes that differ from one position to the next, so a misplaced part would show.
fn pattern(len: usize) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect()
}

async fn read_all(objects: &Objects, key: &str) -> Vec<u8> {
    let mut stream = objects.reader(key).await.unwrap();
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk.unwrap());
    }
    out
}

/// Writes `data` the way uploads do: through a streaming writer, in uneven pieces.
async fn write_streaming(objects: &Objects, key: &str, data: &[u8]) {
    let mut writer = objects.writer(key).await.unwrap();
    for piece in data.chunks(1024 * 1024 + 17) {
        writer.write(piece).await.unwrap();
    }
    assert_eq!(writer.finish().await.unwrap(), data.len() as u64);
}

#[tokio::test]
async fn a_large_object_streams_up_in_parts_and_reads_back_identical() {
    let Some(s3) = stand_in("a_large_object_streams_up_in_parts_and_reads_back_identical").await
    else {
        return;
    };
    let objects = Objects::open_s3_with(BUCKET, "tenant", &s3.options()).unwrap();
    let data = pattern(LARGE);
    write_streaming(&objects, "orgs/o1/blobs/r1", &data).await;
    assert!(read_all(&objects, "orgs/o1/blobs/r1").await == data);
    // The prefix is part of the key on the server.
    assert_eq!(s3.get(BUCKET, "tenant/orgs/o1/blobs/r1").await.len(), LARGE);
}

#[tokio::test]
async fn an_aborted_write_leaves_no_object() {
    let Some(s3) = stand_in("an_aborted_write_leaves_no_object").await else {
        return;
    };
    let objects = Objects::open_s3_with(BUCKET, "", &s3.options()).unwrap();
    let mut writer = objects.writer("half").await.unwrap();
    writer.write(&pattern(6 * 1024 * 1024)).await.unwrap();
    writer.abort().await.unwrap();
    assert!(!objects.exists("half").await.unwrap());
}

#[tokio::test]
async fn put_exists_and_delete_and_deleting_twice_is_fine() {
    let Some(s3) = stand_in("put_exists_and_delete_and_deleting_twice_is_fine").await else {
        return;
    };
    let objects = Objects::open_s3_with(BUCKET, "p", &s3.options()).unwrap();
    assert!(!objects.exists("k").await.unwrap());
    objects.put("k", b"first".to_vec()).await.unwrap();
    objects.put("k", b"second".to_vec()).await.unwrap();
    assert!(objects.exists("k").await.unwrap());
    assert_eq!(read_all(&objects, "k").await, b"second");
    assert_eq!(
        objects.read_small("k").await.unwrap().as_deref(),
        Some(&b"second"[..])
    );
    objects.delete("k").await.unwrap();
    assert_eq!(objects.read_small("k").await.unwrap(), None);
    assert!(!objects.exists("k").await.unwrap());
    objects.delete("k").await.unwrap();
    objects.delete("never-written").await.unwrap();
    assert!(objects.reader("k").await.is_err());
}

#[tokio::test]
async fn stores_with_different_prefixes_do_not_see_each_other() {
    let Some(s3) = stand_in("stores_with_different_prefixes_do_not_see_each_other").await else {
        return;
    };
    let a = Objects::open_s3_with(BUCKET, "a", &s3.options()).unwrap();
    let b = Objects::open_s3_with(BUCKET, "b/", &s3.options()).unwrap();
    let root = Objects::open_s3_with(BUCKET, "", &s3.options()).unwrap();
    a.put("same-key", b"from a".to_vec()).await.unwrap();
    assert!(!b.exists("same-key").await.unwrap());
    assert!(b.reader("same-key").await.is_err());
    // Deleting through b must not reach a's object.
    b.delete("same-key").await.unwrap();
    assert!(a.exists("same-key").await.unwrap());
    b.put("same-key", b"from b".to_vec()).await.unwrap();
    assert_eq!(read_all(&a, "same-key").await, b"from a");
    assert_eq!(read_all(&root, "a/same-key").await, b"from a");
    assert_eq!(read_all(&root, "b/same-key").await, b"from b");
    assert_eq!(s3.keys(BUCKET, "").await, ["a/same-key", "b/same-key"]);
}

#[tokio::test]
async fn archive_puts_use_the_archive_class_and_plain_puts_do_not() {
    let Some(s3) = stand_in("archive_puts_use_the_archive_class_and_plain_puts_do_not").await
    else {
        return;
    };
    let objects = Objects::open_s3_with(BUCKET, "p", &s3.options()).unwrap();
    assert_eq!(
        objects.archive_storage_class(),
        Some(DEFAULT_ARCHIVE_STORAGE_CLASS)
    );
    objects
        .put_archive("archive/r1.envelope", b"sealed envelope".to_vec())
        .await
        .unwrap();
    objects.put("live/r1", b"live".to_vec()).await.unwrap();
    assert_eq!(
        s3.storage_class(BUCKET, "p/archive/r1.envelope").await,
        Some("GLACIER_IR".into())
    );
    assert_eq!(s3.storage_class(BUCKET, "p/live/r1").await, None);
    // GLACIER_IR stays readable without a restore.
    assert_eq!(
        read_all(&objects, "archive/r1.envelope").await,
        b"sealed envelope"
    );
}

#[tokio::test]
async fn copies_to_the_archive_change_the_class_and_keep_the_bytes() {
    let Some(s3) = stand_in("copies_to_the_archive_change_the_class_and_keep_the_bytes").await
    else {
        return;
    };
    let objects = Objects::open_s3_with(BUCKET, "p", &s3.options()).unwrap();
    let large = pattern(LARGE);
    write_streaming(&objects, "blobs/large", &large).await;
    // One byte under, at and over the part size take the single-request path and the
    // multipart path; an empty object has no part at all.
    let part = 5 * 1024 * 1024;
    let cases = [
        ("large", large),
        ("empty", Vec::new()),
        ("small", b"a small blob".to_vec()),
        ("at-part-size", pattern(part)),
        ("over-part-size", pattern(part + 1)),
    ];
    for (name, data) in &cases {
        if *name != "large" {
            objects
                .put(&format!("blobs/{name}"), data.clone())
                .await
                .unwrap();
        }
        let from = format!("blobs/{name}");
        let to = format!("archive/{name}.blob");
        objects.copy_to_archive(&from, &to).await.unwrap();
        assert_eq!(
            s3.storage_class(BUCKET, &format!("p/{to}"))
                .await
                .as_deref(),
            Some("GLACIER_IR"),
            "{name}"
        );
        assert!(
            read_all(&objects, &to).await == *data,
            "{name}: bytes differ"
        );
        // The source is left for the caller to delete once the archive row is committed.
        assert_eq!(s3.storage_class(BUCKET, &format!("p/{from}")).await, None);
    }
    // Copying over an existing archive object replaces it.
    objects
        .copy_to_archive("blobs/small", "archive/large.blob")
        .await
        .unwrap();
    assert_eq!(
        read_all(&objects, "archive/large.blob").await,
        b"a small blob"
    );
    // A missing source is an error, not an empty archive object.
    assert!(objects
        .copy_to_archive("blobs/missing", "archive/missing.blob")
        .await
        .is_err());
    assert!(!objects.exists("archive/missing.blob").await.unwrap());
}

#[tokio::test]
async fn without_an_archive_class_archive_writes_are_plain() {
    let Some(s3) = stand_in("without_an_archive_class_archive_writes_are_plain").await else {
        return;
    };
    let plain = S3Options {
        archive_storage_class: None,
        ..s3.options()
    };
    let objects = Objects::open_s3_with(BUCKET, "", &plain).unwrap();
    assert_eq!(objects.archive_storage_class(), None);
    objects.put_archive("env", b"e".to_vec()).await.unwrap();
    objects.put("blob", pattern(1000)).await.unwrap();
    objects.copy_to_archive("blob", "archived").await.unwrap();
    assert_eq!(s3.storage_class(BUCKET, "env").await, None);
    assert_eq!(s3.storage_class(BUCKET, "archived").await, None);
    assert_eq!(read_all(&objects, "archived").await, pattern(1000));
}

#[tokio::test]
async fn an_explicit_archive_class_is_used_as_given() {
    let Some(s3) = stand_in("an_explicit_archive_class_is_used_as_given").await else {
        return;
    };
    let ia = S3Options {
        archive_storage_class: Some("STANDARD_IA".into()),
        ..s3.options()
    };
    let objects = Objects::open_s3_with(BUCKET, "", &ia).unwrap();
    objects.put_archive("env", b"e".to_vec()).await.unwrap();
    assert_eq!(
        s3.storage_class(BUCKET, "env").await.as_deref(),
        Some("STANDARD_IA")
    );
}
