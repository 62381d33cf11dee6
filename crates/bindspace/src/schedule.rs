//! When the background jobs run: a pure function of the injected clock's time and
//! what happened so far. The job threads ask [`Every::due`] / [`BackupSchedule::due`]
//! at the clock's `now`, run what is due, record the outcome, and otherwise wait on
//! their channel until the next due time or a wake-up ([`crate::Engine::tick`]), so a
//! test with a manual clock drives the schedule exactly.

use std::time::Duration;

use bindspace_catalog::BackupKind;
use bindspace_core::ErrorKind;

/// Retry delay after `fails` failures in a row: 100 ms doubling, at most `every_us`
/// (and at least 100 ms).
pub(crate) fn backoff_us(fails: u32, every_us: u64) -> u64 {
    (100_000u64.saturating_mul(1u64 << fails.min(10))).min(every_us.max(100_000))
}

/// A job that runs every `every_us`, retried with backoff after a failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Every {
    every_us: u64,
    next_us: u64,
    fails: u32,
}

impl Every {
    /// First due one interval after `now_us`.
    pub fn new(every_us: u64, now_us: u64) -> Every {
        Every {
            every_us,
            next_us: now_us.saturating_add(every_us),
            fails: 0,
        }
    }

    /// First due at `first_us`, then every `every_us`.
    pub fn starting(every_us: u64, first_us: u64) -> Every {
        Every {
            every_us,
            next_us: first_us,
            fails: 0,
        }
    }

    /// Keeps the next due time within one interval (or backoff) of `now_us`: after the
    /// clock stepped back (an NTP step, a restored VM) the job is due again an
    /// interval from now, not after the clock has caught up again.
    pub fn rebase(&mut self, now_us: u64) {
        let furthest = now_us.saturating_add(self.every_us.max(100_000));
        self.next_us = self.next_us.min(furthest);
    }

    /// Whether it is due at `now_us`.
    pub fn due(&self, now_us: u64) -> bool {
        now_us >= self.next_us
    }

    /// When it is next due.
    pub fn next_us(&self) -> u64 {
        self.next_us
    }

    /// It ran at `now_us` and succeeded: next due an interval later.
    pub fn succeeded(&mut self, now_us: u64) {
        self.fails = 0;
        self.next_us = now_us.saturating_add(self.every_us);
    }

    /// It ran at `now_us` and failed: next due after the backoff.
    pub fn failed(&mut self, now_us: u64) {
        self.fails = self.fails.saturating_add(1);
        self.next_us = now_us.saturating_add(backoff_us(self.fails, self.every_us));
    }
}

/// The backup job's schedule: a full every `full_us`, an incremental every `delta_us`
/// in between. After a failure the backup is retried with backoff; a failure a retry
/// cannot cure (anything but [`ErrorKind::is_retryable`]: a damaged delta in the
/// chain, a missing artifact) makes the next one a full.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BackupSchedule {
    delta: Every,
    full: Every,
    full_next: bool,
}

impl BackupSchedule {
    /// Starting at `now_us`.
    pub fn new(delta_us: u64, full_us: u64, now_us: u64) -> BackupSchedule {
        BackupSchedule {
            delta: Every::new(delta_us, now_us),
            full: Every::new(full_us, now_us),
            full_next: false,
        }
    }

    /// See [`Every::rebase`].
    pub fn rebase(&mut self, now_us: u64) {
        self.delta.rebase(now_us);
        self.full.rebase(now_us);
    }

    /// The backup due at `now_us`, if any.
    pub fn due(&self, now_us: u64) -> Option<BackupKind> {
        if self.full.due(now_us) || (self.full_next && self.delta.due(now_us)) {
            Some(BackupKind::Full)
        } else if self.delta.due(now_us) {
            Some(BackupKind::Incremental)
        } else {
            None
        }
    }

    /// When the next backup is due.
    pub fn next_us(&self) -> u64 {
        self.delta.next_us().min(self.full.next_us())
    }

