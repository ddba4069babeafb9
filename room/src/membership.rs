//! Who may be in the room: join requests, invites, kicks and leaves,
//! queued as pending changes until a commit carries them out.

use std::time::Instant;

use hush_crypto::{Fingerprint, PublicIdentity};
use hush_proto::e2e::{JoinRequest, MemberRef, Payload, Position};
use hush_proto::{EventKind, SequencedEvent};

use crate::action::{Action, Notice, Refusal};
use crate::authenticate::{Authenticated, Unverified};
use crate::limits::*;

use crate::room::Room;
use crate::warning::{Fork, NotAllowed, Peer, Reordered, Replay, Signed, Warning};

/// A pending change to the roster, waiting for a commit.
pub(crate) struct Pending {
    pub(crate) since: Instant,
}

/// Someone who asked to join, from their signed join request.
#[derive(Clone)]
pub(crate) struct Newcomer {
    pub(crate) key: PublicIdentity,
    pub(crate) nick: String,
    /// They hold the current roster: an add-only commit can admit them.
    pub(crate) knows_roster: bool,
}

impl Room {
    pub(crate) fn request_join(&mut self, actions: &mut Vec<Action>) {
        if self.admissions.join_requested {
            return;
        }
        self.admissions.join_requested = true;
        let payload = Payload::JoinRequest(JoinRequest {
            public_key: self.me.public().spki_der().to_vec(),
            knows_roster: self.epochs.known.contains_key(&self.epochs.current),
            at: self.position(),
        });
        actions.push(self.notice(Notice::AskingToJoin));
        if let Some(a) = self.publish(EventKind::JoinRequest, self.epochs.current, &payload) {
            actions.push(a);
        }
    }

    /// A join request: signed by the key it carries, whose fingerprint
    /// must be the sender.
    pub(crate) fn apply_join_request(
        &mut self,
        event: &Unverified<'_>,
        req: JoinRequest,
        now: Instant,
        actions: &mut Vec<Action>,
    ) {
        let ev = event.ev;
        let request = PublicIdentity::from_spki_der(&req.public_key)
            .ok()
            .filter(|key| key.fingerprint() == ev.event.sender)
            .and_then(|key| event.verify(&key, (key.clone(), req)));
        match request {
            Some(request) => self.queue_admission(request, now, actions),
            None => actions.push(self.bad_signature(ev, Signed::JoinRequest)),
        }
    }

    /// An authenticated join request: admitted by a later commit, if the
    /// room's rules allow.
    fn queue_admission(
        &mut self,
        request: Authenticated<'_, (PublicIdentity, JoinRequest)>,
        now: Instant,
        actions: &mut Vec<Action>,
    ) {
        let ev = request.ev;
        let (key, req) = request.content;
        if !self.fresh_position(ev, &req.at, actions) {
            return;
        }
        let fp = key.fingerprint();
        // A join request carries no name (audit M5): the newcomer is known
        // by its short id until it names itself, sealed, once admitted.
        let nick = fp.short_id();
        let newcomer = Newcomer {
            key,
            nick: nick.clone(),
            knows_roster: req.knows_roster,
        };
        if fp == self.me.fingerprint() || !self.membership_event_is_current(ev, actions) {
            return;
        }
        if self
            .epochs
            .now()
            .is_some_and(|e| e.roster.contains_key(&fp))
        {
            return; // already a member (a repeated request)
        }
        if self.people.nicks.len() < MAX_NICKS {
            self.people.nicks.entry(fp).or_insert_with(|| nick.clone());
        }
        // A kicked identity stays out of an open room too, until the
        // creator invites it again (usability F14: a kick that a new join
        // request undid meant nothing).
        let kicked =
            self.admissions.kicked_at.contains_key(&fp) && !self.admissions.invited.contains(&fp);
        if let Some(settings) = &self.settings
            && (kicked
                || (settings.invite_only
                    && !self.admissions.invited.contains(&fp)
                    && fp != settings.creator))
        {
            // Members ignore it; the creator is told, and may invite.
            if settings.creator == self.me.fingerprint() && self.is_member() {
                actions.push(self.notice(Notice::JoinRequest {
                    member: Peer {
                        fingerprint: fp,
                        nick: nick.clone(),
                    },
                    needs_invite: true,
                }));
            }
            if self.admissions.uninvited.len() < MAX_UNINVITED {
                self.admissions.uninvited.insert(fp, newcomer);
            }
            return;
        }
        if self.is_member() {
            actions.push(self.notice(Notice::JoinRequest {
                member: Peer {
                    fingerprint: fp,
                    nick,
                },
                needs_invite: false,
            }));
        }
        if self.admissions.pending_joins.len() < MAX_PENDING_JOINS {
            self.admissions
                .pending_joins
                .entry(fp)
                .or_insert((newcomer, Pending { since: now }));
        }
    }

