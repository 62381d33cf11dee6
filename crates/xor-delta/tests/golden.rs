//! Golden deltas of every format (1, 2, 3): decoded and applied to the golden snapshot,
//! each must give the recorded content. Never edit a golden file; add a new one with a new format.
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

/// Decodes `delta-v{format}.bin` (written first under `BINDSPACE_BLESS` if missing),
/// applies it to the golden snapshot and checks the recorded result; re-encoding gives
/// the same bytes.
fn check_golden(format: u16) -> xd::Delta {
    // format 3 exists for deltas only: its base is the newest golden snapshot
    let base_bytes = std::fs::read(golden(&format!("snapshot-v{}.bin", format.min(2))))
        .expect("golden snapshot committed");
    let base = snapshot::decode(&base_bytes)
        .expect("golden snapshot decodes")
        .space;
    let path = golden(&format!("delta-v{format}.bin"));
    let expect_path = golden(&format!("delta-v{format}.expect"));
    let describe = |d: &xd::Delta, space: &bindspace_core::BindSpace| {
        let s = d.stats();
        let mut out = format!(
            "from {} to {}\ncreated {} changed {} deleted {}\ndigest {}\n",
            d.from_version,
            d.to_version,
            s.created,
            s.changed,
            s.deleted,
            space.digest()
        );
        if format >= 2 {
            out.push_str(&format!("root {}\n", space.state_root()));
        }
        out
    };
    if !path.exists() && std::env::var_os("BINDSPACE_BLESS").is_some() {
        let mut next = base.clone();
        let mut w = Workload::new(2027, base.schema());
        w.run(&mut next, 60).expect("valid");
        let mut d = xd::compute(&base, &next, 1_790_000_001_000_000).expect("shape");
        if format == 1 {
            d.end_root = None;
        }
        std::fs::write(&path, xd::encode_format(&d, format)).expect("write golden");
        std::fs::write(&expect_path, describe(&d, &next)).expect("write expectations");
    }
    let bytes = std::fs::read(&path).expect("the golden delta is committed");
    let expect = std::fs::read_to_string(&expect_path).expect("expectations committed");
    let d = xd::decode(&bytes).expect("the golden delta decodes");
    let mut space = base.clone();
    xd::apply(&mut space, &d).expect("golden delta applies to golden snapshot");
    assert_eq!(describe(&d, &space), expect);
    if format < 3 {
        assert_eq!(
            xd::encode_format(&d, format),
            bytes,
            "the encoding is stable"
        );
    } else {
        // format 3's heads are a zstd frame: another zstd build may pack them into other
        // bytes, so what must hold is that the re-encoding decodes to the same delta
        let again = xd::encode_format(&d, format);
        assert_eq!(xd::decode(&again).unwrap(), d, "the encoding round-trips");
    }
    assert_eq!(d.end_root.is_some(), format >= 2);
    d
}

#[test]
fn delta_v1_golden_still_decodes_and_applies() {
    check_golden(1);
}

#[test]
fn delta_v2_golden_checks_its_end_root() {
    let d = check_golden(2);
    // the same delta applied to another base: the end root names the prefixes
    let base = snapshot::decode(&std::fs::read(golden("snapshot-v2.bin")).unwrap())
        .unwrap()
        .space;
    let mut other = base.clone();
    let a = other
        .iter()
        .find(|(a, _)| a.index() >= 256 && d.get(*a).is_none())
        .unwrap()
        .0;
    let fp = vec![42u64; other.words()];
    other.write(a, &fp).unwrap();
    other.set_version(base.version());
    let err = xd::apply(&mut other, &d).unwrap_err();
    assert!(
        err.to_string().contains("prefixes that differ: 0x01"),
        "{err}"
    );
}

#[test]
fn delta_v3_golden_is_the_v2_delta_with_its_root_alone() {
    let d3 = check_golden(3);
    let d2 = check_golden(2);
    assert_eq!(d3.entries, d2.entries);
    let (r3, r2) = (d3.end_root.clone().unwrap(), d2.end_root.unwrap());
    assert_eq!(r3.root(), r2.root());
    assert!(!r3.has_prefixes());
    // what this build writes for a computed delta is format 3, and smaller
    let v3 = std::fs::read(golden("delta-v3.bin")).unwrap();
    let v2 = std::fs::read(golden("delta-v2.bin")).unwrap();
    assert_eq!(u16::from_le_bytes([v3[8], v3[9]]), 3);
    assert!(v3.len() < v2.len(), "{} vs {}", v3.len(), v2.len());
    // applied to another base, the root check fails and says the prefixes are unknown
    let base = snapshot::decode(&std::fs::read(golden("snapshot-v2.bin")).unwrap())
        .unwrap()
        .space;
    let mut other = base.clone();
    let a = other.iter().find(|(a, _)| d3.get(*a).is_none()).unwrap().0;
    other.write(a, &vec![42u64; other.words()]).unwrap();
    other.set_version(base.version());
    let err = xd::apply(&mut other, &d3).unwrap_err();
    assert!(
        err.to_string()
            .contains("(only its root was recorded, not its prefix digests)"),
        "{err}"
    );
}
