//! One room, end to end: the state a member keeps and the rules it applies
//! to every event, with no I/O.
//!
//! ```text
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
//! ciphertext opened; a failure becomes a [`ClientEvent::Warning`] naming
//! the *claimed* sender, never the message. An epoch key is unwrapped only
//! from a commit whose signature by a member of the parent epoch (or, for
//! the room's first commit, by the creator it names) has verified: no
//! private-key operation runs on bytes the relay alone chose.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hush_crypto::{
    Fingerprint, Identity, NonceCounter, PublicIdentity, SealingKey, Secret32, derive_secret,
};
use hush_proto::e2e::{
    self, ADD_EPOCH_KEY_INFO, AddCommit, Commit, Content, EPOCH_KEY_LABEL, EVENT_SIGNATURE_CONTEXT,
    HISTORY_KEY_LABEL, HistoryEnvelope, HistoryVisibility, JoinRequest, KeyEnvelope,
    MAX_HISTORY_ENVELOPES, MAX_NICK_BYTES, MAX_ROSTER, MESSAGE_KEY_INFO, Member, MemberRef,
    Payload, RoomSettings, SealedMessage, SignedBody,
};
use hush_proto::msg::{decode, encode};
use hush_proto::{EventKind, Rejection, RoomEvent, RoomName, SequencedEvent};

use serde::{Deserialize, Serialize};

use crate::display::ClientEvent;

/// A member that is not the designated admitter commits on its own after
/// an admission or removal has waited this long (the designated one may be
/// gone).
pub const FALLBACK_COMMIT_AFTER: Duration = Duration::from_secs(5);

/// When members replace an epoch's key although nobody joined or left:
/// after this many messages in it, or once it is this old (zero disables
/// a limit). Bounds how much one leaked epoch key exposes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RekeyPolicy {
    /// Messages sequenced in one epoch before it is replaced.
    pub max_messages: u64,
    /// Age of an epoch (from when this client processed its commit) before
    /// it is replaced.
    pub max_age: Duration,
}

impl Default for RekeyPolicy {
    /// 1,000 messages or one day: a busy room rekeys a few times a day, a
    /// quiet one daily, each at the cost of one commit.
    fn default() -> Self {
        Self {
            max_messages: 1000,
            max_age: Duration::from_secs(24 * 3600),
        }
    }
}

/// Messages typed before admission, kept to send once admitted.
const MAX_QUEUED_TEXTS: usize = 100;

/// Events after the commit that replaced an epoch during which a message
/// still sealed in that epoch, by someone the commit removed, is shown:
/// it was in flight. Later ones are refused.
const STALE_EPOCH_GRACE: u64 = 100;

/// Replay-detection entries kept before those of epochs older than the
/// previous one are forgotten.
const MAX_SEEN: usize = 200_000;

/// Join requests waiting for a commit; more are ignored until it lands.
const MAX_PENDING_JOINS: usize = 64;

/// Bytes a commit we build may take, leaving room in a relay frame for
/// the event's envelope and the signed body's framing.
const fn commit_budget(max_frame: usize) -> usize {
    hush_proto::msg::max_event_body(max_frame).saturating_sub(2048)
}

/// Join requests kept while they wait for the creator's invite.
const MAX_UNINVITED: usize = 100;

/// Messages kept that we could not read yet, in case a shared-history
/// admission hands us their keys.
const MAX_BACKLOG: usize = 10_000;

/// Body bytes kept in that backlog.
const MAX_BACKLOG_BYTES: usize = 32 * 1024 * 1024;

/// Events received ahead of a gap, kept until the gap fills.
const MAX_REORDER: usize = 10_000;

/// Chain heads remembered, to check the heads senders sign against our
/// own. A sender's view older than this many events is not checked.
const MAX_HEADS: usize = 50_000;

/// Something the caller must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Show this to the user.
    Show(ClientEvent),
    /// Send this event to the relay.
    Publish {
        /// Correlates a rejection.
        request: u64,
        /// The event.
        event: RoomEvent,
    },
}

/// One epoch as this member knows it.
#[derive(Clone)]
struct Epoch {
    /// Shared: a void epoch carries on its predecessor's roster.
    roster: Arc<BTreeMap<Fingerprint, RosterEntry>>,
    /// Present if we were a member and unwrapped it.
    key: Option<Secret32>,
}

#[derive(Clone)]
struct RosterEntry {
    /// Shared between the rosters of successive epochs: a big room's
    /// roster is copied for each epoch, its parsed keys are not.
    key: Arc<PublicIdentity>,
    nick: String,
}

/// Why a commit is not honoured.
enum CommitFault {
    /// Sequenced but invalid: its epoch inherits the previous one.
    Void(Box<Action>),
    /// Not the relay's next epoch for us: a sign of a forked history.
    Fork(Box<Action>),
    /// Valid, but the first roster we see of a room whose earlier history
    /// is gone: accepted as first seen, with this notice.
    Anchor(Box<Action>, BTreeMap<Fingerprint, RosterEntry>),
    /// An add-only commit extending a roster we never saw (the relay
    /// pruned the commits that built it): nothing to judge it by, and
    /// nothing of ours changes. The next full commit anchors us.
    Unjudgeable,
}

impl CommitFault {
    fn void(warning: Action) -> Self {
        Self::Void(Box::new(warning))
    }
    fn fork(warning: Action) -> Self {
        Self::Fork(Box::new(warning))
    }
    fn anchor(notice: Action, roster: BTreeMap<Fingerprint, RosterEntry>) -> Self {
        Self::Anchor(Box::new(notice), roster)
    }
}

/// A commit of either kind, as members apply it.
enum CommitBody {
    /// A whole roster and a fresh key.
    Full(Commit),
    /// The parent's roster plus newcomers, under a derived key.
    Add(AddCommit),
}

impl CommitBody {
    fn parent_epoch(&self) -> u64 {
        match self {
            Self::Full(c) => c.parent_epoch,
            Self::Add(a) => a.parent_epoch,
        }
    }
    fn envelopes(&self) -> &[KeyEnvelope] {
        match self {
            Self::Full(c) => &c.envelopes,
            Self::Add(a) => &a.envelopes,
        }
    }
    fn history(&self) -> &[HistoryEnvelope] {
        match self {
            Self::Full(c) => &c.history,
            Self::Add(a) => &a.history,
        }
    }
}

/// A pending change to the roster, waiting for a commit.
struct Pending {
    since: Instant,
}

/// Someone who asked to join, from their signed join request.
#[derive(Clone)]
struct Newcomer {
    key: PublicIdentity,
    nick: String,
    /// They hold the current roster: an add-only commit can admit them.
    knows_roster: bool,
}

/// The room state of one member.
pub struct Room {
    name: RoomName,
    me: Arc<Identity>,
    nick: String,
    /// Random per run; salts our message keys (see [`SealedMessage::session`]).
    session: [u8; 16],
    epochs: BTreeMap<u64, Epoch>,
    current: u64,
    last_seq: u64,
    chain_head: [u8; 32],
    reorder: BTreeMap<u64, SequencedEvent>,
    /// Epochs (rosters and keys) saved by an earlier run, consulted for
    /// messages whose epoch's commit the relay no longer keeps (when the
    /// history is read again, see [`Room::restore_for_replay`]).
    archive: BTreeMap<u64, Epoch>,
    /// Relay checkpoints for seqs we have not reached yet.
    pending_checkpoints: Vec<hush_proto::msg::Checkpoint>,
    /// Our chain head after each recent seq (and 0 → all zeros), while the
    /// chain is anchored at the room's first event.
    heads: BTreeMap<u64, [u8; 32]>,
    /// False once the relay's retention made us skip events: our chain no
    /// longer matches the members' who saw them, so heads are not compared.
    chain_anchored: bool,
    /// The seq of the commit that opened each epoch.
    epoch_commit_seq: HashMap<u64, u64>,
    /// Our chain head right after each epoch's commit: the history every
    /// member of that epoch must share, bound into the room fingerprint.
    epoch_heads: HashMap<u64, [u8; 32]>,
    rekey: RekeyPolicy,
    /// Messages sequenced since the current key's lineage began (the last
    /// full commit: add-only commits derive their keys from it).
    epoch_messages: u64,
    /// When we processed the last full commit, by our own clock (a relay's
    /// timestamps must not be able to force rekeys).
    epoch_started: Option<Instant>,
    /// Bytes a commit we build may take: from the relay's frame limit
    /// once connected, the default frame's until then.
    commit_budget: usize,
    /// When a rekey first became due (a non-designated member waits
    /// [`FALLBACK_COMMIT_AFTER`] from then).
    rekey_due_since: Option<Instant>,
    /// Next counter expected per (sender, session, epoch): a jump reveals
    /// messages the relay withheld, a step back a reordering.
    next_counter: HashMap<(Fingerprint, [u8; 16], u64), u64>,
    nicks: HashMap<Fingerprint, String>,
    online: BTreeSet<Fingerprint>,
    pending_joins: BTreeMap<Fingerprint, (Newcomer, Pending)>,
    pending_removals: BTreeMap<Fingerprint, Pending>,
    counters: HashMap<u64, NonceCounter>,
    seen: HashSet<(Fingerprint, [u8; 16], u64, u64)>,
    commit_in_flight: Option<u64>,
    /// The relay said another commit won and the room is at this epoch:
    /// commit nothing until that commit has been processed.
    awaiting_epoch: u64,
    join_requested: bool,
    caught_up: bool,
    leaving: bool,
    queued: Vec<String>,
    unreadable: u64,
    next_request: u64,
    /// Whether anything worth saving changed since the last snapshot.
    dirty: bool,
    /// The room's rules, from the first commit we processed.
    settings: Option<RoomSettings>,
    /// The rules we give the room if we create it.
    create_as: (bool, HistoryVisibility),
    /// Who the creator of an invite-only room has invited.
    invited: BTreeSet<Fingerprint>,
    /// Join requests to an invite-only room from people not (yet) invited.
    uninvited: BTreeMap<Fingerprint, Newcomer>,
    /// Messages from epochs we hold no key for, kept while a shared-history
    /// admission may still give us one.
    backlog: Vec<SequencedEvent>,
    /// Body bytes held in `backlog`.
    backlog_bytes: usize,
    /// Events we published and have not yet seen sequenced (or refused).
    /// After a reconnect, those the relay never committed are sent again:
    /// the same sealed bytes, so a copy that did get through is recognised
    /// by its body and nothing is shown twice.
    unconfirmed: Vec<(u64, RoomEvent)>,
    /// Events the relay could not store: sent again, identical, on the
    /// next tick (their counters are spent; a new event would leave a gap
    /// that members would report as a drop).
    storage_retry: Vec<RoomEvent>,
}

