//! The relay's durable event log.
//!
//! Every room event the relay accepts is given a per-room sequence number
//! (by the relay's in-memory room state) and appended here *before* any
//! client is sent it. After a restart the relay rebuilds its room state from
//! [`EventLog::room_heads`] and serves backfill from [`EventLog::events_after`].
//! The relay never sees plaintext: an event body is opaque bytes and is
//! stored as a BLOB without interpretation.
//!
//! # Schema
//!
//! Two tables, versioned with `PRAGMA user_version` (currently
//! [`SCHEMA_VERSION`]; a database written by a newer relay is refused with
//! [`LogError::UnsupportedSchema`] instead of being misread):
//!
//! ```sql
//! CREATE TABLE rooms (
//!     room     TEXT    NOT NULL PRIMARY KEY,
//!     last_seq INTEGER NOT NULL,   -- highest seq ever appended, survives pruning
//!     epoch    INTEGER NOT NULL    -- epoch opened by the latest Commit (0 if none)
//! ) STRICT;
//! CREATE TABLE events (
//!     room           TEXT    NOT NULL,
//!     seq            INTEGER NOT NULL,  -- 1, 2, 3, ... per room, no gaps
//!     kind           INTEGER NOT NULL,  -- EventKind::to_i64
//!     sender         BLOB    NOT NULL,  -- 32-byte SHA-256 identity fingerprint
//!     epoch          INTEGER NOT NULL,
//!     received_at_ms INTEGER NOT NULL,  -- relay wall clock, ms since UNIX epoch
//!     body           BLOB    NOT NULL,  -- opaque ciphertext
//!     PRIMARY KEY (room, seq)
//! ) STRICT;
//! ```
//!
//! `events` is an ordinary rowid table (bodies can be several kilobytes, which
//! suits a rowid table better than a `WITHOUT ROWID` one); the primary-key
//! index on `(room, seq)` serves both backfill range scans and pruning.
//! SQLite integers are signed 64-bit, so every `u64` is converted with a
//! checked conversion: a value above `i64::MAX` is refused on write
//! ([`LogError::OutOfRange`]) and a negative value read back is
//! [`LogError::Corrupt`], as is a row whose sender is not 32 bytes or whose
//! kind is unknown.
//!
//! # Durability
//!
//! A file-backed log runs in WAL mode with `synchronous=FULL`: the WAL is
//! fsynced at every commit, so once [`EventLog::append_batch`] returns `Ok`
//! the batch survives a `kill -9` or a power loss. WAL also lets read-only
//! connections ([`EventLog::open_reader`]) serve backfill concurrently with
//! the writer without blocking it. Connections wait up to 5 seconds for a
//! lock (`busy_timeout`) before failing with `SQLITE_BUSY`.
//!
//! # Group commit
//!
//! The fsync is the expensive part of a durable append, so the relay collects
//! the events accepted during a short window and hands them to
//! [`EventLog::append_batch`], which writes them all — and the updated room
//! heads — in a single transaction: one fsync per batch, not per event. The
//! batch is all-or-nothing: if any event fails validation (for instance a
//! sequence number that does not continue its room, [`LogError::SeqGap`]) the
//! transaction is rolled back and nothing from the batch is stored.
//!
//! # Retention
//!
//! [`EventLog::prune`] applies a [`Retention`] policy to every room: at most
//! `max_events` rows per room and nothing received more than `max_age_ms`
//! ago. Two things are never lost to pruning: the room's most recent
//! `Commit` event (so a client can always discover the current epoch), and
//! the room's `last_seq` (kept in `rooms`, so sequence numbers are never
//! reused after the events carrying them have been deleted).

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};

/// Schema version stored in `PRAGMA user_version`.
pub const SCHEMA_VERSION: i64 = 2;

/// How long a connection waits for a competing lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

const SCHEMA_SQL: &str = "
CREATE TABLE IF NOT EXISTS rooms (
    room     TEXT    NOT NULL PRIMARY KEY,
    last_seq INTEGER NOT NULL,
    epoch    INTEGER NOT NULL,
    head     BLOB
) STRICT;
CREATE TABLE IF NOT EXISTS events (
    room           TEXT    NOT NULL,
    seq            INTEGER NOT NULL,
    kind           INTEGER NOT NULL,
    sender         BLOB    NOT NULL,
    epoch          INTEGER NOT NULL,
    received_at_ms INTEGER NOT NULL,
    body           BLOB    NOT NULL,
    PRIMARY KEY (room, seq)
) STRICT;
";

