//! The console's org overview and its people pages: members, the access review, support
//! requests (approve, deny, revoke, and the accesses made under a grant), settings,
//! incidents with their clocks, and the operators' deployment page.

use axum::extract::rejection::FormRejection;
use axum::extract::{Form, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use maud::{html, Markup};
use serde::Deserialize;

use custos_core::{CoreError, RequestQuery, SupportApproval};

use crate::console::{page, read_form, when, word, Signed};
use crate::console_requests::{request_table, short};
use crate::routes::{ApiQuery, Path};
use crate::web::{self, PageError};
use crate::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/console/deployment", get(deployment))
        .route("/console/incidents", get(incidents))
        .route("/console/incidents/{id}", get(incident))
        .route("/console/{org}", get(overview))
        .route("/console/{org}/members", get(members))
        .route("/console/{org}/access-review", get(access_review))
        .route("/console/{org}/settings", get(settings))
        .route("/console/{org}/support-requests", get(support))
        .route(
            "/console/{org}/support-requests/{id}/approve",
            post(approve),
        )
        .route("/console/{org}/support-requests/{id}/deny", post(deny))
        .route("/console/{org}/support-requests/{id}/revoke", post(revoke))
        .route(
            "/console/{org}/support-requests/{id}/accesses",
            get(accesses),
        )
}

/// A section of the overview the caller's role may not read says so instead of failing
/// the page; any other error fails it.
fn section<T>(
    result: Result<T, CoreError>,
    show: impl FnOnce(T) -> Markup,
) -> Result<Markup, PageError> {
    match result {
        Ok(value) => Ok(show(value)),
        Err(e) => {
            let error = crate::ApiError::from(e);
            if error.problem_doc().status == 403 {
                Ok(html! { p.muted { "Not available to you." } })
            } else {
                Err(error.into())
            }
        }
    }
}

/// The org at a glance: open requests by due date, late items, active holds, active support
/// grants and open incidents.
async fn overview(
    State(state): State<AppState>,
    signed: Signed,
    Path(org): Path<String>,
) -> Result<Response, PageError> {
    let custos = &state.custos;
    let caller = &signed.caller;
    let view = custos.get_org(caller, &org).await?;
    let open = RequestQuery {
        overdue: false,
        limit: Some(10),
        ..Default::default()
    };
    let requests = section(custos.list_requests(caller, &org, open).await, |p| {
        let open: Vec<_> = p.items.into_iter().filter(|r| r.status.is_open()).collect();
        request_table(&org, &open)
    })?;
    let late = section(custos.overdue(caller, Some(&org)).await, |items| {
        html! {
            @if items.is_empty() { p { "Nothing is late." } } @else {
                p.overdue { (items.len()) " late" }
                ul { @for i in items.iter().take(20) {
                    li { (i.category) " · " (word(&i.kind)) " · due " (when(i.deadline)) @if i.held { " (held)" } }
                } }
            }
        }
    })?;
    let usage = section(custos.usage(caller, &org).await, |u| {
        html! {
            p.muted { "Counted " (when(u.counted_at)) "; counted again in the background once a minute old." }
        @if u.categories.is_empty() { p.muted { "No records yet." } } @else {
                table {
                    thead { tr {
                        th scope="col" { "Category" } th scope="col" { "State" } th scope="col" { "Records" }
                        th scope="col" { "Stored" } th scope="col" { "To archive by " (when(u.due_until)) }
                        th scope="col" { "To purge by " (when(u.due_until)) }
                    } }
                    tbody { @for c in &u.categories { tr {
                        td { (c.category) } td { (c.state) } td { (c.records) } td { (bytes(c.bytes)) }
                        td { (c.archive_due) } td { (c.purge_due) }
                    } } }
                }
            }
        }
    })?;
    let holds = section(custos.holds(caller, &org).await, |h| {
        html! {
            p.figure { (h.len()) } p { "active holds · " a href={ "/console/" (org) "/holds" } { "Holds" } }
        }
    })?;
    let grants = section(custos.support_requests(caller, &org).await, |g| {
        let active = g.iter().filter(|s| s.active).count();
        html! { p.figure { (active) } p { "active support grants · " a href={ "/console/" (org) "/support-requests" } { "Support" } } }
    })?;
    let incidents = if caller.principal.is_operator() {
        Some(section(
            custos.incidents(caller, true, None, 100).await,
            |p| {
                html! {
                    p.figure { (p.items.len()) } p { "open incidents · " a href="/console/incidents" { "Incidents" } }
                }
            },
        )?)
    } else {
        None
    };
    let body = html! {
        p { "Org " strong { (view.name) } " · " (view.region) " · " (view.status) }
        div.cards {
            section.card { h2 { "Late items" } (late) }
            section.card { h2 { "Legal holds" } (holds) }
            section.card { h2 { "Support access" } (grants) }
            @if let Some(incidents) = incidents { section.card { h2 { "Incidents" } (incidents) } }
        }
        h2 { "Records and storage" }
        (usage)
        h2 { "Open requests by due date" }
        (requests)
        p { a href={ "/console/" (org) "/requests?overdue=true" } { "Overdue requests" } " · " a href={ "/console/" (org) "/requests" } { "All requests" } }
    };
    Ok(page("Overview", Some(&org), &signed, body).render(StatusCode::OK))
}

