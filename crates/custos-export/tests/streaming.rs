//! Every format writes while records arrive (nothing waits for `finish`), and a failing output
//! is an error, not a panic, that says nothing about the data.

mod support;

use std::io::Write;

use custos_export::{writer, ExportError, Format};
use serde_json::json;
use support::{category, header, record, SharedBuf};

/// Text that compresses poorly. Deflate (the CSV zip, PDF pages) holds back output up to its
/// fixed-size buffers (tens of KiB compressed), so repetitive rows would show no growth for
/// thousands of records even though nothing accumulates.
fn noisy(i: u64) -> String {
    let parts: Vec<String> = (1..6u64)
        .map(|k| format!("{:x}", (i * k).wrapping_mul(0x9E37_79B9_7F4A_7C15)))
        .collect();
    format!("note {i}: {}", parts.join(" "))
}

#[test]
fn output_grows_before_finish() {
    for format in Format::ALL {
        let h = header(vec![category("notes", 10_000)]);
        let out = SharedBuf::default();
        let mut w = writer(format, out.clone(), &h).unwrap();
        let mut sizes = Vec::new();
        for i in 0..10_000 {
            w.record(&record(&format!("r{i}"), "notes", json!(noisy(i))))
                .unwrap();
            if i % 2_000 == 1_999 {
                sizes.push(out.bytes().len());
            }
        }
        assert!(
            sizes.windows(2).all(|w| w[0] < w[1]) && sizes[0] > 0,
            "{format}: output did not grow while writing: {sizes:?}"
        );
        w.finish().unwrap();
    }
}

/// An output that accepts `budget` bytes, then fails like a closed connection.
struct Failing {
    budget: usize,
}

impl Write for Failing {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.budget == 0 {
            return Err(std::io::ErrorKind::BrokenPipe.into());
        }
        let n = buf.len().min(self.budget);
        self.budget -= n;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_broken_output_is_an_error_without_data() {
    for format in Format::ALL {
        let h = header(vec![category("notes", 2_000)]);
        let mut w = writer(format, Failing { budget: 20_000 }, &h).unwrap();
        let secret = "SECRET-CONTENT";
        let err = (0..2_000)
            .map(|i| {
                w.record(&record(
                    &format!("r{i}"),
                    "notes",
                    json!(format!("{secret} {}", noisy(i))),
                ))
            })
            .find_map(Result::err)
            .or_else(|| w.finish().err())
            .unwrap_or_else(|| panic!("{format}: no error from a broken output"));
        let mut chain = format!("{err}");
        let mut source = std::error::Error::source(&err);
        while let Some(s) = source {
            chain.push_str(&format!(": {s}"));
            source = s.source();
        }
        assert!(!chain.contains(secret), "{chain}");
        assert!(
            matches!(
                err,
                ExportError::Io(_) | ExportError::Csv(_) | ExportError::Zip(_)
            ),
            "{format}: {err:?}"
        );
        assert!(
            chain.to_lowercase().contains("broken pipe"),
            "{format}: cause lost: {chain}"
        );
    }
}

#[test]
fn an_abandoned_export_does_not_pass_for_a_complete_one() {
    let h = header(vec![category("notes", 3)]);
    for format in [Format::Json, Format::Csv] {
        let out = SharedBuf::default();
        let mut w = writer(format, out.clone(), &h).unwrap();
        for i in 0..3 {
            w.record(&record(&format!("r{i}"), "notes", json!(noisy(i))))
                .unwrap();
        }
        drop(w);
        let bytes = out.bytes();
        match format {
            Format::Json => assert!(serde_json::from_slice::<serde_json::Value>(&bytes).is_err()),
            _ => assert!(zip::ZipArchive::new(std::io::Cursor::new(bytes)).is_err()),
        }
    }
}
