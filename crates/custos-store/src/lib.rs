//! Custos persistence.
//!
//! What it is for: one [`Store`] trait with two implementations that pass the same test suite —
//! [`SqliteStore`] (the embedded default: WAL) and [`PgStore`] (the scale-out backend), each
//! migrated on open by the versioned SQL files of [`migrations`] — plus [`Stores`], the router
//! that hands back the store of each org's home region (residency) and answers what must ask
//! every store, and [`Objects`], the blob store over the `object_store` crate (local
//! filesystem by default).
//!
//! Two rules are enforced here rather than left to callers:
//! - Tenant isolation: every record, member, hold and override operation takes an
//!   [`OrgScope`], which only this crate can construct (from an org that exists), and every
//!   query binds its org id. There is no method that reads records without one.
//! - Audit in the same transaction: every mutating method takes the audit events that describe
//!   it and appends them to the audit log in the same database transaction. If the append
//!   fails, the change is rolled back.
//!
//! What it is not: a place that sees plaintext. Content arrives sealed by `custos-crypto`;
//! subjects arrive as keyed references. Keys live in the key store, never here.

mod audit;
mod audit_tree;
mod incidents;
mod lifecycle;
mod members;
pub mod migrations;
mod model;
mod notify;
mod objects;
mod operators;
mod org_rows;
mod orgs;
mod pg;
mod records;
mod regional;
mod requests;
mod schema;
mod sign_in;
mod sqlite;
mod stream;
mod support;
mod tokens;

pub use audit::AuditStore;
pub use audit_tree::{AuditIndex, AuditRow, StoredCheckpoint, STORED_MIN_LEVEL};
pub use incidents::{IncidentNotice, IncidentRow, IncidentStep, IncidentStore};
pub use lifecycle::LifecycleStore;
pub use members::{EnrollmentCode, MemberStore, PersonalToken, Session, TotpFactor};
pub use model::*;
pub use notify::{
    AlertFiring, AlertStep, NotifyStore, OutboxEntry, OutboxMessage, OutboxStatus,
    StoredSecurityEvent,
};
pub use objects::{
    ObjectLocation, ObjectWriter, Objects, S3Options, ARCHIVE_STORAGE_CLASS_ENV,
    DEFAULT_ARCHIVE_STORAGE_CLASS,
};
pub use operators::{OperatorRow, OperatorSession, OperatorStore};
pub use org_rows::{Cell, OrgRows, TableRows};
pub use orgs::OrgStore;
pub use pg::PgStore;
pub use records::RecordStore;
pub use regional::{RegionStores, Stores, HOME_RECHECK};
pub use requests::{
    ErasureAggregate, PrivacySession, RecordRewrite, RequestCursor, RequestFilter, RequestKind,
    RequestStatus, RequestStore, StoredCertificate, SubjectRecordCount, SubjectRequest,
};
pub use sign_in::{PendingSignIn, SignInStore};
pub use sqlite::{SnapshotCounts, SqliteStore};
pub use stream::{record_stream, RecordChunks, RecordSender};
pub use support::{SupportRequestRow, SupportStore, SupportTransition};
pub use tokens::{PiiToken, TokenBatch, TokenResolution};

/// Persistence of orgs, members, records, holds, overrides and the audit event stream: every
/// aggregate's trait, implemented by [`SqliteStore`] and [`PgStore`]. Callers bring the
/// traits into scope with `use custos_store::prelude::*`.
pub trait Store:
    OrgStore
    + RecordStore
    + LifecycleStore
    + AuditStore
    + MemberStore
    + RequestStore
    + SupportStore
    + OperatorStore
    + SignInStore
    + NotifyStore
    + IncidentStore
    + Send
    + Sync
    + 'static
{
}

impl<T> Store for T where
    T: OrgStore
        + RecordStore
        + LifecycleStore
        + AuditStore
        + MemberStore
        + RequestStore
        + SupportStore
        + OperatorStore
        + SignInStore
        + NotifyStore
        + IncidentStore
        + Send
        + Sync
        + 'static
{
}

/// The store traits, for callers of [`Store`] methods.
pub mod prelude {
    pub use crate::{
        AuditStore, IncidentStore, LifecycleStore, MemberStore, NotifyStore, OperatorStore,
        OrgStore, RecordStore, RequestStore, SignInStore, Store, SupportStore,
    };
}
