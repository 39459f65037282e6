//! The Merkle log's routes: signed checkpoints, inclusion and consistency proofs, and the
//! deployment's checkpoint verification key. Checkpoints, consistency proofs and the key are
//! deployment-wide (any authenticated caller); inclusion proofs follow the event read rule
//! (see `Custos::audit_inclusion_proof`).

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use custos_core::{CheckpointView, SigningKeyView};

use crate::routes::{ApiQuery, Path};
use crate::{inputs, ApiError, AppState, Authed};

type ApiResult<T> = Result<T, ApiError>;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/audit/checkpoint", get(checkpoint))
        .route("/v1/audit/proof/{index}", get(inclusion_proof))
        .route("/v1/audit/consistency", get(consistency_proof))
        .route("/v1/signing-key", get(signing_key))
}

/// An inclusion proof (RFC 9162 §2.1.3), hashes in standard base64.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct InclusionProofDoc {
    /// The entry's index.
    index: u64,
    /// The tree size the proof is for.
    tree_size: u64,
    /// `SHA-256(0x00 || leaf bytes)`.
    leaf_hash: String,
    /// The audit path, nearest the leaf first.
    hashes: Vec<String>,
}

/// A consistency proof (RFC 9162 §2.1.4), hashes in standard base64.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ConsistencyProofDoc {
    /// The earlier tree size.
    old_size: u64,
    /// The later tree size.
    new_size: u64,
    /// The proof hashes.
    hashes: Vec<String>,
}

/// The latest signed checkpoint, signing a new one first if the log grew since.
#[utoipa::path(get, tag = "audit", path = "/v1/audit/checkpoint",
    responses((status = 200, body = CheckpointView)),
    security(("bearer" = [])))]
pub(crate) async fn checkpoint(
    State(state): State<AppState>,
    Authed(caller): Authed,
) -> ApiResult<Json<CheckpointView>> {
    Ok(Json(state.custos.audit_checkpoint(&caller).await?))
}

/// Inclusion proof parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProofQuery {
    /// Tree size to prove against (default: the latest checkpoint's).
    tree_size: Option<u64>,
}

/// Inclusion proof of one entry against a checkpoint. Org members (owner, admin, auditor)
/// may prove only their own org's entries.
#[utoipa::path(get, tag = "audit", path = "/v1/audit/proof/{index}", params(("index" = u64, Path), ProofQuery),
    responses((status = 200, body = InclusionProofDoc)),
    security(("bearer" = [])))]
pub(crate) async fn inclusion_proof(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(index): Path<u64>,
    ApiQuery(q): ApiQuery<ProofQuery>,
) -> ApiResult<Json<custos_core::InclusionProof>> {
    Ok(Json(
        state
            .custos
            .audit_inclusion_proof(
                &caller,
                inputs::log_index("index", index)?,
                inputs::opt_log_index("tree_size", q.tree_size)?,
            )
            .await?,
    ))
}

/// Consistency proof parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConsistencyQuery {
    /// The earlier tree size.
    from: u64,
    /// The later tree size (default: the latest checkpoint's).
    to: Option<u64>,
}

/// Consistency proof between two tree sizes: the later tree extends the earlier one.
#[utoipa::path(get, tag = "audit", path = "/v1/audit/consistency", params(ConsistencyQuery),
    responses((status = 200, body = ConsistencyProofDoc)),
    security(("bearer" = [])))]
pub(crate) async fn consistency_proof(
    State(state): State<AppState>,
    Authed(caller): Authed,
    ApiQuery(q): ApiQuery<ConsistencyQuery>,
) -> ApiResult<Json<custos_core::ConsistencyProof>> {
    Ok(Json(
        state
            .custos
            .audit_consistency_proof(
                &caller,
                inputs::log_index("from", q.from)?,
                inputs::opt_log_index("to", q.to)?,
            )
            .await?,
    ))
}

/// The deployment's checkpoint verification key (Ed25519, and as a C2SP verifier key).
#[utoipa::path(get, tag = "audit", path = "/v1/signing-key",
    responses((status = 200, body = SigningKeyView)),
    security(("bearer" = [])))]
pub(crate) async fn signing_key(
    State(state): State<AppState>,
    Authed(caller): Authed,
) -> ApiResult<Json<SigningKeyView>> {
    Ok(Json(state.custos.signing_key(&caller).await?))
}
