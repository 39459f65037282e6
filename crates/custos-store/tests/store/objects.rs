//! The blob store on the local filesystem.

use std::path::{Path, PathBuf};

use custos_store::{ObjectLocation, Objects, StoreError};
use futures::TryStreamExt;

/// Deterministic bytes that are not a repeating short pattern.
fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

async fn read_all(objects: &Objects, key: &str) -> Result<Vec<u8>, StoreError> {
    let chunks: Vec<bytes::Bytes> = objects.reader(key).await?.try_collect().await?;
    Ok(chunks.concat())
}

/// Every regular file under `dir`, relative to it.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path.strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn write_in_chunks_read_back_delete() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("objects");
    let objects = Objects::open(&ObjectLocation::File(root.clone())).unwrap();
    assert!(root.is_dir(), "open creates the directory");

    // Larger than two 5 MiB parts, written in uneven chunks (one byte, one across a part
    // boundary, several small).
    let data = pseudo_random(11 * 1024 * 1024 + 333, 42);
    let key = "org-1/record-7/blob";
    let mut writer = objects.writer(key).await.unwrap();
    let cuts = [
        0,
        1,
        4096,
        6 * 1024 * 1024,
        6 * 1024 * 1024 + 17,
        data.len(),
    ];
    for w in cuts.windows(2) {
        writer.write(&data[w[0]..w[1]]).await.unwrap();
    }
    assert!(!objects.exists(key).await.unwrap(), "visible before finish");
    assert_eq!(writer.finish().await.unwrap(), data.len() as u64);
    assert!(objects.exists(key).await.unwrap());
    assert!(
        read_all(&objects, key).await.unwrap() == data,
        "content differs"
    );

    // A small object next to it, and an overwrite of it.
    let small_key = "org-1/record-8/blob";
    let mut w = objects.writer(small_key).await.unwrap();
    w.write(b"first").await.unwrap();
    assert_eq!(w.finish().await.unwrap(), 5);
    let mut w = objects.writer(small_key).await.unwrap();
    w.write(b"sec").await.unwrap();
    w.write(b"ond\0").await.unwrap();
    assert_eq!(w.finish().await.unwrap(), 7);
    assert_eq!(read_all(&objects, small_key).await.unwrap(), b"second\0");
    assert_eq!(
        objects.read_small(small_key).await.unwrap().as_deref(),
        Some(&b"second\0"[..])
    );
    assert_eq!(objects.read_small("org-1/none").await.unwrap(), None);

    // Deletion is idempotent and only removes its object.
    objects.delete(key).await.unwrap();
    assert!(!objects.exists(key).await.unwrap());
    objects.delete(key).await.unwrap();
    assert!(!objects.exists(key).await.unwrap());
    assert!(matches!(
        read_all(&objects, key).await,
        Err(StoreError::Objects { .. })
    ));
    assert!(objects.exists(small_key).await.unwrap());
    assert_eq!(
        files_under(&root),
        vec![PathBuf::from("org-1/record-8/blob")]
    );
    objects.delete("never/written").await.unwrap();
    assert!(!objects.exists("never/written").await.unwrap());
}

#[tokio::test]
async fn abort_leaves_no_object() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    let objects = Objects::open(&ObjectLocation::File(root.clone())).unwrap();
    let key = "org-2/record-1/blob";

    let mut writer = objects.writer(key).await.unwrap();
    writer
        .write(&pseudo_random(6 * 1024 * 1024, 7))
        .await
        .unwrap();
    writer.write(b"tail").await.unwrap();
    writer.abort().await.unwrap();

    assert!(!objects.exists(key).await.unwrap());
    assert!(matches!(
        read_all(&objects, key).await,
        Err(StoreError::Objects { .. })
    ));
    // Not even a staging file is left behind.
    assert_eq!(files_under(&root), Vec::<PathBuf>::new());

    // The key is still usable.
    let mut writer = objects.writer(key).await.unwrap();
    writer.write(b"after abort").await.unwrap();
    writer.finish().await.unwrap();
    assert_eq!(read_all(&objects, key).await.unwrap(), b"after abort");
}

#[test]
fn locations_parse_or_name_the_input() {
    assert_eq!(
        "file:/var/lib/custos/objects"
            .parse::<ObjectLocation>()
            .unwrap(),
        ObjectLocation::File(PathBuf::from("/var/lib/custos/objects"))
    );
    for input in ["s3://", "bogus", "file:"] {
        match input.parse::<ObjectLocation>() {
            Err(StoreError::Config(msg)) => {
                assert!(
                    msg.contains(input),
                    "{input:?}: message {msg:?} does not name it"
                );
                assert!(
                    msg.contains("expected") && (msg.contains("file:") || msg.contains("s3://")),
                    "{input:?}: message {msg:?} gives no hint"
                );
            }
            other => panic!("{input:?}: expected a Config error, got {other:?}"),
        }
    }
}
