//! The link protocol the room drives itself (`room/src/driver.rs`): join,
//! backfill pages, the checkpoint request, leaving, and what it ignores.

use crate::harness::*;

fn backfill(after_seq: u64) -> ClientMsg {
    ClientMsg::Backfill {
        room: room_name(),
        after_seq,
    }
}

#[test]
fn connecting_joins_backfills_page_by_page_then_asks_for_a_checkpoint() {
    let (mut relay, mut alice, mut bob) = two_members();
    for i in 0..5 {
        alice.send_text(&format!("before carol {i}"));
    }
    pump(&mut relay, &mut [&mut alice, &mut bob]);
    let last = relay.last_seq();
    relay.backfill_page = Some(2);
    let mut carol = Member::new(carol_id(), "carol");
    connect(&relay, &mut carol, &mut [&mut alice, &mut bob]);
    let mut expected = vec![ClientMsg::Join { room: room_name() }];
    expected.extend((0..last).step_by(2).map(backfill));
    expected.push(ClientMsg::Checkpoint { room: room_name() });
    assert_eq!(carol.link, expected);
    assert_eq!(carol.room.last_seq(), last, "every page was read");
    // Caught up after the last page: she asks to be admitted, and is.
    assert!(
        carol
            .outbox
            .iter()
            .any(|(_, e)| e.kind == EventKind::JoinRequest),
        "{:?}",
        carol.shown
    );
    pump(&mut relay, &mut [&mut alice, &mut bob, &mut carol]);
    assert!(carol.room.is_member(), "{:?}", carol.shown);
    no_errors(&[&alice, &bob, &carol]);
}

#[test]
fn a_reconnect_backfills_from_the_last_seq_processed() {
    let (mut relay, mut alice, mut bob) = two_members();
    alice.send_text("before");
    pump(&mut relay, &mut [&mut alice, &mut bob]);
    disconnect(&mut bob, &mut [&mut alice]);
    let seen = bob.room.last_seq();
    alice.send_text("while bob was away");
    pump(&mut relay, &mut [&mut alice, &mut bob]);
    let asked = bob.link.len();
    connect(&relay, &mut bob, &mut [&mut alice]);
    assert_eq!(
        bob.link[asked..],
        [
            ClientMsg::Join { room: room_name() },
            backfill(seen),
            ClientMsg::Checkpoint { room: room_name() },
        ]
    );
    assert_eq!(bob.count_text("before"), 1, "nothing shown twice");
    assert_eq!(bob.count_text("while bob was away"), 1, "nothing missed");
}

#[test]
fn messages_about_another_room_change_nothing() {
    let (_relay, alice, mut bob) = two_members();
    let other = RoomName::new("elsewhere").unwrap();
    let (asked, shown, members) = (bob.link.len(), bob.shown.len(), bob.room.members());
    for msg in [
        RelayMsg::Joined {
            room: other.clone(),
            head_seq: 7,
            epoch: 3,
            online: Vec::new(),
        },
        RelayMsg::BackfillDone {
            room: other.clone(),
            up_to: 7,
            complete: true,
        },
        RelayMsg::Presence {
            room: other.clone(),
            member: alice.fp(),
            online: false,
        },
        RelayMsg::Rejected {
            request: 1,
            room: other.clone(),
            reason: Rejection::NotJoined,
        },
    ] {
        bob.receive(msg);
    }
    assert_eq!(bob.link.len(), asked, "{:?}", bob.link);
    assert_eq!(bob.shown.len(), shown, "{:?}", bob.shown);
    assert_eq!(bob.room.members(), members, "alice is still online");
}

#[test]
fn the_links_own_messages_are_left_to_the_caller() {
    let (_relay, _alice, mut bob) = two_members();
    let relay = relay_id();
    for msg in [
        RelayMsg::Ping { nonce: 1 },
        RelayMsg::Pong { nonce: 2 },
        RelayMsg::Closing {
            reason: hush_proto::msg::CloseReason::Idle,
        },
        RelayMsg::Left { room: room_name() },
    ] {
        let actions = bob.room.on_relay(msg, relay.public(), Instant::now());
        assert!(actions.is_empty(), "{actions:?}");
    }
}

#[test]
fn quitting_sends_leave_only_after_the_user_left() {
    let (_relay, _alice, mut bob) = two_members();
    assert!(bob.room.on_quit().is_empty(), "a plain quit stays a member");
    let actions = bob.room.leave();
    bob.handle(actions);
    assert_eq!(
        bob.room.on_quit(),
        vec![Action::Send(ClientMsg::Leave { room: room_name() })]
    );
}
