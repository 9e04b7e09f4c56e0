#![no_main]
//! See `devtel_fuzz_targets::topic_and_broker_url`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| devtel_fuzz_targets::topic_and_broker_url(data));
