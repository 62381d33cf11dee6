//! Probes: `/healthz` (the process answers), `/readyz` (writable, durable, backed up
//! and verified within their targets), `/api/v1/health/deep` (a small drill), and
//! `/metrics`.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;

use super::AppState;
use crate::error::{ApiError, ErrorBody};
use crate::model::{Check, Drill, Health, Ready};
use crate::time::ago;

/// The process answers.
#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, description = "Alive", body = Health)))]
pub async fn healthz() -> axum::Json<Health> {
    axum::Json(Health {
        status: "ok".into(),
    })
}

/// How long the catalog's record of backups is reused by status, probes and metrics.
const CATALOG_TTL_US: u64 = 60_000_000;

/// The engine's status, with the last backup of each kind in each store completed from
/// the catalog (backups from before the engine opened, and by other processes), read
/// at most once a minute.
pub async fn status_with_backups(state: &AppState) -> Result<bindspace::EngineStatus, ApiError> {
    let mut st = state.blocking(|e| Ok(e.status())).await?;
    let timeline = state.engine.timeline();
    let now = state.now_us();
    let mut cached = state.catalog_backups.lock().await;
    let fresh = matches!(&*cached, Some((at, _)) if now.saturating_sub(*at) < CATALOG_TTL_US);
    if !fresh {
        // an unreadable catalog keeps the last reading (or none) and is read again next time
        if let Ok((m, _)) = state.engine.repository().read_catalog().await {
            let mut last = super::LastBackups::new();
            for e in m.entries.iter().filter(|e| e.timeline == timeline) {
                for store in &e.locations {
                    let t = last
                        .entry((e.kind.name().to_owned(), store.clone()))
                        .or_default();
                    *t = (*t).max(e.end_us);
                }
            }
            *cached = Some((now, last));
        }
    }
    if let Some((_, before)) = &*cached {
        for (k, t) in before {
            let e = st.last_backup_us.entry(k.clone()).or_default();
            *e = (*e).max(*t);
        }
    }
    Ok(st)
}

/// How old the newest backup may be before the engine is not ready: twice the
/// incremental interval (at least a minute).
pub fn backup_target_us(cfg: &bindspace::BackupConfig) -> u64 {
    cfg.delta_interval_ms
        .min(cfg.full_snapshot_interval_ms)
        .saturating_mul(2_000)
        .max(60_000_000)
}

/// How far behind the WAL archive may be: ten archive intervals (at least 10 s).
pub fn archive_target_us(cfg: &bindspace::BackupConfig) -> u64 {
    cfg.archive_interval_ms
        .saturating_mul(10_000)
        .max(10_000_000)
}

/// Writable and durable, backed up, archived and verified within their targets: 200,
/// else 503 naming what is not.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses(
        (status = 200, description = "Ready", body = Ready),
        (status = 503, description = "Not ready: the checks say why", body = Ready)))]
pub async fn readyz(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let now = state.now_us();
    let cfg = state.engine.config();
    let st = status_with_backups(&state).await?;
    let mut checks = Vec::new();
    let unwritable = state.blocking(|e| Ok(e.unwritable())).await?;
    checks.push(Check {
        name: "wal".into(),
        ok: unwritable.is_none(),
        detail: unwritable.unwrap_or_else(|| "writable and durable".into()),
    });
    let target = backup_target_us(cfg);
    checks.push(match st.last_backup_us.values().max().copied() {
        Some(t) if now.saturating_sub(t) <= target => Check {
            name: "backup".into(),
            ok: true,
            detail: format!("last backup {}", ago(t, now)),
        },
        Some(t) => Check {
            name: "backup".into(),
            ok: false,
            detail: format!(
                "last backup {} (target: within {} s)",
                ago(t, now),
                target / 1_000_000
            ),
        },
        None => Check {
            name: "backup".into(),
            ok: false,
            detail: "no backup of this timeline yet".into(),
        },
    });
    let target = archive_target_us(cfg);
    checks.push(match st.archive_lag_us(now) {
        Some(lag) => Check {
            name: "archive".into(),
            ok: lag <= target,
            detail: format!(
                "the WAL archive is {:.1} s behind (target: {} s)",
                lag as f64 / 1e6,
                target / 1_000_000
            ),
        },
        None => Check {
            name: "archive".into(),
            ok: false,
            detail: "no WAL archive pass has succeeded since the engine opened".into(),
        },
    });
    checks.push(if cfg.verify_interval_ms == 0 {
        Check {
            name: "verify".into(),
            ok: true,
            detail: "background verify is off".into(),
        }
    } else {
        let target = cfg
            .verify_interval_ms
            .saturating_mul(2)
            .saturating_add(cfg.verify_max_duration_ms)
            .saturating_mul(1_000);
        // the configured level's last run (a quick checksum run does not hide what a
        // standard one found)
        let level = cfg
            .verify_level()
            .map(|l| l.to_string())
            .unwrap_or_default();
        match st.last_verify.get(&level) {
            None => Check {
                name: "verify".into(),
                ok: true,
                detail: "no background verify since the engine opened yet".into(),
            },
            Some((t, outcome)) => Check {
                name: "verify".into(),
                ok: outcome == "clean" && now.saturating_sub(*t) <= target,
                detail: format!("last verify {}: {outcome}", ago(*t, now)),
            },
        }
    });
    let ready = checks.iter().all(|c| c.ok);
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    Ok((status, axum::Json(Ready { ready, checks })))
}

/// A small drill: a canary restore point restored from every store alone and from all
/// together, checked against its recorded root. 200 when it passed, 503 when not.
#[utoipa::path(get, path = "/api/v1/health/deep", tag = "health",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Every store restored the canary", body = Drill),
        (status = 503, description = "A store could not", body = Drill),
        (status = 401, description = "No or an unknown token", body = ErrorBody),
        (status = 403, description = "A read-only token (a drill writes a canary restore point)", body = ErrorBody),
        (status = 409, description = "The engine is fenced", body = ErrorBody)))]
pub async fn deep(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let _one = state.deep.lock().await;
    let report = state
        .blocking(|e| {
            let opts = bindspace_dr::DrillOptions {
                source_timeout: std::time::Duration::from_secs(30),
                ..bindspace_dr::DrillOptions::default()
            };
            Ok(e.drill(&opts)?)
        })
        .await?;
    let status = if report.passed() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    Ok((status, axum::Json(Drill::from(&report))))
}

/// Prometheus text format.
#[utoipa::path(get, path = "/metrics", tag = "health",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Prometheus text exposition format 0.0.4", body = String, content_type = "text/plain"),
        (status = 401, description = "No or an unknown token", body = ErrorBody)))]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let st = state.engine.status();
    let text = crate::metrics::render(&st, state.now_us(), state.engine.unwritable().is_some());
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
}
