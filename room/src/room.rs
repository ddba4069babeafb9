//! [`Room`]: one member's state for one room, made of the parts the other
//! files of this crate handle, and the entry points a client calls.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hush_crypto::{Fingerprint, Identity, NonceCounter};
use hush_proto::e2e::{HistoryVisibility, RoomSettings};
use hush_proto::{RoomEvent, RoomName, SequencedEvent};

use crate::action::{Action, Notice, Shown};
use crate::entropy::Entropy;
use crate::epochs::Epoch;
use crate::limits::*;
use crate::membership::{Newcomer, Pending};
use crate::nick::skeleton;
use crate::warning::{Peer, Warning};

/// A member that is not the designated admitter commits on its own after
/// an admission or removal has waited this long (the designated one may be
/// gone).
pub const FALLBACK_COMMIT_AFTER: Duration = Duration::from_secs(5);

/// How long we wait before committing again after the relay refused a
/// commit for its per-identity rate (its window is a minute).
pub(crate) const COMMIT_HOLD: Duration = Duration::from_secs(60);

/// How long a removal (a leave or a kick) may be pending before what we
/// type waits for it: the member being removed holds the current key, and
/// only the commit that removes them stops them reading. A relay that
/// withholds that commit thus stalls the room instead of letting them
/// read on.
pub const REMOVAL_GRACE: Duration = Duration::from_secs(2);

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

/// The room state of one member, made of named parts: each one the state
/// of one concern, handled by the file named beside it.
pub struct Room {
    pub(crate) name: RoomName,
    pub(crate) me: Arc<Identity>,
    pub(crate) nick: String,
    /// Random per run; salts our message keys (see [`SealedMessage::session`]).
    pub(crate) session: [u8; 16],
    /// Where fresh secrets come from: the caller's generator.
    pub(crate) entropy: Entropy,
    /// Our view of the relay's log (`order.rs`, `chain.rs`).
    pub(crate) chain: ChainView,
    /// The epochs we know (`epochs.rs`, `commit/apply.rs`).
    pub(crate) epochs: Epochs,
    /// When we commit (`commit/build.rs`).
    pub(crate) commits: Committer,
    /// Who is waiting to come in or go (`membership.rs`).
    pub(crate) admissions: Admissions,
    /// Names and presence.
    pub(crate) people: People,
    /// Counters and messages already seen (`chain.rs`, `message.rs`).
    pub(crate) replay: ReplayGuard,
    /// Messages we cannot read yet (`message.rs`).
    pub(crate) backlog: Backlog,
    /// What we send and the relay has not confirmed (`publish.rs`).
    pub(crate) outbox: PublishQueue,
    pub(crate) caught_up: bool,
    pub(crate) leaving: bool,
    /// Whether anything worth saving changed since the last snapshot.
    pub(crate) dirty: bool,
    /// The room's rules, from the first commit we processed.
    pub(crate) settings: Option<RoomSettings>,
    /// The rules we give the room if we create it.
    pub(crate) create_as: (bool, HistoryVisibility),
    /// The files offered in the room this run, newest last (at most
    /// [`crate::limits::MAX_OFFERED_FILES`]; not in the snapshot: the
    /// client keeps the offers it was shown across runs, sealed, in
    /// `client/src/offers.rs`).
    pub(crate) files: std::collections::VecDeque<OfferedFile>,
}

/// A verified file offer, as `/files` lists it and `/save` fetches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferedFile {
    /// The offer's sequence number.
    pub seq: u64,
    /// Who offered it (verified signature).
    pub from: Fingerprint,
    /// Their nickname then (unsanitized).
    pub nick: String,
    /// The offer, key included.
    pub offer: hush_proto::e2e::FileOffer,
    /// When the relay received it.
    pub received_at_ms: u64,
}

/// Our view of the relay's log: where we are in it and the hash chain.
pub(crate) struct ChainView {
    /// The last seq applied.
    pub(crate) last_seq: u64,
    /// The chain head after it.
    pub(crate) head: [u8; 32],
    /// Events that arrived ahead of a gap, by seq.
    pub(crate) reorder: BTreeMap<u64, SequencedEvent>,
    /// Body bytes held in `reorder`.
    pub(crate) reorder_bytes: usize,
    /// Relay checkpoints for seqs we have not reached yet.
    pub(crate) pending_checkpoints: Vec<hush_proto::msg::Checkpoint>,
    /// Our chain head after each recent seq (and 0 → all zeros), while the
    /// chain is anchored at the room's first event.
    pub(crate) heads: BTreeMap<u64, [u8; 32]>,
    /// False once the relay's retention made us skip events: our chain no
    /// longer matches the members' who saw them, so heads are not compared.
    pub(crate) anchored: bool,
    /// The seq a saved state resumed us from (0 for a fresh member).
    pub(crate) resumed_from: u64,
    /// The relay's log was rewound behind what we processed: the room is
    /// stopped (a `rollback` warning said why and what to do).
    pub(crate) rewound: bool,
}

