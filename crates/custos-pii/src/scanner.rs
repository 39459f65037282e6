//! The scanner: one pass over the bytes that finds candidate anchors (digits, `@`, `+`, `(`,
//! capitalized words, a few keyword prefixes), then runs only the validators that fit each
//! candidate, then resolves overlaps.
//!
//! Why hand-written rather than a `RegexSet`: a set of ~20 patterns with word boundaries and
//! Unicode runs far below the 100 MB/s target, while almost every byte of real text can be
//! rejected by one table look-up. Validators (Luhn, mod-97, base58check, numbering plans, name
//! lexicons) only ever see candidates.

use crate::checksum;
use crate::entity::{EntityKind, Finding};
use crate::lexicon::{self, Lexicons};

/// A candidate before overlap resolution (byte offsets).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cand {
    pub kind: EntityKind,
    pub bs: usize,
    pub be: usize,
    pub score: f32,
    pub rec: &'static str,
}

/// The PII scanner. Build it once and share it (`Send + Sync`, cheap to put in an `Arc`).
#[derive(Debug)]
pub struct Scanner {
    lex: Lexicons,
    min_score: f32,
}

impl Default for Scanner {
    fn default() -> Self {
        Scanner::new()
    }
}

// Byte classes for the anchor pass.
const C_NONE: u8 = 0;
const C_DIGIT: u8 = 1;
const C_UPPER: u8 = 2;
const C_LOWER: u8 = 3;
const C_HIGH: u8 = 4; // non-ASCII (part of a word)
const C_AT: u8 = 5;
const C_PLUS: u8 = 6;
const C_LPAREN: u8 = 7;
const C_DASH: u8 = 8;
const C_COLON: u8 = 9;
const C_UNDERSCORE: u8 = 10;

const CLASS: [u8; 256] = {
    let mut t = [C_NONE; 256];
    let mut i = 0;
    while i < 256 {
        let c = i as u8;
        t[i] = if c.is_ascii_digit() {
            C_DIGIT
        } else if c.is_ascii_uppercase() {
            C_UPPER
        } else if c.is_ascii_lowercase() {
            C_LOWER
        } else if c >= 0x80 {
            C_HIGH
        } else {
            match c {
                b'@' => C_AT,
                b'+' => C_PLUS,
                b'(' => C_LPAREN,
                b'-' => C_DASH,
                b':' => C_COLON,
                b'_' => C_UNDERSCORE,
                _ => C_NONE,
            }
        };
        i += 1;
    }
    t
};

/// Bytes the prose fast path of [`Pass::run`] looks at once.
const PROSE_WINDOW: usize = 32;

/// If `window` is only lowercase ASCII letters and spaces, how far it can be skipped: up to
/// and including its last space, so the scan resumes at a word start.
#[inline]
fn prose_run(window: &[u8]) -> Option<usize> {
    // A fold without early exit, so the compiler checks the window with vector compares.
    let prose = window
        .iter()
        .fold(true, |ok, &c| ok & (c == b' ' || c.wrapping_sub(b'a') < 26));
    if !prose {
        return None;
    }
    window.iter().rposition(|&c| c == b' ').map(|last| last + 1)
}

#[inline]
fn is_word(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c >= 0x80 || c == b'_'
}

#[inline]
fn word_end(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && is_word(b[i]) {
        i += 1;
    }
    i
}

#[inline]
fn digits_end(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    i
}

fn starts_with_ci(b: &[u8], at: usize, pat: &[u8]) -> bool {
    b.get(at..at + pat.len())
        .is_some_and(|s| s.eq_ignore_ascii_case(pat))
}

/// Case-insensitive search for any of `words` in the `before` bytes preceding `pos` and the
/// `after` bytes following `end`. Context is what turns a bare 9-digit number into an SSN.
fn context(b: &[u8], pos: usize, end: usize, before: usize, after: usize, words: &[&str]) -> bool {
    let mut buf = [0u8; 96];
    let s = pos.saturating_sub(before.min(64));
    let mut n = 0;
    for &c in &b[s..pos.min(b.len())] {
        buf[n] = c.to_ascii_lowercase();
        n += 1;
    }
    buf[n] = b' ';
    n += 1;
    let e = end.saturating_add(after.min(30)).min(b.len());
    for &c in b.get(end..e).unwrap_or(&[]) {
        if n >= buf.len() {
            break;
        }
        buf[n] = c.to_ascii_lowercase();
        n += 1;
    }
    let hay = &buf[..n];
    // A context word must start at a word boundary ("ver " must not match "server ").
    words.iter().any(|w| {
        let w = w.as_bytes();
        memchr::memchr_iter(w[0], hay).any(|k| {
            hay[k..].starts_with(w)
                && (k == 0 || !hay[k - 1].is_ascii_alphanumeric() || !w[0].is_ascii_alphanumeric())
        })
    })
}

const SSN_CTX: &[&str] = &[
    "ssn",
    "social security",
    "social sec",
    "ss#",
    "ss #",
    "taxpayer",
    "tin",
];
const PHONE_CTX: &[&str] = &[
    "phone", "tel", "mobile", "cell", "call", "fax", "contact", "number", "whatsapp", "reach",
    "text me", "sms", "dial", "landline", "ph:", "ph.", "hotline",
];
const CARD_CTX: &[&str] = &[
    "card",
    "visa",
    "mastercard",
    "amex",
    "credit",
    "debit",
    "cc",
    "payment",
];
const DOB_CTX: &[&str] = &[
    "born",
    "birth",
    "dob",
    "d.o.b",
    "birthday",
    "b-day",
    "bday",
    "birthdate",
    "date of b",
];
const PASSPORT_CTX: &[&str] = &["passport"];
const DL_CTX: &[&str] = &[
    "driver", "driving", "license", "licence", "dl#", "dl #", "dl:", "dl no", "dln", " dl ",
    "lic#", "lic #", "lic.",
];
const VERSION_CTX: &[&str] = &[
    "version", "ver.", "ver ", "release", "build", "firmware", "patch", "rev.", "revision", "v.",
    "semver", "update", "upgrade",
];

impl Scanner {
    /// Builds a scanner with all recognizers (compiles lexicons once; a few milliseconds).
    pub fn new() -> Scanner {
        // Warm the phone metadata so the first scan is not the slow one.
        let _ = phonenumber::parse(None, "+14155552671");
        Scanner {
            lex: Lexicons::new(),
            min_score: 0.5,
        }
    }

    /// Returns a scanner that reports findings scoring at least `min_score` (default 0.5).
    pub fn with_min_score(mut self, min_score: f32) -> Scanner {
        self.min_score = min_score;
        self
    }

    /// The reporting threshold.
    pub fn min_score(&self) -> f32 {
        self.min_score
    }

    /// Finds every entity kind in `text`, overlaps resolved, sorted by position.
    pub fn scan(&self, text: &str) -> Vec<Finding> {
        self.scan_mask(text, u32::MAX)
    }

    /// Finds only the given kinds (recognizers for other kinds do not run).
    pub fn scan_for(&self, text: &str, only: &[EntityKind]) -> Vec<Finding> {
        let mask = only.iter().fold(0u32, |m, k| m | k.bit());
        self.scan_mask(text, mask)
    }

    fn scan_mask(&self, text: &str, mask: u32) -> Vec<Finding> {
        self.scan_with(text, mask, true)
    }

    fn scan_with(&self, text: &str, mask: u32, prose_fast_path: bool) -> Vec<Finding> {
        if mask == 0 || text.is_empty() {
            return Vec::new();
        }
        let mut pass = Pass {
            t: text,
            b: text.as_bytes(),
            mask,
            out: Vec::new(),
            lex: &self.lex,
            prose_fast_path,
        };
        pass.run();
        let mut cands: Vec<Cand> = pass
            .out
            .into_iter()
            .filter(|c| {
                c.score >= self.min_score
                    && c.bs < c.be
                    && text.is_char_boundary(c.bs)
                    && text.is_char_boundary(c.be)
            })
            .collect();
        resolve(&mut cands);
        to_findings(text, &cands)
    }
}

/// Picks non-overlapping candidates: higher score first, then longer span, then earlier.
fn resolve(cands: &mut Vec<Cand>) {
    if cands.len() <= 1 {
        return;
    }
    cands.sort_by_key(|c| (c.bs, std::cmp::Reverse(c.be)));
    let mut out: Vec<Cand> = Vec::with_capacity(cands.len());
    let mut i = 0;
    // Work cluster by cluster (runs of transitively overlapping candidates) so cost stays linear.
    while i < cands.len() {
        let mut j = i + 1;
        let mut max_end = cands[i].be;
        while j < cands.len() && cands[j].bs < max_end {
            max_end = max_end.max(cands[j].be);
            j += 1;
        }
        if j - i == 1 {
            out.push(cands[i]);
        } else {
            let mut cluster: Vec<Cand> = cands[i..j].to_vec();
            cluster.sort_by(|a, b| {
                b.score
                    .partial_cmp(&a.score)
                    .unwrap_or(std::cmp::Ordering::Equal)
                    .then((b.be - b.bs).cmp(&(a.be - a.bs)))
                    .then(a.bs.cmp(&b.bs))
            });
            let mut kept: Vec<Cand> = Vec::new();
            for c in cluster {
                if kept.iter().all(|k| c.be <= k.bs || c.bs >= k.be) {
                    kept.push(c);
                }
            }
            kept.sort_by_key(|c| c.bs);
            out.extend(kept);
        }
        i = j;
    }
    *cands = out;
}

