//! Booting cairn on QEMU: the command line, a hard timeout on every run,
//! the serial log kept on disk, and the decoding of how the VM ended.
//!
//! A kernel leaves QEMU through isa-debug-exit (`(v << 1) | 1`) and prints
//! `cairn: exit status N` just before (the exact status; the port clamps
//! it) or `cairn: KERNEL PANIC` with a backtrace, which is symbolised with
//! `addr2line` when the run fails.

use crate::Result;
use crate::build;
use clap::{Args, ValueEnum};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Accel {
    Tcg,
    Kvm,
}

#[derive(Args, Clone)]
pub struct RunArgs {
    /// Accelerator: tcg (default, works everywhere) or kvm.
    #[arg(long, value_enum, default_value = "tcg")]
    pub accel: Accel,
    /// Number of vCPUs.
    #[arg(long, default_value_t = 2)]
    pub smp: usize,
    /// Guest memory (QEMU syntax).
    #[arg(long, default_value = "512M")]
    pub memory: String,
    /// QEMU machine type.
    #[arg(long, default_value = "q35")]
    pub machine: String,
    /// Kernel command line (e.g. "test=boot log=debug").
    #[arg(long, default_value = "")]
    pub append: String,
    /// Start QEMU's gdb stub on tcp::1234 and wait for the debugger.
    #[arg(long)]
    pub gdb: bool,
    /// CPU model (default: QEMU's for tcg, `host` for kvm).
    #[arg(long)]
    pub cpu: Option<String>,
    /// Build the kernel in release mode (validators off).
    #[arg(long)]
    pub release: bool,
    /// Seconds before the VM is killed.
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,
    /// Attach a virtio-net NIC on QEMU's user networking (the guest is
    /// 10.0.2.15/24, the host 10.0.2.2).
    #[arg(long)]
    pub net: bool,
    /// With --net: forward host TCP port HOST to guest port GUEST
    /// (repeatable).
    #[arg(long = "forward", value_name = "HOST:GUEST")]
    pub forwards: Vec<String>,
}

impl RunArgs {
    /// The QEMU flags `--net`/`--forward` ask for.
    pub fn net_flags(&self) -> Result<Vec<String>> {
        if !self.net {
            if !self.forwards.is_empty() {
                return Err("--forward needs --net".into());
            }
            return Ok(Vec::new());
        }
        let mut fw = Vec::new();
        for f in &self.forwards {
            let (h, g) = f
                .split_once(':')
                .and_then(|(h, g)| Some((h.parse::<u16>().ok()?, g.parse::<u16>().ok()?)))
                .ok_or_else(|| format!("--forward {f}: want HOST:GUEST ports"))?;
            fw.push((h, g));
        }
        Ok(net_flags(&fw, &[]))
    }
}

/// QEMU flags for a virtio-net NIC on user networking, forwarding each
/// `(host, guest)` TCP port pair from the host's 127.0.0.1 and each UDP
/// pair of `udp`.
pub fn net_flags(tcp: &[(u16, u16)], udp: &[(u16, u16)]) -> Vec<String> {
    let mut netdev = String::from("user,id=n0");
    for (h, g) in tcp {
        netdev += &format!(",hostfwd=tcp:127.0.0.1:{h}-:{g}");
    }
    for (h, g) in udp {
        netdev += &format!(",hostfwd=udp:127.0.0.1:{h}-:{g}");
    }
    vec![
        "-netdev".into(),
        netdev,
        "-device".into(),
        "virtio-net-pci,netdev=n0".into(),
    ]
}

