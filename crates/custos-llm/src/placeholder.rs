//! Placeholders: the org key they are derived under, the derivation, and the per-call map back.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Bound;

use custos_pii::EntityKind;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

/// Domain separation, so a placeholder tag can never be replayed as another HMAC use of the key.
const PLACEHOLDER_DOMAIN: &[u8] = b"custos-llm/placeholder/v1\0";

/// Hex characters in a placeholder: 48 bits, enough that two values of one request collide
/// with negligible odds (and a collision is detected and refused, never mis-restored).
const TAG_HEX_LEN: usize = 12;

/// The org key placeholders are derived under (secret: never printed, wiped on drop).
#[derive(Clone)]
pub struct PlaceholderKey(Zeroizing<Vec<u8>>);

impl PlaceholderKey {
    /// Copies `bytes` into a buffer that is zeroized when the key drops.
    pub fn new(bytes: &[u8]) -> PlaceholderKey {
        PlaceholderKey(Zeroizing::new(bytes.to_vec()))
    }
}

impl fmt::Debug for PlaceholderKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PlaceholderKey(<secret>)")
    }
}

/// `<KIND_hhhhhhhhhhhh>`: the kind's name and the first 6 bytes, in lowercase hex, of
/// HMAC-SHA256(key, "custos-llm/placeholder/v1\0" + KIND + "\0" + value).
pub fn placeholder(key: &PlaceholderKey, kind: EntityKind, value: &str) -> String {
    placeholder_keyed(&key.mac(), kind, value)
}

impl PlaceholderKey {
    /// The HMAC state keyed once, to be cloned per value (keying costs as much as hashing a
    /// short value).
    pub(crate) fn mac(&self) -> Hmac<Sha256> {
        <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC accepts any key length")
    }
}

/// [`placeholder`] with the key's HMAC state already keyed ([`PlaceholderKey::mac`]).
pub(crate) fn placeholder_keyed(keyed: &Hmac<Sha256>, kind: EntityKind, value: &str) -> String {
    let mut mac = keyed.clone();
    mac.update(PLACEHOLDER_DOMAIN);
    mac.update(kind.as_str().as_bytes());
    mac.update(b"\0");
    mac.update(value.as_bytes());
    let tag = mac.finalize().into_bytes();
    let kind = kind.as_str();
    let mut out = String::with_capacity(kind.len() + TAG_HEX_LEN + 3);
    out.push('<');
    out.push_str(kind);
    out.push('_');
    out.push_str(&hex::encode(&tag[..TAG_HEX_LEN / 2]));
    out.push('>');
    out
}

/// True for text shaped like a placeholder: `<`, no other angle bracket, `>` last. Restoration
/// relies on this shape to find candidates with one byte search.
pub(crate) fn is_placeholder_shaped(p: &str) -> bool {
    let b = p.as_bytes();
    b.len() >= 2
        && b[0] == b'<'
        && b[b.len() - 1] == b'>'
        && !b[1..b.len() - 1].iter().any(|&c| c == b'<' || c == b'>')
}

/// Placeholder → original value, for one call (built from the request's own values).
#[derive(Default, Clone)]
pub struct PlaceholderMap {
    // Ordered, so "is this text a prefix of some placeholder" is one range lookup.
    entries: BTreeMap<String, String>,
    max_len: usize,
}

impl fmt::Debug for PlaceholderMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The values are the personal data: show only the size.
        f.debug_struct("PlaceholderMap")
            .field("len", &self.entries.len())
            .finish()
    }
}

impl PlaceholderMap {
    /// Adds a pair. A placeholder must look like `<...>` with no angle bracket inside (every
    /// [`placeholder`] does); any other text is ignored, since restoration could not find it.
    pub fn insert(&mut self, placeholder: String, value: String) {
        if !is_placeholder_shaped(&placeholder) {
            return;
        }
        self.max_len = self.max_len.max(placeholder.len());
        self.entries.insert(placeholder, value);
    }

    /// Number of placeholders.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when there is nothing to restore.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The original value of a placeholder.
    pub fn get(&self, p: &str) -> Option<&str> {
        self.entries.get(p).map(String::as_str)
    }

    /// Length in bytes of the longest placeholder (0 when empty): the most a restorer holds back.
    pub fn max_placeholder_len(&self) -> usize {
        self.max_len
    }

