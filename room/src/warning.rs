//! What the room found wrong: one [`Warning`] variant per warning kind of
//! docs/CLIENT.md §5.3, carrying the facts a front end words.
//!
//! The room never builds a sentence. A front end matches on the variant
//! (line mode and `--json` in `client/src/display/`), and
//! [`Warning::kind`] is the stable tag scripts see. The test
//! `warning_kinds_match_client_md` keeps this enum and the document in step.

use std::path::PathBuf;

use hush_crypto::Fingerprint;

/// Someone this room knows: a fingerprint and the nickname it uses here
/// (as chosen by them: unsanitized).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// Their identity.
    pub fingerprint: Fingerprint,
    /// Their nickname in this room, or their short id if none is known.
    pub nick: String,
}

/// The signed events a warning may be about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signed {
    /// A chat message (or a nickname change).
    Message,
    /// A membership change.
    Commit,
    /// A request to be admitted.
    JoinRequest,
    /// A member's notice that it leaves.
    Leave,
    /// The creator's invite.
    Invite,
    /// The creator's kick.
    Kick,
}

/// Something wrong with what was received, or a sign that the relay
/// misbehaved. The claimed sender (unverified) travels beside it in
/// [`Shown::Warning`](crate::Shown::Warning).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Warning {
    /// An event body that does not decode or does not match its kind
    /// (`other_room`: it names another room).
    Malformed {
        /// The event names another room than the one it was delivered in.
        other_room: bool,
    },
    /// A signature that does not verify with the claimed sender's key.
    BadSignature {
        /// What was signed.
        what: Signed,
    },
    /// A message from a non-member of its epoch (`epoch` is `Some`), or a
    /// commit from a non-member of its parent epoch (`None`).
    NotMember {
        /// The epoch a message claims.
        epoch: Option<u64>,
    },
    /// Something only the creator, or only a pending removal, allows.
    NotAllowed(NotAllowed),
    /// A commit admitting `member` to an invite-only room uninvited.
    NotInvited {
        /// Who was admitted.
        member: Peer,
    },
    /// A structurally impossible commit.
    BadCommit(CommitFlaw),
    /// Something from a member that we cannot decrypt.
    Undecryptable(Undecryptable),
    /// Something already processed arrived again.
    Replay(Replay),
    /// A removed member posted with an old key long after its removal.
    StaleEpoch,
    /// A member took a name another current member uses.
    SameNick {
        /// The name.
        nick: String,
        /// The other members using it.
        others: Vec<Fingerprint>,
    },
    /// `missing` earlier messages from this sender never reached us.
    Dropped {
        /// How many.
        missing: u64,
    },
    /// The relay reordered events.
    Reordered(Reordered),
    /// The relay is showing members different histories.
    Fork(Fork),
    /// The relay did not deliver an epoch's opening commit.
    MissingCommit(MissingCommit),
    /// `skipped` events we never received are not served any more.
    Gap {
        /// How many.
        skipped: u64,
    },
    /// The relay signed a different history than it delivered.
    RelayFork(RelayFork),
    /// A checkpoint whose signature does not verify with the relay's key.
    BadCheckpoint,
    /// The relay's log of the room ends before what we processed, or it
    /// served another event at a seq we had processed: it was rewound
    /// (restored from a backup, wiped) or is lying. Nothing more of the
    /// room is processed; `--reset-room` starts over.
    Rollback {
        /// The last seq we processed.
        ours: u64,
        /// Where the relay's log of the room ends now, or the seq it
        /// served again differently.
        relay: u64,
    },
    /// The relay refused an event of ours: the room is only at `current`.
    RelayEpoch {
        /// The room's epoch as the relay says.
        current: u64,
    },
    /// Too many events wait for a gap to fill; the newest is dropped.
    ReorderOverflow,
    /// The member list no longer fits in one commit.
    RoomFull {
        /// `false`: already too large; `true`: the next newcomer would be.
        next_does_not_fit: bool,
    },
    /// The saved state could not be used (the client's, not the room's).
    StateUnreadable {
        /// Why.
        problem: String,
        /// Where the unusable file was moved, or why it could not be.
        moved_to: Result<PathBuf, String>,
    },
    /// Saving the room state failed (the client's, not the room's).
    StateNotSaved {
        /// Why.
        error: String,
    },
    /// A file offered in the room is not what its offer says: nothing of
    /// it is (or will be) saved.
    BadFile(BadFile),
    /// Someone uses the nickname of a person we verified, with another key
    /// (the client's verified contacts find this, not the room; the
    /// impostor travels as the warning's `from`).
    Impostor {
        /// The name they use here.
        nick: String,
        /// The verified person it is the name of: the key we verified and
        /// the name it was verified under.
        verified: Peer,
    },
}

