//! cairn's pagecache: the file-data cache between the filesystem, the syscall
//! layer and the block layer.
//!
//! Not built out yet (issue "Pagecache"). It will own per-file page trees, the
//! per-volume dirty lists and the global LRU, with fills and writeback
//! completing in bh context and syscall completions handed to the runqueue.
#![no_std]