impl Room {
    /// A fresh member state for `name`.
    #[must_use]
    pub fn new(name: RoomName, me: Arc<Identity>, nick: String) -> Self {
        let mut session = [0u8; 16];
        hush_crypto::random_bytes(&mut session);
        let mut nicks = HashMap::new();
        nicks.insert(me.fingerprint(), nick.clone());
        Self {
            name,
            me,
            nick,
            session,
            epochs: BTreeMap::new(),
            current: 0,
            last_seq: 0,
            chain_head: [0; 32],
            reorder: BTreeMap::new(),
            heads: BTreeMap::from([(0, [0; 32])]),
            pending_checkpoints: Vec::new(),
            archive: BTreeMap::new(),
            chain_anchored: true,
            next_counter: HashMap::new(),
            rekey: RekeyPolicy::default(),
            epoch_messages: 0,
            epoch_started: None,
            commit_budget: commit_budget(hush_proto::DEFAULT_MAX_FRAME),
            rekey_due_since: None,
            epoch_heads: HashMap::new(),
            epoch_commit_seq: HashMap::new(),
            nicks,
            online: BTreeSet::new(),
            pending_joins: BTreeMap::new(),
            pending_removals: BTreeMap::new(),
            counters: HashMap::new(),
            seen: HashSet::new(),
            commit_in_flight: None,
            awaiting_epoch: 0,
            join_requested: false,
            caught_up: false,
            leaving: false,
            queued: Vec::new(),
            unreadable: 0,
            next_request: 1,
            dirty: false,
            settings: None,
            create_as: (false, HistoryVisibility::Joined),
            invited: BTreeSet::new(),
            uninvited: BTreeMap::new(),
            backlog: Vec::new(),
            backlog_bytes: 0,
            unconfirmed: Vec::new(),
            storage_retry: Vec::new(),
        }
    }

    /// The rules to give the room if this member creates it (ignored if
    /// the room exists: its creator fixed them).
    #[must_use]
    pub fn with_creation(mut self, invite_only: bool, history: HistoryVisibility) -> Self {
        self.create_as = (invite_only, history);
        self
    }

    /// The room's rules, once known.
    #[must_use]
    pub fn settings(&self) -> Option<&RoomSettings> {
        self.settings.as_ref()
    }

    /// Sizes the commits we build for a relay (and a link) that accepts
    /// frames of up to `max_frame` bytes: how many members a room can
    /// grow to is bounded by what one full commit of its roster can carry.
    pub fn set_frame_limit(&mut self, max_frame: usize) {
        self.commit_budget = commit_budget(max_frame);
    }

    /// Uses `policy` for periodic rekeying instead of the default.
    #[must_use]
    pub fn with_rekey_policy(mut self, policy: RekeyPolicy) -> Self {
        self.rekey = policy;
        self
    }

    /// The room's name.
    #[must_use]
    pub fn name(&self) -> &RoomName {
        &self.name
    }

    /// Last sequence number processed (ask the relay for what follows).
    #[must_use]
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// The hash-chain head after [`Self::last_seq`].
    #[must_use]
    pub fn chain_head(&self) -> [u8; 32] {
        self.chain_head
    }

    /// The current epoch as far as this member has processed.
    #[must_use]
    pub fn epoch(&self) -> u64 {
        self.current
    }

    /// Whether we hold the current epoch's key (can send).
    #[must_use]
    pub fn is_member(&self) -> bool {
        self.epochs
            .get(&self.current)
            .is_some_and(|e| e.key.is_some() && e.roster.contains_key(&self.me.fingerprint()))
    }

    /// Whether everything the user typed has been sent and confirmed: the
    /// room was caught up at least once, nothing is queued for admission
    /// and the relay has sequenced every event we published.
    #[must_use]
    pub fn is_settled(&self) -> bool {
        self.caught_up && self.unconfirmed.is_empty() && self.queued.is_empty()
    }

    /// Our display name.
    #[must_use]
    pub fn nick(&self) -> &str {
        &self.nick
    }

