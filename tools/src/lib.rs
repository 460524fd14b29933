//! Host tools for TFS images: `mkfs`, `dump` and `fsck`, sharing
//! `cairn-tfs` with the kernel. The binaries are thin clap front ends over
//! the modules here, which tests and benchmarks call directly.

pub mod deps;
pub mod dump;
pub mod filedev;
pub mod hosttree;
pub mod ldcache;
pub mod mkfs;
pub mod program;
pub mod progress;
