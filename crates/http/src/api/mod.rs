//! The router: public probes, read routes and admin routes (each behind the bearer
//! check for its role), JSON errors for everything axum refuses, and the OpenAPI
//! document generated from the handlers' annotations.

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Request, State};
use axum::http::StatusCode;
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bindspace::Engine;
use bindspace_pitr::Target;
use serde::Deserialize;
use utoipa::{IntoParams, OpenApi, ToSchema};

use crate::auth::{Role, Tokens};
use crate::error::{ApiError, ErrorBody};
use crate::jobs::Jobs;
use crate::time::parse_time_at;

mod backups;
mod export;
mod health;
mod ops;
mod restores;

/// Largest request body accepted (bytes): every request is a small JSON object.
pub const MAX_BODY: usize = 64 * 1024;

/// What the handlers share.
pub struct Shared {
    /// The engine served.
    pub engine: Arc<Engine>,
    /// The tokens accepted.
    pub tokens: Tokens,
    /// Long operations.
    pub jobs: Arc<Jobs>,
    /// The engine's runtime (jobs block on it from the blocking pool).
    pub rt: tokio::runtime::Handle,
    /// One deep health check at a time (each runs a small drill).
    pub deep: tokio::sync::Mutex<()>,
    /// Exports at once (each holds a copy of a space): more are refused with 503.
    pub exports: Arc<tokio::sync::Semaphore>,
    /// The last backup of each kind in each store as the catalog has it (backups by
    /// others too: a replication, a compact), read at most once a minute and when it
    /// was read (µs), not per probe.
    pub catalog_backups: tokio::sync::Mutex<Option<(u64, LastBackups)>>,
}

/// When each store last finished a backup of each kind: (kind, store) → µs.
pub type LastBackups = std::collections::BTreeMap<(String, String), u64>;

/// The handlers' state.
pub type AppState = Arc<Shared>;

impl Shared {
    /// State for serving `engine` to holders of `tokens`.
    pub fn new(engine: Arc<Engine>, tokens: Tokens) -> AppState {
        Arc::new(Shared {
            rt: engine.runtime_handle(),
            jobs: Jobs::new(engine.clock().clone()),
            engine,
            tokens,
            deep: tokio::sync::Mutex::new(()),
            exports: Arc::new(tokio::sync::Semaphore::new(2)),
            catalog_backups: tokio::sync::Mutex::new(None),
        })
    }

    /// The engine's clock now (µs).
    pub fn now_us(&self) -> u64 {
        self.engine.clock().now_us()
    }

    /// Runs `f` on the blocking pool (engine calls block on the engine's runtime, which
    /// must not happen on one of its own tasks).
    pub async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Engine) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let engine = self.engine.clone();
        tokio::task::spawn_blocking(move || f(&engine))
            .await
            .map_err(|e| {
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    format!("the request stopped: {e}"),
                )
            })?
    }
}

/// A JSON body, refused as a JSON error.
pub struct Json<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        // every body is a JSON object (serde would also take a struct from an array)
        let axum::Json(v) = axum::Json::<serde_json::Value>::from_request(req, state)
            .await
            .map_err(ApiError::from)?;
        if !v.is_object() {
            return Err(ApiError::bad_request("the body must be a JSON object"));
        }
        serde_json::from_value(v)
            .map(Json)
            .map_err(|e| ApiError::bad_request(format!("the body: {e}")))
    }
}

/// A query string, refused as a JSON error.
pub struct Query<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(v)| Query(v))
            .map_err(ApiError::from)
    }
}

/// A path parameter, refused as a JSON error.
pub struct Path<T>(pub T);

impl<T: serde::de::DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| Path(v))
            .map_err(ApiError::from)
    }
}

