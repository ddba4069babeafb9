//! An in-memory room: several [`Room`](hush_room::Room)s talking through
//! a simulated relay that applies the real relay's epoch rule, with no
//! network and no threads. Each member's room is driven as the client
//! drives it, through `Room::on_connected` and `Room::on_relay` with the
//! relay messages the real relay would send. Tests drive it with
//! [`connect`], [`Member::send_text`] and [`pump`], then look at what
//! each member was shown.

use std::time::{Duration, Instant};

use hush_crypto::Fingerprint;
use hush_proto::{ClientMsg, EventKind, Rejection, RelayMsg, RoomEvent, RoomName, SequencedEvent};
use hush_room::FALLBACK_COMMIT_AFTER;

use crate::keys;

mod member;
pub use member::Member;

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

/// One room on a relay: a log, the highest epoch a commit opened, and the
/// real relay's epoch rule (`server/src/sequencer.rs`, `check_epoch`): it
/// sequences every commit that can name a real epoch, and members choose.
#[derive(Debug, Default)]
pub struct SimRelay {
    /// Everything sequenced so far; `log[i].seq == i + 1`.
    pub log: Vec<SequencedEvent>,
    /// The highest epoch any sequenced commit opens (members may be at a
    /// lower one: they skip commits that are invalid or lost a race).
    pub epoch: u64,
    /// Every refusal, for the tests to look at.
    pub rejected: Vec<(Fingerprint, u64, Rejection)>,
    /// At most this many events per backfill answer (`None`: all at once).
    pub backfill_page: Option<usize>,
}

impl SimRelay {
    /// An empty room.
    pub fn new() -> Self {
        Self {
            log: Vec::new(),
            epoch: 0,
            rejected: Vec::new(),
            backfill_page: None,
        }
    }

    /// The seq of the last logged event (0 for an empty log).
    pub fn last_seq(&self) -> u64 {
        self.log.len() as u64
    }

    /// The hash-chain head after the last logged event.
    pub fn head(&self) -> [u8; 32] {
        self.log
            .iter()
            .fold([0; 32], |head, ev| hush_proto::e2e::chain_next(&head, ev))
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
            self.epoch = self.epoch.max(event.epoch);
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

/// Sends every member's queued publishes to the relay; rejections go back
/// to the member. Returns whether anything was sent.
pub fn flush(relay: &mut SimRelay, members: &mut [&mut Member]) -> bool {
    let mut any = false;
    for m in members.iter_mut() {
        let outbox = std::mem::take(&mut m.outbox);
        for (request, event) in outbox {
            any = true;
            let room = event.room.clone();
            if let Err(reason) = relay.publish(m.fp(), request, event) {
                m.receive(RelayMsg::Rejected {
                    request,
                    room,
                    reason,
                });
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
            let ev = relay.log[log_index(m.delivered)].clone();
            m.delivered = ev.seq;
            m.deliver(ev);
            any = true;
        }
    }
    any
}

fn log_index(seq: u64) -> usize {
    usize::try_from(seq).expect("a log index")
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

/// Connects `newcomer` like the real client: the link comes up
/// (`Room::on_connected`), and the relay answers each link message its
/// room sends, until it sends no more: `Join` with `Joined` (who is
/// online; the others connected see it come online), each `Backfill`
/// with the logged events after it and `BackfillDone` (in pages of
/// [`SimRelay::backfill_page`] events, if set). The room then catches up
/// and asks for a checkpoint, which the simulated relay does not sign
/// (tests that need one build it). Nothing is published yet.
pub fn connect(relay: &SimRelay, newcomer: &mut Member, others: &mut [&mut Member]) {
    let actions = newcomer.room.on_connected(hush_proto::DEFAULT_MAX_FRAME);
    newcomer.handle(actions);
    while let Some(msg) = newcomer.link.get(newcomer.answered).cloned() {
        newcomer.answered += 1;
        match msg {
            ClientMsg::Join { room } => {
                let mut online: Vec<Fingerprint> = others
                    .iter()
                    .filter(|m| m.connected)
                    .map(|m| m.fp())
                    .collect();
                online.push(newcomer.fp());
                online.sort();
                online.dedup();
                for o in others.iter_mut().filter(|o| o.connected) {
                    o.receive(RelayMsg::Presence {
                        room: room.clone(),
                        member: newcomer.fp(),
                        online: true,
                    });
                }
                newcomer.connected = true;
                newcomer.receive(RelayMsg::Joined {
                    room,
                    head_seq: relay.last_seq(),
                    epoch: relay.epoch,
                    online,
                });
            }
            ClientMsg::Backfill { room, after_seq } => {
                let last = relay.last_seq();
                let up_to = match relay.backfill_page {
                    Some(page) => after_seq.saturating_add(page as u64).min(last),
                    None => last,
                }
                .max(after_seq);
                for seq in after_seq + 1..=up_to {
                    newcomer.deliver(relay.log[log_index(seq - 1)].clone());
                }
                newcomer.delivered = newcomer.delivered.max(up_to);
                newcomer.receive(RelayMsg::BackfillDone {
                    room,
                    up_to,
                    complete: up_to >= last,
                });
            }
            // No signing key: checkpoint requests go unanswered. Leave,
            // and the messages a room never sends, are only recorded.
            _ => {}
        }
    }
}

/// The member goes offline for everybody else (its room keeps its state).
pub fn disconnect(leaver: &mut Member, others: &mut [&mut Member]) {
    leaver.connected = false;
    for o in others.iter_mut().filter(|o| o.connected) {
        o.receive(RelayMsg::Presence {
            room: room_name(),
            member: leaver.fp(),
            online: false,
        });
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
