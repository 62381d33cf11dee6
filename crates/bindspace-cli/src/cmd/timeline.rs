//! `bindspace timeline list|show N`: the repository's histories as a tree, with where
//! each branched and what each holds.

use std::fmt::Write as _;

use anyhow::{Result, bail};
use bindspace_catalog::{FIRST_TIMELINE, History, Manifest, TimelineId};
use serde_json::json;

use crate::args::{RepoArgs, runtime};
use crate::output::emit;

/// `bindspace timeline`.
#[derive(clap::Subcommand, Debug)]
pub enum TimelineOp {
    /// Every timeline as a tree: parent, branch point, versions held, backups.
    List(RepoArgs),
    /// One timeline: its history (which timeline holds which versions), backups and
    /// restore points.
    Show(ShowArgs),
}

/// `bindspace timeline show`.
#[derive(clap::Args, Debug)]
pub struct ShowArgs {
    #[command(flatten)]
    repo: RepoArgs,
    /// The timeline.
    id: TimelineId,
}

pub fn run(op: TimelineOp) -> Result<()> {
    match op {
        TimelineOp::List(r) => list(&r),
        TimelineOp::Show(a) => show(&a),
    }
}

fn summary(m: &Manifest, t: TimelineId) -> serde_json::Value {
    let rec = m.timeline(t);
    let backups = m.entries.iter().filter(|e| e.timeline == t).count();
    json!({
        "timeline": t,
        "parent": rec.map(|r| r.parent),
        "branch_version": rec.map(|r| r.branch_version),
        "created_us": rec.map(|r| r.created_us),
        "reason": rec.map(|r| r.reason.clone()),
        "branch_root": rec.and_then(|r| r.root.clone()),
        "newest_backup_version": m.timeline_end(t),
        "backups": backups,
        "restore_points": m.restore_points.iter().filter(|p| p.timeline == t).count(),
        "expired": m.expiry(t).map(|e| json!({"at_us": e.expired_us, "reason": e.reason})),
    })
}

fn tree(m: &Manifest, t: TimelineId, depth: usize, out: &mut String) {
    let rec = m.timeline(t);
    let from = match rec {
        None => "the first history".to_string(),
        Some(r) => format!(
            "branched from {} at version {} on {} ({})",
            r.parent,
            r.branch_version,
            crate::output::when(r.created_us, crate::output::now_us()),
            r.reason
        ),
    };
    let end = m.timeline_end(t).map_or("no backups yet".to_string(), |v| {
        format!("backups up to version {v}")
    });
    let newest = match m.expiry(t) {
        Some(e) => format!("  (expired: {})", e.reason),
        None if t == m.newest_live_timeline() => "  ← newest".to_string(),
        None => String::new(),
    };
    let _ = writeln!(
        out,
        "{}timeline {t}: {from}; {end}{newest}",
        "  ".repeat(depth)
    );
    for child in m.timelines.iter().filter(|c| c.parent == t) {
        tree(m, child.id, depth + 1, out);
    }
}

fn list(r: &RepoArgs) -> Result<()> {
    let rt = runtime()?;
    let m = crate::args::catalog(&rt, &r.repository(&rt)?)?;
    let rows: Vec<_> = m
        .timeline_ids()
        .into_iter()
        .map(|t| summary(&m, t))
        .collect();
    emit(r.json, json!({ "timelines": rows }), || {
        let mut s = String::new();
        tree(&m, FIRST_TIMELINE, 0, &mut s);
        let _ = write!(s, "{} timelines", m.timeline_ids().len());
        s
    });
    Ok(())
}

fn show(a: &ShowArgs) -> Result<()> {
    let rt = runtime()?;
    let m = crate::args::catalog(&rt, &a.repo.repository(&rt)?)?;
    if a.id != FIRST_TIMELINE && m.timeline(a.id).is_none() {
        bail!(
            "no timeline {} in the catalog (see `bindspace timeline list`)",
            a.id
        );
    }
    let h = History::of(&m, a.id).map_err(anyhow::Error::msg)?;
    let stretches: Vec<_> = h
        .stretches
        .iter()
        .map(|s| json!({"timeline": s.timeline, "from": s.lo, "to": (s.hi != u64::MAX).then_some(s.hi)}))
        .collect();
    let backups: Vec<_> = m.entries.iter().filter(|e| e.timeline == a.id).collect();
    let points: Vec<_> = m
        .restore_points
        .iter()
        .filter(|p| p.timeline == a.id)
        .collect();
    let mut v = summary(&m, a.id);
    v["history"] = json!(stretches);
    v["backup_ids"] = json!(backups.iter().map(|e| &e.id).collect::<Vec<_>>());
    v["restore_point_names"] = json!(points.iter().map(|p| &p.name).collect::<Vec<_>>());
    emit(a.repo.json, v, || {
        let mut s = format!("timeline {}\nhistory:\n", a.id);
        for st in &h.stretches {
            let to = if st.hi == u64::MAX {
                "on".to_string()
            } else {
                format!("to {}", st.hi)
            };
            let _ = writeln!(s, "  versions {} {to}: timeline {}", st.lo, st.timeline);
        }
        let _ = writeln!(s, "backups:");
        for e in &backups {
            let _ = writeln!(
                s,
                "  {:<24} {:<12} {:>10}",
                e.id,
                e.kind.name(),
                e.to_version
            );
        }
        let _ = write!(s, "restore points:");
        for p in &points {
            let _ = write!(s, "\n  {} at version {}", p.name, p.version);
        }
        s
    });
    Ok(())
}
