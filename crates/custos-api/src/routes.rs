//! Routes and handlers, each annotated for the generated OpenAPI document.

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use futures::StreamExt;
use serde::Deserialize;
use utoipa::{IntoParams, OpenApi, ToSchema};

use custos_core::{
    ArchiveRestore, AuditPage, CreatedOrg, CreatedRecord, DeletionView, FileUpload, HoldView,
    NewHold, NewOrg, NewRecord, OrgView, OverdueRecord, RecordPage, RecordView, RetentionView,
};

use crate::openapi::Complete;
use crate::{inputs, ApiError, AppState, Authed, Problem, MAX_JSON_BODY};

/// JSON body extractor whose rejections are problem documents.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

/// Path extractor whose rejections are problem documents.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);

/// Query extractor whose rejections are problem documents.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);

type ApiResult<T> = Result<T, ApiError>;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .route("/v1/orgs", post(create_org).get(list_orgs))
        .route("/v1/orgs/{org}", get(get_org).delete(terminate_org))
        .route("/v1/orgs/{org}/suspend", post(suspend_org))
        .route("/v1/orgs/{org}/resume", post(resume_org))
        .merge(crate::member_routes::routes())
        .merge(crate::request_routes::routes())
        .merge(crate::support_routes::routes())
        .merge(crate::operator_routes::routes())
        .merge(crate::sign_in_routes::routes())
        .merge(crate::token_routes::routes())
        .merge(crate::security_routes::routes())
        .merge(crate::incident_routes::routes())
        .merge(crate::privacy_routes::routes())
        .merge(crate::web::routes())
        .merge(crate::console::routes())
        .route(
            "/v1/orgs/{org}/records",
            post(create_record).get(list_records),
        )
        .route(
            "/v1/orgs/{org}/records/{id}",
            get(get_record).delete(delete_record),
        )
        .route("/v1/orgs/{org}/records/{id}/restore", post(restore_record))
        .route(
            "/v1/orgs/{org}/records/{id}/archive-restore",
            post(archive_restore),
        )
        .route("/v1/orgs/{org}/records/{id}/file", get(download_file))
        .route(
            "/v1/orgs/{org}/files",
            post(upload_file).layer(DefaultBodyLimit::disable()),
        )
        .route("/v1/orgs/{org}/retention", get(get_retention))
        .route("/v1/orgs/{org}/usage", get(get_usage))
        .route("/v1/orgs/{org}/retention/{category}", put(set_retention))
        .route("/v1/orgs/{org}/holds", post(create_hold).get(list_holds))
        .route("/v1/orgs/{org}/holds/{id}", delete(release_hold))
        .route("/v1/orgs/{org}/deletion-log", get(deletion_log))
        .route(
            "/v1/orgs/{org}/categories/{category}/delete-all",
            post(delete_category),
        )
        .route("/v1/orgs/{org}/lifecycle/overdue", get(overdue))
        .route("/v1/audit/events", get(audit_events))
        .merge(crate::audit_routes::routes())
        .route("/v1/scan", post(scan))
        .layer(DefaultBodyLimit::max(MAX_JSON_BODY))
        .fallback(not_found)
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route")
}

/// Readiness: 200 only when the database, the object store and the key store all answer.
#[utoipa::path(get, path = "/readyz", responses((status = 200, description = "every service answers: `{\"status\": \"ready\", \"database\": \"ok\", \"objects\": \"ok\", \"keys\": \"ok\"}`"), (status = 503, description = "a service does not answer (`not_ready`; the detail names which)", body = Problem, content_type = "application/problem+json")))]
async fn readyz(State(state): State<AppState>) -> ApiResult<Json<serde_json::Value>> {
    let r = state.custos.readiness().await;
    let mut down = Vec::new();
    for (name, result) in [
        ("database", &r.database),
        ("object store", &r.objects),
        ("key store", &r.keys),
    ] {
        if let Err(e) = result {
            // The cause goes to the log; the answer names the service only.
            tracing::error!(service = name, error = %e, "readiness check failed");
            down.push(name);
        }
    }
    if !down.is_empty() {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            format!("not answering: {}", down.join(", ")),
        ));
    }
    Ok(Json(serde_json::json!({
        "status": "ready", "database": "ok", "objects": "ok", "keys": "ok"
    })))
}

