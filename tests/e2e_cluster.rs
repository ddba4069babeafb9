//! A room spanning three relays (`hush server --cluster`) over a real
//! three-node NATS JetStream cluster, all on 127.0.0.1, started and
//! stopped by each test: the real `hush` binary for relays and clients.
//!
//! Needs nats-server (`.ci/run` installs the pinned one and sets
//! HUSH_NATS_SERVER); without one these tests fail saying how to get it.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::time::Duration;

use common::{ClientProcess, RelayProcess, example_key};
use hush_testkit::nats::NatsCluster;

/// Three relays, one per NATS node's URL list, all with the same key.
struct Cluster {
    nats: NatsCluster,
    relays: Vec<RelayProcess>,
    data: Vec<tempfile::TempDir>,
    _key_dir: tempfile::TempDir,
    key: std::path::PathBuf,
}

impl Cluster {
    fn start() -> Self {
        let nats = NatsCluster::start(3);
        let (key_dir, key) = example_key("relay");
        let mut c = Self {
            nats,
            relays: Vec::new(),
            data: (0..3).map(|_| tempfile::tempdir().unwrap()).collect(),
            _key_dir: key_dir,
            key,
        };
        for i in 0..3 {
            let r = c.relay(i, 0);
            c.relays.push(r);
        }
        c
    }

    /// Starts relay `i` on `port` (0: any), its NATS URLs listed from
    /// node `i` on, so each relay starts on a different node.
    fn relay(&self, i: usize, port: u16) -> RelayProcess {
        let urls: Vec<String> = (0..3).map(|k| self.nats.url((i + k) % 3)).collect();
        let urls = urls.join(",");
        let key = self.key.to_str().unwrap().to_owned();
        let log = std::env::var("HUSH_TEST_RELAY_LOG").unwrap_or_else(|_| "warn".to_owned());
        RelayProcess::start_logging(
            self.data[i].path(),
            port,
            &["--key", &key, "--cluster", &urls],
            &log,
            std::process::Stdio::inherit(),
        )
    }

    fn addr(&self, i: usize) -> String {
        self.relays[i].addr.clone()
    }
}

/// alice, bob and carol, each on a relay of their own, in `room`.
fn three_on_three(c: &Cluster, room: &str) -> [ClientProcess; 3] {
    let mut alice = ClientProcess::start(&c.addr(0), "alice", room, true, &[]);
    alice.wait_json("joined", |_| true);
    let mut bob = ClientProcess::start(&c.addr(1), "bob", room, true, &[]);
    bob.wait_json("joined", |_| true);
    let mut carol = ClientProcess::start(&c.addr(2), "carol", room, true, &[]);
    carol.wait_json("joined", |_| true);
    for p in [&mut alice, &mut bob, &mut carol] {
        p.wait_json("epoch", |v| {
            v["members"].as_array().is_some_and(|m| m.len() == 3)
        });
    }
    [alice, bob, carol]
}

