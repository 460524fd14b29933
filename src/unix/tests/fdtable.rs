//! File descriptor table: unit cases for each call and a model check of
//! random sequences (lowest-free allocation, dup semantics, cloexec).

use std::collections::BTreeMap;

use cairn_unix::Errno;
use cairn_unix::fdtable::FdTable;
use proptest::prelude::*;

#[test]
fn lowest_free_and_limits() {
    let mut t: FdTable<&str> = FdTable::new(4);
    assert_eq!(t.alloc("a", false).unwrap(), 0);
    assert_eq!(t.alloc("b", false).unwrap(), 1);
    assert_eq!(t.alloc("c", true).unwrap(), 2);
    assert_eq!(t.close(1).unwrap(), "b");
    assert_eq!(t.alloc("d", false).unwrap(), 1);
    assert_eq!(t.alloc("e", false).unwrap(), 3);
    let (e, back) = t.alloc("f", false).unwrap_err();
    assert_eq!((e, back), (Errno::EMFILE, "f"));
    assert_eq!(t.close(7).unwrap_err(), Errno::EBADF);
    assert_eq!(t.close(-1).unwrap_err(), Errno::EBADF);
    assert_eq!(t.get(2).copied(), Ok("c"));
    assert!(t.cloexec(2).unwrap());
    assert_eq!(t.count(), 4);
    // Raising the limit lets allocation continue.
    t.set_limit(8).unwrap();
    assert_eq!(t.alloc("g", false).unwrap(), 4);
    assert_eq!(t.set_limit(u64::MAX).unwrap_err(), Errno::EPERM);
}

#[test]
fn dup_family() {
    let mut t: FdTable<u32> = FdTable::new(16);
    t.alloc(10, true).unwrap();
    t.alloc(11, false).unwrap();
    assert_eq!(t.dup(0).unwrap(), 2);
    assert!(!t.cloexec(2).unwrap(), "dup clears FD_CLOEXEC");
    assert_eq!(t.dup(9).unwrap_err(), Errno::EBADF);
    // dup2 onto an open fd hands back the replaced file.
    assert_eq!(t.dup2(0, 1).unwrap(), (1, Some(11)));
    assert_eq!(t.get(1).copied(), Ok(10));
    // dup2 same fd: no-op if open, EBADF if not.
    assert_eq!(t.dup2(1, 1).unwrap(), (1, None));
    assert_eq!(t.dup2(5, 5).unwrap_err(), Errno::EBADF);
    // dup3: EINVAL on the same fd, cloexec as asked.
    assert_eq!(t.dup3(1, 1, false).unwrap_err(), Errno::EINVAL);
    assert_eq!(t.dup3(1, 7, true).unwrap(), (7, None));
    assert!(t.cloexec(7).unwrap());
    assert_eq!(t.dup3(1, 16, false).unwrap_err(), Errno::EBADF);
    assert_eq!(t.dup3(1, -2, false).unwrap_err(), Errno::EBADF);
    // F_DUPFD: lowest ≥ min.
    assert_eq!(t.dup_from(0, 3, false).unwrap(), 3);
    assert_eq!(t.dup_from(0, 3, true).unwrap(), 4);
    assert_eq!(t.dup_from(0, 16, false).unwrap_err(), Errno::EINVAL);
    assert_eq!(t.dup_from(0, -1, false).unwrap_err(), Errno::EINVAL);
    // exec closes the cloexec ones.
    let closed: Vec<i32> = t.close_on_exec().into_iter().map(|(fd, _)| fd).collect();
    assert_eq!(closed, vec![0, 4, 7]);
    let all: Vec<i32> = t.take_all().into_iter().map(|(fd, _)| fd).collect();
    assert_eq!(all, vec![1, 2, 3]);
    assert_eq!(t.count(), 0);
    assert_eq!(t.alloc(1, false).unwrap(), 0);
}

#[derive(Clone, Debug)]
enum Op {
    Alloc(bool),
    Close(i32),
    Dup(i32),
    Dup2(i32, i32),
    Dup3(i32, i32, bool),
    DupFrom(i32, i32),
    SetCloexec(i32, bool),
}

