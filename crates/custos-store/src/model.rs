//! The plain data types that cross the [`Store`](crate::Store) boundary.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// Proof that an org exists, and the only handle through which its data can be reached.
///
/// Constructed only inside this crate (from a row just read), so code above the store cannot
/// invent a scope or issue a query without one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OrgScope {
    id: String,
}

impl OrgScope {
    pub(crate) fn new(id: String) -> Self {
        OrgScope { id }
    }

    /// The org id this scope is bound to.
    pub fn org_id(&self) -> &str {
        &self.id
    }
}

/// An org (tenant).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Org {
    /// Org id (UUID).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Home region; data never leaves it.
    pub region: String,
    /// Creation time.
    pub created_at: Timestamp,
    /// When termination was requested: since then the org is read-only and being purged.
    #[serde(default)]
    pub terminating_since: Option<Timestamp>,
    /// When termination completed: every record purged and the org's keys destroyed.
    #[serde(default)]
    pub terminated_at: Option<Timestamp>,
    /// When an operator suspended the org (its members are refused until it is resumed).
    #[serde(default)]
    pub suspended_at: Option<Timestamp>,
}

/// A member of an org (person or service account).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Member id (UUID).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Roles (`owner`, `admin`, `member`, `auditor`, `service`).
    pub roles: Vec<String>,
    /// Groups, for category access rules.
    pub groups: Vec<String>,
    /// Whether the member authenticated with MFA.
    pub mfa: bool,
    /// Creation time.
    pub created_at: Timestamp,
    /// The person this member is, at an identity provider (`None`: not bound to a person).
    pub identity: Option<PersonIdentity>,
    /// When any of its credentials (API key, session) was last used, to the minute.
    pub last_used_at: Option<Timestamp>,
    /// When its API key was last used, to the minute.
    pub key_last_used_at: Option<Timestamp>,
    /// When it was disabled (inactive past the policy, or by an owner); its key and sessions
    /// are refused while set.
    pub disabled_at: Option<Timestamp>,
}

/// A person at an identity provider: the issuer and the subject it gives the person.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PersonIdentity {
    /// The provider's issuer URL (`iss`).
    pub iss: String,
    /// The person's subject at that provider (`sub`).
    pub sub: String,
}

/// A member's identity from its two stored columns (both set, or neither).
pub(crate) fn identity_of(iss: Option<String>, sub: Option<String>) -> Option<PersonIdentity> {
    Some(PersonIdentity {
        iss: iss?,
        sub: sub?,
    })
}

/// Lifecycle state of a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordState {
    /// Readable.
    Active,
    /// Moved to the archive tier.
    Archived,
    /// Hidden, restorable within the soft-delete window.
    SoftDeleted,
    /// Hard-deleted: hidden, not restorable, purged by the next sweep.
    PurgeRequested,
    /// Erased with its subject: hidden, not restorable, purged by the next sweep (kept apart
    /// from [`RecordState::PurgeRequested`] so the deletion log names the erasure as the cause).
    ErasureRequested,
}

impl RecordState {
    /// The stored text form.
    pub fn as_str(&self) -> &'static str {
        match self {
            RecordState::Active => "active",
            RecordState::Archived => "archived",
            RecordState::SoftDeleted => "soft_deleted",
            RecordState::PurgeRequested => "purge_requested",
            RecordState::ErasureRequested => "erasure_requested",
        }
    }

    /// Hidden for good and waiting for the sweep to purge it (a hard delete or an erasure).
    pub fn is_purge_pending(&self) -> bool {
        matches!(
            self,
            RecordState::PurgeRequested | RecordState::ErasureRequested
        )
    }

    /// Parses the stored text form.
    pub fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "active" => Ok(RecordState::Active),
            "archived" => Ok(RecordState::Archived),
            "soft_deleted" => Ok(RecordState::SoftDeleted),
            "purge_requested" => Ok(RecordState::PurgeRequested),
            "erasure_requested" => Ok(RecordState::ErasureRequested),
            _ => Err(StoreError::Corrupt(format!("unknown record state {s:?}"))),
        }
    }
}

/// Why records are marked for purge; decides the state they take and so the reason the
/// deletion log gives when the sweep purges them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PurgeCause {
    /// A hard delete (of a record or of a whole category).
    Deletion,
    /// A data subject's erasure.
    Erasure,
}

impl PurgeCause {
    /// The state marked records take.
    pub fn state(self) -> RecordState {
        match self {
            PurgeCause::Deletion => RecordState::PurgeRequested,
            PurgeCause::Erasure => RecordState::ErasureRequested,
        }
    }
}

