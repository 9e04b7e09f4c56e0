#![no_main]
//! See `devtel_fuzz_targets::spool_scan`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| devtel_fuzz_targets::spool_scan(data));
