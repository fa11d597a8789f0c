//! Zig-zag varints (protobuf style) as used inside records.

use crate::RecordsError;

/// Reads a zig-zag varint (i32) from `buf` at `*pos`, advancing it.
pub fn read_varint(buf: &[u8], pos: &mut usize) -> Result<i32, RecordsError> {
    todo!("{}{}", buf.len(), pos)
}
/// Reads a zig-zag varlong (i64).
pub fn read_varlong(buf: &[u8], pos: &mut usize) -> Result<i64, RecordsError> {
    todo!("{}{}", buf.len(), pos)
}
pub fn write_varint(out: &mut Vec<u8>, v: i32) {
    todo!("{}{}", out.len(), v)
}
pub fn write_varlong(out: &mut Vec<u8>, v: i64) {
    todo!("{}{}", out.len(), v)
}
pub fn varint_size(v: i32) -> usize {
    todo!("{}", v)
}