    /// Whether a signed membership event (join request, leave, invite,
    /// kick) is recent enough to act on: sealed in the current epoch, or
    /// in the previous one while the commit that replaced it is still
    /// recent (in flight). Older ones are replays: every membership change
    /// opens a new epoch, so an old event's effect is already settled.
    pub(crate) fn membership_event_is_current(
        &self,
        ev: &SequencedEvent,
        actions: &mut Vec<Action>,
    ) -> bool {
        let epoch = ev.event.epoch;
        let in_flight = epoch.saturating_add(1) == self.epochs.current
            && self
                .epochs
                .commit_seq
                .get(&self.epochs.current)
                .is_some_and(|at| ev.seq <= at.saturating_add(STALE_EPOCH_GRACE));
        if epoch == self.epochs.current || in_flight || self.epochs.known.is_empty() {
            return true;
        }
        actions.push(self.warn(
            Some(ev.seq),
            Some(ev.event.sender),
            Warning::Replay(Replay::Membership {
                sealed_in: epoch,
                current: self.epochs.current,
            }),
        ));
        false
    }

    /// An invite or a kick: valid only from the room's creator, signed
    /// with the key the roster holds for them.
    pub(crate) fn apply_control(
        &mut self,
        event: &Unverified<'_>,
        target: MemberRef,
        invite: bool,
        now: Instant,
        actions: &mut Vec<Action>,
    ) {
        let ev = event.ev;
        if !self.membership_event_is_current(ev, actions) {
            return;
        }
        let sender = ev.event.sender;
        let what = if invite { Signed::Invite } else { Signed::Kick };
        let Some(creator) = self.settings.as_ref().map(|s| s.creator) else {
            return;
        };
        if sender != creator {
            actions.push(self.warn(
                Some(ev.seq),
                Some(sender),
                Warning::NotAllowed(NotAllowed::NotCreator { what }),
            ));
            return;
        }
        let key = self
            .epochs
            .known
            .values()
            .rev()
            .find_map(|e| e.roster.get(&creator).map(|r| r.key.clone()));
        let Some(key) = key else {
            return;
        };
        let Some(control) = event.verify(&key, target) else {
            actions.push(self.bad_signature(ev, what));
            return;
        };
        if self.fresh_position(ev, &control.content.at, actions) {
            self.apply_invite_or_kick(&control, invite, now, actions);
        }
    }

