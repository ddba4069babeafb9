//! Invite-only rooms, history visibility.

use crate::harness::*;

#[test]
fn an_invite_only_room_admits_only_whom_its_creator_invites() {
    let (mut relay, mut alice) = creator_with(true, e2e::HistoryVisibility::Joined);
    let mut bob = Member::new(bob_id(), "bob");
    connect(&relay, &mut bob, &mut [&mut alice]);
    pump(&mut relay, &mut [&mut alice, &mut bob]);
    for m in [&mut alice, &mut bob] {
        let actions = m.room.tick(fallback_time());
        m.handle(actions);
    }
    pump(&mut relay, &mut [&mut alice, &mut bob]);
    assert!(!bob.room.is_member(), "not invited, not admitted");
    assert!(
        alice.notices().iter().any(
            |n| matches!(n, Notice::JoinRequest { needs_invite: true, member }
                if member.fingerprint == bob.fp())
        ),
        "the creator is told: {:?}",
        alice.shown
    );
    // The creator invites bob: the next commit admits him.
    let actions = alice.room.invite(&bob.fp().to_string()).unwrap();
    alice.handle(actions);
    pump(&mut relay, &mut [&mut alice, &mut bob]);
    assert!(bob.room.is_member(), "{:?}", bob.shown);
    // Bob is a member but not the creator: he can neither invite nor kick.
    assert!(bob.room.invite("carol").is_err());
    assert!(bob.room.kick("alice").is_err());
    // Carol asks; bob's client ignores her, even after the fallback delay.
    let mut carol = Member::new(carol_id(), "carol");
    connect(&relay, &mut carol, &mut [&mut alice, &mut bob]);
    pump(&mut relay, &mut [&mut alice, &mut bob, &mut carol]);
    let actions = bob.room.tick(fallback_time());
    bob.handle(actions);
    pump(&mut relay, &mut [&mut alice, &mut bob, &mut carol]);
    assert!(!carol.room.is_member());
    // The creator kicks bob: the room is rekeyed without him.
    let actions = alice
        .room
        .kick(&bob_id().fingerprint().to_string())
        .unwrap();
    alice.handle(actions);
    pump(&mut relay, &mut [&mut alice, &mut bob, &mut carol]);
    assert!(!bob.room.is_member(), "{:?}", bob.shown);
    assert_eq!(alice.left_shown(bob.fp()), 1);
    alice.send_text("after the kick");
    pump(&mut relay, &mut [&mut alice, &mut bob, &mut carol]);
    assert_eq!(bob.count_text("after the kick"), 0);
}

#[test]
fn a_commit_admitting_someone_uninvited_is_invalid() {
    for add_only in [false, true] {
        a_commit_admitting_someone_uninvited_is_invalid_case(add_only);
    }
}

fn a_commit_admitting_someone_uninvited_is_invalid_case(add_only: bool) {
    let (mut relay, mut alice) = creator_with(true, e2e::HistoryVisibility::Joined);
    let mut bob = Member::new(bob_id(), "bob");
    connect(&relay, &mut bob, &mut [&mut alice]);
    let actions = alice.room.invite(&bob.fp().to_string()).unwrap();
    alice.handle(actions);
    pump(&mut relay, &mut [&mut alice, &mut bob]);
    assert!(bob.room.is_member());
    // Bob (a member, not the creator) admits mallory on his own, with a
    // full or an add-only commit.
    let ev = if add_only {
        forged_add(&relay, &bob_id(), &[mallory_id()])
    } else {
        forged_commit(
            &relay,
            &bob_id(),
            &[alice_id(), bob_id(), mallory_id()],
            alice.room.settings().unwrap(),
        )
    };
    relay.publish(bob.fp(), 99, ev).unwrap();
    pump(&mut relay, &mut [&mut alice, &mut bob]);
    void_for_all(&[&alice, &bob], "not_invited", mallory_id().fingerprint());
}

#[test]
fn joined_history_hides_the_past_and_shared_history_shows_it() {
    for (history, expect_old) in [
        (e2e::HistoryVisibility::Joined, false),
        (e2e::HistoryVisibility::Shared, true),
    ] {
        let (mut relay, mut alice) = creator_with(false, history);
        alice.send_text("said before bob came");
        pump(&mut relay, &mut [&mut alice]);
        let mut bob = Member::new(bob_id(), "bob");
        connect(&relay, &mut bob, &mut [&mut alice]);
        pump(&mut relay, &mut [&mut alice, &mut bob]);
        assert!(bob.room.is_member());
        assert_eq!(
            bob.count_text("said before bob came") == 1,
            expect_old,
            "{history:?}: {:?}",
            bob.shown
        );
        alice.send_text("said after");
        pump(&mut relay, &mut [&mut alice, &mut bob]);
        assert_eq!(bob.count_text("said after"), 1);
        assert!(bob.warnings().is_empty(), "{:?}", bob.warnings());
    }
}
