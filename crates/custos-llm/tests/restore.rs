//! Streaming restoration equals whole-text restoration, however the text is cut.

mod common;

use custos_llm::{restore_text, Restorer, TextMode};
use proptest::prelude::*;

fn stream(pieces: &[String], mode: TextMode) -> (String, usize) {
    let mut r = Restorer::new(common::map(), mode);
    let mut out = String::new();
    let mut max_held = 0;
    for p in pieces {
        out.push_str(&r.push(p));
        max_held = max_held.max(r.held());
    }
    out.push_str(&r.finish());
    (out, max_held)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn any_chunking_equals_whole_text((text, pieces) in common::chunked(), json in any::<bool>()) {
        let mode = if json { TextMode::JsonString } else { TextMode::Plain };
        let (got, max_held) = stream(&pieces, mode);
        prop_assert_eq!(got, restore_text(&text, &common::map(), mode));
        // JSON text may also hold an escape cut short (at most 5 bytes: `\u003`).
        let bound = common::max_len() + if json { 5 } else { 0 };
        prop_assert!(max_held < bound);
    }

    #[test]
    fn every_placeholder_is_restored_and_no_complete_one_survives(text in common::text()) {
        let out = restore_text(&text, &common::map(), TextMode::Plain);
        for (p, _) in common::PAIRS {
            // A placeholder can only remain if a restored value formed it, which ours cannot.
            prop_assert!(!out.contains(p));
        }
    }
}

#[test]
fn every_two_piece_split_of_every_placeholder() {
    for mode in [TextMode::Plain, TextMode::JsonString] {
        for (p, _) in common::PAIRS {
            let text = format!("a {p} b");
            let want = restore_text(&text, &common::map(), mode);
            assert!(!want.contains(p));
            for i in 0..=text.len() {
                let pieces = vec![text[..i].to_string(), text[i..].to_string()];
                assert_eq!(stream(&pieces, mode).0, want, "split at {i}");
            }
        }
    }
}
