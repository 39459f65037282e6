//! The deployment's operators: the bootstrap token creates the first one; operators list them.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};

use custos_core::{NewOperator, OperatorView};

use crate::routes::ApiJson;
use crate::{ApiError, AppState, Authed};

type ApiResult<T> = Result<T, ApiError>;

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/v1/operators", post(create_operator).get(list_operators))
}

/// Create the deployment's first operator, a person of its `[operators.identity_provider]`
/// (`409` without one, or once an operator exists). From then on the bootstrap admin token is
/// refused (`403`) unless `serve` runs with `--break-glass`.
#[utoipa::path(post, tag = "operators", path = "/v1/operators",
    request_body = NewOperator,
    responses((status = 201, body = OperatorView)),
    security(("bearer" = [])))]
pub(crate) async fn create_operator(
    State(state): State<AppState>,
    Authed(caller): Authed,
    ApiJson(req): ApiJson<NewOperator>,
) -> ApiResult<(StatusCode, Json<OperatorView>)> {
    let created = state.custos.create_operator(&caller, req).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// The deployment's operators, oldest first.
#[utoipa::path(get, tag = "operators", path = "/v1/operators",
    responses((status = 200, body = [OperatorView])),
    security(("bearer" = [])))]
pub(crate) async fn list_operators(
    State(state): State<AppState>,
    Authed(caller): Authed,
) -> ApiResult<Json<Vec<OperatorView>>> {
    Ok(Json(state.custos.operators(&caller).await?))
}
