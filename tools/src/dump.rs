//! Reading images for `dump`: the root tuple printed as indented text or
//! JSON, the directory tree (Nanos `dump -t` style), and extraction of the
//! files, directories and symlinks into a host directory.

use cairn_tfs::store::{NodeId, Store, Value};
use cairn_tfs::{BlockDevice, FileType, Filesystem};
use std::fmt::Write as _;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// The UUID in the usual 8-4-4-4-12 form.
pub fn uuid_string(u: &[u8; 16]) -> String {
    cairn_tfs::uuid::format(u)
}

fn text_scalar(v: &Value) -> String {
    match v {
        Value::Str(b) | Value::Buf(b) => String::from_utf8_lossy(b).into_owned(),
        Value::Int(i) if i.negative => format!("-{}", i.magnitude),
        Value::Int(i) => i.magnitude.to_string(),
        Value::Flag => String::new(),
        Value::Tuple(_) | Value::Vector(_) => String::new(),
    }
}

enum Item {
    Open(String, NodeId, usize),
    Close(usize),
    Leaf(String, Value, usize),
}

/// The root tuple as indented text, one attribute per line.
pub fn render_text(store: &Store, root: NodeId) -> String {
    let mut out = String::new();
    let mut stack = vec![Item::Open(String::new(), root, 0)];
    let mut seen = std::collections::BTreeSet::new();
    while let Some(item) = stack.pop() {
        match item {
            Item::Open(label, t, depth) => {
                let indent = "  ".repeat(depth);
                if !seen.insert(t) {
                    let _ = writeln!(out, "{indent}{label}(...)");
                    continue;
                }
                let _ = writeln!(out, "{indent}{label}(");
                stack.push(Item::Close(depth));
                let entries: Vec<_> = store.entries(t).map(|(k, v)| (k, v.clone())).collect();
                for (k, v) in entries.into_iter().rev() {
                    let name = format!("{}:", String::from_utf8_lossy(store.symbols.name(k)));
                    match v {
                        Value::Tuple(c) => stack.push(Item::Open(name, c, depth + 1)),
                        other => stack.push(Item::Leaf(name, other, depth + 1)),
                    }
                }
            }
            Item::Close(depth) => {
                let _ = writeln!(out, "{})", "  ".repeat(depth));
            }
            Item::Leaf(label, v, depth) => {
                let indent = "  ".repeat(depth);
                let text = match &v {
                    Value::Vector(id) => {
                        let items: Vec<String> = store
                            .vector(*id)
                            .iter()
                            .map(|s| s.as_ref().map(text_scalar).unwrap_or_default())
                            .collect();
                        format!("[{}]", items.join(" "))
                    }
                    other => text_scalar(other),
                };
                let _ = writeln!(out, "{indent}{label}{text}");
            }
        }
    }
    out
}

fn json_string(out: &mut String, b: &[u8]) {
    out.push('"');
    for c in String::from_utf8_lossy(b).chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn json_value(out: &mut String, store: &Store, v: Option<&Value>, depth: usize) {
    if depth > 512 {
        out.push_str("null");
        return;
    }
    match v {
        None | Some(Value::Flag) => out.push_str("null"),
        Some(Value::Str(b)) | Some(Value::Buf(b)) => json_string(out, b),
        Some(Value::Int(i)) => {
            if i.negative {
                out.push('-');
            }
            let _ = write!(out, "{}", i.magnitude);
        }
        Some(Value::Vector(id)) => {
            out.push('[');
            for (i, s) in store.vector(*id).iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json_value(out, store, s.as_ref(), depth + 1);
            }
            out.push(']');
        }
        Some(Value::Tuple(t)) => {
            out.push('{');
            for (i, (k, v)) in store.entries(*t).enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json_string(out, store.symbols.name(k));
                out.push(':');
                json_value(out, store, Some(v), depth + 1);
            }
            out.push('}');
        }
    }
}

/// The volume as JSON: label, UUID and the root tuple.
pub fn render_json<D: BlockDevice>(fs: &Filesystem<D>) -> String {
    let mut out = String::from("{\"label\":");
    json_string(&mut out, fs.label());
    let _ = write!(out, ",\"uuid\":\"{}\",\"root\":", uuid_string(&fs.uuid()));
    json_value(
        &mut out,
        fs.store(),
        Some(&Value::Tuple(fs.root_tuple())),
        0,
    );
    out.push_str("}\n");
    out
}

/// The directory tree, one entry a line, `|   ` per level, depth first.
pub fn render_tree<D: BlockDevice>(fs: &Filesystem<D>) -> String {
    let mut out = String::from("/\n");
    let mut stack: Vec<(cairn_tfs::DirEntry, usize)> = fs
        .readdir(fs.root())
        .unwrap_or_default()
        .into_iter()
        .rev()
        .map(|e| (e, 1))
        .collect();
    while let Some((e, depth)) = stack.pop() {
        let name = String::from_utf8_lossy(&e.name);
        let _ = write!(out, "{}{name}", "|   ".repeat(depth));
        match e.kind {
            FileType::Directory => {
                out.push_str("/\n");
                let children = fs.readdir(e.ino).unwrap_or_default();
                stack.extend(children.into_iter().rev().map(|c| (c, depth + 1)));
            }
            FileType::Symlink => {
                let t = fs.readlink(e.ino).unwrap_or_default();
                let _ = writeln!(out, " -> {}", String::from_utf8_lossy(&t));
            }
            FileType::Regular => {
                let size = fs.stat(e.ino).map(|s| s.size).unwrap_or(0);
                let _ = writeln!(out, " ({size} bytes)");
            }
        }
    }
    out
}

/// Copies the tree into `dest` (created if missing); returns files written.
pub fn extract<D: BlockDevice>(fs: &Filesystem<D>, dest: &Path) -> io::Result<u64> {
    fs::create_dir_all(dest)?;
    let mut count = 0;
    let mut stack = vec![(fs.root(), dest.to_path_buf())];
    let mut buf = vec![0u8; 1 << 20];
    while let Some((dir, path)) = stack.pop() {
        for e in fs
            .readdir(dir)
            .map_err(|e| io::Error::other(e.to_string()))?
        {
            let target = path.join(std::ffi::OsStr::from_bytes(&e.name));
            match e.kind {
                FileType::Directory => {
                    fs::create_dir_all(&target)?;
                    stack.push((e.ino, target));
                }
                FileType::Symlink => {
                    let t = fs
                        .readlink(e.ino)
                        .map_err(|e| io::Error::other(e.to_string()))?;
                    let _ = fs::remove_file(&target);
                    std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(&t), &target)?;
                }
                FileType::Regular => {
                    let mut out = Vec::new();
                    let mut off = 0;
                    loop {
                        let n = fs
                            .read(e.ino, off, &mut buf)
                            .map_err(|e| io::Error::other(e.to_string()))?;
                        if n == 0 {
                            break;
                        }
                        out.extend_from_slice(&buf[..n]);
                        off += n as u64;
                    }
                    fs::write(&target, out)?;
                    count += 1;
                }
            }
        }
    }
    Ok(count)
}
