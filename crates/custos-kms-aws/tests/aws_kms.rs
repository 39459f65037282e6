//! [`AwsKms`] against moto's KMS (started per test by `tools/s3-stand-in/serve.sh`; moto serves
//! KMS on the same port as S3), plus one canned KMS endpoint for the key-state errors moto does
//! not produce.

#[path = "../../../tools/s3-stand-in/stand_in.rs"]
mod stand_in;

use std::sync::Arc;

use aws_sdk_kms::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_kms::types::{KeySpec, KeyState, KeyUsageType};
use custos_crypto::{CryptoError, KeyStore, KeyVault, Kms, SecretKey, WrappedKey};
use custos_keystore_sqlite::SqliteKeyStore;
use custos_kms_aws::{AwsKms, AwsKmsConfig};
use stand_in::StandIn;

const ALIAS: &str = "alias/custos-root";

/// The SDK configuration for a KMS at `endpoint`, with the stand-in's explicit credentials.
fn sdk_config(endpoint: &str) -> aws_sdk_kms::Config {
    aws_sdk_kms::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(stand_in::REGION))
        .endpoint_url(endpoint)
        .http_client(custos_kms_aws::https_client())
        .credentials_provider(Credentials::new(
            stand_in::ACCESS_KEY_ID,
            stand_in::SECRET_ACCESS_KEY,
            None,
            None,
            "custos-kms-aws-tests",
        ))
        .build()
}

/// moto with an SDK client for setting keys up the way an operator would.
struct Moto {
    stand_in: StandIn,
    admin: aws_sdk_kms::Client,
}

impl Moto {
    /// Starts moto for `test`; `None` when the test is skipped.
    async fn start(test: &str) -> Option<Moto> {
        let stand_in = StandIn::start(test).await?;
        let admin = aws_sdk_kms::Client::from_conf(sdk_config(&stand_in.endpoint));
        Some(Moto { stand_in, admin })
    }

    /// Creates a symmetric encryption key named by `alias`; returns its key id.
    async fn create_root(&self, alias: &str) -> String {
        let key = self
            .admin
            .create_key()
            .description("Custos root (test)")
            // Real KMS defaults to these; moto 5.2.5 leaves the usage unset unless asked.
            .key_usage(KeyUsageType::EncryptDecrypt)
            .key_spec(KeySpec::SymmetricDefault)
            .send()
            .await
            .expect("CreateKey");
        let key_id = key.key_metadata.expect("key metadata").key_id;
        self.admin
            .create_alias()
            .alias_name(alias)
            .target_key_id(&key_id)
            .send()
            .await
            .expect("CreateAlias");
        key_id
    }

    /// An [`AwsKms`] on `key_id` with the stand-in's explicit SDK configuration.
    async fn kms(&self, key_id: &str) -> AwsKms {
        AwsKms::from_sdk_config(sdk_config(&self.stand_in.endpoint), key_id)
            .await
            .expect("AwsKms connects")
    }

    async fn key_state(&self, key_id: &str) -> KeyState {
        self.admin
            .describe_key()
            .key_id(key_id)
            .send()
            .await
            .expect("DescribeKey")
            .key_metadata
            .and_then(|m| m.key_state)
            .expect("key state")
    }

    /// Drops every key moto holds: what a KMS key's deletion is once its waiting period ends
    /// (moto keeps a key pending deletion for ever and cannot fast-forward the window).
    async fn delete_every_key(&self) {
        let r = reqwest::Client::new()
            .post(format!("{}/moto-api/reset", self.stand_in.endpoint))
            .send()
            .await
            .expect("moto reset");
        assert!(r.status().is_success(), "moto reset: {}", r.status());
    }
}

/// A fresh key with its bytes, to compare (only tests can see a `SecretKey`'s bytes).
fn key_with_bytes() -> (SecretKey, [u8; 32]) {
    let key = SecretKey::generate();
    let bytes = key.with_bytes(|b| <[u8; 32]>::try_from(b).unwrap());
    (key, bytes)
}

