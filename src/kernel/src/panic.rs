//! The panic handler and the way out of QEMU.
//!
//! A panic prints its location and message, a frame-pointer backtrace
//! (every frame read through fault-tolerant probes, so a corrupt chain ends
//! the walk instead of faulting again) and the heap accounting, then leaves
//! QEMU through isa-debug-exit with [`PANIC_EXIT`]. Only the first CPU to
//! panic reports; the others stop.
//!
//! Any context. Takes no locks (writes the console without its lock).

use crate::console::emergency;
use core::sync::atomic::{AtomicBool, Ordering};

/// The isa-debug-exit value of a kernel panic (QEMU exits with 255).
pub const PANIC_EXIT: u32 = 0x7f;

static PANICKING: AtomicBool = AtomicBool::new(false);

/// Leaves QEMU with `status` as the workload's exit status: prints it (the
/// runner reads the exact value from the console) and writes it to the
/// debug-exit port (values above 126 are clamped there; 127 means panic).
pub fn exit(status: u32) -> ! {
    crate::profile::dump();
    crate::println!("cairn: exit status {status}");
    cairn_pc::debug_exit::exit(status.min(126));
    halt_forever()
}

pub fn halt_forever() -> ! {
    loop {
        cairn_pc::cpu::disable_interrupts();
        cairn_pc::cpu::halt();
    }
}

/// Reads a kernel word that may not be mapped (any context): `None` if it
/// is not.
pub(crate) fn read_u64(addr: u64) -> Option<u64> {
    let mut v = [0u8; 8];
    // SAFETY: `v` is a local buffer; the source is read through the fix-up
    // table, so an unmapped address only stops the copy.
    let left = unsafe { cairn_pc::fixup::copy_fallible(v.as_mut_ptr(), addr as *const u8, 8) };
    (left == 0).then(|| u64::from_le_bytes(v))
}

/// Prints the return addresses of the frame chain starting at `rbp`. The
/// chain may cross onto another stack a couple of times (bh work run at an
/// interrupt's exit sits on a per-CPU stack above the interrupted one).
pub fn backtrace(mut rbp: u64) {
    emergency(format_args!(
        "backtrace (symbolise with addr2line -e <kernel>):\n"
    ));
    let mut stack_switches = 0;
    for depth in 0..48 {
        if rbp == 0 || rbp % 8 != 0 || rbp < 0xffff_8000_0000_0000 {
            break;
        }
        let (Some(next), Some(ret)) = (read_u64(rbp), read_u64(rbp + 8)) else {
            break;
        };
        if ret == 0 {
            break;
        }
        emergency(format_args!("  #{depth:<2} {ret:#018x}\n"));
        if next == rbp || (next < rbp && stack_switches == 2) {
            break;
        }
        stack_switches += usize::from(next < rbp);
        rbp = next;
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    cairn_pc::cpu::disable_interrupts();
    if PANICKING.swap(true, Ordering::AcqRel) {
        halt_forever();
    }
    // Take the console for the report so other CPUs' lines do not cut into
    // it; give up waiting (this CPU may hold it) after a while.
    let console = crate::console::try_take(10_000_000);
    let cpu = crate::percpu::this_cpu().index();
    emergency(format_args!(
        "\ncairn: KERNEL PANIC on cpu{cpu} in {:?} context",
        crate::context::current()
    ));
    if let Some(loc) = info.location() {
        emergency(format_args!(
            " at {}:{}:{}",
            loc.file(),
            loc.line(),
            loc.column()
        ));
    }
    emergency(format_args!("\n{}\n", info.message()));
    backtrace(cairn_pc::cpu::frame_pointer());
    crate::heaps::report_at_panic();
    core::mem::forget(console);
    cairn_pc::debug_exit::exit(PANIC_EXIT);
    halt_forever()
}
