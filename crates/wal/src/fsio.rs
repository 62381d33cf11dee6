//! The file operations the log and the engine's data directory make, behind one small
//! trait ([`Fs`]): [`RealFs`] in production, a simulated disk that loses unsynced
//! writes on "power loss" in tests (`bindspace_testkit::simdisk`). Also the one
//! implementation of a durable whole-file write: write to a temporary name, fsync,
//! rename over the target, fsync the directory. A crash at any point leaves either the
//! old file or the new one, never a mix (the temporary may remain).

use std::any::Any;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// An open file the log writes: appends and `fdatasync`.
pub trait FsFile: Send + Sync {
    /// Writes all of `bytes` at the end of the file.
    fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()>;
    /// Makes what was written durable (`fdatasync`).
    fn sync_data(&mut self) -> std::io::Result<()>;
    /// The file's length now.
    fn len(&self) -> std::io::Result<u64>;
    /// Whether the file is empty.
    fn is_empty(&self) -> std::io::Result<bool> {
        self.len().map(|n| n == 0)
    }
}

/// An exclusive lock on a file, released when dropped.
pub type FsLock = Box<dyn Any + Send + Sync>;

/// The file system as the log and the data directory see it. Only what they use:
/// whole-file reads, appends, durable truncation, renames, removal, directory fsync.
pub trait Fs: Send + Sync + std::fmt::Debug {
    /// Creates `dir` and its parents (durability of the new entries is the caller's
    /// [`Fs::sync_dir`] on each parent).
    fn create_dir_all(&self, dir: &Path) -> std::io::Result<()>;
    /// The paths of the entries of `dir`, in no particular order.
    fn read_dir(&self, dir: &Path) -> std::io::Result<Vec<PathBuf>>;
    /// A whole file.
    fn read(&self, path: &Path) -> std::io::Result<Vec<u8>>;
    /// Creates a new file (fails if it exists), open for appending.
    fn create_new(&self, path: &Path) -> std::io::Result<Box<dyn FsFile>>;
    /// Creates or empties a file, open for appending.
    fn create(&self, path: &Path) -> std::io::Result<Box<dyn FsFile>>;
    /// Opens an existing file for appending.
    fn open_append(&self, path: &Path) -> std::io::Result<Box<dyn FsFile>>;
    /// Cuts a file to `len` bytes, durably (the truncation is fsynced).
    fn truncate(&self, path: &Path, len: u64) -> std::io::Result<()>;
    /// Removes a file (durable once its directory is synced).
    fn remove_file(&self, path: &Path) -> std::io::Result<()>;
    /// Renames a file, replacing `to` (durable once both directories are synced).
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()>;
    /// Makes the entries of `dir` durable (fsync of the directory).
    fn sync_dir(&self, dir: &Path) -> std::io::Result<()>;
    /// Takes an exclusive lock on `path` (created if missing); `None` when another
    /// holder has it.
    fn try_lock(&self, path: &Path) -> std::io::Result<Option<FsLock>>;
}

/// The real file system (`std::fs`).
#[derive(Debug, Clone, Copy, Default)]
pub struct RealFs;

impl RealFs {
    /// A shared handle, as options take it.
    pub fn shared() -> Arc<dyn Fs> {
        Arc::new(RealFs)
    }
}

struct RealFile(File);

impl FsFile for RealFile {
    fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.0.write_all(bytes)
    }
    fn sync_data(&mut self) -> std::io::Result<()> {
        self.0.sync_data()
    }
    fn len(&self) -> std::io::Result<u64> {
        self.0.metadata().map(|m| m.len())
    }
}

