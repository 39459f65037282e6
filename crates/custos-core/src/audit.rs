//! Reading the audit event stream (the Merkle log over it is `custos-audit`'s).

use serde::Serialize;
use utoipa::ToSchema;

use custos_audit::AuditEvent;

use crate::{Caller, CoreError, Custos, Principal};

/// One audit log entry as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AuditEntryView {
    /// Position in the log.
    pub index: u64,
    /// The decoded event.
    #[schema(value_type = Object)]
    pub event: AuditEvent,
}

/// A page of audit entries.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AuditPage {
    /// Entries in log order.
    pub items: Vec<AuditEntryView>,
    /// Pass as `from` for the next page; absent on the last page.
    pub next_from: Option<u64>,
}

const AUDIT_READERS: &[&str] = &["owner", "admin", "auditor"];

impl Custos {
    /// Audit entries from index `from`: all of them for the admin (or one org's with `org`),
    /// only their own org's for members with an owner, admin or auditor role.
    pub async fn audit_events(
        &self,
        caller: &Caller,
        org: Option<&str>,
        from: u64,
        limit: u32,
    ) -> Result<AuditPage, CoreError> {
        if limit == 0 || limit > crate::records::MAX_PAGE {
            return Err(CoreError::invalid(
                "limit",
                format!("must be 1 to {}", crate::records::MAX_PAGE),
            ));
        }
        let scope = match (&caller.principal, org) {
            (Principal::Member { scope, .. }, requested) => {
                let scope = self
                    .scope_for(caller, requested.unwrap_or(scope.org_id()), "audit.read")
                    .await?;
                self.require_manager(caller, &scope, "audit.read", AUDIT_READERS)
                    .await?;
                Some(scope)
            }
            (_, Some(org)) => Some(self.scope_for(caller, org, "audit.read").await?),
            (_, None) => None,
        };
        let entries = self.store.audit_entries(scope.as_ref(), from, limit).await?;
        let next_from = (entries.len() == limit as usize)
            .then(|| entries.last().map(|e| e.index + 1))
            .flatten();
        let items = entries
            .into_iter()
            .map(|e| {
                AuditEvent::from_canonical_bytes(&e.leaf)
                    .map(|event| AuditEntryView {
                        index: e.index,
                        event,
                    })
                    .map_err(|err| CoreError::Internal(format!("audit entry {}: {err}", e.index)))
            })
            .collect::<Result<_, _>>()?;
        Ok(AuditPage { items, next_from })
    }
}
