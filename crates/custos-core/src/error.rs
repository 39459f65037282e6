//! The errors core operations return, each with a stable machine-readable code.
//!
//! Messages name the input and what is wrong; they never contain record content, PII values
//! or key material.

use custos_store::StoreError;

/// Why a core operation did not happen. Nothing was changed when one is returned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CoreError {
    /// No or unknown credentials.
    #[error("missing or invalid credentials")]
    Unauthenticated,
    /// Authenticated, but not allowed.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// An operator acting inside an org that has an owner, without an active support grant
    /// that covers the operation (named by `X-Custos-Grant`).
    #[error("{0}")]
    GrantRequired(String),
    /// The operation (or category) named needs a second factor and the caller proved none.
    #[error("{0} needs a second factor (a TOTP session or an identity-provider token)")]
    MfaRequired(String),
    /// The thing does not exist (or is not visible to the caller).
    #[error("{0} not found")]
    NotFound(String),
    /// A field of the request is invalid.
    #[error("invalid `{field}`: {message}")]
    Invalid {
        /// The field (`category`, `region`, `retention`, ...).
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// A URL given at run time that the outbound rules refuse (scheme, user info, an
    /// internal address not in `[network] allow`).
    #[error("`{field}` is not allowed: {message}")]
    UrlNotAllowed {
        /// The field holding the URL.
        field: String,
        /// Why it is refused.
        message: String,
    },
    /// The category is not in the policy.
    #[error("unknown category `{0}`; see `custos policy show` for the categories this deployment defines")]
    UnknownCategory(String),
    /// The request conflicts with current state (e.g. restore after the window closed).
    #[error("conflict: {0}")]
    Conflict(String),
    /// An operator suspended the org: its members may only read the org until it is resumed.
    #[error("org {0} is suspended by the deployment's operator; its members can only read its status until it is resumed")]
    OrgSuspended(String),
    /// The org is terminated or being terminated: only its status, deletion log, holds and
    /// audit trail can still be read.
    #[error("org {0} is terminated or being terminated; its data is read-only until purged")]
    OrgTerminated(String),
    /// The record's content was crypto-erased.
    #[error("the content of this record was erased")]
    Erased,
    /// The change would move the org's data out of its region, and the org does not allow
    /// data transfer.
    #[error("{0}")]
    TransferNotAllowed(String),
    /// The category's PII rule is `block` and PII was found.
    #[error("content rejected: {0}")]
    PiiBlocked(String),
    /// Too many failures (wrong TOTP codes, bad credentials) from this caller or against this
    /// member: try again after `retry_after` seconds (or, while a member is locked out, once
    /// an owner or admin clears it).
    #[error("{message}")]
    RateLimited {
        /// What was limited and how it ends.
        message: String,
        /// Seconds until another try can succeed (the `Retry-After` header).
        retry_after: u64,
    },
    /// Another request is moving the org to another region; nothing was changed.
    #[error("{0}")]
    MoveInProgress(String),
    /// A browser back from an identity provider was not signed in (the reason code says why).
    #[error("{message}")]
    SignInRefused {
        /// The reason code, as audited.
        reason: &'static str,
        /// What the person is told.
        message: String,
    },
    /// The org's identity provider could not be reached, or answered nonsense.
    #[error("the identity provider {0} is unavailable; try again later")]
    IdentityProviderUnavailable(String),
    /// Storage or crypto failed; details are logged, not returned.
    #[error("internal error")]
    Internal {
        /// What failed, for the service log and the CLI (may name internals: never sent to
        /// an API client).
        detail: String,
        /// The failure underneath, when there is one (a [`StoreError`], a
        /// [`custos_crypto::CryptoError`], ...).
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
    },
}

impl CoreError {
    /// The stable code for problem documents and the CLI.
    pub fn code(&self) -> &'static str {
        match self {
            CoreError::Unauthenticated => "unauthenticated",
            CoreError::Forbidden(_) => "forbidden",
            CoreError::MfaRequired(_) => "mfa_required",
            CoreError::GrantRequired(_) => "grant_required",
            CoreError::NotFound(_) => "not_found",
            CoreError::OrgTerminated(_) => "org_terminated",
            CoreError::OrgSuspended(_) => "org_suspended",
            CoreError::Invalid { .. } => "invalid_input",
            CoreError::UrlNotAllowed { .. } => "url_not_allowed",
            CoreError::UnknownCategory(_) => "unknown_category",
            CoreError::Conflict(_) => "conflict",
            CoreError::Erased => "erased",
            CoreError::PiiBlocked(_) => "pii_blocked",
            CoreError::TransferNotAllowed(_) => "data_transfer_not_allowed",
            CoreError::RateLimited { .. } => "rate_limited",
            CoreError::MoveInProgress(_) => "move_in_progress",
            CoreError::SignInRefused { .. } => "sign_in_refused",
            CoreError::IdentityProviderUnavailable(_) => "identity_provider_unavailable",
            CoreError::Internal { .. } => "internal",
        }
    }

    /// An internal error with no underlying error to keep (an invariant that did not hold).
    pub fn internal(detail: impl Into<String>) -> Self {
        CoreError::Internal {
            detail: detail.into(),
            source: None,
        }
    }

    /// An internal error caused by `source`; the detail is `context: source`.
    pub fn internal_from(
        context: impl std::fmt::Display,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        CoreError::Internal {
            detail: format!("{context}: {source}"),
            source: Some(Box::new(source)),
        }
    }

    /// Shorthand for [`CoreError::Invalid`].
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        CoreError::Invalid {
            field: field.to_string(),
            message: message.into(),
        }
    }
}

impl From<StoreError> for CoreError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(m) => CoreError::Conflict(m),
            StoreError::MoveInProgress(m) => CoreError::MoveInProgress(m),
            other => CoreError::Internal {
                detail: other.to_string(),
                source: Some(Box::new(other)),
            },
        }
    }
}

impl From<custos_crypto::CryptoError> for CoreError {
    fn from(e: custos_crypto::CryptoError) -> Self {
        match e {
            custos_crypto::CryptoError::KeyDestroyed => CoreError::Erased,
            other => CoreError::Internal {
                detail: other.to_string(),
                source: Some(Box::new(other)),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn a_store_failure_keeps_its_chain_and_shows_only_internal_error() {
        let cause = std::io::Error::other("disk gone");
        let err = CoreError::from(StoreError::database("reading records", cause));
        assert_eq!(err.to_string(), "internal error");
        assert_eq!(err.code(), "internal");
        let store = err
            .source()
            .and_then(|s| s.downcast_ref::<StoreError>())
            .expect("the store error is the source");
        assert!(matches!(store, StoreError::Database { .. }), "{store:?}");
        let io = store
            .source()
            .and_then(|s| s.downcast_ref::<std::io::Error>())
            .expect("the I/O error is the store error's source");
        assert_eq!(io.to_string(), "disk gone");
        // The detail (logged, printed by the CLI) still says what failed.
        match &err {
            CoreError::Internal { detail, .. } => {
                assert_eq!(detail, "database error: reading records: disk gone")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_conflict_stays_a_conflict() {
        let err = CoreError::from(StoreError::Conflict("duplicate id".into()));
        assert!(
            matches!(err, CoreError::Conflict(ref m) if m == "duplicate id"),
            "{err:?}"
        );
    }
}
