//! The rooms one client has open on its one link to a relay, and what a
//! typed line does to them.
//!
//! ```text
//!   relay msg ──room_of──▶ that room's Room (hush-room) ─▶ Actions
//!   typed line ─────────▶ the current room, or a command on the set:
//!                          /join (open or switch), /part (close the window),
//!                          /leave (leave the room for good)
//!   each room: its sealed state file; the set: the list of open rooms,
//!   which the next start reopens
//! ```
//!
//! A room being closed (`/part`, `/leave`) stays in the set until it has
//! sent what was typed in it: then the relay is told to stop delivering
//! it (`ClientMsg::Leave`), and the window closes when the relay answers
//! `Left`. After a `/leave` the room's own Leave event goes first, so the
//! members remove us; after a `/part` we stay a member.

use std::time::Instant;

use hush_crypto::Fingerprint;
use hush_proto::{ClientMsg, RelayMsg, RoomName};
use hush_room::{Action, Room, Shown, Warning};

use crate::state::{OpenRooms, StateError, StateStore};

/// Why a room is being closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Closing {
    /// `/part`: the window closes, the membership stays.
    Part,
    /// `/leave`: we leave the room for good.
    Leave,
}

/// One open room.
pub(crate) struct OpenRoom {
    pub(crate) room: Room,
    pub(crate) store: Option<StateStore>,
    pub(crate) closing: Option<Closing>,
    /// The relay was told to stop delivering this room.
    pub(crate) unfollowed: bool,
    /// A two-person room (`/dm`) opened this run, and with whom: once we
    /// have created it, the other is invited; if someone else created
    /// it, we say so.
    pub(crate) dm: Option<Dm>,
}

/// A `/dm` room's bookkeeping.
pub(crate) struct Dm {
    pub(crate) peer: Fingerprint,
    /// Invited, or found to be in someone else's hands: nothing more to do.
    pub(crate) done: bool,
}

/// The name of the two-person room of `a` and `b`: the same for both,
/// whoever computes it (`dm-` and 40 hex digits of a hash of both
/// fingerprints, in order).
pub(crate) fn dm_room_name(a: &Fingerprint, b: &Fingerprint) -> RoomName {
    let (lo, hi) = if a.as_bytes() <= b.as_bytes() {
        (a, b)
    } else {
        (b, a)
    };
    let mut t = hush_crypto::Transcript::new("hush/v2/dm-room");
    t.absorb(lo.as_bytes());
    t.absorb(hi.as_bytes());
    let hex: String = t.finish()[..20]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    match RoomName::new(&format!("dm-{hex}")) {
        Ok(name) => name,
        Err(_) => unreachable!("dm- and hex digits form a room name"),
    }
}

impl OpenRoom {
    pub(crate) fn new(room: Room, store: Option<StateStore>) -> Self {
        Self {
            room,
            store,
            closing: None,
            unfollowed: false,
            dm: None,
        }
    }

    /// A `/dm` room, once caught up: invites the peer if we created it;
    /// says so if a third party did (it then holds the invites, and the
    /// room is not private to the two of us).
    fn dm_step(&mut self, me: &Fingerprint) -> Vec<Action> {
        let Some(dm) = &mut self.dm else {
            return Vec::new();
        };
        if dm.done || !self.room.is_caught_up() || !self.room.is_member() {
            return Vec::new();
        }
        let Some(creator) = self.room.settings().map(|s| s.creator) else {
            return Vec::new();
        };
        dm.done = true;
        let name = self.room.name().clone();
        if creator != *me && creator != dm.peer {
            return vec![Action::Show(Shown::Error {
                text: format!(
                    "#{name} was created by {creator}, neither you nor {}: it is not private to the two of you; do not use it",
                    dm.peer
                ),
            })];
        }
        let in_room = self.room.members().iter().any(|(fp, _, _)| *fp == dm.peer);
        if creator != *me || in_room {
            return Vec::new();
        }
        self.room.invite(&dm.peer.to_string()).unwrap_or_default()
    }

