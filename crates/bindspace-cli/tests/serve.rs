//! `bindspace serve` as a process: schemathesis (every check) against its own OpenAPI
//! document, the runbook's curl lines of docs/OPERATIONS.md as written, a generated
//! private token and a clean stop on SIGTERM, plain HTTP refused off loopback, and
//! exports (CLI and HTTP) read back by pyarrow and compared with the engine's state.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use bindspace::{BackupConfig, Engine};
use bindspace_core::{Addr, Fingerprint};
use serde_json::Value;

const ADMIN: &str = "admin-token-0123456789abcdef";
const READ: &str = "read-token-0123456789abcdef";

fn config(dir: &Path) -> PathBuf {
    let p = dir.join("bindspace.toml");
    std::fs::write(
        &p,
        "fingerprint_words = 8\naddress_space = 256\narchive_interval_ms = 200\n",
    )
    .unwrap();
    p
}

/// An engine's data directory with 64 addresses written and backed up; the live state
/// (version, digest, rows as (addr, hex)) when it closed.
fn seeded(dir: &Path) -> (u64, String, Vec<(String, String)>) {
    let cfg = BackupConfig {
        fingerprint_words: 8,
        address_space: 256,
        background_jobs: false,
        ..BackupConfig::default()
    };
    let e = Engine::open(dir.join("data"), cfg).unwrap();
    for i in 0..64u16 {
        let words: Vec<u64> = (0..8).map(|w| u64::from(i) * 977 + w).collect();
        e.write(Addr(i * 3), Fingerprint::from_words(words))
            .unwrap();
    }
    e.backup_now(bindspace_catalog::BackupKind::Full).unwrap();
    e.delete(Addr(0)).unwrap();
    let state = e.read(|s| {
        (
            s.version(),
            s.digest().to_string(),
            s.iter()
                .map(|(a, w)| (a.to_string(), bindspace_http::export::fingerprint_hex(w)))
                .collect(),
        )
    });
    e.close().unwrap();
    state
}

struct Served {
    child: Child,
    url: String,
}

