//! A repository: one or more destinations that each hold the artifacts and their own
//! copy of the catalog, written so that the catalog names a backup only after every
//! byte of it is stored everywhere.

use std::sync::Arc;

use bindspace_core::{Clock, SchemaVersion};
use bytes::Bytes;

use crate::{
    ArtifactId, ArtifactRef, BackupEntry, BackupKind, BackupStatus, BackupStore, Error,
    FIRST_TIMELINE, LAYOUT, Manifest, RestorePoint, Result, TimelineId, TimelineRecord, blake3_hex,
};

/// How long a backup writer's lease lasts before another writer may take it over.
pub const LEASE_TTL_US: u64 = 10 * 60 * 1_000_000;

/// A backup about to be written.
#[derive(Clone, Debug)]
pub struct NewBackup {
    /// Full, incremental or differential (or a WAL archive entry).
    pub kind: BackupKind,
    /// The artifact holding it.
    pub artifact: ArtifactId,
    /// Its bytes.
    pub bytes: Bytes,
    /// The backup it builds on.
    pub parent: Option<String>,
    /// The schema of the data.
    pub schema: SchemaVersion,
    /// The state root of the space it restores to (hex), when known.
    pub root: Option<String>,
}

impl NewBackup {
    /// A full backup of `space`: its native snapshot, encoded at `now_us`, at the
    /// space's version and schema. The one place a full is put together.
    pub fn full(space: &bindspace_core::BindSpace, now_us: u64) -> NewBackup {
        NewBackup {
            kind: BackupKind::Full,
            artifact: ArtifactId::snapshot(space.version()),
            bytes: Bytes::from(bindspace_core::snapshot::encode(space, now_us)),
            parent: None,
            schema: space.schema(),
            root: Some(space.state_root().root().to_string()),
        }
    }

    /// The same backup on timeline `t` (its artifact moves there).
    pub fn on(mut self, t: TimelineId) -> NewBackup {
        self.artifact = self.artifact.on(t);
        self
    }

    /// The same backup recording `root` as its end state's root.
    pub fn with_root(mut self, root: impl Into<String>) -> NewBackup {
        self.root = Some(root.into());
        self
    }

    /// An incremental (`parent`: the last backup) or differential (`parent`: the last
    /// full) holding an encoded delta `from..to`.
    pub fn delta(
        kind: BackupKind,
        from: u64,
        to: u64,
        bytes: Bytes,
        parent: String,
        schema: SchemaVersion,
    ) -> NewBackup {
        NewBackup {
            kind,
            artifact: ArtifactId::delta(from, to),
            bytes,
            parent: Some(parent),
            schema,
            root: None,
        }
    }
}

/// One repository over its destinations; the first is the primary (it holds the
/// lease). Every destination gets the artifacts and its own catalog commit, so any one
/// of them can restore alone.
#[derive(Clone)]
pub struct Repository {
    dests: Vec<Arc<dyn BackupStore>>,
    clock: Arc<dyn Clock>,
    holder: String,
    hold: std::time::Duration,
    lease_ttl_us: u64,
    /// The lease this handle works under (inside [`Repository::with_lease`]): the
    /// primary's catalog commits carry it and are refused once it is not current.
    lease: Option<Arc<std::sync::Mutex<crate::Lease>>>,
}

impl std::fmt::Debug for Repository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repository")
            .field("dests", &self.names())
            .field("holder", &self.holder)
            .finish_non_exhaustive()
    }
}

impl Repository {
    /// A repository over `dests` (at least one), timestamps from `clock`, leases held
    /// as `holder` (e.g. `host:pid`).
    pub fn new(
        dests: Vec<Arc<dyn BackupStore>>,
        clock: Arc<dyn Clock>,
        holder: impl Into<String>,
    ) -> Result<Self> {
        if dests.is_empty() {
            return Err(Error::Invalid {
                store: "repository".into(),
                detail: "a repository needs at least one destination".into(),
            });
        }
        Ok(Repository {
            dests,
            clock,
            holder: holder.into(),
            hold: std::time::Duration::ZERO,
            lease_ttl_us: LEASE_TTL_US,
            lease: None,
        })
    }

    /// The lease's time to live (default [`LEASE_TTL_US`]); a holder renews it every
    /// third of that while its work runs.
    pub fn with_lease_ttl(mut self, ttl: std::time::Duration) -> Self {
        self.lease_ttl_us = (ttl.as_micros() as u64).max(1);
        self
    }

    /// Commits `m` on `d`; on the primary under a held lease, fenced by it.
    async fn commit_on(&self, d: &Arc<dyn BackupStore>, g: u64, m: &Manifest) -> Result<u64> {
        match &self.lease {
            Some(l) if Arc::ptr_eq(d, &self.dests[0]) => {
                let lease = l.lock().unwrap_or_else(|e| e.into_inner()).clone();
                d.commit_manifest_fenced(g, m, &lease, self.clock.now_us())
                    .await
            }
            _ => d.commit_manifest(g, m).await,
        }
    }

