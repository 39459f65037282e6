//! The audit log as the services expose it: reading events, signed checkpoints, inclusion and
//! consistency proofs, whole-log verification and export (the Merkle algorithms are
//! `custos-audit`'s; node storage is `custos-store`'s).

use std::sync::Arc;

use base64::Engine as _;
use serde::Serialize;
use utoipa::ToSchema;

use custos_audit::{
    leaf_hash, AuditEvent, Checkpoint, Hash, LogVerifier, NoteSigner, TamperError, TreeHead,
};
use custos_crypto::DeploymentSigner;
use custos_store::{
    AuditEntry, AuditFilter, AuditIndex, AuditRow, OrgScope, Store, StoredCheckpoint,
};

pub use custos_audit::{ConsistencyProof, InclusionProof};

use crate::authz::Operation;
use crate::{Caller, CoreError, Custos, Principal};

/// One audit log entry as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AuditEntryView {
    /// Position in the log.
    pub index: u64,
    /// The decoded event.
    #[schema(value_type = Object)]
    pub event: AuditEvent,
    /// The entry's bytes as the Merkle tree holds them (standard base64): what an inclusion
    /// proof's `leaf_hash` is the hash of, so a client can check the event it shows.
    pub leaf: String,
}

/// A page of audit entries.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AuditPage {
    /// Entries in log order.
    pub items: Vec<AuditEntryView>,
    /// Pass as `from` for the next page; absent on the last page.
    pub next_from: Option<u64>,
}

impl Custos {
    /// Audit entries from index `from`: all of them for the admin (or one org's with `org`),
    /// only their own org's for members with an owner, admin or auditor role.
    ///
    /// The store selects rows by their indexed columns, which the Merkle tree does not cover;
    /// every returned row is re-checked against its decoded leaf (org and filter), and a row
    /// that disagrees fails the whole query closed (see [`checked_entry`]).
    pub async fn audit_events(
        &self,
        caller: &Caller,
        org: Option<&str>,
        filter: &custos_store::AuditFilter,
        from: u64,
        limit: u32,
    ) -> Result<AuditPage, CoreError> {
        if limit == 0 || limit > crate::records::MAX_PAGE {
            return Err(CoreError::invalid(
                "limit",
                format!("must be 1 to {}", crate::records::MAX_PAGE),
            ));
        }
        let scope = match (&caller.principal, org) {
            (Principal::Member { scope, .. }, requested) => {
                let org = requested.unwrap_or(scope.org_id());
                Some(
                    self.authorize(caller, Operation::AuditEvents, org)
                        .await?
                        .scope,
                )
            }
            (_, Some(org)) => Some(
                self.authorize(caller, Operation::AuditEvents, org)
                    .await?
                    .scope,
            ),
            (_, None) => {
                self.authorize_global(caller, Operation::AuditEvents)
                    .await?;
                None
            }
        };
        let entries = self
            .store
            .audit_query(scope.as_ref(), filter, from, limit)
            .await?;
        let next_from = (entries.len() == limit as usize)
            .then(|| entries.last().map(|e| e.index + 1))
            .flatten();
        let org = scope.as_ref().map(|s| s.org_id());
        let items = entries
            .into_iter()
            .map(|e| checked_entry(e, org, filter))
            .collect::<Result<_, _>>()?;
        Ok(AuditPage { items, next_from })
    }
}

/// Decodes a queried entry and re-checks the query (org scope and filter) against the event
/// in its leaf, the only data the Merkle tree covers.
///
/// A row whose stored columns disagree with its leaf was tampered with (columns are derived
/// from the event at append, in the same transaction). It fails the query closed with an
/// internal error naming only its index, instead of being dropped: a caller never sees
/// another org's event, and an operator cannot miss the tamper (`custos audit verify` names
/// the row and the column).
fn checked_entry(
    entry: AuditEntry,
    org: Option<&str>,
    filter: &AuditFilter,
) -> Result<AuditEntryView, CoreError> {
    let index = entry.index;
    let event = AuditEvent::from_canonical_bytes(&entry.leaf)
        .map_err(|err| CoreError::internal_from(format!("audit entry {index}"), err))?;
    let in_scope = org.is_none_or(|org| event.org.as_deref() == Some(org));
    if !in_scope || !filter.matches(&AuditIndex::of(&event)) {
        tracing::error!(
            index,
            "audit entry's stored columns disagree with its event; run `custos audit verify`"
        );
        return Err(CoreError::internal(format!(
            "audit entry {index}: its stored columns disagree with its event \
             (run `custos audit verify`)"
        )));
    }
    let leaf = base64::engine::general_purpose::STANDARD.encode(&entry.leaf);
    Ok(AuditEntryView { index, event, leaf })
}

