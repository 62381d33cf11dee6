//! The rest of the operator's surface: status, restore points, retention (a dry run
//! unless confirmed), drills and their history, replication and WAL-archive status,
//! and schema migrations (planned against the live space, applied into a file).

use axum::extract::State;
use axum::http::StatusCode;
use bindspace_catalog::retention;
use bindspace_core::{SchemaVersion, snapshot};
use bindspace_schema_migrate::{Consent, features};
use serde::Deserialize;
use utoipa::IntoParams;

use super::{AppState, Json, Query};
use crate::error::{ApiError, ErrorBody};
use crate::model::{
    Drill, DrillSummary, Expired, Job, JobResult, Kept, LastBackup, LastVerify, MigratePlan,
    MigrateRequest, MigrateWarning, Migrated, NewRestorePoint, Replica, Replication, RestorePoint,
    Retention, Status, WalArchive,
};
use crate::time::{ago, rfc3339};

fn wal_view(st: &bindspace::EngineStatus, now: u64) -> WalArchive {
    WalArchive {
        version: st.version,
        archived_version: st.last_archived_version,
        segments_archived: st.segments_archived,
        failures: st.archive_failures,
        lag_seconds: st.archive_lag_us(now).map(|us| us as f64 / 1e6),
    }
}

fn replication_view(st: &bindspace::EngineStatus) -> Replication {
    Replication {
        replicas: st
            .replica_lag_ms
            .iter()
            .map(|(store, lag)| Replica {
                store: store.clone(),
                lag_ms: *lag,
            })
            .collect(),
        failures: st.replication_failures,
    }
}

/// The engine's state: version, backups, the WAL archive, verification, drills,
/// replicas.
#[utoipa::path(get, path = "/api/v1/admin/status", tag = "status",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The engine's state", body = Status),
        (status = 401, description = "No or an unknown token", body = ErrorBody)))]
pub async fn status(State(state): State<AppState>) -> Result<axum::Json<Status>, ApiError> {
    let now = state.now_us();
    let st = super::health::status_with_backups(&state).await?;
    let (addresses, fenced) = state
        .blocking(|e| Ok((e.read(|s| s.len() as u64), e.unwritable())))
        .await?;
    Ok(axum::Json(Status {
        version: st.version,
        timeline: state.engine.timeline(),
        addresses,
        fenced,
        backups_ok: st.backups_ok,
        backups_failed: st.backups_failed,
        last_backup_version: st.last_backup_version,
        last_backups: st
            .last_backup_us
            .iter()
            .map(|((kind, store), t)| LastBackup {
                kind: kind.clone(),
                store: store.clone(),
                time: rfc3339(*t),
                age: ago(*t, now),
            })
            .collect(),
        wal: wal_view(&st, now),
        last_verify: st
            .last_verify
            .iter()
            .map(|(level, (t, outcome))| LastVerify {
                level: level.clone(),
                time: rfc3339(*t),
                age: ago(*t, now),
                outcome: outcome.clone(),
            })
            .collect(),
        last_drill: st.last_drill.as_ref().map(|d| DrillSummary {
            time: rfc3339(d.finished_us),
            age: ago(d.finished_us, now),
            rto_ms: d.rto_ms,
            rpo_ms: d.rpo_ms,
            passed: d.passed,
        }),
        replication: replication_view(&st),
        retention_deleted: st.retention_deleted,
        last_error: st.last_error.clone(),
    }))
}

/// The named restore points.
#[utoipa::path(get, path = "/api/v1/admin/restore-points", tag = "restore points",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The restore points", body = Vec<RestorePoint>),
        (status = 401, description = "No or an unknown token", body = ErrorBody),
        (status = 503, description = "No store's catalog could be read", body = ErrorBody)))]
pub async fn points(
    State(state): State<AppState>,
) -> Result<axum::Json<Vec<RestorePoint>>, ApiError> {
    let (m, _) = state.engine.repository().read_catalog().await?;
    Ok(axum::Json(
        m.restore_points.iter().map(RestorePoint::from).collect(),
    ))
}

/// Whether `name` is a restore point name the API accepts.
fn valid_point_name(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b))
}

/// Names the current version (in the WAL and every store's catalog), archived before
/// the answer: a `201` point restores at once.
#[utoipa::path(post, path = "/api/v1/admin/restore-points", tag = "restore points",
    security(("bearer" = [])),
    request_body = NewRestorePoint,
    responses(
        (status = 201, description = "Made", body = RestorePoint),
        (status = 400, description = "A bad name", body = ErrorBody),
        (status = 401, description = "No or an unknown token", body = ErrorBody),
        (status = 403, description = "A read-only token", body = ErrorBody),
        (status = 409, description = "The name is taken, or the engine is fenced", body = ErrorBody),
        (status = 413, description = "The body is too large", body = ErrorBody),
        (status = 415, description = "The body is not JSON", body = ErrorBody),
        (status = 503, description = "A store is down", body = ErrorBody)))]
