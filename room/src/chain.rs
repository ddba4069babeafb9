//! The hash chain against the relay: its signed checkpoints, and the
//! chain heads members sign, compared with our own.

use hush_crypto::PublicIdentity;
use hush_proto::SequencedEvent;
use hush_proto::e2e::{self, SealedMessage};

use crate::action::Action;
use crate::limits::MAX_COUNTER_SLOTS;
use crate::room::Room;
use crate::warning::{Fork, RelayFork, Reordered, Warning};

impl Room {
    /// A checkpoint the relay signed: its statement of the room's chain head
    /// at a seq. Checked against our own chain when we reach that seq; a
    /// mismatch is signed evidence that the relay shows members different
    /// histories.
    pub(crate) fn on_checkpoint(
        &mut self,
        cp: hush_proto::msg::Checkpoint,
        relay: &PublicIdentity,
    ) -> Vec<Action> {
        let mut actions = Vec::new();
        if cp.room != self.name {
            return actions;
        }
        let digest = e2e::checkpoint_digest(&cp.room, cp.seq, &cp.head, cp.relay_time_ms);
        if relay
            .verify(e2e::CHECKPOINT_CONTEXT, &digest, &cp.signature)
            .is_err()
        {
            actions.push(self.warn(Some(cp.seq), None, Warning::BadCheckpoint));
            return actions;
        }
        if !self.chain.anchored {
            return actions;
        }
        if cp.seq > self.chain.last_seq {
            if self.chain.pending_checkpoints.len() < 16 {
                self.chain.pending_checkpoints.push(cp);
            }
            return actions;
        }
        self.compare_checkpoint(&cp, &mut actions);
        actions
    }

    pub(crate) fn compare_checkpoint(
        &self,
        cp: &hush_proto::msg::Checkpoint,
        actions: &mut Vec<Action>,
    ) {
        if let Some(ours) = self.chain.heads.get(&cp.seq)
            && *ours != cp.head
        {
            actions.push(self.warn(
                Some(cp.seq),
                None,
                Warning::RelayFork(RelayFork {
                    seq: cp.seq,
                    relay_time_ms: cp.relay_time_ms,
                    head: cp.head,
                    signature: cp.signature.clone(),
                    ours: *ours,
                }),
            ));
        }
    }

    /// What an authenticated message says about the relay's honesty
    /// (docs/PROTOCOL.md §9.2): the sender signed the sequence number and chain head
    /// it had seen, and its counter. Each problem is a warning; the message
    /// itself is genuine and is still shown.
    pub(crate) fn check_transcript(
        &mut self,
        ev: &SequencedEvent,
        m: &SealedMessage,
        actions: &mut Vec<Action>,
    ) {
        let sender = ev.event.sender;
        if m.seen_seq >= ev.seq {
            actions.push(self.warn(
                Some(ev.seq),
                Some(sender),
                Warning::Reordered(Reordered::BeforeSeen {
                    seen_seq: m.seen_seq,
                }),
            ));
        } else if self.chain.anchored
            && let Some(head) = self.chain.heads.get(&m.seen_seq)
            && *head != m.seen_head
        {
            actions.push(self.warn(
                Some(ev.seq),
                Some(sender),
                Warning::Fork(Fork::Message {
                    seen_seq: m.seen_seq,
                }),
            ));
        }
        let slot = (sender, m.session, ev.event.epoch);
        let expected = match self.replay.next_counter.get(&slot) {
            Some(n) => *n,
            // The first message of a sender's session in an epoch is
            // counter 0, unless retention took the start of the log.
            None if self.chain.anchored => 0,
            None => m.counter,
        };
        if m.counter > expected {
            let missing = m.counter - expected;
            actions.push(self.warn(Some(ev.seq), Some(sender), Warning::Dropped { missing }));
        } else if m.counter < expected {
            actions.push(self.warn(
                Some(ev.seq),
                Some(sender),
                Warning::Reordered(Reordered::AfterLater),
            ));
        }
        if self.replay.next_counter.len() >= MAX_COUNTER_SLOTS {
            let keep_from = self.epochs.current.saturating_sub(1);
            self.replay
                .next_counter
                .retain(|(_, _, epoch), _| *epoch >= keep_from);
        }
        self.replay
            .next_counter
            .insert(slot, expected.max(m.counter.saturating_add(1)));
    }
}
