//! Incidents: a detection time and the policy's clocks (`[incidents] contain, assess,
//! notify`), a status that only moves forward (`detected` → `contained` → `assessed` →
//! `notified` → `remediated` → `closed`, each step audited with who and when), a scope (orgs,
//! actors, a time window, categories), overdue flags and clock alerts, and the data subjects
//! affected, computed from the audit log.

use std::collections::BTreeMap;

use custos_audit::{Actor, AuditAction, AuditEvent, Details, Target};
use custos_store::{IncidentNotice, IncidentRow, IncidentStep, OutboxMessage};
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::authz::Operation;
use crate::{Caller, CoreError, Custos};

/// The longest title.
const MAX_TITLE: usize = 200;
/// The longest note of a step.
const MAX_NOTE: usize = 2000;
/// The most orgs, actors or categories a scope names.
const MAX_SCOPE: usize = 1000;

/// Where an incident stands; it only moves forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum IncidentStatus {
    /// Detected; containment runs on the `contain` clock.
    Detected,
    /// Contained.
    Contained,
    /// Scope and impact assessed.
    Assessed,
    /// The affected orgs and people notified.
    Notified,
    /// Remediated.
    Remediated,
    /// Closed after review.
    Closed,
}

impl IncidentStatus {
    /// The status as written.
    pub fn as_str(self) -> &'static str {
        match self {
            IncidentStatus::Detected => "detected",
            IncidentStatus::Contained => "contained",
            IncidentStatus::Assessed => "assessed",
            IncidentStatus::Notified => "notified",
            IncidentStatus::Remediated => "remediated",
            IncidentStatus::Closed => "closed",
        }
    }

    fn parse(text: &str) -> Result<IncidentStatus, CoreError> {
        serde_json::from_value(serde_json::Value::String(text.to_string()))
            .map_err(|_| CoreError::internal(format!("stored incident status {text:?}")))
    }
}

/// What an incident concerns.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct IncidentScope {
    /// Org ids (empty: every org).
    pub orgs: Vec<String>,
    /// Actors as the audit log names them (`member:<id>`, `operator:<id>`, `admin`; empty:
    /// every actor).
    pub actors: Vec<String>,
    /// The start of the window the affected subjects are computed over.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub from: Option<Timestamp>,
    /// Its end (absent: until now).
    #[schema(value_type = Option<String>, format = DateTime)]
    pub to: Option<Timestamp>,
    /// Categories (empty: every category).
    pub categories: Vec<String>,
}

/// `POST /v1/incidents`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewIncident {
    /// A short title (no identifiers of a person: it is kept in plain text).
    pub title: String,
    /// When it was detected (absent: now); the clocks run from here.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub detected_at: Option<Timestamp>,
    /// What it concerns.
    #[serde(default)]
    pub scope: IncidentScope,
}

/// `POST /v1/incidents/{id}/status`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IncidentStatusChange {
    /// The new status (later than the current one).
    pub status: IncidentStatus,
    /// What was done (no identifiers of a person).
    #[serde(default)]
    pub note: Option<String>,
}

/// One of an incident's clocks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct IncidentClock {
    /// `contain`, `assess` or `notify`.
    pub name: String,
    /// When it runs out.
    #[schema(value_type = String, format = DateTime)]
    pub due: Timestamp,
    /// When the incident reached the step (absent: not yet).
    #[schema(value_type = Option<String>, format = DateTime)]
    pub met_at: Option<Timestamp>,
    /// Run out before the step was reached (or reached late).
    pub overdue: bool,
}

