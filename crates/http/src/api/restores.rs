//! Restores: into a snapshot file under the data directory (a job, planned first so
//! an unrestorable target is refused at once), how one would run (explain), and one
//! address as of a target (flashback read).

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use bindspace_core::snapshot;
use bindspace_pitr::Target;
use serde::Deserialize;
use utoipa::IntoParams;

use super::{AppState, Json, Query, TargetQuery};
use crate::error::{ApiError, ErrorBody};
use crate::model::{AsOf, Explain, Job, JobResult, Restored, Step};

/// Plans `q` over the engine's stores: a target that cannot be restored is refused
/// here, before any job.
async fn plan(
    state: &AppState,
    q: &TargetQuery,
) -> Result<(Target, bindspace_pitr::RestorePlan), ApiError> {
    let target = q.target(state.now_us())?;
    let timeline = q.timeline(&target, &state.engine)?;
    let plan = bindspace_pitr::plan_on(state.engine.repository().destinations(), &target, timeline)
        .await?;
    Ok((target, plan))
}

/// The directory restores write to.
pub const RESTORES: &str = "restores";

/// Restores a version, time or restore point into `DATA/restores/JOB.snap` (with
/// `JOB.snap.origin`), as a job; the running engine's own space is not touched. An
/// engine started on that file as its `checkpoint.snap` continues from it on a new
/// timeline (`bindspace rewind` does this for a stopped engine in place).
#[utoipa::path(post, path = "/api/v1/admin/restore", tag = "restores",
    security(("bearer" = [])),
    request_body = TargetQuery,
    responses(
        (status = 202, description = "Accepted: follow /restore/{id}/status", body = Job),
        (status = 400, description = "A bad target", body = ErrorBody),
        (status = 401, description = "No or an unknown token", body = ErrorBody),
        (status = 403, description = "A read-only token", body = ErrorBody),
        (status = 413, description = "The body is too large", body = ErrorBody),
        (status = 415, description = "The body is not JSON", body = ErrorBody),
        (status = 404, description = "The stores cannot restore that target: the message says why and what is nearest", body = ErrorBody),
        (status = 503, description = "No store could be read", body = ErrorBody)))]
pub async fn restore(
    State(state): State<AppState>,
    Json(q): Json<TargetQuery>,
) -> Result<(StatusCode, axum::Json<Job>), ApiError> {
    let (target, plan) = plan(&state, &q).await?;
    let rt = state.rt.clone();
    let dir = state.engine.data_dir().join(RESTORES);
    let clock = state.engine.clock().clone();
    let job = state.jobs.start(&state.rt, "restore", move |r| {
        let started = clock.now_us();
        r.step("fetching and replaying", 0, 2);
        let (space, verification) = rt.block_on(bindspace_pitr::restore_verified(&plan))?;
        r.step("writing the snapshot", 1, 2);
        std::fs::create_dir_all(&dir)
            .map_err(|e| ApiError::from(crate::Error::Export(format!("{}: {e}", dir.display()))))?;
        let path = dir.join(format!("{}.snap", r.unique()));
        let bytes = snapshot::encode(&space, 0);
        bindspace_wal::fsio::write_atomic_bytes(&path, &bytes).map_err(|e| {
            ApiError::from(crate::Error::Export(format!("{}: {e}", path.display())))
        })?;
        let repository_id = plan
            .sources()
            .stores()
            .iter()
            .find_map(|s| rt.block_on(s.read_manifest()).ok().flatten())
            .and_then(|(_, m)| m.repository_id);
        bindspace::Origin::of_restore(repository_id, &plan, &verification).write(&path)?;
        Ok(JobResult {
            restore: Some(Restored {
                target: target.to_string(),
                timeline: plan.timeline,
                version: space.version(),
                addresses: space.len() as u64,
                digest: space.digest().to_string(),
                root: verification.root.to_string(),
                verified: verification.is_verified(),
                verification: verification.to_string(),
                fetched_bytes: plan.estimated_bytes,
                file: path.display().to_string(),
                took_ms: Duration::from_micros(clock.now_us().saturating_sub(started)).as_millis()
                    as u64,
            }),
            ..JobResult::default()
        })
    });
    Ok((StatusCode::ACCEPTED, axum::Json(job)))
}

