//! An export streams: writing a full space (65,536 addresses of 156 words, 82 MB) in
//! every format allocates at most 16 MB beyond the space itself, counted by a global
//! allocator that tracks the peak of live bytes (sharper than RSS, where the restore
//! before an export dominates).
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use bindspace_core::{Addr, BindSpace, SchemaVersion};
use bindspace_http::export::{self, Format, Meta};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator; only counts
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's layout contract is passed on unchanged
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: ptr came from alloc above with this layout
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Counts the bytes written and drops them.
struct Sink(u64);

impl std::io::Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn every_format_streams_a_full_space_in_at_most_16_mb() {
    let mut space = BindSpace::new(SchemaVersion::default()).unwrap();
    let words = space.words();
    let mut fp = vec![0u64; words];
    for a in 0..=u16::MAX {
        for (i, w) in fp.iter_mut().enumerate() {
            *w = (u64::from(a) << 32 | i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
        space.write(Addr(a), &fp).unwrap();
    }
    let size = 65_536 * words * 8;
    let meta = Meta::of(&space, 1);
    for format in [Format::Json, Format::Ndjson, Format::Csv, Format::Parquet] {
        let before = LIVE.load(Ordering::Relaxed);
        PEAK.store(before, Ordering::Relaxed);
        let mut sink = Sink(0);
        let rows = export::write(&space, &meta, format, &mut sink).unwrap();
        let extra = PEAK.load(Ordering::Relaxed) - before;
        assert_eq!(rows, 65_536);
        // the output is larger than the space (hex) or close to it (Parquet)
        assert!(sink.0 as usize > size / 2, "{format:?} wrote {} B", sink.0);
        println!(
            "{format:?}: wrote {:.1} MB, at most {:.1} MB allocated beyond the space",
            sink.0 as f64 / 1e6,
            extra as f64 / 1e6
        );
        assert!(
            extra <= 16_000_000,
            "{format:?} allocated {extra} B beyond the space while writing {} B",
            sink.0
        );
    }
}
