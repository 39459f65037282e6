//! Text for the standard PDF fonts: WinAnsiEncoding (PDF 2.0, Annex D.2).
//!
//! Hand-written because the table is small and fixed by the PDF spec, and the closest crate
//! (encoding_rs's windows-1252) follows WHATWG, which maps the five bytes WinAnsi leaves
//! undefined to C1 controls and turns unmappable characters into HTML escapes.

/// Shown in place of characters WinAnsiEncoding has no code for.
pub const REPLACEMENT: char = '?';

/// Spaces a tab becomes.
const TAB: &str = "    ";

/// The WinAnsi code of a character, if it has one (printable characters only).
pub(crate) fn byte(c: char) -> Option<u8> {
    let b = match c {
        ' '..='~' => c as u8,
        '\u{a0}'..='\u{ff}' => c as u32 as u8,
        '€' => 0x80,
        '‚' => 0x82,
        'ƒ' => 0x83,
        '„' => 0x84,
        '…' => 0x85,
        '†' => 0x86,
        '‡' => 0x87,
        'ˆ' => 0x88,
        '‰' => 0x89,
        'Š' => 0x8a,
        '‹' => 0x8b,
        'Œ' => 0x8c,
        'Ž' => 0x8e,
        '\u{2018}' => 0x91,
        '\u{2019}' => 0x92,
        '\u{201c}' => 0x93,
        '\u{201d}' => 0x94,
        '•' => 0x95,
        '–' => 0x96,
        '—' => 0x97,
        '˜' => 0x98,
        '™' => 0x99,
        'š' => 0x9a,
        '›' => 0x9b,
        'œ' => 0x9c,
        'ž' => 0x9e,
        'Ÿ' => 0x9f,
        _ => return None,
    };
    Some(b)
}

/// One line made showable: tabs become spaces, anything without a WinAnsi code (controls,
/// characters outside the encoding) becomes [`REPLACEMENT`]. Every char of the result has a
/// code, so its char count is its width in a monospaced font.
pub(crate) fn sanitize(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    for c in line.chars() {
        match c {
            '\t' => out.push_str(TAB),
            // A soft hyphen is invisible unless a line breaks there; no reader needs it.
            '\u{ad}' => {}
            c if byte(c).is_some() => out.push(c),
            _ => out.push(REPLACEMENT),
        }
    }
    out
}

/// Encodes sanitized text as WinAnsi bytes.
pub(crate) fn encode(text: &str) -> Vec<u8> {
    text.chars()
        .map(|c| byte(c).unwrap_or(REPLACEMENT as u8))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latin1_and_the_windows_extras_map() {
        assert_eq!(encode("Aé€—ÿ"), [b'A', 0xe9, 0x80, 0x97, 0xff]);
    }

    #[test]
    fn everything_else_is_replaced() {
        assert_eq!(sanitize("a\tb\u{1}日本😀\u{81}"), "a    b?????");
        assert_eq!(sanitize("soft\u{ad}hyphen"), "softhyphen");
    }

    #[test]
    fn sanitized_text_always_encodes_one_byte_per_char() {
        let s = sanitize("Grüße, Zoë — “quoted” ‘x’ ™ 中文");
        assert_eq!(encode(&s).len(), s.chars().count());
        assert!(!encode(&s).contains(&b'?') || s.contains('?'));
    }
}
