//! Loom model of the group-commit hand-off: leader election, waking followers, and
//! poisoning. Run with `RUSTFLAGS="--cfg loom" cargo test -p bindspace-wal --test
//! loom_group_commit` (`cargo xtask test` does, in its own target directory).
#![cfg(loom)]
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use bindspace_wal::group::GroupCommit;
use loom::sync::{Arc, Mutex};
use loom::thread;

fn frame(first: u64, _ts: u64, buf: &mut Vec<u8>) -> u64 {
    buf.push(first as u8);
    1
}

#[test]
fn every_waiter_returns_only_after_its_version_is_flushed() {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(2);
    b.check(|| {
        let gc = Arc::new(GroupCommit::new(1, 1 << 20));
        let flushed = Arc::new(Mutex::new(Vec::<(u64, u64)>::new()));
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let gc = gc.clone();
                let flushed = flushed.clone();
                thread::spawn(move || {
                    let v = gc.submit(0, frame).unwrap();
                    let f2 = flushed.clone();
                    gc.wait_durable(v, &mut |bytes, first, last| {
                        assert_eq!(
                            bytes.len() as u64,
                            last - first + 1,
                            "a leader flushes exactly what is pending"
                        );
                        f2.lock().unwrap().push((first, last));
                        Ok(())
                    })
                    .unwrap();
                    // returned => some flush covered v
                    assert!(
                        flushed
                            .lock()
                            .unwrap()
                            .iter()
                            .any(|&(a, b)| a <= v && v <= b)
                    );
                    v
                })
            })
            .collect();
        let mut vs: Vec<u64> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        vs.sort();
        assert_eq!(vs, vec![1, 2]);
        let f = flushed.lock().unwrap();
        // flushes are contiguous, in order, and never overlap
        let mut next = 1;
        for &(a, b) in f.iter() {
            assert_eq!(a, next);
            next = b + 1;
        }
        assert_eq!(next, 3);
        assert_eq!(gc.durable(), 2);
    });
}

#[test]
fn a_failed_flush_poisons_every_waiter_and_nobody_hangs() {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(2);
    b.check(|| {
        let gc = Arc::new(GroupCommit::new(1, 1 << 20));
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let gc = gc.clone();
                thread::spawn(move || {
                    let v = gc.submit(0, frame);
                    match v {
                        Ok(v) => gc
                            .wait_durable(v, &mut |_, _, _| Err("disk on fire".into()))
                            .is_err(),
                        Err(_) => true, // poisoned before it could even submit
                    }
                })
            })
            .collect();
        for h in handles {
            assert!(
                h.join().unwrap(),
                "no append may succeed after a failed flush"
            );
        }
        assert!(gc.poisoned().is_some());
        assert_eq!(gc.durable(), 0);
    });
}
