//! What a [`Room`](crate::Room) asks its caller to do: show something
//! ([`Shown`], data, never wording), publish an event to the relay, or
//! send the relay another link message of the room protocol.

use hush_crypto::Fingerprint;
use hush_proto::{ClientMsg, Rejection, RoomEvent, RoomName};

use crate::warning::{Peer, Signed, Warning};

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
        /// An action (`/me`): shown as `* nick text`.
        action: bool,
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
    /// Something the room reports that is not wrong: see [`Notice`].
    Notice {
        /// The room it concerns, if any.
        room: Option<RoomName>,
        /// What happened.
        notice: Notice,
    },
    /// Something is wrong with what was received, or the relay misbehaved.
    Warning {
        /// The room it concerns, if any.
        room: Option<RoomName>,
        /// The relay's sequence number of the offending frame, if any.
        seq: Option<u64>,
        /// The claimed sender (unverified), if any.
        from: Option<Peer>,
        /// What is wrong.
        warning: Warning,
    },
    /// The relay refused one of our requests (other than the refusals the
    /// room handles itself: a lost commit race, a storage retry).
    Refused {
        /// The room.
        room: RoomName,
        /// The relay's reason.
        reason: Rejection,
    },
    /// A verified file offer: a member uploaded a sealed file and sent
    /// its key and hash in a signed message. Nothing is fetched until the
    /// user asks.
    FileOffered {
        /// The room.
        room: RoomName,
        /// The relay's sequence number of the offer.
        seq: u64,
        /// The sender (verified signature).
        from: Fingerprint,
        /// The sender's nickname (unsanitized).
        nick: String,
        /// What is offered, key included (never to be printed).
        offer: hush_proto::e2e::FileOffer,
        /// When the relay received the offer.
        received_at_ms: u64,
    },
    /// A line typed before admission was not kept: too many wait already.
    QueueFull {
        /// The room.
        room: RoomName,
    },
    /// A local error (bad command, ...), worded by the front end that
    /// found it.
    Error {
        /// Human-readable explanation, including what to do next.
        text: String,
    },
}

/// What the room tells the user that is not a warning. Worded by the
/// front end; `Text` is a line the front end made itself (connection
/// status, command output).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// A line already worded by the front end (never produced by the room).
    Text(String),
    /// The room has no events yet: we open it.
    Creating,
    /// We asked the members to admit us.
    AskingToJoin,
    /// `count` earlier messages predate our admission and cannot be read.
    Unreadable {
        /// How many.
        count: u64,
    },
    /// `skipped` earlier events are no longer kept by the relay (before
    /// we followed the room: not a warning).
    Pruned {
        /// How many.
        skipped: u64,
    },
    /// Our lines wait until a member admits us.
    NotAdmittedYet,
    /// Our lines wait until the room has read what the relay holds (only
    /// then is it known whether we are a member, or must create it).
    CatchingUp,
    /// Not sent: the relay's history of the room was rewound (see the
    /// `rollback` warning).
    NotSentRewound,
    /// Our lines wait until a commit removes these members, who left or
    /// were kicked (they still hold the current key).
    WaitingForRemoval {
        /// Who is being removed.
        members: Vec<Peer>,
    },
    /// We are leaving a room we created: we keep its invite and kick
    /// power (audit I4), and nobody else has it.
    LeavingAsCreator,
    /// `/nick` with the name we already have: nothing is sent.
    NickUnchanged {
        /// The name.
        nick: String,
    },
    /// Our nickname is set (we are not a member yet: nobody is told).
    NickSet {
        /// The new nickname.
        nick: String,
    },
    /// A member changed its nickname.
    NickChanged {
        /// Who.
        member: Fingerprint,
        /// The old nickname.
        old: String,
        /// The new one.
        new: String,
    },
    /// A shared-history room let us read `shown` earlier messages.
    HistoryShared {
        /// How many were shown.
        shown: u64,
    },
    /// We lost membership without leaving.
    NoLongerMember,
    /// Someone asks to be admitted.
    JoinRequest {
        /// Who.
        member: Peer,
        /// The room is invite-only and they are not invited (yet).
        needs_invite: bool,
    },
    /// The creator invited someone.
    Invited {
        /// The creator.
        by: Peer,
        /// Who.
        member: Peer,
    },
    /// The creator removed someone.
    Kicked {
        /// The creator.
        by: Peer,
        /// Who.
        member: Peer,
    },
}

/// Why an `/invite` or `/kick` was not sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The room has no members yet.
    NoMembersYet,
    /// Only `creator` may `what` (invite or kick).
    NotCreator {
        /// The room's creator.
        creator: Peer,
        /// Invite or kick.
        what: Signed,
    },
    /// An open room admits anyone who asks.
    RoomIsOpen,
    /// Nobody by that name or id is known here.
    Unknown {
        /// What was typed.
        query: String,
    },
    /// The name matches several people.
    Ambiguous {
        /// What was typed.
        query: String,
    },
    /// A member leaves with /leave, not /kick.
    KickSelf,
    /// Named by nickname (which its owner chose): give the fingerprint or
    /// short id to confirm it is them.
    ConfirmFingerprint {
        /// Who the name resolved to.
        member: Peer,
    },
    /// `member` is not in the room.
    NotAMember {
        /// Who.
        member: Peer,
    },
}
