//! `cargo xtask test --soak`: the long runs of the soak and fuzz tests.
//!
//! Every runtime test with a `soak` argv in the catalogue (the soak
//! programs: fsync, unlink, thread, mmap and open/close cycles that assert
//! the kernel's accounting does not grow; the syscall fuzzer with a long
//! count; Debian's fio with long io_uring and libaio jobs) boots once with that argv (the kernel command line's `argv=`)
//! and its `soak_timeout_s`, and must pass. `--runtime FILTER` narrows
//! the set. The suite runs the same programs with short counts (their
//! manifests' arguments).

use crate::Result;
use crate::disks::Storage;
use cairn_runtime_tests::{RuntimeTest, Step};

/// The soak runs `filter` selects: each test rewritten to its long run.
pub fn selected(filter: Option<&str>) -> Vec<RuntimeTest> {
    cairn_runtime_tests::catalogue()
        .iter()
        .filter(|t| !t.soak.is_empty() && filter.is_none_or(|f| t.name.contains(f)))
        .map(|t| {
            let mut s = t.clone();
            let expect: &'static [&'static str] = if !t.soak_expect.is_empty() {
                t.soak_expect
            } else {
                match t.marker(0) {
                    Some(m) => Box::leak(Box::new([&*Box::leak(m.into_boxed_str())])),
                    None => &[],
                }
            };
            s.steps = Box::leak(Box::new([Step {
                argv: t.soak,
                status: 0,
                expect,
            }]));
            s.timeout_s = t.soak_timeout_s;
            s.name = Box::leak(format!("{}-soak", t.name).into_boxed_str());
            s
        })
        .collect()
}

/// Runs the soak target, reporting each run through `step`.
pub fn run(kernel: &std::path::Path, filter: Option<&str>, step: &mut dyn FnMut(&str, Result<()>)) {
    let list = selected(filter);
    if list.is_empty() {
        step("soak", Err(format!("no soak run matches {filter:?}")));
    }
    for t in list {
        let label = format!(
            "soak {} on virtio ({}, timeout {} s)",
            t.name,
            t.soak.join(" "),
            t.timeout_s
        );
        step(&label, crate::runtime::run_one(kernel, &t, Storage::Virtio));
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_soak_run_boots_its_long_argv_once() {
        let all = super::selected(None);
        assert!(all.len() >= 5);
        for t in &all {
            let b = t.boot_list();
            assert_eq!(b.len(), 1, "{}", t.name);
            assert_eq!(b[0].argv[0], t.soak[0]);
            // Its own PASS marker, or the lines the catalogue names for
            // a program that prints none (fio's terse lines).
            if t.soak_expect.is_empty() {
                assert!(b[0].expect[0].starts_with("PASS "), "{}", t.name);
            } else {
                assert_eq!(b[0].expect, t.soak_expect, "{}", t.name);
            }
            assert!(t.timeout_s >= 600, "{}", t.name);
        }
        assert!(super::selected(Some("soak_fsync")).len() == 1);
    }
}
