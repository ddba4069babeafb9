//! `hush bench fanout`: M members in one room, P of them publishing. The
//! entry point checks the flags, starts (or points at) the relay, runs one
//! of the two modes and prints the table; the `relay` mode (opaque events,
//! no client crypto) is here, the `full` mode in [`super::fanout_full`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use hush_client::link::Connection;
use hush_crypto::Identity;
use hush_proto::{ClientMsg, EventKind, RelayMsg, RoomEvent, RoomName};
use tokio::sync::Notify;

use super::child_relay::{
    bench_identity, pin, proc_usage, runtime, start_relay, start_relay_in, usage_between,
};
use super::fanout_full::run_fanout_full;
use super::fanout_redis::{run_fanout_redis, start_redis};
use super::live::join;
use super::load::{Crypto, FanoutArgs, FanoutResult, next_allowed};
use super::stats::{Tally, latency_us, ns_since, percentile};

/// Bytes at the start of every bench body: publisher, counter, send time.
const HEADER: usize = 20;

/// Runs `hush bench fanout`.
pub(crate) fn fanout(a: FanoutArgs) -> Result<()> {
    if a.members == 0 || a.publishers == 0 || a.publishers > a.members {
        bail!("need at least one member and one publisher, and no more publishers than members");
    }
    if a.size < HEADER {
        bail!("--size must be at least {HEADER} bytes");
    }
    let window = a.window.unwrap_or(32).max(1);
    if a.redis {
        let redis = start_redis(&a.redis_server)?;
        if let Some(cpus) = &a.relay_cpus {
            pin(redis.child.id(), cpus)?;
        }
        if let Some(cpus) = &a.client_cpus {
            pin(std::process::id(), cpus)?;
        }
        let pid = Some(redis.child.id());
        let result = runtime()?.block_on(run_fanout_redis(&a, window, &redis.addr, pid))?;
        drop(redis);
        print_results(&a, window, &result);
        return Ok(());
    }
    let (identity, key_path) = bench_identity()?;
    // The relays the bench starts: one, or with --cluster one per node of
    // a cluster sharing the NATS servers named (each its own data folder).
    let mut relays = Vec::new();
    let mut node_dirs = Vec::new();
    match (&a.server, &a.cluster) {
        (Some(_), _) => {}
        (None, Some(urls)) => {
            for i in 0..a.relays.max(1) {
                let base =
                    std::env::temp_dir().join(format!("hush-bench-{}-node{i}", std::process::id()));
                std::fs::create_dir_all(&base)?;
                let extra = ["--cluster".to_owned(), urls.clone()];
                relays.push(start_relay_in(&key_path, &base, &extra)?);
                node_dirs.push(base);
            }
        }
        (None, None) => relays.push(match &a.log_dir {
            Some(base) => start_relay_in(&key_path, base, &[])?,
            None => start_relay(&key_path)?,
        }),
    }
    let addrs: Vec<String> = match &a.server {
        Some(s) => vec![s.clone()],
        None => relays.iter().map(|r| r.addr.clone()).collect(),
    };
    // Pinned before the load's threads exist: they inherit it.
    if let Some(cpus) = &a.relay_cpus {
        for r in &relays {
            pin(r.child.id(), cpus)?;
        }
    }
    if let Some(cpus) = &a.client_cpus {
        pin(std::process::id(), cpus)?;
    }
    let runtime = runtime()?;
    let pids: Vec<u32> = relays.iter().map(|r| r.child.id()).collect();
    let result = match a.crypto {
        Crypto::Relay => runtime.block_on(run_fanout(&a, window, &addrs, identity, &pids))?,
        Crypto::Full => runtime.block_on(run_fanout_full(
            &a,
            window,
            &addrs[0],
            identity,
            pids.first().copied(),
        ))?,
    };
    drop(relays);
    for dir in node_dirs {
        let _ = std::fs::remove_dir_all(dir);
    }
    print_results(&a, window, &result);
    Ok(())
}

