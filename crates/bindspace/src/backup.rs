//! The backup kinds: what a full, an incremental and a differential put together, how
//! a delta resumes after a restart, and what follows a full (the local checkpoint,
//! retention). Dirty tracking continues from each backup's mark; if a write fails the
//! chain is broken and the next backup is a full.

use bindspace_catalog::{
    ArtifactRef, BackupEntry, BackupKind, NewBackup, parse_blake3_hex, retention,
};
use bindspace_core::Mark;
use bindspace_pitr::Target;
use bytes::Bytes;

use crate::Result;
use crate::engine::{Inner, lock};

/// Where the backup chain stands.
pub(crate) struct BackupState {
    /// Dirty tracking since the last backup.
    pub mark: Mark,
    /// The last backup, if the mark continues from it (otherwise the next is a full).
    pub last: Option<BackupEntry>,
    /// The last full, likewise.
    pub last_full: Option<BackupEntry>,
    /// Deltas since the last full.
    pub chain: usize,
    /// The newest backup in the catalog when the mark does not continue from it (after
    /// a restart), with its full: the next incremental is computed by a scan against its
    /// restored state instead of from dirty tracking.
    pub resume: Option<(BackupEntry, BackupEntry)>,
}

impl BackupState {
    /// Forgets the chain: the next backup is a full.
    pub fn break_chain(&mut self) {
        self.last = None;
        self.last_full = None;
        self.resume = None;
    }
}

impl Inner {
    /// A backup of kind `asked` (a full instead when there is no chain to extend or it
    /// is too long); `None` when nothing changed since the last one. A failure that a
    /// retry cannot cure breaks the chain, so the next backup is a full.
    pub(crate) fn backup(&self, asked: BackupKind) -> Result<Option<BackupEntry>> {
        self.check_fenced()?;
        let mut st = lock(&self.state);
        let res = self.backup_locked(&mut st, asked);
        if let Err(e) = &res
            && e.kind() == bindspace_core::ErrorKind::Fenced
        {
            self.fence(e);
        }
        if let Err(e) = &res
            && !e.kind().is_retryable()
        {
            tracing::warn!(error = %e, kind = %e.kind(), "backup failed; the next one is a full");
            st.break_chain();
        }
        res
    }

    fn backup_locked(
        &self,
        st: &mut BackupState,
        asked: BackupKind,
    ) -> Result<Option<BackupEntry>> {
        if matches!(asked, BackupKind::Incremental | BackupKind::Differential)
            && let Some((last, full)) = st.resume.take()
        {
            return self.resumed_delta(st, asked, last, full).map(Some);
        }
        let kind = match (&st.last, &st.last_full) {
            (Some(_), Some(_)) if st.chain < self.cfg.max_delta_chain => asked,
            _ => BackupKind::Full,
        };
        // the newest full already holds this state (nothing but its own WAL checkpoint
        // since): a new one would only rewrite it under a new time
        if kind == BackupKind::Full
            && let Some(f) = &st.last_full
            && st.last.as_ref().is_some_and(|l| l.id == f.id)
        {
            let now = self.ds.read(|s| s.version());
            if now == f.to_version || (now == f.to_version + 1 && self.ds.last_checkpoint() == now)
            {
                return Ok(None);
            }
        }
        let (mark, backup) = match kind {
            BackupKind::Full | BackupKind::Wal => self.full(),
            BackupKind::Incremental | BackupKind::Differential => {
                match self.delta(st, kind)? {
                    Some(x) => x,
                    None => return Ok(None), // nothing changed
                }
            }
        };
        self.write(st, mark, backup).map(Some)
    }

    /// A full: the only wait a writer sees is a memcpy of the space.
    fn full(&self) -> (Mark, NewBackup) {
        let (copy, mark) = {
            let mut s = self.ds.lock();
            let m = s.mark();
            (s.clone(), m)
        };
        let backup = NewBackup::full(&copy, self.clock.now_us());
        // the copy brought the root tree up to date: the live space takes it over
        self.ds.lock().adopt_root(&copy, &mark);
        (mark, backup)
    }

