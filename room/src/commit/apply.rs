//! Applying a sequenced commit: validate it, then switch epochs, or skip
//! it (nothing changes, no epoch is used up).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use hush_crypto::{Fingerprint, Secret32, derive_secret};
use hush_proto::SequencedEvent;
use hush_proto::e2e::Content;
use hush_proto::e2e::{
    self, ADD_EPOCH_KEY_INFO, EPOCH_KEY_LABEL, HISTORY_KEY_LABEL, HistoryVisibility,
};

use crate::action::{Action, Notice, Shown};
use crate::authenticate::Unverified;
use crate::commit::validate::Roster;
use crate::commit::{CommitBody, CommitVerdict};
use crate::epochs::Epoch;
use crate::nick::received_nick;
use crate::room::Room;
use crate::warning::{CommitFlaw, Undecryptable, Warning};

impl Room {
    pub(crate) fn apply_commit(
        &mut self,
        event: &Unverified<'_>,
        c: CommitBody,
        now: Instant,
        actions: &mut Vec<Action>,
    ) {
        let ev = event.ev;
        let sender = ev.event.sender;
        let epoch = ev.event.epoch;
        let mine = sender == self.me.fingerprint();
        if mine {
            self.commits.in_flight = None;
        }
        let mut roster = match self.validate_commit(event, &c) {
            CommitVerdict::Honoured(roster) => roster,
            CommitVerdict::Invalid(warning) => {
                let warning = self.warn(Some(ev.seq), Some(sender), warning);
                return self.skip_commit(ev, Some(warning), actions);
            }
            CommitVerdict::Superseded(warning) => {
                let warning = warning.map(|w| self.warn(Some(ev.seq), Some(sender), w));
                return self.skip_commit(ev, warning, actions);
            }
        };
        // Our key, only now that the commit is authenticated: derived from
        // the parent's if an add-only commit kept us, else our envelope.
        let me = self.me.fingerprint();
        let was_member = self.is_member();
        let parent = self
            .epochs
            .now()
            .or_else(|| self.epochs.archive.get(&self.epochs.current));
        let kept = parent.is_some_and(|e| e.roster.contains_key(&me));
        let key = if !roster.contains_key(&me) {
            None
        } else if let CommitBody::Add(a) = &c
            && kept
        {
            parent.and_then(|e| e.key.as_ref()).map(|k| {
                let added: Vec<Fingerprint> = a
                    .added
                    .iter()
                    .map(|m| Fingerprint::of_spki_der(&m.public_key))
                    .collect();
                let salt = e2e::add_epoch_salt(&self.name, epoch, &sender, &added);
                derive_secret(k, &salt, ADD_EPOCH_KEY_INFO)
            })
        } else {
            match c.envelopes().iter().find(|e| e.member == me) {
                Some(env) => match self.me.unwrap(EPOCH_KEY_LABEL, &env.wrapped) {
                    Ok(k) => Some(k),
                    Err(_) => {
                        actions.push(self.warn(
                            Some(ev.seq),
                            Some(sender),
                            Warning::Undecryptable(Undecryptable::EpochKey { epoch }),
                        ));
                        None
                    }
                },
                None => {
                    actions.push(self.warn(
                        Some(ev.seq),
                        Some(sender),
                        Warning::Undecryptable(Undecryptable::NoKeyForUs { epoch }),
                    ));
                    None
                }
            }
        };
        // Key confirmation (rule 10): the key we hold now must be the one
        // the committer confirmed, or it gave us another than the others.
        if let Some(k) = &key
            && !c.confirms(k, &self.name, epoch, &sender)
        {
            let w = Warning::BadCommit(CommitFlaw::UnconfirmedKey);
            let warning = self.warn(Some(ev.seq), Some(sender), w);
            return self.skip_commit(ev, Some(warning), actions);
        }
        // The roster's names, sealed under the new key (audit M5): only
        // those who hold it read them; the others keep short ids.
        if let Some(k) = &key {
            self.open_names(&c, k, epoch, &mut roster);
        }
        // Who came and went.
        let before: BTreeSet<Fingerprint> = self
            .epochs
            .now()
            .map(|e| e.roster.keys().copied().collect())
            .unwrap_or_default();
        // Names we did not know (or only by short id) are taken from the
        // commit: a newcomer gets every member's current one. A member's
        // own later renames come sealed in messages.
        for (fp, entry) in &roster {
            let unknown = self
                .people
                .nicks
                .get(fp)
                .is_none_or(|n| *n == fp.short_id());
            if unknown || !before.contains(fp) {
                self.people.nicks.insert(*fp, entry.nick.clone());
            }
        }
        let first_view = self.epochs.known.is_empty();
        if !first_view {
            for fp in roster.keys().filter(|fp| !before.contains(fp)) {
                actions.push(Action::Show(Shown::MemberJoined {
                    room: self.name.clone(),
                    seq: ev.seq,
                    member: *fp,
                    nick: self.nick_of(fp),
                }));
            }
            for fp in before.iter().filter(|fp| !roster.contains_key(fp)) {
                actions.push(Action::Show(Shown::MemberLeft {
                    room: self.name.clone(),
                    seq: ev.seq,
                    member: *fp,
                    nick: self.nick_of(fp),
                }));
            }
        }
        for fp in roster.keys() {
            self.admissions.pending_joins.remove(fp);
        }
        self.admissions
            .pending_removals
            .retain(|fp, _| roster.contains_key(fp));
        let now_member = key.is_some();
        if let CommitBody::Full(c) = &c
            && self.settings.is_none()
        {
            self.settings = Some(c.settings.clone());
        }
        // Shared history: earlier keys wrapped for us, opened only now
        // that the commit is authenticated, only in a room whose rules
        // share history, and at most one attempt per epoch (audit L1: a
        // committer may not make us run a private-key operation on the
        // same chosen bytes a thousand times).
        let mut got_history = false;
        let shared = self
            .settings
            .as_ref()
            .is_some_and(|s| s.history == HistoryVisibility::Shared);
        if now_member && !was_member && shared {
            let mut tried = BTreeSet::new();
            for h in c.history().iter().filter(|h| h.member == me) {
                if !tried.insert(h.epoch) {
                    continue;
                }
                if let Some(e) = self.epochs.known.get_mut(&h.epoch)
                    && e.key.is_none()
                    && let Ok(k) = self.me.unwrap(HISTORY_KEY_LABEL, &h.wrapped)
                {
                    e.key = Some(k);
                    got_history = true;
                }
            }
        }
        self.epochs.known.insert(
            epoch,
            Epoch {
                roster: Arc::new(roster),
                key,
            },
        );
        self.epochs.current = epoch;
        self.epochs.ids.insert(epoch, e2e::commit_id(&ev.event));
        self.epochs.commit_seq.insert(epoch, ev.seq);
        if got_history {
            self.replay_backlog(actions);
        }
        // An add-only epoch continues its parent's key lineage: the
        // periodic rekey counts on from the last full commit.
        if matches!(c, CommitBody::Full(_)) || self.commits.epoch_started.is_none() {
            self.commits.epoch_messages = 0;
            self.commits.epoch_started = Some(now);
            self.commits.rekey_due_since = None;
        }
        let members: Vec<(Fingerprint, String)> = self.epochs.known[&epoch]
            .roster
            .keys()
            .map(|fp| (*fp, self.nick_of(fp)))
            .collect();
        if now_member || was_member {
            actions.push(Action::Show(Shown::Epoch {
                room: self.name.clone(),
                seq: ev.seq,
                epoch,
                members,
            }));
        }
        if now_member && !was_member {
            self.outbox.announce_name = self
                .epochs
                .now()
                .and_then(|e| e.roster.get(&me))
                .is_none_or(|r| r.nick != self.nick);
        }
        if now_member && !was_member && self.caught_up {
            self.admissions.join_requested = false;
            actions.push(Action::Show(Shown::Joined {
                room: self.name.clone(),
                me,
                nick: self.nick.clone(),
                epoch,
            }));
            self.announce_name(actions);
            self.flush_queue(actions);
        } else if was_member && !now_member && !self.leaving {
            actions.push(self.notice(Notice::NoLongerMember));
        }
    }

