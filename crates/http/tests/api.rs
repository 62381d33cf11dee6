//! The admin API against a real engine (256 addresses) on a real socket: every
//! endpoint at once (none blocks the runtime or answers 5xx), auth by role, restore
//! jobs returning the exact state they name, bad input answered with JSON 4xx, the
//! metrics families, and exports of the live space.

use std::sync::Arc;
use std::time::Duration;

use bindspace::{BackupConfig, Engine};
use bindspace_catalog::BackupKind;
use bindspace_core::{Addr, Fingerprint};
use bindspace_http::{Listen, Shared, Tokens};
use serde_json::Value;

const ADMIN: &str = "admin-token-0123456789abcdef";
const READ: &str = "read-token-0123456789abcdef";

struct Server {
    engine: Arc<Engine>,
    base: String,
    client: reqwest::Client,
    rt: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
}

fn fp(i: u64, round: u64) -> Fingerprint {
    Fingerprint::from_words(
        (0..8)
            .map(|w| i * 1_000 + w + round * 7)
            .collect::<Vec<u64>>(),
    )
}

fn start() -> Server {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = BackupConfig {
        fingerprint_words: 8,
        address_space: 256,
        background_jobs: false,
        ..BackupConfig::default()
    };
    let engine = Arc::new(Engine::open(dir.path().join("data"), cfg).expect("engine"));
    for i in 0..64 {
        engine.write(Addr(i), fp(u64::from(i), 0)).expect("write");
    }
    engine.backup_now(BackupKind::Full).expect("full");
    engine.archive_now().expect("archive");
    let state = Shared::new(engine.clone(), Tokens::admin(ADMIN).with_read(READ));
    let handle = engine.runtime_handle();
    let listener = handle
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let listen = Listen {
        addr,
        ..Listen::default()
    };
    handle.spawn(async move {
        bindspace_http::serve(state, listener, &listen, std::future::pending())
            .await
            .expect("serve");
    });
    Server {
        engine,
        base: format!("http://{addr}"),
        client: reqwest::Client::new(),
        rt: tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("client runtime"),
        _dir: dir,
    }
}

/// (status, body as JSON or as a string)
type Answer = (u16, Value);