    /// An incremental (the changes since the last backup) or a differential (the
    /// deltas since the last full, composed, no rescan); `None` when nothing changed.
    fn delta(&self, st: &mut BackupState, kind: BackupKind) -> Result<Option<(Mark, NewBackup)>> {
        let now = self.clock.now_us();
        let (delta, mark) = {
            let mut s = self.ds.lock();
            // nothing changed, or only the WAL checkpoint the last backup wrote
            if s.version() == st.mark.version()
                || (s.version() == st.mark.version() + 1
                    && self.ds.last_checkpoint() == s.version())
            {
                return Ok(None);
            }
            let d = bindspace_xor_delta::compute_dirty(&s, &st.mark, now)?;
            (d, s.mark())
        };
        let schema = delta.schema;
        let last = st.last.clone().expect("a delta is asked only with a chain");
        let full = st
            .last_full
            .clone()
            .expect("a delta is asked only with a chain");
        let (delta, parent, kind) = if kind == BackupKind::Incremental {
            (delta, last.id, kind)
        } else {
            match self.compose_since_full(&last, &full, delta.clone()) {
                Ok(d) => (d, full.id, kind),
                // a store that could not be read now: the changes since the last backup
                // are in hand, so they land as an incremental and the chain goes on
                Err(e) if e.kind().is_retryable() => {
                    tracing::warn!(error = %e, "differential not composed; writing an incremental instead");
                    (delta, last.id, BackupKind::Incremental)
                }
                Err(e) => {
                    // a damaged chain: the dirty tracking already moved on, and nothing
                    // should continue it; the next backup is a full
                    st.mark = mark;
                    st.break_chain();
                    return Err(e);
                }
            }
        };
        let backup = NewBackup::delta(
            kind,
            delta.from_version,
            delta.to_version,
            bindspace_xor_delta::encode(&delta).into(),
            parent,
            schema,
        );
        let backup = match &delta.end_root {
            Some(r) => backup.with_root(r.root().to_string()),
            None => backup,
        };
        Ok(Some((mark, backup)))
    }

    /// Writes `backup` to every destination; the dirty tracking continues from `mark`
    /// either way, so a failed write breaks the chain.
    fn write(&self, st: &mut BackupState, mark: Mark, backup: NewBackup) -> Result<BackupEntry> {
        let kind = backup.kind;
        let version = backup.artifact.versions().1;
        st.mark = mark;
        let backup = backup.on(self.timeline);
        let entry = match self.rt.block_on(self.repo.write_backup(backup.clone())) {
            Ok(e) => e,
            Err(e) => {
                st.break_chain();
                self.store_failed(&e);
                return Err(e.into());
            }
        };
        match kind {
            BackupKind::Full => st.chain = 0,
            BackupKind::Differential => st.chain = 1,
            _ => st.chain += 1,
        }
        if kind == BackupKind::Full {
            st.last_full = Some(entry.clone());
            // the chain now continues from this full's mark: no delta resumes by scan
            st.resume = None;
        }
        st.last = Some(entry.clone());
        self.counted_backup(version, &entry);
        self.wal_checkpoint();
        if kind == BackupKind::Full {
            // Still under the state lock: no other backup interleaves. The full has
            // landed: a failure here is reported, not retried as a failed backup (that
            // would upload the whole full again and again).
            if let Err(e) = self
                .local_checkpoint(&backup.bytes, version)
                .and_then(|()| self.apply_retention())
            {
                self.failed("checkpoint and retention after a full", &e, |_| {});
            }
        }
        Ok(entry)
    }

    /// After a restart: the delta by scan against the restored state of the last backup
    /// (incremental) or the last full (differential).
    fn resumed_delta(
        &self,
        st: &mut BackupState,
        asked: BackupKind,
        last: BackupEntry,
        full: BackupEntry,
    ) -> Result<BackupEntry> {
        let from = if asked == BackupKind::Differential {
            full.clone()
        } else {
            last
        };
        let (old, _) = self.rt.block_on(bindspace_pitr::restore_to_on(
            self.repo.destinations(),
            &Target::Version(from.to_version),
            Some(self.timeline),
        ))?;
        let (copy, mark) = {
            let mut s = self.ds.lock();
            let m = s.mark();
            (s.clone(), m)
        };
        let d = bindspace_xor_delta::compute(&old, &copy, self.clock.now_us())?;
        self.ds.lock().adopt_root(&copy, &mark);
        let root = copy.state_root().root().to_string();
        st.mark = mark;
        let written = self.rt.block_on(
            self.repo.write_backup(
                NewBackup::delta(
                    asked,
                    d.from_version,
                    d.to_version,
                    bindspace_xor_delta::encode(&d).into(),
                    from.id.clone(),
                    d.schema,
                )
                .with_root(root)
                .on(self.timeline),
            ),
        );
        let entry = match written {
            Ok(e) => e,
            Err(e) => {
                // the mark moved on: nothing continues from the last backup now
                st.break_chain();
                self.store_failed(&e);
                return Err(e.into());
            }
        };
        // the delta has landed: a catalog that cannot be read now only ends the chain
        st.chain = match self.rt.block_on(self.repo.manifest()) {
            Ok(m) => retention::chain_of(&m, &entry).len().saturating_sub(1),
            Err(_) => self.cfg.max_delta_chain,
        };
        st.last = Some(entry.clone());
        st.last_full = Some(full);
        self.counted_backup(d.to_version, &entry);
        self.wal_checkpoint();
        Ok(entry)
    }

