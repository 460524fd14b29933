//! SCSI for the SCSI host drivers (pvscsi, virtio-scsi): the commands of a
//! disk (CDBs), sense data, what a command's status means for its request,
//! and the probe of a target's logical units.
//!
//! * I/O: READ/WRITE(10) while the LBA fits 32 bits and the count 16 bits,
//!   READ/WRITE(16) otherwise; flush is SYNCHRONIZE CACHE(10) of the whole
//!   device.
//! * Status: GOOD ends the request `Ok`. CHECK CONDITION carries sense data
//!   (fixed or descriptor format): UNIT ATTENTION and NOT READY / becoming
//!   ready are retried (a bounded number of times), ILLEGAL REQUEST / LBA
//!   OUT OF RANGE ends in `OutOfRange`, anything else in `IoError`. BUSY
//!   and TASK SET FULL are retried. ABORTED COMMAND is not: QEMU reports a
//!   failed host I/O that way (ASC/ASCQ 00/06), and a failed flush retried
//!   into success would tell fsync its data is safe when it is not.
//! * Probe ([`probe_target`]): INQUIRY of LUN 0 (does the target answer?),
//!   REPORT LUNS (which units; LUN 0 alone if it fails), then per unit
//!   INQUIRY (a connected direct-access device), TEST UNIT READY until the
//!   power-on UNIT ATTENTION has been reported, READ CAPACITY(16).
//!
//! Pure logic: any context, no locks. The probe runs commands through the
//! driver's synchronous [`Poll`] (probe context).

use crate::queue::{DriverQueue, Hardware, Harvest};
use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use cairn_block::{BlockDevice, DeviceInfo, Op, Request, SECTOR_SIZE, Status};
use cairn_sync::cpu::bh_safe_alloc;

pub const TEST_UNIT_READY: u8 = 0x00;
pub const INQUIRY: u8 = 0x12;
pub const READ_10: u8 = 0x28;
pub const WRITE_10: u8 = 0x2a;
pub const SYNCHRONIZE_CACHE_10: u8 = 0x35;
pub const READ_16: u8 = 0x88;
pub const WRITE_16: u8 = 0x8a;
pub const SERVICE_ACTION_IN_16: u8 = 0x9e;
pub const READ_CAPACITY_16: u8 = 0x10;
pub const REPORT_LUNS: u8 = 0xa0;

/// SCSI status bytes.
pub const GOOD: u8 = 0x00;
pub const CHECK_CONDITION: u8 = 0x02;
pub const BUSY: u8 = 0x08;
pub const TASK_SET_FULL: u8 = 0x28;

/// Sense keys.
pub const NOT_READY: u8 = 0x2;
pub const ILLEGAL_REQUEST: u8 = 0x5;
pub const UNIT_ATTENTION: u8 = 0x6;
pub const ABORTED_COMMAND: u8 = 0xb;

/// Times a request is started again after a retryable status.
pub const RETRIES: u8 = 3;

/// A command descriptor block.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Cdb {
    pub bytes: [u8; 16],
    pub len: u8,
}

