//! `bindspace export`: a restored target as JSON, NDJSON, CSV or Parquet, one row per
//! occupied address, streamed to stdout or a file (see `bindspace_http::export`).

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::{Context, Result};
use bindspace_http::export::{self, Format, Meta};

use crate::args::{RepoArgs, TargetArgs, TimelineArg, runtime, spinner};

/// `bindspace export`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    repo: RepoArgs,
    #[command(flatten)]
    target: TargetArgs,
    #[command(flatten)]
    timeline: TimelineArg,
    /// json, ndjson, csv or parquet.
    #[arg(long, default_value = "json", value_parser = ["json", "ndjson", "csv", "parquet"])]
    format: String,
    /// Write here instead of stdout (replaced only once the export is complete).
    #[arg(long)]
    out: Option<PathBuf>,
}

pub fn run(a: &Args) -> Result<()> {
    let format = Format::parse(&a.format).expect("clap allows only known formats");
    let rt = runtime()?;
    let sources = a.repo.sources(&rt)?;
    let t = a.target.target();
    let p = spinner(&format!("restoring {t}"));
    let res = rt.block_on(async {
        let plan = bindspace_pitr::plan_on(&sources, &t, a.timeline.timeline).await?;
        let (space, _) = bindspace_pitr::restore_verified(&plan).await?;
        Ok::<_, bindspace_pitr::Error>((space, plan))
    });
    p.finish_and_clear();
    let (space, plan) = res?;
    let meta = Meta::of(&space, plan.timeline);
    let rows = match &a.out {
        None => {
            let out = std::io::BufWriter::with_capacity(256 * 1024, std::io::stdout());
            export::write(&space, &meta, format, out)?
        }
        Some(path) => {
            let mut tmp = path.clone().into_os_string();
            tmp.push(".partial");
            let tmp = PathBuf::from(tmp);
            let written = (|| -> Result<u64> {
                let f = std::fs::File::create(&tmp)
                    .with_context(|| format!("creating {}", tmp.display()))?;
                let mut w = std::io::BufWriter::with_capacity(256 * 1024, f);
                let rows = export::write(&space, &meta, format, &mut w)?;
                w.flush()?;
                w.into_inner()
                    .map_err(|e| e.into_error())?
                    .sync_all()
                    .with_context(|| format!("syncing {}", tmp.display()))?;
                std::fs::rename(&tmp, path)
                    .with_context(|| format!("renaming into {}", path.display()))?;
                Ok(rows)
            })();
            if written.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            written?
        }
    };
    eprintln!(
        "exported {rows} addresses of version {} (timeline {}, digest {}) as {}",
        meta.version,
        meta.timeline,
        meta.digest,
        format.name()
    );
    Ok(())
}
