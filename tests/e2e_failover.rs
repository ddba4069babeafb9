//! `--server A,B`: the nodes of one cluster, tried in order (issue #18,
//! the client's part). A node that does not answer is skipped at once;
//! a node that presents another key than the one its peers are pinned to
//! is refused, since every node of a cluster presents one key.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::{ClientProcess, RelayProcess, example_key, free_port, hush, run};

#[test]
fn a_node_that_does_not_answer_is_skipped_and_a_foreign_key_is_refused() {
    let (_keys, relay_key) = example_key("relay");
    let data = tempfile::tempdir().unwrap();
    let key = relay_key.to_str().unwrap();
    let up = RelayProcess::start(data.path(), 0, &["--key", key]);
    let down = format!("127.0.0.1:{}", free_port());
    let list = format!("{down},{}", up.addr);
    let mut alice = ClientProcess::start(&list, "alice", "lobby", false, &[]);
    let first = alice.wait_for("the list", |l| l.contains("connecting to"));
    assert!(first.contains(&format!("then {}", up.addr)), "{first}");
    alice.wait_for("skipped", |l| {
        l.contains(&format!("cannot reach the relay at {down}")) && l.contains("trying")
    });
    alice.wait_for("connected", |l| l == format!("-- connected to {}", up.addr));
    alice.wait_for("joined", |l| l.contains("joined #lobby"));
    alice.say("/quit");
    alice.wait_exit();
    let data_dir = alice.into_data();

    // Another relay, with its own key, listed as a node of the same
    // cluster: refused, because the first node is pinned to another key.
    let other_data = tempfile::tempdir().unwrap();
    let stranger = RelayProcess::start(other_data.path(), 0, &[]);
    drop(up);
    let (_alice_keys, alice_key) = example_key("alice");
    let list = format!("{},{}", list.split(',').nth(1).unwrap(), stranger.addr);
    let again = run(hush()
        .args(["client", "--server", &list, "--room", "lobby", "--key"])
        .arg(&alice_key)
        .arg("--data")
        .arg(data_dir.path()));
    assert!(!again.ok);
    assert!(!again.stdout.contains("joined #lobby"), "{}", again.stdout);
    assert!(
        again
            .stderr
            .contains("listed with it in --server, is pinned to"),
        "{}",
        again.stderr
    );
}
