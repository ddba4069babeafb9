//! Link v2 against the real relay on 127.0.0.1, in a test binary of its
//! own: the process-wide count of RSA decryptions must stay at zero, so no
//! other test may share the process.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Duration;

use hush_client::link::Connection;
use hush_proto::{ClientMsg, EventKind, RelayMsg, RoomEvent, RoomName};
mod common;
use common::TestRelay;
use hush_server::Limits;
use hush_testkit::keys::{alice, bob};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const STEP: Duration = Duration::from_secs(10);

/// Issue #14: the relay's long-term key never decrypts anything. Full and
/// resumed handshakes, a stranger's garbage message 3 and a handshake of
/// another version: the process performs no RSA decryption at all (the
/// relay and these clients run in it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_never_decrypts_with_its_rsa_key() {
    let dir = tempfile::tempdir().unwrap();
    let relay = TestRelay::start(dir.path(), Limits::default()).await;
    let addr = relay.addr.clone();
    let max = hush_proto::DEFAULT_MAX_FRAME;
    let full = Connection::connect(&addr, alice(), max, |_| Ok(()))
        .await
        .unwrap();
    assert!(!full.resumed);
    let resumed =
        Connection::connect_resuming(&addr, alice(), max, full.ticket.clone(), |_| Ok(()))
            .await
            .unwrap();
    assert!(resumed.resumed);
    // A stranger sends a real hello, then 2 KB of garbage as message 3.
    let (_, hello) = hush_proto::handshake::client_start(bob());
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let mut wire = Vec::new();
    hush_proto::frame::encode_frame(&hello, usize::MAX, &mut wire).unwrap();
    s.write_all(&wire).await.unwrap();
    let mut greeting = vec![0u8; 512];
    let _ = tokio::time::timeout(STEP, s.read(&mut greeting)).await;
    let mut garbage = Vec::new();
    hush_proto::frame::encode_frame(&[0x5a; 2048], usize::MAX, &mut garbage).unwrap();
    s.write_all(&garbage).await.unwrap();
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(STEP, s.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "the relay closes the stranger's connection");
    drop((full, resumed));
    relay.shutdown().await;
    assert_eq!(
        hush_crypto::rsa_decryptions(),
        0,
        "an RSA decryption happened in the relay's process"
    );
}

fn event(n: usize, body: usize) -> RoomEvent {
    RoomEvent {
        room: RoomName::new("big").unwrap(),
        sender: alice().fingerprint(),
        kind: EventKind::Message,
        epoch: 0,
        body: vec![u8::try_from(n % 251).unwrap(); body],
    }
}

/// Audit M7: a relay with 1 MiB frames and a backlog far above 64 KiB.
/// A client that announces 64 KiB backfills all of it, in records that
/// fit what it announced; before, the relay packed up to its own limit
/// and such a client looped on reconnects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_announcing_a_small_limit_backfills_a_large_backlog() {
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits {
        max_frame_bytes: 1024 * 1024,
        ..Limits::default()
    };
    let relay = TestRelay::start(dir.path(), limits).await;
    let addr = relay.addr.clone();
    let room = RoomName::new("big").unwrap();
    let mut writer =
        Connection::connect(&addr, alice(), hush_proto::frame::MAX_FRAME_CEILING, |_| {
            Ok(())
        })
        .await
        .unwrap();
    assert_eq!(writer.welcome.max_frame, 1024 * 1024);
    writer
        .writer
        .send(&ClientMsg::Join { room: room.clone() })
        .await
        .unwrap();
    const EVENTS: usize = 40;
    for n in 0..EVENTS {
        writer
            .writer
            .send(&ClientMsg::Publish {
                request: n as u64 + 1,
                event: event(n, 8 * 1024),
            })
            .await
            .unwrap();
    }
    let mut seen = 0;
    while seen < EVENTS as u64 {
        match tokio::time::timeout(STEP, writer.reader.recv())
            .await
            .unwrap()
            .unwrap()
        {
            RelayMsg::Event(e) => seen = e.seq,
            RelayMsg::Rejected { reason, .. } => panic!("{reason:?}"),
            _ => {}
        }
    }
    // 40 × 8 KiB = 320 KiB of backlog; the reader accepts 64 KiB frames.
    let small = hush_proto::DEFAULT_MAX_FRAME;
    let mut reader = Connection::connect(&addr, bob(), small, |_| Ok(()))
        .await
        .unwrap();
    reader
        .writer
        .send(&ClientMsg::Join { room: room.clone() })
        .await
        .unwrap();
    let head = loop {
        if let RelayMsg::Joined { head_seq, .. } = tokio::time::timeout(STEP, reader.reader.recv())
            .await
            .unwrap()
            .unwrap()
        {
            break head_seq;
        }
    };
    assert_eq!(head, EVENTS as u64);
    let mut got = 0u64;
    let mut complete = false;
    while !complete {
        reader
            .writer
            .send(&ClientMsg::Backfill {
                room: room.clone(),
                after_seq: got,
            })
            .await
            .unwrap();
        loop {
            match tokio::time::timeout(STEP, reader.reader.recv())
                .await
                .unwrap()
                .expect("the link stays up: no record above the announced limit")
            {
                RelayMsg::Event(e) if e.seq <= head => {
                    assert_eq!(e.seq, got + 1, "contiguous");
                    got = e.seq;
                }
                RelayMsg::BackfillDone { complete: c, .. } => {
                    complete = c;
                    break;
                }
                _ => {}
            }
        }
    }
    assert_eq!(got, EVENTS as u64);
    relay.shutdown().await;
}

/// Before it has authenticated, a stranger cannot make the relay buffer
/// more than a handshake frame, even on a relay with 1 MiB frames: a
/// 64 KiB first frame closes its connection, and others are still served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_cannot_send_a_large_frame_before_the_handshake() {
    let dir = tempfile::tempdir().unwrap();
    // The handshake deadline is far off: only the frame limit can close
    // the connection within the wait below.
    let limits = Limits {
        max_frame_bytes: 1024 * 1024,
        handshake_timeout: Duration::from_secs(600),
        ..Limits::default()
    };
    let relay = TestRelay::start(dir.path(), limits).await;
    let mut s = tokio::net::TcpStream::connect(&relay.addr).await.unwrap();
    // Only the length prefix: a relay that accepted it would wait for
    // 64 KiB that never come.
    let len = u32::try_from(64 * 1024).unwrap();
    s.write_all(&len.to_be_bytes()).await.unwrap();
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(STEP, s.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "the relay closes the connection");
    assert!(rest.is_empty(), "without a reply");
    let ok = Connection::connect(&relay.addr, alice(), hush_proto::DEFAULT_MAX_FRAME, |_| {
        Ok(())
    })
    .await;
    assert!(ok.is_ok(), "others are still served");
    relay.shutdown().await;
}
