//! The runtime-test catalogue: workload programs (C, built with the host's
//! `gcc -static`) and their Nanos-syntax manifests, each booted as its own
//! image and judged by its exit status.
//!
//! Not built out yet (issue "Run workload images").
