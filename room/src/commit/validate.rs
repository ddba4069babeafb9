//! The rules a commit must meet before anyone honours it: one function
//! per numbered rule of docs/PROTOCOL.md §9.2.6, named after it, applied
//! in the document's order by [`Room::validate_commit`].
//!
//! ```text
//!   full commit:  rule1 signature ─ rule2 parent number ─ rule3 parent, authority
//!                 ─ rule4 roster, history bound ─ rule5 settings ─┐
//!   add-only:     a1 parent number ─ a2 parent ─ a3 committer
//!                 ─ a4 roster, history bound ─ a5 no pending removal ─┤
//!                                                                     ├ rule6 removals
//!                                                                     └ rule7 invite-only (A6) ─▶ CommitVerdict
//! ```
//!
//! Rules 8, 9, 10 and A7 (unwrapping keys, key confirmation) run in
//! `apply.rs` (and `confirm.rs`), only on a
//! commit these rules honoured.

use std::collections::BTreeMap;
use std::sync::Arc;

use hush_crypto::{Fingerprint, PublicIdentity};
use hush_proto::SequencedEvent;
use hush_proto::e2e::{
    AddCommit, Commit, HistoryEnvelope, MAX_HISTORY_ENVELOPES, MAX_ROSTER, RoomSettings,
};

use crate::authenticate::Unverified;
use crate::commit::CommitBody;
use crate::epochs::{Epoch, RosterEntry};
use crate::room::Room;
use crate::warning::{CommitFlaw, Fork, MissingCommit, NotAllowed, Signed, Warning};

/// A roster as a commit makes it.
pub(crate) type Roster = BTreeMap<Fingerprint, RosterEntry>;

/// What the rules say about a sequenced commit.
pub(crate) enum CommitVerdict {
    /// Honoured: this is the new epoch's roster.
    Honoured(Roster),
    /// Invalid: skipped, with this warning. No epoch is used up (protocol
    /// 2: members, not the relay, decide which commit opens an epoch).
    Invalid(Warning),
    /// Not for our current epoch: one for an earlier parent lost the race
    /// to the commit we took (skipped silently); one for a later parent
    /// means commits were withheld from us (the warning, when a member
    /// sent it).
    Superseded(Option<Warning>),
}

/// The outcome of one rule: go on (with what it found), or this verdict.
type Rule<T = ()> = Result<T, CommitVerdict>;

fn bad(flaw: CommitFlaw) -> CommitVerdict {
    CommitVerdict::Invalid(Warning::BadCommit(flaw))
}

impl Room {
    /// Checks a commit against every rule, in order. `digest` is what its
    /// signature covers.
    pub(crate) fn validate_commit(&self, event: &Unverified<'_>, c: &CommitBody) -> CommitVerdict {
        let checked = match c {
            CommitBody::Full(c) => self.validate_full(event, c),
            CommitBody::Add(a) => self.validate_add(event, a),
        }
        .and_then(|roster| {
            let settings = self.rules_to_judge_by(c);
            self.rule6_removals(&roster)?;
            self.rule7_invite_only(settings, &roster)?;
            Ok(roster)
        });
        match checked {
            Ok(roster) => CommitVerdict::Honoured(roster),
            Err(verdict) => verdict,
        }
    }

    /// Rules 1 to 5. The roster.
    fn validate_full(&self, event: &Unverified<'_>, c: &Commit) -> Rule<Roster> {
        let ev = event.ev;
        rule1_committer_signature(event, c)?;
        rule2_parent_epoch_number(ev.event.epoch, c.parent_epoch)?;
        self.rule3_parent_and_authority(ev, c.parent_epoch, &c.parent_commit)?;
        let roster = self.rule4_roster(ev.event.sender, c)?;
        rule4_history_bound(&c.history)?;
        self.rule5_settings(ev.event.sender, c)?;
        Ok(roster)
    }

