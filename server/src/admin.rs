//! `hush admin`: what an operator does to a relay's data folder, safe
//! against a running relay.
//!
//! ```text
//!   backup  ─▶ SQLite online backup of events.sqlite and tickets.sqlite
//!              (a consistent snapshot while the relay writes), then the
//!              key files and blobs/ copied, all into a new 0700 folder
//!   rooms   ─▶ per room: events held, body bytes, last seq, epoch, last activity
//!   verify  ─▶ PRAGMA integrity_check; per room: seqs in order and within
//!              the head, and the chain head recomputed when no event was pruned
//!   prune   ─▶ delete one room's messages received before a time (membership
//!              events are kept, as retention keeps them)
//! ```
//!
//! Every read goes through a read-only connection and a transaction, so a
//! running relay (WAL mode) is neither blocked nor seen half-way; `prune`
//! takes the write lock as briefly as the relay's own retention does, and
//! waits for it like any writer (5 s busy timeout).

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::tickets::{LEDGER_FILE, TICKET_KEY_FILE};
use crate::{LOG_FILE, create_private_dir};

/// The relay's generated key file in its data folder.
pub const RELAY_KEY_FILE: &str = "relay-key.pem";

/// Why an admin command failed, with what to do next.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The data folder holds no event log.
    #[error("{0} has no {LOG_FILE}: is it a relay's data folder (--data)?")]
    NoLog(String),
    /// The backup's destination exists.
    #[error("{0} exists already: give a new folder for the backup")]
    Exists(String),
    /// SQLite failed.
    #[error("{what}: {error}")]
    Sql {
        /// What was being done.
        what: String,
        /// Why.
        error: rusqlite::Error,
    },
    /// The disk failed.
    #[error("{what}: {error}")]
    Io {
        /// What was being done.
        what: String,
        /// Why.
        error: std::io::Error,
    },
}

fn sql(what: impl Into<String>) -> impl FnOnce(rusqlite::Error) -> AdminError {
    let what = what.into();
    move |error| AdminError::Sql { what, error }
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> AdminError {
    let what = what.into();
    move |error| AdminError::Io { what, error }
}

/// The event log, read-only (a running relay keeps writing).
fn reader(data: &Path) -> Result<Connection, AdminError> {
    let path = data.join(LOG_FILE);
    if !path.exists() {
        return Err(AdminError::NoLog(data.display().to_string()));
    }
    let conn = Connection::open_with_flags(
        &path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sql(format!("cannot open {}", path.display())))?;
    conn.busy_timeout(Duration::from_secs(5))
        .map_err(sql("busy timeout"))?;
    Ok(conn)
}

/// What a backup wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupReport {
    /// The folder.
    pub out: PathBuf,
    /// Events in the backed-up log.
    pub events: u64,
    /// Files copied besides the databases.
    pub files: usize,
}

/// Backs up a relay's data folder into `out` (a new folder, 0700).
///
/// # Errors
/// [`AdminError`] naming what failed; a half-made backup is left for
/// inspection, never passed off as whole (the error says so).
pub fn backup(data: &Path, out: &Path) -> Result<BackupReport, AdminError> {
    if out.exists() {
        return Err(AdminError::Exists(out.display().to_string()));
    }
    let src = reader(data)?;
    private_dir(out)?;
    online_backup(&src, &out.join(LOG_FILE))?;
    let ledger = data.join(LEDGER_FILE);
    if ledger.exists() {
        let conn = Connection::open_with_flags(&ledger, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(sql(format!("cannot open {}", ledger.display())))?;
        online_backup(&conn, &out.join(LEDGER_FILE))?;
    }
    let mut files = 0;
    for name in [RELAY_KEY_FILE, TICKET_KEY_FILE] {
        let from = data.join(name);
        if from.exists() {
            copy_private(&from, &out.join(name))?;
            files += 1;
        }
    }
    files += copy_tree(&data.join("blobs"), &out.join("blobs"))?;
    let copy = reader(out)?;
    let events: i64 = copy
        .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
        .map_err(sql("cannot count the backup's events"))?;
    Ok(BackupReport {
        out: out.to_path_buf(),
        events: u64::try_from(events).unwrap_or(0),
        files,
    })
}

/// SQLite's online backup of `src` into a new file at `to`: a consistent
/// snapshot, copied in steps so the relay's writer is never held up long.
fn online_backup(src: &Connection, to: &Path) -> Result<(), AdminError> {
    let mut dst = Connection::open(to).map_err(sql(format!("cannot create {}", to.display())))?;
    {
        let b = rusqlite::backup::Backup::new(src, &mut dst).map_err(sql(format!(
            "cannot start the backup into {}",
            to.display()
        )))?;
        b.run_to_completion(256, Duration::from_millis(5), None)
            .map_err(sql(format!("the backup into {} failed", to.display())))?;
    }
    drop(dst);
    set_private(to)
}

/// A new folder others cannot enter (the relay refuses any other).
fn private_dir(dir: &Path) -> Result<(), AdminError> {
    create_private_dir(dir).map_err(|e| AdminError::Io {
        what: format!("cannot make {}", dir.display()),
        error: std::io::Error::other(e.to_string()),
    })
}

#[cfg(unix)]
fn set_private(path: &Path) -> Result<(), AdminError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(io(format!("cannot narrow {}", path.display())))
}

