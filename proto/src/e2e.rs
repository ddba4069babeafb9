//! End-to-end room event bodies: what members say to each other inside
//! [`crate::RoomEvent::body`], opaque to the relay.
//!
//! ```text
//!  RoomEvent { room, sender, kind, epoch, body }          ← relay-visible envelope
//!                                         └─ SignedBody { payload, signature }
//!                                               └─ Payload::JoinRequest | Commit | Add | Message | Leave
//!                                                                           └─ SealedMessage { session, counter, sent_at, seen_*, ciphertext }
//!                                                                                                   └─ AES-256-GCM(Content)
//! ```
//!
//! Every body is signed (RSA-PSS, context [`EVENT_SIGNATURE_CONTEXT`]) over
//! [`signing_digest`], which binds the relay-visible envelope too (room,
//! sender, kind, epoch): the relay cannot move an event to another room,
//! epoch or kind, or attribute it to someone else. Types here carry no
//! keys; the client owns those.

use hush_crypto::{Fingerprint, Transcript};
use serde::{Deserialize, Serialize};

use crate::msg::{EventKind, fp_bytes};
use crate::names::RoomName;

/// Signature context of every room event body.
pub const EVENT_SIGNATURE_CONTEXT: &str = "hush/v1/room-event";
/// OAEP label of an epoch key wrapped for a member.
pub const EPOCH_KEY_LABEL: &str = "hush/v1/epoch-key";
/// HKDF info deriving a sender's message key from the epoch key.
pub const MESSAGE_KEY_INFO: &[u8] = b"hush/v1/message-key";
/// HKDF info deriving the key of an epoch opened by an [`AddCommit`] from
/// its parent's key.
pub const ADD_EPOCH_KEY_INFO: &[u8] = b"hush/v1/add-epoch-key";
/// Most members a room may have. Bounds the work and memory one full
/// commit can cost every member: parsing 10,000 RSA-3072 roster keys
/// takes 0.4–0.9 s (0.04–0.09 ms each, measured by `hush bench admit`;
/// keys a member already holds are not parsed again), and such a commit
/// is about 8.5 MB (an entry is
/// ~420 bytes of key plus a 384-byte envelope). The relay's frame limit
/// binds first in practice: the default 64 KiB frame holds about 75
/// members, and a room may only grow while a full commit of its whole
/// roster still fits (removals need one).
pub const MAX_ROSTER: usize = 10_000;
/// Longest nickname, in bytes.
pub const MAX_NICK_BYTES: usize = 64;

/// The signed body of every room event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedBody {
    /// A postcard [`Payload`].
    #[serde(with = "crate::msg::bytes")]
    pub payload: Vec<u8>,
    /// RSA-PSS over [`signing_digest`] by the sender's identity key.
    #[serde(with = "crate::msg::bytes")]
    pub signature: Vec<u8>,
}

/// What a body says; its variant must match the envelope's kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Payload {
    /// A newcomer asks to be admitted.
    JoinRequest(JoinRequest),
    /// A new epoch: roster and key envelopes.
    Commit(Commit),
    /// A sealed message.
    Message(SealedMessage),
    /// The sender leaves the room; members rekey without it.
    Leave(Position),
    /// The creator of an invite-only room lets someone in.
    Invite(MemberRef),
    /// The creator removes a member; members rekey without it.
    Kick(MemberRef),
    /// A new epoch that only admits members: its key is derived from the
    /// parent epoch's and wrapped to the newcomers alone.
    Add(AddCommit),
}

/// Names one identity, for [`Payload::Invite`] and [`Payload::Kick`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRef {
    /// The identity's fingerprint.
    #[serde(with = "fp_bytes")]
    pub member: Fingerprint,
    /// Where the creator stood when it signed this.
    pub at: Position,
}

/// Where the sender of a membership event (join request, leave, invite,
/// kick) stood when it signed it, bound by the signature as a message's
/// header is: members refuse a copy the relay repeats or places before
/// what its sender had seen (docs/PROTOCOL.md §9.2.6, membership events).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// Random per client run, as [`SealedMessage::session`].
    pub session: [u8; 16],
    /// The sender's membership-event counter in this session, from 0.
    pub counter: u64,
    /// The room sequence number the sender had seen last.
    pub seen_seq: u64,
    /// The sender's hash-chain head at `seen_seq`.
    pub seen_head: [u8; 32],
}

