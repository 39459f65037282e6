//! Customer-approved support access: operators' support requests, the org's decisions on
//! them, and the accesses made under each grant.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use utoipa::IntoParams;

use custos_core::{NewSupportRequest, SupportAccesses, SupportApproval, SupportRequestView};

use crate::routes::{ApiJson, ApiQuery, Path};
use crate::{ApiError, AppState, Authed};

type ApiResult<T> = Result<T, ApiError>;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/orgs/{org}/support-requests",
            post(create_support_request).get(list_support_requests),
        )
        .route(
            "/v1/orgs/{org}/support-requests/{id}/approve",
            post(approve_support_request),
        )
        .route(
            "/v1/orgs/{org}/support-requests/{id}/deny",
            post(deny_support_request),
        )
        .route(
            "/v1/orgs/{org}/support-requests/{id}/revoke",
            post(revoke_support_request),
        )
        .route(
            "/v1/orgs/{org}/support-requests/{id}/accesses",
            get(support_accesses),
        )
}

/// An operator asks the org for support access: a justification from the fixed list, the
/// ticket, what it needs to do, the scope, optional categories and a duration. It waits for
/// an owner or admin of the org to approve or deny it, and expires unanswered after the
/// policy's `[support] request_expiry`.
#[utoipa::path(post, tag = "support", path = "/v1/orgs/{org}/support-requests", params(("org" = String, Path)),
    request_body = NewSupportRequest,
    responses((status = 201, body = SupportRequestView)),
    security(("bearer" = [])))]
pub(crate) async fn create_support_request(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(org): Path<String>,
    ApiJson(req): ApiJson<NewSupportRequest>,
) -> ApiResult<(StatusCode, Json<SupportRequestView>)> {
    let created = state
        .custos
        .create_support_request(&caller, &org, req)
        .await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// The org's support requests and grants, newest first (an operator sees the ones it filed).
#[utoipa::path(get, tag = "support", path = "/v1/orgs/{org}/support-requests", params(("org" = String, Path)),
    responses((status = 200, body = [SupportRequestView])),
    security(("bearer" = [])))]
pub(crate) async fn list_support_requests(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(org): Path<String>,
) -> ApiResult<Json<Vec<SupportRequestView>>> {
    Ok(Json(state.custos.support_requests(&caller, &org).await?))
}

/// Approve a pending support request (an owner or admin, with a second factor), possibly
/// for a shorter duration: the grant is active from now.
#[utoipa::path(post, tag = "support", path = "/v1/orgs/{org}/support-requests/{id}/approve",
    params(("org" = String, Path), ("id" = String, Path)),
    request_body(content = SupportApproval, description = "optional: a shorter duration"),
    responses((status = 200, body = SupportRequestView)),
    security(("bearer" = [])))]
pub(crate) async fn approve_support_request(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path((org, id)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> ApiResult<Json<SupportRequestView>> {
    // The body is optional: none approves the duration requested.
    let approval: SupportApproval = if body.iter().all(u8::is_ascii_whitespace) {
        SupportApproval::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::invalid("body", e.to_string()))?
    };
    Ok(Json(
        state
            .custos
            .approve_support_request(&caller, &org, &id, approval)
            .await?,
    ))
}

/// Deny a pending support request (an owner or admin, with a second factor).
#[utoipa::path(post, tag = "support", path = "/v1/orgs/{org}/support-requests/{id}/deny",
    params(("org" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = SupportRequestView)),
    security(("bearer" = [])))]
pub(crate) async fn deny_support_request(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path((org, id)): Path<(String, String)>,
) -> ApiResult<Json<SupportRequestView>> {
    Ok(Json(
        state
            .custos
            .deny_support_request(&caller, &org, &id)
            .await?,
    ))
}

/// Revoke an active grant at once: the operator's next request under it is refused.
#[utoipa::path(post, tag = "support", path = "/v1/orgs/{org}/support-requests/{id}/revoke",
    params(("org" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = SupportRequestView)),
    security(("bearer" = [])))]
pub(crate) async fn revoke_support_request(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path((org, id)): Path<(String, String)>,
) -> ApiResult<Json<SupportRequestView>> {
    Ok(Json(
        state
            .custos
            .revoke_support_request(&caller, &org, &id)
            .await?,
    ))
}

/// Paging of a grant's accesses.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct AccessQuery {
    /// Start at this audit index (a previous page's `next_from`).
    #[serde(default)]
    from: u64,
    /// At most this many accesses (default 100).
    limit: Option<u32>,
}

/// Every access made under a grant: each audit event carrying the grant id, with its leaf
/// and inclusion proof under the signed checkpoint given once for the page.
#[utoipa::path(get, tag = "support", path = "/v1/orgs/{org}/support-requests/{id}/accesses",
    params(("org" = String, Path), ("id" = String, Path), AccessQuery),
    responses((status = 200, body = SupportAccesses)),
    security(("bearer" = [])))]
pub(crate) async fn support_accesses(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path((org, id)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<AccessQuery>,
) -> ApiResult<Json<SupportAccesses>> {
    Ok(Json(
        state
            .custos
            .support_accesses(&caller, &org, &id, q.from, q.limit)
            .await?,
    ))
}
