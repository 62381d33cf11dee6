//! Full snapshots as versions of one Lance dataset (`snapshots.lance`), through the
//! same `Arc<dyn ObjectStore>` as the store's other artifacts.
//!
//! Each snapshot is written as a dense table: one row per address (row `i` is address
//! `i`), `fingerprint` null where the address is empty. So a single-address read at
//! any snapshot is Lance's random access to one row (`Dataset::take`), not a scan.
//! The space's version and schema travel in the Arrow schema metadata.

use std::sync::Arc;

use arrow_array::{Array, FixedSizeBinaryArray, RecordBatch, RecordBatchIterator, UInt16Array};
use bindspace_catalog::{BackupStore, Error, Result};
use bindspace_core::le::{copy_bytes_to_words, words_as_bytes};
use bindspace_core::{Addr, BindSpace, Fingerprint, SchemaVersion};
use lance::dataset::{Dataset, WriteMode, WriteParams, builder::DatasetBuilder};
use lance::session::Session;
use lance_io::object_store::{
    ObjectStore as LanceObjectStore, ObjectStoreParams, ObjectStoreProvider, ObjectStoreRegistry,
};
use lance_table::io::commit::{CommitHandler, ConditionalPutCommitHandler};
use object_store::path::Path;

use crate::ObjectBackupStore;

const META_SPACE_VERSION: &str = "bindspace.version";
const META_SCHEMA: &str = "bindspace.schema";
/// Set by [`crate::LanceBackupStore`]: the native artifact a version stands for.
pub(crate) const META_TIME: &str = "bindspace.time_us";
/// `"<len> <blake3 hex>"` of that native artifact.
pub(crate) const META_NATIVE: &str = "bindspace.native";
/// The artifact format of the native snapshot (absent: format 1, written before the
/// key existed), so `get` re-encodes it exactly as it was written.
pub(crate) const META_FORMAT: &str = "bindspace.format";
/// Tags naming the dataset version that holds the snapshot at a space version.
const TAG_PREFIX: &str = "snapshot-";

/// `snapshot-<version>` on timeline 1 (the tags of layout 1), `snapshot-t<timeline>-<version>`
/// on the others.
fn tag_for(timeline: u32, space_version: u64) -> String {
    match timeline {
        1 => format!("{TAG_PREFIX}{space_version:020}"),
        t => format!("{TAG_PREFIX}t{t:08}-{space_version:020}"),
    }
}

fn parse_tag(name: &str) -> Option<(u32, u64)> {
    let rest = name.strip_prefix(TAG_PREFIX)?;
    let (t, v) = match rest.strip_prefix('t') {
        Some(r) => {
            let (t, v) = r.split_once('-')?;
            (t.parse().ok().filter(|&t: &u32| t > 1)?, v)
        }
        None => (1, rest),
    };
    Some((t, v.parse().ok()?))
}

/// URI scheme under which our own object store is registered with lance.
const SCHEME: &str = "bindspace";

/// Hands lance the repository's `Arc<dyn ObjectStore>` (lance's recommended way to use a
/// store it did not build), rooted at the repository.
#[derive(Debug)]
struct RepoProvider {
    store: Arc<dyn object_store::ObjectStore>,
    root: Path,
    tag: String,
    lexical: bool,
}

#[async_trait::async_trait]
impl ObjectStoreProvider for RepoProvider {
    async fn new_store(
        &self,
        base: url::Url,
        params: &ObjectStoreParams,
    ) -> lance::Result<LanceObjectStore> {
        Ok(LanceObjectStore::new(
            Arc::clone(&self.store),
            base,
            params.block_size,
            None,
            false,
            // lance picks the latest manifest from a listing; claiming a sorted listing
            // for a local directory made it pick a stale one (a commit conflict at the
            // fifth version)
            self.lexical,
            8,
            3,
            None,
        ))
    }

    fn extract_path(&self, url: &url::Url) -> lance::Result<Path> {
        let mut p = self.root.clone();
        for part in url.path().split('/').filter(|s| !s.is_empty()) {
            p = p.join(part);
        }
        Ok(p)
    }

    fn calculate_object_store_prefix(
        &self,
        _url: &url::Url,
        _opts: Option<&std::collections::HashMap<String, String>>,
    ) -> lance::Result<String> {
        Ok(format!("{SCHEME}${}", self.tag))
    }
}

/// The Lance snapshot dataset of a repository.
#[derive(Debug, Clone)]
pub struct LanceSnapshots {
    store: ObjectBackupStore,
    uri: String,
    session: Arc<Session>,
    commit: Arc<dyn CommitHandler>,
}

