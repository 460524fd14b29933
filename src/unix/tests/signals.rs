//! Signal frames and pending queues: layouts against the host C library
//! (x86-64 Linux `ucontext_t`, `mcontext_t` register slots, `siginfo_t`),
//! frame placement and alignment, the `rt_sigreturn` round trip and its
//! checks, and the delivery order of pending signals.

use cairn_unix::Errno;
use cairn_unix::sigframe::*;
use cairn_unix::signal::{AltStack, SS_DISABLE, SS_ONSTACK, SigSet};
use cairn_unix::sigpending::PendingSignals;
use std::mem::offset_of;

const USER_END: u64 = 0x0000_8000_0000_0000;

fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().unwrap())
}

fn sample_regs() -> UserContext {
    UserContext {
        r8: 8,
        r9: 9,
        r10: 10,
        r11: 11,
        r12: 12,
        r13: 13,
        r14: 14,
        r15: 15,
        rdi: 0xd1,
        rsi: 0x51,
        rbp: 0xb9,
        rbx: 0xb8,
        rdx: 0xd8,
        rax: 0xa8,
        rcx: 0xc8,
        rsp: 0x7fff_ffff_e008,
        rip: 0x40_1234,
        rflags: 0x246 | (1 << 12) | (1 << 14), // IOPL 1 and NT: must not survive
    }
}

#[test]
fn siginfo_layout_matches_libc() {
    assert_eq!(std::mem::size_of::<libc::siginfo_t>(), SIGINFO_SIZE);
    let b = SigInfo::fault(11, code::SEGV_ACCERR, 0xdead_b000).encode();
    assert_eq!(
        i32::from_le_bytes(
            b[offset_of!(libc::siginfo_t, si_signo)..][..4]
                .try_into()
                .unwrap()
        ),
        11
    );
    assert_eq!(
        i32::from_le_bytes(
            b[offset_of!(libc::siginfo_t, si_code)..][..4]
                .try_into()
                .unwrap()
        ),
        code::SEGV_ACCERR
    );
    // si_addr is the first member of the union, 8-byte aligned after the
    // three ints: what glibc's si_addr() reads.
    assert_eq!(u64_at(&b, 16), 0xdead_b000);
    let t = SigInfo {
        signo: 34,
        errno: 0,
        code: code::SI_TIMER,
        fields: SigFields::Timer {
            tid: 7,
            overrun: 2,
            value: 0x1234,
        },
    }
    .encode();
    assert_eq!(u64_at(&t, 24), 0x1234, "si_value of a timer signal");
}

#[test]
fn ucontext_layout_matches_libc() {
    assert_eq!(offset_of!(libc::ucontext_t, uc_stack), 16);
    assert_eq!(offset_of!(libc::ucontext_t, uc_mcontext), 40);
    assert_eq!(offset_of!(libc::ucontext_t, uc_sigmask), UCONTEXT_SIZE - 8);
    assert_eq!(offset_of!(libc::mcontext_t, fpregs), 23 * 8);
    let regs = sample_regs();
    let alt = AltStack::default();
    let plan = plan_frame(
        &regs,
        &SigInfo::fault(11, 1, 0x1000),
        0x40_0000,
        0x40_0100,
        SigSet::from_bits(0x5),
        &alt,
        false,
    )
    .unwrap();
    let uc = &plan.bytes[UC_OFFSET as usize..];
    let greg = |r: i32| u64_at(uc, 40 + 8 * r as usize);
    assert_eq!(greg(libc::REG_R8), 8);
    assert_eq!(greg(libc::REG_R15), 15);
    assert_eq!(greg(libc::REG_RDI), 0xd1);
    assert_eq!(greg(libc::REG_RSI), 0x51);
    assert_eq!(greg(libc::REG_RBP), 0xb9);
    assert_eq!(greg(libc::REG_RBX), 0xb8);
    assert_eq!(greg(libc::REG_RDX), 0xd8);
    assert_eq!(greg(libc::REG_RAX), 0xa8);
    assert_eq!(greg(libc::REG_RCX), 0xc8);
    assert_eq!(greg(libc::REG_RSP), regs.rsp);
    assert_eq!(greg(libc::REG_RIP), regs.rip);
    assert_eq!(greg(libc::REG_EFL), regs.rflags);
    assert_eq!(greg(libc::REG_CR2), 0x1000);
    assert_eq!(
        u64_at(uc, offset_of!(libc::mcontext_t, fpregs) + 40),
        plan.fpstate
    );
    assert_eq!(u64_at(uc, UCONTEXT_SIZE - 8), 0x5, "uc_sigmask");
    assert_eq!(
        u64_at(&plan.bytes, 0),
        0x40_0100,
        "the return address is sa_restorer"
    );
    let info = &plan.bytes[INFO_OFFSET as usize..];
    assert_eq!(i32::from_le_bytes(info[0..4].try_into().unwrap()), 11);
}

