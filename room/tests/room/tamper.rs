//! 2. Tampering.

use crate::harness::*;

/// Alice, bob, carol; alice says "hello", which `tamper` alters in the
/// relay's log before anyone receives it. Bob must not show it, must show a
/// warning of one of `kinds`, and must still show alice's next message.
fn tamper_case(what: &str, kinds: &[&str], tamper: impl FnOnce(&mut RoomEvent)) {
    let (mut relay, mut alice, mut bob, mut carol) = three_members();
    for m in [&mut alice, &mut bob, &mut carol] {
        m.clear_shown();
    }
    alice.send_text("hello");
    flush(&mut relay, &mut [&mut alice]);
    let at = relay.log.len() - 1;
    let original = relay.log[at].event.clone();
    tamper(&mut relay.log[at].event);
    assert_ne!(
        relay.log[at].event, original,
        "{what}: tampering changed nothing"
    );
    pump(&mut relay, &mut [&mut alice, &mut bob, &mut carol]);

    // Every problem is collected, so one failure tells the whole story.
    let mut problems = Vec::new();
    for (who, m) in [("bob", &bob), ("carol", &carol)] {
        if m.count_text("hello") != 0 {
            problems.push(format!("{who} showed the tampered message"));
        }
        if !m
            .warning_kinds()
            .iter()
            .any(|k| kinds.contains(&k.as_str()))
        {
            problems.push(format!(
                "{who} showed no warning of kind {kinds:?} (shown: {:?})",
                m.shown
            ));
        }
    }

    // The room goes on.
    alice.send_text("still here");
    pump(&mut relay, &mut [&mut alice, &mut bob, &mut carol]);
    for (who, m) in [("bob", &bob), ("carol", &carol)] {
        if m.count_text("still here") != 1 {
            problems.push(format!(
                "{who} did not show alice's next genuine message (last_seq {} of {})",
                m.room.last_seq(),
                relay.last_seq()
            ));
        }
    }
    for (who, m) in [("alice", &alice), ("bob", &bob), ("carol", &carol)] {
        if !m.errors().is_empty() {
            problems.push(format!("{who} showed errors {:?}", m.errors()));
        }
    }
    assert!(problems.is_empty(), "{what}:\n  {}", problems.join("\n  "));
}

fn edit_body(ev: &mut RoomEvent, f: impl FnOnce(&mut SignedBody)) {
    let mut body = signed_body(ev);
    f(&mut body);
    ev.body = encode(&body);
}

fn edit_sealed(ev: &mut RoomEvent, f: impl FnOnce(&mut SealedMessage)) {
    edit_body(ev, |body| {
        let Payload::Message(mut m) = decode::<Payload>(&body.payload).unwrap() else {
            panic!("not a message");
        };
        f(&mut m);
        body.payload = encode(&Payload::Message(m));
    });
}

#[test]
fn tamper_signature_first_byte() {
    tamper_case("signature[0]", &["bad_signature"], |ev| {
        edit_body(ev, |b| b.signature[0] ^= 0x01);
    });
}

#[test]
fn tamper_signature_middle_byte() {
    tamper_case("signature[mid]", &["bad_signature"], |ev| {
        edit_body(ev, |b| {
            let mid = b.signature.len() / 2;
            b.signature[mid] ^= 0x80;
        });
    });
}

#[test]
fn tamper_signature_last_byte() {
    tamper_case("signature[last]", &["bad_signature"], |ev| {
        edit_body(ev, |b| {
            let last = b.signature.len() - 1;
            b.signature[last] ^= 0x10;
        });
    });
}

#[test]
fn tamper_signature_truncated() {
    tamper_case("signature truncated", &["bad_signature"], |ev| {
        edit_body(ev, |b| {
            b.signature.pop();
        });
    });
}

#[test]
fn tamper_ciphertext_first_byte() {
    tamper_case("ciphertext[0]", &["bad_signature"], |ev| {
        edit_sealed(ev, |m| m.ciphertext[0] ^= 0x01);
    });
}

#[test]
fn tamper_ciphertext_tag() {
    tamper_case("ciphertext tag", &["bad_signature"], |ev| {
        edit_sealed(ev, |m| {
            let last = m.ciphertext.len() - 1;
            m.ciphertext[last] ^= 0x40;
        });
    });
}

#[test]
fn tamper_header_counter() {
    tamper_case("counter", &["bad_signature"], |ev| {
        edit_sealed(ev, |m| m.counter += 1);
    });
}

