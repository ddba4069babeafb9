//! 5. Concurrent commits.

use crate::harness::*;

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

    // The relay sequences both (protocol 2: members choose); every member
    // takes the first and skips the other without a warning.
    assert_eq!(relay.epoch, epoch_before + 1);
    assert!(relay.rejected.is_empty(), "{:?}", relay.rejected);
    let commits = relay
        .log
        .iter()
        .filter(|e| e.event.kind == EventKind::Commit && e.event.epoch == epoch_before + 1)
        .count();
    assert_eq!(commits, 2, "both sequenced");

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
