//! The commit rules of docs/PROTOCOL.md §9.2.6, one test per rule in the
//! document's order: rules 1 to 8 for full commits, then A1 to A7 for
//! add-only ones. Each asserts what a member notices: the typed warning
//! and the sender it names, and the verdict's effect. Protocol 2: an
//! **invalid** commit is skipped. The relay sequenced it, but no epoch is
//! used up, nobody's membership changes, and the room still talks. One
//! for a parent other than ours is skipped too (superseded). Where a rule
//! is about authority, a member forges too, not only an outsider. Older,
//! fuller tests of the same rule are named where they exist.

use hush_proto::e2e::{AddCommit, Commit, HistoryEnvelope, HistoryVisibility, RoomSettings};
use hush_room::{CommitFlaw, MissingCommit, NotAllowed, Signed, Undecryptable};

use crate::harness::*;

/// `assert_warned!(members, sender => pattern)`: each of `members` was
/// shown a warning matching `pattern` (and its guard) that names `sender`
/// (an identity) as its claimed sender.
macro_rules! assert_warned {
    ($members:expr, $from:expr => $pat:pat $(if $guard:expr)?) => {{
        let from: Fingerprint = $from.fingerprint();
        for m in $members {
            let m: &Member = m;
            assert!(
                m.shown.iter().any(|s| matches!(s,
                    Shown::Warning { warning: $pat, from: Some(p), .. }
                        if p.fingerprint == from $(&& $guard)?)),
                "{} was not warned `{}` from {}: {:?}",
                m.fp().short_id(),
                stringify!($pat),
                from.short_id(),
                m.shown
            );
        }
    }};
}

/// How a test case edits what it forges.
type Edit<T> = fn(&mut T);

fn everyone() -> Vec<Arc<Identity>> {
    vec![alice_id(), bob_id(), carol_id()]
}

fn fp(id: Arc<Identity>) -> Fingerprint {
    id.fingerprint()
}

/// The full commit a member's client would make on `parent`: `people`, a
/// fresh key wrapped to each, under `settings`. Tests edit it into what no
/// honest client sends.
fn full(
    (parent, parent_commit): (u64, [u8; 32]),
    by: &Identity,
    people: &[Arc<Identity>],
    s: &RoomSettings,
) -> Commit {
    Commit {
        parent_epoch: parent,
        parent_commit,
        committer_key: by.public().spki_der().to_vec(),
        members: roster_of(people),
        envelopes: envelopes_for(people),
        settings: s.clone(),
        history: Vec::new(),
        names_salt: [0; 16],
        confirm: [0; 32],
    }
}

/// One more history key than a commit may carry, all for `member`.
fn too_many_history_keys(member: Fingerprint) -> Vec<HistoryEnvelope> {
    let h = HistoryEnvelope {
        member,
        epoch: 1,
        wrapped: Vec::new(),
    };
    vec![h; e2e::MAX_HISTORY_ENVELOPES + 1]
}

/// `payload` as a commit signed by `by`, claiming `sender`, for envelope
/// `epoch`.
fn signed_as(by: &Identity, sender: &Identity, epoch: u64, payload: Payload) -> RoomEvent {
    sign_event(by, sender.fingerprint(), EventKind::Commit, epoch, &payload)
}

fn signed(by: &Identity, epoch: u64, payload: Payload) -> RoomEvent {
    signed_as(by, by, epoch, payload)
}

/// A room through one relay. `members` are the clients that stay in it;
/// alice, its creator, comes first.
struct Scene {
    relay: SimRelay,
    members: Vec<Member>,
}

impl Scene {
    fn three() -> Self {
        let (relay, alice, bob, carol) = three_members();
        let members = vec![alice, bob, carol];
        Self { relay, members }
    }

    fn two() -> Self {
        let (relay, alice, bob) = two_members();
        let members = vec![alice, bob];
        Self { relay, members }
    }

    /// An invite-only room: alice created it and invited bob, who is in.
    fn invite_only() -> Self {
        let (mut relay, mut alice) = creator_with(true, HistoryVisibility::Joined);
        let mut bob = Member::new(bob_id(), "bob");
        connect(&relay, &mut bob, &mut [&mut alice]);
        let actions = alice.room.invite(&bob.fp().to_string()).unwrap();
        alice.handle(actions);
        pump(&mut relay, &mut [&mut alice, &mut bob]);
        assert!(bob.room.is_member());
        let members = vec![alice, bob];
        Self { relay, members }
    }

    /// `by` publishes `ev` through the real relay's checks, then everyone
    /// reads it.
    fn publish_as_is(&mut self, by: &Identity, ev: RoomEvent) {
        self.relay
            .publish(by.fingerprint(), 97, ev)
            .expect("accepted");
        self.pump();
    }

    fn pump(&mut self) {
        let mut members: Vec<&mut Member> = self.members.iter_mut().collect();
        pump(&mut self.relay, &mut members);
    }

    /// The room's epoch, as its members see it (the relay's may be
    /// higher: it sequences invalid commits too).
    fn epoch(&self) -> u64 {
        self.members[0].room.epoch()
    }