const SQL_ROOM_LAST_SEQ: &str = "SELECT last_seq FROM rooms WHERE room = ?1";
const SQL_INSERT_EVENT: &str = "INSERT INTO events \
     (room, seq, kind, sender, epoch, received_at_ms, body) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
const SQL_UPSERT_ROOM: &str = "INSERT INTO rooms (room, last_seq, epoch) VALUES (?1, ?2, ?3) \
     ON CONFLICT (room) DO UPDATE SET \
     last_seq = excluded.last_seq, epoch = max(rooms.epoch, excluded.epoch)";
const SQL_EVENTS_AFTER: &str = "SELECT seq, kind, sender, epoch, received_at_ms, body \
     FROM events WHERE room = ?1 AND seq > ?2 ORDER BY seq ASC LIMIT ?3";

/// What kind of room event a row is; the relay only needs to tell commits apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// An application message (ciphertext).
    Message = 0,
    /// A group commit that opens a new epoch.
    Commit = 1,
    /// A request to join the room.
    JoinRequest = 2,
    /// A member leaving the room.
    Leave = 3,
    /// Any other control event.
    Control = 4,
}

impl EventKind {
    /// The integer stored in the `kind` column.
    pub fn to_i64(self) -> i64 {
        match self {
            EventKind::Message => 0,
            EventKind::Commit => 1,
            EventKind::JoinRequest => 2,
            EventKind::Leave => 3,
            EventKind::Control => 4,
        }
    }

    /// Parses a stored `kind` column; `None` for an unknown value.
    pub fn from_i64(value: i64) -> Option<EventKind> {
        match value {
            0 => Some(EventKind::Message),
            1 => Some(EventKind::Commit),
            2 => Some(EventKind::JoinRequest),
            3 => Some(EventKind::Leave),
            4 => Some(EventKind::Control),
            _ => None,
        }
    }
}

/// One event to append.
///
/// `seq` is assigned by the caller (the relay's in-memory room state) and
/// must be exactly `last_seq(room)+1, +2, ...` within a batch for that room;
/// [`EventLog::append_batch`] verifies this and returns [`LogError::SeqGap`]
/// otherwise. The first event of a room has `seq == 1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedEvent {
    /// Room identifier.
    pub room: String,
    /// Per-room sequence number, starting at 1.
    pub seq: u64,
    /// Kind of event.
    pub kind: EventKind,
    /// SHA-256 fingerprint of the sender identity.
    pub sender: [u8; 32],
    /// For a `Commit`: the new epoch it opens; otherwise the epoch it was sent in.
    pub epoch: u64,
    /// Relay wall clock at acceptance, ms since the UNIX epoch.
    pub received_at_ms: u64,
    /// Opaque body (ciphertext); never interpreted by the relay.
    pub body: Vec<u8>,
}

/// Summary of one room as persisted, used to rebuild in-memory state at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomHead {
    /// Room identifier.
    pub room: String,
    /// Highest sequence number ever appended (unchanged by pruning).
    pub last_seq: u64,
    /// Epoch opened by the room's latest `Commit` (0 if it has none).
    pub epoch: u64,
    /// The room's hash-chain head after `last_seq` (DESIGN.md §5), if
    /// known (rooms logged by a version-1 relay have none).
    pub head: Option<[u8; 32]>,
}

/// Retention policy: keep at most `max_events` per room and nothing older
/// than `max_age_ms`. `None` means unlimited.
///
/// Pruning never deletes the room's most recent `Commit` event (so the
/// current epoch stays discoverable; that event may therefore make a room
/// hold `max_events + 1` rows, or keep one row older than `max_age_ms`) and
/// never resets sequence numbers (`last_seq` stays in the rooms table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Retention {
    /// Maximum number of events kept per room.
    pub max_events: Option<u64>,
    /// Maximum age of a kept event, in milliseconds, relative to `now_ms`.
    pub max_age_ms: Option<u64>,
}

