//! Messages: opening and checking what members sent (signature,
//! counters, replays, backlog of unreadable ones) and sealing our own.

use hush_crypto::{Fingerprint, SealingKey, derive_secret};
use hush_proto::e2e::{self, Content, HistoryVisibility, MESSAGE_KEY_INFO, Payload, SealedMessage};
use hush_proto::msg::{decode, encode};
use hush_proto::{EventKind, SequencedEvent};

use crate::action::{Action, Notice, Shown};
use crate::authenticate::{Authenticated, Unverified};
use crate::limits::*;
use crate::nick::received_nick;
use crate::room::Room;
use crate::warning::{MissingCommit, Replay, Signed, Undecryptable, Warning};

impl Room {
    /// A message: signed by the sender's key in the roster of the epoch
    /// it claims, which must be one we know.
    pub(crate) fn apply_message(
        &mut self,
        event: &Unverified<'_>,
        m: SealedMessage,
        actions: &mut Vec<Action>,
    ) {
        let ev = event.ev;
        let sender = ev.event.sender;
        let epoch = ev.event.epoch;
        // Before the first commit of a log whose start retention removed,
        // later epochs are simply history we lack, not a withheld commit.
        let history_unknown = self.epochs.known.is_empty() && !self.chain.anchored;
        if epoch > self.epochs.current && !history_unknown {
            actions.push(self.warn(
                Some(ev.seq),
                Some(sender),
                Warning::MissingCommit(MissingCommit::Message { epoch }),
            ));
            return;
        }
        let Some(e) = self
            .epochs
            .known
            .get(&epoch)
            .or_else(|| self.epochs.archive.get(&epoch))
        else {
            self.backlog.unreadable += 1; // before our time in the room
            return;
        };
        if e.key.is_none() && !self.is_member() {
            // Counted toward the periodic rekey like the members count it,
            // so that our count agrees with theirs once an add-only commit
            // admits us. Unverified: a forged one can only make us rekey
            // early, which any member may do.
            if epoch == self.epochs.current {
                self.commits.epoch_messages += 1;
            }
            // Not ours to read (yet): a shared-history admission may give
            // us the key, so keep it, if it is genuine and there is room.
            let keep = self.backlog.events.len() < MAX_BACKLOG
                && self.backlog.bytes + ev.event.body.len() <= MAX_BACKLOG_BYTES
                && self
                    .settings
                    .as_ref()
                    .is_none_or(|s| s.history == HistoryVisibility::Shared)
                && e.roster
                    .get(&sender)
                    .is_some_and(|r| event.verify(&r.key, ()).is_some());
            if keep {
                self.backlog.bytes += ev.event.body.len();
                self.backlog.events.push(ev.clone());
            }
            self.backlog.unreadable += 1;
            return;
        }
        let Some(entry) = e.roster.get(&sender) else {
            actions.push(self.warn(
                Some(ev.seq),
                Some(sender),
                Warning::NotMember { epoch: Some(epoch) },
            ));
            return;
        };
        let Some(message) = event.verify(&entry.key, m) else {
            actions.push(self.bad_signature(ev, Signed::Message));
            return;
        };
        self.open_message(&message, actions);
    }

