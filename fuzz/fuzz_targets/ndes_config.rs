#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| ndes_proxy::fuzzing::ndes_config(data));