fn bytes_of(key: &SecretKey) -> [u8; 32] {
    key.with_bytes(|b| <[u8; 32]>::try_from(b).unwrap())
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn wrap_then_unwrap_gives_the_key_back() {
    let Some(moto) = Moto::start("wrap_then_unwrap_gives_the_key_back").await else {
        return;
    };
    moto.create_root(ALIAS).await;
    let kms = moto.kms(ALIAS).await;
    assert_eq!(kms.current_version(), 1);
    assert!(
        kms.key_arn().starts_with("arn:aws:kms:"),
        "{}",
        kms.key_arn()
    );
    assert_eq!(
        format!("{kms:?}"),
        format!("AwsKms {{ key_id: {ALIAS:?}, .. }}")
    );

    let (key, bytes) = key_with_bytes();
    let wrapped = kms.wrap(b"org-1/v1", &key).await.unwrap();
    assert_eq!(wrapped.wrapped_by, 1);
    assert!(!contains(&wrapped.blob, &bytes), "the blob holds the key");
    assert_eq!(
        bytes_of(&kms.unwrap(b"org-1/v1", &wrapped).await.unwrap()),
        bytes
    );
    // Wrapping again gives another blob of the same key.
    let again = kms.wrap(b"org-1/v1", &key).await.unwrap();
    assert_ne!(again.blob, wrapped.blob);
    assert_eq!(
        bytes_of(&kms.unwrap(b"org-1/v1", &again).await.unwrap()),
        bytes
    );
}

#[tokio::test]
async fn a_blob_under_other_aad_tampered_or_of_another_key_is_refused() {
    let Some(moto) =
        Moto::start("a_blob_under_other_aad_tampered_or_of_another_key_is_refused").await
    else {
        return;
    };
    moto.create_root(ALIAS).await;
    moto.create_root("alias/other-root").await;
    let kms = moto.kms(ALIAS).await;
    let other = moto.kms("alias/other-root").await;
    let (key, _) = key_with_bytes();
    let wrapped = kms.wrap(b"org-1/v1", &key).await.unwrap();

    // Moved to another org or version: the encryption context differs.
    for aad in [&b"org-2/v1"[..], b"org-1/v2", b""] {
        assert!(matches!(
            kms.unwrap(aad, &wrapped).await,
            Err(CryptoError::Unauthentic)
        ));
        assert!(matches!(
            kms.rewrap(aad, &wrapped).await,
            Err(CryptoError::Unauthentic)
        ));
    }
    // Modified, or not a KMS blob at all.
    let mut tampered = wrapped.clone();
    let last = tampered.blob.len() - 1;
    tampered.blob[last] ^= 1;
    assert!(matches!(
        kms.unwrap(b"org-1/v1", &tampered).await,
        Err(CryptoError::Unauthentic)
    ));
    let garbage = WrappedKey {
        wrapped_by: 1,
        blob: vec![7; 40],
    };
    assert!(matches!(
        kms.unwrap(b"org-1/v1", &garbage).await,
        Err(CryptoError::Unauthentic)
    ));
    // A blob of another KMS key, even with the right context: real KMS answers
    // IncorrectKeyException (Unauthentic), moto AccessDeniedException (a service error).
    let foreign = other.wrap(b"org-1/v1", &key).await.unwrap();
    let err = kms.unwrap(b"org-1/v1", &foreign).await.unwrap_err();
    assert!(
        matches!(&err, CryptoError::Unauthentic)
            || matches!(&err, CryptoError::Service(s) if s == "KMS Decrypt failed: AccessDeniedException"),
        "{err:?}"
    );
}

#[tokio::test]
async fn rotation_keeps_old_blobs_and_rewrap_gives_current_version_blobs() {
    let Some(moto) =
        Moto::start("rotation_keeps_old_blobs_and_rewrap_gives_current_version_blobs").await
    else {
        return;
    };
    let key_id = moto.create_root(ALIAS).await;
    let kms = moto.kms(ALIAS).await;
    let (key, bytes) = key_with_bytes();
    let old = kms.wrap(b"org-1/v1", &key).await.unwrap();
    assert_eq!(old.wrapped_by, 1);

    assert_eq!(kms.rotate().await.unwrap(), 2);
    assert_eq!(kms.current_version(), 2);
    assert_eq!(
        bytes_of(&kms.unwrap(b"org-1/v1", &old).await.unwrap()),
        bytes
    );
    let moved = kms.rewrap(b"org-1/v1", &old).await.unwrap();
    assert_eq!(moved.wrapped_by, 2);
    assert_ne!(moved.blob, old.blob);
    assert_eq!(
        bytes_of(&kms.unwrap(b"org-1/v1", &moved).await.unwrap()),
        bytes
    );
    // The context stays bound through the re-wrap.
    assert!(matches!(
        kms.unwrap(b"org-2/v1", &moved).await,
        Err(CryptoError::Unauthentic)
    ));

    // The version lives in KMS: another process connecting later agrees on it, and a
    // rotation from either is seen by the next connect.
    let restarted = moto.kms(&key_id).await;
    assert_eq!(restarted.current_version(), 2);
    assert_eq!(restarted.rotate().await.unwrap(), 3);
    assert_eq!(moto.kms(ALIAS).await.current_version(), 3);
    let newest = restarted.rewrap(b"org-1/v1", &moved).await.unwrap();
    assert_eq!(newest.wrapped_by, 3);
    for blob in [&old, &moved, &newest] {
        assert_eq!(
            bytes_of(&kms.unwrap(b"org-1/v1", blob).await.unwrap()),
            bytes
        );
    }
}

#[tokio::test]
async fn a_disabled_then_deleted_root_key_refuses_unwrap() {
    let Some(moto) = Moto::start("a_disabled_then_deleted_root_key_refuses_unwrap").await else {
        return;
    };
    let key_id = moto.create_root(ALIAS).await;
    let kms = moto.kms(ALIAS).await;
    let (key, _) = key_with_bytes();
    let wrapped = kms.wrap(b"org-1/v1", &key).await.unwrap();

    moto.admin
        .disable_key()
        .key_id(&key_id)
        .send()
        .await
        .expect("DisableKey");
    assert_eq!(moto.key_state(&key_id).await, KeyState::Disabled);
    // A Custos that starts now refuses the key outright. (moto 5.2.5 still decrypts with a
    // disabled or pending-deletion key; real KMS answers DisabledException or
    // KMSInvalidStateException: see key_state_errors_are_service_errors_naming_the_code.)
    let err = AwsKms::from_sdk_config(sdk_config(&moto.stand_in.endpoint), ALIAS)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, CryptoError::Service(s) if s.contains("not enabled (state Disabled)")),
        "{err:?}"
    );
    moto.admin
        .schedule_key_deletion()
        .key_id(&key_id)
        .pending_window_in_days(7)
        .send()
        .await
        .expect("ScheduleKeyDeletion");
    assert_eq!(moto.key_state(&key_id).await, KeyState::PendingDeletion);

    // The window ends and the key is gone: nothing on the Custos side can unwrap any more.
    moto.delete_every_key().await;
    let err = kms.unwrap(b"org-1/v1", &wrapped).await.unwrap_err();
    assert!(
        matches!(&err, CryptoError::Service(s) if s.starts_with("KMS Decrypt failed: ")),
        "{err:?}"
    );
    assert!(kms.rewrap(b"org-1/v1", &wrapped).await.is_err());
    assert!(kms.wrap(b"org-1/v1", &key).await.is_err());
}

