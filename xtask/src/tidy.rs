//! Manifest and source conventions: every member takes versions from
//! `[workspace.dependencies]` and lints from `[workspace.lints]`, and every Rust source
//! file opens with a `//!` line saying what it is.

use std::path::Path;

use anyhow::{Result, bail};

/// Fails listing each manifest line that breaks a convention.
pub fn check(root: &Path) -> Result<()> {
    let mut problems = Vec::new();
    let mut manifests = vec![
        root.join("xtask/Cargo.toml"),
        root.join("benches/Cargo.toml"),
    ];
    for entry in std::fs::read_dir(root.join("crates"))? {
        manifests.push(entry?.path().join("Cargo.toml"));
    }
    for m in &manifests {
        let text = std::fs::read_to_string(m)?;
        let name = m.strip_prefix(root).unwrap_or(m).display().to_string();
        let mut in_deps = false;
        for (n, line) in text.lines().enumerate() {
            let l = line.trim();
            if l.starts_with('[') {
                in_deps = l.ends_with("dependencies]");
                continue;
            }
            if in_deps && !l.is_empty() && !l.starts_with('#') && !l.contains("workspace = true") {
                problems.push(format!(
                    "{name}:{}: `{l}` — declare the version in the root [workspace.dependencies]",
                    n + 1
                ));
            }
        }
        let is_member_crate = m.starts_with(root.join("crates"));
        if is_member_crate && !text.contains("[lints]\nworkspace = true") {
            problems.push(format!("{name}: missing `[lints] workspace = true`"));
        }
        if is_member_crate {
            let dir = m.parent().expect("manifest has a parent");
            for entry in ["src/lib.rs", "src/main.rs"] {
                let p = dir.join(entry);
                if let Ok(src) = std::fs::read_to_string(&p)
                    && !src.trim_start().starts_with("//!")
                {
                    problems.push(format!(
                        "{}: must open with a `//!` crate doc",
                        p.strip_prefix(root).unwrap_or(&p).display()
                    ));
                }
            }
        }
    }
    let mut sources = Vec::new();
    for dir in ["crates", "xtask", "benches", "fuzz"] {
        rust_files(&root.join(dir), &mut sources);
    }
    for p in &sources {
        let src = std::fs::read_to_string(p)?;
        if !src.trim_start().starts_with("//!") {
            problems.push(format!(
                "{}: must open with a `//!` line saying what the file is",
                p.strip_prefix(root).unwrap_or(p).display()
            ));
        }
    }
    if !problems.is_empty() {
        bail!("tidy:\n  {}", problems.join("\n  "));
    }
    eprintln!(
        "tidy: {} manifests follow the workspace conventions; {} source files say what they are",
        manifests.len(),
        sources.len()
    );
    Ok(())
}

/// Every `.rs` file under `dir`, build output and dot-directories left out.
fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || name == "target" || name == "corpus" || name == "artifacts" {
            continue;
        }
        if p.is_dir() {
            rust_files(&p, out);
        } else if name.ends_with(".rs") {
            out.push(p);
        }
    }
}
