//! Files: records whose content is a blob in the object store, sealed chunk by chunk so any
//! size streams through in bounded memory.

use std::collections::BTreeMap;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use serde_json::Value;

use custos_crypto::KeyRef;
use custos_pii::Finding;
use custos_store::{RecordRow, RecordState};

use custos_audit::{Details, Target};

use crate::pii::{BatchTokens, PiiBlocked, ScanAcc, ScrubPlan, TokenKeys};
use crate::pii_stream::{TextScrubber, Window};
use crate::records::{check_metadata, check_subject, Envelope, ENVELOPE_PART};
use crate::{Caller, CoreError, CreatedRecord, Custos, Principal};

/// Whether a body of `content_type` is text the PII rule scans: `text/*`, JSON, NDJSON,
/// XML and `+json` / `+xml` types. Anything else (or no type) is stored as binary.
pub(crate) fn is_text_type(content_type: Option<&str>) -> bool {
    let Some(ct) = content_type else {
        return false;
    };
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence.starts_with("text/")
        || matches!(
            essence.as_str(),
            "application/json" | "application/x-ndjson" | "application/xml"
        )
        || essence.ends_with("+json")
        || essence.ends_with("+xml")
}

/// The PII state of one upload: what was found so far and the org tokens it resolved.
struct FilePii<'s> {
    plan: &'s ScrubPlan,
    acc: ScanAcc<'s>,
    tokens: BatchTokens,
    /// This org's mint lock, held from the first token resolved until the upload ends.
    minting: Option<tokio::sync::MutexGuard<'s, ()>>,
}

impl<'s> FilePii<'s> {
    fn new(plan: &'s ScrubPlan, scanner: &'s custos_pii::Scanner) -> Self {
        FilePii {
            plan,
            acc: ScanAcc::new(plan, scanner),
            tokens: BatchTokens::default(),
            minting: None,
        }
    }
}

/// A file's name, metadata, PII counts, tokens to store and org tokens used, as stored.
type ScrubbedFields = (
    Option<String>,
    Value,
    BTreeMap<String, u64>,
    BatchTokens,
    Option<Vec<String>>,
);

/// What resolving an upload's org tokens needs.
struct TokensFor<'a> {
    scope: &'a custos_store::OrgScope,
    /// `None` unless the rule tokenizes.
    keys: Option<&'a TokenKeys>,
    subject_ref: &'a Option<String>,
}

/// Why an upload stopped streaming.
enum Stop {
    /// The category's `block` rule caught PII in the body.
    Blocked,
    /// Anything else.
    Core(CoreError),
}

impl From<CoreError> for Stop {
    fn from(e: CoreError) -> Self {
        Stop::Core(e)
    }
}

/// The object being written: plaintext in, sealed chunks out, plaintext bytes counted.
struct BlobSink {
    writer: custos_store::ObjectWriter,
    encryptor: custos_crypto::BlobEncryptor,
    size: u64,
}

impl BlobSink {
    /// Seals and writes `bytes`, as stored (after any PII transformation).
    async fn put(&mut self, bytes: &[u8]) -> Result<(), CoreError> {
        self.size += bytes.len() as u64;
        let sealed = self.encryptor.push(bytes);
        if !sealed.is_empty() {
            self.writer.write(&sealed).await?;
        }
        Ok(())
    }

