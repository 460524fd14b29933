//! Signal frames: what the kernel writes on the user stack to run a
//! handler, and reads back at `rt_sigreturn`, in the x86-64 Linux layout
//! (`struct rt_sigframe`: return address, `struct ucontext`, `siginfo_t`,
//! then the FXSAVE area `uc_mcontext.fpstate` points at).
//!
//! Owns: the user register set ([`UserContext`]), `siginfo_t`
//! ([`SigInfo`]), the frame's placement (red zone, alternate stack,
//! alignment: [`FramePlan`]) and its bytes, and the decoding and checking of
//! a frame at `rt_sigreturn` ([`decode_frame`]). Not here: copying to and
//! from user memory, the FPU registers themselves, which signal to deliver
//! (the kernel and [`crate::sigpending`]).
//!
//! Contexts: any (pure); the kernel calls it under the kernel lock, then
//! copies the bytes with no spinlock held. Locks: none.

use crate::Errno;
use crate::abi::StackT;
use crate::signal::{AltStack, SS_AUTODISARM, SS_DISABLE, SS_ONSTACK, SigSet};

/// Bytes below the user stack pointer a leaf function may use without
/// moving it (the System V red zone): a frame is placed below them.
pub const RED_ZONE: u64 = 128;
/// Size of the FXSAVE image the frame carries (`struct _fpstate_64`).
pub const FPSTATE_SIZE: u64 = 512;
/// Size of `siginfo_t`.
pub const SIGINFO_SIZE: usize = 128;
/// Size of the kernel's `struct ucontext` (its `uc_sigmask` is 8 bytes).
pub const UCONTEXT_SIZE: usize = 304;
/// Size of `struct rt_sigframe`: return address, ucontext, siginfo.
pub const FRAME_SIZE: usize = 8 + UCONTEXT_SIZE + SIGINFO_SIZE;
/// Offset of the ucontext in the frame.
pub const UC_OFFSET: u64 = 8;
/// Offset of the siginfo in the frame.
pub const INFO_OFFSET: u64 = 8 + UCONTEXT_SIZE as u64;

/// The user-mode CS and SS selectors cairn's GDT gives user code.
pub const USER_CS: u16 = 0x23;
/// See [`USER_CS`].
pub const USER_SS: u16 = 0x1b;

/// RFLAGS bits a program may set through a signal frame (Linux's
/// `FIX_EFLAGS`): AC, OF, DF, TF, SF, ZF, AF, PF, CF, RF.
pub const USER_RFLAGS_MASK: u64 = (1 << 18)
    | (1 << 11)
    | (1 << 10)
    | (1 << 8)
    | (1 << 7)
    | (1 << 6)
    | (1 << 4)
    | (1 << 2)
    | 1
    | (1 << 16);
/// RFLAGS bits always set in user mode: IF and the reserved bit 1.
pub const USER_RFLAGS_FIXED: u64 = (1 << 9) | (1 << 1);

/// The registers of a user thread a signal frame saves and restores.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct UserContext {
    pub r8: u64,
    pub r9: u64,
    pub r10: u64,
    pub r11: u64,
    pub r12: u64,
    pub r13: u64,
    pub r14: u64,
    pub r15: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rbp: u64,
    pub rbx: u64,
    pub rdx: u64,
    pub rax: u64,
    pub rcx: u64,
    pub rsp: u64,
    pub rip: u64,
    pub rflags: u64,
}

