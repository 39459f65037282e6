//! Security events: an org's (owner, admin, auditor) and the deployment's own (operators).

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use utoipa::IntoParams;

use custos_core::outbox::NotificationPage;
use custos_core::security_events::SecurityEventPage;

use crate::routes::{ApiQuery, Path};
use crate::{inputs, ApiError, AppState, Authed};

type ApiResult<T> = Result<T, ApiError>;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/orgs/{org}/security-events", get(org_security_events))
        .route("/v1/security-events", get(deployment_security_events))
        .route("/v1/notifications", get(list_notifications))
}

/// Notification paging.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct NotificationQuery {
    /// Only this org's notifications.
    org: Option<String>,
    /// Where the previous page ended (its `next_cursor`).
    cursor: Option<String>,
    /// Page size, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// Everything the outbox queued (alerts, security notices, incident clocks), newest first,
/// with its delivery state: delivered, still retried (attempts, next attempt, last error) or
/// given up after 24 hours; operators.
#[utoipa::path(get, tag = "security", path = "/v1/notifications",
    params(NotificationQuery),
    responses((status = 200, body = NotificationPage)),
    security(("bearer" = [])))]
pub(crate) async fn list_notifications(
    State(state): State<AppState>,
    Authed(caller): Authed,
    ApiQuery(q): ApiQuery<NotificationQuery>,
) -> ApiResult<Json<NotificationPage>> {
    let limit = inputs::limit(q.limit)?;
    Ok(Json(
        state
            .custos
            .notifications(&caller, q.org.as_deref(), q.cursor.as_deref(), limit)
            .await?,
    ))
}

/// Security-event paging.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct SecurityEventQuery {
    /// Where the previous page ended (its `next_cursor`).
    cursor: Option<String>,
    /// Page size, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// The org's security events, oldest first: refusals, failed sign-ins and second factors,
/// PII blocks, support access, security settings changed, new privileged members and
/// credentials, alerts. Kept as records of `security_logs` under its retention; ids, codes
/// and counts only.
#[utoipa::path(get, tag = "security", path = "/v1/orgs/{org}/security-events",
    params(("org" = String, Path), SecurityEventQuery),
    responses((status = 200, body = SecurityEventPage)),
    security(("bearer" = [])))]
pub(crate) async fn org_security_events(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(org): Path<String>,
    ApiQuery(q): ApiQuery<SecurityEventQuery>,
) -> ApiResult<Json<SecurityEventPage>> {
    let cursor = inputs::cursor(q.cursor.as_deref())?;
    let limit = inputs::limit(q.limit)?;
    Ok(Json(
        state
            .custos
            .security_events(&caller, &org, cursor, Some(limit))
            .await?,
    ))
}

/// The deployment's own security events (those of no org: refused keys and tokens, failed
/// operator sign-ins, failed notifications), newest first; operators.
#[utoipa::path(get, tag = "security", path = "/v1/security-events",
    params(SecurityEventQuery),
    responses((status = 200, body = SecurityEventPage)),
    security(("bearer" = [])))]
pub(crate) async fn deployment_security_events(
    State(state): State<AppState>,
    Authed(caller): Authed,
    ApiQuery(q): ApiQuery<SecurityEventQuery>,
) -> ApiResult<Json<SecurityEventPage>> {
    let limit = inputs::limit(q.limit)?;
    Ok(Json(
        state
            .custos
            .deployment_security_events(&caller, q.cursor.as_deref(), Some(limit))
            .await?,
    ))
}
