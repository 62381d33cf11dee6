//! `BackupStore` on Redis.

use std::time::Duration;

use async_trait::async_trait;
use bindspace_catalog::chunks::ChunkAssembler;
use bindspace_catalog::{
    ArtifactId, ArtifactKind, ArtifactRef, BackupStore, Error, Lease, Manifest, Result, SpaceName,
    blake3_hex, parse_blake3_hex,
};
use bytes::Bytes;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::{IntoConnectionInfo, RedisFuture, Script};

/// Tuning of a [`RedisBackupStore`].
#[derive(Clone, Debug)]
pub struct RedisOptions {
    /// Prepended to every key. Default `ladybug:` (the seed's).
    pub prefix: String,
    /// Largest single value written. Default 4 MiB (Redis allows 512 MiB, but big values
    /// stall the server's event loop).
    pub chunk_size: usize,
    /// Chunks are sent in pipelines of at most this many bytes. Default 32 MiB.
    pub pipeline_bytes: usize,
    /// Chunks of an upload that has not committed yet expire this long after the upload
    /// last made progress (each batch renews the expiry of those before it), so an
    /// abandoned upload leaves nothing behind and a slow one is never cut off. Default
    /// one hour.
    pub staging_ttl: Duration,
    /// Every store operation fails with `Error::Timeout` after this long. Default 30 s.
    pub op_timeout: Duration,
    /// Reconnection attempts of the connection manager before an operation fails.
    /// Default 3.
    pub reconnect_retries: usize,
    /// On a cluster: every commit (an artifact's, the catalog's) waits until this many
    /// replicas of the space's master have it (`WAIT`), and fails as unavailable when
    /// they do not within `op_timeout`, so a failover never loses a commit that was
    /// acknowledged. Default 1; 0 turns the wait off. Ignored on a single server.
    pub cluster_replicas_acked: u32,
}

impl Default for RedisOptions {
    fn default() -> Self {
        RedisOptions {
            prefix: "ladybug:".into(),
            chunk_size: 4 << 20,
            pipeline_bytes: 32 << 20,
            staging_ttl: Duration::from_secs(3600),
            op_timeout: Duration::from_secs(30),
            reconnect_retries: 3,
            cluster_replicas_acked: 1,
        }
    }
}

/// A [`BackupStore`] on one Redis server (or a proxy in front of several), or on a
/// Redis Cluster, in one space of the repository there.
///
/// Every key of a space is below one prefix. On a single server the space `default`
/// keeps the seed's prefix (`ladybug:`) and any other space `ladybug:{name}:`; on a
/// cluster every space, `default` included, is `ladybug:{name}:`, so the hash tag
/// `{name}` puts all its keys (artifacts, index, `latest`, catalog, lease) in one slot
/// and each Lua commit stays one atomic step on one master.
#[derive(Clone)]
pub struct RedisBackupStore {
    conn: Conn,
    opts: RedisOptions,
    name: String,
    /// The connection's own name (the server or cluster), before the space.
    server: String,
    /// The prefix of this space's keys.
    prefix: String,
    space: SpaceName,
}

impl std::fmt::Debug for RedisBackupStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBackupStore")
            .field("name", &self.name)
            .field("prefix", &self.prefix)
            .field("opts", &self.opts)
            .finish_non_exhaustive()
    }
}

/// The connection: a single server's (reconnecting by itself) or a cluster's (slots
/// followed through `MOVED`, failover and resharding).
#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a redis::Cmd) -> RedisFuture<'a, redis::Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<redis::Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// The nodes of a `redis+cluster://[user:password@]host:port[,host:port…][?replicas_acked=N]`
/// URL (`rediss+cluster://` for TLS), each as a `redis://` URL with the credentials, and
/// the `replicas_acked` option (over [`RedisOptions::cluster_replicas_acked`]).
type ClusterUrl = (Vec<String>, Option<u32>);

fn cluster_nodes(url: &str) -> std::result::Result<ClusterUrl, String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| "not a URL".to_owned())?;
    let node_scheme = match scheme {
        "redis+cluster" => "redis",
        "rediss+cluster" => "rediss",
        other => return Err(format!("{other}:// is not a cluster URL")),
    };
    let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains('/') {
        return Err("a cluster URL has no database (a cluster has database 0 only)".into());
    }
    let mut replicas_acked = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("replicas_acked", n)) => {
                replicas_acked =
                    Some(n.parse::<u32>().map_err(|_| {
                        format!("replicas_acked={n:?} is not a number of replicas")
                    })?);
            }
            _ => {
                return Err(format!(
                    "unknown cluster URL option {pair:?} (the one option is replicas_acked=N)"
                ));
            }
        }
    }
    let (auth, hosts) = match rest.rsplit_once('@') {
        Some((a, h)) => (format!("{a}@"), h),
        None => (String::new(), rest),
    };
    let nodes: Vec<String> = hosts
        .split(',')
        .filter(|h| !h.is_empty())
        .map(|h| format!("{node_scheme}://{auth}{h}"))
        .collect();
    if nodes.is_empty() {
        return Err("a cluster URL names at least one node (host:port)".into());
    }
    Ok((nodes, replicas_acked))
}

