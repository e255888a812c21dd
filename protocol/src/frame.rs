//! Kafka framing: every request and response is a 4-byte big-endian length then that many bytes.

use thiserror::Error;

/// Bytes of the length prefix.
pub const LENGTH_PREFIX_BYTES: usize = 4;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("frame length {length} is negative or zero")]
    BadLength { length: i32 },
    #[error("frame length {length} exceeds the limit of {limit} bytes (socket_request_max_bytes)")]
    TooLarge { length: usize, limit: usize },
}

/// Looks at the start of `buf` for a complete frame.
///
/// Returns `Ok(Some(n))` when a whole frame (prefix included) of `n` bytes is present,
/// `Ok(None)` when more bytes are needed, and an error when the prefix is invalid — checked
/// before any buffer for the body is allocated, so a 2 GiB prefix costs nothing.
pub fn frame_length(buf: &[u8], limit: usize) -> Result<Option<usize>, FrameError> {
    let Some(prefix) = buf.get(..LENGTH_PREFIX_BYTES) else {
        return Ok(None);
    };
    let length = i32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
    if length <= 0 {
        return Err(FrameError::BadLength { length });
    }
    let length = length as usize;
    if length > limit {
        return Err(FrameError::TooLarge { length, limit });
    }
    let total = LENGTH_PREFIX_BYTES + length;
    Ok((buf.len() >= total).then_some(total))
}

/// The body length announced by a complete prefix, if valid (for sizing the read buffer).
pub fn announced_total(buf: &[u8], limit: usize) -> Result<Option<usize>, FrameError> {
    match buf.get(..LENGTH_PREFIX_BYTES) {
        None => Ok(None),
        Some(_) => {
            let length = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
            if length <= 0 {
                return Err(FrameError::BadLength { length });
            }
            if length as usize > limit {
                return Err(FrameError::TooLarge {
                    length: length as usize,
                    limit,
                });
            }
            Ok(Some(LENGTH_PREFIX_BYTES + length as usize))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn needs_prefix() {
        assert_eq!(frame_length(&[0, 0], 100), Ok(None));
    }

    #[test]
    fn huge_prefix_rejected_before_allocation() {
        let buf = 0x7fff_ffffi32.to_be_bytes();
        assert!(matches!(
            frame_length(&buf, 100 << 20),
            Err(FrameError::TooLarge { .. })
        ));
    }

    #[test]
    fn negative_rejected() {
        let buf = (-5i32).to_be_bytes();
        assert_eq!(
            frame_length(&buf, 100),
            Err(FrameError::BadLength { length: -5 })
        );
    }

    proptest! {
        #[test]
        fn complete_frames_found(body in proptest::collection::vec(any::<u8>(), 1..512), extra in 0usize..16) {
            let mut buf = (body.len() as i32).to_be_bytes().to_vec();
            buf.extend_from_slice(&body);
            buf.extend(std::iter::repeat_n(0, extra));
            prop_assert_eq!(frame_length(&buf, 4096), Ok(Some(body.len() + 4)));
            prop_assert_eq!(frame_length(&buf[..body.len() + 3], 4096), Ok(None));
        }
    }
}
