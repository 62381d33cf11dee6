//! `GET /export`: the live space or a restored target, streamed as JSON, NDJSON, CSV
//! or Parquet (see [`crate::export`]); the version and digest are also in the
//! `x-bindspace-version` and `x-bindspace-digest` headers.

use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Deserialize;
use utoipa::IntoParams;

use super::{AppState, Query, TargetQuery};
use crate::error::{ApiError, ErrorBody};
use crate::export::{Format, Meta};

/// `GET /export` options.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// `json` (default), `ndjson`, `csv` or `parquet`.
    #[param(inline)]
    pub format: Option<Format>,
    /// As in `TargetQuery` (none: the live space now, not a restore).
    #[param(
        pattern = r"^(latest|version:(0|[1-9][0-9]{0,18})|time:([0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])|-[1-9][0-9]{0,5}[smhd]|0|[1-9][0-9]{0,17})|point:[A-Za-z0-9._:-]{1,128})$"
    )]
    pub target: Option<String>,
    /// The timeline of the target.
    #[param(minimum = 1, maximum = 2147483647)]
    pub timeline: Option<u32>,
}

/// Bytes handed to the response as they are written, 64 KiB at a time.
struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
    buf: Vec<u8>,
}

const CHUNK: usize = 64 * 1024;

impl ChannelWriter {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx.blocking_send(Ok(chunk)).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client went away")
        })
    }
}

impl std::io::Write for ChannelWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

impl Drop for ChannelWriter {
    fn drop(&mut self) {
        let _ = self.send();
    }
}

/// One row per occupied address of the live space (no target given) or of a restored
/// target, streamed in constant memory.
#[utoipa::path(get, path = "/api/v1/admin/export", tag = "restores",
    security(("bearer" = [])),
    params(ExportQuery),
    responses(
        (status = 200, description = "The rows; the version and digest are in the file's metadata and the x-bindspace-version and x-bindspace-digest headers",
            content(
                (crate::model::ExportJson = "application/json"),
                (String = "application/x-ndjson"),
                (String = "text/csv"),
                (Vec<u8> = "application/vnd.apache.parquet"))),
        (status = 400, description = "A bad format or target", body = ErrorBody),
        (status = 503, description = "Two exports are running, or no store could be read", body = ErrorBody),
        (status = 401, description = "No or an unknown token", body = ErrorBody),
        (status = 404, description = "The stores cannot restore that target", body = ErrorBody),
))]
pub async fn export(
    State(state): State<AppState>,
    Query(q): Query<ExportQuery>,
) -> Result<Response, ApiError> {
    let format = q.format.unwrap_or(Format::Json);
    let tq = TargetQuery {
        target: q.target,
        timeline: q.timeline,
    };
    // live only when nothing names a state: a timeline alone restores its newest
    let live = !tq.named() && tq.timeline.is_none();
    let permit = state.exports.clone().try_acquire_owned().map_err(|_| {
        ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            "two exports are running (each holds a copy of a space): retry when one ends",
        )
    })?;
    let target = tq.target(state.now_us())?;
    let timeline = tq.timeline(&target, &state.engine)?;
    let rt = state.rt.clone();
    let (space, meta, verified) = state
        .blocking(move |e| {
            if live {
                let space = e.read(|s| s.clone());
                let meta = Meta::of(&space, e.timeline());
                return Ok((space, meta, "live".to_owned()));
            }
            let (space, plan, verified) = rt
                .block_on(async {
                    let plan =
                        bindspace_pitr::plan_on(e.repository().destinations(), &target, timeline)
                            .await?;
                    let (space, v) = bindspace_pitr::restore_verified(&plan).await?;
                    Ok::<_, bindspace_pitr::Error>((space, plan, v))
                })
                .map(|(space, plan, v)| {
                    let verified = if v.is_verified() {
                        "verified"
                    } else {
                        "unverified"
                    };
                    (space, plan, verified.to_owned())
                })?;
            let meta = Meta::of(&space, plan.timeline);
            Ok((space, meta, verified))
        })
        .await?;
    let (tx, mut rx) = tokio::sync::mpsc::channel(8);
    let headers = [
        (header::CONTENT_TYPE, format.content_type().to_owned()),
        (
            header::HeaderName::from_static("x-bindspace-version"),
            meta.version.to_string(),
        ),
        (
            header::HeaderName::from_static("x-bindspace-digest"),
            meta.digest.clone(),
        ),
        // `live`, or whether the restored state's root matched one recorded for it
        (
            header::HeaderName::from_static("x-bindspace-verified"),
            verified,
        ),
    ];
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let w = ChannelWriter {
            tx: tx.clone(),
            buf: Vec::with_capacity(CHUNK),
        };
        if let Err(e) = crate::export::write(&space, &meta, format, w) {
            tracing::warn!(error = %e, "export stopped");
            let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
        }
    });
    let stream = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
    Ok((headers, Body::from_stream(stream)).into_response())
}
