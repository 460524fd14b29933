//! epoll: an interest list of (descriptor, open file) pairs, each with the
//! events it wants, its user data and its trigger mode.
//!
//! Readiness is each file's own [`OpenFile::poll`], asked when
//! `epoll_wait` scans the list; a persistent waiter subscribed to every
//! watched file's source forwards each notification to the instance's own
//! source, which wakes `epoll_wait` callers (and pollers of the epoll
//! descriptor). As on Linux, files without a readiness source of their
//! own (regular files, directories, `/dev/null`) cannot be watched
//! (`EPERM`; poll and select report them always ready); the console can,
//! and is always ready. Level-triggered items report while ready; `EPOLLET`
//! items report again only after their source notified (a generation
//! counter per source; any change counts, so an item may come again after
//! a partial read, which edge-triggered programs, reading until `EAGAIN`,
//! take in their stride); `EPOLLONESHOT` items are disabled after one report
//! until `EPOLL_CTL_MOD`. An item goes when its open file description
//! goes (its last descriptor closed), as on Linux. Any file with a
//! [`crate::sched::wait::Pollable`] can be watched, so sockets join by
//! providing one. Watching an epoll descriptor from an epoll instance is
//! refused (`EINVAL`): no loops to check. All instances together hold at
//! most Linux's `max_user_watches` items (`ENOSPC` past it).
//!
//! Kernel-lock context. Lock: `ipc.epoll` (SpinLock, kernel-lock only, a
//! leaf: files are polled and waiters woken with it released).

use crate::process::file::{FileOps, OpenFile, poll};
use crate::sched::wait::{Pollable, WaitError, Waiter, wait_event};
use alloc::collections::BTreeMap;
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use cairn_sync::{LockClass, SpinLock};
use cairn_unix::abi::FileStat;
use cairn_unix::errno::Errno;
use core::any::Any;
use core::sync::atomic::{AtomicUsize, Ordering};

static EPOLL_CLASS: LockClass = LockClass::new("ipc.epoll");

pub const EPOLLIN: u32 = 0x001;
pub const EPOLLPRI: u32 = 0x002;
pub const EPOLLOUT: u32 = 0x004;
pub const EPOLLERR: u32 = 0x008;
pub const EPOLLHUP: u32 = 0x010;
pub const EPOLLRDNORM: u32 = 0x040;
pub const EPOLLWRNORM: u32 = 0x100;
pub const EPOLLRDHUP: u32 = 0x2000;
pub const EPOLLEXCLUSIVE: u32 = 1 << 28;
pub const EPOLLWAKEUP: u32 = 1 << 29;
pub const EPOLLONESHOT: u32 = 1 << 30;
pub const EPOLLET: u32 = 1 << 31;

pub const EPOLL_CTL_ADD: i32 = 1;
pub const EPOLL_CTL_DEL: i32 = 2;
pub const EPOLL_CTL_MOD: i32 = 3;

struct Item {
    file: Weak<OpenFile>,
    events: u32,
    data: u64,
    /// The source generation last reported (edge-triggered items).
    reported: Option<u64>,
    /// A one-shot item that fired.
    disabled: bool,
}

pub struct Epoll {
    items: SpinLock<BTreeMap<(i32, u64), Item>>,
    /// Subscribed to every watched file's source; forwards to `ready`.
    forwarder: Arc<Waiter>,
    ready: Arc<Pollable>,
    ino: u64,
}

/// Items in every epoll instance (what [`max_watches`] bounds).
static WATCHES: AtomicUsize = AtomicUsize::new(0);

/// Most items all epoll instances hold together: Linux's
/// `max_user_watches` rule (4% of RAM at about 160 bytes an item; 33,554
/// in 128 MiB). Past it `EPOLL_CTL_ADD` fails with `ENOSPC`, as on Linux;
/// each item costs kernel memory (the item and a subscription on the
/// watched file), so without it a program watching every descriptor from
/// many instances could exhaust the kernel.
fn max_watches() -> usize {
    (crate::mm::kernel_map::ram_top() / 25 / 160) as usize
}

fn take_watch() -> Result<(), Errno> {
    WATCHES
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < max_watches()).then_some(n + 1)
        })
        .map(|_| ())
        .map_err(|_| Errno::ENOSPC)
}

fn release_watches(n: usize) {
    WATCHES.fetch_sub(n, Ordering::AcqRel);
}

pub fn new() -> Arc<Epoll> {
    let ready = Arc::new(Pollable::new());
    Arc::new(Epoll {
        items: SpinLock::new(&EPOLL_CLASS, BTreeMap::new()),
        forwarder: Waiter::forwarding(Arc::downgrade(&ready)),
        ready,
        ino: crate::special::new_ino(),
    })
}

/// An item as `scan` copies it out: key, file, events, data, last
/// reported generation, disabled.
type Snap = ((i32, u64), Weak<OpenFile>, u32, u64, Option<u64>, bool);

