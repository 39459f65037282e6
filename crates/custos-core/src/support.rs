//! Customer-approved support access: an operator files a support request (a justification
//! from a fixed list, a ticket, a scope, optional categories, a duration); an owner or admin
//! of the org, with a second factor, approves it (possibly shorter) or denies it; while the
//! grant is active the operator names it on each request (`X-Custos-Grant`) and acts with
//! exactly its scope; the org lists every access made under it, each with the inclusion proof
//! of its audit event, and can revoke it at once.
//!
//! What it is not: the authorization decision itself. [`crate::authz::decide`] applies a
//! grant ([`ActiveGrant`]); this module files, decides and checks grants, and lists accesses.

use base64::Engine;
use custos_audit::{AuditAction, AuditEvent, Details, InclusionProof, Target};
use custos_policy::Duration;
use custos_store::{AuditFilter, OrgScope, SupportRequestRow, SupportTransition};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::authz::{ActiveGrant, GrantScope, Operation};
use crate::settings::{OrgSettings, SupportAccess};
use crate::{Caller, CoreError, Custos};

/// The longest free-text reason a support request may carry, in characters.
const MAX_REASON_CHARS: usize = 2000;
/// Accesses listed per page when the caller names no limit, and the most it may name.
const ACCESS_PAGE: u32 = 100;
/// Audit rows read per store round trip while collecting a grant's accesses.
const SCAN_PAGE: u32 = 500;

/// Why an operator asks for support access: a fixed list (as Google Access Approval's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Justification {
    /// The customer asked for help.
    CustomerInitiatedSupport,
    /// Responding to a security or availability incident.
    IncidentResponse,
    /// A legal request the operator must answer.
    LegalRequest,
    /// Keeping the service running (a failed migration, a stuck job).
    ServiceOperation,
}

impl Justification {
    /// The name in the API and the audit log.
    pub fn as_str(self) -> &'static str {
        match self {
            Justification::CustomerInitiatedSupport => "customer_initiated_support",
            Justification::IncidentResponse => "incident_response",
            Justification::LegalRequest => "legal_request",
            Justification::ServiceOperation => "service_operation",
        }
    }
}

/// A support request as an operator files it.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSupportRequest {
    /// Why access is needed.
    pub justification: Justification,
    /// The ticket it is for (no personal data: it is shown to the org and kept).
    pub ticket: String,
    /// What the operator needs to do (no personal data).
    pub reason: String,
    /// What the grant would allow.
    pub scope: GrantScope,
    /// The categories it would be limited to; absent: every category.
    #[serde(default)]
    pub categories: Option<Vec<String>>,
    /// How long the grant would last (`2h`, ...); absent: the policy's `[support]
    /// max_duration`, which is also the most it may be.
    #[serde(default)]
    pub duration: Option<String>,
}

/// An owner's or admin's approval.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SupportApproval {
    /// A shorter duration than requested; absent: as requested.
    #[serde(default)]
    pub duration: Option<String>,
}

/// A support request (and the grant it became) as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SupportRequestView {
    /// Its id: what the operator names in `X-Custos-Grant` once it is approved.
    pub id: String,
    /// The org.
    pub org: String,
    /// The operator who filed it (`admin`, or `operator:<id>`).
    pub requested_by: String,
    /// Why.
    pub justification: String,
    /// The ticket.
    pub ticket: String,
    /// What the operator needs to do.
    pub reason: String,
    /// What the grant allows.
    pub scope: String,
    /// The categories it is limited to; absent: every category.
    pub categories: Option<Vec<String>>,
    /// The duration requested.
    pub duration: String,
    /// `pending`, `expired` (never decided), `approved` (active), `ended`, `denied`,
    /// `revoked`.
    pub status: String,
    /// Whether the grant works now.
    pub active: bool,
    /// When it was filed.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// When it expires unless approved or denied.
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: Timestamp,
    /// Who approved or denied it (`member:<id>`).
    pub decided_by: Option<String>,
    /// When.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub decided_at: Option<Timestamp>,
    /// Until when the grant is active.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub active_until: Option<Timestamp>,
    /// Who revoked it.
    pub revoked_by: Option<String>,
    /// When.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub revoked_at: Option<Timestamp>,
}

