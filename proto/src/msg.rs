//! Wire messages, serialised with postcard.
//!
//! Two groups: the handshake messages, which travel as plain frames before
//! any key exists, and [`ClientMsg`] / [`RelayMsg`], which travel only
//! inside sealed records (see [`crate::record`]).
//!
//! Room events have two layers. The relay sees the [`RoomEvent`] envelope
//! (room, sender, kind, epoch) because it routes, orders and enforces the
//! one-commit-per-epoch rule by it; the `body` is opaque to it: signed and
//! sealed end to end by the members' clients.

use hush_crypto::Fingerprint;
use serde::{Deserialize, Serialize};

use crate::names::RoomName;

/// Bytes that open every handshake message, so that a hush peer talking to
/// something else (or something else talking to a hush relay) is told so
/// plainly.
pub const MAGIC: [u8; 4] = *b"hush";

/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u16 = 2;

/// Decodes one message from a frame body, refusing trailing bytes.
///
/// # Errors
/// [`DecodeError`] if the bytes are not exactly one `T`.
pub fn decode<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, DecodeError> {
    match postcard::take_from_bytes::<T>(body) {
        Ok((value, [])) => Ok(value),
        Ok(_) => Err(DecodeError::TrailingBytes),
        Err(_) => Err(DecodeError::Malformed),
    }
}

/// Encodes a message as a frame body.
#[must_use]
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // postcard serialisation into a Vec cannot fail for these types: no
    // maps with non-string keys, no unbounded recursion, no I/O.
    postcard::to_allocvec(value).unwrap_or_default()
}

/// Why a frame body is not the message it should be.
#[derive(Debug, thiserror::Error, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// Not a valid encoding of the expected message.
    #[error("malformed message")]
    Malformed,
    /// A valid message followed by extra bytes.
    #[error("trailing bytes after message")]
    TrailingBytes,
}

/// Fingerprints travel as their 32 raw bytes.
/// `Vec<u8>` fields as one byte string. On postcard's wire this is the
/// same varint length and raw bytes that serde's default sequence of
/// `u8` produces, but it decodes with one copy instead of one visitor
/// call per byte (the largest single cost of decoding an event body).
pub(crate) mod bytes {
    use serde::de::{Error, SeqAccess, Visitor};
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        d.deserialize_byte_buf(ByteBuf)
    }

    struct ByteBuf;

    impl<'de> Visitor<'de> for ByteBuf {
        type Value = Vec<u8>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a byte string")
        }

        fn visit_bytes<E: Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
            Ok(v.to_vec())
        }

        fn visit_byte_buf<E: Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
            Ok(v)
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
            // Bounded by what the input holds, never by a claimed length.
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
            while let Some(b) = seq.next_element()? {
                out.push(b);
            }
            Ok(out)
        }
    }
}

pub(crate) mod fp_bytes {
    use hush_crypto::Fingerprint;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(fp: &Fingerprint, s: S) -> Result<S::Ok, S::Error> {
        fp.as_bytes().serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Fingerprint, D::Error> {
        <[u8; 32]>::deserialize(d).map(Fingerprint::from_bytes)
    }

    pub mod vec {
        use super::*;
        pub fn serialize<S: Serializer>(fps: &[Fingerprint], s: S) -> Result<S::Ok, S::Error> {
            let raw: Vec<[u8; 32]> = fps.iter().map(|f| *f.as_bytes()).collect();
            raw.serialize(s)
        }
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Fingerprint>, D::Error> {
            Vec::<[u8; 32]>::deserialize(d)
                .map(|v| v.into_iter().map(Fingerprint::from_bytes).collect())
        }
    }
}

// ─── Handshake (messages 1 and 2 in clear, 2b and 3 sealed) ──────────────

/// Handshake message 1, client → relay, in clear. Its first two fields
/// keep this layout in every protocol version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientHello {
    /// Always [`MAGIC`].
    pub magic: [u8; 4],
    /// The client's [`PROTOCOL_VERSION`].
    pub version: u16,
    /// Fresh randomness: makes the transcript, and so the keys, unique.
    pub client_nonce: [u8; 32],
    /// The client's ephemeral key exchange share: an X25519 public key
    /// and an ML-KEM-768 encapsulation key (`hush_crypto::kex`).
    #[serde(with = "crate::msg::bytes")]
    pub kex_share: Vec<u8>,
    /// The largest frame body this client accepts: the relay never seals
    /// a record above it (nor above its own limit).
    pub max_frame: u32,
    /// A session ticket from an earlier handshake with this relay, to
    /// resume without RSA (empty for a full handshake). Opaque to the
    /// client: sealed with a key only the relay holds.
    #[serde(with = "crate::msg::bytes")]
    pub ticket: Vec<u8>,
}

