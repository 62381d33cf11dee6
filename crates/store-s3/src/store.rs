//! `BackupStore` over `Arc<dyn ObjectStore>`.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bindspace_catalog::{
    ArtifactId, ArtifactKind, ArtifactRef, BackupStore, Error, Lease, Manifest, Result, SpaceName,
    TimelineId, blake3_hex, parse_blake3_hex,
};
use bytes::{Bytes, BytesMut};
use futures::{TryFutureExt, TryStreamExt};
use object_store::path::Path;
use object_store::{GetOptions, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use url::Url;

/// Tuning of an [`ObjectBackupStore`].
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// Artifacts at least this large are uploaded in parts. Default 16 MiB.
    pub multipart_threshold: usize,
    /// Part size of multipart uploads (S3 wants ≥ 5 MiB). Default 8 MiB.
    pub part_size: usize,
    /// Every store request (one upload part, one listing, one catalog commit) fails
    /// with `Error::Timeout` after this long: a frozen server must not hang a backup,
    /// and a large artifact on a slow link is many requests, each under it. Default
    /// 30 s.
    pub op_timeout: Duration,
    /// object_store client options and retry settings, passed through (e.g.
    /// `("aws_endpoint", "http://127.0.0.1:9000")`, `("timeout", "10s")`). `AWS_*`
    /// environment variables are read too.
    pub client_options: Vec<(String, String)>,
    /// Retries of a failed request inside object_store. Default 3.
    pub max_retries: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            multipart_threshold: 16 << 20,
            part_size: 8 << 20,
            op_timeout: Duration::from_secs(30),
            client_options: Vec::new(),
            max_retries: 3,
        }
    }
}

/// A [`BackupStore`] on an object store.
#[derive(Debug, Clone)]
pub struct ObjectBackupStore {
    os: Arc<dyn ObjectStore>,
    root: Path,
    url: String,
    opts: StoreOptions,
}

fn unavailable(store: &str, op: &str, e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::Unavailable {
        store: store.to_owned(),
        op: op.to_owned(),
        source: Box::new(e),
    }
}

/// Where the named spaces of a repository live, below its root.
pub const SPACES_DIR: &str = "spaces";

fn dir_of(kind: ArtifactKind) -> &'static str {
    match kind {
        ArtifactKind::Snapshot => "snapshots/native",
        ArtifactKind::Delta => "deltas",
        ArtifactKind::WalSegment => "wal/0",
    }
}

impl ObjectBackupStore {
    /// A store over `os`, with the repository at `root` inside it; `url` names it in
    /// messages.
    pub fn new(
        os: Arc<dyn ObjectStore>,
        root: Path,
        url: impl Into<String>,
        opts: StoreOptions,
    ) -> Self {
        ObjectBackupStore {
            os,
            root,
            url: url.into(),
            opts,
        }
    }

