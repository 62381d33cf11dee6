//! Durable whole-file writes: the one implementation of write to a temporary name,
//! fsync, rename over the target, fsync the directory. A crash at any point leaves
//! either the old file or the new one, never a mix (the temporary may remain).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

/// Writes `path` durably with what `write` puts into a buffered writer.
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
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

/// Writes `bytes` to `path` durably.
pub fn write_atomic_bytes(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_atomic(path, |w| w.write_all(bytes))
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
}
