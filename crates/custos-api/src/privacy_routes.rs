//! The privacy center: the org's end users see, file and follow their own requests at
//! `/privacy/{org}`.
//!
//! The org's application sends its user to `/privacy/{org}?token=<JWT>` (a link it signed,
//! see `custos_core::privacy_links`). The link opens a 30-minute session kept in the
//! `custos_privacy` cookie, `SameSite=None; Secure; Partitioned; HttpOnly` on
//! `/privacy/{org}`: a browser sends it inside the org's application when the page is framed
//! there (the org's `frame_ancestors`), kept apart per embedding site, and the token leaves
//! the address bar at once (a `303` to the bare page). Because the cookie crosses sites, every
//! form carries a CSRF token derived from the session, and a change must come from this
//! origin when the browser names one.
//!
//! Pages render without JavaScript. Each handler is one core call authorized from the
//! authorization table's `privacy.*` rows.

use axum::extract::rejection::FormRejection;
use axum::extract::{Form, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use maud::{html, Markup};
use serde::Deserialize;
use utoipa::IntoParams;

use custos_core::privacy_center::PrivacyCenterView;
use custos_core::{Caller, CoreError, RequestView};
use custos_store::{RequestKind, RequestStatus};

use crate::routes::{ApiQuery, Path};
use crate::web::{self, Page, PageError};
use crate::AppState;

/// The privacy center's session cookie.
pub const PRIVACY_COOKIE: &str = "custos_privacy";

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/privacy/{org}", get(center))
        .route("/privacy/{org}/requests", post(file_request))
        .route("/privacy/{org}/requests/{id}/export", get(export))
        .route("/privacy/{org}/requests/{id}/certificate", get(certificate))
}

/// What the privacy center's address may carry.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CenterQuery {
    /// A link signed by the org's application (JWT: EdDSA or ES256, `sub`, `aud` = the org,
    /// `exp` at most 15 minutes ahead, `jti` used once).
    pub token: Option<String>,
    /// `erasure`: show the confirmation step of "Delete my data".
    pub confirm: Option<String>,
}

/// The session's cookie path: this org's privacy center only.
fn cookie_path(org: &str) -> String {
    format!("/privacy/{org}")
}

/// Where the privacy center of `org` may be framed, and the error pages framed with it.
async fn frame(state: &AppState, org: &str) -> Vec<String> {
    state.custos.privacy_frame_ancestors(org).await
}

/// The subject's caller and session token, from the cookie; `unauthenticated` without one.
async fn subject_caller(
    parts: &Parts,
    state: &AppState,
    org: &str,
) -> Result<(Caller, String), CoreError> {
    let token = crate::sign_in_routes::cookie_value(&parts.headers, PRIVACY_COOKIE)
        .ok_or(CoreError::Unauthenticated)?;
    let context = crate::request_context(parts);
    let caller = state.custos.privacy_caller(org, &token, &context).await?;
    Ok((caller, token))
}

/// The privacy center. With `?token=` it takes the link: opens a session (the
/// `custos_privacy` cookie) and sends the browser to the bare page. Without, it shows the
/// subject's requests, with `Request my data` and `Delete my data`.
#[utoipa::path(get, tag = "privacy center", path = "/privacy/{org}", operation_id = "privacy_center",
    params(("org" = String, Path), CenterQuery),
    responses(
        (status = 200, description = "the page (HTML)", content_type = "text/html"),
        (status = 303, description = "a link was taken: to `/privacy/{org}`, setting the `custos_privacy` cookie"),
        (status = 401, description = "no valid link or session (an HTML page)", content_type = "text/html"),
    ))]
pub(crate) async fn center(
    State(state): State<AppState>,
    Path(org): Path<String>,
    ApiQuery(q): ApiQuery<CenterQuery>,
    parts: Parts,
) -> Result<Response, PageError> {
    let ancestors = frame(&state, &org).await;
    let framed = |e: CoreError| PageError::from(e).framed(&ancestors, "Privacy center");
    if let Some(token) = q.token.as_deref() {
        let context = crate::request_context(&parts);
        let signed = state
            .custos
            .privacy_link(&org, token, &context)
            .await
            .map_err(framed)?;
        let max_age = signed
            .expires_at
            .duration_since(state.custos.now())
            .as_secs()
            .max(0);
        let cookie =
            web::partitioned_cookie(PRIVACY_COOKIE, &signed.token, &cookie_path(&org), max_age);
        return Ok(web::see_other(&cookie_path(&org), vec![cookie]));
    }
    let (caller, token) = subject_caller(&parts, &state, &org).await.map_err(framed)?;
    let view = state
        .custos
        .privacy_center(&caller, &org)
        .await
        .map_err(framed)?;
    let confirming = q.confirm.as_deref() == Some("erasure") && !view.erased;
    let body = center_body(&org, &view, &web::csrf_token(&token), confirming);
    let mut page = Page::new("Your privacy", view.org_name.clone(), body);
    page.colors = web::Colors {
        accent: view.colors.accent.clone(),
        background: view.colors.background.clone(),
    };
    page.frame_ancestors = ancestors;
    Ok(page.render(StatusCode::OK))
}