/// One snapshot in the dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LanceSnapshot {
    /// The Lance dataset version.
    pub dataset_version: u64,
    /// The BindSpace version it holds.
    pub space_version: u64,
}

fn lance_err(store: &str, op: &str, e: lance::Error) -> Error {
    Error::Unavailable {
        store: store.to_owned(),
        op: format!("lance {op}"),
        source: Box::new(e),
    }
}

fn schema_string(s: &SchemaVersion) -> String {
    format!(
        "{}.{}.{} {} {} {}",
        s.major, s.minor, s.patch, s.fingerprint_words, s.address_space, s.features
    )
}

fn parse_schema(s: &str) -> Option<SchemaVersion> {
    let mut it = s.split(' ');
    let mut v = it.next()?.split('.').map(|x| x.parse::<u16>().ok());
    Some(SchemaVersion {
        major: v.next()??,
        minor: v.next()??,
        patch: v.next()??,
        fingerprint_words: it.next()?.parse().ok()?,
        address_space: it.next()?.parse().ok()?,
        features: it.next()?.parse().ok()?,
    })
}

impl LanceSnapshots {
    /// The dataset `snapshots.lance` under the store's root.
    pub fn new(store: &ObjectBackupStore) -> Self {
        let registry = ObjectStoreRegistry::default();
        registry.insert(
            SCHEME,
            Arc::new(RepoProvider {
                store: store.object_store(),
                root: store.root().clone(),
                tag: store.name(),
                lexical: store.list_is_lexically_ordered(),
            }),
        );
        LanceSnapshots {
            store: store.clone(),
            uri: format!("{SCHEME}://repository/snapshots.lance"),
            session: Arc::new(Session::new(0, 0, Arc::new(registry))),
            // put-if-absent of the next manifest: supported by every object_store backend
            commit: Arc::new(ConditionalPutCommitHandler),
        }
    }

    /// Where the dataset lives: `snapshots.lance` under the repository root.
    pub fn location(&self) -> String {
        format!(
            "{}/snapshots.lance",
            self.store.name().trim_end_matches('/')
        )
    }

    async fn open(&self, version: Option<u64>) -> Result<Dataset> {
        let mut b = DatasetBuilder::from_uri(&self.uri)
            .with_session(Arc::clone(&self.session))
            .with_commit_handler(Arc::clone(&self.commit));
        if let Some(v) = version {
            b = b.with_version(v);
        }
        b.load().await.map_err(|e| match e {
            lance::Error::DatasetNotFound { .. } => Error::NotFound {
                store: self.store.name(),
                what: format!("lance dataset {}", self.location()),
            },
            e => lance_err(&self.store.name(), "open", e),
        })
    }

