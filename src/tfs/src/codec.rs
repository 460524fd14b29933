//! The TFS value encoding (Nanos `tuple.c`): a header byte — bit 7
//! immediate/reference, bits 6..4 the type (0 buffer/symbol, 1 tuple,
//! 2 vector, 3 integer, 4 string), bit 3 "more length bytes", bits 2..0 the
//! high bits of the length — then length bytes of seven bits each (0x80 =
//! continue). Version 4 used bit 6 for the type (tuple or buffer), bit 5
//! for "more" and five length bits. Decoding is iterative, so hostile
//! nesting cannot overflow the stack, and bounds-checked throughout.
//!
//! Replay speed: the usual entry, a one-attribute update whose value is a
//! scalar or a small new tuple of scalars, is parsed in full and applied
//! without the general decoder's stack (`update`); a large new tuple (a
//! directory's entries) collects its attributes and gets them in one pass
//! at its end ([`Store::fill_sorted`]). Both leave the store, the
//! dictionary and the counts exactly as the general decoder would.
//!
//! Runs in kernel-lock/thread context only and takes no locks itself.

use crate::dictionary::{Dictionary, Entity};
use crate::error::DecodeError;
use crate::store::{Integer, NodeId, Store, Value};
use crate::symbol::{Sym, known};
use crate::varint;
use alloc::vec::Vec;

/// Untyped bytes; symbols (attribute names) use this type too.
pub const TYPE_BUFFER: u8 = 0;
/// Tuple: `length` (symbol, value) pairs follow.
pub const TYPE_TUPLE: u8 = 1;
/// Vector: `length` values follow.
pub const TYPE_VECTOR: u8 = 2;
/// Integer: the length field is the sign, a varint magnitude follows.
pub const TYPE_INTEGER: u8 = 3;
/// String: `length` bytes follow.
pub const TYPE_STRING: u8 = 4;

/// Deepest nesting the decoder accepts.
pub const MAX_NESTING: usize = 1 << 16;

/// Which header layout a log extension uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// TFS version 4: one type bit (tuple/buffer), five length bits.
    V4,
    /// TFS version 5: three type bits, three length bits.
    V5,
}

/// A decoded value header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Immediate (content follows) rather than a dictionary reference.
    pub immediate: bool,
    /// One of the `TYPE_*` constants.
    pub ty: u8,
    /// Length, count, sign or dictionary index, depending on the type.
    pub len: u64,
}

/// Appends a version 5 header (Nanos `push_header`).
pub fn push_header(out: &mut Vec<u8>, immediate: bool, ty: u8, len: u64) {
    let bits = 64 - len.leading_zeros();
    let words = if bits > 3 { (bits - 3).div_ceil(7) } else { 0 };
    let mut first = (u8::from(immediate) << 7) | ((ty & 7) << 4) | (len >> (words * 7)) as u8;
    if words > 0 {
        first |= 0x08;
    }
    out.push(first);
    for i in (0..words).rev() {
        let group = ((len >> (i * 7)) & 0x7f) as u8;
        out.push(if i > 0 { group | 0x80 } else { group });
    }
}

/// Decodes a header at `buf[*pos..]`.
pub fn pop_header(buf: &[u8], pos: &mut usize, encoding: Encoding) -> Result<Header, DecodeError> {
    let start = *pos;
    let Some(&first) = buf.get(*pos) else {
        return Err(DecodeError::new(
            start,
            "value header runs past the end of the entry",
        ));
    };
    *pos += 1;
    let (ty, mut len, more) = match encoding {
        Encoding::V5 => ((first >> 4) & 7, u64::from(first & 7), first & 0x08 != 0),
        Encoding::V4 => {
            let ty = if first & 0x40 != 0 {
                TYPE_TUPLE
            } else {
                TYPE_BUFFER
            };
            (ty, u64::from(first & 0x1f), first & 0x20 != 0)
        }
    };
    if more {
        loop {
            let Some(&b) = buf.get(*pos) else {
                return Err(DecodeError::new(
                    start,
                    "value length runs past the end of the entry",
                ));
            };
            *pos += 1;
            if len >> 57 != 0 {
                return Err(DecodeError::new(start, "value length overflows 64 bits"));
            }
            len = (len << 7) | u64::from(b & 0x7f);
            if b & 0x80 == 0 {
                break;
            }
        }
    }
    Ok(Header {
        immediate: first & 0x80 != 0,
        ty,
        len,
    })
}

/// Entry counts kept while replaying, to decide on compaction like Nanos.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DecodeStats {
    /// Attribute assignments replayed.
    pub total: u64,
    /// Assignments that replaced or deleted an earlier one.
    pub obsolete: u64,
}

#[derive(Clone, Copy)]
enum Slot {
    Top,
    Attr(NodeId, Sym),
    Index(NodeId, usize),
}

struct Frame {
    node: NodeId,
    is_vector: bool,
    remaining: u64,
    next_index: usize,
    parent: Slot,
    /// For a large new tuple: where its attributes start in the decoder's
    /// pending list (they are set when it is complete, all at once).
    collect: Option<usize>,
}

/// Attributes of large new tuples, waiting for their tuple's end.
type Pending = Vec<(Sym, Option<Value>)>;