fn to_findings(text: &str, cands: &[Cand]) -> Vec<Finding> {
    let b = text.as_bytes();
    let mut pos = 0usize;
    let mut chars = 0usize;
    let mut count_to = |to: usize| -> usize {
        // Count UTF-8 lead bytes: one per Unicode scalar value.
        chars += b[pos..to].iter().filter(|&&c| (c & 0xC0) != 0x80).count();
        pos = to;
        chars
    };
    let mut out = Vec::with_capacity(cands.len());
    for c in cands {
        let start = count_to(c.bs);
        let end = count_to(c.be);
        out.push(Finding {
            entity: c.kind,
            start,
            end,
            byte_start: c.bs,
            byte_end: c.be,
            score: c.score,
            recognizer: c.rec,
        });
    }
    out
}

/// State of one scan.
struct Pass<'a> {
    t: &'a str,
    b: &'a [u8],
    mask: u32,
    out: Vec<Cand>,
    lex: &'a Lexicons,
    /// Skip runs of lowercase prose (always, except in the test that proves it changes
    /// nothing).
    prose_fast_path: bool,
}

/// A run of digit groups joined by single separators, e.g. `+1 (555) 123-4567` or `4111 1111`.
struct Blob {
    start: usize,
    plus: bool,
    n: usize,
    gs: [usize; MAXG],
    ge: [usize; MAXG],
    paren: [bool; MAXG],
    sep: [u8; MAXG], // separator before group k (0 for none / first)
    tail_glued: bool,
}
const MAXG: usize = 10;

impl Blob {
    fn byte_start(&self, g: usize) -> usize {
        if g == 0 && self.plus {
            self.start
        } else if self.paren[g] {
            self.gs[g] - 1
        } else {
            self.gs[g]
        }
    }
    fn byte_end(&self, g: usize) -> usize {
        if self.paren[g] {
            self.ge[g] + 1
        } else {
            self.ge[g]
        }
    }
}

impl<'a> Pass<'a> {
    #[inline]
    fn on(&self, k: EntityKind) -> bool {
        self.mask & k.bit() != 0
    }

    #[inline]
    fn push(&mut self, kind: EntityKind, bs: usize, be: usize, score: f32, rec: &'static str) {
        if self.on(kind) && bs < be && be <= self.b.len() {
            self.out.push(Cand {
                kind,
                bs,
                be,
                score,
                rec,
            });
        }
    }

    fn run(&mut self) {
        let b = self.b;
        let n = b.len();
        let mut i = 0;
        while i < n {
            // Prose fast path. A word of lowercase ASCII letters followed by a space starts
            // no entity (`lower_word` needs a digit, capital, '_', '-', '.', ':' or '/' in or
            // right after it), and a space starts none either. So from a word start, a
            // window of only such bytes is skipped up to its last space, a window at a time,
            // instead of word by word; anything else falls through to the byte classes.
            if self.prose_fast_path && b[i].is_ascii_lowercase() && (i == 0 || !is_word(b[i - 1])) {
                if let Some(skip) = b.get(i..i + PROSE_WINDOW).and_then(prose_run) {
                    i += skip;
                    continue;
                }
            }
            let cls = CLASS[b[i] as usize];
            if cls == C_NONE {
                i += 1;
                continue;
            }
            let prev_word = i > 0 && is_word(b[i - 1]);
            match cls {
                C_DIGIT | C_UPPER | C_LOWER | C_HIGH | C_UNDERSCORE => {
                    let end = word_end(b, i);
                    if prev_word {
                        i = end; // resumed mid-word after a match: never anchor inside a word
                        continue;
                    }
                    let next = match cls {
                        C_DIGIT => self.digit_word(i, end),
                        C_UPPER => self.upper_word(i, end),
                        C_LOWER => self.lower_word(i, end),
                        C_HIGH => self.high_word(i, end),
                        _ => end,
                    };
                    i = next.max(end);
                }
                C_AT => {
                    self.email(i);
                    i += 1;
                }
                C_PLUS | C_LPAREN => {
                    let next = if !prev_word && b.get(i + 1).is_some_and(u8::is_ascii_digit) {
                        self.numeric(i)
                    } else {
                        i + 1
                    };
                    i = next.max(i + 1);
                }
                C_DASH => {
                    let next = if b[i..].starts_with(b"-----BEGIN") {
                        self.private_key(i)
                    } else {
                        i + 1
                    };
                    i = next.max(i + 1);
                }
                C_COLON => {
                    if !prev_word && b.get(i + 1) == Some(&b':') {
                        self.ipv6(i);
                    }
                    i += 1;
                }
                _ => i += 1,
            }
        }
    }

    // ---------------------------------------------------------------- words by first byte

    fn digit_word(&mut self, i: usize, end: usize) -> usize {
        let b = self.b;
        let dend = digits_end(b, i);
        if b.get(end) == Some(&b':') && end - i <= 4 && b[i..end].iter().all(u8::is_ascii_hexdigit)
        {
            if let Some(e) = self.ipv6(i) {
                return e;
            }
        }
        if dend == end
            || (dend < end
                && (b[dend] == b'x' || b[dend] == b'X')
                && end - i <= 24
                && !(dend - i == 1 && b[i] == b'0'))
        {
            // Pure digits (or a phone with a glued "x123" extension): a numeric blob.
            return self.numeric(i);
        }
        // Alphanumeric word starting with a digit.
        let w = &b[i..end];
        if w.len() == 42
            && (w.starts_with(b"0x") || w.starts_with(b"0X"))
            && self.on(EntityKind::CryptoWallet)
            && checksum::eth_address(w)
        {
            self.push(EntityKind::CryptoWallet, i, end, 0.9, "eth_address");
            return end;
        }
        if (26..=35).contains(&w.len())
            && (w[0] == b'1' || w[0] == b'3')
            && self.on(EntityKind::CryptoWallet)
            && w.iter().all(|c| c.is_ascii_alphanumeric())
        {
            if let Ok(s) = std::str::from_utf8(w) {
                if checksum::btc_base58(s) {
                    self.push(EntityKind::CryptoWallet, i, end, 0.95, "btc_address");
                    return end;
                }
            }
        }
        // "221B Baker Street": a house number with a letter.
        if dend - i <= 6 && end - dend == 1 && b[dend].is_ascii_alphabetic() {
            self.street_address(i, end);
        }
        end
    }

    fn upper_word(&mut self, i: usize, end: usize) -> usize {
        let b = self.b;
        let w = &b[i..end];
        // IBAN: two letters, two check digits.
        if w.len() >= 4
            && w[1].is_ascii_uppercase()
            && w[2].is_ascii_digit()
            && w[3].is_ascii_digit()
            && self.on(EntityKind::IbanCode)
        {
            if let Some(e) = self.iban(i) {
                return e;
            }
        }
        if w.len() == 20 && self.on(EntityKind::Secret) {
            const AWS: &[&[u8]] = &[
                b"AKIA", b"ASIA", b"ABIA", b"ACCA", b"AGPA", b"AIDA", b"AROA", b"AIPA", b"ANPA",
                b"ANVA", b"APKA",
            ];
            if AWS.iter().any(|p| w.starts_with(p))
                && w[4..].iter().all(|c| {
                    c.is_ascii_uppercase() || (b'2'..=b'7').contains(c) || c.is_ascii_digit()
                })
            {
                self.push(EntityKind::Secret, i, end, 0.95, "aws_access_key");
                return end;
            }
        }
        if w.starts_with(b"AIza") {
            let e = token_end(b, i, |c| {
                c.is_ascii_alphanumeric() || c == b'_' || c == b'-'
            });
            if e - i == 39 {
                self.push(EntityKind::Secret, i, e, 0.9, "google_api_key");
                return e;
            }
        }
        // Letters then digits: passport / driver's license shapes (context-gated).
        let letters = w.iter().take_while(|c| c.is_ascii_uppercase()).count();
        if (1..=2).contains(&letters)
            && w.len() > letters
            && w[letters..].iter().all(u8::is_ascii_digit)
        {
            let nd = w.len() - letters;
            if letters == 1
                && nd == 8
                && self.on(EntityKind::UsPassport)
                && context(b, i, end, 40, 0, PASSPORT_CTX)
            {
                self.push(EntityKind::UsPassport, i, end, 0.85, "us_passport");
                return end;
            }
            if (4..=14).contains(&nd)
                && self.on(EntityKind::UsDriverLicense)
                && context(b, i, end, 40, 0, DL_CTX)
            {
                self.push(
                    EntityKind::UsDriverLicense,
                    i,
                    end,
                    0.8,
                    "us_driver_license",
                );
                return end;
            }
            return end;
        }
        if (w == b"PO" || w == b"P") && self.on(EntityKind::StreetAddress) {
            if let Some(e) = self.po_box(i) {
                return e;
            }
        }
        if self.on(EntityKind::DateOfBirth) {
            if let Some(e) = self.text_date(i, end) {
                return e;
            }
        }
        // Title-case word ("Anna"), initial ("J") or "O'Brien": a possible name.
        let titlecase = w.len() == 1 || w[1].is_ascii_lowercase() || w[1] == b'\'';
        if titlecase && self.on(EntityKind::Person) {
            return self.person(i);
        }
        end
    }

