//! The standard level's checks: each artifact decodes (headers, payload hashes, WAL
//! frames, schemas), and the repository hangs together (every delta's base is there,
//! each history's WAL archive has no holes, the stores' catalogs agree, every schema
//! is one today's code reads).

use std::collections::BTreeMap;

use bindspace_catalog::{ArtifactId, BackupKind, History, Manifest};
use bindspace_core::{ArtifactHeader, SchemaVersion};
use bindspace_schema_migrate::{Compatibility, compatibility};

use crate::report::{Report, WalGap};
use crate::verify::{Seen, describe};

/// Why a schema cannot be read by this build, if it cannot.
fn unreadable(s: SchemaVersion) -> Option<String> {
    if s.major != SchemaVersion::CURRENT.major {
        return Some(format!(
            "schema {s}: major version {} is not this build's {}",
            s.major,
            SchemaVersion::CURRENT.major
        ));
    }
    match compatibility(s, s) {
        Compatibility::Incompatible { reason } => Some(format!("schema {s}: {reason}")),
        _ => None,
    }
}

/// Decodes an artifact's framing: a snapshot's or delta's header and payload hash,
/// its versions and schema; a WAL segment's header and every frame.
pub(crate) fn decode(id: &ArtifactId, bytes: &[u8]) -> Result<(), String> {
    let (first, last) = id.versions();
    match id {
        ArtifactId::WalSegment { .. } => {
            let start = bindspace_wal::segment::decode_header(bytes)?;
            if start != first {
                return Err(format!("segment header says it starts at {start}"));
            }
            let scan = bindspace_wal::segment::scan(bytes, start, |_| {});
            if let Some(p) = scan.problem {
                return Err(format!("frame at byte {}: {:?}", p.offset, p.error));
            }
            match scan.last_version {
                Some(v) if v == last => Ok(()),
                v => Err(format!("its frames end at version {v:?}, not {last}")),
            }
        }
        _ => {
            let kind = match id {
                ArtifactId::Snapshot { .. } => bindspace_core::ArtifactKind::Snapshot,
                _ => bindspace_core::ArtifactKind::Delta,
            };
            let (h, _) = ArtifactHeader::open(bytes, kind).map_err(|e| e.to_string())?;
            if (h.from_version, h.to_version) != (first, last) {
                return Err(format!(
                    "header says versions {}..{}",
                    h.from_version, h.to_version
                ));
            }
            unreadable(h.schema).map_or(Ok(()), Err)
        }
    }
}

/// The repository-wide checks, on what each store's catalog and listing hold.
pub(crate) fn repository(seen: &[Option<Seen>], report: &mut Report) {
    let live: Vec<&Seen> = seen.iter().flatten().collect();
    for s in &live {
        let name = s.store.name();
        chains(&name, &s.manifest, report);
        for e in &s.manifest.entries {
            if let Some(why) = unreadable(e.schema.into()) {
                report
                    .schemas
                    .push(format!("{name}: backup {}: {why}", e.id));
            }
        }
        wal_gaps(s, &live, report);
    }
    if let Some((first, rest)) = live.split_first() {
        for other in rest {
            agree(
                &first.store.name(),
                &first.manifest,
                &other.store.name(),
                &other.manifest,
                report,
            );
        }
    }
}

fn chains(store: &str, m: &Manifest, report: &mut Report) {
    for e in &m.entries {
        let Some(p) = &e.parent else { continue };
        match m.entries.iter().find(|x| &x.id == p) {
            None => report.chains.push(format!(
                "{store}: backup {} builds on {p}, which the catalog does not hold",
                e.id
            )),
            Some(base) if base.to_version != e.artifact.versions().0 => {
                report.chains.push(format!(
                    "{store}: backup {} starts at version {}, its base {p} ends at {}",
                    e.id,
                    e.artifact.versions().0,
                    base.to_version
                ))
            }
            Some(_) => {}
        }
    }
}

/// Holes in each live history's archived WAL, from its oldest full (or version 0)
/// to the newest archived version.
fn wal_gaps(s: &Seen, all: &[&Seen], report: &mut Report) {
    for (t, h, start) in wal_floors(&s.manifest) {
        let segs = stretches(s, &h);
        let mut next = start.saturating_add(1);
        for (a, b) in segs {
            if b < next {
                continue;
            }
            if a > next {
                let (first, last) = (next, a - 1);
                let held_by = all
                    .iter()
                    .filter(|o| o.store.name() != s.store.name() && covers(o, t, first, last))
                    .map(|o| o.store.name())
                    .collect();
                report.wal_gaps.push(WalGap {
                    store: s.store.name(),
                    timeline: t,
                    first,
                    last,
                    held_by,
                    repaired: false,
                });
            }
            next = b.saturating_add(1);
        }
    }
}

