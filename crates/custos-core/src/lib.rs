//! Custos core services: what happens between an authenticated request and the store.
//!
//! What it is for: orgs, members and API keys; records and files (authorize against the
//! category's access rules → apply the policy → seal under the subject's or org's key → store
//! with due times, in one transaction with the audit event); retention overrides; legal holds.
//! All time comes from an injectable [`Clock`].
//!
//! What it is not: HTTP. Handlers in `custos-api` and the CLI call these plain async functions,
//! which are tested without a server.

mod access;
mod access_review;
mod affected;
mod alert_rules;
pub mod alerting;
mod audit;
mod auth_failures;
pub mod authz;
mod certificate;
mod clock;
mod console_sign_in;
mod dsr;
mod erasure;
mod error;
mod export;
mod files;
mod free_text;
pub mod idp;
pub mod incident_notices;
pub mod incident_report;
pub mod incidents;
mod keys;
mod lifecycle;
pub mod limits;
mod llm;
mod llm_calls;
mod members;
pub use members::SESSION_PREFIX;
mod operators;
mod org_channels;
pub use org_channels::{OrgChannels, OrgWebhook};
mod orgs;
mod personal_tokens;
pub mod privacy_center;
pub mod privacy_links;
pub use personal_tokens::{
    CreatedPersonalToken, NewPersonalToken, PersonalTokenView, PERSONAL_TOKEN_PREFIX,
};
pub mod outbound;
pub mod outbox;
mod pii;
mod pii_stream;
mod pii_walk;
mod records;
pub mod request_notices;
mod sealed_text;
pub mod security_events;
mod settings;
pub mod sign_in;
mod sign_in_provider;
mod subject_contacts;
pub use subject_contacts::{ContactChange, ContactState};
mod support;
mod totp;
mod usage;
pub use usage::{CategoryUsageView, UsageView, DUE_WINDOW_DAYS, USAGE_MAX_AGE};

use std::sync::Arc;

use custos_audit::{Actor, AuditEvent, Outcome, Target};
use custos_crypto::KeyVault;
use custos_policy::Policy;
use custos_store::{Member, Objects, OrgScope, RegionStores, Store, Stores};
use sha2::{Digest, Sha256};

pub use access_review::{AccessReview, RecordedReview, ReviewDecision, ReviewedMember};
pub use audit::{
    log_origin, AuditEntryView, AuditFailure, AuditPage, AuditSigner, AuditVerification,
    CheckpointView, ConsistencyProof, InclusionProof, SigningKeyView,
};
pub use auth_failures::{AuthFailure, FLUSH_AFTER as AUTH_FAILURE_FLUSH};
pub use clock::{Clock, ManualClock, SystemClock};
pub use console_sign_in::ConsoleSession;
pub use custos_export::{Format as ExportFormat, EXPORT_SCHEMA};
pub use custos_store::AuditFilter;
pub use dsr::{
    extended_due, request_due, BulkOutcome, NewRequest, RequestExtension, RequestPage,
    RequestQuery, RequestRejection, RequestView, MAX_BULK_SUBJECTS,
};
pub use error::CoreError;
pub use export::{export_format, EXPORTS_CATEGORY};
pub use files::{FileDownload, FileUpload};
pub use lifecycle::{
    due_step, is_held, purge_event_covers, purged_ids_digest, record_object_keys, removal_deadline,
    ActionKind, ArchiveRestore, DeletionView, OverdueRecord, SlaKind, SweepAction, SweepOptions,
    SweepSummary,
};
pub use llm::{LlmAdmission, LlmCallReport, LlmRefusal, LlmResult};
pub use llm_calls::PreparedCall;
pub use members::{CreatedMember, CreatedOwner, MemberChange, MemberView, NewMember, RotatedKey};
pub use operators::{IdentityInput, NewOperator, OperatorView};
pub use orgs::{CreatedOrg, HoldView, NewHold, NewOrg, NewOwner, OrgView, RetentionView};
pub use pii::{kinds_of, operator_for};
pub use records::{
    created_record_ids, CreatedRecord, NewRecord, RecordPage, RecordSummary, RecordView,
    MAX_BATCH_RECORDS,
};
pub use settings::{
    IdentityProvider, OrgSettings, SettingsChange, SupportAccess, DEFAULT_LLM_MAX_CONCURRENCY,
    DEFAULT_LLM_MAX_REQUEST_BYTES,
};
pub use support::{
    valid_grant_id, GrantAccess, Justification, NewSupportRequest, SupportAccesses,
    SupportApproval, SupportRequestView,
};
pub use totp::{
    EnrollmentCodeView, NewSession, SessionView, TotpEnrollment, TotpEnrollmentRequest,
};

