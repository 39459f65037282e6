//! Data subject requests as objects: filing, listing by due time, deadlines computed on the
//! calendar, one extension, rejection. Erasure itself is in `erasure.rs`, exports in
//! `export.rs`.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use custos_audit::AuditAction;
use custos_store::{
    OrgScope, RequestCursor, RequestFilter, RequestKind, RequestStatus, SubjectRequest,
};

use custos_audit::{Details, Target};

use crate::authz::Operation;
use crate::{Caller, CoreError, Custos};

/// Where a request's subject is sealed (under the org's key).
fn request_subject(id: &str) -> crate::sealed_text::SealedText<'_> {
    crate::sealed_text::SealedText {
        id,
        part: SUBJECT_PART,
        what: "a request's subject",
    }
}

/// Most characters of an extension or rejection reason.
const MAX_REASON_CHARS: usize = 1000;
/// Largest page a request listing returns.
const MAX_REQUEST_PAGE: u32 = 1000;
/// Part name of the sealed subject identifier in a request's associated data.
const SUBJECT_PART: &str = "request-subject";

/// A data subject request to file.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRequest {
    /// `access`, `portability` or `erasure`.
    #[serde(rename = "type")]
    pub kind: RequestKind,
    /// The customer's own identifier for the person (as records name it in `subject`).
    pub subject: String,
}

/// An extension of a request's deadline (once, at most `[deletion] erasure_extension_max`).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestExtension {
    /// By how much, as a policy duration (`14d`, `1mo`, `2mo`).
    pub by: String,
    /// Why (told to the person; kept on the request, not in the audit log).
    pub reason: String,
}

/// A rejection of a request that has not started.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestRejection {
    /// Why (kept on the request, not in the audit log).
    pub reason: String,
}

/// Most subjects one bulk erasure takes.
pub const MAX_BULK_SUBJECTS: usize = 10_000;

/// What a bulk erasure did for one subject, in input order.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BulkOutcome {
    /// The subject's position in the input (0-based).
    pub index: usize,
    /// Keyed reference of the subject.
    pub subject_ref: String,
    /// The erasure request (absent if it could not be filed).
    pub request: Option<String>,
    /// `completed`, `partially_completed`, `failed`, or `duplicate` (the same id as an
    /// earlier position, named by `duplicate_of`; erased once, there).
    pub status: String,
    /// For a `duplicate`, the position (0-based) of the id's first occurrence.
    pub duplicate_of: Option<usize>,
    /// The latest certificate of deletion, if one was issued.
    pub certificate: Option<String>,
    /// Why it failed (an error code and message; never the subject).
    pub error: Option<String>,
}

/// One data subject request.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RequestView {
    /// Request id.
    pub id: String,
    /// `access`, `portability` or `erasure`.
    #[serde(rename = "type")]
    pub kind: RequestKind,
    /// `received`, `in_progress`, `completed`, `partially_completed` or `rejected`.
    pub status: RequestStatus,
    /// The subject's identifier while the request is open; `null` once it is done (only the
    /// keyed reference is kept).
    pub subject: Option<String>,
    /// Keyed reference of the subject: what the audit log, the deletion log and certificates
    /// name.
    pub subject_ref: String,
    /// Who filed it (`member:<id>`, `system`).
    pub filed_by: String,
    /// When it was received.
    #[schema(value_type = String, format = DateTime)]
    pub received_at: jiff::Timestamp,
    /// When it is due.
    #[schema(value_type = String, format = DateTime)]
    pub due_at: jiff::Timestamp,
    /// Open and past its due time.
    pub overdue: bool,
    /// When it was extended, if it was.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub extended_at: Option<jiff::Timestamp>,
    /// Why it was extended.
    pub extension_reason: Option<String>,
    /// Why it was rejected, or what legal holds keep back.
    pub status_reason: Option<String>,
    /// When it completed, partially completed or was rejected.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub completed_at: Option<jiff::Timestamp>,
    /// Ids of the certificates of deletion issued for it, oldest first.
    pub certificates: Vec<String>,
}

/// A page of requests.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RequestPage {
    /// Requests by due time, earliest first.
    pub items: Vec<RequestView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// Which requests a listing returns.
