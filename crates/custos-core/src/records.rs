//! Records: create (in batches), read, list, soft delete and restore.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use custos_crypto::KeyRef;
use custos_store::{OrgScope, RecordFilter, RecordRow, RecordState, StateChange};

use crate::pii::{PiiBlocked, ScrubPlan, Scrubbed};
use crate::{Caller, CoreError, Custos};

/// Request to store one record.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRecord {
    /// Policy category (`messages`, `interactions`, ...).
    pub category: String,
    /// The natural person the data is about, if any (the customer's own id for them).
    #[serde(default)]
    pub subject: Option<String>,
    /// The content: any JSON value (a string for text).
    #[schema(value_type = Object)]
    pub content: Value,
    /// Caller metadata (a JSON object); sealed with the content.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub metadata: Option<Value>,
}

/// A record just stored.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CreatedRecord {
    /// Record id.
    pub id: String,
    /// Category.
    pub category: String,
    /// When it moves to the archive tier.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub archive_at: Option<jiff::Timestamp>,
    /// When its retention ends.
    #[schema(value_type = String, format = DateTime)]
    pub expire_at: jiff::Timestamp,
    /// PII found on the way in: entity type → count (never values).
    pub pii: BTreeMap<String, u64>,
}

/// One record, decrypted.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RecordView {
    /// Record id.
    pub id: String,
    /// Category.
    pub category: String,
    /// Subject, if any.
    pub subject: Option<String>,
    /// Content (`null` for categories that keep no content).
    #[schema(value_type = Object)]
    pub content: Value,
    /// Caller metadata.
    #[schema(value_type = Object)]
    pub metadata: Value,
    /// Lifecycle state.
    pub state: String,
    /// Creation time.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: jiff::Timestamp,
    /// Archive time.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub archive_at: Option<jiff::Timestamp>,
    /// Expiry time.
    #[schema(value_type = String, format = DateTime)]
    pub expire_at: jiff::Timestamp,
    /// PII summary.
    #[schema(value_type = Object)]
    pub pii: Value,
    /// Size of the attached file, if the record is a file.
    pub file_size: Option<u64>,
    /// Original file name, if the record is a file.
    pub file_name: Option<String>,
    /// File media type, if the record is a file.
    pub content_type: Option<String>,
}

/// One record in a listing (no content).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RecordSummary {
    /// Record id.
    pub id: String,
    /// Category.
    pub category: String,
    /// Lifecycle state.
    pub state: String,
    /// Creation time.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: jiff::Timestamp,
    /// Expiry time.
    #[schema(value_type = String, format = DateTime)]
    pub expire_at: jiff::Timestamp,
    /// PII summary.
    #[schema(value_type = Object)]
    pub pii: Value,
    /// File size, if a file.
    pub file_size: Option<u64>,
}

/// A page of records.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RecordPage {
    /// Records, ordered by id (creation order).
    pub items: Vec<RecordSummary>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// What is sealed: everything a caller gave except the category.
#[derive(Serialize, Deserialize)]
pub(crate) struct Envelope {
    pub content: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(default)]
    pub metadata: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// Pseudonyms minted by the `tokenize` PII action, sealed with the record so an
    /// authorized reader can reverse them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<custos_pii::TokenVault>,
}

/// Content keys fetched once for a whole batch: one key-store round trip (and at most one
/// key-store transaction for new subjects) instead of one per record.
#[derive(Default)]
pub(crate) struct BatchKeys {
    pub org: Option<custos_crypto::ContentKey>,
    pub subjects: HashMap<String, custos_crypto::ContentKey>,
}

/// What a new row needs besides its envelope.
pub(crate) struct RowSpec<'a> {
    pub id: String,
    pub category: &'a str,
    pub subject_ref: Option<String>,
    pub now: jiff::Timestamp,
    pub due: custos_policy::DueTimes,
    pub pii: &'a BTreeMap<String, u64>,
}

