#![no_main]
//! See `devtel_fuzz_targets::protocol_decode`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| devtel_fuzz_targets::protocol_decode(data));
