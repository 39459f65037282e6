//! Exports for access and portability requests: everything held about a subject (records of
//! every category and tier, their files, tokenized values revealed, and the audit events
//! about the subject), streamed into a `custos-export` writer page by page, so memory stays
//! bounded whatever the subject holds.
//!
//! Over HTTP the export is stored as a file record of the `exports` category (so it expires
//! like any other data, and is erased with the subject) and downloaded from there; the CLI
//! writes it straight to a file.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::sync::{Arc, Mutex};

use base64::Engine;
use bytes::Bytes;
use futures::StreamExt;
use sha2::{Digest, Sha256};

use custos_audit::AuditAction;
use custos_export::{
    CategorySummary, ExportEvent, ExportFile, ExportHeader, ExportRecord, ExportWriter, Format,
    WithheldCategory,
};
use custos_store::{
    AuditFilter, OrgScope, RecordFilter, RecordRow, RecordState, RequestKind, RequestStatus,
    SubjectRequest,
};

use custos_audit::{Details, Target};

use crate::access::Grant;
use crate::authz::Operation;
use crate::{Caller, CoreError, Custos, FileDownload, FileUpload, Principal};

/// The policy category exports are stored in.
pub const EXPORTS_CATEGORY: &str = "exports";
/// Records read per store round trip.
const EXPORT_PAGE: u32 = 500;
/// Files up to this size are included in the export; larger ones are listed with their hash.
const INLINE_FILE_MAX: u64 = 1 << 20;
/// Bytes gathered before they are handed on.
const CHUNK: usize = 64 * 1024;
/// Metadata key of an export record naming the categories whose records it holds, so that a
/// download of the stored file applies their access rules too.
pub(crate) const EXPORT_CONTAINS: &str = "contains";

/// A `Write` that collects bytes for the async side to take.
#[derive(Clone, Default)]
struct Pipe(Arc<Mutex<Vec<u8>>>);

impl Pipe {
    fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
    fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

impl Write for Pipe {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn export_error(e: custos_export::ExportError) -> CoreError {
    CoreError::internal_from("export", e)
}

/// Where the bytes of an export go, chunk by chunk.
type Sink = tokio::sync::mpsc::Sender<Result<Bytes, CoreError>>;

/// Parses an export format name (`json`, `csv`, `pdf`).
pub fn export_format(name: &str) -> Result<Format, CoreError> {
    name.parse()
        .map_err(|_| CoreError::invalid("format", "must be json, csv or pdf"))
}

impl Custos {
    /// Writes the export of `subject` to `sink`; returns how many records it holds and how
    /// many of them were read from the archive tier.
    #[allow(clippy::too_many_arguments)] // one call site each; a struct would only rename them
    async fn produce_export(
        &self,
        scope: &OrgScope,
        subject: &str,
        request: Option<&SubjectRequest>,
        format: Format,
        mut counts: BTreeMap<String, u64>,
        withheld: &BTreeSet<String>,
        sink: &Sink,
    ) -> Result<(u64, u64), CoreError> {
        let org = self
            .store
            .org(scope.org_id())
            .await?
            .map(|(_, o)| o)
            .ok_or_else(|| CoreError::NotFound(format!("org {}", scope.org_id())))?;
        let subject_ref = self.vault.subject_ref(scope.org_id(), subject).await?;
        // What the downloader may not read is left out, and named with its count.
        let withheld: Vec<WithheldCategory> = withheld
            .iter()
            .filter_map(|name| {
                counts.remove(name).map(|records| WithheldCategory {
                    category: name.clone(),
                    records,
                })
            })
            .collect();
        let mut categories = Vec::with_capacity(counts.len());
        for (name, records) in &counts {
            let policy = self.policy.category(name);
            let retention = match policy {
                Some(c) => self
                    .retention_override(scope, name)
                    .await?
                    .map_or_else(|| c.retention.to_string(), |r| r.to_string()),
                None => String::new(),
            };
            categories.push(CategorySummary {
                category: name.clone(),
                records: *records,
                retention,
                archive_after: policy.and_then(|c| c.archive_after.map(|a| a.to_string())),
                classification: policy
                    .map(|c| c.classification.to_string())
                    .unwrap_or_default(),
                next_expiry: None,
            });
        }
        let header = ExportHeader {
            org: org.id.clone(),
            org_name: org.name.clone(),
            subject: subject.to_string(),
            request: request.map(|r| r.id.clone()),
            generated_at: self.now(),
            tool: format!("custos {}", env!("CARGO_PKG_VERSION")),
            categories,
            request_due: request.map(|r| r.due_at),
            withheld,
        };
        let pipe = Pipe::default();
        let mut writer =
            custos_export::writer(format, pipe.clone(), &header).map_err(export_error)?;
        let (mut total, mut archived) = (0u64, 0u64);
        for category in counts.keys() {
            let filter = RecordFilter {
                subject_ref: Some(subject_ref.clone()),
                category: Some(category.clone()),
                states: vec![
                    RecordState::Active,
                    RecordState::Archived,
                    RecordState::SoftDeleted,
                ],
            };
            let mut after: Option<String> = None;
            loop {
                let rows = self
                    .store
                    .for_org(scope)
                    .await?
                    .list_records(scope, &filter, after.as_deref(), EXPORT_PAGE)
                    .await?;
                let Some(last) = rows.last() else { break };
                after = Some(last.id.clone());
                let full = rows.len() == EXPORT_PAGE as usize;
                for row in rows {
                    archived += u64::from(row.state == RecordState::Archived);
                    let record = self.export_record(scope, row).await?;
                    writer.record(&record).map_err(export_error)?;
                    total += 1;
                    if pipe.len() >= CHUNK {
                        send(sink, pipe.take()).await?;
                    }
                }
                if !full {
                    break;
                }
            }
        }
        self.export_events(scope, &subject_ref, request, writer.as_mut(), &pipe, sink)
            .await?;
        writer.finish().map_err(export_error)?;
        send(sink, pipe.take()).await?;
        Ok((total, archived))
    }