    /// Seals the last chunk and completes the object.
    async fn finish(mut self) -> Result<(), CoreError> {
        self.writer.write(&self.encryptor.finish()).await?;
        self.writer.finish().await?;
        Ok(())
    }
}

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
    ///
    /// The category's PII rule applies to the file name and metadata, and to the body of
    /// text types ([`is_text_type`]) as it streams: `block` refuses the upload (nothing is
    /// stored, only the refusal is audited); other actions transform the text before it is
    /// sealed, and the recorded size is that of the stored text.
    pub async fn upload_file<S, E>(
        &self,
        caller: &Caller,
        org: &str,
        upload: FileUpload,
        body: S,
    ) -> Result<CreatedRecord, CoreError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin + Send,
        E: std::fmt::Display,
    {
        self.upload(caller, org, upload, body, false).await
    }

    /// [`Custos::upload_file`]; with `own_export`, the upload is the export of a request the
    /// caller filed itself (see [`crate::authz::Facts::own_export`]).
    pub(crate) async fn upload<S, E>(
        &self,
        caller: &Caller,
        org: &str,
        upload: FileUpload,
        mut body: S,
        own_export: bool,
    ) -> Result<CreatedRecord, CoreError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin + Send,
        E: std::fmt::Display,
    {
        // The category is enumerated by the OpenAPI document: an unknown one is bad input,
        // before anything about the org (its state, the caller's rights) is looked at.
        self.known_category(&upload.category)?;
        let grant = self
            .authorize(caller, crate::authz::Operation::FileUpload, org)
            .await?
            .for_own_export(own_export);
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
        let plan = self.scrub_plan(&scope, category).await?;
        // The name and metadata are scanned before any byte is stored, so a block on them
        // refuses the upload without touching the object store.
        let mut pii = plan.as_ref().map(|plan| FilePii::new(plan, &self.scanner));
        let name_found = match (&mut pii, &upload.file_name) {
            (Some(pii), Some(name)) => pii.acc.text(&"file_name", name),
            _ => Vec::new(),
        };
        if let (Some(pii), Some(m)) = (&mut pii, upload.metadata.as_ref()) {
            if !m.is_null() {
                pii.acc.metadata(m);
            }
        }
        if let Some(p) = pii.take_if(|p| p.acc.is_blocked()) {
            return Err(self.refuse_file(caller, &scope, &category.name, p).await);
        }
        let now = self.now();
        let retention = self.retention_override(&scope, &category.name).await?;
        let due = category.due_times(now, retention);
        let id = uuid::Uuid::now_v7().to_string();
        let subject_ref = match upload.subject.as_deref() {
            Some(s) => Some(self.vault.subject_ref(scope.org_id(), s).await?),
            None => None,
        };
        let slot = subject_ref
            .as_deref()
            .map(|r| custos_crypto::KeyVault::subject_slot(r, &category.name));
        let key = self
            .vault
            .content_key(scope.org_id(), slot.as_deref())
            .await?;
        let token_keys = match &plan {
            Some(plan) if plan.tokenizes() => {
                Some(TokenKeys::for_org(&self.vault, scope.org_id()).await?)
            }
            _ => None,
        };
        let object = blob_key(scope.org_id(), &id);
        let objects = self.objects_of(&scope).await?;
        let mut sink = BlobSink {
            writer: objects.writer(&object).await?,
            encryptor: key.blob_encryptor(scope.org_id(), &id),
            size: 0,
        };
        let mut scrubber = match &pii {
            Some(pii) if is_text_type(upload.content_type.as_deref()) => {
                Some(TextScrubber::new(pii.plan.kinds().to_vec()))
            }
            _ => None,
        };
        let tokens_for = TokensFor {
            scope: &scope,
            keys: token_keys.as_ref(),
            subject_ref: &subject_ref,
        };
        let scrub = match (&mut scrubber, &mut pii) {
            (Some(scrubber), Some(pii)) => Some((scrubber, pii)),
            _ => None,
        };
        let streamed = self
            .stream_body(&mut body, &mut sink, scrub, &tokens_for)
            .await;
        let size = sink.size;
        match streamed {
            Ok(()) => sink.finish().await?,
            Err(stop) => {
                let _ = sink.writer.abort().await;
                return Err(match stop {
                    Stop::Core(e) => e,
                    Stop::Blocked => match pii {
                        Some(p) => self.refuse_file(caller, &scope, &category.name, p).await,
                        None => CoreError::internal("a PII block without a rule"),
                    },
                });
            }
        }

        // `pii` lives to the end: it holds the org's mint lock, if taken, past the commit.
        let (file_name, metadata, counts, tokens, org_tokens) = match pii.as_mut() {
            None => (
                upload.file_name,
                upload.metadata.unwrap_or(Value::Null),
                BTreeMap::new(),
                BatchTokens::default(),
                None,
            ),
            Some(pii) => {
                let fields = (upload.file_name, name_found, upload.metadata);
                match self.scrub_fields(pii, &tokens_for, fields).await {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = objects.delete(&object).await;
                        return Err(e);
                    }
                }
            }
        };
        let envelope = Envelope {
            content: Value::Null,
            subject: upload.subject,
            metadata,
            file_name,
            content_type: upload.content_type,
            tokens: None,
            org_tokens,
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
            pii: serde_json::to_value(&counts).expect("map serializes"),
        };
        let event = self
            .event(caller, custos_audit::AuditAction::FileUpload)
            .org(scope.org_id())
            .target(Target::Record(id.to_string()))
            .details(
                Details::new()
                    .category(category.name.clone())
                    .bytes(size as u64),
            );
        let created = CreatedRecord {
            id: id.to_string(),
            category: category.name.clone(),
            archive_at: due.archive_at,
            expire_at: due.expire_at,
            pii: counts,
        };
        let mut events = vec![event];
        events.extend(self.pii_detections(caller, &scope, std::slice::from_ref(&created)));
        let inserted = if tokens.write.is_empty() {
            self.store
                .for_org(&scope)
                .await?
                .insert_records(&scope, &[row], &events)
                .await
                .map(|()| true)
        } else {
            self.store
                .for_org(&scope)
                .await?
                .insert_records_with_tokens(&scope, &[row], &tokens.write, &events)
                .await
        };
        let failed = match inserted {
            Ok(true) => None,
            // Another process minted the same values or numbers first; the body is gone,
            // so the caller uploads again.
            Ok(false) => Some(CoreError::Conflict(
                "concurrent writes minted the same PII tokens; retry the upload".into(),
            )),
            Err(e) => Some(e.into()),
        };
        if let Some(e) = failed {
            let _ = objects.delete(&object).await;
            return Err(e);
        }
        Ok(created)
    }

    /// Streams `body` into `sink`: as is, or window by window through `scrub` (a text body
    /// under a PII rule).
    async fn stream_body<'s, S, E>(
        &'s self,
        body: &mut S,
        sink: &mut BlobSink,
        mut scrub: Option<(&mut TextScrubber, &mut FilePii<'s>)>,
        tokens_for: &TokensFor<'_>,
    ) -> Result<(), Stop>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin + Send,
        E: std::fmt::Display,
    {
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| CoreError::invalid("body", e.to_string()))?;
            let Some((scrubber, pii)) = scrub.as_mut() else {
                sink.put(&chunk).await?;
                continue;
            };
            if let Some(window) = scrubber.push(&self.scanner, &chunk)? {
                let text = self.scrub_window(pii, tokens_for, window).await?;
                sink.put(text.as_bytes()).await?;
            }
        }
        if let Some((scrubber, pii)) = scrub {
            if let Some(window) = scrubber.finish(&self.scanner)? {
                let text = self.scrub_window(pii, tokens_for, window).await?;
                sink.put(text.as_bytes()).await?;
            }
        }
        Ok(())
    }

    /// Scans one window of a text body and returns its text as stored: transformed by the
    /// rule, or [`Stop::Blocked`] when the rule blocks what it holds.
    async fn scrub_window<'s>(
        &'s self,
        pii: &mut FilePii<'s>,
        tokens_for: &TokensFor<'_>,
        window: Window,
    ) -> Result<String, Stop> {
        pii.acc
            .found(&"body", window.offset, &window.text, &window.findings);
        if pii.acc.is_blocked() {
            return Err(Stop::Blocked);
        }
        if window.findings.is_empty() {
            return Ok(window.text);
        }
        let mut vault = self.window_vault(pii, tokens_for).await?;
        let text = pii
            .plan
            .transform(&window.text, &window.findings, vault.as_mut())
            .map_err(|e| CoreError::internal_from("PII rule in the file body", e))?;
        Ok(text.unwrap_or(window.text))
    }

    /// A frozen vault of the org tokens of every value the upload tokenizes so far,
    /// resolving (and minting) those it lacks; `None` when the rule does not tokenize.
    async fn window_vault<'s>(
        &'s self,
        pii: &mut FilePii<'s>,
        tokens_for: &TokensFor<'_>,
    ) -> Result<Option<custos_pii::TokenVault>, CoreError> {
        let Some(keys) = tokens_for.keys else {
            return Ok(None);
        };
        let targets = &pii.acc.scan.targets;
        if targets.is_empty() {
            return Ok(None);
        }
        if pii.minting.is_none() {
            // Tokens minted now are stored only with the record, so this org's other
            // minters wait until the upload commits (see `MintLocks`).
            pii.minting = Some(self.mint_locks.lock(tokens_for.scope.org_id()).await);
        }
        let wanted = targets
            .iter()
            .map(|(k, v)| (*k, v.clone(), tokens_for.subject_ref.clone()))
            .collect();
        self.resolve_more_tokens(tokens_for.scope, keys, wanted, &mut pii.tokens)
            .await?;
        pii.tokens.vault_for(targets)
    }

    /// Applies the rule to the file name (given its findings) and metadata once the body is
    /// stored: their tokens, if any, are resolved with the body's. Returns them with the
    /// upload's PII counts, its tokens to store and the org tokens its envelope uses.
    async fn scrub_fields<'s>(
        &'s self,
        pii: &mut FilePii<'s>,
        tokens_for: &TokensFor<'_>,
        (name, name_found, metadata): (Option<String>, Vec<Finding>, Option<Value>),
    ) -> Result<ScrubbedFields, CoreError> {
        let mut vault = self.window_vault(pii, tokens_for).await?;
        let plan = pii.plan;
        let name = match name {
            Some(name) => Some(
                plan.transform(&name, &name_found, vault.as_mut())
                    .map_err(|e| CoreError::internal_from("PII rule at file_name", e))?
                    .unwrap_or(name),
            ),
            None => None,
        };
        let scan = std::mem::take(&mut pii.acc.scan);
        let metadata =
            plan.apply_metadata(metadata.unwrap_or(Value::Null), scan.meta, vault.as_mut())?;
        let used = vault.map(|v| v.entries().iter().map(|e| e.token.clone()).collect());
        Ok((
            name,
            metadata,
            scan.counts,
            std::mem::take(&mut pii.tokens),
            used,
        ))
    }

    /// Refuses an upload whose name, metadata or body a `block` rule caught (audited).
    async fn refuse_file(
        &self,
        caller: &Caller,
        scope: &custos_store::OrgScope,
        category: &str,
        pii: FilePii<'_>,
    ) -> CoreError {
        match pii.acc.finish() {
            Err((counts, hits)) => {
                let blocked = PiiBlocked {
                    category: category.to_string(),
                    counts,
                    hits,
                };
                self.refuse_pii(caller, scope, blocked).await
            }
            Ok(_) => CoreError::internal("a PII block without hits"),
        }
    }

    /// Streams a file record's plaintext, authenticating every chunk.
    pub async fn download_file(
        &self,
        caller: &Caller,
        org: &str,
        id: &str,
    ) -> Result<FileDownload, CoreError> {
        self.download(caller, org, id, false, false).await
    }

    /// Downloads a stored export for `request_export`, which already left out what the
    /// caller may not read (or decided the caller gets everything: `own_export`, see
    /// [`crate::authz::Facts::own_export`]).
    pub(crate) async fn download_export_file(
        &self,
        caller: &Caller,
        org: &str,
        id: &str,
        own_export: bool,
    ) -> Result<FileDownload, CoreError> {
        self.download(caller, org, id, true, own_export).await
    }

    async fn download(
        &self,
        caller: &Caller,
        org: &str,
        id: &str,
        export_checked: bool,
        own_export: bool,
    ) -> Result<FileDownload, CoreError> {
        let grant = self
            .authorize(caller, crate::authz::Operation::FileDownload, org)
            .await?
            .for_own_export(own_export);
        let row = self.readable_record(caller, &grant, id).await?;
        let Some(size) = row.blob_size else {
            return Err(CoreError::NotFound(format!("file of record {id}")));
        };
        let row = self.with_archived_content(&grant.scope, row).await?;
        let envelope = self.open_envelope(&grant.scope, &row).await?;
        if row.category == crate::export::EXPORTS_CATEGORY && !export_checked {
            let metadata = envelope.as_ref().map(|e| &e.metadata);
            self.check_export_contents(caller, &grant, id, metadata)
                .await?;
        }
        let scope = grant.scope;
        let body = self.blob_plaintext(&scope, &row).await?;
        let event = self
            .event(caller, custos_audit::AuditAction::FileDownload)
            .org(scope.org_id())
            .target(Target::Record(id.to_string()))
            .details(crate::records::read_details(&row));
        self.store.append_audit(&[event]).await?;
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

    /// A stored export holds other categories' records: downloading its file directly needs
    /// the access rule of each of them, as a record read would (an export stored before it
    /// named them needs every category's). Refusals are audited.
    async fn check_export_contents(
        &self,
        caller: &Caller,
        grant: &crate::access::Grant,
        id: &str,
        metadata: Option<&serde_json::Value>,
    ) -> Result<(), CoreError> {
        let named: Option<Vec<&str>> = metadata
            .and_then(|m| m.get(crate::export::EXPORT_CONTAINS))
            .and_then(|c| c.as_array())
            .map(|a| a.iter().filter_map(|v| v.as_str()).collect());
        let names: Vec<&str> = match named {
            Some(names) => names,
            None => self.policy.categories.keys().map(String::as_str).collect(),
        };
        for name in names {
            // A category the policy no longer names is refused like one the caller may not read.
            if self.policy.category(name).is_none()
                && !matches!(caller.principal, Principal::System)
            {
                return Err(CoreError::Forbidden(format!(
                    "export record {id} holds category `{name}`, which the policy no longer names"
                )));
            }
            if self.policy.category(name).is_some() {
                self.authorize_category(caller, grant, name, Some(Target::Record(id.to_string())))
                    .await?;
            }
        }
        Ok(())
    }

    /// The decrypted bytes of a record's blob (hot or archive tier), as they stream in.
    pub(crate) async fn blob_plaintext(
        &self,
        scope: &custos_store::OrgScope,
        row: &custos_store::RecordRow,
    ) -> Result<BoxStream<'static, Result<Bytes, CoreError>>, CoreError> {
        let id = &row.id;
        let key_ref: KeyRef = row
            .key_ref
            .parse()
            .map_err(|_| CoreError::internal(format!("record {id} has a bad key ref")))?;
        let key = self.vault.content_key_for(scope.org_id(), &key_ref).await?;
        let decryptor = key.blob_decryptor(scope.org_id(), id);
        let key = match row.state {
            RecordState::Archived => crate::lifecycle::archive_blob_key(scope.org_id(), id),
            _ => blob_key(scope.org_id(), id),
        };
        let reader = self.objects_of(scope).await?.reader(&key).await?;
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
        Ok(body)
    }
}
