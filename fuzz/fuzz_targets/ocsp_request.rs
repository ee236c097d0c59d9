#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| ca_mock::fuzzing::ocsp_request(data));
