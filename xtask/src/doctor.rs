//! `cargo xtask doctor`: every tool and file the build and the tests read, checked the
//! way they are read (not only whether a binary is on `PATH`), installed when missing.
//!
//! A check runs the thing the build will run: `protoc` must compile a file that imports
//! `google/protobuf/empty.proto` (what lance's build script needs), PostgreSQL's
//! `initdb` must answer `--version`, and so on. Whatever fails is installed from
//! Debian, PyPI or crates.io, with the command printed, and checked again. `cargo
//! xtask test` runs this first and stops with the list when anything is still missing,
//! instead of failing minutes later inside a build script.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// How a missing prerequisite is installed.
#[derive(Clone, Copy)]
pub enum Install {
    /// Debian packages (`apt-get install --no-install-recommends`).
    Apt(&'static [&'static str]),
    /// A PyPI requirement (`python3 -m pip install`).
    Pip(&'static str),
    /// A crates.io binary (`cargo install --locked`); `fast` builds without the crate's
    /// fat LTO and single codegen unit (a tool we run once per test, not a hot path).
    Cargo { krate: &'static str, fast: bool },
    /// A rustup component.
    Rustup(&'static str),
}

impl Install {
    /// The command, as an operator would type it.
    pub fn command(self) -> String {
        match self {
            Install::Apt(p) => format!(
                "apt-get update && apt-get install -y --no-install-recommends {}",
                p.join(" ")
            ),
            Install::Pip(r) => format!("python3 -m pip install '{r}'"),
            Install::Cargo { krate, fast: true } => format!(
                "CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
                 cargo install {krate} --locked"
            ),
            Install::Cargo { krate, fast: false } => format!("cargo install {krate} --locked"),
            Install::Rustup(c) => format!("rustup component add {c}"),
        }
    }

    /// The commands that install it, in order.
    fn commands(self) -> Vec<Command> {
        match self {
            Install::Apt(packages) => {
                let mut update = Command::new("apt-get");
                update
                    .args(["update", "-qq"])
                    .env("DEBIAN_FRONTEND", "noninteractive");
                let mut install = Command::new("apt-get");
                install
                    .args(["install", "-y", "-qq", "--no-install-recommends"])
                    .args(packages)
                    .env("DEBIAN_FRONTEND", "noninteractive");
                vec![update, install]
            }
            Install::Pip(req) => {
                let mut c = Command::new("python3");
                c.args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    req,
                ]);
                vec![c]
            }
            Install::Cargo { krate, fast } => {
                let mut c = Command::new(cargo_bin());
                c.args(["install", krate, "--locked"]);
                if fast {
                    c.env("CARGO_PROFILE_RELEASE_LTO", "false")
                        .env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "16");
                }
                // Not the workspace's target dir: a tool's release build shares nothing
                // with ours, and cargo install cleans up its own.
                c.env_remove("CARGO_TARGET_DIR");
                vec![c]
            }
            Install::Rustup(component) => {
                let mut c = Command::new("rustup");
                c.args(["component", "add", component]);
                vec![c]
            }
        }
    }

    /// Runs the install, its output on the terminal, or into `log` when given.
    fn run(self, log: Option<&Path>) -> Result<()> {
        for mut cmd in self.commands() {
            match log {
                None => crate::run(&mut cmd)?,
                Some(log) => {
                    let f = std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(log)
                        .with_context(|| format!("opening {}", log.display()))?;
                    eprintln!("$ {}  (output in {})", crate::show(&cmd), log.display());
                    let status = cmd
                        .stdout(f.try_clone()?)
                        .stderr(f)
                        .status()
                        .with_context(|| format!("could not start {}", crate::show(&cmd)))?;
                    if !status.success() {
                        let text = std::fs::read_to_string(log).unwrap_or_default();
                        let tail: Vec<&str> = text.lines().rev().take(20).collect();
                        let tail: Vec<&str> = tail.into_iter().rev().collect();
                        bail!(
                            "{} failed ({status}); the end of {}:\n{}",
                            crate::show(&cmd),
                            log.display(),
                            tail.join("\n")
                        );
                    }
                }
            }
        }
        Ok(())
    }
}