impl Served {
    fn start(dir: &Path, extra: &[&str]) -> Served {
        let mut child = Command::new(env!("CARGO_BIN_EXE_bindspace"))
            .arg("serve")
            .args(
                (!extra.contains(&"--listen"))
                    .then_some(["--listen", "127.0.0.1:0"])
                    .into_iter()
                    .flatten(),
            )
            .arg("--data")
            .arg(dir.join("data"))
            .arg("--config")
            .arg(config(dir))
            .args(extra)
            .env_remove("BINDSPACE_REPO")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("serve printed {line:?}"))
            .to_owned();
        Served { child, url }
    }

    /// SIGTERM; it must stop by itself, successfully.
    fn stop(mut self) {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY-free: kill(2) through the libc crate on our own child
        #[allow(unsafe_code)]
        let rc = unsafe { libc::kill(pid, libc::SIGTERM) };
        assert_eq!(rc, 0);
        for _ in 0..600 {
            if let Some(st) = self.child.try_wait().unwrap() {
                assert!(st.success(), "serve exited with {st}");
                return;
            }
            #[allow(clippy::disallowed_methods)] // waiting for a process to stop
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("serve did not stop within 30 s of SIGTERM");
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn token_file(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join("tokens");
    std::fs::write(&p, format!("admin {ADMIN}\nread {READ}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    p
}

/// Whether python3 can import `module`; a skip (printed) under a plain `cargo test`,
/// a failure under `cargo xtask test` or CI.
fn python_has(module: &str) -> bool {
    let ok = Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            !bindspace_testkit::must_not_skip(),
            "python3 cannot import {module}: `cargo xtask doctor` installs it"
        );
        eprintln!("SKIP: python3 cannot import {module} (cargo xtask doctor installs it)");
    }
    ok
}

fn curl(args: &[&str]) -> (bool, String) {
    let out = Command::new("curl")
        .args(["-sS"])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn schemathesis_finds_nothing_against_a_live_server() {
    if !python_has("schemathesis") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    seeded(dir.path());
    let tokens = token_file(dir.path());
    let s = Served::start(dir.path(), &["--token-file", tokens.to_str().unwrap()]);
    let out = Command::new("python3")
        .args(["-m", "schemathesis.cli", "run"])
        .arg(format!("{}/api/v1/openapi.json", s.url))
        // one worker: with two, hypothesis describes strategies from two threads at once
        // and CPython's `ast` can fail with "AST constructor recursion depth mismatch"
        // (a tool crash, reported as an error, seen once under a loaded gate)
        .args(["--checks", "all", "--max-examples", "25", "--workers", "1"])
        .args(["-H", &format!("Authorization: Bearer {ADMIN}")])
        .env("NO_COLOR", "1")
        .current_dir(dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis failed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("Tested: 27"), "{text}");
    s.stop();
}

#[test]
fn the_api_runbook_runs_as_written() {
    let doc = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/OPERATIONS.md"),
    )
    .unwrap();
    let block = doc
        .split("<!-- runbook:api -->\n```sh\n")
        .nth(1)
        .and_then(|b| b.split("\n```").next())
        .expect("docs/OPERATIONS.md has the API runbook block");
    let lines: Vec<&str> = block.lines().filter(|l| l.starts_with("curl ")).collect();
    assert!(lines.len() >= 10, "{block}");
    let dir = tempfile::tempdir().unwrap();
    seeded(dir.path());
    let tokens = token_file(dir.path());
    let s = Served::start(dir.path(), &["--token-file", tokens.to_str().unwrap()]);
    for line in &lines {
        let out = Command::new("sh")
            .args(["-c", line])
            .env("BINDSPACE_URL", &s.url)
            .env("TOKEN", ADMIN)
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{line}\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // the jobs it started all succeed
    let auth = format!("Authorization: Bearer {READ}");
    for _ in 0..600 {
        let (ok, body) = curl(&["-f", "-H", &auth, &format!("{}/api/v1/admin/jobs", s.url)]);
        assert!(ok);
        let jobs: Vec<Value> = serde_json::from_str(&body).unwrap();
        assert_eq!(jobs.len(), 3, "restore, verify, drill: {body}");
        if jobs.iter().all(|j| j["finished"].is_string()) {
            for j in &jobs {
                assert_eq!(j["state"], "succeeded", "{j}");
            }
            assert!(dir.path().join("space.parquet").exists());
            // `bindspace status` shows the full from before the server started beside
            // the incremental, verify and drill the runbook ran
            let out = Command::new(env!("CARGO_BIN_EXE_bindspace"))
                .args(["status", "--json", "--url", &s.url])
                .env("BINDSPACE_TOKEN", READ)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let st: Value = serde_json::from_slice(&out.stdout).unwrap();
            let kinds: Vec<&str> = st["last_backups"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| b["kind"].as_str().unwrap())
                .collect();
            assert!(
                kinds.contains(&"full") && kinds.contains(&"incremental"),
                "{st}"
            );
            assert_eq!(st["last_verify"][0]["level"], "standard", "{st}");
            assert_eq!(st["last_drill"]["passed"], true, "{st}");
            s.stop();
            return;
        }
        #[allow(clippy::disallowed_methods)] // polling jobs over HTTP
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("the runbook's jobs did not finish in 30 s");
}

#[test]
fn a_generated_token_is_private_and_plain_http_stays_on_loopback() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    // off loopback without TLS: refused before anything is opened
    let out = Command::new(env!("CARGO_BIN_EXE_bindspace"))
        .args(["serve", "--listen", "0.0.0.0:0", "--data"])
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--insecure-http") && err.contains("TLS"),
        "{err}"
    );
    assert!(!dir.path().join("data").exists(), "nothing was created");
    // a token file others may read: refused, before anything is created
    let tokens = token_file(dir.path());
    std::fs::set_permissions(&tokens, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_bindspace"))
        .args(["serve", "--listen", "127.0.0.1:0", "--token-file"])
        .arg(&tokens)
        .arg("--data")
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("chmod 600"), "{err}");
    assert!(!dir.path().join("data").exists(), "nothing was created");
    // no token file: a random admin token, 0600, that works
    let s = Served::start(dir.path(), &[]);
    let path = dir.path().join("data/serve.token");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let token = std::fs::read_to_string(&path).unwrap().trim().to_owned();
    let status = format!("{}/api/v1/admin/status", s.url);
    let (ok, body) = curl(&[
        "-f",
        "-H",
        &format!("Authorization: Bearer {token}"),
        &status,
    ]);
    assert!(ok, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["timeline"], 1);
    let (ok, _) = curl(&[
        "-f",
        "-H",
        "Authorization: Bearer wrong-token-0123456789",
        &status,
    ]);
    assert!(!ok, "an unknown token is refused");
    // `bindspace status --data DIR` finds the server and its token in DIR
    let status = |extra: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_bindspace"))
            .args(["status", "--data"])
            .arg(dir.path().join("data"))
            .args(extra)
            .env_remove("BINDSPACE_URL")
            .env_remove("BINDSPACE_TOKEN")
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    };
    let (ok, text) = status(&[]);
    assert!(ok, "{text}");
    for want in [
        format!("engine       version {} on timeline 1", v["version"]),
        "writable".into(),
        "WAL archive  holds up to version".into(),
        "backups      ".into(),
        "drill        ".into(),
    ] {
        assert!(text.contains(&want), "{want:?} in\n{text}");
    }
    let (ok, text) = status(&["--json"]);
    assert!(ok, "{text}");
    let js: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(js["timeline"], 1);
    // --data wins over $BINDSPACE_URL and $BINDSPACE_TOKEN (a directory's token never
    // goes to another server, nor another token to it)
    let out = Command::new(env!("CARGO_BIN_EXE_bindspace"))
        .args(["status", "--data"])
        .arg(dir.path().join("data"))
        .env("BINDSPACE_URL", "http://127.0.0.1:9")
        .env("BINDSPACE_TOKEN", "someone-elses-token-0123")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    s.stop();
    assert!(
        !dir.path().join("data/serve.url").exists(),
        "removed at stop"
    );
    let (ok, text) = status(&[]);
    assert!(!ok && text.contains("no engine is serving"), "{text}");
    // stopped cleanly: the directory opens again at once
    let cfg = BackupConfig {
        fingerprint_words: 8,
        address_space: 256,
        background_jobs: false,
        ..BackupConfig::default()
    };
    Engine::open(dir.path().join("data"), cfg)
        .unwrap()
        .close()
        .unwrap();
}

/// A test CA and a server certificate it signed for `localhost` and 127.0.0.1, valid
/// until 2126 (made once with openssl; the CA's key was thrown away).
fn tls_file(name: &str) -> String {
    format!("{}/tests/data/tls/{name}", env!("CARGO_MANIFEST_DIR"))
}

// Off loopback with TLS: allowed; https answers with the certificate, plain HTTP on the
// same port gets nothing, and `bindspace status` trusts a private CA it is given (and
// refuses the certificate without it).
#[test]
fn tls_serves_off_loopback_and_status_trusts_a_given_ca() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = token_file(dir.path());
    let s = Served::start(
        dir.path(),
        &[
            "--listen",
            "0.0.0.0:0",
            "--tls-cert",
            &tls_file("server.pem"),
            "--tls-key",
            &tls_file("server.key"),
            "--token-file",
            tokens.to_str().unwrap(),
        ],
    );
    let port = s.url.rsplit(':').next().unwrap().to_owned();
    assert!(s.url.starts_with("https://0.0.0.0:"), "{}", s.url);
    let https = format!("https://localhost:{port}");
    let (ok, body) = curl(&[
        "-f",
        "--cacert",
        &tls_file("ca.pem"),
        &format!("{https}/healthz"),
    ]);
    assert!(ok, "{body}");
    let (ok, _) = curl(&["-f", &format!("http://127.0.0.1:{port}/healthz")]);
    assert!(!ok, "plain HTTP to the TLS port");
    let status = |extra: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_bindspace"))
            .args(["status", "--url", &https, "--token-file"])
            .arg(&tokens)
            .args(extra)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    };
    let (ok, text) = status(&["--cacert", &tls_file("ca.pem")]);
    assert!(ok && text.contains("engine       version"), "{text}");
    // DATA/serve.url names loopback, not 0.0.0.0, so --data reaches it and the
    // certificate's name matches
    let url = std::fs::read_to_string(dir.path().join("data/serve.url")).unwrap();
    assert_eq!(url.trim(), format!("https://127.0.0.1:{port}"));
    let out = Command::new(env!("CARGO_BIN_EXE_bindspace"))
        .args(["status", "--cacert", &tls_file("ca.pem"), "--token-file"])
        .arg(&tokens)
        .arg("--data")
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (ok, text) = status(&[]);
    assert!(!ok && text.to_lowercase().contains("certificate"), "{text}");
    s.stop();
}

