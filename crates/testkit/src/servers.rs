//! Real servers on free loopback ports, for tests and `cargo xtask services`: Redis,
//! PostgreSQL and an S3-compatible server (moto), each in its own temp directory,
//! stopped by pid when dropped (unless [detached](Server::detach)). Synchronous on
//! purpose: usable from xtask and from any test. The one implementation: xtask and the
//! fault tests start their servers here.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A failure to start or stop a server, with what was tried.
pub type ServerResult<T> = std::result::Result<T, String>;

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> ServerResult<u16> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

/// Waits until something accepts connections on `port`.
pub fn wait_for_port(port: u16, what: &str, within: Duration) -> ServerResult<()> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!(
        "{what} did not start listening on 127.0.0.1:{port} within {within:?}"
    ))
}

/// `bin` on the `PATH`, if there.
pub fn which(bin: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(bin))
            .find(|p| p.is_file())
    })
}

/// The directory holding PostgreSQL's server binaries (`initdb`, `pg_ctl`): the newest
/// under `/usr/lib/postgresql/*/bin`, else wherever `pg_ctl` is on the `PATH`.
pub fn postgres_bin_dir() -> Option<PathBuf> {
    let mut dirs: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| {
            let e = e.ok()?;
            let major = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("pg_ctl").is_file().then_some((major, bin))
        })
        .collect();
    dirs.sort();
    dirs.pop()
        .map(|(_, d)| d)
        .or_else(|| which("pg_ctl").and_then(|p| p.parent().map(Path::to_path_buf)))
}