    /// Rules A1 to A5. The roster.
    fn validate_add(&self, event: &Unverified<'_>, a: &AddCommit) -> Rule<Roster> {
        let ev = event.ev;
        rule_a1_parent_epoch_number(ev.event.epoch, a.parent_epoch)?;
        let parent = self.rule_a2_parent(ev, a.parent_epoch)?;
        rule_a3_committer(event, parent)?;
        // After the signature: only a member's commit may raise a fork.
        self.rule3_parent_commit(ev, &a.parent_commit)?;
        self.rule3_not_departing(ev.event.sender)?;
        let roster = rule_a4_roster(&parent.roster, a)?;
        rule4_history_bound(&a.history)?;
        self.rule_a5_no_pending_removal()?;
        Ok(roster)
    }

    /// Rule 3: the parent is our current epoch and the sender a member of
    /// it. Before we know any epoch, only the room's creating commit
    /// (parent 0) will do: the relay never prunes commits (protocol 2),
    /// so a newcomer always reads the roster from the room's creation, and
    /// a log that starts later had its commits withheld (audit M2).
    fn rule3_parent_and_authority(
        &self,
        ev: &SequencedEvent,
        parent_epoch: u64,
        parent_commit: &[u8; 32],
    ) -> Rule {
        if self.epochs.known.is_empty() {
            if parent_epoch != 0 || self.epochs.current != 0 {
                return Err(self.out_of_step(ev, parent_epoch));
            }
            if *parent_commit != [0; 32] {
                return Err(bad(CommitFlaw::ImpossibleParent));
            }
            return Ok(());
        }
        if parent_epoch != self.epochs.current {
            return Err(self.out_of_step(ev, parent_epoch));
        }
        if self.roster_key(parent_epoch, &ev.event.sender).is_none() {
            return Err(CommitVerdict::Invalid(Warning::NotMember { epoch: None }));
        }
        // After authority: only a member's commit may raise a fork.
        self.rule3_parent_commit(ev, parent_commit)?;
        self.rule3_not_departing(ev.event.sender)
    }

    /// Rule 3 (and A2): the commit names the commit that opened our current
    /// epoch as its parent. One on the same parent epoch that names
    /// another was built on a history we were not shown: a fork, skipped.
    fn rule3_parent_commit(&self, ev: &SequencedEvent, parent_commit: &[u8; 32]) -> Rule {
        match self.commit_id() {
            Some(ours) if ours != *parent_commit => Err(CommitVerdict::Superseded(Some(
                Warning::Fork(Fork::Commit {
                    epoch: ev.event.epoch,
                }),
            ))),
            _ => Ok(()),
        }
    }

    /// Rule 3, last part (and A3's): a member whose removal is pending
    /// may not commit; its commits could otherwise keep it in for ever.
    /// Every member judges it alike: leaves and kicks are never pruned.
    fn rule3_not_departing(&self, sender: Fingerprint) -> Rule {
        if self.admissions.pending_removals.contains_key(&sender) {
            return Err(CommitVerdict::Invalid(Warning::NotAllowed(
                NotAllowed::CommitWhileDeparting,
            )));
        }
        Ok(())
    }

    /// Rule 4: a roster of valid, distinct keys that includes the
    /// committer, within the size bounds.
    fn rule4_roster(&self, sender: Fingerprint, c: &Commit) -> Rule<Roster> {
        if c.members.is_empty() || c.members.len() > MAX_ROSTER || c.envelopes.len() > MAX_ROSTER {
            return Err(bad(CommitFlaw::ImpossibleRoster));
        }
        // Keys we already hold are not parsed again: a rekey of a big
        // room mostly repeats its roster.
        let known = self.epochs.now().map(|e| &e.roster);
        let mut roster = BTreeMap::new();
        for m in &c.members {
            let fp = Fingerprint::of_spki_der(&m.public_key);
            let key = match known.and_then(|r| r.get(&fp)) {
                Some(r) if r.key.spki_der() == m.public_key.as_slice() => r.key.clone(),
                _ => Arc::new(
                    PublicIdentity::from_spki_der(&m.public_key)
                        .map_err(|_| bad(CommitFlaw::InvalidKey))?,
                ),
            };
            // Names are sealed: opened once we hold the key (apply.rs).
            let nick = fp.short_id();
            roster.insert(fp, RosterEntry { key, nick });
        }
        if roster.len() != c.members.len() || !roster.contains_key(&sender) {
            return Err(bad(CommitFlaw::DuplicateOrMissingMember));
        }
        Ok(roster)
    }

