//! A shadow space that follows an engine's versions, op by op.

use bindspace_core::BindSpace;
use bindspace_core::workload::Op;

/// Applies `op` to `shadow` as the engine's version `v`. A backup's WAL checkpoint (one
/// version that changes nothing) may have come in between, never more.
///
/// # Panics
/// If `v` is not one or two past the shadow's version, or the op does not apply: the
/// test's failure report.
pub fn follow(shadow: &mut BindSpace, op: &Op, v: u64) {
    let gap = v.checked_sub(shadow.version());
    assert!(
        matches!(gap, Some(1 | 2)),
        "version {v} after {}",
        shadow.version()
    );
    shadow.set_version(v - 1);
    op.apply(shadow)
        .expect("a workload op applies to its shadow");
    assert_eq!(shadow.version(), v);
}
