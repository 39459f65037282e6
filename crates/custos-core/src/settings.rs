//! Per-org settings: how the org's callers authenticate (`require_mfa_for_admins`,
//! `session_timeout`, the identity provider whose tokens prove a second factor) and what the
//! LLM gateway lets them do (`allow_data_transfer`, allowed providers and models,
//! `private_data_mode`, request size and concurrency limits, prompt retention). Stored as one
//! JSON document per org; every change is audited with the values it set.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use custos_policy::Duration;
use custos_store::OrgScope;

use custos_audit::{Details, Target};

use crate::authz::Operation;
use crate::outbound::{OutboundUrl, Refusal, Rules};
use crate::{Caller, CoreError, Custos};

/// The session timeout when an org sets none (seed 004's `sessionTimeout`).
const DEFAULT_SESSION_TIMEOUT: &str = "1h";
/// The shortest and longest session an org may choose.
const SESSION_BOUNDS: (&str, &str) = ("5m", "24h");
/// A signed-in person's absolute session lifetime when an org sets none.
const DEFAULT_SESSION_MAX_LIFETIME: &str = "12h";
/// The shortest and longest absolute lifetime an org may choose.
const LIFETIME_BOUNDS: (&str, &str) = ("5m", "30d");
/// What a stored client secret starts with (the rest: base64 of the sealed bytes).
const SEALED_PREFIX: &str = "sealed:";
/// The org purpose key client secrets are sealed under.
const CLIENT_SECRET_PURPOSE: &str = "custos/idp-client-secret/v1";

/// The largest LLM request body an org gets when it sets none, and the most it may set.
pub const DEFAULT_LLM_MAX_REQUEST_BYTES: u64 = 1024 * 1024;
const LLM_REQUEST_BYTES_BOUNDS: (u64, u64) = (1024, 32 * 1024 * 1024);
/// Concurrent LLM calls an org gets when it sets none, and the most it may set.
pub const DEFAULT_LLM_MAX_CONCURRENCY: u32 = 64;
const LLM_CONCURRENCY_MAX: u32 = 4096;

/// The identity provider whose ID tokens prove that an application's signed-in user passed
/// a second factor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IdentityProvider {
    /// The `iss` the tokens must carry.
    pub issuer: String,
    /// The `aud` the tokens must carry (this deployment's client id at the provider).
    pub audience: String,
    /// Where the provider publishes its signing keys (JWKS): `https`, no user info; internal
    /// addresses and plain `http` only where the policy's `[network] allow` lists them.
    pub jwks_uri: String,
    /// This deployment's client id at the provider for signing people in (the authorization
    /// code flow); `null`: `audience`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The client secret for signing people in: write-only (never in an answer), sealed under
    /// the org's key when stored. Left out (or `null`) in a change that keeps `issuer` and the
    /// client id, the stored one is kept; `""` removes it (a public client, PKCE alone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(write_only)]
    pub client_secret: Option<String>,
    /// The role a person of the provider who is no member yet gets at the first sign-in
    /// (just-in-time provisioning); `null`: unknown people are refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jit_role: Option<String>,
}

impl IdentityProvider {
    /// The client id sign-ins use: `client_id`, else `audience`.
    pub fn sign_in_client_id(&self) -> &str {
        self.client_id.as_deref().unwrap_or(&self.audience)
    }
}

/// Whether the deployment's operators may ask the org for support access.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SupportAccess {
    /// Operators may file support requests; each still needs an owner's or admin's approval.
    #[default]
    Allowed,
    /// No support request can be filed, and no grant approved earlier works any more.
    Forbidden,
}

impl SupportAccess {
    /// The setting's name in the API (`allowed`, `forbidden`).
    pub fn as_str(self) -> &'static str {
        match self {
            SupportAccess::Allowed => "allowed",
            SupportAccess::Forbidden => "forbidden",
        }
    }
}

