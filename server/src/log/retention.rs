//! Retention: how many messages the log keeps. Membership events
//! (commits, join requests, leaves, invites, kicks) are never pruned
//! (protocol 2): a newcomer always reads the room's membership from the
//! commit that created it, and judges every later one by the same rules
//! as the members who saw it happen (audit M2).

use rusqlite::{OptionalExtension, TransactionBehavior, params};

use hush_proto::EventKind;

use super::{EventLog, LogError};

/// Retention policy: keep at most `max_events` messages per room and no
/// message older than `max_age_ms`. `None` means unlimited.
///
/// Only `Message` events are pruned: membership events stay, whatever
/// their age or number. Sequence numbers are never reset (`last_seq`
/// stays in the rooms table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Retention {
    /// Maximum number of events kept per room.
    pub max_events: Option<u64>,
    /// Maximum age of a kept event, in milliseconds, relative to `now_ms`.
    pub max_age_ms: Option<u64>,
}

impl EventLog {
    /// Applies `retention` to every room's messages, in one transaction,
    /// and returns how many rows were deleted. Messages count as too old
    /// when `received_at_ms < now_ms - max_age_ms`. Membership events are
    /// always kept and `last_seq` is never changed.
    pub fn prune(&mut self, retention: Retention, now_ms: u64) -> Result<u64, LogError> {
        if retention == Retention::default() {
            return Ok(0);
        }
        // Events with received_at_ms <= age_bound are too old (None: none are).
        let age_bound: Option<i64> = match retention.max_age_ms {
            Some(max_age) => match now_ms.saturating_sub(max_age) {
                0 => None,
                cutoff => Some(i64::try_from(cutoff - 1).unwrap_or(i64::MAX)),
            },
            None => None,
        };
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut deleted: u64 = 0;
        {
            let rooms: Vec<String> = {
                let mut stmt = tx.prepare_cached("SELECT room FROM rooms ORDER BY room")?;
                stmt.query_map([], |row| row.get(0))?
                    .collect::<Result<_, _>>()?
            };
            let message = EventKind::Message.code();
            // The (max_events+1)-th newest message: it and every older
            // message goes.
            let mut nth_newest = tx.prepare_cached(
                "SELECT seq FROM events WHERE room = ?1 AND kind = ?3 ORDER BY seq DESC LIMIT 1 OFFSET ?2",
            )?;
            let mut delete_upto_seq = tx
                .prepare_cached("DELETE FROM events WHERE room = ?1 AND seq <= ?2 AND kind = ?3")?;
            let mut delete_older = tx.prepare_cached(
                "DELETE FROM events WHERE room = ?1 AND received_at_ms <= ?2 AND kind = ?3",
            )?;
            for room in &rooms {
                let mut room_deleted: usize = 0;
                if let Some(max_events) = retention.max_events {
                    // An offset beyond i64::MAX can never match a row.
                    if let Ok(offset) = i64::try_from(max_events) {
                        let cutoff: Option<i64> = nth_newest
                            .query_row(params![room, offset, message], |row| row.get(0))
                            .optional()?;
                        if let Some(cutoff) = cutoff {
                            room_deleted +=
                                delete_upto_seq.execute(params![room, cutoff, message])?;
                        }
                    }
                }
                if let Some(bound) = age_bound {
                    room_deleted += delete_older.execute(params![room, bound, message])?;
                }
                if room_deleted > 0 {
                    tracing::debug!(room = %room, deleted = room_deleted, "event log pruned room");
                }
                deleted = deleted.saturating_add(u64::try_from(room_deleted).unwrap_or(u64::MAX));
            }
        }
        tx.commit()?;
        Ok(deleted)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::log::RoomHead;
    use crate::log::tests::{ev, msgs, room, seqs, temp_log};
    use hush_proto::SequencedEvent;

    #[test]
    fn prune_by_count_counts_and_deletes_messages_only() {
        let (_dir, _path, mut log) = temp_log();
        let mut batch = msgs("r", 1..=2);
        batch.push(ev("r", 3, EventKind::Commit, 1, 1_003));
        batch.extend(msgs("r", 4..=10));
        log.append_batch(&batch).unwrap();

        // Unlimited retention deletes nothing.
        assert_eq!(log.prune(Retention::default(), u64::MAX).unwrap(), 0);

        let keep5 = Retention {
            max_events: Some(5),
            max_age_ms: None,
        };
        // Messages 1, 2, 4, 5 go; the commit at 3 is never pruned.
        assert_eq!(log.prune(keep5, 0).unwrap(), 4);
        assert_eq!(
            seqs(&log.events_after(&room("r"), 0, 100).unwrap()),
            vec![3, 6, 7, 8, 9, 10]
        );
        // Idempotent.
        assert_eq!(log.prune(keep5, 0).unwrap(), 0);

        let head = &log.room_heads().unwrap()[0];
        assert_eq!((head.last_seq, head.epoch), (10, 1));

        // The sequence continues after pruning.
        log.append_batch(&msgs("r", 11..=12)).unwrap();
        assert_eq!(log.room_heads().unwrap()[0].last_seq, 12);

        // max_events = 0 leaves only the membership events.
        let keep0 = Retention {
            max_events: Some(0),
            max_age_ms: None,
        };
        assert_eq!(log.prune(keep0, 0).unwrap(), 7);
        let left = log.events_after(&room("r"), 0, 100).unwrap();
        assert_eq!(seqs(&left), vec![3]);
        assert_eq!(left[0].event.kind, EventKind::Commit);
        assert_eq!(log.room_heads().unwrap()[0].last_seq, 12);
        log.append_batch(&msgs("r", 13..=13)).unwrap();
        assert_eq!(
            seqs(&log.events_after(&room("r"), 0, 100).unwrap()),
            vec![3, 13]
        );

        // A huge limit deletes nothing.
        let keep_all = Retention {
            max_events: Some(u64::MAX),
            max_age_ms: None,
        };
        assert_eq!(log.prune(keep_all, 0).unwrap(), 0);
    }

    #[test]
    fn prune_by_age_deletes_messages_only() {
        let (_dir, _path, mut log) = temp_log();
        // received_at = 100 * seq
        let batch: Vec<SequencedEvent> = (1..=10)
            .map(|s| {
                let kind = if s == 2 || s == 4 {
                    EventKind::Commit
                } else {
                    EventKind::Message
                };
                ev("r", s, kind, s, 100 * s)
            })
            .collect();
        log.append_batch(&batch).unwrap();

        let max_age = Retention {
            max_events: None,
            max_age_ms: Some(500),
        };
        // now = 1000: cutoff 500; seq 5 (age exactly 500) is kept, 1..4 are
        // older: the messages 1 and 3 go, the commits 2 and 4 stay.
        assert_eq!(log.prune(max_age, 1_000).unwrap(), 2);
        assert_eq!(
            seqs(&log.events_after(&room("r"), 0, 100).unwrap()),
            vec![2, 4, 5, 6, 7, 8, 9, 10]
        );
        // now smaller than the max age: nothing is old.
        assert_eq!(log.prune(max_age, 100).unwrap(), 0);
        // Far in the future every message goes; the commits stay.
        assert_eq!(log.prune(max_age, u64::MAX).unwrap(), 6);
        assert_eq!(
            seqs(&log.events_after(&room("r"), 0, 100).unwrap()),
            vec![2, 4]
        );
        assert_eq!(
            log.room_heads().unwrap(),
            vec![RoomHead {
                room: "r".into(),
                last_seq: 10,
                epoch: 4,
                head: None
            }]
        );
        log.append_batch(&msgs("r", 11..=11)).unwrap();
        assert_eq!(
            seqs(&log.events_after(&room("r"), 0, 100).unwrap()),
            vec![2, 4, 11]
        );

        // Both limits together, across rooms; a room without commits can be emptied.
        log.append_batch(&msgs("q", 1..=4)).unwrap(); // received 1001..=1004
        let both = Retention {
            max_events: Some(3),
            max_age_ms: Some(10),
        };
        // q loses seq 1 to the count limit and seq 2 (received 1002 < 1003) to
        // the age limit; r (message 11 received 1011) is within both.
        assert_eq!(log.prune(both, 1_013).unwrap(), 2);
        assert_eq!(
            seqs(&log.events_after(&room("q"), 0, 100).unwrap()),
            vec![3, 4]
        );
        assert_eq!(
            seqs(&log.events_after(&room("r"), 0, 100).unwrap()),
            vec![2, 4, 11]
        );
        let max_age0 = Retention {
            max_events: None,
            max_age_ms: Some(0),
        };
        assert_eq!(log.prune(max_age0, 2_000).unwrap(), 3);
        assert_eq!(
            seqs(&log.events_after(&room("r"), 0, 100).unwrap()),
            vec![2, 4]
        );
        assert_eq!(log.count("q").unwrap(), 0);
        assert_eq!(log.room_heads().unwrap()[0].last_seq, 4);
        log.append_batch(&msgs("q", 5..=5)).unwrap();
    }
}
