//! Every action the audit log records, as one typed enum: writers cannot misspell an action
//! or invent one, and readers can list them all.

use std::fmt;

macro_rules! actions {
    ($($(#[$doc:meta])* $name:ident = $text:literal,)*) => {
        /// An action the audit log records (`noun.verb`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum AuditAction { $($(#[$doc])* $name,)* }

        impl AuditAction {
            /// Every action.
            pub const ALL: &'static [AuditAction] = &[$(AuditAction::$name,)*];

            /// The action as written into events (`record.create`, ...).
            pub const fn as_str(self) -> &'static str {
                match self { $(AuditAction::$name => $text,)* }
            }

            /// The action named `text`, if it is one.
            pub fn parse(text: &str) -> Option<AuditAction> {
                match text { $($text => Some(AuditAction::$name),)* _ => None }
            }
        }
    };
}

actions! {
    /// An org was created.
    OrgCreate = "org.create",
    /// Orgs were listed.
    OrgList = "org.list",
    /// An org was read.
    OrgRead = "org.read",
    /// An org's termination was requested.
    OrgTerminate = "org.terminate",
    /// An org's termination completed (records purged, keys destroyed).
    OrgTerminated = "org.terminated",
    /// An org moved to another region (its data copied to that region's stores); a refused
    /// move is recorded too.
    OrgMove = "org.move",
    /// Org settings were read.
    SettingsRead = "settings.read",
    /// Org settings were changed.
    SettingsUpdate = "settings.update",
    /// A member was added.
    MemberCreate = "member.create",
    /// Members were listed.
    MemberList = "member.list",
    /// A member was changed.
    MemberUpdate = "member.update",
    /// A member was removed.
    MemberRemove = "member.remove",
    /// A member's API key was rotated.
    MemberKeyRotate = "member.key_rotate",
    /// A member's API key was revoked.
    MemberKeyRevoke = "member.key_revoke",
    /// A member enrolled a TOTP factor.
    MemberTotpEnroll = "member.totp_enroll",
    /// An owner or admin issued a member a one-time TOTP enrollment code.
    MemberTotpEnrollmentCode = "member.totp_enrollment_code",
    /// A member was disabled (reason `inactive`: unused past the policy's
    /// `inactive_member_after`; or by an owner): its key and sessions are refused.
    MemberDisable = "member.disable",
    /// A disabled member was enabled again by an owner.
    MemberEnable = "member.enable",
    /// An org's access review (members, keys, roles, last use) was read.
    AccessReviewRead = "access_review.read",
    /// An owner or admin recorded an access review: the reviewed list's digest and which
    /// members were kept or removed.
    AccessReviewRecord = "access_review.record",
    /// An operator suspended an org: its members are refused until it is resumed.
    OrgSuspend = "org.suspend",
    /// An operator resumed a suspended org.
    OrgResume = "org.resume",
    /// The bootstrap admin token created the deployment's first operator.
    OperatorCreate = "operator.create",
    /// The deployment's operators were listed.
    OperatorList = "operator.list",
    /// The retired bootstrap admin token was used under `serve --break-glass`.
    OperatorBreakGlass = "operator.break_glass",
    /// An operator filed a support request (justification, scope, duration).
    SupportRequestCreate = "support_request.create",
    /// Support requests were listed.
    SupportRequestList = "support_request.list",
    /// An owner or admin with a second factor approved a support request: the grant is
    /// active until `expires`.
    SupportRequestApprove = "support_request.approve",
    /// An owner or admin denied a support request.
    SupportRequestDeny = "support_request.deny",
    /// An owner or admin revoked an active grant.
    SupportRequestRevoke = "support_request.revoke",
    /// The accesses made under a grant were listed.
    SupportRequestAccesses = "support_request.accesses",
    /// A member's TOTP factor was locked after too many wrong codes.
    MemberTotpLock = "member.totp_lock",
    /// An owner or admin cleared a member's TOTP lockout.
    MemberTotpUnlock = "member.totp_unlock",
    /// A session was opened with a second factor.
    SessionOpen = "session.open",
    /// An identity-provider token was presented (refusals are recorded).
    AuthIdentityToken = "auth.identity_token",
    /// A person signed in through an identity provider (a session was opened); refusals are
    /// recorded with their reason code.
    AuthSignIn = "auth.sign_in",
    /// A person signed out (the session ended).
    AuthSignOut = "auth.sign_out",
    /// A person made a personal access token.
    AuthTokenCreate = "auth.token_create",
    /// A person listed its personal access tokens.
    AuthTokenList = "auth.token_list",
    /// A person revoked one of its personal access tokens.
    AuthTokenRevoke = "auth.token_revoke",
    /// A presented credential (API key, session token) was refused: unknown, revoked or
    /// expired. Only an API key's public prefix is recorded.
    AuthReject = "auth.reject",
    /// Records were created.
    RecordCreate = "record.create",
    /// Records were listed.
    RecordList = "record.list",
    /// A record was read.
    RecordRead = "record.read",
    /// A record was read with its pseudonyms reversed.
    RecordReveal = "record.reveal",
    /// A record was soft- or hard-deleted (the reason says which).
    RecordDelete = "record.delete",
    /// A hard delete was refused (successes are `record.delete` with reason `hard_delete`).
    RecordHardDelete = "record.hard_delete",
    /// A soft-deleted record was restored.
    RecordRestore = "record.restore",
    /// An archived record was opened for the restore window.
    RecordArchiveRestore = "record.archive_restore",
    /// A record moved to the archive tier.
    RecordArchive = "record.archive",
    /// Records were purged.
    RecordPurge = "record.purge",
    /// A file was uploaded.
    FileUpload = "file.upload",
    /// A file was downloaded.
    FileDownload = "file.download",
    /// Every record of a category was marked for purge.
    CategoryDeleteAll = "category.delete_all",
    /// Retention was read.
    RetentionRead = "retention.read",
    /// An org's retention override was set.
    RetentionSet = "retention.set",
    /// Due times were recomputed after a retention change.
    RetentionRecompute = "retention.recompute",
    /// The org's records and storage per category were read (refusals only).
    UsageRead = "usage.read",
    /// A legal hold was placed.
    HoldCreate = "hold.create",
    /// Holds were listed.
    HoldRead = "hold.read",
    /// A legal hold was released.
    HoldRelease = "hold.release",
    /// The deletion log was read.
    DeletionLogRead = "deletion_log.read",
    /// The SLA report was read.
    LifecycleOverdue = "lifecycle.overdue",
    /// A lifecycle sweep ran.
    LifecycleSweep = "lifecycle.sweep",
    /// Audit events were queried.
    AuditRead = "audit.read",
    /// A checkpoint was read.
    AuditCheckpoint = "audit.checkpoint",
    /// An inclusion proof was read.
    AuditProof = "audit.proof",
    /// A consistency proof was read.
    AuditConsistency = "audit.consistency",
    /// The signing key was read.
    AuditSigningKey = "audit.signing_key",
    /// The audit log was verified.
    AuditVerify = "audit.verify",
    /// The audit log was exported.
    AuditExport = "audit.export",
    /// A key was rotated.
    KeyRotate = "key.rotate",
    /// Text was scanned for PII.
    PiiScan = "pii.scan",
    /// A write was refused by a category's `block` PII rule.
    PiiBlocked = "pii.blocked",
    /// A data subject request was filed.
    RequestCreate = "request.create",
    /// Data subject requests were listed.
    RequestList = "request.list",
    /// A data subject request was read.
    RequestRead = "request.read",
    /// Work on a data subject request started (`received` → `in_progress`).
    RequestStart = "request.start",
    /// A data subject request completed or partially completed (the reason says which).
    RequestComplete = "request.complete",
    /// A data subject request's deadline was extended.
    RequestExtend = "request.extend",
    /// A data subject request was rejected.
    RequestReject = "request.reject",
    /// A subject's data was exported for a request.
    RequestExport = "request.export",
    /// A bulk erasure job was filed.
    RequestBulk = "request.bulk",
    /// A certificate of deletion was issued.
    CertificateIssue = "certificate.issue",
    /// A certificate of deletion was read.
    CertificateRead = "certificate.read",
    /// A subject's keys are being destroyed (appended before the keys go).
    SubjectCryptoErase = "subject.crypto_erase",
    /// A subject's records were marked for purge by an erasure.
    SubjectPurge = "subject.purge",
    /// A subject's records were anonymized by an erasure.
    SubjectAnonymize = "subject.anonymize",
    /// A subject's records were folded into counts by an erasure.
    SubjectAggregate = "subject.aggregate",
    /// A subject's PII tokens were destroyed by an erasure.
    SubjectTokensDestroy = "subject.tokens_destroy",
    /// A subject's erasure completed: the event a certificate of deletion is bound to.
    SubjectErase = "subject.erase",
    /// An OpenAI Chat Completions call through the LLM gateway. Like every `llm.*` call event
    /// it holds metadata only (provider, model, tokens, latency, PII counts by type); a
    /// refused call is the same action with a `denied` outcome.
    LlmChatCompletions = "llm.chat_completions",
    /// An OpenAI Responses call through the LLM gateway.
    LlmResponses = "llm.responses",
    /// An Anthropic Messages call through the LLM gateway.
    LlmMessages = "llm.messages",
    /// The models an org may use were listed through the LLM gateway.
    LlmModels = "llm.models",
    /// The database was restored from a backup (counts and the backup id only).
    BackupRestore = "backup.restore",
    /// Erasures, purges and key destructions recorded after a backup were replayed on the
    /// restored stores (counts only).
    BackupReconcile = "backup.reconcile",
    /// A key-store backup was merged into the key store; destroyed keys stayed destroyed.
    BackupKeysRestore = "backup.keys_restore",
    /// An alert rule of the policy fired (its deliveries were queued in the same transaction).
    AlertFire = "alert.fire",
    /// A notification could not be delivered before its retry period ended; it was given up.
    NotificationFail = "notification.fail",
    /// The outbox's notifications and their delivery state were listed.
    NotificationList = "notification.list",
    /// An org's security events were listed.
    SecurityEventList = "security_event.list",
    /// The deployment's own security events were listed.
    SecurityEventListDeployment = "security_event.list_deployment",
    /// The deployment's security events whose retention ended were deleted.
    SecurityEventPurge = "security_event.purge",
    /// A data subject's keyed reference was looked up (what audit events, certificates and
    /// incidents name the subject by).
    SubjectReference = "subject.reference",
    /// An incident was opened (by an operator, or by an alert rule marked `incident`).
    IncidentCreate = "incident.create",
    /// Incidents were listed.
    IncidentList = "incident.list",
    /// An incident was read.
    IncidentRead = "incident.read",
    /// An incident's status moved forward.
    IncidentStatus = "incident.status",
    /// The data subjects affected by an incident were computed.
    IncidentAffected = "incident.affected",
    /// An incident's report (its steps proved against a signed checkpoint) was produced.
    IncidentReport = "incident.report",
    /// An incident's clock was about to run out, or ran out: its alert was queued.
    IncidentClock = "incident.clock",
    /// An org affected by an incident was told (its channels got the incident notice, its
    /// webhooks one notice per affected subject, by reference).
    IncidentNotify = "incident.notify",
    /// A data subject's contact (for notices and privacy-center codes) was set or removed.
    SubjectContact = "subject.contact",
    /// An open data subject request was about to come due: its reminder was queued.
    RequestRemind = "request.remind",
    /// A write to a category whose PII rule asks for alerts held PII (entity counts, never
    /// values).
    PiiDetect = "pii.detect",
    /// Notifications delivered or given up long enough ago were deleted from the outbox.
    NotificationPurge = "notification.purge",
    /// A privacy-center link signed by the org's application was used by the subject it
    /// names (or refused, with the reason).
    PrivacyLink = "privacy.link",
    /// Used privacy-center links past their expiry were forgotten.
    PrivacyLinkPurge = "privacy.link_purge",
    /// A data subject opened their privacy center (their own requests were listed).
    PrivacyRead = "privacy.read",
    /// A data subject filed a request in their privacy center (refusals; the filing itself is
    /// `request.create` by the subject).
    PrivacyRequest = "privacy.request",
    /// A data subject downloaded the export of their own request in the privacy center.
    PrivacyExport = "privacy.export",
    /// A data subject downloaded the certificate of their own erasure in the privacy center.
    PrivacyCertificate = "privacy.certificate",
}

impl fmt::Display for AuditAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Written as its name, so an event's bytes are the same as when the field was text.
impl serde::Serialize for AuditAction {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Read from its name; a name this build does not know fails the decode (names are only ever
/// added, so it comes from a newer Custos, or the bytes were changed).
impl<'de> serde::Deserialize<'de> for AuditAction {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        AuditAction::parse(&text).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown audit action {text:?} (written by a newer Custos?)"
            ))
        })
    }
}

impl PartialEq<AuditAction> for String {
    fn eq(&self, other: &AuditAction) -> bool {
        self == other.as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_round_trips_and_is_unique() {
        let mut seen = std::collections::HashSet::new();
        for a in AuditAction::ALL {
            assert_eq!(AuditAction::parse(a.as_str()), Some(*a));
            assert!(seen.insert(a.as_str()), "{a} twice");
            let (noun, verb) = a.as_str().split_once('.').expect("noun.verb");
            assert!(!noun.is_empty() && !verb.is_empty());
        }
        assert_eq!(AuditAction::parse("record.nope"), None);
    }
}
