//! `BackupStore` on PostgreSQL.

use std::time::Duration;

use async_trait::async_trait;
use bindspace_catalog::chunks::ChunkAssembler;
use bindspace_catalog::{
    ArtifactId, ArtifactKind, ArtifactRef, BackupStore, Error, Lease, Manifest, Result, SpaceName,
};
use bytes::Bytes;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use futures::TryStreamExt;
use tokio_postgres::NoTls;
use tokio_postgres::error::SqlState;

use crate::MIGRATIONS;

/// Tuning of a [`PgBackupStore`].
#[derive(Clone, Debug)]
pub struct PgOptions {
    /// The SQL schema holding the store's tables. Default `bindspace`.
    pub schema: String,
    /// Largest `bytea` value written. Default 4 MiB.
    pub chunk_size: usize,
    /// Connections in the pool. Default 8.
    pub pool_size: usize,
    /// Every store operation (including waiting for a connection) fails with
    /// `Error::Timeout` after this long. Default 30 s.
    pub op_timeout: Duration,
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions {
            schema: "bindspace".into(),
            chunk_size: 4 << 20,
            pool_size: 8,
            op_timeout: Duration::from_secs(30),
        }
    }
}

/// A [`BackupStore`] on a PostgreSQL database, in one space of the repository there:
/// the space `default` in the schema `opts.schema` (`bindspace`), any other in its
/// own schema `{schema}__{space}` with the same tables. One pool serves every space.
#[derive(Clone)]
pub struct PgBackupStore {
    pool: Pool,
    opts: PgOptions,
    /// The schema name of this space, unquoted.
    schema_name: String,
    /// The quoted schema name.
    quoted: String,
    name: String,
    /// The database's own name, before the space.
    server: String,
}

/// The schema of `space` beside the base schema.
fn space_schema(base: &str, space: &SpaceName) -> String {
    if space.is_default() {
        base.to_owned()
    } else {
        format!("{base}__{space}")
    }
}

impl std::fmt::Debug for PgBackupStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgBackupStore")
            .field("name", &self.name)
            .field("opts", &self.opts)
            .finish_non_exhaustive()
    }
}

fn kind_word(kind: ArtifactKind) -> &'static str {
    match kind {
        ArtifactKind::Snapshot => "snapshot",
        ArtifactKind::Delta => "delta",
        ArtifactKind::WalSegment => "wal",
    }
}

/// A stable advisory-lock key for migrations of one schema.
fn lock_key(schema: &str) -> i64 {
    let h = blake3::hash(format!("bindspace-store-pg migrations {schema}").as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&h.as_bytes()[..8]);
    i64::from_le_bytes(b)
}

