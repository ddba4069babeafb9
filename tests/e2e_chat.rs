//! Three people chatting through the real `hush` binary: a relay and
//! clients for alice, bob and carol from keys.example, on loopback.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::time::Duration;

use common::{ClientProcess, Proxy, RelayProcess, example_identity, free_port};

fn fp(name: &str) -> String {
    example_identity(name).fingerprint().to_string()
}

/// A relay and three JSON clients, all admitted to `room`.
fn three_in_a_room(room: &str) -> (tempfile::TempDir, RelayProcess, [ClientProcess; 3]) {
    let data = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(data.path(), 0, &[]);
    let mut alice = ClientProcess::start(&relay.addr, "alice", room, true, &[]);
    alice.wait_json("joined", |_| true);
    let mut bob = ClientProcess::start(&relay.addr, "bob", room, true, &[]);
    bob.wait_json("joined", |_| true);
    let mut carol = ClientProcess::start(&relay.addr, "carol", room, true, &[]);
    carol.wait_json("joined", |_| true);
    // Everyone has seen the epoch with all three.
    for c in [&mut alice, &mut bob, &mut carol] {
        c.wait_json("epoch", |v| {
            v["members"].as_array().is_some_and(|m| m.len() == 3)
        });
    }
    (data, relay, [alice, bob, carol])
}

#[test]
fn alices_message_reaches_bob_and_carol_verified_and_empty_lines_send_nothing() {
    let (_data, _relay, [mut alice, mut bob, mut carol]) = three_in_a_room("lobby");
    alice.say("hello, both of you");
    for c in [&mut bob, &mut carol, &mut alice] {
        let m = c.wait_json("message", |v| v["text"] == "hello, both of you");
        assert_eq!(m["from"], fp("alice"));
        assert_eq!(m["nick"], "alice");
        // Signed and opened, but nobody marked alice's key as verified.
        assert_eq!(m["verified"], false);
        assert_eq!(m["room"], "lobby");
        assert!(m["seq"].as_u64().unwrap() > 0);
        assert!(m["sent_at"].as_str().unwrap().ends_with('Z'));
    }
    // Bob's empty and whitespace-only lines are not sent.
    bob.say("");
    bob.say("   ");
    bob.say("\t \t");
    bob.say("and now something real");
    alice.wait_json("message", |v| v["text"] == "and now something real");
    carol.wait_json("message", |v| v["text"] == "and now something real");
    alice.drain_for(Duration::from_millis(500));
    let from_bob: Vec<_> = alice
        .json_events("message")
        .into_iter()
        .filter(|v| v["from"] == fp("bob"))
        .collect();
    assert_eq!(
        from_bob.len(),
        1,
        "only the real line was sent: {from_bob:?}"
    );
}

#[test]
fn the_relay_sees_no_plaintext_on_the_wire_or_on_disk() {
    let data = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(data.path(), 0, &[]);
    let proxy = Proxy::start(&relay.addr, false);
    let mut alice = ClientProcess::start(&proxy.addr, "alice", "secrets", true, &[]);
    alice.wait_json("joined", |_| true);
    let mut bob = ClientProcess::start(&proxy.addr, "bob", "secrets", true, &[]);
    bob.wait_json("joined", |_| true);
    let canary = "CANARY-c0ffee-7f3a9c-the-eagle-lands-at-midnight";
    alice.say(canary);
    bob.wait_json("message", |v| v["text"] == canary);
    bob.say("/nick NICKCANARY");
    alice.wait_json("notice", |v| {
        v["text"].as_str().unwrap_or("").contains("NICKCANARY")
    });
    // The bytes on the wire.
    let wire = proxy.recorded.lock().unwrap().clone();
    assert!(wire.len() > 1000, "the proxy saw the traffic");
    for needle in [canary.as_bytes(), b"NICKCANARY"] {
        assert!(!contains(&wire, needle), "plaintext on the wire");
    }
    // Everything the relay stored (log, WAL, keys).
    drop(alice);
    drop(bob);
    let relay_dir = relay.data.clone();
    assert!(relay.signal("-TERM").success());
    for entry in walk(&relay_dir) {
        let bytes = std::fs::read(&entry).unwrap();
        for needle in [canary.as_bytes(), b"NICKCANARY"] {
            assert!(
                !contains(&bytes, needle),
                "plaintext in {}",
                entry.display()
            );
        }
    }
}