    /// Saves the room's state if it changed. A failure is returned as
    /// the warning to show; the room goes on.
    pub(crate) fn save(&mut self) -> Option<Shown> {
        let store = self.store.as_ref()?;
        if !self.room.take_dirty() {
            return None;
        }
        store
            .save(&self.room.snapshot())
            .err()
            .map(|e| Shown::Warning {
                room: Some(self.room.name().clone()),
                seq: None,
                from: None,
                warning: Warning::StateNotSaved {
                    error: e.to_string(),
                },
            })
    }

    /// Once a closing room has sent what was typed in it: tell the relay
    /// to stop delivering it.
    fn unfollow_when_settled(&mut self) -> Option<Action> {
        if self.closing.is_none() || self.unfollowed || !self.room.is_settled() {
            return None;
        }
        self.unfollowed = true;
        Some(Action::Send(ClientMsg::Leave {
            room: self.room.name().clone(),
        }))
    }
}

/// The open rooms, the one typed lines go to, and the saved list.
pub(crate) struct Rooms {
    open: Vec<OpenRoom>,
    current: usize,
    list: Option<OpenRooms>,
}

impl Rooms {
    pub(crate) fn new(list: Option<OpenRooms>) -> Self {
        Self {
            open: Vec::new(),
            current: 0,
            list,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.open.is_empty()
    }

    pub(crate) fn len(&self) -> usize {
        self.open.len()
    }

    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = &mut OpenRoom> {
        self.open.iter_mut()
    }

    /// The open rooms, to look at.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &OpenRoom> {
        self.open.iter()
    }

    /// The rooms not being closed, in order: what the TUI's room list shows.
    pub(crate) fn listed(&self) -> Vec<RoomName> {
        self.open
            .iter()
            .filter(|r| r.closing.is_none())
            .map(|r| r.room.name().clone())
            .collect()
    }

    /// The room typed lines go to, to look at.
    pub(crate) fn current_ref(&self) -> Option<&OpenRoom> {
        self.open.get(self.current)
    }

    /// The room typed lines go to.
    pub(crate) fn current(&mut self) -> Option<&mut OpenRoom> {
        self.open.get_mut(self.current)
    }

    pub(crate) fn get(&mut self, name: &RoomName) -> Option<&mut OpenRoom> {
        self.open.iter_mut().find(|r| r.room.name() == name)
    }

    pub(crate) fn get_ref(&self, name: &RoomName) -> Option<&OpenRoom> {
        self.open.iter().find(|r| r.room.name() == name)
    }

    fn index_of(&self, name: &RoomName) -> Option<usize> {
        self.open.iter().position(|r| r.room.name() == name)
    }

    /// Makes `name` the current room, if it is open and not closing.
    pub(crate) fn switch_to(&mut self, name: &RoomName) -> bool {
        match self.index_of(name) {
            Some(i) if self.open[i].closing.is_none() => {
                self.current = i;
                true
            }
            _ => false,
        }
    }

    /// Adds a room and makes it current.
    pub(crate) fn insert(&mut self, room: OpenRoom) {
        self.open.push(room);
        self.current = self.open.len() - 1;
    }

    /// Marks the current room as closing and makes the next open one
    /// current; returns the name of the new current room, if any is left.
    pub(crate) fn close_current(&mut self, why: Closing) -> Option<RoomName> {
        let r = self.open.get_mut(self.current)?;
        r.closing = Some(why);
        let next = (0..self.open.len())
            .map(|k| (self.current + k) % self.open.len())
            .find(|&i| self.open[i].closing.is_none())?;
        self.current = next;
        Some(self.open[next].room.name().clone())
    }