fn is_root() -> bool {
    // /proc/self/status carries the effective uid on Linux.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

fn run(cmd: &mut Command, what: &str) -> ServerResult<()> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{what}: could not run {cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn kill(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .args([signal, &pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

/// Whether `pid` is a live process (not a zombie).
pub fn pid_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| s.contains(") Z "))
            .unwrap_or(true)
}

/// Which server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `redis-server`.
    Redis,
    /// PostgreSQL via `pg_ctl`.
    Postgres,
    /// moto's S3-compatible server (`moto_server`), holding everything in memory.
    Moto,
}

/// A running server. Dropping it stops it, unless detached.
#[derive(Debug)]
pub struct Server {
    /// Which.
    pub kind: Kind,
    /// Loopback port.
    pub port: u16,
    /// Its private directory.
    pub dir: PathBuf,
    /// Its URL (`redis://127.0.0.1:PORT`, `postgresql://postgres@127.0.0.1:PORT/postgres`,
    /// `http://127.0.0.1:PORT` for moto's S3 endpoint).
    pub url: String,
    bin: PathBuf,
    pid: Option<u32>,
    owns_dir: bool,
    detached: bool,
    persistent: bool,
    buckets: Vec<String>,
    /// More arguments of the server's command line (a cluster node's).
    extra_args: Vec<String>,
}

impl Server {
    /// A server of `kind` not started yet, on a free port in a fresh directory under
    /// `parent`; `url` makes its URL from the port.
    fn unstarted(
        kind: Kind,
        bin: &Path,
        parent: &Path,
        url: impl Fn(u16) -> String,
    ) -> ServerResult<Server> {
        let port = free_port()?;
        let name = match kind {
            Kind::Redis => "redis",
            Kind::Postgres => "pg",
            Kind::Moto => "s3",
        };
        Ok(Server {
            kind,
            port,
            url: url(port),
            dir: fresh_dir(parent, name)?,
            bin: bin.to_path_buf(),
            pid: None,
            owns_dir: true,
            detached: false,
            persistent: kind == Kind::Postgres,
            buckets: Vec::new(),
            extra_args: Vec::new(),
        })
    }

    /// Starts `redis-server` (`bin`) on a free port in a fresh directory under `parent`.
    /// `persistent` turns on the append-only file with fsync on every write, so data
    /// survives `kill -9` and a restart; otherwise nothing is saved (the fast default).
    pub fn redis(bin: &Path, parent: &Path, persistent: bool) -> ServerResult<Server> {
        let mut s = Server::unstarted(Kind::Redis, bin, parent, |p| {
            format!("redis://127.0.0.1:{p}")
        })?;
        s.persistent = persistent;
        s.start()?;
        Ok(s)
    }

    /// Starts `redis-server` as a Redis Cluster node (`--cluster-enabled yes`, node
    /// timeout `node_timeout_ms`, its `nodes.conf` in its directory), with the
    /// append-only file so a restarted node comes back with its data. Not part of a
    /// cluster until [`crate::cluster::RedisCluster`] joins it.
    pub fn redis_cluster_node(
        bin: &Path,
        parent: &Path,
        node_timeout_ms: u64,
    ) -> ServerResult<Server> {
        let mut s = Server::unstarted(Kind::Redis, bin, parent, |p| {
            format!("redis://127.0.0.1:{p}")
        })?;
        s.persistent = true;
        s.extra_args = [
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            &node_timeout_ms.to_string(),
            // a replica that was cut off long still takes over a dead master
            "--cluster-replica-validity-factor",
            "0",
        ]
        .map(String::from)
        .to_vec();
        s.start()?;
        Ok(s)
    }

    /// Initialises a PostgreSQL cluster (`initdb -A trust`, as the `postgres` user when
    /// running as root) in a fresh directory under `parent`, and starts it on a free
    /// port, listening on 127.0.0.1 only.
    pub fn postgres(bin_dir: &Path, parent: &Path) -> ServerResult<Server> {
        let mut s = Server::unstarted(Kind::Postgres, bin_dir, parent, |p| {
            format!("postgresql://postgres@127.0.0.1:{p}/postgres")
        })?;
        let dir = s.dir.clone();
        if is_root() {
            // initdb refuses root; the data directory must belong to the server's user.
            run(
                Command::new("chown")
                    .args(["-R", "postgres:postgres"])
                    .arg(&dir),
                "chown the data directory to postgres",
            )?;
            // the user must be able to reach the directory
            let mut p = dir.parent();
            while let Some(d) = p {
                let _ = Command::new("chmod").arg("o+x").arg(d).status();
                p = d.parent();
            }
        }
        let data = dir.join("data");
        run(
            as_pg_user(&bin_dir.join("initdb"))
                .args([
                    "-A",
                    "trust",
                    "-U",
                    "postgres",
                    "--no-sync",
                    "-E",
                    "UTF8",
                    "-D",
                ])
                .arg(&data),
            "initdb",
        )?;
        s.start()?;
        Ok(s)
    }

    /// Starts `moto_server` (`bin`) on a free port in a fresh directory under `parent`
    /// and creates each of `buckets`. moto keeps everything in memory: a restart (after
    /// [`Server::kill`]) comes back empty, with the buckets created again.
    pub fn moto(bin: &Path, parent: &Path, buckets: &[&str]) -> ServerResult<Server> {
        let mut s =
            Server::unstarted(Kind::Moto, bin, parent, |p| format!("http://127.0.0.1:{p}"))?;
        s.buckets = buckets.iter().map(|b| b.to_string()).collect();
        s.start()?;
        Ok(s)
    }

    /// (Re)starts the server on the same port and directory (after [`Server::kill`] or
    /// [`Server::stop_immediate`]).
    pub fn start(&mut self) -> ServerResult<()> {
        match self.kind {
            Kind::Redis => {
                let log = std::fs::File::create(self.dir.join("redis.log"))
                    .map_err(|e| format!("redis log: {e}"))?;
                let mut cmd = Command::new(&self.bin);
                cmd.args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
                    .args(["--save", ""])
                    .arg("--dir")
                    .arg(&self.dir);
                if self.persistent {
                    cmd.args(["--appendonly", "yes", "--appendfsync", "always"]);
                } else {
                    cmd.args(["--appendonly", "no"]);
                }
                cmd.args(&self.extra_args);
                self.spawn(cmd, log)?;
                wait_for_port(self.port, "redis-server", Duration::from_secs(20))
            }
            Kind::Postgres => {
                let data = self.dir.join("data");
                // max_connections: twenty engines with their pools share one server
                // in the many-spaces tests
                let opts = format!(
                    "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300",
                    self.port,
                    self.dir.display()
                );
                run(
                    as_pg_user(&self.bin.join("pg_ctl"))
                        .args(["-w", "-t", "60", "-D"])
                        .arg(&data)
                        .arg("-l")
                        .arg(self.dir.join("pg.log"))
                        .args(["-o", &opts, "start"]),
                    "pg_ctl start",
                )?;
                let pid = std::fs::read_to_string(data.join("postmaster.pid"))
                    .ok()
                    .and_then(|s| s.lines().next()?.trim().parse().ok());
                self.pid = pid;
                wait_for_port(self.port, "postgres", Duration::from_secs(30))
            }
            Kind::Moto => {
                let log = std::fs::File::create(self.dir.join("moto.log"))
                    .map_err(|e| format!("moto log: {e}"))?;
                let mut cmd = Command::new(&self.bin);
                cmd.args(["-H", "127.0.0.1", "-p", &self.port.to_string()])
                    .current_dir(&self.dir);
                self.spawn(cmd, log)?;
                wait_for_port(self.port, "moto_server", Duration::from_secs(30))?;
                for b in &self.buckets {
                    // a loaded machine: moto may accept connections before it serves
                    let mut tries = 0;
                    while let Err(e) = create_bucket(self.port, b) {
                        tries += 1;
                        if tries == 20 || !self.pid.is_some_and(pid_alive) {
                            let log = std::fs::read_to_string(self.dir.join("moto.log"))
                                .unwrap_or_default();
                            return Err(format!("{e} (after {tries} tries); moto.log: {log}"));
                        }
                        std::thread::sleep(Duration::from_millis(250));
                    }
                }
                Ok(())
            }
        }
    }

    /// Starts `cmd` with its output in `log`, tracked by pid (whoever waits reaps it).
    fn spawn(&mut self, mut cmd: Command, log: std::fs::File) -> ServerResult<()> {
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("starting {}: {e}", self.bin.display()))?;
        self.pid = Some(child.id());
        std::mem::forget(child);
        Ok(())
    }

    /// `SIGSTOP`: the server freezes (connections hang) until [`Server::thaw`].
    pub fn freeze(&self) {
        if let Some(pid) = self.pid {
            kill(pid, "-STOP");
        }
    }

    /// `SIGCONT` after [`Server::freeze`].
    pub fn thaw(&self) {
        if let Some(pid) = self.pid {
            kill(pid, "-CONT");
        }
    }

    /// The server's main pid.
    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// `kill -9`: the server dies mid-whatever.
    pub fn kill(&mut self) {
        if let Some(pid) = self.pid.take() {
            kill(pid, "-KILL");
            let deadline = Instant::now() + Duration::from_secs(10);
            while pid_alive(pid) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// PostgreSQL's `pg_ctl stop -m immediate` (a crash as far as the server is
    /// concerned; recovery runs at the next start). For Redis and moto, `kill -9`.
    pub fn stop_immediate(&mut self) -> ServerResult<()> {
        match self.kind {
            Kind::Redis | Kind::Moto => {
                self.kill();
                Ok(())
            }
            Kind::Postgres => {
                self.pid = None;
                run(
                    as_pg_user(&self.bin.join("pg_ctl"))
                        .args(["-w", "-m", "immediate", "-D"])
                        .arg(self.dir.join("data"))
                        .arg("stop"),
                    "pg_ctl stop -m immediate",
                )
            }
        }
    }

    /// Leaves the server running after this handle is dropped (for `cargo xtask
    /// services up`); stop it later by [`Server::pid`].
    pub fn detach(mut self) -> (u32, PathBuf) {
        self.detached = true;
        (self.pid.unwrap_or(0), self.dir.clone())
    }

    fn stop(&mut self) {
        match self.kind {
            Kind::Redis | Kind::Moto => {
                if let Some(pid) = self.pid.take() {
                    kill(pid, "-CONT"); // a frozen server cannot act on SIGTERM
                    kill(pid, "-TERM");
                    let deadline = Instant::now() + Duration::from_secs(5);
                    while pid_alive(pid) && Instant::now() < deadline {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    kill(pid, "-KILL");
                }
            }
            Kind::Postgres => {
                if self.pid.take().is_some() {
                    let _ = self.stop_immediate();
                }
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.detached {
            return;
        }
        self.stop();
        if self.owns_dir {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Stops a detached server by its recorded pid: SIGTERM (Redis, moto) or SIGINT
/// (PostgreSQL's fast shutdown), then SIGKILL after 10 s.
pub fn stop_pid(kind: Kind, pid: u32) {
    kill(pid, "-CONT");
    kill(
        pid,
        if kind == Kind::Postgres {
            "-INT"
        } else {
            "-TERM"
        },
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while pid_alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    if pid_alive(pid) {
        kill(pid, "-KILL");
    }
}

fn as_pg_user(bin: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin);
        c
    } else {
        Command::new(bin)
    }
}

fn fresh_dir(parent: &Path, name: &str) -> ServerResult<PathBuf> {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let d = parent.join(format!("{name}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).map_err(|e| format!("creating {}: {e}", d.display()))?;
    Ok(d)
}

/// Creates a bucket on an S3 server that needs no signature (moto).
pub fn create_bucket(port: u16, bucket: &str) -> ServerResult<()> {
    use std::io::{Read, Write};
    let fail = |e: std::io::Error| format!("creating bucket {bucket} on 127.0.0.1:{port}: {e}");
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(fail)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(fail)?;
    write!(
        s,
        "PUT /{bucket} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .map_err(fail)?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).map_err(fail)?;
    if !resp.starts_with("HTTP/1.1 200") && !resp.starts_with("HTTP/1.0 200") {
        return Err(format!(
            "creating bucket {bucket} failed: {}",
            resp.lines().next().unwrap_or("")
        ));
    }
    Ok(())
}
