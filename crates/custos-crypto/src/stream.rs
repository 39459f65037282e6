//! Chunked AEAD for blobs of any size in bounded memory (the STREAM construction).
//!
//! Format: `"CSB1"`, a 7-byte random nonce prefix, then chunks of [`BLOB_CHUNK`] plaintext
//! bytes, each sealed with AES-256-GCM (+16 bytes tag). The nonce carries a chunk counter and a
//! last-chunk flag (the `aead` crate's `StreamBE32`), so reordering, dropping or truncating
//! chunks fails to open.

use aes_gcm::aead::stream::{DecryptorBE32, EncryptorBE32};
use aes_gcm::aead::{KeyInit, Payload};
use aes_gcm::Aes256Gcm;
use rand::RngCore;

use crate::{CryptoError, SecretKey};

/// Plaintext bytes per sealed chunk.
pub const BLOB_CHUNK: usize = 64 * 1024;
const TAG: usize = 16;
const MAGIC: &[u8; 4] = b"CSB1";
const PREFIX: usize = 7;

/// Encrypts a blob incrementally: feed with [`push`](Self::push), close with
/// [`finish`](Self::finish).
pub struct BlobEncryptor {
    inner: Option<EncryptorBE32<Aes256Gcm>>,
    aad: Vec<u8>,
    pending: Vec<u8>,
    header: Option<Vec<u8>>,
}

impl BlobEncryptor {
    pub(crate) fn new(key: &SecretKey, aad: Vec<u8>) -> Self {
        let mut prefix = [0u8; PREFIX];
        rand::rngs::OsRng.fill_bytes(&mut prefix);
        let cipher = Aes256Gcm::new(key.expose().into());
        let mut header = MAGIC.to_vec();
        header.extend_from_slice(&prefix);
        BlobEncryptor {
            inner: Some(EncryptorBE32::from_aead(cipher, (&prefix).into())),
            aad,
            pending: Vec::with_capacity(BLOB_CHUNK),
            header: Some(header),
        }
    }

    /// Adds plaintext; returns the ciphertext bytes that are ready (possibly none).
    pub fn push(&mut self, mut data: &[u8]) -> Vec<u8> {
        let mut out = self.header.take().unwrap_or_default();
        while !data.is_empty() {
            // A full chunk is sealed only once at least one more byte exists, because the
            // last chunk must be sealed with the last-chunk flag.
            if self.pending.len() == BLOB_CHUNK {
                out.extend(self.seal_pending());
            }
            let take = (BLOB_CHUNK - self.pending.len()).min(data.len());
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
        }
        out
    }

    fn seal_pending(&mut self) -> Vec<u8> {
        let sealed = self
            .inner
            .as_mut()
            .expect("encryptor used after finish")
            .encrypt_next(Payload {
                msg: &self.pending,
                aad: &self.aad,
            })
            .expect("in-memory AES-GCM cannot fail");
        self.pending.clear();
        sealed
    }

    /// Seals the final chunk and returns the last ciphertext bytes.
    pub fn finish(mut self) -> Vec<u8> {
        let mut out = self.header.take().unwrap_or_default();
        let inner = self.inner.take().expect("encryptor used after finish");
        out.extend(
            inner
                .encrypt_last(Payload {
                    msg: &self.pending,
                    aad: &self.aad,
                })
                .expect("in-memory AES-GCM cannot fail"),
        );
        out
    }

    /// The ciphertext size of a blob of `plaintext_len` bytes.
    pub fn sealed_len(plaintext_len: u64) -> u64 {
        let chunks = plaintext_len.div_ceil(BLOB_CHUNK as u64).max(1);
        (MAGIC.len() + PREFIX) as u64 + plaintext_len + chunks * TAG as u64
    }
}

/// Decrypts a blob incrementally; authentication of every chunk is checked before it is
/// returned, and [`finish`](Self::finish) fails on truncation.
pub struct BlobDecryptor {
    cipher: Option<Aes256Gcm>,
    inner: Option<DecryptorBE32<Aes256Gcm>>,
    aad: Vec<u8>,
    pending: Vec<u8>,
}

impl BlobDecryptor {
    pub(crate) fn new(key: &SecretKey, aad: Vec<u8>) -> Self {
        BlobDecryptor {
            cipher: Some(Aes256Gcm::new(key.expose().into())),
            inner: None,
            aad,
            pending: Vec::with_capacity(BLOB_CHUNK + TAG),
        }
    }