/// The org key aad of `custos_crypto`'s vault (`custos/org-key/v1\0{org}\0{version}`): the
/// test unwraps stored rows through KMS itself to compare them with the key.
fn org_key_aad(org: &str, version: u32) -> Vec<u8> {
    format!("custos/org-key/v1\0{org}\0{version}").into_bytes()
}

#[tokio::test]
async fn a_key_vault_over_aws_kms_keeps_only_kms_ciphertexts() {
    let Some(moto) = Moto::start("a_key_vault_over_aws_kms_keeps_only_kms_ciphertexts").await
    else {
        return;
    };
    moto.create_root(ALIAS).await;
    moto.create_root("alias/other-root").await;
    let kms = Arc::new(moto.kms(ALIAS).await);
    let store = Arc::new(SqliteKeyStore::in_memory().unwrap());
    let vault = KeyVault::new(kms.clone(), store.clone());

    vault.ensure_org("acme").await.unwrap();
    let subject = vault
        .subject_ref("acme", "alice@example.com")
        .await
        .unwrap();
    let subject_key = vault.content_key("acme", Some(&subject)).await.unwrap();
    let org_key = vault.content_key("acme", None).await.unwrap();
    let by_subject = subject_key.seal("acme", "r1", "body", b"about alice");
    let by_org = org_key.seal("acme", "r2", "body", b"org-wide");

    let report = vault.rotate_root().await.unwrap();
    assert_eq!((report.new_version, report.rewrapped), (2, 1));
    assert_eq!(
        subject_key.open("acme", "r1", "body", &by_subject).unwrap(),
        b"about alice"
    );

    // A Custos that starts afresh (no cached keys) over the same store and KMS key opens both.
    let fresh = KeyVault::new(Arc::new(moto.kms(ALIAS).await), store.clone());
    let reopened = fresh
        .content_key_for("acme", subject_key.key_ref())
        .await
        .unwrap();
    assert_eq!(
        reopened.open("acme", "r1", "body", &by_subject).unwrap(),
        b"about alice"
    );
    let reopened = fresh
        .content_key_for("acme", org_key.key_ref())
        .await
        .unwrap();
    assert_eq!(
        reopened.open("acme", "r2", "body", &by_org).unwrap(),
        b"org-wide"
    );

    // The store holds KMS ciphertexts only: none is (or contains) the org key, each opens
    // through KMS under its own context only, and another KMS key cannot open it.
    let other = moto.kms("alias/other-root").await;
    let rows = store.org_keys("acme").await.unwrap();
    assert_eq!(rows.len(), 1);
    for (version, wrapped) in &rows {
        assert_eq!(wrapped.wrapped_by, 2, "re-wrapped under the current root");
        let org_key = bytes_of(
            &kms.unwrap(&org_key_aad("acme", *version), wrapped)
                .await
                .unwrap(),
        );
        assert_ne!(wrapped.blob.len(), 32);
        assert!(
            !contains(&wrapped.blob, &org_key),
            "a stored blob holds the org key"
        );
        assert!(matches!(
            kms.unwrap(&org_key_aad("other", *version), wrapped).await,
            Err(CryptoError::Unauthentic)
        ));
        assert!(other
            .unwrap(&org_key_aad("acme", *version), wrapped)
            .await
            .is_err());
    }
    // And no root key exists on this side: once the KMS key is gone, a vault over the same
    // store and the same (still connected) client opens nothing.
    moto.delete_every_key().await;
    let orphan = KeyVault::new(kms.clone(), store.clone());
    assert!(matches!(
        orphan.content_key_for("acme", org_key.key_ref()).await,
        Err(CryptoError::Service(_))
    ));
    assert!(orphan
        .content_key_for("acme", subject_key.key_ref())
        .await
        .is_err());
}