pub async fn create_point(
    State(state): State<AppState>,
    Json(p): Json<NewRestorePoint>,
) -> Result<(StatusCode, axum::Json<RestorePoint>), ApiError> {
    if !valid_point_name(&p.name) {
        return Err(ApiError::bad_request(
            "a restore point name is 1 to 128 letters, digits and ._:-",
        ));
    }
    let (m, _) = state.engine.repository().read_catalog().await?;
    if m.restore_points.iter().any(|r| r.name == p.name) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!("restore point {:?} exists", p.name),
        ));
    }
    let name = p.name.clone();
    // archived before the answer: a point is restorable once the answer says it exists
    let version = state
        .blocking(move |e| {
            let v = e.restore_point(&name, p.guaranteed)?;
            e.archive_now().map_err(|err| {
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    format!(
                        "restore point {name:?} was made at version {v}, but the WAL holding it is not archived yet (retried in the background; it is restorable once archived): {err}"
                    ),
                )
            })?;
            Ok(v)
        })
        .await?;
    let (m, _) = state.engine.repository().read_catalog().await?;
    let point = m
        .restore_points
        .iter()
        .find(|r| r.name == p.name && r.version == version)
        .map(RestorePoint::from)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                format!(
                    "restore point {:?} was made at version {version} but the catalog read does not show it",
                    p.name
                ),
            )
        })?;
    Ok((StatusCode::CREATED, axum::Json(point)))
}

/// `POST /retention` options.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RetentionQuery {
    /// Delete for real (default: a dry run that deletes nothing).
    pub confirm: Option<bool>,
}

/// Retention under the engine's configured policy: what it keeps (and why) and what
/// it deletes; a dry run unless `confirm=true`.
#[utoipa::path(post, path = "/api/v1/admin/retention", tag = "backups",
    security(("bearer" = [])),
    params(RetentionQuery),
    responses(
        (status = 200, description = "The plan (and what was deleted)", body = Retention),
        (status = 400, description = "A bad option or policy", body = ErrorBody),
        (status = 401, description = "No or an unknown token", body = ErrorBody),
        (status = 403, description = "A read-only token", body = ErrorBody),
        (status = 409, description = "Another backup holds the lease", body = ErrorBody),
        (status = 503, description = "A store is down", body = ErrorBody)))]
pub async fn retention(
    State(state): State<AppState>,
    Query(q): Query<RetentionQuery>,
) -> Result<axum::Json<Retention>, ApiError> {
    let policy = state.engine.config().retention_policy()?.clone();
    let now = state.now_us();
    let repo = state.engine.repository();
    let confirm = q.confirm.unwrap_or(false);
    let (plan, deleted) = if confirm {
        state.blocking(|e| Ok(e.retention_now()?)).await?
    } else {
        let (m, _) = repo.read_catalog().await?;
        let evidence = retention::Evidence {
            wal_activity_us: repo.wal_activity().await?,
            expire: None,
            timelines: Vec::new(),
        };
        (retention::plan_with(&m, &policy, now, &evidence), 0)
    };
    Ok(axum::Json(Retention {
        dry_run: !confirm,
        keep: plan
            .keep
            .iter()
            .map(|(id, why)| Kept {
                id: id.clone(),
                reasons: why.iter().map(ToString::to_string).collect(),
            })
            .collect(),
        delete: plan.delete.clone(),
        deleted: deleted as u64,
        expire: plan
            .expire
            .iter()
            .map(|e| Expired {
                timeline: e.id,
                reason: e.reason.clone(),
            })
            .collect(),
    }))
}

/// `POST /drill` options.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DrillQuery {
    /// `latest` (default), `random` or `point:NAME`.
    #[param(pattern = r"^(latest|random|point:[A-Za-z0-9._:-]{1,128})$")]
    pub target: Option<String>,
    /// The RTO target in seconds (1–86400).
    #[param(minimum = 1, maximum = 86400)]
    pub rto_target_secs: Option<u64>,
    /// The RPO target in seconds (1–86400).
    #[param(minimum = 1, maximum = 86400)]
    pub rpo_target_secs: Option<u64>,
}

/// A restore drill through the engine (a canary restore point restored from every
/// store alone and from all together; RTO and RPO measured), as a job.
#[utoipa::path(post, path = "/api/v1/admin/drill", tag = "drills",
    security(("bearer" = [])),
    params(DrillQuery),
    responses(
        (status = 202, description = "Accepted: follow the job", body = Job),
        (status = 400, description = "A bad option", body = ErrorBody),
        (status = 401, description = "No or an unknown token", body = ErrorBody),
        (status = 403, description = "A read-only token", body = ErrorBody)))]
