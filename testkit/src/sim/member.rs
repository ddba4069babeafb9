//! A simulated member: a real [`Room`] fed relay messages the way the
//! client feeds it, and what it showed and asked to send.

use std::sync::Arc;
use std::time::Instant;

use hush_crypto::{Fingerprint, Identity};
use hush_proto::{ClientMsg, RelayMsg, RoomEvent, SequencedEvent};
use hush_room::{Action, Notice, Room, Shown};

use super::{now_ms, room_name};
use crate::{entropy, keys};

/// One member: a real [`Room`], what it showed, what it has still to send.
pub struct Member {
    /// Who this member is.
    pub id: Arc<Identity>,
    /// Its room state machine.
    pub room: Room,
    /// Everything the user was shown, in order.
    pub shown: Vec<Shown>,
    /// Publish actions not yet sent to the relay.
    pub outbox: Vec<(u64, RoomEvent)>,
    /// Every link message the room asked to send (`Join`, `Backfill`,
    /// `Checkpoint`, `Leave`), in order.
    pub link: Vec<ClientMsg>,
    /// How many of `link` the simulated relay has answered (see
    /// [`connect`](super::connect)).
    pub answered: usize,
    /// Whether the relay delivers events to this member.
    pub connected: bool,
    /// Last seq of the relay's log handed to the room.
    pub delivered: u64,
}

impl Member {
    /// A member of [`room_name`] who has not connected yet, drawing its
    /// secrets from the OS generator.
    pub fn new(id: Arc<Identity>, nick: &str) -> Self {
        Self {
            room: Room::new(room_name(), id.clone(), nick.into(), entropy::os()),
            id,
            shown: Vec::new(),
            outbox: Vec::new(),
            link: Vec::new(),
            answered: 0,
            connected: false,
            delivered: 0,
        }
    }

    /// This member's fingerprint.
    pub fn fp(&self) -> Fingerprint {
        self.id.fingerprint()
    }

    /// Records what the room asked for: shows, publishes and link
    /// messages to send.
    pub fn handle(&mut self, actions: Vec<Action>) {
        for a in actions {
            match a {
                Action::Show(ev) => self.shown.push(ev),
                Action::Publish { request, event } => self.outbox.push((request, event)),
                Action::Send(msg) => self.link.push(msg),
            }
        }
    }

    /// Hands one relay message to the room, now, as the client does
    /// (`Room::on_relay`, checkpoints checked against
    /// [`keys::relay`]).
    pub fn receive(&mut self, msg: RelayMsg) {
        let relay = keys::relay();
        let actions = self.room.on_relay(msg, relay.public(), Instant::now());
        self.handle(actions);
    }

    /// Hands one sequenced event to the room, now.
    pub fn deliver(&mut self, ev: SequencedEvent) {
        self.receive(RelayMsg::Event(ev));
    }

    /// The user types a message, now.
    pub fn send_text(&mut self, text: &str) {
        self.send_text_at(text, now_ms());
    }

    /// The user types a message, stamped as sent at `sent_at_ms`.
    pub fn send_text_at(&mut self, text: &str, sent_at_ms: u64) {
        let actions = self.room.send_text(text.into(), sent_at_ms);
        self.handle(actions);
    }

    /// The user changes nickname.
    pub fn set_nick(&mut self, nick: &str) {
        let actions = self.room.set_nick(nick.into(), now_ms());
        self.handle(actions);
    }

    /// The room's timer fires at `at`.
    pub fn tick(&mut self, at: Instant) {
        let actions = self.room.tick(at);
        self.handle(actions);
    }

    /// `(from, text, seq)` of every message shown.
    pub fn messages(&self) -> Vec<(Fingerprint, String, u64)> {
        self.shown
            .iter()
            .filter_map(|e| match e {
                Shown::Message {
                    from, text, seq, ..
                } => Some((*from, text.clone(), *seq)),
                _ => None,
            })
            .collect()
    }

    /// The text of every message shown.
    pub fn texts(&self) -> Vec<String> {
        self.messages().into_iter().map(|(_, t, _)| t).collect()
    }

    /// How many times `text` was shown as a message.
    pub fn count_text(&self, text: &str) -> usize {
        self.texts().iter().filter(|t| *t == text).count()
    }

    /// `(kind, from)` of every warning shown.
    pub fn warnings(&self) -> Vec<(String, Option<Fingerprint>)> {
        self.shown
            .iter()
            .filter_map(|e| match e {
                Shown::Warning { warning, from, .. } => Some((
                    warning.kind().to_owned(),
                    from.as_ref().map(|p| p.fingerprint),
                )),
                _ => None,
            })
            .collect()
    }

    /// The kind of every warning shown.
    pub fn warning_kinds(&self) -> Vec<String> {
        self.warnings().into_iter().map(|(k, _)| k).collect()
    }

    /// Every notice shown.
    pub fn notices(&self) -> Vec<Notice> {
        self.shown
            .iter()
            .filter_map(|e| match e {
                Shown::Notice { notice, .. } => Some(notice.clone()),
                _ => None,
            })
            .collect()
    }

    /// The text of every error shown.
    pub fn errors(&self) -> Vec<String> {
        self.shown
            .iter()
            .filter_map(|e| match e {
                Shown::Error { text } => Some(text.clone()),
                Shown::Refused { .. } | Shown::QueueFull { .. } => Some(format!("{e:?}")),
                _ => None,
            })
            .collect()
    }

    /// How many times `who` was shown joining.
    pub fn joined_shown(&self, who: Fingerprint) -> usize {
        self.shown
            .iter()
            .filter(|e| matches!(e, Shown::MemberJoined { member, .. } if *member == who))
            .count()
    }

    /// How many times `who` was shown leaving.
    pub fn left_shown(&self, who: Fingerprint) -> usize {
        self.shown
            .iter()
            .filter(|e| matches!(e, Shown::MemberLeft { member, .. } if *member == who))
            .count()
    }

    /// The first message shown whose text is `text`.
    ///
    /// # Panics
    /// If none was shown.
    pub fn shown_message(&self, text: &str) -> &Shown {
        self.shown
            .iter()
            .find(|e| matches!(e, Shown::Message { text: t, .. } if t == text))
            .unwrap_or_else(|| panic!("{text:?} was not shown: {:?}", self.shown))
    }

    /// The current epoch's roster, as this member sees it.
    pub fn roster(&self) -> Vec<Fingerprint> {
        self.room
            .members()
            .into_iter()
            .map(|(fp, _, _)| fp)
            .collect()
    }

    /// Forgets what was shown so far (to look at one step's output).
    pub fn clear_shown(&mut self) {
        self.shown.clear();
    }
}
