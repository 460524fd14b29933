//! Memory management: the kernel's page tables, the direct map of physical
//! memory, device-memory mappings, and the boot-time frame allocator that
//! feeds them until the heaps take over.
//!
//! | module | owns |
//! |---|---|
//! | [`early`] | the bump frame allocator used while building the page tables |
//! | [`kernel_map`] | the kernel page tables, the direct map, `map_mmio`, `map_page` |
//! | [`user_map`] | user pages' entries, changed under the caller's lock on the page (table creation only under `mm.page_tables`) |
//!
//! Lock: `mm.page_tables` (IrqSpinLock) around every change to the kernel
//! page tables but a user page's entry (`user_map`); it is taken with interrupts off and never held while
//! waiting for other CPUs (TLB shoot-downs happen after release).

pub mod early;
pub mod kernel_map;
pub mod user_map;

pub use kernel_map::{map_mmio, phys_to_virt, virt_to_phys};

use cairn_pc::entry::KERNEL_BASE;

/// Linker-script symbols bounding the kernel image (virtual addresses).
mod symbols {
    unsafe extern "C" {
        pub static __kernel_phys_start: u8;
        pub static __text_start: u8;
        pub static __text_end: u8;
        pub static __rodata_start: u8;
        pub static __rodata_end: u8;
        pub static __data_start: u8;
        pub static __kernel_end: u8;
    }
}

/// Virtual address ranges of the image's parts: (text, rodata, data+bss).
pub fn image_sections() -> [(u64, u64); 3] {
    use symbols::*;
    [
        (&raw const __text_start as u64, &raw const __text_end as u64),
        (
            &raw const __rodata_start as u64,
            &raw const __rodata_end as u64,
        ),
        (
            &raw const __data_start as u64,
            &raw const __kernel_end as u64,
        ),
    ]
}

/// Physical range the kernel image occupies (boot code through bss).
pub fn image_phys_range() -> (u64, u64) {
    use symbols::*;
    (
        &raw const __kernel_phys_start as u64,
        &raw const __kernel_end as u64 - KERNEL_BASE,
    )
}
