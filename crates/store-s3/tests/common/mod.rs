//! Helpers shared by the store-s3 test binaries.

use bindspace_catalog::conformance;

/// A fresh prefix on the S3 test server, or `None` (skip, said why) outside xtask/CI.
pub fn s3_url(test: &str) -> Option<String> {
    let base = conformance::service_env("BINDSPACE_TEST_S3_URL", "an S3 server")?;
    Some(format!(
        "{}/{}",
        base.trim_end_matches('/'),
        conformance::unique_name(test)
    ))
}