/// What to restore to, and on which history.
#[derive(Debug, Default, Deserialize, serde::Serialize, IntoParams, ToSchema)]
#[into_params(parameter_in = Query)]
pub struct TargetQuery {
    /// `latest` (the default), `version:N`, `time:T` (T in RFC 3339 such as
    /// `2025-12-24T15:30:00Z`, a time ago such as `-15m`, or µs since the epoch), or
    /// `point:NAME`. In a query string, URL-encode it (`+` in an offset is `%2B`).
    #[param(
        pattern = r"^(latest|version:(0|[1-9][0-9]{0,18})|time:([0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])|-[1-9][0-9]{0,5}[smhd]|0|[1-9][0-9]{0,17})|point:[A-Za-z0-9._:-]{1,128})$"
    )]
    #[schema(
        pattern = r"^(latest|version:(0|[1-9][0-9]{0,18})|time:([0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])|-[1-9][0-9]{0,5}[smhd]|0|[1-9][0-9]{0,17})|point:[A-Za-z0-9._:-]{1,128})$"
    )]
    pub target: Option<String>,
    /// The timeline (history): default the engine's own, or a restore point's.
    #[param(minimum = 1, maximum = 2147483647)]
    #[schema(minimum = 1, maximum = 2147483647)]
    #[serde(default, deserialize_with = "crate::model::integer")]
    pub timeline: Option<u32>,
}

/// Parses a target (see [`TargetQuery::target`]); a time before 1970 is 1970.
pub fn parse_target(s: &str, now_us: u64) -> Result<Target, String> {
    let s = s.trim();
    if s == "latest" {
        return Ok(Target::Latest);
    }
    if let Some(v) = s.strip_prefix("version:") {
        return v
            .parse()
            .map(Target::Version)
            .map_err(|_| format!("target {s:?}: the version is not a number"));
    }
    if let Some(t) = s.strip_prefix("time:") {
        return parse_time_at(t, now_us).map(Target::Time);
    }
    if let Some(p) = s.strip_prefix("point:") {
        return Ok(Target::RestorePoint(p.to_owned()));
    }
    Err(format!(
        "target {s:?}: expected latest, version:N, time:T (RFC 3339, -15m or µs) or point:NAME"
    ))
}

impl TargetQuery {
    /// The target asked for (`latest` when none).
    pub fn target(&self, now_us: u64) -> Result<Target, ApiError> {
        match &self.target {
            None => Ok(Target::Latest),
            Some(s) => parse_target(s, now_us).map_err(ApiError::bad_request),
        }
    }

    /// Whether a target was named (an export without one is of the live space).
    pub fn named(&self) -> bool {
        self.target.is_some()
    }

    /// The timeline the target is on: the one asked for, a restore point's own, else
    /// the engine's.
    pub fn timeline(&self, target: &Target, engine: &Engine) -> Result<Option<u32>, ApiError> {
        Ok(match (self.timeline, target) {
            (Some(t), _) if t == 0 || t > i32::MAX as u32 => {
                return Err(ApiError::bad_request(
                    "timeline is 1 to 2147483647 (bindspace timeline list names them)",
                ));
            }
            (Some(t), _) => Some(t),
            (None, Target::RestorePoint(_)) => None,
            (None, _) => Some(engine.timeline()),
        })
    }
}

/// Checks the bearer token of every request to the routes it guards.
async fn authorize(
    State((state, need)): State<(AppState, Role)>,
    req: Request,
    next: Next,
) -> Response {
    let presented = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token);
    let Some(presented) = presented else {
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "this endpoint needs `Authorization: Bearer TOKEN`",
        )
        .into_response();
    };
    match state.tokens.check(presented.as_bytes()) {
        None => {
            ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "unknown token").into_response()
        }
        Some(role) if role < need => ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "a read-only token cannot do this: it needs an admin token",
        )
        .into_response(),
        Some(_) => next.run(req).await,
    }
}

/// The token of an `Authorization` value: the scheme is case-insensitive (RFC 9110
/// §11.1: `bearer`, `BEARER`), then one or more spaces.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint: see /api/v1/openapi.json")
}

