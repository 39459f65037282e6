//! The validated policy model: what `custos.toml` means once it has been checked.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use jiff::Timestamp;
use serde::Serialize;

use crate::duration::{Duration, DurationUnit};

/// PII entity names a policy may list under `detect` (lowercase; the scanner owns the recognizers).
pub const KNOWN_PII_ENTITIES: &[&str] = &[
    "email",
    "phone",
    "credit_card",
    "us_ssn",
    "iban",
    "ip_address",
    "url",
    "date_of_birth",
    "us_passport",
    "us_driver_license",
    "crypto",
    "secret",
    "person",
    "street_address",
];

/// A whole, validated policy: the contents of one `custos.toml` with every default filled in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Policy {
    /// Who runs the service and where data may live.
    pub service: Service,
    /// Deadlines for every kind of deletion.
    pub deletion: Deletion,
    /// Data categories by name.
    pub categories: BTreeMap<String, Category>,
    /// Backup retention and recovery objectives.
    pub backups: Backups,
    /// Regions with their own stores (`[regions.<name>]`); empty: every region uses the main
    /// stores.
    pub regions: BTreeMap<String, RegionStores>,
    /// Rules for traffic to hosted LLMs.
    pub llm: Llm,
    /// Which otherwise refused addresses URLs given at run time may reach (`[network]`).
    pub network: Network,
    /// Access reviews (`[access]`).
    pub access: AccessReviews,
    /// Customer-approved support access (`[support]`).
    pub support: Support,
    /// How the deployment's operators sign in (`[operators]`).
    pub operators: Operators,
    /// Channels, alert rules and incident clocks (`[webhooks.*]`, `[smtp]`, `[[alerts]]`,
    /// `[incidents]`).
    pub notifications: Notifications,
}

/// The `[operators]` table: the deployment's own identity provider for its operators, and how
/// long their sessions last.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Operators {
    /// `[operators.identity_provider]`; `None`: the bootstrap admin token is the operator (a
    /// laptop deployment).
    pub identity_provider: Option<OperatorIdentityProvider>,
    /// An operator's session ends after this long unused.
    pub session_timeout: Duration,
    /// An operator's session ends this long after sign-in, however it is used.
    pub session_max_lifetime: Duration,
}

impl Default for Operators {
    fn default() -> Self {
        Operators {
            identity_provider: None,
            session_timeout: Duration::new(1, DurationUnit::Hours).expect("1h is a duration"),
            session_max_lifetime: Duration::new(12, DurationUnit::Hours)
                .expect("12h is a duration"),
        }
    }
}

/// `[operators.identity_provider]`: the OpenID provider operators sign in through.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OperatorIdentityProvider {
    /// The provider's issuer (`iss`), as its discovery document names it.
    pub issuer: String,
    /// This deployment's client id at the provider.
    pub client_id: String,
    /// The environment variable holding the client secret (never the secret itself).
    pub client_secret_env: Option<String>,
}

/// The `[support]` table: how long an operator's support request waits for the customer, and
/// how long a grant may last.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Support {
    /// A request nobody approved or denied expires this long after it was filed.
    pub request_expiry: Duration,
    /// The longest a grant may last; also a request's duration when it names none.
    pub max_duration: Duration,
}

impl Default for Support {
    fn default() -> Self {
        // Microsoft Customer Lockbox's request expiry; Google Access Approval's usual grant.
        Support {
            request_expiry: Duration::new(12, DurationUnit::Hours).expect("12h is a duration"),
            max_duration: Duration::new(8, DurationUnit::Hours).expect("8h is a duration"),
        }
    }
}

/// The `[access]` table: how access reviews treat members that are not used.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct AccessReviews {
    /// Members (their key and sessions) unused for longer are flagged by the access review
    /// and disabled by the sweep; `None`: never.
    pub inactive_member_after: Option<Duration>,
}

/// The `[network]` table: what URLs that orgs or people supply at run time (an identity
/// provider's JWKS, later webhooks) may reach. Loopback, private, link-local and
/// cloud-metadata addresses are refused unless a range here lists them, and plain `http` is
/// accepted only for hosts in these ranges.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Network {
    /// Address ranges (CIDR) that run-time URLs may reach even though they are not public.
    pub allow: Vec<ipnet::IpNet>,
    /// A PEM file of extra certificate authorities to trust for those URLs (besides the
    /// built-in web roots).
    pub ca_file: Option<std::path::PathBuf>,
}

/// The `[service]` table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Service {
    /// The public name of the service, used in the disclosure.
    pub name: String,
    /// Regions an org may live in; an org's data never leaves its region.
    pub regions: Vec<String>,
    /// The region new orgs get when they do not choose one; always one of `regions`.
    pub default_region: String,
    /// Where browsers and identity providers reach this deployment (`https://custos.example.com`,
    /// no trailing slash): sign-in redirects come back to `<public_url>/v1/auth/oidc/callback`.
    /// `None`: no sign-in through an identity provider.
    pub public_url: Option<String>,
}

