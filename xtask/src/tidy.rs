//! Manifest conventions: every member takes versions from `[workspace.dependencies]`
//! and lints from `[workspace.lints]`, and every library crate opens with a doc comment.

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
    if !problems.is_empty() {
        bail!("tidy:\n  {}", problems.join("\n  "));
    }
    eprintln!(
        "tidy: {} manifests follow the workspace conventions",
        manifests.len()
    );
    Ok(())
}