/// An org's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct OrgSettings {
    /// The org's home region, where its records, files and archive live (read from the org;
    /// a change through `region` moves the data, and needs `allow_data_transfer`).
    pub region: String,
    /// Members with the `owner` or `admin` role need a second factor for administrative
    /// operations (seed 000: "MFA required for administrative access").
    pub require_mfa_for_admins: bool,
    /// How long a session opened with a TOTP code lasts, and how long a signed-in person's
    /// session may go unused (5m to 24h).
    pub session_timeout: String,
    /// How long a signed-in person's session lasts however it is used (5m to 30d; default
    /// 12h).
    pub session_max_lifetime: String,
    /// The identity provider whose tokens prove a second factor, if any.
    pub identity_provider: Option<IdentityProvider>,
    /// The org's data may go to an LLM provider outside the org's region (seed 004's
    /// `allowDataTransfer`); off, a provider whose `regions` miss the org's region is refused.
    pub allow_data_transfer: bool,
    /// The LLM providers the org's callers may use (names from the policy); `null`: all of them.
    pub llm_providers: Option<Vec<String>>,
    /// The models the org's callers may use (within the policy's lists); `null`: any the
    /// policy allows.
    pub llm_models: Option<Vec<String>>,
    /// Refuse LLM requests that ask the model to reach outside (hosted web search, remote
    /// tool servers): seed 004's `configAIUseOnlyPrivateData`.
    pub private_data_mode: bool,
    /// The largest LLM request body, in bytes (1 KiB to 32 MiB).
    pub llm_max_request_bytes: u64,
    /// How many LLM calls of the org may run at once (1 to 4096); more get 429.
    pub llm_max_concurrency: u32,
    /// Keep each call's scrubbed prompt (placeholders, never values) as a record of the
    /// policy's LLM category; only where the policy does not demand zero retention.
    pub llm_retain_prompts: bool,
    /// Whether the deployment's operators may ask for support access (`allowed`) or not
    /// (`forbidden`: requests are refused and every grant stops working).
    pub support_access: SupportAccess,
    /// Where the org is told about alerts and security notices: its webhooks (secrets
    /// write-only) and e-mail addresses; `null`: none.
    pub channels: Option<crate::org_channels::OrgChannels>,
    /// The privacy center's link keys, embedders and e-mail codes; `null`: none.
    pub privacy_center: Option<crate::privacy_links::PrivacyCenter>,
}

impl Default for OrgSettings {
    fn default() -> Self {
        OrgSettings {
            region: String::new(),
            require_mfa_for_admins: false,
            session_timeout: DEFAULT_SESSION_TIMEOUT.into(),
            session_max_lifetime: DEFAULT_SESSION_MAX_LIFETIME.into(),
            identity_provider: None,
            allow_data_transfer: false,
            llm_providers: None,
            llm_models: None,
            private_data_mode: false,
            llm_max_request_bytes: DEFAULT_LLM_MAX_REQUEST_BYTES,
            llm_max_concurrency: DEFAULT_LLM_MAX_CONCURRENCY,
            llm_retain_prompts: false,
            support_access: SupportAccess::Allowed,
            channels: None,
            privacy_center: None,
        }
    }
}