    /// A store from a URL: `s3://bucket/prefix` (with `AWS_*` from the environment and
    /// `opts.client_options`; `?endpoint=…&region=…&allow_http=true` name the server per
    /// URL, over the environment), `file:///absolute/dir` (created if missing),
    /// `memory://`, and `gs://` / `az://` when built with those features.
    pub fn from_url(url: &str, opts: StoreOptions) -> Result<Self> {
        let invalid = |detail: String| Error::Invalid {
            store: url.to_owned(),
            detail,
        };
        let parsed = Url::parse(url).map_err(|e| invalid(format!("not a URL: {e}")))?;
        if parsed.scheme() == "file" {
            let dir = parsed
                .to_file_path()
                .map_err(|_| invalid("file:// URLs need an absolute path".into()))?;
            std::fs::create_dir_all(&dir).map_err(|e| unavailable(url, "create directory", e))?;
        }
        #[cfg(feature = "aws")]
        if parsed.scheme() == "s3" {
            use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
            // from_env reads AWS_*; explicit options win.
            // each HTTP request under the store's timeout unless the options say
            // otherwise (Lance writes through this client too)
            let mut bare = parsed.clone();
            bare.set_query(None);
            let mut b = AmazonS3Builder::from_env()
                .with_url(bare.as_str())
                .with_config(
                    AmazonS3ConfigKey::Client(object_store::ClientConfigKey::Timeout),
                    format!("{}ms", opts.op_timeout.as_millis().max(1)),
                );
            // where the bucket is, per URL (two regions or servers in one command);
            // never credentials: a URL is printed in messages
            for (k, v) in parsed.query_pairs() {
                let key = match k.as_ref() {
                    "endpoint" => AmazonS3ConfigKey::Endpoint,
                    "region" => AmazonS3ConfigKey::Region,
                    "allow_http" => {
                        AmazonS3ConfigKey::Client(object_store::ClientConfigKey::AllowHttp)
                    }
                    other => {
                        return Err(invalid(format!(
                            "unknown URL option {other:?} (s3:// URLs take endpoint, region and allow_http; credentials come from AWS_* variables)"
                        )));
                    }
                };
                b = b.with_config(key, v.into_owned());
            }
            for (k, v) in &opts.client_options {
                let key: AmazonS3ConfigKey = k
                    .parse()
                    .map_err(|e: object_store::Error| invalid(e.to_string()))?;
                b = b.with_config(key, v.clone());
            }
            let retry = object_store::RetryConfig {
                max_retries: opts.max_retries,
                retry_timeout: opts.op_timeout,
                ..object_store::RetryConfig::default()
            };
            let s3 = b
                .with_retry(retry)
                .build()
                .map_err(|e| invalid(e.to_string()))?;
            let root = Path::parse(parsed.path().trim_start_matches('/'))
                .map_err(|e| invalid(e.to_string()))?;
            return Ok(Self::new(Arc::new(s3), root, url, opts));
        }
        let mut options: Vec<(String, String)> = std::env::vars()
            .filter(|(k, _)| {
                k.starts_with("AWS_") || k.starts_with("GOOGLE_") || k.starts_with("AZURE_")
            })
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect();
        options.extend(opts.client_options.iter().cloned());
        let (os, root) =
            object_store::parse_url_opts(&parsed, options).map_err(|e| invalid(e.to_string()))?;
        Ok(Self::new(Arc::from(os), root, url, opts))
    }

    /// The object store underneath (shared with Lance).
    pub fn object_store(&self) -> Arc<dyn ObjectStore> {
        Arc::clone(&self.os)
    }

    /// Whether a listing of this store comes back in lexical order of the keys.
    ///
    /// S3, GCS, Azure and the in-memory store sort their listings; a local directory
    /// (and an HTTP/WebDAV server) lists in whatever order the directory walk gives.
    /// Lance finds a dataset's latest manifest by listing, so it must be told.
    pub fn list_is_lexically_ordered(&self) -> bool {
        let scheme = self.url.split_once("://").map_or("", |(s, _)| s);
        matches!(
            scheme,
            "s3" | "s3a" | "gs" | "az" | "azure" | "abfs" | "abfss" | "adl" | "memory"
        )
    }

    /// The same connection on another space of the repository: `default` is the
    /// repository's root, any other space the directory `spaces/{name}/` below it
    /// (listings of one space never reach another's objects).
    pub fn in_space(&self, space: &SpaceName) -> Self {
        if space.is_default() {
            return self.clone();
        }
        ObjectBackupStore {
            os: Arc::clone(&self.os),
            root: self.root.clone().join(SPACES_DIR).join(space.as_str()),
            url: space.store_name(&self.url),
            opts: self.opts.clone(),
        }
    }