impl PgBackupStore {
    /// A catalog commit; under `fence`, only while that lease is current (checked in
    /// the same transaction, the lease row locked against a takeover).
    async fn commit_with(
        &self,
        expected: u64,
        manifest: &Manifest,
        fence: Option<(&Lease, u64)>,
    ) -> Result<u64> {
        self.timed("commit manifest", async {
            let op = "commit manifest";
            let next = expected + 1;
            let mut c = self.client(op).await?;
            let err = |e| self.pg_err(op, e);
            let tx = c.transaction().await.map_err(err)?;
            let conflict = |found: u64| Error::Conflict {
                store: self.name.clone(),
                expected,
                found,
            };
            let current: Option<i64> = tx
                .query_opt(
                    &format!("SELECT generation FROM {}.catalog WHERE id = 1 FOR UPDATE", self.quoted),
                    &[],
                )
                .await
                .map_err(err)?
                .map(|r| r.get(0));
            let current = current.map_or(0, |g| g as u64);
            if current != expected {
                return Err(conflict(current));
            }
            if let Some((lease, now_us)) = fence {
                let held = tx
                    .query_opt(
                        &format!("SELECT token, expires_us FROM {}.lease WHERE id = 1 FOR SHARE", self.quoted),
                        &[],
                    )
                    .await
                    .map_err(err)?
                    .map(|r| (r.get::<_, i64>(0), r.get::<_, i64>(1)));
                let now = i64::try_from(now_us).unwrap_or(i64::MAX);
                let current = match held {
                    Some((t, exp)) if t.to_string() == lease.token && exp > now => None,
                    Some((t, exp)) if t.to_string() == lease.token => {
                        Some(format!("it expired at {exp} µs, now is {now_us}"))
                    }
                    Some((t, _)) => Some(format!("the current lease is {t}")),
                    None => Some("no lease is held".to_owned()),
                };
                if let Some(detail) = current {
                    return Err(lease.lost(&self.name, detail));
                }
            }
            let bytes = manifest.encode(next);
            let res = if expected == 0 {
                tx.execute(
                    &format!("INSERT INTO {}.catalog (id, generation, manifest) VALUES (1, $1, $2)", self.quoted),
                    &[&(next as i64), &bytes],
                )
                .await
            } else {
                tx.execute(
                    &format!(
                        "UPDATE {}.catalog SET generation = $1, manifest = $2, committed_at = now() WHERE id = 1",
                        self.quoted
                    ),
                    &[&(next as i64), &bytes],
                )
                .await
            };
            match res {
                Ok(_) => {}
                // two first commits raced: the other one's row is there now
                Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                    return Err(conflict(expected + 1));
                }
                Err(e) => return Err(err(e)),
            }
            // The queryable projection, in the same transaction.
            tx.batch_execute(&format!(
                "DELETE FROM {s}.backups; DELETE FROM {s}.restore_points;",
                s = self.quoted
            ))
            .await
            .map_err(err)?;
            let ins = tx
                .prepare(&format!(
                    "INSERT INTO {}.backups (id, kind, parent, from_version, to_version, start_us,
                         end_us, size, blake3, status, locations, entry)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, ($12::text)::jsonb)",
                    self.quoted
                ))
                .await
                .map_err(err)?;
            let ins_schema = tx
                .prepare(&format!(
                    "INSERT INTO {}.schema_versions
                         (major, minor, patch, fingerprint_words, address_space, features)
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                    self.quoted
                ))
                .await
                .map_err(err)?;
            let word = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_owned();
            for e in &manifest.entries {
                let json = serde_json::to_value(e).expect("a backup entry always serialises");
                tx.execute(
                    &ins,
                    &[
                        &e.id,
                        &word(&json["kind"]),
                        &e.parent,
                        &(e.from_version as i64),
                        &(e.to_version as i64),
                        &(e.start_us as i64),
                        &(e.end_us as i64),
                        &(e.size as i64),
                        &e.blake3,
                        &word(&json["status"]),
                        &e.locations,
                        &json.to_string(),
                    ],
                )
                .await
                .map_err(err)?;
                let s = e.schema;
                tx.execute(
                    &ins_schema,
                    &[
                        &i32::from(s.major),
                        &i32::from(s.minor),
                        &i32::from(s.patch),
                        &i32::from(s.fingerprint_words),
                        &i64::from(s.address_space),
                        &(s.features as i64),
                    ],
                )
                .await
                .map_err(err)?;
            }
            for p in &manifest.restore_points {
                tx.execute(
                    &format!(
                        "INSERT INTO {}.restore_points (name, version, created_us, guaranteed)
                         VALUES ($1, $2, $3, $4)",
                        self.quoted
                    ),
                    &[&p.name, &(p.version as i64), &(p.created_us as i64), &p.guaranteed],
                )
                .await
                .map_err(err)?;
            }
            match tx.commit().await {
                Ok(()) => Ok(next),
                Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                    Err(conflict(expected + 1))
                }
                Err(e) => Err(err(e)),
            }
        })
        .await
    }

    /// Connects to `url` (`postgresql://user[:password]@host:port/db`, or the key=value
    /// form) and applies pending [`MIGRATIONS`](crate::MIGRATIONS).
    pub async fn connect(url: &str, opts: PgOptions) -> Result<Self> {
        let name = bindspace_catalog::redact_url(url);
        let invalid = |detail: String| Error::Invalid {
            store: name.clone(),
            detail,
        };
        if opts.chunk_size == 0 || opts.chunk_size > 512 << 20 {
            return Err(invalid("chunk_size must be in 1..=512 MiB".into()));
        }
        if opts.schema.is_empty() || opts.schema.contains('"') || opts.schema.contains('\0') {
            return Err(invalid(format!("bad schema name {:?}", opts.schema)));
        }
        let mut cfg: tokio_postgres::Config = url
            .parse()
            .map_err(|e| invalid(format!("not a PostgreSQL URL: {e}")))?;
        cfg.connect_timeout(opts.op_timeout);
        cfg.application_name("bindspace-store-pg");
        let mgr = Manager::from_config(
            cfg,
            NoTls,
            ManagerConfig {
                // a connection broken by a server restart is noticed and replaced
                recycling_method: RecyclingMethod::Verified,
            },
        );
        let pool = Pool::builder(mgr)
            .max_size(opts.pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(opts.op_timeout))
            .create_timeout(Some(opts.op_timeout))
            .recycle_timeout(Some(opts.op_timeout))
            .build()
            .map_err(|e| invalid(e.to_string()))?;
        if opts.schema.len() > 63 {
            return Err(invalid(format!(
                "schema name {:?} is longer than PostgreSQL's 63 bytes",
                opts.schema
            )));
        }
        let store = PgBackupStore {
            pool,
            schema_name: opts.schema.clone(),
            quoted: format!("\"{}\"", opts.schema),
            opts,
            server: name.clone(),
            name,
        };
        store.migrate().await?;
        Ok(store)
    }

    /// The same pool on another space of the repository: its own schema
    /// (`{schema}__{space}`), created and migrated on first use.
    pub async fn in_space(&self, space: &SpaceName) -> Result<Self> {
        let schema = space_schema(&self.opts.schema, space);
        if schema.len() > 63 {
            return Err(Error::Invalid {
                store: self.server.clone(),
                detail: format!(
                    "the schema of space {space}, {schema:?}, is longer than PostgreSQL's 63 bytes (use a shorter space name or base schema)"
                ),
            });
        }
        let store = PgBackupStore {
            pool: self.pool.clone(),
            opts: self.opts.clone(),
            quoted: format!("\"{schema}\""),
            schema_name: schema,
            name: space.store_name(&self.server),
            server: self.server.clone(),
        };
        if !space.is_default() {
            store.migrate().await?;
        }
        Ok(store)
    }

    /// The named spaces of the repository (schemas `{schema}__{space}` whose catalog
    /// was committed).
    pub async fn spaces(&self) -> Result<Vec<SpaceName>> {
        self.timed("list spaces", async {
            let c = self.client("list spaces").await?;
            let prefix = format!("{}__", self.opts.schema);
            let rows = c
                .query(
                    "SELECT n.nspname FROM pg_namespace n
                       JOIN pg_class t ON t.relnamespace = n.oid AND t.relname = 'catalog'
                      WHERE starts_with(n.nspname, $1)",
                    &[&prefix],
                )
                .await
                .map_err(|e| self.pg_err("list spaces", e))?;
            let mut out = Vec::new();
            for r in &rows {
                let schema: String = r.get(0);
                let Some(name) = schema
                    .strip_prefix(&prefix)
                    .and_then(|n| SpaceName::new(n).ok())
                else {
                    continue;
                };
                // a space is there once its catalog was committed (opening a space
                // creates its schema; a mistyped name leaves an empty one)
                let committed: bool = c
                    .query_one(
                        &format!("SELECT EXISTS (SELECT 1 FROM \"{schema}\".catalog)"),
                        &[],
                    )
                    .await
                    .map_err(|e| self.pg_err("list spaces", e))?
                    .get(0);
                if committed {
                    out.push(name);
                }
            }
            out.sort();
            Ok(out)
        })
        .await
    }

    /// Connects to `DATABASE_URL` (the seeds' variable).
    pub async fn from_env(opts: PgOptions) -> Result<Self> {
        let url = std::env::var("DATABASE_URL").map_err(|_| Error::Invalid {
            store: "postgresql".into(),
            detail: "DATABASE_URL is not set".into(),
        })?;
        Self::connect(&url, opts).await
    }

    /// The connection pool (for tools and tests; writing to the tables bypasses every
    /// check).
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The quoted schema name, ready to prefix a table (`"bindspace".artifacts`).
    pub fn schema(&self) -> &str {
        &self.quoted
    }

    /// Applies pending migrations; returns the versions applied now (empty when the
    /// schema was current). Safe to run concurrently from several processes.
    pub async fn migrate(&self) -> Result<Vec<i32>> {
        self.timed("migrate", async {
            let mut c = self.client("migrate").await?;
            let err = |e| self.pg_err("migrate", e);
            let tx = c.transaction().await.map_err(err)?;
            tx.execute(
                "SELECT pg_advisory_xact_lock($1)",
                &[&lock_key(&self.schema_name)],
            )
            .await
            .map_err(err)?;
            tx.batch_execute(&format!(
                "CREATE SCHEMA IF NOT EXISTS {s};
                 CREATE TABLE IF NOT EXISTS {s}.schema_migrations (
                     version integer PRIMARY KEY,
                     name text NOT NULL,
                     applied_at timestamptz NOT NULL DEFAULT now()
                 );",
                s = self.quoted
            ))
            .await
            .map_err(err)?;
            let done: Vec<i32> = tx
                .query(
                    &format!("SELECT version FROM {}.schema_migrations", self.quoted),
                    &[],
                )
                .await
                .map_err(err)?
                .iter()
                .map(|r| r.get(0))
                .collect();
            let mut applied = Vec::new();
            for m in MIGRATIONS.iter().filter(|m| !done.contains(&m.version)) {
                // all pending migrations run in this one transaction, under the lock:
                // they commit together or not at all, and a racing process waits
                tx.batch_execute(&m.sql.replace("{s}", &self.quoted))
                    .await
                    .map_err(|e| {
                        self.pg_err(&format!("migration {} ({})", m.version, m.name), e)
                    })?;
                tx.execute(
                    &format!(
                        "INSERT INTO {}.schema_migrations (version, name) VALUES ($1, $2)",
                        self.quoted
                    ),
                    &[&m.version, &m.name],
                )
                .await
                .map_err(err)?;
                applied.push(m.version);
            }
            tx.commit().await.map_err(err)?;
            if !applied.is_empty() {
                tracing::info!(store = %self.name, ?applied, "applied schema migrations");
            }
            Ok(applied)
        })
        .await
    }

    async fn client(&self, op: &str) -> Result<deadpool_postgres::Client> {
        self.pool.get().await.map_err(|e| Error::Unavailable {
            store: self.name.clone(),
            op: format!("{op}: get a connection"),
            source: Box::new(e),
        })
    }

    fn pg_err(&self, op: &str, e: tokio_postgres::Error) -> Error {
        Error::Unavailable {
            store: self.name.clone(),
            op: op.to_owned(),
            source: Box::new(e),
        }
    }

    async fn timed<T>(&self, op: &str, fut: impl Future<Output = Result<T>>) -> Result<T> {
        bindspace_catalog::timed(&self.name, op, self.opts.op_timeout, fut).await
    }

    fn versions(&self, id: ArtifactId) -> Result<(i64, i64)> {
        let (a, b) = id.versions();
        match (i64::try_from(a), i64::try_from(b)) {
            (Ok(a), Ok(b)) => Ok((a, b)),
            _ => Err(Error::Invalid {
                store: self.name.clone(),
                detail: format!("{id}: versions beyond 2^63 do not fit PostgreSQL's bigint"),
            }),
        }
    }

    fn timeline(&self, id: ArtifactId) -> Result<i32> {
        i32::try_from(id.timeline()).map_err(|_| Error::Invalid {
            store: self.name.clone(),
            detail: format!("{id}: timeline ids beyond 2^31 do not fit PostgreSQL's integer"),
        })
    }

    fn corrupt(&self, id: ArtifactId, detail: String) -> Error {
        Error::Corrupt {
            store: self.name.clone(),
            artifact: id,
            detail,
        }
    }

    fn to_u64(&self, what: &str, v: i64) -> Result<u64> {
        u64::try_from(v).map_err(|_| Error::BadManifest {
            store: self.name.clone(),
            what: what.to_owned(),
            detail: format!("negative value {v}"),
        })
    }
}

