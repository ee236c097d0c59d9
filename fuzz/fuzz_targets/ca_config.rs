#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| ca_mock::fuzzing::ca_config(data));
