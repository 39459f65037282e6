//! Signed tree heads in the C2SP tlog-checkpoint format (<https://c2sp.org/tlog-checkpoint>).
//!
//! The body is three lines (origin, decimal tree size, base64 root hash), then optional
//! extension lines. Custos adds one extension, `time <RFC 3339 UTC>`, after the standard lines
//! so that generic checkpoint parsers, which ignore extensions, still read the tree head.

use base64::Engine as _;

use crate::merkle::Hash;
use crate::note::{sign_note, verify_note_with, NoteError, NoteSigner, VerifierKey};

/// The prefix of Custos's time extension line.
const TIME_PREFIX: &str = "time ";

/// A tree head: the log's identity, its size and root, and when it was taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's unique name, a schema-less URL such as `custos.example.com/audit`.
    pub origin: String,
    /// The number of leaves in the tree.
    pub size: u64,
    /// The Merkle tree hash of those leaves.
    pub root: Hash,
    /// When the checkpoint was taken, as the `time` extension line.
    pub time: Option<jiff::Timestamp>,
}

/// Why a checkpoint body or signed checkpoint was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// The body is not newline-terminated lines.
    #[error("checkpoint body must end with a newline")]
    MissingNewline,
    /// A standard line is missing.
    #[error("checkpoint lacks its {0} line")]
    MissingLine(&'static str),
    /// The origin is empty or has control characters.
    #[error("invalid checkpoint origin")]
    InvalidOrigin,
    /// The size line is not a canonical decimal `u64`.
    #[error("invalid checkpoint size {0:?}")]
    InvalidSize(String),
    /// The root line is not base64 of 32 bytes.
    #[error("invalid checkpoint root hash {0:?}")]
    InvalidRoot(String),
    /// The time extension is not an RFC 3339 timestamp.
    #[error("invalid checkpoint time {0:?}")]
    InvalidTime(String),
    /// An extension line is empty.
    #[error("empty extension line")]
    EmptyExtension,
    /// The note around the checkpoint is malformed or its signature is bad.
    #[error(transparent)]
    Note(#[from] NoteError),
    /// The signed checkpoint is for a different log than expected.
    #[error("checkpoint origin {got:?} is not the expected {expected:?}")]
    WrongOrigin {
        /// The origin the caller expected.
        expected: String,
        /// The origin in the checkpoint.
        got: String,
    },
}

impl Checkpoint {
    /// The note body: origin, size, base64 root, then the time extension if set.
    pub fn to_body(&self) -> String {
        let mut s = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            base64::engine::general_purpose::STANDARD.encode(self.root)
        );
        if let Some(t) = self.time {
            s.push_str(TIME_PREFIX);
            s.push_str(&t.to_string());
            s.push('\n');
        }
        s
    }

    /// Parses a checkpoint body; unknown extension lines are ignored, as the format requires.
    pub fn parse(body: &str) -> Result<Self, CheckpointError> {
        let body = body
            .strip_suffix('\n')
            .ok_or(CheckpointError::MissingNewline)?;
        let mut lines = body.split('\n');
        let origin = lines.next().ok_or(CheckpointError::MissingLine("origin"))?;
        if !valid_origin(origin) {
            return Err(CheckpointError::InvalidOrigin);
        }
        let size_line = lines.next().ok_or(CheckpointError::MissingLine("size"))?;
        let size = parse_size(size_line)?;
        let root_line = lines.next().ok_or(CheckpointError::MissingLine("root"))?;
        let root = crate::proof::b64::decode(root_line)
            .map_err(|_| CheckpointError::InvalidRoot(root_line.to_owned()))?;
        let mut time = None;
        for ext in lines {
            if ext.is_empty() {
                return Err(CheckpointError::EmptyExtension);
            }
            if let Some(t) = ext.strip_prefix(TIME_PREFIX) {
                time = Some(
                    t.parse::<jiff::Timestamp>()
                        .map_err(|_| CheckpointError::InvalidTime(t.to_owned()))?,
                );
            }
        }
        Ok(Checkpoint {
            origin: origin.to_owned(),
            size,
            root,
            time,
        })
    }

    /// Signs the checkpoint as a C2SP note.
    pub fn sign(&self, signer: &dyn NoteSigner) -> Result<String, CheckpointError> {
        if !valid_origin(&self.origin) {
            return Err(CheckpointError::InvalidOrigin);
        }
        Ok(sign_note(&self.to_body(), signer)?)
    }

    /// Verifies a signed checkpoint note against a verifier key string and parses it.
    pub fn verify_signed(note: &str, verifier_key: &str) -> Result<Self, CheckpointError> {
        let key: VerifierKey = verifier_key.parse()?;
        Self::parse(verify_note_with(note, &key)?)
    }

    /// Like [`Checkpoint::verify_signed`], and also requires the given origin, so a checkpoint
    /// of another log signed by the same key is not accepted.
    pub fn verify_signed_for(
        note: &str,
        verifier_key: &str,
        origin: &str,
    ) -> Result<Self, CheckpointError> {
        let cp = Self::verify_signed(note, verifier_key)?;
        if cp.origin != origin {
            return Err(CheckpointError::WrongOrigin {
                expected: origin.to_owned(),
                got: cp.origin,
            });
        }
        Ok(cp)
    }
}