/// A change of settings: only the fields given change.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsChange {
    /// Moves the org to this region (one of the policy's `service.regions`): its data goes to
    /// that region's stores. Refused (`data_transfer_not_allowed`) unless the org allows data
    /// transfer (already, or in the same change).
    #[serde(default)]
    pub region: Option<String>,
    /// See [`OrgSettings::require_mfa_for_admins`].
    #[serde(default)]
    pub require_mfa_for_admins: Option<bool>,
    /// See [`OrgSettings::session_timeout`].
    #[serde(default)]
    pub session_timeout: Option<String>,
    /// See [`OrgSettings::session_max_lifetime`].
    #[serde(default)]
    pub session_max_lifetime: Option<String>,
    /// See [`OrgSettings::identity_provider`]; `null` removes it.
    #[serde(default, with = "double_option")]
    #[schema(value_type = Option<IdentityProvider>)]
    pub identity_provider: Option<Option<IdentityProvider>>,
    /// See [`OrgSettings::allow_data_transfer`].
    #[serde(default)]
    pub allow_data_transfer: Option<bool>,
    /// See [`OrgSettings::llm_providers`]; `null` allows every provider of the policy.
    #[serde(default, with = "double_option")]
    #[schema(value_type = Option<Vec<String>>)]
    pub llm_providers: Option<Option<Vec<String>>>,
    /// See [`OrgSettings::llm_models`]; `null` allows every model the policy allows.
    #[serde(default, with = "double_option")]
    #[schema(value_type = Option<Vec<String>>)]
    pub llm_models: Option<Option<Vec<String>>>,
    /// See [`OrgSettings::private_data_mode`].
    #[serde(default)]
    pub private_data_mode: Option<bool>,
    /// See [`OrgSettings::llm_max_request_bytes`].
    #[serde(default)]
    pub llm_max_request_bytes: Option<u64>,
    /// See [`OrgSettings::llm_max_concurrency`].
    #[serde(default)]
    pub llm_max_concurrency: Option<u32>,
    /// See [`OrgSettings::llm_retain_prompts`].
    #[serde(default)]
    pub llm_retain_prompts: Option<bool>,
    /// See [`OrgSettings::support_access`].
    #[serde(default)]
    pub support_access: Option<SupportAccess>,
    /// See [`OrgSettings::channels`]; replaces the org's channels as a whole.
    #[serde(default)]
    pub channels: Option<crate::org_channels::OrgChannels>,
    /// See [`OrgSettings::privacy_center`]; replaces it as a whole; `null` removes it.
    #[serde(default, with = "double_option")]
    #[schema(value_type = Option<crate::privacy_links::PrivacyCenter>)]
    pub privacy_center: Option<Option<crate::privacy_links::PrivacyCenter>>,
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

    /// The absolute lifetime of a signed-in person's session as a duration.
    pub fn session_max_lifetime(&self) -> Result<Duration, CoreError> {
        parse_bounded(
            "session_max_lifetime",
            &self.session_max_lifetime,
            LIFETIME_BOUNDS,
        )
    }

    /// These settings as an answer shows them: the client secret is write-only.
    fn shown(mut self) -> Self {
        if let Some(idp) = &mut self.identity_provider {
            idp.client_secret = None;
        }
        if let Some(channels) = &mut self.channels {
            channels.shown();
        }
        self
    }

    fn apply(
        mut self,
        change: SettingsChange,
        policy: &custos_policy::Policy,
    ) -> Result<(OrgSettings, BTreeMap<String, String>), CoreError> {
        let llm = &policy.llm;
        let mut changed = BTreeMap::new();
        if let Some(v) = change.require_mfa_for_admins {
            self.require_mfa_for_admins = v;
            changed.insert("require_mfa_for_admins".into(), v.to_string());
        }
        if let Some(v) = change.session_timeout {
            self.session_timeout = parse_timeout(&v)?.to_string();
            changed.insert("session_timeout".into(), self.session_timeout.clone());
        }
        if let Some(v) = change.session_max_lifetime {
            self.session_max_lifetime =
                parse_bounded("session_max_lifetime", &v, LIFETIME_BOUNDS)?.to_string();
            changed.insert(
                "session_max_lifetime".into(),
                self.session_max_lifetime.clone(),
            );
        }
        if let Some(v) = change.identity_provider {
            if let Some(idp) = &v {
                check_idp(idp, &Rules::new(&policy.network))?;
            }
            let issuer = v
                .as_ref()
                .map_or("none".into(), |idp| idp.issuer.to_string());
            changed.insert("identity_provider".into(), issuer);
            self.identity_provider = v;
        }
        if let Some(v) = change.allow_data_transfer {
            self.allow_data_transfer = v;
            changed.insert("allow_data_transfer".into(), v.to_string());
        }
        if let Some(v) = change.llm_providers {
            if let Some(names) = &v {
                check_providers(names, llm)?;
            }
            changed.insert("llm_providers".into(), list_or_all(&v));
            self.llm_providers = v;
        }
        if let Some(v) = change.llm_models {
            if let Some(models) = &v {
                check_models(models, llm)?;
            }
            changed.insert("llm_models".into(), list_or_all(&v));
            self.llm_models = v;
        }
        if let Some(v) = change.private_data_mode {
            self.private_data_mode = v;
            changed.insert("private_data_mode".into(), v.to_string());
        }
        if let Some(v) = change.llm_max_request_bytes {
            let (min, max) = LLM_REQUEST_BYTES_BOUNDS;
            if !(min..=max).contains(&v) {
                return Err(CoreError::invalid(
                    "llm_max_request_bytes",
                    format!("must be between {min} and {max}"),
                ));
            }
            self.llm_max_request_bytes = v;
            changed.insert("llm_max_request_bytes".into(), v.to_string());
        }
        if let Some(v) = change.llm_max_concurrency {
            if !(1..=LLM_CONCURRENCY_MAX).contains(&v) {
                return Err(CoreError::invalid(
                    "llm_max_concurrency",
                    format!("must be between 1 and {LLM_CONCURRENCY_MAX}"),
                ));
            }
            self.llm_max_concurrency = v;
            changed.insert("llm_max_concurrency".into(), v.to_string());
        }
        if let Some(v) = change.llm_retain_prompts {
            if v && llm.zero_retention {
                return Err(CoreError::invalid(
                    "llm_retain_prompts",
                    "the policy demands LLM zero retention ([llm] zero_retention = true)",
                ));
            }
            if v && llm.category.is_none() {
                return Err(CoreError::invalid(
                    "llm_retain_prompts",
                    "the policy names no [llm] category to keep prompts in",
                ));
            }
            self.llm_retain_prompts = v;
            changed.insert("llm_retain_prompts".into(), v.to_string());
        }
        if let Some(v) = change.support_access {
            self.support_access = v;
            changed.insert("support_access".into(), v.as_str().into());
        }
        if let Some(v) = change.channels {
            v.check(&Rules::new(&policy.network))?;
            changed.insert("channels".into(), v.summary());
            self.channels = Some(v);
        }
        if let Some(v) = change.privacy_center {
            if let Some(center) = &v {
                center.check()?;
            }
            let summary = v.as_ref().map_or("none".to_string(), |c| {
                format!(
                    "link_keys={} frame_ancestors={} email_codes={}",
                    c.link_keys.len(),
                    c.frame_ancestors.len(),
                    c.email_codes
                )
            });
            changed.insert("privacy_center".into(), summary);
            self.privacy_center = v;
        }
        Ok((self, changed))
    }
}

