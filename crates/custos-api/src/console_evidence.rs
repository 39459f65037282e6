//! The console's evidence pages: the audit log (each entry verified in the browser), the
//! deletion log, legal holds, retention per category, and the org's security events.

use axum::extract::rejection::FormRejection;
use axum::extract::{Form, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use maud::html;
use serde::Deserialize;

use custos_core::{AuditFilter, NewHold};

use crate::console::{page, read_form, when, word, Signed};
use crate::console_requests::{key_panel, short};
use crate::routes::{ApiQuery, Path};
use crate::web::{self, PageError};
use crate::AppState;

/// Entries on one page of the audit log.
const AUDIT_PAGE: u32 = 100;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/console/{org}/audit", get(audit))
        .route("/console/{org}/deletion-log", get(deletion_log))
        .route("/console/{org}/holds", get(holds).post(place_hold))
        .route("/console/{org}/holds/{id}/release", post(release_hold))
        .route("/console/{org}/retention", get(retention))
        .route("/console/{org}/retention/{category}", post(set_retention))
        .route("/console/{org}/security-events", get(security_events))
}

/// The audit search's fields.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct AuditQuery {
    action: Option<String>,
    actor: Option<String>,
    target: Option<String>,
    since: Option<String>,
    until: Option<String>,
    from: Option<u64>,
}

