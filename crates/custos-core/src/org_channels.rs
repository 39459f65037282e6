//! An org's own notification channels (the setting `channels`): webhooks it receives alerts
//! and notices on, signed with secrets it chose (write-only, sealed under the org's key), and
//! addresses to e-mail. Alert rules that `deliver` to `org`, and every notice meant for an
//! org's admins, go to these.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::outbound::Rules;
use crate::{CoreError, Custos};

/// The most webhooks an org may name.
const MAX_WEBHOOKS: usize = 5;
/// The most addresses an org may name.
const MAX_EMAILS: usize = 10;
/// The org purpose key webhook secrets are sealed under.
const WEBHOOK_SECRET_PURPOSE: &str = "custos/webhook-secret/v1";
/// What a stored secret starts with (the rest: base64 of the sealed bytes).
const SEALED_PREFIX: &str = "sealed:";

/// The org's channels.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct OrgChannels {
    /// Webhooks (at most 5).
    pub webhooks: Vec<OrgWebhook>,
    /// Addresses notices are e-mailed to (at most 10; needs the policy's `[smtp]`).
    pub emails: Vec<String>,
    /// E-mail data subjects about their own requests (received, extended, completed,
    /// rejected) at the contact the org keeps for them (`PUT .../subjects/{subject}/contact`).
    pub email_subjects: bool,
    /// How long before an open request is due its reminder goes to these channels (1h to
    /// 30d; default 3d).
    #[schema(value_type = Option<String>)]
    pub remind_before: Option<String>,
}

/// How long before a request is due its reminder goes out, unless the org says otherwise.
pub(crate) const DEFAULT_REMIND_BEFORE: &str = "3d";
/// The bounds of `remind_before`.
const REMIND_BOUNDS: (&str, &str) = ("1h", "30d");

/// One of an org's webhooks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrgWebhook {
    /// Where deliveries are POSTed: `https`, no user info; internal addresses and plain
    /// `http` only where the policy's `[network] allow` lists them.
    pub url: String,
    /// The Standard Webhooks secret (`whsec_<base64>`; two separated by a space while
    /// rotating): write-only, sealed when stored. Left out in a change for a URL the org
    /// already has, the stored secret is kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(write_only)]
    pub secret: Option<String>,
}

impl OrgChannels {
    /// Checks a change: counts, URLs by the outbound rule, secrets' form, addresses.
    pub(crate) fn check(&self, rules: &Rules) -> Result<(), CoreError> {
        if self.webhooks.len() > MAX_WEBHOOKS {
            return Err(CoreError::invalid(
                "channels.webhooks",
                format!("at most {MAX_WEBHOOKS} webhooks"),
            ));
        }
        if self.emails.len() > MAX_EMAILS {
            return Err(CoreError::invalid(
                "channels.emails",
                format!("at most {MAX_EMAILS} addresses"),
            ));
        }
        for (i, hook) in self.webhooks.iter().enumerate() {
            let field = format!("channels.webhooks[{i}].url");
            crate::settings::check_key_url(&field, &hook.url, rules)?;
            if self.webhooks[..i].iter().any(|h| h.url == hook.url) {
                return Err(CoreError::invalid(&field, "is listed twice"));
            }
            if let Some(secret) = &hook.secret {
                if !secret.starts_with(SEALED_PREFIX) {
                    custos_notify::webhook::WebhookSecrets::parse(secret).map_err(|e| {
                        CoreError::invalid(&format!("channels.webhooks[{i}].secret"), e.to_string())
                    })?;
                }
            }
        }
        self.remind_before()?;
        for (i, email) in self.emails.iter().enumerate() {
            if !is_email(email) {
                return Err(CoreError::invalid(
                    &format!("channels.emails[{i}]"),
                    "is not an e-mail address",
                ));
            }
        }
        Ok(())
    }

    /// How long before an open request is due its reminder goes out.
    pub(crate) fn remind_before(&self) -> Result<custos_policy::Duration, CoreError> {
        crate::settings::parse_bounded(
            "channels.remind_before",
            self.remind_before
                .as_deref()
                .unwrap_or(DEFAULT_REMIND_BEFORE),
            REMIND_BOUNDS,
        )
    }

    /// What the audit event says of a change: counts, never URLs' paths or addresses.
    pub(crate) fn summary(&self) -> String {
        format!(
            "webhooks={} emails={} email_subjects={}",
            self.webhooks.len(),
            self.emails.len(),
            self.email_subjects
        )
    }

    /// The channels as an answer shows them: secrets are write-only; the reminder margin
    /// as it applies.
    pub(crate) fn shown(&mut self) {
        for hook in &mut self.webhooks {
            hook.secret = None;
        }
        self.remind_before
            .get_or_insert_with(|| DEFAULT_REMIND_BEFORE.to_string());
    }

    /// The outbox channels these name: `org-webhook:<url>` and `email:<address>`.
    pub(crate) fn outbox_channels(&self) -> Vec<String> {
        self.webhooks
            .iter()
            .map(|h| format!("org-webhook:{}", h.url))
            .chain(self.emails.iter().map(|e| format!("email:{e}")))
            .collect()
    }
}

/// A plausible address: one `@`, text on both sides, a dot in the domain, no spaces.
pub(crate) fn is_email(s: &str) -> bool {
    let mut parts = s.split('@');
    matches!(
        (parts.next(), parts.next(), parts.next()),
        (Some(local), Some(domain), None)
            if !local.is_empty() && domain.contains('.') && !domain.starts_with('.')
                && s.len() <= 254
                && !s.contains(|c: char| c.is_whitespace() || c.is_control() || "<>,;".contains(c))
    )
}

