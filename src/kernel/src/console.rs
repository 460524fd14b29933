//! The kernel console on COM1, with log levels.
//!
//! `println!` and the level macros (`error!`, `warn!`, `info!`, `debug!`)
//! format into the console under the `console` lock (interrupts off while
//! held, so any context may print). The panic path uses [`emergency`],
//! which writes without the lock: a CPU that panicked holding it must still
//! be heard.
//!
//! Lock: `console` (IrqSpinLock), a leaf.

use cairn_sync::{IrqSpinLock, LockClass};
use core::fmt::Write;
use core::sync::atomic::{AtomicU8, Ordering};

static CONSOLE_CLASS: LockClass = LockClass::new("console");
static CONSOLE: IrqSpinLock<()> = IrqSpinLock::new(&CONSOLE_CLASS, ());

/// Message levels, most severe first.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Level {
    Error = 0,
    Warn = 1,
    Info = 2,
    Debug = 3,
}

impl Level {
    pub fn parse(s: &str) -> Option<Level> {
        match s {
            "error" => Some(Level::Error),
            "warn" => Some(Level::Warn),
            "info" => Some(Level::Info),
            "debug" => Some(Level::Debug),
            _ => None,
        }
    }
}

static LEVEL: AtomicU8 = AtomicU8::new(Level::Info as u8);

pub fn set_level(l: Level) {
    LEVEL.store(l as u8, Ordering::Relaxed);
}

pub fn enabled(l: Level) -> bool {
    (l as u8) <= LEVEL.load(Ordering::Relaxed)
}

pub fn init() {
    cairn_pc::serial::init();
}

#[doc(hidden)]
pub fn print_fmt(args: core::fmt::Arguments<'_>) {
    let _g = CONSOLE.lock();
    let _ = cairn_pc::serial::SerialWriter.write_fmt(args);
}

/// Writes raw bytes (a program's output) under the console lock.
pub fn write_bytes(b: &[u8]) {
    let _g = CONSOLE.lock();
    for &c in b {
        if c == b'\n' {
            cairn_pc::serial::write_byte(b'\r');
        }
        cairn_pc::serial::write_byte(c);
    }
}

/// Tries to take the console lock for up to `spins` attempts (panic path:
/// keeps other CPUs' output out of the report).
pub fn try_take(spins: u64) -> Option<cairn_sync::IrqSpinLockGuard<'static, ()>> {
    (0..spins).find_map(|_| CONSOLE.try_lock())
}

/// Writes without the console lock (panic path only).
pub fn emergency(args: core::fmt::Arguments<'_>) {
    let _ = cairn_pc::serial::SerialWriter.write_fmt(args);
}

#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::console::print_fmt(format_args!($($arg)*)) };
}

#[macro_export]
macro_rules! println {
    () => { $crate::print!("\n") };
    ($($arg:tt)*) => { $crate::console::print_fmt(format_args!("{}\n", format_args!($($arg)*))) };
}

#[macro_export]
macro_rules! log {
    ($level:expr, $($arg:tt)*) => {
        if $crate::console::enabled($level) {
            $crate::console::print_fmt(format_args!(
                "[{:>5}.{:06}] cpu{} {}\n",
                $crate::time::now_ns() / 1_000_000_000,
                ($crate::time::now_ns() / 1_000) % 1_000_000,
                $crate::percpu::this_cpu().index(),
                format_args!($($arg)*)
            ))
        }
    };
}

#[macro_export]
macro_rules! error { ($($arg:tt)*) => { $crate::log!($crate::console::Level::Error, $($arg)*) }; }
#[macro_export]
macro_rules! warn { ($($arg:tt)*) => { $crate::log!($crate::console::Level::Warn, $($arg)*) }; }
#[macro_export]
macro_rules! info { ($($arg:tt)*) => { $crate::log!($crate::console::Level::Info, $($arg)*) }; }
#[macro_export]
macro_rules! debug { ($($arg:tt)*) => { $crate::log!($crate::console::Level::Debug, $($arg)*) }; }