// --- The Merkle log: checkpoints, proofs, verification, export --------------------------------

/// Rows read per store round trip when streaming the whole log.
const VERIFY_PAGE: u32 = 20_000;

/// Pages read ahead, in parallel, while one is hashed.
const VERIFY_PREFETCH: usize = 2;

/// The checkpoint origin (and note key name) of a deployment: `custos/<service name slug>`,
/// e.g. `custos/example-saas`. Note key names may not contain spaces or `+`.
pub fn log_origin(service_name: &str) -> String {
    let mut slug = String::new();
    for c in service_name.chars() {
        if c.is_ascii_alphanumeric() || c == '.' || c == '_' {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.ends_with('-') {
            slug.push('-');
        }
    }
    let slug = slug.trim_matches('-');
    format!(
        "custos/{}",
        if slug.is_empty() { "deployment" } else { slug }
    )
}

/// The deployment's signing key as a C2SP note signer. The private key stays inside
/// [`DeploymentSigner`]; this adapter only forwards messages to sign.
pub struct AuditSigner {
    inner: Arc<DeploymentSigner>,
    origin: String,
}

impl std::fmt::Debug for AuditSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditSigner")
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

impl AuditSigner {
    /// Signs under the note key name [`log_origin`] of the signer's name.
    pub fn new(inner: Arc<DeploymentSigner>) -> Self {
        let origin = log_origin(inner.name());
        AuditSigner { inner, origin }
    }

    /// The log's origin line, also the note key name.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The C2SP verifier key `<name>+<hex key id>+<base64>`.
    pub fn verifier_key(&self) -> String {
        custos_audit::verifier_key(&self.origin, &self.inner.public_key())
    }
}

impl NoteSigner for AuditSigner {
    fn name(&self) -> &str {
        &self.origin
    }

    fn public_key(&self) -> [u8; 32] {
        self.inner.public_key()
    }

    fn sign(&self, msg: &[u8]) -> [u8; 64] {
        self.inner.sign(msg)
    }
}

/// The deployment's checkpoint verification key (`GET /v1/signing-key`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SigningKeyView {
    /// The Ed25519 public key, standard base64.
    pub public_key: String,
    /// The C2SP note verifier key `<name>+<hex key id>+<base64(0x01 || key)>`.
    pub verifier_key: String,
}

/// A signed tree head (`GET /v1/audit/checkpoint`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CheckpointView {
    /// The log's origin (first line of the checkpoint).
    pub origin: String,
    /// Number of entries the checkpoint covers.
    pub size: u64,
    /// The Merkle root, standard base64.
    pub root: String,
    /// When the checkpoint was made.
    #[schema(value_type = String, format = DateTime)]
    pub time: jiff::Timestamp,
    /// The signed note text (C2SP tlog-checkpoint), to save and verify offline.
    pub checkpoint: String,
}

/// A clean whole-log verification.
#[derive(Debug, Clone)]
pub struct AuditVerification {
    /// Entries recomputed.
    pub entries: u64,
    /// Bytes of leaf data hashed.
    pub bytes: u64,
    /// The recomputed root over all entries.
    pub root: Hash,
    /// Signed checkpoints checked (stored ones plus any given).
    pub checkpoints_verified: usize,
    /// The largest signed size; entries at or after it are not covered by a signature yet.
    pub anchored_size: u64,
    /// Trailing entries (`entries - anchored_size`) not yet covered by a signed checkpoint.
    /// Rows dropped from this tail leave no trace but a smaller count: that is the bound of
    /// what verification can prove, kept to about a second of appends by `custos serve`.
    pub uncovered: u64,
    /// Wall time of the recomputation.
    pub elapsed: std::time::Duration,
}