/// One step of an incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct IncidentStepView {
    /// The status it moved to.
    pub status: IncidentStatus,
    /// When.
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    /// Who (`operator:<id>`, `admin`, `rule:<name>`).
    pub actor: String,
    /// What was noted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// An incident as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct IncidentView {
    /// Its id.
    pub id: String,
    /// Its title.
    pub title: String,
    /// Where it stands.
    pub status: IncidentStatus,
    /// When it was detected.
    #[schema(value_type = String, format = DateTime)]
    pub detected_at: Timestamp,
    /// Who opened it.
    pub opened_by: String,
    /// What it concerns.
    pub scope: IncidentScope,
    /// The policy's clocks, from detection.
    pub clocks: Vec<IncidentClock>,
    /// Whether any clock ran out before its step.
    pub overdue: bool,
    /// Every step, the detection first.
    pub timeline: Vec<IncidentStepView>,
    /// The affected orgs told so far, in the order they were told.
    pub notifications: Vec<IncidentNoticeView>,
}

/// One affected org told of an incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct IncidentNoticeView {
    /// The org.
    pub org: String,
    /// Its affected subjects (each told through the org's webhooks, by reference).
    pub subjects: u64,
    /// Their records read or exported.
    pub records: u64,
    /// Messages queued: the incident notice to each of the org's channels, and a subject
    /// notice per subject to each of its webhooks (0: the org has no channels).
    pub messages: u64,
    /// When.
    #[schema(value_type = String, format = DateTime)]
    pub notified_at: Timestamp,
    /// Who told it.
    pub by: String,
}

impl From<IncidentNotice> for IncidentNoticeView {
    fn from(n: IncidentNotice) -> Self {
        IncidentNoticeView {
            org: n.org_id,
            subjects: n.subjects,
            records: n.records,
            messages: n.messages,
            notified_at: n.notified_at,
            by: n.actor,
        }
    }
}

/// A page of incidents, newest first.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct IncidentPage {
    /// Incidents.
    pub items: Vec<IncidentView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// The data subjects an incident affected, per org.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct AffectedSubjects {
    /// Orgs with at least one affected subject, by id.
    pub orgs: Vec<AffectedOrg>,
}

/// One org's affected subjects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct AffectedOrg {
    /// The org.
    pub org: String,
    /// Its subjects, by reference.
    pub subjects: Vec<AffectedSubject>,
}

/// One affected subject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct AffectedSubject {
    /// The keyed reference (as `GET .../subjects/{subject}/reference` gives it).
    pub subject_ref: String,
    /// Records read or exported, per category.
    pub categories: BTreeMap<String, u64>,
}

/// `GET /v1/orgs/{org}/subjects/{subject}/reference`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct SubjectReference {
    /// The keyed reference audit events, certificates and incidents name the subject by.
    pub subject_ref: String,
}

impl Custos {
    /// The keyed reference of `subject` in `org` (owner, admin, auditor): what an incident's
    /// affected list, audit events and certificates name the subject by. Audited.
    pub async fn subject_reference(
        &self,
        caller: &Caller,
        org: &str,
        subject: &str,
    ) -> Result<SubjectReference, CoreError> {
        crate::records::check_subject(&Some(subject.to_string()))?;
        let grant = self
            .authorize(caller, Operation::SubjectReference, org)
            .await?;
        let subject_ref = self
            .vault
            .subject_ref(grant.scope.org_id(), subject)
            .await?;
        let event = self
            .event(caller, AuditAction::SubjectReference)
            .org(grant.scope.org_id())
            .details(Details::new().subject_ref(subject_ref.clone()));
        self.store.append_audit(&[event]).await?;
        Ok(SubjectReference { subject_ref })
    }

    /// Opens an incident (operators).
    pub async fn create_incident(
        &self,
        caller: &Caller,
        new: NewIncident,
    ) -> Result<IncidentView, CoreError> {
        self.authorize_global(caller, Operation::IncidentCreate)
            .await?;
        let now = self.now();
        self.check_incident(&new, now)?;
        let detected_at = new.detected_at.unwrap_or(now);
        let actor = caller.actor().name();
        let (row, first) = self.new_incident_row(&new.title, detected_at, &actor, &new.scope);
        let event = self
            .event(caller, AuditAction::IncidentCreate)
            .target(Target::Incident(row.id.clone()));
        self.store
            .main()
            .create_incident(&row, &first, &[event])
            .await?;
        self.incident_view((row, vec![first], Vec::new()))
    }

