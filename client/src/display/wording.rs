//! Every sentence the room protocol's outputs become: [`Notice`]s,
//! [`Warning`]s, [`Refusal`]s and relay [`Rejection`]s, worded for a
//! person. The room crate hands over facts; only this file turns them
//! into English, so the TUI and any other front end can word them their
//! own way, or reuse these.
//!
//! The texts are raw: they quote nicknames as received. Line mode passes
//! them through [`sanitize`](super::sanitize); JSON keeps them exact.

use std::fmt::Write as _;

use hush_crypto::Fingerprint;
use hush_proto::{Rejection, RoomName};
use hush_room::{
    BadFile, CommitFlaw, Fork, MissingCommit, NotAllowed, Notice, Peer, Refusal, RelayFork,
    Reordered, Replay, Signed, Undecryptable, Warning,
};

/// `#room`, or "the room" when a notice concerns none.
fn room_name(room: Option<&RoomName>) -> String {
    room.map_or_else(|| "the room".to_owned(), |r| format!("#{r}"))
}

/// `nick (shortid)`, raw; the short id alone for someone who has not
/// named themselves yet.
fn peer(p: &Peer) -> String {
    let id = p.fingerprint.short_id();
    if p.nick == id {
        id
    } else {
        format!("{} ({id})", p.nick)
    }
}

/// What a signed event is called in a sentence, with its article.
fn a_signed(what: Signed) -> String {
    let word = signed(what);
    let article = if word.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    format!("{article} {word}")
}