    fn lower_word(&mut self, i: usize, end: usize) -> usize {
        let b = self.b;
        let w = &b[i..end];
        let schemed = |b: &[u8]| {
            starts_with_ci(b, i, b"http://")
                || starts_with_ci(b, i, b"https://")
                || starts_with_ci(b, i, b"ftp://")
        };
        // Token prefixes end in '-' ("sk-", "xoxb-") or contain '_' ("ghp_", "sk_live_").
        let token_like = (w.len() <= 4 && b.get(end) == Some(&b'-'))
            || (w.len() > 4 && w[2..w.len().min(11)].contains(&b'_'));
        match w[0] {
            b'h' | b'f' if schemed(b) => return self.url(i, true),
            b'w' if w == b"www" && b.get(end) == Some(&b'.') => return self.url(i, true),
            b'b' if w.starts_with(b"bc1")
                && self.on(EntityKind::CryptoWallet)
                && (14..=90).contains(&w.len())
                && std::str::from_utf8(w).is_ok_and(checksum::btc_bech32) =>
            {
                self.push(EntityKind::CryptoWallet, i, end, 0.95, "btc_bech32");
                return end;
            }
            b'e' if w.starts_with(b"eyJ") => {
                if let Some(e) = self.jwt(i) {
                    return e;
                }
            }
            b's' | b'r' | b'g' | b'x' | b'w' if token_like && self.on(EntityKind::Secret) => {
                if let Some(e) = self.api_token(i) {
                    return e;
                }
            }
            _ => {}
        }
        // IPv6 starting with hex letters, e.g. "fe80::1".
        if b.get(end) == Some(&b':') && w.len() <= 4 && w.iter().all(u8::is_ascii_hexdigit) {
            if let Some(e) = self.ipv6(i) {
                return e;
            }
        }
        if b.get(end) == Some(&b'.') && b.get(end + 1).is_some_and(u8::is_ascii_alphanumeric) {
            return self.url(i, false);
        }
        end
    }

    fn high_word(&mut self, i: usize, end: usize) -> usize {
        // Non-ASCII word start: a capitalized name like "Élodie" or "Łukasz".
        if let Some(ch) = self.t.get(i..).and_then(|s| s.chars().next()) {
            if ch.is_uppercase() && self.on(EntityKind::Person) {
                return self.person(i);
            }
        }
        end
    }

    // ---------------------------------------------------------------- email, url, ip

    fn email(&mut self, at: usize) {
        if !self.on(EntityKind::EmailAddress) && !self.on(EntityKind::Url) {
            return;
        }
        let b = self.b;
        let local_ok = |c: u8| c.is_ascii_alphanumeric() || b"._%+-'".contains(&c);
        let mut s = at;
        while s > 0 && local_ok(b[s - 1]) && at - s < 64 {
            s -= 1;
        }
        while s < at && (b[s] == b'.' || b[s] == b'\'' || b[s] == b'-') {
            s += 1;
        }
        if s == at || b[at - 1] == b'.' {
            return;
        }
        if s > 0 && (b[s - 1] >= 0x80) {
            return;
        }
        let Some(e) = domain_end(b, at + 1, 1) else {
            return;
        };
        // "git@github.com:org/repo.git" is an scp-style remote, not a mailbox.
        if b.get(e) == Some(&b':') && b.get(e + 1).is_some_and(|c| c.is_ascii_alphanumeric()) {
            return;
        }
        self.push(EntityKind::EmailAddress, s, e, 1.0, "email");
    }

    fn url(&mut self, i: usize, schemed: bool) -> usize {
        let b = self.b;
        if schemed {
            let mut e = i;
            while e < b.len() {
                let c = b[e];
                if c <= b' ' || b"<>\"`{}|\\^".contains(&c) {
                    break;
                }
                e += 1;
            }
            let e = trim_url_end(b, i, e);
            let host_start = if starts_with_ci(b, i, b"www.") {
                i
            } else {
                find(b, i, e, b"://").map_or(e, |p| p + 3)
            };
            if host_start < e && (b[host_start].is_ascii_alphanumeric() || b[host_start] == b'[') {
                self.push(EntityKind::Url, i, e, 0.9, "url");
            }
            return e;
        }
        // Bare domain: labels with a known TLD, optional path.
        let Some(de) = domain_end(b, i, 1) else {
            return word_end(b, i);
        };
        let tld_start = b[i..de]
            .iter()
            .rposition(|&c| c == b'.')
            .map_or(i, |p| i + p + 1);
        if !lexicon::in_list(lexicon::BARE_TLDS, &b[tld_start..de]) {
            return word_end(b, i);
        }
        if b.get(de) == Some(&b'@') || (i > 0 && (b[i - 1] == b'@' || b[i - 1] == b'.')) {
            return de;
        }
        let mut e = de;
        if b.get(de) == Some(&b'/') || b.get(de) == Some(&b':') {
            while e < b.len() && !(b[e] <= b' ' || b"<>\"`{}|\\^".contains(&b[e])) {
                e += 1;
            }
            e = trim_url_end(b, i, e);
        }
        self.push(EntityKind::Url, i, e, 0.6, "domain");
        e
    }

    fn ipv6(&mut self, i: usize) -> Option<usize> {
        if !self.on(EntityKind::IpAddress) {
            return None;
        }
        let b = self.b;
        let mut e = i;
        while e < b.len()
            && (b[e].is_ascii_hexdigit() || b[e] == b':' || b[e] == b'.')
            && e - i < 45
        {
            e += 1;
        }
        while e > i && (b[e - 1] == b'.' || (b[e - 1] == b':' && !(e >= 2 && b[e - 2] == b':'))) {
            e -= 1;
        }
        if e < b.len() && is_word(b[e]) {
            return None;
        }
        let s = std::str::from_utf8(&b[i..e]).ok()?;
        if s.bytes().filter(|&c| c == b':').count() < 2 || !s.bytes().any(|c| c.is_ascii_hexdigit())
        {
            return None;
        }
        if s.parse::<std::net::Ipv6Addr>().is_ok() {
            self.push(EntityKind::IpAddress, i, e, 0.9, "ipv6");
            return Some(e);
        }
        None
    }

    // ---------------------------------------------------------------- numbers

    fn parse_blob(&self, p0: usize) -> Option<Blob> {
        let b = self.b;
        let mut blob = Blob {
            start: p0,
            plus: false,
            n: 0,
            gs: [0; MAXG],
            ge: [0; MAXG],
            paren: [false; MAXG],
            sep: [0; MAXG],
            tail_glued: false,
        };
        let mut p = p0;
        if b[p] == b'+' {
            blob.plus = true;
            p += 1;
        }
        let mut sep = 0u8;
        loop {
            let paren = b.get(p) == Some(&b'(');
            let gs = if paren { p + 1 } else { p };
            let ge = digits_end(b, gs);
            if ge == gs || ge - gs > 19 || (paren && b.get(ge) != Some(&b')')) {
                break;
            }
            let k = blob.n;
            blob.gs[k] = gs;
            blob.ge[k] = ge;
            blob.paren[k] = paren;
            blob.sep[k] = sep;
            blob.n += 1;
            if blob.n == MAXG {
                break;
            }
            let q = if paren { ge + 1 } else { ge };
            match b.get(q) {
                Some(&c @ (b' ' | b'-' | b'.' | b'/')) => {
                    let nx = b.get(q + 1);
                    if nx.is_some_and(u8::is_ascii_digit)
                        || (nx == Some(&b'(') && b.get(q + 2).is_some_and(u8::is_ascii_digit))
                    {
                        sep = c;
                        p = q + 1;
                        continue;
                    }
                    break;
                }
                Some(c) if paren && c.is_ascii_digit() => {
                    sep = b')';
                    p = q;
                    continue;
                }
                _ => break,
            }
        }
        if blob.n == 0 {
            return None;
        }
        let end = blob.byte_end(blob.n - 1);
        blob.tail_glued = end < b.len() && is_word(b[end]);
        Some(blob)
    }

    fn numeric(&mut self, p0: usize) -> usize {
        const NUMERIC: u32 = (1 << EntityKind::PhoneNumber as u32)
            | (1 << EntityKind::CreditCard as u32)
            | (1 << EntityKind::UsSsn as u32)
            | (1 << EntityKind::IpAddress as u32)
            | (1 << EntityKind::DateOfBirth as u32)
            | (1 << EntityKind::UsPassport as u32)
            | (1 << EntityKind::UsDriverLicense as u32)
            | (1 << EntityKind::StreetAddress as u32);
        let b = self.b;
        if self.mask & NUMERIC == 0 {
            return digits_end(b, p0 + 1);
        }
        let Some(blob) = self.parse_blob(p0) else {
            return p0 + 1;
        };
        let blob_end = blob.byte_end(blob.n - 1);
        // A house number followed by a street name.
        if self.on(EntityKind::StreetAddress)
            && !blob.plus
            && !blob.paren[0]
            && blob.ge[0] - blob.gs[0] <= 6
            && b.get(blob.ge[0]) == Some(&b' ')
        {
            self.street_address(blob.gs[0], blob.ge[0]);
        }
        // Chunks are split at spaces only: "-", ".", "/" bind groups into one token.
        let mut chunks = [0usize; MAXG + 1];
        let mut nc = 0;
        for g in 0..blob.n {
            if g == 0 || blob.sep[g] == b' ' {
                chunks[nc] = g;
                nc += 1;
            }
        }
        chunks[nc] = blob.n;
        let mut s = 0;
        while s < nc {
            let mut advanced = false;
            for e in (s + 1..=nc).rev() {
                let (g0, g1) = (chunks[s], chunks[e]);
                if self.numeric_range(&blob, g0, g1) {
                    s = e;
                    advanced = true;
                    break;
                }
            }
            if !advanced {
                s += 1;
            }
        }
        blob_end
    }