    /// A commit members do not take (invalid, or for a parent another
    /// commit already replaced): nothing changes, no epoch is used up.
    /// Every member reaches the same verdict, since it depends only on the
    /// history they share, except for key confirmation (rule 10), which
    /// only the member handed another key fails. Ours, skipped, is built
    /// again if still needed.
    pub(crate) fn skip_commit(
        &mut self,
        ev: &SequencedEvent,
        warning: Option<Action>,
        actions: &mut Vec<Action>,
    ) {
        actions.extend(warning);
        if ev.event.sender == self.me.fingerprint() {
            self.commits.in_flight = None;
        }
    }

    /// Opens the names a commit seals under its new key into `roster`: a
    /// full commit's members', an add-only one's newcomers' and then the
    /// parent roster's current ones (in fingerprint order). A name that
    /// does not open, or breaks the nickname rules, stays the short id.
    fn open_names(&self, c: &CommitBody, key: &Secret32, epoch: u64, roster: &mut Roster) {
        let (members, names, salt) = match c {
            CommitBody::Full(c) => (&c.members, &[][..], &c.names_salt),
            CommitBody::Add(a) => (&a.added, a.names.as_slice(), &a.names_salt),
        };
        let listed: Vec<(Fingerprint, &[u8])> = members
            .iter()
            .map(|m| (Fingerprint::of_spki_der(&m.public_key), m.nick.as_slice()))
            .collect();
        let names_key = e2e::names_key(key, &self.name, epoch, salt);
        // The parent roster is the new one without the newcomers.
        let present: Vec<Fingerprint> = roster
            .keys()
            .filter(|fp| !listed.iter().any(|(l, _)| l == *fp))
            .copied()
            .collect();
        let all = listed
            .iter()
            .map(|(fp, sealed)| (*fp, *sealed))
            .chain(present.iter().zip(names).map(|(fp, n)| (*fp, n.as_slice())));
        for (index, (fp, sealed)) in (0u64..).zip(all) {
            if let Some(name) = e2e::open_name(&names_key, &self.name, epoch, index, &fp, sealed)
                && let Some(entry) = roster.get_mut(&fp)
            {
                entry.nick = received_nick(&name, &fp);
            }
        }
    }

    /// Once admitted by a commit that did not carry our name (a join
    /// request carries none), we tell the members, sealed, once caught up;
    /// so too a rename made while the send barrier held, once it lifts.
    pub(crate) fn announce_name(&mut self, actions: &mut Vec<Action>) {
        if !self.outbox.barrier.is_empty() || !std::mem::take(&mut self.outbox.announce_name) {
            return;
        }
        if let Some(a) = self.seal(Content::Nick(self.nick.clone()), 0) {
            actions.push(a);
        }
    }
}
