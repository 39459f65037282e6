//! What an audit event acted on, as a typed [`Target`]: written as `kind:id` text
//! (`record:<id>`, `member:<id>`, `key:root`), or one bare word for the few targets that are
//! not one thing (`records`, `deletion_log`, `backup`).

use std::fmt;

/// What an audit event acted on.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Target {
    /// An org, by id.
    Org(String),
    /// A member, by id.
    Member(String),
    /// A record, by id.
    Record(String),
    /// Several records created at once (their ids are in the event's details).
    Records,
    /// A data category, by name.
    Category(String),
    /// A data subject request, by id.
    Request(String),
    /// A legal hold, by id.
    Hold(String),
    /// A key: `root`, or `org/<org id>`.
    Key(String),
    /// An operator's support request (and the grant it becomes once approved), by id.
    SupportRequest(String),
    /// One of the deployment's operators, by id.
    Operator(String),
    /// An incident, by id.
    Incident(String),
    /// An LLM provider of the gateway, by name.
    Llm(String),
    /// An org's deletion log (a purge writes rows to it).
    DeletionLog,
    /// The deployment's backups (restore and reconcile).
    Backup,
    /// A target written by encoding version 1 in a form this build does not type; kept
    /// verbatim so that the event re-encodes to its exact bytes. Never written by version 2.
    Legacy(String),
}

/// Why text is not a target.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("audit target {text:?} is not one of record:, member:, org:, category:, request:, hold:, key:, llm:, support_request:, operator:, incident:<id>, records, deletion_log, backup")]
pub struct TargetError {
    text: String,
}

impl Target {
    /// Parses a target as this build writes it; anything else is an error.
    pub fn parse(text: &str) -> Result<Target, TargetError> {
        let error = || TargetError { text: text.into() };
        match text {
            "records" => return Ok(Target::Records),
            "deletion_log" => return Ok(Target::DeletionLog),
            "backup" => return Ok(Target::Backup),
            _ => {}
        }
        let (kind, id) = text.split_once(':').ok_or_else(error)?;
        if id.is_empty() || id.chars().any(char::is_control) {
            return Err(error());
        }
        let id = id.to_string();
        Ok(match kind {
            "org" => Target::Org(id),
            "member" => Target::Member(id),
            "record" => Target::Record(id),
            "category" => Target::Category(id),
            "request" => Target::Request(id),
            "hold" => Target::Hold(id),
            "key" => Target::Key(id),
            "llm" => Target::Llm(id),
            "support_request" => Target::SupportRequest(id),
            "operator" => Target::Operator(id),
            "incident" => Target::Incident(id),
            _ => return Err(error()),
        })
    }

    /// Parses a version-1 target: a form this build does not type is kept as
    /// [`Target::Legacy`] (version 1 targets were free text).
    pub fn parse_lenient(text: &str) -> Target {
        match Target::parse(text) {
            Ok(target) if target.to_string() == text => target,
            _ => Target::Legacy(text.to_string()),
        }
    }

    /// The record id, when the target is one record.
    pub fn record_id(&self) -> Option<&str> {
        match self {
            Target::Record(id) => Some(id),
            _ => None,
        }
    }

    /// The request id, when the target is a data subject request.
    pub fn request_id(&self) -> Option<&str> {
        match self {
            Target::Request(id) => Some(id),
            _ => None,
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (kind, id) = match self {
            Target::Records => return f.write_str("records"),
            Target::DeletionLog => return f.write_str("deletion_log"),
            Target::Backup => return f.write_str("backup"),
            Target::Legacy(text) => return f.write_str(text),
            Target::Org(id) => ("org", id),
            Target::Member(id) => ("member", id),
            Target::Record(id) => ("record", id),
            Target::Category(id) => ("category", id),
            Target::Request(id) => ("request", id),
            Target::Hold(id) => ("hold", id),
            Target::Key(id) => ("key", id),
            Target::Llm(id) => ("llm", id),
            Target::SupportRequest(id) => ("support_request", id),
            Target::Operator(id) => ("operator", id),
            Target::Incident(id) => ("incident", id),
        };
        write!(f, "{kind}:{id}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_round_trips() {
        for text in [
            "org:o1",
            "member:m-1",
            "record:0190f3a2-7c1e",
            "records",
            "category:support_tickets",
            "support_request:sr-1",
            "operator:op-1",
            "incident:inc-1",
            "request:r1",
            "hold:h1",
            "key:root",
            "key:org/o1",
            "llm:openai",
            "deletion_log",
            "backup",
        ] {
            let target = Target::parse(text).unwrap();
            assert!(!matches!(target, Target::Legacy(_)), "{text}");
            assert_eq!(target.to_string(), text);
            assert_eq!(Target::parse_lenient(text), target);
        }
    }

    #[test]
    fn unknown_forms_fail_strictly_and_stay_verbatim_leniently() {
        for text in ["deployment", "record:", "thing:1", "", "record:a\nb"] {
            let error = Target::parse(text).unwrap_err();
            assert!(error.to_string().contains("is not one of"), "{error}");
            let legacy = Target::parse_lenient(text);
            assert_eq!(legacy, Target::Legacy(text.into()));
            assert_eq!(legacy.to_string(), text);
        }
    }
}
