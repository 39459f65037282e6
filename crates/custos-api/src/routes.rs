//! Routes and handlers, each annotated for the generated OpenAPI document.

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use futures::StreamExt;
use serde::Deserialize;
use utoipa::{IntoParams, OpenApi, ToSchema};

use custos_core::{
    ArchiveRestore, AuditPage, CreatedRecord, DeletionView, FileUpload, HoldView, NewHold, NewOrg,
    NewRecord, OrgView, OverdueRecord, RecordPage, RecordView, RetentionView,
};

use crate::{ApiError, AppState, Authed, Problem, MAX_JSON_BODY};

/// JSON body extractor whose rejections are problem documents.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

/// Query extractor whose rejections are problem documents.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);

type ApiResult<T> = Result<T, ApiError>;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .route("/v1/orgs", post(create_org).get(list_orgs))
        .route("/v1/orgs/{org}", get(get_org).delete(terminate_org))
        .merge(crate::member_routes::routes())
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

/// Liveness and store reachability.
#[utoipa::path(get, path = "/healthz", responses((status = 200, description = "healthy"), (status = 503, body = Problem)))]
async fn healthz(State(state): State<AppState>) -> ApiResult<Json<serde_json::Value>> {
    let store = state.custos.store();
    store.audit_size().await.map_err(|e| {
        tracing::error!(error = %e, "health check failed");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the store is unreachable",
        )
    })?;
    Ok(Json(
        serde_json::json!({"status": "ok", "store": store.backend()}),
    ))
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
async fn metrics(State(state): State<AppState>) -> Response {
    let size = state.custos.store().audit_size().await.ok();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(size),
    )
        .into_response()
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", responses((status = 200, description = "OpenAPI 3.1 document")))]
async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

