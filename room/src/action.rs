//! What a [`Room`](crate::Room) asks its caller to do: show something
//! ([`Shown`], data, never wording), publish an event to the relay, or
//! send the relay another link message of the room protocol.

use hush_crypto::Fingerprint;
use hush_proto::{ClientMsg, RoomEvent, RoomName};

/// Something the caller must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Show this to the user.
    Show(Shown),
    /// Send this event to the relay.
    Publish {
        /// Correlates a rejection.
        request: u64,
        /// The event.
        event: RoomEvent,
    },
    /// Send this link message to the relay, in order with the events to
    /// publish: joining, backfill requests, checkpoint requests, leaving
    /// (see `driver.rs`). A [`Publish`](Self::Publish) goes out as a
    /// [`ClientMsg::Publish`] carrying its request and event.
    Send(ClientMsg),
}

/// Something to show the user. Produced by the room; worded by the front end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shown {
    /// We are in the room (connected and joined, or re-joined after a reconnect).
    Joined {
        /// The room.
        room: RoomName,
        /// Our own fingerprint.
        me: Fingerprint,
        /// Our nickname.
        nick: String,
        /// The current epoch; 0 while we wait to be given the room key.
        epoch: u64,
    },
    /// A verified, decrypted message.
    Message {
        /// The room.
        room: RoomName,
        /// The relay's sequence number.
        seq: u64,
        /// The sender's fingerprint (verified signature).
        from: Fingerprint,
        /// The sender's nickname, as they chose it (unsanitized).
        nick: String,
        /// The message text, as sent (unsanitized).
        text: String,
        /// When the sender says it was sent (sender's clock), ms since the Unix epoch.
        sent_at_ms: u64,
        /// When the relay received it (the relay's ordering clock), ms since the Unix epoch.
        received_at_ms: u64,
        /// Other members currently using the same nickname (empty normally).
        same_nick: Vec<Fingerprint>,
    },
    /// Someone joined the room.
    MemberJoined {
        /// The room.
        room: RoomName,
        /// The relay's sequence number.
        seq: u64,
        /// Who joined.
        member: Fingerprint,
        /// Their nickname (unsanitized).
        nick: String,
    },
    /// Someone left the room.
    MemberLeft {
        /// The room.
        room: RoomName,
        /// The relay's sequence number.
        seq: u64,
        /// Who left.
        member: Fingerprint,
        /// Their nickname (unsanitized).
        nick: String,
    },
    /// A new epoch (room key) took effect.
    Epoch {
        /// The room.
        room: RoomName,
        /// The relay's sequence number.
        seq: u64,
        /// The new epoch number.
        epoch: u64,
        /// The members holding the new key, with their nicknames (unsanitized).
        members: Vec<(Fingerprint, String)>,
    },
    /// Informational line (connection status, nick changes, /members output, /help text...).
    ///
    /// Rendered as a single line and sanitized like everything else: emit
    /// multi-line text (such as the `/help` text) as one notice per line.
    Notice {
        /// The room it concerns, if any.
        room: Option<RoomName>,
        /// The text.
        text: String,
    },
    /// Something is wrong with what was received; `kind` is a stable machine-readable tag
    /// such as "bad_signature", "undecryptable", "replay", "relay_key_changed".
    Warning {
        /// The room it concerns, if any.
        room: Option<RoomName>,
        /// The relay's sequence number of the offending frame, if any.
        seq: Option<u64>,
        /// The claimed sender, if any.
        from: Option<Fingerprint>,
        /// Stable machine-readable tag.
        kind: String,
        /// Human-readable explanation.
        text: String,
    },
    /// A local error (bad command, ...).
    Error {
        /// Human-readable explanation, including what to do next.
        text: String,
    },
}
