//! A BindSpace whose every change goes through the WAL first.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use bindspace_core::{Addr, BindSpace, Fingerprint, SchemaVersion};

use crate::record::Op;
use crate::replay::{ReplayTarget, apply_record};
use crate::sync::{Condvar, Mutex, MutexGuard, RwLock, lock, wait};
use crate::wal::{Recovery, Wal, WalOptions};
use crate::{Error, Record, RecordOp, Result};

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
    /// Appliers hold it shared from validation to application; a schema switch holds
    /// it exclusively, so no op validated against one schema applies to the other.
    gate: RwLock<()>,
    /// The version of the newest checkpoint record (0: none).
    last_checkpoint: AtomicU64,
}

/// Migrates a space to another schema (for recovery across a logged schema change).
pub type SchemaMigrator<'a> =
    &'a dyn Fn(&BindSpace, SchemaVersion) -> std::result::Result<BindSpace, String>;

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
        base: BindSpace,
        opts: WalOptions,
    ) -> Result<(Self, Recovery)> {
        Self::open_with_migrator(dir, base, opts, &|s, to| {
            Err(format!(
                "the log changes the schema from {} to {to}; open it with a migrator (bindspace-schema-migrate)",
                s.schema()
            ))
        })
    }

    /// [`DurableSpace::open`] for a log that may hold schema changes (written by
    /// [`DurableSpace::change_schema_online`]): at each one, `migrate` turns the space
    /// replayed so far into the new schema, and replay goes on in it.
    pub fn open_with_migrator(
        dir: impl AsRef<Path>,
        mut base: BindSpace,
        mut opts: WalOptions,
        migrate: SchemaMigrator<'_>,
    ) -> Result<(Self, Recovery)> {
        if opts.start_version <= base.version() {
            opts.start_version = base.version() + 1;
        }
        let verify = opts.verify_checkpoints;
        let (wal, mut rec) = Wal::open(dir, opts)?;
        let after = base.version();
        let mut last_checkpoint = 0;
        let mut mismatches = Vec::new();
        let mut skipped = Vec::new();
        wal.replay(after, ReplayTarget::Latest, |r| match &r.op {
            RecordOp::Op(Op::SchemaChange(to)) if *to != base.schema() => {
                let mut next = migrate(&base, *to).map_err(|reason| Error::InvalidOp { reason })?;
                next.set_version(r.version);
                base = next;
                Ok(())
            }
            RecordOp::Op(Op::Checkpoint(recorded)) => {
                last_checkpoint = r.version;
                if verify {
                    return apply_record(&mut base, r);
                }
                let what = format!("WAL checkpoint at version {}", r.version);
                if let Err(e) = recorded.check(&base.state_root(), &what) {
                    tracing::warn!(error = %e, "checkpoint mismatch reported, not refused (verify_checkpoints off)");
                    mismatches.push(e.to_string());
                }
                base.set_version(r.version);
                Ok(())
            }
            RecordOp::Op(Op::Delete(a)) if a.index() >= base.address_space() => {
                // logged by a build that checked only writes (its caller got an error):
                // nothing to delete, reported
                skipped.push(format!(
                    "version {}: delete of {a}, outside the {} addresses",
                    r.version,
                    base.address_space()
                ));
                apply_record(&mut base, r)
            }
            _ => apply_record(&mut base, r),
        })?;
        rec.checkpoint_mismatches = mismatches;
        rec.skipped = skipped;
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
                gate: RwLock::new(()),
                last_checkpoint: AtomicU64::new(last_checkpoint),
            },
            rec,
        ))
    }

    /// Changes the schema while writers keep writing: copies the space (a memcpy under
    /// the lock), migrates the copy with `migrate_space` without blocking anyone,
    /// catches up the writes made meanwhile from the WAL through `migrate_entry` (once
    /// without blocking, then the rest with appliers paused), logs an
    /// [`Op::SchemaChange`] and switches. Every op applies wholly under one schema:
    /// writes validated against the old width before the switch are applied and
    /// migrated; after it, old-width writes are refused with a word-count error.
    /// Returns the version of the schema-change record.
    pub fn change_schema_online(
        &self,
        target: SchemaVersion,
        migrate_space: impl FnOnce(&BindSpace) -> std::result::Result<BindSpace, String>,
        migrate_entry: impl Fn(&[u64]) -> Option<Vec<u64>>,
    ) -> Result<u64> {
        let _span = tracing::info_span!("wal.change_schema_online", %target).entered();
        let copy = lock(&self.space).clone();
        let mut next = migrate_space(&copy).map_err(|reason| Error::InvalidOp { reason })?;
        drop(copy);
        if next.schema() != target {
            return Err(Error::InvalidOp {
                reason: format!("the migration produced {}, not {target}", next.schema()),
            });
        }
        let catch_up = |next: &mut BindSpace| {
            self.wal
                .replay(next.version(), ReplayTarget::Latest, |r| {
                    let op = match &r.op {
                        RecordOp::Op(Op::Write(a, fp)) => RecordOp::Op(match migrate_entry(fp) {
                            Some(w) => Op::Write(*a, Fingerprint::from_words(w)),
                            None => Op::Delete(*a),
                        }),
                        RecordOp::Op(Op::SchemaChange(_)) => {
                            return Err(Error::InvalidOp {
                                reason: "another schema change ran concurrently".into(),
                            });
                        }
                        // it attests the old schema's state, not the migrated copy's
                        RecordOp::Op(Op::Checkpoint(_)) => {
                            next.set_version(r.version);
                            return Ok(());
                        }
                        other => other.clone(),
                    };
                    apply_record(next, &Record { op, ..r.clone() })
                })
                .map(|_| ())
        };
        catch_up(&mut next)?; // most of the writes made during the copy, nobody waits
        let _gate = self.gate.write().unwrap_or_else(|e| e.into_inner());
        let mut s = lock(&self.space);
        catch_up(&mut next)?; // the rest: appliers are paused, everything logged is applied
        if next.version() != s.version() {
            return Err(Error::Gap {
                need: s.version(),
                have: next.version(),
            });
        }
        let v = self.wal.submit(&[Op::SchemaChange(target)])?;
        self.wal.wait_durable(v)?;
        next.set_version(v);
        *s = next;
        drop(s);
        self.applied.notify_all();
        Ok(v)
    }

    /// Logs `ops` (several form one atomic batch), applies them, and returns the new
    /// version once durable and visible.
    pub fn apply(&self, ops: Vec<Op>) -> Result<u64> {
        self.apply_and(ops, |_| ()).map(|(v, ())| v)
    }

    /// [`DurableSpace::apply`], then `f` on the space at exactly the new version (before
    /// any later write is applied).
    fn apply_and<R>(&self, ops: Vec<Op>, f: impl FnOnce(&BindSpace) -> R) -> Result<(u64, R)> {
        let _gate = self.gate.read().unwrap_or_else(|e| e.into_inner());
        // Check against the space's shape before anything is logged.
        {
            let s = lock(&self.space);
            for op in &ops {
                // only this type writes these, each under its own rules: a durable one
                // that fails to apply would stop every writer after it, and every
                // reopen after that
                if let Op::Checkpoint(_) | Op::SchemaChange(_) = op {
                    return Err(Error::InvalidOp {
                        reason: format!(
                            "{} is logged by DurableSpace::{}, not applied as an op",
                            if matches!(op, Op::Checkpoint(_)) {
                                "a checkpoint"
                            } else {
                                "a schema change"
                            },
                            if matches!(op, Op::Checkpoint(_)) {
                                "checkpoint"
                            } else {
                                "change_schema_online"
                            },
                        ),
                    });
                }
                if let Op::Write(_, fp) = op
                    && fp.words() != s.words()
                {
                    return Err(bindspace_core::Error::WordCount {
                        expected: s.words(),
                        found: fp.words(),
                    }
                    .into());
                }
                if let Op::Write(a, _) | Op::Delete(a) = op
                    && a.index() >= s.address_space()
                {
                    return Err(bindspace_core::Error::AddrOutOfRange {
                        addr: *a,
                        address_space: s.schema().address_space,
                    }
                    .into());
                }
            }
        }
        let last = self.wal.submit(&ops)?;
        self.wal.wait_durable(last)?;
        let first = last + 1 - ops.len() as u64 - u64::from(ops.len() > 1);
        let mut s = lock(&self.space);
        while s.version() + 1 != first {
            if let Some(reason) = self.wal.poisoned() {
                return Err(Error::Poisoned { reason });
            }
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
            if let Err(e) = apply_record(&mut s, &rec) {
                // validated above, so a bug: the space and the log are out of step. The
                // log stops acknowledging, and the writers waiting behind this one are
                // woken to see it (never half a batch made visible)
                self.wal.poison(format!("applying version {v} failed: {e}"));
                drop(s);
                self.applied.notify_all();
                return Err(e);
            }
        }
        if commit {
            s.set_version(last);
        }
        let r = f(&s);
        drop(s);
        self.applied.notify_all();
        Ok((last, r))
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

    /// [`DurableSpace::restore_point`], with the state root at the named version.
    pub fn restore_point_rooted(
        &self,
        name: impl Into<String>,
    ) -> Result<(u64, bindspace_core::StateRoot)> {
        self.apply_and(vec![Op::RestorePoint(name.into())], BindSpace::state_root)
    }

    /// Logs a checkpoint record: the state root at its version, which every replay
    /// through it checks (the engine writes one after each backup). Writers wait
    /// while the root is brought up to date (only the addresses changed since the
    /// last root) and the record is synced. `None` when the newest record already is
    /// a checkpoint: nothing new to attest, and no version is taken.
    pub fn checkpoint(&self) -> Result<Option<(u64, bindspace_core::StateRoot)>> {
        let _span = tracing::debug_span!("wal.checkpoint").entered();
        // writers out: everything logged is applied, nothing is logged meanwhile
        let _gate = self.gate.write().unwrap_or_else(|e| e.into_inner());
        let root = {
            let s = lock(&self.space);
            if self.last_checkpoint.load(Ordering::Acquire) == s.version() {
                return Ok(None);
            }
            s.state_root()
        };
        let v = self.wal.submit(&[Op::Checkpoint(root.clone())])?;
        self.wal.wait_durable(v)?;
        let mut s = lock(&self.space);
        // writers were out: the record follows the state its root was computed from
        // (moving the version cannot fail, so no writer is left waiting for it)
        let expected = s.version() + 1;
        s.set_version(v);
        drop(s);
        self.applied.notify_all();
        if v != expected {
            // something logged past the gate: the root may not be this version's
            return Err(Error::Gap {
                need: expected,
                have: v,
            });
        }
        self.last_checkpoint.store(v, Ordering::Release);
        Ok(Some((v, root)))
    }

    /// The version of the newest checkpoint record (0: none); the newest record is a
    /// checkpoint when this is the space's version.
    pub fn last_checkpoint(&self) -> u64 {
        self.last_checkpoint.load(Ordering::Acquire)
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