/// Why the log failed verification (a check failed, not an operational error).
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum AuditFailure {
    /// The entries do not match their hashes or the signed checkpoints.
    #[error(transparent)]
    Tampered(#[from] TamperError),
    /// A stored checkpoint's signature, origin or size does not check out.
    #[error("stored checkpoint at size {size} is invalid: {reason}")]
    BadCheckpoint {
        /// The size column of the stored checkpoint.
        size: u64,
        /// What is wrong.
        reason: String,
    },
    /// A row's stored indexed column (what queries filter and authorize on) disagrees with
    /// the event in its leaf. Names the column, never its value (values may be personal).
    #[error(
        "audit log tampered at index {index}: stored column `{column}` does not match the \
         event in its leaf"
    )]
    ColumnMismatch {
        /// The row's index.
        index: u64,
        /// The SQL name of the first mismatching column.
        column: &'static str,
    },
    /// A row's leaf matches its hash but is not a decodable audit event.
    #[error("audit log tampered at index {index}: its leaf is not a valid audit event")]
    Undecodable {
        /// The row's index.
        index: u64,
    },
    /// The store records more entries than are present: rows were dropped from the tail.
    #[error(
        "audit log tampered at index {present}: the store records {recorded} entries but \
         only {present} are present"
    )]
    Shortened {
        /// Entries present (and verified).
        present: u64,
        /// The log size the store recorded before verification started.
        recorded: u64,
    },
    /// The entries verify, but the stored tree nodes (used for proofs) give another root.
    #[error(
        "entries verify, but the stored tree nodes give a different root at size {size}: \
         proofs served from them would not verify"
    )]
    NodesDisagree {
        /// The size compared.
        size: u64,
    },
}

impl AuditFailure {
    /// The first index that cannot be trusted, when known.
    pub fn first_bad_index(&self) -> Option<u64> {
        match self {
            AuditFailure::Tampered(t) => Some(t.first_bad_index),
            AuditFailure::ColumnMismatch { index, .. } | AuditFailure::Undecodable { index } => {
                Some(*index)
            }
            AuditFailure::Shortened { present, .. } => Some(*present),
            _ => None,
        }
    }

    /// Of a tree failure and an earlier-found row failure, the one with the lower first bad
    /// index (the tree one on a tie): a rewritten leaf whose columns were left alone is
    /// placed by the checkpoints when they place it lower.
    fn lowest(tree: AuditFailure, row: Option<AuditFailure>) -> AuditFailure {
        match row {
            Some(row) if row.first_bad_index() < tree.first_bad_index() => row,
            _ => tree,
        }
    }
}

/// Checks a row's indexed columns against the event decoded from its leaf.
fn check_columns(row: &AuditRow) -> Result<(), AuditFailure> {
    let index = row.index;
    let event = AuditEvent::from_canonical_bytes(&row.leaf)
        .map_err(|_| AuditFailure::Undecodable { index })?;
    match AuditIndex::of(&event).first_difference(&row.columns) {
        Some(column) => Err(AuditFailure::ColumnMismatch { index, column }),
        None => Ok(()),
    }
}

impl Custos {
    /// Signs audit checkpoints with `signer` (the deployment key).
    pub fn with_audit_signer(mut self, signer: Arc<DeploymentSigner>) -> Self {
        self.audit_signer = Some(Arc::new(AuditSigner::new(signer)));
        self
    }

    pub(crate) fn audit_signer(&self) -> Result<&AuditSigner, CoreError> {
        self.audit_signer
            .as_deref()
            .ok_or_else(|| CoreError::internal("no audit signing key is configured"))
    }

    /// The checkpoint verification key; any authenticated caller may fetch it.
    pub async fn signing_key(&self, caller: &Caller) -> Result<SigningKeyView, CoreError> {
        self.authorize_global(caller, Operation::SigningKey).await?;
        let signer = self.audit_signer()?;
        Ok(SigningKeyView {
            public_key: base64::engine::general_purpose::STANDARD.encode(signer.public_key()),
            verifier_key: signer.verifier_key(),
        })
    }

