//! Not built out yet.
#![no_std]