    /// The subject's records per category, as an export counts them: records whose purge is
    /// under way are gone for the subject, and earlier exports are left out (they are copies
    /// of the other categories, made for whoever downloaded them: including one would hand a
    /// later downloader what an earlier one was allowed to read).
    async fn export_counts(
        &self,
        scope: &OrgScope,
        subject_ref: &str,
    ) -> Result<BTreeMap<String, u64>, CoreError> {
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        for c in self
            .store
            .for_org(scope)
            .await?
            .subject_record_counts(scope, subject_ref)
            .await?
        {
            if !c.state.is_purge_pending() && c.category != EXPORTS_CATEGORY {
                *counts.entry(c.category).or_default() += c.records;
            }
        }
        Ok(counts)
    }

    /// The categories among `categories` the downloader may not read, by the same category
    /// rules (roles, groups, second factor) every other access meets. A `service` member
    /// downloading the export of a request it filed itself (an app handing its user their own
    /// data) gets everything, as does Custos itself (the CLI).
    fn withheld_categories<'a>(
        &self,
        caller: &Caller,
        grant: &Grant,
        request: Option<&SubjectRequest>,
        categories: impl IntoIterator<Item = &'a String>,
    ) -> BTreeSet<String> {
        if request.is_some_and(|r| own_export(caller, r)) {
            return BTreeSet::new();
        }
        categories
            .into_iter()
            .filter(|name| match self.policy.category(name) {
                Some(category) => !self.may_use_category(caller, grant, category),
                // A category the policy no longer names has no rule to open it: only Custos
                // itself reads it.
                None => !matches!(caller.principal, Principal::System),
            })
            .cloned()
            .collect()
    }

