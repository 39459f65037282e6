//! Putting original values back in place of placeholders: whole texts, whole response bodies,
//! and texts that arrive in pieces.

use std::borrow::Cow;
use std::sync::Arc;

use serde_json::Value;

use crate::placeholder::PlaceholderMap;
use crate::WireFormat;

/// How a text is written, which decides how a restored value is spelled in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextMode {
    /// Plain text: the value goes in as it is.
    Plain,
    /// JSON source text (tool-call arguments): the placeholder sits inside a JSON string, so the
    /// value is escaped as JSON string content.
    JsonString,
}

/// Keys whose string values are JSON source text rather than prose.
pub(crate) fn mode_for_key(key: Option<&str>) -> TextMode {
    match key {
        Some("arguments") | Some("partial_json") => TextMode::JsonString,
        _ => TextMode::Plain,
    }
}

/// Appends `value` to `out` as `mode` spells it.
fn push_value(out: &mut String, value: &str, mode: TextMode) {
    match mode {
        TextMode::Plain => out.push_str(value),
        TextMode::JsonString => push_json_escaped(out, value),
    }
}

/// Appends `value` escaped as JSON string content (the same escapes serde_json writes).
pub(crate) fn push_json_escaped(out: &mut String, value: &str) {
    let mut start = 0;
    for (i, c) in value.char_indices() {
        let esc: Option<&str> = match c {
            '"' => Some("\\\""),
            '\\' => Some("\\\\"),
            '\n' => Some("\\n"),
            '\r' => Some("\\r"),
            '\t' => Some("\\t"),
            '\u{08}' => Some("\\b"),
            '\u{0C}' => Some("\\f"),
            c if (c as u32) < 0x20 => None,
            _ => continue,
        };
        out.push_str(&value[start..i]);
        match esc {
            Some(e) => out.push_str(e),
            None => {
                out.push_str("\\u00");
                out.push_str(&hex::encode([c as u8]));
            }
        }
        start = i + c.len_utf8();
    }
    out.push_str(&value[start..]);
}

/// In JSON source text a serializer may write `<` and `>` as `\u003c` and `\u003e` (escaping
/// them for HTML); a placeholder written so must be found all the same. Rewrites those four
/// escapes (either hex case) to the characters they stand for, which is the same JSON, and
/// leaves every other escape as it is. Also returns how many trailing bytes are an escape cut
/// short (a streamed piece may end inside one: they are held back until the rest arrives).
fn unescape_angles(text: &str) -> (Cow<'_, str>, usize) {
    let b = text.as_bytes();
    if !b.contains(&b'\\') {
        return (Cow::Borrowed(text), 0);
    }
    let mut out: Option<String> = None;
    let mut pos = 0;
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            i += 1;
            continue;
        }
        // An escape: `\x` (two bytes) or `\uXXXX` (six); a backslash pair is one escape, so
        // `\\u003c` stays text.
        let len = if b.get(i + 1) == Some(&b'u') { 6 } else { 2 };
        if i + len > b.len() {
            let cut_short = b.len() - i;
            return match out {
                None => (Cow::Borrowed(text), cut_short),
                Some(mut o) => {
                    o.push_str(&text[pos..]);
                    (Cow::Owned(o), cut_short)
                }
            };
        }
        let angle = match &b[i..i + len] {
            [_, _, h @ ..] if h.eq_ignore_ascii_case(b"003c") => Some('<'),
            [_, _, h @ ..] if h.eq_ignore_ascii_case(b"003e") => Some('>'),
            _ => None,
        };
        if let Some(c) = angle {
            let o = out.get_or_insert_with(|| String::with_capacity(text.len()));
            o.push_str(&text[pos..i]);
            o.push(c);
            pos = i + len;
        }
        i += len;
    }
    match out {
        None => (Cow::Borrowed(text), 0),
        Some(mut o) => {
            o.push_str(&text[pos..]);
            (Cow::Owned(o), 0)
        }
    }
}

