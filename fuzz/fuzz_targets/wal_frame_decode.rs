//! WAL frame and segment decoders under fuzzing: never a panic, never an allocation
//! sized by the input; a decoded frame re-encodes to the same bytes, and a segment scan
//! stops at the first frame it cannot take.
#![no_main]
use bindspace_wal::{decode_frame, encode_frame, segment};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((rec, n)) = decode_frame(data) {
        let mut again = Vec::new();
        encode_frame(&rec, &mut again);
        assert_eq!(&again[..], &data[..n]);
    }
    // the same bytes as a segment's frames, under a valid header
    let mut seg = segment::encode_header(1).to_vec();
    seg.extend_from_slice(data);
    let mut records = 0u64;
    let scan = segment::scan(&seg, 1, |_| records += 1);
    assert!(scan.valid_len <= seg.len());
    assert_eq!(scan.last_version, (records > 0).then_some(records));
});
