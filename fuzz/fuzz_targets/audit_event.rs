//! Arbitrary bytes into the audit event decoder (what every reader of a stored leaf uses): no
//! panic; whatever decodes re-encodes to the very bytes (version 2 is canonical) or, for a
//! version-1 leaf, decodes again to the same event; a target re-prints as parsed.
#![no_main]

use custos_audit::{AuditEvent, Target};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(event) = AuditEvent::from_canonical_bytes(data) {
        let bytes = event.to_canonical_bytes();
        if event.v == 2 {
            assert_eq!(bytes, data, "a version-2 event is its canonical bytes");
        }
        assert_eq!(AuditEvent::from_canonical_bytes(&bytes).unwrap(), event);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(target) = Target::parse(text) {
            assert_eq!(target.to_string(), text);
        }
        assert_eq!(Target::parse_lenient(text).to_string(), text);
    }
});