    /// An authenticated message: stale-epoch and replay rules, the
    /// transcript checks, then open it.
    fn open_message(
        &mut self,
        message: &Authenticated<'_, SealedMessage>,
        actions: &mut Vec<Action>,
    ) {
        let (ev, m) = (message.ev, &message.content);
        let sender = ev.event.sender;
        let epoch = ev.event.epoch;
        let Some(e) = self
            .epochs
            .known
            .get(&epoch)
            .or_else(|| self.epochs.archive.get(&epoch))
        else {
            return;
        };
        if epoch == self.epochs.current {
            self.commits.epoch_messages += 1;
        }
        // A message from an epoch the room has moved past, from someone no
        // longer in it: only in flight for a while after their removal,
        // never indefinitely (a removed member keeps the old key).
        if epoch < self.epochs.current
            && !self
                .epochs
                .now()
                .is_some_and(|c| c.roster.contains_key(&sender))
        {
            // Judged only where we saw the commit that replaced the epoch.
            let replaced_at = self.epochs.commit_seq.get(&(epoch + 1)).copied();
            if replaced_at.is_some_and(|at| ev.seq > at.saturating_add(STALE_EPOCH_GRACE)) {
                actions.push(self.warn(Some(ev.seq), Some(sender), Warning::StaleEpoch));
                return;
            }
        }
        let Some(epoch_key) = &e.key else {
            self.backlog.unreadable += 1;
            return;
        };
        // Replay detection remembers the current and previous epochs in
        // full; older ones only by their highest counter, so an old message
        // at or below it cannot be told from a replay and is not shown.
        if epoch.saturating_add(1) < self.epochs.current
            && self
                .replay
                .next_counter
                .get(&(sender, m.session, epoch))
                .is_some_and(|next| m.counter < *next)
            && !self
                .replay
                .seen
                .contains(&(sender, m.session, epoch, m.counter))
        {
            actions.push(self.warn(
                Some(ev.seq),
                Some(sender),
                Warning::Replay(Replay::OldMessage),
            ));
            return;
        }
        if self.replay.seen.len() >= MAX_SEEN {
            let keep_from = self.epochs.current.saturating_sub(1);
            self.replay.seen.retain(|(_, _, e, _)| *e >= keep_from);
        }
        if !self
            .replay
            .seen
            .insert((sender, m.session, epoch, m.counter))
        {
            actions.push(self.warn(
                Some(ev.seq),
                Some(sender),
                Warning::Replay(Replay::Repeated),
            ));
            return;
        }
        let epoch_key = epoch_key.clone();
        self.check_transcript(ev, m, actions);
        let key = SealingKey::new(&derive_secret(
            &epoch_key,
            &e2e::message_key_salt(&sender, &m.session, epoch),
            MESSAGE_KEY_INFO,
        ));
        let aad = e2e::message_aad(&self.name, &sender, epoch, m);
        let content = key
            .open(m.counter, &aad, &m.ciphertext)
            .ok()
            .and_then(|plain| decode::<Content>(&plain).ok());
        match content {
            Some(Content::Text(text)) => self.show_message(ev, m, sender, text, false, actions),
            Some(Content::Action(text)) => self.show_message(ev, m, sender, text, true, actions),
            Some(Content::Nick(new)) => {
                let new = received_nick(&new, &sender);
                let old = self.nick_of(&sender);
                self.people.nicks.insert(sender, new.clone());
                if sender == self.me.fingerprint() {
                    self.nick.clone_from(&new);
                }
                actions.push(self.notice(Notice::NickChanged {
                    member: sender,
                    old,
                    new: new.clone(),
                }));
                let dups = self.same_nick(&sender, &new);
                if !dups.is_empty() {
                    actions.push(self.warn(
                        Some(ev.seq),
                        Some(sender),
                        Warning::SameNick {
                            nick: new,
                            others: dups,
                        },
                    ));
                }
            }
            Some(Content::File(offer)) => {
                if crate::limits::file_offer_holds(&offer) {
                    if self.files.len() >= crate::limits::MAX_OFFERED_FILES {
                        self.files.pop_front();
                    }
                    self.files.push_back(crate::room::OfferedFile {
                        seq: ev.seq,
                        from: sender,
                        nick: self.nick_of(&sender),
                        offer: offer.clone(),
                        received_at_ms: ev.received_at_ms,
                    });
                    actions.push(Action::Show(Shown::FileOffered {
                        room: self.name.clone(),
                        seq: ev.seq,
                        from: sender,
                        nick: self.nick_of(&sender),
                        offer,
                        received_at_ms: ev.received_at_ms,
                    }));
                } else {
                    actions.push(self.warn(
                        Some(ev.seq),
                        Some(sender),
                        Warning::BadFile(crate::BadFile::Offer),
                    ));
                }
            }
            None => actions.push(self.warn(
                Some(ev.seq),
                Some(sender),
                Warning::Undecryptable(Undecryptable::Message),
            )),
        }
    }

