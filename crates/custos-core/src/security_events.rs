//! Security events: the audit events that matter to security (refusals, failed sign-ins and
//! second factors, PII blocks, support access, security settings changed, new privileged
//! members and credentials, key and verification failures, alerts), derived from the
//! committed audit log by the evaluator ([`crate::alerting`]) and kept under the retention of
//! the policy's `security_logs` category: an org's as records of that category in its own
//! store (sealed like every record), the deployment's own (no org) in a deployment table.
//!
//! A security event holds ids, codes and counts, never content, a subject identifier, a key
//! (only a key's public prefix) or a network address.

use std::collections::{BTreeMap, HashMap};

use custos_audit::{Actor, AuditAction, AuditEvent, Details, Outcome};
use custos_store::{OrgScope, OutboxMessage, StoredSecurityEvent};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::authz::Operation;
use crate::records::{BatchKeys, Envelope, RowSpec};
use crate::{Caller, CoreError, Custos};

/// The category security events are kept in.
pub const SECURITY_CATEGORY: &str = "security_logs";
/// The event type of the notices an org's admins get through its channels.
pub const SECURITY_NOTICE: &str = "security.notice";

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SecurityEventKind {
    /// Authorization refused an action.
    AccessDenied,
    /// A credential was refused (a bad key or token, a refused sign-in, a bad identity token).
    AuthFailed,
    /// A wrong second-factor code, or a member locked out after too many.
    MfaFailed,
    /// A write was refused for the PII it held.
    PiiBlocked,
    /// A write to a category whose PII rule asks for alerts held PII.
    PiiDetected,
    /// An operator asked the org for support access.
    SupportRequested,
    /// The org approved an operator's support access.
    SupportApproved,
    /// An operator acted in the org under a support grant.
    SupportUsed,
    /// A security setting changed (MFA requirement, identity provider, data transfer,
    /// region, session lifetimes, support access, channels).
    SecuritySettingsChanged,
    /// A member was created or changed with the owner or admin role.
    PrivilegedMember,
    /// A credential was issued (an API key rotated, a personal access token created).
    CredentialIssued,
    /// A key rotation or destruction failed.
    KeyFailure,
    /// Verification of the audit log failed.
    AuditVerificationFailed,
    /// An alert rule of the policy fired.
    AlertFired,
    /// A notification could not be delivered.
    NotificationFailed,
    /// The retired bootstrap admin token was used under `serve --break-glass`.
    BreakGlassUsed,
}

impl SecurityEventKind {
    /// The kind as written (`access_denied`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            SecurityEventKind::AccessDenied => "access_denied",
            SecurityEventKind::AuthFailed => "auth_failed",
            SecurityEventKind::MfaFailed => "mfa_failed",
            SecurityEventKind::PiiBlocked => "pii_blocked",
            SecurityEventKind::PiiDetected => "pii_detected",
            SecurityEventKind::SupportRequested => "support_requested",
            SecurityEventKind::SupportApproved => "support_approved",
            SecurityEventKind::SupportUsed => "support_used",
            SecurityEventKind::SecuritySettingsChanged => "security_settings_changed",
            SecurityEventKind::PrivilegedMember => "privileged_member",
            SecurityEventKind::CredentialIssued => "credential_issued",
            SecurityEventKind::KeyFailure => "key_failure",
            SecurityEventKind::AuditVerificationFailed => "audit_verification_failed",
            SecurityEventKind::AlertFired => "alert_fired",
            SecurityEventKind::NotificationFailed => "notification_failed",
            SecurityEventKind::BreakGlassUsed => "break_glass_used",
        }
    }
}

/// Settings whose change is a security event.
const SECURITY_SETTINGS: &[&str] = &[
    "require_mfa_for_admins",
    "identity_provider",
    "allow_data_transfer",
    "session_timeout",
    "session_max_lifetime",
    "support_access",
    "channels",
    "privacy_center",
];

