//! Sign-in for people through an org's identity provider (OpenID Connect), and sign-out.
//!
//! The browser's two cookies: `custos_sign_in` (the pre-login secret binding the provider's
//! answer to the browser that asked, ten minutes, only sent to `/v1/auth/oidc`) and
//! `custos_session` (the session token). Both are `HttpOnly; Secure; SameSite=Lax`: a
//! `Strict` cookie set by the callback would not be sent on the redirect the provider started.
//! A program uses the session token as `Authorization: Bearer`.

use axum::extract::State;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use utoipa::IntoParams;

use custos_core::sign_in::{Callback, SignInFor};

use crate::routes::ApiQuery;
use crate::{ApiError, AppState};

/// The pre-login cookie.
pub const SIGN_IN_COOKIE: &str = "custos_sign_in";
/// The session cookie.
pub const SESSION_COOKIE: &str = "custos_session";
/// Where the pre-login cookie is sent (the callback only).
const SIGN_IN_COOKIE_PATH: &str = "/v1/auth/oidc";
/// How long the pre-login cookie lives, in seconds (as long as the sign-in under way).
const SIGN_IN_COOKIE_SECONDS: i64 = 600;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/auth/oidc/login", get(login))
        .route("/v1/auth/oidc/callback", get(callback))
        .route("/v1/auth/logout", post(logout))
}

/// Where a sign-in is for.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LoginQuery {
    /// The org whose identity provider its people sign in with.
    pub org: Option<String>,
    /// `true`: an operator signs in through the deployment's `[operators.identity_provider]`
    /// (instead of `org`).
    pub operator: Option<bool>,
    /// The path on this deployment the browser goes to once signed in (default `/`).
    pub return_to: Option<String>,
}