/// Who is calling.
// One per request and never kept in bulk: boxing the member would cost an allocation per
// request to save a few hundred bytes on the stack.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Principal {
    /// The deployment's bootstrap administrator: manages orgs and their first members.
    Admin,
    /// A member of one org, through its API key (and, for a second factor, a session or an
    /// identity-provider token).
    Member {
        /// The member's org.
        scope: OrgScope,
        /// The member.
        member: Member,
        /// How the member proved who it is on this request.
        auth: Authentication,
    },
    /// An operator of the deployment, signed in through its identity provider (with a second
    /// factor): bound by the same rules as the bootstrap token, and named in the audit log.
    Operator {
        /// The operator's id.
        id: String,
        /// When its session ends however it is used.
        expires: jiff::Timestamp,
    },
    /// A data subject in the org's privacy center, through a session a link signed by the
    /// org's application opened: acts on its own requests only.
    Subject(privacy_links::LinkedSubject),
    /// Custos itself (CLI maintenance, scheduler).
    System,
}

impl Principal {
    /// Whether this is the deployment's operator: the bootstrap token or a signed-in operator
    /// (the authorization table's operator column applies).
    pub fn is_operator(&self) -> bool {
        matches!(self, Principal::Admin | Principal::Operator { .. })
    }
}

/// Where a request came from, for the audit events of its authentication.
#[derive(Debug, Clone, Default)]
pub struct RequestContext {
    /// Custos's own request id.
    pub request_id: Option<String>,
    /// The caller's own request id, if it sent a valid one.
    pub client_request_id: Option<String>,
    /// The caller's network address.
    pub source: Option<String>,
}

/// How a member proved who it is on one request. MFA is a property of this, never of the
/// member record: an API key alone never counts as a second factor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Authentication {
    /// Its API key alone.
    ApiKey,
    /// A session opened with its API key and a TOTP code, valid until `expires`.
    TotpSession {
        /// When the session stops working.
        expires: jiff::Timestamp,
    },
    /// Its API key plus the org's identity-provider token whose `amr` names a second factor.
    IdentityToken,
    /// A personal access token its person made (never a second factor).
    PersonalToken,
    /// A session opened by signing in through the org's identity provider.
    SignInSession {
        /// When the session stops working, however it is used.
        expires: jiff::Timestamp,
        /// Whether the provider's `amr`, or a TOTP code after sign-in, proved a second factor.
        second_factor: bool,
        /// The session token's hash (a TOTP step-up replaces this session).
        token_hash: [u8; 32],
    },
}

impl Authentication {
    /// Whether a second factor was proved.
    pub fn second_factor(&self) -> bool {
        match self {
            Authentication::ApiKey | Authentication::PersonalToken => false,
            Authentication::TotpSession { .. } | Authentication::IdentityToken => true,
            Authentication::SignInSession { second_factor, .. } => *second_factor,
        }
    }

    /// The name recorded in audit events (`api_key`, `totp_session`, `idp_token`).
    pub fn as_str(&self) -> &'static str {
        match self {
            Authentication::ApiKey => "api_key",
            Authentication::TotpSession { .. } => "totp_session",
            Authentication::IdentityToken => "idp_token",
            Authentication::SignInSession { .. } => "sign_in_session",
            Authentication::PersonalToken => "personal_token",
        }
    }
}

/// The caller of one operation: principal plus request correlation for the audit log.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Who.
    pub principal: Principal,
    /// Request id, if the call came over HTTP.
    pub request_id: Option<String>,
    /// The caller's own request id (`X-Request-Id`), validated by the HTTP layer, if sent.
    pub client_request_id: Option<String>,
    /// Network address of the caller, if any.
    pub source: Option<String>,
    /// The support grant an operator names for this request (`X-Custos-Grant`): checked
    /// against the org it acts in, and carried by every audit event of the request.
    pub grant: Option<String>,
}

