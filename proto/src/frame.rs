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

/// Largest frame limit either side may use: a relay's `--max-frame-bytes`
/// and the receive limit a client announces are both bounded by it.
pub const MAX_FRAME_CEILING: usize = 16 * 1024 * 1024;

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

/// A bounded read buffer that turns a byte stream into frames.
///
/// The caller reads from its socket into [`FrameBuffer::read_space`] and
/// reports how much arrived with [`FrameBuffer::advance`]; frames then come
/// out of [`FrameBuffer::next_frame`]. The buffer never holds more than one
/// frame's limit plus what a single read brought, and the limit is checked
/// from the length prefix before the body is read. It holds no memory
/// until the first read, and [`FrameBuffer::release_if_empty`] gives it
/// back, so a quiet connection costs no buffer at all.
pub struct FrameBuffer {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    limit: usize,
}

/// Size of a fresh buffer, and of the read window it offers.
const READ_CHUNK: usize = 16 * 1024;

impl FrameBuffer {
    /// A buffer for frames of at most `limit` body bytes.
    #[must_use]
    pub fn new(limit: usize) -> Self {
        Self {
            buf: Vec::new(),
            start: 0,
            end: 0,
            limit,
        }
    }

    /// Where the next read should write. Never empty.
    pub fn read_space(&mut self) -> &mut [u8] {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        let pending = self.end - self.start;
        // Room for the frame being assembled (its size is known once the
        // prefix is in and has passed the limit check in next_frame), or
        // at least one read chunk.
        let wanted = bytes_wanted(&self.buf[self.start..self.end])
            .min(self.limit + LENGTH_PREFIX)
            .max(READ_CHUNK.min(self.limit + LENGTH_PREFIX));
        if self.buf.len() - self.end < wanted {
            self.buf.copy_within(self.start..self.end, 0);
            self.start = 0;
            self.end = pending;
            let need = pending + wanted;
            if self.buf.len() < need {
                self.buf.resize(need, 0);
            }
        }
        &mut self.buf[self.end..]
    }

    /// Records that `n` bytes were written into [`Self::read_space`].
    pub fn advance(&mut self, n: usize) {
        self.end = (self.end + n).min(self.buf.len());
    }

    /// The next whole frame's body, if one has arrived.
    ///
    /// # Errors
    /// [`FrameError`] as soon as a length prefix is invalid.
    pub fn next_frame(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        match parse_frame(&self.buf[self.start..self.end], self.limit)? {
            Some((used, body)) => {
                let body = body.to_vec();
                self.start += used;
                Ok(Some(body))
            }
            None => Ok(None),
        }
    }

    /// As [`Self::next_frame`], lending the body in place (for callers that
    /// decrypt it where it lies).
    ///
    /// # Errors
    /// As [`Self::next_frame`].
    pub fn next_frame_mut(&mut self) -> Result<Option<&mut [u8]>, FrameError> {
        match parse_frame(&self.buf[self.start..self.end], self.limit)? {
            Some((used, body)) => {
                let from = self.start + (used - body.len());
                self.start += used;
                Ok(Some(&mut self.buf[from..self.start]))
            }
            None => Ok(None),
        }
    }

    /// Frees the buffer if it holds no unreturned bytes.
    pub fn release_if_empty(&mut self) {
        if self.start == self.end {
            self.buf = Vec::new();
            self.start = 0;
            self.end = 0;
        }
    }

    /// Changes the frame limit (the link's records may be larger than its
    /// handshake messages). Bytes already buffered are kept.
    pub fn set_limit(&mut self, limit: usize) {
        self.limit = limit;
    }

    /// Bytes received but not yet returned as frames.
    #[must_use]
    pub fn buffered(&self) -> usize {
        self.end - self.start
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

    fn feed(fb: &mut FrameBuffer, mut bytes: &[u8], chunk: usize) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while !bytes.is_empty() {
            let space = fb.read_space();
            let n = space.len().min(chunk).min(bytes.len());
            space[..n].copy_from_slice(&bytes[..n]);
            fb.advance(n);
            bytes = &bytes[n..];
            while let Some(f) = fb.next_frame().unwrap() {
                out.push(f);
            }
        }
        out
    }

    #[test]
    fn frame_buffer_reassembles_frames_split_anywhere() {
        let mut wire = Vec::new();
        let bodies: Vec<Vec<u8>> = (1..50u8).map(|i| vec![i; usize::from(i) * 300]).collect();
        for b in &bodies {
            encode_frame(b, 20_000, &mut wire).unwrap();
        }
        for chunk in [1, 3, 4, 5, 1000, 65_536] {
            let mut fb = FrameBuffer::new(20_000);
            assert_eq!(feed(&mut fb, &wire, chunk), bodies, "chunk {chunk}");
            assert_eq!(fb.buffered(), 0);
            assert!(fb.buf.len() <= 20_004 + READ_CHUNK, "buffer stays bounded");
        }
    }

    #[test]
    fn frame_buffer_refuses_an_oversized_prefix_without_buffering_it() {
        let mut fb = FrameBuffer::new(100);
        let space = fb.read_space();
        space[..4].copy_from_slice(&1_000_000u32.to_be_bytes());
        fb.advance(4);
        assert!(fb.next_frame().is_err());
        assert!(fb.buf.len() <= 104);
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