/// A byte count for people (powers of 1024).
fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// The org's members (never their keys).
async fn members(
    State(state): State<AppState>,
    signed: Signed,
    Path(org): Path<String>,
) -> Result<Response, PageError> {
    let members = state.custos.list_members(&signed.caller, &org).await?;
    let body = html! {
        table {
            thead { tr { th scope="col" { "Name" } th scope="col" { "Roles" } th scope="col" { "Groups" } th scope="col" { "Second factor required" } th scope="col" { "Last used" } th scope="col" { "Disabled" } } }
            tbody { @for m in &members { tr {
                td { (m.name) } td { (m.roles.join(", ")) } td { (m.groups.join(", ")) }
                td { @if m.mfa { "yes" } @else { "no" } }
                td { @if let Some(t) = m.last_used_at { (when(t)) } @else { span.muted { "never" } } }
                td { @if let Some(t) = m.disabled_at { (when(t)) } }
            } } }
        }
    };
    Ok(page("Members", Some(&org), &signed, body).render(StatusCode::OK))
}

/// The access review: every member, its second factor, last use, and whether it is
/// inactive.
async fn access_review(
    State(state): State<AppState>,
    signed: Signed,
    Path(org): Path<String>,
) -> Result<Response, PageError> {
    let review = state.custos.access_review(&signed.caller, &org).await?;
    let body = html! {
        p.muted { "Generated " (when(review.generated_at)) @if let Some(after) = &review.inactive_member_after { "; inactive after " (after) } ". Record the review with " code { "POST /v1/orgs/{org}/access-review" } "." }
        table {
            thead { tr { th scope="col" { "Name" } th scope="col" { "Roles" } th scope="col" { "TOTP" } th scope="col" { "Identity bound" } th scope="col" { "Last used" } th scope="col" { "Inactive" } } }
            tbody { @for m in &review.members { tr {
                td { (m.name) } td { (m.roles.join(", ")) }
                td { @if m.totp_enrolled { "enrolled" } @else if m.mfa_required { span.overdue { "required, not enrolled" } } @else { "no" } }
                td { @if m.identity_bound { "yes" } @else { "no" } }
                td { @if let Some(t) = m.last_used_at { (when(t)) } @else { span.muted { "never" } } }
                td { @if m.inactive { span.overdue { "inactive" } } }
            } } }
        }
    };
    Ok(page("Access review", Some(&org), &signed, body).render(StatusCode::OK))
}

/// The org's settings, as the API returns them.
async fn settings(
    State(state): State<AppState>,
    signed: Signed,
    Path(org): Path<String>,
) -> Result<Response, PageError> {
    let settings = state.custos.settings(&signed.caller, &org).await?;
    let json = serde_json::to_string_pretty(&settings).unwrap_or_default();
    let body = html! {
        p.muted { "Change them with " code { "PATCH /v1/orgs/{org}/settings" } " (owners and admins)." }
        pre.note tabindex="0" aria-label="Settings" { (json) }
    };
    Ok(page("Settings and channels", Some(&org), &signed, body).render(StatusCode::OK))
}