/// Who may read what came before their admission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HistoryVisibility {
    /// A newcomer reads only from its admission on (the commit that admits
    /// it opens a new epoch). The default.
    Joined,
    /// The admitting member also wraps the earlier epoch keys it holds for
    /// the newcomer, who then reads the retained history.
    Shared,
}

/// A room's rules, fixed by its creator in the first commit and carried,
/// unchanged, by every later one (so they survive log retention). A commit
/// that changes them is void.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomSettings {
    /// Who created the room: the only member who may invite and kick.
    #[serde(with = "fp_bytes")]
    pub creator: Fingerprint,
    /// Whether only identities the creator invited may be admitted.
    pub invite_only: bool,
    /// What newcomers may read.
    pub history: HistoryVisibility,
}

/// An earlier epoch's key wrapped to a newcomer (shared-history rooms).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEnvelope {
    /// The newcomer.
    #[serde(with = "fp_bytes")]
    pub member: Fingerprint,
    /// The earlier epoch.
    pub epoch: u64,
    /// That epoch's key, RSA-OAEP-wrapped with [`HISTORY_KEY_LABEL`].
    #[serde(with = "crate::msg::bytes")]
    pub wrapped: Vec<u8>,
}

/// OAEP label of an earlier epoch key wrapped for a newcomer.
pub const HISTORY_KEY_LABEL: &str = "hush/v1/history-key";
/// Most history envelopes one commit may carry.
pub const MAX_HISTORY_ENVELOPES: usize = 1000;

impl Payload {
    /// The envelope kind this payload must travel under.
    #[must_use]
    pub fn kind(&self) -> EventKind {
        match self {
            Self::JoinRequest(_) => EventKind::JoinRequest,
            Self::Commit(_) | Self::Add(_) => EventKind::Commit,
            Self::Message(_) => EventKind::Message,
            Self::Leave(_) => EventKind::Leave,
            Self::Invite(_) | Self::Kick(_) => EventKind::Control,
        }
    }
}

/// A newcomer's request, signed with the key it carries (self-certifying:
/// the fingerprint of `public_key` must be the envelope's sender).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinRequest {
    /// The newcomer's identity key, SPKI DER.
    #[serde(with = "crate::msg::bytes")]
    pub public_key: Vec<u8>,
    /// Whether the requester holds the room's current roster (it followed
    /// the room's commits): then an [`AddCommit`] can admit it. A newcomer
    /// whose view of the log starts after the relay pruned the commits
    /// that built the roster says `false`, and is admitted by a full
    /// [`Commit`], which carries the whole roster.
    pub knows_roster: bool,
    /// Where the newcomer stood when it asked.
    pub at: Position,
}

/// One member of an epoch's roster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Identity key, SPKI DER (its SHA-256 is the member's fingerprint).
    #[serde(with = "crate::msg::bytes")]
    pub public_key: Vec<u8>,
    /// Display name as last known to the committer, sealed under the
    /// commit's names key ([`names_key`], [`seal_names`]): the relay and
    /// outsiders see no names (audit M5).
    #[serde(with = "crate::msg::bytes")]
    pub nick: Vec<u8>,
}

/// The epoch key wrapped (RSA-OAEP, label [`EPOCH_KEY_LABEL`]) to one member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyEnvelope {
    /// Whose key it is wrapped to.
    #[serde(with = "fp_bytes")]
    pub member: Fingerprint,
    /// The wrapped 32-byte epoch key.
    #[serde(with = "crate::msg::bytes")]
    pub wrapped: Vec<u8>,
}

