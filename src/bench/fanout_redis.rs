//! `hush bench fanout --redis`: the same load against Redis pub/sub, for
//! issue #19's same-run comparison. The bench starts `redis-server` on a
//! loopback port (no persistence, no output-buffer limit for
//! subscribers), pinned like the relay with `--relay-cpus`, and speaks
//! RESP3 to it from the same kind of tokio client:
//!
//! ```text
//!   M connections: HELLO 3, SUBSCRIBE bench      (every member)
//!   P of them:     PUBLISH bench <body> …        (pipelined, window W, as for hush)
//!   readers:       >3 message bench <body>  ─▶ Seen (counts, latency, echo)
//! ```
//!
//! The bodies, the window, the latency samples and the CPU accounting
//! are the hush run's ([`super::fanout::Seen`], `bench_body`); what
//! differs is only the wire: Redis sends each subscriber the bytes as they
//! are, hush seals them per link and logs them durably first.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::fanout::{Run, Seen, bench_body};
use super::load::{FanoutArgs, FanoutResult, next_allowed};

const CHANNEL: &str = "bench";

/// A `redis-server` child on a loopback port; killed when dropped.
pub(crate) struct ChildRedis {
    pub(crate) child: std::process::Child,
    pub(crate) addr: String,
}

impl Drop for ChildRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `redis-server` (the program `program`) on a free loopback port.
pub(crate) fn start_redis(program: &str) -> Result<ChildRedis> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let child = std::process::Command::new(program)
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--protected-mode",
            "no",
            // A subscriber that falls behind is kept, as hush keeps it
            // up to its outbox limit.
            "--client-output-buffer-limit",
            "pubsub 0 0 0",
            "--maxclients",
            "20000",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .with_context(|| {
            format!("cannot start {program}: install Redis (Debian: apt-get install redis-server), or give --redis-server PATH")
        })?;
    let addr = format!("127.0.0.1:{port}");
    let redis = ChildRedis { child, addr };
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(&redis.addr).is_err() {
        if Instant::now() > deadline {
            bail!("{program} did not listen on {} within 10 s", redis.addr);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(redis)
}

/// One RESP3 value at the start of `buf`: how many bytes it takes, and,
/// for a pub/sub `message` push, where its payload is. `None`: not all
/// of it has arrived.
fn next_value(buf: &[u8]) -> Option<(usize, Option<std::ops::Range<usize>>)> {
    let line_end = |from: usize| -> Option<usize> {
        buf.get(from..)?
            .windows(2)
            .position(|w| w == b"\r\n")
            .map(|i| from + i)
    };
    let end = line_end(1)?;
    let head = std::str::from_utf8(&buf[1..end]).ok()?;
    let after = end + 2;
    match buf[0] {
        b'$' | b'=' | b'!' => {
            let len: usize = head.parse().ok()?;
            let total = after + len + 2;
            (buf.len() >= total).then_some((total, None))
        }
        b'*' | b'>' | b'~' | b'%' | b'|' => {
            let n: usize = head.parse().ok()?;
            let n = if matches!(buf[0], b'%' | b'|') {
                n * 2
            } else {
                n
            };
            let mut at = after;
            let mut parts = Vec::with_capacity(n.min(4));
            for _ in 0..n {
                let (used, _) = next_value(&buf[at..])?;
                parts.push(at..at + used);
                at += used;
            }
            let payload =
                (buf[0] == b'>' && n == 3 && buf[parts[0].clone()].starts_with(b"$7\r\nmessage"))
                    .then(|| bulk_body(buf, &parts[2]))
                    .flatten();
            Some((at, payload))
        }
        // Simple strings, errors, integers, null, doubles, booleans, big numbers.
        _ => Some((after, None)),
    }
}

/// The bytes of the bulk string at `at` in `buf`.
fn bulk_body(buf: &[u8], at: &std::ops::Range<usize>) -> Option<std::ops::Range<usize>> {
    let s = &buf[at.clone()];
    let nl = s.windows(2).position(|w| w == b"\r\n")?;
    Some(at.start + nl + 2..at.end - 2)
}

/// `PUBLISH bench <body>` as RESP.
fn publish(out: &mut Vec<u8>, body: &[u8]) {
    out.extend_from_slice(
        format!(
            "*3\r\n$7\r\nPUBLISH\r\n${}\r\n{CHANNEL}\r\n${}\r\n",
            CHANNEL.len(),
            body.len()
        )
        .as_bytes(),
    );
    out.extend_from_slice(body);
    out.extend_from_slice(b"\r\n");
}

/// Connects, says HELLO 3 and subscribes; returns once subscribed.
async fn subscriber(addr: &str) -> Result<(TcpStream, Vec<u8>)> {
    let mut s = TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    s.write_all(
        format!(
            "*2\r\n$5\r\nHELLO\r\n$1\r\n3\r\n*2\r\n$9\r\nSUBSCRIBE\r\n${}\r\n{CHANNEL}\r\n",
            CHANNEL.len()
        )
        .as_bytes(),
    )
    .await?;
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            bail!("redis closed the connection before the subscription");
        }
        buf.extend_from_slice(&chunk[..n]);
        // The HELLO map, then the subscribe push.
        let mut at = 0;
        let mut values = 0;
        while let Some((used, _)) = next_value(&buf[at..]) {
            at += used;
            values += 1;
        }
        if values >= 2 {
            buf.drain(..at);
            return Ok((s, buf));
        }
    }
}