impl Default for ChainView {
    fn default() -> Self {
        Self {
            last_seq: 0,
            head: [0; 32],
            reorder: BTreeMap::new(),
            reorder_bytes: 0,
            pending_checkpoints: Vec::new(),
            heads: BTreeMap::from([(0, [0; 32])]),
            anchored: true,
            resumed_from: 0,
            rewound: false,
        }
    }
}

/// The epochs a member knows.
#[derive(Default)]
pub(crate) struct Epochs {
    /// Every epoch processed: roster and, if we were in it, the key.
    pub(crate) known: BTreeMap<u64, Epoch>,
    /// The current one.
    pub(crate) current: u64,
    /// Epochs (rosters and keys) saved by an earlier run, consulted for
    /// messages whose epoch's commit the relay no longer keeps (when the
    /// history is read again, see [`Room::restore_for_replay`]).
    pub(crate) archive: BTreeMap<u64, Epoch>,
    /// The seq of the commit that opened each epoch.
    pub(crate) commit_seq: HashMap<u64, u64>,
    /// The id of the commit that opened each epoch (`e2e::commit_id`):
    /// the next commit must name it, and the room fingerprint binds it.
    pub(crate) ids: HashMap<u64, [u8; 32]>,
}

impl Epochs {
    /// The current epoch, if we know it.
    pub(crate) fn now(&self) -> Option<&Epoch> {
        self.known.get(&self.current)
    }
}

/// When we commit: the periodic rekey, the commit size budget, and the
/// commit we wait on.
pub(crate) struct Committer {
    pub(crate) policy: RekeyPolicy,
    /// Messages sequenced since the current key's lineage began (the last
    /// full commit: add-only commits derive their keys from it).
    pub(crate) epoch_messages: u64,
    /// When we processed the last full commit, by our own clock (a relay's
    /// timestamps must not be able to force rekeys).
    pub(crate) epoch_started: Option<Instant>,
    /// Bytes a commit we build may take: from the relay's frame limit
    /// once connected, the default frame's until then.
    pub(crate) budget: usize,
    /// When a rekey first became due (a non-designated member waits
    /// [`FALLBACK_COMMIT_AFTER`] from then).
    pub(crate) rekey_due_since: Option<Instant>,
    /// The request id of a commit of ours the relay has not sequenced yet.
    pub(crate) in_flight: Option<u64>,
    /// The relay refused our commits for a while (its per-identity rate):
    /// commit nothing before then.
    pub(crate) hold_until: Option<Instant>,
}

impl Default for Committer {
    fn default() -> Self {
        Self {
            policy: RekeyPolicy::default(),
            epoch_messages: 0,
            epoch_started: None,
            budget: commit_budget(hush_proto::DEFAULT_MAX_FRAME),
            rekey_due_since: None,
            in_flight: None,
            hold_until: None,
        }
    }
}

/// Who is waiting to come in or to go.
#[derive(Default)]
pub(crate) struct Admissions {
    pub(crate) pending_joins: BTreeMap<Fingerprint, (Newcomer, Pending)>,
    pub(crate) pending_removals: BTreeMap<Fingerprint, Pending>,
    /// Who the creator of an invite-only room has invited.
    pub(crate) invited: BTreeSet<Fingerprint>,
    /// Join requests to an invite-only room from people not (yet) invited.
    pub(crate) uninvited: BTreeMap<Fingerprint, Newcomer>,
    /// Whether we asked to be admitted.
    pub(crate) join_requested: bool,
    /// The seq of the last kick of each member: an invite its creator
    /// signed before having seen it is superseded.
    pub(crate) kicked_at: BTreeMap<Fingerprint, u64>,
}

/// Names and presence.
#[derive(Default)]
pub(crate) struct People {
    pub(crate) nicks: HashMap<Fingerprint, String>,
    pub(crate) online: BTreeSet<Fingerprint>,
}

/// What tells a replayed, withheld or reordered message from a new one.
#[derive(Default)]
pub(crate) struct ReplayGuard {
    /// Next counter expected per (sender, session, epoch): a jump reveals
    /// messages the relay withheld, a step back a reordering.
    pub(crate) next_counter: HashMap<(Fingerprint, [u8; 16], u64), u64>,
    /// Messages processed, by (sender, session, epoch, counter).
    pub(crate) seen: HashSet<(Fingerprint, [u8; 16], u64, u64)>,
    /// Next membership-event counter expected per (sender, session): a
    /// lower one is a copy the relay repeated or held back.
    pub(crate) membership: BTreeMap<(Fingerprint, [u8; 16]), u64>,
}

