//! The console at `/console`: the pages the org's people (owners, admins, auditors) and the
//! deployment's operators use instead of curl.
//!
//! How a page is authorized: each page or form calls the one `custos-core` function the
//! matching HTTP route calls, as the signed-in caller, so the authorization table's row for
//! that operation decides (its `console` column names the page). The console holds no
//! privilege of its own: its session is an ordinary session token in the `custos_session`
//! cookie (`HttpOnly; Secure; SameSite=Lax`, the one OIDC sign-in sets), and a program may
//! present a bearer token to the same pages. Every form carries a CSRF token derived from the
//! session and must come from this origin.
//!
//! Pages render without JavaScript; the one script, `/assets/verify.js`, checks audit entries
//! and certificates in the browser against a key the person pins there.
//!
//! This module: sign-in and sign-out, the caller extractor, the page frame and the small
//! helpers the page modules share. Not here: the pages themselves (`console_requests.rs`,
//! `console_evidence.rs`, `console_people.rs`).

use axum::extract::rejection::FormRejection;
use axum::extract::{Form, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use maud::{html, Markup};
use serde::Deserialize;

use custos_core::{Caller, CoreError, Principal};

use crate::routes::ApiQuery;
use crate::sign_in_routes::{cookie_value, SESSION_COOKIE};
use crate::web::{self, Page, PageError};
use crate::AppState;

/// The sign-in form's pre-login cookie (its CSRF secret, double-submitted).
const LOGIN_COOKIE: &str = "custos_console_login";
/// Where the pre-login cookie is sent.
const LOGIN_PATH: &str = "/console/login";

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/console", get(home))
        .route("/console/login", get(login_page).post(login))
        .route("/console/logout", post(logout))
        .merge(crate::console_requests::routes())
        .merge(crate::console_evidence::routes())
        .merge(crate::console_people::routes())
}

/// The caller of a console page: from `Authorization: Bearer`, else the `custos_session`
/// cookie (then `session` holds its token, for the CSRF check of forms). A browser with
/// neither is sent to the sign-in page.
pub(crate) struct Signed {
    /// Who is asking.
    pub caller: Caller,
    /// The session token, when the cookie authenticated the request.
    pub session: Option<String>,
}

impl FromRequestParts<AppState> for Signed {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let (token, from_cookie) = match crate::bearer_token(&parts.headers) {
            Some(token) => (token, false),
            None => match cookie_value(&parts.headers, SESSION_COOKIE) {
                Some(token) => (token, true),
                None => return Err(to_sign_in(parts)),
            },
        };
        match crate::caller_from(parts, state, &token).await {
            Ok(caller) => Ok(Signed {
                caller,
                session: from_cookie.then_some(token),
            }),
            // An expired session in a browser: sign in again, then come back.
            Err(CoreError::Unauthenticated) if from_cookie => Err(to_sign_in(parts)),
            Err(e) => Err(PageError::from(e).into_response()),
        }
    }
}

impl Signed {
    /// A form's CSRF token and origin, when the cookie authenticated it (a bearer token is
    /// not sent by a browser on its own, so it needs neither).
    pub(crate) fn check_form(&self, parts: &Parts, csrf: Option<&str>) -> Result<(), CoreError> {
        match &self.session {
            Some(session) => web::check_form(&parts.headers, session, csrf.unwrap_or_default()),
            None => Ok(()),
        }
    }

    /// The CSRF token the page's forms carry (empty for a bearer caller).
    pub(crate) fn csrf(&self) -> String {
        self.session
            .as_deref()
            .map(web::csrf_token)
            .unwrap_or_default()
    }
}

/// Without a credential: a page is sent to sign-in (and back), a form gets `401`.
fn to_sign_in(parts: &Parts) -> Response {
    if parts.method == Method::GET || parts.method == Method::HEAD {
        let back = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/console");
        let location = format!("{LOGIN_PATH}?return_to={}", urlencoding(back));
        return web::see_other(&location, vec![]);
    }
    PageError::from(CoreError::Unauthenticated).into_response()
}

/// Percent-encodes a query value (everything but unreserved characters and `/`).
fn urlencoding(value: &str) -> String {
    const QUERY_VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~')
        .remove(b'/');
    percent_encoding::utf8_percent_encode(value, QUERY_VALUE).to_string()
}

/// A `return_to` the console may send a browser to: one of its own pages.
fn console_path(return_to: Option<&str>) -> Option<&str> {
    return_to.filter(|p| {
        (p == &"/console" || p.starts_with("/console/"))
            && !p.contains("//")
            && !p.contains('\\')
            && p.bytes().all(|b| b.is_ascii_graphic())
    })
}