    /// The latest checkpoint, signing a new one first if the log grew since (so it covers
    /// every entry committed before the call). Deployment-wide: any authenticated caller.
    pub async fn audit_checkpoint(&self, caller: &Caller) -> Result<CheckpointView, CoreError> {
        self.authorize_global(caller, Operation::AuditCheckpoint)
            .await?;
        let log = self.log_of_caller(caller).await?;
        let cp = self.ensure_checkpoint_in(&log).await?;
        checkpoint_view(&cp)
    }

    /// The latest stored checkpoint of the main log, creating one if the log grew since.
    pub async fn ensure_checkpoint(&self) -> Result<StoredCheckpoint, CoreError> {
        self.ensure_checkpoint_in(self.store.main()).await
    }

    /// The latest stored checkpoint of `log`, creating one if the log grew since.
    pub(crate) async fn ensure_checkpoint_in(
        &self,
        log: &Arc<dyn Store>,
    ) -> Result<StoredCheckpoint, CoreError> {
        match self.checkpoint_if_grown_in(log).await? {
            Some(cp) => Ok(cp),
            None => log
                .latest_audit_checkpoint()
                .await?
                .ok_or_else(|| CoreError::internal("no checkpoint after creating one")),
        }
    }

    /// Signs and stores a checkpoint of each log (the main one and every region's own) that
    /// grew since its latest (or has none); returns the main log's new one, `None` when it did
    /// not change. What `custos serve` runs periodically.
    pub async fn checkpoint_if_grown(&self) -> Result<Option<StoredCheckpoint>, CoreError> {
        for region in self.store.regions() {
            self.checkpoint_if_grown_in(&region.store).await?;
        }
        self.checkpoint_if_grown_in(self.store.main()).await
    }

    /// [`Custos::checkpoint_if_grown`] for one log.
    async fn checkpoint_if_grown_in(
        &self,
        log: &Arc<dyn Store>,
    ) -> Result<Option<StoredCheckpoint>, CoreError> {
        let signer = self.audit_signer()?;
        let size = log.audit_size().await?;
        if let Some(latest) = log.latest_audit_checkpoint().await? {
            if latest.size >= size {
                return Ok(None);
            }
        }
        let root = log.audit_root(size).await?;
        let time = self.now();
        let head = Checkpoint {
            origin: signer.origin().to_string(),
            size,
            root,
            time: Some(time),
        };
        let note = head
            .sign(signer)
            .map_err(|e| CoreError::internal_from("signing checkpoint", e))?;
        let stored = log
            .add_audit_checkpoint(&StoredCheckpoint { size, note, time })
            .await?;
        Ok(Some(stored))
    }

