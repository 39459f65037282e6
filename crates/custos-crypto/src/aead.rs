//! Keys, wrapped keys and AES-256-GCM sealing with associated data.

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use rand::RngCore;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::CryptoError;

const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
/// Format byte and nonce, before the ciphertext.
const HEADER_LEN: usize = 1 + NONCE_LEN;
/// First byte of every sealed value: lets a later format change coexist with this one.
const SEAL_FORMAT_V1: u8 = 1;

/// A 256-bit symmetric key. Cannot be printed, cloned or read out; zeroized on drop.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct SecretKey([u8; 32]);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

impl SecretKey {
    /// A fresh random key from the operating system's CSPRNG.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        SecretKey(bytes)
    }

    /// Takes ownership of raw key bytes (from a keyring, an unwrap or a KMS `Decrypt`); the
    /// caller wipes its own copies.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        SecretKey(bytes)
    }

    /// Raw bytes, for this crate's own wrapping and MACs only.
    pub(crate) fn expose(&self) -> &[u8; 32] {
        &self.0
    }

    /// Seals `plaintext` under this key, bound to `aad`: `version || nonce || ciphertext+tag`.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        // Encrypted in place in the output buffer: one allocation and one copy per value
        // (the record write path seals every record).
        let mut out = Vec::with_capacity(HEADER_LEN + plaintext.len() + TAG_LEN);
        out.push(SEAL_FORMAT_V1);
        let mut nonce = [0u8; NONCE_LEN];
        // ThreadRng is a CSPRNG (ChaCha12, reseeded from the OS): random 96-bit nonces without
        // a getrandom system call per record on the write path.
        rand::thread_rng().fill_bytes(&mut nonce);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plaintext);
        let tag = Aes256Gcm::new((&self.0).into())
            .encrypt_in_place_detached(Nonce::from_slice(&nonce), aad, &mut out[HEADER_LEN..])
            .expect("AES-GCM encryption of an in-memory buffer cannot fail");
        out.extend_from_slice(&tag);
        out
    }

    /// Opens a value produced by [`SecretKey::seal`] with the same `aad`.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if sealed.len() < HEADER_LEN + TAG_LEN || sealed[0] != SEAL_FORMAT_V1 {
            return Err(CryptoError::Unauthentic);
        }
        let (body, tag) = sealed[HEADER_LEN..].split_at(sealed.len() - HEADER_LEN - TAG_LEN);
        let mut plain = body.to_vec();
        Aes256Gcm::new((&self.0).into())
            .decrypt_in_place_detached(
                Nonce::from_slice(&sealed[1..HEADER_LEN]),
                aad,
                &mut plain,
                Tag::from_slice(tag),
            )
            .map_err(|_| CryptoError::Unauthentic)?;
        Ok(plain)
    }

    /// Wraps another key under this one.
    pub(crate) fn wrap(&self, aad: &[u8], key: &SecretKey) -> Vec<u8> {
        self.seal(aad, &key.0)
    }

    /// Unwraps a key wrapped by [`SecretKey::wrap`].
    pub(crate) fn unwrap_key(&self, aad: &[u8], wrapped: &[u8]) -> Result<SecretKey, CryptoError> {
        let mut plain = self.open(aad, wrapped)?;
        let result = <[u8; 32]>::try_from(plain.as_slice())
            .map(SecretKey)
            .map_err(|_| CryptoError::Malformed("wrapped key has the wrong length"));
        plain.zeroize();
        result
    }

    /// HMAC-SHA256 of `message` under this key (for derived keys and keyed lookups).
    pub(crate) fn mac(&self, message: &[u8]) -> [u8; 32] {
        use hmac::{Hmac, Mac};
        let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(&self.0).expect("any key size");
        mac.update(message);
        mac.finalize().into_bytes().into()
    }

    /// A key derived from this one for a named purpose (HMAC-based, one step of HKDF-Expand).
    pub fn derive(&self, purpose: &str) -> SecretKey {
        SecretKey(self.mac(purpose.as_bytes()))
    }

    /// Lends the raw key bytes to `f`, for a consumer that must run its own MAC (the PII
    /// keyed-hash operator). Scoped so the bytes are not kept; `f` must not log or store them.
    pub fn with_bytes<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
        f(&self.0)
    }

    /// A keyed, hex-encoded digest of `message`; stable for the life of this key.
    pub fn keyed_digest_hex(&self, message: &[u8]) -> String {
        hex::encode(&self.mac(message)[..16])
    }
}

/// A key encrypted by the key one level up, with the version of that key.
#[derive(Clone, PartialEq, Eq)]
pub struct WrappedKey {
    /// Version of the wrapping key (root version for org keys, org-key version for subject keys).
    pub wrapped_by: u32,
    /// `version || nonce || ciphertext+tag` of the 32 key bytes.
    pub blob: Vec<u8>,
}

impl std::fmt::Debug for WrappedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WrappedKey(wrapped_by={})", self.wrapped_by)
    }
}