    /// The id of the commit that opened the room's epoch, as its members
    /// see it: what a commit on it names as its parent.
    fn link(&self) -> [u8; 32] {
        self.members[0].room.commit_id().unwrap_or([0; 32])
    }

    /// Clears what was shown; the epoch and the roster, before a forgery.
    fn before(&mut self) -> (u64, Vec<Fingerprint>) {
        for m in &mut self.members {
            m.clear_shown();
        }
        (self.epoch(), self.members[0].roster())
    }

    fn full(&self, by: &Identity, people: &[Arc<Identity>]) -> Commit {
        let settings = self.members[0].room.settings().expect("settings");
        full((self.epoch(), self.link()), by, people, settings)
    }

    /// The add-only commit admitting `people` for the room's next epoch.
    fn add(&self, people: &[Arc<Identity>]) -> AddCommit {
        AddCommit {
            parent_epoch: self.epoch(),
            parent_commit: self.link(),
            added: roster_of(people),
            envelopes: envelopes_for(people),
            history: Vec::new(),
            names: Vec::new(),
            names_salt: [0; 16],
            confirm: [0; 32],
        }
    }

    /// `by` publishes `payload` as the commit of the room's next epoch:
    /// the real relay accepts it, as it cannot read it. Then everyone
    /// reads it.
    /// A full commit without a confirmation gets the one its forged key
    /// gives it, as an honest committer's would.
    fn publish(&mut self, by: &Identity, payload: Payload) {
        let epoch = self.epoch() + 1;
        let payload = match payload {
            Payload::Commit(c) if c.confirm == [0; 32] => {
                confirmed(Payload::Commit(c), &forged_key(), epoch, by)
            }
            other => other,
        };
        let (from, ev) = (by.fingerprint(), signed(by, epoch, payload));
        self.relay.publish(from, 99, ev).expect("accepted");
        self.pump();
    }

    /// What only a relay that skips its own checks sequences (a spoofed
    /// sender, an epoch no commit opened). Then everyone reads it.
    fn slip_in(&mut self, ev: RoomEvent) {
        if ev.kind == EventKind::Commit {
            self.relay.epoch = self.relay.epoch.max(ev.epoch);
        }
        self.relay.append(ev);
        self.pump();
    }

    /// Carol's `Leave` is sequenced, not yet read: her removal will be
    /// pending.
    fn carol_is_leaving(&mut self) {
        let actions = self.members[2].room.leave();
        self.members[2].handle(actions);
        flush(&mut self.relay, &mut [&mut self.members[2]]);
    }

    /// Alice kicks bob: sequenced, not yet read.
    fn bob_is_kicked(&mut self) {
        let actions = self.members[0].room.kick(&fp(bob_id()).to_string());
        self.members[0].handle(actions.unwrap());
        flush(&mut self.relay, &mut [&mut self.members[0]]);
    }

    /// `by` sends an `Invite` or `Kick` as `Control`: sequenced, not yet read.
    fn control(&mut self, by: &Identity, payload: &Payload) {
        let (fp, epoch) = (by.fingerprint(), self.epoch());
        let ev = sign_event(by, fp, EventKind::Control, epoch, payload);
        self.relay.publish(fp, 98, ev).unwrap();
    }

    /// Carol leaves, goes offline, and the others commit her removal.
    fn carol_leaves(&mut self) {
        self.carol_is_leaving();
        self.pump();
        let mut carol = self.members.pop().unwrap();
        let mut others: Vec<&mut Member> = self.members.iter_mut().collect();
        disconnect(&mut carol, &mut others);
        for m in &mut self.members {
            m.tick(Instant::now());
        }
        self.pump();
        for m in &self.members {
            assert!(!m.roster().contains(&carol.fp()), "{:?}", m.shown);
        }
    }

    /// Skipped: every member stayed at `before` with the same `roster`
    /// and still holds a key; no epoch was used up.
    fn assert_skipped(&mut self, before: u64, roster: &[Fingerprint]) {
        self.assert_unchanged(before, roster);
    }

    fn assert_unchanged(&mut self, epoch: u64, roster: &[Fingerprint]) {
        for m in &self.members {
            assert_eq!(m.room.epoch(), epoch, "{}'s epoch", m.fp().short_id());
            assert_eq!(m.roster(), roster, "nobody's membership changed");
            assert!(m.room.is_member(), "{:?}", m.shown);
        }
        self.assert_still_talking();
    }

    /// Nothing forged was shown as a message, nobody was shown an error,
    /// and each member says a line that every member reads once.
    fn assert_still_talking(&mut self) {
        for m in &self.members {
            assert!(m.messages().is_empty(), "{:?}", m.messages());
        }
        let lines: Vec<String> = self
            .members
            .iter()
            .map(|m| format!("still talking, says {}", m.fp().short_id()))
            .collect();
        for (m, line) in self.members.iter_mut().zip(&lines) {
            m.send_text(line);
        }
        self.pump();
        for m in &self.members {
            for line in &lines {
                assert_eq!(m.count_text(line), 1, "{line:?}: {:?}", m.shown);
            }
            assert_eq!(m.messages().len(), lines.len(), "{:?}", m.messages());
            no_errors(&[m]);
        }
    }
}