/// An empty field is no filter.
fn given(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

/// The org's audit log, searchable by action, actor, target and time; each entry with a
/// "Verify" button that checks its inclusion proof against the latest signed checkpoint in
/// the browser.
async fn audit(
    State(state): State<AppState>,
    signed: Signed,
    Path(org): Path<String>,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<Response, PageError> {
    let filter = AuditFilter {
        since: crate::inputs::time("since", given(&q.since).as_deref())?,
        until: crate::inputs::time("until", given(&q.until).as_deref())?,
        actor: given(&q.actor),
        action: given(&q.action),
        target: given(&q.target),
    };
    let from = crate::inputs::log_index("from", q.from.unwrap_or(0))?;
    let entries = state
        .custos
        .audit_events(&signed.caller, Some(&org), &filter, from, AUDIT_PAGE)
        .await?;
    let key = state.custos.signing_key(&signed.caller).await?;
    let checkpoint = state.custos.audit_checkpoint(&signed.caller).await?;
    let value = |v: &Option<String>| v.clone().unwrap_or_default();
    let base = format!("/console/{org}/audit");
    let body = html! {
        form.filters method="get" action=(base) {
            @for (id, label, name, v) in [("a-action", "Action", "action", value(&q.action)), ("a-actor", "Actor", "actor", value(&q.actor)), ("a-target", "Target", "target", value(&q.target)), ("a-since", "Since", "since", value(&q.since)), ("a-until", "Until", "until", value(&q.until))] {
                div { label for=(id) { (label) } input id=(id) name=(name) type="text" value=(v); }
            }
            button type="submit" { "Search" }
        }
        p.muted { "Actions like " code { "request.extend" } "; actors like " code { "member:<id>" } "; targets like " code { "request:<id>" } "; times as RFC 3339." }
        (key_panel(&key.verifier_key))
        section aria-labelledby="growth-heading" {
            h2 #growth-heading { "Has the log only grown?" }
            p.muted { "Save the latest checkpoint now; paste it here later to check, in your browser, that every entry it covers is still there unchanged." }
            details {
                summary { "The latest checkpoint" }
                pre.note tabindex="0" aria-label="The latest checkpoint" { (checkpoint.checkpoint) }
            }
            label for="saved-checkpoint" { "Saved checkpoint" }
            textarea #saved-checkpoint rows="5" spellcheck="false" {}
            p {
                button #verify-growth type="button" hidden { "Check consistency" }
                " "
                output #growth-check .check aria-live="polite" {}
            }
        }
        h2 { "Entries" }
        @if entries.items.is_empty() {
            p.muted { "No entries." }
        } @else {
            table {
                thead { tr {
                    th scope="col" { "#" } th scope="col" { "Time" } th scope="col" { "Action" }
                    th scope="col" { "Outcome" } th scope="col" { "Actor" } th scope="col" { "Target" } th scope="col" { "Verified" }
                } }
                tbody {
                    @for e in &entries.items {
                        @let shown = Shown::of(&e.event);
                        tr {
                            td { (e.index) }
                            td { (when(e.event.time)) }
                            td { code { (shown.action) } }
                            td { (shown.outcome) }
                            td { (e.event.actor.name()) }
                            td { (shown.target) }
                            td { (verify_button(e.index, &e.leaf, &shown)) }
                        }
                    }
                }
            }
        }
        @if let Some(next) = entries.next_from {
            p { a href={ (base) "?from=" (next) } { "Next entries" } }
        }
    };
    let mut page = page("Audit log", Some(&org), &signed, body);
    page.scripts.push("verify.js");
    Ok(page.render(StatusCode::OK))
}

/// What an audit row shows, and the same fields as the signed entry spells them (JSON), which
/// the browser compares with the entry's bytes before it checks their proof.
pub(crate) struct Shown {
    /// The action, as the row shows it.
    pub(crate) action: String,
    /// The outcome, as the row shows it.
    pub(crate) outcome: String,
    /// The target, as the row shows it.
    pub(crate) target: String,
    /// Action, actor, outcome and target as the entry's JSON spells them.
    signed: [String; 4],
}

impl Shown {
    /// The fields of `event` as a row shows them and as its entry encodes them.
    pub(crate) fn of(event: &custos_audit::AuditEvent) -> Shown {
        let json = |v: serde_json::Value| serde_json::to_string(&v).unwrap_or_default();
        let action = serde_json::to_value(event.action).unwrap_or_default();
        let outcome = serde_json::to_value(event.outcome).unwrap_or_default();
        let target = event.target.as_ref().map(|t| t.to_string());
        Shown {
            action: action.as_str().unwrap_or_default().to_string(),
            outcome: outcome.as_str().unwrap_or_default().to_string(),
            target: target.clone().unwrap_or_default(),
            signed: [
                json(action),
                json(serde_json::to_value(&event.actor).unwrap_or_default()),
                json(outcome),
                json(serde_json::to_value(target).unwrap_or_default()),
            ],
        }
    }
}

/// The "Verify" button of an audit entry (shown once the verifier script runs) and where its
/// result goes.
pub(crate) fn verify_button(index: u64, leaf: &str, shown: &Shown) -> maud::Markup {
    let [action, actor, outcome, target] = &shown.signed;
    html! {
        button.verify-entry.secondary type="button" hidden
            data-index=(index) data-leaf=(leaf)
            data-action=(action) data-actor=(actor)
            data-outcome=(outcome) data-target=(target)
            aria-label={ "Verify entry " (index) } { "Verify" }
        " "
        output.check id={ "check-" (index) } aria-live="polite" {}
    }
}

/// The deletion log's page position.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct AfterQuery {
    after: Option<String>,
}

/// What was purged, when, why, and its audit entry.
async fn deletion_log(
    State(state): State<AppState>,
    signed: Signed,
    Path(org): Path<String>,
    ApiQuery(q): ApiQuery<AfterQuery>,
) -> Result<Response, PageError> {
    let rows = state
        .custos
        .deletion_log(
            &signed.caller,
            &org,
            q.after.as_deref().filter(|a| !a.is_empty()),
            100,
        )
        .await?;
    let body = html! {
        @if rows.is_empty() { p.muted { "Nothing purged yet." } } @else {
            table {
                thead { tr { th scope="col" { "Record" } th scope="col" { "Category" } th scope="col" { "Created" } th scope="col" { "Due" } th scope="col" { "Purged" } th scope="col" { "Reason" } th scope="col" { "Audit entry" } } }
                tbody {
                    @for d in &rows {
                        tr {
                            td { code { (short(&d.record_id)) } } td { (d.category) } td { (when(d.created_at)) }
                            td { (when(d.due_at)) } td { (when(d.purged_at)) } td { (d.reason) }
                            td { @if let Some(i) = d.audit_index { (i) } }
                        }
                    }
                }
            }
            @if rows.len() == 100 {
                @if let Some(last) = rows.last() {
                    p { a href={ "/console/" (org) "/deletion-log?after=" (last.record_id) } { "Next page" } }
                }
            }
        }
    };
    Ok(page("Deletion log", Some(&org), &signed, body).render(StatusCode::OK))
}

/// Active legal holds, with place and release.
async fn holds(
    State(state): State<AppState>,
    signed: Signed,
    Path(org): Path<String>,
) -> Result<Response, PageError> {
    let holds = state.custos.holds(&signed.caller, &org).await?;
    let csrf = signed.csrf();
    let categories: Vec<String> = state.custos.policy().categories.keys().cloned().collect();
    let body = html! {
        @if holds.is_empty() { p.muted { "No active holds." } } @else {
            table {
                thead { tr { th scope="col" { "Placed" } th scope="col" { "Reason" } th scope="col" { "On" } th scope="col" { "Release" } } }
                tbody {
                    @for h in &holds {
                        tr {
                            td { (when(h.created_at)) }
                            td { (h.reason) }
                            td {
                                @if h.on_subject { "a subject" }
                                @if let Some(c) = &h.category { @if h.on_subject { ", " } "category " (c) }
                                @if !h.on_subject && h.category.is_none() { "the whole org" }
                            }
                            td {
                                form.inline method="post" action={ "/console/" (org) "/holds/" (h.id) "/release" } {
                                    input type="hidden" name="csrf" value=(csrf);
                                    button.secondary type="submit" aria-label={ "Release hold " (short(&h.id)) } { "Release" }
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Place a hold" }
        form.stack method="post" action={ "/console/" (org) "/holds" } {
            input type="hidden" name="csrf" value=(csrf);
            label for="h-reason" { "Reason" }
            input #h-reason name="reason" type="text" required;
            label for="h-subject" { "Subject (optional)" }
            input #h-subject name="subject" type="text" autocomplete="off";
            label for="h-category" { "Category (optional)" }
            select #h-category name="category" {
                option value="" { "Every category" }
                @for c in &categories { option value=(c) { (c) } }
            }
            button type="submit" { "Place hold" }
        }
    };
    Ok(page("Legal holds", Some(&org), &signed, body).render(StatusCode::OK))
}

/// A new hold's fields.
#[derive(Debug, Deserialize)]
pub(crate) struct HoldForm {
    csrf: Option<String>,
    reason: String,
    subject: Option<String>,
    category: Option<String>,
}

/// Place a hold (as `POST /v1/orgs/{org}/holds`).
async fn place_hold(
    State(state): State<AppState>,
    signed: Signed,
    Path(org): Path<String>,
    parts: Parts,
    form: Result<Form<HoldForm>, FormRejection>,
) -> Result<Response, PageError> {
    let form = read_form(form)?;
    signed.check_form(&parts, form.csrf.as_deref())?;
    let hold = NewHold {
        reason: form.reason,
        subject: given(&form.subject),
        category: given(&form.category),
    };
    state.custos.create_hold(&signed.caller, &org, hold).await?;
    Ok(web::see_other(&format!("/console/{org}/holds"), vec![]))
}

/// Release a hold (as `DELETE /v1/orgs/{org}/holds/{id}`).
async fn release_hold(
    State(state): State<AppState>,
    signed: Signed,
    Path((org, id)): Path<(String, String)>,
    parts: Parts,
    form: Result<Form<crate::console::CsrfForm>, FormRejection>,
) -> Result<Response, PageError> {
    let form = read_form(form)?;
    signed.check_form(&parts, form.csrf.as_deref())?;
    state.custos.release_hold(&signed.caller, &org, &id).await?;
    Ok(web::see_other(&format!("/console/{org}/holds"), vec![]))
}

/// Retention per category: the policy's, the org's override and its bounds, an edit form
/// where the policy lets the org choose, and the disclosure the policy generates.
async fn retention(
    State(state): State<AppState>,
    signed: Signed,
    Path(org): Path<String>,
) -> Result<Response, PageError> {
    let rows = state.custos.retention(&signed.caller, &org).await?;
    let policy = state.custos.policy();
    let csrf = signed.csrf();
    let body = html! {
        table {
            thead { tr { th scope="col" { "Category" } th scope="col" { "Retention" } th scope="col" { "Policy default" } th scope="col" { "The org may choose" } } }
            tbody {
                @for r in &rows {
                    @let category = policy.category(&r.category);
                    tr {
                        td { (r.category) }
                        td { (r.retention) @if r.overridden { " " span.muted { "(the org's)" } } }
                        td { @if let Some(c) = category { (c.retention.to_string()) } }
                        td {
                            @match category.and_then(|c| c.org_configurable.as_ref()) {
                                Some(bounds) => {
                                    form.inline method="post" action={ "/console/" (org) "/retention/" (r.category) } {
                                        input type="hidden" name="csrf" value=(csrf);
                                        label for={ "ret-" (r.category) } { (bounds.min.to_string()) " to " (bounds.max.to_string()) }
                                        input id={ "ret-" (r.category) } name="retention" type="text" value=(r.retention) required;
                                        " "
                                        button type="submit" aria-label={ "Save retention of " (r.category) } { "Save" }
                                    }
                                }
                                None => { span.muted { "fixed by the policy" } }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Disclosure" }
        p.muted { "Generated from the policy (" code { "custos policy disclosure" } "), for your privacy notice." }
        pre.note tabindex="0" aria-label="Disclosure" { (policy.render_disclosure()) }
    };
    Ok(page("Retention", Some(&org), &signed, body).render(StatusCode::OK))
}

/// A retention override's fields.
#[derive(Debug, Deserialize)]
pub(crate) struct RetentionForm {
    csrf: Option<String>,
    retention: String,
}

/// Set a category's retention within its bounds (as `PUT .../retention/{category}`).
async fn set_retention(
    State(state): State<AppState>,
    signed: Signed,
    Path((org, category)): Path<(String, String)>,
    parts: Parts,
    form: Result<Form<RetentionForm>, FormRejection>,
) -> Result<Response, PageError> {
    let form = read_form(form)?;
    signed.check_form(&parts, form.csrf.as_deref())?;
    state
        .custos
        .set_retention(&signed.caller, &org, &category, form.retention.trim())
        .await?;
    Ok(web::see_other(&format!("/console/{org}/retention"), vec![]))
}

/// The security events page's position.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct CursorQuery {
    cursor: Option<String>,
}

/// The org's security events, newest first, each with its audit entry.
async fn security_events(
    State(state): State<AppState>,
    signed: Signed,
    Path(org): Path<String>,
    ApiQuery(q): ApiQuery<CursorQuery>,
) -> Result<Response, PageError> {
    let events = state
        .custos
        .security_events(
            &signed.caller,
            &org,
            q.cursor.as_deref().filter(|c| !c.is_empty()),
            Some(100),
        )
        .await?;
    let body = html! {
        @if events.items.is_empty() { p.muted { "No security events." } } @else {
            table {
                thead { tr { th scope="col" { "Time" } th scope="col" { "Kind" } th scope="col" { "Action" } th scope="col" { "Outcome" } th scope="col" { "Actor" } th scope="col" { "Reason" } th scope="col" { "Audit entry" } } }
                tbody {
                    @for e in &events.items {
                        tr {
                            td { (when(e.time)) }
                            td { (word(&e.kind)) }
                            td { code { (e.action) } } td { (e.outcome) } td { (e.actor) }
                            td { (e.reason.as_deref().unwrap_or("")) } td { (e.audit_index) }
                        }
                    }
                }
            }
            @if let Some(next) = &events.next_cursor {
                p { a href={ "/console/" (org) "/security-events?cursor=" (next) } { "Older events" } }
            }
        }
    };
    Ok(page("Security events", Some(&org), &signed, body).render(StatusCode::OK))
}
