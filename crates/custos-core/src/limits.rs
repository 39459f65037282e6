//! Failure limits: how many wrong TOTP codes a member may try, and how many failed attempts
//! one network source may make, before Custos stops evaluating them (`429 rate_limited`).
//!
//! The member's count lives in the store (every instance sees it); the per-source count is
//! kept by each instance in memory, since a source is only ever a hint (addresses are shared
//! and can change) and must cost nothing to check.

use std::collections::HashMap;
use std::sync::Mutex;

use jiff::{SignedDuration, Timestamp};

/// Wrong codes a member may try one after another without waiting.
pub const FREE_FAILURES: u32 = 5;
/// Wrong codes after which the member's factor is locked until an owner or admin clears it.
pub const LOCK_AFTER: u32 = 10;
/// The wait after the last free wrong code; it doubles with each further one.
const FIRST_WAIT: SignedDuration = SignedDuration::from_secs(30);
/// What `Retry-After` says while a member is locked (it ends only when cleared).
pub const LOCKED_RETRY_AFTER: u64 = 3600;

/// Whether a member's next TOTP code may be checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FactorGate {
    /// Yes.
    Open,
    /// Not before this time.
    WaitUntil(Timestamp),
    /// Not until an owner or admin clears the lockout.
    Locked,
}

/// The gate after `failures` wrong codes, the last at `last_failure_at`: free for the first
/// [`FREE_FAILURES`], then a wait that doubles from 30 s, then locked at [`LOCK_AFTER`].
pub fn factor_gate(failures: u32, last_failure_at: Option<Timestamp>) -> FactorGate {
    if failures >= LOCK_AFTER {
        return FactorGate::Locked;
    }
    match (failures.checked_sub(FREE_FAILURES), last_failure_at) {
        (Some(extra), Some(last)) => {
            let wait = FIRST_WAIT * 2i32.pow(extra);
            FactorGate::WaitUntil(last.saturating_add(wait).unwrap_or(last))
        }
        _ => FactorGate::Open,
    }
}

/// Failures one source may cause within [`SOURCE_WINDOW`] before it is refused (the default;
/// `serve --failures-per-source` sets another).
pub const SOURCE_FAILURES: u32 = 100;
/// The window of [`SOURCE_FAILURES`].
pub const SOURCE_WINDOW: SignedDuration = SignedDuration::from_secs(60);
/// Sources tracked at once; past it, sources whose window ended are forgotten first.
const MAX_SOURCES: usize = 100_000;

/// Counts failures per source in fixed windows. Hand-rolled (a map and a mutex): the
/// rate-limiting crates limit every request, while this counts only failures and must let a
/// source's successful calls through at any rate.
#[derive(Debug)]
pub struct SourceLimiter {
    windows: Mutex<HashMap<String, (Timestamp, u32)>>,
    limit: u32,
}

impl Default for SourceLimiter {
    fn default() -> Self {
        SourceLimiter::with_limit(SOURCE_FAILURES)
    }
}

impl SourceLimiter {
    /// A limiter refusing a source after `limit` failures within [`SOURCE_WINDOW`].
    pub fn with_limit(limit: u32) -> Self {
        SourceLimiter {
            windows: Mutex::default(),
            limit: limit.max(1),
        }
    }

    /// `Err(seconds until the window ends)` if `source` used up its failures at `now`.
    pub fn check(&self, source: &str, now: Timestamp) -> Result<(), u64> {
        let windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        match windows.get(source) {
            Some((start, count)) if *count >= self.limit => {
                let ends = start.saturating_add(SOURCE_WINDOW).unwrap_or(*start);
                if ends > now {
                    let left = now.duration_until(ends).as_secs().max(1);
                    Err(u64::try_from(left).unwrap_or(1))
                } else {
                    Ok(())
                }
            }
            _ => Ok(()),
        }
    }

    /// Counts one failure of `source` at `now`.
    pub fn fail(&self, source: &str, now: Timestamp) {
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        let expired =
            |start: &Timestamp| start.saturating_add(SOURCE_WINDOW).unwrap_or(*start) <= now;
        if windows.len() >= MAX_SOURCES && !windows.contains_key(source) {
            windows.retain(|_, (start, _)| !expired(start));
            if windows.len() >= MAX_SOURCES {
                // Still full of live windows: the oldest go, so memory stays bounded.
                let mut starts: Vec<Timestamp> = windows.values().map(|(s, _)| *s).collect();
                starts.sort();
                let cut = starts[starts.len() / 2];
                windows.retain(|_, (start, _)| *start > cut);
            }
        }
        let entry = windows.entry(source.to_string()).or_insert((now, 0));
        if expired(&entry.0) {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    #[test]
    fn five_free_codes_then_doubling_waits_then_lockout() {
        for f in 0..FREE_FAILURES {
            assert_eq!(factor_gate(f, Some(at(0))), FactorGate::Open);
        }
        assert_eq!(factor_gate(5, Some(at(0))), FactorGate::WaitUntil(at(30)));
        assert_eq!(factor_gate(6, Some(at(0))), FactorGate::WaitUntil(at(60)));
        assert_eq!(factor_gate(9, Some(at(0))), FactorGate::WaitUntil(at(480)));
        assert_eq!(factor_gate(LOCK_AFTER, Some(at(0))), FactorGate::Locked);
        assert_eq!(factor_gate(u32::MAX, None), FactorGate::Locked);
    }

    #[test]
    fn a_source_is_refused_after_its_failures_until_its_window_ends() {
        let limiter = SourceLimiter::default();
        for i in 0..SOURCE_FAILURES {
            let t = at(i64::from(i) * 50 / i64::from(SOURCE_FAILURES));
            assert!(limiter.check("10.0.0.1", t).is_ok());
            limiter.fail("10.0.0.1", t);
        }
        assert_eq!(limiter.check("10.0.0.1", at(50)), Err(10));
        assert!(
            limiter.check("10.0.0.2", at(50)).is_ok(),
            "other sources pass"
        );
        assert!(limiter.check("10.0.0.1", at(60)).is_ok(), "window over");
        limiter.fail("10.0.0.1", at(60));
        assert!(
            limiter.check("10.0.0.1", at(61)).is_ok(),
            "a new window starts"
        );
    }

    #[test]
    fn the_map_stays_bounded() {
        let limiter = SourceLimiter::default();
        for i in 0..(MAX_SOURCES + 10) {
            limiter.fail(&format!("s{i}"), at(i as i64));
        }
        assert!(limiter.windows.lock().unwrap().len() <= MAX_SOURCES);
    }
}
