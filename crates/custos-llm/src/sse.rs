//! Server-sent events: an incremental parser (WHATWG rules) and the encoder for what we send on.

use bytes::Bytes;

/// One server-sent event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field (the event type), if the event had one.
    pub event: Option<String>,
    /// The `data:` lines joined by `\n`.
    pub data: String,
    /// The `id:` field, if the event had one.
    pub id: Option<String>,
    /// The `retry:` field (milliseconds), if the event had a valid one.
    pub retry: Option<u64>,
}

impl SseEvent {
    /// An event with data only.
    pub fn data(data: impl Into<String>) -> SseEvent {
        SseEvent {
            event: None,
            data: data.into(),
            id: None,
            retry: None,
        }
    }

    /// An event with a type and data.
    pub fn named(event: impl Into<String>, data: impl Into<String>) -> SseEvent {
        SseEvent {
            event: Some(event.into()),
            data: data.into(),
            id: None,
            retry: None,
        }
    }

    /// The event on the wire: fields, one `data:` line per data line, then a blank line.
    pub fn to_bytes(&self) -> Bytes {
        let mut out = String::with_capacity(self.data.len() + 32);
        if let Some(e) = &self.event {
            out.push_str("event: ");
            out.push_str(e);
            out.push('\n');
        }
        if let Some(id) = &self.id {
            out.push_str("id: ");
            out.push_str(id);
            out.push('\n');
        }
        if let Some(r) = self.retry {
            out.push_str("retry: ");
            out.push_str(&r.to_string());
            out.push('\n');
        }
        // A line break of any kind in data would end the line early: each part gets its own line.
        let mut rest = self.data.as_str();
        loop {
            let cut = rest.find(['\r', '\n']);
            out.push_str("data: ");
            out.push_str(&rest[..cut.unwrap_or(rest.len())]);
            out.push('\n');
            let Some(c) = cut else { break };
            let skip = if rest[c..].starts_with("\r\n") { 2 } else { 1 };
            rest = &rest[c + skip..];
        }
        out.push('\n');
        Bytes::from(out)
    }
}

/// Why a stream could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SseError {
    /// One event (or one line) grew past the parser's bound.
    #[error("server-sent event larger than {0} bytes")]
    TooLarge(usize),
    /// A line is not UTF-8.
    #[error("server-sent event stream is not UTF-8")]
    Utf8,
}

/// Incremental SSE parser (WHATWG rules: lines end in \n, \r\n or \r; `data:` lines joined by \n;
/// one optional space after the colon stripped; comment lines (":...") dropped; an event ends at a
/// blank line; events with no data line are dropped unless they have an `event:` field).
#[derive(Debug)]
pub struct SseParser {
    max: usize,
    line: Vec<u8>,
    /// The last byte seen was a CR: a LF right after it belongs to the same line break.
    after_cr: bool,
    first_line: bool,
    event: Option<String>,
    data: String,
    has_data: bool,
    id: Option<String>,
    retry: Option<u64>,
    /// Bytes of the current event's lines so far (the bound applies to them).
    size: usize,
}

impl SseParser {
    /// A parser refusing any event whose lines add up to more than `max_event_bytes`.
    pub fn new(max_event_bytes: usize) -> SseParser {
        SseParser {
            max: max_event_bytes,
            line: Vec::new(),
            after_cr: false,
            first_line: true,
            event: None,
            data: String::new(),
            has_data: false,
            id: None,
            retry: None,
            size: 0,
        }
    }

