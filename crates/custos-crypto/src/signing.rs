//! The deployment's Ed25519 signing key, for audit checkpoints and deletion certificates.

use std::path::Path;

use base64::Engine;
use ed25519_dalek::{Signer, SigningKey};

use crate::CryptoError;

/// The deployment's signing identity. The private half never leaves this type.
pub struct DeploymentSigner {
    name: String,
    key: SigningKey,
}

impl std::fmt::Debug for DeploymentSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeploymentSigner")
            .field("name", &self.name)
            .field("public_key", &self.public_key_base64())
            .finish()
    }
}

impl DeploymentSigner {
    /// Loads the key at `path` (base64 seed, mode 0600), creating it on first use.
    pub fn open_or_create(path: &Path, name: &str) -> Result<Self, CryptoError> {
        let io = |source| CryptoError::Io {
            path: path.display().to_string(),
            source,
        };
        let key = if path.exists() {
            let text = std::fs::read_to_string(path).map_err(io)?;
            let mut seed = base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .map_err(|_| CryptoError::BadKeyring {
                    source_name: path.display().to_string(),
                    reason: "signing key is not base64".into(),
                })?;
            let arr: [u8; 32] =
                seed.as_slice()
                    .try_into()
                    .map_err(|_| CryptoError::BadKeyring {
                        source_name: path.display().to_string(),
                        reason: "signing key must be a 32-byte seed".into(),
                    })?;
            zeroize::Zeroize::zeroize(&mut seed);
            SigningKey::from_bytes(&arr)
        } else {
            let key = SigningKey::generate(&mut rand::rngs::OsRng);
            let mut text = base64::engine::general_purpose::STANDARD.encode(key.to_bytes());
            crate::write_secret_file(path, text.as_bytes()).map_err(io)?;
            zeroize::Zeroize::zeroize(&mut text);
            key
        };
        Ok(DeploymentSigner {
            name: name.to_string(),
            key,
        })
    }

    /// A signer from a 32-byte seed held by the key hierarchy (a shared key store).
    pub(crate) fn from_seed(name: &str, seed: &crate::SecretKey) -> Self {
        DeploymentSigner {
            name: name.to_string(),
            key: SigningKey::from_bytes(seed.expose()),
        }
    }

    /// A throwaway signer, for tests.
    pub fn ephemeral(name: &str) -> Self {
        DeploymentSigner {
            name: name.to_string(),
            key: SigningKey::generate(&mut rand::rngs::OsRng),
        }
    }

    /// The signer's name (the checkpoint origin / note key name).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The 32-byte Ed25519 public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    /// The public key, base64.
    pub fn public_key_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.public_key())
    }

    /// An Ed25519 signature over `message`.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.key.sign(message).to_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_persists_and_signs_verifiably() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signing.key");
        let a = DeploymentSigner::open_or_create(&path, "custos").unwrap();
        let b = DeploymentSigner::open_or_create(&path, "custos").unwrap();
        assert_eq!(a.public_key(), b.public_key());
        let sig = a.sign(b"msg");
        let vk = ed25519_dalek::VerifyingKey::from_bytes(&b.public_key()).unwrap();
        vk.verify_strict(b"msg", &ed25519_dalek::Signature::from_bytes(&sig))
            .unwrap();
        assert!(!format!("{a:?}")
            .contains(&base64::engine::general_purpose::STANDARD.encode(a.key.to_bytes())));
    }
}