fn id_of(kind: ArtifactKind, a: u64, b: u64) -> ArtifactId {
    match kind {
        ArtifactKind::Snapshot => ArtifactId::snapshot(a),
        ArtifactKind::Delta => ArtifactId::delta(a, b),
        ArtifactKind::WalSegment => ArtifactId::wal(a, b),
    }
}

#[async_trait]
impl BackupStore for PgBackupStore {
    fn name(&self) -> String {
        self.name.clone()
    }

    async fn put(&self, id: ArtifactId, bytes: Bytes) -> Result<ArtifactRef> {
        let r = ArtifactRef::of(id, &bytes);
        let op = format!("put {id}");
        // each round trip under the timeout, not the whole upload: a large artifact on
        // a slow link must not fail for its size alone
        {
            let (a, b) = self.versions(id)?;
            let t = self.timeline(id)?;
            let kind = kind_word(id.kind());
            let chunk = self.opts.chunk_size;
            let n = bytes.len().div_ceil(chunk);
            let mut c = self.client(&op).await?;
            let err = |e| self.pg_err(&op, e);
            let tx = self
                .timed(&op, async { c.transaction().await.map_err(err) })
                .await?;
            let insert = self
                .timed(&op, async {
                    tx.execute(
                        &format!(
                            "INSERT INTO {}.artifacts
                         (kind, first_version, last_version, len, blake3, chunk_size, chunks,
                          timeline)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                     ON CONFLICT (timeline, kind, first_version, last_version) DO UPDATE SET
                         len = excluded.len, blake3 = excluded.blake3,
                         chunk_size = excluded.chunk_size, chunks = excluded.chunks,
                         stored_at = now()",
                            self.quoted
                        ),
                        &[
                            &kind,
                            &a,
                            &b,
                            &(r.len as i64),
                            &&r.blake3[..],
                            &(chunk as i32),
                            &(n as i32),
                            &t,
                        ],
                    )
                    .await
                    .map_err(err)?;
                    tx.execute(
                        &format!(
                            "DELETE FROM {}.artifact_chunks
                     WHERE kind = $1 AND first_version = $2 AND last_version = $3
                       AND timeline = $4",
                            self.quoted
                        ),
                        &[&kind, &a, &b, &t],
                    )
                    .await
                    .map_err(err)?;
                    tx.prepare(&format!(
                        "INSERT INTO {}.artifact_chunks
                         (kind, first_version, last_version, seq, data, timeline)
                     VALUES ($1, $2, $3, $4, $5, $6)",
                        self.quoted
                    ))
                    .await
                    .map_err(err)
                })
                .await?;
            // Pipelined, four chunks in flight: overlap without holding the whole
            // artifact twice.
            for group in (0..n).collect::<Vec<_>>().chunks(4) {
                let futs = group.iter().map(|&k| {
                    let part = bytes.slice(k * chunk..((k + 1) * chunk).min(bytes.len()));
                    let insert = &insert;
                    let tx = &tx;
                    async move {
                        tx.execute(insert, &[&kind, &a, &b, &(k as i32), &part.as_ref(), &t])
                            .await
                    }
                });
                let step = format!(
                    "{op} (chunks {}..={} of {n})",
                    group[0],
                    group[group.len() - 1]
                );
                self.timed(&step, async {
                    futures::future::try_join_all(futs).await.map_err(err)
                })
                .await?;
                tracing::debug!(artifact = %id, done = group[group.len() - 1] + 1, of = n, "chunks stored");
            }
            self.timed(&op, async { tx.commit().await.map_err(err) })
                .await?;
            Ok(r)
        }
    }