    /// An authenticated invite or kick from the creator.
    fn apply_invite_or_kick(
        &mut self,
        control: &Authenticated<'_, MemberRef>,
        invite: bool,
        now: Instant,
        actions: &mut Vec<Action>,
    ) {
        let ev = control.ev;
        let (sender, fp, at) = (ev.event.sender, control.content.member, control.content.at);
        let creator = sender;
        if invite {
            // A kick supersedes every invite its creator signed before
            // seeing it: a relay may not replay one to readmit.
            if self
                .admissions
                .kicked_at
                .get(&fp)
                .is_some_and(|kick| at.seen_seq < *kick)
            {
                actions.push(self.warn(
                    Some(ev.seq),
                    Some(sender),
                    Warning::Replay(Replay::InviteBeforeKick {
                        member: self.peer(&fp),
                    }),
                ));
                return;
            }
            self.admissions.invited.insert(fp);
            if let Some(newcomer) = self.admissions.uninvited.remove(&fp) {
                self.admissions
                    .pending_joins
                    .entry(fp)
                    .or_insert((newcomer, Pending { since: now }));
            }
            if self.is_member() {
                actions.push(self.notice(Notice::Invited {
                    by: self.peer(&sender),
                    member: self.peer(&fp),
                }));
            }
        } else {
            if !self.admissions.kicked_at.contains_key(&fp)
                && self.admissions.kicked_at.len() >= MAX_KICKED
            {
                self.admissions.kicked_at.pop_first();
            }
            self.admissions.kicked_at.insert(fp, ev.seq);
            self.admissions.invited.remove(&fp);
            self.admissions.pending_joins.remove(&fp);
            let member = self
                .epochs
                .now()
                .is_some_and(|e| e.roster.contains_key(&fp));
            if member && fp != creator {
                self.admissions
                    .pending_removals
                    .entry(fp)
                    .or_insert(Pending { since: now });
                actions.push(self.notice(Notice::Kicked {
                    by: self.peer(&sender),
                    member: self.peer(&fp),
                }));
            }
        }
    }

    /// A leave: signed by the sender's key in the current epoch.
    pub(crate) fn apply_leave(
        &mut self,
        event: &Unverified<'_>,
        at: Position,
        now: Instant,
        actions: &mut Vec<Action>,
    ) {
        let ev = event.ev;
        let sender = ev.event.sender;
        let Some(key) = self.roster_key(self.epochs.current, &sender) else {
            return; // not a member: nothing to remove
        };
        if !self.membership_event_is_current(ev, actions) {
            return;
        }
        let Some(leave) = event.verify(&key, at) else {
            actions.push(self.bad_signature(ev, Signed::Leave));
            return;
        };
        if !self.fresh_position(ev, &leave.content, actions) {
            return;
        }
        let sender = leave.ev.event.sender;
        // Our own leave too: the commit removing us must be honoured in
        // our view as well.
        self.admissions
            .pending_removals
            .entry(sender)
            .or_insert(Pending { since: now });
    }

    /// Where we stand now, for a membership event we sign.
    pub(crate) fn position(&mut self) -> Position {
        let counter = self.outbox.membership_counter;
        self.outbox.membership_counter += 1;
        Position {
            session: self.session,
            counter,
            seen_seq: self.chain.last_seq,
            // Unknown when our view starts after pruned messages (zeros:
            // not compared), as in a message's header.
            seen_head: if self.chain.anchored {
                self.chain.head
            } else {
                [0; 32]
            },
        }
    }

    /// Whether an authenticated membership event is new: not placed
    /// before what its sender had seen, and not a copy (or a held-back
    /// earlier one) of what its sender's run already had sequenced.
    /// Refusals are warned; a history its sender saw differently is
    /// warned but the event stands, as for a message.
    pub(crate) fn fresh_position(
        &mut self,
        ev: &SequencedEvent,
        at: &Position,
        actions: &mut Vec<Action>,
    ) -> bool {
        let sender = ev.event.sender;
        if at.seen_seq >= ev.seq {
            let seen_seq = at.seen_seq;
            let w = Warning::Reordered(Reordered::BeforeSeen { seen_seq });
            actions.push(self.warn(Some(ev.seq), Some(sender), w));
            return false;
        }
        let slot = (sender, at.session);
        if self
            .replay
            .membership
            .get(&slot)
            .is_some_and(|next| at.counter < *next)
        {
            let w = Warning::Replay(Replay::RepeatedMembership);
            actions.push(self.warn(Some(ev.seq), Some(sender), w));
            return false;
        }
        if !self.replay.membership.contains_key(&slot)
            && self.replay.membership.len() >= MAX_MEMBERSHIP_SESSIONS
        {
            self.replay.membership.pop_first();
        }
        self.replay
            .membership
            .insert(slot, at.counter.saturating_add(1));
        if self.chain.anchored
            && at.seen_head != [0; 32]
            && self
                .chain
                .heads
                .get(&at.seen_seq)
                .is_some_and(|head| *head != at.seen_head)
        {
            let w = Warning::Fork(Fork::Message {
                seen_seq: at.seen_seq,
            });
            actions.push(self.warn(Some(ev.seq), Some(sender), w));
        }
        true
    }

