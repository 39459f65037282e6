//! What the HTML pages (the privacy center and the console) share: the page frame, strict
//! security headers, CSRF tokens, the embedded assets and HTML error pages.
//!
//! Every page carries a Content-Security-Policy without `unsafe-inline`: scripts and styles
//! come from `/assets/` (embedded in the binary, no CDN, no external fonts); the only inline
//! piece, a page's colors, is a `<style>` element with the response's nonce. Pages may be
//! framed only where the privacy center's `frame_ancestors` allow it; everything else denies
//! framing.
//!
//! Not for: the JSON API's errors (`problem.rs`).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use maud::{html, Markup, PreEscaped, DOCTYPE};

use crate::{ApiError, AppState};

/// The stylesheet every page uses.
const CSS: &str = include_str!("../assets/custos.css");
/// The console's in-browser verifier (checkpoints, inclusion proofs, certificates).
const VERIFY_JS: &str = include_str!("../assets/verify.js");

/// Marks a response as an HTML page, which the problem-document layer leaves alone.
#[derive(Clone, Copy)]
pub(crate) struct HtmlPage;

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/assets/{file}", get(asset))
}

/// An embedded asset (stylesheet, scripts).
#[utoipa::path(get, tag = "pages", path = "/assets/{file}",
    params(("file" = String, Path, description = "`custos.css` or `verify.js`")),
    responses(
        (status = 200, description = "the asset", content(("text/css"), ("text/javascript"))),
        (status = 404, description = "no such asset (`not_found`)", body = crate::Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn asset(crate::routes::Path(file): crate::routes::Path<String>) -> Response {
    let (body, media_type) = match file.as_str() {
        "custos.css" => (CSS, "text/css; charset=utf-8"),
        "verify.js" => (VERIFY_JS, "text/javascript; charset=utf-8"),
        _ => {
            return ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such asset")
                .into_response()
        }
    };
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(media_type)),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=3600"),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        body,
    )
        .into_response()
}

/// A page's colors, each `#rrggbb` (checked when the org set them).
#[derive(Debug, Clone, Default)]
pub(crate) struct Colors {
    pub accent: Option<String>,
    pub background: Option<String>,
}

/// One HTML page.
pub(crate) struct Page {
    /// The `<title>`, and the page's heading.
    pub title: String,
    /// What the header names (the org, or "Custos").
    pub brand: String,
    /// The page's main content.
    pub body: Markup,
    /// Colors replacing the stylesheet's.
    pub colors: Colors,
    /// Origins allowed to frame the page (empty: none).
    pub frame_ancestors: Vec<String>,
    /// Navigation shown in the header (the console's).
    pub nav: Option<Markup>,
    /// Scripts from `/assets/` the page loads (deferred).
    pub scripts: Vec<&'static str>,
}

impl Page {
    /// A page with Custos's colors that no other site may frame.
    pub(crate) fn new(title: impl Into<String>, brand: impl Into<String>, body: Markup) -> Self {
        Page {
            title: title.into(),
            brand: brand.into(),
            body,
            colors: Colors::default(),
            frame_ancestors: Vec::new(),
            nav: None,
            scripts: Vec::new(),
        }
    }

    /// The page as a response with `status` and its security headers.
    pub(crate) fn render(self, status: StatusCode) -> Response {
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        let mut style = String::new();
        for (var, value) in [
            ("--accent", &self.colors.accent),
            ("--background", &self.colors.background),
        ] {
            if let Some(color) = value.as_deref().filter(|c| is_hex_color(c)) {
                style.push_str(&format!("{var}:{color};"));
            }
        }
        let markup = html! {
            (DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    meta name="referrer" content="same-origin";
                    title { (self.title) " · " (self.brand) }
                    link rel="stylesheet" href="/assets/custos.css";
                    @if !style.is_empty() {
                        style nonce=(nonce) { (PreEscaped(format!(":root{{{style}}}"))) }
                    }
                    @for script in &self.scripts {
                        script src={ "/assets/" (script) } defer {}
                    }
                }
                body {
                    a.skip href="#main" { "Skip to content" }
                    header.site {
                        span.brand { (self.brand) }
                        @if let Some(nav) = &self.nav { (nav) }
                    }
                    main id="main" {
                        h1 { (self.title) }
                        (self.body)
                    }
                }
            }
        };
        let mut response = (status, markup.into_string()).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        for (name, value) in security_headers(&nonce, &self.frame_ancestors) {
            headers.insert(name, value);
        }
        response.extensions_mut().insert(HtmlPage);
        response
    }
}

/// Whether `s` is a color as `#rrggbb` (checked again here: it lands in a style element).
fn is_hex_color(s: &str) -> bool {
    s.len() == 7 && s.starts_with('#') && s[1..].bytes().all(|b| b.is_ascii_hexdigit())
}

