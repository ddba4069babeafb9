//! One conformance suite for every [`EventLog`]: the SQLite log runs it in
//! `log/tests.rs`, the JetStream log in `log/jetstream.rs` (against a
//! real nats-server, one node and a three-node cluster). Each case uses
//! rooms of its own, so the cases can share one store; [`run_all`] runs
//! them in an order where the retention case, which prunes every room,
//! comes last.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;

use hush_crypto::Fingerprint;
use hush_proto::{EventKind, RoomEvent, RoomName, SequencedEvent};

use super::{EventLog, LogError, Retention, RoomHead};

/// Opens the store under test again (the same data: a reopened file, a
/// new connection to the same stream).
pub(crate) type Reopen<'a> = &'a mut dyn FnMut() -> Box<dyn EventLog>;

fn room(name: &str) -> RoomName {
    RoomName::new(name).unwrap()
}

fn ev(room_name: &str, seq: u64, kind: EventKind, epoch: u64, at: u64) -> SequencedEvent {
    SequencedEvent {
        seq,
        received_at_ms: at,
        event: RoomEvent {
            room: room(room_name),
            sender: Fingerprint::from_bytes([seq as u8; 32]),
            kind,
            epoch,
            body: format!("{room_name}-{seq}").into_bytes(),
        },
    }
}

fn msgs(room: &str, seqs: std::ops::RangeInclusive<u64>) -> Vec<SequencedEvent> {
    seqs.map(|s| ev(room, s, EventKind::Message, 0, 1_000 + s))
        .collect()
}

fn seqs(events: &[SequencedEvent]) -> Vec<u64> {
    events.iter().map(|e| e.seq).collect()
}

/// Each room's chain head after `events`, starting from what the log
/// holds, as the sequencer computes them.
fn chain_heads(log: &dyn EventLog, events: &[SequencedEvent]) -> HashMap<String, [u8; 32]> {
    let mut heads: HashMap<String, [u8; 32]> = HashMap::new();
    for e in events {
        let name = e.event.room.as_str().to_owned();
        let prev = match heads.get(&name) {
            Some(h) => *h,
            None => log
                .room_head(&name)
                .unwrap()
                .and_then(|h| h.head)
                .unwrap_or([0; 32]),
        };
        heads.insert(
            name,
            hush_proto::e2e::chain_next_parts(&prev, e.seq, &e.event),
        );
    }
    heads
}

/// Appends as the sequencer does: with each room's new chain head.
fn append(log: &mut dyn EventLog, events: &[SequencedEvent]) -> Result<(), LogError> {
    let heads = chain_heads(log, events);
    let heads: Vec<(&str, [u8; 32])> = heads.iter().map(|(r, h)| (r.as_str(), *h)).collect();
    log.append_batch_with_heads(events, &heads)
}

/// Runs every case against the store `reopen` opens.
pub(crate) fn run_all(reopen: Reopen<'_>) {
    let mut log = reopen();
    contiguous_seqs_per_room(&mut *log);
    a_seq_gap_is_refused_atomically(&mut *log);
    backfill_ranges_and_caps(&mut *log);
    bodies_and_fields_come_back_byte_exact(&mut *log);
    drop(log);
    heads_survive_a_reopen(reopen);
    let mut log = reopen();
    retention_keeps_membership_events_and_last_seq(&mut *log);
}

/// Seqs are 1, 2, 3, ... per room, across batches and interleaved rooms.
pub(crate) fn contiguous_seqs_per_room(log: &mut dyn EventLog) {
    let a = msgs("c1-a", 1..=10);
    append(log, &a[..4]).unwrap();
    let mut mixed = a[4..].to_vec();
    mixed.splice(2..2, msgs("c1-b", 1..=3));
    append(log, &mixed).unwrap();
    assert_eq!(log.events_after(&room("c1-a"), 0, 100).unwrap(), a);
    assert_eq!(
        seqs(&log.events_after(&room("c1-b"), 0, 100).unwrap()),
        vec![1, 2, 3]
    );
    let head = log.room_head("c1-a").unwrap().unwrap();
    assert_eq!((head.last_seq, head.epoch), (10, 0));
    assert_eq!(
        head.head,
        Some(chain_heads_from_zero(&a)),
        "the chain head matches the events"
    );
    assert_eq!(log.room_head("c1-b").unwrap().unwrap().last_seq, 3);
    assert!(log.room_head("c1-none").unwrap().is_none());
    assert_eq!(log.count("c1-a").unwrap(), 10);
    assert_eq!(log.count("c1-none").unwrap(), 0);
    // An empty batch is a no-op.
    log.append_batch(&[]).unwrap();
    // The sequence goes on.
    append(log, &msgs("c1-a", 11..=11)).unwrap();
    assert_eq!(log.room_head("c1-a").unwrap().unwrap().last_seq, 11);
    let names: Vec<String> = log
        .room_heads()
        .unwrap()
        .into_iter()
        .map(|h| h.room)
        .filter(|r| r.starts_with("c1-"))
        .collect();
    assert_eq!(names, vec!["c1-a", "c1-b"], "sorted by name");
}

