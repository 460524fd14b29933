//! Nanos varints: big-endian groups of seven bits, every byte but the last
//! with 0x80 set (`push_varint`/`pop_varint` in Nanos's `buffer.h`).
//!
//! Runs in kernel-lock/thread context only and takes no locks itself.

use crate::error::DecodeError;
use alloc::vec::Vec;

/// Longest varint that can carry 64 bits.
pub const MAX_VARINT_BYTES: usize = 10;

/// Appends `value` as a varint.
pub fn push(out: &mut Vec<u8>, value: u64) {
    let mut groups = 1;
    while groups < MAX_VARINT_BYTES && (value >> (7 * groups)) != 0 {
        groups += 1;
    }
    for i in (0..groups).rev() {
        let bits = ((value >> (7 * i)) & 0x7f) as u8;
        out.push(if i > 0 { bits | 0x80 } else { bits });
    }
}

/// Number of bytes `push` would use for `value`.
pub fn encoded_len(value: u64) -> usize {
    let mut groups = 1;
    while groups < MAX_VARINT_BYTES && (value >> (7 * groups)) != 0 {
        groups += 1;
    }
    groups
}

/// Decodes a varint at `buf[*pos..]`, advancing `pos`; refuses values that
/// overflow 64 bits or run past the buffer.
pub fn pop(buf: &[u8], pos: &mut usize) -> Result<u64, DecodeError> {
    let start = *pos;
    let mut value: u64 = 0;
    loop {
        let Some(&byte) = buf.get(*pos) else {
            return Err(DecodeError::new(
                start,
                "varint runs past the end of the buffer",
            ));
        };
        *pos += 1;
        if value >> 57 != 0 {
            return Err(DecodeError::new(start, "varint overflows 64 bits"));
        }
        value = (value << 7) | u64::from(byte & 0x7f);
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_encodings() {
        let mut v = Vec::new();
        push(&mut v, 1024);
        assert_eq!(v, [0x88, 0x00]);
        v.clear();
        push(&mut v, 0);
        assert_eq!(v, [0x00]);
        v.clear();
        push(&mut v, 127);
        assert_eq!(v, [0x7f]);
        v.clear();
        push(&mut v, 128);
        assert_eq!(v, [0x81, 0x00]);
    }

    #[test]
    fn refuses_truncated_and_overflowing() {
        let mut pos = 0;
        assert!(pop(&[0x81], &mut pos).is_err());
        let mut pos = 0;
        assert!(pop(&[0xff; 11], &mut pos).is_err());
    }

    proptest! {
        #[test]
        fn round_trip(x in any::<u64>()) {
            let mut v = Vec::new();
            push(&mut v, x);
            prop_assert_eq!(v.len(), encoded_len(x));
            let mut pos = 0;
            prop_assert_eq!(pop(&v, &mut pos).unwrap(), x);
            prop_assert_eq!(pos, v.len());
        }
    }
}