#[derive(Debug, Clone, Default)]
pub struct RequestQuery {
    /// Only this type.
    pub kind: Option<RequestKind>,
    /// Only this status.
    pub status: Option<RequestStatus>,
    /// Only open requests past due.
    pub overdue: bool,
    /// Continue after this request id.
    pub cursor: Option<String>,
    /// Page size (default 100).
    pub limit: Option<u32>,
}

fn check_reason(field: &str, reason: &str) -> Result<(), CoreError> {
    let n = reason.trim().chars().count();
    if n == 0 || n > MAX_REASON_CHARS || reason.chars().any(|c| c.is_control() && c != '\n') {
        return Err(CoreError::invalid(
            field,
            format!("must be 1 to {MAX_REASON_CHARS} characters of text"),
        ));
    }
    Ok(())
}

/// The due time of a request received at `received`: calendar-aware (`1mo` from 31 January
/// is 28 or 29 February).
pub fn request_due(within: &custos_policy::Duration, received: jiff::Timestamp) -> jiff::Timestamp {
    within.add_to(received)
}

/// Checks an extension `by` against the policy's maximum, from the current due time; returns
/// the new due time.
pub fn extended_due(
    due: jiff::Timestamp,
    by: &str,
    max: &custos_policy::Duration,
) -> Result<jiff::Timestamp, CoreError> {
    let by: custos_policy::Duration = by
        .parse()
        .map_err(|e| CoreError::invalid("by", format!("{e}")))?;
    let new_due = by.add_to(due);
    if new_due > max.add_to(due) {
        return Err(CoreError::invalid(
            "by",
            format!("may extend by at most {max} ([deletion] erasure_extension_max)"),
        ));
    }
    Ok(new_due)
}

impl Custos {
    /// A request's view for the API, with its certificate ids.
    pub(crate) async fn request_view(
        &self,
        scope: &OrgScope,
        q: SubjectRequest,
    ) -> Result<RequestView, CoreError> {
        let certificates = self
            .store
            .for_org(scope)
            .await?
            .certificates(scope, &q.id)
            .await?
            .into_iter()
            .map(|c| c.id)
            .collect();
        let subject = match &q.subject_sealed {
            Some(sealed) => Some(self.open_request_subject(scope, &q.id, sealed).await?),
            None => None,
        };
        Ok(RequestView {
            overdue: q.status.is_open() && self.now() > q.due_at,
            id: q.id,
            kind: q.kind,
            status: q.status,
            subject,
            subject_ref: q.subject_ref,
            filed_by: q.filed_by,
            received_at: q.received_at,
            due_at: q.due_at,
            extended_at: q.extended_at,
            extension_reason: q.extension_reason,
            status_reason: q.status_reason,
            completed_at: q.completed_at,
            certificates,
        })
    }

    async fn seal_request_subject(
        &self,
        scope: &OrgScope,
        id: &str,
        subject: &str,
    ) -> Result<Vec<u8>, CoreError> {
        self.seal_text(scope, None, &request_subject(id), subject)
            .await
    }

    pub(crate) async fn open_request_subject(
        &self,
        scope: &OrgScope,
        id: &str,
        sealed: &[u8],
    ) -> Result<String, CoreError> {
        self.open_text(scope, &request_subject(id), sealed)
            .await?
            .ok_or_else(|| custos_crypto::CryptoError::KeyDestroyed.into())
    }

    /// Files a data subject request. An erasure runs at once (see [`Custos::run_erasure`]);
    /// access and portability requests complete when their export is first produced.
    pub async fn create_request(
        &self,
        caller: &Caller,
        org: &str,
        new: NewRequest,
    ) -> Result<RequestView, CoreError> {
        let grant = self
            .authorize(caller, Operation::RequestCreate, org)
            .await?;
        let scope = grant.scope;
        crate::records::check_subject(&Some(new.subject.clone()))?;
        let request = match new.kind {
            RequestKind::Erasure => self.erase(caller, &scope, &new.subject).await?,
            kind => {
                self.file_request(caller, &scope, kind, &new.subject)
                    .await?
            }
        };
        self.request_view(&scope, request).await
    }

