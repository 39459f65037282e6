//! E-mail through a real SMTP server (aiosmtpd, started by the test): the message arrives with
//! its sender, recipient, subject, body and a Message-ID that is the same on a repeat.

#[path = "../../../tools/notify-stand-in/stand_in.rs"]
mod stand_in;

use std::time::Duration;

use custos_notify::email::{Email, SmtpConfig, SmtpSender};
use custos_notify::DeliveryError;

#[tokio::test]
async fn a_message_reaches_a_real_smtp_server() {
    let Some(server) = stand_in::Receiver::smtp("a_message_reaches_a_real_smtp_server").await
    else {
        return;
    };
    let sender = SmtpSender::new(&SmtpConfig {
        host: "127.0.0.1".into(),
        port: server.port,
        from: "custos@example.com".into(),
        credentials: None,
        starttls: false,
        extra_roots: None,
    })
    .unwrap();
    let email = Email {
        to: "security@example.com".into(),
        subject: "[Custos] alert denied-burst fired".into(),
        body: "Rule denied-burst fired: 5 events in 1m.\n".into(),
        id: "msg_0193a1b2".into(),
    };
    sender.send(&email).await.unwrap();
    sender.send(&email).await.unwrap();
    let got = server
        .wait_for(Duration::from_secs(10), |m| m.len() == 2)
        .await;
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0]["from"], "custos@example.com");
    assert_eq!(got[0]["to"], serde_json::json!(["security@example.com"]));
    assert_eq!(got[0]["subject"], "[Custos] alert denied-burst fired");
    assert_eq!(got[0]["message_id"], "<msg_0193a1b2@example.com>");
    assert_eq!(got[1]["message_id"], got[0]["message_id"]);
    assert!(got[0]["body"].as_str().unwrap().contains("5 events in 1m"));
}

#[tokio::test]
async fn a_server_that_is_not_there_is_a_transient_failure() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let sender = SmtpSender::new(&SmtpConfig {
        host: "127.0.0.1".into(),
        port,
        from: "custos@example.com".into(),
        credentials: None,
        starttls: false,
        extra_roots: None,
    })
    .unwrap();
    let err = sender
        .send(&Email {
            to: "security@example.com".into(),
            subject: "s".into(),
            body: "b".into(),
            id: "msg_1".into(),
        })
        .await
        .unwrap_err();
    assert!(matches!(err, DeliveryError::Unreachable(_)), "{err:?}");
    assert!(err.is_transient());
    assert!(!err.to_string().contains("security@"), "{err}");
}

/// STARTTLS against a server whose certificate a private CA issued: refused until the CA is
/// trusted (the policy's `[network] ca_file`), then the message goes over TLS.
#[tokio::test]
async fn starttls_needs_the_servers_ca_and_then_encrypts() {
    let test = "starttls_needs_the_servers_ca_and_then_encrypts";
    let Some(server) = stand_in::Receiver::smtp_tls(test).await else {
        return;
    };
    let config = |extra_roots| SmtpConfig {
        host: "localhost".into(),
        port: server.port,
        from: "custos@example.com".into(),
        credentials: None,
        starttls: true,
        extra_roots,
    };
    let email = Email {
        to: "security@example.com".into(),
        subject: "over TLS".into(),
        body: "b\n".into(),
        id: "msg_tls".into(),
    };
    let untrusted = SmtpSender::new(&config(None)).unwrap();
    let err = untrusted.send(&email).await.unwrap_err();
    assert!(matches!(err, DeliveryError::Unreachable(_)), "{err:?}");
    let ca = std::fs::read(server.ca_pem()).unwrap();
    let trusted = SmtpSender::new(&config(Some(ca))).unwrap();
    trusted.send(&email).await.unwrap();
    let got = server
        .wait_for(Duration::from_secs(10), |m| !m.is_empty())
        .await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["subject"], "over TLS");
    assert_eq!(got[0]["tls"], true, "{got:?}");
}