/// `si_code` values.
pub mod code {
    /// Sent by `kill`.
    pub const SI_USER: i32 = 0;
    /// Sent by the kernel.
    pub const SI_KERNEL: i32 = 0x80;
    /// Sent by `sigqueue`.
    pub const SI_QUEUE: i32 = -1;
    /// A POSIX timer expired.
    pub const SI_TIMER: i32 = -2;
    /// Sent by `tkill`/`tgkill`.
    pub const SI_TKILL: i32 = -6;
    /// SIGSEGV: address not mapped.
    pub const SEGV_MAPERR: i32 = 1;
    /// SIGSEGV: access not permitted by the mapping.
    pub const SEGV_ACCERR: i32 = 2;
    /// SIGBUS: no backing page (past the end of a mapped file).
    pub const BUS_ADRERR: i32 = 2;
    /// SIGFPE: integer divide by zero.
    pub const FPE_INTDIV: i32 = 1;
    /// SIGFPE: floating-point exception.
    pub const FPE_FLTINV: i32 = 7;
    /// SIGILL: illegal opcode.
    pub const ILL_ILLOPN: i32 = 2;
    /// SIGTRAP: breakpoint.
    pub const TRAP_BRKPT: i32 = 1;
}

/// What a signal carries beyond its number (`siginfo_t`'s union).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SigFields {
    /// Nothing more.
    #[default]
    None,
    /// `kill`/`tgkill`/`sigqueue`: sender and value.
    Sender {
        /// Sending process.
        pid: i32,
        /// Sending user.
        uid: u32,
        /// `si_value` (sigqueue).
        value: u64,
    },
    /// A fault: the address.
    Fault {
        /// `si_addr`.
        addr: u64,
    },
    /// A POSIX timer.
    Timer {
        /// Timer id.
        tid: i32,
        /// Expirations not delivered.
        overrun: i32,
        /// `sigev_value`.
        value: u64,
    },
}

/// One signal as queued and delivered (`siginfo_t`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SigInfo {
    /// Signal number.
    pub signo: u32,
    /// `si_errno`.
    pub errno: i32,
    /// `si_code`.
    pub code: i32,
    /// The rest.
    pub fields: SigFields,
}

impl SigInfo {
    /// A signal sent by `kill` (from this process: pid 1, uid 0).
    pub fn user(signo: u32, code: i32) -> Self {
        SigInfo {
            signo,
            errno: 0,
            code,
            fields: SigFields::Sender {
                pid: 1,
                uid: 0,
                value: 0,
            },
        }
    }

    /// A signal the kernel raises (SIGPIPE, SIGALRM from `alarm`).
    pub fn kernel(signo: u32) -> Self {
        SigInfo {
            signo,
            errno: 0,
            code: code::SI_KERNEL,
            fields: SigFields::None,
        }
    }

    /// A fault at `addr`.
    pub fn fault(signo: u32, code: i32, addr: u64) -> Self {
        SigInfo {
            signo,
            errno: 0,
            code,
            fields: SigFields::Fault { addr },
        }
    }

    /// Its `siginfo_t` bytes.
    pub fn encode(&self) -> [u8; SIGINFO_SIZE] {
        let mut b = [0u8; SIGINFO_SIZE];
        b[0..4].copy_from_slice(&(self.signo as i32).to_le_bytes());
        b[4..8].copy_from_slice(&self.errno.to_le_bytes());
        b[8..12].copy_from_slice(&self.code.to_le_bytes());
        match self.fields {
            SigFields::None => {}
            SigFields::Sender { pid, uid, value } => {
                b[16..20].copy_from_slice(&pid.to_le_bytes());
                b[20..24].copy_from_slice(&uid.to_le_bytes());
                b[24..32].copy_from_slice(&value.to_le_bytes());
            }
            SigFields::Fault { addr } => b[16..24].copy_from_slice(&addr.to_le_bytes()),
            SigFields::Timer {
                tid,
                overrun,
                value,
            } => {
                b[16..20].copy_from_slice(&tid.to_le_bytes());
                b[20..24].copy_from_slice(&overrun.to_le_bytes());
                b[24..32].copy_from_slice(&value.to_le_bytes());
            }
        }
        b
    }
}

/// Where a handler's frame goes and what the handler starts with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FramePlan {
    /// Address of the frame (the handler's initial stack pointer).
    pub frame: u64,
    /// Address of the FXSAVE area (64-byte aligned, above the frame).
    pub fpstate: u64,
    /// The frame's bytes ([`FRAME_SIZE`]), to copy to `frame`.
    pub bytes: [u8; FRAME_SIZE],
    /// The registers the handler starts with.
    pub handler: UserContext,
    /// Whether the frame lies on the alternate stack.
    pub on_altstack: bool,
}