/// A connection made within `limit` (a timeout, or the server's refusal, as the
/// store's errors).
async fn connect_within<C>(
    name: &str,
    limit: Duration,
    connect: impl Future<Output = redis::RedisResult<C>>,
) -> Result<C> {
    bindspace_catalog::timed(name, "connect", limit, async {
        connect.await.map_err(|e| unavailable(name, "connect", e))
    })
    .await
}

/// The key prefix of `space` below the configured `root` prefix.
fn space_prefix(root: &str, space: &SpaceName, cluster: bool) -> String {
    if space.is_default() && !cluster {
        root.to_owned()
    } else {
        format!("{root}{{{space}}}:")
    }
}

/// Makes the staged chunks permanent, writes metadata and index, moves `latest`, and
/// drops the chunks of a replaced artifact: one atomic step.
const COMMIT_ARTIFACT: &str = r#"
local n = tonumber(ARGV[5])
for i = 0, n - 1 do
  local k = ARGV[6] .. i
  if redis.call('EXISTS', k) == 0 then
    return redis.error_reply('chunk ' .. i .. ' of ' .. n .. ' is missing (staging expired or evicted)')
  end
  redis.call('PERSIST', k)
end
local old = redis.call('HMGET', KEYS[1], 'chunk_prefix', 'chunks')
redis.call('HSET', KEYS[1], 'len', ARGV[2], 'blake3', ARGV[3], 'chunk_size', ARGV[4], 'chunks', ARGV[5], 'chunk_prefix', ARGV[6])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2] .. ' ' .. ARGV[3])
if ARGV[7] == '1' then
  local cur = redis.call('GET', KEYS[3])
  if not cur or (string.rep('0', 20 - #cur) .. cur) < ARGV[8] then
    redis.call('SET', KEYS[3], ARGV[9])
  end
end
if old[1] and old[1] ~= ARGV[6] then
  for i = 0, tonumber(old[2]) - 1 do redis.call('DEL', old[1] .. i) end
end
return 1
"#;

/// Extends the expiry of staged chunks (KEYS) to ARGV[1] ms; a key without an expiry
/// (a committed copy's chunk with the same name) keeps none. Redis 6 has no `PEXPIRE
/// GT`, hence a script.
const REFRESH_STAGING: &str = r#"
for _, k in ipairs(KEYS) do
  if redis.call('PTTL', k) > 0 then redis.call('PEXPIRE', k, ARGV[1]) end
end
return 1
"#;

/// Stages one chunk: a new key with the staging expiry; a key holding the same bytes
/// is left as it is (a committed copy keeps no expiry); a key holding other bytes
/// (damaged) is overwritten, its expiry state kept.
const STAGE_CHUNK: &str = r#"
local cur = redis.call('GET', KEYS[1])
if not cur then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
elseif cur ~= ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'KEEPTTL')
end
return 1
"#;

/// Removes an artifact, its chunks and index entry; moves `latest` back if it pointed
/// at the removed snapshot.
const DELETE_ARTIFACT: &str = r#"
local old = redis.call('HMGET', KEYS[1], 'chunk_prefix', 'chunks')
if old[1] then
  for i = 0, tonumber(old[2]) - 1 do redis.call('DEL', old[1] .. i) end
end
redis.call('DEL', KEYS[1])
redis.call('HDEL', KEYS[2], ARGV[1])
if ARGV[2] == '1' and redis.call('GET', KEYS[3]) == ARGV[3] then
  local best = nil
  for _, name in ipairs(redis.call('HKEYS', KEYS[2])) do
    if best == nil or name > best then best = name end
  end
  if best then
    local v = string.gsub(best, '^0+(%d)', '%1')
    redis.call('SET', KEYS[3], v)
  else
    redis.call('DEL', KEYS[3])
  end
end
return 1
"#;

/// Compare-and-set of the manifest on its generation.
const COMMIT_MANIFEST: &str = r#"
local g = tonumber(redis.call('GET', KEYS[2]) or '0')
if g ~= tonumber(ARGV[1]) then return {0, g} end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('SET', KEYS[2], g + 1)
return {1, g + 1}
"#;

/// [`COMMIT_MANIFEST`] only while the caller's lease is current: same token, not expired
/// by the caller's clock. Returns `{2, g}` when the lease is not.
const COMMIT_MANIFEST_FENCED: &str = r#"
local cur = redis.call('GET', KEYS[3])
if not cur or string.match(cur, '"token":"([^"]*)"') ~= ARGV[3] then return {2, 0} end
local exp = tonumber(string.match(cur, '"expires_us":(%d+)'))
if exp == nil or exp <= tonumber(ARGV[4]) then return {2, 0} end
local g = tonumber(redis.call('GET', KEYS[2]) or '0')
if g ~= tonumber(ARGV[1]) then return {0, g} end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('SET', KEYS[2], g + 1)
return {1, g + 1}
"#;

/// Extends the lease only if the caller's token is the current one and it has not
/// expired by the caller's clock.
const RENEW_LEASE: &str = r#"
local cur = redis.call('GET', KEYS[1])
if not cur or string.match(cur, '"token":"([^"]*)"') ~= ARGV[1] then return 0 end
local exp = tonumber(string.match(cur, '"expires_us":(%d+)'))
if exp == nil or exp <= tonumber(ARGV[4]) then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
"#;

/// Takes over a lease whose holder's expiry (by the caller's clock) has passed; returns
/// the current lease when it is still held.
const TAKE_OVER_LEASE: &str = r#"
local cur = redis.call('GET', KEYS[1])
if cur then
  local exp = tonumber(string.match(cur, '"expires_us":(%d+)'))
  if exp == nil or exp > tonumber(ARGV[2]) then return cur end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
return false
"#;

/// Deletes the lease only if the caller's token is the current one (fencing).
const RELEASE_LEASE: &str = r#"
local cur = redis.call('GET', KEYS[1])
if cur and string.match(cur, '"token":"([^"]*)"') == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"#;

fn kind_word(kind: ArtifactKind) -> &'static str {
    match kind {
        ArtifactKind::Snapshot => "snapshot",
        ArtifactKind::Delta => "delta",
        ArtifactKind::WalSegment => "wal",
    }
}

