//! Fuzzes the broker's request decoding: a frame (without its size prefix) goes
//! through `decode_only`, the exact path `dispatch` takes before a handler runs
//! (API key and version check, request header, request body). It must return
//! `Ok` or `Err`, never panic, abort or allocate without bound.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = gregor_broker::handlers::decode_only(bytes::Bytes::copy_from_slice(data));
});
