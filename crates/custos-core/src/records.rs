//! Records: create (in batches), read, list, soft delete and restore.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use custos_crypto::{KeyRef, KeyVault};
use custos_store::{OrgScope, PurgeCause, RecordFilter, RecordRow, RecordState, StateChange};

use custos_audit::{Details, Target};

use crate::access::Grant;
use crate::authz::Operation;
use crate::pii::{BatchTokens, PiiBlocked, Scan, ScrubPlan, TokenKeys};
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
    #[schema(value_type = serde_json::Value)]
    pub content: Value,
    /// Caller metadata (a JSON object); sealed with the content.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
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

impl CreatedRecord {
    /// The response for a row about to be stored, with the PII counts of its scan.
    fn new(row: &RecordRow, pii: BTreeMap<String, u64>) -> Self {
        CreatedRecord {
            id: row.id.clone(),
            category: row.category.clone(),
            archive_at: row.archive_at,
            expire_at: row.expire_at,
            pii,
        }
    }
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
    #[schema(value_type = serde_json::Value)]
    pub content: Value,
    /// Caller metadata (`null` if none was sent).
    #[schema(value_type = serde_json::Value)]
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
    /// Per-record pseudonyms of records written before tokens were org-wide; still read so
    /// those records can be revealed. New records leave it out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<custos_pii::TokenVault>,
    /// The org-wide pseudonyms (`tokenize`) this content uses. Reveal resolves only these, so
    /// a `<PERSON_1>` typed by a caller into another record reveals nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_tokens: Option<Vec<String>>,
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

/// What a read's audit event says of the record: its category and its subject's keyed
/// reference (never the subject id).
pub(crate) fn read_details(row: &RecordRow) -> Details {
    let details = Details::new().category(row.category.clone());
    match &row.subject_ref {
        Some(subject_ref) => details.subject_ref(subject_ref.clone()),
        None => details,
    }
}

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
#[derive(Clone)]
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

/// A pending record after its PII scan (`None`: its category has no PII rule).
#[derive(Clone)]
struct Scanned {
    p: Pending,
    scan: Option<Scan>,
}

impl Scanned {
    /// The values this record needs org tokens for.
    fn targets(&self) -> &[(custos_pii::EntityKind, String)] {
        self.scan.as_ref().map_or(&[], |s| &s.targets)
    }
}

/// Scans one pending record and checks its category's rule. Pure CPU work.
fn scan_pending(scanner: &custos_pii::Scanner, p: Pending) -> Result<Scanned, Refused> {
    let scan = match &p.plan {
        None => None,
        Some(plan) => {
            let mut scan = plan
                .scan(scanner, &p.content, p.metadata.as_ref())
                .map_err(|(counts, hits)| {
                    Refused::Pii(PiiBlocked {
                        category: p.category.clone(),
                        counts,
                        hits,
                    })
                })?;
            // Pass-through content is dropped, so it gets no tokens: minting would keep the
            // values of content the policy says not to keep.
            if !p.store_content {
                scan.targets.clear();
            }
            Some(scan)
        }
    };
    Ok(Scanned { p, scan })
}

/// Scrubs (with the batch's org tokens), envelopes and seals one scanned record. Pure CPU
/// work: runs on any thread.
fn seal_scanned(
    org: &str,
    keys: &BatchKeys,
    tokens: &BatchTokens,
    now: jiff::Timestamp,
    s: Scanned,
) -> Result<SealedRecord, Refused> {
    let Scanned { p, scan } = s;
    let metadata = p.metadata.unwrap_or(Value::Null);
    let (content, metadata, counts, org_tokens) = match (&p.plan, scan) {
        (Some(plan), Some(scan)) if p.store_content => {
            let mut vault = tokens.vault_for(&scan.targets).map_err(Refused::Core)?;
            let used = vault
                .as_ref()
                .map(|v| v.entries().iter().map(|e| e.token.clone()).collect());
            let content = plan
                .apply(p.content, scan.findings, vault.as_mut())
                .map_err(Refused::Core)?;
            let metadata = plan
                .apply_metadata(metadata, scan.meta, vault.as_mut())
                .map_err(Refused::Core)?;
            (content, metadata, scan.counts, used)
        }
        // Nothing is kept of pass-through content, so it is not anonymized either.
        (_, Some(scan)) => (Value::Null, Value::Null, scan.counts, None),
        (_, None) => (p.content, metadata, BTreeMap::new(), None),
    };
    let envelope = p.store_content.then_some(Envelope {
        content,
        subject: p.subject,
        metadata,
        file_name: None,
        content_type: None,
        tokens: None,
        org_tokens,
    });
    let spec = RowSpec {
        id: p.id,
        category: &p.category,
        subject_ref: p.subject_ref,
        now,
        due: p.due,
        pii: &counts,
    };
    let row = seal_row(org, keys, spec, envelope).map_err(Refused::Core)?;
    Ok((row, counts))
}

/// The most records one `create_records` call takes.
pub const MAX_BATCH_RECORDS: usize = 10_000;

/// Records per chunk of a streamed batch (see [`Custos::create_streamed`]): small enough
/// that the store starts writing soon, large enough to spread a chunk over the cores.
const STREAM_CHUNK: usize = 128;

/// The one `record.create` event of a batch, given `(id, category)` per record: for one
/// record, target `record:<id>` and reason `category=<c>`; for more, target `records` and
/// reason `records=<n> categories=<c,..> ids=<id,..>` (every id, in request order), so the
/// event alone says which records it created. One event per batch instead of one per record
/// keeps the audit append off the per-record cost of ingest.
fn create_event(
    event: custos_audit::AuditEvent,
    scope: &OrgScope,
    records: &[(&str, &str)],
) -> custos_audit::AuditEvent {
    let event = event.org(scope.org_id());
    if let [(id, category)] = records {
        return event
            .target(Target::Record(id.to_string()))
            .details(Details::new().category(*category));
    }
    let mut categories: Vec<&str> = records.iter().map(|(_, c)| *c).collect();
    categories.sort_unstable();
    categories.dedup();
    let ids: Vec<String> = records.iter().map(|(id, _)| id.to_string()).collect();
    event.target(Target::Records).details(
        Details::new()
            .records(records.len() as u64)
            .categories(categories.iter().map(|c| c.to_string()).collect::<Vec<_>>())
            .ids(ids),
    )
}

/// The record ids a `record.create` event names (see [`create_event`]): its target's for a
/// single record, its `ids=` list for a batch; empty for any other event.
pub fn created_record_ids(event: &custos_audit::AuditEvent) -> Vec<&str> {
    if event.action != custos_audit::AuditAction::RecordCreate {
        return Vec::new();
    }
    match &event.target {
        Some(Target::Records) => event
            .details
            .ids
            .iter()
            .flatten()
            .map(String::as_str)
            .collect(),
        Some(Target::Record(id)) => vec![id.as_str()],
        _ => Vec::new(),
    }
}

/// How often a tokenizing batch is resolved and sealed again after losing a race with a
/// concurrent batch of its org that minted the same values or numbers first. Each lost race
/// means another batch committed, so this bounds contention, not progress.
const TOKEN_ATTEMPTS: usize = 8;

/// Runs `f` (CPU-bound, rayon inside) on the blocking pool.
async fn on_all_cores<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, CoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| CoreError::internal_from("sealing task failed", e))
}