/// Part name of the sealed envelope in the associated data.
pub(crate) const ENVELOPE_PART: &str = "envelope";
const MAX_SUBJECT_CHARS: usize = 256;
/// Largest page a list returns.
pub const MAX_PAGE: u32 = 1000;

pub(crate) fn check_subject(subject: &Option<String>) -> Result<(), CoreError> {
    if let Some(s) = subject {
        if s.is_empty() || s.chars().count() > MAX_SUBJECT_CHARS {
            return Err(CoreError::invalid(
                "subject",
                format!("must be 1 to {MAX_SUBJECT_CHARS} characters"),
            ));
        }
    }
    Ok(())
}

pub(crate) fn check_metadata(metadata: &Option<Value>) -> Result<(), CoreError> {
    match metadata {
        None | Some(Value::Object(_)) | Some(Value::Null) => Ok(()),
        Some(_) => Err(CoreError::invalid("metadata", "must be a JSON object")),
    }
}

pub(crate) fn next_due(
    archive_at: Option<jiff::Timestamp>,
    expire_at: jiff::Timestamp,
) -> jiff::Timestamp {
    archive_at.map_or(expire_at, |a| a.min(expire_at))
}

/// One validated request of a batch, waiting for the CPU-bound half of the write path.
struct Pending {
    id: String,
    category: String,
    store_content: bool,
    plan: Option<Arc<ScrubPlan>>,
    due: custos_policy::DueTimes,
    subject: Option<String>,
    subject_ref: Option<String>,
    content: Value,
    metadata: Option<Value>,
}

/// Scrubs, envelopes and seals one pending record. Pure CPU work: runs on any thread.
fn seal_pending(
    scanner: &custos_pii::Scanner,
    org: &str,
    keys: &BatchKeys,
    now: jiff::Timestamp,
    p: Pending,
) -> Result<(RecordRow, BTreeMap<String, u64>), Refused> {
    let scrubbed = match &p.plan {
        None => Scrubbed::untouched(p.content),
        Some(plan) => plan.apply(scanner, p.content).map_err(|(counts, hits)| {
            Refused::Pii(PiiBlocked {
                category: p.category.clone(),
                counts,
                hits,
            })
        })?,
    };
    let envelope = p.store_content.then(|| Envelope {
        content: scrubbed.content,
        subject: p.subject,
        metadata: p.metadata.unwrap_or(Value::Null),
        file_name: None,
        content_type: None,
        tokens: scrubbed.vault,
    });
    let spec = RowSpec {
        id: p.id,
        category: &p.category,
        subject_ref: p.subject_ref,
        now,
        due: p.due,
        pii: &scrubbed.counts,
    };
    let row = seal_row(org, keys, spec, envelope).map_err(Refused::Core)?;
    Ok((row, scrubbed.counts))
}

/// Why one record of a batch was not sealed.
enum Refused {
    /// The category blocks PII and some was found.
    Pii(PiiBlocked),
    /// Anything else.
    Core(CoreError),
}

/// Seals `envelope` under the subject's key (else the org key) from `keys` and builds the
/// row; an internal error if `keys` lacks that key.
fn seal_row(
    org: &str,
    keys: &BatchKeys,
    spec: RowSpec<'_>,
    envelope: Option<Envelope>,
) -> Result<RecordRow, CoreError> {
    let (key_ref, sealed) = match envelope {
        Some(envelope) => {
            let plaintext = serde_json::to_vec(&envelope).expect("JSON values serialize");
            let key = match &spec.subject_ref {
                Some(r) => keys.subjects.get(r),
                None => keys.org.as_ref(),
            }
            .ok_or_else(|| CoreError::Internal("content key missing from the batch".into()))?;
            let sealed = key.seal(org, &spec.id, ENVELOPE_PART, &plaintext);
            (key.key_ref().to_string(), Some(sealed))
        }
        None => (KeyRef::Org { version: 0 }.to_string(), None),
    };
    Ok(RecordRow {
        id: spec.id,
        category: spec.category.to_string(),
        subject_ref: spec.subject_ref,
        state: RecordState::Active,
        created_at: spec.now,
        archive_at: spec.due.archive_at,
        expire_at: spec.due.expire_at,
        deleted_at: None,
        next_due_at: Some(next_due(spec.due.archive_at, spec.due.expire_at)),
        key_ref,
        sealed,
        blob_size: None,
        pii: serde_json::to_value(spec.pii).expect("map serializes"),
    })
}