#[cfg(not(unix))]
fn set_private(_path: &Path) -> Result<(), AdminError> {
    Ok(())
}

fn copy_private(from: &Path, to: &Path) -> Result<(), AdminError> {
    std::fs::copy(from, to).map_err(io(format!("cannot copy {}", from.display())))?;
    set_private(to)
}

/// Copies a folder's files (0600) and folders (0700), and a file that
/// vanishes meanwhile (an expired one) is skipped. In a blob file's folder
/// the manifest and the held log are copied before the data: the relay
/// appends a chunk's record only after its bytes are synced and never
/// rewrites a held slot, so every chunk the copied log holds is whole in
/// the copied data (chunks written meanwhile are simply not held in the
/// copy, and are uploaded again).
fn copy_tree(from: &Path, to: &Path) -> Result<usize, AdminError> {
    let Ok(entries) = std::fs::read_dir(from) else {
        return Ok(0);
    };
    private_dir(to)?;
    let mut entries: Vec<_> = entries.flatten().collect();
    entries.sort_by_key(|e| {
        let name = e.file_name();
        match name.to_str() {
            Some(crate::blobs::MANIFEST_FILE) => 0,
            Some(crate::blobs::HELD_FILE) => 1,
            _ => 2,
        }
    });
    let mut n = 0;
    for entry in entries {
        let path = entry.path();
        let name = entry.file_name();
        if name.to_string_lossy().ends_with(".tmp") {
            continue;
        }
        match entry.file_type() {
            Ok(t) if t.is_dir() => n += copy_tree(&path, &to.join(&name))?,
            Ok(t) if t.is_file() => match std::fs::copy(&path, to.join(&name)) {
                Ok(_) => {
                    set_private(&to.join(&name))?;
                    n += 1;
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io(format!("cannot copy {}", path.display()))(e)),
            },
            _ => {}
        }
    }
    Ok(n)
}

/// One room, as `hush admin rooms` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomStats {
    /// The room.
    pub room: String,
    /// Events the log holds now.
    pub events: u64,
    /// Their body bytes.
    pub bytes: u64,
    /// Highest seq ever appended.
    pub last_seq: u64,
    /// The epoch its latest commit opened.
    pub epoch: u64,
    /// When its last held event was received (ms since the UNIX epoch).
    pub last_activity_ms: Option<u64>,
}

/// Every room's figures, by name.
///
/// # Errors
/// [`AdminError`] if the log cannot be read.
pub fn rooms(data: &Path) -> Result<Vec<RoomStats>, AdminError> {
    let conn = reader(data)?;
    let mut stmt = conn
        .prepare(
            "SELECT r.room, r.last_seq, r.epoch, count(e.seq), coalesce(sum(length(e.body)), 0), \
             max(e.received_at_ms) FROM rooms r LEFT JOIN events e ON e.room = r.room \
             GROUP BY r.room ORDER BY r.room",
        )
        .map_err(sql("cannot list the rooms"))?;
    let rows = stmt
        .query_map([], |r| {
            Ok(RoomStats {
                room: r.get(0)?,
                last_seq: u64::try_from(r.get::<_, i64>(1)?).unwrap_or(0),
                epoch: u64::try_from(r.get::<_, i64>(2)?).unwrap_or(0),
                events: u64::try_from(r.get::<_, i64>(3)?).unwrap_or(0),
                bytes: u64::try_from(r.get::<_, i64>(4)?).unwrap_or(0),
                last_activity_ms: r
                    .get::<_, Option<i64>>(5)?
                    .and_then(|v| u64::try_from(v).ok()),
            })
        })
        .map_err(sql("cannot list the rooms"))?;
    rows.collect::<Result<Vec<_>, _>>()
        .map_err(sql("cannot list the rooms"))
}

/// One room's check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomCheck {
    /// Every event is held from seq 1, and the chain head recomputed from
    /// them is the stored one.
    HeadMatches,
    /// Events were pruned, so the head cannot be recomputed; those held are
    /// in order and within the room's last seq.
    InOrderPruned,
    /// Something is wrong (what).
    Bad(String),
}

/// What `hush admin verify` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// `PRAGMA integrity_check`'s answer (`ok` when sound).
    pub integrity: String,
    /// Each room and its check.
    pub rooms: Vec<(String, RoomCheck)>,
}

impl VerifyReport {
    /// Whether everything checked out.
    #[must_use]
    pub fn ok(&self) -> bool {
        self.integrity == "ok"
            && !self
                .rooms
                .iter()
                .any(|(_, c)| matches!(c, RoomCheck::Bad(_)))
    }
}

