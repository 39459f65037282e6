//! Shared test material: a placeholder map and texts that mix prose with placeholders.

#![allow(dead_code)]

use std::sync::Arc;

use custos_llm::PlaceholderMap;
use proptest::prelude::*;

/// Placeholders and their values (values with quotes, backslashes, newlines and non-ASCII).
pub const PAIRS: &[(&str, &str)] = &[
    ("<EMAIL_ADDRESS_0123456789ab>", "ada@example.com"),
    ("<EMAIL_ADDRESS_0123456789ac>", "grace@example.org"),
    ("<PERSON_ba9876543210>", "Zoë \"Z\" O'Hara\\Jr\n"),
    ("<US_SSN_a1b2c3d4e5f6>", "536-90-4399"),
];

/// The longest placeholder, in bytes.
pub fn max_len() -> usize {
    PAIRS.iter().map(|(p, _)| p.len()).max().unwrap()
}

pub fn map() -> Arc<PlaceholderMap> {
    let mut m = PlaceholderMap::default();
    for (p, v) in PAIRS {
        m.insert(p.to_string(), v.to_string());
    }
    Arc::new(m)
}

/// A piece of text: prose (unicode included), angle brackets, whole, truncated and
/// near-miss placeholders.
fn fragment() -> impl Strategy<Value = String> {
    let ph = (0..PAIRS.len()).prop_map(|i| PAIRS[i].0.to_string());
    let truncated = (0..PAIRS.len(), 1usize..27).prop_map(|(i, n)| {
        let p = PAIRS[i].0;
        p[..n.min(p.len() - 1)].to_string()
    });
    let near_miss = (0..PAIRS.len(), 1usize..27, "[a-z0-9 >]").prop_map(|(i, n, c)| {
        let p = PAIRS[i].0;
        format!("{}{}", &p[..n.min(p.len() - 1)], c)
    });
    // As a serializer that escapes `<` and `>` for HTML writes them in JSON text.
    let escaped = (0..PAIRS.len(), any::<bool>()).prop_map(|(i, upper)| {
        let (lt, gt) = if upper {
            ("\\u003C", "\\u003E")
        } else {
            ("\\u003c", "\\u003e")
        };
        PAIRS[i].0.replace('<', lt).replace('>', gt)
    });
    prop_oneof![
        3 => "\\PC{0,12}",
        1 => Just("<".to_string()),
        1 => Just("<<".to_string()),
        1 => Just("\"\\é✓".to_string()),
        3 => ph,
        2 => truncated,
        2 => near_miss,
        2 => escaped,
        1 => prop::sample::select(vec!["\\", "\\\\", "\\u00", "\\u003", "\\u003cb"])
            .prop_map(str::to_string),
    ]
}

/// A text made of random fragments.
pub fn text() -> impl Strategy<Value = String> {
    prop::collection::vec(fragment(), 0..12).prop_map(|f| f.concat())
}

/// A text and a random way to cut it into pieces at char boundaries.
pub fn chunked() -> impl Strategy<Value = (String, Vec<String>)> {
    (text(), prop::collection::vec(any::<u16>(), 0..16)).prop_map(|(t, cuts)| {
        let pieces = cut(&t, &cuts);
        (t, pieces)
    })
}

/// Cuts `t` at the char boundaries the numbers pick (empty pieces included).
pub fn cut(t: &str, cuts: &[u16]) -> Vec<String> {
    let bounds: Vec<usize> = t
        .char_indices()
        .map(|(i, _)| i)
        .chain(std::iter::once(t.len()))
        .collect();
    let mut at: Vec<usize> = cuts
        .iter()
        .map(|c| bounds[*c as usize % bounds.len()])
        .collect();
    at.sort_unstable();
    let mut pieces = Vec::with_capacity(at.len() + 1);
    let mut prev = 0;
    for a in at {
        pieces.push(t[prev..a].to_string());
        prev = a;
    }
    pieces.push(t[prev..].to_string());
    pieces
}
