//! Starting application processors: the INIT-SIPI-SIPI sequence through
//! the real-mode trampoline of [`crate::entry`].
//!
//! The bootstrap CPU starts APs one at a time (they share the trampoline's
//! mailbox): it copies the trampoline to physical 0x8000, writes the
//! mailbox, sends INIT, then start-up IPIs until the AP reports in through
//! the `alive` check the caller supplies. Boot only, bootstrap CPU only.

use crate::apic;
use crate::entry::{TRAMPOLINE_PHYS, ap_trampoline, boot_pml4_phys, mailbox};

/// Why an AP did not start.
#[derive(Copy, Clone, Debug)]
pub enum StartError {
    /// It did not report in after two start-up IPIs and the timeout.
    Timeout { apic_id: u32 },
}

/// Copies the trampoline to its page; `virt(p)` maps physical memory.
pub fn install_trampoline(virt: &impl Fn(u64) -> u64) {
    let code = ap_trampoline();
    let dst = virt(TRAMPOLINE_PHYS) as *mut u8;
    // SAFETY: physical page 0x8000 is reserved for the trampoline by the
    // kernel's memory setup (never handed to an allocator) and is mapped at
    // `virt`; the code is shorter than the mailbox offset (checked by
    // `ap_trampoline`).
    unsafe { core::ptr::copy_nonoverlapping(code.as_ptr(), dst, code.len()) };
}

/// Sends INIT to `apic_id` (the AP then waits for a start-up IPI).
pub fn send_init(apic_id: u32) {
    apic::send_init(apic_id);
}

/// What an AP starts with.
pub struct ApStart {
    pub apic_id: u32,
    /// Called with `arg` on the new stack.
    pub entry: extern "C" fn(u64) -> !,
    pub arg: u64,
    pub stack_top: u64,
    /// The page tables the AP switches to before touching its stack.
    pub kernel_cr3: u64,
}

/// Starts an AP, already INIT'ed, as `ap` says. `delay_us` busy-waits;
/// `alive` says whether the AP has reported in.
pub fn start(
    ap: &ApStart,
    virt: &impl Fn(u64) -> u64,
    delay_us: &impl Fn(u64),
    alive: &impl Fn() -> bool,
) -> Result<(), StartError> {
    let ApStart {
        apic_id,
        entry,
        arg,
        stack_top,
        kernel_cr3,
    } = *ap;
    let page = virt(TRAMPOLINE_PHYS);
    let put = |off: usize, v: u64| {
        // SAFETY: the mailbox words are in the reserved trampoline page,
        // which no AP reads until the start-up IPI below.
        unsafe { ((page + off as u64) as *mut u64).write_volatile(v) }
    };
    put(mailbox::STACK, stack_top);
    put(mailbox::ENTRY, entry as *const () as u64);
    put(mailbox::ARG, arg);
    put(mailbox::CR3, boot_pml4_phys());
    put(mailbox::KERNEL_CR3, kernel_cr3);
    let vector = (TRAMPOLINE_PHYS >> 12) as u8;
    for _ in 0..2 {
        apic::send_startup(apic_id, vector);
        for _ in 0..1000 {
            if alive() {
                return Ok(());
            }
            delay_us(100);
        }
    }
    Err(StartError::Timeout { apic_id })
}
