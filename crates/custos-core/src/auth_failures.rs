//! Failed authentications (unknown or revoked API keys, expired or unknown sessions): each is
//! audited, counted and charged to its source, and none costs a transaction of its own.
//!
//! A flood of bad keys must not become a flood of fsyncs: events wait in a bounded buffer and
//! are appended together, when the buffer holds [`FLUSH_AT`] events or its oldest is
//! [`FLUSH_AFTER`] old (by the failing request that finds it so, or by the server's
//! flusher), so the valid callers' commits keep the database.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use custos_audit::{Actor, AuditAction, AuditEvent, Outcome};

use custos_audit::Details;

use crate::{Caller, CoreError, Custos, Principal, RequestContext};

/// Buffered events that make an append by themselves.
pub const FLUSH_AT: usize = 256;
/// The longest a failure waits for its audit event to be appended (the flusher's period).
pub const FLUSH_AFTER: Duration = Duration::from_secs(1);
/// Events kept while appends fail; past it, failures are only counted (as unaudited).
const MAX_BUFFERED: usize = 50_000;

/// Why a presented credential was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// An API key (`cus_…`) no member has (never issued, rotated or revoked).
    UnknownKey,
    /// A session token that is unknown or expired.
    UnknownSession,
    /// Something that is neither an API key, a session nor the admin token.
    Malformed,
}

impl AuthFailure {
    /// The reason recorded in the audit event and the metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthFailure::UnknownKey => "unknown_key",
            AuthFailure::UnknownSession => "unknown_session",
            AuthFailure::Malformed => "malformed",
        }
    }

    const ALL: [AuthFailure; 3] = [
        AuthFailure::UnknownKey,
        AuthFailure::UnknownSession,
        AuthFailure::Malformed,
    ];
}

/// Counters and the audit buffer of failed authentications.
#[derive(Debug, Default)]
pub struct AuthFailures {
    by_reason: [AtomicU64; 3],
    rate_limited: AtomicU64,
    unaudited: AtomicU64,
    buffer: Mutex<(Vec<AuditEvent>, Option<Instant>)>,
}

impl AuthFailures {
    /// Prometheus text for the counters.
    pub fn render(&self, out: &mut String) {
        out.push_str(
            "# HELP custos_auth_failures_total Presented credentials refused, by reason.\n\
             # TYPE custos_auth_failures_total counter\n",
        );
        for reason in AuthFailure::ALL {
            out.push_str(&format!(
                "custos_auth_failures_total{{reason=\"{}\"}} {}\n",
                reason.as_str(),
                self.by_reason[reason as usize].load(Ordering::Relaxed)
            ));
        }
        out.push_str(&format!(
            "# HELP custos_auth_rate_limited_total Requests refused because their source failed \
             too often.\n# TYPE custos_auth_rate_limited_total counter\n\
             custos_auth_rate_limited_total {}\n\
             # HELP custos_auth_failures_unaudited_total Failures not audited because appends \
             kept failing.\n# TYPE custos_auth_failures_unaudited_total counter\n\
             custos_auth_failures_unaudited_total {}\n",
            self.rate_limited.load(Ordering::Relaxed),
            self.unaudited.load(Ordering::Relaxed)
        ));
    }

    /// Buffers `event`; the events to append now, if the buffer is due.
    fn push(&self, event: AuditEvent) -> Option<Vec<AuditEvent>> {
        let mut buffer = self.buffer.lock().unwrap_or_else(|e| e.into_inner());
        if buffer.0.len() >= MAX_BUFFERED {
            self.unaudited.fetch_add(1, Ordering::Relaxed);
        } else {
            buffer.0.push(event);
            buffer.1.get_or_insert_with(Instant::now);
        }
        let due =
            buffer.0.len() >= FLUSH_AT || buffer.1.is_some_and(|t| t.elapsed() >= FLUSH_AFTER);
        due.then(|| take(&mut buffer))
    }

