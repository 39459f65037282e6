//! Calendar-aware durations as written in `custos.toml` (`30d`, `12mo`, `7y`, ...).

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use jiff::tz::TimeZone;
use jiff::{Span, Timestamp};

/// The instant every policy validation measures durations from: 2001-01-01T00:00:00Z.
///
/// Months and years have no fixed length, so "is 90d shorter than 3mo?" only has an answer
/// relative to a start date. Validation uses this one fixed instant so that the same file always
/// gets the same verdict. It starts a non-leap year and a 31-day month, so `12mo` and `1y` equal
/// `365d` here (as they do three years in four) and `1mo` equals `31d` (its longest case).
/// Runtime due times never use it: they are computed from each record's own creation time.
pub const VALIDATION_REFERENCE: Timestamp = Timestamp::constant(978_307_200, 0);

/// The unit of a [`Duration`]; a duration is always a whole count of exactly one unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DurationUnit {
    /// `m`: minutes (exact).
    Minutes,
    /// `h`: hours (exact).
    Hours,
    /// `d`: calendar days (exactly 24 hours, since Custos does date arithmetic in UTC).
    Days,
    /// `w`: weeks of seven days.
    Weeks,
    /// `mo`: calendar months; Jan 31 + 1mo is Feb 28 (or 29).
    Months,
    /// `y`: calendar years; Feb 29 + 1y is Feb 28.
    Years,
}

impl DurationUnit {
    /// Every unit, shortest first.
    pub const ALL: [DurationUnit; 6] = [
        DurationUnit::Minutes,
        DurationUnit::Hours,
        DurationUnit::Days,
        DurationUnit::Weeks,
        DurationUnit::Months,
        DurationUnit::Years,
    ];

    /// The suffix used in policy files (`m`, `h`, `d`, `w`, `mo`, `y`).
    pub fn suffix(self) -> &'static str {
        match self {
            DurationUnit::Minutes => "m",
            DurationUnit::Hours => "h",
            DurationUnit::Days => "d",
            DurationUnit::Weeks => "w",
            DurationUnit::Months => "mo",
            DurationUnit::Years => "y",
        }
    }

    /// The English name, singular or plural by `count`.
    pub fn name(self, count: u32) -> &'static str {
        let one = count == 1;
        match self {
            DurationUnit::Minutes if one => "minute",
            DurationUnit::Minutes => "minutes",
            DurationUnit::Hours if one => "hour",
            DurationUnit::Hours => "hours",
            DurationUnit::Days if one => "day",
            DurationUnit::Days => "days",
            DurationUnit::Weeks if one => "week",
            DurationUnit::Weeks => "weeks",
            DurationUnit::Months if one => "month",
            DurationUnit::Months => "months",
            DurationUnit::Years if one => "year",
            DurationUnit::Years => "years",
        }
    }

    /// The largest count accepted for this unit.
    ///
    /// These are jiff's own span limits (about 20,000 years), so `to_span` can never fail.
    pub fn max_count(self) -> u32 {
        match self {
            DurationUnit::Minutes => u32::MAX,
            DurationUnit::Hours => 175_307_616,
            DurationUnit::Days => 7_304_484,
            DurationUnit::Weeks => 1_043_497,
            DurationUnit::Months => 239_976,
            DurationUnit::Years => 19_998,
        }
    }

    fn from_suffix(s: &str) -> Option<DurationUnit> {
        DurationUnit::ALL.into_iter().find(|u| u.suffix() == s)
    }
}

/// Calendar-aware duration: a positive count of one unit (m, h, d, w, mo, y); displays as `30d`.
///
/// There is deliberately no `Ord`: whether `30d` is shorter than `1mo` depends on the month, so
/// comparisons go through [`Duration::cmp_at`] with an explicit start time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Duration {
    count: u32,
    unit: DurationUnit,
}