/// Whether `sp` lies on `alt` (an enabled alternate stack).
pub fn on_altstack(alt: &AltStack, sp: u64) -> bool {
    alt.flags & SS_DISABLE == 0 && sp > alt.sp && sp - alt.sp <= alt.size
}

/// Plans the frame for a handler at `handler` with `restorer` as its return
/// address: below the red zone of the interrupted stack, or at the top of
/// the alternate stack when `use_altstack` and it is enabled and not
/// already in use. `saved_mask` is the mask `rt_sigreturn` restores.
/// `EFAULT` if the frame would wrap below address 0.
#[allow(clippy::too_many_arguments)]
pub fn plan_frame(
    regs: &UserContext,
    info: &SigInfo,
    handler: u64,
    restorer: u64,
    saved_mask: SigSet,
    alt: &AltStack,
    use_altstack: bool,
) -> Result<FramePlan, Errno> {
    let already_on = on_altstack(alt, regs.rsp);
    let switch = use_altstack && alt.flags & SS_DISABLE == 0 && !already_on;
    let top = if switch {
        alt.sp.checked_add(alt.size).ok_or(Errno::EFAULT)?
    } else {
        regs.rsp.checked_sub(RED_ZONE).ok_or(Errno::EFAULT)?
    };
    let fpstate = top.checked_sub(FPSTATE_SIZE).ok_or(Errno::EFAULT)? & !63;
    let frame = (fpstate
        .checked_sub(FRAME_SIZE as u64)
        .ok_or(Errno::EFAULT)?
        & !15)
        .checked_sub(8)
        .ok_or(Errno::EFAULT)?;
    let stack = if alt.flags & SS_DISABLE != 0 {
        StackT {
            sp: 0,
            flags: SS_DISABLE,
            size: 0,
        }
    } else {
        StackT {
            sp: alt.sp,
            flags: alt.flags | if already_on { SS_ONSTACK } else { 0 },
            size: alt.size,
        }
    };
    let mut bytes = [0u8; FRAME_SIZE];
    bytes[0..8].copy_from_slice(&restorer.to_le_bytes());
    let cr2 = match info.fields {
        SigFields::Fault { addr } => addr,
        _ => 0,
    };
    encode_ucontext(
        regs,
        saved_mask,
        &stack,
        fpstate,
        cr2,
        &mut bytes[UC_OFFSET as usize..UC_OFFSET as usize + UCONTEXT_SIZE],
    );
    bytes[INFO_OFFSET as usize..].copy_from_slice(&info.encode());
    let handler_regs = UserContext {
        rip: handler,
        rsp: frame,
        rdi: u64::from(info.signo),
        rsi: frame + INFO_OFFSET,
        rdx: frame + UC_OFFSET,
        rax: 0,
        // The direction flag is clear on entry to a function (the ABI);
        // TF stays as it was (a debugger's single step).
        rflags: (regs.rflags & USER_RFLAGS_MASK & !(1 << 10)) | USER_RFLAGS_FIXED,
        ..*regs
    };
    Ok(FramePlan {
        frame,
        fpstate,
        bytes,
        handler: handler_regs,
        on_altstack: switch || already_on,
    })
}

/// Offsets in `uc_mcontext` (a `struct sigcontext`), in 8-byte slots, of
/// the registers, in the kernel's order.
const MCONTEXT: u64 = 40;