fn op() -> impl Strategy<Value = Op> {
    let fd = -1i32..12;
    prop_oneof![
        any::<bool>().prop_map(Op::Alloc),
        fd.clone().prop_map(Op::Close),
        fd.clone().prop_map(Op::Dup),
        (fd.clone(), fd.clone()).prop_map(|(a, b)| Op::Dup2(a, b)),
        (fd.clone(), fd.clone(), any::<bool>()).prop_map(|(a, b, c)| Op::Dup3(a, b, c)),
        (fd.clone(), fd.clone()).prop_map(|(a, b)| Op::DupFrom(a, b)),
        (fd, any::<bool>()).prop_map(|(a, b)| Op::SetCloexec(a, b)),
    ]
}

const LIMIT: i32 = 8;

proptest! {
    #[test]
    fn matches_model(ops in proptest::collection::vec(op(), 1..100)) {
        let mut t: FdTable<u32> = FdTable::new(LIMIT as usize);
        // fd -> (file, cloexec)
        let mut m: BTreeMap<i32, (u32, bool)> = BTreeMap::new();
        let mut next_file = 0u32;
        let lowest = |m: &BTreeMap<i32, (u32, bool)>, min: i32| (min..LIMIT).find(|fd| !m.contains_key(fd));
        for op in ops {
            match op {
                Op::Alloc(c) => {
                    next_file += 1;
                    let r = t.alloc(next_file, c).map_err(|(e, _)| e);
                    match lowest(&m, 0) {
                        Some(fd) => { prop_assert_eq!(r, Ok(fd)); m.insert(fd, (next_file, c)); }
                        None => prop_assert_eq!(r, Err(Errno::EMFILE)),
                    }
                }
                Op::Close(fd) => {
                    let r = t.close(fd);
                    prop_assert_eq!(r, m.remove(&fd).map(|x| x.0).ok_or(Errno::EBADF));
                }
                Op::Dup(fd) => {
                    let r = t.dup(fd);
                    match (m.get(&fd).copied(), lowest(&m, 0)) {
                        (None, _) => prop_assert_eq!(r, Err(Errno::EBADF)),
                        (Some(_), None) => prop_assert_eq!(r, Err(Errno::EMFILE)),
                        (Some((f, _)), Some(n)) => { prop_assert_eq!(r, Ok(n)); m.insert(n, (f, false)); }
                    }
                }
                Op::Dup2(a, b) => {
                    let r = t.dup2(a, b);
                    match m.get(&a).copied() {
                        None => prop_assert_eq!(r, Err(Errno::EBADF)),
                        Some(_) if a == b => prop_assert_eq!(r, Ok((b, None))),
                        Some(_) if !(0..LIMIT).contains(&b) => prop_assert_eq!(r, Err(Errno::EBADF)),
                        Some((f, _)) => {
                            let old = m.insert(b, (f, false)).map(|x| x.0);
                            prop_assert_eq!(r, Ok((b, old)));
                        }
                    }
                }
                Op::Dup3(a, b, c) => {
                    let r = t.dup3(a, b, c);
                    match m.get(&a).copied() {
                        _ if a == b => prop_assert_eq!(r, Err(Errno::EINVAL)),
                        None => prop_assert_eq!(r, Err(Errno::EBADF)),
                        Some(_) if !(0..LIMIT).contains(&b) => prop_assert_eq!(r, Err(Errno::EBADF)),
                        Some((f, _)) => {
                            let old = m.insert(b, (f, c)).map(|x| x.0);
                            prop_assert_eq!(r, Ok((b, old)));
                        }
                    }
                }
                Op::DupFrom(a, min) => {
                    let r = t.dup_from(a, min, true);
                    match m.get(&a).copied() {
                        None => prop_assert_eq!(r, Err(Errno::EBADF)),
                        Some(_) if !(0..LIMIT).contains(&min) => prop_assert_eq!(r, Err(Errno::EINVAL)),
                        Some((f, _)) => match lowest(&m, min) {
                            None => prop_assert_eq!(r, Err(Errno::EMFILE)),
                            Some(n) => { prop_assert_eq!(r, Ok(n)); m.insert(n, (f, true)); }
                        },
                    }
                }
                Op::SetCloexec(fd, c) => {
                    let r = t.set_cloexec(fd, c);
                    match m.get_mut(&fd) {
                        None => prop_assert_eq!(r, Err(Errno::EBADF)),
                        Some(e) => { prop_assert_eq!(r, Ok(())); e.1 = c; }
                    }
                }
            }
            let seen: BTreeMap<i32, (u32, bool)> = t.iter().map(|(fd, &f)| (fd, (f, t.cloexec(fd).unwrap()))).collect();
            prop_assert_eq!(&seen, &m);
            prop_assert_eq!(t.count(), m.len());
        }
    }
}
