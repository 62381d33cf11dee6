//! A restore fetches each artifact from the first store that serves it intact, checked
//! here against the plan's length and blake3: a store that is down, that hands back
//! damaged bytes, or that cuts a read short is passed over for the next one; when no
//! store serves an artifact intact, the error names each store and what went wrong.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::sync::Arc;

use bindspace_catalog::{ArtifactId, BackupStore};
use bindspace_core::workload::Workload;
use bindspace_core::{BindSpace, ErrorKind, SchemaVersion, snapshot};
use bindspace_pitr::{Error, Target, restore_to};
use bindspace_store_s3::{ObjectBackupStore, StoreOptions};
use bindspace_testkit::{Fault, FaultyStore, Op};

fn memory() -> Arc<dyn BackupStore> {
    Arc::new(ObjectBackupStore::from_url("memory://", StoreOptions::default()).unwrap())
}

/// A full and two deltas of a 256-address space, in each of `stores`.
async fn chain(stores: &[&Arc<FaultyStore>]) -> BindSpace {
    let schema = SchemaVersion::CURRENT
        .with_words(16)
        .with_address_space(256);
    let mut w = Workload::new(5, schema);
    let mut space = w.filled_space(0.5).unwrap();
    let mut artifacts = vec![(
        ArtifactId::snapshot(space.version()),
        snapshot::encode(&space, 0),
    )];
    for _ in 0..2 {
        let mark = space.mark();
        w.run(&mut space, 100).unwrap();
        let d = bindspace_xor_delta::compute_dirty(&space, &mark, 0).unwrap();
        artifacts.push((
            ArtifactId::delta(d.from_version, d.to_version),
            bindspace_xor_delta::encode(&d),
        ));
    }
    for s in stores {
        for (id, bytes) in &artifacts {
            s.inner().put(*id, bytes.clone().into()).await.unwrap();
        }
    }
    space
}

fn both(a: &Arc<FaultyStore>, b: &Arc<FaultyStore>) -> Vec<Arc<dyn BackupStore>> {
    vec![a.clone(), b.clone()]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_kind_of_bad_first_copy_falls_back_to_the_second_store() {
    for fault in [Fault::Fail, Fault::Corrupt, Fault::DropAfter(100)] {
        let a = FaultyStore::new(memory());
        let b = FaultyStore::new(memory());
        let want = chain(&[&a, &b]).await;
        a.inject(Op::Get, fault, None);
        let (space, plan) = restore_to(both(&a, &b), &Target::Latest).await.unwrap();
        assert_eq!(space, want, "{fault:?}");
        assert_eq!(plan.version, want.version());
        assert_eq!(
            a.calls(Op::Get),
            3,
            "{fault:?}: each artifact tried first in a"
        );
        assert_eq!(b.calls(Op::Get), 3, "{fault:?}: and served by b");
        // planning lists each store once per artifact kind, no more
        assert_eq!(a.calls(Op::List), 3);
        assert_eq!(b.calls(Op::List), 3);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_no_copy_is_intact_the_error_names_every_store_and_its_kind() {
    let a = FaultyStore::new(memory());
    let b = FaultyStore::new(memory());
    chain(&[&a, &b]).await;
    a.inject(Op::Get, Fault::Corrupt, None);
    b.inject(Op::Get, Fault::Fail, None);
    let err = restore_to(both(&a, &b), &Target::Latest).await.unwrap_err();
    let Error::Fetch { failures, .. } = &err else {
        panic!("{err:?}")
    };
    let kinds: Vec<ErrorKind> = failures.iter().map(|f| f.error.kind()).collect();
    assert_eq!(kinds, [ErrorKind::Corrupt, ErrorKind::Unavailable], "{err}");
    assert_eq!(
        err.kind(),
        ErrorKind::Unavailable,
        "a retry may find b back up"
    );
    b.heal();
    b.inject(Op::Get, Fault::DropAfter(10), None);
    let err = restore_to(both(&a, &b), &Target::Latest).await.unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::Corrupt,
        "every copy is damaged: {err}"
    );
    assert!(err.to_string().contains("blake3"), "{err}");
}

// Review of issue 17: when no store can be listed at all the error says so, as a
// failure a retry may cure (a drill reports such a store "unavailable", not "failed");
// when one store lists fine but holds nothing, it is not "no store could be read".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_store_readable_is_said_and_retryable_only_when_true() {
    let a = FaultyStore::new(memory());
    let b = FaultyStore::new(memory());
    chain(&[&a]).await;
    a.inject(Op::List, Fault::Fail, None);
    b.inject(Op::List, Fault::Fail, None);
    let err = restore_to(both(&a, &b), &Target::Latest).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::NoStoreReadable {
                retryable: true,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.to_string().contains("no store could be read"), "{err}");
    // b answers (empty): a is down, but not every store is
    b.heal();
    let err = restore_to(both(&a, &b), &Target::Latest).await.unwrap_err();
    assert!(!err.to_string().contains("no store could be read"), "{err}");
    assert!(err.to_string().contains("could not read"), "{err}");
}
