#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| ndes_proxy::fuzzing::http_request(data));
