//! Record-batch compression codecs (attribute bits 0–2): 0 none, 1 gzip, 2 snappy, 3 lz4,
//! 4 zstd. The broker stores batches as sent; it only decompresses to read keys (compaction)
//! and recompresses with the same codec when it rewrites a batch.

use bytes::{Bytes, BytesMut};
use kafka_protocol::compression::{Compressor, Decompressor, Gzip, Lz4, Snappy, Zstd};
use thiserror::Error;

#[derive(Debug, Error)]
#[error("{codec} {op} failed: {reason}")]
pub struct CompressionError {
    pub codec: &'static str,
    pub op: &'static str,
    pub reason: String,
}

fn name(codec: i16) -> &'static str {
    match codec {
        1 => "gzip",
        2 => "snappy",
        3 => "lz4",
        4 => "zstd",
        _ => "unknown",
    }
}

/// Decompresses the records section of a batch compressed with `codec`; the result must not
/// exceed `limit` bytes. (The codecs decompress whole, so the limit is checked after; the
/// cleaner only decompresses batches already in the log.)
pub fn decompress(codec: i16, data: &[u8], limit: usize) -> Result<Vec<u8>, CompressionError> {
    let err = |e: String| CompressionError {
        codec: name(codec),
        op: "decompress",
        reason: e,
    };
    let mut input = Bytes::copy_from_slice(data);
    let out = match codec {
        0 => Ok(data.to_vec()),
        1 => Gzip::decompress(&mut input, |b| Ok(b.to_vec())),
        2 => Snappy::decompress(&mut input, |b| Ok(b.to_vec())),
        3 => Lz4::decompress(&mut input, |b| Ok(b.to_vec())),
        4 => Zstd::decompress(&mut input, |b| Ok(b.to_vec())),
        _ => return Err(err("unknown codec".into())),
    };
    let out = out.map_err(|e| err(e.to_string()))?;
    if out.len() > limit {
        return Err(err(format!(
            "decompressed size {} exceeds {limit}",
            out.len()
        )));
    }
    Ok(out)
}

/// Compresses `data` (a records section) with `codec`.
pub fn compress(codec: i16, data: &[u8]) -> Result<Vec<u8>, CompressionError> {
    let err = |e: String| CompressionError {
        codec: name(codec),
        op: "compress",
        reason: e,
    };
    let mut out = BytesMut::new();
    let r = match codec {
        0 => {
            out.extend_from_slice(data);
            Ok(())
        }
        1 => Gzip::compress(&mut out, |b| {
            b.extend_from_slice(data);
            Ok(())
        }),
        2 => Snappy::compress(&mut out, |b| {
            b.extend_from_slice(data);
            Ok(())
        }),
        3 => Lz4::compress(&mut out, |b| {
            b.extend_from_slice(data);
            Ok(())
        }),
        4 => Zstd::compress(&mut out, |b| {
            b.extend_from_slice(data);
            Ok(())
        }),
        _ => return Err(err("unknown codec".into())),
    };
    r.map_err(|e| err(e.to_string()))?;
    Ok(out.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn roundtrip_every_codec() {
        let data: Vec<u8> = (0..5000u32).flat_map(|i| (i % 251).to_be_bytes()).collect();
        for codec in 0..=4 {
            let c = compress(codec, &data).unwrap();
            assert_eq!(
                decompress(codec, &c, 1 << 20).unwrap(),
                data,
                "codec {codec}"
            );
        }
        assert!(
            decompress(1, &compress(1, &data).unwrap(), 100).is_err(),
            "bounded"
        );
    }
}
