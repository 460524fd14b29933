//! `cargo xtask bench net`: the same static HTTP server
//! (test/runtime/c/httpd.c: epoll, keep-alive, sendfile) on cairn (release
//! kernel, TFS) and on the Linux guest (Debian's kernel, ext4; see
//! [`crate::bench_guest`]) in the same run, both under TCG with `-smp 2`
//! and a virtio-net NIC on QEMU's user networking (slirp, part of every
//! figure). On the host, wrk (Debian's package) loads each guest with
//! keep-alive connections for a fixed time per file (1 KiB, 1 MiB) and
//! reports requests per second and the 99th percentile latency. Before
//! the load, each file is fetched once and its bytes compared, so a
//! figure is never of a wrong answer. Figures only: printed and written to
//! BENCHMARKS.md, never asserted.

use crate::Result;
use crate::net_peer::{self, Deadline};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Seconds of load per file and guest.
const SECONDS: u32 = 10;
/// wrk's keep-alive connections (one wrk thread).
const CONNECTIONS: usize = 4;
/// The server's port in the guest (the manifest's argument).
const GUEST_PORT: u16 = 8080;

/// What wrk measured for one file.
#[derive(Clone, Debug, PartialEq)]
pub struct Figures {
    pub requests_per_s: f64,
    pub p99_ms: f64,
    /// wrk's socket-error line, if any error was counted.
    pub errors: Option<String>,
}

/// One guest's figures per file, or why there are none.
type Side = Result<Vec<Figures>>;

/// A wrk latency such as `850.00us`, `12.34ms` or `1.02s`, in ms.
fn parse_latency(s: &str) -> Option<f64> {
    let i = s.find(|c: char| c.is_ascii_alphabetic())?;
    let v: f64 = s[..i].parse().ok()?;
    let scale = match &s[i..] {
        "us" => 1e-3,
        "ms" => 1.0,
        "s" => 1e3,
        "m" => 60e3,
        "h" => 3600e3,
        _ => return None,
    };
    Some(v * scale)
}

/// wrk's output (with `--latency`): requests/s and p99. Responses other
/// than 2xx/3xx make it an error: the figure would be of the wrong thing.
pub fn parse_wrk(out: &str) -> Result<Figures> {
    let mut rps = None;
    let mut p99 = None;
    let mut errors = None;
    for l in out.lines() {
        let l = l.trim();
        if let Some(v) = l.strip_prefix("Requests/sec:") {
            rps = v.trim().parse().ok();
        } else if let Some(v) = l.strip_prefix("99%") {
            p99 = parse_latency(v.trim());
        } else if l.starts_with("Non-2xx or 3xx responses:") {
            return Err(format!("wrk: {l}"));
        } else if l.starts_with("Socket errors:") {
            errors = Some(l.to_string());
        }
    }
    match (rps, p99) {
        (Some(requests_per_s), Some(p99_ms)) => Ok(Figures {
            requests_per_s,
            p99_ms,
            errors,
        }),
        _ => Err(format!("no figures in wrk's output:\n{out}")),
    }
}

fn wrk(port: u16, path: &str) -> Result<Figures> {
    let url = format!("http://127.0.0.1:{port}{path}");
    let o = Command::new("wrk")
        .args(["-t1", &format!("-c{CONNECTIONS}"), &format!("-d{SECONDS}s")])
        .args(["--latency", "--timeout", "60s", &url])
        .output()
        .map_err(|e| format!("cannot run wrk: {e}"))?;
    let out = String::from_utf8_lossy(&o.stdout);
    if !o.status.success() {
        return Err(format!(
            "wrk {url} failed ({}): {}{out}",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        ));
    }
    parse_wrk(&out)
}

/// Waits for the server on host port `port`, checks every file's bytes
/// once, then loads it with wrk file by file.
fn drive(port: u16, files: &[(String, Vec<u8>)], deadline: &Deadline) -> Side {
    net_peer::wait_for_server(port, deadline)?;
    for (path, want) in files {
        let mut r = net_peer::connect(port, deadline)?;
        let (st, body) = net_peer::get(&mut r, path).map_err(|e| format!("GET {path}: {e}"))?;
        if st != 200 || &body != want {
            return Err(format!(
                "GET {path}: status {st}, {} bytes, expected {} bytes{}",
                body.len(),
                want.len(),
                if st == 200 { " (different)" } else { "" }
            ));
        }
    }
    files.iter().map(|(path, _)| wrk(port, path)).collect()
}

