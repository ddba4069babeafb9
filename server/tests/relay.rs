//! The relay against its real listener on 127.0.0.1, driven by a small
//! test client built on hush-proto (hush-client's link).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use hush_client::link::{Connection, LinkError};
use hush_crypto::{Fingerprint, Identity};
use hush_proto::{
    ClientMsg, CloseReason, EventKind, Rejection, RelayMsg, RoomEvent, RoomName, SequencedEvent,
};
use hush_server::Limits;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const MAX: usize = hush_proto::DEFAULT_MAX_FRAME;
const STEP: Duration = Duration::from_secs(10);

mod common;
use common::TestRelay;
use hush_testkit::keys::{alice, bob, carol, relay as relay_key};

fn room(name: &str) -> RoomName {
    RoomName::new(name).unwrap()
}

fn event(from: &Identity, r: &str, kind: EventKind, epoch: u64, body: &[u8]) -> RoomEvent {
    RoomEvent {
        room: room(r),
        sender: from.fingerprint(),
        kind,
        epoch,
        body: body.to_vec(),
    }
}

struct Client {
    conn: Connection,
}

impl Client {
    async fn connect(relay: &TestRelay, who: Arc<Identity>) -> Self {
        let conn = Connection::connect(&relay.addr, who, MAX, |_| Ok(()))
            .await
            .unwrap();
        Self { conn }
    }

    async fn send(&mut self, msg: ClientMsg) {
        self.conn.writer.send(&msg).await.unwrap();
    }

    /// Next message that is not a ping, presence or pong.
    async fn next(&mut self) -> RelayMsg {
        loop {
            let msg = tokio::time::timeout(STEP, self.conn.reader.recv())
                .await
                .expect("a message in time")
                .expect("link alive");
            match msg {
                RelayMsg::Ping { nonce } => self.send(ClientMsg::Pong { nonce }).await,
                RelayMsg::Presence { .. } | RelayMsg::Pong { .. } | RelayMsg::Checkpoint(_) => {}
                other => return other,
            }
        }
    }

    /// Next message of any kind but pings (answered) and presence.
    async fn next_any(&mut self) -> RelayMsg {
        loop {
            let msg = tokio::time::timeout(STEP, self.conn.reader.recv())
                .await
                .expect("a message in time")
                .expect("link alive");
            match msg {
                RelayMsg::Ping { nonce } => self.send(ClientMsg::Pong { nonce }).await,
                RelayMsg::Presence { .. } => {}
                other => return other,
            }
        }
    }

    async fn join(&mut self, r: &str) -> (u64, u64, Vec<Fingerprint>) {
        self.send(ClientMsg::Join { room: room(r) }).await;
        match self.next().await {
            RelayMsg::Joined {
                head_seq,
                epoch,
                online,
                ..
            } => (head_seq, epoch, online),
            other => panic!("expected Joined, got {other:?}"),
        }
    }

    async fn publish(&mut self, request: u64, ev: RoomEvent) {
        self.send(ClientMsg::Publish { request, event: ev }).await;
    }

    async fn next_event(&mut self) -> SequencedEvent {
        match self.next().await {
            RelayMsg::Event(e) => e,
            other => panic!("expected an event, got {other:?}"),
        }
    }

    /// The next event `who` sent (skipping others').
    async fn next_event_from(&mut self, who: &Identity) -> SequencedEvent {
        loop {
            let e = self.next_event().await;
            if e.event.sender == who.fingerprint() {
                return e;
            }
        }
    }

