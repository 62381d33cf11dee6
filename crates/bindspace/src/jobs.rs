//! The background jobs, each on its own thread so WAL archiving (the RPO) never waits
//! behind a long full backup: archiving every `archive_interval_ms`, backups on the
//! [`BackupSchedule`], a bounded `verify` of the repository every
//! `verify_interval_ms`. Each thread decides from the injected clock ([`crate::schedule`])
//! and waits on a channel, so [`Jobs::tick`] (a test's manual clock moved on) or
//! [`Jobs::stop`] wakes it at once.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, SyncSender};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::Result;
use crate::engine::Inner;
use crate::error::io;
use crate::schedule::{BackupSchedule, Every, wait_for};

/// The longest a job thread waits without looking at the clock again (a system clock
/// can jump; a manual one moves without telling).
const MAX_WAIT: Duration = Duration::from_millis(500);

/// How many due jobs one thread runs back to back before it answers a tick.
const MAX_RUNS_PER_WAKE: usize = 8;

enum Wake {
    /// Run what is due at the clock's time, then answer.
    Tick(SyncSender<()>),
    /// Finish.
    Stop,
}

/// The running job threads.
pub(crate) struct Jobs {
    wakes: Vec<Sender<Wake>>,
    threads: Vec<JoinHandle<()>>,
}

impl Jobs {
    /// No threads (background jobs off).
    pub fn none() -> Jobs {
        Jobs {
            wakes: Vec::new(),
            threads: Vec::new(),
        }
    }

    /// Starts the archiver and the backup threads.
    pub fn start(inner: &Arc<Inner>) -> Result<Jobs> {
        let mut jobs = Jobs::none();
        let ms = |v: u64| v.max(10).saturating_mul(1_000);
        let now = inner.clock.now_us();
        // each closure owns its schedule
        let mut archive = Every::new(ms(inner.cfg.archive_interval_ms), now);
        // a pool each, made before any thread starts (a failure leaves none running):
        // archiving (the RPO) never queues behind a full backup
        let archive_pool = compute_pool("archive")?;
        let backup_pool = compute_pool("backup")?;
        jobs.spawn("bindspace-archiver", inner, move |inner, now, _| {
            archive_pool.install(|| archive_step(inner, &mut archive, now))
        })?;
        let mut backups = BackupSchedule::new(
            ms(inner.cfg.delta_interval_ms),
            ms(inner.cfg.full_snapshot_interval_ms),
            now,
        );
        if let Err(e) = jobs.spawn("bindspace-backups", inner, move |inner, now, _| {
            backup_pool.install(|| backup_step(inner, &mut backups, now))
        }) {
            jobs.stop(); // the archiver must not outlive a failed open
            return Err(e);
        }
        if !inner.replicas.is_empty() {
            let mut replicate = Every::new(ms(inner.cfg.replicate_interval_ms), now);
            if let Err(e) = jobs.spawn("bindspace-replicate", inner, move |inner, now, wait| {
                replicate.rebase(now);
                if replicate.due(now) {
                    // a close stops the copying between artifacts
                    inner.replicate(&mut || wait.until(inner, 0));
                    // a replica left behind is retried at the next interval (its lag
                    // in the status grows meanwhile)
                    replicate.succeeded(now);
                }
                replicate.next_us()
            }) {
                jobs.stop();
                return Err(e);
            }
        }
        if inner.cfg.verify_interval_ms > 0 {
            // the first run a minute after opening (at most one interval): an engine
            // that restarts more often than the interval still verifies, and a start
            // re-reads nothing the catalogs record as verified within the re-check
            // period
            let every = ms(inner.cfg.verify_interval_ms);
            let mut verify = Every::starting(every, now.saturating_add(every.min(60_000_000)));
            if let Err(e) = jobs.spawn("bindspace-verify", inner, move |inner, now, wait| {
                verify_step(inner, &mut verify, now, wait)
            }) {
                jobs.stop();
                return Err(e);
            }
        }
        Ok(jobs)
    }

    fn spawn(
        &mut self,
        name: &str,
        inner: &Arc<Inner>,
        mut step: impl FnMut(&Inner, u64, &mut Waiter<'_>) -> u64 + Send + 'static,
    ) -> Result<()> {
        let (tx, rx) = std::sync::mpsc::channel();
        let inner = inner.clone();
        let t = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || run(&inner, &rx, &mut step))
            .map_err(io("starting the background jobs"))?;
        self.wakes.push(tx);
        self.threads.push(t);
        Ok(())
    }

    /// Wakes every job thread and waits until each has run what is due at the clock's
    /// time now.
    pub fn tick(&self) {
        let mut answers = Vec::new();
        for w in &self.wakes {
            let (tx, rx) = std::sync::mpsc::sync_channel(1);
            if w.send(Wake::Tick(tx)).is_ok() {
                answers.push(rx);
            }
        }
        for a in answers {
            let _ = a.recv();
        }
    }

