//! `hush bench handshake`: full and resumed handshakes per second against
//! a relay the bench starts, or (`--reconnect`) how long held clients take
//! to come back and rejoin after the relay is killed and restarted.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use hush_client::link::Connection;
use hush_crypto::Identity;
use hush_proto::{ClientMsg, RelayMsg, RoomName};

use super::child_relay::{local_setup, proc_usage};
use super::live::join_all;
use crate::paths::parse_duration;

/// Flags of `hush bench handshake`.
#[derive(Debug, clap::Args)]
pub(crate) struct HandshakeArgs {
    /// Handshakes in flight at once.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Instead: hold this many connections, restart the relay, and time
    /// how long they all take to reconnect (resuming their tickets) and
    /// rejoin their room.
    #[arg(long, value_name = "CLIENTS")]
    reconnect: Option<usize>,
    /// How long to keep handshaking (e.g. 10s).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Print the results as JSON.
    #[arg(long)]
    json: bool,
}

/// Handshakes of one kind, `concurrency` at a time for `duration`: full
/// ones, or resumed ones (each task resumes with the ticket its last
/// handshake got).
async fn handshake_round(
    addr: &str,
    identity: &Arc<Identity>,
    concurrency: usize,
    duration: Duration,
    resume: bool,
) -> (u64, u64, u64, f64) {
    let deadline = Instant::now() + duration;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let addr = addr.to_owned();
        let identity = identity.clone();
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut bad, mut resumed) = (0u64, 0u64, 0u64);
            let mut ticket = None;
            while Instant::now() < deadline {
                let offer = if resume { ticket.take() } else { None };
                match Connection::connect_resuming(
                    &addr,
                    identity.clone(),
                    hush_proto::DEFAULT_MAX_FRAME,
                    offer,
                    |_| Ok(()),
                )
                .await
                {
                    Ok(c) => {
                        ok += 1;
                        resumed += u64::from(c.resumed);
                        ticket = c.ticket;
                    }
                    Err(_) => bad += 1,
                }
            }
            (ok, bad, resumed)
        }));
    }
    let (mut ok, mut bad, mut resumed) = (0, 0, 0);
    for t in tasks {
        if let Ok((o, b, r)) = t.await {
            ok += o;
            bad += b;
            resumed += r;
        }
    }
    (ok, bad, resumed, start.elapsed().as_secs_f64())
}

/// Runs `hush bench handshake`.
pub(crate) fn handshake(a: &HandshakeArgs) -> Result<()> {
    if let Some(clients) = a.reconnect {
        return reconnect(clients.max(1), a.concurrency.max(1), a.json);
    }
    let (relay, identity, runtime) = local_setup()?;
    let pid = relay.child.id();
    let addr = relay.addr.clone();
    let concurrency = a.concurrency.max(1);
    let duration = a.duration;
    let mut rows = Vec::new();
    for resume in [false, true] {
        let kind = if resume { "resumed" } else { "full" };
        eprintln!("{kind} handshakes for {duration:?}, {concurrency} at a time");
        let before = proc_usage(pid);
        let (done, failed, resumed, seconds) = runtime.block_on(handshake_round(
            &addr,
            &identity,
            concurrency,
            duration,
            resume,
        ));
        let after = proc_usage(pid);
        let cpu_ms = match (before, after) {
            (Some((c0, _)), Some((c1, _))) if done > 0 => Some((c1 - c0) / done as f64 * 1000.0),
            _ => None,
        };
        rows.push((
            kind,
            done,
            failed,
            resumed,
            done as f64 / seconds,
            seconds,
            cpu_ms,
        ));
    }
    drop(relay);
    if a.json {
        let parts: Vec<String> = rows
            .iter()
            .map(|(kind, done, failed, resumed, rate, seconds, cpu)| {
                format!(
                    "\"{kind}\":{{\"seconds\":{seconds:.2},\"handshakes\":{done},\"failed\":{failed},\"resumed\":{resumed},\"handshakes_per_s\":{rate:.1},\"relay_cpu_ms_per_handshake\":{}}}",
                    cpu.map_or("null".into(), |c| format!("{c:.3}"))
                )
            })
            .collect();
        println!(
            "{{\"workload\":\"handshake\",\"concurrency\":{concurrency},{}}}",
            parts.join(",")
        );
    } else {
        println!("hush bench handshake: {concurrency} at a time, {duration:?} each");
        println!("  kind        handshakes        per s   failed  relay CPU / handshake");
        for (kind, done, failed, resumed, rate, _, cpu) in &rows {
            let note = if *kind == "resumed" {
                format!("  ({resumed} resumed)")
            } else {
                String::new()
            };
            println!(
                "  {kind:<8} {done:>13} {rate:>12.1} {failed:>8}  {}{note}",
                cpu.map_or("-".into(), |c| format!("{c:.3} ms"))
            );
        }
    }
    Ok(())
}

