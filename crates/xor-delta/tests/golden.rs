//! Format version 1 golden delta: decoded and applied to the golden snapshot, it must
//! give the recorded content. Never edit a golden file; add a new one with a new format.
//! `BINDSPACE_BLESS=1` writes one that does not exist yet.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::PathBuf;

use bindspace_core::snapshot;
use bindspace_core::workload::Workload;
use bindspace_xor_delta as xd;

fn golden(name: &str) -> PathBuf {
    // read at run time: clones sharing one target dir may run a binary built in another
    PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"))
        .join("../../tests/golden")
        .join(name)
}

#[test]
fn delta_v1_golden_still_decodes_and_applies() {
    let base_bytes = std::fs::read(golden("snapshot-v1.bin")).expect("golden snapshot committed");
    let base = snapshot::decode(&base_bytes)
        .expect("golden snapshot decodes")
        .space;
    let path = golden("delta-v1.bin");
    let expect_path = golden("delta-v1.expect");
    if !path.exists() && std::env::var_os("BINDSPACE_BLESS").is_some() {
        let mut next = base.clone();
        let mut w = Workload::new(2027, base.schema());
        w.run(&mut next, 60).expect("valid");
        let d = xd::compute(&base, &next, 1_790_000_001_000_000).expect("shape");
        std::fs::write(&path, xd::encode(&d)).expect("write golden");
        let s = d.stats();
        std::fs::write(
            &expect_path,
            format!(
                "from {} to {}\ncreated {} changed {} deleted {}\ndigest {}\n",
                d.from_version,
                d.to_version,
                s.created,
                s.changed,
                s.deleted,
                next.digest()
            ),
        )
        .expect("write expectations");
    }
    let bytes = std::fs::read(&path).expect("tests/golden/delta-v1.bin is committed");
    let expect = std::fs::read_to_string(&expect_path).expect("expectations committed");
    let d = xd::decode(&bytes).expect("format v1 delta decodes");
    let mut space = base.clone();
    xd::apply(&mut space, &d).expect("golden delta applies to golden snapshot");
    let s = d.stats();
    let got = format!(
        "from {} to {}\ncreated {} changed {} deleted {}\ndigest {}\n",
        d.from_version,
        d.to_version,
        s.created,
        s.changed,
        s.deleted,
        space.digest()
    );
    assert_eq!(got, expect);
    assert_eq!(xd::encode(&d), bytes, "v1 encoding is stable");
}
