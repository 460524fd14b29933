//! A Linux guest for comparison: Debian's `linux-image-amd64` kernel, a
//! busybox initramfs and ext4 on the same kind of disk, booted with the
//! same QEMU flags as cairn (`-M q35 -accel tcg -smp N -m 512M`, the
//! storage flags of [`crate::disks`]).
//!
//! * The kernel and busybox come from Debian's packages: `apt-get
//!   download` into `target/xtask/linux/`, `dpkg-deb -x`, keep `vmlinuz`,
//!   the few modules a disk and ext4 need (Debian builds virtio, the SCSI
//!   and ATA drivers and ext4 as modules; their `depends=` is read from
//!   each module's `.modinfo` and loaded in dependency order) and
//!   `busybox`; the rest is deleted. Without apt-get or the network the
//!   guest is unavailable and callers print the reason.
//! * The initramfs (cpio newc, written here) holds busybox, the modules and
//!   an `/init` script that loads them, mounts the disk's ext4 on `/mnt`,
//!   runs the workload there with its argv and environment, prints
//!   `linux-guest: exit status N`, unmounts and powers off.
//! * The disk: `mkfs.ext4 -d` (e2fsprogs) from a directory laid out like
//!   the workload's TFS image.

use crate::Result;
use crate::build;
use crate::qemu::{Outcome, Vm};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Modules the guest loads (with their dependencies): virtio-blk, ata-pci
/// (PIIX), pvscsi, SCSI disks and ext4 with the crc32c it needs, and
/// virtio-net (`bench net`).
const WANTED_MODULES: &[&str] = &[
    "virtio_pci",
    "virtio_blk",
    "virtio_scsi",
    "ata_piix",
    "vmw_pvscsi",
    "nvme",
    "sd_mod",
    "crc32c_generic",
    "ext4",
    "virtio_net",
];

/// The line the init script prints with the workload's status.
pub const STATUS_LINE: &str = "linux-guest: exit status ";

/// A ready Linux guest.
pub struct Guest {
    pub vmlinuz: PathBuf,
    /// Module files, in load order.
    pub modules: Vec<PathBuf>,
    pub busybox: PathBuf,
    /// The Debian package version of the kernel.
    pub version: String,
}

pub fn dir() -> PathBuf {
    build::out_dir().join("linux")
}

fn run(cmd: &mut Command, what: &str) -> Result<String> {
    let o = cmd
        .output()
        .map_err(|e| format!("{what}: cannot run {:?}: {e}", cmd.get_program()))?;
    if !o.status.success() {
        return Err(format!(
            "{what} failed ({}): {}",
            o.status,
            String::from_utf8_lossy(&o.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&o.stdout).into_owned())
}

/// `apt-get download pkg` into `into`; returns the .deb. Refreshes apt's
/// lists once (as root) if the first try fails.
pub fn apt_download(pkg: &str, into: &Path) -> Result<PathBuf> {
    let try_once = || {
        run(
            Command::new("apt-get")
                .args(["download", "-q", pkg])
                .current_dir(into),
            &format!("apt-get download {pkg}"),
        )
    };
    if let Err(first) = try_once() {
        let root = run(Command::new("id").arg("-u"), "id")
            .map(|s| s.trim() == "0")
            .unwrap_or(false);
        if !root {
            return Err(first);
        }
        run(
            Command::new("apt-get").args(["update", "-qq"]),
            "apt-get update",
        )?;
        try_once()?;
    }
    let prefix = format!("{pkg}_");
    std::fs::read_dir(into)
        .map_err(|e| e.to_string())?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(&prefix))
                && p.extension().is_some_and(|e| e == "deb")
        })
        .ok_or_else(|| format!("apt-get download {pkg} left no .deb"))
}

/// The `depends=` list in a module's `.modinfo`.
pub fn modinfo_depends(ko: &[u8]) -> Vec<String> {
    let key = b"depends=";
    let mut i = 0;
    while let Some(p) = ko[i..].windows(key.len()).position(|w| w == key) {
        let at = i + p;
        if at == 0 || ko[at - 1] == 0 {
            let start = at + key.len();
            let end = ko[start..]
                .iter()
                .position(|&b| b == 0)
                .map_or(ko.len(), |e| start + e);
            return String::from_utf8_lossy(&ko[start..end])
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect();
        }
        i = at + 1;
    }
    Vec::new()
}

