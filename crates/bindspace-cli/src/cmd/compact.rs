//! `bindspace compact`: fold the chain into a new full at the latest version.

use anyhow::Result;
use bindspace_catalog::NewBackup;
use bindspace_pitr::Target;
use serde_json::json;

use crate::args::{RepoArgs, runtime, spinner};
use crate::output::emit;

pub fn run(r: &RepoArgs) -> Result<()> {
    let rt = runtime()?;
    let repo = r.repository(&rt)?;
    let p = spinner("compacting");
    let res = rt.block_on(async {
        let (space, plan) =
            bindspace_pitr::restore_to(repo.destinations(), &Target::Latest).await?;
        let entry = repo.write_backup(NewBackup::full(&space, 0)).await?;
        anyhow::Ok((entry, plan.deltas.len()))
    });
    p.finish_and_clear();
    let (entry, folded) = res?;
    emit(
        r.json,
        json!({ "full": entry.id, "version": entry.to_version, "folded_deltas": folded }),
        || {
            format!(
                "new full {} at version {} folds {folded} deltas",
                entry.id, entry.to_version
            )
        },
    );
    Ok(())
}