/// Sets attribute `s` of tuple `t` as the log says, counting it.
fn assign(store: &mut Store, t: NodeId, s: Sym, value: Option<Value>, stats: &mut DecodeStats) {
    let deleting = value.is_none();
    let old = store.set(t, s, value);
    stats.total += 1;
    if old.is_some() {
        stats.obsolete += if deleting { 2 } else { 1 };
    }
}

/// Sets the attributes `pending[start..]` collected for tuple `node`, in
/// the order the log gave them: in one pass when they come in increasing
/// symbol order with no removal among them (the usual case: a directory's
/// entries written by one writer), else one by one.
fn finish_collected(
    store: &mut Store,
    node: NodeId,
    pending: &mut Pending,
    start: usize,
    stats: &mut DecodeStats,
) {
    let run = &pending[start..];
    let removes = |v: &Option<Value>| !matches!(v, Some(v) if !matches!(v, Value::Str(b) | Value::Buf(b) if b.is_empty()));
    let in_one_pass = store.tuple_len(node) == 0
        && run.windows(2).all(|w| w[0].0 < w[1].0)
        && !run.iter().any(|(_, v)| removes(v));
    if in_one_pass {
        stats.total += run.len() as u64;
        // (No value is `None` here.)
        let attrs = pending
            .drain(start..)
            .map(|(s, v)| (s, v.unwrap_or(Value::Flag)));
        store.fill_sorted(node, attrs);
    } else {
        for (s, v) in pending.drain(start..) {
            assign(store, node, s, v, stats);
        }
    }
}

/// Sets every attribute collected so far, so that later writes land after
/// them as the log orders them; the open tuples set their remaining
/// attributes directly.
fn flush_collected(
    stack: &mut [Frame],
    pending: &mut Pending,
    store: &mut Store,
    stats: &mut DecodeStats,
) {
    for f in stack.iter_mut().rev() {
        if let Some(start) = f.collect.take() {
            for (s, v) in pending.drain(start..) {
                assign(store, f.node, s, v, stats);
            }
        }
    }
}

fn take<'a>(
    buf: &'a [u8],
    pos: &mut usize,
    len: u64,
    what: &'static str,
) -> Result<&'a [u8], DecodeError> {
    let start = *pos;
    let end = usize::try_from(len)
        .ok()
        .and_then(|l| start.checked_add(l))
        .filter(|&e| e <= buf.len())
        .ok_or(DecodeError::new(start, what))?;
    *pos = end;
    Ok(&buf[start..end])
}

fn resolve_reference(
    store: &Store,
    dict: &Dictionary,
    index: u64,
    as_string: bool,
    at: usize,
) -> Result<Value, DecodeError> {
    match dict.lookup(index) {
        Some(Entity::Sym(s)) => {
            let bytes = store.symbols.name(s).to_vec();
            Ok(if as_string {
                Value::Str(bytes)
            } else {
                Value::Buf(bytes)
            })
        }
        Some(Entity::Node(n)) if store.is_tuple(n) => Ok(Value::Tuple(n)),
        Some(Entity::Node(n)) if store.is_vector(n) => Ok(Value::Vector(n)),
        _ => Err(DecodeError::new(
            at,
            "reference to an unknown dictionary entry",
        )),
    }
}

fn next_slot(
    frame: &mut Frame,
    buf: &[u8],
    pos: &mut usize,
    store: &mut Store,
    dict: &mut Dictionary,
    encoding: Encoding,
) -> Result<Slot, DecodeError> {
    if frame.is_vector {
        let i = frame.next_index;
        frame.next_index += 1;
        return Ok(Slot::Index(frame.node, i));
    }
    let at = *pos;
    let h = pop_header(buf, pos, encoding)?;
    let sym = if h.immediate {
        let name = take(
            buf,
            pos,
            h.len,
            "attribute name runs past the end of the entry",
        )?;
        let sym = store.sym(name);
        dict.record(Entity::Sym(sym));
        sym
    } else {
        match dict.lookup(h.len) {
            Some(Entity::Sym(s)) => s,
            _ => {
                return Err(DecodeError::new(
                    at,
                    "attribute name refers to an unknown symbol",
                ));
            }
        }
    };
    Ok(Slot::Attr(frame.node, sym))
}

/// Decodes one value from the start of `buf` into `store`, numbering new
/// entities in `dict`; returns the value (`None` is the null that deletes)
/// and the number of bytes consumed. (A replay decodes through one
/// [`Decoder`], which keeps its nesting stack from entry to entry.)
pub fn decode(
    buf: &[u8],
    store: &mut Store,
    dict: &mut Dictionary,
    encoding: Encoding,
    stats: &mut DecodeStats,
) -> Result<(Option<Value>, usize), DecodeError> {
    Decoder::default().decode(buf, store, dict, encoding, stats)
}

/// A decoder whose nesting stack outlives one entry: a replay decodes
/// tens of thousands of entries without allocating a stack for each.
#[derive(Default)]
pub struct Decoder {
    stack: Vec<Frame>,
    pending: Pending,
}

