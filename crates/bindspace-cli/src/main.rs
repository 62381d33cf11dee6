//! `bindspace`: the operator's command for backing up and restoring a BindSpace.
//!
//! Commands: `demo` (the embedded path end to end), `init`, `backup`, `list`, `show`,
//! `restore`, `explain`, `restore-point`, `retention apply`, `compact`, `as-of`,
//! `versions` (a repository given by `--repo URL`, repeatable, or `$BINDSPACE_REPO`),
//! and `migrate plan|apply`.
//!
//! Files: one per repository command under `cmd/`, shared arguments in `args.rs`, the
//! human/JSON output helper in `output.rs`, exit codes from error kinds in `exit.rs`.
//!
//! Exit codes: 0 success; 1 failure (the message says why); 2 bad arguments; 3 busy:
//! another backup holds the repository's lease ("backup in progress"), or a running
//! engine holds the data directory; 4 the target cannot be restored from what the
//! stores hold.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod args;
mod cmd;
mod demo;
mod exit;
mod migrate;
mod output;

/// Back up, restore and inspect BindSpaces.
#[derive(Parser, Debug)]
#[command(name = "bindspace", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a seeded workload, back it up to a local directory (full snapshot + deltas),
    /// restore the newest and an older version, and check both against their digests.
    Demo(DemoArgs),
    /// Plan or run a schema migration of a snapshot (`plan`, `apply`).
    #[command(subcommand)]
    Migrate(migrate::MigrateCommand),
    #[command(flatten)]
    Repo(cmd::Op),
}

/// Options of `bindspace demo`.
#[derive(clap::Args, Debug, Clone)]
pub struct DemoArgs {
    /// Directory for the backup files (default: a fresh temporary directory, removed
    /// afterwards).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Workload seed; the same seed gives the same run.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Number of incremental rounds after the full snapshot.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub rounds: u32,
    /// Operations per round.
    #[arg(long, default_value_t = 2_000)]
    pub ops: usize,
    /// Share of addresses occupied before the first snapshot (0.0–1.0).
    #[arg(long, default_value_t = 0.5)]
    pub fill: f64,
    /// Words per fingerprint.
    #[arg(long, default_value_t = 156, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub words: u16,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let res = match cli.command {
        Command::Demo(args) => demo::run(&args),
        Command::Migrate(cmd) => migrate::run(&cmd),
        Command::Repo(op) => cmd::run(op),
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bindspace: error: {e:#}");
            ExitCode::from(exit::code(&e))
        }
    }
}
