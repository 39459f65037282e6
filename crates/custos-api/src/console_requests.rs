//! The console's data subject requests: the queue by due date (overdue first and flagged),
//! one request's timeline with extend and reject, a new request, exports, and a certificate
//! of deletion verified in the browser.

use axum::extract::rejection::FormRejection;
use axum::extract::{Form, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use maud::{html, Markup};
use serde::Deserialize;

use custos_core::{NewRequest, RequestExtension, RequestQuery, RequestRejection, RequestView};
use custos_store::{RequestKind, RequestStatus};

use crate::console::{page, read_form, when, Signed};
use crate::routes::{ApiQuery, Path};
use crate::web::{self, PageError};
use crate::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/console/{org}/requests", get(queue).post(file))
        .route("/console/{org}/requests/bulk", post(bulk))
        .route("/console/{org}/requests/{id}", get(one))
        .route("/console/{org}/requests/{id}/extend", post(extend))
        .route("/console/{org}/requests/{id}/reject", post(reject))
        .route("/console/{org}/requests/{id}/certificate", get(certificate))
}

/// The queue's filters.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct QueueQuery {
    /// `access`, `portability` or `erasure`.
    #[serde(rename = "type")]
    kind: Option<String>,
    /// A request status.
    status: Option<String>,
    /// `true`: open requests past due only.
    overdue: Option<String>,
    /// Continue after this request.
    cursor: Option<String>,
}

/// An optional filter field: empty is none; anything else must parse.
fn parse<T>(
    field: &str,
    value: Option<&str>,
    parse: impl Fn(&str) -> Result<T, custos_store::StoreError>,
) -> Result<Option<T>, PageError> {
    match value.filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => parse(v).map(Some).map_err(|_| {
            PageError::from(custos_core::CoreError::invalid(
                field,
                format!("unknown value {v:?}"),
            ))
        }),
    }
}

/// The queue: every request by due date, earliest first, overdue ones flagged; filters; a
/// new request.
async fn queue(
    State(state): State<AppState>,
    signed: Signed,
    Path(org): Path<String>,
    ApiQuery(q): ApiQuery<QueueQuery>,
) -> Result<Response, PageError> {
    let query = RequestQuery {
        kind: parse("type", q.kind.as_deref(), RequestKind::parse)?,
        status: parse("status", q.status.as_deref(), RequestStatus::parse)?,
        overdue: q.overdue.as_deref() == Some("true"),
        cursor: q.cursor.clone().filter(|c| !c.is_empty()),
        limit: Some(100),
    };
    let page_of = state
        .custos
        .list_requests(&signed.caller, &org, query)
        .await?;
    let csrf = signed.csrf();
    let base = format!("/console/{org}/requests");
    let body = html! {
        form.filters method="get" action=(base) {
            div {
                label for="f-type" { "Type" }
                select id="f-type" name="type" {
                    option value="" { "Any" }
                    @for k in ["access", "portability", "erasure"] {
                        option value=(k) selected[q.kind.as_deref() == Some(k)] { (k) }
                    }
                }
            }
            div {
                label for="f-status" { "Status" }
                select id="f-status" name="status" {
                    option value="" { "Any" }
                    @for s in ["received", "in_progress", "completed", "partially_completed", "rejected"] {
                        option value=(s) selected[q.status.as_deref() == Some(s)] { (s) }
                    }
                }
            }
            div {
                label for="f-overdue" { "Overdue only" }
                select id="f-overdue" name="overdue" {
                    option value="" { "No" }
                    option value="true" selected[q.overdue.as_deref() == Some("true")] { "Yes" }
                }
            }
            button type="submit" { "Filter" }
        }
        (request_table(&org, &page_of.items))
        @if let Some(next) = &page_of.next_cursor {
            p { a href={ (base) "?cursor=" (next) } { "Next page" } }
        }
        h2 { "New request" }
        form.stack method="post" action=(base) {
            input type="hidden" name="csrf" value=(csrf);
            label for="n-type" { "Request type" }
            select id="n-type" name="type" {
                option value="access" { "access" }
                option value="portability" { "portability" }
                option value="erasure" { "erasure (runs at once)" }
            }
            label for="n-subject" { "Subject" }
            input id="n-subject" name="subject" type="text" required autocomplete="off";
            p.muted { "The person's identifier as your records name it." }
            button type="submit" { "File request" }
        }
        h2 { "Bulk erasure" }
        form.stack method="post" action={ (base) "/bulk" } {
            input type="hidden" name="csrf" value=(csrf);
            label for="b-subjects" { "Subjects to erase (CSV)" }
            textarea #b-subjects name="subjects" rows="6" required spellcheck="false" {}
            p.muted { "One subject per line, as your records name them; an optional " code { "subject" } " header. Each is erased at once and gets a certificate; the next page lists every line's outcome." }
            button.danger type="submit" { "Erase these subjects" }
        }
    };
    Ok(page("Requests", Some(&org), &signed, body).render(StatusCode::OK))
}

