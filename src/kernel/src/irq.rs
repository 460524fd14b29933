//! Interrupt vectors: the fixed kernel vectors, dynamic allocation of
//! device vectors, the handler table, and routing of ISA irqs and PCI
//! INTx lines through the I/O APIC.
//!
//! Handlers run in irq context on the CPU the interrupt targets, with
//! interrupts off: they acknowledge their device and queue bh work; they
//! take no lock but irq-safe ones and never the kernel lock. EOI is sent by
//! the trap path after the handler returns.
//!
//! Lock: `irq.routing` (IrqSpinLock) around I/O APIC programming; a leaf.

use cairn_pc::acpi::Madt;
use cairn_pc::ioapic::{IoApic, LineMode};
use cairn_sync::{IrqSpinLock, LockClass};
use core::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

/// The local APIC timer.
pub const TIMER: u8 = 0xf0;
/// Wake an idle CPU (its run loop re-checks its queues).
pub const WAKEUP: u8 = 0xf1;
/// Flush this CPU's TLB (a shoot-down).
pub const TLB_SHOOTDOWN: u8 = 0xf2;
/// Spare vector for tests.
pub const TEST: u8 = 0xf3;
/// A user thread on this CPU should give the CPU up (preemption).
pub const RESCHED: u8 = 0xf4;
/// Local APIC error.
pub const APIC_ERROR: u8 = 0xfe;
/// Local APIC spurious interrupt.
pub const SPURIOUS: u8 = 0xff;

const FIRST_DYNAMIC: u8 = 0x30;
const LAST_DYNAMIC: u8 = 0xef;

/// A registered handler: `func(arg)`.
#[derive(Copy, Clone)]
pub struct Handler {
    pub func: fn(usize),
    pub arg: usize,
}

static FUNCS: [AtomicUsize; 256] = [const { AtomicUsize::new(0) }; 256];
static ARGS: [AtomicUsize; 256] = [const { AtomicUsize::new(0) }; 256];
static NEXT_VECTOR: AtomicU8 = AtomicU8::new(FIRST_DYNAMIC);

/// Installs `h` for `vector`.
pub fn set_handler(vector: u8, h: Handler) {
    ARGS[usize::from(vector)].store(h.arg, Ordering::Relaxed);
    FUNCS[usize::from(vector)].store(h.func as usize, Ordering::Release);
}

/// Allocates a free device vector with handler `h`.
pub fn allocate(h: Handler) -> Option<u8> {
    let v = NEXT_VECTOR
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
            (v <= LAST_DYNAMIC).then(|| v + 1)
        })
        .ok()?;
    set_handler(v, h);
    Some(v)
}

/// Runs the handler of `vector`; false if none is installed.
pub fn dispatch(vector: u8) -> bool {
    let f = FUNCS[usize::from(vector)].load(Ordering::Acquire);
    if f == 0 {
        return false;
    }
    let arg = ARGS[usize::from(vector)].load(Ordering::Relaxed);
    // SAFETY: FUNCS holds only values stored by `set_handler` from a
    // `fn(usize)`, converted back to the same type.
    let func: fn(usize) = unsafe { core::mem::transmute::<usize, fn(usize)>(f) };
    func(arg);
    true
}

static ROUTING_CLASS: LockClass = LockClass::new("irq.routing");

struct Routing {
    ioapics: [Option<IoApic>; 8],
    madt: Option<Madt>,
}

static ROUTING: IrqSpinLock<Routing> = IrqSpinLock::new(
    &ROUTING_CLASS,
    Routing {
        ioapics: [None, None, None, None, None, None, None, None],
        madt: None,
    },
);

/// Records the I/O APICs (mapped by the caller) and masks all their lines.
pub fn init_ioapics(madt: &Madt, map: impl Fn(u64) -> u64) {
    let mut r = ROUTING.lock();
    for (slot, info) in r.ioapics.iter_mut().zip(madt.ioapics()) {
        // SAFETY: `map` returns an uncached mapping of the I/O APIC's page,
        // used only through this value under the routing lock.
        let mut io = unsafe { IoApic::new(map(info.phys), info.gsi_base) };
        io.mask_all();
        *slot = Some(io);
    }
    r.madt = Some(madt.clone());
}

/// Why a line could not be routed.
#[derive(Copy, Clone, Debug)]
pub enum RouteError {
    NoIoApic(u32),
    NoVector,
}

fn route_gsi_locked(
    r: &mut Routing,
    gsi: u32,
    vector: u8,
    mode: LineMode,
    dest: u32,
) -> Result<(), RouteError> {
    let io = r
        .ioapics
        .iter_mut()
        .flatten()
        .find(|io| io.handles(gsi))
        .ok_or(RouteError::NoIoApic(gsi))?;
    io.route(gsi, vector, dest, mode);
    Ok(())
}

/// Routes ISA irq `irq` (applying the MADT's overrides) to a new vector
/// running `h` on the CPU with APIC id `dest`. Returns the vector.
pub fn route_isa(irq: u8, h: Handler, dest: u32) -> Result<u8, RouteError> {
    let vector = allocate(h).ok_or(RouteError::NoVector)?;
    let mut r = ROUTING.lock();
    let (gsi, level, low) =
        r.madt
            .as_ref()
            .map(|m| m.isa_irq(irq))
            .unwrap_or((u32::from(irq), false, false));
    route_gsi_locked(
        &mut r,
        gsi,
        vector,
        LineMode {
            level_triggered: level,
            active_low: low,
        },
        dest,
    )?;
    Ok(vector)
}

/// Routes a PCI INTx line whose configuration space names ISA irq `line`
/// (as the firmware's PIRQ routing set it) to a new vector running `h`.
/// The MADT's override for that irq gives its trigger and polarity; PCI
/// lines without one are level-triggered, active low.
pub fn route_pci_intx(line: u8, h: Handler, dest: u32) -> Result<u8, RouteError> {
    let vector = allocate(h).ok_or(RouteError::NoVector)?;
    let mut r = ROUTING.lock();
    let (gsi, mode) = match r.madt.as_ref().and_then(|m| {
        m.overrides()
            .iter()
            .find(|o| o.isa_irq == line)
            .map(|_| m.isa_irq(line))
    }) {
        Some((gsi, level, low)) => (
            gsi,
            LineMode {
                level_triggered: level,
                active_low: low,
            },
        ),
        None => (u32::from(line), LineMode::PCI),
    };
    route_gsi_locked(&mut r, gsi, vector, mode, dest)?;
    Ok(vector)
}