/// The seed's name of an artifact below the prefix: `snapshot:{v}`, `delta:{from}:{to}`,
/// `wal:{first}:{last}` on timeline 1 (layout 1's names), prefixed `t{timeline}:` on the
/// others.
fn seed_name(id: ArtifactId) -> String {
    let name = match id {
        ArtifactId::Snapshot { version, .. } => format!("snapshot:{version}"),
        ArtifactId::Delta { from, to, .. } => format!("delta:{from}:{to}"),
        ArtifactId::WalSegment { first, last, .. } => format!("wal:{first}:{last}"),
    };
    match id.timeline() {
        1 => name,
        t => format!("t{t}:{name}"),
    }
}

impl RedisBackupStore {
    /// Connects to `url` (`redis://[user:password@]host:port[/db]`, `rediss://` for TLS,
    /// `redis+unix:///path`). A password missing from the URL is taken from
    /// `REDIS_PASSWORD` when set. The connection reconnects by itself after a server
    /// restart.
    ///
    /// `redis+cluster://[user:password@]host:port[,host:port…]` (or `rediss+cluster://`)
    /// connects to a Redis Cluster through any of the nodes named; the client learns
    /// the slots from them and follows failovers.
    ///
    /// The handle is on the space `default`; [`RedisBackupStore::in_space`] gives the
    /// others over the same connection.
    pub async fn connect(url: &str, opts: RedisOptions) -> Result<Self> {
        // the name (in messages, catalog locations and metrics) without a cluster
        // URL's options: turning one on does not make it another destination
        let name = bindspace_catalog::redact_url(match url.split_once("+cluster://") {
            Some(_) => url.split('?').next().unwrap_or(url),
            None => url,
        });
        let invalid = |detail: String| Error::Invalid {
            store: name.clone(),
            detail,
        };
        if opts.chunk_size == 0 {
            return Err(invalid("chunk_size must be positive".into()));
        }
        if url.contains("+cluster://") {
            return Self::connect_cluster(url, name, opts).await;
        }
        let mut info = url
            .into_connection_info()
            .map_err(|e| invalid(format!("not a Redis URL: {e}")))?;
        if info.redis_settings().password().is_none()
            && let Ok(pw) = std::env::var("REDIS_PASSWORD")
        {
            let settings = info.redis_settings().clone().set_password(pw);
            info = info.set_redis_settings(settings);
        }
        let client = redis::Client::open(info).map_err(|e| invalid(e.to_string()))?;
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(opts.reconnect_retries)
            .set_max_delay(Duration::from_secs(1))
            .set_connection_timeout(Some(opts.op_timeout))
            .set_response_timeout(Some(opts.op_timeout));
        let conn = connect_within(
            &name,
            opts.op_timeout,
            ConnectionManager::new_with_config(client, config),
        )
        .await?;
        Ok(Self::on(Conn::Single(conn), name, opts))
    }