/// The requests as a table; each links to its page.
pub(crate) fn request_table(org: &str, items: &[RequestView]) -> Markup {
    html! {
        @if items.is_empty() {
            p.muted { "No requests." }
        } @else {
            table {
                thead { tr {
                    th scope="col" { "Due" } th scope="col" { "Type" } th scope="col" { "Status" }
                    th scope="col" { "Received" } th scope="col" { "Subject reference" } th scope="col" { "Request" }
                } }
                tbody {
                    @for r in items {
                        tr {
                            td {
                                (when(r.due_at))
                                @if r.overdue { " " span.overdue { "Overdue" } }
                            }
                            td { (r.kind.to_string()) }
                            td.status { (r.status.to_string()) }
                            td { (when(r.received_at)) }
                            td { code { (short(&r.subject_ref)) } }
                            td { a href={ "/console/" (org) "/requests/" (r.id) } { "Open " span.muted { (short(&r.id)) } } }
                        }
                    }
                }
            }
        }
    }
}

/// The first characters of a long id, enough to tell ids apart on a page.
pub(crate) fn short(id: &str) -> &str {
    id.get(..13).unwrap_or(id)
}

/// The bulk erasure form's fields.
#[derive(Debug, Deserialize)]
pub(crate) struct BulkForm {
    csrf: Option<String>,
    /// The CSV: one subject per line, an optional `subject` header.
    subjects: String,
}

/// Erase the subjects of a pasted CSV (as `POST .../requests/bulk` with `text/csv`), then
/// show each line's outcome.
async fn bulk(
    State(state): State<AppState>,
    signed: Signed,
    Path(org): Path<String>,
    parts: Parts,
    form: Result<Form<BulkForm>, FormRejection>,
) -> Result<Response, PageError> {
    let form = read_form(form)?;
    signed.check_form(&parts, form.csrf.as_deref())?;
    let outcomes = crate::request_routes::bulk_erase_csv(
        &state,
        &signed.caller,
        &org,
        form.subjects.as_bytes(),
    )
    .await?;
    let done = outcomes
        .iter()
        .filter(|o| matches!(o.status.as_str(), "completed" | "partially_completed"))
        .count();
    let body = html! {
        p role="status" { (done) " of " (outcomes.len()) " subjects erased." }
        table {
            thead { tr { th scope="col" { "#" } th scope="col" { "Subject reference" } th scope="col" { "Outcome" } th scope="col" { "Request" } th scope="col" { "Error" } } }
            tbody { @for o in &outcomes { tr {
                td { (o.index + 1) }
                td { code { (short(&o.subject_ref)) } }
                td.status { (o.status) @if let Some(first) = o.duplicate_of { " of #" (first + 1) } }
                td { @if let Some(id) = &o.request { a href={ "/console/" (org) "/requests/" (id) } { (short(id)) } } }
                td { @if let Some(e) = &o.error { span.error { (e) } } }
            } } }
        }
        p { a href={ "/console/" (org) "/requests" } { "Back to the requests" } }
    };
    Ok(page("Bulk erasure", Some(&org), &signed, body).render(StatusCode::OK))
}

