//! Blob storage over the `object_store` crate: the local filesystem by default, S3 in production.
//!
//! Objects arrive already sealed by `custos-crypto`; this layer only moves bytes, streaming in
//! both directions so a file of any size passes through in bounded memory. On S3, content the
//! lifecycle engine moves to the archive tier is written with an archive storage class so it
//! costs less to keep; on local files there is no such thing and archive writes are plain writes.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::prefix::PrefixStore;
use object_store::{
    Attribute, Attributes, ObjectStore, PutMultipartOptions, PutOptions, WriteMultipart,
};

use crate::StoreError;

/// Where blobs live, parsed from `--objects`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectLocation {
    /// `file:DIR`: a directory on the local filesystem.
    File(PathBuf),
    /// `s3://bucket/prefix`: keys live under `prefix` (may be empty) in an S3 bucket.
    S3 {
        /// The bucket name.
        bucket: String,
        /// Key prefix without leading or trailing `/`; empty for the bucket's root.
        prefix: String,
    },
}

impl std::str::FromStr for ObjectLocation {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(dir) = s.strip_prefix("file:") {
            if dir.is_empty() {
                return Err(StoreError::Config(format!(
                    "--objects {s:?}: the directory is empty; expected file:DIR"
                )));
            }
            return Ok(ObjectLocation::File(PathBuf::from(dir)));
        }
        if let Some(rest) = s.strip_prefix("s3://") {
            return parse_s3(s, rest);
        }
        Err(StoreError::Config(format!(
            "--objects {s:?}: expected file:DIR or s3://bucket/prefix"
        )))
    }
}

/// Parses the part of `s3://bucket/prefix` after the scheme; `input` is only for messages.
fn parse_s3(input: &str, rest: &str) -> Result<ObjectLocation, StoreError> {
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    // `s3://KEY:SECRET@bucket` would put credentials in shell history and in this very
    // message, so say what is wrong without echoing the input.
    if bucket.contains('@') {
        return Err(StoreError::Config(
            "--objects s3://...: credentials do not belong in the URL; set \
             AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY instead"
                .into(),
        ));
    }
    if bucket.is_empty() {
        return Err(StoreError::Config(format!(
            "--objects {input:?}: the bucket name is empty; expected s3://bucket/prefix"
        )));
    }
    // Letters, digits, `.`, `-` and `_` cover current and legacy bucket names; anything else
    // (`:`, `?`, spaces) is a typo that S3 would only report on the first request.
    if !bucket
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
    {
        return Err(StoreError::Config(format!(
            "--objects {input:?}: {bucket:?} is not a valid bucket name"
        )));
    }
    let prefix = prefix.trim_matches('/');
    ObjectPath::parse(prefix)
        .map_err(|e| StoreError::Config(format!("--objects {input:?}: invalid key prefix: {e}")))?;
    Ok(ObjectLocation::S3 {
        bucket: bucket.to_string(),
        prefix: prefix.to_string(),
    })
}

/// The archive storage class used on S3 unless configured otherwise: far cheaper to keep than
/// STANDARD, yet readable at once (unlike GLACIER or DEEP_ARCHIVE, which need a restore).
pub const DEFAULT_ARCHIVE_STORAGE_CLASS: &str = "GLACIER_IR";

/// Environment variable that overrides [`DEFAULT_ARCHIVE_STORAGE_CLASS`] for `s3://` stores;
/// set it empty for S3-compatible services that reject storage classes.
pub const ARCHIVE_STORAGE_CLASS_ENV: &str = "CUSTOS_S3_ARCHIVE_STORAGE_CLASS";

/// Checks a storage class name early, so a typo is a start-up error rather than a failed
/// archive run weeks later.
fn archive_class(value: &str, source: &str) -> Result<Option<String>, StoreError> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    if value
        .chars()
        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
    {
        Ok(Some(value.to_string()))
    } else {
        Err(StoreError::Config(format!(
            "{source} {value:?}: expected an S3 storage class such as \
             {DEFAULT_ARCHIVE_STORAGE_CLASS} (upper case), or empty for none"
        )))
    }
}

/// S3 connection settings given explicitly rather than through the `AWS_*` environment
/// variables that [`Objects::open`] reads, for callers that must not depend on (or mutate) the
/// process environment, such as tests running in parallel.
#[derive(Clone)]
pub struct S3Options {
    /// Endpoint of an S3-compatible service; `None` for AWS itself.
    pub endpoint: Option<String>,
    /// Region; `None` for `us-east-1`.
    pub region: Option<String>,
    /// Whether a plain `http://` endpoint is allowed (local stand-ins only).
    pub allow_http: bool,
    /// Access key id; `None` (with no secret) for the instance or container credentials.
    pub access_key_id: Option<String>,
    /// Secret access key; never printed, not even by `Debug`.
    pub secret_access_key: Option<String>,
    /// Storage class for archive writes; `None` writes archive content like any other.
    pub archive_storage_class: Option<String>,
}

