//! Cutting a request's scatter-gather list into NVMe commands that
//! Physical Region Page entries can describe.
//!
//! PRP rules (NVMe 1.4 §4.3): the first entry may start anywhere
//! dword-aligned in a page; every later entry starts on a page boundary;
//! every entry but the last runs to the end of its page. A request whose
//! segments break those rules (a segment ending mid-page followed by
//! another, a segment starting mid-page after the first) is cut there into
//! several commands ("pieces"), each PRP-describable, each a whole number
//! of sectors; pieces are also cut at the controller's largest transfer.
//! The page-frame lists the pagecache submits are one piece.
//!
//! Pure logic: any context, no locks.

use alloc::vec::Vec;
use cairn_block::{SECTOR_SIZE, Segment};

pub const PAGE: u64 = 4096;

/// One command's share of a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Piece {
    /// First sector, relative to the request's.
    pub sector: u64,
    pub sectors: u32,
    /// Its PRP entries: the first with its offset, the rest page-aligned.
    pub entries: Vec<u64>,
}

/// Why a request cannot be cut into pieces.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum PlanError {
    /// A segment is not dword-aligned in memory.
    Misaligned,
    /// A piece would not be a whole number of sectors.
    PartialSector,
}

/// The pieces of a transfer over `segments`, each at most `max_bytes` (a
/// multiple of [`PAGE`]).
pub fn plan(segments: &[Segment], max_bytes: u64) -> Result<Vec<Piece>, PlanError> {
    debug_assert!(max_bytes >= PAGE && max_bytes % PAGE == 0);
    let mut pieces: Vec<Piece> = Vec::new();
    let mut cur: Option<(Piece, u64)> = None; // (piece, its bytes)
    let mut prev_end_aligned = true;
    let mut at_byte = 0u64;
    for s in segments {
        if s.phys % 4 != 0 {
            return Err(PlanError::Misaligned);
        }
        let (mut addr, end) = (s.phys, s.phys + u64::from(s.len));
        while addr < end {
            let chunk_end = end.min((addr & !(PAGE - 1)) + PAGE);
            let len = chunk_end - addr;
            let fits = match &cur {
                Some((_, bytes)) => {
                    addr % PAGE == 0 && prev_end_aligned && bytes + len <= max_bytes
                }
                None => false,
            };
            if !fits {
                if let Some((p, bytes)) = cur.take() {
                    pieces.push(close(p, bytes)?);
                }
                cur = Some((
                    Piece {
                        sector: at_byte / SECTOR_SIZE as u64,
                        sectors: 0,
                        entries: Vec::new(),
                    },
                    0,
                ));
            }
            let (p, bytes) = cur.as_mut().expect("a piece is open");
            p.entries.push(addr);
            *bytes += len;
            at_byte += len;
            prev_end_aligned = chunk_end % PAGE == 0;
            addr = chunk_end;
        }
    }
    if let Some((p, bytes)) = cur {
        pieces.push(close(p, bytes)?);
    }
    Ok(pieces)
}

fn close(mut p: Piece, bytes: u64) -> Result<Piece, PlanError> {
    if bytes % SECTOR_SIZE as u64 != 0 {
        return Err(PlanError::PartialSector);
    }
    p.sectors = (bytes / SECTOR_SIZE as u64) as u32;
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn seg(phys: u64, len: u32) -> Segment {
        Segment { phys, len }
    }

    #[test]
    fn page_frames_in_any_order_are_one_piece() {
        let segs: Vec<Segment> = [7u64, 3, 9, 1]
            .iter()
            .map(|p| seg(p * PAGE, 4096))
            .collect();
        let p = plan(&segs, 1 << 20).unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].sectors, 32);
        assert_eq!(p[0].entries, [7 * PAGE, 3 * PAGE, 9 * PAGE, PAGE]);
    }

    #[test]
    fn a_contiguous_buffer_starting_mid_page_is_one_piece() {
        let p = plan(&[seg(0x10_0200, 3 * 4096)], 1 << 20).unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].entries, [0x10_0200, 0x10_1000, 0x10_2000, 0x10_3000]);
        assert_eq!(p[0].sectors, 24);
    }

    #[test]
    fn segments_breaking_the_rules_are_cut_where_they_break() {
        // A sector-sized segment ending mid-page, then a page: two pieces.
        let p = plan(&[seg(0x2000, 512), seg(0x5000, 4096)], 1 << 20).unwrap();
        assert_eq!(
            p,
            vec![
                Piece {
                    sector: 0,
                    sectors: 1,
                    entries: vec![0x2000]
                },
                Piece {
                    sector: 1,
                    sectors: 8,
                    entries: vec![0x5000]
                },
            ]
        );
        // A page, then a segment starting mid-page.
        let p = plan(&[seg(0x2000, 4096), seg(0x5200, 1024)], 1 << 20).unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!((p[1].sector, p[1].sectors), (8, 2));
    }

    #[test]
    fn large_transfers_are_cut_at_the_limit() {
        let p = plan(&[seg(0x100_0000, 1 << 20)], 512 << 10).unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!((p[0].sector, p[0].sectors), (0, 1024));
        assert_eq!((p[1].sector, p[1].sectors), (1024, 1024));
        assert_eq!(p[1].entries[0], 0x100_0000 + (512 << 10));
        assert_eq!(p[0].entries.len(), 128);
    }

    #[test]
    fn misaligned_memory_is_refused() {
        assert_eq!(
            plan(&[seg(0x1002, 512)], 1 << 20),
            Err(PlanError::Misaligned)
        );
        // A 4 KiB limit cutting a buffer that starts 4 bytes into a page
        // would leave pieces of partial sectors.
        assert_eq!(
            plan(&[seg(0x1004, 8192)], 4096),
            Err(PlanError::PartialSector)
        );
    }
}