/// Support requests: what the operator asked, its state, and approve, deny or revoke.
async fn support(
    State(state): State<AppState>,
    signed: Signed,
    Path(org): Path<String>,
) -> Result<Response, PageError> {
    let requests = state.custos.support_requests(&signed.caller, &org).await?;
    let csrf = signed.csrf();
    let body = html! {
        @if requests.is_empty() { p.muted { "No support requests." } } @else {
            table {
                thead { tr { th scope="col" { "Asked" } th scope="col" { "Justification" } th scope="col" { "Scope" } th scope="col" { "Duration" } th scope="col" { "Status" } th scope="col" { "Actions" } } }
                tbody { @for s in &requests {
                    @let base = format!("/console/{org}/support-requests/{}", s.id);
                    tr {
                        td { (when(s.created_at)) br; span.muted { (s.requested_by) } }
                        td { (s.justification) br; span.muted { "ticket " (s.ticket) } }
                        td { (s.scope) @if let Some(c) = &s.categories { " (" (c.join(", ")) ")" } }
                        td { (s.duration) }
                        td.status { (s.status) @if let Some(t) = s.active_until { br; "until " (when(t)) } }
                        td {
                            @if s.status == "pending" {
                                form.inline method="post" action={ (base) "/approve" } {
                                    input type="hidden" name="csrf" value=(csrf);
                                    label for={ "d-" (s.id) } { "Shorten to (optional)" }
                                    input id={ "d-" (s.id) } name="duration" type="text" placeholder="e.g. 2h";
                                    button type="submit" { "Approve" }
                                }
                                form.inline method="post" action={ (base) "/deny" } {
                                    input type="hidden" name="csrf" value=(csrf);
                                    button.secondary type="submit" { "Deny" }
                                }
                            }
                            @if s.active {
                                form.inline method="post" action={ (base) "/revoke" } {
                                    input type="hidden" name="csrf" value=(csrf);
                                    button.danger type="submit" { "Revoke" }
                                }
                            }
                            a href={ (base) "/accesses" } { "Accesses" }
                        }
                    }
                } }
            }
        }
    };
    Ok(page("Support requests", Some(&org), &signed, body).render(StatusCode::OK))
}

/// An approval's fields.
#[derive(Debug, Deserialize)]
pub(crate) struct ApproveForm {
    csrf: Option<String>,
    /// Shorter than asked, if given.
    duration: Option<String>,
}

/// Approve a support request, optionally for less time than asked.
async fn approve(
    State(state): State<AppState>,
    signed: Signed,
    Path((org, id)): Path<(String, String)>,
    parts: Parts,
    form: Result<Form<ApproveForm>, FormRejection>,
) -> Result<Response, PageError> {
    let form = read_form(form)?;
    signed.check_form(&parts, form.csrf.as_deref())?;
    let duration = form
        .duration
        .map(|d| d.trim().to_string())
        .filter(|d| !d.is_empty());
    state
        .custos
        .approve_support_request(&signed.caller, &org, &id, SupportApproval { duration })
        .await?;
    Ok(web::see_other(
        &format!("/console/{org}/support-requests"),
        vec![],
    ))
}

/// Deny a support request.
async fn deny(
    State(state): State<AppState>,
    signed: Signed,
    Path((org, id)): Path<(String, String)>,
    parts: Parts,
    form: Result<Form<crate::console::CsrfForm>, FormRejection>,
) -> Result<Response, PageError> {
    end_support(&state, &signed, &org, &id, &parts, form, Ending::Deny).await
}

/// Revoke an active support grant.
async fn revoke(
    State(state): State<AppState>,
    signed: Signed,
    Path((org, id)): Path<(String, String)>,
    parts: Parts,
    form: Result<Form<crate::console::CsrfForm>, FormRejection>,
) -> Result<Response, PageError> {
    end_support(&state, &signed, &org, &id, &parts, form, Ending::Revoke).await
}

/// How a support request ends.
enum Ending {
    Deny,
    Revoke,
}

/// Denies or revokes a support request from its form, then shows the list again.
async fn end_support(
    state: &AppState,
    signed: &Signed,
    org: &str,
    id: &str,
    parts: &Parts,
    form: Result<Form<crate::console::CsrfForm>, FormRejection>,
    ending: Ending,
) -> Result<Response, PageError> {
    let form = read_form(form)?;
    signed.check_form(parts, form.csrf.as_deref())?;
    let custos = &state.custos;
    match ending {
        Ending::Deny => custos.deny_support_request(&signed.caller, org, id).await?,
        Ending::Revoke => {
            custos
                .revoke_support_request(&signed.caller, org, id)
                .await?
        }
    };
    Ok(web::see_other(
        &format!("/console/{org}/support-requests"),
        vec![],
    ))
}

/// Every access made under a grant, each with its audit entry and inclusion proof.
async fn accesses(
    State(state): State<AppState>,
    signed: Signed,
    Path((org, id)): Path<(String, String)>,
) -> Result<Response, PageError> {
    let list = state
        .custos
        .support_accesses(&signed.caller, &org, &id, 0, None)
        .await?;
    let key = state.custos.signing_key(&signed.caller).await?;
    let body = html! {
        (crate::console_requests::key_panel(&key.verifier_key))
        @if list.accesses.is_empty() { p.muted { "No accesses under this grant." } } @else {
            table {
                thead { tr { th scope="col" { "#" } th scope="col" { "Time" } th scope="col" { "Action" } th scope="col" { "Target" } th scope="col" { "Verified" } } }
                tbody { @for a in &list.accesses {
                    @let shown = crate::console_evidence::Shown::of(&a.event);
                    tr {
                        td { (a.audit_index) } td { (when(a.event.time)) } td { code { (shown.action) } }
                        td { (shown.target) }
                        td { (crate::console_evidence::verify_button(a.audit_index, &a.leaf, &shown)) }
                    }
                } }
            }
        }
    };
    let title = format!("Accesses under grant {}", short(&id));
    let mut page = page(&title, Some(&org), &signed, body);
    page.scripts.push("verify.js");
    Ok(page.render(StatusCode::OK))
}

