//! The driver queue skeleton every block driver runs on: validate a
//! request, start it on the device or keep it waiting when the device is
//! full, collect what the device finished, complete it with no lock held,
//! then start what waits.
//!
//! **What it owns.** One hardware queue of a device ([`DriverQueue`]): the
//! driver's [`Hardware`] state (rings, slots, registers) behind one lock,
//! the driver queue of requests waiting for room on the device, the list of
//! finished requests waiting for their completion, the coalesced bh service
//! ([`BhService`]) and the queue's counters ([`Stats`]). A device with
//! several hardware queues (NVMe: one pair per vCPU) has one
//! `DriverQueue` per queue; a controller with several disks (pvscsi,
//! virtio-scsi, an IDE channel) shares one between its disks, telling them
//! apart by the [`Hardware::Tag`] each request carries.
//!
//! **What the driver owns.** Everything device-specific, through
//! [`Hardware`]: how a request is started ([`Hardware::issue`]), how the
//! device is told about a batch ([`Hardware::doorbell`]), and how finished
//! commands are found ([`Hardware::harvest`]), plus its own interrupt
//! handler, which acknowledges the device and calls
//! [`DriverQueue::interrupt`].
//!
//! **Contexts.**
//! * [`DriverQueue::submit`]: kernel-lock or bh. Never blocks, never runs a
//!   completion: a malformed or out-of-range request, and one the hardware
//!   refuses, go to the finished list and the bh service completes them.
//! * [`DriverQueue::interrupt`]: irq. Counts and requests the bh service
//!   (one bhqueue item per queue however many interrupts arrive before it
//!   runs); takes no lock.
//! * The bh service (bh context, any CPU, kernel lock not held): harvests
//!   under the lock, completes each finished request with the lock
//!   released, then issues waiting requests and rings the doorbell once.
//!
//! **Locks.** One `IrqSpinLock` per queue, of the class the driver passes
//! (`drivers.<name>`): taken in kernel-lock and bh context, never in irq
//! context and never while a completion runs (so a completion may submit
//! to the same queue). The [`Hardware`] methods run under it and may take
//! only leaf locks below it (heaps, inside `bh_safe_alloc`; Xen's grant
//! table). Doorbells are rung under it: an MMIO write or a hypercall, never
//! a wait.
//!
//! **Memory.** The waiting and finished lists grow inside
//! `cairn_sync::cpu::bh_safe_alloc`: the bh service frees what they hold.

use crate::env::env;
use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::vec::Vec;
use cairn_block::{DeviceInfo, Op, Request, Status};
use cairn_sync::cpu::bh_safe_alloc;
use cairn_sync::{BhWork, IrqSpinLock, LockClass};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// The coalesced bh service of one queue: a pending flag and the work item
/// that runs the service. Any context.
pub struct BhService {
    pending: AtomicBool,
    /// bhqueue refusals (a full queue is a visible error).
    refused: AtomicU64,
    /// Times the service was queued.
    queued: AtomicU64,
}

impl BhService {
    pub const fn new() -> Self {
        BhService {
            pending: AtomicBool::new(false),
            refused: AtomicU64::new(0),
            queued: AtomicU64::new(0),
        }
    }

    /// Queues `run(arg)` on the bhqueue unless it is already pending.
    pub fn request(&self, run: fn(usize), arg: usize) {
        if self.pending.swap(true, Ordering::AcqRel) {
            return;
        }
        if env().schedule_bh(BhWork::new(run, arg)) {
            self.queued.fetch_add(1, Ordering::Relaxed);
        } else {
            // Counted and reported by the run loop; the next interrupt or
            // submit tries again.
            self.refused.fetch_add(1, Ordering::Relaxed);
            self.pending.store(false, Ordering::Release);
        }
    }

    /// Called first by the service: a request after this point queues the
    /// service again, so no completion is missed.
    pub fn begin(&self) {
        self.pending.store(false, Ordering::SeqCst);
    }

    /// (times queued, bhqueue refusals).
    pub fn counts(&self) -> (u64, u64) {
        (
            self.queued.load(Ordering::Relaxed),
            self.refused.load(Ordering::Relaxed),
        )
    }
}

impl Default for BhService {
    fn default() -> Self {
        Self::new()
    }
}

