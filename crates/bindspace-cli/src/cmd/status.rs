//! `bindspace status`: a running engine's state, lags and last backup, verify and drill,
//! asked over the HTTP admin API of `bindspace serve` (the URL and token from the data
//! directory, or given).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use bindspace_http::model::Status;

use crate::output::{emit_serialized, table};

/// `bindspace status`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The data directory of a running `bindspace serve`: its URL and generated token
    /// are read from DATA/serve.url and DATA/serve.token.
    #[arg(long)]
    data: Option<PathBuf>,
    /// The API's base URL (instead of DATA/serve.url); default $BINDSPACE_URL when
    /// there is no --data.
    #[arg(long)]
    url: Option<String>,
    /// A file holding the token (alone, or as an `admin TOKEN` / `read TOKEN` line).
    /// Default: DATA/serve.token when the URL came from --data, else $BINDSPACE_TOKEN
    /// (a token found in a data directory never goes to another server).
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// A CA certificate (PEM) to trust for an https URL with a private certificate.
    #[arg(long)]
    cacert: Option<PathBuf>,
    /// Machine-readable output (the API's status document).
    #[arg(long)]
    json: bool,
}

/// Where the URL came from decides where the token may come from.
enum UrlFrom {
    Flag,
    Data(PathBuf),
    Env,
}

pub fn run(a: &Args) -> Result<()> {
    let env_url = std::env::var("BINDSPACE_URL")
        .ok()
        .filter(|u| !u.is_empty());
    let (url, from) = match (&a.url, &a.data, env_url) {
        (Some(u), _, _) => (u.clone(), UrlFrom::Flag),
        (None, Some(d), _) => {
            let f = d.join(bindspace_http::SERVE_URL_FILE);
            let u = std::fs::read_to_string(&f).map_err(|e| {
                anyhow::anyhow!(
                    "no engine is serving {} ({}: {e}): start `bindspace serve --data {}`, or give --url",
                    d.display(),
                    f.display(),
                    d.display()
                )
            })?;
            (u.trim().to_owned(), UrlFrom::Data(d.clone()))
        }
        (None, None, Some(u)) => (u, UrlFrom::Env),
        (None, None, None) => bail!(
            "which engine? give --data DIR (of a running `bindspace serve`), --url, or $BINDSPACE_URL"
        ),
    };
    let url = url.trim_end_matches('/').to_owned();
    let token = token(a.token_file.as_deref(), &from)?;
    let rt = crate::args::runtime()?;
    let status: Status = rt.block_on(fetch(&url, &token, a.cacert.as_deref()))?;
    emit_serialized(a.json, &status, || render(&status, &url))
}

fn token(file: Option<&Path>, from: &UrlFrom) -> Result<String> {
    let (text, source) = match (file, from) {
        (Some(f), _) => (
            std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?,
            f.display().to_string(),
        ),
        (None, UrlFrom::Data(d)) => {
            let f = d.join(bindspace_http::GENERATED_TOKEN_FILE);
            (
                std::fs::read_to_string(&f).with_context(|| {
                    format!(
                        "reading {} (serve writes it when started without --token-file; else give --token-file)",
                        f.display()
                    )
                })?,
                f.display().to_string(),
            )
        }
        (None, UrlFrom::Flag | UrlFrom::Env) => (
            std::env::var("BINDSPACE_TOKEN")
                .context("no token: give --token-file or $BINDSPACE_TOKEN")?,
            "$BINDSPACE_TOKEN".into(),
        ),
    };
    // the token alone, or the first `ROLE TOKEN` line of a server's token file
    text.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .find(|l| !l.is_empty())
        .and_then(|l| l.split_whitespace().last())
        .map(str::to_owned)
        .with_context(|| format!("{source} holds no token"))
}