impl Cdb {
    fn new(bytes: &[u8]) -> Cdb {
        let mut b = [0u8; 16];
        b[..bytes.len()].copy_from_slice(bytes);
        Cdb {
            bytes: b,
            len: bytes.len() as u8,
        }
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// Whether it moves data of a read or write (pvscsi kicks those
    /// through its own register).
    pub fn is_read_write(&self) -> bool {
        matches!(self.bytes[0], READ_10 | WRITE_10 | READ_16 | WRITE_16)
    }
}

/// The CDB of a block request.
pub fn cdb_for(r: &Request) -> Cdb {
    match r.op {
        Op::Flush => Cdb::new(&[SYNCHRONIZE_CACHE_10, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
        op => {
            let write = op == Op::Write;
            let mut c = [0u8; 16];
            if r.sector + r.sectors <= u64::from(u32::MAX) && r.sectors <= 0xffff {
                c[0] = if write { WRITE_10 } else { READ_10 };
                c[2..6].copy_from_slice(&(r.sector as u32).to_be_bytes());
                c[7..9].copy_from_slice(&(r.sectors as u16).to_be_bytes());
                Cdb::new(&c[..10])
            } else {
                c[0] = if write { WRITE_16 } else { READ_16 };
                c[2..10].copy_from_slice(&r.sector.to_be_bytes());
                c[10..14].copy_from_slice(&(r.sectors as u32).to_be_bytes());
                Cdb::new(&c)
            }
        }
    }
}

/// INQUIRY of `len` bytes of standard data.
pub fn inquiry(len: u8) -> Cdb {
    Cdb::new(&[INQUIRY, 0, 0, 0, len, 0])
}

pub fn test_unit_ready() -> Cdb {
    Cdb::new(&[TEST_UNIT_READY, 0, 0, 0, 0, 0])
}

/// READ CAPACITY(16), 32 bytes of parameter data.
pub fn read_capacity_16() -> Cdb {
    let mut c = [0u8; 16];
    c[0] = SERVICE_ACTION_IN_16;
    c[1] = READ_CAPACITY_16;
    c[13] = 32;
    Cdb::new(&c)
}

/// REPORT LUNS with an allocation length of `len` bytes.
pub fn report_luns(len: u32) -> Cdb {
    let mut c = [0u8; 12];
    c[0] = REPORT_LUNS;
    c[6..10].copy_from_slice(&len.to_be_bytes());
    Cdb::new(&c)
}

/// Sense key, additional sense code and qualifier.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Sense {
    pub key: u8,
    pub asc: u8,
    pub ascq: u8,
}

/// The sense data in `s` (fixed format 0x70/0x71, descriptor format
/// 0x72/0x73); all zero if there is none.
pub fn parse_sense(s: &[u8]) -> Sense {
    let at = |i: usize| s.get(i).copied().unwrap_or(0);
    match at(0) & 0x7f {
        0x72 | 0x73 => Sense {
            key: at(1) & 0xf,
            asc: at(2),
            ascq: at(3),
        },
        0x70 | 0x71 => Sense {
            key: at(2) & 0xf,
            asc: at(12),
            ascq: at(13),
        },
        _ => Sense::default(),
    }
}

/// What a finished command means for its request.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Done(Status),
    /// Start it again (if retries are left).
    Retry,
}

/// The outcome of a command that reached the target with SCSI status
/// `status` and `sense`.
pub fn outcome(status: u8, sense: Sense) -> Outcome {
    match status {
        GOOD => Outcome::Done(Status::Ok),
        BUSY | TASK_SET_FULL => Outcome::Retry,
        CHECK_CONDITION => match (sense.key, sense.asc, sense.ascq) {
            (UNIT_ATTENTION, _, _) => Outcome::Retry,
            (NOT_READY, 0x04, 0x01) => Outcome::Retry, // becoming ready
            (ILLEGAL_REQUEST, 0x21, _) => Outcome::Done(Status::OutOfRange),
            _ => Outcome::Done(Status::IoError),
        },
        _ => Outcome::Done(Status::IoError),
    }
}

/// The status a finished command ends its request with, or `None` to
/// start it again (`retries` left: the unit's count).
pub fn settle(o: Outcome, retries: u8) -> Option<Status> {
    match o {
        Outcome::Done(st) => Some(st),
        Outcome::Retry if retries > 0 => None,
        Outcome::Retry => Some(Status::IoError),
    }
}

/// Ends `r` by `result` in a host's harvest, or starts it again while
/// `u` has retries left; a failure is logged by `log` first.
pub fn complete<H>(out: &mut Harvest<'_, Unit>, r: Request, u: Unit, result: Outcome, log: H)
where
    H: FnOnce(&Request, &Unit, Status),
{
    match settle(result, u.retries) {
        None => out.retry(r, u.retried()),
        Some(Status::Ok) => out.finish(r, Status::Ok),
        Some(st) => {
            log(&r, &u, st);
            out.finish(r, st);
        }
    }
}

/// Which unit a command is for, and its retries left: the tag a SCSI
/// host's queue carries. Probe commands carry their own CDB.
pub struct Unit {
    pub target: u8,
    pub lun: u16,
    pub retries: u8,
    pub cdb: Option<Cdb>,
}

impl Unit {
    /// The same unit with one retry fewer.
    pub fn retried(self) -> Unit {
        Unit {
            retries: self.retries.saturating_sub(1),
            ..self
        }
    }
}

/// One disk (target, LUN) behind a SCSI host whose queue is `H`.
pub struct Disk<H: Hardware<Tag = Unit>> {
    info: DeviceInfo,
    queue: &'static DriverQueue<H>,
    target: u8,
    lun: u16,
}

impl<H: Hardware<Tag = Unit>> BlockDevice for Disk<H> {
    fn info(&self) -> &DeviceInfo {
        &self.info
    }

    fn submit(&self, r: Request) {
        let unit = Unit {
            target: self.target,
            lun: self.lun,
            retries: RETRIES,
            cdb: None,
        };
        self.queue.submit(r, unit, &self.info);
    }
}

/// The limits every disk of a host shares.
#[derive(Copy, Clone, Debug)]
pub struct Limits {
    pub queue_depth: u32,
    pub max_segments: u32,
    pub max_sectors: u32,
}

/// Block devices for the disks `found` on (target, found) behind host
/// `name` (e.g. `pvscsi0`), all on `queue` (probe context).
pub fn disks<H: Hardware<Tag = Unit>>(
    name: &str,
    found: Vec<(u8, Found)>,
    queue: &'static DriverQueue<H>,
    limits: Limits,
) -> Vec<&'static dyn BlockDevice> {
    let mut out: Vec<&'static dyn BlockDevice> = Vec::new();
    for (target, d) in found {
        let disk: &'static Disk<H> = bh_safe_alloc(|| {
            Box::leak(Box::new(Disk {
                info: DeviceInfo {
                    name: crate::name(name, format_args!(":{target}:{}", d.lun)),
                    model: d.model.clone(),
                    sectors: d.sectors,
                    queue_depth: limits.queue_depth,
                    max_segments: limits.max_segments,
                    max_sectors: limits.max_sectors,
                    flush: true,
                },
                queue,
                target,
                lun: d.lun,
            }))
        });
        crate::dlog!(
            Info,
            "{}: \"{}\", {} sectors",
            disk.info.name,
            d.model,
            d.sectors
        );
        out.push(disk);
    }
    out
}