/// `--reconnect N`: N connections joined to a room; the relay is killed
/// and restarted on the same port and data folder; every client
/// reconnects (offering its ticket, `concurrency` at a time) and rejoins.
fn reconnect(clients: usize, concurrency: usize, json: bool) -> Result<()> {
    let (mut relay, identity, runtime) = local_setup()?;
    let addr = relay.addr.clone();
    let room = RoomName::new("bench-reconnect")?;
    eprintln!("connecting {clients} clients (full handshakes)");
    let tickets = runtime.block_on(join_all(&addr, &identity, &room, clients))?;
    let tickets: Vec<_> = tickets.into_iter().map(|c| c.ticket).collect();
    eprintln!("restarting the relay");
    relay.restart()?;
    let start = Instant::now();
    let (back, resumed) = runtime.block_on(async {
        let queue = Arc::new(std::sync::Mutex::new(tickets));
        let mut tasks = Vec::new();
        for _ in 0..concurrency.min(clients) {
            let queue = queue.clone();
            let (addr, identity, room) = (addr.clone(), identity.clone(), room.clone());
            tasks.push(tokio::spawn(async move {
                let (mut back, mut resumed, mut held) = (0u64, 0u64, Vec::new());
                loop {
                    let next = queue.lock().ok().and_then(|mut q| q.pop());
                    let Some(ticket) = next else { break };
                    let Ok(mut c) = Connection::connect_resuming(
                        &addr,
                        identity.clone(),
                        hush_proto::DEFAULT_MAX_FRAME,
                        ticket,
                        |_| Ok(()),
                    )
                    .await
                    else {
                        continue;
                    };
                    if c.writer
                        .send(&ClientMsg::Join { room: room.clone() })
                        .await
                        .is_err()
                    {
                        continue;
                    }
                    while let Ok(m) = c.reader.recv().await {
                        if let RelayMsg::Joined { .. } = m {
                            back += 1;
                            resumed += u64::from(c.resumed);
                            break;
                        }
                    }
                    held.push(c);
                }
                (back, resumed, held)
            }));
        }
        let (mut back, mut resumed, mut held) = (0, 0, Vec::new());
        for t in tasks {
            if let Ok((b, r, h)) = t.await {
                back += b;
                resumed += r;
                held.extend(h);
            }
        }
        (back, resumed)
    });
    let seconds = start.elapsed().as_secs_f64();
    drop(relay);
    if json {
        println!(
            "{{\"workload\":\"handshake-reconnect\",\"clients\":{clients},\"concurrency\":{concurrency},\"back\":{back},\"resumed\":{resumed},\"seconds\":{seconds:.3}}}"
        );
    } else {
        println!("hush bench handshake --reconnect: {clients} clients, relay restarted");
        println!("  back and rejoined      {back:>10}   ({resumed} resumed a ticket)");
        println!("  all back after         {seconds:>10.3} s");
    }
    Ok(())
}
