//! `bindspace serve`: runs the engine on a data directory and its HTTP admin API
//! (`bindspace-http`) on the engine's runtime, until SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use bindspace::{BackupConfig, Engine};
use bindspace_http::{Listen, Shared, Tokens};

/// `bindspace serve`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The engine's data directory (created if missing).
    #[arg(long)]
    data: PathBuf,
    /// Where to listen. Off loopback it needs --tls-cert and --tls-key, or
    /// --insecure-http.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Bearer tokens, one per line: `admin TOKEN` or `read TOKEN`. Without it a random
    /// admin token is written to DATA/serve.token (mode 0600) at each start.
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// The engine's configuration (TOML; `BINDSPACE_*` variables override it).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Backup destination URL (repeatable; replaces the config's). Default: DATA/repo.
    #[arg(long = "repo", env = "BINDSPACE_REPO", value_delimiter = ',')]
    repo: Vec<String>,
    /// The repository space this engine writes (replaces the config's `space`; also
    /// `BINDSPACE_SPACE`).
    #[arg(long)]
    space: Option<String>,
    /// TLS certificate chain (PEM).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Serve plain HTTP on an address that is not loopback (tokens cross the network
    /// in the clear).
    #[arg(long)]
    insecure_http: bool,
}

pub fn run(a: &Args) -> Result<()> {
    let listen = Listen {
        addr: a.listen,
        tls: a.tls_cert.clone().zip(a.tls_key.clone()),
        insecure_http: a.insecure_http,
    };
    // refused before anything is opened or written: the address, TLS files, tokens
    listen.check()?;
    listen.acceptor()?;
    let loaded = a.token_file.as_deref().map(Tokens::load).transpose()?;
    let mut cfg = BackupConfig::load(a.config.as_deref())?;
    if !a.repo.is_empty() {
        cfg.destinations = crate::args::join_urls(&a.repo);
    }
    if let Some(space) = &a.space {
        cfg.space = space.clone();
    }
    let engine = Engine::open(&a.data, cfg)
        .with_context(|| format!("opening the engine data directory {}", a.data.display()))?;
    let tokens = match loaded {
        Some(t) => t,
        None => {
            let (t, path) = Tokens::generate(&a.data)?;
            eprintln!("bindspace serve: the admin token is in {}", path.display());
            t
        }
    };
    let engine = Arc::new(engine);
    let rt = engine.runtime_handle();
    // the handlers are in place before anyone is told where to connect
    let stop = rt.block_on(async { stop_signal() })?;
    let listener = rt
        .block_on(tokio::net::TcpListener::bind(a.listen))
        .with_context(|| format!("listening on {}", a.listen))?;
    let addr = listener.local_addr()?;
    let scheme = if listen.tls.is_some() {
        "https"
    } else {
        "http"
    };
    // where `bindspace status --data DIR` finds it (removed at stop; left by a crash,
    // it names a port nothing answers on, which status says)
    let url_file = a.data.join(bindspace_http::SERVE_URL_FILE);
    // listening everywhere: this machine reaches it on loopback
    let reach = match addr.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, addr.port()))
        }
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, addr.port()))
        }
        _ => addr,
    };
    std::fs::write(&url_file, format!("{scheme}://{reach}\n"))
        .with_context(|| format!("writing {}", url_file.display()))?;
    // the first line on stdout says where (a test or a script started on port 0 reads it)
    println!("listening on {scheme}://{addr}");
    eprintln!(
        "bindspace serve: engine at version {} on timeline {}; API at {scheme}://{addr}/api/v1/openapi.json",
        engine.version(),
        engine.timeline()
    );
    let state = Shared::new(engine.clone(), tokens);
    let res = rt.block_on(bindspace_http::serve(state, listener, &listen, stop));
    let _ = std::fs::remove_file(&url_file);
    // jobs still running hold the engine: wait for them (up to a minute), then close
    // it (a last WAL archive)
    let clock = engine.clock().clone();
    let deadline = clock.now_us() + 60_000_000;
    let mut engine = engine;
    loop {
        match Arc::try_unwrap(engine) {
            Ok(e) => {
                e.close().context("closing the engine")?;
                break;
            }
            Err(still) if clock.now_us() < deadline => {
                engine = still;
                #[allow(clippy::disallowed_methods)] // the process is stopping
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(_) => {
                eprintln!(
                    "bindspace serve: jobs still running after a minute; stopping without the last archive (the WAL keeps every write)"
                );
                break;
            }
        }
    }
    res?;
    eprintln!("bindspace serve: stopped");
    Ok(())
}

/// SIGINT or SIGTERM, with both handlers installed now (called on the runtime).
fn stop_signal() -> Result<impl std::future::Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("installing a SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing a SIGINT handler")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}
