//! The `bindspace` binary, run as a process.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::process::Command;

fn bindspace() -> Command {
    Command::new(env!("CARGO_BIN_EXE_bindspace"))
}

/// `bindspace demo` in `dir`, small: two rounds of 100 ops on 8-word fingerprints,
/// 10 % filled (the repository is `dir/data/repo`).
fn small_demo(dir: &std::path::Path) -> std::process::Output {
    bindspace()
        .args([
            "demo", "--rounds", "2", "--ops", "100", "--words", "8", "--fill", "0.1", "--dir",
        ])
        .arg(dir)
        .output()
        .unwrap()
}

#[test]
fn demo_backs_up_through_the_wal_and_restores_points_in_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = bindspace()
        .args([
            "demo", "--rounds", "4", "--ops", "300", "--words", "16", "--fill", "0.1", "--dir",
        ])
        .arg(dir.path())
        .output()
        .expect("run bindspace");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("demo ok: 5 backups + WAL, 5 point-in-time restores verified"),
        "{stdout}"
    );
    for label in [
        "PITR latest",
        "PITR mid-round",
        "PITR at a delta",
        "PITR restore point",
        "PITR time",
    ] {
        let line = stdout.lines().find(|l| l.starts_with(label)).expect(label);
        assert!(line.contains("digest ok"), "{line}");
    }
    // The mid-round and latest targets need WAL no backup holds.
    let mid = stdout
        .lines()
        .find(|l| l.starts_with("PITR mid-round"))
        .unwrap();
    assert!(!mid.contains(" 0 WAL segments"), "{mid}");
    assert!(stdout.contains("differential backup"), "{stdout}");
    // The repository it printed restores on its own, through the CLI.
    let repo = stdout
        .lines()
        .find_map(|l| l.strip_prefix("repository: "))
        .unwrap();
    let out = bindspace()
        .args(["list", "--json", "--repo", repo])
        .output()
        .unwrap();
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 5);
    // A second run into the same directory refuses rather than mixing data.
    let again = bindspace()
        .args(["demo", "--rounds", "1", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already holds a demo"));
}

#[test]
fn a_damaged_delta_is_planned_around_or_fails_the_restore_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = small_demo(dir.path());
    assert!(out.status.success());
    let repo = dir.path().join("data/repo");
    let delta = std::fs::read_dir(repo.join("deltas"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut bytes = std::fs::read(&delta).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    std::fs::write(&delta, bytes).unwrap();
    let out = bindspace()
        .args(["restore", "--latest", "--repo"])
        .arg(format!("file://{}", repo.display()))
        .output()
        .unwrap();
    // another path to the newest state exists (the full and the WAL archive): the
    // restore takes it and says which artifact it planned around (issue 16, item 8)
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("planned around delta "), "{stdout}");
    // with the WAL archive gone too, no path is left: it fails naming the artifact
    std::fs::remove_dir_all(repo.join("wal")).unwrap();
    let out = bindspace()
        .args(["restore", "--latest", "--repo"])
        .arg(format!("file://{}", repo.display()))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("intact") && err.contains("corrupt"), "{err}");
    assert!(err.contains("delta "), "names the artifact: {err}");
}

#[test]
fn bad_arguments_fail_with_a_one_line_error() {
    let out = bindspace()
        .args(["demo", "--rounds", "0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let out = bindspace().args(["demo", "--fill", "2"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("--fill"));
}

#[test]
fn migrate_plan_and_apply_a_snapshot() {
    use bindspace_core::{SchemaVersion, snapshot, workload::Workload};
    let dir = tempfile::tempdir().unwrap();
    let space = Workload::new(9, SchemaVersion::CURRENT.with_words(200))
        .filled_space(0.01)
        .unwrap();
    let src = dir.path().join("src.snap");
    std::fs::write(&src, snapshot::encode(&space, 5)).unwrap();
    // plan, as JSON
    let out = bindspace()
        .args(["migrate", "plan", "--words", "156", "--json", "--snapshot"])
        .arg(&src)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["lossy"], true);
    assert_eq!(plan["occupied"], space.len());
    assert!(
        plan["warnings"][0]["message"]
            .as_str()
            .unwrap()
            .contains("shrinking 200 → 156 words drops 44 words")
    );
    // apply without consent: refused, one line, non-zero, nothing written
    let dst = dir.path().join("dst.snap");
    let out = bindspace()
        .args(["migrate", "apply", "--words", "156", "--snapshot"])
        .arg(&src)
        .arg("--out")
        .arg(&dst)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--allow-truncate"), "{err}");
    assert!(!dst.exists());
    // with consent
    let out = bindspace()
        .args([
            "migrate",
            "apply",
            "--words",
            "156",
            "--allow-truncate",
            "--snapshot",
        ])
        .arg(&src)
        .arg("--out")
        .arg(&dst)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let back = snapshot::decode(&std::fs::read(&dst).unwrap())
        .unwrap()
        .space;
    assert_eq!(back.words(), 156);
    assert_eq!(back.len(), space.len());
    for (a, fp) in space.iter() {
        assert_eq!(back.read(a).unwrap(), &fp[..156]);
    }
    // unknown feature: one-line error
    let out = bindspace()
        .args(["migrate", "plan", "--feature", "nope", "--snapshot"])
        .arg(&src)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown feature \"nope\""));
}