/// The `relay` mode: opaque events of `a.size` bytes, no client crypto.
async fn run_fanout(
    a: &FanoutArgs,
    window: u64,
    addrs: &[String],
    identity: Arc<Identity>,
    pids: &[u32],
) -> Result<FanoutResult> {
    let room = RoomName::new("bench")?;
    eprintln!("connecting {} members to {}", a.members, addrs.join(", "));
    let mut conns = Vec::with_capacity(a.members);
    for i in 0..a.members {
        // Spread evenly over the relays, publishers too.
        let addr = &addrs[i % addrs.len()];
        let c = join(addr, &identity, &room, hush_proto::DEFAULT_MAX_FRAME * 16)
            .await
            .with_context(|| format!("member {i} could not join"))?;
        conns.push(c);
    }
    let run = Run::start(a, pids);
    let (t0, echoed) = (run.t0, run.echoed.clone());
    let mut readers = Vec::new();
    let mut writers = Vec::new();
    for (i, c) in conns.into_iter().enumerate() {
        let Connection {
            mut reader, writer, ..
        } = c;
        let tally = run.tally.clone();
        let stop = run.stop.clone();
        let mine = echoed.get(i).cloned();
        readers.push(tokio::spawn(async move {
            let mut seen = Seen::new(i, t0, mine, tally.clone());
            loop {
                // Closing the members' sending halves ends these reads;
                // the stop signal only frees a reader whose relay never
                // closes (no timer per message: that would cost more than
                // the read).
                let msg = tokio::select! {
                    biased;
                    m = reader.recv() => m,
                    () = stop.notified() => break,
                };
                let Ok(msg) = msg else { break };
                if let RelayMsg::Event(e) = msg {
                    seen.body(&e.event.body);
                }
            }
            tally
                .bytes
                .fetch_add(reader.bytes_read(), Ordering::Relaxed);
            seen.finish()
        }));
        writers.push(writer);
    }
    eprintln!(
        "publishing for {:?} from {} publishers ({})",
        a.duration,
        a.publishers,
        match a.rate {
            Some(r) => format!("{r} events/s in all"),
            None => format!("window {window}"),
        }
    );
    let deadline = Instant::now() + a.duration;
    let mut publishers = Vec::new();
    // Listeners keep their sending half open: dropping it would close
    // their connection.
    let listeners: Vec<_> = writers.split_off(a.publishers);
    for (p, mut writer) in writers.into_iter().enumerate() {
        let echo = echoed[p].clone();
        let room = room.clone();
        let sender = identity.fingerprint();
        let size = a.size;
        let rate = a.rate.map(|r| r as f64 / a.publishers as f64);
        publishers.push(tokio::spawn(async move {
            let mut sent = 0u64;
            let start = Instant::now();
            while let Some(allowed) = next_allowed(rate, start, sent, &echo, window, deadline).await
            {
                let mut batch = Vec::with_capacity(allowed as usize);
                for _ in 0..allowed {
                    let body = bench_body(p, sent, t0, size);
                    batch.push(ClientMsg::Publish {
                        request: sent,
                        event: RoomEvent {
                            room: room.clone(),
                            sender,
                            kind: EventKind::Message,
                            epoch: 0,
                            body,
                        },
                    });
                    sent += 1;
                }
                if writer.send_all(&batch).await.is_err() {
                    break;
                }
            }
            (sent, writer)
        }));
    }
    run.finish(publishers, listeners, readers).await
}

/// A run's shared state, from the first publish to the result.
pub(crate) struct Run {
    pub(crate) t0: Instant,
    members: usize,
    pub(crate) tally: Arc<Tally>,
    /// Frees the readers of a server that never closes.
    pub(crate) stop: Arc<Notify>,
    /// Per publisher: its own events seen back, and a wake-up for it.
    pub(crate) echoed: Vec<Arc<(AtomicU64, Notify)>>,
    /// The servers' CPU and memory when publishing started.
    before: Option<(f64, u64)>,
    pids: Vec<u32>,
}

/// CPU seconds and peak RSS (KiB) of the server processes `pids`, summed.
fn usage_of(pids: &[u32]) -> Option<(f64, u64)> {
    if pids.is_empty() {
        return None;
    }
    pids.iter().try_fold((0.0, 0), |(c, m), pid| {
        proc_usage(*pid).map(|(c1, m1)| (c + c1, m + m1))
    })
}

