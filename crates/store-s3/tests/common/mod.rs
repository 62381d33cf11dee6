//! Helpers shared by the store-s3 test binaries.

use bindspace_testkit::{service_env, unique_name};

/// A fresh prefix on the S3 test server, or `None` (skip, said why) outside xtask/CI.
pub fn s3_url(test: &str) -> Option<String> {
    let base = service_env("BINDSPACE_TEST_S3_URL", "an S3 server")?;
    Some(format!(
        "{}/{}",
        base.trim_end_matches('/'),
        unique_name(test)
    ))
}