/// Create an org (admin token).
#[utoipa::path(post, path = "/v1/orgs", request_body = NewOrg,
    responses((status = 201, body = OrgView), (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
async fn create_org(
    State(state): State<AppState>,
    Authed(caller): Authed,
    ApiJson(req): ApiJson<NewOrg>,
) -> ApiResult<(StatusCode, Json<OrgView>)> {
    Ok((
        StatusCode::CREATED,
        Json(state.custos.create_org(&caller, req).await?),
    ))
}

/// List orgs (all for the admin token, the own org for members).
#[utoipa::path(get, path = "/v1/orgs",
    responses((status = 200, body = [OrgView]), (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
async fn list_orgs(
    State(state): State<AppState>,
    Authed(caller): Authed,
) -> ApiResult<Json<Vec<OrgView>>> {
    Ok(Json(state.custos.list_orgs(&caller).await?))
}

/// Read an org.
#[utoipa::path(get, path = "/v1/orgs/{org}", params(("org" = String, Path)),
    responses((status = 200, body = OrgView), (status = "4XX", body = Problem, content_type = "application/problem+json")),
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
    responses((status = 201, body = CreatedRecord), (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
async fn create_record(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(org): Path<String>,
    ApiJson(req): ApiJson<NewRecord>,
) -> ApiResult<(StatusCode, Json<CreatedRecord>)> {
    Ok((
        StatusCode::CREATED,
        Json(state.custos.create_record(&caller, &org, req).await?),
    ))
}

/// Filters and pagination for record listings.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    /// Only this subject's records.
    subject: Option<String>,
    /// Only this category.
    category: Option<String>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Page size, 1 to 1000 (default 100).
    limit: Option<u32>,
}

/// List records (no content), paginated.
#[utoipa::path(get, path = "/v1/orgs/{org}/records", params(("org" = String, Path), ListQuery),
    responses((status = 200, body = RecordPage), (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
async fn list_records(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(org): Path<String>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<RecordPage>> {
    Ok(Json(
        state
            .custos
            .list_records(
                &caller,
                &org,
                q.subject.as_deref(),
                q.category.as_deref(),
                q.cursor.as_deref(),
                q.limit,
            )
            .await?,
    ))
}

/// Options of a record read.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
struct GetQuery {
    /// Reverse `tokenize` pseudonyms (owners and admins; audited as `record.reveal`).
    #[serde(default)]
    reveal: bool,
}

/// Read one record, decrypted.
#[utoipa::path(get, path = "/v1/orgs/{org}/records/{id}", params(("org" = String, Path), ("id" = String, Path), GetQuery),
    responses((status = 200, body = RecordView), (status = "4XX", body = Problem, content_type = "application/problem+json")),
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
struct DeleteQuery {
    /// `true`: hard delete (not restorable; purged by the next sweep, within the policy's
    /// `hard_delete_within`). Default: soft delete, restorable within the window.
    hard: Option<bool>,
}

/// Soft-delete a record (restorable within the policy's window), or hard-delete it.
#[utoipa::path(delete, path = "/v1/orgs/{org}/records/{id}", params(("org" = String, Path), ("id" = String, Path), DeleteQuery),
    responses((status = 204), (status = "4XX", body = Problem, content_type = "application/problem+json")),
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
    responses((status = 200, body = DeletedCount), (status = "4XX", body = Problem, content_type = "application/problem+json")),
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
    responses((status = 204), (status = "4XX", body = Problem, content_type = "application/problem+json")),
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
    responses((status = 200, body = ArchiveRestore), (status = "4XX", body = Problem, content_type = "application/problem+json")),
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

/// Terminate an org (admin token or an org owner): members revoked at once, every record
/// purged and the org's keys destroyed by the sweeper within `account_termination_within`.
#[utoipa::path(delete, path = "/v1/orgs/{org}", params(("org" = String, Path)),
    responses((status = 202, body = OrgView), (status = "4XX", body = Problem, content_type = "application/problem+json")),
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

/// Where an uploaded file goes.
#[derive(Debug, Deserialize, IntoParams)]
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
    responses((status = 201, body = CreatedRecord), (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
async fn upload_file(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(org): Path<String>,
    ApiQuery(q): ApiQuery<UploadQuery>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<(StatusCode, Json<CreatedRecord>)> {
    let upload = FileUpload {
        category: q.category,
        subject: q.subject,
        file_name: q.name,
        content_type: headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
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

/// Download a file record's content (decrypted, streamed).
#[utoipa::path(get, path = "/v1/orgs/{org}/records/{id}/file", params(("org" = String, Path), ("id" = String, Path)),
    responses((status = 200, content_type = "application/octet-stream"), (status = "4XX", body = Problem, content_type = "application/problem+json")),
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
        .unwrap_or_else(|| "application/octet-stream".into());
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
    if let Ok(v) = header::HeaderValue::from_str(&content_type) {
        headers.insert(header::CONTENT_TYPE, v);
    }
    Ok(response)
}

/// The org's effective retention per category.
#[utoipa::path(get, path = "/v1/orgs/{org}/retention", params(("org" = String, Path)),
    responses((status = 200, body = [RetentionView]), (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
async fn get_retention(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(org): Path<String>,
) -> ApiResult<Json<Vec<RetentionView>>> {
    Ok(Json(state.custos.retention(&caller, &org).await?))
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
    responses((status = 200, body = RetentionView), (status = "4XX", body = Problem, content_type = "application/problem+json")),
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
    responses((status = 201, body = HoldView), (status = "4XX", body = Problem, content_type = "application/problem+json")),
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
    responses((status = 200, body = [HoldView]), (status = "4XX", body = Problem, content_type = "application/problem+json")),
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
    responses((status = 204), (status = "4XX", body = Problem, content_type = "application/problem+json")),
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
struct DeletionLogQuery {
    /// Record id to continue after.
    cursor: Option<String>,
    /// Page size (at most 1000).
    limit: Option<u32>,
}

/// The org's deletion log: one row per purged record (no content), ordered by record id.
#[utoipa::path(get, path = "/v1/orgs/{org}/deletion-log", params(("org" = String, Path), DeletionLogQuery),
    responses((status = 200, body = [DeletionView]), (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
async fn deletion_log(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(org): Path<String>,
    ApiQuery(q): ApiQuery<DeletionLogQuery>,
) -> ApiResult<Json<Vec<DeletionView>>> {
    Ok(Json(
        state
            .custos
            .deletion_log(&caller, &org, q.cursor.as_deref(), q.limit.unwrap_or(100))
            .await?,
    ))
}

/// Records of the org still stored past the policy's removal deadline (SLA report).
#[utoipa::path(get, path = "/v1/orgs/{org}/lifecycle/overdue", params(("org" = String, Path)),
    responses((status = 200, body = [OverdueRecord]), (status = "4XX", body = Problem, content_type = "application/problem+json")),
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
    since: Option<String>,
    /// Only events before this time (RFC 3339).
    until: Option<String>,
    /// First index to return (default 0).
    from: Option<u64>,
    /// Page size, 1 to 1000 (default 100).
    limit: Option<u32>,
}

fn time_param(name: &str, value: Option<&str>) -> Result<Option<jiff::Timestamp>, ApiError> {
    value
        .map(|v| {
            v.parse::<jiff::Timestamp>().map_err(|_| {
                ApiError::from(custos_core::CoreError::invalid(
                    name,
                    format!("{v:?} is not an RFC 3339 time such as 2026-01-01T00:00:00Z"),
                ))
            })
        })
        .transpose()
}

/// Audit events, in log order.
#[utoipa::path(get, path = "/v1/audit/events", params(AuditQuery),
    responses((status = 200, body = AuditPage), (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
async fn audit_events(
    State(state): State<AppState>,
    Authed(caller): Authed,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> ApiResult<Json<AuditPage>> {
    Ok(Json(
        state
            .custos
            .audit_events(
                &caller,
                q.org.as_deref(),
                &custos_core::AuditFilter {
                    since: time_param("since", q.since.as_deref())?,
                    until: time_param("until", q.until.as_deref())?,
                    actor: q.actor,
                    action: q.action,
                    target: q.target,
                },
                q.from.unwrap_or(0),
                q.limit.unwrap_or(100),
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
    responses((status = 200, body = ScanResponse), (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
async fn scan(
    State(state): State<AppState>,
    Authed(_caller): Authed,
    ApiJson(req): ApiJson<ScanRequest>,
) -> ApiResult<Json<ScanResponse>> {
    let custos = state.custos.clone();
    // Scanning is CPU work proportional to the text; keep it off the async workers.
    let findings = tokio::task::spawn_blocking(move || custos.scanner().scan(&req.text))
        .await
        .map_err(|e| ApiError::from(custos_core::CoreError::Internal(e.to_string())))?;
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

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{
            ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme,
        };
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        // Not a credential of its own: a second factor sent along with a member's API key.
        components.add_security_scheme(
            "identity_token",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                crate::IDENTITY_TOKEN_HEADER,
                "The org's identity-provider ID token (JWT) whose `amr` names a second factor, \
                 sent with a member API key in `Authorization`; an invalid token fails the \
                 request with 401.",
            ))),
        );
    }
}

/// The OpenAPI 3.1 document, generated from the handlers and their types.
#[derive(OpenApi)]
#[openapi(
    info(title = "Custos", description = "Privacy data plane: encrypted, tenant-isolated storage with policy-as-code retention, PII scrubbing and a tamper-evident audit log."),
    paths(healthz, metrics, openapi, create_org, list_orgs, get_org, terminate_org,
          crate::member_routes::add_member, crate::member_routes::list_members,
          crate::member_routes::update_member, crate::member_routes::remove_member,
          crate::member_routes::rotate_key, crate::member_routes::revoke_key,
          crate::member_routes::enroll_totp, crate::member_routes::open_session,
          crate::member_routes::get_settings, crate::member_routes::update_settings,
          create_record, list_records, get_record, delete_record, restore_record, archive_restore,
          upload_file, download_file,
          get_retention, set_retention, create_hold, list_holds, release_hold, deletion_log,
          delete_category,
          overdue, audit_events,
          crate::audit_routes::checkpoint, crate::audit_routes::inclusion_proof,
          crate::audit_routes::consistency_proof, crate::audit_routes::signing_key, scan),
    components(schemas(Problem, SetRetention, ScanRequest, ScanResponse, FindingView, DeletedCount)),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;