    /// The named spaces of the repository (those below `spaces/`; the root space
    /// `default` is not listed). Call on the repository's root handle.
    pub async fn spaces(&self) -> Result<Vec<SpaceName>> {
        let dir = self.root.clone().join(SPACES_DIR);
        let listed = self
            .timed("list spaces", async {
                self.os
                    .list_with_delimiter(Some(&dir))
                    .await
                    .map_err(|e| unavailable(&self.url, "list spaces", e))
            })
            .await?;
        let mut out: Vec<SpaceName> = listed
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().and_then(|n| SpaceName::new(n).ok()))
            .collect();
        out.sort();
        Ok(out)
    }

    /// The repository root inside the object store.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, rel: &str) -> Path {
        let mut p = self.root.clone();
        for part in rel.split('/') {
            p = p.join(part);
        }
        p
    }

    /// Where an artifact's bytes live in the object store (for tools and fault tests;
    /// writing there bypasses every check).
    pub fn object_path(&self, r: &ArtifactRef) -> Path {
        self.artifact_path(r)
    }

    fn artifact_path(&self, r: &ArtifactRef) -> Path {
        self.path(&format!(
            "{}/{}.{}",
            dir_of(r.id.kind()),
            r.id.key_name(),
            blake3_hex(&r.blake3)
        ))
    }

    async fn timed<T>(&self, op: &str, fut: impl Future<Output = Result<T>>) -> Result<T> {
        bindspace_catalog::timed(&self.url, op, self.opts.op_timeout, fut).await
    }

    /// All objects under `rel`, as (file name, size).
    async fn list_dir(&self, rel: &str) -> Result<Vec<(String, u64)>> {
        let prefix = self.path(rel);
        let metas: Vec<_> = self
            .os
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(|e| unavailable(&self.url, &format!("list {rel}"), e))?;
        Ok(metas
            .into_iter()
            .filter_map(|m| m.location.filename().map(|f| (f.to_owned(), m.size)))
            .collect())
    }

    async fn list_refs(&self, kind: ArtifactKind) -> Result<Vec<ArtifactRef>> {
        let mut out: Vec<ArtifactRef> = self
            .list_dir(dir_of(kind))
            .await?
            .into_iter()
            .filter_map(|(name, len)| {
                let (key, hex) = name.split_once('.')?;
                Some(ArtifactRef {
                    id: ArtifactId::parse_key_name(kind, key)?,
                    len,
                    blake3: parse_blake3_hex(hex)?,
                })
            })
            .collect();
        out.sort_by_key(|r| r.id);
        Ok(out)
    }

    /// The stored copies of one artifact id (normally one; two after a retry that
    /// replaced it). One listing that starts at the id's key: on a store that lists in
    /// key order it stops after them, so its cost does not grow with the archive (a
    /// local directory is walked whole by object_store, but in one call).
    async fn refs_of(&self, id: ArtifactId) -> Result<Vec<ArtifactRef>> {
        let dir = self.path(dir_of(id.kind()));
        let key = id.key_name();
        let from = dir.clone().join(format!("{key}."));
        let sorted = self.list_is_lexically_ordered();
        let mut listing = self.os.list_with_offset(Some(&dir), &from);
        let mut out = Vec::new();
        while let Some(m) = listing
            .try_next()
            .await
            .map_err(|e| unavailable(&self.url, &format!("list {id}"), e))?
        {
            let Some(name) = m.location.filename() else {
                continue;
            };
            match name
                .strip_prefix(key.as_str())
                .and_then(|r| r.strip_prefix('.'))
            {
                Some(hex) => {
                    if let Some(blake3) = parse_blake3_hex(hex) {
                        out.push(ArtifactRef {
                            id,
                            len: m.size,
                            blake3,
                        });
                    }
                }
                // past the id's names: nothing of it follows in key order
                None if sorted => break,
                None => {}
            }
        }
        Ok(out)
    }

    /// Deletes lease objects older than the one before `seq` (with their release
    /// marks), so `locks/` stays a few objects however many backups ran. Best effort: a
    /// leftover is deleted by the next acquisition.
    async fn prune_leases(&self, seq: u64) {
        let Ok(names) = self.list_dir("locks").await else {
            return;
        };
        for (name, _) in names {
            let old = name
                .strip_prefix("backup-")
                .map(|r| r.trim_end_matches(".released"))
                .and_then(|n| n.parse::<u64>().ok())
                .is_some_and(|n| n + 1 < seq);
            if old {
                let _ = self.os.delete(&self.path(&format!("locks/{name}"))).await;
            }
        }
    }

    /// Whether `lease` is this store's current lease at `now_us`; why not, if not.
    async fn lease_is_current(&self, lease: &Lease, now_us: u64) -> Result<()> {
        let lost = |detail: String| lease.lost(&self.url, detail);
        match self.newest_lease().await? {
            Some((seq, _, _)) if format!("{seq:020}") != lease.token => {
                Err(lost(format!("the newest lease is {seq:020}")))
            }
            Some((_, _, true)) => Err(lost("it was released".into())),
            Some((_, Some(l), false)) if l.expires_us > now_us => Ok(()),
            Some((_, Some(l), false)) => Err(lost(format!(
                "it expired at {} µs, now is {now_us}",
                l.expires_us
            ))),
            _ => Err(lost("the store holds no readable lease".into())),
        }
    }

    /// Uploads `bytes` to `path`: one request, or a multipart upload for a large
    /// artifact. Each request runs under the timeout on its own (a slow link makes a
    /// large upload long, not failed), with progress in the log.
    async fn upload(&self, path: &Path, bytes: Bytes, id: ArtifactId) -> Result<()> {
        if bytes.len() < self.opts.multipart_threshold {
            return self
                .timed(&format!("put {id}"), async {
                    self.os
                        .put(path, PutPayload::from_bytes(bytes))
                        .await
                        .map(|_| ())
                        .map_err(|e| unavailable(&self.url, &format!("put {id}"), e))
                })
                .await;
        }
        let mut up = self
            .timed(&format!("start multipart upload of {id}"), async {
                self.os
                    .put_multipart(path)
                    .await
                    .map_err(|e| unavailable(&self.url, "start multipart upload", e))
            })
            .await?;
        let part = self.opts.part_size.max(5 << 20);
        let parts = bytes.len().div_ceil(part);
        let mut at = 0;
        let res: Result<()> = async {
            for k in 0..parts {
                let end = (at + part).min(bytes.len());
                let what = format!("upload part {} of {parts} of {id}", k + 1);
                self.timed(
                    &what,
                    up.put_part(PutPayload::from_bytes(bytes.slice(at..end)))
                        .map_err(|e| unavailable(&self.url, &what, e)),
                )
                .await?;
                tracing::debug!(artifact = %id, part = k + 1, of = parts, bytes = end, "part uploaded");
                at = end;
            }
            self.timed(
                &format!("complete multipart upload of {id}"),
                up.complete()
                    .map_ok(|_| ())
                    .map_err(|e| unavailable(&self.url, "complete multipart upload", e)),
            )
            .await
        }
        .await;
        if res.is_err() {
            let _ = self
                .timed(
                    "abort multipart upload",
                    up.abort()
                        .map_err(|e| unavailable(&self.url, "abort multipart upload", e)),
                )
                .await;
        }
        res
    }

    /// Reads the artifact `r` at `path`: one request, or ranged requests of a part's
    /// size for a large one. Each request runs under the timeout on its own (a slow link
    /// makes a large download long, not failed), with progress in the log.
    async fn download(&self, path: &Path, r: &ArtifactRef) -> Result<Bytes> {
        let what = r.id.to_string();
        if r.len < self.opts.multipart_threshold as u64 {
            return self
                .timed(&format!("get {what}"), self.get_raw(path, &what))
                .await;
        }
        let part = self.opts.part_size.max(5 << 20) as u64;
        let ranges = r.len.div_ceil(part);
        // the length comes from a checksummed catalog, and is capped all the same
        let mut out = BytesMut::with_capacity(r.len.min(1 << 30) as usize);
        for k in 0..ranges {
            let (a, b) = (k * part, ((k + 1) * part).min(r.len));
            let op = format!("get {what} (range {} of {ranges})", k + 1);
            let got = self
                .timed(&op, async {
                    let res = match self
                        .os
                        .get_opts(path, GetOptions::new().with_range(Some(a..b)))
                        .await
                    {
                        Ok(res) => res,
                        Err(object_store::Error::NotFound { .. }) => {
                            return Err(Error::NotFound {
                                store: self.url.clone(),
                                what: what.clone(),
                            });
                        }
                        Err(e) => return Err(unavailable(&self.url, &op, e)),
                    };
                    if res.meta.size != r.len {
                        return Err(Error::Corrupt {
                            store: self.url.clone(),
                            artifact: r.id,
                            detail: format!("{} bytes, expected {}", res.meta.size, r.len),
                        });
                    }
                    res.bytes()
                        .await
                        .map_err(|e| unavailable(&self.url, &op, e))
                })
                .await?;
            out.extend_from_slice(&got);
            tracing::debug!(artifact = %r.id, range = k + 1, of = ranges, bytes = b, "range read");
        }
        Ok(out.freeze())
    }

    async fn generations(&self) -> Result<Vec<u64>> {
        let mut g: Vec<u64> = self
            .list_dir("catalog")
            .await?
            .into_iter()
            .filter_map(|(n, _)| n.strip_prefix("manifest-")?.parse().ok())
            .collect();
        g.sort_unstable();
        Ok(g)
    }

    /// Reads and checks generation `g` (its header must name it).
    async fn manifest_at(&self, g: u64) -> Result<Manifest> {
        let what = format!("manifest-{g:020}");
        let bytes = self.get_raw(&self.manifest_path(g), &what).await?;
        let (stored_g, m) = Manifest::decode(&self.url, &what, &bytes)?;
        if stored_g != g {
            return Err(Error::BadManifest {
                store: self.url.clone(),
                what,
                detail: format!("holds generation {stored_g}"),
            });
        }
        Ok(m)
    }

    fn manifest_path(&self, generation: u64) -> Path {
        self.path(&format!("catalog/manifest-{generation:020}"))
    }

    async fn get_raw(&self, path: &Path, what: &str) -> Result<Bytes> {
        match self.os.get(path).await {
            Ok(r) => r
                .bytes()
                .await
                .map_err(|e| unavailable(&self.url, &format!("read {what}"), e)),
            Err(object_store::Error::NotFound { .. }) => Err(Error::NotFound {
                store: self.url.clone(),
                what: what.to_owned(),
            }),
            Err(e) => Err(unavailable(&self.url, &format!("get {what}"), e)),
        }
    }

    /// Creates `path` only if absent; `Ok(false)` if it exists.
    async fn create(&self, path: &Path, bytes: Vec<u8>, what: &str) -> Result<bool> {
        let opts = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        match self.os.put_opts(path, PutPayload::from(bytes), opts).await {
            Ok(_) => Ok(true),
            Err(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. },
            ) => Ok(false),
            Err(e) => Err(unavailable(&self.url, &format!("create {what}"), e)),
        }
    }

    /// The newest lease object: (sequence number, lease, released?).
    async fn newest_lease(&self) -> Result<Option<(u64, Option<Lease>, bool)>> {
        let mut seqs: Vec<(u64, bool)> = self
            .list_dir("locks")
            .await?
            .into_iter()
            .filter_map(|(n, _)| {
                let rest = n.strip_prefix("backup-")?;
                match rest.strip_suffix(".released") {
                    Some(s) => Some((s.parse().ok()?, true)),
                    None => Some((rest.parse().ok()?, false)),
                }
            })
            .collect();
        seqs.sort_unstable();
        let Some(&(seq, _)) = seqs.last() else {
            return Ok(None);
        };
        let released = seqs.contains(&(seq, true));
        let lease = match self
            .get_raw(&self.path(&format!("locks/backup-{seq:020}")), "lease")
            .await
        {
            Ok(b) => Lease::from_json(&b),
            Err(Error::NotFound { .. }) => None,
            Err(e) => return Err(e),
        };
        Ok(Some((seq, lease, released)))
    }
}

