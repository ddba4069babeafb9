//! The commits this member makes: when it is the designated member, who
//! is admitted or removed, and the key envelopes for each member.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hush_crypto::{Fingerprint, PublicIdentity, Secret32, derive_secret};
use hush_proto::EventKind;
use hush_proto::e2e::{
    self, ADD_EPOCH_KEY_INFO, AddCommit, Commit, EPOCH_KEY_LABEL, HISTORY_KEY_LABEL,
    HistoryEnvelope, HistoryVisibility, KeyEnvelope, MAX_HISTORY_ENVELOPES, MAX_ROSTER, Member,
    RoomSettings,
};

use crate::action::Action;
use crate::commit::CommitBody;
use crate::membership::Newcomer;
use crate::room::{FALLBACK_COMMIT_AFTER, REMOVAL_GRACE, Room};
use crate::warning::Warning;

impl Room {
    /// Whether we are the member expected to make the next commit: the
    /// online member of the current roster with the lowest fingerprint,
    /// leaving out members whose removal is pending (they may not commit).
    pub(crate) fn designated(&self) -> bool {
        let me = self.me.fingerprint();
        let Some(e) = self.epochs.now() else {
            return false;
        };
        e.roster
            .keys()
            .filter(|fp| !self.admissions.pending_removals.contains_key(fp))
            .find(|fp| **fp == me || self.people.online.contains(fp))
            .is_some_and(|fp| *fp == me)
    }

    pub(crate) fn maybe_commit(&mut self, now: Instant, actions: &mut Vec<Action>) {
        self.update_barrier(now, actions);
        if !self.caught_up
            || self.chain.rewound
            || self.leaving
            || self
                .admissions
                .pending_removals
                .contains_key(&self.me.fingerprint())
            || self.commits.in_flight.is_some()
            || self.commits.hold_until.is_some_and(|t| now < t)
            || !self.is_member()
        {
            return;
        }
        // Zero means "never" for either limit.
        let age = self
            .commits
            .epoch_started
            .map_or(Duration::ZERO, |t| now.duration_since(t));
        let rekey_due = (self.commits.policy.max_messages > 0
            && self.commits.epoch_messages >= self.commits.policy.max_messages)
            || (!self.commits.policy.max_age.is_zero() && age >= self.commits.policy.max_age);
        if rekey_due {
            self.commits.rekey_due_since.get_or_insert(now);
        }
        if self.admissions.pending_joins.is_empty()
            && self.admissions.pending_removals.is_empty()
            && !rekey_due
        {
            return;
        }
        let oldest = self
            .admissions
            .pending_joins
            .values()
            .map(|(_, p)| p.since)
            .chain(self.admissions.pending_removals.values().map(|p| p.since))
            .chain(self.commits.rekey_due_since)
            .min();
        let overdue = oldest.is_some_and(|t| now.duration_since(t) >= FALLBACK_COMMIT_AFTER);
        if !self.designated() && !overdue {
            return;
        }
        let Some(e) = self.epochs.now() else {
            return;
        };
        // Who stays, as a full commit would list them. Sized without
        // copying: an add-only commit never lists them.
        let staying = || {
            e.roster
                .iter()
                .filter(|(fp, _)| !self.admissions.pending_removals.contains_key(fp))
        };
        let count = staying().count();
        // Admit as many as fit in one full commit (removing anyone later
        // takes one); the rest wait for the next.
        let budget = self.commits.budget;
        let size: usize = staying()
            .map(|(fp, r)| match self.people.nicks.get(fp) {
                Some(nick) => member_cost(&r.key, nick),
                None => member_cost(&r.key, &fp.short_id()),
            })
            .sum();
        if size > budget {
            actions.push(self.warn(
                None,
                None,
                Warning::RoomFull {
                    next_does_not_fit: false,
                },
            ));
            self.admissions.pending_joins.clear();
            return;
        }
        let costs: Vec<usize> = self
            .admissions
            .pending_joins
            .values()
            .map(|(n, _)| member_cost(&n.key, &n.nick))
            .collect();
        let fits = admissions(count, size, &costs, budget);
        let newcomers: Vec<Newcomer> = self
            .admissions
            .pending_joins
            .values()
            .zip(&fits)
            .filter(|(_, fit)| **fit)
            .map(|((n, _), _)| n.clone())
            .collect();
        let admitted = newcomers.len();
        if admitted == 0 && self.admissions.pending_removals.is_empty() && !rekey_due {
            // Only joins are pending and none fits: a commit would change
            // nothing, and committing it again every tick would spin.
            actions.push(self.warn(
                None,
                None,
                Warning::RoomFull {
                    next_does_not_fit: true,
                },
            ));
            self.admissions.pending_joins.clear();
            return;
        }
        // Only admitting, to people who can follow the roster: an add-only
        // commit (one wrap per newcomer, no RSA for the members). Anything
        // else, or a room without our key, takes a full commit.
        let add_only = admitted > 0
            && !rekey_due
            && self.admissions.pending_removals.is_empty()
            && newcomers.iter().all(|n| n.knows_roster);
        let commit = if add_only {
            self.add_commit(newcomers)
        } else {
            let members: Vec<(Arc<PublicIdentity>, String)> = staying()
                .map(|(fp, r)| (r.key.clone(), self.nick_of(fp)))
                .chain(newcomers.into_iter().map(|n| (Arc::new(n.key), n.nick)))
                .collect();
            self.commit(members)
        };
        if let Some(a) = commit {
            actions.push(a);
        }
    }

