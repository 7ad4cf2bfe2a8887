#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| oxserve_fuzz::server_targets::multipart(data));
