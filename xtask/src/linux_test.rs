//! `cargo xtask linux-test [FILTER]`: the runtime tests on the Linux guest
//! ([`crate::linux`]: Debian's kernel, ext4 on virtio-blk), with the same
//! QEMU flags, boots, fault injection and judgement as on cairn. It checks
//! the test programs against a real kernel under the conditions of the
//! suite (a small disk for ENOSPC, blkdebug for EIO, a second boot for
//! persistence), so that a failure on cairn is cairn's.

use crate::Result;
use crate::build;
use crate::disks::{self, Storage};
use crate::linux::{self, Guest};
use cairn_runtime_tests::{Inject, RuntimeTest};
use cairn_tfs::store::{NodeId, Store, Value};
use cairn_tfs::symbol::known;
use clap::Args;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Args)]
pub struct LinuxTestArgs {
    /// Only tests whose name contains this.
    pub filter: Option<String>,
}

/// Copies the manifest tree under `t` into `dir`, taking host files from
/// `base`.
fn lay_out(store: &Store, t: NodeId, base: &Path, dir: &Path) -> Result<()> {
    let Some(children) = store.get_tuple(t, known::CHILDREN) else {
        return Ok(());
    };
    for (k, v) in store.entries(children) {
        let Value::Tuple(node) = v else { continue };
        let name = String::from_utf8_lossy(store.symbols.name(k)).into_owned();
        let path = dir.join(&name);
        if let Some(contents) = store.get_tuple(*node, known::CONTENTS) {
            let host = store
                .get(contents, known::HOST)
                .and_then(Value::as_bytes)
                .ok_or_else(|| format!("{name}: contents without host"))?;
            let src = base.join(String::from_utf8_lossy(host).as_ref());
            std::fs::copy(&src, &path).map_err(|e| format!("{}: {e}", src.display()))?;
        } else if store.get_tuple(*node, known::CHILDREN).is_some() {
            std::fs::create_dir_all(&path).map_err(|e| e.to_string())?;
            lay_out(store, *node, base, &path)?;
        }
    }
    Ok(())
}

/// The directory tree and workload of test `t` (built in its build dir).
pub fn tree_and_workload(t: &RuntimeTest, tree: &Path) -> Result<linux::Workload> {
    let base = crate::image::build_dir(t);
    crate::programs::prepare(t, &base)?;
    let text = t.manifest_text().map_err(|e| e.to_string())?;
    if t.program_image() {
        // The image's whole tree (program, loader, libraries, /etc), run
        // chrooted.
        let img = cairn_tools::program::build(&crate::image::program_spec(text, &base))
            .map_err(|e| e.to_string())?;
        let _ = std::fs::remove_dir_all(tree);
        img.tree.lay_out(tree).map_err(|e| e.to_string())?;
        let s = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        return Ok(linux::Workload {
            program: img.program.display().to_string(),
            args: img.arguments.iter().skip(1).map(|a| s(a)).collect(),
            env: img.environment.iter().map(|(k, v)| (s(k), s(v))).collect(),
            mounts: Vec::new(),
            chroot: true,
            net: false,
        });
    }
    let m = cairn_tfs::manifest::parse(&text).map_err(|e| e.render(&text))?;
    let _ = std::fs::remove_dir_all(tree);
    std::fs::create_dir_all(tree).map_err(|e| e.to_string())?;
    lay_out(&m.store, m.root, &base, tree)?;
    let w = cairn_tfs::Workload::from_root(&m.store, m.root);
    let s = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    // The mount point of each of the test's volumes, in attach order.
    let mounts = t
        .volumes
        .iter()
        .map(|v| {
            w.mounts
                .iter()
                .find(|(k, _)| {
                    k.as_slice() == v.label.as_bytes()
                        || v.uuid.is_some_and(|u| u.as_bytes() == k.as_slice())
                })
                .map(|(_, p)| s(p))
                .ok_or_else(|| format!("{}: no mounts entry for volume {}", t.name, v.label))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(linux::Workload {
        program: s(w.program.as_deref().unwrap_or_default()),
        args: w.arguments.iter().skip(1).map(|a| s(a)).collect(),
        env: w.environment.iter().map(|(k, v)| (s(k), s(v))).collect(),
        mounts,
        chroot: false,
        net: false,
    })
}

/// Bytes of the files under `dir`.
fn tree_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => tree_bytes(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map(|m| m.len()).unwrap_or(0),
            _ => 0,
        })
        .sum()
}

fn tail(s: &str, lines: usize) -> String {
    let v: Vec<&str> = s.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}