/// One security event as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SecurityEvent {
    /// What happened.
    pub kind: SecurityEventKind,
    /// The audit log entry it was derived from (prove it with `GET /v1/audit/proof`).
    pub audit_index: u64,
    /// When it happened.
    #[schema(value_type = String, format = DateTime)]
    pub time: jiff::Timestamp,
    /// The audit action (`member.list`, `auth.reject`, ...).
    pub action: String,
    /// How the action ended (`success`, `denied`, `failed`).
    pub outcome: String,
    /// Who acted (`member:<id>`, `operator:<id>`, `admin`, `system`, `anonymous`).
    pub actor: String,
    /// The org it concerns; absent for the deployment's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
    /// What was acted on (`member:<id>`, `category:<name>`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The reason code of a refusal or failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Non-personal details: a rule, counts, setting names, a key's public prefix, a grant.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schema(value_type = Object)]
    pub details: BTreeMap<String, serde_json::Value>,
}

/// A page of security events.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SecurityEventPage {
    /// Events, oldest first for an org's, newest first for the deployment's.
    pub items: Vec<SecurityEvent>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// The security event `event` (the log's entry `index`) is, if it is one.
pub(crate) fn classify(index: u64, event: &AuditEvent) -> Option<SecurityEvent> {
    use AuditAction as A;
    use SecurityEventKind as K;
    let d = &event.details;
    let failed = event.outcome != Outcome::Success;
    let privileged =
        |roles: &Option<Vec<String>>| roles.iter().flatten().any(|r| r == "owner" || r == "admin");
    let kind = match event.action {
        A::AuthReject | A::AuthIdentityToken if failed => K::AuthFailed,
        A::AuthSignIn if failed => K::AuthFailed,
        A::SessionOpen if failed => K::MfaFailed,
        A::MemberTotpLock => K::MfaFailed,
        A::PiiBlocked => K::PiiBlocked,
        A::PiiDetect => K::PiiDetected,
        A::SupportRequestCreate if !failed => K::SupportRequested,
        A::SupportRequestApprove if !failed => K::SupportApproved,
        A::SettingsUpdate if !failed => {
            let security = d
                .settings
                .iter()
                .flat_map(|s| s.keys())
                .any(|k| SECURITY_SETTINGS.contains(&k.as_str()));
            if !security {
                return None;
            }
            K::SecuritySettingsChanged
        }
        A::OrgMove if !failed => K::SecuritySettingsChanged,
        A::MemberCreate | A::MemberUpdate if !failed && privileged(&d.roles) => K::PrivilegedMember,
        A::MemberKeyRotate | A::AuthTokenCreate if !failed => K::CredentialIssued,
        A::KeyRotate | A::SubjectCryptoErase | A::OrgTerminated if failed => K::KeyFailure,
        A::AuditVerify if failed => K::AuditVerificationFailed,
        A::AlertFire => K::AlertFired,
        A::NotificationFail => K::NotificationFailed,
        A::OperatorBreakGlass => K::BreakGlassUsed,
        _ if event.outcome == Outcome::Denied => K::AccessDenied,
        _ if d.grant.is_some() && matches!(event.actor, Actor::Operator(_)) => K::SupportUsed,
        _ => return None,
    };
    Some(SecurityEvent {
        kind,
        audit_index: index,
        time: event.time,
        action: event.action.as_str().to_string(),
        outcome: outcome_name(event.outcome).to_string(),
        actor: event.actor.name(),
        org: event.org.clone(),
        target: event.target.as_ref().map(ToString::to_string),
        reason: event.reason.clone(),
        details: safe_details(d),
    })
}

fn outcome_name(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Success => "success",
        Outcome::Denied => "denied",
        Outcome::Failed => "failed",
    }
}