/// Liveness and store reachability.
#[utoipa::path(get, path = "/healthz", responses((status = 200, description = "healthy"), (status = 503, description = "the store is unreachable (`unavailable`)", body = Problem, content_type = "application/problem+json")))]
async fn healthz(State(state): State<AppState>) -> ApiResult<Json<serde_json::Value>> {
    state.custos.audit_size().await.map_err(|e| {
        tracing::error!(error = %e, "health check failed");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the store is unreachable",
        )
    })?;
    Ok(Json(
        serde_json::json!({"status": "ok", "store": state.custos.backend()}),
    ))
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
async fn metrics(State(state): State<AppState>) -> Response {
    let size = state.custos.audit_size().await.ok();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], {
        let mut text = state.metrics.render(size);
        state.gateway.metrics.render(&mut text);
        state.custos.render_auth_metrics(&mut text);
        state.custos.render_sign_in_metrics(&mut text);
        text
    })
        .into_response()
}

/// This document, with the deployment's categories and regions listed.
#[utoipa::path(get, path = "/openapi.json", responses((status = 200, description = "OpenAPI 3.1 document")))]
async fn openapi(State(state): State<AppState>) -> Json<serde_json::Value> {
    let policy = state.custos.policy();
    let categories: Vec<&str> = policy.categories.keys().map(String::as_str).collect();
    let regions: Vec<&str> = policy.service.regions.iter().map(String::as_str).collect();
    Json(crate::openapi::for_policy(
        &ApiDoc::openapi(),
        &categories,
        &regions,
    ))
}

/// Create an org (admin token), with its first owner when `owner` is given (its API key is
/// in the answer, shown once).
#[utoipa::path(post, path = "/v1/orgs", request_body = NewOrg,
    responses((status = 201, body = CreatedOrg)),
    security(("bearer" = [])))]
async fn create_org(
    State(state): State<AppState>,
    Authed(caller): Authed,
    ApiJson(req): ApiJson<NewOrg>,
) -> ApiResult<(StatusCode, Json<CreatedOrg>)> {
    Ok((
        StatusCode::CREATED,
        Json(state.custos.create_org(&caller, req).await?),
    ))
}

/// List orgs (all for the admin token, the own org for members).
#[utoipa::path(get, path = "/v1/orgs",
    responses((status = 200, body = [OrgView])),
    security(("bearer" = [])))]
async fn list_orgs(
    State(state): State<AppState>,
    Authed(caller): Authed,
) -> ApiResult<Json<Vec<OrgView>>> {
    Ok(Json(state.custos.list_orgs(&caller).await?))
}

/// Read an org.
#[utoipa::path(get, path = "/v1/orgs/{org}", params(("org" = String, Path)),
    responses((status = 200, body = OrgView)),
    security(("bearer" = [])))]
async fn get_org(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(org): Path<String>,
) -> ApiResult<Json<OrgView>> {
    Ok(Json(state.custos.get_org(&caller, &org).await?))
}

/// Store a record: authorized by the category's access rule, PII-scrubbed, sealed, audited.
#[utoipa::path(post, path = "/v1/orgs/{org}/records", params(("org" = String, Path)), request_body = NewRecord,
    responses((status = 201, body = CreatedRecord)),
    security(("bearer" = [])))]
async fn create_record(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(org): Path<String>,
    ApiJson(req): ApiJson<NewRecord>,
) -> ApiResult<(StatusCode, Json<CreatedRecord>)> {
    inputs::exact_numbers("content", &req.content)?;
    if let Some(m) = &req.metadata {
        inputs::exact_numbers("metadata", m)?;
    }
    Ok((
        StatusCode::CREATED,
        Json(state.custos.create_record(&caller, &org, req).await?),
    ))
}

/// Filters and pagination for record listings.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    /// Only this subject's records.
    subject: Option<String>,
    /// Only this category.
    category: Option<String>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Page size, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// List records (no content), paginated.
#[utoipa::path(get, path = "/v1/orgs/{org}/records", params(("org" = String, Path), ListQuery),
    responses((status = 200, body = RecordPage)),
    security(("bearer" = [])))]
