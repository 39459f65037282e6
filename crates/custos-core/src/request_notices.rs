//! Data subject requests tell people what they were promised to be told: the org's channels
//! hear that a request was received, extended (with the reason), completed (with the link to
//! its export or certificate) or rejected, and get a reminder while an open request nears its
//! due time (`channels.remind_before`); where the org sets `channels.email_subjects`, the
//! person is e-mailed at the contact the org keeps for them.
//!
//! Notices are derived from the committed audit log by the alert evaluator (never in the
//! request's transaction) and queued in the durable outbox. Each message's id is derived
//! from the request, the notice and the channel, so queuing it twice (a takeover, the erasure
//! queuing its own completion e-mail) sends it once.
//!
//! Not for: whether a request may be filed or extended (`dsr.rs`), or delivery (`outbox.rs`).

use std::collections::HashSet;

use custos_audit::{Actor, AuditAction, AuditEvent, Details, Outcome, Target};
use custos_store::{OrgScope, OutboxMessage, RequestKind, RequestStatus, SubjectRequest};
use jiff::Timestamp;

use crate::{CoreError, Custos};

/// A request was received.
pub const REQUEST_RECEIVED: &str = "request.received";
/// A request's deadline was extended.
pub const REQUEST_EXTENDED: &str = "request.extended";
/// A request completed (or partially completed: legal holds kept something back).
pub const REQUEST_COMPLETED: &str = "request.completed";
/// A request was rejected.
pub const REQUEST_REJECTED: &str = "request.rejected";
/// An open request nears its due time.
pub const REQUEST_DUE_SOON: &str = "request.due_soon";
/// The outbox channel kind of a data subject's own address: the address follows the colon
/// until the message is delivered or given up, then the store drops it.
pub(crate) const SUBJECT_EMAIL: &str = "subject-email";
/// The longest `remind_before` an org may set: how far ahead reminders are looked for.
const REMIND_HORIZON: jiff::SignedDuration = jiff::SignedDuration::from_hours(30 * 24);
/// Open requests looked at per reminder pass.
const REMIND_BATCH: u32 = 1000;

/// The notice an audit event of a request gives rise to, if any.
fn notice_of(event: &AuditEvent) -> Option<&'static str> {
    if event.outcome != Outcome::Success {
        return None;
    }
    Some(match event.action {
        AuditAction::RequestCreate => REQUEST_RECEIVED,
        AuditAction::RequestExtend => REQUEST_EXTENDED,
        AuditAction::RequestComplete => REQUEST_COMPLETED,
        AuditAction::RequestReject => REQUEST_REJECTED,
        _ => return None,
    })
}

/// The request as the event saw it: the due time it recorded (a later extension moves it).
fn as_of(mut request: SubjectRequest, notice: &str, event: &AuditEvent) -> SubjectRequest {
    if let Some(due) = event.details.due {
        request.due_at = due;
    }
    if notice == REQUEST_RECEIVED {
        request.status = RequestStatus::Received;
    }
    request
}

/// The id of a request's notice to one channel (`msg_` and 32 hex digits, like the others):
/// the same whoever queues it. A subject's address counts as one channel whatever it is.
fn notice_id(org: &str, request: &str, notice: &str, channel: &str) -> String {
    let channel = if channel.starts_with(SUBJECT_EMAIL) {
        SUBJECT_EMAIL
    } else {
        channel
    };
    crate::outbox::derived_message_id(&[org, request, notice, channel])
}

impl Custos {
    /// The notices the request events among `events` (log entries in order) give rise to,
    /// for the evaluator to queue with its step.
    pub(crate) async fn project_request_notices(
        &self,
        events: &[(u64, AuditEvent)],
    ) -> Result<Vec<OutboxMessage>, CoreError> {
        let mut out = Vec::new();
        for (_, event) in events {
            let Some(notice) = notice_of(event) else {
                continue;
            };
            let (Some(org), Some(Target::Request(id))) = (&event.org, &event.target) else {
                continue;
            };
            let Some((scope, found)) = self.store.org(org).await? else {
                continue;
            };
            if found.terminated_at.is_some() || found.terminating_since.is_some() {
                continue;
            }
            let Some(request) = self
                .store
                .for_org(&scope)
                .await?
                .subject_request(&scope, id)
                .await?
            else {
                continue;
            };
            let request = as_of(request, notice, event);
            out.extend(
                self.request_notice(&scope, &request, notice, event.time)
                    .await?,
            );
        }
        Ok(out)
    }

