//! Block device drivers (virtio-blk, ata-pci, pvscsi, xen blkfront) behind one
//! asynchronous request interface whose completions run in bh context.
//!
//! Not built out yet (issue "Block layer").
#![no_std]
