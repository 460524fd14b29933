//! The in-memory value graph the log replays into: tuples (attribute maps),
//! vectors and scalar values, addressed by [`NodeId`].
//!
//! Runs in kernel-lock/thread context only and takes no locks itself.

use crate::symbol::{Sym, SymbolTable};
use alloc::collections::BTreeMap;
use alloc::collections::TryReserveError;
use alloc::vec::Vec;

/// Identifies a tuple or vector in a [`Store`].
pub type NodeId = u32;

/// A signed integer as TFS encodes it: a sign and a 64-bit magnitude.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Integer {
    /// True for values below zero.
    pub negative: bool,
    /// Absolute value.
    pub magnitude: u64,
}

impl Integer {
    /// A non-negative integer.
    pub fn from_u64(n: u64) -> Self {
        Integer {
            negative: false,
            magnitude: n,
        }
    }
    /// The value if it is non-negative.
    pub fn as_u64(self) -> Option<u64> {
        (!self.negative || self.magnitude == 0).then_some(self.magnitude)
    }
}

/// A value stored under a tuple attribute or in a vector slot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// A tuple (type 1).
    Tuple(NodeId),
    /// A vector (type 2).
    Vector(NodeId),
    /// A string (type 4).
    Str(Vec<u8>),
    /// An untyped buffer (type 0; what version 4 wrote for every scalar).
    Buf(Vec<u8>),
    /// An integer (type 3).
    Int(Integer),
    /// Nanos's `null_value`: present, but without content (a flag such as
    /// `uninited`); encoded as a one-byte buffer holding 0.
    Flag,
}

impl Value {
    /// The bytes of a string or buffer value.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Str(b) | Value::Buf(b) => Some(b),
            _ => None,
        }
    }

    /// A number stored either as an integer or as decimal digits (version 4
    /// and older Nanos tools wrote numbers as strings).
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Value::Int(i) => i.as_u64(),
            Value::Str(b) | Value::Buf(b) => parse_decimal(b),
            _ => None,
        }
    }
}

