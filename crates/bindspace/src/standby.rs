//! A warm standby: a space restored once from the repository, then kept up to date by
//! applying every WAL record archived after it (`bindspace_pitr::advance`), serving
//! reads of the newest archived state; [`Standby::promote`] turns it into a writing
//! engine on a new history (timeline) that branches where the standby stood.

use std::path::Path;
use std::sync::Arc;

use bindspace_catalog::{BackupStore, TimelineId};
use bindspace_core::{BindSpace, Clock, SystemClock, snapshot};
use bindspace_pitr::{Advance, Sources, Target};
use bindspace_wal::fsio::Fs;

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
    /// catch-up that read every store and found nothing archived beyond what it applied.
    caught_up_at: Option<u64>,
    /// Why the space can no longer be served: a catch-up failed after applying part of
    /// what it read (a record whose state did not check, a batch cut short).
    broken: Option<String>,
    /// Where the next catch-up lists the WAL from (`None`: it lists everything).
    since: Option<u64>,
    /// Catch-ups since the last one that listed everything.
    since_full: u32,
    /// When it was opened (µs): a history that branches from the followed one after
    /// this is where the primary may have moved.
    opened_us: u64,
    /// Such a history, described, once a catch-up saw one.
    moved: Option<String>,
}

/// The file in a promotion's directory-to-be that holds its fence record's time.
const FENCE_TOKEN: &str = "promotion.fence";