async fn list_records(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(org): Path<String>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<RecordPage>> {
    let cursor = inputs::cursor(q.cursor.as_deref())?;
    let limit = inputs::limit(q.limit)?;
    Ok(Json(
        state
            .custos
            .list_records(
                &caller,
                &org,
                q.subject.as_deref(),
                q.category.as_deref(),
                cursor,
                Some(limit),
            )
            .await?,
    ))
}

/// Options of a record read.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct GetQuery {
    /// Reverse `tokenize` pseudonyms (owners and admins; audited as `record.reveal`).
    #[serde(default)]
    reveal: bool,
}

/// Read one record, decrypted.
#[utoipa::path(get, path = "/v1/orgs/{org}/records/{id}", params(("org" = String, Path), ("id" = String, Path), GetQuery),
    responses((status = 200, body = RecordView)),
    security(("bearer" = [])))]
async fn get_record(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path((org, id)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<GetQuery>,
) -> ApiResult<Json<RecordView>> {
    let view = if q.reveal {
        state.custos.reveal_record(&caller, &org, &id).await?
    } else {
        state.custos.get_record(&caller, &org, &id).await?
    };
    Ok(Json(view))
}

/// Delete options.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct DeleteQuery {
    /// `true`: hard delete (not restorable; purged by the next sweep, within the policy's
    /// `hard_delete_within`). Default: soft delete, restorable within the window.
    hard: Option<bool>,
}

/// Soft-delete a record (restorable within the policy's window), or hard-delete it.
#[utoipa::path(delete, path = "/v1/orgs/{org}/records/{id}", params(("org" = String, Path), ("id" = String, Path), DeleteQuery),
    responses((status = 204)),
    security(("bearer" = [])))]
async fn delete_record(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path((org, id)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<DeleteQuery>,
) -> ApiResult<StatusCode> {
    if q.hard == Some(true) {
        state.custos.hard_delete(&caller, &org, &id).await?;
    } else {
        state.custos.soft_delete(&caller, &org, &id).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Deleted-record count of a delete-all request.
#[derive(Debug, serde::Serialize, ToSchema)]
struct DeletedCount {
    /// Records marked for purge.
    records: u64,
}

/// Hard-delete every record of a category in the org (owners and admins).
#[utoipa::path(post, path = "/v1/orgs/{org}/categories/{category}/delete-all", params(("org" = String, Path), ("category" = String, Path)),
    responses((status = 200, body = DeletedCount)),
    security(("bearer" = [])))]
async fn delete_category(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path((org, category)): Path<(String, String)>,
) -> ApiResult<Json<DeletedCount>> {
    let records = state
        .custos
        .delete_category(&caller, &org, &category)
        .await?;
    Ok(Json(DeletedCount { records }))
}

/// Restore a soft-deleted record within the window.
#[utoipa::path(post, path = "/v1/orgs/{org}/records/{id}/restore", params(("org" = String, Path), ("id" = String, Path)),
    responses((status = 204)),
    security(("bearer" = [])))]
async fn restore_record(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path((org, id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    state.custos.restore(&caller, &org, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Request an archived record's content: readable through the normal read routes for the
/// policy's `archive_restore_window` (owners and admins).
#[utoipa::path(post, path = "/v1/orgs/{org}/records/{id}/archive-restore", params(("org" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = ArchiveRestore)),
    security(("bearer" = [])))]
async fn archive_restore(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path((org, id)): Path<(String, String)>,
) -> ApiResult<Json<ArchiveRestore>> {
    Ok(Json(
        state
            .custos
            .request_archive_restore(&caller, &org, &id)
            .await?,
    ))
}

/// Terminate an org (an operator or an org owner): members revoked at once, every record
/// purged and the org's keys destroyed by the sweeper within `account_termination_within`.
#[utoipa::path(delete, path = "/v1/orgs/{org}", params(("org" = String, Path)),
    responses((status = 202, body = OrgView)),
    security(("bearer" = [])))]