impl Run {
    /// Starts the clock, with the servers' usage (processes `pids`) now.
    pub(crate) fn start(a: &FanoutArgs, pids: &[u32]) -> Self {
        Self {
            before: usage_of(pids),
            t0: Instant::now(),
            members: a.members,
            tally: Arc::new(Tally::default()),
            stop: Arc::new(Notify::new()),
            echoed: (0..a.publishers)
                .map(|_| Arc::new((AtomicU64::new(0), Notify::new())))
                .collect(),
            pids: pids.to_vec(),
        }
    }

    /// Once the publishers stop: lets the last deliveries arrive, reads
    /// the server's usage, closes the members' sending halves (`W`, held
    /// until then: dropping one closes its connection) and collects the
    /// readers' latency samples.
    pub(crate) async fn finish<W: Send + 'static>(
        self,
        publishers: Vec<tokio::task::JoinHandle<(u64, W)>>,
        listeners: Vec<W>,
        readers: Vec<tokio::task::JoinHandle<Vec<u64>>>,
    ) -> Result<FanoutResult> {
        let mut published = 0;
        let mut keep = Vec::new();
        for p in publishers {
            let (sent, writer) = p.await?;
            published += sent;
            keep.push(writer);
        }
        let seconds = self.t0.elapsed().as_secs_f64();
        // Let the last deliveries arrive.
        self.tally.published.store(published, Ordering::Relaxed);
        self.tally.drain(self.members).await;
        let after = usage_of(&self.pids);
        drop(keep);
        drop(listeners);
        tokio::time::sleep(Duration::from_millis(500)).await;
        self.stop.notify_waiters();
        let mut latencies_us = Vec::new();
        for r in readers {
            latencies_us.extend(r.await?);
        }
        latencies_us.sort_unstable();
        Ok(FanoutResult {
            published,
            deliveries: self.tally.deliveries.load(Ordering::Relaxed),
            seconds,
            latencies_us,
            wire_bytes: self.tally.bytes.load(Ordering::Relaxed),
            relay: usage_between(self.before, after),
        })
    }
}

/// A bench body of `size` bytes: publisher `p`, its counter, the send time.
pub(crate) fn bench_body(p: usize, sent: u64, t0: Instant, size: usize) -> Vec<u8> {
    let mut body = vec![0u8; size];
    body[..4].copy_from_slice(&u32::try_from(p).unwrap_or(u32::MAX).to_be_bytes());
    body[4..12].copy_from_slice(&sent.to_be_bytes());
    body[12..20].copy_from_slice(&ns_since(t0).to_be_bytes());
    body
}

/// What one member's reader does with each bench body it receives: count
/// it, sample every 8th latency, and, for its own publisher's events,
/// open the publisher's window.
pub(crate) struct Seen {
    me: usize,
    t0: Instant,
    mine: Option<Arc<(AtomicU64, Notify)>>,
    tally: Arc<Tally>,
    n: u64,
    /// Counted here and added to the shared tally in steps, so 100 readers
    /// do not all contend for one cache line per delivery.
    unflushed: u64,
    samples: Vec<u64>,
}

impl Seen {
    pub(crate) fn new(
        me: usize,
        t0: Instant,
        mine: Option<Arc<(AtomicU64, Notify)>>,
        tally: Arc<Tally>,
    ) -> Self {
        Self {
            me,
            t0,
            mine,
            tally,
            n: 0,
            unflushed: 0,
            samples: Vec::new(),
        }
    }

    pub(crate) fn body(&mut self, b: &[u8]) {
        if b.len() >= HEADER {
            let publisher = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
            self.n += 1;
            if self.n.is_multiple_of(8) {
                let sent_ns =
                    u64::from_be_bytes([b[12], b[13], b[14], b[15], b[16], b[17], b[18], b[19]]);
                self.samples.push(latency_us(self.t0, sent_ns));
            }
            if publisher == self.me
                && let Some(m) = &self.mine
            {
                m.0.fetch_add(1, Ordering::Relaxed);
                m.1.notify_one();
            }
        }
        self.unflushed += 1;
        if self.unflushed == 64 {
            self.tally
                .deliveries
                .fetch_add(self.unflushed, Ordering::Relaxed);
            self.unflushed = 0;
        }
    }

