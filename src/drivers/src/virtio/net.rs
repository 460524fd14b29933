//! virtio-net (modern PCI): one receive and one transmit virtqueue of
//! fixed 2 KiB DMA buffers, for a TCP/IP stack that polls it.
//!
//! **What it owns.** One PCI function: its transport, the receive queue
//! (virtqueue 0, [`RING`] buffers kept posted), the transmit queue
//! (virtqueue 1, [`RING`] slots), the MAC address, and the interrupt
//! (MSI-X entries 0 and 1, or the INTx line). Frames are copied into and
//! out of the buffers; each buffer is one descriptor holding the 12-byte
//! `virtio_net_hdr` followed by the frame. No checksum or segmentation
//! offload is negotiated, even when offered: `VIRTIO_NET_F_CSUM` needs
//! the pseudo-header sum in the frame, which smoltcp does not write, and
//! `GUEST_CSUM` would hand over frames whose checksum is partial, which
//! smoltcp's one receive check (per interface, not per frame) would
//! refuse; smoltcp computes and checks every checksum.
//! What it does not own: the stack, its lock, and the bh work an
//! interrupt queues (the kernel's `net` module).
//!
//! **Contexts.** [`probe`]: boot. [`Nic`]'s methods: under the owner's
//! lock (kernel-lock or bh). The interrupt handler (irq) acknowledges
//! INTx, and queues the owner's bh function through one coalesced
//! [`BhService`].
//!
//! **Locks.** None of its own: the owner's lock (the kernel's `net.stack`)
//! covers the [`Nic`]. Below it only leaf locks (`pci.config` at probe).

use super::{EnvHal, F_VERSION_1, Interrupts, Notifier};
use crate::env::{DmaRegion, IrqHandler, env};
use crate::queue::BhService;
use alloc::boxed::Box;
use alloc::vec::Vec;
use cairn_pc::pci::PciFunction;
use cairn_sync::cpu::bh_safe_alloc;
use virtio_drivers::queue::VirtQueue;
use virtio_drivers::transport::Transport;

/// Buffers per queue.
pub const RING: usize = 128;
/// Bytes per buffer: the header and a 1514-byte frame, rounded up.
const BUF: usize = 2048;
/// `virtio_net_hdr` with VERSION_1 (`num_buffers` included).
pub const HDR: usize = 12;
/// Largest Ethernet frame (no FCS) the buffers carry.
pub const MTU_FRAME: usize = 1514;

const DEVICE_MODERN: u16 = 0x1041;
const DEVICE_TRANSITIONAL: u16 = 0x1000;
const F_MAC: u64 = 1 << 5;

/// Whether `f` is a virtio network device.
pub fn matches(f: &PciFunction) -> bool {
    f.vendor == super::VENDOR && (f.device == DEVICE_MODERN || f.device == DEVICE_TRANSITIONAL)
}

/// What the interrupt handler reaches: the interrupt mode and the owner's
/// bh function.
pub struct NetIrq {
    irq: &'static Interrupts,
    bh: BhService,
    run: fn(usize),
    arg: usize,
}

impl NetIrq {
    /// Called first by the owner's bh function: an interrupt after this
    /// queues it again.
    pub fn begin(&self) {
        self.bh.begin();
    }

    /// Queues the owner's bh function (any context).
    pub fn kick(&self) {
        self.bh.request(self.run, self.arg);
    }
}

fn interrupt(arg: usize) {
    // SAFETY: `arg` is the leaked `NetIrq` of `probe`.
    let n: &'static NetIrq = unsafe { &*(arg as *const NetIrq) };
    if n.irq.ours() {
        n.kick();
    }
}

/// One buffer ring over a virtqueue.
struct Ring {
    queue: VirtQueue<EnvHal, RING>,
    notifier: Notifier,
    mem: DmaRegion,
    /// Buffer index of each token (head descriptor), while on the device.
    by_token: [Option<u16>; RING],
}