/// The `[deletion]` table: the deletion deadlines the service promises.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Deletion {
    /// How long a soft-deleted record can still be restored.
    pub soft_delete_window: Duration,
    /// A hard delete request completes within this.
    pub hard_delete_within: Duration,
    /// Data past its retention is gone within this.
    pub expired_within: Duration,
    /// All of an org's data is gone within this after the account is terminated.
    pub account_termination_within: Duration,
    /// Deadline for a data subject's erasure request (GDPR/CCPA).
    pub erasure_request_within: Duration,
    /// How far an owner or admin may extend a data subject request's deadline, once (GDPR
    /// Art. 12(3): by two further months).
    pub erasure_extension_max: Duration,
    /// How long an archived record stays readable after an authorized restore request.
    pub archive_restore_window: Duration,
}

/// One `[categories.NAME]` table: how one kind of data is kept, protected and deleted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Category {
    /// The category's name (the table key).
    pub name: String,
    /// How long a record is kept after it is created.
    pub retention: Duration,
    /// Bounds within which an org may set its own retention; `None` means not configurable.
    pub org_configurable: Option<Bounds>,
    /// When a record moves to the cold archive tier; always shorter than `retention`.
    pub archive_after: Option<Duration>,
    /// Sensitivity label; drives access checks and the disclosure.
    pub classification: Classification,
    /// Who may read and write records of this category.
    pub access: Access,
    /// PII detection and handling on content written to this category.
    pub pii: Option<PiiRule>,
    /// What happens to this category's records when their subject is erased.
    pub on_subject_erasure: ErasureAction,
    /// `false` is pass-through mode: only metadata is kept, never the content.
    pub store_content: bool,
    /// Whether records may be changed or deleted by members; `audit` never is.
    pub editable: bool,
}

/// Inclusive bounds for an org's own retention setting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Bounds {
    /// The shortest retention an org may choose.
    pub min: Duration,
    /// The longest retention an org may choose.
    pub max: Duration,
}

/// Access rules for a category.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Access {
    /// Roles that may access the category (any one suffices).
    pub roles: Vec<Role>,
    /// Groups a member must belong to (any one suffices); empty means any group.
    pub groups: Vec<String>,
    /// Whether the member must have completed MFA.
    pub require_mfa: bool,
}

impl Default for Access {
    fn default() -> Access {
        Access {
            roles: vec![Role::Owner, Role::Admin, Role::Member],
            groups: Vec::new(),
            require_mfa: false,
        }
    }
}

/// Which PII entities to look for and what to do with them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PiiRule {
    /// Lowercase entity names, each one of [`KNOWN_PII_ENTITIES`].
    pub detect: Vec<String>,
    /// What to do with each finding.
    pub action: PiiAction,
    /// Every write with a finding raises a security event (seed 004's `"alert": true`):
    /// entity counts, never values.
    pub alert: bool,
}

/// A `[regions.<name>]` table: where the data of the region's orgs lives.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RegionStores {
    /// The region's database: `sqlite:PATH` or `postgres://...`.
    pub database: String,
    /// The region's object store: `file:DIR` or `s3://bucket/prefix`.
    pub objects: String,
}

/// The `[backups]` table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Backups {
    /// How long a backup is kept (rolling).
    pub retention: Duration,
    /// Recovery point objective: the most data, in time, a restore may lose.
    pub rpo: Duration,
    /// Recovery time objective: the longest a restore may take.
    pub rto: Duration,
}

/// The `[llm]` table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Llm {
    /// No prompt or completion content is persisted anywhere, by Custos or (by contract) the provider.
    pub zero_retention: bool,
    /// Upstream providers the gateway may forward to.
    pub providers: Vec<Provider>,
    /// PII handling applied to prompts before they leave for a provider.
    pub pii: Option<PiiRule>,
    /// How long the gateway waits for an upstream provider's response headers, in seconds.
    pub timeout_seconds: u64,
    /// The category whose records keep scrubbed prompts when an org opts in (never with
    /// `zero_retention`).
    pub category: Option<String>,
}

/// One upstream LLM provider.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Provider {
    /// Unique name, used in routes and the disclosure.
    pub name: String,
    /// Which wire format the provider speaks.
    pub kind: ProviderKind,
    /// The provider's API base URL (http or https).
    pub base_url: String,
    /// Service regions whose orgs may use this provider (residency).
    pub regions: Vec<String>,
    /// The environment variable holding the provider's API key (read per call, never stored).
    pub api_key_env: Option<String>,
    /// The models orgs may use through this provider; empty: any.
    pub models: Vec<String>,
}

/// When a record is due for archival and for expiry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct DueTimes {
    /// When to move the record to the archive tier; `None` if never (or not before expiry).
    pub archive_at: Option<Timestamp>,
    /// When the record's retention ends; it must be gone within `expired_within` after this.
    pub expire_at: Timestamp,
}