impl Caller {
    /// A caller with no request context (CLI, tests).
    pub fn new(principal: Principal) -> Self {
        Caller {
            principal,
            request_id: None,
            client_request_id: None,
            source: None,
            grant: None,
        }
    }

    /// `principal` making the request of `context` (its ids and source address).
    pub fn in_context(principal: Principal, context: &RequestContext) -> Self {
        Caller {
            principal,
            request_id: context.request_id.clone(),
            client_request_id: context.client_request_id.clone(),
            source: context.source.clone(),
            grant: None,
        }
    }

    /// The same caller acting under support grant `id` (an operator's `X-Custos-Grant`).
    pub fn under_grant(mut self, id: impl Into<String>) -> Self {
        self.grant = Some(id.into());
        self
    }

    fn actor(&self) -> Actor {
        match &self.principal {
            Principal::Admin => Actor::Admin,
            Principal::Operator { id, .. } => Actor::Operator(id.clone()),
            Principal::Member { member, .. } => Actor::Member(member.id.clone()),
            Principal::Subject(linked) => Actor::Subject(linked.subject_ref.clone()),
            Principal::System => Actor::System,
        }
    }

    /// The actor as the audit log's indexed column names it (`admin`, `operator:<id>`,
    /// `system`, `member:<id>`, `subject:<reference>`).
    pub fn actor_name(&self) -> String {
        self.actor().name()
    }
}

