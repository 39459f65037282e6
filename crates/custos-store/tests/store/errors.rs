//! Store errors keep their cause: the driver's or the object store's error is `source()`.

use std::error::Error as _;

use custos_store::{ObjectLocation, Objects, SqliteStore, StoreError};
use futures::TryStreamExt;

use crate::support::*;

/// A failed write (the audit trigger raising "audit down") is a database error whose source
/// is the driver's own error, and whose message still says what failed.
pub async fn a_database_failure_keeps_the_driver_error(h: Harness) {
    let store = &*h.store;
    h.break_audit_log().await;
    let err = store
        .create_org(&org("Never"), &[event(None, "org.create", "org:never")])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Database { .. }), "{err:?}");
    assert!(
        err.to_string().starts_with("database error: ") && err.to_string().contains("audit down"),
        "{err}"
    );
    let source = err.source().expect("a database error has a source");
    match h.backend() {
        Backend::Sqlite => {
            let driver = source
                .downcast_ref::<rusqlite::Error>()
                .unwrap_or_else(|| panic!("not a rusqlite error: {source:?}"));
            assert!(driver.to_string().contains("audit down"), "{driver}");
        }
        Backend::Postgres => match source.downcast_ref::<sqlx::Error>() {
            Some(sqlx::Error::Database(db)) => {
                assert!(db.message().contains("audit down"), "{}", db.message())
            }
            _ => panic!("not a sqlx database error: {source:?}"),
        },
    }
}

#[test]
fn opening_a_directory_as_the_database_keeps_the_sqlite_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = SqliteStore::open(dir.path()).unwrap_err();
    assert!(matches!(err, StoreError::Database { .. }), "{err:?}");
    let source = err.source().expect("a database error has a source");
    assert!(
        source.downcast_ref::<rusqlite::Error>().is_some(),
        "not a rusqlite error: {source:?}"
    );
}

#[tokio::test]
async fn a_missing_object_keeps_the_object_store_error() {
    let dir = tempfile::tempdir().unwrap();
    let objects = Objects::open(&ObjectLocation::File(dir.path().join("objects"))).unwrap();
    // Not found either when the read starts or at its first chunk.
    let err = match objects.reader("org-1/none/blob").await {
        Ok(chunks) => chunks
            .try_collect::<Vec<_>>()
            .await
            .expect_err("a missing object has no chunks"),
        Err(e) => e,
    };
    assert!(matches!(err, StoreError::Objects { .. }), "{err:?}");
    assert!(err.to_string().starts_with("object store error: "), "{err}");
    let source = err.source().expect("an object store error has a source");
    assert!(
        matches!(
            source.downcast_ref::<object_store::Error>(),
            Some(object_store::Error::NotFound { .. })
        ),
        "not object_store's NotFound: {source:?}"
    );
}
