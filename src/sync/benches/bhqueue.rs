//! bhqueue enqueue+dequeue cost against a `spin::Mutex<VecDeque>` baseline,
//! with 1 and 2 threads each doing enqueue+dequeue pairs on the shared queue.
//! Figures only: `cargo bench -p cairn-sync --bench bhqueue`.

use cairn_sync::{BhQueue, BhWork};
use criterion::{Criterion, criterion_group, criterion_main};
use std::collections::VecDeque;
use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

fn nop(_: usize) {}

trait Pair: Send + Sync + 'static {
    fn pair(&self, i: usize);
}

impl Pair for BhQueue {
    fn pair(&self, i: usize) {
        let _ = self.enqueue_irqsafe(BhWork::new(nop, i));
        black_box(self.dequeue());
    }
}

/// The queue alone, without the interrupt-flag save/restore that makes it
/// irq-safe (on the host those are calls into the simulated CPU).
struct RawArrayQueue(crossbeam_queue::ArrayQueue<BhWork>);

impl Pair for RawArrayQueue {
    fn pair(&self, i: usize) {
        let _ = self.0.push(BhWork::new(nop, i));
        black_box(self.0.pop());
    }
}

struct MutexQueue(spin::Mutex<VecDeque<BhWork>>);

impl Pair for MutexQueue {
    fn pair(&self, i: usize) {
        self.0.lock().push_back(BhWork::new(nop, i));
        black_box(self.0.lock().pop_front());
    }
}

/// Runs `iters` enqueue+dequeue pairs split over `threads` threads and
/// returns the wall time per pair (times `iters` for criterion).
fn run<Q: Pair>(q: &Arc<Q>, threads: usize, iters: u64) -> Duration {
    let per = (iters as usize).div_ceil(threads);
    let barrier = Arc::new(Barrier::new(threads + 1));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let q = q.clone();
            let b = barrier.clone();
            std::thread::spawn(move || {
                b.wait();
                for i in 0..per {
                    q.pair(i);
                }
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    for h in handles {
        h.join().unwrap();
    }
    start.elapsed()
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("bhqueue enqueue+dequeue");
    for threads in [1usize, 2] {
        let bh = Arc::new(BhQueue::new(1024));
        g.bench_function(format!("bhqueue/{threads}t"), |b| {
            b.iter_custom(|iters| run(&bh, threads, iters))
        });
        let raw = Arc::new(RawArrayQueue(crossbeam_queue::ArrayQueue::new(1024)));
        g.bench_function(format!("arrayqueue-without-irq-hooks/{threads}t"), |b| {
            b.iter_custom(|iters| run(&raw, threads, iters))
        });
        let mq = Arc::new(MutexQueue(spin::Mutex::new(VecDeque::with_capacity(1024))));
        g.bench_function(format!("spin-mutex-vecdeque/{threads}t"), |b| {
            b.iter_custom(|iters| run(&mq, threads, iters))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