#[test]
fn tamper_header_session() {
    tamper_case("session", &["bad_signature"], |ev| {
        edit_sealed(ev, |m| m.session[3] ^= 0x08);
    });
}

#[test]
fn tamper_header_sent_at() {
    tamper_case("sent_at_ms", &["bad_signature"], |ev| {
        edit_sealed(ev, |m| m.sent_at_ms -= 3_600_000);
    });
}

#[test]
fn tamper_header_seen_head() {
    tamper_case("seen_head", &["bad_signature"], |ev| {
        edit_sealed(ev, |m| m.seen_head[0] ^= 0xff);
    });
}

/// Raw bit flips across the encoded body: in the length prefix, the
/// payload's variant tag, the middle and the end.
#[test]
fn tamper_raw_body_bytes() {
    for pick in [0usize, 1, 2, 3, 20, 200, usize::MAX / 2, usize::MAX] {
        tamper_case(
            &format!("raw body byte {pick}"),
            &["malformed", "bad_signature", "undecryptable"],
            |ev| {
                let len = ev.body.len();
                let at = match pick {
                    usize::MAX => len - 1,
                    p if p == usize::MAX / 2 => len / 2,
                    p => p,
                };
                ev.body[at] ^= 0x01;
            },
        );
    }
}

#[test]
fn tamper_body_trailing_byte() {
    tamper_case("trailing byte", &["malformed"], |ev| ev.body.push(0));
}

#[test]
fn tamper_body_truncated() {
    tamper_case("truncated body", &["malformed"], |ev| {
        ev.body.truncate(ev.body.len() / 2);
    });
}

/// The epoch field moved to an earlier epoch the members know (alice was a
/// member of it): the signature covers the epoch.
#[test]
fn tamper_envelope_epoch_earlier() {
    tamper_case("epoch - 1", &["bad_signature"], |ev| ev.epoch -= 1);
}

/// The epoch field moved to one the room has not reached (the real relay
/// refuses this from a client; a tampered log can still hold it).
#[test]
fn tamper_envelope_epoch_future() {
    tamper_case(
        "epoch + 1",
        &[
            "bad_signature",
            "malformed",
            "not_member",
            "undecryptable",
            "missing_commit",
        ],
        |ev| ev.epoch += 1,
    );
}

#[test]
fn tamper_envelope_kind_commit() {
    tamper_case("kind Commit", &["malformed"], |ev| {
        ev.kind = EventKind::Commit
    });
}

#[test]
fn tamper_envelope_kind_leave() {
    tamper_case("kind Leave", &["malformed"], |ev| {
        ev.kind = EventKind::Leave
    });
}

#[test]
fn tamper_envelope_kind_join_request() {
    tamper_case("kind JoinRequest", &["malformed"], |ev| {
        ev.kind = EventKind::JoinRequest;
    });
}

#[test]
fn tamper_envelope_kind_control() {
    tamper_case("kind Control", &["malformed"], |ev| {
        ev.kind = EventKind::Control
    });
}

#[test]
fn tamper_envelope_sender_bob() {
    tamper_case("sender bob", &["bad_signature"], |ev| {
        ev.sender = bob_id().fingerprint()
    });
}

#[test]
fn tamper_envelope_sender_mallory() {
    tamper_case("sender mallory", &["not_member", "bad_signature"], |ev| {
        ev.sender = mallory_id().fingerprint();
    });
}

#[test]
fn tamper_envelope_room_name() {
    tamper_case(
        "room name",
        &["bad_signature", "malformed", "wrong_room"],
        |ev| ev.room = RoomName::new("other-room").unwrap(),
    );
}

/// A member (carol) who holds the epoch key and signs properly, but sends
/// a ciphertext that does not open: shown as undecryptable, attributed to
/// carol, never as a message.
#[test]
fn member_sends_undecryptable_message() {
    let (mut relay, mut alice, mut bob, mut carol) = three_members();
    let epoch = relay.epoch;
    let ev = sign_event(
        &carol_id(),
        carol.fp(),
        EventKind::Message,
        epoch,
        &garbage_message(),
    );
    relay.publish(carol.fp(), 900, ev).unwrap();
    pump(&mut relay, &mut [&mut alice, &mut bob, &mut carol]);
    for m in [&alice, &bob] {
        assert!(m.messages().is_empty(), "{:?}", m.shown);
        assert!(
            m.warnings()
                .iter()
                .any(|(k, from)| k == "undecryptable" && *from == Some(carol.fp())),
            "{:?}",
            m.shown
        );
    }
}
