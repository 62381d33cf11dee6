//! Delta decoder under fuzzing, raw and sealed under a valid header of format 2 and of
//! format 3 (see `snapshot_decode.rs`). Never a panic. A decoded delta re-encodes in its
//! own format to bytes that decode to the same delta; formats 1 and 2 have one encoding
//! per delta, so there the bytes are the same too (format 3's heads are a zstd frame,
//! which other compressors may write differently).
#![no_main]
use bindspace_core::{ArtifactHeader, ArtifactKind, SchemaVersion};
use bindspace_xor_delta as xd;
use libfuzzer_sys::fuzz_target;

fn check(bytes: &[u8]) {
    if let Ok(d) = xd::decode(bytes) {
        let format = u16::from_le_bytes([bytes[8], bytes[9]]);
        let again = xd::encode_format(&d, format);
        if format < 3 {
            assert_eq!(again, bytes);
        }
        assert_eq!(xd::decode(&again).expect("its own encoding decodes"), d);
    }
}

fuzz_target!(|data: &[u8]| {
    check(data);
    if !data.is_empty() {
        let schema = SchemaVersion::CURRENT
            .with_words(1 + (data[0] % 16) as u16)
            .with_address_space(256);
        let payload = &data[1..];
        let h = ArtifactHeader::for_payload(ArtifactKind::Delta, schema, (1, 2), (0, 0), payload);
        check(&h.seal(payload));
        check(&h.as_format(3).seal(payload));
    }
});
