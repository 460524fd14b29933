//! The shared dictionary: every tuple, vector and symbol written in
//! immediate form gets the next index (1, 2, 3, ...) in log order, on the
//! writing side (Nanos's `srecord`) and the reading side (`drecord`) alike,
//! so later entries can refer to it by index. The root tuple is entry 1.
//!
//! Runs in kernel-lock/thread context only and takes no locks itself.

use crate::store::NodeId;
use crate::symbol::Sym;
use alloc::vec::Vec;

/// Something the dictionary can number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Entity {
    /// A tuple or vector.
    Node(NodeId),
    /// An attribute name.
    Sym(Sym),
}

/// Index ↔ entity numbering of one log chain. Node ids and symbols are
/// dense small numbers, so the reverse map is two tables indexed by them
/// (0: not numbered): recording an entity during replay allocates nothing
/// but the tables' amortised growth.
#[derive(Debug, Clone, Default)]
pub struct Dictionary {
    by_index: Vec<Entity>,
    node_index: Vec<u32>,
    sym_index: Vec<u32>,
}

impl Dictionary {
    /// An empty dictionary (a new log chain).
    pub fn new() -> Self {
        Self::default()
    }

    /// Numbers `entity` with the next index and returns it.
    pub fn record(&mut self, entity: Entity) -> u64 {
        self.by_index.push(entity);
        let index = self.by_index.len();
        let (table, at) = match entity {
            Entity::Node(n) => (&mut self.node_index, n as usize),
            Entity::Sym(s) => (&mut self.sym_index, s.0 as usize),
        };
        // A chain holds far fewer than 2^32 entries (its extensions are
        // bounded and each entry takes bytes).
        if table.len() == at {
            // The usual case at replay: ids are handed out in order.
            table.push(index as u32);
        } else {
            if table.len() < at {
                table.resize(at + 1, 0);
            }
            table[at] = index as u32;
        }
        index as u64
    }

    fn slot(&self, entity: Entity) -> Option<u64> {
        let (table, at) = match entity {
            Entity::Node(n) => (&self.node_index, n as usize),
            Entity::Sym(s) => (&self.sym_index, s.0 as usize),
        };
        table.get(at).copied().filter(|&i| i != 0).map(u64::from)
    }

    /// The entity numbered `index`.
    pub fn lookup(&self, index: u64) -> Option<Entity> {
        let i = usize::try_from(index.checked_sub(1)?).ok()?;
        self.by_index.get(i).copied()
    }

    /// The (latest) index of `entity`.
    pub fn index(&self, entity: Entity) -> Option<u64> {
        self.slot(entity)
    }

    /// Number of indices handed out.
    pub fn len(&self) -> usize {
        self.by_index.len()
    }

    /// True if nothing was numbered yet.
    pub fn is_empty(&self) -> bool {
        self.by_index.is_empty()
    }

    /// True if `node` is numbered (it has been written to this chain).
    pub fn contains_node(&self, node: NodeId) -> bool {
        self.slot(Entity::Node(node)).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbering_starts_at_one_and_is_sequential() {
        let mut d = Dictionary::new();
        assert_eq!(d.record(Entity::Node(7)), 1);
        assert_eq!(d.record(Entity::Sym(Sym(3))), 2);
        assert_eq!(d.lookup(1), Some(Entity::Node(7)));
        assert_eq!(d.lookup(0), None);
        assert_eq!(d.lookup(3), None);
        assert_eq!(d.index(Entity::Sym(Sym(3))), Some(2));
        // A re-recorded entity keeps the sequence going; its latest index wins.
        assert_eq!(d.record(Entity::Sym(Sym(3))), 3);
        assert_eq!(d.index(Entity::Sym(Sym(3))), Some(3));
        assert_eq!(d.lookup(2), Some(Entity::Sym(Sym(3))));
    }
}
