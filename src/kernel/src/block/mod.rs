//! The block layer's kernel side: driver discovery at boot, the device and
//! volume registry the filesystem mounts from, and blocking I/O helpers for
//! kernel threads.
//!
//! | module | owns |
//! |---|---|
//! | [`env`] | the kernel's `DriverEnv` for `cairn_drivers` |
//! | here | [`init`] (probe every supported device: virtio-blk, ata, pvscsi, virtio-scsi, NVMe, Xen; read each disk's MBR), [`volumes`], [`wait_io`] |
//!
//! **Contexts.** [`init`] runs in the main kernel thread before the workload
//! (kernel-lock context: probing may busy-wait, reading partition tables
//! sleeps). The registry is read in kernel-lock context. [`wait_io`] blocks
//! a kernel thread (kernel-lock context; the kernel lock is released while
//! it sleeps) until a completion in bh context wakes it.
//!
//! **Locks.** `block.registry` and `block.adapters` (the NVMe controllers
//! and virtio-scsi adapters kept for their counters), SpinLocks taken in
//! kernel-lock context only, leaves. Waiters sleep on one shared wait queue (`IO_WAIT`): completions
//! only set their own flag and wake it, so nothing a completion drops owns
//! general-heap memory.

pub mod env;

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use cairn_block::Volume;
use cairn_block::{BlockDevice, DeviceInfo, Request, Segment, Status, WriteCache};
use cairn_sync::cpu::bh_safe_alloc;
use cairn_sync::{LockClass, SpinLock};

/// A driver's device, which lives for the rest of the run, and its write
/// cache's state (`cairn_block::WriteCache`: a sync flushes only when a
/// write completed since the last flush).
struct Static(&'static dyn BlockDevice, Arc<WriteCache>);

impl BlockDevice for Static {
    fn info(&self) -> &DeviceInfo {
        self.0.info()
    }
    fn submit(&self, request: Request) {
        self.0.submit(request)
    }
    fn write_cache(&self) -> Option<&Arc<WriteCache>> {
        Some(&self.1)
    }
}

struct Registry {
    devices: Vec<Arc<dyn BlockDevice>>,
    volumes: Vec<Volume>,
}

static REGISTRY_CLASS: LockClass = LockClass::new("block.registry");
static REGISTRY: SpinLock<Registry> = SpinLock::new(
    &REGISTRY_CLASS,
    Registry {
        devices: Vec::new(),
        volumes: Vec::new(),
    },
);

static ADAPTERS_CLASS: LockClass = LockClass::new("block.adapters");
/// The NVMe controllers, by index (their queues' counters).
static NVME: SpinLock<Vec<&'static cairn_drivers::nvme::Controller>> =
    SpinLock::new(&ADAPTERS_CLASS, Vec::new());
/// The virtio-blk devices, by index (their queues' counters).
static VIRTIO_BLK: SpinLock<Vec<&'static cairn_drivers::virtio::blk::VirtioBlk>> =
    SpinLock::new(&ADAPTERS_CLASS, Vec::new());
/// The virtio-scsi adapters, by index (their event counters).
static VIRTIO_SCSI: SpinLock<Vec<&'static cairn_drivers::virtio::scsi::Adapter>> =
    SpinLock::new(&ADAPTERS_CLASS, Vec::new());

/// NVMe controller `index`, if probed.
pub fn nvme_controller(index: usize) -> Option<&'static cairn_drivers::nvme::Controller> {
    NVME.lock().get(index).copied()
}

/// virtio-blk device `index`, if probed.
pub fn virtio_blk_device(index: usize) -> Option<&'static cairn_drivers::virtio::blk::VirtioBlk> {
    VIRTIO_BLK.lock().get(index).copied()
}

/// virtio-scsi adapter `index`, if probed.
pub fn virtio_scsi_adapter(index: usize) -> Option<&'static cairn_drivers::virtio::scsi::Adapter> {
    VIRTIO_SCSI.lock().get(index).copied()
}

/// Every device found at boot.
pub fn devices() -> Vec<Arc<dyn BlockDevice>> {
    REGISTRY.lock().devices.clone()
}

/// Every volume: each whole disk, then its MBR partitions.
pub fn volumes() -> Vec<Volume> {
    REGISTRY.lock().volumes.clone()
}

/// Flushes submitted to every device since boot (`/proc/cairn/kstats`).
pub fn device_flushes() -> u64 {
    REGISTRY
        .lock()
        .devices
        .iter()
        .filter_map(|d| d.write_cache().map(|c| c.flushes()))
        .sum()
}

/// The volume called `name` (`virtio-blk0`, `virtio-blk0p2`, ...).
pub fn volume(name: &str) -> Option<Volume> {
    REGISTRY
        .lock()
        .volumes
        .iter()
        .find(|v| v.name() == name)
        .cloned()
}

