//! The proofs of concept of the 2026-12 security audit
//! (`../shared/reviews/2026-12-security-audit.md`, appendix A), as
//! regressions: each reproduced an attack on protocol 1 and must fail
//! against protocol 2. And the send barrier, the defence against a relay
//! that withholds a removal.

use crate::harness::*;

/// A full commit on `parent` by `by`, keeping `people`, under `settings`:
/// what a member's client makes, or a hostile one.
fn rekey(
    by: &Identity,
    (parent, parent_commit): (u64, [u8; 32]),
    people: &[Arc<Identity>],
    settings: &e2e::RoomSettings,
) -> RoomEvent {
    let payload = Payload::Commit(e2e::Commit {
        parent_epoch: parent,
        parent_commit,
        committer_key: by.public().spki_der().to_vec(),
        members: roster_of(people),
        envelopes: envelopes_for(people),
        settings: settings.clone(),
        history: Vec::new(),
        names_salt: [0; 16],
        confirm: [0; 32],
    });
    let payload = confirmed(payload, &forged_key(), parent + 1, by);
    sign_event(
        by,
        by.fingerprint(),
        EventKind::Commit,
        parent + 1,
        &payload,
    )
}

/// Audit H1, PoC1: a kicked member front-runs every removal commit with
/// a valid rekey that keeps it in. Protocol 1 let the first commit per
/// epoch win, so it stayed in for ever, silently, and read on. Now a
/// commit by a member whose removal is pending is invalid (rule 3), and
/// one that keeps it is too (rule 6): the honest removal is taken.
#[test]
fn audit_poc1_a_kicked_member_cannot_keep_itself_in_with_valid_rekeys() {
    let (mut relay, mut alice, mut bob, mut carol) = three_members();
    let settings = alice.room.settings().unwrap().clone();
    let everyone = [alice_id(), bob_id(), carol_id()];
    let start = alice.room.epoch();
    let actions = alice
        .room
        .kick(&carol_id().fingerprint().to_string())
        .unwrap();
    alice.handle(actions);
    flush(&mut relay, &mut [&mut alice]);
    deliver(&relay, &mut [&mut alice, &mut bob, &mut carol]);
    carol.outbox.clear();
    alice.clear_shown();
    bob.clear_shown();
    for _ in 0..5 {
        carol.outbox.clear();
        // Carol's rekey always reaches the relay first.
        let parent = (alice.room.epoch(), alice.room.commit_id().unwrap());
        let ev = rekey(&carol.id, parent, &everyone, &settings);
        relay.publish(carol.fp(), 0, ev).unwrap();
        alice.tick(fallback_time());
        bob.tick(fallback_time());
        flush(&mut relay, &mut [&mut alice, &mut bob]);
        deliver(&relay, &mut [&mut alice, &mut bob, &mut carol]);
    }
    carol.outbox.clear();
    for m in [&alice, &bob] {
        assert!(!m.roster().contains(&carol.fp()), "carol was removed");
        assert_eq!(m.room.epoch(), start + 1, "one epoch: the removal");
        assert!(
            m.shown.iter().any(|s| matches!(s,
                Shown::Warning { warning: Warning::NotAllowed(hush_room::NotAllowed::CommitWhileDeparting), from: Some(p), .. }
                    if p.fingerprint == carol.fp())),
            "her first rekey was refused, and said so: {:?}",
            m.shown
        );
    }
    alice.send_text("said after carol was kicked");
    pump(&mut relay, &mut [&mut alice, &mut bob]);
    deliver(&relay, &mut [&mut carol]);
    assert_eq!(bob.count_text("said after carol was kicked"), 1);
    assert_eq!(carol.count_text("said after carol was kicked"), 0);
    no_errors(&[&alice, &bob]);
}