    /// Writes the audit events about the subject: those naming its reference or one of its
    /// requests.
    async fn export_events(
        &self,
        scope: &OrgScope,
        subject_ref: &str,
        request: Option<&SubjectRequest>,
        writer: &mut (dyn ExportWriter + Send),
        pipe: &Pipe,
        sink: &Sink,
    ) -> Result<(), CoreError> {
        let own = request.map(|r| Target::Request(r.id.to_string()));
        let mut from = 0;
        loop {
            let page = self
                .store
                .audit_query(Some(scope), &AuditFilter::default(), from, 1000)
                .await?;
            let Some(last) = page.last() else { break };
            from = last.index + 1;
            for entry in page {
                let Ok(event) = custos_audit::AuditEvent::from_canonical_bytes(&entry.leaf) else {
                    continue;
                };
                let about = event.details.subject_ref.as_deref() == Some(subject_ref)
                    || (own.is_some() && event.target == own);
                if !about {
                    continue;
                }
                let actor = event.actor.name();
                writer
                    .event(&ExportEvent {
                        index: entry.index,
                        time: event.time,
                        action: event.action.as_str().to_string(),
                        actor,
                        target: event.target.as_ref().map(ToString::to_string),
                        outcome: serde_json::to_value(event.outcome)
                            .ok()
                            .and_then(|v| v.as_str().map(str::to_string))
                            .unwrap_or_default(),
                        reason: export_reason(&event),
                    })
                    .map_err(export_error)?;
            }
            if pipe.len() >= CHUNK {
                send(sink, pipe.take()).await?;
            }
        }
        Ok(())
    }

    /// One record as exported: decrypted (archive tier included), tokens revealed, file
    /// inlined when small.
    async fn export_record(
        &self,
        scope: &OrgScope,
        mut row: RecordRow,
    ) -> Result<ExportRecord, CoreError> {
        let tier = if row.state == RecordState::Archived {
            row.sealed = self
                .objects_of(scope)
                .await?
                .read_small(&crate::lifecycle::archive_envelope_key(
                    scope.org_id(),
                    &row.id,
                ))
                .await?;
            "archive"
        } else {
            "hot"
        };
        let envelope = self.open_envelope(scope, &row).await?;
        let (mut content, mut metadata, file_name, content_type, tokens) = match envelope {
            Some(e) => (
                e.content,
                e.metadata,
                e.file_name,
                e.content_type,
                e.org_tokens.unwrap_or_default(),
            ),
            None => (
                serde_json::Value::Null,
                serde_json::Value::Null,
                None,
                None,
                Vec::new(),
            ),
        };
        let mut file_name = file_name;
        if !tokens.is_empty() {
            let vault = self.org_token_vault(scope, &tokens).await?;
            content = crate::records::detokenize_value(content, &vault);
            metadata = crate::records::detokenize_value(metadata, &vault);
            file_name = file_name.map(|n| custos_pii::detokenize(&n, &vault));
        }
        let file = match row.blob_size {
            None => None,
            Some(size) => {
                let mut body = self.blob_plaintext(scope, &row).await?;
                let mut hash = Sha256::new();
                let mut inline = (size <= INLINE_FILE_MAX).then(Vec::new);
                while let Some(chunk) = body.next().await {
                    let chunk = chunk?;
                    hash.update(&chunk);
                    if let Some(buf) = inline.as_mut() {
                        buf.extend_from_slice(&chunk);
                    }
                }
                Some(ExportFile {
                    name: file_name,
                    content_type,
                    size,
                    sha256: hex::encode(hash.finalize()),
                    content_base64: inline
                        .map(|b| base64::engine::general_purpose::STANDARD.encode(b)),
                })
            }
        };
        Ok(ExportRecord {
            id: row.id,
            category: row.category,
            state: row.state.as_str().to_string(),
            tier: tier.to_string(),
            created_at: row.created_at,
            archive_at: row.archive_at,
            expire_at: row.expire_at,
            deleted_at: row.deleted_at,
            content,
            metadata,
            pii: row.pii,
            file,
        })
    }

