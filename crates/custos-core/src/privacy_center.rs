//! What a data subject may do in the org's privacy center, once a link signed by the org's
//! application opened a session: see their own requests, file an access or erasure request
//! for themselves, download their export and the certificate of their erasure.
//!
//! Every call is authorized from the authorization table (the `privacy.*` rows, the only ones
//! open to [`Principal::Subject`]) and reaches the subject's own requests only: another
//! subject's request answers `not_found`, as an unknown one does.
//!
//! Not for: the links and sessions themselves (`privacy_links.rs`) or the HTML pages (the
//! API crate).

use custos_audit::{AuditAction, Details, Target};
use custos_store::{RequestFilter, RequestKind, SubjectRequest};

use crate::authz::Operation;
use crate::privacy_links::LinkedSubject;
use crate::{Caller, CoreError, Custos, ExportFormat, FileDownload, Principal, RequestView};

/// The most requests the privacy center lists (a person files a handful).
const MAX_LISTED: u32 = 50;

/// What the privacy center shows a subject.
#[derive(Debug, Clone)]
pub struct PrivacyCenterView {
    /// The org's display name.
    pub org_name: String,
    /// The org's colors for the page.
    pub colors: crate::privacy_links::PrivacyColors,
    /// The subject's requests, newest first.
    pub requests: Vec<RequestView>,
    /// Whether the subject was erased (nothing more can be filed from this session).
    pub erased: bool,
}

/// The subject a privacy-center caller acts as.
fn linked(caller: &Caller) -> Result<&LinkedSubject, CoreError> {
    match &caller.principal {
        Principal::Subject(linked) => Ok(linked),
        // The table opens the privacy rows to subjects only: nobody else gets here.
        _ => Err(CoreError::internal(
            "a privacy-center call by a non-subject",
        )),
    }
}

impl Custos {
    /// The caller acting for the subject of privacy-center session `token` in `org`.
    pub async fn privacy_caller(
        &self,
        org: &str,
        token: &str,
        context: &crate::RequestContext,
    ) -> Result<Caller, CoreError> {
        let subject = self.privacy_session(org, token).await?;
        Ok(Caller::in_context(Principal::Subject(subject), context))
    }

    /// The privacy center's page for the calling subject (audited `privacy.read`).
    pub async fn privacy_center(
        &self,
        caller: &Caller,
        org: &str,
    ) -> Result<PrivacyCenterView, CoreError> {
        let grant = self
            .authorize(caller, Operation::PrivacyCenterRead, org)
            .await?;
        let subject = linked(caller)?;
        let filter = RequestFilter {
            kind: None,
            statuses: Vec::new(),
            subject_ref: Some(subject.subject_ref.clone()),
        };
        let mut rows = self
            .store
            .for_org(&grant.scope)
            .await?
            .list_requests(&grant.scope, &filter, None, MAX_LISTED)
            .await?;
        rows.sort_by_key(|r| std::cmp::Reverse(r.received_at));
        let event = self
            .event(caller, AuditAction::PrivacyRead)
            .org(grant.scope.org_id());
        self.store.append_audit(&[event]).await?;
        let mut requests = Vec::with_capacity(rows.len());
        for row in rows {
            requests.push(self.request_view(&grant.scope, row).await?);
        }
        let org_name = self
            .store
            .org(org)
            .await?
            .map(|(_, o)| o.name)
            .unwrap_or_default();
        Ok(PrivacyCenterView {
            org_name,
            colors: grant
                .settings
                .privacy_center
                .map(|c| c.colors)
                .unwrap_or_default(),
            requests,
            erased: subject.subject.is_none(),
        })
    }

    /// Files a request of `kind` for the calling subject; an erasure runs at once (and
    /// resumes the subject's unfinished one). An access or portability request while one of
    /// the same kind is still open answers that one.
    pub async fn privacy_file_request(
        &self,
        caller: &Caller,
        org: &str,
        kind: RequestKind,
    ) -> Result<RequestView, CoreError> {
        let grant = self
            .authorize(caller, Operation::PrivacyRequestCreate, org)
            .await?;
        let scope = grant.scope;
        let subject = linked(caller)?;
        let Some(identifier) = subject.subject.as_deref() else {
            return Err(CoreError::Conflict(
                "you were erased: this session can show your requests and certificates, not \
                 file new ones"
                    .into(),
            ));
        };
        let request = match kind {
            RequestKind::Erasure => self.erase(caller, &scope, identifier).await?,
            kind => match self.open_request_of(&scope, subject, kind).await? {
                Some(open) => open,
                None => self.file_request(caller, &scope, kind, identifier).await?,
            },
        };
        self.request_view(&scope, request).await
    }

