//! `bindspace demo` on the embedded default: everything in one local directory.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use bindspace_core::workload::Workload;
use bindspace_core::{BindSpace, Clock, Digest, SchemaVersion, SystemClock, snapshot};
use bindspace_xor_delta as xd;

use crate::DemoArgs;

struct Row {
    what: String,
    version: u64,
    bytes: u64,
    took: Duration,
    note: String,
}

/// Writes `bytes` durably: to a temporary name, fsync, rename, fsync the directory.
fn write_durably(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>,
) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let f = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let mut w = BufWriter::with_capacity(1 << 20, f);
    write(&mut w).with_context(|| format!("writing {}", tmp.display()))?;
    let f = w.into_inner().map_err(|e| e.into_error())?;
    f.sync_data()?;
    fs::rename(&tmp, path)?;
    File::open(path.parent().expect("file in a directory"))?.sync_all()?;
    Ok(())
}

pub fn run(args: &DemoArgs) -> Result<()> {
    ensure!(
        (0.0..=1.0).contains(&args.fill),
        "--fill must be between 0.0 and 1.0"
    );
    let (dir, temporary) = match &args.dir {
        Some(d) => (d.clone(), false),
        None => (
            std::env::temp_dir().join(format!("bindspace-demo-{}", std::process::id())),
            true,
        ),
    };
    let res = run_in(args, &dir);
    if temporary {
        let _ = fs::remove_dir_all(&dir);
    }
    res
}

fn run_in(args: &DemoArgs, dir: &Path) -> Result<()> {
    let clock = SystemClock;
    let snap_dir = dir.join("snapshots");
    let delta_dir = dir.join("deltas");
    for d in [&snap_dir, &delta_dir] {
        fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    if fs::read_dir(&delta_dir)?.next().is_some() || fs::read_dir(&snap_dir)?.next().is_some() {
        bail!(
            "{} already holds a demo; pass an empty --dir",
            dir.display()
        );
    }
    let schema = SchemaVersion::CURRENT.with_words(args.words);
    let mut rows = Vec::new();
    eprintln!("bindspace demo: backups in {}", dir.display());

    // 1. A populated space and its full snapshot.
    let t = Instant::now();
    let mut wl = Workload::new(args.seed, schema);
    let mut space = wl.filled_space(args.fill)?;
    rows.push(Row {
        what: "populate".into(),
        version: space.version(),
        bytes: 0,
        took: t.elapsed(),
        note: format!("{} of {} addresses", space.len(), space.address_space()),
    });
    let t = Instant::now();
    let full_path = snap_dir.join(format!("{:020}.snap", space.version()));
    let mut full_bytes = 0;
    write_durably(&full_path, |w| {
        full_bytes = snapshot::write_to(&space, clock.now_us(), w)?;
        Ok(())
    })?;
    let full_version = space.version();
    let mut digests: Vec<(u64, Digest)> = vec![(full_version, space.digest())];
    rows.push(Row {
        what: "full snapshot".into(),
        version: full_version,
        bytes: full_bytes,
        took: t.elapsed(),
        note: "native format, blake3".into(),
    });

    // 2. Rounds of writes, each backed up as an incremental from dirty tracking.
    let mut deltas: Vec<PathBuf> = Vec::new();
    let mut mark = space.mark();
    for round in 1..=args.rounds {
        wl.run(&mut space, args.ops)?;
        let t = Instant::now();
        let delta = xd::compute_dirty(&space, &mark, clock.now_us())?;
        let bytes = xd::encode(&delta);
        let path = delta_dir.join(format!(
            "{:020}-{:020}.delta",
            delta.from_version, delta.to_version
        ));
        write_durably(&path, |w| w.write_all(&bytes))?;
        let s = delta.stats();
        rows.push(Row {
            what: format!("incremental {round}"),
            version: delta.to_version,
            bytes: bytes.len() as u64,
            took: t.elapsed(),
            note: format!(
                "{} created, {} changed, {} deleted",
                s.created, s.changed, s.deleted
            ),
        });
        deltas.push(path);
        digests.push((space.version(), space.digest()));
        mark = space.mark();
    }

    // 3. Restore the newest version and one in the middle, from the files alone.
    let targets = [digests.len() - 1, digests.len() / 2];
    for (label, &i) in ["restore newest", "restore older"].iter().zip(&targets) {
        let (version, want) = digests[i];
        let t = Instant::now();
        let (restored, read) = restore(&full_path, &deltas[..i])?;
        let took = t.elapsed();
        ensure!(
            restored.version() == version,
            "restored version {} != {version}",
            restored.version()
        );
        let got = restored.digest();
        ensure!(
            got == want,
            "digest mismatch at version {version}: restored {got}, recorded {want}"
        );
        rows.push(Row {
            what: label.to_string(),
            version,
            bytes: read,
            took,
            note: format!(
                "digest ok ({}…), full + {i} deltas",
                &want.to_string()[..12]
            ),
        });
    }

    println!(
        "{:<16} {:>10} {:>14} {:>10}  note",
        "step", "version", "bytes", "time"
    );
    for r in &rows {
        println!(
            "{:<16} {:>10} {:>14} {:>10.1?}  {}",
            r.what, r.version, r.bytes, r.took, r.note
        );
    }
    println!(
        "demo ok: {} versions backed up, 2 restores verified by blake3 digest",
        digests.len()
    );
    Ok(())
}

/// Restores from a full snapshot file and delta files; returns the space and bytes read.
fn restore(full: &Path, deltas: &[PathBuf]) -> Result<(BindSpace, u64)> {
    let bytes = fs::read(full).with_context(|| format!("reading {}", full.display()))?;
    let mut read = bytes.len() as u64;
    let mut space = snapshot::decode(&bytes)
        .with_context(|| format!("decoding {}", full.display()))?
        .space;
    for p in deltas {
        let bytes = fs::read(p).with_context(|| format!("reading {}", p.display()))?;
        read += bytes.len() as u64;
        let d = xd::decode(&bytes).with_context(|| format!("decoding {}", p.display()))?;
        xd::apply(&mut space, &d).with_context(|| format!("applying {}", p.display()))?;
    }
    Ok((space, read))
}