fn list_or_all(v: &Option<Vec<String>>) -> String {
    match v {
        None => "all".into(),
        Some(list) if list.is_empty() => "none".into(),
        Some(list) => list.join(","),
    }
}

fn check_providers(names: &[String], llm: &custos_policy::Llm) -> Result<(), CoreError> {
    for name in names {
        if !llm.providers.iter().any(|p| &p.name == name) {
            let known: Vec<&str> = llm.providers.iter().map(|p| p.name.as_str()).collect();
            return Err(CoreError::invalid(
                "llm_providers",
                format!(
                    "every entry must name a provider of the policy (it has: {})",
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ),
            ));
        }
    }
    Ok(())
}

/// A model name as the gateway accepts it: what provider model ids look like, and nothing that
/// could carry content into the audit log.
pub(crate) fn valid_model_name(model: &str) -> bool {
    !model.is_empty()
        && model.len() <= 128
        && model
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:/@+".contains(c))
}

fn check_models(models: &[String], llm: &custos_policy::Llm) -> Result<(), CoreError> {
    for model in models {
        if !valid_model_name(model) {
            return Err(CoreError::invalid(
                "llm_models",
                "model names are 1 to 128 letters, digits and - _ . : / @ +",
            ));
        }
        // Within the policy: some provider lists it, or lists no models at all (any).
        let allowed = llm
            .providers
            .iter()
            .any(|p| p.models.is_empty() || p.models.iter().any(|m| m == model));
        if !allowed {
            return Err(CoreError::invalid(
                "llm_models",
                format!("{model} is in no provider's `models` list of the policy"),
            ));
        }
    }
    Ok(())
}

fn parse_timeout(value: &str) -> Result<Duration, CoreError> {
    parse_bounded("session_timeout", value, SESSION_BOUNDS)
}