impl Duration {
    /// A duration of `count` units; zero and counts beyond the unit's limit are rejected.
    pub fn new(count: u32, unit: DurationUnit) -> Result<Duration, DurationError> {
        if count == 0 {
            return Err(DurationError::Zero);
        }
        if count > unit.max_count() {
            return Err(DurationError::TooLarge {
                max: Duration {
                    count: unit.max_count(),
                    unit,
                },
            });
        }
        Ok(Duration { count, unit })
    }

    /// Its length in seconds when every unit has a fixed length (minutes to weeks); `None`
    /// for months and years, whose length depends on the calendar.
    pub fn exact_seconds(&self) -> Option<i64> {
        let unit = match self.unit {
            DurationUnit::Minutes => 60,
            DurationUnit::Hours => 3_600,
            DurationUnit::Days => 86_400,
            DurationUnit::Weeks => 604_800,
            DurationUnit::Months | DurationUnit::Years => return None,
        };
        Some(i64::from(self.count) * unit)
    }

    /// Builds a duration from known-good parts (crate-internal defaults only).
    pub(crate) const fn from_parts(count: u32, unit: DurationUnit) -> Duration {
        Duration { count, unit }
    }

    /// How many units.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// Which unit.
    pub fn unit(&self) -> DurationUnit {
        self.unit
    }

    /// The same length as a jiff span (single unit, so calendar rules apply when added).
    pub fn to_span(&self) -> Span {
        let n = i64::from(self.count);
        // Counts are capped at jiff's limits in `new`/`from_str`, so these never fail; the
        // fallback only exists to keep this function panic-free.
        let span = match self.unit {
            DurationUnit::Minutes => Span::new().try_minutes(n),
            DurationUnit::Hours => Span::new().try_hours(n),
            DurationUnit::Days => Span::new().try_days(n),
            DurationUnit::Weeks => Span::new().try_weeks(n),
            DurationUnit::Months => Span::new().try_months(n),
            DurationUnit::Years => Span::new().try_years(n),
        };
        span.unwrap_or_default()
    }

    /// `t` plus this duration, using calendar rules in UTC; saturates at [`Timestamp::MAX`].
    pub fn add_to(&self, t: Timestamp) -> Timestamp {
        // Zoned arithmetic in UTC: days are 24h and months/years clamp to the month's end
        // (Jan 31 + 1mo = Feb 28/29), which is what people mean by "one month later".
        t.to_zoned(TimeZone::UTC)
            .checked_add(self.to_span())
            .map(|z| z.timestamp())
            .unwrap_or(Timestamp::MAX)
    }

    /// Compares the two durations by where they land when both start at `at`.
    pub fn cmp_at(&self, other: &Duration, at: Timestamp) -> Ordering {
        self.add_to(at).cmp(&other.add_to(at))
    }

    /// Compares at [`VALIDATION_REFERENCE`], the fixed instant policy validation uses.
    pub fn cmp_for_validation(&self, other: &Duration) -> Ordering {
        self.cmp_at(other, VALIDATION_REFERENCE)
    }

    /// Plain English, e.g. `30 days`, `1 hour`, `12 months` (for disclosures and messages).
    pub fn describe(&self) -> String {
        format!("{} {}", self.count, self.unit.name(self.count))
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.count, self.unit.suffix())
    }
}

impl FromStr for Duration {
    type Err = DurationError;

