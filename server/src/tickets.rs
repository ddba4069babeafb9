//! Session tickets on the relay's side: the ticket key, and the ledger
//! that lets each ticket resume one connection only.
//!
//! ```text
//!  data dir/ticket.key         32 random bytes, 0600, made on first start:
//!                              tickets survive restarts
//!  data dir/tickets.sqlite     used ticket ids until they expire, each
//!                              with the identity it was issued to
//!
//!  connection task ──claim(id, expires)──▶ [channel] ──▶ ledger thread
//!                  ◀──── fresh? ─────────────────────────┘ one transaction
//!                                                          per batch (one fsync)
//! ```
//!
//! A claim is durable before it is answered, so neither a replay nor a
//! relay restart lets a ticket open a second session. Every resumption
//! issues a new ticket, so a client chaining resumptions adds a row each
//! time (audit L2). Two bounds hold the ledger: each identity keeps at
//! most `tickets_per_identity` used ids, its oldest ones giving way to a
//! *floor* (every ticket of that identity expiring no later than the
//! dropped ones counts as used, so dropping never lets one resume twice);
//! and the whole ledger holds at most [`MAX_LEDGER_ROWS`]. If the ledger
//! cannot record a claim, or is full, the answer is "used": the client
//! falls back to a full handshake, never to a replayable one.
//!
//! ```sql
//! used_tickets  (id PRIMARY KEY, client, expires_ms)  -- indexed by expiry, and by (client, expiry)
//! ticket_floors (client PRIMARY KEY, floor_ms)        -- forgotten once floor_ms has passed
//! ```

use std::path::Path;
use std::time::Duration;

use hush_crypto::{Fingerprint, Secret32};
use hush_proto::ticket::TICKET_ID_LEN;
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::{mpsc, oneshot};

use crate::sequencer::now_ms;

/// File name of the ticket key inside the data folder.
pub const TICKET_KEY_FILE: &str = "ticket.key";
/// File name of the used-ticket ledger inside the data folder.
pub const LEDGER_FILE: &str = "tickets.sqlite";

/// Unexpired used ids the ledger keeps at most (about 100 MB on disk).
/// Each identity is held to its own quota first
/// ([`crate::Limits::tickets_per_identity`]), so reaching this takes
/// thousands of identities, each with a full handshake.
pub const MAX_LEDGER_ROWS: u64 = 1_000_000;

/// The ledger's schema version (`PRAGMA user_version`). Version 0 (no
/// version set) had no identities and no index; it is upgraded in place.
pub const LEDGER_SCHEMA_VERSION: i64 = 1;

/// Claims answered per transaction, at most.
const MAX_BATCH: usize = 1024;
/// How often expired ids are forgotten.
const PRUNE_INTERVAL: Duration = Duration::from_secs(600);

/// Loads the relay's ticket key, creating it (mode 0600) on first start.
///
/// # Errors
/// If the file cannot be read or written, is not 32 bytes, or is readable
/// by group or others (whoever reads it can forge tickets).
pub(crate) fn load_or_create_key(dir: &Path) -> std::io::Result<Secret32> {
    let path = dir.join(TICKET_KEY_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => {
            crate::check_private_mode(&path, 0o600)?;
            Secret32::from_slice(&bytes).ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "{} is not a hush ticket key (expected 32 bytes); delete it to make a new one (clients then do one full handshake)",
                    path.display()
                ),
            )
            })
        }
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

/// One claim: a ticket's id, the identity it was issued to, when it
/// expires, and where to answer.
struct Claim {
    id: [u8; TICKET_ID_LEN],
    client: Fingerprint,
    expires_ms: u64,
    reply: oneshot::Sender<bool>,
}

/// Why the ledger could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// SQLite failed.
    #[error("ticket ledger database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The ledger was written by a newer relay.
    #[error(
        "ticket ledger schema version {found} is newer than the version {LEDGER_SCHEMA_VERSION} this relay understands; upgrade hush, or delete {LEDGER_FILE} (clients then do one full handshake)"
    )]
    Newer {
        /// `user_version` found.
        found: i64,
    },
    /// The ledger's thread could not be started.
    #[error("cannot start the ticket ledger thread: {0}")]
    Thread(std::io::Error),
}

/// What bounds the ledger: all rows, and each identity's.
#[derive(Debug, Clone, Copy)]
struct Bounds {
    /// Unexpired used ids kept at most.
    cap: u64,
    /// Used ids kept per identity (see [`crate::Limits::tickets_per_identity`]).
    per_identity: u64,
}