/// Audit H1 and M1, PoC2: an outsider's stream of garbage commits. Protocol
/// 1 gave each a void epoch that kept the old key (which the kicked member
/// holds), stalled the removal, and grew every saved state by a roster per
/// commit. Now they are skipped: no epoch is used up, the removal is
/// taken, and the saved state does not grow.
#[test]
fn audit_poc2_a_flood_of_garbage_commits_changes_nothing() {
    const ROUNDS: u64 = 200;
    let (mut relay, mut alice, mut bob, mut carol) = three_members();
    let mallory = mallory_id();
    let start = alice.room.epoch();
    let before = encode(&alice.room.snapshot()).len();
    let actions = alice
        .room
        .kick(&carol_id().fingerprint().to_string())
        .unwrap();
    alice.handle(actions);
    flush(&mut relay, &mut [&mut alice]);
    deliver(&relay, &mut [&mut alice, &mut bob, &mut carol]);
    carol.outbox.clear();
    for _ in 0..ROUNDS {
        let junk = RoomEvent {
            room: room_name(),
            sender: mallory.fingerprint(),
            kind: EventKind::Commit,
            epoch: relay.epoch + 1,
            body: vec![0xff],
        };
        relay.publish(mallory.fingerprint(), 0, junk).unwrap();
        alice.tick(fallback_time());
        bob.tick(fallback_time());
        flush(&mut relay, &mut [&mut alice, &mut bob]);
        deliver(&relay, &mut [&mut alice, &mut bob, &mut carol]);
        carol.outbox.clear();
    }
    assert!(
        relay.epoch >= start + ROUNDS,
        "the relay sequenced them all"
    );
    for m in [&alice, &bob] {
        assert!(!m.roster().contains(&carol.fp()), "the removal was taken");
        assert_eq!(m.room.epoch(), start + 1, "no epoch used up by garbage");
    }
    alice.send_text("said after the removal");
    pump(&mut relay, &mut [&mut alice, &mut bob]);
    deliver(&relay, &mut [&mut carol]);
    assert_eq!(bob.count_text("said after the removal"), 1);
    assert_eq!(carol.count_text("said after the removal"), 0);
    // What grows is what any event adds: the chain head after each recent
    // seq (bounded). Protocol 1 added a roster copy per commit (≈1.4 KB).
    let after = encode(&alice.room.snapshot()).len();
    assert!(
        after < before + ROUNDS as usize * 48,
        "the saved state grew from {before} to {after} bytes"
    );
}

/// The send barrier: once a removal has been pending longer than
/// `REMOVAL_GRACE`, what a member types waits for the commit that removes
/// the departing member, who holds the current key. A relay withholding
/// that commit stalls the room; it cannot let them read on.
#[test]
fn messages_wait_for_a_pending_removal_that_the_relay_withholds() {
    let (mut relay, mut alice, mut bob, mut carol) = three_members();
    let actions = carol.room.leave();
    carol.handle(actions);
    flush(&mut relay, &mut [&mut carol]);
    deliver(&relay, &mut [&mut alice, &mut bob, &mut carol]);
    // The designated member's removal commit is ready, but the relay
    // withholds it (and any fallback commit).
    // Real time passes (the simulated relay drives rooms with the clock).
    std::thread::sleep(hush_room::REMOVAL_GRACE + Duration::from_millis(100));
    let later = Instant::now();
    let mut withheld = Vec::new();
    for m in [&mut alice, &mut bob] {
        withheld.extend(
            std::mem::take(&mut m.outbox)
                .into_iter()
                .map(|x| (m.fp(), x)),
        );
    }
    assert!(
        withheld
            .iter()
            .any(|(_, (_, e))| e.kind == EventKind::Commit)
    );
    alice.tick(later);
    alice.outbox.clear();
    alice.clear_shown();
    alice.send_text("for the ones who stay");
    alice.set_nick("alice-renamed");
    assert!(
        alice.outbox.is_empty(),
        "sealed under carol's key: {:?}",
        alice.outbox
    );
    assert!(
        alice.notices().iter().any(|n| matches!(n,
            Notice::WaitingForRemoval { members } if members.iter().any(|p| p.fingerprint == carol.fp()))),
        "the user is told why: {:?}",
        alice.shown
    );
    // A reconnect (the relay closes the link) does not let it out either.
    disconnect(&mut alice, &mut [&mut bob, &mut carol]);
    connect(&relay, &mut alice, &mut [&mut bob, &mut carol]);
    assert!(
        !alice
            .outbox
            .iter()
            .any(|(_, e)| e.kind == EventKind::Message),
        "sent on catching up after a reconnect: {:?}",
        alice.outbox
    );
    // The relay lets the commit through: the line goes out in the new
    // epoch, which carol cannot read.
    for (from, (request, event)) in withheld {
        relay.publish(from, request, event).unwrap();
    }
    pump(&mut relay, &mut [&mut alice, &mut bob]);
    deliver(&relay, &mut [&mut carol]);
    assert!(!bob.roster().contains(&carol.fp()));
    assert_eq!(bob.count_text("for the ones who stay"), 1);
    assert_eq!(carol.count_text("for the ones who stay"), 0);
    // The rename typed meanwhile went out in the new epoch too.
    let renamed = |m: &Member| {
        m.notices().iter().any(|n| {
            matches!(n, Notice::NickChanged { member, new, .. }
                if *member == alice.fp() && new == "alice-renamed")
        })
    };
    assert!(renamed(&bob), "bob learns the new name: {:?}", bob.shown);
    assert!(!renamed(&carol), "carol must not: {:?}", carol.shown);
    no_errors(&[&alice, &bob]);
}

