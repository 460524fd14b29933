//! TODO
use cairn_pc::pci::PciFunction;
pub fn matches(_f: &PciFunction) -> bool { false }
pub fn probe(_f: &PciFunction, _i: usize) -> Result<alloc::vec::Vec<&'static dyn cairn_block::BlockDevice>, &'static str> { Ok(alloc::vec::Vec::new()) }
