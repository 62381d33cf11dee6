//! The catalog manifest: what backups exist, where, and the named restore points.
//!
//! Stored as one object per generation: a header line
//! `bindspace-manifest v2 <generation> <blake3 of the JSON body>` then the JSON body.
//! The manifest is also the repository's descriptor: its `layout` (the repository
//! layout version, [`LAYOUT`]), the repository id and the timelines. Layout 1 wrote
//! `v1` headers and had neither; it reads as layout 1 with timeline 1 only. A layout
//! this build does not know is refused ([`Error::UnknownLayout`]), and builds from
//! before layout 2 refuse a `v2` header, so no binary writes a layout it cannot read.

use bindspace_core::SchemaVersion;
use serde::{Deserialize, Serialize};

use crate::timeline::TimelineRecord;
use crate::{ArtifactId, Error, FIRST_TIMELINE, Result, TimelineId, blake3_hex};

/// The repository layout this build writes while nothing needs a newer one.
/// 1: no descriptor, no timelines (before 0.2). 2: timelines, state roots.
/// 3: expired timelines (written only once a timeline has expired). 4: encrypted (a
/// keyring; an older build would drop it when rewriting the catalog and leave every
/// artifact unreadable, so it must refuse the catalog instead). 5: compression on
/// (packed artifacts, [`crate::packed`]: an older build could not read them). 6:
/// compact deltas (delta format 3; an older build would find out only when a restore
/// reached one, so it must refuse the catalog instead).
pub const LAYOUT: u32 = 2;

/// The newest repository layout this build reads and writes.
pub const NEWEST_LAYOUT: u32 = 6;

fn layout_1() -> u32 {
    1
}

fn first_timeline() -> TimelineId {
    FIRST_TIMELINE
}

/// Backup kinds: full, incremental (since the last backup), differential (since the
/// last full), and WAL archive entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackupKind {
    /// A full snapshot.
    Full,
    /// A delta since the previous backup.
    Incremental,
    /// A delta since the last full.
    Differential,
    /// Archived WAL segments.
    Wal,
}

impl BackupKind {
    /// Its name in messages and the CLI: `full`, `incremental`, `differential`, `wal`.
    pub fn name(&self) -> &'static str {
        match self {
            BackupKind::Full => "full",
            BackupKind::Incremental => "incremental",
            BackupKind::Differential => "differential",
            BackupKind::Wal => "wal",
        }
    }
}

/// Where a backup is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackupStatus {
    /// Being written.
    Running,
    /// Every byte stored.
    Complete,
    /// Gave up; its artifacts may be partial.
    Failed,
    /// Complete and later read back and checked.
    Verified,
}

/// The schema fields as stored in the catalog.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaRecord {
    /// Major.
    pub major: u16,
    /// Minor.
    pub minor: u16,
    /// Patch.
    pub patch: u16,
    /// Words per fingerprint.
    pub fingerprint_words: u16,
    /// Addresses.
    pub address_space: u32,
    /// Feature bits.
    pub features: u64,
}

impl From<SchemaVersion> for SchemaRecord {
    fn from(s: SchemaVersion) -> Self {
        SchemaRecord {
            major: s.major,
            minor: s.minor,
            patch: s.patch,
            fingerprint_words: s.fingerprint_words,
            address_space: s.address_space,
            features: s.features,
        }
    }
}

impl From<SchemaRecord> for SchemaVersion {
    fn from(s: SchemaRecord) -> Self {
        SchemaVersion {
            major: s.major,
            minor: s.minor,
            patch: s.patch,
            fingerprint_words: s.fingerprint_words,
            address_space: s.address_space,
            features: s.features,
        }
    }
}

/// One backup in the catalog: what it holds, where, and what it builds on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupEntry {
    /// Unique id.
    pub id: String,
    /// Kind.
    pub kind: BackupKind,
    /// The backup this one builds on (none for a full).
    pub parent: Option<String>,
    /// First version covered.
    pub from_version: u64,
    /// Version it restores to.
    pub to_version: u64,
    /// Start time, µs since the epoch.
    pub start_us: u64,
    /// End time, µs since the epoch.
    pub end_us: u64,
    /// Schema of the data.
    pub schema: SchemaRecord,
    /// Bytes stored.
    pub size: u64,
    /// blake3 of the artifact, hex.
    pub blake3: String,
    /// The artifact.
    pub artifact: ArtifactId,
    /// Stores holding it.
    pub locations: Vec<String>,
    /// Status.
    pub status: BackupStatus,
    /// The history it belongs to (layout 1: timeline 1).
    #[serde(default = "first_timeline")]
    pub timeline: TimelineId,
    /// The state root of the space it restores to, hex; `None` for WAL entries and for
    /// backups written before roots existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<String>,
    /// The artifact's format when a build reading only older layouts could not decode
    /// it: `3` for a delta in the compact format (layout 6). `None` for everything
    /// else, and for every entry written before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<u16>,
}

