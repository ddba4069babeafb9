#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! End-to-end room logic in memory: several [`Room`]s talking through a
//! simulated relay that applies the real relay's epoch rule, with no
//! network and no threads.
//!
//! Each test asserts what a user would notice: which messages, warnings,
//! notices and membership changes each member's screen shows.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use hush_crypto::{Fingerprint, Identity};
use hush_proto::e2e::{self, EVENT_SIGNATURE_CONTEXT, Payload, SealedMessage, SignedBody};
use hush_proto::msg::{decode, encode};
use hush_proto::{EventKind, Rejection, RoomEvent, RoomName, SequencedEvent};
use hush_room::{Action, FALLBACK_COMMIT_AFTER, Room, Shown};

// ─── Identities ──────────────────────────────────────────────────────────

fn load(slot: &'static OnceLock<Arc<Identity>>, pem: &str) -> Arc<Identity> {
    slot.get_or_init(|| Arc::new(Identity::from_pem(pem, None).expect("example key")))
        .clone()
}

fn alice_id() -> Arc<Identity> {
    static K: OnceLock<Arc<Identity>> = OnceLock::new();
    load(&K, include_str!("../../keys.example/alice.pem"))
}

fn bob_id() -> Arc<Identity> {
    static K: OnceLock<Arc<Identity>> = OnceLock::new();
    load(&K, include_str!("../../keys.example/bob.pem"))
}

fn carol_id() -> Arc<Identity> {
    static K: OnceLock<Arc<Identity>> = OnceLock::new();
    load(&K, include_str!("../../keys.example/carol.pem"))
}

fn mallory_id() -> Arc<Identity> {
    static K: OnceLock<Arc<Identity>> = OnceLock::new();
    load(&K, include_str!("../../keys.example/mallory.pem"))
}

fn room_name() -> RoomName {
    RoomName::new("sim-room").unwrap()
}

/// The relay's clock, fixed.
const RECEIVED_AT_MS: u64 = 1_700_000_000_000;

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A moment at which every pending admission or removal is overdue.
fn fallback_time() -> Instant {
    Instant::now() + FALLBACK_COMMIT_AFTER + Duration::from_secs(1)
}

// ─── The simulated relay ─────────────────────────────────────────────────

/// One room on a relay: a log, the room's epoch, and the real relay's
/// epoch rule (`server/src/sequencer.rs`, `check_epoch`).
struct SimRelay {
    log: Vec<SequencedEvent>,
    epoch: u64,
    /// Every refusal, for the tests to look at.
    rejected: Vec<(Fingerprint, u64, Rejection)>,
}

impl SimRelay {
    fn new() -> Self {
        Self {
            log: Vec::new(),
            epoch: 0,
            rejected: Vec::new(),
        }
    }

    fn last_seq(&self) -> u64 {
        self.log.len() as u64
    }

    /// The latest commit in the log.
    fn last_commit(&self) -> &SequencedEvent {
        self.log
            .iter()
            .rev()
            .find(|e| e.event.kind == EventKind::Commit)
            .expect("the log holds a commit")
    }

