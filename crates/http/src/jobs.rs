//! Long operations as jobs: accepted at once (`202` with an id), run on the blocking
//! pool (engine calls block on the engine's runtime), two at a time, followed through
//! their progress to a result or an error. The newest [`KEPT`] jobs are remembered.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use bindspace_core::Clock;
use tokio::sync::Semaphore;

use crate::error::ApiError;
use crate::model::{Job, JobResult, Progress};
use crate::time::rfc3339;

/// Jobs remembered (finished ones beyond it are forgotten, oldest first).
pub const KEPT: usize = 256;

/// Jobs running at once (the rest wait, `queued`).
pub const RUNNING: usize = 2;

/// The server's jobs.
pub struct Jobs {
    all: Mutex<BTreeMap<u64, Job>>,
    next: std::sync::atomic::AtomicU64,
    permits: Arc<Semaphore>,
    clock: Arc<dyn Clock>,
    started_us: u64,
    closing: std::sync::atomic::AtomicBool,
}

/// What a running job reports its progress through.
pub struct Reporter {
    jobs: Arc<Jobs>,
    id: u64,
}

impl Reporter {
    /// A name no other job of any server run has: the server's start (µs) and the id,
    /// for files the job writes (ids start at 1 again after a restart).
    pub fn unique(&self) -> String {
        format!("{}-job-{}", self.jobs.started_us, self.id)
    }

    /// The job is at `step`, `done` of `total`.
    pub fn step(&self, step: &str, done: u64, total: u64) {
        self.jobs.update(self.id, |j| {
            j.progress = Progress {
                step: step.to_owned(),
                done,
                total,
            };
        });
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Jobs {
    /// No jobs yet.
    pub fn new(clock: Arc<dyn Clock>) -> Arc<Jobs> {
        Arc::new(Jobs {
            all: Mutex::new(BTreeMap::new()),
            next: std::sync::atomic::AtomicU64::new(1),
            permits: Arc::new(Semaphore::new(RUNNING)),
            started_us: clock.now_us(),
            clock,
            closing: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// The job `id` (`job-N`).
    pub fn get(&self, id: &str) -> Option<Job> {
        let n: u64 = id.strip_prefix("job-")?.parse().ok()?;
        lock(&self.all).get(&n).cloned()
    }

    /// Every remembered job, newest first.
    pub fn list(&self) -> Vec<Job> {
        lock(&self.all).values().rev().cloned().collect()
    }

    fn update(&self, id: u64, f: impl FnOnce(&mut Job)) {
        if let Some(j) = lock(&self.all).get_mut(&id) {
            f(j);
        }
    }

    /// Accepts a job of `kind` running `work` on `rt`'s blocking pool; returns it as
    /// accepted (`queued`).
    pub fn start(
        self: &Arc<Jobs>,
        rt: &tokio::runtime::Handle,
        kind: &str,
        work: impl FnOnce(&Reporter) -> Result<JobResult, ApiError> + Send + 'static,
    ) -> Job {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let job = Job {
            id: format!("job-{n}"),
            kind: kind.to_owned(),
            state: "queued".into(),
            created: rfc3339(self.clock.now_us()),
            finished: None,
            progress: Progress {
                step: "queued".into(),
                done: 0,
                total: 1,
            },
            result: None,
            error: None,
        };
        {
            let mut all = lock(&self.all);
            all.insert(n, job.clone());
            while all.len() > KEPT {
                let Some(old) = all
                    .iter()
                    .find(|(_, j)| j.finished.is_some())
                    .map(|(k, _)| *k)
                else {
                    break;
                };
                all.remove(&old);
            }
        }
        let jobs = self.clone();
        let inner = rt.clone();
        rt.spawn(async move {
            let permit = jobs.permits.clone().acquire_owned().await;
            if jobs.closing.load(std::sync::atomic::Ordering::SeqCst) {
                let now = rfc3339(jobs.clock.now_us());
                jobs.update(n, |j| {
                    j.state = "failed".into();
                    j.finished = Some(now);
                    j.error = Some(
                        ApiError::new(
                            axum::http::StatusCode::SERVICE_UNAVAILABLE,
                            "unavailable",
                            "the server stopped before the job started",
                        )
                        .detail(),
                    );
                });
                return;
            }
            jobs.update(n, |j| j.state = "running".into());
            let reporter = Reporter {
                jobs: jobs.clone(),
                id: n,
            };
            let res = inner.spawn_blocking(move || work(&reporter)).await;
            drop(permit);
            let now = rfc3339(jobs.clock.now_us());
            jobs.update(n, |j| {
                j.finished = Some(now);
                match res {
                    Ok(Ok(r)) => {
                        j.state = "succeeded".into();
                        j.progress.step = "done".into();
                        j.progress.done = j.progress.total;
                        j.result = Some(r);
                    }
                    Ok(Err(e)) => {
                        j.state = "failed".into();
                        j.error = Some(e.detail());
                    }
                    Err(e) => {
                        tracing::error!(job = n, error = %e, "job panicked");
                        j.state = "failed".into();
                        j.error = Some(
                            ApiError::new(
                                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                                "internal",
                                format!("the job stopped: {e}"),
                            )
                            .detail(),
                        );
                    }
                }
            });
        });
        job
    }

    /// Queued jobs do not start any more (the server is stopping).
    pub fn close(&self) {
        self.closing
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }
}