    /// Stops and joins every job thread.
    pub fn stop(&mut self) {
        for w in self.wakes.drain(..) {
            let _ = w.send(Wake::Stop);
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// How a job waits in the middle of its work (the background verify's pace): until
/// the engine's clock reaches a time, answering the ticks that come in meanwhile (a
/// test's manual clock moves on), or until the engine stops.
pub(crate) struct Waiter<'a> {
    rx: &'a Receiver<Wake>,
    answers: &'a mut Vec<SyncSender<()>>,
    stopped: bool,
}

impl Waiter<'_> {
    /// Waits until `until_us` on the engine's clock; `false` once the engine is
    /// stopping (at once, even when `until_us` has passed).
    pub fn until(&mut self, inner: &Inner, until_us: u64) -> bool {
        match self.rx.try_recv() {
            Ok(Wake::Tick(a)) => self.answers.push(a),
            Ok(Wake::Stop) | Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                self.stopped = true;
            }
            Err(std::sync::mpsc::TryRecvError::Empty) => {}
        }
        loop {
            if self.stopped {
                return false;
            }
            let now = inner.clock.now_us();
            if now >= until_us {
                return true;
            }
            // idle until the clock moves: the ticks that came in are answered now
            for a in self.answers.drain(..) {
                let _ = a.send(());
            }
            match self.rx.recv_timeout(wait_for(until_us, now, MAX_WAIT)) {
                Ok(Wake::Tick(a)) => self.answers.push(a),
                Ok(Wake::Stop) | Err(RecvTimeoutError::Disconnected) => self.stopped = true,
                Err(RecvTimeoutError::Timeout) => {}
            }
        }
    }
}

/// A job thread: run what is due (`step` returns when it is next due), answer the
/// ticks that came in, wait for the next due time or a wake-up.
fn run(
    inner: &Inner,
    rx: &Receiver<Wake>,
    step: &mut impl FnMut(&Inner, u64, &mut Waiter<'_>) -> u64,
) {
    let mut answers: Vec<SyncSender<()>> = Vec::new();
    let mut one = |answers: &mut Vec<SyncSender<()>>| {
        let mut w = Waiter {
            rx,
            answers,
            stopped: false,
        };
        let next = step(inner, inner.clock.now_us(), &mut w);
        (next, w.stopped)
    };
    loop {
        let (mut next, stopped) = one(&mut answers);
        if stopped {
            break;
        }
        for _ in 1..MAX_RUNS_PER_WAKE {
            if next > inner.clock.now_us() {
                break;
            }
            // a stop is noticed between runs, not only after a burst of them
            match rx.try_recv() {
                Ok(Wake::Tick(a)) => answers.push(a),
                Ok(Wake::Stop) | Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                    answer(answers);
                    return;
                }
                Err(std::sync::mpsc::TryRecvError::Empty) => {}
            }
            let (n, stopped) = one(&mut answers);
            if stopped {
                answer(answers);
                return;
            }
            next = n;
        }
        for a in answers.drain(..) {
            let _ = a.send(());
        }
        match rx.recv_timeout(wait_for(next, inner.clock.now_us(), MAX_WAIT)) {
            Ok(Wake::Tick(a)) => answers.push(a),
            Ok(Wake::Stop) | Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) => {}
        }
    }
    answer(answers);
}

fn answer(answers: Vec<SyncSender<()>>) {
    for a in answers {
        let _ = a.send(());
    }
}

fn archive_step(inner: &Inner, every: &mut Every, now: u64) -> u64 {
    every.rebase(now);
    if every.due(now) {
        match inner.archive() {
            Ok(_) => every.succeeded(now),
            Err(e) => {
                every.failed(inner.clock.now_us());
                inner.failed("archive", &e, |s| s.archive_failures += 1);
            }
        }
    }
    every.next_us()
}

/// The background verify: one run every `verify_interval_ms`, paced to
/// `verify_max_bytes_per_sec` on this thread (after each artifact it waits until the
/// bytes read so far are within the rate), within `verify_max_duration_ms`; a stop ends
/// it after the artifact being read, with what was read recorded.
fn verify_step(inner: &Inner, every: &mut Every, now: u64, wait: &mut Waiter<'_>) -> u64 {
    every.rebase(now);
    if !every.due(now) {
        return every.next_us();
    }
    let rate = u128::from(inner.cfg.verify_max_bytes_per_sec);
    let budget_end = now.saturating_add(inner.cfg.verify_max_duration_ms.saturating_mul(1_000));
    let mut pace = |bytes: u64| {
        let due = match rate {
            0 => 0,
            r => now.saturating_add((u128::from(bytes) * 1_000_000 / r) as u64),
        };
        due < budget_end && wait.until(inner, due)
    };
    let res = inner
        .cfg
        .verify_level()
        .and_then(|level| inner.verify(level, Some(budget_end.saturating_sub(now)), &mut pace));
    match res {
        Ok(_) => every.succeeded(now),
        Err(e) => {
            every.failed(inner.clock.now_us());
            inner.failed("verify", &e, |_| {});
        }
    }
    every.next_us()
}

/// The threads a background job computes on (encode, blake3, sealing: everything that
/// fans out through rayon runs in the pool it was started from): half the cores, at
/// least one, so that a full or an archive never takes every core from the writers.
/// Backups and archiving have a pool each; what a background backup does runs there
/// (the restore a resumed chain needs included). A backup asked for in the foreground
/// (`Engine::backup_now`) and restores a caller asks for use every core.
fn compute_pool(job: &'static str) -> Result<rayon_core::ThreadPool> {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    rayon_core::ThreadPoolBuilder::new()
        .num_threads((cores / 2).max(1))
        .thread_name(move |i| format!("bindspace-{job}-{i}"))
        .build()
        .map_err(|e| io(format!("starting the {job} threads"))(std::io::Error::other(e)))
}

fn backup_step(inner: &Inner, schedule: &mut BackupSchedule, now: u64) -> u64 {
    schedule.rebase(now);
    if let Some(kind) = schedule.due(now) {
        match inner.backup(kind) {
            Ok(written) => {
                schedule.record(kind, Ok(written.map(|e| e.kind)), now, inner.clock.now_us())
            }
            Err(e) => {
                schedule.record(kind, Err(e.kind()), now, inner.clock.now_us());
                inner.failed("backup", &e, |s| s.backups_failed += 1);
            }
        }
    }
    schedule.next_us()
}
