//! # bindspace-http
//!
//! The HTTP admin API of a running bindspace [`Engine`](bindspace::Engine): what the
//! `bindspace` CLI does, over HTTP, for operators and their tools (`bindspace serve`
//! runs it; a service embedding the engine can mount [`router`] itself).
//!
//! - Probes: `GET /healthz`, `GET /readyz`, `GET /api/v1/health/deep` (a small drill),
//!   `GET /metrics` (Prometheus).
//! - Under `/api/v1/admin`: backups (full as a job, incremental, differential, list,
//!   show, verify), restores (a job writing a snapshot file, its status, explain,
//!   flashback reads), restore points, retention (a dry run unless confirmed), drills
//!   and their history, replication and WAL-archive status, migrations (plan, apply
//!   into a file), jobs, and export (JSON, NDJSON, CSV, Parquet; see [`export`]).
//! - The OpenAPI document at `GET /api/v1/openapi.json`, generated from the handlers.
//!
//! Every route but the probes and the document needs `Authorization: Bearer TOKEN`: an
//! admin token, or a read-only one for what only reads ([`auth`]). Errors are JSON
//! with a stable code. Handlers never block the engine's runtime: engine calls run on
//! the blocking pool.
//!
//! ```no_run
//! use std::sync::Arc;
//! use bindspace::{BackupConfig, Engine};
//! use bindspace_http::{Shared, Tokens, router};
//!
//! let engine = Arc::new(Engine::open("/var/lib/bindspace", BackupConfig::default()).unwrap());
//! let state = Shared::new(engine.clone(), Tokens::admin("an-admin-token-of-32-characters"));
//! let app = router(state);
//! engine.runtime_handle().block_on(async {
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await.unwrap();
//!     axum::serve(listener, app).await.unwrap();
//! });
//! ```

mod addr;
mod api;
pub mod auth;
mod error;
pub mod export;
pub mod jobs;
pub mod metrics;
pub mod model;
mod serve;
pub mod time;

pub use addr::parse_addr;
pub use api::{ApiDoc, AppState, MAX_BODY, Shared, TargetQuery, router};
pub use auth::{GENERATED_TOKEN_FILE, Role, Tokens};
pub use error::{ApiError, Error, ErrorBody, ErrorDetail, Result};
pub use serve::{Listen, SERVE_URL_FILE, serve};
