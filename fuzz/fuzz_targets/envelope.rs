#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| scep::fuzzing::envelope(data));
