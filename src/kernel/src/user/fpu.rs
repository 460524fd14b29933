//! x87/SSE register state of user threads (FXSAVE format, 512 bytes).
//!
//! The kernel itself is built soft-float and never touches these registers,
//! so a user thread's state only has to be saved when its CPU switches away
//! from it and restored when a CPU switches to it (eager, at thread switch).
//! Each CPU enables SSE at start-up. Thread context; no locks.

use core::arch::asm;

/// One thread's saved x87/SSE state.
#[repr(C, align(16))]
#[derive(Clone)]
pub struct FpuState([u8; 512]);

impl FpuState {
    /// The state of a fresh thread: `fninit`, MXCSR 0x1f80 (all exceptions
    /// masked, round to nearest).
    pub fn initial() -> FpuState {
        let mut s = FpuState([0; 512]);
        // FCW 0x037f, MXCSR 0x1f80, MXCSR mask 0xffff: what `fninit` and the
        // reset value of MXCSR give.
        s.0[0..2].copy_from_slice(&0x037fu16.to_le_bytes());
        s.0[24..28].copy_from_slice(&0x1f80u32.to_le_bytes());
        s.0[28..32].copy_from_slice(&0xffffu32.to_le_bytes());
        s
    }

    /// The FXSAVE image (what a signal frame carries).
    pub fn bytes(&self) -> &[u8; 512] {
        &self.0
    }

    /// A state from an image a program supplied (`rt_sigreturn`): MXCSR's
    /// bits outside what this CPU supports are cleared, so restoring it
    /// cannot fault in the kernel.
    pub fn from_user_image(image: &[u8; 512]) -> FpuState {
        let mut s = FpuState(*image);
        let mxcsr = u32::from_le_bytes([s.0[24], s.0[25], s.0[26], s.0[27]]);
        let allowed = MXCSR_MASK.load(core::sync::atomic::Ordering::Relaxed);
        s.0[24..28].copy_from_slice(&(mxcsr & allowed).to_le_bytes());
        s
    }

    /// Saves this CPU's x87/SSE registers.
    pub fn save(&mut self) {
        // SAFETY: `fxsave64` writes 512 bytes to a 16-byte-aligned area,
        // which `self` is.
        unsafe {
            asm!("fxsave64 [{}]", in(reg) self.0.as_mut_ptr(), options(nostack, preserves_flags))
        };
    }

    /// Loads this CPU's x87/SSE registers.
    pub fn restore(&self) {
        // SAFETY: `fxrstor64` reads a 512-byte, 16-byte-aligned area that
        // holds a valid image (`initial` or a previous `save`; reserved MXCSR
        // bits are zero in both).
        unsafe {
            asm!("fxrstor64 [{}]", in(reg) self.0.as_ptr(), options(nostack, preserves_flags))
        };
    }
}

/// The MXCSR bits this CPU supports (FXSAVE's MXCSR_MASK; 0xffbf when the
/// CPU reports 0, as the SDM says).
static MXCSR_MASK: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(0xffbf);

/// Enables SSE on this CPU: CR0.MP set, EM and TS clear; CR4.OSFXSR and
/// OSXMMEXCPT set. (XSAVE/AVX stay off: user programs see no OSXSAVE and
/// use SSE only.) Records the supported MXCSR bits.
pub fn init_cpu() {
    use cairn_pc::cpu::{read_cr0, read_cr4, write_cr0, write_cr4};
    // SAFETY: these bits only change how x87/SSE instructions behave; the
    // kernel does not use them.
    unsafe {
        write_cr0((read_cr0() | (1 << 1)) & !((1 << 2) | (1 << 3)));
        write_cr4(read_cr4() | (1 << 9) | (1 << 10));
    }
    let mut probe = FpuState([0; 512]);
    probe.save();
    let mask = u32::from_le_bytes([probe.0[28], probe.0[29], probe.0[30], probe.0[31]]);
    if mask != 0 {
        MXCSR_MASK.store(mask, core::sync::atomic::Ordering::Relaxed);
    }
}