    /// The send barrier: who has been waiting for removal longer than
    /// [`REMOVAL_GRACE`]. Once nobody is, what was typed meanwhile is sent.
    fn update_barrier(&mut self, now: Instant, actions: &mut Vec<Action>) {
        self.outbox.barrier = self
            .admissions
            .pending_removals
            .iter()
            .filter(|(fp, p)| {
                **fp != self.me.fingerprint() && now.duration_since(p.since) >= REMOVAL_GRACE
            })
            .map(|(fp, _)| *fp)
            .collect();
        if self.outbox.barrier.is_empty() && self.caught_up && self.is_member() {
            self.announce_name(actions);
            self.flush_queue(actions);
        }
    }

    /// Builds a commit opening `current + 1` with a fresh key for
    /// `members`.
    pub(crate) fn commit(&mut self, members: Vec<(Arc<PublicIdentity>, String)>) -> Option<Action> {
        let key = self.entropy.secret32();
        let keys: Vec<&PublicIdentity> = members.iter().map(|(k, _)| &**k).collect();
        let envelopes = wrap_to_each(&keys, &key)?;
        let settings = self.settings.clone().unwrap_or(RoomSettings {
            creator: self.me.fingerprint(),
            invite_only: self.create_as.0,
            history: self.create_as.1,
        });
        let newcomers: Vec<&PublicIdentity> = match self.epochs.now() {
            Some(current) => keys
                .into_iter()
                .filter(|k| !current.roster.contains_key(&k.fingerprint()))
                .collect(),
            None => Vec::new(),
        };
        let size = members.iter().map(|(k, n)| member_cost(k, n)).sum();
        let history = self.history_for(&settings, &newcomers, size)?;
        let epoch = self.epochs.current.checked_add(1)?;
        let names_salt = self.entropy.salt16();
        let names_key = e2e::names_key(&key, &self.name, epoch, &names_salt);
        let named: Vec<(Fingerprint, &str)> = members
            .iter()
            .map(|(k, nick)| (k.fingerprint(), nick.as_str()))
            .collect();
        let sealed = e2e::seal_names(&names_key, &self.name, epoch, &named);
        let commit = CommitBody::Full(Commit {
            parent_epoch: self.epochs.current,
            parent_commit: self.commit_id().unwrap_or([0; 32]),
            committer_key: self.me.public().spki_der().to_vec(),
            members: members
                .iter()
                .zip(sealed)
                .map(|((k, _), nick)| Member {
                    public_key: k.spki_der().to_vec(),
                    nick,
                })
                .collect(),
            envelopes,
            settings,
            history,
            names_salt,
            confirm: [0; 32],
        });
        let payload = commit
            .confirm_with(&key, &self.name, epoch, &self.me.fingerprint())
            .into_payload();
        self.commits.in_flight = Some(epoch);
        self.publish(EventKind::Commit, epoch, &payload)
    }

    /// Builds an add-only commit opening `current + 1` for the current
    /// roster plus `newcomers`: the key is derived from ours, and wrapped
    /// to the newcomers alone (see [`AddCommit`]).
    pub(crate) fn add_commit(&mut self, newcomers: Vec<Newcomer>) -> Option<Action> {
        let names_salt = self.entropy.salt16();
        let parent = self.epochs.now()?;
        let parent_key = parent.key.as_ref()?;
        let settings = self.settings.clone()?;
        let epoch = self.epochs.current.checked_add(1)?;
        let added: Vec<Fingerprint> = newcomers.iter().map(|n| n.key.fingerprint()).collect();
        let salt = e2e::add_epoch_salt(&self.name, epoch, &self.me.fingerprint(), &added);
        let key = derive_secret(parent_key, &salt, ADD_EPOCH_KEY_INFO);
        let keys: Vec<&PublicIdentity> = newcomers.iter().map(|n| &n.key).collect();
        let envelopes = wrap_to_each(&keys, &key)?;
        let size = newcomers.iter().map(|n| member_cost(&n.key, &n.nick)).sum();
        let history = self.history_for(&settings, &keys, size)?;
        // The newcomers' names (not known yet: a join request carries none)
        // then every current member's, all sealed under the new key.
        let names_key = e2e::names_key(&key, &self.name, epoch, &names_salt);
        let current: Vec<(Fingerprint, String)> = parent
            .roster
            .keys()
            .map(|fp| (*fp, self.nick_of(fp)))
            .collect();
        let named: Vec<(Fingerprint, &str)> = newcomers
            .iter()
            .map(|n| (n.key.fingerprint(), n.nick.as_str()))
            .chain(current.iter().map(|(fp, n)| (*fp, n.as_str())))
            .collect();
        let mut sealed = e2e::seal_names(&names_key, &self.name, epoch, &named);
        let names = sealed.split_off(newcomers.len());
        let commit = CommitBody::Add(AddCommit {
            parent_epoch: self.epochs.current,
            parent_commit: self.commit_id().unwrap_or([0; 32]),
            added: newcomers
                .iter()
                .zip(sealed)
                .map(|(n, nick)| Member {
                    public_key: n.key.spki_der().to_vec(),
                    nick,
                })
                .collect(),
            envelopes,
            history,
            names,
            names_salt,
            confirm: [0; 32],
        });
        let payload = commit
            .confirm_with(&key, &self.name, epoch, &self.me.fingerprint())
            .into_payload();
        self.commits.in_flight = Some(epoch);
        self.publish(EventKind::Commit, epoch, &payload)
    }