pub async fn drill(
    State(state): State<AppState>,
    Query(q): Query<DrillQuery>,
) -> Result<(StatusCode, axum::Json<Job>), ApiError> {
    let secs = |v: Option<u64>, default: std::time::Duration| match v {
        None => Ok(default),
        Some(s) if (1..=86_400).contains(&s) => Ok(std::time::Duration::from_secs(s)),
        Some(_) => Err(ApiError::bad_request("a target is 1 to 86400 seconds")),
    };
    let t = q.target.as_deref().unwrap_or("latest");
    let target = bindspace_dr::DrillTarget::parse(t, state.now_us()).ok_or_else(|| {
        ApiError::bad_request(format!(
            "target {t:?}: expected latest, random or point:NAME"
        ))
    })?;
    let opts = bindspace_dr::DrillOptions {
        target,
        rto_target: secs(q.rto_target_secs, bindspace_dr::DEFAULT_RTO_TARGET)?,
        rpo_target: secs(q.rpo_target_secs, bindspace_dr::DEFAULT_RPO_TARGET)?,
        ..bindspace_dr::DrillOptions::default()
    };
    let engine = state.engine.clone();
    let job = state.jobs.start(&state.rt, "drill", move |r| {
        r.step("drilling restores from every store", 0, 1);
        let report = engine.drill(&opts)?;
        Ok(JobResult {
            drill: Some(Drill::from(&report)),
            ..JobResult::default()
        })
    });
    Ok((StatusCode::ACCEPTED, axum::Json(job)))
}

/// The drills recorded in the catalog, oldest first.
#[utoipa::path(get, path = "/api/v1/admin/drill/report", tag = "drills",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The drill history", body = Vec<Drill>),
        (status = 401, description = "No or an unknown token", body = ErrorBody),
        (status = 503, description = "No store's catalog could be read", body = ErrorBody)))]
pub async fn drill_report(
    State(state): State<AppState>,
) -> Result<axum::Json<Vec<Drill>>, ApiError> {
    let (m, _) = state.engine.repository().read_catalog().await?;
    Ok(axum::Json(
        bindspace_dr::history(&m).iter().map(Drill::from).collect(),
    ))
}

/// Each replica's lag.
#[utoipa::path(get, path = "/api/v1/admin/replication", tag = "status",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The replicas", body = Replication),
        (status = 401, description = "No or an unknown token", body = ErrorBody)))]
pub async fn replication(
    State(state): State<AppState>,
) -> Result<axum::Json<Replication>, ApiError> {
    let st = state.blocking(|e| Ok(e.status())).await?;
    Ok(axum::Json(replication_view(&st)))
}

/// The WAL archive: how far behind it is.
#[utoipa::path(get, path = "/api/v1/admin/wal", tag = "status",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The WAL archive", body = WalArchive),
        (status = 401, description = "No or an unknown token", body = ErrorBody)))]
pub async fn wal(State(state): State<AppState>) -> Result<axum::Json<WalArchive>, ApiError> {
    let st = state.blocking(|e| Ok(e.status())).await?;
    Ok(axum::Json(wal_view(&st, state.now_us())))
}

/// The schema `req` asks for, from `from`.
fn target_schema(from: SchemaVersion, req: &MigrateRequest) -> Result<SchemaVersion, ApiError> {
    let mut to = from;
    if let Some(v) = &req.to {
        let parts: Vec<u16> = v
            .split('.')
            .map(str::parse)
            .collect::<Result<_, _>>()
            .map_err(|_| ApiError::bad_request(format!("to {v:?} is not MAJOR.MINOR.PATCH")))?;
        let [major, minor, patch] = parts[..] else {
            return Err(ApiError::bad_request(format!(
                "to {v:?} is not MAJOR.MINOR.PATCH"
            )));
        };
        (to.major, to.minor, to.patch) = (major, minor, patch);
    }
    if let Some(w) = req.words {
        if !(1..=1024).contains(&w) {
            return Err(ApiError::bad_request("words is 1 to 1024"));
        }
        to.fingerprint_words = w;
    }
    if let Some(n) = req.address_space {
        if !(1..=65_536).contains(&n) {
            return Err(ApiError::bad_request("address_space is 1 to 65536"));
        }
        to.address_space = n;
    }
    for name in req.features.iter().map(|f| f.name()) {
        let Some(f) = features::by_name(name) else {
            let known: Vec<&str> = features::REGISTRY.iter().map(|f| f.name).collect();
            return Err(ApiError::bad_request(format!(
                "unknown feature {name:?} (known: {})",
                known.join(", ")
            )));
        };
        to.features |= f.bit;
    }
    Ok(to)
}

