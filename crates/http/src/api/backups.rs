//! Backups: take one (a full as a job, deltas at once), list them, show one, verify
//! the repository (a job); and the jobs themselves.

use axum::extract::State;
use axum::http::StatusCode;
use bindspace_catalog::BackupKind;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::{AppState, Path, Query};
use crate::error::{ApiError, ErrorBody};
use crate::model::{Backup, BackupTaken, Job, JobResult, Verified};
use crate::time::rfc3339;

/// A full backup, as a job (its result names the backup).
#[utoipa::path(post, path = "/api/v1/admin/backup", tag = "backups",
    security(("bearer" = [])),
    responses(
        (status = 202, description = "Accepted: follow the job", body = Job),
        (status = 401, description = "No or an unknown token", body = ErrorBody),
        (status = 403, description = "A read-only token", body = ErrorBody)))]
pub async fn full(State(state): State<AppState>) -> (StatusCode, axum::Json<Job>) {
    let engine = state.engine.clone();
    let job = state.jobs.start(&state.rt, "backup", move |r| {
        r.step("writing a full backup", 0, 1);
        let b = engine.backup_now(BackupKind::Full)?;
        Ok(JobResult {
            backup: b.as_ref().map(Backup::from),
            ..JobResult::default()
        })
    });
    (StatusCode::ACCEPTED, axum::Json(job))
}

async fn delta(state: &AppState, kind: BackupKind) -> Result<axum::Json<BackupTaken>, ApiError> {
    let b = state.blocking(move |e| Ok(e.backup_now(kind)?)).await?;
    Ok(axum::Json(BackupTaken {
        backup: b.as_ref().map(Backup::from),
    }))
}

/// An incremental backup now (a full when there is no chain to extend); no backup
/// when nothing changed since the last one.
#[utoipa::path(post, path = "/api/v1/admin/backup/incremental", tag = "backups",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Written (or nothing changed)", body = BackupTaken),
        (status = 401, description = "No or an unknown token", body = ErrorBody),
        (status = 403, description = "A read-only token", body = ErrorBody),
        (status = 409, description = "Fenced, or another backup holds the lease", body = ErrorBody),
        (status = 503, description = "A store is down", body = ErrorBody)))]
pub async fn incremental(
    State(state): State<AppState>,
) -> Result<axum::Json<BackupTaken>, ApiError> {
    delta(&state, BackupKind::Incremental).await
}

/// A differential backup now (the changes since the last full).
#[utoipa::path(post, path = "/api/v1/admin/backup/differential", tag = "backups",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Written (or nothing changed)", body = BackupTaken),
        (status = 401, description = "No or an unknown token", body = ErrorBody),
        (status = 403, description = "A read-only token", body = ErrorBody),
        (status = 409, description = "Fenced, or another backup holds the lease", body = ErrorBody),
        (status = 503, description = "A store is down", body = ErrorBody)))]
pub async fn differential(
    State(state): State<AppState>,
) -> Result<axum::Json<BackupTaken>, ApiError> {
    delta(&state, BackupKind::Differential).await
}

/// The backups in the catalog, oldest first.
#[utoipa::path(get, path = "/api/v1/admin/backup/list", tag = "backups",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The catalog's backups", body = Vec<Backup>),
        (status = 401, description = "No or an unknown token", body = ErrorBody),
        (status = 503, description = "No store's catalog could be read", body = ErrorBody)))]
pub async fn list(State(state): State<AppState>) -> Result<axum::Json<Vec<Backup>>, ApiError> {
    let (m, _) = state.engine.repository().read_catalog().await?;
    Ok(axum::Json(m.entries.iter().map(Backup::from).collect()))
}

/// One backup.
#[utoipa::path(get, path = "/api/v1/admin/backup/{id}", tag = "backups",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The backup's id (from the list)")),
    responses(
        (status = 200, description = "The backup", body = Backup),
        (status = 401, description = "No or an unknown token", body = ErrorBody),
        (status = 404, description = "No such backup", body = ErrorBody),
        (status = 503, description = "No store's catalog could be read", body = ErrorBody)))]
pub async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<axum::Json<Backup>, ApiError> {
    let (m, _) = state.engine.repository().read_catalog().await?;
    m.entries
        .iter()
        .find(|e| e.id == id)
        .map(|e| axum::Json(Backup::from(e)))
        .ok_or_else(|| ApiError::not_found(format!("no backup {id:?} in the catalog")))
}

