//! The xenstore client: messages over the shared xenstore page
//! (`xenstore_domain_interface`: a 1 KiB request ring, a 1 KiB response
//! ring and their four indices), one request at a time, by polling. Used
//! only while probing (boot or kernel-lock context); no lock of its own.
//!
//! Message: a 16-byte header (`type`, `req_id`, `tx_id`, `len`) and `len`
//! payload bytes. Paths and values are NUL-terminated strings in the
//! payload; `XS_WRITE` carries the path, its NUL, then the value.

use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{Ordering, fence};

pub const XS_DIRECTORY: u32 = 1;
pub const XS_READ: u32 = 2;
pub const XS_WRITE: u32 = 11;
pub const XS_ERROR: u32 = 16;

const RING: usize = 1024;
const REQ: usize = 0;
const RSP: usize = RING;
const REQ_CONS: usize = 2 * RING;
const REQ_PROD: usize = 2 * RING + 4;
const RSP_CONS: usize = 2 * RING + 8;
const RSP_PROD: usize = 2 * RING + 12;

/// The xenstore page as seen by one side.
pub struct Interface {
    page: *mut u8,
}

// SAFETY: the page is shared with the xenstore domain only; the owner
// serialises its own accesses.
unsafe impl Send for Interface {}

impl Interface {
    /// # Safety
    /// `page` must map the 4 KiB xenstore interface page for as long as the
    /// value lives.
    pub unsafe fn new(page: *mut u8) -> Interface {
        Interface { page }
    }

    pub fn idx(&self, off: usize) -> u32 {
        // SAFETY: one of the four index words inside the page.
        unsafe { (self.page.add(off) as *const u32).read_volatile() }
    }

    pub fn set_idx(&self, off: usize, v: u32) {
        // SAFETY: as in `idx`.
        unsafe { (self.page.add(off) as *mut u32).write_volatile(v) }
    }

    fn byte(&self, off: usize) -> u8 {
        // SAFETY: `off` < 2 KiB (inside the two rings).
        unsafe { self.page.add(off).read_volatile() }
    }

    fn set_byte(&self, off: usize, v: u8) {
        // SAFETY: as in `byte`.
        unsafe { self.page.add(off).write_volatile(v) }
    }

    /// Front end: queues bytes on the request ring; false if no room.
    pub fn write_request(&self, bytes: &[u8]) -> bool {
        let (cons, prod) = (self.idx(REQ_CONS), self.idx(REQ_PROD));
        if (prod.wrapping_sub(cons) as usize) + bytes.len() > RING {
            return false;
        }
        for (i, &b) in bytes.iter().enumerate() {
            self.set_byte(REQ + (prod as usize + i) % RING, b);
        }
        fence(Ordering::SeqCst);
        self.set_idx(REQ_PROD, prod.wrapping_add(bytes.len() as u32));
        true
    }

    /// Front end: takes `n` bytes from the response ring if available.
    pub fn read_response(&self, n: usize) -> Option<Vec<u8>> {
        let (cons, prod) = (self.idx(RSP_CONS), self.idx(RSP_PROD));
        if (prod.wrapping_sub(cons) as usize) < n {
            return None;
        }
        fence(Ordering::SeqCst);
        let v = (0..n)
            .map(|i| self.byte(RSP + (cons as usize + i) % RING))
            .collect();
        fence(Ordering::SeqCst);
        self.set_idx(RSP_CONS, cons.wrapping_add(n as u32));
        Some(v)
    }

    /// Back end (models): takes every queued request byte.
    pub fn take_requests(&self) -> Vec<u8> {
        let (cons, prod) = (self.idx(REQ_CONS), self.idx(REQ_PROD));
        let n = prod.wrapping_sub(cons) as usize;
        let v = (0..n)
            .map(|i| self.byte(REQ + (cons as usize + i) % RING))
            .collect();
        self.set_idx(REQ_CONS, prod);
        v
    }

