//! TOTP second factors: enrollment (with the key alone, or a one-time code an owner or admin
//! issues), lockout after wrong codes, and the sessions a code opens.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use custos_audit::{AuditAction, Details, Target};
use custos_store::{EnrollmentCode, Session};

use crate::authz::Operation;
use crate::limits::{factor_gate, FactorGate, LOCKED_RETRY_AFTER, LOCK_AFTER};
use crate::members::{random_token, SESSION_PREFIX};
use crate::{token_hash, Authentication, Caller, CoreError, Custos, Principal};

/// TOTP parameters every authenticator app accepts (RFC 6238 defaults).
const TOTP_DIGITS: u8 = 6;
const TOTP_STEP: u64 = 30;
/// Codes of the previous and next step are accepted too (clock drift).
const TOTP_SKEW: u16 = 1;
/// Key purpose of the org key that seals TOTP secrets.
const TOTP_SEAL_PURPOSE: &str = "custos/totp-secret/v1";
/// How long an enrollment code works.
const ENROLLMENT_CODE_VALID: jiff::SignedDuration = jiff::SignedDuration::from_secs(15 * 60);
/// Enrollment codes start with this, so a code pasted as a bearer token is recognizable.
const ENROLLMENT_PREFIX: &str = "cue_";

/// A TOTP enrollment: the shared secret, shown this once.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TotpEnrollment {
    /// `otpauth://totp/...` URI for an authenticator app (contains the secret).
    pub otpauth_uri: String,
    /// The secret in base32, for manual entry.
    pub secret: String,
}

/// Request to enroll the calling member's TOTP factor.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TotpEnrollmentRequest {
    /// The one-time code an owner or admin issued the member: needed by a member that must
    /// use a second factor (see the README), or to replace an enrolled factor without one.
    #[serde(default)]
    pub enrollment_code: Option<String>,
}

/// A one-time code that lets one member enroll its TOTP factor (shown this once).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EnrollmentCodeView {
    /// The code; the member sends it as `enrollment_code` to `.../members/me/totp`.
    pub code: String,
    /// When it stops working (15 minutes after issue).
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: jiff::Timestamp,
}

/// Request to open a session.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSession {
    /// The current code of the member's authenticator app.
    pub totp: String,
}

/// A session: a bearer token that proves a second factor until it expires.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SessionView {
    /// The session token (use as `Authorization: Bearer`); shown once.
    pub token: String,
    /// When it stops working (the org's `session_timeout` after opening).
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: jiff::Timestamp,
}

impl Custos {
    /// Enrolls the calling member's TOTP factor (replacing any earlier one and ending its
    /// sessions) and returns the secret once. A member that must use a second factor, or
    /// already has one, needs a second factor or a one-time enrollment code (see
    /// [`crate::authz::MfaRule::Enrollment`]); the code is used up by the enrollment.
    pub async fn enroll_totp(
        &self,
        caller: &Caller,
        org: &str,
        req: TotpEnrollmentRequest,
    ) -> Result<TotpEnrollment, CoreError> {
        let code = req.enrollment_code.as_deref().map(str::trim);
        let grant = self
            .authorize_with(caller, Operation::TotpEnroll, org, code)
            .await?;
        let Principal::Member { member, .. } = &caller.principal else {
            unreachable!("the table opens TOTP enrollment to members only");
        };
        // Used up only when it was what let the member in (a valid one, checked above).
        let used_code = code
            .filter(|_| grant.facts_enrollment_code())
            .map(crate::token_hash);
        let secret = custos_crypto::SecretKey::generate();
        // Wiped when dropped; the `Totp` value wipes its own copy (the crate's `zeroize`).
        let raw = zeroize::Zeroizing::new(secret.with_bytes(|b| b[..20].to_vec()));
        let totp = totp(&member.id, raw.to_vec())?;
        let sealed = self
            .vault
            .org_purpose_key(org, TOTP_SEAL_PURPOSE)
            .await?
            .seal(&totp_aad(org, &member.id), &raw);
        let event = self
            .event(caller, custos_audit::AuditAction::MemberTotpEnroll)
            .org(org)
            .target(Target::Member(member.id.to_string()))
            .details(Details::new().method(if used_code.is_some() {
                "enrollment_code"
            } else {
                "api_key"
            }));
        if !self
            .store
            .for_org(&grant.scope)
            .await?
            .set_totp(
                &grant.scope,
                &member.id,
                &sealed,
                used_code.as_ref(),
                &[event],
            )
            .await?
        {
            return Err(CoreError::NotFound(format!("member {}", member.id)));
        }
        Ok(TotpEnrollment {
            otpauth_uri: totp
                .to_url()
                .map_err(|e| CoreError::internal_from("TOTP URI", e))?,
            secret: totp_rs::Secret::from(raw.to_vec()).to_base32(),
        })
    }

