//! A hostile member cannot make a client hold unbounded memory.

use crate::harness::*;

#[test]
fn a_roster_over_the_limit_is_refused_without_parsing_it() {
    let (mut relay, mut alice, mut bob) = two_members();
    let huge = e2e::Member {
        public_key: mallory_id().public().spki_der().to_vec(),
        nick: "m".into(),
    };
    let payload = Payload::Commit(e2e::Commit {
        parent_epoch: relay.epoch,
        parent_commit: link(&relay, relay.epoch),
        committer_key: bob_id().public().spki_der().to_vec(),
        members: vec![huge; e2e::MAX_ROSTER + 1],
        envelopes: Vec::new(),
        settings: alice.room.settings().unwrap().clone(),
        history: Vec::new(),
        names_salt: [0; 16],
        confirm: [0; 32],
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

/// The same in bytes (audit L4): 10,000 held frames of 64 KiB would be
/// 640 MB; at most 64 MiB of bodies are held.
#[test]
fn bytes_held_ahead_of_a_gap_are_bounded() {
    let (relay, _alice, mut bob) = two_members();
    let mut template = relay.log.last().unwrap().clone();
    template.event.body = vec![0; 60 * 1024];
    let start = bob.room.last_seq() + 2;
    for seq in start..start + 1_200 {
        let mut ev = template.clone();
        ev.seq = seq;
        bob.deliver(ev);
    }
    let overflow = bob
        .warning_kinds()
        .iter()
        .filter(|k| *k == "reorder_overflow")
        .count();
    let held = (64 * 1024 * 1024) / (60 * 1024);
    assert_eq!(overflow, 1_200 - held, "{overflow} dropped");
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
    let actions = alice
        .room
        .kick(&bob_id().fingerprint().to_string())
        .unwrap();
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