    /// The relay stopped delivering `name`: drops the room (its state
    /// saved first). Returns a warning if saving failed.
    pub(crate) fn remove(&mut self, name: &RoomName) -> Option<Shown> {
        let i = self.index_of(name)?;
        let mut gone = self.open.remove(i);
        let shown = gone.save();
        if self.current > i || self.current >= self.open.len() {
            self.current = self.current.saturating_sub(1);
        }
        shown
    }

    /// Rooms closed while the link was down are gone once it is back: the
    /// relay forgot what the connection followed.
    pub(crate) fn drop_closing(&mut self) -> Vec<Shown> {
        let closing: Vec<RoomName> = self
            .open
            .iter()
            .filter(|r| r.closing.is_some() && (r.unfollowed || r.room.is_settled()))
            .map(|r| r.room.name().clone())
            .collect();
        closing.iter().filter_map(|n| self.remove(n)).collect()
    }

    /// Lines and events not yet sequenced, over every room.
    pub(crate) fn unsent(&self) -> usize {
        self.open.iter().map(|r| r.room.unsent()).sum()
    }

    /// Every room has sent what was typed in it.
    pub(crate) fn all_settled(&self) -> bool {
        self.open.iter().all(|r| r.room.is_settled())
    }

    /// Ticks every room: saves state, runs timers, and tells the relay to
    /// stop delivering the rooms that finished closing.
    pub(crate) fn tick(&mut self, now: Instant, me: &Fingerprint) -> Vec<Action> {
        let mut actions = Vec::new();
        for r in &mut self.open {
            if let Some(w) = r.save() {
                actions.push(Action::Show(w));
            }
            actions.extend(r.room.tick(now));
            actions.extend(r.dm_step(me));
            actions.extend(r.unfollow_when_settled());
        }
        actions
    }

    /// The rooms to reopen next time: the open ones that are not closing.
    /// A failure to write the list is returned as the error to show.
    pub(crate) fn save_list(&self) -> Result<(), StateError> {
        let Some(list) = &self.list else {
            return Ok(());
        };
        let names: Vec<RoomName> = self
            .open
            .iter()
            .filter(|r| r.closing.is_none())
            .map(|r| r.room.name().clone())
            .collect();
        list.save(&names)
    }

    /// The saved list of rooms to reopen.
    pub(crate) fn saved(&self) -> Vec<RoomName> {
        self.list.as_ref().map(OpenRooms::load).unwrap_or_default()
    }
}

/// The room a relay message is about, if it is about one.
pub(crate) fn room_of(msg: &RelayMsg) -> Option<&RoomName> {
    match msg {
        RelayMsg::Event(e) => Some(&e.event.room),
        RelayMsg::Joined { room, .. }
        | RelayMsg::Left { room }
        | RelayMsg::BackfillDone { room, .. }
        | RelayMsg::Presence { room, .. }
        | RelayMsg::Rejected { room, .. }
        | RelayMsg::FileStatus { room, .. }
        | RelayMsg::FileStored { room, .. }
        | RelayMsg::FileChunk { room, .. }
        | RelayMsg::FileRefused { room, .. } => Some(room),
        RelayMsg::Checkpoint(c) => Some(&c.room),
        RelayMsg::Welcome(_)
        | RelayMsg::Ping { .. }
        | RelayMsg::Pong { .. }
        | RelayMsg::Closing { .. }
        | RelayMsg::CodeOpened { .. }
        | RelayMsg::CodeData { .. }
        | RelayMsg::CodeClosed { .. } => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_sides_name_the_same_dm_room_and_others_another() {
        let (a, b, c) = (
            Fingerprint::from_bytes([1; 32]),
            Fingerprint::from_bytes([2; 32]),
            Fingerprint::from_bytes([3; 32]),
        );
        assert_eq!(dm_room_name(&a, &b), dm_room_name(&b, &a));
        assert_ne!(dm_room_name(&a, &b), dm_room_name(&a, &c));
        let name = dm_room_name(&a, &b);
        assert!(name.as_str().starts_with("dm-") && name.as_str().len() == 43);
    }
}