/// The details a security event may carry: names, counts and codes. Setting values are left
/// out (a changed identity provider's issuer is the org's business), only their names kept.
fn safe_details(d: &Details) -> BTreeMap<String, serde_json::Value> {
    let mut out = BTreeMap::new();
    let mut put = |key: &str, value: serde_json::Value| {
        out.insert(key.to_string(), value);
    };
    if let Some(v) = &d.category {
        put("category", v.clone().into());
    }
    if let Some(v) = &d.entities {
        put("entities", serde_json::json!(v));
    }
    if let Some(v) = &d.settings {
        put("settings", serde_json::json!(v.keys().collect::<Vec<_>>()));
    }
    if let Some(v) = &d.roles {
        put("roles", serde_json::json!(v));
    }
    if let Some(v) = &d.key_prefix {
        put("key_prefix", v.clone().into());
    }
    if let Some(v) = d.failures {
        put("failures", v.into());
    }
    if let Some(v) = &d.grant {
        put("grant", v.clone().into());
    }
    if let Some(v) = &d.rule {
        put("rule", v.clone().into());
    }
    if let Some(v) = d.events {
        put("events", v.into());
    }
    if let Some(v) = &d.severity {
        put("severity", v.clone().into());
    }
    if let Some(v) = &d.method {
        put("method", v.clone().into());
    }
    out
}

/// A `security.notice` body: the event as its `data`.
fn notice_body(event: &SecurityEvent) -> Vec<u8> {
    let body = serde_json::json!({
        "type": SECURITY_NOTICE,
        "timestamp": event.time.to_string(),
        "data": event,
    });
    serde_json::to_vec(&body).expect("JSON values serialize")
}

/// The id of the record an org's security event is kept as: a UUIDv7 of the event's time
/// whose other bits are the audit index, so that writing it again finds it (the evaluator
/// may re-project a step after a crash) and the org's records stay in time order.
pub(crate) fn record_id(event: &SecurityEvent) -> String {
    let millis = event.time.as_millisecond().max(0) as u64;
    let mut tail = [0u8; 10];
    tail[2..].copy_from_slice(&event.audit_index.to_be_bytes());
    uuid::Builder::from_unix_timestamp_millis(millis, &tail)
        .into_uuid()
        .to_string()
}

impl Custos {
    /// Keeps the security events among `events` (log entries in order): an org's as records
    /// of `security_logs` in the org's store, now; the deployment's returned, to be committed
    /// with the evaluator's step, with the notices to the orgs' channels of the events their
    /// admins are told about. Without a `security_logs` category nothing is kept (notices
    /// still go out).
    pub(crate) async fn project_security_events(
        &self,
        events: &[(u64, AuditEvent)],
    ) -> Result<(Vec<StoredSecurityEvent>, Vec<OutboxMessage>), CoreError> {
        let category = self.policy.category(SECURITY_CATEGORY);
        let mut by_org: HashMap<String, Vec<SecurityEvent>> = HashMap::new();
        let mut deployment = Vec::new();
        let mut break_glass = Vec::new();
        for (index, event) in events {
            let Some(security) = classify(*index, event) else {
                continue;
            };
            if security.kind == SecurityEventKind::BreakGlassUsed {
                break_glass.push(security.clone());
            }
            match &security.org {
                Some(org) => by_org.entry(org.clone()).or_default().push(security),
                None => deployment.extend(category.map(|c| StoredSecurityEvent {
                    audit_idx: *index,
                    time: security.time,
                    kind: security.kind.as_str().to_string(),
                    body: serde_json::to_string(&security).expect("events serialize"),
                    expire_at: c.retention.add_to(security.time),
                })),
            }
        }
        let mut notices = self.announce_break_glass(&break_glass).await?;
        for (org, list) in by_org {
            // An org that is gone (terminated, or an id nobody has) keeps nothing.
            let Some((scope, found)) = self.store.org(&org).await? else {
                continue;
            };
            // A terminating org's data is on its way out: its refusals stay in the audit log,
            // but no new record is written for the termination to wait on.
            if found.terminated_at.is_some() || found.terminating_since.is_some() {
                continue;
            }
            notices.extend(self.security_notices(&scope, &list).await?);
            if let Some(category) = category {
                self.keep_org_security_events(&scope, category, list)
                    .await?;
            }
        }
        Ok((deployment, notices))
    }

