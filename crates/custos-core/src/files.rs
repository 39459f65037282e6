//! Files: records whose content is a blob in the object store, sealed chunk by chunk so any
//! size streams through in bounded memory.

use std::collections::BTreeMap;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use serde_json::Value;

use custos_crypto::KeyRef;
use custos_store::{RecordRow, RecordState};

use crate::records::{check_metadata, check_subject, Envelope, ENVELOPE_PART};
use crate::{Caller, CoreError, CreatedRecord, Custos};

/// Everything about an upload except its bytes.
#[derive(Debug, Clone, Default)]
pub struct FileUpload {
    /// Policy category.
    pub category: String,
    /// Subject, if any.
    pub subject: Option<String>,
    /// Original file name.
    pub file_name: Option<String>,
    /// Media type.
    pub content_type: Option<String>,
    /// Caller metadata (JSON object).
    pub metadata: Option<Value>,
}

/// A decrypting download: headers first, then authenticated plaintext chunks.
pub struct FileDownload {
    /// Plaintext size.
    pub size: u64,
    /// Original file name.
    pub file_name: Option<String>,
    /// Media type.
    pub content_type: Option<String>,
    /// The bytes. An error mid-stream means the blob failed to authenticate.
    pub body: BoxStream<'static, Result<Bytes, CoreError>>,
}

impl std::fmt::Debug for FileDownload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FileDownload({} bytes)", self.size)
    }
}

/// Where a record's blob lives in the object store.
pub(crate) fn blob_key(org: &str, record: &str) -> String {
    format!("orgs/{org}/blobs/{record}")
}

impl Custos {
    /// Stores a file as a record. The blob is written and sealed first; the record row and
    /// its audit event are committed only after the blob is complete, so a failed upload
    /// leaves no record (and the partial blob is aborted or removed).
    pub async fn upload_file<S, E>(
        &self,
        caller: &Caller,
        org: &str,
        upload: FileUpload,
        mut body: S,
    ) -> Result<CreatedRecord, CoreError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin + Send,
        E: std::fmt::Display,
    {
        let grant = self
            .authorize(caller, crate::authz::Operation::FileUpload, org)
            .await?;
        let category = self
            .authorize_category(caller, &grant, &upload.category, None)
            .await?;
        let scope = grant.scope;
        check_subject(&upload.subject)?;
        check_metadata(&upload.metadata)?;
        if !category.store_content {
            return Err(CoreError::invalid(
                "category",
                format!(
                    "category `{}` keeps no content (store_content = false)",
                    category.name
                ),
            ));
        }
        let now = self.now();
        let retention = self.retention_override(&scope, &category.name).await?;
        let due = category.due_times(now, retention);
        let id = uuid::Uuid::now_v7().to_string();
        let subject_ref = upload
            .subject
            .as_deref()
            .map(|s| self.vault.subject_ref(scope.org_id(), s))
            .transpose()?;
        let key = self
            .vault
            .content_key(scope.org_id(), subject_ref.as_deref())?;
        let object = blob_key(scope.org_id(), &id);
        let mut writer = self.objects.writer(&object).await?;
        let mut encryptor = key.blob_encryptor(scope.org_id(), &id);
        let mut size = 0u64;
        let streamed: Result<(), CoreError> = async {
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| CoreError::invalid("body", e.to_string()))?;
                size += chunk.len() as u64;
                let sealed = encryptor.push(&chunk);
                if !sealed.is_empty() {
                    writer.write(&sealed).await?;
                }
            }
            Ok(())
        }
        .await;
        if let Err(e) = streamed {
            let _ = writer.abort().await;
            return Err(e);
        }
        writer.write(&encryptor.finish()).await?;
        writer.finish().await?;

        let envelope = Envelope {
            content: Value::Null,
            subject: upload.subject,
            metadata: upload.metadata.unwrap_or(Value::Null),
            file_name: upload.file_name,
            content_type: upload.content_type,
            tokens: None,
            org_tokens: None,
        };
        let sealed = key
            .seal_json(scope.org_id(), &id, ENVELOPE_PART, &envelope)
            .expect("JSON values serialize");
        let row = RecordRow {
            id: id.clone(),
            category: category.name.clone(),
            subject_ref,
            state: RecordState::Active,
            created_at: now,
            archive_at: due.archive_at,
            expire_at: due.expire_at,
            deleted_at: None,
            next_due_at: Some(crate::records::next_due(due.archive_at, due.expire_at)),
            key_ref: key.key_ref().to_string(),
            sealed: Some(sealed),
            blob_size: Some(size),
            pii: Value::Object(Default::default()),
        };
        let event = self
            .event(caller, "file.upload")
            .org(scope.org_id())
            .target(format!("record:{id}"))
            .reason(format!("category={} bytes={size}", category.name));
        if let Err(e) = self.store.insert_records(&scope, &[row], &[event]).await {
            let _ = self.objects.delete(&object).await;
            return Err(e.into());
        }
        Ok(CreatedRecord {
            id,
            category: category.name.clone(),
            archive_at: due.archive_at,
            expire_at: due.expire_at,
            pii: BTreeMap::new(),
        })
    }

    /// Streams a file record's plaintext, authenticating every chunk.
    pub async fn download_file(
        &self,
        caller: &Caller,
        org: &str,
        id: &str,
    ) -> Result<FileDownload, CoreError> {
        let grant = self
            .authorize(caller, crate::authz::Operation::FileDownload, org)
            .await?;
        let row = self.readable_record(caller, &grant, id).await?;
        let scope = grant.scope;
        let Some(size) = row.blob_size else {
            return Err(CoreError::NotFound(format!("file of record {id}")));
        };
        let row = self.with_archived_content(&scope, row).await?;
        let envelope = self.open_envelope(&scope, &row)?;
        let key_ref: KeyRef = row
            .key_ref
            .parse()
            .map_err(|_| CoreError::Internal(format!("record {id} has a bad key ref")))?;
        let key = self.vault.content_key_for(scope.org_id(), &key_ref)?;
        let decryptor = key.blob_decryptor(scope.org_id(), id);
        let key = match row.state {
            RecordState::Archived => crate::lifecycle::archive_blob_key(scope.org_id(), id),
            _ => blob_key(scope.org_id(), id),
        };
        let reader = self.objects.reader(&key).await?;
        let event = self
            .event(caller, "file.download")
            .org(scope.org_id())
            .target(format!("record:{id}"));
        self.store.append_audit(&[event]).await?;

        // State: the object stream and the decryptor until the object ends, then nothing.
        let body = futures::stream::try_unfold(Some((reader, decryptor)), |state| async move {
            let Some((mut reader, mut decryptor)) = state else {
                return Ok(None);
            };
            loop {
                match reader.next().await {
                    Some(chunk) => {
                        let plain = decryptor
                            .push(&chunk.map_err(CoreError::from)?)
                            .map_err(CoreError::from)?;
                        if !plain.is_empty() {
                            return Ok(Some((Bytes::from(plain), Some((reader, decryptor)))));
                        }
                    }
                    None => {
                        let last = decryptor.finish().map_err(CoreError::from)?;
                        return Ok(Some((Bytes::from(last), None)));
                    }
                }
            }
        })
        .boxed();
        let (file_name, content_type) = envelope
            .map(|e| (e.file_name, e.content_type))
            .unwrap_or_default();
        Ok(FileDownload {
            size,
            file_name,
            content_type,
            body,
        })
    }
}
