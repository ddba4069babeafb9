//! Unit tests of the event log.
#![allow(clippy::unwrap_used)]

use super::*;
use tempfile::TempDir;

pub(super) fn room(name: &str) -> RoomName {
    RoomName::new(name).unwrap()
}

pub(super) fn ev(
    room_name: &str,
    seq: u64,
    kind: EventKind,
    epoch: u64,
    at: u64,
) -> SequencedEvent {
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

pub(super) fn msgs(room: &str, seqs: std::ops::RangeInclusive<u64>) -> Vec<SequencedEvent> {
    seqs.map(|s| ev(room, s, EventKind::Message, 0, 1_000 + s))
        .collect()
}

pub(super) fn seqs(events: &[SequencedEvent]) -> Vec<u64> {
    events.iter().map(|e| e.seq).collect()
}

pub(super) fn temp_log() -> (TempDir, std::path::PathBuf, SqliteLog) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.sqlite");
    let log = SqliteLog::open(&path).unwrap();
    (dir, path, log)
}
#[test]
fn append_then_read_in_order_with_limit_and_after() {
    let (_dir, _path, mut log) = temp_log();
    let batch = msgs("r", 1..=10);
    log.append_batch(&batch[..4]).unwrap();
    log.append_batch(&batch[4..]).unwrap();

    let all = log.events_after(&room("r"), 0, 100).unwrap();
    assert_eq!(all, batch);
    assert_eq!(
        seqs(&log.events_after(&room("r"), 0, 3).unwrap()),
        vec![1, 2, 3]
    );
    assert_eq!(
        seqs(&log.events_after(&room("r"), 7, 100).unwrap()),
        vec![8, 9, 10]
    );
    assert_eq!(
        seqs(&log.events_after(&room("r"), 4, 2).unwrap()),
        vec![5, 6]
    );
    assert!(log.events_after(&room("r"), 10, 100).unwrap().is_empty());
    assert!(log.events_after(&room("r"), 0, 0).unwrap().is_empty());
    assert!(
        log.events_after(&room("r"), u64::MAX, 10)
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        log.events_after(&room("r"), 0, usize::MAX).unwrap().len(),
        10
    );
    assert!(log.events_after(&room("nope"), 0, 10).unwrap().is_empty());
    assert_eq!(log.count("r").unwrap(), 10);
    assert_eq!(log.count("nope").unwrap(), 0);
    // An empty batch is a no-op.
    log.append_batch(&[]).unwrap();
    assert_eq!(log.count("r").unwrap(), 10);
}

#[test]
fn gap_in_batch_is_rejected_atomically() {
    let (_dir, _path, mut log) = temp_log();
    log.append_batch(&msgs("r", 1..=3)).unwrap();

    // A gap inside the batch, after valid events of another room too.
    let mut bad = msgs("other", 1..=2);
    bad.extend(msgs("r", 4..=5));
    bad.push(ev("r", 7, EventKind::Message, 0, 9));
    let err = log.append_batch(&bad).unwrap_err();
    match err {
        LogError::SeqGap {
            room,
            expected,
            got,
        } => {
            assert_eq!((room.as_str(), expected, got), ("r", 6, 7));
        }
        other => panic!("unexpected error {other:?}"),
    }
    assert_eq!(log.count("r").unwrap(), 3);
    assert_eq!(log.count("other").unwrap(), 0);
    let heads = log.room_heads().unwrap();
    assert_eq!(heads.len(), 1);
    assert_eq!(heads[0].last_seq, 3);

    // A batch that does not continue the stored last_seq: restarting at 1.
    let err = log.append_batch(&msgs("r", 1..=2)).unwrap_err();
    assert!(
        matches!(
            err,
            LogError::SeqGap {
                expected: 4,
                got: 1,
                ..
            }
        ),
        "{err:?}"
    );
    // Skipping ahead of the stored last_seq.
    let err = log.append_batch(&msgs("r", 5..=6)).unwrap_err();
    assert!(
        matches!(
            err,
            LogError::SeqGap {
                expected: 4,
                got: 5,
                ..
            }
        ),
        "{err:?}"
    );
    // A new room must start at 1.
    let err = log.append_batch(&msgs("fresh", 2..=2)).unwrap_err();
    assert!(
        matches!(
            err,
            LogError::SeqGap {
                expected: 1,
                got: 2,
                ..
            }
        ),
        "{err:?}"
    );
    // An unstorable value also rolls everything back.
    let mut huge = msgs("r", 4..=4);
    huge.push(ev("r", 5, EventKind::Message, u64::MAX, 0));
    let err = log.append_batch(&huge).unwrap_err();
    assert!(
        matches!(err, LogError::OutOfRange { field: "epoch", .. }),
        "{err:?}"
    );
    assert_eq!(log.count("r").unwrap(), 3);
    assert!(err.to_string().contains("exceeds"), "{err}");

    // The log is still usable afterwards and continues from 4.
    log.append_batch(&msgs("r", 4..=5)).unwrap();
    assert_eq!(
        seqs(&log.events_after(&room("r"), 0, 100).unwrap()),
        vec![1, 2, 3, 4, 5]
    );
    assert_eq!(log.room_heads().unwrap()[0].last_seq, 5);
}

