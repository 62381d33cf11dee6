//! A BindSpace whose every change goes through the WAL first.

use std::path::Path;

use bindspace_core::{Addr, BindSpace, Fingerprint};

use crate::record::Op;
use crate::replay::{ReplayTarget, apply_record};
use crate::sync::{Condvar, Mutex, MutexGuard, lock, wait};
use crate::wal::{Recovery, Wal, WalOptions};
use crate::{Error, Result};

/// WAL append → apply to the space → acknowledge: the space's version and the log's
/// version are one number, and nothing acknowledged is lost in a crash.
///
/// Appends from many threads share syncs (group commit); each thread then applies its
/// own ops, in version order, before its call returns.
///
/// ```
/// use bindspace_core::{Addr, BindSpace, Fingerprint, SchemaVersion};
/// use bindspace_wal::{DurableSpace, WalOptions};
///
/// let dir = tempfile::tempdir().unwrap();
/// let schema = SchemaVersion::CURRENT.with_words(4);
/// let (ds, _) = DurableSpace::open(dir.path(), BindSpace::new(schema).unwrap(), WalOptions::default()).unwrap();
/// ds.write(Addr::new(1, 1), Fingerprint::zeroed(4)).unwrap();
/// drop(ds);
/// let (ds, rec) = DurableSpace::open(dir.path(), BindSpace::new(schema).unwrap(), WalOptions::default()).unwrap();
/// assert_eq!(rec.last_version, 1);
/// assert!(ds.read(|s| s.contains(Addr::new(1, 1))));
/// ```
pub struct DurableSpace {
    wal: Wal,
    space: Mutex<BindSpace>,
    applied: Condvar,
}

impl std::fmt::Debug for DurableSpace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DurableSpace")
            .field("wal", &self.wal)
            .finish_non_exhaustive()
    }
}

impl DurableSpace {
    /// Opens the log in `dir` and replays it onto `base` (an empty space, or a restored
    /// snapshot whose version the log continues from).
    pub fn open(
        dir: impl AsRef<Path>,
        mut base: BindSpace,
        mut opts: WalOptions,
    ) -> Result<(Self, Recovery)> {
        if opts.start_version <= base.version() {
            opts.start_version = base.version() + 1;
        }
        let (wal, rec) = Wal::open(dir, opts)?;
        let after = base.version();
        wal.replay(after, ReplayTarget::Latest, |r| apply_record(&mut base, r))?;
        if base.version() != rec.last_version {
            return Err(Error::Gap {
                need: base.version() + 1,
                have: rec.last_version + 1,
            });
        }
        Ok((
            DurableSpace {
                wal,
                space: Mutex::new(base),
                applied: Condvar::new(),
            },
            rec,
        ))
    }

    /// Logs `ops` (several form one atomic batch), applies them, and returns the new
    /// version once durable and visible.
    pub fn apply(&self, ops: Vec<Op>) -> Result<u64> {
        // Check against the space's shape before anything is logged.
        {
            let s = lock(&self.space);
            for op in &ops {
                if let Op::Write(a, fp) = op {
                    if fp.words() != s.words() {
                        return Err(bindspace_core::Error::WordCount {
                            expected: s.words(),
                            found: fp.words(),
                        }
                        .into());
                    }
                    if a.index() >= s.address_space() {
                        return Err(bindspace_core::Error::AddrOutOfRange {
                            addr: *a,
                            address_space: s.schema().address_space,
                        }
                        .into());
                    }
                }
            }
        }
        let last = self.wal.submit(&ops)?;
        self.wal.wait_durable(last)?;
        let first = last + 1 - ops.len() as u64 - u64::from(ops.len() > 1);
        let mut s = lock(&self.space);
        while s.version() + 1 != first {
            s = wait(&self.applied, s);
        }
        let commit = ops.len() > 1;
        for (v, op) in (first..).zip(ops) {
            let rec = crate::Record {
                version: v,
                timestamp_us: 0,
                in_batch: commit,
                op: crate::RecordOp::Op(op),
            };
            apply_record(&mut s, &rec)?;
        }
        if commit {
            s.set_version(last);
        }
        drop(s);
        self.applied.notify_all();
        Ok(last)
    }

    /// Writes one fingerprint durably.
    pub fn write(&self, addr: Addr, fp: Fingerprint) -> Result<u64> {
        self.apply(vec![Op::Write(addr, fp)])
    }

    /// Deletes one address durably.
    pub fn delete(&self, addr: Addr) -> Result<u64> {
        self.apply(vec![Op::Delete(addr)])
    }

    /// Records a named restore point at the current state.
    pub fn restore_point(&self, name: impl Into<String>) -> Result<u64> {
        self.apply(vec![Op::RestorePoint(name.into())])
    }

    /// Runs `f` on the space (readers see only acknowledged-durable state).
    pub fn read<R>(&self, f: impl FnOnce(&BindSpace) -> R) -> R {
        f(&lock(&self.space))
    }

    /// Locks the space for a longer read or for a backup mark (writers wait).
    pub fn lock(&self) -> MutexGuard<'_, BindSpace> {
        lock(&self.space)
    }

    /// The log underneath.
    pub fn wal(&self) -> &Wal {
        &self.wal
    }
}
