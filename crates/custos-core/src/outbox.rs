//! Delivery from the durable outbox: every instance claims due messages (one instance per
//! message at a time), sends each to its channel, and records the outcome. A failed attempt
//! is tried again with exponential backoff (1 s, 2 s, 4 s, … at most an hour apart) until
//! [`RETRY_PERIOD`] after the message was queued; then it is marked failed and audited
//! (`notification.fail`). A restart, or another instance, continues where this one stopped:
//! the message keeps its id (`webhook-id`), so a receiver that got it twice drops the repeat.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use custos_audit::{AuditAction, AuditEvent, Details, Outcome};
use custos_notify::email::{Email, SmtpConfig, SmtpSender};
use custos_notify::webhook::WebhookSecrets;
use custos_notify::DeliveryError;
use custos_policy::Policy;
use custos_store::OutboxEntry;
use jiff::SignedDuration;

use crate::outbound::{Outbound, OutboundUrl, Rules};
use crate::{CoreError, Custos};

/// How long a message is retried before it is given up.
pub const RETRY_PERIOD: SignedDuration = SignedDuration::from_hours(24);
/// How long a delivered or given-up message stays listed (`GET /v1/notifications`) before
/// the sweep deletes it.
pub const KEPT_AFTER_FINISHING: SignedDuration = SignedDuration::from_hours(30 * 24);
/// The longest wait between two attempts.
const MAX_BACKOFF: SignedDuration = SignedDuration::from_hours(1);
/// How long a claim keeps other instances off a message (longer than any one attempt).
const CLAIM: SignedDuration = SignedDuration::from_secs(60);
/// Messages claimed at once.
const CLAIM_BATCH: u32 = 16;
/// How often the outbox is checked while it is empty.
const POLL: Duration = Duration::from_millis(250);

/// The deployment's channels as `serve` opened them: the policy's webhooks with their
/// secrets, and the mail server.
pub struct Channels {
    webhooks: BTreeMap<String, (String, WebhookSecrets)>,
    smtp: Option<SmtpSender>,
    http: reqwest::Client,
    /// For orgs' webhooks: URLs given at run time, under the outbound rules.
    outbound: Outbound,
    rules: Rules,
}

impl std::fmt::Debug for Channels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channels")
            .field("webhooks", &self.webhooks.keys().collect::<Vec<_>>())
            .field("smtp", &self.smtp.is_some())
            .finish()
    }
}

impl Channels {
    /// Opens the policy's channels, reading each secret from the variable the policy names
    /// (`env` looks one up). An error names the channel and the variable, never a value.
    pub fn from_policy(
        policy: &Policy,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Channels, String> {
        let n = &policy.notifications;
        let mut webhooks = BTreeMap::new();
        for (name, hook) in &n.webhooks {
            let text = env(&hook.secret_env).ok_or_else(|| {
                format!(
                    "[webhooks.{name}] secret_env: the variable {} is not set",
                    hook.secret_env
                )
            })?;
            let secrets = WebhookSecrets::parse(&text).map_err(|e| {
                format!(
                    "[webhooks.{name}] secret_env: the value of {} is not usable: {e}",
                    hook.secret_env
                )
            })?;
            webhooks.insert(name.clone(), (hook.url.clone(), secrets));
        }
        let smtp = match &n.smtp {
            None => None,
            Some(s) => {
                let read = |var: &Option<String>| -> Result<Option<String>, String> {
                    var.as_ref()
                        .map(|v| {
                            env(v).ok_or_else(|| format!("[smtp]: the variable {v} is not set"))
                        })
                        .transpose()
                };
                let credentials = match (read(&s.username_env)?, read(&s.password_env)?) {
                    (Some(user), Some(password)) => Some((user, password)),
                    _ => None,
                };
                let extra_roots = match &policy.network.ca_file {
                    Some(path) => Some(std::fs::read(path).map_err(|e| {
                        format!("[network] ca_file {}: cannot read: {e}", path.display())
                    })?),
                    None => None,
                };
                let config = SmtpConfig {
                    host: s.host.clone(),
                    port: s.port,
                    from: s.from.clone(),
                    credentials,
                    starttls: s.starttls,
                    extra_roots,
                };
                Some(SmtpSender::new(&config).map_err(|e| e.to_string())?)
            }
        };
        // Policy URLs are taken as written (the operator wrote them); redirects are not
        // followed, so a body never goes anywhere the policy does not name.
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(custos_notify::webhook::ATTEMPT_TIMEOUT)
            .build()
            .map_err(|e| format!("webhook client: {e}"))?;
        let outbound = Outbound::new(
            &policy.network,
            custos_notify::webhook::ATTEMPT_TIMEOUT,
            Duration::from_secs(5),
        )?;
        Ok(Channels {
            webhooks,
            smtp,
            http,
            outbound,
            rules: Rules::new(&policy.network),
        })
    }
}

/// One queued notification and where its delivery stands, as operators see it: the channel
/// by kind (a policy webhook by name), never an org's URL or an address.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct NotificationView {
    /// Its id (the `webhook-id` of every attempt).
    pub id: String,
    /// The org it concerns, if any.
    pub org: Option<String>,
    /// `webhook:<name>` (a policy webhook), `org-webhook` or `email`.
    pub channel: String,
    /// The event type (`alert.fired`, `security.notice`, `incident.clock`).
    pub event_type: String,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    /// Attempts made.
    pub attempts: u32,
    /// When it was queued.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: jiff::Timestamp,
    /// When the next attempt is due (pending ones).
    #[schema(value_type = String, format = DateTime)]
    pub next_attempt_at: jiff::Timestamp,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// When it was delivered or given up.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub finished_at: Option<jiff::Timestamp>,
}