/// What a signed event is called in a sentence.
fn signed(what: Signed) -> &'static str {
    match what {
        Signed::Message => "message",
        Signed::Commit => "commit",
        Signed::JoinRequest => "join request",
        Signed::Leave => "leave notice",
        Signed::Invite => "invite",
        Signed::Kick => "kick",
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// A room notice as a sentence.
#[must_use]
pub fn notice_text(room: Option<&RoomName>, notice: &Notice) -> String {
    let r = room_name(room);
    match notice {
        Notice::Text(text) => text.clone(),
        Notice::Creating => format!("{r} is new: creating it"),
        // An asker cannot tell an invite-only room from an open one (its
        // rules are sealed to the members), so both cases are said
        // (usability F13).
        Notice::AskingToJoin => format!(
            "asking the members of {r} to admit you (if it is invite-only, only once its creator invited you: by a code they made with /code, or by your fingerprint, which `hush fingerprint` prints for your key file)"
        ),
        // Sealed for an epoch we were not in: before our admission, or
        // while we were out of the room after a /leave (usability B13).
        Notice::Unreadable { count: 1 } => {
            "1 earlier message was sent while you were not a member (before you were admitted, or after you left) and cannot be read".to_owned()
        }
        Notice::Unreadable { count } => {
            format!("{count} earlier messages were sent while you were not a member (before you were admitted, or after you left) and cannot be read")
        }
        Notice::Pruned { skipped } => {
            format!("{skipped} earlier events of {r} are no longer kept by the relay")
        }
        Notice::NotAdmittedYet => {
            "not admitted yet: your message will be sent once a member lets you in".to_owned()
        }
        Notice::CatchingUp => format!(
            "catching up with {r} first: your message is kept and sent once that is done (and you are a member)"
        ),
        Notice::NotSentRewound => format!(
            "not sent: the relay's history of {r} was rewound (see the rollback warning); restart with --reset-room to start over"
        ),
        Notice::WaitingForRemoval { members } => {
            let names: Vec<String> = members.iter().map(peer).collect();
            format!(
                "waiting for {} to be removed from {r} before sending: your message goes out once a member's commit removes them",
                names.join(", ")
            )
        }
        Notice::NickSet { nick } => format!("you will be known as {nick}"),
        Notice::NickUnchanged { nick } => format!("you are already called {nick}; nothing sent"),
        Notice::LeavingAsCreator => format!(
            "you created {r}: after you leave you can still invite and kick there, and nobody else can"
        ),
        Notice::NickChanged { member, old, new } => {
            let was = peer(&Peer {
                fingerprint: *member,
                nick: old.clone(),
            });
            format!("{was} is now known as {new}")
        }
        Notice::HistoryShared { shown } => {
            format!("{r} shares its history: {shown} earlier messages shown above")
        }
        Notice::NoLongerMember => format!("you are no longer a member of {r}"),
        Notice::JoinRequest {
            member,
            needs_invite: true,
        } => format!(
            "{} asks to join {r}, which is invite-only for them (an invite-only room, or they were kicked): /invite {} lets them in",
            peer(member),
            member.fingerprint
        ),
        Notice::JoinRequest { member, .. } => format!("{} asks to join {r}", peer(member)),
        Notice::Invited { by, member } => format!("{} invited {} to {r}", peer(by), peer(member)),
        Notice::Kicked { by, member } => format!("{} removed {} from {r}", peer(by), peer(member)),
    }
}

/// A warning as a sentence. `seq` is where it was found, `from` the
/// claimed sender.
#[must_use]
pub fn warning_text(
    room: Option<&RoomName>,
    seq: Option<u64>,
    from: Option<&Peer>,
    warning: &Warning,
) -> String {
    let r = room_name(room);
    let who = from.map_or_else(|| "someone".to_owned(), peer);
    let at = seq.map_or_else(|| "?".to_owned(), |s| s.to_string());
    match warning {
        Warning::Malformed { other_room: true } => format!(
            "the relay delivered an event for another room, claiming to be from {who}; ignored"
        ),
        Warning::Malformed { other_room: false } => {
            format!("a malformed event claiming to be from {who} was ignored")
        }
        Warning::BadSignature { what } => format!(
            "{} claiming to be from {who} failed signature verification and was not shown",
            a_signed(*what)
        ),
        Warning::NotMember { epoch: Some(epoch) } => format!(
            "a message claiming to be from {who} who is not a member of epoch {epoch} was not shown"
        ),
        Warning::NotMember { epoch: None } => {
            format!("{who} tried to change {r}'s members without being one; ignored")
        }
        Warning::NotAllowed(NotAllowed::NotCreator { what }) => format!(
            "{who} sent {} for {r}, but only its creator may; ignored",
            a_signed(*what)
        ),
        Warning::NotAllowed(NotAllowed::KeptDeparting { pending }) => format!(
            "{who} changed the members of {r} without removing {}, who left or was kicked; ignored",
            peer(pending)
        ),
        Warning::NotAllowed(NotAllowed::CommitWhileDeparting) => {
            format!("{who} changed the members of {r} while leaving or being kicked; ignored")
        }
        Warning::NotAllowed(NotAllowed::Removed { member }) => format!(
            "{who} removed {} from {r}, who neither left nor was kicked by its creator; ignored",
            peer(member)
        ),
        Warning::NotInvited { member } => format!(
            "{who} admitted {} to invite-only {r} without an invite from its creator; ignored",
            peer(member)
        ),
        Warning::BadCommit(flaw) => format!("a commit from {who} {}; ignored", commit_flaw(*flaw)),
        Warning::Undecryptable(Undecryptable::Message) => {
            format!("a message claiming to be from {who} could not be decrypted and was not shown")
        }
        Warning::Undecryptable(Undecryptable::EpochKey { epoch }) => {
            format!("the key for epoch {epoch} of {r} from {who} could not be opened")
        }
        Warning::Undecryptable(Undecryptable::NoKeyForUs { epoch }) => {
            format!("{who} admitted you to epoch {epoch} without giving you its key")
        }
        Warning::Replay(Replay::OldMessage) => {
            format!("an old message from {who} arrived again, or very late; not shown")
        }
        Warning::Replay(Replay::Repeated) => format!("a repeated message from {who} was dropped"),
        Warning::Replay(Replay::RepeatedMembership) => format!(
            "a membership event from {who} arrived again, or after a later one of theirs: the relay repeated or held it back; ignored"
        ),
        Warning::Replay(Replay::InviteBeforeKick { member }) => format!(
            "an invite of {} from {who}, signed before {} was kicked, arrived again; ignored",
            peer(member),
            peer(member)
        ),
        Warning::Replay(Replay::Membership { sealed_in, current }) => format!(
            "a membership event from {who} sealed in epoch {sealed_in} arrived when {r} is at epoch {current}: replayed or long delayed; ignored"
        ),
        Warning::StaleEpoch => format!(
            "a message from {who}, who is no longer a member of {r}, was sent under an old key long after their removal; not shown"
        ),
        Warning::SameNick { nick, others } => {
            let ids: Vec<String> = others.iter().map(Fingerprint::short_id).collect();
            format!(
                "{nick} is, or looks like, the name of {}: check fingerprints with /whois {nick}",
                ids.join(", ")
            )
        }
        Warning::Dropped { missing: 1 } => {
            format!("1 message from {who} before this one never reached you: the relay withheld it")
        }
        Warning::Dropped { missing } => format!(
            "{missing} messages from {who} before this one never reached you: the relay withheld them"
        ),
        Warning::Reordered(Reordered::BeforeSeen { seen_seq }) => format!(
            "the relay placed an event from {who} at seq {at} although {who} had already seen seq {seen_seq}: it reordered or removed events of {r}"
        ),
        Warning::Reordered(Reordered::AfterLater) => format!(
            "a message from {who} arrived after one {who} sent later: the relay reordered {r}"
        ),
        Warning::Fork(Fork::Message { seen_seq }) => format!(
            "{who} saw a different history of {r} up to seq {seen_seq} than you did: the relay is showing members different histories"
        ),
        Warning::Fork(Fork::Commit { epoch }) => format!(
            "a commit from {who} opening epoch {epoch} of {r} builds on another commit than the one you hold: the relay is showing members different histories; ignored"
        ),
        Warning::MissingCommit(MissingCommit::Commit { epoch, current }) => format!(
            "a commit from {who} opens epoch {epoch} while {r} is at epoch {current} for you: the relay withheld the commits in between from you; ignored"
        ),
        Warning::MissingCommit(MissingCommit::Message { epoch }) => format!(
            "a message claiming to be from {who} is in epoch {epoch} of {r}, but the relay has not delivered you that epoch's commit; not shown"
        ),
        Warning::Gap { skipped } => format!(
            "{skipped} events of {r} that you never received are not served by the relay (pruned while you were away, or withheld); history checks are off for this room from now on"
        ),
        Warning::RelayFork(RelayFork {
            seq,
            relay_time_ms,
            head,
            signature,
            ours,
        }) => format!(
            "the relay signed a different history of {r} at seq {seq} than it showed you: it is showing members different histories. Evidence: relay_time_ms={relay_time_ms} head={} signature={} (yours: {})",
            hex(head),
            hex(signature),
            hex(ours)
        ),
        Warning::Rollback { ours, relay } => format!(
            "the relay's history of {r} no longer matches what you saw (you had processed up to seq {ours}; it now serves seq {relay} differently or ends there): it was rewound, restored from a backup or wiped, or it is lying. Nothing more of {r} is shown or sent. To start over from what the relay has now, restart the client with --reset-room"
        ),
        Warning::BadCheckpoint => {
            format!("a checkpoint of {r} failed the relay's signature; ignored")
        }
        Warning::RelayEpoch { current } => {
            format!("the relay says {r} is at epoch {current}; waiting to catch up")
        }
        Warning::ReorderOverflow => {
            "too many events arrived out of order; dropping the newest".to_owned()
        }
        Warning::RoomFull {
            next_does_not_fit: false,
        } => format!("{r} has too many members for one commit; membership changes are blocked"),
        Warning::RoomFull {
            next_does_not_fit: true,
        } => format!("{r} cannot take more members: the next one does not fit in one commit"),
        Warning::StateUnreadable { problem, moved_to } => {
            let aside = match moved_to {
                Ok(path) => format!("moved it to {}", path.display()),
                Err(e) => e.clone(),
            };
            format!(
                "could not use the saved state ({problem}); {aside}; reading the room's history from the relay again"
            )
        }
        Warning::StateNotSaved { error } => format!("could not save the room state: {error}"),
        Warning::Impostor { nick, verified } => format!(
            "{who} uses the name {nick}, but the {} you verified has the key {}, and this is {}: it may be someone posing as them. Do not trust it; ask {} through another channel, and compare safety numbers with /verify {}",
            verified.nick,
            verified.fingerprint,
            from.map_or_else(|| "another key".to_owned(), |p| p.fingerprint.to_string()),
            verified.nick,
            from.map_or_else(|| nick.clone(), |p| p.fingerprint.short_id()),
        ),
        Warning::BadFile(BadFile::Offer) => format!(
            "a file offer from {who} in {r} (seq {at}) does not hold together (its size, chunk count or name): it is not offered"
        ),
        Warning::BadFile(BadFile::Chunk { index }) => format!(
            "chunk {index} of a file from {who} in {r} did not open with its key: the relay's copy was changed or swapped; nothing was saved"
        ),
        Warning::BadFile(BadFile::Hash) => format!(
            "a file from {who} in {r} is not what its offer says (its SHA-256 differs): nothing was saved"
        ),
    }
}

/// A byte count as people read it: `512 bytes`, `3.4 KiB`, `1.2 MiB`.
#[must_use]
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return if bytes == 1 {
            "1 byte".to_owned()
        } else {
            format!("{bytes} bytes")
        };
    }
    // Tenths of the unit, in integers: no float rounding surprises.
    let mut unit = 0;
    let mut scaled = bytes;
    while scaled >= 1024 * 1024 && unit + 1 < UNITS.len() {
        scaled /= 1024;
        unit += 1;
    }
    let tenths = scaled * 10 / 1024;
    format!("{}.{} {}", tenths / 10, tenths % 10, UNITS[unit])
}

