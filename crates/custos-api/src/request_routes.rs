//! Data subject requests: filing (an erasure runs at once), listing by due time, extension,
//! rejection, bulk erasure, the export of access and portability requests, and certificates
//! of deletion.

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::StreamExt;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use custos_core::{
    BulkOutcome, NewRequest, RequestExtension, RequestPage, RequestQuery, RequestRejection,
    RequestView,
};
use custos_store::{RequestKind, RequestStatus};

use crate::routes::{ApiJson, ApiQuery, Path};
use crate::{inputs, ApiError, AppState, Authed};

type ApiResult<T> = Result<T, ApiError>;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/orgs/{org}/requests",
            post(create_request).get(list_requests),
        )
        .route("/v1/orgs/{org}/requests/bulk", post(bulk_erase))
        .route("/v1/orgs/{org}/requests/{id}", get(get_request))
        .route("/v1/orgs/{org}/requests/{id}/extend", post(extend_request))
        .route("/v1/orgs/{org}/requests/{id}/reject", post(reject_request))
        .route("/v1/orgs/{org}/requests/{id}/export", get(export))
        .route("/v1/orgs/{org}/requests/{id}/certificate", get(certificate))
        .route("/v1/schemas/export.json", get(export_schema))
}

/// File a data subject request (`access`, `portability` or `erasure`). An erasure runs at
/// once: the response shows it completed (or partially completed, naming the legal holds
/// that keep records) with its certificate id.
#[utoipa::path(post, tag = "requests", path = "/v1/orgs/{org}/requests", params(("org" = String, Path)),
    request_body = NewRequest,
    responses((status = 201, body = RequestView)),
    security(("bearer" = [])))]
pub(crate) async fn create_request(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(org): Path<String>,
    ApiJson(req): ApiJson<NewRequest>,
) -> ApiResult<(StatusCode, Json<RequestView>)> {
    Ok((
        StatusCode::CREATED,
        Json(state.custos.create_request(&caller, &org, req).await?),
    ))
}

/// Filters of a request listing.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct RequestListQuery {
    /// Only this type.
    #[serde(rename = "type")]
    #[param(rename = "type", inline)]
    kind: Option<RequestKind>,
    /// Only this status.
    #[param(inline)]
    status: Option<RequestStatus>,
    /// Only open requests past their due time.
    #[serde(default)]
    overdue: bool,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Page size, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// The org's data subject requests, earliest due first; `overdue` marks open ones past due.
#[utoipa::path(get, tag = "requests", path = "/v1/orgs/{org}/requests", params(("org" = String, Path), RequestListQuery),
    responses((status = 200, body = RequestPage)),
    security(("bearer" = [])))]
pub(crate) async fn list_requests(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(org): Path<String>,
    ApiQuery(q): ApiQuery<RequestListQuery>,
) -> ApiResult<Json<RequestPage>> {
    let cursor = inputs::cursor(q.cursor.as_deref())?.map(str::to_string);
    let limit = inputs::limit(q.limit)?;
    let query = RequestQuery {
        kind: q.kind,
        status: q.status,
        overdue: q.overdue,
        cursor,
        limit: Some(limit),
    };
    Ok(Json(
        state.custos.list_requests(&caller, &org, query).await?,
    ))
}

/// One data subject request.
#[utoipa::path(get, tag = "requests", path = "/v1/orgs/{org}/requests/{id}", params(("org" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = RequestView)),
    security(("bearer" = [])))]
pub(crate) async fn get_request(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path((org, id)): Path<(String, String)>,
) -> ApiResult<Json<RequestView>> {
    Ok(Json(state.custos.get_request(&caller, &org, &id).await?))
}

/// Extend an open request's deadline once, with a reason, by at most the policy's
/// `[deletion] erasure_extension_max` (owners and admins).
#[utoipa::path(post, tag = "requests", path = "/v1/orgs/{org}/requests/{id}/extend", params(("org" = String, Path), ("id" = String, Path)),
    request_body = RequestExtension,
    responses((status = 200, body = RequestView)),
    security(("bearer" = [])))]
pub(crate) async fn extend_request(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path((org, id)): Path<(String, String)>,
    ApiJson(req): ApiJson<RequestExtension>,
) -> ApiResult<Json<RequestView>> {
    Ok(Json(
        state.custos.extend_request(&caller, &org, &id, req).await?,
    ))
}