    /// Every org's admins are told when the retired bootstrap token is used under
    /// `--break-glass`: one `security.notice` per org channel and hour in which it was used
    /// (each use is in the audit log and the deployment's security events; the notice says it
    /// happened, not how often).
    async fn announce_break_glass(
        &self,
        uses: &[SecurityEvent],
    ) -> Result<Vec<OutboxMessage>, CoreError> {
        let mut hours: Vec<(i64, &SecurityEvent)> = Vec::new();
        for use_ in uses {
            let hour = use_.time.as_second().div_euclid(3600);
            if !hours.iter().any(|(h, _)| *h == hour) {
                hours.push((hour, use_));
            }
        }
        if hours.is_empty() {
            return Ok(Vec::new());
        }
        let now = self.now();
        let mut out = Vec::new();
        for org in self.store.orgs().await? {
            if org.terminated_at.is_some() || org.terminating_since.is_some() {
                continue;
            }
            let Some((scope, _)) = self.store.org(&org.id).await? else {
                continue;
            };
            let channels = self
                .org_settings_of(&scope)
                .await?
                .channels
                .unwrap_or_default()
                .outbox_channels();
            for (hour, event) in &hours {
                let body = notice_body(event);
                for channel in &channels {
                    out.push(OutboxMessage {
                        id: crate::outbox::derived_message_id(&[
                            &org.id,
                            "break-glass",
                            &hour.to_string(),
                            channel,
                        ]),
                        org_id: Some(org.id.clone()),
                        channel: channel.clone(),
                        event_type: SECURITY_NOTICE.into(),
                        body: body.clone(),
                        created_at: now,
                    });
                }
            }
        }
        Ok(out)
    }

    /// The `security.notice` messages to the org's channels for the events its admins are
    /// told about: security settings changed, new owners or admins, issued credentials,
    /// approved support access.
    async fn security_notices(
        &self,
        scope: &OrgScope,
        events: &[SecurityEvent],
    ) -> Result<Vec<OutboxMessage>, CoreError> {
        use SecurityEventKind as K;
        let told: Vec<&SecurityEvent> = events
            .iter()
            .filter(|e| {
                matches!(
                    e.kind,
                    K::SecuritySettingsChanged
                        | K::PrivilegedMember
                        | K::CredentialIssued
                        | K::SupportApproved
                )
            })
            .collect();
        if told.is_empty() {
            return Ok(Vec::new());
        }
        let channels = self
            .org_settings_of(scope)
            .await?
            .channels
            .unwrap_or_default()
            .outbox_channels();
        let now = self.now();
        let mut out = Vec::new();
        for event in told {
            let body = notice_body(event);
            for channel in &channels {
                out.push(OutboxMessage {
                    id: crate::alerting::message_id(),
                    org_id: Some(scope.org_id().to_string()),
                    channel: channel.clone(),
                    event_type: SECURITY_NOTICE.into(),
                    body: body.clone(),
                    created_at: now,
                });
            }
        }
        Ok(out)
    }

    async fn keep_org_security_events(
        &self,
        scope: &OrgScope,
        category: &custos_policy::Category,
        events: Vec<SecurityEvent>,
    ) -> Result<(), CoreError> {
        let store = self.store.for_org(scope).await?;
        let mut keys = BatchKeys::default();
        let mut rows = Vec::new();
        let no_pii = BTreeMap::new();
        for event in events {
            let id = record_id(&event);
            if store.record(scope, &id).await?.is_some() {
                continue;
            }
            let due = category.due_times(event.time, None);
            let envelope = Envelope {
                content: serde_json::to_value(&event).expect("events serialize"),
                subject: None,
                metadata: serde_json::Value::Null,
                file_name: None,
                content_type: None,
                tokens: None,
                org_tokens: None,
            };
            let spec = RowSpec {
                id,
                category: &category.name,
                subject_ref: None,
                now: event.time,
                due,
                pii: &no_pii,
            };
            rows.push(
                self.sealed_row(scope, &mut keys, spec, Some(envelope))
                    .await?,
            );
        }
        if rows.is_empty() {
            return Ok(());
        }
        // Not while the org moves to another region: a row written into its old home during
        // the copy would make the move start over (and, three times, give up); the evaluator
        // tries this step again later. Only asked, not claimed: a claim would write the org's
        // id into the main store, where a resident org leaves nothing. (A move that starts
        // between the question and the write copies again.)
        if self
            .store
            .main()
            .org_move_claimed(scope.org_id(), jiff::Timestamp::now())
            .await?
        {
            return Err(CoreError::MoveInProgress(format!(
                "org {} is being moved; its security events are kept after the move",
                scope.org_id()
            )));
        }
        // A projection of events already in the audit log: auditing it again would only
        // repeat them (and feed the evaluator its own writes).
        let store = self.store.for_org(scope).await?;
        store.insert_records(scope, &rows, &[]).await?;
        Ok(())
    }

