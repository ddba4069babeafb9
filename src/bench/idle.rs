//! `hush bench idle`: connections handshaken and joined to one room, then
//! idle, to read the relay's memory per connection from /proc.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use hush_proto::RoomName;

use super::child_relay::{local_setup, proc_status_kib, proc_usage};
use super::live::join_all;

/// Flags of `hush bench idle`.
#[derive(Debug, clap::Args)]
pub(crate) struct IdleArgs {
    /// Connections to hold.
    #[arg(long, default_value_t = 1000)]
    clients: usize,
    /// Print the results as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs `hush bench idle`.
pub(crate) fn idle(a: &IdleArgs) -> Result<()> {
    if a.clients == 0 {
        bail!("--clients must be at least 1");
    }
    let (relay, identity, runtime) = local_setup()?;
    let pid = relay.child.id();
    let before = proc_usage(pid).context("cannot read the relay's memory from /proc")?;
    let addr = relay.addr.clone();
    let clients = a.clients;
    let held = runtime.block_on(async move {
        let room = RoomName::new("bench-idle")?;
        join_all(&addr, &identity, &room, clients).await
    })?;
    std::thread::sleep(Duration::from_millis(500));
    let after = proc_usage(pid).context("cannot read the relay's memory from /proc")?;
    let current_kib = proc_status_kib(pid, "VmRSS:").unwrap_or(after.1);
    let per_conn = (current_kib.saturating_sub(before.1)) as f64 / a.clients as f64;
    drop(held);
    drop(relay);
    if a.json {
        println!(
            "{{\"workload\":\"idle\",\"clients\":{},\"relay_rss_kib_before\":{},\"relay_rss_kib\":{},\"relay_rss_kib_per_connection\":{:.2}}}",
            a.clients, before.1, current_kib, per_conn
        );
    } else {
        println!(
            "hush bench idle: {} connections handshaken and joined to one room",
            a.clients
        );
        println!("  relay RSS before       {:>10} KiB", before.1);
        println!("  relay RSS with them    {:>10} KiB", current_kib);
        println!("  per connection         {per_conn:>10.2} KiB");
    }
    Ok(())
}
