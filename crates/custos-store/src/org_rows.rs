//! Every row of one org as plain values: what moves when an org changes region and its new
//! region has stores of its own.
//!
//! The copy is generic over the schema (tables are found by their org column) so a table added
//! by a later migration moves without anyone remembering to list it here. The audit trail never
//! moves: it is the history of the store it happened in.

/// One stored value.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// SQL NULL.
    Null,
    /// An integer.
    Integer(i64),
    /// A floating-point number.
    Real(f64),
    /// Text.
    Text(String),
    /// Bytes.
    Blob(Vec<u8>),
}

/// The org's rows of one table.
#[derive(Debug, Clone, PartialEq)]
pub struct TableRows {
    /// Table name.
    pub table: String,
    /// Column names, in the order of each row's cells (the org key columns, `org_id` and the
    /// like, left out: every row is the org's).
    pub columns: Vec<String>,
    /// The rows.
    pub rows: Vec<Vec<Cell>>,
}

/// Every row of one org but its audit trail; `orgs` comes first.
#[derive(Debug, Clone, PartialEq)]
pub struct OrgRows {
    /// The org id.
    pub org_id: String,
    /// Per table.
    pub tables: Vec<TableRows>,
}

impl OrgRows {
    /// How many rows, over all tables.
    pub fn row_count(&self) -> usize {
        self.tables.iter().map(|t| t.rows.len()).sum()
    }
}

/// How a table's rows belong to an org.
pub(crate) enum OrgKey {
    /// `orgs` itself, by `id`; its `seq` is store-internal.
    OrgsRow,
    /// An `org_id` column.
    OrgId,
    /// An `org_seq` column (the store-internal number of the org, see `0008_org_seq.sql`).
    OrgSeq,
}

/// Tables that belong to the store (or the deployment), not to an org.
pub(crate) fn is_store_table(name: &str) -> bool {
    name.starts_with("audit_")
        || name.starts_with("sqlite_")
        || name == "custos_migrations"
        || name == "custos_schema_steps"
        || name == "org_moves"
        // The deployment's operators: kept in the main database, never moved with an org.
        || name == "operators"
        || name == "operator_sessions"
        // Sign-ins under way: minutes-long, deployment-wide, and not moved with an org.
        || name == "sign_ins"
        // Notifications and the alert evaluator's state: deployment-wide, in the main
        // database (an outbox row names its org, but is delivered from the main database).
        || name == "outbox"
        || name == "alert_evaluator"
        || name == "alert_firings"
        || name == "alert_cursors"
        || name == "security_events"
        || name == "incidents"
        || name == "incident_steps"
        || name == "incident_notices"
}
