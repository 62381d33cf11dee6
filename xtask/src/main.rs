//! `cargo xtask`: the project's automation. `cargo xtask help` lists the tasks.
//!
//! Everything CI does goes through here, so a developer can run exactly what CI runs.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

use anyhow::{Context, Result, bail};

mod benchmarks;
mod doctor;
mod layering;
mod services;
mod tidy;

const HELP: &str = "\
cargo xtask <task>

  test                 everything CI checks: doctor, fmt, tidy, layering, one
                       build of all targets linted by clippy -D warnings, the
                       workspace tests (nextest), doc tests, loom, cargo deny
  crash [--kills N] [--power-losses M]
                       the WAL crash tests: kill a writer N times (default 1000),
                       and M seeded power losses on a simulated disk (default 10000)
  bench [ARGS..]       criterion benches (ARGS go to `cargo bench`), then the
                       ratio table; `--all` adds the store, warm-tier, PITR and
                       Lance benches (servers started here), `--lance` only Lance;
                       `--peers` ours beside restic, borg, xdelta3 and zstd;
                       `--report-only` prints the table of the last run
  fuzz [--seconds S]   each cargo-fuzz target for S seconds (default 60; needs nightly)
  doctor [--check]     every tool and file the build and tests read: present
                       (version, path), installed now, or missing (with the
                       command that installs it); --check installs nothing
  deny                 cargo deny check (installs cargo-deny if missing)
  services up|down|status
                       real servers for the tests (S3: moto) on free loopback
                       ports; `up` prints `export` lines for a shell
  layering             only the dependency-layering invariants
  tidy                 only the manifest and source-file conventions
  publish-check        only `cargo publish --dry-run` of every published crate
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let res = match args.first().map(String::as_str) {
        Some("test") => test(),
        Some("crash") => crash(&args[1..]),
        Some("bench") => bench(&args[1..]),
        Some("fuzz") => fuzz(&args[1..]),
        Some("deny") => deny(),
        Some("doctor") => doctor::cli(&args[1..]),
        Some("services") => services::cli(&args[1..]),
        Some("layering") => layering::check(&root()),
        Some("tidy") => tidy::check(&root()),
        Some("publish-check") => publish_dry_run(),
        Some("help") | Some("--help") | Some("-h") | None => {
            print!("{HELP}");
            Ok(())
        }
        Some(other) => Err(anyhow::anyhow!("unknown task {other:?}\n\n{HELP}")),
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root.
/// The workspace root of the checkout `cargo xtask` was run in.
///
/// Read at run time (`cargo run` sets `CARGO_MANIFEST_DIR`), not baked in at compile
/// time: clones at different paths share one cached target dir, and cargo does not
/// re-copy a binary that is already fresh, so a baked path could name another clone.
pub fn root() -> PathBuf {
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    Path::new(&manifest_dir)
        .parent()
        .expect("xtask lives one level below the root")
        .to_path_buf()
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    without_run_env(&mut c);
    c
}

/// Removes what `cargo run` put into xtask's own environment about xtask (its manifest
/// directory, package name and version…) from a command xtask starts. Build scripts
/// (ring's, through `cc`) ask cargo to rebuild when `CARGO_MANIFEST_DIR` or
/// `CARGO_PKG_NAME` change, and cargo compares the values in *its* environment: left
/// in, every clone at another path (each CI run) would rebuild ring and all that
/// depends on it (the lance stack), and so would any build run from a shell.
pub fn without_run_env(c: &mut Command) -> &mut Command {
    for (k, _) in std::env::vars_os() {
        let Some(k) = k.to_str() else { continue };
        if k.starts_with("CARGO_PKG_")
            || k.starts_with("CARGO_MANIFEST_")
            || matches!(
                k,
                "CARGO_CRATE_NAME" | "CARGO_BIN_NAME" | "CARGO_PRIMARY_PACKAGE" | "OUT_DIR"
            )
        {
            c.env_remove(k);
        }
    }
    c
}

/// Runs a command, echoing it; fails on a non-zero exit.
pub fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("$ {}", show(cmd));
    let status = cmd
        .status()
        .with_context(|| format!("could not start {}", show(cmd)))?;
    if !status.success() {
        bail!("{} failed ({status})", show(cmd));
    }
    Ok(())
}

