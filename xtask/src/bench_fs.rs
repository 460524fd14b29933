//! `cargo xtask bench fs` (filled in by the next commit).
