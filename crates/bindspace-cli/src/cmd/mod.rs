//! The repository commands, one file each (Litestream's `cmd/litestream/*.go`
//! layout): `init`, `key`, `backup`, `list`, `spaces`, `show`, `restore`, `explain`, `restore-point`,
//! `retention apply`, `compact`, `as-of`, `versions`, `timeline list|show`, `rewind`, `verify`, `dr drill|report`, `replicate`, `standby run|promote`, `export`, `serve`, `status`.

use anyhow::Result;

use crate::args::RepoArgs;

mod as_of;
mod backup;
mod compact;
mod dr;
mod explain;
mod export;
mod init;
mod key;
mod list;
mod replicate;
mod restore;
mod restore_point;
mod retention;
mod rewind;
mod serve;
mod show;
mod spaces;
mod standby;
mod status;
mod timeline;
mod verify;
mod versions;

/// Repository subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum Op {
    /// Create an empty catalog on every destination (`--encrypt`: an encrypted
    /// repository).
    Init(init::Args),
    /// An encrypted repository's keys: `list`, `add`, `remove`, `rotate`
    /// (`--reencrypt`, `--master`), `reencrypt`, `export`.
    #[command(subcommand)]
    Key(key::KeyOp),
    /// Back up an engine data directory (not open in another process).
    Backup(backup::Args),
    /// List the backups in the catalog.
    List(RepoArgs),
    /// The spaces the repository holds (one per engine sharing it; `--space` picks
    /// one for any command).
    Spaces(RepoArgs),
    /// Show one backup.
    Show(show::Args),
    /// Restore to a version, time or restore point.
    Restore(restore::Args),
    /// Show how a restore would run: artifacts, stores, bytes.
    Explain(explain::Args),
    /// Named restore points.
    #[command(subcommand)]
    RestorePoint(restore_point::PointOp),
    /// Retention.
    #[command(subcommand)]
    Retention(retention::RetentionOp),
    /// Fold the chain into a new full at the latest version.
    Compact(RepoArgs),
    /// Read one address as of a target, without a full restore.
    AsOf(as_of::Args),
    /// An address's history from the WAL archive.
    Versions(versions::Args),
    /// Put a stopped engine's data directory back to a version, time or restore point
    /// of its history, continuing on a new timeline (the bad-deploy runbook).
    Rewind(rewind::Args),
    /// The repository's histories and where each branched (`list`, `show N`).
    #[command(subcommand)]
    Timeline(timeline::TimelineOp),
    /// Prove what every store holds will restore; name damage; repair it with --repair.
    Verify(verify::Args),
    /// Restore drills that measure RTO and RPO (`drill`), and their history (`report`).
    #[command(subcommand)]
    Dr(dr::DrOp),
    /// A restored target as JSON, NDJSON, CSV or Parquet (one row per occupied
    /// address), to stdout or --out.
    Export(export::Args),
    /// Run the engine on a data directory with its HTTP admin API (auth, OpenAPI,
    /// metrics); see docs/OPERATIONS.md.
    Serve(serve::Args),
    /// A running engine's state, lags, and last backup, verify and drill (asked of
    /// `bindspace serve` over its API).
    Status(status::Args),
    /// Copy the repository into another store (another region, another kind),
    /// incrementally and checked on both ends; `--follow` keeps copying.
    Replicate(replicate::Args),
    /// A warm standby that follows the archive (`run`), and its promotion into a
    /// writing engine on a new timeline (`promote`).
    #[command(subcommand)]
    Standby(standby::StandbyOp),
}

/// Runs one repository command.
pub fn run(op: Op) -> Result<()> {
    match op {
        Op::Init(a) => init::run(&a),
        Op::Key(k) => key::run(k),
        Op::Backup(a) => backup::run(a),
        Op::List(r) => list::run(&r),
        Op::Spaces(r) => spaces::run(&r),
        Op::Show(a) => show::run(&a),
        Op::Restore(a) => restore::run(&a),
        Op::Explain(a) => explain::run(&a),
        Op::RestorePoint(p) => restore_point::run(p),
        Op::Retention(r) => retention::run(r),
        Op::Compact(r) => compact::run(&r),
        Op::AsOf(a) => as_of::run(&a),
        Op::Versions(a) => versions::run(&a),
        Op::Timeline(t) => timeline::run(t),
        Op::Rewind(a) => rewind::run(&a),
        Op::Verify(a) => verify::run(&a),
        Op::Dr(d) => dr::run(d),
        Op::Replicate(a) => replicate::run(&a),
        Op::Export(a) => export::run(&a),
        Op::Serve(a) => serve::run(&a),
        Op::Status(a) => status::run(&a),
        Op::Standby(s) => standby::run(s),
    }
}
