//! Add-only commits.

use crate::harness::*;

#[test]
fn admissions_are_add_only_commits_and_removals_are_full_ones() {
    let (mut relay, mut alice, mut bob, mut carol) = three_members();
    let commits: Vec<Payload> = relay
        .log
        .iter()
        .filter(|e| e.event.kind == EventKind::Commit)
        .map(commit_payload)
        .collect();
    // Epoch 1 creates the room; bob and carol came in by add-only commits
    // that wrap the key to the newcomer alone.
    assert!(matches!(&commits[0], Payload::Commit(_)));
    for (c, newcomer) in commits[1..].iter().zip([bob.fp(), carol.fp()]) {
        let Payload::Add(add) = c else {
            panic!("not an add-only commit: {c:?}")
        };
        assert_eq!(add.envelopes.len(), 1);
        assert_eq!(add.envelopes[0].member, newcomer);
        assert_eq!(add.added.len(), 1);
    }
    // Everyone holds the same key: each reads the others.
    for m in [&mut alice, &mut bob, &mut carol] {
        m.send_text("same key");
    }
    pump(&mut relay, &mut [&mut alice, &mut bob, &mut carol]);
    for m in [&alice, &bob, &carol] {
        assert_eq!(m.count_text("same key"), 3, "{:?}", m.shown);
        assert!(m.warnings().is_empty(), "{:?}", m.warnings());
    }
    // A leave is a removal: a fresh key in a full commit without carol.
    let actions = carol.room.leave();
    carol.handle(actions);
    pump(&mut relay, &mut [&mut alice, &mut bob, &mut carol]);
    let last = relay.last_commit();
    match commit_payload(last) {
        Payload::Commit(c) => assert_eq!(c.members.len(), 2),
        other => panic!("a removal must be a full commit: {other:?}"),
    }
    assert!(!alice.roster().contains(&carol.fp()));
    no_errors(&[&alice, &bob]);
}

#[test]
fn an_add_only_commit_while_someone_is_leaving_is_invalid() {
    let (mut relay, mut alice, mut bob, mut carol) = three_members();
    // Carol leaves; before the rekey that removes her, alice's client
    // (one that missed the leave) admits mallory under the old lineage.
    let actions = carol.room.leave();
    carol.handle(actions);
    flush(&mut relay, &mut [&mut carol]);
    let ev = forged_add(&relay, &alice_id(), &[mallory_id()]);
    relay.publish(alice.fp(), 99, ev).unwrap();
    let before = alice.room.epoch();
    pump(&mut relay, &mut [&mut alice, &mut bob]);
    void_for_all(&[&alice, &bob], "not_allowed", mallory_id().fingerprint());
    for m in [&alice, &bob] {
        assert!(!m.roster().contains(&carol.fp()), "carol was removed");
        assert!(m.room.epoch() > before, "the removal was committed");
    }
    let removal = relay.last_commit();
    assert!(matches!(commit_payload(removal), Payload::Commit(_)));
}

#[test]
fn an_add_only_commit_by_a_non_member_is_invalid() {
    let (mut relay, mut alice, mut bob) = two_members();
    let ev = forged_add(&relay, &mallory_id(), &[carol_id()]);
    relay.append(ev);
    relay.epoch += 1;
    pump(&mut relay, &mut [&mut alice, &mut bob]);
    void_for_all(&[&alice, &bob], "not_member", carol_id().fingerprint());
    // The void epoch keeps the room working.
    alice.send_text("still here");
    pump(&mut relay, &mut [&mut alice, &mut bob]);
    assert_eq!(bob.count_text("still here"), 1);
}

#[test]
fn an_add_only_commit_that_adds_a_member_again_is_invalid() {
    let (mut relay, mut alice, mut bob) = two_members();
    let ev = forged_add(&relay, &alice_id(), &[bob_id()]);
    relay.publish(alice.fp(), 99, ev).unwrap();
    pump(&mut relay, &mut [&mut alice, &mut bob]);
    for m in [&alice, &bob] {
        assert!(
            m.warning_kinds().iter().any(|k| k == "bad_commit"),
            "{:?}",
            m.shown
        );
    }
    // Bob's key is still the lineage's: a fresh envelope did not replace it.
    alice.send_text("after");
    pump(&mut relay, &mut [&mut alice, &mut bob]);
    assert_eq!(bob.count_text("after"), 1);
}

