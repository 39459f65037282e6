//! PII scanned wherever it enters: record metadata (keys and values), file names, file
//! metadata and text file bodies (streamed, entities split across chunks), under a `redact`
//! category and a `block` one; and the subject id stored nowhere in plaintext.

mod common;

use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use serde_json::{json, Value};

use common::{contains, files_under};
use custos_core::{
    Caller, CoreError, Custos, FileUpload, ManualClock, NewHold, NewMember, NewOrg, NewRecord,
    Principal,
};
use custos_crypto::{KeyVault, LocalKms};
use custos_keystore_sqlite::SqliteKeyStore;
use custos_policy::Policy;
use custos_store::prelude::*;
use custos_store::{ObjectLocation, Objects, OrgScope, SqliteStore};

const EMAIL: &str = "ana.lopez@example.com";
const SSN: &str = "536-22-8726";
const EMAIL_MARK: &str = "[EMAIL_ADDRESS_REDACTED]";
const SSN_MARK: &str = "[US_SSN_REDACTED]";

/// The built-in policy plus a redacting, a blocking and a tokenizing category.
fn policy() -> Policy {
    let extra = r#"
[categories.redacted_notes]
retention = "30d"
access = { roles = ["owner", "admin", "member"] }
pii = { detect = ["email", "us_ssn"], action = "redact" }

[categories.blocked_notes]
retention = "30d"
access = { roles = ["owner", "admin", "member"] }
pii = { detect = ["email", "us_ssn"], action = "block" }

[categories.token_notes]
retention = "30d"
access = { roles = ["owner", "admin", "member"] }
pii = { detect = ["email", "us_ssn"], action = "tokenize" }
"#;
    Policy::parse(&format!("{}{extra}", Policy::BUILTIN_TOML), "test.toml").unwrap()
}

struct Env {
    dir: tempfile::TempDir,
    custos: Custos,
    store: Arc<SqliteStore>,
}

fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let objects = Objects::open(&ObjectLocation::File(data.join("objects"))).unwrap();
    let store = Arc::new(SqliteStore::open(&data.join("custos.db")).unwrap());
    let kms = LocalKms::open_or_create(&data.join("keys/root.keyring")).unwrap();
    let keys = SqliteKeyStore::open(&data.join("keys/keys.db")).unwrap();
    let vault = Arc::new(KeyVault::new(Arc::new(kms), Arc::new(keys)));
    let clock = Arc::new(ManualClock::new("2026-01-01T00:00:00Z".parse().unwrap()));
    let custos = Custos::new(Arc::new(policy()), store.clone(), objects, vault, clock);
    Env { dir, custos, store }
}

impl Env {
    /// A new org and an owner of it.
    async fn org(&self) -> (String, Caller) {
        let admin = Caller::new(Principal::Admin);
        let req = NewOrg {
            name: "Acme".into(),
            region: None,
            owner: None,
        };
        let org = self.custos.create_org(&admin, req).await.unwrap().org.id;
        let member = NewMember {
            name: "o".into(),
            roles: vec!["owner".into()],
            groups: vec![],
            mfa: false,
            identity: None,
        };
        let key = self
            .custos
            .add_member(&admin, &org, member)
            .await
            .unwrap()
            .api_key;
        let owner = Caller::new(self.custos.authenticate(&key).await.unwrap());
        (org, owner)
    }

    async fn scope(&self, org: &str) -> OrgScope {
        self.store.org(org).await.unwrap().unwrap().0
    }

    /// Audit events of `org` from position `from` on.
    async fn events_since(&self, org: &str, from: u64) -> Vec<custos_audit::AuditEvent> {
        let scope = self.scope(org).await;
        self.store
            .audit_entries(Some(&scope), from, u32::MAX)
            .await
            .unwrap()
            .iter()
            .map(|e| custos_audit::AuditEvent::from_canonical_bytes(&e.leaf).unwrap())
            .collect()
    }

    /// How many records `category` holds in `org`, in any state.
    async fn stored_in(&self, org: &str, category: &str) -> usize {
        let filter = custos_store::RecordFilter {
            category: Some(category.into()),
            ..Default::default()
        };
        let scope = self.scope(org).await;
        self.store
            .list_records(&scope, &filter, None, 1000)
            .await
            .unwrap()
            .len()
    }

