//! The exception fix-up table: instructions that may fault by design (user
//! copies, probes) register `(faulting address, resume address)` pairs in
//! section `.cairn_fixup`; the kernel's trap handler, on an exception it
//! cannot resolve, resumes at the registered address instead of panicking.
//!
//! [`copy_fallible`] is the user-copy primitive; the `probe_*` functions
//! raise one exception each on purpose, for the kernel's exception tests.
//! Any context; no locks.

use core::arch::asm;

unsafe extern "C" {
    static __cairn_fixup_start: [u64; 0];
    static __cairn_fixup_end: [u64; 0];
}

/// The resume address registered for an instruction at `rip`.
pub fn lookup(rip: u64) -> Option<u64> {
    let start = &raw const __cairn_fixup_start as *const u64;
    let end = &raw const __cairn_fixup_end as *const u64;
    let words = (end as usize - start as usize) / 8;
    // SAFETY: the linker script delimits `.cairn_fixup` with these symbols;
    // the section holds pairs of 8-byte addresses and is never written.
    let table = unsafe { core::slice::from_raw_parts(start, words) };
    table
        .chunks_exact(2)
        .find(|pair| pair[0] == rip)
        .map(|pair| pair[1])
}

/// Copies `len` bytes from `src` to `dst`; a fault on either side stops the
/// copy. Returns the number of bytes NOT copied (0 on success).
///
/// # Safety
/// The range of `dst` that is mapped must be memory the caller may write
/// (user memory the kernel validated, or a kernel buffer), and `src` memory
/// it may read; unmapped parts only make the copy stop early.
pub unsafe fn copy_fallible(dst: *mut u8, src: *const u8, len: usize) -> usize {
    let remaining: usize;
    // SAFETY: delegated to the caller for the memory; a fault inside
    // `rep movsb` resumes at label 3 with rcx = bytes left.
    unsafe {
        asm!(
            "2:",
            "rep movsb",
            "3:",
            ".pushsection .cairn_fixup, \"a\"",
            ".quad 2b, 3b",
            ".popsection",
            inout("rcx") len => remaining,
            inout("rdi") dst => _,
            inout("rsi") src => _,
            options(nostack, preserves_flags),
        );
    }
    remaining
}

/// Reads a byte at `addr`, or `None` if the read faulted.
pub fn probe_read(addr: u64) -> Option<u8> {
    let v: u8;
    let ok: u64;
    // SAFETY: a read has no effect on memory; a fault resumes at label 3.
    unsafe {
        asm!(
            "mov {ok}, 1",
            "2:",
            "mov {v}, byte ptr [{addr}]",
            "jmp 4f",
            "3:",
            "xor {ok:e}, {ok:e}",
            "xor {v}, {v}",
            "4:",
            ".pushsection .cairn_fixup, \"a\"",
            ".quad 2b, 3b",
            ".popsection",
            addr = in(reg) addr,
            v = out(reg_byte) v,
            ok = out(reg) ok,
            options(nostack, readonly),
        );
    }
    (ok == 1).then_some(v)
}

/// Executes `ud2`; returns whether it faulted (it always should).
pub fn probe_invalid_opcode() -> bool {
    let ok: u64;
    // SAFETY: `ud2` raises #UD, which resumes at label 3.
    unsafe {
        asm!(
            "mov {ok}, 1",
            "2:",
            "ud2",
            "jmp 4f",
            "3:",
            "xor {ok:e}, {ok:e}",
            "4:",
            ".pushsection .cairn_fixup, \"a\"",
            ".quad 2b, 3b",
            ".popsection",
            ok = out(reg) ok,
            options(nostack, nomem),
        );
    }
    ok == 0
}

/// Divides by zero; returns whether it faulted.
pub fn probe_divide_error() -> bool {
    let ok: u64;
    // SAFETY: `div` by zero raises #DE, which resumes at label 3.
    unsafe {
        asm!(
            "mov {ok}, 1",
            "xor edx, edx",
            "mov eax, 1",
            "xor ecx, ecx",
            "2:",
            "div ecx",
            "jmp 4f",
            "3:",
            "xor {ok:e}, {ok:e}",
            "4:",
            ".pushsection .cairn_fixup, \"a\"",
            ".quad 2b, 3b",
            ".popsection",
            ok = out(reg) ok,
            out("eax") _, out("ecx") _, out("edx") _,
            options(nostack, nomem),
        );
    }
    ok == 0
}

/// Executes `int3`; the breakpoint trap reports the address after the
/// instruction, which is what the table registers. Returns whether it
/// trapped.
pub fn probe_breakpoint() -> bool {
    let ok: u64;
    // SAFETY: `int3` traps with RIP after the instruction (label 2 below
    // marks that address), resuming at label 3.
    unsafe {
        asm!(
            "mov {ok}, 1",
            "int3",
            "2:",
            "jmp 4f",
            "3:",
            "xor {ok:e}, {ok:e}",
            "4:",
            ".pushsection .cairn_fixup, \"a\"",
            ".quad 2b, 3b",
            ".popsection",
            ok = out(reg) ok,
            options(nostack, nomem),
        );
    }
    ok == 0
}

/// Reads through a non-canonical address; returns whether it faulted (#GP).
pub fn probe_general_protection() -> bool {
    probe_read(0x8000_0000_0000_0000).is_none()
}