impl Decoder {
    /// [`decode`], reusing this decoder's stack.
    pub fn decode(
        &mut self,
        buf: &[u8],
        store: &mut Store,
        dict: &mut Dictionary,
        encoding: Encoding,
        stats: &mut DecodeStats,
    ) -> Result<(Option<Value>, usize), DecodeError> {
        if encoding == Encoding::V5
            && let Some(done) = update::decode(buf, store, dict, stats)
        {
            return Ok(done);
        }
        self.stack.clear();
        self.pending.clear();
        decode_on(
            buf,
            store,
            dict,
            encoding,
            stats,
            &mut self.stack,
            &mut self.pending,
        )
    }
}

fn decode_on(
    buf: &[u8],
    store: &mut Store,
    dict: &mut Dictionary,
    encoding: Encoding,
    stats: &mut DecodeStats,
    stack: &mut Vec<Frame>,
    pending: &mut Pending,
) -> Result<(Option<Value>, usize), DecodeError> {
    let mut pos = 0usize;
    let mut slot = Slot::Top;
    loop {
        let at = pos;
        let h = pop_header(buf, &mut pos, encoding)?;
        let produced: Option<Value> = match h.ty {
            TYPE_TUPLE | TYPE_VECTOR => {
                let is_vector = h.ty == TYPE_VECTOR;
                if is_vector && encoding == Encoding::V4 {
                    return Err(DecodeError::new(at, "vector in a version 4 log"));
                }
                // A large new tuple (a directory's entries) collects its
                // attributes and gets them in one pass at its end.
                let collect = h.immediate && !is_vector && h.len > crate::store::SMALL_ATTRS as u64;
                let node = if h.immediate {
                    let node = if is_vector {
                        store.new_vector()
                    } else if collect {
                        store.new_tuple()
                    } else {
                        // Each attribute takes at least two bytes.
                        let room = (buf.len().saturating_sub(pos) / 2) as u64;
                        store.new_tuple_for(h.len.min(room))
                    };
                    dict.record(Entity::Node(node));
                    node
                } else {
                    if h.len > 0 && !stack.is_empty() {
                        // Writes into an existing node (Nanos's writers
                        // put these only at the top of an entry): what was
                        // collected so far is set first, as ordered.
                        flush_collected(stack, pending, store, stats);
                    }
                    let index = varint::pop(buf, &mut pos)?;
                    match dict.lookup(index) {
                        Some(Entity::Node(n)) if !is_vector && store.is_tuple(n) => n,
                        Some(Entity::Node(n)) if is_vector && store.is_vector(n) => n,
                        _ => {
                            return Err(DecodeError::new(
                                at,
                                "reference to an unknown tuple or vector",
                            ));
                        }
                    }
                };
                if h.len > 0 {
                    if stack.len() >= MAX_NESTING {
                        return Err(DecodeError::new(at, "values nested too deeply"));
                    }
                    let mut frame = Frame {
                        node,
                        is_vector,
                        remaining: h.len,
                        next_index: 0,
                        parent: slot,
                        collect: collect.then_some(pending.len()),
                    };
                    slot = next_slot(&mut frame, buf, &mut pos, store, dict, encoding)?;
                    stack.push(frame);
                    continue;
                }
                Some(if is_vector {
                    Value::Vector(node)
                } else {
                    Value::Tuple(node)
                })
            }
            TYPE_INTEGER if encoding == Encoding::V5 => {
                if !h.immediate {
                    return Err(DecodeError::new(at, "integer given by reference"));
                }
                let magnitude = varint::pop(buf, &mut pos)?;
                Some(Value::Int(Integer {
                    negative: h.len > 0 && magnitude > 0,
                    magnitude,
                }))
            }
            TYPE_STRING | TYPE_BUFFER => {
                let as_string = h.ty == TYPE_STRING;
                if h.len == 0 {
                    None
                } else if h.immediate {
                    let bytes = take(buf, &mut pos, h.len, "value runs past the end of the entry")?;
                    if as_string {
                        Some(Value::Str(bytes.to_vec()))
                    } else if bytes == [0] {
                        Some(Value::Flag)
                    } else {
                        Some(Value::Buf(bytes.to_vec()))
                    }
                } else {
                    Some(resolve_reference(store, dict, h.len, as_string, at)?)
                }
            }
            _ => return Err(DecodeError::new(at, "unknown value type")),
        };
        let mut value = produced;
        loop {
            match slot {
                Slot::Top => return Ok((value, pos)),
                // The frame this slot belongs to is the innermost.
                Slot::Attr(t, s) => match stack.last() {
                    Some(Frame {
                        collect: Some(_), ..
                    }) => pending.push((s, value.take())),
                    _ => assign(store, t, s, value.take(), stats),
                },
                Slot::Index(v, i) => {
                    let deleting = value.is_none();
                    let old = store.vector(v).get(i).cloned().flatten();
                    store.vector_set(v, i, value.take());
                    stats.total += 1;
                    if old.is_some() {
                        stats.obsolete += if deleting { 2 } else { 1 };
                    }
                }
            }
            let Some(frame) = stack.last_mut() else {
                return Err(DecodeError::new(pos, "decoder lost its place"));
            };
            frame.remaining -= 1;
            if frame.remaining > 0 {
                slot = next_slot(frame, buf, &mut pos, store, dict, encoding)?;
                break;
            }
            let Some(done) = stack.pop() else {
                return Err(DecodeError::new(pos, "decoder lost its place"));
            };
            if let Some(start) = done.collect {
                finish_collected(store, done.node, pending, start, stats);
            }
            value = Some(if done.is_vector {
                Value::Vector(done.node)
            } else {
                Value::Tuple(done.node)
            });
            slot = done.parent;
        }
    }
}

