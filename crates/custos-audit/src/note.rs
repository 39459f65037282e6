//! C2SP signed notes (<https://c2sp.org/signed-note>) with Ed25519 signatures.
//!
//! A note is a UTF-8 text body ending in a newline, a blank line, and one or more signature
//! lines `— <name> <base64(key id || signature)>`. The private key never enters this crate:
//! signing goes through [`NoteSigner`], which the crypto crate implements.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use sha2::{Digest, Sha256};

/// The signature algorithm byte for Ed25519 in key ids and verifier keys.
pub const ALG_ED25519: u8 = 0x01;

/// The prefix of every signature line: an em dash and a space.
const SIG_PREFIX: &str = "\u{2014} ";

/// Something that can sign notes with an Ed25519 key it keeps to itself.
pub trait NoteSigner {
    /// The key name that appears in signature lines and the verifier key.
    fn name(&self) -> &str;
    /// The 32-byte Ed25519 public key.
    fn public_key(&self) -> [u8; 32];
    /// An Ed25519 signature over `msg`.
    fn sign(&self, msg: &[u8]) -> [u8; 64];
}

/// Why a note could not be signed or verified.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NoteError {
    /// The key name is empty, contains whitespace or `+`.
    #[error("invalid key name {0:?}: must be non-empty, without spaces or '+'")]
    InvalidName(String),
    /// The body is empty, lacks a final newline, has a blank line or a control character.
    #[error("invalid note body: {0}")]
    InvalidBody(&'static str),
    /// The note text is not a body, a blank line and signature lines.
    #[error("malformed note: {0}")]
    Malformed(&'static str),
    /// The verifier key string is not `<name>+<hex id>+<base64 key>`.
    #[error("malformed verifier key: {0}")]
    MalformedKey(&'static str),
    /// The verifier key's id does not match its name and public key.
    #[error("verifier key id does not match its name and key")]
    KeyIdMismatch,
    /// The verifier key's algorithm is not Ed25519.
    #[error("unsupported verifier key algorithm {0:#04x}")]
    UnsupportedAlgorithm(u8),
    /// No signature line carries the verifier key's name and id.
    #[error("note has no signature by key {0}")]
    NoMatchingSignature(String),
    /// A signature by the verifier key does not verify over the body.
    #[error("signature by key {0} is invalid")]
    BadSignature(String),
}

/// The C2SP key id: the first 4 bytes (big-endian) of `SHA-256(name || "\n" || 0x01 || key)`.
pub fn key_id(name: &str, public_key: &[u8; 32]) -> u32 {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([b'\n', ALG_ED25519]);
    h.update(public_key);
    let d = h.finalize();
    u32::from_be_bytes([d[0], d[1], d[2], d[3]])
}

/// The verifier key string `<name>+<8 hex id>+<base64(0x01 || key)>` for publishing.
pub fn verifier_key(name: &str, public_key: &[u8; 32]) -> String {
    VerifierKey {
        name: name.to_owned(),
        public_key: *public_key,
    }
    .to_string()
}

fn check_name(name: &str) -> Result<(), NoteError> {
    if name.is_empty() || name.contains('+') || name.chars().any(char::is_whitespace) {
        return Err(NoteError::InvalidName(name.to_owned()));
    }
    Ok(())
}

/// A parsed Ed25519 verifier key; its key id is always consistent with name and key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifierKey {
    name: String,
    public_key: [u8; 32],
}

impl VerifierKey {
    /// A verifier key for `name` and an Ed25519 public key.
    pub fn new(name: &str, public_key: [u8; 32]) -> Result<Self, NoteError> {
        check_name(name)?;
        Ok(VerifierKey {
            name: name.to_owned(),
            public_key,
        })
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The Ed25519 public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.public_key
    }

    /// The key id that signature lines carry.
    pub fn key_id(&self) -> u32 {
        key_id(&self.name, &self.public_key)
    }
}

impl fmt::Display for VerifierKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut key = Vec::with_capacity(33);
        key.push(ALG_ED25519);
        key.extend_from_slice(&self.public_key);
        write!(
            f,
            "{}+{:08x}+{}",
            self.name,
            self.key_id(),
            base64::engine::general_purpose::STANDARD.encode(key)
        )
    }
}

impl FromStr for VerifierKey {
    type Err = NoteError;