    /// What the relay does with a `Publish` from the connection of `from`.
    fn publish(
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
    fn append(&mut self, event: RoomEvent) -> SequencedEvent {
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

struct Member {
    id: Arc<Identity>,
    room: Room,
    /// Everything the user was shown, in order.
    shown: Vec<Shown>,
    /// Publish actions not yet sent to the relay.
    outbox: Vec<(u64, RoomEvent)>,
    /// Whether the relay delivers events to this member.
    connected: bool,
    /// Last seq handed to `room.on_event`.
    delivered: u64,
}

impl Member {
    fn new(id: Arc<Identity>, nick: &str) -> Self {
        Self {
            room: Room::new(room_name(), id.clone(), nick.into()),
            id,
            shown: Vec::new(),
            outbox: Vec::new(),
            connected: false,
            delivered: 0,
        }
    }

    fn fp(&self) -> Fingerprint {
        self.id.fingerprint()
    }

    fn handle(&mut self, actions: Vec<Action>) {
        for a in actions {
            match a {
                Action::Show(ev) => self.shown.push(ev),
                Action::Publish { request, event } => self.outbox.push((request, event)),
            }
        }
    }

    fn deliver(&mut self, ev: SequencedEvent) {
        let actions = self.room.on_event(ev, Instant::now());
        self.handle(actions);
    }

    fn send_text(&mut self, text: &str) {
        let actions = self.room.send_text(text.into(), now_ms());
        self.handle(actions);
    }

    fn set_nick(&mut self, nick: &str) {
        let actions = self.room.set_nick(nick.into(), now_ms());
        self.handle(actions);
    }

    fn tick(&mut self, at: Instant) {
        let actions = self.room.tick(at);
        self.handle(actions);
    }

    /// `(from, text, seq)` of every message shown.
    fn messages(&self) -> Vec<(Fingerprint, String, u64)> {
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

    fn texts(&self) -> Vec<String> {
        self.messages().into_iter().map(|(_, t, _)| t).collect()
    }

    fn count_text(&self, text: &str) -> usize {
        self.texts().iter().filter(|t| *t == text).count()
    }

    fn warnings(&self) -> Vec<(String, Option<Fingerprint>)> {
        self.shown
            .iter()
            .filter_map(|e| match e {
                Shown::Warning { kind, from, .. } => Some((kind.clone(), *from)),
                _ => None,
            })
            .collect()
    }

    fn warning_kinds(&self) -> Vec<String> {
        self.warnings().into_iter().map(|(k, _)| k).collect()
    }

    fn notices(&self) -> Vec<String> {
        self.shown
            .iter()
            .filter_map(|e| match e {
                Shown::Notice { text, .. } => Some(text.clone()),
                _ => None,
            })
            .collect()
    }

    fn errors(&self) -> Vec<String> {
        self.shown
            .iter()
            .filter_map(|e| match e {
                Shown::Error { text } => Some(text.clone()),
                _ => None,
            })
            .collect()
    }

    fn joined_shown(&self, who: Fingerprint) -> usize {
        self.shown
            .iter()
            .filter(|e| matches!(e, Shown::MemberJoined { member, .. } if *member == who))
            .count()
    }

    fn left_shown(&self, who: Fingerprint) -> usize {
        self.shown
            .iter()
            .filter(|e| matches!(e, Shown::MemberLeft { member, .. } if *member == who))
            .count()
    }

    fn roster(&self) -> Vec<Fingerprint> {
        self.room
            .members()
            .into_iter()
            .map(|(fp, _, _)| fp)
            .collect()
    }

    /// Forgets what was shown so far (to look at one step's output).
    fn clear_shown(&mut self) {
        self.shown.clear();
    }
}

/// Sends every member's queued publishes to the relay; rejections go back
/// to the member. Returns whether anything was sent.
fn flush(relay: &mut SimRelay, members: &mut [&mut Member]) -> bool {
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
fn deliver(relay: &SimRelay, members: &mut [&mut Member]) -> bool {
    let mut any = false;
    for m in members.iter_mut().filter(|m| m.connected) {
        while m.delivered < relay.last_seq() {
            let ev = relay.log[usize::try_from(m.delivered).unwrap()].clone();
            m.delivered = ev.seq;
            m.deliver(ev);
            any = true;
        }
    }
    any
}

/// Runs publish / deliver rounds until nothing moves.
fn pump(relay: &mut SimRelay, members: &mut [&mut Member]) {
    assert!(
        pump_at_most(relay, members, 1000),
        "the simulated room never settled"
    );
}

/// Like [`pump`], for at most `rounds` rounds; whether it settled.
fn pump_at_most(relay: &mut SimRelay, members: &mut [&mut Member], rounds: usize) -> bool {
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
fn connect(relay: &SimRelay, newcomer: &mut Member, others: &mut [&mut Member]) {
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
        let ev = relay.log[usize::try_from(newcomer.delivered).unwrap()].clone();
        newcomer.delivered = ev.seq;
        newcomer.deliver(ev);
    }
    let actions = newcomer.room.on_backfill_done(relay.last_seq(), now);
    newcomer.handle(actions);
    let actions = newcomer.room.caught_up(now);
    newcomer.handle(actions);
}

/// The member goes offline for everybody else (its room keeps its state).
fn disconnect(leaver: &mut Member, others: &mut [&mut Member]) {
    leaver.connected = false;
    for o in others.iter_mut().filter(|o| o.connected) {
        o.room.on_presence(leaver.fp(), false);
    }
}

/// Alice creates the room; bob then carol join and are admitted.
fn three_members() -> (SimRelay, Member, Member, Member) {
    let mut relay = SimRelay::new();
    let mut alice = Member::new(alice_id(), "alice");
    let mut bob = Member::new(bob_id(), "bob");
    let mut carol = Member::new(carol_id(), "carol");
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
fn two_members() -> (SimRelay, Member, Member) {
    let mut relay = SimRelay::new();
    let mut alice = Member::new(alice_id(), "alice");
    let mut bob = Member::new(bob_id(), "bob");
    connect(&relay, &mut alice, &mut []);
    pump(&mut relay, &mut [&mut alice]);
    connect(&relay, &mut bob, &mut [&mut alice]);
    pump(&mut relay, &mut [&mut alice, &mut bob]);
    assert!(alice.room.is_member() && bob.room.is_member());
    (relay, alice, bob)
}

fn no_errors(members: &[&Member]) {
    for m in members {
        assert!(m.errors().is_empty(), "errors shown: {:?}", m.errors());
    }
}

fn signed_body(ev: &RoomEvent) -> SignedBody {
    decode(&ev.body).expect("a signed body")
}

fn sealed(ev: &RoomEvent) -> SealedMessage {
    match decode::<Payload>(&signed_body(ev).payload).expect("a payload") {
        Payload::Message(m) => m,
        other => panic!("not a message: {other:?}"),
    }
}

/// Signs `payload` as `id` under the given envelope, the way a client does.
fn sign_event(
    id: &Identity,
    sender: Fingerprint,
    kind: EventKind,
    epoch: u64,
    payload: &Payload,
) -> RoomEvent {
    let payload = encode(payload);
    let digest = e2e::signing_digest(&room_name(), &sender, kind, epoch, &payload);
    let signature = id
        .sign(EVENT_SIGNATURE_CONTEXT, &digest)
        .unwrap()
        .into_bytes();
    RoomEvent {
        room: room_name(),
        sender,
        kind,
        epoch,
        body: encode(&SignedBody { payload, signature }),
    }
}

/// A commit payload signed by `by` for the relay's next epoch.
fn commit_signed_by(relay: &SimRelay, by: &Identity, payload: &Payload) -> RoomEvent {
    sign_event(
        by,
        by.fingerprint(),
        EventKind::Commit,
        relay.epoch + 1,
        payload,
    )
}

/// `people` as roster entries, all nicknamed "x".
fn roster_of(people: &[Arc<Identity>]) -> Vec<e2e::Member> {
    people
        .iter()
        .map(|p| e2e::Member {
            public_key: p.public().spki_der().to_vec(),
            nick: "x".into(),
        })
        .collect()
}

/// A fresh random epoch key wrapped to each of `people`.
fn envelopes_for(people: &[Arc<Identity>]) -> Vec<e2e::KeyEnvelope> {
    let key = hush_crypto::Secret32::random();
    people
        .iter()
        .map(|p| e2e::KeyEnvelope {
            member: p.fingerprint(),
            wrapped: p
                .public()
                .wrap(e2e::EPOCH_KEY_LABEL, &key)
                .unwrap()
                .as_bytes()
                .to_vec(),
        })
        .collect()
}

/// A commit opening the relay's next epoch, made and signed by `by` with
/// a fresh key for `people`: what a member's client would build, for tests
/// that need a commit no honest client makes.
fn forged_commit(
    relay: &SimRelay,
    by: &Identity,
    people: &[Arc<Identity>],
    settings: &e2e::RoomSettings,
) -> RoomEvent {
    let payload = Payload::Commit(e2e::Commit {
        parent_epoch: relay.epoch,
        committer_key: by.public().spki_der().to_vec(),
        members: roster_of(people),
        envelopes: envelopes_for(people),
        settings: settings.clone(),
        history: Vec::new(),
    });
    commit_signed_by(relay, by, &payload)
}

/// A sealed message with a random (wrong) key: what someone without the
/// epoch key can produce.
fn garbage_message() -> Payload {
    let mut ciphertext = vec![0u8; 48];
    hush_crypto::random_bytes(&mut ciphertext);
    let mut session = [0u8; 16];
    hush_crypto::random_bytes(&mut session);
    Payload::Message(SealedMessage {
        session,
        counter: 1,
        sent_at_ms: now_ms(),
        seen_seq: 0,
        seen_head: [0; 32],
        ciphertext,
    })
}

// ─── 1. Create, admit, talk ──────────────────────────────────────────────

#[test]
fn create_admit_and_talk() {
    let mut relay = SimRelay::new();
    let mut alice = Member::new(alice_id(), "alice");
    let mut bob = Member::new(bob_id(), "bob");
    let mut carol = Member::new(carol_id(), "carol");

    // The first member opens epoch 1.
    connect(&relay, &mut alice, &mut []);
    assert!(
        alice.notices().iter().any(|n| n.contains("is new")),
        "{:?}",
        alice.shown
    );
    pump(&mut relay, &mut [&mut alice]);
    assert_eq!(relay.epoch, 1);
    assert_eq!(alice.room.epoch(), 1);
    assert!(alice.room.is_member());
    assert!(alice.shown.iter().any(|e| matches!(
        e,
        Shown::Joined { epoch: 1, me, .. } if *me == alice.fp()
    )));

    // Bob asks and is admitted without anyone doing anything.
    connect(&relay, &mut bob, &mut [&mut alice]);
    assert!(!bob.room.is_member());
    pump(&mut relay, &mut [&mut alice, &mut bob]);
    assert!(bob.room.is_member());
    assert_eq!(relay.epoch, 2);
    assert_eq!(alice.joined_shown(bob.fp()), 1, "{:?}", alice.shown);
    assert!(bob.shown.iter().any(|e| matches!(
        e,
        Shown::Epoch { epoch: 2, members, .. } if members.len() == 2
    )));
    assert!(
        bob.shown
            .iter()
            .any(|e| matches!(e, Shown::Joined { epoch: 2, .. }))
    );

    // Carol too.
    connect(&relay, &mut carol, &mut [&mut alice, &mut bob]);
    pump(&mut relay, &mut [&mut alice, &mut bob, &mut carol]);
    assert!(carol.room.is_member());
    assert_eq!(relay.epoch, 3);
    assert_eq!(alice.joined_shown(carol.fp()), 1);
    assert_eq!(bob.joined_shown(carol.fp()), 1);
    for m in [&alice, &bob, &carol] {
        assert_eq!(m.room.epoch(), 3);
        let mut roster = m.roster();
        roster.sort();
        let mut expected = vec![alice.fp(), bob.fp(), carol.fp()];
        expected.sort();
        assert_eq!(roster, expected);
    }

    alice.send_text("hello");
    pump(&mut relay, &mut [&mut alice, &mut bob, &mut carol]);
    for m in [&alice, &bob, &carol] {
        let msgs = m.messages();
        assert_eq!(msgs.len(), 1, "{:?}", m.shown);
        assert_eq!(msgs[0].0, alice.fp());
        assert_eq!(msgs[0].1, "hello");
        assert!(m.warnings().is_empty(), "{:?}", m.warnings());
    }
    no_errors(&[&alice, &bob, &carol]);
    assert!(relay.rejected.is_empty(), "{:?}", relay.rejected);
}

// ─── 2. Tampering ────────────────────────────────────────────────────────

/// Alice, bob, carol; alice says "hello", which `tamper` alters in the
/// relay's log before anyone receives it. Bob must not show it, must show a
/// warning of one of `kinds`, and must still show alice's next message.
fn tamper_case(what: &str, kinds: &[&str], tamper: impl FnOnce(&mut RoomEvent)) {
    let (mut relay, mut alice, mut bob, mut carol) = three_members();
    for m in [&mut alice, &mut bob, &mut carol] {
        m.clear_shown();
    }
    alice.send_text("hello");
    flush(&mut relay, &mut [&mut alice]);
    let at = relay.log.len() - 1;
    let original = relay.log[at].event.clone();
    tamper(&mut relay.log[at].event);
    assert_ne!(
        relay.log[at].event, original,
        "{what}: tampering changed nothing"
    );
    pump(&mut relay, &mut [&mut alice, &mut bob, &mut carol]);

    // Every problem is collected, so one failure tells the whole story.
    let mut problems = Vec::new();
    for (who, m) in [("bob", &bob), ("carol", &carol)] {
        if m.count_text("hello") != 0 {
            problems.push(format!("{who} showed the tampered message"));
        }
        if !m
            .warning_kinds()
            .iter()
            .any(|k| kinds.contains(&k.as_str()))
        {
            problems.push(format!(
                "{who} showed no warning of kind {kinds:?} (shown: {:?})",
                m.shown
            ));
        }
    }

    // The room goes on.
    alice.send_text("still here");
    pump(&mut relay, &mut [&mut alice, &mut bob, &mut carol]);
    for (who, m) in [("bob", &bob), ("carol", &carol)] {
        if m.count_text("still here") != 1 {
            problems.push(format!(
                "{who} did not show alice's next genuine message (last_seq {} of {})",
                m.room.last_seq(),
                relay.last_seq()
            ));
        }
    }
    for (who, m) in [("alice", &alice), ("bob", &bob), ("carol", &carol)] {
        if !m.errors().is_empty() {
            problems.push(format!("{who} showed errors {:?}", m.errors()));
        }
    }
    assert!(problems.is_empty(), "{what}:\n  {}", problems.join("\n  "));
}

fn edit_body(ev: &mut RoomEvent, f: impl FnOnce(&mut SignedBody)) {
    let mut body = signed_body(ev);
    f(&mut body);
    ev.body = encode(&body);
}

fn edit_sealed(ev: &mut RoomEvent, f: impl FnOnce(&mut SealedMessage)) {
    edit_body(ev, |body| {
        let Payload::Message(mut m) = decode::<Payload>(&body.payload).unwrap() else {
            panic!("not a message");
        };
        f(&mut m);
        body.payload = encode(&Payload::Message(m));
    });
}

#[test]
fn tamper_signature_first_byte() {
    tamper_case("signature[0]", &["bad_signature"], |ev| {
        edit_body(ev, |b| b.signature[0] ^= 0x01);
    });
}

#[test]
fn tamper_signature_middle_byte() {
    tamper_case("signature[mid]", &["bad_signature"], |ev| {
        edit_body(ev, |b| {
            let mid = b.signature.len() / 2;
            b.signature[mid] ^= 0x80;
        });
    });
}

#[test]
fn tamper_signature_last_byte() {
    tamper_case("signature[last]", &["bad_signature"], |ev| {
        edit_body(ev, |b| {
            let last = b.signature.len() - 1;
            b.signature[last] ^= 0x10;
        });
    });
}

#[test]
fn tamper_signature_truncated() {
    tamper_case("signature truncated", &["bad_signature"], |ev| {
        edit_body(ev, |b| {
            b.signature.pop();
        });
    });
}

#[test]
fn tamper_ciphertext_first_byte() {
    tamper_case("ciphertext[0]", &["bad_signature"], |ev| {
        edit_sealed(ev, |m| m.ciphertext[0] ^= 0x01);
    });
}

#[test]
fn tamper_ciphertext_tag() {
    tamper_case("ciphertext tag", &["bad_signature"], |ev| {
        edit_sealed(ev, |m| {
            let last = m.ciphertext.len() - 1;
            m.ciphertext[last] ^= 0x40;
        });
    });
}

#[test]
fn tamper_header_counter() {
    tamper_case("counter", &["bad_signature"], |ev| {
        edit_sealed(ev, |m| m.counter += 1);
    });
}

#[test]
fn tamper_header_session() {
    tamper_case("session", &["bad_signature"], |ev| {
        edit_sealed(ev, |m| m.session[3] ^= 0x08);
    });
}

#[test]
fn tamper_header_sent_at() {
    tamper_case("sent_at_ms", &["bad_signature"], |ev| {
        edit_sealed(ev, |m| m.sent_at_ms -= 3_600_000);
    });
}

#[test]
fn tamper_header_seen_head() {
    tamper_case("seen_head", &["bad_signature"], |ev| {
        edit_sealed(ev, |m| m.seen_head[0] ^= 0xff);
    });
}

/// Raw bit flips across the encoded body: in the length prefix, the
/// payload's variant tag, the middle and the end.
#[test]
fn tamper_raw_body_bytes() {
    for pick in [0usize, 1, 2, 3, 20, 200, usize::MAX / 2, usize::MAX] {
        tamper_case(
            &format!("raw body byte {pick}"),
            &["malformed", "bad_signature", "undecryptable"],
            |ev| {
                let len = ev.body.len();
                let at = match pick {
                    usize::MAX => len - 1,
                    p if p == usize::MAX / 2 => len / 2,
                    p => p,
                };
                ev.body[at] ^= 0x01;
            },
        );
    }
}

#[test]
fn tamper_body_trailing_byte() {
    tamper_case("trailing byte", &["malformed"], |ev| ev.body.push(0));
}

#[test]
fn tamper_body_truncated() {
    tamper_case("truncated body", &["malformed"], |ev| {
        ev.body.truncate(ev.body.len() / 2);
    });
}

/// The epoch field moved to an earlier epoch the members know (alice was a
/// member of it): the signature covers the epoch.
#[test]
fn tamper_envelope_epoch_earlier() {
    tamper_case("epoch - 1", &["bad_signature"], |ev| ev.epoch -= 1);
}

/// The epoch field moved to one the room has not reached (the real relay
/// refuses this from a client; a tampered log can still hold it).
#[test]
fn tamper_envelope_epoch_future() {
    tamper_case(
        "epoch + 1",
        &[
            "bad_signature",
            "malformed",
            "not_member",
            "undecryptable",
            "missing_commit",
        ],
        |ev| ev.epoch += 1,
    );
}

#[test]
fn tamper_envelope_kind_commit() {
    tamper_case("kind Commit", &["malformed"], |ev| {
        ev.kind = EventKind::Commit
    });
}

#[test]
fn tamper_envelope_kind_leave() {
    tamper_case("kind Leave", &["malformed"], |ev| {
        ev.kind = EventKind::Leave
    });
}

#[test]
fn tamper_envelope_kind_join_request() {
    tamper_case("kind JoinRequest", &["malformed"], |ev| {
        ev.kind = EventKind::JoinRequest;
    });
}

#[test]
fn tamper_envelope_kind_control() {
    tamper_case("kind Control", &["malformed"], |ev| {
        ev.kind = EventKind::Control
    });
}

#[test]
fn tamper_envelope_sender_bob() {
    tamper_case("sender bob", &["bad_signature"], |ev| {
        ev.sender = bob_id().fingerprint()
    });
}

#[test]
fn tamper_envelope_sender_mallory() {
    tamper_case("sender mallory", &["not_member", "bad_signature"], |ev| {
        ev.sender = mallory_id().fingerprint();
    });
}

#[test]
fn tamper_envelope_room_name() {
    tamper_case(
        "room name",
        &["bad_signature", "malformed", "wrong_room"],
        |ev| ev.room = RoomName::new("other-room").unwrap(),
    );
}

/// A member (carol) who holds the epoch key and signs properly, but sends
/// a ciphertext that does not open: shown as undecryptable, attributed to
/// carol, never as a message.
#[test]
fn member_sends_undecryptable_message() {
    let (mut relay, mut alice, mut bob, mut carol) = three_members();
    let epoch = relay.epoch;
    let ev = sign_event(
        &carol_id(),
        carol.fp(),
        EventKind::Message,
        epoch,
        &garbage_message(),
    );
    relay.publish(carol.fp(), 900, ev).unwrap();
    pump(&mut relay, &mut [&mut alice, &mut bob, &mut carol]);
    for m in [&alice, &bob] {
        assert!(m.messages().is_empty(), "{:?}", m.shown);
        assert!(
            m.warnings()
                .iter()
                .any(|(k, from)| k == "undecryptable" && *from == Some(carol.fp())),
            "{:?}",
            m.shown
        );
    }
}

// ─── 3. Replay ───────────────────────────────────────────────────────────

#[test]
fn replayed_message_is_dropped() {
    let (mut relay, mut alice, mut bob, mut carol) = three_members();
    alice.send_text("hello");
    pump(&mut relay, &mut [&mut alice, &mut bob, &mut carol]);
    assert_eq!(bob.count_text("hello"), 1);
    let original = relay
        .log
        .iter()
        .rev()
        .find(|e| e.event.kind == EventKind::Message)
        .unwrap()
        .clone();

    // The relay sequences the very same event again.
    let replayed = relay
        .publish(alice.fp(), 999, original.event.clone())
        .unwrap();
    assert_ne!(replayed.seq, original.seq);
    pump(&mut relay, &mut [&mut alice, &mut bob, &mut carol]);

    for m in [&bob, &carol, &alice] {
        assert_eq!(m.count_text("hello"), 1, "shown twice: {:?}", m.shown);
        assert!(
            m.warnings()
                .iter()
                .any(|(k, from)| k == "replay" && *from == Some(alice.fp())),
            "{:?}",
            m.shown
        );
    }
    no_errors(&[&alice, &bob, &carol]);
}

// ─── 4. Leave ────────────────────────────────────────────────────────────

#[test]
fn leave_rekeys_without_the_leaver() {
    let (mut relay, mut alice, mut bob, mut carol) = three_members();
    let epoch_before = relay.epoch;
    for m in [&mut alice, &mut bob, &mut carol] {
        m.clear_shown();
    }

    // Carol leaves: her Leave is sequenced and delivered, then her client
    // quits (it goes offline), as the real one does.
    let actions = carol.room.leave();
    carol.handle(actions);
    assert_eq!(carol.outbox.len(), 1);
    assert_eq!(carol.outbox[0].1.kind, EventKind::Leave);
    pump(&mut relay, &mut [&mut alice, &mut bob, &mut carol]);
    disconnect(&mut carol, &mut [&mut alice, &mut bob]);
    // Carol's room keeps being fed (a stale connection, or a relay that
    // keeps sending): it must still not read what follows.
    carol.connected = true;

    // The periodic tick: the designated remaining member commits.
    let now = Instant::now();
    alice.tick(now);
    bob.tick(now);
    pump(&mut relay, &mut [&mut alice, &mut bob, &mut carol]);

    let designated = alice.fp().min(bob.fp());
    assert_eq!(relay.epoch, epoch_before + 1, "one commit removed carol");
    let commit = relay.last_commit();
    assert_eq!(
        commit.event.sender, designated,
        "the designated member (lowest online fingerprint) committed"
    );
    for m in [&alice, &bob] {
        assert_eq!(m.room.epoch(), epoch_before + 1);
        assert_eq!(m.left_shown(carol.fp()), 1, "{:?}", m.shown);
        assert!(!m.roster().contains(&carol.fp()));
        assert!(m.room.is_member());
    }
    assert!(!carol.room.is_member(), "carol is no longer a member");

    alice.send_text("secret after carol left");
    pump(&mut relay, &mut [&mut alice, &mut bob, &mut carol]);
    assert_eq!(bob.count_text("secret after carol left"), 1);
    assert_eq!(alice.count_text("secret after carol left"), 1);
    assert_eq!(
        carol.count_text("secret after carol left"),
        0,
        "the leaver read a message of the next epoch"
    );
    assert!(carol.messages().is_empty(), "{:?}", carol.messages());
    assert!(!carol.room.is_member());
    no_errors(&[&alice, &bob, &carol]);
}

// ─── 5. Concurrent commits ───────────────────────────────────────────────

/// Alice and bob both admit carol before either commit is sequenced.
/// `designated_first`: whose commit the relay sequences first.
fn concurrent_commits(designated_first: bool) {
    let (mut relay, mut alice, mut bob) = two_members();
    let mut carol = Member::new(carol_id(), "carol");
    let epoch_before = relay.epoch;

    connect(&relay, &mut carol, &mut [&mut alice, &mut bob]);
    // Carol's request is sequenced and delivered, nothing else published.
    flush(&mut relay, &mut [&mut carol]);
    deliver(&relay, &mut [&mut alice, &mut bob, &mut carol]);

    let (mut first, mut second) = if alice.fp() < bob.fp() {
        (alice, bob)
    } else {
        (bob, alice)
    };
    // `first` is designated and has committed at once; `second` commits on
    // the fallback timer, not knowing about the other commit.
    assert!(
        first
            .outbox
            .iter()
            .any(|(_, e)| e.kind == EventKind::Commit),
        "the designated member commits at once"
    );
    assert!(second.outbox.is_empty());
    let later = fallback_time();
    second.tick(later);
    first.tick(later);
    assert_eq!(
        second
            .outbox
            .iter()
            .filter(|(_, e)| e.kind == EventKind::Commit)
            .count(),
        1
    );
    assert_eq!(first.outbox.len(), 1, "one commit in flight at a time");
    for (_, e) in first.outbox.iter().chain(&second.outbox) {
        assert_eq!(e.epoch, epoch_before + 1);
    }

    if designated_first {
        pump(&mut relay, &mut [&mut first, &mut second, &mut carol]);
    } else {
        pump(&mut relay, &mut [&mut second, &mut first, &mut carol]);
    }

    assert_eq!(relay.epoch, epoch_before + 1, "exactly one commit won");
    assert!(
        relay.rejected.iter().any(|(_, _, r)| *r
            == Rejection::StaleEpoch {
                current: epoch_before + 1
            }),
        "{:?}",
        relay.rejected
    );
    assert!(
        relay
            .rejected
            .iter()
            .all(|(_, _, r)| matches!(r, Rejection::StaleEpoch { .. })),
        "{:?}",
        relay.rejected
    );
    let commits = relay
        .log
        .iter()
        .filter(|e| e.event.kind == EventKind::Commit && e.event.epoch == epoch_before + 1)
        .count();
    assert_eq!(commits, 1);

    assert!(carol.room.is_member());
    for m in [&first, &second, &carol] {
        assert_eq!(m.room.epoch(), relay.epoch, "members disagree on the epoch");
        assert_eq!(
            m.roster().iter().filter(|fp| **fp == carol.fp()).count(),
            1,
            "carol is a member exactly once"
        );
        assert_eq!(m.roster().len(), 3);
        assert!(
            !m.warning_kinds()
                .iter()
                .any(|k| k == "fork" || k == "missing_commit"),
            "{:?}",
            m.warnings()
        );
    }
    for m in [&first, &second] {
        assert_eq!(m.joined_shown(carol.fp()), 1, "{:?}", m.shown);
    }
    assert_eq!(
        carol
            .shown
            .iter()
            .filter(|e| matches!(e, Shown::Joined { .. }))
            .count(),
        1
    );
    no_errors(&[&first, &second, &carol]);

    // And the new epoch works for everyone.
    carol.send_text("glad to be here");
    pump(&mut relay, &mut [&mut first, &mut second, &mut carol]);
    for m in [&first, &second, &carol] {
        assert_eq!(m.count_text("glad to be here"), 1, "{:?}", m.shown);
    }
}

#[test]
fn concurrent_commits_designated_wins() {
    concurrent_commits(true);
}

#[test]
fn concurrent_commits_fallback_wins() {
    concurrent_commits(false);
}

// ─── 6. A non-member ─────────────────────────────────────────────────────

#[test]
fn non_member_message_is_not_shown() {
    let (mut relay, mut alice, mut bob, mut carol) = three_members();
    let mallory = mallory_id();
    let epoch = relay.epoch;
    let ev = sign_event(
        &mallory,
        mallory.fingerprint(),
        EventKind::Message,
        epoch,
        &garbage_message(),
    );
    // The relay cannot tell: it accepts it.
    relay.publish(mallory.fingerprint(), 1, ev).unwrap();
    pump(&mut relay, &mut [&mut alice, &mut bob, &mut carol]);
    for m in [&alice, &bob, &carol] {
        assert!(m.messages().is_empty(), "{:?}", m.shown);
        assert!(
            m.warnings()
                .iter()
                .any(|(k, from)| (k == "not_member" || k == "bad_signature")
                    && *from == Some(mallory.fingerprint())),
            "{:?}",
            m.shown
        );
    }
}

#[test]
fn non_member_message_as_alice_is_not_shown() {
    let (mut relay, mut alice, mut bob, mut carol) = three_members();
    let mallory = mallory_id();
    let epoch = relay.epoch;
    // Signed by mallory, claiming alice: only a malicious relay lets this
    // through (the real one refuses a spoofed sender).
    let ev = sign_event(
        &mallory,
        alice.fp(),
        EventKind::Message,
        epoch,
        &garbage_message(),
    );
    assert_eq!(
        relay.publish(mallory.fingerprint(), 1, ev.clone()),
        Err(Rejection::SpoofedSender)
    );
    relay.append(ev);
    pump(&mut relay, &mut [&mut alice, &mut bob, &mut carol]);
    for m in [&alice, &bob, &carol] {
        assert!(m.messages().is_empty(), "{:?}", m.shown);
        assert!(
            m.warning_kinds().iter().any(|k| k == "bad_signature"),
            "{:?}",
            m.shown
        );
    }
}

/// Beyond the brief: a non-member's commit. The relay cannot tell members
/// from others, so it accepts a commit from anyone that names the next
/// epoch, and the room's epoch moves on at the relay while every member
/// (rightly) ignores that commit. What a user must not notice: their client
/// committing again and again in a tight loop, each time refused.
#[test]
fn non_member_commit_does_not_cause_a_commit_storm() {
    let (mut relay, mut alice, mut bob) = two_members();
    let mallory = mallory_id();
    let epoch = relay.epoch;
    let ev = forged_commit(
        &relay,
        &mallory,
        std::slice::from_ref(&mallory),
        alice.room.settings().unwrap(),
    );
    relay.publish(mallory.fingerprint(), 1, ev).unwrap();
    pump(&mut relay, &mut [&mut alice, &mut bob]);
    for m in [&alice, &bob] {
        assert!(
            m.warning_kinds().iter().any(|k| k == "not_member"),
            "{:?}",
            m.shown
        );
        // The relay took the epoch number, so members keep in step with it,
        // but the forged roster and key were ignored: the new epoch carries
        // on the previous one.
        assert_eq!(m.room.epoch(), epoch + 1, "in step with the relay");
        assert!(m.room.is_member());
        assert!(
            !m.room
                .members()
                .iter()
                .any(|(fp, _, _)| *fp == mallory.fingerprint()),
            "the forged commit did not admit mallory"
        );
    }

    // Carol asks to join: the designated member commits epoch + 1, which
    // the relay now refuses as stale.
    let mut carol = Member::new(carol_id(), "carol");
    connect(&relay, &mut carol, &mut [&mut alice, &mut bob]);
    let settled = pump_at_most(&mut relay, &mut [&mut alice, &mut bob, &mut carol], 50);
    let refusals = relay.rejected.len();
    assert!(
        settled && refusals <= 2,
        "the clients kept committing: {refusals} commits refused as {:?} in 50 rounds",
        relay.rejected.last().map(|(_, _, r)| *r)
    );
}

// ─── 7. Nicknames ────────────────────────────────────────────────────────

#[test]
fn nick_change_and_same_nick_warning() {
    let (mut relay, mut alice, mut bob, mut carol) = three_members();
    for m in [&mut alice, &mut bob, &mut carol] {
        m.clear_shown();
    }
    bob.set_nick("robert");
    pump(&mut relay, &mut [&mut alice, &mut bob, &mut carol]);
    for m in [&alice, &carol] {
        assert!(
            m.notices().iter().any(|n| n.contains("robert")),
            "{:?}",
            m.shown
        );
        assert!(m.warnings().is_empty(), "{:?}", m.warnings());
        assert_eq!(
            m.room.whois("robert"),
            vec![(bob.fp(), "robert".to_owned())]
        );
    }

    carol.set_nick("robert");
    pump(&mut relay, &mut [&mut alice, &mut bob, &mut carol]);
    for m in [&alice, &bob] {
        assert!(
            m.warnings()
                .iter()
                .any(|(k, from)| k == "same_nick" && *from == Some(carol.fp())),
            "{:?}",
            m.shown
        );
        assert_eq!(m.room.whois("robert").len(), 2);
    }

    carol.send_text("it's me, robert");
    pump(&mut relay, &mut [&mut alice, &mut bob, &mut carol]);
    for m in [&alice, &bob] {
        let shown: Vec<&Shown> = m
            .shown
            .iter()
            .filter(|e| matches!(e, Shown::Message { .. }))
            .collect();
        assert_eq!(shown.len(), 1);
        let Shown::Message {
            from,
            nick,
            same_nick,
            ..
        } = shown[0]
        else {
            unreachable!()
        };
        assert_eq!(*from, carol.fp());
        assert_eq!(nick, "robert");
        assert!(!same_nick.is_empty(), "the same-nick mark is missing");
        assert!(same_nick.contains(&bob.fp()));
    }
    no_errors(&[&alice, &bob, &carol]);
}

// ─── 8. Messages typed before admission ──────────────────────────────────

#[test]
fn messages_typed_before_admission_are_sent_once_admitted() {
    let (mut relay, mut alice, mut bob) = two_members();
    let mut carol = Member::new(carol_id(), "carol");

    // Typed before even connecting.
    carol.send_text("typed before connecting");
    connect(&relay, &mut carol, &mut [&mut alice, &mut bob]);
    // Typed while the join request waits.
    carol.send_text("typed while waiting");
    assert!(
        carol
            .notices()
            .iter()
            .filter(|n| n.contains("not admitted yet"))
            .count()
            >= 2,
        "{:?}",
        carol.shown
    );
    assert!(
        carol
            .outbox
            .iter()
            .all(|(_, e)| e.kind == EventKind::JoinRequest),
        "nothing sent before admission"
    );

    pump(&mut relay, &mut [&mut alice, &mut bob, &mut carol]);
    assert!(carol.room.is_member());
    for m in [&alice, &bob, &carol] {
        let from_carol: Vec<String> = m
            .messages()
            .into_iter()
            .filter(|(fp, _, _)| *fp == carol.fp())
            .map(|(_, t, _)| t)
            .collect();
        assert_eq!(
            from_carol,
            vec![
                "typed before connecting".to_owned(),
                "typed while waiting".to_owned()
            ],
            "{:?}",
            m.shown
        );
        assert!(m.warnings().is_empty(), "{:?}", m.warnings());
    }
    no_errors(&[&alice, &bob, &carol]);
}

// ─── 9. Reordering ───────────────────────────────────────────────────────

#[test]
fn events_out_of_order_are_shown_in_order() {
    let (mut relay, mut alice, mut bob) = two_members();
    bob.connected = false; // held back: delivered by hand below
    alice.send_text("one");
    alice.send_text("two");
    alice.send_text("three");
    pump(&mut relay, &mut [&mut alice, &mut bob]);
    let n = relay.log.len();
    let e1 = relay.log[n - 3].clone();
    let e2 = relay.log[n - 2].clone();
    let e3 = relay.log[n - 1].clone();
    assert_eq!(bob.delivered, e1.seq - 1);

    bob.deliver(e3.clone());
    assert!(
        bob.messages().is_empty(),
        "shown across a gap: {:?}",
        bob.shown
    );
    bob.deliver(e2.clone());
    assert!(
        bob.messages().is_empty(),
        "shown across a gap: {:?}",
        bob.shown
    );
    bob.deliver(e1.clone());
    let msgs = bob.messages();
    assert_eq!(
        msgs.iter().map(|(_, t, _)| t.as_str()).collect::<Vec<_>>(),
        vec!["one", "two", "three"]
    );
    assert_eq!(
        msgs.iter().map(|(_, _, s)| *s).collect::<Vec<_>>(),
        vec![e1.seq, e2.seq, e3.seq]
    );
    // A late duplicate of an event already processed changes nothing.
    bob.deliver(e2);
    assert_eq!(bob.messages().len(), 3);
    assert!(bob.warnings().is_empty(), "{:?}", bob.warnings());
    assert_eq!(bob.room.last_seq(), e3.seq);

    bob.delivered = e3.seq;
    bob.connected = true;
    alice.send_text("four");
    pump(&mut relay, &mut [&mut alice, &mut bob]);
    assert_eq!(bob.texts(), vec!["one", "two", "three", "four"]);
}

// ─── 10. A restarted client ──────────────────────────────────────────────

#[test]
fn restarted_client_sends_under_a_new_session() {
    let (mut relay, mut alice, mut bob) = two_members();
    alice.send_text("before restart");
    pump(&mut relay, &mut [&mut alice, &mut bob]);
    assert_eq!(bob.count_text("before restart"), 1);

    // Alice's client stops and starts again with no saved state.
    disconnect(&mut alice, &mut [&mut bob]);
    let mut alice2 = Member::new(alice_id(), "alice");
    connect(&relay, &mut alice2, &mut [&mut bob]);
    assert!(alice2.room.is_member(), "{:?}", alice2.shown);
    assert!(
        alice2
            .shown
            .iter()
            .any(|e| matches!(e, Shown::Joined { .. }))
    );
    assert!(
        alice2.outbox.is_empty(),
        "a member does not ask to join again"
    );
    assert_eq!(alice2.room.epoch(), relay.epoch);
    assert_eq!(alice2.count_text("before restart"), 1, "history readable");
    let log_before = relay.log.len();

    alice2.send_text("after restart");
    pump(&mut relay, &mut [&mut alice2, &mut bob]);
    assert_eq!(relay.log.len(), log_before + 1);
    assert_eq!(bob.count_text("after restart"), 1, "{:?}", bob.shown);
    assert_eq!(alice2.count_text("after restart"), 1);
    assert!(bob.warnings().is_empty(), "{:?}", bob.warnings());
    assert!(alice2.warnings().is_empty(), "{:?}", alice2.warnings());

    // Different sessions: the message keys differ, so the same counter
    // does not reuse a (key, nonce) pair.
    let msgs: Vec<SealedMessage> = relay
        .log
        .iter()
        .filter(|e| e.event.kind == EventKind::Message && e.event.sender == alice2.fp())
        .map(|e| sealed(&e.event))
        .collect();
    assert_eq!(msgs.len(), 2);
    assert_ne!(msgs[0].session, msgs[1].session);
    no_errors(&[&alice2, &bob]);
}

/// The relay's retention removed the start of the log (keeping the latest
/// commit): a newcomer skips the gaps, takes the kept commit as its first
/// view of the room, asks to join instead of re-creating the room, and is
/// admitted.
#[test]
fn a_newcomer_after_retention_skips_the_pruned_gaps_and_is_admitted() {
    let (mut relay, mut alice, mut bob) = two_members();
    for i in 0..5 {
        alice.send_text(&format!("old {i}"));
    }
    pump(&mut relay, &mut [&mut alice, &mut bob]);
    let last = relay.last_seq();
    let latest_commit = relay.last_commit().seq;
    // The relay kept the latest commit and the last two events only.
    let kept: Vec<SequencedEvent> = relay
        .log
        .iter()
        .filter(|e| e.seq == latest_commit || e.seq + 2 > last)
        .cloned()
        .collect();
    assert!(kept.len() < relay.log.len());

    let mut carol = Member::new(carol_id(), "carol");
    let now = Instant::now();
    let online = vec![alice.fp(), bob.fp(), carol.fp()];
    for o in [&mut alice, &mut bob] {
        o.room.on_presence(carol.fp(), true);
    }
    carol.room.on_joined(&online);
    carol.connected = true;
    for ev in kept {
        carol.deliver(ev);
    }
    carol.delivered = last;
    let actions = carol.room.on_backfill_done(last, now);
    carol.handle(actions);
    assert_eq!(carol.room.last_seq(), last, "the gaps were skipped");
    assert!(
        carol.notices().iter().any(|n| n.contains("no longer kept")),
        "{:?}",
        carol.shown
    );
    let actions = carol.room.caught_up(now);
    carol.handle(actions);
    assert!(
        !carol.notices().iter().any(|n| n.contains("is new")),
        "carol must not re-create an existing room: {:?}",
        carol.shown
    );
    pump(&mut relay, &mut [&mut alice, &mut bob, &mut carol]);
    assert!(carol.room.is_member(), "{:?}", carol.shown);
    // Carol's view holds no roster (the commits that built it are gone):
    // she said so, and was admitted by a full commit, which carries it.
    let admitting = relay.last_commit();
    assert!(matches!(commit_payload(admitting), Payload::Commit(_)));
    alice.send_text("after retention");
    pump(&mut relay, &mut [&mut alice, &mut bob, &mut carol]);
    assert_eq!(carol.count_text("after retention"), 1);
}

// ─── Transcript integrity: a relay that cheats (DESIGN.md §5) ──────────────
//
// The relay in these tests hands one member its own edited view of the
// log (renumbered so that it looks gapless), as a cheating relay would.

/// Delivers `events` to `m` as the next events of its view of the room,
/// renumbered to follow what it already has.
fn feed_view(m: &mut Member, events: Vec<SequencedEvent>) {
    for mut ev in events {
        ev.seq = m.delivered + 1;
        m.delivered = ev.seq;
        m.deliver(ev);
    }
}

/// The events `m` has not been given yet, as the honest log has them.
fn undelivered(relay: &SimRelay, m: &Member) -> Vec<SequencedEvent> {
    relay.log[usize::try_from(m.delivered).unwrap()..].to_vec()
}

fn is_message_from(ev: &SequencedEvent, who: Fingerprint) -> bool {
    ev.event.kind == EventKind::Message && ev.event.sender == who
}

#[test]
fn an_honest_relay_raises_no_integrity_warnings() {
    let (mut relay, mut alice, mut bob, mut carol) = three_members();
    for i in 0..3 {
        alice.send_text(&format!("a{i}"));
        bob.send_text(&format!("b{i}"));
        pump(&mut relay, &mut [&mut alice, &mut bob, &mut carol]);
        carol.send_text(&format!("c{i}"));
    }
    pump(&mut relay, &mut [&mut alice, &mut bob, &mut carol]);
    for m in [&alice, &bob, &carol] {
        assert_eq!(m.texts().len(), 9, "{:?}", m.shown);
        assert!(m.warnings().is_empty(), "{:?}", m.warnings());
    }
}

#[test]
fn a_message_dropped_for_one_member_is_reported_to_that_member() {
    let (mut relay, mut alice, mut bob, mut carol) = three_members();
    bob.connected = false; // the relay edits bob's view by hand
    for text in ["one", "two", "three"] {
        alice.send_text(text);
        pump(&mut relay, &mut [&mut alice, &mut carol]);
    }
    carol.send_text("carol saw all three");
    pump(&mut relay, &mut [&mut alice, &mut carol]);
    let mut second = 0;
    let view: Vec<SequencedEvent> = undelivered(&relay, &bob)
        .into_iter()
        .filter(|e| {
            if is_message_from(e, alice.fp()) {
                second += 1;
                second != 2
            } else {
                true
            }
        })
        .collect();
    feed_view(&mut bob, view);
    assert_eq!(bob.count_text("two"), 0);
    assert_eq!(
        bob.count_text("three"),
        1,
        "genuine messages are still shown"
    );
    let kinds = bob.warning_kinds();
    assert!(kinds.iter().any(|k| k == "dropped"), "{kinds:?}");
    // Later messages were signed over a history bob was not shown: with
    // the event gone, their signed positions no longer fit his log.
    assert!(
        kinds.iter().any(|k| k == "fork" || k == "reordered"),
        "{kinds:?}"
    );
    for m in [&alice, &carol] {
        assert!(m.warnings().is_empty(), "{:?}", m.warnings());
    }
}

#[test]
fn a_reply_placed_before_the_message_it_answers_is_reported() {
    let (mut relay, mut alice, mut bob, mut carol) = three_members();
    carol.connected = false;
    alice.send_text("question");
    pump(&mut relay, &mut [&mut alice, &mut bob]);
    bob.send_text("answer");
    pump(&mut relay, &mut [&mut alice, &mut bob]);
    let mut view = undelivered(&relay, &carol);
    let q = view
        .iter()
        .position(|e| is_message_from(e, alice.fp()))
        .unwrap();
    let a = view
        .iter()
        .position(|e| is_message_from(e, bob.fp()))
        .unwrap();
    view.swap(q, a);
    feed_view(&mut carol, view);
    let kinds = carol.warning_kinds();
    assert!(kinds.iter().any(|k| k == "reordered"), "{kinds:?}");
    assert_eq!(carol.count_text("answer"), 1);
}

#[test]
fn two_members_shown_different_histories_find_out() {
    let (mut relay, mut alice, mut bob, mut carol) = three_members();
    for m in [&mut alice, &mut bob, &mut carol] {
        m.connected = false;
    }
    // Alice and carol speak at once; neither has seen the other's line.
    alice.send_text("from alice");
    carol.send_text("from carol");
    flush(&mut relay, &mut [&mut alice, &mut carol]);
    let honest = undelivered(&relay, &bob);
    let mut swapped = undelivered(&relay, &carol);
    let n = swapped.len();
    swapped.swap(n - 2, n - 1);
    feed_view(&mut bob, honest);
    feed_view(&mut carol, swapped);
    // Bob speaks; his message carries the head of his (honest) history.
    bob.send_text("bob saw both");
    flush(&mut relay, &mut [&mut bob]);
    let last = relay.log.last().unwrap().clone();
    feed_view(&mut carol, vec![last]);
    let kinds = carol.warning_kinds();
    assert!(kinds.iter().any(|k| k == "fork"), "{kinds:?}");
    assert_eq!(carol.count_text("bob saw both"), 1);
}

#[test]
fn a_commit_withheld_from_one_member_is_reported_and_nothing_is_shown_in_its_epoch() {
    let (mut relay, mut alice, mut bob, mut carol) = three_members();
    bob.connected = false;
    for o in [&mut alice, &mut carol] {
        o.room.on_presence(bob.fp(), false);
    }
    // Carol leaves; alice (the online member with the lowest fingerprint
    // now that bob is offline) rekeys without her.
    let actions = carol.room.leave();
    carol.handle(actions);
    pump(&mut relay, &mut [&mut alice, &mut carol]);
    let actions = alice.room.tick(fallback_time());
    alice.handle(actions);
    pump(&mut relay, &mut [&mut alice, &mut carol]);
    assert_eq!(alice.room.epoch(), bob.room.epoch() + 1, "alice rekeyed");
    alice.send_text("in the new epoch");
    pump(&mut relay, &mut [&mut alice]);
    let view: Vec<SequencedEvent> = undelivered(&relay, &bob)
        .into_iter()
        .filter(|e| e.event.kind != EventKind::Commit)
        .collect();
    feed_view(&mut bob, view);
    assert_eq!(bob.count_text("in the new epoch"), 0);
    let kinds = bob.warning_kinds();
    assert!(kinds.iter().any(|k| k == "missing_commit"), "{kinds:?}");
}

#[test]
fn verify_digits_agree_between_members_and_differ_when_they_should() {
    let (relay, alice, bob, carol) = three_members();
    let fps: Vec<String> = [&alice, &bob, &carol]
        .iter()
        .map(|m| m.room.room_fingerprint().unwrap())
        .collect();
    assert!(fps.iter().all(|f| *f == fps[0]), "{fps:?}");
    assert_eq!(fps[0].len(), 35, "six groups of five digits: {}", fps[0]);
    assert!(fps[0].chars().all(|c| c.is_ascii_digit() || c == ' '));
    // The pairwise safety number is symmetric and per pair.
    let ab = alice.room.safety_number(&bob.fp());
    assert_eq!(ab, bob.room.safety_number(&alice.fp()));
    assert_ne!(ab, alice.room.safety_number(&carol.fp()));
    // A member shown another history (here: a stranger replaying the
    // room's log into a fresh room state of its own) gets other digits.
    let mut replica = Member::new(mallory_id(), "mallory");
    feed_view(&mut replica, relay.log[..relay.log.len() - 1].to_vec());
    assert_ne!(replica.room.room_fingerprint(), Some(fps[0].clone()));
}

/// A fresh relay, and alice and bob (not yet connected) whose rooms rekey
/// every 3 messages.
fn rekeying_every_3_messages() -> (SimRelay, Member, Member) {
    let policy = hush_room::RekeyPolicy {
        max_messages: 3,
        max_age: Duration::ZERO,
    };
    let mut alice = Member::new(alice_id(), "alice");
    let mut bob = Member::new(bob_id(), "bob");
    for m in [&mut alice, &mut bob] {
        m.room = Room::new(room_name(), m.id.clone(), "x".into()).with_rekey_policy(policy);
    }
    (SimRelay::new(), alice, bob)
}

#[test]
fn rooms_rekey_after_the_configured_number_of_messages() {
    let (mut relay, mut alice, mut bob) = rekeying_every_3_messages();
    connect(&relay, &mut alice, &mut []);
    pump(&mut relay, &mut [&mut alice]);
    connect(&relay, &mut bob, &mut [&mut alice]);
    pump(&mut relay, &mut [&mut alice, &mut bob]);
    let start = alice.room.epoch();
    for i in 0..7 {
        alice.send_text(&format!("m{i}"));
        pump(&mut relay, &mut [&mut alice, &mut bob]);
    }
    // 7 messages at 3 per epoch: two rekeys, same members, nothing lost.
    assert_eq!(alice.room.epoch(), start + 2);
    assert_eq!(bob.room.epoch(), start + 2);
    assert_eq!(bob.texts().len(), 7);
    assert_eq!(alice.roster(), bob.roster());
    assert!(bob.warnings().is_empty(), "{:?}", bob.warnings());
}

// ─── State at rest ───────────────────────────────────────────────────────

#[test]
fn a_restored_member_resumes_exactly_where_it_stopped() {
    let (mut relay, mut alice, mut bob) = two_members();
    alice.send_text("before the restart");
    pump(&mut relay, &mut [&mut alice, &mut bob]);
    let dir = tempfile::tempdir().unwrap();
    let store = hush_client::state::StateStore::new(dir.path(), "relay:1", "lobby", bob_id());
    store.save(&bob.room.snapshot()).unwrap();
    // Bob is away while alice talks and the room rekeys (carol joins).
    disconnect(&mut bob, &mut [&mut alice]);
    let delivered = bob.delivered;
    alice.send_text("while bob was away");
    pump(&mut relay, &mut [&mut alice]);
    let mut carol = Member::new(carol_id(), "carol");
    connect(&relay, &mut carol, &mut [&mut alice]);
    pump(&mut relay, &mut [&mut alice, &mut carol]);
    alice.send_text("after the rekey");
    pump(&mut relay, &mut [&mut alice, &mut carol]);

    // Bob restarts from his saved state.
    let snap = store.load().unwrap().expect("saved state");
    let mut back = Member::new(bob_id(), "bob");
    back.room = Room::restore(room_name(), bob_id(), &snap).unwrap();
    assert_eq!(back.room.last_seq(), delivered);
    back.delivered = delivered;
    connect(&relay, &mut back, &mut [&mut alice, &mut carol]);
    pump(&mut relay, &mut [&mut alice, &mut carol, &mut back]);
    assert_eq!(
        back.texts(),
        vec![
            "while bob was away".to_owned(),
            "after the rekey".to_owned()
        ],
        "everything missed, in order, once; nothing from before again"
    );
    assert!(back.room.is_member());
    assert!(back.warnings().is_empty(), "{:?}", back.warnings());
}

#[test]
fn saved_state_is_useless_without_the_private_key() {
    let (mut relay, mut alice, mut bob) = two_members();
    alice.send_text("a secret worth keeping");
    pump(&mut relay, &mut [&mut alice, &mut bob]);
    let dir = tempfile::tempdir().unwrap();
    let store = hush_client::state::StateStore::new(dir.path(), "relay:1", "lobby", bob_id());
    let snap = bob.room.snapshot();
    store.save(&snap).unwrap();
    let bytes = std::fs::read(store.path()).unwrap();
    // Neither the epoch key nor the roster's nicknames are visible.
    let plain = encode(&snap);
    for window in [
        b"bob".as_slice(),
        b"alice".as_slice(),
        &plain[plain.len() - 32..],
    ] {
        assert!(
            !bytes.windows(window.len()).any(|w| w == window),
            "plaintext in the state file"
        );
    }
    // Another identity cannot open it, even at the same path.
    let mallory = hush_client::state::StateStore::new(dir.path(), "relay:1", "lobby", mallory_id());
    assert_eq!(mallory.path(), store.path());
    assert!(mallory.load().is_err());
    // A flipped byte makes it unreadable, not wrong.
    let mut damaged = bytes.clone();
    let mid = damaged.len() / 2;
    damaged[mid] ^= 1;
    std::fs::write(store.path(), &damaged).unwrap();
    assert!(store.load().is_err());
    // Restoring another room's or identity's snapshot is refused.
    assert!(Room::restore(RoomName::new("elsewhere").unwrap(), bob_id(), &snap).is_err());
    assert!(Room::restore(room_name(), alice_id(), &snap).is_err());
}

// ─── Invite-only rooms, history visibility ─────────────────────────────────

fn creator_with(invite_only: bool, history: e2e::HistoryVisibility) -> (SimRelay, Member) {
    let mut relay = SimRelay::new();
    let mut alice = Member::new(alice_id(), "alice");
    alice.room =
        Room::new(room_name(), alice_id(), "alice".into()).with_creation(invite_only, history);
    connect(&relay, &mut alice, &mut []);
    pump(&mut relay, &mut [&mut alice]);
    assert!(alice.room.is_member());
    (relay, alice)
}

#[test]
fn an_invite_only_room_admits_only_whom_its_creator_invites() {
    let (mut relay, mut alice) = creator_with(true, e2e::HistoryVisibility::Joined);
    let mut bob = Member::new(bob_id(), "bob");
    connect(&relay, &mut bob, &mut [&mut alice]);
    pump(&mut relay, &mut [&mut alice, &mut bob]);
    for m in [&mut alice, &mut bob] {
        let actions = m.room.tick(fallback_time());
        m.handle(actions);
    }
    pump(&mut relay, &mut [&mut alice, &mut bob]);
    assert!(!bob.room.is_member(), "not invited, not admitted");
    assert!(
        alice
            .notices()
            .iter()
            .any(|n| n.contains("invite-only") && n.contains("/invite")),
        "the creator is told: {:?}",
        alice.shown
    );
    // The creator invites bob: the next commit admits him.
    let actions = alice.room.invite(&bob.fp().to_string()).unwrap();
    alice.handle(actions);
    pump(&mut relay, &mut [&mut alice, &mut bob]);
    assert!(bob.room.is_member(), "{:?}", bob.shown);
    // Bob is a member but not the creator: he can neither invite nor kick.
    assert!(bob.room.invite("carol").is_err());
    assert!(bob.room.kick("alice").is_err());
    // Carol asks; bob's client ignores her, even after the fallback delay.
    let mut carol = Member::new(carol_id(), "carol");
    connect(&relay, &mut carol, &mut [&mut alice, &mut bob]);
    pump(&mut relay, &mut [&mut alice, &mut bob, &mut carol]);
    let actions = bob.room.tick(fallback_time());
    bob.handle(actions);
    pump(&mut relay, &mut [&mut alice, &mut bob, &mut carol]);
    assert!(!carol.room.is_member());
    // The creator kicks bob: the room is rekeyed without him.
    let actions = alice.room.kick("bob").unwrap();
    alice.handle(actions);
    pump(&mut relay, &mut [&mut alice, &mut bob, &mut carol]);
    assert!(!bob.room.is_member(), "{:?}", bob.shown);
    assert_eq!(alice.left_shown(bob.fp()), 1);
    alice.send_text("after the kick");
    pump(&mut relay, &mut [&mut alice, &mut bob, &mut carol]);
    assert_eq!(bob.count_text("after the kick"), 0);
}

#[test]
fn a_commit_admitting_someone_uninvited_is_void() {
    for add_only in [false, true] {
        a_commit_admitting_someone_uninvited_is_void_case(add_only);
    }
}

fn a_commit_admitting_someone_uninvited_is_void_case(add_only: bool) {
    let (mut relay, mut alice) = creator_with(true, e2e::HistoryVisibility::Joined);
    let mut bob = Member::new(bob_id(), "bob");
    connect(&relay, &mut bob, &mut [&mut alice]);
    let actions = alice.room.invite(&bob.fp().to_string()).unwrap();
    alice.handle(actions);
    pump(&mut relay, &mut [&mut alice, &mut bob]);
    assert!(bob.room.is_member());
    // Bob (a member, not the creator) admits mallory on his own, with a
    // full or an add-only commit.
    let ev = if add_only {
        forged_add(&relay, &bob_id(), &[mallory_id()])
    } else {
        forged_commit(
            &relay,
            &bob_id(),
            &[alice_id(), bob_id(), mallory_id()],
            alice.room.settings().unwrap(),
        )
    };
    relay.publish(bob.fp(), 99, ev).unwrap();
    pump(&mut relay, &mut [&mut alice, &mut bob]);
    void_for_all(&[&alice, &bob], "not_invited", mallory_id().fingerprint());
}

/// Every one of `members` voided a commit with a warning of `kind`, kept
/// `outsider` out, and is still a member.
fn void_for_all(members: &[&Member], kind: &str, outsider: Fingerprint) {
    for m in members {
        assert!(m.warning_kinds().iter().any(|k| k == kind), "{:?}", m.shown);
        assert!(!m.roster().contains(&outsider));
        assert!(m.room.is_member());
    }
}

#[test]
fn joined_history_hides_the_past_and_shared_history_shows_it() {
    for (history, expect_old) in [
        (e2e::HistoryVisibility::Joined, false),
        (e2e::HistoryVisibility::Shared, true),
    ] {
        let (mut relay, mut alice) = creator_with(false, history);
        alice.send_text("said before bob came");
        pump(&mut relay, &mut [&mut alice]);
        let mut bob = Member::new(bob_id(), "bob");
        connect(&relay, &mut bob, &mut [&mut alice]);
        pump(&mut relay, &mut [&mut alice, &mut bob]);
        assert!(bob.room.is_member());
        assert_eq!(
            bob.count_text("said before bob came") == 1,
            expect_old,
            "{history:?}: {:?}",
            bob.shown
        );
        alice.send_text("said after");
        pump(&mut relay, &mut [&mut alice, &mut bob]);
        assert_eq!(bob.count_text("said after"), 1);
        assert!(bob.warnings().is_empty(), "{:?}", bob.warnings());
    }
}

// ─── Findings of the security review ───────────────────────────────────────

/// A void commit carries the previous epoch's key into a new epoch number,
/// where counters restart at 0: the epoch is in the message-key derivation,
/// so no (key, nonce) pair is ever used twice.
#[test]
fn a_void_epoch_never_reuses_a_key_and_nonce() {
    let (mut relay, mut alice, mut bob) = two_members();
    alice.send_text("same words");
    pump(&mut relay, &mut [&mut alice, &mut bob]);
    let first = sealed(&relay.log.last().unwrap().event);
    // Mallory, not a member, burns an epoch number with a garbage commit.
    let mallory = mallory_id();
    let ev = sign_event(
        &mallory,
        mallory.fingerprint(),
        EventKind::Commit,
        relay.epoch + 1,
        &garbage_message(),
    );
    relay.publish(mallory.fingerprint(), 1, ev).unwrap();
    pump(&mut relay, &mut [&mut alice, &mut bob]);
    alice.send_text("same words");
    pump(&mut relay, &mut [&mut alice, &mut bob]);
    let second = sealed(&relay.log.last().unwrap().event);
    assert_eq!(
        first.counter, second.counter,
        "counters restart in the new epoch number"
    );
    let body = |m: &SealedMessage| m.ciphertext[..m.ciphertext.len() - 16].to_vec();
    assert_ne!(
        body(&first),
        body(&second),
        "same key and nonce would give the same keystream"
    );
    assert_eq!(bob.count_text("same words"), 2);
}

/// A kicked member still holds the old epoch's key; long after the rekey
/// its messages sealed under it are refused, not shown.
#[test]
fn a_removed_member_cannot_keep_posting_under_the_old_key() {
    let (mut relay, mut alice, mut bob, mut carol) = three_members();
    let old_epoch = relay.epoch;
    let actions = carol.room.leave();
    carol.handle(actions);
    pump(&mut relay, &mut [&mut alice, &mut bob, &mut carol]);
    let actions = alice.room.tick(fallback_time());
    alice.handle(actions);
    pump(&mut relay, &mut [&mut alice, &mut bob]);
    assert!(relay.epoch > old_epoch);
    // Lots of traffic later...
    for i in 0..110 {
        alice.send_text(&format!("filler {i}"));
    }
    pump(&mut relay, &mut [&mut alice, &mut bob]);
    // ...carol seals a message under the old epoch (she still has its key)
    // and the relay, which cannot tell, sequences it.
    let mut ghost = Member::new(carol_id(), "carol");
    let removal = relay
        .log
        .iter()
        .position(|e| e.event.kind == EventKind::Commit && e.event.epoch == old_epoch + 1)
        .unwrap();
    feed_view(&mut ghost, relay.log[..removal].to_vec());
    let _ = ghost.room.caught_up(Instant::now());
    assert!(
        ghost.room.is_member(),
        "{:?} / epoch {} of {}",
        ghost.warnings(),
        ghost.room.epoch(),
        relay.epoch
    );
    let actions = ghost.room.send_text("still here".into(), now_ms());
    let event = match actions
        .into_iter()
        .find(|a| matches!(a, Action::Publish { .. }))
    {
        Some(Action::Publish { event, .. }) => event,
        other => panic!("{other:?}"),
    };
    assert_eq!(event.epoch, old_epoch);
    relay.publish(carol.fp(), 1, event).unwrap();
    pump(&mut relay, &mut [&mut alice, &mut bob]);
    for m in [&alice, &bob] {
        assert_eq!(m.count_text("still here"), 0, "{:?}", m.warnings());
        assert!(m.warning_kinds().iter().any(|k| k == "stale_epoch"));
    }
}

/// A newcomer who read the log from its start and is shown a commit whose
/// parent it never saw: the relay withheld commits, and the newcomer does
/// not take the shown roster as the room's.
#[test]
fn a_newcomer_is_not_fooled_by_withheld_commits() {
    let (relay, _alice, _bob) = two_members();
    let mut newcomer = Member::new(carol_id(), "carol");
    // Withhold the room's first commit (epoch 1) from the newcomer.
    let view: Vec<SequencedEvent> = relay
        .log
        .iter()
        .filter(|e| !(e.event.kind == EventKind::Commit && e.event.epoch == 1))
        .cloned()
        .collect();
    feed_view(&mut newcomer, view);
    let kinds = newcomer.warning_kinds();
    assert!(kinds.iter().any(|k| k == "missing_commit"), "{kinds:?}");
    assert!(newcomer.roster().is_empty(), "no roster taken on trust");
}

// ─── Relay checkpoints ───────────────────────────────────────────────────

fn relay_id() -> Arc<Identity> {
    static C: OnceLock<Arc<Identity>> = OnceLock::new();
    load(&C, include_str!("../../keys.example/relay.pem"))
}

fn checkpoint(by: &Identity, seq: u64, head: [u8; 32]) -> hush_proto::msg::Checkpoint {
    let relay_time_ms = now_ms();
    let digest = e2e::checkpoint_digest(&room_name(), seq, &head, relay_time_ms);
    hush_proto::msg::Checkpoint {
        room: room_name(),
        seq,
        head,
        relay_time_ms,
        signature: by
            .sign(e2e::CHECKPOINT_CONTEXT, &digest)
            .unwrap()
            .into_bytes(),
    }
}

#[test]
fn a_checkpoint_that_contradicts_what_the_relay_showed_is_signed_evidence() {
    let (mut relay, mut alice, mut bob) = two_members();
    alice.send_text("hello");
    pump(&mut relay, &mut [&mut alice, &mut bob]);
    let seq = bob.room.last_seq();
    let honest = bob.room.chain_head();
    // An honest checkpoint: nothing to say.
    let actions = bob
        .room
        .on_checkpoint(checkpoint(&relay_id(), seq, honest), relay_id().public());
    bob.handle(actions);
    assert!(bob.warnings().is_empty(), "{:?}", bob.warnings());
    // A checkpoint for a later seq is kept until bob gets there.
    let actions = bob.room.on_checkpoint(
        checkpoint(&relay_id(), seq + 1, [9; 32]),
        relay_id().public(),
    );
    bob.handle(actions);
    assert!(bob.warnings().is_empty());
    alice.send_text("again");
    pump(&mut relay, &mut [&mut alice, &mut bob]);
    assert!(
        bob.warning_kinds().iter().any(|k| k == "relay_fork"),
        "{:?}",
        bob.shown
    );
    // A checkpoint not signed by the relay is refused.
    let actions = bob
        .room
        .on_checkpoint(checkpoint(&mallory_id(), seq, [1; 32]), relay_id().public());
    bob.handle(actions);
    assert!(bob.warning_kinds().iter().any(|k| k == "bad_checkpoint"));
}

#[test]
fn rooms_rekey_when_an_epoch_grows_old() {
    let mut relay = SimRelay::new();
    let policy = hush_room::RekeyPolicy {
        max_messages: 0,
        max_age: Duration::from_secs(3600),
    };
    let mut alice = Member::new(alice_id(), "alice");
    let mut bob = Member::new(bob_id(), "bob");
    for m in [&mut alice, &mut bob] {
        m.room = Room::new(room_name(), m.id.clone(), "x".into()).with_rekey_policy(policy);
    }
    connect(&relay, &mut alice, &mut []);
    pump(&mut relay, &mut [&mut alice]);
    connect(&relay, &mut bob, &mut [&mut alice]);
    pump(&mut relay, &mut [&mut alice, &mut bob]);
    let start = alice.room.epoch();
    // Not yet old: nothing happens.
    for m in [&mut alice, &mut bob] {
        let actions = m.room.tick(Instant::now() + Duration::from_secs(60));
        m.handle(actions);
    }
    pump(&mut relay, &mut [&mut alice, &mut bob]);
    assert_eq!(alice.room.epoch(), start);
    // Two hours later the epoch is replaced, with the same members.
    let later = Instant::now() + Duration::from_secs(2 * 3600);
    for m in [&mut alice, &mut bob] {
        let actions = m.room.tick(later);
        m.handle(actions);
    }
    pump(&mut relay, &mut [&mut alice, &mut bob]);
    assert_eq!(alice.room.epoch(), start + 1);
    assert_eq!(bob.room.epoch(), start + 1);
    assert_eq!(alice.roster(), bob.roster());
}

/// A message whose sender claims it was written hours ago is shown where
/// the relay placed it (never inserted into the past), with a note.
#[test]
fn a_delayed_message_is_shown_in_arrival_order_with_a_note() {
    let (mut relay, mut alice, mut bob) = two_members();
    alice.send_text("first");
    pump(&mut relay, &mut [&mut alice, &mut bob]);
    // Three hours before the relay's clock.
    let three_hours_ago = relay.log.last().unwrap().received_at_ms - 3 * 3600 * 1000;
    let actions = alice
        .room
        .send_text("written long ago".into(), three_hours_ago);
    alice.handle(actions);
    pump(&mut relay, &mut [&mut alice, &mut bob]);
    assert_eq!(
        bob.texts(),
        vec!["first".to_owned(), "written long ago".to_owned()]
    );
    let delayed = bob
        .shown
        .iter()
        .find(|e| matches!(e, Shown::Message { text, .. } if text == "written long ago"))
        .unwrap();
    let line = hush_client::display::render_line(delayed);
    assert!(line.contains("earlier"), "{line}");
    let json = hush_client::display::render_json(delayed);
    assert!(json.contains("\"sent_at\""), "{json}");
}

/// A member restarted with its saved state can read the room's history
/// again, even where the relay no longer keeps the commits that carried
/// the keys: the saved keys stand in for them.
#[test]
fn saved_keys_read_old_history_again_after_the_relay_pruned_its_commits() {
    let (mut relay, mut alice, mut bob) = two_members();
    alice.send_text("old message");
    pump(&mut relay, &mut [&mut alice, &mut bob]);
    let old_seq = relay.last_seq();
    let snap = bob.room.snapshot();
    let mut carol = Member::new(carol_id(), "carol");
    connect(&relay, &mut carol, &mut [&mut alice, &mut bob]);
    pump(&mut relay, &mut [&mut alice, &mut bob, &mut carol]);
    alice.send_text("new message");
    pump(&mut relay, &mut [&mut alice, &mut bob, &mut carol]);
    // Retention kept "old message" and what follows, but not the commit
    // of the epoch it was sealed in.
    let kept: Vec<SequencedEvent> = relay
        .log
        .iter()
        .filter(|e| e.seq >= old_seq)
        .cloned()
        .collect();
    let last = relay.last_seq();
    let read = |mut m: Member| {
        m.room.on_joined(&[]);
        for ev in kept.clone() {
            m.deliver(ev);
        }
        let actions = m.room.on_backfill_done(last, Instant::now());
        m.handle(actions);
        m
    };
    let fresh = read(Member::new(bob_id(), "bob"));
    assert_eq!(
        fresh.count_text("old message"),
        0,
        "no key without saved state"
    );
    let mut replayer = Member::new(bob_id(), "bob");
    replayer.room = Room::restore_for_replay(room_name(), bob_id(), &snap).unwrap();
    let replayer = read(replayer);
    assert_eq!(
        replayer.count_text("old message"),
        1,
        "{:?}",
        replayer.shown
    );
    assert_eq!(replayer.count_text("new message"), 1);
}

/// A member may not drop someone who neither left nor was kicked.
#[test]
fn a_commit_dropping_a_member_who_did_not_leave_is_void() {
    let (mut relay, mut alice, mut bob, mut carol) = three_members();
    let ev = forged_commit(
        &relay,
        &bob_id(),
        &[alice_id(), bob_id()],
        alice.room.settings().unwrap(),
    );
    relay.publish(bob.fp(), 77, ev).unwrap();
    pump(&mut relay, &mut [&mut alice, &mut bob, &mut carol]);
    for m in [&alice, &carol] {
        assert!(
            m.warning_kinds().iter().any(|k| k == "not_allowed"),
            "{:?}",
            m.shown
        );
        assert!(m.roster().contains(&carol_id().fingerprint()));
    }
    assert!(carol.room.is_member());
    alice.send_text("carol still reads this");
    pump(&mut relay, &mut [&mut alice, &mut bob, &mut carol]);
    assert_eq!(carol.count_text("carol still reads this"), 1);
}

// ─── A hostile member cannot make a client hold unbounded memory ────────────

#[test]
fn a_roster_over_the_limit_is_refused_without_parsing_it() {
    let (mut relay, mut alice, mut bob) = two_members();
    let huge = e2e::Member {
        public_key: mallory_id().public().spki_der().to_vec(),
        nick: "m".into(),
    };
    let payload = Payload::Commit(e2e::Commit {
        parent_epoch: relay.epoch,
        committer_key: bob_id().public().spki_der().to_vec(),
        members: vec![huge; e2e::MAX_ROSTER + 1],
        envelopes: Vec::new(),
        settings: alice.room.settings().unwrap().clone(),
        history: Vec::new(),
    });
    let ev = sign_event(
        &bob_id(),
        bob.fp(),
        EventKind::Commit,
        relay.epoch + 1,
        &payload,
    );
    relay.append(ev);
    pump(&mut relay, &mut [&mut alice, &mut bob]);
    assert!(
        alice.warning_kinds().iter().any(|k| k == "bad_commit"),
        "{:?}",
        alice.shown
    );
    assert_eq!(alice.roster().len(), 2);
}

#[test]
fn events_held_ahead_of_a_gap_are_bounded() {
    let (relay, _alice, mut bob) = two_members();
    let template = relay.log.last().unwrap().clone();
    // The relay never sends seq last+1 but floods everything after it.
    let start = bob.room.last_seq() + 2;
    for seq in start..start + 10_050 {
        let mut ev = template.clone();
        ev.seq = seq;
        bob.deliver(ev);
    }
    let overflow = bob
        .warning_kinds()
        .iter()
        .filter(|k| *k == "reorder_overflow")
        .count();
    assert_eq!(
        overflow, 50,
        "beyond 10,000 held events each new one is dropped"
    );
}

/// A relay replaying an old signed invite (or kick, or leave) cannot
/// change who is in the room: membership events count only in the epoch
/// they were sealed in (or just after, in flight).
#[test]
fn a_replayed_invite_does_not_let_a_kicked_member_back_in() {
    let (mut relay, mut alice) = creator_with(true, e2e::HistoryVisibility::Joined);
    let mut bob = Member::new(bob_id(), "bob");
    connect(&relay, &mut bob, &mut [&mut alice]);
    let actions = alice.room.invite(&bob.fp().to_string()).unwrap();
    alice.handle(actions);
    pump(&mut relay, &mut [&mut alice, &mut bob]);
    let invite = relay
        .log
        .iter()
        .find(|e| e.event.kind == EventKind::Control)
        .unwrap()
        .event
        .clone();
    let actions = alice.room.kick("bob").unwrap();
    alice.handle(actions);
    pump(&mut relay, &mut [&mut alice, &mut bob]);
    assert!(!bob.room.is_member());
    // Lots of traffic, then the relay re-sequences the old invite and bob
    // asks again.
    for i in 0..110 {
        alice.send_text(&format!("filler {i}"));
    }
    pump(&mut relay, &mut [&mut alice]);
    relay.append(invite);
    let mut again = Member::new(bob_id(), "bob");
    connect(&relay, &mut again, &mut [&mut alice]);
    pump(&mut relay, &mut [&mut alice, &mut again]);
    let actions = alice.room.tick(fallback_time());
    alice.handle(actions);
    pump(&mut relay, &mut [&mut alice, &mut again]);
    assert!(
        alice.warning_kinds().iter().any(|k| k == "replay"),
        "{:?}",
        alice.warnings()
    );
    assert!(
        !again.room.is_member(),
        "the replayed invite let bob back in"
    );
}

// ─── Add-only commits ────────────────────────────────────────────────────

/// The payload of a logged commit.
fn commit_payload(ev: &SequencedEvent) -> Payload {
    decode(&signed_body(&ev.event).payload).expect("a payload")
}

/// An add-only commit opening the relay's next epoch, signed by `by`,
/// admitting `people` with a random key wrapped to them: for tests that
/// need one no honest client makes.
fn forged_add(relay: &SimRelay, by: &Identity, people: &[Arc<Identity>]) -> RoomEvent {
    let payload = Payload::Add(e2e::AddCommit {
        parent_epoch: relay.epoch,
        added: roster_of(people),
        envelopes: envelopes_for(people),
        history: Vec::new(),
    });
    commit_signed_by(relay, by, &payload)
}

#[test]
fn admissions_are_add_only_commits_and_removals_are_full_ones() {
    let (mut relay, mut alice, mut bob, mut carol) = three_members();
    let commits: Vec<Payload> = relay
        .log
        .iter()
        .filter(|e| e.event.kind == EventKind::Commit)
        .map(commit_payload)
        .collect();
    // Epoch 1 creates the room; bob and carol came in by add-only commits
    // that wrap the key to the newcomer alone.
    assert!(matches!(&commits[0], Payload::Commit(_)));
    for (c, newcomer) in commits[1..].iter().zip([bob.fp(), carol.fp()]) {
        let Payload::Add(add) = c else {
            panic!("not an add-only commit: {c:?}")
        };
        assert_eq!(add.envelopes.len(), 1);
        assert_eq!(add.envelopes[0].member, newcomer);
        assert_eq!(add.added.len(), 1);
    }
    // Everyone holds the same key: each reads the others.
    for m in [&mut alice, &mut bob, &mut carol] {
        m.send_text("same key");
    }
    pump(&mut relay, &mut [&mut alice, &mut bob, &mut carol]);
    for m in [&alice, &bob, &carol] {
        assert_eq!(m.count_text("same key"), 3, "{:?}", m.shown);
        assert!(m.warnings().is_empty(), "{:?}", m.warnings());
    }
    // A leave is a removal: a fresh key in a full commit without carol.
    let actions = carol.room.leave();
    carol.handle(actions);
    pump(&mut relay, &mut [&mut alice, &mut bob, &mut carol]);
    let last = relay.last_commit();
    match commit_payload(last) {
        Payload::Commit(c) => assert_eq!(c.members.len(), 2),
        other => panic!("a removal must be a full commit: {other:?}"),
    }
    assert!(!alice.roster().contains(&carol.fp()));
    no_errors(&[&alice, &bob]);
}

#[test]
fn an_add_only_commit_while_someone_is_leaving_is_void() {
    let (mut relay, mut alice, mut bob, mut carol) = three_members();
    // Carol leaves; before the rekey that removes her, alice's client
    // (one that missed the leave) admits mallory under the old lineage.
    let actions = carol.room.leave();
    carol.handle(actions);
    flush(&mut relay, &mut [&mut carol]);
    let ev = forged_add(&relay, &alice_id(), &[mallory_id()]);
    relay.publish(alice.fp(), 99, ev).unwrap();
    let void_epoch = relay.epoch;
    pump(&mut relay, &mut [&mut alice, &mut bob]);
    void_for_all(&[&alice, &bob], "not_allowed", mallory_id().fingerprint());
    for m in [&alice, &bob] {
        assert!(!m.roster().contains(&carol.fp()), "carol was removed");
        assert!(m.room.epoch() > void_epoch, "the removal was committed");
    }
    let removal = relay.last_commit();
    assert!(matches!(commit_payload(removal), Payload::Commit(_)));
}

#[test]
fn an_add_only_commit_by_a_non_member_is_void() {
    let (mut relay, mut alice, mut bob) = two_members();
    let ev = forged_add(&relay, &mallory_id(), &[carol_id()]);
    relay.append(ev);
    relay.epoch += 1;
    pump(&mut relay, &mut [&mut alice, &mut bob]);
    void_for_all(&[&alice, &bob], "not_member", carol_id().fingerprint());
    // The void epoch keeps the room working.
    alice.send_text("still here");
    pump(&mut relay, &mut [&mut alice, &mut bob]);
    assert_eq!(bob.count_text("still here"), 1);
}

#[test]
fn an_add_only_commit_that_adds_a_member_again_is_void() {
    let (mut relay, mut alice, mut bob) = two_members();
    let ev = forged_add(&relay, &alice_id(), &[bob_id()]);
    relay.publish(alice.fp(), 99, ev).unwrap();
    pump(&mut relay, &mut [&mut alice, &mut bob]);
    for m in [&alice, &bob] {
        assert!(
            m.warning_kinds().iter().any(|k| k == "bad_commit"),
            "{:?}",
            m.shown
        );
    }
    // Bob's key is still the lineage's: a fresh envelope did not replace it.
    alice.send_text("after");
    pump(&mut relay, &mut [&mut alice, &mut bob]);
    assert_eq!(bob.count_text("after"), 1);
}

#[test]
fn a_replayed_add_only_commit_changes_nothing() {
    let (mut relay, mut alice, mut bob, mut carol) = three_members();
    let add = relay.last_commit().event.clone();
    // The relay sequences carol's admission a second time.
    relay.append(add);
    pump(&mut relay, &mut [&mut alice, &mut bob, &mut carol]);
    for m in [&alice, &bob, &carol] {
        assert!(
            m.warning_kinds().iter().any(|k| k == "fork"),
            "{:?}",
            m.shown
        );
        assert_eq!(m.roster().len(), 3);
    }
    carol.send_text("unchanged");
    pump(&mut relay, &mut [&mut alice, &mut bob, &mut carol]);
    assert_eq!(alice.count_text("unchanged"), 1);
    assert_eq!(bob.count_text("unchanged"), 1);
}

#[test]
fn a_newcomer_admitted_by_an_add_only_commit_cannot_read_what_came_before() {
    let (mut relay, mut alice, mut bob) = two_members();
    alice.send_text("before carol");
    pump(&mut relay, &mut [&mut alice, &mut bob]);
    let mut carol = Member::new(carol_id(), "carol");
    connect(&relay, &mut carol, &mut [&mut alice, &mut bob]);
    pump(&mut relay, &mut [&mut alice, &mut bob, &mut carol]);
    assert!(carol.room.is_member());
    assert!(matches!(
        commit_payload(relay.log.last().unwrap()),
        Payload::Add(_)
    ));
    assert_eq!(carol.count_text("before carol"), 0);
    bob.send_text("after carol");
    pump(&mut relay, &mut [&mut alice, &mut bob, &mut carol]);
    assert_eq!(carol.count_text("after carol"), 1);
}

#[test]
fn add_only_commits_do_not_postpone_the_periodic_rekey() {
    let (mut relay, mut alice, mut bob) = rekeying_every_3_messages();
    connect(&relay, &mut alice, &mut []);
    pump(&mut relay, &mut [&mut alice]);
    alice.send_text("one");
    alice.send_text("two");
    pump(&mut relay, &mut [&mut alice]);
    // Bob's admission (add-only) between the second and third message.
    connect(&relay, &mut bob, &mut [&mut alice]);
    pump(&mut relay, &mut [&mut alice, &mut bob]);
    let epoch = relay.epoch;
    alice.send_text("three");
    pump(&mut relay, &mut [&mut alice, &mut bob]);
    let last = relay.last_commit();
    assert!(
        relay.epoch > epoch,
        "three messages since the last full commit"
    );
    assert!(matches!(commit_payload(last), Payload::Commit(_)));
}

#[test]
fn a_room_grows_only_as_far_as_one_full_commit_fits_the_relay_frame() {
    // A member costs its key, its envelope, its nick and some framing.
    let key = alice_id().public().spki_der().len() + alice_id().public().bits() / 8;
    let target = 2048 + key * 5 / 2 + 200;
    let frame = (0..)
        .find(|f| hush_proto::msg::max_event_body(*f) >= target)
        .unwrap();
    let (mut relay, mut alice, mut bob) = two_members();
    alice.room.set_frame_limit(frame);
    bob.room.set_frame_limit(frame);
    let mut carol = Member::new(carol_id(), "carol");
    connect(&relay, &mut carol, &mut [&mut alice, &mut bob]);
    pump(&mut relay, &mut [&mut alice, &mut bob, &mut carol]);
    assert!(!carol.room.is_member());
    // The designated committer says why.
    assert!(
        [&alice, &bob]
            .iter()
            .any(|m| m.warning_kinds().iter().any(|k| k == "room_full")),
        "{:?}",
        alice.shown
    );
    // The same room on a relay with the default frame admits her.
    alice.room.set_frame_limit(hush_proto::DEFAULT_MAX_FRAME);
    bob.room.set_frame_limit(hush_proto::DEFAULT_MAX_FRAME);
    let mut dave = Member::new(mallory_id(), "dave");
    connect(&relay, &mut dave, &mut [&mut alice, &mut bob, &mut carol]);
    pump(
        &mut relay,
        &mut [&mut alice, &mut bob, &mut carol, &mut dave],
    );
    assert!(dave.room.is_member(), "{:?}", alice.shown);
}
