//! Inputs of the runtime tests that run real programs (SQLite's shell,
//! busybox applets): scripts and data made on the host, with the answers
//! the programs' own checks compare against (SQL `CASE` lines printing
//! `PASS ...`, an `md5sum -c` list).
//!
//! Everything here is deterministic: the same bytes on every run and on
//! both sides (cairn's image and the Linux guest's ext4).

use md5::{Digest, Md5};
use std::fmt::Write;

/// Rows the SQLite scripts insert, one `INSERT` statement each, in one
/// transaction.
pub const SQLITE_ROWS: u64 = 100_000;

/// The `k` column of row `i` (a permutation of 0..100003).
fn key(i: u64) -> u64 {
    (i * 7919) % 100_003
}

/// A sqlite3 shell script for `journal_mode` (`DELETE` or `WAL`): 100k
/// INSERTs in one transaction, an index, an UPDATE and a DELETE in a
/// second transaction, a rolled-back transaction, then the checks (counts,
/// sums, an index lookup, `PRAGMA integrity_check`), which print `PASS
/// <tag>` only if all hold.
pub fn sqlite_script(mode: &str, tag: &str) -> Vec<u8> {
    sqlite_script_rows(mode, tag, SQLITE_ROWS)
}

/// [`sqlite_script`] with `rows` rows (at least 10).
pub fn sqlite_script_rows(mode: &str, tag: &str, rows: u64) -> Vec<u8> {
    let sqlite_rows = rows;
    let mut s = String::new();
    let _ = writeln!(s, "PRAGMA journal_mode={mode};");
    s += "CREATE TABLE t(id INTEGER PRIMARY KEY, k INTEGER NOT NULL, v TEXT NOT NULL);\n";
    s += "BEGIN;\n";
    for i in 1..=sqlite_rows {
        let _ = writeln!(s, "INSERT INTO t(k, v) VALUES({}, 'row-{i:08}');", key(i));
    }
    s += "COMMIT;\n";
    s += "CREATE INDEX t_k ON t(k);\n";
    s += "BEGIN;\nUPDATE t SET v = v || '-odd' WHERE id % 2 = 1;\nDELETE FROM t WHERE id % 10 = 0;\nCOMMIT;\n";
    s += "BEGIN;\nDELETE FROM t;\nROLLBACK;\n";
    if mode == "WAL" {
        s += "PRAGMA wal_checkpoint(TRUNCATE);\n";
    }
    let kept = sqlite_rows - sqlite_rows / 10;
    let sum_ids: u64 = (1..=sqlite_rows).filter(|i| i % 10 != 0).sum();
    let sum_keys: u64 = (1..=sqlite_rows).filter(|i| i % 10 != 0).map(key).sum();
    let odd: u64 = (1..=sqlite_rows).filter(|i| i % 2 == 1).count() as u64;
    // An odd id (updated), never a multiple of 10 (deleted).
    let probe = (sqlite_rows * 7 / 9) | 1;
    let _ = writeln!(
        s,
        "SELECT CASE WHEN (SELECT count(*) FROM t) = {kept} \
         AND (SELECT sum(id) FROM t) = {sum_ids} \
         AND (SELECT sum(k) FROM t) = {sum_keys} \
         AND (SELECT count(*) FROM t WHERE v LIKE '%-odd') = {odd} \
         AND (SELECT v FROM t WHERE k = {}) = 'row-{probe:08}-odd' \
         AND (SELECT group_concat(integrity_check) FROM pragma_integrity_check) = 'ok' \
         AND (SELECT journal_mode FROM pragma_journal_mode) = '{}' \
         THEN 'PASS {tag}' ELSE 'FAIL {tag}: ' || (SELECT count(*) FROM t) END;",
        key(probe),
        mode.to_lowercase()
    );
    s.into_bytes()
}

pub fn sqlite_delete_script() -> Vec<u8> {
    sqlite_script("DELETE", "sqlite-delete")
}

pub fn sqlite_wal_script() -> Vec<u8> {
    sqlite_script("WAL", "sqlite-wal")
}