    pub(crate) fn creator_check(&self, what: Signed) -> Result<(), Refusal> {
        let Some(settings) = &self.settings else {
            return Err(Refusal::NoMembersYet);
        };
        if settings.creator != self.me.fingerprint() {
            return Err(Refusal::NotCreator {
                creator: self.peer(&settings.creator),
                what,
            });
        }
        Ok(())
    }

    /// Resolves a nickname, short id or fingerprint among members and
    /// people who asked to join.
    ///
    /// # Errors
    /// [`Refusal::ConfirmFingerprint`] for a nickname (names are chosen by
    /// whoever sends them), [`Refusal::Unknown`] or [`Refusal::Ambiguous`].
    pub fn resolve(&self, query: &str) -> Result<Fingerprint, Refusal> {
        if let Ok(fp) = query.parse::<Fingerprint>() {
            return Ok(fp);
        }
        let mut found: Vec<Fingerprint> = self.whois(query).into_iter().map(|(fp, _)| fp).collect();
        found.extend(
            self.admissions
                .uninvited
                .iter()
                .filter(|(fp, n)| n.nick == query || fp.short_id() == query)
                .map(|(fp, _)| *fp),
        );
        found.sort();
        found.dedup();
        let query = query.to_owned();
        match found.as_slice() {
            // A short id is ours to read; a nickname is whatever its
            // sender chose (audit L5): confirm the fingerprint first.
            [one] if one.short_id() == query => Ok(*one),
            [one] => Err(Refusal::ConfirmFingerprint {
                member: self.peer(one),
            }),
            [] => Err(Refusal::Unknown { query }),
            _ => Err(Refusal::Ambiguous { query }),
        }
    }

    /// Invites someone to an invite-only room (creator only).
    ///
    /// # Errors
    /// Why not, if we may not, or `who` is unknown.
    pub fn invite(&mut self, who: &str) -> Result<Vec<Action>, Refusal> {
        self.creator_check(Signed::Invite)?;
        let member = self.resolve(who)?;
        // In an open room only a kicked identity needs an invite back.
        if self.settings.as_ref().is_some_and(|s| !s.invite_only)
            && !self.admissions.kicked_at.contains_key(&member)
        {
            return Err(Refusal::RoomIsOpen);
        }
        let at = self.position();
        Ok(self
            .publish(
                EventKind::Control,
                self.epochs.current,
                &Payload::Invite(MemberRef { member, at }),
            )
            .into_iter()
            .collect())
    }

    /// Removes a member (creator only); members rekey without them.
    ///
    /// # Errors
    /// Why not, if we may not, or `who` is not a member.
    pub fn kick(&mut self, who: &str) -> Result<Vec<Action>, Refusal> {
        self.creator_check(Signed::Kick)?;
        let member = self.resolve(who)?;
        if member == self.me.fingerprint() {
            return Err(Refusal::KickSelf);
        }
        if !self
            .epochs
            .now()
            .is_some_and(|e| e.roster.contains_key(&member))
        {
            return Err(Refusal::NotAMember {
                member: self.peer(&member),
            });
        }
        let at = self.position();
        Ok(self
            .publish(
                EventKind::Control,
                self.epochs.current,
                &Payload::Kick(MemberRef { member, at }),
            )
            .into_iter()
            .collect())
    }

    /// Leaves the room: members rekey without us.
    pub fn leave(&mut self) -> Vec<Action> {
        self.leaving = true;
        if !self.is_member() {
            return Vec::new();
        }
        let at = self.position();
        let mut actions: Vec<Action> = self
            .publish(EventKind::Leave, self.epochs.current, &Payload::Leave(at))
            .into_iter()
            .collect();
        if self
            .settings
            .as_ref()
            .is_some_and(|s| s.creator == self.me.fingerprint())
        {
            actions.push(self.notice(Notice::LeavingAsCreator));
        }
        actions
    }
}