/// Handshake message 2, relay → client, in clear. Its first two fields
/// keep this layout in every protocol version, so a peer of another
/// version can always read which version the relay speaks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayGreeting {
    /// Always [`MAGIC`].
    pub magic: [u8; 4],
    /// The relay's protocol version. If it differs from the client's, the
    /// relay closes after this message and `hello` is empty.
    pub version: u16,
    /// A postcard [`RelayHello`] when the versions match, else empty.
    #[serde(with = "crate::msg::bytes")]
    pub hello: Vec<u8>,
}

/// The version-specific part of the relay's greeting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayHello {
    /// Fresh randomness.
    pub relay_nonce: [u8; 32],
    /// The relay's reply to the client's share: an X25519 public key and
    /// an ML-KEM-768 ciphertext.
    #[serde(with = "crate::msg::bytes")]
    pub kex_reply: Vec<u8>,
    /// The relay accepted the client's ticket: no [`RelayAuth`] follows,
    /// message 3 is a [`ClientFinished`], and no RSA operation follows on
    /// either side.
    pub resumed: bool,
}

/// Handshake message 2b of a full handshake, relay → client, sealed under
/// the relay's handshake key: who the relay is, and its proof.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayAuth {
    /// The relay's identity public key, SPKI DER. The client pins it per
    /// `host:port` on first use.
    #[serde(with = "crate::msg::bytes")]
    pub relay_key: Vec<u8>,
    /// RSA-PSS signature, context `hush/v2/link-relay-auth`, over the
    /// transcript of messages 1 and 2 and `relay_key`.
    #[serde(with = "crate::msg::bytes")]
    pub signature: Vec<u8>,
}

/// Handshake message 3 of a resumed handshake, client → relay, sealed
/// under the client's handshake key: proof that the client holds the
/// resumption secret the ticket was issued with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientFinished {
    /// `HKDF(handshake secret, salt = transcript of messages 1 and 2,
    /// info = "hush/v2/resume/client-finished")`.
    pub finished: [u8; 32],
}

/// Handshake message 3 of a full handshake, client → relay, sealed under
/// the client's handshake key, so its identity never crosses in clear.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientAuth {
    /// The client's identity public key, SPKI DER.
    #[serde(with = "crate::msg::bytes")]
    pub client_key: Vec<u8>,
    /// RSA-PSS signature, context `hush/v2/link-auth`, over the transcript
    /// of messages 1, 2, 2b and `client_key`.
    #[serde(with = "crate::msg::bytes")]
    pub signature: Vec<u8>,
}

/// Handshake message 4, relay → client: the first record under the link's
/// own keys. That it opens confirms both sides derived the same keys from
/// the whole transcript.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    /// The fingerprint the relay bound this connection to.
    #[serde(with = "fp_bytes")]
    pub client: Fingerprint,
    /// The relay's clock, ms since the UNIX epoch.
    pub relay_time_ms: u64,
    /// Largest frame body the relay accepts.
    pub max_frame: u32,
    /// The relay closes a connection silent for this long; clients send
    /// something (a ping) well before.
    pub idle_timeout_ms: u64,
    /// A ticket for resuming the next connection without RSA (empty if
    /// the relay issues none). Its resumption secret is derived from this
    /// link's master secret, so only this client can use it.
    #[serde(with = "crate::msg::bytes")]
    pub ticket: Vec<u8>,
    /// When the ticket expires, ms since the UNIX epoch.
    pub ticket_expires_ms: u64,
}

// ─── Room events ─────────────────────────────────────────────────────────

