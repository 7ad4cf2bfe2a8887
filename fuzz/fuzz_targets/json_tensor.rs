#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| oxserve_fuzz::targets::json_tensor(data));
