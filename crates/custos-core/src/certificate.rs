//! Certificates of deletion: the statement an erasure round makes, the `subject.erase` audit
//! event bound to it, and the sealed, signed certificate (see `custos-cert` for the format
//! and its offline verification).

use custos_audit::AuditAction;
use custos_cert::{
    FormatV1, HeldBack, Issuer, Method, Sanitization, Statement, Status, Subject, Tiers, Times,
};
use custos_store::{AuditFilter, OrgScope, RequestStatus, StoredCertificate, SubjectRequest};

use custos_audit::{Details, Target};

use crate::authz::Operation;
use crate::erasure::Progress;
use crate::{Caller, CoreError, Custos};

/// How Custos checked the erasure it certifies (the certificate's `verification`).
const VERIFICATION: &str = "Every destroyed key id was confirmed absent from the key store \
    before completion; record counts were taken from the store before disposal; the erasure \
    event is included in the audit log under the signed checkpoint below.";

fn method(name: &str) -> Result<Method, CoreError> {
    serde_json::from_value(serde_json::Value::String(name.to_string()))
        .map_err(|_| CoreError::internal(format!("unknown erasure method {name:?}")))
}

impl Custos {
    /// The statement of an erasure round, rebuilt the same from the request and its saved
    /// progress every time (so a resumed issue signs the same statement).
    fn certificate_statement(
        &self,
        scope: &OrgScope,
        request: &SubjectRequest,
        p: &Progress,
    ) -> Result<Statement, CoreError> {
        let signer = self.audit_signer()?;
        let missing =
            || CoreError::internal(format!("request {}: round not completed", request.id));
        let id = p
            .certificate_id
            .as_deref()
            .and_then(|s| s.parse::<uuid::Uuid>().ok())
            .ok_or_else(missing)?;
        let completed = p.completed_at.ok_or_else(missing)?;
        let status = match request.status {
            RequestStatus::Completed => Status::Completed,
            RequestStatus::PartiallyCompleted => Status::PartiallyCompleted,
            other => {
                return Err(CoreError::internal(format!(
                    "request {} is {other}; only finished erasures are certified",
                    request.id
                )))
            }
        };
        let mut sanitization = Vec::with_capacity(p.report.categories.len());
        for (category, c) in &p.report.categories {
            sanitization.push(Sanitization {
                category: category.clone(),
                disposition: c.disposition.clone(),
                method: method(&c.method)?,
                tiers: Tiers {
                    hot: c.hot,
                    archive: c.archive,
                    objects: c.objects,
                },
                held: c.held,
            });
        }
        Ok(Statement {
            format: FormatV1,
            id,
            issued_at: completed,
            status,
            issuer: Issuer {
                tool: "custos".into(),
                version: env!("CARGO_PKG_VERSION").into(),
                origin: signer.origin().to_string(),
                verifier_key: signer.verifier_key(),
            },
            subject: Subject {
                org: scope.org_id().to_string(),
                subject_ref: request.subject_ref.clone(),
                request: request.id.clone(),
            },
            times: Times {
                received: request.received_at,
                due: request.due_at,
                completed,
            },
            sanitization,
            keys_destroyed: p.report.keys_destroyed.clone(),
            tokens_destroyed: p.report.tokens_destroyed,
            held_back: p
                .report
                .held_back
                .iter()
                .map(|h| HeldBack {
                    hold: h.hold.clone(),
                    reason: h.reason.clone(),
                    records: h.records,
                })
                .collect(),
            verification: VERIFICATION.into(),
        })
    }

    /// The `subject.erase` event that a round's certificate is bound to.
    pub(crate) fn certificate_event(
        &self,
        caller: &Caller,
        scope: &OrgScope,
        request: &SubjectRequest,
        p: &Progress,
    ) -> Result<custos_audit::AuditEvent, CoreError> {
        let statement = self.certificate_statement(scope, request, p)?;
        Ok(self
            .event(caller, AuditAction::SubjectErase)
            .org(scope.org_id())
            .target(Target::Request(request.id.to_string()))
            .details(statement.event_details()))
    }

