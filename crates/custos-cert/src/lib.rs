//! Custos certificates of deletion: what a certificate states, how it is bound to the audit
//! log and signed, and how anyone checks it offline with a public key.
//!
//! A certificate is JSON (format [`FORMAT`]). Its [`Statement`] says what was erased, how and
//! when. The issuer records the statement in the audit log as a `subject.erase` event whose
//! carries `statement_sha256`, the statement's SHA-256 ([`Statement::event_details`]), waits for a signed
//! checkpoint that covers the event, and [`Statement::seal`]s: the certificate then carries the
//! event's leaf bytes, its inclusion proof, the checkpoint, and an Ed25519 signature by the
//! deployment key over the RFC 8785 (JCS) bytes of everything else. [`verify`] checks all of
//! it and names the first [`Check`] that fails; [`render_text`] prints it for people.
//!
//! This crate does no I/O and holds no keys: signing is a closure the issuer passes in, and
//! running the erasure, appending the event and rendering PDFs happen elsewhere.
//!
//! ```
//! # #[cfg(feature = "fixture")] {
//! let fx = custos_cert::fixture::build("3f1a9c");
//! let json = fx.certificate.to_jcs();
//! let ok = custos_cert::verify(&json, Some(&fx.verifier_key), Some("3f1a9c")).unwrap();
//! assert_eq!(ok.key_source, custos_cert::KeySource::Supplied);
//! let err = custos_cert::verify(&json, Some(&fx.other_verifier_key), None).unwrap_err();
//! assert_eq!(err.check, custos_cert::Check::Signature);
//! # }
//! ```

#![warn(missing_docs)]

#[cfg(feature = "fixture")]
pub mod fixture;
pub mod json;
mod model;
mod render;
mod verify;

pub use model::{
    Certificate, FormatV1, HeldBack, Issuer, Method, Sanitization, Statement, Status, Subject,
    Tiers, Times, FORMAT,
};
pub use render::render_text;
pub use verify::{verify, Check, KeySource, Verified, VerifyFailure};
