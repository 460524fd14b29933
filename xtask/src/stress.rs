//! `cargo xtask test --stress`: the scheduler under oversubscription.
//!
//! The seed runtime tests (plain, and beside CPU-bound threads), the
//! liveness test and issue 17's shared-file tests (lockless reads, seeks
//! and closes on one file from every vCPU) run with 4 vCPUs while host threads keep every host core
//! busy, so the vCPUs get a fraction of a core each and are descheduled at
//! any point: the shape of a loaded CI machine or two suites at once. The
//! tests assert progress, never time, so they must pass like this; they get
//! three times their usual timeout.

use crate::Result;
use crate::disks::Storage;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// The runtime tests of the stress target, run at [`STRESS_SMP`] vCPUs.
const STRESS_TESTS: &[&str] = &[
    "seed_brian",
    "seed_colin",
    "seed_mman_race",
    "seed_split_merge",
    "seed_brian_spin",
    "seed_colin_spin",
    "seed_mman_race_spin",
    "seed_split_merge_spin",
    "liveness_smp4",
    // Issue 17's paths without the kernel lock, every vCPU on one file.
    "sharedfile_smp4",
    "shared_offset_smp4",
    "pread_close_smp4",
    "mapfault_smp4",
    "cached_write_smp4",
];

const STRESS_SMP: usize = 4;

/// Host threads spinning on every host core until dropped.
struct HostLoad {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl HostLoad {
    fn start() -> HostLoad {
        let n = std::thread::available_parallelism().map_or(2, |n| n.get());
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..n)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut x = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        for _ in 0..100_000 {
                            x = std::hint::black_box(
                                x.wrapping_mul(6364136223846793005).wrapping_add(1),
                            );
                        }
                    }
                })
            })
            .collect();
        eprintln!("xtask: stress: {n} host thread(s) spinning beside the VMs");
        HostLoad { stop, threads }
    }
}

impl Drop for HostLoad {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Runs the stress target, reporting each test through `step`.
pub fn run(kernel: &Path, step: &mut dyn FnMut(&str, Result<()>)) {
    let _load = HostLoad::start();
    for name in STRESS_TESTS {
        let Some(t) = cairn_runtime_tests::find(name) else {
            step(name, Err(format!("no runtime test named {name}")));
            continue;
        };
        let mut s = t.clone();
        s.smp = STRESS_SMP;
        s.timeout_s *= 3;
        s.name = Box::leak(format!("{name}-stress").into_boxed_str());
        let label = format!("stress {name} on virtio (-smp {STRESS_SMP}, host cores busy)");
        step(&label, crate::runtime::run_one(kernel, &s, Storage::Virtio));
    }
}
