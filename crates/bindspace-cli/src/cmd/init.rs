//! `bindspace init`: an empty catalog on every destination.

use anyhow::Result;
use serde_json::json;

use crate::args::{RepoArgs, runtime};
use crate::output::emit;

pub fn run(r: &RepoArgs) -> Result<()> {
    let rt = runtime()?;
    let repo = r.repository_or_new(&rt)?;
    rt.block_on(repo.init())?;
    emit(r.json, json!({ "initialized": repo.names() }), || {
        format!("initialized {}", repo.names().join(", "))
    });
    Ok(())
}