#[test]
fn reopen_after_drop_keeps_everything() {
    let (dir, path, mut log) = temp_log();
    let mut batch = msgs("a", 1..=3);
    batch.push(ev("a", 4, EventKind::Commit, 2, 2_000));
    batch.extend(msgs("b", 1..=2));
    log.append_batch(&batch).unwrap();
    let heads_before = log.room_heads().unwrap();
    drop(log);

    let mut log = SqliteLog::open(&path).unwrap();
    assert_eq!(log.room_heads().unwrap(), heads_before);
    assert_eq!(
        heads_before,
        vec![
            RoomHead {
                room: "a".into(),
                last_seq: 4,
                epoch: 2,
                head: None
            },
            RoomHead {
                room: "b".into(),
                last_seq: 2,
                epoch: 0,
                head: None
            },
        ]
    );
    assert_eq!(
        log.events_after(&room("a"), 0, 100).unwrap(),
        batch[..4].to_vec()
    );
    assert_eq!(
        log.events_after(&room("b"), 0, 100).unwrap(),
        batch[4..].to_vec()
    );
    // And appending continues the sequence after the restart.
    log.append_batch(&msgs("a", 5..=5)).unwrap();
    assert_eq!(log.count("a").unwrap(), 5);
    drop(log);
    drop(dir);
}

#[test]
fn room_heads_track_latest_commit_epoch() {
    let log_mem = SqliteLog::open_in_memory().unwrap();
    assert!(log_mem.room_heads().unwrap().is_empty());

    let (_dir, _path, mut log) = temp_log();
    log.append_batch(&[
        ev("r", 1, EventKind::JoinRequest, 0, 1),
        ev("r", 2, EventKind::Commit, 1, 2),
        ev("r", 3, EventKind::Message, 1, 3),
    ])
    .unwrap();
    assert_eq!(
        log.room_heads().unwrap(),
        vec![RoomHead {
            room: "r".into(),
            last_seq: 3,
            epoch: 1,
            head: None
        }]
    );
    // Two commits in one batch: the head takes the newest epoch.
    log.append_batch(&[
        ev("r", 4, EventKind::Commit, 2, 4),
        ev("r", 5, EventKind::Message, 2, 5),
        ev("r", 6, EventKind::Commit, 3, 6),
    ])
    .unwrap();
    assert_eq!(
        log.room_heads().unwrap(),
        vec![RoomHead {
            room: "r".into(),
            last_seq: 6,
            epoch: 3,
            head: None
        }]
    );
    // A batch without commits advances last_seq but keeps the epoch.
    log.append_batch(&[
        ev("r", 7, EventKind::Leave, 3, 7),
        ev("r", 8, EventKind::Control, 3, 8),
    ])
    .unwrap();
    assert_eq!(
        log.room_heads().unwrap(),
        vec![RoomHead {
            room: "r".into(),
            last_seq: 8,
            epoch: 3,
            head: None
        }]
    );
}

