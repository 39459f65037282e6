//! Time as a dependency, so tests can run years of policy in milliseconds.

use std::sync::Mutex;

use jiff::Timestamp;

/// A source of the current time.
pub trait Clock: Send + Sync + 'static {
    /// Now.
    fn now(&self) -> Timestamp;
}

/// The operating system's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that moves only when told to.
#[derive(Debug)]
pub struct ManualClock(Mutex<Timestamp>);

impl ManualClock {
    /// A clock stopped at `start`.
    pub fn new(start: Timestamp) -> Self {
        ManualClock(Mutex::new(start))
    }

    /// Sets the time.
    pub fn set(&self, t: Timestamp) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = t;
    }

    /// Moves the time forward by a calendar span (e.g. `jiff::Span::new().days(30)`).
    pub fn advance(&self, span: jiff::Span) {
        let mut now = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let zoned = now.to_zoned(jiff::tz::TimeZone::UTC);
        *now = zoned
            .checked_add(span)
            .expect("manual clock stays in range")
            .timestamp();
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}