    /// The newest dataset version, or `None` before the first write.
    async fn open_latest(&self) -> Result<Option<Dataset>> {
        match self.open(None).await {
            Ok(ds) => Ok(Some(ds)),
            Err(Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Writes `space` as a new dataset version; returns it.
    #[tracing::instrument(skip_all, fields(store = %self.store.name(), version = space.version()))]
    pub async fn write(&self, space: &BindSpace) -> Result<LanceSnapshot> {
        self.write_with(space, Vec::new()).await
    }

    /// [`LanceSnapshots::write`] with extra key/value metadata on the version.
    pub(crate) async fn write_with(
        &self,
        space: &BindSpace,
        extra: Vec<(String, String)>,
    ) -> Result<LanceSnapshot> {
        let words = space.words();
        let n = space.address_space();
        let addrs: UInt16Array = (0..n).map(|a| a as u16).collect();
        let mut values = vec![0u8; n * words * 8];
        let mut valid = vec![false; n];
        for (r, w) in space.occupied_runs() {
            values[r.start * words * 8..r.end * words * 8].copy_from_slice(&words_as_bytes(w));
            valid[r].fill(true);
        }
        let fps = FixedSizeBinaryArray::new(
            (words * 8) as i32,
            arrow_buffer::Buffer::from_vec(values),
            Some(arrow_buffer::NullBuffer::from(valid)),
        );
        let meta = [
            (META_SPACE_VERSION.to_owned(), space.version().to_string()),
            (META_SCHEMA.to_owned(), schema_string(&space.schema())),
        ]
        .into_iter()
        .chain(extra)
        .collect();
        let schema = Arc::new(
            arrow_schema::Schema::new(vec![
                arrow_schema::Field::new("addr", arrow_schema::DataType::UInt16, false),
                arrow_schema::Field::new(
                    "fingerprint",
                    arrow_schema::DataType::FixedSizeBinary((words * 8) as i32),
                    true,
                ),
            ])
            .with_metadata(meta),
        );
        let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(addrs), Arc::new(fps)])
            .map_err(|e| Error::Invalid {
                store: self.store.name(),
                detail: format!("arrow: {e}"),
            })?;
        let exists = self.open_latest().await?.is_some();
        let params = WriteParams {
            mode: if exists {
                WriteMode::Overwrite
            } else {
                WriteMode::Create
            },
            session: Some(Arc::clone(&self.session)),
            commit_handler: Some(Arc::clone(&self.commit)),
            ..WriteParams::default()
        };
        let reader = RecordBatchIterator::new(vec![Ok(batch)], schema);
        let ds = Dataset::write(reader, self.uri.as_str(), Some(params))
            .await
            .map_err(|e| lance_err(&self.store.name(), "write", e))?;
        Ok(LanceSnapshot {
            dataset_version: ds.version().version,
            space_version: space.version(),
        })
    }

    /// Every snapshot in the dataset, oldest first.
    pub async fn list(&self) -> Result<Vec<LanceSnapshot>> {
        let Some(ds) = self.open_latest().await? else {
            return Ok(Vec::new());
        };
        let versions = ds
            .versions()
            .await
            .map_err(|e| lance_err(&self.store.name(), "versions", e))?;
        let mut out = Vec::new();
        for v in versions {
            let at = self.open(Some(v.version)).await?;
            out.push(LanceSnapshot {
                dataset_version: v.version,
                space_version: self.space_version_of(&at)?,
            });
        }
        Ok(out)
    }

    /// The key/value metadata of dataset version `dataset_version`.
    pub async fn metadata(
        &self,
        dataset_version: u64,
    ) -> Result<std::collections::HashMap<String, String>> {
        Ok(self
            .open(Some(dataset_version))
            .await?
            .schema()
            .metadata
            .clone())
    }

    /// Names dataset version `dataset_version` as the snapshot at `space_version`
    /// (a Lance tag, moved in one write if it named another version, which is then
    /// dropped unless another tag names it: a snapshot put twice leaves no garbage).
    #[tracing::instrument(skip(self), fields(store = %self.store.name()))]
    pub async fn tag(&self, timeline: u32, space_version: u64, dataset_version: u64) -> Result<()> {
        let previous = self.tagged_version(timeline, space_version).await?;
        let ds = self.open(None).await?;
        let name = tag_for(timeline, space_version);
        let res = match previous {
            Some(_) => ds.tags().update(&name, dataset_version).await,
            None => ds.tags().create(&name, dataset_version).await,
        };
        res.map_err(|e| lance_err(&self.store.name(), "tag", e))?;
        match previous {
            Some(old) if old != dataset_version => self.drop_unless_tagged(&ds, old).await,
            _ => Ok(()),
        }
    }

    /// Removes dataset version `dv` and the files only it used, unless a tag names it.
    /// (Lance never removes the newest version; it goes once a newer one is written.)
    async fn drop_unless_tagged(&self, ds: &Dataset, dv: u64) -> Result<()> {
        if self.tagged().await?.iter().any(|&(_, _, v)| v == dv) {
            return Ok(());
        }
        let policy = lance::dataset::cleanup::CleanupPolicyBuilder::default()
            .versions(vec![dv])
            .map_err(|e| lance_err(&self.store.name(), "cleanup", e))?
            .build();
        ds.cleanup_with_policy(policy)
            .await
            .map_err(|e| lance_err(&self.store.name(), "cleanup", e))?;
        Ok(())
    }

    /// The tagged snapshots as `(timeline, space_version, dataset_version)`, ascending.
    pub async fn tagged(&self) -> Result<Vec<(u32, u64, u64)>> {
        let Some(ds) = self.open_latest().await? else {
            return Ok(Vec::new());
        };
        let tags = ds
            .tags()
            .list()
            .await
            .map_err(|e| lance_err(&self.store.name(), "list tags", e))?;
        let mut out: Vec<(u32, u64, u64)> = tags
            .into_iter()
            .filter_map(|(name, t)| {
                let (tl, v) = parse_tag(&name)?;
                Some((tl, v, t.version))
            })
            .collect();
        out.sort_unstable();
        Ok(out)
    }

    /// The dataset version tagged as the snapshot at `space_version` of `timeline`.
    pub async fn tagged_version(&self, timeline: u32, space_version: u64) -> Result<Option<u64>> {
        let Some(ds) = self.open_latest().await? else {
            return Ok(None);
        };
        match ds
            .tags()
            .get_version(&tag_for(timeline, space_version))
            .await
        {
            Ok(v) => Ok(Some(v)),
            Err(lance::Error::RefNotFound { .. }) => Ok(None),
            Err(e) => Err(lance_err(&self.store.name(), "read tag", e)),
        }
    }

    /// Drops the snapshot at `space_version`: removes its tag, then the dataset version
    /// and the files only it used (Lance keeps the newest version until a newer one is
    /// written). Dropping a missing one is not an error.
    #[tracing::instrument(skip(self), fields(store = %self.store.name()))]
    pub async fn forget(&self, timeline: u32, space_version: u64) -> Result<()> {
        let Some(dv) = self.tagged_version(timeline, space_version).await? else {
            return Ok(());
        };
        let ds = self.open(None).await?;
        match ds.tags().delete(&tag_for(timeline, space_version)).await {
            Ok(()) | Err(lance::Error::RefNotFound { .. }) => {}
            Err(e) => return Err(lance_err(&self.store.name(), "delete tag", e)),
        }
        self.drop_unless_tagged(&ds, dv).await
    }

    fn space_version_of(&self, ds: &Dataset) -> Result<u64> {
        ds.schema()
            .metadata
            .get(META_SPACE_VERSION)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| Error::BadManifest {
                store: self.store.name(),
                what: self.location(),
                detail: "dataset version without bindspace.version metadata".into(),
            })
    }

