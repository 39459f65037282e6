//! Authorization: one table naming every operation Custos performs for a caller, and one
//! function that decides from it.
//!
//! Every HTTP route, CLI command and core call that acts for a caller is an [`Operation`]; its
//! [`Rule`] says who may perform it (the deployment's operators, and under which condition;
//! member roles), whether the
//! target category's access rule applies (to bulk operations and overrides too), whether it
//! needs a caller authenticated with a second factor, and whether it still works on an org
//! being terminated. [`decide`] is the only place that turns a rule and a caller into an
//! answer; services ask it through `Custos::authorize` and never decide on their own.

use custos_audit::AuditAction;
use custos_policy::{Category, Role};

use crate::{CoreError, Principal};

/// When an operation needs a caller authenticated with a second factor (a TOTP session or an
/// identity-provider token whose `amr` names one). An API key alone never is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MfaRule {
    /// Never required by the operation itself (a category rule or the member's own
    /// `mfa` requirement may still ask for it).
    No,
    /// Required of members holding the `owner` or `admin` role when the org's setting
    /// `require_mfa_for_admins` is on.
    ForAdmins,
    /// Enrolling a TOTP factor: required (or a one-time enrollment code an owner or admin
    /// issued) when the member already has a factor, or must use one (`mfa`, or an owner or
    /// admin while the org requires it) unless it is an owner or admin and no owner or admin
    /// of the org has a factor yet (so the first one can start). Otherwise the API key alone
    /// enrolls: a stolen key must not become both factors.
    Enrollment,
    /// Always, of every member (approving or denying an operator's support access).
    Always,
}

/// What a support grant lets an operator do inside an org, from least to most.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum GrantScope {
    /// Ids, counts, times, states: listings without content.
    Metadata,
    /// Also content reads (records, files) in the granted categories.
    Read,
    /// Also writes (create, delete, restore) in the granted categories, never in a category
    /// with `editable = false`.
    ReadWrite,
}

impl GrantScope {
    /// Every scope, narrowest first.
    pub const ALL: [GrantScope; 3] = [
        GrantScope::Metadata,
        GrantScope::Read,
        GrantScope::ReadWrite,
    ];

    /// The scope's name in the API (`metadata`, `read`, `read_write`).
    pub fn as_str(self) -> &'static str {
        match self {
            GrantScope::Metadata => "metadata",
            GrantScope::Read => "read",
            GrantScope::ReadWrite => "read_write",
        }
    }

    /// The scope named `name`, if it is one.
    pub fn parse(name: &str) -> Option<GrantScope> {
        GrantScope::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

/// When the deployment's operators (the bootstrap admin token, or people signed in through
/// the deployment's identity provider) may perform an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperatorRule {
    /// Never, not even under a support grant: the org's own settings, members, credentials
    /// and decisions stay the org's.
    Never,
    /// Without a grant: managing the deployment and its orgs, deployment-wide audit material,
    /// filing support requests.
    Always,
    /// Only in an org that has no owner yet (creating its first owner).
    OwnerlessOrg,
    /// Only under an active support grant of the org whose scope is at least this one.
    Grant(GrantScope),
}

/// An approved, active support grant an operator named on its request, as [`decide`] needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveGrant {
    /// The grant's id.
    pub id: String,
    /// What it allows.
    pub scope: GrantScope,
    /// The categories it is limited to; `None`: every category.
    pub categories: Option<Vec<String>>,
}

/// Which categories' access rules apply to an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CategoryRule {
    /// None: the operation touches no category's data.
    No,
    /// The one category the operation names or touches.
    Target,
    /// Every category of the policy (the operation reaches all of the org's data).
    All,
}

/// Who may perform an operation, and under which conditions.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    /// The operation.
    pub op: Operation,
    /// The audit action a refusal is recorded under.
    pub action: AuditAction,
    /// When the deployment's operators may perform it.
    pub operator: OperatorRule,
    /// Member roles that may perform it (any one suffices); empty: no member.
    pub roles: &'static [Role],
    /// Which category access rules apply.
    pub category: CategoryRule,
    /// When a second factor is needed.
    pub mfa: MfaRule,
    /// Whether it is still allowed on an org being terminated (evidence and holds only).
    pub while_terminating: bool,
    /// Whether it changes or deletes stored records, which no caller may do in a category
    /// with `editable = false` (only retention removes those).
    pub edits: bool,
    /// The HTTP route, as `(method, path)`, if it has one.
    pub route: Option<(&'static str, &'static str)>,
    /// The CLI command, if it has one.
    pub cli: Option<&'static str>,
    /// The console page (`GET`) that shows it, or the console form (`POST`) that does it,
    /// as `(method, path)`, if the console offers it. The page calls the same function the
    /// HTTP route does, so it is authorized by this same row.
    pub console: Option<(&'static str, &'static str)>,
    /// Whether a data subject in the privacy center may perform it (on their own requests;
    /// nothing else is open to them).
    pub subject: bool,
}

