//! A warm standby: a space restored once from the repository, then kept up to date by
//! applying every WAL record archived after it (`bindspace_pitr::advance`), serving
//! reads of the newest archived state; [`Standby::promote`] turns it into a writing
//! engine on a new history (timeline) that branches where the standby stood.

use std::path::Path;
use std::sync::Arc;

use bindspace_catalog::{BackupStore, TimelineId};
use bindspace_core::{BindSpace, Clock, SystemClock, snapshot};
use bindspace_pitr::{Advance, Sources, Target};

use crate::datadir::Origin;
use crate::error::io;
use crate::{Engine, EngineBuilder, Error, Result};

/// A warm standby (see the module docs).
pub struct Standby {
    sources: Sources,
    space: BindSpace,
    timeline: TimelineId,
    repository_id: Option<String>,
    rt: tokio::runtime::Runtime,
    clock: Arc<dyn Clock>,
    /// When the standby last held everything archived (µs): the start of the last
    /// catch-up that found nothing more to apply.
    caught_up_at: Option<u64>,
}

impl Standby {
    /// Restores the newest state of the newest history (or of `timeline`) from
    /// `stores`, checked against the roots recorded on the way.
    pub fn open(
        stores: Vec<Arc<dyn BackupStore>>,
        timeline: Option<TimelineId>,
    ) -> Result<Standby> {
        Standby::open_with_clock(stores, timeline, Arc::new(SystemClock))
    }

    /// [`Standby::open`] with an injected clock (the lag is measured on it).
    pub fn open_with_clock(
        stores: Vec<Arc<dyn BackupStore>>,
        timeline: Option<TimelineId>,
        clock: Arc<dyn Clock>,
    ) -> Result<Standby> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("bindspace-standby")
            .enable_all()
            .build()
            .map_err(io("starting the standby's I/O runtime"))?;
        let sources = Sources::new(stores);
        let started = clock.now_us();
        let (space, plan) = rt.block_on(async {
            let plan = bindspace_pitr::plan_on(sources.clone(), &Target::Latest, timeline).await?;
            let (space, _) = bindspace_pitr::restore_verified(&plan).await?;
            Ok::<_, bindspace_pitr::Error>((space, plan))
        })?;
        let repository_id = sources
            .stores()
            .iter()
            .find_map(|s| rt.block_on(s.read_manifest()).ok().flatten())
            .and_then(|(_, m)| m.repository_id);
        tracing::info!(
            version = space.version(),
            timeline = plan.timeline,
            "standby restored"
        );
        Ok(Standby {
            sources,
            space,
            timeline: plan.timeline,
            repository_id,
            rt,
            clock,
            caught_up_at: Some(started),
        })
    }

    /// Applies what the repository archived since the last call.
    pub fn catch_up(&mut self) -> Result<Advance> {
        let started = self.clock.now_us();
        let a = self.rt.block_on(bindspace_pitr::advance(
            &mut self.space,
            self.sources.clone(),
            self.timeline,
        ))?;
        // nothing left to apply that was archived when this call started
        self.caught_up_at = Some(started);
        Ok(a)
    }

    /// The version the standby stands at.
    pub fn version(&self) -> u64 {
        self.space.version()
    }

    /// The history it follows.
    pub fn timeline(&self) -> TimelineId {
        self.timeline
    }

    /// The time since it last held everything archived (ms); a standby whose
    /// catch-ups fail shows it growing.
    pub fn lag_ms(&self) -> Option<u64> {
        self.caught_up_at
            .map(|t| self.clock.now_us().saturating_sub(t) / 1_000)
    }

    /// Reads the standby's space (the newest archived state it applied).
    pub fn read<R>(&self, f: impl FnOnce(&BindSpace) -> R) -> R {
        f(&self.space)
    }

    /// Catches up once more, then turns the standby into a writing engine: its space
    /// becomes the checkpoint of `builder`'s data directory (which must not hold one),
    /// with where it came from, so the engine opens on a new timeline branching at the
    /// standby's version; what the old primary wrote on its own history is never
    /// mixed into it.
    pub fn promote(mut self, builder: EngineBuilder) -> Result<Engine> {
        self.catch_up()?;
        let dir = builder.data_dir().to_path_buf();
        let snap = dir.join("checkpoint.snap");
        if snap.exists() || dir.join("wal").exists() {
            return Err(Error::Config(format!(
                "{} already holds an engine's data: promote into a new directory",
                dir.display()
            )));
        }
        std::fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
        write_checkpoint(&snap, &self.space, self.clock.now_us())?;
        Origin {
            repository_id: self.repository_id.clone(),
            timeline: self.timeline,
            version: self.space.version(),
            // no root: a replayed state is certified by the roots it was checked
            // against on the way, not by its own (as `Origin::of_restore`)
            root: None,
        }
        .write(&snap)?;
        tracing::info!(
            version = self.space.version(),
            from = self.timeline,
            "standby promoted"
        );
        builder.open()
    }
}

fn write_checkpoint(path: &Path, space: &BindSpace, now_us: u64) -> Result<()> {
    bindspace_wal::fsio::write_atomic_bytes(path, &snapshot::encode(space, now_us))
        .map_err(io(format!("writing {}", path.display())))
}