/// The page's content: the two actions (or the erasure's confirmation) and the requests.
fn center_body(org: &str, view: &PrivacyCenterView, csrf: &str, confirming: bool) -> Markup {
    let base = cookie_path(org);
    html! {
        @if view.erased {
            p.notice { "Your data was erased. This page shows your requests and their certificates until your session ends." }
        } @else if confirming {
            section.confirm aria-labelledby="confirm-heading" {
                h2 id="confirm-heading" { "Delete your data?" }
                p { "Everything " (view.org_name) " holds about you will be erased for good: records, files and the keys that protect them. Data under a legal hold is kept until the hold ends; the certificate names it. This cannot be undone." }
                form.inline method="post" action={ (base) "/requests" } {
                    input type="hidden" name="csrf" value=(csrf);
                    input type="hidden" name="type" value="erasure";
                    input type="hidden" name="confirmed" value="yes";
                    button.danger type="submit" { "Confirm: delete my data" }
                }
                a.button.secondary href=(base) { "Cancel" }
            }
        } @else {
            p { "Ask for a copy of the data " (view.org_name) " holds about you, or for its deletion. You can follow each request here." }
            div.actions {
                form.inline method="post" action={ (base) "/requests" } {
                    input type="hidden" name="csrf" value=(csrf);
                    input type="hidden" name="type" value="access";
                    button type="submit" { "Request my data" }
                }
                form.inline method="get" action=(base) {
                    input type="hidden" name="confirm" value="erasure";
                    button.secondary type="submit" { "Delete my data" }
                }
            }
        }
        h2 { "Your requests" }
        @if view.requests.is_empty() {
            p.muted { "No requests yet." }
        } @else {
            table {
                thead { tr { th scope="col" { "Request" } th scope="col" { "Status" } th scope="col" { "Received" } th scope="col" { "Due" } th scope="col" { "Result" } } }
                tbody {
                    @for r in &view.requests {
                        tr {
                            td { (kind_label(r.kind)) }
                            td.status { (status_label(r.status)) }
                            td { (day(r.received_at)) }
                            td { (day(r.due_at)) }
                            td { (result(&base, r)) }
                        }
                    }
                }
            }
        }
    }
}

/// What a request's row offers: the export's downloads, or the certificate. The links carry
/// no `download` attribute: Chromium cancels such downloads inside a cross-site frame, and
/// the answers' `Content-Disposition: attachment` makes them downloads anyway.
fn result(base: &str, r: &RequestView) -> Markup {
    let done = matches!(
        r.status,
        RequestStatus::Completed | RequestStatus::PartiallyCompleted
    );
    html! {
        @match r.kind {
            RequestKind::Erasure if done && !r.certificates.is_empty() => {
                a href={ (base) "/requests/" (r.id) "/certificate" } { "Download certificate" }
            }
            RequestKind::Erasure => { span.muted { "In progress" } }
            _ if r.status == RequestStatus::Rejected => {
                span { (r.status_reason.as_deref().unwrap_or("Rejected")) }
            }
            _ => {
                a href={ (base) "/requests/" (r.id) "/export?format=json" } { "Download my data (JSON)" }
                " · "
                a href={ (base) "/requests/" (r.id) "/export?format=csv" } { "CSV" }
                " · "
                a href={ (base) "/requests/" (r.id) "/export?format=pdf" } { "PDF" }
            }
        }
    }
}

fn kind_label(kind: RequestKind) -> &'static str {
    match kind {
        RequestKind::Access => "Copy of my data",
        RequestKind::Portability => "Copy of my data (portable)",
        RequestKind::Erasure => "Deletion of my data",
    }
}

fn status_label(status: RequestStatus) -> &'static str {
    match status {
        RequestStatus::Received => "Received",
        RequestStatus::InProgress => "In progress",
        RequestStatus::Completed => "Done",
        RequestStatus::PartiallyCompleted => "Done, except data under a legal hold",
        RequestStatus::Rejected => "Rejected",
    }
}

/// A time as its UTC day.
fn day(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%d").to_string()
}

/// A request filed from the privacy center's form.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct PrivacyRequestForm {
    /// The session's CSRF token (in the page's forms).
    pub csrf: String,
    /// `access` or `erasure`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `yes` once the subject confirmed an erasure.
    pub confirmed: Option<String>,
}

