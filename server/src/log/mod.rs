//! The relay's durable event log.
//!
//! Every room event the relay accepts is given a per-room sequence number
//! (by the relay's in-memory room state) and appended here *before* any
//! client is sent it. After a restart the relay rebuilds its room state from
//! [`EventLog::room_head`] and serves backfill from [`EventLog::events_after`].
//! The relay never sees plaintext: an event body is opaque bytes and is
//! stored as a BLOB without interpretation.
//!
//! The sequencer and the backfill readers see the log only through two
//! traits, [`EventLog`] (the writer) and [`LogReader`] (backfill), so that
//! one relay can keep its log in SQLite ([`SqliteLog`], below: one machine,
//! no extra service, the default) and a cluster of relays can share one in
//! NATS JetStream (`hush server --cluster`). `log/conformance.rs` holds
//! the one suite of cases every implementation must pass.
//!
//! # Schema
//!
//! Two tables, versioned with `PRAGMA user_version` (currently
//! [`SCHEMA_VERSION`]; a database written by a newer relay is refused with
//! [`LogError::UnsupportedSchema`] instead of being misread, and one that
//! holds protocol 1 rooms with [`LogError::OldProtocol`]):
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
//!     kind           INTEGER NOT NULL,  -- EventKind::code
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
//! fsynced at every commit, so once [`SqliteLog::append_batch`] returns `Ok`
//! the batch survives a `kill -9` or a power loss. WAL also lets read-only
//! connections ([`SqliteLog::open_reader`]) serve backfill concurrently with
//! the writer without blocking it. Connections wait up to 5 seconds for a
//! lock (`busy_timeout`) before failing with `SQLITE_BUSY`.
//!
//! # Group commit
//!
//! The fsync is the expensive part of a durable append, so the relay collects
//! the events accepted during a short window and hands them to
//! [`SqliteLog::append_batch`], which writes them all — and the updated room
//! heads — in a single transaction: one fsync per batch, not per event. The
//! batch is all-or-nothing: if any event fails validation (for instance a
//! sequence number that does not continue its room, [`LogError::SeqGap`]) the
//! transaction is rolled back and nothing from the batch is stored.
//!
//! # Retention
//!
//! [`SqliteLog::prune`] applies a [`Retention`] policy to every room: at most
//! `max_events` rows per room and nothing received more than `max_age_ms`
//! ago. Two things are never lost to pruning: the room's most recent
//! `Commit` event (so a client can always discover the current epoch), and
//! the room's `last_seq` (kept in `rooms`, so sequence numbers are never
//! reused after the events carrying them have been deleted).

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use hush_crypto::Fingerprint;
use hush_proto::{EventKind, RoomEvent, RoomName, SequencedEvent};
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};

#[cfg(test)]
pub(crate) mod conformance;
pub mod jetstream;
mod reader_pool;
mod retention;

pub(crate) use reader_pool::ReaderPool;
pub use retention::{PruneCursor, PruneStep, Retention};

/// Schema version stored in `PRAGMA user_version`.
pub const SCHEMA_VERSION: i64 = 3;

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

/// Summary of one room as persisted, used to rebuild in-memory state at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomHead {
    /// Room identifier.
    pub room: String,
    /// Highest sequence number ever appended (unchanged by pruning).
    pub last_seq: u64,
    /// Epoch opened by the room's latest `Commit` (0 if it has none).
    pub epoch: u64,
    /// The room's hash-chain head after `last_seq` (docs/PROTOCOL.md
    /// §9.2.4), if known (rooms logged by a version-1 relay have none).
    pub head: Option<[u8; 32]>,
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
    /// The database holds rooms of protocol 1 (schema 1 or 2), whose
    /// membership history protocol 2 members cannot follow.
    #[error(
        "event log schema version {found} holds rooms of hush protocol 1, whose membership history \
         protocol 2 clients cannot follow; move the data folder aside to start afresh (or keep \
         running hush 0.1 on it)"
    )]
    OldProtocol {
        /// `user_version` found in the database.
        found: i64,
    },
    /// A reader was opened on a database whose schema was never created.
    #[error("event log has no schema yet (user_version 0); open it with the writer first")]
    Uninitialized,
    /// The cluster log (NATS JetStream) failed: unreachable, timed out,
    /// or refused the request.
    #[error("cluster event log (NATS JetStream): {0}")]
    Cluster(String),
    /// Another relay appended to `room` first (a shared log only): the
    /// caller's head for it is stale and must be read again.
    #[error("event log: room {room:?} moved on under another relay; its head must be read again")]
    Conflict {
        /// The room whose head moved.
        room: String,
    },
    /// A shared log failed part-way through a batch: the first `durable`
    /// events of it are stored (and will be delivered), the rest are not.
    #[error("event log: only {durable} events of the batch were stored: {cause}")]
    Partial {
        /// How many events, from the start of the batch, are durable.
        durable: usize,
        /// Why the rest were not stored.
        cause: Box<LogError>,
    },
}