impl Default for S3Options {
    fn default() -> Self {
        S3Options {
            endpoint: None,
            region: None,
            allow_http: false,
            access_key_id: None,
            secret_access_key: None,
            archive_storage_class: Some(DEFAULT_ARCHIVE_STORAGE_CLASS.to_string()),
        }
    }
}

impl std::fmt::Debug for S3Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Options")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("allow_http", &self.allow_http)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "<redacted>"),
            )
            .field("archive_storage_class", &self.archive_storage_class)
            .finish()
    }
}

/// Part size for multipart writes: large enough for S3's 5 MiB minimum, small enough that
/// an upload holds little in memory.
const PART_SIZE: usize = 5 * 1024 * 1024;

/// A handle on the blob store.
#[derive(Clone)]
pub struct Objects {
    store: Arc<dyn ObjectStore>,
    /// Storage class for the archive tier; always `None` on local files, whose store rejects
    /// any attribute with `NotImplemented`.
    archive_class: Option<Arc<str>>,
    /// Where the objects are, for `Debug`: `object_store`'s own text for a prefixed S3 store
    /// names only the prefix. Holds no credentials, which never enter a location.
    shown: Arc<str>,
}

impl std::fmt::Debug for Objects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Objects({}", self.shown)?;
        if let Some(class) = &self.archive_class {
            write!(f, ", archive class {class}")?;
        }
        write!(f, ")")
    }
}