/// Bob, a member, commits a full commit that `edit` makes `flaw`ed.
fn bad_full_commit(flaw: CommitFlaw, edit: impl Fn(&mut Commit)) {
    let mut s = Scene::three();
    let (before, roster) = s.before();
    let mut c = s.full(&bob_id(), &everyone());
    edit(&mut c);
    s.publish(&bob_id(), Payload::Commit(c));
    assert_warned!(&s.members, bob_id() => Warning::BadCommit(f) if *f == flaw);
    s.assert_skipped(before, &roster);
}

/// Bob commits an add-only commit admitting mallory that `edit` makes
/// `flaw`ed.
fn bad_add(flaw: CommitFlaw, edit: impl Fn(&mut AddCommit)) {
    let mut s = Scene::three();
    let (before, roster) = s.before();
    let mut a = s.add(&[mallory_id()]);
    edit(&mut a);
    s.publish(&bob_id(), Payload::Add(a));
    assert_warned!(&s.members, bob_id() => Warning::BadCommit(f) if *f == flaw);
    s.assert_skipped(before, &roster);
}

// ─── Full commits ────────────────────────────────────────────────────────

/// Bob passes his commit off as alice's; mallory, as alice (the relay
/// spoofs the sender), names her own key, then alice's; bob names no key.
/// No older test forges a commit's signature (`tamper.rs` does a message's).
#[test]
fn rule1_a_commit_whose_committer_key_is_not_the_senders_is_invalid() {
    let mut s = Scene::three();
    let key = |id: Arc<Identity>| id.public().spki_der().to_vec();
    let cases = [
        (bob_id(), bob_id(), key(alice_id())),
        (mallory_id(), alice_id(), key(mallory_id())),
        (mallory_id(), alice_id(), key(alice_id())),
        (bob_id(), bob_id(), b"not a key".to_vec()),
    ];
    for (signer, sender, committer_key) in cases {
        let (before, roster) = s.before();
        let mut c = s.full(&signer, &everyone());
        c.committer_key = committer_key;
        s.slip_in(signed_as(&signer, &sender, before + 1, Payload::Commit(c)));
        assert_warned!(&s.members, sender => Warning::BadSignature { what: Signed::Commit });
        s.assert_skipped(before, &roster);
    }
}

/// Rule 2 comes before rule 3: a parent below ours is void here, not a
/// fork, and an outsider's is void as impossible before it is judged.
#[test]
fn rule2_a_commit_with_an_impossible_parent_epoch_is_invalid() {
    let mut s = Scene::three();
    let cases: [(_, Edit<u64>); 4] = [
        (bob_id(), |parent| *parent -= 1),
        (bob_id(), |parent| *parent += 1),
        (bob_id(), |parent| *parent = u64::MAX),
        (mallory_id(), |parent| *parent -= 1),
    ];
    for (by, edit) in cases {
        let (before, roster) = s.before();
        let mut c = s.full(&by, &everyone());
        edit(&mut c.parent_epoch);
        s.publish(&by, Payload::Commit(c));
        assert_warned!(&s.members, by => Warning::BadCommit(CommitFlaw::ImpossibleParent));
        s.assert_skipped(before, &roster);
    }
}

/// A second commit for an epoch already taken: it lost the race (the
/// relay sequences both). It would drop carol, but a superseded commit is
/// skipped before anything else is judged, and silently: losing a race is
/// normal. Older: `add_only.rs` `a_replayed_add_only_commit_changes_nothing`.
#[test]
fn rule3_a_parent_below_ours_lost_the_race_and_is_skipped_silently() {
    let mut s = Scene::three();
    let (epoch, roster) = s.before();
    let mut c = s.full(&bob_id(), &[alice_id(), bob_id()]);
    c.parent_epoch = epoch - 1;
    s.publish_as_is(&bob_id(), signed(&bob_id(), epoch, Payload::Commit(c)));
    for m in &s.members {
        assert!(m.warnings().is_empty(), "{:?}", m.warnings());
    }
    s.assert_skipped(epoch, &roster);
}

/// A commit on our epoch that names another parent commit than the one we
/// took: its committer was shown another history. Skipped, with `fork`.
/// And a creating commit must name no parent.
#[test]
fn rule3_a_commit_naming_another_parent_commit_is_a_fork() {
    let mut s = Scene::three();
    let (epoch, roster) = s.before();
    let mut c = s.full(&bob_id(), &everyone());
    c.parent_commit = [9; 32];
    s.publish(&bob_id(), Payload::Commit(c));
    assert_warned!(&s.members, bob_id() =>
        Warning::Fork(hush_room::Fork::Commit { epoch: e }) if *e == epoch + 1);
    s.assert_skipped(epoch, &roster);

    let mut relay = SimRelay::new();
    let settings = RoomSettings {
        creator: fp(alice_id()),
        invite_only: false,
        history: HistoryVisibility::Joined,
    };
    let c = full((0, [9; 32]), &alice_id(), &[alice_id()], &settings);
    let ev = signed(
        &alice_id(),
        1,
        confirmed(Payload::Commit(c), &forged_key(), 1, &alice_id()),
    );
    relay.publish(fp(alice_id()), 1, ev).unwrap();
    let mut bob = Member::new(bob_id(), "bob");
    connect(&relay, &mut bob, &mut []);
    assert_warned!([&bob], alice_id() => Warning::BadCommit(CommitFlaw::ImpossibleParent));
}