    async fn connect_cluster(url: &str, name: String, opts: RedisOptions) -> Result<Self> {
        let invalid = |detail: String| Error::Invalid {
            store: name.clone(),
            detail,
        };
        let (nodes, replicas_acked) = cluster_nodes(url).map_err(&invalid)?;
        let opts = RedisOptions {
            cluster_replicas_acked: replicas_acked.unwrap_or(opts.cluster_replicas_acked),
            ..opts
        };
        let mut builder = redis::cluster::ClusterClient::builder(nodes)
            .retries(opts.reconnect_retries as u32)
            .min_retry_wait(50)
            .max_retry_wait(1000)
            .connection_timeout(opts.op_timeout)
            .response_timeout(opts.op_timeout);
        if !url.contains('@')
            && let Ok(pw) = std::env::var("REDIS_PASSWORD")
        {
            builder = builder.password(pw);
        }
        let client = builder.build().map_err(|e| invalid(e.to_string()))?;
        let conn = connect_within(&name, opts.op_timeout, client.get_async_connection()).await?;
        Ok(Self::on(Conn::Cluster(conn), name, opts))
    }

    fn on(conn: Conn, name: String, opts: RedisOptions) -> Self {
        let space = SpaceName::default();
        let cluster = matches!(conn, Conn::Cluster(_));
        RedisBackupStore {
            prefix: space_prefix(&opts.prefix, &space, cluster),
            conn,
            server: name.clone(),
            name,
            opts,
            space,
        }
    }

    /// The same connection on another space of the repository (its keys below
    /// `{prefix}{name}:`, see the type's docs).
    pub fn in_space(&self, space: &SpaceName) -> Self {
        RedisBackupStore {
            conn: self.conn.clone(),
            opts: self.opts.clone(),
            name: space.store_name(&self.server),
            server: self.server.clone(),
            prefix: space_prefix(&self.opts.prefix, space, self.is_cluster()),
            space: space.clone(),
        }
    }

