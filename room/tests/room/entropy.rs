//! The room's randomness and clock come from its caller.

use crate::harness::*;

/// Alice alone in a new room whose secrets come from `seed`.
fn creator_seeded(seed: &[u8]) -> (SimRelay, Member) {
    let mut relay = SimRelay::new();
    let mut alice = Member::new(alice_id(), "alice");
    alice.room = Room::new(
        room_name(),
        alice_id(),
        "alice".into(),
        seeded_entropy(seed),
    );
    connect(&relay, &mut alice, &mut []);
    pump(&mut relay, &mut [&mut alice]);
    assert!(alice.room.is_member(), "{:?}", alice.shown);
    (relay, alice)
}

#[test]
fn the_session_salt_and_the_epoch_key_are_drawn_from_the_given_entropy() {
    let (mut relay, mut alice) = creator_seeded(b"alice");
    alice.send_text("hello");
    pump(&mut relay, &mut [&mut alice]);
    let stream = seeded_bytes(b"alice", 48);
    // First the session salt, when the room is made...
    let message = relay.log.last().unwrap();
    assert_eq!(sealed(&message.event).session[..], stream[..16]);
    // ...then the key of the room's first commit.
    let Payload::Commit(commit) = commit_payload(relay.last_commit()) else {
        panic!("the room's first commit is a full commit");
    };
    let envelope = &commit.envelopes[0];
    assert_eq!(envelope.member, alice.fp());
    let key = alice_id()
        .unwrap(e2e::EPOCH_KEY_LABEL, &envelope.wrapped)
        .unwrap();
    assert_eq!(key.expose_secret()[..], stream[16..48]);
}

#[test]
fn rooms_given_different_entropy_draw_different_secrets() {
    let (mut relay_a, mut a) = creator_seeded(b"one");
    let (mut relay_b, mut b) = creator_seeded(b"two");
    a.send_text("hello");
    b.send_text("hello");
    pump(&mut relay_a, &mut [&mut a]);
    pump(&mut relay_b, &mut [&mut b]);
    let session = |relay: &SimRelay| sealed(&relay.log.last().unwrap().event).session;
    assert_ne!(session(&relay_a), session(&relay_b));
}

/// A restored room's timers start at the time it is given: the epoch's
/// age counts from there, not from whenever the process happened to start.
#[test]
fn a_restored_room_counts_the_epoch_age_from_the_time_it_is_given() {
    let policy = hush_room::RekeyPolicy {
        max_messages: 0,
        max_age: Duration::from_secs(3600),
    };
    let (relay, alice) = creator_seeded(b"alice");
    let snap = alice.room.snapshot();
    let restored_at = Instant::now() + Duration::from_secs(10 * 3600);
    let mut back = Member::new(alice_id(), "alice");
    back.room = Room::restore(room_name(), alice_id(), &snap, os_entropy(), restored_at)
        .unwrap()
        .with_rekey_policy(policy);
    connect(&relay, &mut back, &mut []);
    back.tick(restored_at + Duration::from_secs(1800));
    assert!(
        back.outbox.is_empty(),
        "not an hour old yet: {:?}",
        back.outbox
    );
    back.tick(restored_at + Duration::from_secs(3601));
    assert!(
        back.outbox.iter().any(|(_, e)| e.kind == EventKind::Commit),
        "an hour after the restore the epoch is rekeyed: {:?}",
        back.shown
    );
}