impl Server {
    fn req(&self, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> Answer {
        self.rt.block_on(self.send(method, path, token, body))
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("a method");
        let mut r = self.client.request(m, format!("{}{path}", self.base));
        if let Some(t) = token {
            r = r.header("authorization", format!("Bearer {t}"));
        }
        if let Some(b) = body {
            r = r
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let resp = r.send().await.expect("the server answers");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("a body");
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, body)
    }

    /// Follows a job to its end.
    fn wait(&self, id: &str) -> Value {
        for _ in 0..3_000 {
            let (s, j) = self.req("GET", &format!("/api/v1/admin/jobs/{id}"), Some(READ), None);
            assert_eq!(s, 200, "{j}");
            if j["state"] == "succeeded" || j["state"] == "failed" {
                return j;
            }
            #[allow(clippy::disallowed_methods)] // polling a job over HTTP
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("job {id} did not finish in 60 s");
    }
}

const A: &str = "/api/v1/admin";

#[test]
fn every_endpoint_answers_at_once_without_blocking_the_runtime() {
    let s = start();
    let calls: Vec<(&str, String, Option<Value>)> = vec![
        ("GET", "/healthz".into(), None),
        ("GET", "/readyz".into(), None),
        ("GET", "/api/v1/openapi.json".into(), None),
        ("GET", "/metrics".into(), None),
        ("GET", "/api/v1/health/deep".into(), None),
        ("GET", format!("{A}/status"), None),
        ("POST", format!("{A}/backup"), None),
        ("POST", format!("{A}/backup/incremental"), None),
        ("POST", format!("{A}/backup/differential"), None),
        ("GET", format!("{A}/backup/list"), None),
        ("POST", format!("{A}/backup/verify?level=deep"), None),
        ("GET", format!("{A}/jobs"), None),
        ("POST", format!("{A}/restore"), Some(serde_json::json!({}))),
        ("GET", format!("{A}/restore-points"), None),
        (
            "POST",
            format!("{A}/restore-points"),
            Some(serde_json::json!({"name": "before-deploy", "guaranteed": true})),
        ),
        ("GET", format!("{A}/explain"), None),
        ("GET", format!("{A}/as-of?addr=00:05"), None),
        ("POST", format!("{A}/retention"), None),
        ("POST", format!("{A}/drill"), None),
        ("GET", format!("{A}/drill/report"), None),
        ("GET", format!("{A}/replication"), None),
        ("GET", format!("{A}/wal"), None),
        (
            "POST",
            format!("{A}/migrate/plan"),
            Some(serde_json::json!({"words": 16})),
        ),
        (
            "POST",
            format!("{A}/migrate/apply"),
            Some(serde_json::json!({"words": 16})),
        ),
        ("GET", format!("{A}/export?format=ndjson"), None),
    ];
    // writers keep writing meanwhile
    let writer = {
        let e = s.engine.clone();
        std::thread::spawn(move || {
            for r in 1..200u64 {
                e.write(Addr((r % 64) as u16), fp(r, r)).expect("write");
            }
        })
    };
    let answers = s.rt.block_on(futures::future::join_all(
        calls
            .iter()
            .map(|(m, p, b)| s.send(m, p, Some(ADMIN), b.clone())),
    ));
    writer.join().expect("writer");
    let mut jobs = Vec::new();
    for ((m, p, _), (status, body)) in calls.iter().zip(&answers) {
        assert!((200..300).contains(status), "{m} {p}: {status} {body}");
        if *status == 202 {
            jobs.push(body["id"].as_str().expect("a job id").to_owned());
        }
    }
    assert_eq!(
        jobs.len(),
        5,
        "backup, verify, restore, drill, migrate are jobs"
    );
    for id in jobs {
        let j = s.wait(&id);
        assert_eq!(j["state"], "succeeded", "{j}");
        // a full finds nothing to write when the concurrent delta took every change
        let r = j["result"].as_object().expect("a result");
        assert!(
            j["kind"] == "backup" || r.values().any(|v| !v.is_null()),
            "{j}"
        );
    }
}

#[test]
fn tokens_by_role() {
    let s = start();
    let backups = |s: &Server| {
        s.req("GET", &format!("{A}/backup/list"), Some(READ), None)
            .1
            .as_array()
            .expect("a list")
            .len()
    };
    let before = backups(&s);
    // no token, an unknown token
    for t in [None, Some("not-a-token-of-any-kind")] {
        let (st, body) = s.req("GET", &format!("{A}/status"), t, None);
        assert_eq!(st, 401, "{body}");
        assert_eq!(body["error"]["code"], "unauthorized");
    }
    // a read-only token reads, and cannot back up, restore, run retention or drill
    assert_eq!(
        s.req("GET", &format!("{A}/status"), Some(READ), None).0,
        200
    );
    assert_eq!(s.req("GET", "/metrics", Some(READ), None).0, 200);
    for (m, p, b) in [
        ("POST", format!("{A}/backup"), None),
        ("POST", format!("{A}/backup/incremental"), None),
        ("POST", format!("{A}/backup/differential"), None),
        ("POST", format!("{A}/backup/verify"), None),
        ("GET", "/api/v1/health/deep".into(), None),
        (
            "POST",
            format!("{A}/migrate/apply"),
            Some(serde_json::json!({})),
        ),
        ("POST", format!("{A}/restore"), Some(serde_json::json!({}))),
        ("POST", format!("{A}/retention?confirm=true"), None),
        ("POST", format!("{A}/drill"), None),
        (
            "POST",
            format!("{A}/restore-points"),
            Some(serde_json::json!({"name": "x"})),
        ),
    ] {
        let (st, body) = s.req(m, &p, Some(READ), b);
        assert_eq!(st, 403, "{m} {p}: {body}");
        assert_eq!(body["error"]["code"], "forbidden");
    }
    assert_eq!(backups(&s), before, "a refused request changed nothing");
    // the probes need no token
    assert_eq!(s.req("GET", "/healthz", None, None).0, 200);
    assert!([200, 503].contains(&s.req("GET", "/readyz", None, None).0));
    // the admin token does it
    s.engine.write(Addr(200), fp(200, 1)).expect("write");
    let (st, body) = s.req(
        "POST",
        &format!("{A}/backup/incremental"),
        Some(ADMIN),
        None,
    );
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["backup"]["kind"], "incremental");
    assert_eq!(backups(&s), before + 1);
}

#[test]
fn a_restore_job_returns_the_state_it_names() {
    let s = start();
    // the live state's digest at chosen versions: the oracle
    let mut seen = Vec::new();
    for r in 1..=3u64 {
        for i in 0..32u16 {
            s.engine
                .write(Addr(i * 3), fp(u64::from(i), r))
                .expect("write");
        }
        s.engine.delete(Addr(r as u16 + 100)).ok();
        seen.push(s.engine.read(|sp| (sp.version(), sp.digest().to_string())));
        s.engine.backup_now(BackupKind::Incremental).expect("delta");
    }
    s.engine.archive_now().expect("archive");
    for (v, digest) in &seen {
        let (st, job) = s.req(
            "POST",
            &format!("{A}/restore"),
            Some(ADMIN),
            Some(serde_json::json!({"target": format!("version:{v}")})),
        );
        assert_eq!(st, 202, "{job}");
        let id = job["id"].as_str().expect("id");
        // the restore endpoint's own status path
        let (st, _) = s.req("GET", &format!("{A}/restore/{id}/status"), Some(READ), None);
        assert_eq!(st, 200);
        let j = s.wait(id);
        assert_eq!(j["state"], "succeeded", "{j}");
        let r = &j["result"]["restore"];
        assert_eq!(r["version"], *v);
        assert_eq!(r["digest"], digest.as_str(), "version {v}");
        assert_eq!(r["verified"], true, "{r}");
        // the file holds that state
        let bytes = std::fs::read(r["file"].as_str().expect("file")).expect("the snapshot");
        let snap = bindspace_core::snapshot::decode(&bytes).expect("a snapshot");
        assert_eq!(snap.space.digest().to_string(), *digest);
    }
}

#[test]
fn bad_input_is_a_json_4xx() {
    let s = start();
    s.engine.restore_point("taken", false).expect("a point");
    #[rustfmt::skip]
    let cases: Vec<(&str, String, Option<String>, u16, &str)> = vec![
        ("GET", format!("{A}/explain?target=time:yesterday"), None, 400, "bad_request"),
        ("GET", format!("{A}/explain?target=version"), None, 400, "bad_request"),
        ("GET", format!("{A}/explain?target=version:abc"), None, 400, "bad_request"),
        ("GET", format!("{A}/explain?timeline=x"), None, 400, "bad_request"),
        ("GET", format!("{A}/explain?timeline=2147483648"), None, 400, "bad_request"),
        ("GET", format!("{A}/explain?timeline=1.5"), None, 400, "bad_request"),
        ("GET", format!("{A}/explain?timeline=7"), None, 404, "not_restorable"),
        ("POST", format!("{A}/restore"), Some("[null, null]".into()), 400, "bad_request"),
        ("POST", format!("{A}/restore"), Some("{\"timeline\": 1.5}".into()), 400, "bad_request"),
        ("GET", format!("{A}/explain?target=point:no-such-point"), None, 404, "not_restorable"),
        ("GET", format!("{A}/explain?target=version:999999"), None, 404, "not_restorable"),
        ("GET", format!("{A}/explain?target=time:1900-01-01T00:00:00Z"), None, 404, "not_restorable"),
        ("GET", format!("{A}/as-of?addr=zz:zz"), None, 400, "bad_request"),
        ("GET", format!("{A}/as-of"), None, 400, "bad_request"),
        ("GET", format!("{A}/export?format=xml"), None, 400, "bad_request"),
        ("GET", format!("{A}/backup/no-such-backup"), None, 404, "not_found"),
        ("GET", format!("{A}/jobs/job-999"), None, 404, "not_found"),
        ("GET", "/no/such/endpoint".into(), None, 404, "not_found"),
        ("POST", format!("{A}/restore"), Some("{not json".into()), 400, "bad_request"),
        ("POST", format!("{A}/restore"), Some(format!("{{\"target\":\"point:{}\"}}", "x".repeat(100_000))), 413, "payload_too_large"),
        ("POST", format!("{A}/restore"), Some("{\"target\": \"version:999999\"}".into()), 404, "not_restorable"),
        ("POST", format!("{A}/restore"), Some("{\"target\": 7}".into()), 400, "bad_request"),
        ("POST", format!("{A}/restore-points"), Some("{\"name\": \"\"}".into()), 400, "bad_request"),
        ("POST", format!("{A}/restore-points"), Some("{\"name\": \"a b\"}".into()), 400, "bad_request"),
        ("POST", format!("{A}/restore-points"), Some("{\"name\": \"taken\"}".into()), 409, "conflict"),
        ("POST", format!("{A}/backup/verify?level=deepest"), None, 400, "bad_request"),
        ("POST", format!("{A}/drill?target=yesterday"), None, 400, "bad_request"),
        ("POST", format!("{A}/migrate/plan"), Some("{\"words\": 0}".into()), 400, "bad_request"),
        ("POST", format!("{A}/migrate/plan"), Some("{\"features\": [\"no-such\"]}".into()), 400, "bad_request"),
        ("POST", format!("{A}/migrate/plan"), Some("{\"to\": \"0.0.1\"}".into()), 409, "migration_refused"),
        ("POST", format!("{A}/migrate/apply"), Some("{\"words\": 4}".into()), 409, "migration_refused"),
    ];
    for (m, p, body, want, code) in cases {
        let (st, b) = s.rt.block_on(async {
            let mut r = s
                .client
                .request(
                    reqwest::Method::from_bytes(m.as_bytes()).expect("method"),
                    format!("{}{p}", s.base),
                )
                .header("authorization", format!("Bearer {ADMIN}"));
            if let Some(b) = body {
                r = r.header("content-type", "application/json").body(b);
            }
            let resp = r.send().await.expect("answers");
            let st = resp.status().as_u16();
            let ct = resp
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap_or("").to_owned());
            assert_eq!(ct.as_deref(), Some("application/json"), "{m} {p}");
            (st, resp.json::<Value>().await.expect("JSON"))
        });
        assert_eq!(st, want, "{m} {p}: {b}");
        assert_eq!(b["error"]["code"], code, "{m} {p}: {b}");
        assert!(!b["error"]["message"].as_str().unwrap_or("").is_empty());
    }
    // a body that is not declared JSON
    let st = s.rt.block_on(async {
        s.client
            .post(format!("{}{A}/restore", s.base))
            .header("authorization", format!("Bearer {ADMIN}"))
            .body("{}")
            .send()
            .await
            .expect("answers")
            .status()
            .as_u16()
    });
    assert_eq!(st, 415);
}