    /// Runs [`Custos::checkpoint_if_grown`] every `every`, forever (spawn it).
    pub async fn run_checkpointer(self: Arc<Self>, every: std::time::Duration) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match self.checkpoint_if_grown().await {
                Ok(Some(cp)) => tracing::debug!(size = cp.size, "audit checkpoint signed"),
                Ok(None) => {}
                Err(e) => tracing::error!(error = %e, "audit checkpoint failed"),
            }
        }
    }

    /// Inclusion proof of entry `index` in the tree of `tree_size` entries (default: the
    /// latest checkpoint, created if the log grew).
    ///
    /// Access: the admin token and the system may prove any entry. Members with an owner,
    /// admin or auditor role may prove only their own org's entries (the same rule as for
    /// reading events); another org's index is `not_found`. A proof holds only hashes, but
    /// the leaf hash of an entry is a fingerprint of another tenant's event, so it is not
    /// handed across orgs. The org is the one in the decoded leaf (the `org_id` column is not
    /// covered by the tree), and the proof's leaf hash must be that leaf's.
    pub async fn audit_inclusion_proof(
        &self,
        caller: &Caller,
        index: u64,
        tree_size: Option<u64>,
    ) -> Result<InclusionProof, CoreError> {
        self.authorize_global(caller, Operation::AuditProof).await?;
        let log = self.log_of_caller(caller).await?;
        let mut own_leaf = None;
        if let Principal::Member { scope, .. } = &caller.principal {
            own_leaf = Some(self.org_leaf(&log, scope.org_id(), index).await?);
        }
        let size = match tree_size {
            Some(s) => {
                let log = log.audit_size().await?;
                if s > log {
                    return Err(CoreError::invalid(
                        "tree_size",
                        format!("the log has only {log} entries"),
                    ));
                }
                s
            }
            None => self.ensure_checkpoint_in(&log).await?.size,
        };
        if index >= size {
            return Err(CoreError::invalid(
                "index",
                format!("must be below the tree size {size}"),
            ));
        }
        let proof = log.audit_inclusion_proof(index, size).await?;
        if own_leaf.is_some_and(|leaf| leaf_hash(&leaf) != proof.leaf_hash) {
            tracing::error!(
                index,
                "audit entry's leaf disagrees with its stored leaf hash; run `custos audit verify`"
            );
            return Err(CoreError::internal(format!(
                "audit entry {index}: its leaf disagrees with its stored leaf hash \
                 (run `custos audit verify`)"
            )));
        }
        Ok(proof)
    }

    /// The leaf bytes of entry `index` if its decoded event belongs to `org`; `not_found`
    /// otherwise (absent, or another org's: the two are not told apart).
    async fn org_leaf(
        &self,
        log: &Arc<dyn Store>,
        org: &str,
        index: u64,
    ) -> Result<Vec<u8>, CoreError> {
        let not_found = || CoreError::NotFound(format!("audit entry {index}"));
        let entry = log
            .audit_entries(None, index, 1)
            .await?
            .into_iter()
            .next()
            .filter(|e| e.index == index)
            .ok_or_else(not_found)?;
        let event = AuditEvent::from_canonical_bytes(&entry.leaf)
            .map_err(|err| CoreError::internal_from(format!("audit entry {index}"), err))?;
        if event.org.as_deref() != Some(org) {
            return Err(not_found());
        }
        Ok(entry.leaf)
    }

    /// Consistency proof from the tree of `from` entries to that of `to` (default: the latest
    /// checkpoint). Deployment-wide, like checkpoints: any authenticated caller.
    pub async fn audit_consistency_proof(
        &self,
        caller: &Caller,
        from: u64,
        to: Option<u64>,
    ) -> Result<ConsistencyProof, CoreError> {
        self.authorize_global(caller, Operation::AuditConsistency)
            .await?;
        let log = self.log_of_caller(caller).await?;
        let to = match to {
            Some(to) => {
                let log = log.audit_size().await?;
                if to > log {
                    return Err(CoreError::invalid(
                        "to",
                        format!("the log has only {log} entries"),
                    ));
                }
                to
            }
            None => self.ensure_checkpoint_in(&log).await?.size,
        };
        if from > to {
            return Err(CoreError::invalid(
                "from",
                format!("must not exceed the later size {to}"),
            ));
        }
        Ok(log.audit_consistency_proof(from, to).await?)
    }

    /// Parses and checks a signed checkpoint note against this deployment's key and origin.
    pub fn verify_checkpoint_note(&self, note: &str) -> Result<Checkpoint, CoreError> {
        let signer = self.audit_signer()?;
        Checkpoint::verify_signed_for(note, &signer.verifier_key(), signer.origin())
            .map_err(|e| CoreError::invalid("checkpoint", e.to_string()))
    }

    /// Recomputes the whole tree from the stored entries (streamed in pages), checks it against
    /// every stored checkpoint (signature and root) and the `extra` ones (already verified,
    /// e.g. an auditor's saved copy), checks every row's indexed columns against the event in
    /// its leaf, that no row was dropped below the log size the store recorded, and compares
    /// the stored tree nodes' root. Of several failures, the lowest first bad index wins.
    ///
    /// `Ok(Err(_))` is a failed check; `Err(_)` an operational error.
    ///
    /// `region` names a region with stores of its own (see [`Custos::log_regions`]), whose
    /// log is its own; `None` is the main log.
    pub async fn verify_audit_log(
        &self,
        region: Option<&str>,
        extra: &[Checkpoint],
    ) -> Result<Result<AuditVerification, AuditFailure>, CoreError> {
        let log = self.log_of_region(region)?;
        let signer = self.audit_signer()?;
        let key = signer.verifier_key();
        let mut heads: Vec<TreeHead> = extra.iter().map(TreeHead::from).collect();
        let mut from_size = 0;
        loop {
            let page = log.audit_checkpoints(from_size, 1000).await?;
            let Some(last) = page.last() else { break };
            from_size = last.size + 1;
            for stored in &page {
                let head = match Checkpoint::verify_signed_for(&stored.note, &key, signer.origin())
                {
                    Ok(cp) if cp.size == stored.size => cp,
                    Ok(cp) => {
                        return Ok(Err(AuditFailure::BadCheckpoint {
                            size: stored.size,
                            reason: format!("its note signs size {}", cp.size),
                        }))
                    }
                    Err(e) => {
                        return Ok(Err(AuditFailure::BadCheckpoint {
                            size: stored.size,
                            reason: e.to_string(),
                        }))
                    }
                };
                heads.push(TreeHead::from(&head));
            }
        }
        // Read before the rows: appends only ever raise it, so fewer rows than this means
        // rows were dropped (PostgreSQL keeps the size in its own row, `audit_head`).
        let recorded = log.audit_size().await?;
        let started = std::time::Instant::now();
        let mut verifier = LogVerifier::new(heads);
        // The first row whose columns disagree with its leaf; hashing goes on, since the
        // signed checkpoints may place a rewritten leaf lower.
        let mut row_failure: Option<AuditFailure> = None;
        let mut bytes = 0u64;
        // Fixed index ranges of VERIFY_PAGE, VERIFY_PREFETCH of them read ahead in parallel (on
        // the blocking pool) while this task hashes: reading, not hashing, is the slower half.
        // A range holding no row ends the log; a gap fails verification before a later range
        // is consulted, so a row read twice (LIMIT spilling past a gap) is never pushed twice.
        let read = |start: u64| {
            let store = log.clone();
            tokio::spawn(async move { store.audit_rows(start, VERIFY_PAGE).await })
        };
        let mut inflight = std::collections::VecDeque::new();
        let mut next_start = 0u64;
        for _ in 0..VERIFY_PREFETCH {
            inflight.push_back((next_start, read(next_start)));
            next_start += u64::from(VERIFY_PAGE);
        }
        while let Some((start, task)) = inflight.pop_front() {
            let page = match task.await {
                Ok(page) => page?,
                Err(e) => return Err(CoreError::internal_from("audit read task", e)),
            };
            if page.is_empty() {
                break;
            }
            inflight.push_back((next_start, read(next_start)));
            next_start += u64::from(VERIFY_PAGE);
            let end = start + u64::from(VERIFY_PAGE);
            for row in page.iter().take_while(|r| r.index < end) {
                bytes += row.leaf.len() as u64;
                if let Err(e) = verifier.push(row.index, &row.leaf, row.leaf_hash.as_ref()) {
                    for (_, t) in &inflight {
                        t.abort();
                    }
                    return Ok(Err(AuditFailure::lowest(e.into(), row_failure)));
                }
                if row_failure.is_none() {
                    row_failure = check_columns(row).err();
                }
            }
        }
        for (_, t) in &inflight {
            t.abort();
        }
        let report = match verifier.finish() {
            Ok(r) => r,
            Err(e) => return Ok(Err(AuditFailure::lowest(e.into(), row_failure))),
        };
        if let Some(failure) = row_failure {
            return Ok(Err(failure));
        }
        if report.size < recorded {
            return Ok(Err(AuditFailure::Shortened {
                present: report.size,
                recorded,
            }));
        }
        let elapsed = started.elapsed();
        let stored_root = log.audit_root(report.size).await;
        if stored_root.ok() != Some(report.root) {
            return Ok(Err(AuditFailure::NodesDisagree { size: report.size }));
        }
        Ok(Ok(AuditVerification {
            entries: report.size,
            bytes,
            root: report.root,
            checkpoints_verified: report.checkpoints_verified,
            anchored_size: report.anchored_size,
            uncovered: report.size - report.anchored_size,
            elapsed,
        }))
    }

    /// Writes the log as JSON lines `{"index", "leaf" (base64 of the hashed bytes), "event"}`
    /// for exactly the entries of the latest checkpoint (created if the log grew), and returns
    /// that checkpoint, so the export and the checkpoint verify together. `region` as for
    /// [`Custos::verify_audit_log`].
    pub async fn audit_export(
        &self,
        region: Option<&str>,
        out: &mut dyn std::io::Write,
    ) -> Result<StoredCheckpoint, CoreError> {
        let log = self.log_of_region(region)?;
        let cp = self.ensure_checkpoint_in(&log).await?;
        let io = |e: std::io::Error| CoreError::internal_from("writing the export", e);
        let mut from = 0u64;
        while from < cp.size {
            let limit = VERIFY_PAGE.min(u32::try_from(cp.size - from).unwrap_or(u32::MAX));
            let page = log.audit_rows(from, limit).await?;
            let Some(last) = page.last() else { break };
            from = last.index + 1;
            for row in page.iter().filter(|r| r.index < cp.size) {
                let event = AuditEvent::from_canonical_bytes(&row.leaf)
                    .ok()
                    .and_then(|e| serde_json::to_value(e).ok())
                    .unwrap_or(serde_json::Value::Null);
                let line = serde_json::json!({
                    "index": row.index,
                    "leaf": base64::engine::general_purpose::STANDARD.encode(&row.leaf),
                    "event": event,
                });
                serde_json::to_writer(&mut *out, &line)
                    .map_err(|e| CoreError::internal_from("writing the export", e))?;
                out.write_all(b"\n").map_err(io)?;
            }
        }
        out.flush().map_err(io)?;
        Ok(cp)
    }
}

