//! # hush-server: the relay
//!
//! The relay routes and orders room events; it never holds a room key or a
//! plaintext. Nothing in this crate can name a type that does: room event
//! bodies are `Vec<u8>` it stores and forwards unread.
//!
//! ```text
//!   Listener ── accept (relay.rs: connection slots, per-IP limits, handshake rate)
//!      │
//!      ├─▶ connection task ×N  (connection.rs: handshake, records, limits)
//!      │        │ Join/Leave ──────────▶ Hub (hub.rs: membership, fan-out; a room
//!      │        │                              nobody is in is joined via the sequencer)
//!      │        │ Publish ─▶ Sequencer thread (sequencer.rs) ─▶ EventLog (log/, SQLite)
//!      │        │                             └── after commit ─▶ Hub.fan_out
//!      │        └ Backfill ─▶ log readers (log/reader_pool.rs)
//!      ├─▶ keepalive sweep (keepalive.rs: pings quiet links, closes idle ones)
//!      └─▶ shutdown (relay.rs): stop accepting, close connections, drain sequencer
//! ```
//!
//! - `relay`: [`Relay`] binds, restores the log, runs the accept loop
//!   and shutdown.
//! - `connection`: one client link; `keepalive`: the idle sweep over all.
//! - `hub`: who is in which room, and the per-connection outbound queues.
//! - `sequencer`: the single writer; orders, commits, then fans out.
//! - [`log`]: the durable log behind the [`log::EventLog`] trait: SQLite
//!   (`log/retention.rs`: pruning; `log/reader_pool.rs`: backfill readers;
//!   `log/conformance.rs`: the suite every implementation passes).
//! - [`config`]: limits; [`tickets`]: session-ticket key and ledger.
//! - [`blobs`]: sealed file chunks on disk, with per-identity quotas and
//!   expiry.
//! - `codes`: invitation-code mailboxes, in memory: forwards the two
//!   clients' opaque SPAKE2 steps, one claim per code.
//!
//! Room events carry the protocol's own types ([`hush_proto::RoomEvent`],
//! [`hush_proto::SequencedEvent`], [`hush_proto::EventKind`]) from the
//! socket through the sequencer into the log and back out: the relay has
//! no event type of its own. The wire is docs/PROTOCOL.md; the relay's
//! rules are its §8; docs/ARCHITECTURE.md places the relay among the crates.
//!
//! What it must never do: deliver an event before it is committed, let one
//! connection's input stall another, trust a length before checking it, or
//! panic on anything a peer sends.
#![forbid(unsafe_code)]

pub mod admin;
pub mod blobs;
mod cluster;
mod codes;
pub mod config;
mod connection;
mod hub;
mod keepalive;
pub mod log;
pub mod metrics;
mod relay;
mod sequencer;
pub mod tickets;

use std::net::SocketAddr;
use std::path::Path;

pub use config::{Limits, RelayConfig};
pub use connection::BACKFILL_PAGE;
pub use log::Retention;
pub use relay::Relay;
pub use sequencer::CHECKPOINT_EVERY;

/// File name of the durable log inside the data folder.
pub const LOG_FILE: &str = "events.sqlite";

/// Why the relay could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The file store could not be opened.
    #[error("cannot open the file store: {0}")]
    Files(String),
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The data folder could not be created or used.
    #[error("cannot use data folder {path}: {error}")]
    DataDir {
        /// The folder.
        path: String,
        /// Why (not a `source`: the message already says it once).
        error: std::io::Error,
    },
    /// The durable log could not be opened.
    #[error("cannot open the event log: {0}")]
    Log(#[from] log::LogError),
    /// A thread could not be started.
    #[error("cannot start the sequencer: {0}")]
    Thread(std::io::Error),
    /// The ticket key or ledger could not be opened.
    #[error("cannot use the session-ticket files in the data folder: {0}")]
    Tickets(String),
}

/// Creates the data folder (and parents) readable only by its owner, and
/// refuses an existing one that group or others can enter: it holds the
/// ticket key, the relay key and the metadata of every room.
///
/// # Errors
/// [`RelayError::DataDir`] naming the folder (and, for a loose mode, the
/// `chmod` that fixes it).
pub fn create_private_dir(path: &Path) -> Result<(), RelayError> {
    let err = |error| RelayError::DataDir {
        path: path.display().to_string(),
        error,
    };
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(path).map_err(err)?;
    check_private_mode(path, 0o700).map_err(err)
}

/// Refuses `path` if group or others have any access to it (as ssh does
/// for keys), with an error that gives the `chmod` to run: `fix` is the
/// mode to suggest.
///
/// # Errors
/// `PermissionDenied` for a loose mode; the metadata error otherwise.
pub(crate) fn check_private_mode(path: &Path, fix: u32) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!(
                    "{} is open to other users (mode {mode:04o}); it must be private to the relay. Fix it with: chmod {fix:o} {}",
                    path.file_name()
                        .map_or(path.display(), |n| Path::new(n).display()),
                    path.display()
                ),
            ));
        }
    }
    #[cfg(not(unix))]
    let _ = (path, fix);
    Ok(())
}
