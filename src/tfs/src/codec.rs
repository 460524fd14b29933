//! The TFS value encoding (Nanos `tuple.c`): a header byte — bit 7
//! immediate/reference, bits 6..4 the type (0 buffer/symbol, 1 tuple,
//! 2 vector, 3 integer, 4 string), bit 3 "more length bytes", bits 2..0 the
//! high bits of the length — then length bytes of seven bits each (0x80 =
//! continue). Version 4 used bit 6 for the type (tuple or buffer), bit 5
//! for "more" and five length bits. Decoding is iterative, so hostile
//! nesting cannot overflow the stack, and bounds-checked throughout.
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
        let stack = &mut self.stack;
        stack.clear();
        decode_on(buf, store, dict, encoding, stats, stack)
    }
}

fn decode_on(
    buf: &[u8],
    store: &mut Store,
    dict: &mut Dictionary,
    encoding: Encoding,
    stats: &mut DecodeStats,
    stack: &mut Vec<Frame>,
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
                let node = if h.immediate {
                    let node = if is_vector {
                        store.new_vector()
                    } else {
                        // Each attribute takes at least two bytes.
                        let room = (buf.len().saturating_sub(pos) / 2) as u64;
                        store.new_tuple_for(h.len.min(room))
                    };
                    dict.record(Entity::Node(node));
                    node
                } else {
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
                Slot::Attr(t, s) => {
                    let deleting = value.is_none();
                    let old = store.set(t, s, value.take());
                    stats.total += 1;
                    if old.is_some() {
                        stats.obsolete += if deleting { 2 } else { 1 };
                    }
                }
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
            value = Some(if done.is_vector {
                Value::Vector(done.node)
            } else {
                Value::Tuple(done.node)
            });
            slot = done.parent;
        }
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
