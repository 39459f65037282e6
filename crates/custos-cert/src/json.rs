//! Strict JSON reading for signed documents: I-JSON (RFC 7493) as RFC 8785 requires.
//!
//! serde_json keeps the last of duplicate keys, and two verifiers that pick different
//! duplicates could disagree about what was signed; numbers past 2^53 or with fractions print
//! differently across JCS implementations. Both are refused here, before anything is hashed.
//! Hand-written because it is one small visitor and no maintained crate does only this.

use std::collections::HashSet;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

/// The largest integer every JSON implementation reads exactly (2^53 - 1).
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// Walks a document and fails on duplicate keys and on numbers that are not safe integers.
struct Checked;

impl<'de> Deserialize<'de> for Checked {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(CheckedVisitor)
    }
}

struct CheckedVisitor;

impl<'de> Visitor<'de> for CheckedVisitor {
    type Value = Checked;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("I-JSON")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Checked, E> {
        if v > MAX_SAFE_INTEGER {
            return Err(E::custom(format!("integer {v} is larger than 2^53 - 1")));
        }
        Ok(Checked)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Checked, E> {
        if v.unsigned_abs() > MAX_SAFE_INTEGER {
            return Err(E::custom(format!("integer {v} is beyond 2^53 - 1")));
        }
        Ok(Checked)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Checked, E> {
        Err(E::custom("numbers must be integers"))
    }

    fn visit_str<E>(self, _: &str) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_unit<E>(self) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Checked, A::Error> {
        while seq.next_element::<Checked>()?.is_some() {}
        Ok(Checked)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Checked, A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            map.next_value::<Checked>()?;
            if !seen.insert(key) {
                return Err(de::Error::custom("duplicate object key"));
            }
        }
        Ok(Checked)
    }
}

/// Parses `bytes` as one I-JSON document: no duplicate keys, integers only, within ±(2^53 - 1).
pub fn parse_strict(bytes: &[u8]) -> Result<Value, serde_json::Error> {
    serde_json::from_slice::<Checked>(bytes)?;
    serde_json::from_slice(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_documents() {
        let v = parse_strict(br#"{"a":[1,-2,"x",null,true,{"b":9007199254740991}]}"#).unwrap();
        assert_eq!(v["a"][5]["b"], 9007199254740991u64);
    }

    #[test]
    fn refuses_duplicates_fractions_and_big_integers() {
        for doc in [
            r#"{"a":1,"a":2}"#,
            r#"{"x":{"a":1,"b":2,"a":1}}"#,
            r#"[{"a":1,"a":1}]"#,
            r#"{"a":1.5}"#,
            r#"{"a":1e3}"#,
            r#"{"a":9007199254740992}"#,
            r#"{"a":-9007199254740992}"#,
            r#"{"a":1"#,
            "\"\\ud800\"",
        ] {
            assert!(parse_strict(doc.as_bytes()).is_err(), "{doc}");
        }
    }
}
