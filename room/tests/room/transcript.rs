//! Transcript integrity: a relay that cheats (DESIGN.md §5).
//!
//! The relay in these tests hands one member its own edited view of the
//! log (renumbered so that it looks gapless), as a cheating relay would.

use crate::harness::*;

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
        o.receive(RelayMsg::Presence {
            room: room_name(),
            member: bob.fp(),
            online: false,
        });
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
    let last_commit = relay.last_commit().seq as usize;
    feed_view(&mut replica, relay.log[..last_commit - 1].to_vec());
    assert_ne!(replica.room.room_fingerprint(), Some(fps[0].clone()));
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