    /// After a backup has landed: the WAL records the state root at its next version
    /// (the same state as the backup's unless writers went on), which every replay
    /// through it checks. The backup stands either way: a failure is only reported.
    fn wal_checkpoint(&self) {
        if let Err(e) = self.ds.checkpoint() {
            self.failed("WAL checkpoint after a backup", &e.into(), |_| {});
        }
    }

    /// A backup that a store refused, counted by the store the error names.
    fn store_failed(&self, e: &bindspace_catalog::Error) {
        let store = e.store().unwrap_or("all").to_owned();
        *lock(&self.status)
            .backup_failures_by_store
            .entry(store)
            .or_default() += 1;
    }

    fn counted_backup(&self, version: u64, entry: &BackupEntry) {
        let mut s = lock(&self.status);
        s.backups_ok += 1;
        for store in &entry.locations {
            let kind = entry.kind.name().to_owned();
            let t = s.last_backup_us.entry((kind, store.clone())).or_default();
            *t = (*t).max(entry.end_us);
            *s.backup_bytes_by_store.entry(store.clone()).or_default() += entry.size;
        }
        s.last_backup_version = s.last_backup_version.max(version);
        s.last_error = None;
    }

    /// Composes the deltas from the last full to `last`, then `newest`.
    fn compose_since_full(
        &self,
        last: &BackupEntry,
        full: &BackupEntry,
        newest: bindspace_xor_delta::Delta,
    ) -> Result<bindspace_xor_delta::Delta> {
        let m = self.rt.block_on(self.repo.manifest())?;
        let whole = retention::chain_of(&m, last);
        if !whole.iter().any(|e| e.id == full.id) {
            return Err(bindspace_catalog::Error::BadManifest {
                store: self.repo.names()[0].clone(),
                what: last.id.clone(),
                detail: format!("its chain does not lead to the full {}", full.id),
            }
            .into());
        }
        let mut chain: Vec<&BackupEntry> =
            whole.into_iter().take_while(|e| e.id != full.id).collect();
        chain.reverse();
        let store = &self.repo.destinations()[0];
        let mut acc: Option<bindspace_xor_delta::Delta> = None;
        for e in chain {
            let r = ArtifactRef {
                id: e.artifact,
                len: e.size,
                blake3: parse_blake3_hex(&e.blake3).ok_or_else(|| {
                    bindspace_catalog::Error::BadManifest {
                        store: store.name(),
                        what: e.id.clone(),
                        detail: "blake3 is not 64 hex digits".into(),
                    }
                })?,
            };
            let d = bindspace_xor_delta::decode(&self.rt.block_on(store.get(&r))?)?;
            acc = Some(match acc {
                None => d,
                Some(a) => bindspace_xor_delta::compose(&a, &d)?,
            });
        }
        Ok(match acc {
            None => newest,
            Some(a) => bindspace_xor_delta::compose(&a, &newest)?,
        })
    }

    /// After a full at `version`: the local checkpoint file, then local WAL segments at
    /// or below it leave the disk (only once archived everywhere).
    fn local_checkpoint(&self, bytes: &Bytes, version: u64) -> Result<()> {
        // the log first: under `sync = interval` or `never` the records up to `version`
        // may not be on disk yet, and a checkpoint ahead of the log refuses to reopen
        self.ds.wal().sync()?;
        self.dir.write_checkpoint(bytes)?;
        let _one = lock(&self.archiving);
        self.ds.wal().checkpoint(version, &self.archiver())?;
        Ok(())
    }

    fn apply_retention(&self) -> Result<()> {
        self.retention().map(|_| ())
    }

    /// Applies the retention policy now, counted in the status.
    pub(crate) fn retention(&self) -> Result<(bindspace_catalog::retention::RetentionPlan, usize)> {
        let (plan, n) = self.rt.block_on(
            self.repo
                .apply_retention(&self.cfg.retention, self.clock.now_us()),
        )?;
        lock(&self.status).retention_deleted += n as u64;
        Ok((plan, n))
    }
}