/// Runs `t` on the Linux guest (virtio-blk).
pub fn run_one(g: &Guest, t: &RuntimeTest) -> Result<()> {
    let work = linux::dir().join("tests").join(t.name);
    let tree = work.join("tree");
    let w = tree_and_workload(t, &tree)?;
    let image = work.join("disk.img");
    // Room for the tree (a program image's libraries and directories).
    let mib = t.image_mib.max((tree_bytes(&tree) >> 20) * 3 / 2 + 32);
    linux::mkfs_ext4(&image, mib, &tree)?;
    let file = match t.inject {
        None => image.display().to_string(),
        Some(Inject::ReadFile { path, offset }) => {
            let sector = linux::ext4_sector(&image, path, offset)?;
            let rules = work.join("blkdebug.conf");
            std::fs::write(&rules, crate::runtime::blkdebug_read_rule(sector))
                .map_err(|e| e.to_string())?;
            format!("blkdebug:{}:{}", rules.display(), image.display())
        }
    };
    // The data volumes: empty ext4 disks after the root, on virtio-blk.
    let mut attached = vec![disks::Disk::new(Storage::Virtio, file)];
    let empty = work.join("empty");
    std::fs::create_dir_all(&empty).map_err(|e| e.to_string())?;
    for (i, v) in t.volumes.iter().enumerate() {
        let img = work.join(format!("vol{i}.img"));
        linux::mkfs_ext4(&img, v.mib, &empty)?;
        attached.push(disks::Disk::new(Storage::Virtio, img.display().to_string()));
    }
    let boots = t.boot_list();
    for (i, b) in boots.iter().enumerate() {
        let want = b.status;
        // A boot with its own argv runs it (argv[0] is the program).
        // A boot with an absolute argv[0] runs that program.
        let w = linux::Workload {
            program: match b.argv.first() {
                Some(p) if p.starts_with('/') => p.clone(),
                _ => w.program.clone(),
            },
            args: if b.argv.is_empty() {
                w.args.clone()
            } else {
                b.argv[1..].to_vec()
            },
            env: w.env.clone(),
            mounts: w.mounts.clone(),
            chroot: w.chroot,
            net: w.net,
        };
        let initrd = linux::initramfs(g, &w, &format!("test-{}-{}", t.name, i + 1))?;
        let log = build::out_dir()
            .join("logs")
            .join(format!("linux-{}-boot{}.log", t.name, i + 1));
        let o = linux::boot(
            g,
            &initrd,
            &attached,
            t.smp,
            Duration::from_secs(t.timeout_s.max(120)),
            log.clone(),
            &[],
        )?;
        let got = linux::exit_status(&o.serial);
        let missing = b.expect.iter().find(|m| !o.serial.contains(m.as_str()));
        if o.timed_out || got != Some(want) || missing.is_some() {
            eprintln!(
                "---- serial tail ({}) ----\n{}\n----",
                log.display(),
                tail(&o.serial, 25)
            );
            return Err(format!(
                "boot {}: {}",
                i + 1,
                if o.timed_out {
                    "timed out".to_string()
                } else if got != Some(want) {
                    format!("exit status {got:?}, expected {want}")
                } else {
                    format!("the console never showed {missing:?}")
                }
            ));
        }
    }
    let _ = std::fs::remove_file(&image);
    Ok(())
}

/// `cargo xtask linux-test`.
pub fn linux_test(a: LinuxTestArgs) -> Result<ExitCode> {
    crate::setup::ensure(crate::setup::Need {
        qemu: true,
        gcc: true,
        clippy: false,
    })?;
    let g = match linux::guest() {
        Ok(g) => g,
        Err(why) => {
            eprintln!("xtask: SKIPPED linux-test: no Linux guest: {why}");
            return Ok(ExitCode::SUCCESS);
        }
    };
    std::fs::create_dir_all(disks::dir()).map_err(|e| e.to_string())?;
    let (mut passed, mut failed) = (0, Vec::new());
    for t in cairn_runtime_tests::catalogue() {
        if a.filter
            .as_ref()
            .is_some_and(|f| !t.name.contains(f.as_str()))
        {
            continue;
        }
        if let cairn_runtime_tests::Native::No(why) = t.linux {
            eprintln!("xtask: skip linux {}: {why}", t.name);
            continue;
        }
        if t.boots.contains(&126) {
            eprintln!(
                "xtask: skip linux {}: it checks cairn's own boot error",
                t.name
            );
            continue;
        }
        let start = std::time::Instant::now();
        match run_one(&g, t) {
            Ok(()) => {
                passed += 1;
                eprintln!(
                    "xtask: ok   linux {} ({:.1} s)",
                    t.name,
                    start.elapsed().as_secs_f64()
                );
            }
            Err(e) => {
                eprintln!("xtask: FAIL linux {}: {e}", t.name);
                failed.push(t.name);
            }
        }
    }
    eprintln!(
        "\nlinux-test (Linux {}): {passed} passed, {} failed",
        g.version,
        failed.len()
    );
    for f in &failed {
        eprintln!("xtask: FAILED  linux {f}");
    }
    Ok(if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