/// A new request's fields.
#[derive(Debug, Deserialize)]
pub(crate) struct NewRequestForm {
    csrf: Option<String>,
    #[serde(rename = "type")]
    kind: String,
    subject: String,
}

/// File a request (as `POST /v1/orgs/{org}/requests` does), then show it.
async fn file(
    State(state): State<AppState>,
    signed: Signed,
    Path(org): Path<String>,
    parts: Parts,
    form: Result<Form<NewRequestForm>, FormRejection>,
) -> Result<Response, PageError> {
    let form = read_form(form)?;
    signed.check_form(&parts, form.csrf.as_deref())?;
    let kind = parse("type", Some(&form.kind), RequestKind::parse)?
        .ok_or_else(|| PageError::from(custos_core::CoreError::invalid("type", "is required")))?;
    let view = state
        .custos
        .create_request(
            &signed.caller,
            &org,
            NewRequest {
                kind,
                subject: form.subject,
            },
        )
        .await?;
    Ok(web::see_other(
        &format!("/console/{org}/requests/{}", view.id),
        vec![],
    ))
}

/// One request: what, when, its timeline, and what can be done with it.
async fn one(
    State(state): State<AppState>,
    signed: Signed,
    Path((org, id)): Path<(String, String)>,
) -> Result<Response, PageError> {
    let r = state.custos.get_request(&signed.caller, &org, &id).await?;
    let csrf = signed.csrf();
    let base = format!("/console/{org}/requests/{id}");
    let api = format!("/v1/orgs/{org}/requests/{id}");
    let open = r.status.is_open();
    let body = html! {
        dl {
            dt { "Type" } dd { (r.kind.to_string()) }
            dt { "Status" } dd.status { (r.status.to_string()) @if r.overdue { " " span.overdue { "Overdue" } } }
            dt { "Due" } dd { (when(r.due_at)) }
            dt { "Subject reference" } dd { code { (r.subject_ref) } }
            dt { "Filed by" } dd { (r.filed_by) }
            @if let Some(reason) = &r.status_reason { dt { "Reason" } dd { (reason) } }
        }
        h2 { "Timeline" }
        ol {
            li { "Received " (when(r.received_at)) }
            @if let Some(t) = r.extended_at {
                li { "Extended " (when(t)) " to " (when(r.due_at)) @if let Some(why) = &r.extension_reason { ": " (why) } }
            }
            @if let Some(t) = r.completed_at { li { (r.status.to_string()) " " (when(t)) } }
        }
        @match r.kind {
            RequestKind::Erasure => {
                @if !r.certificates.is_empty() {
                    h2 { "Certificate of deletion" }
                    p {
                        a href={ (base) "/certificate" } { "View and verify the certificate" }
                        " · "
                        a href={ (api) "/certificate" } { "Download (JSON)" }
                        " · "
                        a href={ (api) "/certificate?format=pdf" } { "Download (PDF)" }
                    }
                }
            }
            _ => {
                @if r.status != RequestStatus::Rejected {
                    h2 { "Export" }
                    p {
                        a href={ (api) "/export?format=json" } { "Download export (JSON)" } " · "
                        a href={ (api) "/export?format=csv" } { "CSV" } " · "
                        a href={ (api) "/export?format=pdf" } { "PDF" }
                    }
                }
            }
        }
        @if open && r.extended_at.is_none() {
            h2 { "Extend the deadline" }
            form.stack method="post" action={ (base) "/extend" } {
                input type="hidden" name="csrf" value=(csrf);
                label for="x-by" { "Extend by" }
                select id="x-by" name="by" {
                    option value="14d" { "14 days" }
                    option value="1mo" { "1 month" }
                    option value="2mo" { "2 months" }
                }
                label for="x-reason" { "Reason for extending" }
                textarea id="x-reason" name="reason" required rows="3" {}
                p.muted { "Told to the person; a request can be extended once." }
                button type="submit" { "Extend" }
            }
        }
        @if r.status == RequestStatus::Received {
            h2 { "Reject" }
            form.stack method="post" action={ (base) "/reject" } {
                input type="hidden" name="csrf" value=(csrf);
                label for="r-reason" { "Reason for rejecting" }
                textarea id="r-reason" name="reason" required rows="3" {}
                button.danger type="submit" { "Reject" }
            }
        }
    };
    let title = format!("Request {}", short(&r.id));
    Ok(page(&title, Some(&org), &signed, body).render(StatusCode::OK))
}

