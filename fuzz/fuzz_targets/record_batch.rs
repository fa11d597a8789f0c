//! Fuzzes everything that reads untrusted RecordBatch bytes: header parsing,
//! batch iteration, validation and record decoding (with decompression).
//! Nothing may panic, and whatever validate_batch accepts must decode.
#![no_main]

use gregor_records::record::decode_records;
use gregor_records::{validate_batch, BatchHeader, BatchIter};
use libfuzzer_sys::fuzz_target;

/// Small enough that decompression bombs are cut off quickly.
const MAX_DECOMPRESSED: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    if let Ok(h) = BatchHeader::parse(data) {
        let _ = (h.total_size(), h.compression(), h.last_sequence(), h.next_offset());
    }
    // flatten: the iterator's one possible Err is its last item.
    for (_, _, batch) in BatchIter::new(data).flatten() {
        let _ = validate_batch(batch, MAX_DECOMPRESSED);
        let _ = decode_records(batch, MAX_DECOMPRESSED);
    }
    if validate_batch(data, MAX_DECOMPRESSED).is_ok() {
        decode_records(data, MAX_DECOMPRESSED).expect("a validated batch must decode");
    }
});