/// Audit M3, PoC3: the relay re-sequences the creator's old invite right
/// after the creator kicked the invitee. Protocol 1 took it as a fresh
/// invite and readmitted the kicked member at their next request. Now a
/// membership event carries where its sender stood (run, counter, seen
/// seq and head): a repeated copy is refused.
#[test]
fn audit_poc3_a_replayed_invite_does_not_readmit_a_kicked_member() {
    let (mut relay, mut alice) = creator_with(true, e2e::HistoryVisibility::Joined);
    let mut bob = Member::new(bob_id(), "bob");
    connect(&relay, &mut bob, &mut [&mut alice]);
    let actions = alice.room.invite(&bob.fp().to_string()).unwrap();
    alice.handle(actions);
    pump(&mut relay, &mut [&mut alice, &mut bob]);
    assert!(bob.room.is_member());
    let invite = relay
        .log
        .iter()
        .find(|e| e.event.kind == EventKind::Control)
        .unwrap()
        .event
        .clone();
    let actions = alice
        .room
        .kick(&bob_id().fingerprint().to_string())
        .unwrap();
    alice.handle(actions);
    flush(&mut relay, &mut [&mut alice]);
    bob.outbox.clear();
    deliver(&relay, &mut [&mut alice, &mut bob]);
    bob.outbox.clear();
    relay.append(invite);
    deliver(&relay, &mut [&mut alice, &mut bob]);
    bob.outbox.clear();
    alice.tick(fallback_time());
    flush(&mut relay, &mut [&mut alice]);
    deliver(&relay, &mut [&mut alice, &mut bob]);
    assert!(!bob.room.is_member(), "bob was removed");
    assert!(
        alice.shown.iter().any(|s| matches!(
            s,
            Shown::Warning {
                warning: Warning::Replay(hush_room::Replay::RepeatedMembership),
                ..
            }
        )),
        "the replay is reported: {:?}",
        alice.shown
    );
    disconnect(&mut bob, &mut [&mut alice]);
    let mut again = Member::new(bob_id(), "bob");
    connect(&relay, &mut again, &mut [&mut alice]);
    pump(&mut relay, &mut [&mut alice, &mut again]);
    alice.tick(fallback_time());
    pump(&mut relay, &mut [&mut alice, &mut again]);
    assert!(!again.room.is_member(), "the kicked member was let back in");
}

/// An invite the creator signed before a kick (in another run, so not a
/// copy members remember) is superseded by the kick; one signed after
/// having seen it lets the member back in, as the creator wants.
#[test]
fn a_kick_supersedes_every_invite_signed_before_it() {
    let (mut relay, mut alice) = creator_with(true, e2e::HistoryVisibility::Joined);
    let mut bob = Member::new(bob_id(), "bob");
    connect(&relay, &mut bob, &mut [&mut alice]);
    let actions = alice.room.invite(&bob.fp().to_string()).unwrap();
    alice.handle(actions);
    pump(&mut relay, &mut [&mut alice, &mut bob]);
    let before_kick = relay.last_seq();
    let head_before_kick = relay.head();
    let actions = alice
        .room
        .kick(&bob_id().fingerprint().to_string())
        .unwrap();
    alice.handle(actions);
    pump(&mut relay, &mut [&mut alice, &mut bob]);
    alice.tick(fallback_time());
    pump(&mut relay, &mut [&mut alice, &mut bob]);
    assert!(!alice.roster().contains(&bob.fp()), "bob was removed");
    disconnect(&mut bob, &mut [&mut alice]);
    // The relay holds an invite alice signed in another run, before the
    // kick, and sequences it now.
    let mut session = [0u8; 16];
    hush_crypto::random_bytes(&mut session);
    let old = Payload::Invite(e2e::MemberRef {
        member: bob.fp(),
        at: e2e::Position {
            session,
            counter: 0,
            seen_seq: before_kick,
            seen_head: head_before_kick,
        },
    });
    let ev = sign_event(
        &alice_id(),
        alice.fp(),
        EventKind::Control,
        alice.room.epoch(),
        &old,
    );
    relay.append(ev);
    alice.clear_shown();
    let mut again = Member::new(bob_id(), "bob");
    connect(&relay, &mut again, &mut [&mut alice]);
    pump(&mut relay, &mut [&mut alice, &mut again]);
    alice.tick(fallback_time());
    pump(&mut relay, &mut [&mut alice, &mut again]);
    assert!(!again.room.is_member(), "readmitted by a superseded invite");
    assert!(
        alice.shown.iter().any(|s| matches!(s,
            Shown::Warning { warning: Warning::Replay(hush_room::Replay::InviteBeforeKick { member }), .. }
                if member.fingerprint == bob_id().fingerprint())),
        "{:?}",
        alice.shown
    );
    // Alice invites bob again, having seen the kick: that one counts.
    let actions = alice.room.invite(&again.fp().to_string()).unwrap();
    alice.handle(actions);
    pump(&mut relay, &mut [&mut alice, &mut again]);
    alice.tick(fallback_time());
    pump(&mut relay, &mut [&mut alice, &mut again]);
    assert!(again.room.is_member(), "{:?}", alice.shown);
}