/// `wanted` and their dependencies, dependencies first. `index` maps
/// module names (with `_`) to files; `deps` reads a module's dependencies.
pub fn load_order(
    wanted: &[&str],
    index: &BTreeMap<String, PathBuf>,
    deps: &mut dyn FnMut(&Path) -> Result<Vec<String>>,
) -> Result<Vec<PathBuf>> {
    fn visit(
        m: &str,
        index: &BTreeMap<String, PathBuf>,
        deps: &mut dyn FnMut(&Path) -> Result<Vec<String>>,
        seen: &mut BTreeSet<String>,
        out: &mut Vec<PathBuf>,
    ) -> Result<()> {
        let name = m.replace('-', "_");
        if !seen.insert(name.clone()) {
            return Ok(());
        }
        let path = index
            .get(&name)
            .ok_or_else(|| format!("module {name} not in the kernel package"))?;
        for d in deps(path)? {
            visit(&d, index, deps, seen, out)?;
        }
        out.push(path.clone());
        Ok(())
    }
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for m in wanted {
        visit(m, index, deps, &mut seen, &mut out)?;
    }
    Ok(out)
}

fn index_modules(root: &Path, index: &mut BTreeMap<String, PathBuf>) {
    let Ok(rd) = std::fs::read_dir(root) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            index_modules(&p, index);
        } else if let Some(stem) = p
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".ko"))
        {
            index.insert(stem.replace('-', "_"), p);
        }
    }
}

/// Fetches (once) and returns the guest; `Err` says why it cannot be had.
pub fn guest() -> Result<Guest> {
    let d = dir();
    let ready = d.join("ready");
    if let Ok(s) = std::fs::read_to_string(&ready) {
        let mut lines = s.lines();
        let version = lines.next().unwrap_or_default().to_string();
        let names: Vec<&str> = lines.collect();
        let modules: Vec<PathBuf> = names.iter().map(|l| d.join("modules").join(l)).collect();
        // A guest fetched before a module was wanted is fetched again.
        let has = |w: &str| {
            names
                .iter()
                .any(|n| n.trim_end_matches(".ko").replace('-', "_") == w)
        };
        if WANTED_MODULES.iter().all(|w| has(w))
            && modules.iter().all(|m| m.is_file())
            && d.join("vmlinuz").is_file()
            && d.join("busybox").is_file()
        {
            return Ok(Guest {
                vmlinuz: d.join("vmlinuz"),
                modules,
                busybox: d.join("busybox"),
                version,
            });
        }
    }
    if run(Command::new("apt-get").arg("--version"), "apt-get").is_err()
        || run(Command::new("dpkg-deb").arg("--version"), "dpkg-deb").is_err()
    {
        return Err(
            "apt-get and dpkg-deb (a Debian system) are needed to fetch Debian's kernel".into(),
        );
    }
    let _ = std::fs::remove_dir_all(&d);
    let work = d.join("work");
    std::fs::create_dir_all(&work).map_err(|e| e.to_string())?;
    eprintln!(
        "xtask: fetching Debian's linux-image-amd64 and busybox-static into {}",
        d.display()
    );
    let meta = apt_download("linux-image-amd64", &work)?;
    let depends = run(
        Command::new("dpkg-deb").arg("-f").arg(&meta).arg("Depends"),
        "dpkg-deb -f",
    )?;
    let image_pkg = depends
        .split([',', '|'])
        .map(|s| s.split_whitespace().next().unwrap_or(""))
        .find(|p| p.starts_with("linux-image-"))
        .ok_or_else(|| format!("linux-image-amd64 depends on no kernel image: {depends}"))?
        .to_string();
    let deb = apt_download(&image_pkg, &work)?;
    let x = work.join("x");
    run(
        Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&x),
        "dpkg-deb -x (kernel)",
    )?;
    let bb = apt_download("busybox-static", &work)?;
    run(
        Command::new("dpkg-deb").arg("-x").arg(&bb).arg(&x),
        "dpkg-deb -x (busybox)",
    )?;
    let vmlinuz = std::fs::read_dir(x.join("boot"))
        .map_err(|e| e.to_string())?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz"))
        })
        .ok_or("the kernel package has no /boot/vmlinuz*")?;
    let mut index = BTreeMap::new();
    index_modules(&x.join("lib").join("modules"), &mut index);
    index_modules(&x.join("usr").join("lib").join("modules"), &mut index);
    let order = load_order(WANTED_MODULES, &index, &mut |p| {
        std::fs::read(p)
            .map(|b| modinfo_depends(&b))
            .map_err(|e| format!("{}: {e}", p.display()))
    })?;
    let mods = d.join("modules");
    std::fs::create_dir_all(&mods).map_err(|e| e.to_string())?;
    let mut names = Vec::new();
    for m in &order {
        let name = m.file_name().unwrap().to_string_lossy().into_owned();
        std::fs::copy(m, mods.join(&name)).map_err(|e| e.to_string())?;
        names.push(name);
    }
    std::fs::copy(&vmlinuz, d.join("vmlinuz")).map_err(|e| e.to_string())?;
    let busybox = [x.join("bin/busybox"), x.join("usr/bin/busybox")]
        .into_iter()
        .find(|p| p.is_file())
        .ok_or("busybox-static has no busybox binary")?;
    std::fs::copy(&busybox, d.join("busybox")).map_err(|e| e.to_string())?;
    let version = image_pkg.trim_start_matches("linux-image-").to_string();
    std::fs::write(&ready, format!("{version}\n{}\n", names.join("\n")))
        .map_err(|e| e.to_string())?;
    let _ = std::fs::remove_dir_all(&work);
    guest()
}