macro_rules! operations {
    ($($(#[$doc:meta])* $name:ident,)*) => {
        /// Every operation Custos performs for a caller.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Operation { $($(#[$doc])* $name,)* }

        impl Operation {
            /// Every operation, in table order.
            pub const ALL: &'static [Operation] = &[$(Operation::$name,)*];
        }
    };
}

operations! {
    /// Create an org.
    OrgCreate,
    /// List orgs (members see their own).
    OrgList,
    /// Read an org.
    OrgRead,
    /// Terminate an org.
    OrgTerminate,
    /// Suspend an org (its members are refused until it is resumed).
    OrgSuspend,
    /// Resume a suspended org.
    OrgResume,
    /// Read the org's settings.
    SettingsRead,
    /// Change the org's settings.
    SettingsUpdate,
    /// Add a member.
    MemberCreate,
    /// List members.
    MemberList,
    /// Change a member's name, roles, groups or MFA requirement.
    MemberUpdate,
    /// Remove a member (its keys and sessions stop working).
    MemberRemove,
    /// Read the org's access review.
    AccessReviewRead,
    /// Record an access review.
    AccessReviewRecord,
    /// Create the deployment's first operator (the bootstrap token, once).
    OperatorCreate,
    /// List the deployment's operators.
    OperatorList,
    /// File a support request (an operator asks the org for access).
    SupportRequestCreate,
    /// List support requests (an operator sees the ones it filed).
    SupportRequestList,
    /// Approve a support request: the operator's grant is active for its duration.
    SupportRequestApprove,
    /// Deny a support request.
    SupportRequestDeny,
    /// Revoke an active grant at once.
    SupportRequestRevoke,
    /// List every access made under a grant, each with its inclusion proof.
    SupportRequestAccesses,
    /// Issue a member a new API key (the old one stops working).
    MemberKeyRotate,
    /// Revoke a member's API key without issuing a new one.
    MemberKeyRevoke,
    /// Enroll the calling member's TOTP second factor.
    TotpEnroll,
    /// Open a short-lived session with the calling member's API key and a TOTP code.
    SessionOpen,
    /// Issue a member a one-time code to enroll its TOTP factor with.
    TotpEnrollmentCode,
    /// Clear a member's lockout after too many wrong TOTP codes.
    TotpUnlock,
    /// Make a personal access token for the calling person (with a second factor).
    PersonalTokenCreate,
    /// List the calling person's personal access tokens.
    PersonalTokenList,
    /// Revoke one of the calling person's personal access tokens.
    PersonalTokenRevoke,
    /// Store a record.
    RecordCreate,
    /// List records.
    RecordList,
    /// Read a record.
    RecordRead,
    /// Read a record with its `tokenize` pseudonyms reversed.
    RecordReveal,
    /// Soft-delete a record.
    RecordDelete,
    /// Hard-delete a record.
    RecordHardDelete,
    /// Restore a soft-deleted record.
    RecordRestore,
    /// Open an archived record for the restore window.
    RecordArchiveRestore,
    /// Upload a file.
    FileUpload,
    /// Download a file.
    FileDownload,
    /// Hard-delete every record of a category.
    CategoryDeleteAll,
    /// Read the org's retention per category.
    RetentionRead,
    /// Read the org's records and storage per category and tier, and what is due within a
    /// week.
    UsageRead,
    /// Set the org's retention override for a category.
    RetentionSet,
    /// Place a legal hold.
    HoldCreate,
    /// List legal holds (with their reasons).
    HoldList,
    /// Release a legal hold.
    HoldRelease,
    /// Read the deletion log.
    DeletionLogRead,
    /// Read the SLA report of overdue records.
    LifecycleOverdue,
    /// List an org's security events.
    SecurityEventList,
    /// List the deployment's own security events (operators).
    DeploymentSecurityEventList,
    /// Look up a data subject's keyed reference.
    SubjectReference,
    /// Set or remove a data subject's contact (an e-mail address, sealed under the subject's
    /// key) for notices.
    SubjectContact,
    /// List the outbox's notifications and their delivery state (operators).
    NotificationList,
    /// Open an incident (operators).
    IncidentCreate,
    /// List incidents (operators).
    IncidentList,
    /// Read an incident with its clocks and timeline (operators).
    IncidentRead,
    /// Move an incident's status forward (operators).
    IncidentStatus,
    /// Compute the data subjects an incident affected (operators).
    IncidentAffected,
    /// Produce an incident's report with its audit evidence (operators).
    IncidentReport,
    /// Tell the orgs an incident affected, and through their webhooks each affected subject
    /// (operators).
    IncidentNotify,
    /// Query audit events.
    AuditEvents,
    /// Read the latest signed checkpoint.
    AuditCheckpoint,
    /// Read an inclusion proof.
    AuditProof,
    /// Read a consistency proof.
    AuditConsistency,
    /// Read the deployment's signing key.
    SigningKey,
    /// Scan text for PII.
    Scan,
    /// File a data subject request (an erasure runs at once).
    RequestCreate,
    /// List data subject requests.
    RequestList,
    /// Read a data subject request.
    RequestRead,
    /// Extend a data subject request's deadline, once.
    RequestExtend,
    /// Reject a data subject request, with a reason.
    RequestReject,
    /// Download (generating it if needed) the export of an access or portability request.
    RequestExport,
    /// Read the certificate of deletion of an erasure request.
    RequestCertificate,
    /// File a bulk erasure (a CSV of subjects).
    RequestBulkErase,
    /// Open the privacy center: the subject's own requests (data subjects only).
    PrivacyCenterRead,
    /// File an access or erasure request for oneself in the privacy center (data subjects
    /// only).
    PrivacyRequestCreate,
    /// Download the export of one's own request in the privacy center (data subjects only).
    PrivacyExport,
    /// Download the certificate of one's own erasure in the privacy center (data subjects
    /// only).
    PrivacyCertificate,
    /// Send an OpenAI Chat Completions call through the LLM gateway.
    LlmChatCompletions,
    /// Send an OpenAI Responses call through the LLM gateway.
    LlmResponses,
    /// Send an Anthropic Messages call through the LLM gateway.
    LlmMessages,
    /// List the models the org may use through an LLM gateway provider.
    LlmModels,
    /// Run the lifecycle sweep (system only: the CLI and the scheduler).
    Sweep,
    /// Rotate the root or an org key (system only: the CLI).
    KeysRotate,
    /// Verify the whole audit log (system only: the CLI).
    AuditVerify,
    /// Export the audit log (system only: the CLI).
    AuditExport,
}

#[path = "authz_table.rs"]
mod table;
pub use table::TABLE;
use table::{ANY_ROLE, MANAGERS};

impl Operation {
    /// This operation's row of [`TABLE`].
    pub fn rule(self) -> &'static Rule {
        // TABLE is in ALL order (a unit test checks it), so the discriminant indexes it.
        &TABLE[self as usize]
    }
}

/// What [`decide`] needs to know about the caller's org and the calling member.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// The org has a member holding `owner` (operators then act in it only under a grant).
    pub has_owner: bool,
    /// The active support grant the calling operator named, checked against the org.
    pub grant: Option<ActiveGrant>,
    /// The org is being (or was) terminated.
    pub terminating: bool,
    /// An operator suspended the org.
    pub suspended: bool,
    /// The org's `require_mfa_for_admins` setting.
    pub require_mfa_for_admins: bool,
    /// The calling member has a second factor enrolled.
    pub factor_enrolled: bool,
    /// No owner or admin of the org has a second factor enrolled (enrollment only).
    pub no_manager_factor: bool,
    /// The caller presented its valid, unexpired enrollment code (enrollment only).
    pub enrollment_code: bool,
    /// The caller is a `service` member producing or downloading the export of a request it
    /// filed itself (an app handing its user their own data): the `exports` category's rule
    /// is met. Set only by the request export, never from a request's input.
    pub own_export: bool,
}

