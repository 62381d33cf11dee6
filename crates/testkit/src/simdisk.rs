//! A simulated disk for power-loss tests (the SlateDB and TigerBeetle way): an
//! in-memory file system behind [`bindspace_wal::fsio::Fs`] that remembers, for every
//! file and directory, what was made durable (`fdatasync`, directory fsync) apart from
//! what was only written. [`SimDisk::power_loss`] returns the disk a machine finds
//! after losing power: everything synced, plus, chosen by a seed, some of what was not
//! (a prefix of the unsynced pages, or pages in any order; torn sectors; the unsynced
//! directory changes, journaled all or none). Without the journal, a directory's
//! entries are what its last fsync saw, so a rename is durable on each side only once
//! that side's directory is synced. [`SimDisk::cut_power_after`] makes the
//! disk fail every operation from the n-th on, as a machine losing power mid-work.
//!
//! Paths are virtual (`/data/wal/...`); nothing touches the real disk.

use std::collections::{BTreeMap, HashSet};
use std::io::{Error, ErrorKind};
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use bindspace_wal::fsio::{Fs, FsFile, FsLock};

/// Page size of the simulated disk: unsynced data reaches the medium in whole pages.
pub const PAGE: usize = 4096;
/// Sector size: a torn page keeps a prefix of whole sectors, and a torn sector a
/// prefix of its bytes.
pub const SECTOR: usize = 512;

#[derive(Clone, Debug)]
enum Node {
    Dir {
        live: BTreeMap<String, usize>,
        durable: BTreeMap<String, usize>,
    },
    File {
        live: Vec<u8>,
        durable: Vec<u8>,
    },
}

#[derive(Debug, Default)]
struct State {
    nodes: Vec<Node>,
    /// Operations that touched the disk so far.
    ops: u64,
    /// Power is lost when `ops` reaches this.
    cut_at: Option<u64>,
    powered_off: bool,
    locks: HashSet<PathBuf>,
    /// Operations of each kind (reported by tests).
    syncs: u64,
}

/// A simulated disk (cheap to clone: clones share the disk).
#[derive(Clone, Debug)]
pub struct SimDisk {
    state: Arc<Mutex<State>>,
}

impl Default for SimDisk {
    fn default() -> Self {
        Self::new()
    }
}

fn lost() -> Error {
    Error::other("simulated power loss: the disk is gone")
}

fn components(path: &Path) -> std::io::Result<Vec<String>> {
    let mut out = Vec::new();
    for c in path.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(n) => out.push(
                n.to_str()
                    .ok_or_else(|| Error::new(ErrorKind::InvalidInput, "non-UTF-8 path"))?
                    .to_owned(),
            ),
            _ => {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    format!(
                        "simulated disk takes plain absolute paths: {}",
                        path.display()
                    ),
                ));
            }
        }
    }
    Ok(out)
}

impl State {
    fn tick(&mut self) -> std::io::Result<()> {
        if self.powered_off {
            return Err(lost());
        }
        self.ops += 1;
        if self.cut_at.is_some_and(|c| self.ops >= c) {
            self.powered_off = true;
            return Err(lost());
        }
        Ok(())
    }

    fn lookup(&self, path: &Path) -> std::io::Result<usize> {
        self.lookup_in(&components(path)?, path)
    }

    fn lookup_in(&self, comps: &[String], path: &Path) -> std::io::Result<usize> {
        let mut n = 0;
        for c in comps {
            match &self.nodes[n] {
                Node::Dir { live, .. } => {
                    n = *live.get(c).ok_or_else(|| {
                        Error::new(
                            ErrorKind::NotFound,
                            format!("{}: no such entry", path.display()),
                        )
                    })?;
                }
                Node::File { .. } => {
                    return Err(Error::new(
                        ErrorKind::NotADirectory,
                        path.display().to_string(),
                    ));
                }
            }
        }
        Ok(n)
    }

    /// The directory holding `path` and the entry's name.
    fn parent(&self, path: &Path) -> std::io::Result<(usize, String)> {
        let mut c = components(path)?;
        let name = c
            .pop()
            .ok_or_else(|| Error::new(ErrorKind::InvalidInput, "the root has no parent"))?;
        let dir = self.lookup_in(&c, path)?;
        match self.nodes[dir] {
            Node::Dir { .. } => Ok((dir, name)),
            Node::File { .. } => Err(Error::new(
                ErrorKind::NotADirectory,
                path.display().to_string(),
            )),
        }
    }

