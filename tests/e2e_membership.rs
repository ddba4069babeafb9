//! Membership under attack, with the real `hush` binary on 127.0.0.1
//! (protocol 2, issue #13): members, not the relay, decide which commit
//! opens an epoch, so an outsider's commits change nothing and a kick
//! takes effect whatever the kicked client does.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::{ClientProcess, Proxy, RelayProcess, example_identity};

/// Size of every state file under `dir` (one per relay and room).
fn state_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let meta = entry.metadata().unwrap();
        if meta.is_dir() {
            total += state_bytes(&entry.path());
        } else if entry.path().to_string_lossy().ends_with(".state") {
            total += meta.len();
        }
    }
    total
}

/// The epoch events a client has shown so far.
fn epochs(c: &ClientProcess) -> Vec<u64> {
    c.json_events("epoch")
        .iter()
        .map(|v| v["epoch"].as_u64().unwrap())
        .collect()
}

#[test]
fn a_flood_of_garbage_commits_changes_no_epoch_roster_or_saved_state() {
    const FLOOD: u64 = 200;
    let data = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(data.path(), 0, &["--commits-per-minute", "1000"]);
    let mut alice = ClientProcess::start(&relay.addr, "alice", "flooded", true, &[]);
    alice.wait_json("joined", |_| true);
    let mut bob = ClientProcess::start(&relay.addr, "bob", "flooded", true, &[]);
    bob.wait_json("joined", |_| true);
    alice.wait_json("epoch", |v| {
        v["members"].as_array().is_some_and(|m| m.len() == 2)
    });
    alice.say("before the flood");
    bob.wait_json("message", |v| v["text"] == "before the flood");
    std::thread::sleep(Duration::from_millis(1500)); // a state save tick
    let (epochs_before, state_before) = (epochs(&alice), state_bytes(alice.data.path()));
    assert!(state_before > 0, "alice saved her state");

    // Mallory, who is not a member, joins through a raw link and commits
    // garbage for every epoch the relay will take.
    let addr = relay.addr.clone();
    let sequenced = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mallory = example_identity("mallory");
            let mut c =
                hush_client::link::Connection::connect(&addr, mallory.clone(), 65536, |_| Ok(()))
                    .await
                    .unwrap();
            let room = hush_proto::RoomName::new("flooded").unwrap();
            c.writer
                .send(&hush_proto::ClientMsg::Join { room: room.clone() })
                .await
                .unwrap();
            let mut highest = loop {
                match c.reader.recv().await.unwrap() {
                    hush_proto::RelayMsg::Joined { epoch, .. } => break epoch,
                    _ => continue,
                }
            };
            let mut sequenced = 0;
            for request in 0..FLOOD {
                let event = hush_proto::RoomEvent {
                    room: room.clone(),
                    sender: mallory.fingerprint(),
                    kind: hush_proto::EventKind::Commit,
                    epoch: highest + 1,
                    body: vec![0xff; 64],
                };
                c.writer
                    .send(&hush_proto::ClientMsg::Publish { request, event })
                    .await
                    .unwrap();
                loop {
                    match c.reader.recv().await.unwrap() {
                        hush_proto::RelayMsg::Event(e)
                            if e.event.sender == mallory.fingerprint() =>
                        {
                            highest = e.event.epoch;
                            sequenced += 1;
                            break;
                        }
                        hush_proto::RelayMsg::Rejected { .. } => break,
                        _ => {}
                    }
                }
            }
            sequenced
        })
    });
    // The members keep chatting through it.
    for i in 0..3 {
        let text = format!("during the flood {i}");
        alice.say(&text);
        bob.wait_json("message", |v| v["text"] == text);
    }
    assert_eq!(
        sequenced.join().unwrap(),
        FLOOD,
        "the relay sequenced every one"
    );
    alice.say("after the flood");
    bob.wait_json("message", |v| v["text"] == "after the flood");
    bob.say("still here");
    alice.wait_json("message", |v| v["text"] == "still here");
    std::thread::sleep(Duration::from_millis(1500));
    alice.drain_for(Duration::from_millis(200));

    assert_eq!(epochs(&alice), epochs_before, "no epoch was used up");
    let last = alice.json_events("epoch").pop().unwrap();
    assert_eq!(
        last["members"].as_array().unwrap().len(),
        2,
        "roster unchanged"
    );
    let state_after = state_bytes(alice.data.path());
    // Each event adds its chain head (bounded); protocol 1 added a roster
    // copy per garbage commit.
    assert!(
        state_after < state_before + FLOOD * 64,
        "alice's saved state grew from {state_before} to {state_after} bytes"
    );
    let malformed = alice
        .json_events("warning")
        .iter()
        .filter(|w| w["kind"] == "malformed")
        .count();
    assert!(malformed >= 1, "the garbage is reported");
}

#[test]
fn a_kick_takes_effect_while_the_kicked_client_keeps_publishing() {
    let data = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(data.path(), 0, &[]);
    let mut alice = ClientProcess::start(&relay.addr, "alice", "kicks", true, &[]);
    alice.wait_json("joined", |_| true);
    let mut bob = ClientProcess::start(&relay.addr, "bob", "kicks", true, &[]);
    bob.wait_json("joined", |_| true);
    let mut carol = ClientProcess::start(&relay.addr, "carol", "kicks", true, &[]);
    carol.wait_json("joined", |_| true);
    alice.wait_json("epoch", |v| {
        v["members"].as_array().is_some_and(|m| m.len() == 3)
    });
    let carol_fp = example_identity("carol").fingerprint().to_string();
    // Carol talks without pause; alice kicks her in the middle of it.
    for i in 0..10 {
        carol.say(&format!("carol {i}"));
    }
    alice.say(&format!("/kick {carol_fp}"));
    for i in 10..30 {
        carol.say(&format!("carol {i}"));
    }
    for m in [&mut alice, &mut bob] {
        m.wait_json("member_left", |v| v["from"] == carol_fp.as_str());
        m.wait_json("epoch", |v| {
            v["members"].as_array().is_some_and(|m| m.len() == 2)
        });
    }
    carol.wait_json("notice", |v| {
        v["text"]
            .as_str()
            .is_some_and(|t| t.contains("no longer a member"))
    });
    alice.say("after the kick");
    bob.wait_json("message", |v| v["text"] == "after the kick");
    carol.drain_for(Duration::from_millis(1500));
    assert!(
        !carol
            .json_events("message")
            .iter()
            .any(|v| v["text"] == "after the kick"),
        "the kicked member read on"
    );
}