/// Each live history of catalog `m` with the version its archived WAL is needed
/// after: its oldest full (retention may sweep what precedes it), or 0.
pub(crate) fn wal_floors(m: &Manifest) -> Vec<(u32, History, u64)> {
    m.timeline_ids()
        .into_iter()
        .filter(|t| m.check_live(*t).is_ok())
        .filter_map(|t| {
            let h = History::of(m, t).ok()?;
            let start = m
                .entries
                .iter()
                .filter(|e| e.kind == BackupKind::Full && h.uses(&e.artifact))
                .map(|e| e.to_version)
                .min()
                .unwrap_or(0);
            Some((t, h, start))
        })
        .collect()
}

/// Whether a store with these [`wal_floors`] needs WAL segment `id`: some live history
/// replays a record of it past its floor.
pub(crate) fn needs_wal(floors: &[(u32, History, u64)], id: &ArtifactId) -> bool {
    floors
        .iter()
        .any(|(_, h, start)| h.uses(id) && id.versions().1.min(h.wal_limit(id)) > *start)
}

/// The versions `s`'s archive holds for history `h`, sorted: each segment it uses,
/// cut at the last record the history may replay from its timeline (a parent's
/// segment may run past the branch point; what follows it is not this history's).
fn stretches(s: &Seen, h: &History) -> Vec<(u64, u64)> {
    let mut segs: Vec<(u64, u64)> = s
        .listed
        .keys()
        .filter(|id| matches!(id, ArtifactId::WalSegment { .. }) && h.uses(id))
        .map(|id| {
            let (a, b) = id.versions();
            (a, b.min(h.wal_limit(id)))
        })
        .filter(|(a, b)| a <= b)
        .collect();
    segs.sort_unstable();
    segs
}

/// Whether `s`'s archive holds versions `first..=last` of timeline `t`'s history.
pub(crate) fn covers(s: &Seen, t: u32, first: u64, last: u64) -> bool {
    let Ok(h) = History::of(&s.manifest, t) else {
        return false;
    };
    let mut next = first;
    for (a, b) in stretches(s, &h) {
        if a <= next && b >= next {
            next = b.saturating_add(1);
        }
        if next > last {
            return true;
        }
    }
    false
}

/// Where two stores' catalogs (`a` of store `an`, `b` of `bn`) differ: backups, their
/// artifacts, restore points.
pub(crate) fn agree(an: &str, a: &Manifest, bn: &str, b: &Manifest, report: &mut Report) {
    let entries = |m: &Manifest| -> BTreeMap<String, (String, String)> {
        m.entries
            .iter()
            .map(|e| (e.id.clone(), (describe(&e.artifact), e.blake3.clone())))
            .collect()
    };
    let (ea, eb) = (entries(a), entries(b));
    for (id, x) in &ea {
        match eb.get(id) {
            None => report
                .disagreements
                .push(format!("{an} has backup {id}, {bn} does not")),
            Some(y) if y != x => report.disagreements.push(format!(
                "backup {id}: {an} records {} ({}), {bn} records {} ({})",
                x.0, x.1, y.0, y.1
            )),
            Some(_) => {}
        }
    }
    for id in eb.keys().filter(|id| !ea.contains_key(*id)) {
        report
            .disagreements
            .push(format!("{bn} has backup {id}, {an} does not"));
    }
    let points = |m: &Manifest| -> BTreeMap<String, (u64, u32)> {
        m.restore_points
            .iter()
            .map(|p| (p.name.clone(), (p.version, p.timeline)))
            .collect()
    };
    let (pa, pb) = (points(a), points(b));
    for (n, x) in &pa {
        match pb.get(n) {
            None => report
                .disagreements
                .push(format!("{an} has restore point {n}, {bn} does not")),
            Some(y) if y != x => report.disagreements.push(format!(
                "restore point {n}: {an} says version {} on timeline {}, {bn} version {} on timeline {}",
                x.0, x.1, y.0, y.1
            )),
            Some(_) => {}
        }
    }
    for n in pb.keys().filter(|n| !pa.contains_key(*n)) {
        report
            .disagreements
            .push(format!("{bn} has restore point {n}, {an} does not"));
    }
}
