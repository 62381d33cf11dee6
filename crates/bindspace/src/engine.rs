//! The engine: a durable space and the background jobs that protect it.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bindspace_catalog::{
    ArtifactId, ArtifactRef, BackupEntry, BackupKind, NewBackup, Repository, parse_blake3_hex,
    retention,
};
use bindspace_core::{
    Addr, BindSpace, Clock, Fingerprint, Mark, SchemaVersion, SystemClock, snapshot,
};
use bindspace_pitr::Target;
use bindspace_store_s3::StoreArchiver;
use bindspace_wal::{DurableSpace, WalOptions};
use bytes::Bytes;

use crate::{BackupConfig, Error, Result};

/// Counters and the last failure, for operators and tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EngineStatus {
    /// The space's version.
    pub version: u64,
    /// Backups written.
    pub backups_ok: u64,
    /// Backup attempts that failed (each retried later).
    pub backups_failed: u64,
    /// WAL segments archived.
    pub segments_archived: u64,
    /// Archive attempts that failed (each retried later).
    pub archive_failures: u64,
    /// Newest version in a backup.
    pub last_backup_version: u64,
    /// Newest version in the WAL archive.
    pub last_archived_version: u64,
    /// Backups removed by retention.
    pub retention_deleted: u64,
    /// The last error, if the last attempt of some job failed.
    pub last_error: Option<String>,
}

struct BackupState {
    /// Dirty tracking since the last backup.
    mark: Mark,
    /// The last backup, if the mark continues from it (otherwise the next is a full).
    last: Option<BackupEntry>,
    last_full: Option<BackupEntry>,
    /// Deltas since the last full.
    chain: usize,
    /// The newest backup in the catalog when the mark does not continue from it (after
    /// a restart): the next incremental is computed by a scan against its restored
    /// state instead of from dirty tracking.
    resume: Option<(BackupEntry, BackupEntry)>,
}

struct Inner {
    ds: DurableSpace,
    repo: Repository,
    rt: tokio::runtime::Runtime,
    cfg: BackupConfig,
    clock: Arc<dyn Clock>,
    data_dir: PathBuf,
    state: Mutex<BackupState>,
    status: Mutex<EngineStatus>,
    stop: AtomicBool,
    /// One WAL archiving pass at a time (the archiver thread and a full's checkpoint).
    archiving: Mutex<()>,
}

/// The embeddable engine (see the crate docs).
pub struct Engine {
    inner: Arc<Inner>,
    jobs: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("data_dir", &self.inner.data_dir)
            .field("destinations", &self.inner.repo.names())
            .finish_non_exhaustive()
    }
}

/// Retry delay after `fails` failures in a row: 100 ms doubling, at most `every`.
fn backoff(fails: u32, every: Duration) -> Duration {
    (Duration::from_millis(100) * 2u32.saturating_pow(fails.min(10)))
        .min(every.max(Duration::from_millis(100)))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}

/// The schema of the engine's space: recorded in `<data_dir>/space.schema` when the
/// directory is created (from the config), read back ever after, so reopening with
/// another config never misreads the WAL.
fn space_schema(
    data_dir: &Path,
    cfg: &BackupConfig,
    checkpoint: Option<SchemaVersion>,
) -> Result<SchemaVersion> {
    let path = data_dir.join("space.schema");
    let bad = |detail: String| Error::Config(format!("{}: {detail}", path.display()));
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let n: Vec<u64> = text
                .split_whitespace()
                .map(|x| x.parse().map_err(|_| bad(format!("{x:?} is not a number"))))
                .collect::<Result<_>>()?;
            let [major, minor, patch, words, addrs, features] = n[..] else {
                return Err(bad("expected 6 numbers".into()));
            };
            let narrow = |v: u64| u16::try_from(v).map_err(|_| bad(format!("{v} is too large")));
            let s = SchemaVersion {
                major: narrow(major)?,
                minor: narrow(minor)?,
                patch: narrow(patch)?,
                fingerprint_words: narrow(words)?,
                address_space: u32::try_from(addrs)
                    .map_err(|_| bad(format!("{addrs} is too large")))?,
                features,
            };
            s.validate()?;
            Ok(s)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // a restored checkpoint brings its schema; a new directory takes the config's
            let s = checkpoint.unwrap_or(
                SchemaVersion::CURRENT
                    .with_words(cfg.fingerprint_words)
                    .with_address_space(cfg.address_space),
            );
            s.validate()?;
            let text = format!(
                "{} {} {} {} {} {}\n",
                s.major, s.minor, s.patch, s.fingerprint_words, s.address_space, s.features
            );
            std::fs::write(&path, text).map_err(io(format!("writing {}", path.display())))?;
            Ok(s)
        }
        Err(e) => Err(io(format!("reading {}", path.display()))(e)),
    }
}