impl Custos {
    /// Stores one record.
    pub async fn create_record(
        &self,
        caller: &Caller,
        org: &str,
        req: NewRecord,
    ) -> Result<CreatedRecord, CoreError> {
        let mut created = self.create_records(caller, org, vec![req]).await?;
        Ok(created.pop().expect("one record in, one out"))
    }

    /// Stores records in one transaction: all are stored, or none.
    pub async fn create_records(
        &self,
        caller: &Caller,
        org: &str,
        reqs: Vec<NewRecord>,
    ) -> Result<Vec<CreatedRecord>, CoreError> {
        let scope = self.scope_for(caller, org, "record.create").await?;
        let now = self.now();
        // 1. Validate and resolve everything that may need the store (denials are audited),
        //    sequentially and cheaply.
        let mut overrides = HashMap::new();
        let mut plans: HashMap<String, Option<Arc<ScrubPlan>>> = HashMap::new();
        let mut pending = Vec::with_capacity(reqs.len());
        for req in reqs {
            let category = self
                .category_for(caller, &scope, &req.category, "record.create", None)
                .await?;
            check_subject(&req.subject)?;
            check_metadata(&req.metadata)?;
            if req.content.is_null() {
                return Err(CoreError::invalid("content", "must not be null"));
            }
            if !overrides.contains_key(&category.name) {
                let o = self.retention_override(&scope, &category.name).await?;
                overrides.insert(category.name.clone(), o);
                plans.insert(
                    category.name.clone(),
                    self.scrub_plan(&scope, category)?.map(Arc::new),
                );
            }
            let subject_ref = req
                .subject
                .as_deref()
                .map(|s| self.vault.subject_ref(scope.org_id(), s))
                .transpose()?;
            pending.push(Pending {
                id: uuid::Uuid::now_v7().to_string(),
                category: category.name.clone(),
                store_content: category.store_content,
                plan: plans[&category.name].clone(),
                due: category.due_times(now, overrides[&category.name]),
                subject: req.subject,
                subject_ref,
                content: req.content,
                metadata: req.metadata,
            });
        }
        // 2. Every content key the batch needs, in one key-store round trip.
        let keys = self.batch_keys(&scope, &pending).await?;
        // 3. The CPU-bound part (PII scan, anonymization, envelope, AES-GCM) on all cores.
        let (scanner, org_id) = (self.scanner.clone(), scope.org_id().to_string());
        let sealed = tokio::task::spawn_blocking(move || {
            use rayon::prelude::*;
            pending
                .into_par_iter()
                .with_min_len(32)
                .map(|p| seal_pending(&scanner, &org_id, &keys, now, p))
                .collect::<Vec<_>>()
        })
        .await
        .map_err(|e| CoreError::Internal(format!("sealing task failed: {e}")))?;
        let mut rows = Vec::with_capacity(sealed.len());
        let mut events = Vec::with_capacity(sealed.len());
        let mut created = Vec::with_capacity(sealed.len());
        for outcome in sealed {
            let (row, counts) = match outcome {
                Ok(done) => done,
                // The first refusal in request order; nothing of the batch is stored.
                Err(Refused::Pii(blocked)) => {
                    return Err(self.refuse_pii(caller, &scope, blocked).await)
                }
                Err(Refused::Core(e)) => return Err(e),
            };
            events.push(
                self.event(caller, "record.create")
                    .org(scope.org_id())
                    .target(format!("record:{}", row.id))
                    .reason(format!("category={}", row.category)),
            );
            created.push(CreatedRecord {
                id: row.id.clone(),
                category: row.category.clone(),
                archive_at: row.archive_at,
                expire_at: row.expire_at,
                pii: counts,
            });
            rows.push(row);
        }
        self.store.insert_records(&scope, &rows, &events).await?;
        Ok(created)
    }

