//! Access reviews: who can act in an org, with which roles and credentials, and when each
//! last did; members unused past the policy's `[access] inactive_member_after` are flagged
//! and disabled by the sweep; an owner or admin records a review as an audit event.
//!
//! Last use is noted when a credential authenticates, at most once a minute per member and
//! per session ([`LastUse`]), so that reviews see it without a write on every request.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use custos_audit::{AuditAction, Details, Target};
use custos_store::{Member, OrgScope};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::authz::Operation;
use crate::{Caller, CoreError, Custos, Principal};

/// How long a noted use stands before the same credential's next use is written.
const NOTE_EVERY: jiff::SignedDuration = jiff::SignedDuration::from_secs(60);
/// Past this many remembered credentials, those not noted within [`NOTE_EVERY`] are dropped.
const REMEMBER_AT_MOST: usize = 100_000;

/// When each credential's use was last written, so the next is written a minute later at the
/// earliest. Per process: several instances each write at most once a minute.
#[derive(Debug, Default)]
pub(crate) struct LastUse {
    noted: Mutex<HashMap<String, Timestamp>>,
}

impl LastUse {
    /// Whether a use of `credential` at `now` is to be written (and, if so, remembers it).
    fn due(&self, credential: String, now: Timestamp) -> bool {
        let mut noted = self.noted.lock().unwrap_or_else(|e| e.into_inner());
        if noted
            .get(&credential)
            .is_some_and(|&at| now.duration_since(at) < NOTE_EVERY)
        {
            return false;
        }
        if noted.len() >= REMEMBER_AT_MOST {
            noted.retain(|_, at| now.duration_since(*at) < NOTE_EVERY);
        }
        noted.insert(credential, now);
        true
    }
}

/// One member as an access review shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReviewedMember {
    /// Member id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Roles.
    pub roles: Vec<String>,
    /// Groups.
    pub groups: Vec<String>,
    /// Whether the member must use a second factor for everything.
    pub mfa_required: bool,
    /// Whether the member has a TOTP factor enrolled.
    pub totp_enrolled: bool,
    /// Whether the member is bound to a person of the org's identity provider.
    pub identity_bound: bool,
    /// Creation time.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// When any of its credentials was last used (to the minute; absent: never).
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_used_at: Option<Timestamp>,
    /// When its API key was last used (to the minute; absent: never).
    #[schema(value_type = Option<String>, format = DateTime)]
    pub key_last_used_at: Option<Timestamp>,
    /// When it was disabled (absent: enabled).
    #[schema(value_type = Option<String>, format = DateTime)]
    pub disabled_at: Option<Timestamp>,
    /// Unused (since its last use, or its creation) for longer than the policy allows.
    pub inactive: bool,
}

/// An org's access review.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AccessReview {
    /// Org id.
    pub org: String,
    /// When the list was made.
    #[schema(value_type = String, format = DateTime)]
    pub generated_at: Timestamp,
    /// The policy's `[access] inactive_member_after` (absent: members are never flagged).
    pub inactive_member_after: Option<String>,
    /// Every member, oldest first.
    pub members: Vec<ReviewedMember>,
    /// Hex SHA-256 of what the review decides on (each member's id, roles, groups, second
    /// factor requirement and whether it is disabled; not last-use times, which move): send it
    /// back when recording the review.
    pub review_sha256: String,
}

/// A review's decisions: every member of the list, kept or removed.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewDecision {
    /// The `review_sha256` of the list reviewed; refused (409) if the list changed since.
    pub review_sha256: String,
    /// Members kept.
    #[serde(default)]
    pub kept: Vec<String>,
    /// Members removed (their keys and sessions stop working at once).
    #[serde(default)]
    pub removed: Vec<String>,
}

/// A recorded review.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RecordedReview {
    /// The digest of the reviewed list.
    pub review_sha256: String,
    /// Members kept.
    pub kept: Vec<String>,
    /// Members removed.
    pub removed: Vec<String>,
    /// When it was recorded.
    #[schema(value_type = String, format = DateTime)]
    pub recorded_at: Timestamp,
}

