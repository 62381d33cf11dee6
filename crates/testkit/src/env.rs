//! The services a test runs against, and names no other test run uses.

/// Whether a test that needs a missing service must fail instead of skipping: under
/// `cargo xtask test` (`BINDSPACE_XTASK`) and in CI (`CI`).
pub fn must_not_skip() -> bool {
    std::env::var_os("CI").is_some() || std::env::var_os("BINDSPACE_XTASK").is_some()
}

/// The value of `var` (a service URL or binary set by `cargo xtask services`), or
/// `None` after printing why the test skips. Panics instead of skipping under xtask or
/// CI.
pub fn service_env(var: &str, what: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ if must_not_skip() => {
            panic!("{var} is not set: {what} is required under cargo xtask test and CI")
        }
        _ => {
            eprintln!(
                "SKIP: {var} is not set, so there is no {what} to test against (run `cargo xtask test`, or `cargo xtask services up` and export what it prints)"
            );
            None
        }
    }
}

/// A name no other test run uses (pid, a per-process counter and random bits), made of
/// letters, digits and `_`, so it serves as a key prefix, a path or an SQL schema name.
pub fn unique_name(test: &str) -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(N.fetch_add(1, Ordering::Relaxed));
    format!(
        "t_{test}_{}_{:08x}",
        std::process::id(),
        h.finish() & 0xffff_ffff
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_names_differ_and_are_identifiers() {
        let a = unique_name("x");
        let b = unique_name("x");
        assert_ne!(a, b);
        assert!(
            a.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "{a}"
        );
    }
}