/// The usual log entry, decoded without the general decoder's stack: a
/// one-attribute update of a tuple the log named before (Nanos's
/// `encode_eav`: a file's `extents`, an extent, a length, a time) whose
/// value is a scalar, a null, or a new tuple of at most [`MAX_ATTRS`]
/// scalar attributes (an extent). The entry is parsed in full before
/// anything changes; any other shape, and anything the general decoder
/// would refuse, is left to it ([`decode`] returns `None`, having changed
/// nothing). What it does is exactly what the general decoder does with
/// the same entry, in the same order: symbols and the new tuple numbered
/// in the dictionary in log order, the tuple's attributes set, then the
/// update, each counted.
mod update {
    use super::*;

    /// Attributes of the largest new tuple taken here.
    pub const MAX_ATTRS: usize = 8;

    #[derive(Clone, Copy)]
    enum Name<'a> {
        /// Written in full: interned and numbered when applied.
        New(&'a [u8]),
        /// A reference to a symbol already in the dictionary.
        Known(Sym),
    }

    #[derive(Clone, Copy)]
    enum Scalar<'a> {
        Null,
        Flag,
        Int(Integer),
        Str(&'a [u8]),
        Buf(&'a [u8]),
    }

    impl Scalar<'_> {
        fn value(self) -> Option<Value> {
            match self {
                Scalar::Null => None,
                Scalar::Flag => Some(Value::Flag),
                Scalar::Int(i) => Some(Value::Int(i)),
                Scalar::Str(b) => Some(Value::Str(b.to_vec())),
                Scalar::Buf(b) => Some(Value::Buf(b.to_vec())),
            }
        }
    }

    fn name<'a>(buf: &'a [u8], pos: &mut usize, dict: &Dictionary) -> Option<Name<'a>> {
        let h = pop_header(buf, pos, Encoding::V5).ok()?;
        if h.immediate {
            take(buf, pos, h.len, "").ok().map(Name::New)
        } else {
            // Only entries numbered before this one: nothing is numbered
            // until the whole entry is parsed.
            match dict.lookup(h.len)? {
                Entity::Sym(s) => Some(Name::Known(s)),
                Entity::Node(_) => None,
            }
        }
    }

    /// A scalar value, if the value at `pos` is one this path takes.
    fn scalar<'a>(buf: &'a [u8], pos: &mut usize, h: Header) -> Option<Scalar<'a>> {
        match h.ty {
            TYPE_INTEGER if h.immediate => {
                let magnitude = varint::pop(buf, pos).ok()?;
                Some(Scalar::Int(Integer {
                    negative: h.len > 0 && magnitude > 0,
                    magnitude,
                }))
            }
            TYPE_STRING | TYPE_BUFFER if h.len == 0 => Some(Scalar::Null),
            TYPE_STRING | TYPE_BUFFER if h.immediate => {
                let bytes = take(buf, pos, h.len, "").ok()?;
                Some(if h.ty == TYPE_STRING {
                    Scalar::Str(bytes)
                } else if bytes == [0] {
                    Scalar::Flag
                } else {
                    Scalar::Buf(bytes)
                })
            }
            _ => None,
        }
    }

    fn intern(name: Name<'_>, store: &mut Store, dict: &mut Dictionary) -> Sym {
        match name {
            Name::Known(s) => s,
            Name::New(bytes) => {
                let s = store.sym(bytes);
                dict.record(Entity::Sym(s));
                s
            }
        }
    }

    /// Decodes `buf` if it is an update of the usual shape; `None`, with
    /// nothing changed, if it is not.
    pub fn decode(
        buf: &[u8],
        store: &mut Store,
        dict: &mut Dictionary,
        stats: &mut DecodeStats,
    ) -> Option<(Option<Value>, usize)> {
        let mut pos = 0;
        let h = pop_header(buf, &mut pos, Encoding::V5).ok()?;
        if h.immediate || h.ty != TYPE_TUPLE || h.len != 1 {
            return None;
        }
        let target = match dict.lookup(varint::pop(buf, &mut pos).ok()?)? {
            Entity::Node(n) if store.is_tuple(n) => n,
            _ => return None,
        };
        let attr = name(buf, &mut pos, dict)?;
        let vh = pop_header(buf, &mut pos, Encoding::V5).ok()?;
        let mut attrs = [(Name::Known(Sym(0)), Scalar::Null); MAX_ATTRS];
        let tuple = if vh.ty == TYPE_TUPLE && vh.immediate {
            let n = usize::try_from(vh.len).ok().filter(|&n| n <= MAX_ATTRS)?;
            for a in &mut attrs[..n] {
                let name = name(buf, &mut pos, dict)?;
                let h = pop_header(buf, &mut pos, Encoding::V5).ok()?;
                *a = (name, scalar(buf, &mut pos, h)?);
            }
            Some(n)
        } else {
            attrs[0].1 = scalar(buf, &mut pos, vh)?;
            None
        };
        if pos != buf.len() {
            return None;
        }
        // Parsed: apply, in the general decoder's order.
        let attr = intern(attr, store, dict);
        let value = match tuple {
            Some(n) => {
                let t = store.new_tuple_for(n as u64);
                dict.record(Entity::Node(t));
                for &(name, v) in &attrs[..n] {
                    let s = intern(name, store, dict);
                    assign(store, t, s, v.value(), stats);
                }
                Some(Value::Tuple(t))
            }
            None => attrs[0].1.value(),
        };
        assign(store, target, attr, value, stats);
        Some((Some(Value::Tuple(target)), pos))
    }
}