    /// Rule 5: the room's settings never change, and the first commit
    /// names its own signer as the creator.
    fn rule5_settings(&self, sender: Fingerprint, c: &Commit) -> Rule {
        match &self.settings {
            Some(s) if c.settings != *s => Err(bad(CommitFlaw::ChangesSettings)),
            None if c.parent_epoch == 0 && c.settings.creator != sender => {
                Err(bad(CommitFlaw::WrongCreator))
            }
            _ => Ok(()),
        }
    }

    /// The settings rules 6 and 7 judge by: the room's, or those the
    /// creating commit brings. (An add-only commit never comes first: rule
    /// A2 wants a known parent.)
    fn rules_to_judge_by<'a>(&'a self, c: &'a CommitBody) -> Option<&'a RoomSettings> {
        self.settings.as_ref().or(match c {
            CommitBody::Full(c) => Some(&c.settings),
            CommitBody::Add(_) => None,
        })
    }

    /// Rule 6: whoever the commit removes left or was kicked, and every
    /// pending removal is carried out. Every member judges it alike: the
    /// relay never prunes the leaves and kicks it depends on.
    fn rule6_removals(&self, roster: &Roster) -> Rule {
        let Some(before) = self.epochs.now() else {
            return Ok(());
        };
        let dropped = before.roster.keys().find(|fp| {
            !roster.contains_key(fp) && !self.admissions.pending_removals.contains_key(fp)
        });
        if let Some(fp) = dropped {
            return Err(CommitVerdict::Invalid(Warning::NotAllowed(
                NotAllowed::Removed {
                    member: self.peer(fp),
                },
            )));
        }
        // And it carries out every pending removal: one that keeps a
        // departing member would let them read on.
        match self
            .admissions
            .pending_removals
            .keys()
            .find(|fp| roster.contains_key(fp))
        {
            Some(fp) => Err(CommitVerdict::Invalid(Warning::NotAllowed(
                NotAllowed::KeptDeparting {
                    pending: self.peer(fp),
                },
            ))),
            None => Ok(()),
        }
    }

    /// Rule 7 (and A6): in an invite-only room, everyone new was invited
    /// by the creator, or is the creator. Judged as rule 6 is.
    fn rule7_invite_only(&self, settings: Option<&RoomSettings>, roster: &Roster) -> Rule {
        let Some(settings) = settings.filter(|s| s.invite_only) else {
            return Ok(());
        };
        let Some(before) = self.epochs.now() else {
            return Ok(());
        };
        let uninvited = roster.keys().find(|fp| {
            !before.roster.contains_key(fp)
                && !self.admissions.invited.contains(fp)
                && **fp != settings.creator
        });
        match uninvited {
            Some(fp) => Err(CommitVerdict::Invalid(Warning::NotInvited {
                member: self.peer(fp),
            })),
            None => Ok(()),
        }
    }

    /// Rule A2: the parent is our current epoch (before we know any, the
    /// commits before were withheld: the relay never prunes them).
    fn rule_a2_parent(&self, ev: &SequencedEvent, parent_epoch: u64) -> Rule<&Epoch> {
        match self.epochs.known.get(&parent_epoch) {
            Some(parent) if parent_epoch == self.epochs.current => Ok(parent),
            _ => Err(self.out_of_step(ev, parent_epoch)),
        }
    }

    /// Rule A5: an add-only epoch keeps the parent's key lineage, which a
    /// member who left or was kicked still holds: it may not stand in for
    /// the rekey that removes them.
    fn rule_a5_no_pending_removal(&self) -> Rule {
        match self.admissions.pending_removals.keys().next() {
            Some(fp) => Err(CommitVerdict::Invalid(Warning::NotAllowed(
                NotAllowed::KeptDeparting {
                    pending: self.peer(fp),
                },
            ))),
            None => Ok(()),
        }
    }