/// The incidents page's filters.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct IncidentsQuery {
    /// `true`: open incidents only.
    open: Option<String>,
    cursor: Option<String>,
}

/// Incidents the caller may see, with their clocks.
async fn incidents(
    State(state): State<AppState>,
    signed: Signed,
    ApiQuery(q): ApiQuery<IncidentsQuery>,
) -> Result<Response, PageError> {
    let list = state
        .custos
        .incidents(
            &signed.caller,
            q.open.as_deref() == Some("true"),
            q.cursor.as_deref().filter(|c| !c.is_empty()),
            100,
        )
        .await?;
    let body = html! {
        p { a href="/console/incidents?open=true" { "Open incidents only" } }
        @if list.items.is_empty() { p.muted { "No incidents." } } @else {
            table {
                thead { tr { th scope="col" { "Detected" } th scope="col" { "Title" } th scope="col" { "Status" } th scope="col" { "Clocks" } } }
                tbody { @for i in &list.items { tr {
                    td { (when(i.detected_at)) }
                    td { a href={ "/console/incidents/" (i.id) } { (i.title) } }
                    td.status { (word(&i.status)) }
                    td { @for c in &i.clocks {
                        (c.name) ": " (when(c.due))
                        @if let Some(t) = c.met_at { " (met " (when(t)) ")" } @else if c.overdue { " " span.overdue { "Overdue" } }
                        br;
                    } }
                } } }
            }
            @if let Some(next) = &list.next_cursor { p { a href={ "/console/incidents?cursor=" (next) } { "More" } } }
        }
    };
    Ok(page("Incidents", None, &signed, body).render(StatusCode::OK))
}

/// One incident: its clocks, timeline and the notices sent with their affected counts.
async fn incident(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let i = state.custos.incident(&signed.caller, &id).await?;
    let body = html! {
        p { "Status " strong { (word(&i.status)) } " · detected " (when(i.detected_at)) " · opened by " (i.opened_by) }
        h2 { "Clocks" }
        ul { @for c in &i.clocks { li {
            (c.name) ": due " (when(c.due))
            @if let Some(t) = c.met_at { " · met " (when(t)) } @else if c.overdue { " " span.overdue { "Overdue" } }
        } } }
        h2 { "Timeline" }
        ol { @for s in &i.timeline { li { (when(s.at)) " · " (word(&s.status)) " · " (s.actor) @if let Some(n) = &s.note { " · " (n) } } } }
        h2 { "Notices and affected counts" }
        @if i.notifications.is_empty() { p.muted { "No org notified yet." } } @else {
            table {
                thead { tr { th scope="col" { "Org" } th scope="col" { "Subjects" } th scope="col" { "Records" } th scope="col" { "Messages" } th scope="col" { "Notified" } } }
                tbody { @for n in &i.notifications { tr {
                    td { code { (short(&n.org)) } } td { (n.subjects) } td { (n.records) } td { (n.messages) } td { (when(n.notified_at)) " by " (n.by) }
                } } }
            }
        }
    };
    Ok(page(&i.title, None, &signed, body).render(StatusCode::OK))
}

/// The operators' deployment page: the orgs (each opens only with a grant).
async fn deployment(State(state): State<AppState>, signed: Signed) -> Result<Response, PageError> {
    let orgs = state.custos.list_orgs(&signed.caller).await?;
    let body = html! {
        p.muted { "An org's pages open to an operator only under a support grant its owner or admin approved." }
        table {
            thead { tr { th scope="col" { "Org" } th scope="col" { "Region" } th scope="col" { "Status" } th scope="col" { "Created" } th scope="col" { "Support" } } }
            tbody { @for o in &orgs { tr {
                td { a href={ "/console/" (o.id) } { (o.name) } } td { (o.region) } td { (o.status) } td { (when(o.created_at)) }
                td { a href={ "/console/" (o.id) "/support-requests" } { "Support requests you filed" } }
            } } }
        }
    };
    Ok(page("Deployment", None, &signed, body).render(StatusCode::OK))
}

#[cfg(test)]
mod tests {
    #[test]
    fn byte_counts_read_as_people_say_them() {
        assert_eq!(super::bytes(0), "0 B");
        assert_eq!(super::bytes(1023), "1023 B");
        assert_eq!(super::bytes(1536), "1.5 KiB");
        assert_eq!(super::bytes(5 * 1024 * 1024 * 1024), "5.0 GiB");
    }
}