/// Start signing in one of an org's people (`org`) or an operator (`operator=true`):
/// redirects the browser to the org's identity provider, or the deployment's
/// `[operators.identity_provider]` (authorization code flow with PKCE, `state` and `nonce`),
/// and sets the pre-login cookie. Register `<[service] public_url>/v1/auth/oidc/callback` at
/// the provider.
#[utoipa::path(get, tag = "sign-in", path = "/v1/auth/oidc/login",
    params(LoginQuery),
    responses(
        (status = 303, description = "to the identity provider (`Location`); sets the `custos_sign_in` cookie"),
        (status = 400, description = "neither `org` nor `operator=true` (or both), or `return_to` is not a path on this deployment (`invalid_input`)", body = crate::Problem, content_type = "application/problem+json"),
        (status = 404, description = "no such org, or it (or, for operators, the policy) names no identity provider (`not_found`)", body = crate::Problem, content_type = "application/problem+json"),
        (status = 409, description = "the policy sets no `[service] public_url` (`conflict`)", body = crate::Problem, content_type = "application/problem+json"),
        (status = 410, description = "the org is terminated (`org_terminated`)", body = crate::Problem, content_type = "application/problem+json"),
        (status = 429, description = "too many failed sign-ins from this address (`rate_limited`)", body = crate::Problem, content_type = "application/problem+json"),
        (status = 502, description = "the identity provider does not answer (`identity_provider_unavailable`)", body = crate::Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn login(
    State(state): State<AppState>,
    parts: Parts,
    ApiQuery(query): ApiQuery<LoginQuery>,
) -> Result<Response, ApiError> {
    let context = crate::request_context(&parts);
    let target = match (query.org, query.operator.unwrap_or(false)) {
        (Some(org), false) => SignInFor::Org(org),
        (None, true) => SignInFor::Operator,
        _ => {
            return Err(ApiError::invalid(
                "org",
                "name either the org whose people sign in (`org`) or `operator=true`",
            ))
        }
    };
    let started = state
        .custos
        .start_sign_in(&target, query.return_to.as_deref(), &context)
        .await?;
    let cookie = cookie(
        SIGN_IN_COOKIE,
        &started.browser_secret,
        SIGN_IN_COOKIE_PATH,
        SIGN_IN_COOKIE_SECONDS,
    );
    Ok(crate::web::see_other(&started.location, vec![cookie]))
}

/// Where the identity provider sends the browser back: checks the answer, opens a session,
/// sets the session cookie and redirects to the sign-in's `return_to`. Every refusal is
/// audited (`auth.sign_in`, outcome `denied`, a reason code) and counted.
#[utoipa::path(get, tag = "sign-in", path = "/v1/auth/oidc/callback",
    params(Callback),
    responses(
        (status = 303, description = "signed in: to `return_to`; sets the `custos_session` cookie"),
        (status = 403, description = "not signed in (`sign_in_refused`; the detail names the reason code)", body = crate::Problem, content_type = "application/problem+json"),
        (status = 409, description = "the policy sets no `[service] public_url` (`conflict`)", body = crate::Problem, content_type = "application/problem+json"),
        (status = 429, description = "too many failed sign-ins from this address (`rate_limited`)", body = crate::Problem, content_type = "application/problem+json"),
        (status = 502, description = "the identity provider does not answer (`identity_provider_unavailable`)", body = crate::Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn callback(
    State(state): State<AppState>,
    parts: Parts,
    ApiQuery(query): ApiQuery<Callback>,
) -> Response {
    let context = crate::request_context(&parts);
    let browser = cookie_value(&parts.headers, SIGN_IN_COOKIE);
    // The pre-login cookie is used up either way.
    let clear = cookie(SIGN_IN_COOKIE, "", SIGN_IN_COOKIE_PATH, 0);
    match state
        .custos
        .finish_sign_in(&query, browser.as_deref(), &context)
        .await
    {
        Ok(signed_in) => {
            let lifetime = state
                .custos
                .now()
                .duration_until(signed_in.expires_at)
                .as_secs()
                .max(0);
            let session = cookie(SESSION_COOKIE, &signed_in.token, "/", lifetime);
            crate::web::see_other(&signed_in.return_to, vec![clear, session])
        }
        Err(e) => {
            let mut response = ApiError::from(e).into_response();
            response.headers_mut().append(header::SET_COOKIE, clear);
            response
        }
    }
}

/// Sign out: ends the session presented (as `Authorization: Bearer` or the `custos_session`
/// cookie; audited as `auth.sign_out`) and clears the session cookie. Answers `204` whether or
/// not a session was presented.
#[utoipa::path(post, tag = "sign-in", path = "/v1/auth/logout",
    responses(
        (status = 204, description = "signed out; the `custos_session` cookie is cleared"),
        (status = 403, description = "a cookie sent from another site (`forbidden`)", body = crate::Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn logout(
    State(state): State<AppState>,
    parts: Parts,
) -> Result<Response, ApiError> {
    let context = crate::request_context(&parts);
    if let Some((token, _)) = crate::presented_token(&parts, &state)? {
        state.custos.sign_out(&token, &context).await?;
    }
    let clear = cookie(SESSION_COOKIE, "", "/", 0);
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, clear)]).into_response())
}

/// A `Set-Cookie` value: `HttpOnly; Secure; SameSite=Lax`; `max_age` 0 clears it.
pub(crate) fn cookie(name: &str, value: &str, path: &str, max_age: i64) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; Secure; SameSite=Lax"
    ))
    // Names, paths and values are ours: base64url tokens and fixed words.
    .expect("cookie values are header-safe")
}

/// The value of cookie `name` in the request's `Cookie` headers. Hand-parsed (RFC 6265
/// §5.4: `name=value` pairs separated by `; `): the two cookies Custos reads are its own
/// base64url tokens, so no decoding is needed.
pub(crate) fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_by_exact_name() {
        let mut headers = HeaderMap::new();
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; custos_session_x=no; custos_session=cuss_abc"),
        );
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("custos_sign_in=xyz"),
        );
        assert_eq!(
            cookie_value(&headers, SESSION_COOKIE).as_deref(),
            Some("cuss_abc")
        );
        assert_eq!(
            cookie_value(&headers, SIGN_IN_COOKIE).as_deref(),
            Some("xyz")
        );
        assert_eq!(cookie_value(&headers, "b"), None);
    }

    #[test]
    fn cookies_are_http_only_secure_and_lax() {
        let c = cookie(SESSION_COOKIE, "t", "/", 60);
        assert_eq!(
            c.to_str().unwrap(),
            "custos_session=t; Path=/; Max-Age=60; HttpOnly; Secure; SameSite=Lax"
        );
    }
}