#[tokio::test]
async fn connect_takes_credentials_from_the_standard_chain() {
    let Some(moto) = Moto::start("connect_takes_credentials_from_the_standard_chain").await else {
        return;
    };
    moto.create_root(ALIAS).await;
    // The only test that reads credentials from the environment; every other one passes
    // them explicitly, so setting them here races with nothing.
    std::env::set_var("AWS_ACCESS_KEY_ID", stand_in::ACCESS_KEY_ID);
    std::env::set_var("AWS_SECRET_ACCESS_KEY", stand_in::SECRET_ACCESS_KEY);
    std::env::remove_var("AWS_SESSION_TOKEN");
    let config = AwsKmsConfig {
        region: Some(stand_in::REGION.into()),
        endpoint_url: Some(moto.stand_in.endpoint.clone()),
        ..AwsKmsConfig::new(ALIAS)
    };
    let kms = AwsKms::connect(&config).await.unwrap();
    let (key, bytes) = key_with_bytes();
    let wrapped = kms.wrap(b"aad", &key).await.unwrap();
    assert_eq!(
        bytes_of(&kms.unwrap(b"aad", &wrapped).await.unwrap()),
        bytes
    );

    let err = AwsKms::connect(&AwsKmsConfig {
        key_id: "alias/no-such-key".into(),
        ..config
    })
    .await
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "key service: KMS DescribeKey failed: NotFoundException"
    );
}