/// Runs a command, echoing it and its output as it comes, and returns the output.
fn run_tee(cmd: &mut Command) -> Result<String> {
    use std::io::{BufRead, BufReader};
    eprintln!("$ {}", show(cmd));
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("could not start {}", show(cmd)))?;
    let stderr = child.stderr.take().expect("piped");
    let err_thread = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("{line}");
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let mut out = String::new();
    for line in BufReader::new(child.stdout.take().expect("piped"))
        .lines()
        .map_while(Result::ok)
    {
        println!("{line}");
        out.push_str(&line);
        out.push('\n');
    }
    let status = child.wait()?;
    out.push_str(&err_thread.join().unwrap_or_default());
    if !status.success() {
        bail!("{} failed ({status})", show(cmd));
    }
    Ok(out)
}

fn show(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Counts from nextest's summary (`N tests run: P passed, ... F failed`) and libtest's
/// `test result:` lines.
fn count_tests(out: &str) -> (u64, u64) {
    let mut passed = 0;
    let mut failed = 0;
    let num_before = |line: &str, word: &str| -> Option<u64> {
        let i = line.find(word)?;
        line[..i]
            .split_whitespace()
            .last()?
            .trim_matches(',')
            .parse()
            .ok()
    };
    for line in out.lines() {
        let l = line.trim();
        if l.starts_with("Summary") || l.starts_with("test result:") {
            passed += num_before(l, " passed").unwrap_or(0);
            failed += num_before(l, " failed").unwrap_or(0);
        }
    }
    (passed, failed)
}

/// Wall-clock time of each phase of `cargo xtask test`, printed at the end (the figures
/// in docs/TESTING.md come from here).
struct Phases {
    started: Instant,
    last: Instant,
    done: Vec<(String, std::time::Duration)>,
}

impl Phases {
    fn new() -> Self {
        let now = Instant::now();
        Phases {
            started: now,
            last: now,
            done: Vec::new(),
        }
    }

    fn done(&mut self, name: impl Into<String>) {
        let now = Instant::now();
        self.done.push((name.into(), now - self.last));
        self.last = now;
    }

    fn report(&self) -> String {
        let mut s = String::from("xtask test phases:\n");
        for (name, d) in &self.done {
            s.push_str(&format!("  {:>7.1} s  {name}\n", d.as_secs_f64()));
        }
        s.push_str(&format!(
            "  {:>7.1} s  total\n",
            self.started.elapsed().as_secs_f64()
        ));
        s
    }
}

/// The environment that makes cargo lint every workspace crate with clippy while it
/// compiles it (what `cargo clippy` sets up, on a build instead of a check): the
/// dependencies, lance's stack among them, are then compiled once for lints and tests
/// alike, instead of once as metadata for clippy and again for the tests.
fn clippy_wrapper_env() -> Result<Vec<(String, String)>> {
    let out = Command::new("rustup")
        .args(["which", "clippy-driver"])
        .output();
    let driver = match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_string(),
        _ => doctor::which("clippy-driver")
            .context("clippy-driver not found (rustup component add clippy)")?
            .display()
            .to_string(),
    };
    Ok(vec![
        ("RUSTC_WORKSPACE_WRAPPER".into(), driver),
        (
            "CLIPPY_ARGS".into(),
            "-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__".into(),
        ),
    ])
}

