#![no_main]
//! See `devtel_fuzz_targets::snmprec_parse`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| devtel_fuzz_targets::snmprec_parse(data));