async fn terminate_org(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(org): Path<String>,
) -> ApiResult<(StatusCode, Json<OrgView>)> {
    Ok((
        StatusCode::ACCEPTED,
        Json(state.custos.terminate_org(&caller, &org).await?),
    ))
}

/// Suspend an org (operators): its members are refused everything but reading the org
/// (`403 org_suspended`) until it is resumed; its data, deadlines and sweeps go on.
#[utoipa::path(post, path = "/v1/orgs/{org}/suspend", params(("org" = String, Path)),
    responses((status = 200, body = OrgView)),
    security(("bearer" = [])))]
async fn suspend_org(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(org): Path<String>,
) -> ApiResult<Json<OrgView>> {
    Ok(Json(state.custos.suspend_org(&caller, &org).await?))
}

/// Resume a suspended org (operators).
#[utoipa::path(post, path = "/v1/orgs/{org}/resume", params(("org" = String, Path)),
    responses((status = 200, body = OrgView)),
    security(("bearer" = [])))]
async fn resume_org(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(org): Path<String>,
) -> ApiResult<Json<OrgView>> {
    Ok(Json(state.custos.resume_org(&caller, &org).await?))
}

/// Where an uploaded file goes.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct UploadQuery {
    /// Policy category.
    category: String,
    /// Subject, if any.
    subject: Option<String>,
    /// Original file name.
    name: Option<String>,
}

/// Upload a file as the raw request body (streamed, sealed chunk by chunk).
#[utoipa::path(post, path = "/v1/orgs/{org}/files", params(("org" = String, Path), UploadQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 201, body = CreatedRecord)),
    security(("bearer" = [])))]
async fn upload_file(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(org): Path<String>,
    ApiQuery(q): ApiQuery<UploadQuery>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<(StatusCode, Json<CreatedRecord>)> {
    inputs::file_name(q.name.as_deref())?;
    let content_type = upload_content_type(&headers)?;
    let upload = FileUpload {
        category: q.category,
        subject: q.subject,
        file_name: q.name,
        content_type,
        metadata: None,
    };
    let stream = body.into_data_stream();
    Ok((
        StatusCode::CREATED,
        Json(
            state
                .custos
                .upload_file(&caller, &org, upload, stream)
                .await?,
        ),
    ))
}

/// Longest `Content-Type` kept with an upload.
const MAX_CONTENT_TYPE: usize = 255;

/// The upload's media type, if sent: printable ASCII, `type/subtype`, bounded.
fn upload_content_type(headers: &HeaderMap) -> ApiResult<Option<String>> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(None);
    };
    let refuse = || {
        ApiError::invalid(
            "content-type",
            format!("must be a media type such as application/pdf, at most {MAX_CONTENT_TYPE} characters"),
        )
    };
    let text = value.to_str().map_err(|_| refuse())?.trim();
    let essence = text.split(';').next().unwrap_or("").trim();
    let valid = text.len() <= MAX_CONTENT_TYPE
        && text.chars().all(|c| c.is_ascii_graphic() || c == ' ')
        && essence
            .split_once('/')
            .is_some_and(|(t, s)| !t.is_empty() && !s.is_empty() && !s.contains('/'));
    if valid {
        Ok(Some(text.to_string()))
    } else {
        Err(refuse())
    }
}

/// Whether a browser would run or render `media_type` as a document of this origin (HTML,
/// SVG, XML, scripts): such content is only ever served as opaque bytes.
fn is_active(media_type: &str) -> bool {
    let essence = media_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence.contains("html")
        || essence.contains("xml")
        || essence.contains("svg")
        || essence.contains("javascript")
        || essence.contains("ecmascript")
}

/// `Content-Disposition: attachment` with an ASCII fallback name and the RFC 8187 UTF-8 one.
fn content_disposition(file_name: Option<&str>) -> header::HeaderValue {
    let name: String = file_name
        .unwrap_or("download")
        .chars()
        .filter(|c| !c.is_control())
        .take(inputs::MAX_FILE_NAME)
        .collect();
    let name = if name.trim().is_empty() {
        "download".to_string()
    } else {
        name
    };
    let ascii: String = name
        .chars()
        .map(|c| match c {
            ' ' | '-' | '.' | '_' | '(' | ')' | '+' => c,
            c if c.is_ascii_alphanumeric() => c,
            _ => '_',
        })
        .collect();
    let mut encoded = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    let value = format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}");
    header::HeaderValue::from_str(&value)
        .unwrap_or_else(|_| header::HeaderValue::from_static("attachment"))
}