/// The one authorization decision: may `principal` perform `rule`'s operation in an org
/// with `org` facts, on `categories` (the target category, or every category for
/// [`CategoryRule::All`]; ignored when the rule applies none)? The system is always allowed.
pub fn decide(
    rule: &Rule,
    principal: &Principal,
    facts: &Facts,
    categories: &[&Category],
) -> Result<(), CoreError> {
    let terminated = || Err(CoreError::OrgTerminated("this org".into()));
    match principal {
        Principal::System => Ok(()),
        // A terminating org's members are revoked: what is still open on it (evidence,
        // holds, certificates) is the operator's to do, without a grant nobody could approve.
        Principal::Admin | Principal::Operator { .. }
            if facts.terminating && rule.while_terminating =>
        {
            Ok(())
        }
        // What the operator may not do at all is refused as such first; what it may do, a
        // terminating org still refuses.
        Principal::Admin | Principal::Operator { .. } => {
            operator_check(rule, facts, categories)?;
            if facts.terminating {
                return terminated();
            }
            Ok(())
        }
        Principal::Subject(_) if !rule.subject => Err(CoreError::Forbidden(format!(
            "`{}` is not open to data subjects; the privacy center lets them file and follow \
             their own requests",
            rule.action
        ))),
        Principal::Subject(_) if facts.terminating => terminated(),
        Principal::Subject(_) if facts.suspended => Err(CoreError::OrgSuspended("this org".into())),
        Principal::Subject(_) => Ok(()),
        Principal::Member { .. } if facts.terminating && !rule.while_terminating => terminated(),
        Principal::Member { member, auth, .. } => {
            let has = |roles: &[Role]| {
                roles
                    .iter()
                    .any(|r| member.roles.iter().any(|m| m == r.as_str()))
            };
            if !has(rule.roles) {
                return Err(CoreError::Forbidden(format!(
                    "`{}` needs one of the roles {}; the member has {}",
                    rule.action,
                    role_list(rule.roles),
                    if member.roles.is_empty() {
                        "none".to_string()
                    } else {
                        member.roles.join(", ")
                    }
                )));
            }
            // A suspended org's members may still see its status (and so why they are refused).
            if facts.suspended && rule.op != Operation::OrgRead {
                return Err(CoreError::OrgSuspended("this org".into()));
            }
            let second_factor = auth.second_factor();
            // Opening a session is how a second factor is proved, so it cannot need one.
            if !second_factor && rule.op != Operation::SessionOpen {
                let manager = has(MANAGERS);
                let must_use = member.mfa || (facts.require_mfa_for_admins && manager);
                let needs = match rule.mfa {
                    MfaRule::No => member.mfa,
                    MfaRule::ForAdmins => must_use,
                    MfaRule::Always => true,
                    MfaRule::Enrollment => {
                        let first_manager = manager && facts.no_manager_factor;
                        let needs = facts.factor_enrolled || (must_use && !first_manager);
                        if needs && !facts.enrollment_code {
                            return Err(CoreError::MfaRequired(format!(
                                "`{}` without a valid enrollment code (an owner or admin \
                                 issues one: POST /v1/orgs/{{org}}/members/{{id}}/totp-enrollment)",
                                rule.action
                            )));
                        }
                        false
                    }
                };
                if needs {
                    return Err(CoreError::MfaRequired(format!("`{}`", rule.action)));
                }
            }
            if rule.category != CategoryRule::No {
                for category in categories {
                    let own_export = facts.own_export
                        && category.name == crate::export::EXPORTS_CATEGORY
                        && member.roles.iter().any(|r| r == Role::Service.as_str());
                    if own_export {
                        continue;
                    }
                    category_check(category, member, second_factor, rule.edits)?;
                }
            }
            Ok(())
        }
    }
}