    /// The messages of one notice: to each of the org's channels and, where the org e-mails
    /// subjects and keeps a readable address, to the person.
    async fn request_notice(
        &self,
        scope: &OrgScope,
        request: &SubjectRequest,
        notice: &str,
        at: Timestamp,
    ) -> Result<Vec<OutboxMessage>, CoreError> {
        let settings = self
            .org_settings_of(scope)
            .await?
            .channels
            .unwrap_or_default();
        let mut channels = settings.outbox_channels();
        if settings.email_subjects {
            if let Some(email) = self.subject_email(scope, &request.subject_ref).await? {
                channels.push(format!("{SUBJECT_EMAIL}:{email}"));
            }
        }
        Ok(self.notice_messages(scope, request, notice, at, &channels))
    }

    fn notice_messages(
        &self,
        scope: &OrgScope,
        request: &SubjectRequest,
        notice: &str,
        at: Timestamp,
        channels: &[String],
    ) -> Vec<OutboxMessage> {
        let org = scope.org_id();
        let mut data = serde_json::json!({
            "org": org,
            "request": request.id,
            "request_type": request.kind.as_str(),
            "subject_ref": request.subject_ref,
            "received_at": request.received_at.to_string(),
            "due_at": request.due_at.to_string(),
        });
        if matches!(notice, REQUEST_COMPLETED | REQUEST_REJECTED) {
            data["status"] = request.status.as_str().into();
        }
        match notice {
            REQUEST_EXTENDED => {
                data["reason"] = request.extension_reason.clone().into();
            }
            REQUEST_REJECTED => {
                data["reason"] = request.status_reason.clone().into();
            }
            REQUEST_COMPLETED => {
                data["link"] = self.request_link(org, request).into();
                if let Some(reason) = &request.status_reason {
                    data["reason"] = reason.clone().into();
                }
            }
            _ => {}
        }
        let body = serde_json::json!({"type": notice, "timestamp": at.to_string(), "data": data});
        let body = serde_json::to_vec(&body).expect("JSON values serialize");
        let now = self.now();
        channels
            .iter()
            .map(|channel| OutboxMessage {
                id: notice_id(org, &request.id, notice, channel),
                org_id: Some(org.to_string()),
                channel: channel.clone(),
                event_type: notice.to_string(),
                body: body.clone(),
                created_at: now,
            })
            .collect()
    }

    /// Where a completed request's result is fetched: its certificate (erasure) or its
    /// export (access, portability), under `[service] public_url` when the policy has one.
    fn request_link(&self, org: &str, request: &SubjectRequest) -> String {
        let what = match request.kind {
            RequestKind::Erasure => "certificate",
            _ => "export",
        };
        let base = self.policy.service.public_url.as_deref().unwrap_or("");
        format!("{base}/v1/orgs/{org}/requests/{}/{what}", request.id)
    }

    /// Queues the person's e-mails that their erasure was received and completed, while the
    /// address can still be read: the erasure calls it just before it destroys the subject's
    /// last keys (the address is sealed under them), which for an erasure run at once is
    /// before the evaluator gets to the request's events. The evaluator's own notices find
    /// the same ids queued, so the person is told once.
    pub(crate) async fn queue_erasure_email(
        &self,
        scope: &OrgScope,
        request: &SubjectRequest,
        status: RequestStatus,
    ) -> Result<(), CoreError> {
        let settings = self
            .org_settings_of(scope)
            .await?
            .channels
            .unwrap_or_default();
        if !settings.email_subjects {
            return Ok(());
        }
        let Some(email) = self.subject_email(scope, &request.subject_ref).await? else {
            return Ok(());
        };
        let to = [format!("{SUBJECT_EMAIL}:{email}")];
        let mut received = request.clone();
        received.status = RequestStatus::Received;
        let mut messages =
            self.notice_messages(scope, &received, REQUEST_RECEIVED, request.received_at, &to);
        let mut done = request.clone();
        done.status = status;
        messages.extend(self.notice_messages(scope, &done, REQUEST_COMPLETED, self.now(), &to));
        self.store.main().enqueue(&messages, &[]).await?;
        Ok(())
    }

    /// Queues the reminders of open requests that come due within their org's
    /// `remind_before`, once each (`reminded` spares this process the store round trip for
    /// requests it already reminded of).
    pub(crate) async fn check_request_reminders(
        &self,
        reminded: &mut HashSet<String>,
    ) -> Result<(), CoreError> {
        let now = self.now();
        let open = self
            .store
            .requests_by_status(
                &[RequestStatus::Received, RequestStatus::InProgress],
                // Not yet due: an overdue request is the SLA report's, and a backlog of them
                // must not crowd out the reminders of the ones still on time.
                Some(now),
                now + REMIND_HORIZON,
                REMIND_BATCH,
            )
            .await?;
        for (scope, request) in open {
            if reminded.contains(&request.id) {
                continue;
            }
            let channels = self
                .org_settings_of(&scope)
                .await?
                .channels
                .unwrap_or_default();
            if channels.remind_before()?.add_to(now) < request.due_at {
                continue;
            }
            let messages = self.notice_messages(
                &scope,
                &request,
                REQUEST_DUE_SOON,
                now,
                &channels.outbox_channels(),
            );
            if !messages.is_empty() {
                let event = AuditEvent::new(now, Actor::System, AuditAction::RequestRemind)
                    .org(scope.org_id())
                    .target(Target::Request(request.id.clone()))
                    .details(
                        Details::new()
                            .due(request.due_at)
                            .messages(messages.len() as u64),
                    );
                self.store.main().enqueue(&messages, &[event]).await?;
            }
            reminded.insert(request.id);
        }
        Ok(())
    }
}

