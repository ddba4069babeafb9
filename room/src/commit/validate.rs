//! The rules a commit must meet before anyone honours it
//! (docs/PROTOCOL.md §9.2.6).

use std::collections::BTreeMap;
use std::sync::Arc;

use hush_crypto::{Fingerprint, PublicIdentity};
use hush_proto::SequencedEvent;
use hush_proto::e2e::{EVENT_SIGNATURE_CONTEXT, MAX_HISTORY_ENVELOPES, MAX_ROSTER, SignedBody};

use crate::commit::{CommitBody, CommitFault};
use crate::epochs::RosterEntry;
use crate::membership::clean_nick;
use crate::room::Room;

impl Room {
    /// Checks a commit: its signature (by the committer key a full commit
    /// carries, or by the parent roster's key for an add-only one), parent
    /// epoch, the committer's authority, and the roster. The roster, or why
    /// the commit is void (the relay sequenced it but members ignore it)
    /// or a sign of a forked history.
    pub(crate) fn validate_commit(
        &self,
        ev: &SequencedEvent,
        digest: &[u8; 32],
        body: &SignedBody,
        c: &CommitBody,
    ) -> Result<BTreeMap<Fingerprint, RosterEntry>, CommitFault> {
        let sender = ev.event.sender;
        let epoch = ev.event.epoch;
        let parent_epoch = c.parent_epoch();
        let bad = |what: &str| {
            CommitFault::void(self.warn(
                Some(ev.seq),
                Some(sender),
                "bad_commit",
                format!("a commit from {} {what}; ignored", self.who(&sender)),
            ))
        };
        let fork = || {
            let (kind, why) = if parent_epoch > self.current {
                (
                    "missing_commit",
                    "the relay withheld the commits in between from you",
                )
            } else {
                ("fork", "the relay showed the committer a different history")
            };
            CommitFault::fork(self.warn(
                Some(ev.seq),
                Some(sender),
                kind,
                format!(
                    "a commit from {} opens epoch {epoch} while #{} is at epoch {} for you: {why}; ignored",
                    self.who(&sender),
                    self.name,
                    self.current
                ),
            ))
        };
        let not_member = || {
            CommitFault::void(self.warn(
                Some(ev.seq),
                Some(sender),
                "not_member",
                format!(
                    "{} tried to change #{}'s members without being one; ignored",
                    self.who(&sender),
                    self.name
                ),
            ))
        };
        let mut anchored = false;
        let roster = match c {
            CommitBody::Full(c) => {
                let Ok(committer) = PublicIdentity::from_spki_der(&c.committer_key) else {
                    return Err(CommitFault::void(self.bad_signature(ev, "commit")));
                };
                if committer.fingerprint() != sender
                    || committer
                        .verify(EVENT_SIGNATURE_CONTEXT, digest, &body.signature)
                        .is_err()
                {
                    return Err(CommitFault::void(self.bad_signature(ev, "commit")));
                }
                if c.parent_epoch.checked_add(1) != Some(epoch) {
                    return Err(bad("names an impossible parent epoch"));
                }
                // Authority: a member of the parent epoch; or, before we
                // know any roster, the creator of the room (parent 0) or
                // the first roster we are shown when the relay no longer
                // keeps earlier history.
                if self.epochs.is_empty() {
                    if c.parent_epoch < self.current {
                        return Err(fork());
                    }
                    // Mid-history: past what we were shown, or at an epoch
                    // only add-only commits we could not judge led to.
                    if c.parent_epoch > self.current || (c.parent_epoch > 0 && !self.chain_anchored)
                    {
                        // Only a log whose start we skipped (retention) may
                        // begin mid-history; otherwise the relay withheld
                        // commits.
                        if self.chain_anchored {
                            return Err(fork());
                        }
                        anchored = true;
                    }
                } else if c.parent_epoch != self.current {
                    return Err(fork());
                } else if self.roster_key(c.parent_epoch, &sender).is_none() {
                    return Err(not_member());
                }
                if c.members.is_empty()
                    || c.members.len() > MAX_ROSTER
                    || c.envelopes.len() > MAX_ROSTER
                {
                    return Err(bad("has an impossible roster"));
                }
                // Keys we already hold are not parsed again: a rekey of a
                // big room mostly repeats its roster.
                let known = self.epochs.get(&self.current).map(|e| &e.roster);
                let mut roster = BTreeMap::new();
                for m in &c.members {
                    let fp = Fingerprint::of_spki_der(&m.public_key);
                    let key = match known.and_then(|r| r.get(&fp)) {
                        Some(r) if r.key.spki_der() == m.public_key.as_slice() => r.key.clone(),
                        _ => match PublicIdentity::from_spki_der(&m.public_key) {
                            Ok(key) => Arc::new(key),
                            Err(_) => return Err(bad("lists an invalid key")),
                        },
                    };
                    let nick = clean_nick(&m.nick, &fp);
                    roster.insert(fp, RosterEntry { key, nick });
                }
                if roster.len() != c.members.len() || !roster.contains_key(&sender) {
                    return Err(bad("has a duplicate or missing member"));
                }
                match &self.settings {
                    Some(s) if c.settings != *s => return Err(bad("changes the room's settings")),
                    None if c.parent_epoch == 0 && c.settings.creator != sender => {
                        return Err(bad("names someone else as the room's creator"));
                    }
                    _ => {}
                }
                roster
            }
            CommitBody::Add(a) => {
                if a.parent_epoch.checked_add(1) != Some(epoch) || a.parent_epoch == 0 {
                    return Err(bad("names an impossible parent epoch"));
                }
                // It extends a roster: without one we cannot judge it.
                // That is only possible when the relay pruned the log's
                // start (otherwise it withheld the commits before), and
                // then our saved state may still hold the parent epoch.
                let parent = if self.epochs.is_empty() {
                    match self.archive.get(&a.parent_epoch) {
                        Some(saved) if !self.chain_anchored => {
                            anchored = true;
                            saved
                        }
                        _ if self.chain_anchored => return Err(fork()),
                        _ => return Err(CommitFault::Unjudgeable),
                    }
                } else {
                    match self.epochs.get(&a.parent_epoch) {
                        Some(parent) if a.parent_epoch == self.current => parent,
                        _ => return Err(fork()),
                    }
                };
                let Some(committer) = parent.roster.get(&sender).map(|r| &r.key) else {
                    return Err(not_member());
                };
                if committer
                    .verify(EVENT_SIGNATURE_CONTEXT, digest, &body.signature)
                    .is_err()
                {
                    return Err(CommitFault::void(self.bad_signature(ev, "commit")));
                }
                let parent = &parent.roster;
                if a.added.is_empty()
                    || parent.len().saturating_add(a.added.len()) > MAX_ROSTER
                    || a.envelopes.len() > a.added.len()
                {
                    return Err(bad("has an impossible roster"));
                }
                let mut roster = (**parent).clone();
                for m in &a.added {
                    let Ok(key) = PublicIdentity::from_spki_der(&m.public_key) else {
                        return Err(bad("lists an invalid key"));
                    };
                    let fp = key.fingerprint();
                    let nick = clean_nick(&m.nick, &fp);
                    let key = Arc::new(key);
                    if roster.insert(fp, RosterEntry { key, nick }).is_some() {
                        return Err(bad("adds someone who is already a member"));
                    }
                }
                // An add-only epoch keeps the parent's key lineage, which a
                // member who left or was kicked still holds: it may not
                // stand in for the rekey that removes them.
                if self.chain_anchored
                    && let Some(fp) = self.pending_removals.keys().next()
                {
                    return Err(CommitFault::void(self.warn(
                        Some(ev.seq),
                        Some(sender),
                        "not_allowed",
                        format!(
                            "{} admitted members to #{} without removing {}, who left or was kicked; ignored",
                            self.who(&sender),
                            self.name,
                            self.who(fp)
                        ),
                    )));
                }
                roster
            }
        };
        if c.history().len() > MAX_HISTORY_ENVELOPES {
            return Err(bad("carries too many history keys"));
        }
        let Some(settings) = self.settings.as_ref().or(match c {
            CommitBody::Full(c) => Some(&c.settings),
            CommitBody::Add(_) => None,
        }) else {
            // Only a view that starts after pruned history can hold a
            // roster without the rules that came with it.
            return Err(CommitFault::Unjudgeable);
        };
        // Membership rules need the whole history (invites, leaves, kicks):
        // a member whose view starts after pruned events cannot judge them,
        // and must not void what everyone else honours.
        let judge = self.chain_anchored;
        if judge && let Some(before) = self.epochs.get(&self.current) {
            let dropped = before
                .roster
                .keys()
                .find(|fp| !roster.contains_key(fp) && !self.pending_removals.contains_key(fp));
            if let Some(fp) = dropped {
                return Err(CommitFault::void(self.warn(
                    Some(ev.seq),
                    Some(sender),
                    "not_allowed",
                    format!(
                        "{} removed {} from #{}, who neither left nor was kicked by its creator; ignored",
                        self.who(&sender),
                        self.who(fp),
                        self.name
                    ),
                )));
            }
        }
        if settings.invite_only
            && judge
            && let Some(before) = self.epochs.get(&self.current)
        {
            let uninvited = roster.keys().find(|fp| {
                !before.roster.contains_key(fp)
                    && !self.invited.contains(fp)
                    && **fp != settings.creator
            });
            if let Some(fp) = uninvited {
                return Err(CommitFault::void(self.warn(
                    Some(ev.seq),
                    Some(sender),
                    "not_invited",
                    format!(
                        "{} admitted {} to invite-only #{} without an invite from its creator; ignored",
                        self.who(&sender),
                        self.who(fp),
                        self.name
                    ),
                )));
            }
        }
        if anchored {
            return Err(CommitFault::anchor(
                self.notice(format!(
                    "history of #{} before epoch {epoch} is no longer kept; trusting its roster as first seen",
                    self.name
                )),
                roster,
            ));
        }
        Ok(roster)
    }
}