fn add(dev: &'static dyn BlockDevice) {
    let i = dev.info();
    crate::info!(
        "block: {} \"{}\": {} sectors ({} MiB), queue depth {}, {} segments x {} sectors{}",
        i.name,
        i.model,
        i.sectors,
        i.sectors / 2048,
        i.queue_depth,
        i.max_segments,
        i.max_sectors,
        if i.flush { ", write cache" } else { "" }
    );
    let arc: Arc<dyn BlockDevice> =
        bh_safe_alloc(|| Arc::new(Static(dev, Arc::new(WriteCache::new()))));
    let mut r = REGISTRY.lock();
    r.devices.push(arc);
}

/// Probes every PCI function `matches` accepts with `probe` (its index
/// among the functions probed so far), passing what each probe returns to
/// `take`; a refusal is a warning naming `what` and the function.
fn probe_each<T, E: core::fmt::Display>(
    what: &str,
    matches: fn(&cairn_pc::pci::PciFunction) -> bool,
    mut probe: impl FnMut(&cairn_pc::pci::PciFunction, usize) -> Result<T, E>,
    mut take: impl FnMut(T),
) {
    let mut index = 0;
    for f in crate::pci::functions().iter().filter(|f| matches(f)) {
        match probe(f, index) {
            Ok(t) => {
                index += 1;
                take(t);
            }
            Err(e) => crate::warn!("{what} at {}: {e}", f.address),
        }
    }
}

/// Probes every supported device, then reads each disk's partition table.
/// Main kernel thread, once.
pub fn init() {
    use cairn_drivers::{ata, nvme, pvscsi, virtio};
    env::install();
    probe_each(
        "virtio-blk",
        virtio::blk::matches,
        virtio::blk::probe,
        |d| {
            VIRTIO_BLK.lock().push(d);
            add(d)
        },
    );
    probe_each(
        "ata",
        ata::matches,
        |f, _| Ok::<_, &str>(ata::probe(f)),
        |disks| disks.into_iter().for_each(add),
    );
    probe_each("pvscsi", pvscsi::matches, pvscsi::probe, |disks| {
        disks.into_iter().for_each(add)
    });
    probe_each(
        "virtio-scsi",
        virtio::scsi::matches,
        virtio::scsi::probe,
        |p| {
            VIRTIO_SCSI.lock().push(p.adapter);
            p.disks.into_iter().for_each(add);
        },
    );
    probe_each("nvme", nvme::matches, nvme::probe, |p| {
        NVME.lock().push(p.controller);
        p.disks.into_iter().for_each(add);
    });
    if cairn_drivers::xen::detect().is_some() {
        crate::info!("xen: hypervisor detected (blkfront has never run on a Xen host)");
        for d in cairn_drivers::xen::init() {
            add(d);
        }
    }
    for d in devices() {
        scan(d);
    }
}

/// Registers the whole disk and its MBR partitions.
fn scan(dev: Arc<dyn BlockDevice>) {
    let whole = Volume::whole(dev.clone());
    let disk_sectors = dev.info().sectors;
    let mut parts = Vec::new();
    if let Some((phys, virt)) = crate::heaps::dma::alloc(4096) {
        let st = wait_io(
            |done| Request::read(0, &[Segment { phys, len: 512 }], done),
            &whole,
        );
        if st.is_ok() {
            // SAFETY: the read completed; the DMA page is ours.
            let sector0 = unsafe { &*(virt as *const [u8; 512]) };
            match cairn_block::mbr::parse(sector0, disk_sectors) {
                Ok(Some(table)) => {
                    for p in table.iter().flatten() {
                        let name: String = alloc::format!("{}p{}", dev.info().name, p.slot + 1);
                        if let Some(v) = Volume::window(dev.clone(), p.first, p.sectors, name) {
                            crate::info!("block: {v:?} type {:#04x}", p.kind);
                            parts.push(v);
                        }
                    }
                }
                Ok(None) => {}
                Err(e) => crate::warn!("block: {}: partition table refused: {e}", dev.info().name),
            }
        } else {
            crate::warn!("block: {}: reading sector 0: {st:?}", dev.info().name);
        }
        crate::heaps::dma::free(phys, virt, 4096);
    }
    let mut r = REGISTRY.lock();
    r.volumes.push(whole);
    r.volumes.extend(parts);
}

/// Builds a request with `make(completion)`, submits it to `volume` and
/// sleeps until it completes.
pub fn wait_io(
    make: impl FnOnce(Box<dyn FnOnce(Status) + Send>) -> Request,
    volume: &Volume,
) -> Status {
    let w = crate::sched::OneShot::new();
    let done: Box<dyn FnOnce(Status) + Send> = bh_safe_alloc(|| Box::new(w.completion()));
    volume.submit(make(done));
    w.wait()
}

use alloc::boxed::Box;
