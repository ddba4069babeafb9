//! # hush-room: one room, end to end: the state a member keeps and the rules it applies
//! to every event, with no I/O.
//!
//! ```text
//!   link up ─▶ Join ─▶ Joined ─▶ Backfill pages ─▶ BackfillDone(complete) ─▶ caught up + Checkpoint
//!   relay events (any order) ─▶ reorder by seq ─▶ hash chain ─▶ verify signature ─▶ apply
//!                                                                 │ JoinRequest: queue admission
//!                                                                 │ Commit:  check committer, roster; unwrap our envelope
//!                                                                 │ Message: open with the sender's key ─▶ Show
//!                                                                 └ Leave:   queue removal
//!   user input ─▶ seal + sign ─▶ Publish
//!   pending admissions/removals ─▶ (designated member) Commit ─▶ Publish
//! ```
//!
//! Nothing is shown before its signature verified and (for messages) its
//! ciphertext opened; a failure becomes a [`Shown::Warning`] naming
//! the *claimed* sender, never the message. An epoch key is unwrapped only
//! from a commit whose signature by a member of the parent epoch (or, for
//! the room's first commit, by the creator it names) has verified: no
//! private-key operation runs on bytes the relay alone chose.
//!
//! This crate does no I/O: no sockets, files or async tasks (it does not
//! depend on tokio), and it has no clock and no random generator of its
//! own. The caller passes in what the relay sent ([`Room::on_relay`]),
//! user input, the time, and an [`Entropy`] for fresh secrets, and
//! performs the [`Action`]s that come out: shows, events to publish, and
//! the link messages of the room protocol ([`Action::Send`]), so the
//! whole protocol, joining and backfill paging included, runs here and
//! is tested here. (The randomness of RSA padding and blinding, inside
//! `hush-crypto`, still comes from the OS generator.) Where each concern
//! lives:
//!
//! | file | concern |
//! |---|---|
//! | `room.rs` | [`Room`] and its named parts (`ChainView`, `Epochs`, `Committer`, `Admissions`, `People`, `ReplayGuard`, `Backlog`, `PublishQueue`), constructors, accessors, `tick` |
//! | `driver.rs` | the link protocol: connect, join, backfill paging, checkpoint requests, relay messages in, leave |
//! | `action.rs` | [`Action`], [`Shown`], [`Notice`], [`Refusal`]: what the caller must do, send or show |
//! | `warning.rs` | [`Warning`]: one variant per warning kind of docs/CLIENT.md §5.3 |
//! | `entropy.rs` | [`Entropy`]: the caller's random generator |
//! | `order.rs` | reorder by seq, backfill, retention gaps, catching up |
//! | `dispatch.rs` | hash chain, then the handler of each event kind |
//! | `authenticate.rs` | decode once, verify once: the only event-signature check; handlers act on `Authenticated` values |
//! | `chain.rs` | relay checkpoints and the chain heads senders sign |
//! | `epochs.rs` | epochs, rosters and their keys |
//! | `membership.rs` | join requests, invites, kicks, leaves |
//! | `nick.rs` | nickname rules (sender and receiver), look-alike skeletons |
//! | `commit/validate.rs` | the rules of PROTOCOL.md §9.2.6 |
//! | `commit/apply.rs` | switching epochs, skipping commits members do not take |
//! | `commit/build.rs` | the commits we make, key envelopes |
//! | `message.rs` | opening and sealing messages, replays, backlog |
//! | `publish.rs` | request ids, unconfirmed events, rejections |
//! | `fingerprint.rs` | room fingerprint, safety numbers |
//! | `snapshot.rs` | what survives a restart |
//! | `limits.rs` | bounds on what peers can make us hold |
#![forbid(unsafe_code)]

mod action;
mod authenticate;
mod chain;
mod commit;
mod dispatch;
mod driver;
mod entropy;
mod epochs;
mod fingerprint;
mod limits;
mod membership;
mod message;
mod nick;
mod order;
mod publish;
mod room;
mod snapshot;
mod warning;

pub use action::{Action, Notice, Refusal, Shown};
pub use entropy::Entropy;
pub use nick::{MAX_NICK_CHARS, NickFlaw, check_nick, skeleton};
pub use room::{FALLBACK_COMMIT_AFTER, OfferedFile, REMOVAL_GRACE, RekeyPolicy, Room};
pub use snapshot::{RestoreError, RoomSnapshot};
pub use warning::{
    BadFile, CommitFlaw, Fork, MissingCommit, NotAllowed, Peer, RelayFork, Reordered, Replay,
    Signed, Undecryptable, Warning,
};
