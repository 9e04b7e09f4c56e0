#![no_main]
//! See `devtel_fuzz_targets::aggregator_order`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| devtel_fuzz_targets::aggregator_order(data));
