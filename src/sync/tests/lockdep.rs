//! The validator's checks fire (and only when they should). Each test uses
//! its own lock classes: the order graph is global to the process.
#![cfg(not(loom))]

use cairn_sync::cpu::host::set_context;
use cairn_sync::{Context, IrqSpinLock, KernelLock, LockClass, SpinLock, cpu::cpu, lockdep};

#[test]
fn consistent_order_is_accepted() {
    static A: LockClass = LockClass::new("t1.a");
    static B: LockClass = LockClass::new("t1.b");
    let a = SpinLock::new(&A, 0);
    let b = SpinLock::new(&B, 0);
    for _ in 0..3 {
        let _ga = a.lock();
        let _gb = b.lock();
    }
    // Releasing out of order is allowed.
    let ga = a.lock();
    let gb = b.lock();
    drop(ga);
    drop(gb);
    assert_eq!(lockdep::held_count(), 0);
}

#[test]
#[should_panic(expected = "lock order inversion: acquiring `t2.a`")]
fn direct_inversion_panics() {
    static A: LockClass = LockClass::new("t2.a");
    static B: LockClass = LockClass::new("t2.b");
    let a = SpinLock::new(&A, 0);
    let b = SpinLock::new(&B, 0);
    {
        let _ga = a.lock();
        let _gb = b.lock();
    }
    let _gb = b.lock();
    let _ga = a.lock();
}

#[test]
fn inversion_message_names_both_sites() {
    static A: LockClass = LockClass::new("t3.a");
    static B: LockClass = LockClass::new("t3.b");
    let r = std::thread::spawn(|| {
        let a = SpinLock::new(&A, 0);
        let b = SpinLock::new(&B, 0);
        {
            let _ga = a.lock();
            let _gb = b.lock(); // line L1
        }
        let _gb = b.lock();
        let _ga = a.lock();
    })
    .join();
    let msg = *r.unwrap_err().downcast::<String>().unwrap();
    let file = file!();
    // The acquisition being attempted, the lock held, and both sites of the
    // earlier opposite order all appear with file:line.
    assert!(msg.contains("`t3.a`") && msg.contains("`t3.b`"), "{msg}");
    assert!(msg.matches(file).count() >= 4, "{msg}");
}

#[test]
#[should_panic(expected = "lock order inversion")]
fn transitive_cycle_panics() {
    static A: LockClass = LockClass::new("t4.a");
    static B: LockClass = LockClass::new("t4.b");
    static C: LockClass = LockClass::new("t4.c");
    let a = SpinLock::new(&A, 0);
    let b = SpinLock::new(&B, 0);
    let c = SpinLock::new(&C, 0);
    {
        let _g = a.lock();
        let _h = b.lock();
    }
    {
        let _g = b.lock();
        let _h = c.lock();
    }
    let _g = c.lock();
    let _h = a.lock();
}

#[test]
fn try_lock_records_no_order() {
    static A: LockClass = LockClass::new("t5.a");
    static B: LockClass = LockClass::new("t5.b");
    let a = SpinLock::new(&A, 0);
    let b = SpinLock::new(&B, 0);
    {
        let _ga = a.lock();
        let _gb = b.try_lock().unwrap();
    }
    let _gb = b.lock();
    let _ga = a.lock();
}

#[test]
#[should_panic(expected = "recursive lock acquisition: `t6.a`")]
fn recursive_acquisition_panics() {
    static A: LockClass = LockClass::new("t6.a");
    let a1 = SpinLock::new(&A, 0);
    let a2 = SpinLock::new(&A, 0);
    let _g1 = a1.lock();
    let _g2 = a2.lock();
}

#[test]
#[should_panic(expected = "irq-unsafe lock: `t7.shared` acquired with interrupts enabled")]
fn lock_used_in_bh_then_with_irqs_on_panics() {
    static S: LockClass = LockClass::new("t7.shared");
    let irqsafe = IrqSpinLock::new(&S, 0);
    let plain = SpinLock::new(&S, 0);
    set_context(Context::Bh);
    drop(irqsafe.lock());
    set_context(Context::KernelLock);
    cpu().enable_interrupts();
    drop(plain.lock());
}

#[test]
#[should_panic(expected = "irq-unsafe lock: `t8.shared` acquired in Irq context")]
fn lock_used_with_irqs_on_then_in_irq_panics() {
    static S: LockClass = LockClass::new("t8.shared");
    let plain = SpinLock::new(&S, 0);
    let irqsafe = IrqSpinLock::new(&S, 0);
    cpu().enable_interrupts();
    drop(plain.lock());
    set_context(Context::Irq);
    drop(irqsafe.lock());
}