#[test]
fn reader_sees_committed_events() {
    let (_dir, path, mut writer) = temp_log();
    let reader = SqliteLog::open_reader(&path).unwrap();
    assert!(reader.room_heads().unwrap().is_empty());

    writer.append_batch(&msgs("r", 1..=3)).unwrap();
    assert_eq!(
        seqs(&reader.events_after(&room("r"), 0, 10).unwrap()),
        vec![1, 2, 3]
    );
    writer.append_batch(&msgs("r", 4..=4)).unwrap();
    assert_eq!(
        seqs(&reader.events_after(&room("r"), 3, 10).unwrap()),
        vec![4]
    );
    assert_eq!(reader.room_heads().unwrap()[0].last_seq, 4);

    // The reader cannot write.
    let mut reader = reader;
    assert!(matches!(
        reader.append_batch(&msgs("r", 5..=5)),
        Err(LogError::Sqlite(_))
    ));
    assert_eq!(writer.count("r").unwrap(), 4);
}

#[test]
fn reader_refuses_missing_or_uninitialised_db() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.sqlite");
    assert!(matches!(
        SqliteLog::open_reader(&missing),
        Err(LogError::Sqlite(_))
    ));
    assert!(!missing.exists());

    let blank = dir.path().join("blank.sqlite");
    Connection::open(&blank)
        .unwrap()
        .execute_batch("CREATE TABLE t (x)")
        .unwrap();
    assert!(matches!(
        SqliteLog::open_reader(&blank),
        Err(LogError::Uninitialized)
    ));
}

#[test]
fn a_protocol_1_log_with_events_is_refused_and_an_empty_one_taken_over() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v1.sqlite");
    {
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE rooms (room TEXT NOT NULL PRIMARY KEY, last_seq INTEGER NOT NULL, epoch INTEGER NOT NULL) STRICT;
             CREATE TABLE events (room TEXT NOT NULL, seq INTEGER NOT NULL, kind INTEGER NOT NULL, sender BLOB NOT NULL,
                 epoch INTEGER NOT NULL, received_at_ms INTEGER NOT NULL, body BLOB NOT NULL, PRIMARY KEY (room, seq)) STRICT;
             INSERT INTO rooms VALUES ('old', 1, 0);
             INSERT INTO events VALUES ('old', 1, 0, zeroblob(32), 0, 5, x'01');
             PRAGMA user_version = 1;",
        )
        .unwrap();
    }
    let Err(err) = SqliteLog::open(&path) else {
        panic!("a protocol 1 log is refused");
    };
    assert!(matches!(err, LogError::OldProtocol { found: 1 }), "{err}");
    assert!(
        err.to_string().contains("move the data folder aside"),
        "{err}"
    );
    // Nothing was changed: the old relay can still open it.
    let conn = Connection::open(&path).unwrap();
    let v: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(v, 1);
    // Emptied, the same file is taken over and upgraded.
    conn.execute_batch("DELETE FROM events; DELETE FROM rooms;")
        .unwrap();
    drop(conn);
    let mut log = SqliteLog::open(&path).unwrap();
    assert!(log.room_heads().unwrap().is_empty());
    let e = ev("new", 1, EventKind::Message, 0, 6);
    log.append_batch_with_heads(&[e], &[("new", [7; 32])])
        .unwrap();
    assert_eq!(log.room_heads().unwrap()[0].head, Some([7; 32]));
}

#[test]
fn newer_schema_version_is_refused() {
    let (_dir, path, log) = temp_log();
    log.conn
        .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
        .unwrap();
    drop(log);

    let err = SqliteLog::open(&path).unwrap_err();
    assert!(
        matches!(
            err,
            LogError::UnsupportedSchema {
                found: 4,
                supported: 3
            }
        ),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("schema version 4") && msg.contains("newer"),
        "{msg}"
    );
    assert!(matches!(
        SqliteLog::open_reader(&path),
        Err(LogError::UnsupportedSchema { .. })
    ));
    // The refused database was not modified.
    let raw = Connection::open(&path).unwrap();
    let v: i64 = raw
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(v, SCHEMA_VERSION + 1);
}