/// Per-queue counters, readable from any context.
#[derive(Default)]
pub struct Stats {
    pub submitted: AtomicU64,
    pub completed: AtomicU64,
    pub errors: AtomicU64,
    pub interrupts: AtomicU64,
    /// Requests that had to wait in the driver queue.
    pub queued: AtomicU64,
    /// Requests the device finished and the driver started again (a SCSI
    /// UNIT ATTENTION, a busy target).
    pub retried: AtomicU64,
}

impl Stats {
    pub const fn new() -> Self {
        Stats {
            submitted: AtomicU64::new(0),
            completed: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            interrupts: AtomicU64::new(0),
            queued: AtomicU64::new(0),
            retried: AtomicU64::new(0),
        }
    }

    pub(crate) fn count(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// A snapshot: (submitted, completed, errors, interrupts, queued,
    /// retried).
    pub fn snapshot(&self) -> [u64; 6] {
        [
            &self.submitted,
            &self.completed,
            &self.errors,
            &self.interrupts,
            &self.queued,
            &self.retried,
        ]
        .map(|c| c.load(Ordering::Relaxed))
    }
}

/// What [`Hardware::issue`] did with a request.
pub enum Issue<T> {
    /// It is on the device: a later [`Hardware::harvest`] returns it.
    Started,
    /// The device has no room for it now: it waits in the driver queue (at
    /// its head: it keeps its place) until the device finishes something.
    /// Only while the device has commands in flight: their completion is
    /// what runs the queue again.
    Busy(Request, T),
    /// It ended without the device (rejected, or nothing to do): the bh
    /// service completes it with this status.
    Finished(Request, Status),
}

/// Where [`Hardware::harvest`] puts what the device finished.
pub struct Harvest<'a, T> {
    done: &'a mut VecDeque<(Request, Status)>,
    retry: &'a mut Vec<(Request, T)>,
}

impl<T> Harvest<'_, T> {
    /// `r` ended with `status`.
    pub fn finish(&mut self, r: Request, status: Status) {
        bh_safe_alloc(|| self.done.push_back((r, status)));
    }

    /// `r` must be started again (ahead of every waiting request).
    pub fn retry(&mut self, r: Request, tag: T) {
        bh_safe_alloc(|| self.retry.push((r, tag)));
    }
}

/// One hardware queue as the skeleton sees it. Every method runs under the
/// queue's lock, in kernel-lock or bh context.
pub trait Hardware: Send + 'static {
    /// What a request carries besides itself: which disk of a controller
    /// it is for, retries left, ...
    type Tag: Send + 'static;

    /// Starts `r` (already checked against the disk's [`DeviceInfo`]) on
    /// the device, without telling the device yet.
    fn issue(&mut self, r: Request, tag: Self::Tag) -> Issue<Self::Tag>;

    /// Tells the device about the requests started since the last call
    /// (notify, kick, doorbell). Called once after a batch that started at
    /// least one request.
    fn doorbell(&mut self);

    /// Moves every command the device has finished into `out`.
    fn harvest(&mut self, out: &mut Harvest<'_, Self::Tag>);
}

struct State<H: Hardware> {
    hw: H,
    waiting: VecDeque<(Request, H::Tag)>,
    done: VecDeque<(Request, Status)>,
}

/// One hardware queue of a device, with its driver queue, finished list
/// and bh service. Lives for the rest of the run (its address is the bh
/// service's argument).
pub struct DriverQueue<H: Hardware> {
    state: IrqSpinLock<State<H>>,
    service: BhService,
    pub stats: Stats,
}