fn valid_origin(origin: &str) -> bool {
    !origin.is_empty() && !origin.chars().any(char::is_control)
}

/// Canonical decimal only: no sign, no leading zeros, so one size has exactly one body.
fn parse_size(s: &str) -> Result<u64, CheckpointError> {
    let bad = || CheckpointError::InvalidSize(s.to_owned());
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || (s.len() > 1 && s.starts_with('0'))
    {
        return Err(bad());
    }
    s.parse().map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::note::{verifier_key, Ed25519NoteSigner};

    fn cp() -> Checkpoint {
        Checkpoint {
            origin: "custos.example.com/audit".into(),
            size: 12345,
            root: [0xab; 32],
            time: Some("2026-01-02T03:04:05Z".parse().unwrap()),
        }
    }

    #[test]
    fn body_is_three_standard_lines_then_time() {
        assert_eq!(
            cp().to_body(),
            "custos.example.com/audit\n12345\nq6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s=\n\
             time 2026-01-02T03:04:05Z\n"
        );
        assert_eq!(Checkpoint::parse(&cp().to_body()).unwrap(), cp());
        let no_time = Checkpoint { time: None, ..cp() };
        assert_eq!(Checkpoint::parse(&no_time.to_body()).unwrap(), no_time);
    }

    #[test]
    fn signed_round_trip_and_origin_check() {
        let s = Ed25519NoteSigner::from_seed("custos.example.com/audit", [1; 32]).unwrap();
        let vk = verifier_key(s.name(), &s.public_key());
        let note = cp().sign(&s).unwrap();
        assert_eq!(Checkpoint::verify_signed(&note, &vk).unwrap(), cp());
        assert!(Checkpoint::verify_signed_for(&note, &vk, "custos.example.com/audit").is_ok());
        assert!(matches!(
            Checkpoint::verify_signed_for(&note, &vk, "other"),
            Err(CheckpointError::WrongOrigin { .. })
        ));
        let altered = note.replacen("12345", "12346", 1);
        assert!(Checkpoint::verify_signed(&altered, &vk).is_err());
    }

    #[test]
    fn rejects_malformed_bodies() {
        let root = "q6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s=";
        for body in [
            "".to_string(),
            "origin".into(),
            "origin\n".into(),
            "origin\n5\n".into(),
            format!("\n5\n{root}\n"),
            format!("o\n05\n{root}\n"),
            format!("o\n+5\n{root}\n"),
            format!("o\n-5\n{root}\n"),
            format!("o\n99999999999999999999\n{root}\n"),
            "o\n5\nAAAA\n".into(),
            format!("o\n5\n{root}\n\n"),
            format!("o\n5\n{root}\ntime yesterday\n"),
        ] {
            assert!(Checkpoint::parse(&body).is_err(), "{body:?}");
        }
        // Unknown extensions are ignored.
        let with_ext = format!("o\n0\n{root}\nother extension\n");
        assert_eq!(Checkpoint::parse(&with_ext).unwrap().size, 0);
    }
}
