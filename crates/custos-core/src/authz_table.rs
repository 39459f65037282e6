//! The authorization table itself: one row per operation, in [`Operation::ALL`] order, and
//! the role groups its rows name. What the columns mean, and the one function that decides
//! from a row, are in the parent module.

use custos_audit::AuditAction;
use custos_policy::Role;

use super::{CategoryRule, GrantScope, MfaRule, Operation, OperatorRule, Rule};

use Role::{Admin as ADM, Auditor as AUD, Member as MEM, Owner as OWN, Service as SVC};

/// Every member role.
pub(super) const ANY_ROLE: &[Role] = &[OWN, ADM, MEM, AUD, SVC];
/// Roles that manage an org.
pub(super) const MANAGERS: &[Role] = &[OWN, ADM];
/// Roles that may file data subject requests: managers, and the customer's application
/// acting for its end user ("delete my data", "export my data").
const REQUESTERS: &[Role] = &[OWN, ADM, SVC];
/// Roles that may follow data subject requests and fetch their certificates.
const REQUEST_READERS: &[Role] = &[OWN, ADM, AUD, SVC];
/// Roles that use the LLM gateway: everyone who works with the org's data (auditors read
/// evidence, they do not prompt models with customer data).
const LLM_USERS: &[Role] = &[OWN, ADM, MEM, SVC];
/// Roles that read an org's evidence (audit trail, deletion log, holds, SLA report).
const EVIDENCE: &[Role] = &[OWN, ADM, AUD];

const fn rule(
    op: Operation,
    action: AuditAction,
    operator: OperatorRule,
    roles: &'static [Role],
    category: CategoryRule,
    mfa: MfaRule,
) -> Rule {
    Rule {
        op,
        action,
        operator,
        roles,
        category,
        mfa,
        while_terminating: false,
        edits: false,
        route: None,
        cli: None,
        console: None,
        subject: false,
    }
}

impl Rule {
    const fn http(mut self, method: &'static str, path: &'static str) -> Rule {
        self.route = Some((method, path));
        self
    }

    const fn cli(mut self, command: &'static str) -> Rule {
        self.cli = Some(command);
        self
    }

    const fn console(mut self, method: &'static str, path: &'static str) -> Rule {
        self.console = Some((method, path));
        self
    }

    const fn while_terminating(mut self) -> Rule {
        self.while_terminating = true;
        self
    }

    const fn edits(mut self) -> Rule {
        self.edits = true;
        self
    }

    const fn subject(mut self) -> Rule {
        self.subject = true;
        self
    }
}

use AuditAction as A;
use CategoryRule::{All, Target};
use GrantScope::{Metadata, Read, ReadWrite};
use MfaRule::{Enrollment, ForAdmins, No};
use Operation as Op;
use OperatorRule::{Always, Grant, Never, OwnerlessOrg};