/// The (seq, text) of every message a client showed, in its order.
fn transcript(c: &ClientProcess) -> Vec<(u64, String)> {
    c.json_events("message")
        .into_iter()
        .map(|v| {
            (
                v["seq"].as_u64().unwrap(),
                v["text"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Every (seq, kind, body) of `room` a reader fresh to the stream
/// backfills (waiting for the stream's leader if the cluster has just
/// started again).
fn backfill(nats: &NatsCluster, room: &str) -> Vec<(u64, hush_proto::EventKind, Vec<u8>)> {
    use hush_server::log::EventLog as _;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let log = rt
        .block_on(hush_server::log::jetstream::JetStreamLog::open(
            &hush_server::log::jetstream::ClusterConfig::new(
                nats.urls().split(',').map(str::to_owned).collect(),
            ),
        ))
        .unwrap();
    let room = hush_proto::RoomName::new(room).unwrap();
    let started = std::time::Instant::now();
    loop {
        match log.events_after(&room, 0, 10_000) {
            Ok(e) => {
                return e
                    .into_iter()
                    .map(|e| (e.seq, e.event.kind, e.event.body))
                    .collect();
            }
            Err(e) if started.elapsed() < Duration::from_secs(30) => {
                eprintln!("backfill not ready yet: {e}");
                std::thread::sleep(Duration::from_millis(250));
            }
            Err(e) => panic!("backfill: {e}"),
        }
    }
}

fn wait_all(clients: &mut [&mut ClientProcess], text: &str) {
    for c in clients.iter_mut() {
        c.wait_json("message", |v| v["text"] == text);
    }
}

#[test]
fn alice_bob_and_carol_on_three_relays_each_see_every_message_in_one_order() {
    let c = Cluster::start();
    let [mut alice, mut bob, mut carol] = three_on_three(&c, "spread");
    alice.say("from alice on relay 0");
    bob.say("from bob on relay 1");
    carol.say("from carol on relay 2");
    bob.wait_json("message", |v| v["text"] == "from bob on relay 1");
    for text in [
        "from alice on relay 0",
        "from bob on relay 1",
        "from carol on relay 2",
    ] {
        wait_all(&mut [&mut alice, &mut bob, &mut carol], text);
    }
    for p in [&mut alice, &mut bob, &mut carol] {
        p.drain_for(Duration::from_millis(300));
    }
    let t = transcript(&alice);
    assert_eq!(t.len(), 3, "{t:?}");
    assert_eq!(transcript(&bob), t, "bob sees alice's order");
    assert_eq!(transcript(&carol), t, "carol sees alice's order");
    // Every relay signs with the one cluster key the clients pinned.
    let fps: Vec<&str> = c.relays.iter().map(|r| r.fingerprint.as_str()).collect();
    assert!(fps.iter().all(|f| *f == fps[0]), "{fps:?}");
}

#[test]
fn two_relays_publishing_to_one_room_at_once_keep_contiguous_seqs_and_one_order() {
    let c = Cluster::start();
    let [mut alice, mut bob, mut carol] = three_on_three(&c, "race");
    const N: usize = 15;
    for i in 0..N {
        alice.say(&format!("a{i}"));
        bob.say(&format!("b{i}"));
    }
    for i in 0..N {
        for text in [format!("a{i}"), format!("b{i}")] {
            wait_all(&mut [&mut alice, &mut bob, &mut carol], &text);
        }
    }
    for p in [&mut alice, &mut bob, &mut carol] {
        p.drain_for(Duration::from_millis(500));
    }
    let t = transcript(&carol);
    assert_eq!(t.len(), 2 * N, "nothing lost or shown twice: {t:?}");
    assert_eq!(transcript(&alice), t, "one order on every relay");
    assert_eq!(transcript(&bob), t, "one order on every relay");
    // Seqs only grow, and the room's log has every seq from 1 to its last
    // exactly once (other events, such as a member's rekey, may sit among
    // the messages).
    let seqs: Vec<u64> = t.iter().map(|(s, _)| *s).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    let logged = backfill(&c.nats, "race");
    let logged_seqs: Vec<u64> = logged.iter().map(|(s, _, _)| *s).collect();
    assert_eq!(
        logged_seqs,
        (1..=*logged_seqs.last().unwrap()).collect::<Vec<_>>()
    );
    // Every message the clients showed is in the log, and no event was
    // stored twice (a retry or a renumbering would leave the same sealed
    // body at two seqs; a client would drop the replay).
    for s in &seqs {
        assert!(
            logged
                .iter()
                .any(|(l, k, _)| l == s && *k == hush_proto::EventKind::Message)
        );
    }
    let mut bodies: Vec<&Vec<u8>> = logged.iter().map(|(_, _, b)| b).collect();
    bodies.sort();
    bodies.dedup();
    assert_eq!(bodies.len(), logged.len(), "an event stored twice");
    // Each sender's own messages are in the order they were typed.
    for who in ["a", "b"] {
        let mine: Vec<&str> = t
            .iter()
            .map(|(_, m)| m.as_str())
            .filter(|m| m.starts_with(who))
            .collect();
        let typed: Vec<String> = (0..N).map(|i| format!("{who}{i}")).collect();
        assert_eq!(mine, typed);
    }
}

#[test]
fn the_chat_goes_on_through_kill_9_of_a_nats_node_and_after_restarting_everything_the_log_matches()
{
    let mut c = Cluster::start();
    let [mut alice, mut bob, mut carol] = three_on_three(&c, "sturdy");
    alice.say("before the crash");
    wait_all(&mut [&mut alice, &mut bob, &mut carol], "before the crash");

    // kill -9 of one NATS node (alice's relay's first): R3 keeps a quorum.
    c.nats.kill(0);
    for (i, who) in ["during 1", "during 2", "during 3"].iter().enumerate() {
        match i {
            0 => alice.say(who),
            1 => bob.say(who),
            _ => carol.say(who),
        }
        wait_all(&mut [&mut alice, &mut bob, &mut carol], who);
    }
    // The node comes back and rejoins.
    c.nats.restart(0);
    alice.say("after the rejoin");
    wait_all(&mut [&mut alice, &mut bob, &mut carol], "after the rejoin");
    for p in [&mut alice, &mut bob, &mut carol] {
        p.drain_for(Duration::from_millis(300));
    }
    let t = transcript(&alice);
    assert_eq!(t.len(), 5, "{t:?}");
    assert_eq!(transcript(&bob), t);
    assert_eq!(transcript(&carol), t);

    // Everything stops: clients, relays, every NATS node; then starts again.
    let carol_data = carol.into_data();
    drop(alice);
    drop(bob);
    let ports: Vec<u16> = c.relays.iter().map(RelayProcess::port).collect();
    c.relays.clear();
    for i in 0..3 {
        c.nats.kill(i);
    }
    for i in 0..3 {
        c.nats.restart(i);
    }
    // A reader fresh to the stream backfills exactly the transcript.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let log = rt
        .block_on(hush_server::log::jetstream::JetStreamLog::open(
            &hush_server::log::jetstream::ClusterConfig::new(
                c.nats.urls().split(',').map(str::to_owned).collect(),
            ),
        ))
        .unwrap();
    let room = hush_proto::RoomName::new("sturdy").unwrap();
    // (The restarted cluster may still be electing its stream's leader.)
    let events = {
        use hush_server::log::EventLog as _;
        let started = std::time::Instant::now();
        loop {
            match log.events_after(&room, 0, 10_000) {
                Ok(e) => break e,
                Err(e) if started.elapsed() < Duration::from_secs(30) => {
                    eprintln!("backfill not ready yet: {e}");
                    std::thread::sleep(Duration::from_millis(250));
                }
                Err(e) => panic!("backfill after the restart: {e}"),
            }
        }
    };
    let all_seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    let last = *all_seqs.last().unwrap();
    assert_eq!(
        all_seqs,
        (1..=last).collect::<Vec<_>>(),
        "no gap, nothing twice"
    );
    for (seq, _) in &t {
        assert_eq!(
            events[usize::try_from(*seq).unwrap() - 1].event.kind,
            hush_proto::EventKind::Message
        );
    }
    drop(log);
    drop(rt);

    for (i, port) in ports.into_iter().enumerate() {
        let r = c.relay(i, port);
        c.relays.push(r);
    }
    // carol comes back on another relay and catches up on what she missed.
    let mut bob = ClientProcess::start(&c.addr(1), "bob", "sturdy", true, &[]);
    bob.wait_json("joined", |_| true);
    bob.say("while carol was away");
    bob.wait_json("message", |v| v["text"] == "while carol was away");
    let (key_dir, key) = example_key("carol");
    let mut carol =
        ClientProcess::start_with(&c.addr(0), &key, carol_data, key_dir, "sturdy", true, &[]);
    let m = carol.wait_json("message", |v| v["text"] == "while carol was away");
    assert!(m["seq"].as_u64().unwrap() > last);
    carol.drain_for(Duration::from_millis(500));
    assert_eq!(
        transcript(&carol)
            .iter()
            .filter(|(_, m)| m == "while carol was away")
            .count(),
        1,
        "shown once"
    );
}

#[test]
fn kill_9_of_alices_relay_and_her_client_fails_over_and_catches_up_with_nothing_lost_or_twice() {
    let mut c = Cluster::start();
    let addrs: Vec<String> = (0..3).map(|i| c.addr(i)).collect();
    // alice names two nodes of the cluster; bob and carol one each.
    let list = format!("{},{}", addrs[0], addrs[1]);
    let mut alice = ClientProcess::start(&list, "alice", "failover", true, &[]);
    alice.wait_json("joined", |_| true);
    let mut bob = ClientProcess::start(&addrs[1], "bob", "failover", true, &[]);
    bob.wait_json("joined", |_| true);
    let mut carol = ClientProcess::start(&addrs[2], "carol", "failover", true, &[]);
    carol.wait_json("joined", |_| true);
    for p in [&mut alice, &mut bob, &mut carol] {
        p.wait_json("epoch", |v| {
            v["members"].as_array().is_some_and(|m| m.len() == 3)
        });
    }
    alice.say("before the crash");
    wait_all(&mut [&mut alice, &mut bob, &mut carol], "before the crash");

    // kill -9 of alice's relay (dropping the process kills it).
    drop(c.relays.remove(0));
    bob.say("while alice's relay is down");
    carol.wait_json("message", |v| v["text"] == "while alice's relay is down");
    // alice moves to the next node and catches up from her last seq.
    alice.wait_json("message", |v| v["text"] == "while alice's relay is down");
    alice.say("back, through relay 1");
    wait_all(
        &mut [&mut alice, &mut bob, &mut carol],
        "back, through relay 1",
    );
    for p in [&mut alice, &mut bob, &mut carol] {
        p.drain_for(Duration::from_millis(300));
    }
    let t = transcript(&alice);
    assert_eq!(
        t.iter().map(|(_, m)| m.as_str()).collect::<Vec<_>>(),
        [
            "before the crash",
            "while alice's relay is down",
            "back, through relay 1"
        ],
        "nothing lost or shown twice: {t:?}"
    );
    assert_eq!(transcript(&bob), t);
    assert_eq!(transcript(&carol), t);
    assert!(
        alice
            .seen_lines()
            .iter()
            .any(|l| l.contains(&format!("trying {}", addrs[1]))),
        "alice's client said where it went"
    );
}