/// Audit M4: commits carried no key confirmation, so a committer could
/// hand one member another key than the others, silently. Now every
/// member that holds the new key checks the commit's confirmation: the
/// member given another key refuses the commit and names the committer.
#[test]
fn audit_m4_a_member_given_another_key_than_the_others_refuses_the_commit() {
    let (mut relay, mut alice, mut bob, mut carol) = three_members();
    let before = alice.room.epoch();
    let settings = alice.room.settings().unwrap().clone();
    let everyone = [alice_id(), bob_id(), carol_id()];
    // Bob rekeys, confirming the key alice and he get, and wraps carol
    // another one.
    let mut c = e2e::Commit {
        parent_epoch: before,
        parent_commit: alice.room.commit_id().unwrap(),
        committer_key: bob_id().public().spki_der().to_vec(),
        members: roster_of(&everyone),
        envelopes: envelopes_for(&everyone),
        settings,
        history: Vec::new(),
        names_salt: [0; 16],
        confirm: [0; 32],
    };
    let other = hush_crypto::Secret32::from_bytes([0x17; 32]);
    c.envelopes[2].wrapped = carol_id()
        .public()
        .wrap(e2e::EPOCH_KEY_LABEL, &other)
        .unwrap()
        .as_bytes()
        .to_vec();
    let payload = confirmed(Payload::Commit(c), &forged_key(), before + 1, &bob_id());
    let ev = sign_event(&bob_id(), bob.fp(), EventKind::Commit, before + 1, &payload);
    for m in [&mut alice, &mut bob, &mut carol] {
        m.clear_shown();
    }
    relay.publish(bob.fp(), 9, ev).unwrap();
    pump(&mut relay, &mut [&mut alice, &mut bob, &mut carol]);
    assert_eq!(
        alice.room.epoch(),
        before + 1,
        "alice holds the confirmed key"
    );
    assert_eq!(carol.room.epoch(), before, "carol refused the commit");
    assert!(
        carol.shown.iter().any(|s| matches!(s,
            Shown::Warning { warning: Warning::BadCommit(hush_room::CommitFlaw::UnconfirmedKey), from: Some(p), .. }
                if p.fingerprint == bob_id().fingerprint())),
        "and named bob: {:?}",
        carol.shown
    );
    assert!(alice.warnings().is_empty(), "{:?}", alice.warnings());
}

/// Members who derive an add-only commit's key check its confirmation too:
/// a committer cannot give a newcomer a key the room does not share.
#[test]
fn an_add_only_commit_without_a_valid_confirmation_is_refused_by_the_members() {
    let (mut relay, mut alice, mut bob) = two_members();
    let before = alice.room.epoch();
    let ev = forged_add(&relay, &alice_id(), &[carol_id()]);
    for m in [&mut alice, &mut bob] {
        m.clear_shown();
    }
    relay.publish(alice.fp(), 9, ev).unwrap();
    pump(&mut relay, &mut [&mut alice, &mut bob]);
    for m in [&alice, &bob] {
        assert_eq!(m.room.epoch(), before, "{:?}", m.shown);
        assert!(!m.roster().contains(&carol_id().fingerprint()));
        assert!(
            m.warning_kinds().iter().any(|k| k == "bad_commit"),
            "{:?}",
            m.shown
        );
    }
}

/// Delivers `events` to a newcomer the way a relay answers its backfill,
/// in one page, and completes it.
fn newcomer_reads(m: &mut Member, events: Vec<SequencedEvent>, last: u64, epoch: u64) {
    m.receive(RelayMsg::Joined {
        room: room_name(),
        head_seq: last,
        epoch,
        online: Vec::new(),
    });
    m.connected = true;
    for ev in events {
        m.deliver(ev);
    }
    m.delivered = last;
    m.receive(RelayMsg::BackfillDone {
        room: room_name(),
        up_to: last,
        complete: true,
    });
}