/// Whether `member` has been unused for longer than `after` at `now`.
pub(crate) fn is_inactive(
    member: &Member,
    after: Option<&custos_policy::Duration>,
    now: Timestamp,
) -> bool {
    let Some(after) = after else { return false };
    let since = member.last_used_at.unwrap_or(member.created_at);
    after.add_to(since) < now
}

/// The digest of the facts a review decides on, in the list's order.
fn review_digest(members: &[Member]) -> String {
    let facts: Vec<serde_json::Value> = members
        .iter()
        .map(|m| serde_json::json!([m.id, m.roles, m.groups, m.mfa, m.disabled_at.is_some()]))
        .collect();
    let bytes = serde_json::to_vec(&facts).expect("strings and booleans serialize");
    hex::encode(Sha256::digest(bytes))
}

impl Custos {
    /// Notes that `member` authenticated now (through a session when `session` is given,
    /// else its API key), at most once a minute per credential. A failed write is logged and
    /// skipped: it must not fail the request it rides on.
    pub(crate) async fn note_use(
        &self,
        scope: &OrgScope,
        member: &Member,
        session: Option<&[u8; 32]>,
    ) {
        let now = self.now();
        let credential = match session {
            Some(hash) => format!("s:{}", hex::encode(hash)),
            None => format!("k:{}", member.id),
        };
        if !self.last_use.due(credential, now) {
            return;
        }
        let store = match self.store.for_org(scope).await {
            Ok(store) => store,
            Err(e) => return tracing::warn!(error = %e, "noting a credential's use"),
        };
        let noted = match session {
            Some(hash) => match store.note_session_use(scope, hash, now).await {
                Ok(()) => store.note_member_use(scope, &member.id, now, false).await,
                Err(e) => Err(e),
            },
            None => store.note_member_use(scope, &member.id, now, true).await,
        };
        if let Err(e) = noted {
            tracing::warn!(error = %e, "noting a credential's use");
        }
    }

