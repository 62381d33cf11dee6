//! Little-endian views of word slices. On little-endian targets these are free casts
//! (bytemuck); elsewhere they convert.

use std::borrow::Cow;

/// The words as little-endian bytes.
pub fn words_as_bytes(words: &[u64]) -> Cow<'_, [u8]> {
    if cfg!(target_endian = "little") {
        Cow::Borrowed(bytemuck::cast_slice(words))
    } else {
        Cow::Owned(words.iter().flat_map(|w| w.to_le_bytes()).collect())
    }
}

/// Fills `dst` from little-endian bytes. `src.len()` must be `dst.len() * 8`.
pub fn copy_bytes_to_words(src: &[u8], dst: &mut [u64]) {
    debug_assert_eq!(src.len(), dst.len() * 8);
    if cfg!(target_endian = "little") {
        bytemuck::cast_slice_mut::<u64, u8>(dst).copy_from_slice(src);
    } else {
        for (w, c) in dst.iter_mut().zip(src.chunks_exact(8)) {
            let mut b = [0u8; 8];
            b.copy_from_slice(c);
            *w = u64::from_le_bytes(b);
        }
    }
}

/// Reads a little-endian `u64` at `at` (caller checked bounds).
pub(crate) fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

pub(crate) fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut x = [0u8; 4];
    x.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(x)
}

pub(crate) fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