/// The operators' column of `rule`: always, never, only in an ownerless org, or under an
/// active grant of a wide enough scope that covers every category touched (and never edits
/// an `editable = false` one).
fn operator_check(rule: &Rule, facts: &Facts, categories: &[&Category]) -> Result<(), CoreError> {
    let needed = match rule.operator {
        OperatorRule::Always => return Ok(()),
        OperatorRule::OwnerlessOrg if !facts.has_owner => return Ok(()),
        OperatorRule::OwnerlessOrg => {
            return Err(CoreError::Forbidden(format!(
                "`{}`: the org has an owner, so operators create no members in it (only its \
                 first owner, while it has none); its owners and admins add members",
                rule.action
            )))
        }
        OperatorRule::Never => {
            return Err(CoreError::Forbidden(format!(
                "`{}` is not open to operators, with or without a support grant: it is the \
                 org's own to do",
                rule.action
            )))
        }
        OperatorRule::Grant(needed) => needed,
    };
    let Some(grant) = &facts.grant else {
        return Err(CoreError::GrantRequired(format!(
            "`{}` inside an org is open to operators only under an active support grant the \
             org approved, named with the X-Custos-Grant header (ask for one with \
             POST /v1/orgs/{{org}}/support-requests)",
            rule.action
        )));
    };
    if grant.scope < needed {
        return Err(CoreError::GrantRequired(format!(
            "`{}` needs a support grant of scope `{}` or wider; grant {} has `{}`",
            rule.action,
            needed.as_str(),
            grant.id,
            grant.scope.as_str()
        )));
    }
    if rule.category != CategoryRule::No {
        for category in categories {
            if rule.edits && !category.editable {
                return Err(CoreError::Forbidden(format!(
                    "category `{}` is append-only (editable = false): no support grant lets \
                     an operator change or delete its records",
                    category.name
                )));
            }
            let granted = grant
                .categories
                .as_ref()
                .is_none_or(|names| names.iter().any(|n| n == &category.name));
            if !granted {
                return Err(CoreError::Forbidden(format!(
                    "category `{}` is not among the categories of support grant {}",
                    category.name, grant.id
                )));
            }
        }
    }
    Ok(())
}