/// Errors from the event log.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// An error reported by SQLite (I/O, locking, constraint, ...).
    #[error("event log database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// An appended event does not continue its room's sequence.
    #[error("event log: room {room:?} expected seq {expected}, got {got}")]
    SeqGap {
        /// Room of the offending event.
        room: String,
        /// The sequence number that would have continued the room.
        expected: u64,
        /// The sequence number the event carried.
        got: u64,
    },
    /// A stored row does not parse back into an event or head.
    #[error("event log is corrupt: {0}")]
    Corrupt(String),
    /// A `u64` field is too large to be stored (SQLite integers are `i64`).
    #[error("event log: {field} = {value} exceeds the storable maximum {max}", max = i64::MAX)]
    OutOfRange {
        /// Name of the field.
        field: &'static str,
        /// The offending value.
        value: u64,
    },
    /// The database was written by a newer relay with an unknown schema.
    #[error(
        "event log schema version {found} is newer than the version {supported} this relay \
         understands; refusing to open it (upgrade hush-server)"
    )]
    UnsupportedSchema {
        /// `user_version` found in the database.
        found: i64,
        /// Highest version this code understands.
        supported: i64,
    },
    /// A reader was opened on a database whose schema was never created.
    #[error("event log has no schema yet (user_version 0); open it with the writer first")]
    Uninitialized,
}

/// Converts a `u64` to the `i64` SQLite stores, refusing values above `i64::MAX`.
fn to_sql(field: &'static str, value: u64) -> Result<i64, LogError> {
    i64::try_from(value).map_err(|_| LogError::OutOfRange { field, value })
}

/// Converts a stored `i64` back to `u64`, treating negatives as corruption.
fn from_sql(field: &'static str, value: i64) -> Result<u64, LogError> {
    u64::try_from(value)
        .map_err(|_| LogError::Corrupt(format!("negative {field} {value} in event log")))
}

/// A connection to the event log database: the single writer, or a
/// read-only reader (see [`EventLog::open_reader`]).
#[derive(Debug)]
pub struct EventLog {
    conn: Connection,
}

