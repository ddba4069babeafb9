//! An in-memory room: several [`Room`]s talking through a simulated relay
//! that applies the real relay's epoch rule, with no network and no
//! threads. Tests drive it with [`connect`], [`Member::send_text`] and
//! [`pump`], then look at what each member was shown.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hush_crypto::{Fingerprint, Identity};
use hush_proto::{EventKind, Rejection, RoomEvent, RoomName, SequencedEvent};
use hush_room::{Action, FALLBACK_COMMIT_AFTER, Room, Shown};

use crate::{entropy, keys};

/// The simulated room's name.
pub fn room_name() -> RoomName {
    RoomName::new("sim-room").expect("a valid room name")
}

/// The relay's clock, fixed.
pub const RECEIVED_AT_MS: u64 = 1_700_000_000_000;

/// The wall clock, in ms since the Unix epoch (what a client stamps on
/// what it sends).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A moment at which every pending admission or removal is overdue.
pub fn fallback_time() -> Instant {
    Instant::now() + FALLBACK_COMMIT_AFTER + Duration::from_secs(1)
}

// ─── The simulated relay ─────────────────────────────────────────────────

/// One room on a relay: a log, the room's epoch, and the real relay's
/// epoch rule (`server/src/sequencer.rs`, `check_epoch`).
#[derive(Debug, Default)]
pub struct SimRelay {
    /// Everything sequenced so far; `log[i].seq == i + 1`.
    pub log: Vec<SequencedEvent>,
    /// The room's current epoch, as the relay tracks it.
    pub epoch: u64,
    /// Every refusal, for the tests to look at.
    pub rejected: Vec<(Fingerprint, u64, Rejection)>,
}

impl SimRelay {
    /// An empty room.
    pub fn new() -> Self {
        Self {
            log: Vec::new(),
            epoch: 0,
            rejected: Vec::new(),
        }
    }

    /// The seq of the last logged event (0 for an empty log).
    pub fn last_seq(&self) -> u64 {
        self.log.len() as u64
    }

    /// The latest commit in the log.
    pub fn last_commit(&self) -> &SequencedEvent {
        self.log
            .iter()
            .rev()
            .find(|e| e.event.kind == EventKind::Commit)
            .expect("the log holds a commit")
    }

    /// What the relay does with a `Publish` from the connection of `from`.
    pub fn publish(
        &mut self,
        from: Fingerprint,
        request: u64,
        event: RoomEvent,
    ) -> Result<SequencedEvent, Rejection> {
        let verdict = if event.sender == from {
            hush_proto::msg::check_epoch(event.kind, event.epoch, self.epoch)
        } else {
            Err(Rejection::SpoofedSender)
        };
        if let Err(reason) = verdict {
            self.rejected.push((from, request, reason));
            return Err(reason);
        }
        if event.kind == EventKind::Commit {
            self.epoch = event.epoch;
        }
        Ok(self.append(event))
    }

    /// Sequences an event without any check: what a malicious relay (or
    /// one that was tampered with) can do.
    pub fn append(&mut self, event: RoomEvent) -> SequencedEvent {
        let ev = SequencedEvent {
            seq: self.last_seq() + 1,
            received_at_ms: RECEIVED_AT_MS,
            event,
        };
        self.log.push(ev.clone());
        ev
    }
}

// ─── Simulated members ───────────────────────────────────────────────────

/// One member: a real [`Room`], what it showed, what it has still to send.
pub struct Member {
    /// Who this member is.
    pub id: Arc<Identity>,
    /// Its room state machine.
    pub room: Room,
    /// Everything the user was shown, in order.
    pub shown: Vec<Shown>,
    /// Publish actions not yet sent to the relay.
    pub outbox: Vec<(u64, RoomEvent)>,
    /// Whether the relay delivers events to this member.
    pub connected: bool,
    /// Last seq handed to `room.on_event`.
    pub delivered: u64,
}

impl Member {
    /// A member of [`room_name`] who has not connected yet, drawing its
    /// secrets from the OS generator.
    pub fn new(id: Arc<Identity>, nick: &str) -> Self {
        Self {
            room: Room::new(room_name(), id.clone(), nick.into(), entropy::os()),
            id,
            shown: Vec::new(),
            outbox: Vec::new(),
            connected: false,
            delivered: 0,
        }
    }

    /// This member's fingerprint.
    pub fn fp(&self) -> Fingerprint {
        self.id.fingerprint()
    }

    /// Records what the room asked for: shows, and publishes to send.
    pub fn handle(&mut self, actions: Vec<Action>) {
        for a in actions {
            match a {
                Action::Show(ev) => self.shown.push(ev),
                Action::Publish { request, event } => self.outbox.push((request, event)),
            }
        }
    }