/// Parses an unsigned decimal number, refusing empty input and overflow.
pub fn parse_decimal(bytes: &[u8]) -> Option<u64> {
    if bytes.is_empty() || bytes.len() > 20 {
        return None;
    }
    let mut n: u64 = 0;
    for &b in bytes {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(n)
}

/// Formats `n` in decimal (the name of an extent is its file block offset).
pub fn decimal(n: u64) -> Vec<u8> {
    let mut digits = Vec::new();
    let mut n = n;
    loop {
        digits.push(b'0' + (n % 10) as u8);
        n /= 10;
        if n == 0 {
            break;
        }
    }
    digits.reverse();
    digits
}

/// Above this many attributes a tuple keeps them in a B-tree.
pub(crate) const SMALL_ATTRS: usize = 16;

/// The least room a tuple gets in the slab (what a vector of attributes
/// would allocate on its first insert).
const SLAB_MIN_ROOM: usize = 4;

/// A slab slot that holds no attribute (a tuple's unused room).
const VACANT_SLOT: (Sym, Value) = (Sym(u32::MAX), Value::Flag);

/// A tuple's attributes in symbol order: a sorted run of the store's slab
/// while small and decoded from the log (a replay makes tens of thousands
/// of tuples of a handful of attributes — a file's, an extent map's, an
/// extent's — and gives them room in one shared vector instead of an
/// allocation each: a log entry says how many attributes a tuple has), a
/// sorted vector while small otherwise, a B-tree once large (a directory's
/// children).
#[derive(Debug, Clone)]
enum Attrs {
    /// `slab[at..at + len]`, with room up to `at + cap`.
    Slab {
        at: u32,
        len: u16,
        cap: u16,
    },
    Small(Vec<(Sym, Value)>),
    Large(BTreeMap<Sym, Value>),
}

impl Attrs {
    fn get<'a>(&'a self, slab: &'a [(Sym, Value)], sym: Sym) -> Option<&'a Value> {
        let run = match self {
            Attrs::Slab { at, len, .. } => &slab[*at as usize..*at as usize + usize::from(*len)],
            Attrs::Small(v) => v,
            Attrs::Large(m) => return m.get(&sym),
        };
        run.binary_search_by_key(&sym, |e| e.0)
            .ok()
            .map(|i| &run[i].1)
    }

    fn insert(&mut self, slab: &mut [(Sym, Value)], sym: Sym, value: Value) -> Option<Value> {
        match self {
            Attrs::Slab { at, len, cap } => {
                let (at, n) = (*at as usize, usize::from(*len));
                // Attributes mostly come in symbol order: append.
                if n < usize::from(*cap) && (n == 0 || slab[at + n - 1].0 < sym) {
                    slab[at + n] = (sym, value);
                    *len += 1;
                    return None;
                }
                let run = &mut slab[at..at + usize::from(*cap)];
                match run[..n].binary_search_by_key(&sym, |e| e.0) {
                    Ok(i) => Some(core::mem::replace(&mut run[i].1, value)),
                    Err(i) if n < run.len() => {
                        run[i..=n].rotate_right(1);
                        run[i] = (sym, value);
                        *len += 1;
                        None
                    }
                    Err(_) => {
                        // Out of room: move to a vector of its own.
                        let mut v: Vec<(Sym, Value)> = Vec::with_capacity(SMALL_ATTRS);
                        v.extend(
                            run[..n]
                                .iter_mut()
                                .map(|e| core::mem::replace(e, VACANT_SLOT)),
                        );
                        *self = Attrs::Small(v);
                        self.insert(slab, sym, value)
                    }
                }
            }
            Attrs::Small(v) => match v.binary_search_by_key(&sym, |e| e.0) {
                Ok(i) => Some(core::mem::replace(&mut v[i].1, value)),
                Err(i) => {
                    if v.len() < SMALL_ATTRS {
                        v.insert(i, (sym, value));
                    } else {
                        let mut m: BTreeMap<Sym, Value> = core::mem::take(v).into_iter().collect();
                        m.insert(sym, value);
                        *self = Attrs::Large(m);
                    }
                    None
                }
            },
            Attrs::Large(m) => m.insert(sym, value),
        }
    }

    fn remove(&mut self, slab: &mut [(Sym, Value)], sym: Sym) -> Option<Value> {
        match self {
            Attrs::Slab { at, len, .. } => {
                let run = &mut slab[*at as usize..*at as usize + usize::from(*len)];
                let i = run.binary_search_by_key(&sym, |e| e.0).ok()?;
                let (_, old) = core::mem::replace(&mut run[i], VACANT_SLOT);
                run[i..].rotate_left(1);
                *len -= 1;
                Some(old)
            }
            Attrs::Small(v) => v
                .binary_search_by_key(&sym, |e| e.0)
                .ok()
                .map(|i| v.remove(i).1),
            Attrs::Large(m) => m.remove(&sym),
        }
    }

    fn len(&self) -> usize {
        match self {
            Attrs::Slab { len, .. } => usize::from(*len),
            Attrs::Small(v) => v.len(),
            Attrs::Large(m) => m.len(),
        }
    }

    fn iter<'a>(&'a self, slab: &'a [(Sym, Value)]) -> AttrIter<'a> {
        match self {
            Attrs::Slab { at, len, .. } => {
                AttrIter::Small(slab[*at as usize..*at as usize + usize::from(*len)].iter())
            }
            Attrs::Small(v) => AttrIter::Small(v.iter()),
            Attrs::Large(m) => AttrIter::Large(m.iter()),
        }
    }

    /// Empties the tuple's slab run (dropping its values), if it has one.
    fn vacate(&self, slab: &mut [(Sym, Value)]) {
        if let Attrs::Slab { at, len, .. } = self {
            for e in &mut slab[*at as usize..*at as usize + usize::from(*len)] {
                *e = VACANT_SLOT;
            }
        }
    }
}

enum AttrIter<'a> {
    Small(core::slice::Iter<'a, (Sym, Value)>),
    Large(alloc::collections::btree_map::Iter<'a, Sym, Value>),
}

impl<'a> Iterator for AttrIter<'a> {
    type Item = (Sym, &'a Value);
    fn next(&mut self) -> Option<Self::Item> {
        match self {
            AttrIter::Small(i) => i.next().map(|(k, v)| (*k, v)),
            AttrIter::Large(i) => i.next().map(|(k, v)| (*k, v)),
        }
    }
}

#[derive(Debug, Clone)]
enum Node {
    Tuple(Attrs),
    Vector(Vec<Option<Value>>),
    /// Freed, but its id may still be named by the current log chain's
    /// dictionary: not handed out again until [`Store::recycle`].
    Free,
    /// Freed and named by nothing: on the free list, handed out again.
    Vacant,
}

/// Tuples, vectors and the symbol table they use.
#[derive(Debug, Clone, Default)]
pub struct Store {
    nodes: Vec<Node>,
    /// Vacant slots, reused before `nodes` grows (so a create/unlink loop
    /// keeps the table at the most nodes ever live at once).
    vacant: Vec<NodeId>,
    /// The attributes of small tuples made by [`Store::new_tuple_for`],
    /// each tuple a run of slots (see [`Attrs`]).
    slab: Vec<(Sym, Value)>,
    /// Names of attributes.
    pub symbols: SymbolTable,
}

impl Store {
    /// An empty store.
    pub fn new() -> Self {
        Store {
            nodes: Vec::new(),
            vacant: Vec::new(),
            slab: Vec::new(),
            symbols: SymbolTable::new(),
        }
    }

    /// A new empty tuple.
    pub fn new_tuple(&mut self) -> NodeId {
        self.place(Node::Tuple(Attrs::Small(Vec::new())))
    }

    /// A new empty tuple with room for `attrs` attributes, for a decoder
    /// that knows how many follow: a small one takes no allocation of its
    /// own (its attributes go in the store's slab, with room for at least
    /// [`SLAB_MIN_ROOM`]: Nanos's and cairn's logs create a file's tuple and
    /// its extent map empty and fill them by later updates).
    pub fn new_tuple_for(&mut self, attrs: u64) -> NodeId {
        let cap = match usize::try_from(attrs) {
            Ok(n @ 0..=SMALL_ATTRS) => n.max(SLAB_MIN_ROOM),
            _ => return self.new_tuple(),
        };
        let at = self.slab.len();
        let Ok(at32) = u32::try_from(at) else {
            return self.new_tuple();
        };
        self.slab.extend((0..cap).map(|_| VACANT_SLOT));
        self.place(Node::Tuple(Attrs::Slab {
            at: at32,
            len: 0,
            cap: cap as u16,
        }))
    }

    /// Reserves room for about `nodes` more nodes and `attrs` more slab
    /// slots (a replay sizes them from the log's length).
    pub fn reserve(&mut self, nodes: usize, attrs: usize) {
        self.nodes.reserve(nodes);
        self.slab.reserve(attrs);
    }

    /// Makes room for `nodes` more nodes without growing later, or says
    /// that memory is short (the caller refuses the operation instead of
    /// the allocator failing in the middle of it).
    pub fn try_reserve_nodes(&mut self, nodes: usize) -> Result<(), TryReserveError> {
        let reused = self.vacant.len().min(nodes);
        self.nodes.try_reserve(nodes - reused)
    }

    /// A new empty vector.
    pub fn new_vector(&mut self) -> NodeId {
        self.place(Node::Vector(Vec::new()))
    }

    fn place(&mut self, node: Node) -> NodeId {
        if let Some(id) = self.vacant.pop() {
            self.nodes[id as usize] = node;
            return id;
        }
        self.nodes.push(node);
        (self.nodes.len() - 1) as NodeId
    }

    /// True if `id` names a live tuple.
    pub fn is_tuple(&self, id: NodeId) -> bool {
        matches!(self.nodes.get(id as usize), Some(Node::Tuple(_)))
    }

    /// True if `id` names a live vector.
    pub fn is_vector(&self, id: NodeId) -> bool {
        matches!(self.nodes.get(id as usize), Some(Node::Vector(_)))
    }

    /// Number of node slots ever allocated.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// The attribute `sym` of tuple `id`.
    pub fn get(&self, id: NodeId, sym: Sym) -> Option<&Value> {
        match self.nodes.get(id as usize) {
            Some(Node::Tuple(map)) => map.get(&self.slab, sym),
            _ => None,
        }
    }

    /// The attributes `syms` of tuple `id`, found in one pass over its
    /// attributes up to the largest of `syms` (for the well-known symbols,
    /// which come first: an index reading a file's or an extent's few
    /// attributes instead of a search for each).
    pub fn get_many<const N: usize>(&self, id: NodeId, syms: [Sym; N]) -> [Option<&Value>; N] {
        let mut out = [None; N];
        let Some(Node::Tuple(map)) = self.nodes.get(id as usize) else {
            return out;
        };
        let Some(&last) = syms.iter().max() else {
            return out;
        };
        for (k, v) in map.iter(&self.slab) {
            if k > last {
                break;
            }
            for (want, got) in syms.iter().zip(out.iter_mut()) {
                if *want == k {
                    *got = Some(v);
                }
            }
        }
        out
    }

    /// The tuple under attribute `sym` of tuple `id`.
    pub fn get_tuple(&self, id: NodeId, sym: Sym) -> Option<NodeId> {
        match self.get(id, sym) {
            Some(Value::Tuple(t)) if self.is_tuple(*t) => Some(*t),
            _ => None,
        }
    }

    /// Sets (or with `None`, removes) attribute `sym` of tuple `id`; returns
    /// the previous value. Empty strings and buffers remove the attribute, as
    /// they do when Nanos decodes them.
    pub fn set(&mut self, id: NodeId, sym: Sym, value: Option<Value>) -> Option<Value> {
        let value = value.filter(|v| !matches!(v, Value::Str(b) | Value::Buf(b) if b.is_empty()));
        match self.nodes.get_mut(id as usize) {
            Some(Node::Tuple(map)) => match value {
                Some(v) => map.insert(&mut self.slab, sym, v),
                None => map.remove(&mut self.slab, sym),
            },
            _ => None,
        }
    }

    /// Gives the empty tuple `id` the attributes `attrs`, which must be in
    /// strictly increasing symbol order, none of them a value [`Self::set`]
    /// would take for a removal (an empty string or buffer): what setting
    /// them one by one would make, but a large tuple's B-tree is built in
    /// one pass instead of an insert per attribute (a directory of
    /// thousands of entries at replay). Does nothing to a tuple that is not
    /// empty or not a tuple (the caller sets one by one instead).
    pub fn fill_sorted(&mut self, id: NodeId, attrs: impl ExactSizeIterator<Item = (Sym, Value)>) {
        let Some(Node::Tuple(map)) = self.nodes.get_mut(id as usize) else {
            return;
        };
        if map.len() != 0 {
            return;
        }
        map.vacate(&mut self.slab);
        *map = if attrs.len() <= SMALL_ATTRS {
            Attrs::Small(attrs.collect())
        } else {
            Attrs::Large(attrs.collect())
        };
    }

    /// Number of attributes of tuple `id`.
    pub fn tuple_len(&self, id: NodeId) -> usize {
        match self.nodes.get(id as usize) {
            Some(Node::Tuple(map)) => map.len(),
            _ => 0,
        }
    }

    /// The attributes of tuple `id`, in symbol order.
    pub fn entries(&self, id: NodeId) -> impl Iterator<Item = (Sym, &Value)> {
        let map = match self.nodes.get(id as usize) {
            Some(Node::Tuple(map)) => Some(map),
            _ => None,
        };
        map.into_iter().flat_map(|m| m.iter(&self.slab))
    }

    /// The slots of vector `id`.
    pub fn vector(&self, id: NodeId) -> &[Option<Value>] {
        match self.nodes.get(id as usize) {
            Some(Node::Vector(v)) => v,
            _ => &[],
        }
    }

    /// Sets slot `index` of vector `id`, growing it as needed.
    pub fn vector_set(&mut self, id: NodeId, index: usize, value: Option<Value>) {
        let value = value.filter(|v| !matches!(v, Value::Str(b) | Value::Buf(b) if b.is_empty()));
        if let Some(Node::Vector(v)) = self.nodes.get_mut(id as usize) {
            if v.len() <= index {
                v.resize(index + 1, None);
            }
            v[index] = value;
        }
    }

    /// Appends to vector `id`.
    pub fn vector_push(&mut self, id: NodeId, value: Option<Value>) {
        let value = value.filter(|v| !matches!(v, Value::Str(b) | Value::Buf(b) if b.is_empty()));
        if let Some(Node::Vector(v)) = self.nodes.get_mut(id as usize) {
            v.push(value);
        }
    }

    /// Releases the memory of a node that nothing refers to any more.
    pub fn free(&mut self, id: NodeId) {
        if let Some(n) = self.nodes.get_mut(id as usize)
            && !matches!(n, Node::Vacant)
        {
            if let Node::Tuple(attrs) = n {
                attrs.vacate(&mut self.slab);
            }
            *n = Node::Free;
        }
    }

    /// Frees `id` and makes it available to new nodes: the caller knows no
    /// log record names it (not in the current chain's dictionary), so a
    /// new node under the same id cannot be mistaken for it.
    pub fn recycle(&mut self, id: NodeId) {
        if let Some(n) = self.nodes.get_mut(id as usize)
            && !matches!(n, Node::Vacant)
        {
            if let Node::Tuple(attrs) = n {
                attrs.vacate(&mut self.slab);
            }
            *n = Node::Vacant;
            self.vacant.push(id);
        }
    }

    /// Interns `name`.
    pub fn sym(&mut self, name: &[u8]) -> Sym {
        self.symbols.intern(name)
    }

    /// Deep-copies value `v` of `other` into this store.
    pub fn import(&mut self, other: &Store, v: &Value) -> Value {
        match v {
            Value::Tuple(t) => {
                let id = self.new_tuple();
                let entries: Vec<(Sym, Value)> =
                    other.entries(*t).map(|(k, v)| (k, v.clone())).collect();
                for (k, v) in entries {
                    let sym = self.sym(other.symbols.name(k));
                    let v = self.import(other, &v);
                    self.set(id, sym, Some(v));
                }
                Value::Tuple(id)
            }
            Value::Vector(vid) => {
                let id = self.new_vector();
                for slot in other.vector(*vid).to_vec() {
                    let v = slot.map(|v| self.import(other, &v));
                    self.vector_push(id, v);
                }
                Value::Vector(id)
            }
            other_value => other_value.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::symbol::known;

    #[test]
    fn set_get_remove() {
        let mut s = Store::new();
        let t = s.new_tuple();
        assert_eq!(
            s.set(t, known::FILELENGTH, Some(Value::Int(Integer::from_u64(5)))),
            None
        );
        assert_eq!(s.get(t, known::FILELENGTH).and_then(Value::as_u64), Some(5));
        s.set(t, known::FILELENGTH, Some(Value::Str(Vec::new())));
        assert!(s.get(t, known::FILELENGTH).is_none());
    }

    #[test]
    fn decimal_round_trip() {
        assert_eq!(decimal(0), b"0");
        assert_eq!(decimal(65536), b"65536");
        assert_eq!(parse_decimal(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_decimal(b"18446744073709551616"), None);
        assert_eq!(parse_decimal(b"12a"), None);
        assert_eq!(parse_decimal(b""), None);
    }

    #[test]
    fn tuples_keep_symbol_order_small_and_large() {
        let mut s = Store::new();
        let t = s.new_tuple();
        // Inserted in a scrambled order, past the small-tuple limit.
        let n = 3 * SMALL_ATTRS as u32;
        for i in 0..n {
            let sym = Sym((i * 7) % n);
            s.set(
                t,
                sym,
                Some(Value::Int(Integer::from_u64(u64::from(sym.0)))),
            );
            let keys: Vec<u32> = s.entries(t).map(|(k, _)| k.0).collect();
            assert!(keys.windows(2).all(|w| w[0] < w[1]), "{keys:?}");
            assert_eq!(s.tuple_len(t), i as usize + 1);
        }
        for i in 0..n {
            assert_eq!(s.get(t, Sym(i)).and_then(Value::as_u64), Some(u64::from(i)));
        }
        assert!(s.set(t, Sym(5), None).is_some());
        assert!(s.get(t, Sym(5)).is_none());
        let small = s.new_tuple();
        s.set(small, Sym(2), Some(Value::Flag));
        s.set(small, Sym(1), Some(Value::Flag));
        assert_eq!(
            s.set(small, Sym(2), Some(Value::Int(Integer::from_u64(1)))),
            Some(Value::Flag)
        );
        assert_eq!(s.set(small, Sym(1), None), Some(Value::Flag));
        assert_eq!(s.tuple_len(small), 1);
    }

    /// Tuples made with room in the slab (as a decoder makes them) behave
    /// like a `BTreeMap` through inserts past their room, removals, and
    /// frees of their neighbours, and keep symbol order.
    #[test]
    fn slab_tuples_behave_like_a_btreemap() {
        use alloc::collections::BTreeMap;
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut s = Store::new();
        let mut live: Vec<(NodeId, BTreeMap<u32, u64>)> = Vec::new();
        for round in 0..3000u64 {
            match next() % 8 {
                0 => {
                    let room = next() % 20;
                    live.push((s.new_tuple_for(room), BTreeMap::new()));
                }
                1 if !live.is_empty() => {
                    let (id, _) = live.swap_remove((next() % live.len() as u64) as usize);
                    if next() % 2 == 0 {
                        s.free(id);
                    } else {
                        s.recycle(id);
                    }
                    assert!(!s.is_tuple(id));
                }
                _ if !live.is_empty() => {
                    let i = (next() % live.len() as u64) as usize;
                    let (id, model) = &mut live[i];
                    let sym = (next() % 24) as u32;
                    if next() % 4 == 0 {
                        let got = s.set(*id, Sym(sym), None).and_then(|v| v.as_u64());
                        assert_eq!(got, model.remove(&sym));
                    } else {
                        let v = Value::Int(Integer::from_u64(round));
                        let got = s.set(*id, Sym(sym), Some(v)).and_then(|v| v.as_u64());
                        assert_eq!(got, model.insert(sym, round));
                    }
                }
                _ => {}
            }
            for (id, model) in &live {
                let got: Vec<(u32, u64)> = s
                    .entries(*id)
                    .map(|(k, v)| (k.0, v.as_u64().unwrap()))
                    .collect();
                let want: Vec<(u32, u64)> = model.iter().map(|(k, v)| (*k, *v)).collect();
                assert_eq!(got, want);
                assert_eq!(s.tuple_len(*id), model.len());
                for sym in 0..24 {
                    assert_eq!(
                        s.get(*id, Sym(sym)).and_then(Value::as_u64),
                        model.get(&sym).copied()
                    );
                }
            }
        }
    }

    #[test]
    fn get_many_agrees_with_get() {
        let mut s = Store::new();
        for t in [s.new_tuple(), s.new_tuple_for(3)] {
            for sym in [known::LENGTH, known::OFFSET, Sym(40), known::ALLOCATED] {
                s.set(
                    t,
                    sym,
                    Some(Value::Int(Integer::from_u64(u64::from(sym.0)))),
                );
            }
            let want = [
                known::UNINITED,
                known::OFFSET,
                Sym(40),
                known::LENGTH,
                Sym(2),
            ];
            let got = s.get_many(t, want);
            for (sym, v) in want.iter().zip(got) {
                assert_eq!(v, s.get(t, *sym), "{sym:?}");
            }
        }
        assert_eq!(s.get_many(999, [known::OFFSET]), [None]);
    }

    #[test]
    fn vectors_grow_on_set() {
        let mut s = Store::new();
        let v = s.new_vector();
        s.vector_set(v, 2, Some(Value::Flag));
        assert_eq!(s.vector(v).len(), 3);
        assert_eq!(s.vector(v)[0], None);
    }
}
