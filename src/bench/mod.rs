//! `hush bench`: measures a relay the way `redis-benchmark` measures Redis.
//!
//! ```text
//!   hush bench fanout ──▶ starts `hush server` on 127.0.0.1:0 (or uses --server)
//!        │                 M members connect (real handshakes) and join #bench
//!        │                 P of them publish opaque room events of S bytes
//!        └─ table on stdout: deliveries/s, latency, losses, bytes, relay CPU and RSS
//! ```
//!
//! `--crypto relay` sends valid, opaque room events of realistic size: the
//! relay does all its real work (sequencing, group commit, fan-out,
//! sealing) while the clients skip end-to-end crypto, so what is measured
//! is the relay's cost. `--crypto full` ([`fanout_full`]) adds the clients'
//! end-to-end work.
//!
//! This file holds the subcommand tree and the dispatch only. Each
//! workload is a file with its own flags and `run`-like entry point; they
//! share the helpers below them and never import upward:
//!
//! ```text
//!   mod.rs ──▶ fanout ──▶ fanout_full, fanout_redis ──▶ load (FanoutArgs, FanoutResult, pacing)
//!          ├─▶ idle, handshake, crypto, file
//!          └─▶ admit ──▶ admit_rounds, identities
//!   helpers: child_relay (the relay, /proc, bench identity), live (joined
//!            connections, real Rooms, bench-built commits), stats
//! ```

mod admit;
mod admit_rounds;
mod child_relay;
mod crypto;
mod fanout;
mod fanout_full;
mod fanout_redis;
mod file;
mod handshake;
mod identities;
mod idle;
mod live;
mod load;
mod stats;

use anyhow::Result;

/// Flags of `hush bench`: which workload, and its own flags.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    workload: Workload,
}

#[derive(Debug, clap::Subcommand)]
enum Workload {
    /// Members in one room; publishers send, everyone receives.
    Fanout(load::FanoutArgs),
    /// Connections handshaken and joined to one room, then idle: the
    /// relay's memory per connection.
    Idle(idle::IdleArgs),
    /// Full and resumed handshakes per second (or, with --reconnect,
    /// clients back after a relay restart).
    Handshake(handshake::HandshakeArgs),
    /// The cryptographic operations hush is built from, one core.
    Crypto(crypto::CryptoArgs),
    /// Time to admit a newcomer to a room of M members, end to end.
    Admit(admit::AdmitArgs),
    /// A sealed file up to a local relay and back, beside sealing alone
    /// and a raw loopback copy.
    File(file::FileArgs),
}

/// Runs the chosen workload and prints its results.
pub fn run(args: BenchArgs) -> Result<()> {
    match args.workload {
        Workload::Fanout(a) => fanout::fanout(a),
        Workload::Idle(a) => idle::idle(&a),
        Workload::Handshake(a) => handshake::handshake(&a),
        Workload::Crypto(a) => crypto::crypto(&a),
        Workload::Admit(a) => admit::run(&a),
        Workload::File(a) => file::file(&a),
    }
}
