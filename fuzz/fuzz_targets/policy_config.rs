#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| policy_module::fuzzing::policy_config(data));