/// One access made under a grant: its audit event, the leaf bytes, and the proof that the
/// leaf is in the log under the listing's checkpoint.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GrantAccess {
    /// The event's index in the org's audit log.
    pub audit_index: u64,
    /// The decoded event.
    #[schema(value_type = Object)]
    pub event: AuditEvent,
    /// Base64 of the exact bytes that were hashed into the log.
    pub leaf: String,
    /// The inclusion proof of the leaf under `checkpoint` (as `custos audit proof` prints it).
    #[schema(value_type = Object)]
    pub inclusion_proof: InclusionProof,
}

/// Every access made under one grant, with the signed checkpoint their proofs lead to.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SupportAccesses {
    /// The grant.
    pub grant: String,
    /// The signed checkpoint (C2SP note) every proof here leads to.
    pub checkpoint: String,
    /// The accesses, in log order.
    pub accesses: Vec<GrantAccess>,
    /// Pass as `from` for the next page; absent on the last page.
    pub next_from: Option<u64>,
}

/// Whether `id` looks like a grant id (what an `X-Custos-Grant` header may carry into the
/// audit log: ids are UUIDs, so a short word of letters, digits and dashes).
pub fn valid_grant_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// Where a support request stands. `Pending`, `Approved`, `Denied` and `Revoked` are stored;
/// `Expired` and `Ended` are what `Pending` and `Approved` become as time passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Pending,
    Expired,
    Approved,
    Ended,
    Denied,
    Revoked,
}