    /// Every object file (blobs, staging parts) under the object store.
    fn objects(&self) -> Vec<std::path::PathBuf> {
        let dir = self.dir.path().join("data/objects");
        if !dir.exists() {
            return Vec::new();
        }
        files_under(&dir).into_iter().map(|(p, _)| p).collect()
    }

    /// Uploads `body` in the given chunks.
    async fn upload(
        &self,
        caller: &Caller,
        org: &str,
        upload: FileUpload,
        chunks: Vec<Vec<u8>>,
    ) -> Result<custos_core::CreatedRecord, CoreError> {
        let stream = futures::stream::iter(
            chunks
                .into_iter()
                .map(|c| Ok::<_, std::io::Error>(Bytes::from(c))),
        );
        self.custos.upload_file(caller, org, upload, stream).await
    }

    /// A file record's stored body.
    async fn download(&self, caller: &Caller, org: &str, id: &str) -> (u64, Vec<u8>) {
        let d = self.custos.download_file(caller, org, id).await.unwrap();
        let bytes: Vec<u8> = d.body.map(|c| c.unwrap().to_vec()).concat().await;
        (d.size, bytes)
    }
}

fn record(category: &str, metadata: Value) -> NewRecord {
    NewRecord {
        category: category.into(),
        subject: None,
        content: json!({ "text": "nothing personal" }),
        metadata: Some(metadata),
    }
}

/// `text` split into chunks at the given byte offsets.
fn split_at(text: &str, cuts: &[usize]) -> Vec<Vec<u8>> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut from = 0;
    for &c in cuts {
        out.push(bytes[from..c].to_vec());
        from = c;
    }
    out.push(bytes[from..].to_vec());
    out
}

fn text_upload(category: &str, name: &str) -> FileUpload {
    FileUpload {
        category: category.into(),
        subject: None,
        file_name: Some(name.into()),
        content_type: Some("text/plain; charset=utf-8".into()),
        metadata: None,
    }
}

fn assert_clean(what: &str, text: &str) {
    assert!(
        !text.contains(EMAIL) && !text.contains(SSN),
        "{what} keeps PII: {text}"
    );
}

#[tokio::test]
async fn metadata_values_and_keys_are_redacted_in_single_and_batch_creates() {
    let env = env();
    let (org, owner) = env.org().await;
    let metadata = json!({
        "contact": format!("mail {EMAIL}"),
        EMAIL: "the key is an address",
        format!("SSN {SSN}"): {"nested": [format!("ssn {SSN}")]},
    });
    let created = env
        .custos
        .create_record(&owner, &org, record("redacted_notes", metadata.clone()))
        .await
        .unwrap();
    assert_eq!(created.pii["EMAIL_ADDRESS"], 2);
    assert_eq!(created.pii["US_SSN"], 2);
    let view = env
        .custos
        .get_record(&owner, &org, &created.id)
        .await
        .unwrap();
    assert_clean("metadata", &view.metadata.to_string());
    assert_eq!(view.metadata["contact"], format!("mail {EMAIL_MARK}"));
    assert_eq!(view.metadata[EMAIL_MARK], "the key is an address");
    assert_eq!(
        view.metadata[format!("SSN {SSN_MARK}")]["nested"][0],
        format!("ssn {SSN_MARK}")
    );
    assert_eq!(view.pii, json!({"EMAIL_ADDRESS": 2, "US_SSN": 2}));

    // A small batch (one pass) and a large one (sealed and stored chunk by chunk).
    for n in [3, 300] {
        let reqs = (0..n)
            .map(|_| record("redacted_notes", metadata.clone()))
            .collect();
        let created = env.custos.create_records(&owner, &org, reqs).await.unwrap();
        for c in [&created[0], &created[n - 1]] {
            assert_eq!(c.pii["EMAIL_ADDRESS"], 2);
            let view = env.custos.get_record(&owner, &org, &c.id).await.unwrap();
            assert_clean("batch metadata", &view.metadata.to_string());
            assert_eq!(view.metadata[EMAIL_MARK], "the key is an address");
        }
    }
}