/// Download a file record's content (decrypted, streamed), always as an attachment with
/// `X-Content-Type-Options: nosniff`; active types (HTML, SVG, XML, scripts) are served as
/// `application/octet-stream`.
#[utoipa::path(get, path = "/v1/orgs/{org}/records/{id}/file", params(("org" = String, Path), ("id" = String, Path)),
    responses((status = 200, description = "the file's bytes", content_type = "application/octet-stream",
        headers(("content-disposition" = String, description = "attachment; filename=...; filename*=UTF-8''..."),
                ("x-content-type-options" = String, description = "nosniff")))),
    security(("bearer" = [])))]
async fn download_file(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path((org, id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let download = state.custos.download_file(&caller, &org, &id).await?;
    let content_type = download
        .content_type
        .clone()
        .filter(|t| !is_active(t))
        .and_then(|t| header::HeaderValue::from_str(&t).ok())
        .unwrap_or_else(|| header::HeaderValue::from_static("application/octet-stream"));
    let disposition = content_disposition(download.file_name.as_deref());
    let body = Body::from_stream(download.body.map(|r| {
        r.map_err(|e| {
            tracing::error!(error = %e, "file stream failed");
            std::io::Error::other(e.code())
        })
    }));
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_LENGTH,
        header::HeaderValue::from(download.size),
    );
    headers.insert(header::CONTENT_TYPE, content_type);
    headers.insert(header::CONTENT_DISPOSITION, disposition);
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        header::HeaderValue::from_static("nosniff"),
    );
    // Even opened directly, the bytes run no script and load nothing.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static("default-src 'none'; sandbox"),
    );
    Ok(response)
}

/// The org's effective retention per category.
#[utoipa::path(get, path = "/v1/orgs/{org}/retention", params(("org" = String, Path)),
    responses((status = 200, body = [RetentionView])),
    security(("bearer" = [])))]
async fn get_retention(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(org): Path<String>,
) -> ApiResult<Json<Vec<RetentionView>>> {
    Ok(Json(state.custos.retention(&caller, &org).await?))
}

/// The org's records and storage per category and tier (state), and what is due to be
/// archived or purged within the next week (counted at most a minute ago: `counted_at`).
#[utoipa::path(get, path = "/v1/orgs/{org}/usage", params(("org" = String, Path)),
    responses((status = 200, body = custos_core::UsageView)),
    security(("bearer" = [])))]
async fn get_usage(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(org): Path<String>,
) -> ApiResult<Json<custos_core::UsageView>> {
    Ok(Json(state.custos.usage(&caller, &org).await?))
}

/// A retention override.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct SetRetention {
    /// Duration within the policy's `org_configurable` bounds, e.g. `"180d"`.
    retention: String,
}

/// Set the org's retention for a category, within the policy's bounds.
#[utoipa::path(put, path = "/v1/orgs/{org}/retention/{category}", params(("org" = String, Path), ("category" = String, Path)),
    request_body = SetRetention,
    responses((status = 200, body = RetentionView)),
    security(("bearer" = [])))]
async fn set_retention(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path((org, category)): Path<(String, String)>,
    ApiJson(req): ApiJson<SetRetention>,
) -> ApiResult<Json<RetentionView>> {
    Ok(Json(
        state
            .custos
            .set_retention(&caller, &org, &category, &req.retention)
            .await?,
    ))
}

/// Place a legal hold (whole org, a subject, or a category).
#[utoipa::path(post, path = "/v1/orgs/{org}/holds", params(("org" = String, Path)), request_body = NewHold,
    responses((status = 201, body = HoldView)),
    security(("bearer" = [])))]
async fn create_hold(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(org): Path<String>,
    ApiJson(req): ApiJson<NewHold>,
) -> ApiResult<(StatusCode, Json<HoldView>)> {
    Ok((
        StatusCode::CREATED,
        Json(state.custos.create_hold(&caller, &org, req).await?),
    ))
}

