#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| latch_fuzz::http_input(data));