/// Opens epoch `parent_epoch + 1`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Commit {
    /// The epoch this one follows (0 for the room's first commit).
    pub parent_epoch: u64,
    /// The [`commit_id`] of the commit that opened the parent epoch (zeros
    /// for the room's first commit): commits chain back to the room's
    /// creation, and one built on another history than ours shows it.
    pub parent_commit: [u8; 32],
    /// The committer's identity key, SPKI DER: lets anyone verify a
    /// creating commit, whose committer is in no earlier roster.
    #[serde(with = "crate::msg::bytes")]
    pub committer_key: Vec<u8>,
    /// Everyone who holds the new key.
    pub members: Vec<Member>,
    /// One envelope per member.
    pub envelopes: Vec<KeyEnvelope>,
    /// The room's rules (identical in every commit of a room).
    pub settings: RoomSettings,
    /// Earlier epoch keys for the members this commit admits, in rooms
    /// whose history is shared.
    pub history: Vec<HistoryEnvelope>,
    /// Fresh per commit: salts the key the roster's names are sealed
    /// under ([`names_key`]).
    pub names_salt: [u8; 16],
    /// Key confirmation: proves the committer gave every member the key
    /// it used ([`confirm_salt`], [`EPOCH_CONFIRM_INFO`]).
    pub confirm: [u8; 32],
}

/// Opens epoch `parent_epoch + 1` with the parent's members plus `added`.
///
/// Existing members derive the new key themselves:
/// `HKDF(parent key, salt = add_epoch_salt(..), info = ADD_EPOCH_KEY_INFO)`;
/// only the newcomers get it wrapped. So admitting someone costs one OAEP
/// wrap and a small commit, whatever the room's size, and no existing
/// member does any RSA work. HKDF is one-way: the newcomers cannot go
/// back to the parent key (history stays hidden in `joined` rooms). It
/// removes no one, so it is invalid while a removal is pending, and it does
/// not replace the key's lineage: periodic rekeys are full commits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddCommit {
    /// The epoch this one follows (never 0: a room is created by a full
    /// commit).
    pub parent_epoch: u64,
    /// As [`Commit::parent_commit`].
    pub parent_commit: [u8; 32],
    /// The newcomers, none of them already a member.
    pub added: Vec<Member>,
    /// The new epoch key wrapped to each newcomer.
    pub envelopes: Vec<KeyEnvelope>,
    /// Earlier epoch keys for the newcomers, in rooms whose history is
    /// shared.
    pub history: Vec<HistoryEnvelope>,
    /// The current names of the parent roster's members, in fingerprint
    /// order, sealed as the newcomers' (after them): a newcomer sees every
    /// member's current name.
    pub names: Vec<Vec<u8>>,
    /// As [`Commit::names_salt`].
    pub names_salt: [u8; 16],
    /// Key confirmation, as [`Commit::confirm`]: members who derive the
    /// key check it too.
    pub confirm: [u8; 32],
}

/// HKDF info of a commit's names key.
pub const ROSTER_NAMES_INFO: &[u8] = b"hush/v2/roster-names";

/// The key a commit seals its roster's names under: `HKDF(new epoch key,
/// salt = (room, epoch, names_salt), info = ROSTER_NAMES_INFO)`. Fresh
/// per commit (its salt is), so the names' nonces (0, 1, 2, ... in roster
/// order) never repeat under one key.
#[must_use]
pub fn names_key(
    epoch_key: &hush_crypto::Secret32,
    room: &RoomName,
    epoch: u64,
    names_salt: &[u8; 16],
) -> hush_crypto::SealingKey {
    let mut t = Transcript::new("hush/v2/roster-names-salt");
    t.absorb(room.as_str().as_bytes());
    t.absorb(&epoch.to_be_bytes());
    t.absorb(names_salt);
    hush_crypto::SealingKey::new(&hush_crypto::derive_secret(
        epoch_key,
        &t.finish(),
        ROSTER_NAMES_INFO,
    ))
}

/// The associated data of one sealed name: the room, the epoch, whose.
fn name_aad(room: &RoomName, epoch: u64, member: &Fingerprint) -> [u8; 32] {
    let mut t = Transcript::new("hush/v2/roster-name");
    t.absorb(room.as_str().as_bytes());
    t.absorb(&epoch.to_be_bytes());
    t.absorb(member.as_bytes());
    t.finish()
}