/// The org's active holds.
#[utoipa::path(get, path = "/v1/orgs/{org}/holds", params(("org" = String, Path)),
    responses((status = 200, body = [HoldView])),
    security(("bearer" = [])))]
async fn list_holds(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(org): Path<String>,
) -> ApiResult<Json<Vec<HoldView>>> {
    Ok(Json(state.custos.holds(&caller, &org).await?))
}

/// Release a legal hold.
#[utoipa::path(delete, path = "/v1/orgs/{org}/holds/{id}", params(("org" = String, Path), ("id" = String, Path)),
    responses((status = 204)),
    security(("bearer" = [])))]
async fn release_hold(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path((org, id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    state.custos.release_hold(&caller, &org, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Deletion-log paging.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct DeletionLogQuery {
    /// Record id to continue after (the last id of the previous page).
    cursor: Option<String>,
    /// Page size, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// The org's deletion log: one row per purged record (no content), ordered by record id.
#[utoipa::path(get, path = "/v1/orgs/{org}/deletion-log", params(("org" = String, Path), DeletionLogQuery),
    responses((status = 200, body = [DeletionView])),
    security(("bearer" = [])))]
async fn deletion_log(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(org): Path<String>,
    ApiQuery(q): ApiQuery<DeletionLogQuery>,
) -> ApiResult<Json<Vec<DeletionView>>> {
    let cursor = inputs::cursor(q.cursor.as_deref())?;
    let limit = inputs::limit(q.limit)?;
    Ok(Json(
        state
            .custos
            .deletion_log(&caller, &org, cursor, limit)
            .await?,
    ))
}

/// Records of the org still stored past the policy's removal deadline (SLA report).
#[utoipa::path(get, path = "/v1/orgs/{org}/lifecycle/overdue", params(("org" = String, Path)),
    responses((status = 200, body = [OverdueRecord])),
    security(("bearer" = [])))]
async fn overdue(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(org): Path<String>,
) -> ApiResult<Json<Vec<OverdueRecord>>> {
    Ok(Json(state.custos.overdue(&caller, Some(&org)).await?))
}

/// Audit listing parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    /// Only this org's events (members always see only their own org).
    org: Option<String>,
    /// Only events by this actor (`admin`, `system`, `member:<id>`).
    actor: Option<String>,
    /// Only this action (`record.create`, `record.purge`, ...).
    action: Option<String>,
    /// Only this target (`record:<id>`, `category:<name>`, ...).
    target: Option<String>,
    /// Only events at or after this time (RFC 3339).
    #[param(format = DateTime)]
    since: Option<String>,
    /// Only events before this time (RFC 3339).
    #[param(format = DateTime)]
    until: Option<String>,
    /// First index to return (default 0).
    #[param(maximum = 9223372036854775807_u64)]
    from: Option<u64>,
    /// Page size, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// Audit events, in log order.
#[utoipa::path(get, tag = "audit", path = "/v1/audit/events", params(AuditQuery),
    responses((status = 200, body = AuditPage)),
    security(("bearer" = [])))]
async fn audit_events(
    State(state): State<AppState>,
    Authed(caller): Authed,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> ApiResult<Json<AuditPage>> {
    let limit = inputs::limit(q.limit)?;
    let from = inputs::log_index("from", q.from.unwrap_or(0))?;
    Ok(Json(
        state
            .custos
            .audit_events(
                &caller,
                q.org.as_deref(),
                &custos_core::AuditFilter {
                    since: inputs::time("since", q.since.as_deref())?,
                    until: inputs::time("until", q.until.as_deref())?,
                    actor: q.actor,
                    action: q.action,
                    target: q.target,
                },
                from,
                limit,
            )
            .await?,
    ))
}

/// Text to scan.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ScanRequest {
    /// The text.
    text: String,
}

/// One PII finding; offsets are in characters (Unicode scalar values), end exclusive.
#[derive(Debug, serde::Serialize, ToSchema)]
struct FindingView {
    /// Entity type in upper snake case (`EMAIL_ADDRESS`, ...).
    entity: String,
    /// First character.
    start: usize,
    /// One past the last character.
    end: usize,
    /// Confidence, 0 to 1.
    score: f32,
    /// The recognizer that fired.
    recognizer: String,
}