/// The extension form's fields.
#[derive(Debug, Deserialize)]
pub(crate) struct ExtendForm {
    csrf: Option<String>,
    by: String,
    reason: String,
}

/// Extend a request's deadline once (as `POST .../extend`), then show it.
async fn extend(
    State(state): State<AppState>,
    signed: Signed,
    Path((org, id)): Path<(String, String)>,
    parts: Parts,
    form: Result<Form<ExtendForm>, FormRejection>,
) -> Result<Response, PageError> {
    let form = read_form(form)?;
    signed.check_form(&parts, form.csrf.as_deref())?;
    state
        .custos
        .extend_request(
            &signed.caller,
            &org,
            &id,
            RequestExtension {
                by: form.by,
                reason: form.reason,
            },
        )
        .await?;
    Ok(web::see_other(
        &format!("/console/{org}/requests/{id}"),
        vec![],
    ))
}

/// The rejection form's fields.
#[derive(Debug, Deserialize)]
pub(crate) struct RejectForm {
    csrf: Option<String>,
    reason: String,
}

/// Reject a request not yet started (as `POST .../reject`), then show it.
async fn reject(
    State(state): State<AppState>,
    signed: Signed,
    Path((org, id)): Path<(String, String)>,
    parts: Parts,
    form: Result<Form<RejectForm>, FormRejection>,
) -> Result<Response, PageError> {
    let form = read_form(form)?;
    signed.check_form(&parts, form.csrf.as_deref())?;
    state
        .custos
        .reject_request(
            &signed.caller,
            &org,
            &id,
            RequestRejection {
                reason: form.reason,
            },
        )
        .await?;
    Ok(web::see_other(
        &format!("/console/{org}/requests/{id}"),
        vec![],
    ))
}

/// A certificate of deletion: its text, verified in the browser against a pinned key.
async fn certificate(
    State(state): State<AppState>,
    signed: Signed,
    Path((org, id)): Path<(String, String)>,
) -> Result<Response, PageError> {
    let cert = state
        .custos
        .request_certificate(&signed.caller, &org, &id)
        .await?;
    let key = state.custos.signing_key(&signed.caller).await?;
    let api = format!("/v1/orgs/{org}/requests/{id}/certificate");
    let body = html! {
        (key_panel(&key.verifier_key))
        p {
            button #verify-certificate type="button" hidden { "Verify certificate" }
            " "
            output #certificate-check .check aria-live="polite" {}
        }
        p { a href=(api) { "Download (JSON)" } " · " a href={ (api) "?format=pdf" } { "Download (PDF)" } }
        pre.note #certificate tabindex="0" aria-label="Certificate" { (cert.to_json_pretty()) }
    };
    let mut page = page("Certificate of deletion", Some(&org), &signed, body);
    page.scripts.push("verify.js");
    Ok(page.render(StatusCode::OK))
}

/// The verifier key the browser checks with: pinned in this browser, else the deployment's
/// (shown as such until pinned).
pub(crate) fn key_panel(served: &str) -> Markup {
    html! {
        section aria-labelledby="key-heading" {
            h2 #key-heading { "Verifier key" }
            p.muted { "Checks on this page run in your browser, with this key, not on the server." }
            label for="verifier-key" { "Verifier key" }
            input #verifier-key type="text" value=(served) spellcheck="false" autocomplete="off";
            " "
            button #pin-key type="button" { "Pin this key" }
            p #key-origin .muted {}
        }
    }
}
