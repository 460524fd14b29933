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
/// The bulk moves in 64-byte blocks of plain 8-byte loads and stores, the
/// rest as 8-byte words (`rep movsq`) and the last up to 7 bytes as bytes:
/// under TCG each iteration of a `rep` string instruction is emulated on
/// its own, while plain moves run as translated code, so the block loop
/// copies about twice as fast as `rep movsq` (which was itself three times
/// `rep movsb`). The block loop advances its pointers only after a whole
/// block: a fault inside it resumes with the pointers at the block's start
/// and the word and byte path redoes that block, so the copy still stops
/// exactly at the first unreachable byte. A fault in the word loop leaves
/// `rcx` = words not moved (the faulting word stored nothing); the copy
/// then goes on bytewise from there.
///
/// # Safety
/// The range of `dst` that is mapped must be memory the caller may write
/// (user memory the kernel validated, or a kernel buffer), and `src` memory
/// it may read; unmapped parts only make the copy stop early.
pub unsafe fn copy_fallible(dst: *mut u8, src: *const u8, len: usize) -> usize {
    let remaining: usize;
    // SAFETY: delegated to the caller for the memory; a fault on any load
    // or store of the block loop (labels 30-45) resumes at label 7 with
    // rcx/rsi/rdi at the block's start; a fault inside `rep movsq` resumes
    // at label 5 (rcx = words left, rdx = tail), which retries the rest
    // bytewise; a fault inside `rep movsb` resumes at label 3 with rcx =
    // bytes left.
    unsafe {
        asm!(
            "cmp rcx, 64",
            "jb 7f",
            "8:",
            "30: mov r8, [rsi]",
            "31: mov r9, [rsi + 8]",
            "32: mov r10, [rsi + 16]",
            "33: mov r11, [rsi + 24]",
            "34: mov [rdi], r8",
            "35: mov [rdi + 8], r9",
            "36: mov [rdi + 16], r10",
            "37: mov [rdi + 24], r11",
            "38: mov r8, [rsi + 32]",
            "39: mov r9, [rsi + 40]",
            "40: mov r10, [rsi + 48]",
            "41: mov r11, [rsi + 56]",
            "42: mov [rdi + 32], r8",
            "43: mov [rdi + 40], r9",
            "44: mov [rdi + 48], r10",
            "45: mov [rdi + 56], r11",
            "add rsi, 64",
            "add rdi, 64",
            "sub rcx, 64",
            "cmp rcx, 64",
            "jae 8b",
            "7:",
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
            ".quad 30b, 7b",
            ".quad 31b, 7b",
            ".quad 32b, 7b",
            ".quad 33b, 7b",
            ".quad 34b, 7b",
            ".quad 35b, 7b",
            ".quad 36b, 7b",
            ".quad 37b, 7b",
            ".quad 38b, 7b",
            ".quad 39b, 7b",
            ".quad 40b, 7b",
            ".quad 41b, 7b",
            ".quad 42b, 7b",
            ".quad 43b, 7b",
            ".quad 44b, 7b",
            ".quad 45b, 7b",
            ".quad 2b, 5b",
            ".quad 4b, 3b",
            ".popsection",
            inout("rcx") len => remaining,
            inout("rdi") dst => _,
            inout("rsi") src => _,
            out("rdx") _,
            out("r8") _,
            out("r9") _,
            out("r10") _,
            out("r11") _,
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