impl Status {
    /// The name in the API and the store.
    fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Expired => "expired",
            Status::Approved => "approved",
            Status::Ended => "ended",
            Status::Denied => "denied",
            Status::Revoked => "revoked",
        }
    }

    /// The status of `row` at `now`.
    fn of(row: &SupportRequestRow, now: Timestamp) -> Result<Status, CoreError> {
        Ok(match row.status.as_str() {
            "pending" if now >= row.expires_at => Status::Expired,
            "pending" => Status::Pending,
            "approved" if row.active_until.is_none_or(|end| now >= end) => Status::Ended,
            "approved" => Status::Approved,
            "denied" => Status::Denied,
            "revoked" => Status::Revoked,
            other => {
                return Err(CoreError::internal(format!(
                    "support request {}: unknown stored status {other:?}",
                    row.id
                )))
            }
        })
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

fn view(
    org: &str,
    row: SupportRequestRow,
    now: Timestamp,
) -> Result<SupportRequestView, CoreError> {
    let status = Status::of(&row, now)?;
    Ok(SupportRequestView {
        active: status == Status::Approved,
        status: status.as_str().into(),
        id: row.id,
        org: org.to_string(),
        requested_by: row.requested_by,
        justification: row.justification,
        ticket: row.ticket,
        reason: row.reason,
        scope: row.scope,
        categories: row.categories,
        duration: row.duration,
        created_at: row.created_at,
        expires_at: row.expires_at,
        decided_by: row.decided_by,
        decided_at: row.decided_at,
        active_until: row.active_until,
        revoked_by: row.revoked_by,
        revoked_at: row.revoked_at,
    })
}

fn parse_duration(field: &str, value: &str) -> Result<Duration, CoreError> {
    value
        .parse()
        .map_err(|e| CoreError::invalid(field, format!("not a duration such as 2h: {e}")))
}

/// The free text of a request: present, not too long, no control characters but line breaks.
fn check_text(field: &str, value: &str, max: usize) -> Result<(), CoreError> {
    if value.trim().is_empty() {
        return Err(CoreError::invalid(field, "must not be empty"));
    }
    if value.chars().count() > max {
        return Err(CoreError::invalid(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    if value.chars().any(|c| c.is_control() && c != '\n') {
        return Err(CoreError::invalid(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

impl Custos {
    /// Files an operator's support request; it waits for an owner's or admin's decision
    /// until the policy's `[support] request_expiry`.
    pub async fn create_support_request(
        &self,
        caller: &Caller,
        org: &str,
        req: NewSupportRequest,
    ) -> Result<SupportRequestView, CoreError> {
        let allowed = self
            .authorize_support(caller, Operation::SupportRequestCreate, org)
            .await?;
        check_text("ticket", &req.ticket, 200)?;
        self.check_free_text("ticket", &req.ticket)?;
        check_text("reason", &req.reason, MAX_REASON_CHARS)?;
        self.check_free_text("reason", &req.reason)?;
        let categories = match req.categories {
            Some(names) if names.is_empty() => {
                return Err(CoreError::invalid(
                    "categories",
                    "name at least one category, or leave it out for every category",
                ))
            }
            Some(mut names) => {
                for name in &names {
                    if self.policy.category(name).is_none() {
                        return Err(CoreError::UnknownCategory(name.clone()));
                    }
                }
                names.sort();
                names.dedup();
                Some(names)
            }
            None => None,
        };
        let max = &self.policy.support.max_duration;
        let duration = match &req.duration {
            Some(text) => parse_duration("duration", text)?,
            None => *max,
        };
        if duration.cmp_for_validation(max).is_gt() {
            return Err(CoreError::invalid(
                "duration",
                format!("must be at most the policy's [support] max_duration ({max})"),
            ));
        }
        let now = self.now();
        let row = SupportRequestRow {
            id: uuid::Uuid::now_v7().to_string(),
            requested_by: caller.actor_name(),
            justification: req.justification.as_str().into(),
            ticket: req.ticket,
            reason: req.reason,
            scope: req.scope.as_str().into(),
            categories,
            duration: duration.to_string(),
            created_at: now,
            expires_at: self.policy.support.request_expiry.add_to(now),
            status: Status::Pending.as_str().into(),
            decided_by: None,
            decided_at: None,
            active_until: None,
            revoked_by: None,
            revoked_at: None,
        };
        let mut details = Details::new()
            .justification(row.justification.clone())
            .scope(row.scope.clone())
            .duration(row.duration.clone())
            .expires(row.expires_at);
        details.categories = row.categories.clone();
        let event = self
            .event(caller, AuditAction::SupportRequestCreate)
            .org(org)
            .target(Target::SupportRequest(row.id.clone()))
            .details(details);
        let scope = &allowed.scope;
        self.store
            .for_org(scope)
            .await?
            .add_support_request(scope, &row, &[event])
            .await?;
        view(org, row, now)
    }

    /// The org's support requests, newest first; an operator sees the ones it filed.
    pub async fn support_requests(
        &self,
        caller: &Caller,
        org: &str,
    ) -> Result<Vec<SupportRequestView>, CoreError> {
        let scope = self
            .authorize(caller, Operation::SupportRequestList, org)
            .await?
            .scope;
        let rows = self
            .store
            .for_org(&scope)
            .await?
            .support_requests(&scope)
            .await?;
        let now = self.now();
        let mine = caller.actor_name();
        rows.into_iter()
            .filter(|r| !caller.principal.is_operator() || r.requested_by == mine)
            .map(|r| view(org, r, now))
            .collect()
    }

    /// Approves a pending request: the grant is active from now for its duration, or the
    /// shorter `approval.duration`.
    pub async fn approve_support_request(
        &self,
        caller: &Caller,
        org: &str,
        id: &str,
        approval: SupportApproval,
    ) -> Result<SupportRequestView, CoreError> {
        let allowed = self
            .authorize_support(caller, Operation::SupportRequestApprove, org)
            .await?;
        let row = self.pending(&allowed.scope, id, Status::Approved).await?;
        let requested = parse_duration("duration", &row.duration)?;
        let duration = match &approval.duration {
            Some(text) => {
                let d = parse_duration("duration", text)?;
                if d.cmp_for_validation(&requested).is_gt() {
                    return Err(CoreError::invalid(
                        "duration",
                        format!("may shorten the requested {requested}, not extend it"),
                    ));
                }
                d
            }
            None => requested,
        };
        let until = duration.add_to(self.now());
        let details = Details::new().duration(duration.to_string()).expires(until);
        let to = (Status::Approved, Some(until));
        self.transition(
            caller,
            &allowed.scope,
            org,
            id,
            Status::Pending,
            to,
            details,
        )
        .await
    }

    /// Denies a pending request.
    pub async fn deny_support_request(
        &self,
        caller: &Caller,
        org: &str,
        id: &str,
    ) -> Result<SupportRequestView, CoreError> {
        let scope = self
            .authorize(caller, Operation::SupportRequestDeny, org)
            .await?
            .scope;
        self.pending(&scope, id, Status::Denied).await?;
        let to = (Status::Denied, None);
        self.transition(caller, &scope, org, id, Status::Pending, to, Details::new())
            .await
    }

    /// Revokes an active grant: the operator's next request under it is refused.
    pub async fn revoke_support_request(
        &self,
        caller: &Caller,
        org: &str,
        id: &str,
    ) -> Result<SupportRequestView, CoreError> {
        let scope = self
            .authorize(caller, Operation::SupportRequestRevoke, org)
            .await?
            .scope;
        let row = self.request_row(&scope, id).await?;
        let status = Status::of(&row, self.now())?;
        if status != Status::Approved {
            return Err(CoreError::Conflict(format!(
                "support request {id} is {status}; only an active grant can be revoked"
            )));
        }
        let to = (Status::Revoked, None);
        self.transition(
            caller,
            &scope,
            org,
            id,
            Status::Approved,
            to,
            Details::new(),
        )
        .await
    }

    /// The accesses made under grant `id`: every audit event of the org carrying it, from
    /// index `from`, at most `limit`, each with its leaf and its inclusion proof under one
    /// signed checkpoint. An operator sees only the grants it asked for.
    pub async fn support_accesses(
        &self,
        caller: &Caller,
        org: &str,
        id: &str,
        from: u64,
        limit: Option<u32>,
    ) -> Result<SupportAccesses, CoreError> {
        let limit = limit.unwrap_or(ACCESS_PAGE);
        if limit == 0 || limit > crate::records::MAX_PAGE {
            return Err(CoreError::invalid(
                "limit",
                format!("must be 1 to {}", crate::records::MAX_PAGE),
            ));
        }
        let scope = self
            .authorize(caller, Operation::SupportRequestAccesses, org)
            .await?
            .scope;
        let row = self.request_row(&scope, id).await?;
        if caller.principal.is_operator() && row.requested_by != caller.actor_name() {
            return Err(CoreError::NotFound(format!("support request {id}")));
        }
        // Only the requesting operator's events in this org can carry the grant; the leaf,
        // not the indexed columns, decides (see `checked_entry` in the audit module).
        let filter = AuditFilter {
            actor: Some(row.requested_by.clone()),
            since: Some(row.created_at),
            ..AuditFilter::default()
        };
        let mut found = Vec::new();
        let mut next_from = None;
        let mut cursor = from;
        'scan: loop {
            let page = self
                .store
                .audit_query(Some(&scope), &filter, cursor, SCAN_PAGE)
                .await?;
            let full = page.len() == SCAN_PAGE as usize;
            for entry in page {
                cursor = entry.index + 1;
                let event = AuditEvent::from_canonical_bytes(&entry.leaf).map_err(|e| {
                    CoreError::internal_from(format!("audit entry {}", entry.index), e)
                })?;
                if event.org.as_deref() != Some(org) || event.details.grant.as_deref() != Some(id) {
                    continue;
                }
                if found.len() == limit as usize {
                    next_from = Some(entry.index);
                    break 'scan;
                }
                found.push((entry, event));
            }
            if !full {
                break;
            }
        }
        let log = self.log_of_org(&scope).await?;
        let checkpoint = self.ensure_checkpoint_in(&log).await?;
        let mut accesses = Vec::with_capacity(found.len());
        for (entry, event) in found {
            let inclusion_proof = log
                .audit_inclusion_proof(entry.index, checkpoint.size)
                .await?;
            accesses.push(GrantAccess {
                audit_index: entry.index,
                event,
                leaf: base64::engine::general_purpose::STANDARD.encode(&entry.leaf),
                inclusion_proof,
            });
        }
        Ok(SupportAccesses {
            grant: id.to_string(),
            checkpoint: checkpoint.note,
            accesses,
            next_from,
        })
    }

    /// The active grant `id` of the org for the calling operator, or why it is not one
    /// (the inner error: refused and audited by the caller). The outer error is a failure.
    pub(crate) async fn active_grant(
        &self,
        caller: &Caller,
        scope: &OrgScope,
        settings: &OrgSettings,
        id: &str,
    ) -> Result<Result<ActiveGrant, CoreError>, CoreError> {
        let refuse = |why: String| Ok(Err(CoreError::GrantRequired(why)));
        if !valid_grant_id(id) {
            return refuse("X-Custos-Grant does not name a support grant".into());
        }
        let row = self
            .store
            .for_org(scope)
            .await?
            .support_request(scope, id)
            .await?;
        let Some(row) = row else {
            return refuse(format!("support grant {id} is not one of this org's"));
        };
        if row.requested_by != caller.actor_name() {
            return refuse(format!("support grant {id} was given to another operator"));
        }
        if settings.support_access == SupportAccess::Forbidden {
            return refuse(format!(
                "support grant {id} no longer works: the org forbids support access"
            ));
        }
        let status = Status::of(&row, self.now())?;
        if status != Status::Approved {
            return refuse(format!("support grant {id} is {status}, not active"));
        }
        let scope = GrantScope::parse(&row.scope).ok_or_else(|| {
            CoreError::internal(format!("support request {id}: unknown scope {}", row.scope))
        })?;
        Ok(Ok(ActiveGrant {
            id: row.id,
            scope,
            categories: row.categories,
        }))
    }

    /// Authorizes `op`, which only an org that allows support access allows at all.
    async fn authorize_support(
        &self,
        caller: &Caller,
        op: Operation,
        org: &str,
    ) -> Result<crate::access::Grant, CoreError> {
        let allowed = self.authorize(caller, op, org).await?;
        if allowed.settings.support_access == SupportAccess::Forbidden {
            return Err(CoreError::Forbidden(
                "the org forbids support access (its setting `support_access` is `forbidden`)"
                    .into(),
            ));
        }
        Ok(allowed)
    }

    async fn request_row(
        &self,
        scope: &OrgScope,
        id: &str,
    ) -> Result<SupportRequestRow, CoreError> {
        self.store
            .for_org(scope)
            .await?
            .support_request(scope, id)
            .await?
            .ok_or_else(|| CoreError::NotFound(format!("support request {id}")))
    }

    /// The request `id` if it is still pending (not decided, not expired); else a conflict
    /// saying why it cannot become `to`.
    async fn pending(
        &self,
        scope: &OrgScope,
        id: &str,
        to: Status,
    ) -> Result<SupportRequestRow, CoreError> {
        let row = self.request_row(scope, id).await?;
        let status = Status::of(&row, self.now())?;
        if status != Status::Pending {
            return Err(CoreError::Conflict(format!(
                "support request {id} is {status}; only a pending request can be {to}"
            )));
        }
        Ok(row)
    }

    /// Moves request `id` from `from` to `to` (with the grant's end, on approval), audited as
    /// the transition's action with `details`; a conflict if another decision came first.
    #[allow(clippy::too_many_arguments)] // each is one plain fact of the transition
    async fn transition(
        &self,
        caller: &Caller,
        scope: &OrgScope,
        org: &str,
        id: &str,
        from: Status,
        (to, active_until): (Status, Option<Timestamp>),
        details: Details,
    ) -> Result<SupportRequestView, CoreError> {
        let action = match to {
            Status::Approved => AuditAction::SupportRequestApprove,
            Status::Denied => AuditAction::SupportRequestDeny,
            Status::Revoked => AuditAction::SupportRequestRevoke,
            other => return Err(CoreError::internal(format!("no transition to {other}"))),
        };
        let event = self
            .event(caller, action)
            .org(org)
            .target(Target::SupportRequest(id.to_string()))
            .details(details);
        let change = SupportTransition {
            from: from.as_str().into(),
            to: to.as_str().into(),
            by: caller.actor_name(),
            at: self.now(),
            active_until,
        };
        let store = self.store.for_org(scope).await?;
        if !store
            .transition_support_request(scope, id, &change, &[event])
            .await?
        {
            return Err(CoreError::Conflict(format!(
                "support request {id} is no longer {}; another decision came first",
                change.from
            )));
        }
        let row = self.request_row(scope, id).await?;
        view(org, row, self.now())
    }
}