    /// Whether this is a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self.conn, Conn::Cluster(_))
    }

    /// The space this handle reads and writes.
    pub fn space(&self) -> &SpaceName {
        &self.space
    }

    /// The named spaces that have committed a catalog here (the set
    /// `{prefix}spaces`, added to at each space's catalog commit).
    pub async fn spaces(&self) -> Result<Vec<SpaceName>> {
        let names: Vec<String> = self
            .query("list spaces", redis::cmd("SMEMBERS").arg(self.spaces_key()))
            .await?;
        let mut out: Vec<SpaceName> = names
            .iter()
            .filter_map(|n| SpaceName::new(n).ok())
            .collect();
        out.sort();
        Ok(out)
    }

    fn spaces_key(&self) -> String {
        format!("{}spaces", self.opts.prefix)
    }

    /// On a cluster, appends `WAIT n` to a commit's pipeline (same request, same
    /// connection to the space's master as the commit before it, so it counts that
    /// commit); whether it did.
    fn append_wait(&self, pipe: &mut redis::Pipeline) -> bool {
        let want = self.opts.cluster_replicas_acked;
        if !self.is_cluster() || want == 0 {
            return false;
        }
        pipe.cmd("WAIT").arg(want).arg(self.wait_ms());
        true
    }

    /// How long a commit's `WAIT` may block: half the request timeout, at most 2 s
    /// (Redis holds the connection's later commands behind it, and the connection is
    /// shared by every space of this process on that master).
    fn wait_ms(&self) -> u64 {
        (self.opts.op_timeout.as_millis() as u64 / 2).clamp(1, 2000)
    }

    /// After a commit's `WAIT`: an error unless enough replicas acknowledged it.
    fn check_acked(&self, op: &str, acked: u32) -> Result<()> {
        let want = self.opts.cluster_replicas_acked;
        if acked >= want {
            return Ok(());
        }
        Err(Error::Unavailable {
            store: self.name.clone(),
            op: format!("{op}: wait for replicas"),
            source: format!(
                "{acked} of {want} replicas acknowledged within {} ms (the commit is on the master; a retry repeats it)",
                self.wait_ms()
            )
            .into(),
        })
    }

    /// Runs a catalog commit (`cmd`: an EVAL answering `{ok, generation}`) and, on a
    /// cluster, its `WAIT` in the same pipeline; a commit that took (`ok == 1`) is
    /// acknowledged only once replicated.
    async fn commit_catalog(&self, op: &str, cmd: redis::Cmd) -> Result<(u8, u64)> {
        let mut pipe = redis::pipe();
        pipe.add_command(cmd);
        let waits = self.append_wait(&mut pipe);
        let mut c = self.conn.clone();
        let err = |e| unavailable(&self.name, op, e);
        let (res, acked) = if waits {
            let (res, acked): ((u8, u64), u32) = pipe.query_async(&mut c).await.map_err(err)?;
            (res, Some(acked))
        } else {
            let (res,): ((u8, u64),) = pipe.query_async(&mut c).await.map_err(err)?;
            (res, None)
        };
        if res.0 == 1 {
            // listed even when the replicas lag: the catalog is on the master
            self.register_space().await;
            if let Some(acked) = acked {
                self.check_acked(op, acked)?;
            }
        }
        Ok(res)
    }

    /// Records a named space in the set of spaces (after its catalog commit). Best
    /// effort: the set only serves `spaces()`, and the commit has happened; a failure
    /// is logged, and the next commit adds it again.
    async fn register_space(&self) {
        if self.space.is_default() {
            return;
        }
        // under a short bound of its own: the set may sit on another master, and a
        // slow one must not turn a commit that took into a timeout
        let mut c = self.conn.clone();
        let mut sadd = redis::cmd("SADD");
        sadd.arg(self.spaces_key()).arg(self.space.as_str());
        let bound = self.opts.op_timeout.min(Duration::from_secs(2));
        let res = match tokio::time::timeout(bound, sadd.query_async::<()>(&mut c)).await {
            Ok(r) => r.map_err(|e| unavailable(&self.name, "register space", e)),
            Err(_) => Err(Error::Timeout {
                store: self.name.clone(),
                op: "register space".into(),
                after_ms: bound.as_millis() as u64,
            }),
        };
        if let Err(e) = res {
            tracing::warn!(store = %self.name, error = %e, "the space was not added to the list of spaces");
        }
    }

    /// Connects to `REDIS_URL` (the seeds' variable).
    pub async fn from_env(opts: RedisOptions) -> Result<Self> {
        let url = std::env::var("REDIS_URL").map_err(|_| Error::Invalid {
            store: "redis".into(),
            detail: "REDIS_URL is not set".into(),
        })?;
        Self::connect(&url, opts).await
    }

    /// The full key of `rel` (this space's prefix prepended).
    pub fn key(&self, rel: &str) -> String {
        format!("{}{rel}", self.prefix)
    }

    /// The metadata key of an artifact, e.g. `ladybug:delta:10:20` (for tools and fault
    /// tests; writing there bypasses every check).
    pub fn meta_key(&self, id: ArtifactId) -> String {
        self.key(&seed_name(id))
    }

    /// Where an upload stages its chunks: named by the content, and by the chunk size
    /// when it is not the default (the seed layout's names), so a put with another
    /// chunk size never takes a committed copy's intact chunks for damaged ones.
    fn chunk_prefix(&self, r: &ArtifactRef) -> String {
        let content = &blake3_hex(&r.blake3)[..16];
        match self.opts.chunk_size {
            c if c == RedisOptions::default().chunk_size => {
                format!("{}:{content}:", self.meta_key(r.id))
            }
            c => format!("{}:{content}:c{c}:", self.meta_key(r.id)),
        }
    }

    /// The version `latest` names: the newest complete snapshot.
    pub async fn latest(&self) -> Result<Option<u64>> {
        let v: Option<String> = self
            .query("get latest", redis::cmd("GET").arg(self.key("latest")))
            .await?;
        v.map(|s| {
            s.parse().map_err(|_| Error::BadManifest {
                store: self.name.clone(),
                what: self.key("latest"),
                detail: format!("{s:?} is not a version"),
            })
        })
        .transpose()
    }

    /// Records the repository's schema version (`major.minor.patch`).
    pub async fn set_schema_version(&self, version: &str) -> Result<()> {
        self.query::<()>(
            "set schema version",
            redis::cmd("SET")
                .arg(self.key("schema:version"))
                .arg(version),
        )
        .await
    }

    /// The repository's schema version, if recorded.
    pub async fn schema_version(&self) -> Result<Option<String>> {
        self.query(
            "get schema version",
            redis::cmd("GET").arg(self.key("schema:version")),
        )
        .await
    }

    /// Records a named checkpoint at `version`.
    pub async fn set_checkpoint(&self, name: &str, version: u64) -> Result<()> {
        self.query::<()>(
            "set checkpoint",
            redis::cmd("SET")
                .arg(self.key(&format!("checkpoint:{name}")))
                .arg(version),
        )
        .await
    }

    /// The version of a named checkpoint.
    pub async fn checkpoint(&self, name: &str) -> Result<Option<u64>> {
        self.query(
            "get checkpoint",
            redis::cmd("GET").arg(self.key(&format!("checkpoint:{name}"))),
        )
        .await
    }

    async fn timed<T>(&self, op: &str, fut: impl Future<Output = Result<T>>) -> Result<T> {
        bindspace_catalog::timed(&self.name, op, self.opts.op_timeout, fut).await
    }

    async fn query<T: redis::FromRedisValue>(&self, op: &str, cmd: &redis::Cmd) -> Result<T> {
        let mut c = self.conn.clone();
        self.timed(op, async {
            cmd.query_async(&mut c)
                .await
                .map_err(|e| unavailable(&self.name, op, e))
        })
        .await
    }

    fn index_key(&self, kind: ArtifactKind) -> String {
        self.key(&format!("index:{}", kind_word(kind)))
    }

    async fn list_refs(&self, kind: ArtifactKind) -> Result<Vec<ArtifactRef>> {
        let entries: Vec<(String, String)> = self
            .query("list", redis::cmd("HGETALL").arg(self.index_key(kind)))
            .await?;
        let mut out = Vec::with_capacity(entries.len());
        for (name, val) in entries {
            let parsed = ArtifactId::parse_key_name(kind, &name).and_then(|id| {
                let (len, hex) = val.split_once(' ')?;
                Some(ArtifactRef {
                    id,
                    len: len.parse().ok()?,
                    blake3: parse_blake3_hex(hex)?,
                })
            });
            match parsed {
                Some(r) => out.push(r),
                None => {
                    return Err(Error::BadManifest {
                        store: self.name.clone(),
                        what: self.index_key(kind),
                        detail: format!("entry {name:?} = {val:?} does not parse"),
                    });
                }
            }
        }
        out.sort_by_key(|r| r.id);
        Ok(out)
    }

    fn corrupt(&self, id: ArtifactId, detail: String) -> Error {
        Error::Corrupt {
            store: self.name.clone(),
            artifact: id,
            detail,
        }
    }
}

