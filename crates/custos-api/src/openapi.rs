//! Completes the generated OpenAPI document: the bearer scheme, and every problem status
//! each operation can answer, documented as `application/problem+json` with the `Problem`
//! schema (handlers declare only their success responses).

use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, ResponseBuilder};

use crate::problem::PROBLEM_JSON;

/// The served document: the generated one with this deployment's policy filled in, so the
/// categories and regions a request may name are listed (`enum`) instead of any string.
pub(crate) fn for_policy(
    doc: &OpenApi,
    categories: &[&str],
    regions: &[&str],
) -> serde_json::Value {
    let mut doc = serde_json::to_value(doc).unwrap_or_default();
    if let Some(schemas) = doc.get_mut("components").and_then(|c| c.get_mut("schemas")) {
        for (schema, field, values) in [
            ("NewRecord", "category", categories),
            ("NewHold", "category", categories),
            ("NewOrg", "region", regions),
        ] {
            let property = schemas
                .get_mut(schema)
                .and_then(|s| s.get_mut("properties"))
                .and_then(|p| p.get_mut(field));
            if let Some(property) = property {
                restrict(property, values);
            }
        }
    }
    if let Some(paths) = doc.get_mut("paths").and_then(|p| p.as_object_mut()) {
        let operations = paths
            .values_mut()
            .filter_map(|item| item.as_object_mut())
            .flat_map(|item| item.values_mut());
        for op in operations {
            // `get_mut`, not indexing: indexing a missing key would insert a `null`.
            let parameters = op
                .get_mut("parameters")
                .and_then(|p| p.as_array_mut())
                .into_iter()
                .flatten();
            for p in parameters.filter(|p| p["name"] == "category") {
                restrict(&mut p["schema"], categories);
            }
        }
    }
    doc
}

/// Adds `enum: values` to a string schema (keeping `null` if the schema allows it).
fn restrict(schema: &mut serde_json::Value, values: &[&str]) {
    let nullable = schema["type"]
        .as_array()
        .is_some_and(|t| t.iter().any(|t| t == "null"));
    let mut allowed: Vec<serde_json::Value> = values.iter().map(|v| (*v).into()).collect();
    if nullable {
        allowed.push(serde_json::Value::Null);
    }
    schema["enum"] = serde_json::Value::Array(allowed);
}

/// Adds the bearer security scheme and the problem responses.
pub(crate) struct Complete;

impl utoipa::Modify for Complete {
    fn modify(&self, openapi: &mut OpenApi) {
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
        // Not a credential either: the operator names its active support grant on each
        // request it makes inside an org under that grant.
        components.add_security_scheme(
            "support_grant",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                crate::GRANT_HEADER,
                "The id of an active support grant the org approved, sent by an operator with \
                 its own credentials in `Authorization` on every request it makes inside the \
                 org under that grant; a grant that is not active refuses the request with 403 \
                 `grant_required`, a malformed id with 400.",
            ))),
        );
        for (path, item) in openapi.paths.paths.iter_mut() {
            let operations = [
                (&mut item.get, "get"),
                (&mut item.put, "put"),
                (&mut item.post, "post"),
                (&mut item.patch, "patch"),
                (&mut item.delete, "delete"),
            ];
            for (operation, method) in operations {
                if let Some(op) = operation.as_mut() {
                    add_problems(path, method, op);
                }
            }
        }
    }
}

/// The problem statuses `method path` can answer, from what its handler extracts and calls.
fn problem_statuses(path: &str, method: &str, op: &Operation) -> Vec<u16> {
    if path.starts_with("/privacy/") {
        // The privacy center's pages authenticate with their own session cookie: bad input,
        // no session, a foreign form or request, an erased subject, an internal error.
        return vec![400, 401, 403, 404, 409, 429, 500];
    }
    let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
    if !secured {
        // /healthz declares its own 503; /metrics and /openapi.json cannot fail.
        return vec![];
    }
    // 429: a source that failed to authenticate too often, or a member locked out of TOTP.
    let mut statuses = vec![400, 401, 403, 404, 429, 500];
    if path.starts_with("/v1/orgs/{org}") {
        // State conflicts (restore window, archived content) and terminated orgs.
        statuses.extend([409, 410]);
    }
    if path == "/v1/operators" && method == "post" {
        // No operator identity provider, or the first operator exists already.
        statuses.push(409);
    }
    if path == "/v1/incidents/{id}/status" {
        // A status that does not move forward, or one that changed meanwhile.
        statuses.push(409);
    }
    let json_body = op
        .request_body
        .as_ref()
        .is_some_and(|b| b.content.keys().any(|k| k.starts_with("application/json")));
    if json_body {
        statuses.extend([413, 415]);
    }
    let writes_content =
        method == "post" && (path == "/v1/orgs/{org}/records" || path == "/v1/orgs/{org}/files");
    if writes_content {
        // A category whose PII rule is `block`.
        statuses.push(422);
    }
    statuses.sort_unstable();
    statuses
}

fn add_problems(path: &str, method: &str, op: &mut Operation) {
    for status in problem_statuses(path, method, op) {
        let mut response = ResponseBuilder::new()
            .description(description(status))
            .content(
                PROBLEM_JSON,
                ContentBuilder::new()
                    .schema(Some(RefOr::Ref(Ref::from_schema_name("Problem"))))
                    .build(),
            );
        // A page shows its errors as a page; a malformed path is still a problem document.
        if path.starts_with("/privacy/") {
            response = response.content("text/html", ContentBuilder::new().build());
        }
        let response = response.build();
        op.responses
            .responses
            .entry(status.to_string())
            .or_insert(RefOr::T(response));
    }
}

fn description(status: u16) -> &'static str {
    match status {
        400 => "invalid input (`invalid_input`, `malformed_json`, `unknown_category`)",
        401 => "missing or invalid credentials (`unauthenticated`)",
        403 => "not allowed (`forbidden`, `mfa_required`, `data_transfer_not_allowed`)",
        404 => "no such org, record, hold or entry (`not_found`)",
        409 => "conflicts with the current state (`conflict`, `move_in_progress`)",
        410 => "the org is terminated or the content erased (`org_terminated`, `erased`)",
        413 => "request body too large (`payload_too_large`)",
        415 => "the body is not `application/json` (`unsupported_media_type`)",
        422 => "refused by the category's PII rule (`pii_blocked`)",
        429 => "too many failed attempts (`rate_limited`); see `Retry-After`",
        _ => "internal error (`internal`); details are in the service log",
    }
}
