//! A short text stored sealed, with the reference of the key it is sealed under in front
//! (`<key ref> 0x00 <sealed bytes>`), so that key rotation keeps it openable: a request's
//! subject, a subject's contact, a privacy-center session's subject.
//!
//! Not for: records and files (their rows keep the key reference in a column of its own).

use custos_store::OrgScope;

use crate::{CoreError, Custos};

/// What a sealed text is and where it is kept, for its associated data and its errors.
pub(crate) struct SealedText<'a> {
    /// The id it belongs to (a request id, a subject reference).
    pub id: &'a str,
    /// The part name in its associated data.
    pub part: &'a str,
    /// What it is, for an error (`a request's subject`).
    pub what: &'a str,
}

impl Custos {
    /// Seals `text` under the subject's key (`subject_ref`) or, with `None`, the org's.
    pub(crate) async fn seal_text(
        &self,
        scope: &OrgScope,
        subject_ref: Option<&str>,
        at: &SealedText<'_>,
        text: &str,
    ) -> Result<Vec<u8>, CoreError> {
        let key = self.vault.content_key(scope.org_id(), subject_ref).await?;
        let mut out = key.key_ref().to_string().into_bytes();
        out.push(0);
        out.extend(key.seal(scope.org_id(), at.id, at.part, text.as_bytes()));
        Ok(out)
    }

    /// Opens a text [`Custos::seal_text`] sealed; `None` when its key was destroyed (an
    /// erased subject, a terminated org).
    pub(crate) async fn open_text(
        &self,
        scope: &OrgScope,
        at: &SealedText<'_>,
        stored: &[u8],
    ) -> Result<Option<String>, CoreError> {
        let corrupt = || CoreError::internal(format!("{} is sealed in a form not known", at.what));
        let split = stored.iter().position(|b| *b == 0).ok_or_else(corrupt)?;
        let key_ref: custos_crypto::KeyRef = std::str::from_utf8(&stored[..split])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(corrupt)?;
        let key = match self.vault.content_key_for(scope.org_id(), &key_ref).await {
            Ok(key) => key,
            Err(custos_crypto::CryptoError::KeyDestroyed) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let plain = key.open(scope.org_id(), at.id, at.part, &stored[split + 1..])?;
        String::from_utf8(plain).map(Some).map_err(|_| corrupt())
    }
}
