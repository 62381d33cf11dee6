//! Architecture invariants from `docs/ARCHITECTURE.md`, checked with `cargo tree`.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

/// What a crate without I/O or async must never reach.
const NO_IO_NO_ASYNC: &[&str] = &[
    "tokio",
    "redis",
    "object_store",
    "lance",
    "tokio-postgres",
    "deadpool-postgres",
    "reqwest",
    "hyper",
];

/// (crate, dependencies it must never reach through normal edges, why)
const RULES: &[(&str, &[&str], &str)] = &[
    (
        "bindspace-core",
        NO_IO_NO_ASYNC,
        "core knows no I/O and no async runtime",
    ),
    (
        "bindspace-xor-delta",
        NO_IO_NO_ASYNC,
        "algorithms build on core only",
    ),
    (
        "bindspace-wal",
        NO_IO_NO_ASYNC,
        "the log is synchronous file I/O; archivers for remote stores live in the store crates",
    ),
    (
        "bindspace-crypt",
        NO_IO_NO_ASYNC,
        "encryption is pure: keys and bytes in, bytes out; stores and the engine call it",
    ),
    (
        "bindspace-schema-migrate",
        NO_IO_NO_ASYNC,
        "algorithms build on core only",
    ),
    (
        "bindspace-catalog",
        &[
            "redis",
            "object_store",
            "lance",
            "tokio-postgres",
            "deadpool-postgres",
        ],
        "catalog owns the store trait; concrete stores implement it elsewhere",
    ),
    (
        "bindspace-store-s3",
        &["redis", "tokio-postgres", "deadpool-postgres"],
        "one tier per store crate",
    ),
    (
        "bindspace-pitr",
        &[
            "redis",
            "object_store",
            "lance",
            "tokio-postgres",
            "deadpool-postgres",
        ],
        "restore planning works on any BackupStore; it names no concrete tier",
    ),
    (
        "bindspace-dr",
        &[
            "redis",
            "object_store",
            "lance",
            "tokio-postgres",
            "deadpool-postgres",
        ],
        "verify and repair work on any BackupStore; they name no concrete tier",
    ),
    (
        "bindspace-store-redis",
        &[
            "object_store",
            "lance",
            "tokio-postgres",
            "deadpool-postgres",
        ],
        "one tier per store crate",
    ),
    (
        "bindspace-store-pg",
        &["object_store", "lance", "redis"],
        "one tier per store crate",
    ),
    (
        "bindspace",
        &["axum", "utoipa"],
        "the engine serves nothing: its HTTP API is bindspace-http, a layer above it",
    ),
];

fn packages_reached(root: &Path, krate: &str) -> Result<BTreeSet<String>> {
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(root)
        .args([
            "tree", "--locked", "-p", krate, "-e", "normal", "--prefix", "none", "--format", "{p}",
        ])
        .output()
        .context("running cargo tree")?;
    if !out.status.success() {
        bail!(
            "cargo tree -p {krate} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect())
}

/// Fails listing every crate that reaches a forbidden dependency.
pub fn check(root: &Path) -> Result<()> {
    let mut violations = Vec::new();
    let mut checked = 0;
    for (krate, forbidden, why) in RULES {
        let reached = packages_reached(root, krate)?;
        for f in *forbidden {
            checked += 1;
            if reached.contains(*f) {
                violations.push(format!("{krate} reaches {f} ({why})"));
            }
        }
    }
    // Test-only code stays out of what is published: no published crate reaches the
    // testkit (which starts processes) through a normal dependency.
    for krate in RULES
        .iter()
        .map(|r| r.0)
        .chain(["bindspace-http", "bindspace-cli"])
    {
        checked += 1;
        if packages_reached(root, krate)?.contains("bindspace-testkit") {
            violations.push(format!(
                "{krate} reaches bindspace-testkit (test-only: a dev-dependency at most)"
            ));
        }
    }
    if !violations.is_empty() {
        bail!("layering invariants broken:\n  {}", violations.join("\n  "));
    }
    eprintln!(
        "layering: {checked} invariants hold across {} crates",
        RULES.len()
    );
    Ok(())
}
