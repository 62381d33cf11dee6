//! Restore drills through the running engine: a canary restore point written and
//! archived to every store, then `bindspace_dr::drill` restoring it from each store
//! alone and from all together (RTO, RPO, is the sentinel there?).

use bindspace_dr::{DrillOptions, DrillReport, Sentinel};

use crate::engine::lock;
use crate::{Engine, Result};

impl Engine {
    /// Runs a restore drill with a canary: a sentinel restore point (`drill-<time>`)
    /// at the current state, its WAL archived to every store, restored from each store
    /// alone and from all together, checked against the root recorded for it, timed
    /// (RTO) and measured against now (RPO). The sentinel is dropped afterwards; the
    /// report is kept in every store's catalog. Writers keep writing meanwhile.
    pub fn drill(&self, opts: &DrillOptions) -> Result<DrillReport> {
        let created_us = self.clock().now_us();
        let name = format!("drill-{created_us}");
        let version = self.restore_point(&name, false)?;
        let report = self.drill_from(&name, version, created_us, opts);
        // the canary served (or the drill could not run); dropped on every path, and a
        // failure to drop it leaves an ordinary restore point
        if let Err(e) = self
            .inner_runtime()
            .block_on(self.repository().drop_restore_point(&name))
        {
            tracing::warn!(point = %name, error = %e, "drill sentinel not dropped");
        }
        // a drill that could not run counts as failed (an alert on the last drill
        // must not keep reading an older pass)
        let summary = match &report {
            Ok(r) => crate::engine::DrillSummary {
                finished_us: self.clock().now_us(),
                rto_ms: r.runs.iter().map(|x| x.rto_ms).max().unwrap_or(0),
                rpo_ms: r.runs.iter().filter_map(|x| x.rpo_ms).max(),
                passed: r.passed(),
            },
            Err(_) => crate::engine::DrillSummary {
                finished_us: self.clock().now_us(),
                rto_ms: 0,
                rpo_ms: None,
                passed: false,
            },
        };
        lock(self.inner_status()).last_drill = Some(summary);
        report
    }

    fn drill_from(
        &self,
        name: &str,
        version: u64,
        created_us: u64,
        opts: &DrillOptions,
    ) -> Result<DrillReport> {
        // the repository holds it once the WAL holding it is archived everywhere
        self.archive_now()?;
        let rt = self.inner_runtime();
        let repo = self.repository();
        let m = rt.block_on(repo.manifest())?;
        let root = m
            .restore_points
            .iter()
            .find(|p| p.name == name)
            .and_then(|p| p.root.clone())
            .unwrap_or_default();
        let sentinel = Sentinel {
            name: name.to_owned(),
            version,
            timeline: self.timeline(),
            root,
            created_us,
        };
        Ok(rt.block_on(bindspace_dr::drill(
            repo,
            self.clock().as_ref(),
            opts,
            Some(sentinel),
        ))?)
    }
}