/// A KMS endpoint on loopback that answers `DescribeKey` and `ListKeyRotations` for an
/// enabled key, and every other call with the KMS error `code` (HTTP 400, awsJson 1.1);
/// returns its URL. Real KMS answers `Decrypt` this way for a disabled key
/// (`DisabledException`) or one pending deletion (`KMSInvalidStateException`).
async fn canned_kms(code: &'static str) -> String {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut socket = BufReader::new(socket);
                loop {
                    let (mut target, mut length) = (String::new(), 0usize);
                    loop {
                        let mut line = String::new();
                        if socket.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        let line = line.trim_end();
                        if line.is_empty() {
                            break;
                        }
                        if let Some((name, value)) = line.split_once(':') {
                            match name.to_ascii_lowercase().as_str() {
                                "x-amz-target" => target = value.trim().to_string(),
                                "content-length" => length = value.trim().parse().unwrap(),
                                _ => {}
                            }
                        }
                    }
                    let mut body = vec![0; length];
                    socket.read_exact(&mut body).await.unwrap();
                    let (status, answer) = match target.as_str() {
                        "TrentService.DescribeKey" => (
                            "200 OK",
                            r#"{"KeyMetadata":{"KeyId":"k1","Arn":"arn:aws:kms:us-east-1:111122223333:key/k1","Enabled":true,"KeyState":"Enabled","KeyUsage":"ENCRYPT_DECRYPT","KeySpec":"SYMMETRIC_DEFAULT"}}"#.to_string(),
                        ),
                        "TrentService.ListKeyRotations" => {
                            ("200 OK", r#"{"Rotations":[],"Truncated":false}"#.to_string())
                        }
                        _ => (
                            "400 Bad Request",
                            format!(r#"{{"__type":"{code}","message":"refused by the canned KMS"}}"#),
                        ),
                    };
                    let response = format!(
                        "HTTP/1.1 {status}\r\ncontent-type: application/x-amz-json-1.1\r\ncontent-length: {}\r\n\r\n{answer}",
                        answer.len()
                    );
                    if socket
                        .get_mut()
                        .write_all(response.as_bytes())
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    url
}

#[tokio::test]
async fn key_state_errors_are_service_errors_naming_the_code() {
    for code in ["DisabledException", "KMSInvalidStateException"] {
        let kms = AwsKms::from_sdk_config(sdk_config(&canned_kms(code).await), "alias/custos-root")
            .await
            .unwrap();
        let blob = vec![0x5a; 48];
        let wrapped = WrappedKey {
            wrapped_by: 1,
            blob: blob.clone(),
        };
        for err in [
            kms.unwrap(b"aad", &wrapped).await.unwrap_err(),
            kms.rewrap(b"aad", &wrapped).await.unwrap_err(),
        ] {
            let text = err.to_string();
            assert!(matches!(err, CryptoError::Service(_)), "{err:?}");
            assert!(text.ends_with(&format!("failed: {code}")), "{text}");
            assert!(!text.contains("canned"), "KMS's message leaked: {text}");
        }
        let (key, bytes) = key_with_bytes();
        let text = kms.wrap(b"aad", &key).await.unwrap_err().to_string();
        assert_eq!(text, format!("key service: KMS Encrypt failed: {code}"));
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD;
        assert!(!text.contains(&b64.encode(bytes)) && !text.contains(&b64.encode(&blob)));
    }
}