/// Issue #14: a packet capture of full handshakes (and of the chat that
/// follows) holds neither the client's key nor its fingerprint, in any
/// form, nor the relay's key: identities travel only under the handshake
/// keys (audit I2).
#[test]
fn a_packet_capture_shows_neither_the_clients_nor_the_relays_identity() {
    let data = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(data.path(), 0, &[]);
    let proxy = Proxy::start(&relay.addr, false);
    let mut alice = ClientProcess::start(&proxy.addr, "alice", "capture", true, &[]);
    alice.wait_json("joined", |_| true);
    alice.say("hello");
    alice.wait_json("message", |v| v["text"] == "hello");
    drop(alice);
    let wire = proxy.recorded.lock().unwrap().clone();
    assert!(wire.len() > 2000, "the proxy saw the handshake");
    let id = example_identity("alice");
    let fp = id.fingerprint();
    let relay_id = example_identity("relay");
    for (what, needle) in [
        ("the client's key", id.public().spki_der().to_vec()),
        ("the client's fingerprint", fp.as_bytes().to_vec()),
        ("the client's fingerprint text", fp.to_string().into_bytes()),
        ("the relay's key", relay_id.public().spki_der().to_vec()),
    ] {
        assert!(!contains(&wire, &needle), "{what} is on the wire");
    }
    // The capture does hold the key exchange: the check above is not
    // vacuous (the client's 1,216-byte share is in the first frame).
    assert!(wire.len() > 1216 + 1120);
}

/// Audit M7: a relay whose frame limit was raised to 1 MiB holds a
/// backlog far above 64 KiB. A fresh CLI client backfills all of it (the
/// relay packs records up to the limit the client announced) instead of
/// failing on an oversized record and reconnecting for ever.
#[test]
fn a_fresh_client_backfills_a_large_backlog_from_a_relay_with_large_frames() {
    let data = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(data.path(), 0, &["--max-frame-bytes", "1048576"]);
    let mut alice = ClientProcess::start(
        &relay.addr,
        "alice",
        "backlog",
        true,
        &["--history", "shared"],
    );
    alice.wait_json("joined", |_| true);
    const LINES: usize = 12;
    for n in 0..LINES {
        let line = format!("{n:02}{}", "x".repeat(7000));
        alice.say(&line);
        alice.wait_json("message", |v| v["text"] == line.as_str());
    }
    // 12 × 7 KB of text, sealed and signed: about 90 KB of backlog.
    let mut bob = ClientProcess::start(&relay.addr, "bob", "backlog", true, &[]);
    bob.wait_json("joined", |_| true);
    for n in 0..LINES {
        let prefix = format!("{n:02}x");
        bob.wait_json("message", |v| {
            v["text"].as_str().is_some_and(|t| t.starts_with(&prefix))
        });
    }
    alice.say("after the backlog");
    bob.wait_json("message", |v| v["text"] == "after the backlog");
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    fn files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                files(&p, out);
            } else {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    files(dir, &mut out);
    assert!(!out.is_empty());
    out
}

#[test]
fn bytes_flipped_on_the_wire_never_become_a_displayed_message() {
    let data = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(data.path(), 0, &[]);
    let mut alice = ClientProcess::start(&relay.addr, "alice", "flips", true, &[]);
    alice.wait_json("joined", |_| true);
    // Bob's first connection goes through a proxy that flips bits in what
    // the relay sends him after the handshake.
    let proxy = Proxy::start(&relay.addr, true);
    let mut bob = ClientProcess::start(&proxy.addr, "bob", "flips", true, &[]);
    bob.wait_json("joined", |_| true);
    alice.wait_json("epoch", |v| {
        v["members"].as_array().is_some_and(|m| m.len() == 2)
    });
    proxy.arm();
    let sent: Vec<String> = (0..20)
        .map(|i| format!("message number {i} with some padding text"))
        .collect();
    for s in &sent {
        alice.say(s);
    }
    // Bob's tampered link fails, he reconnects (untampered) and catches up.
    bob.wait_json("message", |v| v["text"] == sent[19].as_str());
    bob.drain_for(Duration::from_millis(500));
    let shown: Vec<String> = bob
        .json_events("message")
        .iter()
        .map(|v| v["text"].as_str().unwrap().to_owned())
        .collect();
    for s in &shown {
        assert!(
            sent.contains(s),
            "a message bob displayed was never sent: {s:?}"
        );
    }
    let mut unique = shown.clone();
    unique.dedup();
    assert_eq!(unique.len(), shown.len(), "nothing shown twice");
    assert!(
        bob.seen
            .iter()
            .any(|l| l.contains("connection to the relay lost")),
        "the flipped bytes were detected and the link dropped"
    );
}