    /// The latency samples, once the reader stops.
    pub(crate) fn finish(self) -> Vec<u64> {
        self.tally
            .deliveries
            .fetch_add(self.unflushed, Ordering::Relaxed);
        self.samples
    }
}

/// Prints the table (or the JSON line) of a fanout run.
fn print_results(a: &FanoutArgs, window: u64, r: &FanoutResult) {
    let expected = r.published * a.members as u64;
    let lost = expected.saturating_sub(r.deliveries);
    let per_s = r.deliveries as f64 / r.seconds;
    let p50 = percentile(&r.latencies_us, 0.50);
    let p99 = percentile(&r.latencies_us, 0.99);
    let max = percentile(&r.latencies_us, 1.0);
    let bytes = if r.deliveries > 0 {
        r.wire_bytes as f64 / r.deliveries as f64
    } else {
        0.0
    };
    let (cpu, rss) = r.relay.map_or((None, None), |(c, m)| (Some(c), Some(m)));
    let cpu_per = cpu.map(|c| c / r.deliveries.max(1) as f64 * 1e6);
    let crypto = match a.crypto {
        _ if a.redis => "redis",
        Crypto::Relay => "relay",
        Crypto::Full => "full",
    };
    if a.json {
        println!(
            "{{\"workload\":\"fanout\",\"relays\":{},\"crypto\":\"{}\",\"members\":{},\"publishers\":{},\"size\":{},\"window\":{},\"rate\":{},\"seconds\":{:.2},\"published\":{},\"deliveries\":{},\"deliveries_per_s\":{:.0},\"lost\":{},\"latency_ms\":{{\"p50\":{:.3},\"p99\":{:.3},\"max\":{:.3}}},\"wire_bytes_per_delivery\":{:.1},\"relay_cpu_us_per_delivery\":{},\"relay_peak_rss_kib\":{}}}",
            if a.cluster.is_some() {
                a.relays.max(1)
            } else {
                1
            },
            crypto,
            a.members,
            a.publishers,
            a.size,
            if a.rate.is_some() { 0 } else { window },
            a.rate.unwrap_or(0),
            r.seconds,
            r.published,
            r.deliveries,
            per_s,
            lost,
            p50,
            p99,
            max,
            bytes,
            cpu_per.map_or("null".into(), |c| format!("{c:.3}")),
            rss.map_or("null".into(), |m| m.to_string()),
        );
        return;
    }
    let (title, server) = if a.redis {
        (
            "hush bench fanout --redis (Redis pub/sub, the same load)".to_owned(),
            "redis ",
        )
    } else if a.cluster.is_some() {
        (
            format!(
                "hush bench fanout --cluster ({} relays sharing the room through NATS; CPU and RSS summed)",
                a.relays.max(1)
            ),
            "relays",
        )
    } else {
        ("hush bench fanout".to_owned(), "relay ")
    };
    println!(
        "{title}: {} members, {} publishers, {} B bodies, crypto {crypto}, {}",
        a.members,
        a.publishers,
        a.size,
        a.rate
            .map_or(format!("window {window}"), |r| format!("{r} events/s"))
    );
    println!("  published              {:>12}", r.published);
    println!(
        "  deliveries             {:>12}   ({per_s:.0}/s over {:.1} s)",
        r.deliveries, r.seconds
    );
    println!("  deliveries lost        {:>12}", lost);
    println!("  latency p50 / p99 / max  {p50:.2} / {p99:.2} / {max:.2} ms");
    println!("  wire bytes / delivery  {:>12.1}", bytes);
    match (cpu_per, rss) {
        (Some(c), Some(m)) => {
            println!("  {server}CPU / delivery   {c:>10.3} µs");
            println!("  {server}peak RSS         {:>10} KiB", m);
        }
        _ => println!("  relay CPU and RSS      (only measured for a relay the bench starts)"),
    }
}