/// The used-ticket ledger. Cheap to clone.
#[derive(Clone)]
pub(crate) struct TicketLedger {
    tx: mpsc::Sender<Claim>,
}

impl TicketLedger {
    /// Opens (or creates, or upgrades) the ledger and starts its thread,
    /// which stops when the last clone is dropped. Each identity keeps at
    /// most `per_identity` used ids (at least 1).
    pub(crate) fn open(dir: &Path, per_identity: u32) -> Result<Self, LedgerError> {
        let conn = open_ledger(dir)?;
        let (tx, rx) = mpsc::channel::<Claim>(4 * MAX_BATCH);
        let bounds = Bounds {
            cap: MAX_LEDGER_ROWS,
            per_identity: u64::from(per_identity.max(1)),
        };
        std::thread::Builder::new()
            .name("hush-tickets".into())
            .spawn(move || run(conn, rx, bounds))
            .map_err(LedgerError::Thread)?;
        Ok(Self { tx })
    }

    /// Records that ticket `id`, issued to `client`, was used. True only
    /// the first time.
    pub(crate) async fn claim(
        &self,
        id: [u8; TICKET_ID_LEN],
        client: Fingerprint,
        expires_ms: u64,
    ) -> bool {
        let (reply, answer) = oneshot::channel();
        let claim = Claim {
            id,
            client,
            expires_ms,
            reply,
        };
        if self.tx.send(claim).await.is_err() {
            return false;
        }
        answer.await.unwrap_or(false)
    }
}

/// Opens the ledger file and brings its schema to
/// [`LEDGER_SCHEMA_VERSION`].
fn open_ledger(dir: &Path) -> Result<Connection, LedgerError> {
    let mut conn = Connection::open(dir.join(LEDGER_FILE))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let found: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
    match found {
        LEDGER_SCHEMA_VERSION => {}
        0 => {
            // Version 0 (no user_version) had `used_tickets (id,
            // expires_ms)` and no index. Its rows are kept, as used ids
            // of no known identity, so no ticket used before the upgrade
            // resumes again; they leave as they expire.
            tx.execute_batch(
                "CREATE TABLE IF NOT EXISTS used_tickets (
                     id BLOB PRIMARY KEY NOT NULL,
                     expires_ms INTEGER NOT NULL
                 ) WITHOUT ROWID;
                 ALTER TABLE used_tickets ADD COLUMN client BLOB NOT NULL DEFAULT x'';
                 CREATE INDEX used_tickets_by_expiry ON used_tickets (expires_ms);
                 CREATE INDEX used_tickets_by_client ON used_tickets (client, expires_ms);
                 CREATE TABLE ticket_floors (
                     client BLOB PRIMARY KEY NOT NULL,
                     floor_ms INTEGER NOT NULL
                 ) WITHOUT ROWID;",
            )?;
            tx.pragma_update(None, "user_version", LEDGER_SCHEMA_VERSION)?;
        }
        found => return Err(LedgerError::Newer { found }),
    }
    tx.commit()?;
    Ok(conn)
}

/// Forgets expired ids and floors; returns how many ids went.
fn prune(conn: &Connection) -> u64 {
    let now = i64::try_from(now_ms()).unwrap_or(i64::MAX);
    // Both deletes walk an index on the expiry: cheap when nothing expired.
    let deleted = conn
        .execute("DELETE FROM used_tickets WHERE expires_ms <= ?1", [now])
        .and_then(|n| {
            conn.execute("DELETE FROM ticket_floors WHERE floor_ms <= ?1", [now])?;
            Ok(n)
        });
    match deleted {
        Ok(n) => n as u64,
        Err(e) => {
            tracing::warn!(error = %e, "could not prune the ticket ledger");
            0
        }
    }
}

/// How many ids the ledger holds (as many as the cap if that cannot be
/// read, so nothing more is recorded until it can). Counted once, at
/// start; afterwards the ledger thread keeps the count itself.
fn count_rows(conn: &Connection, cap: u64) -> u64 {
    conn.query_row("SELECT COUNT(*) FROM used_tickets", [], |r| {
        r.get::<_, i64>(0)
    })
    .map_or(cap, |n| u64::try_from(n).unwrap_or(cap))
}

