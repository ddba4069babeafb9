//! 6. A non-member.

use crate::harness::*;

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
/// from others, so it sequences a commit from anyone; every member skips
/// it, and no epoch is used up (protocol 2). What a user must not notice:
/// their client committing again and again in a tight loop.
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
        // The forged roster and key were ignored, and the commit used up
        // no epoch.
        assert_eq!(m.room.epoch(), epoch, "no epoch used up");
        assert!(m.room.is_member());
        assert!(
            !m.room
                .members()
                .iter()
                .any(|(fp, _, _)| *fp == mallory.fingerprint()),
            "the forged commit did not admit mallory"
        );
    }

    // Carol asks to join: the designated member commits epoch + 1 (the
    // relay sequences it after mallory's, and members take it).
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
