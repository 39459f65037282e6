//! Blob storage over the `object_store` crate: the local filesystem by default.
//!
//! Objects arrive already sealed by `custos-crypto`; this layer only moves bytes, streaming in
//! both directions so a file of any size passes through in bounded memory.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, WriteMultipart};

use crate::StoreError;

/// Where blobs live, parsed from `--objects`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectLocation {
    /// `file:DIR`: a directory on the local filesystem.
    File(PathBuf),
}

impl std::str::FromStr for ObjectLocation {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(dir) = s.strip_prefix("file:") {
            if dir.is_empty() {
                return Err(StoreError::Config(
                    "--objects file: needs a directory".into(),
                ));
            }
            return Ok(ObjectLocation::File(PathBuf::from(dir)));
        }
        if s.starts_with("s3://") {
            return Err(StoreError::Config(format!(
                "--objects {s}: S3 support is not in this build yet; use file:DIR"
            )));
        }
        Err(StoreError::Config(format!(
            "--objects {s:?}: expected file:DIR or s3://bucket/prefix"
        )))
    }
}

/// Part size for multipart writes: large enough for S3's 5 MiB minimum, small enough that
/// an upload holds little in memory.
const PART_SIZE: usize = 5 * 1024 * 1024;

/// A handle on the blob store.
#[derive(Clone)]
pub struct Objects {
    store: Arc<dyn ObjectStore>,
}

impl std::fmt::Debug for Objects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Objects({})", self.store)
    }
}

fn objects_err(e: object_store::Error) -> StoreError {
    StoreError::Objects(e.to_string())
}

impl Objects {
    /// Opens the blob store at `location`, creating a local directory if needed.
    pub fn open(location: &ObjectLocation) -> Result<Self, StoreError> {
        match location {
            ObjectLocation::File(dir) => {
                std::fs::create_dir_all(dir).map_err(|e| {
                    StoreError::Config(format!("cannot create {}: {e}", dir.display()))
                })?;
                let fs = LocalFileSystem::new_with_prefix(dir).map_err(objects_err)?;
                Ok(Objects {
                    store: Arc::new(fs),
                })
            }
        }
    }

    fn path(key: &str) -> Result<ObjectPath, StoreError> {
        ObjectPath::parse(key).map_err(|e| StoreError::Objects(e.to_string()))
    }

    /// Starts a streaming write of `key`; nothing is visible until [`ObjectWriter::finish`].
    pub async fn writer(&self, key: &str) -> Result<ObjectWriter, StoreError> {
        let upload = self
            .store
            .put_multipart(&Self::path(key)?)
            .await
            .map_err(objects_err)?;
        Ok(ObjectWriter {
            inner: WriteMultipart::new_with_chunk_size(upload, PART_SIZE),
            written: 0,
        })
    }

    /// Streams an object's bytes.
    pub async fn reader(
        &self,
        key: &str,
    ) -> Result<BoxStream<'static, Result<Bytes, StoreError>>, StoreError> {
        let got = self
            .store
            .get(&Self::path(key)?)
            .await
            .map_err(objects_err)?;
        Ok(got.into_stream().map(|r| r.map_err(objects_err)).boxed())
    }

    /// Writes a small object in one request, replacing any object at `key` atomically.
    pub async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        self.store
            .put(&Self::path(key)?, bytes.into())
            .await
            .map_err(objects_err)?;
        Ok(())
    }

    /// Copies an object inside the store, replacing any object at `to`.
    pub async fn copy(&self, from: &str, to: &str) -> Result<(), StoreError> {
        self.store
            .copy(&Self::path(from)?, &Self::path(to)?)
            .await
            .map_err(objects_err)
    }

    /// Deletes an object; deleting a missing object succeeds (deletion is idempotent).
    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        match self.store.delete(&Self::path(key)?).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(objects_err(e)),
        }
    }

    /// Whether an object exists.
    pub async fn exists(&self, key: &str) -> Result<bool, StoreError> {
        match self.store.head(&Self::path(key)?).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(objects_err(e)),
        }
    }
}

/// A streaming object write.
pub struct ObjectWriter {
    inner: WriteMultipart,
    written: u64,
}

impl ObjectWriter {
    /// Appends bytes, waiting for in-flight parts so memory stays bounded.
    pub async fn write(&mut self, data: &[u8]) -> Result<(), StoreError> {
        self.inner.wait_for_capacity(2).await.map_err(objects_err)?;
        self.inner.write(data);
        self.written += data.len() as u64;
        Ok(())
    }

    /// Completes the object and makes it visible; returns bytes written.
    pub async fn finish(self) -> Result<u64, StoreError> {
        self.inner.finish().await.map_err(objects_err)?;
        Ok(self.written)
    }

    /// Abandons the write; the object does not appear.
    pub async fn abort(self) -> Result<(), StoreError> {
        self.inner.abort().await.map_err(objects_err)
    }
}
