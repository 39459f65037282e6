//! Shared set-up of the HTTP tests: a deployment on a real SQLite store, local object store
//! and key store, served on an ephemeral loopback port.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;

use custos_core::{Clock, Custos};
use custos_crypto::{KeyVault, LocalKms};
use custos_keystore_sqlite::SqliteKeyStore;
use custos_policy::Policy;
use custos_store::{ObjectLocation, Objects, SqliteStore};
use serde_json::{json, Value};

pub mod oidc;

/// The bootstrap admin token of every test deployment.
pub const ADMIN: &str = "test-admin-token-0123456789";

/// A served deployment; dropping it removes its data directory.
pub struct Deployment {
    pub dir: tempfile::TempDir,
    pub base: String,
    pub client: reqwest::Client,
    pub store: Arc<SqliteStore>,
    pub custos: Arc<Custos>,
}

/// Serves a deployment of `policy` on `clock`, after `configure` (signer, key sources...).
pub async fn deploy(
    policy: Policy,
    clock: Arc<dyn Clock>,
    configure: impl FnOnce(Custos) -> Custos,
) -> Deployment {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    deploy_on(listener, policy, clock, configure).await
}

/// [`deploy`] on `listener` (bound first when the policy must name the deployment's own
/// address, as `[service] public_url` does).
pub async fn deploy_on(
    listener: tokio::net::TcpListener,
    policy: Policy,
    clock: Arc<dyn Clock>,
    configure: impl FnOnce(Custos) -> Custos,
) -> Deployment {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let store = Arc::new(SqliteStore::open(&data.join("custos.db")).unwrap());
    let objects = Objects::open(&ObjectLocation::File(data.join("objects"))).unwrap();
    let kms = LocalKms::open_or_create(&data.join("keys/root.keyring")).unwrap();
    let keys = SqliteKeyStore::open(&data.join("keys/keys.db")).unwrap();
    let vault = Arc::new(KeyVault::new(Arc::new(kms), Arc::new(keys)));
    let custos =
        Custos::new(Arc::new(policy), store.clone(), objects, vault, clock).with_admin_token(ADMIN);
    let custos = Arc::new(configure(custos));
    let base = serve_on(
        listener,
        custos_api::router(custos_api::AppState::new(custos.clone())),
    );
    Deployment {
        dir,
        base,
        client: reqwest::Client::new(),
        store,
        custos,
    }
}

/// Creates an org with the admin token, with `body` (name, region...) and a first owner
/// added; returns the answer (`id`, `owner: {id, roles, api_key}`, ...). The owner holds every
/// role: it, not the admin token, manages the org afterwards.
pub async fn create_org_with_owner(d: &Deployment, mut body: Value) -> Value {
    body["owner"] = json!({"name": "Olive"});
    let r = d
        .client
        .post(format!("{}/v1/orgs", d.base))
        .bearer_auth(ADMIN)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let created: Value = r.json().await.unwrap_or(Value::Null);
    assert_eq!(status, reqwest::StatusCode::CREATED, "{created}");
    created
}

/// An org named `name` with its first owner; (org id, the owner's API key).
pub async fn org_with_owner(d: &Deployment, name: &str) -> (String, String) {
    let created = create_org_with_owner(d, json!({ "name": name })).await;
    (
        created["id"].as_str().unwrap().to_string(),
        created["owner"]["api_key"].as_str().unwrap().to_string(),
    )
}

/// Serves `app` on an ephemeral loopback port; returns its base URL.
pub async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    serve_on(listener, app)
}

/// Serves `app` on `listener`; returns its base URL.
pub fn serve_on(listener: tokio::net::TcpListener, app: axum::Router) -> String {
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    format!("http://{addr}")
}