/// A named version. `guaranteed` pins the backups it needs against retention.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestorePoint {
    /// Its name.
    pub name: String,
    /// The version it names.
    pub version: u64,
    /// When it was made, µs since the epoch.
    pub created_us: u64,
    /// Whether retention must keep what it needs.
    pub guaranteed: bool,
    /// The history the version is on (layout 1: timeline 1).
    #[serde(default = "first_timeline")]
    pub timeline: TimelineId,
    /// The state root at the version, hex, when the writer knew it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<String>,
}

/// The catalog at one generation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The repository layout version ([`LAYOUT`] when written by this build).
    #[serde(default = "layout_1")]
    pub layout: u32,
    /// The repository's id, the same in every destination (none in layout 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository_id: Option<String>,
    /// Timelines after the first, in the order they were created. Timeline 1 is
    /// implicit ([`Manifest::timelines`] lists it too).
    #[serde(default)]
    pub timelines: Vec<TimelineRecord>,
    /// Backups, oldest first.
    pub entries: Vec<BackupEntry>,
    /// Restore points.
    pub restore_points: Vec<RestorePoint>,
    /// Timelines a retention policy expired (abandoned histories): restores and
    /// backups on them are refused, naming when and why; their artifacts go except
    /// what a live timeline's history still needs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expired: Vec<ExpiredTimeline>,
    /// What verification found intact in this store, and when (`bindspace verify`).
    /// Older builds ignore it (and drop it when they rewrite the catalog: only the
    /// record of checks is lost, so those artifacts are read again).
    #[serde(default, skip_serializing_if = "crate::VerifyLog::is_empty")]
    pub verified: crate::VerifyLog,
    /// The newest restore drills' reports, oldest first (at most [`DRILLS_KEPT`];
    /// `bindspace dr report`). Older builds drop them when they rewrite the catalog.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drills: Vec<DrillRecord>,
    /// Timelines a promoted standby took over: their old writers are fenced (nothing
    /// more of theirs is archived or backed up); restores of them still work. Older
    /// builds ignore it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub superseded: Vec<Superseded>,
    /// The repository's keyring when it is encrypted (`bindspace-crypt`'s JSON: only
    /// wrapped keys), the same in every destination. Layout 4.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyring: Option<String>,
    /// The codec artifacts are packed with where it pays (`zstd`), once compression
    /// was switched on; packed and raw artifacts then sit side by side. Layout 5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<String>,
    /// Deltas in format 3 may be stored here: set by every backup's catalog commit of
    /// a build that writes them, and by a commit of its own before such a delta is
    /// stored or replicated under a catalog without it, so no store holds one while its
    /// catalog still says a layout an older build opens. Layout 6.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub compact_deltas: bool,
}

/// A timeline a promoted standby took over.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Superseded {
    /// The timeline.
    pub id: crate::TimelineId,
    /// The timeline that took over (`None` while the promotion that fenced it is
    /// still opening its engine: the old writer is fenced first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<crate::TimelineId>,
    /// When, µs since the epoch.
    pub at_us: u64,
}

/// How many drill reports a catalog keeps.
pub const DRILLS_KEPT: usize = 64;

/// One restore drill's report as the catalog keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrillRecord {
    /// When it started, µs since the epoch.
    pub started_us: u64,
    /// Whether it met every target and every store restored alone.
    pub passed: bool,
    /// The report (`bindspace_dr::DrillReport` as JSON text).
    pub report: String,
}

impl Manifest {
    /// Appends a drill's report, keeping the newest [`DRILLS_KEPT`].
    pub fn record_drill(&mut self, d: DrillRecord) {
        self.drills.push(d);
        let over = self.drills.len().saturating_sub(DRILLS_KEPT);
        self.drills.drain(..over);
    }
}

