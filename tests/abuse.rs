//! Abuse against the real relay binary, bounded in count and time, on
//! loopback only. Each test keeps a real conversation going while it
//! attacks, and checks that the conversation is unaffected. The figures
//! they print are recorded in docs/RELIABILITY.md.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{ClientProcess, RelayProcess, example_identity};

/// Alice and bob in a room; returns them once both are admitted.
fn conversation(addr: &str, room: &str) -> (ClientProcess, ClientProcess) {
    let mut alice = ClientProcess::start(addr, "alice", room, true, &[]);
    alice.wait_json("joined", |_| true);
    let mut bob = ClientProcess::start(addr, "bob", room, true, &[]);
    bob.wait_json("joined", |_| true);
    alice.wait_json("epoch", |v| {
        v["members"].as_array().is_some_and(|m| m.len() == 2)
    });
    (alice, bob)
}

/// Alice says something; returns how long until bob shows it.
fn round_trip(alice: &mut ClientProcess, bob: &mut ClientProcess, text: &str) -> Duration {
    let start = Instant::now();
    alice.say(text);
    bob.wait_json("message", |v| v["text"] == text);
    start.elapsed()
}

fn is_closed(s: &mut TcpStream) -> bool {
    s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let mut buf = [0u8; 64];
    match s.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

#[test]
fn two_thousand_stalled_handshakes_are_closed_at_the_deadline_while_a_room_talks() {
    let data = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(
        data.path(),
        0,
        &[
            "--handshake-timeout",
            "3s",
            "--max-connections",
            "5000",
            "--max-connections-per-ip",
            "5000",
            "--handshakes-per-ip",
            "100000",
        ],
    );
    let (mut alice, mut bob) = conversation(&relay.addr, "calm");
    let started = Instant::now();
    let mut stalled = Vec::new();
    for i in 0..2000 {
        let mut s = TcpStream::connect(&relay.addr).unwrap();
        if i % 2 == 0 {
            // Half a hello, then silence.
            let _ = s.write_all(&[0, 0, 0, 40, b'h', b'u', b's']);
        }
        stalled.push(s);
    }
    let opened_in = started.elapsed();
    // The room keeps talking while 2,000 connections hang.
    let mut worst = Duration::ZERO;
    for i in 0..5 {
        worst = worst.max(round_trip(
            &mut alice,
            &mut bob,
            &format!("during the stall {i}"),
        ));
    }
    // After the deadline every stalled connection is closed.
    std::thread::sleep(Duration::from_secs(4).saturating_sub(started.elapsed()));
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut closed = 0;
    for s in &mut stalled {
        while !is_closed(s) {
            assert!(
                Instant::now() < deadline,
                "a stalled handshake outlived the deadline"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        closed += 1;
    }
    assert_eq!(closed, 2000);
    println!(
        "stalled handshakes: 2000 opened in {opened_in:?}, all closed at the 3 s deadline; worst round trip meanwhile {worst:?}"
    );
    assert!(
        worst < Duration::from_secs(5),
        "the room stalled: {worst:?}"
    );
}

#[test]
fn a_handshake_flood_does_not_stall_an_established_room() {
    let data = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(
        data.path(),
        0,
        &[
            "--handshakes-per-ip",
            "100000",
            "--max-connections-per-ip",
            "5000",
        ],
    );
    let (mut alice, mut bob) = conversation(&relay.addr, "busy");
    let quiet = round_trip(&mut alice, &mut bob, "before the flood");
    let addr = relay.addr.clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flooders: Vec<_> = (0..4)
        .map(|_| {
            let addr = addr.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                let mallory = example_identity("mallory");
                let mut done = 0u32;
                rt.block_on(async {
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        if hush_client::link::Connection::connect(
                            &addr,
                            mallory.clone(),
                            65536,
                            |_| Ok(()),
                        )
                        .await
                        .is_ok()
                        {
                            done += 1;
                        }
                    }
                });
                done
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let mut worst = Duration::ZERO;
    for i in 0..5 {
        worst = worst.max(round_trip(
            &mut alice,
            &mut bob,
            &format!("during the flood {i}"),
        ));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let handshakes: u32 = flooders.into_iter().map(|f| f.join().unwrap()).sum();
    println!(
        "handshake flood: {handshakes} full handshakes by 4 flooders; round trip {quiet:?} before, worst {worst:?} during"
    );
    assert!(handshakes > 10, "the flood ran");
    assert!(
        worst < Duration::from_secs(5),
        "the room stalled: {worst:?}"
    );
}

#[test]
fn hundreds_of_malformed_inputs_each_close_only_their_own_connection() {
    let data = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(
        data.path(),
        0,
        &[
            "--handshakes-per-ip",
            "100000",
            "--max-connections-per-ip",
            "5000",
        ],
    );
    let (mut alice, mut bob) = conversation(&relay.addr, "steady");
    let mut inputs: Vec<Vec<u8>> = Vec::new();
    // Bad lengths.
    for len in [0u32, 1, 4097, 65_537, 1 << 20, u32::MAX] {
        inputs.push(len.to_be_bytes().to_vec());
    }
    // Bad versions and not-hush.
    for v in [0u8, 2, 9, 127] {
        inputs.push([&[0, 0, 0, 37][..], b"hush", &[v], &[0u8; 32]].concat());
    }
    inputs.push(b"GET / HTTP/1.1\r\n\r\n".to_vec());
    inputs.push(b"SSH-2.0-OpenSSH_9.6\r\n".to_vec());
    // Wrong state: a ClientAuth-shaped message as the first frame.
    inputs.push([&[0, 0, 0, 10][..], &[3, b'k', b'e', b'y', 0, 0, 1, 2, 3, 4]].concat());
    // Noise of every length pattern.
    let mut x: u32 = 12345;
    while inputs.len() < 300 {
        let len = (inputs.len() * 37) % 700 + 1;
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                (x >> 16) as u8
            })
            .collect();
        inputs.push(bytes);
    }
    let tried = inputs.len();
    for (i, bytes) in inputs.iter().enumerate() {
        let mut s = TcpStream::connect(&relay.addr).unwrap();
        let _ = s.write_all(bytes);
        let _ = s.shutdown(std::net::Shutdown::Write);
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        let mut reply = Vec::new();
        let _ = s.read_to_end(&mut reply);
        // A version refusal may answer; nothing else does.
        assert!(
            reply.len() < 64,
            "input {i} got a reply of {} bytes",
            reply.len()
        );
        if i % 60 == 0 {
            round_trip(&mut alice, &mut bob, &format!("still talking {i}"));
        }
    }
    // On established links: records that do not open (closed), events of a
    // wrong epoch and with a spoofed sender (refused, link kept).
    let (closed, refused) = established_abuse(&relay.addr);
    assert_eq!((closed, refused), (20, 20));
    round_trip(&mut alice, &mut bob, "after all of it");
    println!(
        "malformed inputs: {tried} raw inputs, each closed its own connection; on 40 established links, {closed} forged records closed them and {refused} wrong-epoch or spoofed events were refused; the room kept talking"
    );
}

#[test]
fn the_per_ip_connection_limit_holds() {
    let data = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(
        data.path(),
        0,
        &[
            "--max-connections-per-ip",
            "50",
            "--handshakes-per-ip",
            "100000",
            "--handshake-timeout",
            "10s",
        ],
    );
    let mut held = Vec::new();
    for _ in 0..60 {
        held.push(TcpStream::connect(&relay.addr).unwrap());
    }
    std::thread::sleep(Duration::from_millis(500));
    let mut refused = 0;
    for s in &mut held {
        if is_closed(s) {
            refused += 1;
        }
    }
    println!("per-IP limit 50: 60 connections opened, {refused} refused at once");
    assert_eq!(
        refused, 10,
        "exactly the connections over the limit are closed"
    );
}

#[test]
fn a_member_flooding_a_room_is_slowed_and_the_others_still_talk() {
    let data = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(
        data.path(),
        0,
        &["--publish-rate", "20", "--publish-burst", "20"],
    );
    let (mut alice, mut bob) = conversation(&relay.addr, "flooded");
    // Carol floods the room through a raw link: 400 publishes at once.
    let addr = relay.addr.clone();
    let flood = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let carol = example_identity("carol");
            let mut c =
                hush_client::link::Connection::connect(&addr, carol.clone(), 65536, |_| Ok(()))
                    .await
                    .unwrap();
            let room = hush_proto::RoomName::new("flooded").unwrap();
            c.writer
                .send(&hush_proto::ClientMsg::Join { room: room.clone() })
                .await
                .unwrap();
            let started = Instant::now();
            let burst: Vec<hush_proto::ClientMsg> = (0..400)
                .map(|i| hush_proto::ClientMsg::Publish {
                    request: i,
                    event: hush_proto::RoomEvent {
                        room: room.clone(),
                        sender: carol.fingerprint(),
                        kind: hush_proto::EventKind::JoinRequest,
                        epoch: 0,
                        body: vec![0; 200],
                    },
                })
                .collect();
            // Sending blocks once the relay stops reading: that is the
            // rate limit pushing back.
            let _ = tokio::time::timeout(Duration::from_secs(8), c.writer.send_all(&burst)).await;
            let mut sequenced = 0u32;
            let until = Instant::now() + Duration::from_secs(2);
            while Instant::now() < until {
                match tokio::time::timeout(Duration::from_millis(200), c.reader.recv()).await {
                    Ok(Ok(hush_proto::RelayMsg::Event(e)))
                        if e.event.sender == carol.fingerprint() =>
                    {
                        sequenced += 1
                    }
                    Ok(Ok(_)) | Err(_) => {}
                    Ok(Err(_)) => break,
                }
            }
            (sequenced, started.elapsed())
        })
    });
    std::thread::sleep(Duration::from_millis(300));
    let mut worst = Duration::ZERO;
    for i in 0..5 {
        worst = worst.max(round_trip(
            &mut alice,
            &mut bob,
            &format!("through the flood {i}"),
        ));
    }
    let (sequenced, took) = flood.join().unwrap();
    println!(
        "publish flood: 400 sent at once at 20/s (burst 20): {sequenced} sequenced in {took:?}; worst chat round trip meanwhile {worst:?}"
    );
    assert!(sequenced < 400, "the flood was slowed to the rate");
    assert!(
        worst < Duration::from_secs(5),
        "the room stalled: {worst:?}"
    );
}

