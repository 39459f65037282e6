//! [`SignInStore`]: sign-ins through an identity provider that are under way (the browser
//! went to the provider and has not come back). Deployment-wide rows, kept in the main
//! database; each is used once.

use jiff::Timestamp;

use crate::StoreError;

/// One sign-in under way, as stored.
#[derive(Clone, PartialEq, Eq)]
pub struct PendingSignIn {
    /// SHA-256 of the `state` parameter sent to the provider.
    pub state_hash: [u8; 32],
    /// SHA-256 of the browser's pre-login cookie: only that browser may finish the sign-in.
    pub browser_hash: [u8; 32],
    /// The org whose people sign in; `None`: an operator sign-in.
    pub org_id: Option<String>,
    /// The `nonce` the ID token must carry.
    pub nonce: String,
    /// The PKCE code verifier the code exchange sends.
    pub pkce_verifier: String,
    /// Where the browser goes once signed in (a path on this deployment).
    pub return_to: String,
    /// When it may no longer be finished.
    pub expires_at: Timestamp,
}

impl std::fmt::Debug for PendingSignIn {
    // The nonce and the verifier are secrets of a sign-in under way: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingSignIn")
            .field("org_id", &self.org_id)
            .field("return_to", &self.return_to)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// Persistence of sign-ins under way. Not audited: a row is minutes-long state of an
/// unauthenticated browser (as a rate limit's counter is); the sign-in's outcome is audited.
#[async_trait::async_trait]
pub trait SignInStore {
    /// Keeps `sign_in`, and drops every sign-in that expired before `now`.
    async fn put_sign_in(&self, sign_in: &PendingSignIn, now: Timestamp) -> Result<(), StoreError>;

    /// Removes and returns the sign-in of `state_hash` (expired or not): a second call for
    /// the same state finds nothing, so a sign-in is finished at most once.
    async fn take_sign_in(
        &self,
        state_hash: &[u8; 32],
    ) -> Result<Option<PendingSignIn>, StoreError>;
}

/// The columns [`PendingSignIn`] is read from, in order (both backends).
pub(crate) const SIGN_IN_COLUMNS: &str =
    "state_hash, browser_hash, org_id, nonce, pkce_verifier, return_to, expires_at";

/// A 32-byte hash column, or a clear error naming the column.
pub(crate) fn hash_column(bytes: Vec<u8>, column: &str) -> Result<[u8; 32], StoreError> {
    bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt(format!("sign_ins.{column} is not 32 bytes")))
}