    /// The content keys `pending` needs: each subject's (created on first use) and, if any
    /// record has no subject, the org's.
    async fn batch_keys(
        &self,
        scope: &OrgScope,
        pending: &[Pending],
    ) -> Result<BatchKeys, CoreError> {
        let sealed = pending.iter().filter(|p| p.store_content);
        let wanted: Vec<String> = sealed
            .clone()
            .filter_map(|p| p.subject_ref.clone())
            .collect();
        let org_wanted = sealed.clone().any(|p| p.subject_ref.is_none());
        let (vault, org) = (self.vault.clone(), scope.org_id().to_string());
        // Key-store I/O is blocking; keep it off the async workers.
        tokio::task::spawn_blocking(move || {
            let refs: Vec<&str> = wanted.iter().map(String::as_str).collect();
            Ok(BatchKeys {
                org: org_wanted
                    .then(|| vault.content_key(&org, None))
                    .transpose()?,
                subjects: if refs.is_empty() {
                    HashMap::new()
                } else {
                    vault.subject_content_keys(&org, &refs)?
                },
            })
        })
        .await
        .map_err(|e| CoreError::Internal(format!("key task failed: {e}")))?
    }

    /// Seals `envelope` under the subject's key (else the org key), fetching into `keys`
    /// whichever key it lacks, and builds the row. `None` envelope: metadata only.
    pub(crate) fn sealed_row(
        &self,
        scope: &OrgScope,
        keys: &mut BatchKeys,
        spec: RowSpec<'_>,
        envelope: Option<Envelope>,
    ) -> Result<RecordRow, CoreError> {
        if envelope.is_some() {
            match &spec.subject_ref {
                Some(r) if !keys.subjects.contains_key(r) => {
                    let key = self.vault.content_key(scope.org_id(), Some(r))?;
                    keys.subjects.insert(r.clone(), key);
                }
                None if keys.org.is_none() => {
                    keys.org = Some(self.vault.content_key(scope.org_id(), None)?);
                }
                _ => {}
            }
        }
        seal_row(scope.org_id(), keys, spec, envelope)
    }

    /// Loads a visible record the caller may read, checking the category rule.
    pub(crate) async fn readable_record(
        &self,
        caller: &Caller,
        scope: &OrgScope,
        id: &str,
        action: &str,
    ) -> Result<RecordRow, CoreError> {
        let row = self
            .store
            .record(scope, id)
            .await?
            .filter(|r| r.state != RecordState::SoftDeleted)
            .ok_or_else(|| CoreError::NotFound(format!("record {id}")))?;
        self.category_for(
            caller,
            scope,
            &row.category,
            action,
            Some(format!("record:{id}")),
        )
        .await?;
        Ok(row)
    }

    /// Opens a record's sealed envelope.
    pub(crate) fn open_envelope(
        &self,
        scope: &OrgScope,
        row: &RecordRow,
    ) -> Result<Option<Envelope>, CoreError> {
        let Some(sealed) = &row.sealed else {
            return Ok(None);
        };
        let key_ref: KeyRef = row
            .key_ref
            .parse()
            .map_err(|_| CoreError::Internal(format!("record {} has a bad key ref", row.id)))?;
        let key = self.vault.content_key_for(scope.org_id(), &key_ref)?;
        let plaintext = key.open(scope.org_id(), &row.id, ENVELOPE_PART, sealed)?;
        serde_json::from_slice(&plaintext)
            .map(Some)
            .map_err(|e| CoreError::Internal(format!("record {} envelope: {e}", row.id)))
    }

