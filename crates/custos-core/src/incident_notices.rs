//! Telling the orgs an incident affected (`POST /v1/incidents/{id}/notifications`): each org
//! gets one `incident.notice` through every one of its channels, with its counts per
//! category, and one `incident.subject_notice` per affected subject through each of its
//! webhooks, naming the subject by reference only, so the org can tell the person. Which
//! subjects are affected is computed from the audit log as `.../affected` computes it.
//!
//! An org is told once: its notice row, its messages and its `incident.notify` audit event
//! commit together, and a second call tells only orgs not told yet (the affected set can grow
//! while an incident's window is open).

use std::collections::BTreeMap;

use custos_audit::{AuditAction, Details, Target};
use custos_store::{IncidentNotice, OutboxMessage};
use serde::Serialize;
use utoipa::ToSchema;

use crate::authz::Operation;
use crate::incidents::{AffectedOrg, IncidentNoticeView, IncidentScope};
use crate::outbox::derived_message_id;
use crate::{Caller, CoreError, Custos};

/// An affected org's notice of an incident.
pub const INCIDENT_NOTICE: &str = "incident.notice";
/// One affected subject's notice, for the org to pass on to the person.
pub const INCIDENT_SUBJECT_NOTICE: &str = "incident.subject_notice";

/// What `POST /v1/incidents/{id}/notifications` did.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct IncidentNotifications {
    /// Orgs told by this call.
    pub notified: Vec<IncidentNoticeView>,
    /// Orgs told before (left alone).
    pub already_notified: Vec<IncidentNoticeView>,
}

impl Custos {
    /// Tells every affected org not told yet (operators); audited per org.
    pub async fn notify_incident(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<IncidentNotifications, CoreError> {
        self.authorize_global(caller, Operation::IncidentNotify)
            .await?;
        let (row, _, told) = self.incident_row(id).await?;
        let scope: IncidentScope = serde_json::from_str(&row.scope)
            .map_err(|e| CoreError::internal_from(format!("incident {id} scope"), e))?;
        let (affected, _) = self.affected_subjects(&scope).await?;
        let main = self.store.main();
        let mut notified = Vec::new();
        let mut already = Vec::new();
        for org in &affected.orgs {
            if let Some(before) = told.iter().find(|n| n.org_id == org.org) {
                already.push(before.clone().into());
                continue;
            }
            // An org that is gone has nobody left to tell.
            let Some((org_scope, found)) = self.store.org(&org.org).await? else {
                continue;
            };
            if found.terminated_at.is_some() {
                continue;
            }
            let channels = self
                .org_settings_of(&org_scope)
                .await?
                .channels
                .unwrap_or_default()
                .outbox_channels();
            let messages =
                self.incident_messages(&row.id, &row.title, row.detected_at, org, &channels);
            let records: u64 = org
                .subjects
                .iter()
                .flat_map(|s| s.categories.values())
                .sum();
            let notice = IncidentNotice {
                incident_id: row.id.clone(),
                org_id: org.org.clone(),
                subjects: org.subjects.len() as u64,
                records,
                messages: messages.len() as u64,
                notified_at: self.now(),
                actor: caller.actor().name(),
            };
            let event = self
                .event(caller, AuditAction::IncidentNotify)
                .org(org.org.clone())
                .target(Target::Incident(row.id.clone()))
                .details(
                    Details::new()
                        .subjects(notice.subjects)
                        .records(records)
                        .messages(notice.messages),
                );
            if main
                .record_incident_notice(&notice, &messages, &[event])
                .await?
            {
                notified.push(notice.into());
            } else if let Some(before) = main
                .incident_notices(id)
                .await?
                .into_iter()
                .find(|n| n.org_id == org.org)
            {
                // Told meanwhile by another call.
                already.push(before.into());
            }
        }
        Ok(IncidentNotifications {
            notified,
            already_notified: already,
        })
    }

    /// The org's notice to each of its channels, and each subject's notice to each of its
    /// webhooks (e-mail addresses get the org's notice only).
    fn incident_messages(
        &self,
        incident: &str,
        title: &str,
        detected_at: jiff::Timestamp,
        org: &AffectedOrg,
        channels: &[String],
    ) -> Vec<OutboxMessage> {
        let now = self.now();
        let mut categories: BTreeMap<&str, u64> = BTreeMap::new();
        for subject in &org.subjects {
            for (category, n) in &subject.categories {
                *categories.entry(category).or_default() += n;
            }
        }
        let message =
            |event_type: &str, about: &str, channel: &String, body: &[u8]| OutboxMessage {
                id: derived_message_id(&[incident, &org.org, event_type, about, channel]),
                org_id: Some(org.org.clone()),
                channel: channel.clone(),
                event_type: event_type.to_string(),
                body: body.to_vec(),
                created_at: now,
            };
        let body = serde_json::json!({
            "type": INCIDENT_NOTICE,
            "timestamp": now.to_string(),
            "data": {
                "incident": incident,
                "title": title,
                "org": org.org,
                "detected_at": detected_at.to_string(),
                "subjects": org.subjects.len(),
                "categories": categories,
            }
        });
        let body = serde_json::to_vec(&body).expect("JSON values serialize");
        let mut out: Vec<OutboxMessage> = channels
            .iter()
            .map(|channel| message(INCIDENT_NOTICE, "", channel, &body))
            .collect();
        let webhooks: Vec<&String> = channels
            .iter()
            .filter(|c| c.starts_with("org-webhook:"))
            .collect();
        for subject in &org.subjects {
            let body = serde_json::json!({
                "type": INCIDENT_SUBJECT_NOTICE,
                "timestamp": now.to_string(),
                "data": {
                    "incident": incident,
                    "org": org.org,
                    "detected_at": detected_at.to_string(),
                    "subject_ref": subject.subject_ref,
                    "categories": subject.categories,
                }
            });
            let body = serde_json::to_vec(&body).expect("JSON values serialize");
            for channel in &webhooks {
                out.push(message(
                    INCIDENT_SUBJECT_NOTICE,
                    &subject.subject_ref,
                    channel,
                    &body,
                ));
            }
        }
        out
    }
}