    /// Tries every numeric recognizer on groups g0..g1 of a blob; true when one matched.
    fn numeric_range(&mut self, blob: &Blob, g0: usize, g1: usize) -> bool {
        let b = self.b;
        let ng = g1 - g0;
        let bs = blob.byte_start(g0);
        let mut be = blob.byte_end(g1 - 1);
        let glued = g1 == blob.n && blob.tail_glued;
        let mut digits = [0u8; 48];
        let mut nd = 0;
        let mut lens = [0usize; MAXG];
        for g in g0..g1 {
            let d = &b[blob.gs[g]..blob.ge[g]];
            lens[g - g0] = d.len();
            for &c in d {
                if nd < digits.len() {
                    digits[nd] = c;
                }
                nd += 1;
            }
        }
        if nd > digits.len() {
            return false;
        }
        let digits = &digits[..nd];
        let lens = &lens[..ng];
        let inner = &blob.sep[g0 + 1..g1];
        let any_paren = blob.paren[g0..g1].iter().any(|&p| p);
        let plus = g0 == 0 && blob.plus;
        let same_sep = |set: &[u8]| inner.iter().all(|s| *s == inner[0] && set.contains(s));

        if !glued && !plus && !any_paren {
            // IPv4
            let cidr = ng == 5
                && inner[3] == b'/'
                && lens[4] <= 2
                && inner[..3].iter().all(|&c| c == b'.');
            if (ng == 4 && same_sep(b".") || cidr)
                && lens[..4].iter().all(|&l| l <= 3)
                && self.on(EntityKind::IpAddress)
            {
                let ok = (g0..g0 + 4).all(|g| {
                    let d = &b[blob.gs[g]..blob.ge[g]];
                    d.iter().fold(0u32, |a, &c| a * 10 + (c - b'0') as u32) <= 255
                        && !(d.len() > 1 && d[0] == b'0')
                });
                let before_dot = bs > 0 && b[bs - 1] == b'.';
                if ok && !before_dot && !context(b, bs, be, 24, 0, VERSION_CTX) {
                    self.push(EntityKind::IpAddress, bs, be, 0.95, "ipv4");
                    return true;
                }
            }
            // SSN: 3-2-4 with one separator kind, or 9 digits with context.
            if self.on(EntityKind::UsSsn) && nd == 9 {
                if ng == 3 && lens == [3, 2, 4] && same_sep(b"- .") {
                    if checksum::ssn_valid(digits) {
                        let score = if inner[0] == b'-' { 0.85 } else { 0.7 };
                        let score = if context(b, bs, be, 40, 0, SSN_CTX) {
                            1.0
                        } else {
                            score
                        };
                        self.push(EntityKind::UsSsn, bs, be, score, "us_ssn");
                        return true;
                    }
                } else if ng == 1
                    && checksum::ssn_valid(digits)
                    && context(b, bs, be, 40, 0, SSN_CTX)
                {
                    self.push(EntityKind::UsSsn, bs, be, 0.85, "us_ssn");
                    return true;
                }
            }
            // Credit card: 13-19 digits, groups of 3-6 with one separator kind.
            if self.on(EntityKind::CreditCard)
                && (13..=19).contains(&nd)
                && (ng == 1 || (same_sep(b" -") && lens.iter().all(|&l| (3..=6).contains(&l))))
                && checksum::card_issuer_ok(digits)
                && checksum::luhn(digits)
                && !digits.iter().all(|&c| c == digits[0])
            {
                let score = if ng == 1 && !context(b, bs, be, 40, 0, CARD_CTX) {
                    0.9
                } else {
                    1.0
                };
                self.push(EntityKind::CreditCard, bs, be, score, "credit_card");
                return true;
            }
            // Dates: only interesting with birth context.
            if ng == 3
                && same_sep(b"/-.")
                && self.on(EntityKind::DateOfBirth)
                && is_date(lens, &b[blob.gs[g0]..blob.ge[g1 - 1]])
            {
                if context(b, bs, be, 40, 0, DOB_CTX) {
                    self.push(EntityKind::DateOfBirth, bs, be, 0.85, "date_of_birth");
                }
                return true; // a date is never a phone number
            }
            if ng == 1
                && nd == 9
                && self.on(EntityKind::UsPassport)
                && context(b, bs, be, 40, 0, PASSPORT_CTX)
            {
                self.push(EntityKind::UsPassport, bs, be, 0.85, "us_passport");
                return true;
            }
            if ng == 1
                && (5..=13).contains(&nd)
                && self.on(EntityKind::UsDriverLicense)
                && context(b, bs, be, 40, 0, DL_CTX)
            {
                self.push(
                    EntityKind::UsDriverLicense,
                    bs,
                    be,
                    0.75,
                    "us_driver_license",
                );
                return true;
            }
        }
        // Phone numbers.
        if !self.on(EntityKind::PhoneNumber) || !(7..=15).contains(&nd) {
            return false;
        }
        if ng >= 2 && !inner.iter().all(|s| b" -./)".contains(s)) {
            return false;
        }
        // Extension: "x123", " ext. 123", " extension 123".
        let mut ext = None;
        if glued && !(b.get(be) == Some(&b'x') || b.get(be) == Some(&b'X')) {
            return false;
        }
        if let Some(e) = phone_extension(b, be) {
            ext = Some(e);
        } else if glued {
            return false;
        }
        let intl =
            plus || (ng >= 2 && lens[0] >= 3 && digits.starts_with(b"00") && digits[2] != b'0');
        let formatted = ng >= 2 || any_paren;

        let mut score: f32 = 0.0;
        let mut rec = "phone";
        if intl {
            let body = if plus { digits } else { &digits[2..] };
            let mut buf = String::with_capacity(body.len() + 1);
            buf.push('+');
            buf.extend(body.iter().map(|&c| c as char));
            let by_table = intl_plan(body);
            if by_table == Some(true) || by_table.is_none() && phone_valid(None, &buf) {
                score = 0.8;
            } else if body.len() >= 10 && formatted && (body[0] == b'1' && lens_nanp(lens, plus)) {
                score = 0.6;
            } else if formatted && body.len() >= 9 {
                score = 0.45;
            }
            rec = "phone_intl";
        } else if is_nanp_shape(lens, inner, any_paren) {
            let valid = nanp_valid(digits);
            let spaced = inner.iter().all(|&c| c == b' ') && !any_paren;
            score = match (valid, spaced) {
                (true, false) => 0.75,
                (true, true) => 0.55,
                (false, false) => 0.6,
                (false, true) => 0.35,
            };
            rec = "phone_nanp";
        } else if formatted && (8..=13).contains(&nd) && digits[0] == b'0' {
            // National formats with a trunk prefix (UK 020 7946 0958, DE 030 123456, FR 01 23 45 67 89).
            let s: String = digits.iter().map(|&c| c as char).collect();
            use phonenumber::country::Id;
            // The library is slow per call (tens of microseconds): only a few common regions.
            for region in [Id::GB, Id::DE, Id::FR, Id::IN, Id::AU] {
                if phone_valid(Some(region), &s) {
                    score = 0.6;
                    rec = "phone_national";
                    break;
                }
            }
        } else if !formatted && (nd == 10 || (nd == 11 && digits[0] == b'1')) && nanp_valid(digits)
        {
            // Unformatted ten digits are as often IDs as phones: only context lifts them over the bar.
            score = 0.4;
            rec = "phone_nanp";
        }
        if score <= 0.0 {
            return false;
        }
        if context(b, bs, be, 40, 10, PHONE_CTX) {
            score = (score + 0.25).min(0.95);
        }
        if let Some(e) = ext {
            be = e;
        }
        self.push(EntityKind::PhoneNumber, bs, be, score, rec);
        true
    }

    // ---------------------------------------------------------------- iban, secrets

    fn iban(&mut self, i: usize) -> Option<usize> {
        let b = self.b;
        let want = checksum::iban_length(&b[i..i + 2])?;
        let mut compact = [0u8; 40];
        let mut n = 0;
        let mut p = i;
        let mut last_end = i;
        while p < b.len() && n < want {
            let c = b[p];
            if c.is_ascii_alphanumeric() {
                compact[n] = c.to_ascii_uppercase();
                n += 1;
                p += 1;
                last_end = p;
            } else if (c == b' ' || c == b'-')
                && n >= 4
                && b.get(p + 1).is_some_and(u8::is_ascii_alphanumeric)
            {
                p += 1;
            } else {
                break;
            }
        }
        if n != want || (last_end < b.len() && is_word(b[last_end])) {
            return None;
        }
        if !checksum::iban_mod97(&compact[..n]) {
            return None;
        }
        self.push(EntityKind::IbanCode, i, last_end, 1.0, "iban");
        Some(last_end)
    }

