//! Sealed records: the link after the handshake.
//!
//! ```text
//!   wire:      u32 BE length ‖ AES-256-GCM( frames ) ‖ tag
//!   frames:    u32 BE length ‖ postcard(msg)   (one or more, back to back)
//!   nonce:     00000000 ‖ record counter (u64 BE), per direction, implicit
//! ```
//!
//! As in TLS, one record carries one or more whole frames: a sender with a
//! queue of messages seals them together, so under load the cost of
//! sealing and of system calls is paid per batch, not per message. The
//! counter is implicit (both sides count records), so a dropped, replayed
//! or reordered record fails to open and closes the connection. Keys are
//! per direction, so the two counters never share a key.

use std::collections::VecDeque;

use hush_crypto::{NonceCounter, SealingKey, TAG_LEN};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::frame::{self, LENGTH_PREFIX};
use crate::msg;

/// Associated data of every record: names what the ciphertext is.
const RECORD_AAD: &[u8] = b"hush/v1/link-record";

/// Why a record could not be produced or consumed. Any of these closes
/// the connection.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum RecordError {
    /// The record did not open: altered, replayed, reordered or forged.
    #[error("record failed to open")]
    OpenFailed,
    /// A frame inside the record was invalid.
    #[error("bad frame in record: {0}")]
    Frame(#[from] frame::FrameError),
    /// A message inside the record did not decode.
    #[error("bad message in record: {0}")]
    Message(#[from] msg::DecodeError),
    /// The record counter is exhausted: the connection must be renewed.
    #[error("record counter exhausted")]
    Exhausted,
    /// A single message is larger than a frame may be.
    #[error("message too large for a frame")]
    MessageTooLarge,
}

/// Largest sealed record body on the wire for a given frame limit: one
/// full-size frame with its prefix, plus the tag.
#[must_use]
pub const fn max_record_wire(max_frame: usize) -> usize {
    max_frame + LENGTH_PREFIX + TAG_LEN
}

/// Seals outgoing messages into records.
pub struct RecordSealer {
    key: SealingKey,
    counter: NonceCounter,
    max_frame: usize,
    /// Encoded frames waiting to be sealed.
    queue: VecDeque<Vec<u8>>,
    queued_bytes: usize,
}

impl RecordSealer {
    pub(crate) fn new(key: SealingKey, max_frame: usize) -> Self {
        Self {
            key,
            counter: NonceCounter::new(),
            max_frame,
            queue: VecDeque::new(),
            queued_bytes: 0,
        }
    }

    /// Queues one message.
    ///
    /// # Errors
    /// [`RecordError::MessageTooLarge`] if it does not fit in a frame.
    pub fn push<T: Serialize>(&mut self, message: &T) -> Result<(), RecordError> {
        self.push_encoded(&msg::encode(message))
    }

    /// Queues one message already encoded with [`msg::encode`] (so that a
    /// message fanned out to many connections is encoded once).
    ///
    /// # Errors
    /// [`RecordError::MessageTooLarge`] if it does not fit in a frame.
    pub fn push_encoded(&mut self, body: &[u8]) -> Result<(), RecordError> {
        let mut framed = Vec::with_capacity(body.len() + LENGTH_PREFIX);
        frame::encode_frame(body, self.max_frame, &mut framed)
            .map_err(|_| RecordError::MessageTooLarge)?;
        self.queued_bytes += framed.len();
        self.queue.push_back(framed);
        Ok(())
    }

    /// Whether messages are queued.
    #[must_use]
    pub fn has_pending(&self) -> bool {
        !self.queue.is_empty()
    }

    /// Bytes of queued frames.
    #[must_use]
    pub fn pending_bytes(&self) -> usize {
        self.queued_bytes
    }

    /// Seals queued messages into as few records as the size limit allows
    /// and appends them, ready for the wire, to `out`.
    ///
    /// # Errors
    /// [`RecordError::Exhausted`] when the counter runs out.
    pub fn seal_pending(&mut self, out: &mut Vec<u8>) -> Result<(), RecordError> {
        let limit = self.max_frame + LENGTH_PREFIX;
        let mut plain = Vec::with_capacity(self.queued_bytes.min(limit));
        while let Some(front) = self.queue.front() {
            if !plain.is_empty() && plain.len() + front.len() > limit {
                self.seal_one(&plain, out)?;
                plain.clear();
            }
            if let Some(f) = self.queue.pop_front() {
                self.queued_bytes -= f.len();
                plain.extend_from_slice(&f);
            }
        }
        if !plain.is_empty() {
            self.seal_one(&plain, out)?;
        }
        Ok(())
    }

    fn seal_one(&mut self, plain: &[u8], out: &mut Vec<u8>) -> Result<(), RecordError> {
        let nonce = self
            .counter
            .next_nonce()
            .map_err(|_| RecordError::Exhausted)?;
        let sealed = self
            .key
            .seal(nonce, RECORD_AAD, plain)
            .map_err(|_| RecordError::Exhausted)?;
        frame::encode_frame(&sealed, max_record_wire(self.max_frame), out)
            .map_err(RecordError::Frame)
    }
}

/// Opens incoming records and yields the messages inside.
pub struct RecordOpener {
    key: SealingKey,
    next: u64,
    max_frame: usize,
}

impl RecordOpener {
    pub(crate) fn new(key: SealingKey, max_frame: usize) -> Self {
        Self {
            key,
            next: 0,
            max_frame,
        }
    }

    /// The largest record body this opener accepts (for the reader's
    /// length-prefix check).
    #[must_use]
    pub fn max_record_wire(&self) -> usize {
        max_record_wire(self.max_frame)
    }

    /// Opens one record body (without its length prefix) and decodes every
    /// message in it, in order.
    ///
    /// # Errors
    /// Any [`RecordError`]; the connection must then be closed.
    pub fn open<T: DeserializeOwned>(&mut self, record: &[u8]) -> Result<Vec<T>, RecordError> {
        if self.next == u64::MAX {
            return Err(RecordError::Exhausted);
        }
        let plain = self
            .key
            .open(self.next, RECORD_AAD, record)
            .map_err(|_| RecordError::OpenFailed)?;
        self.next += 1;
        let mut messages = Vec::new();
        let mut rest = &plain[..];
        while !rest.is_empty() {
            match frame::parse_frame(rest, self.max_frame)? {
                Some((used, body)) => {
                    messages.push(msg::decode::<T>(body)?);
                    rest = &rest[used..];
                }
                // A record holds whole frames only.
                None => return Err(RecordError::Frame(frame::FrameError::Empty)),
            }
        }
        if messages.is_empty() {
            return Err(RecordError::Frame(frame::FrameError::Empty));
        }
        Ok(messages)
    }
}