    /// Seals a completed round's statement: finds its `subject.erase` leaf, proves it under
    /// a signed checkpoint, and signs the whole with the deployment key.
    pub(crate) async fn seal_certificate(
        &self,
        scope: &OrgScope,
        request: &SubjectRequest,
        p: &Progress,
    ) -> Result<StoredCertificate, CoreError> {
        let statement = self.certificate_statement(scope, request, p)?;
        // A version-1 event (written before an upgrade) reads back the same details.
        let details = statement.event_details();
        let filter = AuditFilter {
            action: Some(AuditAction::SubjectErase.as_str().into()),
            target: Some(Target::Request(request.id.to_string()).to_string()),
            ..AuditFilter::default()
        };
        let mut found = None;
        let mut from = 0;
        while found.is_none() {
            let page = self
                .store
                .audit_query(Some(scope), &filter, from, 100)
                .await?;
            let Some(last) = page.last() else { break };
            from = last.index + 1;
            found = page.into_iter().find(|e| {
                custos_audit::AuditEvent::from_canonical_bytes(&e.leaf)
                    .is_ok_and(|ev| ev.details == details)
            });
        }
        let entry = found.ok_or_else(|| {
            CoreError::internal(format!(
                "request {}: its subject.erase event is not in the audit log",
                request.id
            ))
        })?;
        // The org's log: its region's own when the region has stores of its own.
        let log = self.log_of_org(scope).await?;
        let checkpoint = self.ensure_checkpoint_in(&log).await?;
        if checkpoint.size <= entry.index {
            return Err(CoreError::internal(
                "the latest checkpoint does not cover the erasure event yet",
            ));
        }
        let proof = log
            .audit_inclusion_proof(entry.index, checkpoint.size)
            .await?;
        let signer = self.audit_signer()?;
        let certificate = statement.seal(entry.leaf, proof, checkpoint.note, |bytes| {
            custos_audit::NoteSigner::sign(signer, bytes)
        });
        Ok(StoredCertificate {
            id: certificate.statement.id.to_string(),
            request_id: request.id.clone(),
            issued_at: certificate.statement.issued_at,
            body: certificate.to_json_pretty(),
        })
    }

    /// The latest certificate of deletion of an erasure request (audited).
    pub async fn request_certificate(
        &self,
        caller: &Caller,
        org: &str,
        id: &str,
    ) -> Result<custos_cert::Certificate, CoreError> {
        let grant = self
            .authorize(caller, Operation::RequestCertificate, org)
            .await?;
        let scope = grant.scope;
        let request = self.load_request(&scope, id).await?;
        let (stored, certificate) = self.latest_certificate(&scope, &request).await?;
        let event = self
            .event(caller, AuditAction::CertificateRead)
            .org(scope.org_id())
            .target(Target::Request(id.to_string()))
            .details(Details::new().certificate(stored));
        self.store.append_audit(&[event]).await?;
        Ok(certificate)
    }

    /// The latest certificate of deletion of `request`, with its id; `not_found` when it has
    /// none.
    pub(crate) async fn latest_certificate(
        &self,
        scope: &OrgScope,
        request: &custos_store::SubjectRequest,
    ) -> Result<(String, custos_cert::Certificate), CoreError> {
        let id = &request.id;
        let latest = self
            .store
            .for_org(scope)
            .await?
            .certificates(scope, &request.id)
            .await?
            .pop()
            .ok_or_else(|| {
                CoreError::NotFound(format!(
                    "certificate of request {id} (only finished erasures have one; this request \
                     is a {} request, {})",
                    request.kind, request.status
                ))
            })?;
        let certificate = serde_json::from_str(&latest.body).map_err(|e| {
            CoreError::internal_from(format!("stored certificate {} is corrupt", latest.id), e)
        })?;
        Ok((latest.id.to_string(), certificate))
    }
}
