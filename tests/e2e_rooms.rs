//! Many rooms on one connection (issue #15), with the real binary in line
//! mode: each line names its room, `/join` opens or switches, `/part`
//! closes a window and keeps the membership, `/leave` leaves one room
//! while the others go on, and the next start reopens what was open.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::{ClientProcess, RelayProcess, example_identity, example_key};

#[test]
fn one_client_follows_several_rooms_and_reopens_them() {
    let data = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(data.path(), 0, &[]);
    let mut alice =
        ClientProcess::start(&relay.addr, "alice", "alpha", false, &["--room", "#Beta"]);
    alice.wait_for("alpha joined", |l| l.starts_with("#alpha -- joined #alpha"));
    alice.wait_for("beta joined", |l| l.starts_with("#beta -- joined #beta"));
    let mut bob = ClientProcess::start(&relay.addr, "bob", "beta", false, &[]);
    bob.wait_for("bob joined", |l| l.contains("joined #beta"));

    // Typing goes to the first room named; lines say which room they are in.
    alice.say("hello alpha");
    alice.wait_for("own line in alpha", |l| {
        l.starts_with("#alpha [") && l.ends_with(": hello alpha")
    });
    bob.say("hi from beta");
    alice.wait_for("bob's line in beta", |l| {
        l.starts_with("#beta [") && l.contains("bob (") && l.ends_with(": hi from beta")
    });

    // /join of an open room switches to it.
    alice.say("/join beta");
    alice.wait_for("switched", |l| l.contains("now talking in #beta"));
    alice.say("to beta");
    bob.wait_for("alice's line reaches beta", |l| l.ends_with(": to beta"));

    // /join of a new room opens it on the same connection.
    alice.say("/join #Gamma");
    alice.wait_for("gamma opened", |l| l.contains("opened #gamma"));
    alice.wait_for("gamma joined", |l| l.starts_with("#gamma -- joined #gamma"));
    // /part closes its window; alice stays a member.
    alice.say("/part");
    alice.wait_for("parted", |l| {
        l.contains("closing #gamma; you stay a member")
    });
    alice.say("/quit");
    assert!(alice.wait_exit().success());

    // The next start, naming only alpha, reopens beta too, but not gamma.
    let (key_dir, key) = example_key("alice");
    let alice_data = alice.into_data();
    let mut alice =
        ClientProcess::start_with(&relay.addr, &key, alice_data, key_dir, "alpha", false, &[]);
    alice.wait_for("alpha reopened", |l| {
        l.starts_with("#alpha -- joined #alpha")
    });
    alice.wait_for("beta reopened", |l| l.starts_with("#beta -- joined #beta"));
    // /leave leaves beta for good; alpha goes on.
    alice.say("/join beta");
    alice.wait_for("switched", |l| l.contains("now talking in #beta"));
    alice.say("/leave");
    alice.wait_for("leaving", |l| l.contains("leaving #beta"));
    alice.wait_for("back in alpha", |l| l.contains("now talking in #alpha"));
    bob.wait_for("bob sees alice go", |l| {
        l.contains("alice (") && l.contains("left")
    });
    alice.say("still here");
    alice.wait_for("alpha still works", |l| {
        l.starts_with("#alpha [") && l.ends_with(": still here")
    });
    alice.drain_for(std::time::Duration::from_millis(300));
    assert!(
        alice
            .seen_lines()
            .iter()
            .all(|l| !l.contains("joined #gamma")),
        "gamma was parted and not reopened"
    );
    alice.say("/quit");
    assert!(alice.wait_exit().success());
}

#[test]
fn without_a_room_and_with_nothing_saved_the_client_says_what_to_give() {
    let data = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(data.path(), 0, &[]);
    let (_keys, key) = example_key("carol");
    let client_data = tempfile::tempdir().unwrap();
    let out = common::hush()
        .args(["client", "--server", &relay.addr, "--key"])
        .arg(&key)
        .arg("--data")
        .arg(client_data.path())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("give --room NAME"), "{err}");
}

/// `/dm`: two people who share a room open the same two-person,
/// invite-only room, whoever goes first; it creates it and invites the
/// other, and what they say there reaches only the two of them.
#[test]
fn two_people_find_the_same_private_room_with_dm() {
    let data = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(data.path(), 0, &[]);
    let mut alice = ClientProcess::start(&relay.addr, "alice", "lobby", false, &[]);
    alice.wait_for("alice joined", |l| l.contains("joined #lobby"));
    let mut bob = ClientProcess::start(&relay.addr, "bob", "lobby", false, &[]);
    bob.wait_for("bob joined", |l| l.contains("joined #lobby"));
    alice.wait_for("alice knows bob's name", |l| {
        l.contains("is now known as bob")
    });
    let alice_id = example_identity("alice").fingerprint().short_id();
    let bob_id = example_identity("bob").fingerprint().short_id();

    alice.say(&format!("/dm {bob_id}"));
    let opened = alice.wait_for("dm opened", |l| l.contains("opened #dm-"));
    let room = opened
        .split_whitespace()
        .find(|w| w.starts_with("#dm-"))
        .unwrap()
        .trim_end_matches(',')
        .to_owned();
    alice.wait_for("dm created", |l| {
        l.starts_with(&format!("{room} -- joined {room}"))
    });
    bob.say(&format!("/dm {alice_id}"));
    bob.wait_for("same room", |l| l.contains(&format!("opened {room}")));
    bob.wait_for("bob admitted", |l| {
        l.starts_with(&format!("{room} -- joined {room}"))
    });
    bob.say("just between us");
    alice.wait_for("alice reads it in the dm", |l| {
        l.starts_with(&format!("{room} [")) && l.ends_with(": just between us")
    });
    alice.say("/quit");
    bob.say("/quit");
    assert!(alice.wait_exit().success());
    assert!(bob.wait_exit().success());
}