/// What a room event is, as far as the relay needs to know.
///
/// Each kind has one byte, [`EventKind::code`]: the relay's log stores it,
/// and signing digests and the hash chain absorb it (`e2e`). On the wire
/// (postcard) a kind is its variant index instead, which is the same
/// number today. A new kind is one more variant here, with a new code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventKind {
    /// A member's message (text, nickname change, …: the client knows).
    Message,
    /// Opens a new epoch: new member list and key. At most one per parent.
    Commit,
    /// A newcomer asks the members to admit it.
    JoinRequest,
    /// A member announces it is leaving.
    Leave,
    /// Other signed control data between members (invites, settings).
    Control,
}

impl EventKind {
    /// The kind's byte. Never change one: relay logs on disk and every
    /// event signature and chain head depend on these values.
    #[must_use]
    pub const fn code(self) -> u8 {
        match self {
            Self::Message => 0,
            Self::Commit => 1,
            Self::JoinRequest => 2,
            Self::Leave => 3,
            Self::Control => 4,
        }
    }

    /// The kind whose [`code`](Self::code) is `code`, if any.
    #[must_use]
    pub const fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(Self::Message),
            1 => Some(Self::Commit),
            2 => Some(Self::JoinRequest),
            3 => Some(Self::Leave),
            4 => Some(Self::Control),
            _ => None,
        }
    }
}

/// A room event as a member sends it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomEvent {
    /// The room it belongs to.
    pub room: RoomName,
    /// Who sent it: must equal the connection's authenticated identity.
    #[serde(with = "fp_bytes")]
    pub sender: Fingerprint,
    /// What it is.
    pub kind: EventKind,
    /// For a [`EventKind::Commit`], the epoch it opens (its parent + 1);
    /// otherwise the epoch it was sent in (0 before the room has one).
    pub epoch: u64,
    /// Opaque to the relay: signed and sealed by the sender's client.
    #[serde(with = "crate::msg::bytes")]
    pub body: Vec<u8>,
}

/// A room event as the relay delivers it: with its place in the room's
/// order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SequencedEvent {
    /// Position in the room: 1, 2, 3, … with no gaps.
    pub seq: u64,
    /// The relay's clock when it accepted the event, ms since the epoch.
    pub received_at_ms: u64,
    /// The event itself, exactly as the sender sent it.
    pub event: RoomEvent,
}

// ─── Link messages (inside sealed records) ───────────────────────────────