/// Messages from epochs we hold no key for.
#[derive(Default)]
pub(crate) struct Backlog {
    /// Kept while a shared-history admission may still give us the key.
    pub(crate) events: Vec<SequencedEvent>,
    /// Body bytes held in `events`.
    pub(crate) bytes: usize,
    /// Messages we could not read (shown as a count once caught up).
    pub(crate) unreadable: u64,
}

/// What we send, until the relay confirms it.
pub(crate) struct PublishQueue {
    /// Our nonce counter in each epoch.
    pub(crate) counters: HashMap<u64, NonceCounter>,
    /// Membership events we signed this session.
    pub(crate) membership_counter: u64,
    /// We were admitted by a commit that did not carry our name: say it.
    pub(crate) announce_name: bool,
    /// The next request id.
    pub(crate) next_request: u64,
    /// Texts typed before admission, with when they were typed (ms since
    /// the Unix epoch): their messages carry that time.
    pub(crate) queued: Vec<(hush_proto::e2e::Content, u64)>,
    /// Events we published and have not yet seen sequenced (or refused).
    /// After a reconnect, those the relay never committed are sent again:
    /// the same sealed bytes, so a copy that did get through is recognised
    /// by its body and nothing is shown twice.
    pub(crate) unconfirmed: Vec<(u64, RoomEvent)>,
    /// Events the relay could not store: sent again, identical, on the
    /// next tick (their counters are spent; a new event would leave a gap
    /// that members would report as a drop).
    pub(crate) storage_retry: Vec<RoomEvent>,
    /// Members whose removal has been pending longer than
    /// [`REMOVAL_GRACE`]: until a commit removes them, what we type waits
    /// (they hold the current key).
    pub(crate) barrier: Vec<Fingerprint>,
}

impl Default for PublishQueue {
    fn default() -> Self {
        Self {
            counters: HashMap::new(),
            membership_counter: 0,
            announce_name: false,
            next_request: 1,
            queued: Vec::new(),
            unconfirmed: Vec::new(),
            storage_retry: Vec::new(),
            barrier: Vec::new(),
        }
    }
}

impl Room {
    /// A fresh member state for `name`, drawing its secrets (this run's
    /// session salt now, epoch keys later) from `entropy`.
    #[must_use]
    pub fn new(name: RoomName, me: Arc<Identity>, nick: String, mut entropy: Entropy) -> Self {
        let mut session = [0u8; 16];
        entropy.fill(&mut session);
        let mut people = People::default();
        people.nicks.insert(me.fingerprint(), nick.clone());
        Self {
            name,
            me,
            nick,
            session,
            entropy,
            chain: ChainView::default(),
            epochs: Epochs::default(),
            commits: Committer::default(),
            admissions: Admissions::default(),
            people,
            replay: ReplayGuard::default(),
            backlog: Backlog::default(),
            outbox: PublishQueue::default(),
            caught_up: false,
            leaving: false,
            dirty: false,
            settings: None,
            create_as: (false, HistoryVisibility::Joined),
            files: std::collections::VecDeque::new(),
        }
    }

    /// The files offered in the room this run, oldest first.
    pub fn offered_files(&self) -> impl Iterator<Item = &OfferedFile> {
        self.files.iter()
    }