fn test() -> Result<()> {
    let mut phases = Phases::new();
    let ci = std::env::var_os("CI").is_some();
    // Everything the build and the tests read is checked (and installed) first, so a
    // missing file fails here with a list, not minutes later in a build script.
    // cargo-deny builds from source on a fresh machine: that happens in the background,
    // beside the workspace build.
    let mut build_env = doctor::doctor(&doctor::all_but_deny(), true)?;
    phases.done("doctor");
    let deny_log = target_dir().join("xtask-cargo-deny-install.log");
    let deny_install =
        std::thread::spawn(move || doctor::ensure_quietly(&doctor::CARGO_DENY, &deny_log));

    run(cargo().args(["fmt", "--all", "--", "--check"]))?;
    tidy::check(&root())?;
    layering::check(&root())?;
    publish_dry_run()?;
    phases.done("fmt, tidy, layering, publish dry run");

    build_env.extend(clippy_wrapper_env()?);
    build_env.push(("BINDSPACE_XTASK".into(), "1".into()));
    // No incremental caches: they grew to 23 GB in the shared target directory and
    // filled this machine's disk mid-test (each clean clone of CI adds its own).
    build_env.push(("CARGO_INCREMENTAL".into(), "0".into()));
    // One compilation of every target (benches and examples too, as clippy's
    // --all-targets did), linted with -D warnings; nextest and the doc tests reuse it.
    run(cargo()
        .args([
            "test",
            "--workspace",
            "--all-targets",
            "--locked",
            "--no-run",
        ])
        .envs(build_env.iter().map(|(k, v)| (k, v))))?;
    phases.done("build + clippy -D warnings (all targets)");
    // Test executables of earlier builds (every clone, every change leaves its own):
    // they filled this machine's disk twice (50 GB in one afternoon of changes). Those
    // this build did not produce, two hours old or more (older than any run that may
    // still use them: CI stops at 90 minutes), go.
    match current_test_executables(&build_env)
        .and_then(|keep| prune_test_executables(&target_dir().join("debug").join("deps"), &keep))
    {
        Ok((n, bytes)) if n > 0 => eprintln!(
            "xtask: removed {n} stale test executables ({:.1} GB)",
            bytes as f64 / 1e9
        ),
        Ok(_) => {}
        Err(e) => eprintln!("xtask: could not prune stale test executables: {e}"),
    }

    // Real servers for the tests; stopped afterwards by pid, also when tests fail.
    let env = match services::up() {
        Ok(env) => env,
        Err(e) => {
            let _ = services::down();
            return Err(e.context("starting the test services (S3, Redis, PostgreSQL)"));
        }
    };
    phases.done("services up");
    let tested = (|| -> Result<_> {
        // The test binaries see BINDSPACE_XTASK and turn skips into failures.
        let out = run_tee(
            cargo()
                .args([
                    "nextest",
                    "run",
                    "--workspace",
                    "--locked",
                    "--no-fail-fast",
                ])
                .envs(build_env.iter().map(|(k, v)| (k, v)))
                .envs(env.iter().map(|(k, v)| (k, v))),
        )?;
        let nextest_counts = count_tests(&out);
        phases.done("nextest");
        let out = run_tee(
            cargo()
                .args(["test", "--workspace", "--locked", "--doc"])
                .envs(build_env.iter().map(|(k, v)| (k, v)))
                .envs(env.iter().map(|(k, v)| (k, v))),
        )?;
        phases.done("doc tests");
        Ok((nextest_counts, count_tests(&out)))
    })();
    let stopped = services::down();
    let ((p1, f1), (p2, f2)) = tested?;
    stopped?;

    // Loom changes RUSTFLAGS, so it builds in a target directory of its own.
    let loom_target = target_dir().join("loom");
    let out = run_tee(
        cargo()
            .args([
                "test",
                "--locked",
                "-p",
                "bindspace-wal",
                "--test",
                "loom_group_commit",
            ])
            .env("RUSTFLAGS", "--cfg loom")
            .env("LOOM_MAX_PREEMPTIONS", "2")
            .env("CARGO_TARGET_DIR", &loom_target),
    )?;
    let (p3, f3) = count_tests(&out);
    if p3 == 0 {
        bail!("the loom models ran no test");
    }
    phases.done(format!("loom ({p3} models)"));

    // cargo-deny: its install ran beside the build; licenses, bans and sources must pass.
    match deny_install.join() {
        Ok(Ok(())) => deny_checks()?,
        Ok(Err(e)) => bail!("cargo-deny could not be installed: {e:#}"),
        Err(_) => bail!("the cargo-deny install thread panicked"),
    }
    phases.done("cargo deny (incl. waiting for its install)");

    eprintln!(
        "\nxtask test: nextest {p1} passed, doc tests {p2} passed, loom {p3} models{}\n{}",
        if ci { " (CI)" } else { "" },
        phases.report()
    );
    println!("{} passed, {} failed", p1 + p2 + p3, f1 + f2 + f3);
    Ok(())
}