/// Client → relay, after the handshake.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientMsg {
    /// Subscribe to a room's events and presence (creating it if new).
    Join {
        /// Which room.
        room: RoomName,
    },
    /// Stop receiving a room's events.
    Leave {
        /// Which room.
        room: RoomName,
    },
    /// Submit an event for sequencing. The client sees it again, with its
    /// sequence number, as a [`RelayMsg::Event`], or gets a
    /// [`RelayMsg::Rejected`] carrying the same `request`.
    Publish {
        /// The client's id for this request, echoed in a rejection.
        request: u64,
        /// The event.
        event: RoomEvent,
    },
    /// Ask for the room's logged events with `seq > after_seq`.
    Backfill {
        /// Which room (must be joined).
        room: RoomName,
        /// Last sequence number the client already has.
        after_seq: u64,
    },
    /// Liveness probe; the relay answers with [`RelayMsg::Pong`].
    Ping {
        /// Echoed back.
        nonce: u64,
    },
    /// Answer to a [`RelayMsg::Ping`].
    Pong {
        /// The relay's nonce.
        nonce: u64,
    },
    /// Ask for a signed [`RelayMsg::Checkpoint`] of a joined room's head.
    Checkpoint {
        /// Which room.
        room: RoomName,
    },
    /// Announce (or, the same again, resume) the upload of a sealed file
    /// to a joined room: `chunks` chunks of `bytes` sealed bytes in all.
    /// The relay reserves the space in the sender's quota and answers
    /// [`RelayMsg::FileStatus`] (which chunks it holds already), or
    /// [`RelayMsg::FileRefused`] before anything is uploaded.
    FileDeclare {
        /// Which room (must be joined).
        room: RoomName,
        /// The file's random id.
        file: [u8; 16],
        /// How many chunks.
        chunks: u32,
        /// Their sealed bytes, in all.
        bytes: u64,
    },
    /// One sealed chunk of a declared file (its declarer only). Answered
    /// by [`RelayMsg::FileStored`] once it is on disk.
    FilePut {
        /// Which room.
        room: RoomName,
        /// The file.
        file: [u8; 16],
        /// Which chunk (0-based).
        index: u32,
        /// The sealed chunk.
        #[serde(with = "crate::msg::bytes")]
        data: Vec<u8>,
    },
    /// Ask for one stored chunk; answered by [`RelayMsg::FileChunk`].
    FileGet {
        /// Which room (must be joined).
        room: RoomName,
        /// The file.
        file: [u8; 16],
        /// Which chunk.
        index: u32,
    },
    /// Ask for chunks `first .. first + count` of a stored file, at most
    /// [`MAX_FILE_RANGE`]; answered by a [`RelayMsg::FileChunk`] for each,
    /// in order, or by one [`RelayMsg::FileRefused`] (and no chunk) if the
    /// range is too long or not all of it is held. One request per range
    /// instead of per chunk; the client keeps a bounded number in flight.
    FileGetRange {
        /// Which room (must be joined).
        room: RoomName,
        /// The file.
        file: [u8; 16],
        /// The first chunk.
        first: u32,
        /// How many, from 1 to [`MAX_FILE_RANGE`].
        count: u32,
    },
    /// Ask which chunks of a file the relay holds ([`RelayMsg::FileStatus`]).
    FileQuery {
        /// Which room (must be joined).
        room: RoomName,
        /// The file.
        file: [u8; 16],
    },
    /// Open a mailbox for an invitation code; the relay answers
    /// [`RelayMsg::CodeOpened`] with its number, or [`RelayMsg::CodeClosed`].
    CodeOpen,
    /// Claim mailbox `number` and post `data` (a `code::Step`) to its
    /// opener. Only the first claim is taken: it spends the code.
    CodeClaim {
        /// The code's number.
        number: u16,
        /// Opaque to the relay.
        #[serde(with = "crate::msg::bytes")]
        data: Vec<u8>,
    },
    /// Post `data` to the other side of mailbox `number` (only its opener
    /// and its claimer may).
    CodePost {
        /// The code's number.
        number: u16,
        /// Opaque to the relay.
        #[serde(with = "crate::msg::bytes")]
        data: Vec<u8>,
    },
    /// Close mailbox `number`: the exchange is over (done or given up).
    CodeClose {
        /// The code's number.
        number: u16,
    },
}

/// The relay's signed statement of a room's hash-chain head at a seq.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Which room.
    pub room: RoomName,
    /// The sequence number the head follows.
    pub seq: u64,
    /// The chain head after `seq` (see `e2e::chain_next`).
    pub head: [u8; 32],
    /// The relay's clock when it signed, ms since the UNIX epoch.
    pub relay_time_ms: u64,
    /// RSA-PSS by the relay's identity key, context
    /// `e2e::CHECKPOINT_CONTEXT`, over `e2e::checkpoint_digest`.
    #[serde(with = "crate::msg::bytes")]
    pub signature: Vec<u8>,
}

