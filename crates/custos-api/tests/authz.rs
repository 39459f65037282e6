//! The authorization table, tried over HTTP: every operation × every kind of caller (the
//! operator's admin token without a grant and under a grant of each scope; each role, in and
//! out of a group, by API key and by TOTP session) × categories with a role, a group and an
//! MFA rule. The expected answer of each cell is read off the table's
//! row (`custos_core::authz::TABLE`) by the plain rules below, not by calling the code under
//! test; a route served but missing from the table fails the coverage test.

use std::collections::BTreeSet;
use std::sync::Arc;

use custos_core::authz::{CategoryRule, GrantScope, MfaRule, Operation, OperatorRule, Rule, TABLE};
use custos_core::{Clock, ManualClock};
use custos_crypto::DeploymentSigner;
use custos_policy::{Category, Policy};
use jiff::ToSpan;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

mod support;

#[path = "authz/console.rs"]
mod console;

use support::{deploy, ADMIN};

const ROLES: [&str; 5] = ["owner", "admin", "member", "auditor", "service"];
/// Categories the target-category operations are tried on: no extra rule, a group rule, an
/// MFA rule (all open to every role, so the rule under test decides).
const CATEGORIES: [&str; 3] = ["messages", "legal_notes", "secure_notes"];
/// Routes served without a token, outside the table: probes, documents, the pages' embedded
/// assets, and signing in and out (a browser signing in has no credential yet; signing out
/// ends the one it presents), and the console's sign-in and sign-out.
const PUBLIC: [(&str, &str); 13] = [
    ("GET", "/assets/{file}"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
    ("GET", "/v1/schemas/export.json"),
    ("GET", "/v1/auth/oidc/login"),
    ("GET", "/v1/auth/oidc/callback"),
    ("POST", "/v1/auth/logout"),
    ("GET", "/console"),
    ("GET", "/console/login"),
    ("POST", "/console/login"),
    ("POST", "/console/logout"),
];

fn policy() -> Policy {
    let extra = r#"
[categories.legal_notes]
retention = "30d"
org_configurable = { min = "1d", max = "90d" }
access = { roles = ["owner", "admin", "member", "auditor", "service"], groups = ["legal"] }

[categories.secure_notes]
retention = "30d"
org_configurable = { min = "1d", max = "90d" }
access = { roles = ["owner", "admin", "member", "auditor", "service"], require_mfa = true }
"#;
    Policy::parse(&format!("{}{extra}", Policy::BUILTIN_TOML), "matrix.toml").unwrap()
}

/// A deployment on a manual clock (TOTP codes follow it), with its policy at hand.
struct Server {
    d: support::Deployment,
    clock: Arc<ManualClock>,
    policy: Arc<Policy>,
    /// The LLM provider stand-in the gateway's providers point at.
    _llm: custos_llm_stand_in::Running,
}

impl std::ops::Deref for Server {
    type Target = support::Deployment;
    fn deref(&self) -> &support::Deployment {
        &self.d
    }
}

async fn server() -> Server {
    let clock = Arc::new(ManualClock::new(jiff::Timestamp::now()));
    let llm = custos_llm_stand_in::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let mut policy = policy();
    for p in &mut policy.llm.providers {
        p.base_url = llm.base_url();
        p.api_key_env = None;
    }
    let policy = Arc::new(policy);
    let d = deploy(policy.as_ref().clone(), clock.clone(), |c| {
        c.with_audit_signer(Arc::new(DeploymentSigner::ephemeral("Example SaaS")))
    })
    .await;
    Server {
        d,
        clock,
        policy,
        _llm: llm,
    }
}

/// A request body.
enum Body {
    None,
    Json(Value),
    Bytes(&'static str),
    /// An HTML form's fields.
    Form(Vec<(&'static str, String)>),
}

/// A client that shows redirects instead of following them (the privacy center answers its
/// forms and links with `303`).
fn no_redirect() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

impl Server {
    async fn call(&self, method: &str, token: &str, path: &str, body: Body) -> (StatusCode, Value) {
        self.call_under(method, token, None, path, body).await
    }

    /// `call` as a data subject: its privacy-center session `cookie` instead of a bearer
    /// token, redirects shown, not followed.
    async fn call_as_subject(
        &self,
        method: &str,
        cookie: &str,
        path: &str,
        body: Body,
    ) -> (StatusCode, Value) {
        let mut req = no_redirect()
            .request(method.parse().unwrap(), format!("{}{path}", self.base))
            .header("cookie", format!("custos_privacy={cookie}"));
        if let Body::Form(fields) = &body {
            req = req.form(fields);
        } else if let Body::Json(v) = &body {
            req = req.json(v);
        }
        let r = req.send().await.unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// The CSRF token of the privacy center's forms for session `cookie`, read off its page.
    async fn privacy_csrf(&self, org: &str, cookie: &str) -> String {
        let page = no_redirect()
            .get(format!("{}/privacy/{org}", self.base))
            .header("cookie", format!("custos_privacy={cookie}"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let at = page
            .find(r#"name="csrf" value=""#)
            .expect("a form with a CSRF token");
        page[at + 19..].split('"').next().unwrap().to_string()
    }

    /// `call`, naming support grant `grant` (`X-Custos-Grant`) if given.
    async fn call_under(
        &self,
        method: &str,
        token: &str,
        grant: Option<&str>,
        path: &str,
        body: Body,
    ) -> (StatusCode, Value) {
        let method: Method = method.parse().unwrap();
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(grant) = grant {
            req = req.header("x-custos-grant", grant);
        }
        req = match body {
            Body::None => req,
            Body::Json(v) => req.json(&v),
            Body::Bytes(b) => req.header("content-type", "text/plain").body(b),
            Body::Form(fields) => req.form(&fields),
        };
        let r = req.send().await.unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// `call` that must succeed with a 2xx; returns the body.
    async fn ok(&self, method: &str, token: &str, path: &str, body: Body) -> Value {
        let (status, v) = self.call(method, token, path, body).await;
        assert!(status.is_success(), "{method} {path}: {status} {v}");
        v
    }

    /// A session for the member with API key `key` and TOTP `secret`, at the current code.
    async fn open_session(&self, org: &str, key: &str, secret: &str) -> String {
        let body = Body::Json(json!({ "totp": self.totp_code(secret) }));
        self.ok("POST", key, &format!("/v1/orgs/{org}/sessions"), body)
            .await["token"]
            .as_str()
            .unwrap()
            .to_string()
    }

    fn totp_code(&self, secret: &str) -> String {
        totp_rs::Builder::new()
            .with_digits(6)
            .with_step_duration(30)
            .with_secret(totp_rs::Secret::try_from_base32(secret).unwrap())
            .build()
            .unwrap()
            .generate(self.clock.now().as_second() as u64)
            .to_string()
    }
}

/// One kind of caller.
#[derive(Clone)]
struct Principal {
    /// `operator`, `operator/<scope>` or `<role>` with `+legal` and `/session` as they apply,
    /// for messages.
    label: String,
    token: String,
    /// `None` for the operator (the admin token).
    member: Option<MemberFacts>,
    /// The operator's active support grant it names, with its scope.
    grant: Option<(GrantScope, String)>,
    /// A data subject in the privacy center: `token` is its session, sent as the
    /// `custos_privacy` cookie (it has no bearer credential).
    subject: bool,
}

#[derive(Clone)]
struct MemberFacts {
    role: &'static str,
    legal: bool,
    session: bool,
    totp_secret: String,
}

/// An org with one member per role and group membership, each reachable by API key and by a
/// TOTP session, in an org that requires a second factor of its owners and admins; and the
/// operator, without a grant and under an approved grant of each scope.
struct World {
    org: String,
    principals: Vec<Principal>,
    /// An owner in `legal` with a session: passes every category rule, writes fixtures.
    writer: String,
    /// A session of the org's first owner (every role, and `legal`), the first of the org to
    /// enroll TOTP: it issues the enrollment codes the owners and admins need, and adds the
    /// members.
    issuer: String,
}

/// A support request the operator files in `org`; returns its id.
async fn support_request(s: &Server, org: &str, scope: GrantScope) -> String {
    s.ok(
        "POST",
        ADMIN,
        &format!("/v1/orgs/{org}/support-requests"),
        Body::Json(json!({
            "justification": "customer_initiated_support",
            "ticket": "SUP-1",
            "reason": "the customer's export fails",
            "scope": scope,
        })),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// A grant of `scope` the operator asked for and `approver` (a session) approved.
async fn approved_grant(s: &Server, org: &str, approver: &str, scope: GrantScope) -> String {
    let id = support_request(s, org, scope).await;
    s.ok(
        "POST",
        approver,
        &format!("/v1/orgs/{org}/support-requests/{id}/approve"),
        Body::None,
    )
    .await;
    id
}

impl Server {
    /// Enrolls the member with API key `key` and id `id`, with an enrollment code from
    /// `issuer` (a session) when `issuer` is given; returns the TOTP secret.
    async fn enroll(&self, org: &str, key: &str, id: &str, issuer: Option<&str>) -> String {
        let body = match issuer {
            Some(issuer) => {
                let code = self
                    .ok(
                        "POST",
                        issuer,
                        &format!("/v1/orgs/{org}/members/{id}/totp-enrollment"),
                        Body::None,
                    )
                    .await["code"]
                    .clone();
                Body::Json(json!({ "enrollment_code": code }))
            }
            None => Body::None,
        };
        self.ok(
            "POST",
            key,
            &format!("/v1/orgs/{org}/members/me/totp"),
            body,
        )
        .await["secret"]
            .as_str()
            .unwrap()
            .to_string()
    }
}

async fn world(s: &Server) -> World {
    let created = s
        .ok(
            "POST",
            ADMIN,
            "/v1/orgs",
            Body::Json(json!({"name": "Matrix", "owner": {"name": "issuer"}})),
        )
        .await;
    let org = created["id"].as_str().unwrap().to_string();
    let (issuer_key, issuer_id) = (
        created["owner"]["api_key"].as_str().unwrap(),
        created["owner"]["id"].as_str().unwrap(),
    );
    // The first owner joins `legal` (to grant it), then is the org's first owner/admin to
    // enroll, which needs no code; every later one does.
    s.ok(
        "PATCH",
        issuer_key,
        &format!("/v1/orgs/{org}/members/{issuer_id}"),
        Body::Json(json!({"groups": ["legal"]})),
    )
    .await;
    let secret = s.enroll(&org, issuer_key, issuer_id, None).await;
    let issuer = s.open_session(&org, issuer_key, &secret).await;
    s.ok(
        "PATCH",
        &issuer,
        &format!("/v1/orgs/{org}/settings"),
        Body::Json(json!({"require_mfa_for_admins": true})),
    )
    .await;
    let mut principals = vec![Principal {
        label: "operator".into(),
        token: ADMIN.into(),
        member: None,
        grant: None,
        subject: false,
    }];
    for scope in GrantScope::ALL {
        let id = approved_grant(s, &org, &issuer, scope).await;
        principals.push(Principal {
            label: format!("operator/{}", scope.as_str()),
            token: ADMIN.into(),
            member: None,
            grant: Some((scope, id)),
            subject: false,
        });
    }
    let mut writer = None;
    for role in ROLES {
        for legal in [false, true] {
            let groups: Vec<&str> = if legal { vec!["legal"] } else { vec![] };
            let created = s
                .ok(
                    "POST",
                    &issuer,
                    &format!("/v1/orgs/{org}/members"),
                    Body::Json(json!({"name": "m", "roles": [role], "groups": groups})),
                )
                .await;
            let key = created["api_key"].as_str().unwrap().to_string();
            let id = created["id"].as_str().unwrap();
            let manager = role == "owner" || role == "admin";
            let secret = s
                .enroll(&org, &key, id, manager.then_some(issuer.as_str()))
                .await;
            let session = s.open_session(&org, &key, &secret).await;
            if role == "owner" && legal {
                writer = Some(session.clone());
            }
            // API key first: a cell may end the member's sessions (re-enrolling TOTP).
            for (token, via_session) in [(key, false), (session, true)] {
                principals.push(Principal {
                    label: format!(
                        "{role}{}{}",
                        if legal { "+legal" } else { "" },
                        if via_session { "/session" } else { "/key" }
                    ),
                    token,
                    member: Some(MemberFacts {
                        role,
                        legal,
                        session: via_session,
                        totp_secret: secret.clone(),
                    }),
                    grant: None,
                    subject: false,
                });
            }
        }
    }
    // The org's end user, in through a link its application signed.
    s.ok(
        "PATCH",
        &issuer,
        &format!("/v1/orgs/{org}/settings"),
        Body::Json(json!({"privacy_center": {"link_keys": [app_key().1]}})),
    )
    .await;
    principals.push(Principal {
        label: "subject".into(),
        token: s.privacy_session(&org, SUBJECT).await,
        member: None,
        grant: None,
        subject: true,
    });
    World {
        org,
        principals,
        writer: writer.unwrap(),
        issuer,
    }
}

/// The world's data subject, as the org's application names it.
const SUBJECT: &str = "matrix-subject";

/// The org application's link-signing key, and its public JWK.
fn app_key() -> (jsonwebtoken::EncodingKey, Value) {
    use base64::Engine;
    use ed25519_dalek::pkcs8::EncodePrivateKey;
    let signing = ed25519_dalek::SigningKey::from_bytes(&[9u8; 32]);
    let x =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(signing.verifying_key().to_bytes());
    let der = signing.to_pkcs8_der().unwrap();
    (
        jsonwebtoken::EncodingKey::from_ed_der(der.as_bytes()),
        json!({"kty": "OKP", "crv": "Ed25519", "x": x}),
    )
}

impl Server {
    /// A privacy-center session for `subject` of `org`: a fresh signed link, taken.
    async fn privacy_session(&self, org: &str, subject: &str) -> String {
        let claims = json!({"sub": subject, "aud": org, "jti": uuid::Uuid::new_v4().to_string(),
            "exp": self.clock.now().as_second() + 300});
        let link = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA),
            &claims,
            &app_key().0,
        )
        .unwrap();
        let r = no_redirect()
            .get(format!("{}/privacy/{org}?token={link}", self.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let cookie = r.headers()["set-cookie"].to_str().unwrap();
        cookie
            .strip_prefix("custos_privacy=")
            .and_then(|c| c.split(';').next())
            .unwrap()
            .to_string()
    }
}

/// The answer the table gives: `Ok` or the refusal's problem code. Read off the row with the
/// plain rules of the README, independently of `custos_core::authz::decide`.
fn expected(
    rule: &Rule,
    who: &Principal,
    categories: &[&Category],
    org_requires_mfa_for_admins: bool,
) -> Result<(), &'static str> {
    let Some(m) = &who.member else {
        return operator_expected(rule, who, categories);
    };
    if !rule.roles.iter().any(|r| r.as_str() == m.role) {
        return Err("forbidden");
    }
    let manager = m.role == "owner" || m.role == "admin";
    let op_needs_mfa = match rule.mfa {
        MfaRule::No => false,
        MfaRule::ForAdmins => org_requires_mfa_for_admins && manager,
        // Every member of the world has a factor enrolled (and presents no code).
        MfaRule::Enrollment | MfaRule::Always => true,
    };
    if op_needs_mfa && !m.session && rule.op != Operation::SessionOpen {
        return Err("mfa_required");
    }
    if rule.category != CategoryRule::No {
        for c in categories {
            if rule.edits && !c.editable {
                return Err("forbidden");
            }
            if !c.access.roles.iter().any(|r| r.as_str() == m.role) {
                return Err("forbidden");
            }
            let in_group = c.access.groups.is_empty()
                || (m.legal && c.access.groups.contains(&"legal".to_string()));
            if !in_group {
                return Err("forbidden");
            }
            if c.access.require_mfa && !m.session {
                return Err("mfa_required");
            }
        }
    }
    // Operations on another member target one with the caller's own grants: for an admin,
    // a peer admin, which only an owner may manage.
    let on_a_peer = [
        Operation::MemberUpdate,
        Operation::MemberRemove,
        Operation::MemberKeyRotate,
        Operation::MemberKeyRevoke,
        Operation::TotpEnrollmentCode,
        Operation::TotpUnlock,
    ];
    if on_a_peer.contains(&rule.op) && m.role == "admin" {
        return Err("forbidden");
    }
    Ok(())
}

/// The operator's answer: the table's operator column, in an org that has an owner; under a
/// grant (of every category), its scope must reach the operation's, and no edit reaches an
/// `editable = false` category.
fn operator_expected(
    rule: &Rule,
    who: &Principal,
    categories: &[&Category],
) -> Result<(), &'static str> {
    let needed = match rule.operator {
        OperatorRule::Always => return Ok(()),
        OperatorRule::Never | OperatorRule::OwnerlessOrg => return Err("forbidden"),
        OperatorRule::Grant(needed) => needed,
    };
    match &who.grant {
        Some((scope, _)) if *scope >= needed => {}
        _ => return Err("grant_required"),
    }
    if rule.edits && categories.iter().any(|c| !c.editable) {
        return Err("forbidden");
    }
    Ok(())
}

/// A fresh record of `category` written by the world's writer.
async fn record(s: &Server, w: &World, category: &str) -> String {
    s.ok(
        "POST",
        &w.writer,
        &format!("/v1/orgs/{}/records", w.org),
        Body::Json(json!({"category": category, "content": {"text": "matrix"}})),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// A fresh data subject request of `kind` filed by the world's writer; returns its id.
async fn subject_request(s: &Server, w: &World, kind: &str) -> String {
    s.ok(
        "POST",
        &w.writer,
        &format!("/v1/orgs/{}/requests", w.org),
        Body::Json(json!({"type": kind, "subject": format!("subject-{}", uuid::Uuid::new_v4())})),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// A fresh request of `kind` about the world's data subject, filed by the world's writer;
/// returns its id.
async fn subjects_own_request(s: &Server, w: &World, kind: &str) -> String {
    s.ok(
        "POST",
        &w.writer,
        &format!("/v1/orgs/{}/requests", w.org),
        Body::Json(json!({"type": kind, "subject": SUBJECT})),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The request that tries `op` as `who` (on `category` for target-category operations),
/// with fresh fixtures so that cells do not depend on each other.
async fn request(
    s: &Server,
    w: &World,
    op: Operation,
    who: &Principal,
    category: &str,
) -> (String, String, Body) {
    let org = &w.org;
    let same_grants = || {
        let (roles, groups) = match &who.member {
            Some(m) => (vec![m.role], if m.legal { vec!["legal"] } else { vec![] }),
            None => (vec!["member"], vec![]),
        };
        json!({"name": "target", "roles": roles, "groups": groups})
    };
    let target_member = || async {
        s.ok(
            "POST",
            &w.issuer,
            &format!("/v1/orgs/{org}/members"),
            Body::Json(same_grants()),
        )
        .await["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (method, path, body) = match op {
        Operation::OrgCreate => ("POST", "/v1/orgs".into(), Body::Json(json!({"name": "n"}))),
        Operation::OrgList => ("GET", "/v1/orgs".into(), Body::None),
        Operation::OrgRead => ("GET", format!("/v1/orgs/{org}"), Body::None),
        Operation::OrgTerminate => ("DELETE", format!("/v1/orgs/{org}"), Body::None),
        Operation::OrgSuspend => ("POST", format!("/v1/orgs/{org}/suspend"), Body::None),
        Operation::OrgResume => ("POST", format!("/v1/orgs/{org}/resume"), Body::None),
        Operation::SettingsRead => ("GET", format!("/v1/orgs/{org}/settings"), Body::None),
        Operation::SettingsUpdate => (
            "PATCH",
            format!("/v1/orgs/{org}/settings"),
            Body::Json(json!({"session_timeout": "1h"})),
        ),
        Operation::MemberCreate => (
            "POST",
            format!("/v1/orgs/{org}/members"),
            Body::Json(same_grants()),
        ),
        Operation::MemberList => ("GET", format!("/v1/orgs/{org}/members"), Body::None),
        Operation::AccessReviewRead => ("GET", format!("/v1/orgs/{org}/access-review"), Body::None),
        Operation::AccessReviewRecord => {
            // A complete decision on the list as the caller reads it (a caller who may not
            // read it sends one that cannot match).
            let path = format!("/v1/orgs/{org}/access-review");
            let (_, review) = s.call("GET", &who.token, &path, Body::None).await;
            let kept: Vec<Value> = review["members"]
                .as_array()
                .map(|m| m.iter().map(|m| m["id"].clone()).collect())
                .unwrap_or_default();
            let digest = review["review_sha256"].as_str().unwrap_or("0").to_string();
            (
                "POST",
                path,
                Body::Json(json!({"review_sha256": digest, "kept": kept})),
            )
        }
        Operation::MemberUpdate => (
            "PATCH",
            format!("/v1/orgs/{org}/members/{}", target_member().await),
            Body::Json(json!({"name": "renamed"})),
        ),
        Operation::MemberRemove => (
            "DELETE",
            format!("/v1/orgs/{org}/members/{}", target_member().await),
            Body::None,
        ),
        Operation::OperatorCreate => (
            "POST",
            "/v1/operators".into(),
            Body::Json(json!({"identity": {"iss": "https://login.example.com", "sub": "op-1"}})),
        ),
        Operation::OperatorList => ("GET", "/v1/operators".into(), Body::None),
        Operation::SecurityEventList => {
            ("GET", format!("/v1/orgs/{org}/security-events"), Body::None)
        }
        Operation::DeploymentSecurityEventList => ("GET", "/v1/security-events".into(), Body::None),
        Operation::IncidentCreate => (
            "POST",
            "/v1/incidents".into(),
            Body::Json(json!({"title": "matrix"})),
        ),
        Operation::IncidentList => ("GET", "/v1/incidents".into(), Body::None),
        Operation::NotificationList => ("GET", "/v1/notifications".into(), Body::None),
        Operation::SubjectReference => (
            "GET",
            format!("/v1/orgs/{org}/subjects/subject-1/reference"),
            Body::None,
        ),
        // Nobody's incident: an allowed caller is told there is none of that id.
        Operation::IncidentRead => (
            "GET",
            format!("/v1/incidents/{}", uuid::Uuid::new_v4()),
            Body::None,
        ),
        Operation::IncidentStatus => (
            "POST",
            format!("/v1/incidents/{}/status", uuid::Uuid::new_v4()),
            Body::Json(json!({"status": "contained"})),
        ),
        Operation::IncidentReport => (
            "GET",
            format!("/v1/incidents/{}/report", uuid::Uuid::new_v4()),
            Body::None,
        ),
        Operation::IncidentAffected => (
            "GET",
            format!("/v1/incidents/{}/affected", uuid::Uuid::new_v4()),
            Body::None,
        ),
        Operation::IncidentNotify => (
            "POST",
            format!("/v1/incidents/{}/notifications", uuid::Uuid::new_v4()),
            Body::None,
        ),
        Operation::SubjectContact => (
            "PUT",
            format!("/v1/orgs/{org}/subjects/subject-1/contact"),
            Body::Json(json!({"email": "person@example.com"})),
        ),
        Operation::PersonalTokenCreate => (
            "POST",
            "/v1/auth/tokens".into(),
            Body::Json(json!({"name": "matrix", "expires_in": "1d"})),
        ),
        Operation::PersonalTokenList => ("GET", "/v1/auth/tokens".into(), Body::None),
        // Nobody's token: an allowed caller is told it has none of that id.
        Operation::PersonalTokenRevoke => (
            "DELETE",
            format!("/v1/auth/tokens/{}", uuid::Uuid::new_v4()),
            Body::None,
        ),
        Operation::SupportRequestCreate => (
            "POST",
            format!("/v1/orgs/{org}/support-requests"),
            Body::Json(
                json!({"justification": "incident_response", "ticket": "INC-7",
                "reason": "a stuck job", "scope": "metadata", "duration": "1h"}),
            ),
        ),
        Operation::SupportRequestList => (
            "GET",
            format!("/v1/orgs/{org}/support-requests"),
            Body::None,
        ),
        Operation::SupportRequestApprove | Operation::SupportRequestDeny => {
            let id = support_request(s, org, GrantScope::Metadata).await;
            let verb = if op == Operation::SupportRequestApprove {
                "approve"
            } else {
                "deny"
            };
            (
                "POST",
                format!("/v1/orgs/{org}/support-requests/{id}/{verb}"),
                Body::None,
            )
        }
        Operation::SupportRequestRevoke => {
            let id = approved_grant(s, org, &w.issuer, GrantScope::Metadata).await;
            (
                "POST",
                format!("/v1/orgs/{org}/support-requests/{id}/revoke"),
                Body::None,
            )
        }
        Operation::SupportRequestAccesses => {
            let id = support_request(s, org, GrantScope::Read).await;
            (
                "GET",
                format!("/v1/orgs/{org}/support-requests/{id}/accesses"),
                Body::None,
            )
        }
        Operation::MemberKeyRotate => (
            "POST",
            format!("/v1/orgs/{org}/members/{}/key", target_member().await),
            Body::None,
        ),
        Operation::MemberKeyRevoke => (
            "DELETE",
            format!("/v1/orgs/{org}/members/{}/key", target_member().await),
            Body::None,
        ),
        Operation::TotpEnroll => (
            "POST",
            format!("/v1/orgs/{org}/members/me/totp"),
            Body::None,
        ),
        Operation::TotpEnrollmentCode => (
            "POST",
            format!(
                "/v1/orgs/{org}/members/{}/totp-enrollment",
                target_member().await
            ),
            Body::None,
        ),
        Operation::TotpUnlock => {
            // A target with a factor (its count of wrong codes is what gets cleared).
            let created = s
                .ok(
                    "POST",
                    &w.issuer,
                    &format!("/v1/orgs/{org}/members"),
                    Body::Json(same_grants()),
                )
                .await;
            let (key, id) = (
                created["api_key"].as_str().unwrap(),
                created["id"].as_str().unwrap(),
            );
            s.enroll(org, key, id, Some(&w.issuer)).await;
            (
                "DELETE",
                format!("/v1/orgs/{org}/members/{id}/totp-lockout"),
                Body::None,
            )
        }
        Operation::SessionOpen => {
            // A fresh time step: each code opens one session.
            s.clock.advance(31.seconds());
            let code = who
                .member
                .as_ref()
                .map(|m| s.totp_code(&m.totp_secret))
                .unwrap_or_else(|| "000000".into());
            (
                "POST",
                format!("/v1/orgs/{org}/sessions"),
                Body::Json(json!({ "totp": code })),
            )
        }
        Operation::RecordCreate => (
            "POST",
            format!("/v1/orgs/{org}/records"),
            Body::Json(json!({"category": category, "content": {"text": "x"}})),
        ),
        Operation::RecordList => (
            "GET",
            format!("/v1/orgs/{org}/records?category={category}"),
            Body::None,
        ),
        Operation::RecordRead => (
            "GET",
            format!("/v1/orgs/{org}/records/{}", record(s, w, category).await),
            Body::None,
        ),
        Operation::RecordReveal => (
            "GET",
            format!(
                "/v1/orgs/{org}/records/{}?reveal=true",
                record(s, w, category).await
            ),
            Body::None,
        ),
        Operation::RecordDelete => (
            "DELETE",
            format!("/v1/orgs/{org}/records/{}", record(s, w, category).await),
            Body::None,
        ),
        Operation::RecordHardDelete => (
            "DELETE",
            format!(
                "/v1/orgs/{org}/records/{}?hard=true",
                record(s, w, category).await
            ),
            Body::None,
        ),
        Operation::RecordRestore => {
            let id = record(s, w, category).await;
            let path = format!("/v1/orgs/{org}/records/{id}");
            s.ok("DELETE", &w.writer, &path, Body::None).await;
            ("POST", format!("{path}/restore"), Body::None)
        }
        Operation::RecordArchiveRestore => (
            "POST",
            format!(
                "/v1/orgs/{org}/records/{}/archive-restore",
                record(s, w, category).await
            ),
            Body::None,
        ),
        Operation::FileUpload => (
            "POST",
            format!("/v1/orgs/{org}/files?category={category}&name=a.txt"),
            Body::Bytes("hello"),
        ),
        Operation::FileDownload => {
            let id = s
                .ok(
                    "POST",
                    &w.writer,
                    &format!("/v1/orgs/{org}/files?category={category}&name=a.txt"),
                    Body::Bytes("hello"),
                )
                .await["id"]
                .as_str()
                .unwrap()
                .to_string();
            (
                "GET",
                format!("/v1/orgs/{org}/records/{id}/file"),
                Body::None,
            )
        }
        Operation::CategoryDeleteAll => (
            "POST",
            format!("/v1/orgs/{org}/categories/{category}/delete-all"),
            Body::None,
        ),
        Operation::RetentionRead => ("GET", format!("/v1/orgs/{org}/retention"), Body::None),
        Operation::UsageRead => ("GET", format!("/v1/orgs/{org}/usage"), Body::None),
        Operation::RetentionSet => (
            "PUT",
            format!("/v1/orgs/{org}/retention/{category}"),
            Body::Json(json!({"retention": "30d"})),
        ),
        Operation::HoldCreate => (
            "POST",
            format!("/v1/orgs/{org}/holds"),
            Body::Json(json!({"reason": "case 1", "category": "app_logs"})),
        ),
        Operation::HoldList => ("GET", format!("/v1/orgs/{org}/holds"), Body::None),
        Operation::HoldRelease => {
            let hold = s
                .ok(
                    "POST",
                    &w.issuer,
                    &format!("/v1/orgs/{org}/holds"),
                    Body::Json(json!({"reason": "case 2", "category": "app_logs"})),
                )
                .await;
            (
                "DELETE",
                format!("/v1/orgs/{org}/holds/{}", hold["id"].as_str().unwrap()),
                Body::None,
            )
        }
        Operation::DeletionLogRead => ("GET", format!("/v1/orgs/{org}/deletion-log"), Body::None),
        Operation::LifecycleOverdue => (
            "GET",
            format!("/v1/orgs/{org}/lifecycle/overdue"),
            Body::None,
        ),
        Operation::AuditEvents => ("GET", format!("/v1/audit/events?org={org}"), Body::None),
        Operation::AuditCheckpoint => ("GET", "/v1/audit/checkpoint".into(), Body::None),
        Operation::AuditProof => {
            let page = s
                .ok(
                    "GET",
                    ADMIN,
                    &format!("/v1/audit/events?org={org}&action=org.create"),
                    Body::None,
                )
                .await;
            let index = page["items"][0]["index"].as_u64().unwrap();
            ("GET", format!("/v1/audit/proof/{index}"), Body::None)
        }
        Operation::AuditConsistency => ("GET", "/v1/audit/consistency?from=1".into(), Body::None),
        Operation::SigningKey => ("GET", "/v1/signing-key".into(), Body::None),
        Operation::Scan => (
            "POST",
            "/v1/scan".into(),
            Body::Json(json!({"text": "hello"})),
        ),
        Operation::RequestCreate => (
            "POST",
            format!("/v1/orgs/{org}/requests"),
            Body::Json(json!({"type": "access", "subject": "s-1"})),
        ),
        Operation::RequestList => ("GET", format!("/v1/orgs/{org}/requests"), Body::None),
        Operation::RequestRead => (
            "GET",
            format!(
                "/v1/orgs/{org}/requests/{}",
                subject_request(s, w, "access").await
            ),
            Body::None,
        ),
        Operation::RequestExtend => (
            "POST",
            format!(
                "/v1/orgs/{org}/requests/{}/extend",
                subject_request(s, w, "access").await
            ),
            Body::Json(json!({"by": "14d", "reason": "many sources"})),
        ),
        Operation::RequestReject => (
            "POST",
            format!(
                "/v1/orgs/{org}/requests/{}/reject",
                subject_request(s, w, "access").await
            ),
            Body::Json(json!({"reason": "identity not verified"})),
        ),
        Operation::RequestExport => (
            "GET",
            format!(
                "/v1/orgs/{org}/requests/{}/export?format=json",
                subject_request(s, w, "portability").await
            ),
            Body::None,
        ),
        Operation::RequestCertificate => (
            "GET",
            format!(
                "/v1/orgs/{org}/requests/{}/certificate",
                subject_request(s, w, "erasure").await
            ),
            Body::None,
        ),
        Operation::RequestBulkErase => (
            "POST",
            format!("/v1/orgs/{org}/requests/bulk"),
            Body::Json(json!({"subjects": ["b-1", "b-2"]})),
        ),
        Operation::PrivacyCenterRead => ("GET", format!("/privacy/{org}"), Body::None),
        Operation::PrivacyRequestCreate => {
            let csrf = if who.subject {
                s.privacy_csrf(org, &who.token).await
            } else {
                "0".repeat(32)
            };
            (
                "POST",
                format!("/privacy/{org}/requests"),
                Body::Form(vec![("csrf", csrf), ("type", "access".into())]),
            )
        }
        Operation::PrivacyExport => (
            "GET",
            format!(
                "/privacy/{org}/requests/{}/export?format=json",
                subjects_own_request(s, w, "access").await
            ),
            Body::None,
        ),
        Operation::PrivacyCertificate => (
            "GET",
            format!(
                "/privacy/{org}/requests/{}/certificate",
                subjects_own_request(s, w, "erasure").await
            ),
            Body::None,
        ),
        Operation::LlmChatCompletions => (
            "POST",
            "/llm/openai/v1/chat/completions".into(),
            Body::Json(json!({"model": "stand-in",
                "messages": [{"role": "user", "content": "hi"}]})),
        ),
        Operation::LlmResponses => (
            "POST",
            "/llm/openai/v1/responses".into(),
            Body::Json(json!({"model": "stand-in", "input": "hi"})),
        ),
        Operation::LlmMessages => (
            "POST",
            "/llm/anthropic/v1/messages".into(),
            Body::Json(json!({"model": "stand-in", "max_tokens": 5,
                "messages": [{"role": "user", "content": "hi"}]})),
        ),
        Operation::LlmModels => ("GET", "/llm/openai/v1/models".into(), Body::None),
        Operation::Sweep
        | Operation::KeysRotate
        | Operation::AuditVerify
        | Operation::AuditExport => unreachable!("system-only operations have no route"),
    };
    (method.to_string(), path, body)
}

/// Statuses an allowed cell may answer besides 2xx, where the request is allowed but the
/// state says no: an archive restore of a record that is not archived, a session opened
/// with a session.
fn allowed_refusal(op: Operation, who: &Principal, status: StatusCode) -> bool {
    match op {
        Operation::RecordArchiveRestore => status == StatusCode::CONFLICT,
        // The matrix deployment has no operator identity provider (one operator would retire
        // the admin token every other cell uses): the operator may ask, the state says no.
        Operation::OperatorCreate => status == StatusCode::CONFLICT,
        // Suspending twice, or resuming an org that is not suspended, is a conflict; a resume
        // cell also runs on a world whose suspension another cell of its rule did not make.
        Operation::OrgSuspend | Operation::OrgResume => status == StatusCode::CONFLICT,
        // Other cells add members between reading the list and recording the review.
        Operation::AccessReviewRecord => status == StatusCode::CONFLICT,
        Operation::PersonalTokenRevoke => status == StatusCode::NOT_FOUND,
        Operation::IncidentRead
        | Operation::IncidentStatus
        | Operation::IncidentAffected
        | Operation::IncidentNotify
        | Operation::IncidentReport => status == StatusCode::NOT_FOUND,
        Operation::SessionOpen => {
            who.member.as_ref().is_some_and(|m| m.session) && status == StatusCode::BAD_REQUEST
        }
        _ => false,
    }
}

/// The categories whose rules a cell of `rule` on `category` must pass.
fn checked_categories<'p>(s: &'p Server, rule: &Rule, category: Option<&str>) -> Vec<&'p Category> {
    match (rule.category, category) {
        // An export is a record of the `exports` category, whatever else it holds.
        (CategoryRule::Target, _) if rule.op == Operation::RequestExport => {
            vec![s.policy.category("exports").unwrap()]
        }
        // Security events are records of the `security_logs` category.
        (CategoryRule::Target, _) if rule.op == Operation::SecurityEventList => {
            vec![s.policy.category("security_logs").unwrap()]
        }
        (CategoryRule::All, _) => s.policy.categories.values().collect(),
        (CategoryRule::Target, Some(c)) => vec![s.policy.category(c).unwrap()],
        _ => vec![],
    }
}

/// The categories a rule's cells are tried on (`None`: the rule names none, or one fixed).
fn rule_categories(rule: &Rule) -> Vec<Option<&'static str>> {
    match rule.category {
        CategoryRule::Target
            if !matches!(
                rule.op,
                Operation::RequestExport | Operation::SecurityEventList
            ) =>
        {
            CATEGORIES.iter().map(|c| Some(*c)).collect()
        }
        _ => vec![None],
    }
}

/// Tries one cell: `rule` as principal `i` of `w`; the disagreement, if any.
async fn cell(
    s: &Server,
    w: &World,
    rule: &Rule,
    category: Option<&str>,
    i: usize,
) -> Option<String> {
    let who = &w.principals[i];
    let checked = checked_categories(s, rule, category);
    // The privacy center's rows are open to data subjects alone, who hold no other
    // credential: anyone else presents no privacy-center session there, and a subject
    // presents no bearer token anywhere else.
    let want = match (who.subject, rule.subject) {
        (true, true) => Ok(()),
        (true, false) | (false, true) => Err("unauthenticated"),
        (false, false) => expected(rule, who, &checked, true),
    };
    let (method, path, body) = request(s, w, rule.op, who, category.unwrap_or("")).await;
    let grant = who.grant.as_ref().map(|(_, id)| id.as_str());
    let (status, answer) = if who.subject {
        s.call_as_subject(&method, &who.token, &path, body).await
    } else {
        s.call_under(&method, &who.token, grant, &path, body).await
    };
    let agrees = match want {
        // A privacy-center form answers with the page again.
        Ok(()) if who.subject => status.is_success() || status == StatusCode::SEE_OTHER,
        Ok(()) => status.is_success() || allowed_refusal(rule.op, who, status),
        Err("unauthenticated") => status == StatusCode::UNAUTHORIZED,
        // The LLM gateway answers in the providers' shapes: OpenAI's carries the code in
        // `error.code`; Anthropic's has only its own error types.
        Err(code) => {
            status == StatusCode::FORBIDDEN
                && (answer["code"] == code
                    || answer["error"]["code"] == code
                    || (rule.op == Operation::LlmMessages
                        && answer["error"]["type"] == "permission_error"))
        }
    };
    (!agrees).then(|| {
        format!(
            "{} on {category:?} as {}: expected {want:?}, got {status} {answer}",
            rule.action, who.label
        )
    })
}

/// Callers in a world: the operator without a grant and under one of each scope, each
/// role in and out of `legal` by key and by session, and the data subject.
const PRINCIPALS: usize = 1 + GrantScope::ALL.len() + ROLES.len() * 2 * 2 + 1;

#[tokio::test]
async fn every_cell_of_the_table_answers_as_the_table_says() {
    let s = server().await;
    let mut cells = 0;
    let mut failures = Vec::new();
    for rule in TABLE.iter().filter(|r| r.route.is_some()) {
        for category in rule_categories(rule) {
            let shared = world(&s).await;
            assert_eq!(shared.principals.len(), PRINCIPALS);
            for i in 0..PRINCIPALS {
                // Termination ends its world, so each of its cells gets one of its own.
                let own;
                let w = if rule.op == Operation::OrgTerminate {
                    own = world(&s).await;
                    &own
                } else {
                    &shared
                };
                cells += 1;
                failures.extend(cell(&s, w, rule, category, i).await);
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {cells} cells disagree with the table:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(cells > 900, "only {cells} cells ran");
}

/// `(METHOD, path)` of every route in the table, without query strings.
fn table_routes() -> BTreeSet<(String, String)> {
    TABLE
        .iter()
        .filter_map(|r| r.route)
        .map(|(m, p)| (m.to_string(), p.split('?').next().unwrap().to_string()))
        .collect()
}

#[tokio::test]
async fn every_served_route_is_in_the_table_and_needs_a_token() {
    let s = server().await;
    let mut known = table_routes();
    let public: BTreeSet<(String, String)> = PUBLIC
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    known.extend(public.iter().cloned());

    // 1. The OpenAPI document names exactly the table's routes and the public ones, except
    //    the LLM gateway's: those speak the providers' own APIs, described by their specs.
    let (_, doc) = s.call("GET", "", "/openapi.json", Body::None).await;
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if ["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                documented.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    // The console's pages are HTML for people, not API: the table's console column and the
    // console's own matrix test cover them.
    let described: BTreeSet<(String, String)> = known
        .iter()
        .filter(|(_, p)| !p.starts_with("/llm/") && !p.starts_with("/console"))
        .cloned()
        .collect();
    assert_eq!(documented, described, "OpenAPI paths against the table");

    // 2. Every `.route("…")` the API crate registers is a table path or a public one.
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut paths: BTreeSet<&str> = known.iter().map(|(_, p)| p.as_str()).collect();
    paths.extend(TABLE.iter().filter_map(|r| r.console).map(|(_, p)| p));
    for entry in std::fs::read_dir(&src).unwrap() {
        let file = entry.unwrap().path();
        let text = std::fs::read_to_string(&file).unwrap();
        for chunk in text.split(".route(").skip(1) {
            let literal = chunk
                .trim_start()
                .strip_prefix('"')
                .unwrap_or_else(|| panic!("{}: .route( without a literal path", file.display()));
            let path = &literal[..literal.find('"').unwrap()];
            assert!(
                paths.contains(path),
                "{} registers {path}, which the authorization table does not name",
                file.display()
            );
        }
    }

    // 3. Every table route is served and refuses a caller without a token.
    for (method, path) in table_routes() {
        let concrete = path
            .replace("{org}", "01a21e0d-61f6-7419-9e7a-d7805e663ac3")
            .replace("{id}", "01a21e0d-61f6-7419-9e7a-d7805e663ac4")
            .replace("{category}", "messages")
            .replace("{index}", "0")
            .replace("{provider}", "openai");
        let r = s
            .client
            .request(method.parse().unwrap(), format!("{}{concrete}", s.base))
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            StatusCode::UNAUTHORIZED,
            "{method} {path} without a token"
        );
    }
}

#[tokio::test]
async fn the_system_only_operations_have_no_route_and_refuse_everyone_else() {
    for op in [
        Operation::Sweep,
        Operation::KeysRotate,
        Operation::AuditVerify,
        Operation::AuditExport,
    ] {
        let rule = op.rule();
        assert!(rule.route.is_none() && rule.cli.is_some(), "{:?}", rule.op);
        assert!(
            rule.operator == OperatorRule::Never && rule.roles.is_empty(),
            "{:?}",
            rule.op
        );
    }
}

/// A new org, created by the operator with its first owner; returns its id and the owner's
/// API key.
async fn new_org(s: &Server) -> (String, String) {
    let created = s
        .ok(
            "POST",
            ADMIN,
            "/v1/orgs",
            Body::Json(json!({"name": "Org", "owner": {"name": "Olive"}})),
        )
        .await;
    (
        created["id"].as_str().unwrap().to_string(),
        created["owner"]["api_key"].as_str().unwrap().to_string(),
    )
}

/// A member of `org` created by its owner (key `owner`); returns its API key and id.
async fn member(s: &Server, org: &str, owner: &str, body: Value) -> (String, String) {
    let v = s
        .ok(
            "POST",
            owner,
            &format!("/v1/orgs/{org}/members"),
            Body::Json(body),
        )
        .await;
    (
        v["api_key"].as_str().unwrap().to_string(),
        v["id"].as_str().unwrap().to_string(),
    )
}

#[tokio::test]
async fn no_caller_grants_what_it_does_not_hold() {
    let s = server().await;
    let (org, olive) = new_org(&s).await;
    let members = format!("/v1/orgs/{org}/members");
    let (admin, _) = member(&s, &org, &olive, json!({"name": "a", "roles": ["admin"]})).await;
    let (_, owner_id) = member(&s, &org, &olive, json!({"name": "o", "roles": ["owner"]})).await;
    let (_, plain_id) = member(&s, &org, &olive, json!({"name": "p", "roles": ["admin"]})).await;
    for body in [
        json!({"name": "x", "roles": ["owner"]}),
        json!({"name": "x", "roles": ["admin", "auditor"]}),
        json!({"name": "x", "roles": ["admin"], "groups": ["legal"]}),
    ] {
        let (status, answer) = s.call("POST", &admin, &members, Body::Json(body)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    }
    // Nor by changing a member it may manage, nor by touching one stronger than itself.
    let plain = format!("{members}/{plain_id}");
    for change in [json!({"roles": ["owner"]}), json!({"groups": ["legal"]})] {
        let (status, _) = s.call("PATCH", &admin, &plain, Body::Json(change)).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }
    let owner = format!("{members}/{owner_id}");
    for (method, path) in [
        ("PATCH", owner.clone()),
        ("DELETE", owner.clone()),
        ("POST", format!("{owner}/key")),
        ("DELETE", format!("{owner}/key")),
    ] {
        let body = if method == "PATCH" {
            Body::Json(json!({"roles": ["admin"]}))
        } else {
            Body::None
        };
        let (status, _) = s.call(method, &admin, &path, body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}");
    }
    // What it may grant, it grants, and the audit event names every attribute.
    let created = s
        .ok(
            "POST",
            &admin,
            &members,
            Body::Json(json!({"name": "y", "roles": ["admin"], "mfa": true})),
        )
        .await;
    let id = created["id"].as_str().unwrap();
    let events = s
        .ok(
            "GET",
            ADMIN,
            &format!("/v1/audit/events?org={org}&action=member.create&target=member:{id}"),
            Body::None,
        )
        .await;
    let event = &events["items"][0]["event"];
    assert_eq!(
        (
            &event["roles"],
            &event["groups"],
            &event["mfa"],
            &event["identity_bound"]
        ),
        (&json!(["admin"]), &json!([]), &json!(true), &json!(false)),
        "{events}"
    );
    // A member that must use a second factor cannot make one that need not (it first needs
    // a session at all).
    let strict = created["api_key"].as_str().unwrap();
    let (status, answer) = s
        .call(
            "POST",
            strict,
            &members,
            Body::Json(json!({"name": "z", "roles": ["admin"]})),
        )
        .await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("mfa_required"))
    );
    // The `mfa` flag grants nothing: a member created with it still needs a session for an
    // MFA category, and its API key alone does nothing but enroll and open one.
    let (status, answer) = s
        .call(
            "POST",
            strict,
            &format!("/v1/orgs/{org}/records"),
            Body::Json(json!({"category": "secure_notes", "content": "x"})),
        )
        .await;
    assert_eq!(answer["code"], "mfa_required", "{status} {answer}");
}

#[tokio::test]
async fn totp_sessions_expire_and_codes_open_one_session() {
    let s = server().await;
    let (org, olive) = new_org(&s).await;
    let (key, id) = member(&s, &org, &olive, json!({"name": "a", "roles": ["admin"]})).await;
    let sessions = format!("/v1/orgs/{org}/sessions");
    let write = |token: String| {
        let s = &s;
        let org = org.clone();
        async move {
            s.call(
                "POST",
                &token,
                &format!("/v1/orgs/{org}/records"),
                Body::Json(json!({"category": "secure_notes", "content": "x"})),
            )
            .await
        }
    };
    // No factor yet: no session.
    let (status, _) = s
        .call(
            "POST",
            &key,
            &sessions,
            Body::Json(json!({"totp": "123456"})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let secret = s
        .ok(
            "POST",
            &key,
            &format!("/v1/orgs/{org}/members/me/totp"),
            Body::None,
        )
        .await["secret"]
        .as_str()
        .unwrap()
        .to_string();
    // A wrong code, then the right one once; the same code again is refused.
    let code = s.totp_code(&secret);
    let wrong = format!("{:06}", (code.parse::<u32>().unwrap() + 1) % 1_000_000);
    let (status, _) = s
        .call(
            "POST",
            &key,
            &sessions,
            Body::Json(json!({ "totp": wrong })),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let session = s
        .ok("POST", &key, &sessions, Body::Json(json!({ "totp": code })))
        .await;
    let token = session["token"].as_str().unwrap().to_string();
    let (status, answer) = s
        .call("POST", &key, &sessions, Body::Json(json!({ "totp": code })))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "replay: {answer}");
    // The key alone is refused where the session is not.
    assert_eq!(write(key.clone()).await.1["code"], "mfa_required");
    assert_eq!(write(token.clone()).await.0, StatusCode::CREATED);
    // Re-enrolling with the key alone is refused (a stolen key cannot take the factor).
    let (status, answer) = s
        .call(
            "POST",
            &key,
            &format!("/v1/orgs/{org}/members/me/totp"),
            Body::None,
        )
        .await;
    assert_eq!(answer["code"], "mfa_required", "{status}");
    // An old code (two steps back) is refused; the session expires after session_timeout.
    s.clock.advance(61.seconds());
    let (status, _) = s
        .call("POST", &key, &sessions, Body::Json(json!({ "totp": code })))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    s.clock.advance(1.hour());
    assert_eq!(write(token).await.0, StatusCode::UNAUTHORIZED);
    // A shorter org timeout applies to sessions opened after it.
    s.ok(
        "PATCH",
        &olive,
        &format!("/v1/orgs/{org}/settings"),
        Body::Json(json!({"session_timeout": "5m"})),
    )
    .await;
    let token = s.open_session(&org, &key, &secret).await;
    s.clock.advance(4.minutes());
    assert_eq!(write(token.clone()).await.0, StatusCode::CREATED);
    s.clock.advance(2.minutes());
    assert_eq!(write(token).await.0, StatusCode::UNAUTHORIZED);
    // Rotating the key ends its sessions.
    let token = s.open_session(&org, &key, &secret).await;
    s.ok(
        "POST",
        &olive,
        &format!("/v1/orgs/{org}/members/{id}/key"),
        Body::None,
    )
    .await;
    assert_eq!(write(token).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(write(key).await.0, StatusCode::UNAUTHORIZED);
}
