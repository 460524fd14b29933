//! The Linux system-call layer: ELF loading, threads, file descriptors,
//! vmaps and page faults for the one program a cairn image runs.
//!
//! Not built out yet (issue "Run workload images").
#![no_std]