fn step(s: &bindspace_pitr::Step) -> Step {
    Step {
        artifact: s.artifact.id.to_string(),
        timeline: s.artifact.id.timeline(),
        bytes: s.artifact.len,
        stores: s.stores.clone(),
    }
}

/// How a restore would run: the full, the deltas, the WAL, the bytes; nothing fetched.
#[utoipa::path(get, path = "/api/v1/admin/explain", tag = "restores",
    security(("bearer" = [])),
    params(TargetQuery),
    responses(
        (status = 200, description = "The plan", body = Explain),
        (status = 400, description = "A bad target", body = ErrorBody),
        (status = 401, description = "No or an unknown token", body = ErrorBody),
        (status = 404, description = "The stores cannot restore that target: the message says why and what is nearest", body = ErrorBody),
        (status = 503, description = "No store could be read", body = ErrorBody)))]
pub async fn explain(
    State(state): State<AppState>,
    Query(q): Query<TargetQuery>,
) -> Result<axum::Json<Explain>, ApiError> {
    let (target, p) = plan(&state, &q).await?;
    Ok(axum::Json(Explain {
        target: target.to_string(),
        timeline: p.timeline,
        version: p.version,
        full: step(&p.base),
        deltas: p.deltas.iter().map(step).collect(),
        wal: p.wal.iter().map(step).collect(),
        estimated_bytes: p.estimated_bytes,
        unavailable: p.unavailable.clone(),
        text: p.to_string(),
    }))
}

/// `GET /as-of`: an address and a target.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AsOfQuery {
    /// The address: `0a:01`, `0a01`, `0x0a01` or decimal `2561`.
    #[param(
        pattern = r"^([0-9a-fA-F]{2}:[0-9a-fA-F]{2}|0[xX][0-9a-fA-F]{4}|0[0-9a-fA-F]{3}|[a-fA-F][0-9a-fA-F]{3}|0|[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])$"
    )]
    pub addr: String,
    /// As in [`TargetQuery`].
    #[param(
        pattern = r"^(latest|version:(0|[1-9][0-9]{0,18})|time:([0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])|-[1-9][0-9]{0,5}[smhd]|0|[1-9][0-9]{0,17})|point:[A-Za-z0-9._:-]{1,128})$"
    )]
    pub target: Option<String>,
    /// The timeline (history).
    #[param(minimum = 1, maximum = 2147483647)]
    pub timeline: Option<u32>,
}

/// One address as of a target, without a full restore.
#[utoipa::path(get, path = "/api/v1/admin/as-of", tag = "restores",
    security(("bearer" = [])),
    params(AsOfQuery),
    responses(
        (status = 200, description = "The address then", body = AsOf),
        (status = 400, description = "A bad address or target", body = ErrorBody),
        (status = 401, description = "No or an unknown token", body = ErrorBody),
        (status = 404, description = "The stores cannot restore that target: the message says why and what is nearest", body = ErrorBody),
        (status = 503, description = "No store could be read", body = ErrorBody)))]
pub async fn as_of(
    State(state): State<AppState>,
    Query(q): Query<AsOfQuery>,
) -> Result<axum::Json<AsOf>, ApiError> {
    let addr = crate::addr::parse_addr(&q.addr).map_err(ApiError::bad_request)?;
    let tq = TargetQuery {
        target: q.target,
        timeline: q.timeline,
    };
    let target = tq.target(state.now_us())?;
    let timeline = tq.timeline(&target, &state.engine)?;
    // a base, its deltas and the WAL are decoded: on the blocking pool
    let rt = state.rt.clone();
    let t = target.clone();
    let v = state
        .blocking(move |e| {
            Ok(rt.block_on(bindspace_pitr::as_of(
                e.repository().destinations(),
                addr,
                &t,
                timeline,
            ))?)
        })
        .await?;
    Ok(axum::Json(AsOf {
        addr: addr.to_string(),
        target: target.to_string(),
        fingerprint: v.as_deref().map(crate::export::fingerprint_hex),
    }))
}
