//! Futex table: wake counts, bitsets, FIFO order, requeue and
//! cancellation, checked against a model of one global FIFO of waiters.

use cairn_unix::Errno;
use cairn_unix::futex::{FutexTable, MATCH_ANY, WaitId};
use proptest::prelude::*;

#[test]
fn wait_checks_value_and_wake_is_fifo() {
    let mut t: FutexTable<&str> = FutexTable::new();
    assert_eq!(
        t.wait(0x1000, 1, 2, MATCH_ANY, "x").unwrap_err(),
        Errno::EAGAIN
    );
    assert_eq!(
        t.wait(0x1001, 1, 1, MATCH_ANY, "x").unwrap_err(),
        Errno::EINVAL
    );
    assert_eq!(t.wait(0x1000, 1, 1, 0, "x").unwrap_err(), Errno::EINVAL);
    assert!(t.is_empty());
    t.wait(0x1000, 0, 0, MATCH_ANY, "a").unwrap();
    t.wait(0x1000, 0, 0, MATCH_ANY, "b").unwrap();
    t.wait(0x1000, 0, 0, MATCH_ANY, "c").unwrap();
    assert_eq!(t.wake(0x1000, 2, MATCH_ANY).unwrap(), vec!["a", "b"]);
    // n <= 0 wakes one, like Linux.
    assert_eq!(t.wake(0x1000, 0, MATCH_ANY).unwrap(), vec!["c"]);
    assert_eq!(t.wake(0x1000, 5, MATCH_ANY).unwrap(), Vec::<&str>::new());
}

#[test]
fn bitsets_select_waiters() {
    let mut t: FutexTable<u8> = FutexTable::new();
    t.wait(8, 0, 0, 0b01, 1).unwrap();
    t.wait(8, 0, 0, 0b10, 2).unwrap();
    t.wait(8, 0, 0, 0b11, 3).unwrap();
    assert_eq!(t.wake(8, 10, 0b10).unwrap(), vec![2, 3]);
    assert_eq!(t.wake(8, 10, 0).unwrap_err(), Errno::EINVAL);
    assert_eq!(t.waiters(8), 1);
}

#[test]
fn cancel_races_with_wake() {
    let mut t: FutexTable<u8> = FutexTable::new();
    let a = t.wait(8, 0, 0, MATCH_ANY, 1).unwrap();
    let b = t.wait(8, 0, 0, MATCH_ANY, 2).unwrap();
    assert_eq!(t.wake(8, 1, MATCH_ANY).unwrap(), vec![1]);
    // The wake won: the timed-out waiter reports success.
    assert_eq!(t.cancel(a), None);
    // Still queued: really timed out.
    assert_eq!(t.cancel(b), Some(2));
    assert!(t.is_empty());
}

#[test]
fn cmp_requeue_moves_in_order() {
    let mut t: FutexTable<u8> = FutexTable::new();
    for i in 0..5 {
        t.wait(8, 0, 0, MATCH_ANY, i).unwrap();
    }
    t.wait(16, 0, 0, MATCH_ANY, 9).unwrap();
    assert_eq!(t.cmp_requeue(8, 16, 1, 2, 5, 6).unwrap_err(), Errno::EAGAIN);
    assert_eq!(
        t.cmp_requeue(8, 16, -1, 2, 5, 5).unwrap_err(),
        Errno::EINVAL
    );
    let r = t.cmp_requeue(8, 16, 1, 2, 5, 5).unwrap();
    assert_eq!(r.woken, vec![0]);
    assert_eq!(r.requeued, 2);
    assert_eq!(r.total(), 3);
    assert_eq!((t.waiters(8), t.waiters(16)), (2, 3));
    // Requeued waiters go behind the ones already there.
    assert_eq!(t.wake(16, 10, MATCH_ANY).unwrap(), vec![9, 1, 2]);
    assert_eq!(t.take_all(), vec![3, 4]);
}

