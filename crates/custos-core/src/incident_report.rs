//! An incident's report: its clocks and timeline, each step with the audit event that
//! recorded it, that event's inclusion proof and the signed checkpoint covering them all, so
//! that when each step happened (the 1 h / 6 h / 72 h promises) can be proved afterwards by
//! anyone with the deployment's verifier key (`tools/audit-verify/verify.py report`).

use base64::Engine as _;
use custos_audit::{AuditAction, AuditEvent, InclusionProof, Target};
use custos_store::AuditFilter;
use serde::Serialize;
use utoipa::ToSchema;

use crate::authz::Operation;
use crate::incidents::{IncidentStatus, IncidentView};
use crate::{Caller, CoreError, Custos};

/// The report's format name.
pub const REPORT_FORMAT: &str = "custos-incident-report/v1";

/// An incident's report.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct IncidentReport {
    /// `custos-incident-report/v1`.
    pub format: String,
    /// The incident, its clocks and timeline, as of the report.
    pub incident: IncidentView,
    /// How many subjects and records the incident affected, per org.
    pub affected: Vec<AffectedCount>,
    /// The deployment's verifier key (`<name>+<key id>+<base64>`); trust it only as far as
    /// you trust where you got the report, or compare it with the one you hold.
    pub verifier_key: String,
    /// The signed checkpoint (a signed note) every step's proof is against.
    pub checkpoint: String,
    /// Each step, in order, with its audit evidence.
    pub steps: Vec<ReportStep>,
    /// Each affected org told, in order, with the audit evidence of when.
    pub notices: Vec<ReportNotice>,
}

/// One org told of the incident, with the audit event that recorded it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReportNotice {
    /// The org told.
    pub org: String,
    /// The audit log entry (`incident.notify`).
    pub audit_index: u64,
    /// That entry's exact bytes, base64.
    pub leaf: String,
    /// Its inclusion proof against `checkpoint`.
    #[schema(value_type = Object)]
    pub inclusion_proof: InclusionProof,
}

/// One org's counts in a report (the subjects themselves are in `.../affected`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AffectedCount {
    /// The org.
    pub org: String,
    /// Affected subjects.
    pub subjects: u64,
    /// Records read or exported.
    pub records: u64,
}

/// One step with the audit event that recorded it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReportStep {
    /// The status it moved to.
    pub status: IncidentStatus,
    /// The audit log entry (`incident.create` for the detection, `incident.status` after).
    pub audit_index: u64,
    /// That entry's exact bytes, base64.
    pub leaf: String,
    /// Its inclusion proof against `checkpoint`.
    #[schema(value_type = Object)]
    pub inclusion_proof: InclusionProof,
}

