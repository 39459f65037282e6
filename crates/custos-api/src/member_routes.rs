//! Members, their keys, TOTP enrollment, sessions and org settings: who may act in an org and
//! how strongly they must authenticate.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, patch, post};
use axum::{Json, Router};

use custos_core::{
    AccessReview, CreatedMember, EnrollmentCodeView, MemberChange, MemberView, NewMember,
    NewSession, OrgSettings, RecordedReview, ReviewDecision, RotatedKey, SessionView,
    SettingsChange, TotpEnrollment, TotpEnrollmentRequest,
};

use crate::routes::{ApiJson, Path};
use crate::{ApiError, AppState, Authed};

type ApiResult<T> = Result<T, ApiError>;

/// A change document from a JSON object. Taken as a map first because serde would also
/// accept a JSON array for a struct whose fields are all optional, and a PATCH body is an
/// object.
fn fields<T: serde::de::DeserializeOwned>(
    object: serde_json::Map<String, serde_json::Value>,
) -> Result<T, ApiError> {
    serde_json::from_value(serde_json::Value::Object(object))
        .map_err(|e| ApiError::invalid("body", e.to_string()))
}

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/orgs/{org}/members", post(add_member).get(list_members))
        .route("/v1/orgs/{org}/members/me/totp", post(enroll_totp))
        .route(
            "/v1/orgs/{org}/members/{id}",
            patch(update_member).delete(remove_member),
        )
        .route(
            "/v1/orgs/{org}/members/{id}/key",
            post(rotate_key).delete(revoke_key),
        )
        .route(
            "/v1/orgs/{org}/members/{id}/totp-enrollment",
            post(issue_enrollment_code),
        )
        .route(
            "/v1/orgs/{org}/members/{id}/totp-lockout",
            axum::routing::delete(clear_totp_lockout),
        )
        .route("/v1/orgs/{org}/sessions", post(open_session))
        .route(
            "/v1/orgs/{org}/access-review",
            get(access_review).post(record_access_review),
        )
        .route(
            "/v1/orgs/{org}/settings",
            get(get_settings).patch(update_settings),
        )
}

/// Add a member; the API key in the response is shown once. Callers grant only roles and
/// groups they hold themselves.
#[utoipa::path(post, tag = "members", path = "/v1/orgs/{org}/members", params(("org" = String, Path)), request_body = NewMember,
    responses((status = 201, body = CreatedMember)),
    security(("bearer" = [])))]
pub(crate) async fn add_member(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(org): Path<String>,
    ApiJson(req): ApiJson<NewMember>,
) -> ApiResult<(StatusCode, Json<CreatedMember>)> {
    Ok((
        StatusCode::CREATED,
        Json(state.custos.add_member(&caller, &org, req).await?),
    ))
}

/// The org's members (never their keys).
#[utoipa::path(get, tag = "members", path = "/v1/orgs/{org}/members", params(("org" = String, Path)),
    responses((status = 200, body = [MemberView])),
    security(("bearer" = [])))]
pub(crate) async fn list_members(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(org): Path<String>,
) -> ApiResult<Json<Vec<MemberView>>> {
    Ok(Json(state.custos.list_members(&caller, &org).await?))
}

/// The org's access review: every member with its roles, groups, second factor, last use and
/// whether it is inactive past the policy's `inactive_member_after`.
#[utoipa::path(get, tag = "members", path = "/v1/orgs/{org}/access-review", params(("org" = String, Path)),
    responses((status = 200, body = AccessReview)),
    security(("bearer" = [])))]
pub(crate) async fn access_review(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(org): Path<String>,
) -> ApiResult<Json<AccessReview>> {
    Ok(Json(state.custos.access_review(&caller, &org).await?))
}

/// Record an access review: every member of the reviewed list (named by its
/// `review_sha256`) kept or removed; removals take effect at once; the review is an audit
/// event.
#[utoipa::path(post, tag = "members", path = "/v1/orgs/{org}/access-review", params(("org" = String, Path)),
    request_body = ReviewDecision,
    responses((status = 201, body = RecordedReview)),
    security(("bearer" = [])))]
pub(crate) async fn record_access_review(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(org): Path<String>,
    ApiJson(decision): ApiJson<ReviewDecision>,
) -> ApiResult<(StatusCode, Json<RecordedReview>)> {
    Ok((
        StatusCode::CREATED,
        Json(
            state
                .custos
                .record_access_review(&caller, &org, decision)
                .await?,
        ),
    ))
}

/// Change a member's name, roles, groups or second-factor requirement, or (owners) disable
/// or enable it.
#[utoipa::path(patch, tag = "members", path = "/v1/orgs/{org}/members/{id}", params(("org" = String, Path), ("id" = String, Path)),
    request_body = MemberChange,
    responses((status = 200, body = MemberView)),
    security(("bearer" = [])))]
pub(crate) async fn update_member(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path((org, id)): Path<(String, String)>,
    ApiJson(change): ApiJson<serde_json::Map<String, serde_json::Value>>,
) -> ApiResult<Json<MemberView>> {
    let change: MemberChange = fields(change)?;
    Ok(Json(
        state
            .custos
            .update_member(&caller, &org, &id, change)
            .await?,
    ))
}

