//! Session tickets on the relay's side: the ticket key, and the ledger
//! that lets each ticket resume one connection only.
//!
//! ```text
//!  data dir/ticket.key         32 random bytes, 0600, made on first start:
//!                              tickets survive restarts
//!  data dir/tickets.sqlite     used ticket ids until they expire
//!
//!  connection task ──claim(id, expires)──▶ [channel] ──▶ ledger thread
//!                  ◀──── fresh? ─────────────────────────┘ one transaction
//!                                                          per batch (one fsync)
//! ```
//!
//! A claim is durable before it is answered, so neither a replay nor a
//! relay restart lets a ticket open a second session. If the ledger
//! cannot record a claim, or holds [`MAX_LEDGER_ROWS`] unexpired ids
//! already (every resumption issues a new ticket, so clients chaining
//! resumptions would otherwise grow it without bound), the answer is
//! "used": the client falls back to a full handshake, never to a
//! replayable one.

use std::path::Path;
use std::time::Duration;

use hush_crypto::Secret32;
use hush_proto::ticket::TICKET_ID_LEN;
use rusqlite::{Connection, params};
use tokio::sync::{mpsc, oneshot};

use crate::sequencer::now_ms;

/// File name of the ticket key inside the data folder.
pub const TICKET_KEY_FILE: &str = "ticket.key";
/// File name of the used-ticket ledger inside the data folder.
pub const LEDGER_FILE: &str = "tickets.sqlite";

/// Unexpired used ids the ledger keeps at most (about 50 MB on disk).
pub const MAX_LEDGER_ROWS: u64 = 1_000_000;

/// Claims answered per transaction, at most.
const MAX_BATCH: usize = 1024;
/// How often expired ids are forgotten.
const PRUNE_INTERVAL: Duration = Duration::from_secs(600);

/// Loads the relay's ticket key, creating it (mode 0600) on first start.
///
/// # Errors
/// If the file cannot be read or written, or is not 32 bytes.
pub(crate) fn load_or_create_key(dir: &Path) -> std::io::Result<Secret32> {
    let path = dir.join(TICKET_KEY_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => Secret32::from_slice(&bytes).ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "{} is not a hush ticket key (expected 32 bytes); delete it to make a new one (clients then do one full handshake)",
                    path.display()
                ),
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = Secret32::random();
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                opts.mode(0o600);
            }
            let mut f = opts.open(&path)?;
            std::io::Write::write_all(&mut f, key.expose_secret())?;
            f.sync_all()?;
            Ok(key)
        }
        Err(e) => Err(e),
    }
}

type Claim = ([u8; TICKET_ID_LEN], u64, oneshot::Sender<bool>);

/// The used-ticket ledger. Cheap to clone.
#[derive(Clone)]
pub(crate) struct TicketLedger {
    tx: mpsc::Sender<Claim>,
}

impl TicketLedger {
    /// Opens (or creates) the ledger and starts its thread, which stops
    /// when the last clone is dropped.
    pub(crate) fn open(dir: &Path) -> Result<Self, rusqlite::Error> {
        let conn = Connection::open(dir.join(LEDGER_FILE))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS used_tickets (
                 id BLOB PRIMARY KEY NOT NULL,
                 expires_ms INTEGER NOT NULL
             ) WITHOUT ROWID;",
        )?;
        let (tx, rx) = mpsc::channel::<Claim>(4 * MAX_BATCH);
        std::thread::Builder::new()
            .name("hush-tickets".into())
            .spawn(move || run(conn, rx, MAX_LEDGER_ROWS))
            .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
        Ok(Self { tx })
    }

    /// Records that ticket `id` was used. True only the first time.
    pub(crate) async fn claim(&self, id: [u8; TICKET_ID_LEN], expires_ms: u64) -> bool {
        let (reply, answer) = oneshot::channel();
        if self.tx.send((id, expires_ms, reply)).await.is_err() {
            return false;
        }
        answer.await.unwrap_or(false)
    }
}

