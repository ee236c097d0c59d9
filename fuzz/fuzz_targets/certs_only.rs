#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| scep::fuzzing::certs_only(data));