/// Restores every complete placeholder of `text`; borrows when there is none. In JSON source
/// text, `\u003c` / `\u003e` escapes count as the brackets (and come back unescaped).
pub(crate) fn restore_cow<'t>(text: &'t str, map: &PlaceholderMap, mode: TextMode) -> Cow<'t, str> {
    if map.is_empty() {
        return Cow::Borrowed(text);
    }
    if mode == TextMode::JsonString {
        if let (Cow::Owned(unescaped), _) = unescape_angles(text) {
            return Cow::Owned(restore_cow(&unescaped, map, TextMode::JsonString).into_owned());
        }
    }
    let mut out: Option<String> = None;
    let mut pos = 0;
    let mut search = 0;
    while let Some(off) = text[search..].find('<') {
        let p = search + off;
        match map.match_at(&text[p..]) {
            Some((n, value)) => {
                let o = out.get_or_insert_with(|| String::with_capacity(text.len() + 16));
                o.push_str(&text[pos..p]);
                push_value(o, value, mode);
                pos = p + n;
                search = pos;
            }
            None => search = p + 1,
        }
    }
    match out {
        None => Cow::Borrowed(text),
        Some(mut o) => {
            o.push_str(&text[pos..]);
            Cow::Owned(o)
        }
    }
}

/// Whole-text restoration (the reference the streaming one must equal).
pub fn restore_text(text: &str, map: &PlaceholderMap, mode: TextMode) -> String {
    restore_cow(text, map, mode).into_owned()
}

/// Restores one string in place; true when it changed.
pub(crate) fn restore_string(s: &mut String, map: &PlaceholderMap, mode: TextMode) -> bool {
    match restore_cow(s, map, mode) {
        Cow::Borrowed(_) => false,
        Cow::Owned(o) => {
            *s = o;
            true
        }
    }
}

/// Restores every string and key of `v` (strings under `arguments` / `partial_json` as JSON
/// text); true when anything changed.
pub(crate) fn restore_value(v: &mut Value, map: &PlaceholderMap, key: Option<&str>) -> bool {
    match v {
        Value::String(s) => restore_string(s, map, mode_for_key(key)),
        Value::Array(items) => items.iter_mut().fold(false, |changed, item| {
            restore_value(item, map, key) | changed
        }),
        Value::Object(obj) => {
            let mut changed = obj.iter_mut().fold(false, |changed, (k, item)| {
                restore_value(item, map, Some(k)) | changed
            });
            // Keys carry placeholders too (tool input keys the request had transformed).
            if obj.keys().any(|k| k.contains('<')) {
                let old = std::mem::take(obj);
                for (k, item) in old {
                    let k = match restore_cow(&k, map, TextMode::Plain) {
                        Cow::Borrowed(_) => k,
                        Cow::Owned(o) => {
                            changed = true;
                            o
                        }
                    };
                    obj.insert(k, item);
                }
            }
            changed
        }
        _ => false,
    }
}

/// Restores placeholders everywhere in a non-streaming response body (every string; strings
/// under key "arguments" are JSON text: values substituted there are JSON-string-escaped).
pub fn restore_response(format: WireFormat, body: &mut Value, map: &PlaceholderMap) {
    // Every format echoes model text in many places (choices, output items, content blocks,
    // tool inputs), so all strings are restored; the format is kept for future per-format keys.
    let _ = format;
    if map.is_empty() {
        return;
    }
    restore_value(body, map, None);
}

/// Incremental placeholder restoration over a text that arrives in pieces.
#[derive(Debug)]
pub struct Restorer {
    map: Arc<PlaceholderMap>,
    mode: TextMode,
    held: String,
}

impl Restorer {
    /// A restorer for one text written in `mode`.
    pub fn new(map: Arc<PlaceholderMap>, mode: TextMode) -> Restorer {
        Restorer {
            map,
            mode,
            held: String::new(),
        }
    }

    /// Returns what can be released now: everything except a trailing part that is a proper
    /// prefix of a known placeholder; complete placeholders are replaced by their value.
    pub fn push(&mut self, piece: &str) -> String {
        if self.map.is_empty() {
            return piece.to_string();
        }
        let joined;
        let text: &str = if self.held.is_empty() {
            piece
        } else {
            let mut j = std::mem::take(&mut self.held);
            j.push_str(piece);
            joined = j;
            &joined
        };
        let (unescaped, cut_short) = match self.mode {
            TextMode::JsonString => unescape_angles(text),
            TextMode::Plain => (Cow::Borrowed(text), 0),
        };
        let (text, tail) = unescaped.split_at(unescaped.len() - cut_short);
        let out = self.release(text);
        // An escape cut short waits, behind a held placeholder prefix if there is one.
        self.held.push_str(tail);
        out
    }