/// A cpio "newc" archive.
#[derive(Default)]
pub struct Cpio {
    buf: Vec<u8>,
    ino: u32,
}

impl Cpio {
    fn entry(&mut self, name: &str, mode: u32, data: &[u8], rdev: (u32, u32)) {
        self.ino += 1;
        let namesize = name.len() + 1;
        let fields = [
            self.ino,
            mode,
            0,
            0,
            1,
            0,
            data.len() as u32,
            0,
            0,
            rdev.0,
            rdev.1,
            namesize as u32,
            0,
        ];
        self.buf.extend_from_slice(b"070701");
        for f in fields {
            self.buf.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.push(0);
        while self.buf.len() % 4 != 0 {
            self.buf.push(0);
        }
        self.buf.extend_from_slice(data);
        while self.buf.len() % 4 != 0 {
            self.buf.push(0);
        }
    }

    pub fn dir(&mut self, name: &str) {
        self.entry(name, 0o040755, &[], (0, 0));
    }

    pub fn file(&mut self, name: &str, mode: u32, data: &[u8]) {
        self.entry(name, 0o100000 | mode, data, (0, 0));
    }

    pub fn char_dev(&mut self, name: &str, major: u32, minor: u32) {
        self.entry(name, 0o020600, &[], (major, minor));
    }

    pub fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, &[], (0, 0));
        while self.buf.len() % 512 != 0 {
            self.buf.push(0);
        }
        self.buf
    }
}

