#![no_main]
//! See `devtel_fuzz_targets::snmp_v3_reply`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| devtel_fuzz_targets::snmp_v3_reply(data));
