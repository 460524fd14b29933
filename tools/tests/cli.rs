//! The binaries end to end: mkfs from a manifest and a host tree, dump,
//! fsck clean and dirty, manifest errors with a caret.

use std::io::Write;
use std::process::{Command, Stdio};

fn tmp(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("cairn-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn mkfs_dump_fsck_round_trip_with_import_and_mbr() {
    let dir = tmp("rt");
    let host = dir.join("tree");
    std::fs::create_dir_all(host.join("sub")).unwrap();
    std::fs::write(host.join("sub/data.bin"), vec![7u8; 70_000]).unwrap();
    std::os::unix::fs::symlink("sub/data.bin", host.join("link")).unwrap();
    let img = dir.join("disk.img");
    let st = Command::new(env!("CARGO_BIN_EXE_mkfs"))
        .args([
            "--import",
            host.to_str().unwrap(),
            "--mbr",
            "-e",
            "-l",
            "cli",
            "-t",
            "(program:/sub/data.bin)",
            img.to_str().unwrap(),
        ])
        .status()
        .unwrap();
    assert!(st.success());
    let out = Command::new(env!("CARGO_BIN_EXE_fsck"))
        .arg(&img)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let ex = dir.join("out");
    let out = Command::new(env!("CARGO_BIN_EXE_dump"))
        .args(["-t", "-d", ex.to_str().unwrap(), img.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Label: cli") && text.contains("link -> sub/data.bin"),
        "{text}"
    );
    assert_eq!(
        std::fs::read(ex.join("sub/data.bin")).unwrap(),
        vec![7u8; 70_000]
    );
    let out = Command::new(env!("CARGO_BIN_EXE_dump"))
        .args(["--json", img.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"program\":\"/sub/data.bin\""));

    // Corrupt the log's first frame: fsck lists a problem and fails.
    let mut bytes = std::fs::read(&img).unwrap();
    let log = (2048 + 1) * 512 + 9;
    bytes[log] = 0x7e;
    std::fs::write(&img, bytes).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_fsck"))
        .arg(&img)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("unknown frame identifier 0x7e"));
    let out = Command::new(env!("CARGO_BIN_EXE_dump"))
        .arg(&img)
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[test]
fn manifest_errors_point_at_line_and_column() {
    let dir = tmp("err");
    let mut child = Command::new(env!("CARGO_BIN_EXE_mkfs"))
        .arg(dir.join("x.img"))
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"(children:(\n  bin (x:y)))")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("line 2, column 7") && err.contains("  bin (x:y)))\n      ^"),
        "{err}"
    );
}