    /// Hands one event to the room, now.
    pub fn deliver(&mut self, ev: SequencedEvent) {
        let actions = self.room.on_event(ev, Instant::now());
        self.handle(actions);
    }

    /// The user types a message, now.
    pub fn send_text(&mut self, text: &str) {
        self.send_text_at(text, now_ms());
    }

    /// The user types a message, stamped as sent at `sent_at_ms`.
    pub fn send_text_at(&mut self, text: &str, sent_at_ms: u64) {
        let actions = self.room.send_text(text.into(), sent_at_ms);
        self.handle(actions);
    }

    /// The user changes nickname.
    pub fn set_nick(&mut self, nick: &str) {
        let actions = self.room.set_nick(nick.into(), now_ms());
        self.handle(actions);
    }

    /// The room's timer fires at `at`.
    pub fn tick(&mut self, at: Instant) {
        let actions = self.room.tick(at);
        self.handle(actions);
    }

    /// `(from, text, seq)` of every message shown.
    pub fn messages(&self) -> Vec<(Fingerprint, String, u64)> {
        self.shown
            .iter()
            .filter_map(|e| match e {
                Shown::Message {
                    from, text, seq, ..
                } => Some((*from, text.clone(), *seq)),
                _ => None,
            })
            .collect()
    }

    /// The text of every message shown.
    pub fn texts(&self) -> Vec<String> {
        self.messages().into_iter().map(|(_, t, _)| t).collect()
    }

    /// How many times `text` was shown as a message.
    pub fn count_text(&self, text: &str) -> usize {
        self.texts().iter().filter(|t| *t == text).count()
    }

    /// `(kind, from)` of every warning shown.
    pub fn warnings(&self) -> Vec<(String, Option<Fingerprint>)> {
        self.shown
            .iter()
            .filter_map(|e| match e {
                Shown::Warning { kind, from, .. } => Some((kind.clone(), *from)),
                _ => None,
            })
            .collect()
    }

    /// The kind of every warning shown.
    pub fn warning_kinds(&self) -> Vec<String> {
        self.warnings().into_iter().map(|(k, _)| k).collect()
    }

    /// The text of every notice shown.
    pub fn notices(&self) -> Vec<String> {
        self.shown
            .iter()
            .filter_map(|e| match e {
                Shown::Notice { text, .. } => Some(text.clone()),
                _ => None,
            })
            .collect()
    }

    /// The text of every error shown.
    pub fn errors(&self) -> Vec<String> {
        self.shown
            .iter()
            .filter_map(|e| match e {
                Shown::Error { text } => Some(text.clone()),
                _ => None,
            })
            .collect()
    }

    /// How many times `who` was shown joining.
    pub fn joined_shown(&self, who: Fingerprint) -> usize {
        self.shown
            .iter()
            .filter(|e| matches!(e, Shown::MemberJoined { member, .. } if *member == who))
            .count()
    }

    /// How many times `who` was shown leaving.
    pub fn left_shown(&self, who: Fingerprint) -> usize {
        self.shown
            .iter()
            .filter(|e| matches!(e, Shown::MemberLeft { member, .. } if *member == who))
            .count()
    }

    /// The first message shown whose text is `text`.
    ///
    /// # Panics
    /// If none was shown.
    pub fn shown_message(&self, text: &str) -> &Shown {
        self.shown
            .iter()
            .find(|e| matches!(e, Shown::Message { text: t, .. } if t == text))
            .unwrap_or_else(|| panic!("{text:?} was not shown: {:?}", self.shown))
    }

    /// The current epoch's roster, as this member sees it.
    pub fn roster(&self) -> Vec<Fingerprint> {
        self.room
            .members()
            .into_iter()
            .map(|(fp, _, _)| fp)
            .collect()
    }

    /// Forgets what was shown so far (to look at one step's output).
    pub fn clear_shown(&mut self) {
        self.shown.clear();
    }
}

/// Sends every member's queued publishes to the relay; rejections go back
/// to the member. Returns whether anything was sent.
pub fn flush(relay: &mut SimRelay, members: &mut [&mut Member]) -> bool {
    let mut any = false;
    for m in members.iter_mut() {
        let outbox = std::mem::take(&mut m.outbox);
        for (request, event) in outbox {
            any = true;
            if let Err(reason) = relay.publish(m.fp(), request, event) {
                let actions = m.room.on_rejected(request, reason, Instant::now());
                m.handle(actions);
            }
        }
    }
    any
}

/// Delivers every logged event a connected member has not had yet, in
/// order. Returns whether anything was delivered.
pub fn deliver(relay: &SimRelay, members: &mut [&mut Member]) -> bool {
    let mut any = false;
    for m in members.iter_mut().filter(|m| m.connected) {
        while m.delivered < relay.last_seq() {
            let ev = relay.log[usize::try_from(m.delivered).expect("a log index")].clone();
            m.delivered = ev.seq;
            m.deliver(ev);
            any = true;
        }
    }
    any
}

