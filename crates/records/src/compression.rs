//! Kafka's codecs with Kafka's framings: gzip (RFC 1952), snappy (xerial
//! "SNAPPY" stream framing as snappy-java writes; raw snappy accepted on read),
//! lz4 (LZ4 frame format), zstd (frame).
//!
//! Only the records section of a batch (bytes 61..end) is compressed; the
//! header stays plain so the broker can patch and check it.
//!
//! Every decompressor reads through a limit of `max_out + 1` bytes: producing
//! one byte more than allowed is how we detect a zip bomb without ever holding
//! more than `max_out + 1` bytes of output.
//!
//! ```text
//! xerial snappy (snappy-java SnappyOutputStream)
//!  0  magic      0x82 'S' 'N' 'A' 'P' 'P' 'Y' 0x00
//!  8  version    int32 BE (= 1)
//! 12  compatible int32 BE (= 1)
//! 16  blocks     [int32 BE compressed length][raw snappy block]...
//!                each block compresses at most 32 KiB of input
//! ```

use std::io::{Read, Write};

use crate::RecordsError;

/// Attributes bits 0-2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    None = 0,
    Gzip = 1,
    Snappy = 2,
    Lz4 = 3,
    Zstd = 4,
}

impl Compression {
    /// The codec in attributes bits 0-2, or `None` for the undefined codes 5-7.
    pub fn from_attributes(attributes: i16) -> Option<Self> {
        match attributes & 0x07 {
            0 => Some(Compression::None),
            1 => Some(Compression::Gzip),
            2 => Some(Compression::Snappy),
            3 => Some(Compression::Lz4),
            4 => Some(Compression::Zstd),
            _ => None,
        }
    }
    /// Kafka's `compression.type` names: none, gzip, snappy, lz4, zstd.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "none" => Some(Compression::None),
            "gzip" => Some(Compression::Gzip),
            "snappy" => Some(Compression::Snappy),
            "lz4" => Some(Compression::Lz4),
            "zstd" => Some(Compression::Zstd),
            _ => None,
        }
    }
    pub fn name(&self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
    /// The value of attributes bits 0-2 for this codec.
    pub fn id(&self) -> i16 {
        *self as i16
    }
}

/// snappy-java's stream header magic.
const XERIAL_MAGIC: [u8; 8] = [0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];
/// Header = magic + version + min compatible version.
const XERIAL_HEADER_LEN: usize = 16;
/// snappy-java's default block size (uncompressed bytes per block).
const XERIAL_BLOCK: usize = 32 * 1024;
/// Kafka's default zstd level (ZstdCompression.DEFAULT_LEVEL).
const ZSTD_LEVEL: i32 = 3;

fn comp_err(codec: Compression, reason: impl std::fmt::Display) -> RecordsError {
    RecordsError::CompressionFailed {
        codec,
        reason: reason.to_string(),
    }
}

fn decomp_err(codec: Compression, reason: impl std::fmt::Display) -> RecordsError {
    RecordsError::Decompression {
        codec,
        reason: reason.to_string(),
    }
}

pub fn compress(codec: Compression, input: &[u8]) -> Result<Vec<u8>, RecordsError> {
    match codec {
        Compression::None => Ok(input.to_vec()),
        Compression::Gzip => {
            // Kafka uses Deflater.DEFAULT_COMPRESSION (level 6).
            let mut enc = flate2::write::GzEncoder::new(
                Vec::with_capacity(input.len() / 2 + 64),
                flate2::Compression::default(),
            );
            enc.write_all(input).map_err(|e| comp_err(codec, e))?;
            enc.finish().map_err(|e| comp_err(codec, e))
        }
        Compression::Snappy => {
            let mut out = Vec::with_capacity(
                XERIAL_HEADER_LEN + snap::raw::max_compress_len(input.len()) + 64,
            );
            out.extend_from_slice(&XERIAL_MAGIC);
            out.extend_from_slice(&1i32.to_be_bytes());
            out.extend_from_slice(&1i32.to_be_bytes());
            let mut enc = snap::raw::Encoder::new();
            let mut block = vec![0u8; snap::raw::max_compress_len(XERIAL_BLOCK)];
            for chunk in input.chunks(XERIAL_BLOCK) {
                let n = enc
                    .compress(chunk, &mut block)
                    .map_err(|e| comp_err(codec, e))?;
                let len = i32::try_from(n).map_err(|e| comp_err(codec, e))?;
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(&block[..n]);
            }
            Ok(out)
        }
        Compression::Lz4 => {
            // As Kafka's Lz4BlockOutputStream: 64 KiB independent blocks, no
            // block or content checksums, no content size.
            let info = lz4_flex::frame::FrameInfo::new()
                .block_size(lz4_flex::frame::BlockSize::Max64KB)
                .block_mode(lz4_flex::frame::BlockMode::Independent);
            let mut enc = lz4_flex::frame::FrameEncoder::with_frame_info(
                info,
                Vec::with_capacity(input.len() / 2 + 64),
            );
            enc.write_all(input).map_err(|e| comp_err(codec, e))?;
            enc.finish().map_err(|e| comp_err(codec, e))
        }
        Compression::Zstd => {
            zstd::bulk::compress(input, ZSTD_LEVEL).map_err(|e| comp_err(codec, e))
        }
    }
}