/// Boots one guest with a NIC forwarding a free host port to the server
/// (`boot` gets the NIC's QEMU flags and returns the console or why it
/// failed) while the host drives the server; then `GET /quit` ends it.
fn measure(
    name: &str,
    files: &[(String, Vec<u8>)],
    boot: impl FnOnce(Vec<String>) -> Result<String> + Send + 'static,
) -> Side {
    let port = net_peer::free_tcp_port()?;
    let nic = crate::qemu::net_flags(&[(port, GUEST_PORT)], &[]);
    let stop = Arc::new(AtomicBool::new(false));
    let deadline = Deadline::new(Duration::from_secs(900), stop.clone());
    let guest = std::thread::spawn(move || {
        let r = boot(nic);
        stop.store(true, Ordering::Release);
        r
    });
    let figures = drive(port, files, &deadline);
    // Ends the server whatever happened (a server that never came up has
    // ended already).
    let quit = net_peer::connect(port, &deadline)
        .and_then(|mut r| net_peer::get(&mut r, "/quit").map_err(|e| e.to_string()));
    let booted = guest
        .join()
        .unwrap_or_else(|_| Err(format!("{name}: boot thread panicked")));
    let figures = figures?;
    quit.map_err(|e| format!("GET /quit: {e}"))?;
    booted?;
    Ok(figures)
}

fn cell(side: &Side, i: usize, f: impl Fn(&Figures) -> f64) -> String {
    match side {
        Ok(v) => v.get(i).map_or("n/a".into(), |x| format!("{:.2}", f(x))),
        Err(_) => "n/a".into(),
    }
}

fn ratio(a: &Side, b: &Side, i: usize, f: impl Fn(&Figures, &Figures) -> f64) -> String {
    match (a, b) {
        (Ok(a), Ok(b)) => match (a.get(i), b.get(i)) {
            (Some(x), Some(y)) => format!("{:.2}", f(x, y)),
            _ => "n/a".into(),
        },
        _ => "n/a".into(),
    }
}

/// The markdown table: per file, requests/s and p99 on both guests and
/// the cairn/Linux ratio (>1: cairn faster; for latency Linux/cairn).
pub fn table(labels: &[&str], cairn: &Side, linux: &Side) -> String {
    let mut t = String::from(
        "| file | cairn req/s | Linux req/s | req/s cairn/Linux | cairn p99 ms | Linux p99 ms | p99 Linux/cairn |\n\
         |---|---|---|---|---|---|---|\n",
    );
    for (i, l) in labels.iter().enumerate() {
        t += &format!(
            "| {l} | {} | {} | {} | {} | {} | {} |\n",
            cell(cairn, i, |f| f.requests_per_s),
            cell(linux, i, |f| f.requests_per_s),
            ratio(cairn, linux, i, |c, l| c.requests_per_s / l.requests_per_s),
            cell(cairn, i, |f| f.p99_ms),
            cell(linux, i, |f| f.p99_ms),
            ratio(cairn, linux, i, |c, l| l.p99_ms / c.p99_ms),
        );
    }
    t
}

