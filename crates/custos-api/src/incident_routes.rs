//! Incidents (operators): open one, list them, read one with its clocks and timeline, move
//! its status forward, compute the data subjects it affected, tell the affected orgs, report
//! it; and the subject routes incidents and notices rely on (reference, contact).

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use utoipa::IntoParams;

use custos_core::incident_notices::IncidentNotifications;
use custos_core::incident_report::IncidentReport;
use custos_core::incidents::{
    AffectedSubjects, IncidentPage, IncidentStatusChange, IncidentView, NewIncident,
    SubjectReference,
};
use custos_core::{ContactChange, ContactState};

use crate::request_routes::{attachment, FormatQuery};
use crate::routes::{ApiJson, ApiQuery, Path};
use crate::{inputs, ApiError, AppState, Authed};

type ApiResult<T> = Result<T, ApiError>;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/incidents", post(create_incident).get(list_incidents))
        .route("/v1/incidents/{id}", get(get_incident))
        .route("/v1/incidents/{id}/status", post(set_incident_status))
        .route("/v1/incidents/{id}/affected", get(incident_affected))
        .route("/v1/incidents/{id}/report", get(incident_report))
        .route("/v1/incidents/{id}/notifications", post(notify_incident))
        .route(
            "/v1/orgs/{org}/subjects/{subject}/reference",
            get(subject_reference),
        )
        .route(
            "/v1/orgs/{org}/subjects/{subject}/contact",
            put(set_subject_contact),
        )
}

/// The incident's report: clocks, timeline, affected counts per org, and for each step the
/// audit event that recorded it with its inclusion proof against the signed `checkpoint`
/// (check it offline with `tools/audit-verify/verify.py report`); `?format=pdf` for people.
#[utoipa::path(get, tag = "incidents", path = "/v1/incidents/{id}/report",
    params(("id" = String, Path), FormatQuery),
    responses((status = 200, description = "the report (JSON with its evidence, or a PDF rendering)",
        content((IncidentReport = "application/json"), ("application/pdf")))),
    security(("bearer" = [])))]
pub(crate) async fn incident_report(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<FormatQuery>,
) -> ApiResult<Response> {
    let pdf = match q.format.as_deref() {
        None | Some("json") => false,
        Some("pdf") => true,
        Some(_) => return Err(ApiError::invalid("format", "must be json or pdf")),
    };
    let report = state.custos.incident_report(&caller, &id).await?;
    if !pdf {
        return Ok(Json(report).into_response());
    }
    let mut out = Vec::new();
    custos_export::certificate_pdf("Incident report", &report.lines(), &mut out)
        .map_err(|e| ApiError::from(custos_core::CoreError::internal_from("pdf", e)))?;
    let name = format!("incident-{}.pdf", report.incident.id);
    Ok((attachment("application/pdf", &name), out).into_response())
}

/// Tells every affected org not told yet: its channels get the incident notice with its
/// counts, its webhooks one `incident.subject_notice` per affected subject (by reference), so
/// the org can tell each person. Orgs told before are listed, not told again.
#[utoipa::path(post, tag = "incidents", path = "/v1/incidents/{id}/notifications",
    params(("id" = String, Path)),
    responses((status = 200, body = IncidentNotifications)),
    security(("bearer" = [])))]
pub(crate) async fn notify_incident(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(id): Path<String>,
) -> ApiResult<Json<IncidentNotifications>> {
    Ok(Json(state.custos.notify_incident(&caller, &id).await?))
}

/// Sets (or, with `"email": null`, removes) a data subject's contact: an e-mail address kept
/// sealed under the subject's key (erased with it), for notices about the person's requests
/// where the org's `channels.email_subjects` is on (owner, admin, service).
#[utoipa::path(put, tag = "subjects", path = "/v1/orgs/{org}/subjects/{subject}/contact",
    params(("org" = String, Path), ("subject" = String, Path)),
    request_body = ContactChange,
    responses((status = 200, body = ContactState)),
    security(("bearer" = [])))]
pub(crate) async fn set_subject_contact(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path((org, subject)): Path<(String, String)>,
    ApiJson(change): ApiJson<ContactChange>,
) -> ApiResult<Json<ContactState>> {
    Ok(Json(
        state
            .custos
            .set_subject_contact(&caller, &org, &subject, change)
            .await?,
    ))
}

/// A data subject's keyed reference: what audit events, certificates of deletion and an
/// incident's affected list name the subject by (owner, admin, auditor).
#[utoipa::path(get, tag = "subjects", path = "/v1/orgs/{org}/subjects/{subject}/reference",
    params(("org" = String, Path), ("subject" = String, Path)),
    responses((status = 200, body = SubjectReference)),
    security(("bearer" = [])))]
pub(crate) async fn subject_reference(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path((org, subject)): Path<(String, String)>,
) -> ApiResult<Json<SubjectReference>> {
    Ok(Json(
        state
            .custos
            .subject_reference(&caller, &org, &subject)
            .await?,
    ))
}

/// Open an incident: its clocks (`[incidents] contain, assess, notify`) run from
/// `detected_at`.
#[utoipa::path(post, tag = "incidents", path = "/v1/incidents",
    request_body = NewIncident,
    responses((status = 201, body = IncidentView)),
    security(("bearer" = [])))]