    /// Issues member `id` a one-time code to enroll its TOTP factor with, valid 15 minutes
    /// (replacing an earlier one). Only for a member the caller may manage.
    pub async fn issue_enrollment_code(
        &self,
        caller: &Caller,
        org: &str,
        id: &str,
    ) -> Result<EnrollmentCodeView, CoreError> {
        let grant = self
            .authorize(caller, Operation::TotpEnrollmentCode, org)
            .await?;
        self.managed_member(
            caller,
            &grant.scope,
            id,
            AuditAction::MemberTotpEnrollmentCode,
        )
        .await?;
        let code = random_token(ENROLLMENT_PREFIX);
        let issued = EnrollmentCode {
            code_hash: token_hash(&code),
            expires_at: self
                .now()
                .checked_add(ENROLLMENT_CODE_VALID)
                .map_err(|e| CoreError::internal_from("enrollment code expiry", e))?,
        };
        let event = self
            .event(caller, AuditAction::MemberTotpEnrollmentCode)
            .org(org)
            .target(Target::Member(id.to_string()))
            .details(Details::new().expires(issued.expires_at));
        if !self
            .store
            .for_org(&grant.scope)
            .await?
            .set_enrollment_code(&grant.scope, id, &issued, &[event])
            .await?
        {
            return Err(CoreError::NotFound(format!("member {id}")));
        }
        Ok(EnrollmentCodeView {
            code,
            expires_at: issued.expires_at,
        })
    }

    /// Ends member `id`'s lockout after too many wrong TOTP codes (its count starts again).
    pub async fn clear_totp_lockout(
        &self,
        caller: &Caller,
        org: &str,
        id: &str,
    ) -> Result<(), CoreError> {
        let grant = self.authorize(caller, Operation::TotpUnlock, org).await?;
        self.managed_member(caller, &grant.scope, id, AuditAction::MemberTotpUnlock)
            .await?;
        let event = self
            .event(caller, AuditAction::MemberTotpUnlock)
            .org(org)
            .target(Target::Member(id.to_string()));
        if !self
            .store
            .for_org(&grant.scope)
            .await?
            .clear_totp_failures(&grant.scope, id, &[event])
            .await?
        {
            return Err(CoreError::NotFound(format!("TOTP factor of member {id}")));
        }
        Ok(())
    }