/// Remove a member: its API key and sessions stop working at once.
#[utoipa::path(delete, tag = "members", path = "/v1/orgs/{org}/members/{id}", params(("org" = String, Path), ("id" = String, Path)),
    responses((status = 204)),
    security(("bearer" = [])))]
pub(crate) async fn remove_member(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path((org, id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    state.custos.remove_member(&caller, &org, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Issue a member a new API key (shown once); the old key and its sessions stop working.
#[utoipa::path(post, tag = "members", path = "/v1/orgs/{org}/members/{id}/key", params(("org" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = RotatedKey)),
    security(("bearer" = [])))]
pub(crate) async fn rotate_key(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path((org, id)): Path<(String, String)>,
) -> ApiResult<Json<RotatedKey>> {
    Ok(Json(
        state.custos.rotate_member_key(&caller, &org, &id).await?,
    ))
}

/// Revoke a member's API key (and its sessions) without issuing a new one.
#[utoipa::path(delete, tag = "members", path = "/v1/orgs/{org}/members/{id}/key", params(("org" = String, Path), ("id" = String, Path)),
    responses((status = 204)),
    security(("bearer" = [])))]
pub(crate) async fn revoke_key(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path((org, id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    state.custos.revoke_member_key(&caller, &org, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Enroll the calling member's TOTP second factor; the secret is shown once. A member that
/// must use a second factor, or replaces an enrolled one, sends the one-time
/// `enrollment_code` an owner or admin issued (or calls with a second factor); the body may
/// be empty otherwise.
#[utoipa::path(post, tag = "members", path = "/v1/orgs/{org}/members/me/totp", params(("org" = String, Path)),
    request_body(content = Option<TotpEnrollmentRequest>, content_type = "application/json"),
    responses((status = 201, body = TotpEnrollment)),
    security(("bearer" = [])))]
pub(crate) async fn enroll_totp(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(org): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<TotpEnrollment>)> {
    // An empty body (or `null`) is the plain enrollment, as before codes existed.
    let req = if body.iter().all(u8::is_ascii_whitespace) {
        TotpEnrollmentRequest::default()
    } else {
        serde_json::from_slice::<Option<TotpEnrollmentRequest>>(&body)
            .map_err(|e| ApiError::invalid("body", e.to_string()))?
            .unwrap_or_default()
    };
    Ok((
        StatusCode::CREATED,
        Json(state.custos.enroll_totp(&caller, &org, req).await?),
    ))
}

/// Issue a member a one-time code (valid 15 minutes, shown once) to enroll its TOTP factor
/// with; for members the caller may manage.
#[utoipa::path(post, tag = "members", path = "/v1/orgs/{org}/members/{id}/totp-enrollment", params(("org" = String, Path), ("id" = String, Path)),
    responses((status = 201, body = EnrollmentCodeView)),
    security(("bearer" = [])))]
pub(crate) async fn issue_enrollment_code(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path((org, id)): Path<(String, String)>,
) -> ApiResult<(StatusCode, Json<EnrollmentCodeView>)> {
    Ok((
        StatusCode::CREATED,
        Json(
            state
                .custos
                .issue_enrollment_code(&caller, &org, &id)
                .await?,
        ),
    ))
}

/// End a member's lockout after too many wrong TOTP codes.
#[utoipa::path(delete, tag = "members", path = "/v1/orgs/{org}/members/{id}/totp-lockout", params(("org" = String, Path), ("id" = String, Path)),
    responses((status = 204)),
    security(("bearer" = [])))]
pub(crate) async fn clear_totp_lockout(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path((org, id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    state.custos.clear_totp_lockout(&caller, &org, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Open a session with the calling member's API key and a TOTP code; the session token
/// proves a second factor until the org's `session_timeout`. Each code opens one session.
#[utoipa::path(post, tag = "members", path = "/v1/orgs/{org}/sessions", params(("org" = String, Path)), request_body = NewSession,
    responses((status = 201, body = SessionView)),
    security(("bearer" = [])))]
pub(crate) async fn open_session(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(org): Path<String>,
    ApiJson(req): ApiJson<NewSession>,
) -> ApiResult<(StatusCode, Json<SessionView>)> {
    Ok((
        StatusCode::CREATED,
        Json(state.custos.open_session(&caller, &org, req).await?),
    ))
}

/// The org's settings.
#[utoipa::path(get, tag = "members", path = "/v1/orgs/{org}/settings", params(("org" = String, Path)),
    responses((status = 200, body = OrgSettings)),
    security(("bearer" = [])))]
pub(crate) async fn get_settings(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(org): Path<String>,
) -> ApiResult<Json<OrgSettings>> {
    Ok(Json(state.custos.settings(&caller, &org).await?))
}

/// Change the org's settings (only the fields given); audited with every value set.
#[utoipa::path(patch, tag = "members", path = "/v1/orgs/{org}/settings", params(("org" = String, Path)), request_body = SettingsChange,
    responses((status = 200, body = OrgSettings)),
    security(("bearer" = [])))]
pub(crate) async fn update_settings(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(org): Path<String>,
    ApiJson(change): ApiJson<serde_json::Map<String, serde_json::Value>>,
) -> ApiResult<Json<OrgSettings>> {
    let change: SettingsChange = fields(change)?;
    Ok(Json(
        state.custos.update_settings(&caller, &org, change).await?,
    ))
}
