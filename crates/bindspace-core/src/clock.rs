//! Injected time. Library code never reads the system clock directly: it takes a
//! [`Clock`], so retention and PITR tests can run under a simulated one.

use std::sync::atomic::{AtomicU64, Ordering};

/// A source of wall-clock time in microseconds since the Unix epoch.
pub trait Clock: Send + Sync {
    /// Now, in µs since the Unix epoch.
    fn now_us(&self) -> u64;
}

/// The operating system's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // the one place that may read the system clock
    fn now_us(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(0)
    }
}

/// A clock that moves only when told to; for tests and simulations.
///
/// ```
/// use bindspace_core::{Clock, ManualClock};
/// let c = ManualClock::new(1_000);
/// c.advance(500);
/// assert_eq!(c.now_us(), 1_500);
/// ```
#[derive(Debug, Default)]
pub struct ManualClock(AtomicU64);

impl ManualClock {
    /// A clock standing at `now_us`.
    pub fn new(now_us: u64) -> Self {
        ManualClock(AtomicU64::new(now_us))
    }
    /// Moves the clock forward.
    pub fn advance(&self, us: u64) {
        self.0.fetch_add(us, Ordering::SeqCst);
    }
    /// Sets the clock.
    pub fn set(&self, now_us: u64) {
        self.0.store(now_us, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_us(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// µs since the epoch as RFC 3339 in UTC, to the second (`2025-12-24T15:30:00Z`): how
/// every message and human output names a time.
///
/// ```
/// assert_eq!(bindspace_core::clock::rfc3339(1_766_590_200_000_000), "2025-12-24T15:30:00Z");
/// ```
pub fn rfc3339(us: u64) -> String {
    i64::try_from(us)
        .ok()
        .and_then(|us| jiff::Timestamp::from_microsecond(us).ok())
        .map_or_else(
            || format!("{us} µs since the epoch"),
            |t| t.round(jiff::Unit::Second).unwrap_or(t).to_string(),
        )
}

/// µs since the epoch as RFC 3339 in UTC to the µs, for a time that must not be
/// rounded (a restore target): `2025-12-24T15:30:00.25Z`.
pub fn rfc3339_exact(us: u64) -> String {
    i64::try_from(us)
        .ok()
        .and_then(|us| jiff::Timestamp::from_microsecond(us).ok())
        .map_or_else(|| format!("{us} µs since the epoch"), |t| t.to_string())
}