/// One VM to boot.
pub struct Vm {
    pub kernel: PathBuf,
    pub accel: Accel,
    pub smp: usize,
    pub memory: String,
    pub machine: String,
    pub append: String,
    pub gdb: bool,
    pub timeout: Duration,
    /// Serial log path.
    pub log: PathBuf,
    /// Serial to the terminal too (interactive runs).
    pub interactive: bool,
    pub extra: Vec<String>,
    /// A console line to time: `Outcome::marker_at` records when it appeared.
    pub marker: Option<String>,
    /// CPU model; `None`: QEMU's default under TCG, `host` under KVM.
    pub cpu: Option<String>,
    /// Open a QMP socket and send it the JSON of each `ktest: qmp <json>`
    /// console line, once, in order (a kernel test driving QEMU: resizing
    /// or hot-plugging a disk). Replies go to `<log>.qmp`.
    pub qmp: bool,
}

/// How a VM ended.
#[derive(Debug)]
pub struct Outcome {
    /// QEMU's own exit status (None: killed).
    pub qemu_status: Option<i32>,
    pub timed_out: bool,
    pub serial: String,
    /// The kernel's `cairn: exit status N`, if printed.
    pub exit_status: Option<u32>,
    pub panicked: bool,
    pub elapsed: Duration,
    /// When the marker line first appeared on the console.
    pub marker_at: Option<Duration>,
}

impl Outcome {
    /// A clean exit with status `s`: printed by the kernel and confirmed by
    /// QEMU's debug-exit status.
    pub fn exited_with(&self, s: u32) -> bool {
        self.exit_status == Some(s)
            && !self.panicked
            && self.qemu_status == Some((((s.min(126)) << 1) | 1) as i32)
    }
}

impl Vm {
    pub fn new(kernel: &Path, log: PathBuf) -> Vm {
        Vm {
            kernel: kernel.to_path_buf(),
            accel: Accel::Tcg,
            smp: 2,
            memory: "512M".into(),
            machine: "q35".into(),
            append: String::new(),
            gdb: false,
            timeout: Duration::from_secs(60),
            log,
            interactive: false,
            extra: Vec::new(),
            marker: None,
            cpu: None,
            qmp: false,
        }
    }

    fn qmp_socket(&self) -> PathBuf {
        self.log.with_extension("qmp.sock")
    }