#[async_trait]
impl BackupStore for ObjectBackupStore {
    fn name(&self) -> String {
        self.url.clone()
    }

    async fn put(&self, id: ArtifactId, bytes: Bytes) -> Result<ArtifactRef> {
        let r = ArtifactRef::of(id, &bytes);
        let path = self.artifact_path(&r);
        self.upload(&path, bytes, id).await?;
        // Replace: drop other versions of the same id (written before a retry).
        let copies = self.timed(&format!("list {id}"), self.refs_of(id)).await?;
        for old in copies.into_iter().filter(|old| old.blake3 != r.blake3) {
            self.timed(&format!("delete replaced {id}"), async {
                self.os
                    .delete(&self.artifact_path(&old))
                    .await
                    .map_err(|e| unavailable(&self.url, "delete replaced artifact", e))
            })
            .await?;
        }
        Ok(r)
    }

    async fn get(&self, r: &ArtifactRef) -> Result<Bytes> {
        let bytes = self.download(&self.artifact_path(r), r).await?;
        r.verify(&self.url, &bytes)?;
        Ok(bytes)
    }

    async fn list(&self, kind: ArtifactKind, lo: u64, hi: u64) -> Result<Vec<ArtifactRef>> {
        self.timed("list", async {
            Ok(self
                .list_refs(kind)
                .await?
                .into_iter()
                .filter(|r| r.id.overlaps(lo, hi))
                .collect())
        })
        .await
    }

