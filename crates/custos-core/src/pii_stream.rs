//! Streamed PII scanning of text file bodies: chunks are decoded as UTF-8 (a character split
//! across two chunks waits for its rest), and the text is decided window by window. The last
//! [`HOLD`] bytes of the buffer are never decided until more text arrives, so an entity split
//! across chunks is scanned whole, and a little already-decided text is kept on the left so
//! the scanner sees the context words (`ssn`, `phone`, ...) before the next window.

use custos_pii::{EntityKind, Finding, Scanner};

use crate::CoreError;

/// Bytes at the end of the buffer left undecided until more text arrives (or the body ends).
/// It covers every entity the scanner finds with bounded length (the longest, private key
/// blocks and JWTs, stay well below 16 KiB) plus the context words it reads after one. Longer
/// unbroken spans are caught by the cut rule: a finding across the cut moves the cut to its
/// start, so it is decided with the next window.
pub(crate) const HOLD: usize = 16 * 1024;
/// Bytes decided per window once the hold is full: windows are rescanned by `LEFT + HOLD`
/// bytes, so larger steps keep the rescanned share small.
const STEP: usize = 64 * 1024;
/// Decided text kept left of a window, for the scanner's look-behind (context words are
/// looked for up to 64 bytes before a value, e-mail local parts up to 64 bytes back).
const LEFT: usize = 512;
/// How far back from the hold the cut looks for whitespace, so one token (an unbroken URL
/// or key) is not split between windows.
const WS_SEEK: usize = 4 * 1024;
/// The most text one window may hold undecided: a single entity longer than this cannot be
/// scanned in bounded memory, and the upload is refused instead.
const MAX_PENDING: usize = 4 * 1024 * 1024;

/// Text a window decided: the original text, the findings in it (offsets relative to it),
/// and how many characters of the body precede it.
pub(crate) struct Window {
    /// The original text of the window.
    pub text: String,
    /// Findings in `text`, in order, offsets relative to `text`.
    pub findings: Vec<Finding>,
    /// Characters of the body before `text` (for positions in refusals).
    pub offset: usize,
}

/// The streaming scanner of one text body.
pub(crate) struct TextScrubber {
    kinds: Vec<EntityKind>,
    hold: usize,
    step: usize,
    /// Bytes of a character the last chunk ended inside of.
    partial: Vec<u8>,
    /// `text[..ctx]` is decided (kept as left context), `text[ctx..]` is not.
    text: String,
    ctx: usize,
    /// Characters of the body before `text[ctx]`.
    decided_chars: usize,
    /// Undecided length at which the next window is tried.
    next_try: usize,
}

/// Why a body cannot be scanned.
fn unscannable(why: &str) -> CoreError {
    CoreError::invalid("body", why.to_string())
}

impl TextScrubber {
    /// A scrubber finding `kinds`, with the production window sizes.
    pub fn new(kinds: Vec<EntityKind>) -> Self {
        Self::with_window(kinds, HOLD, STEP)
    }

    /// A scrubber with other window sizes (tests make many small windows).
    pub fn with_window(kinds: Vec<EntityKind>, hold: usize, step: usize) -> Self {
        TextScrubber {
            kinds,
            hold,
            step,
            partial: Vec::new(),
            text: String::new(),
            ctx: 0,
            decided_chars: 0,
            next_try: hold + step,
        }
    }

    /// Adds the next chunk; returns a window once enough text is undecided.
    pub fn push(&mut self, scanner: &Scanner, bytes: &[u8]) -> Result<Option<Window>, CoreError> {
        self.append(bytes)?;
        if self.text.len() - self.ctx < self.next_try {
            return Ok(None);
        }
        self.decide(scanner, false)
    }

    /// Ends the body; returns the last window, if any text is left.
    pub fn finish(&mut self, scanner: &Scanner) -> Result<Option<Window>, CoreError> {
        if !self.partial.is_empty() {
            return Err(unscannable(
                "a text body must be UTF-8; it ends inside a character",
            ));
        }
        if self.text.len() == self.ctx {
            return Ok(None);
        }
        self.decide(scanner, true)
    }

