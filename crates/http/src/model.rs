//! What the API answers with: one concrete schema per response (no free-form
//! objects), built from the engine's and the catalog's types.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ErrorDetail;
use crate::time::rfc3339;

/// An optional integer as JSON Schema counts them: `652.0` is the integer 652 (serde
/// alone refuses it); a fraction, or a value out of the type's range, is refused.
pub fn integer<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<u64>,
{
    use serde::de::Error as _;
    // a query string gives text, a JSON body a number
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Given {
        Number(serde_json::Number),
        Text(String),
    }
    let n = match Option::<Given>::deserialize(d)? {
        None => return Ok(None),
        Some(Given::Number(n)) => n,
        Some(Given::Text(t)) => t
            .parse::<serde_json::Number>()
            .map_err(|_| D::Error::custom(format!("{t:?} is not a number")))?,
    };
    let whole = match (n.as_u64(), n.as_f64()) {
        (Some(u), _) => Some(u),
        (None, Some(f)) if f.fract() == 0.0 && (0.0..=u64::MAX as f64).contains(&f) => {
            Some(f as u64)
        }
        _ => None,
    };
    whole
        .and_then(|u| T::try_from(u).ok())
        .map(Some)
        .ok_or_else(|| D::Error::custom(format!("{n} is not an integer in range")))
}

/// `GET /healthz`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// Always `ok`: the process answers.
    pub status: String,
}

/// One readiness check.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Check {
    /// `wal`, `backup`, `verify`, `archive`.
    pub name: String,
    /// Whether it passed.
    pub ok: bool,
    /// What was found.
    pub detail: String,
}

/// `GET /readyz`: 200 when every check passes, else 503 with the same body.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Ready {
    /// Whether every check passed.
    pub ready: bool,
    /// Each check.
    pub checks: Vec<Check>,
}

/// One backup of the catalog.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Backup {
    /// Its id.
    pub id: String,
    /// `full`, `incremental`, `differential`.
    pub kind: String,
    /// Its timeline (history).
    pub timeline: u32,
    /// First version it covers.
    pub from_version: u64,
    /// The version it restores to.
    pub to_version: u64,
    /// When it started (RFC 3339).
    pub started: String,
    /// When it finished (RFC 3339).
    pub finished: String,
    /// Its size in bytes.
    pub size_bytes: u64,
    /// `complete`, …
    pub status: String,
    /// The state root recorded for `to_version`.
    pub root: Option<String>,
    /// The backup it extends.
    pub parent: Option<String>,
    /// The stores holding it.
    pub locations: Vec<String>,
}

impl From<&bindspace_catalog::BackupEntry> for Backup {
    fn from(e: &bindspace_catalog::BackupEntry) -> Backup {
        Backup {
            id: e.id.clone(),
            kind: e.kind.name().to_owned(),
            timeline: e.timeline,
            from_version: e.from_version,
            to_version: e.to_version,
            started: rfc3339(e.start_us),
            finished: rfc3339(e.end_us),
            size_bytes: e.size,
            status: format!("{:?}", e.status).to_lowercase(),
            root: e.root.clone(),
            parent: e.parent.clone(),
            locations: e.locations.clone(),
        }
    }
}

/// `POST /backup/incremental` and `/backup/differential`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BackupTaken {
    /// The backup written; none when nothing changed since the last one.
    pub backup: Option<Backup>,
}

/// Progress of a job.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct Progress {
    /// What it is doing now.
    pub step: String,
    /// Steps done.
    pub done: u64,
    /// Steps in all.
    pub total: u64,
}

/// A long operation (full backup, restore, verify, drill, migration): accepted with
/// `202`, then followed at `/api/v1/admin/jobs/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Job {
    /// Its id.
    pub id: String,
    /// `backup`, `restore`, `verify`, `drill`, `migrate`.
    pub kind: String,
    /// `queued`, `running`, `succeeded`, `failed`.
    pub state: String,
    /// When it was accepted (RFC 3339).
    pub created: String,
    /// When it finished (RFC 3339).
    pub finished: Option<String>,
    /// How far it got.
    pub progress: Progress,
    /// What it produced, once it succeeded.
    pub result: Option<JobResult>,
    /// Why it failed.
    pub error: Option<ErrorDetail>,
}