/// Reject a request that has not started, with a reason (owners and admins).
#[utoipa::path(post, tag = "requests", path = "/v1/orgs/{org}/requests/{id}/reject", params(("org" = String, Path), ("id" = String, Path)),
    request_body = RequestRejection,
    responses((status = 200, body = RequestView)),
    security(("bearer" = [])))]
pub(crate) async fn reject_request(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path((org, id)): Path<(String, String)>,
    ApiJson(req): ApiJson<RequestRejection>,
) -> ApiResult<Json<RequestView>> {
    Ok(Json(
        state.custos.reject_request(&caller, &org, &id, req).await?,
    ))
}

/// Subjects of a bulk erasure as JSON.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct BulkErasure {
    /// Subject identifiers, 1 to 10,000.
    subjects: Vec<String>,
}

/// Subjects from a CSV body, with the line each is on: one column, an optional `subject`
/// header row, RFC 4180 quoting. Ids are taken exactly as written (no trimming: ` carol ` is
/// not `carol`, and erasing the one named by trimming would be wrong); core refuses an id
/// with leading or trailing whitespace on its own row.
fn subjects_from_csv(body: &[u8]) -> Result<(Vec<String>, Vec<u64>), ApiError> {
    // Lines end in LF alone here: with CRLF line ends the csv reader's record positions came
    // out one line short (a browser's form naming its fourth line "line 3"), and spreadsheets
    // and browsers send CRLF. A subject id holds no line break, so no id is changed.
    let body: Vec<u8> = crlf_to_lf(body);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(false)
        .from_reader(body.as_slice());
    let mut subjects = Vec::new();
    let mut lines = Vec::new();
    for (line, row) in reader.records().enumerate() {
        let row = row.map_err(|e| ApiError::invalid("body", format!("CSV: {e}")))?;
        let at = row.position().map_or(line as u64 + 1, |p| p.line());
        if row.len() != 1 {
            return Err(ApiError::invalid(
                "body",
                format!("CSV line {at}: expected one column (the subject id)"),
            ));
        }
        let value = &row[0];
        if line == 0 && value.eq_ignore_ascii_case("subject") {
            continue;
        }
        if !value.is_empty() {
            subjects.push(value.to_string());
            lines.push(at);
        }
    }
    Ok((subjects, lines))
}

/// `body` with each CRLF as LF.
fn crlf_to_lf(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    for (i, &b) in body.iter().enumerate() {
        if !(b == b'\r' && body.get(i + 1) == Some(&b'\n')) {
            out.push(b);
        }
    }
    out
}

/// Erase many subjects as one job (owners and admins): a `text/csv` body with one subject id
/// per line (an optional `subject` header), or JSON `{"subjects": [...]}`. Every request is
/// filed before any runs, so a crash leaves them for the sweep to finish. The outcomes come
/// back in input order, by subject reference.
#[utoipa::path(post, tag = "requests", path = "/v1/orgs/{org}/requests/bulk", params(("org" = String, Path)),
    request_body(content(
        (BulkErasure = "application/json"),
        (String = "text/csv")
    )),
    responses((status = 200, body = [BulkOutcome])),
    security(("bearer" = [])))]
pub(crate) async fn bulk_erase(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(org): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<Vec<BulkOutcome>>> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let subjects = match content_type.as_str() {
        "text/csv" => return Ok(Json(bulk_erase_csv(&state, &caller, &org, &body).await?)),
        "application/json" => {
            let bulk: BulkErasure = serde_json::from_slice(&body)
                .map_err(|e| ApiError::invalid("body", e.to_string()))?;
            bulk.subjects
        }
        _ => {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the subjects as text/csv or application/json",
            ))
        }
    };
    Ok(Json(
        state.custos.bulk_erase(&caller, &org, subjects).await?,
    ))
}

/// Erases the subjects a CSV names (the API's `text/csv` body, the console's upload), each
/// outcome's error naming its CSV line as the file's author sees it.
pub(crate) async fn bulk_erase_csv(
    state: &AppState,
    caller: &custos_core::Caller,
    org: &str,
    csv: &[u8],
) -> ApiResult<Vec<BulkOutcome>> {
    let (subjects, lines) = subjects_from_csv(csv)?;
    let mut outcomes = state.custos.bulk_erase(caller, org, subjects).await?;
    for o in &mut outcomes {
        if let Some(error) = &mut o.error {
            *error = error.replace(
                &format!("subjects[{}]", o.index),
                &format!("CSV line {}", lines[o.index]),
            );
        }
    }
    Ok(outcomes)
}