/// Audit M2, PoC4: with retention, protocol 1 kept only the room's latest
/// commit, whatever it was: an outsider's commit became the room every
/// newcomer trusted, and a newcomer it listed sealed its messages to the
/// outsider. Now the relay never prunes membership events, so a newcomer
/// reads the room from its creation and refuses the outsider's commit as
/// every member does; and a newcomer shown a log that does not start at
/// the room's creation trusts no roster.
#[test]
fn audit_poc4_after_retention_an_outsiders_commit_captures_no_newcomer() {
    let (mut relay, mut alice, mut bob) = two_members();
    let settings = alice.room.settings().unwrap().clone();
    let mallory = mallory_id();
    for i in 0..5 {
        alice.send_text(&format!("old {i}"));
    }
    pump(&mut relay, &mut [&mut alice, &mut bob]);
    // Mallory commits a room of her own and carol's, for the next epoch.
    let parent = alice.room.epoch();
    let people = [mallory.clone(), carol_id()];
    let payload = confirmed(
        Payload::Commit(e2e::Commit {
            parent_epoch: parent,
            parent_commit: alice.room.commit_id().unwrap(),
            committer_key: mallory.public().spki_der().to_vec(),
            members: roster_of(&people),
            envelopes: envelopes_for(&people),
            settings,
            history: Vec::new(),
            names_salt: [0; 16],
            confirm: [0; 32],
        }),
        &forged_key(),
        parent + 1,
        &mallory,
    );
    let ev = sign_event(
        &mallory,
        mallory.fingerprint(),
        EventKind::Commit,
        parent + 1,
        &payload,
    );
    relay.publish(mallory.fingerprint(), 1, ev).unwrap();
    pump(&mut relay, &mut [&mut alice, &mut bob]);
    assert_eq!(alice.room.epoch(), parent, "the members refused it");
    // Retention prunes the messages: every membership event stays.
    let last = relay.last_seq();
    let kept: Vec<SequencedEvent> = relay
        .log
        .iter()
        .filter(|e| e.event.kind != EventKind::Message)
        .cloned()
        .collect();
    let mut carol = Member::new(carol_id(), "carol");
    for o in [&mut alice, &mut bob] {
        o.receive(RelayMsg::Presence {
            room: room_name(),
            member: carol.fp(),
            online: true,
        });
    }
    newcomer_reads(&mut carol, kept, last, relay.epoch);
    assert!(!carol.room.is_member(), "carol took mallory's room");
    assert!(
        carol.warning_kinds().iter().any(|k| k == "not_member"),
        "{:?}",
        carol.shown
    );
    // She asks the real members, who admit her.
    pump(&mut relay, &mut [&mut alice, &mut bob, &mut carol]);
    assert!(carol.room.is_member(), "{:?}", carol.shown);
    assert!(!carol.roster().contains(&mallory.fingerprint()));
    assert_eq!(carol.roster().len(), 3);

    // A relay that withholds the earlier commits and shows a newcomer only
    // mallory's: no roster is taken on trust.
    let only_mallorys: Vec<SequencedEvent> = relay
        .log
        .iter()
        .filter(|e| e.event.sender == mallory.fingerprint())
        .cloned()
        .collect();
    let mut dave = Member::new(carol_id(), "carol");
    newcomer_reads(&mut dave, only_mallorys, last, relay.epoch);
    assert!(!dave.room.is_member());
    assert!(dave.roster().is_empty(), "{:?}", dave.roster());
    assert!(
        dave.warning_kinds().iter().any(|k| k == "missing_commit"),
        "{:?}",
        dave.shown
    );
}

/// Issue #13 item 7 (usability review B3): a relay whose log was rewound
/// (restored from a backup, wiped) or that lies. Its log of the room ends
/// before what a member processed: the member says so at once, stops the
/// room, and neither shows nor sends anything more of it.
#[test]
fn a_rewound_relay_gets_a_rollback_warning() {
    let (mut relay, mut alice, mut bob) = two_members();
    alice.send_text("before the rewind");
    pump(&mut relay, &mut [&mut alice, &mut bob]);
    let ours = bob.room.last_seq();
    disconnect(&mut bob, &mut [&mut alice]);
    bob.clear_shown();
    // The relay comes back with an older copy of its log.
    bob.receive(RelayMsg::Joined {
        room: room_name(),
        head_seq: 1,
        epoch: 1,
        online: Vec::new(),
    });
    assert!(
        bob.shown.iter().any(|s| matches!(s,
            Shown::Warning { warning: Warning::Rollback { ours: o, relay: 1 }, .. } if *o == ours)),
        "{:?}",
        bob.shown
    );
    assert!(bob.outbox.is_empty(), "no backfill of a rewound log");
    // What it then serves is not shown, and what bob types is not sent.
    let mut forged = relay.log[ours as usize - 1].clone();
    forged.seq = ours + 1;
    bob.deliver(forged);
    bob.send_text("into the void");
    assert!(bob.messages().is_empty(), "{:?}", bob.messages());
    assert!(
        bob.outbox.iter().all(|(_, e)| e.kind != EventKind::Message),
        "{:?}",
        bob.outbox
    );
    assert!(bob.notices().contains(&Notice::NotSentRewound));
}