    /// Shared history: the earlier keys we hold, newest first, wrapped for
    /// each newcomer, within what is left of the commit budget after
    /// `used` bytes. Empty unless the room shares its history.
    pub(crate) fn history_for(
        &self,
        settings: &RoomSettings,
        newcomers: &[&PublicIdentity],
        used: usize,
    ) -> Option<Vec<HistoryEnvelope>> {
        let mut history = Vec::new();
        if settings.history != HistoryVisibility::Shared {
            return Some(history);
        }
        let mut budget = self.commits.budget.saturating_sub(used);
        for m in newcomers {
            for (epoch, e) in self.epochs.known.iter().rev() {
                let Some(k) = &e.key else { continue };
                let cost = m.bits() / 8 + 48;
                if history.len() >= MAX_HISTORY_ENVELOPES || cost > budget {
                    break;
                }
                budget -= cost;
                history.push(HistoryEnvelope {
                    member: m.fingerprint(),
                    epoch: *epoch,
                    wrapped: m.wrap(HISTORY_KEY_LABEL, k).ok()?.as_bytes().to_vec(),
                });
            }
        }
        Some(history)
    }
}

/// Which pending joins (by their encoded cost) one commit can admit to a
/// roster of `count` members whose encoding costs `size`: in order, while
/// they fit the budget and the roster limit.
pub(crate) fn admissions(count: usize, size: usize, costs: &[usize], budget: usize) -> Vec<bool> {
    let (mut count, mut size) = (count, size);
    costs
        .iter()
        .map(|&cost| {
            let fit = count < MAX_ROSTER && size + cost <= budget;
            if fit {
                count += 1;
                size += cost;
            }
            fit
        })
        .collect()
}

/// Envelopes per thread below which wrapping is not worth a thread.
pub(crate) const WRAPS_PER_THREAD: usize = 64;

/// `key` wrapped (RSA-OAEP, [`EPOCH_KEY_LABEL`]) to each of `members`, in
/// order. A big commit spreads the wraps over the machine's cores: a
/// rekey of 5,000 members is 5,000 public-key operations.
pub(crate) fn wrap_to_each(
    members: &[&PublicIdentity],
    key: &Secret32,
) -> Option<Vec<KeyEnvelope>> {
    let wrap = |m: &&PublicIdentity| {
        Some(KeyEnvelope {
            member: m.fingerprint(),
            wrapped: m.wrap(EPOCH_KEY_LABEL, key).ok()?.as_bytes().to_vec(),
        })
    };
    let threads = std::thread::available_parallelism()
        .map_or(1, std::num::NonZero::get)
        .min(members.len() / WRAPS_PER_THREAD);
    if threads <= 1 {
        return members.iter().map(wrap).collect();
    }
    let chunk = members.len().div_ceil(threads);
    std::thread::scope(|s| {
        let parts: Vec<_> = members
            .chunks(chunk)
            .map(|part| s.spawn(move || part.iter().map(wrap).collect::<Option<Vec<_>>>()))
            .collect();
        let mut out = Vec::with_capacity(members.len());
        for part in parts {
            // A wrap that panicked is a failed commit, never ours to crash on.
            out.extend(part.join().ok()??);
        }
        Some(out)
    })
}

/// Bytes one member adds to a commit: its key, nickname and key envelope
/// (as long as its modulus), plus framing.
pub(crate) fn member_cost(key: &PublicIdentity, nick: &str) -> usize {
    key.spki_der().len() + nick.len() + key.bits() / 8 + 48
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    pub(crate) fn admissions_take_joins_in_order_while_they_fit() {
        assert_eq!(admissions(2, 100, &[50, 60, 10], 200), [true, false, true]);
        // The room is exactly full: nobody fits, which the caller must not
        // turn into a commit of the same roster (it would repeat forever).
        assert_eq!(admissions(2, 190, &[20, 30], 200), [false, false]);
        assert_eq!(admissions(MAX_ROSTER, 0, &[1], usize::MAX), [false]);
        assert_eq!(
            admissions(MAX_ROSTER - 1, 0, &[1, 1], usize::MAX),
            [true, false]
        );
    }
}