#[test]
fn a_replayed_add_only_commit_changes_nothing() {
    let (mut relay, mut alice, mut bob, mut carol) = three_members();
    let add = relay.last_commit().event.clone();
    // The relay sequences carol's admission a second time: a commit for
    // a parent already replaced, skipped like a lost race.
    relay.append(add);
    for m in [&mut alice, &mut bob, &mut carol] {
        m.clear_shown();
    }
    pump(&mut relay, &mut [&mut alice, &mut bob, &mut carol]);
    for m in [&alice, &bob, &carol] {
        assert!(m.warnings().is_empty(), "{:?}", m.warnings());
        assert_eq!(m.roster().len(), 3);
    }
    carol.send_text("unchanged");
    pump(&mut relay, &mut [&mut alice, &mut bob, &mut carol]);
    assert_eq!(alice.count_text("unchanged"), 1);
    assert_eq!(bob.count_text("unchanged"), 1);
}

#[test]
fn a_newcomer_admitted_by_an_add_only_commit_cannot_read_what_came_before() {
    let (mut relay, mut alice, mut bob) = two_members();
    alice.send_text("before carol");
    pump(&mut relay, &mut [&mut alice, &mut bob]);
    let mut carol = Member::new(carol_id(), "carol");
    connect(&relay, &mut carol, &mut [&mut alice, &mut bob]);
    pump(&mut relay, &mut [&mut alice, &mut bob, &mut carol]);
    assert!(carol.room.is_member());
    assert!(matches!(
        commit_payload(relay.last_commit()),
        Payload::Add(_)
    ));
    assert_eq!(carol.count_text("before carol"), 0);
    bob.send_text("after carol");
    pump(&mut relay, &mut [&mut alice, &mut bob, &mut carol]);
    assert_eq!(carol.count_text("after carol"), 1);
}

#[test]
fn add_only_commits_do_not_postpone_the_periodic_rekey() {
    let (mut relay, mut alice, mut bob) = rekeying_every_3_messages();
    connect(&relay, &mut alice, &mut []);
    pump(&mut relay, &mut [&mut alice]);
    alice.send_text("one");
    pump(&mut relay, &mut [&mut alice]);
    // Bob's admission (add-only), then his name (sealed: the second
    // message), before the third.
    connect(&relay, &mut bob, &mut [&mut alice]);
    pump(&mut relay, &mut [&mut alice, &mut bob]);
    let epoch = relay.epoch;
    alice.send_text("three");
    pump(&mut relay, &mut [&mut alice, &mut bob]);
    let last = relay.last_commit();
    assert!(
        relay.epoch > epoch,
        "three messages since the last full commit"
    );
    assert!(matches!(commit_payload(last), Payload::Commit(_)));
}

#[test]
fn a_room_grows_only_as_far_as_one_full_commit_fits_the_relay_frame() {
    // A member costs its key, its envelope, its nick and some framing.
    let key = alice_id().public().spki_der().len() + alice_id().public().bits() / 8;
    let target = 2048 + key * 5 / 2 + 200;
    let frame = (0..)
        .find(|f| hush_proto::msg::max_event_body(*f) >= target)
        .unwrap();
    let (mut relay, mut alice, mut bob) = two_members();
    alice.room.set_frame_limit(frame);
    bob.room.set_frame_limit(frame);
    let mut carol = Member::new(carol_id(), "carol");
    connect(&relay, &mut carol, &mut [&mut alice, &mut bob]);
    pump(&mut relay, &mut [&mut alice, &mut bob, &mut carol]);
    assert!(!carol.room.is_member());
    // The designated committer says why.
    assert!(
        [&alice, &bob]
            .iter()
            .any(|m| m.warning_kinds().iter().any(|k| k == "room_full")),
        "{:?}",
        alice.shown
    );
    // The same room on a relay with the default frame admits her.
    alice.room.set_frame_limit(hush_proto::DEFAULT_MAX_FRAME);
    bob.room.set_frame_limit(hush_proto::DEFAULT_MAX_FRAME);
    let mut dave = Member::new(mallory_id(), "dave");
    connect(&relay, &mut dave, &mut [&mut alice, &mut bob, &mut carol]);
    pump(
        &mut relay,
        &mut [&mut alice, &mut bob, &mut carol, &mut dave],
    );
    assert!(dave.room.is_member(), "{:?}", alice.shown);
}
