//! The Prometheus text exposition (format 0.0.4) of an engine's status: backups,
//! the WAL archive, verification, drills, replication.

use std::fmt::Write as _;

use bindspace::EngineStatus;

/// A label value escaped for the text format (backslash, quote, newline).
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

struct Out(String);

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{k}=\"{}\"", esc(v));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }

    fn one(&mut self, name: &str, kind: &str, help: &str, value: f64) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }
}

fn secs(us: u64) -> f64 {
    us as f64 / 1e6
}

/// The metrics of `st` at `now_us`.
pub fn render(st: &EngineStatus, now_us: u64, unwritable: bool) -> String {
    let mut o = Out(String::new());
    o.one(
        "bindspace_version",
        "gauge",
        "The space's version (the last acknowledged write).",
        st.version as f64,
    );
    o.one(
        "bindspace_unwritable",
        "gauge",
        "1 when the engine takes no writes (fenced, or its WAL failed).",
        f64::from(u8::from(unwritable)),
    );
    o.family(
        "bindspace_backup_last_success_timestamp_seconds",
        "gauge",
        "When each kind of backup last landed in each store (seconds since the epoch).",
    );
    for ((kind, store), t) in &st.last_backup_us {
        o.sample(
            "bindspace_backup_last_success_timestamp_seconds",
            &[("kind", kind), ("store", store)],
            secs(*t),
        );
    }
    o.one(
        "bindspace_backups_total",
        "counter",
        "Backups written since the engine opened.",
        st.backups_ok as f64,
    );
    o.family(
        "bindspace_backup_failures_total",
        "counter",
        "Backup attempts a store refused, by store (`all`: the error named none).",
    );
    for (store, n) in &st.backup_failures_by_store {
        o.sample(
            "bindspace_backup_failures_total",
            &[("store", store)],
            *n as f64,
        );
    }
    o.family(
        "bindspace_backup_bytes_written_total",
        "counter",
        "Bytes of backup artifacts written to each store (WAL segments not counted).",
    );
    for (store, n) in &st.backup_bytes_by_store {
        o.sample(
            "bindspace_backup_bytes_written_total",
            &[("store", store)],
            *n as f64,
        );
    }
    if let Some(lag) = st.archive_lag_us(now_us) {
        o.one(
            "bindspace_wal_archive_lag_seconds",
            "gauge",
            "How far the WAL archive is behind: 0 when it holds every acknowledged write, else the time since the last archive pass that succeeded started.",
            secs(lag),
        );
        o.one(
            "bindspace_rpo_seconds",
            "gauge",
            "The writes at risk if the local disk is lost now, in seconds (the WAL archive lag).",
            secs(lag),
        );
    }
    o.one(
        "bindspace_wal_segments_archived_total",
        "counter",
        "WAL segments archived since the engine opened.",
        st.segments_archived as f64,
    );
    o.one(
        "bindspace_wal_archive_failures_total",
        "counter",
        "WAL archive attempts that failed (each retried).",
        st.archive_failures as f64,
    );
    o.family(
        "bindspace_verify_last_success_timestamp_seconds",
        "gauge",
        "When the last clean background verify of each level finished.",
    );
    for (level, (t, outcome)) in &st.last_verify {
        if outcome == "clean" {
            o.sample(
                "bindspace_verify_last_success_timestamp_seconds",
                &[("level", level)],
                secs(*t),
            );
        }
    }
    o.one(
        "bindspace_verify_damage_found_total",
        "counter",
        "Background verifies that found damage (or a store they could not check).",
        st.verify_damage_found as f64,
    );
    if let Some(d) = &st.last_drill {
        o.one(
            "bindspace_drill_rto_seconds",
            "gauge",
            "The worst RTO of the last drill.",
            d.rto_ms as f64 / 1e3,
        );
        if let Some(rpo) = d.rpo_ms {
            o.one(
                "bindspace_drill_rpo_seconds",
                "gauge",
                "The worst RPO of the last drill.",
                rpo as f64 / 1e3,
            );
        }
        o.one(
            "bindspace_drill_last_timestamp_seconds",
            "gauge",
            "When the last drill finished.",
            secs(d.finished_us),
        );
        o.one(
            "bindspace_drill_passed",
            "gauge",
            "1 when the last drill met its targets.",
            f64::from(u8::from(d.passed)),
        );
    }
    o.family(
        "bindspace_replica_lag_seconds",
        "gauge",
        "Time since each replica last held everything the primary destination did.",
    );
    for (replica, lag) in &st.replica_lag_ms {
        if let Some(ms) = lag {
            o.sample(
                "bindspace_replica_lag_seconds",
                &[("replica", replica)],
                *ms as f64 / 1e3,
            );
        }
    }
    o.one(
        "bindspace_replication_failures_total",
        "counter",
        "Replication runs that failed or left a replica behind.",
        st.replication_failures as f64,
    );
    o.one(
        "bindspace_retention_deleted_total",
        "counter",
        "Backups removed by retention.",
        st.retention_deleted as f64,
    );
    o.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_escaped_and_every_family_typed() {
        let mut st = EngineStatus {
            version: 7,
            last_archived_version: 5,
            archived_through_us: Some(1_000_000),
            ..EngineStatus::default()
        };
        st.last_backup_us
            .insert(("full".into(), "a\"b\\c\nd".into()), 2_500_000);
        let text = render(&st, 3_000_000, false);
        assert!(
            text.contains(
                "bindspace_backup_last_success_timestamp_seconds{kind=\"full\",store=\"a\\\"b\\\\c\\nd\"} 2.5\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("bindspace_wal_archive_lag_seconds 2\n"),
            "{text}"
        );
        assert!(text.contains("bindspace_rpo_seconds 2\n"), "{text}");
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(['{', ' ']).next().expect("a name");
            assert!(
                text.contains(&format!("# TYPE {name} ")),
                "{name} has no TYPE line"
            );
        }
        // caught up: the lag is 0 whatever the last pass's time
        st.last_archived_version = 7;
        assert!(render(&st, 9_000_000, false).contains("bindspace_wal_archive_lag_seconds 0\n"));
    }

    #[test]
    fn every_metric_the_example_alerts_name_is_exported() {
        let mut st = EngineStatus {
            version: 9,
            archived_through_us: Some(1),
            last_drill: Some(bindspace::DrillSummary {
                finished_us: 1,
                rto_ms: 5,
                rpo_ms: Some(5),
                passed: true,
            }),
            ..EngineStatus::default()
        };
        st.last_backup_us.insert(("full".into(), "s".into()), 1);
        st.backup_failures_by_store.insert("s".into(), 1);
        st.backup_bytes_by_store.insert("s".into(), 1);
        st.last_verify
            .insert("standard".into(), (1, "clean".into()));
        st.replica_lag_ms.insert("r".into(), Some(1));
        let text = render(&st, 2, false);
        let rules = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/alerts.yml"),
        )
        .expect("docs/alerts.yml");
        let mut named = 0;
        for word in rules.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            if word.starts_with("bindspace_") {
                named += 1;
                assert!(
                    text.contains(&format!("# TYPE {word} ")),
                    "docs/alerts.yml names {word}, which /metrics does not export"
                );
            }
        }
        assert!(named >= 8, "{named}");
    }
}
