//! # bindspace-store-redis
//!
//! The warm tier: [`RedisBackupStore`] implements `bindspace-catalog`'s
//! [`BackupStore`](bindspace_catalog::BackupStore) on Redis, with the seed's key schema
//! under a configurable prefix (default `ladybug:`).
//!
//! What it is not: no scheduling, no restore planning, no cluster mode. Redis is the
//! fast tier, not the durable one: run it with persistence if it must survive a restart,
//! and keep the cold tier and the WAL archive as the source of truth.
//!
//! ## Keys (prefix `ladybug:` shown)
//!
//! | key | type | holds |
//! |---|---|---|
//! | `ladybug:snapshot:{v}` | hash | a snapshot's metadata: `len`, `blake3`, `chunk_size`, `chunks` |
//! | `ladybug:delta:{from}:{to}` | hash | a delta's metadata, same fields |
//! | `ladybug:wal:{first}:{last}` | hash | an archived WAL segment's metadata |
//! | `…:{blake3 prefix}:{i}` | string | chunk `i` of that artifact (at most `chunk_size` bytes) |
//! | `ladybug:index:{snapshot,delta,wal}` | hash | key name → `len blake3`, for listing |
//! | `ladybug:latest` | string | the newest complete snapshot's version |
//! | `ladybug:schema:version` | string | the schema the repository is written in (`major.minor.patch`) |
//! | `ladybug:checkpoint:{name}` | string | the version a named checkpoint stands at |
//! | `ladybug:catalog:manifest` / `:generation` | string | the catalog manifest and its generation |
//! | `ladybug:lock:backup` / `:fence` | string | the backup lease (`SET NX PX`) and its fencing counter |
//!
//! ## How a put stays atomic
//!
//! Chunks are written first, pipelined in batches of [`RedisOptions::pipeline_bytes`],
//! each with a staging expiry ([`RedisOptions::staging_ttl`]) so an interrupted upload
//! leaves nothing behind for long. The last batch carries one Lua script that, in one
//! atomic step, makes the chunks permanent, writes the metadata hash and the index
//! entry, and moves `latest` forward. Until that script runs, readers see the previous
//! state; a small artifact (one batch) costs one round trip in all.
//!
//! ```no_run
//! # async fn f() -> Result<(), bindspace_catalog::Error> {
//! use bindspace_catalog::{ArtifactId, BackupStore};
//! use bindspace_store_redis::{RedisBackupStore, RedisOptions};
//!
//! let store = RedisBackupStore::connect("redis://127.0.0.1:6379", RedisOptions::default()).await?;
//! let r = store.put(ArtifactId::snapshot(1), "bytes".into()).await?;
//! assert_eq!(store.latest().await?, Some(1));
//! assert_eq!(store.get(&r).await?, "bytes");
//! # Ok(()) }
//! ```

mod store;

pub use store::{RedisBackupStore, RedisOptions};