enum Task {
    Entries(NodeId, Option<Sym>),
    Slots(NodeId, usize),
}

/// Writes values in version 5 encoding, numbering what it writes in the
/// chain's dictionary exactly as a reader will.
pub struct Encoder<'a> {
    store: &'a Store,
    dict: &'a mut Dictionary,
    /// The encoded bytes.
    pub out: Vec<u8>,
}

impl<'a> Encoder<'a> {
    /// An encoder appending to an empty buffer.
    pub fn new(store: &'a Store, dict: &'a mut Dictionary) -> Self {
        Encoder {
            store,
            dict,
            out: Vec::new(),
        }
    }

    fn no_encode(&self, v: &Value) -> bool {
        matches!(v, Value::Tuple(t) if self.store.get(*t, known::NO_ENCODE).is_some())
    }

    /// Writes an attribute name (Nanos `encode_symbol`).
    pub fn symbol(&mut self, sym: Sym) {
        if let Some(index) = self.dict.index(Entity::Sym(sym)) {
            push_header(&mut self.out, false, TYPE_BUFFER, index);
        } else {
            let name = self.store.symbols.name(sym);
            push_header(&mut self.out, true, TYPE_BUFFER, name.len() as u64);
            self.out.extend_from_slice(name);
            self.dict.record(Entity::Sym(sym));
        }
    }

    fn one(&mut self, v: Option<&Value>, tasks: &mut Vec<Task>) {
        let store = self.store;
        match v {
            None => push_header(&mut self.out, true, TYPE_BUFFER, 0),
            Some(Value::Flag) => {
                push_header(&mut self.out, true, TYPE_BUFFER, 1);
                self.out.push(0);
            }
            Some(Value::Int(i)) => {
                let negative = i.negative && i.magnitude != 0;
                push_header(&mut self.out, true, TYPE_INTEGER, u64::from(negative));
                varint::push(&mut self.out, i.magnitude);
            }
            Some(Value::Str(b)) => {
                push_header(&mut self.out, true, TYPE_STRING, b.len() as u64);
                self.out.extend_from_slice(b);
            }
            Some(Value::Buf(b)) => {
                push_header(&mut self.out, true, TYPE_BUFFER, b.len() as u64);
                self.out.extend_from_slice(b);
            }
            Some(Value::Tuple(id)) => {
                if let Some(index) = self.dict.index(Entity::Node(*id)) {
                    push_header(&mut self.out, false, TYPE_TUPLE, 0);
                    varint::push(&mut self.out, index);
                } else {
                    let count = store
                        .entries(*id)
                        .filter(|(_, v)| !self.no_encode(v))
                        .count();
                    push_header(&mut self.out, true, TYPE_TUPLE, count as u64);
                    self.dict.record(Entity::Node(*id));
                    if count > 0 {
                        tasks.push(Task::Entries(*id, None));
                    }
                }
            }
            Some(Value::Vector(id)) => {
                if let Some(index) = self.dict.index(Entity::Node(*id)) {
                    push_header(&mut self.out, false, TYPE_VECTOR, 0);
                    varint::push(&mut self.out, index);
                } else {
                    let count = store.vector(*id).len();
                    push_header(&mut self.out, true, TYPE_VECTOR, count as u64);
                    self.dict.record(Entity::Node(*id));
                    if count > 0 {
                        tasks.push(Task::Slots(*id, 0));
                    }
                }
            }
        }
    }

    /// Writes a value (`None` is the null that deletes). Tuples and vectors
    /// already in the dictionary are written as references with no entries;
    /// new ones in full, their nested values iteratively.
    pub fn value(&mut self, v: Option<&Value>) {
        let store = self.store;
        let mut tasks = Vec::new();
        self.one(v, &mut tasks);
        while let Some(task) = tasks.pop() {
            match task {
                Task::Entries(id, after) => {
                    let next = store
                        .entries(id)
                        .find(|(k, v)| after.is_none_or(|a| *k > a) && !self.no_encode(v));
                    if let Some((k, v)) = next {
                        tasks.push(Task::Entries(id, Some(k)));
                        self.symbol(k);
                        self.one(Some(v), &mut tasks);
                    }
                }
                Task::Slots(id, i) => {
                    let slots = store.vector(id);
                    if i < slots.len() {
                        tasks.push(Task::Slots(id, i + 1));
                        self.one(slots[i].as_ref(), &mut tasks);
                    }
                }
            }
        }
    }