/// Issue 16, item 7: without `--dir` the demo's repository is temporary and removed on
/// exit; it says so rather than printing a path that is gone.
#[test]
fn a_temporary_demo_says_its_repository_is_gone() {
    let out = bindspace()
        .args([
            "demo", "--rounds", "1", "--ops", "50", "--words", "4", "--fill", "0.01",
        ])
        .output()
        .expect("run bindspace");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("removed again"), "{stdout}");
}

// Issue 17: `bindspace verify` exits 0 on a clean repository, 5 naming damage, 6 once
// `--repair` healed all of it from the other store, and 0 again afterwards.
#[test]
fn verify_exits_by_what_it_found_and_repairs_from_the_other_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = small_demo(dir.path());
    assert!(out.status.success());
    let a = dir.path().join("data/repo");
    let b = dir.path().join("copy");
    bindspace_testkit::copy_dir(&a, &b);
    let repo = format!("file://{},file://{}", a.display(), b.display());
    let verify = |extra: &[&str]| {
        let out = bindspace()
            .args(["verify", "--repo", &repo, "--recheck-days", "0"])
            .args(extra)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code(), text)
    };
    let (code, text) = verify(&[]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("result: clean"), "{text}");

    let delta = std::fs::read_dir(a.join("deltas"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut bytes = std::fs::read(&delta).unwrap();
    let n = bytes.len();
    bytes[n - 9] ^= 0x01;
    std::fs::write(&delta, bytes).unwrap();
    let (code, text) = verify(&[]);
    assert_eq!(code, Some(5), "{text}");
    assert!(text.contains("damaged: delta"), "{text}");
    let (code, text) = verify(&["--repair"]);
    assert_eq!(code, Some(6), "{text}");
    assert!(text.contains("repaired: delta"), "{text}");
    let (code, text) = verify(&["--level", "deep", "--json"]);
    assert_eq!(code, Some(0), "{text}");
    let report: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert!(
        report["deep"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["status"] != "failed"),
        "{report}"
    );
}

// Issue 17, as a new user saw it: two flipped bytes in the newest catalog generation
// made `list` and `restore-point create` fail with no way forward. `list` now reads the
// previous generation with a warning, a write says how to go on, and `verify --repair`
// rebuilds the catalog (exit 5: with one store, what only the damaged generation named
// cannot be known, and that is said), after which writes work again.
#[test]
fn a_damaged_newest_catalog_is_read_past_with_a_warning_and_repair_rebuilds_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = small_demo(dir.path());
    assert!(out.status.success());
    let a = dir.path().join("data/repo");
    let repo = format!("file://{}", a.display());
    let run = |args: &[&str]| {
        let out = bindspace()
            .args(args)
            .args(["--repo", &repo])
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, _, err) = run(&["restore-point", "create", "kept"]);
    assert_eq!(code, Some(0), "{err}");
    let newest = std::fs::read_dir(a.join("catalog"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("manifest-")
        })
        .max()
        .unwrap();
    let mut bytes = std::fs::read(&newest).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x20;
    bytes[mid + 1] ^= 0x01;
    std::fs::write(&newest, bytes).unwrap();

    let (code, out, err) = run(&["list"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("full"), "{out}");
    assert!(
        err.contains("warning") && err.contains("damaged") && err.contains("verify --repair"),
        "{err}"
    );
    let (code, _, err) = run(&["restore-point", "create", "refused"]);
    assert_ne!(code, Some(0));
    assert!(err.contains("verify --repair"), "{err}");
    // one store: nothing else can tell what only the damaged generation named, so the
    // repair rebuilds the catalog and says that, not "all repaired" (exit 5); a second
    // run finds nothing wrong
    let (code, out, err) = run(&["verify", "--repair"]);
    assert_eq!(code, Some(5), "{out}{err}");
    assert!(
        out.contains("catalog rebuilt") && out.contains("cannot be recovered"),
        "{out}"
    );
    let (code, out, err) = run(&["verify"]);
    assert_eq!(code, Some(0), "{out}{err}");
    let (code, _, err) = run(&["restore-point", "create", "after"]);
    assert_eq!(code, Some(0), "{err}");
    let (code, out, err) = run(&["restore-point", "list"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(!err.contains("warning"), "{err}");
    assert!(out.contains("after"), "{out}");
}

// Issue 17: `bindspace dr drill` on an engine data directory writes a sentinel and
// restores it from the store (exit 0), `dr report` shows the history, and a drill whose
// RPO target cannot be met exits 7 naming it. The demo itself ends with a drill and a
// verify.
#[test]
fn dr_drill_measures_and_exits_by_its_targets_and_report_shows_the_history() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = small_demo(dir.path());
    let demo = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{demo}");
    assert!(
        demo.contains("restore drill") && demo.contains("verify (standard)"),
        "{demo}"
    );
    let data = dir.path().join("data");
    let repo = format!("file://{}", data.join("repo").display());
    let run = |args: &[&str]| {
        let out = bindspace()
            .args(args)
            .args(["--repo", &repo])
            .output()
            .unwrap();
        (
            out.status.code(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let data_arg = data.display().to_string();
    let (code, text) = run(&["dr", "drill", "--data", &data_arg]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("sentinel restored") && text.contains("result: passed"),
        "{text}"
    );
    // no engine, no sentinel; an RPO target of zero seconds cannot be met
    let (code, text) = run(&[
        "dr",
        "drill",
        "--target",
        "random",
        "--rpo-target-secs",
        "0",
    ]);
    assert_eq!(code, Some(7), "{text}");
    assert!(text.contains("MISSED") && text.contains("RPO"), "{text}");
    let (code, text) = run(&["dr", "report"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("passed") && text.contains("FAILED") && text.contains("trend"),
        "{text}"
    );
    let (code, text) = run(&["dr", "drill", "--target", "nonsense"]);
    assert_ne!(code, Some(0));
    assert!(text.contains("point:NAME"), "{text}");
}

// Issue 18: `bindspace replicate` copies the demo's repository into another directory
// (`--must-exist` first refuses the empty one, copying nothing), the replica alone
// restores the latest state with the same digest, and a repeat run copies nothing.
#[test]
fn replicate_copies_a_repository_that_then_restores_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = small_demo(dir.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let repo = format!("file://{}", dir.path().join("data/repo").display());
    let replica = format!("file://{}", dir.path().join("replica").display());
    let run = |args: &[&str]| {
        let out = bindspace().args(args).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, _, err) = run(&[
        "replicate",
        "--from",
        &repo,
        "--to",
        &replica,
        "--must-exist",
    ]);
    assert_ne!(code, Some(0));
    assert!(err.contains("--must-exist"), "{err}");
    let (code, out, err) = run(&["replicate", "--from", &repo, "--to", &replica, "--json"]);
    assert_eq!(code, Some(0), "{err}");
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(!r["copied"].as_array().unwrap().is_empty(), "{r}");
    assert_eq!(r["caught_up"], true, "{r}");
    // the lag is measured from the run's start: the time the copy itself took
    assert!(r["lag_ms"].as_u64().unwrap() < 60_000, "{r}");
    let digest = |repo: &str| {
        let (code, out, err) = run(&["restore", "--latest", "--json", "--repo", repo]);
        assert_eq!(code, Some(0), "{err}");
        serde_json::from_str::<serde_json::Value>(&out).unwrap()["digest"].clone()
    };
    assert_eq!(digest(&replica), digest(&repo));
    // issue 21: times people type; now, as a time ago, is the latest state
    let (code, out, err) = run(&["restore", "--to-time", "-0s", "--json", "--repo", &replica]);
    assert_eq!(code, Some(0), "{err}");
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["digest"], digest(&repo), "{r}");
    let (code, _, err) = run(&[
        "restore",
        "--to-time",
        "2025-13-01T00:00:00Z",
        "--repo",
        &replica,
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("RFC 3339"), "{err}");
    let (code, out, err) = run(&["replicate", "--from", &repo, "--to", &replica, "--json"]);
    assert_eq!(code, Some(0), "{err}");
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["copied"], serde_json::json!([]), "{r}");
}

// Issue 18: `bindspace standby run --once` restores the demo's repository and reports
// where it stands; `standby promote --data DIR` starts a new timeline there, which
// `timeline list` then shows.
#[test]
fn a_standby_runs_once_and_promotes_onto_a_new_timeline() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = small_demo(dir.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let repo = format!("file://{}", dir.path().join("data/repo").display());
    let run = |args: &[&str]| {
        let out = bindspace()
            .args(args)
            .args(["--repo", &repo, "--json"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let s = run(&["standby", "run", "--once"]);
    let version = s["version"].as_u64().unwrap();
    assert!(version > 0, "{s}");
    let promoted = dir.path().join("promoted");
    let p = run(&["standby", "promote", "--data", promoted.to_str().unwrap()]);
    assert_eq!(p["version"], version, "{p}");
    assert_eq!(p["branched_from"], 1, "{p}");
    let timeline = p["timeline"].as_u64().unwrap();
    assert!(timeline > 1, "{p}");
    let out = bindspace()
        .args(["timeline", "list", "--repo", &repo])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("timeline {timeline}")), "{text}");
}

/// A regex-free check for an RFC 3339 time to the second (`2025-12-24T15:30:00Z`).
fn has_rfc3339(s: &str) -> bool {
    s.as_bytes().windows(20).any(|w| {
        w.iter().enumerate().all(|(i, &c)| match i {
            4 | 7 => c == b'-',
            10 => c == b'T',
            13 | 16 => c == b':',
            19 => c == b'Z',
            _ => c.is_ascii_digit(),
        })
    })
}

// Issue 21: human output reads like pgBackRest's `info`: `list` in aligned columns with
// times, ages and sizes; `show` in words, not JSON; restore points and drills with
// times; a time before the first full names the first restorable time, and one after
// the newest state says the restore is that state.
#[test]
fn human_output_has_times_ages_and_sizes_and_times_out_of_range_name_the_nearest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = small_demo(dir.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let repo = format!("file://{}", dir.path().join("data/repo").display());
    let run = |args: &[&str]| {
        let out = bindspace()
            .args(args)
            .args(["--repo", &repo])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        (out.status.code(), text, err)
    };
    let (code, list, err) = run(&["list"]);
    assert_eq!(code, Some(0), "{err}");
    let mut lines = list.lines();
    let header = lines.next().unwrap();
    for col in [
        "id", "kind", "versions", "finished", "age", "size", "status",
    ] {
        assert!(header.split_whitespace().any(|c| c == col), "{header}");
    }
    let age_at = header.find("age").unwrap();
    let rows: Vec<&str> = lines.take_while(|l| !l.contains("backups (")).collect();
    assert!(rows.len() >= 3, "{list}");
    for r in &rows {
        assert!(has_rfc3339(r), "{r}");
        assert!(r.contains(" ago") || r.contains("just now"), "{r}");
        assert!(
            r.contains(" B") || r.contains(" KB") || r.contains(" MB"),
            "{r}"
        );
        // aligned: every row's age starts under the header's
        assert!(
            r.get(age_at..).is_some_and(
                |a| a.starts_with(|c: char| c.is_ascii_digit()) || a.starts_with("just")
            ),
            "{header}\n{r}"
        );
    }
    let (_, json, _) = run(&["list", "--json"]);
    let entries: serde_json::Value = serde_json::from_str(&json).unwrap();
    let id = entries[0]["id"].as_str().unwrap();
    let (_, show_full, _) = run(&["show", id]);
    assert!(
        show_full.contains(&format!(
            "versions     the state at version {}",
            entries[0]["to_version"]
        )),
        "{show_full}"
    );
    let delta = &entries[1];
    let delta_id = delta["id"].as_str().unwrap();
    let (code, show, err) = run(&["show", delta_id]);
    assert_eq!(code, Some(0), "{err}");
    assert!(!show.trim_start().starts_with('{'), "{show}");
    for want in [
        format!("backup       {delta_id}"),
        format!("({} bytes)", delta["size"]),
        format!(
            "versions     {}..={}",
            delta["from_version"], delta["to_version"]
        ),
        format!("builds on    {id}"),
    ] {
        assert!(show.contains(&want), "{want:?} in\n{show}");
    }
    assert!(show.contains("finished") && has_rfc3339(&show), "{show}");
    let (code, points, err) = run(&["restore-point", "list"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        points.starts_with("name") && has_rfc3339(&points),
        "{points}"
    );
    let (code, report, err) = run(&["dr", "report"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        report.starts_with("started") && has_rfc3339(&report),
        "{report}"
    );

    // before the first full: no restore, and the first restorable time is named
    let (code, _, err) = run(&["restore", "--to-time", "2001-01-01T00:00:00Z"]);
    assert_ne!(code, Some(0));
    assert!(
        err.contains("2001-01-01T00:00:00Z is before the first restorable time")
            && err.contains(&format!("(full {id} at version"))
            && err.contains("the nearest restore point after it is \"demo-point\""),
        "{err}"
    );
    // the time it names restores (exactly: not rounded down to a refused second)
    let first = err
        .split("the first restorable time, ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .unwrap()
        .trim_end_matches(',');
    let (code, _, err) = run(&["restore", "--to-time", first]);
    assert_eq!(code, Some(0), "{first}: {err}");
    // between two states: no note
    let (code, text, err) = run(&["restore", "--to-time", first, "--json"]);
    assert_eq!(code, Some(0), "{err}");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["after_newest_state"], false, "{v}");
    // after the newest: the newest state, said so
    let (code, text, err) = run(&["restore", "--to-time", "2999-01-01T00:00:00+01:00"]);
    assert_eq!(code, Some(0), "{err}");
    let (_, latest, _) = run(&["restore", "--latest", "--json"]);
    let latest: serde_json::Value = serde_json::from_str(&latest).unwrap();
    assert!(
        text.contains("note: 2998-12-31T23:00:00Z is after the newest state timeline 1 holds")
            && text.contains(&format!("digest {}", latest["digest"].as_str().unwrap())),
        "{text}"
    );
}

/// Runs `bindspace ARGS` and returns whether it succeeded and its peak RSS in bytes
/// (wait4's ru_maxrss, of that process alone).
fn peak_rss(args: &[&str]) -> (bool, u64) {
    #[allow(clippy::zombie_processes)] // reaped by wait4 below, which also reads rusage
    let child = bindspace()
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut status = 0;
    // SAFETY: wait4 on our own child with valid out-pointers; rusage is plain data
    #[allow(unsafe_code)]
    let (pid, ru) = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        let pid = libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut ru);
        (pid, ru)
    };
    assert_eq!(pid, child.id() as libc::pid_t);
    let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    (ok, ru.ru_maxrss as u64 * 1024)
}

// Issue 21: an export streams what it writes. Its peak RSS is at most 16 MB above a
// restore's of the same state (a restore holds the space, an export the space and its
// writer's buffers), on a full 65,536-address space of 156 words (82 MB: size is the
// point here).
#[test]
fn an_export_peaks_at_most_16_mb_above_a_restore() {
    use bindspace::{BackupConfig, Engine};
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let e = Engine::open(
        &data,
        BackupConfig {
            background_jobs: false,
            ..BackupConfig::default()
        },
    )
    .unwrap();
    let words = bindspace_core::FINGERPRINT_WORDS;
    for batch in (0..=u16::MAX).collect::<Vec<u16>>().chunks(4096) {
        let ops = batch
            .iter()
            .map(|&a| {
                let w: Vec<u64> = (0..words as u64)
                    .map(|i| (u64::from(a) << 32 | i).wrapping_mul(0x9e37_79b9_7f4a_7c15))
                    .collect();
                bindspace_wal::Op::Write(
                    bindspace_core::Addr(a),
                    bindspace_core::Fingerprint::from_words(w),
                )
            })
            .collect();
        e.apply(ops).unwrap();
    }
    e.backup_now(bindspace_catalog::BackupKind::Full).unwrap();
    e.close().unwrap();
    let repo = format!("file://{}", data.join("repo").display());
    let (ok, restore) = peak_rss(&["restore", "--latest", "--repo", &repo]);
    assert!(ok);
    let space = 65_536 * words as u64 * 8;
    assert!(restore > space, "a restore holds the space: {restore} B");
    let mut report = format!("restore {:.1} MB", restore as f64 / 1e6);
    for format in ["json", "ndjson", "csv", "parquet"] {
        let out = dir.path().join(format!("space.{format}"));
        let (ok, peak) = peak_rss(&[
            "export",
            "--latest",
            "--format",
            format,
            "--repo",
            &repo,
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(ok, "{format}");
        // the file holds every address: far larger than what the export may add
        assert!(
            std::fs::metadata(&out).unwrap().len() > space / 2,
            "{format}"
        );
        report.push_str(&format!(", {format} {:.1} MB", peak as f64 / 1e6));
        assert!(
            peak <= restore + 16_000_000,
            "{format} export peaked at {peak} B, restore at {restore} B: {report}"
        );
    }
    println!("peak RSS: {report}");
}

// Issue 20: `bindspace init --encrypt` makes an encrypted repository (the passphrase
// from the environment); an engine with the passphrase backs up into it; the CLI
// restores it exactly with the passphrase, lists without one, refuses a restore
// without one (saying what to set) and a wrong one with its own exit code (9), and a
// plaintext init with a passphrase set is refused.
#[test]
fn an_encrypted_repository_through_the_cli() {
    use bindspace::{BackupConfig, Engine};
    let dir = tempfile::tempdir().expect("tempdir");
    let repo_dir = dir.path().join("repo");
    std::fs::create_dir_all(&repo_dir).unwrap();
    let repo = format!("file://{}", repo_dir.display());
    let run = |env: &[(&str, &str)], args: &[&str]| with_secrets(&repo, env, args);
    let pw = [("BINDSPACE_PASSPHRASE", "a long passphrase for tests")];
    let (code, _, err) = run(&[], &["init", "--encrypt"]);
    assert_ne!(code, Some(0));
    assert!(err.contains("BINDSPACE_PASSPHRASE"), "{err}");
    let (code, _, err) = run(&pw, &["init"]);
    assert_ne!(code, Some(0));
    assert!(
        err.contains("refusing to make a plaintext repository"),
        "{err}"
    );
    let (code, out, err) = run(&pw, &["init", "--encrypt"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("encrypted"), "{out}");
    let e = Engine::builder(dir.path().join("data"))
        .config(BackupConfig {
            fingerprint_words: 8,
            address_space: 256,
            background_jobs: false,
            destinations: vec![repo.clone()],
            ..BackupConfig::default()
        })
        .secret(bindspace_crypt::SlotSecret::Passphrase(pw[0].1.into()))
        .open()
        .unwrap();
    for a in 0..100u16 {
        let words: Vec<u64> = (0..8).map(|w| u64::from(a) * 0x9e37_79b9 + w).collect();
        e.write(
            bindspace_core::Addr(a),
            bindspace_core::Fingerprint::from_words(words),
        )
        .unwrap();
    }
    e.backup_now(bindspace_catalog::BackupKind::Full).unwrap();
    e.delete(bindspace_core::Addr(5)).unwrap();
    e.archive_now().unwrap();
    let digest = e.read(|s| s.digest().to_string());
    e.close().unwrap();
    let (code, out, err) = run(&pw, &["restore", "--latest", "--json"]);
    assert_eq!(code, Some(0), "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["digest"], digest.as_str());
    let (code, list, err) = run(&[], &["list"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(list.contains("full"), "{list}");
    let (code, _, err) = run(&[], &["restore", "--latest"]);
    assert_ne!(code, Some(0));
    assert!(err.contains("BINDSPACE_PASSPHRASE"), "{err}");
    let (code, _, err) = run(
        &[("BINDSPACE_PASSPHRASE", "wrong")],
        &["restore", "--latest"],
    );
    assert_eq!(code, Some(9), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("wrong passphrase") && !err.contains("corrupt"),
        "{err}"
    );
    let (code, out, err) = run(&pw, &["verify"]);
    assert_eq!(code, Some(0), "{out}{err}");
}

/// Every variable a secret comes from, unset for a command unless a test sets it.
const SECRET_VARS: [&str; 6] = [
    "BINDSPACE_PASSPHRASE",
    "BINDSPACE_PASSPHRASE_FILE",
    "BINDSPACE_KEY_FILE",
    "BINDSPACE_MASTER_KEY_FILE",
    "BINDSPACE_NEW_PASSPHRASE",
    "BINDSPACE_TO_PASSPHRASE",
];

/// `bindspace ARGS --repo REPO` with only the secret variables of `env` set: its exit
/// code, stdout and stderr.
fn with_secrets(repo: &str, env: &[(&str, &str)], args: &[&str]) -> (Option<i32>, String, String) {
    let mut c = bindspace();
    c.args(args).args(["--repo", repo]);
    for k in SECRET_VARS {
        c.env_remove(k);
    }
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A file holding `text`, mode 0600 (secret files others may read are refused).
fn secret_file(path: &std::path::Path, text: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path.display().to_string()
}

// The key-management runbook of docs/OPERATIONS.md, command by command: slots added and
// removed, a rotation with re-encryption, the master key exported and used, a
// master-key rotation; checksum verify without a key; `restore --to` into an encrypted
// destination (another store of the repository, and a new encrypted repository taking
// a plaintext history). Every restore gives the digest the engine had.
#[test]
fn key_management_through_the_cli() {
    use bindspace::{BackupConfig, Engine};
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let url = |n: &str| {
        let p = d.join(n);
        std::fs::create_dir_all(&p).unwrap();
        format!("file://{}", p.display())
    };
    let repo = url("repo");
    let run = with_secrets;
    let pw1 = [("BINDSPACE_PASSPHRASE", "first passphrase of the runbook")];
    let (code, _, err) = run(&repo, &pw1, &["init", "--encrypt"]);
    assert_eq!(code, Some(0), "{err}");
    let e = Engine::builder(d.join("data"))
        .config(BackupConfig {
            fingerprint_words: 8,
            address_space: 256,
            background_jobs: false,
            destinations: vec![repo.clone()],
            ..BackupConfig::default()
        })
        .secret(bindspace_crypt::SlotSecret::Passphrase(pw1[0].1.into()))
        .open()
        .unwrap();
    for a in 0..120u16 {
        let words: Vec<u64> = (0..8).map(|w| u64::from(a) * 0x9e37_79b9 + w).collect();
        e.write(
            bindspace_core::Addr(a),
            bindspace_core::Fingerprint::from_words(words),
        )
        .unwrap();
    }
    e.backup_now(bindspace_catalog::BackupKind::Full).unwrap();
    e.delete(bindspace_core::Addr(9)).unwrap();
    e.archive_now().unwrap();
    let digest = e.read(|s| s.digest().to_string());
    e.close().unwrap();
    let restores = |repo: &str, env: &[(&str, &str)]| {
        let (code, out, err) = run(repo, env, &["restore", "--latest", "--json"]);
        if code != Some(0) {
            return (code, err);
        }
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["digest"], digest.as_str(), "{out}");
        (code, err)
    };

    // checksum verify needs no key
    let (code, out, err) = run(&repo, &[], &["verify", "--level", "checksum"]);
    assert_eq!(code, Some(0), "{out}{err}");
    // a second passphrase (from a file) and a key file
    let pw2_file = secret_file(&d.join("pw2"), "second passphrase of the runbook\n");
    let (code, out, err) = run(
        &repo,
        &pw1,
        &[
            "key",
            "add",
            "--label",
            "ops",
            "--new-passphrase-file",
            &pw2_file,
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("added key slot 2"), "{out}");
    let key_file = d.join("repo.key");
    let (code, _, err) = run(
        &repo,
        &pw1,
        &[
            "key",
            "add",
            "--new-key-file",
            &key_file.display().to_string(),
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    let kf = [("BINDSPACE_KEY_FILE", key_file.to_str().unwrap())];
    let pw2 = [("BINDSPACE_PASSPHRASE_FILE", pw2_file.as_str())];
    // a world-readable passphrase file is refused
    let loose = d.join("loose");
    std::fs::write(&loose, "x\n").unwrap();
    let (code, err) = restores(
        &repo,
        &[("BINDSPACE_PASSPHRASE_FILE", loose.to_str().unwrap())],
    );
    assert!(code != Some(0) && err.contains("chmod 600"), "{err}");
    // the first slot removed: its passphrase no longer opens (exit 9)
    let (code, _, err) = run(&repo, &kf, &["key", "remove", "1"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(restores(&repo, &pw1).0, Some(9));
    assert_eq!(restores(&repo, &kf).0, Some(0));
    // rotation with re-encryption: the first epoch is retired
    let (code, out, err) = run(&repo, &pw2, &["key", "rotate", "--reencrypt", "--json"]);
    assert_eq!(code, Some(0), "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(v["resealed"].as_u64().unwrap() >= 2, "{out}");
    assert_eq!(v["retired_epochs"], serde_json::json!([1]), "{out}");
    let (code, out, _) = run(&repo, &[], &["key", "list", "--json"]);
    assert_eq!(code, Some(0));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["slots"].as_array().unwrap().len(), 2, "{out}");
    assert_eq!(v["epochs"][0]["retired"], true, "{out}");
    assert_eq!(v["epochs"][1]["current"], true, "{out}");
    assert_eq!(restores(&repo, &pw2).0, Some(0));
    // the master key: refused without the acknowledgement; with it, it opens alone
    let (code, _, err) = run(&repo, &pw2, &["key", "export"]);
    assert!(code != Some(0) && err.contains("--i-understand"), "{err}");
    let (code, master, err) = run(&repo, &pw2, &["key", "export", "--i-understand"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("warning"), "{err}");
    let master_file = secret_file(&d.join("master"), &master);
    let mk = [("BINDSPACE_MASTER_KEY_FILE", master_file.as_str())];
    assert_eq!(restores(&repo, &mk).0, Some(0));
    // a new master key: only the slot of the secret given stays; the old master key
    // and the removed key file no longer open
    let (code, out, err) = run(&repo, &pw2, &["key", "rotate", "--master"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(restores(&repo, &pw2).0, Some(0));
    assert_eq!(restores(&repo, &kf).0, Some(9));
    assert_eq!(restores(&repo, &mk).0, Some(9));
    let (code, out, err) = run(&repo, &[], &["verify", "--level", "checksum"]);
    assert_eq!(code, Some(0), "{out}{err}");

    // restore --to another store of this repository: it receives the keyring and a
    // sealed full, and restores alone
    let copy = url("copy");
    let (code, _, err) = run(&repo, &pw2, &["restore", "--latest", "--to", &copy]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(restores(&copy, &pw2).0, Some(0));
    assert_eq!(
        restores(&copy, &[]).0,
        Some(1),
        "locked without the passphrase"
    );
    // a plaintext history into a new encrypted repository (`init --encrypt` there,
    // its passphrase given for the destination only)
    let plain = d.join("plain");
    let out = small_demo(&plain);
    assert!(out.status.success());
    let plain_repo = format!("file://{}", plain.join("data").join("repo").display());
    let vault = url("vault");
    let pw3 = [("BINDSPACE_PASSPHRASE", "the vault's passphrase")];
    let (code, _, err) = run(&vault, &pw3, &["init", "--encrypt"]);
    assert_eq!(code, Some(0), "{err}");
    let (code, out, err) = run(
        &plain_repo,
        &[("BINDSPACE_TO_PASSPHRASE", pw3[0].1)],
        &["restore", "--latest", "--to", &vault, "--json"],
    );
    assert_eq!(code, Some(0), "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let (code, out2, err) = run(&vault, &pw3, &["restore", "--latest", "--json"]);
    assert_eq!(code, Some(0), "{err}");
    let w: serde_json::Value = serde_json::from_str(&out2).unwrap();
    assert_eq!(v["digest"], w["digest"], "{out}\n{out2}");
    // nothing in the vault is plaintext: verify flags none
    let (code, out, err) = run(&vault, &[], &["verify", "--level", "checksum"]);
    assert_eq!(code, Some(0), "{out}{err}");
}

// The passphrase typed at a terminal (a pty from `script`): `init --encrypt` asks
// twice, `key export` once (a wrong one is exit 9); a mismatch is refused. No
// variable is set.
#[test]
fn the_passphrase_is_asked_for_at_a_terminal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo_dir = dir.path().join("repo");
    std::fs::create_dir_all(&repo_dir).unwrap();
    let repo = format!("file://{}", repo_dir.display());
    let bin = env!("CARGO_BIN_EXE_bindspace");
    let at_terminal = |args: &str, typed: &str| {
        use std::io::Write;
        let mut c = std::process::Command::new("script");
        c.args(["-qec", &format!("{bin} {args} --repo {repo}"), "/dev/null"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        for k in SECRET_VARS {
            c.env_remove(k);
        }
        let mut child = c.spawn().unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(typed.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, out) = at_terminal("init --encrypt", "typed one\ntyped two\n");
    assert_ne!(code, Some(0), "{out}");
    assert!(out.contains("differ"), "{out}");
    let (code, out) = at_terminal("init --encrypt", "typed twice\ntyped twice\n");
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("bindspace passphrase:") && out.contains("encrypted"),
        "{out}"
    );
    // (echo: the test types ahead of the prompt, so the pty echoes before rpassword
    // turns echo off; that part is rpassword's)
    // the keyring opens with what was typed; a wrong one is exit 9
    let (code, out) = at_terminal("key list", "");
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = at_terminal("key export --i-understand", "typed twice\n");
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = at_terminal("key export --i-understand", "not it\n");
    assert_eq!(code, Some(9), "{out}");
}