#[derive(Clone, Debug)]
enum Op {
    Wait(u8, u32),
    Wake(u8, i32, u32),
    Requeue(u8, u8, i32, i32),
    Cancel(usize),
}

fn op() -> impl Strategy<Value = Op> {
    let bits = prop_oneof![Just(MATCH_ANY), 1u32..8];
    prop_oneof![
        3 => (0..3u8, bits.clone()).prop_map(|(a, b)| Op::Wait(a, b)),
        2 => (0..3u8, -1i32..4, bits).prop_map(|(a, n, b)| Op::Wake(a, n, b)),
        1 => (0..3u8, 0..3u8, -1i32..3, -1i32..3).prop_map(|(a, b, w, r)| Op::Requeue(a, b, w, r)),
        1 => (0..20usize).prop_map(Op::Cancel),
    ]
}

proptest! {
    #[test]
    fn matches_model(ops in proptest::collection::vec(op(), 1..120)) {
        let mut t: FutexTable<u32> = FutexTable::new();
        // Global arrival order; each waiter: (handle, addr, bitset, id).
        let mut m: Vec<(u32, u8, u32, WaitId)> = Vec::new();
        let mut ids: Vec<(WaitId, u32)> = Vec::new();
        let mut next = 0u32;
        let addr = |a: u8| 0x1000 + u64::from(a) * 4;
        for op in ops {
            match op {
                Op::Wait(a, bits) => {
                    next += 1;
                    let id = t.wait(addr(a), 7, 7, bits, next).unwrap();
                    m.push((next, a, bits, id));
                    ids.push((id, next));
                }
                Op::Wake(a, n, bits) => {
                    let want = usize::try_from(n).unwrap_or(0).max(1);
                    let mut expect = Vec::new();
                    m.retain(|w| {
                        if w.1 == a && w.2 & bits != 0 && expect.len() < want {
                            expect.push(w.0);
                            false
                        } else {
                            true
                        }
                    });
                    prop_assert_eq!(t.wake(addr(a), n, bits).unwrap(), expect);
                }
                Op::Requeue(a, b, nw, nr) => {
                    let r = t.requeue(addr(a), addr(b), nw, nr);
                    if nw < 0 || nr < 0 {
                        prop_assert_eq!(r.unwrap_err(), Errno::EINVAL);
                        continue;
                    }
                    let r = r.unwrap();
                    // Queue of `a` in order; wake the first nw, move the next nr.
                    let q: Vec<usize> = (0..m.len()).filter(|&i| m[i].1 == a).collect();
                    let woken: Vec<u32> = q.iter().take(nw as usize).map(|&i| m[i].0).collect();
                    let moved: Vec<usize> = if a == b { vec![] } else { q.iter().skip(nw as usize).take(nr as usize).copied().collect() };
                    prop_assert_eq!(&r.woken, &woken);
                    prop_assert_eq!(r.requeued, moved.len());
                    // Moved ones join b's queue at its tail: move them to
                    // the end of the global order (they are behind every
                    // current waiter of b).
                    let mut tail = Vec::new();
                    for &i in &moved {
                        let mut w = m[i];
                        w.1 = b;
                        tail.push(w);
                    }
                    let gone: Vec<u32> = woken.iter().copied().chain(tail.iter().map(|w| w.0)).collect();
                    m.retain(|w| !gone.contains(&w.0));
                    m.extend(tail);
                }
                Op::Cancel(i) => {
                    let Some(&(id, h)) = ids.get(i) else { continue };
                    let queued = m.iter().position(|w| w.3 == id);
                    let r = t.cancel(id);
                    match queued {
                        Some(p) => { prop_assert_eq!(r, Some(h)); m.remove(p); }
                        None => prop_assert_eq!(r, None),
                    }
                }
            }
            prop_assert_eq!(t.len(), m.len());
            for a in 0..3u8 {
                prop_assert_eq!(t.waiters(addr(a)), m.iter().filter(|w| w.1 == a).count());
            }
        }
    }
}
