//! State at rest: a member's room saved with [`StateStore`] and restored,
//! on top of the testkit's simulated room (moved here from the room
//! protocol tests, which no longer depend on the client).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Instant;

use hush_client::state::StateStore;
use hush_proto::RoomName;
use hush_proto::msg::encode;
use hush_room::Room;
use hush_testkit::entropy::os;
use hush_testkit::keys::{
    alice as alice_id, bob as bob_id, carol as carol_id, mallory as mallory_id,
};
use hush_testkit::sim::{Member, connect, disconnect, pump, room_name, two_members};

#[test]
fn a_restored_member_resumes_exactly_where_it_stopped() {
    let (mut relay, mut alice, mut bob) = two_members();
    alice.send_text("before the restart");
    pump(&mut relay, &mut [&mut alice, &mut bob]);
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::new(dir.path(), "relay:1", "lobby", bob_id());
    store.save(&bob.room.snapshot()).unwrap();
    // Bob is away while alice talks and the room rekeys (carol joins).
    disconnect(&mut bob, &mut [&mut alice]);
    let delivered = bob.delivered;
    alice.send_text("while bob was away");
    pump(&mut relay, &mut [&mut alice]);
    let mut carol = Member::new(carol_id(), "carol");
    connect(&relay, &mut carol, &mut [&mut alice]);
    pump(&mut relay, &mut [&mut alice, &mut carol]);
    alice.send_text("after the rekey");
    pump(&mut relay, &mut [&mut alice, &mut carol]);

    // Bob restarts from his saved state.
    let snap = store.load().unwrap().expect("saved state");
    let mut back = Member::new(bob_id(), "bob");
    back.room = Room::restore(room_name(), bob_id(), &snap, os(), Instant::now()).unwrap();
    assert_eq!(back.room.last_seq(), delivered);
    back.delivered = delivered;
    connect(&relay, &mut back, &mut [&mut alice, &mut carol]);
    pump(&mut relay, &mut [&mut alice, &mut carol, &mut back]);
    assert_eq!(
        back.texts(),
        vec![
            "while bob was away".to_owned(),
            "after the rekey".to_owned()
        ],
        "everything missed, in order, once; nothing from before again"
    );
    assert!(back.room.is_member());
    assert!(back.warnings().is_empty(), "{:?}", back.warnings());
}

#[test]
fn saved_state_is_useless_without_the_private_key() {
    let (mut relay, mut alice, mut bob) = two_members();
    alice.send_text("a secret worth keeping");
    pump(&mut relay, &mut [&mut alice, &mut bob]);
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::new(dir.path(), "relay:1", "lobby", bob_id());
    let snap = bob.room.snapshot();
    store.save(&snap).unwrap();
    let bytes = std::fs::read(store.path()).unwrap();
    // Neither the epoch key nor the roster's nicknames are visible.
    let plain = encode(&snap);
    for window in [
        b"bob".as_slice(),
        b"alice".as_slice(),
        &plain[plain.len() - 32..],
    ] {
        assert!(
            !bytes.windows(window.len()).any(|w| w == window),
            "plaintext in the state file"
        );
    }
    // Another identity cannot open it, even at the same path.
    let mallory = StateStore::new(dir.path(), "relay:1", "lobby", mallory_id());
    assert_eq!(mallory.path(), store.path());
    assert!(mallory.load().is_err());
    // A flipped byte makes it unreadable, not wrong.
    let mut damaged = bytes.clone();
    let mid = damaged.len() / 2;
    damaged[mid] ^= 1;
    std::fs::write(store.path(), &damaged).unwrap();
    assert!(store.load().is_err());
    // Restoring another room's or identity's snapshot is refused.
    assert!(
        Room::restore(
            RoomName::new("elsewhere").unwrap(),
            bob_id(),
            &snap,
            os(),
            Instant::now()
        )
        .is_err()
    );
    assert!(Room::restore(room_name(), alice_id(), &snap, os(), Instant::now()).is_err());
}

