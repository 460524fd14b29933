//! TODO
use cairn_pc::pci::PciFunction;
pub fn matches(_f: &PciFunction) -> bool { false }
pub fn probe(_f: &PciFunction) -> alloc::vec::Vec<&'static dyn cairn_block::BlockDevice> { alloc::vec::Vec::new() }
