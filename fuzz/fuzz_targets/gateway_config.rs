#![no_main]
//! See `devtel_fuzz_targets::gateway_config`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| devtel_fuzz_targets::gateway_config(data));