fn chain_heads_from_zero(events: &[SequencedEvent]) -> [u8; 32] {
    events.iter().fold([0; 32], |prev, e| {
        hush_proto::e2e::chain_next_parts(&prev, e.seq, &e.event)
    })
}

/// A batch with a gap anywhere stores nothing of itself, in any room.
pub(crate) fn a_seq_gap_is_refused_atomically(log: &mut dyn EventLog) {
    append(log, &msgs("c2-r", 1..=3)).unwrap();
    let mut bad = msgs("c2-other", 1..=2);
    bad.extend(msgs("c2-r", 4..=5));
    bad.push(ev("c2-r", 7, EventKind::Message, 0, 9));
    match append(log, &bad).unwrap_err() {
        LogError::SeqGap {
            room,
            expected,
            got,
        } => assert_eq!((room.as_str(), expected, got), ("c2-r", 6, 7)),
        other => panic!("unexpected error {other:?}"),
    }
    assert_eq!(log.count("c2-r").unwrap(), 3);
    assert_eq!(log.count("c2-other").unwrap(), 0);
    assert!(log.room_head("c2-other").unwrap().is_none());
    assert_eq!(log.room_head("c2-r").unwrap().unwrap().last_seq, 3);
    // Restarting at 1, skipping ahead, a new room not starting at 1.
    for (batch, expected, got) in [
        (msgs("c2-r", 1..=2), 4, 1),
        (msgs("c2-r", 5..=6), 4, 5),
        (msgs("c2-fresh", 2..=2), 1, 2),
    ] {
        let err = append(log, &batch).unwrap_err();
        assert!(
            matches!(err, LogError::SeqGap { expected: e, got: g, .. } if e == expected && g == got),
            "{err:?}"
        );
    }
    // Still usable, and it goes on from 4.
    append(log, &msgs("c2-r", 4..=5)).unwrap();
    assert_eq!(
        seqs(&log.events_after(&room("c2-r"), 0, 100).unwrap()),
        vec![1, 2, 3, 4, 5]
    );
}

/// `events_after(_capped)`: ranges, limits and the byte cap.
pub(crate) fn backfill_ranges_and_caps(log: &mut dyn EventLog) {
    let batch: Vec<SequencedEvent> = (1..=10)
        .map(|s| {
            let mut e = ev("c3-r", s, EventKind::Message, 0, 1_000 + s);
            e.event.body = vec![s as u8; 100];
            e
        })
        .collect();
    append(log, &batch).unwrap();
    let r = room("c3-r");
    assert_eq!(seqs(&log.events_after(&r, 0, 3).unwrap()), vec![1, 2, 3]);
    assert_eq!(seqs(&log.events_after(&r, 7, 100).unwrap()), vec![8, 9, 10]);
    assert_eq!(seqs(&log.events_after(&r, 4, 2).unwrap()), vec![5, 6]);
    assert!(log.events_after(&r, 10, 100).unwrap().is_empty());
    assert!(log.events_after(&r, 0, 0).unwrap().is_empty());
    assert!(log.events_after(&r, u64::MAX, 10).unwrap().is_empty());
    assert_eq!(log.events_after(&r, 0, usize::MAX).unwrap().len(), 10);
    assert!(
        log.events_after(&room("c3-none"), 0, 10)
            .unwrap()
            .is_empty()
    );
    // The cap stops once the bodies read reach it, at least one event.
    assert_eq!(
        seqs(&log.events_after_capped(&r, 0, 100, 250).unwrap()),
        vec![1, 2, 3]
    );
    assert_eq!(
        seqs(&log.events_after_capped(&r, 5, 100, 1).unwrap()),
        vec![6]
    );
    assert_eq!(
        seqs(&log.events_after_capped(&r, 2, 2, 10_000).unwrap()),
        vec![3, 4]
    );
}

/// Every field, and bodies of every byte value and size, come back as stored.
pub(crate) fn bodies_and_fields_come_back_byte_exact(log: &mut dyn EventLog) {
    let mut batch = Vec::new();
    let bodies: Vec<Vec<u8>> = vec![
        (0..=255u8).collect(),
        Vec::new(),
        b"\r\n\r\nNATS/1.0 503\r\n".to_vec(),
        (0..60 * 1024).map(|i| (i * 7 % 251) as u8).collect(),
    ];
    for (i, body) in bodies.into_iter().enumerate() {
        let seq = i as u64 + 1;
        let kind = if seq == 2 {
            EventKind::Commit
        } else {
            EventKind::Message
        };
        batch.push(SequencedEvent {
            seq,
            received_at_ms: 1_700_000_000_000 + seq,
            event: RoomEvent {
                room: room("c4.r_x-9"),
                sender: Fingerprint::from_bytes([0xA0 | seq as u8; 32]),
                kind,
                epoch: 7,
                body,
            },
        });
    }
    append(log, &batch).unwrap();
    assert_eq!(
        log.events_after(&room("c4.r_x-9"), 0, 100).unwrap(),
        batch,
        "every field and byte survives"
    );
    let head = log.room_head("c4.r_x-9").unwrap().unwrap();
    assert_eq!(head.epoch, 7, "the commit's epoch is the room's");
}

