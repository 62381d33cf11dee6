//! # bindspace-store-pg
//!
//! [`PgBackupStore`] implements `bindspace-catalog`'s
//! [`BackupStore`](bindspace_catalog::BackupStore) on PostgreSQL through
//! deadpool-postgres: the catalog (also projected into queryable `backups`,
//! `restore_points` and `schema_versions` tables), and artifacts as chunked `bytea`.
//!
//! What it is not: no scheduling, no restore planning, no TLS (put PostgreSQL behind a
//! local socket or a TLS-terminating proxy; a `tls` feature can come later).
//!
//! The store owns its SQL schema (default schema name `bindspace`), versioned in
//! [`MIGRATIONS`] and applied at connect: each migration runs once, in a transaction,
//! recorded in `schema_migrations`, serialised across processes by an advisory lock.
//!
//! | table | holds |
//! |---|---|
//! | `schema_migrations` | applied migrations |
//! | `artifacts` | one row per snapshot / delta / WAL segment: kind, versions, len, blake3, chunking |
//! | `artifact_chunks` | the bytes, `bytea` chunks of at most [`PgOptions::chunk_size`] |
//! | `catalog` | the manifest (one row) and its generation |
//! | `backups`, `restore_points`, `schema_versions` | the manifest's content as rows, rewritten by each commit in the same transaction |
//! | `lease` | the backup lease (one row, fenced by a sequence) |
//!
//! ```no_run
//! # async fn f() -> Result<(), bindspace_catalog::Error> {
//! use bindspace_catalog::{ArtifactId, BackupStore};
//! use bindspace_store_pg::{PgBackupStore, PgOptions};
//!
//! let store = PgBackupStore::connect("postgresql://postgres@127.0.0.1:5432/postgres", PgOptions::default()).await?;
//! let r = store.put(ArtifactId::delta(1, 2), "bytes".into()).await?;
//! assert_eq!(store.get(&r).await?, "bytes");
//! # Ok(()) }
//! ```

mod migrations;
mod store;

pub use migrations::{MIGRATIONS, Migration};
pub use store::{PgBackupStore, PgOptions};