    /// The org's security events, oldest first from `cursor` (owner, admin, auditor, under
    /// the `security_logs` category's rule).
    pub async fn security_events(
        &self,
        caller: &Caller,
        org: &str,
        cursor: Option<&str>,
        limit: Option<u32>,
    ) -> Result<SecurityEventPage, CoreError> {
        let limit = page_limit(limit)?;
        let grant = self
            .authorize(caller, Operation::SecurityEventList, org)
            .await?;
        self.authorize_category(caller, &grant, SECURITY_CATEGORY, None)
            .await?;
        let scope = grant.scope;
        let filter = custos_store::RecordFilter {
            category: Some(SECURITY_CATEGORY.into()),
            states: vec![custos_store::RecordState::Active],
            ..Default::default()
        };
        let store = self.store.for_org(&scope).await?;
        let rows = store.list_records(&scope, &filter, cursor, limit).await?;
        let next_cursor = (rows.len() == limit as usize)
            .then(|| rows.last().map(|r| r.id.clone()))
            .flatten();
        let mut items = Vec::new();
        for row in rows {
            let Some(envelope) = self.open_envelope(&scope, &row).await? else {
                continue;
            };
            // Records members wrote to `security_logs` themselves are not security events:
            // only a record whose id is the one its event derives is.
            let Ok(event) = serde_json::from_value::<SecurityEvent>(envelope.content) else {
                continue;
            };
            if record_id(&event) == row.id && event.org.as_deref() == Some(scope.org_id()) {
                items.push(event);
            }
        }
        let event = self
            .event(caller, AuditAction::SecurityEventList)
            .org(scope.org_id());
        self.store.append_audit(&[event]).await?;
        Ok(SecurityEventPage { items, next_cursor })
    }

    /// The deployment's own security events (no org), newest first before `cursor` (an
    /// audit index); operators.
    pub async fn deployment_security_events(
        &self,
        caller: &Caller,
        cursor: Option<&str>,
        limit: Option<u32>,
    ) -> Result<SecurityEventPage, CoreError> {
        let limit = page_limit(limit)?;
        let before = cursor
            .map(|c| {
                c.parse::<u64>()
                    .map_err(|_| CoreError::invalid("cursor", "must be a cursor from a page"))
            })
            .transpose()?;
        self.authorize_global(caller, Operation::DeploymentSecurityEventList)
            .await?;
        let rows = self
            .store
            .main()
            .deployment_security_events(before, limit)
            .await?;
        let next_cursor = (rows.len() == limit as usize)
            .then(|| rows.last().map(|r| r.audit_idx.to_string()))
            .flatten();
        let items = rows
            .iter()
            .map(|r| {
                serde_json::from_str(&r.body).map_err(|e| {
                    CoreError::internal_from(format!("security event {}", r.audit_idx), e)
                })
            })
            .collect::<Result<_, _>>()?;
        let event = self.event(caller, AuditAction::SecurityEventListDeployment);
        self.store.append_audit(&[event]).await?;
        Ok(SecurityEventPage { items, next_cursor })
    }

    /// Deletes the deployment's security events whose retention ended (the org's are records,
    /// which the sweep purges with the rest); audited when it deletes any.
    pub(crate) async fn purge_deployment_security_events(&self) -> Result<u64, CoreError> {
        let now = self.now();
        let event = AuditEvent::new(now, Actor::System, AuditAction::SecurityEventPurge)
            .details(Details::new().due(now));
        Ok(self
            .store
            .main()
            .purge_security_events(now, &[event])
            .await?)
    }
}