/// The busybox test's tree: (path, bytes, pattern seed).
pub const BUSYBOX_TREE: &[(&str, u64, u32)] = &[
    ("data/a/one.dat", 1 << 20, 61),
    ("data/a/two.dat", 4096, 62),
    ("data/a/deeper/three.dat", 300_000, 63),
    ("data/b/four.dat", 12, 64),
    ("data/b/five.dat", 65_536, 65),
    ("data/six.dat", 777_777, 66),
];

/// Size of the file `sort` sorts.
pub const SORT_BYTES: usize = 10 << 20;
/// Size of the file gzip compresses.
pub const GZIP_BYTES: u64 = 4 << 20;

fn xorshift(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

/// 10 MiB of text lines (random words and numbers) for `sort`.
pub fn unsorted() -> Vec<u8> {
    let mut out = Vec::with_capacity(SORT_BYTES + 64);
    let mut x = 0x2545_f491_4f6c_dd1du64;
    while out.len() < SORT_BYTES {
        let r = xorshift(&mut x);
        let line = format!("{:016x} {} line-{}\n", r, r % 1000, out.len());
        out.extend_from_slice(line.as_bytes());
    }
    out
}

/// `unsorted()` sorted as busybox `sort` (C locale: byte order) does.
pub fn sorted() -> Vec<u8> {
    let text = unsorted();
    let mut lines: Vec<&[u8]> = text.split_inclusive(|&b| b == b'\n').collect();
    lines.sort();
    lines.concat()
}

fn md5_hex(bytes: &[u8]) -> String {
    let d = Md5::digest(bytes);
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// The `md5sum -c` list the last busybox step checks: the tree extracted
/// by tar (under `out/`) and copied by `cp -r` (under `copy/`), the sorted
/// file, and the file gzip then gunzip gave back.
pub fn busybox_sums() -> Vec<u8> {
    let mut s = String::new();
    for &(path, bytes, seed) in BUSYBOX_TREE {
        let sum = md5_hex(&crate::pattern_bytes(0, bytes as usize, seed));
        let _ = writeln!(s, "{sum}  out/{path}");
        let copied = path.replacen("data/", "copy/", 1);
        let _ = writeln!(s, "{sum}  {copied}");
    }
    let _ = writeln!(s, "{}  sorted.txt", md5_hex(&sorted()));
    let big = crate::pattern_bytes(0, GZIP_BYTES as usize, 67);
    let _ = writeln!(s, "{}  big.dat", md5_hex(&big));
    s.into_bytes()
}

/// The `find data -type f` lines the find step must print.
pub const FIND_LINES: &[&str] = &[
    "data/a/one.dat",
    "data/a/two.dat",
    "data/a/deeper/three.dat",
    "data/b/four.dat",
    "data/b/five.dat",
    "data/six.dat",
];

/// Rows of the dyn_sqlite3 test's script (Debian's sqlite3 shell).
pub const DYN_SQLITE_ROWS: u64 = 20_000;

/// The dyn_sqlite3 test's script: WAL mode, [`DYN_SQLITE_ROWS`] rows.
pub fn dyn_sqlite_script() -> Vec<u8> {
    sqlite_script_rows("WAL", "dyn-sqlite3", DYN_SQLITE_ROWS)
}

/// The dyn_python test's tree: (directory, seed, bytes); the file is
/// `<directory>/f-<seed>-<bytes>.dat`, the name the script reads the
/// pattern from.
pub const PY_TREE: &[(&str, u32, u64)] = &[
    ("data", 101, 4096),
    ("data", 102, 1),
    ("data/a", 103, 100_000),
    ("data/a", 104, 0),
    ("data/a/b", 105, 65_536),
    ("data/a/b/c", 106, 33_333),
    ("data/d", 107, 12_345),
    ("data/d", 108, 8192),
];

/// The `md5sum -c` list of the dyn_gzip_tar test: the busybox tree as tar
/// extracted it under `out/`.
pub fn tar_sums() -> Vec<u8> {
    let mut s = String::new();
    for &(path, bytes, seed) in BUSYBOX_TREE {
        let sum = md5_hex(&crate::pattern_bytes(0, bytes as usize, seed));
        let _ = writeln!(s, "{sum}  out/{path}");
    }
    s.into_bytes()
}
