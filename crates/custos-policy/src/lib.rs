//! Custos policy as code: parse and validate `custos.toml`, compute due times, print the
//! effective policy, and render a public data-handling disclosure.
//!
//! This crate is what a company's written data promises ("application logs: 90 days",
//! "erasure requests within 30 days", "zero retention at the LLM provider") turn into. A
//! [`Policy`] is only ever built from a file that passed every check, so the rest of Custos can
//! rely on it: archive times come before expiry, an org override lies within its bounds, every
//! region and PII entity it names exists. Problems are reported all at once, each as
//! `FILE:LINE:COL: message` with a hint.
//!
//! It is not an enforcement engine: it does no I/O beyond reading one file, keeps no clock,
//! stores nothing and never touches data. The core applies the policy; the store persists per-org
//! settings (residency, retention overrides), which are checked here with
//! [`Policy::check_override`].

#![warn(missing_docs)]

mod diagnostic;
mod duration;
mod model;
mod parse;
mod render;

use std::path::Path;

pub use diagnostic::{Diagnostic, Diagnostics, LoadError};
pub use duration::{Duration, DurationError, DurationUnit, VALIDATION_REFERENCE};
pub use model::{
    Access, AccessReviews, ActorKind, AlertMatch, AlertOutcome, AlertPer, AlertRule, Backups,
    Bounds, Category, Classification, Deletion, Destination, DueTimes, ErasureAction,
    IncidentClocks, Llm, Network, Notifications, OperatorIdentityProvider, Operators,
    OverrideError, PiiAction, PiiRule, Policy, Provider, ProviderKind, RegionStores, Role, Service,
    Severity, Smtp, Support, UnknownKeyword, Webhook, DEFAULT_SMTP_PORT, KNOWN_PII_ENTITIES,
    MAX_ALERT_WINDOW_SECONDS,
};

/// The name of the category that holds the audit trail, which is never editable.
pub const AUDIT_CATEGORY: &str = parse::AUDIT_CATEGORY;

impl Policy {
    /// The built-in default policy, encoding the promises of the requirement seeds.
    pub const BUILTIN_TOML: &'static str = include_str!("../default-policy.toml");

    /// The name diagnostics use for [`Policy::BUILTIN_TOML`].
    pub const BUILTIN_FILE_NAME: &'static str = "<built-in policy>";

    /// The built-in default policy, parsed.
    pub fn builtin() -> Policy {
        // The embedded file is covered by tests; should it ever be broken, fail loudly at the
        // first use rather than run with a silently weaker policy.
        match Policy::parse(Policy::BUILTIN_TOML, Policy::BUILTIN_FILE_NAME) {
            Ok(p) => p,
            Err(d) => panic!("the built-in policy is invalid:\n{d}"),
        }
    }

    /// Parses and validates policy text; `file_name` is used only in diagnostics.
    pub fn parse(source: &str, file_name: &str) -> Result<Policy, Diagnostics> {
        parse::parse(source, file_name)
    }

    /// Reads and validates a policy file.
    pub fn load(path: &Path) -> Result<Policy, LoadError> {
        let source = std::fs::read_to_string(path).map_err(|source| LoadError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Policy::parse(&source, &path.display().to_string()).map_err(LoadError::Invalid)
    }

    /// The effective policy as TOML with every default filled in; it parses back to `self`.
    pub fn to_toml(&self) -> String {
        render::to_toml(self)
    }

    /// What is valid but probably not meant, one sentence each: today, a region left on the
    /// main stores while other regions have their own (its orgs' data would share the main
    /// stores with every region that has no table).
    pub fn warnings(&self) -> Vec<String> {
        if self.regions.is_empty() {
            return Vec::new();
        }
        let with: Vec<&str> = self.regions.keys().map(String::as_str).collect();
        self.service
            .regions
            .iter()
            .filter(|r| !self.regions.contains_key(*r))
            .map(|r| {
                format!(
                    "region `{r}` has no stores while {} {} its own: its orgs' data lives in \
                     the main database and object store; add [regions.{r}] with `database` and \
                     `objects` to say where (they may be the main ones)",
                    with.join(", "),
                    if with.len() == 1 { "has" } else { "have" }
                )
            })
            .collect()
    }

    /// The category of that name, if the policy defines it.
    pub fn category(&self, name: &str) -> Option<&Category> {
        self.categories.get(name)
    }

    /// Checks an org's retention override for a category against its `org_configurable` bounds.
    ///
    /// Bounds are inclusive and compared at [`VALIDATION_REFERENCE`], like the file itself.
    pub fn check_override(&self, category: &str, retention: Duration) -> Result<(), OverrideError> {
        let c = self
            .category(category)
            .ok_or_else(|| OverrideError::UnknownCategory {
                category: category.to_string(),
            })?;
        let Some(bounds) = c.org_configurable else {
            return Err(OverrideError::NotConfigurable {
                category: category.to_string(),
                retention: c.retention,
            });
        };
        if retention.cmp_for_validation(&bounds.min).is_lt() {
            return Err(OverrideError::BelowMin {
                category: category.to_string(),
                requested: retention,
                min: bounds.min,
                max: bounds.max,
            });
        }
        if retention.cmp_for_validation(&bounds.max).is_gt() {
            return Err(OverrideError::AboveMax {
                category: category.to_string(),
                requested: retention,
                min: bounds.min,
                max: bounds.max,
            });
        }
        Ok(())
    }

    /// A Markdown data-handling disclosure, generated from this policy, for a company to publish.
    pub fn render_disclosure(&self) -> String {
        render::disclosure(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_parses() {
        let p = Policy::builtin();
        assert!(p.category("messages").is_some());
        assert!(!p.category(AUDIT_CATEGORY).unwrap().editable);
    }
}
