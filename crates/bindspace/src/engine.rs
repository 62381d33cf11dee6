//! The engine: a durable space, its repository, and the background jobs that protect
//! it. Opening goes through [`EngineBuilder`] (data directory, config, clock,
//! destinations as URLs or as stores); the backup kinds live in `backup.rs`, the data
//! directory in `datadir.rs`, the schedule in `schedule.rs` and `jobs.rs`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bindspace_catalog::{
    BackupEntry, BackupKind, BackupStore, FIRST_TIMELINE, Repository, StoreArchiver, TimelineId,
    retention,
};
use bindspace_core::{Addr, BindSpace, Clock, Fingerprint, SystemClock};
use bindspace_pitr::Target;
use bindspace_wal::{DurableSpace, WalOptions};

use crate::backup::BackupState;
use crate::datadir::DataDir;
use crate::error::io;
use crate::jobs::Jobs;
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
    /// Background verifies run (`verify_interval_ms`).
    pub verify_runs: u64,
    /// Background verifies that found damage (or a store they could not check).
    pub verify_damage_found: u64,
    /// The last background verify of each level: level name, when it finished (µs)
    /// and its outcome (`clean`, `damage found: …`).
    pub last_verify: std::collections::BTreeMap<String, (u64, String)>,
    /// Each replica's lag (ms): the time since it last held everything the primary
    /// destination did (`None`: not caught up since the engine opened). A replica that
    /// is down shows it growing.
    pub replica_lag_ms: std::collections::BTreeMap<String, Option<u64>>,
    /// Replication runs that failed or left a replica behind (each retried).
    pub replication_failures: u64,
    /// When each kind of backup last landed in each store: (kind name, store name) →
    /// the backup's end time (µs).
    pub last_backup_us: std::collections::BTreeMap<(String, String), u64>,
    /// Backup attempts that failed, by the store the error named (`all` when it named
    /// none).
    pub backup_failures_by_store: std::collections::BTreeMap<String, u64>,
    /// Bytes of backup artifacts written to each store (WAL segments not counted).
    pub backup_bytes_by_store: std::collections::BTreeMap<String, u64>,
    /// When the last archive pass that succeeded started (µs): every write
    /// acknowledged before it is in the WAL archive of every destination.
    pub archived_through_us: Option<u64>,
    /// The last drill run through [`Engine::drill`]: when it finished (µs), the worst
    /// RTO and RPO of its runs (ms) and whether it passed.
    pub last_drill: Option<DrillSummary>,
}

/// The last drill, in [`EngineStatus`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DrillSummary {
    /// When it finished (µs since the epoch).
    pub finished_us: u64,
    /// The worst RTO of its runs (ms).
    pub rto_ms: u64,
    /// The worst RPO of its runs (ms), when one was measured.
    pub rpo_ms: Option<u64>,
    /// Whether every run met its targets.
    pub passed: bool,
}

impl EngineStatus {
    /// How far the WAL archive is behind at `now_us` (µs): 0 when it holds every
    /// acknowledged write, else the time since the last archive pass that succeeded
    /// started (an upper bound on the age of the oldest write not yet archived), or
    /// `None` when no pass succeeded since the engine opened.
    pub fn archive_lag_us(&self, now_us: u64) -> Option<u64> {
        if self.version <= self.last_archived_version {
            return Some(0);
        }
        self.archived_through_us.map(|t| now_us.saturating_sub(t))
    }
}

/// What the engine and its job threads share.
pub(crate) struct Inner {
    pub ds: DurableSpace,
    pub repo: Repository,
    pub rt: tokio::runtime::Runtime,
    pub cfg: BackupConfig,
    pub clock: Arc<dyn Clock>,
    pub dir: DataDir,
    /// The history this engine writes.
    pub timeline: TimelineId,
    pub state: Mutex<BackupState>,
    pub status: Mutex<EngineStatus>,
    /// One WAL archiving pass at a time (the archiver thread and a full's checkpoint).
    pub archiving: Mutex<()>,
    /// Why the engine is fenced, once a promoted standby took its history over.
    pub fenced: Mutex<Option<String>>,
    /// The replications of the repository (from the primary destination), one per
    /// replica, each remembering what it found so its runs list only what is new.
    pub replicas: Vec<Mutex<bindspace_dr::Follower>>,
    /// Each replica's lag tracker, by name (the status computes the lag at call time,
    /// so a run that stalls shows it growing).
    pub replica_lags: Mutex<std::collections::BTreeMap<String, bindspace_dr::Lag>>,
}