    /// Decodes `bytes` after any partial character of the last chunk.
    fn append(&mut self, bytes: &[u8]) -> Result<(), CoreError> {
        let joined;
        let bytes = if self.partial.is_empty() {
            bytes
        } else {
            joined = [std::mem::take(&mut self.partial).as_slice(), bytes].concat();
            joined.as_slice()
        };
        match std::str::from_utf8(bytes) {
            Ok(s) => self.text.push_str(s),
            Err(e) => {
                // An incomplete character at the end waits for the next chunk; anything
                // else is not UTF-8 and cannot be scanned as text.
                if e.error_len().is_some() {
                    return Err(unscannable(
                        "a text body must be UTF-8; upload other encodings as binary",
                    ));
                }
                let (valid, rest) = bytes.split_at(e.valid_up_to());
                self.text
                    .push_str(std::str::from_utf8(valid).expect("checked prefix"));
                self.partial = rest.to_vec();
            }
        }
        Ok(())
    }

    /// Where a non-final window ends: `hold` bytes before the buffer's end, moved back to
    /// just after whitespace when some is near.
    fn cut_point(&self) -> usize {
        let mut cut = self.text.len() - self.hold;
        while !self.text.is_char_boundary(cut) {
            cut -= 1;
        }
        let floor = cut.saturating_sub(WS_SEEK).max(self.ctx + 1);
        let bytes = self.text.as_bytes();
        (floor..=cut)
            .rev()
            .find(|&p| bytes[p - 1].is_ascii_whitespace())
            .unwrap_or(cut)
    }

    /// Scans the buffer and decides what can be: everything when `last`, else up to the cut
    /// point, moved back to the start of any finding across it.
    fn decide(&mut self, scanner: &Scanner, last: bool) -> Result<Option<Window>, CoreError> {
        let found = scanner.scan_for(&self.text, &self.kinds);
        let mut cut = if last {
            self.text.len()
        } else {
            self.cut_point()
        };
        if !last {
            while let Some(f) = found
                .iter()
                .find(|f| f.byte_start < cut && f.byte_end > cut)
            {
                cut = f.byte_start;
            }
        }
        if cut <= self.ctx {
            let pending = self.text.len() - self.ctx;
            if pending > MAX_PENDING {
                return Err(unscannable(
                    "a text body holds one span too long to scan for PII; upload it as binary",
                ));
            }
            self.next_try = pending + self.step;
            return Ok(None);
        }
        let ctx_chars = self.text[..self.ctx].chars().count();
        let findings = found
            .into_iter()
            .filter(|f| f.byte_end > self.ctx && f.byte_start < cut)
            .map(|f| {
                // A finding reaching back into decided text is one an earlier window did
                // not see whole; its undecided part is still transformed rather than kept.
                let (byte_start, start) = if f.byte_start < self.ctx {
                    (self.ctx, ctx_chars)
                } else {
                    (f.byte_start, f.start)
                };
                Finding {
                    byte_start: byte_start - self.ctx,
                    byte_end: f.byte_end - self.ctx,
                    start: start - ctx_chars,
                    end: f.end - ctx_chars,
                    ..f
                }
            })
            .collect();
        let text = self.text[self.ctx..cut].to_string();
        let window = Window {
            findings,
            offset: self.decided_chars,
            text,
        };
        self.decided_chars += window.text.chars().count();
        let keep_from = self.left_start(cut);
        self.text.drain(..keep_from);
        self.ctx = cut - keep_from;
        self.next_try = self.hold + self.step;
        Ok(Some(window))
    }

