//! Writes a certificate fixture for `tools/audit-verify/check-cert.sh`:
//!
//! - `certificate.json`: a real certificate over a real in-memory Merkle log
//! - `other-certificate.json`: another valid certificate over the same log (for swaps)
//! - `verifier-key.txt`: the key that signs the checkpoint and both certificates
//! - `other-verifier-key.txt`, `other-checkpoint.txt`: another deployment's key, and the same
//!   tree head signed by it
//! - `subject-ref.txt`: the first certificate's subject reference
//! - `test-signing-seed.hex`: the fixture key's seed, public and for tests only, so that the
//!   tamper tests can re-sign altered certificates the way a dishonest key holder could
//!
//! `cargo run -p custos-cert --example cert_fixture -- DIR`

use std::path::PathBuf;

use custos_cert::fixture;

const SUBJECT_REF: &str = "5d41402abc4b2a76b9719d911017c592ae1d3a56b0b8a0f5b2c1a7e1c8d3f0a1";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .ok_or("usage: fixture DIR (writes certificate.json and keys there)")?,
    );
    std::fs::create_dir_all(&dir)?;
    let fx = fixture::build(SUBJECT_REF);
    let write = |name: &str, text: String| std::fs::write(dir.join(name), text);
    write("certificate.json", fx.certificate.to_json_pretty() + "\n")?;
    write(
        "other-certificate.json",
        fx.other_certificate.to_json_pretty() + "\n",
    )?;
    write("verifier-key.txt", format!("{}\n", fx.verifier_key))?;
    write(
        "other-verifier-key.txt",
        format!("{}\n", fx.other_verifier_key),
    )?;
    write("other-checkpoint.txt", fx.other_checkpoint.clone())?;
    write("subject-ref.txt", format!("{SUBJECT_REF}\n"))?;
    write(
        "test-signing-seed.hex",
        format!("{}\n", hex_encode(&fixture::SEED)),
    )?;
    println!("wrote a certificate fixture to {}", dir.display());
    Ok(())
}

fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