/// Seals `names` (member, name), in order, under `key` with nonces 0, 1,
/// 2, ... (the committer's side).
#[must_use]
pub fn seal_names(
    key: &hush_crypto::SealingKey,
    room: &RoomName,
    epoch: u64,
    names: &[(Fingerprint, &str)],
) -> Vec<Vec<u8>> {
    let mut nonces = hush_crypto::NonceCounter::new();
    names
        .iter()
        .map(|(fp, name)| {
            nonces
                .next_nonce()
                .and_then(|n| key.seal(n, &name_aad(room, epoch, fp), name.as_bytes()))
                .unwrap_or_default()
        })
        .collect()
}

/// Opens the `index`-th sealed name of a commit, `member`'s; `None` if it
/// does not open (the receiver then shows the short id).
#[must_use]
pub fn open_name(
    key: &hush_crypto::SealingKey,
    room: &RoomName,
    epoch: u64,
    index: u64,
    member: &Fingerprint,
    sealed: &[u8],
) -> Option<String> {
    let plain = key
        .open(index, &name_aad(room, epoch, member), sealed)
        .ok()?;
    String::from_utf8(plain).ok()
}

/// The id of a sequenced commit, which the next commit names as its
/// parent: its room, sender, epoch and (canonical) signed body.
#[must_use]
pub fn commit_id(commit: &crate::RoomEvent) -> [u8; 32] {
    let mut t = Transcript::new("hush/v2/commit-id");
    t.absorb(commit.room.as_str().as_bytes());
    t.absorb(commit.sender.as_bytes());
    t.absorb(&commit.epoch.to_be_bytes());
    t.absorb(&commit.body);
    t.finish()
}

/// HKDF info of a commit's key confirmation: `confirm = HKDF(epoch key,
/// salt = confirm_salt(..), info)`. Whoever holds the epoch key checks it,
/// so a committer that hands some members another key is caught by them,
/// and named (audit M4; MLS's confirmation tag).
pub const EPOCH_CONFIRM_INFO: &[u8] = b"hush/v2/epoch-confirm";

/// The key confirmation `key` gives a commit (`Payload::Commit` or
/// `Payload::Add`) opening `epoch` of `room` by `committer`: what its
/// `confirm` must hold. Other payloads confirm nothing (zeros).
#[must_use]
pub fn commit_confirmation(
    key: &hush_crypto::Secret32,
    room: &RoomName,
    epoch: u64,
    committer: &Fingerprint,
    commit: &Payload,
) -> [u8; 32] {
    let mut unconfirmed = commit.clone();
    match &mut unconfirmed {
        Payload::Commit(c) => c.confirm = [0; 32],
        Payload::Add(a) => a.confirm = [0; 32],
        _ => return [0; 32],
    }
    let salt = confirm_salt(room, epoch, committer, &crate::msg::encode(&unconfirmed));
    *hush_crypto::derive_secret(key, &salt, EPOCH_CONFIRM_INFO).expose_secret()
}

/// The salt of a commit's key confirmation: the room, the epoch it opens,
/// the committer, and the commit's payload encoded with `confirm` zeroed.
#[must_use]
pub fn confirm_salt(
    room: &RoomName,
    epoch: u64,
    committer: &Fingerprint,
    unconfirmed_payload: &[u8],
) -> [u8; 32] {
    let mut t = Transcript::new("hush/v2/epoch-confirm-salt");
    t.absorb(room.as_str().as_bytes());
    t.absorb(&epoch.to_be_bytes());
    t.absorb(committer.as_bytes());
    t.absorb(unconfirmed_payload);
    t.finish()
}

/// The HKDF salt of an add-only epoch's key: the room, the new epoch, the
/// committer and who it adds (in the commit's order). Two epochs never
/// share a salt, so a void epoch's inherited key never derives twice to
/// the same value.
#[must_use]
pub fn add_epoch_salt(
    room: &RoomName,
    epoch: u64,
    committer: &Fingerprint,
    added: &[Fingerprint],
) -> [u8; 32] {
    let mut t = Transcript::new("hush/v1/add-epoch-salt");
    t.absorb(room.as_str().as_bytes());
    t.absorb(&epoch.to_be_bytes());
    t.absorb(committer.as_bytes());
    for fp in added {
        t.absorb(fp.as_bytes());
    }
    t.finish()
}