#[test]
fn frame_is_below_the_red_zone_and_aligned_like_a_call() {
    let regs = sample_regs();
    for rsp in [0x7fff_ffff_e008u64, 0x7fff_ffff_e000, 0x7fff_ffff_e013] {
        let r = UserContext { rsp, ..regs };
        let p = plan_frame(
            &r,
            &SigInfo::kernel(14),
            0x40_0000,
            0x40_0100,
            SigSet::EMPTY,
            &AltStack::default(),
            true,
        )
        .unwrap();
        assert_eq!(
            (p.frame + 8) % 16,
            0,
            "rsp at handler entry as after a call"
        );
        assert_eq!(p.fpstate % 64, 0);
        assert!(p.frame + FRAME_SIZE as u64 <= p.fpstate);
        assert!(p.fpstate + FPSTATE_SIZE <= rsp - RED_ZONE);
        assert!(!p.on_altstack);
        assert_eq!(p.handler.rip, 0x40_0000);
        assert_eq!(p.handler.rsp, p.frame);
        assert_eq!(p.handler.rdi, 14);
        assert_eq!(p.handler.rsi, p.frame + INFO_OFFSET);
        assert_eq!(p.handler.rdx, p.frame + UC_OFFSET);
        assert_eq!(p.handler.rflags & (1 << 9), 1 << 9, "IF set");
        assert_eq!(
            p.handler.rflags & ((3 << 12) | (1 << 14) | (1 << 10)),
            0,
            "no IOPL, NT, DF"
        );
    }
}

#[test]
fn altstack_is_used_once_and_then_continued() {
    let alt = AltStack {
        sp: 0x1000_0000,
        size: 0x4000,
        flags: 0,
    };
    let p = plan_frame(
        &sample_regs(),
        &SigInfo::kernel(11),
        1,
        2,
        SigSet::EMPTY,
        &alt,
        true,
    )
    .unwrap();
    assert!(p.on_altstack);
    assert!(p.frame >= alt.sp && p.fpstate + FPSTATE_SIZE <= alt.sp + alt.size);
    // A second signal while on the alternate stack nests below the first.
    let nested = UserContext {
        rsp: p.frame,
        ..sample_regs()
    };
    let q = plan_frame(
        &nested,
        &SigInfo::kernel(10),
        1,
        2,
        SigSet::EMPTY,
        &alt,
        true,
    )
    .unwrap();
    assert!(q.on_altstack && q.fpstate + FPSTATE_SIZE <= p.frame - RED_ZONE);
    assert_eq!(
        u64_at(&q.bytes, UC_OFFSET as usize + 24) as u32 as i32 & SS_ONSTACK,
        SS_ONSTACK,
        "uc_stack says the interrupted code was on it"
    );
    // Disabled, or not asked for: the interrupted stack.
    let off = AltStack {
        flags: SS_DISABLE,
        ..alt
    };
    assert!(
        !plan_frame(
            &sample_regs(),
            &SigInfo::kernel(11),
            1,
            2,
            SigSet::EMPTY,
            &off,
            true
        )
        .unwrap()
        .on_altstack
    );
    assert!(
        !plan_frame(
            &sample_regs(),
            &SigInfo::kernel(11),
            1,
            2,
            SigSet::EMPTY,
            &alt,
            false
        )
        .unwrap()
        .on_altstack
    );
}