/// What a job produced: the field of its kind is set.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct JobResult {
    /// A backup job's backup (none: nothing changed).
    pub backup: Option<Backup>,
    /// A restore job's result.
    pub restore: Option<Restored>,
    /// A verify job's result.
    pub verify: Option<Verified>,
    /// A drill job's result.
    pub drill: Option<Drill>,
    /// A migration job's result.
    pub migrate: Option<Migrated>,
}

/// A restore's result.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Restored {
    /// The target asked for.
    pub target: String,
    /// The timeline restored.
    pub timeline: u32,
    /// The version restored.
    pub version: u64,
    /// Occupied addresses.
    pub addresses: u64,
    /// The state's digest.
    pub digest: String,
    /// The state root the restore produced.
    pub root: String,
    /// Whether that root matched one recorded for the version.
    pub verified: bool,
    /// What the restore proved, in words.
    pub verification: String,
    /// Bytes fetched from the stores.
    pub fetched_bytes: u64,
    /// The snapshot file written (with `FILE.origin`): an engine started on it as its
    /// `checkpoint.snap` continues on a new timeline.
    pub file: String,
    /// How long it took (ms).
    pub took_ms: u64,
}

/// A verify's result.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Verified {
    /// `checksum`, `standard`, `deep`.
    pub level: String,
    /// `clean`, `damage_found`, `all_repaired`.
    pub outcome: String,
    /// The report in words.
    pub report: String,
    /// When it finished (RFC 3339).
    pub finished: String,
}

/// One run of a drill (one store alone, or all together).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DrillRun {
    /// The store (or `all`).
    pub source: String,
    /// `ok`, `missed`, `failed`, …
    pub status: String,
    /// Time to a verified restore (ms).
    pub rto_ms: u64,
    /// Data not restored (ms), when measured.
    pub rpo_ms: Option<u64>,
    /// The version restored.
    pub version: Option<u64>,
    /// What happened.
    pub detail: String,
}

/// A drill's report.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Drill {
    /// When it started (RFC 3339).
    pub started: String,
    /// When it finished (RFC 3339).
    pub finished: String,
    /// What it restored.
    pub target: String,
    /// Whether every run met the targets.
    pub passed: bool,
    /// The RTO target (ms).
    pub rto_target_ms: u64,
    /// The RPO target (ms).
    pub rpo_target_ms: u64,
    /// Each run.
    pub runs: Vec<DrillRun>,
    /// Targets missed, in words.
    pub missed: Vec<String>,
}

impl From<&bindspace_dr::DrillReport> for Drill {
    fn from(d: &bindspace_dr::DrillReport) -> Drill {
        Drill {
            started: rfc3339(d.started_us),
            finished: rfc3339(d.finished_us),
            target: d.target.clone(),
            passed: d.passed(),
            rto_target_ms: d.rto_target_ms,
            rpo_target_ms: d.rpo_target_ms,
            runs: d
                .runs
                .iter()
                .map(|r| DrillRun {
                    source: r.source.clone(),
                    status: r.status.clone(),
                    rto_ms: r.rto_ms,
                    rpo_ms: r.rpo_ms,
                    version: r.version,
                    detail: r.detail.clone(),
                })
                .collect(),
            missed: d.missed.clone(),
        }
    }
}

/// A migration job's result.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Migrated {
    /// The schema written.
    pub schema: String,
    /// Addresses migrated.
    pub addresses: u64,
    /// The snapshot file written.
    pub file: String,
    /// Its size in bytes.
    pub size_bytes: u64,
}

/// A named restore point.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RestorePoint {
    /// Its name.
    pub name: String,
    /// Its timeline.
    pub timeline: u32,
    /// The version it names.
    pub version: u64,
    /// When it was made (RFC 3339).
    pub created: String,
    /// Whether retention keeps what restoring it needs.
    pub guaranteed: bool,
    /// The state root recorded for it.
    pub root: Option<String>,
}

