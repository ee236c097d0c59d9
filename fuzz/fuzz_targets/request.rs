#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| scep::testing::fuzz::request(data));
