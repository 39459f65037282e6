//! Personal access tokens: a signed-in person's tokens for remote use.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, post};
use axum::{Json, Router};

use custos_core::{CreatedPersonalToken, NewPersonalToken, PersonalTokenView};

use crate::routes::{ApiJson, Path};
use crate::{ApiError, AppState, Authed};

type ApiResult<T> = Result<T, ApiError>;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/auth/tokens", post(create_token).get(list_tokens))
        .route("/v1/auth/tokens/{id}", delete(revoke_token))
}

/// Make a personal access token (`cup_…`, shown once) with the calling person's roles. Only
/// with a second factor (a sign-in that proved one, or a TOTP session); the token itself never
/// counts as one.
#[utoipa::path(post, tag = "sign-in", path = "/v1/auth/tokens",
    request_body = NewPersonalToken,
    responses((status = 201, body = CreatedPersonalToken)),
    security(("bearer" = [])))]
pub(crate) async fn create_token(
    State(state): State<AppState>,
    Authed(caller): Authed,
    ApiJson(req): ApiJson<NewPersonalToken>,
) -> ApiResult<(StatusCode, Json<CreatedPersonalToken>)> {
    let created = state.custos.create_personal_token(&caller, req).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// The calling person's personal access tokens (never the tokens themselves).
#[utoipa::path(get, tag = "sign-in", path = "/v1/auth/tokens",
    responses((status = 200, body = [PersonalTokenView])),
    security(("bearer" = [])))]
pub(crate) async fn list_tokens(
    State(state): State<AppState>,
    Authed(caller): Authed,
) -> ApiResult<Json<Vec<PersonalTokenView>>> {
    Ok(Json(state.custos.personal_tokens(&caller).await?))
}

/// Revoke one of the calling person's personal access tokens.
#[utoipa::path(delete, tag = "sign-in", path = "/v1/auth/tokens/{id}",
    params(("id" = String, Path, description = "the token's id")),
    responses((status = 204, description = "revoked")),
    security(("bearer" = [])))]
pub(crate) async fn revoke_token(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    state.custos.revoke_personal_token(&caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
