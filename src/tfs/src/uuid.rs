//! Volume UUIDs as text (`00112233-4455-6677-8899-aabbccddeeff`, the form
//! Nanos's manifests and tools use) and how a manifest's `mounts` key
//! names a volume: by label, or by that UUID text.
//!
//! Pure functions; no locks.

use crate::frame::VolumeId;
use alloc::string::String;

const GROUPS: [usize; 5] = [4, 2, 2, 2, 6];

/// `u` as `8-4-4-4-12` lowercase hex digits.
pub fn format(u: &[u8; 16]) -> String {
    let mut s = String::with_capacity(36);
    let mut at = 0;
    for (i, n) in GROUPS.iter().enumerate() {
        if i > 0 {
            s.push('-');
        }
        for b in &u[at..at + n] {
            s.push(char::from_digit(u32::from(b >> 4), 16).unwrap_or('0'));
            s.push(char::from_digit(u32::from(b & 0xf), 16).unwrap_or('0'));
        }
        at += n;
    }
    s
}

/// Parses `8-4-4-4-12` hex digits (either case), or 32 digits without
/// dashes.
pub fn parse(s: &[u8]) -> Option<[u8; 16]> {
    let digits: alloc::vec::Vec<u8> = if s.len() == 36 {
        let mut at = 0;
        let mut v = alloc::vec::Vec::with_capacity(32);
        for (i, n) in GROUPS.iter().enumerate() {
            if i > 0 {
                if s[at] != b'-' {
                    return None;
                }
                at += 1;
            }
            v.extend_from_slice(&s[at..at + 2 * n]);
            at += 2 * n;
        }
        v
    } else if s.len() == 32 {
        s.to_vec()
    } else {
        return None;
    };
    let mut u = [0u8; 16];
    for (i, b) in u.iter_mut().enumerate() {
        let hi = char::from(digits[2 * i]).to_digit(16)?;
        let lo = char::from(digits[2 * i + 1]).to_digit(16)?;
        *b = (hi << 4 | lo) as u8;
    }
    Some(u)
}

impl VolumeId {
    /// Whether a `mounts` key names this volume: its label exactly, or its
    /// UUID as text.
    pub fn named_by(&self, key: &[u8]) -> bool {
        (!self.label.is_empty() && self.label == key) || parse(key) == Some(self.uuid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_matches() {
        let u = [
            0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd,
            0xee, 0xff,
        ];
        let s = format(&u);
        assert_eq!(s, "00112233-4455-6677-8899-aabbccddeeff");
        assert_eq!(parse(s.as_bytes()), Some(u));
        assert_eq!(parse(b"00112233-4455-6677-8899-AABBCCDDEEFF"), Some(u));
        assert_eq!(parse(b"00112233445566778899aabbccddeeff"), Some(u));
        assert_eq!(parse(b"00112233-4455-6677-8899-aabbccddeef"), None);
        assert_eq!(parse(b"00112233-4455-6677+8899-aabbccddeeff"), None);
        assert_eq!(parse(b"0011223344556677889gaabbccddeeff"), None);
        let id = VolumeId {
            uuid: u,
            label: b"data".to_vec(),
        };
        assert!(id.named_by(b"data"));
        assert!(id.named_by(s.as_bytes()));
        assert!(!id.named_by(b"dat"));
        let unlabelled = VolumeId {
            uuid: u,
            label: alloc::vec::Vec::new(),
        };
        assert!(!unlabelled.named_by(b""));
    }
}