impl Fs for RealFs {
    fn create_dir_all(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)
    }
    fn read_dir(&self, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
        std::fs::read_dir(dir)?
            .map(|e| e.map(|e| e.path()))
            .collect()
    }
    fn read(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        std::fs::read(path)
    }
    fn create_new(&self, path: &Path) -> std::io::Result<Box<dyn FsFile>> {
        let f = OpenOptions::new()
            .append(true)
            .create_new(true)
            .open(path)?;
        Ok(Box::new(RealFile(f)))
    }
    fn create(&self, path: &Path) -> std::io::Result<Box<dyn FsFile>> {
        Ok(Box::new(RealFile(File::create(path)?)))
    }
    fn open_append(&self, path: &Path) -> std::io::Result<Box<dyn FsFile>> {
        let f = OpenOptions::new().append(true).open(path)?;
        Ok(Box::new(RealFile(f)))
    }
    fn truncate(&self, path: &Path, len: u64) -> std::io::Result<()> {
        let f = OpenOptions::new().write(true).open(path)?;
        f.set_len(len)?;
        f.sync_all()
    }
    fn remove_file(&self, path: &Path) -> std::io::Result<()> {
        std::fs::remove_file(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        std::fs::rename(from, to)
    }
    fn sync_dir(&self, dir: &Path) -> std::io::Result<()> {
        File::open(dir)?.sync_all()
    }
    /// An advisory `flock`, released by the kernel when the process dies, so a restart
    /// after a crash never finds it stale.
    fn try_lock(&self, path: &Path) -> std::io::Result<Option<FsLock>> {
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)?;
        match f.try_lock() {
            Ok(()) => Ok(Some(Box::new(f))),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(e),
        }
    }
}

/// The directory holding `path` (`.` for a bare name).
pub fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// Writes `path` durably on `fs`: temporary, fsync, rename, directory fsync.
pub fn write_atomic_on(fs: &dyn Fs, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = fs.create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_data()?;
    drop(f);
    fs.rename(&tmp, path)?;
    fs.sync_dir(parent_of(path))
}

/// Writes `path` durably with what `write` puts into a buffered writer (the real file
/// system: large files streamed without a copy in memory).
pub fn write_atomic(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let f = File::create(&tmp)?;
    let mut w = BufWriter::with_capacity(1 << 20, f);
    write(&mut w)?;
    let f = w.into_inner().map_err(|e| e.into_error())?;
    f.sync_data()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    File::open(parent_of(path))?.sync_all()
}

/// Writes `path` durably with `bytes` (the real file system).
pub fn write_atomic_bytes(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_atomic_on(&RealFs, path, bytes)
}

/// Creates `dir` and makes the new entries durable: each directory it had to create
/// is fsynced into its parent (a log whose directory entry a power loss drops loses
/// every acknowledged write in it).
pub fn create_dir_all_durable(fs: &dyn Fs, dir: &Path) -> std::io::Result<()> {
    let mut missing = Vec::new();
    let mut d = Some(dir);
    while let Some(p) = d.filter(|p| !p.as_os_str().is_empty()) {
        if fs.read_dir(p).is_ok() {
            break;
        }
        missing.push(p);
        d = p.parent();
    }
    if missing.is_empty() {
        return Ok(());
    }
    fs.create_dir_all(dir)?;
    for p in missing.iter().rev() {
        fs.sync_dir(parent_of(p))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_whole_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().expect("temp dir");
        let p = dir.path().join("f.snap");
        write_atomic_bytes(&p, b"first version, longer").expect("write");
        write_atomic_bytes(&p, b"second").expect("rewrite");
        assert_eq!(std::fs::read(&p).expect("read"), b"second");
        assert!(!p.with_extension("tmp").exists());
    }

    #[test]
    fn a_failed_writer_leaves_the_old_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let p = dir.path().join("f.snap");
        write_atomic_bytes(&p, b"old").expect("write");
        let err = write_atomic(&p, |_| Err(std::io::Error::other("disk said no")));
        assert!(err.is_err());
        assert_eq!(std::fs::read(&p).expect("read"), b"old");
    }

    #[test]
    fn durable_directory_creation_makes_every_missing_level() {
        let dir = tempfile::tempdir().expect("temp dir");
        let deep = dir.path().join("a/b/c");
        create_dir_all_durable(&RealFs, &deep).expect("create");
        assert!(deep.is_dir());
        create_dir_all_durable(&RealFs, &deep).expect("again: nothing to do");
    }

    #[test]
    fn a_held_lock_is_refused_until_dropped() {
        let dir = tempfile::tempdir().expect("temp dir");
        let p = dir.path().join("LOCK");
        let held = RealFs.try_lock(&p).expect("lock").expect("free");
        assert!(RealFs.try_lock(&p).expect("lock").is_none());
        drop(held);
        assert!(RealFs.try_lock(&p).expect("lock").is_some());
    }
}
