//! Relay checkpoints.

use crate::harness::*;

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
    bob.receive(RelayMsg::Checkpoint(checkpoint(&relay_id(), seq, honest)));
    assert!(bob.warnings().is_empty(), "{:?}", bob.warnings());
    // A checkpoint for a later seq is kept until bob gets there.
    bob.receive(RelayMsg::Checkpoint(checkpoint(
        &relay_id(),
        seq + 1,
        [9; 32],
    )));
    assert!(bob.warnings().is_empty());
    alice.send_text("again");
    pump(&mut relay, &mut [&mut alice, &mut bob]);
    assert!(
        bob.warning_kinds().iter().any(|k| k == "relay_fork"),
        "{:?}",
        bob.shown
    );
    // A checkpoint not signed by the relay is refused.
    bob.receive(RelayMsg::Checkpoint(checkpoint(
        &mallory_id(),
        seq,
        [1; 32],
    )));
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
        m.room = Room::new(room_name(), m.id.clone(), "x".into(), os_entropy())
            .with_rekey_policy(policy);
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
/// the relay placed it (never inserted into the past), with a note: the
/// room hands the front end both clocks (the note's wording is checked in
/// `client/tests/display.rs`).
#[test]
fn a_delayed_message_is_shown_in_arrival_order_with_a_note() {
    let (bob, three_hours_ago) = a_message_written_hours_ago();
    assert_eq!(
        bob.texts(),
        vec!["first".to_owned(), "written long ago".to_owned()]
    );
    let delayed = bob.shown_message("written long ago");
    assert!(
        matches!(delayed, Shown::Message { sent_at_ms, received_at_ms, .. }
            if *sent_at_ms == three_hours_ago && *received_at_ms - *sent_at_ms == 3 * 3600 * 1000),
        "{delayed:?}"
    );
}

/// A member restarted with its saved state can read the room's history
/// again, even where the relay no longer keeps the commits that carried
/// the keys: the saved keys stand in for them.
#[test]
fn old_history_is_read_again_from_the_commits_the_relay_keeps() {
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
    // Retention kept "old message" and what follows, and (protocol 2)
    // every membership event: the commits that carried the keys too.
    let kept: Vec<SequencedEvent> = relay
        .log
        .iter()
        .filter(|e| e.seq >= old_seq || e.event.kind != EventKind::Message)
        .cloned()
        .collect();
    let (last, epoch) = (relay.last_seq(), relay.epoch);
    let read = |mut m: Member| {
        m.receive(RelayMsg::Joined {
            room: room_name(),
            head_seq: last,
            epoch,
            online: Vec::new(),
        });
        for ev in kept.clone() {
            m.deliver(ev);
        }
        // A first page of the backfill: read, not yet caught up.
        m.receive(RelayMsg::BackfillDone {
            room: room_name(),
            up_to: last,
            complete: false,
        });
        m
    };
    let fresh = read(Member::new(bob_id(), "bob"));
    assert_eq!(
        fresh.count_text("old message"),
        1,
        "bob's envelope is still in the kept commit: {:?}",
        fresh.shown
    );
    let mut replayer = Member::new(bob_id(), "bob");
    replayer.room = Room::restore_for_replay(room_name(), bob_id(), &snap, os_entropy()).unwrap();
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
fn a_commit_dropping_a_member_who_did_not_leave_is_invalid() {
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