fn objects_err(e: object_store::Error) -> StoreError {
    StoreError::from(e)
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
                    shown: fs.to_string().into(),
                    store: Arc::new(fs),
                    archive_class: None,
                })
            }
            ObjectLocation::S3 { bucket, prefix } => {
                // Credentials, region and endpoint come from the standard AWS_* variables
                // (or the instance/container credentials), as every AWS tool reads them.
                let class = match std::env::var(ARCHIVE_STORAGE_CLASS_ENV) {
                    Ok(value) => archive_class(&value, ARCHIVE_STORAGE_CLASS_ENV)?,
                    Err(std::env::VarError::NotPresent) => {
                        Some(DEFAULT_ARCHIVE_STORAGE_CLASS.to_string())
                    }
                    Err(std::env::VarError::NotUnicode(_)) => {
                        return Err(StoreError::Config(format!(
                            "{ARCHIVE_STORAGE_CLASS_ENV} is not valid UTF-8"
                        )))
                    }
                };
                Self::s3(AmazonS3Builder::from_env(), bucket, prefix, class)
            }
        }
    }

    /// Opens `s3://bucket/prefix` with explicit settings, ignoring the `AWS_*` environment.
    pub fn open_s3_with(
        bucket: &str,
        prefix: &str,
        options: &S3Options,
    ) -> Result<Self, StoreError> {
        let mut builder = AmazonS3Builder::new().with_allow_http(options.allow_http);
        if let Some(endpoint) = &options.endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        if let Some(region) = &options.region {
            builder = builder.with_region(region);
        }
        if let Some(id) = &options.access_key_id {
            builder = builder.with_access_key_id(id);
        }
        if let Some(secret) = &options.secret_access_key {
            builder = builder.with_secret_access_key(secret);
        }
        let class = match &options.archive_storage_class {
            Some(value) => archive_class(value, "archive storage class")?,
            None => None,
        };
        Self::s3(builder, bucket, prefix, class)
    }

    fn s3(
        builder: AmazonS3Builder,
        bucket: &str,
        prefix: &str,
        archive_class: Option<String>,
    ) -> Result<Self, StoreError> {
        let prefix = prefix.trim_matches('/');
        let shown = format!("s3://{bucket}/{prefix}");
        // The builder's messages name missing or malformed settings, never their values.
        let s3 = builder
            .with_bucket_name(bucket)
            .build()
            .map_err(|e| StoreError::Config(format!("--objects {shown}: {e}")))?;
        let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
            Arc::new(s3)
        } else {
            let prefix = ObjectPath::parse(prefix).map_err(|e| {
                StoreError::Config(format!("--objects {shown}: invalid key prefix: {e}"))
            })?;
            Arc::new(PrefixStore::new(s3, prefix))
        };
        Ok(Objects {
            store,
            archive_class: archive_class.map(Arc::from),
            shown: shown.into(),
        })
    }

    /// The storage class archive writes use, if this store has one (S3 only).
    pub fn archive_storage_class(&self) -> Option<&str> {
        self.archive_class.as_deref()
    }

    fn archive_attributes(class: &str) -> Attributes {
        let mut attributes = Attributes::new();
        attributes.insert(Attribute::StorageClass, class.to_string().into());
        attributes
    }

    fn path(key: &str) -> Result<ObjectPath, StoreError> {
        ObjectPath::parse(key).map_err(|e| StoreError::objects("object key", e))
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

    /// Reads a small object whole; `None` if there is none (one request, no separate check).
    pub async fn read_small(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match self.store.get(&Self::path(key)?).await {
            Ok(got) => Ok(Some(got.bytes().await.map_err(objects_err)?.to_vec())),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(objects_err(e)),
        }
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

    /// Writes archive-tier content in one request, in the archive storage class if there is one.
    pub async fn put_archive(&self, key: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        let Some(class) = &self.archive_class else {
            return self.put(key, bytes).await;
        };
        let opts = PutOptions::from(Self::archive_attributes(class));
        self.store
            .put_opts(&Self::path(key)?, bytes.into(), opts)
            .await
            .map_err(objects_err)?;
        Ok(())
    }

    /// Copies an object into the archive tier, replacing any object at `to`.
    ///
    /// S3's server-side copy as `object_store` issues it cannot change the storage class, so
    /// with a class the bytes pass through here: one request up to [`PART_SIZE`], above it a
    /// multipart upload with at most a few parts in memory.
    pub async fn copy_to_archive(&self, from: &str, to: &str) -> Result<(), StoreError> {
        let Some(class) = &self.archive_class else {
            return self.copy(from, to).await;
        };
        let to = Self::path(to)?;
        let got = self
            .store
            .get(&Self::path(from)?)
            .await
            .map_err(objects_err)?;
        if got.meta.size <= PART_SIZE as u64 {
            let bytes = got.bytes().await.map_err(objects_err)?;
            let opts = PutOptions::from(Self::archive_attributes(class));
            self.store
                .put_opts(&to, bytes.into(), opts)
                .await
                .map_err(objects_err)?;
            return Ok(());
        }
        let opts = PutMultipartOptions::from(Self::archive_attributes(class));
        let upload = self
            .store
            .put_multipart_opts(&to, opts)
            .await
            .map_err(objects_err)?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        let mut chunks = got.into_stream();
        while let Some(next) = chunks.next().await {
            let step = match next {
                Ok(chunk) => writer.wait_for_capacity(2).await.map(|()| chunk),
                Err(e) => Err(e),
            };
            match step {
                Ok(chunk) => writer.put(chunk),
                Err(e) => {
                    // Without the abort S3 keeps (and bills) the parts already uploaded.
                    let _ = writer.abort().await;
                    return Err(objects_err(e));
                }
            }
        }
        writer.finish().await.map_err(objects_err)?;
        Ok(())
    }

    /// Deletes an object; deleting a missing object succeeds (deletion is idempotent).
    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        match self.store.delete(&Self::path(key)?).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(objects_err(e)),
        }
    }

    /// The keys of every object under `prefix` (a `/`-separated directory), in no set order.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let prefix = Self::path(prefix)?;
        let metas: Vec<object_store::ObjectMeta> = self
            .store
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(objects_err)?;
        Ok(metas.into_iter().map(|m| m.location.to_string()).collect())
    }

    /// Copies the object at `key` into another object store under the same key, streaming,
    /// replacing any object there; archive-tier keys (`…/archive/…`) land in `other`'s archive
    /// storage class. Returns the bytes copied.
    pub async fn copy_into(&self, other: &Objects, key: &str) -> Result<u64, StoreError> {
        let mut chunks = self.reader(key).await?;
        let archive = key.contains("/archive/") && other.archive_class.is_some();
        let mut writer = if archive {
            let class = other.archive_class.as_deref().unwrap_or_default();
            let opts = PutMultipartOptions::from(Self::archive_attributes(class));
            let upload = other
                .store
                .put_multipart_opts(&Self::path(key)?, opts)
                .await
                .map_err(objects_err)?;
            ObjectWriter {
                inner: WriteMultipart::new_with_chunk_size(upload, PART_SIZE),
                written: 0,
            }
        } else {
            other.writer(key).await?
        };
        while let Some(chunk) = chunks.next().await {
            match chunk {
                Ok(bytes) => writer.write(&bytes).await?,
                Err(e) => {
                    let _ = writer.abort().await;
                    return Err(e);
                }
            }
        }
        writer.finish().await
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<ObjectLocation, String> {
        s.parse::<ObjectLocation>().map_err(|e| e.to_string())
    }

    fn s3(bucket: &str, prefix: &str) -> ObjectLocation {
        ObjectLocation::S3 {
            bucket: bucket.into(),
            prefix: prefix.into(),
        }
    }

    #[test]
    fn s3_urls_name_a_bucket_and_an_optional_prefix() {
        assert_eq!(parse("s3://bucket"), Ok(s3("bucket", "")));
        assert_eq!(parse("s3://bucket/"), Ok(s3("bucket", "")));
        assert_eq!(parse("s3://bucket/a/b/"), Ok(s3("bucket", "a/b")));
        assert_eq!(
            parse("s3://my.bucket-1/custos"),
            Ok(s3("my.bucket-1", "custos"))
        );
    }

    #[test]
    fn bad_s3_urls_say_what_is_wrong_and_name_the_input() {
        let e = parse("s3://").unwrap_err();
        assert!(
            e.contains("\"s3://\"") && e.contains("bucket name is empty"),
            "{e}"
        );
        let e = parse("s3:///prefix").unwrap_err();
        assert!(e.contains("s3:///prefix") && e.contains("empty"), "{e}");
        let e = parse("s3://bu cket/p").unwrap_err();
        assert!(e.contains("not a valid bucket name"), "{e}");
        let e = parse("s3://bucket/a//b").unwrap_err();
        assert!(e.contains("invalid key prefix"), "{e}");
        assert!(matches!(
            "s3://".parse::<ObjectLocation>(),
            Err(StoreError::Config(_))
        ));
    }

    #[test]
    fn credentials_in_an_s3_url_are_rejected_without_being_echoed() {
        let e = parse("s3://AKIDEXAMPLE:wJalrXUtnFEMIsecret@bucket/p").unwrap_err();
        assert!(e.contains("AWS_SECRET_ACCESS_KEY"), "{e}");
        assert!(
            !e.contains("wJalrXUtnFEMIsecret") && !e.contains("AKIDEXAMPLE"),
            "{e}"
        );
    }

    #[test]
    fn s3_options_debug_hides_the_secret() {
        let options = S3Options {
            access_key_id: Some("AKIDEXAMPLE".into()),
            secret_access_key: Some("wJalrXUtnFEMIsecret".into()),
            ..S3Options::default()
        };
        let shown = format!("{options:?}");
        assert!(!shown.contains("wJalrXUtnFEMIsecret"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }

    #[test]
    fn archive_class_defaults_to_glacier_ir_and_can_be_turned_off() {
        let options = S3Options::default();
        let objects = Objects::open_s3_with("bucket", "p", &options).unwrap();
        assert_eq!(objects.archive_storage_class(), Some("GLACIER_IR"));
        let none = S3Options {
            archive_storage_class: Some(String::new()),
            ..S3Options::default()
        };
        let objects = Objects::open_s3_with("bucket", "", &none).unwrap();
        assert_eq!(objects.archive_storage_class(), None);
        let bad = S3Options {
            archive_storage_class: Some("glacier ir".into()),
            ..S3Options::default()
        };
        let e = Objects::open_s3_with("bucket", "", &bad).unwrap_err();
        assert!(matches!(e, StoreError::Config(_)), "{e}");
    }

    #[test]
    fn debug_of_an_s3_store_shows_no_credentials() {
        let options = S3Options {
            access_key_id: Some("AKIDEXAMPLE".into()),
            secret_access_key: Some("wJalrXUtnFEMIsecret".into()),
            ..S3Options::default()
        };
        let objects = Objects::open_s3_with("bucket", "p", &options).unwrap();
        let shown = format!("{objects:?}");
        assert_eq!(shown, "Objects(s3://bucket/p, archive class GLACIER_IR)");
    }

    /// Local files have no storage classes, and `LocalFileSystem` fails any write that carries
    /// attributes: archive writes there must be plain writes.
    #[tokio::test]
    async fn archive_writes_on_local_files_are_plain_writes() {
        let dir = tempfile::tempdir().unwrap();
        let objects = Objects::open(&ObjectLocation::File(dir.path().join("o"))).unwrap();
        assert_eq!(objects.archive_storage_class(), None);
        objects
            .put_archive("a/env", b"sealed".to_vec())
            .await
            .unwrap();
        objects.put("a/blob", vec![7; 1000]).await.unwrap();
        objects
            .copy_to_archive("a/blob", "a/archived")
            .await
            .unwrap();
        let mut read = Vec::new();
        let mut stream = objects.reader("a/archived").await.unwrap();
        while let Some(chunk) = stream.next().await {
            read.extend_from_slice(&chunk.unwrap());
        }
        assert_eq!(read, vec![7; 1000]);
        assert!(objects.exists("a/env").await.unwrap());
    }
}
