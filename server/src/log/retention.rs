//! Retention: how many messages the log keeps. Membership events
//! (commits, join requests, leaves, invites, kicks) are never pruned
//! (protocol 2): a newcomer always reads the room's membership from the
//! commit that created it, and judges every later one by the same rules
//! as the members who saw it happen (audit M2).

use rusqlite::{OptionalExtension, TransactionBehavior, params};

use hush_proto::EventKind;

use super::{LogError, SqliteLog};

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

/// Rooms one [`SqliteLog::prune_chunk`] looks at, at most.
const ROOMS_PER_CHUNK: usize = 256;

/// Where a prune that runs in chunks goes on from: every room before it
/// is done. Starts at the first room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PruneCursor {
    /// The room to go on from.
    pub(super) from: String,
    /// Whether `from` itself still has messages to prune (a chunk ended
    /// inside it) or is done.
    pub(super) inclusive: bool,
    /// Messages deleted so far by this prune.
    pub(super) deleted: u64,
}

impl Default for PruneCursor {
    fn default() -> Self {
        Self {
            from: String::new(),
            inclusive: true,
            deleted: 0,
        }
    }
}

impl PruneCursor {
    /// Messages deleted so far by the prune this cursor walks.
    #[must_use]
    pub fn deleted(&self) -> u64 {
        self.deleted
    }
}

/// What one chunk of a prune did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PruneStep {
    /// Messages this chunk deleted.
    pub deleted: u64,
    /// Whether every room has been visited (the prune is over).
    pub done: bool,
}

impl SqliteLog {
    /// Applies `retention` to every room's messages and returns how many
    /// rows were deleted: [`Self::prune_chunk`] until it is done, each
    /// chunk its own transaction. Messages count as too old when
    /// `received_at_ms < now_ms - max_age_ms`. Membership events are
    /// always kept and `last_seq` is never changed.
    ///
    /// # Errors
    /// A SQLite failure; chunks already committed stay pruned.
    pub fn prune(&mut self, retention: Retention, now_ms: u64) -> Result<u64, LogError> {
        let mut cursor = PruneCursor::default();
        while !self
            .prune_chunk(retention, now_ms, &mut cursor, DEFAULT_CHUNK_EVENTS)?
            .done
        {}
        Ok(cursor.deleted)
    }

