//! Key rotation as a core operation: authorized from the table (the system only), audited
//! before anything changes, so a rotation whose audit append fails never starts.

use custos_audit::{AuditAction, Outcome};
use custos_crypto::RotationReport;

use custos_audit::{Details, Target};

use crate::authz::Operation;
use crate::{Caller, CoreError, Custos};

impl Custos {
    /// Rotates the root key (re-wrapping every org key) or, with `org`, that org's key
    /// (re-wrapping its subject keys); content is never re-encrypted.
    ///
    /// Fails closed: a `key.rotate` event saying the rotation starts is appended first, and
    /// if that append fails nothing is rotated. The result (new version and re-wrap count, or
    /// the failure) is appended as a second event; if only that append fails, the rotation is
    /// done and the error says so, and the log shows a start without its end.
    pub async fn rotate_keys(
        &self,
        caller: &Caller,
        org: Option<&str>,
    ) -> Result<RotationReport, CoreError> {
        self.authorize_global(caller, Operation::KeysRotate).await?;
        if let Some(org) = org {
            if self.store.org(org).await?.is_none() {
                return Err(CoreError::NotFound(format!("org {org}")));
            }
        }
        let target = match org {
            Some(org) => Target::Key(format!("org/{org}")),
            None => Target::Key("root".into()),
        };
        let event = |details: Details| {
            let e = self
                .event(caller, AuditAction::KeyRotate)
                .target(target.clone())
                .details(details);
            match org {
                Some(org) => e.org(org),
                None => e,
            }
        };
        self.store
            .append_audit(&[event(Details::new().phase("started"))])
            .await?;
        let rotated = match org {
            Some(org) => self.vault.rotate_org(org).await,
            None => self.vault.rotate_root().await,
        };
        let (done, result) = match rotated {
            Ok(report) => (
                event(
                    Details::new()
                        .phase("done")
                        .new_version(u64::from(report.new_version))
                        .rewrapped(report.rewrapped as u64),
                ),
                Ok(report),
            ),
            Err(e) => (
                event(Details::new().phase("failed")).outcome(Outcome::Failed),
                Err(CoreError::from(e)),
            ),
        };
        if let Err(e) = self.store.append_audit(&[done]).await {
            return Err(CoreError::internal_from(
                "the rotation ran but its result could not be audited",
                e,
            ));
        }
        result
    }
}
