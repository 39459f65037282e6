//! The root of Custos's key hierarchy held in AWS KMS.
//!
//! What it is for: [`AwsKms`] implements [`custos_crypto::Kms`] with one symmetric KMS key (by
//! id, ARN or alias such as `alias/custos-root`). Org keys are wrapped with KMS `Encrypt`,
//! unwrapped with `Decrypt` and moved to the current root version with `ReEncrypt`, each bound
//! to the caller's associated data as the KMS encryption context. The root key never leaves
//! KMS: Custos never sees it, holds no copy of it, and cannot unwrap anything once the KMS key
//! is disabled or deleted (the key's owner can destroy every org key at once).
//!
//! What it is not: a place to keep wrapped keys. The KMS ciphertext blobs it returns are
//! stored by the key store ([`custos_crypto::KeyStore`]), like the local keyring's.
//!
//! # Root versions
//!
//! A root version is a generation of the KMS key's material, not a separate KMS key:
//! [`Kms::rotate`] calls `RotateKeyOnDemand` on the one key and waits until `ListKeyRotations`
//! shows the rotation done, and the current version is `1 + the number of completed
//! rotations` (on-demand and automatic), as KMS reports it. So the version is persisted by KMS
//! itself, never by Custos, and every process that connects to the key agrees on it. KMS keeps
//! every past material of a key and names it inside each ciphertext blob, so a blob wrapped
//! before any number of rotations still decrypts; `Encrypt` and `ReEncrypt` always use the
//! current material, so [`Kms::rewrap`] yields a blob of the current version without the org
//! key's plaintext leaving KMS. `WrappedKey::wrapped_by` is therefore a label (the version
//! this process knew when it wrapped), not what selects the material: `unwrap` ignores it.
//!
//! Why not one KMS key per version behind an alias: the blobs already name their material,
//! one key keeps the IAM policy, the key id in the configuration and the "destroy" switch in
//! one place, and Custos needs no `kms:CreateKey` or alias rights. The cost: KMS allows a
//! bounded number of on-demand rotations per key (25 at the time of writing); past it
//! `rotate` fails with `LimitExceededException` and the operator rotates with a new key.
//!
//! # IAM
//!
//! `kms:DescribeKey` and `kms:ListKeyRotations` (connect), `kms:Encrypt`, `kms:Decrypt`,
//! `kms:ReEncryptFrom` and `kms:ReEncryptTo` (wrapping), `kms:RotateKeyOnDemand` (rotation).

#![warn(missing_docs)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_kms::config::{BehaviorVersion, Region};
use aws_sdk_kms::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{KeySpec, KeyState, KeyUsageType};
use base64::Engine;
use custos_crypto::{CryptoError, Kms, SecretKey, WrappedKey};
use zeroize::Zeroize;

/// The encryption-context key under which the (base64) associated data is bound.
const CONTEXT_KEY: &str = "custos";

/// One attempt of one KMS call (connect, send, answer) may take this long.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// One KMS call with its retries may take this long.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(30);
/// How long [`Kms::rotate`] waits for KMS to finish an on-demand rotation it started.
const ROTATION_WAIT: Duration = Duration::from_secs(300);
/// How often [`Kms::rotate`] asks whether the rotation is done.
const ROTATION_POLL: Duration = Duration::from_millis(500);

/// The HTTPS client KMS calls go through: rustls with ring (the workspace's TLS provider).
pub fn https_client() -> aws_sdk_kms::config::SharedHttpClient {
    use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

/// Where the root key is: the KMS key and, optionally, region and endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsKmsConfig {
    /// The KMS key: key id, key ARN, alias name (`alias/custos-root`) or alias ARN.
    pub key_id: String,
    /// The AWS region; `None` takes it from the standard chain (`AWS_REGION`, profile, IMDS).
    pub region: Option<String>,
    /// Another KMS endpoint (a VPC endpoint, or a local stand-in such as moto).
    pub endpoint_url: Option<String>,
}

impl AwsKmsConfig {
    /// A configuration for `key_id` with region and endpoint from the standard chain.
    pub fn new(key_id: impl Into<String>) -> Self {
        AwsKmsConfig {
            key_id: key_id.into(),
            region: None,
            endpoint_url: None,
        }
    }
}

