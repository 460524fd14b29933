//! `cargo xtask bench net`: the `httpd` runtime test's server on a release
//! kernel (TCG, `-smp 2`, virtio-net on QEMU's user networking), driven by
//! the host-side HTTP client with one and with four keep-alive
//! connections. Figures only: requests per second and payload MB/s as the
//! host client saw them (the files of the `httpd` test, 0 to 150 KB,
//! round-robin). QEMU's user networking (slirp) is part of every figure.

use crate::Result;
use crate::build;
use crate::disks::{self, Storage};
use crate::qemu::Vm;
use cairn_runtime_tests::NetRole;
use std::time::Duration;

pub fn run() -> Result<()> {
    let base = cairn_runtime_tests::find("httpd").ok_or("no httpd test")?;
    let kernel = build::kernel(true)?;
    let pristine = crate::image::build_test_image(base, None)?;
    println!(
        "net (release kernel, TCG, -smp 2, virtio-net on QEMU user networking; httpd test program):"
    );
    let mut lines = String::new();
    for (requests, connections) in [(1000, 1), (2000, 4)] {
        let mut t = base.clone();
        t.net = Some(NetRole::HttpClient {
            guest_port: 8080,
            requests,
            connections,
        });
        std::fs::create_dir_all(disks::dir()).map_err(|e| e.to_string())?;
        let disk = disks::dir().join("bench-net.img");
        std::fs::copy(&pristine, &disk).map_err(|e| format!("{}: {e}", disk.display()))?;
        let (machine, flags) = disks::attach(&[disks::Disk::new(
            Storage::Virtio,
            disk.display().to_string(),
        )]);
        let peer = crate::net_peer::start(&t, t.net.expect("net"), Duration::from_secs(600))?;
        let mut vm = Vm::new(&kernel, build::out_dir().join("logs").join("bench-net.log"));
        vm.smp = 2;
        vm.machine = machine.unwrap_or("q35").into();
        vm.extra = flags;
        vm.extra.extend(peer.flags.iter().cloned());
        vm.timeout = Duration::from_secs(600);
        let o = vm.boot()?;
        peer.stop.store(true, std::sync::atomic::Ordering::Release);
        let host = peer
            .handle
            .join()
            .unwrap_or_else(|_| Err("host peer panicked".into()));
        let line = match host {
            Ok(figures) if o.exited_with(0) => figures,
            Ok(_) => format!(
                "{requests} requests / {connections} connections: guest did not exit cleanly"
            ),
            Err(e) => format!("{requests} requests / {connections} connections: {e}"),
        };
        println!("  {line}");
        lines += &format!("* {line}\n");
    }
    let body = format!(
        "## net\n\n`cargo xtask bench net`: the `httpd` runtime test's server (epoll, keep-alive, sendfile) on a \
         release kernel under TCG, `-smp 2`, virtio-net on QEMU's user networking (slirp, part of every figure); \
         the host client fetches the test's five files (0 to 150 KB) round-robin and compares every byte. \
         Host: {} CPUs.\n\n{lines}\n",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );
    crate::bench_fs::write_section("net", "net", &body)
}