impl<H: Hardware> DriverQueue<H> {
    /// A queue over `hw`, its lists sized for `depth` requests, leaked
    /// (bh-safe) for the rest of the run.
    pub fn leak(class: &'static LockClass, hw: H, depth: usize) -> &'static DriverQueue<H> {
        bh_safe_alloc(|| {
            Box::leak(Box::new(DriverQueue {
                state: IrqSpinLock::new(
                    class,
                    State {
                        hw,
                        waiting: VecDeque::with_capacity(depth),
                        done: VecDeque::with_capacity(depth),
                    },
                ),
                service: BhService::new(),
                stats: Stats::new(),
            }))
        })
    }

    /// Runs `f` on the hardware under the queue's lock (probe-time polling,
    /// set-up after the queue exists, diagnostics). Kernel-lock or bh.
    pub fn with_hw<R>(&self, f: impl FnOnce(&mut H) -> R) -> R {
        f(&mut self.state.lock().hw)
    }

    fn arg(&'static self) -> usize {
        self as *const Self as usize
    }

    /// Requests the bh service (any context).
    pub fn kick(&'static self) {
        self.service.request(run::<H>, self.arg());
    }

    /// The device interrupted for this queue (irq context, after the
    /// driver acknowledged it): requests the bh service.
    pub fn interrupt(&'static self) {
        Stats::count(&self.stats.interrupts);
        self.kick();
    }

    /// Queues `r` for the disk `info` describes, with `tag`. Kernel-lock or
    /// bh context; see the module doc.
    pub fn submit(&'static self, r: Request, tag: H::Tag, info: &DeviceInfo) {
        Stats::count(&self.stats.submitted);
        let check = r.check_for(info);
        let mut s = self.state.lock();
        let finished = match check {
            Err(status) => Some((r, status)),
            // A device without a write cache has nothing to flush.
            Ok(()) if r.op == Op::Flush && !info.flush => Some((r, Status::Ok)),
            // Never overtake what already waits.
            Ok(()) if !s.waiting.is_empty() => {
                Stats::count(&self.stats.queued);
                bh_safe_alloc(|| s.waiting.push_back((r, tag)));
                None
            }
            Ok(()) => match s.hw.issue(r, tag) {
                Issue::Started => {
                    s.hw.doorbell();
                    None
                }
                Issue::Busy(r, tag) => {
                    Stats::count(&self.stats.queued);
                    bh_safe_alloc(|| s.waiting.push_back((r, tag)));
                    None
                }
                Issue::Finished(r, status) => Some((r, status)),
            },
        };
        let Some(finished) = finished else { return };
        bh_safe_alloc(|| s.done.push_back(finished));
        drop(s);
        self.kick();
    }

    /// The bh service: harvest, complete, issue waiting.
    fn service(&'static self) {
        self.service.begin();
        self.harvest();
        self.complete_finished();
        if self.issue_waiting() {
            // `issue` ended some waiting requests without the device.
            self.complete_finished();
        }
    }

    fn harvest(&self) {
        let mut s = self.state.lock();
        let s = &mut *s;
        let mut retry = Vec::new();
        s.hw.harvest(&mut Harvest {
            done: &mut s.done,
            retry: &mut retry,
        });
        if !retry.is_empty() {
            for _ in 0..retry.len() {
                Stats::count(&self.stats.retried);
            }
            bh_safe_alloc(|| {
                for item in retry.into_iter().rev() {
                    s.waiting.push_front(item);
                }
            });
        }
    }

    /// Completes finished requests one at a time, the lock released around
    /// each completion (bh context).
    fn complete_finished(&self) {
        loop {
            let next = self.state.lock().done.pop_front();
            let Some((r, status)) = next else { break };
            Stats::count(&self.stats.completed);
            if !status.is_ok() {
                Stats::count(&self.stats.errors);
            }
            r.complete(status);
        }
    }

    /// Starts waiting requests until the device is full; rings the
    /// doorbell once. Whether any of them finished without the device.
    fn issue_waiting(&self) -> bool {
        let mut s = self.state.lock();
        let mut started = false;
        let mut finished = false;
        while let Some((r, tag)) = s.waiting.pop_front() {
            match s.hw.issue(r, tag) {
                Issue::Started => started = true,
                Issue::Busy(r, tag) => {
                    s.waiting.push_front((r, tag));
                    break;
                }
                Issue::Finished(r, status) => {
                    finished = true;
                    bh_safe_alloc(|| s.done.push_back((r, status)));
                }
            }
        }
        if started {
            s.hw.doorbell();
        }
        finished
    }

    /// (waiting, finished but not yet completed) requests.
    pub fn backlog(&self) -> (usize, usize) {
        let s = self.state.lock();
        (s.waiting.len(), s.done.len())
    }

    /// (times the bh service was queued, bhqueue refusals).
    pub fn service_counts(&self) -> (u64, u64) {
        self.service.counts()
    }
}

/// The bh work item of a [`DriverQueue`].
fn run<H: Hardware>(arg: usize) {
    // SAFETY: `arg` is the address of a `DriverQueue<H>` leaked by
    // `DriverQueue::leak` (`kick` passes nothing else with `run::<H>`).
    let q: &'static DriverQueue<H> = unsafe { &*(arg as *const DriverQueue<H>) };
    q.service();
}

#[cfg(test)]
mod tests;
