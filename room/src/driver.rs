//! The driver: the whole room protocol over the link, from joining to
//! leaving, so that the client only moves bytes, lines and ticks. Every
//! link message of the room protocol comes out as an
//! [`Action::Send`], every relay message of a room goes in through
//! [`Room::on_relay`]:
//!
//! ```text
//!   link up (Welcome) ─▶ on_connected(frame) ─▶ Send(Join)
//!   Joined{online}    ─▶ who is online      ─▶ Send(Backfill{after_seq: last_seq})
//!   Event…            ─▶ reorder by seq, apply (backfill pages and live events, interleaved)
//!   BackfillDone{up_to, complete: false}
//!                     ─▶ skip pruned gaps   ─▶ Send(Backfill{after_seq: up_to})
//!   BackfillDone{up_to, complete: true}
//!                     ─▶ skip pruned gaps   ─▶ Send(Checkpoint)
//!                     ─▶ caught up: create the room, ask to join, or Show(Joined);
//!                        resend what was never confirmed, publish what was typed
//!   live              ─▶ Event, Presence, Rejected, Checkpoint
//!   quit              ─▶ on_quit()          ─▶ Send(Leave) if the user left
//! ```
//!
//! A reconnect runs the same flow again from [`Room::on_connected`]: the
//! backfill resumes after the last seq processed, so nothing is missed and
//! nothing shown twice.
//!
//! Link-level messages (`Welcome`, `Ping`, `Pong`, `Closing`, `Left`)
//! belong to the connection, not to a room: the caller handles them, and
//! [`Room::on_relay`] returns nothing for them.
//!
//! A message whose `room` names another room (`Joined`, `BackfillDone`,
//! `Presence`, `Rejected`, `Checkpoint`) is ignored: it answers a
//! subscription this room does not hold, and a client in several rooms
//! routes by that field. An `Event` has no such field apart from the
//! room its signed envelope names: it takes its seq in this room's stream
//! like any other, and one naming another room is reported as malformed
//! (`dispatch.rs`), not silently skipped, so it cannot leave a hole.

use std::time::Instant;

use hush_crypto::PublicIdentity;
use hush_proto::{ClientMsg, RelayMsg};

use crate::action::Action;
use crate::room::Room;

impl Room {
    /// The link to the relay is up (again). `max_frame` is the largest
    /// frame both ends accept: the smaller of the relay's
    /// (`Welcome::max_frame`) and the caller's own. Sizes our commits for
    /// it and asks to join the room.
    pub fn on_connected(&mut self, max_frame: usize) -> Vec<Action> {
        self.set_frame_limit(max_frame);
        vec![Action::Send(ClientMsg::Join {
            room: self.name.clone(),
        })]
    }

    /// One message from the relay, at `now`; `relay` is the relay's key
    /// (it signs checkpoints). Handles every room-scoped message, and
    /// returns what to show, publish and send next.
    pub fn on_relay(&mut self, msg: RelayMsg, relay: &PublicIdentity, now: Instant) -> Vec<Action> {
        match msg {
            RelayMsg::Event(event) => self.on_event(event, now),
            RelayMsg::Joined {
                room,
                online,
                head_seq,
                ..
            } if room == self.name => {
                self.on_joined(&online);
                if head_seq < self.chain.last_seq || self.chain.rewound {
                    return self.rolled_back(head_seq);
                }
                vec![Action::Send(ClientMsg::Backfill {
                    room,
                    after_seq: self.chain.last_seq,
                })]
            }
            RelayMsg::BackfillDone { room, .. } if room == self.name && self.chain.rewound => {
                Vec::new()
            }
            RelayMsg::BackfillDone {
                room,
                up_to,
                complete,
            } if room == self.name => {
                // Complete: ask the relay to sign the head we caught up
                // to. Either request goes ahead of whatever we publish in
                // answer.
                let next = if complete {
                    ClientMsg::Checkpoint { room }
                } else {
                    ClientMsg::Backfill {
                        room,
                        after_seq: up_to,
                    }
                };
                let mut actions = vec![Action::Send(next)];
                actions.extend(self.on_backfill_done(up_to, now));
                if complete {
                    actions.extend(self.caught_up(now));
                }
                actions
            }
            RelayMsg::Presence {
                room,
                member,
                online,
            } if room == self.name => {
                self.on_presence(member, online);
                Vec::new()
            }
            RelayMsg::Rejected {
                room,
                request,
                reason,
            } if room == self.name => self.on_rejected(request, reason, now),
            // Checks the room itself (and the relay's signature).
            RelayMsg::Checkpoint(cp) => self.on_checkpoint(cp, relay),
            // Another room's (see the module doc).
            RelayMsg::Joined { .. }
            | RelayMsg::BackfillDone { .. }
            | RelayMsg::Presence { .. }
            | RelayMsg::Rejected { .. } => Vec::new(),
            // The connection's, handled by the caller.
            RelayMsg::Welcome(_)
            | RelayMsg::Ping { .. }
            | RelayMsg::Pong { .. }
            | RelayMsg::Closing { .. }
            | RelayMsg::Left { .. } => Vec::new(),
            // File transfers: the client's, not the room protocol's (the
            // offer itself is a room message).
            RelayMsg::FileStatus { .. }
            | RelayMsg::FileStored { .. }
            | RelayMsg::FileChunk { .. }
            | RelayMsg::FileRefused { .. } => Vec::new(),
            // Invitation codes: the client's (client/src/code.rs).
            RelayMsg::CodeOpened { .. }
            | RelayMsg::CodeData { .. }
            | RelayMsg::CodeClosed { .. } => Vec::new(),
        }
    }

    /// The client is quitting: the last messages to send before it closes
    /// the link (a `Leave` if the user left the room, so the relay stops
    /// sending its events; nothing on a plain quit).
    #[must_use]
    pub fn on_quit(&self) -> Vec<Action> {
        if self.leaving {
            vec![Action::Send(ClientMsg::Leave {
                room: self.name.clone(),
            })]
        } else {
            Vec::new()
        }
    }
}