    /// `custos dsr export`: writes the export of `subject` to `out` (no request needed;
    /// audited as `request.export`). Returns how many records it holds.
    pub async fn export_subject(
        &self,
        caller: &Caller,
        org: &str,
        subject: &str,
        format: Format,
        out: &mut (dyn Write + Send),
    ) -> Result<u64, CoreError> {
        let grant = self
            .authorize(caller, Operation::RequestExport, org)
            .await?;
        self.authorize_category(caller, &grant, EXPORTS_CATEGORY, None)
            .await?;
        crate::records::check_subject(&Some(subject.to_string()))?;
        let subject_ref = self
            .vault
            .subject_ref(grant.scope.org_id(), subject)
            .await?;
        let counts = self.export_counts(&grant.scope, &subject_ref).await?;
        let withheld = self.withheld_categories(caller, &grant, None, counts.keys());
        let scope = grant.scope;
        let (tx, mut rx) = tokio::sync::mpsc::channel(8);
        let produce = async {
            let result = self
                .produce_export(&scope, subject, None, format, counts, &withheld, &tx)
                .await;
            drop(tx);
            result
        };
        let consume = async {
            while let Some(chunk) = rx.recv().await {
                out.write_all(&chunk?)
                    .map_err(|e| CoreError::internal_from("writing the export", e))?;
            }
            Ok::<(), CoreError>(())
        };
        let (produced, consumed) = tokio::join!(produce, consume);
        let (records, archived) = produced?;
        consumed?;
        let event = self
            .event(caller, AuditAction::RequestExport)
            .org(scope.org_id())
            .details(export_details(
                &subject_ref,
                format,
                records,
                archived,
                &withheld,
            ));
        self.store.append_audit(&[event]).await?;
        Ok(records)
    }