/// Checks the log's integrity and each room's chain.
///
/// # Errors
/// [`AdminError`] if the log cannot be read at all.
pub fn verify(data: &Path) -> Result<VerifyReport, AdminError> {
    let mut conn = reader(data)?;
    let tx = conn
        .transaction()
        .map_err(sql("cannot start a read transaction"))?;
    let integrity: String = tx
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .map_err(sql("integrity_check"))?;
    let heads: Vec<(String, i64, Option<Vec<u8>>)> = {
        let mut stmt = tx
            .prepare("SELECT room, last_seq, head FROM rooms ORDER BY room")
            .map_err(sql("cannot read the rooms"))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .map_err(sql("cannot read the rooms"))?;
        rows.collect::<Result<_, _>>()
            .map_err(sql("cannot read the rooms"))?
    };
    let mut rooms = Vec::new();
    for (room, last_seq, head) in heads {
        let check = check_room(&tx, &room, last_seq, head.as_deref())?;
        rooms.push((room, check));
    }
    Ok(VerifyReport { integrity, rooms })
}

fn check_room(
    tx: &rusqlite::Transaction<'_>,
    room: &str,
    last_seq: i64,
    stored: Option<&[u8]>,
) -> Result<RoomCheck, AdminError> {
    let mut stmt = tx
        .prepare(
            "SELECT seq, kind, sender, epoch, received_at_ms, body FROM events \
             WHERE room = ?1 ORDER BY seq",
        )
        .map_err(sql("cannot read events"))?;
    let mut rows = stmt.query([room]).map_err(sql("cannot read events"))?;
    let Ok(name) = hush_proto::RoomName::new(room) else {
        return Ok(RoomCheck::Bad("its name is not a room name".into()));
    };
    let mut head = [0u8; 32];
    let mut expected = 1i64;
    let mut whole = true;
    while let Some(r) = rows.next().map_err(sql("cannot read events"))? {
        let seq: i64 = r.get(0).map_err(sql("seq"))?;
        if seq > last_seq {
            return Ok(RoomCheck::Bad(format!(
                "event {seq} lies past the room's last seq {last_seq}"
            )));
        }
        if seq != expected {
            whole = false;
        }
        expected = seq + 1;
        if !whole {
            continue;
        }
        let kind: i64 = r.get(1).map_err(sql("kind"))?;
        let sender: Vec<u8> = r.get(2).map_err(sql("sender"))?;
        let epoch: i64 = r.get(3).map_err(sql("epoch"))?;
        let body: Vec<u8> = r.get(5).map_err(sql("body"))?;
        let (Some(kind), Ok(sender)) = (
            u8::try_from(kind)
                .ok()
                .and_then(hush_proto::EventKind::from_code),
            <[u8; 32]>::try_from(sender.as_slice()),
        ) else {
            return Ok(RoomCheck::Bad(format!("event {seq} is not a valid event")));
        };
        let event = hush_proto::RoomEvent {
            room: name.clone(),
            sender: hush_crypto::Fingerprint::from_bytes(sender),
            kind,
            epoch: u64::try_from(epoch).unwrap_or(0),
            body,
        };
        head = hush_proto::e2e::chain_next_parts(&head, u64::try_from(seq).unwrap_or(0), &event);
    }
    if !whole || expected - 1 != last_seq {
        return Ok(RoomCheck::InOrderPruned);
    }
    match stored {
        Some(s) if s == head => Ok(RoomCheck::HeadMatches),
        None if last_seq == 0 => Ok(RoomCheck::HeadMatches),
        _ => Ok(RoomCheck::Bad(
            "the chain head recomputed from its events is not the stored one".into(),
        )),
    }
}

/// Deletes `room`'s messages received before `before_ms`; membership
/// events stay, as retention keeps them. Returns how many were deleted.
///
/// # Errors
/// [`AdminError`] if the log cannot be written (a relay holding the lock
/// for more than 5 s makes it fail; run it again).
pub fn prune(data: &Path, room: &str, before_ms: u64) -> Result<u64, AdminError> {
    let path = data.join(LOG_FILE);
    if !path.exists() {
        return Err(AdminError::NoLog(data.display().to_string()));
    }
    let conn = Connection::open_with_flags(
        &path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sql(format!("cannot open {}", path.display())))?;
    conn.busy_timeout(Duration::from_secs(5))
        .map_err(sql("busy timeout"))?;
    let before = i64::try_from(before_ms).unwrap_or(i64::MAX);
    let n = conn
        .execute(
            "DELETE FROM events WHERE room = ?1 AND kind = ?2 AND received_at_ms < ?3",
            rusqlite::params![
                room,
                i64::from(hush_proto::EventKind::Message.code()),
                before
            ],
        )
        .map_err(sql("cannot delete"))?;
    Ok(u64::try_from(n).unwrap_or(0))
}