    async fn backfill(&mut self, r: &str, after: u64) -> Vec<SequencedEvent> {
        let mut out = Vec::new();
        let mut after = after;
        loop {
            self.send(ClientMsg::Backfill {
                room: room(r),
                after_seq: after,
            })
            .await;
            loop {
                match self.next().await {
                    RelayMsg::Event(e) => out.push(e),
                    RelayMsg::BackfillDone {
                        up_to, complete, ..
                    } => {
                        if complete {
                            return out;
                        }
                        after = up_to;
                        break;
                    }
                    other => panic!("unexpected {other:?}"),
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_see_the_same_events_in_the_same_order() {
    let dir = tempfile::tempdir().unwrap();
    let relay = TestRelay::start(dir.path(), Limits::default()).await;
    let mut a = Client::connect(&relay, alice()).await;
    let mut b = Client::connect(&relay, bob()).await;
    assert_eq!(a.join("lobby").await.0, 0);
    let (_, _, online) = b.join("lobby").await;
    assert!(online.contains(&alice().fingerprint()) && online.contains(&bob().fingerprint()));
    // Both publish interleaved; both see one order, gapless from 1.
    for i in 0..20u64 {
        a.publish(
            i,
            event(&alice(), "lobby", EventKind::Message, 0, &i.to_be_bytes()),
        )
        .await;
        b.publish(
            i,
            event(&bob(), "lobby", EventKind::Message, 0, &i.to_be_bytes()),
        )
        .await;
    }
    let mut seen_a = Vec::new();
    let mut seen_b = Vec::new();
    for _ in 0..40 {
        seen_a.push(a.next_event().await);
        seen_b.push(b.next_event().await);
    }
    assert_eq!(seen_a, seen_b);
    let seqs: Vec<u64> = seen_a.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=40).collect::<Vec<_>>());
    // Each sender's own events keep their order.
    let alice_bodies: Vec<Vec<u8>> = seen_a
        .iter()
        .filter(|e| e.event.sender == alice().fingerprint())
        .map(|e| e.event.body.clone())
        .collect();
    assert_eq!(
        alice_bodies,
        (0..20u64)
            .map(|i| i.to_be_bytes().to_vec())
            .collect::<Vec<_>>()
    );
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_joiner_backfills_everything_without_gaps_or_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let relay = TestRelay::start(dir.path(), Limits::default()).await;
    let mut a = Client::connect(&relay, alice()).await;
    a.join("lobby").await;
    // More than one backfill page.
    let total = hush_server::BACKFILL_PAGE as u64 + 150;
    let mut batch = Vec::new();
    for i in 0..total {
        batch.push(ClientMsg::Publish {
            request: i,
            event: event(&alice(), "lobby", EventKind::Message, 0, &i.to_be_bytes()),
        });
        if batch.len() == 50 {
            a.conn.writer.send_all(&batch).await.unwrap();
            batch.clear();
        }
    }
    for _ in 0..total {
        a.next_event().await;
    }
    let mut c = Client::connect(&relay, carol()).await;
    let (head, _, _) = c.join("lobby").await;
    assert_eq!(head, total);
    // Something new arrives live while carol backfills.
    a.publish(
        9999,
        event(&alice(), "lobby", EventKind::Message, 0, b"live"),
    )
    .await;
    // The live event may arrive while the backfill answer is streaming:
    // the client orders by seq. Together: every event exactly once.
    let mut got = c.backfill("lobby", 0).await;
    if !got.iter().any(|e| e.seq == total + 1) {
        got.push(c.next_event().await);
    }
    got.sort_by_key(|e| e.seq);
    let seqs: Vec<u64> = got.iter().map(|e| e.seq).collect();
    assert_eq!(
        seqs,
        (1..=total + 1).collect::<Vec<_>>(),
        "no gaps, no duplicates"
    );
    assert_eq!(got.last().unwrap().event.body, b"live");
    // Backfill from the middle.
    let tail = c.backfill("lobby", total - 5).await;
    assert_eq!(tail.len(), 5);
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_oversized_frames_close_only_their_connection() {
    let dir = tempfile::tempdir().unwrap();
    let relay = TestRelay::start(dir.path(), Limits::default()).await;
    let mut a = Client::connect(&relay, alice()).await;
    let mut b = Client::connect(&relay, bob()).await;
    a.join("lobby").await;
    b.join("lobby").await;

    let attacks: Vec<Vec<u8>> = vec![
        u32::MAX.to_be_bytes().to_vec(),               // oversized prefix
        ((MAX as u32) + 1).to_be_bytes().to_vec(),     // just over
        vec![0, 0, 0, 0],                              // empty frame
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), // not hush
        [&[0, 0, 0, 8][..], b"hush\x02abc"].concat(),  // truncated hello
        (0..4096u32).map(|i| (i * 7919 % 251) as u8).collect(), // noise
    ];
    for bytes in attacks {
        let mut s = TcpStream::connect(&relay.addr).await.unwrap();
        s.write_all(&bytes).await.unwrap();
        let mut buf = [0u8; 64];
        let n = tokio::time::timeout(STEP, s.read(&mut buf))
            .await
            .expect("relay closes promptly")
            .unwrap_or(0);
        assert_eq!(n, 0, "relay says nothing and closes: {bytes:?}");
    }
    // Established clients that send a record that does not open, and an
    // oversized record prefix: each is told ProtocolViolation and closed.
    let mut forged = Vec::new();
    hush_proto::frame::encode_frame(&[0x42; 40], 1000, &mut forged).unwrap();
    for bytes in [forged, u32::MAX.to_be_bytes().to_vec()] {
        let mut c = Client::connect(&relay, carol()).await;
        c.join("lobby").await;
        c.conn.writer.write_raw(&bytes).await.unwrap();
        assert_eq!(
            c.next().await,
            RelayMsg::Closing {
                reason: CloseReason::ProtocolViolation
            }
        );
        assert!(matches!(
            tokio::time::timeout(STEP, c.conn.reader.recv())
                .await
                .unwrap(),
            Err(LinkError::Closed | LinkError::Io(_))
        ));
    }

    a.publish(
        1,
        event(&alice(), "lobby", EventKind::Message, 0, b"still here"),
    )
    .await;
    assert_eq!(b.next_event().await.event.body, b"still here");
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_never_finishes_its_handshake_is_closed_at_the_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits {
        handshake_timeout: Duration::from_millis(500),
        ..Limits::default()
    };
    let relay = TestRelay::start(dir.path(), limits).await;
    let started = std::time::Instant::now();
    // Silent, and half a hello.
    let mut silent = TcpStream::connect(&relay.addr).await.unwrap();
    let mut partial = TcpStream::connect(&relay.addr).await.unwrap();
    partial.write_all(&[0, 0, 0, 40, b'h', b'u']).await.unwrap();
    for s in [&mut silent, &mut partial] {
        let mut buf = [0u8; 16];
        let n = tokio::time::timeout(STEP, s.read(&mut buf))
            .await
            .unwrap()
            .unwrap_or(0);
        assert_eq!(n, 0);
    }
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(450),
        "closed too early: {waited:?}"
    );
    // Meanwhile a real client gets through.
    let mut a = Client::connect(&relay, alice()).await;
    a.join("x").await;
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spoofed_sender_is_refused_and_nothing_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let relay = TestRelay::start(dir.path(), Limits::default()).await;
    let mut mallory = Client::connect(&relay, carol()).await;
    let mut b = Client::connect(&relay, bob()).await;
    mallory.join("lobby").await;
    b.join("lobby").await;
    // Claims to be alice.
    mallory
        .publish(
            7,
            event(&alice(), "lobby", EventKind::Message, 0, b"i am alice"),
        )
        .await;
    assert_eq!(
        mallory.next().await,
        RelayMsg::Rejected {
            request: 7,
            room: room("lobby"),
            reason: Rejection::SpoofedSender
        }
    );
    // Not joined: refused too.
    mallory
        .publish(
            8,
            event(&carol(), "elsewhere", EventKind::Message, 0, b"hi"),
        )
        .await;
    assert!(matches!(
        mallory.next().await,
        RelayMsg::Rejected {
            request: 8,
            reason: Rejection::NotJoined,
            ..
        }
    ));
    // The connection still works, and bob saw none of it.
    mallory
        .publish(
            9,
            event(&carol(), "lobby", EventKind::Message, 0, b"honest"),
        )
        .await;
    let e = b.next_event().await;
    assert_eq!((e.seq, e.event.body.as_slice()), (1, &b"honest"[..]));
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reader_is_disconnected_while_a_fast_reader_gets_every_event() {
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits {
        outbound_queue: 64,
        publish_rate: 100_000,
        publish_burst: 100_000,
        ..Limits::default()
    };
    let relay = TestRelay::start(dir.path(), limits).await;
    let mut a = Client::connect(&relay, alice()).await;
    let mut fast = Client::connect(&relay, bob()).await;
    let mut slow = Client::connect(&relay, carol()).await;
    a.join("lobby").await;
    fast.join("lobby").await;
    slow.join("lobby").await;
    // The slow client stops reading; big events fill its socket and queue.
    let total = 400u64;
    let body = vec![0x33; 30_000];
    let reader = tokio::spawn(async move {
        let mut got = Vec::new();
        while got.len() < total as usize {
            got.push(fast.next_event().await.seq);
        }
        got
    });
    // Alice publishes in windows of 8 and reads her own echoes, as a real
    // client does; carol reads nothing.
    for window in 0..total / 8 {
        for i in 0..8 {
            a.publish(
                window * 8 + i,
                event(&alice(), "lobby", EventKind::Message, 0, &body),
            )
            .await;
        }
        for _ in 0..8 {
            a.next_event().await;
        }
    }
    let got = tokio::time::timeout(Duration::from_secs(60), reader)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        got,
        (1..=total).collect::<Vec<_>>(),
        "the fast reader misses nothing"
    );
    // The slow one was cut off: after what was buffered, the link ends.
    let mut saw_too_slow = false;
    loop {
        match tokio::time::timeout(STEP, slow.conn.reader.recv())
            .await
            .unwrap()
        {
            Ok(RelayMsg::Closing { reason }) => {
                assert_eq!(reason, CloseReason::TooSlow);
                saw_too_slow = true;
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    let _ = saw_too_slow; // best effort: the queue was full when it was cut
    // It reconnects and backfills everything.
    let mut again = Client::connect(&relay, carol()).await;
    again.join("lobby").await;
    assert_eq!(again.backfill("lobby", 0).await.len(), total as usize);
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_relay_serves_every_committed_event() {
    let dir = tempfile::tempdir().unwrap();
    let relay = TestRelay::start(dir.path(), Limits::default()).await;
    let mut a = Client::connect(&relay, alice()).await;
    a.join("lobby").await;
    a.publish(
        0,
        event(&alice(), "lobby", EventKind::Commit, 1, b"epoch one"),
    )
    .await;
    for i in 1..=30u64 {
        a.publish(
            i,
            event(&alice(), "lobby", EventKind::Message, 1, &i.to_be_bytes()),
        )
        .await;
    }
    let mut before = Vec::new();
    for _ in 0..31 {
        before.push(a.next_event().await);
    }
    relay.shutdown().await;

    let relay = TestRelay::start(dir.path(), Limits::default()).await;
    let mut b = Client::connect(&relay, bob()).await;
    let (head, epoch, _) = b.join("lobby").await;
    assert_eq!((head, epoch), (31, 1), "head and epoch survive a restart");
    assert_eq!(b.backfill("lobby", 0).await, before);
    // Sequencing continues where it stopped, and the epoch rule holds: a
    // second commit on parent 0 is sequenced (members choose), one that
    // skips an epoch is not.
    b.publish(1, event(&bob(), "lobby", EventKind::Commit, 1, b"rival"))
        .await;
    assert_eq!(b.next_event().await.seq, 32);
    b.publish(2, event(&bob(), "lobby", EventKind::Commit, 3, b"too far"))
        .await;
    assert!(matches!(
        b.next().await,
        RelayMsg::Rejected {
            reason: Rejection::FutureEpoch { current: 1 },
            ..
        }
    ));
    b.publish(3, event(&bob(), "lobby", EventKind::Message, 1, b"next"))
        .await;
    assert_eq!(b.next_event().await.seq, 33);
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_commits_on_one_parent_are_all_sequenced_in_one_order() {
    let dir = tempfile::tempdir().unwrap();
    let relay = TestRelay::start(dir.path(), Limits::default()).await;
    for round in 0..5u64 {
        let r = format!("race{round}");
        let mut a = Client::connect(&relay, alice()).await;
        let mut b = Client::connect(&relay, bob()).await;
        a.join(&r).await;
        b.join(&r).await;
        let (ea, eb) = (
            event(&alice(), &r, EventKind::Commit, 1, b"alice's epoch"),
            event(&bob(), &r, EventKind::Commit, 1, b"bob's epoch"),
        );
        tokio::join!(a.publish(1, ea), b.publish(1, eb));
        // The relay does not pick a winner (members take the first valid
        // one): both are sequenced, and both members see them in the same
        // order.
        let mut seen = Vec::new();
        for c in [&mut a, &mut b] {
            let first = c.next_event().await;
            let second = c.next_event().await;
            assert_eq!((first.seq, second.seq), (1, 2));
            seen.push((first, second));
        }
        assert_eq!(seen[0], seen[1], "one order for everyone");
        let mut c = Client::connect(&relay, carol()).await;
        let (head, epoch, _) = c.join(&r).await;
        assert_eq!((head, epoch), (2, 1), "two commits, both claiming epoch 1");
    }
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_are_limited_per_identity_and_room() {
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits {
        commits_per_minute: 2,
        ..Limits::default()
    };
    let relay = TestRelay::start(dir.path(), limits).await;
    let mut a = Client::connect(&relay, alice()).await;
    let mut b = Client::connect(&relay, bob()).await;
    a.join("lobby").await;
    b.join("lobby").await;
    for i in 0..2u64 {
        a.publish(i, event(&alice(), "lobby", EventKind::Commit, 1, b"c"))
            .await;
        assert_eq!(a.next_event().await.seq, i + 1);
    }
    a.publish(2, event(&alice(), "lobby", EventKind::Commit, 1, b"c"))
        .await;
    assert!(matches!(
        a.next().await,
        RelayMsg::Rejected {
            request: 2,
            reason: Rejection::TooManyCommits { per_minute: 2 },
            ..
        }
    ));
    // Messages still flow, and another member may still commit.
    a.publish(3, event(&alice(), "lobby", EventKind::Message, 1, b"hi"))
        .await;
    assert_eq!(a.next_event().await.seq, 3);
    b.publish(1, event(&bob(), "lobby", EventKind::Commit, 1, b"c"))
        .await;
    assert_eq!(b.next_event_from(&bob()).await.seq, 4);
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_links_are_pinged_and_silent_ones_closed() {
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits {
        idle_timeout: Duration::from_millis(900),
        ..Limits::default()
    };
    let relay = TestRelay::start(dir.path(), limits).await;
    // A client that answers pings stays connected well past the timeout.
    let mut live = Client::connect(&relay, alice()).await;
    live.join("lobby").await;
    let answering = tokio::spawn(async move {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
        let mut pings = 0;
        while tokio::time::Instant::now() < deadline {
            match tokio::time::timeout(Duration::from_millis(200), live.conn.reader.recv()).await {
                Ok(Ok(RelayMsg::Ping { nonce })) => {
                    pings += 1;
                    live.send(ClientMsg::Pong { nonce }).await;
                }
                Ok(Ok(RelayMsg::Closing { reason })) => panic!("closed: {reason:?}"),
                Ok(Err(e)) => panic!("link broke: {e}"),
                _ => {}
            }
        }
        (live, pings)
    });
    // A client that never answers is closed with Idle.
    let mut silent = Client::connect(&relay, bob()).await;
    let mut closed = None;
    while closed.is_none() {
        match tokio::time::timeout(STEP, silent.conn.reader.recv())
            .await
            .unwrap()
        {
            Ok(RelayMsg::Closing { reason }) => closed = Some(reason),
            Ok(_) => {}
            Err(e) => panic!("closed without a reason: {e}"),
        }
    }
    assert_eq!(closed, Some(CloseReason::Idle));
    let (mut live, pings) = answering.await.unwrap();
    assert!(pings >= 2, "the relay pinged the quiet client ({pings})");
    live.publish(
        1,
        event(&alice(), "lobby", EventKind::Message, 0, b"still here"),
    )
    .await;
    assert_eq!(live.next_event().await.seq, 1);
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_is_slowed_to_the_rate_and_others_still_get_through() {
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits {
        publish_rate: 20,
        publish_burst: 10,
        ..Limits::default()
    };
    let relay = TestRelay::start(dir.path(), limits).await;
    let mut flooder = Client::connect(&relay, alice()).await;
    let mut b = Client::connect(&relay, bob()).await;
    flooder.join("lobby").await;
    b.join("lobby").await;
    let started = std::time::Instant::now();
    let flood: Vec<ClientMsg> = (0..50)
        .map(|i| ClientMsg::Publish {
            request: i,
            event: event(&alice(), "lobby", EventKind::Message, 0, b"spam"),
        })
        .collect();
    flooder.conn.writer.send_all(&flood).await.unwrap();
    b.publish(1, event(&bob(), "lobby", EventKind::Message, 0, b"hello"))
        .await;
    let mut bobs_at = None;
    for i in 0..51 {
        let e = b.next_event().await;
        if e.event.sender == bob().fingerprint() {
            bobs_at = Some(i);
        }
    }
    let took = started.elapsed();
    // 10 at once, then 40 at 20/s: about two seconds.
    assert!(
        took >= Duration::from_millis(1500),
        "flood not slowed: {took:?}"
    );
    assert!(
        bobs_at.unwrap() < 20,
        "bob's message was not stuck behind the flood"
    );
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_and_size_limits_are_enforced_with_clear_rejections() {
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits {
        max_rooms_per_connection: 2,
        ..Limits::default()
    };
    let relay = TestRelay::start(dir.path(), limits).await;
    let mut a = Client::connect(&relay, alice()).await;
    a.join("one").await;
    a.join("two").await;
    a.send(ClientMsg::Join {
        room: room("three"),
    })
    .await;
    assert_eq!(
        a.next().await,
        RelayMsg::Rejected {
            request: 0,
            room: room("three"),
            reason: Rejection::TooManyRooms { limit: 2 }
        }
    );
    // Leaving frees a slot.
    a.send(ClientMsg::Leave { room: room("one") }).await;
    assert_eq!(a.next().await, RelayMsg::Left { room: room("one") });
    a.join("three").await;
    // A body too large to deliver is refused, not stored.
    let max_body = hush_proto::msg::max_event_body(MAX);
    a.publish(
        5,
        event(
            &alice(),
            "two",
            EventKind::Message,
            0,
            &vec![1; max_body + 1],
        ),
    )
    .await;
    assert_eq!(
        a.next().await,
        RelayMsg::Rejected {
            request: 5,
            room: room("two"),
            reason: Rejection::TooLarge {
                max_body: max_body as u32
            }
        }
    );
    a.publish(
        6,
        event(&alice(), "two", EventKind::Message, 0, &vec![1; max_body]),
    )
    .await;
    assert_eq!(a.next_event().await.event.body.len(), max_body);
    // Epoch rules for non-commits.
    a.publish(
        7,
        event(&alice(), "two", EventKind::Message, 3, b"from the future"),
    )
    .await;
    assert!(matches!(
        a.next().await,
        RelayMsg::Rejected {
            request: 7,
            reason: Rejection::FutureEpoch { current: 0 },
            ..
        }
    ));
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_ip_connection_limit_holds() {
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits {
        max_connections_per_ip: 3,
        ..Limits::default()
    };
    let relay = TestRelay::start(dir.path(), limits).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(Client::connect(&relay, alice()).await);
    }
    let fourth = Connection::connect(&relay.addr, bob(), MAX, |_| Ok(())).await;
    assert!(
        fourth.is_err(),
        "a fourth connection from one address is refused"
    );
    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut again = Client::connect(&relay, bob()).await;
    again.join("x").await;
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_tells_clients_and_loses_nothing_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let relay = TestRelay::start(dir.path(), Limits::default()).await;
    let mut a = Client::connect(&relay, alice()).await;
    a.join("lobby").await;
    let burst: Vec<ClientMsg> = (0..100)
        .map(|i| ClientMsg::Publish {
            request: i,
            event: event(&alice(), "lobby", EventKind::Message, 0, &[i as u8]),
        })
        .collect();
    a.conn.writer.send_all(&burst).await.unwrap();
    // Wait until the first is delivered, then stop the relay mid-stream.
    a.next_event().await;
    relay.shutdown().await;
    let mut delivered = 1;
    let mut told = None;
    while let Ok(Ok(m)) = tokio::time::timeout(STEP, a.conn.reader.recv()).await {
        match m {
            RelayMsg::Event(_) => delivered += 1,
            RelayMsg::Closing { reason } => told = Some(reason),
            _ => {}
        }
    }
    assert_eq!(told, Some(CloseReason::Shutdown));
    // Everything delivered before the stop is in the log after it.
    let relay = TestRelay::start(dir.path(), Limits::default()).await;
    let mut b = Client::connect(&relay, bob()).await;
    let (head, _, _) = b.join("lobby").await;
    assert!(head >= delivered, "delivered {delivered}, logged {head}");
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_of_another_protocol_version_is_told_the_relays_version() {
    let dir = tempfile::tempdir().unwrap();
    let relay = TestRelay::start(dir.path(), Limits::default()).await;
    let mut s = TcpStream::connect(&relay.addr).await.unwrap();
    // magic, version 7 (varint), a nonce
    let hello = [&b"hush"[..], &[7], &[0u8; 32]].concat();
    let mut framed = Vec::new();
    hush_proto::frame::encode_frame(&hello, MAX, &mut framed).unwrap();
    s.write_all(&framed).await.unwrap();
    let mut reply = Vec::new();
    tokio::time::timeout(STEP, s.read_to_end(&mut reply))
        .await
        .unwrap()
        .unwrap();
    let (_, body) = hush_proto::frame::parse_frame(&reply, MAX)
        .unwrap()
        .unwrap();
    let greeting: hush_proto::msg::RelayGreeting = hush_proto::msg::decode(body).unwrap();
    assert_eq!(greeting.version, hush_proto::PROTOCOL_VERSION);
    assert!(greeting.hello.is_empty());
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_asks_for_backfill_without_reading_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits {
        outbound_queue_bytes: 2 * 1024 * 1024,
        publish_rate: 100_000,
        publish_burst: 100_000,
        ..Limits::default()
    };
    let relay = TestRelay::start(dir.path(), limits).await;
    let mut a = Client::connect(&relay, alice()).await;
    a.join("big").await;
    let body = vec![0x55; 60_000];
    for i in 0..40u64 {
        a.publish(i, event(&alice(), "big", EventKind::Message, 0, &body))
            .await;
        a.next_event().await;
    }
    // Carol asks for the 2.4 MB history again and again and reads nothing.
    let mut greedy = Client::connect(&relay, carol()).await;
    greedy.join("big").await;
    let asks: Vec<ClientMsg> = (0..20)
        .map(|_| ClientMsg::Backfill {
            room: room("big"),
            after_seq: 0,
        })
        .collect();
    let _ = greedy.conn.writer.send_all(&asks).await;
    // The relay keeps serving alice meanwhile...
    a.publish(
        99,
        event(&alice(), "big", EventKind::Message, 0, b"still fine"),
    )
    .await;
    assert_eq!(a.next_event().await.event.body, b"still fine");
    // ...and carol's link ends once her queued bytes pass the budget.
    let mut ended = false;
    for _ in 0..10_000 {
        match tokio::time::timeout(STEP, greedy.conn.reader.recv()).await {
            Ok(Ok(RelayMsg::Closing { reason })) => {
                assert_eq!(reason, CloseReason::TooSlow);
            }
            Ok(Ok(_)) => {}
            Ok(Err(_)) => {
                ended = true;
                break;
            }
            Err(_) => break,
        }
    }
    assert!(ended, "the greedy connection was closed");
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_signs_checkpoints_that_match_the_members_chain_and_survive_restart() {
    let dir = tempfile::tempdir().unwrap();
    let relay = TestRelay::start(dir.path(), Limits::default()).await;
    let mut a = Client::connect(&relay, alice()).await;
    a.join("chain").await;
    let total = 70u64;
    let batch: Vec<ClientMsg> = (0..total)
        .map(|i| ClientMsg::Publish {
            request: i,
            event: event(&alice(), "chain", EventKind::Message, 0, &i.to_be_bytes()),
        })
        .collect();
    a.conn.writer.send_all(&batch).await.unwrap();
    // Fold every event into the chain as a member does; a checkpoint
    // arrives after seq 64 and must match.
    let mut head = [0u8; 32];
    let mut heads = std::collections::HashMap::new();
    let mut periodic = None;
    while heads.len() < total as usize || periodic.is_none() {
        let msg = tokio::time::timeout(STEP, a.conn.reader.recv())
            .await
            .unwrap()
            .unwrap();
        match msg {
            RelayMsg::Event(e) => {
                head = hush_proto::e2e::chain_next(&head, &e);
                heads.insert(e.seq, head);
            }
            RelayMsg::Checkpoint(cp) => periodic = Some(cp),
            _ => {}
        }
    }
    let verify = |cp: &hush_proto::msg::Checkpoint| {
        let digest =
            hush_proto::e2e::checkpoint_digest(&cp.room, cp.seq, &cp.head, cp.relay_time_ms);
        relay_key()
            .public()
            .verify(hush_proto::e2e::CHECKPOINT_CONTEXT, &digest, &cp.signature)
            .expect("signed by the relay");
    };
    let cp = periodic.unwrap();
    assert_eq!(cp.seq, hush_server::CHECKPOINT_EVERY);
    verify(&cp);
    assert_eq!(cp.head, heads[&cp.seq]);
    // On request: the current head.
    a.send(ClientMsg::Checkpoint {
        room: room("chain"),
    })
    .await;
    let asked = loop {
        if let RelayMsg::Checkpoint(cp) = a.next_any().await {
            break cp;
        }
    };
    verify(&asked);
    assert_eq!((asked.seq, asked.head), (total, heads[&total]));
    relay.shutdown().await;

    // After a restart the relay still knows the head.
    let relay = TestRelay::start(dir.path(), Limits::default()).await;
    let mut b = Client::connect(&relay, bob()).await;
    b.join("chain").await;
    b.send(ClientMsg::Checkpoint {
        room: room("chain"),
    })
    .await;
    let again = loop {
        if let RelayMsg::Checkpoint(cp) = b.next_any().await {
            break cp;
        }
    };
    assert_eq!((again.seq, again.head), (total, heads[&total]));
    relay.shutdown().await;
}

/// Session tickets (issue #7): a ticket resumes one connection, without
/// RSA, as the identity it was issued to; offered again, or after a
/// restart, it only gets a full handshake; the latest ticket still
/// resumes after a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ticket_resumes_once_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let relay = TestRelay::start(dir.path(), Limits::default()).await;
    let connect = |addr: String, ticket| async move {
        Connection::connect_resuming(&addr, alice(), MAX, ticket, |_| Ok(()))
            .await
            .unwrap()
    };
    let first = connect(relay.addr.clone(), None).await;
    assert!(!first.resumed);
    let ticket = first
        .ticket
        .clone()
        .expect("a ticket after a full handshake");
    assert!(ticket.expires_ms > first.welcome.relay_time_ms);

    let mut resumed = connect(relay.addr.clone(), Some(ticket.clone())).await;
    assert!(resumed.resumed, "the first use of a ticket resumes");
    assert_eq!(resumed.welcome.client, alice().fingerprint());
    // The resumed link works and is bound to alice: she may publish as
    // herself and only as herself.
    resumed
        .writer
        .send(&ClientMsg::Join {
            room: room("resume"),
        })
        .await
        .unwrap();
    resumed
        .writer
        .send(&ClientMsg::Publish {
            request: 1,
            event: event(&bob(), "resume", EventKind::JoinRequest, 0, b"x"),
        })
        .await
        .unwrap();
    let refused = loop {
        match tokio::time::timeout(STEP, resumed.reader.recv())
            .await
            .unwrap()
            .unwrap()
        {
            RelayMsg::Rejected { reason, .. } => break reason,
            _ => continue,
        }
    };
    assert_eq!(refused, Rejection::SpoofedSender);

    // Replayed: the same ticket again gets a full handshake, not a session.
    let again = connect(relay.addr.clone(), Some(ticket.clone())).await;
    assert!(!again.resumed, "a ticket never opens a second session");
    let latest = again.ticket.clone().unwrap();

    relay.shutdown().await;
    let relay = TestRelay::start(dir.path(), Limits::default()).await;
    let after = connect(relay.addr.clone(), Some(ticket)).await;
    assert!(!after.resumed, "a used ticket stays used across a restart");
    let after = connect(relay.addr.clone(), Some(latest)).await;
    assert!(after.resumed, "an unused ticket resumes after a restart");
    relay.shutdown().await;

    // No tickets when they are switched off.
    let limits = Limits {
        ticket_lifetime: Duration::ZERO,
        ..Limits::default()
    };
    let relay = TestRelay::start(dir.path(), limits).await;
    let c = connect(relay.addr.clone(), after.ticket.clone()).await;
    assert!(!c.resumed);
    assert!(c.ticket.is_none());
    relay.shutdown().await;
}

/// A client that accepts larger frames than the relay still sends records
/// the relay accepts: it seals to the relay's limit from the Welcome.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_with_a_larger_frame_limit_sends_within_the_relays() {
    let dir = tempfile::tempdir().unwrap();
    let relay = TestRelay::start(dir.path(), Limits::default()).await;
    let mut c = Connection::connect(&relay.addr, alice(), MAX * 16, |_| Ok(()))
        .await
        .unwrap();
    c.writer
        .send(&ClientMsg::Join { room: room("big") })
        .await
        .unwrap();
    // 16 events of 16 KB in one call: 256 KB, several relay-sized records.
    let batch: Vec<ClientMsg> = (0..16)
        .map(|i| ClientMsg::Publish {
            request: i,
            event: event(&alice(), "big", EventKind::JoinRequest, 0, &[7; 16_000]),
        })
        .collect();
    c.writer.send_all(&batch).await.unwrap();
    let mut seen = 0;
    while seen < 16 {
        match tokio::time::timeout(STEP, c.reader.recv())
            .await
            .unwrap()
            .unwrap()
        {
            RelayMsg::Event(e) => {
                assert_eq!(e.event.body.len(), 16_000);
                seen += 1;
            }
            RelayMsg::Closing { reason } => panic!("closed: {reason:?}"),
            _ => {}
        }
    }
    relay.shutdown().await;
}

/// Audit L3: every event that would create a room counts against its
/// sender's hourly quota; over it the event is refused with a reason the
/// client can word, and rooms that exist, and other identities, are not
/// affected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_rooms_are_limited_per_identity_with_a_clear_rejection() {
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits {
        rooms_per_hour: 2,
        ..Limits::default()
    };
    let relay = TestRelay::start(dir.path(), limits).await;
    let mut a = Client::connect(&relay, alice()).await;
    let names = ["one", "two", "three"];
    for name in names {
        a.join(name).await;
    }
    for (i, name) in names.into_iter().enumerate() {
        a.publish(
            i as u64,
            event(&alice(), name, EventKind::Message, 0, b"hi"),
        )
        .await;
    }
    // A refusal is sent at once, events once committed: either order.
    let (mut created, mut refused) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        match a.next().await {
            RelayMsg::Event(e) => created.push((e.event.room, e.seq)),
            RelayMsg::Rejected {
                request,
                room,
                reason,
            } => refused.push((request, room, reason)),
            other => panic!("unexpected {other:?}"),
        }
    }
    created.sort();
    assert_eq!(created, vec![(room("one"), 1), (room("two"), 1)]);
    assert_eq!(
        refused,
        vec![(2, room("three"), Rejection::TooManyNewRooms { per_hour: 2 })]
    );
    // A room that exists takes more events; bob may still create one.
    a.publish(3, event(&alice(), "one", EventKind::Message, 0, b"more"))
        .await;
    assert_eq!(a.next_event().await.seq, 2);
    let mut b = Client::connect(&relay, bob()).await;
    b.join("three").await;
    b.publish(1, event(&bob(), "three", EventKind::Message, 0, b"mine"))
        .await;
    assert_eq!(b.next_event_from(&bob()).await.seq, 1);
    relay.shutdown().await;
}

/// Audit L3: with every room head evicted from the sequencer's memory at
/// once (idle time zero, one resident room), and the hub forgetting rooms
/// nobody is in, a room read back from the log goes on with contiguous
/// seqs, the right epoch, and the chain head the members compute.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_evicted_room_continues_with_contiguous_seqs_and_the_right_chain_head() {
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits {
        room_idle_after: Duration::ZERO,
        max_resident_rooms: 1,
        ..Limits::default()
    };
    let relay = TestRelay::start(dir.path(), limits).await;
    let mut a = Client::connect(&relay, alice()).await;
    let mut head = [0u8; 32];
    let mut seqs = Vec::new();
    a.join("kept").await;
    a.join("other").await;
    for round in 0..4u64 {
        // A commit, then messages, interleaved with another room so that
        // the one resident head keeps changing.
        let kind = if round == 0 {
            EventKind::Commit
        } else {
            EventKind::Message
        };
        a.publish(
            round,
            event(&alice(), "kept", kind, 1, &round.to_be_bytes()),
        )
        .await;
        loop {
            let e = a.next_event().await;
            if e.event.room == room("kept") {
                head = hush_proto::e2e::chain_next(&head, &e);
                seqs.push(e.seq);
                break;
            }
        }
        a.publish(
            100 + round,
            event(&alice(), "other", EventKind::Message, 0, b"x"),
        )
        .await;
        assert_eq!(a.next_event().await.event.room, room("other"));
    }
    assert_eq!(seqs, vec![1, 2, 3, 4]);
    a.send(ClientMsg::Checkpoint { room: room("kept") }).await;
    let cp = loop {
        if let RelayMsg::Checkpoint(cp) = a.next_any().await {
            break cp;
        }
    };
    assert_eq!((cp.seq, cp.head), (4, head));
    // Everyone leaves: the hub forgets the room too. A newcomer is told
    // the head from the log, and the room goes on from it.
    a.send(ClientMsg::Leave { room: room("kept") }).await;
    assert!(matches!(a.next().await, RelayMsg::Left { .. }));
    let mut b = Client::connect(&relay, bob()).await;
    let (head_seq, epoch, _) = b.join("kept").await;
    assert_eq!((head_seq, epoch), (4, 1), "seq and epoch survive eviction");
    b.publish(1, event(&bob(), "kept", EventKind::Message, 1, b"after"))
        .await;
    let e = b.next_event().await;
    assert_eq!(e.seq, 5);
    head = hush_proto::e2e::chain_next(&head, &e);
    b.send(ClientMsg::Checkpoint { room: room("kept") }).await;
    let cp = loop {
        if let RelayMsg::Checkpoint(cp) = b.next_any().await {
            break cp;
        }
    };
    assert_eq!((cp.seq, cp.head), (5, head));
    // Backfill serves up to the join head, from the log.
    let all = b.backfill("kept", 0).await;
    assert_eq!(
        all.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![1, 2, 3, 4]
    );
    relay.shutdown().await;
}

/// Audit L3: backfill takes the connection's rate tokens. One connection
/// asking for page after page is slowed to the rate, while another
/// connection's backfill is answered meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_flood_is_rate_limited_and_others_are_still_served() {
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits {
        publish_rate: 1,
        publish_burst: 4,
        ..Limits::default()
    };
    let relay = TestRelay::start(dir.path(), limits).await;
    let mut a = Client::connect(&relay, alice()).await;
    a.join("lobby").await;
    a.publish(0, event(&alice(), "lobby", EventKind::Message, 0, b"hi"))
        .await;
    assert_eq!(a.next_event().await.seq, 1);
    // The join and the publish took two of alice's four tokens. She asks
    // for 30 pages at once; at one token a second the last would take
    // half a minute.
    let flood = 30;
    let asks: Vec<ClientMsg> = (0..flood)
        .map(|_| ClientMsg::Backfill {
            room: room("lobby"),
            after_seq: 0,
        })
        .collect();
    a.conn.writer.send_all(&asks).await.unwrap();
    let mut answered = 0;
    while answered < 2 {
        if let RelayMsg::BackfillDone { .. } = a.next().await {
            answered += 1;
        }
    }
    // Bob, on his own connection, is served in full meanwhile.
    let mut b = Client::connect(&relay, bob()).await;
    b.join("lobby").await;
    let got = b.backfill("lobby", 0).await;
    assert_eq!(got.len(), 1);
    // Alice's flood is still being slowed: what she has been sent by now
    // falls far short of all of it.
    while let Ok(Ok(msg)) =
        tokio::time::timeout(Duration::from_millis(1), a.conn.reader.recv()).await
    {
        if let RelayMsg::BackfillDone { .. } = msg {
            answered += 1;
        }
    }
    assert!(
        answered < flood,
        "{answered} of {flood} pages answered at once"
    );
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_are_stored_for_their_declarer_served_to_the_room_and_survive_a_restart() {
    use hush_proto::FileRefusal;
    let dir = tempfile::tempdir().unwrap();
    let relay = TestRelay::start(dir.path(), Limits::default()).await;
    let mut a = Client::connect(&relay, alice()).await;
    let mut b = Client::connect(&relay, bob()).await;
    let mut c = Client::connect(&relay, carol()).await;
    a.join("lobby").await;
    b.join("lobby").await;
    let file = [7u8; 16];
    let chunk = |i: u8| vec![i; 5000];
    let declare = ClientMsg::FileDeclare {
        room: room("lobby"),
        file,
        chunks: 3,
        bytes: 15_000,
    };
    a.send(declare.clone()).await;
    assert!(matches!(
        a.next().await,
        RelayMsg::FileStatus { chunks: 3, ref have, .. } if have.is_empty()
    ));
    for i in 0..3u8 {
        a.send(ClientMsg::FilePut {
            room: room("lobby"),
            file,
            index: u32::from(i),
            data: chunk(i),
        })
        .await;
        assert!(matches!(
            a.next().await,
            RelayMsg::FileStored { index, .. } if index == u32::from(i)
        ));
    }
    // Another member fetches a chunk; only the declarer may upload.
    b.send(ClientMsg::FileGet {
        room: room("lobby"),
        file,
        index: 1,
    })
    .await;
    assert!(
        matches!(b.next().await, RelayMsg::FileChunk { index: 1, ref data, .. } if *data == chunk(1))
    );
    b.send(ClientMsg::FilePut {
        room: room("lobby"),
        file,
        index: 1,
        data: vec![0xee; 5000],
    })
    .await;
    assert!(matches!(
        b.next().await,
        RelayMsg::FileRefused {
            reason: FileRefusal::NotOwner,
            ..
        }
    ));
    // Someone who has not joined the room gets nothing.
    c.send(ClientMsg::FileGet {
        room: room("lobby"),
        file,
        index: 0,
    })
    .await;
    assert!(matches!(
        c.next().await,
        RelayMsg::FileRefused {
            reason: FileRefusal::NotJoined,
            ..
        }
    ));
    // Over the relay's per-file limit: refused before any upload.
    a.send(ClientMsg::FileDeclare {
        room: room("lobby"),
        file: [8u8; 16],
        chunks: 10_000,
        bytes: 300 << 20,
    })
    .await;
    assert!(matches!(
        a.next().await,
        RelayMsg::FileRefused {
            reason: FileRefusal::TooLarge { .. },
            ..
        }
    ));
    // A chunk past the declared count.
    a.send(ClientMsg::FilePut {
        room: room("lobby"),
        file,
        index: 3,
        data: chunk(3),
    })
    .await;
    assert!(matches!(
        a.next().await,
        RelayMsg::FileRefused {
            reason: FileRefusal::BadChunk { index: 3 },
            ..
        }
    ));
    relay.shutdown().await;

    // After a restart the same declaration resumes: everything is held.
    let relay = TestRelay::start(dir.path(), Limits::default()).await;
    let mut a = Client::connect(&relay, alice()).await;
    a.join("lobby").await;
    a.send(declare).await;
    assert!(matches!(
        a.next().await,
        RelayMsg::FileStatus { ref have, .. } if *have == [0, 1, 2]
    ));
    a.send(ClientMsg::FileGet {
        room: room("lobby"),
        file,
        index: 2,
    })
    .await;
    assert!(matches!(a.next().await, RelayMsg::FileChunk { ref data, .. } if *data == chunk(2)));
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_chunks_mixed_with_bad_ones_stores_the_good_and_refuses_each_bad_one() {
    // The relay writes the chunks at hand in one batch: a bad chunk in
    // the middle of one (another room, a wrong index, another file, too
    // large for its slot) is refused on its own, the good ones around it are stored
    // and acknowledged once, and the link goes on.
    use hush_proto::FileRefusal;
    let dir = tempfile::tempdir().unwrap();
    let relay = TestRelay::start(dir.path(), Limits::default()).await;
    let mut a = Client::connect(&relay, alice()).await;
    a.join("lobby").await;
    let file = [5u8; 16];
    let size = 32 * 1024 + 16;
    a.send(ClientMsg::FileDeclare {
        room: room("lobby"),
        file,
        chunks: 4,
        bytes: 4 * size as u64,
    })
    .await;
    assert!(matches!(a.next().await, RelayMsg::FileStatus { .. }));
    let put = |room_name: &str, file: [u8; 16], index: u32, len: usize| ClientMsg::FilePut {
        room: room(room_name),
        file,
        index,
        data: vec![7; len],
    };
    let burst = [
        put("lobby", file, 0, size),
        put("elsewhere", file, 1, size),
        put("lobby", file, 99, size),
        put("lobby", [6u8; 16], 1, size),
        put("lobby", file, 1, size),
        // Past the chunk's slot in the data file (32 KiB rounded up to
        // 4 KiB blocks).
        put("lobby", file, 2, size + 8192),
        put("lobby", file, 2, size),
    ];
    for m in &burst {
        a.conn.writer.send(m).await.unwrap();
    }
    let (mut stored, mut refused) = (Vec::new(), Vec::new());
    while stored.len() + refused.len() < 7 {
        match a.next().await {
            RelayMsg::FileStored { index, .. } => stored.push(index),
            RelayMsg::FileRefused {
                room: r,
                file: f,
                reason,
            } => {
                refused.push((r.as_str().to_owned(), f, reason));
            }
            other => panic!("{other:?}"),
        }
    }
    stored.sort_unstable();
    assert_eq!(stored, vec![0, 1, 2], "each good chunk acknowledged once");
    refused.sort_by_key(|(r, f, _)| (r.clone(), *f));
    assert_eq!(refused.len(), 4, "{refused:?}");
    assert!(refused.contains(&("elsewhere".into(), file, FileRefusal::NotJoined)));
    assert!(refused.contains(&("lobby".into(), file, FileRefusal::BadChunk { index: 99 })));
    assert!(refused.contains(&("lobby".into(), [6u8; 16], FileRefusal::Unknown)));
    assert!(refused.contains(&("lobby".into(), file, FileRefusal::BadChunk { index: 2 })));
    // The link still serves: the store holds exactly the three.
    a.send(ClientMsg::FileQuery {
        room: room("lobby"),
        file,
    })
    .await;
    match a.next().await {
        RelayMsg::FileStatus { have, chunks, .. } => {
            assert_eq!((have, chunks), (vec![0, 1, 2], 4));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_of_chunks_is_acknowledged_once_synced_chat_goes_on_and_ranges_come_in_order() {
    use hush_proto::FileRefusal;
    let dir = tempfile::tempdir().unwrap();
    let relay = TestRelay::start(dir.path(), Limits::default()).await;
    let mut a = Client::connect(&relay, alice()).await;
    a.join("lobby").await;
    let file = [9u8; 16];
    let chunk = |i: u32| vec![u8::try_from(i % 251).unwrap(); 32 * 1024 + 16];
    let total = 200u32;
    a.send(ClientMsg::FileDeclare {
        room: room("lobby"),
        file,
        chunks: total,
        bytes: u64::from(total) * (32 * 1024 + 16),
    })
    .await;
    assert!(matches!(a.next().await, RelayMsg::FileStatus { .. }));
    // The whole file at once, without waiting, with a chat message in the
    // middle: every chunk is acknowledged exactly once, and the message
    // is sequenced and delivered as usual.
    let mut msgs: Vec<ClientMsg> = (0..total)
        .map(|index| ClientMsg::FilePut {
            room: room("lobby"),
            file,
            index,
            data: chunk(index),
        })
        .collect();
    msgs.insert(
        100,
        ClientMsg::Publish {
            request: 1,
            event: event(&alice(), "lobby", EventKind::Message, 0, b"still here"),
        },
    );
    for m in &msgs {
        a.conn.writer.send(m).await.unwrap();
    }
    let mut stored = vec![false; total as usize];
    let mut chat = false;
    while !chat || stored.iter().any(|s| !s) {
        match a.next().await {
            RelayMsg::FileStored { index, .. } => {
                assert!(!stored[index as usize], "chunk {index} acknowledged twice");
                stored[index as usize] = true;
            }
            RelayMsg::Event(e) => {
                assert_eq!(e.event.body, b"still here");
                chat = true;
            }
            other => panic!("{other:?}"),
        }
    }
    // A held chunk sent again is acknowledged at once, and not rewritten.
    a.send(ClientMsg::FilePut {
        room: room("lobby"),
        file,
        index: 3,
        data: vec![0xee; 100],
    })
    .await;
    assert!(matches!(
        a.next().await,
        RelayMsg::FileStored { index: 3, .. }
    ));
    // A range comes back in order; one too long is refused, and nothing sent.
    a.send(ClientMsg::FileGetRange {
        room: room("lobby"),
        file,
        first: 2,
        count: hush_proto::msg::MAX_FILE_RANGE,
    })
    .await;
    for index in 2..2 + hush_proto::msg::MAX_FILE_RANGE {
        match a.next().await {
            RelayMsg::FileChunk { index: i, data, .. } => {
                assert_eq!(i, index);
                assert!(data == chunk(index), "chunk {index}");
            }
            other => panic!("{other:?}"),
        }
    }
    a.send(ClientMsg::FileGetRange {
        room: room("lobby"),
        file,
        first: 0,
        count: hush_proto::msg::MAX_FILE_RANGE + 1,
    })
    .await;
    assert!(matches!(
        a.next().await,
        RelayMsg::FileRefused {
            reason: FileRefusal::BadChunk { index: 0 },
            ..
        }
    ));
    relay.shutdown().await;
}
