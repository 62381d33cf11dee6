//! The engine's data directory: `wal/` (the log), `space.schema` (the schema, fixed
//! when the directory is created), `checkpoint.snap` (the space at the last full, so a
//! restart replays only the WAL after it), `checkpoint.snap.origin` (where a restored
//! checkpoint came from, written by `bindspace restore --out`), `timeline` (the
//! history this directory writes, fixed when the engine first opens it), `space` (the
//! repository space it writes, fixed on first open), and `repo/` (the default
//! destination).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bindspace_core::{BindSpace, SchemaVersion, snapshot};
use bindspace_wal::fsio::{Fs, RealFs, write_atomic_on};

use crate::error::io;
use crate::{BackupConfig, Error, Result};

/// A data directory (see the module docs). Every file operation goes through `fs`
/// (the real file system, or a simulated disk in the power-loss tests).
#[derive(Clone)]
pub(crate) struct DataDir {
    path: PathBuf,
    fs: Arc<dyn Fs>,
}

impl std::fmt::Debug for DataDir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataDir").field("path", &self.path).finish()
    }
}

/// `fs.read`, `None` when the file is not there.
fn read_opt(fs: &dyn Fs, path: &Path) -> Result<Option<Vec<u8>>> {
    match fs.read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(format!("reading {}", path.display()))(e)),
    }
}

/// Writes `bytes` to `path` durably (temp file, fsync, rename, directory fsync).
fn write_durably(fs: &dyn Fs, path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_on(fs, path, bytes).map_err(io(format!("writing {}", path.display())))
}

impl DataDir {
    /// Opens `path` on the real file system, creating it if needed.
    pub fn create(path: &Path) -> Result<DataDir> {
        DataDir::create_on(RealFs::shared(), path)
    }