impl Engine {
    /// Opens (or creates) the engine in `data_dir` with the system clock.
    pub fn open(data_dir: impl AsRef<Path>, cfg: BackupConfig) -> Result<Engine> {
        Self::open_with_clock(data_dir, cfg, Arc::new(SystemClock))
    }

    /// [`Engine::open`] with an injected clock (timestamps of WAL records and backups).
    pub fn open_with_clock(
        data_dir: impl AsRef<Path>,
        cfg: BackupConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Engine> {
        let data_dir = data_dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&data_dir)
            .map_err(io(format!("creating {}", data_dir.display())))?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("bindspace-io")
            .enable_all()
            .build()
            .map_err(io("starting the I/O runtime"))?;
        let urls = if cfg.destinations.is_empty() {
            vec![format!("file://{}", data_dir.join("repo").display())]
        } else {
            cfg.destinations.clone()
        };
        let stores = rt.block_on(crate::stores::open_all(&urls))?;
        let repo = Repository::new(
            stores,
            clock.clone(),
            format!("engine pid {}", std::process::id()),
        )?
        .with_lease_hold(Duration::from_millis(cfg.lease_hold_ms));
        rt.block_on(repo.init())?;
        let checkpoint = data_dir.join("checkpoint.snap");
        let restored = match std::fs::read(&checkpoint) {
            Ok(b) => Some(snapshot::decode(&b)?.space),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io(format!("reading {}", checkpoint.display()))(e)),
        };
        let schema = space_schema(&data_dir, &cfg, restored.as_ref().map(BindSpace::schema))?;
        let base = match restored {
            Some(s) if s.schema() != schema => {
                return Err(Error::Config(format!(
                    "{} holds schema {}, the data directory records {schema}",
                    checkpoint.display(),
                    s.schema()
                )));
            }
            Some(s) => s,
            None => BindSpace::new(schema)?,
        };
        let opts = WalOptions {
            sync: cfg.sync_policy()?,
            segment_size: cfg.wal_segment_bytes,
            clock: clock.clone(),
            ..WalOptions::default()
        };
        let (ds, rec) = DurableSpace::open(data_dir.join("wal"), base, opts)?;
        tracing::info!(dir = %data_dir.display(), version = rec.last_version, "engine opened");
        let mark = ds.lock().mark();
        // The next backup may be incremental only if the last one ends where the
        // dirty tracking starts.
        let m = rt.block_on(repo.manifest())?;
        let mut points: Vec<&BackupEntry> = m
            .entries
            .iter()
            .filter(|e| e.kind != BackupKind::Wal)
            .collect();
        points.sort_by_key(|e| (e.to_version, e.end_us));
        let last = points.last().map(|e| (*e).clone());
        let last_full = points
            .iter()
            .rev()
            .find(|e| e.kind == BackupKind::Full)
            .map(|e| (*e).clone());
        let continues = last
            .as_ref()
            .is_some_and(|l| l.to_version == mark.version());
        let chain = match (&last, &last_full) {
            (Some(l), Some(_)) if continues => retention::chain_of(&m, l).len() - 1,
            _ => 0,
        };
        let inner = Arc::new(Inner {
            ds,
            repo,
            rt,
            cfg,
            clock,
            data_dir,
            state: Mutex::new(BackupState {
                mark,
                resume: match (&last, &last_full) {
                    (Some(l), Some(f)) if !continues && l.to_version < mark.version() => {
                        Some((l.clone(), f.clone()))
                    }
                    _ => None,
                },
                last: if continues { last } else { None },
                last_full: if continues { last_full } else { None },
                chain,
            }),
            status: Mutex::new(EngineStatus::default()),
            stop: AtomicBool::new(false),
            archiving: Mutex::new(()),
        });
        // Two threads: WAL archiving (the RPO) never waits behind a long full backup.
        let mut jobs = Vec::new();
        if inner.cfg.background_jobs {
            for (name, job) in [
                ("bindspace-archiver", Inner::run_archiver as fn(&Inner)),
                ("bindspace-backups", Inner::run_backups as fn(&Inner)),
            ] {
                let inner = inner.clone();
                jobs.push(
                    std::thread::Builder::new()
                        .name(name.into())
                        .spawn(move || job(&inner))
                        .map_err(io("starting the background jobs"))?,
                );
            }
        }
        Ok(Engine { inner, jobs })
    }

    /// Writes a fingerprint; returns its version once durable.
    pub fn write(&self, addr: Addr, fp: Fingerprint) -> Result<u64> {
        Ok(self.inner.ds.write(addr, fp)?)
    }

    /// Empties an address.
    pub fn delete(&self, addr: Addr) -> Result<u64> {
        Ok(self.inner.ds.delete(addr)?)
    }

    /// Several writes and deletes as one atomic batch.
    pub fn apply(&self, ops: Vec<bindspace_wal::Op>) -> Result<u64> {
        Ok(self.inner.ds.apply(ops)?)
    }

    /// Names the current version in the WAL and in every destination's catalog;
    /// `guaranteed` keeps what restoring it needs safe from retention.
    pub fn restore_point(&self, name: &str, guaranteed: bool) -> Result<u64> {
        let v = self.inner.ds.restore_point(name)?;
        self.inner
            .rt
            .block_on(self.inner.repo.create_restore_point(name, v, guaranteed))?;
        Ok(v)
    }

    /// Reads the space.
    pub fn read<R>(&self, f: impl FnOnce(&BindSpace) -> R) -> R {
        self.inner.ds.read(f)
    }

    /// The space's version.
    pub fn version(&self) -> u64 {
        self.inner.ds.read(BindSpace::version)
    }

    /// The repository the engine backs up to.
    pub fn repository(&self) -> &Repository {
        &self.inner.repo
    }

    /// A backup now (a full instead when there is no chain to extend or it is too
    /// long); `None` when nothing changed since the last one.
    pub fn backup_now(&self, kind: BackupKind) -> Result<Option<BackupEntry>> {
        self.inner.backup(kind)
    }

    /// Seals the WAL's active segment and archives every sealed one.
    pub fn archive_now(&self) -> Result<usize> {
        self.inner.archive()
    }

    /// Counters and the last failure.
    pub fn status(&self) -> EngineStatus {
        let mut s = lock(&self.inner.status).clone();
        s.version = self.version();
        s
    }

    /// Restores `target` from the destinations into a new space (the engine's own
    /// space is not touched).
    pub fn restore(&self, target: &Target) -> Result<(BindSpace, bindspace_pitr::RestorePlan)> {
        Ok(self.inner.rt.block_on(bindspace_pitr::restore_to(
            self.inner.repo.destinations(),
            target,
        ))?)
    }

    /// Stops the background jobs after a last archive of the WAL.
    pub fn close(mut self) -> Result<()> {
        self.stop_jobs();
        self.inner.archive().map(|_| ())
    }

    fn stop_jobs(&mut self) {
        self.inner.stop.store(true, Ordering::Relaxed);
        for j in self.jobs.drain(..) {
            let _ = j.join();
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.stop_jobs();
    }
}

