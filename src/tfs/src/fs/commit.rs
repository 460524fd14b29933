//! Making changes durable: [`Filesystem::sync_metadata`] (stage pending
//! timestamp updates, commit the log, release space freed by the committed
//! changes), [`Filesystem::fsync`], and compaction of the whole tree into a
//! fresh log chain committed by rewriting the header sector.
//!
//! Ordering contract: file data is written to the device before the commit
//! that refers to it; the commit's first device flush makes that data and
//! the new log sectors durable before the one write that makes them
//! reachable, and its second flush makes that write durable. Space freed by
//! staged changes is reused only after their commit, so a crash never shows
//! a file whose blocks were handed to another.
//!
//! Runs in kernel-lock/thread context only and takes no locks itself.

use super::{Filesystem, Ino, LOG_RESERVE};
use crate::codec::Encoder;
use crate::device::BlockDevice;
use crate::error::FsError;
use crate::frame::{END_OF_SEGMENT, EXTENSION_SECTORS, Span};
use crate::log_writer::LogWriter;
use crate::store::{NodeId, Value};
use crate::symbol::known;
use alloc::collections::BTreeSet;
use alloc::vec::Vec;

/// Obsolete entries before compaction is considered (`TFS_LOG_COMPACT_OBSOLETE`).
const COMPACT_OBSOLETE: u64 = 8192;
/// Compact when total entries are at most this times the obsolete ones.
const COMPACT_RATIO: u64 = 2;

impl<D: BlockDevice> Filesystem<D> {
    fn stage_times(&mut self) {
        let dirty: Vec<NodeId> = core::mem::take(&mut self.times_dirty).into_iter().collect();
        for node in dirty {
            if !self.logged(node) || self.kind(node).is_none() || !self.log.dict.contains_node(node)
            {
                continue;
            }
            for sym in [known::ATIME, known::MTIME] {
                if let Some(v) = self.store.get(node, sym).cloned() {
                    let mut enc = Encoder::new(&self.store, &mut self.log.dict);
                    if enc.eav(node, sym, Some(&v)) {
                        let out = enc.out;
                        self.log.stage(out);
                    }
                }
            }
        }
    }

    fn release_pending(&mut self) {
        for (start, len) in core::mem::take(&mut self.pending_free) {
            self.space.release(start, len);
        }
    }

    /// Commits every staged metadata change (data written before this call
    /// is made durable first) and flushes the device; compacts the log when
    /// it has grown large.
    pub fn sync_metadata(&mut self) -> Result<(), FsError> {
        self.stage_times();
        if !self.log.dirty() {
            self.dev.flush()?;
            self.release_pending();
            return Ok(());
        }
        let space = &mut self.space;
        let next_extend = &mut self.next_extend;
        let mut allocate = || -> Option<Span> {
            if let Some(s) = next_extend.take() {
                *next_extend = space.allocate(LOG_RESERVE).map(|start| Span {
                    start,
                    sectors: LOG_RESERVE,
                });
                return Some(s);
            }
            space.allocate(EXTENSION_SECTORS).map(|start| Span {
                start,
                sectors: EXTENSION_SECTORS,
            })
        };
        match self.log.flush(&self.dev, &mut allocate) {
            Ok(_) => {}
            Err((e, spans)) => {
                for s in spans {
                    self.space.release(s.start, s.sectors);
                }
                return Err(e);
            }
        }
        self.release_pending();
        let stats = self.log.stats;
        let long_chain = self.log.chain.len() > self.max_extensions + 1;
        let obsolete =
            stats.obsolete >= COMPACT_OBSOLETE && stats.total <= COMPACT_RATIO * stats.obsolete;
        if long_chain || obsolete {
            // A failed compaction leaves the committed log in place.
            let _ = self.compact();
        }
        Ok(())
    }

    /// Makes `ino`'s data and all metadata durable (data → log → device
    /// flush). With the direct [`Self::write`] path data is already on the
    /// device; the kernel writes back the file's pagecache pages first.
    pub fn fsync(&mut self, ino: Ino) -> Result<(), FsError> {
        self.kind(ino.0).ok_or(FsError::NoEnt)?;
        self.sync_metadata()
    }

    /// Makes everything durable.
    pub fn sync(&mut self) -> Result<(), FsError> {
        self.sync_metadata()
    }

    /// Rewrites the whole tree into a fresh log chain and commits it by
    /// rewriting the header sector; the old chain is freed afterwards.
    pub fn compact(&mut self) -> Result<(), FsError> {
        self.stage_times();
        let first = match self.next_new.take() {
            Some(s) => s,
            None => {
                let start = self
                    .space
                    .allocate(EXTENSION_SECTORS)
                    .ok_or(FsError::NoSpace)?;
                Span {
                    start,
                    sectors: EXTENSION_SECTORS,
                }
            }
        };
        let mut fresh = LogWriter::fresh(self.log.volume.clone(), first, END_OF_SEGMENT);
        let mut enc = Encoder::new(&self.store, &mut fresh.dict);
        enc.value(Some(&Value::Tuple(self.root)));
        let out = enc.out;
        fresh.stage(out);
        let space = &mut self.space;
        let mut allocate = || -> Option<Span> {
            space.allocate(EXTENSION_SECTORS).map(|start| Span {
                start,
                sectors: EXTENSION_SECTORS,
            })
        };
        if let Err((e, spans)) = fresh.flush(&self.dev, &mut allocate) {
            for s in spans {
                self.space.release(s.start, s.sectors);
            }
            self.next_new = Some(first);
            return Err(e);
        }
        let old = core::mem::replace(&mut self.log, fresh);
        for span in &old.chain[1..] {
            self.space.release(span.start, span.sectors);
        }
        self.release_pending();
        if self.next_new.is_none() {
            self.next_new = self.space.allocate(LOG_RESERVE).map(|start| Span {
                start,
                sectors: LOG_RESERVE,
            });
        }
        self.free_unreachable();
        Ok(())
    }

    /// Releases the memory of values the new chain no longer holds (kept:
    /// unlinked files still open).
    fn free_unreachable(&mut self) {
        let mut keep: BTreeSet<NodeId> = BTreeSet::new();
        for &o in &self.orphans {
            keep.insert(o);
            if let Some(f) = self.files.get(&o) {
                keep.extend(f.extents_tuple);
                keep.extend(f.extents.values().map(|x| x.tuple));
            }
        }
        for id in 0..self.store.node_count() as NodeId {
            if !self.log.dict.contains_node(id) && !keep.contains(&id) {
                self.store.recycle(id);
            }
        }
    }
}