    /// A commit whose parent is not our current epoch. Below ours: it lost
    /// the race to the commit we took for that parent (normal, silent).
    /// Above ours: the relay withheld the commits in between, which we say
    /// when the sender is someone we know as a member (or we know nobody
    /// yet); anyone else may claim any epoch, and is not worth a warning.
    fn out_of_step(&self, ev: &SequencedEvent, parent_epoch: u64) -> CommitVerdict {
        let (epoch, current) = (ev.event.epoch, self.epochs.current);
        let plausible = self
            .epochs
            .now()
            .is_none_or(|e| e.roster.contains_key(&ev.event.sender));
        CommitVerdict::Superseded((parent_epoch > current && plausible).then_some(
            Warning::MissingCommit(MissingCommit::Commit { epoch, current }),
        ))
    }
}

/// Rule 2: `parent_epoch + 1` is the commit's epoch.
fn rule2_parent_epoch_number(epoch: u64, parent_epoch: u64) -> Rule {
    if parent_epoch.checked_add(1) != Some(epoch) {
        return Err(bad(CommitFlaw::ImpossibleParent));
    }
    Ok(())
}

/// Rule A1: rule 2, and an add-only commit never opens the room.
fn rule_a1_parent_epoch_number(epoch: u64, parent_epoch: u64) -> Rule {
    if parent_epoch == 0 {
        return Err(bad(CommitFlaw::ImpossibleParent));
    }
    rule2_parent_epoch_number(epoch, parent_epoch)
}

/// Rule A4: newcomers with valid keys, none already a member or listed
/// twice, within the size bounds. The parent roster plus them.
fn rule_a4_roster(parent: &Roster, a: &AddCommit) -> Rule<Roster> {
    if a.added.is_empty()
        || parent.len().saturating_add(a.added.len()) > MAX_ROSTER
        || a.envelopes.len() > a.added.len()
    {
        return Err(bad(CommitFlaw::ImpossibleRoster));
    }
    let mut roster = parent.clone();
    for m in &a.added {
        let key = PublicIdentity::from_spki_der(&m.public_key)
            .map_err(|_| bad(CommitFlaw::InvalidKey))?;
        let fp = key.fingerprint();
        let nick = fp.short_id();
        let key = Arc::new(key);
        if roster.insert(fp, RosterEntry { key, nick }).is_some() {
            return Err(bad(CommitFlaw::AlreadyMember));
        }
    }
    Ok(roster)
}

/// Rule A3: the sender is in the parent roster, and its signature
/// verifies with the key that roster holds.
fn rule_a3_committer(event: &Unverified<'_>, parent: &Epoch) -> Rule {
    let Some(committer) = parent.roster.get(&event.ev.event.sender).map(|r| &r.key) else {
        return Err(CommitVerdict::Invalid(Warning::NotMember { epoch: None }));
    };
    event
        .verify(committer, ())
        .map(|_| ())
        .ok_or(CommitVerdict::Invalid(Warning::BadSignature {
            what: Signed::Commit,
        }))
}

/// Rule 4, last part (and A4's): at most `MAX_HISTORY_ENVELOPES` history
/// keys.
fn rule4_history_bound(history: &[HistoryEnvelope]) -> Rule {
    if history.len() > MAX_HISTORY_ENVELOPES {
        return Err(bad(CommitFlaw::TooManyHistoryKeys));
    }
    Ok(())
}

/// Rule 1: the committer key a full commit carries is the sender's, and
/// the signature verifies with it.
fn rule1_committer_signature(event: &Unverified<'_>, c: &Commit) -> Rule {
    PublicIdentity::from_spki_der(&c.committer_key)
        .ok()
        .filter(|committer| committer.fingerprint() == event.ev.event.sender)
        .and_then(|committer| event.verify(&committer, ()))
        .map(|_| ())
        .ok_or(CommitVerdict::Invalid(Warning::BadSignature {
            what: Signed::Commit,
        }))
}