impl Custos {
    /// Seals the secrets of a channels change: a new secret under the org's key; a webhook
    /// given without one keeps the stored secret of the same URL (none if it is new, which
    /// [`OrgChannels::check`] then refuses).
    pub(crate) async fn seal_channel_secrets(
        &self,
        org: &str,
        stored: &OrgChannels,
        change: &mut OrgChannels,
    ) -> Result<(), CoreError> {
        use base64::Engine;
        for (i, hook) in change.webhooks.iter_mut().enumerate() {
            match hook.secret.take() {
                Some(plain) => {
                    custos_notify::webhook::WebhookSecrets::parse(&plain).map_err(|e| {
                        CoreError::invalid(&format!("channels.webhooks[{i}].secret"), e.to_string())
                    })?;
                    let sealed = self
                        .vault
                        .org_purpose_key(org, WEBHOOK_SECRET_PURPOSE)
                        .await?
                        .seal(org.as_bytes(), plain.as_bytes());
                    let b64 = base64::engine::general_purpose::STANDARD.encode(sealed);
                    hook.secret = Some(format!("{SEALED_PREFIX}{b64}"));
                }
                None => {
                    hook.secret = stored
                        .webhooks
                        .iter()
                        .find(|h| h.url == hook.url)
                        .and_then(|h| h.secret.clone());
                    if hook.secret.is_none() {
                        return Err(CoreError::invalid(
                            &format!("channels.webhooks[{i}].secret"),
                            "a new webhook needs a secret (whsec_...)",
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// The org's channels as stored (secrets sealed); none for an org that is gone.
    pub(crate) async fn org_channels(&self, org: &str) -> Result<OrgChannels, CoreError> {
        let Some((scope, _)) = self.store.org(org).await? else {
            return Ok(OrgChannels::default());
        };
        Ok(self
            .org_settings_of(&scope)
            .await?
            .channels
            .unwrap_or_default())
    }

    /// The webhook secrets of the org's webhook at `url`, opened; `None` when the org no
    /// longer has that webhook.
    pub(crate) async fn org_webhook_secrets(
        &self,
        org: &str,
        url: &str,
    ) -> Result<Option<custos_notify::webhook::WebhookSecrets>, CoreError> {
        use base64::Engine;
        let channels = self.org_channels(org).await?;
        let Some(stored) = channels
            .webhooks
            .iter()
            .find(|h| h.url == url)
            .and_then(|h| h.secret.as_ref())
        else {
            return Ok(None);
        };
        let sealed = stored
            .strip_prefix(SEALED_PREFIX)
            .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
            .ok_or_else(|| {
                CoreError::internal(format!("a webhook secret of {org} is not sealed"))
            })?;
        let plain = zeroize::Zeroizing::new(
            self.vault
                .org_purpose_key(org, WEBHOOK_SECRET_PURPOSE)
                .await?
                .open(org.as_bytes(), &sealed)?,
        );
        let text = std::str::from_utf8(&plain)
            .map_err(|e| CoreError::internal_from(format!("a webhook secret of {org}"), e))?;
        let secrets = custos_notify::webhook::WebhookSecrets::parse(text)
            .map_err(|e| CoreError::internal_from(format!("a webhook secret of {org}"), e))?;
        Ok(Some(secrets))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> Rules {
        Rules::new(&custos_policy::Network {
            allow: vec!["127.0.0.0/8".parse().unwrap()],
            ca_file: None,
        })
    }

    #[test]
    fn channels_are_checked_and_shown_without_secrets() {
        let mut ok = OrgChannels {
            webhooks: vec![OrgWebhook {
                url: "http://127.0.0.1:9/hook".into(),
                secret: Some("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into()),
            }],
            emails: vec!["security@acme.example".into()],
            ..OrgChannels::default()
        };
        ok.check(&rules()).unwrap();
        assert_eq!(ok.summary(), "webhooks=1 emails=1 email_subjects=false");
        assert_eq!(
            ok.outbox_channels(),
            [
                "org-webhook:http://127.0.0.1:9/hook",
                "email:security@acme.example"
            ]
        );
        ok.shown();
        assert_eq!(ok.webhooks[0].secret, None);
        assert_eq!(ok.remind_before.as_deref(), Some("3d"));
        let too_soon = OrgChannels {
            remind_before: Some("1m".into()),
            ..OrgChannels::default()
        };
        let err = too_soon.check(&rules()).unwrap_err().to_string();
        assert!(err.contains("channels.remind_before"), "{err}");

        let internal = OrgChannels {
            webhooks: vec![OrgWebhook {
                url: "http://10.0.0.1/hook".into(),
                secret: None,
            }],
            emails: vec![],
            ..OrgChannels::default()
        };
        assert!(matches!(
            internal.check(&rules()),
            Err(CoreError::UrlNotAllowed { .. })
        ));
        let bad_secret = OrgChannels {
            webhooks: vec![OrgWebhook {
                url: "https://hooks.example.com/x".into(),
                secret: Some("hunter2".into()),
            }],
            emails: vec![],
            ..OrgChannels::default()
        };
        let err = bad_secret.check(&rules()).unwrap_err().to_string();
        assert!(err.contains("channels.webhooks[0].secret"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
        let bad_email = OrgChannels {
            webhooks: vec![],
            emails: vec!["not an address".into()],
            ..OrgChannels::default()
        };
        assert!(bad_email
            .check(&rules())
            .unwrap_err()
            .to_string()
            .contains("channels.emails[0]"));
    }
}
