//! Group commit: many appenders, one leader writing and syncing everything pending.
//!
//! An appender `submit`s its frames (they get versions and join the pending buffer),
//! then `wait_durable`s for its last version. The first waiter to find no leader
//! becomes one: it takes the whole pending buffer, releases the lock, writes and syncs
//! it, then publishes the new durable version and wakes everyone. Followers whose
//! version that covered return; the rest elect the next leader. A failed flush poisons
//! the log for good: nobody is acknowledged again until it is reopened.

use crate::sync::{Condvar, Mutex, lock, wait};

/// The coordinator's shared state.
#[derive(Debug)]
pub struct GroupCommit {
    state: Mutex<State>,
    cond: Condvar,
    max_pending: usize,
    max_delay: std::time::Duration,
}

#[derive(Debug)]
struct State {
    next_version: u64,
    pending: Vec<u8>,
    pending_first: u64,
    durable: u64,
    leader: bool,
    poisoned: Option<String>,
    last_timestamp_us: u64,
    /// Appenders whose frames are in `pending`.
    pending_appenders: usize,
    /// Appenders in the last group flushed.
    last_group: usize,
}

/// Writes and syncs one batch: `(bytes, first_version, last_version)`.
pub type Flush<'a> = dyn FnMut(&[u8], u64, u64) -> Result<(), String> + 'a;

/// Why an append was not acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Poisoned(pub String);

impl GroupCommit {
    /// A coordinator whose next version is `next_version`; submitters block while more
    /// than `max_pending` bytes wait for a leader (backpressure).
    pub fn new(next_version: u64, max_pending: usize) -> Self {
        GroupCommit {
            state: Mutex::new(State {
                next_version,
                pending: Vec::new(),
                pending_first: next_version,
                durable: next_version - 1,
                leader: false,
                poisoned: None,
                last_timestamp_us: 0,
                pending_appenders: 0,
                last_group: 0,
            }),
            cond: Condvar::new(),
            max_pending,
            max_delay: std::time::Duration::from_micros(100),
        }
    }

    /// Timestamps never go below `us` (the newest record's, when a log is reopened:
    /// a clock that moved back across a restart must not make them decrease).
    pub fn seed_timestamp(&self, us: u64) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.last_timestamp_us = st.last_timestamp_us.max(us);
    }

    /// Adds frames to the pending buffer. `encode(first_version, timestamp_us, buf)`
    /// appends frames for consecutive versions starting at `first_version` and returns
    /// how many versions it used. Timestamps never go backwards. Returns the last
    /// version used.
    pub fn submit(
        &self,
        now_us: u64,
        encode: impl FnOnce(u64, u64, &mut Vec<u8>) -> u64,
    ) -> Result<u64, Poisoned> {
        let mut st = lock(&self.state);
        loop {
            if let Some(p) = &st.poisoned {
                return Err(Poisoned(p.clone()));
            }
            if st.pending.len() < self.max_pending {
                break;
            }
            st = wait(&self.cond, st);
        }
        let first = st.next_version;
        if st.pending.is_empty() {
            st.pending_first = first;
        }
        let ts = now_us.max(st.last_timestamp_us);
        st.last_timestamp_us = ts;
        let n = encode(first, ts, &mut st.pending);
        st.pending_appenders += 1;
        debug_assert!(n > 0, "a submission uses at least one version");
        st.next_version += n;
        Ok(first + n - 1)
    }

    /// Blocks until `version` is durable, leading flushes when no one else is.
    /// `flush(bytes, first_version, last_version)` writes and syncs a batch.
    pub fn wait_durable(&self, version: u64, flush: &mut Flush<'_>) -> Result<(), Poisoned> {
        let mut st = lock(&self.state);
        loop {
            if st.durable >= version {
                break Ok(());
            }
            if let Some(p) = &st.poisoned {
                break Err(Poisoned(p.clone()));
            }
            if st.leader {
                st = wait(&self.cond, st);
                continue;
            }
            // Lead: everything pending goes in one write and one sync.
            st.leader = true;
            // Appenders the last flush woke are about to submit again: while the
            // group is smaller than the previous one, give them a moment to join
            // (PostgreSQL's commit_delay, bounded by `max_delay`).
            // The one wall-clock wait in library code, on purpose: it bounds how long
            // real threads get to join a group (microseconds), which no injected
            // clock can stand for.
            #[cfg(not(loom))]
            #[allow(clippy::disallowed_methods)]
            {
                let started = std::time::Instant::now();
                while st.pending_appenders < st.last_group && started.elapsed() < self.max_delay {
                    drop(st);
                    std::thread::sleep(std::time::Duration::from_micros(10));
                    st = lock(&self.state);
                }
            }
            st.last_group = st.pending_appenders;
            st.pending_appenders = 0;
            let batch = std::mem::take(&mut st.pending);
            let (first, last) = (st.pending_first, st.next_version - 1);
            drop(st);
            let res = flush(&batch, first, last);
            st = lock(&self.state);
            st.leader = false;
            match res {
                Ok(()) => st.durable = last,
                Err(e) => st.poisoned = Some(e),
            }
            self.cond.notify_all();
        }
    }

    /// Highest durable version.
    pub fn durable(&self) -> u64 {
        lock(&self.state).durable
    }

    /// The version the next submission will get.
    pub fn next_version(&self) -> u64 {
        lock(&self.state).next_version
    }

    /// Why the log is poisoned, if it is.
    pub fn poisoned(&self) -> Option<String> {
        lock(&self.state).poisoned.clone()
    }

    /// Poisons the log (an error outside a flush, e.g. in a background sync).
    pub fn poison(&self, reason: String) {
        let mut st = lock(&self.state);
        st.poisoned.get_or_insert(reason);
        self.cond.notify_all();
    }
}