fn unavailable(store: &str, op: &str, e: redis::RedisError) -> Error {
    Error::Unavailable {
        store: store.to_owned(),
        op: op.to_owned(),
        source: Box::new(e),
    }
}

#[async_trait]
impl BackupStore for RedisBackupStore {
    fn name(&self) -> String {
        self.name.clone()
    }

    async fn put(&self, id: ArtifactId, bytes: Bytes) -> Result<ArtifactRef> {
        let r = ArtifactRef::of(id, &bytes);
        let op = format!("put {id}");
        let mut c = self.conn.clone();
        // each round trip under the timeout, not the whole upload: a large artifact on
        // a slow link must not fail for its size alone
        {
            let chunk = self.opts.chunk_size;
            let n = bytes.len().div_ceil(chunk);
            let prefix = self.chunk_prefix(&r);
            let ttl_ms = self.opts.staging_ttl.as_millis().max(1) as u64;
            let per_batch = (self.opts.pipeline_bytes / chunk).max(1);
            let version = id.versions().0;
            let mut i = 0;
            loop {
                let end = (i + per_batch).min(n);
                let mut pipe = redis::pipe();
                for k in i..end {
                    let part = bytes.slice(k * chunk..((k + 1) * chunk).min(bytes.len()));
                    // the chunk keys are named by the content's blake3, so one that
                    // exists should hold these bytes already, and may be a committed
                    // copy's (an expiry put on it would delete the live artifact if
                    // this commit never ran); one holding other bytes is damaged and
                    // is overwritten, keeping its expiry state (a repair heals it)
                    pipe.cmd("EVAL")
                        .arg(STAGE_CHUNK)
                        .arg(1)
                        .arg(format!("{prefix}{k}"))
                        .arg(part.as_ref())
                        .arg(ttl_ms)
                        .ignore();
                }
                if i > 0 {
                    // keep the chunks staged so far alive for as long as the upload
                    // runs, however long that is (a committed copy's, without expiry,
                    // stays without one)
                    pipe.cmd("EVAL")
                        .arg(REFRESH_STAGING)
                        .arg(i)
                        .arg((0..i).map(|k| format!("{prefix}{k}")).collect::<Vec<_>>())
                        .arg(ttl_ms)
                        .ignore();
                }
                let last = end == n;
                if last {
                    // The commit rides in the last batch: one round trip for a small
                    // artifact. EVAL (not EVALSHA) so it never needs a second trip.
                    pipe.cmd("EVAL")
                        .arg(COMMIT_ARTIFACT)
                        .arg(3)
                        .arg(self.meta_key(id))
                        .arg(self.index_key(id.kind()))
                        .arg(self.key("latest"))
                        .arg(id.key_name())
                        .arg(r.len)
                        .arg(blake3_hex(&r.blake3))
                        .arg(chunk)
                        .arg(n)
                        .arg(&prefix)
                        .arg(if id.kind() == ArtifactKind::Snapshot {
                            "1"
                        } else {
                            "0"
                        })
                        .arg(format!("{version:020}"))
                        .arg(version)
                        .ignore();
                }
                // on a cluster the commit is acknowledged only once a replica has it:
                // WAIT rides in the commit's own pipeline
                let waits = last && self.append_wait(&mut pipe);
                let batch = format!("{op} (chunks {i}..{end} of {n})");
                // the batch with the WAIT may take that long more
                let limit = self.opts.op_timeout
                    + Duration::from_millis(if waits { self.wait_ms() } else { 0 });
                let acked: Vec<u32> = bindspace_catalog::timed(&self.name, &batch, limit, async {
                    pipe.query_async(&mut c)
                        .await
                        .map_err(|e| unavailable(&self.name, &batch, e))
                })
                .await?;
                if waits {
                    self.check_acked(&op, acked.first().copied().unwrap_or(0))?;
                }
                tracing::debug!(artifact = %id, done = end, of = n, "chunks stored");
                if last {
                    break;
                }
                i = end;
            }
            Ok(r)
        }
    }