    /// Adds ciphertext; returns the plaintext that is authenticated so far.
    pub fn push(&mut self, mut data: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let mut out = Vec::new();
        while !data.is_empty() {
            if self.inner.is_none() {
                let need = MAGIC.len() + PREFIX - self.pending.len();
                let take = need.min(data.len());
                self.pending.extend_from_slice(&data[..take]);
                data = &data[take..];
                if self.pending.len() == MAGIC.len() + PREFIX {
                    if &self.pending[..4] != MAGIC {
                        return Err(CryptoError::Unauthentic);
                    }
                    let prefix: [u8; PREFIX] = self.pending[4..].try_into().expect("7 bytes");
                    let cipher = self.cipher.take().expect("cipher set until header");
                    self.inner = Some(DecryptorBE32::from_aead(cipher, (&prefix).into()));
                    self.pending.clear();
                }
                continue;
            }
            if self.pending.len() == BLOB_CHUNK + TAG {
                let plain = self
                    .inner
                    .as_mut()
                    .expect("header read")
                    .decrypt_next(Payload {
                        msg: &self.pending,
                        aad: &self.aad,
                    })
                    .map_err(|_| CryptoError::Unauthentic)?;
                out.extend(plain);
                self.pending.clear();
            }
            let take = (BLOB_CHUNK + TAG - self.pending.len()).min(data.len());
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
        }
        Ok(out)
    }

    /// Opens the final chunk; fails if the blob was truncated or altered.
    pub fn finish(mut self) -> Result<Vec<u8>, CryptoError> {
        let inner = self.inner.take().ok_or(CryptoError::Unauthentic)?;
        inner
            .decrypt_last(Payload {
                msg: &self.pending,
                aad: &self.aad,
            })
            .map_err(|_| CryptoError::Unauthentic)
    }
}

/// The key backups are sealed under (see `KeyVault::backup_key`): each backed-up file is one
/// sealed blob bound to its backup and its name, so a file moved to another backup or renamed
/// does not open. Cannot be printed or cloned.
pub struct BackupKey(pub(crate) SecretKey);

impl std::fmt::Debug for BackupKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BackupKey(<secret>)")
    }
}

impl BackupKey {
    fn aad(backup: &str, name: &str) -> Vec<u8> {
        format!("custos/backup/v1\0{backup}\0{name}").into_bytes()
    }

    /// A streaming encryptor for the file `name` of backup `backup`.
    pub fn encryptor(&self, backup: &str, name: &str) -> BlobEncryptor {
        BlobEncryptor::new(&self.0, Self::aad(backup, name))
    }

    /// The matching decryptor.
    pub fn decryptor(&self, backup: &str, name: &str) -> BlobDecryptor {
        BlobDecryptor::new(&self.0, Self::aad(backup, name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn encrypt(key: &SecretKey, data: &[u8], piece: usize) -> Vec<u8> {
        let mut enc = BlobEncryptor::new(key, b"aad".to_vec());
        let mut out = Vec::new();
        for part in data.chunks(piece.max(1)) {
            out.extend(enc.push(part));
        }
        out.extend(enc.finish());
        out
    }

    fn decrypt(
        key: &SecretKey,
        aad: &[u8],
        data: &[u8],
        piece: usize,
    ) -> Result<Vec<u8>, CryptoError> {
        let mut dec = BlobDecryptor::new(key, aad.to_vec());
        let mut out = Vec::new();
        for part in data.chunks(piece.max(1)) {
            out.extend(dec.push(part)?);
        }
        out.extend(dec.finish()?);
        Ok(out)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn round_trips_at_any_split(len in 0usize..(3 * BLOB_CHUNK + 10), a in 1usize..100_000, b in 1usize..100_000) {
            let key = SecretKey::generate();
            let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let sealed = encrypt(&key, &data, a);
            prop_assert_eq!(sealed.len() as u64, BlobEncryptor::sealed_len(len as u64));
            prop_assert_eq!(decrypt(&key, b"aad", &sealed, b).unwrap(), data);
        }
    }

    #[test]
    fn truncation_reordering_and_wrong_aad_fail() {
        let key = SecretKey::generate();
        let data = vec![7u8; 2 * BLOB_CHUNK + 5];
        let sealed = encrypt(&key, &data, 1000);
        assert!(decrypt(&key, b"other", &sealed, 4096).is_err());
        // Drop the last chunk: the previous one is not flagged last.
        let cut = 11 + 2 * (BLOB_CHUNK + TAG);
        assert!(decrypt(&key, b"aad", &sealed[..cut], 4096).is_err());
        // Swap the first two chunks.
        let mut swapped = sealed[..11].to_vec();
        swapped.extend_from_slice(&sealed[11 + BLOB_CHUNK + TAG..cut]);
        swapped.extend_from_slice(&sealed[11..11 + BLOB_CHUNK + TAG]);
        swapped.extend_from_slice(&sealed[cut..]);
        assert!(decrypt(&key, b"aad", &swapped, 4096).is_err());
    }
}
