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
/// copy. Returns the number of bytes NOT copied (0 on success): the first
/// `len - returned` bytes of `dst` hold their copy.
///
/// The bulk moves as 8-byte words (`rep movsq`), the tail of up to 7 bytes
/// as bytes: under TCG each iteration of a `rep` string instruction is
/// emulated on its own, so `rep movsb` alone made a 64 KiB copy to user
/// memory take three times as long as the kernel's `memcpy`. A fault in
/// the word loop leaves `rcx` = words not moved (the faulting word stored
/// nothing); the copy then goes on bytewise from there, so that it stops
/// exactly at the first unreachable byte, not up to 7 bytes before it.
///
/// # Safety
/// The range of `dst` that is mapped must be memory the caller may write
/// (user memory the kernel validated, or a kernel buffer), and `src` memory
/// it may read; unmapped parts only make the copy stop early.
pub unsafe fn copy_fallible(dst: *mut u8, src: *const u8, len: usize) -> usize {
    let remaining: usize;
    // SAFETY: delegated to the caller for the memory; a fault inside
    // `rep movsq` resumes at label 5 (rcx = words left, rdx = tail), which
    // retries the rest bytewise; a fault inside `rep movsb` resumes at
    // label 3 with rcx = bytes left.
    unsafe {
        asm!(
            "mov rdx, rcx",
            "shr rcx, 3",
            "and edx, 7",
            "2:",
            "rep movsq",
            "mov rcx, rdx",
            "4:",
            "rep movsb",
            "3:",
            "jmp 6f",
            "5:",
            "lea rcx, [rdx + rcx * 8]",
            "jmp 4b",
            "6:",
            ".pushsection .cairn_fixup, \"a\"",
            ".quad 2b, 5b",
            ".quad 4b, 3b",
            ".popsection",
            inout("rcx") len => remaining,
            inout("rdi") dst => _,
            inout("rsi") src => _,
            out("rdx") _,
            options(nostack),
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