/// The relay serves, at a seq a member already processed, another event
/// than it did: a rewound log that grew again, or a lie. Protocol 1
/// dropped it silently as a duplicate.
#[test]
fn another_event_at_a_processed_seq_is_a_rollback() {
    let (mut relay, mut alice, mut bob) = two_members();
    alice.send_text("the real one");
    pump(&mut relay, &mut [&mut alice, &mut bob]);
    let seq = relay.last_seq();
    let mut other = relay.log[seq as usize - 1].clone();
    other.event.body.push(0);
    bob.clear_shown();
    bob.deliver(other);
    assert!(
        bob.shown.iter().any(|s| matches!(s,
            Shown::Warning { warning: Warning::Rollback { relay: r, .. }, .. } if *r == seq)),
        "{:?}",
        bob.shown
    );
    // An exact copy is just an overlap, as before.
    let (mut relay2, mut carol, mut dave) = two_members();
    carol.send_text("once");
    pump(&mut relay2, &mut [&mut carol, &mut dave]);
    let same = relay2.log.last().unwrap().clone();
    dave.clear_shown();
    dave.deliver(same);
    assert!(dave.warnings().is_empty(), "{:?}", dave.warnings());
}

/// Audit L1: a newcomer unwraps history keys only in a room whose rules
/// share history, and tries at most one per epoch: a committer cannot make
/// it run a private-key operation on bytes of its choosing a thousand
/// times, nor hand it history a `joined` room hides.
#[test]
fn history_keys_open_only_in_shared_rooms_and_once_per_epoch() {
    use e2e::HistoryVisibility::{Joined, Shared};
    for (history, garbage_first, readable) in [
        (Joined, false, false),
        (Shared, false, true),
        (Shared, true, false),
    ] {
        let (mut relay, mut alice) = creator_with(false, history);
        // A rekey under the tests' known key, so its key can be wrapped
        // as history here.
        let old = alice.room.epoch() + 1;
        let settings = alice.room.settings().unwrap().clone();
        let rekey = Payload::Commit(e2e::Commit {
            parent_epoch: old - 1,
            parent_commit: alice.room.commit_id().unwrap(),
            committer_key: alice_id().public().spki_der().to_vec(),
            members: roster_of(&[alice_id()]),
            envelopes: envelopes_for(&[alice_id()]),
            settings,
            history: Vec::new(),
            names_salt: [0; 16],
            confirm: [0; 32],
        });
        let rekey = confirmed(rekey, &forged_key(), old, &alice_id());
        let ev = sign_event(&alice_id(), alice.fp(), EventKind::Commit, old, &rekey);
        relay.publish(alice.fp(), 1, ev).unwrap();
        pump(&mut relay, &mut [&mut alice]);
        assert_eq!(alice.room.epoch(), old);
        alice.send_text("before carol");
        pump(&mut relay, &mut [&mut alice]);
        // Carol asks; alice's own admission is withheld, and one the test
        // makes (as alice) is sequenced instead, with history keys.
        let mut carol = Member::new(carol_id(), "carol");
        connect(&relay, &mut carol, &mut [&mut alice]);
        flush(&mut relay, &mut [&mut carol]);
        deliver(&relay, &mut [&mut alice]);
        alice.outbox.clear();
        let epoch = old + 1;
        let salt = e2e::add_epoch_salt(&room_name(), epoch, &alice.fp(), &[carol.fp()]);
        let key = hush_crypto::derive_secret(&forged_key(), &salt, e2e::ADD_EPOCH_KEY_INFO);
        let wrap = |k: &hush_crypto::Secret32, label: &str| {
            carol_id()
                .public()
                .wrap(label, k)
                .unwrap()
                .as_bytes()
                .to_vec()
        };
        let mut envelopes = Vec::new();
        if garbage_first {
            envelopes.push(e2e::HistoryEnvelope {
                member: carol.fp(),
                epoch: old,
                wrapped: vec![7; 384],
            });
        }
        envelopes.push(e2e::HistoryEnvelope {
            member: carol.fp(),
            epoch: old,
            wrapped: wrap(&forged_key(), e2e::HISTORY_KEY_LABEL),
        });
        let add = Payload::Add(e2e::AddCommit {
            parent_epoch: old,
            parent_commit: alice.room.commit_id().unwrap(),
            added: roster_of(&[carol_id()]),
            envelopes: vec![e2e::KeyEnvelope {
                member: carol.fp(),
                wrapped: wrap(&key, e2e::EPOCH_KEY_LABEL),
            }],
            history: envelopes,
            names: Vec::new(),
            names_salt: [0; 16],
            confirm: [0; 32],
        });
        let add = confirmed(add, &key, epoch, &alice_id());
        let ev = sign_event(&alice_id(), alice.fp(), EventKind::Commit, epoch, &add);
        relay.publish(alice.fp(), 2, ev).unwrap();
        pump(&mut relay, &mut [&mut alice, &mut carol]);
        assert!(carol.room.is_member(), "{:?}", carol.shown);
        assert_eq!(
            carol.count_text("before carol"),
            usize::from(readable),
            "{history:?}, garbage first: {garbage_first}: {:?}",
            carol.shown
        );
    }
}