    fn command(&self) -> Command {
        let mut c = Command::new("qemu-system-x86_64");
        c.args(["-M", &self.machine]);
        match self.accel {
            Accel::Tcg => c.args(["-accel", "tcg"]),
            Accel::Kvm => c.args(["-accel", "kvm"]),
        };
        match (&self.cpu, self.accel) {
            (Some(model), _) => {
                c.args(["-cpu", model]);
            }
            (None, Accel::Kvm) => {
                c.args(["-cpu", "host"]);
            }
            (None, Accel::Tcg) => {}
        }
        c.args(["-smp", &self.smp.to_string(), "-m", &self.memory])
            .args(["-nodefaults", "-no-reboot", "-display", "none"])
            .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]);
        // The runner asks for a hang report through it (`nmi`).
        c.args([
            "-monitor",
            &format!("unix:{},server=on,wait=off", self.monitor_path().display()),
        ]);
        if self.interactive {
            c.args([
                "-chardev",
                &format!("stdio,id=console,signal=off,logfile={}", self.log.display()),
                "-serial",
                "chardev:console",
            ]);
        } else {
            c.args(["-serial", &format!("file:{}", self.log.display())]);
        }
        c.arg("-kernel").arg(&self.kernel);
        if !self.append.is_empty() {
            c.args(["-append", &self.append]);
        }
        if self.gdb {
            c.args(["-s", "-S"]);
        }
        if self.qmp {
            c.arg("-qmp").arg(format!(
                "unix:{},server=on,wait=off",
                self.qmp_socket().display()
            ));
        }
        c.args(&self.extra);
        c
    }

    /// The QEMU monitor's socket.
    fn monitor_path(&self) -> PathBuf {
        self.log.with_extension("monitor")
    }

    /// A hung boot: inject an NMI into every vCPU through the monitor, so
    /// the kernel prints what each CPU was doing (`hang.rs`), and give it a
    /// few seconds to finish before the kill.
    fn request_hang_report(&self, child: &mut std::process::Child) {
        use std::io::Write;
        let Ok(mut mon) = std::os::unix::net::UnixStream::connect(self.monitor_path()) else {
            return;
        };
        if mon.write_all(b"nmi\n").is_err() {
            return;
        }
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Boots the VM and waits for it to end (or kills it at the timeout).
    pub fn boot(&self) -> Result<Outcome> {
        if let Some(dir) = self.log.parent() {
            fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        let _ = fs::remove_file(&self.log);
        let mut cmd = self.command();
        if !self.interactive {
            let stderr = fs::File::create(self.log.with_extension("stderr"))
                .map_err(|e| format!("{}: {e}", self.log.display()))?;
            cmd.stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(stderr);
        }
        let start = Instant::now();
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start qemu-system-x86_64: {e}"))?;
        let mut timed_out = false;
        let mut marker_at = None;
        let mut qmp = self
            .qmp
            .then(|| Qmp::new(self.qmp_socket(), self.log.with_extension("qmp")));
        let status = loop {
            if let Some(q) = qmp.as_mut() {
                q.poll(&self.log);
            }
            if let Some(m) = &self.marker
                && marker_at.is_none()
                && fs::read(&self.log)
                    .is_ok_and(|b| String::from_utf8_lossy(&b).contains(m.as_str()))
            {
                marker_at = Some(start.elapsed());
            }
            if let Some(s) = child.try_wait().map_err(|e| e.to_string())? {
                break Some(s);
            }
            if start.elapsed() > self.timeout {
                self.request_hang_report(&mut child);
                let _ = child.kill();
                let _ = child.wait();
                timed_out = true;
                break None;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let elapsed = start.elapsed();
        let serial = fs::read(&self.log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        let exit_status = serial
            .lines()
            .rev()
            .find_map(|l| l.trim().strip_prefix("cairn: exit status "))
            .and_then(|n| n.trim().parse().ok());
        Ok(Outcome {
            qemu_status: status.and_then(|s| s.code()),
            timed_out,
            panicked: serial.contains("cairn: KERNEL PANIC"),
            exit_status,
            serial,
            elapsed,
            marker_at,
        })
    }
}

fn note_to(log: &Path, line: &str) {
    use std::io::Write;
    if let Ok(mut f) = fs::OpenOptions::new().create(true).append(true).open(log) {
        let _ = writeln!(f, "{line}");
    }
}

/// The QMP side of a VM: sends the commands its console asks for.
struct Qmp {
    socket: PathBuf,
    log: PathBuf,
    conn: Option<(
        std::os::unix::net::UnixStream,
        std::io::BufReader<std::os::unix::net::UnixStream>,
    )>,
    sent: usize,
}

const QMP_LINE: &str = "ktest: qmp ";

impl Qmp {
    fn new(socket: PathBuf, log: PathBuf) -> Qmp {
        let _ = fs::remove_file(&log);
        Qmp {
            socket,
            log,
            conn: None,
            sent: 0,
        }
    }

    fn note(&self, line: &str) {
        note_to(&self.log, line);
    }

    /// Reads replies until one that is not an event.
    fn reply(&mut self) -> Option<String> {
        use std::io::BufRead;
        let (_, r) = self.conn.as_mut()?;
        loop {
            let mut line = String::new();
            if r.read_line(&mut line).ok()? == 0 {
                return None;
            }
            let line = line.trim().to_string();
            if !line.contains("\"event\"") {
                return Some(line);
            }
            note_to(&self.log, &format!("<- {line}"));
        }
    }

    fn connect(&mut self) -> bool {
        use std::io::Write;
        if self.conn.is_some() {
            return true;
        }
        let Ok(s) = std::os::unix::net::UnixStream::connect(&self.socket) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
        let Ok(r) = s.try_clone() else { return false };
        self.conn = Some((s, std::io::BufReader::new(r)));
        let greeting = self.reply().unwrap_or_default();
        self.note(&format!("<- {greeting}"));
        if let Some((w, _)) = self.conn.as_mut() {
            let _ = w.write_all(b"{\"execute\":\"qmp_capabilities\"}\n");
        }
        let ok = self.reply().unwrap_or_default();
        self.note(&format!("<- {ok}"));
        true
    }

    /// Sends the commands the console asked for since the last call.
    fn poll(&mut self, console: &Path) {
        use std::io::Write;
        let Ok(text) = fs::read(console) else { return };
        // Whole lines only: the console may be caught mid-line.
        let whole = text.iter().rposition(|&c| c == b'\n').map_or(0, |i| i + 1);
        let text = String::from_utf8_lossy(&text[..whole]);
        let wanted: Vec<String> = text
            .lines()
            .filter_map(|l| l.trim().strip_prefix(QMP_LINE).map(str::to_string))
            .collect();
        while self.sent < wanted.len() {
            if !self.connect() {
                return;
            }
            let cmd = &wanted[self.sent];
            self.note(&format!("-> {cmd}"));
            if let Some((w, _)) = self.conn.as_mut() {
                let _ = w.write_all(format!("{cmd}\n").as_bytes());
            }
            let r = self.reply().unwrap_or_else(|| "(no reply)".into());
            self.note(&format!("<- {r}"));
            self.sent += 1;
        }
    }
}

/// Symbolises backtrace lines (`#N 0xADDR`) of `serial` with addr2line.
pub fn symbolize(kernel: &Path, serial: &str) -> String {
    let addrs: Vec<&str> = serial
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            l.starts_with('#')
                .then(|| l.split_whitespace().nth(1))
                .flatten()
        })
        .collect();
    if addrs.is_empty() {
        return String::new();
    }
    let out = Command::new("addr2line")
        .arg("-e")
        .arg(kernel)
        .args(["-f", "-C", "-i", "-p"])
        .args(&addrs)
        .output();
    match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).into_owned(),
        _ => "(addr2line unavailable: install binutils to symbolise)\n".into(),
    }
}