/// Heads and events are the same after the store is opened again, and
/// the sequence goes on from them.
pub(crate) fn heads_survive_a_reopen(reopen: Reopen<'_>) {
    let mut log = reopen();
    let mut batch = msgs("c5-a", 1..=3);
    batch.push(ev("c5-a", 4, EventKind::Commit, 2, 2_000));
    batch.extend(msgs("c5-b", 1..=2));
    append(&mut *log, &batch).unwrap();
    let before: Vec<RoomHead> = log
        .room_heads()
        .unwrap()
        .into_iter()
        .filter(|h| h.room.starts_with("c5-"))
        .collect();
    drop(log);

    let mut log = reopen();
    let after: Vec<RoomHead> = log
        .room_heads()
        .unwrap()
        .into_iter()
        .filter(|h| h.room.starts_with("c5-"))
        .collect();
    assert_eq!(after, before);
    assert_eq!(
        (after[0].last_seq, after[0].epoch, after[1].last_seq),
        (4, 2, 2)
    );
    assert_eq!(after[0].head, Some(chain_heads_from_zero(&batch[..4])));
    assert_eq!(
        log.events_after(&room("c5-a"), 0, 100).unwrap(),
        batch[..4].to_vec()
    );
    append(&mut *log, &msgs("c5-a", 5..=5)).unwrap();
    assert_eq!(log.count("c5-a").unwrap(), 5);
    // A stale seq after the reopen is refused like any.
    assert!(matches!(
        append(&mut *log, &msgs("c5-a", 5..=5)).unwrap_err(),
        LogError::SeqGap {
            expected: 6,
            got: 5,
            ..
        }
    ));
}

/// Retention deletes messages only: membership events (the latest commit
/// among them) stay, and `last_seq` never goes back. Prunes every room,
/// so it runs last.
pub(crate) fn retention_keeps_membership_events_and_last_seq(log: &mut dyn EventLog) {
    let mut batch = msgs("c6-r", 1..=2);
    batch.push(ev("c6-r", 3, EventKind::Commit, 1, 1_003));
    batch.extend(msgs("c6-r", 4..=10));
    append(log, &batch).unwrap();
    let keep5 = Retention {
        max_events: Some(5),
        max_age_ms: None,
    };
    log.prune(keep5, 2_000).unwrap();
    assert_eq!(
        seqs(&log.events_after(&room("c6-r"), 0, 100).unwrap()),
        vec![3, 6, 7, 8, 9, 10]
    );
    let keep0 = Retention {
        max_events: Some(0),
        max_age_ms: None,
    };
    log.prune(keep0, 2_000).unwrap();
    let left = log.events_after(&room("c6-r"), 0, 100).unwrap();
    assert_eq!(seqs(&left), vec![3], "the commit stays");
    assert_eq!(left[0].event.kind, EventKind::Commit);
    let head = log.room_head("c6-r").unwrap().unwrap();
    assert_eq!((head.last_seq, head.epoch), (10, 1), "last_seq stays");
    assert_eq!(head.head, Some(chain_heads_from_zero(&batch)));
    append(log, &msgs("c6-r", 11..=11)).unwrap();
    assert_eq!(
        seqs(&log.events_after(&room("c6-r"), 0, 100).unwrap()),
        vec![3, 11]
    );

    // By age, in a room with no membership event: it can be emptied and
    // still goes on from its last seq.
    append(log, &msgs("c6-q", 1..=4)).unwrap(); // received 1001..=1004
    let by_age = Retention {
        max_events: None,
        max_age_ms: Some(10),
    };
    log.prune(by_age, 1_013).unwrap();
    assert_eq!(
        seqs(&log.events_after(&room("c6-q"), 0, 100).unwrap()),
        vec![3, 4],
        "received before 1003 is too old"
    );
    log.prune(by_age, 1_000_000).unwrap();
    assert_eq!(log.count("c6-q").unwrap(), 0);
    assert_eq!(log.room_head("c6-q").unwrap().unwrap().last_seq, 4);
    append(log, &msgs("c6-q", 5..=5)).unwrap();
    assert_eq!(
        seqs(&log.events_after(&room("c6-q"), 0, 100).unwrap()),
        vec![5]
    );
}
