//! The harness: the testkit's identities and simulated room, and the
//! helpers for forging what no honest client sends.

pub use std::sync::Arc;
pub use std::time::{Duration, Instant};

pub use hush_crypto::{Fingerprint, Identity};
pub use hush_proto::e2e::{self, EVENT_SIGNATURE_CONTEXT, Payload, SealedMessage, SignedBody};
pub use hush_proto::msg::{decode, encode};
pub use hush_proto::{
    ClientMsg, EventKind, Rejection, RelayMsg, RoomEvent, RoomName, SequencedEvent,
};
pub use hush_room::{Action, Notice, Room, Shown, Warning};
pub use hush_testkit::entropy::{os as os_entropy, seeded as seeded_entropy, seeded_bytes};
pub use hush_testkit::keys::{
    alice as alice_id, bob as bob_id, carol as carol_id, mallory as mallory_id, relay as relay_id,
};
pub use hush_testkit::sim::*;

pub fn signed_body(ev: &RoomEvent) -> SignedBody {
    decode(&ev.body).expect("a signed body")
}

pub fn sealed(ev: &RoomEvent) -> SealedMessage {
    match decode::<Payload>(&signed_body(ev).payload).expect("a payload") {
        Payload::Message(m) => m,
        other => panic!("not a message: {other:?}"),
    }
}

