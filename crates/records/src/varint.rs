//! Zig-zag varints (protobuf style) as used inside records.
//!
//! Kafka's `ByteUtils.readVarint` / `readVarlong` read at most 5 / 10 bytes
//! and reject a longer encoding; like Java, the unused high bits of the last
//! byte are ignored rather than rejected, so that anything Kafka accepts we
//! accept too.

use crate::RecordsError;

/// Why a raw varint read failed. Kept tiny and `Copy` so the validation hot
/// path can propagate it without building a `String`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VarintError {
    /// The buffer ended before the last byte of the varint.
    Truncated,
    /// More than 5 (varint) or 10 (varlong) bytes.
    Overlong,
}

impl VarintError {
    pub(crate) fn reason(self) -> &'static str {
        match self {
            VarintError::Truncated => "varint runs past the end of the buffer",
            VarintError::Overlong => "varint is longer than its maximum encoded size",
        }
    }

    fn into_records_error(self, buf_len: usize, pos: usize) -> RecordsError {
        match self {
            VarintError::Truncated => RecordsError::Truncated {
                what: "varint",
                needed: pos.saturating_add(1),
                available: buf_len,
            },
            // Varints carry no batch context; callers that know the batch
            // report their own error instead.
            VarintError::Overlong => RecordsError::InvalidRecords {
                base_offset: -1,
                reason: self.reason().to_string(),
            },
        }
    }
}

/// Raw (zig-zag decoded) varint read used on the hot path.
#[inline(always)]
pub(crate) fn read_varint_raw(buf: &[u8], pos: &mut usize) -> Result<i32, VarintError> {
    // Fast path: most lengths and deltas fit in one byte.
    let first = *buf.get(*pos).ok_or(VarintError::Truncated)?;
    if first & 0x80 == 0 {
        *pos += 1;
        let v = u32::from(first);
        return Ok(((v >> 1) as i32) ^ -((v & 1) as i32));
    }
    let mut value: u32 = 0;
    let mut shift = 0u32;
    let mut p = *pos;
    loop {
        let b = *buf.get(p).ok_or(VarintError::Truncated)?;
        p += 1;
        value |= u32::from(b & 0x7f).wrapping_shl(shift);
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
        if shift > 28 {
            return Err(VarintError::Overlong);
        }
    }
    *pos = p;
    Ok(((value >> 1) as i32) ^ -((value & 1) as i32))
}

/// Raw (zig-zag decoded) varlong read used on the hot path.
#[inline(always)]
pub(crate) fn read_varlong_raw(buf: &[u8], pos: &mut usize) -> Result<i64, VarintError> {
    let first = *buf.get(*pos).ok_or(VarintError::Truncated)?;
    if first & 0x80 == 0 {
        *pos += 1;
        let v = u64::from(first);
        return Ok(((v >> 1) as i64) ^ -((v & 1) as i64));
    }
    let mut value: u64 = 0;
    let mut shift = 0u32;
    let mut p = *pos;
    loop {
        let b = *buf.get(p).ok_or(VarintError::Truncated)?;
        p += 1;
        value |= u64::from(b & 0x7f).wrapping_shl(shift);
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
        if shift > 63 {
            return Err(VarintError::Overlong);
        }
    }
    *pos = p;
    Ok(((value >> 1) as i64) ^ -((value & 1) as i64))
}

/// Reads a zig-zag varint (i32) from `buf` at `*pos`, advancing it.
/// On error `*pos` is left unchanged.
pub fn read_varint(buf: &[u8], pos: &mut usize) -> Result<i32, RecordsError> {
    let start = *pos;
    read_varint_raw(buf, pos).map_err(|e| e.into_records_error(buf.len(), start))
}
/// Reads a zig-zag varlong (i64). On error `*pos` is left unchanged.
pub fn read_varlong(buf: &[u8], pos: &mut usize) -> Result<i64, RecordsError> {
    let start = *pos;
    read_varlong_raw(buf, pos).map_err(|e| e.into_records_error(buf.len(), start))
}
pub fn write_varint(out: &mut Vec<u8>, v: i32) {
    let mut z = ((v << 1) ^ (v >> 31)) as u32;
    while z >= 0x80 {
        out.push((z as u8 & 0x7f) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}
pub fn write_varlong(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8 & 0x7f) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}
/// Encoded size of `v` as a zig-zag varint (1..=5).
pub fn varint_size(v: i32) -> usize {
    let z = ((v << 1) ^ (v >> 31)) as u32;
    // Each byte carries 7 bits; zero still takes one byte.
    let bits = 32 - (z | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}
/// Encoded size of `v` as a zig-zag varlong (1..=10).
pub fn varlong_size(v: i64) -> usize {
    let z = ((v << 1) ^ (v >> 63)) as u64;
    let bits = 64 - (z | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip_int(v: i32) {
        let mut out = Vec::new();
        write_varint(&mut out, v);
        assert_eq!(out.len(), varint_size(v), "size of {v}");
        let mut pos = 0;
        assert_eq!(read_varint(&out, &mut pos), Ok(v));
        assert_eq!(pos, out.len());
    }

    fn roundtrip_long(v: i64) {
        let mut out = Vec::new();
        write_varlong(&mut out, v);
        assert_eq!(out.len(), varlong_size(v), "size of {v}");
        let mut pos = 0;
        assert_eq!(read_varlong(&out, &mut pos), Ok(v));
        assert_eq!(pos, out.len());
    }

    #[test]
    fn known_encodings() {
        // Values from Kafka's ByteUtilsTest.
        let cases: &[(i32, &[u8])] = &[
            (0, &[0x00]),
            (-1, &[0x01]),
            (1, &[0x02]),
            (-64, &[0x7f]),
            (63, &[0x7e]),
            (64, &[0x80, 0x01]),
            (300, &[0xd8, 0x04]),
            (i32::MAX, &[0xfe, 0xff, 0xff, 0xff, 0x0f]),
            (i32::MIN, &[0xff, 0xff, 0xff, 0xff, 0x0f]),
        ];
        for (v, bytes) in cases {
            let mut out = Vec::new();
            write_varint(&mut out, *v);
            assert_eq!(&out[..], *bytes, "encoding of {v}");
            let mut pos = 0;
            assert_eq!(read_varint(bytes, &mut pos), Ok(*v));
        }
    }

    #[test]
    fn roundtrips() {
        for v in [0, 1, -1, 63, -64, 64, -65, 8191, 8192, i32::MAX, i32::MIN] {
            roundtrip_int(v);
        }
        for v in [0, 1, -1, 1 << 40, -(1 << 40), i64::MAX, i64::MIN] {
            roundtrip_long(v);
        }
    }

    #[test]
    fn overlong_and_truncated() {
        let mut pos = 0;
        assert!(matches!(
            read_varint(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x00], &mut pos),
            Err(RecordsError::InvalidRecords { .. })
        ));
        assert_eq!(pos, 0);
        assert!(matches!(
            read_varint(&[0x80, 0x80], &mut pos),
            Err(RecordsError::Truncated { .. })
        ));
        assert!(matches!(
            read_varint(&[], &mut pos),
            Err(RecordsError::Truncated { .. })
        ));
        let eleven = [0x80u8; 10];
        assert!(matches!(
            read_varlong(&eleven, &mut pos),
            Err(RecordsError::InvalidRecords { .. })
        ));
        // Ten bytes is the maximum a varlong may take.
        let mut ten = vec![0xffu8; 9];
        ten.push(0x01);
        pos = 0;
        assert_eq!(read_varlong(&ten, &mut pos), Ok(i64::MIN));
    }
}
