//! Checks of request inputs that the extractors cannot express: page sizes, cursors, times,
//! file names and JSON numbers. Each refusal is a 400 `invalid_input` naming the input.

use serde_json::Value;

use crate::ApiError;

/// Largest page any listing returns.
pub const MAX_LIMIT: u32 = 1000;

/// Page size when the caller sends none.
pub const DEFAULT_LIMIT: u32 = 100;

/// Longest file name accepted on upload, in characters.
pub const MAX_FILE_NAME: usize = 255;

/// Largest magnitude a JSON number may have when it is not a 64-bit integer: beyond 2^53 a
/// float no longer holds every integer, so such a number would come back changed.
const MAX_EXACT_FLOAT: f64 = 9_007_199_254_740_992.0;

/// The page size: 1 to [`MAX_LIMIT`], default [`DEFAULT_LIMIT`].
pub fn limit(value: Option<u32>) -> Result<u32, ApiError> {
    match value {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::invalid(
            "limit",
            format!("{n} is out of range; must be 1 to {MAX_LIMIT}"),
        )),
    }
}

/// A listing cursor: a record id as the listing returns it (a lowercase hyphenated UUID).
/// Anything else could never have come from a listing, so it is refused rather than
/// answered with an empty page.
pub fn cursor(value: Option<&str>) -> Result<Option<&str>, ApiError> {
    let Some(c) = value else { return Ok(None) };
    match uuid::Uuid::parse_str(c) {
        Ok(u) if u.hyphenated().to_string() == c => Ok(Some(c)),
        _ => Err(ApiError::invalid(
            "cursor",
            "is not a cursor this listing returned (pass `next_cursor` of the previous page)",
        )),
    }
}

/// An RFC 3339 time. Times past the end of the representable range (year 9999) are clamped
/// to its end, so a far-future bound such as `9999-12-31T23:59:59Z` means "no bound".
pub fn time(name: &str, value: Option<&str>) -> Result<Option<jiff::Timestamp>, ApiError> {
    let Some(v) = value else { return Ok(None) };
    if let Ok(t) = v.parse::<jiff::Timestamp>() {
        return Ok(Some(t));
    }
    let refuse = || {
        ApiError::invalid(
            name,
            format!("{v:?} is not an RFC 3339 time such as 2026-01-01T00:00:00Z"),
        )
    };
    // Out of range, or not a time at all: tell them apart by the civil date and time.
    let pieces = jiff::fmt::temporal::Pieces::parse(v).map_err(|_| refuse())?;
    if pieces.offset().is_none() || pieces.time().is_none() {
        return Err(refuse());
    }
    match pieces.date().year() {
        y if y >= 9999 => Ok(Some(jiff::Timestamp::MAX)),
        y if y <= -9999 => Ok(Some(jiff::Timestamp::MIN)),
        _ => Err(refuse()),
    }
}

/// An audit log index or tree size: the log stores them as signed 64-bit integers, so a
/// value past `i64::MAX` names no entry and is refused rather than wrapped.
pub fn log_index(name: &str, value: u64) -> Result<u64, ApiError> {
    if value > i64::MAX as u64 {
        return Err(ApiError::invalid(
            name,
            format!("must be at most {}", i64::MAX),
        ));
    }
    Ok(value)
}

/// [`log_index`] of an optional value.
pub fn opt_log_index(name: &str, value: Option<u64>) -> Result<Option<u64>, ApiError> {
    value.map(|v| log_index(name, v)).transpose()
}

/// An upload's file name: at most [`MAX_FILE_NAME`] characters, no control characters.
pub fn file_name(value: Option<&str>) -> Result<(), ApiError> {
    let Some(name) = value else { return Ok(()) };
    if name.is_empty() || name.chars().count() > MAX_FILE_NAME {
        return Err(ApiError::invalid(
            "name",
            format!("must be 1 to {MAX_FILE_NAME} characters"),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            "name",
            "must not contain control characters (CR, LF, NUL, ...)",
        ));
    }
    Ok(())
}

/// Refuses JSON numbers that would not come back as sent: integers beyond the 64-bit range
/// and other numbers whose magnitude exceeds 2^53 (JSON parsing turned them into floats).
/// `path` names the field in the error, e.g. `content.items[3].n`.
pub fn exact_numbers(path: &str, value: &Value) -> Result<(), ApiError> {
    match value {
        Value::Number(n) if n.is_f64() => {
            let f = n.as_f64().unwrap_or(f64::INFINITY);
            if f.abs() > MAX_EXACT_FLOAT {
                return Err(ApiError::invalid(
                    path,
                    "number is too large to keep exactly (integers must fit 64 bits, other \
                     numbers 2^53); send it as a string",
                ));
            }
            Ok(())
        }
        Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, v)| exact_numbers(&format!("{path}[{i}]"), v)),
        Value::Object(map) => map
            .iter()
            .try_for_each(|(k, v)| exact_numbers(&field_path(path, k), v)),
        _ => Ok(()),
    }
}

/// `path.key`, with the key cut short: it is caller input.
fn field_path(path: &str, key: &str) -> String {
    let short: String = key.chars().take(32).collect();
    format!("{path}.{short}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits() {
        assert_eq!(limit(None).unwrap(), 100);
        assert_eq!(limit(Some(1000)).unwrap(), 1000);
        assert!(limit(Some(0)).is_err());
        assert!(limit(Some(1001)).is_err());
    }

    #[test]
    fn cursors_must_be_canonical_ids() {
        let id = uuid::Uuid::now_v7().to_string();
        assert_eq!(cursor(Some(&id)).unwrap(), Some(id.as_str()));
        assert!(cursor(Some("zzz")).is_err());
        assert!(cursor(Some(&id.to_uppercase())).is_err());
        assert!(cursor(Some(&id.replace('-', ""))).is_err());
    }

    #[test]
    fn far_future_times_clamp_and_garbage_is_refused() {
        assert_eq!(
            time("until", Some("9999-12-31T23:59:59Z")).unwrap(),
            Some(jiff::Timestamp::MAX)
        );
        assert!(time("until", Some("2026-01-01T00:00:00Z"))
            .unwrap()
            .is_some());
        assert!(time("until", Some("9999-12-31")).is_err());
        assert!(time("until", Some("tomorrow")).is_err());
        assert!(time("until", Some("2026-13-01T00:00:00Z")).is_err());
    }

    #[test]
    fn numbers() {
        let ok =
            serde_json::json!({"a": [1, -5, 18446744073709551615u64, 1.5, 9007199254740992.0]});
        assert!(exact_numbers("content", &ok).is_ok());
        let big: Value =
            serde_json::from_str(r#"{"a": {"b": [0, 123456789012345678901234]}}"#).unwrap();
        let e = format!("{:?}", exact_numbers("content", &big).unwrap_err());
        assert!(e.contains("content.a.b[1]"), "{e}");
    }

    #[test]
    fn file_names() {
        assert!(file_name(Some("report.pdf")).is_ok());
        assert!(file_name(Some("a\r\nb")).is_err());
        assert!(file_name(Some("a\0b")).is_err());
        assert!(file_name(Some(&"x".repeat(256))).is_err());
        assert!(file_name(Some("")).is_err());
    }
}