/// The embeddable engine (see the crate docs).
pub struct Engine {
    inner: Arc<Inner>,
    jobs: Jobs,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("data_dir", &self.inner.dir.path())
            .field("destinations", &self.inner.repo.names())
            .finish_non_exhaustive()
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A destination given to the builder.
enum Destination {
    Url(String),
    Store(Arc<dyn BackupStore>),
}

/// Opens an [`Engine`]: `Engine::builder(dir).config(cfg).clock(clock).open()`.
/// Destinations given here (URLs or stores, in priority order) replace the config's;
/// with none at all, the engine backs up to `<dir>/repo`.
pub struct EngineBuilder {
    dir: PathBuf,
    cfg: Option<BackupConfig>,
    clock: Arc<dyn Clock>,
    destinations: Vec<Destination>,
    replicas: Vec<Arc<dyn BackupStore>>,
    fs: Arc<dyn bindspace_wal::fsio::Fs>,
    secret: Option<bindspace_crypt::SlotSecret>,
}

impl EngineBuilder {
    /// The data directory it opens.
    pub fn data_dir(&self) -> &Path {
        &self.dir
    }

    /// Adds a replica that is already open (besides `BackupConfig::replicas`' URLs):
    /// a store the repository is copied to in the background.
    pub fn replica(mut self, store: Arc<dyn BackupStore>) -> Self {
        self.replicas.push(store);
        self
    }

    /// The file system the data directory (the WAL, the checkpoint, the schema and
    /// timeline files) lives on (default: the real one). The power-loss tests give a
    /// simulated disk.
    pub fn fs(mut self, fs: Arc<dyn bindspace_wal::fsio::Fs>) -> Self {
        self.fs = fs;
        self
    }

    /// The configuration (default: [`BackupConfig::default`]).
    pub fn config(mut self, cfg: BackupConfig) -> Self {
        self.cfg = Some(cfg);
        self
    }

    /// The clock that times WAL records, backups and the background schedule
    /// (default: the system clock).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Adds a destination by URL (`file://`, `s3://`, `redis://`, `postgresql://`…).
    pub fn store_url(mut self, url: impl Into<String>) -> Self {
        self.destinations.push(Destination::Url(url.into()));
        self
    }

    /// The passphrase or key file of an encrypted repository (default: from the
    /// environment, [`crate::keys::secret_from_env`]). An encrypted repository opened
    /// without one refuses to open the engine: it would have to write plaintext.
    pub fn secret(mut self, secret: bindspace_crypt::SlotSecret) -> Self {
        self.secret = Some(secret);
        self
    }

    /// Adds a destination that is already open (any [`BackupStore`]: a test's fault
    /// injector, a store with custom options), used as it is: open it on the
    /// engine's space ([`crate::stores::Connection::space`]) yourself.
    pub fn store(mut self, store: Arc<dyn BackupStore>) -> Self {
        self.destinations.push(Destination::Store(store));
        self
    }

