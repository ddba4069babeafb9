//! 7. Nicknames.

use crate::harness::*;

#[test]
fn nick_change_and_same_nick_warning() {
    let (mut relay, mut alice, mut bob, mut carol) = three_members();
    for m in [&mut alice, &mut bob, &mut carol] {
        m.clear_shown();
    }
    bob.set_nick("robert");
    pump(&mut relay, &mut [&mut alice, &mut bob, &mut carol]);
    for m in [&alice, &carol] {
        assert!(
            m.notices()
                .iter()
                .any(|n| matches!(n, Notice::NickChanged { new, .. } if new == "robert")),
            "{:?}",
            m.shown
        );
        assert!(m.warnings().is_empty(), "{:?}", m.warnings());
        assert_eq!(
            m.room.whois("robert"),
            vec![(bob.fp(), "robert".to_owned())]
        );
    }

    carol.set_nick("robert");
    pump(&mut relay, &mut [&mut alice, &mut bob, &mut carol]);
    for m in [&alice, &bob] {
        assert!(
            m.warnings()
                .iter()
                .any(|(k, from)| k == "same_nick" && *from == Some(carol.fp())),
            "{:?}",
            m.shown
        );
        assert_eq!(m.room.whois("robert").len(), 2);
    }

    carol.send_text("it's me, robert");
    pump(&mut relay, &mut [&mut alice, &mut bob, &mut carol]);
    for m in [&alice, &bob] {
        let shown: Vec<&Shown> = m
            .shown
            .iter()
            .filter(|e| matches!(e, Shown::Message { .. }))
            .collect();
        assert_eq!(shown.len(), 1);
        let Shown::Message {
            from,
            nick,
            same_nick,
            ..
        } = shown[0]
        else {
            unreachable!()
        };
        assert_eq!(*from, carol.fp());
        assert_eq!(nick, "robert");
        assert!(!same_nick.is_empty(), "the same-nick mark is missing");
        assert!(same_nick.contains(&bob.fp()));
    }
    no_errors(&[&alice, &bob, &carol]);
}
