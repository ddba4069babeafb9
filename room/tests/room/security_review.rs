//! Findings of the security review.

use crate::harness::*;

/// An invalid commit is skipped (protocol 2): it opens no epoch, so the
/// key and the sender's counter simply go on, and no (key, nonce) pair is
/// used twice. (Protocol 1 gave it a void epoch that carried the key on.)
#[test]
fn a_skipped_commit_uses_up_no_epoch_and_never_reuses_a_key_and_nonce() {
    let (mut relay, mut alice, mut bob) = two_members();
    alice.send_text("same words");
    pump(&mut relay, &mut [&mut alice, &mut bob]);
    let first = sealed(&relay.log.last().unwrap().event);
    // Mallory, not a member, claims the next epoch with a garbage commit.
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
    assert_eq!(relay.log.last().unwrap().event.epoch, relay.epoch - 1);
    assert_eq!(second.counter, first.counter + 1, "the same epoch goes on");
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
    // The rest of her view is withheld: her backfill ends here.
    let _ = ghost.room.on_relay(
        RelayMsg::BackfillDone {
            room: room_name(),
            up_to: ghost.delivered,
            complete: true,
        },
        relay_id().public(),
        Instant::now(),
    );
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