    /// Opens (or creates) the engine.
    pub fn open(self) -> Result<Engine> {
        let cfg = self.cfg.unwrap_or_default();
        let space = cfg.space_name()?;
        let dir = DataDir::create_on(self.fs.clone(), &self.dir)?;
        dir.bind_space(&space)?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("bindspace-io")
            .enable_all()
            .build()
            .map_err(io("starting the I/O runtime"))?;
        let mut destinations = self.destinations;
        if destinations.is_empty() {
            destinations = cfg
                .destinations
                .iter()
                .cloned()
                .map(Destination::Url)
                .collect();
        }
        if destinations.is_empty() {
            destinations.push(Destination::Url(dir.default_repo_url()));
        }
        let mut stores = Vec::with_capacity(destinations.len());
        for d in destinations {
            stores.push(match d {
                Destination::Store(s) => s,
                Destination::Url(u) => rt.block_on(crate::stores::open_in(
                    &u,
                    &space,
                    std::time::Duration::from_millis(cfg.store_timeout_ms.max(1)),
                ))?,
            });
        }
        // an encrypted repository: everything the engine puts is sealed; without the
        // secret it does not open (it could only write plaintext or nothing)
        let secret = match self.secret {
            Some(s) => Some(s),
            None => crate::keys::secret_from_env()?,
        };
        if secret.is_none() && rt.block_on(crate::keys::keyring_of(&stores))?.is_some() {
            return Err(Error::Config(bindspace_catalog::LOCKED.into()));
        }
        let stores = rt.block_on(crate::keys::unlock(stores, secret.as_ref()))?;
        let mut replicas = Vec::with_capacity(cfg.replicas.len());
        for u in &cfg.replicas {
            replicas.push(rt.block_on(crate::stores::open_in(
                u,
                &space,
                std::time::Duration::from_millis(cfg.store_timeout_ms.max(1)),
            ))?);
        }
        replicas.extend(self.replicas);
        let mut replica_lags = std::collections::BTreeMap::new();
        for store in &replicas {
            if stores.iter().any(|d| d.name() == store.name()) {
                return Err(Error::Config(format!(
                    "replica {} is also a destination: a replica is a copy of the repository, not one of its stores",
                    store.name()
                )));
            }
            replica_lags.insert(store.name(), bindspace_dr::Lag::default());
        }
        let replicas: Vec<_> = replicas
            .into_iter()
            .map(|to| {
                Mutex::new(bindspace_dr::Follower::new(
                    stores[0].clone(),
                    to,
                    bindspace_dr::ReplicateOptions::default(),
                ))
            })
            .collect();
        let repo = Repository::new(
            stores,
            self.clock.clone(),
            format!("engine pid {}", std::process::id()),
        )?
        .with_lease_hold(Duration::from_millis(cfg.lease_hold_ms));
        rt.block_on(repo.init())?;
        let base = dir.base_space(&cfg)?;
        cfg.retention_policy()?; // checked before anything is opened
        cfg.verify_level()?;
        let opts = WalOptions {
            sync: cfg.sync_policy()?,
            verify_checkpoints: cfg.verify_wal_checkpoints,
            segment_size: cfg.wal_segment_bytes,
            clock: self.clock.clone(),
            fs: self.fs.clone(),
            ..WalOptions::default()
        };
        let base_version = base.version();
        // the root tree is built now, before writers wait on it (a delta or restore
        // point takes the root under the writers' lock; the WAL replay below keeps it
        // current address by address); a checkpoint about to start a timeline from its
        // origin is checked against the root the origin recorded
        let root_now = base.state_root();
        let base_root =
            (dir.timeline()?.is_none() && dir.checkpoint_origin()?.is_some()).then_some(root_now);
        let (ds, rec) = DurableSpace::open(dir.wal(), base, opts)?;
        let timeline = settle_timeline(
            &dir,
            &rt,
            &repo,
            (base_version, base_root),
            rec.last_version,
            self.clock.now_us(),
        )?;
        tracing::info!(dir = %dir.path().display(), version = rec.last_version, timeline, "engine opened");
        // a log opened past a checkpoint mismatch (verification off) is not the state
        // the backups recorded: the chain starts again with a full
        let state = if rec.checkpoint_mismatches.is_empty() {
            resume_state(&ds, &rt, &repo, timeline)?
        } else {
            tracing::warn!(mismatches = ?rec.checkpoint_mismatches, "WAL checkpoints did not match: the next backup is a full");
            BackupState {
                mark: ds.lock().mark(),
                resume: None,
                last: None,
                last_full: None,
                chain: 0,
            }
        };
        let inner = Arc::new(Inner {
            ds,
            repo,
            rt,
            cfg,
            clock: self.clock,
            dir,
            timeline,
            state: Mutex::new(state),
            status: Mutex::new(EngineStatus::default()),
            archiving: Mutex::new(()),
            fenced: Mutex::new(None),
            replicas,
            replica_lags: Mutex::new(replica_lags),
        });
        let jobs = if inner.cfg.background_jobs {
            Jobs::start(&inner)?
        } else {
            Jobs::none()
        };
        Ok(Engine { inner, jobs })
    }
}

/// Which timeline the data directory writes (see `docs/OPERATIONS.md`, "Timelines"):
/// the one it recorded; else a new timeline when the directory starts from a restored
/// state (a checkpoint with an origin, or one below what the repository already
/// holds); else timeline 1. A new timeline is recorded in every destination's catalog
/// before the directory records it, and both before anything of it is written.
fn settle_timeline(
    dir: &DataDir,
    rt: &tokio::runtime::Runtime,
    repo: &Repository,
    (base_version, base_root): (u64, Option<bindspace_core::StateRoot>),
    recovered: u64,
    now_us: u64,
) -> Result<TimelineId> {
    let m = rt.block_on(repo.manifest())?;
    // an open interrupted between the catalog's record and the `timeline` file left
    // `timeline.pending`: the record carrying its token is this directory's to take
    // up (by a conditional commit, below), if nothing was written on it since
    let pending = match dir.timeline()? {
        None => dir.pending_timeline()?,
        Some(_) => None,
    };
    let claimed = pending.as_ref().and_then(|p| {
        m.timelines.iter().find(|r| {
            r.claim.as_deref() == Some(p.token.as_str())
                && (r.parent, r.branch_version, r.created_us, r.reason.as_str())
                    == (p.parent, p.branch_version, p.created_us, p.reason.as_str())
                && m.expiry(r.id).is_none()
                && !m.entries.iter().any(|e| e.timeline == r.id)
        })
    });
    let cuts = dir.unsettled_cuts()?;
    let mut after_cut = None;
    if let Some(t) = dir.timeline()? {
        // a timeline retention expired, or a promoted standby took over, takes nothing
        // more (see `docs/OPERATIONS.md`); a takeover recorded in any store's catalog
        // counts (a promotion may have reached only the stores that survived)
        m.check_writable(t)?;
        for d in repo.destinations() {
            if let Ok(Some(r)) = rt.block_on(bindspace_catalog::read_catalog(d.as_ref())) {
                r.manifest.check_writable(t)?;
            }
        }
        if t != FIRST_TIMELINE && m.timeline(t).is_none() {
            return Err(Error::Config(format!(
                "{} writes timeline {t}, which the repository {} does not record: is this the repository it was created with?",
                dir.path().display(),
                repo.names().join(", ")
            )));
        }
        if cuts.is_empty() {
            return Ok(t);
        }
        // the WAL cut a tail that may hold acknowledged versions: going on under this
        // history would give those versions new contents, so a new one starts where
        // the log now ends (the cut is kept; see `docs/OPERATIONS.md`)
        tracing::warn!(timeline = t, at = recovered, cuts = ?cuts, "the WAL cut a tail that may hold acknowledged writes: starting a new timeline");
        after_cut = Some((t, recovered));
    }
    // what the repository holds: backups, archived WAL, branch points (not the one
    // this directory may be taking up)
    let archived = rt
        .block_on(repo.destinations()[0].list(
            bindspace_catalog::ArtifactKind::WalSegment,
            0,
            u64::MAX,
        ))?
        .into_iter()
        .map(|r| r.id.versions().1)
        .max();
    let held = m
        .entries
        .iter()
        .map(|e| e.to_version)
        .chain(archived)
        .chain(
            m.timelines
                .iter()
                .filter(|t| Some(t.id) != claimed.map(|c| c.id))
                .map(|t| t.branch_version),
        )
        .max();
    let branch = match (after_cut, dir.checkpoint_origin()?) {
        (Some((t, at)), _) => Some((
            t,
            at,
            "the WAL cut a tail that may hold acknowledged versions",
            None,
        )),
        (None, Some(o)) => {
            if o.version != base_version {
                return Err(Error::Config(format!(
                    "the checkpoint is at version {base_version}, its origin file says version {}",
                    o.version
                )));
            }
            if let (Some(mine), Some(theirs)) = (&m.repository_id, &o.repository_id)
                && mine != theirs
            {
                return Err(Error::Config(format!(
                    "the checkpoint was restored from repository {theirs}, the engine's repository is {mine}: its history is not this repository's"
                )));
            }
            if let (Some(recorded), Some(actual)) = (&o.root, &base_root)
                && bindspace_core::Digest::from_hex(recorded) != Some(actual.root())
            {
                return Err(Error::Config(format!(
                    "the checkpoint's state root is {}, its origin file recorded {recorded}: it is not the state that was restored",
                    actual.root()
                )));
            }
            Some((
                o.timeline,
                base_version,
                "engine opened a restored checkpoint",
                o.root,
            ))
        }
        // no origin and several histories: which one the state belongs to cannot be
        // told (a guess could graft it onto another history), so the operator says
        (None, None)
            if m.timelines
                .iter()
                .any(|r| Some(r.id) != claimed.map(|c| c.id)) =>
        {
            return Err(Error::Config(format!(
                "{} has no `timeline` file and its checkpoint no origin, and the repository holds {} timelines: restore with `bindspace restore --out` (it writes the origin), or write `timeline <n>` into {} if this directory is timeline n's own writer",
                dir.path().display(),
                m.timeline_ids().len(),
                dir.path().join("timeline").display()
            )));
        }
        // no origin, one history: a state (checkpoint plus local WAL) below what the
        // repository holds cannot continue it; one at or past it continues timeline 1
        // (a data directory of layout 1 whose WAL reaches its newest backup, a new one)
        (None, None) if held.is_some_and(|h| recovered < h) => Some((
            // the one history (the record this directory may be taking up aside)
            m.timelines
                .iter()
                .filter(|t| Some(t.id) != claimed.map(|c| c.id))
                .map(|t| t.id)
                .max()
                .unwrap_or(FIRST_TIMELINE),
            base_version,
            "engine opened a checkpoint below what the repository holds, without an origin",
            None,
        )),
        (None, None) => None,
    };
    let t = match branch {
        None => FIRST_TIMELINE,
        Some((parent, at, reason, root)) => {
            // the branch this directory asked for before an interruption, if it is
            // still its own (a copy of the directory may have taken it up first)
            let taken = match claimed.zip(pending.as_ref()) {
                Some((r, p)) if (r.parent, r.branch_version) == (parent, at) => {
                    rt.block_on(repo.take_claim(r.id, &p.token))?
                }
                _ => None,
            };
            if let Some(rec) = taken {
                tracing::warn!(
                    timeline = rec.id,
                    "taking up the timeline an interrupted open recorded in the catalog"
                );
                dir.set_timeline(rec.id)?;
                dir.clear_pending_timeline()?;
                dir.settle_cuts(&cuts, rec.id)?;
                return Ok(rec.id);
            }
            // written down first: a crash before `timeline` is written finds it again
            let token = format!("{now_us:x}-{:x}", std::process::id());
            dir.set_pending_timeline(&crate::PendingTimeline {
                parent,
                branch_version: at,
                created_us: now_us,
                reason: reason.to_owned(),
                token: token.clone(),
            })?;
            let rec = rt.block_on(repo.create_timeline_at(
                parent,
                at,
                reason,
                root,
                now_us,
                Some(token.clone()),
            ))?;
            // the creator takes its own claim, by the same conditional commit a reopen
            // would: a copy of this directory that got there first keeps the timeline,
            // and this one stops (a reopen branches anew; at worst a crash right here
            // leaves an unused timeline, never two writers on one)
            if rt.block_on(repo.take_claim(rec.id, &token))?.is_none() {
                return Err(Error::Config(format!(
                    "timeline {} was taken up by a copy of {} while it was being created: reopen to branch anew",
                    rec.id,
                    dir.path().display()
                )));
            }
            dir.set_timeline(rec.id)?;
            dir.clear_pending_timeline()?;
            tracing::warn!(
                timeline = rec.id,
                parent,
                at,
                reason,
                "starting a new timeline"
            );
            rec.id
        }
    };
    dir.set_timeline(t)?;
    dir.clear_pending_timeline()?;
    // (a cut on a directory's first open: no history yet that it could contradict)
    dir.settle_cuts(&cuts, t)?;
    Ok(t)
}

/// Where the backup chain stands after opening: the next backup may be incremental
/// only if the last one of this timeline ends where the dirty tracking starts; after a
/// restart past it, the next delta is computed by a scan from the newest backup.
fn resume_state(
    ds: &DurableSpace,
    rt: &tokio::runtime::Runtime,
    repo: &Repository,
    timeline: TimelineId,
) -> Result<BackupState> {
    let m = rt.block_on(repo.manifest())?;
    let mut points: Vec<&BackupEntry> = m
        .entries
        .iter()
        .filter(|e| e.kind != BackupKind::Wal && e.timeline == timeline)
        .collect();
    points.sort_by_key(|e| (e.to_version, e.end_us));
    let last = points.last().map(|e| (*e).clone());
    let mark = {
        let mut s = ds.lock();
        match &last {
            // the last backup, then only the WAL checkpoint it logged: the state is the
            // backup's, and dirty tracking continues from it
            Some(l) if l.to_version + 1 == s.version() && ds.last_checkpoint() == s.version() => {
                s.mark_unchanged_since(l.to_version)
            }
            _ => s.mark(),
        }
    };
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
    Ok(BackupState {
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
    })
}

impl Engine {
    /// A builder for an engine in `data_dir`.
    pub fn builder(data_dir: impl AsRef<Path>) -> EngineBuilder {
        EngineBuilder {
            dir: data_dir.as_ref().to_path_buf(),
            cfg: None,
            clock: Arc::new(SystemClock),
            destinations: Vec::new(),
            replicas: Vec::new(),
            fs: bindspace_wal::fsio::RealFs::shared(),
            secret: None,
        }
    }