impl Inner {
    /// WAL segments go to every destination; one counts as archived only when all hold it.
    fn archiver(&self) -> StoreArchiver {
        StoreArchiver::to_all(self.repo.destinations().to_vec(), self.rt.handle().clone())
    }

    fn run_archiver(&self) {
        let every = Duration::from_millis(self.cfg.archive_interval_ms.max(10));
        let mut next = Instant::now() + every;
        let mut fails = 0u32;
        while !self.stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(5));
            let now = Instant::now();
            if now < next {
                continue;
            }
            match self.archive() {
                Ok(_) => {
                    fails = 0;
                    next = now + every;
                }
                Err(e) => {
                    fails += 1;
                    self.failed("archive", &e, |s| s.archive_failures += 1);
                    next = now + backoff(fails, every);
                }
            }
        }
    }

    fn run_backups(&self) {
        let ms = Duration::from_millis;
        let delta_every = ms(self.cfg.delta_interval_ms.max(10));
        let full_every = ms(self.cfg.full_snapshot_interval_ms.max(10));
        let start = Instant::now();
        let (mut next_delta, mut next_full) = (start + delta_every, start + full_every);
        let mut fails = 0u32;
        while !self.stop.load(Ordering::Relaxed) {
            std::thread::sleep(ms(10));
            let now = Instant::now();
            let kind = if now >= next_full {
                BackupKind::Full
            } else if now >= next_delta {
                BackupKind::Incremental
            } else {
                continue;
            };
            match self.backup(kind) {
                Ok(written) => {
                    fails = 0;
                    next_delta = now + delta_every;
                    if kind == BackupKind::Full
                        || written.is_some_and(|e| e.kind == BackupKind::Full)
                    {
                        next_full = now + full_every;
                    }
                }
                Err(e) => {
                    fails += 1;
                    self.failed("backup", &e, |s| s.backups_failed += 1);
                    next_delta = now + backoff(fails, delta_every);
                }
            }
        }
    }

    fn failed(&self, job: &str, e: &Error, count: impl FnOnce(&mut EngineStatus)) {
        tracing::warn!(job, error = %e, "background job failed; retrying with backoff");
        let mut s = lock(&self.status);
        count(&mut s);
        s.last_error = Some(format!("{job}: {e}"));
    }

    fn archive(&self) -> Result<usize> {
        let _one = lock(&self.archiving);
        let wal = self.ds.wal();
        wal.roll()?;
        let n = wal.archive_sealed(&self.archiver())?;
        let last = wal.sealed_segments().last().map(|s| s.1).unwrap_or(0);
        let mut s = lock(&self.status);
        s.segments_archived += n as u64;
        s.last_archived_version = s.last_archived_version.max(last);
        if n > 0 {
            s.last_error = None;
        }
        Ok(n)
    }

    fn backup(&self, asked: BackupKind) -> Result<Option<BackupEntry>> {
        let mut st = lock(&self.state);
        if matches!(asked, BackupKind::Incremental | BackupKind::Differential)
            && let Some((last, full)) = st.resume.take()
        {
            // After a restart: the delta by scan against the restored state of the
            // last backup (incremental) or the last full (differential).
            let from = if asked == BackupKind::Differential {
                full.clone()
            } else {
                last.clone()
            };
            let (old, _) = self.rt.block_on(bindspace_pitr::restore_to(
                self.repo.destinations(),
                &Target::Version(from.to_version),
            ))?;
            let (copy, mark) = {
                let mut s = self.ds.lock();
                let m = s.mark();
                (s.clone(), m)
            };
            let d = bindspace_xor_delta::compute(&old, &copy, self.clock.now_us())?;
            st.mark = mark;
            let entry = self.rt.block_on(self.repo.write_backup(NewBackup {
                kind: asked,
                artifact: ArtifactId::Delta {
                    from: d.from_version,
                    to: d.to_version,
                },
                bytes: bindspace_xor_delta::encode(&d).into(),
                parent: Some(from.id.clone()),
                schema: d.schema,
            }))?;
            st.chain = retention::chain_of(&self.rt.block_on(self.repo.manifest())?, &entry)
                .len()
                .saturating_sub(1);
            st.last = Some(entry.clone());
            st.last_full = Some(full);
            let mut s = lock(&self.status);
            s.backups_ok += 1;
            s.last_backup_version = s.last_backup_version.max(d.to_version);
            return Ok(Some(entry));
        }
        let kind = match (&st.last, &st.last_full) {
            (Some(_), Some(_)) if st.chain < self.cfg.max_delta_chain => asked,
            _ => BackupKind::Full,
        };
        let now = self.clock.now_us();
        let (new_mark, backup) = match kind {
            BackupKind::Full | BackupKind::Wal => {
                // the only wait a writer sees: a memcpy of the space
                let (copy, mark) = {
                    let mut s = self.ds.lock();
                    let m = s.mark();
                    (s.clone(), m)
                };
                let schema = copy.schema();
                let bytes = Bytes::from(snapshot::encode(&copy, now));
                (
                    mark,
                    NewBackup {
                        kind: BackupKind::Full,
                        artifact: ArtifactId::Snapshot {
                            version: copy.version(),
                        },
                        bytes,
                        parent: None,
                        schema,
                    },
                )
            }
            BackupKind::Incremental | BackupKind::Differential => {
                let (delta, mark) = {
                    let mut s = self.ds.lock();
                    let d = bindspace_xor_delta::compute_dirty(&s, &st.mark, now)?;
                    if d.from_version == d.to_version {
                        return Ok(None); // nothing changed
                    }
                    (d, s.mark())
                };
                let schema = delta.schema;
                let last = st.last.clone().expect("checked above");
                let full = st.last_full.clone().expect("checked above");
                if kind == BackupKind::Incremental {
                    (
                        mark,
                        NewBackup {
                            kind,
                            artifact: ArtifactId::Delta {
                                from: delta.from_version,
                                to: delta.to_version,
                            },
                            bytes: bindspace_xor_delta::encode(&delta).into(),
                            parent: Some(last.id),
                            schema,
                        },
                    )
                } else {
                    // differential: the deltas since the last full, composed (no rescan)
                    let composed = self.compose_since_full(&last, &full, delta)?;
                    (
                        mark,
                        NewBackup {
                            kind,
                            artifact: ArtifactId::Delta {
                                from: composed.from_version,
                                to: composed.to_version,
                            },
                            bytes: bindspace_xor_delta::encode(&composed).into(),
                            parent: Some(full.id),
                            schema,
                        },
                    )
                }
            }
        };
        let kind = backup.kind;
        let version = backup.artifact.versions().1;
        // From here the dirty tracking continues from the new mark; if the write fails
        // the chain is broken and the next backup is a full.
        st.mark = new_mark;
        let entry = match self.rt.block_on(self.repo.write_backup(backup.clone())) {
            Ok(e) => e,
            Err(e) => {
                st.last = None;
                st.last_full = None;
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
        }
        st.last = Some(entry.clone());
        if kind == BackupKind::Full {
            // still under the state lock: no other backup interleaves
            self.local_checkpoint(&backup.bytes, version)?;
            self.apply_retention()?;
        }
        drop(st);
        let mut s = lock(&self.status);
        s.backups_ok += 1;
        s.last_backup_version = s.last_backup_version.max(version);
        s.last_error = None;
        Ok(Some(entry))
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
    fn local_checkpoint(&self, bytes: &[u8], version: u64) -> Result<()> {
        let path = self.data_dir.join("checkpoint.snap");
        let tmp = path.with_extension("tmp");
        let write = || -> std::io::Result<()> {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(bytes)?;
            f.sync_data()?;
            std::fs::rename(&tmp, &path)?;
            std::fs::File::open(&self.data_dir)?.sync_all()
        };
        write().map_err(io(format!("writing {}", path.display())))?;
        let _one = lock(&self.archiving);
        self.ds.wal().checkpoint(version, &self.archiver())?;
        Ok(())
    }

    fn apply_retention(&self) -> Result<()> {
        let m = self.rt.block_on(self.repo.manifest())?;
        let plan = retention::plan(&m, &self.cfg.retention, self.clock.now_us());
        let n = self.rt.block_on(self.repo.delete_backups(&plan.delete))?;
        lock(&self.status).retention_deleted += n as u64;
        Ok(())
    }
}