    /// Reads one record, decrypted. Archived records need a restore request first.
    pub async fn get_record(
        &self,
        caller: &Caller,
        org: &str,
        id: &str,
    ) -> Result<RecordView, CoreError> {
        let scope = self.scope_for(caller, org, "record.read").await?;
        let row = self
            .readable_record(caller, &scope, id, "record.read")
            .await?;
        let (view, _) = self.record_view(&scope, row)?;
        let event = self
            .event(caller, "record.read")
            .org(scope.org_id())
            .target(format!("record:{id}"));
        self.store.append_audit(&[event]).await?;
        Ok(view)
    }

    /// Decrypts a row into its view, with the record's token vault if it has one.
    fn record_view(
        &self,
        scope: &OrgScope,
        row: RecordRow,
    ) -> Result<(RecordView, Option<custos_pii::TokenVault>), CoreError> {
        if row.state == RecordState::Archived {
            return Err(CoreError::Conflict(format!(
                "record {} is archived; its content is retrievable only through an authorized restore request",
                row.id
            )));
        }
        let envelope = self.open_envelope(scope, &row)?;
        let (content, subject, metadata, file_name, content_type, tokens) = match envelope {
            Some(e) => (
                e.content,
                e.subject,
                e.metadata,
                e.file_name,
                e.content_type,
                e.tokens,
            ),
            None => (Value::Null, None, Value::Null, None, None, None),
        };
        let view = RecordView {
            id: row.id,
            category: row.category,
            subject,
            content,
            metadata,
            state: row.state.as_str().to_string(),
            created_at: row.created_at,
            archive_at: row.archive_at,
            expire_at: row.expire_at,
            pii: row.pii,
            file_size: row.blob_size,
            file_name,
            content_type,
        };
        Ok((view, tokens))
    }

    /// Reads one record with `tokenize` pseudonyms reversed: owners and admins only, audited
    /// as `record.reveal`.
    pub async fn reveal_record(
        &self,
        caller: &Caller,
        org: &str,
        id: &str,
    ) -> Result<RecordView, CoreError> {
        let scope = self.scope_for(caller, org, "record.reveal").await?;
        self.require_manager(caller, &scope, "record.reveal", &["owner", "admin"])
            .await?;
        let row = self
            .readable_record(caller, &scope, id, "record.reveal")
            .await?;
        let mut view = self.record_view(&scope, row)?;
        if let Some(vault) = view.1.take() {
            view.0.content = detokenize_value(view.0.content, &vault);
        }
        let event = self
            .event(caller, "record.reveal")
            .org(scope.org_id())
            .target(format!("record:{id}"));
        self.store.append_audit(&[event]).await?;
        Ok(view.0)
    }

    /// Lists the org's visible records the caller may read, by subject and/or category.
    pub async fn list_records(
        &self,
        caller: &Caller,
        org: &str,
        subject: Option<&str>,
        category: Option<&str>,
        cursor: Option<&str>,
        limit: Option<u32>,
    ) -> Result<RecordPage, CoreError> {
        let scope = self.scope_for(caller, org, "record.list").await?;
        let limit = limit.unwrap_or(100);
        if limit == 0 || limit > MAX_PAGE {
            return Err(CoreError::invalid(
                "limit",
                format!("must be 1 to {MAX_PAGE}"),
            ));
        }
        if let Some(c) = category {
            self.category_for(caller, &scope, c, "record.list", None)
                .await?;
        }
        let filter = RecordFilter {
            subject_ref: subject
                .map(|s| self.vault.subject_ref(scope.org_id(), s))
                .transpose()?,
            category: category.map(str::to_string),
            states: vec![RecordState::Active, RecordState::Archived],
        };
        let rows = self
            .store
            .list_records(&scope, &filter, cursor, limit)
            .await?;
        let next_cursor = (rows.len() == limit as usize)
            .then(|| rows.last().map(|r| r.id.clone()))
            .flatten();
        let items = rows
            .into_iter()
            .filter(|r| {
                self.policy
                    .category(&r.category)
                    .is_some_and(|c| crate::access::category_refusal(caller, c).is_none())
            })
            .map(|r| RecordSummary {
                id: r.id,
                category: r.category,
                state: r.state.as_str().to_string(),
                created_at: r.created_at,
                expire_at: r.expire_at,
                pii: r.pii,
                file_size: r.blob_size,
            })
            .collect();
        Ok(RecordPage { items, next_cursor })
    }