/// What is wrong with a structurally impossible commit.
fn commit_flaw(flaw: CommitFlaw) -> &'static str {
    match flaw {
        CommitFlaw::ImpossibleParent => "names an impossible parent epoch",
        CommitFlaw::ImpossibleRoster => "has an impossible roster",
        CommitFlaw::InvalidKey => "lists an invalid key",
        CommitFlaw::DuplicateOrMissingMember => "has a duplicate or missing member",
        CommitFlaw::AlreadyMember => "adds someone who is already a member",
        CommitFlaw::ChangesSettings => "changes the room's settings",
        CommitFlaw::WrongCreator => "names someone else as the room's creator",
        CommitFlaw::TooManyHistoryKeys => "carries too many history keys",
        CommitFlaw::UnconfirmedKey => {
            "gave you a key other than the one it confirmed (the other members may hold another)"
        }
    }
}

/// Why an `/invite` or `/kick` was not sent, with what to do instead.
#[must_use]
pub fn refusal_text(room: &RoomName, refusal: &Refusal) -> String {
    match refusal {
        Refusal::NoMembersYet => format!("#{room} has no members yet"),
        Refusal::NotCreator { creator, what } => format!(
            "only the creator of #{room} ({}) can {}",
            peer(creator),
            signed(*what)
        ),
        Refusal::RoomIsOpen => format!("#{room} is open: anyone who asks is admitted"),
        Refusal::Unknown { query } => {
            format!("nobody called {query} is known in #{room}; give the full fingerprint")
        }
        Refusal::Ambiguous { query } => {
            format!("{query} names several people; give the full fingerprint")
        }
        Refusal::KickSelf => "you cannot kick yourself: use /leave".to_owned(),
        Refusal::ConfirmFingerprint { member } => format!(
            "{} is {}: names are chosen by whoever sends them, so give the fingerprint (or the short id {}) to confirm it is them",
            member.nick,
            member.fingerprint,
            member.fingerprint.short_id()
        ),
        Refusal::NotAMember { member } => format!("{} is not a member of #{room}", peer(member)),
    }
}