    /// Where the left context of the next window starts: about [`LEFT`] bytes before `cut`,
    /// just after whitespace when there is some (the scanner starts cleanly at a word).
    fn left_start(&self, cut: usize) -> usize {
        let lo = cut.saturating_sub(LEFT);
        if lo == 0 {
            return 0;
        }
        let bytes = self.text.as_bytes();
        let near = cut.saturating_sub(LEFT / 4).max(lo);
        if let Some(p) = (lo..near).find(|&p| bytes[p].is_ascii_whitespace()) {
            return p + 1;
        }
        let mut p = lo;
        while !self.text.is_char_boundary(p) {
            p += 1;
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn scanner() -> &'static Scanner {
        static S: std::sync::OnceLock<Scanner> = std::sync::OnceLock::new();
        S.get_or_init(Scanner::new)
    }

    /// (kind, char start, char end) of every finding of `text` scanned streamed in `chunks`
    /// (byte lengths), with windows of `hold` + `step`.
    fn streamed(
        text: &str,
        chunks: &[usize],
        hold: usize,
        step: usize,
    ) -> Vec<(EntityKind, usize, usize)> {
        let mut s = TextScrubber::with_window(EntityKind::ALL.to_vec(), hold, step);
        let mut out = Vec::new();
        let mut collect = |w: Option<Window>| {
            if let Some(w) = w {
                for f in w.findings {
                    out.push((f.entity, f.start + w.offset, f.end + w.offset));
                }
            }
        };
        let mut bytes = text.as_bytes();
        let mut sizes = chunks.iter().cycle();
        while !bytes.is_empty() {
            let n = (*sizes.next().expect("cycled")).clamp(1, bytes.len());
            let (chunk, rest) = bytes.split_at(n);
            collect(s.push(scanner(), chunk).unwrap());
            bytes = rest;
        }
        collect(s.finish(scanner()).unwrap());
        out
    }

    fn whole(text: &str) -> Vec<(EntityKind, usize, usize)> {
        scanner()
            .scan_for(text, EntityKind::ALL)
            .into_iter()
            .map(|f| (f.entity, f.start, f.end))
            .collect()
    }

    #[test]
    fn an_email_split_between_chunks_is_found_whole() {
        let text = "write to ana.lopez@example.com today";
        let at = text.find('@').unwrap();
        let found = streamed(text, &[at, 1000], HOLD, STEP);
        assert_eq!(found, whole(text));
        assert_eq!(found.len(), 1);
    }

    #[test]
    fn windows_decide_every_byte_once_and_split_utf8_waits() {
        let text = "héllo wörld 日本 ".repeat(40);
        let mut s = TextScrubber::with_window(vec![EntityKind::EmailAddress], 20, 30);
        let mut decided = String::new();
        for chunk in text.as_bytes().chunks(7) {
            if let Some(w) = s.push(scanner(), chunk).unwrap() {
                assert_eq!(w.offset, decided.chars().count());
                decided.push_str(&w.text);
            }
        }
        if let Some(w) = s.finish(scanner()).unwrap() {
            decided.push_str(&w.text);
        }
        assert_eq!(decided, text);
    }

    #[test]
    fn invalid_utf8_is_refused_not_scanned_lossily() {
        let mut s = TextScrubber::new(vec![EntityKind::EmailAddress]);
        assert!(s.push(scanner(), b"ok \xff bad").is_err());
        let mut s = TextScrubber::new(vec![EntityKind::EmailAddress]);
        s.push(scanner(), "caf\u{e9}".as_bytes().split_at(4).0)
            .unwrap();
        assert!(s.finish(scanner()).is_err(), "ends inside a character");
    }

    fn piece() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z]{1,8}(\\.[a-z]{1,6})?@[a-z]{2,8}\\.(com|org|io)",
            Just("SSN 536-22-8726".to_string()),
            Just("ssn: 078-05-1120".to_string()),
            Just("Anna Kowalski".to_string()),
            Just("call (415) 555-2671".to_string()),
            Just("card 4111 1111 1111 1111".to_string()),
            Just("https://example.com/a/b?c=d".to_string()),
            Just("10.0.0.12".to_string()),
            Just("DE89 3704 0044 0532 0130 00".to_string()),
            "[a-z]{1,10}",
            "[A-Z][a-z]{1,8}",
            "[0-9]{1,6}",
            "[ \\n\\t.,;:()-]{1,3}",
            "[é日本ł😀Ωж]{1,3}",
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Random text in random chunks, through small windows: the same findings (kinds and
        /// positions) as scanning the whole text at once.
        #[test]
        fn streamed_scan_finds_what_a_whole_scan_finds(
            pieces in proptest::collection::vec(piece(), 0..120),
            seps in proptest::collection::vec("[ \\n]{0,2}", 120),
            chunks in proptest::collection::vec(1usize..97, 1..20),
            hold in 160usize..400,
            step in 1usize..300,
        ) {
            let mut text = String::new();
            for (p, sep) in pieces.iter().zip(&seps) {
                text.push_str(p);
                text.push_str(sep);
            }
            prop_assert_eq!(streamed(&text, &chunks, hold, step), whole(&text));
        }
    }
}
