//! TFS, the log-structured filesystem of Nanos, in its version 5 on-disk
//! format (version 4 logs are read too), shared by the kernel and the host
//! tools. `#![no_std]` + `alloc`, no `unsafe`; every module runs in
//! kernel-lock/thread context only and takes no locks itself.
//!
//! # Layers
//! - [`varint`], [`codec`], [`dictionary`], [`store`], [`symbol`]: the value
//!   encoding and the shared dictionary numbering (Nanos `tuple.c`).
//! - [`frame`], [`replay`], [`log_writer`]: the log — header sector,
//!   extensions, frames, replay into a value graph, crash-safe commits.
//! - [`space`]: free space rebuilt at mount, first-fit allocation.
//! - [`nodemap`]: the mount index's tables keyed by node id.
//! - [`fs`]: [`Filesystem`] — mount, mkfs ([`Filesystem::format`]),
//!   namespace and data operations, sync and compaction.
//! - [`device`], [`mbr`]: the blocking [`BlockDevice`] trait, the
//!   [`Partition`] adapter and [`open_root_volume`] (bare TFS or MBR).
//! - [`manifest`], [`workload`], [`check`]: the Nanos manifest syntax, the
//!   root tuple's workload, and the offline consistency check behind fsck.
//!
//! # Contract with the kernel's pagecache
//! File data goes through the pagecache; only metadata goes through the log.
//! - **Read fill**: [`Filesystem::map`] gives, for a byte range, sector
//!   ranges that are on disk ([`MappingKind::Disk`], a sector of the device
//!   the filesystem was mounted on), or read as zeros
//!   ([`MappingKind::Hole`], [`MappingKind::Uninited`]).
//! - **write(2)**: call [`Filesystem::allocate`] for the written range
//!   (storage is reserved now, so a full volume fails the write with
//!   [`FsError::NoSpace`], never the writeback) and
//!   [`Filesystem::set_length`] when the file grows; then dirty the pages.
//! - **Writeback**: write the dirty pages to the sectors [`Filesystem::map`]
//!   gives (`Uninited` ranges included: they carry the sector reserved for
//!   them), and after the I/O completed call
//!   [`Filesystem::mark_written`] for the whole sectors written, which
//!   turns those extents from `uninited` into data.
//! - **fsync / sync**: write back the file's (or all) dirty pages first,
//!   then [`Filesystem::sync_metadata`], which commits the log and flushes
//!   the device: data → log → device flush. A commit writes new log sectors,
//!   flushes, then makes them reachable with one write in which a single
//!   byte changes (END_OF_LOG becomes END_OF_SEGMENT), and flushes again;
//!   compaction commits by rewriting the header sector.
//! - **Truncate**: [`Filesystem::truncate`] frees extents past the end and
//!   zeroes the on-disk tail of the last partial sector; the pagecache must
//!   drop or zero its cached bytes past the new length.
//! - **Open files**: [`Filesystem::hold`] / [`Filesystem::release`] keep an
//!   unlinked file's data until its last user goes.
//! - Space freed by uncommitted changes is reused only after their commit.
//!
//! Handles ([`Ino`]) are stable for the life of a mount; hard links share
//! one. Timestamps are Nanos's 32.32 fixed-point seconds ([`Timestamp`]).
#![no_std]

extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod check;
pub mod codec;
pub mod device;
pub mod dictionary;
pub mod error;
pub mod frame;
pub mod fs;
#[doc(hidden)]
pub mod fuzz_targets;
pub mod log_writer;
pub mod manifest;
pub mod mbr;
pub mod nodemap;
pub mod replay;
pub mod space;
pub mod store;
pub mod symbol;
pub mod uuid;
pub mod varint;
pub mod workload;

pub use device::{BlockDevice, MemDevice, Partition, SECTOR_SIZE};
pub use error::{DecodeError, FsError, IoError, MountError};
pub use fs::{
    DirEntry, FileType, Filesystem, FormatOptions, Ino, Mapping, MappingKind, Stat, StatFs,
    Timestamp,
};
pub use mbr::open_root_volume;
pub use workload::Workload;