#[test]
fn mkfs_empty_data_volume_with_label_and_uuid() {
    let dir = tmp("vol");
    let img = dir.join("data.img");
    let out = Command::new(env!("CARGO_BIN_EXE_mkfs"))
        .args(["-e", "-l", "cairn-data", "-s", "8M", img.to_str().unwrap()])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    let uuid = said
        .split("UUID ")
        .nth(1)
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    assert_eq!(uuid.len(), 36, "mkfs names the UUID it chose: {said}");
    let size = std::fs::metadata(&img).unwrap().len();
    assert!((8 << 20..=9 << 20).contains(&size), "image of {size} bytes");
    let out = Command::new(env!("CARGO_BIN_EXE_dump"))
        .args(["-t", img.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Label: cairn-data") && text.contains(&format!("UUID: {uuid}")),
        "{text}"
    );
    let json = Command::new(env!("CARGO_BIN_EXE_dump"))
        .args(["--json", img.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&json.stdout).contains("program"),
        "an empty volume names no program"
    );

    // A chosen UUID, named the way a manifest's mounts may name it.
    let out = Command::new(env!("CARGO_BIN_EXE_mkfs"))
        .args([
            "-e",
            "-l",
            "logs",
            "--uuid",
            "C41A7E5D-0B1C-4E55-9A0F-3D2B6F7A9E01",
            img.to_str().unwrap(),
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("UUID c41a7e5d-0b1c-4e55-9a0f-3d2b6f7a9e01")
    );
    let out = Command::new(env!("CARGO_BIN_EXE_mkfs"))
        .args(["-e", "-l", &"x".repeat(32), img.to_str().unwrap()])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("too long"));
}

#[test]
fn mkfs_program_images_carry_loader_libraries_and_etc() {
    if !std::path::Path::new("/bin/ls").exists() {
        eprintln!("SKIPPED: no /bin/ls");
        return;
    }
    let dir = tmp("program");
    std::fs::create_dir_all(dir.join("extra/sub")).unwrap();
    std::fs::write(dir.join("extra/sub/note.txt"), b"hello").unwrap();
    std::fs::write(
        dir.join("m.manifest"),
        b"(children:(srv:(contents:(host:extra))) environment:(LANG:C.UTF-8))",
    )
    .unwrap();
    let img = dir.join("ls.img");
    let out = Command::new(env!("CARGO_BIN_EXE_mkfs"))
        .args(["--program", "/bin/ls", "-m"])
        .arg(dir.join("m.manifest"))
        .args(["-s", "32M", "--env", "TZ=UTC"])
        .arg(&img)
        .args(["--", "-l", "/srv"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(std::fs::metadata(&img).unwrap().len() >= 32 << 20);
    let out = Command::new(env!("CARGO_BIN_EXE_fsck"))
        .arg(&img)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let ex = dir.join("out");
    let out = Command::new(env!("CARGO_BIN_EXE_dump"))
        .args(["-t", "-d", ex.to_str().unwrap(), img.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for want in [
        "ld.so.cache",
        "passwd",
        "nsswitch.conf",
        "libc.so.6",
        "note.txt",
    ] {
        assert!(text.contains(want), "no {want} in:\n{text}");
    }
    assert_eq!(
        std::fs::read(ex.join("srv/sub/note.txt")).unwrap(),
        b"hello"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_dump"))
        .args(["--json", img.to_str().unwrap()])
        .output()
        .unwrap();
    let json = String::from_utf8_lossy(&out.stdout);
    assert!(json.contains("\"program\":\"/bin/ls\""), "{json}");
    for want in ["\"-l\"", "\"/srv\"", "C.UTF-8", "UTC", "/root"] {
        assert!(json.contains(want), "no {want} in {json}");
    }
}

#[test]
fn mkfs_program_names_a_missing_library_and_who_needs_it() {
    let dir = tmp("missing");
    let ok = |c: &mut Command| c.current_dir(&dir).status().is_ok_and(|s| s.success());
    std::fs::write(dir.join("lib.c"), "int f(void){return 1;}\n").unwrap();
    std::fs::write(
        dir.join("main.c"),
        "int f(void);\nint main(void){return f();}\n",
    )
    .unwrap();
    if !ok(Command::new("gcc").args([
        "-shared",
        "-fPIC",
        "-o",
        "libgone.so.3",
        "-Wl,-soname,libgone.so.3",
        "lib.c",
    ])) || !ok(Command::new("gcc").args(["-o", "prog", "main.c", "./libgone.so.3"]))
    {
        eprintln!("SKIPPED: no gcc");
        return;
    }
    std::fs::remove_file(dir.join("libgone.so.3")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_mkfs"))
        .arg("--program")
        .arg(dir.join("prog"))
        .arg(dir.join("x.img"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("libgone.so.3") && err.contains(&dir.join("prog").display().to_string()),
        "{err}"
    );
    assert!(!dir.join("x.img").exists(), "no image is left behind");
}

#[test]
fn manifest_contents_may_name_a_host_directory() {
    let dir = tmp("hostdir");
    std::fs::create_dir_all(dir.join("tree/a/b")).unwrap();
    std::fs::write(dir.join("tree/a/b/deep.txt"), b"deep").unwrap();
    std::fs::write(dir.join("tree/top.txt"), b"top").unwrap();
    std::os::unix::fs::symlink("a/b/deep.txt", dir.join("tree/link")).unwrap();
    std::fs::write(
        dir.join("m.manifest"),
        b"(children:(data:(contents:(host:tree)) other:(children:())) program:/data/top.txt)",
    )
    .unwrap();
    let img = dir.join("d.img");
    let out = Command::new(env!("CARGO_BIN_EXE_mkfs"))
        .arg("-m")
        .arg(dir.join("m.manifest"))
        .arg(&img)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ex = dir.join("out");
    let out = Command::new(env!("CARGO_BIN_EXE_dump"))
        .args(["-t", "-d", ex.to_str().unwrap(), img.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("link -> a/b/deep.txt"));
    assert_eq!(
        std::fs::read(ex.join("data/a/b/deep.txt")).unwrap(),
        b"deep"
    );
    assert_eq!(std::fs::read(ex.join("data/top.txt")).unwrap(), b"top");
}

/// Nanos's mkfs accepts manifests nested far deeper than 256 levels (a
/// deep directory tree is two tuple levels per directory); so do mkfs,
/// fsck and dump, without running out of stack.
#[test]
fn mkfs_accepts_deeply_nested_manifests() {
    let dir = tmp("deep");
    std::fs::write(dir.join("f.txt"), b"at the bottom\n").unwrap();
    let depth = 3000;
    let mut m = String::from("(children:(");
    for _ in 0..depth {
        m.push_str("d:(children:(");
    }
    m.push_str("bottom.txt:(contents:(host:f.txt))");
    for _ in 0..depth {
        m.push_str("))");
    }
    m.push_str("))\n");
    std::fs::write(dir.join("deep.manifest"), m).unwrap();
    let img = dir.join("deep.img");
    let out = Command::new(env!("CARGO_BIN_EXE_mkfs"))
        .args(["-m", dir.join("deep.manifest").to_str().unwrap()])
        .arg(&img)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "mkfs: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(env!("CARGO_BIN_EXE_fsck"))
        .arg(&img)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains(&format!("{} directories", depth + 1)),
        "fsck: {text}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_dump"))
        .args(["-t"])
        .arg(&img)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("bottom.txt"));
}