/// What the sequencer and the backfill readers need of a durable log:
/// the one contract both implementations keep ([`SqliteLog`], the embedded
/// default, and the JetStream log of `hush server --cluster`), checked by
/// one conformance suite (`log/conformance.rs`) run against each.
///
/// The contract, in the words of the SQLite log that defined it:
/// - per room, seqs are `1, 2, 3, ...` with no gap; an append that does
///   not continue its room is refused ([`LogError::SeqGap`]) and stores
///   nothing of its batch;
/// - once an append returns `Ok`, every event of it is durable (SQLite:
///   fsynced; JetStream: acknowledged by the stream's quorum), and only
///   then may anyone be sent it;
/// - retention deletes messages only, never membership events, and never
///   lowers a room's `last_seq`;
/// - bodies come back byte for byte.
///
/// A log shared by several writers (JetStream) may also fail an append
/// part-way, because another writer appended to a room first: it then
/// says how much of the batch is durable ([`LogError::Partial`]).
pub trait EventLog: Send {
    /// Appends `events` and records each room's new hash-chain head (see
    /// [`SqliteLog::append_batch_with_heads`]).
    ///
    /// # Errors
    /// [`LogError::SeqGap`] (nothing stored), a storage failure (nothing
    /// stored), or [`LogError::Partial`] (a prefix of the batch stored).
    fn append_batch_with_heads(
        &mut self,
        events: &[SequencedEvent],
        heads: &[(&str, [u8; 32])],
    ) -> Result<(), LogError>;

    /// [`Self::append_batch_with_heads`] without heads.
    ///
    /// # Errors
    /// As [`Self::append_batch_with_heads`].
    fn append_batch(&mut self, events: &[SequencedEvent]) -> Result<(), LogError> {
        self.append_batch_with_heads(events, &[])
    }

    /// One room's head, if the log knows the room.
    ///
    /// # Errors
    /// A storage failure, or a head that does not parse.
    fn room_head(&self, room: &str) -> Result<Option<RoomHead>, LogError>;

    /// All rooms' heads, ordered by room name.
    ///
    /// # Errors
    /// As [`Self::room_head`].
    fn room_heads(&self) -> Result<Vec<RoomHead>, LogError>;