    /// The current roster: fingerprint, nick, online.
    #[must_use]
    pub fn members(&self) -> Vec<(Fingerprint, String, bool)> {
        self.epochs
            .get(&self.current)
            .map(|e| {
                e.roster
                    .keys()
                    .map(|fp| (*fp, self.nick_of(fp), self.online.contains(fp)))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Finds members by nickname or fingerprint (full or short id).
    #[must_use]
    pub fn whois(&self, query: &str) -> Vec<(Fingerprint, String)> {
        let q = query.trim();
        let mut out: Vec<(Fingerprint, String)> = self
            .nicks
            .iter()
            .filter(|(fp, nick)| nick.as_str() == q || fp.to_string() == q || fp.short_id() == q)
            .map(|(fp, nick)| (*fp, nick.clone()))
            .collect();
        out.sort();
        out
    }

    /// The room fingerprint: a digest of the room's name, current epoch,
    /// roster and the hash-chain head at that epoch's commit, as 30 digits.
    /// Members who read out the same digits share one history up to the
    /// current epoch and one member list: the relay cannot have shown them
    /// different ones. `None` before we have seen any epoch.
    #[must_use]
    pub fn room_fingerprint(&self) -> Option<String> {
        let e = self.epochs.get(&self.current)?;
        let mut t = hush_crypto::Transcript::new("hush/v1/room-fingerprint");
        t.absorb(self.name.as_str().as_bytes());
        t.absorb(&self.current.to_be_bytes());
        for fp in e.roster.keys() {
            t.absorb(fp.as_bytes());
        }
        // Members whose chain starts mid-log (retention) cannot know it.
        let head = self
            .epoch_heads
            .get(&self.current)
            .copied()
            .unwrap_or([0; 32]);
        t.absorb(if self.chain_anchored {
            &head
        } else {
            &[0u8; 32]
        });
        Some(digits(&t.finish()))
    }

    /// The safety number we share with `other`: the same 30 digits on both
    /// sides (the fingerprints are taken in sorted order). Comparing it out
    /// of band proves each holds the other's real key.
    #[must_use]
    pub fn safety_number(&self, other: &Fingerprint) -> String {
        let me = self.me.fingerprint();
        let (a, b) = if me <= *other {
            (me, *other)
        } else {
            (*other, me)
        };
        let mut t = hush_crypto::Transcript::new("hush/v1/safety-number");
        t.absorb(a.as_bytes());
        t.absorb(b.as_bytes());
        digits(&t.finish())
    }

    fn nick_of(&self, fp: &Fingerprint) -> String {
        self.nicks.get(fp).cloned().unwrap_or_else(|| fp.short_id())
    }

    /// Other members of the current roster using `nick` besides `fp`.
    fn same_nick(&self, fp: &Fingerprint, nick: &str) -> Vec<Fingerprint> {
        let Some(e) = self.epochs.get(&self.current) else {
            return Vec::new();
        };
        e.roster
            .keys()
            .filter(|other| *other != fp && self.nicks.get(other).is_some_and(|n| n == nick))
            .copied()
            .collect()
    }

    fn warn(
        &self,
        seq: Option<u64>,
        from: Option<Fingerprint>,
        kind: &str,
        text: String,
    ) -> Action {
        Action::Show(ClientEvent::Warning {
            room: Some(self.name.clone()),
            seq,
            from,
            kind: kind.to_owned(),
            text,
        })
    }

    fn notice(&self, text: String) -> Action {
        Action::Show(ClientEvent::Notice {
            room: Some(self.name.clone()),
            text,
        })
    }

    fn who(&self, fp: &Fingerprint) -> String {
        format!("{} ({})", self.nick_of(fp), fp.short_id())
    }

    // ─── From the relay ──────────────────────────────────────────────────

    /// The relay confirmed our subscription; `online` are the identities
    /// connected to the room.
    pub fn on_joined(&mut self, online: &[Fingerprint]) {
        self.online = online.iter().copied().collect();
        self.caught_up = false;
        self.commit_in_flight = None;
    }

    /// Someone connected or disconnected.
    pub fn on_presence(&mut self, member: Fingerprint, online: bool) {
        if online {
            self.online.insert(member);
        } else {
            self.online.remove(&member);
        }
    }

    /// A sequenced event: processed in order once every earlier one has
    /// been (live events may overtake a backfill answer).
    pub fn on_event(&mut self, event: SequencedEvent, now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();
        if event.seq <= self.last_seq {
            return actions; // already processed (a backfill overlap)
        }
        if self.reorder.len() >= MAX_REORDER && event.seq != self.last_seq + 1 {
            actions.push(self.warn(
                None,
                None,
                "reorder_overflow",
                "too many events arrived out of order; dropping the newest".into(),
            ));
            return actions;
        }
        self.reorder.insert(event.seq, event);
        self.drain_reorder(now, &mut actions);
        actions
    }

    fn drain_reorder(&mut self, now: Instant, actions: &mut Vec<Action>) {
        while let Some(entry) = self.reorder.first_entry() {
            if *entry.key() != self.last_seq + 1 {
                break;
            }
            let ev = entry.remove();
            self.apply(ev, now, actions);
        }
    }

    /// The end of a backfill answer. Every logged event up to `up_to` has
    /// been sent before it, so a gap below `up_to` is one the relay's
    /// retention removed: skip each such gap and go on with what follows.
    pub fn on_backfill_done(&mut self, up_to: u64, now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();
        // Whether we had followed the room before this gap (as opposed to
        // a newcomer whose view starts after the relay's retention).
        let was_following = self.chain_anchored && self.last_seq > 0;
        let mut skipped = 0;
        loop {
            self.drain_reorder(now, &mut actions);
            match self.reorder.keys().next().copied() {
                // drain stopped, so n > last_seq + 1: a pruned gap before n.
                Some(n) if n <= up_to => {
                    skipped += n - 1 - self.last_seq;
                    self.skip_to(n - 1);
                }
                _ => break,
            }
        }
        if up_to > self.last_seq {
            skipped += up_to - self.last_seq;
            self.skip_to(up_to);
            self.drain_reorder(now, &mut actions);
        }
        if skipped > 0 {
            if was_following {
                // The relay now skips events we never saw: pruned by
                // retention while we were away, or withheld.
                actions.push(self.warn(
                    None,
                    None,
                    "gap",
                    format!(
                        "{skipped} events of #{} that you never received are not served by the relay (pruned while you were away, or withheld); history checks are off for this room from now on",
                        self.name
                    ),
                ));
            } else {
                actions.push(self.notice(format!(
                    "{skipped} earlier events of #{} are no longer kept by the relay",
                    self.name
                )));
            }
        }
        actions
    }

    /// Skips to `seq`: our hash chain no longer matches the members' who
    /// saw what we skip, so chain checks stop for this room.
    fn skip_to(&mut self, seq: u64) {
        self.last_seq = seq;
        self.chain_anchored = false;
        self.heads.clear();
    }

    /// The initial backfill is complete: create the room, ask to be
    /// admitted, or announce that we are in.
    pub fn caught_up(&mut self, now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();
        let first = !self.caught_up;
        self.caught_up = true;
        if self.unreadable > 0 && first {
            let n = self.unreadable;
            actions.push(self.notice(if n == 1 {
                "1 earlier message is from before you were admitted and cannot be read".to_owned()
            } else {
                format!("{n} earlier messages are from before you were admitted and cannot be read")
            }));
        }
        self.resend_unconfirmed(&mut actions);
        if self.leaving {
            return actions;
        }
        if self.is_member() {
            actions.push(Action::Show(ClientEvent::Joined {
                room: self.name.clone(),
                me: self.me.fingerprint(),
                nick: self.nick.clone(),
                epoch: self.current,
            }));
            self.flush_queue(&mut actions);
        } else if self.current == 0 && self.epochs.is_empty() {
            // An empty room: open epoch 1 with ourselves in it.
            actions.push(self.notice(format!("#{} is new: creating it", self.name)));
            let me = (Arc::new(self.me.public().clone()), self.nick.clone());
            if let Some(a) = self.commit(vec![me]) {
                actions.push(a);
            }
        } else {
            self.request_join(&mut actions);
        }
        self.maybe_commit(now, &mut actions);
        actions
    }

    fn request_join(&mut self, actions: &mut Vec<Action>) {
        if self.join_requested {
            return;
        }
        self.join_requested = true;
        let payload = Payload::JoinRequest(JoinRequest {
            public_key: self.me.public().spki_der().to_vec(),
            nick: self.nick.clone(),
            knows_roster: self.epochs.contains_key(&self.current),
        });
        actions.push(Action::Show(ClientEvent::Notice {
            room: Some(self.name.clone()),
            text: format!("asking the members of #{} to admit you", self.name),
        }));
        if let Some(a) = self.publish(EventKind::JoinRequest, self.current, &payload) {
            actions.push(a);
        }
    }

    /// A request was refused by the relay.
    pub fn on_rejected(&mut self, request: u64, reason: Rejection, now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();
        if reason == Rejection::StorageFailed
            && let Some(i) = self.unconfirmed.iter().position(|(r, _)| *r == request)
        {
            let (_, event) = self.unconfirmed.remove(i);
            if event.kind != EventKind::Commit {
                self.storage_retry.push(event);
                return actions;
            }
        }
        self.unconfirmed.retain(|(r, _)| *r != request);
        match reason {
            Rejection::StaleEpoch { current } => {
                // Another commit won. Its event may not have arrived yet:
                // wait for it, then rebase (maybe_commit runs after every
                // event), instead of committing again on a stale parent.
                self.commit_in_flight = None;
                self.awaiting_epoch = self.awaiting_epoch.max(current);
                self.maybe_commit(now, &mut actions);
            }
            Rejection::FutureEpoch { current } => {
                actions.push(self.warn(
                    None,
                    None,
                    "relay_epoch",
                    format!(
                        "the relay says #{} is at epoch {current}; waiting to catch up",
                        self.name
                    ),
                ));
            }
            other => {
                if self.commit_in_flight.is_some() && matches!(other, Rejection::TooLarge { .. }) {
                    // Never retry the same too-large admission.
                    self.pending_joins.clear();
                }
                self.commit_in_flight = None;
                actions.push(Action::Show(ClientEvent::Error {
                    text: format!("the relay refused a request: {}", describe_rejection(other)),
                }));
            }
        }
        actions
    }

    // ─── Applying one event, in order ───────────────────────────────────

    fn apply(&mut self, ev: SequencedEvent, now: Instant, actions: &mut Vec<Action>) {
        self.dirty = true;
        self.last_seq = ev.seq;
        self.chain_head = e2e::chain_next(&self.chain_head, &ev);
        if self.chain_anchored {
            self.heads.insert(ev.seq, self.chain_head);
            if self.heads.len() > MAX_HEADS {
                self.heads.pop_first();
            }
            if self.pending_checkpoints.iter().any(|c| c.seq == ev.seq) {
                let due: Vec<_> = self
                    .pending_checkpoints
                    .iter()
                    .filter(|c| c.seq == ev.seq)
                    .cloned()
                    .collect();
                self.pending_checkpoints.retain(|c| c.seq != ev.seq);
                for cp in due {
                    self.compare_checkpoint(&cp, actions);
                }
            }
        }
        let sender = ev.event.sender;
        if sender == self.me.fingerprint() {
            let body = &ev.event.body;
            self.unconfirmed.retain(|(_, e)| e.body != *body);
        }
        if ev.event.room != self.name {
            // Signatures bind the room, so this cannot be genuine here.
            actions.push(self.warn(
                Some(ev.seq),
                Some(sender),
                "malformed",
                format!(
                    "the relay delivered an event for another room, claiming to be from {}; ignored",
                    self.who(&sender)
                ),
            ));
            return;
        }
        let parsed = decode::<SignedBody>(&ev.event.body).ok().and_then(|body| {
            decode::<Payload>(&body.payload)
                .ok()
                .filter(|p| p.kind() == ev.event.kind)
                .map(|p| (body, p))
        });
        let Some((body, payload)) = parsed else {
            let warning = self.warn(
                Some(ev.seq),
                Some(sender),
                "malformed",
                format!(
                    "a malformed event claiming to be from {} was ignored",
                    self.who(&sender)
                ),
            );
            if ev.event.kind == EventKind::Commit {
                self.void_commit(&ev, warning, actions);
            } else {
                actions.push(warning);
            }
            return;
        };
        let digest = e2e::signing_digest(
            &ev.event.room,
            &sender,
            ev.event.kind,
            ev.event.epoch,
            &body.payload,
        );
        match payload {
            Payload::JoinRequest(req) => {
                self.apply_join_request(&ev, &digest, &body, req, now, actions)
            }
            Payload::Commit(c) => {
                self.apply_commit(&ev, &digest, &body, CommitBody::Full(c), now, actions)
            }
            Payload::Add(a) => {
                self.apply_commit(&ev, &digest, &body, CommitBody::Add(a), now, actions)
            }
            Payload::Message(m) => self.apply_message(&ev, &digest, &body, &m, actions),
            Payload::Leave => self.apply_leave(&ev, &digest, &body, now, actions),
            Payload::Invite(r) => self.apply_control(&ev, &digest, &body, r, true, now, actions),
            Payload::Kick(r) => self.apply_control(&ev, &digest, &body, r, false, now, actions),
        }
        self.maybe_commit(now, actions);
    }

    /// The key that must have signed an event from `sender` in `epoch`,
    /// from that epoch's roster.
    fn roster_key(&self, epoch: u64, sender: &Fingerprint) -> Option<Arc<PublicIdentity>> {
        self.epochs
            .get(&epoch)
            .and_then(|e| e.roster.get(sender))
            .map(|r| r.key.clone())
    }

    fn bad_signature(&self, ev: &SequencedEvent, what: &str) -> Action {
        self.warn(
            Some(ev.seq),
            Some(ev.event.sender),
            "bad_signature",
            format!(
                "a {what} claiming to be from {} failed signature verification and was not shown",
                self.who(&ev.event.sender)
            ),
        )
    }

    fn apply_join_request(
        &mut self,
        ev: &SequencedEvent,
        digest: &[u8; 32],
        body: &SignedBody,
        req: JoinRequest,
        now: Instant,
        actions: &mut Vec<Action>,
    ) {
        let Ok(key) = PublicIdentity::from_spki_der(&req.public_key) else {
            actions.push(self.bad_signature(ev, "join request"));
            return;
        };
        if key.fingerprint() != ev.event.sender
            || key
                .verify(EVENT_SIGNATURE_CONTEXT, digest, &body.signature)
                .is_err()
        {
            actions.push(self.bad_signature(ev, "join request"));
            return;
        }
        let fp = key.fingerprint();
        let nick = clean_nick(&req.nick, &fp);
        let newcomer = Newcomer {
            key,
            nick: nick.clone(),
            knows_roster: req.knows_roster,
        };
        if fp == self.me.fingerprint() || !self.membership_event_is_current(ev, actions) {
            return;
        }
        if self
            .epochs
            .get(&self.current)
            .is_some_and(|e| e.roster.contains_key(&fp))
        {
            return; // already a member (a repeated request)
        }
        self.nicks.entry(fp).or_insert_with(|| nick.clone());
        if let Some(settings) = &self.settings
            && settings.invite_only
            && !self.invited.contains(&fp)
            && fp != settings.creator
        {
            // Members ignore it; the creator is told, and may invite.
            if settings.creator == self.me.fingerprint() && self.is_member() {
                actions.push(self.notice(format!(
                    "{nick} ({}) asks to join #{}, which is invite-only: /invite {fp} lets them in",
                    fp.short_id(),
                    self.name
                )));
            }
            if self.uninvited.len() < MAX_UNINVITED {
                self.uninvited.insert(fp, newcomer);
            }
            return;
        }
        if self.is_member() {
            actions.push(self.notice(format!(
                "{nick} ({}) asks to join #{}",
                fp.short_id(),
                self.name
            )));
        }
        if self.pending_joins.len() < MAX_PENDING_JOINS {
            self.pending_joins
                .entry(fp)
                .or_insert((newcomer, Pending { since: now }));
        }
    }

    /// Whether a signed membership event (join request, leave, invite,
    /// kick) is recent enough to act on: sealed in the current epoch, or
    /// in the previous one while the commit that replaced it is still
    /// recent (in flight). Older ones are replays: every membership change
    /// opens a new epoch, so an old event's effect is already settled.
    fn membership_event_is_current(&self, ev: &SequencedEvent, actions: &mut Vec<Action>) -> bool {
        let epoch = ev.event.epoch;
        let in_flight = epoch.saturating_add(1) == self.current
            && self
                .epoch_commit_seq
                .get(&self.current)
                .is_some_and(|at| ev.seq <= at.saturating_add(STALE_EPOCH_GRACE));
        if epoch == self.current || in_flight || self.epochs.is_empty() {
            return true;
        }
        actions.push(self.warn(
            Some(ev.seq),
            Some(ev.event.sender),
            "replay",
            format!(
                "a membership event from {} sealed in epoch {epoch} arrived when #{} is at epoch {}: replayed or long delayed; ignored",
                self.who(&ev.event.sender),
                self.name,
                self.current
            ),
        ));
        false
    }

    /// An invite or a kick: valid only from the room's creator, signed
    /// with the key the roster holds for them.
    #[allow(clippy::too_many_arguments)]
    fn apply_control(
        &mut self,
        ev: &SequencedEvent,
        digest: &[u8; 32],
        body: &SignedBody,
        target: MemberRef,
        invite: bool,
        now: Instant,
        actions: &mut Vec<Action>,
    ) {
        if !self.membership_event_is_current(ev, actions) {
            return;
        }
        let sender = ev.event.sender;
        let what = if invite { "invite" } else { "kick" };
        let Some(creator) = self.settings.as_ref().map(|s| s.creator) else {
            return;
        };
        if sender != creator {
            actions.push(self.warn(
                Some(ev.seq),
                Some(sender),
                "not_allowed",
                format!(
                    "{} sent an {what} for #{}, but only its creator may; ignored",
                    self.who(&sender),
                    self.name
                ),
            ));
            return;
        }
        let key = self
            .epochs
            .values()
            .rev()
            .find_map(|e| e.roster.get(&creator).map(|r| r.key.clone()));
        let Some(key) = key else {
            return;
        };
        if key
            .verify(EVENT_SIGNATURE_CONTEXT, digest, &body.signature)
            .is_err()
        {
            actions.push(self.bad_signature(ev, what));
            return;
        }
        let fp = target.member;
        if invite {
            self.invited.insert(fp);
            if let Some(newcomer) = self.uninvited.remove(&fp) {
                self.pending_joins
                    .entry(fp)
                    .or_insert((newcomer, Pending { since: now }));
            }
            if self.is_member() {
                actions.push(self.notice(format!(
                    "{} invited {} to #{}",
                    self.who(&sender),
                    self.who(&fp),
                    self.name
                )));
            }
        } else {
            self.invited.remove(&fp);
            self.pending_joins.remove(&fp);
            let member = self
                .epochs
                .get(&self.current)
                .is_some_and(|e| e.roster.contains_key(&fp));
            if member && fp != creator {
                self.pending_removals
                    .entry(fp)
                    .or_insert(Pending { since: now });
                actions.push(self.notice(format!(
                    "{} removed {} from #{}",
                    self.who(&sender),
                    self.who(&fp),
                    self.name
                )));
            }
        }
    }

    fn apply_leave(
        &mut self,
        ev: &SequencedEvent,
        digest: &[u8; 32],
        body: &SignedBody,
        now: Instant,
        actions: &mut Vec<Action>,
    ) {
        let sender = ev.event.sender;
        let Some(key) = self.roster_key(self.current, &sender) else {
            return; // not a member: nothing to remove
        };
        if !self.membership_event_is_current(ev, actions) {
            return;
        }
        if key
            .verify(EVENT_SIGNATURE_CONTEXT, digest, &body.signature)
            .is_err()
        {
            actions.push(self.bad_signature(ev, "leave notice"));
            return;
        }
        // Our own leave too: the commit removing us must be honoured in
        // our view as well.
        self.pending_removals
            .entry(sender)
            .or_insert(Pending { since: now });
    }

    fn apply_commit(
        &mut self,
        ev: &SequencedEvent,
        digest: &[u8; 32],
        body: &SignedBody,
        c: CommitBody,
        now: Instant,
        actions: &mut Vec<Action>,
    ) {
        let sender = ev.event.sender;
        let epoch = ev.event.epoch;
        let mine = sender == self.me.fingerprint();
        if mine {
            self.commit_in_flight = None;
        }
        let roster = match self.validate_commit(ev, digest, body, &c) {
            Ok(roster) => roster,
            Err(CommitFault::Void(warning)) => return self.void_commit(ev, *warning, actions),
            Err(CommitFault::Fork(warning)) => return actions.push(*warning),
            Err(CommitFault::Anchor(notice, roster)) => {
                actions.push(*notice);
                self.current = c.parent_epoch();
                roster
            }
            Err(CommitFault::Unjudgeable) => {
                // Keep in step with the relay's epochs, so that we ask to
                // join (and are admitted) in the room's current one.
                self.current = self.current.max(epoch);
                return;
            }
        };
        // Our key, only now that the commit is authenticated: derived from
        // the parent's if an add-only commit kept us, else our envelope.
        let me = self.me.fingerprint();
        let was_member = self.is_member();
        let parent = self
            .epochs
            .get(&self.current)
            .or_else(|| self.archive.get(&self.current));
        let kept = parent.is_some_and(|e| e.roster.contains_key(&me));
        let key = if !roster.contains_key(&me) {
            None
        } else if let CommitBody::Add(a) = &c
            && kept
        {
            parent.and_then(|e| e.key.as_ref()).map(|k| {
                let added: Vec<Fingerprint> = a
                    .added
                    .iter()
                    .map(|m| Fingerprint::of_spki_der(&m.public_key))
                    .collect();
                let salt = e2e::add_epoch_salt(&self.name, epoch, &sender, &added);
                derive_secret(k, &salt, ADD_EPOCH_KEY_INFO)
            })
        } else {
            match c.envelopes().iter().find(|e| e.member == me) {
                Some(env) => match self.me.unwrap(EPOCH_KEY_LABEL, &env.wrapped) {
                    Ok(k) => Some(k),
                    Err(_) => {
                        actions.push(self.warn(
                            Some(ev.seq),
                            Some(sender),
                            "undecryptable",
                            format!(
                                "the key for epoch {epoch} of #{} from {} could not be opened",
                                self.name,
                                self.who(&sender)
                            ),
                        ));
                        None
                    }
                },
                None => {
                    actions.push(self.warn(
                        Some(ev.seq),
                        Some(sender),
                        "undecryptable",
                        format!(
                            "{} admitted you to epoch {epoch} without giving you its key",
                            self.who(&sender)
                        ),
                    ));
                    None
                }
            }
        };
        // Who came and went.
        let before: BTreeSet<Fingerprint> = self
            .epochs
            .get(&self.current)
            .map(|e| e.roster.keys().copied().collect())
            .unwrap_or_default();
        for (fp, entry) in &roster {
            if !self.nicks.contains_key(fp) || !before.contains(fp) {
                self.nicks.insert(*fp, entry.nick.clone());
            }
        }
        let first_view = self.epochs.is_empty();
        if !first_view {
            for fp in roster.keys().filter(|fp| !before.contains(fp)) {
                actions.push(Action::Show(ClientEvent::MemberJoined {
                    room: self.name.clone(),
                    seq: ev.seq,
                    member: *fp,
                    nick: self.nick_of(fp),
                }));
            }
            for fp in before.iter().filter(|fp| !roster.contains_key(fp)) {
                actions.push(Action::Show(ClientEvent::MemberLeft {
                    room: self.name.clone(),
                    seq: ev.seq,
                    member: *fp,
                    nick: self.nick_of(fp),
                }));
            }
        }
        for fp in roster.keys() {
            self.pending_joins.remove(fp);
        }
        self.pending_removals
            .retain(|fp, _| roster.contains_key(fp));
        let now_member = key.is_some();
        if let CommitBody::Full(c) = &c
            && self.settings.is_none()
        {
            self.settings = Some(c.settings.clone());
        }
        // Shared history: earlier keys wrapped for us, opened only now
        // that the commit is authenticated.
        let mut got_history = false;
        if now_member && !was_member {
            for h in c.history().iter().filter(|h| h.member == me) {
                if let Some(e) = self.epochs.get_mut(&h.epoch)
                    && e.key.is_none()
                    && let Ok(k) = self.me.unwrap(HISTORY_KEY_LABEL, &h.wrapped)
                {
                    e.key = Some(k);
                    got_history = true;
                }
            }
        }
        self.epochs.insert(
            epoch,
            Epoch {
                roster: Arc::new(roster),
                key,
            },
        );
        self.current = epoch;
        self.epoch_heads.insert(epoch, self.chain_head);
        self.epoch_commit_seq.insert(epoch, ev.seq);
        if got_history {
            self.replay_backlog(actions);
        }
        // An add-only epoch continues its parent's key lineage: the
        // periodic rekey counts on from the last full commit.
        if matches!(c, CommitBody::Full(_)) || self.epoch_started.is_none() {
            self.epoch_messages = 0;
            self.epoch_started = Some(now);
            self.rekey_due_since = None;
        }
        let members: Vec<(Fingerprint, String)> = self.epochs[&epoch]
            .roster
            .keys()
            .map(|fp| (*fp, self.nick_of(fp)))
            .collect();
        if now_member || was_member {
            actions.push(Action::Show(ClientEvent::Epoch {
                room: self.name.clone(),
                seq: ev.seq,
                epoch,
                members,
            }));
        }
        if now_member && !was_member && self.caught_up {
            self.join_requested = false;
            actions.push(Action::Show(ClientEvent::Joined {
                room: self.name.clone(),
                me,
                nick: self.nick.clone(),
                epoch,
            }));
            self.flush_queue(actions);
        } else if was_member && !now_member && !self.leaving {
            actions.push(self.notice(format!("you are no longer a member of #{}", self.name)));
        }
    }

    /// Checks a commit: its signature (by the committer key a full commit
    /// carries, or by the parent roster's key for an add-only one), parent
    /// epoch, the committer's authority, and the roster. The roster, or why
    /// the commit is void (the relay sequenced it but members ignore it)
    /// or a sign of a forked history.
    fn validate_commit(
        &self,
        ev: &SequencedEvent,
        digest: &[u8; 32],
        body: &SignedBody,
        c: &CommitBody,
    ) -> Result<BTreeMap<Fingerprint, RosterEntry>, CommitFault> {
        let sender = ev.event.sender;
        let epoch = ev.event.epoch;
        let parent_epoch = c.parent_epoch();
        let bad = |what: &str| {
            CommitFault::void(self.warn(
                Some(ev.seq),
                Some(sender),
                "bad_commit",
                format!("a commit from {} {what}; ignored", self.who(&sender)),
            ))
        };
        let fork = || {
            let (kind, why) = if parent_epoch > self.current {
                (
                    "missing_commit",
                    "the relay withheld the commits in between from you",
                )
            } else {
                ("fork", "the relay showed the committer a different history")
            };
            CommitFault::fork(self.warn(
                Some(ev.seq),
                Some(sender),
                kind,
                format!(
                    "a commit from {} opens epoch {epoch} while #{} is at epoch {} for you: {why}; ignored",
                    self.who(&sender),
                    self.name,
                    self.current
                ),
            ))
        };
        let not_member = || {
            CommitFault::void(self.warn(
                Some(ev.seq),
                Some(sender),
                "not_member",
                format!(
                    "{} tried to change #{}'s members without being one; ignored",
                    self.who(&sender),
                    self.name
                ),
            ))
        };
        let mut anchored = false;
        let roster = match c {
            CommitBody::Full(c) => {
                let Ok(committer) = PublicIdentity::from_spki_der(&c.committer_key) else {
                    return Err(CommitFault::void(self.bad_signature(ev, "commit")));
                };
                if committer.fingerprint() != sender
                    || committer
                        .verify(EVENT_SIGNATURE_CONTEXT, digest, &body.signature)
                        .is_err()
                {
                    return Err(CommitFault::void(self.bad_signature(ev, "commit")));
                }
                if c.parent_epoch.checked_add(1) != Some(epoch) {
                    return Err(bad("names an impossible parent epoch"));
                }
                // Authority: a member of the parent epoch; or, before we
                // know any roster, the creator of the room (parent 0) or
                // the first roster we are shown when the relay no longer
                // keeps earlier history.
                if self.epochs.is_empty() {
                    if c.parent_epoch < self.current {
                        return Err(fork());
                    }
                    // Mid-history: past what we were shown, or at an epoch
                    // only add-only commits we could not judge led to.
                    if c.parent_epoch > self.current || (c.parent_epoch > 0 && !self.chain_anchored)
                    {
                        // Only a log whose start we skipped (retention) may
                        // begin mid-history; otherwise the relay withheld
                        // commits.
                        if self.chain_anchored {
                            return Err(fork());
                        }
                        anchored = true;
                    }
                } else if c.parent_epoch != self.current {
                    return Err(fork());
                } else if self.roster_key(c.parent_epoch, &sender).is_none() {
                    return Err(not_member());
                }
                if c.members.is_empty()
                    || c.members.len() > MAX_ROSTER
                    || c.envelopes.len() > MAX_ROSTER
                {
                    return Err(bad("has an impossible roster"));
                }
                // Keys we already hold are not parsed again: a rekey of a
                // big room mostly repeats its roster.
                let known = self.epochs.get(&self.current).map(|e| &e.roster);
                let mut roster = BTreeMap::new();
                for m in &c.members {
                    let fp = Fingerprint::of_spki_der(&m.public_key);
                    let key = match known.and_then(|r| r.get(&fp)) {
                        Some(r) if r.key.spki_der() == m.public_key.as_slice() => r.key.clone(),
                        _ => match PublicIdentity::from_spki_der(&m.public_key) {
                            Ok(key) => Arc::new(key),
                            Err(_) => return Err(bad("lists an invalid key")),
                        },
                    };
                    let nick = clean_nick(&m.nick, &fp);
                    roster.insert(fp, RosterEntry { key, nick });
                }
                if roster.len() != c.members.len() || !roster.contains_key(&sender) {
                    return Err(bad("has a duplicate or missing member"));
                }
                match &self.settings {
                    Some(s) if c.settings != *s => return Err(bad("changes the room's settings")),
                    None if c.parent_epoch == 0 && c.settings.creator != sender => {
                        return Err(bad("names someone else as the room's creator"));
                    }
                    _ => {}
                }
                roster
            }
            CommitBody::Add(a) => {
                if a.parent_epoch.checked_add(1) != Some(epoch) || a.parent_epoch == 0 {
                    return Err(bad("names an impossible parent epoch"));
                }
                // It extends a roster: without one we cannot judge it.
                // That is only possible when the relay pruned the log's
                // start (otherwise it withheld the commits before), and
                // then our saved state may still hold the parent epoch.
                let parent = if self.epochs.is_empty() {
                    match self.archive.get(&a.parent_epoch) {
                        Some(saved) if !self.chain_anchored => {
                            anchored = true;
                            saved
                        }
                        _ if self.chain_anchored => return Err(fork()),
                        _ => return Err(CommitFault::Unjudgeable),
                    }
                } else {
                    match self.epochs.get(&a.parent_epoch) {
                        Some(parent) if a.parent_epoch == self.current => parent,
                        _ => return Err(fork()),
                    }
                };
                let Some(committer) = parent.roster.get(&sender).map(|r| &r.key) else {
                    return Err(not_member());
                };
                if committer
                    .verify(EVENT_SIGNATURE_CONTEXT, digest, &body.signature)
                    .is_err()
                {
                    return Err(CommitFault::void(self.bad_signature(ev, "commit")));
                }
                let parent = &parent.roster;
                if a.added.is_empty()
                    || parent.len().saturating_add(a.added.len()) > MAX_ROSTER
                    || a.envelopes.len() > a.added.len()
                {
                    return Err(bad("has an impossible roster"));
                }
                let mut roster = (**parent).clone();
                for m in &a.added {
                    let Ok(key) = PublicIdentity::from_spki_der(&m.public_key) else {
                        return Err(bad("lists an invalid key"));
                    };
                    let fp = key.fingerprint();
                    let nick = clean_nick(&m.nick, &fp);
                    let key = Arc::new(key);
                    if roster.insert(fp, RosterEntry { key, nick }).is_some() {
                        return Err(bad("adds someone who is already a member"));
                    }
                }
                // An add-only epoch keeps the parent's key lineage, which a
                // member who left or was kicked still holds: it may not
                // stand in for the rekey that removes them.
                if self.chain_anchored
                    && let Some(fp) = self.pending_removals.keys().next()
                {
                    return Err(CommitFault::void(self.warn(
                        Some(ev.seq),
                        Some(sender),
                        "not_allowed",
                        format!(
                            "{} admitted members to #{} without removing {}, who left or was kicked; ignored",
                            self.who(&sender),
                            self.name,
                            self.who(fp)
                        ),
                    )));
                }
                roster
            }
        };
        if c.history().len() > MAX_HISTORY_ENVELOPES {
            return Err(bad("carries too many history keys"));
        }
        let Some(settings) = self.settings.as_ref().or(match c {
            CommitBody::Full(c) => Some(&c.settings),
            CommitBody::Add(_) => None,
        }) else {
            // Only a view that starts after pruned history can hold a
            // roster without the rules that came with it.
            return Err(CommitFault::Unjudgeable);
        };
        // Membership rules need the whole history (invites, leaves, kicks):
        // a member whose view starts after pruned events cannot judge them,
        // and must not void what everyone else honours.
        let judge = self.chain_anchored;
        if judge && let Some(before) = self.epochs.get(&self.current) {
            let dropped = before
                .roster
                .keys()
                .find(|fp| !roster.contains_key(fp) && !self.pending_removals.contains_key(fp));
            if let Some(fp) = dropped {
                return Err(CommitFault::void(self.warn(
                    Some(ev.seq),
                    Some(sender),
                    "not_allowed",
                    format!(
                        "{} removed {} from #{}, who neither left nor was kicked by its creator; ignored",
                        self.who(&sender),
                        self.who(fp),
                        self.name
                    ),
                )));
            }
        }
        if settings.invite_only
            && judge
            && let Some(before) = self.epochs.get(&self.current)
        {
            let uninvited = roster.keys().find(|fp| {
                !before.roster.contains_key(fp)
                    && !self.invited.contains(fp)
                    && **fp != settings.creator
            });
            if let Some(fp) = uninvited {
                return Err(CommitFault::void(self.warn(
                    Some(ev.seq),
                    Some(sender),
                    "not_invited",
                    format!(
                        "{} admitted {} to invite-only #{} without an invite from its creator; ignored",
                        self.who(&sender),
                        self.who(fp),
                        self.name
                    ),
                )));
            }
        }
        if anchored {
            return Err(CommitFault::anchor(
                self.notice(format!(
                    "history of #{} before epoch {epoch} is no longer kept; trusting its roster as first seen",
                    self.name
                )),
                roster,
            ));
        }
        Ok(roster)
    }

    /// A commit the relay sequenced (so its epoch number is taken) but that
    /// members must not honour: its epoch carries on the roster and key of
    /// the one before, so every member stays in step with the relay and the
    /// room keeps working. Every member reaches the same verdict, since it
    /// depends only on the history they share.
    fn void_commit(&mut self, ev: &SequencedEvent, warning: Action, actions: &mut Vec<Action>) {
        actions.push(warning);
        let epoch = ev.event.epoch;
        if epoch != self.current.saturating_add(1) {
            return; // not the relay's next epoch: nothing to keep in step with
        }
        if ev.event.sender == self.me.fingerprint() {
            self.commit_in_flight = None;
        }
        if let Some(prev) = self.epochs.get(&self.current).cloned() {
            self.epochs.insert(epoch, prev);
        }
        self.current = epoch;
        self.epoch_heads.insert(epoch, self.chain_head);
        self.epoch_commit_seq.insert(epoch, ev.seq);
    }

    fn apply_message(
        &mut self,
        ev: &SequencedEvent,
        digest: &[u8; 32],
        body: &SignedBody,
        m: &SealedMessage,
        actions: &mut Vec<Action>,
    ) {
        let sender = ev.event.sender;
        let epoch = ev.event.epoch;
        // Before the first commit of a log whose start retention removed,
        // later epochs are simply history we lack, not a withheld commit.
        let history_unknown = self.epochs.is_empty() && !self.chain_anchored;
        if epoch > self.current && !history_unknown {
            actions.push(self.warn(
                Some(ev.seq),
                Some(sender),
                "missing_commit",
                format!(
                    "a message claiming to be from {} is in epoch {epoch} of #{}, but the relay has not delivered you that epoch's commit; not shown",
                    self.who(&sender),
                    self.name
                ),
            ));
            return;
        }
        let Some(e) = self.epochs.get(&epoch).or_else(|| self.archive.get(&epoch)) else {
            self.unreadable += 1; // before our time in the room
            return;
        };
        if e.key.is_none() && !self.is_member() {
            // Counted toward the periodic rekey like the members count it,
            // so that our count agrees with theirs once an add-only commit
            // admits us. Unverified: a forged one can only make us rekey
            // early, which any member may do.
            if epoch == self.current {
                self.epoch_messages += 1;
            }
            // Not ours to read (yet): a shared-history admission may give
            // us the key, so keep it, if it is genuine and there is room.
            let keep = self.backlog.len() < MAX_BACKLOG
                && self.backlog_bytes + ev.event.body.len() <= MAX_BACKLOG_BYTES
                && self
                    .settings
                    .as_ref()
                    .is_none_or(|s| s.history == HistoryVisibility::Shared)
                && e.roster.get(&sender).is_some_and(|r| {
                    r.key
                        .verify(EVENT_SIGNATURE_CONTEXT, digest, &body.signature)
                        .is_ok()
                });
            if keep {
                self.backlog_bytes += ev.event.body.len();
                self.backlog.push(ev.clone());
            }
            self.unreadable += 1;
            return;
        }
        let Some(entry) = e.roster.get(&sender) else {
            actions.push(self.warn(Some(ev.seq), Some(sender), "not_member",
                format!("a message claiming to be from {} who is not a member of epoch {epoch} was not shown", self.who(&sender))));
            return;
        };
        if entry
            .key
            .verify(EVENT_SIGNATURE_CONTEXT, digest, &body.signature)
            .is_err()
        {
            actions.push(self.bad_signature(ev, "message"));
            return;
        }
        if epoch == self.current {
            self.epoch_messages += 1;
        }
        // A message from an epoch the room has moved past, from someone no
        // longer in it: only in flight for a while after their removal,
        // never indefinitely (a removed member keeps the old key).
        if epoch < self.current
            && !self
                .epochs
                .get(&self.current)
                .is_some_and(|c| c.roster.contains_key(&sender))
        {
            // Judged only where we saw the commit that replaced the epoch.
            let replaced_at = self.epoch_commit_seq.get(&(epoch + 1)).copied();
            if replaced_at.is_some_and(|at| ev.seq > at.saturating_add(STALE_EPOCH_GRACE)) {
                actions.push(self.warn(
                    Some(ev.seq),
                    Some(sender),
                    "stale_epoch",
                    format!(
                        "a message from {}, who is no longer a member of #{}, was sent under an old key long after their removal; not shown",
                        self.who(&sender),
                        self.name
                    ),
                ));
                return;
            }
        }
        let Some(epoch_key) = &e.key else {
            self.unreadable += 1;
            return;
        };
        // Replay detection remembers the current and previous epochs in
        // full; older ones only by their highest counter, so an old message
        // at or below it cannot be told from a replay and is not shown.
        if epoch.saturating_add(1) < self.current
            && self
                .next_counter
                .get(&(sender, m.session, epoch))
                .is_some_and(|next| m.counter < *next)
            && !self.seen.contains(&(sender, m.session, epoch, m.counter))
        {
            actions.push(self.warn(
                Some(ev.seq),
                Some(sender),
                "replay",
                format!(
                    "an old message from {} arrived again, or very late; not shown",
                    self.who(&sender)
                ),
            ));
            return;
        }
        if self.seen.len() >= MAX_SEEN {
            let keep_from = self.current.saturating_sub(1);
            self.seen.retain(|(_, _, e, _)| *e >= keep_from);
        }
        if !self.seen.insert((sender, m.session, epoch, m.counter)) {
            actions.push(self.warn(
                Some(ev.seq),
                Some(sender),
                "replay",
                format!("a repeated message from {} was dropped", self.who(&sender)),
            ));
            return;
        }
        let epoch_key = epoch_key.clone();
        self.check_transcript(ev, m, actions);
        let key = SealingKey::new(&derive_secret(
            &epoch_key,
            &e2e::message_key_salt(&sender, &m.session, epoch),
            MESSAGE_KEY_INFO,
        ));
        let aad = e2e::message_aad(&self.name, &sender, epoch, m);
        let content = key
            .open(m.counter, &aad, &m.ciphertext)
            .ok()
            .and_then(|plain| decode::<Content>(&plain).ok());
        match content {
            Some(Content::Text(text)) => {
                let nick = self.nick_of(&sender);
                actions.push(Action::Show(ClientEvent::Message {
                    room: self.name.clone(),
                    seq: ev.seq,
                    from: sender,
                    same_nick: self.same_nick(&sender, &nick),
                    nick,
                    text,
                    sent_at_ms: m.sent_at_ms,
                    received_at_ms: ev.received_at_ms,
                }));
            }
            Some(Content::Nick(new)) => {
                let new = clean_nick(&new, &sender);
                let old = self.nick_of(&sender);
                self.nicks.insert(sender, new.clone());
                if sender == self.me.fingerprint() {
                    self.nick.clone_from(&new);
                }
                actions.push(self.notice(format!(
                    "{old} ({}) is now known as {new}",
                    sender.short_id()
                )));
                let dups = self.same_nick(&sender, &new);
                if !dups.is_empty() {
                    let ids: Vec<String> = dups.iter().map(Fingerprint::short_id).collect();
                    actions.push(self.warn(
                        Some(ev.seq),
                        Some(sender),
                        "same_nick",
                        format!(
                            "{new} is also the name of {}: check fingerprints with /whois {new}",
                            ids.join(", ")
                        ),
                    ));
                }
            }
            None => actions.push(self.warn(
                Some(ev.seq),
                Some(sender),
                "undecryptable",
                format!(
                    "a message claiming to be from {} could not be decrypted and was not shown",
                    self.who(&sender)
                ),
            )),
        }
    }

    /// Shows the kept messages whose keys a shared-history admission just
    /// gave us, in their original order.
    fn replay_backlog(&mut self, actions: &mut Vec<Action>) {
        let backlog = std::mem::take(&mut self.backlog);
        self.backlog_bytes = 0;
        let mut shown = 0;
        for ev in backlog {
            let Ok(body) = decode::<SignedBody>(&ev.event.body) else {
                continue;
            };
            let Ok(Payload::Message(m)) = decode::<Payload>(&body.payload) else {
                continue;
            };
            let digest = e2e::signing_digest(
                &ev.event.room,
                &ev.event.sender,
                ev.event.kind,
                ev.event.epoch,
                &body.payload,
            );
            let before = actions.len();
            self.apply_message(&ev, &digest, &body, &m, actions);
            shown += actions[before..]
                .iter()
                .filter(|a| matches!(a, Action::Show(ClientEvent::Message { .. })))
                .count();
        }
        if shown > 0 {
            self.unreadable = self.unreadable.saturating_sub(shown as u64);
            actions.push(self.notice(format!(
                "#{} shares its history: {shown} earlier messages shown above",
                self.name
            )));
        }
    }

    /// A checkpoint the relay signed: its statement of the room's chain head
    /// at a seq. Checked against our own chain when we reach that seq; a
    /// mismatch is signed evidence that the relay shows members different
    /// histories.
    pub fn on_checkpoint(
        &mut self,
        cp: hush_proto::msg::Checkpoint,
        relay: &PublicIdentity,
    ) -> Vec<Action> {
        let mut actions = Vec::new();
        if cp.room != self.name {
            return actions;
        }
        let digest = e2e::checkpoint_digest(&cp.room, cp.seq, &cp.head, cp.relay_time_ms);
        if relay
            .verify(e2e::CHECKPOINT_CONTEXT, &digest, &cp.signature)
            .is_err()
        {
            actions.push(self.warn(
                Some(cp.seq),
                None,
                "bad_checkpoint",
                format!(
                    "a checkpoint of #{} failed the relay's signature; ignored",
                    self.name
                ),
            ));
            return actions;
        }
        if !self.chain_anchored {
            return actions;
        }
        if cp.seq > self.last_seq {
            if self.pending_checkpoints.len() < 16 {
                self.pending_checkpoints.push(cp);
            }
            return actions;
        }
        self.compare_checkpoint(&cp, &mut actions);
        actions
    }

    fn compare_checkpoint(&self, cp: &hush_proto::msg::Checkpoint, actions: &mut Vec<Action>) {
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        if let Some(ours) = self.heads.get(&cp.seq)
            && *ours != cp.head
        {
            actions.push(self.warn(
                Some(cp.seq),
                None,
                "relay_fork",
                format!(
                    "the relay signed a different history of #{} at seq {} than it showed you: it is showing members different histories. Evidence: relay_time_ms={} head={} signature={} (yours: {})",
                    self.name,
                    cp.seq,
                    cp.relay_time_ms,
                    hex(&cp.head),
                    hex(&cp.signature),
                    hex(ours)
                ),
            ));
        }
    }

    /// What an authenticated message says about the relay's honesty
    /// (DESIGN.md §5): the sender signed the sequence number and chain head
    /// it had seen, and its counter. Each problem is a warning; the message
    /// itself is genuine and is still shown.
    fn check_transcript(
        &mut self,
        ev: &SequencedEvent,
        m: &SealedMessage,
        actions: &mut Vec<Action>,
    ) {
        let sender = ev.event.sender;
        let who = self.who(&sender);
        if m.seen_seq >= ev.seq {
            actions.push(self.warn(
                Some(ev.seq),
                Some(sender),
                "reordered",
                format!(
                    "the relay placed a message from {who} at seq {} although {who} had already seen seq {}: it reordered or removed events of #{}",
                    ev.seq, m.seen_seq, self.name
                ),
            ));
        } else if self.chain_anchored
            && let Some(head) = self.heads.get(&m.seen_seq)
            && *head != m.seen_head
        {
            actions.push(self.warn(
                Some(ev.seq),
                Some(sender),
                "fork",
                format!(
                    "{who} saw a different history of #{} up to seq {} than you did: the relay is showing members different histories",
                    self.name, m.seen_seq
                ),
            ));
        }
        let slot = (sender, m.session, ev.event.epoch);
        let expected = match self.next_counter.get(&slot) {
            Some(n) => *n,
            // The first message of a sender's session in an epoch is
            // counter 0, unless retention took the start of the log.
            None if self.chain_anchored => 0,
            None => m.counter,
        };
        if m.counter > expected {
            let missing = m.counter - expected;
            actions.push(self.warn(
                Some(ev.seq),
                Some(sender),
                "dropped",
                format!(
                    "{missing} message{} from {who} before this one never reached you: the relay withheld {}",
                    if missing == 1 { "" } else { "s" },
                    if missing == 1 { "it" } else { "them" }
                ),
            ));
        } else if m.counter < expected {
            actions.push(self.warn(
                Some(ev.seq),
                Some(sender),
                "reordered",
                format!("a message from {who} arrived after one {who} sent later: the relay reordered #{}", self.name),
            ));
        }
        self.next_counter
            .insert(slot, expected.max(m.counter.saturating_add(1)));
    }

    // ─── Commits we make ─────────────────────────────────────────────────

    /// Whether we are the member expected to make the next commit: the
    /// online member of the current roster with the lowest fingerprint.
    fn designated(&self) -> bool {
        let me = self.me.fingerprint();
        let Some(e) = self.epochs.get(&self.current) else {
            return false;
        };
        e.roster
            .keys()
            .find(|fp| **fp == me || self.online.contains(fp))
            .is_some_and(|fp| *fp == me)
    }

    /// Periodic check: fallback commits when the designated member is gone.
    pub fn tick(&mut self, now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();
        for event in std::mem::take(&mut self.storage_retry) {
            actions.push(self.track(event));
        }
        self.maybe_commit(now, &mut actions);
        actions
    }

    fn maybe_commit(&mut self, now: Instant, actions: &mut Vec<Action>) {
        if !self.caught_up
            || self.leaving
            || self.commit_in_flight.is_some()
            || self.awaiting_epoch > self.current
            || !self.is_member()
        {
            return;
        }
        // Zero means "never" for either limit.
        let age = self
            .epoch_started
            .map_or(Duration::ZERO, |t| now.duration_since(t));
        let rekey_due = (self.rekey.max_messages > 0
            && self.epoch_messages >= self.rekey.max_messages)
            || (!self.rekey.max_age.is_zero() && age >= self.rekey.max_age);
        if rekey_due {
            self.rekey_due_since.get_or_insert(now);
        }
        if self.pending_joins.is_empty() && self.pending_removals.is_empty() && !rekey_due {
            return;
        }
        let oldest = self
            .pending_joins
            .values()
            .map(|(_, p)| p.since)
            .chain(self.pending_removals.values().map(|p| p.since))
            .chain(self.rekey_due_since)
            .min();
        let overdue = oldest.is_some_and(|t| now.duration_since(t) >= FALLBACK_COMMIT_AFTER);
        if !self.designated() && !overdue {
            return;
        }
        let Some(e) = self.epochs.get(&self.current) else {
            return;
        };
        // Who stays, as a full commit would list them. Sized without
        // copying: an add-only commit never lists them.
        let staying = || {
            e.roster
                .iter()
                .filter(|(fp, _)| !self.pending_removals.contains_key(fp))
        };
        let count = staying().count();
        // Admit as many as fit in one full commit (removing anyone later
        // takes one); the rest wait for the next.
        let budget = self.commit_budget;
        let size: usize = staying()
            .map(|(fp, r)| match self.nicks.get(fp) {
                Some(nick) => member_cost(&r.key, nick),
                None => member_cost(&r.key, &fp.short_id()),
            })
            .sum();
        if size > budget {
            actions.push(self.warn(
                None,
                None,
                "room_full",
                format!(
                    "#{} has too many members for one commit; membership changes are blocked",
                    self.name
                ),
            ));
            self.pending_joins.clear();
            return;
        }
        let costs: Vec<usize> = self
            .pending_joins
            .values()
            .map(|(n, _)| member_cost(&n.key, &n.nick))
            .collect();
        let fits = admissions(count, size, &costs, budget);
        let newcomers: Vec<Newcomer> = self
            .pending_joins
            .values()
            .zip(&fits)
            .filter(|(_, fit)| **fit)
            .map(|((n, _), _)| n.clone())
            .collect();
        let admitted = newcomers.len();
        if admitted == 0 && self.pending_removals.is_empty() && !rekey_due {
            // Only joins are pending and none fits: a commit would change
            // nothing, and committing it again every tick would spin.
            actions.push(self.warn(
                None,
                None,
                "room_full",
                format!(
                    "#{} cannot take more members: the next one does not fit in one commit",
                    self.name
                ),
            ));
            self.pending_joins.clear();
            return;
        }
        // Only admitting, to people who can follow the roster: an add-only
        // commit (one wrap per newcomer, no RSA for the members). Anything
        // else, or a room without our key, takes a full commit.
        let add_only = admitted > 0
            && !rekey_due
            && self.pending_removals.is_empty()
            && newcomers.iter().all(|n| n.knows_roster);
        let commit = if add_only {
            self.add_commit(newcomers)
        } else {
            let members: Vec<(Arc<PublicIdentity>, String)> = staying()
                .map(|(fp, r)| (r.key.clone(), self.nick_of(fp)))
                .chain(newcomers.into_iter().map(|n| (Arc::new(n.key), n.nick)))
                .collect();
            self.commit(members)
        };
        if let Some(a) = commit {
            actions.push(a);
        }
    }

    /// Builds a commit opening `current + 1` with a fresh key for
    /// `members`.
    fn commit(&mut self, members: Vec<(Arc<PublicIdentity>, String)>) -> Option<Action> {
        let key = Secret32::random();
        let keys: Vec<&PublicIdentity> = members.iter().map(|(k, _)| &**k).collect();
        let envelopes = wrap_to_each(&keys, &key)?;
        let settings = self.settings.clone().unwrap_or(RoomSettings {
            creator: self.me.fingerprint(),
            invite_only: self.create_as.0,
            history: self.create_as.1,
        });
        let newcomers: Vec<&PublicIdentity> = match self.epochs.get(&self.current) {
            Some(current) => keys
                .into_iter()
                .filter(|k| !current.roster.contains_key(&k.fingerprint()))
                .collect(),
            None => Vec::new(),
        };
        let size = members.iter().map(|(k, n)| member_cost(k, n)).sum();
        let history = self.history_for(&settings, &newcomers, size)?;
        let payload = Payload::Commit(Commit {
            parent_epoch: self.current,
            committer_key: self.me.public().spki_der().to_vec(),
            members: members
                .into_iter()
                .map(|(k, nick)| Member {
                    public_key: k.spki_der().to_vec(),
                    nick,
                })
                .collect(),
            envelopes,
            settings,
            history,
        });
        let epoch = self.current.checked_add(1)?;
        self.commit_in_flight = Some(epoch);
        self.publish(EventKind::Commit, epoch, &payload)
    }

    /// Builds an add-only commit opening `current + 1` for the current
    /// roster plus `newcomers`: the key is derived from ours, and wrapped
    /// to the newcomers alone (see [`AddCommit`]).
    fn add_commit(&mut self, newcomers: Vec<Newcomer>) -> Option<Action> {
        let parent = self.epochs.get(&self.current)?;
        let parent_key = parent.key.as_ref()?;
        let settings = self.settings.clone()?;
        let epoch = self.current.checked_add(1)?;
        let added: Vec<Fingerprint> = newcomers.iter().map(|n| n.key.fingerprint()).collect();
        let salt = e2e::add_epoch_salt(&self.name, epoch, &self.me.fingerprint(), &added);
        let key = derive_secret(parent_key, &salt, ADD_EPOCH_KEY_INFO);
        let keys: Vec<&PublicIdentity> = newcomers.iter().map(|n| &n.key).collect();
        let envelopes = wrap_to_each(&keys, &key)?;
        let size = newcomers.iter().map(|n| member_cost(&n.key, &n.nick)).sum();
        let history = self.history_for(&settings, &keys, size)?;
        let payload = Payload::Add(AddCommit {
            parent_epoch: self.current,
            added: newcomers
                .into_iter()
                .map(|n| Member {
                    public_key: n.key.spki_der().to_vec(),
                    nick: n.nick,
                })
                .collect(),
            envelopes,
            history,
        });
        self.commit_in_flight = Some(epoch);
        self.publish(EventKind::Commit, epoch, &payload)
    }

    /// Shared history: the earlier keys we hold, newest first, wrapped for
    /// each newcomer, within what is left of the commit budget after
    /// `used` bytes. Empty unless the room shares its history.
    fn history_for(
        &self,
        settings: &RoomSettings,
        newcomers: &[&PublicIdentity],
        used: usize,
    ) -> Option<Vec<HistoryEnvelope>> {
        let mut history = Vec::new();
        if settings.history != HistoryVisibility::Shared {
            return Some(history);
        }
        let mut budget = self.commit_budget.saturating_sub(used);
        for m in newcomers {
            for (epoch, e) in self.epochs.iter().rev() {
                let Some(k) = &e.key else { continue };
                let cost = m.bits() / 8 + 48;
                if history.len() >= MAX_HISTORY_ENVELOPES || cost > budget {
                    break;
                }
                budget -= cost;
                history.push(HistoryEnvelope {
                    member: m.fingerprint(),
                    epoch: *epoch,
                    wrapped: m.wrap(HISTORY_KEY_LABEL, k).ok()?.as_bytes().to_vec(),
                });
            }
        }
        Some(history)
    }

    fn publish(&mut self, kind: EventKind, epoch: u64, payload: &Payload) -> Option<Action> {
        let payload = encode(payload);
        let digest = e2e::signing_digest(&self.name, &self.me.fingerprint(), kind, epoch, &payload);
        let signature = self
            .me
            .sign(EVENT_SIGNATURE_CONTEXT, &digest)
            .ok()?
            .into_bytes();
        let event = RoomEvent {
            room: self.name.clone(),
            sender: self.me.fingerprint(),
            kind,
            epoch,
            body: encode(&SignedBody { payload, signature }),
        };
        Some(self.track(event))
    }

    fn track(&mut self, event: RoomEvent) -> Action {
        let request = self.next_request;
        self.next_request += 1;
        self.unconfirmed.push((request, event.clone()));
        Action::Publish { request, event }
    }

    /// After a reconnect and catch-up: sends again what the relay never
    /// committed. Commits are not resent (their parent may be stale: the
    /// pending changes are recomputed instead).
    fn resend_unconfirmed(&mut self, actions: &mut Vec<Action>) {
        let pending = std::mem::take(&mut self.unconfirmed);
        for (_, event) in pending {
            if event.kind != EventKind::Commit {
                actions.push(self.track(event));
            }
        }
    }

    // ─── From the user ───────────────────────────────────────────────────

    /// Seals and signs a line of text (or queues it until we are admitted).
    pub fn send_text(&mut self, text: String, now_ms: u64) -> Vec<Action> {
        let mut actions = Vec::new();
        if !self.is_member() || !self.caught_up {
            if self.queued.len() >= MAX_QUEUED_TEXTS {
                actions.push(Action::Show(ClientEvent::Error {
                    text:
                        "not admitted yet and too many messages are waiting; this one was not sent"
                            .into(),
                }));
            } else {
                self.queued.push(text);
                actions.push(self.notice(
                    "not admitted yet: your message will be sent once a member lets you in".into(),
                ));
            }
            return actions;
        }
        if let Some(a) = self.seal(Content::Text(text), now_ms) {
            actions.push(a);
        }
        actions
    }

    /// Announces a new display name to the room.
    pub fn set_nick(&mut self, nick: String, now_ms: u64) -> Vec<Action> {
        self.nick.clone_from(&nick);
        self.nicks.insert(self.me.fingerprint(), nick.clone());
        if !self.is_member() {
            return vec![self.notice(format!("you will be known as {nick}"))];
        }
        self.seal(Content::Nick(nick), now_ms).into_iter().collect()
    }

    fn creator_check(&self, what: &str) -> Result<(), String> {
        let Some(settings) = &self.settings else {
            return Err(format!("#{} has no members yet", self.name));
        };
        if settings.creator != self.me.fingerprint() {
            return Err(format!(
                "only the creator of #{} ({}) can {what}",
                self.name,
                self.who(&settings.creator)
            ));
        }
        Ok(())
    }

    /// Resolves a nickname, short id or fingerprint among members and
    /// people who asked to join.
    fn resolve(&self, query: &str) -> Result<Fingerprint, String> {
        if let Ok(fp) = query.parse::<Fingerprint>() {
            return Ok(fp);
        }
        let mut found: Vec<Fingerprint> = self.whois(query).into_iter().map(|(fp, _)| fp).collect();
        found.extend(
            self.uninvited
                .iter()
                .filter(|(fp, n)| n.nick == query || fp.short_id() == query)
                .map(|(fp, _)| *fp),
        );
        found.sort();
        found.dedup();
        match found.as_slice() {
            [one] => Ok(*one),
            [] => Err(format!(
                "nobody called {query} is known in #{}; give the full fingerprint",
                self.name
            )),
            _ => Err(format!(
                "{query} names several people; give the full fingerprint"
            )),
        }
    }

    /// Invites someone to an invite-only room (creator only).
    ///
    /// # Errors
    /// A message for the user if we may not, or `who` is unknown.
    pub fn invite(&mut self, who: &str) -> Result<Vec<Action>, String> {
        self.creator_check("invite")?;
        if self.settings.as_ref().is_some_and(|s| !s.invite_only) {
            return Err(format!(
                "#{} is open: anyone who asks is admitted",
                self.name
            ));
        }
        let member = self.resolve(who)?;
        Ok(self
            .publish(
                EventKind::Control,
                self.current,
                &Payload::Invite(MemberRef { member }),
            )
            .into_iter()
            .collect())
    }

    /// Removes a member (creator only); members rekey without them.
    ///
    /// # Errors
    /// A message for the user if we may not, or `who` is not a member.
    pub fn kick(&mut self, who: &str) -> Result<Vec<Action>, String> {
        self.creator_check("kick")?;
        let member = self.resolve(who)?;
        if member == self.me.fingerprint() {
            return Err("you cannot kick yourself: use /leave".into());
        }
        if !self
            .epochs
            .get(&self.current)
            .is_some_and(|e| e.roster.contains_key(&member))
        {
            return Err(format!(
                "{} is not a member of #{}",
                self.who(&member),
                self.name
            ));
        }
        Ok(self
            .publish(
                EventKind::Control,
                self.current,
                &Payload::Kick(MemberRef { member }),
            )
            .into_iter()
            .collect())
    }

    /// Leaves the room: members rekey without us.
    pub fn leave(&mut self) -> Vec<Action> {
        self.leaving = true;
        if !self.is_member() {
            return Vec::new();
        }
        self.publish(EventKind::Leave, self.current, &Payload::Leave)
            .into_iter()
            .collect()
    }

    fn flush_queue(&mut self, actions: &mut Vec<Action>) {
        let now_ms = now_ms();
        for text in std::mem::take(&mut self.queued) {
            if let Some(a) = self.seal(Content::Text(text), now_ms) {
                actions.push(a);
            }
        }
    }

    fn seal(&mut self, content: Content, now_ms: u64) -> Option<Action> {
        let epoch = self.current;
        let epoch_key = self.epochs.get(&epoch)?.key.as_ref()?;
        let me = self.me.fingerprint();
        let key = SealingKey::new(&derive_secret(
            epoch_key,
            &e2e::message_key_salt(&me, &self.session, epoch),
            MESSAGE_KEY_INFO,
        ));
        let nonce = self.counters.entry(epoch).or_default().next_nonce().ok()?;
        let mut m = SealedMessage {
            session: self.session,
            counter: nonce.counter(),
            sent_at_ms: now_ms,
            // A chain that skipped pruned events matches nobody else's:
            // claim nothing rather than raise false alarms.
            seen_seq: if self.chain_anchored {
                self.last_seq
            } else {
                0
            },
            seen_head: if self.chain_anchored {
                self.chain_head
            } else {
                [0; 32]
            },
            ciphertext: Vec::new(),
        };
        let aad = e2e::message_aad(&self.name, &me, epoch, &m);
        m.ciphertext = key.seal(nonce, &aad, &encode(&content)).ok()?;
        self.publish(EventKind::Message, epoch, &Payload::Message(m))
    }
}

/// Milliseconds since the UNIX epoch by this machine's clock.
#[must_use]
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// How many recent chain heads a snapshot keeps (the heads senders sign
/// are almost always recent).
const SNAPSHOT_HEADS: usize = 2_000;

/// Everything a member must remember between runs, for [`Room::restore`].
/// Holds epoch keys: it is only ever stored sealed (see `state.rs`), and
/// its encoding is zeroized after use.
#[derive(Serialize, Deserialize)]
pub struct RoomSnapshot {
    room: String,
    owner: [u8; 32],
    nick: String,
    last_seq: u64,
    chain_head: [u8; 32],
    chain_anchored: bool,
    heads: Vec<(u64, [u8; 32])>,
    current: u64,
    epochs: Vec<EpochSnapshot>,
    epoch_heads: Vec<(u64, [u8; 32])>,
    nicks: Vec<([u8; 32], String)>,
    next_counter: Vec<([u8; 32], [u8; 16], u64, u64)>,
    seen: Vec<([u8; 32], [u8; 16], u64, u64)>,
    settings: Option<RoomSettings>,
    invited: Vec<[u8; 32]>,
    epoch_commit_seq: Vec<(u64, u64)>,
    pending_removals: Vec<[u8; 32]>,
}

#[derive(Serialize, Deserialize)]
struct EpochSnapshot {
    epoch: u64,
    members: Vec<(Vec<u8>, String)>,
    key: Option<[u8; 32]>,
}

impl Drop for RoomSnapshot {
    fn drop(&mut self) {
        for e in &mut self.epochs {
            if let Some(k) = e.key.as_mut() {
                zeroize::Zeroize::zeroize(k);
            }
        }
    }
}

/// Why a snapshot cannot be restored.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// It belongs to another room or identity.
    #[error("the saved state is for another room or identity")]
    Mismatch,
    /// A saved key does not parse.
    #[error("the saved state holds an invalid key")]
    BadKey,
}

impl Room {
    /// Whether state changed since the last call (then clears the flag).
    pub fn take_dirty(&mut self) -> bool {
        std::mem::take(&mut self.dirty)
    }

    /// What must survive a restart.
    #[must_use]
    pub fn snapshot(&self) -> RoomSnapshot {
        let keep_seen_from = self.current.saturating_sub(1);
        RoomSnapshot {
            room: self.name.as_str().to_owned(),
            owner: *self.me.fingerprint().as_bytes(),
            nick: self.nick.clone(),
            last_seq: self.last_seq,
            chain_head: self.chain_head,
            chain_anchored: self.chain_anchored,
            heads: self
                .heads
                .iter()
                .rev()
                .take(SNAPSHOT_HEADS)
                .map(|(k, v)| (*k, *v))
                .collect(),
            current: self.current,
            // Epochs known from the log, and those only an earlier run's
            // state knew (kept for --replay-history).
            epochs: self
                .epochs
                .iter()
                .chain(
                    self.archive
                        .iter()
                        .filter(|(e, _)| !self.epochs.contains_key(e)),
                )
                .map(|(epoch, e)| EpochSnapshot {
                    epoch: *epoch,
                    members: e
                        .roster
                        .values()
                        .map(|r| (r.key.spki_der().to_vec(), r.nick.clone()))
                        .collect(),
                    key: e.key.as_ref().map(|k| *k.expose_secret()),
                })
                .collect(),
            epoch_heads: self.epoch_heads.iter().map(|(k, v)| (*k, *v)).collect(),
            nicks: self
                .nicks
                .iter()
                .map(|(fp, n)| (*fp.as_bytes(), n.clone()))
                .collect(),
            next_counter: self
                .next_counter
                .iter()
                .map(|((fp, session, epoch), n)| (*fp.as_bytes(), *session, *epoch, *n))
                .collect(),
            // Replays are checked within recent epochs; older epochs are
            // rekeyed away and their counters are in `next_counter`.
            seen: self
                .seen
                .iter()
                .filter(|(_, _, epoch, _)| *epoch >= keep_seen_from)
                .map(|(fp, session, epoch, counter)| (*fp.as_bytes(), *session, *epoch, *counter))
                .collect(),
            settings: self.settings.clone(),
            invited: self.invited.iter().map(|fp| *fp.as_bytes()).collect(),
            epoch_commit_seq: self
                .epoch_commit_seq
                .iter()
                .map(|(e, s)| (*e, *s))
                .collect(),
            pending_removals: self
                .pending_removals
                .keys()
                .map(|fp| *fp.as_bytes())
                .collect(),
        }
    }

    /// A fresh member state that reads the room's retained history again
    /// from its start, with the epochs a snapshot saved kept aside for
    /// messages whose commits the relay no longer keeps. Nothing else of
    /// the snapshot is reused: the history is verified again as it comes.
    ///
    /// # Errors
    /// As [`Room::restore`].
    pub fn restore_for_replay(
        name: RoomName,
        me: Arc<Identity>,
        snap: &RoomSnapshot,
    ) -> Result<Self, RestoreError> {
        let saved = Self::restore(name.clone(), me.clone(), snap)?;
        let mut room = Self::new(name, me, snap.nick.clone());
        room.archive = saved.epochs.clone();
        room.nicks = saved.nicks.clone();
        // The rules never change, and add-only commits do not repeat them.
        room.settings = saved.settings.clone();
        Ok(room)
    }

    /// A member state restored from a snapshot: it resumes after the last
    /// event it processed, holding the epoch keys it had.
    ///
    /// # Errors
    /// [`RestoreError`] if the snapshot is for another room or identity,
    /// or holds an invalid key.
    pub fn restore(
        name: RoomName,
        me: Arc<Identity>,
        snap: &RoomSnapshot,
    ) -> Result<Self, RestoreError> {
        if snap.room != name.as_str() || snap.owner != *me.fingerprint().as_bytes() {
            return Err(RestoreError::Mismatch);
        }
        let mut room = Self::new(name, me, snap.nick.clone());
        room.last_seq = snap.last_seq;
        room.chain_head = snap.chain_head;
        room.chain_anchored = snap.chain_anchored;
        room.heads = snap.heads.iter().copied().collect();
        room.current = snap.current;
        for e in &snap.epochs {
            let mut roster = BTreeMap::new();
            for (spki, nick) in &e.members {
                let key = PublicIdentity::from_spki_der(spki).map_err(|_| RestoreError::BadKey)?;
                roster.insert(
                    key.fingerprint(),
                    RosterEntry {
                        key: Arc::new(key),
                        nick: nick.clone(),
                    },
                );
            }
            let key = e.key.map(Secret32::from_bytes);
            room.epochs.insert(
                e.epoch,
                Epoch {
                    roster: Arc::new(roster),
                    key,
                },
            );
        }
        room.epoch_heads = snap.epoch_heads.iter().copied().collect();
        room.nicks = snap
            .nicks
            .iter()
            .map(|(fp, n)| (Fingerprint::from_bytes(*fp), n.clone()))
            .collect();
        room.next_counter = snap
            .next_counter
            .iter()
            .map(|(fp, session, epoch, n)| ((Fingerprint::from_bytes(*fp), *session, *epoch), *n))
            .collect();
        room.seen = snap
            .seen
            .iter()
            .map(|(fp, session, epoch, counter)| {
                (Fingerprint::from_bytes(*fp), *session, *epoch, *counter)
            })
            .collect();
        room.epoch_started = Some(Instant::now());
        room.settings.clone_from(&snap.settings);
        room.epoch_commit_seq = snap.epoch_commit_seq.iter().copied().collect();
        let now = Instant::now();
        room.pending_removals = snap
            .pending_removals
            .iter()
            .map(|b| (Fingerprint::from_bytes(*b), Pending { since: now }))
            .collect();
        room.invited = snap
            .invited
            .iter()
            .map(|b| Fingerprint::from_bytes(*b))
            .collect();
        Ok(room)
    }
}

/// Which pending joins (by their encoded cost) one commit can admit to a
/// roster of `count` members whose encoding costs `size`: in order, while
/// they fit the budget and the roster limit.
fn admissions(count: usize, size: usize, costs: &[usize], budget: usize) -> Vec<bool> {
    let (mut count, mut size) = (count, size);
    costs
        .iter()
        .map(|&cost| {
            let fit = count < MAX_ROSTER && size + cost <= budget;
            if fit {
                count += 1;
                size += cost;
            }
            fit
        })
        .collect()
}

/// Envelopes per thread below which wrapping is not worth a thread.
const WRAPS_PER_THREAD: usize = 64;

/// `key` wrapped (RSA-OAEP, [`EPOCH_KEY_LABEL`]) to each of `members`, in
/// order. A big commit spreads the wraps over the machine's cores: a
/// rekey of 5,000 members is 5,000 public-key operations.
fn wrap_to_each(members: &[&PublicIdentity], key: &Secret32) -> Option<Vec<KeyEnvelope>> {
    let wrap = |m: &&PublicIdentity| {
        Some(KeyEnvelope {
            member: m.fingerprint(),
            wrapped: m.wrap(EPOCH_KEY_LABEL, key).ok()?.as_bytes().to_vec(),
        })
    };
    let threads = std::thread::available_parallelism()
        .map_or(1, std::num::NonZero::get)
        .min(members.len() / WRAPS_PER_THREAD);
    if threads <= 1 {
        return members.iter().map(wrap).collect();
    }
    let chunk = members.len().div_ceil(threads);
    std::thread::scope(|s| {
        let parts: Vec<_> = members
            .chunks(chunk)
            .map(|part| s.spawn(move || part.iter().map(wrap).collect::<Option<Vec<_>>>()))
            .collect();
        let mut out = Vec::with_capacity(members.len());
        for part in parts {
            // A wrap that panicked is a failed commit, never ours to crash on.
            out.extend(part.join().ok()??);
        }
        Some(out)
    })
}

/// Bytes one member adds to a commit: its key, nickname and key envelope
/// (as long as its modulus), plus framing.
fn member_cost(key: &PublicIdentity, nick: &str) -> usize {
    key.spki_der().len() + nick.len() + key.bits() / 8 + 48
}

/// 30 decimal digits in six groups of five, from a digest: short enough
/// to read aloud, long enough (about 100 bits) that a match is no accident.
fn digits(digest: &[u8; 32]) -> String {
    digest
        .chunks(5)
        .take(6)
        .map(|c| {
            let n = c.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
            format!("{:05}", n % 100_000)
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A received nickname made safe to keep: bounded length, never empty.
fn clean_nick(nick: &str, fp: &Fingerprint) -> String {
    let mut n: String = nick.trim().chars().take(MAX_NICK_BYTES).collect();
    while n.len() > MAX_NICK_BYTES {
        n.pop();
    }
    if n.is_empty() { fp.short_id() } else { n }
}

/// What a rejection means, for a person.
#[must_use]
pub fn describe_rejection(r: Rejection) -> String {
    match r {
        Rejection::NotJoined => "not joined to that room".into(),
        Rejection::SpoofedSender => "sender mismatch (this is a bug in the client)".into(),
        Rejection::StaleEpoch { current } => {
            format!("another change won; the room is at epoch {current}")
        }
        Rejection::FutureEpoch { current } => format!("the room is only at epoch {current}"),
        Rejection::TooManyRooms { limit } => {
            format!("this relay allows {limit} rooms per connection")
        }
        Rejection::StorageFailed => "the relay could not store it; try again later".into(),
        Rejection::TooLarge { max_body } => {
            format!("too large: this relay accepts at most {max_body} bytes")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admissions_take_joins_in_order_while_they_fit() {
        assert_eq!(admissions(2, 100, &[50, 60, 10], 200), [true, false, true]);
        // The room is exactly full: nobody fits, which the caller must not
        // turn into a commit of the same roster (it would repeat forever).
        assert_eq!(admissions(2, 190, &[20, 30], 200), [false, false]);
        assert_eq!(admissions(MAX_ROSTER, 0, &[1], usize::MAX), [false]);
        assert_eq!(
            admissions(MAX_ROSTER - 1, 0, &[1, 1], usize::MAX),
            [true, false]
        );
    }
}