    async fn get(&self, r: &ArtifactRef) -> Result<Bytes> {
        let op = format!("get {}", r.id);
        let (a, b) = self.versions(r.id)?;
        let t = self.timeline(r.id)?;
        let kind = kind_word(r.id.kind());
        // each statement and each chunk under the timeout, not the whole download: a
        // large artifact on a slow link must not fail for its size alone
        let (c, row) = self
            .timed(&op, async {
                let c = self.client(&op).await?;
                let row = c
                    .query_opt(
                        &format!(
                            "SELECT len, blake3, chunks FROM {}.artifacts
                             WHERE kind = $1 AND first_version = $2 AND last_version = $3
                               AND timeline = $4",
                            self.quoted
                        ),
                        &[&kind, &a, &b, &t],
                    )
                    .await
                    .map_err(|e| self.pg_err(&op, e))?;
                Ok((c, row))
            })
            .await?;
        let row = row.ok_or_else(|| Error::NotFound {
            store: self.name.clone(),
            what: r.id.to_string(),
        })?;
        let (len, hash, chunks): (i64, Vec<u8>, i32) = (row.get(0), row.get(1), row.get(2));
        if hash != r.blake3 || len as u64 != r.len {
            return Err(self.corrupt(
                r.id,
                "the stored length or blake3 differs from the reference".into(),
            ));
        }
        let chunks = u64::try_from(chunks)
            .map_err(|_| self.corrupt(r.id, format!("the chunk count {chunks} is negative")))?;
        let mut out = ChunkAssembler::new(&self.name, r, chunks);
        let rows = self
            .timed(&op, async {
                c.query_raw(
                    &format!(
                        "SELECT seq, data FROM {}.artifact_chunks
                         WHERE kind = $1 AND first_version = $2 AND last_version = $3
                           AND timeline = $4
                         ORDER BY seq",
                        self.quoted
                    ),
                    [
                        &kind as &(dyn tokio_postgres::types::ToSql + Sync),
                        &a,
                        &b,
                        &t,
                    ],
                )
                .await
                .map_err(|e| self.pg_err(&op, e))
            })
            .await?;
        futures::pin_mut!(rows);
        let mut k = 0u64;
        loop {
            let what = format!("{op} (chunk {k} of {chunks})");
            let next = self
                .timed(&what, async {
                    rows.try_next().await.map_err(|e| self.pg_err(&what, e))
                })
                .await;
            let next = match next {
                Ok(n) => n,
                Err(e) => {
                    // the server may still be streaming rows into this connection:
                    // closed rather than handed to the next operation
                    drop(deadpool_postgres::Object::take(c));
                    return Err(e);
                }
            };
            let Some(row) = next else { break };
            let seq: i32 = row.get(0);
            // a negative sequence number can be no chunk: reported as missing
            out.push(u64::try_from(seq).unwrap_or(u64::MAX), Some(row.get(1)))?;
            k += 1;
        }
        out.finish()
    }