    fn entries(&mut self, dir: usize) -> &mut BTreeMap<String, usize> {
        match &mut self.nodes[dir] {
            Node::Dir { live, .. } => live,
            Node::File { .. } => unreachable!("parent() returns directories only"),
        }
    }

    fn file(&mut self, n: usize, path: &Path) -> std::io::Result<(&mut Vec<u8>, &mut Vec<u8>)> {
        match &mut self.nodes[n] {
            Node::File { live, durable } => Ok((live, durable)),
            Node::Dir { .. } => Err(Error::new(
                ErrorKind::IsADirectory,
                path.display().to_string(),
            )),
        }
    }

    fn new_node(&mut self, node: Node) -> usize {
        self.nodes.push(node);
        self.nodes.len() - 1
    }
}

/// What unsynced data reaches the medium at a power loss, for one file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Landing {
    /// None of it.
    Nothing,
    /// A prefix of the changed pages, in order, the last one possibly torn.
    InOrder,
    /// Any subset of the changed pages, some torn: later pages of one write can land
    /// before earlier ones.
    AnyOrder,
}

/// A small deterministic generator (splitmix64): the crash a seed produces never
/// depends on another crate's algorithm.
#[derive(Clone, Debug)]
pub struct SeedRng(u64);

impl SeedRng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        SeedRng(seed)
    }
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p
    }
}

fn crash_file(durable: &[u8], live: &[u8], landing: Landing, rng: &mut SeedRng) -> Vec<u8> {
    if landing == Landing::Nothing || durable == live {
        return durable.to_vec();
    }
    // an unsynced truncation (a file re-created) may or may not have reached the disk
    let base: &[u8] = if !live.starts_with(durable) {
        if rng.chance(0.5) { &[] } else { durable }
    } else {
        durable
    };
    let changed: Vec<usize> = (0..live.len().div_ceil(PAGE))
        .filter(|&p| {
            let r = p * PAGE..((p + 1) * PAGE).min(live.len());
            r.end > base.len() || base[r.clone()] != live[r]
        })
        .collect();
    let mut out = base.to_vec();
    let mut end = base.len();
    let land = |out: &mut Vec<u8>, end: &mut usize, page: usize, torn: bool, rng: &mut SeedRng| {
        let start = page * PAGE;
        let mut stop = ((page + 1) * PAGE).min(live.len());
        if torn {
            // whole sectors, then part of one
            let sectors = rng.below(((stop - start) / SECTOR) as u64 + 1) as usize;
            stop = (start + sectors * SECTOR + rng.below(SECTOR as u64) as usize).min(stop);
        }
        if out.len() < stop {
            out.resize(stop, 0);
        }
        out[start..stop].copy_from_slice(&live[start..stop]);
        *end = (*end).max(stop);
    };
    match landing {
        Landing::Nothing => {}
        Landing::InOrder => {
            let k = rng.below(changed.len() as u64 + 1) as usize;
            for (i, &p) in changed[..k].iter().enumerate() {
                let torn = i + 1 == k && rng.chance(0.3);
                land(&mut out, &mut end, p, torn, rng);
            }
        }
        Landing::AnyOrder => {
            for &p in &changed {
                if rng.chance(0.5) {
                    let torn = rng.chance(0.2);
                    land(&mut out, &mut end, p, torn, rng);
                }
            }
            // the size may have reached the disk before the data
            if rng.chance(0.3) {
                end = end.max(live.len());
            }
        }
    }
    out.resize(end, 0);
    out
}

impl SimDisk {
    /// An empty disk with a root directory.
    pub fn new() -> Self {
        let root = Node::Dir {
            live: BTreeMap::new(),
            durable: BTreeMap::new(),
        };
        SimDisk {
            state: Arc::new(Mutex::new(State {
                nodes: vec![root],
                ..State::default()
            })),
        }
    }