/// What reveal needs from an envelope to reverse `tokenize` pseudonyms.
#[derive(Default)]
struct Pseudonyms {
    /// The record's own vault (records written before tokens were org-wide).
    record_vault: Option<custos_pii::TokenVault>,
    /// The org tokens the content uses.
    org_tokens: Vec<String>,
}

/// One sealed record and its PII counts.
type SealedRecord = (RecordRow, BTreeMap<String, u64>);

/// A sealed batch ready to insert: rows, their audit events, and the responses.
type BatchRows = (
    Vec<RecordRow>,
    Vec<custos_audit::AuditEvent>,
    Vec<CreatedRecord>,
);

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
            let key = match &spec.subject_ref {
                Some(r) => keys.subjects.get(&KeyVault::subject_slot(r, spec.category)),
                None => keys.org.as_ref(),
            }
            .ok_or_else(|| CoreError::internal("content key missing from the batch"))?;
            let sealed = key
                .seal_json(org, &spec.id, ENVELOPE_PART, &envelope)
                .expect("JSON values serialize");
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

    /// Stores records in one transaction: all are stored, or none. At most
    /// [`MAX_BATCH_RECORDS`] per call; an empty batch stores and audits nothing.
    pub async fn create_records(
        &self,
        caller: &Caller,
        org: &str,
        reqs: Vec<NewRecord>,
    ) -> Result<Vec<CreatedRecord>, CoreError> {
        // The category is enumerated by the OpenAPI document: an unknown one is bad input,
        // before anything about the org (its state, the caller's rights) is looked at.
        for req in &reqs {
            self.known_category(&req.category)?;
        }
        let grant = self.authorize(caller, Operation::RecordCreate, org).await?;
        let scope = grant.scope.clone();
        if reqs.is_empty() {
            return Ok(Vec::new());
        }
        if reqs.len() > MAX_BATCH_RECORDS {
            // One batch is one transaction and one audit event naming every id, and a
            // streamed batch holds the SQLite writer while it is sealed: both stay bounded.
            return Err(CoreError::invalid(
                "records",
                format!(
                    "a batch holds at most {MAX_BATCH_RECORDS} records, got {}; split it",
                    reqs.len()
                ),
            ));
        }
        let now = self.now();
        // 1. Validate and resolve everything that may need the store (denials are audited),
        //    sequentially and cheaply.
        // Per category, once per batch: every record of the batch shares `now`, so it
        // shares its category's due times too.
        let mut dues = HashMap::new();
        let mut plans: HashMap<String, Option<Arc<ScrubPlan>>> = HashMap::new();
        let mut pending = Vec::with_capacity(reqs.len());
        for req in reqs {
            let category = self
                .authorize_category(caller, &grant, &req.category, None)
                .await?;
            check_subject(&req.subject)?;
            check_metadata(&req.metadata)?;
            if req.content.is_null() {
                return Err(CoreError::invalid("content", "must not be null"));
            }
            if !dues.contains_key(&category.name) {
                let o = self.retention_override(&scope, &category.name).await?;
                dues.insert(category.name.clone(), category.due_times(now, o));
                plans.insert(
                    category.name.clone(),
                    self.scrub_plan(&scope, category).await?.map(Arc::new),
                );
            }
            let subject_ref = match req.subject.as_deref() {
                Some(s) => Some(self.vault.subject_ref(scope.org_id(), s).await?),
                None => None,
            };
            pending.push(Pending {
                id: uuid::Uuid::now_v7().to_string(),
                category: category.name.clone(),
                store_content: category.store_content,
                plan: plans[&category.name].clone(),
                due: dues[&category.name],
                subject: req.subject,
                subject_ref,
                content: req.content,
                metadata: req.metadata,
            });
        }
        // 2. Every content key the batch needs, in one key-store round trip.
        let keys = self.batch_keys(&scope, &pending).await?;
        // 3. The CPU-bound part (PII scan, anonymization, envelope, AES-GCM) on all cores.
        let keys = Arc::new(keys);
        let (scanner, org_id) = (self.scanner.clone(), scope.org_id().to_string());
        let tokenizes = pending
            .iter()
            .any(|p| p.store_content && p.plan.as_ref().is_some_and(|plan| plan.tokenizes()));
        // A streamed batch commits its audit events before its findings are known; a category
        // that alerts on PII takes the one-pass path, whose events name them.
        let alerts = pending.iter().any(|p| self.alerts_on_pii(&p.category));
        if !tokenizes && !alerts && pending.len() > 2 * STREAM_CHUNK {
            return self
                .create_streamed(caller, &scope, pending, keys, now)
                .await;
        }
        if !tokenizes {
            // Nothing to resolve between scan and seal: one pass, as before tokens.
            let sealed = on_all_cores(move || {
                use rayon::prelude::*;
                let none = BatchTokens::default();
                pending
                    .into_par_iter()
                    .with_min_len(32)
                    .map(|p| {
                        scan_pending(&scanner, p)
                            .and_then(|s| seal_scanned(&org_id, &keys, &none, now, s))
                    })
                    .collect::<Vec<_>>()
            })
            .await?;
            let (rows, events, created) = self.batch_rows(caller, &scope, sealed).await?;
            self.store
                .for_org(&scope)
                .await?
                .insert_records(&scope, &rows, &events)
                .await?;
            return Ok(created);
        }
        // A tokenizing batch. The pseudonyms go inside the sealed content, so they must be
        // known before sealing, and new ones must be stored in the records' transaction. So:
        // scan on all cores (pure), resolve and mint the batch's tokens with one store read,
        // seal on all cores (pure), then insert records and new tokens together. The insert
        // is a compare-and-set on the org's tokens; losing it to a concurrent batch (same
        // value or number minted first) means resolving and sealing again. In this process,
        // batches that mint in one org take turns (`MintLocks`), so they do not lose to each
        // other; the compare-and-set is for other processes and for erased tokens.
        let scanned = {
            let scanner = scanner.clone();
            on_all_cores(move || {
                use rayon::prelude::*;
                pending
                    .into_par_iter()
                    .with_min_len(32)
                    .map(|p| scan_pending(&scanner, p))
                    .collect::<Vec<_>>()
            })
            .await?
        };
        let mut ok = Vec::with_capacity(scanned.len());
        for outcome in scanned {
            match outcome {
                Ok(s) => ok.push(s),
                // The first refusal in request order; nothing of the batch is stored, and no
                // token was minted.
                Err(Refused::Pii(blocked)) => {
                    return Err(self.refuse_pii(caller, &scope, blocked).await)
                }
                Err(Refused::Core(e)) => return Err(e),
            }
        }
        let scanned = Arc::new(ok);
        // Distinct values in request order, each with the subject of the first record that
        // holds it (what subject erasure will look tokens up by).
        let mut seen = HashSet::new();
        let wanted: Vec<_> = scanned
            .iter()
            .flat_map(|s| s.targets().iter().map(move |t| (t, &s.p.subject_ref)))
            .filter(|(t, _)| seen.insert(*t))
            .map(|((kind, value), subject_ref)| (*kind, value.clone(), subject_ref.clone()))
            .collect();
        let token_keys = if wanted.is_empty() {
            None
        } else {
            Some(TokenKeys::for_org(&self.vault, &org_id).await?)
        };
        let mut minting = None;
        for _ in 0..TOKEN_ATTEMPTS {
            let mut tokens = match &token_keys {
                Some(k) => self.resolve_tokens(&scope, k, wanted.clone()).await?,
                None => BatchTokens::default(),
            };
            if let (Some(k), true, None) = (&token_keys, !tokens.write.minted.is_empty(), &minting)
            {
                // Take turns with this process's other minters of the org (held until this
                // function returns, so past the commit), then resolve again: a value or
                // number one of them committed meanwhile is seen now, not lost at commit.
                minting = Some(self.mint_locks.lock(&org_id).await);
                tokens = self.resolve_tokens(&scope, k, wanted.clone()).await?;
            }
            let tokens = Arc::new(tokens);
            let sealed = {
                let (keys, tokens, scanned, org_id) = (
                    keys.clone(),
                    tokens.clone(),
                    scanned.clone(),
                    org_id.clone(),
                );
                on_all_cores(move || {
                    use rayon::prelude::*;
                    // Cloned, not moved: a lost race seals the same scans again.
                    scanned
                        .par_iter()
                        .with_min_len(32)
                        .map(|s| seal_scanned(&org_id, &keys, &tokens, now, s.clone()))
                        .collect::<Vec<_>>()
                })
                .await?
            };
            let (rows, events, created) = self.batch_rows(caller, &scope, sealed).await?;
            if tokens.write.is_empty() {
                self.store
                    .for_org(&scope)
                    .await?
                    .insert_records(&scope, &rows, &events)
                    .await?;
                return Ok(created);
            }
            if self
                .store
                .for_org(&scope)
                .await?
                .insert_records_with_tokens(&scope, &rows, &tokens.write, &events)
                .await?
            {
                return Ok(created);
            }
        }
        Err(CoreError::Conflict(
            "concurrent writes kept minting the same PII tokens; retry".into(),
        ))
    }

    /// Rows, audit event and responses of a sealed batch, in request order; the first
    /// refusal (audited) instead if any record was refused.
    async fn batch_rows(
        &self,
        caller: &Caller,
        scope: &OrgScope,
        sealed: Vec<Result<SealedRecord, Refused>>,
    ) -> Result<BatchRows, CoreError> {
        let mut rows = Vec::with_capacity(sealed.len());
        let mut created = Vec::with_capacity(sealed.len());
        for outcome in sealed {
            match outcome {
                Ok((row, counts)) => {
                    created.push(CreatedRecord::new(&row, counts));
                    rows.push(row);
                }
                Err(refused) => return Err(self.refusal(caller, scope, refused).await),
            }
        }
        let named: Vec<(&str, &str)> = rows
            .iter()
            .map(|r| (r.id.as_str(), r.category.as_str()))
            .collect();
        let event = create_event(
            self.event(caller, custos_audit::AuditAction::RecordCreate),
            scope,
            &named,
        );
        let mut events = vec![event];
        events.extend(self.pii_detections(caller, scope, &created));
        Ok((rows, events, created))
    }

    /// Whether writes to `category` raise a security event for the PII they hold.
    fn alerts_on_pii(&self, category: &str) -> bool {
        self.policy
            .category(category)
            .and_then(|c| c.pii.as_ref())
            .is_some_and(|rule| rule.alert)
    }

    /// One `pii.detect` event per category of the batch whose rule alerts and whose records
    /// held PII: how many records and how many of each entity, never values.
    pub(crate) fn pii_detections(
        &self,
        caller: &Caller,
        scope: &OrgScope,
        created: &[CreatedRecord],
    ) -> Vec<custos_audit::AuditEvent> {
        let mut found: BTreeMap<&str, (u64, BTreeMap<String, u64>)> = BTreeMap::new();
        for record in created {
            if record.pii.is_empty() || !self.alerts_on_pii(&record.category) {
                continue;
            }
            let (records, entities) = found.entry(&record.category).or_default();
            *records += 1;
            for (entity, n) in &record.pii {
                *entities.entry(entity.clone()).or_default() += n;
            }
        }
        found
            .into_iter()
            .map(|(category, (records, entities))| {
                self.event(caller, custos_audit::AuditAction::PiiDetect)
                    .org(scope.org_id())
                    .details(
                        Details::new()
                            .category(category)
                            .records(records)
                            .entities(entities),
                    )
            })
            .collect()
    }

    /// The error a refused record fails its batch with; a PII block is audited first.
    async fn refusal(&self, caller: &Caller, scope: &OrgScope, refused: Refused) -> CoreError {
        match refused {
            Refused::Pii(blocked) => self.refuse_pii(caller, scope, blocked).await,
            Refused::Core(e) => e,
        }
    }

    /// A large batch without tokens, pipelined: one blocking thread seals it chunk by chunk
    /// (each chunk on all cores) and streams the rows into one store transaction, which
    /// writes a chunk while the next is sealed. All or nothing as the one-pass path: a
    /// refused record drops the stream, which rolls back, and is then reported.
    async fn create_streamed(
        &self,
        caller: &Caller,
        scope: &OrgScope,
        pending: Vec<Pending>,
        keys: Arc<BatchKeys>,
        now: jiff::Timestamp,
    ) -> Result<Vec<CreatedRecord>, CoreError> {
        // The event names every id up front: ids are minted before sealing.
        let named: Vec<(&str, &str)> = pending
            .iter()
            .map(|p| (p.id.as_str(), p.category.as_str()))
            .collect();
        let event = create_event(
            self.event(caller, custos_audit::AuditAction::RecordCreate),
            scope,
            &named,
        );
        let (sender, chunks) = custos_store::record_stream(pending.len());
        let mut pieces = Vec::with_capacity(pending.len() / STREAM_CHUNK + 2);
        let mut pending = pending.into_iter().peekable();
        // A small first chunk starts the writer sooner.
        let mut size = STREAM_CHUNK / 4;
        while pending.peek().is_some() {
            pieces.push(pending.by_ref().take(size).collect::<Vec<_>>());
            size = STREAM_CHUNK;
        }
        let (scanner, org_id) = (self.scanner.clone(), scope.org_id().to_string());
        let sealing = tokio::task::spawn_blocking(move || -> Result<_, Refused> {
            use rayon::prelude::*;
            let none = BatchTokens::default();
            let mut created = Vec::new();
            for piece in pieces {
                let sealed: Vec<_> = piece
                    .into_par_iter()
                    .with_min_len(32)
                    .map(|p| {
                        scan_pending(&scanner, p)
                            .and_then(|s| seal_scanned(&org_id, &keys, &none, now, s))
                    })
                    .collect();
                let mut rows = Vec::with_capacity(sealed.len());
                for outcome in sealed {
                    let (row, counts) = outcome?;
                    created.push(CreatedRecord::new(&row, counts));
                    rows.push(row);
                }
                if !sender.blocking_send(rows) {
                    // The store gave up; its error is the answer.
                    break;
                }
            }
            Ok(created)
        });
        let insert = {
            let (store, scope) = (self.store.for_org(scope).await?.clone(), scope.clone());
            tokio::spawn(async move { store.insert_record_stream(&scope, chunks, &[event]).await })
        };
        let sealed = sealing
            .await
            .map_err(|e| CoreError::internal_from("sealing task failed", e))?;
        // The sender is gone: the insert has committed (every row arrived) or rolls back.
        let inserted = insert
            .await
            .map_err(|e| CoreError::internal_from("insert task failed", e))?;
        match sealed {
            Ok(created) => {
                inserted?;
                Ok(created)
            }
            Err(refused) => Err(self.refusal(caller, scope, refused).await),
        }
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
            .filter_map(|p| {
                let r = p.subject_ref.as_deref()?;
                Some(KeyVault::subject_slot(r, &p.category))
            })
            .collect();
        let org_wanted = sealed.clone().any(|p| p.subject_ref.is_none());
        let org = scope.org_id();
        let refs: Vec<&str> = wanted.iter().map(String::as_str).collect();
        Ok(BatchKeys {
            org: match org_wanted {
                true => Some(self.vault.content_key(org, None).await?),
                false => None,
            },
            subjects: if refs.is_empty() {
                HashMap::new()
            } else {
                self.vault.subject_content_keys(org, &refs).await?
            },
        })
    }

    /// Seals `envelope` under the subject's key (else the org key), fetching into `keys`
    /// whichever key it lacks, and builds the row. `None` envelope: metadata only.
    pub(crate) async fn sealed_row(
        &self,
        scope: &OrgScope,
        keys: &mut BatchKeys,
        spec: RowSpec<'_>,
        envelope: Option<Envelope>,
    ) -> Result<RecordRow, CoreError> {
        if envelope.is_some() {
            let slot = spec
                .subject_ref
                .as_deref()
                .map(|r| KeyVault::subject_slot(r, spec.category));
            match &slot {
                Some(slot) if !keys.subjects.contains_key(slot) => {
                    let key = self.vault.content_key(scope.org_id(), Some(slot)).await?;
                    keys.subjects.insert(slot.clone(), key);
                }
                None if keys.org.is_none() => {
                    keys.org = Some(self.vault.content_key(scope.org_id(), None).await?);
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
        grant: &Grant,
        id: &str,
    ) -> Result<RecordRow, CoreError> {
        let row = self
            .store
            .for_org(&grant.scope)
            .await?
            .record(&grant.scope, id)
            .await?
            .filter(|r| matches!(r.state, RecordState::Active | RecordState::Archived))
            .ok_or_else(|| CoreError::NotFound(format!("record {id}")))?;
        self.authorize_category(
            caller,
            grant,
            &row.category,
            Some(Target::Record(id.to_string())),
        )
        .await?;
        Ok(row)
    }

    /// Opens a record's sealed envelope.
    pub(crate) async fn open_envelope(
        &self,
        scope: &OrgScope,
        row: &RecordRow,
    ) -> Result<Option<Envelope>, CoreError> {
        self.open_envelope_with(scope, row, &mut HashMap::new())
            .await
    }

    /// [`Custos::open_envelope`], unwrapping each key once into `keys`: the records of one
    /// page of an erasure share their slot key, and a key-store lookup per record was most
    /// of the cost of anonymizing them.
    pub(crate) async fn open_envelope_with(
        &self,
        scope: &OrgScope,
        row: &RecordRow,
        keys: &mut HashMap<String, custos_crypto::ContentKey>,
    ) -> Result<Option<Envelope>, CoreError> {
        let Some(sealed) = &row.sealed else {
            return Ok(None);
        };
        let key = match keys.get(&row.key_ref) {
            Some(key) => key.clone(),
            None => {
                let key_ref: KeyRef = row.key_ref.parse().map_err(|_| {
                    CoreError::internal(format!("record {} has a bad key ref", row.id))
                })?;
                let key = self.vault.content_key_for(scope.org_id(), &key_ref).await?;
                keys.insert(row.key_ref.clone(), key.clone());
                key
            }
        };
        let plaintext = key.open(scope.org_id(), &row.id, ENVELOPE_PART, sealed)?;
        serde_json::from_slice(&plaintext)
            .map(Some)
            .map_err(|e| CoreError::internal_from(format!("record {} envelope", row.id), e))
    }

    /// Reads one record, decrypted. Archived records need a restore request first.
    pub async fn get_record(
        &self,
        caller: &Caller,
        org: &str,
        id: &str,
    ) -> Result<RecordView, CoreError> {
        let grant = self.authorize(caller, Operation::RecordRead, org).await?;
        let row = self.readable_record(caller, &grant, id).await?;
        let scope = grant.scope;
        let row = self.with_archived_content(&scope, row).await?;
        // Whose data was read, by keyed reference: what an incident's affected list is
        // computed from, also after the record is gone.
        let details = read_details(&row);
        let (view, _) = self.record_view(&scope, row).await?;
        let event = self
            .event(caller, custos_audit::AuditAction::RecordRead)
            .org(scope.org_id())
            .target(Target::Record(id.to_string()))
            .details(details);
        self.store.append_audit(&[event]).await?;
        Ok(view)
    }

    /// Decrypts a row into its view, with what reveal needs to reverse its pseudonyms.
    async fn record_view(
        &self,
        scope: &OrgScope,
        row: RecordRow,
    ) -> Result<(RecordView, Pseudonyms), CoreError> {
        let envelope = self.open_envelope(scope, &row).await?;
        let (content, subject, metadata, file_name, content_type, pseudonyms) = match envelope {
            Some(e) => (
                e.content,
                e.subject,
                e.metadata,
                e.file_name,
                e.content_type,
                Pseudonyms {
                    record_vault: e.tokens,
                    org_tokens: e.org_tokens.unwrap_or_default(),
                },
            ),
            None => (
                Value::Null,
                None,
                Value::Null,
                None,
                None,
                Pseudonyms::default(),
            ),
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
        Ok((view, pseudonyms))
    }

    /// Reads one record with `tokenize` pseudonyms reversed: owners and admins only, audited
    /// as `record.reveal`.
    pub async fn reveal_record(
        &self,
        caller: &Caller,
        org: &str,
        id: &str,
    ) -> Result<RecordView, CoreError> {
        let grant = self.authorize(caller, Operation::RecordReveal, org).await?;
        let row = self.readable_record(caller, &grant, id).await?;
        let scope = grant.scope;
        let row = self.with_archived_content(&scope, row).await?;
        let details = read_details(&row);
        let (mut view, pseudonyms) = self.record_view(&scope, row).await?;
        // Records from before org-wide tokens carry their own vault.
        if let Some(vault) = &pseudonyms.record_vault {
            view.content = detokenize_value(view.content, vault);
        }
        if !pseudonyms.org_tokens.is_empty() {
            let vault = self.org_token_vault(&scope, &pseudonyms.org_tokens).await?;
            view.content = detokenize_value(view.content, &vault);
            view.metadata = detokenize_value(view.metadata, &vault);
            view.file_name = view.file_name.map(|n| custos_pii::detokenize(&n, &vault));
        }
        let event = self
            .event(caller, custos_audit::AuditAction::RecordReveal)
            .org(scope.org_id())
            .target(Target::Record(id.to_string()))
            .details(details);
        self.store.append_audit(&[event]).await?;
        Ok(view)
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
        // The category is enumerated by the OpenAPI document: an unknown one is bad input,
        // before anything about the org (its state, the caller's rights) is looked at.
        if let Some(category) = category {
            self.known_category(category)?;
        }
        let grant = self.authorize(caller, Operation::RecordList, org).await?;
        let scope = grant.scope.clone();
        let limit = limit.unwrap_or(100);
        if limit == 0 || limit > MAX_PAGE {
            return Err(CoreError::invalid(
                "limit",
                format!("must be 1 to {MAX_PAGE}"),
            ));
        }
        if let Some(c) = category {
            self.authorize_category(caller, &grant, c, None).await?;
        }
        let filter = RecordFilter {
            subject_ref: match subject {
                Some(s) => Some(self.vault.subject_ref(scope.org_id(), s).await?),
                None => None,
            },
            category: category.map(str::to_string),
            states: vec![RecordState::Active, RecordState::Archived],
        };
        let rows = self
            .store
            .for_org(&scope)
            .await?
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
                    .is_some_and(|c| self.may_use_category(caller, &grant, c))
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
        let grant = self.authorize(caller, Operation::RecordDelete, org).await?;
        let row = self.readable_record(caller, &grant, id).await?;
        let scope = grant.scope;
        let now = self.now();
        let change = StateChange {
            id: id.to_string(),
            from: row.state,
            to: RecordState::SoftDeleted,
            deleted_at: Some(now),
            next_due_at: Some(self.policy.deletion.soft_delete_window.add_to(now)),
        };
        let event = self
            .event(caller, custos_audit::AuditAction::RecordDelete)
            .org(scope.org_id())
            .target(Target::Record(id.to_string()))
            .reason("soft_delete");
        self.apply_transition(&scope, change, event).await
    }

    /// Hard-deletes a record (also one already soft-deleted): hidden at once, not restorable,
    /// purged with its objects by the next sweep, within `hard_delete_within`.
    pub async fn hard_delete(&self, caller: &Caller, org: &str, id: &str) -> Result<(), CoreError> {
        let grant = self
            .authorize(caller, Operation::RecordHardDelete, org)
            .await?;
        let scope = grant.scope.clone();
        let row = self
            .store
            .for_org(&scope)
            .await?
            .record(&scope, id)
            .await?
            .filter(|r| !r.state.is_purge_pending())
            .ok_or_else(|| CoreError::NotFound(format!("record {id}")))?;
        self.authorize_category(
            caller,
            &grant,
            &row.category,
            Some(Target::Record(id.to_string())),
        )
        .await?;
        // A held record stays readable and restorable: hiding it for good would break the
        // hold's promise as surely as purging it.
        let holds = self.store.for_org(&scope).await?.holds(&scope).await?;
        if crate::is_held(&row, &holds) {
            return Err(CoreError::Conflict(format!(
                "record {id} is under a legal hold; release the hold first"
            )));
        }
        let now = self.now();
        let change = StateChange {
            id: id.to_string(),
            from: row.state,
            to: RecordState::PurgeRequested,
            deleted_at: Some(now),
            next_due_at: Some(now),
        };
        let event = self
            .event(caller, custos_audit::AuditAction::RecordDelete)
            .org(scope.org_id())
            .target(Target::Record(id.to_string()))
            .reason("hard_delete");
        self.apply_transition(&scope, change, event).await
    }

    /// Hard-deletes every record of a category in the org (the "delete everything" button):
    /// owners and admins only; one audited transaction per page of 1,000. Returns how many
    /// records were marked; the sweep purges them.
    pub async fn delete_category(
        &self,
        caller: &Caller,
        org: &str,
        category: &str,
    ) -> Result<u64, CoreError> {
        // The category is enumerated by the OpenAPI document: an unknown one is bad input,
        // before anything about the org (its state, the caller's rights) is looked at.
        self.known_category(category)?;
        let grant = self
            .authorize(caller, Operation::CategoryDeleteAll, org)
            .await?;
        self.authorize_category(
            caller,
            &grant,
            category,
            Some(Target::Category(category.to_string())),
        )
        .await?;
        let scope = grant.scope;
        let filter = RecordFilter {
            category: Some(category.to_string()),
            states: vec![
                RecordState::Active,
                RecordState::Archived,
                RecordState::SoftDeleted,
            ],
            ..RecordFilter::default()
        };
        let holds = self.store.for_org(&scope).await?.holds(&scope).await?;
        let now = self.now();
        let mut marked = 0u64;
        let mut after: Option<String> = None;
        loop {
            let page = self
                .store
                .for_org(&scope)
                .await?
                .list_records(&scope, &filter, after.as_deref(), MAX_PAGE)
                .await?;
            let Some(last) = page.last() else { break };
            after = Some(last.id.clone());
            // Held records stay as they are: the hold outranks the button.
            let targets: Vec<(String, RecordState)> = page
                .iter()
                .filter(|r| !crate::is_held(r, &holds))
                .map(|r| (r.id.clone(), r.state))
                .collect();
            if targets.is_empty() {
                continue;
            }
            let event = self
                .event(caller, custos_audit::AuditAction::CategoryDeleteAll)
                .org(scope.org_id())
                .target(Target::Category(category.to_string()))
                .details(Details::new().records(targets.len() as u64));
            marked += self
                .store
                .for_org(&scope)
                .await?
                .request_purges(&scope, &targets, PurgeCause::Deletion, now, &[event])
                .await?;
        }
        Ok(marked)
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
            .for_org(scope)
            .await?
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
        let grant = self
            .authorize(caller, Operation::RecordRestore, org)
            .await?;
        let scope = grant.scope.clone();
        let row = self
            .store
            .for_org(&scope)
            .await?
            .record(&scope, id)
            .await?
            .filter(|r| r.state == RecordState::SoftDeleted)
            .ok_or_else(|| CoreError::NotFound(format!("soft-deleted record {id}")))?;
        self.authorize_category(
            caller,
            &grant,
            &row.category,
            Some(Target::Record(id.to_string())),
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
            .event(caller, custos_audit::AuditAction::RecordRestore)
            .org(scope.org_id())
            .target(Target::Record(id.to_string()));
        self.apply_transition(&scope, change, event).await
    }
}

/// Reverses `tokenize` pseudonyms in every string and object key of `value` (content and
/// metadata keys are scanned and tokenized like values).
pub(crate) fn detokenize_value(value: Value, vault: &custos_pii::TokenVault) -> Value {
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
                .map(|(k, v)| {
                    (
                        custos_pii::detokenize(&k, vault),
                        detokenize_value(v, vault),
                    )
                })
                .collect(),
        ),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{NewMember, NewOrg, Principal};
    use serde_json::json;

    /// A deployment on SQLite whose `support_notes` category tokenizes person names.
    fn custos(dir: &std::path::Path) -> Custos {
        let extra = r#"
[categories.support_notes]
retention = "30d"
access = { roles = ["owner", "admin", "member"] }
pii = { detect = ["person"], action = "tokenize" }
"#;
        let policy = custos_policy::Policy::parse(
            &format!("{}{extra}", custos_policy::Policy::BUILTIN_TOML),
            "test.toml",
        )
        .unwrap();
        let store = custos_store::SqliteStore::open(&dir.join("custos.db")).unwrap();
        let objects =
            custos_store::Objects::open(&custos_store::ObjectLocation::File(dir.join("objects")))
                .unwrap();
        let kms = custos_crypto::LocalKms::open_or_create(&dir.join("keys/root.keyring")).unwrap();
        let keys = custos_keystore_sqlite::SqliteKeyStore::open(&dir.join("keys/keys.db")).unwrap();
        let vault = custos_crypto::KeyVault::new(Arc::new(kms), Arc::new(keys));
        Custos::new(
            Arc::new(policy),
            Arc::new(store),
            objects,
            Arc::new(vault),
            Arc::new(crate::SystemClock),
        )
    }

    #[tokio::test]
    async fn records_with_a_per_record_vault_still_reveal() {
        let dir = tempfile::tempdir().unwrap();
        let custos = custos(dir.path());
        let admin = Caller::new(Principal::Admin);
        let org = custos
            .create_org(
                &admin,
                NewOrg {
                    name: "Acme".into(),
                    region: None,
                    owner: None,
                },
            )
            .await
            .unwrap()
            .org
            .id;
        let member = NewMember {
            name: "o".into(),
            roles: vec!["owner".into()],
            groups: vec![],
            mfa: false,
            identity: None,
        };
        let key = custos
            .add_member(&admin, &org, member)
            .await
            .unwrap()
            .api_key;
        let owner = Caller::new(custos.authenticate(&key).await.unwrap());
        let scope = custos.store.org(&org).await.unwrap().unwrap().0;

        // A record as written before tokens were org-wide: its own vault in the envelope.
        let mut legacy_vault = custos_pii::TokenVault::new();
        let token = legacy_vault.token_for(custos_pii::EntityKind::Person, "Ana Lopez");
        assert_eq!(token, "<PERSON_1>");
        let now = custos.now();
        let envelope = Envelope {
            content: json!({ "text": "<PERSON_1> called" }),
            subject: None,
            metadata: Value::Null,
            file_name: None,
            content_type: None,
            tokens: Some(legacy_vault),
            org_tokens: None,
        };
        let category = custos.policy.category("support_notes").unwrap();
        let row = custos
            .sealed_row(
                &scope,
                &mut BatchKeys::default(),
                RowSpec {
                    id: uuid::Uuid::now_v7().to_string(),
                    category: "support_notes",
                    subject_ref: None,
                    now,
                    due: category.due_times(now, None),
                    pii: &BTreeMap::from([("PERSON".to_string(), 1)]),
                },
                Some(envelope),
            )
            .await
            .unwrap();
        let legacy_id = row.id.clone();
        custos
            .store
            .for_org(&scope)
            .await
            .unwrap()
            .insert_records(&scope, &[row], &[])
            .await
            .unwrap();

        // A new record gets the org's first PERSON token, the same text as the legacy one's.
        let new = custos
            .create_record(
                &owner,
                &org,
                NewRecord {
                    category: "support_notes".into(),
                    subject: None,
                    content: json!({ "text": "Anna Kowalski called" }),
                    metadata: None,
                },
            )
            .await
            .unwrap();
        let stored = custos.get_record(&owner, &org, &new.id).await.unwrap();
        assert_eq!(stored.content, json!({ "text": "<PERSON_1> called" }));

        // Each reveals through its own mapping.
        let legacy = custos
            .reveal_record(&owner, &org, &legacy_id)
            .await
            .unwrap();
        assert_eq!(legacy.content, json!({ "text": "Ana Lopez called" }));
        let revealed = custos.reveal_record(&owner, &org, &new.id).await.unwrap();
        assert_eq!(revealed.content, json!({ "text": "Anna Kowalski called" }));
    }
}