    fn from_str(s: &str) -> Result<Self, NoteError> {
        let s = s.trim_end_matches(['\n', '\r']);
        let (name, rest) = s
            .split_once('+')
            .ok_or(NoteError::MalformedKey("missing '+'"))?;
        let (id_hex, key_b64) = rest
            .split_once('+')
            .ok_or(NoteError::MalformedKey("missing second '+'"))?;
        check_name(name)?;
        if id_hex.len() != 8 || !id_hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(NoteError::MalformedKey("key id must be 8 hex digits"));
        }
        let id = u32::from_str_radix(id_hex, 16)
            .map_err(|_| NoteError::MalformedKey("key id must be 8 hex digits"))?;
        let key = base64::engine::general_purpose::STANDARD
            .decode(key_b64)
            .map_err(|_| NoteError::MalformedKey("key is not base64"))?;
        let (&alg, pk) = key
            .split_first()
            .ok_or(NoteError::MalformedKey("empty key"))?;
        if alg != ALG_ED25519 {
            return Err(NoteError::UnsupportedAlgorithm(alg));
        }
        let public_key: [u8; 32] = pk
            .try_into()
            .map_err(|_| NoteError::MalformedKey("Ed25519 key must be 32 bytes"))?;
        let vk = VerifierKey {
            name: name.to_owned(),
            public_key,
        };
        if vk.key_id() != id {
            return Err(NoteError::KeyIdMismatch);
        }
        Ok(vk)
    }
}

/// Checks the signed-note text rules: non-empty, newline-terminated, no blank line, no ASCII
/// control character but newline (a blank line would end the body early).
fn check_body(body: &str) -> Result<(), NoteError> {
    if body.is_empty() {
        return Err(NoteError::InvalidBody("empty"));
    }
    if !body.ends_with('\n') {
        return Err(NoteError::InvalidBody("must end with a newline"));
    }
    if body.starts_with('\n') || body.contains("\n\n") {
        return Err(NoteError::InvalidBody("must not contain a blank line"));
    }
    if body.chars().any(|c| c < ' ' && c != '\n') {
        return Err(NoteError::InvalidBody("contains a control character"));
    }
    Ok(())
}

/// Signs `body` and returns the note text: body, blank line, one signature line.
pub fn sign_note(body: &str, signer: &dyn NoteSigner) -> Result<String, NoteError> {
    check_body(body)?;
    let name = signer.name();
    check_name(name)?;
    let id = key_id(name, &signer.public_key());
    let sig = signer.sign(body.as_bytes());
    let mut blob = Vec::with_capacity(68);
    blob.extend_from_slice(&id.to_be_bytes());
    blob.extend_from_slice(&sig);
    Ok(format!(
        "{body}\n{SIG_PREFIX}{name} {}\n",
        base64::engine::general_purpose::STANDARD.encode(blob)
    ))
}

/// Verifies a note against a verifier key string and returns its body.
pub fn verify_note<'a>(text: &'a str, verifier_key: &str) -> Result<&'a str, NoteError> {
    verify_note_with(text, &verifier_key.parse()?)
}

/// Verifies a note against a parsed verifier key and returns its body.
///
/// Signatures by other keys are ignored, as C2SP requires; one by this key that fails is an
/// error even if another line by the same key verifies, since a well-formed note never has one.
pub fn verify_note_with<'a>(text: &'a str, key: &VerifierKey) -> Result<&'a str, NoteError> {
    if text.chars().any(|c| c < ' ' && c != '\n') {
        return Err(NoteError::Malformed("contains a control character"));
    }
    let split = text
        .rfind("\n\n")
        .ok_or(NoteError::Malformed("no blank line before signatures"))?;
    let (body, sigs) = (&text[..split + 1], &text[split + 2..]);
    if sigs.is_empty() || !sigs.ends_with('\n') {
        return Err(NoteError::Malformed(
            "signature block must end with a newline",
        ));
    }
    let want_id = key.key_id();
    let mut found = false;
    for line in sigs[..sigs.len() - 1].split('\n') {
        let rest = line.strip_prefix(SIG_PREFIX).ok_or(NoteError::Malformed(
            "signature line must start with an em dash",
        ))?;
        let (name, b64) = rest
            .split_once(' ')
            .ok_or(NoteError::Malformed("signature line lacks a signature"))?;
        if name.is_empty() || name.contains('+') || b64.contains(' ') {
            return Err(NoteError::Malformed("bad signature line"));
        }
        let blob = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|_| NoteError::Malformed("signature is not base64"))?;
        if blob.len() < 5 {
            return Err(NoteError::Malformed("signature too short"));
        }
        let id = u32::from_be_bytes([blob[0], blob[1], blob[2], blob[3]]);
        if name != key.name || id != want_id {
            continue;
        }
        let sig: [u8; 64] = blob[4..]
            .try_into()
            .map_err(|_| NoteError::BadSignature(key.name.clone()))?;
        let vk = ed25519_dalek::VerifyingKey::from_bytes(&key.public_key)
            .map_err(|_| NoteError::BadSignature(key.name.clone()))?;
        vk.verify_strict(body.as_bytes(), &ed25519_dalek::Signature::from_bytes(&sig))
            .map_err(|_| NoteError::BadSignature(key.name.clone()))?;
        found = true;
    }
    if found {
        Ok(body)
    } else {
        Err(NoteError::NoMatchingSignature(key.name.clone()))
    }
}

