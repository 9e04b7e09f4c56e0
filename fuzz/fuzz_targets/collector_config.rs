#![no_main]
//! See `devtel_fuzz_targets::collector_config`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| devtel_fuzz_targets::collector_config(data));
