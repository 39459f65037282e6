//! Free text that Custos keeps in plain text (org and member names, hold, extension and
//! rejection reasons): it lands in listings and audit leaves, which are never erased, so it
//! must not carry identifiers of a person.

use custos_pii::EntityKind;

use crate::{CoreError, Custos};

impl Custos {
    /// Refuses `value` of `field` if the scanner finds an identifier in it (an e-mail
    /// address, a phone, card or national id number, an IBAN, an IP address...). Names of
    /// people are left alone: a member's display name is expected to be one.
    pub(crate) fn check_free_text(&self, field: &str, value: &str) -> Result<(), CoreError> {
        let mut kinds: Vec<&str> = self
            .scanner
            .scan(value)
            .iter()
            .filter(|f| f.entity != EntityKind::Person)
            .map(|f| f.entity.as_str())
            .collect();
        if kinds.is_empty() {
            return Ok(());
        }
        kinds.sort_unstable();
        kinds.dedup();
        Err(CoreError::invalid(
            field,
            format!(
                "holds personal data ({}); it is stored in plain text and in the audit log, \
                 which is never erased: leave identifiers out (refer to a subject by its id in \
                 the request, or to a ticket)",
                kinds.join(", ")
            ),
        ))
    }
}