/// `value` as a duration within `bounds`, or an error naming `field`.
pub(crate) fn parse_bounded(
    field: &str,
    value: &str,
    bounds: (&str, &str),
) -> Result<Duration, CoreError> {
    let d: Duration = value
        .parse()
        .map_err(|e| CoreError::invalid(field, format!("not a duration such as 1h: {e}")))?;
    let (min, max) = (
        bounds.0.parse::<Duration>().expect("valid bound"),
        bounds.1.parse::<Duration>().expect("valid bound"),
    );
    if d.cmp_for_validation(&min).is_lt() || d.cmp_for_validation(&max).is_gt() {
        return Err(CoreError::invalid(
            field,
            format!("must be between {} and {}", bounds.0, bounds.1),
        ));
    }
    Ok(d)
}

/// A URL Custos may fetch keys from, under the outbound rules of [`crate::outbound`] (https,
/// no user info; internal addresses and plain http only where `[network] allow` lists them).
/// A refusal is `url_not_allowed`; a string that is no URL at all is `invalid_input`.
pub(crate) fn check_key_url(field: &str, url: &str, rules: &Rules) -> Result<(), CoreError> {
    match OutboundUrl::parse(url, rules) {
        Ok(_) => Ok(()),
        Err(e @ Refusal::NotAUrl(_)) => Err(CoreError::invalid(field, e.to_string())),
        Err(e) => Err(CoreError::UrlNotAllowed {
            field: field.to_string(),
            message: e.to_string(),
        }),
    }
}

fn check_idp(idp: &IdentityProvider, rules: &Rules) -> Result<(), CoreError> {
    check_key_url("identity_provider.jwks_uri", &idp.jwks_uri, rules)?;
    let client_id = idp.client_id.as_ref();
    for (field, value) in [
        ("identity_provider.issuer", Some(&idp.issuer)),
        ("identity_provider.audience", Some(&idp.audience)),
        ("identity_provider.client_id", client_id),
    ]
    .into_iter()
    .filter_map(|(field, value)| Some((field, value?)))
    {
        if value.is_empty() || value.len() > 512 || value.chars().any(char::is_control) {
            return Err(CoreError::invalid(
                field,
                "must be 1 to 512 printable characters",
            ));
        }
    }
    if let Some(role) = &idp.jit_role {
        if !crate::members::EVERY_ROLE.contains(&role.as_str()) || role == "owner" {
            return Err(CoreError::invalid(
                "identity_provider.jit_role",
                format!(
                    "{role:?} is not a role people may get at their first sign-in; use one of \
                     admin, member, auditor, service (owners are made by owners)"
                ),
            ));
        }
    }
    Ok(())
}

impl Custos {
    /// The org's settings (defaults where never changed).
    pub(crate) async fn org_settings_of(&self, scope: &OrgScope) -> Result<OrgSettings, CoreError> {
        let store = self.store.for_org(scope).await?;
        let mut stored = store.org_settings(scope).await?;
        // No settings row is the defaults, unless the org moved away (by another instance)
        // between finding its home and reading it: then its settings are in its new home.
        if stored.is_none() && store.org(scope.org_id()).await?.is_none() {
            if let Some((moved, _)) = self.store.org(scope.org_id()).await? {
                stored = self
                    .store
                    .for_org(&moved)
                    .await?
                    .org_settings(&moved)
                    .await?;
            }
        }
        match stored {
            None => Ok(OrgSettings::default()),
            Some(json) => serde_json::from_str(&json).map_err(|e| {
                CoreError::internal_from(
                    format!("stored settings of {} are invalid", scope.org_id()),
                    e,
                )
            }),
        }
    }

    /// The org's settings.
    pub async fn settings(&self, caller: &Caller, org: &str) -> Result<OrgSettings, CoreError> {
        let grant = self.authorize(caller, Operation::SettingsRead, org).await?;
        let mut settings = self.org_settings_of(&grant.scope).await?;
        settings.region = grant.region;
        Ok(settings.shown())
    }