#[test]
fn metrics_name_backups_archive_verify_and_drills() {
    let s = start();
    let (st, _) = s.req(
        "POST",
        &format!("{A}/backup/incremental"),
        Some(ADMIN),
        None,
    );
    assert_eq!(st, 200);
    let (_, job) = s.req(
        "POST",
        &format!("{A}/backup/verify?level=standard"),
        Some(ADMIN),
        None,
    );
    let j = s.wait(job["id"].as_str().expect("id"));
    assert_eq!(j["result"]["verify"]["outcome"], "clean", "{j}");
    let (_, job) = s.req("POST", &format!("{A}/drill"), Some(ADMIN), None);
    let j = s.wait(job["id"].as_str().expect("id"));
    assert_eq!(j["state"], "succeeded", "{j}");
    let (st, text) = s.req("GET", "/metrics", Some(READ), None);
    assert_eq!(st, 200);
    let text = text.as_str().expect("text").to_owned();
    let value = |prefix: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {prefix} in\n{text}"))
    };
    let now = bindspace_core::Clock::now_us(&bindspace_core::SystemClock) as f64 / 1e6;
    let full = value("bindspace_backup_last_success_timestamp_seconds{kind=\"full\",store=\"");
    assert!((now - full).abs() < 600.0, "{full} vs {now}");
    assert!(value("bindspace_backup_bytes_written_total{store=\"") > 0.0);
    assert_eq!(value("bindspace_wal_archive_lag_seconds"), 0.0);
    assert_eq!(value("bindspace_rpo_seconds"), 0.0);
    assert!(value("bindspace_verify_last_success_timestamp_seconds{level=\"standard\"}") > 0.0);
    assert!(
        text.contains("# TYPE bindspace_drill_rto_seconds gauge"),
        "{text}"
    );
    assert_eq!(value("bindspace_drill_passed"), 1.0);
    // a write not yet archived shows as lag
    s.engine.write(Addr(9), fp(9, 9)).expect("write");
    let (_, text) = s.req("GET", "/metrics", Some(READ), None);
    let text = text.as_str().expect("text");
    assert!(
        !text.contains("bindspace_wal_archive_lag_seconds 0\n"),
        "{text}"
    );
}