/// 40 established links misbehave: even ones send a record that does not
/// open, odd ones publish an event of an epoch the room never reached or
/// with another member as sender. Returns (closed, refused).
fn established_abuse(addr: &str) -> (u32, u32) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mallory = example_identity("mallory");
        let room = hush_proto::RoomName::new("steady").unwrap();
        let mut closed = 0;
        let mut refused = 0;
        for i in 0..40u32 {
            let mut c =
                hush_client::link::Connection::connect(addr, mallory.clone(), 65536, |_| Ok(()))
                    .await
                    .unwrap();
            c.writer
                .send(&hush_proto::ClientMsg::Join { room: room.clone() })
                .await
                .unwrap();
            if i % 2 == 0 {
                let mut forged = Vec::new();
                let len = 40 + usize::try_from(i).unwrap();
                hush_proto::frame::encode_frame(&vec![7; len], 65536, &mut forged).unwrap();
                c.writer.write_raw(&forged).await.unwrap();
            } else {
                let sender = if i % 4 == 1 {
                    mallory.fingerprint()
                } else {
                    example_identity("alice").fingerprint()
                };
                let event = hush_proto::RoomEvent {
                    room: room.clone(),
                    sender,
                    kind: hush_proto::EventKind::Message,
                    epoch: 1_000 + u64::from(i),
                    body: vec![1, 2, 3],
                };
                c.writer
                    .send(&hush_proto::ClientMsg::Publish { request: 1, event })
                    .await
                    .unwrap();
            }
            loop {
                match tokio::time::timeout(Duration::from_secs(10), c.reader.recv()).await {
                    Ok(Ok(hush_proto::RelayMsg::Rejected { .. })) => {
                        refused += 1;
                        break;
                    }
                    Ok(Ok(_)) => {}
                    Ok(Err(_)) => {
                        closed += 1;
                        break;
                    }
                    Err(_) => panic!("the relay did not answer link {i}"),
                }
            }
        }
        (closed, refused)
    })
}