fn run(mut conn: Connection, mut rx: mpsc::Receiver<Claim>, bounds: Bounds) {
    prune(&conn);
    let mut rows = count_rows(&conn, bounds.cap);
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
        if rows >= bounds.cap || last_prune.elapsed() >= PRUNE_INTERVAL {
            last_prune = std::time::Instant::now();
            rows = rows.saturating_sub(prune(&conn));
        }
        // Room for only part of the batch: the rest is answered "used".
        let room = usize::try_from(bounds.cap.saturating_sub(rows)).unwrap_or(usize::MAX);
        let fits = batch.len().min(room);
        if fits < batch.len() {
            tracing::warn!(
                cap = bounds.cap,
                "the ticket ledger is full; clients get full handshakes until tickets expire"
            );
        }
        let (answers, added, dropped) = record(&mut conn, &batch[..fits], bounds.per_identity);
        rows = (rows + added).saturating_sub(dropped);
        let answers = answers.into_iter().chain(std::iter::repeat(false));
        for (claim, fresh) in batch.drain(..).zip(answers) {
            let _ = claim.reply.send(fresh);
        }
    }
}

/// One transaction for the batch: which claims were first, how many ids
/// were added, and how many were dropped to keep identities within their
/// quota. All false (and nothing changed) if it did not commit.
///
/// An identity over its quota loses its oldest ids (earliest expiry: the
/// first issued), and its *floor* rises to the latest expiry dropped:
/// every ticket of that identity expiring no later counts as used. Its
/// newest ticket, the one an honest client holds, stays good.
fn record(conn: &mut Connection, batch: &[Claim], per_identity: u64) -> (Vec<bool>, u64, u64) {
    let mut attempt = || -> Result<(Vec<bool>, u64, u64), rusqlite::Error> {
        let tx = conn.transaction()?;
        let mut fresh = Vec::with_capacity(batch.len());
        let (mut added, mut dropped) = (0u64, 0u64);
        {
            let mut floor =
                tx.prepare_cached("SELECT floor_ms FROM ticket_floors WHERE client = ?1")?;
            let mut insert = tx.prepare_cached(
                "INSERT OR IGNORE INTO used_tickets (id, client, expires_ms) VALUES (?1, ?2, ?3)",
            )?;
            let mut count =
                tx.prepare_cached("SELECT COUNT(*) FROM used_tickets WHERE client = ?1")?;
            let mut nth_oldest = tx.prepare_cached(
                "SELECT expires_ms FROM used_tickets WHERE client = ?1 \
                 ORDER BY expires_ms ASC LIMIT 1 OFFSET ?2",
            )?;
            let mut drop_upto = tx.prepare_cached(
                "DELETE FROM used_tickets WHERE client = ?1 AND expires_ms <= ?2",
            )?;
            let mut raise_floor = tx.prepare_cached(
                "INSERT INTO ticket_floors (client, floor_ms) VALUES (?1, ?2) \
                 ON CONFLICT (client) DO UPDATE SET floor_ms = max(floor_ms, excluded.floor_ms)",
            )?;
            for claim in batch {
                let client = &claim.client.as_bytes()[..];
                let expires = i64::try_from(claim.expires_ms).unwrap_or(i64::MAX);
                let below_floor = floor
                    .query_row([client], |r| r.get::<_, i64>(0))
                    .optional()?
                    .is_some_and(|f| expires <= f);
                if below_floor {
                    fresh.push(false);
                    continue;
                }
                let inserted = insert.execute(params![&claim.id[..], client, expires])? == 1;
                fresh.push(inserted);
                if !inserted {
                    continue;
                }
                added += 1;
                let held: i64 = count.query_row([client], |r| r.get(0))?;
                let over = u64::try_from(held)
                    .unwrap_or(0)
                    .saturating_sub(per_identity);
                if over == 0 {
                    continue;
                }
                let offset = i64::try_from(over - 1).unwrap_or(i64::MAX);
                let new_floor: i64 = nth_oldest.query_row(params![client, offset], |r| r.get(0))?;
                dropped += drop_upto.execute(params![client, new_floor])? as u64;
                raise_floor.execute(params![client, new_floor])?;
            }
        }
        tx.commit()?;
        Ok((fresh, added, dropped))
    };
    attempt().unwrap_or_else(|e| {
        tracing::error!(error = %e, "could not record used tickets; refusing to resume them");
        (vec![false; batch.len()], 0, 0)
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const ALICE: Fingerprint = Fingerprint::from_bytes([0xa1; 32]);
    const BOB: Fingerprint = Fingerprint::from_bytes([0xb0; 32]);

    #[test]
    fn a_full_cluster_ledger_answers_used_and_leaves_the_event_stream_alone() {
        // The bucket is bounded, so clients chaining resumptions cannot
        // fill the NATS servers' disks; once full, a claim is "used" (a
        // full handshake), never fresh twice.
        let nats = hush_testkit::nats::NatsCluster::start(1);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let config = crate::log::jetstream::ClusterConfig::new(
            nats.urls().split(',').map(str::to_owned).collect(),
        );
        let log = rt
            .block_on(crate::log::jetstream::JetStreamLog::open(&config))
            .unwrap();
        let handle = log.handle();
        let far = now_ms() + 600_000;
        rt.block_on(async {
            let (_, ledger) = ClusterLedger::open(&handle, Duration::from_secs(600), 4 * 1024)
                .await
                .unwrap();
            let mut fresh = 0u32;
            for i in 0..200u32 {
                let mut id = [0u8; TICKET_ID_LEN];
                id[..4].copy_from_slice(&i.to_be_bytes());
                if ledger.claim(id, ALICE, far).await {
                    fresh += 1;
                } else {
                    break;
                }
            }
            assert!(
                (1..200).contains(&fresh),
                "4 KiB holds some entries, not 200: {fresh}"
            );
            // Full: a new id is refused, and so, still, is a used one.
            assert!(!ledger.claim([0xee; TICKET_ID_LEN], BOB, far).await);
            assert!(!ledger.claim([0; TICKET_ID_LEN], ALICE, far).await);
            // The relay's event stream has its own limits.
            let info = handle.stream().get_info().await.unwrap();
            assert!(info.config.max_bytes <= 0, "{}", info.config.max_bytes);
        });
    }

    #[tokio::test]
    async fn a_ticket_id_is_fresh_once_even_across_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let far = now_ms() + 60_000;
        {
            let ledger = TicketLedger::open(dir.path(), 64).unwrap();
            assert!(ledger.claim([1; 16], ALICE, far).await);
            assert!(!ledger.claim([1; 16], ALICE, far).await);
            assert!(ledger.claim([2; 16], ALICE, far).await);
        }
        // Give the old thread a moment to close its connection.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let ledger = TicketLedger::open(dir.path(), 64).unwrap();
        assert!(
            !ledger.claim([1; 16], ALICE, far).await,
            "remembered after a restart"
        );
        assert!(ledger.claim([3; 16], ALICE, far).await);
    }

    #[tokio::test]
    async fn a_full_ledger_refuses_claims_instead_of_growing() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = TicketLedger::open(dir.path(), 64).unwrap();
        drop(ledger);
        let conn = Connection::open(dir.path().join(LEDGER_FILE)).unwrap();
        let (tx, rx) = mpsc::channel::<Claim>(16);
        let bounds = Bounds {
            cap: 2,
            per_identity: 64,
        };
        std::thread::spawn(move || run(conn, rx, bounds));
        let ledger = TicketLedger { tx };
        let far = now_ms() + 60_000;
        assert!(ledger.claim([1; 16], ALICE, far).await);
        assert!(ledger.claim([2; 16], ALICE, far).await);
        assert!(
            !ledger.claim([3; 16], ALICE, far).await,
            "full: refused, not recorded"
        );
        assert!(!ledger.claim([1; 16], ALICE, far).await, "still used");
    }

    #[tokio::test]
    async fn an_identity_over_its_quota_loses_its_oldest_tickets_never_its_newest() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = TicketLedger::open(dir.path(), 2).unwrap();
        let t = now_ms() + 60_000;
        // An unused ticket of alice's, issued before the others (another
        // device's, say).
        let old_unused = ([9; 16], t);
        for (i, id) in [[1; 16], [2; 16], [3; 16]].into_iter().enumerate() {
            assert!(ledger.claim(id, ALICE, t + 1 + i as u64).await);
        }
        // Her oldest used id left the ledger, but is still used: so is
        // every ticket of hers expiring no later.
        assert!(
            !ledger.claim([1; 16], ALICE, t + 1).await,
            "dropped, still used"
        );
        assert!(!ledger.claim(old_unused.0, ALICE, old_unused.1).await);
        assert!(!ledger.claim([2; 16], ALICE, t + 2).await);
        assert!(!ledger.claim([3; 16], ALICE, t + 3).await);
        // The newest ticket, which a chaining client holds, resumes.
        assert!(ledger.claim([4; 16], ALICE, t + 4).await);
        // Nobody else is touched.
        assert!(ledger.claim([1; 16].map(|b| b ^ 0xff), BOB, t).await);
        drop(ledger);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let conn = Connection::open(dir.path().join(LEDGER_FILE)).unwrap();
        let held: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM used_tickets WHERE client = ?1",
                [&ALICE.as_bytes()[..]],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(held, 2, "alice holds her quota, no more");
    }

    #[tokio::test]
    async fn a_ledger_of_the_old_schema_is_upgraded_and_keeps_its_used_ids() {
        let dir = tempfile::tempdir().unwrap();
        let far = i64::try_from(now_ms() + 60_000).unwrap();
        {
            let conn = Connection::open(dir.path().join(LEDGER_FILE)).unwrap();
            conn.execute_batch(
                "CREATE TABLE used_tickets (
                     id BLOB PRIMARY KEY NOT NULL,
                     expires_ms INTEGER NOT NULL
                 ) WITHOUT ROWID;",
            )
            .unwrap();
            conn.execute(
                "INSERT INTO used_tickets (id, expires_ms) VALUES (?1, ?2)",
                params![&[7u8; 16][..], far],
            )
            .unwrap();
        }
        let ledger = TicketLedger::open(dir.path(), 64).unwrap();
        let far = u64::try_from(far).unwrap();
        assert!(
            !ledger.claim([7; 16], ALICE, far).await,
            "used before the upgrade"
        );
        assert!(ledger.claim([8; 16], ALICE, far).await);
        drop(ledger);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let conn = Connection::open(dir.path().join(LEDGER_FILE)).unwrap();
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, LEDGER_SCHEMA_VERSION);
        let plan: String = conn
            .query_row(
                "EXPLAIN QUERY PLAN DELETE FROM used_tickets WHERE expires_ms <= 5",
                [],
                |r| r.get(3),
            )
            .unwrap();
        assert!(plan.contains("used_tickets_by_expiry"), "{plan}");
        drop(conn);
        // Opening again changes nothing; a newer ledger is refused.
        drop(TicketLedger::open(dir.path(), 64).unwrap());
        tokio::time::sleep(Duration::from_millis(100)).await;
        let conn = Connection::open(dir.path().join(LEDGER_FILE)).unwrap();
        conn.pragma_update(None, "user_version", 9).unwrap();
        drop(conn);
        let err = TicketLedger::open(dir.path(), 64)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("newer") && err.contains(LEDGER_FILE), "{err}");
    }

    #[cfg(unix)]
    #[test]
    fn a_ticket_key_or_data_folder_open_to_others_is_refused_with_the_chmod_to_run() {
        use std::os::unix::fs::PermissionsExt;
        let top = tempfile::tempdir().unwrap();
        let dir = top.path().join("relay");
        crate::create_private_dir(&dir).unwrap();
        load_or_create_key(&dir).unwrap();
        let key = dir.join(TICKET_KEY_FILE);
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = load_or_create_key(&dir).err().unwrap().to_string();
        assert!(
            err.contains(&format!("Fix it with: chmod 600 {}", key.display())),
            "{err}"
        );
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(load_or_create_key(&dir).is_ok());

        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let err = crate::create_private_dir(&dir).err().unwrap().to_string();
        assert!(
            err.contains(&format!("Fix it with: chmod 700 {}", dir.display())),
            "{err}"
        );
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        assert!(crate::create_private_dir(&dir).is_ok());
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

/// The used-ticket ledger of a relay: its own SQLite file, or, in a
/// cluster, a JetStream KV bucket every relay shares.
#[derive(Clone)]
pub(crate) enum Ledger {
    /// `tickets.sqlite` in the data folder.
    Local(TicketLedger),
    /// The cluster's bucket.
    Cluster(Box<ClusterLedger>),
}

impl Ledger {
    /// Records that ticket `id`, issued to `client`, was used. True only
    /// the first time, on any relay of the cluster.
    pub(crate) async fn claim(
        &self,
        id: [u8; TICKET_ID_LEN],
        client: Fingerprint,
        expires_ms: u64,
    ) -> bool {
        match self {
            Ledger::Local(l) => l.claim(id, client, expires_ms).await,
            Ledger::Cluster(l) => l.claim(id, client, expires_ms).await,
        }
    }
}

/// KV bucket of used ticket ids in a cluster. Entries expire with the
/// bucket's max age, the ticket lifetime: a ticket is claimed before it
/// expires, so its entry outlives it.
pub const CLUSTER_LEDGER_BUCKET: &str = "HUSH_TICKETS";
/// Bytes the cluster's used-ticket bucket may hold, at most: about as many
/// entries as the local ledger's [`MAX_LEDGER_ROWS`] (an entry is a
/// 64-character key and a 32-byte value, with JetStream's headers about
/// 200 bytes). Without a bound, clients chaining resumptions would grow it
/// until the NATS servers' disks fill, taking the event stream with them.
/// A full bucket refuses new entries (KV buckets discard new), so a claim
/// answers "used" and the client makes a full handshake: never a
/// replayable one.
pub const CLUSTER_LEDGER_MAX_BYTES: i64 = 256 * 1024 * 1024;

/// KV bucket holding the cluster's one ticket key (kept, no expiry).
pub const CLUSTER_KEY_BUCKET: &str = "HUSH_TICKET_KEY";
/// The key's entry in [`CLUSTER_KEY_BUCKET`].
const CLUSTER_KEY_ENTRY: &str = "key";

/// The cluster's used-ticket ledger: a claim is a KV `create`, which the
/// bucket refuses for a key that exists, atomically across relays (the
/// same expected-last-subject-sequence check as the event log), and which
/// returns only once the bucket's quorum holds it.
#[derive(Clone)]
pub(crate) struct ClusterLedger {
    kv: async_nats::jetstream::kv::Store,
}

fn hex_id(id: &[u8]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

impl ClusterLedger {
    /// Opens (or creates) the cluster's ticket key and ledger buckets: the
    /// first relay to start makes the key, every other one reads it, so a
    /// ticket from one relay resumes on any.
    ///
    /// # Errors
    /// A message naming the bucket that could not be used.
    pub(crate) async fn open(
        stream: &crate::log::jetstream::JetStreamHandle,
        lifetime: Duration,
        max_bytes: i64,
    ) -> Result<(Secret32, Self), String> {
        use async_nats::jetstream::kv;
        let js = stream.context();
        // `max_bytes` 0: no limit (the server's default).
        let bucket = |name: &str, max_age: Duration, history: i64, max_bytes: i64| kv::Config {
            bucket: name.to_owned(),
            history,
            max_age,
            max_bytes,
            num_replicas: stream.replicas(),
            storage: async_nats::jetstream::stream::StorageType::File,
            ..Default::default()
        };
        let keys = crate::log::jetstream::retry_starting("ticket key bucket", || {
            js.create_or_update_key_value(bucket(CLUSTER_KEY_BUCKET, Duration::ZERO, 1, 0))
        })
        .await
        .map_err(|e| format!("cannot use the KV bucket {CLUSTER_KEY_BUCKET}: {e}"))?;
        let key = crate::log::jetstream::retry_starting("ticket key", || async {
            let fresh = Secret32::random();
            match keys
                .create(CLUSTER_KEY_ENTRY, fresh.expose_secret().to_vec().into())
                .await
            {
                Ok(_) => Ok(fresh),
                Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {
                    let stored = keys
                        .get(CLUSTER_KEY_ENTRY)
                        .await
                        .map_err(|e| format!("cannot read the cluster's ticket key: {e}"))?
                        .ok_or("the cluster's ticket key is missing")?;
                    Secret32::from_slice(&stored).ok_or_else(|| {
                        "the cluster's ticket key is not 32 bytes; delete the HUSH_TICKET_KEY \
                         bucket to make a new one"
                            .to_owned()
                    })
                }
                Err(e) => Err(format!("cannot store the cluster's ticket key: {e}")),
            }
        })
        .await?;
        let used = crate::log::jetstream::retry_starting("ticket ledger bucket", || {
            js.create_or_update_key_value(bucket(CLUSTER_LEDGER_BUCKET, lifetime, 1, max_bytes))
        })
        .await
        .map_err(|e| format!("cannot use the KV bucket {CLUSTER_LEDGER_BUCKET}: {e}"))?;
        Ok((key, Self { kv: used }))
    }

    async fn claim(&self, id: [u8; TICKET_ID_LEN], client: Fingerprint, expires_ms: u64) -> bool {
        if expires_ms <= now_ms() {
            return false;
        }
        match self
            .kv
            .create(hex_id(&id), client.as_bytes().to_vec().into())
            .await
        {
            Ok(_) => true,
            Err(e) => {
                if e.kind() != async_nats::jetstream::kv::CreateErrorKind::AlreadyExists {
                    // Unsure: a full handshake, never a replayable one.
                    tracing::warn!(error = %e, "cannot record a ticket in the cluster ledger");
                }
                false
            }
        }
    }
}