    /// Keeps the lease this much longer after each leased piece of work (for drills and
    /// tests of writer exclusion; zero by default).
    pub fn with_lease_hold(mut self, hold: std::time::Duration) -> Self {
        self.hold = hold;
        self
    }

    /// The destinations, primary first.
    pub fn destinations(&self) -> &[Arc<dyn BackupStore>] {
        &self.dests
    }

    /// Their names.
    pub fn names(&self) -> Vec<String> {
        self.dests.iter().map(|d| d.name()).collect()
    }

    /// The primary's catalog (empty for a new repository). When its newest generation
    /// is damaged, the newest intact one, else another destination's catalog, with a
    /// warning ([`Repository::read_catalog`] says which).
    pub async fn manifest(&self) -> Result<Manifest> {
        Ok(self.read_catalog().await?.0)
    }

    /// [`Repository::manifest`], and a warning for people when the read fell back: the
    /// primary's newest catalog generation is damaged and an older generation (or
    /// another destination's catalog) was used.
    pub async fn read_catalog(&self) -> Result<(Manifest, Option<String>)> {
        let primary = &self.dests[0];
        let first_err = match crate::read_catalog(primary.as_ref()).await {
            Ok(None) => return Ok((Manifest::default(), None)),
            Ok(Some(r)) => {
                let warning = r.damage.as_ref().map(|d| {
                    format!(
                        "{}: the newest catalog generation ({}) is damaged ({d}); read generation {} instead. `bindspace verify --repair` rebuilds it",
                        primary.name(),
                        r.newest,
                        r.generation
                    )
                });
                return Ok((r.manifest, warning));
            }
            Err(e) if e.is_corruption() => e,
            Err(e) => return Err(e),
        };
        for d in &self.dests[1..] {
            if let Ok(Some(r)) = crate::read_catalog(d.as_ref()).await {
                tracing::warn!(store = %primary.name(), used = %d.name(), error = %first_err,
                    "catalog: the primary's is damaged; reading another destination's");
                let warning = format!(
                    "{}: its catalog is damaged ({first_err}); read {}'s instead. `bindspace verify --repair` rebuilds it",
                    primary.name(),
                    d.name()
                );
                return Ok((r.manifest, Some(warning)));
            }
        }
        Err(first_err)
    }

    /// Replaces destination `i`'s catalog with `m`, committed over generation
    /// `over` (its newest, damaged or not), under the lease where one is held: for a
    /// repair that rebuilt it. Fails with [`Error::Conflict`] when the store moved on.
    pub async fn replace_catalog_at(&self, i: usize, over: u64, m: &Manifest) -> Result<u64> {
        let d = self.dests.get(i).ok_or_else(|| Error::Invalid {
            store: self.names().join(", "),
            detail: format!("no destination {i}"),
        })?;
        let mut m = m.clone();
        m.layout = m.layout_needed();
        self.commit_on(d, over, &m).await
    }

