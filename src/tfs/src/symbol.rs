//! Symbol interning: every attribute name is stored once and named by a
//! [`Sym`]. The names TFS itself uses are interned first, in a fixed
//! order, so they have fixed ids and a fixed place in every tuple.
//!
//! Runs in kernel-lock/thread context only and takes no locks itself.

use alloc::vec::Vec;

/// An interned name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Sym(pub u32);

/// Names with a meaning to TFS, interned in this order by every
/// [`SymbolTable`]; tuples list their attributes in symbol order, so a file
/// is written as `extents`, `filelength`, ... and an extent as `offset`,
/// `length`, `allocated`, `uninited`, the order of Nanos's `add_extent_to_file`.
pub const WELL_KNOWN: &[&[u8]] = &[
    b"children",
    b"contents",
    b"extents",
    b"filelength",
    b"linktarget",
    b"atime",
    b"mtime",
    b"nlink",
    b"rdev",
    b"offset",
    b"length",
    b"allocated",
    b"uninited",
    b"no_encode",
    b"program",
    b"arguments",
    b"environment",
    b"host",
    b"imagesize",
];

/// Well-known symbol ids, in the order of [`WELL_KNOWN`].
pub mod known {
    use super::Sym;
    pub const CHILDREN: Sym = Sym(0);
    pub const CONTENTS: Sym = Sym(1);
    pub const EXTENTS: Sym = Sym(2);
    pub const FILELENGTH: Sym = Sym(3);
    pub const LINKTARGET: Sym = Sym(4);
    pub const ATIME: Sym = Sym(5);
    pub const MTIME: Sym = Sym(6);
    pub const NLINK: Sym = Sym(7);
    pub const RDEV: Sym = Sym(8);
    pub const OFFSET: Sym = Sym(9);
    pub const LENGTH: Sym = Sym(10);
    pub const ALLOCATED: Sym = Sym(11);
    pub const UNINITED: Sym = Sym(12);
    pub const NO_ENCODE: Sym = Sym(13);
    pub const PROGRAM: Sym = Sym(14);
    pub const ARGUMENTS: Sym = Sym(15);
    pub const ENVIRONMENT: Sym = Sym(16);
    pub const HOST: Sym = Sym(17);
    pub const IMAGESIZE: Sym = Sym(18);
}

/// The table of interned names: every name stored once, back to back in
/// one buffer, found by an open-addressing hash table of symbol ids, so
/// interning a new name (one per file at mount) allocates nothing but the
/// tables' amortised growth.
#[derive(Debug, Clone)]
pub struct SymbolTable {
    /// The names, back to back.
    bytes: Vec<u8>,
    /// Where each symbol's name ends in `bytes` (it starts where the
    /// previous one ends).
    ends: Vec<usize>,
    /// Symbol id + 1 by hash (0: empty); a power of two, at most half full.
    slots: Vec<Slot>,
}

impl Default for SymbolTable {
    fn default() -> Self {
        Self::new()
    }
}

/// A hash table slot: symbol id + 1 (0: empty) and the low 32 bits of its
/// name's hash (compared before the name; the table grows without hashing
/// the names again).
#[derive(Clone, Copy, Debug, Default)]
struct Slot {
    id: u32,
    hash: u32,
}

/// FNV-1a: names are short, and a hostile log gains nothing from
/// collisions but a slower mount (probing stays bounded by the load
/// factor on average).
fn hash(name: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in name {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

impl SymbolTable {
    /// A table holding the [`WELL_KNOWN`] names.
    pub fn new() -> Self {
        let mut table = SymbolTable {
            bytes: Vec::new(),
            ends: Vec::new(),
            slots: alloc::vec![Slot::default(); 64],
        };
        for name in WELL_KNOWN {
            table.intern(name);
        }
        table
    }

    /// The slot holding `name` (whose hash is `h`), or the empty slot
    /// where it would go.
    fn probe(&self, name: &[u8], h: u32) -> usize {
        let mask = self.slots.len() - 1;
        let mut i = h as usize & mask;
        loop {
            match self.slots[i] {
                Slot { id: 0, .. } => return i,
                Slot { id, hash } if hash == h && self.name(Sym(id - 1)) == name => return i,
                _ => i = (i + 1) & mask,
            }
        }
    }

    fn grow(&mut self) {
        let mut slots = alloc::vec![Slot::default(); self.slots.len() * 2];
        let mask = slots.len() - 1;
        for s in self.slots.iter().filter(|s| s.id != 0) {
            let mut i = s.hash as usize & mask;
            while slots[i].id != 0 {
                i = (i + 1) & mask;
            }
            slots[i] = *s;
        }
        self.slots = slots;
    }

    /// The symbol for `name`, interning it if new.
    pub fn intern(&mut self, name: &[u8]) -> Sym {
        let h = hash(name) as u32;
        let i = self.probe(name, h);
        if self.slots[i].id != 0 {
            return Sym(self.slots[i].id - 1);
        }
        let sym = Sym(self.ends.len() as u32);
        self.bytes.extend_from_slice(name);
        self.ends.push(self.bytes.len());
        self.slots[i] = Slot {
            id: sym.0 + 1,
            hash: h,
        };
        if self.ends.len() * 2 > self.slots.len() {
            self.grow();
        }
        sym
    }

    /// The symbol for `name` if it was interned.
    pub fn find(&self, name: &[u8]) -> Option<Sym> {
        match self.slots[self.probe(name, hash(name) as u32)] {
            Slot { id: 0, .. } => None,
            Slot { id, .. } => Some(Sym(id - 1)),
        }
    }

    /// The name of `sym`.
    pub fn name(&self, sym: Sym) -> &[u8] {
        let i = sym.0 as usize;
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.bytes[start..self.ends[i]]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_known_ids_match_names() {
        let t = SymbolTable::new();
        assert_eq!(t.name(known::CHILDREN), b"children");
        assert_eq!(t.name(known::UNINITED), b"uninited");
        assert_eq!(t.name(known::IMAGESIZE), b"imagesize");
        assert_eq!(t.find(b"environment"), Some(known::ENVIRONMENT));
    }

    #[test]
    fn interning_is_idempotent() {
        let mut t = SymbolTable::new();
        let a = t.intern(b"hello");
        let b = t.intern(b"hello");
        assert_eq!(a, b);
        assert_ne!(a, t.intern(b"world"));
        assert_eq!(t.name(a), b"hello");
    }

    #[test]
    fn many_names_survive_growth() {
        let mut t = SymbolTable::new();
        let syms: Vec<Sym> = (0..5000u32)
            .map(|i| t.intern(alloc::format!("f{i}").as_bytes()))
            .collect();
        for (i, &s) in syms.iter().enumerate() {
            let name = alloc::format!("f{i}");
            assert_eq!(t.name(s), name.as_bytes());
            assert_eq!(t.find(name.as_bytes()), Some(s));
            assert_eq!(t.intern(name.as_bytes()), s);
        }
        assert_eq!(t.find(b"children"), Some(known::CHILDREN));
        assert_eq!(t.find(b"nope"), None);
        assert_eq!(t.intern(b""), t.intern(b""));
    }
}
