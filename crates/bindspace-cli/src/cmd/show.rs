//! `bindspace show ID`: one backup of the catalog, field by field in words (`--json`
//! for the catalog entry itself).

use anyhow::{Result, bail};
use bindspace_http::time::{ago, rfc3339};

use crate::args::{RepoArgs, runtime};
use crate::output::{emit_serialized, now_us, size, table};

/// `bindspace show`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    repo: RepoArgs,
    /// Its id (from `list`).
    id: String,
}

pub fn run(a: &Args) -> Result<()> {
    let rt = runtime()?;
    let repo = a.repo.repository(&rt)?;
    let m = crate::args::catalog(&rt, &repo)?;
    let Some(e) = m.entries.iter().find(|e| e.id == a.id) else {
        bail!("no backup {:?} in the catalog (see `bindspace list`)", a.id);
    };
    emit_serialized(a.repo.json, e, || {
        let now = now_us();
        let at = |us: u64| format!("{} ({})", rfc3339(us), ago(us, now));
        let s = &e.schema;
        let children: Vec<&str> = m
            .entries
            .iter()
            .filter(|c| c.parent.as_deref() == Some(e.id.as_str()))
            .map(|c| c.id.as_str())
            .collect();
        let rows = [
            ("backup", e.id.clone()),
            ("kind", e.kind.name().to_owned()),
            ("status", format!("{:?}", e.status).to_lowercase()),
            ("timeline", e.timeline.to_string()),
            (
                "versions",
                if e.from_version == e.to_version {
                    format!("the state at version {}", e.to_version)
                } else {
                    format!(
                        "{}..={} (brings version {} to {})",
                        e.from_version, e.to_version, e.from_version, e.to_version
                    )
                },
            ),
            ("started", at(e.start_us)),
            ("finished", at(e.end_us)),
            (
                "took",
                format!("{:.1} s", e.end_us.saturating_sub(e.start_us) as f64 / 1e6),
            ),
            ("size", format!("{} ({} bytes)", size(e.size), e.size)),
            ("builds on", e.parent.clone().unwrap_or_else(|| "-".into())),
            (
                "built on by",
                if children.is_empty() {
                    "-".into()
                } else {
                    children.join(", ")
                },
            ),
            ("artifact", e.artifact.to_string()),
            ("stores", e.locations.join(", ")),
            (
                "schema",
                format!(
                    "{}.{}.{}, {} words per fingerprint, {} addresses, features {:#x}",
                    s.major, s.minor, s.patch, s.fingerprint_words, s.address_space, s.features
                ),
            ),
            (
                "state root",
                e.root.clone().unwrap_or_else(|| "not recorded".into()),
            ),
        ];
        let rows: Vec<Vec<String>> = rows
            .into_iter()
            .map(|(k, v)| vec![k.to_owned(), v])
            .collect();
        let mut t = table(&["", ""], &rows, &[]);
        // the empty header line
        t.drain(..t.find('\n').map_or(0, |i| i + 1));
        t
    })
}
