//! The SSE parser gives the same events however the bytes are cut and whichever line
//! endings the server uses.

use custos_llm::{SseEvent, SseParser};
use proptest::prelude::*;

fn event() -> impl Strategy<Value = SseEvent> {
    (
        prop::option::of("[a-z_.]{1,20}"),
        "[^\r]{0,40}",
        prop::option::of("[^\r\n\0]{0,8}"),
        prop::option::of(0u64..100_000),
    )
        .prop_map(|(event, data, id, retry)| SseEvent {
            event,
            data,
            id,
            retry,
        })
}

fn parse(wire: &[u8], cuts: &[usize]) -> Vec<SseEvent> {
    let mut p = SseParser::new(1 << 12);
    let mut out = Vec::new();
    let mut prev = 0;
    for &c in cuts.iter().chain(std::iter::once(&wire.len())) {
        out.extend(p.push(&wire[prev..c]).unwrap());
        prev = c;
    }
    out.extend(p.finish().unwrap());
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn any_byte_split_and_line_ending_gives_the_same_events(
        events in prop::collection::vec(event(), 0..8),
        cuts in prop::collection::vec(any::<u16>(), 0..20),
        ending in 0..3usize,
        comments in any::<bool>(),
    ) {
        let eol = ["\n", "\r\n", "\r"][ending];
        let mut text = String::new();
        for e in &events {
            if comments {
                text.push_str(": keep-alive ✓\n");
            }
            text.push_str(std::str::from_utf8(&e.to_bytes()).unwrap());
        }
        let wire = text.replace('\n', eol).into_bytes();
        let mut at: Vec<usize> = cuts.iter().map(|c| *c as usize % (wire.len() + 1)).collect();
        at.sort_unstable();
        prop_assert_eq!(parse(&wire, &at), events);
    }
}

#[test]
fn split_inside_a_multibyte_character() {
    let wire = "data: ✓é😀\n\n".as_bytes();
    for i in 0..wire.len() {
        for j in i..wire.len() {
            assert_eq!(parse(wire, &[i, j]), vec![SseEvent::data("✓é😀")]);
        }
    }
}