/// A message sealed with the sender's key for its epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedMessage {
    /// Random per client run: the sender's key is derived from the epoch
    /// key, its fingerprint and this, so a restarted client never reuses a
    /// (key, nonce) pair even without saved state.
    pub session: [u8; 16],
    /// The sender's nonce counter in this (epoch, session).
    pub counter: u64,
    /// The sender's clock when it sent, ms since the UNIX epoch (a claim).
    pub sent_at_ms: u64,
    /// The room sequence number the sender had seen last.
    pub seen_seq: u64,
    /// The sender's hash-chain head at `seen_seq` (docs/PROTOCOL.md §9.2.4).
    pub seen_head: [u8; 32],
    /// AES-256-GCM of a postcard [`Content`]; AAD from [`message_aad`].
    #[serde(with = "crate::msg::bytes")]
    pub ciphertext: Vec<u8>,
}

/// What a message says, once opened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Content {
    /// A line of text.
    Text(String),
    /// The sender's new display name.
    Nick(String),
    /// An action (`/me waves`), shown as `* nick waves`.
    Action(String),
    /// A file, uploaded to the relay sealed, offered to the room: its key
    /// and hash travel here, sealed and signed like any message.
    File(FileOffer),
}

/// What a member needs to fetch, open and verify a file the relay holds
/// as sealed chunks (hush_crypto::file): the relay never sees this.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, zeroize::ZeroizeOnDrop)]
pub struct FileOffer {
    /// The file's random id: the relay stores its chunks under it.
    #[zeroize(skip)]
    pub id: [u8; 16],
    /// Its name, as the sender gave it (hostile until sanitised).
    #[zeroize(skip)]
    pub name: String,
    /// Its real size in bytes (the sealed chunks are padded).
    #[zeroize(skip)]
    pub size: u64,
    /// Its media type, as the sender guessed it (`application/octet-stream`
    /// if unknown); informative only.
    #[zeroize(skip)]
    pub media_type: String,
    /// How many chunks it was sealed in.
    #[zeroize(skip)]
    pub chunks: u32,
    /// SHA-256 of the plaintext, checked before anything is saved.
    #[zeroize(skip)]
    pub sha256: [u8; 32],
    /// The file's own AES-256 key.
    pub key: [u8; 32],
}

impl std::fmt::Debug for FileOffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileOffer")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("size", &self.size)
            .field("media_type", &self.media_type)
            .field("chunks", &self.chunks)
            .field("key", &"<hidden>")
            .finish_non_exhaustive()
    }
}

/// The digest every room event signature covers: the relay-visible
/// envelope fields and the payload, length-framed.
#[must_use]
pub fn signing_digest(
    room: &RoomName,
    sender: &Fingerprint,
    kind: EventKind,
    epoch: u64,
    payload: &[u8],
) -> [u8; 32] {
    let mut t = Transcript::new("hush/v1/room-event-signing");
    t.absorb(room.as_str().as_bytes());
    t.absorb(sender.as_bytes());
    t.absorb(&[kind.code()]);
    t.absorb(&epoch.to_be_bytes());
    t.absorb(payload);
    t.finish()
}

/// Associated data of a sealed message: every field that gives the
/// ciphertext its meaning.
#[must_use]
pub fn message_aad(
    room: &RoomName,
    sender: &Fingerprint,
    epoch: u64,
    m: &SealedMessage,
) -> [u8; 32] {
    let mut t = Transcript::new("hush/v1/message-aad");
    t.absorb(room.as_str().as_bytes());
    t.absorb(sender.as_bytes());
    t.absorb(&[EventKind::Message.code()]);
    t.absorb(&epoch.to_be_bytes());
    t.absorb(&m.session);
    t.absorb(&m.counter.to_be_bytes());
    t.absorb(&m.sent_at_ms.to_be_bytes());
    t.absorb(&m.seen_seq.to_be_bytes());
    t.absorb(&m.seen_head);
    t.finish()
}