/// What the standard INQUIRY data says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inquiry {
    /// Peripheral qualifier 0 and device type 0: a connected disk.
    pub disk: bool,
    /// `vendor product`, trimmed.
    pub model: String,
}

pub fn parse_inquiry(d: &[u8]) -> Inquiry {
    let first = d.first().copied().unwrap_or(0x7f);
    let field = |r: core::ops::Range<usize>| crate::ascii(d.get(r).unwrap_or(&[]));
    let mut model = field(8..16);
    model.push(' ');
    model.push_str(&field(16..32));
    Inquiry {
        disk: first == 0,
        model: String::from(model.trim()),
    }
}

/// (blocks, block size) from READ CAPACITY(16) data.
pub fn parse_capacity_16(d: &[u8]) -> Option<(u64, u32)> {
    let last = u64::from_be_bytes(d.get(0..8)?.try_into().ok()?);
    let size = u32::from_be_bytes(d.get(8..12)?.try_into().ok()?);
    Some((last.checked_add(1)?, size))
}

/// The LUNs of REPORT LUNS data (peripheral and flat addressing; others
/// skipped), at most `max` of them.
pub fn parse_report_luns(d: &[u8], max: usize) -> Vec<u16> {
    let Some(len) = d
        .get(0..4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    else {
        return Vec::new();
    };
    let end = (8 + len as usize).min(d.len());
    let mut luns: Vec<u16> = d
        .get(8..end)
        .unwrap_or(&[])
        .chunks_exact(8)
        .filter_map(|e| match e[0] >> 6 {
            0 if e[0] == 0 => Some(u16::from(e[1])),
            1 => Some((u16::from(e[0] & 0x3f) << 8) | u16::from(e[1])),
            _ => None,
        })
        .take(max)
        .collect();
    luns.sort_unstable();
    luns.dedup();
    luns
}

/// How a probe command ended at the transport level.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Transport {
    /// The target does not exist (selection timeout, bad target).
    NoTarget,
    /// Any other failure to deliver the command.
    Failed,
}