#[tokio::test]
async fn metadata_pii_refuses_a_blocking_write_naming_positions_only() {
    let env = env();
    let (org, owner) = env.org().await;
    let cases = [
        (
            json!({"note": format!("mail {EMAIL}")}),
            "EMAIL_ADDRESS at metadata.note[5..26]",
        ),
        (
            json!({ EMAIL: 1 }),
            "EMAIL_ADDRESS at metadata{key 0}[0..21]",
        ),
        (
            json!({"a": {"b": [format!("SSN {SSN}")]}}),
            "US_SSN at metadata.a.b[0][4..15]",
        ),
        (
            json!({ format!("SSN {SSN}"): "x" }),
            "US_SSN at metadata{key 0}[4..15]",
        ),
    ];
    for (metadata, expected) in cases {
        let from = env.store.audit_size().await.unwrap();
        let err = env
            .custos
            .create_record(&owner, &org, record("blocked_notes", metadata))
            .await
            .unwrap_err();
        let CoreError::PiiBlocked(message) = &err else {
            panic!("expected a PII block, got {err:?}")
        };
        assert!(message.contains(expected), "{message}");
        assert_clean("refusal", message);
        let events = env.events_since(&org, from).await;
        let actions: Vec<&str> = events.iter().map(|e| e.action.as_str()).collect();
        assert_eq!(actions, ["pii.blocked"]);
        assert_clean("audit", &format!("{events:?}"));
    }
    // Also in a batch: the whole batch is refused.
    let reqs = vec![
        record("blocked_notes", json!({"ok": "fine"})),
        record("blocked_notes", json!({ EMAIL: "key" })),
    ];
    let refused = env.custos.create_records(&owner, &org, reqs).await;
    assert!(
        matches!(refused, Err(CoreError::PiiBlocked(_))),
        "{refused:?}"
    );
    assert_eq!(env.stored_in(&org, "blocked_notes").await, 0);
}