    /// Changes the org's settings; the audit event names every value set.
    pub async fn update_settings(
        &self,
        caller: &Caller,
        org: &str,
        mut change: SettingsChange,
    ) -> Result<OrgSettings, CoreError> {
        let grant = self
            .authorize(caller, Operation::SettingsUpdate, org)
            .await?;
        let moving = change.region.take().filter(|to| *to != grant.region);
        let current = self.org_settings_of(&grant.scope).await?;
        if let Some(Some(idp)) = &mut change.identity_provider {
            idp.client_secret = self
                .client_secret_to_store(org, current.identity_provider.as_ref(), idp)
                .await?;
        }
        if let Some(channels) = &mut change.channels {
            let stored = current.channels.clone().unwrap_or_default();
            self.seal_channel_secrets(org, &stored, channels).await?;
        }
        let (mut settings, changed) = current.apply(change, &self.policy)?;
        // Every check before anything is written: a refused move changes no setting either.
        if let Some(to) = &moving {
            self.check_move(caller, &grant.region, to, &settings, org)
                .await?;
        }
        settings.region = grant.region.clone();
        // The move first: one refused because another is under way (`move_in_progress`)
        // changes no setting either; the settings are then written in the org's new home.
        if let Some(to) = moving {
            let event = self
                .event(caller, custos_audit::AuditAction::OrgMove)
                .org(org)
                .target(Target::Org(org.to_string()))
                .details(
                    Details::new()
                        .from_region(grant.region.clone())
                        .to_region(to.clone()),
                );
            self.store
                .set_org_region(&grant.scope, &to, &[event])
                .await?;
            settings.region = to;
        }
        if !changed.is_empty() {
            let mut stored = settings.clone();
            stored.region = String::new();
            let json = serde_json::to_string(&stored).expect("settings serialize");
            let event = self
                .event(caller, custos_audit::AuditAction::SettingsUpdate)
                .org(org)
                .target(Target::Org(org.to_string()))
                .details(Details::new().settings(changed));
            self.store
                .for_org(&grant.scope)
                .await?
                .set_org_settings(&grant.scope, &json, &[event])
                .await?;
        }
        Ok(settings.shown())
    }

    /// The client secret `idp` (from a change) is stored with: a new one sealed under the
    /// org's key, none for `""`, and when left out the stored one while the issuer and the
    /// client id stay the same.
    async fn client_secret_to_store(
        &self,
        org: &str,
        stored: Option<&IdentityProvider>,
        idp: &IdentityProvider,
    ) -> Result<Option<String>, CoreError> {
        use base64::Engine;
        match idp.client_secret.as_deref() {
            Some("") => Ok(None),
            Some(plain) => {
                if plain.len() > 512 || plain.chars().any(char::is_control) {
                    return Err(CoreError::invalid(
                        "identity_provider.client_secret",
                        "must be 1 to 512 printable characters",
                    ));
                }
                let sealed = self
                    .vault
                    .org_purpose_key(org, CLIENT_SECRET_PURPOSE)
                    .await?
                    .seal(org.as_bytes(), plain.as_bytes());
                let b64 = base64::engine::general_purpose::STANDARD.encode(sealed);
                Ok(Some(format!("{SEALED_PREFIX}{b64}")))
            }
            None => Ok(stored
                .filter(|old| {
                    old.issuer == idp.issuer && old.sign_in_client_id() == idp.sign_in_client_id()
                })
                .and_then(|old| old.client_secret.clone())),
        }
    }

    /// The org's stored client secret in the clear, if it has one.
    pub(crate) async fn open_client_secret(
        &self,
        org: &str,
        idp: &IdentityProvider,
    ) -> Result<Option<zeroize::Zeroizing<String>>, CoreError> {
        use base64::Engine;
        let Some(stored) = &idp.client_secret else {
            return Ok(None);
        };
        let sealed = stored
            .strip_prefix(SEALED_PREFIX)
            .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
            .ok_or_else(|| {
                CoreError::internal(format!("stored client secret of {org} is not sealed"))
            })?;
        let plain = self
            .vault
            .org_purpose_key(org, CLIENT_SECRET_PURPOSE)
            .await?
            .open(org.as_bytes(), &sealed)?;
        let plain = String::from_utf8(plain)
            .map_err(|e| CoreError::internal_from(format!("client secret of {org}"), e))?;
        Ok(Some(zeroize::Zeroizing::new(plain)))
    }