    fn private_key(&mut self, i: usize) -> usize {
        let b = self.b;
        let line_end = find(b, i + 10, b.len().min(i + 80), b"-----").map(|p| p + 5);
        let Some(he) = line_end else { return i + 10 };
        let header = &b[i..he];
        if find(header, 0, header.len(), b"PRIVATE KEY").is_none() || !self.on(EntityKind::Secret) {
            return he;
        }
        // The END line, or the end of the base64 body when it is cut off.
        let e = match find(b, he, b.len(), b"-----END") {
            Some(p) => find(b, p + 8, b.len().min(p + 80), b"-----").map_or(p + 8, |q| q + 5),
            None => {
                let mut e = he;
                while e < b.len() && (b[e].is_ascii_alphanumeric() || b"+/=\r\n ".contains(&b[e])) {
                    e += 1;
                }
                while e > he && b[e - 1].is_ascii_whitespace() {
                    e -= 1;
                }
                e
            }
        };
        self.push(EntityKind::Secret, i, e, 1.0, "private_key");
        e
    }

    fn jwt(&mut self, i: usize) -> Option<usize> {
        let b = self.b;
        let b64 = |c: u8| c.is_ascii_alphanumeric() || c == b'-' || c == b'_';
        let h = token_end(b, i, b64);
        if h - i < 10 || b.get(h) != Some(&b'.') {
            return None;
        }
        let p = token_end(b, h + 1, b64);
        if p - h - 1 < 10 || b.get(p) != Some(&b'.') {
            return None;
        }
        let s = token_end(b, p + 1, b64);
        if s < b.len() && is_word(b[s]) {
            return None;
        }
        self.push(EntityKind::Secret, i, s, 0.95, "jwt");
        Some(s)
    }

    fn api_token(&mut self, i: usize) -> Option<usize> {
        if !self.on(EntityKind::Secret) {
            return None;
        }
        let b = self.b;
        let tok = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b'-';
        let e = token_end(b, i, tok);
        let w = &b[i..e];
        let alnum_after = |p: usize| {
            w[p.min(w.len())..]
                .iter()
                .filter(|c| c.is_ascii_alphanumeric())
                .count()
        };
        let (ok, rec) = if w.starts_with(b"github_pat_") {
            (alnum_after(11) >= 50, "github_token")
        } else if w.len() >= 40
            && (w.starts_with(b"ghp_")
                || w.starts_with(b"gho_")
                || w.starts_with(b"ghu_")
                || w.starts_with(b"ghs_")
                || w.starts_with(b"ghr_"))
        {
            (alnum_after(4) >= 36, "github_token")
        } else if w.starts_with(b"sk_live_")
            || w.starts_with(b"sk_test_")
            || w.starts_with(b"rk_live_")
            || w.starts_with(b"rk_test_")
            || w.starts_with(b"whsec_")
        {
            (alnum_after(6) >= 20, "stripe_key")
        } else if w.starts_with(b"xoxb-")
            || w.starts_with(b"xoxp-")
            || w.starts_with(b"xoxa-")
            || w.starts_with(b"xoxr-")
            || w.starts_with(b"xoxs-")
            || w.starts_with(b"xapp-")
        {
            (alnum_after(5) >= 20, "slack_token")
        } else if w.starts_with(b"sk-") {
            // OpenAI (sk-..., sk-proj-...) and Anthropic (sk-ant-...) style keys.
            let body = alnum_after(3);
            let has_digit = w.iter().any(u8::is_ascii_digit);
            (body >= 20 && has_digit, "llm_api_key")
        } else {
            (false, "")
        };
        if ok {
            self.push(EntityKind::Secret, i, e, 0.95, rec);
            return Some(e);
        }
        None
    }

    // ---------------------------------------------------------------- dates of birth

    /// "March 3, 1985" / "Mar 3 1985" with birth context.
    fn text_date(&mut self, i: usize, end: usize) -> Option<usize> {
        let b = self.b;
        if !(3..=9).contains(&(end - i)) || !b"JFMASONDjfmasond".contains(&b[i]) {
            return None;
        }
        lexicon::MONTHS
            .iter()
            .find(|(m, _)| m.as_bytes().eq_ignore_ascii_case(&b[i..end]))?;
        let mut p = end;
        if b.get(p) == Some(&b'.') {
            p += 1;
        }
        if b.get(p) != Some(&b' ') {
            return None;
        }
        p += 1;
        let de = digits_end(b, p);
        if de == p || de - p > 2 {
            return None;
        }
        let mut q = de;
        for suf in [&b"st"[..], b"nd", b"rd", b"th"] {
            if b.get(q..q + 2) == Some(suf) {
                q += 2;
                break;
            }
        }
        if b.get(q) == Some(&b',') {
            q += 1;
        }
        if b.get(q) != Some(&b' ') {
            return None;
        }
        q += 1;
        let ye = digits_end(b, q);
        if ye - q != 4 || (ye < b.len() && is_word(b[ye])) {
            return None;
        }
        if context(b, i, ye, 40, 0, DOB_CTX) {
            self.push(EntityKind::DateOfBirth, i, ye, 0.85, "date_of_birth");
            return Some(ye);
        }
        None
    }

    // ---------------------------------------------------------------- addresses

    /// `num` .. `num_end` is a house number; try "<num> <Name words> <Suffix> [unit] [, City, ST 12345]".
    fn street_address(&mut self, num: usize, num_end: usize) {
        let b = self.b;
        let mut p = num_end;
        if b.get(p) != Some(&b' ') {
            return;
        }
        p += 1;
        let mut words = 0;
        let mut street_end = None;
        while words < 6 {
            let we = alpha_word_end(b, p);
            if we == p {
                return;
            }
            let w = &b[p..we];
            let is_ord = w[0].is_ascii_digit() && w.len() >= 3 && {
                let sfx = &w[w.len() - 2..];
                [&b"st"[..], b"nd", b"rd", b"th"].contains(&sfx)
                    && w[..w.len() - 2].iter().all(u8::is_ascii_digit)
            };
            let is_dir = lexicon::in_list(
                &[
                    "n", "s", "e", "w", "ne", "nw", "se", "sw", "north", "south", "east", "west",
                ],
                w,
            );
            if words > 0
                && self.lex.flags_ascii(w) & lexicon::SUFFIX != 0
                && w[0].is_ascii_uppercase()
            {
                let mut e = we;
                // "St." keeps its abbreviation dot; "Terrace." ends a sentence.
                if b.get(e) == Some(&b'.') && is_abbrev_suffix(w) {
                    e += 1;
                }
                // Trailing directional: "Main St NW".
                if b.get(e) == Some(&b' ') {
                    let de = alpha_word_end(b, e + 1);
                    if de > e + 1
                        && lexicon::in_list(
                            &["n", "s", "e", "w", "ne", "nw", "se", "sw"],
                            &b[e + 1..de],
                        )
                        && b[e + 1].is_ascii_uppercase()
                        && !b.get(de).is_some_and(|&c| is_word(c))
                    {
                        e = de;
                        if b.get(e) == Some(&b'.') {
                            e += 1;
                        }
                    }
                }
                street_end = Some(e);
                break;
            }
            if !(w[0].is_ascii_uppercase() || is_ord || (is_dir && w[0].is_ascii_uppercase())) {
                return;
            }
            words += 1;
            p = we;
            if b.get(p) == Some(&b'.') {
                p += 1;
            }
            if b.get(p) != Some(&b' ') {
                return;
            }
            p += 1;
        }
        let Some(mut e) = street_end else { return };
        // "In 2019 Park Avenue was repaved": a year after "in" is not a house number.
        if num_end - num == 4
            && (b[num] == b'1' || b[num] == b'2')
            && context(b, num, num, 4, 0, &["in ", "since ", "by "])
        {
            return;
        }
        let mut score = 0.75;
        // Unit: ", Apt 4B" / " Suite 436" / " #12"
        {
            let mut q = e;
            if b.get(q) == Some(&b',') {
                q += 1;
            }
            if b.get(q) == Some(&b' ') {
                q += 1;
                let ue = alpha_word_end(b, q);
                let unit_word = ue > q && lexicon::in_list(lexicon::UNIT_WORDS, &b[q..ue]);
                let mut r = if unit_word { ue } else { q };
                if unit_word && b.get(r) == Some(&b'.') {
                    r += 1;
                }
                if unit_word && b.get(r) == Some(&b' ') {
                    r += 1;
                }
                if !unit_word && b.get(r) == Some(&b'#') {
                    r += 1;
                    if b.get(r) == Some(&b' ') {
                        r += 1;
                    }
                }
                if r > q {
                    let ie = token_end(b, r, |c| c.is_ascii_alphanumeric() || c == b'-');
                    if ie > r && ie - r <= 8 && b[r..ie].iter().any(u8::is_ascii_digit)
                        || (ie - r == 1)
                    {
                        e = ie;
                    }
                }
            }
        }
        // City, ST 12345 (same line after a comma, or the next line).
        if let Some(ce) = city_state_zip(b, e) {
            e = ce;
            score = 0.85;
        }
        self.push(EntityKind::StreetAddress, num, e, score, "street_address");
    }

    fn po_box(&mut self, i: usize) -> Option<usize> {
        let b = self.b;
        let mut p = i;
        if b[i..].starts_with(b"P.O. Box ") {
            p += 9;
        } else if b[i..].starts_with(b"PO Box ") {
            p += 7;
        } else {
            return None;
        }
        let de = digits_end(b, p);
        if de == p || de - p > 6 {
            return None;
        }
        let e = city_state_zip(b, de).unwrap_or(de);
        self.push(EntityKind::StreetAddress, i, e, 0.8, "po_box");
        Some(e)
    }

    // ---------------------------------------------------------------- person names