    /// Opens a session for the calling member with its API key and a TOTP code: the session
    /// token proves a second factor until the org's `session_timeout`. A code is accepted
    /// once: neither it nor an earlier code opens another session.
    pub async fn open_session(
        &self,
        caller: &Caller,
        org: &str,
        req: NewSession,
    ) -> Result<SessionView, CoreError> {
        let grant = self.authorize(caller, Operation::SessionOpen, org).await?;
        let Principal::Member { member, auth, .. } = &caller.principal else {
            unreachable!("the table opens sessions to members only");
        };
        // A signed-in person without a second factor steps up: the code replaces the sign-in's
        // session with one that proves it (new token, same lifetimes).
        let replaces = match *auth {
            Authentication::ApiKey => None,
            Authentication::SignInSession {
                second_factor: false,
                token_hash,
                ..
            } => Some(token_hash),
            _ => {
                return Err(CoreError::invalid(
                    "authorization",
                    "open a session with the member's API key (or step up a sign-in that \
                     proved no second factor), not with another session",
                ))
            }
        };
        let refuse = |why: &str| CoreError::Forbidden(format!("session refused: {why}"));
        let target = Some(Target::Member(member.id.to_string()));
        let Some(factor) = self
            .store
            .for_org(&grant.scope)
            .await?
            .totp(&grant.scope, &member.id)
            .await?
        else {
            let error = refuse("the member has no TOTP factor enrolled");
            return Err(self
                .deny(caller, Some(org), AuditAction::SessionOpen, target, error)
                .await);
        };
        // Limits first, and no code is checked while one holds: a refused try costs nothing
        // and tells nothing.
        let now = self.now();
        self.check_source(caller, now)?;
        match factor_gate(factor.failures, factor.last_failure_at) {
            FactorGate::Open => {}
            FactorGate::WaitUntil(until) if until <= now => {}
            FactorGate::WaitUntil(until) => {
                return Err(CoreError::RateLimited {
                    message: format!(
                        "too many wrong TOTP codes for this member; try again after {until}"
                    ),
                    retry_after: seconds_until(now, until),
                })
            }
            FactorGate::Locked => {
                return Err(CoreError::RateLimited {
                    message: format!(
                        "this member's TOTP factor is locked after {LOCK_AFTER} wrong codes; \
                         an owner or admin clears it (DELETE \
                         /v1/orgs/{{org}}/members/{{id}}/totp-lockout)"
                    ),
                    retry_after: LOCKED_RETRY_AFTER,
                })
            }
        }
        // Counted before the code is checked (compare-and-set): concurrent guesses cannot
        // share one allowance; the right code sets the count back to zero.
        if !self
            .store
            .for_org(&grant.scope)
            .await?
            .reserve_totp_attempt(&grant.scope, &member.id, factor.failures, now)
            .await?
        {
            return Err(CoreError::RateLimited {
                message: "another TOTP code for this member is being checked; try again".into(),
                retry_after: 1,
            });
        }
        let raw = self
            .vault
            .org_purpose_key(org, TOTP_SEAL_PURPOSE)
            .await?
            .open(&totp_aad(org, &member.id), &factor.sealed)?;
        let totp = totp(&member.id, raw)?;
        let now_secs = now.as_second().max(0) as u64;
        let step = matching_step(&totp, req.totp.trim(), now_secs);
        let Some(step) = step.filter(|s| factor.last_step.is_none_or(|last| *s > last)) else {
            return Err(self
                .wrong_code(caller, org, &member.id, factor.failures + 1)
                .await);
        };
        let token = random_token(SESSION_PREFIX);
        let session = match replaces {
            None => {
                let timeout = grant.settings.session_timeout()?;
                Session {
                    token_hash: token_hash(&token),
                    member_id: member.id.clone(),
                    method: "totp".into(),
                    expires_at: timeout.add_to(self.now()),
                    last_used_at: None,
                    second_factor: true,
                    created_at: Some(self.now()),
                    idle_seconds: None,
                }
            }
            Some(old) => {
                let Some((_, _, signed_in)) = self.store.session(&old, self.now()).await? else {
                    return Err(CoreError::Unauthenticated);
                };
                Session {
                    token_hash: token_hash(&token),
                    method: "oidc+totp".into(),
                    second_factor: true,
                    last_used_at: None,
                    ..signed_in
                }
            }
        };
        let event = self
            .event(caller, custos_audit::AuditAction::SessionOpen)
            .org(org)
            .target(Target::Member(member.id.to_string()))
            .details(
                Details::new()
                    .method(session.method.clone())
                    .expires(session.expires_at),
            );
        if !self
            .store
            .for_org(&grant.scope)
            .await?
            .open_session(&grant.scope, &session, step, replaces.as_ref(), &[event])
            .await?
        {
            // Another request used this code (or a later one) first.
            return Err(self
                .wrong_code(caller, org, &member.id, factor.failures + 1)
                .await);
        }
        Ok(SessionView {
            token,
            expires_at: session.expires_at,
        })
    }
}