    fn st(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A shared handle, as `WalOptions::fs` takes it.
    pub fn shared(&self) -> Arc<dyn Fs> {
        Arc::new(self.clone())
    }

    /// Operations so far (to choose a power-loss point within a workload's length).
    pub fn ops(&self) -> u64 {
        self.st().ops
    }

    /// Syncs (file and directory) so far.
    pub fn syncs(&self) -> u64 {
        self.st().syncs
    }

    /// Loses power at the `n`-th operation from now: it and every later one fail.
    pub fn cut_power_after(&self, n: u64) {
        let mut s = self.st();
        s.cut_at = Some(s.ops + n.max(1));
    }

    /// Loses power now.
    pub fn power_off(&self) {
        self.st().powered_off = true;
    }

    /// Whether power was lost.
    pub fn is_off(&self) -> bool {
        self.st().powered_off
    }

    /// The disk as a machine finds it after losing power now (the old handle keeps
    /// failing every operation): what was synced, plus what `seed` lets land of what
    /// was not. Locks are gone with the process that held them.
    pub fn power_loss(&self, seed: u64) -> SimDisk {
        let mut s = self.st();
        s.powered_off = true;
        let mut rng = SeedRng::new(seed);
        let landing = match rng.below(10) {
            0..=3 => Landing::Nothing,
            4..=6 => Landing::InOrder,
            _ => Landing::AnyOrder,
        };
        let mut nodes = vec![Node::Dir {
            live: BTreeMap::new(),
            durable: BTreeMap::new(),
        }];
        // the unsynced directory changes were journaled, all or none (one journal:
        // a rename between directories lands whole or not at all)
        let journaled = landing != Landing::Nothing && rng.chance(0.5);
        // (old directory, new directory)
        let mut todo = vec![(0usize, 0usize)];
        while let Some((old, new)) = todo.pop() {
            let Node::Dir { live, durable } = &s.nodes[old] else {
                continue;
            };
            let entries = if journaled {
                live.clone()
            } else {
                durable.clone()
            };
            let mut kept = BTreeMap::new();
            for (name, child) in entries {
                let node = match &s.nodes[child] {
                    Node::Dir { .. } => {
                        let n = nodes.len();
                        nodes.push(Node::Dir {
                            live: BTreeMap::new(),
                            durable: BTreeMap::new(),
                        });
                        todo.push((child, n));
                        n
                    }
                    Node::File { live, durable } => {
                        let data = crash_file(durable, live, landing, &mut rng);
                        nodes.push(Node::File {
                            live: data.clone(),
                            durable: data,
                        });
                        nodes.len() - 1
                    }
                };
                kept.insert(name, node);
            }
            nodes[new] = Node::Dir {
                live: kept.clone(),
                durable: kept,
            };
        }
        SimDisk {
            state: Arc::new(Mutex::new(State {
                nodes,
                ..State::default()
            })),
        }
    }

    /// A file's current content (tests inspect and damage files through these).
    pub fn read_file(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        let mut s = self.st();
        let n = s.lookup(path)?;
        Ok(s.file(n, path)?.0.clone())
    }

    /// Replaces a file's content, durably (bit rot, an operator's copy).
    pub fn put_file(&self, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
        let mut s = self.st();
        let n = match s.lookup(path) {
            Ok(n) => n,
            Err(_) => {
                let (dir, name) = s.parent(path)?;
                let n = s.new_node(Node::File {
                    live: Vec::new(),
                    durable: Vec::new(),
                });
                s.entries(dir).insert(name.clone(), n);
                if let Node::Dir { durable, .. } = &mut s.nodes[dir] {
                    durable.insert(name, n);
                }
                n
            }
        };
        let (live, durable) = s.file(n, path)?;
        *live = bytes.to_vec();
        *durable = bytes.to_vec();
        Ok(())
    }

    /// Every file under `dir`, recursively, with its content.
    pub fn files_under(&self, dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
        let s = self.st();
        let mut out = Vec::new();
        let Ok(n) = s.lookup(dir) else {
            return out;
        };
        let mut todo = vec![(n, dir.to_path_buf())];
        while let Some((n, p)) = todo.pop() {
            match &s.nodes[n] {
                Node::Dir { live, .. } => {
                    for (name, c) in live {
                        todo.push((*c, p.join(name)));
                    }
                }
                Node::File { live, .. } => out.push((p, live.clone())),
            }
        }
        out.sort();
        out
    }
}

struct SimFile {
    disk: SimDisk,
    node: usize,
    path: PathBuf,
}

impl FsFile for SimFile {
    fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let mut s = self.disk.st();
        s.tick()?;
        s.file(self.node, &self.path)?.0.extend_from_slice(bytes);
        Ok(())
    }
    fn sync_data(&mut self) -> std::io::Result<()> {
        let mut s = self.disk.st();
        s.tick()?;
        s.syncs += 1;
        let (live, durable) = s.file(self.node, &self.path)?;
        durable.clone_from(live);
        Ok(())
    }
    fn len(&self) -> std::io::Result<u64> {
        let mut s = self.disk.st();
        if s.powered_off {
            return Err(lost());
        }
        Ok(s.file(self.node, &self.path)?.0.len() as u64)
    }
}