impl Ring {
    fn buf(&self, i: u16) -> *mut u8 {
        self.mem.ptr(usize::from(i) * BUF)
    }
}

/// The receive queue.
pub struct Rx {
    ring: Box<Ring>,
    /// Frames received (counter).
    pub frames: u64,
}

/// The transmit queue.
pub struct Tx {
    ring: Box<Ring>,
    free: Vec<u16>,
    /// Frames sent and frames dropped for want of a slot (counters).
    pub frames: u64,
    pub full: u64,
}

/// A probed device: its queues and address.
pub struct Nic {
    pub rx: Rx,
    pub tx: Tx,
    pub mac: [u8; 6],
    pub irq: &'static NetIrq,
}

impl Rx {
    /// Posts buffer `i` for the device to fill.
    fn post(&mut self, i: u16) {
        let p = self.ring.buf(i);
        // SAFETY: buffer `i` of the ring's DMA memory is not on the device
        // (it was just taken back or never posted); the slice only carries
        // its address and length to the virtqueue.
        let buf = unsafe { core::slice::from_raw_parts_mut(p, BUF) };
        // SAFETY: the buffer stays valid and untouched until `pop_used`.
        match unsafe { self.ring.queue.add(&[], &mut [buf]) } {
            Ok(t) => self.ring.by_token[usize::from(t)] = Some(i),
            Err(_) => crate::dlog!(Error, "virtio-net: cannot post a receive buffer"),
        }
    }

    /// Hands the next received frame to `f` and posts its buffer again;
    /// gives `f` back when nothing (well-formed) was received.
    pub fn receive<R, F: FnOnce(&[u8]) -> R>(&mut self, f: F) -> Result<R, F> {
        loop {
            let Some(token) = self.ring.queue.peek_used() else {
                return Err(f);
            };
            let Some(i) = self.ring.by_token[usize::from(token)].take() else {
                crate::dlog!(Error, "virtio-net: used token {token} was never posted");
                return Err(f);
            };
            let p = self.ring.buf(i);
            // SAFETY: as in `post`: the same buffer that token carried.
            let buf = unsafe { core::slice::from_raw_parts_mut(p, BUF) };
            // SAFETY: the buffer `post` added for this token.
            let len = unsafe { self.ring.queue.pop_used(token, &[], &mut [buf]) };
            if let Ok(n) = len
                && (n as usize) > HDR
                && (n as usize) <= BUF
            {
                self.frames += 1;
                // SAFETY: the device returned the buffer and wrote `n`
                // bytes; it is posted again only after `f` returns.
                let frame = unsafe { core::slice::from_raw_parts(p.add(HDR), n as usize - HDR) };
                let r = f(frame);
                self.repost(i);
                return Ok(r);
            }
            // A malformed completion: skip it.
            self.repost(i);
        }
    }

    fn repost(&mut self, i: u16) {
        self.post(i);
        if self.ring.queue.should_notify() {
            self.ring.notifier.notify();
        }
    }

    /// Whether a received frame waits.
    pub fn pending(&self) -> bool {
        self.ring.queue.can_pop()
    }
}

impl Tx {
    /// Takes back the slots the device has sent.
    fn reclaim(&mut self) {
        while let Some(token) = self.ring.queue.peek_used() {
            let Some(i) = self.ring.by_token[usize::from(token)].take() else {
                return;
            };
            let p = self.ring.buf(i);
            // SAFETY: the buffer `send` added for this token, its length
            // recorded nowhere else: the virtqueue only checks addresses
            // of the chain head, which is this slot.
            let buf = unsafe { core::slice::from_raw_parts(p, BUF) };
            // SAFETY: as above.
            let _ = unsafe { self.ring.queue.pop_used(token, &[buf], &mut []) };
            self.free.push(i);
        }
    }

    /// Whether a frame can be sent now.
    pub fn ready(&mut self) -> bool {
        self.reclaim();
        !self.free.is_empty()
    }