#[test]
fn irq_lock_in_bh_and_kernel_context_is_accepted() {
    static S: LockClass = LockClass::new("t9.shared");
    let l = IrqSpinLock::new(&S, 0);
    set_context(Context::Bh);
    *l.lock() += 1;
    set_context(Context::KernelLock);
    cpu().enable_interrupts();
    *l.lock() += 1;
    assert!(cpu().interrupts_enabled(), "flag restored after release");
    assert_eq!(*l.lock(), 2);
}

#[test]
#[should_panic(expected = "kernel lock taken in Bh context")]
fn kernel_lock_in_bh_panics() {
    let k = KernelLock::new();
    set_context(Context::Bh);
    let _g = k.lock();
}

#[test]
fn kernel_lock_excludes_and_records_owner() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let k = Arc::new(KernelLock::new());
    let inside = Arc::new(AtomicUsize::new(0));
    let total = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (k, inside, total) = (k.clone(), inside.clone(), total.clone());
            std::thread::spawn(move || {
                for _ in 0..2000 {
                    let g = k.lock();
                    assert!(k.held_by_this_cpu());
                    assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0);
                    total.fetch_add(1, Ordering::Relaxed);
                    inside.fetch_sub(1, Ordering::SeqCst);
                    drop(g);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(total.load(Ordering::Relaxed), 8000);
    assert_eq!(k.owner(), None);
}

/// A sleeping lock taken by a "thread" whose held-lock stack is `thread`.
fn sleep_lock(class: &'static LockClass, thread: &cairn_sync::cpu::HeldLocks) {
    let site = std::panic::Location::caller();
    lockdep::before_sleep_acquire(class, site, thread);
    lockdep::sleep_acquired(class, site, thread);
}

#[test]
#[should_panic(expected = "sleeping lock `t20.m` acquired")]
fn sleeping_lock_under_a_spinlock_panics() {
    static S: LockClass = LockClass::new("t20.s");
    static M: LockClass = LockClass::new("t20.m");
    let thread = cairn_sync::cpu::HeldLocks::new();
    let s = SpinLock::new(&S, 0);
    let _g = s.lock();
    sleep_lock(&M, &thread);
}

#[test]
fn sleeping_lock_under_the_kernel_lock_is_fine() {
    static M: LockClass = LockClass::new("t21.m");
    static K: KernelLock = KernelLock::new();
    set_context(Context::RunLoop);
    let thread = cairn_sync::cpu::HeldLocks::new();
    let k = K.lock();
    set_context(Context::KernelLock);
    sleep_lock(&M, &thread);
    lockdep::sleep_released(&M, &thread);
    set_context(Context::RunLoop);
    drop(k);
    assert_eq!(thread.depth(), 0);
}

#[test]
#[should_panic(expected = "lock order inversion: acquiring `t22.a`")]
fn sleeping_locks_are_ordered_per_thread() {
    static A: LockClass = LockClass::new("t22.a");
    static B: LockClass = LockClass::new("t22.b");
    // One thread takes A then B (sleeping), releases; then, maybe on another
    // CPU, B then A: the validator sees the thread's stack, not the CPU's.
    let thread = cairn_sync::cpu::HeldLocks::new();
    sleep_lock(&A, &thread);
    sleep_lock(&B, &thread);
    lockdep::sleep_released(&B, &thread);
    lockdep::sleep_released(&A, &thread);
    let other = std::thread::spawn(|| {}).join();
    drop(other);
    sleep_lock(&B, &thread);
    sleep_lock(&A, &thread);
}

#[test]
fn nested_section_does_not_order_against_the_interrupted_code() {
    static OUTER: LockClass = LockClass::new("t23.outer");
    static BH: LockClass = LockClass::new("t23.bh");
    let outer = SpinLock::new(&OUTER, 0);
    let bh = IrqSpinLock::new(&BH, 0);
    // Bh work runs nested while the interrupted code holds `outer`, then
    // later the code takes `bh` first and `outer` under it: no edge
    // outer → bh was recorded, so this is not an inversion.
    let g = outer.lock();
    let saved = cpu().held_locks().enter_nested();
    assert!(!lockdep::holds(&OUTER), "nested code sees the outer lock");
    drop(bh.lock());
    cpu().held_locks().leave_nested(saved);
    drop(g);
    let _b = bh.lock();
    let _o = outer.lock();
}

#[test]
#[should_panic(expected = "lock order inversion: acquiring `t24.outer`")]
fn declared_order_is_enforced_before_both_orders_are_seen() {
    static OUTER: LockClass = LockClass::new("t24.outer");
    static INNER: LockClass = LockClass::new("t24.inner");
    lockdep::declare_order(&[&OUTER, &INNER]);
    let outer = SpinLock::new(&OUTER, 0);
    let inner = SpinLock::new(&INNER, 0);
    let _i = inner.lock();
    let _o = outer.lock();
}
