//! `hush bench fanout --crypto full`: the fanout workload with every
//! message signed, sealed, verified and opened as real clients do.
//!
//! ```text
//!   setup: one commit (built by the bench) opens epoch 1 for the bench identity
//!   each member: a real Room on its own connection
//!     publisher: Room::send_text (seal + sign) ─▶ Publish
//!     everyone:  relay event ─▶ Room::on_event (chain, verify, open) ─▶ Show(Message) = 1 delivery
//! ```
//!
//! Every member uses the bench identity, as the `relay` mode's connections
//! do: the per-message work (one RSA-PSS signature per message sent; one
//! verification, one HKDF and one AES-GCM opening per message received) is
//! the same as with distinct identities, which only change the cost of
//! commits, and this workload makes none (periodic rekeying is off, so the
//! epoch stays the same however many messages are sent). Each Room still
//! keeps its own session, counters, replay set and hash chain.
//!
//! Called by `fanout.rs`, which starts the relay and prints the
//! result; this file only imports helpers below it.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use hush_client::app::{now_ms, os_entropy};
use hush_client::display::render_line;
use hush_crypto::Identity;
use hush_proto::{ClientMsg, RelayMsg, RoomName};
use hush_room::{Action, RekeyPolicy, Room, Shown};
use tokio::sync::watch;

use super::child_relay::{proc_usage, usage_between};
use super::live::{Live, build_commit};
use super::load::{FanoutArgs, FanoutResult, allowed};
use super::stats::{Tally, latency_us, ns_since};

/// A line of `size` bytes naming its publisher, counter and send time
/// (ns since the start), padded.
fn line(p: usize, n: u64, ns: u64, size: usize) -> String {
    let mut text = format!("{p} {n} {ns} ");
    while text.len() < size {
        text.push('x');
    }
    text
}

/// The publisher and send time of a [`line`].
fn parse(text: &str) -> Option<(usize, u64)> {
    let mut it = text.split(' ');
    let p = it.next()?.parse().ok()?;
    let _n: u64 = it.next()?.parse().ok()?;
    let ns = it.next()?.parse().ok()?;
    Some((p, ns))
}

