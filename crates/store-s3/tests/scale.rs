//! Issue 16, item 3: archiving one more WAL segment into an archive of 200,000 costs a
//! bounded number of listings and listed objects (it used to list the whole `wal/0/`
//! prefix three times per segment, until a listing outlasted the store timeout and
//! archiving stopped for good), and the lease objects stay a few however many backups
//! ran. Counted through an `ObjectStore` wrapper under the memory and local-directory
//! stores (not the S3 server: 200,000 uploads would take minutes).
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use bindspace_catalog::{ArtifactId, BackupStore, StoreArchiver, blake3_hex};
use bindspace_store_s3::{ObjectBackupStore, StoreOptions};
use bindspace_wal::{Archiver, SealedSegment};
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions,
};

const PRELOADED: u64 = 200_000;

/// Counts listings and the objects they return.
#[derive(Debug)]
struct Counting {
    inner: Arc<dyn ObjectStore>,
    lists: Arc<AtomicU64>,
    listed: Arc<AtomicU64>,
}

impl std::fmt::Display for Counting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Counting({})", self.inner)
    }
}

impl Counting {
    fn counted(
        &self,
        s: BoxStream<'static, object_store::Result<ObjectMeta>>,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.lists.fetch_add(1, Ordering::SeqCst);
        let listed = Arc::clone(&self.listed);
        s.inspect(move |_| {
            listed.fetch_add(1, Ordering::SeqCst);
        })
        .boxed()
    }
}

#[async_trait]
impl ObjectStore for Counting {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }
    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }
    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.inner.get_opts(location, options).await
    }
    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }
    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.counted(self.inner.list(prefix))
    }
    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.counted(self.inner.list_with_offset(prefix, offset))
    }
    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.lists.fetch_add(1, Ordering::SeqCst);
        let r = self.inner.list_with_delimiter(prefix).await?;
        self.listed
            .fetch_add(r.objects.len() as u64, Ordering::SeqCst);
        Ok(r)
    }
    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
    async fn rename_opts(
        &self,
        from: &Path,
        to: &Path,
        options: RenameOptions,
    ) -> object_store::Result<()> {
        self.inner.rename_opts(from, to, options).await
    }
}

/// The object name of archived segment `i` (one version each), as the store names it.
fn segment_name(i: u64) -> String {
    let id = ArtifactId::wal(i, i);
    let hash = blake3::hash(&i.to_le_bytes());
    format!("{}.{}", id.key_name(), blake3_hex(hash.as_bytes()))
}

/// Archives segment `PRELOADED + 1` the way the WAL does (ask, store, confirm) and
/// returns (listings, objects listed).
fn archive_one_more(store: ObjectBackupStore, counting: &Counting) -> (u64, u64) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let archiver = StoreArchiver::new(Arc::new(store), rt.handle().clone());
    let bytes = b"segment bytes".to_vec();
    let v = PRELOADED + 1;
    let seg = SealedSegment {
        first_version: v,
        last_version: v,
        blake3: *blake3::hash(&bytes).as_bytes(),
        len: bytes.len() as u64,
    };
    counting.lists.store(0, Ordering::SeqCst);
    counting.listed.store(0, Ordering::SeqCst);
    assert!(!archiver.contains(&seg).unwrap());
    archiver.archive(&seg, &bytes).unwrap();
    assert!(archiver.contains(&seg).unwrap());
    (
        counting.lists.load(Ordering::SeqCst),
        counting.listed.load(Ordering::SeqCst),
    )
}

fn counting(inner: Arc<dyn ObjectStore>) -> Arc<Counting> {
    Arc::new(Counting {
        inner,
        lists: Arc::default(),
        listed: Arc::default(),
    })
}

#[test]
fn archiving_into_200000_segments_in_memory_lists_a_bounded_number() {
    let mem: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        for i in 1..=PRELOADED {
            let p = Path::from(format!("repo/wal/0/{}", segment_name(i)));
            mem.put_opts(&p, PutPayload::from_static(b"x"), PutOptions::default())
                .await
                .unwrap();
        }
    });
    let c = counting(mem);
    let store = ObjectBackupStore::new(
        c.clone(),
        Path::from("repo"),
        "memory://",
        StoreOptions::default(),
    );
    let (lists, listed) = archive_one_more(store, &c);
    eprintln!("memory: {lists} listings, {listed} objects listed");
    assert!(lists <= 3, "{lists} listings");
    assert!(listed <= 10, "{listed} objects listed for one segment");
}

#[test]
fn archiving_into_200000_segments_in_a_local_directory_lists_a_bounded_number() {
    let dir = tempfile::tempdir().unwrap();
    let wal = dir.path().join("repo/wal/0");
    std::fs::create_dir_all(&wal).unwrap();
    for i in 1..=PRELOADED {
        std::fs::write(wal.join(segment_name(i)), b"x").unwrap();
    }
    let local: Arc<dyn ObjectStore> =
        Arc::new(object_store::local::LocalFileSystem::new_with_prefix(dir.path()).unwrap());
    let c = counting(local);
    let url = format!("file://{}", dir.path().display());
    let store = ObjectBackupStore::new(c.clone(), Path::from("repo"), url, StoreOptions::default());
    let (lists, listed) = archive_one_more(store, &c);
    eprintln!("local directory: {lists} listings, {listed} objects listed");
    assert!(lists <= 3, "{lists} listings");
    assert!(listed <= 10, "{listed} objects listed for one segment");
}

#[tokio::test]
async fn lease_objects_stay_few_however_many_backups_ran() {
    let mem: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
    let c = counting(mem.clone());
    let store = ObjectBackupStore::new(
        c.clone(),
        Path::from("repo"),
        "memory://",
        StoreOptions::default(),
    );
    for i in 0..200u64 {
        let l = store
            .acquire_lease("writer", 1_000 + i, 60_000_000)
            .await
            .unwrap();
        store.release_lease(&l).await.unwrap();
    }
    let locks: Vec<_> = mem
        .list(Some(&Path::from("repo/locks")))
        .collect::<Vec<_>>()
        .await;
    assert!(
        locks.len() <= 4,
        "{} lease objects after 200 backups",
        locks.len()
    );
    // and the newest still excludes a second writer
    let held = store.acquire_lease("a", 5_000, 60_000_000).await.unwrap();
    assert!(store.acquire_lease("b", 5_001, 60_000_000).await.is_err());
    store.release_lease(&held).await.unwrap();
}