    /// Creates an empty catalog on every destination that has none, and gives the
    /// repository its descriptor: the current layout and one repository id on every
    /// destination (a layout-1 repository is upgraded in place: its artifacts are
    /// timeline 1's and keep their names). A destination of another repository (a
    /// different id) is refused.
    pub async fn init(&self) -> Result<()> {
        let mut id = None;
        // an encrypted repository's newest keyring goes to every destination (one
        // added later, or one a key change did not reach), or that one alone could not
        // open what it holds
        let mut keyring: Option<String> = None;
        // compression on anywhere is on everywhere
        let mut compression: Option<String> = None;
        for d in &self.dests {
            if let Some(r) = crate::read_catalog(d.as_ref()).await? {
                if let Some(k) = &r.manifest.keyring
                    && crate::keyring_is_newer(keyring.as_deref(), k)
                {
                    keyring = Some(k.clone());
                }
                compression = compression.or(r.manifest.compression);
            }
        }
        for d in &self.dests {
            if let Some(r) = crate::read_catalog(d.as_ref()).await?
                && let Some(found) = r.manifest.repository_id
            {
                match &id {
                    None => id = Some(found),
                    Some(known) if *known != found => {
                        return Err(Error::Invalid {
                            store: d.name(),
                            detail: format!(
                                "holds repository {found}, the other destinations repository {known}: they are not one repository"
                            ),
                        });
                    }
                    Some(_) => {}
                }
            }
        }
        let id = id.unwrap_or_else(|| new_repository_id(self.clock.now_us(), &self.holder));
        for d in &self.dests {
            let mut tries = 0;
            loop {
                let read = crate::read_catalog(d.as_ref()).await?;
                let (g, mut m) = match &read {
                    None => (0, Manifest::default()),
                    Some(r) => (r.generation, r.manifest.clone()),
                };
                let stale_keyring = keyring
                    .as_deref()
                    .is_some_and(|k| crate::keyring_is_newer(m.keyring.as_deref(), k));
                let stale_compression = compression.is_some() && m.compression.is_none();
                if g > 0
                    && m.layout >= LAYOUT
                    && m.repository_id.is_some()
                    && !stale_keyring
                    && !stale_compression
                {
                    break; // nothing to write (also past a damaged newest generation)
                }
                if let Some(r) = read.as_ref().filter(|r| r.fell_back()) {
                    return Err(crate::fallback::damaged(d.as_ref(), r));
                }
                // a concurrent init may have set one since: never overwrite it
                m.repository_id.get_or_insert_with(|| id.clone());
                if stale_keyring {
                    m.keyring.clone_from(&keyring);
                }
                if stale_compression {
                    m.compression.clone_from(&compression);
                }
                m.layout = m.layout_needed();
                match self.commit_on(d, g, &m).await {
                    Ok(_) => break,
                    Err(Error::Conflict { .. }) if tries < 8 => tries += 1,
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }

    /// Records the repository's keyring (encryption, `bindspace-crypt`) in every
    /// destination's catalog, which must hold no backup yet: refused where another
    /// keyring or a backup is recorded. Layout 4 from then on.
    pub async fn set_keyring(&self, keyring: &str) -> Result<()> {
        for d in &self.dests {
            let name = d.name();
            self.update_one(d, |m| match &m.keyring {
                Some(k) if k == keyring => Ok(()),
                Some(_) => Err(Error::Invalid {
                    store: name.clone(),
                    detail: "already holds another keyring".into(),
                }),
                None if !m.entries.is_empty() => Err(Error::Invalid {
                    store: name.clone(),
                    detail: format!(
                        "already holds {} backups in plaintext: only a new repository is encrypted",
                        m.entries.len()
                    ),
                }),
                None => {
                    m.keyring = Some(keyring.to_owned());
                    Ok(())
                }
            })
            .await?;
        }
        Ok(())
    }

    /// Switches compression on (`codec`: `zstd`) in every destination's catalog:
    /// from now on artifacts are packed where it pays. Layout 5 from then on (a build
    /// that cannot unpack refuses the repository). Existing artifacts stay as they are.
    pub async fn set_compression(&self, codec: &str) -> Result<()> {
        if codec != "zstd" {
            return Err(Error::Invalid {
                store: self.names().join(", "),
                detail: format!("unknown compression {codec:?} (known: zstd)"),
            });
        }
        for d in &self.dests {
            self.update_one(d, |m| {
                m.compression = Some(codec.to_owned());
                Ok(())
            })
            .await?;
        }
        Ok(())
    }

    /// Records a changed keyring (a key slot added or removed, an epoch begun or
    /// retired, the master key replaced) in every destination's catalog. Refused where
    /// a destination holds another repository's keyring, or a revision of this one
    /// that is not older (a concurrent key change: read the keyring again and redo).
    pub async fn replace_keyring(&self, keyring: &str) -> Result<()> {
        for d in &self.dests {
            let name = d.name();
            self.update_one(d, |m| match m.keyring.as_deref() {
                Some(k) if k == keyring => Ok(()),
                None => Err(Error::Invalid {
                    store: name.clone(),
                    detail: "holds no keyring: the repository is not encrypted there".into(),
                }),
                Some(k) if !crate::keyring_is_newer(Some(k), keyring) => Err(Error::Invalid {
                    store: name.clone(),
                    detail: "holds a keyring that is newer or of another repository: another key change came first; read the keyring again".into(),
                }),
                Some(_) => {
                    m.keyring = Some(keyring.to_owned());
                    Ok(())
                }
            })
            .await?;
        }
        Ok(())
    }

    /// Makes every destination hold `source`'s descriptor before artifacts of `source`
    /// are copied in (re-seeding a flushed tier, a restore `--to` another store): its
    /// repository id and its timeline records. A destination of another repository
    /// (another id), or recording a timeline differently, is refused before anything
    /// is written.
    pub async fn adopt_descriptor(&self, source: &Manifest) -> Result<()> {
        for d in &self.dests {
            let store = d.name();
            let mut tries = 0;
            loop {
                let (g, mut m) = d.read_manifest().await?.unwrap_or((0, Manifest::default()));
                match (&m.repository_id, &source.repository_id) {
                    (Some(mine), Some(theirs)) if mine != theirs => {
                        return Err(Error::Invalid {
                            store,
                            detail: format!(
                                "holds repository {mine}, the source is repository {theirs}: not one repository"
                            ),
                        });
                    }
                    (None, Some(theirs)) => m.repository_id = Some(theirs.clone()),
                    _ => {}
                }
                // an encrypted repository's copy carries its keyring (nothing in it opens
                // without a slot's secret), or its artifacts could not be opened there
                if m.keyring.is_none() {
                    m.keyring.clone_from(&source.keyring);
                }
                if m.compression.is_none() {
                    m.compression.clone_from(&source.compression);
                }
                for t in &source.timelines {
                    match m.timeline(t.id) {
                        Some(x) if x.parent != t.parent || x.branch_version != t.branch_version => {
                            return Err(Error::Invalid {
                                store,
                                detail: format!(
                                    "records timeline {} as branched from {} at {}, the source from {} at {}",
                                    t.id, x.parent, x.branch_version, t.parent, t.branch_version
                                ),
                            });
                        }
                        Some(_) => {}
                        None => m.timelines.push(t.clone()),
                    }
                }
                m.timelines.sort_by_key(|t| t.id);
                // an expired timeline stays expired in every copy of the repository
                for e in &source.expired {
                    if m.expiry(e.id).is_none() {
                        m.expired.push(e.clone());
                    }
                }
                m.layout = m.layout_needed();
                match self.commit_on(d, g, &m).await {
                    Ok(_) => break,
                    Err(Error::Conflict { .. }) if tries < 8 => tries += 1,
                    Err(e) => return Err(e),
                }
            }
        }
        // a source without an id (layout 1) still gets one, the same everywhere
        self.init().await
    }

    /// Starts timeline `parent → new` branching at `branch_version`. The id is allocated
    /// by a conditional commit on the primary (two engines branching at once get
    /// different ids), then the same record goes to every other destination, all
    /// before the caller writes anything of the new timeline.
    pub async fn create_timeline(
        &self,
        parent: TimelineId,
        branch_version: u64,
        reason: &str,
        root: Option<String>,
    ) -> Result<TimelineRecord> {
        let now = self.clock.now_us();
        self.create_timeline_at(parent, branch_version, reason, root, now, None)
            .await
    }

    /// [`Repository::create_timeline`] with the record's creation time chosen by the
    /// caller, and a `claim` token (see [`TimelineRecord::claim`]) the caller wrote
    /// down first, to find the record again after a crash and take it up with
    /// [`Repository::take_claim`].
    pub async fn create_timeline_at(
        &self,
        parent: TimelineId,
        branch_version: u64,
        reason: &str,
        root: Option<String>,
        created_us: u64,
        claim: Option<String>,
    ) -> Result<TimelineRecord> {
        let primary = &self.dests[0];
        let mut tries = 0;
        let rec = loop {
            let (g, mut m) = primary
                .read_manifest()
                .await?
                .unwrap_or((0, Manifest::default()));
            if parent != FIRST_TIMELINE && m.timeline(parent).is_none() {
                return Err(Error::Invalid {
                    store: primary.name(),
                    detail: format!("no timeline {parent} to branch from"),
                });
            }
            m.check_live(parent)?;
            let next = m.newest_timeline() + 1;
            if next > crate::timeline::MAX_TIMELINE {
                return Err(Error::Invalid {
                    store: primary.name(),
                    detail: format!("no timeline ids left after {}", next - 1),
                });
            }
            let rec = TimelineRecord {
                id: next,
                parent,
                branch_version,
                created_us,
                reason: reason.to_owned(),
                root: root.clone(),
                claim: claim.clone(),
            };
            m.layout = m.layout_needed();
            m.timelines.push(rec.clone());
            match self.commit_on(primary, g, &m).await {
                Ok(_) => break rec,
                Err(Error::Conflict { .. }) if tries < 16 => tries += 1,
                Err(e) => return Err(e),
            }
        };
        self.replicate_timeline(&rec).await?;
        tracing::info!(
            timeline = rec.id,
            parent,
            branch_version,
            reason,
            "timeline created"
        );
        Ok(rec)
    }

    /// Takes up timeline `t` whose record carries `token` (a data directory reopening
    /// after an open interrupted before it recorded the timeline): clears the claim by
    /// a conditional commit on the primary, so of two claimants (a directory and its
    /// copy) exactly one wins; then every destination holds the record. `Ok(None)`:
    /// not this token's to take (already taken, or no such record).
    pub async fn take_claim(&self, t: TimelineId, token: &str) -> Result<Option<TimelineRecord>> {
        let primary = &self.dests[0];
        let mut tries = 0;
        let rec = loop {
            let Some((g, mut m)) = primary.read_manifest().await? else {
                return Ok(None);
            };
            let Some(r) = m.timelines.iter_mut().find(|r| r.id == t) else {
                return Ok(None);
            };
            if r.claim.as_deref() != Some(token) {
                return Ok(None);
            }
            r.claim = None;
            let rec = r.clone();
            m.layout = m.layout_needed();
            match self.commit_on(primary, g, &m).await {
                Ok(_) => break rec,
                Err(Error::Conflict { .. }) if tries < 16 => tries += 1,
                Err(e) => return Err(e),
            }
        };
        self.replicate_timeline(&rec).await?;
        Ok(Some(rec))
    }

    /// Clears the claim of timeline `t` if it is still `token` (once the data directory
    /// recorded the timeline), on every destination. Best effort for the caller.
    pub async fn release_claim(&self, t: TimelineId, token: &str) -> Result<()> {
        self.update_catalog(|m| {
            for r in m.timelines.iter_mut().filter(|r| r.id == t) {
                if r.claim.as_deref() == Some(token) {
                    r.claim = None;
                }
            }
            Ok(())
        })
        .await
    }

    /// Makes every secondary destination record `rec` (as the primary does).
    async fn replicate_timeline(&self, rec: &TimelineRecord) -> Result<()> {
        let rec = rec.clone();
        for d in &self.dests[1..] {
            let r = rec.clone();
            let store = d.name();
            self.update_one(d, |m| match m.timelines.iter_mut().find(|x| x.id == r.id) {
                Some(x) if (x.parent, x.branch_version) == (r.parent, r.branch_version) => {
                    x.claim = r.claim.clone();
                    Ok(())
                }
                Some(x) => Err(Error::Invalid {
                    store: store.clone(),
                    detail: format!(
                        "already records timeline {} as branched from {} at {}: the destinations disagree",
                        x.id, x.parent, x.branch_version
                    ),
                }),
                None => {
                    m.timelines.push(r.clone());
                    m.timelines.sort_by_key(|t| t.id);
                    Ok(())
                }
            })
            .await?;
        }
        Ok(())
    }

    /// Runs `f` holding the repository's lease; a second writer gets
    /// [`Error::BackupInProgress`] and changes nothing. The lease is renewed every third
    /// of its time to live while `f` runs, and the primary's catalog commits inside `f`
    /// are fenced by it: once another writer took it over, they fail with
    /// [`Error::LeaseLost`] and commit nothing.
    pub async fn with_lease<T>(&self, f: impl AsyncFnOnce(&Self) -> Result<T>) -> Result<T> {
        if self.lease.is_some() {
            return f(self).await; // already held by this handle
        }
        let primary = &self.dests[0];
        let ttl = self.lease_ttl_us;
        let lease = primary
            .acquire_lease(&self.holder, self.clock.now_us(), ttl)
            .await?;
        let held = Arc::new(std::sync::Mutex::new(lease));
        let leased = Repository {
            lease: Some(Arc::clone(&held)),
            ..self.clone()
        };
        let current = || held.lock().unwrap_or_else(|e| e.into_inner()).clone();
        // renews every third of the time to live (a failure a retry can cure is
        // retried sooner); a lost lease stops `f` at once
        let keepalive = async {
            let every = std::time::Duration::from_micros((ttl / 3).max(1));
            let mut wait = every;
            loop {
                tokio::time::sleep(wait).await;
                match primary
                    .renew_lease(&current(), self.clock.now_us(), ttl)
                    .await
                {
                    Ok(renewed) => {
                        *held.lock().unwrap_or_else(|e| e.into_inner()) = renewed;
                        wait = every;
                    }
                    Err(e) if e.is_retryable() => {
                        tracing::warn!(error = %e, "lease renewal failed; retrying");
                        wait = (every / 10).max(std::time::Duration::from_millis(1));
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "the backup lease was lost");
                        return e;
                    }
                }
            }
        };
        let res = tokio::select! {
            r = f(&leased) => r,
            e = keepalive => Err(e),
        };
        if !self.hold.is_zero() {
            tokio::time::sleep(self.hold).await;
        }
        let released = primary.release_lease(&current()).await;
        let out = res?;
        released?;
        Ok(out)
    }

    /// Applies `change` to every destination's catalog, retrying on a concurrent
    /// commit (optimistic concurrency: nothing is lost). Every catalog is checked first
    /// (a damaged one refuses with [`Error::CatalogDamaged`], `change` must accept each
    /// as it is), so a refusal commits nothing anywhere, rather than the change on the
    /// stores before the refusing one.
    pub async fn update_catalog(&self, change: impl Fn(&mut Manifest) -> Result<()>) -> Result<()> {
        for m in self.writable_catalogs().await? {
            change(&mut m.clone())?;
        }
        for d in &self.dests {
            self.update_one(d, &change).await?;
        }
        Ok(())
    }

    /// Every destination's catalog as a write would find it: fails with
    /// [`Error::CatalogDamaged`] (naming the repair) when one cannot take a commit, so a
    /// caller can refuse before anything becomes durable.
    pub async fn writable_catalogs(&self) -> Result<Vec<Manifest>> {
        let mut out = Vec::with_capacity(self.dests.len());
        for d in &self.dests {
            let (_, m) = crate::fallback::read_for_write(d.as_ref())
                .await?
                .unwrap_or_default();
            out.push(m);
        }
        Ok(out)
    }

    /// Applies `change` to destination `i`'s catalog alone (per-store records, such as
    /// what verification found in that store), retrying on a concurrent commit.
    pub async fn update_catalog_at(
        &self,
        i: usize,
        change: impl Fn(&mut Manifest) -> Result<()>,
    ) -> Result<()> {
        let d = self.dests.get(i).ok_or_else(|| Error::Invalid {
            store: self.names().join(", "),
            detail: format!("no destination {i}"),
        })?;
        self.update_one(d, &change).await
    }

    async fn update_one(
        &self,
        d: &Arc<dyn BackupStore>,
        change: impl Fn(&mut Manifest) -> Result<()>,
    ) -> Result<()> {
        let mut tries = 0;
        loop {
            // never commit over a damaged generation from an older one: what only the
            // damaged one named would be lost without a word
            let (g, mut m) = crate::fallback::read_for_write(d.as_ref())
                .await?
                .unwrap_or_default();
            change(&mut m)?;
            m.layout = m.layout_needed();
            match self.commit_on(d, g, &m).await {
                Ok(_) => return Ok(()),
                Err(Error::Conflict { .. }) if tries < 8 => tries += 1,
                Err(e) => return Err(e),
            }
        }
    }

    /// Writes a backup: the lease, then the artifact to every destination, then (only
    /// when all of them hold it) the catalog entry on each. Returns the entry.
    pub async fn write_backup(&self, b: NewBackup) -> Result<BackupEntry> {
        self.with_lease(async |repo| repo.write_backup_leased(b).await)
            .await
    }

    /// [`Repository::write_backup`] for a caller that already holds the lease.
    pub async fn write_backup_leased(&self, b: NewBackup) -> Result<BackupEntry> {
        let start_us = self.clock.now_us();
        // a catalog that cannot take the entry is found before anything is uploaded
        // (the artifacts would be orphans); refused too, before anything is stored: a
        // timeline retention expired (the primary's catalog, read once here)
        // (every store's: a takeover recorded in one of them fences this writer)
        let format = artifact_format(&b.bytes);
        let mut unmarked = false;
        for d in &self.dests {
            match crate::fallback::read_for_write(d.as_ref()).await? {
                Some((_, m)) => {
                    m.check_writable(b.artifact.timeline())?;
                    check_sealing(d.as_ref(), &m)?;
                    unmarked |= !m.compact_deltas;
                }
                None => unmarked = true,
            }
        }
        // Every catalog says layout 6 before a format-3 delta is stored anywhere: an
        // older build finds the repository refused at open, never a delta it cannot
        // read in the middle of a restore (its planner lists artifacts, so a delta
        // stored where the entry's commit later failed would be reached too).
        if format.is_some() && unmarked {
            self.update_catalog(|m| {
                m.compact_deltas = true;
                Ok(())
            })
            .await?;
        }
        let mut stored: Option<ArtifactRef> = None;
        for d in &self.dests {
            let r = d.put(b.artifact, b.bytes.clone()).await?;
            if let Some(s) = stored
                && s != r
            {
                return Err(Error::Corrupt {
                    store: d.name(),
                    artifact: b.artifact,
                    detail: "destinations disagree on the stored bytes".into(),
                });
            }
            stored = Some(r);
        }
        let r = stored.expect("at least one destination");
        let (from_version, to_version) = b.artifact.versions();
        let manifest = self.manifest().await?;
        let timeline = b.artifact.timeline();
        let base = match timeline {
            FIRST_TIMELINE => format!("{}-{to_version}", kind_word(b.kind)),
            t => format!("t{t}-{}-{to_version}", kind_word(b.kind)),
        };
        let mut id = base.clone();
        let mut n = 1;
        while manifest.entries.iter().any(|e| e.id == id) {
            n += 1;
            id = format!("{base}-{n}");
        }
        let entry = BackupEntry {
            id,
            kind: b.kind,
            parent: b.parent,
            from_version,
            to_version,
            start_us,
            end_us: self.clock.now_us(),
            schema: b.schema.into(),
            size: r.len,
            blake3: blake3_hex(&r.blake3),
            artifact: b.artifact,
            locations: self.names(),
            status: BackupStatus::Complete,
            timeline,
            root: b.root,
            format,
        };
        let e = entry.clone();
        let dests = self.dests.clone();
        self.update_catalog(move |m| {
            m.check_writable(e.timeline)?;
            for d in &dests {
                check_sealing(d.as_ref(), m)?;
            }
            // this build writes format-3 deltas: a catalog it backs up to says so from
            // its first full on (a delta then needs no commit of its own first)
            m.compact_deltas = true;
            if !m.entries.iter().any(|x| x.id == e.id) {
                m.entries.push(e.clone());
            }
            Ok(())
        })
        .await?;
        tracing::info!(id = %entry.id, artifact = %entry.artifact, bytes = entry.size, "backup complete");
        Ok(entry)
    }

    /// Names `version` of timeline 1; `guaranteed` pins what restoring it needs against
    /// retention. [`Repository::create_restore_point_on`] names a version of any
    /// timeline and records its root.
    pub async fn create_restore_point(
        &self,
        name: &str,
        version: u64,
        guaranteed: bool,
    ) -> Result<RestorePoint> {
        self.create_restore_point_on(name, FIRST_TIMELINE, version, guaranteed, None)
            .await
    }

    /// Names `version` of `timeline`, recording the state root there when known.
    pub async fn create_restore_point_on(
        &self,
        name: &str,
        timeline: TimelineId,
        version: u64,
        guaranteed: bool,
        root: Option<String>,
    ) -> Result<RestorePoint> {
        let rp = RestorePoint {
            name: name.to_owned(),
            version,
            created_us: self.clock.now_us(),
            guaranteed,
            timeline,
            root,
        };
        let p = rp.clone();
        let store = self.dests[0].name();
        self.update_catalog(move |m| {
            m.check_writable(p.timeline)?;
            if m.restore_points.iter().any(|x| x.name == p.name) {
                return Err(Error::Invalid {
                    store: store.clone(),
                    detail: format!("restore point {:?} exists", p.name),
                });
            }
            m.restore_points.push(p.clone());
            Ok(())
        })
        .await?;
        Ok(rp)
    }

    /// Removes a restore point; `Ok(false)` if there was none of that name.
    pub async fn drop_restore_point(&self, name: &str) -> Result<bool> {
        let found = self
            .manifest()
            .await?
            .restore_points
            .iter()
            .any(|p| p.name == name);
        self.update_catalog(|m| {
            m.restore_points.retain(|p| p.name != name);
            Ok(())
        })
        .await?;
        Ok(found)
    }

    /// Marks a backup verified (read back and checked).
    pub async fn mark_verified(&self, id: &str) -> Result<()> {
        self.update_catalog(|m| {
            for e in m.entries.iter_mut().filter(|e| e.id == id) {
                e.status = BackupStatus::Verified;
            }
            Ok(())
        })
        .await
    }

    /// Applies a retention policy under the backup lease, to each destination's own
    /// catalog: the plan is made inside the conditional commit (a branch, a guaranteed
    /// point or a backup committed meanwhile makes it plan again on what is there), the
    /// timelines it expires are recorded in the same commit, and only then go the
    /// artifacts no entry of that catalog still references, and the archived WAL it no
    /// longer needs ([`crate::retention::WalNeeds`]: what precedes the oldest full of
    /// each live history, and expired timelines' that no live history uses; without
    /// this the archive grew forever). Returns the first
    /// destination's plan and the entries removed, summed over destinations.
    pub async fn apply_retention(
        &self,
        policy: &crate::RetentionPolicy,
        now_us: u64,
    ) -> Result<(crate::retention::RetentionPlan, usize)> {
        use tracing::Instrument as _;
        self.with_lease(async |repo| repo.apply_retention_leased(policy, now_us).await)
            .instrument(tracing::info_span!("catalog.retention", now_us))
            .await
    }

    async fn apply_retention_leased(
        &self,
        policy: &crate::RetentionPolicy,
        now_us: u64,
    ) -> Result<(crate::retention::RetentionPlan, usize)> {
        use crate::retention::{Evidence, RetentionPlan};
        let mut evidence = Evidence {
            wal_activity_us: if policy.expire_abandoned_after_us.is_some() {
                self.wal_activity().await?
            } else {
                Default::default()
            },
            expire: None,
            timelines: Vec::new(),
        };
        let mut first: Option<RetentionPlan> = None;
        let mut removed = std::collections::BTreeSet::new();
        for d in &self.dests {
            type Committed = (RetentionPlan, Vec<BackupEntry>, Manifest);
            let committed: std::sync::Mutex<Option<Committed>> = std::sync::Mutex::new(None);
            self.update_one(d, |m| {
                // a destination missing a timeline the primary records (a crash between
                // their commits) takes it first: its branch point must pin here too
                for t in &evidence.timelines {
                    if m.timeline(t.id).is_none() {
                        m.timelines.push(t.clone());
                    }
                }
                m.timelines.sort_by_key(|t| t.id);
                let plan = crate::retention::plan_with(m, policy, now_us, &evidence);
                let doomed: Vec<BackupEntry> = m
                    .entries
                    .iter()
                    .filter(|e| plan.delete.contains(&e.id))
                    .cloned()
                    .collect();
                m.entries.retain(|e| !plan.delete.contains(&e.id));
                m.expired.extend(plan.expire.iter().cloned());
                *committed.lock().unwrap_or_else(|e| e.into_inner()) =
                    Some((plan, doomed, m.clone()));
                Ok(())
            })
            .await?;
            let (plan, doomed, kept) = committed
                .into_inner()
                .unwrap_or_else(|e| e.into_inner())
                .expect("a commit ran the change");
            // the primary decides which timelines expire; every other destination
            // expires the same ones
            if evidence.expire.is_none() {
                evidence.expire = Some(kept.expired.clone());
                evidence.timelines = kept.timelines.clone();
            }
            for e in &doomed {
                // another entry may share the artifact (a re-run): keep it then
                if !kept.entries.iter().any(|k| k.artifact == e.artifact) {
                    d.delete(e.artifact).await?;
                }
            }
            self.sweep_wal(d, &kept, &doomed).await?;
            if !plan.expire.is_empty() {
                tracing::warn!(store = %d.name(), expired = ?plan.expire.iter().map(|e| e.id).collect::<Vec<_>>(), "retention expired abandoned timelines");
            }
            removed.extend(doomed.into_iter().map(|e| e.id));
            first.get_or_insert(plan);
        }
        Ok((first.unwrap_or_default(), removed.len()))
    }

    /// Deletes from `d` the archived WAL that catalog `kept` no longer needs
    /// ([`crate::retention::WalNeeds`]): below the oldest full of each live history, and
    /// an expired timeline's that no live history uses. Nothing when the catalog cannot
    /// tell: timelines that do not form one tree, or WAL of a timeline it does not
    /// record. Returns how many segments went.
    async fn sweep_wal(
        &self,
        d: &Arc<dyn BackupStore>,
        kept: &Manifest,
        removed: &[BackupEntry],
    ) -> Result<usize> {
        let needs = match crate::retention::WalNeeds::of(kept, removed) {
            Ok(n) => n,
            Err(why) => {
                tracing::warn!(store = %d.name(), why, "archived WAL kept: the timelines are inconsistent");
                return Ok(0);
            }
        };
        let ids = kept.timeline_ids();
        let segments = d.list(crate::ArtifactKind::WalSegment, 0, u64::MAX).await?;
        if let Some(r) = segments.iter().find(|r| !ids.contains(&r.id.timeline())) {
            tracing::warn!(store = %d.name(), segment = %r.id, "archived WAL kept: the store holds WAL of a timeline its catalog does not record");
            return Ok(0);
        }
        let mut n = 0;
        for r in segments.iter().filter(|r| !needs.needs(&r.id)) {
            d.delete(r.id).await?;
            n += 1;
        }
        if n > 0 {
            tracing::info!(store = %d.name(), segments = n, "retention removed archived WAL no kept backup needs");
        }
        Ok(n)
    }

    /// The newest archived WAL record's time of each timeline, from the primary
    /// destination (one segment read per timeline): evidence that a timeline is being
    /// written even when its backups fail.
    pub async fn wal_activity(&self) -> Result<std::collections::BTreeMap<TimelineId, u64>> {
        let d = &self.dests[0];
        let mut newest: std::collections::BTreeMap<TimelineId, ArtifactRef> = Default::default();
        for r in d.list(crate::ArtifactKind::WalSegment, 0, u64::MAX).await? {
            let t = r.id.timeline();
            if newest
                .get(&t)
                .is_none_or(|n| n.id.versions().1 < r.id.versions().1)
            {
                newest.insert(t, r);
            }
        }
        let mut out = std::collections::BTreeMap::new();
        for (t, r) in newest {
            // what cannot be read counts as active now: never expire on missing evidence
            let mut last = u64::MAX;
            match d.get(&r).await {
                Ok(bytes) if bindspace_wal::segment::decode_header(&bytes).is_ok() => {
                    let mut newest_record = None;
                    bindspace_wal::segment::scan(&bytes, r.id.versions().0, |rec| {
                        newest_record = Some(rec.timestamp_us);
                    });
                    if let Some(ts) = newest_record {
                        last = ts;
                    }
                }
                Ok(_) => {
                    tracing::warn!(segment = %r.id, "WAL segment unreadable: its timeline counts as active")
                }
                Err(e) => {
                    tracing::warn!(segment = %r.id, error = %e, "WAL segment unreadable: its timeline counts as active")
                }
            }
            out.insert(t, last);
        }
        Ok(out)
    }

    /// Deletes backups by id: catalog first (so nothing names a missing artifact),
    /// then their artifacts on every destination.
    pub async fn delete_backups(&self, ids: &[String]) -> Result<usize> {
        if ids.is_empty() {
            return Ok(0);
        }
        let doomed: Vec<BackupEntry> = self
            .manifest()
            .await?
            .entries
            .into_iter()
            .filter(|e| ids.contains(&e.id))
            .collect();
        self.update_catalog(|m| {
            m.entries.retain(|e| !ids.contains(&e.id));
            Ok(())
        })
        .await?;
        let kept = self.manifest().await?;
        for e in &doomed {
            // another entry may share the artifact (a re-run): keep it then
            if kept.entries.iter().any(|k| k.artifact == e.artifact) {
                continue;
            }
            for d in &self.dests {
                d.delete(e.artifact).await?;
            }
        }
        Ok(doomed.len())
    }
}

/// A repository id: 16 hex digits from the time, the writer and the process, unique
/// enough to tell two repositories apart (it is never a security boundary).
/// Refuses plaintext into an encrypted repository: `d` does not seal while `m` (its
/// catalog) holds a keyring (the repository was encrypted after this writer opened it).
pub(crate) fn check_sealing(d: &dyn BackupStore, m: &Manifest) -> Result<()> {
    if m.keyring.is_some() && !d.seals() {
        return Err(Error::Invalid {
            store: d.name(),
            detail: "the repository is encrypted (its catalog holds a keyring) but this writer opened it without its keys: refusing to store plaintext; reopen with the passphrase".into(),
        });
    }
    Ok(())
}

fn new_repository_id(now_us: u64, holder: &str) -> String {
    let mut h = blake3::Hasher::new();
    h.update(&now_us.to_le_bytes());
    h.update(holder.as_bytes());
    h.update(&std::process::id().to_le_bytes());
    let addr = &h as *const _ as usize;
    h.update(&addr.to_le_bytes());
    h.finalize().to_hex()[..16].to_owned()
}

fn kind_word(k: BackupKind) -> &'static str {
    match k {
        BackupKind::Full => "full",
        BackupKind::Incremental => "incr",
        BackupKind::Differential => "diff",
        BackupKind::Wal => "wal",
    }
}

/// The format of an artifact a build reading only older repository layouts could not
/// decode (a format-3 delta), so the catalog entry says so and the layout is raised
/// ([`Manifest::layout_needed`]); `None` for every other artifact.
fn artifact_format(bytes: &[u8]) -> Option<u16> {
    let h = bindspace_core::ArtifactHeader::decode(bytes).ok()?;
    (h.kind == bindspace_core::ArtifactKind::Delta
        && h.format >= bindspace_core::header::FORMAT_COMPACT_DELTA)
        .then_some(h.format)
}