/// Audit I1: a body in a non-canonical encoding (an over-long varint) is
/// malformed, not an equivalent copy: a relay re-encoding bodies would
/// otherwise split the members' hash chains.
#[test]
fn a_body_re_encoded_with_an_overlong_varint_is_malformed() {
    let (mut relay, mut alice, mut bob) = two_members();
    alice.send_text("canonical");
    flush(&mut relay, &mut [&mut alice]);
    let mut ev = relay.log.pop().unwrap();
    // SignedBody = (payload: bytes, signature: bytes): the payload length
    // is the first varint. Write it one byte longer (continuation bit set,
    // then a zero group), the same number.
    let body = &ev.event.body;
    let (len, used) = {
        let (mut n, mut i) = (0u64, 0);
        loop {
            n |= u64::from(body[i] & 0x7f) << (7 * i);
            i += 1;
            if body[i - 1] & 0x80 == 0 {
                break (n, i);
            }
        }
    };
    let mut varint = Vec::new();
    let mut v = len;
    loop {
        varint.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
        if v == 0 {
            break;
        }
    }
    varint.push(0);
    let mut longer = varint;
    longer.extend_from_slice(&body[used..]);
    assert_ne!(&longer, body);
    ev.event.body = longer;
    relay.log.push(ev);
    bob.clear_shown();
    deliver(&relay, &mut [&mut bob]);
    assert!(bob.messages().is_empty(), "{:?}", bob.messages());
    assert!(
        bob.warning_kinds().iter().any(|k| k == "malformed"),
        "{:?}",
        bob.shown
    );
}

/// The room fingerprint (`/verify`) binds the commit chain, which the
/// relay never prunes: a member who joined after retention pruned the
/// messages reads out the same digits as the members who saw it all.
/// (Protocol 1 bound the hash-chain head instead, which such a member
/// cannot know, so their digits never matched.)
#[test]
fn verify_digits_agree_after_retention() {
    let (mut relay, mut alice, mut bob) = two_members();
    for i in 0..5 {
        alice.send_text(&format!("old {i}"));
    }
    pump(&mut relay, &mut [&mut alice, &mut bob]);
    let last = relay.last_seq();
    let kept: Vec<SequencedEvent> = relay
        .log
        .iter()
        .filter(|e| e.event.kind != EventKind::Message)
        .cloned()
        .collect();
    let mut carol = Member::new(carol_id(), "carol");
    for o in [&mut alice, &mut bob] {
        o.receive(RelayMsg::Presence {
            room: room_name(),
            member: carol.fp(),
            online: true,
        });
    }
    newcomer_reads(&mut carol, kept, last, relay.epoch);
    pump(&mut relay, &mut [&mut alice, &mut bob, &mut carol]);
    assert!(carol.room.is_member(), "{:?}", carol.shown);
    let digits = alice.room.room_fingerprint().unwrap();
    assert_eq!(bob.room.room_fingerprint().unwrap(), digits);
    assert_eq!(carol.room.room_fingerprint().unwrap(), digits);
}

/// Audit L5: nicknames are chosen by whoever sends them. `/kick NAME`
/// resolves the name, but asks for the fingerprint (or short id) before
/// acting; received names follow the sender's rules, and names that only
/// look alike are flagged like equal ones.
#[test]
fn names_are_checked_on_receipt_and_never_enough_to_kick() {
    let (mut relay, mut alice, mut bob) = two_members();
    match alice.room.kick("bob") {
        Err(hush_room::Refusal::ConfirmFingerprint { member }) => {
            assert_eq!(member.fingerprint, bob.fp());
        }
        other => panic!("kicked by name: {:?}", other.map(|_| ())),
    }
    assert!(alice.room.kick(&bob.fp().short_id()).is_ok());
    alice.outbox.clear();
    // A name breaking the rules is not taken: the short id stands in.
    bob.set_nick("b(1hZmP4pH)");
    pump(&mut relay, &mut [&mut alice, &mut bob]);
    assert!(
        alice.room.whois("b(1hZmP4pH)").is_empty(),
        "a fake short-id suffix was taken"
    );
    // A look-alike of a member's name is flagged.
    bob.set_nick("ALICE");
    pump(&mut relay, &mut [&mut alice, &mut bob]);
    assert!(
        alice.warning_kinds().iter().any(|k| k == "same_nick"),
        "{:?}",
        alice.shown
    );
}