    /// Events of `room` with `seq > after_seq`, ascending, at most `limit`,
    /// stopping once the bodies add up to `max_bytes` (at least one event
    /// if there is one).
    ///
    /// # Errors
    /// A storage failure, or a stored event that does not parse.
    fn events_after_capped(
        &self,
        room: &RoomName,
        after_seq: u64,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Vec<SequencedEvent>, LogError>;

    /// [`Self::events_after_capped`] without a byte cap.
    ///
    /// # Errors
    /// As [`Self::events_after_capped`].
    fn events_after(
        &self,
        room: &RoomName,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<SequencedEvent>, LogError> {
        self.events_after_capped(room, after_seq, limit, usize::MAX)
    }

    /// One bounded step of retention (see [`SqliteLog::prune_chunk`]).
    ///
    /// # Errors
    /// A storage failure; nothing of this chunk is deleted then.
    fn prune_chunk(
        &mut self,
        retention: Retention,
        now_ms: u64,
        cursor: &mut PruneCursor,
        max_events: usize,
    ) -> Result<PruneStep, LogError>;

    /// Applies `retention` to every room, chunk by chunk; returns how many
    /// messages were deleted.
    ///
    /// # Errors
    /// As [`Self::prune_chunk`]; chunks already done stay pruned.
    fn prune(&mut self, retention: Retention, now_ms: u64) -> Result<u64, LogError> {
        let mut cursor = PruneCursor::default();
        while !self
            .prune_chunk(
                retention,
                now_ms,
                &mut cursor,
                retention::DEFAULT_CHUNK_EVENTS,
            )?
            .done
        {}
        Ok(cursor.deleted())
    }

    /// Number of stored events in `room`.
    ///
    /// # Errors
    /// A storage failure.
    fn count(&self, room: &str) -> Result<u64, LogError>;
}

impl EventLog for SqliteLog {
    fn append_batch_with_heads(
        &mut self,
        events: &[SequencedEvent],
        heads: &[(&str, [u8; 32])],
    ) -> Result<(), LogError> {
        SqliteLog::append_batch_with_heads(self, events, heads)
    }

    fn room_head(&self, room: &str) -> Result<Option<RoomHead>, LogError> {
        SqliteLog::room_head(self, room)
    }

    fn room_heads(&self) -> Result<Vec<RoomHead>, LogError> {
        SqliteLog::room_heads(self)
    }

    fn events_after_capped(
        &self,
        room: &RoomName,
        after_seq: u64,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Vec<SequencedEvent>, LogError> {
        SqliteLog::events_after_capped(self, room, after_seq, limit, max_bytes)
    }

    fn prune_chunk(
        &mut self,
        retention: Retention,
        now_ms: u64,
        cursor: &mut PruneCursor,
        max_events: usize,
    ) -> Result<PruneStep, LogError> {
        SqliteLog::prune_chunk(self, retention, now_ms, cursor, max_events)
    }

    fn count(&self, room: &str) -> Result<u64, LogError> {
        SqliteLog::count(self, room)
    }
}

/// Backfill reads, concurrent with the writer: for SQLite a pool of
/// read-only connections ([`ReaderPool`]), for JetStream a handle on the
/// same stream. Called on the blocking pool.
pub trait LogReader: Send + Sync {
    /// As [`EventLog::events_after_capped`].
    ///
    /// # Errors
    /// As [`EventLog::events_after_capped`].
    fn events_after_capped(
        &self,
        room: &RoomName,
        after_seq: u64,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Vec<SequencedEvent>, LogError>;
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

/// A connection to the SQLite event log database: the single writer, or a
/// read-only reader (see [`SqliteLog::open_reader`]).
#[derive(Debug)]
pub struct SqliteLog {
    conn: Connection,
}

impl SqliteLog {
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
        let mut log = SqliteLog { conn };
        log.ensure_schema()?;
        tracing::debug!(path = %path.display(), "event log opened");
        Ok(log)
    }

    /// Same schema, in memory (for benchmarks and tests). Nothing is
    /// durable, and [`SqliteLog::open_reader`] cannot attach to it.
    pub fn open_in_memory() -> Result<Self, LogError> {
        let conn = Connection::open_in_memory()?;
        let mut log = SqliteLog { conn };
        log.ensure_schema()?;
        Ok(log)
    }

    /// A second, read-only connection to the file-backed log at `path`, for
    /// backfill reads concurrent with the writer (WAL mode means neither
    /// blocks the other). The database must already have been created by
    /// [`SqliteLog::open`]; writes through a reader ([`SqliteLog::append_batch`],
    /// [`SqliteLog::prune`]) fail with a SQLite "readonly database" error.
    /// An in-memory log has no path and therefore cannot have readers.
    pub fn open_reader(path: &Path) -> Result<Self, LogError> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        check_version(&conn, true)?;
        Ok(SqliteLog { conn })
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
            found @ (1 | 2) => {
                // Versions 1 and 2 held protocol 1 rooms. An empty one is
                // taken over; one with events is refused, since protocol 2
                // members judge commits differently (PROTOCOL.md §9.2.6).
                let events: i64 = tx.query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))?;
                if events > 0 {
                    return Err(LogError::OldProtocol { found });
                }
                if found == 1 {
                    tx.execute_batch("ALTER TABLE rooms ADD COLUMN head BLOB")?;
                }
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
    /// Each `seq` is assigned by the caller (the relay's in-memory room
    /// state); the first event of a room has `seq == 1`. Events of
    /// different rooms may be interleaved; within a room they must
    /// continue the stored `last_seq` without gaps ([`LogError::SeqGap`]).
    /// Either every event is durable when this returns `Ok`, or none is
    /// stored. An empty batch is a no-op.
    pub fn append_batch(&mut self, events: &[SequencedEvent]) -> Result<(), LogError> {
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
        events: &[SequencedEvent],
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
            for SequencedEvent {
                seq,
                received_at_ms,
                event: ev,
            } in events
            {
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
                if *seq != expected {
                    return Err(LogError::SeqGap {
                        room: ev.room.as_str().to_owned(),
                        expected,
                        got: *seq,
                    });
                }
                insert.execute(params![
                    ev.room.as_str(),
                    to_sql("seq", *seq)?,
                    ev.kind.code(),
                    &ev.sender.as_bytes()[..],
                    to_sql("epoch", ev.epoch)?,
                    to_sql("received_at_ms", *received_at_ms)?,
                    ev.body.as_slice(),
                ])?;
                pending.last_seq = *seq;
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

    /// One room's head, if the log knows the room (the sequencer reads a
    /// head back this way after evicting it from memory).
    ///
    /// # Errors
    /// As [`Self::room_heads`].
    pub fn room_head(&self, room: &str) -> Result<Option<RoomHead>, LogError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT room, last_seq, epoch, head FROM rooms WHERE room = ?1")?;
        let mut rows = stmt.query([room])?;
        match rows.next()? {
            Some(row) => Ok(Some(room_head_row(row)?)),
            None => Ok(None),
        }
    }

    /// All rooms' heads, ordered by room name (diagnostics and tests).
    pub fn room_heads(&self) -> Result<Vec<RoomHead>, LogError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT room, last_seq, epoch, head FROM rooms ORDER BY room")?;
        let mut rows = stmt.query([])?;
        let mut heads = Vec::new();
        while let Some(row) = rows.next()? {
            heads.push(room_head_row(row)?);
        }
        Ok(heads)
    }

    /// Events of `room` with `seq > after_seq`, in ascending seq order, at
    /// most `limit` of them. Pruned events are simply absent, so the first
    /// returned seq may be larger than `after_seq + 1`.
    pub fn events_after(
        &self,
        room: &RoomName,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<SequencedEvent>, LogError> {
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
        room: &RoomName,
        after_seq: u64,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Vec<SequencedEvent>, LogError> {
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
        let mut rows = stmt.query(params![room.as_str(), after, sql_limit])?;
        let mut out = Vec::new();
        let mut bytes = 0usize;
        while let Some(row) = rows.next()? {
            if bytes >= max_bytes {
                break;
            }
            let seq = from_sql("events.seq", row.get(0)?)?;
            let kind_raw: i64 = row.get(1)?;
            let kind = u8::try_from(kind_raw).ok().and_then(EventKind::from_code);
            let kind = kind.ok_or_else(|| {
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
            let epoch = from_sql("events.epoch", row.get(3)?)?;
            out.push(SequencedEvent {
                seq,
                received_at_ms: from_sql("events.received_at_ms", row.get(4)?)?,
                event: RoomEvent {
                    room: room.clone(),
                    sender: Fingerprint::from_bytes(sender),
                    kind,
                    epoch,
                    body: row.get(5)?,
                },
            });
            bytes = bytes.saturating_add(out.last().map_or(0, |e| e.event.body.len()));
        }
        Ok(out)
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

/// A `rooms` row (room, last_seq, epoch, head) as a [`RoomHead`].
fn room_head_row(row: &rusqlite::Row<'_>) -> Result<RoomHead, LogError> {
    Ok(RoomHead {
        room: row.get(0)?,
        last_seq: from_sql("rooms.last_seq", row.get(1)?)?,
        epoch: from_sql("rooms.epoch", row.get(2)?)?,
        head: row
            .get::<_, Option<Vec<u8>>>(3)?
            .and_then(|h| <[u8; 32]>::try_from(h.as_slice()).ok()),
    })
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
mod tests;