/// What is wrong with an offered file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadFile {
    /// The signed offer itself does not hold together (its chunk count
    /// does not match its size, an empty or overlong name, ...).
    Offer,
    /// A chunk the relay served does not open with the offer's key (or
    /// is not the chunk asked for): tampered, swapped or truncated.
    Chunk {
        /// Which chunk.
        index: u32,
    },
    /// Every chunk opened, but the whole does not have the offer's
    /// SHA-256 (or its padding is not zero).
    Hash,
}

/// Why a membership event or commit was not allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotAllowed {
    /// An invite or kick from someone who is not the creator.
    NotCreator {
        /// Invite or kick.
        what: Signed,
    },
    /// A commit that keeps `pending`, whose removal is pending (rules 6
    /// and A5).
    KeptDeparting {
        /// The member who left or was kicked.
        pending: Peer,
    },
    /// A commit by a member whose own removal is pending (rules 3 and A3).
    CommitWhileDeparting,
    /// A commit removing `member`, who neither left nor was kicked.
    Removed {
        /// Who was removed.
        member: Peer,
    },
}

/// What makes a commit structurally impossible (rules 2, 4, 5, A1, A4 of
/// docs/PROTOCOL.md §9.2.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitFlaw {
    /// `parent_epoch + 1` is not its epoch.
    ImpossibleParent,
    /// Empty or oversized member or envelope lists.
    ImpossibleRoster,
    /// A member key that is not a valid identity key.
    InvalidKey,
    /// A fingerprint twice, or a committer missing from its own roster.
    DuplicateOrMissingMember,
    /// An add-only commit adding a current member.
    AlreadyMember,
    /// Settings that differ from the room's.
    ChangesSettings,
    /// A first commit naming someone other than its signer as creator.
    WrongCreator,
    /// More history envelopes than allowed.
    TooManyHistoryKeys,
    /// The key we unwrapped or derived is not the one the committer
    /// confirmed: it gave us another key than the others (rule 10).
    UnconfirmedKey,
}

/// What could not be decrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Undecryptable {
    /// A message from a member.
    Message,
    /// Our copy of `epoch`'s key in a commit.
    EpochKey {
        /// The epoch.
        epoch: u64,
    },
    /// A commit lists us for `epoch` but carries no key for us.
    NoKeyForUs {
        /// The epoch.
        epoch: u64,
    },
}

/// What arrived again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replay {
    /// A message older than what we still remember: again, or very late.
    OldMessage,
    /// A message identical to one already processed.
    Repeated,
    /// A membership event whose sender had already signed a later one
    /// (same run): the relay repeated it or held it back.
    RepeatedMembership,
    /// An invite its creator signed before the kick of the same member.
    InviteBeforeKick {
        /// Who was invited, then kicked.
        member: Peer,
    },
    /// A membership event sealed in an epoch the room has left behind.
    Membership {
        /// The epoch it was sealed in.
        sealed_in: u64,
        /// The room's epoch now.
        current: u64,
    },
}

/// How the relay reordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reordered {
    /// Placed before events its sender had already seen, up to `seen_seq`.
    BeforeSeen {
        /// The sender's last seen seq.
        seen_seq: u64,
    },
    /// Arrived after a later message of the same sender.
    AfterLater,
}

/// How the history forked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fork {
    /// A message whose sender saw another history up to `seen_seq`.
    Message {
        /// The sender's last seen seq.
        seen_seq: u64,
    },
    /// A commit on our current epoch that names another parent commit
    /// than the one we took for it: its committer was shown another
    /// history.
    Commit {
        /// The epoch it opens.
        epoch: u64,
    },
}