/// What a check found.
#[derive(Debug, Clone)]
pub struct Found {
    /// The version it reported.
    pub version: String,
    /// Where it is.
    pub path: PathBuf,
    /// Environment the build needs to find it (e.g. `PROTOC_INCLUDE`).
    pub env: Vec<(String, String)>,
}

/// One prerequisite of `cargo xtask test`.
pub struct Prereq {
    /// Its name in the report.
    pub name: &'static str,
    /// Who reads it.
    pub why: &'static str,
    check: fn() -> Result<Found, String>,
    /// How to install it.
    pub install: Install,
}

/// Where a prerequisite stands after [`ensure`].
#[derive(Debug)]
pub enum Status {
    /// It was there.
    Present(Found),
    /// It was missing and is there now.
    Installed(Found),
    /// Still missing: why the check failed, and (if an install was tried) why that did
    /// not help.
    Missing {
        /// The failed check.
        check: String,
        /// The failed install, if one was tried.
        install: Option<String>,
    },
}

/// Every prerequisite, in the order they are installed.
pub fn all() -> Vec<Prereq> {
    vec![
        Prereq {
            name: "rustfmt",
            why: "cargo fmt --check",
            check: || {
                version_of(
                    Command::new(cargo_bin()).args(["fmt", "--version"]),
                    "cargo-fmt",
                )
            },
            install: Install::Rustup("rustfmt"),
        },
        Prereq {
            name: "clippy-driver",
            why: "lints every workspace crate as the test build compiles it",
            check: || {
                version_of(
                    Command::new("clippy-driver").arg("--version"),
                    "clippy-driver",
                )
            },
            install: Install::Rustup("clippy"),
        },
        Prereq {
            name: "protoc",
            why: "lance-encoding's and lance-file's build scripts (prost-build)",
            check: check_protoc,
            install: Install::Apt(&["protobuf-compiler"]),
        },
        Prereq {
            name: "protobuf well-known .proto files",
            why: "lance's protos import google/protobuf/empty.proto",
            check: check_protoc_include,
            install: Install::Apt(&["libprotobuf-dev"]),
        },
        Prereq {
            name: "redis-server",
            why: "the warm-tier tests and their fault tests",
            check: || {
                version_of(
                    Command::new("redis-server").arg("--version"),
                    "redis-server",
                )
            },
            install: Install::Apt(&["redis-server"]),
        },
        Prereq {
            name: "redis-cli",
            why: "looking into the warm tier by hand during an incident (no test runs it)",
            check: || version_of(Command::new("redis-cli").arg("--version"), "redis-cli"),
            install: Install::Apt(&["redis-tools"]),
        },
        Prereq {
            name: "PostgreSQL (initdb, pg_ctl)",
            why: "the catalog-on-PostgreSQL tests start their own clusters",
            check: check_postgres,
            install: Install::Apt(&["postgresql"]),
        },
        Prereq {
            name: "python3 with pip",
            why: "installs and runs moto, the S3-compatible test server",
            check: || {
                version_of(
                    Command::new("python3").args(["-m", "pip", "--version"]),
                    "python3",
                )
            },
            install: Install::Apt(&["python3", "python3-pip"]),
        },
        Prereq {
            name: "moto_server",
            why: "the S3 tier's tests (an S3-compatible server on loopback)",
            check: check_moto,
            install: Install::Pip("moto[server]"),
        },
        Prereq {
            name: "schemathesis",
            why: "tests the HTTP API against its own OpenAPI document (every check)",
            check: || {
                version_of(
                    Command::new("python3").args([
                        "-c",
                        "import schemathesis; print('schemathesis', schemathesis.__version__)",
                    ]),
                    "schemathesis",
                )
            },
            install: Install::Pip("schemathesis>=4,<5"),
        },
        Prereq {
            name: "pyarrow",
            why: "reads the exports back (CSV and Parquet) independently of our writers",
            check: || {
                version_of(
                    Command::new("python3").args([
                        "-c",
                        "import pyarrow, pyarrow.parquet, pyarrow.csv; print('pyarrow', pyarrow.__version__)",
                    ]),
                    "pyarrow",
                )
            },
            install: Install::Pip("pyarrow"),
        },
        Prereq {
            name: "curl",
            why: "the runbook test runs the curl lines of docs/OPERATIONS.md as written",
            check: || version_of(Command::new("curl").arg("--version"), "curl"),
            install: Install::Apt(&["curl"]),
        },
        Prereq {
            name: "cargo-nextest",
            why: "runs the workspace tests",
            check: || {
                version_of(
                    Command::new(cargo_bin()).args(["nextest", "--version"]),
                    "cargo-nextest",
                )
            },
            install: Install::Cargo {
                krate: "cargo-nextest",
                fast: false,
            },
        },
        CARGO_DENY,
    ]
}