    /// Feeds raw bytes (may split lines and UTF-8 sequences anywhere).
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<SseEvent>, SseError> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if self.after_cr {
                self.after_cr = false;
                if bytes[i] == b'\n' {
                    i += 1;
                    continue;
                }
            }
            let end = bytes[i..].iter().position(|&b| b == b'\n' || b == b'\r');
            let stop = end.map_or(bytes.len(), |e| i + e);
            if self.size + self.line.len() + (stop - i) > self.max {
                return Err(SseError::TooLarge(self.max));
            }
            self.line.extend_from_slice(&bytes[i..stop]);
            let Some(_) = end else { break };
            self.after_cr = bytes[stop] == b'\r';
            self.end_line(&mut out)?;
            i = stop + 1;
        }
        Ok(out)
    }

    /// At end of stream: a last line and event without their terminators.
    pub fn finish(&mut self) -> Result<Vec<SseEvent>, SseError> {
        let mut out = Vec::new();
        if !self.line.is_empty() {
            self.end_line(&mut out)?;
        }
        self.dispatch(&mut out);
        Ok(out)
    }

    fn end_line(&mut self, out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        let raw = std::mem::take(&mut self.line);
        let mut line = std::str::from_utf8(&raw).map_err(|_| SseError::Utf8)?;
        if self.first_line {
            self.first_line = false;
            line = line.strip_prefix('\u{FEFF}').unwrap_or(line);
        }
        if line.is_empty() {
            self.dispatch(out);
        } else {
            self.size += line.len();
            self.field(line);
        }
        // Keep the buffer's capacity for the next line.
        self.line = raw;
        self.line.clear();
        Ok(())
    }

    fn field(&mut self, line: &str) {
        if line.starts_with(':') {
            return;
        }
        let (name, value) = match line.split_once(':') {
            Some((n, v)) => (n, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match name {
            "event" => self.event = Some(value.to_string()),
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            // WHATWG: an id with NUL is ignored.
            "id" if !value.contains('\0') => self.id = Some(value.to_string()),
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                if let Ok(r) = value.parse() {
                    self.retry = Some(r);
                }
            }
            _ => {}
        }
    }

    fn dispatch(&mut self, out: &mut Vec<SseEvent>) {
        let event = self.event.take();
        let id = self.id.take();
        let retry = self.retry.take();
        let data = std::mem::take(&mut self.data);
        let has_data = std::mem::replace(&mut self.has_data, false);
        self.size = 0;
        if has_data || event.is_some() {
            out.push(SseEvent {
                event,
                data,
                id,
                retry,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut p = SseParser::new(1 << 20);
        let mut out = Vec::new();
        for c in chunks {
            out.extend(p.push(c).unwrap());
        }
        out.extend(p.finish().unwrap());
        out
    }

    #[test]
    fn line_endings_lf_crlf_cr() {
        let want = vec![
            SseEvent::named("a", "1"),
            SseEvent::data("2\n3"),
            SseEvent::named("c", ""),
        ];
        for sep in ["\n", "\r\n", "\r"] {
            let text = format!(
                "event: a{s}data: 1{s}{s}data:2{s}data: 3{s}{s}event: c{s}{s}",
                s = sep
            );
            assert_eq!(parse_all(&[text.as_bytes()]), want, "{sep:?}");
        }
    }

    #[test]
    fn cr_then_lf_in_the_next_chunk_is_one_break() {
        assert_eq!(
            parse_all(&[b"data: x\r", b"\ndata: y\r", b"\n\r", b"\n"]),
            vec![SseEvent::data("x\ny")]
        );
    }

    #[test]
    fn comments_fields_and_spaces() {
        let got = parse_all(&[
            b": keep-alive\n\ndata\nid: 7\nretry: 250\nretry: x\nfoo: bar\ndata:  two spaces\n\n",
        ]);
        assert_eq!(
            got,
            vec![SseEvent {
                event: None,
                data: "\n two spaces".into(),
                id: Some("7".into()),
                retry: Some(250),
            }]
        );
    }

    #[test]
    fn events_without_data_or_type_are_dropped() {
        assert_eq!(parse_all(&[b"id: 1\n\nretry: 5\n\n\n\n"]), vec![]);
    }

    #[test]
    fn split_inside_utf8_and_last_event_without_blank_line() {
        let text = "data: héllo ✓\n\ndata: end".as_bytes();
        let mut chunks: Vec<&[u8]> = Vec::new();
        for b in 0..text.len() {
            chunks.push(&text[b..b + 1]);
        }
        assert_eq!(
            parse_all(&chunks),
            vec![SseEvent::data("héllo ✓"), SseEvent::data("end")]
        );
    }

    #[test]
    fn bom_is_stripped_once() {
        assert_eq!(
            parse_all(&[b"\xEF\xBB", b"\xBFdata: a\n\n"]),
            vec![SseEvent::data("a")]
        );
    }

    #[test]
    fn invalid_utf8_is_an_error() {
        let mut p = SseParser::new(100);
        assert_eq!(p.push(b"data: \xff\n"), Err(SseError::Utf8));
    }

    #[test]
    fn too_large_event_and_line() {
        let mut p = SseParser::new(16);
        assert_eq!(p.push(b"data: 0123456789\n").unwrap(), vec![]);
        assert_eq!(p.push(b"data: x\n"), Err(SseError::TooLarge(16)));
        let mut p = SseParser::new(16);
        assert_eq!(
            p.push(b"data: 0123456789abcdef"),
            Err(SseError::TooLarge(16))
        );
        // The bound is per event: many small events pass.
        let mut p = SseParser::new(16);
        for _ in 0..100 {
            assert_eq!(p.push(b"data: 0123456789\n\n").unwrap().len(), 1);
        }
    }

    #[test]
    fn to_bytes_round_trips() {
        let events = vec![
            SseEvent {
                event: Some("message_start".into()),
                data: "{\"a\":1}\nsecond\n".into(),
                id: Some("9".into()),
                retry: Some(3),
            },
            SseEvent::data(""),
            SseEvent::data(" leading space"),
        ];
        let mut wire = Vec::new();
        for e in &events {
            wire.extend_from_slice(&e.to_bytes());
        }
        assert_eq!(parse_all(&[&wire]), events);
        assert_eq!(
            &SseEvent::data("x").to_bytes()[..],
            b"data: x\n\n".as_slice()
        );
    }
}