/// The relay withholds the next epoch's commit and shows the one after,
/// from a member: a sign of withheld commits. An outsider may claim any
/// epoch (the relay sequences what it cannot judge): skipped, no warning.
/// Older: `security_review.rs` `a_newcomer_is_not_fooled_by_withheld_commits`.
#[test]
fn rule3_a_parent_above_ours_is_a_missing_commit() {
    let mut s = Scene::three();
    let (epoch, roster) = s.before();
    let mut c = s.full(&alice_id(), &everyone());
    c.parent_epoch = epoch + 1;
    s.slip_in(signed(&alice_id(), epoch + 2, Payload::Commit(c)));
    assert_warned!(&s.members, alice_id() =>
        Warning::MissingCommit(MissingCommit::Commit { epoch: e, current: c })
            if *e == epoch + 2 && *c == epoch);
    s.assert_skipped(epoch, &roster);
    let (epoch, roster) = s.before();
    let mut c = s.full(&mallory_id(), &[mallory_id()]);
    c.parent_epoch = epoch + 1;
    s.slip_in(signed(&mallory_id(), epoch + 2, Payload::Commit(c)));
    for m in &s.members {
        assert!(m.warnings().is_empty(), "{:?}", m.warnings());
    }
    s.assert_skipped(epoch, &roster);
}

/// An outsider commits a roster with herself in it; then a former member.
/// Older: `non_member.rs` `non_member_commit_does_not_cause_a_commit_storm`.
#[test]
fn rule3_a_non_member_commit_is_invalid() {
    let mut s = Scene::three();
    let (before, roster) = s.before();
    let c = s.full(
        &mallory_id(),
        &[alice_id(), bob_id(), carol_id(), mallory_id()],
    );
    s.publish(&mallory_id(), Payload::Commit(c));
    assert_warned!(&s.members, mallory_id() => Warning::NotMember { epoch: None });
    s.assert_skipped(before, &roster);

    s.carol_leaves();
    let (before, roster) = s.before();
    let c = s.full(&carol_id(), &everyone());
    s.publish(&carol_id(), Payload::Commit(c));
    assert_warned!(&s.members, carol_id() => Warning::NotMember { epoch: None });
    s.assert_skipped(before, &roster);
}

/// A member whose removal is pending may not commit (rules 3 and A3): a
/// rekey keeping her in would let her read on (audit H1). Her commit is
/// skipped and the removal taken. Older: `audit.rs` PoC1.
#[test]
fn rule3_a_commit_by_a_member_whose_removal_is_pending_is_invalid() {
    let mut s = Scene::three();
    s.before();
    s.carol_is_leaving();
    s.publish(
        &carol_id(),
        Payload::Commit(s.full(&carol_id(), &everyone())),
    );
    s.members.retain(|m| m.fp() != fp(carol_id()));
    assert_warned!(&s.members, carol_id() =>
        Warning::NotAllowed(NotAllowed::CommitWhileDeparting));
    for m in &s.members {
        assert!(!m.roster().contains(&fp(carol_id())), "{:?}", m.shown);
    }
    s.before();
    s.assert_still_talking();
}

/// Older: `bounds.rs` `a_roster_over_the_limit_is_refused_without_parsing_it`
/// (more members than `MAX_ROSTER`).
#[test]
fn rule4_an_empty_or_oversized_roster_is_invalid() {
    bad_full_commit(CommitFlaw::ImpossibleRoster, |c| {
        c.members.clear();
        c.envelopes.clear();
    });
    bad_full_commit(CommitFlaw::ImpossibleRoster, |c| {
        let member = c.envelopes[0].member;
        let env = e2e::KeyEnvelope {
            member,
            wrapped: Vec::new(),
        };
        c.envelopes = vec![env; e2e::MAX_ROSTER + 1];
    });
}

#[test]
fn rule4_a_duplicate_member_is_invalid() {
    bad_full_commit(CommitFlaw::DuplicateOrMissingMember, |c| {
        let mut twin = c.members[2].clone();
        twin.nick = "carol's twin".into();
        c.members.push(twin);
    });
}

/// Rule 4 comes before rule 6: bob, who did not leave, is also dropped.
#[test]
fn rule4_a_committer_missing_from_its_roster_is_invalid() {
    bad_full_commit(CommitFlaw::DuplicateOrMissingMember, |c| {
        c.members.remove(1);
        c.envelopes.remove(1);
    });
}

#[test]
fn rule4_an_invalid_key_is_invalid() {
    bad_full_commit(CommitFlaw::InvalidKey, |c| {
        let ghost = e2e::Member {
            public_key: b"not a key".to_vec(),
            nick: "ghost".into(),
        };
        c.members.push(ghost);
    });
    // Carol's own key cut short: judged before rule 6 notices her gone.
    bad_full_commit(CommitFlaw::InvalidKey, |c| {
        c.members[2].public_key.pop();
    });
}