/// One reported event: (events, data).
pub type Event = (u32, u64);

/// The `epoll` bits of a file's `poll` readiness.
fn as_epoll(p: u16) -> u32 {
    u32::from(p)
}

impl Drop for Epoll {
    fn drop(&mut self) {
        release_watches(self.items.get_mut().len());
    }
}

impl Epoll {
    /// `epoll_ctl`.
    pub fn ctl(
        &self,
        op: i32,
        fd: i32,
        file: &Arc<OpenFile>,
        events: u32,
        data: u64,
    ) -> Result<(), Errno> {
        if file.downcast::<Epoll>().is_some() {
            return Err(Errno::EINVAL);
        }
        let key = (fd, file.id());
        let mut items = self.items.lock();
        let before = items.len();
        items.retain(|_, i| i.file.strong_count() > 0);
        release_watches(before - items.len());
        match op {
            EPOLL_CTL_ADD => {
                if items.contains_key(&key) {
                    return Err(Errno::EEXIST);
                }
                take_watch()?;
                items.insert(
                    key,
                    Item {
                        file: Arc::downgrade(file),
                        events,
                        data,
                        reported: None,
                        disabled: false,
                    },
                );
            }
            EPOLL_CTL_MOD => {
                let i = items.get_mut(&key).ok_or(Errno::ENOENT)?;
                if events & EPOLLEXCLUSIVE != 0 || i.events & EPOLLEXCLUSIVE != 0 {
                    return Err(Errno::EINVAL);
                }
                i.events = events;
                i.data = data;
                i.reported = None;
                i.disabled = false;
            }
            EPOLL_CTL_DEL => {
                items.remove(&key).ok_or(Errno::ENOENT)?;
                release_watches(1);
            }
            _ => return Err(Errno::EINVAL),
        }
        drop(items);
        if op != EPOLL_CTL_DEL
            && let Some(p) = file.pollable()
        {
            p.subscribe(&self.forwarder);
        }
        // A caller sleeping in epoll_wait rescans.
        self.ready.notify();
        Ok(())
    }

    /// Ready items, at most `max`; `consume`: record edge-triggered and
    /// one-shot reports (epoll_wait) rather than only look (poll).
    fn scan(&self, max: usize, consume: bool) -> Vec<Event> {
        let snapshot: Vec<Snap> = self
            .items
            .lock()
            .iter()
            .map(|(k, i)| (*k, i.file.clone(), i.events, i.data, i.reported, i.disabled))
            .collect();
        let mut out = Vec::new();
        let mut dead = Vec::new();
        let mut reported = Vec::new();
        for (key, file, events, data, last, disabled) in snapshot {
            if out.len() >= max {
                break;
            }
            let Some(f) = file.upgrade() else {
                dead.push(key);
                continue;
            };
            if disabled {
                continue;
            }
            let generation = f.pollable().map_or(0, |p| p.generation());
            if events & EPOLLET != 0 && last == Some(generation) {
                continue;
            }
            let got = as_epoll(f.poll()) & (events | EPOLLERR | EPOLLHUP);
            if got == 0 {
                continue;
            }
            out.push((got, data));
            reported.push((key, generation, events & EPOLLONESHOT != 0));
        }
        if consume || !dead.is_empty() {
            let mut items = self.items.lock();
            for k in dead {
                if items.remove(&k).is_some() {
                    release_watches(1);
                }
            }
            if consume {
                for (k, generation, oneshot) in reported {
                    if let Some(i) = items.get_mut(&k) {
                        i.reported = Some(generation);
                        i.disabled |= oneshot;
                    }
                }
            }
        }
        out
    }

    /// `epoll_wait`: up to `max` events, sleeping until one is ready or
    /// the monotonic `deadline` (`None`: forever; `Some(0)`: no wait).
    pub fn wait(&self, max: usize, deadline: Option<u64>) -> Result<Vec<Event>, Errno> {
        match wait_event(&[&self.ready], deadline, || {
            let ev = self.scan(max, true);
            (!ev.is_empty()).then_some(ev)
        }) {
            Ok(ev) => Ok(ev),
            Err(WaitError::TimedOut) => Ok(Vec::new()),
            Err(WaitError::Interrupted) => Err(Errno::EINTR),
        }
    }
}

impl FileOps for Epoll {
    fn poll(&self) -> u16 {
        if self.scan(1, false).is_empty() {
            0
        } else {
            poll::POLLIN | poll::POLLRDNORM
        }
    }

    fn pollable(&self) -> Option<&Pollable> {
        Some(&self.ready)
    }

    fn stat(&self) -> FileStat {
        crate::special::stat_of(self.ino, 0o600, 0, 0)
    }

    fn name(&self) -> Vec<u8> {
        b"anon_inode:[eventpoll]".to_vec()
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