#[test]
fn carol_leaves_and_cannot_read_what_follows() {
    let (_data, relay, [mut alice, mut bob, mut carol]) = three_in_a_room("club");
    carol.say("/leave");
    assert!(carol.wait_exit().success());
    for c in [&mut alice, &mut bob] {
        c.wait_json("member_left", |v| v["from"] == fp("carol"));
        c.wait_json("epoch", |v| {
            v["members"].as_array().is_some_and(|m| m.len() == 2)
        });
    }
    let secret = "said after carol left: she must not read this";
    alice.say(secret);
    bob.wait_json("message", |v| v["text"] == secret);
    // Carol comes back with the same key: she is admitted anew, but the
    // message sent while she was out stays unreadable to her.
    let mut again = ClientProcess::start(&relay.addr, "carol", "club", true, &[]);
    again.wait_json("joined", |_| true);
    alice.say("welcome back carol");
    again.wait_json("message", |v| v["text"] == "welcome back carol");
    again.drain_for(Duration::from_millis(300));
    assert!(
        !again.seen.iter().any(|l| l.contains(secret)),
        "carol read a message from an epoch she was not in"
    );
}

#[test]
fn a_client_started_before_the_relay_connects_when_it_comes_up() {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut alice = ClientProcess::start(&addr, "alice", "early", false, &[]);
    alice.wait_for("a notice that the relay is not reachable yet", |l| {
        l.contains("cannot reach the relay") && l.contains("retrying")
    });
    alice.say("typed while the relay was down");
    let data = tempfile::tempdir().unwrap();
    let _relay = RelayProcess::start(data.path(), port, &[]);
    alice.wait_for("joined", |l| l.contains("joined #early"));
    alice.wait_for("the early message, sent once admitted", |l| {
        l.contains("alice (") && l.ends_with("typed while the relay was down")
    });
    // The waiting notice was shown once, not per retry.
    let waits = alice
        .seen
        .iter()
        .filter(|l| l.contains("cannot reach the relay"))
        .count();
    assert_eq!(waits, 1);
}

#[test]
fn escape_sequences_from_a_member_arrive_neutralised() {
    let data = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(data.path(), 0, &[]);
    let mut alice = ClientProcess::start(&relay.addr, "alice", "esc", true, &[]);
    alice.wait_json("joined", |_| true);
    let mut bob = ClientProcess::start(&relay.addr, "bob", "esc", false, &[]);
    bob.wait_for("joined", |l| l.contains("joined #esc"));
    alice.say("clear \u{1b}[2J title \u{1b}]0;pwned\u{7} bidi \u{202e}olleh end");
    let line = bob.wait_for("alice's message", |l| {
        l.contains("clear ") && l.contains(" end")
    });
    assert!(
        !line.contains('\u{1b}') && !line.contains('\u{7}') && !line.contains('\u{202e}'),
        "{line:?}"
    );
    assert!(line.contains("^[[2J"), "{line:?}");
    assert!(
        line.starts_with('[') && line.contains("] alice ("),
        "{line:?}"
    );
    // Alice's JSON keeps the exact text (escaped by JSON itself).
    let m = alice.wait_json("message", |v| {
        v["text"].as_str().unwrap_or("").contains("clear")
    });
    assert!(m["text"].as_str().unwrap().contains('\u{1b}'));
}