/// The format of an export or certificate download.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct FormatQuery {
    /// `json` (default), `csv` (a zip with one RFC 4180 file per category) or `pdf`; a
    /// certificate or an incident report comes as `json` or `pdf`.
    pub(crate) format: Option<String>,
}

pub(crate) fn attachment(bytes_type: &str, name: &str) -> [(header::HeaderName, String); 3] {
    [
        (header::CONTENT_TYPE, bytes_type.to_string()),
        (
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{name}\""),
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_string()),
    ]
}

/// Download the export of an access or portability request: everything held about the
/// subject (records of every category and tier, files, tokenized values revealed, audit
/// events about the subject). Produced on first ask and kept as a record of the `exports`
/// category (which expires like any other data); the first export completes the request.
#[utoipa::path(get, tag = "requests", path = "/v1/orgs/{org}/requests/{id}/export", params(("org" = String, Path), ("id" = String, Path), FormatQuery),
    responses((status = 200, description = "the export",
        content(("application/json"), ("application/zip"), ("application/pdf")))),
    security(("bearer" = [])))]
pub(crate) async fn export(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path((org, id)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<FormatQuery>,
) -> ApiResult<Response> {
    let format = custos_core::export_format(q.format.as_deref().unwrap_or("json"))?;
    let download = state
        .custos
        .request_export(&caller, &org, &id, format)
        .await?;
    Ok(export_response(download, format, &id))
}

/// An export as a download (`export-<request>.<ext>`).
pub(crate) fn export_response(
    download: custos_core::FileDownload,
    format: custos_core::ExportFormat,
    id: &str,
) -> Response {
    let body = Body::from_stream(download.body.map(|r| {
        r.map_err(|e| {
            tracing::error!(error = %e, "export stream failed");
            std::io::Error::other(e.code())
        })
    }));
    let name = format!("export-{id}.{}", format.file_extension());
    let mut response = (attachment(format.media_type(), &name), body).into_response();
    response.headers_mut().insert(
        header::CONTENT_LENGTH,
        header::HeaderValue::from(download.size),
    );
    response
}

/// The latest certificate of deletion of an erasure request: signed JSON that anyone can
/// verify offline (`custos cert verify`), or `?format=pdf` for people.
#[utoipa::path(get, tag = "requests", path = "/v1/orgs/{org}/requests/{id}/certificate", params(("org" = String, Path), ("id" = String, Path), FormatQuery),
    responses((status = 200, description = "the certificate (JSON, or a PDF rendering)",
        content((serde_json::Value = "application/json"), ("application/pdf")))),
    security(("bearer" = [])))]
pub(crate) async fn certificate(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path((org, id)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<FormatQuery>,
) -> ApiResult<Response> {
    let pdf = match q.format.as_deref() {
        None | Some("json") => false,
        Some("pdf") => true,
        Some(_) => return Err(ApiError::invalid("format", "must be json or pdf")),
    };
    let cert = state.custos.request_certificate(&caller, &org, &id).await?;
    certificate_response(&cert, pdf, false)
}

/// A certificate as JSON (a download named `certificate-<id>.json` when `attached`), or as a
/// PDF download.
pub(crate) fn certificate_response(
    cert: &custos_cert::Certificate,
    pdf: bool,
    attached: bool,
) -> ApiResult<Response> {
    if !pdf {
        let json = cert.to_json_pretty();
        if attached {
            let name = format!("certificate-{}.json", cert.statement.id);
            return Ok((attachment("application/json", &name), json).into_response());
        }
        return Ok(([(header::CONTENT_TYPE, "application/json")], json).into_response());
    }
    let text = custos_cert::render_text(cert);
    let lines: Vec<String> = text.lines().map(str::to_string).collect();
    let mut out = Vec::new();
    custos_export::certificate_pdf("Certificate of deletion", &lines, &mut out)
        .map_err(|e| ApiError::from(custos_core::CoreError::internal_from("pdf", e)))?;
    let name = format!("certificate-{}.pdf", cert.statement.id);
    Ok((attachment("application/pdf", &name), out).into_response())
}

/// The JSON Schema (draft 2020-12) of JSON exports. Public: it describes a format, no data.
#[utoipa::path(get, tag = "requests", path = "/v1/schemas/export.json",
    responses((status = 200, description = "JSON Schema of the export format", content_type = "application/schema+json")))]
pub(crate) async fn export_schema() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/schema+json")],
        custos_core::EXPORT_SCHEMA,
    )
}
