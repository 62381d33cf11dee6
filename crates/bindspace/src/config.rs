//! Engine configuration: a TOML file, then the seeds' environment variables on top.

use std::path::Path;
use std::time::Duration;

use bindspace_catalog::RetentionPolicy;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// How the engine protects its space (seed: `BackupConfig`).
///
/// ```toml
/// fingerprint_words = 156
/// destinations = ["file:///var/lib/bindspace/repo", "redis://127.0.0.1:6379"]
/// delta_interval_ms = 60000
/// full_snapshot_interval_ms = 3600000
/// max_delta_chain = 24
/// archive_interval_ms = 1000
/// sync = "always"
///
/// [retention]
/// keep_all_within_us = 86400000000
/// daily = 7
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BackupConfig {
    /// Words per fingerprint of a new space.
    pub fingerprint_words: u16,
    /// Addresses of a new space (a multiple of 256, at most 65,536).
    pub address_space: u32,
    /// Where backups go, primary first: `file://`, `s3://`, `redis://`, `postgresql://`
    /// URLs. Empty: `<data_dir>/repo` on the local file system (the embedded default).
    pub destinations: Vec<String>,
    /// An incremental backup this often (ms).
    pub delta_interval_ms: u64,
    /// A full backup this often (ms).
    pub full_snapshot_interval_ms: u64,
    /// A full instead of an incremental once the chain since the last full is this
    /// long.
    pub max_delta_chain: usize,
    /// The WAL's active segment is sealed and archived this often (ms): the RPO bound
    /// when the local disk is lost.
    pub archive_interval_ms: u64,
    /// WAL sync: `always` (group commit), `never`, or `interval:<ms>`.
    pub sync: String,
    /// WAL segment size in bytes.
    pub wal_segment_bytes: u64,
    /// Retention, applied after every full backup.
    pub retention: RetentionPolicy,
    /// Run the background jobs (off for one-shot tools such as `bindspace backup`).
    pub background_jobs: bool,
    /// Hold the repository lease this long after each backup (drills and tests of
    /// writer exclusion).
    pub lease_hold_ms: u64,
    /// How long one store request (an upload part, a chunk batch, a catalog commit) to
    /// a destination given by URL may take before it fails as a timeout (ms). It
    /// bounds each request, not a whole backup: a large full on a slow link takes long
    /// and lands. Default 30,000.
    pub store_timeout_ms: u64,
    /// Check the WAL's checkpoint roots while reopening (default true). Off, a
    /// mismatch is logged and the engine opens on the log as it is: the escape hatch
    /// for a log known good, see `docs/OPERATIONS.md`.
    pub verify_wal_checkpoints: bool,
    /// A background `verify` of the repository this often (ms; 0: never). On by
    /// default (every 6 hours, the first a minute after opening) at the `checksum`
    /// level; it runs on its own thread, reads least recently verified artifacts
    /// first, paced to `verify_max_bytes_per_sec` (after each artifact it waits, on
    /// the engine's clock, until the bytes read so far are within the rate), and stops
    /// at `verify_max_duration_ms`, so repeated runs cover everything while writers
    /// keep their throughput. Results are in [`crate::EngineStatus`].
    pub verify_interval_ms: u64,
    /// The level of that verify: `checksum`, `standard` or `deep`.
    pub verify_level: String,
    /// The time budget of one background verify (ms).
    pub verify_max_duration_ms: u64,
    /// The background verify's read rate (bytes per second; 0: no limit). Default
    /// 32 MiB/s.
    pub verify_max_bytes_per_sec: u64,
    /// Stores the repository is replicated to (issue 18): every
    /// `replicate_interval_ms` a job copies what the primary destination holds and
    /// they lack (checked on both ends) and brings their catalogs up to it; the lag
    /// of each is in [`crate::EngineStatus`]. They are copies, not destinations: a
    /// backup never waits on them.
    pub replicas: Vec<String>,
    /// How often the replicas are brought up to date (ms).
    pub replicate_interval_ms: u64,
    /// The space of the repository this engine writes (issue 19): many engines share
    /// one repository, each under its own name, and see only their own catalog,
    /// lease and artifacts. `default` is the repository's root (everything written
    /// before spaces). Applies to destinations and replicas given as URLs; the data
    /// directory is bound to it on first open. `BINDSPACE_SPACE` overrides.
    pub space: String,
}

impl Default for BackupConfig {
    fn default() -> Self {
        BackupConfig {
            fingerprint_words: bindspace_core::FINGERPRINT_WORDS as u16,
            address_space: bindspace_core::ADDRESS_SPACE as u32,
            destinations: Vec::new(),
            delta_interval_ms: 60_000,
            full_snapshot_interval_ms: 3_600_000,
            max_delta_chain: 24,
            archive_interval_ms: 1_000,
            sync: "always".into(),
            wal_segment_bytes: 64 << 20,
            retention: RetentionPolicy::default(),
            background_jobs: true,
            lease_hold_ms: 0,
            store_timeout_ms: 30_000,
            verify_wal_checkpoints: true,
            verify_interval_ms: 6 * 3_600_000,
            verify_level: "checksum".into(),
            verify_max_duration_ms: 600_000,
            verify_max_bytes_per_sec: 32 << 20,
            replicas: Vec::new(),
            replicate_interval_ms: 5_000,
            space: bindspace_catalog::SpaceName::DEFAULT.into(),
        }
    }
}

impl BackupConfig {
    /// Parses a TOML document.
    pub fn from_toml(text: &str) -> Result<Self> {
        toml::from_str(text).map_err(|e| Error::Config(e.to_string()))
    }

