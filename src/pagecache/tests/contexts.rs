//! Where completions run, and what may be dropped where (seeds/003).
#![cfg(not(loom))]

mod common;

use cairn_pagecache::{Backing, Completion, Config, Errno, Mapping, Node, PAGE_SIZE, Pages};
use cairn_sync::cpu::host::set_context;
use cairn_sync::{Context, context};
use common::{DevConfig, World, pattern, wait};
use std::sync::mpsc::{Sender, channel};
use std::sync::{Arc, Mutex};

const PS: usize = PAGE_SIZE;

fn quiet() -> Config {
    Config {
        readahead_initial: 0,
        readahead_max: 0,
        ..Config::default()
    }
}

#[test]
fn bh_completions_run_in_bh_for_misses_and_inline_for_hits() {
    let w = World::new(quiet(), DevConfig::default(), 1);
    w.fs.preload(&w.dev, 0, &pattern(1, 0, PS));
    let n = w.node(0);
    let (tx, rx) = channel();
    let t = tx.clone();
    // Paused: the fill cannot end before the read's own initiation does,
    // so the read ends in the fill's bh completion.
    w.dev.pause();
    w.syscall(|| {
        n.read(
            0,
            PS,
            Completion::bh(move |r: Result<Pages, Errno>| {
                t.send((context(), r.map(|p| p.len()))).unwrap();
            }),
        )
    });
    w.dev.resume();
    assert_eq!(wait(&rx), (Context::Bh, Ok(PS)));
    w.syscall(|| {
        n.read(
            0,
            PS,
            Completion::bh(move |r: Result<Pages, Errno>| {
                tx.send((context(), r.map(|p| p.len()))).unwrap();
            }),
        )
    });
    assert_eq!(wait(&rx), (Context::KernelLock, Ok(PS)));
}

#[test]
fn kernel_lock_completions_of_misses_go_through_the_runqueue() {
    let w = World::new(quiet(), DevConfig::default(), 1);
    w.fs.preload(&w.dev, 0, &pattern(2, 0, PS));
    let n = w.node(0);
    let (tx, rx) = channel();
    let ran = w.rq.ran.load(std::sync::atomic::Ordering::SeqCst);
    let kl = w.kl.clone();
    w.dev.pause();
    w.syscall(|| {
        n.read(
            0,
            PS,
            Completion::kernel_lock(move |r: Result<Pages, Errno>| {
                tx.send((context(), kl.held_by_this_cpu(), r.is_ok()))
                    .unwrap();
            }),
        )
    });
    w.dev.resume();
    assert_eq!(wait(&rx), (Context::KernelLock, true, true));
    w.settle();
    assert!(w.rq.ran.load(std::sync::atomic::Ordering::SeqCst) > ran);
}

/// A backing whose drop records the context it happened in.
struct Probe {
    inner: Arc<dyn Backing>,
    dropped: Mutex<Option<Sender<Context>>>,
}

impl Backing for Probe {
    fn length(&self) -> Result<u64, Errno> {
        self.inner.length()
    }
    fn map(&self, offset: u64, len: u64) -> Result<Vec<Mapping>, Errno> {
        self.inner.map(offset, len)
    }
    fn reserve(&self, offset: u64, len: u64) -> Result<(), Errno> {
        self.inner.reserve(offset, len)
    }
    fn mark_written(&self, offset: u64, len: u64) -> Result<(), Errno> {
        self.inner.mark_written(offset, len)
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        if let Some(tx) = self.dropped.lock().unwrap().take() {
            let _ = tx.send(context());
        }
    }
}

#[test]
fn a_node_last_released_in_bh_is_dropped_under_the_kernel_lock() {
    let w = World::new(quiet(), DevConfig::default(), 1);
    w.fs.preload(&w.dev, 0, &pattern(3, 0, 2 * PS));
    let (dtx, drx) = channel();
    let n = w.syscall(|| {
        Node::new(
            &w.vol,
            Arc::new(Probe {
                inner: w.fs.backing(0),
                dropped: Mutex::new(Some(dtx)),
            }),
        )
    });
    w.dev.pause();
    let (tx, rx) = channel();
    // The completion drops the pages (unpin) in bh; the request and the
    // read's gather hold the only node references once `n` is gone.
    w.syscall(|| {
        n.read(
            0,
            2 * PS,
            Completion::bh(move |r: Result<Pages, Errno>| {
                let p = r.unwrap();
                drop(p);
                tx.send(context()).unwrap();
            }),
        );
        drop(n);
    });
    w.dev.resume();
    assert_eq!(wait(&rx), Context::Bh);
    assert_eq!(
        wait(&drx),
        Context::KernelLock,
        "node freed outside the kernel lock"
    );
}

#[test]
#[should_panic(expected = "kernel-lock only")]
fn kernel_lock_entry_points_refuse_bh_context() {
    let w = World::new(quiet(), DevConfig::default(), 1);
    let n = w.node(0);
    set_context(Context::Bh);
    n.read(0, 1, Completion::bh(|_| {}));
}