    async fn get(&self, r: &ArtifactRef) -> Result<Bytes> {
        let op = format!("get {}", r.id);
        let mut c = self.conn.clone();
        // each round trip under the timeout, not the whole download: a large artifact
        // on a slow link must not fail for its size alone
        let meta: (
            Option<u64>,
            Option<String>,
            Option<u64>,
            Option<u64>,
            Option<String>,
        ) = self
            .timed(&op, async {
                redis::cmd("HMGET")
                    .arg(self.meta_key(r.id))
                    .arg(&["len", "blake3", "chunk_size", "chunks", "chunk_prefix"][..])
                    .query_async(&mut c)
                    .await
                    .map_err(|e| unavailable(&self.name, &op, e))
            })
            .await?;
        let (Some(len), Some(hex), Some(chunk), Some(n), Some(prefix)) = meta else {
            if meta.1.is_none() {
                return Err(Error::NotFound {
                    store: self.name.clone(),
                    what: r.id.to_string(),
                });
            }
            return Err(self.corrupt(r.id, "metadata hash is incomplete".into()));
        };
        if hex != blake3_hex(&r.blake3) {
            return Err(self.corrupt(
                r.id,
                format!(
                    "the store holds blake3 {hex}, the reference says {}",
                    blake3_hex(&r.blake3)
                ),
            ));
        }
        if chunk == 0 || len.div_ceil(chunk) != n || len != r.len {
            return Err(self.corrupt(
                r.id,
                format!("metadata len {len}, chunk_size {chunk}, chunks {n} do not agree"),
            ));
        }
        let mut out = ChunkAssembler::new(&self.name, r, n);
        let per_batch = ((self.opts.pipeline_bytes as u64 / chunk).max(1)) as usize;
        let mut i = 0u64;
        while i < n {
            let end = (i + per_batch as u64).min(n);
            let mut pipe = redis::pipe();
            for k in i..end {
                pipe.cmd("GET").arg(format!("{prefix}{k}"));
            }
            let batch = format!("{op} (chunks {i}..{end} of {n})");
            let parts: Vec<Option<Vec<u8>>> = self
                .timed(&batch, async {
                    pipe.query_async(&mut c)
                        .await
                        .map_err(|e| unavailable(&self.name, &batch, e))
                })
                .await?;
            for (k, p) in (i..end).zip(parts) {
                out.push(k, p.as_deref())?;
            }
            tracing::debug!(artifact = %r.id, done = end, of = n, "chunks read");
            i = end;
        }
        out.finish()
    }

    async fn list(&self, kind: ArtifactKind, lo: u64, hi: u64) -> Result<Vec<ArtifactRef>> {
        Ok(self
            .list_refs(kind)
            .await?
            .into_iter()
            .filter(|r| r.id.overlaps(lo, hi))
            .collect())
    }

    async fn holds(&self, r: &ArtifactRef) -> Result<bool> {
        let val: Option<String> = self
            .query(
                "holds",
                redis::cmd("HGET")
                    .arg(self.index_key(r.id.kind()))
                    .arg(r.id.key_name()),
            )
            .await?;
        Ok(val.as_deref() == Some(format!("{} {}", r.len, blake3_hex(&r.blake3)).as_str()))
    }

    async fn delete(&self, id: ArtifactId) -> Result<()> {
        let mut c = self.conn.clone();
        let op = format!("delete {id}");
        self.timed(&op, async {
            let version = id.versions().0;
            Script::new(DELETE_ARTIFACT)
                .key(self.meta_key(id))
                .key(self.index_key(id.kind()))
                .key(self.key("latest"))
                .arg(id.key_name())
                .arg(if id.kind() == ArtifactKind::Snapshot {
                    "1"
                } else {
                    "0"
                })
                .arg(version.to_string())
                .invoke_async::<()>(&mut c)
                .await
                .map_err(|e| unavailable(&self.name, &op, e))
        })
        .await
    }

    async fn read_manifest(&self) -> Result<Option<(u64, Manifest)>> {
        let what = self.key("catalog:manifest");
        let bytes: Option<Vec<u8>> = self
            .query("read manifest", redis::cmd("GET").arg(&what))
            .await?;
        bytes
            .map(|b| Manifest::decode(&self.name, &what, &b))
            .transpose()
    }

    async fn manifest_generation(&self) -> Result<u64> {
        let g: Option<u64> = self
            .query(
                "read manifest generation",
                redis::cmd("GET").arg(self.key("catalog:generation")),
            )
            .await?;
        Ok(g.unwrap_or(0))
    }