    /// Reads `path` (if given) and applies the environment (see
    /// [`BackupConfig::apply_env`]).
    pub fn load(path: Option<&Path>) -> Result<Self> {
        let mut c = match path {
            Some(p) => Self::from_toml(
                &std::fs::read_to_string(p)
                    .map_err(|e| Error::Config(format!("reading {}: {e}", p.display())))?,
            )?,
            None => Self::default(),
        };
        c.apply_env(|k| std::env::var(k).ok())?;
        Ok(c)
    }

    /// The seeds' variables: `REDIS_URL`, `DATABASE_URL` and `LADYBUG_S3_BUCKET` add
    /// destinations (with `AWS_*` read by the S3 client); `LADYBUG_BACKUP_INTERVAL` and
    /// `LADYBUG_FULL_SNAPSHOT_INTERVAL` (seconds) and `LADYBUG_MAX_DELTA_CHAIN` override
    /// the file; `BINDSPACE_SPACE` names the repository space.
    pub fn apply_env(&mut self, var: impl Fn(&str) -> Option<String>) -> Result<()> {
        let num = |k: &str| -> Result<Option<u64>> {
            var(k)
                .map(|v| {
                    v.trim()
                        .parse()
                        .map_err(|_| Error::Config(format!("{k}={v:?} is not a number")))
                })
                .transpose()
        };
        if let Some(s) = num("LADYBUG_BACKUP_INTERVAL")? {
            self.delta_interval_ms = s * 1000;
        }
        if let Some(s) = num("LADYBUG_FULL_SNAPSHOT_INTERVAL")? {
            self.full_snapshot_interval_ms = s * 1000;
        }
        if let Some(n) = num("LADYBUG_MAX_DELTA_CHAIN")? {
            self.max_delta_chain = n as usize;
        }
        if let Some(space) = var("BINDSPACE_SPACE") {
            self.space = space.trim().to_owned();
        }
        self.space_name()?;
        for url in [
            var("LADYBUG_S3_BUCKET").map(|b| format!("s3://{b}/bindspace")),
            var("DATABASE_URL"),
            var("REDIS_URL"),
        ]
        .into_iter()
        .flatten()
        {
            if !self.destinations.contains(&url) {
                self.destinations.push(url);
            }
        }
        Ok(())
    }

    /// The retention policy, checked: timeline expiry needs at least a day (less would
    /// expire every timeline but one the moment it is idle).
    pub fn retention_policy(&self) -> Result<&RetentionPolicy> {
        match self.retention.expire_abandoned_after_us {
            Some(us) if us < 86_400_000_000 => Err(Error::Config(format!(
                "retention.expire_abandoned_after_us = {us}: at least one day (86400000000)"
            ))),
            _ => Ok(&self.retention),
        }
    }

    /// The repository space, checked.
    pub fn space_name(&self) -> Result<bindspace_catalog::SpaceName> {
        bindspace_catalog::SpaceName::new(&self.space)
            .map_err(|e| Error::Config(format!("space: {e}")))
    }

    /// The background verify's level, checked.
    pub fn verify_level(&self) -> Result<bindspace_dr::VerifyLevel> {
        bindspace_dr::VerifyLevel::parse(&self.verify_level).ok_or_else(|| {
            Error::Config(format!(
                "verify_level {:?}: use checksum, standard or deep",
                self.verify_level
            ))
        })
    }

    /// The WAL sync policy.
    pub fn sync_policy(&self) -> Result<bindspace_wal::SyncPolicy> {
        use bindspace_wal::SyncPolicy;
        match self.sync.as_str() {
            "always" => Ok(SyncPolicy::Always),
            "never" => Ok(SyncPolicy::Never),
            s => s
                .strip_prefix("interval:")
                .and_then(|ms| ms.parse().ok())
                .map(|ms| SyncPolicy::Interval(Duration::from_millis(ms)))
                .ok_or_else(|| {
                    Error::Config(format!("sync {s:?}: use always, never or interval:<ms>"))
                }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeline_expiry_needs_at_least_a_day() {
        let mut c = BackupConfig::default();
        assert!(c.retention_policy().is_ok(), "off by default");
        c.retention.expire_abandoned_after_us = Some(3_600_000_000);
        let err = c.retention_policy().unwrap_err().to_string();
        assert!(err.contains("at least one day"), "{err}");
        c.retention.expire_abandoned_after_us = Some(86_400_000_000);
        assert!(c.retention_policy().is_ok());
    }

    #[test]
    fn the_seed_variables_apply() {
        let mut c = BackupConfig::from_toml("destinations = [\"file:///x\"]\nmax_delta_chain = 3")
            .expect("valid");
        c.apply_env(|k| match k {
            "REDIS_URL" => Some("redis://r".into()),
            "DATABASE_URL" => Some("postgresql://p".into()),
            "LADYBUG_S3_BUCKET" => Some("b".into()),
            "LADYBUG_BACKUP_INTERVAL" => Some("30".into()),
            "LADYBUG_FULL_SNAPSHOT_INTERVAL" => Some("600".into()),
            "LADYBUG_MAX_DELTA_CHAIN" => Some("7".into()),
            _ => None,
        })
        .expect("valid");
        assert_eq!(
            c.destinations,
            [
                "file:///x",
                "s3://b/bindspace",
                "postgresql://p",
                "redis://r"
            ]
        );
        assert_eq!(
            (
                c.delta_interval_ms,
                c.full_snapshot_interval_ms,
                c.max_delta_chain
            ),
            (30_000, 600_000, 7)
        );
        assert!(BackupConfig::from_toml("nonsense = 1").is_err());
        let mut bad = BackupConfig::default();
        assert!(
            bad.apply_env(|k| (k == "LADYBUG_MAX_DELTA_CHAIN").then(|| "x".into()))
                .is_err()
        );
    }
}