#[test]
fn multiple_rooms_are_independent() {
    let (_dir, _path, mut log) = temp_log();
    // Interleaved rooms in one batch.
    let batch = vec![
        ev("a", 1, EventKind::Message, 0, 1),
        ev("b", 1, EventKind::Commit, 7, 2),
        ev("a", 2, EventKind::Message, 0, 3),
        ev("c", 1, EventKind::Message, 0, 4),
        ev("b", 2, EventKind::Message, 7, 5),
        ev("a", 3, EventKind::Commit, 1, 6),
    ];
    log.append_batch(&batch).unwrap();
    assert_eq!(
        log.room_heads().unwrap(),
        vec![
            RoomHead {
                room: "a".into(),
                last_seq: 3,
                epoch: 1,
                head: None
            },
            RoomHead {
                room: "b".into(),
                last_seq: 2,
                epoch: 7,
                head: None
            },
            RoomHead {
                room: "c".into(),
                last_seq: 1,
                epoch: 0,
                head: None
            },
        ]
    );
    assert_eq!(
        seqs(&log.events_after(&room("a"), 0, 10).unwrap()),
        vec![1, 2, 3]
    );
    assert_eq!(
        log.events_after(&room("b"), 0, 10).unwrap(),
        vec![batch[1].clone(), batch[4].clone()]
    );
    assert_eq!(log.count("c").unwrap(), 1);

    // Pruning one room's worth of history doesn't touch the others' seqs.
    log.append_batch(&msgs("c", 2..=6)).unwrap();
    let keep2 = Retention {
        max_events: Some(2),
        max_age_ms: None,
    };
    // a keeps its two messages (and its commit), c loses 1..=4.
    assert_eq!(log.prune(keep2, 0).unwrap(), 4);
    assert_eq!(
        seqs(&log.events_after(&room("a"), 0, 10).unwrap()),
        vec![1, 2, 3]
    );
    assert_eq!(
        seqs(&log.events_after(&room("b"), 0, 10).unwrap()),
        vec![1, 2]
    );
    assert_eq!(
        seqs(&log.events_after(&room("c"), 0, 10).unwrap()),
        vec![5, 6]
    );
    // Continuing one room doesn't affect the next expected seq of another.
    log.append_batch(&[
        ev("b", 3, EventKind::Message, 7, 9),
        ev("a", 4, EventKind::Message, 1, 9),
    ])
    .unwrap();
    assert_eq!(log.room_heads().unwrap()[2].last_seq, 6);
}

#[test]
fn corrupt_rows_are_reported() {
    let mut log = SqliteLog::open_in_memory().unwrap();
    log.append_batch(&msgs("r", 1..=1)).unwrap();
    log.conn
        .execute("UPDATE events SET sender = x'0102' WHERE seq = 1", [])
        .unwrap();
    let err = log.events_after(&room("r"), 0, 10).unwrap_err();
    assert!(
        matches!(err, LogError::Corrupt(ref m) if m.contains("sender")),
        "{err:?}"
    );

    log.conn
        .execute(
            "UPDATE events SET sender = zeroblob(32), kind = 99 WHERE seq = 1",
            [],
        )
        .unwrap();
    let err = log.events_after(&room("r"), 0, 10).unwrap_err();
    assert!(
        matches!(err, LogError::Corrupt(ref m) if m.contains("kind 99")),
        "{err:?}"
    );

    log.conn
        .execute("UPDATE events SET kind = 0, epoch = -1 WHERE seq = 1", [])
        .unwrap();
    assert!(matches!(
        log.events_after(&room("r"), 0, 10),
        Err(LogError::Corrupt(_))
    ));

    log.conn
        .execute("UPDATE rooms SET last_seq = -5", [])
        .unwrap();
    assert!(matches!(log.room_heads(), Err(LogError::Corrupt(_))));
    assert!(matches!(
        log.append_batch(&msgs("r", 2..=2)),
        Err(LogError::Corrupt(_))
    ));
}

#[test]
fn file_log_is_wal_with_full_sync() {
    let (_dir, path, log) = temp_log();
    let mode: String = log
        .conn
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let sync: i64 = log
        .conn
        .pragma_query_value(None, "synchronous", |r| r.get(0))
        .unwrap();
    assert_eq!(sync, 2, "synchronous=FULL");
    let version: i64 = log
        .conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    drop(log);
    // A reader can also open the file when no writer is running.
    let reader = SqliteLog::open_reader(&path).unwrap();
    assert!(reader.room_heads().unwrap().is_empty());
}

#[test]
fn in_memory_log_works() {
    let mut log = SqliteLog::open_in_memory().unwrap();
    log.append_batch(&msgs("r", 1..=3)).unwrap();
    assert_eq!(log.count("r").unwrap(), 3);
    assert_eq!(log.room_heads().unwrap()[0].last_seq, 3);
}

#[test]
fn the_sqlite_log_passes_the_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.sqlite");
    super::conformance::run_all(&mut || Box::new(SqliteLog::open(&path).unwrap()));
}
