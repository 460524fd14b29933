//! Record locks against a byte-by-byte model, and the POSIX rules a
//! database's VFS depends on: ranges split and merge, owners never conflict
//! with themselves, releasing one owner leaves the others, deadlocks are
//! refused.

use cairn_unix::Errno;
use cairn_unix::reclock::{
    FileLocks, Lock, LockKind, LockTable, Owner, SetError, TO_EOF, flock_range,
};
use proptest::prelude::*;

const P: Owner = Owner::Process(1);
const A: Owner = Owner::Description(10);
const B: Owner = Owner::Description(11);
const R: LockKind = LockKind::Read;
const W: LockKind = LockKind::Write;

/// Bytes 0..N of the model, and byte N standing for everything past it
/// (only ranges running to `TO_EOF` reach it).
const N: u64 = 48;

/// The model bytes of `s..e`.
fn span(s: u64, e: u64) -> core::ops::Range<u64> {
    s..if e == TO_EOF { N + 1 } else { e }
}

type Model = Vec<Vec<(Owner, LockKind)>>;

fn model_apply(m: &mut Model, owner: Owner, kind: Option<LockKind>, s: u64, e: u64) {
    for b in span(s, e) {
        let v = &mut m[b as usize];
        v.retain(|(o, _)| *o != owner);
        if let Some(k) = kind {
            v.push((owner, k));
        }
    }
}

fn expand(f: &FileLocks) -> Model {
    let mut m: Model = vec![Vec::new(); N as usize + 1];
    for l in f.locks() {
        for b in span(l.start, l.end) {
            m[b as usize].push((l.owner, l.kind));
        }
    }
    for v in &mut m {
        v.sort();
    }
    m
}

fn check_canonical(f: &FileLocks) {
    let ls = f.locks();
    for (i, a) in ls.iter().enumerate() {
        assert!(a.start < a.end, "empty lock {a:?}");
        for b in &ls[i + 1..] {
            if a.owner == b.owner {
                assert!(
                    a.end <= b.start || b.end <= a.start,
                    "one owner's locks overlap: {a:?} {b:?}"
                );
                if a.kind == b.kind {
                    assert!(
                        a.end != b.start && b.end != a.start,
                        "touching locks not merged: {a:?} {b:?}"
                    );
                }
            }
        }
    }
}

fn owner() -> impl Strategy<Value = Owner> {
    prop_oneof![Just(P), Just(A), Just(B)]
}

fn op() -> impl Strategy<Value = (Owner, Option<LockKind>, u64, u64)> {
    (
        owner(),
        prop_oneof![Just(None), Just(Some(R)), Just(Some(W))],
        0..N,
        1..N + 4,
    )
        .prop_map(|(o, k, s, len)| {
            let e = if s + len > N { TO_EOF } else { s + len };
            (o, k, s, e)
        })
}

proptest! {
    #[test]
    fn apply_matches_the_byte_model(ops in proptest::collection::vec(op(), 1..40)) {
        let mut f = FileLocks::default();
        let mut m: Model = vec![Vec::new(); N as usize + 1];
        for (o, k, s, e) in ops {
            // Only apply what a table would grant (no conflicting owner).
            if let Some(kind) = k
                && f.conflict(o, kind, s, e).is_some()
            {
                let blocked = span(s, e).any(|b| {
                    m[b as usize]
                        .iter()
                        .any(|(x, xk)| *x != o && (*xk == W || kind == W))
                });
                prop_assert!(blocked, "conflict reported where the model has none");
                continue;
            }
            if let Some(kind) = k {
                let model_conflict = span(s, e).any(|b| {
                    m[b as usize]
                        .iter()
                        .any(|(x, xk)| *x != o && (*xk == W || kind == W))
                });
                prop_assert!(!model_conflict, "a conflict the table missed");
            }
            f.apply(o, k, s, e);
            model_apply(&mut m, o, k, s, e);
            for v in &mut m {
                v.sort();
            }
            prop_assert_eq!(expand(&f), m.clone());
            check_canonical(&f);
        }
    }
}