    /// Opens `path` on `fs`, creating it if needed.
    pub fn create_on(fs: Arc<dyn Fs>, path: &Path) -> Result<DataDir> {
        bindspace_wal::fsio::create_dir_all_durable(fs.as_ref(), path)
            .map_err(io(format!("creating {}", path.display())))?;
        Ok(DataDir {
            path: path.to_path_buf(),
            fs,
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The WAL's directory.
    pub fn wal(&self) -> PathBuf {
        self.path.join("wal")
    }

    /// The destination used when the configuration names none.
    pub fn default_repo_url(&self) -> String {
        format!("file://{}", self.path.join("repo").display())
    }

    fn checkpoint_path(&self) -> PathBuf {
        self.path.join("checkpoint.snap")
    }

    /// The space at the last full, if a checkpoint was written (or put there by an
    /// operator after a restore).
    pub fn read_checkpoint(&self) -> Result<Option<BindSpace>> {
        match read_opt(self.fs.as_ref(), &self.checkpoint_path())? {
            Some(b) => Ok(Some(snapshot::decode(&b)?.space)),
            None => Ok(None),
        }
    }

    /// The timeline this directory writes, once the engine has settled it.
    pub fn timeline(&self) -> Result<Option<u32>> {
        let path = self.path.join("timeline");
        match read_opt(self.fs.as_ref(), &path)? {
            Some(bytes) => {
                let text = String::from_utf8_lossy(&bytes);
                let t = text
                    .trim()
                    .strip_prefix("timeline ")
                    .and_then(|t| t.parse::<u32>().ok())
                    .filter(|&t| t >= 1)
                    .ok_or_else(|| {
                        Error::Config(format!(
                            "{}: expected `timeline <n>`, found {:?}",
                            path.display(),
                            text.trim()
                        ))
                    })?;
                Ok(Some(t))
            }
            None => Ok(None),
        }
    }

    /// Records the timeline this directory writes, durably.
    pub fn set_timeline(&self, t: u32) -> Result<()> {
        let path = self.path.join("timeline");
        write_durably(
            self.fs.as_ref(),
            &path,
            format!("timeline {t}\n").as_bytes(),
        )
    }

    /// Binds this directory to the repository space it writes: the file `space`
    /// (`space <name>`), written on first open. A directory that already writes
    /// another space (by its file, or by its `timeline` file when it has no `space`
    /// file: it was written before spaces, into `default`) is refused: its history
    /// belongs to that space's catalog.
    pub fn bind_space(&self, space: &bindspace_catalog::SpaceName) -> Result<()> {
        let path = self.path.join("space");
        let file = read_opt(self.fs.as_ref(), &path)?;
        let has_file = file.is_some();
        let bound = match file {
            Some(bytes) => {
                let text = String::from_utf8_lossy(&bytes);
                let name = text.trim().strip_prefix("space ").ok_or_else(|| {
                    Error::Config(format!(
                        "{}: expected `space <name>`, found {:?}",
                        path.display(),
                        text.trim()
                    ))
                })?;
                Some(name.to_owned())
            }
            None if self.timeline()?.is_some() => {
                Some(bindspace_catalog::SpaceName::DEFAULT.to_owned())
            }
            None => None,
        };
        match bound {
            Some(b) if b == space.as_str() => {
                if !has_file {
                    write_durably(self.fs.as_ref(), &path, format!("space {b}\n").as_bytes())?;
                }
                Ok(())
            }
            Some(b) => Err(Error::Config(format!(
                "{} writes the space {b:?} of its repository, not {space:?}: a data directory keeps one space's history (open it with space = \"{b}\", or restore that space into a new directory)",
                self.path.display()
            ))),
            None => write_durably(
                self.fs.as_ref(),
                &path,
                format!("space {space}\n").as_bytes(),
            ),
        }
    }

    /// The branch this directory was starting when it stopped, if it stopped between
    /// recording the timeline in the catalog and in `timeline` (a crash): reopening
    /// takes that timeline instead of leaving it orphaned (or refusing, with no
    /// origin and now several timelines).
    pub fn pending_timeline(&self) -> Result<Option<PendingTimeline>> {
        read_json(self.fs.as_ref(), &self.path.join("timeline.pending"))
    }

    /// Records, durably, the branch about to be made (before the catalog records it).
    pub fn set_pending_timeline(&self, p: &PendingTimeline) -> Result<()> {
        write_json(self.fs.as_ref(), &self.path.join("timeline.pending"), p)
    }

    /// Forgets the pending branch (once `timeline` records it).
    pub fn clear_pending_timeline(&self) -> Result<()> {
        let path = self.path.join("timeline.pending");
        match self.fs.remove_file(&path) {
            Ok(()) => self
                .fs
                .sync_dir(&self.path)
                .map_err(io(format!("syncing {}", self.path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io(format!("removing {}", path.display()))(e)),
        }
    }

    /// Tails the WAL cut that may hold acknowledged versions (`wal/cut-*.bin`) and no
    /// new timeline has settled yet: the engine branches before writing on.
    pub fn unsettled_cuts(&self) -> Result<Vec<PathBuf>> {
        let wal = self.wal();
        let mut out = Vec::new();
        let entries = match self.fs.read_dir(&wal) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(io(format!("listing {}", wal.display()))(e)),
        };
        for p in entries {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.starts_with("cut-") && name.ends_with(".bin") {
                out.push(p);
            }
        }
        out.sort();
        Ok(out)
    }

    /// Marks cut tails as settled by the branch to `timeline`: renamed
    /// `settled-t<timeline>-cut-*.bin`, kept.
    pub fn settle_cuts(&self, cuts: &[PathBuf], timeline: u32) -> Result<()> {
        for c in cuts {
            let name = c.file_name().and_then(|n| n.to_str()).unwrap_or("cut.bin");
            let to = c.with_file_name(format!("settled-t{timeline}-{name}"));
            match self.fs.rename(c, &to) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io(format!("renaming {}", c.display()))(e)),
            }
        }
        if !cuts.is_empty() {
            self.fs
                .sync_dir(&self.wal())
                .map_err(io(format!("syncing {}", self.wal().display())))?;
        }
        Ok(())
    }

    /// Where the checkpoint came from, if it was restored by `bindspace restore --out`.
    pub fn checkpoint_origin(&self) -> Result<Option<Origin>> {
        read_json(self.fs.as_ref(), &Origin::path_of(&self.checkpoint_path()))
    }

    /// Replaces the checkpoint with `bytes` (an encoded snapshot), durably.
    pub fn write_checkpoint(&self, bytes: &[u8]) -> Result<()> {
        write_durably(self.fs.as_ref(), &self.checkpoint_path(), bytes)
    }

    /// The schema of the engine's space: recorded in `space.schema` when the directory
    /// is created (from a restored checkpoint's schema, else the config's), read back
    /// ever after, so reopening with another config never misreads the WAL.
    pub fn schema(
        &self,
        cfg: &BackupConfig,
        checkpoint: Option<SchemaVersion>,
    ) -> Result<SchemaVersion> {
        let path = self.path.join("space.schema");
        let bad = |detail: String| Error::Config(format!("{}: {detail}", path.display()));
        match read_opt(self.fs.as_ref(), &path)? {
            Some(bytes) => {
                let text = String::from_utf8_lossy(&bytes);
                let n: Vec<u64> = text
                    .split_whitespace()
                    .map(|x| x.parse().map_err(|_| bad(format!("{x:?} is not a number"))))
                    .collect::<Result<_>>()?;
                let [major, minor, patch, words, addrs, features] = n[..] else {
                    return Err(bad("expected 6 numbers".into()));
                };
                let narrow =
                    |v: u64| u16::try_from(v).map_err(|_| bad(format!("{v} is too large")));
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
            None => {
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
                write_durably(self.fs.as_ref(), &path, text.as_bytes())?;
                Ok(s)
            }
        }
    }

    /// The space the WAL replays onto: the checkpoint if there is one (its schema must
    /// be the directory's), else an empty space of the directory's schema.
    pub fn base_space(&self, cfg: &BackupConfig) -> Result<BindSpace> {
        let restored = self.read_checkpoint()?;
        let schema = self.schema(cfg, restored.as_ref().map(BindSpace::schema))?;
        match restored {
            Some(s) if s.schema() != schema => Err(Error::Config(format!(
                "{} holds schema {}, the data directory records {schema}",
                self.checkpoint_path().display(),
                s.schema()
            ))),
            Some(s) => Ok(s),
            None => Ok(BindSpace::new(schema)?),
        }
    }
}

/// A branch a data directory was starting (`timeline.pending`): the timeline record it
/// asked the catalog for, matched field by field when the directory reopens.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PendingTimeline {
    /// The timeline it branches from.
    pub parent: u32,
    /// The branch point.
    pub branch_version: u64,
    /// The record's creation time, chosen before the record was committed.
    pub created_us: u64,
    /// The record's reason.
    pub reason: String,
    /// The record's claim token ([`bindspace_catalog::TimelineRecord::claim`]).
    pub token: String,
}

/// Where a restored snapshot came from: the repository, timeline and version it was
/// restored from. `bindspace restore --out FILE` writes it as `FILE.origin`; an engine
/// that opens such a checkpoint starts a new timeline branching there.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Origin {
    /// The repository restored from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository_id: Option<String>,
    /// Its timeline.
    pub timeline: u32,
    /// The version restored.
    pub version: u64,
    /// The state root of the restored space (hex), when recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<String>,
}

impl Origin {
    /// The origin of a restore's result: the timeline it restored and the version it
    /// reached, with the state root only when the restore verified it (it becomes the
    /// new timeline's branch-point root; an unverified one would certify whatever the
    /// WAL held).
    pub fn of_restore(
        repository_id: Option<String>,
        plan: &bindspace_pitr::RestorePlan,
        verification: &bindspace_pitr::Verification,
    ) -> Origin {
        Origin {
            repository_id,
            timeline: plan.timeline,
            version: verification.version,
            root: verification
                .is_verified()
                .then(|| verification.root.to_string()),
        }
    }