/// cargo-deny: installed in the background by `cargo xtask test` (it builds from
/// source, about three minutes, while the workspace compiles).
pub const CARGO_DENY: Prereq = Prereq {
    name: "cargo-deny",
    why: "cargo deny check (licenses, bans, sources, advisories)",
    check: || {
        version_of(
            Command::new(cargo_bin()).args(["deny", "--version"]),
            "cargo-deny",
        )
    },
    install: Install::Cargo {
        krate: "cargo-deny",
        fast: true,
    },
};

impl Prereq {
    /// Checks it now.
    pub fn check(&self) -> Result<Found, String> {
        (self.check)()
    }

    /// Checks it, installs it when missing, checks again.
    pub fn ensure(&self) -> Status {
        self.ensure_logged(None)
    }

    /// [`Prereq::ensure`], with the install's output going to `log` when given.
    fn ensure_logged(&self, log: Option<&Path>) -> Status {
        match self.check() {
            Ok(found) => Status::Present(found),
            Err(check) => {
                eprintln!(
                    "xtask doctor: {} is missing ({check}); installing: {}",
                    self.name,
                    self.install.command()
                );
                let install = self.install.run(log).err().map(|e| format!("{e:#}"));
                match self.check() {
                    Ok(found) => Status::Installed(found),
                    Err(check) => Status::Missing { check, install },
                }
            }
        }
    }
}

/// Every prerequisite but cargo-deny (which `cargo xtask test` installs in the
/// background).
pub fn all_but_deny() -> Vec<Prereq> {
    all()
        .into_iter()
        .filter(|p| p.name != CARGO_DENY.name)
        .collect()
}

/// The tools `cargo xtask bench --peers` compares against (Debian's packages).
pub fn peers() -> Vec<Prereq> {
    vec![
        Prereq {
            name: "restic",
            why: "bench --peers: a second `restic backup` and `restic restore`",
            check: || version_of(Command::new("restic").arg("version"), "restic"),
            install: Install::Apt(&["restic"]),
        },
        Prereq {
            name: "borg",
            why: "bench --peers: a second `borg create` and `borg extract`",
            check: || version_of(Command::new("borg").arg("--version"), "borg"),
            install: Install::Apt(&["borgbackup"]),
        },
        Prereq {
            name: "xdelta3",
            why: "bench --peers: `xdelta3 -e -s A B`",
            check: || version_of(Command::new("xdelta3").arg("-V"), "xdelta3"),
            install: Install::Apt(&["xdelta3"]),
        },
        Prereq {
            name: "zstd",
            why: "bench --peers: `zstd --patch-from=A B`",
            check: || version_of(Command::new("zstd").arg("--version"), "zstd"),
            install: Install::Apt(&["zstd"]),
        },
    ]
}

/// What lance's build reads: `protoc` and its include files.
pub fn lance_build() -> Vec<Prereq> {
    all()
        .into_iter()
        .filter(|p| p.name.starts_with("protoc") || p.name.starts_with("protobuf"))
        .collect()
}

/// What `cargo xtask services up` runs.
pub fn services() -> Vec<Prereq> {
    all()
        .into_iter()
        .filter(|p| {
            p.name.starts_with("redis-server")
                || p.name.starts_with("PostgreSQL")
                || p.name.starts_with("python3")
                || p.name.starts_with("moto")
        })
        .collect()
}

/// Checks and, when missing, installs one prerequisite with the install's output in
/// `log` (for an install running beside a build); the error says what is missing.
pub fn ensure_quietly(p: &Prereq, log: &Path) -> Result<()> {
    let status = p.ensure_logged(Some(log));
    let line = report_line(p, &status);
    eprintln!("xtask doctor:\n{line}");
    match status {
        Status::Missing { .. } => bail!("{line}"),
        _ => Ok(()),
    }
}