impl Category {
    /// Due times for a record created at `created`, using the org's retention override if any.
    ///
    /// The override is trusted: check it with [`Policy::check_override`] when it is set, not here.
    /// An archive time that would fall on or after expiry (a short override, or `30d` against
    /// `1mo` in February) is dropped, because archiving data that is about to be deleted only
    /// creates one more copy to delete.
    pub fn due_times(&self, created: Timestamp, retention_override: Option<Duration>) -> DueTimes {
        let retention = retention_override.unwrap_or(self.retention);
        let expire_at = retention.add_to(created);
        let archive_at = self
            .archive_after
            .map(|a| a.add_to(created))
            .filter(|at| *at < expire_at);
        DueTimes {
            archive_at,
            expire_at,
        }
    }
}

/// Why an org's retention override was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OverrideError {
    /// The policy has no such category.
    #[error("unknown category `{category}`")]
    UnknownCategory {
        /// The name that was asked for.
        category: String,
    },
    /// The category has no `org_configurable` bounds.
    #[error("the retention of `{category}` is fixed by the policy at {retention} and cannot be changed per org")]
    NotConfigurable {
        /// The category.
        category: String,
        /// Its fixed retention.
        retention: Duration,
    },
    /// The requested retention is shorter than the minimum.
    #[error("retention {requested} for `{category}` is below the minimum {min} (allowed: {min} to {max})")]
    BelowMin {
        /// The category.
        category: String,
        /// What the org asked for.
        requested: Duration,
        /// The lower bound.
        min: Duration,
        /// The upper bound.
        max: Duration,
    },
    /// The requested retention is longer than the maximum.
    #[error("retention {requested} for `{category}` is above the maximum {max} (allowed: {min} to {max})")]
    AboveMax {
        /// The category.
        category: String,
        /// What the org asked for.
        requested: Duration,
        /// The lower bound.
        min: Duration,
        /// The upper bound.
        max: Duration,
    },
}

/// A string given where one of a fixed set of keywords was expected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} `{value}` (expected one of: {expected})")]
pub struct UnknownKeyword {
    /// What kind of keyword (e.g. `role`).
    pub kind: &'static str,
    /// The string that was given.
    pub value: String,
    /// The accepted keywords, comma separated.
    pub expected: String,
}

/// Defines a lowercase keyword enum with `ALL`, `as_str`, Display, FromStr and serde.
macro_rules! keyword_enum {
    (
        $(#[$meta:meta])*
        $name:ident, $kind:literal {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $( $(#[$vmeta])* $variant ),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The lowercase keyword used in policy files and APIs.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownKeyword;

            fn from_str(s: &str) -> Result<$name, UnknownKeyword> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownKeyword {
                        kind: $kind,
                        value: s.to_string(),
                        expected: [$($text),+].join(", "),
                    }),
                }
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<$name, D::Error> {
                let s = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(deserializer)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

keyword_enum! {
    /// How sensitive a category's data is.
    #[derive(Default)]
    Classification, "classification" {
        /// May be published.
        Public = "public",
        /// Internal to the org (the default).
        #[default]
        Internal = "internal",
        /// Business-confidential.
        Confidential = "confidential",
        /// The most sensitive; tightest access.
        Restricted = "restricted",
    }
}

keyword_enum! {
    /// A member's role within an org.
    Role, "role" {
        /// Owns the org.
        Owner = "owner",
        /// Administers the org.
        Admin = "admin",
        /// An ordinary member.
        Member = "member",
        /// Read-only access for audits.
        Auditor = "auditor",
        /// A machine identity.
        Service = "service",
    }
}

keyword_enum! {
    /// What to do with a PII finding.
    PiiAction, "PII action" {
        /// Replace it with a placeholder such as `[EMAIL]`.
        Redact = "redact",
        /// Mask most characters, keeping a few for recognition.
        Mask = "mask",
        /// Refuse the whole write.
        Block = "block",
        /// Replace it with a reversible per-org token.
        Tokenize = "tokenize",
        /// Encrypt it in place.
        Encrypt = "encrypt",
        /// Replace it with a keyed hash (stable, not reversible).
        Hash = "hash",
        /// Only report it.
        None = "none",
    }
}

keyword_enum! {
    /// What happens to a category's records when their subject is erased.
    #[derive(Default)]
    ErasureAction, "erasure action" {
        /// Delete the records (the default).
        #[default]
        Delete = "delete",
        /// Keep the records with the subject's identity removed.
        Anonymize = "anonymize",
        /// Fold the records into aggregates with no personal link.
        Aggregate = "aggregate",
    }
}

keyword_enum! {
    /// Which wire format an LLM provider speaks.
    ProviderKind, "provider kind" {
        /// The OpenAI API.
        OpenAi = "openai",
        /// The Anthropic API.
        Anthropic = "anthropic",
    }
}

#[path = "model_notify.rs"]
mod notify;
pub use notify::*;
