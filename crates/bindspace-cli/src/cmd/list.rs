//! `bindspace list`: the backups in the catalog, as aligned columns with times, ages
//! and sizes (like pgBackRest's `info` or restic's `snapshots`).

use anyhow::Result;
use bindspace_http::time::{ago, rfc3339};

use crate::args::{RepoArgs, runtime};
use crate::output::{emit_serialized, now_us, size, table};

pub fn run(r: &RepoArgs) -> Result<()> {
    let rt = runtime()?;
    let repo = r.repository(&rt)?;
    let m = crate::args::catalog(&rt, &repo)?;
    emit_serialized(r.json, &m.entries, || {
        let now = now_us();
        let rows: Vec<Vec<String>> = m
            .entries
            .iter()
            .map(|e| {
                vec![
                    e.id.clone(),
                    e.kind.name().to_owned(),
                    e.timeline.to_string(),
                    format!("{}..={}", e.from_version, e.to_version),
                    rfc3339(e.end_us),
                    ago(e.end_us, now),
                    size(e.size),
                    format!("{:?}", e.status).to_lowercase(),
                    e.parent.clone().unwrap_or_else(|| "-".into()),
                ]
            })
            .collect();
        let mut s = table(
            &[
                "id", "kind", "timeline", "versions", "finished", "age", "size", "status", "parent",
            ],
            &rows,
            &[2, 3, 6],
        );
        s.push_str(&format!(
            "{} backups ({} in all), {} restore points, {} timelines (bindspace timeline list); `bindspace show ID` for one",
            m.entries.len(),
            size(m.entries.iter().map(|e| e.size).sum()),
            m.restore_points.len(),
            m.timeline_ids().len()
        ));
        s
    })
}
