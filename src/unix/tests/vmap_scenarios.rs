//! Named vmap scenarios: the GNU Mach in-transition case (seeds/001), the
//! fault protocol, the work handed back to the caller, and error cases the
//! random model rarely reaches.

use cairn_unix::vmap::*;
use cairn_unix::{PAGE_SIZE, Prot};

#[derive(Clone, Debug, PartialEq, Eq)]
struct File(u32);

impl MapFile for File {
    fn same_file(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

const P: u64 = PAGE_SIZE;
const BASE: u64 = 0x10_0000;

fn space() -> Vmaps<File> {
    Vmaps::new(Layout {
        min: 0x1_0000,
        mmap_top: 0x1000_0000,
        max: 0x2000_0000,
    })
}

fn anon(at: u64, pages: u64, prot: Prot) -> MapRequest<File> {
    MapRequest {
        len: pages * P,
        prot,
        max_prot: Prot::ALL,
        share: Share::Private,
        kind: VmapKind::Anonymous,
        placement: Placement::Fixed(at),
    }
}

fn file(at: u64, pages: u64, f: u32, off_pages: u64, share: Share) -> MapRequest<File> {
    MapRequest {
        kind: VmapKind::File {
            file: File(f),
            offset: off_pages * P,
        },
        share,
        ..anon(at, pages, Prot::RW)
    }
}

fn bounds(v: &Vmaps<File>) -> Vec<(u64, u64)> {
    v.iter().map(|a| (a.start, a.end)).collect()
}

/// seeds/001: a thread works on an area with the map unlocked while
/// another maps and unmaps next to it. The in-transition area must not be
/// extended, coalesced or clipped; once the transition ends, it merges.
#[test]
fn mach_neighbours_never_touch_an_in_transition_area() {
    let mut v = space();
    v.mmap(anon(BASE, 4, Prot::RW)).unwrap();
    let id = v.begin_transition(BASE, 4 * P).unwrap();
    let frozen: Vec<_> = v.iter().cloned().collect();

    // A compatible mapping right after it: would normally extend/merge.
    v.mmap(anon(BASE + 4 * P, 2, Prot::RW)).unwrap();
    // And right before it.
    v.mmap(anon(BASE - 2 * P, 2, Prot::RW)).unwrap();
    assert_eq!(
        bounds(&v),
        vec![
            (BASE - 2 * P, BASE),
            (BASE, BASE + 4 * P),
            (BASE + 4 * P, BASE + 6 * P)
        ]
    );
    // mprotect of the neighbours splits and re-merges them, never it.
    v.mprotect(BASE + 4 * P, P, Prot::READ).unwrap();
    v.mprotect(BASE + 4 * P, P, Prot::RW).unwrap();
    v.munmap(BASE + 5 * P, P).unwrap();
    v.mremap(BASE + 4 * P, P, 3 * P, RemapFlags::default())
        .unwrap();
    let still: Vec<_> = v.iter().filter(|a| a.in_transition()).cloned().collect();
    assert_eq!(still, frozen);
    v.check_invariants().unwrap();

    // Anything that would change it waits, and changes nothing.
    let before: Vec<_> = v.iter().cloned().collect();
    let w = Wait {
        id,
        start: BASE,
        end: BASE + 4 * P,
    };
    assert_eq!(v.munmap(BASE - P, 3 * P).unwrap_err(), VmError::MustWait(w));
    assert_eq!(
        v.mprotect(BASE + P, P, Prot::READ).unwrap_err(),
        VmError::MustWait(w)
    );
    assert_eq!(
        v.mmap(anon(BASE + 3 * P, 2, Prot::READ)).unwrap_err(),
        VmError::MustWait(w)
    );
    let flags = RemapFlags {
        may_move: true,
        fixed: None,
    };
    assert_eq!(
        v.mremap(BASE, P, 8 * P, flags).unwrap_err(),
        VmError::MustWait(w)
    );
    let fixed = RemapFlags {
        may_move: true,
        fixed: Some(BASE + 2 * P),
    };
    assert_eq!(
        v.mremap(BASE - 2 * P, 2 * P, 2 * P, fixed).unwrap_err(),
        VmError::MustWait(w)
    );
    assert_eq!(
        v.begin_transition(BASE + 3 * P, P).unwrap_err(),
        VmError::MustWait(w)
    );
    assert_eq!(v.teardown().unwrap_err(), VmError::MustWait(w));
    assert_eq!(v.iter().cloned().collect::<Vec<_>>(), before);

    // The marker ends it: waiters must be woken, and the map coalesces.
    let ended = v.end_transition(id).unwrap();
    assert_eq!(
        ended,
        Ended {
            start: BASE,
            end: BASE + 4 * P,
            wake: true
        }
    );
    assert_eq!(bounds(&v), vec![(BASE - 2 * P, BASE + 7 * P)]);
    assert_eq!(v.end_transition(id), None);
    v.check_invariants().unwrap();
}

/// The fault protocol: check access, mark the page, (fill with the lock
/// dropped), end, wake the second faulter.
#[test]
fn fault_on_a_page_then_second_fault_waits() {
    let mut v = space();
    v.mmap(file(BASE, 8, 7, 16, Share::Shared)).unwrap();
    let addr = BASE + 3 * P + 0x123;
    let a = v.check_access(addr, Prot::WRITE).unwrap();
    assert_eq!(
        a.file_at(addr).map(|(f, o)| (f.0, o)),
        Some((7, 19 * P + 0x123))
    );
    let page = addr & !(P - 1);
    let id = v.begin_transition(page, P).unwrap();
    // The area was clipped to the page; the rest stays stable.
    assert_eq!(
        bounds(&v),
        vec![(BASE, page), (page, page + P), (page + P, BASE + 8 * P)]
    );
    // Another thread faults on the same page: it must wait.
    assert!(matches!(v.begin_transition(page, P), Err(VmError::MustWait(w)) if w.id == id));
    // A fault elsewhere in the same mapping proceeds.
    let other = v.begin_transition(BASE, P).unwrap();
    assert!(!v.end_transition(other).unwrap().wake);
    // The lookup still answers for the page (with its state).
    assert!(v.lookup(page).unwrap().in_transition());
    let e = v.end_transition(id).unwrap();
    assert!(e.wake);
    assert_eq!(bounds(&v), vec![(BASE, BASE + 8 * P)]);
    assert_eq!(
        v.check_access(addr, Prot::EXEC).unwrap_err(),
        FaultError::Protection
    );
    assert_eq!(
        v.check_access(BASE + 9 * P, Prot::READ).unwrap_err(),
        FaultError::Unmapped
    );
}

#[test]
fn munmap_hands_back_file_pieces_for_writeback() {
    let mut v = space();
    v.mmap(file(BASE, 6, 1, 10, Share::Shared)).unwrap();
    v.mmap(file(BASE + 6 * P, 2, 2, 0, Share::Private)).unwrap();
    let gone = v.munmap(BASE + 2 * P, 5 * P).unwrap();
    assert_eq!(gone.len(), 2);
    assert_eq!((gone[0].start, gone[0].end), (BASE + 2 * P, BASE + 6 * P));
    assert_eq!(
        gone[0].kind,
        VmapKind::File {
            file: File(1),
            offset: 12 * P
        }
    );
    assert!(gone[0].needs_writeback());
    assert_eq!(
        gone[1].kind,
        VmapKind::File {
            file: File(2),
            offset: 0
        }
    );
    assert!(!gone[1].needs_writeback());
    // What is left keeps the right offsets.
    let left: Vec<_> = v.iter().map(|a| (a.start, a.kind.clone())).collect();
    assert_eq!(
        left,
        vec![
            (
                BASE,
                VmapKind::File {
                    file: File(1),
                    offset: 10 * P
                }
            ),
            (
                BASE + 7 * P,
                VmapKind::File {
                    file: File(2),
                    offset: P
                }
            ),
        ]
    );
    // msync over a hole is ENOMEM; over the shared part returns it.
    assert_eq!(v.msync(BASE, 4 * P).unwrap_err(), VmError::NoMemory);
    let s = v.msync(BASE + P, P).unwrap();
    assert_eq!(
        s[0].kind,
        VmapKind::File {
            file: File(1),
            offset: 11 * P
        }
    );
    assert!(
        v.msync(BASE + 7 * P, P).unwrap().is_empty(),
        "private mappings are not written back"
    );
}

#[test]
fn file_mappings_merge_only_when_contiguous() {
    let mut v = space();
    v.mmap(file(BASE, 2, 1, 0, Share::Shared)).unwrap();
    v.mmap(file(BASE + 2 * P, 2, 1, 2, Share::Shared)).unwrap();
    assert_eq!(v.count(), 1);
    v.mmap(file(BASE + 4 * P, 2, 1, 7, Share::Shared)).unwrap();
    v.mmap(file(BASE + 6 * P, 2, 2, 9, Share::Shared)).unwrap();
    v.mmap(file(BASE + 8 * P, 2, 2, 11, Share::Private))
        .unwrap();
    assert_eq!(v.count(), 4);
    v.check_invariants().unwrap();
}

#[test]
fn mprotect_respects_max_prot_and_reports_changes() {
    let mut v = space();
    let mut ro_shared = file(BASE, 4, 3, 0, Share::Shared);
    ro_shared.prot = Prot::READ;
    ro_shared.max_prot = Prot::READ | Prot::EXEC;
    v.mmap(ro_shared.clone()).unwrap();
    assert_eq!(v.mprotect(BASE, P, Prot::RW).unwrap_err(), VmError::Access);
    let ch = v
        .mprotect(BASE + P, 2 * P, Prot::READ | Prot::EXEC)
        .unwrap();
    assert_eq!(ch.len(), 1);
    assert_eq!(
        (ch[0].start, ch[0].end, ch[0].old, ch[0].file_backed),
        (BASE + P, BASE + 3 * P, Prot::READ, true)
    );
    assert_eq!(v.count(), 3);
    assert_eq!(
        v.mprotect(BASE, 5 * P, Prot::READ).unwrap_err(),
        VmError::NoMemory
    );
    v.mprotect(BASE, 4 * P, Prot::READ).unwrap();
    assert_eq!(v.count(), 1);
    // prot beyond max at mmap time.
    ro_shared.prot = Prot::RW;
    ro_shared.placement = Placement::Anywhere;
    assert_eq!(v.mmap(ro_shared).unwrap_err(), VmError::Access);
}

#[test]
fn mremap_grow_move_and_fixed() {
    let mut v = space();
    v.mmap(file(BASE, 2, 5, 4, Share::Private)).unwrap();
    v.mmap(anon(BASE + 3 * P, 1, Prot::READ)).unwrap();
    // Grows in place into the one free page.
    let r = v.mremap(BASE, 2 * P, 3 * P, RemapFlags::default()).unwrap();
    assert_eq!((r.addr, r.moved), (BASE, None));
    // No more room in place and may not move.
    assert_eq!(
        v.mremap(BASE, 3 * P, 5 * P, RemapFlags::default())
            .unwrap_err(),
        VmError::NoMemory
    );
    // Moves with MAYMOVE, keeping its file offset.
    let r = v
        .mremap(
            BASE,
            3 * P,
            5 * P,
            RemapFlags {
                may_move: true,
                fixed: None,
            },
        )
        .unwrap();
    assert_ne!(r.addr, BASE);
    assert_eq!(
        r.moved,
        Some(Move {
            from: BASE,
            to: r.addr,
            len: 3 * P
        })
    );
    let moved = v.lookup(r.addr).unwrap();
    assert_eq!(
        (moved.len(), moved.kind.clone()),
        (
            5 * P,
            VmapKind::File {
                file: File(5),
                offset: 4 * P
            }
        )
    );
    assert!(v.lookup(BASE).is_none());
    // Fixed onto the anonymous page: it is replaced and handed back.
    let to = BASE + 3 * P;
    let r2 = v
        .mremap(
            r.addr + P,
            2 * P,
            P,
            RemapFlags {
                may_move: true,
                fixed: Some(to),
            },
        )
        .unwrap();
    assert_eq!(r2.addr, to);
    assert_eq!(
        r2.moved,
        Some(Move {
            from: r.addr + P,
            to,
            len: P
        })
    );
    assert_eq!(r2.unmapped.len(), 2);
    assert!(r2.unmapped.windows(2).all(|w| w[0].start < w[1].start));
    assert_eq!(
        v.lookup(to).unwrap().kind,
        VmapKind::File {
            file: File(5),
            offset: 5 * P
        }
    );
    // Errors.
    assert_eq!(
        v.mremap(BASE + 10 * P, P, P, RemapFlags::default())
            .unwrap_err(),
        VmError::Fault
    );
    assert_eq!(
        v.mremap(to, 0, P, RemapFlags::default()).unwrap_err(),
        VmError::Invalid
    );
    assert_eq!(
        v.mremap(
            to,
            P,
            P,
            RemapFlags {
                may_move: false,
                fixed: Some(BASE)
            }
        )
        .unwrap_err(),
        VmError::Invalid
    );
    assert_eq!(
        v.mremap(
            to,
            P,
            2 * P,
            RemapFlags {
                may_move: true,
                fixed: Some(to)
            }
        )
        .unwrap_err(),
        VmError::Invalid
    );
    v.check_invariants().unwrap();
}

#[test]
fn placement_rules() {
    let mut v = space();
    let top = v.layout().mmap_top;
    let mut req = anon(0, 2, Prot::RW);
    req.placement = Placement::Anywhere;
    let a = v.mmap(req.clone()).unwrap().addr;
    assert_eq!(a, top - 2 * P, "top-down below mmap_top");
    req.placement = Placement::Hint(BASE + 5);
    assert_eq!(
        v.mmap(req.clone()).unwrap().addr,
        BASE + P,
        "hint rounded up and used when free"
    );
    req.placement = Placement::Hint(BASE + P);
    assert_ne!(
        v.mmap(req.clone()).unwrap().addr,
        BASE + P,
        "busy hint falls back"
    );
    req.placement = Placement::FixedNoReplace(BASE);
    assert_eq!(v.mmap(req.clone()).unwrap_err(), VmError::Exists);
    req.placement = Placement::Fixed(BASE + 1);
    assert_eq!(v.mmap(req.clone()).unwrap_err(), VmError::Invalid);
    req.placement = Placement::Fixed(0x1000);
    assert_eq!(v.mmap(req.clone()).unwrap_err(), VmError::Permission);
    req.placement = Placement::Fixed(0x2000_0000 - P);
    assert_eq!(v.mmap(req.clone()).unwrap_err(), VmError::NoMemory);
    req.len = 0;
    assert_eq!(v.mmap(req.clone()).unwrap_err(), VmError::Invalid);
    req.len = u64::MAX;
    req.placement = Placement::Anywhere;
    assert_eq!(v.mmap(req).unwrap_err(), VmError::NoMemory);
    let mut odd = file(BASE, 1, 1, 0, Share::Shared);
    odd.kind = VmapKind::File {
        file: File(1),
        offset: 100,
    };
    assert_eq!(v.mmap(odd.clone()).unwrap_err(), VmError::Invalid);
    odd.kind = VmapKind::File {
        file: File(1),
        offset: !(P - 1),
    };
    assert_eq!(v.mmap(odd).unwrap_err(), VmError::Overflow);
    assert_eq!(
        VmError::Overflow.errno(),
        Some(cairn_unix::Errno::EOVERFLOW)
    );
    assert_eq!(
        VmError::MustWait(Wait {
            id: v.begin_transition(BASE + P, P).unwrap(),
            start: 0,
            end: 0
        })
        .errno(),
        None
    );
}

/// A program that splits one reservation page by page (alternating
/// protections, so nothing merges) stops at MAX_MAP_COUNT areas with
/// ENOMEM, as Linux at vm.max_map_count, and the failed call changes
/// nothing; unmapping a piece in the middle of an area is refused too
/// when it would need one more; mmap of a new area likewise.
#[test]
fn area_count_is_capped_like_max_map_count() {
    let mut v: Vmaps<File> = Vmaps::new(Layout {
        min: 0x1_0000,
        mmap_top: 0x40_0000_0000,
        max: 0x80_0000_0000,
    });
    let pages = 2 * MAX_MAP_COUNT as u64 + 8;
    v.mmap(anon(BASE, pages, Prot::NONE)).unwrap();
    let mut refused = None;
    for k in (0..pages).step_by(2) {
        if let Err(e) = v.mprotect(BASE + k * P, P, Prot::READ) {
            refused = Some((k, e.errno()));
            break;
        }
    }
    let (k, errno) = refused.expect("the area count was never capped");
    assert_eq!(errno, Some(cairn_unix::errno::Errno::ENOMEM));
    assert!(v.count() <= MAX_MAP_COUNT, "{} areas", v.count());
    assert!(
        v.count() >= MAX_MAP_COUNT - 2,
        "capped early: {} areas",
        v.count()
    );
    let before = bounds(&v);
    // The refused call changed nothing; a hole in the middle of the last
    // (large) area, or a new area, are refused the same way.
    assert_eq!(bounds(&v), before);
    let last = BASE + (k + 4) * P;
    assert_eq!(
        v.munmap(last, P).map(|_| ()).unwrap_err().errno(),
        Some(cairn_unix::errno::Errno::ENOMEM)
    );
    assert_eq!(bounds(&v), before);
    let mut req = anon(0, 1, Prot::RW);
    req.placement = Placement::Anywhere;
    assert_eq!(
        v.mmap(req).map(|_| ()).unwrap_err().errno(),
        Some(cairn_unix::errno::Errno::ENOMEM)
    );
    v.check_invariants().unwrap();
}