#[test]
fn rule4_too_many_history_keys_is_invalid() {
    bad_full_commit(CommitFlaw::TooManyHistoryKeys, |c| {
        c.history = too_many_history_keys(fp(carol_id()));
    });
}

/// Bob, a member, rewrites each setting; then alice, the creator herself.
#[test]
fn rule5_changed_settings_are_void() {
    let mut s = Scene::three();
    let settings = s.members[0].room.settings().unwrap().clone();
    let edits: [(_, Edit<RoomSettings>); 4] = [
        (bob_id(), |s| s.invite_only = !s.invite_only),
        (bob_id(), |s| s.creator = bob_id().fingerprint()),
        (bob_id(), |s| s.history = HistoryVisibility::Shared),
        (alice_id(), |s| s.invite_only = !s.invite_only),
    ];
    for (by, edit) in edits {
        let (before, roster) = s.before();
        let mut c = s.full(&by, &everyone());
        edit(&mut c.settings);
        s.publish(&by, Payload::Commit(c));
        assert_warned!(&s.members, by => Warning::BadCommit(CommitFlaw::ChangesSettings));
        for m in &s.members {
            assert_eq!(m.room.settings(), Some(&settings));
        }
        s.assert_skipped(before, &roster);
    }
}

/// The first commits mallory makes of an empty room, naming alice its
/// creator: as if alice had made an invite-only room with mallory in it.
/// With `garbage_first`, a malformed commit claims epoch 1 before it.
fn mallory_names_alice_creator(garbage_first: bool) -> (SimRelay, Member, Member) {
    let mut relay = SimRelay::new();
    let mallory = mallory_id();
    if garbage_first {
        let ev = signed(&mallory, 1, garbage_message()); // malformed
        relay.publish(mallory.fingerprint(), 1, ev).unwrap();
    }
    let settings = RoomSettings {
        creator: fp(alice_id()),
        invite_only: true,
        history: HistoryVisibility::Joined,
    };
    let c = full(
        (0, [0; 32]),
        &mallory,
        &[mallory.clone(), alice_id()],
        &settings,
    );
    let ev = signed(&mallory, 1, Payload::Commit(c));
    relay.publish(mallory.fingerprint(), 2, ev).unwrap();
    let mut alice = Member::new(alice_id(), "alice");
    let mut bob = Member::new(bob_id(), "bob");
    connect(&relay, &mut alice, &mut []);
    pump(&mut relay, &mut [&mut alice]);
    connect(&relay, &mut bob, &mut [&mut alice]);
    pump(&mut relay, &mut [&mut alice, &mut bob]);
    (relay, alice, bob)
}

/// Mallory's commit is skipped, and uses up no epoch: alice, finding no
/// room, creates it herself, as its real creator, and admits bob.
#[test]
fn rule5_a_first_commit_naming_another_creator_is_invalid() {
    let (_relay, alice, bob) = mallory_names_alice_creator(false);
    assert_warned!([&alice], mallory_id() =>
        Warning::BadCommit(CommitFlaw::WrongCreator));
    assert_created_by_alice(&alice, &bob);
}

/// The audit's L6: garbage commits for epoch 1 no longer make a room name
/// uncreatable (protocol 1 gave them the epoch).
#[test]
fn rule5_garbage_first_commits_do_not_stop_the_room_being_created() {
    let (_relay, alice, bob) = mallory_names_alice_creator(true);
    assert_warned!([&alice], mallory_id() => Warning::Malformed { other_room: false });
    assert_created_by_alice(&alice, &bob);
}

fn assert_created_by_alice(alice: &Member, bob: &Member) {
    for m in [alice, bob] {
        assert!(m.room.is_member(), "{:?}", m.shown);
        assert_eq!(m.room.epoch(), 2, "alice's creation, then bob's admission");
        assert_eq!(m.roster(), {
            let mut r = vec![fp(alice_id()), fp(bob_id())];
            r.sort();
            r
        });
        let settings = m.room.settings().expect("settings");
        assert_eq!(settings.creator, fp(alice_id()));
        assert!(!settings.invite_only, "alice's rules, not mallory's");
        assert!(m.messages().is_empty());
        no_errors(&[m]);
    }
}

/// Bob drops carol; bob kicks her first (not his to do); bob swaps her
/// key for mallory's (in an open room, where admitting mallory is
/// allowed: only rule 6 stops it); alice, the creator, drops bob without
/// kicking him. Older: `checkpoints.rs`
/// `a_commit_dropping_a_member_who_did_not_leave_is_invalid`.
#[test]
fn rule6_removing_someone_who_did_not_leave_is_invalid() {
    let mut s = Scene::three();
    let cases = [
        (bob_id(), vec![alice_id(), bob_id()], carol_id(), false),
        (bob_id(), vec![alice_id(), bob_id()], carol_id(), true),
        (
            bob_id(),
            vec![alice_id(), bob_id(), mallory_id()],
            carol_id(),
            false,
        ),
        (alice_id(), vec![alice_id(), carol_id()], bob_id(), false),
    ];
    for (by, people, dropped, kick_first) in cases {
        let (before, roster) = s.before();
        if kick_first {
            s.control(
                &by,
                &Payload::Kick(e2e::MemberRef {
                    member: dropped.fingerprint(),
                    at: at(&s.relay),
                }),
            );
        }
        let c = s.full(&by, &people);
        s.publish(&by, Payload::Commit(c));
        if kick_first {
            assert_warned!(&s.members, by =>
                Warning::NotAllowed(NotAllowed::NotCreator { what: Signed::Kick }));
        }
        assert_warned!(&s.members, by =>
            Warning::NotAllowed(NotAllowed::Removed { member })
                if member.fingerprint == dropped.fingerprint());
        s.assert_skipped(before, &roster);
    }
}

