//! A [`BackupStore`] from a URL, whichever tier it names.

use std::sync::Arc;
use std::time::Duration;

use bindspace_catalog::{BackupStore, Error, Result, SpaceName};

/// How long one store request (an upload part, a chunk batch, a catalog commit) may
/// take before it fails as a timeout, unless configured: 30 s.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Opens the store a URL names, on the space `default`: `redis://` / `rediss://`
/// (Redis), `redis+cluster://host:port[,host:port…]` (a Redis Cluster), `postgres://` /
/// `postgresql://` (PostgreSQL), anything else through `object_store` (`file://`,
/// `s3://`, `memory://`, ...). Must run inside a tokio runtime.
///
/// With the `lance` feature (on by default), a remote object store (`s3://`, `gs://`,
/// `az://`, ...) keeps its full snapshots as versions of a Lance dataset
/// (`snapshots.lance`: the cold tier keeps fulls as Lance datasets); a local directory and memory keep the native
/// format, which is faster to write and needs nothing else to read.
pub async fn open(url: &str) -> Result<Arc<dyn BackupStore>> {
    open_with(url, DEFAULT_REQUEST_TIMEOUT).await
}

/// [`open`] with each store request bounded by `request_timeout` (a large artifact is
/// many requests, each under it: a slow link makes a backup long, not failed).
pub async fn open_with(url: &str, request_timeout: Duration) -> Result<Arc<dyn BackupStore>> {
    open_in(url, &SpaceName::default(), request_timeout).await
}

/// [`open_with`] on one space of the repository at `url`.
pub async fn open_in(
    url: &str,
    space: &SpaceName,
    request_timeout: Duration,
) -> Result<Arc<dyn BackupStore>> {
    Connection::open(url, request_timeout)
        .await?
        .space(space)
        .await
}

/// One connection to the store a URL names (a Redis connection or cluster client, a
/// PostgreSQL pool, an object store client), from which every space of the repository
/// there is reached: a service running many engines opens it once and hands each
/// engine its space ([`Connection::space`]).
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use bindspace::stores::Connection;
/// use bindspace_catalog::{BackupStore, SpaceName};
/// let dir = tempfile::tempdir().unwrap();
/// let url = format!("file://{}", dir.path().display());
/// let conn = Connection::open(&url, std::time::Duration::from_secs(30)).await.unwrap();
/// let orders = conn.space(&SpaceName::new("orders").unwrap()).await.unwrap();
/// assert!(orders.name().ends_with("(space orders)"));
/// # });
/// ```
#[derive(Clone, Debug)]
pub enum Connection {
    /// A local directory, memory, or (without Lance) a remote object store.
    Object(bindspace_store_s3::ObjectBackupStore),
    /// A remote object store keeping fulls in Lance.
    #[cfg(feature = "lance")]
    Lance(bindspace_store_s3::LanceBackupStore),
    /// A Redis server or cluster.
    Redis(bindspace_store_redis::RedisBackupStore),
    /// A PostgreSQL database.
    Pg(bindspace_store_pg::PgBackupStore),
}

impl Connection {
    /// Connects to the store `url` names (see [`open`]), each request bounded by
    /// `request_timeout`.
    pub async fn open(url: &str, request_timeout: Duration) -> Result<Connection> {
        let s3 = bindspace_store_s3::StoreOptions {
            op_timeout: request_timeout,
            ..Default::default()
        };
        let scheme = url.split("://").next().unwrap_or("");
        Ok(match scheme {
            "redis" | "rediss" | "redis+unix" | "redis+cluster" | "rediss+cluster" => {
                Connection::Redis(
                    bindspace_store_redis::RedisBackupStore::connect(
                        url,
                        bindspace_store_redis::RedisOptions {
                            op_timeout: request_timeout,
                            ..Default::default()
                        },
                    )
                    .await?,
                )
            }
            "postgres" | "postgresql" => {
                let opts = bindspace_store_pg::PgOptions {
                    op_timeout: request_timeout,
                    ..Default::default()
                };
                Connection::Pg(bindspace_store_pg::PgBackupStore::connect(url, opts).await?)
            }
            "" => {
                return Err(Error::Invalid {
                    store: url.into(),
                    detail: "not a URL (file:///path, s3://bucket/prefix, redis://, redis+cluster://, postgresql://)"
                        .into(),
                });
            }
            "file" | "memory" => {
                Connection::Object(bindspace_store_s3::ObjectBackupStore::from_url(url, s3)?)
            }
            _ => remote_object_store(url, s3)?,
        })
    }

    /// The store of one space of the repository, over this connection (a named
    /// space's PostgreSQL schema is created on first use).
    pub async fn space(&self, space: &SpaceName) -> Result<Arc<dyn BackupStore>> {
        Ok(match self {
            Connection::Object(s) => Arc::new(s.in_space(space)),
            #[cfg(feature = "lance")]
            Connection::Lance(s) => Arc::new(s.in_space(space)),
            Connection::Redis(s) => Arc::new(s.in_space(space)),
            Connection::Pg(s) => Arc::new(s.in_space(space).await?),
        })
    }

    /// The named spaces the repository holds (the space `default`, its root, is not
    /// listed).
    pub async fn spaces(&self) -> Result<Vec<SpaceName>> {
        match self {
            Connection::Object(s) => s.spaces().await,
            #[cfg(feature = "lance")]
            Connection::Lance(s) => s.inner().spaces().await,
            Connection::Redis(s) => s.spaces().await,
            Connection::Pg(s) => s.spaces().await,
        }
    }
}

#[cfg(feature = "lance")]
fn remote_object_store(url: &str, opts: bindspace_store_s3::StoreOptions) -> Result<Connection> {
    let store = bindspace_store_s3::ObjectBackupStore::from_url(url, opts)?;
    Ok(Connection::Lance(
        bindspace_store_s3::LanceBackupStore::new(store),
    ))
}

#[cfg(not(feature = "lance"))]
fn remote_object_store(url: &str, opts: bindspace_store_s3::StoreOptions) -> Result<Connection> {
    Ok(Connection::Object(
        bindspace_store_s3::ObjectBackupStore::from_url(url, opts)?,
    ))
}

/// Opens every URL, in order.
pub async fn open_all(urls: &[String]) -> Result<Vec<Arc<dyn BackupStore>>> {
    open_all_with(urls, DEFAULT_REQUEST_TIMEOUT).await
}

/// Opens every URL, in order, each request bounded by `request_timeout`.
pub async fn open_all_with(
    urls: &[String],
    request_timeout: Duration,
) -> Result<Vec<Arc<dyn BackupStore>>> {
    open_all_in(urls, &SpaceName::default(), request_timeout).await
}

/// Opens one space on every URL, in order, each request bounded by `request_timeout`.
pub async fn open_all_in(
    urls: &[String],
    space: &SpaceName,
    request_timeout: Duration,
) -> Result<Vec<Arc<dyn BackupStore>>> {
    let mut out = Vec::with_capacity(urls.len());
    for u in urls {
        out.push(open_in(u, space, request_timeout).await?);
    }
    Ok(out)
}