struct SimLock {
    disk: SimDisk,
    path: PathBuf,
}

impl Drop for SimLock {
    fn drop(&mut self) {
        self.disk.st().locks.remove(&self.path);
    }
}

impl SimDisk {
    fn open_file(
        &self,
        path: &Path,
        create: bool,
        new: bool,
        empty: bool,
    ) -> std::io::Result<Box<dyn FsFile>> {
        let mut s = self.st();
        s.tick()?;
        let node = match s.lookup(path) {
            Ok(_) if new => {
                return Err(Error::new(
                    ErrorKind::AlreadyExists,
                    path.display().to_string(),
                ));
            }
            Ok(n) => {
                if empty {
                    s.file(n, path)?.0.clear();
                }
                s.file(n, path)?;
                n
            }
            Err(e) if e.kind() == ErrorKind::NotFound && create => {
                let (dir, name) = s.parent(path)?;
                let n = s.new_node(Node::File {
                    live: Vec::new(),
                    durable: Vec::new(),
                });
                s.entries(dir).insert(name, n);
                n
            }
            Err(e) => return Err(e),
        };
        Ok(Box::new(SimFile {
            disk: self.clone(),
            node,
            path: path.to_path_buf(),
        }))
    }
}

impl Fs for SimDisk {
    fn create_dir_all(&self, dir: &Path) -> std::io::Result<()> {
        let mut s = self.st();
        s.tick()?;
        let mut n = 0;
        for c in components(dir)? {
            let next = match &s.nodes[n] {
                Node::Dir { live, .. } => live.get(&c).copied(),
                Node::File { .. } => {
                    return Err(Error::new(
                        ErrorKind::NotADirectory,
                        dir.display().to_string(),
                    ));
                }
            };
            n = match next {
                Some(x) => x,
                None => {
                    let x = s.new_node(Node::Dir {
                        live: BTreeMap::new(),
                        durable: BTreeMap::new(),
                    });
                    s.entries(n).insert(c, x);
                    x
                }
            };
        }
        match s.nodes[n] {
            Node::Dir { .. } => Ok(()),
            Node::File { .. } => Err(Error::new(
                ErrorKind::AlreadyExists,
                dir.display().to_string(),
            )),
        }
    }

    fn read_dir(&self, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
        let mut s = self.st();
        s.tick()?;
        let n = s.lookup(dir)?;
        match &s.nodes[n] {
            Node::Dir { live, .. } => Ok(live.keys().map(|k| dir.join(k)).collect()),
            Node::File { .. } => Err(Error::new(
                ErrorKind::NotADirectory,
                dir.display().to_string(),
            )),
        }
    }

    fn read(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        let mut s = self.st();
        s.tick()?;
        let n = s.lookup(path)?;
        Ok(s.file(n, path)?.0.clone())
    }

    fn create_new(&self, path: &Path) -> std::io::Result<Box<dyn FsFile>> {
        self.open_file(path, true, true, false)
    }

    fn create(&self, path: &Path) -> std::io::Result<Box<dyn FsFile>> {
        self.open_file(path, true, false, true)
    }

    fn open_append(&self, path: &Path) -> std::io::Result<Box<dyn FsFile>> {
        self.open_file(path, false, false, false)
    }