/// Issue 23 (5): a key of `content` is data like a value. A `block` rule refuses it (naming
/// its position, never its text), a `redact` rule rewrites it and keeps two keys that redact
/// alike, and a `tokenize` rule's pseudonym of it is revealed again.
#[tokio::test]
async fn content_keys_are_scanned_and_transformed_like_values() {
    let env = env();
    let (org, owner) = env.org().await;
    let hostile = json!({ "zed@mailpit.io": { "536-22-8471": "x" } });
    let content = |c: &Value| NewRecord {
        category: String::new(),
        subject: None,
        content: c.clone(),
        metadata: None,
    };
    let err = env
        .custos
        .create_record(
            &owner,
            &org,
            NewRecord {
                category: "blocked_notes".into(),
                ..content(&hostile)
            },
        )
        .await
        .unwrap_err();
    let CoreError::PiiBlocked(message) = &err else {
        panic!("expected a PII block, got {err:?}")
    };
    assert!(
        message.contains("EMAIL_ADDRESS at ${key 0}[0..14]"),
        "{message}"
    );
    assert!(
        message.contains("US_SSN at $.{key 0}{key 0}[0..11]"),
        "{message}"
    );
    assert!(
        !message.contains("zed@") && !message.contains("8471"),
        "{message}"
    );
    assert_eq!(env.stored_in(&org, "blocked_notes").await, 0);

    let colliding = json!({ EMAIL: "first", "bo@example.org": "second", "plain": {SSN: 1} });
    let created = env
        .custos
        .create_record(
            &owner,
            &org,
            NewRecord {
                category: "redacted_notes".into(),
                ..content(&colliding)
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (created.pii["EMAIL_ADDRESS"], created.pii["US_SSN"]),
        (2, 1)
    );
    let view = env
        .custos
        .get_record(&owner, &org, &created.id)
        .await
        .unwrap();
    assert_eq!(
        view.content,
        json!({
            EMAIL_MARK: "first",
            format!("{EMAIL_MARK} (2)"): "second",
            "plain": { SSN_MARK: 1 },
        })
    );

    let created = env
        .custos
        .create_record(
            &owner,
            &org,
            NewRecord {
                category: "token_notes".into(),
                ..content(&colliding)
            },
        )
        .await
        .unwrap();
    let view = env
        .custos
        .get_record(&owner, &org, &created.id)
        .await
        .unwrap();
    assert_clean("tokenized content", &view.content.to_string());
    assert_eq!(view.content.as_object().unwrap().len(), 3);
    let revealed = env
        .custos
        .reveal_record(&owner, &org, &created.id)
        .await
        .unwrap();
    assert_eq!(revealed.content, colliding);
}

#[tokio::test]
async fn file_names_and_metadata_follow_the_rule() {
    let env = env();
    let (org, owner) = env.org().await;
    let name = format!("{EMAIL} SSN {SSN}.bin");
    let upload = FileUpload {
        category: "redacted_notes".into(),
        subject: None,
        file_name: Some(name.clone()),
        content_type: Some("application/octet-stream".into()),
        metadata: Some(json!({ EMAIL: format!("ssn {SSN}") })),
    };
    let created = env
        .upload(&owner, &org, upload, vec![b"\x00\x01binary".to_vec()])
        .await
        .unwrap();
    assert_eq!(created.pii["EMAIL_ADDRESS"], 2);
    assert_eq!(created.pii["US_SSN"], 2);
    let view = env
        .custos
        .get_record(&owner, &org, &created.id)
        .await
        .unwrap();
    let stored_name = view.file_name.clone().unwrap();
    assert_eq!(stored_name, format!("{EMAIL_MARK} SSN {SSN_MARK}.bin"));
    assert_eq!(
        view.metadata,
        json!({ EMAIL_MARK: format!("ssn {SSN_MARK}") })
    );
    let download = env
        .custos
        .download_file(&owner, &org, &created.id)
        .await
        .unwrap();
    assert_eq!(download.file_name.as_deref(), Some(stored_name.as_str()));

    // A blocking category refuses the upload before anything is stored.
    for (name, metadata, expected) in [
        (name.as_str(), None, "EMAIL_ADDRESS at file_name[0..21]"),
        (
            "ok.bin",
            Some(json!({ "k": format!("SSN {SSN}") })),
            "US_SSN at metadata.k[4..15]",
        ),
    ] {
        let from = env.store.audit_size().await.unwrap();
        let upload = FileUpload {
            category: "blocked_notes".into(),
            subject: None,
            file_name: Some(name.into()),
            content_type: Some("application/octet-stream".into()),
            metadata,
        };
        let err = env
            .upload(&owner, &org, upload, vec![b"bytes".to_vec()])
            .await
            .unwrap_err();
        let CoreError::PiiBlocked(message) = &err else {
            panic!("expected a PII block, got {err:?}")
        };
        assert!(message.contains(expected), "{message}");
        assert_clean("refusal", message);
        let events = env.events_since(&org, from).await;
        let actions: Vec<&str> = events.iter().map(|e| e.action.as_str()).collect();
        assert_eq!(actions, ["pii.blocked"]);
    }
    assert_eq!(env.stored_in(&org, "blocked_notes").await, 0);
    assert_eq!(env.objects().len(), 1, "only the first upload's blob");
}

/// A text body with the e-mail and the SSN each split by a chunk boundary.
fn split_body() -> (String, Vec<Vec<u8>>) {
    let body =
        format!("Dear team,\nplease write to {EMAIL} about it.\nHer SSN {SSN} is on file. é\n");
    let in_email = body.find(EMAIL).unwrap() + 6;
    let in_ssn = body.find(SSN).unwrap() + 5;
    // Also split inside the two-byte 'é'.
    let in_char = body.find('é').unwrap() + 1;
    let chunks = split_at(&body, &[in_email, in_ssn, in_char]);
    (body, chunks)
}

#[tokio::test]
async fn a_text_body_is_redacted_across_chunk_boundaries() {
    let env = env();
    let (org, owner) = env.org().await;
    let (body, chunks) = split_body();
    let created = env
        .upload(
            &owner,
            &org,
            text_upload("redacted_notes", "letter.txt"),
            chunks,
        )
        .await
        .unwrap();
    assert_eq!(created.pii["EMAIL_ADDRESS"], 1);
    assert_eq!(created.pii["US_SSN"], 1);
    let (size, stored) = env.download(&owner, &org, &created.id).await;
    let expected = body.replace(EMAIL, EMAIL_MARK).replace(SSN, SSN_MARK);
    assert_eq!(String::from_utf8(stored.clone()).unwrap(), expected);
    assert_eq!(
        size,
        stored.len() as u64,
        "the recorded size is the stored text's"
    );

    // A body of several windows, with values on chunk boundaries throughout: every one is
    // found, and the sealed blob matches its recorded size.
    let line = |i: usize| format!("line {i} of filler text, nothing to see here at all\n");
    let mut big = String::new();
    let mut cuts = Vec::new();
    for i in 0..6000 {
        big.push_str(&line(i));
        if i % 500 == 250 {
            big.push_str(&format!("mail {EMAIL} or SSN {SSN}\n"));
            let email_at = big.rfind(EMAIL).unwrap();
            cuts.push(email_at + 3);
            cuts.push(big.rfind(SSN).unwrap() + 4);
        }
    }
    let created = env
        .upload(
            &owner,
            &org,
            text_upload("redacted_notes", "big.txt"),
            split_at(&big, &cuts),
        )
        .await
        .unwrap();
    assert_eq!(created.pii["EMAIL_ADDRESS"], 12);
    assert_eq!(created.pii["US_SSN"], 12);
    let (size, stored) = env.download(&owner, &org, &created.id).await;
    let expected = big.replace(EMAIL, EMAIL_MARK).replace(SSN, SSN_MARK);
    assert_eq!(stored.len(), expected.len());
    assert!(stored == expected.as_bytes(), "stored body differs");
    assert_eq!(size, stored.len() as u64);
}

#[tokio::test]
async fn a_text_body_with_pii_is_refused_for_block_and_nothing_is_stored() {
    let env = env();
    let (org, owner) = env.org().await;
    let (body, _) = split_body();
    let email_at = body.find(EMAIL).unwrap();
    let ssn_at = body.find(SSN).unwrap();
    for (text, cut, expected) in [
        (
            body.replace(SSN, "nothing"),
            email_at + 6,
            format!(
                "EMAIL_ADDRESS at body[{email_at}..{}]",
                email_at + EMAIL.len()
            ),
        ),
        (
            body.replace(EMAIL, "someone"),
            ssn_at - EMAIL.len() + "someone".len() + 5,
            "US_SSN at body[".to_string(),
        ),
    ] {
        let from = env.store.audit_size().await.unwrap();
        let err = env
            .upload(
                &owner,
                &org,
                text_upload("blocked_notes", "letter.txt"),
                split_at(&text, &[cut]),
            )
            .await
            .unwrap_err();
        let CoreError::PiiBlocked(message) = &err else {
            panic!("expected a PII block, got {err:?}")
        };
        assert!(message.contains(&expected), "{message} lacks {expected}");
        assert_clean("refusal", message);
        let events = env.events_since(&org, from).await;
        let actions: Vec<&str> = events.iter().map(|e| e.action.as_str()).collect();
        assert_eq!(actions, ["pii.blocked"], "only the refusal is audited");
    }
    assert_eq!(env.stored_in(&org, "blocked_notes").await, 0);
    // A large body whose SSN comes late, after earlier windows were sealed and written.
    let mut big = "nothing to see in this line of filler text\n".repeat(8000);
    big.push_str(&format!("SSN {SSN}\n"));
    let chunks: Vec<Vec<u8>> = big.as_bytes().chunks(8191).map(<[u8]>::to_vec).collect();
    let err = env
        .upload(
            &owner,
            &org,
            text_upload("blocked_notes", "big.txt"),
            chunks,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, CoreError::PiiBlocked(_)), "{err:?}");
    assert_eq!(env.stored_in(&org, "blocked_notes").await, 0);
    assert_eq!(
        env.objects(),
        Vec::<std::path::PathBuf>::new(),
        "no object left"
    );
}

