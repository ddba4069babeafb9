//! The fuzz targets' bodies, shared by the libFuzzer binaries in
//! `fuzz_targets/` and by `tests/fuzz_corpus.rs`, which runs each over its
//! seed corpus in every CI run. Each calls the same entry points the
//! relay and client call on bytes from the network, a file or the user.
//! None may panic, whatever the input.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::OnceLock;
use std::time::Instant;

use hush_crypto::identity::PemKind;
use hush_crypto::{Fingerprint, Identity, PublicIdentity};
use hush_proto::frame::{FrameBuffer, parse_frame};
use hush_proto::handshake::{self, RelayFirstStep};
use hush_proto::msg::decode;
use hush_proto::{ClientMsg, EventKind, RelayMsg, RoomEvent, RoomName, SequencedEvent};
use hush_testkit::entropy::seeded;
pub use hush_testkit::keys::{alice, relay};

/// Frames: the length-prefix parser and the bounded read buffer, fed in
/// chunks whose size the first byte picks.
pub fn frame(data: &[u8]) {
    let _ = parse_frame(data, 4096);
    let Some((&chunk, rest)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(chunk).max(1);
    let mut fb = FrameBuffer::new(1024);
    for piece in rest.chunks(chunk) {
        let space = fb.read_space();
        let n = piece.len().min(space.len());
        space[..n].copy_from_slice(&piece[..n]);
        fb.advance(n);
        loop {
            match fb.next_frame() {
                Ok(Some(body)) => {
                    let _ = decode::<ClientMsg>(&body);
                    let _ = decode::<RelayMsg>(&body);
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
}

/// Handshake messages, each in the state that expects it: a hello at the
/// relay, a greeting at the client, a client's sealed auth at the relay,
/// a ticket at the relay's ticket key, a resumed client's sealed finished
/// message at the relay, the relay's sealed proof at the client (the
/// first byte chooses which).
pub fn handshake(data: &[u8]) {
    let Some((&which, msg)) = data.split_first() else {
        return;
    };
    let tickets = || handshake::TicketPolicy {
        key: std::sync::Arc::new(hush_proto::ticket::TicketKey::new(
            hush_crypto::Secret32::from_bytes([7; 32]),
        )),
        lifetime_ms: 1000,
    };
    const MAX: usize = 4096;
    match which % 6 {
        0 => {
            let _ = handshake::relay_start(relay(), msg, MAX, None, None);
        }
        1 => {
            let (state, _) = handshake::client_start(alice());
            let _ = state.on_greeting(msg);
        }
        2 => {
            let (_, hello) = handshake::client_start(alice());
            if let Ok(RelayFirstStep::Continue(state, _)) =
                handshake::relay_start(relay(), &hello, MAX, None, None)
            {
                let _ = state.on_client_auth(msg, 0, 0);
            }
        }
        3 => {
            let _ = tickets().key.open(msg, 0);
            let _ = handshake::offered_ticket(msg);
        }
        4 => {
            let policy = tickets();
            let secret = hush_crypto::Secret32::from_bytes([1; 32]);
            let ticket = policy.key.issue(&alice().fingerprint(), &secret, 1000);
            let opened = policy.key.open(&ticket, 0);
            let (_, hello) = handshake::client_start(alice());
            if let Ok(RelayFirstStep::Continue(state, _)) =
                handshake::relay_start(relay(), &hello, MAX, Some(policy), opened)
            {
                let _ = state.on_client_auth(msg, 0, 0);
            }
        }
        _ => {
            let (state, hello) = handshake::client_start(alice());
            let Ok(RelayFirstStep::Continue(_, wire)) =
                handshake::relay_start(relay(), &hello, MAX, None, None)
            else {
                return;
            };
            let Ok(Some((_, greeting))) = hush_proto::frame::parse_frame(&wire, usize::MAX) else {
                return;
            };
            if let Ok(handshake::ClientGreeted::AwaitingRelayAuth(s)) = state.on_greeting(greeting)
            {
                let _ = s.on_relay_auth(msg);
            }
        }
    }
}

/// The relay confirms `me` joined `state`'s room, alone in it.
fn join(state: &mut hush_room::Room, me: &Identity, now: Instant) {
    let joined = RelayMsg::Joined {
        room: state.name().clone(),
        head_seq: state.last_seq(),
        epoch: state.epoch(),
        online: vec![me.fingerprint()],
    };
    let _ = state.on_relay(joined, relay().public(), now);
}

/// A room alice created, as a saved snapshot: restoring it costs no RSA
/// private-key work, so each input runs fast.
fn created_room() -> &'static hush_room::RoomSnapshot {
    static S: OnceLock<hush_room::RoomSnapshot> = OnceLock::new();
    S.get_or_init(|| {
        let room = RoomName::new("fuzz").unwrap();
        let me = alice();
        let now = Instant::now();
        let mut state = hush_room::Room::new(room, me.clone(), "alice".into(), seeded(b"fuzz"));
        join(&mut state, &me, now);
        let mut seq = 0;
        let done = RelayMsg::BackfillDone {
            room: state.name().clone(),
            up_to: 0,
            complete: true,
        };
        for action in state.on_relay(done, relay().public(), now) {
            if let hush_room::Action::Publish { event, .. } = action {
                seq += 1;
                let _ = state.on_relay(
                    RelayMsg::Event(SequencedEvent {
                        seq,
                        received_at_ms: 1,
                        event,
                    }),
                    relay().public(),
                    now,
                );
            }
        }
        state.snapshot()
    })
}

/// Room events as a member's client processes them: the body under every
/// kind, from itself and from a stranger, in a room it created (so commits
/// and messages go through every check).
pub fn room_event(data: &[u8]) {
    let room = RoomName::new("fuzz").unwrap();
    let me = alice();
    let now = Instant::now();
    let Ok(mut state) = hush_room::Room::restore(
        room.clone(),
        me.clone(),
        created_room(),
        seeded(b"fuzz"),
        now,
    ) else {
        return;
    };
    join(&mut state, &me, now);
    let done = RelayMsg::BackfillDone {
        room: room.clone(),
        up_to: state.last_seq(),
        complete: true,
    };
    let _ = state.on_relay(done, relay().public(), now);
    let mut seq = state.last_seq();
    let senders = [me.fingerprint(), Fingerprint::from_bytes([7; 32])];
    let kinds = [
        EventKind::Message,
        EventKind::Commit,
        EventKind::JoinRequest,
        EventKind::Leave,
        EventKind::Control,
    ];
    let epoch = u64::from(data.first().copied().unwrap_or(1) % 4);
    for sender in senders {
        for kind in kinds {
            seq += 1;
            let event = RoomEvent {
                room: room.clone(),
                sender,
                kind,
                epoch,
                body: data.to_vec(),
            };
            let _ = state.on_relay(
                RelayMsg::Event(SequencedEvent {
                    seq,
                    received_at_ms: 1,
                    event,
                }),
                relay().public(),
                now,
            );
        }
    }
    let _ = decode::<hush_proto::e2e::Payload>(data);
}

/// Key files, as `hush fingerprint` and every `--key` read them.
pub fn key_file(data: &[u8]) {
    let _ = PublicIdentity::from_spki_der(data);
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = PemKind::detect(text);
    let _ = PublicIdentity::from_pem(text);
    let _ = Identity::from_pem(text, None);
}

/// What a user (or a bot on stdin) types.
pub fn command_line(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = hush_client::command::parse_line(text);
    let _ = hush_client::command::validate_nick(text);
    let _ = hush_client::display::sanitize(text);
}

/// Invitation codes: a typed code, and any step a hostile peer or relay
/// posts into an exchange at either side, at either stage.
pub fn code_step(data: &[u8]) {
    use hush_proto::code::{Code, InviteeExchange, InviterExchange, Step};
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = text.parse::<Code>();
    }
    let Ok(step) = Step::decode(data) else {
        return;
    };
    let me = alice();
    let room = RoomName::new("fuzz").unwrap();
    let code = Code::random(1);
    // The inviter, before and after the invitee's SPAKE2 message.
    let (mut a, _) = InviterExchange::start(code, room.clone(), relay().fingerprint());
    let _ = a.receive(step.clone(), &me, "alice");
    let (mut a, _) = InviterExchange::start(code, room, relay().fingerprint());
    let (_, b1) = InviteeExchange::start(code);
    let _ = a.receive(b1, &me, "alice");
    let _ = a.receive(step.clone(), &me, "alice");
    // The invitee, likewise.
    let (mut b, _) = InviteeExchange::start(code);
    let _ = b.receive(step, &me, "bob");
}
