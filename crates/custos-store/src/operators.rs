//! [`OperatorStore`]: the deployment's operators, people of its own identity provider.
//! Deployment-wide rows, kept in the main database.

use custos_audit::AuditEvent;
use jiff::Timestamp;

use crate::{PersonIdentity, StoreError};

/// One operator as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorRow {
    /// Its id.
    pub id: String,
    /// A display name.
    pub name: String,
    /// The person of the deployment's identity provider it is.
    pub identity: PersonIdentity,
    /// When it was created.
    pub created_at: Timestamp,
    /// Who created it, as the audit log names actors (`admin`, `operator:<id>`).
    pub created_by: String,
}

/// Persistence of operators. Every mutation appends its audit events in the same transaction.
#[async_trait::async_trait]
pub trait OperatorStore {
    /// Adds `operator` only if there is none yet (the bootstrap token's one creation);
    /// `false` (and nothing appended) if one exists.
    async fn add_first_operator(
        &self,
        operator: &OperatorRow,
        audit: &[AuditEvent],
    ) -> Result<bool, StoreError>;

    /// Every operator, oldest first.
    async fn operators(&self) -> Result<Vec<OperatorRow>, StoreError>;

    /// Whether any operator exists.
    async fn has_operators(&self) -> Result<bool, StoreError>;
}

/// The columns [`OperatorRow`] is read from, in order (both backends).
pub(crate) const OPERATOR_COLUMNS: &str =
    "id, name, identity_iss, identity_sub, created_at, created_by";

/// The insert both backends run (placeholders from `p`): it adds the row only into an empty
/// table, in one statement, so two first operators cannot both be created.
pub(crate) fn first_operator_sql(p: impl Fn(usize) -> String) -> String {
    format!(
        "INSERT INTO operators (id, name, identity_iss, identity_sub, created_at, created_by)
         SELECT {}, {}, {}, {}, {}, {} WHERE NOT EXISTS (SELECT 1 FROM operators)",
        p(1),
        p(2),
        p(3),
        p(4),
        p(5),
        p(6)
    )
}