pub(crate) async fn create_incident(
    State(state): State<AppState>,
    Authed(caller): Authed,
    ApiJson(new): ApiJson<NewIncident>,
) -> ApiResult<(StatusCode, Json<IncidentView>)> {
    let created = state.custos.create_incident(&caller, new).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// Incident paging.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct IncidentQuery {
    /// Only incidents that are not closed.
    #[serde(default)]
    open: bool,
    /// Where the previous page ended (its `next_cursor`).
    cursor: Option<String>,
    /// Page size, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// Incidents, newest first, with their clocks and overdue flags.
#[utoipa::path(get, tag = "incidents", path = "/v1/incidents",
    params(IncidentQuery),
    responses((status = 200, body = IncidentPage)),
    security(("bearer" = [])))]
pub(crate) async fn list_incidents(
    State(state): State<AppState>,
    Authed(caller): Authed,
    ApiQuery(q): ApiQuery<IncidentQuery>,
) -> ApiResult<Json<IncidentPage>> {
    let cursor = inputs::cursor(q.cursor.as_deref())?;
    let limit = inputs::limit(q.limit)?;
    Ok(Json(
        state
            .custos
            .incidents(&caller, q.open, cursor, limit)
            .await?,
    ))
}

/// One incident: status, scope, clocks (due, met, overdue) and every step with who and when.
#[utoipa::path(get, tag = "incidents", path = "/v1/incidents/{id}",
    params(("id" = String, Path)),
    responses((status = 200, body = IncidentView)),
    security(("bearer" = [])))]
pub(crate) async fn get_incident(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(id): Path<String>,
) -> ApiResult<Json<IncidentView>> {
    Ok(Json(state.custos.incident(&caller, &id).await?))
}

/// Move an incident forward (`detected` → `contained` → `assessed` → `notified` →
/// `remediated` → `closed`); `409` for a status that is not later than the current one.
#[utoipa::path(post, tag = "incidents", path = "/v1/incidents/{id}/status",
    params(("id" = String, Path)),
    request_body = IncidentStatusChange,
    responses((status = 200, body = IncidentView)),
    security(("bearer" = [])))]
pub(crate) async fn set_incident_status(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(id): Path<String>,
    ApiJson(change): ApiJson<IncidentStatusChange>,
) -> ApiResult<Json<IncidentView>> {
    Ok(Json(
        state
            .custos
            .set_incident_status(&caller, &id, change)
            .await?,
    ))
}

/// The data subjects the incident's actors obtained data of within its window, from the
/// audit log: records read, revealed or downloaded (per category) and exported (under
/// `exports`), by subject reference per org.
#[utoipa::path(get, tag = "incidents", path = "/v1/incidents/{id}/affected",
    params(("id" = String, Path)),
    responses((status = 200, body = AffectedSubjects)),
    security(("bearer" = [])))]
pub(crate) async fn incident_affected(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let affected = state.custos.incident_affected(&caller, &id).await?;
    let body = axum::body::Body::from_stream(futures::stream::iter(
        affected_chunks(affected).map(Ok::<_, std::convert::Infallible>),
    ));
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// Subjects written per chunk of a streamed affected list.
const SUBJECTS_PER_CHUNK: usize = 1000;

/// The affected list as JSON, in chunks of at most [`SUBJECTS_PER_CHUNK`] subjects, so a list
/// of millions is sent as it is written rather than built whole a second time.
fn affected_chunks(affected: AffectedSubjects) -> impl Iterator<Item = bytes::Bytes> {
    let head = std::iter::once(bytes::Bytes::from_static(b"{\"orgs\":["));
    let body = affected
        .orgs
        .into_iter()
        .enumerate()
        .flat_map(move |(i, org)| {
            let open = format!(
                "{}{{\"org\":{},\"subjects\":[",
                if i == 0 { "" } else { "," },
                serde_json::Value::String(org.org)
            );
            let pieces: Vec<bytes::Bytes> = org
                .subjects
                .chunks(SUBJECTS_PER_CHUNK)
                .enumerate()
                .map(|(n, chunk)| {
                    let mut out = Vec::new();
                    for (j, subject) in chunk.iter().enumerate() {
                        if n > 0 || j > 0 {
                            out.push(b',');
                        }
                        serde_json::to_writer(&mut out, subject).expect("subjects serialize");
                    }
                    bytes::Bytes::from(out)
                })
                .collect();
            std::iter::once(bytes::Bytes::from(open))
                .chain(pieces)
                .chain(std::iter::once(bytes::Bytes::from_static(b"]}")))
        });
    head.chain(body)
        .chain(std::iter::once(bytes::Bytes::from_static(b"]}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use custos_core::incidents::{AffectedOrg, AffectedSubject};

    #[test]
    fn the_streamed_list_is_the_json_of_the_list() {
        let subject = |n: usize| AffectedSubject {
            subject_ref: format!("{n:032x}"),
            categories: [("messages".to_string(), n as u64 + 1)].into(),
        };
        for (orgs, subjects) in [(0, 0), (1, 0), (1, 1), (2, 2500), (3, 1000)] {
            let affected = AffectedSubjects {
                orgs: (0..orgs)
                    .map(|o| AffectedOrg {
                        org: format!("org-\"{o}"),
                        subjects: (0..subjects).map(subject).collect(),
                    })
                    .collect(),
            };
            let streamed: Vec<u8> = affected_chunks(affected.clone())
                .flat_map(|b| b.to_vec())
                .collect();
            let parsed: serde_json::Value = serde_json::from_slice(&streamed)
                .unwrap_or_else(|e| panic!("{orgs} orgs, {subjects} subjects: {e}"));
            assert_eq!(parsed, serde_json::to_value(&affected).unwrap());
        }
    }
}