/// The authorization table: one row per operation, in [`Operation::ALL`] order.
pub const TABLE: &[Rule] = &[
    rule(
        Op::OrgCreate,
        A::OrgCreate,
        Always,
        &[],
        CategoryRule::No,
        No,
    )
    .http("POST", "/v1/orgs"),
    rule(
        Op::OrgList,
        A::OrgList,
        Always,
        ANY_ROLE,
        CategoryRule::No,
        No,
    )
    .http("GET", "/v1/orgs")
    .console("GET", "/console/deployment"),
    rule(
        Op::OrgRead,
        A::OrgRead,
        Always,
        ANY_ROLE,
        CategoryRule::No,
        No,
    )
    .http("GET", "/v1/orgs/{org}")
    .console("GET", "/console/{org}")
    .while_terminating(),
    rule(
        Op::OrgTerminate,
        A::OrgTerminate,
        Always,
        &[OWN],
        All,
        ForAdmins,
    )
    .http("DELETE", "/v1/orgs/{org}")
    .while_terminating(),
    rule(
        Op::OrgSuspend,
        A::OrgSuspend,
        Always,
        &[],
        CategoryRule::No,
        No,
    )
    .http("POST", "/v1/orgs/{org}/suspend"),
    rule(
        Op::OrgResume,
        A::OrgResume,
        Always,
        &[],
        CategoryRule::No,
        No,
    )
    .http("POST", "/v1/orgs/{org}/resume"),
    rule(
        Op::SettingsRead,
        A::SettingsRead,
        Grant(Metadata),
        MANAGERS,
        CategoryRule::No,
        No,
    )
    .http("GET", "/v1/orgs/{org}/settings")
    .console("GET", "/console/{org}/settings"),
    rule(
        Op::SettingsUpdate,
        A::SettingsUpdate,
        Never,
        MANAGERS,
        CategoryRule::No,
        ForAdmins,
    )
    .http("PATCH", "/v1/orgs/{org}/settings"),
    rule(
        Op::MemberCreate,
        A::MemberCreate,
        OwnerlessOrg,
        MANAGERS,
        CategoryRule::No,
        ForAdmins,
    )
    .http("POST", "/v1/orgs/{org}/members"),
    rule(
        Op::MemberList,
        A::MemberList,
        Grant(Metadata),
        MANAGERS,
        CategoryRule::No,
        No,
    )
    .http("GET", "/v1/orgs/{org}/members")
    .console("GET", "/console/{org}/members"),
    rule(
        Op::MemberUpdate,
        A::MemberUpdate,
        Never,
        MANAGERS,
        CategoryRule::No,
        ForAdmins,
    )
    .http("PATCH", "/v1/orgs/{org}/members/{id}"),
    rule(
        Op::MemberRemove,
        A::MemberRemove,
        Never,
        MANAGERS,
        CategoryRule::No,
        ForAdmins,
    )
    .http("DELETE", "/v1/orgs/{org}/members/{id}"),
    rule(
        Op::AccessReviewRead,
        A::AccessReviewRead,
        Grant(Metadata),
        EVIDENCE,
        CategoryRule::No,
        No,
    )
    .http("GET", "/v1/orgs/{org}/access-review")
    .console("GET", "/console/{org}/access-review"),
    rule(
        Op::AccessReviewRecord,
        A::AccessReviewRecord,
        Never,
        MANAGERS,
        CategoryRule::No,
        ForAdmins,
    )
    .http("POST", "/v1/orgs/{org}/access-review"),
    rule(
        Op::OperatorCreate,
        A::OperatorCreate,
        Always,
        &[],
        CategoryRule::No,
        No,
    )
    .http("POST", "/v1/operators"),
    rule(
        Op::OperatorList,
        A::OperatorList,
        Always,
        &[],
        CategoryRule::No,
        No,
    )
    .http("GET", "/v1/operators"),
    rule(
        Op::SupportRequestCreate,
        A::SupportRequestCreate,
        Always,
        &[],
        CategoryRule::No,
        No,
    )
    .http("POST", "/v1/orgs/{org}/support-requests"),
    rule(
        Op::SupportRequestList,
        A::SupportRequestList,
        Always,
        EVIDENCE,
        CategoryRule::No,
        No,
    )
    .http("GET", "/v1/orgs/{org}/support-requests")
    .console("GET", "/console/{org}/support-requests")
    .while_terminating(),
    rule(
        Op::SupportRequestApprove,
        A::SupportRequestApprove,
        Never,
        MANAGERS,
        CategoryRule::No,
        MfaRule::Always,
    )
    .http("POST", "/v1/orgs/{org}/support-requests/{id}/approve")
    .console("POST", "/console/{org}/support-requests/{id}/approve"),
    rule(
        Op::SupportRequestDeny,
        A::SupportRequestDeny,
        Never,
        MANAGERS,
        CategoryRule::No,
        MfaRule::Always,
    )
    .http("POST", "/v1/orgs/{org}/support-requests/{id}/deny")
    .console("POST", "/console/{org}/support-requests/{id}/deny"),
    // Ending access at once must not wait for a second factor.
    rule(
        Op::SupportRequestRevoke,
        A::SupportRequestRevoke,
        Never,
        MANAGERS,
        CategoryRule::No,
        No,
    )
    .http("POST", "/v1/orgs/{org}/support-requests/{id}/revoke")
    .console("POST", "/console/{org}/support-requests/{id}/revoke")
    .while_terminating(),
    rule(
        Op::SupportRequestAccesses,
        A::SupportRequestAccesses,
        Always,
        EVIDENCE,
        CategoryRule::No,
        No,
    )
    .http("GET", "/v1/orgs/{org}/support-requests/{id}/accesses")
    .console("GET", "/console/{org}/support-requests/{id}/accesses")
    .while_terminating(),
    rule(
        Op::MemberKeyRotate,
        A::MemberKeyRotate,
        Never,
        MANAGERS,
        CategoryRule::No,
        ForAdmins,
    )
    .http("POST", "/v1/orgs/{org}/members/{id}/key"),
    rule(
        Op::MemberKeyRevoke,
        A::MemberKeyRevoke,
        Never,
        MANAGERS,
        CategoryRule::No,
        ForAdmins,
    )
    .http("DELETE", "/v1/orgs/{org}/members/{id}/key"),
    rule(
        Op::TotpEnroll,
        A::MemberTotpEnroll,
        Never,
        ANY_ROLE,
        CategoryRule::No,
        Enrollment,
    )
    .http("POST", "/v1/orgs/{org}/members/me/totp"),
    rule(
        Op::SessionOpen,
        A::SessionOpen,
        Never,
        ANY_ROLE,
        CategoryRule::No,
        No,
    )
    .http("POST", "/v1/orgs/{org}/sessions"),
    rule(
        Op::TotpEnrollmentCode,
        A::MemberTotpEnrollmentCode,
        Never,
        MANAGERS,
        CategoryRule::No,
        ForAdmins,
    )
    .http("POST", "/v1/orgs/{org}/members/{id}/totp-enrollment"),
    rule(
        Op::TotpUnlock,
        A::MemberTotpUnlock,
        Never,
        MANAGERS,
        CategoryRule::No,
        ForAdmins,
    )
    .http("DELETE", "/v1/orgs/{org}/members/{id}/totp-lockout"),
    // A personal access token carries the person's roles for remote use, never a second
    // factor: only a person who proved one makes it (a token cannot make another).
    rule(
        Op::PersonalTokenCreate,
        A::AuthTokenCreate,
        Never,
        ANY_ROLE,
        CategoryRule::No,
        MfaRule::Always,
    )
    .http("POST", "/v1/auth/tokens"),
    rule(
        Op::PersonalTokenList,
        A::AuthTokenList,
        Never,
        ANY_ROLE,
        CategoryRule::No,
        No,
    )
    .http("GET", "/v1/auth/tokens"),
    rule(
        Op::PersonalTokenRevoke,
        A::AuthTokenRevoke,
        Never,
        ANY_ROLE,
        CategoryRule::No,
        No,
    )
    .http("DELETE", "/v1/auth/tokens/{id}"),
    rule(
        Op::RecordCreate,
        A::RecordCreate,
        Grant(ReadWrite),
        ANY_ROLE,
        Target,
        No,
    )
    .http("POST", "/v1/orgs/{org}/records"),
    rule(
        Op::RecordList,
        A::RecordList,
        Grant(Metadata),
        ANY_ROLE,
        Target,
        No,
    )
    .http("GET", "/v1/orgs/{org}/records"),
    rule(
        Op::RecordRead,
        A::RecordRead,
        Grant(Read),
        ANY_ROLE,
        Target,
        No,
    )
    .http("GET", "/v1/orgs/{org}/records/{id}"),
    rule(
        Op::RecordReveal,
        A::RecordReveal,
        Never,
        MANAGERS,
        Target,
        ForAdmins,
    )
    .http("GET", "/v1/orgs/{org}/records/{id}?reveal=true"),
    rule(
        Op::RecordDelete,
        A::RecordDelete,
        Grant(ReadWrite),
        ANY_ROLE,
        Target,
        No,
    )
    .http("DELETE", "/v1/orgs/{org}/records/{id}")
    .edits(),
    rule(
        Op::RecordHardDelete,
        A::RecordHardDelete,
        Grant(ReadWrite),
        MANAGERS,
        Target,
        ForAdmins,
    )
    .http("DELETE", "/v1/orgs/{org}/records/{id}?hard=true")
    .edits(),
    rule(
        Op::RecordRestore,
        A::RecordRestore,
        Grant(ReadWrite),
        ANY_ROLE,
        Target,
        No,
    )
    .http("POST", "/v1/orgs/{org}/records/{id}/restore")
    .edits(),
    rule(
        Op::RecordArchiveRestore,
        A::RecordArchiveRestore,
        Grant(ReadWrite),
        MANAGERS,
        Target,
        ForAdmins,
    )
    .http("POST", "/v1/orgs/{org}/records/{id}/archive-restore"),
    rule(
        Op::FileUpload,
        A::FileUpload,
        Grant(ReadWrite),
        ANY_ROLE,
        Target,
        No,
    )
    .http("POST", "/v1/orgs/{org}/files"),
    rule(
        Op::FileDownload,
        A::FileDownload,
        Grant(Read),
        ANY_ROLE,
        Target,
        No,
    )
    .http("GET", "/v1/orgs/{org}/records/{id}/file"),
    rule(
        Op::CategoryDeleteAll,
        A::CategoryDeleteAll,
        Never,
        MANAGERS,
        Target,
        ForAdmins,
    )
    .http("POST", "/v1/orgs/{org}/categories/{category}/delete-all")
    .edits(),
    rule(
        Op::RetentionRead,
        A::RetentionRead,
        Grant(Metadata),
        ANY_ROLE,
        CategoryRule::No,
        No,
    )
    .http("GET", "/v1/orgs/{org}/retention")
    .console("GET", "/console/{org}/retention"),
    rule(
        Op::UsageRead,
        A::UsageRead,
        Grant(Metadata),
        EVIDENCE,
        CategoryRule::No,
        No,
    )
    .http("GET", "/v1/orgs/{org}/usage"),
    rule(
        Op::RetentionSet,
        A::RetentionSet,
        Never,
        MANAGERS,
        Target,
        ForAdmins,
    )
    .http("PUT", "/v1/orgs/{org}/retention/{category}")
    .console("POST", "/console/{org}/retention/{category}"),
    rule(
        Op::HoldCreate,
        A::HoldCreate,
        Never,
        MANAGERS,
        CategoryRule::No,
        ForAdmins,
    )
    .http("POST", "/v1/orgs/{org}/holds")
    .console("POST", "/console/{org}/holds")
    .while_terminating(),
    rule(
        Op::HoldList,
        A::HoldRead,
        Grant(Metadata),
        EVIDENCE,
        CategoryRule::No,
        No,
    )
    .http("GET", "/v1/orgs/{org}/holds")
    .console("GET", "/console/{org}/holds")
    .while_terminating(),
    rule(
        Op::HoldRelease,
        A::HoldRelease,
        Never,
        MANAGERS,
        CategoryRule::No,
        ForAdmins,
    )
    .http("DELETE", "/v1/orgs/{org}/holds/{id}")
    .console("POST", "/console/{org}/holds/{id}/release")
    .while_terminating(),
    rule(
        Op::DeletionLogRead,
        A::DeletionLogRead,
        Grant(Metadata),
        EVIDENCE,
        CategoryRule::No,
        No,
    )
    .http("GET", "/v1/orgs/{org}/deletion-log")
    .console("GET", "/console/{org}/deletion-log")
    .while_terminating(),
    rule(
        Op::LifecycleOverdue,
        A::LifecycleOverdue,
        Grant(Metadata),
        EVIDENCE,
        CategoryRule::No,
        No,
    )
    .http("GET", "/v1/orgs/{org}/lifecycle/overdue")
    .cli("sweep --report")
    .while_terminating(),
    rule(
        Op::SecurityEventList,
        A::SecurityEventList,
        Grant(Read),
        EVIDENCE,
        Target,
        No,
    )
    .http("GET", "/v1/orgs/{org}/security-events")
    .console("GET", "/console/{org}/security-events"),
    rule(
        Op::DeploymentSecurityEventList,
        A::SecurityEventListDeployment,
        Always,
        &[],
        CategoryRule::No,
        No,
    )
    .http("GET", "/v1/security-events"),
    rule(
        Op::SubjectReference,
        A::SubjectReference,
        Grant(Metadata),
        EVIDENCE,
        CategoryRule::No,
        No,
    )
    .http("GET", "/v1/orgs/{org}/subjects/{subject}/reference"),
    rule(
        Op::SubjectContact,
        A::SubjectContact,
        Never,
        REQUESTERS,
        CategoryRule::No,
        ForAdmins,
    )
    .http("PUT", "/v1/orgs/{org}/subjects/{subject}/contact"),
    rule(
        Op::NotificationList,
        A::NotificationList,
        Always,
        &[],
        CategoryRule::No,
        No,
    )
    .http("GET", "/v1/notifications"),
    rule(
        Op::IncidentCreate,
        A::IncidentCreate,
        Always,
        &[],
        CategoryRule::No,
        No,
    )
    .http("POST", "/v1/incidents"),
    rule(
        Op::IncidentList,
        A::IncidentList,
        Always,
        &[],
        CategoryRule::No,
        No,
    )
    .http("GET", "/v1/incidents")
    .console("GET", "/console/incidents"),
    rule(
        Op::IncidentRead,
        A::IncidentRead,
        Always,
        &[],
        CategoryRule::No,
        No,
    )
    .http("GET", "/v1/incidents/{id}")
    .console("GET", "/console/incidents/{id}"),
    rule(
        Op::IncidentStatus,
        A::IncidentStatus,
        Always,
        &[],
        CategoryRule::No,
        No,
    )
    .http("POST", "/v1/incidents/{id}/status"),
    rule(
        Op::IncidentAffected,
        A::IncidentAffected,
        Always,
        &[],
        CategoryRule::No,
        No,
    )
    .http("GET", "/v1/incidents/{id}/affected"),
    rule(
        Op::IncidentReport,
        A::IncidentReport,
        Always,
        &[],
        CategoryRule::No,
        No,
    )
    .http("GET", "/v1/incidents/{id}/report"),
    rule(
        Op::IncidentNotify,
        A::IncidentNotify,
        Always,
        &[],
        CategoryRule::No,
        No,
    )
    .http("POST", "/v1/incidents/{id}/notifications"),
    rule(
        Op::AuditEvents,
        A::AuditRead,
        Always,
        EVIDENCE,
        CategoryRule::No,
        No,
    )
    .http("GET", "/v1/audit/events")
    .console("GET", "/console/{org}/audit")
    .while_terminating(),
    rule(
        Op::AuditCheckpoint,
        A::AuditCheckpoint,
        Always,
        ANY_ROLE,
        CategoryRule::No,
        No,
    )
    .http("GET", "/v1/audit/checkpoint")
    .cli("audit checkpoint"),
    rule(
        Op::AuditProof,
        A::AuditProof,
        Always,
        EVIDENCE,
        CategoryRule::No,
        No,
    )
    .http("GET", "/v1/audit/proof/{index}")
    .cli("audit proof")
    .while_terminating(),
    rule(
        Op::AuditConsistency,
        A::AuditConsistency,
        Always,
        ANY_ROLE,
        CategoryRule::No,
        No,
    )
    .http("GET", "/v1/audit/consistency")
    .cli("audit consistency"),
    rule(
        Op::SigningKey,
        A::AuditSigningKey,
        Always,
        ANY_ROLE,
        CategoryRule::No,
        No,
    )
    .http("GET", "/v1/signing-key")
    .cli("audit key"),
    rule(Op::Scan, A::PiiScan, Never, ANY_ROLE, CategoryRule::No, No)
        .http("POST", "/v1/scan")
        .cli("scan"),
    rule(
        Op::RequestCreate,
        A::RequestCreate,
        Never,
        REQUESTERS,
        CategoryRule::No,
        ForAdmins,
    )
    .http("POST", "/v1/orgs/{org}/requests")
    .console("POST", "/console/{org}/requests")
    .cli("dsr erase"),
    rule(
        Op::RequestList,
        A::RequestList,
        Grant(Metadata),
        REQUEST_READERS,
        CategoryRule::No,
        No,
    )
    .http("GET", "/v1/orgs/{org}/requests")
    .console("GET", "/console/{org}/requests")
    .cli("dsr list"),
    rule(
        Op::RequestRead,
        A::RequestRead,
        Grant(Metadata),
        REQUEST_READERS,
        CategoryRule::No,
        No,
    )
    .http("GET", "/v1/orgs/{org}/requests/{id}")
    .console("GET", "/console/{org}/requests/{id}")
    .cli("dsr show"),
    rule(
        Op::RequestExtend,
        A::RequestExtend,
        Never,
        MANAGERS,
        CategoryRule::No,
        ForAdmins,
    )
    .http("POST", "/v1/orgs/{org}/requests/{id}/extend")
    .console("POST", "/console/{org}/requests/{id}/extend")
    .cli("dsr extend"),
    rule(
        Op::RequestReject,
        A::RequestReject,
        Never,
        MANAGERS,
        CategoryRule::No,
        ForAdmins,
    )
    .http("POST", "/v1/orgs/{org}/requests/{id}/reject")
    .console("POST", "/console/{org}/requests/{id}/reject"),
    rule(
        Op::RequestExport,
        A::RequestExport,
        Never,
        REQUESTERS,
        Target,
        ForAdmins,
    )
    .http("GET", "/v1/orgs/{org}/requests/{id}/export")
    .cli("dsr export"),
    rule(
        Op::RequestCertificate,
        A::CertificateRead,
        Grant(Metadata),
        REQUEST_READERS,
        CategoryRule::No,
        No,
    )
    .http("GET", "/v1/orgs/{org}/requests/{id}/certificate")
    .console("GET", "/console/{org}/requests/{id}/certificate")
    .while_terminating(),
    rule(
        Op::RequestBulkErase,
        A::RequestBulk,
        Never,
        MANAGERS,
        CategoryRule::No,
        ForAdmins,
    )
    .http("POST", "/v1/orgs/{org}/requests/bulk")
    .console("POST", "/console/{org}/requests/bulk")
    .cli("dsr erase --csv"),
    rule(
        Op::PrivacyCenterRead,
        A::PrivacyRead,
        Never,
        &[],
        CategoryRule::No,
        No,
    )
    .http("GET", "/privacy/{org}")
    .subject(),
    rule(
        Op::PrivacyRequestCreate,
        A::PrivacyRequest,
        Never,
        &[],
        CategoryRule::No,
        No,
    )
    .http("POST", "/privacy/{org}/requests")
    .subject(),
    rule(
        Op::PrivacyExport,
        A::PrivacyExport,
        Never,
        &[],
        CategoryRule::No,
        No,
    )
    .http("GET", "/privacy/{org}/requests/{id}/export")
    .subject(),
    rule(
        Op::PrivacyCertificate,
        A::PrivacyCertificate,
        Never,
        &[],
        CategoryRule::No,
        No,
    )
    .http("GET", "/privacy/{org}/requests/{id}/certificate")
    .subject(),
    rule(
        Op::LlmChatCompletions,
        A::LlmChatCompletions,
        Never,
        LLM_USERS,
        CategoryRule::No,
        No,
    )
    .http("POST", "/llm/{provider}/v1/chat/completions"),
    rule(
        Op::LlmResponses,
        A::LlmResponses,
        Never,
        LLM_USERS,
        CategoryRule::No,
        No,
    )
    .http("POST", "/llm/{provider}/v1/responses"),
    rule(
        Op::LlmMessages,
        A::LlmMessages,
        Never,
        LLM_USERS,
        CategoryRule::No,
        No,
    )
    .http("POST", "/llm/{provider}/v1/messages"),
    rule(
        Op::LlmModels,
        A::LlmModels,
        Never,
        LLM_USERS,
        CategoryRule::No,
        No,
    )
    .http("GET", "/llm/{provider}/v1/models"),
    rule(
        Op::Sweep,
        A::LifecycleSweep,
        Never,
        &[],
        CategoryRule::No,
        No,
    )
    .cli("sweep"),
    rule(
        Op::KeysRotate,
        A::KeyRotate,
        Never,
        &[],
        CategoryRule::No,
        No,
    )
    .cli("keys rotate"),
    rule(
        Op::AuditVerify,
        A::AuditVerify,
        Never,
        &[],
        CategoryRule::No,
        No,
    )
    .cli("audit verify"),
    rule(
        Op::AuditExport,
        A::AuditExport,
        Never,
        &[],
        CategoryRule::No,
        No,
    )
    .cli("audit export"),
];