/// A [`Kms`] whose root key is one symmetric AWS KMS key (see the crate doc for versions).
pub struct AwsKms {
    client: aws_sdk_kms::Client,
    /// The key as configured (an alias stays an alias), for messages and `Debug`.
    key_id: String,
    /// The key's ARN, resolved once at connect: calls name this, so repointing the alias
    /// later does not move a running process to another key.
    key_arn: String,
    /// The root version this process knows as current.
    version: AtomicU32,
    /// One rotation at a time from this process.
    rotating: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for AwsKms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsKms")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl AwsKms {
    /// Connects with credentials from the standard AWS chain (environment, profile, web
    /// identity, container or instance role) and checks that the key can wrap keys.
    pub async fn connect(config: &AwsKmsConfig) -> Result<Self, CryptoError> {
        let timeouts = aws_config::timeout::TimeoutConfig::builder()
            .operation_attempt_timeout(ATTEMPT_TIMEOUT)
            .operation_timeout(OPERATION_TIMEOUT)
            .build();
        let mut loader = aws_config::defaults(BehaviorVersion::latest()).timeout_config(timeouts);
        if let Some(region) = &config.region {
            loader = loader.region(Region::new(region.clone()));
        }
        if let Some(endpoint) = &config.endpoint_url {
            loader = loader.endpoint_url(endpoint);
        }
        loader = loader.http_client(https_client());
        let sdk = loader.load().await;
        Self::with_client(aws_sdk_kms::Client::new(&sdk), &config.key_id).await
    }

    /// Connects with an SDK configuration built by the caller (tests pass explicit
    /// credentials and a local endpoint this way) and checks that the key can wrap keys.
    pub async fn from_sdk_config(
        config: aws_sdk_kms::Config,
        key_id: &str,
    ) -> Result<Self, CryptoError> {
        Self::with_client(aws_sdk_kms::Client::from_conf(config), key_id).await
    }

    async fn with_client(client: aws_sdk_kms::Client, key_id: &str) -> Result<Self, CryptoError> {
        let described = client
            .describe_key()
            .key_id(key_id)
            .send()
            .await
            .map_err(|e| kms_error("DescribeKey", e))?;
        let meta = described
            .key_metadata
            .ok_or_else(|| missing("DescribeKey", "key metadata"))?;
        if meta.key_usage != Some(KeyUsageType::EncryptDecrypt)
            || meta.key_spec != Some(KeySpec::SymmetricDefault)
        {
            let usage = meta.key_usage.as_ref().map_or("none", |u| u.as_str());
            let spec = meta.key_spec.as_ref().map_or("none", |s| s.as_str());
            return Err(CryptoError::Unsupported(format!(
                "KMS key {key_id} has usage {usage} and spec {spec}; the root must be a \
                 symmetric encryption key (ENCRYPT_DECRYPT, SYMMETRIC_DEFAULT)"
            )));
        }
        if meta.key_state != Some(KeyState::Enabled) {
            let state = meta.key_state.as_ref().map_or("unknown", |s| s.as_str());
            return Err(CryptoError::Service(format!(
                "KMS key {key_id} is not enabled (state {state}): nothing it wrapped can be \
                 unwrapped"
            )));
        }
        let key_arn = meta.arn.ok_or_else(|| missing("DescribeKey", "key ARN"))?;
        let kms = AwsKms {
            client,
            key_id: key_id.to_string(),
            key_arn,
            version: AtomicU32::new(0),
            rotating: tokio::sync::Mutex::new(()),
        };
        let version = kms.version_from_kms().await?;
        kms.version.store(version, Ordering::SeqCst);
        Ok(kms)
    }

    /// The KMS key as configured (id, ARN or alias).
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The ARN of the KMS key, resolved when this connected.
    pub fn key_arn(&self) -> &str {
        &self.key_arn
    }

    /// The root version new wraps are labelled with (as of connect or this process's last
    /// rotation).
    pub fn current_version(&self) -> u32 {
        self.version.load(Ordering::SeqCst)
    }