    /// The rows of a new incident and its detection step.
    pub(crate) fn new_incident_row(
        &self,
        title: &str,
        detected_at: Timestamp,
        opened_by: &str,
        scope: &IncidentScope,
    ) -> (IncidentRow, IncidentStep) {
        let clocks = &self.policy.notifications.incidents;
        let row = IncidentRow {
            id: uuid::Uuid::now_v7().to_string(),
            title: title.to_string(),
            status: IncidentStatus::Detected.as_str().into(),
            detected_at,
            created_at: self.now(),
            opened_by: opened_by.to_string(),
            scope: serde_json::to_string(scope).expect("scopes serialize"),
            contain_due: clocks.contain.add_to(detected_at),
            assess_due: clocks.assess.add_to(detected_at),
            notify_due: clocks.notify.add_to(detected_at),
            warned: Vec::new(),
        };
        let first = IncidentStep {
            seq: 0,
            status: IncidentStatus::Detected.as_str().into(),
            at: detected_at,
            actor: opened_by.to_string(),
            note: None,
        };
        (row, first)
    }

    fn check_incident(&self, new: &NewIncident, now: Timestamp) -> Result<(), CoreError> {
        let title = new.title.trim();
        if title.is_empty() || title.chars().count() > MAX_TITLE {
            return Err(CoreError::invalid(
                "title",
                format!("must be 1 to {MAX_TITLE} characters"),
            ));
        }
        self.check_free_text("title", title)?;
        if new.detected_at.is_some_and(|t| t > now) {
            return Err(CoreError::invalid("detected_at", "is in the future"));
        }
        let s = &new.scope;
        for (field, list) in [
            ("scope.orgs", &s.orgs),
            ("scope.actors", &s.actors),
            ("scope.categories", &s.categories),
        ] {
            if list.len() > MAX_SCOPE {
                return Err(CoreError::invalid(
                    field,
                    format!("at most {MAX_SCOPE} entries"),
                ));
            }
        }
        for actor in &s.actors {
            let known = matches!(actor.as_str(), "admin" | "system" | "anonymous")
                || ["member:", "operator:", "subject:"]
                    .iter()
                    .any(|p| actor.strip_prefix(p).is_some_and(|id| !id.is_empty()));
            if !known {
                return Err(CoreError::invalid(
                    "scope.actors",
                    format!(
                        "{actor:?} is not an actor as the audit log names one (member:<id>, \
                         operator:<id>, subject:<reference>, admin, system, anonymous)"
                    ),
                ));
            }
        }
        for category in &s.categories {
            self.known_category(category)?;
        }
        if let (Some(from), Some(to)) = (s.from, s.to) {
            if from > to {
                return Err(CoreError::invalid("scope.from", "is after scope.to"));
            }
        }
        Ok(())
    }