    /// Every (placeholder, value) pair, ordered by placeholder.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(p, v)| (p.as_str(), v.as_str()))
    }

    /// True when `text` is a proper prefix of some placeholder (so more text could complete it).
    pub(crate) fn is_proper_prefix(&self, text: &str) -> bool {
        if text.len() >= self.max_len {
            return false;
        }
        self.entries
            .range::<str, _>((Bound::Included(text), Bound::Unbounded))
            .next()
            .is_some_and(|(p, _)| p.len() > text.len() && p.starts_with(text))
    }

    /// The placeholder `text` starts with, if any: (its length, its value).
    pub(crate) fn match_at(&self, text: &str) -> Option<(usize, &str)> {
        let window = &text.as_bytes()[..text.len().min(self.max_len)];
        let close = window.iter().position(|&c| c == b'>')?;
        // `>` is ASCII, so `close + 1` is a char boundary.
        let candidate = &text[..=close];
        self.get(candidate).map(|v| (candidate.len(), v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholder_has_the_documented_shape() {
        let key = PlaceholderKey::new(b"k");
        let p = placeholder(&key, EntityKind::EmailAddress, "ada@example.com");
        let inner = p
            .strip_prefix("<EMAIL_ADDRESS_")
            .and_then(|r| r.strip_suffix('>'))
            .unwrap();
        assert_eq!(inner.len(), 12);
        assert!(inner
            .bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)));
        assert!(is_placeholder_shaped(&p));
    }

    #[test]
    fn placeholder_matches_an_independent_hmac() {
        let key = PlaceholderKey::new(b"org-key");
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(b"org-key").unwrap();
        mac.update(b"custos-llm/placeholder/v1\0PERSON\0Ada Lovelace");
        let tag = mac.finalize().into_bytes();
        let want = format!("<PERSON_{}>", hex::encode(&tag[..6]));
        assert_eq!(placeholder(&key, EntityKind::Person, "Ada Lovelace"), want);
    }

    #[test]
    fn kind_and_key_and_value_all_change_the_placeholder() {
        let a = PlaceholderKey::new(b"org-a");
        let b = PlaceholderKey::new(b"org-b");
        let p = placeholder(&a, EntityKind::Person, "Ada");
        assert_eq!(p, placeholder(&a, EntityKind::Person, "Ada"));
        assert_ne!(p, placeholder(&b, EntityKind::Person, "Ada"));
        assert_ne!(p, placeholder(&a, EntityKind::Person, "Adb"));
        // The kind is hashed too, not only prefixed: the tags differ.
        let tag = |s: &str| s[s.len() - 13..].to_string();
        assert_ne!(
            tag(&p),
            tag(&placeholder(&a, EntityKind::EmailAddress, "Ada"))
        );
    }

    #[test]
    fn key_and_map_debug_hide_secrets() {
        let key = PlaceholderKey::new(b"very secret");
        assert!(!format!("{key:?}").contains("very"));
        let mut m = PlaceholderMap::default();
        m.insert("<PERSON_0123456789ab>".into(), "Ada Lovelace".into());
        let d = format!("{m:?}");
        assert!(!d.contains("Ada") && !d.contains("PERSON"), "{d}");
        assert!(d.contains('1'));
    }

    #[test]
    fn map_rejects_text_restoration_could_not_find() {
        let mut m = PlaceholderMap::default();
        m.insert("plain".into(), "x".into());
        m.insert("<a<b>".into(), "x".into());
        m.insert("<a>b>".into(), "x".into());
        assert!(m.is_empty());
        m.insert("<A_1>".into(), "x".into());
        assert_eq!(m.len(), 1);
        assert_eq!(m.get("<A_1>"), Some("x"));
        assert_eq!(m.max_placeholder_len(), 5);
    }

    #[test]
    fn prefix_and_match_lookups() {
        let mut m = PlaceholderMap::default();
        m.insert("<A_12>".into(), "one".into());
        m.insert("<AB_3>".into(), "two".into());
        assert!(m.is_proper_prefix("<"));
        assert!(m.is_proper_prefix("<A"));
        assert!(m.is_proper_prefix("<AB_"));
        assert!(m.is_proper_prefix("<A_12"));
        assert!(!m.is_proper_prefix("<A_12>"));
        assert!(!m.is_proper_prefix("<A_2"));
        assert!(!m.is_proper_prefix("<B"));
        assert_eq!(m.match_at("<A_12>rest"), Some((6, "one")));
        assert_eq!(m.match_at("<AB_3>"), Some((6, "two")));
        assert_eq!(m.match_at("<A_1>"), None);
        assert_eq!(m.match_at("<A_12"), None);
    }
}