/// Which epoch's opening commit is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissingCommit {
    /// A message of `epoch`, a commit for which we never got.
    Message {
        /// The message's epoch.
        epoch: u64,
    },
    /// A commit for `epoch` whose parent is above our `current` epoch.
    Commit {
        /// The epoch it opens.
        epoch: u64,
        /// Ours.
        current: u64,
    },
}

/// The evidence of a relay that signed a history other than the one it
/// delivered (PROTOCOL.md §8.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayFork {
    /// The checkpoint's seq.
    pub seq: u64,
    /// The relay's signed time.
    pub relay_time_ms: u64,
    /// The head it signed.
    pub head: [u8; 32],
    /// Its signature.
    pub signature: Vec<u8>,
    /// Our head at that seq.
    pub ours: [u8; 32],
}

impl Warning {
    /// The stable machine-readable tag of docs/CLIENT.md §5.3.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Malformed { .. } => "malformed",
            Self::BadSignature { .. } => "bad_signature",
            Self::NotMember { .. } => "not_member",
            Self::NotAllowed(_) => "not_allowed",
            Self::NotInvited { .. } => "not_invited",
            Self::BadCommit(_) => "bad_commit",
            Self::Undecryptable(_) => "undecryptable",
            Self::Replay(_) => "replay",
            Self::StaleEpoch => "stale_epoch",
            Self::SameNick { .. } => "same_nick",
            Self::Dropped { .. } => "dropped",
            Self::Reordered(_) => "reordered",
            Self::Fork(_) => "fork",
            Self::MissingCommit(_) => "missing_commit",
            Self::Gap { .. } => "gap",
            Self::RelayFork(_) => "relay_fork",
            Self::BadCheckpoint => "bad_checkpoint",
            Self::Rollback { .. } => "rollback",
            Self::RelayEpoch { .. } => "relay_epoch",
            Self::ReorderOverflow => "reorder_overflow",
            Self::RoomFull { .. } => "room_full",
            Self::StateUnreadable { .. } => "state_unreadable",
            Self::StateNotSaved { .. } => "state_not_saved",
            Self::BadFile(_) => "bad_file",
            Self::Impostor { .. } => "impostor",
        }
    }

    /// One value of every kind, for front ends and tests that must cover
    /// them all (the list grows with the enum: the match in [`Self::kind`]
    /// does not compile without a new arm, and this list is checked
    /// against it by the crate's tests).
    #[must_use]
    pub fn examples() -> Vec<Self> {
        let peer = Peer {
            fingerprint: Fingerprint::from_bytes([7; 32]),
            nick: "mallory".into(),
        };
        vec![
            Self::Malformed { other_room: false },
            Self::BadSignature {
                what: Signed::Message,
            },
            Self::NotMember { epoch: Some(1) },
            Self::NotAllowed(NotAllowed::Removed {
                member: peer.clone(),
            }),
            Self::NotInvited { member: peer },
            Self::BadCommit(CommitFlaw::ImpossibleParent),
            Self::Undecryptable(Undecryptable::Message),
            Self::Replay(Replay::Repeated),
            Self::StaleEpoch,
            Self::SameNick {
                nick: "bob".into(),
                others: Vec::new(),
            },
            Self::Dropped { missing: 1 },
            Self::Reordered(Reordered::AfterLater),
            Self::Fork(Fork::Message { seen_seq: 1 }),
            Self::MissingCommit(MissingCommit::Message { epoch: 2 }),
            Self::Gap { skipped: 3 },
            Self::RelayFork(RelayFork {
                seq: 1,
                relay_time_ms: 0,
                head: [0; 32],
                signature: Vec::new(),
                ours: [1; 32],
            }),
            Self::BadCheckpoint,
            Self::Rollback { ours: 9, relay: 3 },
            Self::RelayEpoch { current: 1 },
            Self::ReorderOverflow,
            Self::RoomFull {
                next_does_not_fit: false,
            },
            Self::StateUnreadable {
                problem: "bad".into(),
                moved_to: Err("read-only".into()),
            },
            Self::StateNotSaved {
                error: "disk full".into(),
            },
            Self::BadFile(BadFile::Chunk { index: 3 }),
            Self::Impostor {
                nick: "bob".into(),
                verified: Peer {
                    fingerprint: Fingerprint::from_bytes([8; 32]),
                    nick: "bob".into(),
                },
            },
        ]
    }
}