/// The headers of every page: the CSP (scripts and styles from this origin, the page's
/// nonce for its one style element, forms posting here only), framing limited to
/// `frame_ancestors`, no sniffing, no referrer to other sites (a page address never leaves
/// this origin; `no-referrer` would also blank the `Origin` of the pages' own forms), no
/// caching.
pub(crate) fn security_headers(
    nonce: &str,
    frame_ancestors: &[String],
) -> Vec<(header::HeaderName, HeaderValue)> {
    let ancestors = if frame_ancestors.is_empty() {
        "'none'".to_string()
    } else {
        frame_ancestors.join(" ")
    };
    let csp = format!(
        "default-src 'none'; script-src 'self'; style-src 'self' 'nonce-{nonce}'; \
         img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; \
         frame-ancestors {ancestors}"
    );
    let mut headers = vec![
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_str(&csp).unwrap_or_else(|_| {
                // Origins were checked when set; should one not fit a header, deny framing.
                HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'")
            }),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        ),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
    ];
    // `X-Frame-Options` cannot name origins: sent only where nobody may frame the page.
    if frame_ancestors.is_empty() {
        headers.push((header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")));
    }
    headers
}

/// The CSRF token of the session `token`: a digest of it, so a page served to the session's
/// browser can carry it and a forged cross-site form cannot.
pub(crate) fn csrf_token(session_token: &str) -> String {
    let digest = custos_core::token_hash(&format!("custos-csrf:{session_token}"));
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `presented` is the CSRF token of `session_token` (compared in constant time).
pub(crate) fn csrf_matches(session_token: &str, presented: &str) -> bool {
    let expected = csrf_token(session_token);
    expected.len() == presented.len()
        && expected
            .bytes()
            .zip(presented.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// A `Set-Cookie` value for an embedded page's session: `SameSite=None; Secure;
/// Partitioned` (a browser sends it inside a cross-site frame, kept apart per top-level
/// site), `HttpOnly`, on `path`; `max_age` 0 clears it.
pub(crate) fn partitioned_cookie(name: &str, value: &str, path: &str, max_age: i64) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; Secure; SameSite=None; \
         Partitioned"
    ))
    // Names and paths are ours; values are base64url tokens.
    .expect("cookie values are header-safe")
}

/// A form's CSRF token must be the session's, and a browser that names the form's origin
/// must name this one (`Origin` against `Host`): a cross-site form can carry neither.
pub(crate) fn check_form(
    headers: &axum::http::HeaderMap,
    session: &str,
    csrf: &str,
) -> Result<(), custos_core::CoreError> {
    if !csrf_matches(session, csrf) {
        return Err(custos_core::CoreError::Forbidden(
            "the form's CSRF token is missing or not this session's; reload the page".into(),
        ));
    }
    check_origin(headers)
}

/// A browser that names a form's origin must name this one (`Origin` against `Host`).
pub(crate) fn check_origin(headers: &axum::http::HeaderMap) -> Result<(), custos_core::CoreError> {
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    if let (Some(origin), Some(host)) = (origin, host) {
        let same = origin
            .split_once("://")
            .is_some_and(|(_, authority)| authority == host);
        if !same {
            return Err(custos_core::CoreError::Forbidden(
                "a form posted from another site".into(),
            ));
        }
    }
    Ok(())
}

/// A `303 See Other` to `location`, setting `cookies` (sign-in and the pages).
pub(crate) fn see_other(location: &str, cookies: Vec<HeaderValue>) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(location) {
        headers.insert(header::LOCATION, value);
    }
    for cookie in cookies {
        headers.append(header::SET_COOKIE, cookie);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}

/// An error shown as an HTML page: the problem's title and detail (scrubbed as the JSON
/// API's are), with the same status.
pub(crate) struct PageError {
    error: ApiError,
    /// Who may frame the error page (the privacy center's embedders).
    frame_ancestors: Vec<String>,
    brand: String,
}

impl PageError {
    /// The same error, framed where the page it replaces may be, under `brand`.
    pub(crate) fn framed(mut self, frame_ancestors: &[String], brand: &str) -> Self {
        self.frame_ancestors = frame_ancestors.to_vec();
        self.brand = brand.to_string();
        self
    }
}

impl<E: Into<ApiError>> From<E> for PageError {
    fn from(e: E) -> Self {
        PageError {
            error: e.into(),
            frame_ancestors: Vec::new(),
            brand: "Custos".into(),
        }
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let problem = self.error.problem_doc();
        let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::BAD_REQUEST);
        let body = html! {
            p.error role="alert" { (problem.detail) }
            p.code { "Code: " code { (problem.code) } }
        };
        let mut page = Page::new(problem.title, self.brand, body);
        page.frame_ancestors = self.frame_ancestors;
        let mut response = page.render(status);
        if let Some(seconds) = self.error.retry_after() {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csrf_tokens_belong_to_their_session() {
        let token = csrf_token("cupc_a");
        assert_eq!(token.len(), 32);
        assert!(csrf_matches("cupc_a", &token));
        assert!(!csrf_matches("cupc_b", &token));
        assert!(!csrf_matches("cupc_a", &token[..31]));
        assert!(!csrf_matches("cupc_a", ""));
    }

    #[test]
    fn pages_forbid_inline_scripts_and_framing_unless_allowed() {
        let headers = security_headers("n0nce", &[]);
        let csp = headers
            .iter()
            .find(|(n, _)| n == header::CONTENT_SECURITY_POLICY)
            .unwrap()
            .1
            .to_str()
            .unwrap()
            .to_string();
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(headers.iter().any(|(n, _)| n == header::X_FRAME_OPTIONS));
        let framed = security_headers("n0nce", &["https://app.example.com".into()]);
        assert!(!framed.iter().any(|(n, _)| n == header::X_FRAME_OPTIONS));
        assert!(framed.iter().any(|(_, v)| v
            .to_str()
            .unwrap()
            .contains("frame-ancestors https://app.example.com")));
    }

    #[test]
    fn a_color_that_is_not_one_never_reaches_the_page() {
        let mut page = Page::new("t", "b", html! {});
        page.colors.accent = Some("red;}</style><script>".into());
        page.colors.background = Some("#00ff00".into());
        let response = page.render(StatusCode::OK);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let body = rt
            .block_on(axum::body::to_bytes(response.into_body(), 1 << 20))
            .unwrap();
        let text = String::from_utf8(body.to_vec()).unwrap();
        assert!(!text.contains("<script>"), "{text}");
        assert!(text.contains("--background:#00ff00;"), "{text}");
    }
}