#[test]
fn exports_of_the_live_space_hold_every_address() {
    let s = start();
    let (version, digest, rows) = s.engine.read(|sp| {
        (
            sp.version(),
            sp.digest().to_string(),
            sp.iter()
                .map(|(a, w)| (a.to_string(), bindspace_http::export::fingerprint_hex(w)))
                .collect::<Vec<_>>(),
        )
    });
    let (st, body) = s.req("GET", &format!("{A}/export?format=json"), Some(READ), None);
    assert_eq!(st, 200);
    assert_eq!(body["version"], version);
    assert_eq!(body["digest"], digest.as_str());
    let got: Vec<(String, String)> = body["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            (
                r["addr"].as_str().expect("addr").to_owned(),
                r["fingerprint"].as_str().expect("fp").to_owned(),
            )
        })
        .collect();
    assert_eq!(got, rows);
    let (st, body) = s.req(
        "GET",
        &format!("{A}/export?format=ndjson"),
        Some(READ),
        None,
    );
    assert_eq!(st, 200);
    let text = body.as_str().expect("ndjson is not one JSON value");
    let mut lines = text.lines();
    let head: Value = serde_json::from_str(lines.next().expect("a head")).expect("JSON");
    assert_eq!(head["bindspace_export"]["digest"], digest.as_str());
    assert_eq!(lines.count(), rows.len());
}

