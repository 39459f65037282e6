//! Recognizer behaviour that reads like the spec: what is found, what is not, and where.

use custos_pii::{EntityKind, Scanner};

fn found(text: &str) -> Vec<(EntityKind, String)> {
    let s = Scanner::new();
    s.scan(text)
        .into_iter()
        .map(|f| (f.entity, f.value(text).unwrap().to_string()))
        .collect()
}

fn has(text: &str, kind: EntityKind, value: &str) -> bool {
    found(text).iter().any(|(k, v)| *k == kind && v == value)
}

fn none_of(text: &str, kind: EntityKind) -> bool {
    !found(text).iter().any(|(k, _)| *k == kind)
}

#[test]
fn offsets_are_chars_and_bytes() {
    let text = "Grüße! Mail: jürgen@example.com → ok, card 4111 1111 1111 1111";
    let s = Scanner::new();
    let f = s.scan(text);
    let card = f
        .iter()
        .find(|f| f.entity == EntityKind::CreditCard)
        .unwrap();
    let chars: Vec<char> = text.chars().collect();
    let by_chars: String = chars[card.start..card.end].iter().collect();
    assert_eq!(by_chars, "4111 1111 1111 1111");
    assert_eq!(&text[card.byte_start..card.byte_end], "4111 1111 1111 1111");
    assert!(
        card.byte_start > card.start,
        "non-ASCII before the card shifts bytes"
    );
}

#[test]
fn credit_cards() {
    assert!(has(
        "pay with 4111-1111-1111-1111 now",
        EntityKind::CreditCard,
        "4111-1111-1111-1111"
    ));
    assert!(has(
        "amex 3782 822463 10005",
        EntityKind::CreditCard,
        "3782 822463 10005"
    ));
    assert!(
        none_of("card 4111 1111 1111 1112", EntityKind::CreditCard),
        "Luhn-invalid"
    );
    assert!(
        none_of("id 1234567812345670", EntityKind::CreditCard),
        "unknown issuer prefix"
    );
}

#[test]
fn ssns() {
    assert!(has("SSN 536-90-4399", EntityKind::UsSsn, "536-90-4399"));
    assert!(has("ssn: 536904399", EntityKind::UsSsn, "536904399"));
    for bad in [
        "000-12-3456",
        "666-12-3456",
        "900-12-3456",
        "123-00-4567",
        "123-45-0000",
    ] {
        assert!(none_of(&format!("SSN {bad}"), EntityKind::UsSsn), "{bad}");
    }
    assert!(
        none_of("order 536904399 shipped", EntityKind::UsSsn),
        "bare 9 digits need context"
    );
}

#[test]
fn ibans() {
    assert!(has(
        "to DE89 3704 0044 0532 0130 00.",
        EntityKind::IbanCode,
        "DE89 3704 0044 0532 0130 00"
    ));
    assert!(
        none_of("to DE89 3704 0044 0532 0130 01.", EntityKind::IbanCode),
        "bad mod-97"
    );
}

#[test]
fn ip_addresses() {
    assert!(has("from 10.1.2.3:", EntityKind::IpAddress, "10.1.2.3"));
    assert!(has(
        "v6 2001:db8::1 up",
        EntityKind::IpAddress,
        "2001:db8::1"
    ));
    assert!(none_of("version 1.2.3.4", EntityKind::IpAddress));
    assert!(none_of("value 300.1.1.1", EntityKind::IpAddress));
}

#[test]
fn phones() {
    assert!(has(
        "call (415) 555-2671 today",
        EntityKind::PhoneNumber,
        "(415) 555-2671"
    ));
    assert!(has(
        "call +44 20 7946 0958",
        EntityKind::PhoneNumber,
        "+44 20 7946 0958"
    ));
    assert!(has(
        "tel +1-202-555-0175x3321",
        EntityKind::PhoneNumber,
        "+1-202-555-0175x3321"
    ));
    assert!(none_of("on 2024-03-15 we shipped", EntityKind::PhoneNumber));
}

#[test]
fn secrets_and_wallets() {
    assert!(has(
        "key AKIAIOSFODNN7EXAMPLE",
        EntityKind::Secret,
        "AKIAIOSFODNN7EXAMPLE"
    ));
    assert!(has(
        "btc 1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa",
        EntityKind::CryptoWallet,
        "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa"
    ));
    assert!(none_of(
        "btc 1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNb",
        EntityKind::CryptoWallet
    ));
}

#[test]
fn names_and_addresses() {
    assert!(has(
        "I met Anna Kowalski there",
        EntityKind::Person,
        "Anna Kowalski"
    ));
    assert!(none_of("Will you grant access?", EntityKind::Person));
    assert!(has(
        "at 12 Oak St. Apt 4B, Springfield, IL 62704.",
        EntityKind::StreetAddress,
        "12 Oak St. Apt 4B, Springfield, IL 62704"
    ));
}

#[test]
fn scan_for_limits_kinds() {
    let s = Scanner::new();
    let text = "mail a@b.io, ssn 536-90-4399";
    let f = s.scan_for(text, &[EntityKind::UsSsn]);
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].entity, EntityKind::UsSsn);
}

#[test]
fn entity_names_round_trip() {
    for k in EntityKind::ALL {
        assert_eq!(k.as_str().parse::<EntityKind>().unwrap(), *k);
        assert_eq!(EntityKind::from_policy_name(k.policy_name()), Some(*k));
        let json = serde_json::to_string(k).unwrap();
        assert_eq!(json, format!("\"{}\"", k.as_str()));
    }
    assert_eq!(
        EntityKind::from_policy_name("email"),
        Some(EntityKind::EmailAddress)
    );
    assert_eq!(EntityKind::from_policy_name("nope"), None);
}

#[test]
fn scanner_is_send_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Scanner>();
}