impl Custos {
    /// Refuses a wrong (or expired, or replayed) TOTP code: audited with the member's count
    /// of wrong codes, and the lockout with it when this one locks the factor; counted against
    /// the caller's source.
    async fn wrong_code(
        &self,
        caller: &Caller,
        org: &str,
        member_id: &str,
        failures: u32,
    ) -> CoreError {
        if let Some(source) = &caller.source {
            self.source_failures.fail(source, self.now());
        }
        let target = Target::Member(member_id.to_string());
        let mut events = vec![self
            .event(caller, AuditAction::SessionOpen)
            .outcome(custos_audit::Outcome::Denied)
            .org(org)
            .target(target.clone())
            .reason("wrong_code")
            .details(Details::new().failures(failures))];
        if failures == LOCK_AFTER {
            events.push(
                self.event(caller, AuditAction::MemberTotpLock)
                    .org(org)
                    .target(target)
                    .details(Details::new().failures(failures)),
            );
        }
        match self.store.append_audit(&events).await {
            Ok(()) => {
                CoreError::Forbidden("session refused: wrong, expired or already used code".into())
            }
            Err(e) => e.into(),
        }
    }

    /// `rate_limited` while the caller's source has used up its failures.
    pub(crate) fn check_source(
        &self,
        caller: &Caller,
        now: jiff::Timestamp,
    ) -> Result<(), CoreError> {
        let Some(source) = &caller.source else {
            return Ok(());
        };
        self.source_failures
            .check(source, now)
            .map_err(|retry_after| CoreError::RateLimited {
                message: "too many failed attempts from this address; try again later".into(),
                retry_after,
            })
    }
}

/// Whole seconds from `now` until `until`, at least 1 (a `Retry-After` value).
fn seconds_until(now: jiff::Timestamp, until: jiff::Timestamp) -> u64 {
    let secs = now.duration_until(until).as_secs().max(1);
    u64::try_from(secs).unwrap_or(1)
}

/// Associated data binding a sealed TOTP secret to its org and member.
fn totp_aad(org: &str, member: &str) -> Vec<u8> {
    format!("custos/totp/{org}/{member}").into_bytes()
}

/// The RFC 6238 generator of a member's secret, named for authenticator apps.
fn totp(member_id: &str, secret: Vec<u8>) -> Result<totp_rs::Totp, CoreError> {
    totp_rs::Builder::new()
        .with_algorithm(totp_rs::Algorithm::SHA1)
        .with_digits(TOTP_DIGITS)
        .with_skew(TOTP_SKEW)
        .with_step_duration(TOTP_STEP)
        .with_secret(secret)
        .with_issuer(Some("Custos"))
        .with_account_name(member_id)
        .build()
        .map_err(|e| CoreError::internal_from("TOTP setup", e))
}

/// The time step (`unix time / step`) whose code is `code`, within the allowed skew, if any
/// (the crate compares codes in constant time).
fn matching_step(totp: &totp_rs::Totp, code: &str, now: u64) -> Option<i64> {
    if code.len() != usize::from(TOTP_DIGITS) || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    totp.check(code, now).map(|step| step as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn totp() -> totp_rs::Totp {
        super::totp("m", b"12345678901234567890".to_vec()).unwrap()
    }

    #[test]
    fn no_api_key_looks_like_a_session_token() {
        for _ in 0..20_000 {
            assert!(!crate::generate_api_key().starts_with(SESSION_PREFIX));
        }
        assert!(!"cus_".starts_with(SESSION_PREFIX) && !SESSION_PREFIX.starts_with("cus_"));
    }

    #[test]
    fn rfc6238_vector_matches_its_step() {
        // RFC 6238 appendix B, SHA-1, T = 59 s: 94287082 (8 digits); 6 digits: 287082.
        assert_eq!(matching_step(&totp(), "287082", 59), Some(1));
        assert_eq!(matching_step(&totp(), "287082", 59 + 30), Some(1));
        assert_eq!(matching_step(&totp(), "287082", 59 + 90), None);
        assert_eq!(matching_step(&totp(), "287083", 59), None);
        assert_eq!(matching_step(&totp(), "28708", 59), None);
        assert_eq!(matching_step(&totp(), "28708x", 59), None);
    }
}