/// Signs `payload` as `id` under the given envelope, the way a client does.
pub fn sign_event(
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

/// A position for a forged membership event: a fresh run that has seen the
/// whole log (but not its heads).
pub fn at(relay: &SimRelay) -> e2e::Position {
    let mut session = [0u8; 16];
    hush_crypto::random_bytes(&mut session);
    e2e::Position {
        session,
        counter: 0,
        seen_seq: relay.last_seq(),
        seen_head: relay.head(),
    }
}

/// A commit payload signed by `by` for the relay's next epoch.
pub fn commit_signed_by(relay: &SimRelay, by: &Identity, payload: &Payload) -> RoomEvent {
    sign_event(
        by,
        by.fingerprint(),
        EventKind::Commit,
        relay.epoch + 1,
        payload,
    )
}

/// `people` as roster entries, all nicknamed "x".
pub fn roster_of(people: &[Arc<Identity>]) -> Vec<e2e::Member> {
    people
        .iter()
        .map(|p| e2e::Member {
            public_key: p.public().spki_der().to_vec(),
            nick: Vec::new(),
        })
        .collect()
}

/// A fresh random epoch key wrapped to each of `people`.
pub fn envelopes_for(people: &[Arc<Identity>]) -> Vec<e2e::KeyEnvelope> {
    let key = forged_key();
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

/// The id of the latest commit in the log opening `epoch` (zeros for
/// epoch 0): what a forged commit on that epoch names as its parent. (The
/// members took that one, unless a later test forged an invalid one.)
pub fn link(relay: &SimRelay, epoch: u64) -> [u8; 32] {
    relay
        .log
        .iter()
        .rev()
        .find(|e| e.event.kind == EventKind::Commit && e.event.epoch == epoch && epoch > 0)
        .map_or([0; 32], |e| e2e::commit_id(&e.event))
}

/// The epoch key of every commit the tests forge (`envelopes_for`): known,
/// so that a forged commit can carry a valid key confirmation.
pub fn forged_key() -> hush_crypto::Secret32 {
    hush_crypto::Secret32::from_bytes([0x42; 32])
}

/// `commit` with the key confirmation `key` gives it, opening `epoch`,
/// committed by `by` (what an honest committer computes).
pub fn confirmed(
    commit: Payload,
    key: &hush_crypto::Secret32,
    epoch: u64,
    by: &Identity,
) -> Payload {
    let confirm = e2e::commit_confirmation(key, &room_name(), epoch, &by.fingerprint(), &commit);
    match commit {
        Payload::Commit(mut c) => {
            c.confirm = confirm;
            Payload::Commit(c)
        }
        Payload::Add(mut a) => {
            a.confirm = confirm;
            Payload::Add(a)
        }
        other => other,
    }
}

/// A commit opening the relay's next epoch, made and signed by `by` with
/// a fresh key for `people`: what a member's client would build, for tests
/// that need a commit no honest client makes.
pub fn forged_commit(
    relay: &SimRelay,
    by: &Identity,
    people: &[Arc<Identity>],
    settings: &e2e::RoomSettings,
) -> RoomEvent {
    let payload = Payload::Commit(e2e::Commit {
        parent_epoch: relay.epoch,
        parent_commit: link(relay, relay.epoch),
        committer_key: by.public().spki_der().to_vec(),
        members: roster_of(people),
        envelopes: envelopes_for(people),
        settings: settings.clone(),
        history: Vec::new(),
        names_salt: [0; 16],
        confirm: [0; 32],
    });
    let payload = confirmed(payload, &forged_key(), relay.epoch + 1, by);
    commit_signed_by(relay, by, &payload)
}

/// A sealed message with a random (wrong) key: what someone without the
/// epoch key can produce.
pub fn garbage_message() -> Payload {
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

/// Delivers `events` to `m` as the next events of its view of the room,
/// renumbered to follow what it already has.
pub fn feed_view(m: &mut Member, events: Vec<SequencedEvent>) {
    for mut ev in events {
        ev.seq = m.delivered + 1;
        m.delivered = ev.seq;
        m.deliver(ev);
    }
}

/// A fresh relay, and alice and bob (not yet connected) whose rooms rekey
/// every 3 messages.
pub fn rekeying_every_3_messages() -> (SimRelay, Member, Member) {
    let policy = hush_room::RekeyPolicy {
        max_messages: 3,
        max_age: Duration::ZERO,
    };
    let mut alice = Member::new(alice_id(), "alice");
    let mut bob = Member::new(bob_id(), "bob");
    for (m, nick) in [(&mut alice, "alice"), (&mut bob, "bob")] {
        m.room = Room::new(room_name(), m.id.clone(), nick.into(), os_entropy())
            .with_rekey_policy(policy);
    }
    (SimRelay::new(), alice, bob)
}

pub fn creator_with(invite_only: bool, history: e2e::HistoryVisibility) -> (SimRelay, Member) {
    let mut relay = SimRelay::new();
    let mut alice = Member::new(alice_id(), "alice");
    alice.room = Room::new(room_name(), alice_id(), "alice".into(), os_entropy())
        .with_creation(invite_only, history);
    connect(&relay, &mut alice, &mut []);
    pump(&mut relay, &mut [&mut alice]);
    assert!(alice.room.is_member());
    (relay, alice)
}

/// Every one of `members` voided a commit with a warning of `kind`, kept
/// `outsider` out, and is still a member.
pub fn void_for_all(members: &[&Member], kind: &str, outsider: Fingerprint) {
    for m in members {
        assert!(m.warning_kinds().iter().any(|k| k == kind), "{:?}", m.shown);
        assert!(!m.roster().contains(&outsider));
        assert!(m.room.is_member());
    }
}

/// The payload of a logged commit.
pub fn commit_payload(ev: &SequencedEvent) -> Payload {
    decode(&signed_body(&ev.event).payload).expect("a payload")
}

/// An add-only commit opening the relay's next epoch, signed by `by`,
/// admitting `people` with a random key wrapped to them: for tests that
/// need one no honest client makes.
pub fn forged_add(relay: &SimRelay, by: &Identity, people: &[Arc<Identity>]) -> RoomEvent {
    let payload = Payload::Add(e2e::AddCommit {
        parent_epoch: relay.epoch,
        parent_commit: link(relay, relay.epoch),
        added: roster_of(people),
        envelopes: envelopes_for(people),
        history: Vec::new(),
        names: Vec::new(),
        names_salt: [0; 16],
        confirm: [0; 32],
    });
    commit_signed_by(relay, by, &payload)
}