    async fn list(&self, kind: ArtifactKind, lo: u64, hi: u64) -> Result<Vec<ArtifactRef>> {
        self.timed("list", async {
            let c = self.client("list").await?;
            let lo = i64::try_from(lo).unwrap_or(i64::MAX);
            let hi = i64::try_from(hi).unwrap_or(i64::MAX);
            let rows = c
                .query(
                    &format!(
                        "SELECT first_version, last_version, len, blake3, timeline FROM {}.artifacts
                         WHERE kind = $1 AND first_version <= $3 AND last_version >= $2
                         ORDER BY first_version, last_version, timeline",
                        self.quoted
                    ),
                    &[&kind_word(kind), &lo, &hi],
                )
                .await
                .map_err(|e| self.pg_err("list", e))?;
            rows.iter()
                .map(|row| {
                    let a = self.to_u64("artifacts.first_version", row.get(0))?;
                    let b = self.to_u64("artifacts.last_version", row.get(1))?;
                    let len = self.to_u64("artifacts.len", row.get(2))?;
                    let hash: &[u8] = row.get(3);
                    let blake3 = hash.try_into().map_err(|_| Error::BadManifest {
                        store: self.name.clone(),
                        what: "artifacts.blake3".into(),
                        detail: format!("{} bytes, expected 32", hash.len()),
                    })?;
                    let t: i32 = row.get(4);
                    let t = u32::try_from(t).ok().filter(|&t| t >= 1).ok_or_else(|| {
                        Error::BadManifest {
                            store: self.name.clone(),
                            what: "artifacts.timeline".into(),
                            detail: format!("timeline {t}"),
                        }
                    })?;
                    Ok(ArtifactRef {
                        id: id_of(kind, a, b).on(t),
                        len,
                        blake3,
                    })
                })
                .collect()
        })
        .await
    }