/// The salt of a sender's message key: its fingerprint, session and the
/// epoch number. The epoch is part of it because two epoch numbers can
/// carry one epoch key (a void commit, see PROTOCOL.md §9): their counters
/// both start at 0, so their message keys must differ.
#[must_use]
pub fn message_key_salt(sender: &Fingerprint, session: &[u8; 16], epoch: u64) -> [u8; 56] {
    let mut salt = [0u8; 56];
    salt[..32].copy_from_slice(sender.as_bytes());
    salt[32..48].copy_from_slice(session);
    salt[48..].copy_from_slice(&epoch.to_be_bytes());
    salt
}

/// Folds one sequenced event into a room's hash chain (docs/PROTOCOL.md §9.2.4).
#[must_use]
pub fn chain_next(head: &[u8; 32], event: &crate::SequencedEvent) -> [u8; 32] {
    chain_next_parts(head, event.seq, &event.event)
}

/// [`chain_next`] for an event not yet wrapped in a `SequencedEvent` (the
/// relay computes heads before it delivers). `received_at_ms` is not part
/// of the chain.
#[must_use]
pub fn chain_next_parts(head: &[u8; 32], seq: u64, event: &crate::RoomEvent) -> [u8; 32] {
    let mut t = Transcript::new("hush/v1/chain");
    t.absorb(head);
    t.absorb(&seq.to_be_bytes());
    t.absorb(event.room.as_str().as_bytes());
    t.absorb(event.sender.as_bytes());
    t.absorb(&[event.kind.code()]);
    t.absorb(&event.epoch.to_be_bytes());
    t.absorb(&event.body);
    t.finish()
}

/// Signature context of a relay's checkpoint.
pub const CHECKPOINT_CONTEXT: &str = "hush/v1/checkpoint";

/// What a relay's checkpoint signature covers: the room, a sequence
/// number, the hash-chain head after it, and the relay's clock. Signed
/// with the relay's identity key, so a relay that shows two members
/// different histories leaves signed evidence of it.
#[must_use]
pub fn checkpoint_digest(
    room: &RoomName,
    seq: u64,
    head: &[u8; 32],
    relay_time_ms: u64,
) -> [u8; 32] {
    let mut t = Transcript::new("hush/v1/checkpoint");
    t.absorb(room.as_str().as_bytes());
    t.absorb(&seq.to_be_bytes());
    t.absorb(head);
    t.absorb(&relay_time_ms.to_be_bytes());
    t.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msg::{decode, encode};

    fn fp(b: u8) -> Fingerprint {
        Fingerprint::from_bytes([b; 32])
    }

    #[test]
    fn an_add_only_commit_is_payload_variant_6_under_the_commit_kind() {
        let add = Payload::Add(AddCommit {
            parent_epoch: 3,
            parent_commit: [1; 32],
            added: vec![Member {
                public_key: vec![1, 2, 3],
                nick: vec![4; 17],
            }],
            envelopes: vec![KeyEnvelope {
                member: fp(9),
                wrapped: vec![4; 5],
            }],
            history: Vec::new(),
            names: Vec::new(),
            names_salt: [2; 16],
            confirm: [7; 32],
        });
        let bytes = encode(&add);
        assert_eq!(bytes[0], 6, "PROTOCOL.md §9.2.1 gives Add the index 6");
        assert_eq!(decode::<Payload>(&bytes).expect("it decodes"), add);
        assert_eq!(add.kind(), EventKind::Commit);
    }

    #[test]
    fn the_add_salt_binds_room_epoch_committer_and_newcomers() {
        let room = RoomName::new("lobby").expect("a valid name");
        let other = RoomName::new("dev").expect("a valid name");
        let base = add_epoch_salt(&room, 4, &fp(1), &[fp(2)]);
        for changed in [
            add_epoch_salt(&other, 4, &fp(1), &[fp(2)]),
            add_epoch_salt(&room, 5, &fp(1), &[fp(2)]),
            add_epoch_salt(&room, 4, &fp(3), &[fp(2)]),
            add_epoch_salt(&room, 4, &fp(1), &[fp(3)]),
            add_epoch_salt(&room, 4, &fp(1), &[fp(2), fp(3)]),
            add_epoch_salt(&room, 4, &fp(1), &[]),
        ] {
            assert_ne!(base, changed);
        }
        assert_eq!(base, add_epoch_salt(&room, 4, &fp(1), &[fp(2)]));
    }
}
