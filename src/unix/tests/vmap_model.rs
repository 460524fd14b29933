//! Property test: random sequences of mmap/munmap/mprotect/mremap and
//! transition begin/end against a page-granular model of the address
//! space. After every operation:
//!
//! * the result (address, error, MustWait id, unmapped pieces, reprotect
//!   ranges, moves) is exactly what the model predicts;
//! * the map expands to exactly the model's pages (mapped?, prot, max
//!   prot, sharing, backing + offset, transition);
//! * `check_invariants` holds (sorted, non-overlapping, maximally merged,
//!   transitions covered by their areas);
//! * every area that was in transition is still there, byte for byte
//!   (no merge, split, clip or change touched it).

use std::collections::BTreeMap;

use cairn_unix::vmap::{
    FaultError, Layout, MapFile, MapRequest, Placement, RemapFlags, Share, TransitionId, VmError,
    Vmap, VmapKind, VmapState, Vmaps, Wait,
};
use cairn_unix::{PAGE_SIZE, Prot};
use proptest::prelude::*;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

// Outcome counters (per test thread), to check that the generator
// reaches every path.
thread_local! {
    static OK_MMAP: AtomicUsize = const { AtomicUsize::new(0) };
    static OK_REPLACE: AtomicUsize = const { AtomicUsize::new(0) };
    static OK_MUNMAP_SPLIT: AtomicUsize = const { AtomicUsize::new(0) };
    static OK_MPROTECT: AtomicUsize = const { AtomicUsize::new(0) };
    static OK_GROW: AtomicUsize = const { AtomicUsize::new(0) };
    static OK_MOVE: AtomicUsize = const { AtomicUsize::new(0) };
    static MUST_WAIT: AtomicUsize = const { AtomicUsize::new(0) };
    static WOKEN: AtomicUsize = const { AtomicUsize::new(0) };
    static NO_MEMORY: AtomicUsize = const { AtomicUsize::new(0) };
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct TestFile(u8);

impl MapFile for TestFile {
    fn same_file(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

const MIN: u64 = 0x10000;
const PAGES: u64 = 48;
const MAX: u64 = MIN + PAGES * PAGE_SIZE;
const TOP: u64 = MIN + 36 * PAGE_SIZE;

fn layout() -> Layout {
    Layout {
        min: MIN,
        mmap_top: TOP,
        max: MAX,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Page {
    prot: Prot,
    max: Prot,
    share: Share,
    file: Option<(u8, u64)>,
    trans: Option<TransitionId>,
}

impl Page {
    /// Could `self` and `next` (the following page) be in one area?
    fn joins(&self, next: &Page) -> bool {
        self.prot == next.prot
            && self.max == next.max
            && self.share == next.share
            && self.trans == next.trans
            && match (self.file, next.file) {
                (None, None) => true,
                (Some((f, o)), Some((g, p))) => f == g && o + PAGE_SIZE == p,
                _ => false,
            }
    }
}

#[derive(Default, Clone, Debug)]
struct Model {
    pages: BTreeMap<u64, Page>,
    /// Open transitions: range and whether someone waited.
    trans: BTreeMap<TransitionId, (u64, u64, bool)>,
}

impl Model {
    fn free(&self, s: u64, e: u64) -> bool {
        self.pages.range(s..e).next().is_none()
    }
    fn mapped(&self, s: u64, e: u64) -> bool {
        (s..e)
            .step_by(PAGE_SIZE as usize)
            .all(|p| self.pages.contains_key(&p))
    }
    fn wait(&mut self, s: u64, e: u64) -> Option<VmError> {
        let id = self.pages.range(s..e).find_map(|(_, p)| p.trans)?;
        let t = self.trans.get_mut(&id).unwrap();
        t.2 = true;
        Some(VmError::MustWait(Wait {
            id,
            start: t.0,
            end: t.1,
        }))
    }
    fn remove(&mut self, s: u64, e: u64) -> BTreeMap<u64, Page> {
        let keys: Vec<u64> = self.pages.range(s..e).map(|(&k, _)| k).collect();
        keys.into_iter()
            .map(|k| (k, self.pages.remove(&k).unwrap()))
            .collect()
    }
    fn find_free(&self, len: u64) -> Option<u64> {
        let mut a = TOP.checked_sub(len)?;
        loop {
            if a < MIN {
                break;
            }
            if self.free(a, a + len) {
                return Some(a);
            }
            a -= PAGE_SIZE;
        }
        let mut a = MIN;
        while a + len <= MAX {
            if self.free(a, a + len) {
                return Some(a);
            }
            a += PAGE_SIZE;
        }
        None
    }
}

fn expand(areas: &[Vmap<TestFile>]) -> BTreeMap<u64, Page> {
    let mut m = BTreeMap::new();
    for a in areas {
        let mut p = a.start;
        while p < a.end {
            m.insert(
                p,
                Page {
                    prot: a.prot,
                    max: a.max_prot,
                    share: a.share,
                    file: match &a.kind {
                        VmapKind::Anonymous => None,
                        VmapKind::File { file, offset } => Some((file.0, offset + (p - a.start))),
                    },
                    trans: match a.state {
                        VmapState::Stable => None,
                        VmapState::InTransition(id) => Some(id),
                    },
                },
            );
            p += PAGE_SIZE;
        }
    }
    m
}

fn check_pieces(pieces: &[Vmap<TestFile>]) {
    for w in pieces.windows(2) {
        assert!(w[0].end <= w[1].start, "pieces unsorted/overlapping");
    }
    for p in pieces {
        assert_eq!(
            p.state,
            VmapState::Stable,
            "an in-transition area was removed"
        );
    }
}

#[derive(Clone, Debug)]
enum Op {
    Mmap {
        pages: u64,
        prot: u8,
        max_extra: u8,
        shared: bool,
        file: Option<(u8, u64)>,
        place: u8,
        at: u64,
        skew: bool,
    },
    Munmap {
        at: u64,
        pages: u64,
        skew: bool,
    },
    Mprotect {
        at: u64,
        pages: u64,
        prot: u8,
    },
    Mremap {
        at: u64,
        old: u64,
        new: u64,
        may_move: bool,
        fixed: Option<u64>,
    },
    Begin {
        at: u64,
        pages: u64,
    },
    End {
        pick: usize,
    },
    Lookup {
        at: u64,
        access: u8,
    },
}

fn addr(page: u64) -> u64 {
    // Pages 0..=PAGES+3: a few beyond the end, and page "0" maps below MIN.
    if page == 0 {
        MIN - PAGE_SIZE
    } else {
        MIN + (page - 1) * PAGE_SIZE
    }
}

fn op() -> impl Strategy<Value = Op> {
    let page = 0..PAGES + 4;
    prop_oneof![
        4 => (0..7u64, 0..8u8, 0..8u8, any::<bool>(), proptest::option::of((0..3u8, 0..6u64)), 0..4u8, page.clone(), proptest::bool::weighted(0.05))
            .prop_map(|(pages, prot, max_extra, shared, file, place, at, skew)| Op::Mmap { pages, prot, max_extra, shared, file, place, at, skew }),
        3 => (page.clone(), 0..8u64, proptest::bool::weighted(0.05)).prop_map(|(at, pages, skew)| Op::Munmap { at, pages, skew }),
        3 => (page.clone(), 0..6u64, 0..8u8).prop_map(|(at, pages, prot)| Op::Mprotect { at, pages, prot }),
        6 => (page.clone(), 0..5u64, 0..9u64, any::<bool>(), proptest::option::of(page.clone()))
            .prop_map(|(at, old, new, may_move, fixed)| Op::Mremap { at, old, new, may_move, fixed }),
        2 => (page.clone(), 0..4u64).prop_map(|(at, pages)| Op::Begin { at, pages }),
        2 => (0..4usize).prop_map(|pick| Op::End { pick }),
        1 => (page, 0..3u8).prop_map(|(at, access)| Op::Lookup { at, access }),
    ]
}

struct Harness {
    map: Vmaps<TestFile>,
    model: Model,
    /// Snapshot of each open transition's areas.
    frozen: BTreeMap<TransitionId, Vec<Vmap<TestFile>>>,
}

impl Harness {
    fn new() -> Self {
        Harness {
            map: Vmaps::new(layout()),
            model: Model::default(),
            frozen: BTreeMap::new(),
        }
    }

    fn areas(&self) -> Vec<Vmap<TestFile>> {
        self.map.iter().cloned().collect()
    }

    fn check(&self) {
        self.map.check_invariants().unwrap();
        assert_eq!(
            expand(&self.areas()),
            self.model.pages,
            "map differs from model"
        );
        for (id, snap) in &self.frozen {
            let now: Vec<_> = self
                .map
                .iter()
                .filter(|a| a.state == VmapState::InTransition(*id))
                .cloned()
                .collect();
            assert_eq!(&now, snap, "an in-transition area changed");
        }
        assert_eq!(self.map.open_transitions(), self.model.trans.len());
    }

    fn apply(&mut self, op: &Op) {
        let waits = self.model.trans.values().filter(|t| t.2).count();
        match *op {
            Op::Mmap {
                pages,
                prot,
                max_extra,
                shared,
                file,
                place,
                at,
                skew,
            } => self.mmap(pages, prot, max_extra, shared, file, place, at, skew),
            Op::Munmap { at, pages, skew } => self.munmap(at, pages, skew),
            Op::Mprotect { at, pages, prot } => self.mprotect(at, pages, prot),
            Op::Mremap {
                at,
                old,
                new,
                may_move,
                fixed,
            } => self.mremap(at, old, new, may_move, fixed),
            Op::Begin { at, pages } => self.begin(at, pages),
            Op::End { pick } => self.end(pick),
            Op::Lookup { at, access } => self.lookup(at, access),
        }
        if self.model.trans.values().filter(|t| t.2).count() > waits {
            MUST_WAIT.with(|c| c.fetch_add(1, Relaxed));
        }
        self.check();
    }

    #[allow(clippy::too_many_arguments)]
    fn mmap(
        &mut self,
        pages: u64,
        prot: u8,
        max_extra: u8,
        shared: bool,
        file: Option<(u8, u64)>,
        place: u8,
        at: u64,
        skew: bool,
    ) {
        let prot = Prot::from_bits(u64::from(prot)).unwrap();
        // Usually max ⊇ prot; sometimes not (EACCES).
        let max = if max_extra == 7 {
            Prot::READ
        } else {
            prot | Prot::from_bits(u64::from(max_extra)).unwrap()
        };
        let share = if shared {
            Share::Shared
        } else {
            Share::Private
        };
        let len = pages * PAGE_SIZE;
        let a = addr(at) + if skew { 1 } else { 0 };
        let placement = match place {
            0 => Placement::Anywhere,
            1 => Placement::Hint(a),
            2 => Placement::Fixed(a),
            _ => Placement::FixedNoReplace(a),
        };
        let req = MapRequest {
            len,
            prot,
            max_prot: max,
            share,
            kind: match file {
                None => VmapKind::Anonymous,
                Some((f, o)) => VmapKind::File {
                    file: TestFile(f),
                    offset: o * PAGE_SIZE,
                },
            },
            placement,
        };
        let page = Page {
            prot,
            max,
            share,
            file: file.map(|(f, o)| (f, o * PAGE_SIZE)),
            trans: None,
        };
        // Model.
        let m = &mut self.model;
        let expect: Result<(u64, BTreeMap<u64, Page>), VmError> = (|| {
            if len == 0 {
                return Err(VmError::Invalid);
            }
            if !max.contains(prot) {
                return Err(VmError::Access);
            }
            match placement {
                Placement::Fixed(a) | Placement::FixedNoReplace(a) => {
                    if a % PAGE_SIZE != 0 {
                        return Err(VmError::Invalid);
                    }
                    if a < MIN {
                        return Err(VmError::Permission);
                    }
                    if a + len > MAX {
                        return Err(VmError::NoMemory);
                    }
                    if matches!(placement, Placement::FixedNoReplace(_)) {
                        if !m.free(a, a + len) {
                            return Err(VmError::Exists);
                        }
                        Ok((a, BTreeMap::new()))
                    } else {
                        if let Some(w) = m.wait(a, a + len) {
                            return Err(w);
                        }
                        Ok((a, m.remove(a, a + len)))
                    }
                }
                Placement::Hint(h) => {
                    let h = h.div_ceil(PAGE_SIZE) * PAGE_SIZE;
                    if h >= MIN && h + len <= MAX && m.free(h, h + len) {
                        Ok((h, BTreeMap::new()))
                    } else {
                        m.find_free(len)
                            .map(|a| (a, BTreeMap::new()))
                            .ok_or(VmError::NoMemory)
                    }
                }
                Placement::Anywhere => m
                    .find_free(len)
                    .map(|a| (a, BTreeMap::new()))
                    .ok_or(VmError::NoMemory),
            }
        })();
        let got = self.map.mmap(req);
        match (expect, got) {
            (Ok((a, removed)), Ok(mapped)) => {
                OK_MMAP.with(|c| c.fetch_add(1, Relaxed));
                if !removed.is_empty() {
                    OK_REPLACE.with(|c| c.fetch_add(1, Relaxed));
                }
                assert_eq!(mapped.addr, a, "mmap address");
                check_pieces(&mapped.unmapped);
                assert_eq!(expand(&mapped.unmapped), removed, "mmap replaced pieces");
                let mut p = page;
                for i in 0..pages {
                    if let Some((f, o)) = page.file {
                        p.file = Some((f, o + i * PAGE_SIZE));
                    }
                    self.model.pages.insert(a + i * PAGE_SIZE, p);
                }
            }
            (Err(e), Err(g)) => {
                if e == VmError::NoMemory {
                    NO_MEMORY.with(|c| c.fetch_add(1, Relaxed));
                }
                assert_eq!(e, g, "mmap error")
            }
            (e, g) => panic!("mmap: expected {e:?}, got {:?}", g.map(|m| m.addr)),
        }
    }

    fn munmap(&mut self, at: u64, pages: u64, skew: bool) {
        let s = addr(at) + if skew { 1 } else { 0 };
        let len = pages * PAGE_SIZE;
        let m = &mut self.model;
        let expect = if s % PAGE_SIZE != 0 || len == 0 || s + len > MAX {
            Err(VmError::Invalid)
        } else if let Some(w) = m.wait(s, s + len) {
            Err(w)
        } else {
            Ok(m.remove(s, s + len))
        };
        let got = self.map.munmap(s, len);
        match (expect, got) {
            (Ok(removed), Ok(pieces)) => {
                if pieces.iter().any(|p| p.start > s || p.end < s + len) {
                    OK_MUNMAP_SPLIT.with(|c| c.fetch_add(1, Relaxed));
                }
                check_pieces(&pieces);
                assert_eq!(expand(&pieces), removed, "munmap pieces");
            }
            (Err(e), Err(g)) => assert_eq!(e, g, "munmap error"),
            (e, g) => panic!("munmap: expected {e:?}, got {g:?}"),
        }
    }

    fn mprotect(&mut self, at: u64, pages: u64, prot: u8) {
        let s = addr(at);
        let len = pages * PAGE_SIZE;
        let prot = Prot::from_bits(u64::from(prot)).unwrap();
        let m = &mut self.model;
        let expect = if len == 0 {
            Ok(BTreeMap::new())
        } else if s + len > MAX {
            Err(VmError::Invalid)
        } else if !m.mapped(s, s + len) {
            Err(VmError::NoMemory)
        } else if let Some(w) = m.wait(s, s + len) {
            Err(w)
        } else if m
            .pages
            .range(s..s + len)
            .any(|(_, p)| !p.max.contains(prot))
        {
            Err(VmError::Access)
        } else {
            let mut changed = BTreeMap::new();
            for (&k, p) in m.pages.range_mut(s..s + len) {
                if p.prot != prot {
                    changed.insert(k, (p.prot, prot));
                    p.prot = prot;
                }
            }
            Ok(changed)
        };
        let got = self.map.mprotect(s, len, prot);
        match (expect, got) {
            (Ok(changed), Ok(rep)) => {
                if !rep.is_empty() {
                    OK_MPROTECT.with(|c| c.fetch_add(1, Relaxed));
                }
                let mut pages = BTreeMap::new();
                for r in &rep {
                    let mut p = r.start;
                    while p < r.end {
                        assert!(
                            pages.insert(p, (r.old, r.new)).is_none(),
                            "reprotect overlap"
                        );
                        p += PAGE_SIZE;
                    }
                }
                assert_eq!(pages, changed, "mprotect changes");
            }
            (Err(e), Err(g)) => assert_eq!(e, g, "mprotect error"),
            (e, g) => panic!("mprotect: expected {e:?}, got {g:?}"),
        }
    }

    fn mremap(&mut self, at: u64, old: u64, new: u64, may_move: bool, fixed: Option<u64>) {
        let s = addr(at);
        let (ol, nl) = (old * PAGE_SIZE, new * PAGE_SIZE);
        let fixed = fixed.map(addr);
        let flags = RemapFlags { may_move, fixed };
        let m = &mut self.model;
        // Expected: (addr, move, removed pages), model updated.
        type Expect = Result<(u64, Option<(u64, u64, u64)>, BTreeMap<u64, Page>), VmError>;
        let expect: Expect = (|| {
            if ol == 0 || nl == 0 || (fixed.is_some() && !may_move) || s + ol > MAX {
                return Err(VmError::Invalid);
            }
            if let Some(d) = fixed {
                if d + nl > MAX {
                    return Err(VmError::Invalid);
                }
                if d < MIN {
                    return Err(VmError::Permission);
                }
                if d < s + ol && s < d + nl {
                    return Err(VmError::Invalid);
                }
            }
            // Source must lie in one area.
            let first = *m.pages.get(&s).ok_or(VmError::Fault)?;
            let mut prev = first;
            let mut p = s + PAGE_SIZE;
            while p < s + ol {
                let q = m.pages.get(&p).ok_or(VmError::Fault)?;
                if !prev.joins(q) {
                    return Err(VmError::Fault);
                }
                prev = *q;
                p += PAGE_SIZE;
            }
            if first.trans.is_some() {
                return Err(m.wait(s, s + PAGE_SIZE).unwrap());
            }
            let area_ends_here = m.pages.get(&(s + ol)).is_none_or(|q| !prev.joins(q));
            let page_at = |i: u64| {
                let mut p = first;
                if let Some((f, o)) = first.file {
                    p.file = Some((f, o + i * PAGE_SIZE));
                }
                p
            };
            let place = |m: &mut Model, d: u64| {
                m.remove(s, s + ol);
                for i in 0..new {
                    m.pages.insert(d + i * PAGE_SIZE, page_at(i));
                }
            };
            if let Some(d) = fixed {
                if let Some(w) = m.wait(d, d + nl) {
                    return Err(w);
                }
                let mut removed = BTreeMap::new();
                if nl < ol {
                    removed.extend(m.remove(s + nl, s + ol));
                }
                removed.extend(m.remove(d, d + nl));
                place(m, d);
                return Ok((d, Some((s, d, ol.min(nl))), removed));
            }
            if nl <= ol {
                return Ok((s, None, m.remove(s + nl, s + ol)));
            }
            if area_ends_here && s + nl <= MAX && m.free(s + ol, s + nl) {
                for i in old..new {
                    m.pages.insert(s + i * PAGE_SIZE, page_at(i));
                }
                return Ok((s, None, BTreeMap::new()));
            }
            if !may_move {
                return Err(VmError::NoMemory);
            }
            let d = m.find_free(nl).ok_or(VmError::NoMemory)?;
            place(m, d);
            Ok((d, Some((s, d, ol)), BTreeMap::new()))
        })();
        let got = self.map.mremap(s, ol, nl, flags);
        match (expect, got) {
            (Ok((a, mv, removed)), Ok(r)) => {
                if mv.is_some() {
                    OK_MOVE.with(|c| c.fetch_add(1, Relaxed));
                } else if nl > ol {
                    OK_GROW.with(|c| c.fetch_add(1, Relaxed));
                }
                assert_eq!(r.addr, a, "mremap address");
                assert_eq!(r.moved.map(|m| (m.from, m.to, m.len)), mv, "mremap move");
                check_pieces(&r.unmapped);
                assert_eq!(expand(&r.unmapped), removed, "mremap pieces");
            }
            (Err(e), Err(g)) => assert_eq!(e, g, "mremap error"),
            (e, g) => panic!("mremap: expected {e:?}, got {:?}", g.map(|r| r.addr)),
        }
    }

    fn begin(&mut self, at: u64, pages: u64) {
        let s = addr(at);
        let len = pages * PAGE_SIZE;
        let m = &mut self.model;
        let expect = if len == 0 || s + len > MAX {
            Err(VmError::Invalid)
        } else if !m.mapped(s, s + len) {
            Err(VmError::NoMemory)
        } else if let Some(w) = m.wait(s, s + len) {
            Err(w)
        } else {
            Ok(())
        };
        let got = self.map.begin_transition(s, len);
        match (expect, got) {
            (Ok(()), Ok(id)) => {
                for (_, p) in self.model.pages.range_mut(s..s + len) {
                    p.trans = Some(id);
                }
                self.model.trans.insert(id, (s, s + len, false));
                let snap = self
                    .map
                    .iter()
                    .filter(|a| a.state == VmapState::InTransition(id))
                    .cloned()
                    .collect::<Vec<_>>();
                assert_eq!(snap.first().map(|a| a.start), Some(s));
                assert_eq!(snap.last().map(|a| a.end), Some(s + len));
                self.frozen.insert(id, snap);
            }
            (Err(e), Err(g)) => assert_eq!(e, g, "begin error"),
            (e, g) => panic!("begin: expected {e:?}, got {g:?}"),
        }
    }

    fn end(&mut self, pick: usize) {
        let Some((&id, &(s, e, waited))) = self.model.trans.iter().nth(pick) else {
            return;
        };
        let ended = self.map.end_transition(id).expect("open transition");
        assert_eq!((ended.start, ended.end, ended.wake), (s, e, waited));
        if waited {
            WOKEN.with(|c| c.fetch_add(1, Relaxed));
        }
        assert!(self.map.end_transition(id).is_none(), "ended twice");
        self.model.trans.remove(&id);
        self.frozen.remove(&id);
        for (_, p) in self.model.pages.range_mut(s..e) {
            p.trans = None;
        }
    }

    fn lookup(&self, at: u64, access: u8) {
        let a = addr(at) + 123;
        let access = [Prot::READ, Prot::WRITE, Prot::EXEC][usize::from(access)];
        let page = self.model.pages.get(&(a & !(PAGE_SIZE - 1)));
        assert_eq!(self.map.lookup(a).is_some(), page.is_some());
        let expect = match page {
            None => Err(FaultError::Unmapped),
            Some(p) if p.prot.accessible() && (p.prot | Prot::READ).contains(access) => Ok(()),
            Some(_) => Err(FaultError::Protection),
        };
        assert_eq!(self.map.check_access(a, access).map(|_| ()), expect);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn vmaps_follow_the_page_model(ops in proptest::collection::vec(op(), 1..80)) {
        let mut h = Harness::new();
        for op in &ops {
            h.apply(op);
        }
        // Ending every transition leaves a stable, maximally merged map,
        // after which teardown returns exactly the model's pages.
        while !h.model.trans.is_empty() {
            h.end(0);
            h.check();
        }
        let all = h.map.teardown().unwrap();
        check_pieces(&all);
        prop_assert_eq!(expand(&all), h.model.pages.clone());
        prop_assert_eq!(h.map.count(), 0);
    }
}

/// The same model run on a fixed set of generated sequences, asserting
/// that every interesting path was reached (so the property above cannot
/// pass by generating only trivial cases).
#[test]
fn generator_reaches_every_path() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strat = proptest::collection::vec(op(), 40..80);
    for _ in 0..600 {
        let ops = strat.new_tree(&mut runner).unwrap().current();
        let mut h = Harness::new();
        for op in &ops {
            h.apply(op);
        }
    }
    let counts = [
        ("mmap", &OK_MMAP),
        ("MAP_FIXED replacing", &OK_REPLACE),
        ("munmap splitting", &OK_MUNMAP_SPLIT),
        ("mprotect changing", &OK_MPROTECT),
        ("mremap growing in place", &OK_GROW),
        ("mremap moving", &OK_MOVE),
        ("MustWait", &MUST_WAIT),
        ("wake after MustWait", &WOKEN),
        ("ENOMEM", &NO_MEMORY),
    ];
    for (what, c) in counts {
        let n = c.with(|c| c.load(Relaxed));
        eprintln!("{what}: {n}");
        assert!(n >= 20, "only {n} cases of {what}");
    }
}
