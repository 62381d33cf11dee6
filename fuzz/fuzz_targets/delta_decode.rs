//! Delta decoder under fuzzing, raw and sealed under a valid header (see
//! `snapshot_decode.rs`). Never a panic; a decoded delta re-encodes to the same bytes.
#![no_main]
use bindspace_core::{ArtifactHeader, ArtifactKind, SchemaVersion};
use bindspace_xor_delta as xd;
use libfuzzer_sys::fuzz_target;

fn check(bytes: &[u8]) {
    if let Ok(d) = xd::decode(bytes) {
        assert_eq!(xd::encode(&d), bytes);
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
    }
});