/// What python (pyarrow for CSV and Parquet, the json module for JSON and NDJSON)
/// reads from an export: its metadata (version, digest) and rows (addr, hex).
const READER: &str = r#"
import json, sys
import pyarrow.csv as pacsv, pyarrow.parquet as pq
fmt, path = sys.argv[1], sys.argv[2]
if fmt == "json":
    d = json.load(open(path))
    meta, rows = d, [(r["addr"], r["fingerprint"]) for r in d["rows"]]
elif fmt == "ndjson":
    lines = [json.loads(l) for l in open(path)]
    meta = lines[0]["bindspace_export"]
    rows = [(r["addr"], r["fingerprint"]) for r in lines[1:]]
elif fmt == "csv":
    head = open(path).readline()
    meta = dict(kv.split("=") for kv in head.split()[3:])
    t = pacsv.read_csv(path, read_options=pacsv.ReadOptions(skip_rows=1),
                       convert_options=pacsv.ConvertOptions(column_types={"fingerprint": "string", "addr": "string"}))
    rows = list(zip(t.column("addr").to_pylist(), t.column("fingerprint").to_pylist()))
else:
    t = pq.read_table(path)
    md = pq.read_metadata(path).metadata
    meta = {"version": md[b"bindspace.version"].decode(), "digest": md[b"bindspace.digest"].decode()}
    assert str(t.schema.field("fingerprint").type).startswith("fixed_size_binary"), t.schema
    rows = [("%02x:%02x" % (p, s), fp.hex()) for p, s, fp in zip(
        t.column("prefix").to_pylist(), t.column("slot").to_pylist(), t.column("fingerprint").to_pylist())]
    assert t.column("addr").to_pylist() == [p * 256 + s for p, s in zip(t.column("prefix").to_pylist(), t.column("slot").to_pylist())]