/// Reads `reader` to the end, failing once more than `max_out` bytes come out.
fn read_bounded<R: Read>(
    codec: Compression,
    reader: R,
    input_len: usize,
    max_out: usize,
) -> Result<Vec<u8>, RecordsError> {
    let limit = (max_out as u64).saturating_add(1);
    // A guess for the initial capacity, never trusting the input to say how
    // large the output will be.
    let mut out = Vec::with_capacity(input_len.saturating_mul(4).min(max_out).min(1 << 20));
    reader
        .take(limit)
        .read_to_end(&mut out)
        .map_err(|e| decomp_err(codec, e))?;
    if out.len() > max_out {
        return Err(too_large(codec, max_out));
    }
    Ok(out)
}

fn too_large(codec: Compression, max_out: usize) -> RecordsError {
    decomp_err(
        codec,
        format_args!("decompressed size exceeds the limit of {max_out} bytes"),
    )
}

/// Decompresses, failing if the output would exceed `max_out` bytes.
pub fn decompress(
    codec: Compression,
    input: &[u8],
    max_out: usize,
) -> Result<Vec<u8>, RecordsError> {
    match codec {
        Compression::None => {
            if input.len() > max_out {
                return Err(too_large(codec, max_out));
            }
            Ok(input.to_vec())
        }
        // MultiGzDecoder like Java's GZIPInputStream: concatenated members are
        // one stream.
        Compression::Gzip => read_bounded(
            codec,
            flate2::read::MultiGzDecoder::new(input),
            input.len(),
            max_out,
        ),
        Compression::Snappy => snappy_decompress(input, max_out),
        // FrameDecoder handles linked or independent blocks, optional block
        // and content checksums and content size, i.e. what the Java client
        // (independent, no checksums) and librdkafka (checksummed) write, and
        // reads concatenated frames.
        Compression::Lz4 => read_bounded(
            codec,
            lz4_flex::frame::FrameDecoder::new(input),
            input.len(),
            max_out,
        ),
        // The streaming decoder does not need the frame content size (the Java
        // client's ZstdOutputStream omits it) and reads concatenated frames.
        Compression::Zstd => {
            let dec = zstd::stream::read::Decoder::with_buffer(input)
                .map_err(|e| decomp_err(codec, e))?;
            read_bounded(codec, dec, input.len(), max_out)
        }
    }
}