    fn from_str(s: &str) -> Result<Duration, DurationError> {
        if s.is_empty() {
            return Err(DurationError::Empty);
        }
        if s.trim() != s {
            return Err(DurationError::Whitespace);
        }
        if let Some(rest) = s.strip_prefix('-') {
            // Only call it "negative" when the rest looks like a duration; "-x" is just bad syntax.
            if rest.starts_with(|c: char| c.is_ascii_digit()) {
                return Err(DurationError::Negative);
            }
        }
        let digits_end = s
            .char_indices()
            .find(|(_, c)| !c.is_ascii_digit())
            .map_or(s.len(), |(i, _)| i);
        let (digits, suffix) = s.split_at(digits_end);
        if digits.is_empty() {
            return Err(DurationError::MissingNumber);
        }
        if suffix.is_empty() {
            return Err(DurationError::MissingUnit);
        }
        if suffix.starts_with(['.', ',']) {
            return Err(DurationError::NotWhole);
        }
        let unit = match DurationUnit::from_suffix(suffix) {
            Some(unit) => unit,
            // "30 d" is right apart from the space; say so rather than "unknown unit".
            None if DurationUnit::from_suffix(suffix.trim()).is_some() => {
                return Err(DurationError::Whitespace)
            }
            None => return Err(DurationError::UnknownUnit(suffix.trim().to_string())),
        };
        // Anything that does not fit in u32 is certainly over the unit's limit.
        let count = digits.parse::<u32>().unwrap_or(u32::MAX);
        if count == 0 && digits.bytes().all(|b| b == b'0') {
            return Err(DurationError::Zero);
        }
        if digits.len() > 10 || count > unit.max_count() {
            return Err(DurationError::TooLarge {
                max: Duration {
                    count: unit.max_count(),
                    unit,
                },
            });
        }
        Duration::new(count, unit)
    }
}