print(json.dumps({"version": int(meta["version"]), "digest": meta["digest"], "rows": rows}))
"#;

fn read_back(format: &str, path: &Path) -> Value {
    let out = Command::new("python3")
        .args(["-c", READER, format])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{format}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn exports_read_back_with_pyarrow() {
    if !python_has("pyarrow") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (version, digest, rows) = seeded(dir.path());
    let want = |got: &Value, what: &str| {
        assert_eq!(got["version"], version, "{what}");
        assert_eq!(got["digest"], digest.as_str(), "{what}");
        let got: Vec<(String, String)> = serde_json::from_value(got["rows"].clone()).unwrap();
        assert_eq!(got, rows, "{what}");
    };
    let repo = format!("file://{}", dir.path().join("data/repo").display());
    for format in ["json", "ndjson", "csv", "parquet"] {
        // the CLI: a restore of the newest state from the repository
        let out_path = dir.path().join(format!("cli.{format}"));
        let out = Command::new(env!("CARGO_BIN_EXE_bindspace"))
            .args([
                "export", "--repo", &repo, "--latest", "--format", format, "--out",
            ])
            .arg(&out_path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        want(&read_back(format, &out_path), &format!("cli {format}"));
    }
    // over HTTP: the live space, streamed
    let tokens = token_file(dir.path());
    let s = Served::start(dir.path(), &["--token-file", tokens.to_str().unwrap()]);
    for format in ["json", "ndjson", "csv", "parquet"] {
        let path = dir.path().join(format!("http.{format}"));
        let (ok, _) = curl(&[
            "-f",
            "-H",
            &format!("Authorization: Bearer {READ}"),
            "-o",
            path.to_str().unwrap(),
            &format!("{}/api/v1/admin/export?format={format}", s.url),
        ]);
        assert!(ok);
        want(&read_back(format, &path), &format!("http {format}"));
    }
    s.stop();
}