    /// A move of the org from `from` to `to` is allowed: `to` is a region of the policy and
    /// the org allows data transfer. A refusal is audited.
    async fn check_move(
        &self,
        caller: &Caller,
        from: &str,
        to: &str,
        settings: &OrgSettings,
        org: &str,
    ) -> Result<(), CoreError> {
        let regions = &self.policy.service.regions;
        if !regions.iter().any(|r| r == to) {
            return Err(CoreError::invalid(
                "region",
                format!(
                    "{to:?} is not one of this deployment's regions ({})",
                    regions.join(", ")
                ),
            ));
        }
        if settings.allow_data_transfer {
            return Ok(());
        }
        let refusal = CoreError::TransferNotAllowed(format!(
            "moving the org from {from} to {to} takes its data out of its region; set \
             allow_data_transfer to true first (or in the same change)"
        ));
        Err(self
            .deny(
                caller,
                Some(org),
                custos_audit::AuditAction::OrgMove,
                Some(Target::Org(org.to_string())),
                refusal,
            )
            .await)
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
    fn llm_settings_stay_within_the_policy() {
        let mut policy = custos_policy::Policy::builtin();
        policy.llm.providers[0].models = vec!["claude-x".into()];
        let change = |json: &str| serde_json::from_str::<SettingsChange>(json).unwrap();
        let ok = |json: &str, policy: &custos_policy::Policy| {
            OrgSettings::default().apply(change(json), policy)
        };
        let (s, changed) = ok(
            r#"{"allow_data_transfer": true, "llm_providers": ["openai"], "private_data_mode": true}"#,
            &policy,
        )
        .unwrap();
        assert!(s.allow_data_transfer && s.private_data_mode);
        assert_eq!(s.llm_providers, Some(vec!["openai".to_string()]));
        assert_eq!(changed["llm_providers"], "openai");
        assert!(ok(r#"{"llm_providers": ["mistral"]}"#, &policy).is_err());
        // OpenAI lists no models (any), so any valid name is within the policy.
        assert!(ok(r#"{"llm_models": ["gpt-x"]}"#, &policy).is_ok());
        assert!(ok(r#"{"llm_models": ["bad name!"]}"#, &policy).is_err());
        assert!(ok(r#"{"llm_max_request_bytes": 10}"#, &policy).is_err());
        assert!(ok(r#"{"llm_max_concurrency": 0}"#, &policy).is_err());
        // Zero retention forbids keeping prompts; without it the opt-in is accepted.
        assert!(ok(r#"{"llm_retain_prompts": true}"#, &policy).is_err());
        policy.llm.zero_retention = false;
        assert!(ok(r#"{"llm_retain_prompts": true}"#, &policy).is_ok());
        policy.llm.providers.truncate(1);
        assert!(ok(r#"{"llm_models": ["gpt-x"]}"#, &policy).is_err());
        let (s, _) = ok(r#"{"llm_models": null}"#, &policy).unwrap();
        assert_eq!(s.llm_models, None);
    }

    #[test]
    fn key_urls_follow_the_outbound_rules() {
        let none = Rules::default();
        let lo = Rules::new(&custos_policy::Network {
            allow: vec!["127.0.0.0/8".parse().unwrap()],
            ca_file: None,
        });
        let code = |url: &str, rules: &Rules| check_key_url("f", url, rules).map_err(|e| e.code());
        assert_eq!(code("https://idp.example.com/jwks", &none), Ok(()));
        // The review's bypasses: user info before a host that is not loopback.
        for url in [
            "http://localhost:1@idp.example.com/jwks",
            "http://127.0.0.1:80@169.254.169.254/latest/meta-data/",
            "http://[::1]@10.0.0.1/",
        ] {
            assert_eq!(code(url, &lo), Err("url_not_allowed"), "{url}");
        }
        // Loopback over http: only with `[network] allow` listing it.
        assert_eq!(
            code("http://127.0.0.1:8080/jwks", &none),
            Err("url_not_allowed")
        );
        assert_eq!(code("http://127.0.0.1:8080/jwks", &lo), Ok(()));
        assert_eq!(code("http://10.0.0.1/jwks", &lo), Err("url_not_allowed"));
        assert_eq!(code("https://[fe80::1]/jwks", &lo), Err("url_not_allowed"));
        assert_eq!(code("ftp://x", &lo), Err("url_not_allowed"));
        assert_eq!(code("jwks please", &lo), Err("invalid_input"));
    }
}