/// A catch-up lists everything the stores hold once in this many (the others list
/// only the followed history's WAL from where the last one stood).
const FULL_LISTING_EVERY: u32 = 16;

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
            broken: None,
            since: None,
            since_full: 0,
            opened_us: started,
            moved: None,
        })
    }

    /// Applies what the repository archived since the last call. An error that
    /// struck after part of it was applied leaves the standby broken: it refuses to
    /// serve or promote that state (reopen it).
    pub fn catch_up(&mut self) -> Result<Advance> {
        if let Some(why) = &self.broken {
            return Err(Error::Config(format!(
                "the standby is broken: {why}; reopen it"
            )));
        }
        let started = self.clock.now_us();
        let before = self.space.version();
        if self.since_full >= FULL_LISTING_EVERY {
            self.since = None;
        }
        let res = self.rt.block_on(bindspace_pitr::advance_since(
            &mut self.space,
            self.sources.clone(),
            self.timeline,
            self.since,
        ));
        match res {
            Ok(mut a) => {
                self.since_full = if self.since.is_none() {
                    0
                } else {
                    self.since_full + 1
                };
                self.since = a.next_since;
                // a history branched from this one since it opened: the primary may
                // write there now (a rewind, a restart past a WAL cut); this standby
                // does not follow it, so it is not caught up and is not promoted
                if let Some(t) = a.branched.iter().find(|t| t.created_us > self.opened_us) {
                    let why = format!(
                        "timeline {} branched from the followed timeline {} at version {} ({}) after this standby opened: the primary may write there now; reopen the standby (it follows the newest history)",
                        t.id, self.timeline, t.branch_version, t.reason
                    );
                    if self.moved.is_none() {
                        tracing::warn!(%why, "the followed history has a newer branch");
                    }
                    self.moved = Some(why);
                    a.complete = false;
                    return Ok(a);
                }
                // everything archived when this call started is applied (every store
                // read, no gap): the lag restarts from then
                if a.complete {
                    self.caught_up_at = Some(started);
                }
                Ok(a)
            }
            Err(e) => {
                self.since = None;
                if self.space.version() != before {
                    self.broken = Some(format!(
                        "a catch-up failed at version {} after applying from {before}: {e}",
                        self.space.version()
                    ));
                }
                Err(e.into())
            }
        }
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

    /// Reads the standby's space (the newest archived state it applied); refused once
    /// it is broken.
    pub fn read<R>(&self, f: impl FnOnce(&BindSpace) -> R) -> Result<R> {
        match &self.broken {
            Some(why) => Err(Error::Config(format!(
                "the standby is broken: {why}; reopen it"
            ))),
            None => Ok(f(&self.space)),
        }
    }

    /// Catches up once more, then turns the standby into a writing engine: its space
    /// becomes the checkpoint of `builder`'s data directory (which must be absent or
    /// empty), with where it came from and its state root, so the engine opens on a new
    /// timeline branching at the standby's version; what the old primary wrote on its
    /// own history is never mixed into it. The directory appears whole or not at all
    /// (built beside it, then renamed). The old primary is fenced: the catalog records
    /// its timeline as taken over, so its next archive or backup is refused and every
    /// write after that fails with `Fenced` (promote on failover; a rehearsal is a
    /// restore drill). The fence comes first, then a catch-up listing everything, so
    /// what the old primary archived up to the fence is in the promoted state. A
    /// promotion into the same directory that failed after fencing (a store down for
    /// that catch-up) resumes under its own fence record; any other promotion of the
    /// history is refused.
    pub fn promote(mut self, builder: EngineBuilder) -> Result<Engine> {
        // what the repository holds now (the catch-up after the fence below lists
        // everything again)
        self.catch_up()?;
        if let Some(why) = &self.moved {
            return Err(Error::Config(format!("not promoted: {why}")));
        }
        let dir = builder.data_dir().to_path_buf();
        // None: absent; Some(false): an empty directory
        let occupied = std::fs::read_dir(&dir).ok().map(|mut d| d.next().is_some());
        if occupied == Some(true) {
            return Err(Error::Config(format!(
                "{} is not empty: promote into a new directory",
                dir.display()
            )));
        }
        let old = self.timeline;
        // built beside the directory; it holds this promotion's fence token first, so
        // a promotion into this directory that fenced the old writer and then failed
        // (a store down for the catch-up, a crash) resumes under its own record
        let mut tmp = dir.as_os_str().to_owned();
        tmp.push(".promoting");
        let tmp = std::path::PathBuf::from(tmp);
        let token = tmp.join(FENCE_TOKEN);
        let resumed = std::fs::read_to_string(&token)
            .ok()
            .and_then(|t| t.trim().parse::<u64>().ok());
        let at_us = match resumed {
            Some(t) => t,
            None => {
                let _ = std::fs::remove_dir_all(&tmp); // a promotion that never fenced
                std::fs::create_dir_all(&tmp).map_err(io(format!("creating {}", tmp.display())))?;
                let t = self.clock.now_us();
                bindspace_wal::fsio::write_atomic_bytes(&token, t.to_string().as_bytes())
                    .map_err(io(format!("writing {}", token.display())))?;
                t
            }
        };
        // the old writer is fenced first, in every store's catalog, so that whatever
        // happens below there are never two writers; a history already taken over is
        // not promoted over again (two promotions would be two writers)
        let repo = bindspace_catalog::Repository::new(
            self.sources.stores().to_vec(),
            self.clock.clone(),
            "standby promotion",
        )?;
        self.rt.block_on(repo.update_catalog(|m| {
            match m.supersession(old) {
                // this promotion's own record (a store that aliases another, a commit
                // retried after its answer was lost, a promotion resumed)
                Some(x) if x.at_us == at_us && x.by.is_none() => return Ok(()),
                Some(x) => {
                    return Err(bindspace_catalog::Error::TimelineSuperseded {
                        timeline: old,
                        by: x.by,
                        at_us: x.at_us,
                    });
                }
                None => {}
            }
            m.superseded.push(bindspace_catalog::Superseded {
                id: old,
                by: None,
                at_us,
            });
            Ok(())
        }))?;
        // fenced: the old writer archives nothing more, so what it archived before
        // the fence (while the catch-up above ran) is taken now, listing everything
        self.since = None;
        self.catch_up()?;
        let snap = tmp.join("checkpoint.snap");
        write_checkpoint(&snap, &self.space, self.clock.now_us())?;
        Origin {
            repository_id: self.repository_id.clone(),
            timeline: self.timeline,
            version: self.space.version(),
            // the branch point's root: a restore of the new history checks the base
            // it rebuilds against it
            root: Some(self.space.state_root().root().to_string()),
        }
        .write(&snap)?;
        if occupied.is_some() {
            std::fs::remove_dir(&dir).map_err(io(format!("replacing {}", dir.display())))?;
        }
        std::fs::rename(&tmp, &dir).map_err(io(format!("renaming {}", tmp.display())))?;
        bindspace_wal::fsio::RealFs
            .sync_dir(bindspace_wal::fsio::parent_of(&dir))
            .map_err(io(format!("syncing {}", dir.display())))?;
        let _ = std::fs::remove_file(dir.join(FENCE_TOKEN));
        let engine = builder.open()?;
        // the takeover names the history that took over (best effort: the old writer is
        // fenced either way)
        let new = engine.timeline();
        if let Err(e) = self.rt.block_on(engine.repository().update_catalog(|m| {
            for x in m
                .superseded
                .iter_mut()
                .filter(|x| x.id == old && x.by.is_none())
            {
                x.by = Some(new);
            }
            Ok(())
        })) {
            tracing::warn!(error = %e, "the takeover record does not name the new timeline yet");
        }
        tracing::info!(
            version = self.space.version(),
            from = old,
            timeline = new,
            "standby promoted; the old primary is fenced"
        );
        Ok(engine)
    }
}

impl Standby {
    /// A planned switchover: closes `primary` cleanly (its WAL archived to the end),
    /// catches up to its last version, checks that the standby holds exactly the
    /// primary's final state (nothing lost), then promotes (the old primary's history
    /// is fenced). Refused, with the primary closed and nothing promoted, when the
    /// standby cannot reach that state.
    pub fn switchover(mut self, primary: Engine, builder: EngineBuilder) -> Result<Engine> {
        let (last, digest) = (primary.version(), primary.read(|s| s.digest()));
        primary.close()?;
        self.since = None;
        self.catch_up()?;
        if self.space.version() != last || self.space.digest() != digest {
            return Err(Error::Config(format!(
                "switchover refused: the primary stopped at version {last}, the standby reached version {} with {}: nothing was promoted",
                self.space.version(),
                if self.space.digest() == digest {
                    "the same state"
                } else {
                    "another state"
                }
            )));
        }
        self.promote(builder)
    }
}

fn write_checkpoint(path: &Path, space: &BindSpace, now_us: u64) -> Result<()> {
    bindspace_wal::fsio::write_atomic_bytes(path, &snapshot::encode(space, now_us))
        .map_err(io(format!("writing {}", path.display())))
}