/// The fan-out run against Redis.
pub(crate) async fn run_fanout_redis(
    a: &FanoutArgs,
    window: u64,
    addr: &str,
    pid: Option<u32>,
) -> Result<FanoutResult> {
    eprintln!("connecting {} subscribers to redis at {addr}", a.members);
    let mut conns = Vec::with_capacity(a.members);
    for i in 0..a.members {
        conns.push(
            subscriber(addr)
                .await
                .with_context(|| format!("subscriber {i} could not subscribe"))?,
        );
    }
    let run = Run::start(a, &Vec::from_iter(pid));
    let (t0, echoed) = (run.t0, run.echoed.clone());
    let mut readers = Vec::new();
    let mut writers = Vec::new();
    for (i, (stream, mut buf)) in conns.into_iter().enumerate() {
        let (mut rd, wr) = stream.into_split();
        let tally = run.tally.clone();
        let stop = run.stop.clone();
        let mine = echoed.get(i).cloned();
        readers.push(tokio::spawn(async move {
            let mut seen = Seen::new(i, t0, mine, tally.clone());
            let mut chunk = vec![0u8; 64 * 1024];
            let mut bytes = 0u64;
            loop {
                let n = tokio::select! {
                    biased;
                    n = rd.read(&mut chunk) => n,
                    () = stop.notified() => break,
                };
                let Ok(n) = n else { break };
                if n == 0 {
                    break;
                }
                bytes += n as u64;
                buf.extend_from_slice(&chunk[..n]);
                let mut at = 0;
                while let Some((used, payload)) = next_value(&buf[at..]) {
                    if let Some(p) = payload {
                        seen.body(&buf[at + p.start..at + p.end]);
                    }
                    at += used;
                }
                buf.drain(..at);
            }
            tally.bytes.fetch_add(bytes, Ordering::Relaxed);
            seen.finish()
        }));
        writers.push(wr);
    }
    eprintln!(
        "publishing for {:?} from {} publishers (window {window})",
        a.duration, a.publishers
    );
    let deadline = Instant::now() + a.duration;
    let listeners: Vec<_> = writers.split_off(a.publishers);
    let mut publishers = Vec::new();
    for (p, mut wr) in writers.into_iter().enumerate() {
        let echo = echoed[p].clone();
        let size = a.size;
        let rate = a.rate.map(|r| r as f64 / a.publishers as f64);
        publishers.push(tokio::spawn(async move {
            let mut sent = 0u64;
            let start = Instant::now();
            let mut out = Vec::new();
            while let Some(allowed) = next_allowed(rate, start, sent, &echo, window, deadline).await
            {
                out.clear();
                for _ in 0..allowed {
                    publish(&mut out, &bench_body(p, sent, t0, size));
                    sent += 1;
                }
                if wr.write_all(&out).await.is_err() {
                    break;
                }
            }
            (sent, wr)
        }));
    }
    run.finish(publishers, listeners, readers).await
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn resp3_values_are_framed_and_message_payloads_found() {
        let push = b">3\r\n$7\r\nmessage\r\n$5\r\nbench\r\n$5\r\nhello\r\n";
        let (used, payload) = next_value(push).unwrap();
        assert_eq!(used, push.len());
        assert_eq!(&push[payload.unwrap()], b"hello");
        // Not all there yet.
        assert!(next_value(&push[..push.len() - 3]).is_none());
        assert!(next_value(b"").is_none());
        // A subscribe confirmation, an integer reply, a map.
        let sub = b">3\r\n$9\r\nsubscribe\r\n$5\r\nbench\r\n:1\r\n";
        assert_eq!(next_value(sub), Some((sub.len(), None)));
        assert_eq!(next_value(b":100\r\n"), Some((6, None)));
        let map = b"%1\r\n+server\r\n+redis\r\n";
        assert_eq!(next_value(map), Some((map.len(), None)));
        let mut out = Vec::new();
        publish(&mut out, b"xy");
        assert_eq!(out, b"*3\r\n$7\r\nPUBLISH\r\n$5\r\nbench\r\n$2\r\nxy\r\n");
    }
}