/// `cargo xtask run`.
pub fn run(a: RunArgs) -> Result<ExitCode> {
    crate::setup::ensure(crate::setup::Need {
        qemu: true,
        gcc: false,
        clippy: false,
    })?;
    let net = a.net_flags()?;
    let kernel = build::kernel(a.release)?;
    let mut vm = Vm::new(&kernel, build::out_dir().join("logs").join("run.log"));
    vm.accel = a.accel;
    vm.smp = a.smp;
    vm.memory = a.memory;
    vm.machine = a.machine;
    vm.append = a.append;
    vm.gdb = a.gdb;
    vm.cpu = a.cpu;
    vm.timeout = Duration::from_secs(a.timeout);
    vm.interactive = true;
    vm.extra = net;
    eprintln!(
        "xtask: booting {} on QEMU ({:?}, {} vCPUs, {}); serial log in {}",
        kernel.display(),
        vm.accel,
        vm.smp,
        vm.memory,
        vm.log.display()
    );
    let o = vm.boot()?;
    if o.timed_out {
        return Err(format!("VM killed after {} s (timeout)", a.timeout));
    }
    if o.panicked {
        eprint!("{}", symbolize(&kernel, &o.serial));
    }
    eprintln!(
        "xtask: VM ended after {:.2} s: {}",
        o.elapsed.as_secs_f64(),
        match (o.exit_status, o.panicked) {
            (_, true) => "kernel panic".to_string(),
            (Some(s), _) => format!("exit status {s}"),
            (None, _) => format!("no exit status (QEMU status {:?})", o.qemu_status),
        }
    );
    Ok(match o.exit_status {
        Some(0) if !o.panicked => ExitCode::SUCCESS,
        Some(s) if !o.panicked => ExitCode::from(s.min(255) as u8),
        _ => ExitCode::FAILURE,
    })
}
