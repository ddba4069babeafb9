//! Ordering: events are applied strictly by the relay's seq; early ones
//! wait in a bounded reorder buffer, and retention gaps are skipped.

use std::sync::Arc;
use std::time::Instant;

use hush_proto::SequencedEvent;

use crate::action::{Action, Notice, Shown};
use crate::limits::*;
use crate::room::Room;
use crate::warning::Warning;

impl Room {
    /// A sequenced event: processed in order once every earlier one has
    /// been (live events may overtake a backfill answer).
    pub(crate) fn on_event(&mut self, event: SequencedEvent, now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();
        if self.chain.rewound {
            return actions;
        }
        if event.seq <= self.chain.last_seq {
            // Already processed (a backfill overlap), unless the relay
            // serves another event at that seq: its log was rewound.
            let differs = event.seq.checked_sub(1).and_then(|prev| {
                let before = self.chain.heads.get(&prev)?;
                let after = self.chain.heads.get(&event.seq)?;
                Some(hush_proto::e2e::chain_next(before, &event) != *after)
            });
            if differs == Some(true) {
                return self.rolled_back(event.seq);
            }
            return actions;
        }
        let full = self.chain.reorder.len() >= MAX_REORDER
            || self.chain.reorder_bytes + event.event.body.len() > MAX_REORDER_BYTES;
        if full && event.seq != self.chain.last_seq + 1 {
            actions.push(self.warn(None, None, Warning::ReorderOverflow));
            return actions;
        }
        self.chain.reorder_bytes += event.event.body.len();
        if let Some(old) = self.chain.reorder.insert(event.seq, event) {
            self.chain.reorder_bytes -= old.event.body.len();
        }
        self.drain_reorder(now, &mut actions);
        actions
    }

    pub(crate) fn drain_reorder(&mut self, now: Instant, actions: &mut Vec<Action>) {
        while let Some(entry) = self.chain.reorder.first_entry() {
            if *entry.key() != self.chain.last_seq + 1 {
                break;
            }
            let ev = entry.remove();
            self.chain.reorder_bytes -= ev.event.body.len();
            self.apply(ev, now, actions);
        }
    }

    /// The end of a backfill answer. Every logged event up to `up_to` has
    /// been sent before it, so a gap below `up_to` is one the relay's
    /// retention removed: skip each such gap and go on with what follows.
    pub(crate) fn on_backfill_done(&mut self, up_to: u64, now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();
        // Whether we had followed the room before this gap (caught up
        // once, or resumed from a saved state), as opposed to a newcomer
        // whose view starts after the relay's retention: membership events
        // are never pruned, so a newcomer's first page reads some before
        // its first gap.
        let was_following = self.chain.anchored && (self.caught_up || self.chain.resumed_from > 0);
        let mut skipped = 0;
        loop {
            self.drain_reorder(now, &mut actions);
            match self.chain.reorder.keys().next().copied() {
                // drain stopped, so n > last_seq + 1: a pruned gap before n.
                Some(n) if n <= up_to => {
                    skipped += n - 1 - self.chain.last_seq;
                    self.skip_to(n - 1);
                }
                _ => break,
            }
        }
        if up_to > self.chain.last_seq {
            skipped += up_to - self.chain.last_seq;
            self.skip_to(up_to);
            self.drain_reorder(now, &mut actions);
        }
        if skipped > 0 {
            if was_following {
                // The relay now skips events we never saw: pruned by
                // retention while we were away, or withheld.
                actions.push(self.warn(None, None, Warning::Gap { skipped }));
            } else {
                actions.push(self.notice(Notice::Pruned { skipped }));
            }
        }
        actions
    }

    /// The relay's log no longer matches what we processed (it ends at, or
    /// differs from, `relay`): stop the room and say what to do, once.
    pub(crate) fn rolled_back(&mut self, relay: u64) -> Vec<Action> {
        if self.chain.rewound {
            return Vec::new();
        }
        self.chain.rewound = true;
        let ours = self.chain.last_seq;
        vec![self.warn(None, None, Warning::Rollback { ours, relay })]
    }

    /// Skips to `seq`: our hash chain no longer matches the members' who
    /// saw what we skip, so chain checks stop for this room.
    pub(crate) fn skip_to(&mut self, seq: u64) {
        self.chain.last_seq = seq;
        self.chain.anchored = false;
        self.chain.heads.clear();
    }

    /// The initial backfill is complete: create the room, ask to be
    /// admitted, or announce that we are in.
    pub(crate) fn caught_up(&mut self, now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();
        let first = !self.caught_up;
        self.caught_up = true;
        if self.backlog.unreadable > 0 && first {
            let n = self.backlog.unreadable;
            actions.push(self.notice(Notice::Unreadable { count: n }));
        }
        self.resend_unconfirmed(&mut actions);
        if self.leaving {
            return actions;
        }
        if self.is_member() {
            actions.push(Action::Show(Shown::Joined {
                room: self.name.clone(),
                me: self.me.fingerprint(),
                nick: self.nick.clone(),
                epoch: self.epochs.current,
            }));
            self.announce_name(&mut actions);
            self.flush_queue(&mut actions);
        } else if self.epochs.current == 0 && self.epochs.known.is_empty() {
            // An empty room: open epoch 1 with ourselves in it.
            actions.push(self.notice(Notice::Creating));
            let me = (Arc::new(self.me.public().clone()), self.nick.clone());
            if let Some(a) = self.commit(vec![me]) {
                actions.push(a);
            }
        } else {
            self.request_join(&mut actions);
        }
        self.maybe_commit(now, &mut actions);
        actions
    }
}
