//! `bindspace show ID`: one backup of the catalog.

use anyhow::{Result, bail};

use crate::args::{RepoArgs, runtime};
use crate::output::emit_serialized;

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
        serde_json::to_string_pretty(e).unwrap_or_else(|err| format!("{e:?} ({err})"))
    })
}