/// A category's access rule (roles, groups, MFA) against a member.
fn category_check(
    category: &Category,
    member: &custos_store::Member,
    second_factor: bool,
    edits: bool,
) -> Result<(), CoreError> {
    if edits && !category.editable {
        return Err(CoreError::Forbidden(format!(
            "category `{}` is append-only (editable = false): no caller changes or deletes \
             its records; only its retention removes them",
            category.name
        )));
    }
    let rule = &category.access;
    if !rule
        .roles
        .iter()
        .any(|role| member.roles.iter().any(|r| r == role.as_str()))
    {
        return Err(CoreError::Forbidden(format!(
            "category `{}` is open to roles {}; the member has {}",
            category.name,
            role_list(&rule.roles),
            if member.roles.is_empty() {
                "none".to_string()
            } else {
                member.roles.join(", ")
            }
        )));
    }
    if !rule.groups.is_empty() && !rule.groups.iter().any(|g| member.groups.contains(g)) {
        return Err(CoreError::Forbidden(format!(
            "category `{}` is open to groups {}; the member is in none of them",
            category.name,
            rule.groups.join(", ")
        )));
    }
    if rule.require_mfa && !second_factor {
        return Err(CoreError::MfaRequired(format!(
            "category `{}`",
            category.name
        )));
    }
    Ok(())
}

fn role_list(roles: &[Role]) -> String {
    roles
        .iter()
        .map(|r| r.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The authorization table as a Markdown table (rendered in the README).
pub fn table_markdown() -> String {
    let mut out = String::from(
        "| operation | route | CLI | console | operators | member roles | data subject | category rule | second factor | while terminating |\n\
         | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for r in TABLE {
        let route = r
            .route
            .map(|(m, p)| format!("`{m} {p}`"))
            .unwrap_or_else(|| "—".into());
        let cli = r
            .cli
            .map(|c| format!("`custos {c}`"))
            .unwrap_or_else(|| "—".into());
        let console = r
            .console
            .map(|(m, p)| format!("`{m} {p}`"))
            .unwrap_or_else(|| "—".into());
        let roles = if r.roles.is_empty() {
            "—".to_string()
        } else if r.roles == ANY_ROLE {
            "any".to_string()
        } else {
            role_list(r.roles)
        };
        let category = match (r.category, r.edits) {
            (CategoryRule::No, _) => "—",
            (CategoryRule::Target, false) => "target category",
            (CategoryRule::Target, true) => "target category (editable ones only)",
            (CategoryRule::All, _) => "every category",
        };
        let mfa = match r.mfa {
            MfaRule::No => "—",
            MfaRule::ForAdmins => "owners/admins if org requires",
            MfaRule::Always => "always",
            MfaRule::Enrollment => {
                "if one is enrolled or must be (else an enrollment code, see README)"
            }
        };
        out.push_str(&format!(
            "| `{}` | {route} | {cli} | {console} | {} | {roles} | {} | {category} | {mfa} | {} |\n",
            r.action,
            match r.operator {
                OperatorRule::Always => "yes".to_string(),
                OperatorRule::Never => "no".to_string(),
                OperatorRule::OwnerlessOrg => "first owner of an ownerless org".to_string(),
                OperatorRule::Grant(scope) => format!("under a `{}` grant", scope.as_str()),
            },
            if r.subject { "own requests" } else { "—" },
            if r.while_terminating { "yes" } else { "no" },
        ));
    }
    out
}

#[cfg(test)]
#[path = "authz_tests.rs"]
mod tests;