impl Custos {
    /// The report of an incident (operators): JSON with its evidence. Audited as a read.
    pub async fn incident_report(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<IncidentReport, CoreError> {
        self.authorize_global(caller, Operation::IncidentReport)
            .await?;
        let incident = self.incident_view_of(id).await?;
        let (affected, _) = self.affected_subjects(&incident.scope).await?;
        let affected = affected
            .orgs
            .iter()
            .map(|o| AffectedCount {
                org: o.org.clone(),
                subjects: o.subjects.len() as u64,
                records: o.subjects.iter().flat_map(|s| s.categories.values()).sum(),
            })
            .collect();
        // The steps' events, in log order: the creation, then each status change.
        let main = self.store.main();
        let filter = AuditFilter {
            target: Some(Target::Incident(id.to_string()).to_string()),
            ..AuditFilter::default()
        };
        let mut events = Vec::new();
        let mut from = 0;
        loop {
            let page = main.audit_query(None, &filter, from, 1000).await?;
            let Some(last) = page.last().map(|e| e.index) else {
                break;
            };
            for entry in page {
                let event = AuditEvent::from_canonical_bytes(&entry.leaf).map_err(|e| {
                    CoreError::internal_from(format!("audit entry {}", entry.index), e)
                })?;
                if matches!(
                    event.action,
                    AuditAction::IncidentCreate
                        | AuditAction::IncidentStatus
                        | AuditAction::IncidentNotify
                ) {
                    events.push((entry.index, entry.leaf, event));
                }
            }
            from = last + 1;
        }
        let checkpoint = self.ensure_checkpoint_in(main).await?;
        let mut steps = Vec::new();
        let mut notices = Vec::new();
        for (index, leaf, event) in events {
            if index >= checkpoint.size {
                return Err(CoreError::internal(
                    "the latest checkpoint does not cover the incident's last step yet",
                ));
            }
            let leaf_b64 = base64::engine::general_purpose::STANDARD.encode(&leaf);
            let inclusion_proof = main.audit_inclusion_proof(index, checkpoint.size).await?;
            if event.action == AuditAction::IncidentNotify {
                notices.push(ReportNotice {
                    org: event.org.clone().unwrap_or_default(),
                    audit_index: index,
                    leaf: leaf_b64,
                    inclusion_proof,
                });
                continue;
            }
            let status = match event.action {
                AuditAction::IncidentCreate => IncidentStatus::Detected,
                _ => serde_json::from_value(serde_json::Value::String(
                    event.details.status.clone().unwrap_or_default(),
                ))
                .map_err(|_| CoreError::internal(format!("audit entry {index}: no status")))?,
            };
            steps.push(ReportStep {
                status,
                audit_index: index,
                leaf: leaf_b64,
                inclusion_proof,
            });
        }
        let event = self
            .event(caller, AuditAction::IncidentReport)
            .target(Target::Incident(id.to_string()));
        self.store.append_audit(&[event]).await?;
        Ok(IncidentReport {
            format: REPORT_FORMAT.into(),
            incident,
            affected,
            verifier_key: self.audit_signer()?.verifier_key(),
            checkpoint: checkpoint.note,
            steps,
            notices,
        })
    }
}

impl IncidentReport {
    /// The report as lines of text for people (its PDF form): the clocks, the timeline and
    /// the notices each with the audit index that proves when, the affected counts, and the
    /// signed checkpoint with the key to check it (the JSON form carries the proofs).
    pub fn lines(&self) -> Vec<String> {
        let i = &self.incident;
        let when = |t: &jiff::Timestamp| t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string();
        let mut out = vec![
            format!("Incident: {}", i.title),
            format!("Id: {}", i.id),
            format!("Detected: {}", when(&i.detected_at)),
            format!("Opened by: {}", i.opened_by),
            format!("Status: {}", i.status.as_str()),
            format!("Overdue: {}", if i.overdue { "yes" } else { "no" }),
            String::new(),
            "Clocks".into(),
        ];
        for c in &i.clocks {
            out.push(format!(
                "  {}: due {}, {}{}",
                c.name,
                when(&c.due),
                c.met_at
                    .as_ref()
                    .map_or("not met yet".to_string(), |t| format!("met {}", when(t))),
                if c.overdue { " (OVERDUE)" } else { "" }
            ));
        }
        out.push(String::new());
        out.push("Timeline (audit log index of each step)".into());
        for (step, evidence) in i.timeline.iter().zip(&self.steps) {
            out.push(format!(
                "  {}  {} by {}  [audit #{}]",
                when(&step.at),
                step.status.as_str(),
                step.actor,
                evidence.audit_index
            ));
            if let Some(note) = &step.note {
                out.push(format!("      {note}"));
            }
        }
        out.push(String::new());
        out.push("Affected".into());
        if self.affected.is_empty() {
            out.push("  no data subject affected".into());
        }
        for a in &self.affected {
            out.push(format!(
                "  org {}: {} subjects, {} records",
                a.org, a.subjects, a.records
            ));
        }
        out.push(String::new());
        out.push("Notifications (audit log index of each)".into());
        if i.notifications.is_empty() {
            out.push("  none yet".into());
        }
        for (n, evidence) in i.notifications.iter().zip(&self.notices) {
            out.push(format!(
                "  {}  org {}: {} subjects, {} messages, by {}  [audit #{}]",
                when(&n.notified_at),
                n.org,
                n.subjects,
                n.messages,
                n.by,
                evidence.audit_index
            ));
        }
        out.push(String::new());
        out.push("Signed checkpoint (every index above is proved against it)".into());
        out.extend(self.checkpoint.lines().map(|l| format!("  {l}")));
        out.push(String::new());
        out.push(format!("Verifier key: {}", self.verifier_key));
        out.push(
            "The JSON form of this report carries each entry and its inclusion proof; \
             tools/audit-verify/verify.py report checks them offline."
                .into(),
        );
        out
    }
}