#[tokio::test]
async fn binary_bodies_are_not_scanned() {
    let env = env();
    let (org, owner) = env.org().await;
    let body = format!("raw {EMAIL} bytes");
    for content_type in [None, Some("application/octet-stream"), Some("image/png")] {
        let upload = FileUpload {
            category: "redacted_notes".into(),
            subject: None,
            file_name: Some("blob".into()),
            content_type: content_type.map(str::to_string),
            metadata: None,
        };
        let created = env
            .upload(&owner, &org, upload, vec![body.clone().into_bytes()])
            .await
            .unwrap();
        let (_, stored) = env.download(&owner, &org, &created.id).await;
        assert_eq!(stored, body.as_bytes(), "{content_type:?}");
    }
    // Text types with suffixes are scanned.
    for content_type in [
        "application/ld+json",
        "application/atom+xml",
        "application/x-ndjson",
    ] {
        let upload = FileUpload {
            content_type: Some(content_type.into()),
            ..text_upload("redacted_notes", "t")
        };
        let created = env
            .upload(&owner, &org, upload, vec![body.clone().into_bytes()])
            .await
            .unwrap();
        let (_, stored) = env.download(&owner, &org, &created.id).await;
        assert_eq!(
            String::from_utf8(stored).unwrap(),
            format!("raw {EMAIL_MARK} bytes"),
            "{content_type}"
        );
    }
}