    /// `1 + the completed rotations` of the key, as KMS lists them.
    async fn version_from_kms(&self) -> Result<u32, CryptoError> {
        let mut rotations: usize = 0;
        let mut marker: Option<String> = None;
        loop {
            let page = self
                .client
                .list_key_rotations()
                .key_id(&self.key_arn)
                .set_marker(marker.take())
                .send()
                .await
                .map_err(|e| kms_error("ListKeyRotations", e))?;
            rotations += page.rotations().len();
            match page.next_marker {
                Some(next) if page.truncated => marker = Some(next),
                _ => break,
            }
        }
        u32::try_from(rotations)
            .ok()
            .and_then(|r| r.checked_add(1))
            .ok_or_else(|| missing("ListKeyRotations", "a countable number of rotations"))
    }

    /// The encryption context binding a blob to `aad`: `{"custos": base64(aad)}`.
    fn context(aad: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(aad)
    }
}

/// A well-formed answer lacked a field: names the operation and the field, nothing else.
fn missing(operation: &str, what: &str) -> CryptoError {
    CryptoError::Service(format!("KMS {operation} answered without {what}"))
}

/// Maps an SDK error to a [`CryptoError`]: the operation and KMS's error code, never the
/// request (which holds the key or the blob) nor KMS's message.
///
/// A ciphertext KMS refuses to decrypt (`InvalidCiphertextException`: wrong encryption
/// context, modified or not a KMS blob; `IncorrectKeyException`: a blob of another KMS key)
/// is [`CryptoError::Unauthentic`], like a local AES-GCM failure. Everything else, key state
/// included (`DisabledException`, `KMSInvalidStateException` for a key pending deletion), is
/// [`CryptoError::Service`].
fn kms_error<E, R>(operation: &str, err: SdkError<E, R>) -> CryptoError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match &err {
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or("an unnamed error");
            classify(operation, code)
        }
        SdkError::TimeoutError(_) => CryptoError::Service(format!("KMS {operation} timed out")),
        SdkError::DispatchFailure(failure) => {
            let why = if failure.is_timeout() {
                "timed out"
            } else if failure.is_io() {
                "connection failed"
            } else {
                "transport error"
            };
            CryptoError::Service(format!("KMS {operation} could not be sent ({why})"))
        }
        SdkError::ResponseError(_) => {
            CryptoError::Service(format!("KMS {operation}: unreadable answer"))
        }
        // Construction failures name what was missing (credentials, region, endpoint); the
        // request body is never part of them.
        _ => CryptoError::Service(format!(
            "KMS {operation} could not be built: {}",
            aws_sdk_kms::error::DisplayErrorContext(&err)
        )),
    }
}

/// The error for a KMS error `code` answered to `operation`.
fn classify(operation: &str, code: &str) -> CryptoError {
    match code {
        "InvalidCiphertextException" | "IncorrectKeyException" => CryptoError::Unauthentic,
        _ => CryptoError::Service(format!("KMS {operation} failed: {code}")),
    }
}

#[async_trait::async_trait]
impl Kms for AwsKms {
    async fn wrap(&self, aad: &[u8], key: &SecretKey) -> Result<WrappedKey, CryptoError> {
        let version = self.current_version();
        // The SDK owns this copy (and the base64 request body made from it) until the request
        // is sent and drops it unwiped: that is the one copy the SDK does not let us wipe.
        let plaintext = key.with_bytes(|bytes| Blob::new(bytes.to_vec()));
        let out = self
            .client
            .encrypt()
            .key_id(&self.key_arn)
            .plaintext(plaintext)
            .encryption_context(CONTEXT_KEY, Self::context(aad))
            .send()
            .await
            .map_err(|e| kms_error("Encrypt", e))?;
        let blob = out
            .ciphertext_blob
            .ok_or_else(|| missing("Encrypt", "a ciphertext"))?;
        Ok(WrappedKey {
            wrapped_by: version,
            blob: blob.into_inner(),
        })
    }