/// Checks every prerequisite; with `install`, installs what is missing. Prints the
/// report and returns the environment the build needs; fails when anything is still
/// missing.
pub fn doctor(prereqs: &[Prereq], install: bool) -> Result<Vec<(String, String)>> {
    let mut env = Vec::new();
    let mut missing = 0;
    let mut lines = Vec::new();
    let mut apt_installed = Vec::new();
    if install {
        // One apt-get run for every missing Debian package (an update takes a while).
        let mut packages: Vec<&'static str> = Vec::new();
        for p in prereqs {
            if let (Install::Apt(pk), Err(why)) = (p.install, p.check()) {
                eprintln!("xtask doctor: {} is missing ({why})", p.name);
                apt_installed.push(p.name);
                for x in pk {
                    if !packages.contains(x) {
                        packages.push(x);
                    }
                }
            }
        }
        if !packages.is_empty() {
            let all: &'static [&'static str] = packages.leak();
            if let Err(e) = Install::Apt(all).run(None) {
                eprintln!("xtask doctor: apt-get failed: {e:#}");
            }
        }
    }
    for p in prereqs {
        let status = if install {
            match p.ensure() {
                Status::Present(f) if apt_installed.contains(&p.name) => Status::Installed(f),
                s => s,
            }
        } else {
            match p.check() {
                Ok(f) => Status::Present(f),
                Err(check) => Status::Missing {
                    check,
                    install: None,
                },
            }
        };
        lines.push(report_line(p, &status));
        match status {
            Status::Present(f) | Status::Installed(f) => env.extend(f.env),
            Status::Missing { .. } => missing += 1,
        }
    }
    eprintln!("xtask doctor:\n{}", lines.join("\n"));
    if missing > 0 {
        bail!(
            "{missing} prerequisite(s) missing (listed above with the command that installs each)"
        );
    }
    Ok(env)
}

fn report_line(p: &Prereq, status: &Status) -> String {
    match status {
        Status::Present(f) => format!(
            "  ok        {:<34} {} ({})",
            p.name,
            f.version,
            f.path.display()
        ),
        Status::Installed(f) => format!(
            "  installed {:<34} {} ({}) by: {}",
            p.name,
            f.version,
            f.path.display(),
            p.install.command()
        ),
        Status::Missing { check, install } => {
            let mut s = format!(
                "  MISSING   {:<34} needed by {}\n            check: {check}\n            install with: {}",
                p.name,
                p.why,
                p.install.command()
            );
            if let Some(e) = install {
                s.push_str(&format!("\n            the install failed: {e}"));
            }
            s
        }
    }
}

/// `cargo xtask doctor [--check]`.
pub fn cli(args: &[String]) -> Result<()> {
    let install = !args.iter().any(|a| a == "--check");
    let env = doctor(&all(), install)?;
    for (k, v) in env {
        println!("export {k}={v}");
    }
    Ok(())
}

fn cargo_bin() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

/// Runs `cmd`, and takes the first line it prints as the version of `bin` (found on
/// `PATH`, or as the program itself when it is a path).
fn version_of(cmd: &mut Command, bin: &str) -> Result<Found, String> {
    let out = cmd
        .output()
        .map_err(|e| format!("`{}` could not run: {e}", crate::show(cmd)))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        return Err(format!(
            "`{}` failed ({}): {}",
            crate::show(cmd),
            out.status,
            text.lines().next().unwrap_or("").trim()
        ));
    }
    let path = which(bin).unwrap_or_else(|| PathBuf::from(cmd.get_program()));
    Ok(Found {
        version: text.lines().next().unwrap_or("").trim().to_string(),
        path,
        env: Vec::new(),
    })
}

pub use bindspace_testkit::servers::{postgres_bin_dir, which};

/// The `protoc` prost-build will run: `$PROTOC`, else `protoc` on the `PATH`.
fn protoc() -> PathBuf {
    std::env::var_os("PROTOC")
        .map(PathBuf::from)
        .unwrap_or_else(|| which("protoc").unwrap_or_else(|| PathBuf::from("protoc")))
}

fn check_protoc() -> Result<Found, String> {
    let bin = protoc();
    let mut f = version_of(Command::new(&bin).arg("--version"), "protoc")?;
    f.path = bin;
    Ok(f)
}