    /// The subject's open request of `kind`, if any.
    async fn open_request_of(
        &self,
        scope: &custos_store::OrgScope,
        subject: &LinkedSubject,
        kind: RequestKind,
    ) -> Result<Option<SubjectRequest>, CoreError> {
        let filter = RequestFilter {
            kind: Some(kind),
            statuses: vec![
                custos_store::RequestStatus::Received,
                custos_store::RequestStatus::InProgress,
            ],
            subject_ref: Some(subject.subject_ref.clone()),
        };
        Ok(self
            .store
            .for_org(scope)
            .await?
            .list_requests(scope, &filter, None, 1)
            .await?
            .pop())
    }

    /// One of the calling subject's own requests, authorized as `op`; another subject's
    /// answers `not_found`.
    async fn own_request(
        &self,
        caller: &Caller,
        op: Operation,
        org: &str,
        id: &str,
    ) -> Result<(crate::access::Grant, SubjectRequest), CoreError> {
        let grant = self.authorize(caller, op, org).await?;
        let subject = linked(caller)?;
        let request = self.load_request(&grant.scope, id).await?;
        if request.subject_ref != subject.subject_ref {
            let error = CoreError::NotFound(format!("request {id}"));
            return Err(self
                .deny(
                    caller,
                    Some(org),
                    op.rule().action,
                    Some(Target::Request(id.to_string())),
                    error,
                )
                .await);
        }
        Ok((grant, request))
    }

    /// The export of the calling subject's own access or portability request in `format`:
    /// everything Custos holds about them (no category is withheld from the person it is
    /// about). Produced by Custos on the subject's behalf on first ask, like any export;
    /// the download is audited `privacy.export` by the subject.
    pub async fn privacy_export(
        &self,
        caller: &Caller,
        org: &str,
        id: &str,
        format: ExportFormat,
    ) -> Result<FileDownload, CoreError> {
        let (grant, _) = self
            .own_request(caller, Operation::PrivacyExport, org, id)
            .await?;
        // The subject holds no member role, so the export's own steps (storing the file,
        // reading it back) run as Custos itself, with this request's ids; the table has
        // already said the subject may have it.
        let system = Caller {
            principal: Principal::System,
            grant: None,
            ..caller.clone()
        };
        let download = self.request_export(&system, org, id, format).await?;
        let event = self
            .event(caller, AuditAction::PrivacyExport)
            .org(grant.scope.org_id())
            .target(Target::Request(id.to_string()))
            .details(Details::new().format(format.name()));
        self.store.append_audit(&[event]).await?;
        Ok(download)
    }

    /// The latest certificate of deletion of the calling subject's own erasure (audited
    /// `privacy.certificate`).
    pub async fn privacy_certificate(
        &self,
        caller: &Caller,
        org: &str,
        id: &str,
    ) -> Result<custos_cert::Certificate, CoreError> {
        let (grant, request) = self
            .own_request(caller, Operation::PrivacyCertificate, org, id)
            .await?;
        let (stored, certificate) = self.latest_certificate(&grant.scope, &request).await?;
        let event = self
            .event(caller, AuditAction::PrivacyCertificate)
            .org(grant.scope.org_id())
            .target(Target::Request(id.to_string()))
            .details(Details::new().certificate(stored));
        self.store.append_audit(&[event]).await?;
        Ok(certificate)
    }
}

impl Custos {
    /// The origins allowed to frame `org`'s privacy center: its `frame_ancestors`, or none
    /// (also for an org that does not exist or cannot be read now; framing is then denied).
    pub async fn privacy_frame_ancestors(&self, org: &str) -> Vec<String> {
        let Ok(Some((scope, _))) = self.store.org(org).await else {
            return Vec::new();
        };
        match self.org_settings_of(&scope).await {
            Ok(settings) => settings
                .privacy_center
                .map(|c| c.frame_ancestors)
                .unwrap_or_default(),
            Err(_) => Vec::new(),
        }
    }
}