impl Custos {
    /// The regions with stores (and so an audit log) of their own, besides the main log.
    pub fn log_regions(&self) -> Vec<String> {
        self.store
            .regions()
            .iter()
            .map(|r| r.name.clone())
            .collect()
    }

    /// The orgs whose rows are in the stores of more than one region: each must live in
    /// exactly one, so any is a move that was interrupted (asking for it again finishes it)
    /// or a defect. Empty when no region has stores of its own.
    pub async fn orgs_in_several_stores(&self) -> Result<Vec<String>, CoreError> {
        // A deployment with regional stores lists every store's orgs one after another.
        let mut seen = std::collections::BTreeMap::<String, u32>::new();
        for org in self.store.orgs().await? {
            *seen.entry(org.id).or_default() += 1;
        }
        Ok(seen
            .into_iter()
            .filter(|(_, n)| *n > 1)
            .map(|(id, _)| id)
            .collect())
    }

    /// The log of `region` (`None`: the main log).
    fn log_of_region(&self, region: Option<&str>) -> Result<Arc<dyn Store>, CoreError> {
        let Some(name) = region else {
            return Ok(self.store.main().clone());
        };
        self.store
            .regions()
            .iter()
            .find(|r| r.name == name)
            .map(|r| r.store.clone())
            .ok_or_else(|| {
                CoreError::invalid(
                    "region",
                    format!("{name:?} is not a region with stores of its own"),
                )
            })
    }

    /// The log a caller's audit requests read: a member's org's region log, else the main.
    pub(crate) async fn log_of_org(&self, scope: &OrgScope) -> Result<Arc<dyn Store>, CoreError> {
        Ok(self.store.for_org(scope).await?.clone())
    }

    async fn log_of_caller(&self, caller: &Caller) -> Result<Arc<dyn Store>, CoreError> {
        match &caller.principal {
            Principal::Member { scope, .. } => self.log_of_org(scope).await,
            _ => Ok(self.store.main().clone()),
        }
    }
}

fn checkpoint_view(cp: &StoredCheckpoint) -> Result<CheckpointView, CoreError> {
    let body = cp
        .note
        .split_once("\n\n")
        .map(|(b, _)| format!("{b}\n"))
        .unwrap_or_default();
    let head = Checkpoint::parse(&body)
        .map_err(|e| CoreError::internal_from(format!("stored checkpoint {}", cp.size), e))?;
    Ok(CheckpointView {
        origin: head.origin,
        size: cp.size,
        root: base64::engine::general_purpose::STANDARD.encode(head.root),
        time: cp.time,
        checkpoint: cp.note.clone(),
    })
}