    async fn delete(&self, id: ArtifactId) -> Result<()> {
        let op = format!("delete {id}");
        self.timed(&op, async {
            let (a, b) = self.versions(id)?;
            let t = self.timeline(id)?;
            let c = self.client(&op).await?;
            // chunks go with the row (ON DELETE CASCADE)
            c.execute(
                &format!(
                    "DELETE FROM {}.artifacts
                     WHERE kind = $1 AND first_version = $2 AND last_version = $3
                       AND timeline = $4",
                    self.quoted
                ),
                &[&kind_word(id.kind()), &a, &b, &t],
            )
            .await
            .map_err(|e| self.pg_err(&op, e))?;
            Ok(())
        })
        .await
    }

    async fn read_manifest(&self) -> Result<Option<(u64, Manifest)>> {
        self.timed("read manifest", async {
            let c = self.client("read manifest").await?;
            let row = c
                .query_opt(
                    &format!(
                        "SELECT generation, manifest FROM {}.catalog WHERE id = 1",
                        self.quoted
                    ),
                    &[],
                )
                .await
                .map_err(|e| self.pg_err("read manifest", e))?;
            let Some(row) = row else { return Ok(None) };
            let g = self.to_u64("catalog.generation", row.get(0))?;
            let what = format!("{}.catalog generation {g}", self.quoted);
            let (stored_g, m) = Manifest::decode(&self.name, &what, row.get(1))?;
            if stored_g != g {
                return Err(Error::BadManifest {
                    store: self.name.clone(),
                    what,
                    detail: format!("holds generation {stored_g}"),
                });
            }
            Ok(Some((g, m)))
        })
        .await
    }

