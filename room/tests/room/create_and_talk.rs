//! 1. Create, admit, talk.

use crate::harness::*;

#[test]
fn create_admit_and_talk() {
    let mut relay = SimRelay::new();
    let mut alice = Member::new(alice_id(), "alice");
    let mut bob = Member::new(bob_id(), "bob");
    let mut carol = Member::new(carol_id(), "carol");

    // The first member opens epoch 1.
    connect(&relay, &mut alice, &mut []);
    assert!(
        alice
            .notices()
            .iter()
            .any(|n| matches!(n, Notice::Creating)),
        "{:?}",
        alice.shown
    );
    pump(&mut relay, &mut [&mut alice]);
    assert_eq!(relay.epoch, 1);
    assert_eq!(alice.room.epoch(), 1);
    assert!(alice.room.is_member());
    assert!(alice.shown.iter().any(|e| matches!(
        e,
        Shown::Joined { epoch: 1, me, .. } if *me == alice.fp()
    )));

    // Bob asks and is admitted without anyone doing anything.
    connect(&relay, &mut bob, &mut [&mut alice]);
    assert!(!bob.room.is_member());
    pump(&mut relay, &mut [&mut alice, &mut bob]);
    assert!(bob.room.is_member());
    assert_eq!(relay.epoch, 2);
    assert_eq!(alice.joined_shown(bob.fp()), 1, "{:?}", alice.shown);
    assert!(bob.shown.iter().any(|e| matches!(
        e,
        Shown::Epoch { epoch: 2, members, .. } if members.len() == 2
    )));
    assert!(
        bob.shown
            .iter()
            .any(|e| matches!(e, Shown::Joined { epoch: 2, .. }))
    );

    // Carol too.
    connect(&relay, &mut carol, &mut [&mut alice, &mut bob]);
    pump(&mut relay, &mut [&mut alice, &mut bob, &mut carol]);
    assert!(carol.room.is_member());
    assert_eq!(relay.epoch, 3);
    assert_eq!(alice.joined_shown(carol.fp()), 1);
    assert_eq!(bob.joined_shown(carol.fp()), 1);
    for m in [&alice, &bob, &carol] {
        assert_eq!(m.room.epoch(), 3);
        let mut roster = m.roster();
        roster.sort();
        let mut expected = vec![alice.fp(), bob.fp(), carol.fp()];
        expected.sort();
        assert_eq!(roster, expected);
    }

    alice.send_text("hello");
    pump(&mut relay, &mut [&mut alice, &mut bob, &mut carol]);
    for m in [&alice, &bob, &carol] {
        let msgs = m.messages();
        assert_eq!(msgs.len(), 1, "{:?}", m.shown);
        assert_eq!(msgs[0].0, alice.fp());
        assert_eq!(msgs[0].1, "hello");
        assert!(m.warnings().is_empty(), "{:?}", m.warnings());
    }
    no_errors(&[&alice, &bob, &carol]);
    assert!(relay.rejected.is_empty(), "{:?}", relay.rejected);
}

/// `/me`: an action travels sealed like a line and arrives marked as one.
#[test]
fn an_action_arrives_as_an_action() {
    let (mut relay, mut alice, mut bob) = two_members();
    let actions = alice.room.send_action("waves".into(), 1);
    alice.handle(actions);
    pump(&mut relay, &mut [&mut alice, &mut bob]);
    assert!(
        matches!(bob.shown_message("waves"), Shown::Message { action: true, from, .. } if *from == alice.fp()),
        "{:?}",
        bob.shown
    );
}

/// A file offer travels sealed and signed like a line and arrives as an
/// offer; one whose chunk count does not match its size is a `bad_file`
/// warning and is never offered.
#[test]
fn a_file_offer_arrives_whole_and_a_broken_one_is_refused() {
    use hush_crypto::file::{chunk_count, padded_len};
    use hush_proto::e2e::FileOffer;
    let (mut relay, mut alice, mut bob) = two_members();
    let offer = |chunks| FileOffer {
        id: [3; 16],
        name: "report.pdf".into(),
        size: 100_000,
        media_type: "application/pdf".into(),
        chunks,
        sha256: [9; 32],
        key: [5; 32],
    };
    let good = chunk_count(padded_len(100_000));
    let actions = alice.room.send_file(offer(good), 1);
    alice.handle(actions);
    pump(&mut relay, &mut [&mut alice, &mut bob]);
    let got = bob.shown.iter().find_map(|s| match s {
        Shown::FileOffered { from, offer, .. } => Some((*from, offer.clone())),
        _ => None,
    });
    let (from, got) = got.expect("the offer is shown");
    assert_eq!(from, alice.fp());
    assert_eq!(got, offer(good));
    // The same, claiming one chunk fewer: a relay could never serve it
    // whole, so it is refused.
    let actions = alice.room.send_file(offer(good - 1), 2);
    alice.handle(actions);
    pump(&mut relay, &mut [&mut alice, &mut bob]);
    assert!(
        bob.warnings()
            .iter()
            .any(|(kind, from)| kind == "bad_file" && *from == Some(alice.fp())),
        "{:?}",
        bob.shown
    );
    let offers = bob
        .shown
        .iter()
        .filter(|s| matches!(s, Shown::FileOffered { .. }))
        .count();
    assert_eq!(offers, 1);
}