/// A migration the schemas refuse (an incompatible target, a lossy plan without
/// consent): the request is well formed, the space's state refuses it.
fn migrate_error(e: bindspace_schema_migrate::Error) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, "migration_refused", e.to_string())
}

fn plan_view(p: &bindspace_schema_migrate::Plan) -> MigratePlan {
    MigratePlan {
        from: p.from.to_string(),
        to: p.to.to_string(),
        steps: p.steps.iter().map(ToString::to_string).collect(),
        occupied: p.occupied as u64,
        estimated_output_bytes: p.estimated_output_bytes,
        estimated_ms: p.estimated_duration.as_millis() as u64,
        downtime: p.downtime,
        lossy: p.is_lossy(),
        warnings: p
            .warnings
            .iter()
            .map(|w| MigrateWarning {
                message: w.message.clone(),
                lossy: w.lossy,
                addresses: w.addresses as u64,
            })
            .collect(),
    }
}

/// What migrating the live space to another schema would do: steps, size, time,
/// data-loss warnings.
#[utoipa::path(post, path = "/api/v1/admin/migrate/plan", tag = "migrations",
    security(("bearer" = [])),
    request_body = MigrateRequest,
    responses(
        (status = 200, description = "The plan", body = MigratePlan),
        (status = 400, description = "A bad request", body = ErrorBody),
        (status = 409, description = "The space's schema refuses that migration", body = ErrorBody),
        (status = 401, description = "No or an unknown token", body = ErrorBody),
        (status = 413, description = "The body is too large", body = ErrorBody),
        (status = 415, description = "The body is not JSON", body = ErrorBody)))]
pub async fn migrate_plan(
    State(state): State<AppState>,
    Json(req): Json<MigrateRequest>,
) -> Result<axum::Json<MigratePlan>, ApiError> {
    let p = state
        .blocking(move |e| {
            // planned on a copy: writers wait for a memcpy, not for the plan
            let space = e.read(|s| s.clone());
            let to = target_schema(space.schema(), &req)?;
            bindspace_schema_migrate::plan(&space, to).map_err(migrate_error)
        })
        .await?;
    Ok(axum::Json(plan_view(&p)))
}

/// The directory migrations write to.
pub const MIGRATIONS: &str = "migrations";

/// Migrates a copy of the live space into `DATA/migrations/JOB.snap`, as a job (the
/// engine keeps its schema; an engine started on the file runs the new one). Refused
/// before any job when the plan does not validate (a lossy plan without
/// `allow_truncate`).
#[utoipa::path(post, path = "/api/v1/admin/migrate/apply", tag = "migrations",
    security(("bearer" = [])),
    request_body = MigrateRequest,
    responses(
        (status = 202, description = "Accepted: follow the job", body = Job),
        (status = 400, description = "A bad request", body = ErrorBody),
        (status = 409, description = "The space's schema refuses that migration, or it loses data without allow_truncate", body = ErrorBody),
        (status = 401, description = "No or an unknown token", body = ErrorBody),
        (status = 403, description = "A read-only token", body = ErrorBody),
        (status = 413, description = "The body is too large", body = ErrorBody),
        (status = 415, description = "The body is not JSON", body = ErrorBody)))]
pub async fn migrate_apply(
    State(state): State<AppState>,
    Json(req): Json<MigrateRequest>,
) -> Result<(StatusCode, axum::Json<Job>), ApiError> {
    let allow_truncate = req.allow_truncate;
    let (space, validated) = state
        .blocking(move |e| {
            let space = e.read(|s| s.clone());
            let to = target_schema(space.schema(), &req)?;
            let validated = bindspace_schema_migrate::plan(&space, to)
                .and_then(|p| p.validate(Consent { allow_truncate }))
                .map_err(migrate_error)?;
            Ok((space, validated))
        })
        .await?;
    let dir = state.engine.data_dir().join(MIGRATIONS);
    let job = state.jobs.start(&state.rt, "migrate", move |r| {
        let total = space.len() as u64;
        let migrated = bindspace_schema_migrate::apply(&space, &validated, &mut |p| {
            r.step("migrating addresses", p.done as u64, total)
        })
        .map_err(migrate_error)?;
        let io = |e: std::io::Error| ApiError::from(crate::Error::Export(e.to_string()));
        std::fs::create_dir_all(&dir).map_err(io)?;
        let path = dir.join(format!("{}.snap", r.unique()));
        let bytes = snapshot::encode(&migrated, 0);
        bindspace_wal::fsio::write_atomic_bytes(&path, &bytes).map_err(io)?;
        Ok(JobResult {
            migrate: Some(Migrated {
                schema: migrated.schema().to_string(),
                addresses: migrated.len() as u64,
                file: path.display().to_string(),
                size_bytes: bytes.len() as u64,
            }),
            ..JobResult::default()
        })
    });
    Ok((StatusCode::ACCEPTED, axum::Json(job)))
}