    fn person(&mut self, i: usize) -> usize {
        let b = self.b;
        let t = self.t;
        // Tokens: capitalized words or initials separated by single spaces.
        let mut toks: [(usize, usize, u8); 6] = [(0, 0, 0); 6];
        let mut nt = 0;
        let mut p = i;
        while let Some((te, kind)) = name_token(t, p) {
            toks[nt] = (p, te, kind);
            nt += 1;
            let mut q = te;
            if kind == TOK_INITIAL && b.get(q) == Some(&b'.') {
                q += 1;
                toks[nt - 1].1 = q;
            }
            if nt == toks.len() || b.get(q) != Some(&b' ') {
                break;
            }
            let nx = q + 1;
            let starts_upper = match b.get(nx) {
                Some(&c) if c.is_ascii_uppercase() => true,
                Some(&c) if c >= 0x80 => t
                    .get(nx..)
                    .and_then(|s| s.chars().next())
                    .is_some_and(char::is_uppercase),
                _ => false,
            };
            if !starts_upper {
                break;
            }
            p = nx;
        }
        if nt == 0 {
            return word_end(b, i);
        }
        // Resume after the first token unless a name is found, so later tokens ("Born July 4th")
        // still get their own recognizers.
        let resume = toks[0].1;
        // Look up each token.
        let mut flags = [0u8; 6];
        let mut title = [false; 6];
        let mut non_name = [false; 6];
        let mut org = [false; 6];
        let mut place = [false; 6];
        let mut buf = String::new();
        for k in 0..nt {
            let (s, e, kind) = toks[k];
            if kind == TOK_INITIAL {
                continue;
            }
            let all = self.token_flags(&t[s..e], &mut buf);
            flags[k] = all & (lexicon::FIRST | lexicon::LAST | lexicon::WORD);
            title[k] = all & lexicon::TITLE != 0;
            org[k] = all & lexicon::ORG != 0;
            non_name[k] = all & lexicon::NOT_NAME != 0;
            place[k] = all & lexicon::PLACE != 0;
            if k == 0
                && nt == 1
                && all & (lexicon::FIRST | lexicon::LAST | lexicon::TITLE) == 0
                && (non_name[0] || at_sentence_start(b, s))
            {
                return resume; // fast path: a lone "The" / "Customers" opening a sentence
            }
        }
        // Title anywhere before the name ("Dr. Jane Doe"), or the preceding word.
        let mut first = 0;
        // "Mr. Smith": the title ends with '.', so it is not part of the chain; look back for it.
        let mut has_title = preceded_by_title(b, toks[0].0);
        while first < nt {
            let (s, e, kind) = toks[first];
            let dot_title = title[first] && (b.get(e) == Some(&b'.') || b.get(e) == Some(&b' '));
            if dot_title {
                has_title = true;
                first += 1;
                continue;
            }
            if kind != TOK_INITIAL
                && flags[first] & (lexicon::FIRST | lexicon::LAST) == 0
                && (non_name[first] || (first + 1 < nt && !has_title))
            {
                // A non-name leading word ("Yesterday", "Dear"): strip. A lone unknown word stays
                // a candidate: an introduction ("Hi Priya") can still make it a name.
                let _ = s;
                first += 1;
                continue;
            }
            break;
        }
        if first >= nt {
            return resume;
        }
        let anchor = toks[first.min(nt - 1)].0;
        // Words that introduce a name right before it ("my name is", "Dear", "Hi", "Thanks,"):
        // enough even for a name missing from the lexicon. Checked on the previous word only,
        // which keeps the check O(1) on the hot path.
        let intro_ctx = || {
            has_title
                || prev_word_in(
                    b,
                    anchor,
                    &[
                        "is",
                        "named",
                        "name",
                        "am",
                        "i'm",
                        "im",
                        "dear",
                        "hi",
                        "hello",
                        "hey",
                        "signed",
                        "sincerely",
                        "regards",
                        "thanks",
                        "cheers",
                        "attn",
                        "mr",
                        "mrs",
                        "ms",
                        "dr",
                        "person",
                    ],
                )
        };
        // Words around people: they only strengthen a lexicon hit.
        let strong_ctx = || {
            intro_ctx()
                || prev_word_in(
                    b,
                    anchor,
                    &[
                        "patient",
                        "by",
                        "from",
                        "customer",
                        "client",
                        "employee",
                        "applicant",
                        "user",
                        "contact",
                        "with",
                        "to",
                        "and",
                        "cc",
                        "meet",
                        "met",
                        "told",
                        "ask",
                        "asked",
                        "called",
                        "spoke",
                        "hired",
                        "thank",
                        "for",
                        "emailed",
                        "member",
                        "manager",
                    ],
                )
        };

        // Keep the longest run of name-like tokens from `first`.
        let mut last = first;
        let mut k = first;
        while k < nt {
            let (_, _, kind) = toks[k];
            let f = flags[k];
            let is_name = kind == TOK_INITIAL || f & (lexicon::FIRST | lexicon::LAST) != 0;
            let unknown_ok =
                kind == TOK_WORD && f == 0 && !non_name[k] && !org[k] && (k > first || has_title);
            if org[k] || non_name[k] && !is_name {
                break;
            }
            if is_name || unknown_ok {
                last = k;
                k += 1;
            } else {
                break;
            }
        }
        // A street name, not a person: "Harris Route", or "12 Oak Hill" after a house number.
        let after_num = {
            let s0 = toks[first].0;
            s0 >= 2 && b[s0 - 1] == b' ' && b[s0 - 2].is_ascii_digit()
        };
        for k in first + 1..(last + 2).min(nt) {
            let (ts, te, kind) = toks[k];
            if kind == TOK_WORD
                && self.lex.flags_ascii(&b[ts..te]) & lexicon::SUFFIX != 0
                && (after_num || flags[k] & lexicon::LAST == 0)
            {
                return toks[k].1;
            }
        }
        // Organization or place after the name: "Johnson Controls Inc", "Jackson Street".
        let after = last + 1;
        if after < nt && org[after] {
            return resume;
        }
        if after == nt && followed_by_org(b, toks[last].1, self) {
            return resume;
        }
        // Drop trailing initials.
        while last > first && toks[last].2 == TOK_INITIAL {
            last -= 1;
        }
        if toks[first].2 == TOK_INITIAL && last == first {
            return resume;
        }
        let n = last - first + 1;
        let fl = flags[first];
        let ll = flags[last];
        let is_first = |f: u8| f & lexicon::FIRST != 0;
        let is_last = |f: u8| f & lexicon::LAST != 0;
        let plain = |f: u8| f & lexicon::WORD == 0;
        let score: f32 = if n >= 2 {
            let known = (first..=last)
                .filter(|&k| flags[k] & (lexicon::FIRST | lexicon::LAST) != 0)
                .count();
            let all_word =
                (first..=last).all(|k| toks[k].2 == TOK_INITIAL || flags[k] & lexicon::WORD != 0);
            let sentence_start = at_sentence_start(b, toks[first].0);
            if is_first(fl) && is_last(ll) {
                // Census names are often also dictionary words ("John", "Smith"): that only
                // weakens the evidence when every token is one.
                if plain(fl) {
                    0.85
                } else if !all_word || strong_ctx() {
                    0.75
                } else if sentence_start || n > 2 {
                    0.45
                } else {
                    0.6
                }
            } else if all_word {
                if strong_ctx() {
                    0.6
                } else {
                    0.3
                }
            } else if is_first(fl) && plain(fl) && !place[first] {
                0.75 // first name + unknown surname ("Priya Raghunathan")
            } else if has_title && n >= 2 {
                0.8 // "Dr. Kwame Mensah"
            } else if known >= 2 && (plain(fl) || plain(ll)) {
                0.65
            } else if strong_ctx() {
                0.6
            } else {
                0.35
            }
        } else {
            let sentence_start = at_sentence_start(b, toks[first].0);
            let f = fl;
            let base: f32 = if place[first] {
                0.25
            } else if is_first(f) && plain(f) {
                0.6
            } else if is_first(f) || is_last(f) && plain(f) {
                if sentence_start {
                    0.25
                } else {
                    0.45
                }
            } else if f != 0 {
                0.2
            } else {
                0.0
            };
            let unknown = toks[first].2 == TOK_WORD && f == 0 && !non_name[first] && !org[first];
            if has_title && (f != 0 || unknown) {
                0.8
            } else if (f != 0 || unknown) && intro_ctx() {
                if unknown {
                    0.6
                } else {
                    (base + 0.3).max(0.6)
                }
            } else if base > 0.0 && strong_ctx() {
                base + 0.2
            } else {
                base
            }
        };
        let (s, _, _) = toks[first];
        let e = toks[last].1;
        if score >= 0.5 {
            self.push(EntityKind::Person, s, e, score.min(0.95), "person");
            return e;
        }
        resume
    }

    /// Lexicon flags of a token, case- and diacritic-folded; hyphenated names count if a part is a name.
    fn token_flags(&self, word: &str, buf: &mut String) -> u8 {
        let mut stack = [0u8; 32];
        let lower: &str = if word.len() <= stack.len()
            && word.bytes().all(|c| c.is_ascii_alphabetic() || c == b'-')
        {
            for (d, c) in stack.iter_mut().zip(word.bytes()) {
                *d = c.to_ascii_lowercase();
            }
            std::str::from_utf8(&stack[..word.len()]).unwrap_or("")
        } else {
            lower_fold(word, buf);
            buf.as_str()
        };
        let f = self.lex.flags(lower);
        if f != 0 || !lower.contains('-') {
            return f;
        }
        lower
            .split('-')
            .map(|p| self.lex.flags(p))
            .fold(0, |a, x| a | (x & (lexicon::FIRST | lexicon::LAST)))
    }
}