/// A stored record: everything but the org (implied by the scope). Content is sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordRow {
    /// Record id (UUID v7, so ids sort by creation).
    pub id: String,
    /// Policy category.
    pub category: String,
    /// Keyed reference of the subject, if any (never the raw subject id).
    pub subject_ref: Option<String>,
    /// Lifecycle state.
    pub state: RecordState,
    /// Creation time.
    pub created_at: Timestamp,
    /// When it moves to the archive tier, if the category archives.
    pub archive_at: Option<Timestamp>,
    /// When retention ends.
    pub expire_at: Timestamp,
    /// When it was soft-deleted.
    pub deleted_at: Option<Timestamp>,
    /// The next time the lifecycle engine has work on it (indexed).
    pub next_due_at: Option<Timestamp>,
    /// Which key sealed it (`org:N` or `subject:ID`).
    pub key_ref: String,
    /// The sealed envelope (content, subject, metadata); `None` in pass-through mode.
    pub sealed: Option<Vec<u8>>,
    /// Plaintext size of the blob in the object store, if the record has one.
    pub blob_size: Option<u64>,
    /// PII summary: entity types and counts, never values.
    pub pii: serde_json::Value,
}

/// The org's records of one category in one state: how many, how many bytes they hold
/// (sealed rows and file blobs), and how many are due to move within the window asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CategoryUsage {
    /// The category.
    pub category: String,
    /// The records' state (`active` is the hot tier, `archived` the archive tier).
    pub state: RecordState,
    /// How many records.
    pub records: u64,
    /// Bytes held: sealed content plus file blobs.
    pub bytes: u64,
    /// Active records whose archive time falls within the window.
    pub archive_due: u64,
    /// Records whose next step within the window is their purge (expiry, or the end of a
    /// soft-delete window, or a purge already asked for).
    pub purge_due: u64,
}

/// Which records a list returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordFilter {
    /// Only this subject.
    pub subject_ref: Option<String>,
    /// Only this category.
    pub category: Option<String>,
    /// Only these states (empty: all).
    pub states: Vec<RecordState>,
}

/// A compare-and-set state change of one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateChange {
    /// Record id.
    pub id: String,
    /// Required current state.
    pub from: RecordState,
    /// New state.
    pub to: RecordState,
    /// New `deleted_at`.
    pub deleted_at: Option<Timestamp>,
    /// New `next_due_at`.
    pub next_due_at: Option<Timestamp>,
}

/// A legal hold: on the whole org, a subject, or a category.
/// What the deletion log keeps of a purged record: no content, no subject, no PII.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletionEntry {
    /// Id of the purged record.
    pub record_id: String,
    /// Its category.
    pub category: String,
    /// When it was created.
    pub created_at: Timestamp,
    /// When its purge fell due.
    pub due_at: Timestamp,
    /// When it was purged.
    pub purged_at: Timestamp,
    /// Why: `expired`, `soft_delete_window_closed`, ...
    pub reason: String,
    /// Index of the audit event that recorded the purge (filled in by the store).
    pub audit_index: Option<u64>,
}

/// Which audit events to list (all given conditions must hold).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Actor as stored: `admin`, `system`, `anonymous` or `member:<id>`.
    pub actor: Option<String>,
    /// Action, e.g. `record.create`.
    pub action: Option<String>,
    /// Target, e.g. `record:<id>`.
    pub target: Option<String>,
    /// Events at or after this time.
    pub since: Option<Timestamp>,
    /// Events before this time.
    pub until: Option<Timestamp>,
}

/// One record for [`Store::purge_records`](crate::Store::purge_records).
#[derive(Debug, Clone)]
pub struct Purge {
    /// The state the record must still be in (compare-and-set).
    pub from: RecordState,
    /// Its deletion-log entry.
    pub entry: DeletionEntry,
}

/// New due times for one record, applied only if it is still in `state`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueUpdate {
    /// Record id.
    pub id: String,
    /// The state the due times were computed for (compare-and-set).
    pub state: RecordState,
    /// New archive time.
    pub archive_at: Option<Timestamp>,
    /// New expiry time.
    pub expire_at: Timestamp,
    /// New next due time.
    pub next_due_at: Timestamp,
}

/// A category of an org whose records' due times must be recomputed after its retention
/// override changed, and how far that got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingRecompute {
    /// The org.
    pub scope: OrgScope,
    /// The category.
    pub category: String,
    /// Records with ids up to this one are done.
    pub after: String,
}

/// A record that is due, with the org it belongs to (only the sweeper sees across orgs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueRecord {
    /// The record's org.
    pub scope: OrgScope,
    /// The record.
    pub row: RecordRow,
}

/// Position in due order (`next_due_at`, org, id) to continue a read-only due listing after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueCursor {
    /// Due time of the last record seen.
    pub due_at: Timestamp,
    /// Its org.
    pub org: String,
    /// Its id.
    pub id: String,
}

impl DueRecord {
    /// The cursor that continues a listing after this record.
    pub fn cursor(&self) -> DueCursor {
        DueCursor {
            due_at: self.row.next_due_at.unwrap_or(self.row.expire_at),
            org: self.scope.org_id().to_string(),
            id: self.row.id.clone(),
        }
    }
}