    /// Notes that a member's personal access token was used now (as [`Custos::note_use`]).
    pub(crate) async fn note_token_use(&self, scope: &OrgScope, member: &Member, token: &[u8; 32]) {
        let now = self.now();
        if !self.last_use.due(format!("t:{}", hex::encode(token)), now) {
            return;
        }
        let noted = match self.store.for_org(scope).await {
            Ok(store) => match store.note_personal_token_use(scope, token, now).await {
                Ok(()) => store.note_member_use(scope, &member.id, now, false).await,
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        if let Err(e) = noted {
            tracing::warn!(error = %e, "noting a personal access token's use");
        }
    }

    /// Notes that an operator's session was used now, at most once a minute (as
    /// [`Custos::note_use`]; its idle limit counts from this).
    pub(crate) async fn note_operator_use(&self, session: &[u8; 32]) {
        let now = self.now();
        if !self
            .last_use
            .due(format!("o:{}", hex::encode(session)), now)
        {
            return;
        }
        if let Err(e) = self
            .store
            .main()
            .note_operator_session_use(session, now)
            .await
        {
            tracing::warn!(error = %e, "noting an operator session's use");
        }
    }

    /// The org's access review (owners, admins, auditors).
    pub async fn access_review(
        &self,
        caller: &Caller,
        org: &str,
    ) -> Result<AccessReview, CoreError> {
        let grant = self
            .authorize(caller, Operation::AccessReviewRead, org)
            .await?;
        let scope = grant.scope;
        let (review, _) = self.review_of(&scope).await?;
        let event = self.event(caller, AuditAction::AccessReviewRead).org(org);
        self.store.append_audit(&[event]).await?;
        Ok(review)
    }

    /// The review list and the members it was made from.
    async fn review_of(&self, scope: &OrgScope) -> Result<(AccessReview, Vec<Member>), CoreError> {
        let store = self.store.for_org(scope).await?;
        let members = store.members(scope).await?;
        let enrolled: BTreeSet<String> = store.enrolled_members(scope).await?.into_iter().collect();
        let now = self.now();
        let after = self.policy.access.inactive_member_after.as_ref();
        let review = AccessReview {
            org: scope.org_id().to_string(),
            generated_at: now,
            inactive_member_after: after.map(ToString::to_string),
            review_sha256: review_digest(&members),
            members: members
                .iter()
                .map(|m| ReviewedMember {
                    id: m.id.clone(),
                    name: m.name.clone(),
                    roles: m.roles.clone(),
                    groups: m.groups.clone(),
                    mfa_required: m.mfa,
                    totp_enrolled: enrolled.contains(&m.id),
                    identity_bound: m.identity.is_some(),
                    created_at: m.created_at,
                    last_used_at: m.last_used_at,
                    key_last_used_at: m.key_last_used_at,
                    disabled_at: m.disabled_at,
                    inactive: is_inactive(m, after, now),
                })
                .collect(),
        };
        Ok((review, members))
    }

    /// Records a review (owners, admins): `decision` must name every member of the list whose
    /// digest it carries, each kept or removed. Removed members go first (each audited as a
    /// removal), then the review is one `access_review.record` event.
    pub async fn record_access_review(
        &self,
        caller: &Caller,
        org: &str,
        decision: ReviewDecision,
    ) -> Result<RecordedReview, CoreError> {
        let grant = self
            .authorize(caller, Operation::AccessReviewRecord, org)
            .await?;
        let (review, members) = self.review_of(&grant.scope).await?;
        if decision.review_sha256 != review.review_sha256 {
            return Err(CoreError::Conflict(
                "review_sha256: the access list changed since it was read (members, roles, \
                 groups or second factors); read it again and review that"
                    .into(),
            ));
        }
        let all: BTreeSet<&str> = members.iter().map(|m| m.id.as_str()).collect();
        let mut seen = BTreeSet::new();
        for (field, ids) in [("kept", &decision.kept), ("removed", &decision.removed)] {
            for (i, id) in ids.iter().enumerate() {
                if !all.contains(id.as_str()) {
                    return Err(CoreError::invalid(
                        &format!("{field}[{i}]"),
                        "is not a member of the reviewed list",
                    ));
                }
                if !seen.insert(id.as_str()) {
                    return Err(CoreError::invalid(
                        &format!("{field}[{i}]"),
                        "names a member already decided on; each member is kept or removed once",
                    ));
                }
            }
        }
        if let Some(missing) = all.iter().find(|id| !seen.contains(*id)) {
            return Err(CoreError::invalid(
                "kept",
                format!("member {missing} is neither kept nor removed; a review decides on every member"),
            ));
        }
        for id in &decision.removed {
            self.remove_member(caller, org, id).await?;
        }
        let event = self
            .event(caller, AuditAction::AccessReviewRecord)
            .org(org)
            .details(
                Details::new()
                    .review_sha256(review.review_sha256.clone())
                    .kept(decision.kept.clone())
                    .removed(decision.removed.clone()),
            );
        self.store.append_audit(&[event]).await?;
        Ok(RecordedReview {
            review_sha256: review.review_sha256,
            kept: decision.kept,
            removed: decision.removed,
            recorded_at: self.now(),
        })
    }

    /// Disables or enables a member (only an owner may): its key and sessions are refused
    /// while it is disabled.
    pub(crate) async fn set_member_enabled(
        &self,
        caller: &Caller,
        scope: &OrgScope,
        id: &str,
        enabled: bool,
    ) -> Result<(), CoreError> {
        let is_owner = matches!(&caller.principal,
            Principal::Member { member, .. } if member.roles.iter().any(|r| r == "owner"));
        let action = if enabled {
            AuditAction::MemberEnable
        } else {
            AuditAction::MemberDisable
        };
        if !is_owner {
            return Err(self
                .deny(
                    caller,
                    Some(scope.org_id()),
                    action,
                    Some(Target::Member(id.to_string())),
                    CoreError::Forbidden("only an owner enables or disables a member".into()),
                )
                .await);
        }
        let event = self
            .event(caller, action)
            .org(scope.org_id())
            .target(Target::Member(id.to_string()));
        self.store
            .for_org(scope)
            .await?
            .set_member_disabled(scope, id, (!enabled).then(|| self.now()), &[event])
            .await?;
        Ok(())
    }

    /// Disables every member of every live org that has been unused past the policy's
    /// `inactive_member_after` (audited `member.disable`, reason `inactive`), except an org's
    /// last enabled owner, who would otherwise lock the org out of enabling anyone again.
    /// Returns how many were disabled.
    pub(crate) async fn disable_inactive_members(&self, now: Timestamp) -> Result<u64, CoreError> {
        let Some(after) = &self.policy.access.inactive_member_after else {
            return Ok(0);
        };
        let mut disabled = 0;
        for org in self.store.orgs().await? {
            let Some((scope, row)) = self.store.org(&org.id).await? else {
                continue;
            };
            if row.terminating_since.is_some() {
                continue;
            }
            let store = self.store.for_org(&scope).await?;
            let members = store.members(&scope).await?;
            let is_owner = |m: &Member| m.roles.iter().any(|r| r == "owner");
            let mut enabled_owners = members
                .iter()
                .filter(|m| m.disabled_at.is_none() && is_owner(m))
                .count();
            for m in members.iter().filter(|m| m.disabled_at.is_none()) {
                if !is_inactive(m, Some(after), now) {
                    continue;
                }
                if is_owner(m) {
                    if enabled_owners <= 1 {
                        continue;
                    }
                    enabled_owners -= 1;
                }
                let mut details = Details::new();
                details.last_used = m.last_used_at;
                let event = self
                    .event(&Caller::new(Principal::System), AuditAction::MemberDisable)
                    .org(scope.org_id())
                    .target(Target::Member(m.id.clone()))
                    .reason("inactive")
                    .details(details);
                if store
                    .set_member_disabled(&scope, &m.id, Some(now), &[event])
                    .await?
                {
                    disabled += 1;
                }
            }
        }
        Ok(disabled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(created: &str, used: Option<&str>) -> Member {
        Member {
            id: "m".into(),
            name: "n".into(),
            roles: vec!["member".into()],
            groups: vec![],
            mfa: false,
            created_at: created.parse().unwrap(),
            identity: None,
            last_used_at: used.map(|t| t.parse().unwrap()),
            key_last_used_at: None,
            disabled_at: None,
        }
    }

    #[test]
    fn inactivity_counts_from_last_use_or_creation() {
        let d: custos_policy::Duration = "90d".parse().unwrap();
        let now: Timestamp = "2026-12-01T00:00:00Z".parse().unwrap();
        assert!(is_inactive(
            &member("2026-01-01T00:00:00Z", None),
            Some(&d),
            now
        ));
        assert!(!is_inactive(
            &member("2026-11-01T00:00:00Z", None),
            Some(&d),
            now
        ));
        assert!(!is_inactive(
            &member("2026-01-01T00:00:00Z", Some("2026-11-30T00:00:00Z")),
            Some(&d),
            now
        ));
        assert!(!is_inactive(
            &member("2020-01-01T00:00:00Z", None),
            None,
            now
        ));
    }

    #[test]
    fn the_digest_ignores_last_use_but_not_access() {
        let a = member("2026-01-01T00:00:00Z", None);
        let mut used = a.clone();
        used.last_used_at = Some("2026-06-01T00:00:00Z".parse().unwrap());
        assert_eq!(
            review_digest(std::slice::from_ref(&a)),
            review_digest(&[used])
        );
        let mut promoted = a.clone();
        promoted.roles = vec!["admin".into()];
        assert_ne!(
            review_digest(std::slice::from_ref(&a)),
            review_digest(&[promoted])
        );
        let mut disabled = a.clone();
        disabled.disabled_at = Some("2026-06-01T00:00:00Z".parse().unwrap());
        assert_ne!(review_digest(&[a]), review_digest(&[disabled]));
    }

    #[test]
    fn a_credential_is_noted_once_a_minute() {
        let uses = LastUse::default();
        let t: Timestamp = "2026-12-01T00:00:00Z".parse().unwrap();
        assert!(uses.due("k:m".into(), t));
        assert!(!uses.due("k:m".into(), t + jiff::SignedDuration::from_secs(59)));
        assert!(uses.due("s:x".into(), t));
        assert!(uses.due("k:m".into(), t + jiff::SignedDuration::from_secs(60)));
    }
}