#[test]
fn the_transcript_file_gets_the_plaintext_only_when_asked() {
    let data = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(data.path(), 0, &[]);
    let out = tempfile::tempdir().unwrap();
    let transcript = out.path().join("lobby.txt");
    let t = transcript.to_str().unwrap().to_owned();
    let mut alice = ClientProcess::start(&relay.addr, "alice", "lobby", true, &["-o", &t]);
    alice.wait_json("joined", |_| true);
    alice.say("for the record");
    alice.wait_json("message", |v| v["text"] == "for the record");
    let text = std::fs::read_to_string(&transcript).unwrap();
    assert!(
        text.lines()
            .any(|l| l.contains("alice (") && l.ends_with(": for the record")),
        "{text}"
    );
    // The client's own files (pins, sealed room state) hold no plaintext.
    alice.say("/quit");
    assert!(alice.wait_exit().success());
    for entry in walk(alice.data.path()) {
        let bytes = std::fs::read(&entry).unwrap();
        assert!(!contains(&bytes, b"for the record"), "{}", entry.display());
    }
}

#[test]
fn clients_ride_out_a_relay_restart_without_gaps_or_duplicates() {
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let relay = RelayProcess::start(data.path(), port, &[]);
    let addr = relay.addr.clone();
    let mut alice = ClientProcess::start(&addr, "alice", "steady", true, &[]);
    alice.wait_json("joined", |_| true);
    let mut bob = ClientProcess::start(&addr, "bob", "steady", true, &[]);
    bob.wait_json("joined", |_| true);
    alice.say("before the restart");
    bob.wait_json("message", |v| v["text"] == "before the restart");

    assert!(relay.signal("-TERM").success());
    alice.wait_json("notice", |v| {
        v["text"]
            .as_str()
            .unwrap_or("")
            .contains("connection to the relay lost")
    });
    // Typed while the relay is down: sent once it is back.
    alice.say("while the relay was down");
    let _relay = RelayProcess::start(data.path(), port, &[]);
    bob.wait_json("message", |v| v["text"] == "while the relay was down");
    alice.say("after the restart");
    bob.wait_json("message", |v| v["text"] == "after the restart");
    bob.drain_for(Duration::from_millis(500));
    let texts: Vec<String> = bob
        .json_events("message")
        .iter()
        .map(|v| v["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        texts,
        [
            "before the restart",
            "while the relay was down",
            "after the restart"
        ],
        "each message once, in order"
    );
    let seqs: Vec<u64> = bob
        .json_events("message")
        .iter()
        .map(|v| v["seq"].as_u64().unwrap())
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
}

#[test]
fn a_member_who_was_away_reads_what_it_missed_once_and_nothing_twice() {
    let data = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(data.path(), 0, &[]);
    let mut alice = ClientProcess::start(&relay.addr, "alice", "away", true, &[]);
    alice.wait_json("joined", |_| true);
    let mut bob = ClientProcess::start(&relay.addr, "bob", "away", true, &[]);
    bob.wait_json("joined", |_| true);
    alice.say("seen before leaving");
    bob.wait_json("message", |v| v["text"] == "seen before leaving");
    bob.say("/quit");
    assert!(bob.wait_exit().success());
    let bob_data = bob.into_data();

    for i in 0..3 {
        alice.say(&format!("missed {i}"));
        alice.wait_json("message", |v| v["text"] == format!("missed {i}").as_str());
    }
    // Bob comes back with his data folder (and so his saved state).
    let (key_dir, key) = common::example_key("bob");
    let mut back =
        ClientProcess::start_with(&relay.addr, &key, bob_data, key_dir, "away", true, &[]);
    back.wait_json("notice", |v| {
        v["text"].as_str().unwrap_or("").contains("resuming #away")
    });
    back.wait_json("message", |v| v["text"] == "missed 2");
    back.drain_for(Duration::from_millis(500));
    let texts: Vec<String> = back
        .json_events("message")
        .iter()
        .map(|v| v["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(texts, ["missed 0", "missed 1", "missed 2"]);
}

#[test]
fn a_restarted_client_can_read_the_old_history_again() {
    let data = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(data.path(), 0, &[]);
    let mut alice = ClientProcess::start(&relay.addr, "alice", "again", true, &[]);
    alice.wait_json("joined", |_| true);
    let mut bob = ClientProcess::start(&relay.addr, "bob", "again", true, &[]);
    bob.wait_json("joined", |_| true);
    alice.say("worth reading twice");
    bob.wait_json("message", |v| v["text"] == "worth reading twice");
    bob.say("/quit");
    assert!(bob.wait_exit().success());
    let bob_data = bob.into_data();
    let (key_dir, key) = common::example_key("bob");
    let mut back = ClientProcess::start_with(
        &relay.addr,
        &key,
        bob_data,
        key_dir,
        "again",
        true,
        &["--replay-history"],
    );
    back.wait_json("message", |v| v["text"] == "worth reading twice");
    back.wait_json("joined", |_| true);
}

#[test]
fn line_mode_shows_local_time_and_the_day_and_the_transcript_marks_each_run() {
    let data = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(data.path(), 0, &[]);
    let transcript = tempfile::tempdir().unwrap();
    let file = transcript.path().join("chat.txt");
    // Nine hours east of UTC, as a POSIX TZ string (no zone files needed).
    let mut alice = ClientProcess::start_env(
        &relay.addr,
        "alice",
        "lobby",
        &["-o", file.to_str().unwrap()],
        &[("TZ", "JST-9")],
    );
    alice.wait_for("joined", |l| l.contains("joined #lobby"));
    let mut bob = ClientProcess::start(&relay.addr, "bob", "lobby", true, &[]);
    bob.wait_json("joined", |_| true);
    bob.wait_json("epoch", |v| {
        v["members"].as_array().is_some_and(|m| m.len() == 2)
    });
    bob.say("what time is it there?");
    let m = bob.wait_json("message", |v| v["text"] == "what time is it there?");
    let ms = m["received_at_ms"].as_u64().unwrap();
    let local = ms / 1000 + 9 * 3600;
    let hhmm = format!("[{:02}:{:02}]", (local / 3600) % 24, (local / 60) % 60);
    let line = alice.wait_for("bob's line", |l| l.ends_with(": what time is it there?"));
    assert!(line.starts_with(&hhmm), "local time {hhmm} in {line}");
    // The day is named before the first message.
    let seen = alice.seen_lines();
    let at = seen.iter().position(|l| l == &line).unwrap();
    let days = [
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
    ];
    assert!(
        seen[..at].iter().any(
            |l| l.starts_with("-- ") && days.iter().any(|d| l.starts_with(&format!("-- {d} ")))
        ),
        "a day line comes first:\n{}",
        seen.join("\n")
    );
    alice.say("/quit");
    assert!(alice.wait_exit().success());
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.starts_with("-- hush client started on "), "{text}");
    assert!(text.contains(&format!("{hhmm} bob (")), "{text}");
}

#[test]
fn json_bots_get_members_as_data_and_errors_with_a_kind() {
    let (_data, _relay, [mut alice, _bob, _carol]) = three_in_a_room("bots");
    alice.say("/members");
    let m = alice.wait_json("members", |_| true);
    assert_eq!(m["room"], "bots");
    let list = m["members"].as_array().unwrap();
    assert_eq!(list.len(), 3);
    let me: Vec<_> = list.iter().filter(|v| v["me"] == true).collect();
    assert_eq!(me.len(), 1);
    assert_eq!(me[0]["fingerprint"], fp("alice"));
    assert_eq!(me[0]["online"], true);
    assert!(list.iter().all(|v| v["nick"].is_string()));
    alice.say("/frobnicate");
    let e = alice.wait_json("error", |_| true);
    assert_eq!(e["kind"], "client");
    assert!(e["text"].as_str().unwrap().contains("/frobnicate"));
}

#[test]
fn a_reconnect_says_so_in_two_lines_not_five() {
    let data = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(data.path(), 0, &[]);
    let port = relay.port();
    let mut alice = ClientProcess::start(&relay.addr, "alice", "quiet", false, &[]);
    alice.wait_for("joined", |l| l.contains("joined #quiet"));
    relay.signal("-TERM");
    let _relay = RelayProcess::start(data.path(), port, &[]);
    alice.wait_for("reconnected", |l| l.starts_with("-- reconnected to "));
    alice.say("still here");
    alice.wait_for("own line", |l| l.ends_with(": still here"));
    // The room is joined again at the same epoch: not said twice
    // (usability F15).
    let joined = alice
        .seen_lines()
        .iter()
        .filter(|l| l.contains("joined #quiet"))
        .count();
    assert_eq!(joined, 1, "{}", alice.seen_lines().join("\n"));
}
