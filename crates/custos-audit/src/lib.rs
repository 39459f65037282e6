//! Custos's audit log: what an audit event is, the exact bytes that represent it, and (in later
//! modules) the RFC 6962 Merkle tree, signed checkpoints and proofs built over those bytes.
//!
//! This crate does no I/O. Storage of events lives in `custos-store`; this crate only defines
//! what is stored and how it is hashed, so an auditor's own tool can recompute every hash.
//! An event never carries record content, PII values or key material: its fields are
//! identifiers and outcomes only.

pub mod event;

pub use event::{Actor, AuditEvent, Outcome, EVENT_ENCODING_VERSION};
