//! libFuzzer target: mount and fsck of arbitrary images (log replay).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| cairn_tfs::fuzz_targets::log_replay(data));