/// Runs publish / deliver rounds until nothing moves.
pub fn pump(relay: &mut SimRelay, members: &mut [&mut Member]) {
    assert!(
        pump_at_most(relay, members, 1000),
        "the simulated room never settled"
    );
}

/// Like [`pump`], for at most `rounds` rounds; whether it settled.
pub fn pump_at_most(relay: &mut SimRelay, members: &mut [&mut Member], rounds: usize) -> bool {
    for _ in 0..rounds {
        let sent = flush(relay, members);
        let delivered = deliver(relay, members);
        if !sent && !delivered {
            return true;
        }
    }
    false
}

/// Connects `newcomer` like the real client: joined (with who is online),
/// backfill of everything logged, backfill done, caught up. The others
/// connected see it come online. Nothing is published yet.
pub fn connect(relay: &SimRelay, newcomer: &mut Member, others: &mut [&mut Member]) {
    let now = Instant::now();
    let mut online: Vec<Fingerprint> = others
        .iter()
        .filter(|m| m.connected)
        .map(|m| m.fp())
        .collect();
    online.push(newcomer.fp());
    online.sort();
    online.dedup();
    for o in others.iter_mut().filter(|o| o.connected) {
        o.room.on_presence(newcomer.fp(), true);
    }
    newcomer.room.on_joined(&online);
    newcomer.connected = true;
    while newcomer.delivered < relay.last_seq() {
        let ev = relay.log[usize::try_from(newcomer.delivered).expect("a log index")].clone();
        newcomer.delivered = ev.seq;
        newcomer.deliver(ev);
    }
    let actions = newcomer.room.on_backfill_done(relay.last_seq(), now);
    newcomer.handle(actions);
    let actions = newcomer.room.caught_up(now);
    newcomer.handle(actions);
}

/// The member goes offline for everybody else (its room keeps its state).
pub fn disconnect(leaver: &mut Member, others: &mut [&mut Member]) {
    leaver.connected = false;
    for o in others.iter_mut().filter(|o| o.connected) {
        o.room.on_presence(leaver.fp(), false);
    }
}

/// Alice creates the room; bob then carol join and are admitted.
pub fn three_members() -> (SimRelay, Member, Member, Member) {
    let mut relay = SimRelay::new();
    let mut alice = Member::new(keys::alice(), "alice");
    let mut bob = Member::new(keys::bob(), "bob");
    let mut carol = Member::new(keys::carol(), "carol");
    connect(&relay, &mut alice, &mut []);
    pump(&mut relay, &mut [&mut alice]);
    connect(&relay, &mut bob, &mut [&mut alice]);
    pump(&mut relay, &mut [&mut alice, &mut bob]);
    connect(&relay, &mut carol, &mut [&mut alice, &mut bob]);
    pump(&mut relay, &mut [&mut alice, &mut bob, &mut carol]);
    for m in [&alice, &bob, &carol] {
        assert!(m.room.is_member(), "everyone is admitted: {:?}", m.shown);
        assert_eq!(m.room.epoch(), relay.epoch);
    }
    (relay, alice, bob, carol)
}

/// Two members: alice created the room, bob was admitted.
pub fn two_members() -> (SimRelay, Member, Member) {
    let mut relay = SimRelay::new();
    let mut alice = Member::new(keys::alice(), "alice");
    let mut bob = Member::new(keys::bob(), "bob");
    connect(&relay, &mut alice, &mut []);
    pump(&mut relay, &mut [&mut alice]);
    connect(&relay, &mut bob, &mut [&mut alice]);
    pump(&mut relay, &mut [&mut alice, &mut bob]);
    assert!(alice.room.is_member() && bob.room.is_member());
    (relay, alice, bob)
}

/// Asserts that none of `members` was shown an error.
pub fn no_errors(members: &[&Member]) {
    for m in members {
        assert!(m.errors().is_empty(), "errors shown: {:?}", m.errors());
    }
}

/// Alice and bob; alice says "first", then "written long ago" stamped
/// three hours before the relay's clock. Returns bob, who received both
/// and showed what he was shown, and the stamp (ms since the Unix epoch).
pub fn a_message_written_hours_ago() -> (Member, u64) {
    let (mut relay, mut alice, mut bob) = two_members();
    alice.send_text("first");
    pump(&mut relay, &mut [&mut alice, &mut bob]);
    // Three hours before the relay's clock.
    let three_hours_ago =
        relay.log.last().expect("a logged message").received_at_ms - 3 * 3600 * 1000;
    alice.send_text_at("written long ago", three_hours_ago);
    pump(&mut relay, &mut [&mut alice, &mut bob]);
    (bob, three_hours_ago)
}
