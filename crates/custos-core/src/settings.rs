//! Per-org settings that change how the org's callers authenticate: `require_mfa_for_admins`,
//! `session_timeout` and the identity provider whose tokens prove a second factor. Stored as
//! one JSON document per org; every change is audited with the values it set.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use custos_policy::Duration;
use custos_store::OrgScope;

use crate::authz::Operation;
use crate::{Caller, CoreError, Custos};

/// The session timeout when an org sets none (seed 004's `sessionTimeout`).
const DEFAULT_SESSION_TIMEOUT: &str = "1h";
/// The shortest and longest session an org may choose.
const SESSION_BOUNDS: (&str, &str) = ("5m", "24h");

/// The identity provider whose ID tokens prove that an application's signed-in user passed
/// a second factor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IdentityProvider {
    /// The `iss` the tokens must carry.
    pub issuer: String,
    /// The `aud` the tokens must carry (this deployment's client id at the provider).
    pub audience: String,
    /// Where the provider publishes its signing keys (JWKS); `https`, or `http` on loopback.
    pub jwks_uri: String,
}

/// An org's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct OrgSettings {
    /// Members with the `owner` or `admin` role need a second factor for administrative
    /// operations (seed 000: "MFA required for administrative access").
    pub require_mfa_for_admins: bool,
    /// How long a session opened with a TOTP code lasts (5m to 24h).
    pub session_timeout: String,
    /// The identity provider whose tokens prove a second factor, if any.
    pub identity_provider: Option<IdentityProvider>,
}

impl Default for OrgSettings {
    fn default() -> Self {
        OrgSettings {
            require_mfa_for_admins: false,
            session_timeout: DEFAULT_SESSION_TIMEOUT.into(),
            identity_provider: None,
        }
    }
}

/// A change of settings: only the fields given change.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsChange {
    /// See [`OrgSettings::require_mfa_for_admins`].
    #[serde(default)]
    pub require_mfa_for_admins: Option<bool>,
    /// See [`OrgSettings::session_timeout`].
    #[serde(default)]
    pub session_timeout: Option<String>,
    /// See [`OrgSettings::identity_provider`]; `null` removes it.
    #[serde(default, with = "double_option")]
    #[schema(value_type = Option<IdentityProvider>)]
    pub identity_provider: Option<Option<IdentityProvider>>,
}

/// `Some(None)` for an explicit `null`, `None` for an absent field.
mod double_option {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, T, D>(d: D) -> Result<Option<Option<T>>, D::Error>
    where
        T: Deserialize<'de>,
        D: Deserializer<'de>,
    {
        Option::<T>::deserialize(d).map(Some)
    }
}

impl OrgSettings {
    /// The session timeout as a duration.
    pub fn session_timeout(&self) -> Result<Duration, CoreError> {
        parse_timeout(&self.session_timeout)
    }

    fn apply(mut self, change: SettingsChange) -> Result<(OrgSettings, Vec<String>), CoreError> {
        let mut changed = Vec::new();
        if let Some(v) = change.require_mfa_for_admins {
            self.require_mfa_for_admins = v;
            changed.push(format!("require_mfa_for_admins={v}"));
        }
        if let Some(v) = change.session_timeout {
            self.session_timeout = parse_timeout(&v)?.to_string();
            changed.push(format!("session_timeout={}", self.session_timeout));
        }
        if let Some(v) = change.identity_provider {
            if let Some(idp) = &v {
                check_idp(idp)?;
            }
            changed.push(match &v {
                Some(idp) => format!("identity_provider={}", idp.issuer),
                None => "identity_provider=none".into(),
            });
            self.identity_provider = v;
        }
        Ok((self, changed))
    }
}

fn parse_timeout(value: &str) -> Result<Duration, CoreError> {
    let d: Duration = value.parse().map_err(|e| {
        CoreError::invalid("session_timeout", format!("not a duration such as 1h: {e}"))
    })?;
    let (min, max) = (
        SESSION_BOUNDS.0.parse::<Duration>().expect("valid bound"),
        SESSION_BOUNDS.1.parse::<Duration>().expect("valid bound"),
    );
    if d.cmp_for_validation(&min).is_lt() || d.cmp_for_validation(&max).is_gt() {
        return Err(CoreError::invalid(
            "session_timeout",
            format!(
                "must be between {} and {}",
                SESSION_BOUNDS.0, SESSION_BOUNDS.1
            ),
        ));
    }
    Ok(d)
}