impl serde::Serialize for Duration {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Duration {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Duration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as \"30d\", \"12mo\" or \"1h\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Duration, E> {
                v.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

/// Why a string is not a valid [`Duration`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DurationError {
    /// The string was empty.
    #[error("empty duration")]
    Empty,
    /// Whitespace anywhere (`" 30d"`, `"30 d"`).
    #[error("unexpected whitespace")]
    Whitespace,
    /// A leading minus sign.
    #[error("durations cannot be negative")]
    Negative,
    /// A count of zero.
    #[error("duration must be greater than zero")]
    Zero,
    /// No leading count.
    #[error("missing the number")]
    MissingNumber,
    /// A count with no unit.
    #[error("missing the unit")]
    MissingUnit,
    /// A fractional count such as `1.5d`.
    #[error("the number must be a whole number")]
    NotWhole,
    /// A unit suffix Custos does not know.
    #[error("unknown unit `{0}`")]
    UnknownUnit(String),
    /// Beyond what calendar arithmetic supports.
    #[error("too large (at most {max})")]
    TooLarge {
        /// The largest duration in the same unit.
        max: Duration,
    },
}

impl DurationError {
    /// A one-line suggestion for fixing the duration.
    pub fn hint(&self) -> String {
        let syntax =
            "write a whole number followed by one unit: m (minutes), h (hours), d (days), \
                      w (weeks), mo (months) or y (years), e.g. \"30d\", \"12mo\", \"7y\"";
        match self {
            DurationError::Zero => {
                "every window and retention must be positive; to keep no content at all, use \
                 `store_content = false` on the category"
                    .to_string()
            }
            DurationError::UnknownUnit(u) => {
                let lower = u.trim().to_ascii_lowercase();
                let guess = match lower.as_str() {
                    "min" | "mins" | "minute" | "minutes" => Some("m"),
                    "hr" | "hrs" | "hour" | "hours" => Some("h"),
                    "day" | "days" => Some("d"),
                    "wk" | "wks" | "week" | "weeks" => Some("w"),
                    "mon" | "mos" | "month" | "months" => Some("mo"),
                    "yr" | "yrs" | "year" | "years" => Some("y"),
                    "s" | "sec" | "secs" | "second" | "seconds" => None,
                    _ => DurationUnit::from_suffix(&lower).map(|u| u.suffix()),
                };
                match guess {
                    Some(g) => format!("use `{g}` (lowercase, no space before it); {syntax}"),
                    None => syntax.to_string(),
                }
            }
            DurationError::TooLarge { .. } => {
                "use a larger unit or a shorter period; no policy period needs to exceed \
                 twenty thousand years"
                    .to_string()
            }
            _ => syntax.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Duration {
        s.parse().unwrap()
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn parses_every_unit() {
        assert_eq!(d("15m"), Duration::new(15, DurationUnit::Minutes).unwrap());
        assert_eq!(d("1h").unit(), DurationUnit::Hours);
        assert_eq!(d("30d").count(), 30);
        assert_eq!(d("12w").unit(), DurationUnit::Weeks);
        assert_eq!(d("12mo").unit(), DurationUnit::Months);
        assert_eq!(d("7y").unit(), DurationUnit::Years);
    }

    #[test]
    fn rejects_bad_syntax() {
        assert_eq!("".parse::<Duration>(), Err(DurationError::Empty));
        assert_eq!("0d".parse::<Duration>(), Err(DurationError::Zero));
        assert_eq!("-3d".parse::<Duration>(), Err(DurationError::Negative));
        assert_eq!("d".parse::<Duration>(), Err(DurationError::MissingNumber));
        assert_eq!("30".parse::<Duration>(), Err(DurationError::MissingUnit));
        assert_eq!("1.5d".parse::<Duration>(), Err(DurationError::NotWhole));
        assert_eq!(" 3d".parse::<Duration>(), Err(DurationError::Whitespace));
        assert_eq!(
            "30 days".parse::<Duration>(),
            Err(DurationError::UnknownUnit("days".into()))
        );
        assert_eq!(
            "3D".parse::<Duration>(),
            Err(DurationError::UnknownUnit("D".into()))
        );
        assert!(matches!(
            "20000y".parse::<Duration>(),
            Err(DurationError::TooLarge { .. })
        ));
        assert!(matches!(
            "99999999999999999999d".parse::<Duration>(),
            Err(DurationError::TooLarge { .. })
        ));
    }

    #[test]
    fn month_addition_follows_the_calendar() {
        assert_eq!(
            d("1mo").add_to(ts("2025-01-31T10:00:00Z")),
            ts("2025-02-28T10:00:00Z")
        );
        assert_eq!(
            d("1mo").add_to(ts("2024-01-31T10:00:00Z")),
            ts("2024-02-29T10:00:00Z")
        );
        assert_eq!(
            d("1y").add_to(ts("2024-02-29T00:00:00Z")),
            ts("2025-02-28T00:00:00Z")
        );
        assert_eq!(
            d("30d").add_to(ts("2025-01-01T00:00:00Z")),
            ts("2025-01-31T00:00:00Z")
        );
        assert_eq!(
            d("90m").add_to(ts("2025-01-01T00:00:00Z")),
            ts("2025-01-01T01:30:00Z")
        );
    }

    #[test]
    fn add_saturates() {
        assert_eq!(d("19998y").add_to(Timestamp::MAX), Timestamp::MAX);
        assert_eq!(d("1m").add_to(Timestamp::MAX), Timestamp::MAX);
    }

    #[test]
    fn comparison_depends_on_the_start() {
        // February is shorter than 30 days, January is not.
        let feb = ts("2025-02-01T00:00:00Z");
        let jan = ts("2025-01-01T00:00:00Z");
        assert_eq!(d("30d").cmp_at(&d("1mo"), feb), Ordering::Greater);
        assert_eq!(d("30d").cmp_at(&d("1mo"), jan), Ordering::Less);
        // At the validation reference a year is 365 days, as in three years out of four.
        assert_eq!(d("12mo").cmp_for_validation(&d("365d")), Ordering::Equal);
        assert_eq!(d("1y").cmp_for_validation(&d("12mo")), Ordering::Equal);
        assert_eq!(d("1y").cmp_for_validation(&d("52w")), Ordering::Greater);
    }

    #[test]
    fn describes_in_english() {
        assert_eq!(d("1h").describe(), "1 hour");
        assert_eq!(d("12mo").describe(), "12 months");
        assert_eq!(d("7y").to_string(), "7y");
    }
}