/// The test executables the workspace build produces (what cargo reports for a build
/// that is already fresh: a second or two).
fn current_test_executables(build_env: &[(String, String)]) -> Result<Vec<PathBuf>> {
    let out = cargo()
        .args([
            "test",
            "--workspace",
            "--all-targets",
            "--locked",
            "--no-run",
            "--message-format=json",
        ])
        .envs(build_env.iter().map(|(k, v)| (k, v)))
        .stderr(std::process::Stdio::null())
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let keep: Vec<PathBuf> = text
        .lines()
        .filter_map(|l| {
            let rest = l.split_once("\"executable\":\"")?.1;
            let path = rest.split_once('"')?.0;
            Some(PathBuf::from(path))
        })
        .collect();
    if !out.status.success() || keep.is_empty() {
        bail!("cargo did not list the test executables");
    }
    Ok(keep)
}

/// Removes the executables in `deps` (`<stem>-<16 hex>`, no extension) that are not in
/// `keep`, are not linked elsewhere (a binary cargo copied up to `debug/`) and were not
/// written within the last day (another run sharing the target directory may be using
/// its own). Returns how many went and their bytes.
fn prune_test_executables(deps: &Path, keep: &[PathBuf]) -> Result<(usize, u64)> {
    use std::os::unix::fs::MetadataExt;
    let canon = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
    let keep: Vec<PathBuf> = keep.iter().map(|k| canon(k)).collect();
    let stale = std::time::Duration::from_secs(2 * 3600);
    let (mut n, mut bytes) = (0, 0);
    for e in std::fs::read_dir(deps)? {
        let path = canon(&e?.path());
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let is_exe = name
            .rsplit_once('-')
            .is_some_and(|(_, h)| h.len() == 16 && h.bytes().all(|b| b.is_ascii_hexdigit()))
            && path.extension().is_none();
        if !is_exe || keep.iter().any(|k| k == &path) {
            continue;
        }
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        let recent = meta
            .modified()
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_none_or(|age| age < stale);
        if meta.nlink() > 1 || recent {
            continue;
        }
        let len = meta.len();
        if std::fs::remove_file(&path).is_ok() {
            let _ = std::fs::remove_file(path.with_extension("d"));
            n += 1;
            bytes += len;
        }
    }
    Ok((n, bytes))
}

/// Every published crate packages for crates.io (`cargo publish --dry-run`, all of
/// them together so they may depend on each other before any is on crates.io). The
/// compile check of each package is left to the test build, which compiles the same
/// sources; `--no-verify` keeps this step to seconds.
fn publish_dry_run() -> Result<()> {
    run(cargo().args([
        "publish",
        "--workspace",
        "--dry-run",
        "--no-verify",
        "--locked",
        "--allow-dirty",
        "--quiet",
    ]))
}

/// The build's target directory (`CARGO_TARGET_DIR` or `<root>/target`).
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
}

fn crash(args: &[String]) -> Result<()> {
    let kills = flag_value(args, "--kills")?.unwrap_or(1000);
    let seeds = flag_value(args, "--power-losses")?.unwrap_or(10_000);
    run(cargo()
        .args([
            "nextest",
            "run",
            "-p",
            "bindspace-wal",
            "-p",
            "bindspace",
            "--test",
            "crash",
            "--test",
            "power_loss",
            "--no-capture",
        ])
        .env("BINDSPACE_CRASH_KILLS", kills.to_string())
        .env("BINDSPACE_POWER_LOSS_SEEDS", seeds.to_string())
        .env("BINDSPACE_ENGINE_POWER_LOSS_SEEDS", seeds.to_string())
        .env("BINDSPACE_XTASK", "1"))
}