fn encode_ucontext(
    regs: &UserContext,
    mask: SigSet,
    stack: &StackT,
    fpstate: u64,
    cr2: u64,
    out: &mut [u8],
) {
    let mut put =
        |off: u64, v: u64| out[off as usize..off as usize + 8].copy_from_slice(&v.to_le_bytes());
    // uc_flags (UC_FP_XSTATE clear: FXSAVE only), uc_link.
    put(0, 0);
    put(8, 0);
    put(16, stack.sp);
    put(24, stack.flags as u32 as u64);
    put(32, stack.size);
    let slots = [
        regs.r8,
        regs.r9,
        regs.r10,
        regs.r11,
        regs.r12,
        regs.r13,
        regs.r14,
        regs.r15,
        regs.rdi,
        regs.rsi,
        regs.rbp,
        regs.rbx,
        regs.rdx,
        regs.rax,
        regs.rcx,
        regs.rsp,
        regs.rip,
        regs.rflags,
    ];
    for (i, v) in slots.iter().enumerate() {
        put(MCONTEXT + 8 * i as u64, *v);
    }
    // cs, gs, fs, ss (16 bits each).
    let csgsfs = u64::from(USER_CS) | (u64::from(USER_SS) << 48);
    put(MCONTEXT + 8 * 18, csgsfs);
    // err (19), trapno (20), oldmask (21), cr2 (22), fpstate (23), then
    // reserved slots.
    put(MCONTEXT + 8 * 21, mask.bits());
    put(MCONTEXT + 8 * 22, cr2);
    put(MCONTEXT + 8 * 23, fpstate);
    put(MCONTEXT + 256, mask.bits());
}

/// What `rt_sigreturn` restores from a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Restored {
    /// The registers (rflags sanitised: only [`USER_RFLAGS_MASK`] bits
    /// come from the frame).
    pub regs: UserContext,
    /// The signal mask to restore.
    pub mask: SigSet,
    /// `uc_stack`, as `sigaltstack` would take it.
    pub stack: StackT,
    /// Address of the FXSAVE image to restore (0: none; reset the FPU).
    pub fpstate: u64,
}

/// Decodes the ucontext a handler returns through (`bytes` are the
/// [`UCONTEXT_SIZE`] bytes at the frame's [`UC_OFFSET`]). `EFAULT` if
/// `user_end` does not lie above the restored RIP and RSP (a frame may not
/// send the thread into the kernel's half).
pub fn decode_ucontext(bytes: &[u8], user_end: u64) -> Result<Restored, Errno> {
    let get = |off: u64| -> Result<u64, Errno> {
        bytes
            .get(off as usize..off as usize + 8)
            .and_then(|s| s.try_into().ok())
            .map(u64::from_le_bytes)
            .ok_or(Errno::EFAULT)
    };
    let s = |i: u64| get(MCONTEXT + 8 * i);
    let regs = UserContext {
        r8: s(0)?,
        r9: s(1)?,
        r10: s(2)?,
        r11: s(3)?,
        r12: s(4)?,
        r13: s(5)?,
        r14: s(6)?,
        r15: s(7)?,
        rdi: s(8)?,
        rsi: s(9)?,
        rbp: s(10)?,
        rbx: s(11)?,
        rdx: s(12)?,
        rax: s(13)?,
        rcx: s(14)?,
        rsp: s(15)?,
        rip: s(16)?,
        rflags: (s(17)? & USER_RFLAGS_MASK) | USER_RFLAGS_FIXED,
    };
    if regs.rip >= user_end || regs.rsp >= user_end {
        return Err(Errno::EFAULT);
    }
    let stack = StackT {
        sp: get(16)?,
        flags: get(24)? as u32 as i32,
        size: get(32)?,
    };
    Ok(Restored {
        regs,
        mask: SigSet::from_bits(get(MCONTEXT + 256)?),
        stack,
        fpstate: s(23)?,
    })
}

/// The alternate stack `rt_sigreturn` sets from a restored `uc_stack` (what
/// `sigaltstack` would accept; anything else leaves `current` as it was,
/// as Linux's `restore_altstack` does on error).
pub fn restored_altstack(current: &AltStack, stack: &StackT, on_stack: bool) -> AltStack {
    let mut alt = *current;
    let new = AltStack {
        sp: stack.sp,
        size: stack.size,
        flags: stack.flags & (SS_DISABLE | SS_AUTODISARM),
    };
    match alt.sigaltstack(Some(new), on_stack) {
        Ok(_) => alt,
        Err(_) => *current,
    }
}