/// SHA-256 of a bearer token: what is stored and compared, never the token.
pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// A fresh API key: `cus_` + 32 random bytes, base64url. Shown once, stored hashed.
pub fn generate_api_key() -> String {
    use base64::Engine;
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!(
        "cus_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// The Custos services, shared by the HTTP API, the CLI and the scheduler.
pub struct Custos {
    policy: Arc<Policy>,
    /// The stores: each org's by its home region, and the main ones.
    store: Arc<Stores>,
    vault: Arc<KeyVault>,
    clock: Arc<dyn Clock>,
    admin_token_hash: Option<[u8; 32]>,
    scanner: Arc<custos_pii::Scanner>,
    audit_signer: Option<Arc<audit::AuditSigner>>,
    mint_locks: pii::MintLocks,
    identity_keys: idp::JwksCache,
    faults: Option<FaultHook>,
    /// Failed attempts per network source (wrong TOTP codes, bad credentials).
    source_failures: Arc<limits::SourceLimiter>,
    /// Refused credentials: counters and their batched audit events.
    auth_failures: Arc<auth_failures::AuthFailures>,
    /// When each credential's use was last written (access reviews).
    last_use: Arc<access_review::LastUse>,
    /// Forwarded gateway calls' events, appended in groups.
    llm_calls: llm_calls::CallEvents,
    /// `serve --break-glass`: the bootstrap token works even after operators exist.
    break_glass: bool,
    /// An operator was seen to exist (the bootstrap token is then retired; never unset).
    operators_exist: std::sync::atomic::AtomicBool,
    /// Identity providers' discovery documents and keys, and sign-in refusal counters.
    sign_ins: Arc<sign_in_provider::SignIns>,
    /// The deployment's notification channels (`serve` opens them); `None`: nothing is
    /// delivered from this process.
    channels: Option<outbox::Channels>,
    /// Each org's usage figures, recomputed when older than [`usage::USAGE_MAX_AGE`].
    usage_cache: usage::UsageCache,
}

/// A test hook called at each named point of a long, resumable operation (an erasure);
/// returning true makes the operation stop there with an error, as if the process had been
/// killed at that point.
pub type FaultHook = Arc<dyn Fn(&'static str) -> bool + Send + Sync>;

impl std::fmt::Debug for Custos {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Custos")
            .field("store", &self.store.backend())
            .finish_non_exhaustive()
    }
}

/// How long [`Custos::readiness`] waits for each service.
pub const READINESS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// What [`Custos::readiness`] found, per service.
#[derive(Debug, Clone)]
pub struct Readiness {
    /// The database.
    pub database: Result<(), String>,
    /// The object store.
    pub objects: Result<(), String>,
    /// The key store and its KMS.
    pub keys: Result<(), String>,
}

impl Custos {
    /// Assembles the services.
    pub fn new(
        policy: Arc<Policy>,
        store: Arc<dyn Store>,
        objects: Objects,
        vault: Arc<KeyVault>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let key_source = idp::HttpKeySource::new(policy.network.clone());
        let identity_keys = idp::JwksCache::new(Arc::new(key_source));
        Custos {
            policy,
            store: Arc::new(Stores::single(store, objects)),
            vault,
            clock,
            admin_token_hash: None,
            scanner: Arc::new(custos_pii::Scanner::new()),
            audit_signer: None,
            mint_locks: pii::MintLocks::default(),
            identity_keys,
            faults: None,
            source_failures: Arc::default(),
            auth_failures: Arc::default(),
            last_use: Arc::default(),
            llm_calls: llm_calls::CallEvents::default(),
            break_glass: false,
            operators_exist: Default::default(),
            sign_ins: Arc::default(),
            channels: None,
            usage_cache: usage::UsageCache::default(),
        }
    }

    /// Refuses a source after `limit` refused credentials within a minute (default
    /// [`limits::SOURCE_FAILURES`]).
    pub fn with_source_failure_limit(mut self, limit: u32) -> Self {
        self.source_failures = Arc::new(limits::SourceLimiter::with_limit(limit));
        self
    }

    /// Delivers the outbox's messages through `channels` ([`Custos::run_outbox`]).
    pub fn with_channels(mut self, channels: outbox::Channels) -> Self {
        self.channels = Some(channels);
        self
    }

    /// Gives the regions in `regions` stores of their own: their orgs live there, and every
    /// other org stays in the main stores given to [`Custos::new`].
    pub fn with_regions(mut self, regions: Vec<RegionStores>) -> Self {
        let main = self.store.main().clone();
        let objects = self.store.main_objects().clone();
        self.store = Arc::new(Stores::new(main, objects, regions));
        self
    }

    /// Calls `hook` at each named point of an erasure (crash tests); see [`FaultHook`].
    pub fn with_fault_hook(mut self, hook: FaultHook) -> Self {
        self.faults = Some(hook);
        self
    }

    /// Stops with an error here if the fault hook says so.
    pub(crate) fn fault(&self, point: &'static str) -> Result<(), CoreError> {
        match &self.faults {
            Some(hook) if hook(point) => {
                Err(CoreError::internal(format!("injected fault at {point}")))
            }
            _ => Ok(()),
        }
    }

    /// Fetches identity providers' signing keys from `source` instead of over HTTP.
    pub fn with_identity_key_source(mut self, source: Arc<dyn idp::KeySource>) -> Self {
        self.identity_keys = idp::JwksCache::new(source);
        self
    }

    /// The PII scanner (shared with `POST /v1/scan`).
    pub fn scanner(&self) -> &custos_pii::Scanner {
        &self.scanner
    }

    /// PII findings in `text` for `caller` (`POST /v1/scan`). Scanning is CPU work
    /// proportional to the text, so it runs off the async workers.
    pub async fn scan_text(
        &self,
        caller: &Caller,
        text: String,
    ) -> Result<Vec<custos_pii::Finding>, CoreError> {
        self.authorize_global(caller, authz::Operation::Scan)
            .await?;
        let scanner = self.scanner.clone();
        tokio::task::spawn_blocking(move || scanner.scan(&text))
            .await
            .map_err(|e| CoreError::internal_from("scan task", e))
    }

    /// Accepts `token` as the bootstrap admin token.
    pub fn with_admin_token(mut self, token: &str) -> Self {
        self.admin_token_hash = Some(token_hash(token));
        self
    }

    /// The effective policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The store backend's name (`sqlite`, `postgres`), for `/healthz` and start-up output.
    pub fn backend(&self) -> &'static str {
        self.store.backend()
    }

    /// The number of entries in the audit log; also a reachability check of the store.
    pub async fn audit_size(&self) -> Result<u64, CoreError> {
        Ok(self.store.main().audit_size().await?)
    }

    /// Which of the services a request needs answer now: the database, the object store and
    /// the key store (with its KMS). Each `Err` holds what failed, with no secret in it.
    pub async fn readiness(&self) -> Readiness {
        // A probe must answer quickly: a service that takes longer (retrying a dead endpoint)
        // counts as not answering.
        async fn within<T, E: std::fmt::Display>(
            check: impl std::future::Future<Output = Result<T, E>>,
        ) -> Result<(), String> {
            match tokio::time::timeout(READINESS_TIMEOUT, check).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err(format!("no answer within {READINESS_TIMEOUT:?}")),
            }
        }
        // A key no object has: a reachable store answers "absent".
        const PROBE: &str = ".custos-readiness-probe";
        let (mut database, mut objects, keys) = tokio::join!(
            within(self.store.main().audit_size()),
            within(self.store.main_objects().exists(PROBE)),
            within(self.vault.ping()),
        );
        // A region with stores of its own is needed as much as the main ones.
        for region in self.store.regions() {
            let (db, obj) = tokio::join!(
                within(region.store.audit_size()),
                within(region.objects.exists(PROBE)),
            );
            let named = |e: String| format!("region {}: {e}", region.name);
            database = database.and(db.map_err(named));
            objects = objects.and(obj.map_err(named));
        }
        Readiness {
            database,
            objects,
            keys,
        }
    }

    /// The object store of the org's home region: its region's own, or the main one.
    pub(crate) async fn objects_of(&self, scope: &OrgScope) -> Result<Objects, CoreError> {
        Ok(self.store.objects_for(scope).await?.clone())
    }

    /// The current time of this deployment's clock, at the store's microsecond precision
    /// (so a time returned on create equals the time read back later).
    pub fn now(&self) -> jiff::Timestamp {
        let t = self.clock.now();
        jiff::Timestamp::from_microsecond(t.as_microsecond()).unwrap_or(t)
    }

    /// Resolves a bearer token (the admin token, a member's API key, or a session token
    /// opened with a second factor or by a sign-in) to a principal.
    pub async fn authenticate(&self, token: &str) -> Result<Principal, CoreError> {
        self.authenticate_in(token, &RequestContext::default())
            .await
    }

    /// [`Custos::authenticate`] for a request from `context` (what a retired bootstrap
    /// token's use is audited with).
    async fn authenticate_in(
        &self,
        token: &str,
        context: &RequestContext,
    ) -> Result<Principal, CoreError> {
        let hash = token_hash(token);
        if let Some(admin) = &self.admin_token_hash {
            // Constant-time: the comparison must not leak how much of the hash matched.
            if subtle::ConstantTimeEq::ct_eq(&admin[..], &hash[..]).into() {
                return self.bootstrap_principal(context).await;
            }
        }
        if token.starts_with(sign_in::OPERATOR_SESSION_PREFIX) {
            let found = self
                .store
                .main()
                .operator_session(&hash, self.now())
                .await?;
            let Some((operator, session)) = found else {
                return Err(CoreError::Unauthenticated);
            };
            self.note_operator_use(&hash).await;
            return Ok(Principal::Operator {
                id: operator.id,
                expires: session.expires_at,
            });
        }
        if token.starts_with(PERSONAL_TOKEN_PREFIX) {
            return match self.store.personal_token(&hash, self.now()).await? {
                // A disabled member's tokens were deleted; one made in a race is refused.
                Some((scope, member, _)) if member.disabled_at.is_none() => {
                    self.note_token_use(&scope, &member, &hash).await;
                    Ok(Principal::Member {
                        scope,
                        member,
                        auth: Authentication::PersonalToken,
                    })
                }
                _ => Err(CoreError::Unauthenticated),
            };
        }
        if token.starts_with(members::SESSION_PREFIX) {
            return match self.store.session(&hash, self.now()).await? {
                // A disabled member's sessions were closed; one opened in a race is refused.
                Some((scope, member, session)) if member.disabled_at.is_none() => {
                    self.note_use(&scope, &member, Some(&hash)).await;
                    let auth = if session.method == "totp" {
                        Authentication::TotpSession {
                            expires: session.expires_at,
                        }
                    } else {
                        Authentication::SignInSession {
                            expires: session.expires_at,
                            second_factor: session.second_factor,
                            token_hash: hash,
                        }
                    };
                    Ok(Principal::Member {
                        scope,
                        member,
                        auth,
                    })
                }
                _ => Err(CoreError::Unauthenticated),
            };
        }
        match self.store.member_by_key_hash(&hash).await? {
            // A disabled member's key is refused like a revoked one.
            Some((scope, member)) if member.disabled_at.is_none() => {
                self.note_use(&scope, &member, None).await;
                Ok(Principal::Member {
                    scope,
                    member,
                    auth: Authentication::ApiKey,
                })
            }
            _ => Err(CoreError::Unauthenticated),
        }
    }

    /// Resolves a member's API key plus its org's identity-provider ID token to a principal
    /// whose second factor is the token. Any refusal is audited as a denied
    /// `auth.identity_token` event naming the reason code and returned as
    /// [`CoreError::Unauthenticated`]: a present token never falls back to the key alone.
    pub async fn authenticate_with_identity(
        &self,
        api_key: &str,
        id_token: &str,
        context: RequestContext,
    ) -> Result<Principal, CoreError> {
        let principal = self.authenticate_from(api_key, &context).await?;
        let caller = Caller {
            principal,
            request_id: context.request_id,
            client_request_id: context.client_request_id,
            source: context.source,
            grant: None,
        };
        let (scope, member) = match &caller.principal {
            Principal::Member {
                scope,
                member,
                auth: Authentication::ApiKey,
            } => (scope, member),
            _ => {
                return Err(self
                    .refuse_identity(&caller, idp::TokenRefusal::NotMemberKey)
                    .await)
            }
        };
        let settings = self.org_settings_of(scope).await?;
        let Some(provider) = settings.identity_provider else {
            return Err(self
                .refuse_identity(&caller, idp::TokenRefusal::NoIdentityProvider)
                .await);
        };
        let now = self.now().as_second();
        let person = match self
            .identity_keys
            .verify(scope.org_id(), &provider, id_token, now)
            .await
        {
            Ok(person) => person,
            Err(refusal) => return Err(self.refuse_identity(&caller, refusal).await),
        };
        // A person's token proves that person's second factor, not anyone else's: it counts
        // for the member bound to exactly this `iss` + `sub`, or for a member that is only a
        // `service` (an app acting for whichever of its users is signed in).
        let only_service = !member.roles.is_empty() && member.roles.iter().all(|r| r == "service");
        if !only_service && member.identity.as_ref() != Some(&person) {
            return Err(self
                .refuse_identity(&caller, idp::TokenRefusal::OtherPerson)
                .await);
        }
        Ok(Principal::Member {
            scope: scope.clone(),
            member: member.clone(),
            auth: Authentication::IdentityToken,
        })
    }

    /// Audits a refused identity token (reason code only) and returns the refusal.
    async fn refuse_identity(&self, caller: &Caller, refusal: idp::TokenRefusal) -> CoreError {
        let mut event = self
            .event(caller, custos_audit::AuditAction::AuthIdentityToken)
            .outcome(Outcome::Denied)
            .reason(refusal.code());
        if let Principal::Member { scope, member, .. } = &caller.principal {
            event.org = Some(scope.org_id().to_string());
            event.target = Some(Target::Member(member.id.to_string()));
        }
        match self.store.append_audit(&[event]).await {
            Ok(()) => CoreError::Unauthenticated,
            Err(e) => CoreError::from(e),
        }
    }

    /// A success event for `action` by `caller`, now.
    fn event(&self, caller: &Caller, action: custos_audit::AuditAction) -> AuditEvent {
        let mut event = AuditEvent::new(self.now(), caller.actor(), action)
            .request(caller.request_id.clone(), caller.source.clone())
            .client_request(caller.client_request_id.clone());
        // An operator's request names its grant on every event, so that the org's list of
        // accesses under a grant is exactly the log's events carrying it. (Authorization
        // refuses a named grant that is not active in the org the request acts in.)
        if let (true, Some(grant)) = (caller.principal.is_operator(), &caller.grant) {
            event.details.grant = Some(grant.clone());
        }
        event
    }

    /// Records a refused action in the audit log, then returns the refusal. If the audit
    /// append fails, that failure is returned instead (fail closed).
    async fn deny(
        &self,
        caller: &Caller,
        org: Option<&str>,
        action: custos_audit::AuditAction,
        target: Option<Target>,
        error: CoreError,
    ) -> CoreError {
        let mut event = self
            .event(caller, action)
            .outcome(Outcome::Denied)
            .reason(error.code());
        event.org = org.map(str::to_string);
        event.target = target;
        match self.store.append_audit(&[event]).await {
            Ok(()) => error,
            Err(e) => CoreError::from(e),
        }
    }
}
