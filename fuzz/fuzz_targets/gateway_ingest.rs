#![no_main]
//! See `devtel_fuzz_targets::gateway_ingest`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| devtel_fuzz_targets::gateway_ingest(data));
