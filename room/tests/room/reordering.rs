//! 9. Reordering.

use crate::harness::*;

#[test]
fn events_out_of_order_are_shown_in_order() {
    let (mut relay, mut alice, mut bob) = two_members();
    bob.connected = false; // held back: delivered by hand below
    alice.send_text("one");
    alice.send_text("two");
    alice.send_text("three");
    pump(&mut relay, &mut [&mut alice, &mut bob]);
    let n = relay.log.len();
    let e1 = relay.log[n - 3].clone();
    let e2 = relay.log[n - 2].clone();
    let e3 = relay.log[n - 1].clone();
    assert_eq!(bob.delivered, e1.seq - 1);

    bob.deliver(e3.clone());
    assert!(
        bob.messages().is_empty(),
        "shown across a gap: {:?}",
        bob.shown
    );
    bob.deliver(e2.clone());
    assert!(
        bob.messages().is_empty(),
        "shown across a gap: {:?}",
        bob.shown
    );
    bob.deliver(e1.clone());
    let msgs = bob.messages();
    assert_eq!(
        msgs.iter().map(|(_, t, _)| t.as_str()).collect::<Vec<_>>(),
        vec!["one", "two", "three"]
    );
    assert_eq!(
        msgs.iter().map(|(_, _, s)| *s).collect::<Vec<_>>(),
        vec![e1.seq, e2.seq, e3.seq]
    );
    // A late duplicate of an event already processed changes nothing.
    bob.deliver(e2);
    assert_eq!(bob.messages().len(), 3);
    assert!(bob.warnings().is_empty(), "{:?}", bob.warnings());
    assert_eq!(bob.room.last_seq(), e3.seq);

    bob.delivered = e3.seq;
    bob.connected = true;
    alice.send_text("four");
    pump(&mut relay, &mut [&mut alice, &mut bob]);
    assert_eq!(bob.texts(), vec!["one", "two", "three", "four"]);
}