/// A URL Custos may fetch keys from: `https`, or `http` to a loopback host (a local
/// identity provider in development and tests).
pub(crate) fn check_key_url(field: &str, url: &str) -> Result<(), CoreError> {
    let rest = if let Some(rest) = url.strip_prefix("https://") {
        rest
    } else if let Some(rest) = url.strip_prefix("http://") {
        let host = match rest.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or(""),
            None => rest.split(['/', ':', '?', '#']).next().unwrap_or(""),
        };
        if !matches!(host, "127.0.0.1" | "localhost" | "::1") {
            return Err(CoreError::invalid(
                field,
                "must be an https URL (plain http only to a loopback host)",
            ));
        }
        rest
    } else {
        return Err(CoreError::invalid(field, "must be an https URL"));
    };
    if rest.is_empty() || url.len() > 2048 || url.chars().any(|c| c.is_control() || c == ' ') {
        return Err(CoreError::invalid(field, "is not a valid URL"));
    }
    Ok(())
}

fn check_idp(idp: &IdentityProvider) -> Result<(), CoreError> {
    check_key_url("identity_provider.jwks_uri", &idp.jwks_uri)?;
    for (field, value) in [
        ("identity_provider.issuer", &idp.issuer),
        ("identity_provider.audience", &idp.audience),
    ] {
        if value.is_empty() || value.len() > 512 || value.chars().any(char::is_control) {
            return Err(CoreError::invalid(
                field,
                "must be 1 to 512 printable characters",
            ));
        }
    }
    Ok(())
}

impl Custos {
    /// The org's settings (defaults where never changed).
    pub(crate) async fn org_settings_of(&self, scope: &OrgScope) -> Result<OrgSettings, CoreError> {
        match self.store.org_settings(scope).await? {
            None => Ok(OrgSettings::default()),
            Some(json) => serde_json::from_str(&json).map_err(|e| {
                CoreError::Internal(format!(
                    "stored settings of {} are invalid: {e}",
                    scope.org_id()
                ))
            }),
        }
    }

    /// The org's settings.
    pub async fn settings(&self, caller: &Caller, org: &str) -> Result<OrgSettings, CoreError> {
        let grant = self.authorize(caller, Operation::SettingsRead, org).await?;
        self.org_settings_of(&grant.scope).await
    }

    /// Changes the org's settings; the audit event names every value set.
    pub async fn update_settings(
        &self,
        caller: &Caller,
        org: &str,
        change: SettingsChange,
    ) -> Result<OrgSettings, CoreError> {
        let grant = self
            .authorize(caller, Operation::SettingsUpdate, org)
            .await?;
        let (settings, changed) = self.org_settings_of(&grant.scope).await?.apply(change)?;
        if changed.is_empty() {
            return Ok(settings);
        }
        let json = serde_json::to_string(&settings).expect("settings serialize");
        let event = self
            .event(caller, custos_audit::AuditAction::SettingsUpdate)
            .org(org)
            .target(format!("org:{org}"))
            .reason(changed.join(" "));
        self.store
            .set_org_settings(&grant.scope, &json, &[event])
            .await?;
        Ok(settings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_outside_the_bounds_are_refused() {
        assert!(parse_timeout("1h").is_ok());
        assert!(parse_timeout("5m").is_ok());
        assert!(parse_timeout("24h").is_ok());
        assert!(parse_timeout("1m").is_err());
        assert!(parse_timeout("2d").is_err());
        assert!(parse_timeout("soon").is_err());
    }

    #[test]
    fn key_urls_are_https_or_loopback_http() {
        assert!(check_key_url("f", "https://idp.example.com/jwks").is_ok());
        assert!(check_key_url("f", "http://127.0.0.1:8080/jwks").is_ok());
        assert!(check_key_url("f", "http://localhost/jwks").is_ok());
        assert!(check_key_url("f", "http://[::1]:9/jwks").is_ok());
        assert!(check_key_url("f", "http://10.0.0.1/jwks").is_err());
        assert!(check_key_url("f", "http://localhost.evil.com/jwks").is_err());
        assert!(check_key_url("f", "http://[fe80::1]/jwks").is_err());
        assert!(check_key_url("f", "ftp://x").is_err());
    }
}