/// File a request for oneself: `access` (the export is then ready to download) or, once
/// confirmed, `erasure` (it runs at once). Answers with the page again (`303`).
#[utoipa::path(post, tag = "privacy center", path = "/privacy/{org}/requests", operation_id = "privacy_file_request",
    params(("org" = String, Path)),
    request_body(content = PrivacyRequestForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "filed (or an erasure not confirmed yet): to `/privacy/{org}`"),
        (status = 400, description = "an unknown request type (an HTML page)", content_type = "text/html"),
        (status = 401, description = "no session (an HTML page)", content_type = "text/html"),
        (status = 403, description = "a missing or wrong CSRF token, or a form from another site (an HTML page)", content_type = "text/html"),
    ))]
pub(crate) async fn file_request(
    State(state): State<AppState>,
    Path(org): Path<String>,
    parts: Parts,
    form: Result<Form<PrivacyRequestForm>, FormRejection>,
) -> Result<Response, PageError> {
    let ancestors = frame(&state, &org).await;
    let framed = |e: CoreError| PageError::from(e).framed(&ancestors, "Privacy center");
    // Who is asking first: without a session the form is not read at all.
    let (caller, token) = subject_caller(&parts, &state, &org).await.map_err(framed)?;
    let Form(form) = form.map_err(|e| {
        framed(CoreError::invalid(
            "form",
            format!("{e} (the page's own form sends csrf and type)"),
        ))
    })?;
    web::check_form(&parts.headers, &token, &form.csrf).map_err(framed)?;
    let base = cookie_path(&org);
    let kind = match form.kind.as_str() {
        "access" => RequestKind::Access,
        "erasure" if form.confirmed.as_deref() == Some("yes") => RequestKind::Erasure,
        "erasure" => return Ok(web::see_other(&format!("{base}?confirm=erasure"), vec![])),
        _ => {
            return Err(framed(CoreError::invalid(
                "type",
                "must be access or erasure",
            )))
        }
    };
    state
        .custos
        .privacy_file_request(&caller, &org, kind)
        .await
        .map_err(framed)?;
    Ok(web::see_other(&base, vec![]))
}

/// The export format asked for.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PrivacyFormatQuery {
    /// `json` (default), `csv` or `pdf`.
    pub format: Option<String>,
}

/// Download the export of one's own access request: everything held about the subject.
#[utoipa::path(get, tag = "privacy center", path = "/privacy/{org}/requests/{id}/export", operation_id = "privacy_export",
    params(("org" = String, Path), ("id" = String, Path), PrivacyFormatQuery),
    responses(
        (status = 200, description = "the export", content(("application/json"), ("application/zip"), ("application/pdf"))),
        (status = 401, description = "no session (an HTML page)", content_type = "text/html"),
        (status = 404, description = "no such request of this subject (an HTML page)", content_type = "text/html"),
    ))]
pub(crate) async fn export(
    State(state): State<AppState>,
    Path((org, id)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<PrivacyFormatQuery>,
    parts: Parts,
) -> Result<Response, PageError> {
    let ancestors = frame(&state, &org).await;
    let framed = |e: CoreError| PageError::from(e).framed(&ancestors, "Privacy center");
    let (caller, _) = subject_caller(&parts, &state, &org).await.map_err(framed)?;
    let format =
        custos_core::export_format(q.format.as_deref().unwrap_or("json")).map_err(framed)?;
    let download = state
        .custos
        .privacy_export(&caller, &org, &id, format)
        .await
        .map_err(framed)?;
    Ok(crate::request_routes::export_response(
        download, format, &id,
    ))
}

/// Download the certificate of deletion of one's own erasure (signed JSON anyone can verify
/// offline with `custos cert verify`).
#[utoipa::path(get, tag = "privacy center", path = "/privacy/{org}/requests/{id}/certificate", operation_id = "privacy_certificate",
    params(("org" = String, Path), ("id" = String, Path)),
    responses(
        (status = 200, description = "the certificate", content_type = "application/json"),
        (status = 401, description = "no session (an HTML page)", content_type = "text/html"),
        (status = 404, description = "no such request of this subject, or no certificate yet (an HTML page)", content_type = "text/html"),
    ))]
pub(crate) async fn certificate(
    State(state): State<AppState>,
    Path((org, id)): Path<(String, String)>,
    parts: Parts,
) -> Result<Response, PageError> {
    let ancestors = frame(&state, &org).await;
    let framed = |e: CoreError| PageError::from(e).framed(&ancestors, "Privacy center");
    let (caller, _) = subject_caller(&parts, &state, &org).await.map_err(framed)?;
    let cert = state
        .custos
        .privacy_certificate(&caller, &org, &id)
        .await
        .map_err(framed)?;
    Ok(crate::request_routes::certificate_response(
        &cert, false, true,
    )?)
}