    /// Opens (or creates) the engine in `data_dir` with the system clock.
    pub fn open(data_dir: impl AsRef<Path>, cfg: BackupConfig) -> Result<Engine> {
        Self::builder(data_dir).config(cfg).open()
    }

    /// [`Engine::open`] with an injected clock (timestamps of WAL records and backups,
    /// and the background schedule).
    pub fn open_with_clock(
        data_dir: impl AsRef<Path>,
        cfg: BackupConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Engine> {
        Self::builder(data_dir).config(cfg).clock(clock).open()
    }

    /// Writes a fingerprint; returns its version once durable. Refused once the engine
    /// is fenced (a standby was promoted over its history).
    pub fn write(&self, addr: Addr, fp: Fingerprint) -> Result<u64> {
        self.inner.check_fenced()?;
        Ok(self.inner.ds.write(addr, fp)?)
    }

    /// Empties an address.
    pub fn delete(&self, addr: Addr) -> Result<u64> {
        self.inner.check_fenced()?;
        Ok(self.inner.ds.delete(addr)?)
    }

    /// Several writes and deletes as one atomic batch.
    pub fn apply(&self, ops: Vec<bindspace_wal::Op>) -> Result<u64> {
        self.inner.check_fenced()?;
        Ok(self.inner.ds.apply(ops)?)
    }

    /// Names the current version in the WAL and in every destination's catalog;
    /// `guaranteed` keeps what restoring it needs safe from retention.
    pub fn restore_point(&self, name: &str, guaranteed: bool) -> Result<u64> {
        // validated before it becomes durable: a taken name, an expired timeline or a
        // catalog that cannot take the record (damaged) is refused before the WAL
        // record takes a version
        // (every store's catalog: a name or an expiry one of them alone records would
        // refuse the commit after the WAL record)
        self.inner.check_fenced()?;
        for m in self
            .inner
            .rt
            .block_on(self.inner.repo.writable_catalogs())?
        {
            if let Err(e) = m.check_writable(self.inner.timeline) {
                if e.kind() == bindspace_core::ErrorKind::Fenced {
                    self.inner.fence(&e);
                }
                return Err(e.into());
            }
            if m.restore_points.iter().any(|p| p.name == name) {
                return Err(bindspace_catalog::Error::Invalid {
                    store: self.inner.repo.names().join(", "),
                    detail: format!("restore point {name:?} exists"),
                }
                .into());
            }
        }
        let m = self.inner.rt.block_on(self.inner.repo.manifest())?;
        // a point needs a full at or below it on this timeline's history: the first
        // point before any full takes one first (it used to be acknowledged and never
        // restorable)
        let history =
            bindspace_catalog::History::of(&m, self.inner.timeline).map_err(Error::Config)?;
        let now = self.version();
        let has_base = m.entries.iter().any(|e| {
            e.kind == BackupKind::Full && e.to_version <= now && history.uses(&e.artifact)
        });
        if !has_base && self.backup_now(BackupKind::Full)?.is_none() {
            return Err(Error::Config(format!(
                "restore point {name:?}: no full backup at or below version {now} on timeline {} and none could be taken",
                self.inner.timeline
            )));
        }
        let (v, root) = self.inner.ds.restore_point_rooted(name)?;
        self.inner
            .rt
            .block_on(self.inner.repo.create_restore_point_on(
                name,
                self.inner.timeline,
                v,
                guaranteed,
                Some(root.root().to_string()),
            ))?;
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

    /// The engine's I/O runtime (for crate-internal blocking calls).
    pub(crate) fn inner_runtime(&self) -> &tokio::runtime::Runtime {
        &self.inner.rt
    }

    /// The engine's counters (for crate-internal updates).
    pub(crate) fn inner_status(&self) -> &Mutex<EngineStatus> {
        &self.inner.status
    }

    /// A handle on the engine's I/O runtime, for an embedding server (the HTTP API
    /// serves on it). Engine methods block on this runtime: call them from
    /// `spawn_blocking`, never from a task running on it.
    pub fn runtime_handle(&self) -> tokio::runtime::Handle {
        self.inner.rt.handle().clone()
    }

    /// Why the engine takes no writes, if it does not: fenced (a promoted standby took
    /// its history over) or its WAL failed (a failed sync poisons it until a restart).
    pub fn unwritable(&self) -> Option<String> {
        if let Some(why) = lock(&self.inner.fenced).clone() {
            return Some(format!("fenced: {why}"));
        }
        self.inner
            .ds
            .wal()
            .poisoned()
            .map(|why| format!("the WAL failed: {why}"))
    }

    /// The engine's configuration.
    pub fn config(&self) -> &BackupConfig {
        &self.inner.cfg
    }

    /// The engine's data directory.
    pub fn data_dir(&self) -> &Path {
        self.inner.dir.path()
    }

    /// The engine's clock (the one its WAL records and schedule follow).
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// The timeline this engine writes.
    pub fn timeline(&self) -> TimelineId {
        self.inner.timeline
    }

    /// The repository the engine backs up to.
    pub fn repository(&self) -> &Repository {
        &self.inner.repo
    }

    /// Verifies the repository now at the configured level and time budget (what the
    /// background job does every `verify_interval_ms`, there paced to its read rate;
    /// here at full speed), recorded in [`Engine::status`]; damage is in the report,
    /// not an error.
    pub fn verify_now(&self) -> Result<bindspace_dr::Report> {
        let budget = std::time::Duration::from_millis(self.inner.cfg.verify_max_duration_ms);
        self.inner.verify(
            self.inner.cfg.verify_level()?,
            Some(budget.as_micros() as u64),
            &mut |_| true,
        )
    }

    /// [`Engine::verify_now`] at `level` within `budget` (none: until everything due is
    /// read), recorded in [`Engine::status`] like the background verifies.
    pub fn verify_at(
        &self,
        level: bindspace_dr::VerifyLevel,
        budget: Option<std::time::Duration>,
    ) -> Result<bindspace_dr::Report> {
        self.inner
            .verify(level, budget.map(|b| b.as_micros() as u64), &mut |_| true)
    }

    /// A backup now (a full instead when there is no chain to extend or it is too
    /// long); `None` when nothing changed since the last one.
    /// A failure counts in [`EngineStatus::backups_failed`], as the background job's do.
    pub fn backup_now(&self, kind: BackupKind) -> Result<Option<BackupEntry>> {
        self.inner.backup(kind).inspect_err(|e| {
            let mut s = lock(&self.inner.status);
            s.backups_failed += 1;
            s.last_error = Some(format!("backup: {e}"));
        })
    }

    /// Applies the configured retention policy now (what follows every full), under
    /// the repository's lease; what it deletes counts in
    /// [`EngineStatus::retention_deleted`]. Returns the plan and the entries removed.
    pub fn retention_now(&self) -> Result<(bindspace_catalog::retention::RetentionPlan, usize)> {
        self.inner.retention()
    }

    /// Seals the WAL's active segment and archives every sealed one.
    pub fn archive_now(&self) -> Result<usize> {
        self.inner.archive()
    }

    /// Brings every replica (`BackupConfig::replicas`) up to the primary destination
    /// now (what the background job does every `replicate_interval_ms`); the lags are
    /// in [`Engine::status`]. One report per replica, or why its run failed.
    pub fn replicate_now(&self) -> Vec<Result<bindspace_dr::ReplicationReport>> {
        self.inner.replicate(&mut || true)
    }

    /// Wakes the background jobs and waits until each has run what its schedule says
    /// is due at the clock's time now (up to 8 jobs back to back per thread), for a
    /// manual clock that was just moved on; with the system clock the jobs wake by
    /// themselves. Returns at once when background jobs are off. Do not call it from
    /// inside [`Engine::read`]: the jobs need the space.
    pub fn tick(&self) {
        self.jobs.tick();
    }

    /// Counters and the last failure.
    pub fn status(&self) -> EngineStatus {
        let mut s = lock(&self.inner.status).clone();
        s.version = self.version();
        let now = self.inner.clock.now_us();
        s.replica_lag_ms = lock(&self.inner.replica_lags)
            .iter()
            .map(|(name, lag)| (name.clone(), lag.ms(now)))
            .collect();
        s
    }

    /// Restores `target` on the engine's own timeline (a restore point: on its own)
    /// from the destinations into a new space (the engine's own space is not touched).
    /// Every recorded root on the way is checked; [`Engine::restore_verified`] also
    /// says whether the result itself was verified.
    pub fn restore(&self, target: &Target) -> Result<(BindSpace, bindspace_pitr::RestorePlan)> {
        self.restore_verified(target).map(|(s, p, _)| (s, p))
    }

    /// [`Engine::restore`], with what the restore proved about its result.
    pub fn restore_verified(
        &self,
        target: &Target,
    ) -> Result<(
        BindSpace,
        bindspace_pitr::RestorePlan,
        bindspace_pitr::Verification,
    )> {
        let t = match target {
            Target::RestorePoint(_) => None,
            _ => Some(self.inner.timeline),
        };
        let dests = self.inner.repo.destinations();
        Ok(self.inner.rt.block_on(async {
            let plan = bindspace_pitr::plan_on(dests, target, t).await?;
            let (space, v) = bindspace_pitr::restore_verified(&plan).await?;
            Ok::<_, bindspace_pitr::Error>((space, plan, v))
        })?)
    }

    /// Stops the background jobs after a last archive of the WAL.
    pub fn close(mut self) -> Result<()> {
        self.jobs.stop();
        self.inner.archive().map(|_| ())
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.jobs.stop();
    }
}

impl Inner {
    /// WAL segments go to every destination; one counts as archived only when all hold it.
    pub(crate) fn archiver(&self) -> StoreArchiver {
        StoreArchiver::to_all(self.repo.destinations().to_vec(), self.rt.handle().clone())
            .on_timeline(self.timeline)
    }

    /// Refuses once the engine is fenced.
    pub(crate) fn check_fenced(&self) -> Result<()> {
        match &*lock(&self.fenced) {
            Some(why) => Err(Error::Fenced(why.clone())),
            None => Ok(()),
        }
    }

    /// After a refusal because a promoted standby took this timeline over: the engine
    /// is fenced from now on (every write refused, said why).
    pub(crate) fn fence(&self, why: &dyn std::fmt::Display) {
        tracing::error!(error = %why, "fenced: a promoted standby took this history over");
        lock(&self.fenced).get_or_insert_with(|| why.to_string());
    }

    /// Seals the active segment and archives every sealed one.
    pub(crate) fn archive(&self) -> Result<usize> {
        let _one = lock(&self.archiving);
        let started_us = self.clock.now_us();
        let wal = self.ds.wal();
        // a log that cannot roll (poisoned) still archives what is sealed: those
        // segments hold acknowledged writes
        let rolled = wal.roll();
        // what is archived is at least what was sealed before this pass (a segment the
        // writers seal meanwhile may or may not be in it: it is not counted)
        let last = wal.sealed_segments().last().map(|s| s.1).unwrap_or(0);
        let n = match wal.archive_sealed(&self.archiver()) {
            Ok(n) => n,
            Err(bindspace_wal::Error::Archive { source, .. })
                if matches!(
                    source.downcast_ref::<bindspace_catalog::Error>(),
                    Some(bindspace_catalog::Error::TimelineSuperseded { .. })
                ) =>
            {
                // a store's catalog records the takeover (the archiver checks each)
                self.fence(&source);
                self.check_fenced()?;
                return Err(Error::Fenced(source.to_string()));
            }
            Err(e) => return Err(e.into()),
        };
        rolled?;
        let mut s = lock(&self.status);
        s.segments_archived += n as u64;
        s.last_archived_version = s.last_archived_version.max(last);
        s.archived_through_us = Some(started_us);
        if n > 0 {
            s.last_error = None;
        }
        Ok(n)
    }

    /// One bounded verification of the repository at the configured level within
    /// `budget_us`, paced by `pace` (see `bindspace_dr::verify_paced`), recorded in the
    /// status (the background job; [`Engine::verify_now`]).
    pub(crate) fn verify(
        &self,
        level: bindspace_dr::VerifyLevel,
        budget_us: Option<u64>,
        pace: &mut dyn FnMut(u64) -> bool,
    ) -> Result<bindspace_dr::Report> {
        let opts = bindspace_dr::VerifyOptions {
            level,
            max_duration: budget_us.map(std::time::Duration::from_micros),
            // what it finds is reported; repairs are an operator's decision
            repair: false,
            seed: self.clock.now_us(),
            ..bindspace_dr::VerifyOptions::default()
        };
        let report = self.rt.block_on(bindspace_dr::verify_paced(
            &self.repo,
            self.clock.as_ref(),
            &opts,
            pace,
        ))?;
        let outcome = match report.outcome() {
            bindspace_dr::Outcome::Clean => "clean".to_owned(),
            _ => {
                tracing::error!(report = %report, "background verify found damage");
                format!("damage found: {}", report.to_string().replace('\n', "; "))
            }
        };
        let mut s = lock(&self.status);
        s.verify_runs += 1;
        if outcome != "clean" {
            s.verify_damage_found += 1;
        }
        s.last_verify
            .insert(opts.level.to_string(), (report.finished_us, outcome));
        Ok(report)
    }

    /// One replication run into each replica, from the primary destination; the lags
    /// and failures go to the status.
    pub(crate) fn replicate(
        &self,
        go: &mut dyn FnMut() -> bool,
    ) -> Vec<Result<bindspace_dr::ReplicationReport>> {
        let mut out = Vec::with_capacity(self.replicas.len());
        for follower in &self.replicas {
            if !go() {
                break; // the engine is closing
            }
            // only the follower is locked while copying: the status reads the lag
            // meanwhile (a `replicate_now` beside the job waits for its run)
            let mut follower = lock(follower);
            let to = follower.target().clone();
            let res = self.rt.block_on(follower.run(self.clock.as_ref(), go));
            let mut s = lock(&self.status);
            match &res {
                Ok(r) => {
                    if let Some(lag) = lock(&self.replica_lags).get_mut(&to.name()) {
                        lag.record(r);
                    }
                    let stopped = r
                        .failed
                        .iter()
                        .any(|f| f.detail.contains("the run was stopped"));
                    if !r.caught_up && !stopped {
                        s.replication_failures += 1;
                        tracing::warn!(replica = %to.name(), report = %r, "replica left behind");
                    }
                }
                Err(e) => {
                    s.replication_failures += 1;
                    s.last_error = Some(format!("replicate to {}: {e}", to.name()));
                    tracing::warn!(replica = %to.name(), error = %e, "replication failed; retrying");
                }
            }
            out.push(res.map_err(Error::from));
        }
        out
    }

    /// A background job failed: counted, reported in the status, retried by its
    /// schedule.
    pub(crate) fn failed(&self, job: &str, e: &Error, count: impl FnOnce(&mut EngineStatus)) {
        tracing::warn!(job, error = %e, kind = %e.kind(), "background job failed; retrying with backoff");
        let mut s = lock(&self.status);
        count(&mut s);
        s.last_error = Some(format!("{job}: {e}"));
    }
}
