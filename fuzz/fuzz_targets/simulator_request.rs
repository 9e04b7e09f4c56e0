#![no_main]
//! See `devtel_fuzz_targets::simulator_request`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| devtel_fuzz_targets::simulator_request(data));