    /// Sends a frame of `len` bytes that `fill` writes; false (counted)
    /// when no slot is free.
    pub fn send<R>(&mut self, len: usize, fill: impl FnOnce(&mut [u8]) -> R) -> Option<R> {
        self.reclaim();
        let len = len.min(BUF - HDR);
        let Some(i) = self.free.pop() else {
            self.full += 1;
            return None;
        };
        let p = self.ring.buf(i);
        // SAFETY: a free slot belongs to this call until it is added.
        let r = unsafe {
            core::ptr::write_bytes(p, 0, HDR);
            fill(core::slice::from_raw_parts_mut(p.add(HDR), len))
        };
        // SAFETY: as above; the device reads `HDR + len` bytes.
        let buf = unsafe { core::slice::from_raw_parts(p, BUF) };
        let whole = &buf[..HDR + len];
        // SAFETY: the slot stays untouched until `reclaim` takes it back.
        match unsafe { self.ring.queue.add(&[whole], &mut []) } {
            Ok(t) => {
                self.ring.by_token[usize::from(t)] = Some(i);
                self.frames += 1;
                if self.ring.queue.should_notify() {
                    self.ring.notifier.notify();
                }
            }
            Err(_) => {
                self.free.push(i);
                self.full += 1;
            }
        }
        Some(r)
    }
}

fn ring(o: &mut super::Opened, index: u16) -> Result<Ring, &'static str> {
    let queue = bh_safe_alloc(|| VirtQueue::new(&mut o.transport, index, false, false))
        .map_err(|_| "virtqueue set-up failed")?;
    let notifier = o.regs.notifier(index)?;
    let mem = env().dma_alloc(RING * BUF).ok_or("no DMA memory")?;
    Ok(Ring {
        queue,
        notifier,
        mem,
        by_token: [None; RING],
    })
}

/// Probes `f`: the device, running, with its receive buffers posted.
/// Interrupts queue `run(arg)` as bh work (once until it calls
/// [`NetIrq::begin`]).
pub fn probe(f: &PciFunction, run: fn(usize), arg: usize) -> Result<Box<Nic>, &'static str> {
    let mut o = super::open(f, F_MAC | F_VERSION_1)?;
    if o.features & F_VERSION_1 == 0 {
        return Err("device without VERSION_1");
    }
    let mut mac = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
    if o.features & F_MAC != 0 {
        for (i, m) in mac.iter_mut().enumerate() {
            *m = o
                .transport
                .read_config_space(i)
                .map_err(|_| "config space")?;
        }
    }
    // Boxed at once: the rings are large for a 64 KiB thread stack.
    let rx = bh_safe_alloc(|| ring(&mut o, 0).map(Box::new))?;
    let tx = bh_safe_alloc(|| ring(&mut o, 1).map(Box::new))?;
    let irq = Interrupts::leak();
    let n: &'static NetIrq = bh_safe_alloc(|| {
        Box::leak(Box::new(NetIrq {
            irq,
            bh: BhService::new(),
            run,
            arg,
        }))
    });
    let h = IrqHandler {
        func: interrupt,
        arg: n as *const NetIrq as usize,
    };
    let how = irq.route(f, o.regs, &[(0, h, None), (1, h, None)], h)?;
    let mut nic = bh_safe_alloc(|| {
        Box::new(Nic {
            rx: Rx {
                ring: rx,
                frames: 0,
            },
            tx: Tx {
                ring: tx,
                free: bh_safe_alloc(|| (0..RING as u16).rev().collect()),
                frames: 0,
                full: 0,
            },
            mac,
            irq: n,
        })
    });
    for i in 0..RING as u16 {
        nic.rx.post(i);
    }
    o.transport.finish_init();
    super::keep(o.transport);
    nic.rx.ring.notifier.notify();
    irq.go_live();
    crate::dlog!(
        Info,
        "virtio-net {}: MAC {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}, {} buffers/queue, {}",
        f.address,
        mac[0],
        mac[1],
        mac[2],
        mac[3],
        mac[4],
        mac[5],
        RING,
        how
    );
    Ok(nic)
}
