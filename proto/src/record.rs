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

use hush_crypto::{NonceCounter, SealingKey, Secret32, TAG_LEN};
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

/// One direction's key: the 32-byte secret always, the expanded AES-GCM
/// key schedule only while the link is busy (a [`SealingKey`] keeps it in
/// its own zeroed-on-drop heap cell, so an idle link holds a `None`).
/// Expanding it again costs well under a microsecond, once per burst of
/// records.
struct LinkKey {
    secret: Secret32,
    expanded: Option<SealingKey>,
}

impl LinkKey {
    fn new(secret: Secret32) -> Self {
        Self {
            secret,
            expanded: None,
        }
    }

    fn get(&mut self) -> &SealingKey {
        self.expanded
            .get_or_insert_with(|| SealingKey::new(&self.secret))
    }

    fn release(&mut self) {
        self.expanded = None;
    }
}

/// Seals outgoing messages into records.
///
/// Queued messages are laid out directly in their final wire form, so a
/// message is copied once (into `pending`) and sealed in place:
///
/// ```text
///   pending:  [len][frame frame … ][tag] [len][frame … ]   ← open record
///              └── sealed record ──┘      (sealed by seal_pending)
/// ```
///
/// A record is closed and sealed as soon as the next frame would not fit
/// in it, so records are sealed, and their counters used, in order.
pub struct RecordSealer {
    key: LinkKey,
    counter: NonceCounter,
    max_frame: usize,
    /// Sealed records, then the open record's prefix and frames.
    pending: Vec<u8>,
    /// Where the open record's length prefix is in `pending`.
    open_at: Option<usize>,
}

impl RecordSealer {
    pub(crate) fn new(key: Secret32, max_frame: usize) -> Self {
        Self {
            key: LinkKey::new(key),
            counter: NonceCounter::new(),
            max_frame,
            pending: Vec::new(),
            open_at: None,
        }
    }

    /// Lowers the frame limit to what the peer accepts (a client learns
    /// the relay's from the Welcome); never raises it. Takes effect for
    /// records not yet started.
    pub fn limit_frame(&mut self, peer_max: usize) {
        if self.open_at.is_none() {
            self.max_frame = self.max_frame.min(peer_max.max(1));
        }
    }

    /// Queues one message.
    ///
    /// # Errors
    /// [`RecordError::MessageTooLarge`] if it does not fit in a frame;
    /// [`RecordError::Exhausted`] if a record had to be sealed to make
    /// room and the counter is used up.
    pub fn push<T: Serialize>(&mut self, message: &T) -> Result<(), RecordError> {
        self.push_encoded(&msg::encode(message))
    }

    /// Queues one message already encoded with [`msg::encode`] (so that a
    /// message fanned out to many connections is encoded once).
    ///
    /// # Errors
    /// As [`Self::push`].
    pub fn push_encoded(&mut self, body: &[u8]) -> Result<(), RecordError> {
        if body.is_empty() || body.len() > self.max_frame {
            return Err(RecordError::MessageTooLarge);
        }
        let framed = LENGTH_PREFIX + body.len();
        if let Some(at) = self.open_at {
            let used = self.pending.len() - at - LENGTH_PREFIX;
            if used + framed > self.max_frame + LENGTH_PREFIX {
                self.close_record()?;
            }
        }
        if self.open_at.is_none() {
            self.open_at = Some(self.pending.len());
            self.pending.extend_from_slice(&[0; LENGTH_PREFIX]);
        }
        // Checked above, so this cannot fail and leave a record empty.
        frame::encode_frame(body, self.max_frame, &mut self.pending)
            .map_err(|_| RecordError::MessageTooLarge)
    }

    /// Whether messages are queued.
    #[must_use]
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Bytes queued (frames and the records already sealed).
    #[must_use]
    pub fn pending_bytes(&self) -> usize {
        self.pending.len()
    }

