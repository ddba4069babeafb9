//! Crash safety: while clients exchange a steady stream, the relay is
//! killed with SIGKILL and restarted. Every message any client displayed
//! is still in the log, and after reconnecting every client has every
//! message exactly once, in the same order as everyone else.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::time::{Duration, Instant};

use common::{ClientProcess, RelayProcess, free_port};

fn texts(c: &ClientProcess) -> Vec<(u64, String)> {
    c.json_events("message")
        .iter()
        .map(|v| {
            (
                v["seq"].as_u64().unwrap(),
                v["text"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn sigkill_during_a_steady_stream_loses_nothing_and_duplicates_nothing() {
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let relay = RelayProcess::start(data.path(), port, &[]);
    let addr = relay.addr.clone();
    let mut clients: Vec<ClientProcess> = ["alice", "bob", "carol"]
        .iter()
        .map(|who| {
            let mut c = ClientProcess::start(&addr, who, "steady", true, &[]);
            c.wait_json("joined", |_| true);
            c
        })
        .collect();
    for c in &mut clients {
        c.wait_json("epoch", |v| {
            v["members"].as_array().is_some_and(|m| m.len() == 3)
        });
    }
    // Everyone talks; the relay dies mid-stream and comes back.
    let total_rounds = 30;
    let mut relay = Some(relay);
    for round in 0..total_rounds {
        for (i, c) in clients.iter_mut().enumerate() {
            c.say(&format!("r{round:02} from {i}"));
        }
        std::thread::sleep(Duration::from_millis(30));
        if round == 12 {
            let status = relay.take().unwrap().signal("-KILL");
            assert!(!status.success());
        }
        if round == 16 {
            relay = Some(RelayProcess::start(data.path(), port, &[]));
        }
    }
    let expected = total_rounds * clients.len();
    let deadline = Instant::now() + Duration::from_secs(90);
    for c in &mut clients {
        while texts(c).len() < expected {
            assert!(
                Instant::now() < deadline,
                "only {} of {expected} arrived",
                texts(c).len()
            );
            c.drain_for(Duration::from_millis(200));
        }
        c.drain_for(Duration::from_millis(300));
    }
    let views: Vec<Vec<(u64, String)>> = clients.iter().map(texts).collect();
    for v in &views {
        assert_eq!(v.len(), expected, "every message exactly once");
        let mut sorted: Vec<String> = v.iter().map(|(_, t)| t.clone()).collect();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), expected, "no duplicates");
        assert!(v.windows(2).all(|w| w[0].0 < w[1].0), "shown in seq order");
    }
    assert_eq!(views[0], views[1], "same order for everyone");
    assert_eq!(views[1], views[2], "same order for everyone");
    // Everything anyone displayed is in the relay's log: a newcomer reading
    // the room sees the same sequence numbers (as undecryptable history).
    let mut checker = ClientProcess::start(
        &relay.as_ref().unwrap().addr,
        "mallory",
        "steady",
        true,
        &[],
    );
    let logged = checker.wait_json("notice", |v| {
        v["text"]
            .as_str()
            .unwrap_or("")
            .contains("earlier messages were sent while you were not a member")
    });
    let n: usize = logged["text"]
        .as_str()
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        n >= expected,
        "the log holds {n} messages, {expected} were shown"
    );
}
