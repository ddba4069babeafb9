//! Read-only connections to the log, for backfill.

use hush_proto::{RoomName, SequencedEvent};

use super::{LogError, LogReader, SqliteLog};

/// Read-only connections to the log, for backfill, reused between
/// requests. WAL lets them read while the sequencer writes.
pub(crate) struct ReaderPool {
    path: std::path::PathBuf,
    idle: std::sync::Mutex<Vec<SqliteLog>>,
}

/// Reader connections kept open between backfills.
const IDLE_READERS: usize = 8;

impl ReaderPool {
    pub(crate) fn new(path: std::path::PathBuf) -> Self {
        Self {
            path,
            idle: std::sync::Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn with_reader<T>(
        &self,
        f: impl FnOnce(&SqliteLog) -> Result<T, LogError>,
    ) -> Result<T, LogError> {
        let pooled = self
            .idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop();
        let reader = match pooled {
            Some(r) => r,
            None => SqliteLog::open_reader(&self.path)?,
        };
        let out = f(&reader);
        let mut idle = self
            .idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if idle.len() < IDLE_READERS {
            idle.push(reader);
        }
        out
    }
}

impl LogReader for ReaderPool {
    fn events_after_capped(
        &self,
        room: &RoomName,
        after_seq: u64,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Vec<SequencedEvent>, LogError> {
        self.with_reader(|r| r.events_after_capped(room, after_seq, limit, max_bytes))
    }
}