/// Relay → client, after the handshake.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RelayMsg {
    /// The handshake's last message (first record only).
    Welcome(Welcome),
    /// The client is now subscribed to the room. Every event with
    /// `seq > head_seq` will arrive live; earlier ones by backfill.
    Joined {
        /// Which room.
        room: RoomName,
        /// The room's last committed sequence number (0 if empty).
        head_seq: u64,
        /// The room's current epoch (0 if no commit yet).
        epoch: u64,
        /// Identities currently connected to the room (including this one).
        #[serde(with = "fp_bytes::vec")]
        online: Vec<Fingerprint>,
    },
    /// The client left the room.
    Left {
        /// Which room.
        room: RoomName,
    },
    /// A committed room event.
    Event(SequencedEvent),
    /// End of a backfill answer.
    BackfillDone {
        /// Which room.
        room: RoomName,
        /// The last sequence number sent in this answer (or `after_seq`).
        up_to: u64,
        /// False if more events exist: ask again from `up_to`.
        complete: bool,
    },
    /// Someone connected to, or disconnected from, a room.
    Presence {
        /// Which room.
        room: RoomName,
        /// Who.
        #[serde(with = "fp_bytes")]
        member: Fingerprint,
        /// Whether they are now online.
        online: bool,
    },
    /// A request was refused; the connection stays open.
    Rejected {
        /// The `request` of the refused [`ClientMsg::Publish`] (0 for other
        /// requests).
        request: u64,
        /// The room concerned.
        room: RoomName,
        /// Why.
        reason: Rejection,
    },
    /// Liveness probe; the client answers with [`ClientMsg::Pong`].
    Ping {
        /// Echoed back.
        nonce: u64,
    },
    /// Answer to a [`ClientMsg::Ping`].
    Pong {
        /// The client's nonce.
        nonce: u64,
    },
    /// The relay is about to close this connection, and why.
    Closing {
        /// Why.
        reason: CloseReason,
    },
    /// A signed checkpoint: periodically, and on request.
    Checkpoint(Checkpoint),
    /// Which chunks of a file the relay holds (after a declare or query).
    FileStatus {
        /// Which room.
        room: RoomName,
        /// The file.
        file: [u8; 16],
        /// How many chunks the file has.
        chunks: u32,
        /// The indices held, ascending.
        have: Vec<u32>,
    },
    /// A chunk is stored durably. The relay may hold it back until it
    /// has synced several chunks together (PROTOCOL.md §8.7).
    FileStored {
        /// Which room.
        room: RoomName,
        /// The file.
        file: [u8; 16],
        /// Which chunk.
        index: u32,
    },
    /// A stored chunk, as asked for.
    FileChunk {
        /// Which room.
        room: RoomName,
        /// The file.
        file: [u8; 16],
        /// Which chunk.
        index: u32,
        /// The sealed chunk.
        #[serde(with = "crate::msg::bytes")]
        data: Vec<u8>,
    },
    /// A file request was refused; the connection stays open.
    FileRefused {
        /// Which room.
        room: RoomName,
        /// The file.
        file: [u8; 16],
        /// Why.
        reason: FileRefusal,
    },
    /// A mailbox for an invitation code is open.
    CodeOpened {
        /// Its number, the code's first part.
        number: u16,
        /// How long it stays open unclaimed, in ms.
        expires_in_ms: u64,
    },
    /// The other side of mailbox `number` posted `data`.
    CodeData {
        /// The code's number.
        number: u16,
        /// What they posted.
        #[serde(with = "crate::msg::bytes")]
        data: Vec<u8>,
    },
    /// Mailbox `number` is closed, or a request on it was refused.
    CodeClosed {
        /// The code's number (0 for a refused [`ClientMsg::CodeOpen`]).
        number: u16,
        /// Why.
        reason: CodeEnd,
    },
}

/// Why a code mailbox closed, or a request on one was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CodeEnd {
    /// No mailbox has this number (never opened, or long gone).
    Unknown,
    /// Someone already claimed it: a code is good for one try.
    Used,
    /// Nobody claimed it in time.
    Expired,
    /// The other side closed it (the exchange is over).
    Closed,
    /// The other side's connection dropped.
    Gone,
    /// The relay holds as many open codes as it allows (for this identity,
    /// or in all).
    Full,
    /// This identity claimed more codes than the relay allows per hour.
    TooManyClaims,
    /// A post was too large, or one too many.
    TooMuch,
}

/// Why the relay refused a file request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FileRefusal {
    /// The connection has not joined that room.
    NotJoined,
    /// The file is larger than this relay stores.
    TooLarge {
        /// Largest file, in sealed bytes.
        max: u64,
    },
    /// The sender's stored files would pass its quota.
    OverQuota {
        /// The quota, in sealed bytes.
        quota: u64,
        /// What the sender has stored or reserved now.
        used: u64,
    },
    /// No such file: never declared here, or expired.
    Unknown,
    /// Another identity declared this file id.
    NotOwner,
    /// Declared again with another size.
    Mismatch,
    /// A chunk index out of range, or a chunk too large.
    BadChunk {
        /// The chunk.
        index: u32,
    },
    /// The chunk has not been uploaded (yet).
    Missing {
        /// The chunk.
        index: u32,
    },
    /// The relay could not read or write its store; try again later.
    StorageFailed,
}