/// The console's page frame: the title, the navigation of `org` (the org's id; `None` for
/// the deployment's pages), and sign-out.
pub(crate) fn page(title: &str, org: Option<&str>, signed: &Signed, body: Markup) -> Page {
    let csrf = signed.csrf();
    let nav = html! {
        nav aria-label="Console" {
            @if let Some(org) = &org {
                @for (label, path) in ORG_PAGES {
                    a href={ "/console/" (org) (path) } { (label) }
                }
            }
            // Incidents are the operators' (an org hears of one through its notices).
            @if signed.caller.principal.is_operator() {
                a href="/console/deployment" { "Deployment" }
                a href="/console/incidents" { "Incidents" }
            }
        }
        @if signed.session.is_some() {
            form method="post" action="/console/logout" {
                input type="hidden" name="csrf" value=(csrf);
                button.secondary type="submit" { "Sign out" }
            }
        }
    };
    let mut page = Page::new(title, "Custos console", body);
    page.nav = Some(nav);
    page
}

/// The org's pages, as `(label, path under /console/{org})`.
const ORG_PAGES: &[(&str, &str)] = &[
    ("Overview", ""),
    ("Requests", "/requests"),
    ("Retention", "/retention"),
    ("Holds", "/holds"),
    ("Audit", "/audit"),
    ("Deletion log", "/deletion-log"),
    ("Members", "/members"),
    ("Access review", "/access-review"),
    ("Support", "/support-requests"),
    ("Security events", "/security-events"),
    ("Settings", "/settings"),
];

/// A form the console reads, or the error page naming what is wrong with it.
pub(crate) fn read_form<T>(form: Result<Form<T>, FormRejection>) -> Result<T, PageError> {
    form.map(|Form(f)| f).map_err(|e| {
        PageError::from(CoreError::invalid(
            "form",
            format!("{e} (use the page's own form)"),
        ))
    })
}

/// A time as shown on the pages: UTC to the minute.
pub(crate) fn when(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%d %H:%M UTC").to_string()
}

/// An enum as the API spells it (its serde name).
pub(crate) fn word<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

/// `/console`: the signed-in person's org overview, the operator's deployment page, or
/// sign-in.
async fn home(State(state): State<AppState>, parts: Parts) -> Response {
    let Some(token) = cookie_value(&parts.headers, SESSION_COOKIE) else {
        return web::see_other(LOGIN_PATH, vec![]);
    };
    match crate::caller_from(&parts, &state, &token).await {
        Ok(caller) => match caller.principal {
            Principal::Member { scope, .. } => {
                web::see_other(&format!("/console/{}", scope.org_id()), vec![])
            }
            _ => web::see_other("/console/deployment", vec![]),
        },
        Err(_) => web::see_other(LOGIN_PATH, vec![]),
    }
}

/// What the sign-in page's address may carry.
#[derive(Debug, Deserialize)]
pub(crate) struct LoginQuery {
    /// The console page to return to once signed in.
    return_to: Option<String>,
}

/// The sign-in page: an org's identity provider, or a member's API key plus its TOTP code.
async fn login_page(ApiQuery(q): ApiQuery<LoginQuery>) -> Response {
    login_form(None, "", q.return_to.as_deref(), StatusCode::OK)
}

/// The sign-in form (with `error` above it), setting a fresh pre-login secret.
fn login_form(
    error: Option<String>,
    org: &str,
    return_to: Option<&str>,
    status: StatusCode,
) -> Response {
    let secret = uuid::Uuid::new_v4().simple().to_string();
    let return_to = console_path(return_to).unwrap_or("");
    let body = html! {
        @if let Some(error) = error {
            p.error role="alert" { (error) }
        }
        form.stack method="post" action=(LOGIN_PATH) {
            input type="hidden" name="csrf" value=(secret);
            input type="hidden" name="return_to" value=(return_to);
            label for="org" { "Organization" }
            input id="org" name="org" type="text" value=(org) autocomplete="organization" required;
            p.muted { "The org's id or name." }
            button type="submit" name="via" value="idp" { "Sign in with your identity provider" }
            h2 { "Or with an API key" }
            label for="api_key" { "API key" }
            input id="api_key" name="api_key" type="password" autocomplete="off";
            label for="code" { "Code" }
            input id="code" name="code" type="text" inputmode="numeric" autocomplete="one-time-code";
            p.muted { "The current code of your authenticator app, if you have one." }
            button type="submit" name="via" value="key" { "Sign in" }
        }
        p { a href="/v1/auth/oidc/login?operator=true&return_to=/console/deployment" { "Operators: sign in through the deployment's identity provider" } }
    };
    let mut response = Page::new("Sign in", "Custos console", body).render(status);
    let cookie = HeaderValue::from_str(&format!(
        "{LOGIN_COOKIE}={secret}; Path={LOGIN_PATH}; Max-Age=600; HttpOnly; Secure; SameSite=Strict"
    ))
    .expect("a hex secret is header-safe");
    response.headers_mut().append(header::SET_COOKIE, cookie);
    response
}