    /// A verified, opened text or action.
    fn show_message(
        &self,
        ev: &SequencedEvent,
        m: &SealedMessage,
        sender: Fingerprint,
        text: String,
        action: bool,
        actions: &mut Vec<Action>,
    ) {
        let nick = self.nick_of(&sender);
        actions.push(Action::Show(Shown::Message {
            room: self.name.clone(),
            seq: ev.seq,
            from: sender,
            same_nick: self.same_nick(&sender, &nick),
            nick,
            text,
            action,
            sent_at_ms: m.sent_at_ms,
            received_at_ms: ev.received_at_ms,
        }));
    }

    /// Shows the kept messages whose keys a shared-history admission just
    /// gave us, in their original order.
    pub(crate) fn replay_backlog(&mut self, actions: &mut Vec<Action>) {
        let backlog = std::mem::take(&mut self.backlog.events);
        self.backlog.bytes = 0;
        let mut shown = 0;
        for ev in backlog {
            let Ok((event, Payload::Message(m))) = Unverified::decode(&ev, &self.name) else {
                continue;
            };
            let before = actions.len();
            self.apply_message(&event, m, actions);
            shown += actions[before..]
                .iter()
                .filter(|a| matches!(a, Action::Show(Shown::Message { .. })))
                .count();
        }
        if shown > 0 {
            self.backlog.unreadable = self.backlog.unreadable.saturating_sub(shown as u64);
            actions.push(self.notice(Notice::HistoryShared {
                shown: shown as u64,
            }));
        }
    }

    /// The name to go by from now on, as given at start (`--nick`) to a
    /// room restored from saved state: unlike [`Room::set_nick`] it waits
    /// to be sent, sealed, until the room has caught up (usability B6).
    pub fn prefer_nick(&mut self, nick: String) -> Vec<Action> {
        if nick == self.nick {
            return Vec::new();
        }
        self.nick.clone_from(&nick);
        if self.is_member() {
            self.outbox.announce_name = true;
        } else {
            self.people
                .nicks
                .insert(self.me.fingerprint(), nick.clone());
        }
        vec![self.notice(Notice::NickSet { nick })]
    }

    /// Seals and signs a line of text (or queues it until we are admitted).
    pub fn send_text(&mut self, text: String, now_ms: u64) -> Vec<Action> {
        self.send_content(Content::Text(text), now_ms)
    }

    /// Seals and signs an action (`/me`), as [`Room::send_text`] does a line.
    pub fn send_action(&mut self, text: String, now_ms: u64) -> Vec<Action> {
        self.send_content(Content::Action(text), now_ms)
    }

    /// Seals and signs the offer of a file whose chunks are on the relay,
    /// as [`Room::send_text`] does a line: the members learn its key and
    /// hash from this message alone.
    pub fn send_file(&mut self, offer: hush_proto::e2e::FileOffer, now_ms: u64) -> Vec<Action> {
        self.send_content(Content::File(offer), now_ms)
    }

