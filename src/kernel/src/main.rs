//! The cairn kernel: boot, per-CPU run loops, the kernel lock, bhqueue and
//! runqueue, threads and timers. Built for `x86_64-unknown-none` by
//! `cargo xtask`.
#![no_std]
#![no_main]

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    loop {}
}