    /// The export of an access or portability request in `format`, produced on first ask
    /// (stored as an `exports` record, and completing the request) and downloaded from
    /// there.
    pub async fn request_export(
        &self,
        caller: &Caller,
        org: &str,
        id: &str,
        format: Format,
    ) -> Result<FileDownload, CoreError> {
        let grant = self
            .authorize(caller, Operation::RequestExport, org)
            .await?;
        let scope = grant.scope.clone();
        let mut request = self.load_request(&scope, id).await?;
        let own = own_export(caller, &request);
        let grant = grant.for_own_export(own);
        self.authorize_category(
            caller,
            &grant,
            EXPORTS_CATEGORY,
            Some(Target::Request(id.to_string())),
        )
        .await?;
        if request.kind == RequestKind::Erasure {
            return Err(CoreError::Conflict(format!(
                "request {id} is an erasure; it has a certificate, not an export"
            )));
        }
        let counts = self.export_counts(&scope, &request.subject_ref).await?;
        let withheld = self.withheld_categories(caller, &grant, Some(&request), counts.keys());
        // One stored export per format and set of withheld categories: a downloader never gets
        // a file made for someone allowed to read more.
        let key = export_key(format, &withheld);
        let mut exports: BTreeMap<String, String> =
            serde_json::from_str(&request.progress).unwrap_or_default();
        if let Some(record) = exports.get(&key) {
            return self.download_export_file(caller, org, record, own).await;
        }
        let Some(sealed) = request.subject_sealed.clone() else {
            return Err(CoreError::Conflict(format!(
                "request {id} is {} and no longer holds its subject; file a new request",
                request.status
            )));
        };
        let subject = self.open_request_subject(&scope, id, &sealed).await?;
        if request.status == RequestStatus::Received {
            request.status = RequestStatus::InProgress;
            let event = self
                .event(caller, AuditAction::RequestStart)
                .org(scope.org_id())
                .target(Target::Request(id.to_string()));
            request = self.save_request(&scope, request, None, &[event]).await?;
        }
        let (tx, rx) = tokio::sync::mpsc::channel(8);
        let upload = FileUpload {
            category: EXPORTS_CATEGORY.into(),
            subject: Some(subject.clone()),
            file_name: Some(format!("export-{id}.{}", format.file_extension())),
            content_type: Some(format.media_type().into()),
            metadata: Some(serde_json::json!({
                "request": id,
                "format": format.name(),
                EXPORT_CONTAINS: counts.keys().filter(|c| !withheld.contains(*c)).collect::<Vec<_>>(),
            })),
        };
        let body = tokio_stream_of(rx);
        let produce = async {
            let result = self
                .produce_export(
                    &scope,
                    &subject,
                    Some(&request),
                    format,
                    counts.clone(),
                    &withheld,
                    &tx,
                )
                .await;
            if let Err(e) = &result {
                // The upload sees the failure and stores nothing.
                let _ = tx.send(Err(CoreError::internal(e.to_string()))).await;
            }
            drop(tx);
            result
        };
        let (produced, stored) = tokio::join!(produce, self.upload(caller, org, upload, body, own));
        let (records, archived) = produced?;
        let stored = stored?;
        exports.insert(key, stored.id.clone());
        request.progress = serde_json::to_string(&exports).expect("map serializes");
        let first = request.status != RequestStatus::Completed;
        request.status = RequestStatus::Completed;
        request.completed_at.get_or_insert(self.now());
        let mut events = vec![self
            .event(caller, AuditAction::RequestExport)
            .org(scope.org_id())
            .target(Target::Request(id.to_string()))
            .details(
                export_details(&request.subject_ref, format, records, archived, &withheld)
                    .export(stored.id.to_string()),
            )];
        if first {
            events.push(
                self.event(caller, AuditAction::RequestComplete)
                    .org(scope.org_id())
                    .target(Target::Request(id.to_string()))
                    .details(
                        Details::new()
                            .subject_ref(request.subject_ref.clone())
                            .status("completed"),
                    ),
            );
        }
        self.save_request(&scope, request, None, &events).await?;
        self.download_export_file(caller, org, &stored.id, own)
            .await
    }
}

/// Whether `caller` is a `service` member asking for the export of a request it filed itself
/// (an app handing its user their own data): it gets everything, whatever the categories'
/// rules, as the design brief fixes.
fn own_export(caller: &Caller, request: &SubjectRequest) -> bool {
    match &caller.principal {
        Principal::Member { member, .. } => {
            member.roles.iter().any(|r| r == "service") && request.filed_by == caller.actor_name()
        }
        _ => false,
    }
}

/// The key of a stored export in its request's progress: the format, and the categories left
/// out of it (none: the format alone, as exports made before withholding were stored).
fn export_key(format: Format, withheld: &BTreeSet<String>) -> String {
    if withheld.is_empty() {
        format.name().to_string()
    } else {
        let names: Vec<&str> = withheld.iter().map(String::as_str).collect();
        format!("{}:without={}", format.name(), names.join(","))
    }
}

/// ` withheld=a,b` for the audit reason (category names only), or nothing.
/// An audit event's reason as an export shows it: a version-1 event's text, or a reason
/// code and the details as words.
fn export_reason(event: &custos_audit::AuditEvent) -> Option<String> {
    if event.v == 1 || event.details.is_empty() {
        return event.reason.clone();
    }
    let summary = event.details.summary();
    Some(match &event.reason {
        Some(code) => format!("{code} {summary}"),
        None => summary,
    })
}

/// An export's audit details: whose, in which format, how much, and what was left out.
fn export_details(
    subject_ref: &str,
    format: impl std::fmt::Display,
    records: u64,
    archived: u64,
    withheld: &BTreeSet<String>,
) -> Details {
    let details = Details::new()
        .subject_ref(subject_ref)
        .format(format.to_string())
        .records(records)
        .archived_read(archived);
    if withheld.is_empty() {
        details
    } else {
        details.withheld(withheld.iter().cloned().collect::<Vec<_>>())
    }
}

async fn send(sink: &Sink, bytes: Vec<u8>) -> Result<(), CoreError> {
    if bytes.is_empty() {
        return Ok(());
    }
    sink.send(Ok(Bytes::from(bytes)))
        .await
        .map_err(|_| CoreError::internal("the export's reader went away"))
}

/// The receiving end of an export as a byte stream.
fn tokio_stream_of(
    mut rx: tokio::sync::mpsc::Receiver<Result<Bytes, CoreError>>,
) -> futures::stream::BoxStream<'static, Result<Bytes, CoreError>> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed()
}