/// Which key sealed a record's content. Stored beside the ciphertext, in clear.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum KeyRef {
    /// The org key of the given version (content without a subject).
    Org {
        /// Org key version.
        version: u32,
    },
    /// A subject key, by its id (a fresh id per key, so a re-created key never opens old data).
    Subject {
        /// Subject key id.
        key_id: String,
    },
}

impl std::fmt::Display for KeyRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyRef::Org { version } => write!(f, "org:{version}"),
            KeyRef::Subject { key_id } => write!(f, "subject:{key_id}"),
        }
    }
}

impl std::str::FromStr for KeyRef {
    type Err = CryptoError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once(':') {
            Some(("org", v)) => v
                .parse()
                .map(|version| KeyRef::Org { version })
                .map_err(|_| CryptoError::Malformed("org key version is not a number")),
            Some(("subject", id)) if !id.is_empty() => Ok(KeyRef::Subject {
                key_id: id.to_string(),
            }),
            _ => Err(CryptoError::Malformed("key reference")),
        }
    }
}

/// Associated data that binds a record's ciphertext to its org, record and key.
#[derive(Debug, Clone, Copy)]
pub struct RecordAad<'a> {
    /// Org id.
    pub org: &'a str,
    /// Record id.
    pub record: &'a str,
    /// Key (and key version) that sealed it.
    pub key: &'a KeyRef,
    /// What part of the record this is (`content`, `blob`), so parts cannot be swapped.
    pub part: &'a str,
}

impl RecordAad<'_> {
    /// The associated-data bytes. NUL separators: ids never contain NUL, so the encoding is
    /// unambiguous.
    pub fn to_bytes(&self) -> Vec<u8> {
        format!(
            "custos/record/v1\0{}\0{}\0{}\0{}",
            self.org, self.record, self.key, self.part
        )
        .into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_aad_binding() {
        let key = SecretKey::generate();
        let sealed = key.seal(b"a", b"hello");
        assert_eq!(key.open(b"a", &sealed).unwrap(), b"hello");
        assert!(matches!(
            key.open(b"b", &sealed),
            Err(CryptoError::Unauthentic)
        ));
        assert!(SecretKey::generate().open(b"a", &sealed).is_err());
        assert!(key.open(b"a", &sealed[..5]).is_err());
    }

    #[test]
    fn sealed_layout_is_version_nonce_then_standard_aes_gcm() {
        // Values sealed by earlier releases (and by other AES-GCM implementations) must keep
        // opening: check the layout against the one-shot API, independently of `seal`.
        use aes_gcm::aead::{Aead, Payload};
        let key = SecretKey::from_bytes([7; 32]);
        let sealed = key.seal(b"aad", b"layout");
        assert_eq!(sealed[0], SEAL_FORMAT_V1);
        assert_eq!(sealed.len(), HEADER_LEN + b"layout".len() + TAG_LEN);
        let cipher = Aes256Gcm::new((&[7u8; 32]).into());
        let plain = cipher
            .decrypt(
                Nonce::from_slice(&sealed[1..HEADER_LEN]),
                Payload {
                    msg: &sealed[HEADER_LEN..],
                    aad: b"aad",
                },
            )
            .unwrap();
        assert_eq!(plain, b"layout");
        let nonce = [9u8; NONCE_LEN];
        let mut legacy = vec![SEAL_FORMAT_V1];
        legacy.extend_from_slice(&nonce);
        legacy.extend(
            cipher
                .encrypt(
                    Nonce::from_slice(&nonce),
                    Payload {
                        msg: b"legacy",
                        aad: b"aad",
                    },
                )
                .unwrap(),
        );
        assert_eq!(key.open(b"aad", &legacy).unwrap(), b"legacy");
        let mut flipped = legacy.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(key.open(b"aad", &flipped).is_err());
    }

    #[test]
    fn cipher_state_is_wiped_on_drop() {
        // Compiles only while the AES key schedule zeroizes itself when dropped (the `aes`
        // crate's `zeroize` feature): every seal and open expands our key into one.
        fn wiped_on_drop<T: zeroize::ZeroizeOnDrop>() {}
        wiped_on_drop::<aes::Aes256>();
    }

    #[test]
    fn debug_never_shows_bytes() {
        let key = SecretKey::from_bytes([0xAB; 32]);
        let shown = format!("{key:?}");
        assert!(!shown.to_lowercase().contains("ab, ab") && !shown.contains("171"));
        assert_eq!(shown, "SecretKey(<redacted>)");
    }

    #[test]
    fn key_ref_round_trips() {
        for r in [
            KeyRef::Org { version: 3 },
            KeyRef::Subject {
                key_id: "k1".into(),
            },
        ] {
            assert_eq!(r.to_string().parse::<KeyRef>().unwrap(), r);
        }
        assert!("bogus".parse::<KeyRef>().is_err());
    }
}
