//! Offline consistency check (the library behind `fsck`): replays the log,
//! indexes the tree and checks extents (overlap with each other and with
//! log extensions, bounds), references, the tree (cycles, directories
//! reachable twice, stored `nlink` against the names found) and the
//! workload's program path (a warning), collecting every problem rather than stopping
//! at the first.
//!
//! Runs in kernel-lock/thread context only and takes no locks itself.

use crate::device::BlockDevice;
use crate::fs::index;
use crate::replay;
use crate::store::Value;
use crate::symbol::known;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

/// What a check found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Every problem, in the order found; empty for a clean volume.
    pub problems: Vec<String>,
    /// Findings that do not make the volume inconsistent (a workload
    /// `program` that names nothing in the tree).
    pub warnings: Vec<String>,
    /// Regular files.
    pub files: usize,
    /// Directories (the root included).
    pub dirs: usize,
    /// Symbolic links.
    pub symlinks: usize,
    /// Log extensions (the header sector included).
    pub extensions: usize,
    /// Sectors used by the log and file extents.
    pub used_sectors: u64,
    /// Attribute assignments replayed.
    pub log_entries: u64,
}

impl Report {
    /// True if no problem was found.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Checks the TFS volume on `dev`.
pub fn check<D: BlockDevice>(dev: &D) -> Report {
    let mut report = Report::default();
    let r = match replay::replay(dev) {
        Ok(r) => r,
        Err(e) => {
            report.problems.push(format!("log replay failed: {e}"));
            return report;
        }
    };
    let (idx, space, problems) = index::build(&r.store, r.root, dev.sector_count(), &r.chain);
    report.problems.extend(problems);
    for (&node, &count) in &idx.links {
        if let Some(v) = r.store.get(node, known::NLINK) {
            if v.as_u64() != Some(u64::from(count)) {
                let p = idx.path(&r.store, node);
                report
                    .problems
                    .push(format!("{p}: stored nlink {v:?} but {count} names found"));
            }
        }
    }
    if let Some(v) = r.store.get(r.root, known::PROGRAM) {
        match v.as_bytes() {
            Some(path) => {
                let mut cur = r.root;
                let mut ok = true;
                for part in path.split(|&b| b == b'/').filter(|p| !p.is_empty()) {
                    if idx.symlinks.contains(&cur) {
                        break;
                    }
                    let next = idx.dirs.get(&cur).and_then(|d| {
                        let sym = r.store.symbols.find(part)?;
                        match r.store.get(d.children, sym) {
                            Some(Value::Tuple(t)) => Some(*t),
                            _ => None,
                        }
                    });
                    match next {
                        Some(n) => cur = n,
                        None => {
                            ok = false;
                            break;
                        }
                    }
                }
                if !ok {
                    let p = String::from_utf8_lossy(path);
                    report
                        .warnings
                        .push(format!("program {p:?} does not name a file in the tree"));
                }
            }
            None => report
                .warnings
                .push(String::from("program is not a string")),
        }
    }
    report.files = idx.files.len();
    report.dirs = idx.dirs.len();
    report.symlinks = idx.symlinks.len();
    report.extensions = r.chain.len();
    report.used_sectors = space.size() - space.free_sectors();
    report.log_entries = r.stats.total;
    report
}