    /// Restores `text`'s complete placeholders; holds back a trailing placeholder prefix.
    fn release(&mut self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut pos = 0;
        let mut search = 0;
        while let Some(off) = text[search..].find('<') {
            let p = search + off;
            let at = &text[p..];
            if let Some((n, value)) = self.map.match_at(at) {
                out.push_str(&text[pos..p]);
                push_value(&mut out, value, self.mode);
                pos = p + n;
                search = pos;
            } else if self.map.is_proper_prefix(at) {
                // Only the last `<` can start a proper prefix: placeholders hold no other `<`.
                out.push_str(&text[pos..p]);
                self.held.push_str(at);
                return out;
            } else {
                search = p + 1;
            }
        }
        out.push_str(&text[pos..]);
        out
    }

    /// Releases what is held back (it was not a placeholder).
    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.held)
    }

    /// Bytes currently held back: less than the longest placeholder, plus in JSON text at most
    /// 5 bytes of an escape cut short (`\u003`).
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// How this restorer's text is written.
    pub fn mode(&self) -> TextMode {
        self.mode
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: &str = "<EMAIL_ADDRESS_0123456789ab>";
    const Q: &str = "<PERSON_ba9876543210>";

    fn map() -> Arc<PlaceholderMap> {
        let mut m = PlaceholderMap::default();
        m.insert(P.into(), "ada@example.com".into());
        m.insert(Q.into(), "Ada \"the\" C:\\Lovelace\n".into());
        Arc::new(m)
    }

    fn stream(pieces: &[&str], mode: TextMode) -> (String, usize) {
        let mut r = Restorer::new(map(), mode);
        let mut out = String::new();
        let mut max_held = 0;
        for p in pieces {
            out.push_str(&r.push(p));
            max_held = max_held.max(r.held());
        }
        out.push_str(&r.finish());
        assert_eq!(r.held(), 0);
        (out, max_held)
    }

    #[test]
    fn whole_text_restores_plain_and_json() {
        let m = map();
        let t = format!("to {P} from {Q}.");
        assert_eq!(
            restore_text(&t, &m, TextMode::Plain),
            "to ada@example.com from Ada \"the\" C:\\Lovelace\n."
        );
        let j = format!("{{\"to\":\"{P}\",\"from\":\"{Q}\"}}");
        let restored = restore_text(&j, &m, TextMode::JsonString);
        let v: Value = serde_json::from_str(&restored).unwrap();
        assert_eq!(v["from"], "Ada \"the\" C:\\Lovelace\n");
        assert_eq!(v["to"], "ada@example.com");
    }

    #[test]
    fn json_escape_matches_serde_json() {
        let s: String = (0u8..0x30)
            .map(char::from)
            .chain("é\"\\✓".chars())
            .collect();
        let mut mine = String::from("\"");
        push_json_escaped(&mut mine, &s);
        mine.push('"');
        assert_eq!(mine, serde_json::to_string(&s).unwrap());
    }

    #[test]
    fn json_text_finds_placeholders_written_with_escaped_brackets() {
        // As a serializer that escapes `<` and `>` for HTML writes tool-call arguments.
        let escaped = P.replace('<', "\\u003c").replace('>', "\\u003E");
        let text = format!(r#"{{"to": "{escaped}", "raw": "\\u003c", "lt": "\u003cb"}}"#);
        let want = r#"{"to": "ada@example.com", "raw": "\\u003c", "lt": "<b"}"#;
        assert_eq!(restore_text(&text, &map(), TextMode::JsonString), want);
        // Plain text was decoded already: an escape there is just text.
        assert_eq!(restore_text(&escaped, &map(), TextMode::Plain), escaped);
        for cut in 0..=text.len() {
            let (got, max_held) = stream(&[&text[..cut], &text[cut..]], TextMode::JsonString);
            assert_eq!(got, want, "cut at {cut}");
            assert!(max_held < P.len() + 6, "cut at {cut}: held {max_held}");
        }
        let bytes: Vec<String> = text.chars().map(String::from).collect();
        let pieces: Vec<&str> = bytes.iter().map(String::as_str).collect();
        assert_eq!(stream(&pieces, TextMode::JsonString).0, want);
    }

    #[test]
    fn split_at_every_byte_offset_in_both_modes() {
        for mode in [TextMode::Plain, TextMode::JsonString] {
            let text = format!("a<b {P} c {Q}<<{P}");
            let want = restore_text(&text, &map(), mode);
            for cut in 0..=text.len() {
                if !text.is_char_boundary(cut) {
                    continue;
                }
                let (got, max_held) = stream(&[&text[..cut], &text[cut..]], mode);
                assert_eq!(got, want, "cut at {cut}");
                assert!(max_held < P.len());
            }
        }
    }

    #[test]
    fn split_across_many_pushes() {
        let text = format!("x{P}y{Q}z");
        let pieces: Vec<String> = text.chars().map(String::from).collect();
        let refs: Vec<&str> = pieces.iter().map(String::as_str).collect();
        let (got, _) = stream(&refs, TextMode::Plain);
        assert_eq!(got, restore_text(&text, &map(), TextMode::Plain));
        assert!(got.contains("ada@example.com") && !got.contains('<'));
    }

    #[test]
    fn near_miss_is_released_as_soon_as_it_diverges() {
        let mut r = Restorer::new(map(), TextMode::Plain);
        assert_eq!(r.push("see <EMAIL_ADDRESS_01"), "see ");
        assert_eq!(r.held(), "<EMAIL_ADDRESS_01".len());
        assert_eq!(r.push("3 done"), "<EMAIL_ADDRESS_013 done");
        // Not a prefix of any placeholder: released at once.
        assert_eq!(r.push("x <EMAIL_ADDRESS_12"), "x <EMAIL_ADDRESS_12");
        assert_eq!(r.held(), 0);
        assert_eq!(r.push("<EMAIL"), "");
        assert_eq!(r.finish(), "<EMAIL");
    }

    #[test]
    fn double_angle_brackets_hold_only_the_last() {
        let mut r = Restorer::new(map(), TextMode::Plain);
        assert_eq!(r.push("a << <"), "a << ");
        assert_eq!(r.held(), 1);
        assert_eq!(r.push("<"), "<");
        assert_eq!(r.push(&P[1..]), "ada@example.com");
        assert_eq!(r.push("<<<"), "<<");
        assert_eq!(r.finish(), "<");
    }

    #[test]
    fn json_mode_escapes_quote_and_backslash() {
        let mut r = Restorer::new(map(), TextMode::JsonString);
        let mut out = r.push("{\"n\":\"");
        out.push_str(&r.push(&Q[..5]));
        out.push_str(&r.push(&Q[5..]));
        out.push_str(&r.push("\"}"));
        out.push_str(&r.finish());
        assert_eq!(out, "{\"n\":\"Ada \\\"the\\\" C:\\\\Lovelace\\n\"}");
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["n"], "Ada \"the\" C:\\Lovelace\n");
    }

    #[test]
    fn empty_map_passes_through_and_holds_nothing() {
        let mut r = Restorer::new(Arc::new(PlaceholderMap::default()), TextMode::Plain);
        assert_eq!(r.push("abc <EMAIL"), "abc <EMAIL");
        assert_eq!(r.held(), 0);
        let mut v = serde_json::json!({"a": P});
        restore_response(WireFormat::Responses, &mut v, &PlaceholderMap::default());
        assert_eq!(v["a"], P);
    }

    #[test]
    fn response_restores_everywhere_and_arguments_as_json() {
        let m = map();
        let args = format!("{{\"who\":\"{Q}\"}}");
        let mut v = serde_json::json!({
            "choices": [{"message": {"content": format!("hi {P}"),
                "tool_calls": [{"function": {"name": "f", "arguments": args}}]}}]
        });
        restore_response(WireFormat::ChatCompletions, &mut v, &m);
        assert_eq!(v["choices"][0]["message"]["content"], "hi ada@example.com");
        let a = v["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]
            .as_str()
            .unwrap();
        let parsed: Value = serde_json::from_str(a).unwrap();
        assert_eq!(parsed["who"], "Ada \"the\" C:\\Lovelace\n");
    }

    #[test]
    fn unknown_placeholders_stay() {
        let t = "<EMAIL_ADDRESS_ffffffffffff> and <PERSON_ba9876543210";
        assert_eq!(restore_text(t, &map(), TextMode::Plain), t);
    }
}
