//! The hash chain against the relay: its signed checkpoints, and the
//! chain heads members sign, compared with our own.

use hush_crypto::PublicIdentity;
use hush_proto::SequencedEvent;
use hush_proto::e2e::{self, SealedMessage};

use crate::action::Action;
use crate::room::Room;

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
            actions.push(self.warn(
                Some(cp.seq),
                None,
                "bad_checkpoint",
                format!(
                    "a checkpoint of #{} failed the relay's signature; ignored",
                    self.name
                ),
            ));
            return actions;
        }
        if !self.chain_anchored {
            return actions;
        }
        if cp.seq > self.last_seq {
            if self.pending_checkpoints.len() < 16 {
                self.pending_checkpoints.push(cp);
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
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        if let Some(ours) = self.heads.get(&cp.seq)
            && *ours != cp.head
        {
            actions.push(self.warn(
                Some(cp.seq),
                None,
                "relay_fork",
                format!(
                    "the relay signed a different history of #{} at seq {} than it showed you: it is showing members different histories. Evidence: relay_time_ms={} head={} signature={} (yours: {})",
                    self.name,
                    cp.seq,
                    cp.relay_time_ms,
                    hex(&cp.head),
                    hex(&cp.signature),
                    hex(ours)
                ),
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
        let who = self.who(&sender);
        if m.seen_seq >= ev.seq {
            actions.push(self.warn(
                Some(ev.seq),
                Some(sender),
                "reordered",
                format!(
                    "the relay placed a message from {who} at seq {} although {who} had already seen seq {}: it reordered or removed events of #{}",
                    ev.seq, m.seen_seq, self.name
                ),
            ));
        } else if self.chain_anchored
            && let Some(head) = self.heads.get(&m.seen_seq)
            && *head != m.seen_head
        {
            actions.push(self.warn(
                Some(ev.seq),
                Some(sender),
                "fork",
                format!(
                    "{who} saw a different history of #{} up to seq {} than you did: the relay is showing members different histories",
                    self.name, m.seen_seq
                ),
            ));
        }
        let slot = (sender, m.session, ev.event.epoch);
        let expected = match self.next_counter.get(&slot) {
            Some(n) => *n,
            // The first message of a sender's session in an epoch is
            // counter 0, unless retention took the start of the log.
            None if self.chain_anchored => 0,
            None => m.counter,
        };
        if m.counter > expected {
            let missing = m.counter - expected;
            actions.push(self.warn(
                Some(ev.seq),
                Some(sender),
                "dropped",
                format!(
                    "{missing} message{} from {who} before this one never reached you: the relay withheld {}",
                    if missing == 1 { "" } else { "s" },
                    if missing == 1 { "it" } else { "them" }
                ),
            ));
        } else if m.counter < expected {
            actions.push(self.warn(
                Some(ev.seq),
                Some(sender),
                "reordered",
                format!("a message from {who} arrived after one {who} sent later: the relay reordered #{}", self.name),
            ));
        }
        self.next_counter
            .insert(slot, expected.max(m.counter.saturating_add(1)));
    }
}