/// `cargo xtask bench net`.
pub fn run() -> Result<()> {
    crate::setup::ensure(crate::setup::Need {
        qemu: true,
        gcc: true,
        clippy: false,
    })?;
    crate::setup::ensure_wrk()?;
    let t = cairn_runtime_tests::net_bench();
    let files = net_peer::www(t);
    let labels: Vec<&str> = files
        .iter()
        .map(|(p, _)| match p.rsplit('/').next() {
            Some("1k") => "1 KiB",
            Some("1m") => "1 MiB",
            Some(other) => other,
            None => "?",
        })
        .collect();
    let marker = "requests served";
    eprintln!("xtask: bench net: cairn (release kernel)");
    let cairn = measure("cairn", &files, move |nic| {
        crate::bench_guest::cairn_net(t, 2, "bench-net-cairn", marker, &nic)
    });
    eprintln!("xtask: bench net: Linux guest");
    let version = Arc::new(std::sync::Mutex::new(String::new()));
    let v = version.clone();
    let linux = measure("Linux", &files, move |nic| {
        let (r, version) = crate::bench_guest::linux_net(t, 2, "bench-net-linux", marker, &nic);
        *v.lock().unwrap_or_else(|e| e.into_inner()) = version;
        r
    });
    let version = version.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let table = table(&labels, &cairn, &linux);
    let mut notes = String::new();
    for (name, side) in [("cairn", &cairn), ("Linux", &linux)] {
        match side {
            Err(e) => {
                eprintln!("xtask: bench net: {name}: {e}");
                notes += &format!(
                    "\n{name}: not measured: {}\n",
                    e.lines().next().unwrap_or("")
                );
            }
            Ok(v) => {
                for (f, l) in v.iter().zip(&labels) {
                    if let Some(e) = &f.errors {
                        notes += &format!("\n{name}, {l}: wrk counted {e}\n");
                    }
                }
            }
        }
    }
    println!(
        "net under TCG (-M q35 -smp 2 -m 512M -mem-prealloc, virtio-net on user networking), same run; \
         wrk -t1 -c{CONNECTIONS} -d{SECONDS}s per file"
    );
    print!("{table}{notes}");
    let body = format!(
        "## net\n\n`cargo xtask bench net`: test/runtime/c/httpd.c (static; epoll, keep-alive, \
         sendfile) on cairn (release kernel, TFS) and on {} under TCG, `-M q35 -smp 2 -m 512M \
         -mem-prealloc`, virtio-blk disk and a virtio-net NIC on QEMU's user networking (slirp, \
         part of every figure), in the same run. On the host, Debian's wrk loads one file at a \
         time for {SECONDS} s over {CONNECTIONS} keep-alive connections (`wrk -t1 -c{CONNECTIONS} \
         --latency`) after the file's bytes were checked once. Ratios above 1 mean cairn is \
         faster (requests/s cairn/Linux, p99 latency Linux/cairn). Host: {} CPUs, shared with \
         wrk and QEMU's slirp.\n\n{table}{notes}\n",
        if version.is_empty() {
            "a Linux guest"
        } else {
            &version
        },
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );
    crate::bench_fs::write_section("net", "net", &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    const WRK: &str = "Running 10s test @ http://127.0.0.1:1234/www/1k
  1 threads and 4 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.10ms    1.00ms  20.00ms   90.00%
    Req/Sec     1.90k   100.00     2.00k    70.00%
  Latency Distribution
     50%    1.90ms
     75%    2.20ms
     90%    3.00ms
     99%  850.00us
  19000 requests in 10.00s, 21.00MB read
Requests/sec:   1900.50
Transfer/sec:      2.10MB
";

    #[test]
    fn parses_wrk() {
        let f = parse_wrk(WRK).unwrap();
        assert_eq!(f.requests_per_s, 1900.5);
        assert!((f.p99_ms - 0.85).abs() < 1e-9);
        assert_eq!(f.errors, None);
        let slow = WRK.replace("850.00us", "1.50s")
            + "  Socket errors: connect 0, read 2, write 0, timeout 0\n";
        let f = parse_wrk(&slow).unwrap();
        assert_eq!(f.p99_ms, 1500.0);
        assert!(f.errors.unwrap().contains("read 2"));
        let bad = WRK.replace(
            "Requests/sec",
            "  Non-2xx or 3xx responses: 5\nRequests/sec",
        );
        assert!(parse_wrk(&bad).is_err());
        assert!(parse_wrk("nothing").is_err());
    }

    #[test]
    fn table_ratios_are_above_one_when_cairn_is_faster() {
        let f = |r, p| Figures {
            requests_per_s: r,
            p99_ms: p,
            errors: None,
        };
        let cairn: Side = Ok(vec![f(200.0, 5.0)]);
        let linux: Side = Ok(vec![f(100.0, 10.0)]);
        let t = table(&["1 KiB"], &cairn, &linux);
        assert!(
            t.contains("| 1 KiB | 200.00 | 100.00 | 2.00 | 5.00 | 10.00 | 2.00 |"),
            "{t}"
        );
        let t = table(&["1 KiB"], &cairn, &Err("no".into()));
        assert!(t.contains("| 1 KiB | 200.00 | n/a | n/a |"), "{t}");
    }
}
