//! libFuzzer target: the manifest parser, and mkfs of what it accepts.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| cairn_tfs::fuzz_targets::manifest(data));
