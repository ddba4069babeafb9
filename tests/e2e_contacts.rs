//! Verified contacts (issue #17, part 3) through the real `hush` binary:
//! alice compares bob's safety number and marks his key, the mark
//! survives a restart, and mallory taking bob's name raises the impostor
//! warning.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::time::Duration;

use common::{ClientProcess, RelayProcess, example_identity, example_key};

fn fp(name: &str) -> String {
    example_identity(name).fingerprint().to_string()
}

#[test]
fn a_marked_key_stays_verified_across_runs_and_an_impostor_of_it_is_called_out() {
    let data = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(data.path(), 0, &[]);
    let mut alice = ClientProcess::start(&relay.addr, "alice", "team", true, &[]);
    alice.wait_json("joined", |_| true);
    let mut bob = ClientProcess::start(&relay.addr, "bob", "team", true, &[]);
    bob.wait_json("joined", |_| true);
    alice.wait_json("epoch", |v| {
        v["members"].as_array().is_some_and(|m| m.len() == 2)
    });

    // Before any mark, bob's messages are signed but not "verified".
    bob.say("before the mark");
    let m = alice.wait_json("message", |v| v["text"] == "before the mark");
    assert_eq!(m["from"], fp("bob"));
    assert_eq!(m["verified"], false);

    // A key whose safety number was never shown is not marked.
    alice.say("/verify bob --mark");
    let e = alice.wait_json("error", |v| {
        v["text"].as_str().unwrap_or("").contains("--mark")
    });
    assert!(
        e["text"]
            .as_str()
            .unwrap()
            .contains("first show your safety number with bob"),
        "{e}"
    );
    // Nor a name nobody uses.
    alice.say("/verify zed --mark");
    alice.wait_json("error", |v| {
        v["text"]
            .as_str()
            .unwrap_or("")
            .contains("nobody in #team is called zed")
    });

    alice.say("/verify bob");
    let n = alice.wait_json("notice", |v| {
        v["text"]
            .as_str()
            .unwrap_or("")
            .starts_with("safety number with bob")
    });
    assert!(n["text"].as_str().unwrap().contains("--mark"), "{n}");
    alice.say("/verify bob --mark");
    let marked = alice.wait_json("notice", |v| {
        v["text"].as_str().unwrap_or("").starts_with("marked bob")
    });
    assert!(
        marked["text"].as_str().unwrap().contains(&fp("bob")),
        "the notice names the key: {marked}"
    );
    alice.say("/members");
    let members = alice.wait_json("members", |_| true);
    let list = members["members"].as_array().unwrap();
    let of = |who: &str| {
        list.iter()
            .find(|m| m["fingerprint"] == fp(who))
            .unwrap()
            .clone()
    };
    assert_eq!(of("bob")["verified"], true);
    assert_eq!(of("alice")["verified"], false, "we do not mark ourselves");

    // The mark is kept (sealed in alice's data folder) for the next run.
    alice.say("/quit");
    assert!(alice.wait_exit().success());
    let alice_data = alice.into_data();
    let contacts = alice_data.path().join("contacts");
    let files: Vec<_> = std::fs::read_dir(&contacts).unwrap().flatten().collect();
    assert_eq!(files.len(), 1, "one sealed file for alice's identity");
    let sealed = std::fs::read(files[0].path()).unwrap();
    assert!(
        !sealed.windows(3).any(|w| w == b"bob"),
        "the file is sealed, not plain"
    );
    let (key_dir, key) = example_key("alice");
    let mut alice =
        ClientProcess::start_with(&relay.addr, &key, alice_data, key_dir, "team", true, &[]);
    alice.wait_json("joined", |_| true);
    bob.say("after the restart");
    let m = alice.wait_json("message", |v| v["text"] == "after the restart");
    assert_eq!(m["verified"], true, "{m}");

    // Mallory takes bob's name: alice is warned, naming both keys.
    let mut mallory =
        ClientProcess::start(&relay.addr, "mallory", "team", true, &["--nick", "bob"]);
    mallory.wait_json("joined", |_| true);
    let w = alice.wait_json("warning", |v| v["kind"] == "impostor");
    assert_eq!(w["from"], fp("mallory"));
    assert_eq!(w["nick"], "bob");
    assert_eq!(w["verified_fingerprint"], fp("bob"));
    assert_eq!(w["verified_nick"], "bob");
    assert_eq!(w["room"], "team");
    let text = w["text"].as_str().unwrap();
    assert!(
        text.contains(&fp("bob")) && text.contains(&fp("mallory")),
        "{text}"
    );
    // Her messages say bob but are not verified, and the warning is not
    // repeated for each of them.
    mallory.say("it's me, bob, new laptop");
    let m = alice.wait_json("message", |v| v["text"] == "it's me, bob, new laptop");
    assert_eq!(m["nick"], "bob");
    assert_eq!(m["from"], fp("mallory"));
    assert_eq!(m["verified"], false);
    mallory.say("really");
    alice.wait_json("message", |v| v["text"] == "really");
    alice.drain_for(Duration::from_millis(300));
    let warnings: Vec<_> = alice
        .json_events("warning")
        .into_iter()
        .filter(|v| v["kind"] == "impostor")
        .collect();
    assert_eq!(
        warnings.len(),
        1,
        "once per room, key and name: {warnings:?}"
    );
    // The real bob is still verified, and raises nothing.
    bob.say("the real one");
    let m = alice.wait_json("message", |v| v["text"] == "the real one");
    assert_eq!(m["verified"], true);

    // Unmarking by name: bob is no longer verified.
    alice.say("/verify bob --unmark");
    let e = alice.wait_json("notice", |v| {
        v["text"]
            .as_str()
            .unwrap_or("")
            .contains("is no longer marked verified")
    });
    assert!(e["text"].as_str().unwrap().contains(&fp("bob")), "{e}");
    bob.say("unmarked now");
    let m = alice.wait_json("message", |v| v["text"] == "unmarked now");
    assert_eq!(m["verified"], false);
}