    /// Seals queued messages into as few records as the size limit allows
    /// and appends them, ready for the wire, to `out`. When `out` is empty
    /// the buffers are swapped rather than copied.
    ///
    /// # Errors
    /// [`RecordError::Exhausted`] when the counter runs out.
    pub fn seal_pending(&mut self, out: &mut Vec<u8>) -> Result<(), RecordError> {
        if self.open_at.is_some() {
            self.close_record()?;
        }
        if out.is_empty() {
            std::mem::swap(out, &mut self.pending);
        } else {
            out.extend_from_slice(&self.pending);
        }
        self.pending.clear();
        Ok(())
    }

    /// Frees the queue's buffer and the expanded key if nothing is
    /// queued, so a quiet connection holds no record memory.
    pub fn release_memory(&mut self) {
        if self.pending.is_empty() {
            self.pending = Vec::new();
            self.key.release();
        }
    }

    /// Seals the open record in place and appends its tag.
    fn close_record(&mut self) -> Result<(), RecordError> {
        let Some(at) = self.open_at else {
            return Ok(());
        };
        let nonce = self
            .counter
            .next_nonce()
            .map_err(|_| RecordError::Exhausted)?;
        let tag = self
            .key
            .get()
            .seal_in_place(nonce, RECORD_AAD, &mut self.pending[at + LENGTH_PREFIX..])
            .map_err(|_| RecordError::Exhausted)?;
        self.pending.extend_from_slice(&tag);
        let body = self.pending.len() - at - LENGTH_PREFIX;
        let len = u32::try_from(body).map_err(|_| RecordError::MessageTooLarge)?;
        self.pending[at..at + LENGTH_PREFIX].copy_from_slice(&len.to_be_bytes());
        self.open_at = None;
        Ok(())
    }
}

/// Opens incoming records and yields the messages inside.
pub struct RecordOpener {
    key: LinkKey,
    next: u64,
    max_frame: usize,
}

impl RecordOpener {
    pub(crate) fn new(key: Secret32, max_frame: usize) -> Self {
        Self {
            key: LinkKey::new(key),
            next: 0,
            max_frame,
        }
    }

    /// Frees the expanded key until the next record arrives.
    pub fn release_memory(&mut self) {
        self.key.release();
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
        self.open_in_place(&mut record.to_vec())
    }

    /// As [`Self::open`], decrypting in the caller's buffer (which then
    /// holds the plaintext, or garbage if the record did not open).
    ///
    /// # Errors
    /// As [`Self::open`].
    pub fn open_in_place<T: DeserializeOwned>(
        &mut self,
        record: &mut [u8],
    ) -> Result<Vec<T>, RecordError> {
        let mut messages = Vec::new();
        self.open_each(record, |m| messages.push(m))?;
        Ok(messages)
    }

    /// As [`Self::open_in_place`], appending the messages to `out` (a
    /// reader's queue) instead of a new vector. Nothing is appended if
    /// the record is bad.
    ///
    /// # Errors
    /// As [`Self::open`].
    pub fn open_into<T: DeserializeOwned>(
        &mut self,
        record: &mut [u8],
        out: &mut std::collections::VecDeque<T>,
    ) -> Result<(), RecordError> {
        let before = out.len();
        let opened = self.open_each(record, |m| out.push_back(m));
        if opened.is_err() {
            out.truncate(before);
        }
        opened
    }

    /// Opens one record and hands each message in it, in order, to `take`.
    fn open_each<T: DeserializeOwned>(
        &mut self,
        record: &mut [u8],
        mut take: impl FnMut(T),
    ) -> Result<(), RecordError> {
        if self.next == u64::MAX {
            return Err(RecordError::Exhausted);
        }
        let plain = self
            .key
            .get()
            .open_in_place(self.next, RECORD_AAD, record)
            .map_err(|_| RecordError::OpenFailed)?;
        self.next += 1;
        let mut rest = &plain[..];
        if rest.is_empty() {
            return Err(RecordError::Frame(frame::FrameError::Empty));
        }
        while !rest.is_empty() {
            match frame::parse_frame(rest, self.max_frame)? {
                Some((used, body)) => {
                    take(msg::decode::<T>(body)?);
                    rest = &rest[used..];
                }
                // A record holds whole frames only.
                None => return Err(RecordError::Frame(frame::FrameError::Empty)),
            }
        }
        Ok(())
    }
}