const TOK_WORD: u8 = 1;
const TOK_INITIAL: u8 = 2;

/// A capitalized name token at `p`: "Anne", "O'Brien", "Smith-Jones", "McDonald", "José", or an
/// initial "J". Returns its end and kind.
fn name_token(t: &str, p: usize) -> Option<(usize, u8)> {
    let s = t.get(p..)?;
    let mut it = s.char_indices();
    let (_, c0) = it.next()?;
    if !c0.is_uppercase() {
        return None;
    }
    let mut end = c0.len_utf8();
    let mut lower_seen = false;
    let mut upper_run = 1;
    let mut prev_punct = false;
    for (idx, c) in it {
        if c.is_alphabetic() {
            if c.is_lowercase() {
                lower_seen = true;
                upper_run = 0;
            } else {
                upper_run += 1;
            }
            prev_punct = false;
            end = idx + c.len_utf8();
        } else if (c == '\'' || c == '’')
            && s[idx + c.len_utf8()..].starts_with('s')
            && !s[idx + c.len_utf8() + 1..].starts_with(char::is_alphabetic)
        {
            break; // possessive "Rossi's": the name ends before the apostrophe
        } else if (c == '\'' || c == '-' || c == '’') && !prev_punct {
            prev_punct = true;
        } else {
            break;
        }
    }
    let _ = upper_run;
    let tok = &s[..end];
    // Possessive: "Smith's" ends the token before the apostrophe.
    let next = s.as_bytes().get(end).copied();
    if end == c0.len_utf8() {
        // Single capital letter: an initial if followed by '.' or ' '.
        return match next {
            Some(b'.') | Some(b' ') => Some((p + end, TOK_INITIAL)),
            _ => None,
        };
    }
    if next.is_some_and(|c| c.is_ascii_digit() || c == b'_' || c == b'@') {
        return None;
    }
    if !lower_seen || tok.chars().filter(|c| c.is_uppercase()).count() > 3 {
        return None; // ALL CAPS words are acronyms more often than names
    }
    Some((p + end, TOK_WORD))
}

/// ASCII-lowercases `word` into `buf`, folding common Latin diacritics (José → jose) and
/// dropping apostrophes (O'Brien → obrien) to match the Census spellings.
fn lower_fold(word: &str, buf: &mut String) {
    buf.clear();
    for c in word.chars() {
        let c = match c {
            'à'..='å' | 'À'..='Å' => 'a',
            'ç' | 'Ç' => 'c',
            'è'..='ë' | 'È'..='Ë' => 'e',
            'ì'..='ï' | 'Ì'..='Ï' => 'i',
            'ñ' | 'Ñ' => 'n',
            'ò'..='ö' | 'Ò'..='Ö' | 'ø' | 'Ø' => 'o',
            'ù'..='ü' | 'Ù'..='Ü' => 'u',
            'ý' | 'ÿ' | 'Ý' => 'y',
            '\'' | '’' => continue,
            c => c,
        };
        for l in c.to_lowercase() {
            buf.push(l);
        }
    }
}

fn preceded_by_title(b: &[u8], s: usize) -> bool {
    // "Mr. " / "Dr " immediately before.
    let mut p = s;
    if p == 0 || b[p - 1] != b' ' {
        return false;
    }
    p -= 1;
    if p > 0 && b[p - 1] == b'.' {
        p -= 1;
    }
    let mut q = p;
    while q > 0 && b[q - 1].is_ascii_alphabetic() {
        q -= 1;
    }
    q < p && lexicon::in_list(lexicon::TITLES, &b[q..p])
}

fn followed_by_org(b: &[u8], e: usize, pass: &Pass<'_>) -> bool {
    let _ = pass;
    if b.get(e) != Some(&b' ') && b.get(e) != Some(&b',') {
        return false;
    }
    let mut p = e + 1;
    if b.get(e) == Some(&b',') && b.get(p) == Some(&b' ') {
        p += 1;
    }
    let we = alpha_word_end(b, p);
    we > p
        && lexicon::in_list(
            &["inc", "llc", "ltd", "corp", "plc", "gmbh", "co", "llp"],
            &b[p..we],
        )
}

fn at_sentence_start(b: &[u8], s: usize) -> bool {
    let mut p = s;
    while p > 0
        && (b[p - 1] == b' '
            || b[p - 1] == b'"'
            || b[p - 1] == b'\''
            || b[p - 1] == b'('
            || b[p - 1] == b'*')
    {
        p -= 1;
    }
    p == 0
        || matches!(
            b[p - 1],
            b'.' | b'!' | b'?' | b'\n' | b'\r' | b':' | b'\t' | b'>' | b'#' | b'-'
        )
}

fn alpha_word_end(b: &[u8], mut p: usize) -> usize {
    while p < b.len() && (b[p].is_ascii_alphanumeric() || b[p] == b'\'') {
        p += 1;
    }
    p
}

fn token_end(b: &[u8], mut p: usize, ok: impl Fn(u8) -> bool) -> usize {
    while p < b.len() && ok(b[p]) {
        p += 1;
    }
    p
}

fn find(b: &[u8], from: usize, to: usize, pat: &[u8]) -> Option<usize> {
    if from >= to || to > b.len() {
        return None;
    }
    b[from..to]
        .windows(pat.len())
        .position(|w| w == pat)
        .map(|p| from + p)
}

/// End of a DNS name starting at `p` with at least `min_dots` dots and an alphabetic TLD.
fn domain_end(b: &[u8], p: usize, min_dots: usize) -> Option<usize> {
    let mut e = p;
    let mut dots = 0;
    let mut label_start = p;
    let mut last_label = (p, p);
    while e < b.len() {
        let c = b[e];
        if c.is_ascii_alphanumeric() || (c == b'-' && e > label_start) {
            e += 1;
        } else if c == b'.'
            && e > label_start
            && b.get(e + 1).is_some_and(|c| c.is_ascii_alphanumeric())
        {
            last_label = (label_start, e);
            dots += 1;
            e += 1;
            label_start = e;
        } else {
            break;
        }
    }
    let _ = last_label;
    if dots < min_dots || e == label_start {
        return None;
    }
    let tld = &b[label_start..e];
    if tld.len() < 2 || tld.len() > 24 || !tld.iter().all(u8::is_ascii_alphabetic) {
        return None;
    }
    if e < b.len() && (b[e] >= 0x80 || b[e] == b'_') {
        return None;
    }
    Some(e)
}

fn trim_url_end(b: &[u8], s: usize, mut e: usize) -> usize {
    while e > s {
        let c = b[e - 1];
        if b".,;:!?'\"*".contains(&c) {
            e -= 1;
        } else if c == b')' || c == b']' {
            let (open, close) = if c == b')' {
                (b'(', b')')
            } else {
                (b'[', b']')
            };
            let opens = b[s..e].iter().filter(|&&x| x == open).count();
            let closes = b[s..e].iter().filter(|&&x| x == close).count();
            if closes > opens {
                e -= 1;
            } else {
                break;
            }
        } else {
            break;
        }
    }
    e
}

fn phone_extension(b: &[u8], e: usize) -> Option<usize> {
    let mut p = e;
    if b.get(p) == Some(&b' ') {
        p += 1;
    }
    let kw_end = if b.get(p).is_some_and(|&c| c == b'x' || c == b'X') {
        p + 1
    } else if starts_with_ci(b, p, b"extension") {
        p + 9
    } else if starts_with_ci(b, p, b"ext") {
        p + 3
    } else {
        return None;
    };
    let mut q = kw_end;
    if b.get(q) == Some(&b'.') {
        q += 1;
    }
    if b.get(q) == Some(&b' ') && kw_end > p + 1 {
        q += 1;
    }
    let de = digits_end(b, q);
    if de == q || de - q > 6 || (de < b.len() && is_word(b[de])) {
        return None;
    }
    Some(de)
}

fn phone_valid(region: Option<phonenumber::country::Id>, s: &str) -> bool {
    match phonenumber::parse(region, s) {
        Ok(n) => phonenumber::is_valid(&n),
        Err(_) => false,
    }
}

fn lens_nanp(lens: &[usize], plus: bool) -> bool {
    let _ = plus;
    matches!(lens, [1, 3, 3, 4] | [1, 10] | [11] | [1, 3, 7])
}

fn is_nanp_shape(lens: &[usize], inner: &[u8], any_paren: bool) -> bool {
    let same = inner.iter().all(|s| *s == inner[0]);
    match lens {
        [3, 3, 4] => same || (any_paren && inner[1] == b'-') || (any_paren && inner[1] == b' '),
        [1, 3, 3, 4] => inner[1..].iter().all(|s| *s == inner[1]) || any_paren,
        [3, 7] => any_paren,
        _ => false,
    }
}

