//! 10. A restarted client.

use crate::harness::*;

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

/// The relay's retention removed old messages (never membership events,
/// protocol 2): a newcomer skips the gaps, reads the room from its creating
/// commit, asks to join instead of re-creating the room, and is admitted.
#[test]
fn a_newcomer_after_retention_skips_the_pruned_gaps_and_is_admitted() {
    let (mut relay, mut alice, mut bob) = two_members();
    for i in 0..5 {
        alice.send_text(&format!("old {i}"));
    }
    pump(&mut relay, &mut [&mut alice, &mut bob]);
    let last = relay.last_seq();
    // The relay kept every membership event and the last two events only.
    let kept: Vec<SequencedEvent> = relay
        .log
        .iter()
        .filter(|e| e.event.kind != EventKind::Message || e.seq + 2 > last)
        .cloned()
        .collect();
    assert!(kept.len() < relay.log.len());

    let mut carol = Member::new(carol_id(), "carol");
    let online = vec![alice.fp(), bob.fp(), carol.fp()];
    for o in [&mut alice, &mut bob] {
        o.receive(RelayMsg::Presence {
            room: room_name(),
            member: carol.fp(),
            online: true,
        });
    }
    carol.receive(RelayMsg::Joined {
        room: room_name(),
        head_seq: last,
        epoch: relay.epoch,
        online,
    });
    carol.connected = true;
    for ev in kept {
        carol.deliver(ev);
    }
    carol.delivered = last;
    // The relay answers in two pages: all it kept, then nothing more.
    carol.receive(RelayMsg::BackfillDone {
        room: room_name(),
        up_to: last,
        complete: false,
    });
    assert_eq!(carol.room.last_seq(), last, "the gaps were skipped");
    assert!(
        carol
            .notices()
            .iter()
            .any(|n| matches!(n, Notice::Pruned { .. })),
        "{:?}",
        carol.shown
    );
    carol.receive(RelayMsg::BackfillDone {
        room: room_name(),
        up_to: last,
        complete: true,
    });
    assert!(
        !carol
            .notices()
            .iter()
            .any(|n| matches!(n, Notice::Creating)),
        "carol must not re-create an existing room: {:?}",
        carol.shown
    );
    pump(&mut relay, &mut [&mut alice, &mut bob, &mut carol]);
    assert!(carol.room.is_member(), "{:?}", carol.shown);
    // The commits that built the roster are kept: carol holds it, and an
    // add-only commit admitted her.
    let admitting = relay.last_commit();
    assert!(matches!(commit_payload(admitting), Payload::Add(_)));
    alice.send_text("after retention");
    pump(&mut relay, &mut [&mut alice, &mut bob, &mut carol]);
    assert_eq!(carol.count_text("after retention"), 1);
}