    /// The offered file whose id, in hex, starts with `id` (the 8-digit
    /// short id `/files` shows, or more), if exactly one does.
    #[must_use]
    pub fn offered_file(&self, id: &str) -> Option<&OfferedFile> {
        let id = id.trim().to_ascii_lowercase();
        if id.is_empty() {
            return None;
        }
        let mut found = self.files.iter().filter(|f| {
            let hex: String = f.offer.id.iter().map(|b| format!("{b:02x}")).collect();
            hex.starts_with(&id)
        });
        match (found.next(), found.next()) {
            (Some(one), None) => Some(one),
            _ => None,
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
    /// [`Room::on_connected`] does this for each connection.
    pub fn set_frame_limit(&mut self, max_frame: usize) {
        self.commits.budget = commit_budget(max_frame);
    }

    /// Uses `policy` for periodic rekeying instead of the default.
    #[must_use]
    pub fn with_rekey_policy(mut self, policy: RekeyPolicy) -> Self {
        self.commits.policy = policy;
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
        self.chain.last_seq
    }

    /// The hash-chain head after [`Self::last_seq`].
    #[must_use]
    pub fn chain_head(&self) -> [u8; 32] {
        self.chain.head
    }

    /// The current epoch as far as this member has processed.
    #[must_use]
    pub fn epoch(&self) -> u64 {
        self.epochs.current
    }

    /// The id of the commit that opened the current epoch (what the next
    /// commit must name as its parent), once we know one.
    #[must_use]
    pub fn commit_id(&self) -> Option<[u8; 32]> {
        self.epochs.ids.get(&self.epochs.current).copied()
    }

    /// Whether we hold the current epoch's key (can send).
    #[must_use]
    pub fn is_member(&self) -> bool {
        self.epochs
            .now()
            .is_some_and(|e| e.key.is_some() && e.roster.contains_key(&self.me.fingerprint()))
    }

    /// Whether everything the user typed has been sent and confirmed: the
    /// room was caught up at least once, nothing is queued for admission
    /// and the relay has sequenced every event we published.
    #[must_use]
    pub fn is_settled(&self) -> bool {
        self.caught_up && self.outbox.unconfirmed.is_empty() && self.outbox.queued.is_empty()
    }

    /// Whether the room has read everything the relay held when it last
    /// joined (only then are membership and who is online known).
    #[must_use]
    pub fn is_caught_up(&self) -> bool {
        self.caught_up
    }

    /// How many lines typed here, and events published, have not been
    /// sequenced by the relay yet (queued before admission or behind the
    /// send barrier, or sent and not confirmed).
    #[must_use]
    pub fn unsent(&self) -> usize {
        self.outbox.unconfirmed.len() + self.outbox.queued.len()
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
            .now()
            .map(|e| {
                e.roster
                    .keys()
                    .map(|fp| (*fp, self.nick_of(fp), self.people.online.contains(fp)))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Finds members by nickname or fingerprint (full or short id).
    #[must_use]
    pub fn whois(&self, query: &str) -> Vec<(Fingerprint, String)> {
        let q = query.trim();
        let mut out: Vec<(Fingerprint, String)> = self
            .people
            .nicks
            .iter()
            .filter(|(fp, nick)| nick.as_str() == q || fp.to_string() == q || fp.short_id() == q)
            .map(|(fp, nick)| (*fp, nick.clone()))
            .collect();
        out.sort();
        out
    }

    pub(crate) fn nick_of(&self, fp: &Fingerprint) -> String {
        self.people
            .nicks
            .get(fp)
            .cloned()
            .unwrap_or_else(|| fp.short_id())
    }

    /// Other members of the current roster using `nick` besides `fp`.
    pub(crate) fn same_nick(&self, fp: &Fingerprint, nick: &str) -> Vec<Fingerprint> {
        let Some(e) = self.epochs.now() else {
            return Vec::new();
        };
        e.roster
            .keys()
            .filter(|other| {
                *other != fp
                    && self
                        .people
                        .nicks
                        .get(other)
                        .is_some_and(|n| skeleton(n) == skeleton(nick))
            })
            .copied()
            .collect()
    }

    /// A warning about something `from` (claimed) sent at `seq`.
    pub(crate) fn warn(
        &self,
        seq: Option<u64>,
        from: Option<Fingerprint>,
        warning: Warning,
    ) -> Action {
        Action::Show(Shown::Warning {
            room: Some(self.name.clone()),
            seq,
            from: from.map(|fp| self.peer(&fp)),
            warning,
        })
    }

    pub(crate) fn notice(&self, notice: Notice) -> Action {
        Action::Show(Shown::Notice {
            room: Some(self.name.clone()),
            notice,
        })
    }

    /// `fp` with the nickname this room knows it by.
    pub(crate) fn peer(&self, fp: &Fingerprint) -> Peer {
        Peer {
            fingerprint: *fp,
            nick: self.nick_of(fp),
        }
    }

    // ─── From the relay (through `driver.rs`) ────────────────────────────

    /// The relay confirmed our subscription; `online` are the identities
    /// connected to the room.
    pub(crate) fn on_joined(&mut self, online: &[Fingerprint]) {
        self.people.online = online.iter().copied().collect();
        self.caught_up = false;
        self.commits.in_flight = None;
    }

    /// Someone connected or disconnected.
    pub(crate) fn on_presence(&mut self, member: Fingerprint, online: bool) {
        if online {
            self.people.online.insert(member);
        } else {
            self.people.online.remove(&member);
        }
    }

    /// Periodic check: fallback commits when the designated member is gone.
    pub fn tick(&mut self, now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();
        for event in std::mem::take(&mut self.outbox.storage_retry) {
            actions.push(self.track(event));
        }
        self.maybe_commit(now, &mut actions);
        actions
    }
}