    /// One bounded step of a prune, in one transaction: at most
    /// `max_events` messages deleted and at most 256 rooms visited, going
    /// on from `cursor` (which it moves on). The sequencer runs these
    /// between batches, so a prune of a large log never holds the writer
    /// for long (audit L3).
    ///
    /// # Errors
    /// A SQLite failure; nothing of this chunk is deleted then.
    pub fn prune_chunk(
        &mut self,
        retention: Retention,
        now_ms: u64,
        cursor: &mut PruneCursor,
        max_events: usize,
    ) -> Result<PruneStep, LogError> {
        if retention == Retention::default() {
            return Ok(PruneStep {
                deleted: 0,
                done: true,
            });
        }
        // Events with received_at_ms <= age_bound are too old (None: none are).
        let age_bound: Option<i64> = match retention.max_age_ms {
            Some(max_age) => match now_ms.saturating_sub(max_age) {
                0 => None,
                cutoff => Some(i64::try_from(cutoff - 1).unwrap_or(i64::MAX)),
            },
            None => None,
        };
        let budget_total = i64::try_from(max_events.max(1)).unwrap_or(i64::MAX);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut deleted: i64 = 0;
        // Where the next chunk goes on from; `None`: every room is done.
        let mut resume: Option<(String, bool)> = None;
        {
            let rooms: Vec<String> = {
                let sql = if cursor.inclusive {
                    "SELECT room FROM rooms WHERE room >= ?1 ORDER BY room LIMIT ?2"
                } else {
                    "SELECT room FROM rooms WHERE room > ?1 ORDER BY room LIMIT ?2"
                };
                let mut stmt = tx.prepare_cached(sql)?;
                stmt.query_map(params![cursor.from, ROOMS_PER_CHUNK as i64], |row| {
                    row.get(0)
                })?
                .collect::<Result<_, _>>()?
            };
            let message = EventKind::Message.code();
            // The (max_events+1)-th newest message: it and every older
            // message goes.
            let mut nth_newest = tx.prepare_cached(
                "SELECT seq FROM events WHERE room = ?1 AND kind = ?3 ORDER BY seq DESC LIMIT 1 OFFSET ?2",
            )?;
            // Oldest first, at most ?4 of them: a chunk stops inside a room.
            let mut delete_upto_seq = tx.prepare_cached(
                "DELETE FROM events WHERE rowid IN (SELECT rowid FROM events \
                 WHERE room = ?1 AND seq <= ?2 AND kind = ?3 ORDER BY seq LIMIT ?4)",
            )?;
            let mut delete_older = tx.prepare_cached(
                "DELETE FROM events WHERE rowid IN (SELECT rowid FROM events \
                 WHERE room = ?1 AND received_at_ms <= ?2 AND kind = ?3 ORDER BY seq LIMIT ?4)",
            )?;
            for room in &rooms {
                let before = deleted;
                if let Some(max_events) = retention.max_events {
                    // An offset beyond i64::MAX can never match a row.
                    if let Ok(offset) = i64::try_from(max_events) {
                        let cutoff: Option<i64> = nth_newest
                            .query_row(params![room, offset, message], |row| row.get(0))
                            .optional()?;
                        if let Some(cutoff) = cutoff {
                            let budget = budget_total - deleted;
                            deleted += delete_upto_seq
                                .execute(params![room, cutoff, message, budget])?
                                as i64;
                        }
                    }
                }
                if let Some(bound) = age_bound
                    && deleted < budget_total
                {
                    let budget = budget_total - deleted;
                    deleted += delete_older.execute(params![room, bound, message, budget])? as i64;
                }
                if deleted > before {
                    tracing::debug!(room = %room, deleted = deleted - before, "event log pruned room");
                }
                if deleted >= budget_total {
                    // The room may hold more: the next chunk starts with it.
                    resume = Some((room.clone(), true));
                    break;
                }
            }
            if resume.is_none() && rooms.len() == ROOMS_PER_CHUNK {
                resume = rooms.last().map(|r| (r.clone(), false));
            }
        }
        tx.commit()?;
        let deleted = u64::try_from(deleted).unwrap_or(0);
        cursor.deleted = cursor.deleted.saturating_add(deleted);
        let done = match resume {
            Some((from, inclusive)) => {
                cursor.from = from;
                cursor.inclusive = inclusive;
                false
            }
            None => true,
        };
        Ok(PruneStep { deleted, done })
    }
}

/// Messages one chunk of [`EventLog::prune`] deletes at most.
pub(super) const DEFAULT_CHUNK_EVENTS: usize = 10_000;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::log::PruneCursor;
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

    #[test]
    fn a_prune_in_bounded_chunks_deletes_what_one_prune_does_and_lets_rooms_go_on_between() {
        let (_dir, _path, mut log) = temp_log();
        // 300 rooms (more than one chunk visits), each with 5 messages
        // and a commit in the middle.
        let names: Vec<String> = (0..300).map(|i| format!("r{i:03}")).collect();
        for name in &names {
            let mut batch = msgs(name, 1..=2);
            batch.push(ev(name, 3, EventKind::Commit, 1, 1_003));
            batch.extend(msgs(name, 4..=6));
            log.append_batch(&batch).unwrap();
        }
        let keep1 = Retention {
            max_events: Some(1),
            max_age_ms: None,
        };
        let mut cursor = PruneCursor::default();
        let mut steps = 0;
        loop {
            let step = log.prune_chunk(keep1, 0, &mut cursor, 7).unwrap();
            assert!(step.deleted <= 7, "a chunk stays within its bound");
            steps += 1;
            // Sequencing goes on between chunks, in a room already done
            // and in one not yet reached.
            if steps == 3 {
                log.append_batch(&msgs("r000", 7..=7)).unwrap();
                log.append_batch(&msgs("r299", 7..=7)).unwrap();
            }
            if step.done {
                break;
            }
        }
        // 4 of 5 messages go in each room (the appended one in r299 too).
        assert_eq!(cursor.deleted(), 300 * 4 + 1);
        assert!(steps > 300 * 4 / 7, "{steps} chunks");
        assert_eq!(
            seqs(&log.events_after(&room("r150"), 0, 100).unwrap()),
            vec![3, 6]
        );
        assert_eq!(
            seqs(&log.events_after(&room("r000"), 0, 100).unwrap()),
            vec![3, 6, 7],
            "done before its new message came"
        );
        assert_eq!(
            seqs(&log.events_after(&room("r299"), 0, 100).unwrap()),
            vec![3, 7]
        );
        // One whole prune now only finishes r000.
        assert_eq!(log.prune(keep1, 0).unwrap(), 1);
    }
}