/// `cargo xtask bench [--all | --lance | --peers | --report-only] [cargo bench args]`:
/// the foundation, WAL and migration benches; `--all` also the store, warm-tier and
/// PITR benches against real servers (started and stopped here) and the Lance bench;
/// `--lance` only the Lance bench; `--peers` our incrementals and restores side by side
/// with restic, borg, xdelta3 and zstd (installed from Debian when missing).
fn bench(args: &[String]) -> Result<()> {
    match args.first().map(String::as_str) {
        Some("--report-only") => {}
        Some("--all") => {
            let protoc_env = doctor::doctor(&doctor::lance_build(), true)?;
            let env = services::up()?;
            let res = run(cargo()
                .args([
                    "bench",
                    "-p",
                    "bindspace-benches",
                    "--features",
                    "store,warm,pitr,dr",
                    // every bench of those features but the peers (`--peers`: it
                    // needs restic, borg, xdelta3 and zstd installed)
                    "--bench",
                    "foundation",
                    "--bench",
                    "wal",
                    "--bench",
                    "migrate",
                    "--bench",
                    "store",
                    "--bench",
                    "warm",
                    "--bench",
                    "pitr",
                    "--bench",
                    "dr",
                    "--bench",
                    "standby",
                    "--bench",
                    "memory",
                ])
                .args(&args[1..])
                .envs(protoc_env.iter().map(|(k, v)| (k, v)))
                .envs(env.iter().map(|(k, v)| (k, v))));
            let res = res.and_then(|()| lance_bench());
            services::down()?;
            res?;
        }
        Some("--lance") => lance_bench()?,
        Some("--peers") => {
            doctor::doctor(&doctor::peers(), true)?;
            run(cargo()
                .args([
                    "bench",
                    "-p",
                    "bindspace-benches",
                    "--features",
                    "pitr",
                    "--bench",
                    "peers",
                ])
                .args(&args[1..]))?;
            return Ok(());
        }
        _ => run(cargo()
            .args(["bench", "-p", "bindspace-benches"])
            .args(args))?,
    }
    benchmarks::report()
}

/// Lance vs native snapshots in one run, in the test profile (Lance's release build
/// takes about 30 minutes on two cores).
fn lance_bench() -> Result<()> {
    let protoc_env = doctor::doctor(&doctor::lance_build(), true)?;
    run(cargo().envs(protoc_env).args([
        "bench",
        "-p",
        "bindspace-benches",
        "--features",
        "lance",
        "--profile",
        "test",
        "--bench",
        "store",
        "--",
        "store_lance",
    ]))
}

fn fuzz(args: &[String]) -> Result<()> {
    let seconds = flag_value(args, "--seconds")?.unwrap_or(60);
    if Command::new("cargo")
        .args(["fuzz", "--version"])
        .output()
        .map(|o| !o.status.success())
        .unwrap_or(true)
    {
        run(Command::new("cargo").args(["install", "cargo-fuzz", "--locked"]))?;
    }
    for target in ["snapshot_decode", "delta_decode", "wal_frame_decode"] {
        run(Command::new("cargo")
            .current_dir(root().join("fuzz"))
            .args(["+nightly", "fuzz", "run", target, "--"])
            .arg(format!("-max_total_time={seconds}")))?;
    }
    Ok(())
}

/// Licenses, bans and sources must pass. Advisories need the RustSec database from
/// GitHub; where it cannot be fetched, that is reported, not hidden.
fn deny_checks() -> Result<()> {
    run(cargo().args([
        "deny",
        "--workspace",
        "check",
        "licenses",
        "bans",
        "sources",
    ]))?;
    let out = cargo()
        .args(["deny", "--workspace", "check", "advisories"])
        .output()
        .context("running cargo deny")?;
    let text = String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        eprintln!("xtask deny: advisories ok");
    } else if text.contains("failed to fetch advisory database") {
        eprintln!(
            "xtask deny: advisories NOT checked: the RustSec database cannot be fetched from this machine"
        );
    } else {
        eprintln!("{text}");
        bail!("cargo deny check advisories failed");
    }
    Ok(())
}

fn deny() -> Result<()> {
    doctor::doctor(&[doctor::CARGO_DENY], true)?;
    deny_checks()
}

fn flag_value(args: &[String], flag: &str) -> Result<Option<u64>> {
    match args.iter().position(|a| a == flag) {
        None => Ok(None),
        Some(i) => {
            let v = args
                .get(i + 1)
                .with_context(|| format!("{flag} needs a value"))?;
            Ok(Some(v.parse().with_context(|| {
                format!("{flag} {v:?} is not a number")
            })?))
        }
    }
}