    /// The origin file of snapshot file `snap`.
    pub fn path_of(snap: &Path) -> PathBuf {
        let mut p = snap.as_os_str().to_owned();
        p.push(".origin");
        PathBuf::from(p)
    }

    /// Reads the origin of snapshot file `snap`, if it has one.
    pub fn read(snap: &Path) -> Result<Option<Origin>> {
        read_json(&RealFs, &Self::path_of(snap))
    }

    /// Writes it beside snapshot file `snap`, durably.
    pub fn write(&self, snap: &Path) -> Result<()> {
        write_json(&RealFs, &Self::path_of(snap), self)
    }
}

/// A small JSON file of the data directory; `None` if it is not there.
fn read_json<T: serde::de::DeserializeOwned>(fs: &dyn Fs, path: &Path) -> Result<Option<T>> {
    match read_opt(fs, path)? {
        Some(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| Error::Config(format!("{}: {e}", path.display()))),
        None => Ok(None),
    }
}

/// Writes a small JSON file of the data directory, durably (temp file, fsync, rename).
fn write_json(fs: &dyn Fs, path: &Path, value: &impl serde::Serialize) -> Result<()> {
    let json = serde_json::to_vec_pretty(value).expect("data directory files always serialise");
    write_durably(fs, path, &json)
}
