//! 3. Replay.

use crate::harness::*;

#[test]
fn replayed_message_is_dropped() {
    let (mut relay, mut alice, mut bob, mut carol) = three_members();
    alice.send_text("hello");
    pump(&mut relay, &mut [&mut alice, &mut bob, &mut carol]);
    assert_eq!(bob.count_text("hello"), 1);
    let original = relay
        .log
        .iter()
        .rev()
        .find(|e| e.event.kind == EventKind::Message)
        .unwrap()
        .clone();

    // The relay sequences the very same event again.
    let replayed = relay
        .publish(alice.fp(), 999, original.event.clone())
        .unwrap();
    assert_ne!(replayed.seq, original.seq);
    pump(&mut relay, &mut [&mut alice, &mut bob, &mut carol]);

    for m in [&bob, &carol, &alice] {
        assert_eq!(m.count_text("hello"), 1, "shown twice: {:?}", m.shown);
        assert!(
            m.warnings()
                .iter()
                .any(|(k, from)| k == "replay" && *from == Some(alice.fp())),
            "{:?}",
            m.shown
        );
    }
    no_errors(&[&alice, &bob, &carol]);
}