/// A driver's synchronous command path (probe context).
pub trait Poll {
    /// Runs `cdb` on (`target`, `lun`) reading up to `data_in` bytes:
    /// (SCSI status, sense, the data read).
    fn command(
        &mut self,
        target: u16,
        lun: u16,
        cdb: &Cdb,
        data_in: usize,
    ) -> Result<(u8, Sense, Vec<u8>), Transport>;
}

/// A disk found by [`probe_target`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    pub lun: u16,
    pub model: String,
    /// Capacity in 512-byte sectors.
    pub sectors: u64,
}

/// Most LUNs probed per target.
pub const MAX_LUNS: usize = 64;

/// The disks of `target`; `Err` names why one unit was skipped (logged by
/// the caller) alongside the ones found.
pub fn probe_target(p: &mut dyn Poll, target: u16) -> (Vec<Found>, Vec<(u16, &'static str)>) {
    let (mut found, mut skipped) = (Vec::new(), Vec::new());
    if p.command(target, 0, &inquiry(96), 96).is_err() {
        return (found, skipped);
    }
    let luns = match p.command(
        target,
        0,
        &report_luns(8 + 8 * MAX_LUNS as u32),
        8 + 8 * MAX_LUNS,
    ) {
        Ok((GOOD, _, d)) => parse_report_luns(&d, MAX_LUNS),
        _ => alloc::vec![0],
    };
    for lun in luns {
        match probe_lun(p, target, lun) {
            Ok(Some(f)) => found.push(f),
            Ok(None) => {}
            Err(why) => skipped.push((lun, why)),
        }
    }
    (found, skipped)
}

/// One unit: `Ok(None)` if it is not a connected disk.
fn probe_lun(p: &mut dyn Poll, target: u16, lun: u16) -> Result<Option<Found>, &'static str> {
    let inq = match p.command(target, lun, &inquiry(96), 96) {
        Ok((GOOD, _, d)) => parse_inquiry(&d),
        _ => return Ok(None),
    };
    if !inq.disk {
        return Ok(None);
    }
    // Let the power-on UNIT ATTENTION be reported.
    for _ in 0..4 {
        if let Ok((GOOD, _, _)) = p.command(target, lun, &test_unit_ready(), 0) {
            break;
        }
    }
    for _ in 0..3 {
        if let Ok((GOOD, _, d)) = p.command(target, lun, &read_capacity_16(), 32) {
            let (blocks, size) = parse_capacity_16(&d).ok_or("short READ CAPACITY data")?;
            if size as usize != SECTOR_SIZE {
                return Err("only 512-byte blocks are supported");
            }
            return Ok(Some(Found {
                lun,
                model: inq.model,
                sectors: blocks,
            }));
        }
    }
    Err("READ CAPACITY failed")
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use cairn_block::Segment;

    fn req(write: bool, sector: u64, sectors: u64) -> Request {
        let seg = [Segment {
            phys: 0x1000,
            len: (sectors * 512) as u32,
        }];
        let mut r = if write {
            Request::write(sector, &seg, |_| {})
        } else {
            Request::read(sector, &seg, |_| {})
        };
        r.sectors = sectors;
        r
    }

    #[test]
    fn small_requests_use_10_byte_cdbs_and_large_ones_16() {
        let r = req(false, 0x1234_5678, 8);
        let c = cdb_for(&r);
        assert_eq!(
            c.as_slice(),
            &[READ_10, 0, 0x12, 0x34, 0x56, 0x78, 0, 0, 8, 0]
        );
        r.complete(Status::Ok);
        let r = req(true, 0x1_0000_0000, 16);
        let c = cdb_for(&r);
        assert_eq!(c.len, 16);
        assert_eq!(c.bytes[0], WRITE_16);
        assert_eq!(&c.bytes[2..10], &0x1_0000_0000u64.to_be_bytes());
        assert_eq!(&c.bytes[10..14], &16u32.to_be_bytes());
        assert!(c.is_read_write());
        r.complete(Status::Ok);
        // Ending exactly at 2^32 still fits (10); one past does not.
        let r = req(false, u64::from(u32::MAX) - 8, 8);
        assert_eq!(cdb_for(&r).len, 10);
        r.complete(Status::Ok);
        let r = req(false, u64::from(u32::MAX) - 7, 8);
        assert_eq!(cdb_for(&r).len, 16);
        r.complete(Status::Ok);
        let f = Request::flush(|_| {});
        assert_eq!(cdb_for(&f).as_slice()[0], SYNCHRONIZE_CACHE_10);
        assert!(!cdb_for(&f).is_read_write());
        f.complete(Status::Ok);
    }

    #[test]
    fn sense_in_both_formats() {
        let mut fixed = [0u8; 18];
        fixed[0] = 0x70;
        fixed[2] = 0x05;
        fixed[12] = 0x21;
        let mut desc = [0u8; 8];
        desc[0] = 0x72;
        desc[1] = 0x06;
        desc[2] = 0x29;
        desc[3] = 0x01;
        assert_eq!(
            parse_sense(&fixed),
            Sense {
                key: 5,
                asc: 0x21,
                ascq: 0
            }
        );
        assert_eq!(
            parse_sense(&desc),
            Sense {
                key: 6,
                asc: 0x29,
                ascq: 1
            }
        );
        assert_eq!(parse_sense(&[]), Sense::default());
        assert_eq!(parse_sense(&[0x70, 0]), Sense::default());
    }

    #[test]
    fn retries_run_out() {
        assert_eq!(settle(Outcome::Retry, 1), None);
        assert_eq!(settle(Outcome::Retry, 0), Some(Status::IoError));
        assert_eq!(
            settle(Outcome::Done(Status::OutOfRange), 3),
            Some(Status::OutOfRange)
        );
    }

    #[test]
    fn outcomes() {
        let s = |key, asc, ascq| Sense { key, asc, ascq };
        assert_eq!(outcome(GOOD, s(0, 0, 0)), Outcome::Done(Status::Ok));
        assert_eq!(
            outcome(CHECK_CONDITION, s(UNIT_ATTENTION, 0x29, 0)),
            Outcome::Retry
        );
        assert_eq!(
            outcome(CHECK_CONDITION, s(ILLEGAL_REQUEST, 0x21, 0)),
            Outcome::Done(Status::OutOfRange)
        );
        assert_eq!(
            outcome(CHECK_CONDITION, s(0x3, 0x11, 0)), // MEDIUM ERROR: unrecovered read
            Outcome::Done(Status::IoError)
        );
        assert_eq!(outcome(BUSY, s(0, 0, 0)), Outcome::Retry);
        // QEMU's failed host I/O: never retried (a flush would "succeed").
        assert_eq!(
            outcome(CHECK_CONDITION, s(ABORTED_COMMAND, 0x00, 0x06)),
            Outcome::Done(Status::IoError)
        );
        assert_eq!(outcome(0x18, s(0, 0, 0)), Outcome::Done(Status::IoError));
    }

    #[test]
    fn inquiry_capacity_and_lun_lists() {
        let mut inq = [b' '; 36];
        inq[0] = 0;
        inq[8..12].copy_from_slice(b"QEMU");
        inq[16..29].copy_from_slice(b"QEMU HARDDISK");
        assert_eq!(
            parse_inquiry(&inq),
            Inquiry {
                disk: true,
                model: "QEMU QEMU HARDDISK".into()
            }
        );
        inq[0] = 0x7f; // no unit
        assert!(!parse_inquiry(&inq).disk);
        inq[0] = 0x05; // CD-ROM
        assert!(!parse_inquiry(&inq).disk);

        let mut cap = [0u8; 32];
        cap[0..8].copy_from_slice(&2047u64.to_be_bytes());
        cap[8..12].copy_from_slice(&512u32.to_be_bytes());
        assert_eq!(parse_capacity_16(&cap), Some((2048, 512)));
        assert_eq!(parse_capacity_16(&cap[..10]), None);

        let mut luns = vec![0u8; 8];
        luns[0..4].copy_from_slice(&24u32.to_be_bytes());
        luns.extend_from_slice(&[0, 5, 0, 0, 0, 0, 0, 0]); // peripheral 5
        luns.extend_from_slice(&[0x40, 0x01, 0, 0, 0, 0, 0, 0]); // flat 1
        luns.extend_from_slice(&[0x41, 0x00, 0, 0, 0, 0, 0, 0]); // flat 256
        luns.extend_from_slice(&[0, 9, 0, 0, 0, 0, 0, 0]); // past the length
        assert_eq!(parse_report_luns(&luns, 64), [1, 5, 256]);
        assert_eq!(parse_report_luns(&luns, 1), [5]);
        assert!(parse_report_luns(&[0, 0], 64).is_empty());
    }

    /// A bus of targets with disks, answering like QEMU's scsi-hd.
    struct Bus {
        targets: Vec<(u16, Vec<(u16, u64)>)>,
        unit_attention: Vec<(u16, u16)>,
    }

    impl Poll for Bus {
        fn command(
            &mut self,
            target: u16,
            lun: u16,
            cdb: &Cdb,
            _: usize,
        ) -> Result<(u8, Sense, Vec<u8>), Transport> {
            let Some((_, luns)) = self.targets.iter().find(|t| t.0 == target) else {
                return Err(Transport::NoTarget);
            };
            let unit = luns.iter().find(|l| l.0 == lun);
            if unit.is_some() && cdb.bytes[0] != INQUIRY && cdb.bytes[0] != REPORT_LUNS {
                if let Some(i) = self.unit_attention.iter().position(|u| *u == (target, lun)) {
                    self.unit_attention.remove(i);
                    return Ok((
                        CHECK_CONDITION,
                        Sense {
                            key: UNIT_ATTENTION,
                            asc: 0x29,
                            ascq: 0,
                        },
                        Vec::new(),
                    ));
                }
            }
            match cdb.bytes[0] {
                INQUIRY => {
                    let mut d = vec![b' '; 96];
                    d[0] = if unit.is_some() { 0 } else { 0x7f };
                    Ok((GOOD, Sense::default(), d))
                }
                REPORT_LUNS => {
                    let mut d = vec![0u8; 8];
                    d[0..4].copy_from_slice(&(8 * luns.len() as u32).to_be_bytes());
                    for (l, _) in luns {
                        d.extend_from_slice(&[0x40 | (l >> 8) as u8, *l as u8, 0, 0, 0, 0, 0, 0]);
                    }
                    Ok((GOOD, Sense::default(), d))
                }
                TEST_UNIT_READY => Ok((GOOD, Sense::default(), Vec::new())),
                SERVICE_ACTION_IN_16 => {
                    let (_, sectors) = unit.ok_or(Transport::Failed)?;
                    let mut d = vec![0u8; 32];
                    d[0..8].copy_from_slice(&(sectors - 1).to_be_bytes());
                    d[8..12].copy_from_slice(&512u32.to_be_bytes());
                    Ok((GOOD, Sense::default(), d))
                }
                _ => Err(Transport::Failed),
            }
        }
    }

    #[test]
    fn probe_finds_every_lun_of_a_target() {
        let mut bus = Bus {
            targets: vec![
                (0, vec![(0, 2048)]),
                (2, vec![(0, 100), (5, 300)]),
                (3, vec![(7, 64)]),
            ],
            unit_attention: vec![(2, 5)],
        };
        let (f, skipped) = probe_target(&mut bus, 2);
        assert!(skipped.is_empty());
        assert_eq!(
            f.iter().map(|f| (f.lun, f.sectors)).collect::<Vec<_>>(),
            [(0, 100), (5, 300)]
        );
        // LUN 0 absent (INQUIRY says "no unit"), LUN 7 present.
        let (f, _) = probe_target(&mut bus, 3);
        assert_eq!(f.iter().map(|f| f.lun).collect::<Vec<_>>(), [7]);
        assert!(probe_target(&mut bus, 1).0.is_empty());
    }
}