impl From<&bindspace_catalog::RestorePoint> for RestorePoint {
    fn from(p: &bindspace_catalog::RestorePoint) -> RestorePoint {
        RestorePoint {
            name: p.name.clone(),
            timeline: p.timeline,
            version: p.version,
            created: rfc3339(p.created_us),
            guaranteed: p.guaranteed,
            root: p.root.clone(),
        }
    }
}

/// `POST /restore-points`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NewRestorePoint {
    /// Its name (1–128 characters, letters, digits and `._:-`).
    #[schema(pattern = r"^[A-Za-z0-9._:-]{1,128}$")]
    pub name: String,
    /// Keep what restoring it needs safe from retention.
    #[serde(default)]
    pub guaranteed: bool,
}

/// One step of a restore plan.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Step {
    /// The artifact.
    pub artifact: String,
    /// Its timeline.
    pub timeline: u32,
    /// Its size in bytes.
    pub bytes: u64,
    /// The stores holding it.
    pub stores: Vec<String>,
}

/// `GET /explain`: how a restore would run.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Explain {
    /// The target.
    pub target: String,
    /// Its timeline.
    pub timeline: u32,
    /// The version it restores (for a time target: the newest the plan can reach).
    pub version: u64,
    /// The full it starts from.
    pub full: Step,
    /// The deltas applied.
    pub deltas: Vec<Step>,
    /// The WAL segments replayed.
    pub wal: Vec<Step>,
    /// Bytes to fetch.
    pub estimated_bytes: u64,
    /// Stores that could not be read.
    pub unavailable: Vec<String>,
    /// The plan in words.
    pub text: String,
}

/// Why retention keeps a backup.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Kept {
    /// The backup.
    pub id: String,
    /// Why, in words: `recent`, `newest daily`, `needed by ID`.
    pub reasons: Vec<String>,
}

/// A timeline retention expires.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Expired {
    /// The timeline.
    pub timeline: u32,
    /// Why.
    pub reason: String,
}

/// `POST /retention`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Retention {
    /// True unless `confirm=true` was given: nothing was deleted.
    pub dry_run: bool,
    /// What stays, and why.
    pub keep: Vec<Kept>,
    /// What goes (went), oldest first.
    pub delete: Vec<String>,
    /// Artifacts deleted.
    pub deleted: u64,
    /// Timelines expired.
    pub expire: Vec<Expired>,
}

/// `GET /as-of`: one address as of a target (flashback read).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AsOf {
    /// The address (`0a:01`).
    pub addr: String,
    /// The target.
    pub target: String,
    /// Its fingerprint (hex of the little-endian words); none: empty.
    pub fingerprint: Option<String>,
}

/// One store's last backup of one kind.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LastBackup {
    /// `full`, `incremental`, `differential`.
    pub kind: String,
    /// The store.
    pub store: String,
    /// When it finished (RFC 3339).
    pub time: String,
    /// How long ago.
    pub age: String,
}

/// One verify level's last run.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LastVerify {
    /// The level.
    pub level: String,
    /// When it finished (RFC 3339).
    pub time: String,
    /// How long ago.
    pub age: String,
    /// `clean` or what it found.
    pub outcome: String,
}

/// One replica.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Replica {
    /// The store.
    pub store: String,
    /// Time since it last held everything the primary did (ms); none: not caught up
    /// since the engine opened.
    pub lag_ms: Option<u64>,
}

/// `GET /replication`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Replication {
    /// Each replica.
    pub replicas: Vec<Replica>,
    /// Runs that failed or left a replica behind.
    pub failures: u64,
}

/// `GET /wal`: the WAL archive.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WalArchive {
    /// The space's version.
    pub version: u64,
    /// Newest version every destination's archive holds.
    pub archived_version: u64,
    /// Segments archived since the engine opened.
    pub segments_archived: u64,
    /// Archive attempts that failed (each retried).
    pub failures: u64,
    /// Seconds the archive is behind (0: it holds every write); none: no archive pass
    /// succeeded since the engine opened.
    pub lag_seconds: Option<f64>,
}