/// An in-process Ed25519 [`NoteSigner`] for tests, examples and tools; production keys stay in
/// custos-crypto.
#[cfg(any(test, feature = "ed25519-signer"))]
pub struct Ed25519NoteSigner {
    name: String,
    key: ed25519_dalek::SigningKey,
}

#[cfg(any(test, feature = "ed25519-signer"))]
impl Ed25519NoteSigner {
    /// A signer named `name` with the Ed25519 key derived from a 32-byte seed.
    pub fn from_seed(name: &str, seed: [u8; 32]) -> Result<Self, NoteError> {
        check_name(name)?;
        Ok(Ed25519NoteSigner {
            name: name.to_owned(),
            key: ed25519_dalek::SigningKey::from_bytes(&seed),
        })
    }
}

#[cfg(any(test, feature = "ed25519-signer"))]
impl fmt::Debug for Ed25519NoteSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the key.
        f.debug_struct("Ed25519NoteSigner")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

#[cfg(any(test, feature = "ed25519-signer"))]
impl NoteSigner for Ed25519NoteSigner {
    fn name(&self) -> &str {
        &self.name
    }

    fn public_key(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    fn sign(&self, msg: &[u8]) -> [u8; 64] {
        use ed25519_dalek::Signer as _;
        self.key.sign(msg).to_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> Ed25519NoteSigner {
        Ed25519NoteSigner::from_seed("example.com/log", [7; 32]).unwrap()
    }

    #[test]
    fn round_trip() {
        let s = signer();
        let note = sign_note("hello\nworld\n", &s).unwrap();
        assert!(note.starts_with("hello\nworld\n\n\u{2014} example.com/log "));
        let vk = verifier_key(s.name(), &s.public_key());
        assert_eq!(verify_note(&note, &vk).unwrap(), "hello\nworld\n");
    }

    #[test]
    fn verifier_key_format() {
        let s = signer();
        let vk = verifier_key(s.name(), &s.public_key());
        let parts: Vec<&str> = vk.split('+').collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[0], "example.com/log");
        assert_eq!(parts[1].len(), 8);
        let parsed: VerifierKey = vk.parse().unwrap();
        assert_eq!(parsed.public_key(), s.public_key());
        // A key id that does not match name and key is refused.
        let bad = format!("{}+00000000+{}", parts[0], parts[2]);
        assert_eq!(bad.parse::<VerifierKey>(), Err(NoteError::KeyIdMismatch));
    }

    #[test]
    fn rejects_altered_body_signature_and_wrong_key() {
        let s = signer();
        let vk = verifier_key(s.name(), &s.public_key());
        let note = sign_note("body\n", &s).unwrap();
        let altered = note.replacen("body", "bodz", 1);
        assert_eq!(
            verify_note(&altered, &vk),
            Err(NoteError::BadSignature("example.com/log".into()))
        );
        let other = Ed25519NoteSigner::from_seed("example.com/log", [8; 32]).unwrap();
        let other_vk = verifier_key(other.name(), &other.public_key());
        assert!(matches!(
            verify_note(&note, &other_vk),
            Err(NoteError::NoMatchingSignature(_))
        ));
        // Flip a signature byte through base64.
        let sig_line = note.lines().last().unwrap();
        let b64 = sig_line.rsplit(' ').next().unwrap();
        let mut blob = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        blob[10] ^= 1;
        let forged = note.replace(
            b64,
            &base64::engine::general_purpose::STANDARD.encode(&blob),
        );
        assert!(matches!(
            verify_note(&forged, &vk),
            Err(NoteError::BadSignature(_))
        ));
    }

    #[test]
    fn malformed_inputs_are_errors() {
        let s = signer();
        assert!(sign_note("no newline", &s).is_err());
        assert!(sign_note("a\n\nb\n", &s).is_err());
        assert!(sign_note("", &s).is_err());
        let vk = verifier_key(s.name(), &s.public_key());
        for text in [
            "",
            "\n",
            "body\n",
            "body\n\n",
            "body\n\nx\n",
            "body\n\n\u{2014} \n",
            "body\n\n\u{2014} name !!!\n",
            "body\n\n\u{2014} example.com/log AAAA\n",
        ] {
            assert!(verify_note(text, &vk).is_err(), "{text:?}");
        }
        for key in [
            "",
            "a",
            "a+b",
            "a+0000000g+AA==",
            "a+00000000+",
            "a b+00000000+AA==",
        ] {
            assert!(key.parse::<VerifierKey>().is_err(), "{key:?}");
        }
    }
}