async fn fetch(url: &str, token: &str, cacert: Option<&Path>) -> Result<Status> {
    let mut client = reqwest::Client::builder().timeout(std::time::Duration::from_secs(30));
    if let Some(ca) = cacert {
        let pem = std::fs::read(ca).with_context(|| format!("reading {}", ca.display()))?;
        client = client.add_root_certificate(
            reqwest::Certificate::from_pem(&pem)
                .with_context(|| format!("{} is not a PEM certificate", ca.display()))?,
        );
    }
    let endpoint = format!("{url}/api/v1/admin/status");
    let resp = client
        .build()
        .context("building the HTTP client")?
        .get(&endpoint)
        .bearer_auth(token)
        .send()
        .await
        .with_context(|| {
            format!("asking {url} for the engine's status (is `bindspace serve` running there?)")
        })?;
    let code = resp.status();
    let body = resp
        .bytes()
        .await
        .with_context(|| format!("reading the answer of {endpoint}"))?;
    if !code.is_success() {
        let msg = serde_json::from_slice::<bindspace_http::ErrorBody>(&body)
            .map(|e| format!("{}: {}", e.error.code, e.error.message))
            .unwrap_or_else(|_| String::from_utf8_lossy(&body).into_owned());
        bail!("{endpoint} answered {code}: {msg}");
    }
    serde_json::from_slice(&body)
        .with_context(|| format!("{endpoint} answered something that is not a status"))
}

fn render(s: &Status, url: &str) -> String {
    let mut out = format!(
        "engine       version {} on timeline {}, {} addresses, {} ({url})\n",
        s.version,
        s.timeline,
        s.addresses,
        match &s.fenced {
            Some(why) => format!("NOT WRITABLE: {why}"),
            None => "writable".into(),
        }
    );
    let w = &s.wal;
    out.push_str(&format!(
        "WAL archive  holds up to version {} of {}; {}; {} segments archived, {} failed attempts\n",
        w.archived_version,
        w.version,
        match w.lag_seconds {
            Some(l) if l <= 0.0 => "no lag".to_owned(),
            Some(l) => format!("{l:.1} s behind"),
            None => "no archive pass yet since the engine opened".into(),
        },
        w.segments_archived,
        w.failures
    ));
    out.push_str(&format!(
        "backups      {} written, {} failed since the engine opened{}; {} removed by retention\n",
        s.backups_ok,
        s.backups_failed,
        if s.last_backup_version > 0 {
            format!("; the newest holds version {}", s.last_backup_version)
        } else {
            String::new()
        },
        s.retention_deleted
    ));
    if s.last_backups.is_empty() {
        out.push_str("             none yet\n");
    } else {
        let rows: Vec<Vec<String>> = s
            .last_backups
            .iter()
            .map(|b| {
                vec![
                    b.kind.clone(),
                    b.time.clone(),
                    b.age.clone(),
                    b.store.clone(),
                ]
            })
            .collect();
        for line in table(&["last", "finished", "age", "store"], &rows, &[]).lines() {
            out.push_str(&format!("             {line}\n"));
        }
    }
    if s.last_verify.is_empty() {
        out.push_str("verify       none since the engine opened\n");
    }
    for v in &s.last_verify {
        out.push_str(&format!(
            "verify       {}: {} ({}), {}\n",
            v.level, v.time, v.age, v.outcome
        ));
    }
    match &s.last_drill {
        None => out.push_str("drill        none through this engine yet\n"),
        Some(d) => out.push_str(&format!(
            "drill        {} ({}): {}, RTO {} ms, RPO {}\n",
            d.time,
            d.age,
            if d.passed { "passed" } else { "FAILED" },
            d.rto_ms,
            d.rpo_ms.map_or("-".into(), |r| format!("{r} ms"))
        )),
    }
    for r in &s.replication.replicas {
        out.push_str(&format!(
            "replica      {}: {}\n",
            r.store,
            r.lag_ms
                .map_or("not caught up since the engine opened".into(), |l| {
                    format!("{:.1} s behind", l as f64 / 1000.0)
                })
        ));
    }
    if let Some(e) = &s.last_error {
        out.push_str(&format!("last error   {e}\n"));
    }
    out
}
