//! `custos cert verify` end to end with the real binary: exit 0 on a valid certificate, exit 1
//! naming the failing check, exit 2 on bad input; `--org/--subject` computes the keyed subject
//! reference from a real key store.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;

use custos_cert::fixture::{self, Fixture};
use custos_crypto::{KeyVault, LocalKms};
use custos_keystore_sqlite::SqliteKeyStore;

struct Case {
    tmp: tempfile::TempDir,
    fx: Fixture,
    cert: PathBuf,
}

impl Case {
    /// A certificate for `subject_ref`, written to `cert.json` in a fresh temp dir.
    fn new(subject_ref: &str) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let fx = fixture::build(subject_ref);
        let cert = tmp.path().join("cert.json");
        std::fs::write(&cert, fx.certificate.to_json_pretty()).unwrap();
        Case { tmp, fx, cert }
    }

    fn data(&self) -> PathBuf {
        self.tmp.path().join("data")
    }

    fn run(&self, args: &[&str]) -> Output {
        std::process::Command::new(env!("CARGO_BIN_EXE_custos"))
            .arg("--data")
            .arg(self.data())
            .args(args)
            .current_dir(self.tmp.path())
            .env_remove("CUSTOS_KEYS")
            .env_remove("CUSTOS_ROOT_KEY")
            .env("CUSTOS_LOG", "warn")
            .output()
            .unwrap()
    }

    /// Runs `cert verify <cert> args...`, requires exit `code`, returns stdout + stderr.
    fn verify(&self, file: &Path, args: &[&str], code: i32) -> String {
        let mut all = vec!["cert", "verify", file.to_str().unwrap()];
        all.extend_from_slice(args);
        let out = self.run(&all);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.code(), Some(code), "custos {all:?}:\n{text}");
        text
    }
}

#[test]
fn valid_certificates_verify_with_the_key_given_inline_or_from_a_file() {
    let c = Case::new("ab12");
    let out = c.verify(&c.cert, &["--key", &c.fx.verifier_key], 0);
    assert!(
        out.starts_with("ok: certificate 00000000-0000-0000-0000-000000000001 verified (signed by the supplied key; audit entry 3 in the checkpoint of size 7)"),
        "{out}"
    );
    let key_file = c.tmp.path().join("key.txt");
    std::fs::write(&key_file, format!("{}\n", c.fx.verifier_key)).unwrap();
    c.verify(&c.cert, &["--key", &format!("@{}", key_file.display())], 0);
    // Without a key to trust, a valid certificate is consistent but not proved: exit 1, unless
    // the embedded key is trusted explicitly.
    let own = c.verify(&c.cert, &[], 1);
    assert!(own.contains("self-asserted"), "{own}");
    let own = c.verify(&c.cert, &["--trust-embedded-key"], 0);
    assert!(own.contains("the certificate's own key"), "{own}");
    assert!(!c.data().exists(), "verifying creates no data directory");
}

#[test]
fn invalid_certificates_exit_1_naming_the_check() {
    let c = Case::new("ab12");
    let out = c.verify(&c.cert, &["--key", &c.fx.other_verifier_key], 1);
    assert!(out.contains("certificate invalid: signature: "), "{out}");

    let mut doc = serde_json::to_value(&c.fx.certificate).unwrap();
    doc["checkpoint"] = c.fx.other_checkpoint.clone().into();
    c.fx.resign(&mut doc);
    let swapped = c.tmp.path().join("swapped.json");
    std::fs::write(&swapped, serde_json::to_vec(&doc).unwrap()).unwrap();
    let out = c.verify(&swapped, &["--key", &c.fx.verifier_key], 1);
    assert!(out.contains("certificate invalid: checkpoint: "), "{out}");

    let garbage = c.tmp.path().join("garbage.json");
    std::fs::write(&garbage, "{\"format\": 1}").unwrap();
    let out = c.verify(&garbage, &["--trust-embedded-key"], 1);
    assert!(out.contains("certificate invalid: format: "), "{out}");
}

#[test]
fn bad_input_exits_2() {
    let c = Case::new("ab12");
    c.verify(&c.tmp.path().join("missing.json"), &[], 2);
    c.verify(&c.cert, &["--key", "not-a-key"], 2);
    c.verify(&c.cert, &["--key", "@/nonexistent/key.txt"], 2);
    c.verify(&c.cert, &["--org", "org-1"], 2);
    // No deployment key store at --data: the subject cannot be checked, and nothing is created.
    let out = c.verify(&c.cert, &["--org", "org-1", "--subject", "alice"], 2);
    assert!(out.contains("no key store"), "{out}");
    assert!(!c.data().exists());
}

#[tokio::test]
async fn subject_is_checked_through_the_deployment_key_store() {
    // A real key store with org-1's key, laid out as `custos` lays out <data>/keys.
    let tmp = tempfile::tempdir().unwrap();
    let keys = tmp.path().join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    let vault = KeyVault::new(
        Arc::new(LocalKms::open_or_create(&keys.join("root.keyring")).unwrap()),
        Arc::new(SqliteKeyStore::open(&keys.join("keys.db")).unwrap()),
    );
    vault.ensure_org("org-1").await.unwrap();
    let alice = vault.subject_ref("org-1", "alice").await.unwrap();
    drop(vault);

    let c = Case::new(&alice);
    let keys_arg = keys.to_str().unwrap();
    let key = c.fx.verifier_key.clone();
    let out = c.verify(
        &c.cert,
        &[
            "--key",
            &key,
            "--keys",
            keys_arg,
            "--org",
            "org-1",
            "--subject",
            "alice",
        ],
        0,
    );
    assert!(out.contains("; subject matches)"), "{out}");
    let out = c.verify(
        &c.cert,
        &[
            "--key",
            &key,
            "--keys",
            keys_arg,
            "--org",
            "org-1",
            "--subject",
            "bob",
        ],
        1,
    );
    assert!(out.contains("certificate invalid: subject: "), "{out}");
    assert!(!out.contains(&alice) && !out.contains("bob"), "{out}");
    let out = c.verify(
        &c.cert,
        &[
            "--key",
            &key,
            "--keys",
            keys_arg,
            "--org",
            "org-9",
            "--subject",
            "alice",
        ],
        2,
    );
    assert!(out.contains("--org org-9"), "{out}");
}