    /// Records a backup asked for as `asked`, started at `now_us` and finished at
    /// `ended_us`: `Ok(written)` with the kind actually written (a full when the chain
    /// could not be extended; `None`: nothing had changed), or the error's kind. The
    /// next attempt is an interval after a success started, and a backoff after a
    /// failure ended (a slow failure must not make the retry due at once).
    pub fn record(
        &mut self,
        asked: BackupKind,
        outcome: Result<Option<BackupKind>, ErrorKind>,
        now_us: u64,
        ended_us: u64,
    ) {
        match outcome {
            Ok(written) => {
                self.delta.succeeded(now_us);
                if asked == BackupKind::Full || written == Some(BackupKind::Full) {
                    self.full.succeeded(now_us);
                    self.full_next = false;
                }
            }
            Err(kind) => {
                // A failed full backs off like any other attempt (it must not be
                // retried at once, over and over).
                if asked == BackupKind::Full && self.full.due(now_us) {
                    self.full.failed(ended_us);
                }
                self.delta.failed(ended_us);
                if !kind.is_retryable() {
                    self.full_next = true;
                }
            }
        }
    }
}

/// How long a job thread may wait for its next due time, given the clock's `now_us`:
/// the time left, but never less than 1 ms (a busy loop) nor more than `cap`.
pub(crate) fn wait_for(next_us: u64, now_us: u64, cap: Duration) -> Duration {
    Duration::from_micros(next_us.saturating_sub(now_us)).clamp(Duration::from_millis(1), cap)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000;

    #[test]
    fn backoff_doubles_from_100_ms_up_to_the_interval() {
        assert_eq!(backoff_us(1, 10_000 * MS), 200 * MS);
        assert_eq!(backoff_us(2, 10_000 * MS), 400 * MS);
        assert_eq!(backoff_us(10, 10_000 * MS), 10_000 * MS);
        assert_eq!(backoff_us(u32::MAX, 10_000 * MS), 10_000 * MS);
        assert_eq!(backoff_us(3, 10 * MS), 100 * MS, "never under 100 ms");
    }

    #[test]
    fn every_runs_on_the_interval_and_backs_off_after_failures() {
        let mut e = Every::new(50 * MS, 0);
        assert!(!e.due(49 * MS));
        assert!(e.due(50 * MS));
        e.failed(50 * MS);
        assert_eq!(e.next_us(), 150 * MS, "at least 100 ms");
        let mut slow = Every::new(10_000 * MS, 0);
        slow.failed(10_000 * MS);
        assert_eq!(slow.next_us(), 10_200 * MS);
        slow.failed(10_200 * MS);
        assert_eq!(slow.next_us(), 10_600 * MS, "doubling");
        slow.succeeded(10_600 * MS);
        assert_eq!(slow.next_us(), 20_600 * MS);
    }

    #[test]
    fn fulls_and_incrementals_follow_their_intervals() {
        let mut s = BackupSchedule::new(10 * MS, 35 * MS, 0);
        let mut ran = Vec::new();
        for now in (0..=70).map(|t| t * MS) {
            if let Some(k) = s.due(now) {
                ran.push((now / MS, k));
                s.record(k, Ok(Some(k)), now, now);
            }
        }
        use BackupKind::{Full, Incremental};
        assert_eq!(
            ran,
            [
                (10, Incremental),
                (20, Incremental),
                (30, Incremental),
                (35, Full),
                (45, Incremental),
                (55, Incremental),
                (65, Incremental),
                (70, Full)
            ]
        );
    }

    #[test]
    fn a_full_written_instead_of_an_incremental_restarts_the_full_interval() {
        let mut s = BackupSchedule::new(10 * MS, 35 * MS, 0);
        assert_eq!(s.due(10 * MS), Some(BackupKind::Incremental));
        s.record(
            BackupKind::Incremental,
            Ok(Some(BackupKind::Full)),
            10 * MS,
            10 * MS,
        );
        assert_eq!(s.due(35 * MS), Some(BackupKind::Incremental));
        assert_eq!(s.due(45 * MS), Some(BackupKind::Full));
    }

    #[test]
    fn a_retryable_failure_backs_off_and_an_incurable_one_makes_the_next_a_full() {
        let mut s = BackupSchedule::new(500 * MS, 10_000 * MS, 0);
        s.record(
            BackupKind::Incremental,
            Err(ErrorKind::Unavailable),
            500 * MS,
            500 * MS,
        );
        assert_eq!(s.due(600 * MS), None, "backing off 200 ms");
        assert_eq!(s.due(700 * MS), Some(BackupKind::Incremental));
        s.record(
            BackupKind::Incremental,
            Err(ErrorKind::Corrupt),
            700 * MS,
            700 * MS,
        );
        assert_eq!(s.due(1_000 * MS), None, "backing off 400 ms");
        assert_eq!(s.due(1_100 * MS), Some(BackupKind::Full));
        s.record(
            BackupKind::Full,
            Ok(Some(BackupKind::Full)),
            1_100 * MS,
            1_100 * MS,
        );
        assert_eq!(s.due(1_600 * MS), Some(BackupKind::Incremental));
    }

    #[test]
    fn a_failing_full_backs_off_instead_of_retrying_at_once() {
        let mut s = BackupSchedule::new(10_000 * MS, 10_000 * MS, 0);
        assert_eq!(s.due(10_000 * MS), Some(BackupKind::Full));
        s.record(
            BackupKind::Full,
            Err(ErrorKind::Unavailable),
            10_000 * MS,
            10_000 * MS,
        );
        assert_eq!(s.due(10_000 * MS), None, "not again at once");
        assert_eq!(s.due(10_199 * MS), None);
        assert_eq!(s.due(10_200 * MS), Some(BackupKind::Full));
        s.record(
            BackupKind::Full,
            Err(ErrorKind::Unavailable),
            10_200 * MS,
            10_200 * MS,
        );
        assert_eq!(s.due(10_599 * MS), None, "doubling");
        assert_eq!(s.due(10_600 * MS), Some(BackupKind::Full));
    }

    #[test]
    fn a_clock_that_steps_back_does_not_stall_the_jobs() {
        let mut s = BackupSchedule::new(10 * MS, 1_000 * MS, 1_000_000 * MS);
        // the clock steps back by a day's worth of milliseconds
        let now = 1_000 * MS;
        assert_eq!(s.due(now + 100 * MS), None, "without a rebase: stalled");
        s.rebase(now);
        assert_eq!(s.due(now + 99 * MS), None);
        assert_eq!(s.due(now + 100 * MS), Some(BackupKind::Incremental));
        assert_eq!(s.due(now + 1_000 * MS), Some(BackupKind::Full));
        let mut e = Every::new(50 * MS, 0);
        e.failed(50 * MS); // backing off 100 ms, beyond the interval: kept
        e.rebase(50 * MS);
        assert_eq!(e.next_us(), 150 * MS);
        e.rebase(49 * MS); // a small step back does not cut the backoff short
        assert_eq!(e.next_us(), 149 * MS);
    }

    #[test]
    fn a_slow_failure_backs_off_from_when_it_ended() {
        let mut s = BackupSchedule::new(1_000 * MS, 100_000 * MS, 0);
        // the attempt at 1 s hung for 30 s before failing
        s.record(
            BackupKind::Incremental,
            Err(ErrorKind::Unavailable),
            1_000 * MS,
            31_000 * MS,
        );
        assert_eq!(s.due(31_000 * MS), None, "not due again at once");
        assert_eq!(s.due(31_200 * MS), Some(BackupKind::Incremental));
    }

    #[test]
    fn waits_are_bounded() {
        let cap = Duration::from_millis(200);
        assert_eq!(wait_for(5, 10, cap), Duration::from_millis(1));
        assert_eq!(wait_for(50 * MS, 0, cap), Duration::from_millis(50));
        assert_eq!(wait_for(u64::MAX, 0, cap), cap);
    }
}