/// A state saved by a protocol 1 client is refused with a message that
/// says so (the client then sets it aside and reads the room again).
#[test]
fn a_state_saved_by_another_protocol_version_is_refused_clearly() {
    let (_relay, _alice, bob) = two_members();
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::new(dir.path(), "relay:1", "lobby", bob_id());
    store.save(&bob.room.snapshot()).unwrap();
    let file = walk(dir.path()).pop().expect("one state file");
    let mut bytes = std::fs::read(&file).unwrap();
    // postcard: the 10 magic bytes, then the format version as a varint.
    assert_eq!(bytes[10], 2);
    bytes[10] = 1;
    std::fs::write(&file, bytes).unwrap();
    let err = store.load().err().expect("refused");
    assert!(
        matches!(
            err,
            hush_client::state::StateError::OtherVersion { found: 1, .. }
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains("another protocol version"),
        "{err}"
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn state_folders_are_private_and_the_temporary_file_is_never_followed_or_inherited() {
    use std::os::unix::fs::PermissionsExt;
    let mode =
        |p: &std::path::Path| std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777;
    let (mut relay, mut alice, mut bob) = two_members();
    alice.send_text("hello");
    pump(&mut relay, &mut [&mut alice, &mut bob]);
    let top = tempfile::tempdir().unwrap();
    let data = top.path().join("client");
    let store = StateStore::new(&data, "relay:1", "lobby", bob_id());
    let rooms = store.path().parent().unwrap().to_path_buf();
    // Another local user planted a link where the temporary file goes.
    std::fs::create_dir_all(&rooms).unwrap();
    std::fs::set_permissions(&rooms, std::fs::Permissions::from_mode(0o700)).unwrap();
    let target = top.path().join("victim");
    std::fs::write(&target, "untouched").unwrap();
    let tmp = store.path().with_extension("state.tmp");
    std::os::unix::fs::symlink(&target, &tmp).unwrap();
    store.save(&bob.room.snapshot()).unwrap();
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "untouched");
    assert_eq!(mode(store.path()), 0o600);
    // A stale temporary file readable by others is replaced, not reused.
    std::fs::write(&tmp, "stale").unwrap();
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644)).unwrap();
    store.save(&bob.room.snapshot()).unwrap();
    assert_eq!(mode(store.path()), 0o600);
    assert!(store.load().unwrap().is_some());

    // Folders hush creates itself are 0700, parents included.
    let fresh = top.path().join("fresh").join("client");
    let store = StateStore::new(&fresh, "relay:1", "lobby", bob_id());
    store.save(&bob.room.snapshot()).unwrap();
    assert_eq!(mode(&fresh), 0o700);
    assert_eq!(mode(store.path().parent().unwrap()), 0o700);
    assert_eq!(mode(&top.path().join("fresh")), 0o700);
}

/// The list of open rooms: saved per relay, read back in order without
/// repeats, a damaged line skipped, written privately.
#[test]
fn the_open_rooms_list_is_per_relay_and_skips_what_is_not_a_room() {
    use hush_client::state::OpenRooms;
    let dir = tempfile::tempdir().unwrap();
    let one = OpenRooms::new(dir.path(), "relay:1");
    let other = OpenRooms::new(dir.path(), "relay:2");
    assert!(one.load().is_empty(), "nothing saved yet");
    let names: Vec<RoomName> = ["lobby", "ops", "lobby"]
        .iter()
        .map(|n| RoomName::new(n).unwrap())
        .collect();
    one.save(&names).unwrap();
    assert_eq!(one.load(), names[..2].to_vec(), "in order, once each");
    assert!(other.load().is_empty(), "another relay's list is apart");
    let path = std::fs::read_dir(dir.path().join("rooms"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "list"))
        .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "private: {mode:o}");
    }
    std::fs::write(&path, "lobby\n../etc\n\nOPS!\nops\n").unwrap();
    assert_eq!(one.load(), names[..2].to_vec());
}