    fn schema_of(&self, ds: &Dataset) -> Result<SchemaVersion> {
        ds.schema()
            .metadata
            .get(META_SCHEMA)
            .and_then(|s| parse_schema(s))
            .ok_or_else(|| Error::BadManifest {
                store: self.store.name(),
                what: self.location(),
                detail: "dataset version without bindspace.schema metadata".into(),
            })
    }

    /// Reads dataset version `dataset_version` back into a BindSpace.
    #[tracing::instrument(skip(self), fields(store = %self.store.name()))]
    pub async fn restore(&self, dataset_version: u64) -> Result<BindSpace> {
        use futures::TryStreamExt;
        let ds = self.open(Some(dataset_version)).await?;
        let schema = self.schema_of(&ds)?;
        let mut space = BindSpace::new(schema).map_err(|e| Error::Invalid {
            store: self.store.name(),
            detail: e.to_string(),
        })?;
        let batches: Vec<RecordBatch> = ds
            .scan()
            .try_into_stream()
            .await
            .map_err(|e| lance_err(&self.store.name(), "scan", e))?
            .try_collect()
            .await
            .map_err(|e| lance_err(&self.store.name(), "scan", e))?;
        let mut fp = vec![0u64; schema.words()];
        for b in &batches {
            let (addrs, fps) = columns(b).ok_or_else(|| Error::BadManifest {
                store: self.store.name(),
                what: self.location(),
                detail: "unexpected columns".into(),
            })?;
            for i in 0..b.num_rows() {
                if fps.is_valid(i) {
                    copy_bytes_to_words(fps.value(i), &mut fp);
                    space
                        .write(Addr(addrs.value(i)), &fp)
                        .map_err(|e| Error::Invalid {
                            store: self.store.name(),
                            detail: e.to_string(),
                        })?;
                }
            }
        }
        space.set_version(self.space_version_of(&ds)?);
        Ok(space)
    }

    /// The fingerprint at `addr` in dataset version `dataset_version`, by random access
    /// to one row.
    #[tracing::instrument(skip(self), fields(store = %self.store.name()))]
    pub async fn read(&self, dataset_version: u64, addr: Addr) -> Result<Option<Fingerprint>> {
        let ds = self.open(Some(dataset_version)).await?;
        let schema = self.schema_of(&ds)?;
        if addr.index() >= schema.address_space as usize {
            return Ok(None);
        }
        let b = ds
            .take(&[addr.index() as u64], ds.schema().clone())
            .await
            .map_err(|e| lance_err(&self.store.name(), "take", e))?;
        let (addrs, fps) = columns(&b).ok_or_else(|| Error::BadManifest {
            store: self.store.name(),
            what: self.location(),
            detail: "unexpected columns".into(),
        })?;
        if b.num_rows() != 1 || addrs.value(0) != addr.0 {
            return Err(Error::BadManifest {
                store: self.store.name(),
                what: self.location(),
                detail: format!("row {} does not hold address {addr}", addr.index()),
            });
        }
        if !fps.is_valid(0) {
            return Ok(None);
        }
        let mut fp = Fingerprint::zeroed(schema.words());
        copy_bytes_to_words(fps.value(0), fp.words_mut());
        Ok(Some(fp))
    }
}

fn columns(b: &RecordBatch) -> Option<(&UInt16Array, &FixedSizeBinaryArray)> {
    let addrs = b
        .column_by_name("addr")?
        .as_any()
        .downcast_ref::<UInt16Array>()?;
    let fps = b
        .column_by_name("fingerprint")?
        .as_any()
        .downcast_ref::<FixedSizeBinaryArray>()?;
    Some((addrs, fps))
}
