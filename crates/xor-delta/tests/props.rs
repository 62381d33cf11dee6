//! Property tests: every encode/decode and compute/apply pair, composition, dirty
//! tracking, and the all-or-nothing apply.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use bindspace_core::workload::Workload;
use bindspace_core::{BindSpace, SchemaVersion};
use bindspace_xor_delta::{self as xd, Change, Delta, Error};
use proptest::prelude::*;

fn schema(words: u16) -> SchemaVersion {
    SchemaVersion::CURRENT
        .with_words(words)
        .with_address_space(256)
}

/// A space after `fill` and `ops` operations of workload `seed`.
fn space(seed: u64, words: u16, fill: f64, ops: usize) -> BindSpace {
    let mut w = Workload::new(seed, schema(words));
    let mut s = w.filled_space(fill).expect("valid");
    w.run(&mut s, ops).expect("valid");
    s
}

/// `base` moved on by `ops` operations of workload `seed`.
fn evolve(base: &BindSpace, seed: u64, ops: usize) -> BindSpace {
    let mut s = base.clone();
    Workload::new(seed, base.schema())
        .run(&mut s, ops)
        .expect("valid");
    s
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn apply_of_compute_reproduces_the_target(seed: u64, s2: u64, words in 1u16..6,
                                              fill in 0.0f64..1.0, ops in 0usize..200) {
        let a = space(seed, words, fill, 10);
        let b = evolve(&a, s2, ops);
        let d = xd::compute(&a, &b, 5).expect("same shape");
        let mut r = a.clone();
        xd::apply(&mut r, &d).expect("delta fits its source");
        prop_assert_eq!(r, b);
    }

    #[test]
    fn xor_between_lists_exactly_the_differing_words(
        old in prop::collection::vec(any::<u64>(), 1..40),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u64>()), 0..6),
    ) {
        let mut new = old.clone();
        for (i, v) in &flips {
            new[i.index(old.len())] = *v;
        }
        let naive: Vec<(u16, u64)> = old
            .iter()
            .zip(&new)
            .enumerate()
            .filter(|(_, (a, b))| a != b)
            .map(|(i, (a, b))| (i as u16, a ^ b))
            .collect();
        match xd::Xor::between(&old, &new) {
            None => prop_assert!(naive.is_empty()),
            Some(x) => {
                prop_assert_eq!(x.nonzero(), &naive[..]);
                prop_assert_eq!(x.width(), old.len());
            }
        }
    }

    #[test]
    fn decode_inverts_encode(seed: u64, s2: u64, words in 1u16..6, ops in 0usize..200, t: u64) {
        let a = space(seed, words, 0.5, 0);
        let b = evolve(&a, s2, ops);
        let mut d = xd::compute(&a, &b, t).expect("same shape");
        // include a `replaced` entry, which only composition produces
        let c = evolve(&b, s2 ^ 1, ops);
        d = xd::compose(&d, &xd::compute(&b, &c, t).expect("same shape")).expect("contiguous");
        let bytes = xd::encode(&d);
        prop_assert_eq!(bytes.len(), xd::encoded_len(&d));
        prop_assert_eq!(u16::from_le_bytes([bytes[8], bytes[9]]), 3);
        // format 3 carries the end root alone
        let mut got = xd::decode(&bytes).expect("own encoding");
        let root = got.end_root.take().expect("format 3 has a root");
        prop_assert!(!root.has_prefixes());
        prop_assert_eq!(Some(root.root()), d.end_root.as_ref().map(|r| r.root()));
        prop_assert_eq!(&got, &Delta { end_root: None, ..d.clone() });
        // format 2 (the prefix digests) still round-trips whole
        let v2 = xd::encode_format(&d, 2);
        prop_assert_eq!(u16::from_le_bytes([v2[8], v2[9]]), 2);
        prop_assert_eq!(xd::decode(&v2).expect("own encoding"), d.clone());
        // format 1 (no end root) round-trips too
        d.end_root = None;
        let bytes = xd::encode(&d);
        prop_assert_eq!(bytes.len(), xd::encoded_len(&d));
        prop_assert_eq!(u16::from_le_bytes([bytes[8], bytes[9]]), 1);
        prop_assert_eq!(xd::decode(&bytes).expect("own encoding"), d);
    }

    #[test]
    fn compose_equals_applying_in_sequence(seed: u64, s2: u64, s3: u64, words in 1u16..5,
                                           n1 in 0usize..150, n2 in 0usize..150) {
        let a = space(seed, words, 0.4, 0);
        let b = evolve(&a, s2, n1);
        let c = evolve(&b, s3, n2);
        let d1 = xd::compute(&a, &b, 1).expect("shape");
        let d2 = xd::compute(&b, &c, 2).expect("shape");
        let d12 = xd::compose(&d1, &d2).expect("contiguous");
        let mut seq = a.clone();
        xd::apply(&mut seq, &d1).expect("fits");
        xd::apply(&mut seq, &d2).expect("fits");
        let mut once = a.clone();
        xd::apply(&mut once, &d12).expect("composed delta fits the first source");
        prop_assert_eq!(&once, &seq);
        prop_assert_eq!(&once, &c);
        // composition is associative over three steps
        let d = evolve(&c, s3 ^ 7, n1);
        let d3 = xd::compute(&c, &d, 3).expect("shape");
        let left = xd::compose(&xd::compose(&d1, &d2).expect("c"), &d3).expect("c");
        let right = xd::compose(&d1, &xd::compose(&d2, &d3).expect("c")).expect("c");
        prop_assert_eq!(left, right);
    }

    #[test]
    fn compute_dirty_equals_compute_by_scan(seed: u64, s2: u64, words in 1u16..6,
                                            fill in 0.0f64..1.0, ops in 0usize..300) {
        let mut live = space(seed, words, fill, 0);
        let before = live.clone();
        let mark = live.mark();
        Workload::new(s2, live.schema()).run(&mut live, ops).expect("valid");
        prop_assert_eq!(xd::compute_dirty(&live, &mark, 9).expect("fresh mark"),
                        xd::compute(&before, &live, 9).expect("shape"));
    }

    #[test]
    fn rejected_apply_leaves_the_space_untouched(seed: u64, s2: u64, s3: u64, words in 1u16..5,
                                                 ops in 1usize..100) {
        let a = space(seed, words, 0.5, 0);
        let b = evolve(&a, s2, ops);
        let d = xd::compute(&a, &b, 1).expect("shape");
        // an unrelated space claiming the same version
        let mut other = space(s3, words, 0.5, 0);
        other.set_version(a.version());
        let snapshot = other.clone();
        match xd::apply(&mut other, &d) {
            Err(Error::Precondition { .. }) => prop_assert_eq!(&other, &snapshot),
            // every entry fit, but the result is not the state the delta recorded
            Err(Error::Core(bindspace_core::Error::RootMismatch { prefixes, .. })) => {
                prop_assert!(!prefixes.is_empty());
                prop_assert!(!other.content_eq(&b));
            }
            Err(e) => prop_assert!(false, "unexpected {e:?}"),
            // accepted only when the result is exactly the delta's end state
            Ok(()) => prop_assert_eq!(&other, &b),
        }
        // wrong version: refused, untouched
        let mut moved = a.clone();
        moved.set_version(a.version() + 1);
        let before = moved.clone();
        let refused = matches!(xd::apply(&mut moved, &d), Err(Error::VersionMismatch { .. }));
        prop_assert!(refused);
        prop_assert_eq!(&moved, &before);
    }
}

