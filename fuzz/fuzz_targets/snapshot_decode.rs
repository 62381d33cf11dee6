//! Snapshot decoder under fuzzing. Raw input rarely passes blake3, so the input is also
//! sealed under a valid header (shape from its first two bytes) to reach the
//! structural checks. Either way: an error or a space, never a panic, and a decoded
//! space re-encodes to the same bytes.
#![no_main]
use bindspace_core::{ArtifactHeader, ArtifactKind, SchemaVersion, snapshot};
use libfuzzer_sys::fuzz_target;

fn check(bytes: &[u8]) {
    if let Ok(s) = snapshot::decode(bytes) {
        assert_eq!(snapshot::encode(&s.space, s.header.time_to_us), bytes);
    }
}

fuzz_target!(|data: &[u8]| {
    check(data);
    if data.len() >= 2 {
        let schema = SchemaVersion::CURRENT
            .with_words(1 + (data[0] % 16) as u16)
            .with_address_space(256 * (1 + (data[1] % 4) as u32));
        let payload = &data[2..];
        let h = ArtifactHeader::for_payload(ArtifactKind::Snapshot, schema, (3, 3), (0, 0), payload);
        check(&h.seal(payload));
    }
});