    /// Writes the one-entry update "attribute `attr` of `entity` := `v`"
    /// (Nanos `encode_eav`); `entity` must already be in the dictionary.
    pub fn eav(&mut self, entity: NodeId, attr: Sym, v: Option<&Value>) -> bool {
        let Some(index) = self.dict.index(Entity::Node(entity)) else {
            return false;
        };
        push_header(&mut self.out, false, TYPE_TUPLE, 1);
        varint::push(&mut self.out, index);
        self.symbol(attr);
        self.value(v);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;
    use alloc::vec;

    fn enc_header(imm: bool, ty: u8, len: u64) -> Vec<u8> {
        let mut v = Vec::new();
        push_header(&mut v, imm, ty, len);
        v
    }

    #[test]
    fn header_bytes_match_nanos_push_header() {
        // "children" (8 bytes): needs 4 bits > 3, so one extra byte.
        assert_eq!(enc_header(true, TYPE_BUFFER, 8), [0x88, 0x08]);
        assert_eq!(enc_header(true, TYPE_TUPLE, 1), [0x91]);
        assert_eq!(enc_header(true, TYPE_TUPLE, 0), [0x90]);
        assert_eq!(enc_header(false, TYPE_TUPLE, 1), [0x11]);
        assert_eq!(enc_header(true, TYPE_STRING, 7), [0xc7]);
        assert_eq!(enc_header(true, TYPE_INTEGER, 0), [0xb0]);
        // 1000 = 0b1111101000: 10 bits -> 1 extra byte; 1000 >> 7 = 7.
        assert_eq!(enc_header(true, TYPE_BUFFER, 1000), [0x8f, 0x68]);
        // 2^20: 21 bits -> 3 extra bytes.
        assert_eq!(
            enc_header(true, TYPE_BUFFER, 1 << 20),
            [0x88, 0xc0, 0x80, 0x00]
        );
    }

    #[test]
    fn header_round_trip_edges() {
        for len in [0, 1, 7, 8, 127, 128, 1023, 1024, u32::MAX as u64, u64::MAX] {
            for ty in 0..5 {
                let b = enc_header(len % 2 == 0, ty, len);
                let mut pos = 0;
                let h = pop_header(&b, &mut pos, Encoding::V5).unwrap();
                assert_eq!((h.immediate, h.ty, h.len), (len % 2 == 0, ty, len));
                assert_eq!(pos, b.len());
            }
        }
    }

    #[test]
    fn decodes_a_small_tuple_and_numbers_entries() {
        // (children:()) as Nanos mkfs -e writes it.
        let mut bytes = vec![0x91, 0x88, 0x08];
        bytes.extend_from_slice(b"children");
        bytes.push(0x90);
        let mut store = Store::new();
        let mut dict = Dictionary::new();
        let mut stats = DecodeStats::default();
        let (v, used) = decode(&bytes, &mut store, &mut dict, Encoding::V5, &mut stats).unwrap();
        assert_eq!(used, bytes.len());
        let Some(Value::Tuple(root)) = v else {
            panic!("not a tuple")
        };
        assert_eq!(dict.lookup(1), Some(Entity::Node(root)));
        assert_eq!(dict.lookup(2), Some(Entity::Sym(known::CHILDREN)));
        let Some(Value::Tuple(c)) = store.get(root, known::CHILDREN) else {
            panic!("no children")
        };
        assert_eq!(dict.lookup(3), Some(Entity::Node(*c)));
        assert_eq!(stats.total, 1);
    }

    #[test]
    fn refuses_dangling_references_and_bad_types() {
        let mut store = Store::new();
        let mut dict = Dictionary::new();
        let mut stats = DecodeStats::default();
        assert!(
            decode(
                &[0x11, 0x05],
                &mut store,
                &mut dict,
                Encoding::V5,
                &mut stats
            )
            .is_err()
        );
        assert!(decode(&[0xd0], &mut store, &mut dict, Encoding::V5, &mut stats).is_err());
        assert!(
            decode(
                &[0x91, 0x85, b'a'],
                &mut store,
                &mut dict,
                Encoding::V5,
                &mut stats
            )
            .is_err()
        );
        assert!(
            decode(
                &[0x30, 0x01],
                &mut store,
                &mut dict,
                Encoding::V5,
                &mut stats
            )
            .is_err()
        );
    }

    /// An immediate name (symbol) of `n` bytes.
    fn name(out: &mut Vec<u8>, n: &[u8]) {
        push_header(out, true, TYPE_BUFFER, n.len() as u64);
        out.extend_from_slice(n);
    }

    fn int(out: &mut Vec<u8>, v: u64) {
        push_header(out, true, TYPE_INTEGER, 0);
        varint::push(out, v);
    }

    /// Attributes of tuple `t` by name, with their integers.
    fn attrs(store: &Store, t: NodeId) -> Vec<(Vec<u8>, Option<u64>)> {
        store
            .entries(t)
            .map(|(k, v)| (store.symbols.name(k).to_vec(), v.as_u64()))
            .collect()
    }

    fn top_tuple(v: Option<Value>) -> NodeId {
        match v {
            Some(Value::Tuple(t)) => t,
            other => panic!("not a tuple: {other:?}"),
        }
    }

    /// A large new tuple (its attributes collected and set at its end)
    /// ends as setting them one by one would: the later of two values of
    /// one name wins, a null removes, and the counts agree.
    #[test]
    fn large_tuples_end_as_if_set_one_by_one() {
        let mut b = Vec::new();
        push_header(&mut b, true, TYPE_TUPLE, 22);
        for i in 0..20u64 {
            name(&mut b, format!("a{i:02}").as_bytes());
            int(&mut b, i);
        }
        // a03 again (a reference: dictionary entry 2 + 3), then a null for a05.
        push_header(&mut b, false, TYPE_BUFFER, 2 + 3);
        int(&mut b, 77);
        push_header(&mut b, false, TYPE_BUFFER, 2 + 5);
        push_header(&mut b, true, TYPE_BUFFER, 0);
        let mut store = Store::new();
        let mut dict = Dictionary::new();
        let mut stats = DecodeStats::default();
        let (v, used) = decode(&b, &mut store, &mut dict, Encoding::V5, &mut stats).unwrap();
        assert_eq!(used, b.len());
        let got = attrs(&store, top_tuple(v));
        let mut want: Vec<(Vec<u8>, Option<u64>)> = (0..20u64)
            .filter(|&i| i != 5)
            .map(|i| {
                (
                    format!("a{i:02}").into_bytes(),
                    Some(if i == 3 { 77 } else { i }),
                )
            })
            .collect();
        want.sort();
        let mut got_sorted = got.clone();
        got_sorted.sort();
        assert_eq!(got_sorted, want);
        assert_eq!(
            stats,
            DecodeStats {
                total: 22,
                obsolete: 3
            }
        );

        // In order and unique: one pass, same result as one by one.
        let mut b = Vec::new();
        push_header(&mut b, true, TYPE_TUPLE, 30);
        for i in 0..30u64 {
            name(&mut b, format!("b{i:02}").as_bytes());
            int(&mut b, i * 3);
        }
        let mut stats = DecodeStats::default();
        let (v, _) = decode(&b, &mut store, &mut dict, Encoding::V5, &mut stats).unwrap();
        let t = top_tuple(v);
        assert_eq!(store.tuple_len(t), 30);
        let b7 = store.symbols.find(b"b07").unwrap();
        assert_eq!(store.get(t, b7).and_then(Value::as_u64), Some(21));
        assert_eq!(
            stats,
            DecodeStats {
                total: 30,
                obsolete: 0
            }
        );
    }

    /// A value inside a large new tuple that writes into that tuple
    /// (a reference with entries) lands after the attributes before it,
    /// as the log orders them: `x` is 1, then 2, and 2 stays.
    #[test]
    fn writes_into_a_collecting_tuple_keep_log_order() {
        let mut b = Vec::new();
        push_header(&mut b, true, TYPE_TUPLE, 20); // dictionary entry 1
        for i in 0..18u64 {
            name(&mut b, format!("a{i:02}").as_bytes());
            int(&mut b, i);
        }
        name(&mut b, b"x"); // entry 20
        int(&mut b, 1);
        name(&mut b, b"y");
        // (ref 1 with one entry: x := 2)
        push_header(&mut b, false, TYPE_TUPLE, 1);
        varint::push(&mut b, 1);
        push_header(&mut b, false, TYPE_BUFFER, 20);
        int(&mut b, 2);
        let mut store = Store::new();
        let mut dict = Dictionary::new();
        let mut stats = DecodeStats::default();
        let (v, used) = decode(&b, &mut store, &mut dict, Encoding::V5, &mut stats).unwrap();
        assert_eq!(used, b.len());
        let t = top_tuple(v);
        let x = store.symbols.find(b"x").unwrap();
        let y = store.symbols.find(b"y").unwrap();
        assert_eq!(store.get(t, x).and_then(Value::as_u64), Some(2));
        assert_eq!(store.get(t, y), Some(&Value::Tuple(t)));
        assert_eq!(store.tuple_len(t), 20);
        assert_eq!(
            stats,
            DecodeStats {
                total: 21,
                obsolete: 1
            }
        );
    }

    /// Everything about a store a test compares: each node's attributes
    /// by name, the dictionary, the counts.
    fn snapshot(store: &Store, dict: &Dictionary, stats: DecodeStats) -> Vec<u8> {
        let mut out = format!("{stats:?}\n").into_bytes();
        for id in 0..store.node_count() as NodeId {
            for (k, v) in store.entries(id) {
                out.extend(format!("{id} ").bytes());
                out.extend_from_slice(store.symbols.name(k));
                out.extend(format!(" {v:?}\n").bytes());
            }
        }
        for i in 1..=dict.len() as u64 {
            let e = match dict.lookup(i) {
                Some(Entity::Sym(s)) => format!("{i} sym {:?}\n", store.symbols.name(s)),
                other => format!("{i} {other:?}\n"),
            };
            out.extend(e.bytes());
        }
        out
    }

    /// The update path and the general decoder agree on every entry, the
    /// shapes the update path takes and those it leaves to the general
    /// one (a name referring to one numbered in the same entry, a large
    /// tuple, a nested tuple, trailing bytes).
    #[test]
    fn updates_decode_as_the_general_decoder_does() {
        // The base: (children:() f:()) numbered 1 (root), 2 children,
        // 3 its tuple, 4 "f", 5 f's tuple; the updates are to f.
        let mut base = Vec::new();
        push_header(&mut base, true, TYPE_TUPLE, 2);
        name(&mut base, b"children");
        push_header(&mut base, true, TYPE_TUPLE, 0);
        name(&mut base, b"f");
        push_header(&mut base, true, TYPE_TUPLE, 0);
        let update = |attr: &dyn Fn(&mut Vec<u8>), value: &dyn Fn(&mut Vec<u8>)| {
            let mut b = Vec::new();
            push_header(&mut b, false, TYPE_TUPLE, 1);
            varint::push(&mut b, 5);
            attr(&mut b);
            value(&mut b);
            b
        };
        let new_name = |n: &'static [u8]| move |b: &mut Vec<u8>| name(b, n);
        let known = |i: u64| move |b: &mut Vec<u8>| push_header(b, false, TYPE_BUFFER, i);
        let extent = |b: &mut Vec<u8>| {
            push_header(b, true, TYPE_TUPLE, 4);
            name(b, b"offset");
            int(b, 3073);
            name(b, b"length");
            int(b, 1);
            name(b, b"allocated");
            int(b, 8);
            name(b, b"uninited");
            push_header(b, true, TYPE_BUFFER, 1);
            b.push(0);
        };
        let entries: Vec<Vec<u8>> = vec![
            update(&new_name(b"extents"), &|b| {
                push_header(b, true, TYPE_TUPLE, 0)
            }),
            update(&new_name(b"filelength"), &|b| int(b, 9)),
            update(&known(8), &|b| int(b, 12)),
            update(&new_name(b"0"), &extent),
            update(&new_name(b"s"), &|b| {
                push_header(b, true, TYPE_STRING, 3);
                b.extend_from_slice(b"abc");
            }),
            update(&known(8), &|b| push_header(b, true, TYPE_BUFFER, 0)),
            update(&new_name(b"neg"), &|b| {
                push_header(b, true, TYPE_INTEGER, 1);
                varint::push(b, 5);
            }),
            // Left to the general decoder: "k" numbered in this entry, then
            // referred to inside it.
            update(&new_name(b"k"), &|b| {
                push_header(b, true, TYPE_TUPLE, 1);
                // 6 extents, 7 its tuple, 8 filelength, 9 "0", 10 its
                // tuple, 11-14 its names, 15 s, 16 neg, 17 k.
                let k = 17;
                push_header(b, false, TYPE_BUFFER, k);
                int(b, 1);
            }),
            update(&new_name(b"nest"), &|b| {
                push_header(b, true, TYPE_TUPLE, 1);
                name(b, b"in");
                push_header(b, true, TYPE_TUPLE, 0);
            }),
            update(&new_name(b"big"), &|b| {
                push_header(b, true, TYPE_TUPLE, 9);
                for i in 0..9u64 {
                    name(b, format!("m{i}").as_bytes());
                    int(b, i);
                }
            }),
        ];
        let run = |fast: bool| {
            let mut store = Store::new();
            let mut dict = Dictionary::new();
            let mut stats = DecodeStats::default();
            let mut d = Decoder::default();
            d.decode(&base, &mut store, &mut dict, Encoding::V5, &mut stats)
                .unwrap();
            let mut results = Vec::new();
            for e in &entries {
                let r = if fast {
                    d.decode(e, &mut store, &mut dict, Encoding::V5, &mut stats)
                } else {
                    let (mut stack, mut pending) = (Vec::new(), Vec::new());
                    decode_on(
                        e,
                        &mut store,
                        &mut dict,
                        Encoding::V5,
                        &mut stats,
                        &mut stack,
                        &mut pending,
                    )
                };
                results.push(r.map(|(v, used)| (v, used == e.len())));
            }
            (results, snapshot(&store, &dict, stats))
        };
        let (fast, fast_state) = run(true);
        let (general, general_state) = run(false);
        assert_eq!(fast, general);
        assert!(fast.iter().all(|r| matches!(r, Ok((_, true)))), "{fast:?}");
        assert_eq!(
            alloc::string::String::from_utf8_lossy(&fast_state),
            alloc::string::String::from_utf8_lossy(&general_state)
        );
        // The update path took the usual shapes.
        let mut store = Store::new();
        let mut dict = Dictionary::new();
        let mut stats = DecodeStats::default();
        decode(&base, &mut store, &mut dict, Encoding::V5, &mut stats).unwrap();
        assert!(update::decode(&entries[3], &mut store, &mut dict, &mut stats).is_some());
        assert!(update::decode(&entries[9], &mut store, &mut dict, &mut stats).is_none());
    }

    #[test]
    fn deep_nesting_does_not_recurse() {
        // 100000 nested one-entry tuples: (a:(a:(a:...)))
        let mut bytes = Vec::new();
        for i in 0..100_000 {
            bytes.push(0x91);
            if i == 0 {
                bytes.extend_from_slice(&[0x81, b'a']);
            } else {
                bytes.push(0x02); // reference to symbol index 2
            }
        }
        bytes.push(0x90);
        let mut store = Store::new();
        let mut dict = Dictionary::new();
        let mut stats = DecodeStats::default();
        let r = decode(&bytes, &mut store, &mut dict, Encoding::V5, &mut stats);
        assert!(r.is_err(), "nesting beyond the limit must be refused");
    }
}
