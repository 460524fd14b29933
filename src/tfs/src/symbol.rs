//! Symbol interning: every attribute name is stored once and named by a
//! [`Sym`]. The names TFS itself uses are interned first, in a fixed
//! order, so they have fixed ids and a fixed place in every tuple.
//!
//! Runs in kernel-lock/thread context only and takes no locks itself.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
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

/// The table of interned names.
#[derive(Debug, Clone)]
pub struct SymbolTable {
    names: Vec<Box<[u8]>>,
    ids: BTreeMap<Box<[u8]>, Sym>,
}

impl Default for SymbolTable {
    fn default() -> Self {
        Self::new()
    }
}

impl SymbolTable {
    /// A table holding the [`WELL_KNOWN`] names.
    pub fn new() -> Self {
        let mut table = SymbolTable {
            names: Vec::new(),
            ids: BTreeMap::new(),
        };
        for name in WELL_KNOWN {
            table.intern(name);
        }
        table
    }

    /// The symbol for `name`, interning it if new.
    pub fn intern(&mut self, name: &[u8]) -> Sym {
        if let Some(&sym) = self.ids.get(name) {
            return sym;
        }
        let sym = Sym(self.names.len() as u32);
        self.names.push(name.into());
        self.ids.insert(name.into(), sym);
        sym
    }

    /// The symbol for `name` if it was interned.
    pub fn find(&self, name: &[u8]) -> Option<Sym> {
        self.ids.get(name).copied()
    }

    /// The name of `sym`.
    pub fn name(&self, sym: Sym) -> &[u8] {
        &self.names[sym.0 as usize]
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
}
