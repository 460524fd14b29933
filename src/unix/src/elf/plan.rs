//! Placing a checked [`ElfImage`] at a bias: the [`LoadPlan`], its page
//! ranges ([`LoadPlan::regions`]) and per-page file contents
//! ([`LoadPlan::page_fills`]).
//!
//! Contexts: any; in the kernel, kernel-lock context at `execve`/boot.
//! Locks: none. All addresses were range-checked by the parser and by
//! [`ElfImage::plan`], so the arithmetic here cannot overflow.

use alloc::vec::Vec;

use super::{ElfError, ElfImage, ElfKind, PF_X, PHDR_SIZE};
use crate::{PAGE_SIZE, Prot, USER_END, USER_MIN, page_round_down, page_round_up};

impl ElfImage {
    /// Places the image at `bias` (0 for [`ElfKind::Exec`], a page-aligned
    /// non-zero value for [`ElfKind::Dyn`]) and describes the loading.
    pub fn plan(&self, bias: u64) -> Result<LoadPlan, ElfError> {
        if bias % PAGE_SIZE != 0 || (self.kind == ElfKind::Exec && bias != 0) {
            return Err(ElfError::BadBias(bias));
        }
        let (lo, hi) = self.span();
        let lo_b = lo.checked_add(bias).ok_or(ElfError::BadBias(bias))?;
        let hi_b = hi.checked_add(bias).ok_or(ElfError::BadBias(bias))?;
        if lo_b < USER_MIN || hi_b > USER_END {
            return Err(if bias == 0 {
                ElfError::OutsideUserSpace
            } else {
                ElfError::BadBias(bias)
            });
        }
        // Every address below is inside [lo, hi) and so cannot overflow.
        let segments: Vec<Segment> = self
            .loads
            .iter()
            .map(|&i| {
                let ph = &self.headers[i];
                Segment {
                    vaddr: ph.vaddr + bias,
                    memsz: ph.memsz,
                    file_offset: ph.offset,
                    filesz: ph.filesz,
                    prot: ph.prot(),
                }
            })
            .collect();
        let tls = self.tls.map(|t| {
            let ph = &self.headers[t];
            Tls {
                vaddr: ph.vaddr + bias,
                filesz: ph.filesz,
                memsz: ph.memsz,
                align: ph.align.max(1),
            }
        });
        let table_len = u64::from(self.phnum) * PHDR_SIZE as u64;
        let phdr_addr = match self.phdr {
            Some(p) if self.in_load(self.headers[p].vaddr, table_len) => {
                Some(self.headers[p].vaddr + bias)
            }
            _ => self.loads.iter().find_map(|&i| {
                let ph = &self.headers[i];
                let inside =
                    self.phoff >= ph.offset && self.phoff + table_len <= ph.offset + ph.filesz;
                inside.then(|| ph.vaddr + (self.phoff - ph.offset) + bias)
            }),
        };
        Ok(LoadPlan {
            kind: self.kind,
            bias,
            entry: self.entry + bias,
            segments,
            tls,
            exec_stack: self
                .gnu_stack
                .is_none_or(|g| self.headers[g].flags & PF_X != 0),
            phdrs: Phdrs {
                addr: phdr_addr,
                file_offset: self.phoff,
                count: self.phnum,
            },
            brk_start: hi_b,
        })
    }
}

/// One loadable segment, placed (addresses include the bias).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// First byte's address.
    pub vaddr: u64,
    /// Size in memory; bytes past `filesz` are zero (bss).
    pub memsz: u64,
    /// File offset of the first byte.
    pub file_offset: u64,
    /// Bytes taken from the file.
    pub filesz: u64,
    /// Protection of its pages.
    pub prot: Prot,
}

impl Segment {
    /// One past the last byte.
    pub fn end(&self) -> u64 {
        self.vaddr + self.memsz
    }
}

/// The `PT_TLS` template (placed): what the C library copies into every
/// thread's TLS block. The kernel only needs it if it sets up TLS itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tls {
    /// Address of the initialisation image.
    pub vaddr: u64,
    /// Bytes of initialised data.
    pub filesz: u64,
    /// Total size (the rest is zero).
    pub memsz: u64,
    /// Alignment (≥ 1, a power of two).
    pub align: u64,
}

