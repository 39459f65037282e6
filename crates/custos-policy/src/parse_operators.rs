//! The `[operators]` table: how the deployment's operators sign in (its identity provider) and
//! how long their sessions last.

use std::collections::BTreeSet;

use toml_edit::TableLike;

use super::{duration_field, fields, missing, string_field, table_field, Cx, Span};
use crate::model::{OperatorIdentityProvider, Operators};

const OPERATOR_KEYS: &[&str] = &[
    "identity_provider",
    "session_timeout",
    "session_max_lifetime",
];
const PROVIDER_KEYS: &[&str] = &["issuer", "client_id", "client_secret_env"];

/// Checks `[operators]`: durations for the two session lifetimes (the idle one not longer than
/// the absolute one) and, if given, an identity provider with its issuer and client id.
pub(super) fn check_operators(cx: &mut Cx<'_>, table: &dyn TableLike, at: &Span) -> Operators {
    let f = fields(
        cx,
        table,
        OPERATOR_KEYS,
        at,
        "[operators]",
        &BTreeSet::new(),
    );
    let default = Operators::default();
    let session_timeout = f
        .get("session_timeout")
        .and_then(|f| duration_field(cx, f))
        .unwrap_or(default.session_timeout);
    let session_max_lifetime = f
        .get("session_max_lifetime")
        .and_then(|f| duration_field(cx, f))
        .unwrap_or(default.session_max_lifetime);
    if session_timeout
        .cmp_for_validation(&session_max_lifetime)
        .is_gt()
    {
        let span = f
            .get("session_timeout")
            .map(|f| f.value_span())
            .unwrap_or_else(|| at.clone());
        cx.error(
            &span,
            format!(
                "`session_timeout` ({session_timeout}) is longer than `session_max_lifetime` \
                 ({session_max_lifetime})"
            ),
            "the idle timeout must fit inside the absolute lifetime".to_string(),
        );
    }
    let identity_provider = f
        .get("identity_provider")
        .and_then(|field| table_field(cx, field).map(|t| (field, t)))
        .and_then(|(field, t)| check_provider(cx, t, &field.key));
    Operators {
        identity_provider,
        session_timeout,
        session_max_lifetime,
    }
}

fn check_provider(
    cx: &mut Cx<'_>,
    table: &dyn TableLike,
    at: &Span,
) -> Option<OperatorIdentityProvider> {
    let what = "[operators.identity_provider]";
    let f = fields(cx, table, PROVIDER_KEYS, at, what, &BTreeSet::new());
    let issuer = f.get("issuer").and_then(|f| string_field(cx, f));
    let client_id = f.get("client_id").and_then(|f| string_field(cx, f));
    let client_secret_env = f
        .get("client_secret_env")
        .and_then(|f| string_field(cx, f))
        .map(|(v, _)| v);
    if !f.contains_key("issuer") {
        missing(cx, at, "issuer", what, "\"https://login.example.com\"");
    }
    if !f.contains_key("client_id") {
        missing(cx, at, "client_id", what, "\"custos\"");
    }
    // Taken as written (the operator writes the policy): no outbound URL rule applies.
    let (issuer, _) = issuer?;
    let (client_id, _) = client_id?;
    Some(OperatorIdentityProvider {
        issuer,
        client_id,
        client_secret_env,
    })
}