    async fn list_since(
        &self,
        kind: ArtifactKind,
        timeline: TimelineId,
        first: u64,
    ) -> Result<Vec<ArtifactRef>> {
        self.timed("list since", async {
            // one listing that starts at the first name the answer can hold: on a
            // store that lists in key order it stops at the first name of another
            // history, so its cost grows with what is new, not with the archive
            let start = ArtifactId::snapshot(first).on(timeline).key_name();
            let dir = self.path(dir_of(kind));
            let from = dir.clone().join(start.as_str());
            let sorted = self.list_is_lexically_ordered();
            let mut listing = self.os.list_with_offset(Some(&dir), &from);
            let mut out = Vec::new();
            while let Some(m) = listing
                .try_next()
                .await
                .map_err(|e| unavailable(&self.url, "list since", e))?
            {
                let Some(name) = m.location.filename() else {
                    continue;
                };
                let parsed = name.split_once('.').and_then(|(key, hex)| {
                    Some((
                        ArtifactId::parse_key_name(kind, key)?,
                        parse_blake3_hex(hex)?,
                    ))
                });
                match parsed {
                    Some((id, blake3)) if id.timeline() == timeline && id.versions().0 >= first => {
                        out.push(ArtifactRef {
                            id,
                            len: m.size,
                            blake3,
                        });
                    }
                    Some((id, _)) if id.timeline() == timeline => {}
                    // another history's names follow this one's in key order
                    Some(_) if sorted => break,
                    _ => {}
                }
            }
            out.sort_by_key(|r| r.id);
            Ok(out)
        })
        .await
    }