/// Compiles a file that imports `google/protobuf/empty.proto`, as lance's build script
/// does. Where protoc finds it only with an explicit include directory, the directory
/// is returned as `PROTOC_INCLUDE` (prost-build passes that to protoc).
fn check_protoc_include() -> Result<Found, String> {
    let bin = protoc();
    let dir = std::env::temp_dir().join(format!("xtask-doctor-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("temp dir: {e}"))?;
    let proto = dir.join("probe.proto");
    std::fs::write(
        &proto,
        "syntax = \"proto3\";\nimport \"google/protobuf/empty.proto\";\n\
         message Probe { google.protobuf.Empty e = 1; }\n",
    )
    .map_err(|e| format!("writing a probe .proto: {e}"))?;
    let compile = |include: Option<&Path>| -> Result<(), String> {
        let mut c = Command::new(&bin);
        c.arg("-I").arg(&dir);
        if let Some(i) = include {
            c.arg("-I").arg(i);
        }
        c.arg("-o").arg(dir.join("probe.pb")).arg(&proto);
        let out = c
            .output()
            .map_err(|e| format!("`{}` could not run: {e}", bin.display()))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr)
                .lines()
                .next()
                .unwrap_or("protoc failed")
                .trim()
                .to_string())
        }
    };
    let from_env = std::env::var_os("PROTOC_INCLUDE").map(PathBuf::from);
    let candidates: Vec<PathBuf> = from_env
        .iter()
        .cloned()
        .chain(
            bin.canonicalize()
                .ok()
                .and_then(|b| Some(b.parent()?.parent()?.join("include"))),
        )
        .chain(["/usr/include", "/usr/local/include"].map(PathBuf::from))
        .filter(|d| d.join("google/protobuf/empty.proto").is_file())
        .collect();
    let result = match compile(from_env.as_deref()) {
        Ok(()) => Ok(Found {
            version: "google/protobuf/empty.proto compiles".into(),
            path: candidates.first().cloned().unwrap_or_default(),
            env: Vec::new(),
        }),
        Err(first) => match candidates.first() {
            Some(d) if compile(Some(d)).is_ok() => Ok(Found {
                version: "google/protobuf/empty.proto compiles with PROTOC_INCLUDE".into(),
                path: d.clone(),
                env: vec![("PROTOC_INCLUDE".into(), d.display().to_string())],
            }),
            _ => Err(format!(
                "protoc cannot import google/protobuf/empty.proto: {first}"
            )),
        },
    };
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// PostgreSQL's server binaries: the newest `/usr/lib/postgresql/*/bin`, else `pg_ctl`
/// on the `PATH`; both `initdb` and `pg_ctl` must run, and as root the `postgres` user
/// must exist (the tests run the server as that user).
pub fn check_postgres() -> Result<Found, String> {
    let dir = postgres_bin_dir().ok_or("no pg_ctl under /usr/lib/postgresql/*/bin or on PATH")?;
    version_of(Command::new(dir.join("initdb")).arg("--version"), "initdb")?;
    let mut f = version_of(Command::new(dir.join("pg_ctl")).arg("--version"), "pg_ctl")?;
    f.path = dir;
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    if root
        && !Command::new("id")
            .arg("postgres")
            .output()
            .is_ok_and(|o| o.status.success())
    {
        return Err("running as root, and there is no `postgres` user to run the server".into());
    }
    Ok(f)
}

/// `moto_server` on the `PATH`, or in the scripts directory of the `python3` that pip
/// installs into (a pyenv or user install may not be on the `PATH`).
pub fn moto_server_path() -> Option<PathBuf> {
    which("moto_server").or_else(|| {
        let out = Command::new("python3")
            .args([
                "-c",
                "import sysconfig; print(sysconfig.get_path('scripts'))",
            ])
            .output()
            .ok()?;
        let p = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()).join("moto_server");
        p.is_file().then_some(p)
    })
}

fn check_moto() -> Result<Found, String> {
    let path = moto_server_path().ok_or("moto_server is not on PATH nor in python3's scripts")?;
    // The server imports flask and werkzeug (the `server` extra); importing them is
    // what starting it needs.
    let mut f = version_of(
        Command::new("python3").args([
            "-c",
            "import moto, flask, werkzeug; print('moto', moto.__version__)",
        ]),
        "moto_server",
    )?;
    f.path = path;
    Ok(f)
}