#[test]
fn a_frame_that_would_wrap_is_refused() {
    let r = UserContext {
        rsp: 64,
        ..sample_regs()
    };
    assert_eq!(
        plan_frame(
            &r,
            &SigInfo::kernel(11),
            1,
            2,
            SigSet::EMPTY,
            &AltStack::default(),
            false
        )
        .unwrap_err(),
        Errno::EFAULT
    );
}

#[test]
fn sigreturn_restores_what_the_frame_saved_and_sanitises_it() {
    let regs = sample_regs();
    let p = plan_frame(
        &regs,
        &SigInfo::kernel(10),
        1,
        2,
        SigSet::from_bits(0x300),
        &AltStack::default(),
        false,
    )
    .unwrap();
    let uc = &p.bytes[UC_OFFSET as usize..UC_OFFSET as usize + UCONTEXT_SIZE];
    let r = decode_ucontext(uc, USER_END).unwrap();
    assert_eq!(r.mask, SigSet::from_bits(0x300));
    assert_eq!(r.fpstate, p.fpstate);
    assert_eq!(r.stack.flags, SS_DISABLE);
    let want = UserContext {
        rflags: (regs.rflags & USER_RFLAGS_MASK) | USER_RFLAGS_FIXED,
        ..regs
    };
    assert_eq!(r.regs, want);
    assert_eq!(
        r.regs.rflags & ((3 << 12) | (1 << 14)),
        0,
        "IOPL/NT from the frame are dropped"
    );
    // A handler that rewrites RIP into the kernel half is refused.
    let mut evil = uc.to_vec();
    evil[40 + 16 * 8..40 + 17 * 8].copy_from_slice(&0xffff_8000_0000_1000u64.to_le_bytes());
    assert_eq!(decode_ucontext(&evil, USER_END).unwrap_err(), Errno::EFAULT);
    assert_eq!(
        decode_ucontext(&uc[..100], USER_END).unwrap_err(),
        Errno::EFAULT
    );
}

#[test]
fn pending_order_merging_and_queueing() {
    let mut q = PendingSignals::new();
    q.push(SigInfo::kernel(14)).unwrap();
    q.push(SigInfo::kernel(14)).unwrap(); // merged
    q.push(SigInfo::user(10, 0)).unwrap();
    q.push(SigInfo::fault(11, 1, 0x10)).unwrap();
    for v in [1u64, 2, 3] {
        q.push(SigInfo {
            signo: 40,
            errno: 0,
            code: code::SI_QUEUE,
            fields: SigFields::Sender {
                pid: 1,
                uid: 0,
                value: v,
            },
        })
        .unwrap();
    }
    // Synchronous first, then lowest number; SIGUSR1 (10) blocked.
    let blocked = SigSet::EMPTY.with(10);
    assert_eq!(q.take(blocked).unwrap().signo, 11);
    assert_eq!(q.take(blocked).unwrap().signo, 14);
    assert!(
        !q.set().contains(14),
        "a merged standard signal is delivered once"
    );
    let values: Vec<u64> = (0..3)
        .map(|_| match q.take(blocked).unwrap().fields {
            SigFields::Sender { value, .. } => value,
            f => panic!("{f:?}"),
        })
        .collect();
    assert_eq!(values, [1, 2, 3], "real-time instances queue in order");
    assert_eq!(q.take(blocked), None, "only the blocked one is left");
    assert!(q.set().contains(10));
    assert_eq!(q.take(SigSet::EMPTY).unwrap().signo, 10);
    q.push(SigInfo::kernel(12)).unwrap();
    q.discard(SigSet::EMPTY.with(12));
    assert_eq!(q.set(), SigSet::EMPTY);
    assert_eq!(q.push(SigInfo::kernel(0)).unwrap_err(), Errno::EINVAL);
}