/// How deep a verify reads.
#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Read back and compare with the catalog.
    Checksum,
    /// Also decode and check chains, WAL holes, catalogs and schemas.
    #[default]
    Standard,
    /// Also restore and compare with recorded state roots.
    Deep,
}

/// `POST /backup/verify` options.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct VerifyQuery {
    /// `checksum`, `standard` (default) or `deep`.
    #[param(inline)]
    pub level: Option<Level>,
    /// Stop reading new artifacts after this many seconds (1–86400).
    #[param(minimum = 1, maximum = 86400)]
    pub max_duration_secs: Option<u64>,
}

/// Verifies what every store holds, as a job (damage is in the result, not an error;
/// nothing is repaired: `bindspace verify --repair` does that).
#[utoipa::path(post, path = "/api/v1/admin/backup/verify", tag = "backups",
    security(("bearer" = [])),
    params(VerifyQuery),
    responses(
        (status = 202, description = "Accepted: follow the job", body = Job),
        (status = 400, description = "A bad option", body = ErrorBody),
        (status = 401, description = "No or an unknown token", body = ErrorBody),
        (status = 403, description = "A read-only token", body = ErrorBody)))]
pub async fn verify(
    State(state): State<AppState>,
    Query(q): Query<VerifyQuery>,
) -> Result<(StatusCode, axum::Json<Job>), ApiError> {
    if let Some(s) = q.max_duration_secs
        && !(1..=86_400).contains(&s)
    {
        return Err(ApiError::bad_request("max_duration_secs is 1 to 86400"));
    }
    let level = match q.level.unwrap_or_default() {
        Level::Checksum => bindspace_dr::VerifyLevel::Checksum,
        Level::Standard => bindspace_dr::VerifyLevel::Standard,
        Level::Deep => bindspace_dr::VerifyLevel::Deep,
    };
    let engine = state.engine.clone();
    let job = state.jobs.start(&state.rt, "verify", move |r| {
        r.step(&format!("verifying at the {level} level"), 0, 1);
        let report = engine.verify_at(
            level,
            q.max_duration_secs.map(std::time::Duration::from_secs),
        )?;
        let outcome = match report.outcome() {
            bindspace_dr::Outcome::Clean => "clean",
            bindspace_dr::Outcome::DamageFound => "damage_found",
            bindspace_dr::Outcome::AllRepaired => "all_repaired",
        };
        Ok(JobResult {
            verify: Some(Verified {
                level: level.to_string(),
                outcome: outcome.into(),
                report: report.to_string(),
                finished: rfc3339(report.finished_us),
            }),
            ..JobResult::default()
        })
    });
    Ok((StatusCode::ACCEPTED, axum::Json(job)))
}

/// The jobs remembered, newest first.
#[utoipa::path(get, path = "/api/v1/admin/jobs", tag = "jobs",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The jobs", body = Vec<Job>),
        (status = 401, description = "No or an unknown token", body = ErrorBody)))]
pub async fn jobs(State(state): State<AppState>) -> axum::Json<Vec<Job>> {
    axum::Json(state.jobs.list())
}

/// One job: its state, progress and result.
#[utoipa::path(get, path = "/api/v1/admin/jobs/{id}", tag = "jobs",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The job's id (`job-N`)")),
    responses(
        (status = 200, description = "The job", body = Job),
        (status = 401, description = "No or an unknown token", body = ErrorBody),
        (status = 404, description = "No such job", body = ErrorBody)))]
pub async fn job(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<axum::Json<Job>, ApiError> {
    state.jobs.get(&id).map(axum::Json).ok_or_else(|| {
        ApiError::not_found(format!(
            "no job {id:?} (jobs are kept until 256 newer ones finish, and not across restarts)"
        ))
    })
}

/// A restore job's status (the same as `/jobs/{id}`).
#[utoipa::path(get, path = "/api/v1/admin/restore/{id}/status", tag = "restores",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The restore job's id")),
    responses(
        (status = 200, description = "The job", body = Job),
        (status = 401, description = "No or an unknown token", body = ErrorBody),
        (status = 404, description = "No such job", body = ErrorBody)))]
pub async fn restore_status(
    state: State<AppState>,
    id: Path<String>,
) -> Result<axum::Json<Job>, ApiError> {
    job(state, id).await
}
