//! Host tools for TFS images: `mkfs`, `dump` and `fsck`, sharing
//! `cairn-tfs` with the kernel. The binaries are thin clap front ends over
//! the modules here, which tests and benchmarks call directly.
//!
//! Images made from a host program (`mkfs --program`, `cargo xtask run
//! --elf`): [`program`] describes the image, [`deps`] finds the libraries
//! the way glibc's loader does, [`hosttree`] copies host paths with their
//! symbolic links, [`ldcache`] reads and writes `/etc/ld.so.cache`.

pub mod deps;
pub mod dump;
pub mod filedev;
pub mod hosttree;
pub mod ldcache;
pub mod mkfs;
pub mod program;
pub mod progress;