    fn take_all(&self) -> Vec<AuditEvent> {
        take(&mut self.buffer.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Puts events whose append failed back in front, as far as the bound allows.
    fn put_back(&self, mut events: Vec<AuditEvent>) {
        let mut buffer = self.buffer.lock().unwrap_or_else(|e| e.into_inner());
        let room = MAX_BUFFERED.saturating_sub(buffer.0.len());
        if events.len() > room {
            let lost = events.len() - room;
            self.unaudited.fetch_add(lost as u64, Ordering::Relaxed);
            events.truncate(room);
        }
        events.append(&mut buffer.0);
        buffer.0 = events;
        buffer.1.get_or_insert_with(Instant::now);
    }
}

fn take(buffer: &mut (Vec<AuditEvent>, Option<Instant>)) -> Vec<AuditEvent> {
    buffer.1 = None;
    std::mem::take(&mut buffer.0)
}

/// The public part of an API key that may be recorded: the 8 characters after `cus_`.
fn key_prefix(token: &str) -> Option<&str> {
    let rest = token.strip_prefix("cus_")?;
    rest.get(..8).filter(|p| {
        p.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

impl Custos {
    /// [`Custos::authenticate`] for a request from `context`. A refused credential is audited
    /// (batched, with an API key's public prefix, never the secret), counted and charged to
    /// the source; once the source used up its failures it gets `rate_limited` for further
    /// refused credentials, counted but not audited one by one (the event that limited it is).
    /// Valid credentials pass whatever their source did: callers behind one address with an
    /// attacker are not locked out, and a refusal costs one indexed read, never a commit.
    pub async fn authenticate_from(
        &self,
        token: &str,
        context: &RequestContext,
    ) -> Result<Principal, CoreError> {
        let now = self.now();
        let caller = Caller::in_context(Principal::System, context);
        let error = match self.authenticate_in(token, context).await {
            Err(CoreError::Unauthenticated) => CoreError::Unauthenticated,
            other => return other,
        };
        if let Err(limited) = self.check_source(&caller, now) {
            self.auth_failures
                .rate_limited
                .fetch_add(1, Ordering::Relaxed);
            return Err(limited);
        }
        let reason = if token.starts_with(crate::members::SESSION_PREFIX)
            || token.starts_with(crate::sign_in::OPERATOR_SESSION_PREFIX)
            || token.starts_with(crate::PERSONAL_TOKEN_PREFIX)
        {
            AuthFailure::UnknownSession
        } else if token.starts_with("cus_") {
            AuthFailure::UnknownKey
        } else {
            AuthFailure::Malformed
        };
        self.auth_failures.by_reason[reason as usize].fetch_add(1, Ordering::Relaxed);
        if let Some(source) = &context.source {
            self.source_failures.fail(source, now);
        }
        let mut details = Details::new();
        details.key_prefix = key_prefix(token).map(str::to_string);
        if self.check_source(&caller, now).is_err() {
            // This failure used up the source's allowance: say so once, in its event.
            details = details.source_limited(true);
        }
        let event = AuditEvent::new(now, Actor::Anonymous, AuditAction::AuthReject)
            .request(caller.request_id, caller.source)
            .client_request(caller.client_request_id)
            .outcome(Outcome::Denied)
            .reason(reason.as_str())
            .details(details);
        if let Some(due) = self.auth_failures.push(event) {
            self.append_auth_failures(due).await;
        }
        Err(error)
    }

    /// Buffers the audit event of another refused attempt by an unauthenticated caller (a
    /// browser not signed in), appended with the refused credentials' events.
    pub(crate) async fn audit_refusal(&self, event: AuditEvent) {
        if let Some(due) = self.auth_failures.push(event) {
            self.append_auth_failures(due).await;
        }
    }

    /// Appends every buffered failed-authentication event (the server calls this every
    /// [`FLUSH_AFTER`], and before it stops).
    pub async fn flush_auth_failures(&self) {
        let events = self.auth_failures.take_all();
        if !events.is_empty() {
            self.append_auth_failures(events).await;
        }
    }

    /// Prometheus text of the failed-authentication counters.
    pub fn render_auth_metrics(&self, out: &mut String) {
        self.auth_failures.render(out);
    }

    async fn append_auth_failures(&self, events: Vec<AuditEvent>) {
        if let Err(e) = self.store.append_audit(&events).await {
            // Kept for the next flush: the refusal itself already happened.
            tracing::error!(error = %e, events = events.len(), "could not audit failed authentications");
            self.auth_failures.put_back(events);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_public_prefix_of_a_key_is_kept() {
        assert_eq!(key_prefix("cus_AbCd1234secretsecret"), Some("AbCd1234"));
        assert_eq!(key_prefix("cus_short"), None);
        assert_eq!(key_prefix("cuss_AbCd1234secret"), None);
        assert_eq!(key_prefix("Bearer-ish token"), None);
    }

    #[test]
    fn the_buffer_flushes_by_size_and_stays_bounded() {
        let failures = AuthFailures::default();
        let event = || {
            AuditEvent::new(
                jiff::Timestamp::now(),
                Actor::Anonymous,
                AuditAction::AuthReject,
            )
        };
        for _ in 0..FLUSH_AT - 1 {
            assert!(failures.push(event()).is_none());
        }
        assert_eq!(failures.push(event()).map(|e| e.len()), Some(FLUSH_AT));
        failures.put_back(vec![event(); MAX_BUFFERED + 5]);
        assert_eq!(failures.unaudited.load(Ordering::Relaxed), 5);
        assert_eq!(failures.take_all().len(), MAX_BUFFERED);
    }
}
