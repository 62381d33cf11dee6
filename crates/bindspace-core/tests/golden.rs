//! Format version 1 golden files: bytes written by an earlier build must keep decoding
//! to the same content. A format change adds a new golden file; it never edits one.
//! `BINDSPACE_BLESS=1` writes a golden file that does not exist yet (never overwrites).
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::PathBuf;

use bindspace_core::workload::Workload;
use bindspace_core::{SchemaVersion, snapshot};

fn golden(name: &str) -> PathBuf {
    // read at run time: clones sharing one target dir may run a binary built in another
    PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"))
        .join("../../tests/golden")
        .join(name)
}

/// The space the v1 golden snapshot was made from: seed 2026, 8 words, 2 prefixes.
pub fn golden_space() -> bindspace_core::BindSpace {
    let schema = SchemaVersion::CURRENT.with_words(8).with_address_space(512);
    let mut w = Workload::new(2026, schema);
    let mut s = w.filled_space(0.25).expect("valid");
    w.run(&mut s, 100).expect("valid");
    s
}

#[test]
fn snapshot_v1_golden_still_decodes() {
    let path = golden("snapshot-v1.bin");
    let expect_path = golden("snapshot-v1.expect");
    if !path.exists() && std::env::var_os("BINDSPACE_BLESS").is_some() {
        let s = golden_space();
        std::fs::write(&path, snapshot::encode(&s, 1_790_000_000_000_000)).expect("write golden");
        std::fs::write(
            &expect_path,
            format!(
                "version {}\nlen {}\ndigest {}\n",
                s.version(),
                s.len(),
                s.digest()
            ),
        )
        .expect("write expectations");
    }
    let bytes = std::fs::read(&path).expect("tests/golden/snapshot-v1.bin is committed");
    let expect = std::fs::read_to_string(&expect_path).expect("expectations are committed");
    let snap = snapshot::decode(&bytes).expect("format v1 snapshot decodes");
    let got = format!(
        "version {}\nlen {}\ndigest {}\n",
        snap.space.version(),
        snap.space.len(),
        snap.space.digest()
    );
    assert_eq!(got, expect);
    assert_eq!(snap.header.schema.fingerprint_words, 8);
    assert_eq!(snap.header.time_to_us, 1_790_000_000_000_000);
    // While format v1 is the one we write, re-encoding must reproduce the bytes exactly.
    assert_eq!(snapshot::encode(&snap.space, snap.header.time_to_us), bytes);
}
