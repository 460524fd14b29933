//! Which completed writes a device's volatile write cache may still hold:
//! so that a sync flushes the device only when something was written since
//! the last flush, and two syncs in a row cost one flush, not two.
//!
//! A [`WriteCache`] belongs to one device and is shared by its volumes
//! ([`BlockDevice::write_cache`](crate::BlockDevice::write_cache)). Every
//! request submitted through a volume is tagged with it
//! ([`WriteCache::tag`]); when the request ends, before its completion
//! runs, a successful write counts one more completed write, and a
//! successful flush makes durable every write that had completed when the
//! flush was submitted (the flush's snapshot). A write still in flight when
//! a flush is submitted is not covered by it, so the device stays unclean
//! until a later flush. A failed write changes nothing: its error goes to
//! the one who wrote.
//!
//! Any context (atomics only); completions run in bh context.

use crate::request::{Op, Status};
use core::sync::atomic::{AtomicU64, Ordering};

/// The write-cache state of one device.
#[derive(Debug, Default)]
pub struct WriteCache {
    /// Writes completed successfully since boot.
    completed: AtomicU64,
    /// `completed` as it was when the newest successful flush was
    /// submitted: every write up to there is durable.
    durable: AtomicU64,
    /// Flushes submitted (for `/proc/cairn/kstats` and the tests).
    flushes: AtomicU64,
}

impl WriteCache {
    pub const fn new() -> Self {
        WriteCache {
            completed: AtomicU64::new(0),
            durable: AtomicU64::new(0),
            flushes: AtomicU64::new(0),
        }
    }

    /// Whether some completed write may not be durable yet: a sync must
    /// flush.
    pub fn needs_flush(&self) -> bool {
        // `durable` first: a flush ending between the two loads can only
        // make the answer "needs" when it is no longer needed.
        let durable = self.durable.load(Ordering::Acquire);
        self.completed.load(Ordering::Acquire) > durable
    }

    /// Flushes submitted so far.
    pub fn flushes(&self) -> u64 {
        self.flushes.load(Ordering::Relaxed)
    }

    /// What a request of kind `op` carries at submission: for a flush, the
    /// writes it will make durable.
    pub(crate) fn tag(&self, op: Op) -> u64 {
        match op {
            Op::Flush => {
                self.flushes.fetch_add(1, Ordering::Relaxed);
                self.completed.load(Ordering::Acquire)
            }
            _ => 0,
        }
    }

    /// A request tagged `tag` ended with `status` (before its completion
    /// runs).
    pub(crate) fn ended(&self, op: Op, tag: u64, status: Status) {
        if !status.is_ok() {
            return;
        }
        match op {
            Op::Write => {
                self.completed.fetch_add(1, Ordering::AcqRel);
            }
            Op::Flush => {
                self.durable.fetch_max(tag, Ordering::AcqRel);
            }
            Op::Read => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BlockDevice, DeviceInfo, Request, Segment, Volume};
    use alloc::sync::Arc;
    use alloc::vec::Vec;
    use std::sync::Mutex;

    /// A device that keeps what is submitted until the test ends it.
    struct Held {
        info: DeviceInfo,
        cache: Arc<WriteCache>,
        queued: Mutex<Vec<Request>>,
    }

    impl BlockDevice for Held {
        fn info(&self) -> &DeviceInfo {
            &self.info
        }
        fn submit(&self, request: Request) {
            self.queued.lock().unwrap().push(request);
        }
        fn write_cache(&self) -> Option<&Arc<WriteCache>> {
            Some(&self.cache)
        }
    }

    fn device() -> Arc<Held> {
        Arc::new(Held {
            info: DeviceInfo {
                name: "held0".into(),
                model: String::new(),
                sectors: 1 << 20,
                queue_depth: 8,
                max_segments: 8,
                max_sectors: 256,
                flush: true,
            },
            cache: Arc::new(WriteCache::new()),
            queued: Mutex::new(Vec::new()),
        })
    }

    fn write() -> Request {
        Request::write(8, &[Segment { phys: 0, len: 512 }], |_| {})
    }

    /// Ends the oldest queued request with `status`.
    fn end(d: &Held, status: Status) {
        let r = d.queued.lock().unwrap().remove(0);
        r.complete(status);
    }

    use alloc::string::String;

    #[test]
    fn a_flush_is_needed_after_a_write_and_not_after_the_flush() {
        let d = device();
        let v = Volume::whole(d.clone());
        assert!(!v.needs_flush(), "a fresh device has nothing to flush");
        v.submit(write());
        assert!(
            !v.needs_flush(),
            "a write in flight is the writer's to wait for"
        );
        end(&d, Status::Ok);
        assert!(v.needs_flush());
        v.submit(Request::flush(|_| {}));
        assert!(v.needs_flush(), "until the flush ends");
        end(&d, Status::Ok);
        assert!(!v.needs_flush());
        assert_eq!(v.flushes(), Some(1));
    }

    #[test]
    fn a_flush_does_not_cover_a_write_that_completes_after_it_was_submitted() {
        let d = device();
        let v = Volume::whole(d.clone());
        v.submit(write()); // in flight
        v.submit(Request::flush(|_| {}));
        // The device ends the flush first, then the write.
        let flush = d.queued.lock().unwrap().remove(1);
        flush.complete(Status::Ok);
        end(&d, Status::Ok);
        assert!(v.needs_flush(), "the write may still be in the cache");
    }

    #[test]
    fn failures_change_nothing_and_volumes_of_a_device_share_the_state() {
        let d = device();
        let a = Volume::window(d.clone(), 0, 1024, "p1".into()).unwrap();
        let b = Volume::window(d.clone(), 1024, 1024, "p2".into()).unwrap();
        a.submit(write());
        end(&d, Status::IoError);
        assert!(!b.needs_flush(), "a failed write left nothing to flush");
        a.submit(write());
        end(&d, Status::Ok);
        assert!(b.needs_flush(), "the device's cache holds a's write");
        b.submit(Request::flush(|_| {}));
        end(&d, Status::IoError);
        assert!(a.needs_flush(), "a failed flush made nothing durable");
        b.submit(Request::flush(|_| {}));
        end(&d, Status::Ok);
        assert!(!a.needs_flush());
    }
}