#[tokio::test]
async fn tokenized_uploads_use_the_org_tokens_and_reveal() {
    let env = env();
    let (org, owner) = env.org().await;
    let upload = FileUpload {
        category: "token_notes".into(),
        subject: Some("subject-1".into()),
        file_name: Some(format!("{EMAIL} notes.txt")),
        content_type: Some("text/csv".into()),
        metadata: Some(json!({ "cc": "bo@example.org" })),
    };
    let body = format!("name,mail\nAna,{EMAIL}\nBo,bo@example.org\n");
    let created = env
        .upload(&owner, &org, upload, split_at(&body, &[15]))
        .await
        .unwrap();
    let view = env
        .custos
        .get_record(&owner, &org, &created.id)
        .await
        .unwrap();
    assert_eq!(
        view.file_name.as_deref(),
        Some("<EMAIL_ADDRESS_1> notes.txt")
    );
    assert_eq!(view.metadata, json!({"cc": "<EMAIL_ADDRESS_2>"}));
    let (_, stored) = env.download(&owner, &org, &created.id).await;
    assert_eq!(
        String::from_utf8(stored).unwrap(),
        "name,mail\nAna,<EMAIL_ADDRESS_1>\nBo,<EMAIL_ADDRESS_2>\n"
    );
    let revealed = env
        .custos
        .reveal_record(&owner, &org, &created.id)
        .await
        .unwrap();
    assert_eq!(revealed.file_name, Some(format!("{EMAIL} notes.txt")));
    assert_eq!(revealed.metadata, json!({"cc": "bo@example.org"}));

    // A record written afterwards gets the same token for the same value.
    let created = env
        .custos
        .create_record(
            &owner,
            &org,
            NewRecord {
                category: "token_notes".into(),
                subject: None,
                content: json!(format!("again {EMAIL}")),
                metadata: None,
            },
        )
        .await
        .unwrap();
    let view = env
        .custos
        .get_record(&owner, &org, &created.id)
        .await
        .unwrap();
    assert_eq!(view.content, json!("again <EMAIL_ADDRESS_1>"));
}

#[tokio::test]
async fn the_subject_is_stored_nowhere_in_plaintext() {
    let env = env();
    let (org, owner) = env.org().await;
    let subject = "Subject-Quokka-7741-zz";
    let note = |category: &str| NewRecord {
        category: category.into(),
        subject: Some(subject.into()),
        content: json!(format!("about {EMAIL}")),
        metadata: Some(json!({"k": "v"})),
    };
    let plain = env
        .custos
        .create_record(&owner, &org, note("redacted_notes"))
        .await
        .unwrap();
    env.custos
        .create_record(&owner, &org, note("token_notes"))
        .await
        .unwrap();
    let refused = env
        .custos
        .create_record(&owner, &org, note("blocked_notes"))
        .await;
    assert!(matches!(refused, Err(CoreError::PiiBlocked(_))));
    let upload = FileUpload {
        subject: Some(subject.into()),
        ..text_upload("redacted_notes", "f.txt")
    };
    let file = env
        .upload(&owner, &org, upload, vec![b"a text file".to_vec()])
        .await
        .unwrap();
    env.custos
        .create_hold(
            &owner,
            &org,
            NewHold {
                reason: "case 1".into(),
                subject: Some(subject.into()),
                category: None,
            },
        )
        .await
        .unwrap();
    let listed = env
        .custos
        .list_records(&owner, &org, Some(subject), None, None, None)
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 3, "found by its keyed reference");
    for id in [&plain.id, &file.id] {
        let view = env.custos.get_record(&owner, &org, id).await.unwrap();
        assert_eq!(
            view.subject.as_deref(),
            Some(subject),
            "shown from the sealed copy"
        );
    }

    // Database, WAL, key store and objects: the subject is in none of them.
    let files = files_under(&env.dir.path().join("data"));
    assert!(
        files
            .iter()
            .any(|(p, _)| p.to_string_lossy().ends_with("-wal")),
        "the WAL is checked too: {files:?}"
    );
    for (path, bytes) in &files {
        assert!(
            !contains(bytes, subject.as_bytes()),
            "subject found in {}",
            path.display()
        );
    }
}
