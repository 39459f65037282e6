//! Where backups are kept: a local directory, or `s3://bucket/prefix` (credentials, region and
//! endpoint from the standard `AWS_*` variables, as `--objects s3://` reads them).
//!
//! An S3 place is worked on through a private local staging directory with the same layout
//! (`<id>/manifest.json`, `<id>/<file>.sealed`): the manifests are fetched first, a backup's
//! files only when it is opened; a new backup is sealed into the staging directory and then
//! uploaded, its manifest last, so a backup without one stays incomplete and ignored there too.
//! Nothing plaintext is ever staged: the staged files are the sealed ones.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, WriteMultipart};
use tokio::io::AsyncWriteExt;

use crate::archive::{Manifest, MANIFEST};
use crate::error::{io, BackupError};

/// A backup location, ready to be read and written through [`Place::dir`].
pub(crate) struct Place {
    dir: PathBuf,
    remote: Option<Remote>,
    _staging: Option<tempfile::TempDir>,
}

struct Remote {
    store: Arc<dyn ObjectStore>,
    shown: String,
}

fn s3_err(shown: &str) -> impl Fn(object_store::Error) -> BackupError + '_ {
    move |source| BackupError::Remote {
        what: shown.to_string(),
        source,
    }
}

/// `key` is not a usable object key.
fn bad_key(key: &str) -> impl FnOnce(object_store::path::Error) -> BackupError + '_ {
    move |e| BackupError::InvalidPlace {
        what: key.to_string(),
        source: Box::new(e),
        given: false,
    }
}

impl Place {
    /// Opens `to`: a directory as it is, an `s3://` URL with its manifests fetched into a
    /// staging directory.
    pub async fn open(to: &Path) -> Result<Place, BackupError> {
        let text = to.to_string_lossy();
        let Some(rest) = text.strip_prefix("s3://") else {
            return Ok(Place {
                dir: to.to_path_buf(),
                remote: None,
                _staging: None,
            });
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(BackupError::BadInput(format!(
                "{text}: expected s3://bucket/prefix"
            )));
        }
        let shown = text.trim_end_matches('/').to_string();
        let s3 = AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .build()
            .map_err(|e| BackupError::InvalidPlace {
                what: shown.clone(),
                source: Box::new(e),
                given: true,
            })?;
        let prefix = prefix.trim_matches('/');
        let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
            Arc::new(s3)
        } else {
            let p = ObjectPath::parse(prefix).map_err(|e| BackupError::InvalidPlace {
                what: format!("{shown}: invalid key prefix"),
                source: Box::new(e),
                given: true,
            })?;
            Arc::new(PrefixStore::new(s3, p))
        };
        let staging = tempfile::Builder::new()
            .prefix("custos-backup-staging-")
            .tempdir()
            .map_err(|source| BackupError::Io {
                what: "staging dir".into(),
                source,
            })?;
        let place = Place {
            dir: staging.path().to_path_buf(),
            remote: Some(Remote { store, shown }),
            _staging: Some(staging),
        };
        place.fetch_manifests().await?;
        Ok(place)
    }

    /// The local directory to work in (the place itself, or its staging copy).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// How to name the place in messages.
    pub fn shown(&self) -> String {
        match &self.remote {
            Some(r) => r.shown.clone(),
            None => self.dir.display().to_string(),
        }
    }

    async fn fetch_manifests(&self) -> Result<(), BackupError> {
        let Some(r) = &self.remote else { return Ok(()) };
        let listed: Vec<_> = r
            .store
            .list(None)
            .try_collect()
            .await
            .map_err(s3_err(&r.shown))?;
        for meta in listed {
            let key = meta.location.to_string();
            if key.ends_with(&format!("/{MANIFEST}")) && key.matches('/').count() == 1 {
                self.download(r, &key).await?;
            }
        }
        Ok(())
    }

    async fn download(&self, r: &Remote, key: &str) -> Result<(), BackupError> {
        let target = self.dir.join(key);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        let path = ObjectPath::parse(key).map_err(bad_key(key))?;
        let got = r
            .store
            .get(&path)
            .await
            .map_err(|source| BackupError::Remote {
                what: format!("{}/{key}", r.shown),
                source,
            })?;
        let mut stream = got.into_stream();
        let mut file = tokio::fs::File::create(&target)
            .await
            .map_err(io(&target))?;
        while let Some(chunk) = stream.try_next().await.map_err(s3_err(&r.shown))? {
            file.write_all(&chunk).await.map_err(io(&target))?;
        }
        file.flush().await.map_err(io(&target))?;
        Ok(())
    }

    /// Makes every file `manifest` needs (its own and those it reads from older backups)
    /// present in [`Place::dir`].
    pub async fn fetch(&self, manifest: &Manifest) -> Result<(), BackupError> {
        let Some(r) = &self.remote else { return Ok(()) };
        for entry in &manifest.files {
            let path = if manifest.is_data() {
                manifest.sealed_path(&self.dir, entry).0
            } else {
                self.dir.join(&manifest.id).join(&entry.name)
            };
            if path.is_file() {
                continue;
            }
            let key = path
                .strip_prefix(&self.dir)
                .unwrap_or(&path)
                .to_string_lossy()
                .into_owned();
            self.download(r, &key).await?;
        }
        Ok(())
    }

    /// Uploads the backup `id` from [`Place::dir`] (its manifest last), then removes the
    /// backups `pruned` from the place.
    pub async fn publish(&self, id: &str, pruned: &[String]) -> Result<(), BackupError> {
        let Some(r) = &self.remote else { return Ok(()) };
        let dir = self.dir.join(id);
        let mut files = Vec::new();
        collect(&dir, &mut files)?;
        files.sort_by_key(|f| f.ends_with(MANIFEST));
        for file in files {
            let rel = file.strip_prefix(&self.dir).unwrap_or(&file);
            let key = rel.to_string_lossy().replace('\\', "/");
            let path = ObjectPath::parse(&key).map_err(bad_key(&key))?;
            let upload = r
                .store
                .put_multipart(&path)
                .await
                .map_err(s3_err(&r.shown))?;
            let mut writer = WriteMultipart::new_with_chunk_size(upload, 8 * 1024 * 1024);
            let mut input = tokio::fs::File::open(&file).await.map_err(io(&file))?;
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = tokio::io::AsyncReadExt::read(&mut input, &mut buf)
                    .await
                    .map_err(io(&file))?;
                if n == 0 {
                    break;
                }
                writer
                    .wait_for_capacity(4)
                    .await
                    .map_err(s3_err(&r.shown))?;
                writer.write(&buf[..n]);
            }
            writer.finish().await.map_err(s3_err(&r.shown))?;
        }
        for id in pruned {
            // The manifest first: a half-deleted backup is an incomplete one.
            let manifest = ObjectPath::parse(format!("{id}/{MANIFEST}")).map_err(bad_key(id))?;
            r.store.delete(&manifest).await.map_err(s3_err(&r.shown))?;
            let prefix = ObjectPath::parse(id).map_err(bad_key(id))?;
            let keys: Vec<_> = r
                .store
                .list(Some(&prefix))
                .map_ok(|m| m.location)
                .try_collect()
                .await
                .map_err(s3_err(&r.shown))?;
            for key in keys {
                r.store.delete(&key).await.map_err(s3_err(&r.shown))?;
            }
        }
        Ok(())
    }
}

/// Every file under `dir`.
fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), BackupError> {
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let path = entry.map_err(io(dir))?.path();
        if path.is_dir() {
            collect(&path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}