impl EventLog {
    /// Opens or creates the database at `path` (the parent directory must
    /// exist) in WAL mode with `synchronous=FULL` and a 5 s busy timeout,
    /// creating the schema if missing. A database with a newer schema
    /// version is refused with [`LogError::UnsupportedSchema`].
    pub fn open(path: &Path) -> Result<Self, LogError> {
        // No SQLITE_OPEN_URI: the path is always a plain file name.
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        // Check the version before touching anything, so a newer database
        // is left exactly as it was.
        check_version(&conn, false)?;
        let mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(
                path = %path.display(),
                %mode,
                "event log could not switch to WAL mode; readers will block the writer"
            );
        }
        conn.pragma_update(None, "synchronous", "FULL")?;
        let mut log = EventLog { conn };
        log.ensure_schema()?;
        tracing::debug!(path = %path.display(), "event log opened");
        Ok(log)
    }

    /// Same schema, in memory (for benchmarks and tests). Nothing is
    /// durable, and [`EventLog::open_reader`] cannot attach to it.
    pub fn open_in_memory() -> Result<Self, LogError> {
        let conn = Connection::open_in_memory()?;
        let mut log = EventLog { conn };
        log.ensure_schema()?;
        Ok(log)
    }

    /// A second, read-only connection to the file-backed log at `path`, for
    /// backfill reads concurrent with the writer (WAL mode means neither
    /// blocks the other). The database must already have been created by
    /// [`EventLog::open`]; writes through a reader ([`EventLog::append_batch`],
    /// [`EventLog::prune`]) fail with a SQLite "readonly database" error.
    /// An in-memory log has no path and therefore cannot have readers.
    pub fn open_reader(path: &Path) -> Result<Self, LogError> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        check_version(&conn, true)?;
        Ok(EventLog { conn })
    }

    /// Creates the schema if `user_version` is still 0. Done inside an
    /// immediate transaction, re-checking the version, so two processes
    /// opening a fresh file at once cannot both run the migration.
    fn ensure_schema(&mut self) -> Result<(), LogError> {
        if check_version(&self.conn, false)? == SCHEMA_VERSION {
            return Ok(());
        }
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        match check_version(&tx, false)? {
            0 => {
                tx.execute_batch(SCHEMA_SQL)?;
                tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
                tracing::info!(version = SCHEMA_VERSION, "event log schema created");
            }
            1 => {
                // Version 2 adds each room's hash-chain head. Rooms logged
                // before it have none, and the relay signs no checkpoint
                // for them.
                tx.execute_batch("ALTER TABLE rooms ADD COLUMN head BLOB")?;
                tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
                tracing::info!(version = SCHEMA_VERSION, "event log schema upgraded");
            }
            _ => {}
        }
        tx.commit()?;
        Ok(())
    }

    /// Appends all `events` in ONE transaction (group commit) and updates
    /// each room's head: `last_seq` becomes the room's last seq in the batch
    /// and `epoch` becomes the largest epoch among the batch's `Commit`
    /// events for that room (never lowering the stored epoch).
    ///
    /// Events of different rooms may be interleaved; within a room they must
    /// continue the stored `last_seq` without gaps ([`LogError::SeqGap`]).
    /// Either every event is durable when this returns `Ok`, or none is
    /// stored. An empty batch is a no-op.
    pub fn append_batch(&mut self, events: &[LoggedEvent]) -> Result<(), LogError> {
        self.append_batch_with_heads(events, &[])
    }

    /// [`Self::append_batch`], also recording each room's new hash-chain
    /// head in the same transaction, so that a head always matches the
    /// room's `last_seq`, across crashes too.
    ///
    /// # Errors
    /// As [`Self::append_batch`].
    pub fn append_batch_with_heads(
        &mut self,
        events: &[LoggedEvent],
        heads: &[(&str, [u8; 32])],
    ) -> Result<(), LogError> {
        if events.is_empty() {
            return Ok(());
        }
        /// Per-room progress within the batch.
        struct Pending {
            last_seq: u64,
            commit_epoch: Option<u64>,
        }

        // Dropping `tx` on any early return rolls the whole batch back.
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut rooms: HashMap<&str, Pending> = HashMap::new();
        {
            let mut last_seq_stmt = tx.prepare_cached(SQL_ROOM_LAST_SEQ)?;
            let mut insert = tx.prepare_cached(SQL_INSERT_EVENT)?;
            for ev in events {
                let pending = match rooms.get_mut(ev.room.as_str()) {
                    Some(p) => p,
                    None => {
                        let stored: Option<i64> = last_seq_stmt
                            .query_row([ev.room.as_str()], |row| row.get(0))
                            .optional()?;
                        let last_seq = match stored {
                            Some(v) => from_sql("rooms.last_seq", v)?,
                            None => 0,
                        };
                        rooms.entry(ev.room.as_str()).or_insert(Pending {
                            last_seq,
                            commit_epoch: None,
                        })
                    }
                };
                let expected = pending
                    .last_seq
                    .checked_add(1)
                    .ok_or(LogError::OutOfRange {
                        field: "seq",
                        value: pending.last_seq,
                    })?;
                if ev.seq != expected {
                    return Err(LogError::SeqGap {
                        room: ev.room.clone(),
                        expected,
                        got: ev.seq,
                    });
                }
                insert.execute(params![
                    ev.room,
                    to_sql("seq", ev.seq)?,
                    ev.kind.to_i64(),
                    &ev.sender[..],
                    to_sql("epoch", ev.epoch)?,
                    to_sql("received_at_ms", ev.received_at_ms)?,
                    ev.body.as_slice(),
                ])?;
                pending.last_seq = ev.seq;
                if ev.kind == EventKind::Commit {
                    pending.commit_epoch =
                        Some(pending.commit_epoch.map_or(ev.epoch, |e| e.max(ev.epoch)));
                }
            }
            let mut upsert = tx.prepare_cached(SQL_UPSERT_ROOM)?;
            for (room, pending) in &rooms {
                upsert.execute(params![
                    room,
                    to_sql("seq", pending.last_seq)?,
                    to_sql("epoch", pending.commit_epoch.unwrap_or(0))?,
                ])?;
            }
            let mut set_head = tx.prepare_cached("UPDATE rooms SET head = ?2 WHERE room = ?1")?;
            for (room, head) in heads {
                set_head.execute(params![room, &head[..]])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// All rooms' heads, ordered by room name (for rebuilding state at startup).
    pub fn room_heads(&self) -> Result<Vec<RoomHead>, LogError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT room, last_seq, epoch, head FROM rooms ORDER BY room")?;
        let mut rows = stmt.query([])?;
        let mut heads = Vec::new();
        while let Some(row) = rows.next()? {
            heads.push(RoomHead {
                room: row.get(0)?,
                last_seq: from_sql("rooms.last_seq", row.get(1)?)?,
                epoch: from_sql("rooms.epoch", row.get(2)?)?,
                head: row
                    .get::<_, Option<Vec<u8>>>(3)?
                    .and_then(|h| <[u8; 32]>::try_from(h.as_slice()).ok()),
            });
        }
        Ok(heads)
    }

    /// Events of `room` with `seq > after_seq`, in ascending seq order, at
    /// most `limit` of them. Pruned events are simply absent, so the first
    /// returned seq may be larger than `after_seq + 1`.
    pub fn events_after(
        &self,
        room: &str,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<LoggedEvent>, LogError> {
        self.events_after_capped(room, after_seq, limit, usize::MAX)
    }

    /// Like [`Self::events_after`], but stops once the bodies read add up
    /// to `max_bytes` (always returning at least one event if there is
    /// one), so that one read never holds more than about `max_bytes`.
    ///
    /// # Errors
    /// As [`Self::events_after`].
    pub fn events_after_capped(
        &self,
        room: &str,
        after_seq: u64,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Vec<LoggedEvent>, LogError> {
        // No stored seq exceeds i64::MAX, so nothing lies after a larger one.
        let Ok(after) = i64::try_from(after_seq) else {
            return Ok(Vec::new());
        };
        if limit == 0 {
            return Ok(Vec::new());
        }
        // `limit` is only an upper bound, so saturating is exact.
        let sql_limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut stmt = self.conn.prepare_cached(SQL_EVENTS_AFTER)?;
        let mut rows = stmt.query(params![room, after, sql_limit])?;
        let mut out = Vec::new();
        let mut bytes = 0usize;
        while let Some(row) = rows.next()? {
            if bytes >= max_bytes {
                break;
            }
            let seq = from_sql("events.seq", row.get(0)?)?;
            let kind_raw: i64 = row.get(1)?;
            let kind = EventKind::from_i64(kind_raw).ok_or_else(|| {
                LogError::Corrupt(format!(
                    "room {room:?} seq {seq}: unknown event kind {kind_raw}"
                ))
            })?;
            let sender_raw: Vec<u8> = row.get(2)?;
            let sender = <[u8; 32]>::try_from(sender_raw.as_slice()).map_err(|_| {
                LogError::Corrupt(format!(
                    "room {room:?} seq {seq}: sender is {} bytes, expected 32",
                    sender_raw.len()
                ))
            })?;
            out.push(LoggedEvent {
                room: room.to_owned(),
                seq,
                kind,
                sender,
                epoch: from_sql("events.epoch", row.get(3)?)?,
                received_at_ms: from_sql("events.received_at_ms", row.get(4)?)?,
                body: row.get(5)?,
            });
            bytes = bytes.saturating_add(out.last().map_or(0, |e| e.body.len()));
        }
        Ok(out)
    }

    /// Applies `retention` to every room, in one transaction, and returns
    /// how many event rows were deleted. Events count as too old when
    /// `received_at_ms < now_ms - max_age_ms`. The most recent `Commit` of
    /// each room is always kept and `last_seq` is never changed.
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
            let mut latest_commit =
                tx.prepare_cached("SELECT max(seq) FROM events WHERE room = ?1 AND kind = ?2")?;
            // The (max_events+1)-th newest row: it and everything older goes.
            let mut nth_newest = tx.prepare_cached(
                "SELECT seq FROM events WHERE room = ?1 ORDER BY seq DESC LIMIT 1 OFFSET ?2",
            )?;
            let mut delete_upto_seq = tx.prepare_cached(
                "DELETE FROM events WHERE room = ?1 AND seq <= ?2 AND seq IS NOT ?3",
            )?;
            let mut delete_older = tx.prepare_cached(
                "DELETE FROM events WHERE room = ?1 AND received_at_ms <= ?2 AND seq IS NOT ?3",
            )?;
            for room in &rooms {
                let keep: Option<i64> = latest_commit
                    .query_row(params![room, EventKind::Commit.to_i64()], |row| row.get(0))?;
                let mut room_deleted: usize = 0;
                if let Some(max_events) = retention.max_events {
                    // An offset beyond i64::MAX can never match a row.
                    if let Ok(offset) = i64::try_from(max_events) {
                        let cutoff: Option<i64> = nth_newest
                            .query_row(params![room, offset], |row| row.get(0))
                            .optional()?;
                        if let Some(cutoff) = cutoff {
                            room_deleted += delete_upto_seq.execute(params![room, cutoff, keep])?;
                        }
                    }
                }
                if let Some(bound) = age_bound {
                    room_deleted += delete_older.execute(params![room, bound, keep])?;
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

    /// Number of stored events in `room` (tests, diagnostics).
    pub fn count(&self, room: &str) -> Result<u64, LogError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT count(*) FROM events WHERE room = ?1")?;
        let n: i64 = stmt.query_row([room], |row| row.get(0))?;
        from_sql("count", n)
    }
}

/// Reads `user_version` and checks it is one this code understands.
/// `require_schema` additionally refuses an uninitialised (version 0) database.
fn check_version(conn: &Connection, require_schema: bool) -> Result<i64, LogError> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(LogError::UnsupportedSchema {
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    if version < 0 {
        return Err(LogError::Corrupt(format!(
            "invalid schema version {version} in PRAGMA user_version"
        )));
    }
    if version == 0 && require_schema {
        return Err(LogError::Uninitialized);
    }
    Ok(version)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use tempfile::TempDir;

    fn ev(room: &str, seq: u64, kind: EventKind, epoch: u64, at: u64) -> LoggedEvent {
        LoggedEvent {
            room: room.to_owned(),
            seq,
            kind,
            sender: [seq as u8; 32],
            epoch,
            received_at_ms: at,
            body: format!("{room}-{seq}").into_bytes(),
        }
    }

    fn msgs(room: &str, seqs: std::ops::RangeInclusive<u64>) -> Vec<LoggedEvent> {
        seqs.map(|s| ev(room, s, EventKind::Message, 0, 1_000 + s))
            .collect()
    }

    fn seqs(events: &[LoggedEvent]) -> Vec<u64> {
        events.iter().map(|e| e.seq).collect()
    }

    fn temp_log() -> (TempDir, std::path::PathBuf, EventLog) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.sqlite");
        let log = EventLog::open(&path).unwrap();
        (dir, path, log)
    }

    #[test]
    fn event_kind_round_trips() {
        for kind in [
            EventKind::Message,
            EventKind::Commit,
            EventKind::JoinRequest,
            EventKind::Leave,
            EventKind::Control,
        ] {
            assert_eq!(EventKind::from_i64(kind.to_i64()), Some(kind));
        }
        assert_eq!(EventKind::from_i64(5), None);
        assert_eq!(EventKind::from_i64(-1), None);
    }

    #[test]
    fn append_then_read_in_order_with_limit_and_after() {
        let (_dir, _path, mut log) = temp_log();
        let batch = msgs("r", 1..=10);
        log.append_batch(&batch[..4]).unwrap();
        log.append_batch(&batch[4..]).unwrap();

        let all = log.events_after("r", 0, 100).unwrap();
        assert_eq!(all, batch);
        assert_eq!(seqs(&log.events_after("r", 0, 3).unwrap()), vec![1, 2, 3]);
        assert_eq!(
            seqs(&log.events_after("r", 7, 100).unwrap()),
            vec![8, 9, 10]
        );
        assert_eq!(seqs(&log.events_after("r", 4, 2).unwrap()), vec![5, 6]);
        assert!(log.events_after("r", 10, 100).unwrap().is_empty());
        assert!(log.events_after("r", 0, 0).unwrap().is_empty());
        assert!(log.events_after("r", u64::MAX, 10).unwrap().is_empty());
        assert_eq!(log.events_after("r", 0, usize::MAX).unwrap().len(), 10);
        assert!(log.events_after("nope", 0, 10).unwrap().is_empty());
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
            seqs(&log.events_after("r", 0, 100).unwrap()),
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

        let mut log = EventLog::open(&path).unwrap();
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
        assert_eq!(log.events_after("a", 0, 100).unwrap(), batch[..4].to_vec());
        assert_eq!(log.events_after("b", 0, 100).unwrap(), batch[4..].to_vec());
        // And appending continues the sequence after the restart.
        log.append_batch(&msgs("a", 5..=5)).unwrap();
        assert_eq!(log.count("a").unwrap(), 5);
        drop(log);
        drop(dir);
    }

    #[test]
    fn room_heads_track_latest_commit_epoch() {
        let log_mem = EventLog::open_in_memory().unwrap();
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
    fn prune_by_count_keeps_latest_commit_and_last_seq() {
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
        // Rows 1, 2, 4, 5 go; the commit at 3 survives beyond the limit.
        assert_eq!(log.prune(keep5, 0).unwrap(), 4);
        assert_eq!(
            seqs(&log.events_after("r", 0, 100).unwrap()),
            vec![3, 6, 7, 8, 9, 10]
        );
        // Idempotent.
        assert_eq!(log.prune(keep5, 0).unwrap(), 0);

        let head = &log.room_heads().unwrap()[0];
        assert_eq!((head.last_seq, head.epoch), (10, 1));

        // The sequence continues after pruning.
        log.append_batch(&msgs("r", 11..=12)).unwrap();
        assert_eq!(log.room_heads().unwrap()[0].last_seq, 12);

        // max_events = 0 leaves only the latest commit.
        let keep0 = Retention {
            max_events: Some(0),
            max_age_ms: None,
        };
        assert_eq!(log.prune(keep0, 0).unwrap(), 7);
        let left = log.events_after("r", 0, 100).unwrap();
        assert_eq!(seqs(&left), vec![3]);
        assert_eq!(left[0].kind, EventKind::Commit);
        assert_eq!(log.room_heads().unwrap()[0].last_seq, 12);
        log.append_batch(&msgs("r", 13..=13)).unwrap();
        assert_eq!(seqs(&log.events_after("r", 0, 100).unwrap()), vec![3, 13]);

        // A huge limit deletes nothing.
        let keep_all = Retention {
            max_events: Some(u64::MAX),
            max_age_ms: None,
        };
        assert_eq!(log.prune(keep_all, 0).unwrap(), 0);
    }

    #[test]
    fn prune_by_age_keeps_latest_commit() {
        let (_dir, _path, mut log) = temp_log();
        // received_at = 100 * seq
        let batch: Vec<LoggedEvent> = (1..=10)
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
        // older but the latest commit (4) is kept, the earlier commit (2) is not.
        assert_eq!(log.prune(max_age, 1_000).unwrap(), 3);
        assert_eq!(
            seqs(&log.events_after("r", 0, 100).unwrap()),
            vec![4, 5, 6, 7, 8, 9, 10]
        );
        // now smaller than the max age: nothing is old.
        assert_eq!(log.prune(max_age, 100).unwrap(), 0);
        // Far in the future everything but the latest commit goes.
        assert_eq!(log.prune(max_age, u64::MAX).unwrap(), 6);
        assert_eq!(seqs(&log.events_after("r", 0, 100).unwrap()), vec![4]);
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
        assert_eq!(seqs(&log.events_after("r", 0, 100).unwrap()), vec![4, 11]);

        // Both limits together, across rooms; a room without commits can be emptied.
        log.append_batch(&msgs("q", 1..=4)).unwrap(); // received 1001..=1004
        let both = Retention {
            max_events: Some(3),
            max_age_ms: Some(10),
        };
        // q loses seq 1 to the count limit and seq 2 (received 1002 < 1003) to
        // the age limit; r (commit 4, message 11 received 1011) is within both.
        assert_eq!(log.prune(both, 1_013).unwrap(), 2);
        assert_eq!(seqs(&log.events_after("q", 0, 100).unwrap()), vec![3, 4]);
        assert_eq!(seqs(&log.events_after("r", 0, 100).unwrap()), vec![4, 11]);
        let max_age0 = Retention {
            max_events: None,
            max_age_ms: Some(0),
        };
        assert_eq!(log.prune(max_age0, 2_000).unwrap(), 3);
        assert_eq!(seqs(&log.events_after("r", 0, 100).unwrap()), vec![4]);
        assert_eq!(log.count("q").unwrap(), 0);
        assert_eq!(log.room_heads().unwrap()[0].last_seq, 4);
        log.append_batch(&msgs("q", 5..=5)).unwrap();
    }

    #[test]
    fn reader_sees_committed_events() {
        let (_dir, path, mut writer) = temp_log();
        let reader = EventLog::open_reader(&path).unwrap();
        assert!(reader.room_heads().unwrap().is_empty());

        writer.append_batch(&msgs("r", 1..=3)).unwrap();
        assert_eq!(
            seqs(&reader.events_after("r", 0, 10).unwrap()),
            vec![1, 2, 3]
        );
        writer.append_batch(&msgs("r", 4..=4)).unwrap();
        assert_eq!(seqs(&reader.events_after("r", 3, 10).unwrap()), vec![4]);
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
            EventLog::open_reader(&missing),
            Err(LogError::Sqlite(_))
        ));
        assert!(!missing.exists());

        let blank = dir.path().join("blank.sqlite");
        Connection::open(&blank)
            .unwrap()
            .execute_batch("CREATE TABLE t (x)")
            .unwrap();
        assert!(matches!(
            EventLog::open_reader(&blank),
            Err(LogError::Uninitialized)
        ));
    }

    #[test]
    fn a_version_1_log_is_upgraded_in_place_and_keeps_its_events() {
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
        let mut log = EventLog::open(&path).unwrap();
        let heads = log.room_heads().unwrap();
        assert_eq!(heads.len(), 1);
        assert_eq!((heads[0].last_seq, heads[0].head), (1, None));
        assert_eq!(log.events_after("old", 0, 10).unwrap().len(), 1);
        let e = ev("old", 2, EventKind::Message, 0, 6);
        log.append_batch_with_heads(&[e], &[("old", [7; 32])])
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

        let err = EventLog::open(&path).unwrap_err();
        assert!(
            matches!(
                err,
                LogError::UnsupportedSchema {
                    found: 3,
                    supported: 2
                }
            ),
            "{err:?}"
        );
        let msg = err.to_string();
        assert!(
            msg.contains("schema version 3") && msg.contains("newer"),
            "{msg}"
        );
        assert!(matches!(
            EventLog::open_reader(&path),
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
        assert_eq!(seqs(&log.events_after("a", 0, 10).unwrap()), vec![1, 2, 3]);
        assert_eq!(
            log.events_after("b", 0, 10).unwrap(),
            vec![batch[1].clone(), batch[4].clone()]
        );
        assert_eq!(log.count("c").unwrap(), 1);

        // Pruning one room's worth of history doesn't touch the others' seqs.
        log.append_batch(&msgs("c", 2..=6)).unwrap();
        let keep2 = Retention {
            max_events: Some(2),
            max_age_ms: None,
        };
        // a loses 1 (its commit 3 is among the newest two anyway), c loses 1..=4.
        assert_eq!(log.prune(keep2, 0).unwrap(), 5);
        assert_eq!(seqs(&log.events_after("a", 0, 10).unwrap()), vec![2, 3]);
        assert_eq!(seqs(&log.events_after("b", 0, 10).unwrap()), vec![1, 2]);
        assert_eq!(seqs(&log.events_after("c", 0, 10).unwrap()), vec![5, 6]);
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
        let mut log = EventLog::open_in_memory().unwrap();
        log.append_batch(&msgs("r", 1..=1)).unwrap();
        log.conn
            .execute("UPDATE events SET sender = x'0102' WHERE seq = 1", [])
            .unwrap();
        let err = log.events_after("r", 0, 10).unwrap_err();
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
        let err = log.events_after("r", 0, 10).unwrap_err();
        assert!(
            matches!(err, LogError::Corrupt(ref m) if m.contains("kind 99")),
            "{err:?}"
        );

        log.conn
            .execute("UPDATE events SET kind = 0, epoch = -1 WHERE seq = 1", [])
            .unwrap();
        assert!(matches!(
            log.events_after("r", 0, 10),
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
        let reader = EventLog::open_reader(&path).unwrap();
        assert!(reader.room_heads().unwrap().is_empty());
    }

    #[test]
    fn in_memory_log_works() {
        let mut log = EventLog::open_in_memory().unwrap();
        log.append_batch(&msgs("r", 1..=3)).unwrap();
        assert_eq!(log.count("r").unwrap(), 3);
        assert_eq!(log.room_heads().unwrap()[0].last_seq, 3);
    }
}