fn snappy_decompress(input: &[u8], max_out: usize) -> Result<Vec<u8>, RecordsError> {
    let codec = Compression::Snappy;
    let mut dec = snap::raw::Decoder::new();
    if input.len() < XERIAL_HEADER_LEN || input[..XERIAL_MAGIC.len()] != XERIAL_MAGIC {
        // Not xerial framed: snappy-java falls back to a raw snappy block.
        let n = snap::raw::decompress_len(input).map_err(|e| decomp_err(codec, e))?;
        if n > max_out {
            return Err(too_large(codec, max_out));
        }
        return dec.decompress_vec(input).map_err(|e| decomp_err(codec, e));
    }
    // Version / compatible version are not checked: snappy-java only ever
    // wrote 1 and readers ignore them too.
    let mut pos = XERIAL_HEADER_LEN;
    let mut out: Vec<u8> = Vec::new();
    while pos < input.len() {
        let len_bytes = input
            .get(pos..pos + 4)
            .ok_or_else(|| decomp_err(codec, "truncated xerial block length"))?;
        let len = i32::from_be_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]]);
        pos += 4;
        let len = usize::try_from(len)
            .map_err(|_| decomp_err(codec, format_args!("negative xerial block length {len}")))?;
        let end = pos
            .checked_add(len)
            .filter(|&e| e <= input.len())
            .ok_or_else(|| decomp_err(codec, "xerial block runs past the end of the input"))?;
        let block = &input[pos..end];
        pos = end;
        let n = snap::raw::decompress_len(block).map_err(|e| decomp_err(codec, e))?;
        let start = out.len();
        let new_len = start
            .checked_add(n)
            .filter(|&l| l <= max_out)
            .ok_or_else(|| too_large(codec, max_out))?;
        out.resize(new_len, 0);
        let written = dec
            .decompress(block, &mut out[start..])
            .map_err(|e| decomp_err(codec, e))?;
        out.truncate(start + written);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    fn sample(len: usize) -> Vec<u8> {
        // Compressible but not trivial.
        (0..len)
            .map(|i| (((i * 7) % 251) ^ (i / 1000)) as u8)
            .collect()
    }

    #[test]
    fn names_and_attributes() {
        for c in ALL {
            assert_eq!(Compression::from_name(c.name()), Some(c));
            assert_eq!(Compression::from_attributes(c.id()), Some(c));
            // Other attribute bits do not disturb the codec bits.
            assert_eq!(Compression::from_attributes(c.id() | 0x38), Some(c));
        }
        for bad in 5..8 {
            assert_eq!(Compression::from_attributes(bad), None);
        }
        assert_eq!(Compression::from_name("producer"), None);
        assert_eq!(Compression::from_name("GZIP"), None);
    }

    #[test]
    fn roundtrip_every_codec() {
        for len in [
            0,
            1,
            100,
            XERIAL_BLOCK - 1,
            XERIAL_BLOCK,
            XERIAL_BLOCK * 3 + 17,
            300_000,
        ] {
            let data = sample(len);
            for c in ALL {
                let z = compress(c, &data).unwrap();
                let back = decompress(c, &z, data.len()).unwrap();
                assert_eq!(back, data, "{c:?} len {len}");
                if len > 0 {
                    assert!(
                        decompress(c, &z, data.len() - 1).is_err(),
                        "{c:?} limit not enforced for len {len}"
                    );
                }
            }
        }
    }

    #[test]
    fn xerial_framing_layout() {
        let data = sample(XERIAL_BLOCK + 10);
        let z = compress(Compression::Snappy, &data).unwrap();
        assert_eq!(&z[..8], &XERIAL_MAGIC);
        assert_eq!(&z[8..16], &[0, 0, 0, 1, 0, 0, 0, 1]);
        let first = i32::from_be_bytes(z[16..20].try_into().unwrap()) as usize;
        let block = &z[20..20 + first];
        assert_eq!(snap::raw::decompress_len(block).unwrap(), XERIAL_BLOCK);
        let second = i32::from_be_bytes(z[20 + first..24 + first].try_into().unwrap()) as usize;
        assert_eq!(24 + first + second, z.len());
    }

    #[test]
    fn raw_snappy_is_accepted() {
        let data = sample(5000);
        let raw = snap::raw::Encoder::new().compress_vec(&data).unwrap();
        assert_eq!(decompress(Compression::Snappy, &raw, 5000).unwrap(), data);
        assert!(decompress(Compression::Snappy, &raw, 4999).is_err());
    }

    #[test]
    fn lz4_frames_with_checksums_and_linked_blocks() {
        // librdkafka writes content checksums; other writers use linked blocks.
        let data = sample(200_000);
        let info = lz4_flex::frame::FrameInfo::new()
            .block_size(lz4_flex::frame::BlockSize::Max256KB)
            .block_mode(lz4_flex::frame::BlockMode::Linked)
            .block_checksums(true)
            .content_checksum(true)
            .content_size(Some(data.len() as u64));
        let mut enc = lz4_flex::frame::FrameEncoder::with_frame_info(info, Vec::new());
        enc.write_all(&data).unwrap();
        let z = enc.finish().unwrap();
        assert_eq!(decompress(Compression::Lz4, &z, data.len()).unwrap(), data);
    }

    #[test]
    fn lz4_header_matches_kafka() {
        // Kafka's Lz4BlockOutputStream: FLG = version 01, block independence;
        // BD = 64 KiB max block size.
        let z = compress(Compression::Lz4, b"hello").unwrap();
        assert_eq!(&z[..4], &[0x04, 0x22, 0x4d, 0x18]);
        assert_eq!(z[4], 0x60);
        assert_eq!(z[5], 0x40);
    }

    #[test]
    fn zstd_streaming_frame_without_content_size() {
        let data = sample(100_000);
        let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        enc.include_contentsize(false).unwrap();
        enc.write_all(&data).unwrap();
        let z = enc.finish().unwrap();
        assert_eq!(decompress(Compression::Zstd, &z, data.len()).unwrap(), data);
        assert!(decompress(Compression::Zstd, &z, 1000).is_err());
    }

    #[test]
    fn gzip_concatenated_members() {
        let mut z = compress(Compression::Gzip, b"abc").unwrap();
        z.extend(compress(Compression::Gzip, b"def").unwrap());
        assert_eq!(decompress(Compression::Gzip, &z, 6).unwrap(), b"abcdef");
    }

    #[test]
    fn zip_bomb_is_bounded() {
        let zeros = vec![0u8; 10 << 20];
        for c in ALL {
            let z = compress(c, &zeros).unwrap();
            let err = decompress(c, &z, 1 << 20).unwrap_err();
            assert!(
                matches!(err, RecordsError::Decompression { .. }),
                "{c:?}: {err:?}"
            );
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for c in ALL {
            for input in [&b""[..], b"\x00", b"garbage garbage", &XERIAL_MAGIC[..]] {
                let _ = decompress(c, input, 1000);
            }
        }
        // Xerial header with a block length past the end.
        let mut bad = XERIAL_MAGIC.to_vec();
        bad.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1, 0x7f, 0xff, 0xff, 0xff, 1]);
        assert!(decompress(Compression::Snappy, &bad, 1000).is_err());
        bad.truncate(16);
        bad.extend_from_slice(&[0xff, 0xff, 0xff, 0xff]);
        assert!(decompress(Compression::Snappy, &bad, 1000).is_err());
    }
}