/// What a relay's refusal means, for a person.
#[must_use]
pub fn rejection_text(r: Rejection) -> String {
    match r {
        Rejection::NotJoined => "not joined to that room".into(),
        Rejection::SpoofedSender => "sender mismatch (this is a bug in the client)".into(),
        Rejection::TooManyCommits { per_minute } => format!(
            "this relay sequences at most {per_minute} membership changes per member and minute; trying again in a minute"
        ),
        Rejection::FutureEpoch { current } => format!("the room is only at epoch {current}"),
        Rejection::TooManyRooms { limit } => {
            format!("this relay allows {limit} rooms per connection")
        }
        Rejection::StorageFailed => "the relay could not store it; try again later".into(),
        Rejection::TooLarge { max_body } => {
            format!("too large: this relay accepts at most {max_body} bytes")
        }
        Rejection::TooManyNewRooms { per_hour } => format!(
            "this relay lets each person create at most {per_hour} new rooms an hour; join an existing room, or try again within the hour"
        ),
    }
}

/// The error line for a line typed before admission that was not kept.
pub const QUEUE_FULL: &str =
    "too many messages are already waiting to be sent; this one was not sent";

/// Why the relay closed the link, as the "connection to the relay lost
/// (...)" notice says it (usability F10: no debug names).
#[must_use]
pub fn closing_text(reason: hush_proto::CloseReason) -> &'static str {
    use hush_proto::CloseReason;
    match reason {
        CloseReason::Shutdown => "the relay is shutting down",
        CloseReason::Idle => "the relay heard nothing from this client for too long",
        CloseReason::TooSlow => "this client fell behind what the relay sends",
        CloseReason::ProtocolViolation => "the relay says this client sent something invalid",
    }
}