    /// Erases a subject (`custos dsr erase`): resumes the subject's open erasure request if
    /// there is one (a run that was killed finishes the same request), else files one, and
    /// runs it.
    pub async fn erase_subject(
        &self,
        caller: &Caller,
        org: &str,
        subject: &str,
    ) -> Result<RequestView, CoreError> {
        let grant = self
            .authorize(caller, Operation::RequestCreate, org)
            .await?;
        crate::records::check_subject(&Some(subject.to_string()))?;
        let request = self.erase(caller, &grant.scope, subject).await?;
        self.request_view(&grant.scope, request).await
    }

    pub(crate) async fn erase(
        &self,
        caller: &Caller,
        scope: &OrgScope,
        subject: &str,
    ) -> Result<SubjectRequest, CoreError> {
        let request = match self.erasure_to_run(scope, subject).await? {
            Some(request) => request,
            None => {
                let filed = self
                    .file_request(caller, scope, RequestKind::Erasure, subject)
                    .await?;
                self.fault("erasure.filed")?;
                filed
            }
        };
        self.run_erasure(caller, scope, request).await
    }

    /// The subject's unfinished erasure, if any: open, or done but stopped before its
    /// certificate was stored.
    async fn erasure_to_run(
        &self,
        scope: &OrgScope,
        subject: &str,
    ) -> Result<Option<SubjectRequest>, CoreError> {
        let filter = RequestFilter {
            kind: Some(RequestKind::Erasure),
            statuses: vec![
                RequestStatus::Received,
                RequestStatus::InProgress,
                RequestStatus::Completed,
                RequestStatus::PartiallyCompleted,
            ],
            subject_ref: Some(self.vault.subject_ref(scope.org_id(), subject).await?),
        };
        let mut unfinished = None;
        let mut after = None;
        'pages: loop {
            let page = self
                .store
                .for_org(scope)
                .await?
                .list_requests(scope, &filter, after.as_ref(), 100)
                .await?;
            for request in &page {
                if request.status.is_open()
                    || crate::erasure::Progress::of(request)?.phase
                        == crate::erasure::Phase::Completed
                {
                    unfinished = Some(request.clone());
                    break 'pages;
                }
            }
            match page.last() {
                Some(last) if page.len() == 100 => {
                    after = Some(RequestCursor {
                        due_at: last.due_at,
                        id: last.id.clone(),
                    })
                }
                _ => break,
            }
        }
        Ok(unfinished)
    }

    /// Erases many subjects as one job: every request is filed first (so a crash leaves them
    /// all `received`, and the sweep finishes them), then each runs in turn. Ids are taken
    /// exactly as given: one with leading or trailing whitespace is refused on its own row
    /// (trimming it would erase a different subject than the one named), and a repeated id
    /// is reported as a `duplicate` of its first position instead of being erased twice.
    pub async fn bulk_erase(
        &self,
        caller: &Caller,
        org: &str,
        subjects: Vec<String>,
    ) -> Result<Vec<BulkOutcome>, CoreError> {
        let grant = self
            .authorize(caller, Operation::RequestBulkErase, org)
            .await?;
        let scope = grant.scope;
        if subjects.is_empty() || subjects.len() > MAX_BULK_SUBJECTS {
            return Err(CoreError::invalid(
                "subjects",
                format!("must list 1 to {MAX_BULK_SUBJECTS} subjects"),
            ));
        }
        for (i, s) in subjects.iter().enumerate() {
            crate::records::check_subject(&Some(s.clone())).map_err(|_| {
                CoreError::invalid(&format!("subjects[{i}]"), "must be 1 to 256 characters")
            })?;
        }
        let event = self
            .event(caller, AuditAction::RequestBulk)
            .org(scope.org_id())
            .details(Details::new().subjects(subjects.len() as u64));
        self.store.append_audit(&[event]).await?;
        let mut first: HashMap<&str, usize> = HashMap::new();
        let mut filed = Vec::with_capacity(subjects.len());
        for (index, subject) in subjects.iter().enumerate() {
            let row = if subject.trim() != subject.as_str() {
                Err(format!(
                    "invalid_input: subjects[{index}] has leading or trailing whitespace; ids \
                     are taken exactly as given, so remove it (or name the subject exactly as \
                     it is stored)"
                ))
            } else if let Some(&of) = first.get(subject.as_str()) {
                Ok(Err(of))
            } else {
                first.insert(subject, index);
                let filed_one = match self.erasure_to_run(&scope, subject).await? {
                    Some(open) => open,
                    None => {
                        self.file_request(caller, &scope, RequestKind::Erasure, subject)
                            .await?
                    }
                };
                Ok(Ok(filed_one))
            };
            filed.push(row);
        }
        let mut out: Vec<BulkOutcome> = Vec::with_capacity(filed.len());
        for (index, row) in filed.into_iter().enumerate() {
            let request = match row {
                Ok(Ok(request)) => request,
                Ok(Err(of)) => {
                    out.push(BulkOutcome {
                        index,
                        subject_ref: out[of].subject_ref.clone(),
                        request: out[of].request.clone(),
                        status: "duplicate".into(),
                        duplicate_of: Some(of),
                        certificate: out[of].certificate.clone(),
                        error: None,
                    });
                    continue;
                }
                Err(error) => {
                    let subject_ref = self
                        .vault
                        .subject_ref(scope.org_id(), &subjects[index])
                        .await?;
                    out.push(BulkOutcome {
                        index,
                        subject_ref,
                        request: None,
                        status: "failed".into(),
                        duplicate_of: None,
                        certificate: None,
                        error: Some(error),
                    });
                    continue;
                }
            };
            let subject_ref = request.subject_ref.clone();
            let id = request.id.clone();
            let outcome = match self.run_erasure(caller, &scope, request).await {
                Ok(done) => {
                    let certificate = self
                        .store
                        .for_org(&scope)
                        .await?
                        .certificates(&scope, &done.id)
                        .await?
                        .pop()
                        .map(|c| c.id);
                    BulkOutcome {
                        index,
                        subject_ref,
                        request: Some(id),
                        status: done.status.to_string(),
                        duplicate_of: None,
                        certificate,
                        error: None,
                    }
                }
                Err(e) => BulkOutcome {
                    index,
                    subject_ref,
                    request: Some(id),
                    status: "failed".into(),
                    duplicate_of: None,
                    certificate: None,
                    error: Some(format!("{}: {e}", e.code())),
                },
            };
            out.push(outcome);
        }
        Ok(out)
    }

    /// Stores a new request (status `received`) with its audit event.
    pub(crate) async fn file_request(
        &self,
        caller: &Caller,
        scope: &OrgScope,
        kind: RequestKind,
        subject: &str,
    ) -> Result<SubjectRequest, CoreError> {
        let now = self.now();
        let id = uuid::Uuid::now_v7().to_string();
        let subject_ref = self.vault.subject_ref(scope.org_id(), subject).await?;
        let request = SubjectRequest {
            subject_sealed: Some(self.seal_request_subject(scope, &id, subject).await?),
            id,
            kind,
            status: RequestStatus::Received,
            subject_ref,
            filed_by: caller.actor_name(),
            received_at: now,
            due_at: request_due(&self.policy.deletion.erasure_request_within, now),
            extended_at: None,
            extension_reason: None,
            status_reason: None,
            completed_at: None,
            progress: "{}".into(),
            version: 0,
        };
        let event = self
            .event(caller, AuditAction::RequestCreate)
            .org(scope.org_id())
            .target(Target::Request(request.id.to_string()))
            .details(
                Details::new()
                    .request_type(kind.to_string())
                    .subject_ref(request.subject_ref.clone())
                    .due(request.due_at),
            );
        self.store
            .for_org(scope)
            .await?
            .create_request(scope, &request, &[event])
            .await?;
        Ok(request)
    }

    /// Loads one request of the org or fails with `not_found`.
    pub(crate) async fn load_request(
        &self,
        scope: &OrgScope,
        id: &str,
    ) -> Result<SubjectRequest, CoreError> {
        self.store
            .for_org(scope)
            .await?
            .subject_request(scope, id)
            .await?
            .ok_or_else(|| CoreError::NotFound(format!("request {id}")))
    }

    /// Reads one request (audited).
    pub async fn get_request(
        &self,
        caller: &Caller,
        org: &str,
        id: &str,
    ) -> Result<RequestView, CoreError> {
        let grant = self.authorize(caller, Operation::RequestRead, org).await?;
        let request = self.load_request(&grant.scope, id).await?;
        let event = self
            .event(caller, AuditAction::RequestRead)
            .org(grant.scope.org_id())
            .target(Target::Request(id.to_string()));
        self.store.append_audit(&[event]).await?;
        self.request_view(&grant.scope, request).await
    }

    /// Lists the org's requests by due time (audited).
    pub async fn list_requests(
        &self,
        caller: &Caller,
        org: &str,
        query: RequestQuery,
    ) -> Result<RequestPage, CoreError> {
        let grant = self.authorize(caller, Operation::RequestList, org).await?;
        let scope = grant.scope;
        let limit = query.limit.unwrap_or(100);
        if limit == 0 || limit > MAX_REQUEST_PAGE {
            return Err(CoreError::invalid(
                "limit",
                format!("must be 1 to {MAX_REQUEST_PAGE}"),
            ));
        }
        let after = match &query.cursor {
            None => None,
            Some(id) => {
                let last = self
                    .store
                    .for_org(&scope)
                    .await?
                    .subject_request(&scope, id)
                    .await?
                    .ok_or_else(|| CoreError::invalid("cursor", "names no request of this org"))?;
                Some(RequestCursor {
                    due_at: last.due_at,
                    id: last.id,
                })
            }
        };
        let mut statuses: Vec<RequestStatus> = query.status.into_iter().collect();
        if query.overdue {
            statuses = match query.status {
                Some(s) if !s.is_open() => return Ok(RequestPage::empty()),
                Some(s) => vec![s],
                None => vec![RequestStatus::Received, RequestStatus::InProgress],
            };
        }
        let filter = RequestFilter {
            kind: query.kind,
            statuses,
            subject_ref: None,
        };
        let mut rows = self
            .store
            .for_org(&scope)
            .await?
            .list_requests(&scope, &filter, after.as_ref(), limit)
            .await?;
        let next_cursor = (rows.len() == limit as usize)
            .then(|| rows.last().map(|r| r.id.clone()))
            .flatten();
        let now = self.now();
        if query.overdue {
            rows.retain(|r| r.due_at < now);
        }
        let event = self
            .event(caller, AuditAction::RequestList)
            .org(scope.org_id());
        self.store.append_audit(&[event]).await?;
        let mut items = Vec::with_capacity(rows.len());
        for row in rows {
            items.push(self.request_view(&scope, row).await?);
        }
        // Past due and sorted by due time, the overdue listing ends at the first request that
        // is not overdue yet.
        let next_cursor = next_cursor.filter(|_| !query.overdue || items.len() == limit as usize);
        Ok(RequestPage { items, next_cursor })
    }

    /// Saves a request changed from `old` (compare-and-set on its version) with its events;
    /// `conflict` when someone else changed it meanwhile.
    pub(crate) async fn save_request(
        &self,
        scope: &OrgScope,
        mut request: SubjectRequest,
        certificate: Option<&custos_store::StoredCertificate>,
        audit: &[custos_audit::AuditEvent],
    ) -> Result<SubjectRequest, CoreError> {
        request.version += 1;
        if self
            .store
            .for_org(scope)
            .await?
            .update_request(scope, &request, certificate, audit)
            .await?
        {
            Ok(request)
        } else {
            Err(CoreError::Conflict(format!(
                "request {} changed meanwhile; read it again",
                request.id
            )))
        }
    }

    /// Extends an open request's deadline once, by at most `[deletion]
    /// erasure_extension_max`.
    pub async fn extend_request(
        &self,
        caller: &Caller,
        org: &str,
        id: &str,
        extension: RequestExtension,
    ) -> Result<RequestView, CoreError> {
        let grant = self
            .authorize(caller, Operation::RequestExtend, org)
            .await?;
        let scope = grant.scope;
        check_reason("reason", &extension.reason)?;
        self.check_free_text("reason", &extension.reason)?;
        let mut request = self.load_request(&scope, id).await?;
        if !request.status.is_open() {
            return Err(CoreError::Conflict(format!(
                "request {id} is {}; only open requests can be extended",
                request.status
            )));
        }
        if request.extended_at.is_some() {
            return Err(CoreError::Conflict(format!(
                "request {id} was already extended; a request may be extended once"
            )));
        }
        let due = extended_due(
            request.due_at,
            &extension.by,
            &self.policy.deletion.erasure_extension_max,
        )?;
        request.extended_at = Some(self.now());
        request.extension_reason = Some(extension.reason);
        request.due_at = due;
        let event = self
            .event(caller, AuditAction::RequestExtend)
            .org(scope.org_id())
            .target(Target::Request(id.to_string()))
            .details(Details::new().by(extension.by.to_string()).due(due));
        let request = self.save_request(&scope, request, None, &[event]).await?;
        self.request_view(&scope, request).await
    }

    /// Rejects a request that has not started, with a reason.
    pub async fn reject_request(
        &self,
        caller: &Caller,
        org: &str,
        id: &str,
        rejection: RequestRejection,
    ) -> Result<RequestView, CoreError> {
        let grant = self
            .authorize(caller, Operation::RequestReject, org)
            .await?;
        let scope = grant.scope;
        check_reason("reason", &rejection.reason)?;
        self.check_free_text("reason", &rejection.reason)?;
        let mut request = self.load_request(&scope, id).await?;
        if request.status != RequestStatus::Received {
            return Err(CoreError::Conflict(format!(
                "request {id} is {}; only a request not yet started can be rejected",
                request.status
            )));
        }
        request.status = RequestStatus::Rejected;
        request.status_reason = Some(rejection.reason);
        request.completed_at = Some(self.now());
        request.subject_sealed = None;
        let event = self
            .event(caller, AuditAction::RequestReject)
            .org(scope.org_id())
            .target(Target::Request(id.to_string()));
        let request = self.save_request(&scope, request, None, &[event]).await?;
        self.request_view(&scope, request).await
    }

    /// Open requests of any org past due (the SLA report).
    pub(crate) async fn overdue_requests(
        &self,
        now: jiff::Timestamp,
        limit: u32,
    ) -> Result<Vec<(OrgScope, SubjectRequest)>, CoreError> {
        let due_by = now
            .checked_sub(jiff::SignedDuration::from_micros(1))
            .unwrap_or(now);
        Ok(self
            .store
            .requests_by_status(
                &[RequestStatus::Received, RequestStatus::InProgress],
                None,
                due_by,
                limit,
            )
            .await?)
    }
}

