//! `bindspace list`: the backups in the catalog.

use std::fmt::Write as _;

use anyhow::Result;

use crate::args::{RepoArgs, runtime};
use crate::output::emit_serialized;

pub fn run(r: &RepoArgs) -> Result<()> {
    let rt = runtime()?;
    let repo = r.repository(&rt)?;
    let m = crate::args::catalog(&rt, &repo)?;
    emit_serialized(r.json, &m.entries, || {
        let mut s = format!(
            "{:<24} {:>8} {:<12} {:>10} {:>10} {:>12} {:<9} {:<16} parent\n",
            "id", "timeline", "kind", "from", "to", "bytes", "status", "root"
        );
        for e in &m.entries {
            let _ = writeln!(
                s,
                "{:<24} {:>8} {:<12} {:>10} {:>10} {:>12} {:<9} {:<16} {}",
                e.id,
                e.timeline,
                e.kind.name(),
                e.from_version,
                e.to_version,
                e.size,
                format!("{:?}", e.status).to_lowercase(),
                e.root.as_deref().map_or("-", |r| r.get(..16).unwrap_or(r)),
                e.parent.as_deref().unwrap_or("-")
            );
        }
        let _ = write!(
            s,
            "{} backups, {} restore points, {} timelines (bindspace timeline list)",
            m.entries.len(),
            m.restore_points.len(),
            m.timeline_ids().len()
        );
        s
    })
}
