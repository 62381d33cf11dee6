//! # bindspace-testkit
//!
//! Test-only helpers (`publish = false`), shared by xtask and every test in the
//! workspace so that no library crate starts a process:
//!
//! - [`servers`]: real Redis, PostgreSQL and S3-compatible (moto) servers on free
//!   loopback ports, each in its own directory, stopped by pid (also when dropped).
//! - [`cluster::RedisCluster`]: a Redis Cluster of three masters with a replica each.
//! - [`env`]: the services `cargo xtask services` started ([`env::service_env`]: skip
//!   with a reason under a plain `cargo test`, fail under xtask or CI) and names no other
//!   test run uses.
//! - [`faulty`]: [`FaultyStore`], a [`bindspace_catalog::BackupStore`] wrapper that
//!   fails, delays, corrupts or truncates chosen calls and counts every call, so tests
//!   can inject store faults deterministically and assert how many listings an
//!   operation made.
//! - [`shadow::follow`]: a shadow space kept at an engine's versions.
//! - [`slowlink`]: a TCP proxy that delivers a real server's replies slowly.
//! - [`simdisk`]: a simulated disk for power-loss tests (what was synced survives;
//!   of the rest, what a seed lets land).

pub mod cluster;
pub mod env;
pub mod faulty;
pub mod servers;
pub mod shadow;
pub mod simdisk;
pub mod slowlink;

pub use env::{must_not_skip, service_env, unique_name};
pub use faulty::{Fault, FaultyStore, Op};

/// Copies directory `from` into `to`, recursively (a repository or data directory
/// duplicated as a test's second copy). Panics on any I/O error: tests only.
pub fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("creating the copy's directory");
    for e in std::fs::read_dir(from).expect("reading the directory to copy") {
        let e = e.expect("a directory entry");
        if e.file_type().expect("an entry's type").is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).expect("copying a file");
        }
    }
}
