//! A data subject's contact: an e-mail address the org gives Custos so that the person can be
//! told about their requests (and, later, sent privacy-center codes). It is sealed under the
//! subject's own key, so erasing the subject makes it unreadable at once; the row goes with
//! the subject's tokens when the erasure completes.
//!
//! Not for: deciding whether the person is e-mailed (the org's `channels.email_subjects`
//! setting does, see `request_notices.rs`).

use custos_audit::{AuditAction, Details};
use custos_store::OrgScope;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::authz::Operation;
use crate::sealed_text::SealedText;
use crate::{Caller, CoreError, Custos};

/// The part name of a sealed contact in its associated data.
const CONTACT_PART: &str = "subject-contact";

/// `PUT /v1/orgs/{org}/subjects/{subject}/contact`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactChange {
    /// The person's e-mail address; `null` removes the contact.
    pub email: Option<String>,
}

/// What a contact change left: never the address itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ContactState {
    /// The subject's keyed reference.
    pub subject_ref: String,
    /// Whether an e-mail address is kept.
    pub email: bool,
}

impl Custos {
    /// Sets or removes a subject's contact (owner, admin, service). Audited with the
    /// subject's reference, never the address.
    pub async fn set_subject_contact(
        &self,
        caller: &Caller,
        org: &str,
        subject: &str,
        change: ContactChange,
    ) -> Result<ContactState, CoreError> {
        crate::records::check_subject(&Some(subject.to_string()))?;
        if let Some(email) = &change.email {
            if !crate::org_channels::is_email(email) {
                return Err(CoreError::invalid("email", "is not an e-mail address"));
            }
        }
        let grant = self
            .authorize(caller, Operation::SubjectContact, org)
            .await?;
        let scope = grant.scope;
        let subject_ref = self.vault.subject_ref(scope.org_id(), subject).await?;
        let sealed = match &change.email {
            Some(email) => Some(
                self.seal_text(&scope, Some(&subject_ref), &contact(&subject_ref), email)
                    .await?,
            ),
            None => None,
        };
        let event = self
            .event(caller, AuditAction::SubjectContact)
            .org(scope.org_id())
            .details(
                Details::new()
                    .subject_ref(subject_ref.clone())
                    .status(if sealed.is_some() { "set" } else { "removed" }),
            );
        self.store
            .for_org(&scope)
            .await?
            .set_subject_contact(&scope, &subject_ref, sealed, self.now(), &[event])
            .await?;
        Ok(ContactState {
            subject_ref,
            email: change.email.is_some(),
        })
    }

    /// The subject's e-mail address, if one is kept and still readable (erasure destroys
    /// the key it is sealed under).
    pub(crate) async fn subject_email(
        &self,
        scope: &OrgScope,
        subject_ref: &str,
    ) -> Result<Option<String>, CoreError> {
        let Some(sealed) = self
            .store
            .for_org(scope)
            .await?
            .subject_contact(scope, subject_ref)
            .await?
        else {
            return Ok(None);
        };
        self.open_text(scope, &contact(subject_ref), &sealed).await
    }
}

/// Where a subject's contact is sealed (under the subject's own key).
fn contact(subject_ref: &str) -> SealedText<'_> {
    SealedText {
        id: subject_ref,
        part: CONTACT_PART,
        what: "a subject's contact",
    }
}