/// Single-quotes `s` for the shell.
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The workload the init script runs in `/mnt` (the disk's root).
pub struct Workload {
    /// Path of the program on the disk (e.g. `/bin/hello`).
    pub program: String,
    /// argv[1..].
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Directories of the root where the second, third... disk (ext4) are
    /// mounted, in the order they are attached.
    pub mounts: Vec<String>,
    /// Run it chrooted into the disk (with `/proc`, `/sys` and `/dev`
    /// mounted there): a dynamically linked program's loader and libraries
    /// are the disk's, at the paths the image has them.
    pub chroot: bool,
    /// Bring up the NIC (virtio-net on QEMU's user networking) with the
    /// address cairn's manifests give: 10.0.2.15/24, gateway 10.0.2.2.
    pub net: bool,
}

/// The `/init` script.
pub fn init_script(g: &Guest, w: &Workload) -> String {
    let modules: Vec<String> = g
        .modules
        .iter()
        .map(|m| m.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    let env: Vec<String> = w
        .env
        .iter()
        .map(|(k, v)| sh_quote(&format!("{k}={v}")))
        .collect();
    let args: Vec<String> = w.args.iter().map(|a| sh_quote(a)).collect();
    let mounts: Vec<String> = w.mounts.iter().map(|p| sh_quote(p)).collect();
    let net = if w.net {
        "ip link set lo up\n\
         for i in $(seq 1 200); do [ -e /sys/class/net/eth0 ] && break; usleep 50000; done\n\
         if ip link set eth0 up && ip addr add 10.0.2.15/24 dev eth0 && ip route add default via 10.0.2.2; then\n\
         \x20 echo \"linux-guest: eth0 10.0.2.15/24 via 10.0.2.2\"\n\
         else\n\
         \x20 echo \"linux-guest: no network\"; ls /sys/class/net; poweroff -f\n\
         fi"
    } else {
        ""
    };
    let (run, after) = if w.chroot {
        (
            format!(
                "for d in proc sys dev; do mkdir -p /mnt/$d; done\n\
                 mount -t proc proc /mnt/proc; mount -t sysfs sys /mnt/sys; mount -t devtmpfs dev /mnt/dev\n\
                 env -i {} chroot /mnt {} {}",
                env.join(" "),
                w.program,
                args.join(" ")
            ),
            "umount /mnt/proc /mnt/sys /mnt/dev".to_string(),
        )
    } else {
        (
            format!(
                "env -i {} /mnt{} {}",
                env.join(" "),
                w.program,
                args.join(" ")
            ),
            String::new(),
        )
    };
    format!(
        r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in {modules}; do insmod /lib/modules/$m 2>/dev/null; done
dev=
for i in $(seq 1 200); do
  for d in /dev/vda /dev/sda /dev/nvme0n1; do [ -b $d ] && dev=$d && break 2; done
  usleep 50000
done
if [ -z "$dev" ] || ! mount -t ext4 -o noatime $dev /mnt; then
  echo "linux-guest: no disk to mount ($dev)"; dmesg | tail -20; poweroff -f
fi
echo "linux-guest: $(uname -sr), ext4 on $dev, $(nproc) CPUs"
extra=
for x in /dev/vd? /dev/sd? /dev/nvme?n1; do
  [ -b "$x" ] && [ "$x" != "$dev" ] && extra="$extra $x"
done
n=0
for m in {mounts}; do
  n=$((n + 1))
  d=$(echo $extra | cut -d' ' -f$n)
  if [ -z "$d" ] || ! mount -t ext4 -o noatime $d /mnt$m; then
    echo "linux-guest: cannot mount disk $n ($d) on $m"; poweroff -f
  fi
done
{net}
cd /mnt
{run}
st=$?
{after}
cd /
sync
for m in {mounts}; do umount /mnt$m; done
umount /mnt
echo "{STATUS_LINE}$st"
poweroff -f
"#,
        modules = modules.join(" "),
        mounts = mounts.join(" "),
    )
}

/// Writes the initramfs for `w` and returns its path.
pub fn initramfs(g: &Guest, w: &Workload, name: &str) -> Result<PathBuf> {
    let mut c = Cpio::default();
    for d in ["bin", "dev", "proc", "sys", "mnt", "lib", "lib/modules"] {
        c.dir(d);
    }
    c.char_dev("dev/console", 5, 1);
    let busybox = std::fs::read(&g.busybox).map_err(|e| e.to_string())?;
    c.file("bin/busybox", 0o755, &busybox);
    for m in &g.modules {
        let data = std::fs::read(m).map_err(|e| e.to_string())?;
        let n = m.file_name().unwrap().to_string_lossy();
        c.file(&format!("lib/modules/{n}"), 0o644, &data);
    }
    c.file("init", 0o755, init_script(g, w).as_bytes());
    let path = dir().join(format!("{name}.cpio"));
    std::fs::write(&path, c.finish()).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

/// Makes `image` (`mib` MiB) an ext4 filesystem holding `tree`.
pub fn mkfs_ext4(image: &Path, mib: u64, tree: &Path) -> Result<()> {
    crate::setup::ensure_e2fsprogs()?;
    let _ = std::fs::remove_file(image);
    run(
        Command::new("mkfs.ext4")
            .args(["-q", "-F", "-b", "4096", "-L", "cairn-cmp", "-E"])
            .arg("lazy_itable_init=0,lazy_journal_init=0")
            .arg("-d")
            .arg(tree)
            .arg(image)
            .arg(format!("{}k", mib * 1024)),
        "mkfs.ext4",
    )?;
    Ok(())
}

/// The absolute sector of byte `offset` of `path` in the ext4 `image`
/// (4 KiB blocks, see [`mkfs_ext4`]).
pub fn ext4_sector(image: &Path, path: &str, offset: u64) -> Result<u64> {
    let out = run(
        Command::new("debugfs")
            .arg("-R")
            .arg(format!("bmap {path} {}", offset / 4096))
            .arg(image),
        "debugfs bmap",
    )?;
    let block: u64 = out
        .trim()
        .parse()
        .map_err(|_| format!("debugfs bmap {path}: {out:?}"))?;
    Ok(block * 8 + (offset % 4096) / 512)
}

/// Boots the guest with `initrd` and `disks` (the root first), plus the
/// QEMU flags `extra`.
pub fn boot(
    g: &Guest,
    initrd: &Path,
    disks: &[crate::disks::Disk],
    smp: usize,
    timeout: Duration,
    log: PathBuf,
    extra: &[&str],
) -> Result<Outcome> {
    let (machine, flags) = crate::disks::attach(disks);
    let mut vm = Vm::new(&g.vmlinuz, log);
    vm.smp = smp;
    vm.machine = machine.unwrap_or("q35").into();
    vm.append = "console=ttyS0 quiet panic=-1 rdinit=/init".into();
    vm.extra = flags;
    vm.extra.push("-initrd".into());
    vm.extra.push(initrd.display().to_string());
    vm.extra.extend(extra.iter().map(|f| f.to_string()));
    vm.timeout = timeout;
    vm.boot()
}

/// The workload's status from the guest's console.
pub fn exit_status(serial: &str) -> Option<u32> {
    serial
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix(STATUS_LINE))
        .and_then(|n| n.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_modinfo_depends() {
        let ko = b"\x7fELF...\0license=GPL\0depends=virtio,virtio_ring\0retpoline=Y\0";
        assert_eq!(modinfo_depends(ko), ["virtio", "virtio_ring"]);
        assert!(modinfo_depends(b"\0depends=\0name=x\0").is_empty());
        // Only a key at the start of a string counts.
        assert!(modinfo_depends(b"\0xdepends=a\0").is_empty());
    }

    #[test]
    fn orders_modules_dependencies_first() {
        let mut index = BTreeMap::new();
        for m in ["ext4", "jbd2", "mbcache", "crc16"] {
            index.insert(m.to_string(), PathBuf::from(format!("{m}.ko")));
        }
        let deps: BTreeMap<&str, Vec<String>> = [
            (
                "ext4.ko",
                vec!["jbd2".to_string(), "mbcache".into(), "crc16".into()],
            ),
            ("jbd2.ko", vec![]),
            ("mbcache.ko", vec![]),
            ("crc16.ko", vec![]),
        ]
        .into_iter()
        .collect();
        let order = load_order(&["ext4", "jbd2"], &index, &mut |p| {
            Ok(deps[p.to_str().unwrap()].clone())
        })
        .unwrap();
        let names: Vec<_> = order.iter().map(|p| p.to_str().unwrap()).collect();
        assert_eq!(names, ["jbd2.ko", "mbcache.ko", "crc16.ko", "ext4.ko"]);
        assert!(load_order(&["nope"], &index, &mut |_| Ok(vec![])).is_err());
    }

    #[test]
    fn cpio_newc_layout() {
        let mut c = Cpio::default();
        c.file("init", 0o755, b"abc");
        let b = c.finish();
        assert!(b.starts_with(b"070701"));
        assert_eq!(&b[6 + 8..6 + 16], b"000081ed");
        assert_eq!(&b[6 + 6 * 8..6 + 7 * 8], b"00000003");
        // Header (110) + "init\0" padded to 116, then the data.
        assert_eq!(&b[110..115], b"init\0");
        assert_eq!(&b[116..119], b"abc");
        assert!(b.windows(10).any(|w| w == b"TRAILER!!!"));
        assert_eq!(b.len() % 512, 0);
    }

    #[test]
    fn quotes_for_the_shell() {
        assert_eq!(sh_quote("a b"), "'a b'");
        assert_eq!(sh_quote("it's"), "'it'\\''s'");
        assert_eq!(exit_status("x\nlinux-guest: exit status 42\n"), Some(42));
    }
}
