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
    let base = serve(custos_api::router(custos_api::AppState::new(
        custos.clone(),
    )))
    .await;
    Deployment {
        dir,
        base,
        client: reqwest::Client::new(),
        store,
        custos,
    }
}

/// Serves `app` on an ephemeral loopback port; returns its base URL.
pub async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
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