/// A timeline a retention policy expired.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpiredTimeline {
    /// The timeline.
    pub id: crate::TimelineId,
    /// When it expired, µs since the epoch.
    pub expired_us: u64,
    /// Why: `abandoned: nothing backed up on it since …`.
    pub reason: String,
}

impl Default for Manifest {
    /// An empty catalog of the current layout.
    fn default() -> Self {
        Manifest {
            layout: LAYOUT,
            repository_id: None,
            timelines: Vec::new(),
            entries: Vec::new(),
            restore_points: Vec::new(),
            expired: Vec::new(),
            verified: crate::VerifyLog::default(),
            drills: Vec::new(),
            superseded: Vec::new(),
            keyring: None,
            compression: None,
            compact_deltas: false,
        }
    }
}

const MAGIC: &str = "bindspace-manifest v2";

impl Manifest {
    /// The layout this manifest must be written as: 6 once deltas in format 3 may be
    /// stored ([`Manifest::compact_deltas`], or an entry naming its `format`); 5 with
    /// compression on; 4 when encrypted; 3 once a timeline has expired (a layout-2
    /// build would drop the list when it rewrites the catalog, and so revive a
    /// timeline whose artifacts are gone; it refuses layout 3 instead); else
    /// [`LAYOUT`]. Each layout's builds know every lower one.
    pub fn layout_needed(&self) -> u32 {
        if self.compact_deltas || self.entries.iter().any(|e| e.format.is_some()) {
            6
        } else if self.compression.is_some() {
            5
        } else if self.keyring.is_some() {
            4
        } else if self.expired.is_empty() {
            LAYOUT
        } else {
            3
        }
    }
}
const MAGIC_V1: &str = "bindspace-manifest v1";

impl Manifest {
    /// The stored form at `generation`.
    pub fn encode(&self, generation: u64) -> Vec<u8> {
        let body = serde_json::to_vec_pretty(self).expect("a manifest always serialises");
        let mut out = format!(
            "{MAGIC} {generation} {}\n",
            blake3_hex(blake3::hash(&body).as_bytes())
        )
        .into_bytes();
        out.extend_from_slice(&body);
        out
    }

    /// Parses and verifies a stored manifest; returns its generation and content.
    pub fn decode(store: &str, what: &str, bytes: &[u8]) -> Result<(u64, Manifest)> {
        let bad = |detail: String| Error::BadManifest {
            store: store.to_owned(),
            what: what.to_owned(),
            detail,
        };
        let nl = bytes
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| bad("no header line".into()))?;
        let header =
            std::str::from_utf8(&bytes[..nl]).map_err(|_| bad("header is not UTF-8".into()))?;
        let rest = match header.strip_prefix(MAGIC) {
            Some(r) => r,
            None => header.strip_prefix(MAGIC_V1).ok_or_else(|| {
                match header
                    .strip_prefix("bindspace-manifest v")
                    .and_then(|r| r.split_whitespace().next())
                    .and_then(|v| v.parse::<u32>().ok())
                {
                    Some(v) => Error::UnknownLayout {
                        store: store.to_owned(),
                        layout: v,
                        known: NEWEST_LAYOUT,
                    },
                    None => bad(format!("unknown header {header:?}")),
                }
            })?,
        };
        let mut parts = rest.split_whitespace();
        let generation: u64 = parts
            .next()
            .and_then(|g| g.parse().ok())
            .ok_or_else(|| bad("no generation".into()))?;
        let hash = parts.next().ok_or_else(|| bad("no blake3".into()))?;
        let body = &bytes[nl + 1..];
        let actual = blake3_hex(blake3::hash(body).as_bytes());
        if actual != hash {
            return Err(bad(format!(
                "body blake3 {actual} does not match the header's {hash}"
            )));
        }
        // the layout first, so a newer layout is refused by name, not as bad JSON
        #[derive(Deserialize)]
        struct LayoutOnly {
            #[serde(default = "layout_1")]
            layout: u32,
        }
        let l: LayoutOnly = serde_json::from_slice(body).map_err(|e| bad(format!("JSON: {e}")))?;
        if l.layout > NEWEST_LAYOUT || l.layout == 0 {
            return Err(Error::UnknownLayout {
                store: store.to_owned(),
                layout: l.layout,
                known: NEWEST_LAYOUT,
            });
        }
        let m: Manifest = serde_json::from_slice(body).map_err(|e| bad(format!("JSON: {e}")))?;
        crate::timeline::check(&m).map_err(bad)?;
        Ok((generation, m))
    }
}