/// Copies every file of `from` into `to` (flat or nested).
/// Copies a folder as `cp -a` would, keeping each folder's mode (the
/// relay refuses folders others can enter).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    std::fs::set_permissions(to, std::fs::metadata(from).unwrap().permissions()).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.metadata().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn a_relay_whose_log_was_rewound_gets_rollback_and_reset_room_starts_over() {
    let data = tempfile::tempdir().unwrap();
    let backup = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(data.path(), 0, &[]);
    let port = relay.port();
    let mut alice = ClientProcess::start(&relay.addr, "alice", "rewound", true, &[]);
    alice.wait_json("joined", |_| true);
    alice.say("kept in the backup");
    alice.wait_json("message", |v| v["text"] == "kept in the backup");
    // The operator takes a backup of the stopped relay's folder.
    relay.signal("-TERM");
    copy_dir(data.path(), backup.path());
    let relay = RelayProcess::start(data.path(), port, &[]);
    for text in ["after the backup 1", "after the backup 2"] {
        alice.say(text);
        alice.wait_json("message", |v| v["text"] == text);
    }
    // ...and restores it: the relay's log is behind what alice processed.
    relay.signal("-TERM");
    std::fs::remove_dir_all(data.path()).unwrap();
    copy_dir(backup.path(), data.path());
    let relay = RelayProcess::start(data.path(), port, &[]);
    let w = alice.wait_json("warning", |v| v["kind"] == "rollback");
    assert!(
        w["text"]
            .as_str()
            .is_some_and(|t| t.contains("--reset-room")),
        "{w}"
    );
    alice.say("into a rewound room");
    alice.wait_json("notice", |v| {
        v["text"].as_str().is_some_and(|t| t.contains("not sent"))
    });
    // Starting over: alice reads what the relay has now and talks again.
    alice.close_input();
    let _ = alice.wait_exit();
    let key_dir = tempfile::tempdir().unwrap();
    let (_k, key) = common::example_key("alice");
    let mut again = ClientProcess::start_with(
        &relay.addr,
        &key,
        alice.into_data(),
        key_dir,
        "rewound",
        true,
        &["--reset-room"],
    );
    again.wait_json("notice", |v| {
        v["text"].as_str().is_some_and(|t| t.contains("over"))
    });
    again.wait_json("joined", |_| true);
    again.say("after the reset");
    again.wait_json("message", |v| v["text"] == "after the reset");
    assert!(
        again
            .json_events("warning")
            .iter()
            .all(|v| v["kind"] != "rollback"),
        "{:?}",
        again.seen
    );
}

/// Every file under `dir`, read whole.
fn all_bytes(dir: &Path) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        if entry.metadata().unwrap().is_dir() {
            out.extend(all_bytes(&entry.path()));
        } else {
            out.push(std::fs::read(entry.path()).unwrap());
        }
    }
    out
}

/// Audit M5: names travel sealed. Canary nicknames chosen at the start,
/// on admission and by a rename never appear in the relay's data folder
/// (its log, heads, tickets), which holds everything the relay saw, nor
/// on the wire (both clients connect through a recording proxy).
#[test]
fn canary_nicknames_never_reach_the_relays_data_folder_or_the_wire() {
    let data = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(data.path(), 0, &[]);
    let proxy = Proxy::start(&relay.addr, false);
    let mut alice = ClientProcess::start(
        &proxy.addr,
        "alice",
        "canaries",
        true,
        &["--nick", "canaryAlpha7"],
    );
    alice.wait_json("joined", |_| true);
    let mut bob = ClientProcess::start(
        &proxy.addr,
        "bob",
        "canaries",
        true,
        &["--nick", "canaryBravo8"],
    );
    bob.wait_json("joined", |_| true);
    alice.wait_json("notice", |v| {
        v["text"]
            .as_str()
            .is_some_and(|t| t.contains("is now known as canaryBravo8"))
    });
    bob.say("/nick canaryCharlie9");
    alice.wait_json("notice", |v| {
        v["text"]
            .as_str()
            .is_some_and(|t| t.contains("canaryCharlie9"))
    });
    bob.say("hello");
    alice.wait_json("message", |v| v["nick"] == "canaryCharlie9");
    alice.close_input();
    bob.close_input();
    let _ = alice.wait_exit();
    let _ = bob.wait_exit();
    relay.signal("-TERM");
    let mut files = all_bytes(data.path());
    assert!(!files.is_empty());
    let wire = proxy.recorded.lock().unwrap().clone();
    assert!(
        wire.len() > 10_000,
        "the proxy saw the handshakes and the chat"
    );
    files.push(wire);
    for canary in ["canaryAlpha7", "canaryBravo8", "canaryCharlie9", "canary"] {
        for bytes in &files {
            assert!(
                !bytes.windows(canary.len()).any(|w| w == canary.as_bytes()),
                "{canary} is in the relay's data folder or on the wire"
            );
        }
    }
}
