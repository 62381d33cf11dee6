//! `cargo xtask services up|down|status`: real servers on free loopback ports, for the
//! tests: an S3-compatible server (moto), Redis, a Redis Cluster (three masters with a
//! replica each) and PostgreSQL. Each runs from a temp
//! directory, its pid is recorded under `<target>/bindspace-services/`, and
//! `services.env` holds `export` lines for a shell. Every server is started by
//! `bindspace_testkit::servers`, the same code the fault tests use for their own.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use bindspace_testkit::servers::{self, Kind, Server};

/// The bucket the tests use.
pub const BUCKET: &str = "bindspace-test";

fn state_dir() -> PathBuf {
    crate::target_dir().join("bindspace-services")
}

/// The server binaries, installed first when missing (`cargo xtask doctor`).
fn binaries() -> Result<(PathBuf, PathBuf, PathBuf)> {
    crate::doctor::doctor(&crate::doctor::services(), true)?;
    let moto = crate::doctor::moto_server_path().context("moto_server")?;
    let redis = servers::which("redis-server").context("redis-server")?;
    let pg = crate::doctor::postgres_bin_dir().context("PostgreSQL's binaries")?;
    Ok((moto, redis, pg))
}

/// Starts the services (or reuses running ones) and returns the environment the tests
/// read.
pub fn up() -> Result<Vec<(String, String)>> {
    let dir = state_dir();
    std::fs::create_dir_all(&dir)?;
    if let Some(env) = running_env()? {
        eprintln!("xtask services: already up");
        return Ok(env);
    }
    let (moto, redis_bin, pg_bin) = binaries()?;
    let s3 = Server::moto(&moto, &dir, &[BUCKET]).map_err(|e| anyhow!(e))?;
    let port = s3.port;
    let (moto_pid, _) = s3.detach();
    std::fs::write(dir.join("s3.pid"), moto_pid.to_string())?;
    let mut env = vec![
        (
            "BINDSPACE_TEST_S3_URL".to_string(),
            format!("s3://{BUCKET}"),
        ),
        (
            "BINDSPACE_MOTO_SERVER".to_string(),
            moto.display().to_string(),
        ),
        (
            "AWS_ENDPOINT".to_string(),
            format!("http://127.0.0.1:{port}"),
        ),
        ("AWS_ALLOW_HTTP".to_string(), "true".to_string()),
        ("AWS_ACCESS_KEY_ID".to_string(), "testing".to_string()),
        ("AWS_SECRET_ACCESS_KEY".to_string(), "testing".to_string()),
        ("AWS_REGION".to_string(), "us-east-1".to_string()),
    ];
    let redis = Server::redis(&redis_bin, &dir, false).map_err(|e| anyhow!(e))?;
    eprintln!(
        "xtask services: Redis (pid {}) on 127.0.0.1:{}",
        redis.pid().unwrap_or(0),
        redis.port
    );
    env.push(("BINDSPACE_TEST_REDIS_URL".into(), redis.url.clone()));
    env.push((
        "BINDSPACE_REDIS_SERVER".into(),
        redis_bin.display().to_string(),
    ));
    let (pid, _) = redis.detach();
    std::fs::write(dir.join("redis.pid"), pid.to_string())?;
    let started = Instant::now();
    let cli = servers::which("redis-cli").context("redis-cli")?;
    let cluster = bindspace_testkit::cluster::RedisCluster::start(&redis_bin, &cli, &dir)
        .map_err(|e| anyhow!(e))?;
    eprintln!(
        "xtask services: Redis Cluster (3 masters, 3 replicas) at {} in {:.1} s",
        cluster.url(),
        started.elapsed().as_secs_f64()
    );
    env.push(("BINDSPACE_TEST_REDIS_CLUSTER_URL".into(), cluster.url()));
    env.push(("BINDSPACE_REDIS_CLI".into(), cli.display().to_string()));
    let pids: Vec<String> = cluster.detach().iter().map(u32::to_string).collect();
    std::fs::write(dir.join("redis-cluster.pid"), pids.join(" "))?;
    let started = Instant::now();
    let pg = Server::postgres(&pg_bin, &dir).map_err(|e| anyhow!(e))?;
    eprintln!(
        "xtask services: PostgreSQL (pid {}) on 127.0.0.1:{} in {:.1} s",
        pg.pid().unwrap_or(0),
        pg.port,
        started.elapsed().as_secs_f64()
    );
    env.push(("BINDSPACE_TEST_PG_URL".into(), pg.url.clone()));
    env.push(("BINDSPACE_PG_BIN".into(), pg_bin.display().to_string()));
    let (pid, _) = pg.detach();
    std::fs::write(dir.join("pg.pid"), pid.to_string())?;
    let exports: String = env
        .iter()
        .map(|(k, v)| format!("export {k}={v}\n"))
        .collect();
    std::fs::write(dir.join("services.env"), &exports)?;
    eprintln!("xtask services: S3 (moto, pid {moto_pid}) on 127.0.0.1:{port}");
    Ok(env)
}

/// The environment of services that are up, if they all are.
fn running_env() -> Result<Option<Vec<(String, String)>>> {
    let dir = state_dir();
    let Ok(env) = std::fs::read_to_string(dir.join("services.env")) else {
        return Ok(None);
    };
    for name in ["s3", "redis", "pg", "redis-cluster"] {
        let pids = pids(&dir, name);
        if pids.is_empty() || !pids.iter().all(|&p| servers::pid_alive(p)) {
            return Ok(None);
        }
    }
    Ok(Some(
        env.lines()
            .filter_map(|l| l.strip_prefix("export ")?.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    ))
}

/// The pids recorded for a service (a cluster has several).
fn pids(dir: &std::path::Path, name: &str) -> Vec<u32> {
    std::fs::read_to_string(dir.join(format!("{name}.pid")))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// Stops every service by pid and removes their state.
pub fn down() -> Result<()> {
    let dir = state_dir();
    for (name, kind) in [
        ("s3", Kind::Moto),
        ("redis", Kind::Redis),
        ("redis-cluster", Kind::Redis),
        ("pg", Kind::Postgres),
    ] {
        for pid in pids(&dir, name) {
            servers::stop_pid(kind, pid);
            eprintln!("xtask services: stopped {name} (pid {pid})");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Prints what is up, and the `export` lines.
pub fn status() -> Result<()> {
    match running_env()? {
        Some(env) => {
            for (k, v) in env {
                println!("export {k}={v}");
            }
        }
        None => println!("services: down"),
    }
    Ok(())
}

/// `cargo xtask services up|down|status`.
pub fn cli(args: &[String]) -> Result<()> {
    match args.first().map(String::as_str) {
        Some("up") => {
            for (k, v) in up()? {
                println!("export {k}={v}");
            }
            Ok(())
        }
        Some("down") => down(),
        Some("status") | None => status(),
        Some(other) => bail!("unknown services command {other:?} (up, down, status)"),
    }
}