/// A commit sequenced while a removal is pending must carry it out (rules
/// 6 and A5): bob's rekey keeps carol, who is leaving. Skipped; the
/// designated member's removal is taken. Older: `audit.rs` PoC1.
#[test]
fn rule6_a_commit_keeping_a_member_whose_removal_is_pending_is_invalid() {
    let mut s = Scene::three();
    s.before();
    s.carol_is_leaving();
    s.publish(&bob_id(), Payload::Commit(s.full(&bob_id(), &everyone())));
    let carol = fp(carol_id());
    s.members.retain(|m| m.fp() != carol);
    assert_warned!(&s.members, bob_id() =>
        Warning::NotAllowed(NotAllowed::KeptDeparting { pending }) if pending.fingerprint == carol);
    for m in &s.members {
        assert!(!m.roster().contains(&carol), "{:?}", m.shown);
    }
    s.before();
    s.assert_still_talking();
}
/// Bob, a member, admits mallory; bob invites her first (not his to do);
/// alice, the creator, admits her without the invite that records it.
/// Older: `invite_only.rs` `a_commit_admitting_someone_uninvited_is_invalid`.
#[test]
fn rule7_admitting_someone_uninvited_is_invalid() {
    let mut s = Scene::invite_only();
    let mallory = fp(mallory_id());
    for (by, invite_first) in [(bob_id(), false), (bob_id(), true), (alice_id(), false)] {
        let (before, roster) = s.before();
        if invite_first {
            let at = at(&s.relay);
            s.control(
                &by,
                &Payload::Invite(e2e::MemberRef {
                    member: mallory,
                    at,
                }),
            );
        }
        let c = s.full(&by, &[alice_id(), bob_id(), mallory_id()]);
        s.publish(&by, Payload::Commit(c));
        if invite_first {
            assert_warned!(&s.members, by =>
                Warning::NotAllowed(NotAllowed::NotCreator { what: Signed::Invite }));
        }
        assert_warned!(&s.members, by =>
            Warning::NotInvited { member } if member.fingerprint == mallory);
        s.assert_skipped(before, &roster);
    }
}

/// Alice rekeys the room but carol's envelope is missing, is bob's, or is
/// wrapped under the history label: the commit takes effect, and carol,
/// still listed, holds no key for the epoch (she reads nothing of it).
#[test]
fn rule8_a_missing_envelope_is_undecryptable_but_takes_effect() {
    let cases: [(bool, Edit<Commit>); 3] = [
        (true, |c| {
            c.envelopes.remove(2);
        }),
        (false, |c| {
            c.envelopes[2].wrapped = c.envelopes[1].wrapped.clone()
        }),
        (false, |c| {
            let key = hush_crypto::Secret32::random();
            let wrapped = carol_id()
                .public()
                .wrap(e2e::HISTORY_KEY_LABEL, &key)
                .unwrap();
            c.envelopes[2].wrapped = wrapped.as_bytes().to_vec();
        }),
    ];
    for (missing, edit) in cases {
        let mut s = Scene::three();
        let mut carol = s.members.pop().unwrap();
        let (before, roster) = s.before();
        let mut c = s.full(&alice_id(), &everyone());
        edit(&mut c);
        s.publish(&alice_id(), Payload::Commit(c));
        pump(&mut s.relay, &mut [&mut carol]);
        let epoch = before + 1;
        let w = if missing {
            Undecryptable::NoKeyForUs { epoch }
        } else {
            Undecryptable::EpochKey { epoch }
        };
        assert_warned!([&carol], alice_id() => Warning::Undecryptable(u) if *u == w);
        assert_eq!(carol.room.epoch(), epoch, "the commit took effect");
        assert_eq!(carol.roster(), roster, "carol is still listed");
        assert!(!carol.room.is_member(), "but holds no key");
        assert!(carol.notices().contains(&Notice::NoLongerMember));
        for m in &s.members {
            assert_eq!(m.room.epoch(), epoch);
            assert!(m.warnings().is_empty(), "{:?}", m.warnings());
        }
        s.assert_still_talking();
        pump(&mut s.relay, &mut [&mut carol]);
        assert!(carol.messages().is_empty(), "{:?}", carol.messages());
        no_errors(&[&carol]);
    }
}

// ─── Add-only commits ────────────────────────────────────────────────────

#[test]
fn a1_an_add_only_commit_with_an_impossible_parent_epoch_is_invalid() {
    bad_add(CommitFlaw::ImpossibleParent, |a| a.parent_epoch = 0);
    bad_add(CommitFlaw::ImpossibleParent, |a| a.parent_epoch -= 1);
}

