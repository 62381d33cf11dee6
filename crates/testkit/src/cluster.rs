//! A Redis Cluster on loopback, for tests and `cargo xtask services`: three masters
//! with one replica each (`redis-server --cluster-enabled yes`, node timeout 2 s,
//! joined by `redis-cli --cluster create --cluster-replicas 1`), each node a
//! [`Server`] in its own directory, stopped by pid (also when dropped).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::servers::{Server, ServerResult};

/// The cluster's node timeout: how long a master may be unreachable before its replica
/// takes over (`cluster-node-timeout`).
pub const NODE_TIMEOUT_MS: u64 = 2000;

/// A running Redis Cluster (see the module docs).
#[derive(Debug)]
pub struct RedisCluster {
    /// Its nodes; which are masters changes with failovers ([`RedisCluster::master_of`]).
    pub nodes: Vec<Server>,
    cli: PathBuf,
}

impl RedisCluster {
    /// Starts six nodes under `parent` (`server`: `redis-server`, `cli`: `redis-cli`)
    /// and joins them into three masters with a replica each; returns once every slot
    /// is served.
    pub fn start(server: &Path, cli: &Path, parent: &Path) -> ServerResult<RedisCluster> {
        let mut nodes = Vec::with_capacity(6);
        for _ in 0..6 {
            nodes.push(Server::redis_cluster_node(server, parent, NODE_TIMEOUT_MS)?);
        }
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let c = RedisCluster {
            nodes,
            cli: cli.to_path_buf(),
        };
        let out = Command::new(&c.cli)
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("running {}: {e}", c.cli.display()))?;
        if !out.status.success() {
            return Err(format!(
                "redis-cli --cluster create failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        c.wait_ok(Duration::from_secs(60))?;
        c.wait_replicas(Duration::from_secs(60))?;
        Ok(c)
    }

    /// Waits until every running master has a replica in sync (`connected_slaves` at
    /// least 1, the link online): before that, a write that waits for a replica's
    /// acknowledgement (`WAIT 1`) cannot get one.
    pub fn wait_replicas(&self, within: Duration) -> ServerResult<()> {
        let deadline = Instant::now() + within;
        loop {
            let mut lagging = None;
            for i in 0..self.nodes.len() {
                if self.nodes[i].pid().is_none() {
                    continue;
                }
                let info = self.cli(i, &["INFO", "replication"])?;
                if info.contains("role:master")
                    && !info
                        .lines()
                        .any(|l| l.starts_with("slave0:") && l.contains("state=online"))
                {
                    lagging = Some(info);
                }
            }
            match lagging {
                None => return Ok(()),
                Some(info) if Instant::now() > deadline => {
                    return Err(format!(
                        "a master has no replica in sync after {within:?}: {info}"
                    ));
                }
                Some(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// Waits until a node other than `old` is master of `key`'s slot and the cluster is
    /// ok again (after `old` was killed: the failure is noticed after the node timeout,
    /// then a replica is elected).
    pub fn wait_failover(&self, key: &str, old: usize, within: Duration) -> ServerResult<usize> {
        let deadline = Instant::now() + within;
        loop {
            match self.master_of(key) {
                Ok(m) if m != old => {
                    self.wait_ok(deadline.saturating_duration_since(Instant::now()))?;
                    return Ok(m);
                }
                _ if Instant::now() > deadline => {
                    return Err(format!("no replica took over {key:?} within {within:?}"));
                }
                _ => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// `redis+cluster://` naming every node (the client needs only one alive).
    pub fn url(&self) -> String {
        let nodes: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        format!("redis+cluster://{}", nodes.join(","))
    }

    /// Runs `redis-cli` against node `i` with `args` (`-c`: following redirects);
    /// its standard output.
    pub fn cli(&self, i: usize, args: &[&str]) -> ServerResult<String> {
        let out = Command::new(&self.cli)
            .args(["-c", "-p", &self.nodes[i].port.to_string()])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("running {}: {e}", self.cli.display()))?;
        if !out.status.success() {
            return Err(format!(
                "redis-cli {args:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// A node that is running (for questions about the cluster).
    fn live(&self) -> ServerResult<usize> {
        (0..self.nodes.len())
            .find(|&i| self.nodes[i].pid().is_some())
            .ok_or_else(|| "no node of the cluster is running".to_owned())
    }

    /// Waits until every running node says the cluster is ok with all 16,384 slots
    /// served (after creation, a failover or a restart).
    pub fn wait_ok(&self, within: Duration) -> ServerResult<()> {
        let deadline = Instant::now() + within;
        let mut last = String::new();
        loop {
            let ok = (0..self.nodes.len())
                .filter(|&i| self.nodes[i].pid().is_some())
                .all(|i| match self.cli(i, &["CLUSTER", "INFO"]) {
                    Ok(info) => {
                        let good = info.contains("cluster_state:ok")
                            && info.contains("cluster_slots_ok:16384");
                        if !good {
                            last = info;
                        }
                        good
                    }
                    Err(e) => {
                        last = e;
                        false
                    }
                });
            if ok {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "the cluster was not ok within {within:?}; last: {last}"
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The node that is master of `key`'s slot now.
    pub fn master_of(&self, key: &str) -> ServerResult<usize> {
        let live = self.live()?;
        let slot: u16 = self
            .cli(live, &["CLUSTER", "KEYSLOT", key])?
            .trim()
            .parse()
            .map_err(|e| format!("CLUSTER KEYSLOT: {e}"))?;
        let nodes = self.cli(live, &["CLUSTER", "NODES"])?;
        for line in nodes.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 8 || !f[2].contains("master") || f[2].contains("fail") {
                continue;
            }
            let serves = f[8..].iter().any(|r| {
                let (a, b) = r.split_once('-').unwrap_or((r, r));
                matches!((a.parse::<u16>(), b.parse::<u16>()), (Ok(a), Ok(b)) if a <= slot && slot <= b)
            });
            if !serves {
                continue;
            }
            let port: u16 = f[1]
                .split('@')
                .next()
                .and_then(|a| a.rsplit(':').next())
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| format!("CLUSTER NODES: bad address in {line:?}"))?;
            return self
                .nodes
                .iter()
                .position(|n| n.port == port)
                .ok_or_else(|| format!("port {port} is not one of this cluster's nodes"));
        }
        Err(format!("no live master serves slot {slot}"))
    }

    /// Leaves every node running after this handle is dropped (`cargo xtask services
    /// up`); their pids, to stop them later.
    pub fn detach(self) -> Vec<u32> {
        self.nodes.into_iter().map(|n| n.detach().0).collect()
    }
}