    async fn manifest_generation(&self) -> Result<u64> {
        self.timed("read manifest generation", async {
            let c = self.client("read manifest generation").await?;
            let row = c
                .query_opt(
                    &format!(
                        "SELECT generation FROM {}.catalog WHERE id = 1",
                        self.quoted
                    ),
                    &[],
                )
                .await
                .map_err(|e| self.pg_err("read manifest generation", e))?;
            match row {
                None => Ok(0),
                Some(row) => self.to_u64("catalog.generation", row.get(0)),
            }
        })
        .await
    }

    async fn commit_manifest(&self, expected: u64, manifest: &Manifest) -> Result<u64> {
        self.commit_with(expected, manifest, None).await
    }

    async fn commit_manifest_fenced(
        &self,
        expected: u64,
        manifest: &Manifest,
        lease: &Lease,
        now_us: u64,
    ) -> Result<u64> {
        self.commit_with(expected, manifest, Some((lease, now_us)))
            .await
    }

    async fn renew_lease(&self, lease: &Lease, now_us: u64, ttl_us: u64) -> Result<Lease> {
        self.timed("renew lease", async {
            let op = "renew lease";
            let lost = |detail: &str| lease.lost(&self.name, detail);
            let Ok(token) = lease.token.parse::<i64>() else {
                return Err(lost("not a token of this store"));
            };
            let c = self.client(op).await?;
            let now = i64::try_from(now_us).unwrap_or(i64::MAX);
            let expires = i64::try_from(now_us.saturating_add(ttl_us)).unwrap_or(i64::MAX);
            let n = c
                .execute(
                    &format!(
                        "UPDATE {}.lease SET expires_us = $1 WHERE id = 1 AND token = $2 AND expires_us > $3",
                        self.quoted
                    ),
                    &[&expires, &token, &now],
                )
                .await
                .map_err(|e| self.pg_err(op, e))?;
            if n == 1 {
                Ok(lease.extended(now_us, ttl_us))
            } else {
                Err(lost("another token holds the lease, or it expired"))
            }
        })
        .await
    }