/// Audit M5: names are sealed. A join request carries none; rosters carry
/// them sealed under a key from the new epoch; a newcomer names itself,
/// sealed, once admitted. And a newcomer sees every member's *current*
/// name (usability review B2: it saw the names of old commits).
#[test]
fn names_travel_sealed_and_newcomers_see_current_ones() {
    let (mut relay, mut alice, mut bob) = two_members();
    alice.set_nick("alicia");
    pump(&mut relay, &mut [&mut alice, &mut bob]);
    let mut carol = Member::new(carol_id(), "carol");
    connect(&relay, &mut carol, &mut [&mut alice, &mut bob]);
    pump(&mut relay, &mut [&mut alice, &mut bob, &mut carol]);
    assert!(carol.room.is_member());
    let names: Vec<String> = carol
        .room
        .members()
        .into_iter()
        .map(|(_, n, _)| n)
        .collect();
    assert!(names.contains(&"alicia".to_owned()), "{names:?}");
    assert!(names.contains(&"bob".to_owned()), "{names:?}");
    // The others learn carol's name from her sealed announcement.
    assert_eq!(
        alice.room.whois("carol"),
        vec![(carol.fp(), "carol".to_owned())]
    );
    // No name is in the clear anywhere in the relay's log.
    for ev in &relay.log {
        for name in ["alice", "alicia", "bob", "carol"] {
            assert!(
                !ev.event
                    .body
                    .windows(name.len())
                    .any(|w| w == name.as_bytes()),
                "{name:?} in the clear in seq {}",
                ev.seq
            );
        }
    }
}

/// Audit I4, by design: a creator's invite and kick power outlives its
/// membership. The creator is told so when it leaves, a member who is
/// not the creator is not, and a kick the creator signs after its
/// removal is still honoured (the key comes from the latest roster that
/// listed it).
#[test]
fn a_creator_who_left_keeps_its_kick_power_and_is_told_so() {
    let (mut relay, mut alice, mut bob, mut carol) = three_members();
    let actions = alice.room.leave();
    alice.handle(actions);
    assert!(
        alice.notices().contains(&Notice::LeavingAsCreator),
        "{:?}",
        alice.shown
    );
    pump(&mut relay, &mut [&mut bob, &mut carol, &mut alice]);
    assert!(!bob.roster().contains(&alice.fp()), "alice was removed");
    let actions = alice.room.kick(&carol.fp().to_string()).unwrap();
    alice.handle(actions);
    pump(&mut relay, &mut [&mut bob, &mut carol, &mut alice]);
    assert!(
        !bob.roster().contains(&carol.fp()),
        "the departed creator's kick counts: {:?}",
        bob.shown
    );
    let actions = bob.room.leave();
    bob.handle(actions);
    assert!(!bob.notices().contains(&Notice::LeavingAsCreator));
}

/// Usability F14: in an open room a kick sticks. The kicked member's next
/// join request is not answered by anyone, until the creator invites them
/// back; then they are admitted as usual.
#[test]
fn a_kick_sticks_in_an_open_room_until_the_creator_invites_back() {
    let (mut relay, mut alice) = creator_with(false, e2e::HistoryVisibility::Joined);
    let mut bob = Member::new(bob_id(), "bob");
    connect(&relay, &mut bob, &mut [&mut alice]);
    pump(&mut relay, &mut [&mut alice, &mut bob]);
    assert!(bob.room.is_member(), "an open room admits bob");
    // An invite is only for someone kicked in an open room.
    assert!(matches!(
        alice.room.invite(&bob.fp().to_string()),
        Err(hush_room::Refusal::RoomIsOpen)
    ));
    let actions = alice.room.kick(&bob.fp().to_string()).unwrap();
    alice.handle(actions);
    pump(&mut relay, &mut [&mut alice, &mut bob]);
    alice.tick(fallback_time());
    pump(&mut relay, &mut [&mut alice, &mut bob]);
    assert!(!alice.roster().contains(&bob.fp()), "bob was removed");
    disconnect(&mut bob, &mut [&mut alice]);

    let mut again = Member::new(bob_id(), "bob");
    connect(&relay, &mut again, &mut [&mut alice]);
    pump(&mut relay, &mut [&mut alice, &mut again]);
    alice.tick(fallback_time());
    pump(&mut relay, &mut [&mut alice, &mut again]);
    assert!(
        !again.room.is_member(),
        "a kicked member is not readmitted by asking"
    );

    let actions = alice.room.invite(&bob.fp().to_string()).unwrap();
    alice.handle(actions);
    pump(&mut relay, &mut [&mut alice, &mut again]);
    alice.tick(fallback_time());
    pump(&mut relay, &mut [&mut alice, &mut again]);
    assert!(again.room.is_member(), "invited back, bob is admitted");
}