/// The API's router over `state`.
pub fn router(state: AppState) -> Router {
    const A: &str = "/api/v1/admin";
    let read = Router::new()
        .route("/metrics", get(health::metrics))
        .route(&format!("{A}/status"), get(ops::status))
        .route(&format!("{A}/backup/list"), get(backups::list))
        .route(&format!("{A}/backup/{{id}}"), get(backups::show))
        .route(&format!("{A}/jobs"), get(backups::jobs))
        .route(&format!("{A}/jobs/{{id}}"), get(backups::job))
        .route(
            &format!("{A}/restore/{{id}}/status"),
            get(backups::restore_status),
        )
        .route(&format!("{A}/restore-points"), get(ops::points))
        .route(&format!("{A}/explain"), get(restores::explain))
        .route(&format!("{A}/as-of"), get(restores::as_of))
        .route(&format!("{A}/drill/report"), get(ops::drill_report))
        .route(&format!("{A}/replication"), get(ops::replication))
        .route(&format!("{A}/wal"), get(ops::wal))
        .route(&format!("{A}/migrate/plan"), post(ops::migrate_plan))
        .route(&format!("{A}/export"), get(export::export))
        .route_layer(from_fn_with_state((state.clone(), Role::Read), authorize));
    let admin = Router::new()
        // a drill writes a canary restore point and a report into every catalog
        .route("/api/v1/health/deep", get(health::deep))
        .route(&format!("{A}/backup"), post(backups::full))
        .route(
            &format!("{A}/backup/incremental"),
            post(backups::incremental),
        )
        .route(
            &format!("{A}/backup/differential"),
            post(backups::differential),
        )
        .route(&format!("{A}/backup/verify"), post(backups::verify))
        .route(&format!("{A}/restore"), post(restores::restore))
        .route(&format!("{A}/restore-points"), post(ops::create_point))
        .route(&format!("{A}/retention"), post(ops::retention))
        .route(&format!("{A}/drill"), post(ops::drill))
        .route(&format!("{A}/migrate/apply"), post(ops::migrate_apply))
        .route_layer(from_fn_with_state((state.clone(), Role::Admin), authorize));
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/api/v1/openapi.json", get(openapi_json))
        .merge(read)
        .merge(admin)
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

async fn openapi_json() -> axum::Json<utoipa::openapi::OpenApi> {
    axum::Json(ApiDoc::openapi())
}

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The OpenAPI document of the API.
#[derive(OpenApi)]
#[openapi(
    info(title = "bindspace admin API", description = "Backups, restores, verification, drills and exports of a running bindspace engine."),
    modifiers(&BearerAuth),
    paths(
        health::healthz, health::readyz, health::deep, health::metrics,
        ops::status,
        backups::full, backups::incremental, backups::differential, backups::list,
        backups::show, backups::verify, backups::jobs, backups::job, backups::restore_status,
        restores::restore, restores::explain, restores::as_of,
        ops::points, ops::create_point, ops::retention, ops::drill, ops::drill_report,
        ops::replication, ops::wal, ops::migrate_plan, ops::migrate_apply,
        export::export,
    ),
    components(schemas(ErrorBody))
)]
pub struct ApiDoc;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        for v in ["Bearer abc", "bearer abc", "BEARER  abc ", " Bearer abc"] {
            assert_eq!(bearer_token(v), Some("abc"), "{v:?}");
        }
        for v in ["Basic abc", "Bearer", "Bearer ", "Bearerabc", ""] {
            assert_eq!(bearer_token(v), None, "{v:?}");
        }
    }

    /// The target pattern is written out in each parameter (utoipa takes only a
    /// literal): every copy in the document is the same, and the strings it admits
    /// parse.
    #[test]
    fn every_target_pattern_is_one_and_admits_what_parses() {
        let doc = serde_json::to_value(ApiDoc::openapi()).expect("a document");
        let mut patterns = std::collections::BTreeSet::new();
        fn walk(v: &serde_json::Value, out: &mut std::collections::BTreeSet<String>) {
            match v {
                serde_json::Value::Object(m) => {
                    let is_target = m.get("name").and_then(|n| n.as_str()) == Some("target");
                    if is_target
                        && let Some(p) = v.pointer("/schema/pattern").and_then(|p| p.as_str())
                    {
                        out.insert(p.to_owned());
                    }
                    if let Some(p) = m
                        .get("properties")
                        .and_then(|p| p.pointer("/target/pattern"))
                        .and_then(|p| p.as_str())
                    {
                        out.insert(p.to_owned());
                    }
                    m.values().for_each(|v| walk(v, out));
                }
                serde_json::Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
                _ => {}
            }
        }
        walk(&doc, &mut patterns);
        // the drill's own target (latest|random|point:) is another language
        patterns.retain(|p| p.contains("version:"));
        assert_eq!(patterns.len(), 1, "{patterns:#?}");
        for t in [
            "latest",
            "version:0",
            "version:18446744073",
            "time:2025-12-24T15:30:00Z",
            "time:2025-12-24T16:30:00.5+01:00",
            "time:-15m",
            "time:1766590200000000",
            "point:before-deploy",
        ] {
            assert!(parse_target(t, 1_766_590_200_000_000).is_ok(), "{t}");
        }
    }
}