/// A notice as a letter to the person it is about, in plain words (the fields a notice
/// carries, no more); `None` for notices people are not sent.
pub(crate) fn letter(notice: &str, data: &serde_json::Value) -> Option<String> {
    let text = |key: &str| data[key].as_str().unwrap_or("-").to_string();
    let day = |key: &str| {
        data[key]
            .as_str()
            .and_then(|t| t.parse::<Timestamp>().ok())
            .map_or_else(|| "-".to_string(), |t| t.strftime("%d %B %Y").to_string())
    };
    let what = match data["request_type"].as_str() {
        Some("erasure") => "to erase your personal data",
        Some("portability") => "for a copy of your personal data to take elsewhere",
        _ => "to see the personal data held about you",
    };
    let mut lines = match notice {
        REQUEST_RECEIVED => vec![
            format!("We received your request {what} on {}.", day("received_at")),
            format!("We will answer by {}.", day("due_at")),
        ],
        REQUEST_EXTENDED => vec![
            format!(
                "We need more time to answer your request {what}, received on {}.",
                day("received_at")
            ),
            format!(
                "We will answer by {}. Why: {}",
                day("due_at"),
                text("reason")
            ),
        ],
        REQUEST_COMPLETED => {
            let mut lines = vec![format!("Your request {what} is complete.")];
            if data["status"] == "partially_completed" {
                lines.push(format!(
                    "Some data had to be kept for now: {}",
                    text("reason")
                ));
            }
            lines.push(match data["request_type"].as_str() {
                Some("erasure") => format!(
                    "Its certificate of deletion is available from us at {}",
                    text("link")
                ),
                _ => format!("Your data is available from us at {}", text("link")),
            });
            lines
        }
        REQUEST_REJECTED => vec![
            format!("We could not carry out your request {what}."),
            format!("Why: {}", text("reason")),
        ],
        _ => return None,
    };
    lines.push(String::new());
    lines.push(format!("Reference: {}", text("request")));
    Some(lines.join("\n") + "\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letters_say_what_happened_in_plain_words() {
        let data = serde_json::json!({
            "request": "r-1",
            "request_type": "erasure",
            "received_at": "2026-12-07T10:00:00Z",
            "due_at": "2027-01-06T10:00:00Z",
            "status": "completed",
            "link": "https://custos.example/v1/orgs/o/requests/r-1/certificate",
        });
        let received = letter(REQUEST_RECEIVED, &data).unwrap();
        assert!(received.contains("to erase your personal data on 07 December 2026"));
        assert!(received.contains("answer by 06 January 2027"));
        let done = letter(REQUEST_COMPLETED, &data).unwrap();
        assert!(done.contains("certificate of deletion is available from us at https://"));
        assert!(done.ends_with("Reference: r-1\n"), "{done}");
        assert_eq!(letter(REQUEST_DUE_SOON, &data), None);
    }

    #[test]
    fn notice_ids_are_stable_and_name_a_subject_address_as_one_channel() {
        let a = notice_id("o", "r", REQUEST_COMPLETED, "subject-email:a@x.example");
        let b = notice_id("o", "r", REQUEST_COMPLETED, "subject-email:b@x.example");
        assert_eq!(a, b);
        assert!(a.starts_with("msg_") && a.len() == 36, "{a}");
        assert_ne!(
            a,
            notice_id("o", "r", REQUEST_RECEIVED, "subject-email:a@x.example")
        );
        assert_ne!(
            a,
            notice_id("o", "r2", REQUEST_COMPLETED, "subject-email:a@x.example")
        );
        assert_ne!(
            notice_id("o", "r", REQUEST_COMPLETED, "email:a@x.example"),
            notice_id("o", "r", REQUEST_COMPLETED, "email:b@x.example")
        );
        // Parts are length-prefixed: moving a boundary changes the id.
        assert_ne!(
            notice_id("ab", "c", "n", "x"),
            notice_id("a", "bc", "n", "x")
        );
    }
}
