//! Lock classes: every lock is created with a `&'static LockClass`, the name
//! under which the validator records orders and irq use. All locks of one
//! kind (say, every pagecache node lock) share one class.
//!
//! Callable from any context; registration takes the validator's leaf lock.

use core::fmt;
use core::sync::atomic::{AtomicU16, Ordering};

/// A named class of locks. Declare one `static` per kind of lock:
///
/// ```
/// use cairn_sync::{LockClass, SpinLock};
/// static QUEUE_CLASS: LockClass = LockClass::new("example.queue");
/// let q = SpinLock::new(&QUEUE_CLASS, 0u32);
/// *q.lock() += 1;
/// ```
pub struct LockClass {
    name: &'static str,
    /// Index in the validator's tables, 0 until first use.
    index: AtomicU16,
}

impl LockClass {
    pub const fn new(name: &'static str) -> Self {
        LockClass {
            name,
            index: AtomicU16::new(0),
        }
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The validator's index of this class, registering it on first use.
    pub(crate) fn index(&'static self) -> u16 {
        match self.index.load(Ordering::Acquire) {
            0 => crate::lockdep::register(self),
            i => i,
        }
    }

    pub(crate) fn index_slot(&self) -> &AtomicU16 {
        &self.index
    }
}

impl fmt::Debug for LockClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LockClass({})", self.name)
    }
}