/// A page of notifications, newest first.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct NotificationPage {
    /// Notifications.
    pub items: Vec<NotificationView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

impl Custos {
    /// The outbox's notifications, newest first, optionally of one org (operators): what was
    /// delivered, what is still retried, what was given up.
    pub async fn notifications(
        &self,
        caller: &crate::Caller,
        org: Option<&str>,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<NotificationPage, CoreError> {
        self.authorize_global(caller, crate::authz::Operation::NotificationList)
            .await?;
        let rows = self.store.main().outbox_entries(org, cursor, limit).await?;
        let next_cursor = (rows.len() == limit as usize)
            .then(|| rows.last().map(|r| r.message.id.clone()))
            .flatten();
        let items = rows
            .into_iter()
            .map(|e| {
                let m = e.message;
                NotificationView {
                    channel: match m.channel.split_once(':') {
                        Some(("webhook", _)) => m.channel.clone(),
                        _ => channel_kind(&m.channel).to_string(),
                    },
                    id: m.id,
                    org: m.org_id,
                    event_type: m.event_type,
                    status: e.status.as_str().to_string(),
                    attempts: e.attempts,
                    created_at: m.created_at,
                    next_attempt_at: e.next_attempt_at,
                    last_error: e.last_error,
                    finished_at: e.finished_at,
                }
            })
            .collect();
        let event = self.event(caller, AuditAction::NotificationList);
        self.store.append_audit(&[event]).await?;
        Ok(NotificationPage { items, next_cursor })
    }

    /// Deletes the messages finished more than [`KEPT_AFTER_FINISHING`] ago (the sweep);
    /// audited when it deletes any.
    pub(crate) async fn purge_notifications(&self) -> Result<u64, CoreError> {
        let before = self.now() - KEPT_AFTER_FINISHING;
        let event = AuditEvent::new(
            self.now(),
            custos_audit::Actor::System,
            AuditAction::NotificationPurge,
        )
        .details(Details::new().due(before));
        Ok(self.store.main().purge_outbox(before, &[event]).await?)
    }

    /// Delivers from the outbox for as long as the process runs (`serve`).
    pub async fn run_outbox(self: Arc<Self>) {
        if self.channels.is_none() {
            return;
        }
        loop {
            match self.deliver_due().await {
                Ok(n) if n > 0 => continue,
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "outbox delivery failed; retrying"),
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Claims the messages due now and makes one attempt at each; returns how many it tried.
    pub async fn deliver_due(&self) -> Result<usize, CoreError> {
        let Some(channels) = &self.channels else {
            return Ok(0);
        };
        let now = self.now();
        let claimed = self
            .store
            .main()
            .claim_messages(now, now + CLAIM, CLAIM_BATCH)
            .await?;
        let attempts = claimed.iter().map(|entry| async move {
            let result = self.attempt(channels, entry).await;
            self.record_attempt(entry, result).await
        });
        for outcome in futures::future::join_all(attempts).await {
            outcome?;
        }
        Ok(claimed.len())
    }

    async fn record_attempt(
        &self,
        entry: &OutboxEntry,
        result: Result<(), DeliveryError>,
    ) -> Result<(), CoreError> {
        let main = self.store.main();
        let m = &entry.message;
        let now = self.now();
        let Err(error) = result else {
            main.mark_delivered(&m.id, now).await?;
            return Ok(());
        };
        let error = error.to_string();
        if now.duration_since(m.created_at) >= RETRY_PERIOD {
            tracing::error!(
                id = %m.id,
                channel = channel_kind(&m.channel),
                attempts = entry.attempts,
                error = %error,
                "notification given up after its retry period"
            );
            let mut event = AuditEvent::new(
                now,
                custos_audit::Actor::System,
                AuditAction::NotificationFail,
            )
            .outcome(Outcome::Failed)
            .details(
                Details::new()
                    .message(m.id.clone())
                    .event_type(m.event_type.clone()),
            );
            event.org = m.org_id.clone();
            main.mark_failed(&m.id, now, &error, &[event]).await?;
        } else {
            let next = now + backoff(entry.attempts);
            tracing::warn!(
                id = %m.id,
                channel = channel_kind(&m.channel),
                attempts = entry.attempts,
                error = %error,
                "notification attempt failed; will retry"
            );
            main.retry_later(&m.id, next, &error).await?;
        }
        Ok(())
    }
}

impl Custos {
    /// One attempt at one message.
    async fn attempt(&self, channels: &Channels, entry: &OutboxEntry) -> Result<(), DeliveryError> {
        let m = &entry.message;
        let timestamp = jiff::Timestamp::now().as_second();
        match m.channel.split_once(':') {
            Some(("webhook", name)) => {
                let (url, secrets) = channels.webhooks.get(name).ok_or_else(|| {
                    DeliveryError::Misconfigured(format!("the policy has no [webhooks.{name}]"))
                })?;
                custos_notify::webhook::send(
                    &channels.http,
                    url,
                    secrets,
                    &m.id,
                    timestamp,
                    &m.body,
                )
                .await
            }
            Some(("org-webhook", url)) => {
                let org = m.org_id.as_deref().ok_or_else(|| {
                    DeliveryError::Misconfigured("an org webhook message names no org".into())
                })?;
                let secrets = self
                    .org_webhook_secrets(org, url)
                    .await
                    .map_err(|e| DeliveryError::Unreachable(e.to_string()))?
                    .ok_or_else(|| {
                        DeliveryError::Misconfigured(
                            "the org no longer has this webhook in its channels".into(),
                        )
                    })?;
                let target = OutboundUrl::parse(url, &channels.rules)
                    .map_err(|e| DeliveryError::Misconfigured(e.to_string()))?;
                let client = channels.outbound.client_for(&target);
                custos_notify::webhook::send(
                    client,
                    target.as_url().as_str(),
                    &secrets,
                    &m.id,
                    timestamp,
                    &m.body,
                )
                .await
            }
            Some(("email", address)) | Some((crate::request_notices::SUBJECT_EMAIL, address)) => {
                let smtp = channels.smtp.as_ref().ok_or_else(|| {
                    DeliveryError::Misconfigured("the policy has no [smtp]".into())
                })?;
                smtp.send(&email_of(address, m)).await
            }
            _ => Err(DeliveryError::Misconfigured(format!(
                "unknown channel kind {:?}",
                channel_kind(&m.channel)
            ))),
        }
    }
}

/// A message id derived from what the message is about (`msg_` and 32 hex digits, like
/// [`crate::alerting::message_id`]'s): whoever queues the same message queues the same id, so
/// the outbox keeps it once.
pub(crate) fn derived_message_id(parts: &[&str]) -> String {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    for part in parts {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part.as_bytes());
    }
    format!("msg_{}", hex::encode(&hash.finalize()[..16]))
}

/// The wait after the `attempts`-th failed attempt: 1 s, doubling, at most an hour.
pub(crate) fn backoff(attempts: u32) -> SignedDuration {
    let exponent = attempts.saturating_sub(1).min(12);
    SignedDuration::from_secs(1i64 << exponent).min(MAX_BACKOFF)
}

/// The channel's kind for logs (`webhook`, `email`, `subject-email`), never its address.
fn channel_kind(channel: &str) -> &str {
    channel.split_once(':').map_or(channel, |(kind, _)| kind)
}

/// A message as an e-mail: a subject naming what happened, and the body's fields as lines
/// (to a data subject, a letter in plain words instead).
fn email_of(to: &str, m: &custos_store::OutboxMessage) -> Email {
    let body: serde_json::Value = serde_json::from_slice(&m.body).unwrap_or_default();
    let data = &body["data"];
    let text = |key: &str| data[key].as_str().unwrap_or("-").to_string();
    let subject = match m.event_type.as_str() {
        crate::alerting::ALERT_FIRED => {
            format!("[Custos] {} alert: {}", text("severity"), text("rule"))
        }
        crate::security_events::SECURITY_NOTICE => {
            format!("[Custos] security notice: {}", text("kind"))
        }
        crate::request_notices::REQUEST_RECEIVED => "Your data request was received".into(),
        crate::request_notices::REQUEST_EXTENDED => "Your data request needs more time".into(),
        crate::request_notices::REQUEST_COMPLETED => "Your data request is complete".into(),
        crate::request_notices::REQUEST_REJECTED => "Your data request was declined".into(),
        crate::request_notices::REQUEST_DUE_SOON => {
            format!("[Custos] a data request is due {}", text("due_at"))
        }
        other => format!("[Custos] {other}"),
    };
    let to_person = m.channel.starts_with(crate::request_notices::SUBJECT_EMAIL);
    let body = match to_person {
        true => crate::request_notices::letter(&m.event_type, data),
        false => None,
    }
    .unwrap_or_else(|| {
        let mut lines = vec![format!("Event: {}", m.event_type)];
        if let Some(fields) = data.as_object() {
            for (key, value) in fields {
                let shown = match value {
                    serde_json::Value::String(s) => s.clone(),
                    serde_json::Value::Null => "-".into(),
                    other => other.to_string(),
                };
                lines.push(format!("{key}: {shown}"));
            }
        }
        lines.join("\n") + "\n"
    });
    Email {
        to: to.to_string(),
        subject,
        body: format!("{body}\nMessage id: {}\n", m.id),
        id: m.id.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_a_second_up_to_an_hour() {
        let secs: Vec<i64> = [1, 2, 3, 4, 12, 13, 40]
            .into_iter()
            .map(|n| backoff(n).as_secs())
            .collect();
        assert_eq!(secs, [1, 2, 4, 8, 2048, 3600, 3600]);
    }

    #[test]
    fn secrets_come_from_the_named_variables_and_errors_name_them() {
        let policy = Policy::parse(
            "[categories.m]\nretention = \"1d\"\n[webhooks.ops]\nurl = \"https://h.example\"\n\
             secret_env = \"OPS_SECRET\"\n",
            "t.toml",
        )
        .unwrap();
        let err = Channels::from_policy(&policy, |_| None).unwrap_err();
        assert_eq!(
            err,
            "[webhooks.ops] secret_env: the variable OPS_SECRET is not set"
        );
        let err = Channels::from_policy(&policy, |_| Some("hunter2".into())).unwrap_err();
        assert!(err.contains("not usable"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
        let ok = Channels::from_policy(&policy, |v| {
            (v == "OPS_SECRET").then(|| "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into())
        })
        .unwrap();
        assert!(format!("{ok:?}").contains("ops"));
    }
}
