//! Arbitrary bytes into the scanner and the operators: no panic, offsets always valid,
//! redaction leaves no detected value, tokenize round-trips.
#![no_main]

use std::sync::OnceLock;

use custos_pii::{
    anonymize, detokenize, Operator, OperatorContext, Operators, Scanner, TokenVault,
};
use libfuzzer_sys::fuzz_target;

fn scanner() -> &'static Scanner {
    static S: OnceLock<Scanner> = OnceLock::new();
    S.get_or_init(Scanner::new)
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let findings = scanner().scan(&text);
    for f in &findings {
        assert!(text.get(f.byte_start..f.byte_end).is_some());
        assert!(f.start <= f.end && f.byte_start < f.byte_end);
    }
    let out = anonymize(
        &text,
        &findings,
        &Operators::uniform(Operator::Redact),
        &mut OperatorContext::new(),
    )
    .expect("redact needs no context");
    for f in &findings {
        let v = f.value(&text).unwrap();
        // A value can legitimately reappear if it is a substring of a marker or of untouched text.
        if v.len() > 12 && !text.replacen(v, "", 1).contains(v) {
            assert!(!out.text.contains(v), "value left after redaction");
        }
    }
    if !text.contains('<') {
        let mut vault = TokenVault::new();
        let tok = anonymize(
            &text,
            &findings,
            &Operators::uniform(Operator::Tokenize),
            &mut OperatorContext::new().with_vault(&mut vault),
        )
        .expect("vault given");
        assert_eq!(detokenize(&tok.text, &vault), text);
    }
});
