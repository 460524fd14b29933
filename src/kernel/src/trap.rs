//! Every interrupt and exception enters here (`cairn_trap`, called by the
//! platform's entry stubs with the saved registers).
//!
//! * Exceptions: a fault at an instruction registered in the fix-up table
//!   resumes at its fix-up address (the fault is recorded per CPU for the
//!   caller); any other kernel exception is reported (vector, error code,
//!   RIP, CR2, all registers) and panics. User-mode exceptions go to
//!   `user::exception` (page faults, fatal signals).
//! * Interrupts: the irq depth is raised (irq context), the vector's handler
//!   runs, the local APIC gets its EOI; then, back at depth zero, the exit
//!   services the bhqueue and, towards user mode, preempts if asked
//!   (`sched::exit`).
//!
//! Irq context; takes no locks itself (handlers take irq-safe ones).

use crate::irq;
use crate::percpu::this_cpu;
use cairn_pc::idt::{TrapFrame, vector};
use core::sync::atomic::Ordering;

/// One line per register pair, for reports.
pub struct FrameReport<'a>(pub &'a TrapFrame);

impl core::fmt::Display for FrameReport<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let t = self.0;
        writeln!(
            f,
            "  RIP={:#018x} CS={:#06x} RFLAGS={:#010x} RSP={:#018x} SS={:#06x}",
            t.rip, t.cs, t.rflags, t.rsp, t.ss
        )?;
        writeln!(
            f,
            "  RAX={:#018x} RBX={:#018x} RCX={:#018x} RDX={:#018x}",
            t.rax, t.rbx, t.rcx, t.rdx
        )?;
        writeln!(
            f,
            "  RSI={:#018x} RDI={:#018x} RBP={:#018x} R8 ={:#018x}",
            t.rsi, t.rdi, t.rbp, t.r8
        )?;
        writeln!(
            f,
            "  R9 ={:#018x} R10={:#018x} R11={:#018x} R12={:#018x}",
            t.r9, t.r10, t.r11, t.r12
        )?;
        write!(
            f,
            "  R13={:#018x} R14={:#018x} R15={:#018x}",
            t.r13, t.r14, t.r15
        )
    }
}

#[unsafe(no_mangle)]
extern "C" fn cairn_trap(frame: &mut TrapFrame) {
    let cpu = this_cpu();
    let v = frame.vector as u8;
    if v < vector::FIRST_EXTERNAL {
        if v == vector::NMI {
            crate::hang::nmi(frame);
            return;
        }
        if frame.from_user() {
            crate::user::exception(frame);
        } else {
            exception(frame);
        }
        return;
    }
    cpu.irq_depth.fetch_add(1, Ordering::Relaxed);
    cpu.irq_count.fetch_add(1, Ordering::Relaxed);
    if v != irq::SPURIOUS {
        if v == irq::TIMER {
            crate::profile::tick(frame);
        }
        if !irq::dispatch(v) {
            crate::warn!("interrupt on vector {v:#x} with no handler");
        }
        cairn_pc::apic::eoi();
    }
    cpu.irq_depth.fetch_sub(1, Ordering::Relaxed);
    crate::sched::exit::interrupt_exit(frame);
}

fn exception(frame: &mut TrapFrame) {
    let cpu = this_cpu();
    let cr2 = if frame.vector == u64::from(vector::PAGE_FAULT) {
        cairn_pc::cpu::read_cr2()
    } else {
        0
    };
    if !frame.from_user()
        && let Some(resume) = cairn_pc::fixup::lookup(frame.rip)
    {
        // A kernel copy touching a user page not mapped yet: demand-page
        // it (this may sleep: interrupts back on as the copy had them),
        // then retry the instruction.
        if frame.vector == u64::from(vector::PAGE_FAULT)
            && cr2 < cairn_pc::paging::USER_END
            && cpu.pagefault_disabled.load(Ordering::Relaxed) == 0
            && crate::context::current() == cairn_sync::Context::KernelLock
        {
            if frame.rflags & (1 << 9) != 0 {
                cairn_pc::cpu::enable_interrupts();
            }
            let served = crate::syscall::kernel_fault_on_user(cr2, frame.error & 2 != 0);
            cairn_pc::cpu::disable_interrupts();
            if served {
                return;
            }
        }
        cpu.last_fault_vector.store(frame.vector, Ordering::Relaxed);
        cpu.last_fault_error.store(frame.error, Ordering::Relaxed);
        cpu.last_fault_address.store(cr2, Ordering::Relaxed);
        frame.rip = resume;
        return;
    }
    // An exception we cannot handle: report everything, then panic (the
    // panic handler adds the backtrace of the kernel code below us).
    cpu.irq_depth.fetch_add(1, Ordering::Relaxed);
    panic!(
        "unhandled {} (vector {}) in {} mode, error code {:#x}, CR2={:#x}\n{}",
        vector::name(frame.vector),
        frame.vector,
        if frame.from_user() { "user" } else { "kernel" },
        frame.error,
        cr2,
        FrameReport(frame)
    );
}

/// The fault the last fixed-up instruction on this CPU took:
/// (vector, error code, CR2).
pub fn last_fault() -> (u64, u64, u64) {
    let c = this_cpu();
    (
        c.last_fault_vector.load(Ordering::Relaxed),
        c.last_fault_error.load(Ordering::Relaxed),
        c.last_fault_address.load(Ordering::Relaxed),
    )
}
