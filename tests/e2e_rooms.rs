//! Many rooms on one connection (issue #15), with the real binary in line
//! mode: each line names its room, `/join` opens or switches, `/part`
//! closes a window and keeps the membership, `/leave` leaves one room
//! while the others go on, and the next start reopens what was open.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::{ClientProcess, RelayProcess, example_key};

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