/// The `full` mode: every member a real Room, every message sealed and
/// signed, verified and opened.
pub(crate) async fn run_fanout_full(
    a: &FanoutArgs,
    window: u64,
    addr: &str,
    identity: Arc<Identity>,
    pid: Option<u32>,
) -> Result<FanoutResult> {
    let name = RoomName::new("bench-full")?;
    let frame = hush_proto::DEFAULT_MAX_FRAME * 16;
    // The room: epoch 1, one member (the identity every connection uses).
    let setup = build_commit(
        &identity,
        &name,
        (0, [0; 32]),
        &[(identity.public().clone(), "bench".into())],
    )?;
    let mut c =
        hush_client::link::Connection::connect(addr, identity.clone(), frame, |_| Ok(())).await?;
    c.writer
        .send(&ClientMsg::Join { room: name.clone() })
        .await?;
    let mut published_setup = false;
    loop {
        match c.reader.recv().await? {
            RelayMsg::Joined { epoch, .. } if epoch > 0 => break,
            RelayMsg::Joined { .. } if !published_setup => {
                published_setup = true;
                c.writer
                    .send(&ClientMsg::Publish {
                        request: 0,
                        event: setup.clone(),
                    })
                    .await?;
            }
            RelayMsg::Event(_) => break,
            RelayMsg::Rejected { reason, .. } => {
                bail!("the relay refused the room's first commit: {reason:?}")
            }
            _ => {}
        }
    }
    drop(c);

    eprintln!(
        "connecting {} members to {addr}, each with its own Room",
        a.members
    );
    let no_rekey = RekeyPolicy {
        max_messages: 0,
        max_age: Duration::ZERO,
    };
    let mut members = Vec::with_capacity(a.members);
    for i in 0..a.members {
        // The name the setup commit gives every member: none announces
        // another (which this catch-up loop would not send).
        let room = Room::new(name.clone(), identity.clone(), "bench".into(), os_entropy())
            .with_rekey_policy(no_rekey);
        let mut live = Live::connect(addr, &identity, room, frame)
            .await
            .with_context(|| format!("member {i} could not connect"))?;
        // Catch up and unwrap the epoch key before the clock starts.
        while !(live.room.is_member() && live.room.is_settled()) {
            let msg = live.reader.recv().await?;
            let actions = live.on_relay(msg).await?;
            if let Some(problem) = actions.iter().find_map(|x| match x {
                Action::Show(
                    shown @ (Shown::Warning { .. }
                    | Shown::Error { .. }
                    | Shown::Refused { .. }
                    | Shown::QueueFull { .. }),
                ) => Some(render_line(shown)),
                _ => None,
            }) {
                bail!("member {i} could not enter the room: {problem}");
            }
        }
        members.push(live);
    }

    let before = pid.and_then(proc_usage);
    let t0 = Instant::now();
    let deadline = t0 + a.duration;
    let tally = Arc::new(Tally::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    eprintln!(
        "publishing for {:?} from {} publishers ({}), sealed and signed",
        a.duration,
        a.publishers,
        match a.rate {
            Some(r) => format!("{r} messages/s in all"),
            None => format!("window {window}"),
        }
    );
    let mut tasks = Vec::new();
    for (i, live) in members.into_iter().enumerate() {
        let publisher = (i < a.publishers).then_some(i);
        let rate = a.rate.map(|r| r as f64 / a.publishers as f64);
        tasks.push(tokio::spawn(member(
            live,
            publisher,
            rate,
            window,
            a.size,
            t0,
            deadline,
            tally.clone(),
            stop_rx.clone(),
        )));
    }
    // Publishers stop at the deadline; then let the last deliveries arrive.
    tokio::time::sleep_until(deadline.into()).await;
    let seconds = t0.elapsed().as_secs_f64();
    tally.drain(a.members).await;
    let after = pid.and_then(proc_usage);
    let _ = stop_tx.send(true);
    let mut latencies_us = Vec::new();
    for t in tasks {
        latencies_us.extend(t.await??);
    }
    latencies_us.sort_unstable();
    Ok(FanoutResult {
        published: tally.published.load(Ordering::Relaxed),
        deliveries: tally.deliveries.load(Ordering::Relaxed),
        seconds,
        latencies_us,
        wire_bytes: tally.bytes.load(Ordering::Relaxed),
        relay: usage_between(before, after),
    })
}

/// One member: its Room reads every event; a publisher also seals and
/// signs its own messages, within its window or rate, until the deadline.
#[allow(clippy::too_many_arguments)]
async fn member(
    mut live: Live,
    publisher: Option<usize>,
    rate: Option<f64>,
    window: u64,
    size: usize,
    t0: Instant,
    deadline: Instant,
    tally: Arc<Tally>,
    mut stop: watch::Receiver<bool>,
) -> Result<Vec<u64>> {
    let mut samples = Vec::new();
    let (mut sent, mut echoed, mut shown) = (0u64, 0u64, 0u64);
    loop {
        let mut wait = Duration::from_millis(50);
        if let Some(p) = publisher
            && Instant::now() < deadline
        {
            let allowed = allowed(rate, t0, sent, echoed, window);
            if allowed > 0 {
                let mut out = Vec::with_capacity(allowed as usize);
                for _ in 0..allowed {
                    let ns = ns_since(t0);
                    for action in live.room.send_text(line(p, sent, ns, size), now_ms()) {
                        if let Action::Publish { request, event } = action {
                            out.push(ClientMsg::Publish { request, event });
                        }
                    }
                    sent += 1;
                }
                tally.published.fetch_add(allowed, Ordering::Relaxed);
                live.writer.send_all(&out).await?;
            }
            if rate.is_some() {
                wait = Duration::from_millis(1);
            }
        }
        let msg = tokio::select! {
            biased;
            _ = stop.changed() => break,
            m = live.reader.recv() => m,
            () = tokio::time::sleep(wait) => continue,
        };
        let Ok(msg) = msg else { break };
        let actions = live.on_relay(msg).await?;
        let mut out = Vec::new();
        for action in actions {
            match action {
                Action::Show(Shown::Message { text, .. }) => {
                    tally.deliveries.fetch_add(1, Ordering::Relaxed);
                    shown += 1;
                    if let Some((p, sent_ns)) = parse(&text) {
                        if shown.is_multiple_of(8) {
                            samples.push(latency_us(t0, sent_ns));
                        }
                        if Some(p) == publisher {
                            echoed += 1;
                        }
                    }
                }
                Action::Publish { request, event } => {
                    out.push(ClientMsg::Publish { request, event });
                }
                _ => {}
            }
        }
        if !out.is_empty() {
            live.writer.send_all(&out).await?;
        }
    }
    tally
        .bytes
        .fetch_add(live.reader.bytes_read(), Ordering::Relaxed);
    Ok(samples)
}
