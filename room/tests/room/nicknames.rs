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

/// Usability B7: our own rename reads as everyone else sees it, old name
/// first; renaming to the name we have sends nothing.
#[test]
fn our_own_rename_shows_the_old_name_and_a_repeat_sends_nothing() {
    let (mut relay, mut alice, mut bob) = two_members();
    alice.clear_shown();
    alice.set_nick("alicia");
    pump(&mut relay, &mut [&mut alice, &mut bob]);
    let renamed = |m: &Member| {
        m.notices().iter().any(|n| {
            matches!(n, Notice::NickChanged { old, new, .. } if old == "alice" && new == "alicia")
        })
    };
    assert!(renamed(&alice), "{:?}", alice.shown);
    assert!(renamed(&bob), "{:?}", bob.shown);
    alice.clear_shown();
    alice.set_nick("alicia");
    assert!(alice.outbox.is_empty(), "nothing sent: {:?}", alice.outbox);
    assert!(alice.notices().contains(&Notice::NickUnchanged {
        nick: "alicia".into()
    }));
}

/// Usability B6: a name given at start to a member whose saved state had
/// another one goes out, sealed, once the member has caught up.
#[test]
fn a_name_given_at_start_replaces_the_saved_one_once_caught_up() {
    let (mut relay, mut alice, mut bob) = two_members();
    disconnect(&mut bob, &mut [&mut alice]);
    let actions = bob.room.prefer_nick("robert".into());
    bob.handle(actions);
    assert!(bob.outbox.is_empty(), "not before catching up");
    connect(&relay, &mut bob, &mut [&mut alice]);
    pump(&mut relay, &mut [&mut alice, &mut bob]);
    assert!(
        alice.notices().iter().any(|n| {
            matches!(n, Notice::NickChanged { old, new, .. } if old == "bob" && new == "robert")
        }),
        "{:?}",
        alice.shown
    );
    assert_eq!(bob.room.nick(), "robert");
}