fn is_date(lens: &[usize], s: &[u8]) -> bool {
    let nums: Vec<u32> = s
        .split(|c| !c.is_ascii_digit())
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.iter().fold(0u32, |a, &c| {
                a.saturating_mul(10).saturating_add((c - b'0') as u32)
            })
        })
        .collect();
    if nums.len() != 3 {
        return false;
    }
    let md = |m: u32, d: u32| (1..=12).contains(&m) && (1..=31).contains(&d);
    match lens {
        [4, 1..=2, 1..=2] => md(nums[1], nums[2]) && (1850..=2100).contains(&nums[0]),
        [1..=2, 1..=2, 4] => {
            (md(nums[0], nums[1]) || md(nums[1], nums[0])) && (1850..=2100).contains(&nums[2])
        }
        [1..=2, 1..=2, 2] => md(nums[0], nums[1]) || md(nums[1], nums[0]),
        _ => false,
    }
}

/// After a street line: optional unit already consumed; ", City, ST 12345" or "\nCity, ST 12345".
fn city_state_zip(b: &[u8], e: usize) -> Option<usize> {
    let mut p = e;
    match b.get(p) {
        Some(b',') => {
            p += 1;
            if b.get(p) == Some(&b' ') {
                p += 1;
            }
        }
        Some(b'\n') => p += 1,
        Some(b' ') => p += 1,
        _ => return None,
    }
    // City: 1-3 capitalized words.
    let mut words = 0;
    let mut q = p;
    loop {
        if !b.get(q).is_some_and(u8::is_ascii_uppercase) {
            break;
        }
        let we = alpha_word_end(b, q);
        words += 1;
        q = we;
        if words < 4 && b.get(q) == Some(&b' ') && b.get(q + 1).is_some_and(u8::is_ascii_uppercase)
        {
            // Stop before the state code if "City ST 12345" without a comma.
            let ne = alpha_word_end(b, q + 1);
            if ne - q - 1 == 2
                && lexicon::STATES
                    .iter()
                    .any(|s| s.as_bytes() == &b[q + 1..ne])
                && b.get(ne) == Some(&b' ')
            {
                break;
            }
            q += 1;
            continue;
        }
        break;
    }
    if words == 0 || words > 4 {
        return None;
    }
    let mut r = q;
    if b.get(r) == Some(&b',') {
        r += 1;
    }
    if b.get(r) != Some(&b' ') {
        return None;
    }
    r += 1;
    let se = alpha_word_end(b, r);
    let st = &b[r..se];
    let is_state = (st.len() == 2 && lexicon::STATES.iter().any(|s| s.as_bytes() == st))
        || lexicon::in_list(lexicon::STATE_NAMES, st);
    if !is_state {
        return None;
    }
    let mut end = se;
    if b.get(se) == Some(&b' ') {
        let ze = digits_end(b, se + 1);
        if ze - se - 1 == 5 {
            end = ze;
            if b.get(ze) == Some(&b'-') {
                let z4 = digits_end(b, ze + 1);
                if z4 - ze - 1 == 4 {
                    end = z4;
                }
            }
        }
    }
    if end < b.len() && is_word(b[end]) {
        return None;
    }
    Some(end)
}

/// Street suffix abbreviations ("St", "Ave", "Dr") as opposed to full words ("Road", "Way").
fn is_abbrev_suffix(w: &[u8]) -> bool {
    const FULL_SHORT: &[&str] = &[
        "road", "lane", "way", "walk", "loop", "path", "pike", "row", "run", "mews", "oval",
        "pass", "park", "view", "mall", "land", "glen", "cove", "port", "key", "isle", "hill",
        "dale", "ford", "fort", "bend", "camp", "cape", "club", "dam", "rue", "via", "spur",
        "well", "wall", "rest", "lake", "lock", "mill", "neck", "pine", "ramp", "vale", "close",
        "ville",
    ];
    w.len() <= 4 && !lexicon::in_list(FULL_SHORT, w)
}

/// North American Numbering Plan rules (area code and exchange start 2-9, no N11 area codes,
/// no x9x area codes): the same verdict the numbering-plan library gives for US/CA shapes,
/// without its per-call cost on the hot path.
fn nanp_valid(d: &[u8]) -> bool {
    let d = if d.len() == 11 && d[0] == b'1' {
        &d[1..]
    } else {
        d
    };
    if d.len() != 10 {
        return false;
    }
    let (a, x) = (&d[..3], &d[3..6]);
    let n11 = |p: &[u8]| p[1] == b'1' && p[2] == b'1';
    a[0] >= b'2' && a[1] != b'9' && !n11(a) && x[0] >= b'2' && !n11(x)
}

/// Country calling code → national significant number lengths, for the countries that carry
/// most traffic. `Some(valid)` when the code is listed; `None` defers to the numbering-plan
/// library (slow, so it only sees rare codes).
fn intl_plan(d: &[u8]) -> Option<bool> {
    const PLAN: &[(&str, u8, u8)] = &[
        ("1", 10, 10),
        ("7", 10, 10),
        ("20", 8, 10),
        ("27", 9, 9),
        ("30", 10, 10),
        ("31", 9, 9),
        ("32", 8, 9),
        ("33", 9, 9),
        ("34", 9, 9),
        ("36", 8, 9),
        ("39", 6, 11),
        ("40", 9, 9),
        ("41", 9, 9),
        ("43", 4, 13),
        ("44", 9, 10),
        ("45", 8, 8),
        ("46", 7, 10),
        ("47", 8, 8),
        ("48", 9, 9),
        ("49", 6, 13),
        ("51", 8, 9),
        ("52", 10, 10),
        ("54", 10, 11),
        ("55", 10, 11),
        ("56", 9, 9),
        ("57", 10, 10),
        ("60", 8, 10),
        ("61", 9, 9),
        ("62", 8, 12),
        ("63", 8, 10),
        ("64", 8, 10),
        ("65", 8, 8),
        ("66", 8, 9),
        ("81", 9, 10),
        ("82", 8, 10),
        ("84", 9, 10),
        ("86", 10, 11),
        ("90", 10, 10),
        ("91", 10, 10),
        ("92", 9, 10),
        ("234", 8, 10),
        ("254", 9, 9),
        ("351", 9, 9),
        ("353", 7, 9),
        ("358", 5, 12),
        ("380", 9, 9),
        ("420", 9, 9),
        ("852", 8, 8),
        ("886", 8, 9),
        ("966", 9, 9),
        ("971", 8, 9),
        ("972", 8, 9),
    ];
    for (cc, lo, hi) in PLAN {
        if d.starts_with(cc.as_bytes()) {
            let nsn = &d[cc.len()..];
            let n = nsn.len() as u8;
            let lead_ok = nsn.first().is_some_and(|&c| c != b'0' || *cc == "39");
            let nanp_ok = *cc != "1" || nanp_valid(nsn);
            return Some((*lo..=*hi).contains(&n) && lead_ok && nanp_ok);
        }
    }
    None
}

/// True when the word before `pos` (skipping spaces and `,.:;`) is in `list` (lowercase ASCII).
fn prev_word_in(b: &[u8], pos: usize, list: &[&str]) -> bool {
    let mut e = pos.min(b.len());
    while e > 0 && matches!(b[e - 1], b' ' | b',' | b'.' | b':' | b';' | b'\t') {
        e -= 1;
    }
    let mut s = e;
    while s > 0 && e - s < 12 && (b[s - 1].is_ascii_alphabetic() || b[s - 1] == b'\'') {
        s -= 1;
    }
    if s == e || (s > 0 && b[s - 1].is_ascii_alphanumeric()) {
        return false;
    }
    list.iter()
        .any(|w| w.as_bytes().eq_ignore_ascii_case(&b[s..e]))
}

#[cfg(test)]
mod prose_fast_path_tests {
    use super::*;
    use proptest::prelude::*;

    /// Lowercase prose mixed with fragments that do start entities or touch the rules the
    /// fast path relies on (digits, capitals, '_', '-', '.', ':', '/', '@', non-ASCII).
    fn text() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            4 => "[a-z]{1,12}",
            3 => Just(" ".to_string()),
            1 => "[a-z]{1,6}[._:/@-][a-z0-9]{1,8}",
            1 => prop_oneof![
                Just("jane.doe@example.com".to_string()),
                Just("4111 1111 1111 1111".to_string()),
                Just("sk_live_4eC39HqLyjWDarjtT1zdp7dc".to_string()),
                Just("https://example.com/a".to_string()),
                Just("fe80::1".to_string()),
                Just("536-90-4399".to_string()),
                Just("DE89 3704 0044 0532 0130 00".to_string()),
                Just("Élodie Martin".to_string()),
                Just("+1 (555) 123-4567".to_string()),
            ],
            1 => "[A-Za-z0-9 ,;()\\n\\t]{1,10}",
        ];
        proptest::collection::vec(piece, 0..60).prop_map(|p| p.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Skipping prose windows finds exactly what the word-by-word scan finds.
        #[test]
        fn prose_fast_path_changes_no_finding(text in text()) {
            static SCANNER: std::sync::OnceLock<Scanner> = std::sync::OnceLock::new();
            let scanner = SCANNER.get_or_init(Scanner::new);
            let all = u32::MAX;
            prop_assert_eq!(scanner.scan_with(&text, all, true), scanner.scan_with(&text, all, false));
        }
    }

    #[test]
    fn prose_windows_skip_to_their_last_space() {
        assert_eq!(prose_run(b"the quick brown fox jumps over a"), Some(31));
        assert_eq!(prose_run(b"abcdefghijklmnopqrstuvwxyzabcdef"), None);
        assert_eq!(prose_run(b"the quick brown fox jumps over 1"), None);
        assert_eq!(prose_run(b"the quick brown fox jumps_over a"), None);
    }
}
