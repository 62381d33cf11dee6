//! A [`BackupStore`] from a URL, whichever tier it names.

use std::sync::Arc;

use bindspace_catalog::{BackupStore, Error, Result};

/// Opens the store a URL names: `redis://` / `rediss://` (Redis), `postgres://` /
/// `postgresql://` (PostgreSQL), anything else through `object_store` (`file://`,
/// `s3://`, `memory://`, ...). Must run inside a tokio runtime.
///
/// With the `lance` feature (on by default), a remote object store (`s3://`, `gs://`,
/// `az://`, ...) keeps its full snapshots as versions of a Lance dataset
/// (`snapshots.lance`: the cold tier keeps fulls as Lance datasets); a local directory and memory keep the native
/// format, which is faster to write and needs nothing else to read.
pub async fn open(url: &str) -> Result<Arc<dyn BackupStore>> {
    let scheme = url.split("://").next().unwrap_or("");
    Ok(match scheme {
        "redis" | "rediss" | "redis+unix" => Arc::new(
            bindspace_store_redis::RedisBackupStore::connect(url, Default::default()).await?,
        ),
        "postgres" | "postgresql" => {
            Arc::new(bindspace_store_pg::PgBackupStore::connect(url, Default::default()).await?)
        }
        "" => {
            return Err(Error::Invalid {
                store: url.into(),
                detail: "not a URL (file:///path, s3://bucket/prefix, redis://, postgresql://)"
                    .into(),
            });
        }
        "file" | "memory" => Arc::new(bindspace_store_s3::ObjectBackupStore::from_url(
            url,
            Default::default(),
        )?),
        _ => remote_object_store(url)?,
    })
}

#[cfg(feature = "lance")]
fn remote_object_store(url: &str) -> Result<Arc<dyn BackupStore>> {
    let store = bindspace_store_s3::ObjectBackupStore::from_url(url, Default::default())?;
    Ok(Arc::new(bindspace_store_s3::LanceBackupStore::new(store)))
}

#[cfg(not(feature = "lance"))]
fn remote_object_store(url: &str) -> Result<Arc<dyn BackupStore>> {
    Ok(Arc::new(bindspace_store_s3::ObjectBackupStore::from_url(
        url,
        Default::default(),
    )?))
}

/// Opens every URL, in order.
pub async fn open_all(urls: &[String]) -> Result<Vec<Arc<dyn BackupStore>>> {
    let mut out = Vec::with_capacity(urls.len());
    for u in urls {
        out.push(open(u).await?);
    }
    Ok(out)
}
