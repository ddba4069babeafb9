//! Length-prefixed frames: `u32 BE length ‖ body`.
//!
//! The declared length is checked against the limit *before* any of the
//! body is buffered, so a peer cannot make us allocate more than the limit
//! by announcing a huge frame. Parsing distinguishes "need more bytes"
//! (`Ok(None)`) from "invalid" (`Err`), which closes that one connection.

use thiserror::Error;

/// Bytes of the length prefix.
pub const LENGTH_PREFIX: usize = 4;

/// Default largest frame body, in bytes. A room message of a few KiB of
/// text with its signature (up to 1 KiB for RSA-8192) and envelope fits
/// with room to spare; a commit for a room of ~40 members with RSA-3072
/// keys fits too. Relays can raise it with `--max-frame-bytes`.
pub const DEFAULT_MAX_FRAME: usize = 64 * 1024;

/// Smallest frame limit a relay may be configured with: the handshake
/// messages of an RSA-8192 identity must fit.
pub const MIN_MAX_FRAME: usize = 4 * 1024;

/// Why bytes are not a valid frame.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// The length prefix announces more than the limit allows.
    #[error("frame of {declared} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// What the peer announced.
        declared: usize,
        /// The limit in force.
        limit: usize,
    },
    /// A zero-length frame (never valid: every message has a tag byte).
    #[error("empty frame")]
    Empty,
}

/// Appends `body` as one frame to `out`.
///
/// # Errors
/// [`FrameError::TooLarge`] if `body` exceeds `limit`.
pub fn encode_frame(body: &[u8], limit: usize, out: &mut Vec<u8>) -> Result<(), FrameError> {
    if body.len() > limit {
        return Err(FrameError::TooLarge {
            declared: body.len(),
            limit,
        });
    }
    if body.is_empty() {
        return Err(FrameError::Empty);
    }
    // body.len() <= limit, and limits are far below u32::MAX.
    let len = u32::try_from(body.len()).map_err(|_| FrameError::TooLarge {
        declared: body.len(),
        limit,
    })?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(body);
    Ok(())
}

/// Looks for one whole frame at the start of `buf`.
///
/// Returns `Ok(Some((body_range_end, body)))`: the number of bytes the
/// frame occupies and its body; `Ok(None)` if more bytes are needed.
///
/// # Errors
/// [`FrameError`] as soon as the prefix is readable and invalid, even if
/// the body has not arrived.
pub fn parse_frame(buf: &[u8], limit: usize) -> Result<Option<(usize, &[u8])>, FrameError> {
    let Some(prefix) = buf.get(..LENGTH_PREFIX) else {
        return Ok(None);
    };
    let mut len_bytes = [0u8; LENGTH_PREFIX];
    len_bytes.copy_from_slice(prefix);
    let declared = u32::from_be_bytes(len_bytes) as usize;
    if declared > limit {
        return Err(FrameError::TooLarge { declared, limit });
    }
    if declared == 0 {
        return Err(FrameError::Empty);
    }
    let end = LENGTH_PREFIX + declared;
    match buf.get(LENGTH_PREFIX..end) {
        Some(body) => Ok(Some((end, body))),
        None => Ok(None),
    }
}

/// How many more bytes are needed before [`parse_frame`] can decide, given
/// what is buffered. Lets a reader size its next read without buffering
/// beyond one frame.
#[must_use]
pub fn bytes_wanted(buf: &[u8]) -> usize {
    match buf.get(..LENGTH_PREFIX) {
        None => LENGTH_PREFIX - buf.len(),
        Some(prefix) => {
            let mut len_bytes = [0u8; LENGTH_PREFIX];
            len_bytes.copy_from_slice(prefix);
            (LENGTH_PREFIX + u32::from_be_bytes(len_bytes) as usize).saturating_sub(buf.len())
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn every_prefix_of_a_valid_frame_needs_more() {
        let mut buf = Vec::new();
        encode_frame(b"hello frame", 64, &mut buf).unwrap();
        for cut in 0..buf.len() {
            assert_eq!(parse_frame(&buf[..cut], 64), Ok(None), "prefix of {cut}");
        }
        assert_eq!(
            parse_frame(&buf, 64),
            Ok(Some((buf.len(), &b"hello frame"[..])))
        );
    }

    #[test]
    fn oversized_length_is_refused_before_the_body_arrives() {
        let prefix = 1_000_000u32.to_be_bytes();
        assert_eq!(
            parse_frame(&prefix, 64),
            Err(FrameError::TooLarge {
                declared: 1_000_000,
                limit: 64
            })
        );
        assert!(parse_frame(&u32::MAX.to_be_bytes(), 64).is_err());
        assert_eq!(parse_frame(&[0, 0, 0, 0], 64), Err(FrameError::Empty));
    }

    #[test]
    fn encoder_refuses_what_the_decoder_would() {
        let mut out = Vec::new();
        assert!(encode_frame(&[1; 65], 64, &mut out).is_err());
        assert!(encode_frame(&[], 64, &mut out).is_err());
        assert!(out.is_empty());
    }

    #[test]
    fn bytes_wanted_counts_down() {
        let mut buf = Vec::new();
        encode_frame(b"abc", 64, &mut buf).unwrap();
        assert_eq!(bytes_wanted(&[]), 4);
        assert_eq!(bytes_wanted(&buf[..2]), 2);
        assert_eq!(bytes_wanted(&buf[..4]), 3);
        assert_eq!(bytes_wanted(&buf), 0);
    }

    proptest! {
        #[test]
        fn frames_round_trip_back_to_back(bodies in proptest::collection::vec(
            proptest::collection::vec(any::<u8>(), 1..200), 1..8)) {
            let mut buf = Vec::new();
            for b in &bodies {
                encode_frame(b, 256, &mut buf).unwrap();
            }
            let mut rest = &buf[..];
            for b in &bodies {
                let (used, body) = parse_frame(rest, 256).unwrap().unwrap();
                prop_assert_eq!(body, &b[..]);
                rest = &rest[used..];
            }
            prop_assert!(rest.is_empty());
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = parse_frame(&bytes, 32);
            let _ = bytes_wanted(&bytes);
        }
    }
}
