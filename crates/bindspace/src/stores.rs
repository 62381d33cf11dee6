//! A [`BackupStore`] from a URL, whichever tier it names.

use std::sync::Arc;
use std::time::Duration;

use bindspace_catalog::{BackupStore, Error, Result};

/// How long one store request (an upload part, a chunk batch, a catalog commit) may
/// take before it fails as a timeout, unless configured: 30 s.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Opens the store a URL names: `redis://` / `rediss://` (Redis), `postgres://` /
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
    let s3 = bindspace_store_s3::StoreOptions {
        op_timeout: request_timeout,
        ..Default::default()
    };
    let scheme = url.split("://").next().unwrap_or("");
    Ok(match scheme {
        "redis" | "rediss" | "redis+unix" => Arc::new(
            bindspace_store_redis::RedisBackupStore::connect(
                url,
                bindspace_store_redis::RedisOptions {
                    op_timeout: request_timeout,
                    ..Default::default()
                },
            )
            .await?,
        ),
        "postgres" | "postgresql" => {
            let opts = bindspace_store_pg::PgOptions {
                op_timeout: request_timeout,
                ..Default::default()
            };
            Arc::new(bindspace_store_pg::PgBackupStore::connect(url, opts).await?)
        }
        "" => {
            return Err(Error::Invalid {
                store: url.into(),
                detail: "not a URL (file:///path, s3://bucket/prefix, redis://, postgresql://)"
                    .into(),
            });
        }
        "file" | "memory" => Arc::new(bindspace_store_s3::ObjectBackupStore::from_url(url, s3)?),
        _ => remote_object_store(url, s3)?,
    })
}

#[cfg(feature = "lance")]
fn remote_object_store(
    url: &str,
    opts: bindspace_store_s3::StoreOptions,
) -> Result<Arc<dyn BackupStore>> {
    let store = bindspace_store_s3::ObjectBackupStore::from_url(url, opts)?;
    Ok(Arc::new(bindspace_store_s3::LanceBackupStore::new(store)))
}

#[cfg(not(feature = "lance"))]
fn remote_object_store(
    url: &str,
    opts: bindspace_store_s3::StoreOptions,
) -> Result<Arc<dyn BackupStore>> {
    Ok(Arc::new(bindspace_store_s3::ObjectBackupStore::from_url(
        url, opts,
    )?))
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
    let mut out = Vec::with_capacity(urls.len());
    for u in urls {
        out.push(open_with(u, request_timeout).await?);
    }
    Ok(out)
}
