//! `hush admin` against a running relay (issue #20): a backup taken while a
//! client writes is sound and holds every event committed before it
//! started; `rooms` lists the room; `verify` recomputes its chain head;
//! `prune` deletes messages and keeps membership events.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::{ClientProcess, RelayProcess, hush, run};

#[test]
fn admin_commands_work_on_a_running_relay() {
    let data = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(data.path(), 0, &[]);
    let mut alice = ClientProcess::start(&relay.addr, "alice", "ops", true, &[]);
    alice.wait_json("joined", |_| true);
    for i in 0..20 {
        alice.say(&format!("before {i}"));
    }
    let last = alice.wait_json("message", |v| v["text"] == "before 19");
    let committed = last["seq"].as_u64().unwrap();
    // alice keeps writing while the backup runs.
    for i in 0..200 {
        alice.say(&format!("during {i}"));
    }
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("backup");
    let r = run(hush()
        .args(["admin", "backup", "--data"])
        .arg(data.path())
        .arg(&dest));
    assert!(r.ok, "{}", r.stderr);
    assert!(r.stdout.starts_with("backed up "), "{}", r.stdout);
    // The copy is sound and holds every event committed before it began.
    let check = run(hush().args(["admin", "verify", "--data"]).arg(&dest));
    assert!(check.ok, "{}\n{}", check.stdout, check.stderr);
    assert!(
        check.stdout.contains("integrity_check: ok"),
        "{}",
        check.stdout
    );
    let rooms = run(hush()
        .args(["admin", "rooms", "--json", "--data"])
        .arg(&dest));
    assert!(rooms.ok, "{}", rooms.stderr);
    let ops: serde_json::Value = rooms
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["room"] == "ops")
        .expect("#ops in the backup");
    assert!(ops["last_seq"].as_u64().unwrap() >= committed, "{ops}");
    assert!(ops["events"].as_u64().unwrap() >= committed, "{ops}");

    // The live relay: verify recomputes the head, rooms lists #ops.
    alice.wait_json("message", |v| v["text"] == "during 199");
    let live = run(hush().args(["admin", "verify", "--data"]).arg(data.path()));
    assert!(
        live.ok && live.stdout.contains("ops: ok, chain head recomputed"),
        "{}",
        live.stdout
    );
    let table = run(hush().args(["admin", "rooms", "--data"]).arg(data.path()));
    assert!(table.ok && table.stdout.contains("ops"), "{}", table.stdout);

    // Prune every message of #ops: the commits stay; the relay goes on.
    let pruned = run(hush()
        .args([
            "admin", "prune", "--room", "ops", "--before", "0s", "--data",
        ])
        .arg(data.path()));
    assert!(pruned.ok, "{}", pruned.stderr);
    assert!(
        pruned.stdout.contains("deleted 220 messages"),
        "{}",
        pruned.stdout
    );
    let after = run(hush().args(["admin", "verify", "--data"]).arg(data.path()));
    assert!(
        after.ok && after.stdout.contains("ops: ok, in order (pruned"),
        "{}",
        after.stdout
    );
    alice.say("after the prune");
    alice.wait_json("message", |v| v["text"] == "after the prune");

    // Clear errors.
    let again = run(hush()
        .args(["admin", "backup", "--data"])
        .arg(data.path())
        .arg(&dest));
    assert!(
        !again.ok && again.stderr.contains("exists already"),
        "{}",
        again.stderr
    );
    let none = run(hush().args(["admin", "rooms", "--data"]).arg(out.path()));
    assert!(
        !none.ok && none.stderr.contains("has no events.sqlite"),
        "{}",
        none.stderr
    );
    drop(relay);
}

/// A GET on the relay's metrics listener: the body.
fn get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default()
}

#[test]
fn metrics_move_during_a_chat_and_carry_no_metadata() {
    let data = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let metrics = format!("127.0.0.1:{port}");
    let relay = RelayProcess::start(data.path(), 0, &["--metrics", &metrics]);
    assert_eq!(get(&metrics, "/healthz"), "ok\n");
    let mut alice = ClientProcess::start(&relay.addr, "alice", "secret-room", true, &[]);
    alice.wait_json("joined", |_| true);
    let mut bob = ClientProcess::start(&relay.addr, "bob", "secret-room", true, &[]);
    bob.wait_json("joined", |_| true);
    alice.say("hello bob");
    bob.wait_json("message", |v| v["text"] == "hello bob");
    let body = get(&metrics, "/metrics");
    // It parses as the text format: comments, or `name[{labels}] value`.
    let mut values = std::collections::HashMap::new();
    for line in body
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (name, value) = line.rsplit_once(' ').expect("name value");
        assert!(
            name.starts_with("hush_relay_") && value.parse::<f64>().is_ok(),
            "not a sample: {line}"
        );
        values.insert(name.to_owned(), value.parse::<f64>().unwrap());
    }
    assert!(body.trim_end().ends_with("# EOF"), "{body}");
    let at = |k: &str| values.get(k).copied().unwrap_or(0.0);
    assert_eq!(at("hush_relay_connections"), 2.0, "{body}");
    assert!(
        at("hush_relay_handshakes_total{outcome=\"full\"}") >= 2.0,
        "{body}"
    );
    assert_eq!(at("hush_relay_rooms"), 1.0, "{body}");
    assert_eq!(at("hush_relay_handshaking"), 0.0, "{body}");
    assert!(at("hush_relay_events_appended_total") >= 1.0, "{body}");
    assert!(at("hush_relay_events_delivered_total") >= 2.0, "{body}");
    assert!(at("hush_relay_received_bytes_total") > 0.0, "{body}");
    assert!(at("hush_relay_sent_bytes_total") > 0.0, "{body}");
    assert!(at("hush_relay_log_commit_seconds_count") >= 1.0, "{body}");
    // No room name, fingerprint or address in any label.
    assert!(
        !body.contains("secret-room") && !body.contains("SHA256") && !body.contains("127.0.0.1")
    );
    assert!(get(&metrics, "/other").starts_with("only /metrics"));
}
