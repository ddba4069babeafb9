//! 8. Messages typed before admission.

use crate::harness::*;

#[test]
fn messages_typed_before_admission_are_sent_once_admitted() {
    let (mut relay, mut alice, mut bob) = two_members();
    let mut carol = Member::new(carol_id(), "carol");

    // Typed before even connecting.
    carol.send_text("typed before connecting");
    connect(&relay, &mut carol, &mut [&mut alice, &mut bob]);
    // Typed while the join request waits.
    carol.send_text("typed while waiting");
    assert!(
        carol
            .notices()
            .iter()
            .filter(|n| matches!(n, Notice::NotAdmittedYet | Notice::CatchingUp))
            .count()
            >= 2,
        "{:?}",
        carol.shown
    );
    assert!(
        carol
            .outbox
            .iter()
            .all(|(_, e)| e.kind == EventKind::JoinRequest),
        "nothing sent before admission"
    );

    pump(&mut relay, &mut [&mut alice, &mut bob, &mut carol]);
    assert!(carol.room.is_member());
    for m in [&alice, &bob, &carol] {
        let from_carol: Vec<String> = m
            .messages()
            .into_iter()
            .filter(|(fp, _, _)| *fp == carol.fp())
            .map(|(_, t, _)| t)
            .collect();
        assert_eq!(
            from_carol,
            vec![
                "typed before connecting".to_owned(),
                "typed while waiting".to_owned()
            ],
            "{:?}",
            m.shown
        );
        assert!(m.warnings().is_empty(), "{:?}", m.warnings());
    }
    no_errors(&[&alice, &bob, &carol]);
}