/// Forgets expired ids; returns how many remain (as many as the cap if
/// that cannot be read, so nothing more is recorded until it can).
fn prune(conn: &Connection, cap: u64) -> u64 {
    let now = i64::try_from(now_ms()).unwrap_or(i64::MAX);
    if let Err(e) = conn.execute("DELETE FROM used_tickets WHERE expires_ms <= ?1", [now]) {
        tracing::warn!(error = %e, "could not prune the ticket ledger");
    }
    conn.query_row("SELECT COUNT(*) FROM used_tickets", [], |r| {
        r.get::<_, i64>(0)
    })
    .map_or(cap, |n| u64::try_from(n).unwrap_or(cap))
}

fn run(mut conn: Connection, mut rx: mpsc::Receiver<Claim>, cap: u64) {
    let mut rows = prune(&conn, cap);
    let mut last_prune = std::time::Instant::now();
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(c) => batch.push(c),
                Err(_) => break,
            }
        }
        if rows >= cap || last_prune.elapsed() >= PRUNE_INTERVAL {
            last_prune = std::time::Instant::now();
            rows = prune(&conn, cap);
        }
        // Room for only part of the batch: the rest is answered "used".
        let room = usize::try_from(cap.saturating_sub(rows)).unwrap_or(usize::MAX);
        let fits = batch.len().min(room);
        if fits < batch.len() {
            tracing::warn!(
                cap,
                "the ticket ledger is full; clients get full handshakes until tickets expire"
            );
        }
        let answers = record(&mut conn, &batch[..fits]);
        rows += answers.iter().filter(|fresh| **fresh).count() as u64;
        let answers = answers.into_iter().chain(std::iter::repeat(false));
        for ((_, _, reply), fresh) in batch.drain(..).zip(answers) {
            let _ = reply.send(fresh);
        }
    }
}

/// One transaction for the batch: which claims were first. All false if
/// it did not commit.
fn record(conn: &mut Connection, batch: &[Claim]) -> Vec<bool> {
    let mut attempt = || -> Result<Vec<bool>, rusqlite::Error> {
        let tx = conn.transaction()?;
        let mut fresh = Vec::with_capacity(batch.len());
        {
            let mut insert = tx.prepare_cached(
                "INSERT OR IGNORE INTO used_tickets (id, expires_ms) VALUES (?1, ?2)",
            )?;
            for (id, expires, _) in batch {
                let expires = i64::try_from(*expires).unwrap_or(i64::MAX);
                fresh.push(insert.execute(params![&id[..], expires])? == 1);
            }
        }
        tx.commit()?;
        Ok(fresh)
    };
    attempt().unwrap_or_else(|e| {
        tracing::error!(error = %e, "could not record used tickets; refusing to resume them");
        vec![false; batch.len()]
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_ticket_id_is_fresh_once_even_across_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let far = now_ms() + 60_000;
        {
            let ledger = TicketLedger::open(dir.path()).unwrap();
            assert!(ledger.claim([1; 16], far).await);
            assert!(!ledger.claim([1; 16], far).await);
            assert!(ledger.claim([2; 16], far).await);
        }
        // Give the old thread a moment to close its connection.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let ledger = TicketLedger::open(dir.path()).unwrap();
        assert!(
            !ledger.claim([1; 16], far).await,
            "remembered after a restart"
        );
        assert!(ledger.claim([3; 16], far).await);
    }

    #[tokio::test]
    async fn a_full_ledger_refuses_claims_instead_of_growing() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = TicketLedger::open(dir.path()).unwrap();
        drop(ledger);
        let conn = Connection::open(dir.path().join(LEDGER_FILE)).unwrap();
        let (tx, rx) = mpsc::channel::<Claim>(16);
        std::thread::spawn(move || run(conn, rx, 2));
        let ledger = TicketLedger { tx };
        let far = now_ms() + 60_000;
        assert!(ledger.claim([1; 16], far).await);
        assert!(ledger.claim([2; 16], far).await);
        assert!(
            !ledger.claim([3; 16], far).await,
            "full: refused, not recorded"
        );
        assert!(!ledger.claim([1; 16], far).await, "still used");
    }

    #[test]
    fn the_ticket_key_survives_and_a_bad_one_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let a = load_or_create_key(dir.path()).unwrap();
        let b = load_or_create_key(dir.path()).unwrap();
        assert!(a == b);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(TICKET_KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(dir.path().join(TICKET_KEY_FILE), b"short").unwrap();
        let err = load_or_create_key(dir.path()).err().unwrap().to_string();
        assert!(err.contains("not a hush ticket key"), "{err}");
    }
}
