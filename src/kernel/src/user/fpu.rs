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

/// Enables SSE on this CPU: CR0.MP set, EM and TS clear; CR4.OSFXSR and
/// OSXMMEXCPT set. (XSAVE/AVX stay off: user programs see no OSXSAVE and
/// use SSE only.)
pub fn init_cpu() {
    use cairn_pc::cpu::{read_cr0, read_cr4, write_cr0, write_cr4};
    // SAFETY: these bits only change how x87/SSE instructions behave; the
    // kernel does not use them.
    unsafe {
        write_cr0((read_cr0() | (1 << 1)) & !((1 << 2) | (1 << 3)));
        write_cr4(read_cr4() | (1 << 9) | (1 << 10));
    }
}