#[test]
fn a_named_target_exports_that_state_and_restores_never_reuse_files() {
    let s = start();
    let (v, digest) = s.engine.read(|sp| (sp.version(), sp.digest().to_string()));
    for i in 0..16u16 {
        s.engine.write(Addr(i), fp(u64::from(i), 5)).expect("write");
    }
    s.engine.archive_now().expect("archive");
    let (st, body) = s.req(
        "GET",
        &format!("{A}/export?format=json&target=version:{v}"),
        Some(READ),
        None,
    );
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["version"], v);
    assert_eq!(body["digest"], digest.as_str());
    // a timeline alone restores that history's newest, not the live space
    let (st, body) = s.req(
        "GET",
        &format!("{A}/export?format=json&timeline=1"),
        Some(READ),
        None,
    );
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["version"], s.engine.version());
    // a second server on the same data (a restart: job ids start again) writes new files
    let restore = |s: &Server| {
        let (_, job) = s.req(
            "POST",
            &format!("{A}/restore"),
            Some(ADMIN),
            Some(serde_json::json!({})),
        );
        let j = s.wait(job["id"].as_str().expect("id"));
        assert_eq!(j["id"], "job-1");
        j["result"]["restore"]["file"]
            .as_str()
            .expect("file")
            .to_owned()
    };
    let first = restore(&s);
    let again = Shared::new(s.engine.clone(), Tokens::admin(ADMIN).with_read(READ));
    let handle = s.engine.runtime_handle();
    let listener = handle
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    handle.spawn(async move {
        let _ = bindspace_http::serve(again, listener, &Listen::default(), std::future::pending())
            .await;
    });
    let s2 = Server {
        engine: s.engine.clone(),
        base,
        client: reqwest::Client::new(),
        rt: tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("rt"),
        _dir: tempfile::tempdir().expect("tempdir"),
    };
    let second = restore(&s2);
    assert_ne!(first, second);
    assert!(std::path::Path::new(&first).exists() && std::path::Path::new(&second).exists());
}