    async fn unwrap(&self, aad: &[u8], wrapped: &WrappedKey) -> Result<SecretKey, CryptoError> {
        let out = self
            .client
            .decrypt()
            .key_id(&self.key_arn)
            .ciphertext_blob(Blob::new(wrapped.blob.clone()))
            .encryption_context(CONTEXT_KEY, Self::context(aad))
            .send()
            .await
            .map_err(|e| kms_error("Decrypt", e))?;
        if out.key_id.as_deref() != Some(self.key_arn.as_str()) {
            // KMS refuses a blob of another key when KeyId is given; this only guards an
            // answer that does not say which key decrypted.
            return Err(CryptoError::Unauthentic);
        }
        let mut plain = out
            .plaintext
            .ok_or_else(|| missing("Decrypt", "a plaintext"))?
            .into_inner();
        let key = <[u8; 32]>::try_from(plain.as_slice()).map(|mut bytes| {
            let key = SecretKey::from_bytes(bytes);
            bytes.zeroize();
            key
        });
        plain.zeroize();
        key.map_err(|_| CryptoError::Malformed("KMS returned a key of the wrong length"))
    }

    async fn rewrap(&self, aad: &[u8], wrapped: &WrappedKey) -> Result<WrappedKey, CryptoError> {
        let version = self.current_version();
        let context = Self::context(aad);
        let out = self
            .client
            .re_encrypt()
            .ciphertext_blob(Blob::new(wrapped.blob.clone()))
            .source_key_id(&self.key_arn)
            .source_encryption_context(CONTEXT_KEY, context.clone())
            .destination_key_id(&self.key_arn)
            .destination_encryption_context(CONTEXT_KEY, context)
            .send()
            .await
            .map_err(|e| kms_error("ReEncrypt", e))?;
        let blob = out
            .ciphertext_blob
            .ok_or_else(|| missing("ReEncrypt", "a ciphertext"))?;
        Ok(WrappedKey {
            wrapped_by: version,
            blob: blob.into_inner(),
        })
    }

    async fn rotate(&self) -> Result<u32, CryptoError> {
        let _one_at_a_time = self.rotating.lock().await;
        let before = self.version_from_kms().await?;
        self.client
            .rotate_key_on_demand()
            .key_id(&self.key_arn)
            .send()
            .await
            .map_err(|e| kms_error("RotateKeyOnDemand", e))?;
        // KMS rotates asynchronously: until ListKeyRotations shows it, Encrypt may still use
        // the old material, so return (and let the caller re-wrap) only once it is done.
        let started = Instant::now();
        loop {
            let now = self.version_from_kms().await?;
            if now > before {
                self.version.store(now, Ordering::SeqCst);
                return Ok(now);
            }
            if started.elapsed() >= ROTATION_WAIT {
                return Err(CryptoError::Service(format!(
                    "KMS RotateKeyOnDemand started but was not done after {}s; run the \
                     rotation again once ListKeyRotations shows it",
                    ROTATION_WAIT.as_secs()
                )));
            }
            tokio::time::sleep(ROTATION_POLL).await;
        }
    }

    async fn ping(&self) -> Result<(), CryptoError> {
        // Reachable and still usable: a disabled or deleted key is as good as unreachable.
        let described = self
            .client
            .describe_key()
            .key_id(&self.key_arn)
            .send()
            .await
            .map_err(|e| kms_error("DescribeKey", e))?;
        match described.key_metadata.and_then(|m| m.key_state) {
            Some(KeyState::Enabled) => Ok(()),
            state => Err(CryptoError::Service(format!(
                "KMS key {} is not enabled (state {})",
                self.key_id,
                state.as_ref().map_or("unknown", |s| s.as_str())
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_ciphertexts_are_unauthentic_and_other_codes_name_the_operation() {
        assert!(matches!(
            classify("Decrypt", "InvalidCiphertextException"),
            CryptoError::Unauthentic
        ));
        assert!(matches!(
            classify("ReEncrypt", "IncorrectKeyException"),
            CryptoError::Unauthentic
        ));
        let text = classify("Decrypt", "DisabledException").to_string();
        assert_eq!(text, "key service: KMS Decrypt failed: DisabledException");
    }

    #[test]
    fn the_context_is_the_base64_of_the_aad() {
        assert_eq!(
            AwsKms::context(b"custos/org-key/v1\0o\x001"),
            "Y3VzdG9zL29yZy1rZXkvdjEAbwAx"
        );
        assert_ne!(AwsKms::context(b"a"), AwsKms::context(b"b"));
    }
}