/// Where the program headers are, for `AT_PHDR`/`AT_PHENT`/`AT_PHNUM`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Phdrs {
    /// Their address in the loaded image (`PT_PHDR`, or the PT_LOAD that
    /// maps their file bytes). `None` if no segment maps them: then the
    /// kernel copies `count * 56` bytes from `file_offset` onto the stack
    /// (see [`crate::stack::PhdrSource::Copy`]).
    pub addr: Option<u64>,
    /// Their file offset (`e_phoff`).
    pub file_offset: u64,
    /// How many (`e_phnum`).
    pub count: u16,
}

/// A page-aligned range of the image and its protection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    /// First page.
    pub start: u64,
    /// One past the last page.
    pub end: u64,
    /// Protection (the union of the segments sharing a page).
    pub prot: Prot,
}

/// File bytes to copy into one page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageFill {
    /// Offset in the page where the bytes go.
    pub page_offset: u64,
    /// File offset to read from.
    pub file_offset: u64,
    /// How many bytes.
    pub len: u64,
}

/// Everything the kernel needs to load a program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadPlan {
    /// Exec or static-pie.
    pub kind: ElfKind,
    /// The bias added to every address.
    pub bias: u64,
    /// Entry point (biased), for `AT_ENTRY` and the first `rip`.
    pub entry: u64,
    /// Loadable segments, ascending, non-overlapping.
    pub segments: Vec<Segment>,
    /// The TLS template, if any.
    pub tls: Option<Tls>,
    /// Whether the stack should be executable (`PT_GNU_STACK` with PF_X, or
    /// no `PT_GNU_STACK` at all, Linux's x86-64 default).
    pub exec_stack: bool,
    /// Program header location.
    pub phdrs: Phdrs,
    /// Page-aligned end of the image: where `brk` starts.
    pub brk_start: u64,
}

impl LoadPlan {
    /// The page ranges to map, ascending and non-overlapping. Two segments
    /// that share a page (a linker may end one and start the next in the
    /// same page) give that page the union of their protections; adjacent
    /// ranges with equal protection are merged.
    pub fn regions(&self) -> Vec<Region> {
        let mut out: Vec<Region> = Vec::new();
        for s in &self.segments {
            let start = page_round_down(s.vaddr);
            // Checked at plan time: the end rounds up below USER_END.
            let end = page_round_up(s.end()).unwrap_or(USER_END);
            let mut piece = Region {
                start,
                end,
                prot: s.prot,
            };
            if let Some(last) = out.last_mut() {
                if last.end > start {
                    // Shares exactly the page [start, last.end).
                    let shared = Region {
                        start,
                        end: last.end,
                        prot: last.prot | s.prot,
                    };
                    last.end = start;
                    if last.start == last.end {
                        out.pop();
                    }
                    push_merged(&mut out, shared);
                    piece.start = shared.end;
                }
            }
            if piece.start < piece.end {
                push_merged(&mut out, piece);
            }
        }
        out
    }

    /// The file bytes that go into the page at `page` (page aligned); the
    /// rest of the page is zero. Empty for pages outside the file-backed
    /// parts.
    pub fn page_fills(&self, page: u64) -> impl Iterator<Item = PageFill> + '_ {
        let page = page_round_down(page);
        let page_end = page.saturating_add(PAGE_SIZE);
        self.segments.iter().filter_map(move |s| {
            let from = s.vaddr.max(page);
            let to = (s.vaddr + s.filesz).min(page_end);
            (from < to).then(|| PageFill {
                page_offset: from - page,
                file_offset: s.file_offset + (from - s.vaddr),
                len: to - from,
            })
        })
    }
}

fn push_merged(out: &mut Vec<Region>, r: Region) {
    if let Some(last) = out.last_mut() {
        if last.end == r.start && last.prot == r.prot {
            last.end = r.end;
            return;
        }
    }
    out.push(r);
}