#[test]
fn unlock_in_the_middle_splits_and_relock_merges() {
    let mut f = FileLocks::default();
    f.apply(P, Some(W), 0, 100);
    f.apply(P, None, 40, 60);
    assert_eq!(
        f.locks(),
        [
            Lock {
                owner: P,
                kind: W,
                start: 0,
                end: 40
            },
            Lock {
                owner: P,
                kind: W,
                start: 60,
                end: 100
            },
        ]
    );
    f.apply(P, Some(W), 40, 60);
    assert_eq!(
        f.locks(),
        [Lock {
            owner: P,
            kind: W,
            start: 0,
            end: 100
        }]
    );
    // A read lock inside a write lock of the same owner converts that part.
    f.apply(P, Some(R), 10, 20);
    assert_eq!(f.locks().len(), 3);
    assert_eq!(
        f.locks()[1],
        Lock {
            owner: P,
            kind: R,
            start: 10,
            end: 20
        }
    );
}

#[test]
fn owners_conflict_only_with_others_and_only_for_writes() {
    let mut t: LockTable<u32> = LockTable::new();
    t.set(1, A, Some(R), 0, 10).unwrap();
    // Read locks share; the owner itself never conflicts.
    t.set(1, B, Some(R), 5, 15).unwrap();
    t.set(1, A, Some(W), 0, 5).unwrap();
    assert_eq!(
        t.set(1, B, Some(W), 0, 1),
        Err(SetError::Blocked(Lock {
            owner: A,
            kind: W,
            start: 0,
            end: 5
        }))
    );
    // F_GETLK reports the first conflicting lock; another file is free.
    assert_eq!(t.test(1, P, W, 0, TO_EOF).map(|l| l.owner), Some(A));
    assert_eq!(t.test(2, P, W, 0, TO_EOF), None);
    // Unlocking is never blocked, even over another owner's range.
    t.set(1, B, None, 0, TO_EOF).unwrap();
    assert!(t.locks(1).iter().all(|l| l.owner == A));
}

#[test]
fn releasing_one_owner_keeps_the_others() {
    let mut t: LockTable<u32> = LockTable::new();
    t.set(1, P, Some(R), 0, 100).unwrap();
    t.set(1, A, Some(R), 50, 60).unwrap();
    t.set(2, P, Some(W), 0, TO_EOF).unwrap();
    // Closing a descriptor of file 1 drops the process's locks there only.
    assert!(t.release_file(1, P));
    assert_eq!(
        t.locks(1),
        [Lock {
            owner: A,
            kind: R,
            start: 50,
            end: 60
        }]
    );
    assert_eq!(t.locks(2).len(), 1);
    assert!(t.release_owner(A));
    assert!(!t.release_owner(A));
    assert_eq!(t.file_count(), 1);
}

#[test]
fn a_wait_cycle_is_refused_with_edeadlk() {
    let mut t: LockTable<u32> = LockTable::new();
    let (p1, p2, p3) = (Owner::Process(1), Owner::Process(2), Owner::Process(3));
    t.set(1, p1, Some(W), 0, 10).unwrap();
    t.set(1, p2, Some(W), 10, 20).unwrap();
    t.set(2, p3, Some(W), 0, 1).unwrap();
    // p1 waits for p2's range.
    let w1 = t.begin_wait(1, p1, W, 10, 11).unwrap();
    // p3 may wait for p1 (no cycle yet)...
    let w3 = t.begin_wait(1, p3, W, 0, 1).unwrap();
    // ...but p2 waiting for p3 closes p2 -> p3 -> p1 -> p2.
    assert_eq!(t.begin_wait(2, p2, W, 0, 1), Err(Errno::EDEADLK));
    assert_eq!(t.waiting_count(), 2);
    t.end_wait(w3);
    // Without p3's wait the chain is broken.
    let w2 = t.begin_wait(2, p2, W, 0, 1).unwrap();
    t.end_wait(w1);
    t.end_wait(w2);
    assert_eq!(t.waiting_count(), 0);
    // Two descriptions of one process deadlock the same way.
    t.set(3, A, Some(W), 0, 1).unwrap();
    t.set(3, B, Some(W), 1, 2).unwrap();
    let wa = t.begin_wait(3, A, W, 1, 2).unwrap();
    assert_eq!(t.begin_wait(3, B, W, 0, 1), Err(Errno::EDEADLK));
    t.end_wait(wa);
}

#[test]
fn flock_ranges() {
    assert_eq!(flock_range(0, 0), Ok((0, TO_EOF)));
    assert_eq!(flock_range(10, 5), Ok((10, 15)));
    assert_eq!(flock_range(10, -5), Ok((5, 10)));
    assert_eq!(flock_range(3, -5), Err(Errno::EINVAL));
    assert_eq!(flock_range(-1, 1), Err(Errno::EINVAL));
    assert_eq!(flock_range(i64::MAX, 1), Err(Errno::EOVERFLOW));
}