/// Most chunks one [`ClientMsg::FileGetRange`] may ask for (2 MiB of
/// 32 KiB chunks): what the relay reads and queues for one request, and
/// so what a chat message on the link can wait behind per range.
pub const MAX_FILE_RANGE: u32 = 64;

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Rejection {
    /// The connection has not joined that room.
    NotJoined,
    /// The event's sender is not the connection's identity.
    SpoofedSender,
    /// An event claiming an epoch no commit has opened (for a commit: a
    /// parent no commit opened).
    FutureEpoch {
        /// The highest epoch any sequenced commit opens.
        current: u64,
    },
    /// This identity sent more commits to the room than the relay allows
    /// per minute; the commit was not sequenced. Members rebuild it.
    TooManyCommits {
        /// Commits allowed per identity, room and minute.
        per_minute: u32,
    },
    /// The connection is in as many rooms as the relay allows.
    TooManyRooms {
        /// The limit.
        limit: u32,
    },
    /// The relay could not write its log; nothing was delivered. Retry
    /// later.
    StorageFailed,
    /// The event's body is larger than the relay delivers.
    TooLarge {
        /// Largest body accepted, in bytes.
        max_body: u32,
    },
    /// The event would have created a room (the first event in it), and
    /// its sender already created as many rooms as the relay allows per
    /// hour; nothing was stored. Use an existing room, or try later.
    TooManyNewRooms {
        /// New rooms allowed per identity and hour.
        per_hour: u32,
    },
}

/// The relay's epoch rule (protocol 2). The relay does not choose between
/// commits: members take, for each parent epoch, the first valid commit in
/// sequence order (PROTOCOL.md §9.2.6). It only refuses what cannot name a
/// real epoch: a commit opening epoch 0 or more than one past the highest
/// epoch any sequenced commit opens (`highest`), and any other event
/// claiming an epoch above `highest`. After a commit, `highest` is the
/// larger of the two.
///
/// # Errors
/// The [`Rejection`] the relay sends.
pub fn check_epoch(kind: EventKind, epoch: u64, highest: u64) -> Result<(), Rejection> {
    let possible = match kind {
        EventKind::Commit => (1..=highest.saturating_add(1)).contains(&epoch),
        _ => epoch <= highest,
    };
    if possible {
        Ok(())
    } else {
        Err(Rejection::FutureEpoch { current: highest })
    }
}

/// Bytes reserved in a frame for everything of a delivered
/// [`RelayMsg::Event`] except the body: tag, sequence number, time, room
/// name (at most 64 bytes), sender, kind, epoch and length prefixes. The
/// real overhead is below 130 bytes.
pub const EVENT_ENVELOPE_RESERVE: usize = 256;

/// Largest event body a relay with frame limit `max_frame` accepts, so
/// that the event, once sequenced, still fits in a frame.
#[must_use]
pub const fn max_event_body(max_frame: usize) -> usize {
    max_frame.saturating_sub(EVENT_ENVELOPE_RESERVE)
}