/// Scan findings.
#[derive(Debug, serde::Serialize, ToSchema)]
struct ScanResponse {
    /// Findings in text order.
    findings: Vec<FindingView>,
}

/// Detect PII in a text (any authenticated caller; nothing is stored).
#[utoipa::path(post, path = "/v1/scan", request_body = ScanRequest,
    responses((status = 200, body = ScanResponse)),
    security(("bearer" = [])))]
async fn scan(
    State(state): State<AppState>,
    Authed(caller): Authed,
    ApiJson(req): ApiJson<ScanRequest>,
) -> ApiResult<Json<ScanResponse>> {
    let findings = state.custos.scan_text(&caller, req.text).await?;
    Ok(Json(ScanResponse {
        findings: findings
            .into_iter()
            .map(|f| FindingView {
                entity: f.entity.as_str().to_string(),
                start: f.start,
                end: f.end,
                score: f.score,
                recognizer: f.recognizer.to_string(),
            })
            .collect(),
    }))
}

/// The OpenAPI 3.1 document, generated from the handlers and their types.
#[derive(OpenApi)]
#[openapi(
    info(title = "Custos", description = "Privacy data plane: encrypted, tenant-isolated storage with policy-as-code retention, PII scrubbing and a tamper-evident audit log."),
    paths(healthz, readyz, metrics, openapi, create_org, list_orgs, get_org, terminate_org, suspend_org, resume_org,
          crate::member_routes::add_member, crate::member_routes::list_members,
          crate::member_routes::update_member, crate::member_routes::remove_member,
          crate::member_routes::rotate_key, crate::member_routes::revoke_key,
          crate::member_routes::enroll_totp, crate::member_routes::open_session,
          crate::member_routes::issue_enrollment_code, crate::member_routes::clear_totp_lockout,
          crate::member_routes::get_settings, crate::member_routes::update_settings,
          crate::member_routes::access_review, crate::member_routes::record_access_review,
          crate::operator_routes::create_operator, crate::operator_routes::list_operators,
          crate::sign_in_routes::login, crate::sign_in_routes::callback, crate::sign_in_routes::logout,
          crate::token_routes::create_token, crate::token_routes::list_tokens,
          crate::token_routes::revoke_token,
          crate::support_routes::create_support_request,
          crate::support_routes::list_support_requests,
          crate::support_routes::approve_support_request,
          crate::support_routes::deny_support_request,
          crate::support_routes::revoke_support_request,
          crate::support_routes::support_accesses,
          crate::request_routes::create_request, crate::request_routes::list_requests,
          crate::request_routes::bulk_erase, crate::request_routes::get_request,
          crate::request_routes::extend_request, crate::request_routes::reject_request,
          crate::request_routes::export, crate::request_routes::certificate,
          crate::request_routes::export_schema,
          create_record, list_records, get_record, delete_record, restore_record, archive_restore,
          upload_file, download_file,
          get_retention, get_usage, set_retention, create_hold, list_holds, release_hold, deletion_log,
          delete_category,
          overdue, audit_events,
          crate::security_routes::org_security_events,
          crate::security_routes::deployment_security_events,
          crate::security_routes::list_notifications,
          crate::incident_routes::create_incident, crate::incident_routes::list_incidents,
          crate::incident_routes::get_incident, crate::incident_routes::set_incident_status,
          crate::incident_routes::incident_affected, crate::incident_routes::subject_reference,
          crate::incident_routes::incident_report, crate::incident_routes::notify_incident,
          crate::incident_routes::set_subject_contact,
          crate::audit_routes::checkpoint, crate::audit_routes::inclusion_proof,
          crate::audit_routes::consistency_proof, crate::audit_routes::signing_key, scan,
          crate::privacy_routes::center, crate::privacy_routes::file_request,
          crate::privacy_routes::export, crate::privacy_routes::certificate,
          crate::web::asset),
    components(schemas(Problem, SetRetention, ScanRequest, ScanResponse, FindingView, DeletedCount)),
    modifiers(&Complete)
)]
pub struct ApiDoc;
