//! Privacy-center links against a real deployment: the org registers its application's
//! public key in the `privacy_center` setting; a link the application signs for one of its
//! users lets that user in once (naming the subject by its keyed reference in the audit log)
//! and opens a session that ends with its lifetime or the subject's erasure; the link is
//! refused the second time, for another org, or once it expired.

mod common;

use base64::Engine;
use custos_audit::{AuditAction, AuditEvent, Outcome};
use custos_core::privacy_links::PrivacyCenter;
use custos_core::{CoreError, RequestContext, SettingsChange};
use custos_store::prelude::*;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use jsonwebtoken::{Algorithm, EncodingKey, Header};

fn app_key() -> (EncodingKey, serde_json::Value) {
    let signing = ed25519_dalek::SigningKey::from_bytes(&[3u8; 32]);
    let x =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(signing.verifying_key().to_bytes());
    let der = signing.to_pkcs8_der().unwrap();
    (
        EncodingKey::from_ed_der(der.as_bytes()),
        serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": x, "kid": "app"}),
    )
}

fn link(key: &EncodingKey, org: &str, sub: &str, jti: &str, now: i64) -> String {
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some("app".into());
    let claims = serde_json::json!({"sub": sub, "aud": org, "exp": now + 300, "jti": jti});
    jsonwebtoken::encode(&header, &claims, key).unwrap()
}

async fn link_events(env: &common::Env) -> Vec<AuditEvent> {
    env.store
        .audit_entries(None, 0, 10_000)
        .await
        .unwrap()
        .iter()
        .map(|e| AuditEvent::from_canonical_bytes(&e.leaf).unwrap())
        .filter(|e| e.action == AuditAction::PrivacyLink)
        .collect()
}

#[tokio::test]
async fn a_signed_link_lets_its_subject_in_once() {
    let env = common::env();
    let org = env.org("Acme").await;
    let other = env.org("Other").await;
    let owner = env.owner(&org).await;
    let (key, jwk) = app_key();
    let now = custos_core::Clock::now(&*env.clock).as_second();
    let context = RequestContext::default();

    // Before the org registers a key, no link works.
    let early = link(&key, &org, "user-42", "j-0", now);
    assert!(matches!(
        env.custos.privacy_link(&org, &early, &context).await,
        Err(CoreError::Unauthenticated)
    ));

    let change = SettingsChange {
        privacy_center: Some(Some(PrivacyCenter {
            link_keys: vec![jwk.clone()],
            frame_ancestors: vec!["https://app.acme.example".into()],
            ..PrivacyCenter::default()
        })),
        ..SettingsChange::default()
    };
    let settings = env
        .custos
        .update_settings(&owner, &org, change)
        .await
        .unwrap();
    assert_eq!(settings.privacy_center.unwrap().link_keys, vec![jwk]);

    let token = link(&key, &org, "user-42", "j-1", now);
    let signed = env
        .custos
        .privacy_link(&org, &token, &context)
        .await
        .unwrap();
    assert!(signed.token.starts_with("cupc_"));
    assert!(!format!("{signed:?}").contains(signed.token.as_str()));
    let subject = signed.subject.clone();
    assert_eq!(subject.subject.as_deref(), Some("user-42"));
    // The session names the same subject, in this org only.
    let again = env
        .custos
        .privacy_session(&org, &signed.token)
        .await
        .unwrap();
    assert_eq!(
        (again.subject.as_deref(), again.subject_ref.as_str()),
        (subject.subject.as_deref(), subject.subject_ref.as_str())
    );
    assert!(matches!(
        env.custos.privacy_session(&other, &signed.token).await,
        Err(CoreError::Unauthenticated)
    ));
    assert!(matches!(
        env.custos.privacy_session(&org, "cupc_not-a-session").await,
        Err(CoreError::Unauthenticated)
    ));
    assert_eq!(
        subject.subject_ref,
        env.vault.subject_ref(&org, "user-42").await.unwrap()
    );
    assert!(!format!("{subject:?}").contains("user-42"));
    // Once.
    assert!(matches!(
        env.custos.privacy_link(&org, &token, &context).await,
        Err(CoreError::Unauthenticated)
    ));
    // Not in another org (its audience is this one).
    let elsewhere = link(&key, &org, "user-42", "j-2", now);
    assert!(env
        .custos
        .privacy_link(&other, &elsewhere, &context)
        .await
        .is_err());

    let events = link_events(&env).await;
    let seen: Vec<(Outcome, Option<&str>)> = events
        .iter()
        .map(|e| (e.outcome, e.reason.as_deref()))
        .collect();
    assert_eq!(
        seen,
        [
            (Outcome::Denied, Some("privacy_center_not_enabled")),
            (Outcome::Success, None),
            (Outcome::Denied, Some("replayed")),
            (Outcome::Denied, Some("privacy_center_not_enabled")),
        ]
    );
    assert_eq!(
        events[1].details.subject_ref.as_deref(),
        Some(subject.subject_ref.as_str())
    );
    for event in &events {
        let bytes = event.to_canonical_bytes();
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains("user-42") && !text.contains("eyJ"), "{text}");
    }

    // A private key is refused, and changes nothing.
    let mut private = app_key().1;
    private["d"] = "AAAA".into();
    let err = env
        .custos
        .update_settings(
            &owner,
            &org,
            SettingsChange {
                privacy_center: Some(Some(PrivacyCenter {
                    link_keys: vec![private],
                    ..PrivacyCenter::default()
                })),
                ..SettingsChange::default()
            },
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("privacy_center.link_keys[0]"),
        "{err}"
    );
    let fresh = link(&key, &org, "user-7", "j-3", now);
    assert!(env
        .custos
        .privacy_link(&org, &fresh, &context)
        .await
        .is_ok());

    // Erasing the subject takes its identifier out of its sessions; they go on by reference.
    let later = link(&key, &org, "user-42", "j-4", now);
    let fresh_session = env
        .custos
        .privacy_link(&org, &later, &context)
        .await
        .unwrap();
    env.custos
        .erase_subject(&owner, &org, "user-42")
        .await
        .unwrap();
    let after = env
        .custos
        .privacy_session(&org, &fresh_session.token)
        .await
        .unwrap();
    assert_eq!(after.subject, None);
    assert_eq!(after.subject_ref, fresh_session.subject.subject_ref);

    // Past their expiry the used links are forgotten by the sweep; a replay is still refused
    // (by its `exp` now).
    env.clock.advance(jiff::Span::new().minutes(7));
    let summary = env
        .custos
        .sweep(&custos_core::SweepOptions::default(), &mut |_| {})
        .await
        .unwrap();
    // Three used links; user-7's session still runs (30 minutes).
    assert_eq!(summary.privacy_links_purged, 3, "{summary:?}");
    assert!(matches!(
        env.custos.privacy_link(&org, &fresh, &context).await,
        Err(CoreError::Unauthenticated)
    ));
    assert_eq!(
        link_events(&env).await.last().unwrap().reason.as_deref(),
        Some("expired")
    );
}