impl RequestPage {
    fn empty() -> Self {
        RequestPage {
            items: Vec::new(),
            next_cursor: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use custos_policy::Duration;

    fn t(s: &str) -> jiff::Timestamp {
        s.parse().unwrap()
    }

    fn d(s: &str) -> Duration {
        s.parse().unwrap()
    }

    #[test]
    fn a_month_from_the_31st_of_january_ends_in_february() {
        assert_eq!(
            request_due(&d("1mo"), t("2027-01-31T10:00:00Z")),
            t("2027-02-28T10:00:00Z")
        );
        assert_eq!(
            request_due(&d("1mo"), t("2028-01-31T10:00:00Z")),
            t("2028-02-29T10:00:00Z")
        );
        assert_eq!(
            request_due(&d("30d"), t("2027-01-31T10:00:00Z")),
            t("2027-03-02T10:00:00Z")
        );
    }

    #[test]
    fn an_extension_stays_within_the_maximum() {
        let due = t("2027-02-28T00:00:00Z");
        let max = d("2mo");
        assert_eq!(
            extended_due(due, "2mo", &max).unwrap(),
            t("2027-04-28T00:00:00Z")
        );
        assert_eq!(
            extended_due(due, "14d", &max).unwrap(),
            t("2027-03-14T00:00:00Z")
        );
        // 61 days from 28 February is past two months (28 April) in this stretch.
        let err = extended_due(due, "61d", &max).unwrap_err();
        assert!(err.to_string().contains("at most 2mo"), "{err}");
        assert!(extended_due(due, "3mo", &max).is_err());
        assert!(extended_due(due, "soon", &max).is_err());
    }
}