/// Older: `add_only.rs` `a_replayed_add_only_commit_changes_nothing`.
#[test]
fn a2_an_add_only_commit_on_a_parent_below_ours_lost_the_race_and_is_skipped() {
    let mut s = Scene::three();
    let (epoch, roster) = s.before();
    let mut a = s.add(&[mallory_id()]);
    a.parent_epoch = epoch - 1;
    s.publish_as_is(&bob_id(), signed(&bob_id(), epoch, Payload::Add(a)));
    for m in &s.members {
        assert!(m.warnings().is_empty(), "{:?}", m.warnings());
    }
    s.assert_skipped(epoch, &roster);
}

#[test]
fn a2_an_add_only_commit_on_a_parent_above_ours_is_a_missing_commit() {
    let mut s = Scene::three();
    let (epoch, roster) = s.before();
    let mut a = s.add(&[mallory_id()]);
    a.parent_epoch = epoch + 1;
    s.slip_in(signed(&alice_id(), epoch + 2, Payload::Add(a)));
    assert_warned!(&s.members, alice_id() =>
        Warning::MissingCommit(MissingCommit::Commit { epoch: e, current: c })
            if *e == epoch + 2 && *c == epoch);
    s.assert_skipped(epoch, &roster);
}

/// A newcomer reading from seq 1, its first commit withheld: the add-only
/// commit that admitted bob extends a roster it never saw.
/// Older: `security_review.rs` `a_newcomer_is_not_fooled_by_withheld_commits`.
#[test]
fn a2_a_newcomer_that_read_from_the_start_is_missing_the_commit_before_an_add() {
    let s = Scene::two();
    assert!(matches!(
        commit_payload(s.relay.last_commit()),
        Payload::Add(_)
    ));
    let view: Vec<SequencedEvent> = s
        .relay
        .log
        .iter()
        .filter(|e| !(e.event.kind == EventKind::Commit && e.event.epoch == 1))
        .cloned()
        .collect();
    let mut carol = Member::new(carol_id(), "carol");
    feed_view(&mut carol, view);
    assert_warned!([&carol], alice_id() =>
        Warning::MissingCommit(MissingCommit::Commit { epoch: 2, current: 0 }));
    assert_eq!(carol.room.epoch(), 0, "ignored");
    assert!(carol.roster().is_empty(), "no roster taken on trust");
    no_errors(&[&carol]);
}

/// Mallory, an outsider; carol, a former member; mallory signing as bob
/// (the relay spoofs the sender).
/// Older: `add_only.rs` `an_add_only_commit_by_a_non_member_is_invalid`.
#[test]
fn a3_an_add_only_commit_by_a_non_member_or_not_signed_by_its_sender_is_invalid() {
    let mut s = Scene::three();
    let (before, roster) = s.before();
    s.publish(&mallory_id(), Payload::Add(s.add(&[mallory_id()])));
    assert_warned!(&s.members, mallory_id() => Warning::NotMember { epoch: None });
    s.assert_skipped(before, &roster);

    s.carol_leaves();
    let (before, roster) = s.before();
    s.publish(&carol_id(), Payload::Add(s.add(&[carol_id()])));
    assert_warned!(&s.members, carol_id() => Warning::NotMember { epoch: None });
    s.assert_skipped(before, &roster);

    let (before, roster) = s.before();
    let payload = Payload::Add(s.add(&[mallory_id()]));
    s.slip_in(signed_as(&mallory_id(), &bob_id(), before + 1, payload));
    assert_warned!(&s.members, bob_id() => Warning::BadSignature { what: Signed::Commit });
    s.assert_skipped(before, &roster);
}

/// The last case is over `MAX_ROSTER` with the parent's three members.
#[test]
fn a4_an_add_only_commit_admitting_nobody_or_too_many_is_invalid() {
    bad_add(CommitFlaw::ImpossibleRoster, |a| {
        a.added.clear();
        a.envelopes.clear();
    });
    bad_add(CommitFlaw::ImpossibleRoster, |a| {
        a.envelopes.push(a.envelopes[0].clone())
    });
    bad_add(CommitFlaw::ImpossibleRoster, |a| {
        a.added = vec![a.added[0].clone(); e2e::MAX_ROSTER - 2];
    });
}

#[test]
fn a4_an_add_only_commit_with_an_invalid_key_is_invalid() {
    bad_add(CommitFlaw::InvalidKey, |a| {
        a.added[0].public_key.pop();
    });
}

/// Older: `add_only.rs` `an_add_only_commit_that_adds_a_member_again_is_invalid`.
#[test]
fn a4_an_add_only_commit_adding_a_member_again_or_twice_is_invalid() {
    bad_add(CommitFlaw::AlreadyMember, |a| {
        a.added.extend(roster_of(&[carol_id()]))
    });
    bad_add(CommitFlaw::AlreadyMember, |a| {
        a.added.push(a.added[0].clone())
    });
}

#[test]
fn a4_an_add_only_commit_with_too_many_history_keys_is_invalid() {
    bad_add(CommitFlaw::TooManyHistoryKeys, |a| {
        a.history = too_many_history_keys(fp(mallory_id()));
    });
}

