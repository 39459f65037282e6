//! Org-wide PII pseudonyms (the `tokenize` action): the types both backends share.
//!
//! The store never sees a raw value: a token row holds the pseudonym (`<PERSON_3>`, not
//! personal), a keyed hash of (kind, value) to find it by, and the value sealed by core under
//! an org key. Tokens are written only together with the records that use them
//! ([`Store::insert_records_with_tokens`](crate::Store::insert_records_with_tokens)).

use jiff::Timestamp;

/// One org-wide pseudonym as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PiiToken {
    /// The pseudonym as it appears in content, e.g. `<PERSON_3>`; unique in its org.
    pub token: String,
    /// Entity kind in upper snake case (`PERSON`).
    pub entity: String,
    /// Its number among the org's tokens of that kind (the 3 in `<PERSON_3>`).
    pub seq: u64,
    /// Keyed hash of (kind, value) under an org key: how a value finds its token. Unique in
    /// its org.
    pub lookup: String,
    /// The original value, sealed under an org key and bound to org and token.
    pub sealed_value: Vec<u8>,
    /// Keyed reference of the subject of the record that minted it, if it had one, so that
    /// subject erasure can find the tokens to destroy.
    pub subject_ref: Option<String>,
    /// When it was minted.
    pub created_at: Timestamp,
}

/// What an org already has for a batch's values, read before minting.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenResolution {
    /// `(lookup, token)` for each asked lookup that has a token.
    pub found: Vec<(String, String)>,
    /// `(entity, highest number issued)` for each asked entity kind (0 when none yet).
    pub last_seq: Vec<(String, u64)>,
}

/// The token side of one record batch: what it mints and which existing tokens it relies on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenBatch {
    /// New tokens, written with the records.
    pub minted: Vec<PiiToken>,
    /// Lookups of existing tokens the records use; they must still exist at commit.
    pub existing: Vec<String>,
}

impl TokenBatch {
    /// True when the batch neither mints nor uses a token.
    pub fn is_empty(&self) -> bool {
        self.minted.is_empty() && self.existing.is_empty()
    }
}
