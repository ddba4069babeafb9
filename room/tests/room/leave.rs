//! 4. Leave.

use crate::harness::*;

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