/// The sign-in form's fields.
#[derive(Debug, Deserialize)]
pub(crate) struct LoginForm {
    csrf: Option<String>,
    org: String,
    api_key: Option<String>,
    code: Option<String>,
    return_to: Option<String>,
    /// `idp`: through the org's identity provider; else the API key.
    via: Option<String>,
}

/// Sign in: through the org's identity provider (a redirect), or with the API key and code
/// (a session in the `custos_session` cookie, then the page asked for or the org's
/// overview). A refusal shows the form again with the reason.
async fn login(
    State(state): State<AppState>,
    parts: Parts,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Result<Response, PageError> {
    let form = read_form(form)?;
    let secret = cookie_value(&parts.headers, LOGIN_COOKIE).unwrap_or_default();
    let presented = form.csrf.as_deref().unwrap_or_default();
    if secret.is_empty() || secret != presented {
        return Ok(login_form(
            Some("The sign-in form expired; try again.".into()),
            &form.org,
            form.return_to.as_deref(),
            StatusCode::FORBIDDEN,
        ));
    }
    // The same origin check the other forms get (the secret already binds the browser).
    web::check_origin(&parts.headers)?;
    let org = form.org.trim();
    let return_to = console_path(form.return_to.as_deref());
    if form.via.as_deref() == Some("idp") {
        let back = return_to
            .map(str::to_string)
            .unwrap_or_else(|| format!("/console/{org}"));
        let location = format!(
            "/v1/auth/oidc/login?org={}&return_to={}",
            urlencoding(org),
            urlencoding(&back)
        );
        return Ok(web::see_other(&location, vec![]));
    }
    let context = crate::request_context(&parts);
    let key = form.api_key.as_deref().unwrap_or_default();
    let code = form.code.as_deref().unwrap_or_default();
    match state.custos.console_sign_in(org, key, code, &context).await {
        Ok(session) => {
            let lifetime = state
                .custos
                .now()
                .duration_until(session.expires_at)
                .as_secs()
                .max(0);
            let cookie =
                crate::sign_in_routes::cookie(SESSION_COOKIE, &session.token, "/", lifetime);
            let clear = HeaderValue::from_str(&format!(
                "{LOGIN_COOKIE}=; Path={LOGIN_PATH}; Max-Age=0; HttpOnly; Secure; SameSite=Strict"
            ))
            .expect("header-safe");
            let to = return_to
                .map(str::to_string)
                .unwrap_or_else(|| format!("/console/{}", session.org));
            Ok(web::see_other(&to, vec![cookie, clear]))
        }
        Err(e) => {
            let problem = crate::ApiError::from(e).problem_doc();
            let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::FORBIDDEN);
            let message = match status {
                StatusCode::UNAUTHORIZED => {
                    "Not signed in: that API key is not a key of this organization.".to_string()
                }
                _ => format!("Not signed in: {}", problem.detail),
            };
            Ok(login_form(
                Some(message),
                org,
                form.return_to.as_deref(),
                status,
            ))
        }
    }
}

/// The sign-out form's fields.
#[derive(Debug, Deserialize)]
pub(crate) struct CsrfForm {
    /// The session's CSRF token.
    pub csrf: Option<String>,
}

/// Sign out: ends the session, clears the cookie, back to sign-in.
async fn logout(
    State(state): State<AppState>,
    parts: Parts,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Result<Response, PageError> {
    let form = read_form(form)?;
    if let Some(token) = cookie_value(&parts.headers, SESSION_COOKIE) {
        web::check_form(
            &parts.headers,
            &token,
            form.csrf.as_deref().unwrap_or_default(),
        )?;
        let context = crate::request_context(&parts);
        state.custos.sign_out(&token, &context).await?;
    }
    let clear = crate::sign_in_routes::cookie(SESSION_COOKIE, "", "/", 0);
    Ok(web::see_other(LOGIN_PATH, vec![clear]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_console_pages_are_returned_to() {
        assert_eq!(
            console_path(Some("/console/o/requests")),
            Some("/console/o/requests")
        );
        assert_eq!(console_path(Some("/console")), Some("/console"));
        for bad in [
            "https://evil.example/console",
            "//evil.example",
            "/console//x",
            "/consolex",
            "/v1/orgs",
            "/console/\u{0}",
        ] {
            assert_eq!(console_path(Some(bad)), None, "{bad}");
        }
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(urlencoding("/console/o?x=1&y"), "/console/o%3Fx%3D1%26y");
    }
}