/// `GET /status`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Status {
    /// The space's version.
    pub version: u64,
    /// The timeline the engine writes.
    pub timeline: u32,
    /// Occupied addresses.
    pub addresses: u64,
    /// Why the engine takes no writes (a standby took its history over).
    pub fenced: Option<String>,
    /// Backups written since it opened.
    pub backups_ok: u64,
    /// Backup attempts that failed.
    pub backups_failed: u64,
    /// Newest version in a backup.
    pub last_backup_version: u64,
    /// Each store's last backup of each kind.
    pub last_backups: Vec<LastBackup>,
    /// The WAL archive.
    pub wal: WalArchive,
    /// Each verify level's last run.
    pub last_verify: Vec<LastVerify>,
    /// The last drill through this engine.
    pub last_drill: Option<DrillSummary>,
    /// Replicas.
    pub replication: Replication,
    /// Backups removed by retention.
    pub retention_deleted: u64,
    /// The last error of a background job.
    pub last_error: Option<String>,
}

/// The last drill, in the status.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DrillSummary {
    /// When it finished (RFC 3339).
    pub time: String,
    /// How long ago.
    pub age: String,
    /// Worst RTO (ms).
    pub rto_ms: u64,
    /// Worst RPO (ms).
    pub rpo_ms: Option<u64>,
    /// Whether it passed.
    pub passed: bool,
}

/// `POST /migrate/plan` and `/migrate/apply`: the schema to go to (each field
/// defaults to the space's own).
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct MigrateRequest {
    /// Target schema version `MAJOR.MINOR.PATCH`.
    #[schema(pattern = r"^(0|[1-9][0-9]{0,3})\.(0|[1-9][0-9]{0,3})\.(0|[1-9][0-9]{0,3})$")]
    pub to: Option<String>,
    /// Words per fingerprint (1–1024).
    #[schema(minimum = 1, maximum = 1024)]
    #[serde(default, deserialize_with = "integer")]
    pub words: Option<u16>,
    /// Address-space size (1–65536).
    #[schema(minimum = 1, maximum = 65536)]
    #[serde(default, deserialize_with = "integer")]
    pub address_space: Option<u32>,
    /// Features to turn on, by name.
    #[serde(default)]
    pub features: Vec<Feature>,
    /// Allow steps that lose data (apply only).
    #[serde(default)]
    pub allow_truncate: bool,
}

/// A schema feature, by name.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
pub enum Feature {
    /// An all-zero fingerprint reads as an empty address.
    #[serde(rename = "zero-is-empty")]
    ZeroIsEmpty,
}

impl Feature {
    /// Its name in the registry of `bindspace-schema-migrate`.
    pub fn name(self) -> &'static str {
        match self {
            Feature::ZeroIsEmpty => "zero-is-empty",
        }
    }
}

/// A migration warning.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MigrateWarning {
    /// What it says.
    pub message: String,
    /// Whether data is lost.
    pub lossy: bool,
    /// Addresses affected.
    pub addresses: u64,
}

/// A migration plan.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MigratePlan {
    /// The space's schema.
    pub from: String,
    /// The target schema.
    pub to: String,
    /// Steps in words.
    pub steps: Vec<String>,
    /// Occupied addresses.
    pub occupied: u64,
    /// Size of the output (bytes).
    pub estimated_output_bytes: u64,
    /// Time it would take (ms).
    pub estimated_ms: u64,
    /// Whether writers must stop.
    pub downtime: bool,
    /// Whether it loses data.
    pub lossy: bool,
    /// Warnings.
    pub warnings: Vec<MigrateWarning>,
}

/// One row of an export.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ExportRow {
    /// The address (`0a:01`).
    pub addr: String,
    /// Its prefix byte.
    pub prefix: u8,
    /// Its slot byte.
    pub slot: u8,
    /// The fingerprint: hex of its little-endian words.
    pub fingerprint: String,
}

/// An export as JSON.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ExportJson {
    /// The state's version.
    pub version: u64,
    /// Its timeline.
    pub timeline: u32,
    /// Its digest.
    pub digest: String,
    /// Occupied addresses (rows).
    pub addresses: u64,
    /// Words per fingerprint.
    pub words: u16,
    /// One row per occupied address.
    pub rows: Vec<ExportRow>,
}