/// The document checks A4 (history bound included) before A5, and rule 4
/// before rule 5. Both verdicts skip the commit, but the warning must be
/// the first rule's: `bad_commit`, not `not_allowed` or
/// `changes the room's settings`.
#[test]
fn a4_and_rule4_the_history_bound_is_judged_before_a5_and_rule5() {
    bad_full_commit(CommitFlaw::TooManyHistoryKeys, |c| {
        c.settings.invite_only = !c.settings.invite_only;
        c.history = too_many_history_keys(fp(carol_id()));
    });
    let mut s = Scene::three();
    s.carol_is_leaving();
    let mut a = s.add(&[mallory_id()]);
    a.history = too_many_history_keys(fp(mallory_id()));
    s.publish(&alice_id(), Payload::Add(a));
    assert_warned!(&s.members[..2], alice_id() =>
        Warning::BadCommit(CommitFlaw::TooManyHistoryKeys));
}

/// Carol left (or, in a second room, alice kicked bob), and before the
/// rekey that removes them a member admits mallory under the old key
/// lineage, which the one leaving still holds.
/// Older: `add_only.rs` `an_add_only_commit_while_someone_is_leaving_is_invalid`.
#[test]
fn a5_an_add_only_commit_while_a_removal_is_pending_is_invalid() {
    for kick in [false, true] {
        let mut s = Scene::three();
        let (gone, by) = if kick {
            s.bob_is_kicked();
            (fp(bob_id()), carol_id())
        } else {
            s.carol_is_leaving();
            (fp(carol_id()), alice_id())
        };
        let before = s.epoch();
        s.publish(&by, Payload::Add(s.add(&[mallory_id()])));
        s.members.retain(|m| m.fp() != gone);
        assert_warned!(&s.members, by =>
            Warning::NotAllowed(NotAllowed::KeptDeparting { pending })
                if pending.fingerprint == gone);
        for m in &s.members {
            assert!(m.room.epoch() > before, "the removal was committed");
            assert_eq!(m.roster(), s.members[0].roster());
            assert_eq!(m.roster().len(), 2, "without {gone:?} or mallory");
            assert!(!m.roster().contains(&gone));
        }
        s.before();
        s.assert_still_talking();
    }
}

/// Older: `invite_only.rs` `a_commit_admitting_someone_uninvited_is_invalid`.
#[test]
fn a6_an_add_only_commit_admitting_someone_uninvited_is_invalid() {
    let mut s = Scene::invite_only();
    let mallory = fp(mallory_id());
    for by in [bob_id(), alice_id()] {
        let (before, roster) = s.before();
        s.publish(&by, Payload::Add(s.add(&[mallory_id()])));
        assert_warned!(&s.members, by =>
            Warning::NotInvited { member } if member.fingerprint == mallory);
        s.assert_skipped(before, &roster);
    }
}

/// Alice admits carol, before her request is even sequenced, with bob's
/// key in carol's envelope: carol is listed but holds no key; the members
/// of the parent epoch derive theirs and talk on.
#[test]
fn a7_a_newcomer_whose_envelope_does_not_open_is_undecryptable_but_listed() {
    let mut s = Scene::two();
    // A rekey under the tests' known key, so that the add-only key derived
    // from it (and the commit's confirmation) can be computed here.
    s.publish(
        &alice_id(),
        Payload::Commit(s.full(&alice_id(), &[alice_id(), bob_id()])),
    );
    let mut carol = Member::new(carol_id(), "carol");
    let mut others: Vec<&mut Member> = s.members.iter_mut().collect();
    connect(&s.relay, &mut carol, &mut others);
    let (before, _) = s.before();
    let mut a = s.add(&[carol_id()]);
    a.envelopes = envelopes_for(&[bob_id()]);
    a.envelopes[0].member = carol.fp();
    let epoch = before + 1;
    let salt = e2e::add_epoch_salt(
        &room_name(),
        epoch,
        &alice_id().fingerprint(),
        &[carol.fp()],
    );
    let key = hush_crypto::derive_secret(&forged_key(), &salt, e2e::ADD_EPOCH_KEY_INFO);
    s.publish(
        &alice_id(),
        confirmed(Payload::Add(a), &key, epoch, &alice_id()),
    );
    pump(&mut s.relay, &mut [&mut carol]);
    let w = Undecryptable::EpochKey { epoch: before + 1 };
    assert_warned!([&carol], alice_id() => Warning::Undecryptable(u) if *u == w);
    assert_eq!(carol.room.epoch(), before + 1, "the commit took effect");
    assert!(carol.roster().contains(&carol.fp()), "carol is listed");
    assert!(!carol.room.is_member(), "but holds no key");
    for m in &s.members {
        assert!(m.roster().contains(&carol.fp()));
        assert!(m.warnings().is_empty(), "{:?}", m.warnings());
    }
    s.assert_still_talking();
    pump(&mut s.relay, &mut [&mut carol]);
    assert!(carol.messages().is_empty(), "{:?}", carol.messages());
    no_errors(&[&carol]);
}