fn page_limit(limit: Option<u32>) -> Result<u32, CoreError> {
    let limit = limit.unwrap_or(100);
    if limit == 0 || limit > crate::records::MAX_PAGE {
        return Err(CoreError::invalid(
            "limit",
            format!("must be 1 to {}", crate::records::MAX_PAGE),
        ));
    }
    Ok(limit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use custos_audit::Target;

    fn at(action: AuditAction, outcome: Outcome) -> AuditEvent {
        let mut e = AuditEvent::new(
            jiff::Timestamp::from_second(1_800_000_000).unwrap(),
            Actor::Member("m1".into()),
            action,
        )
        .outcome(outcome);
        e.org = Some("o1".into());
        e
    }

    #[test]
    fn audit_events_are_classified_by_what_they_mean_to_security() {
        use SecurityEventKind as K;
        let kind = |e: &AuditEvent| classify(7, e).map(|s| s.kind);
        assert_eq!(
            kind(&at(AuditAction::MemberList, Outcome::Denied)),
            Some(K::AccessDenied)
        );
        assert_eq!(kind(&at(AuditAction::MemberList, Outcome::Success)), None);
        assert_eq!(
            kind(&at(AuditAction::AuthReject, Outcome::Denied)),
            Some(K::AuthFailed)
        );
        assert_eq!(
            kind(&at(AuditAction::SessionOpen, Outcome::Denied)),
            Some(K::MfaFailed)
        );
        assert_eq!(
            kind(&at(AuditAction::PiiBlocked, Outcome::Denied)),
            Some(K::PiiBlocked)
        );
        let mut settings = at(AuditAction::SettingsUpdate, Outcome::Success);
        settings.details = Details::new().settings(BTreeMap::from([(
            "llm_max_concurrency".to_string(),
            "8".to_string(),
        )]));
        assert_eq!(kind(&settings), None, "not a security setting");
        settings.details = Details::new().settings(BTreeMap::from([(
            "identity_provider".to_string(),
            "https://login.acme.example".to_string(),
        )]));
        let shown = classify(7, &settings).unwrap();
        assert_eq!(shown.kind, K::SecuritySettingsChanged);
        assert_eq!(
            shown.details["settings"],
            serde_json::json!(["identity_provider"])
        );
        assert!(!serde_json::to_string(&shown)
            .unwrap()
            .contains("login.acme"));
        let mut admin = at(AuditAction::MemberCreate, Outcome::Success);
        admin.details = Details::new().roles(vec!["admin".to_string()]);
        assert_eq!(kind(&admin), Some(K::PrivilegedMember));
        admin.details = Details::new().roles(vec!["member".to_string()]);
        assert_eq!(kind(&admin), None);
        let mut support = at(AuditAction::RecordRead, Outcome::Success);
        support.actor = Actor::Operator("op1".into());
        support.details = Details::new().grant("sr_1");
        support.target = Some(Target::Record("r1".into()));
        let used = classify(9, &support).unwrap();
        assert_eq!(
            (used.kind, used.target.as_deref()),
            (K::SupportUsed, Some("record:r1"))
        );
    }

    #[test]
    fn a_record_id_is_the_same_for_the_same_event_and_ordered_by_time() {
        let event = |index, second| SecurityEvent {
            kind: SecurityEventKind::AccessDenied,
            audit_index: index,
            time: jiff::Timestamp::from_second(second).unwrap(),
            action: "member.list".into(),
            outcome: "denied".into(),
            actor: "member:m1".into(),
            org: Some("o1".into()),
            target: None,
            reason: None,
            details: BTreeMap::new(),
        };
        assert_eq!(record_id(&event(5, 100)), record_id(&event(5, 100)));
        assert_ne!(record_id(&event(5, 100)), record_id(&event(6, 100)));
        assert!(record_id(&event(9, 100)) < record_id(&event(1, 101)));
    }
}