    async fn holds(&self, r: &ArtifactRef) -> Result<bool> {
        self.timed(&format!("head {}", r.id), async {
            match self.os.head(&self.artifact_path(r)).await {
                Ok(m) => Ok(m.size == r.len),
                Err(object_store::Error::NotFound { .. }) => Ok(false),
                Err(e) => Err(unavailable(&self.url, &format!("head {}", r.id), e)),
            }
        })
        .await
    }

    async fn delete(&self, id: ArtifactId) -> Result<()> {
        self.timed(&format!("delete {id}"), async {
            for r in self.refs_of(id).await? {
                match self.os.delete(&self.artifact_path(&r)).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(unavailable(&self.url, "delete", e)),
                }
            }
            Ok(())
        })
        .await
    }

    async fn read_manifest(&self) -> Result<Option<(u64, Manifest)>> {
        self.timed("read manifest", async {
            let Some(&g) = self.generations().await?.last() else {
                return Ok(None);
            };
            Ok(Some((g, self.manifest_at(g).await?)))
        })
        .await
    }

    async fn manifest_generation(&self) -> Result<u64> {
        self.timed("list manifests", async {
            Ok(self.generations().await?.last().copied().unwrap_or(0))
        })
        .await
    }

    async fn older_manifests(&self) -> Result<Vec<u64>> {
        self.timed("list manifests", async {
            let mut g = self.generations().await?;
            g.pop();
            g.reverse();
            Ok(g)
        })
        .await
    }

    async fn read_manifest_at(&self, generation: u64) -> Result<Manifest> {
        self.timed("read manifest", self.manifest_at(generation))
            .await
    }

    async fn commit_manifest(&self, expected: u64, manifest: &Manifest) -> Result<u64> {
        self.timed("commit manifest", async {
            let current = self.generations().await?.last().copied().unwrap_or(0);
            if current != expected {
                return Err(Error::Conflict {
                    store: self.url.clone(),
                    expected,
                    found: current,
                });
            }
            let next = expected + 1;
            if !self
                .create(&self.manifest_path(next), manifest.encode(next), "manifest")
                .await?
            {
                return Err(Error::Conflict {
                    store: self.url.clone(),
                    expected,
                    found: self.generations().await?.last().copied().unwrap_or(next),
                });
            }
            // Keep the last 16 generations; older ones are history nobody reads.
            for g in self
                .generations()
                .await?
                .into_iter()
                .filter(|&g| g + 16 <= next)
            {
                let _ = self.os.delete(&self.manifest_path(g)).await;
            }
            Ok(next)
        })
        .await
    }

    async fn commit_manifest_fenced(
        &self,
        expected: u64,
        manifest: &Manifest,
        lease: &Lease,
        now_us: u64,
    ) -> Result<u64> {
        self.timed("check lease", self.lease_is_current(lease, now_us))
            .await?;
        self.commit_manifest(expected, manifest).await
    }

    async fn renew_lease(&self, lease: &Lease, now_us: u64, ttl_us: u64) -> Result<Lease> {
        self.timed("renew lease", async {
            self.lease_is_current(lease, now_us).await?;
            let renewed = lease.extended(now_us, ttl_us);
            let path = self.path(&format!("locks/backup-{}", lease.token));
            self.os
                .put(&path, PutPayload::from(renewed.to_json()))
                .await
                .map_err(|e| unavailable(&self.url, "renew lease", e))?;
            // taken over meanwhile (it read the old expiry): the newer lease wins
            self.lease_is_current(&renewed, now_us).await?;
            Ok(renewed)
        })
        .await
    }

    async fn acquire_lease(&self, holder: &str, now_us: u64, ttl_us: u64) -> Result<Lease> {
        self.timed("acquire lease", async {
            let newest = self.newest_lease().await?;
            let seq = match &newest {
                Some((seq, Some(l), false)) if l.expires_us > now_us => {
                    return Err(Error::BackupInProgress {
                        store: self.url.clone(),
                        holder: l.holder.clone(),
                        since_us: l.since_us,
                        expires_us: l.expires_us,
                    });
                }
                Some((seq, _, _)) => seq + 1,
                None => 1,
            };
            let lease = Lease {
                holder: holder.to_owned(),
                since_us: now_us,
                expires_us: now_us.saturating_add(ttl_us),
                token: format!("{seq:020}"),
            };
            if !self
                .create(
                    &self.path(&format!("locks/backup-{seq:020}")),
                    lease.to_json(),
                    "lease",
                )
                .await?
            {
                // Someone took this sequence number first.
                let (holder, since_us, expires_us) = match self.newest_lease().await? {
                    Some((_, Some(l), _)) => (l.holder, l.since_us, l.expires_us),
                    _ => ("another writer".to_owned(), now_us, now_us),
                };
                return Err(Error::BackupInProgress {
                    store: self.url.clone(),
                    holder,
                    since_us,
                    expires_us,
                });
            }
            // a writer that stalled between reading the newest lease and creating the
            // next one may have re-created a pruned, older number: only the newest holds
            if !matches!(self.newest_lease().await?, Some((newest, _, _)) if newest == seq) {
                let _ = self
                    .os
                    .delete(&self.path(&format!("locks/backup-{seq:020}")))
                    .await;
                return Err(Error::BackupInProgress {
                    store: self.url.clone(),
                    holder: "another writer (a newer lease exists)".into(),
                    since_us: now_us,
                    expires_us: now_us,
                });
            }
            self.prune_leases(seq).await;
            Ok(lease)
        })
        .await
    }

    async fn release_lease(&self, lease: &Lease) -> Result<()> {
        self.timed("release lease", async {
            // Fencing: only the newest acquisition can be released.
            if let Some((seq, _, false)) = self.newest_lease().await?
                && format!("{seq:020}") == lease.token
            {
                self.create(
                    &self.path(&format!("locks/backup-{seq:020}.released")),
                    Vec::new(),
                    "lease release",
                )
                .await?;
            }
            Ok(())
        })
        .await
    }
}