/// Why the relay closes a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CloseReason {
    /// The relay is shutting down; reconnect later.
    Shutdown,
    /// Nothing was received for the idle timeout.
    Idle,
    /// The client did not read fast enough; reconnect and backfill.
    TooSlow,
    /// The client sent something invalid.
    ProtocolViolation,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Byte-string fields keep the wire format of serde's default
    /// `Vec<u8>` (a varint length, then the bytes), so relays and clients
    /// from before the faster encoding read each other.
    #[test]
    fn byte_fields_keep_the_sequence_wire_format() {
        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        struct Fast {
            #[serde(with = "bytes")]
            b: Vec<u8>,
        }
        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        struct Plain {
            b: Vec<u8>,
        }
        for len in [0usize, 1, 127, 128, 300, 70_000] {
            let b: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            let fast = encode(&Fast { b: b.clone() });
            assert_eq!(fast, encode(&Plain { b: b.clone() }));
            assert_eq!(decode::<Fast>(&fast), Ok(Fast { b }));
        }
        // A length claiming more than the input holds fails cleanly.
        assert_eq!(
            decode::<Fast>(&[0xff, 0x7f, 1]),
            Err(DecodeError::Malformed)
        );
    }

    #[test]
    fn decode_refuses_trailing_bytes_and_garbage() {
        let msg = ClientMsg::Ping { nonce: 7 };
        let mut bytes = encode(&msg);
        assert_eq!(decode::<ClientMsg>(&bytes), Ok(msg));
        bytes.push(0);
        assert_eq!(decode::<ClientMsg>(&bytes), Err(DecodeError::TrailingBytes));
        assert_eq!(
            decode::<ClientMsg>(&[0xff, 0xff]),
            Err(DecodeError::Malformed)
        );
        assert_eq!(decode::<ClientMsg>(&[]), Err(DecodeError::Malformed));
    }

    #[test]
    fn event_kind_codes_are_pinned() {
        use EventKind::*;
        // Stored in relay logs and absorbed by signatures and chain heads:
        // these values never change.
        let pinned = [
            (Message, 0),
            (Commit, 1),
            (JoinRequest, 2),
            (Leave, 3),
            (Control, 4),
        ];
        for (kind, code) in pinned {
            assert_eq!(kind.code(), code, "{kind:?}");
            assert_eq!(EventKind::from_code(code), Some(kind));
            // The wire's variant index is the same number.
            assert_eq!(encode(&kind), vec![code], "{kind:?}");
        }
        let known = (0..=u8::MAX).filter(|&c| EventKind::from_code(c).is_some());
        assert_eq!(known.count(), pinned.len());
    }

    #[test]
    fn epoch_rule() {
        use EventKind::*;
        assert_eq!(check_epoch(Commit, 1, 0), Ok(()));
        assert_eq!(
            check_epoch(Commit, 1, 1),
            Ok(()),
            "competing commits for one parent are all sequenced: members choose"
        );
        assert_eq!(
            check_epoch(Commit, 0, 4),
            Err(Rejection::FutureEpoch { current: 4 })
        );
        assert_eq!(
            check_epoch(Commit, 3, 1),
            Err(Rejection::FutureEpoch { current: 1 })
        );
        assert_eq!(
            check_epoch(Message, 1, 2),
            Ok(()),
            "in flight during a rekey"
        );
        assert_eq!(
            check_epoch(Message, 3, 2),
            Err(Rejection::FutureEpoch { current: 2 })
        );
        assert_eq!(check_epoch(JoinRequest, 0, 5), Ok(()));
        assert_eq!(check_epoch(Commit, u64::MAX, u64::MAX), Ok(()));
    }

    #[test]
    fn a_maximal_event_fits_its_frame() {
        let max_frame = crate::DEFAULT_MAX_FRAME;
        let event = RelayMsg::Event(SequencedEvent {
            seq: u64::MAX,
            received_at_ms: u64::MAX,
            event: RoomEvent {
                room: RoomName::new(&"r".repeat(crate::names::MAX_ROOM_NAME)).unwrap(),
                sender: Fingerprint::from_bytes([0xff; 32]),
                kind: EventKind::Control,
                epoch: u64::MAX,
                body: vec![0xff; max_event_body(max_frame)],
            },
        });
        assert!(encode(&event).len() <= max_frame);
    }

    #[test]
    fn every_truncation_of_a_message_is_refused() {
        let msg = ClientMsg::Publish {
            request: 9,
            event: RoomEvent {
                room: RoomName::new("lobby").unwrap(),
                sender: Fingerprint::from_bytes([3; 32]),
                kind: EventKind::Commit,
                epoch: 2,
                body: vec![1, 2, 3],
            },
        };
        let bytes = encode(&msg);
        for cut in 0..bytes.len() {
            assert!(decode::<ClientMsg>(&bytes[..cut]).is_err(), "cut {cut}");
        }
        assert_eq!(decode::<ClientMsg>(&bytes), Ok(msg));
    }
}