    fn send_content(&mut self, content: Content, now_ms: u64) -> Vec<Action> {
        let mut actions = Vec::new();
        if self.chain.rewound {
            return vec![self.notice(Notice::NotSentRewound)];
        }
        if !self.outbox.barrier.is_empty() && self.is_member() {
            if self.outbox.queued.len() >= MAX_QUEUED_TEXTS {
                actions.push(Action::Show(Shown::QueueFull {
                    room: self.name.clone(),
                }));
            } else {
                self.outbox.queued.push((content, now_ms));
                let members = self.outbox.barrier.iter().map(|fp| self.peer(fp)).collect();
                actions.push(self.notice(Notice::WaitingForRemoval { members }));
            }
            return actions;
        }
        if !self.is_member() || !self.caught_up {
            if self.outbox.queued.len() >= MAX_QUEUED_TEXTS {
                actions.push(Action::Show(Shown::QueueFull {
                    room: self.name.clone(),
                }));
            } else {
                self.outbox.queued.push((content, now_ms));
                // Before catching up we do not know whether we are a
                // member, or whether the room exists at all (usability
                // B14): say what we wait for.
                actions.push(self.notice(if self.caught_up {
                    Notice::NotAdmittedYet
                } else {
                    Notice::CatchingUp
                }));
            }
            return actions;
        }
        if let Some(a) = self.seal(content, now_ms) {
            actions.push(a);
        }
        actions
    }

    /// Announces a new display name to the room.
    pub fn set_nick(&mut self, nick: String, now_ms: u64) -> Vec<Action> {
        if self.chain.rewound {
            return vec![self.notice(Notice::NotSentRewound)];
        }
        if nick == self.nick {
            return vec![self.notice(Notice::NickUnchanged { nick })];
        }
        self.nick.clone_from(&nick);
        if !self.is_member() {
            self.people
                .nicks
                .insert(self.me.fingerprint(), nick.clone());
            return vec![self.notice(Notice::NickSet { nick })];
        }
        // As a member, the name others know us by changes when the room
        // sequences the change: its echo shows the old name and the new
        // (usability B7), as everyone else sees it.
        if !self.outbox.barrier.is_empty() {
            // The departing member still holds the current key: the name
            // goes out sealed once the barrier lifts, like queued lines.
            self.outbox.announce_name = true;
            let members = self.outbox.barrier.iter().map(|fp| self.peer(fp)).collect();
            return vec![
                self.notice(Notice::NickSet { nick }),
                self.notice(Notice::WaitingForRemoval { members }),
            ];
        }
        self.seal(Content::Nick(nick), now_ms).into_iter().collect()
    }

    /// Sends what was typed while we could not: before admission, or
    /// while the send barrier held (which still holding, nothing goes).
    pub(crate) fn flush_queue(&mut self, actions: &mut Vec<Action>) {
        if !self.outbox.barrier.is_empty() {
            return;
        }
        for (content, typed_at_ms) in std::mem::take(&mut self.outbox.queued) {
            if let Some(a) = self.seal(content, typed_at_ms) {
                actions.push(a);
            }
        }
    }

    pub(crate) fn seal(&mut self, content: Content, now_ms: u64) -> Option<Action> {
        let epoch = self.epochs.current;
        let epoch_key = self.epochs.known.get(&epoch)?.key.as_ref()?;
        let me = self.me.fingerprint();
        let key = SealingKey::new(&derive_secret(
            epoch_key,
            &e2e::message_key_salt(&me, &self.session, epoch),
            MESSAGE_KEY_INFO,
        ));
        let nonce = self
            .outbox
            .counters
            .entry(epoch)
            .or_default()
            .next_nonce()
            .ok()?;
        let mut m = SealedMessage {
            session: self.session,
            counter: nonce.counter(),
            sent_at_ms: now_ms,
            // A chain that skipped pruned events matches nobody else's:
            // claim nothing rather than raise false alarms.
            seen_seq: if self.chain.anchored {
                self.chain.last_seq
            } else {
                0
            },
            seen_head: if self.chain.anchored {
                self.chain.head
            } else {
                [0; 32]
            },
            ciphertext: Vec::new(),
        };
        let aad = e2e::message_aad(&self.name, &me, epoch, &m);
        m.ciphertext = key.seal(nonce, &aad, &encode(&content)).ok()?;
        self.publish(EventKind::Message, epoch, &Payload::Message(m))
    }
}