    /// Incidents, newest first (operators).
    pub async fn incidents(
        &self,
        caller: &Caller,
        open_only: bool,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<IncidentPage, CoreError> {
        self.authorize_global(caller, Operation::IncidentList)
            .await?;
        let main = self.store.main();
        let rows = main.incidents(open_only, cursor, limit).await?;
        let next_cursor = (rows.len() == limit as usize)
            .then(|| rows.last().map(|r| r.id.clone()))
            .flatten();
        let mut items = Vec::new();
        for row in rows {
            let steps = main
                .incident(&row.id)
                .await?
                .map(|(_, steps)| steps)
                .unwrap_or_default();
            let notices = main.incident_notices(&row.id).await?;
            items.push(self.incident_view((row, steps, notices))?);
        }
        let event = self.event(caller, AuditAction::IncidentList);
        self.store.append_audit(&[event]).await?;
        Ok(IncidentPage { items, next_cursor })
    }

    /// One incident with its clocks and timeline (operators).
    pub async fn incident(&self, caller: &Caller, id: &str) -> Result<IncidentView, CoreError> {
        self.authorize_global(caller, Operation::IncidentRead)
            .await?;
        let stored = self.incident_row(id).await?;
        let event = self
            .event(caller, AuditAction::IncidentRead)
            .target(Target::Incident(id.to_string()));
        self.store.append_audit(&[event]).await?;
        self.incident_view(stored)
    }

    /// An incident's view, unaudited (for the report, which audits itself).
    pub(crate) async fn incident_view_of(&self, id: &str) -> Result<IncidentView, CoreError> {
        let stored = self.incident_row(id).await?;
        self.incident_view(stored)
    }

    pub(crate) async fn incident_row(&self, id: &str) -> Result<StoredIncident, CoreError> {
        let main = self.store.main();
        let (row, steps) = main
            .incident(id)
            .await?
            .ok_or_else(|| CoreError::NotFound(format!("incident {id}")))?;
        let notices = main.incident_notices(id).await?;
        Ok((row, steps, notices))
    }

    /// Moves an incident forward (operators); audited with who and when.
    pub async fn set_incident_status(
        &self,
        caller: &Caller,
        id: &str,
        change: IncidentStatusChange,
    ) -> Result<IncidentView, CoreError> {
        self.authorize_global(caller, Operation::IncidentStatus)
            .await?;
        if let Some(note) = &change.note {
            if note.chars().count() > MAX_NOTE {
                return Err(CoreError::invalid(
                    "note",
                    format!("at most {MAX_NOTE} characters"),
                ));
            }
            self.check_free_text("note", note)?;
        }
        let (row, _, _) = self.incident_row(id).await?;
        let current = IncidentStatus::parse(&row.status)?;
        if change.status <= current {
            return Err(CoreError::Conflict(format!(
                "incident {id} is {}: a status only moves forward",
                current.as_str()
            )));
        }
        let step = IncidentStep {
            seq: 0,
            status: change.status.as_str().into(),
            at: self.now(),
            actor: caller.actor().name(),
            note: change.note.filter(|n| !n.trim().is_empty()),
        };
        let event = self
            .event(caller, AuditAction::IncidentStatus)
            .target(Target::Incident(id.to_string()))
            .details(Details::new().status(change.status.as_str()));
        if !self
            .store
            .main()
            .advance_incident(id, &row.status, &step, &[event])
            .await?
        {
            return Err(CoreError::Conflict(format!(
                "incident {id} changed meanwhile; read it again"
            )));
        }
        let stored = self.incident_row(id).await?;
        self.incident_view(stored)
    }

    fn incident_view(
        &self,
        (row, steps, notices): StoredIncident,
    ) -> Result<IncidentView, CoreError> {
        let now = self.now();
        let timeline = steps
            .into_iter()
            .map(|s| {
                Ok(IncidentStepView {
                    status: IncidentStatus::parse(&s.status)?,
                    at: s.at,
                    actor: s.actor,
                    note: s.note,
                })
            })
            .collect::<Result<Vec<_>, CoreError>>()?;
        let met = |status: IncidentStatus| {
            timeline
                .iter()
                .filter(|s| s.status >= status)
                .map(|s| s.at)
                .min()
        };
        let clocks: Vec<IncidentClock> = [
            ("contain", row.contain_due, IncidentStatus::Contained),
            ("assess", row.assess_due, IncidentStatus::Assessed),
            ("notify", row.notify_due, IncidentStatus::Notified),
        ]
        .into_iter()
        .map(|(name, due, status)| {
            let met_at = met(status);
            IncidentClock {
                name: name.into(),
                due,
                met_at,
                overdue: met_at.map_or(now > due, |at| at > due),
            }
        })
        .collect();
        let scope = serde_json::from_str(&row.scope)
            .map_err(|e| CoreError::internal_from(format!("incident {} scope", row.id), e))?;
        Ok(IncidentView {
            overdue: clocks.iter().any(|c| c.overdue),
            id: row.id,
            title: row.title,
            status: IncidentStatus::parse(&row.status)?,
            detected_at: row.detected_at,
            opened_by: row.opened_by,
            scope,
            clocks,
            timeline,
            notifications: notices.into_iter().map(Into::into).collect(),
        })
    }

    /// The data subjects the incident's actors obtained data of within its window, from the
    /// audit log: every record read, revealed or downloaded (counted per category) and every
    /// export (counted under `exports`), by subject reference per org.
    pub async fn incident_affected(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<AffectedSubjects, CoreError> {
        self.authorize_global(caller, Operation::IncidentAffected)
            .await?;
        let (row, _, _) = self.incident_row(id).await?;
        let scope: IncidentScope = serde_json::from_str(&row.scope)
            .map_err(|e| CoreError::internal_from(format!("incident {id} scope"), e))?;
        let (affected, records) = self.affected_subjects(&scope).await?;
        let subjects: usize = affected.orgs.iter().map(|o| o.subjects.len()).sum();
        let event = self
            .event(caller, AuditAction::IncidentAffected)
            .target(Target::Incident(id.to_string()))
            .details(Details::new().subjects(subjects as u64).records(records));
        self.store.append_audit(&[event]).await?;
        Ok(affected)
    }

    /// Queues the alerts of incident clocks about to run out (the last quarter of a clock,
    /// at most 15 minutes) or run out, once each, to every webhook of the policy.
    pub(crate) async fn check_incident_clocks(&self) -> Result<(), CoreError> {
        let main = self.store.main();
        let now = self.now();
        let channels: Vec<String> = self
            .policy
            .notifications
            .webhooks
            .keys()
            .map(|name| format!("webhook:{name}"))
            .collect();
        for row in main.incidents(true, None, 1000).await? {
            let (row, steps) = match main.incident(&row.id).await? {
                Some(found) => found,
                None => continue,
            };
            let view = self.incident_view((row.clone(), steps, Vec::new()))?;
            for clock in &view.clocks {
                if clock.met_at.is_some() {
                    continue;
                }
                let length = clock.due.duration_since(row.detected_at);
                let margin = (length / 4).min(SignedDuration::from_mins(15));
                let state = if now >= clock.due {
                    "overdue"
                } else if now >= clock.due - margin {
                    "soon"
                } else {
                    continue;
                };
                let warning = format!("{}:{state}", clock.name);
                if row.warned.contains(&warning) {
                    continue;
                }
                let body = serde_json::json!({
                    "type": INCIDENT_CLOCK,
                    "timestamp": now.to_string(),
                    "data": {
                        "incident": row.id,
                        "clock": clock.name,
                        "state": state,
                        "due": clock.due.to_string(),
                        "status": view.status,
                        "detected_at": row.detected_at.to_string(),
                    }
                });
                let body = serde_json::to_vec(&body).expect("JSON values serialize");
                let messages: Vec<OutboxMessage> = channels
                    .iter()
                    .map(|channel| OutboxMessage {
                        id: crate::alerting::message_id(),
                        org_id: None,
                        channel: channel.clone(),
                        event_type: INCIDENT_CLOCK.into(),
                        body: body.clone(),
                        created_at: now,
                    })
                    .collect();
                let event = AuditEvent::new(now, Actor::System, AuditAction::IncidentClock)
                    .target(Target::Incident(row.id.clone()))
                    .details(Details::new().clock(warning.clone()).due(clock.due));
                if main
                    .warn_incident(&row.id, &warning, &messages, &[event])
                    .await?
                {
                    tracing::warn!(incident = %row.id, clock = %clock.name, state, "incident clock");
                }
            }
        }
        Ok(())
    }
}

/// An incident as stored: its row, its steps and the orgs told.
pub(crate) type StoredIncident = (IncidentRow, Vec<IncidentStep>, Vec<IncidentNotice>);

/// The event type of an incident clock's alert.
pub const INCIDENT_CLOCK: &str = "incident.clock";