    async fn commit_manifest(&self, expected: u64, manifest: &Manifest) -> Result<u64> {
        self.timed("commit manifest", async {
            let mut cmd = redis::cmd("EVAL");
            cmd.arg(COMMIT_MANIFEST)
                .arg(2)
                .arg(self.key("catalog:manifest"))
                .arg(self.key("catalog:generation"))
                .arg(expected)
                .arg(manifest.encode(expected + 1));
            let (ok, g) = self.commit_catalog("commit manifest", cmd).await?;
            if ok == 1 {
                Ok(g)
            } else {
                Err(Error::Conflict {
                    store: self.name.clone(),
                    expected,
                    found: g,
                })
            }
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
        self.timed("commit manifest", async {
            let mut cmd = redis::cmd("EVAL");
            cmd.arg(COMMIT_MANIFEST_FENCED)
                .arg(3)
                .arg(self.key("catalog:manifest"))
                .arg(self.key("catalog:generation"))
                .arg(self.key("lock:backup"))
                .arg(expected)
                .arg(manifest.encode(expected + 1))
                .arg(&lease.token)
                .arg(now_us);
            let (ok, g) = self.commit_catalog("commit manifest", cmd).await?;
            match ok {
                1 => Ok(g),
                2 => Err(lease.lost(&self.name, "another token holds the lease, or it expired")),
                _ => Err(Error::Conflict {
                    store: self.name.clone(),
                    expected,
                    found: g,
                }),
            }
        })
        .await
    }

    async fn renew_lease(&self, lease: &Lease, now_us: u64, ttl_us: u64) -> Result<Lease> {
        let mut c = self.conn.clone();
        self.timed("renew lease", async {
            let renewed = lease.extended(now_us, ttl_us);
            let ok: u8 = Script::new(RENEW_LEASE)
                .key(self.key("lock:backup"))
                .arg(&lease.token)
                .arg(renewed.to_json())
                .arg(ttl_us.div_ceil(1000).max(1))
                .arg(now_us)
                .invoke_async(&mut c)
                .await
                .map_err(|e| unavailable(&self.name, "renew lease", e))?;
            if ok == 1 {
                Ok(renewed)
            } else {
                Err(lease.lost(&self.name, "another token holds the lease, or it expired"))
            }
        })
        .await
    }

    async fn acquire_lease(&self, holder: &str, now_us: u64, ttl_us: u64) -> Result<Lease> {
        let mut c = self.conn.clone();
        self.timed("acquire lease", async {
            let err = |e| unavailable(&self.name, "acquire lease", e);
            let token: u64 = redis::cmd("INCR")
                .arg(self.key("lock:fence"))
                .query_async(&mut c)
                .await
                .map_err(err)?;
            let lease = Lease {
                holder: holder.to_owned(),
                since_us: now_us,
                expires_us: now_us.saturating_add(ttl_us),
                // the counter's value and the holder's time: a counter that went back
                // (a failover lost its last increments) never hands out a token
                // another holder has
                token: format!("{token}-{now_us}"),
            };
            let json = lease.to_json();
            let px = ttl_us.div_ceil(1000).max(1);
            let set: Option<String> = redis::cmd("SET")
                .arg(self.key("lock:backup"))
                .arg(&json)
                .arg("NX")
                .arg("PX")
                .arg(px)
                .query_async(&mut c)
                .await
                .map_err(err)?;
            if set.is_some() {
                return Ok(lease);
            }
            // Held: take it over only if its holder's time is up.
            let current: Option<Vec<u8>> = Script::new(TAKE_OVER_LEASE)
                .key(self.key("lock:backup"))
                .arg(&json)
                .arg(now_us)
                .arg(px)
                .invoke_async(&mut c)
                .await
                .map_err(err)?;
            match current {
                None => Ok(lease),
                Some(b) => {
                    let held = Lease::from_json(&b);
                    Err(Error::BackupInProgress {
                        store: self.name.clone(),
                        holder: held
                            .as_ref()
                            .map_or_else(|| "an unreadable holder".into(), |l| l.holder.clone()),
                        since_us: held.as_ref().map_or(0, |l| l.since_us),
                        expires_us: held.as_ref().map_or(0, |l| l.expires_us),
                    })
                }
            }
        })
        .await
    }

    async fn release_lease(&self, lease: &Lease) -> Result<()> {
        let mut c = self.conn.clone();
        self.timed("release lease", async {
            Script::new(RELEASE_LEASE)
                .key(self.key("lock:backup"))
                .arg(&lease.token)
                .invoke_async::<()>(&mut c)
                .await
                .map_err(|e| unavailable(&self.name, "release lease", e))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_urls() {
        assert_eq!(
            cluster_nodes("redis+cluster://u:p@h1:1,h2:2/").unwrap(),
            (
                vec!["redis://u:p@h1:1".to_owned(), "redis://u:p@h2:2".to_owned()],
                None
            )
        );
        assert_eq!(
            cluster_nodes("rediss+cluster://h1:1?replicas_acked=0").unwrap(),
            (vec!["rediss://h1:1".to_owned()], Some(0))
        );
        for bad in [
            "redis+cluster://h1:1/3",
            "redis+cluster://h1:1?db=2",
            "redis+cluster://h1:1?replicas_acked=x",
            "redis+cluster://",
            "redis://h1:1",
        ] {
            assert!(cluster_nodes(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn seed_names() {
        assert_eq!(seed_name(ArtifactId::snapshot(42)), "snapshot:42");
        assert_eq!(seed_name(ArtifactId::delta(1, 2)), "delta:1:2");
    }
}