    /// Soft-deletes a record: hidden at once, restorable within the soft-delete window.
    pub async fn soft_delete(&self, caller: &Caller, org: &str, id: &str) -> Result<(), CoreError> {
        let scope = self.scope_for(caller, org, "record.delete").await?;
        let row = self
            .readable_record(caller, &scope, id, "record.delete")
            .await?;
        let now = self.now();
        let change = StateChange {
            id: id.to_string(),
            from: row.state,
            to: RecordState::SoftDeleted,
            deleted_at: Some(now),
            next_due_at: Some(self.policy.deletion.soft_delete_window.add_to(now)),
        };
        let event = self
            .event(caller, "record.delete")
            .org(scope.org_id())
            .target(format!("record:{id}"))
            .reason("soft_delete");
        self.apply_transition(&scope, change, event).await
    }

    /// Applies a compare-and-set state change with its audit event; a lost race is a conflict.
    async fn apply_transition(
        &self,
        scope: &OrgScope,
        change: StateChange,
        event: custos_audit::AuditEvent,
    ) -> Result<(), CoreError> {
        if self
            .store
            .transition_record(scope, &change, &[event])
            .await?
        {
            Ok(())
        } else {
            Err(CoreError::Conflict(format!(
                "record {} changed concurrently; retry",
                change.id
            )))
        }
    }

    /// Restores a soft-deleted record while its window is open.
    pub async fn restore(&self, caller: &Caller, org: &str, id: &str) -> Result<(), CoreError> {
        let scope = self.scope_for(caller, org, "record.restore").await?;
        let row = self
            .store
            .record(&scope, id)
            .await?
            .filter(|r| r.state == RecordState::SoftDeleted)
            .ok_or_else(|| CoreError::NotFound(format!("soft-deleted record {id}")))?;
        self.category_for(
            caller,
            &scope,
            &row.category,
            "record.restore",
            Some(format!("record:{id}")),
        )
        .await?;
        let now = self.now();
        let deleted_at = row.deleted_at.unwrap_or(row.created_at);
        let closes = self.policy.deletion.soft_delete_window.add_to(deleted_at);
        if now >= closes {
            return Err(CoreError::Conflict(format!(
                "the restore window of record {id} closed at {closes}"
            )));
        }
        let change = StateChange {
            id: id.to_string(),
            from: RecordState::SoftDeleted,
            to: RecordState::Active,
            deleted_at: None,
            next_due_at: Some(next_due(row.archive_at, row.expire_at)),
        };
        let event = self
            .event(caller, "record.restore")
            .org(scope.org_id())
            .target(format!("record:{id}"));
        self.apply_transition(&scope, change, event).await
    }
}

/// Reverses `tokenize` pseudonyms in every string of `value`.
fn detokenize_value(value: Value, vault: &custos_pii::TokenVault) -> Value {
    match value {
        Value::String(s) => Value::String(custos_pii::detokenize(&s, vault)),
        Value::Array(items) => Value::Array(
            items
                .into_iter()
                .map(|v| detokenize_value(v, vault))
                .collect(),
        ),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k, detokenize_value(v, vault)))
                .collect(),
        ),
        other => other,
    }
}