    /// Back end (models): queues response bytes.
    pub fn put_response(&self, bytes: &[u8]) {
        let prod = self.idx(RSP_PROD);
        for (i, &b) in bytes.iter().enumerate() {
            self.set_byte(RSP + (prod as usize + i) % RING, b);
        }
        fence(Ordering::SeqCst);
        self.set_idx(RSP_PROD, prod.wrapping_add(bytes.len() as u32));
    }
}

/// Encodes a message.
pub fn message(kind: u32, req_id: u32, payload: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(16 + payload.len());
    for w in [kind, req_id, 0, payload.len() as u32] {
        m.extend_from_slice(&w.to_le_bytes());
    }
    m.extend_from_slice(payload);
    m
}

/// Decodes a header: (type, req_id, len).
pub fn header(h: &[u8]) -> (u32, u32, usize) {
    let w = |i: usize| u32::from_le_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
    (w(0), w(4), w(12) as usize)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum XsError {
    /// The store answered XS_ERROR with this text (e.g. `ENOENT`).
    Store(String),
    /// No answer in time.
    Timeout,
    /// The request did not fit.
    TooLarge,
}

/// A xenstore client over an interface page; `kick` notifies the store
/// (event channel send) and `wait` lets time pass (or, in host models, runs
/// the store).
pub struct Client<'a> {
    pub iface: &'a Interface,
    pub kick: &'a dyn Fn(),
    /// Polls allowed per request before timing out.
    pub patience: u32,
    pub wait: &'a dyn Fn(),
    next_id: u32,
}

impl<'a> Client<'a> {
    pub fn new(iface: &'a Interface, kick: &'a dyn Fn(), wait: &'a dyn Fn()) -> Client<'a> {
        Client {
            iface,
            kick,
            patience: 1_000_000,
            wait,
            next_id: 1,
        }
    }

    fn transact(&mut self, kind: u32, payload: &[u8]) -> Result<Vec<u8>, XsError> {
        let id = self.next_id;
        self.next_id += 1;
        let m = message(kind, id, payload);
        if m.len() > RING || !self.iface.write_request(&m) {
            return Err(XsError::TooLarge);
        }
        (self.kick)();
        let mut polls = 0;
        let head = loop {
            if let Some(h) = self.iface.read_response(16) {
                break h;
            }
            polls += 1;
            if polls > self.patience {
                return Err(XsError::Timeout);
            }
            (self.wait)();
        };
        let (t, _rid, len) = header(&head);
        let body = loop {
            if let Some(b) = self.iface.read_response(len) {
                break b;
            }
            (self.wait)();
        };
        if t == XS_ERROR {
            let s = String::from_utf8_lossy(&body).trim_end_matches('\0').into();
            return Err(XsError::Store(s));
        }
        Ok(body)
    }

    pub fn read(&mut self, path: &str) -> Result<String, XsError> {
        let mut p = Vec::from(path.as_bytes());
        p.push(0);
        let b = self.transact(XS_READ, &p)?;
        Ok(String::from_utf8_lossy(&b).trim_end_matches('\0').into())
    }

    pub fn write(&mut self, path: &str, value: &str) -> Result<(), XsError> {
        let mut p = Vec::from(path.as_bytes());
        p.push(0);
        p.extend_from_slice(value.as_bytes());
        self.transact(XS_WRITE, &p).map(|_| ())
    }

    pub fn directory(&mut self, path: &str) -> Result<Vec<String>, XsError> {
        let mut p = Vec::from(path.as_bytes());
        p.push(0);
        let b = self.transact(XS_DIRECTORY, &p)?;
        Ok(b.split(|&c| c == 0)
            .filter(|s| !s.is_empty())
            .map(|s| String::from_utf8_lossy(s).into())
            .collect())
    }

    pub fn read_u64(&mut self, path: &str) -> Option<u64> {
        self.read(path).ok()?.trim().parse().ok()
    }
}
