//! `bindspace spaces`: the spaces a repository holds (one per engine sharing it), each
//! with its backups and newest version, read from its own catalog.

use anyhow::Result;
use bindspace_catalog::SpaceName;
use serde_json::json;

use crate::args::{RepoArgs, runtime};
use crate::output::{emit, table};

pub fn run(r: &RepoArgs) -> Result<()> {
    let rt = runtime()?;
    r.check_local_paths()?;
    let mut names = std::collections::BTreeSet::new();
    let mut conns = Vec::new();
    let urls = r.urls();
    for url in &urls {
        // a destination that is down is said and skipped: the others still answer
        let listed = rt.block_on(async {
            let conn = bindspace::stores::Connection::open(url, r.timeout()).await?;
            let here = conn.spaces().await?;
            Ok::<_, bindspace_catalog::Error>((conn, here))
        });
        match listed {
            Ok((conn, here)) => {
                names.extend(here.iter().cloned());
                conns.push((conn, here));
            }
            Err(e) => eprintln!("warning: {e}; its spaces are not listed"),
        }
    }
    anyhow::ensure!(
        !conns.is_empty(),
        "no destination of {} answered",
        urls.join(", ")
    );
    // the root space is listed when it holds a catalog on any destination
    let root = SpaceName::default();
    let mut rows = Vec::new();
    for name in std::iter::once(root.clone()).chain(names.into_iter().filter(|n| !n.is_default())) {
        let mut best: Option<bindspace_catalog::Manifest> = None;
        // only where the space is (opening a space on PostgreSQL creates its schema)
        for (conn, here) in &conns {
            if !name.is_default() && !here.contains(&name) {
                continue;
            }
            let store = rt.block_on(conn.space(&name))?;
            if let Ok(Some((_, m))) = rt.block_on(store.read_manifest())
                && best
                    .as_ref()
                    .is_none_or(|b| b.entries.len() < m.entries.len())
            {
                best = Some(m);
            }
        }
        match best {
            Some(m) => rows.push((name, m)),
            None if name.is_default() => {}
            None => rows.push((name, Default::default())),
        }
    }
    let as_json: Vec<_> = rows
        .iter()
        .map(|(n, m)| {
            json!({
                "space": n.as_str(),
                "backups": m.entries.len(),
                "newest_version": m.entries.iter().map(|e| e.to_version).max(),
                "repository_id": m.repository_id,
                "encrypted": m.keyring.is_some(),
            })
        })
        .collect();
    emit(r.json, json!(as_json), || {
        let t: Vec<Vec<String>> = rows
            .iter()
            .map(|(n, m)| {
                vec![
                    n.to_string(),
                    m.entries.len().to_string(),
                    m.entries
                        .iter()
                        .map(|e| e.to_version)
                        .max()
                        .map_or_else(|| "-".into(), |v| v.to_string()),
                    if m.keyring.is_some() { "yes" } else { "no" }.into(),
                ]
            })
            .collect();
        let mut s = table(
            &["space", "backups", "newest version", "encrypted"],
            &t,
            &[1, 2],
        );
        s.push_str(&format!(
            "{} spaces; `--space NAME` (or BINDSPACE_SPACE) picks one for any command",
            rows.len()
        ));
        s
    });
    Ok(())
}