#[test]
fn wrong_word_count_is_refused_and_changes_nothing() {
    let a = space(1, 4, 0.5, 0);
    let b = evolve(&a, 2, 50);
    let d = xd::compute(&a, &b, 1).expect("shape");
    let mut wide = space(1, 5, 0.5, 0);
    wide.set_version(a.version());
    let before = wide.clone();
    assert!(matches!(
        xd::apply(&mut wide, &d),
        Err(Error::SchemaMismatch { .. })
    ));
    assert_eq!(wide, before);
    assert!(matches!(
        xd::compute(&a, &wide, 0),
        Err(Error::SchemaMismatch { .. })
    ));
}

#[test]
fn precondition_failure_on_the_last_entry_changes_nothing() {
    let a = space(3, 4, 0.5, 0);
    let b = evolve(&a, 4, 80);
    let mut d = xd::compute(&a, &b, 1).expect("shape");
    let last = d.entries.last().expect("80 ops change something").addr;
    // force the last entry to contradict `a`
    d.entries.last_mut().expect("non-empty").change = if a.contains(last) {
        Change::Created(bindspace_core::Fingerprint::zeroed(4))
    } else {
        Change::Deleted
    };
    let mut target = a.clone();
    let err = xd::apply(&mut target, &d).expect_err("contradiction");
    assert!(
        matches!(err, Error::Precondition { addr, .. } if addr == last),
        "{err}"
    );
    assert_eq!(target, a);
}

#[test]
fn non_contiguous_compose_is_refused() {
    let a = space(1, 2, 0.5, 0);
    let b = evolve(&a, 2, 10);
    let d = xd::compute(&a, &b, 1).expect("shape");
    assert!(matches!(
        xd::compose(&d, &d),
        Err(Error::NotContiguous { .. })
    ));
}

#[test]
fn stats_count_each_kind() {
    let a = space(5, 4, 0.5, 0);
    let b = evolve(&a, 6, 100);
    let d = xd::compute(&a, &b, 1).expect("shape");
    let s = d.stats();
    assert_eq!(
        s.created + s.changed + s.deleted + s.replaced,
        d.entries.len()
    );
    assert_eq!(s.bytes, xd::encode(&d).len());
    assert!(s.created > 0 && s.changed > 0 && s.deleted > 0, "{s:?}");
}

#[test]
fn one_word_changes_cost_at_most_13_bytes_per_address() {
    let schema = SchemaVersion::CURRENT;
    let mut w = Workload::new(11, schema);
    let mut live = w.filled_space(1.0).expect("valid");
    let mark = live.mark();
    w.touch_occupied(&mut live, 655, 1).expect("valid");
    let d = xd::compute_dirty(&live, &mark, 0).expect("fresh mark");
    assert_eq!(d.entries.len(), 655);
    // format 3: 8 bytes of XOR word, the rest is the packed head (address gap, kind,
    // word index); the fixed part (header, three counts, root) is per delta
    let bytes = xd::encode(&d);
    let per_addr = (bytes.len() - bindspace_core::HEADER_LEN - 12 - 32) as f64 / 655.0;
    eprintln!(
        "{per_addr:.2} bytes per changed address ({} in all)",
        bytes.len()
    );
    assert!(per_addr <= 13.0, "{per_addr} bytes per changed address");
    // format 2 paid 31 per address and an 8 KiB trailer
    assert!(bytes.len() * 2 < xd::encode_format(&d, 2).len());
}