    async fn acquire_lease(&self, holder: &str, now_us: u64, ttl_us: u64) -> Result<Lease> {
        self.timed("acquire lease", async {
            let op = "acquire lease";
            let c = self.client(op).await?;
            let err = |e| self.pg_err(op, e);
            let now = i64::try_from(now_us).unwrap_or(i64::MAX);
            let expires = i64::try_from(now_us.saturating_add(ttl_us)).unwrap_or(i64::MAX);
            // One statement: insert, or take over only an expired lease; the row lock
            // of the upsert serialises racing writers.
            let won = c
                .query_opt(
                    &format!(
                        "INSERT INTO {s}.lease (id, holder, since_us, expires_us, token)
                         VALUES (1, $1, $2, $3, nextval('{s_raw}.lease_fence'))
                         ON CONFLICT (id) DO UPDATE SET
                             holder = excluded.holder, since_us = excluded.since_us,
                             expires_us = excluded.expires_us, token = excluded.token
                         WHERE {s}.lease.expires_us <= $2
                         RETURNING token",
                        s = self.quoted,
                        s_raw = self.quoted.replace('\'', "''"),
                    ),
                    &[&holder, &now, &expires],
                )
                .await
                .map_err(err)?;
            if let Some(row) = won {
                let token: i64 = row.get(0);
                return Ok(Lease {
                    holder: holder.to_owned(),
                    since_us: now_us,
                    expires_us: now_us.saturating_add(ttl_us),
                    token: token.to_string(),
                });
            }
            let held = c
                .query_opt(
                    &format!(
                        "SELECT holder, since_us, expires_us FROM {}.lease WHERE id = 1",
                        self.quoted
                    ),
                    &[],
                )
                .await
                .map_err(err)?;
            let (holder, since, exp) = match held {
                Some(r) => (
                    r.get::<_, String>(0),
                    r.get::<_, i64>(1),
                    r.get::<_, i64>(2),
                ),
                None => ("another writer".to_owned(), now, now),
            };
            Err(Error::BackupInProgress {
                store: self.name.clone(),
                holder,
                since_us: since.max(0) as u64,
                expires_us: exp.max(0) as u64,
            })
        })
        .await
    }

    async fn release_lease(&self, lease: &Lease) -> Result<()> {
        self.timed("release lease", async {
            let Ok(token) = lease.token.parse::<i64>() else {
                return Ok(()); // not one of ours: nothing to release
            };
            let c = self.client("release lease").await?;
            c.execute(
                &format!(
                    "DELETE FROM {}.lease WHERE id = 1 AND token = $1",
                    self.quoted
                ),
                &[&token],
            )
            .await
            .map_err(|e| self.pg_err("release lease", e))?;
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_keys_differ_by_schema() {
        assert_ne!(lock_key("a"), lock_key("b"));
        assert_eq!(lock_key("a"), lock_key("a"));
    }
}