/// A legal hold: while it stands, the records it covers are not deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    /// Hold id.
    pub id: String,
    /// Why (a case reference; shown to auditors).
    pub reason: String,
    /// Subject reference, if the hold is on a subject.
    pub subject_ref: Option<String>,
    /// Category, if the hold is on a category.
    pub category: Option<String>,
    /// When it was placed.
    pub created_at: Timestamp,
}

/// One stored audit log entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// Position in the log (0-based, gap-free).
    pub index: u64,
    /// The canonical event bytes (the Merkle leaf).
    pub leaf: Vec<u8>,
}

/// A failure's cause, kept for [`std::error::Error::source`].
///
/// Boxed rather than typed: the store has two database drivers (rusqlite, sqlx), a task pool
/// and an object store, and a boxed cause keeps their versions out of this public type;
/// callers who need the driver's error downcast it.
type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What went wrong in the store. Messages never include content or key material.
///
/// The database and object-store variants repeat their cause's message in their own (logs,
/// the CLI and problem documents print errors with `{}` alone) and also return it from
/// [`std::error::Error::source`], so a caller can inspect or downcast the cause.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A uniqueness rule was violated (duplicate id, key hash, ...).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The database returned data this version cannot read.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// The database failed (connection, constraint, I/O).
    #[error("database error: {}", with_context(context, source))]
    Database {
        /// What the store was doing, when the cause alone does not say it.
        context: Option<&'static str>,
        /// The driver's (or the task pool's) error.
        #[source]
        source: Cause,
    },
    /// The object store failed.
    #[error("object store error: {}", with_context(context, source))]
    Objects {
        /// What the store was doing, when the cause alone does not say it.
        context: Option<&'static str>,
        /// The object store's error.
        #[source]
        source: Cause,
    },
    /// The configured location is not usable.
    #[error("{0}")]
    Config(String),
    /// A streamed insert ended before all its records arrived; nothing was stored.
    #[error("insert aborted: {0}")]
    Aborted(String),
    /// The org is being moved to another region by another request; nothing was changed.
    #[error("{0}")]
    MoveInProgress(String),
}

/// `context: cause`, or the cause alone: the message of a variant that keeps its cause.
fn with_context(context: &Option<&'static str>, source: &Cause) -> String {
    match context {
        Some(context) => format!("{context}: {source}"),
        None => source.to_string(),
    }
}

impl StoreError {
    /// A database failure while doing `context`, keeping `source` as the cause.
    pub fn database(
        context: &'static str,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        StoreError::Database {
            context: Some(context),
            source: Box::new(source),
        }
    }

    /// An object-store failure while doing `context`, keeping `source` as the cause.
    pub fn objects(
        context: &'static str,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        StoreError::Objects {
            context: Some(context),
            source: Box::new(source),
        }
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        if let rusqlite::Error::SqliteFailure(code, _) = &e {
            // Only uniqueness is a conflict, as on PostgreSQL: a trigger's RAISE(ABORT) (a
            // failed audit append), a foreign key or a NOT NULL failure is a database error.
            if matches!(
                code.extended_code,
                rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                    | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
            ) {
                return StoreError::Conflict(e.to_string());
            }
        }
        StoreError::Database {
            context: None,
            source: Box::new(e),
        }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &e {
            if db.is_unique_violation() {
                return StoreError::Conflict(db.message().to_string());
            }
        }
        StoreError::Database {
            context: None,
            source: Box::new(e),
        }
    }
}

impl From<object_store::Error> for StoreError {
    fn from(e: object_store::Error) -> Self {
        StoreError::Objects {
            context: None,
            source: Box::new(e),
        }
    }
}

/// Microseconds since the Unix epoch: the stored form of every time (both backends).
pub(crate) fn to_micros(t: Timestamp) -> i64 {
    t.as_microsecond()
}

/// Reads a stored time back.
pub(crate) fn from_micros(us: i64) -> Result<Timestamp, StoreError> {
    Timestamp::from_microsecond(us).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// The indexed columns of an audit event, extracted once for both backends.
pub(crate) struct AuditColumns {
    pub org: Option<String>,
    pub time: i64,
    pub actor: String,
    pub action: String,
    pub target: Option<String>,
    pub outcome: String,
    pub leaf: Vec<u8>,
}

impl AuditColumns {
    pub fn of(event: &custos_audit::AuditEvent) -> Self {
        // One derivation for writing and for verification (`AuditIndex::of`).
        let crate::AuditIndex {
            org,
            time,
            actor,
            action,
            target,
            outcome,
        } = crate::AuditIndex::of(event);
        AuditColumns {
            org,
            time,
            actor,
            action,
            target,
            outcome,
            leaf: event.to_canonical_bytes(),
        }
    }
}