    fn truncate(&self, path: &Path, len: u64) -> std::io::Result<()> {
        let mut s = self.st();
        s.tick()?;
        s.syncs += 1;
        let n = s.lookup(path)?;
        let (live, durable) = s.file(n, path)?;
        live.truncate(usize::try_from(len).unwrap_or(usize::MAX));
        durable.clone_from(live);
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> std::io::Result<()> {
        let mut s = self.st();
        s.tick()?;
        let (dir, name) = s.parent(path)?;
        s.entries(dir)
            .remove(&name)
            .map(|_| ())
            .ok_or_else(|| Error::new(ErrorKind::NotFound, path.display().to_string()))
    }

    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        let mut s = self.st();
        s.tick()?;
        let (fd, fname) = s.parent(from)?;
        let (td, tname) = s.parent(to)?;
        let n = s
            .entries(fd)
            .remove(&fname)
            .ok_or_else(|| Error::new(ErrorKind::NotFound, from.display().to_string()))?;
        s.entries(td).insert(tname, n);
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> std::io::Result<()> {
        let mut s = self.st();
        s.tick()?;
        s.syncs += 1;
        let n = s.lookup(dir)?;
        match &mut s.nodes[n] {
            Node::Dir { live, durable } => {
                durable.clone_from(live);
                Ok(())
            }
            Node::File { .. } => Err(Error::new(
                ErrorKind::NotADirectory,
                dir.display().to_string(),
            )),
        }
    }

    fn try_lock(&self, path: &Path) -> std::io::Result<Option<FsLock>> {
        // the lock file itself, as the real one creates it
        drop(self.open_file(path, true, false, false)?);
        let mut s = self.st();
        if !s.locks.insert(path.to_path_buf()) {
            return Ok(None);
        }
        Ok(Some(Box::new(SimLock {
            disk: self.clone(),
            path: path.to_path_buf(),
        })))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    fn p(s: &str) -> &Path {
        Path::new(s)
    }

    #[test]
    fn synced_data_and_entries_survive_and_unsynced_ones_may_not() {
        let d = SimDisk::new();
        d.create_dir_all(p("/a")).unwrap();
        d.sync_dir(p("/")).unwrap();
        let mut f = d.create_new(p("/a/f")).unwrap();
        f.write_all(b"synced").unwrap();
        f.sync_data().unwrap();
        d.sync_dir(p("/a")).unwrap();
        f.write_all(b" and not").unwrap();
        let mut g = d.create_new(p("/a/g")).unwrap();
        g.write_all(b"never synced").unwrap();
        let mut saw_extra = false;
        let mut saw_g = false;
        for seed in 0..200 {
            let after = d.power_loss(seed);
            let got = after.read_file(p("/a/f")).unwrap();
            assert!(got.starts_with(b"synced"), "seed {seed}: {got:?}");
            assert!(got.len() <= b"synced and not".len());
            saw_extra |= got.len() > 6;
            saw_g |= after.read_file(p("/a/g")).is_ok();
        }
        assert!(saw_extra && saw_g, "some seeds let unsynced data land");
        let none = d.power_loss(0);
        drop(none);
    }

    #[test]
    fn an_entry_never_synced_into_its_directory_is_lost_without_journaling() {
        let d = SimDisk::new();
        d.create_dir_all(p("/a")).unwrap();
        let mut f = d.create_new(p("/a/f")).unwrap();
        f.write_all(b"x").unwrap();
        f.sync_data().unwrap();
        // the directory /a itself was never synced into /
        let lost_some = (0..100).any(|seed| d.power_loss(seed).read_file(p("/a/f")).is_err());
        assert!(lost_some);
    }

    #[test]
    fn power_cut_fails_every_later_operation() {
        let d = SimDisk::new();
        d.cut_power_after(2);
        d.create_dir_all(p("/a")).unwrap();
        assert!(d.sync_dir(p("/")).is_err());
        assert!(d.is_off());
        assert!(d.read_dir(p("/")).is_err());
    }

    #[test]
    fn a_seed_replays_the_same_crash() {
        let d = SimDisk::new();
        let mut f = d.create_new(p("/f")).unwrap();
        f.write_all(&vec![7u8; 3 * PAGE + 100]).unwrap();
        for seed in 0..50 {
            assert_eq!(
                d.power_loss(seed).files_under(p("/")),
                d.power_loss(seed).files_under(p("/"))
            );
        }
    }

    #[test]
    fn locks_exclude_until_dropped_and_vanish_with_power() {
        let d = SimDisk::new();
        let l = d.try_lock(p("/LOCK")).unwrap().unwrap();
        assert!(d.try_lock(p("/LOCK")).unwrap().is_none());
        drop(l);
        assert!(d.try_lock(p("/LOCK")).unwrap().is_some());
    }
}
