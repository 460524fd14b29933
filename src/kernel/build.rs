//! Links the kernel binary with its linker script (image at 1 MiB physical,
//! `KERNEL_BASE` virtual) as a non-PIE static executable, and builds the
//! vDSO (`vdso/`) the kernel maps into programs: `rustc` compiles
//! `vdso/vdso.rs` for the same target as position-independent code, and
//! the toolchain's `rust-lld` links it into `linux-vdso.so.1`
//! (`$OUT_DIR/vdso.so`, included by `process/vdso.rs`). The result is
//! checked: an ELF shared object with no dynamic relocations (glibc uses a
//! vDSO as it is mapped) exporting the four `__vdso_*` functions. Only the
//! `x86_64-unknown-none` build links this way.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap();
    println!("cargo:rerun-if-changed={dir}/linker.ld");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("none") {
        println!("cargo:rustc-link-arg-bins=-T{dir}/linker.ld");
        println!("cargo:rustc-link-arg-bins=--no-pie");
        println!("cargo:rustc-link-arg-bins=-zmax-page-size=4096");
    }
    build_vdso(Path::new(&dir));
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run {:?}: {e}", cmd.get_program()));
    if !out.status.success() {
        panic!(
            "{what} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn build_vdso(dir: &Path) {
    let src = dir.join("vdso");
    for f in ["vdso.rs", "vdso.lds", "vdso.ver"] {
        println!("cargo:rerun-if-changed={}", src.join(f).display());
    }
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let obj = out.join("vdso.o");
    run(
        Command::new(&rustc)
            .args([
                "--edition=2024",
                "--crate-type=lib",
                "--crate-name=cairn_vdso",
                "--emit=obj",
                "--target=x86_64-unknown-none",
                "-Crelocation-model=pic",
                "-Ccode-model=small",
                "-Copt-level=2",
                "-Cpanic=abort",
                "-Cdebuginfo=0",
                "-o",
            ])
            .arg(&obj)
            .arg(src.join("vdso.rs")),
        "compiling the vDSO",
    );
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .expect("rustc --print sysroot");
    let sysroot = PathBuf::from(String::from_utf8_lossy(&sysroot.stdout).trim());
    let host = std::env::var("HOST").unwrap();
    let lld = sysroot.join("lib/rustlib").join(&host).join("bin/rust-lld");
    let so = out.join("vdso.so");
    run(
        Command::new(&lld)
            .args(["-flavor", "gnu", "-shared", "--no-undefined", "-Bsymbolic"])
            .args([
                "-soname",
                "linux-vdso.so.1",
                "--hash-style=both",
                "--build-id=none",
            ])
            .args([
                "-z",
                "max-page-size=4096",
                "-z",
                "noexecstack",
                "--gc-sections",
            ])
            .arg("-T")
            .arg(src.join("vdso.lds"))
            .arg("--version-script")
            .arg(src.join("vdso.ver"))
            .arg("-o")
            .arg(&so)
            .arg(&obj),
        "linking the vDSO",
    );
    check(&std::fs::read(&so).expect("vdso.so"));
}

fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes(b[o..o + 2].try_into().unwrap())
}
fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}
fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().unwrap())
}

/// The vDSO must need no relocation and export its functions.
fn check(b: &[u8]) {
    assert_eq!(&b[..4], b"\x7fELF", "vDSO: not ELF");
    assert_eq!(u16_at(b, 16), 3, "vDSO: not ET_DYN");
    let (phoff, phnum) = (u64_at(b, 32) as usize, u16_at(b, 56) as usize);
    let mut loads = 0;
    for i in 0..phnum {
        let p = phoff + 56 * i;
        match u32_at(b, p) {
            1 => {
                loads += 1;
                assert_eq!(u32_at(b, p + 4) & 2, 0, "vDSO: writable segment");
            }
            2 => {
                let (off, size) = (u64_at(b, p + 8) as usize, u64_at(b, p + 32) as usize);
                for e in (off..off + size).step_by(16) {
                    let tag = u64_at(b, e);
                    // DT_RELA, DT_REL, DT_TEXTREL, DT_JMPREL.
                    assert!(
                        ![7, 17, 22, 23].contains(&tag),
                        "vDSO: dynamic relocations (tag {tag})"
                    );
                    if tag == 0 {
                        break;
                    }
                }
            }
            _ => {}
        }
    }
    assert_eq!(loads, 1, "vDSO: one PT_LOAD expected");
    for name in [
        "__vdso_clock_gettime",
        "__vdso_gettimeofday",
        "__vdso_time",
        "__vdso_getcpu",
        "LINUX_2.6",
        "linux-vdso.so.1",
    ] {
        assert!(
            b.windows(name.len() + 1)
                .any(|w| &w[..name.len()] == name.as_bytes() && w[name.len()] == 0),
            "vDSO: no {name}"
        );
    }
}
